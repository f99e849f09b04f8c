//! Every bad input: exit 2, one `error:` line naming file, pipeline, stage and field, and
//! nothing written under `.runs`.

use crate::harness::TestEnv;

/// Runs `start` on `config` and checks the contract; returns the error line.
fn rejected(config: &str, args: &[&str]) -> String {
    let env = TestEnv::new().config(config);
    let mut all = vec!["start"];
    all.extend_from_slice(args);
    let out = env.cli(&all);
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(!env.runs_exists(), "nothing may be written under .runs");
    assert!(out.stdout.is_empty(), "stdout stays empty: {}", out.stdout);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    env.redact(errors[0])
}

const OK_STAGE: &str = r#"{"kind":"command","id":"a","command":"true"}"#;

#[test]
fn invalid_json_names_line_and_column() {
    insta::assert_snapshot!(rejected("{\n  \"pipelines\": [\n    {\"id\": \"p\",}\n  ]\n}", &["p"]), @"error: `[TMP]/codex.orchestrator.json`:3:16: invalid JSON: trailing comma");
}

#[test]
fn wrong_types_name_the_field() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","timeoutMs":"soon"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `timeoutMs`: expected an integer >= 1, found a string");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","allowFailure":"yes"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `allowFailure`: expected true or false, found a string");
    insta::assert_snapshot!(rejected(r#"{"pipelines":{"id":"p"}}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: field `pipelines`: expected an array, found an object");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","env":{"X":[1]}}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `env.X`: expected a string, found an array");
}

#[test]
fn unknown_pipeline_lists_the_known_ones() {
    let cfg = format!(
        r#"{{"pipelines":[{{"id":"build","stages":[{OK_STAGE}]}},{{"id":"test","stages":[{OK_STAGE}]}}]}}"#
    );
    insta::assert_snapshot!(rejected(&cfg, &["deploy"]), @"error: `[TMP]/codex.orchestrator.json`: unknown pipeline `deploy` (known: `build`, `test`)");
}

#[test]
fn missing_stage_set() {
    insta::assert_snapshot!(rejected(r#"{"stageSets":{"checks":[]},"pipelines":[{"id":"p","stages":[{"kind":"stage-set","ref":"chekcs"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `#1`, field `ref`: unknown stage set `chekcs` (known: `checks`); did you mean `checks`?");
}

#[test]
fn duplicate_stage_ids() {
    let cfg = format!(r#"{{"pipelines":[{{"id":"p","stages":[{OK_STAGE},{OK_STAGE}]}}]}}"#);
    insta::assert_snapshot!(rejected(&cfg, &["p"]), @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `id`: duplicate stage id (ids must be unique in a pipeline, stage sets included)");
}

#[test]
fn command_stage_without_command() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `command`: missing (a command stage needs a shell command)");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"  "}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `command`: must not be empty (a command stage needs a shell command)");
}

#[test]
fn missing_or_unknown_kind() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"id":"a","command":"true"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `kind`: missing (one of: `command`, `subpipeline`, `approval`, `loop`, `stage-set`)");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"comand","id":"a","command":"true"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `kind`: unknown kind `comand` (one of: `command`, `subpipeline`, `approval`, `loop`, `stage-set`); did you mean `command`?");
}

#[test]
fn empty_pipeline() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, field `stages`: empty (a pipeline needs at least one stage)");
}

#[test]
fn subpipeline_missing_or_cyclic() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"subpipeline","id":"s","pipeline":"nope"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `s`, field `pipeline`: unknown pipeline `nope` (known: `p`)");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[
        {"id":"a","stages":[{"kind":"subpipeline","id":"to-b","pipeline":"b"}]},
        {"id":"b","stages":[{"kind":"subpipeline","id":"to-a","pipeline":"a"}]}]}"#, &["a"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `a`, stage `to-b`, field `pipeline`: sub-pipelines form a cycle: a -> b -> a");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"a","stages":[{"kind":"subpipeline","id":"me","pipeline":"a"}]}]}"#, &["a"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `a`, stage `me`, field `pipeline`: sub-pipelines form a cycle: a -> a");
}

#[test]
fn stage_graph_errors() {
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[
        {"kind":"command","id":"a","command":"true","dependsOn":["c"]},
        {"kind":"command","id":"b","command":"true","dependsOn":["a"]},
        {"kind":"command","id":"c","command":"true","dependsOn":["b"]}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `dependsOn`: stages depend on each other in a cycle: a -> c -> b -> a");
    // An edge from the implicit "previous stage" rule is spelled out.
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[
        {"kind":"command","id":"a","command":"true"},
        {"kind":"command","id":"b","command":"true","dependsOn":["c"]},
        {"kind":"command","id":"c","command":"true"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `b`, field `dependsOn`: stages depend on each other in a cycle: b -> c -> b (`c` has no `dependsOn`, so it depends on the stage before it, `b`)");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","dependsOn":["ghost"]}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `dependsOn`: depends on `ghost`, which is not a stage of this pipeline");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","dependsOn":["a"]}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `dependsOn`: a stage cannot depend on itself");
}

#[test]
fn undefined_variable_in_a_cwd_names_stage_and_field() {
    // Only `cwd` is read by the runner; commands are the shell's (see shell.rs).
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","cwd":"out/${NOPE_NOT_SET}"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `cwd`: undefined variable `${NOPE_NOT_SET}` (define it with --var NOPE_NOT_SET=VALUE, the pipeline's `vars`, the stage's `env`, or the environment)");
}

#[test]
fn missing_config_file() {
    // A repository root: the search for the config stops there.
    let env = TestEnv::new();
    std::fs::create_dir(env.path().join(".git")).expect(".git");
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 2);
    assert!(!env.runs_exists());
    insta::assert_snapshot!(env.redact(out.stderr.trim()), @"error: no `codex.orchestrator.json` found: looked in `[TMP]` (stopped at the repository root), and no peer package config to fall back to; pass -f/--config PATH or set CODEX_ORCHESTRATOR_REPO_CONFIG_PATH");
    // A file that is named but missing is named in the error.
    let out = env.cli(["start", "p", "-f", "nope.json"]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!(env.redact(out.stderr.trim()), @r"
    error: cannot read config `[TMP]/nope.json`
      caused by: No such file or directory (os error 2)
    ");
}

#[test]
fn bad_flags_and_env_are_usage_errors() {
    let cfg = format!(r#"{{"pipelines":[{{"id":"p","stages":[{OK_STAGE}]}}]}}"#);
    insta::assert_snapshot!(rejected(&cfg, &["p", "--var", "1X=2"]), @"error: --var `1X=2`: `1X` is not a valid variable name (letters, digits and `_`, not starting with a digit)");
    insta::assert_snapshot!(rejected(&cfg, &["p", "--task", "../escape"]), @"error: task id `../escape` cannot be used as a directory name: it contains a path separator");
    insta::assert_snapshot!(rejected(&cfg, &["p", "--cloud", "--execution-mode", "mcp"]), @"error: --cloud conflicts with --execution-mode mcp");
    let env = TestEnv::new()
        .config(&cfg)
        .env("CODEX_ORCHESTRATOR_RUNTIME_MODE", "turbo");
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 2);
    assert!(!env.runs_exists());
    assert!(
        out.stderr
            .contains("CODEX_ORCHESTRATOR_RUNTIME_MODE is `turbo`"),
        "{}",
        out.stderr
    );
    let out = TestEnv::new()
        .config(&cfg)
        .cli(["start", "p", "--no-such-flag"]);
    assert_eq!(out.code, 2);
    // Task ids from the environment are checked like --task.
    for (var, value) in [
        ("MCP_RUNNER_TASK_ID", "../x"),
        ("CODEX_ORCHESTRATOR_TASK_ID", "a/b"),
        ("TASK", "t\u{1}"),
    ] {
        let env = TestEnv::new().config(&cfg).env(var, value);
        let out = env.cli(["start", "p"]);
        assert_eq!(out.code, 2, "{var}={value:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert!(!env.runs_exists(), "{var}: nothing written");
    }
}

#[test]
fn unknown_keys_warn_with_a_hint_or_fail_under_strict() {
    let cfg = r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","dependson":["x"]}]}]}"#;
    let env = TestEnv::new().config(cfg);
    let out = env.cli(["plan", "p"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(env.redact(out.stderr.trim()), @"warning: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `dependson`: unknown key, ignored (did you mean `dependsOn`?)");
    insta::assert_snapshot!(rejected(cfg, &["p", "--strict"]), @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `dependson`: unknown key (did you mean `dependsOn`?)");
}

/// Config files that are not regular files or are too large: refused before they are read,
/// at once (a FIFO used to block forever, `/dev/zero` to fill memory).
#[test]
fn odd_config_files_are_refused_within_a_second() {
    type Make = fn(&std::path::Path);
    let cases: [(&str, Make); 3] = [
        ("a FIFO, not a regular file", |p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo")
        }),
        ("a character device, not a regular file", |p| {
            std::os::unix::fs::symlink("/dev/zero", p).expect("symlink")
        }),
        ("larger than 16 MiB", |p| {
            std::fs::File::create(p)
                .and_then(|f| f.set_len(16 * 1024 * 1024 + 1))
                .expect("sparse file")
        }),
    ];
    for (why, make) in cases {
        let env = TestEnv::new();
        make(&env.path().join("codex.orchestrator.json"));
        for verb in [&["start", "p"][..], &["plan", "p"]] {
            let (out, took) = env.cli_bounded(verb, std::time::Duration::from_secs(10));
            assert_eq!(out.code, 2, "{why}: {}", out.stderr);
            assert!(
                took < std::time::Duration::from_secs(1),
                "{why}: took {took:?}"
            );
            assert!(
                out.stderr.contains(&format!("caused by: it is {why}")),
                "{why}: {}",
                out.stderr
            );
            assert!(!env.runs_exists());
        }
    }
}

/// An I/O error reading the config is the storage's fault, not the input's: exit 4 with the
/// OS error (`/proc/self/mem` read at offset 0 fails with EIO).
#[test]
fn an_io_error_reading_the_config_is_exit_4() {
    let env = TestEnv::new().env("CODEX_ORCHESTRATOR_REPO_CONFIG_PATH", "/proc/self/mem");
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    insta::assert_snapshot!(out.stderr.trim(), @r"
    error: cannot read config `/proc/self/mem`
      caused by: Input/output error (os error 5)
    ");
    assert!(!env.runs_exists());
}

/// A pipeline whose first stage would leave a mark, then `stage` (JSON).
fn after_a_first_stage(stage: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"first","command":"touch first-ran"}},{stage}]}}]}}"#
    )
}

/// Inputs that used to pass validation and fail only after earlier stages had run (each left a
/// run behind): now exit 2, one `error:` line naming the field, nothing run, nothing written.
#[test]
fn inputs_a_process_cannot_take_are_refused_before_anything_runs() {
    let cmd = |extra: &str| {
        after_a_first_stage(&format!(
            r#"{{"kind":"command","id":"second","command":"true"{extra}}}"#
        ))
    };
    let long = format!(
        r#"{{"kind":"command","id":"second","command":"echo {}"}}"#,
        "x".repeat(1_000_000)
    );
    // Each variable fits in one environment string; together they are over ARG_MAX (2 MiB
    // with the usual 8 MiB stack).
    let big_env: Vec<String> = (0..24)
        .map(|i| format!(r#""BIG{i}":"{}""#, "v".repeat(100_000)))
        .collect();
    let big_env = cmd(&format!(r#","env":{{{}}}"#, big_env.join(",")));
    let cases: Vec<(String, Vec<String>, &str)> = vec![
        (big_env, vec![], "stage `second`, field `command`: the command and its environment take about"),
        (after_a_first_stage(r#"{"kind":"command","id":"second","command":"echo a\u0000b"}"#), vec![], "stage `second`, field `command`: contains a NUL byte"),
        (cmd(r#","cwd":"sub\u0000dir""#), vec![], "stage `second`, field `cwd`: contains a NUL byte"),
        (cmd(r#","env":{"A\u0000":"x"}"#), vec![], "field `env.A\\0`: contains a NUL byte"),
        (cmd(r#","env":{"A":"x\u0000y"}"#), vec![], "field `env.A`: contains a NUL byte"),
        (cmd(r#","env":{"A=B":"x"}"#), vec![], "field `env.A=B`: `=` cannot be part of an environment variable's name"),
        (cmd(r#","env":{"":"x"}"#), vec![], "field `env.`: an environment variable needs a name"),
        (after_a_first_stage(&long), vec![], "stage `second`, field `command`: is 1000005 bytes, over the 131071 a process takes in one argument"),
        (after_a_first_stage(r#"{"kind":"command","id":"se\u0001cond","command":"true"}"#), vec![], "stage `se\\u{1}cond`, field `id`: contains control characters"),
        (cmd(r#","command":"echo twice""#), vec![], "invalid JSON: duplicate key `pipelines[0].stages[1].command`"),
        (cmd(""), vec!["--task".into(), "t\u{1}".into()], "task id `t\\u{1}` cannot be used as a directory name: it contains control characters"),
        (cmd(""), vec!["--task".into(), "t".repeat(5000)], "cannot be used as a directory name: it is longer than 255 bytes"),
        (cmd(""), vec!["--parent-run".into(), "2026-01-01T00-00-00-000Z-deadbeef".into()], "--parent-run `2026-01-01T00-00-00-000Z-deadbeef`: no run with this id"),
    ];
    for (config, args, expected) in cases {
        let env = TestEnv::new().config(&config);
        let mut all = vec!["start".to_owned(), "p".to_owned()];
        all.extend(args);
        let out = env.cli(&all);
        assert_eq!(out.code, 2, "{expected}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "expected `{expected}` in:\n{}",
            out.stderr
        );
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1
        );
        assert!(
            !env.path().join("first-ran").exists(),
            "{expected}: a stage ran"
        );
        assert!(!env.runs_exists(), "{expected}: something was written");
    }
}

/// `--junit` is checked before the run starts: a directory, or a path under a file.
#[test]
fn a_junit_path_that_cannot_be_written_is_refused_before_the_run() {
    let env = TestEnv::new().config(&after_a_first_stage(
        r#"{"kind":"command","id":"second","command":"true"}"#,
    ));
    std::fs::write(env.path().join("file"), "").expect("write");
    let dir = env.path().to_string_lossy().into_owned();
    for (path, expected) in [
        (dir.as_str(), "is a directory"),
        (
            "file/junit.xml",
            "its directory cannot be created: `file` is not a directory",
        ),
        ("file/sub/junit.xml", "`file` is not a directory"),
    ] {
        let out = env.cli(["start", "p", "--junit", path]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert!(!env.path().join("first-ran").exists());
        assert!(!env.runs_exists());
    }
}

#[test]
fn run_control_config_is_validated_up_front() {
    let stage = |extra: &str| {
        format!(
            r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"approval","id":"gate","prompt":"Ship?"{extra}}}]}}]}}"#
        )
    };
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"aproval","id":"gate","prompt":"Ship?"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `kind`: unknown kind `aproval` (one of: `command`, `subpipeline`, `approval`, `loop`, `stage-set`); did you mean `approval`?");
    insta::assert_snapshot!(rejected(&stage(r#","onTimeout":"aprove""#), &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `onTimeout`: `aprove` is not one of: reject, approve; did you mean `approve`?");
    insta::assert_snapshot!(rejected(&stage(r#","approvers":"alice""#), &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `approvers`: expected an array of actor names, found a string");
    insta::assert_snapshot!(rejected(&stage(r#","approvers":["alice",7]"#), &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `approvers`: expected actor names (strings), found a number");
    insta::assert_snapshot!(rejected(&stage(r#","timeoutMs":"10m""#), &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `timeoutMs`: expected an integer >= 1, found a string");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"approval","id":"gate"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `gate`, field `prompt`: missing (an approval stage asks a question)");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","locks":["db",1]}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `a`, field `locks`: expected lock names (strings), found a number");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[{"id":"p","maxWallClockMs":"30m","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, field `maxWallClockMs`: expected an integer >= 1, found a string");
    insta::assert_snapshot!(rejected(r#"{"maxConcurrentRuns":-1,"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#, &["p"]),
        @"error: `[TMP]/codex.orchestrator.json`: field `maxConcurrentRuns`: expected an integer >= 1, found -1");
    let cfg = format!(r#"{{"pipelines":[{{"id":"p","stages":[{OK_STAGE}]}}]}}"#);
    let bad = rejected(&cfg, &["p", "--max-wall-clock", "soon"]);
    assert!(bad.contains("--max-wall-clock"), "{bad}");
    let zero = rejected(&cfg, &["p", "--max-wall-clock", "0s"]);
    assert!(zero.contains("more than zero"), "{zero}");
}
