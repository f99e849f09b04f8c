//! Standalone plan files (`run-plan`, `plan --file`): the safe-merge-like example with every
//! policy, the table of invalid plans (one line, exit 2, nothing written), `--var` values
//! handed over as one argument without a shell, and resume of a plan run.

use serde_json::Value;

use crate::harness::{read_lines, TestEnv};

/// The safe-merge-like plan: fan-out from `checkout`, fan-in at `gate`, a non-critical step
/// that fails (`docs`), a `skip_dependents` step that fails (`security`, so `sbom` never
/// runs), a step that times out on each of its two attempts (`integration`, `continue`), and
/// `${BRANCH}` in arguments.
const SAFE_MERGE: &str = r#"{
  "plan_id": "safe-merge",
  "version": "1.0",
  "globals": {"max_concurrency": 4, "default_timeout_sec": 30},
  "metadata": {"owner": "release"},
  "steps": [
    {"id": "checkout", "name": "Check out", "command": "sh",
     "args": ["-c", "printf '%s' \"$1\" > branch.txt", "sh", "${BRANCH}"]},
    {"id": "lint", "command": "true", "depends_on": ["checkout"]},
    {"id": "unit", "command": "true", "depends_on": ["checkout"]},
    {"id": "typecheck", "command": "true", "depends_on": ["checkout"]},
    {"id": "docs", "command": "sh", "args": ["-c", "echo docs drift >&2; exit 3"],
     "depends_on": ["checkout"], "critical": false},
    {"id": "integration", "command": "sleep", "args": ["5"], "depends_on": ["checkout"],
     "timeout_sec": 0.3, "retries": 1, "retry_delay_sec": 0.1, "on_failure": "continue"},
    {"id": "security", "command": "sh", "args": ["-c", "exit 4"], "depends_on": ["checkout"],
     "on_failure": "skip_dependents"},
    {"id": "sbom", "command": "touch", "args": ["sbom.json"], "depends_on": ["security"]},
    {"id": "gate", "command": "true", "depends_on": ["lint", "unit", "typecheck", "docs"]},
    {"id": "merge", "command": "sh", "args": ["-c", "printf merged > merged.txt"],
     "depends_on": ["gate"]},
    {"id": "notify", "command": "printf", "args": ["notified %s\n", "${BRANCH}"],
     "depends_on": ["merge", "integration"]}
  ]
}"#;

fn with_plan(plan: &str) -> TestEnv {
    let env = TestEnv::new();
    std::fs::write(env.path().join("plan.json"), plan).expect("write plan");
    env
}

fn command<'m>(m: &'m Value, id: &str) -> &'m Value {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no stage {id}"))
}

#[test]
fn the_safe_merge_plan_runs_with_the_expected_statuses() {
    let env = with_plan(SAFE_MERGE);
    let branch = r#"feature/it's "quoted" two words"#;
    let out = env.cli([
        "run-plan",
        "plan.json",
        "--var",
        &format!("BRANCH={branch}"),
        "--format",
        "json",
    ]);
    // Critical steps failed (`security`, `integration`): the run fails.
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_eq!(m["pipeline_id"], "safe-merge");
    assert_eq!(m["status"], "failed");
    assert_eq!(m["config_source"], "plan-file");
    let status: Vec<(&str, &str)> = m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id"),
                c["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("checkout", "succeeded"),
            ("lint", "succeeded"),
            ("unit", "succeeded"),
            ("typecheck", "succeeded"),
            // `critical: false`: its failure is recorded, and does not stop `gate`.
            ("docs", "skipped"),
            ("integration", "failed"),
            ("security", "failed"),
            // `skip_dependents`: never ran.
            ("sbom", "skipped"),
            ("gate", "succeeded"),
            ("merge", "succeeded"),
            // `integration` failed with `continue`: its dependent still ran.
            ("notify", "succeeded"),
        ]
    );
    assert_eq!(command(&m, "checkout")["title"], "Check out");
    assert_eq!(command(&m, "docs")["exit_code"], 3);
    let docs_error = crate::harness::read_json(
        &env.path().join(
            command(&m, "docs")["error_file"]
                .as_str()
                .expect("error file"),
        ),
    );
    assert_eq!(docs_error["reason"], "command-allow-failure");
    // The timed-out step: both attempts, each stopped at its own `timeout_sec`.
    let integration = command(&m, "integration");
    assert_eq!(integration["attempts"], 2, "{integration}");
    assert_eq!(integration["timeout_ms"], 300);
    assert_eq!(integration["outcome"], "timed_out", "{integration}");
    // The others fall back to `globals.default_timeout_sec`.
    assert_eq!(command(&m, "checkout")["timeout_ms"], 30_000);
    assert_eq!(command(&m, "security")["exit_code"], 4);
    assert!(command(&m, "sbom")["summary"]
        .as_str()
        .expect("summary")
        .contains("dependency `security` failed"));
    assert!(!env.path().join("sbom.json").exists());
    // Fan-in and fan-out as declared.
    assert_eq!(
        command(&m, "gate")["depends_on"],
        serde_json::json!(["lint", "unit", "typecheck", "docs"])
    );
    assert_eq!(
        command(&m, "lint")["depends_on"],
        serde_json::json!(["checkout"])
    );
    // `${BRANCH}` reached each program as one argument, quotes and spaces intact.
    assert_eq!(
        std::fs::read_to_string(env.path().join("branch.txt")).expect("branch.txt"),
        branch
    );
    assert_eq!(
        command(&m, "notify")["summary"],
        format!("notified {branch}")
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("merged.txt")).expect("merged"),
        "merged"
    );
    // The step's argv is in its log as handed over; the record shows it as `sh` would read it.
    let begin = read_lines(
        &env.path()
            .join(command(&m, "notify")["log_path"].as_str().expect("log")),
    )
    .into_iter()
    .find(|e| e["type"] == "exec:begin")
    .expect("exec:begin");
    assert_eq!(begin["command"], "printf");
    assert_eq!(begin["args"], serde_json::json!(["notified %s\n", branch]));
    assert_eq!(
        command(&m, "notify")["command"],
        r#"printf 'notified %s
' 'feature/it'\''s "quoted" two words'"#
    );
    assert_eq!(m["variables"]["BRANCH"], branch);
}

/// `run-plan` on `plan`: exit 2, one `error:` line, nothing on stdout, nothing under `.runs`.
fn rejected(plan: &str, args: &[&str]) -> String {
    let env = with_plan(plan);
    let mut all = vec!["run-plan", "plan.json"];
    all.extend_from_slice(args);
    let out = env.cli(&all);
    assert_eq!(
        out.code, 2,
        "{plan}\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        !env.runs_exists(),
        "nothing may be written under .runs: {plan}"
    );
    assert!(out.stdout.is_empty(), "stdout stays empty: {}", out.stdout);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{}", out.stderr);
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "only the error line:\n{}",
        out.stderr
    );
    env.redact(errors[0])
        .replace("error: `[TMP]/plan.json`", "E")
}

#[test]
fn every_invalid_plan_is_refused_with_one_line_and_nothing_written() {
    let step = |extra: &str| {
        format!(r#"{{"plan_id":"p","steps":[{{"id":"a","command":"true"{extra}}}]}}"#)
    };
    let table: Vec<(String, &str)> = vec![
        ("{\"plan_id\": \"p\",}".into(), "E:1:17: invalid JSON: trailing comma"),
        ("[]".into(), "E: top level: expected an object, found an array"),
        (r#"{"steps":[]}"#.into(), "E: field `plan_id`: missing (every plan needs an id)"),
        (r#"{"plan_id":"p","stepz":[]}"#.into(), "E: field `stepz`: unknown field (did you mean `steps`?)"),
        (r#"{"plan_id":"p"}"#.into(), "E: plan `p`, field `steps`: missing (a plan needs at least one step)"),
        (r#"{"plan_id":"p","steps":[]}"#.into(), "E: plan `p`, field `steps`: empty (a plan needs at least one step)"),
        (r#"{"plan_id":"p","version":[1],"steps":[]}"#.into(), "E: plan `p`, field `version`: expected a string or a number, found an array"),
        (r#"{"plan_id":"p","globals":{"max_concurency":2},"steps":[]}"#.into(), "E: plan `p`, field `globals.max_concurency`: unknown field (did you mean `max_concurrency`?)"),
        (r#"{"plan_id":"p","globals":{"max_concurrency":0},"steps":[]}"#.into(), "E: plan `p`, field `globals.max_concurrency`: expected an integer >= 1, found 0"),
        (r#"{"plan_id":"p","globals":{"default_timeout_sec":-1},"steps":[]}"#.into(), "E: plan `p`, field `globals.default_timeout_sec`: expected a number of seconds > 0, found -1"),
        (r#"{"plan_id":"p","steps":[{"command":"true"}]}"#.into(), "E: plan `p`, step `#1`, field `id`: missing (every step needs an id)"),
        (r#"{"plan_id":"p","steps":[{"id":"a"}]}"#.into(), "E: plan `p`, step `a`, field `command`: missing (a step needs the program to run)"),
        (step(r#","command":"""#).replace(r#""command":"true","#, ""), "E: plan `p`, step `a`, field `command`: must not be empty (a step needs the program to run)"),
        (step(r#","depend_on":["b"]"#), "E: plan `p`, step `a`, field `depend_on`: unknown field (did you mean `depends_on`?)"),
        (step(r#","depends_on":["b"]"#), "E: plan `p`, step `a`, field `depends_on`: depends on `b`, which is not a step of this plan"),
        (step(r#","depends_on":["a"]"#), "E: plan `p`, step `a`, field `depends_on`: a step cannot depend on itself"),
        (step(r#","depends_on":"b""#), "E: plan `p`, step `a`, field `depends_on`: expected an array of step ids, found a string"),
        (r#"{"plan_id":"p","steps":[{"id":"a","command":"true","depends_on":["c"]},{"id":"b","command":"true","depends_on":["a"]},{"id":"c","command":"true","depends_on":["b"]}]}"#.into(),
            "E: plan `p`, step `a`, field `depends_on`: steps depend on each other in a cycle: a -> c -> b -> a"),
        (r#"{"plan_id":"p","steps":[{"id":"a","command":"true"},{"id":"a","command":"true"}]}"#.into(), "E: plan `p`, step `a`, field `id`: duplicate step id (ids must be unique in a plan)"),
        (r#"{"plan_id":"p","steps":[{"id":"build","command":"true"},{"id":"b","command":"true","depends_on":["buld"]}]}"#.into(),
            "E: plan `p`, step `b`, field `depends_on`: depends on `buld`, which is not a step of this plan; did you mean `build`?"),
        (step(r#","on_failure":"skip-dependents""#), "E: plan `p`, step `a`, field `on_failure`: `skip-dependents` is not one of: abort, skip_dependents, continue; did you mean `skip_dependents`?"),
        (step(r#","on_failure":"skip_dependents","critical":false"#), "E: plan `p`, step `a`, field `on_failure`: `skip_dependents` has no effect on a step with `critical: false` (its failure does not count, so its dependents run); drop one of the two"),
        (step(r#","critical":"no""#), "E: plan `p`, step `a`, field `critical`: expected true or false, found a string"),
        (step(r#","timeout_sec":"5""#), "E: plan `p`, step `a`, field `timeout_sec`: expected a number of seconds > 0, found a string"),
        (step(r#","timeout_sec":0"#), "E: plan `p`, step `a`, field `timeout_sec`: expected a number of seconds > 0, found 0"),
        (step(r#","retries":-1"#), "E: plan `p`, step `a`, field `retries`: expected an integer >= 0, found -1"),
        (step(r#","retries":1.5"#), "E: plan `p`, step `a`, field `retries`: expected an integer >= 0, found 1.5"),
        (step(r#","retry_delay_sec":true"#), "E: plan `p`, step `a`, field `retry_delay_sec`: expected a number of seconds >= 0, found a boolean"),
        (step(r#","args":"-v""#), "E: plan `p`, step `a`, field `args`: expected an array of strings, found a string"),
        (step(r#","args":["ok",{}]"#), "E: plan `p`, step `a`, field `args[1]`: expected a string, found an object"),
        (step(r#","args":["${NOT_DEFINED_ANYWHERE}"]"#), "E: plan `p`, step `a`, field `args[0]`: undefined variable `${NOT_DEFINED_ANYWHERE}` (pass --var NOT_DEFINED_ANYWHERE=VALUE or set it in the environment)"),
        (step(r#","cwd":"out/${NOPE}""#), "E: plan `p`, step `a`, field `cwd`: undefined variable `${NOPE}` (pass --var NOPE=VALUE or set it in the environment)"),
        (step(r#","args":["${UNCLOSED"]"#), "E: plan `p`, step `a`, field `args[0]`: unterminated `${` (a variable is `${NAME}`)"),
        (step(r#","env":{"A":1}"#), "E: plan `p`, step `a`, field `env.A`: expected a string, found a number"),
        (step(r#","env":{"A=B":"x"}"#), "E: plan `p`, step `a`, field `env.A=B`: `=` cannot be part of an environment variable's name"),
        (step(r#","args":["a\u0000b"]"#), "E: plan `p`, step `a`, field `args[0]`: contains a NUL byte, which no command, path or environment can hold"),
    ];
    for (plan, want) in &table {
        assert_eq!(&rejected(plan, &[]), want, "plan: {plan}");
    }
    // `--var` itself: a bad name is a usage error before the plan is read.
    let bad_var = rejected(&step(""), &["--var", "1X=y"]);
    assert!(
        bad_var.contains("`1X` is not a valid variable name"),
        "{bad_var}"
    );
}

#[test]
fn a_var_with_spaces_and_quotes_reaches_the_program_as_one_argument() {
    // What a shell would split, expand or run, if one ever saw the value.
    let value = r#"two words "double" 'single' $(touch injected) `touch injected2`; touch injected3 && echo $HOME"#;
    let env = with_plan(
        r#"{"plan_id":"argv","steps":[
          {"id":"count","command":"sh",
           "args":["-c","printf '%s' \"$#\" > count.txt; printf '%s' \"$1\" > value.txt","sh","${V}"]},
          {"id":"echo","command":"printf","args":["<%s>","${V}"],"depends_on":["count"]}
        ]}"#,
    );
    let out = env.cli([
        "run-plan",
        "plan.json",
        "--var",
        &format!("V={value}"),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(env.path().join(f)).expect(f);
    assert_eq!(read("count.txt"), "1");
    assert_eq!(read("value.txt"), value);
    for f in ["injected", "injected2", "injected3"] {
        assert!(
            !env.path().join(f).exists(),
            "{f} was created: a shell saw the value"
        );
    }
    let m = env.manifest(&out.run_id());
    assert_eq!(command(&m, "echo")["summary"], format!("<{value}>"));
    // The environment is the second source; `--var` wins over it.
    let env2 = with_plan(r#"{"plan_id":"e","steps":[{"id":"a","command":"sh","args":["-c","printf '%s' \"$1\" > v.txt","sh","${FROM_ENV}/${BOTH}"]}]}"#)
        .env("FROM_ENV", "env value")
        .env("BOTH", "from env");
    let out = env2.cli(["run-plan", "plan.json", "--var", "BOTH=from var"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(env2.path().join("v.txt")).expect("v.txt"),
        "env value/from var"
    );
}

#[test]
fn a_program_that_does_not_exist_fails_its_step_like_a_spawn_failure() {
    let env = with_plan(
        r#"{"plan_id":"p","steps":[{"id":"a","command":"./no-such-program","args":["x"]}]}"#,
    );
    let out = env.cli(["run-plan", "plan.json", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(command(&m, "a")["status"], "failed");
    let summary = command(&m, "a")["summary"]
        .as_str()
        .expect("summary")
        .to_owned();
    assert!(summary.contains("./no-such-program"), "{summary}");
}

#[test]
fn plan_file_shows_the_graph_and_writes_nothing() {
    let env = with_plan(SAFE_MERGE);
    let out = env.cli([
        "plan",
        "--file",
        "plan.json",
        "--var",
        "BRANCH=main",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!env.runs_exists());
    let p = out.json();
    assert_eq!(p["pipeline"]["id"], "safe-merge");
    assert_eq!(p["pipeline"]["source"], "plan-file");
    assert_eq!(p["graph"]["concurrency"], 4);
    let stages = p["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 11);
    let notify = &stages[10];
    assert_eq!(
        notify["argv"],
        serde_json::json!(["printf", "notified %s\n", "main"])
    );
    assert_eq!(
        notify["dependsOn"],
        serde_json::json!(["integration", "merge"])
    );
    assert_eq!(stages[5]["timeoutMs"], 300);
    assert_eq!(stages[5]["retries"], 1);
    assert_eq!(stages[5]["onFailure"], "continue");
    assert_eq!(stages[4]["allowFailure"], true);
    // Undefined variables are refused here too.
    let out = env.cli(["plan", "--file", "plan.json"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("undefined variable `${BRANCH}`"),
        "{}",
        out.stderr
    );
}

#[test]
fn resume_of_a_plan_run_reads_the_plan_again_with_the_recorded_vars() {
    let env = with_plan(
        r#"{"plan_id":"r","steps":[
          {"id":"a","command":"sh","args":["-c","echo \"$1\" >> a.log","sh","${WHO}"]},
          {"id":"b","command":"sh","args":["-c","test -f ok && printf '%s' \"$1\" > b.txt","sh","${WHO}"],"depends_on":["a"]}
        ]}"#,
    );
    let out = env.cli([
        "run-plan",
        "plan.json",
        "--var",
        "WHO=first run",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    std::fs::write(env.path().join("ok"), "").expect("ok");
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `a` is not run again; `b` ran with the value recorded at the start.
    let read = |f: &str| std::fs::read_to_string(env.path().join(f)).expect(f);
    assert_eq!(read("a.log"), "first run\n");
    assert_eq!(read("b.txt"), "first run");
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["variables"]["WHO"], "first run");
}

#[test]
fn a_config_stage_with_args_runs_argv_without_a_shell() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"sh","args":["-c","printf '%s' \"$1\" > out.txt","sh","$(touch injected) ${HOME}"]}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(env.path().join("out.txt")).expect("out.txt"),
        "$(touch injected) ${HOME}"
    );
    assert!(!env.path().join("injected").exists());
    let bad = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"x","args":[1]}]}]}"#,
    );
    let out = bad.start("p", &[]);
    assert_eq!(out.code, 2);
    assert!(
        bad.redact(&out.stderr).contains(
            "pipeline `p`, stage `a`, field `args[0]`: expected a string, found a number"
        ),
        "{}",
        out.stderr
    );
    assert!(!bad.runs_exists());
}

/// `run-plan` takes `start`'s selection, fail-fast and dry-run flags (the issue: "the start
/// flags that apply"): step ids are stage ids, the record says what was selected, and
/// `--dry-run` shows the steps' argv and writes nothing.
#[test]
fn run_plan_takes_the_selection_fail_fast_and_dry_run_flags_of_start() {
    let env = with_plan(
        r#"{"plan_id":"sel","steps":[
          {"id":"a","command":"touch","args":["ran-a"]},
          {"id":"b","command":"touch","args":["ran-b"],"depends_on":["a"]},
          {"id":"c","command":"touch","args":["ran-c"],"depends_on":["a"]},
          {"id":"d","command":"sh","args":["-c","touch ran-d; exit 1"],"on_failure":"continue"},
          {"id":"e","command":"touch","args":["ran-e"],"depends_on":["d"]}
        ]}"#,
    );
    let ran = |env: &TestEnv| -> Vec<&str> {
        ["a", "b", "c", "d", "e"]
            .into_iter()
            .filter(|id| env.path().join(format!("ran-{id}")).exists())
            .collect()
    };
    let clean = |env: &TestEnv| {
        for id in ["a", "b", "c", "d", "e"] {
            let _ = std::fs::remove_file(env.path().join(format!("ran-{id}")));
        }
    };

    // --dry-run: the steps as they would start, nothing run, nothing written.
    let out = env.cli(["run-plan", "plan.json", "--dry-run", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!env.runs_exists(), "a dry run writes nothing");
    assert!(ran(&env).is_empty());
    let view = out.json();
    assert_eq!(view["dry_run"], true);
    assert_eq!(view["pipeline"], "sel");
    let text = out.stdout.clone();
    assert!(text.contains("ran-b"), "{text}");

    // --only b: b and what it needs; the others are skipped as not selected.
    let out = env.cli(["run-plan", "plan.json", "--only", "b", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ran(&env), ["a", "b"]);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["selection"]["only"], serde_json::json!(["b"]));
    assert_eq!(command(&m, "c")["status"], "skipped");
    assert_eq!(
        command(&m, "c")["summary"],
        "Skipped: not selected (--only b)"
    );
    clean(&env);

    // --skip a: never run; its dependents still run.
    let out = env.cli(["run-plan", "plan.json", "--skip", "a,d", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(ran(&env), ["b", "c", "e"]);
    clean(&env);

    // --fail-fast: d's `continue` becomes `abort` for this run, so e never runs.
    let out = env.cli([
        "run-plan",
        "plan.json",
        "--only",
        "d,e",
        "--fail-fast",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(ran(&env), ["d"]);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["fail_fast"], true);
    // Nothing new starts after the failure: `e` is never started (not run).
    assert_eq!(command(&m, "e")["status"], "pending");
    clean(&env);

    // Without it, `continue` lets e run (the run still fails).
    let out = env.cli(["run-plan", "plan.json", "--only", "d,e", "--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(ran(&env), ["d", "e"]);

    // An unknown step id in a selection is a usage error naming it; no run is written.
    let before = crate::harness::run_dirs(&env.path().join(".runs")).len();
    let out = env.cli(["run-plan", "plan.json", "--only", "nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
    assert_eq!(
        crate::harness::run_dirs(&env.path().join(".runs")).len(),
        before
    );
}
