//! Shell tooling: completions for every shell (and bash accepts its script), the man page,
//! help texts that name the environment each verb reads.

use serde_json::Value;

use crate::harness::TestEnv;

#[test]
fn completions_for_each_shell() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env.cli(["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        // Generated from the parser's own types: every verb is there.
        for verb in ["start", "status", "resume", "logs", "completions"] {
            assert!(out.stdout.contains(verb), "{shell}: no `{verb}`");
        }
        assert!(out.stdout.contains("codex-orchestrator"), "{shell}");
    }
    // bash parses its script.
    let script = env.path().join("co.bash");
    std::fs::write(&script, env.cli(["completions", "bash"]).stdout).expect("write");
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // And it completes, as bash calls it: verbs, a verb's options, a nested verb's options
    // (clap-rs/clap#6421 broke every verb's options for a binary name with a hyphen).
    let complete = |words: &[&str]| -> Vec<String> {
        let cword = words.len() - 1;
        let probe = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _codex__orchestrator codex-orchestrator '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.join(" "),
            words[cword],
            words[cword - 1],
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&probe)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert!(complete(&["codex-orchestrator", "sta"]).contains(&"start".to_owned()));
    let start = complete(&["codex-orchestrator", "start", "--fai"]);
    assert!(start.contains(&"--fail-fast".to_owned()), "{start:?}");
    let patch = complete(&["codex-orchestrator", "plan-patch", "--fi"]);
    assert_eq!(patch, ["--file"], "{patch:?}");
    let runs = complete(&["codex-orchestrator", "runs", "list", "--for"]);
    assert!(runs.contains(&"--format".to_owned()), "{runs:?}");
    let bad = env.cli(["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
}

#[test]
fn man_page_and_help() {
    let env = TestEnv::new();
    let man = env.cli(["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(
        man.stdout.starts_with(".ie \\n(.g .ds Aq")
            || man.stdout.contains(".TH codex-orchestrator"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("logs"));
    let help = env.cli(["--help"]);
    assert!(
        help.stdout.contains("crash-safe record of every run"),
        "{}",
        help.stdout
    );
    let start = env.cli(["start", "--help"]);
    for var in [
        "Environment:",
        "CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS",
        "CODEX_ORCHESTRATOR_FAILURE_OUTPUT",
        "MCP_RUNNER_TASK_ID",
        "--failure-output",
    ] {
        assert!(
            start.stdout.contains(var),
            "start --help lacks {var}:\n{}",
            start.stdout
        );
    }
    let status = env.cli(["status", "--help"]);
    assert!(
        status.stdout.contains("CODEX_ORCHESTRATOR_RUNS_DIR"),
        "{}",
        status.stdout
    );
}

/// `--format`'s help says where each verb's text goes, and the verbs do what it says.
#[test]
fn format_help_is_true_per_verb() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#,
    );
    assert_eq!(env.start("p", &[]).code, 0);
    for (verb, says) in [
        (vec!["list"], "text on stdout, or one JSON object"),
        (vec!["status"], "text or one JSON object, on stdout"),
        (vec!["plan"], "text or one JSON object, on stdout"),
        (vec!["runs", "list"], "text or one JSON object, on stdout"),
        (
            vec!["approve"],
            "text on stderr, or one JSON object on stdout",
        ),
        (vec!["start"], "progress on stderr"),
    ] {
        let mut args = verb.clone();
        args.push("--help");
        let help = env.cli(&args);
        assert_eq!(help.code, 0, "{}", help.stderr);
        let flat = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(says), "{verb:?} --help:\n{}", help.stdout);
        assert!(!flat.contains("Human text on stderr"), "{}", help.stdout);
    }
    for args in [
        vec!["list"],
        vec!["status", "--last"],
        vec!["plan", "p"],
        vec!["runs", "list"],
    ] {
        let run = env.cli(&args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(!run.stdout.is_empty(), "{args:?}: text on stdout");
        assert!(run.stderr.is_empty(), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn an_invalid_log_filter_is_an_error_and_verbose_says_what_was_resolved() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#,
    );
    let bad = env
        .command(["plan", "p"])
        .env("CODEX_ORCHESTRATOR_LOG", "=[")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("error: CODEX_ORCHESTRATOR_LOG `=[` is not a valid filter"),
        "{err}"
    );
    let v = env.cli(["-v", "plan", "p"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(v.stderr.contains("config chosen"), "{}", v.stderr);
    let vv = env.cli(["-vv", "start", "p"]);
    assert!(
        vv.stderr.contains("resolved the repo root"),
        "{}",
        vv.stderr
    );
    // `-vv` shows every manifest write with the number of updates it carried.
    let writes: Vec<&str> = vv
        .stderr
        .lines()
        .filter(|l| l.contains("manifest written"))
        .collect();
    assert!(!writes.is_empty(), "{}", vv.stderr);
    let carried: u64 = writes
        .iter()
        .map(|l| {
            let n = l.split("updates=").nth(1).expect("updates=");
            let n: String = n.chars().take_while(char::is_ascii_digit).collect();
            n.parse::<u64>().expect("a count")
        })
        .sum();
    assert!(carried >= writes.len() as u64, "{}", vv.stderr);
    let v1 = env.cli(["-v", "start", "p"]);
    assert!(!v1.stderr.contains("manifest written"), "{}", v1.stderr);
}

#[test]
fn list_shows_pipelines_and_stages() {
    let env = TestEnv::new().config(
        r#"{"defaultPipeline":"ci","pipelines":[
        {"id":"ci","title":"CI","stages":[
          {"kind":"command","id":"build","command":"make\nmake install"},
          {"kind":"subpipeline","id":"more","pipeline":"docs"}]},
        {"id":"docs","title":"Docs","stages":[{"kind":"command","id":"d","command":"true"}]}]}"#,
    );
    let text = env.cli(["list"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!(text.stdout, @r"
    ci — CI (default)
      [01] build — make
      [02] more — runs pipeline `docs`
    docs — Docs
      [01] d — true
    ");
    let json = env.cli(["list", "--format", "json"]).json();
    assert_eq!(json["default_pipeline"], "ci");
    assert_eq!(json["pipelines"][0]["stages"][1]["pipeline"], "docs");
    assert_eq!(json["pipelines"][1]["default"], false);
}

/// Every ```json block of the README: a config (it has `pipelines`) passes `plan --strict` for
/// each of its pipelines, a plan file (it has `plan_id`) passes `plan --file`; anything else
/// at least parses.
#[test]
fn the_readme_json_examples_are_valid() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let mut blocks = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("a closed block");
        blocks.push(&body[..end]);
        rest = &body[end..];
    }
    assert!(!blocks.is_empty(), "the README has a config example");
    for block in blocks {
        let v: serde_json::Value =
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}:\n{block}"));
        if v["plan_id"].is_string() {
            // A plan file (its example uses `${BRANCH}`).
            let env = TestEnv::new();
            std::fs::write(env.path().join("plan.json"), block).expect("write plan");
            let out = env.cli(["plan", "--file", "plan.json", "--var", "BRANCH=main"]);
            assert_eq!(out.code, 0, "README plan: {}", out.stderr);
            continue;
        }
        if v["kind"] == "loop" {
            // A loop stage of a pipeline: checked inside one, with the pipeline it verifies.
            let verify = v["verify"].as_str().expect("verify");
            let config = serde_json::json!({"pipelines": [
                {"id": "p", "stages": [v]},
                {"id": verify, "stages": [{"kind": "command", "id": "t", "command": "true"}]},
            ]});
            let env = TestEnv::new().config(&config.to_string());
            let out = env.cli(["plan", "p", "--strict"]);
            assert_eq!(out.code, 0, "README loop stage: {}", out.stderr);
            continue;
        }
        if v["stages"].is_array() && v.get("pipelines").is_none() {
            // A plan patch: a planner stage hands it to the runner, which must accept it whole
            // (the added stages' own commands may fail here: no Makefile).
            let env = TestEnv::new().config(
                r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"plan",
                  "command":"cp patch.json \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\""}]}]}"#,
            );
            std::fs::write(env.path().join("patch.json"), block).expect("write patch");
            let out = env.start("p", &[]);
            let m = env.manifest(&out.run_id());
            let added = &m["plan_patches"][0]["stage_ids"];
            let expected: Vec<&Value> = v["stages"]
                .as_array()
                .expect("stages")
                .iter()
                .map(|s| &s["id"])
                .collect();
            assert_eq!(
                added.as_array().map(|a| a.iter().collect::<Vec<_>>()),
                Some(expected),
                "README plan patch: {}",
                out.stderr
            );
            continue;
        }
        let Some(pipelines) = v["pipelines"].as_array() else {
            panic!("a README JSON block this test does not know how to check:\n{block}");
        };
        let env = TestEnv::new().config(block);
        for p in pipelines {
            let id = p["id"].as_str().expect("id");
            let out = env.cli(["plan", id, "--strict"]);
            assert_eq!(out.code, 0, "README pipeline `{id}`: {}", out.stderr);
        }
    }
}
