//! A plan patch that carries a secret value (the stage's shell expands `$TOKEN` into the
//! patch it writes): the runner writes it masked everywhere (`plan_patches`, the added stage's
//! record, events, logs, `plan --last`, `status`), the added stage runs with the real value,
//! and `resume` replays the real patch from the file the stage wrote, or refuses (exit 3) when
//! that file is gone or no longer matches the record: a masked command is never run.

use std::path::PathBuf;

use serde_json::json;

use crate::harness::{stage_statuses, TestEnv};

const VALUE: &str = "s3cr3tvalue123";

/// `plan` writes a patch adding `use`, which waits for `go` and then writes the value it was
/// given to `used.out` (in the repository, outside `.runs`). With `secret`, `TOKEN` is secret.
fn config(secret: bool) -> String {
    let write = r#"printf '{"stages":[{"kind":"command","id":"use","command":"while [ ! -f go ]; do sleep 0.05; done; printf %%s %s > used.out"}]}' "$TOKEN" > "$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH""#;
    let mut c = json!({"pipelines": [{"id": "p", "stages": [
        {"kind": "command", "id": "plan", "command": write}
    ]}]});
    if secret {
        c["secrets"] = json!(["TOKEN"]);
    }
    c.to_string()
}

/// The files under `.runs` holding the value, but the patch file the stage itself wrote.
fn leaks(env: &TestEnv) -> Vec<PathBuf> {
    crate::harness::files_under(&env.path().join(".runs"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".patch.json"))
        .filter(|p| {
            let bytes = std::fs::read(p).expect("read");
            bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes())
        })
        .collect()
}

/// kill -9 of the runner while `use` runs, then `go` (the orphaned shell ends; its output is
/// removed so only a resumed stage can write `used.out`).
fn kill_while_use_runs(env: &TestEnv) -> String {
    let mut child = env
        .command(["start", "p", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let id = crate::harness::wait_for_running_stage(env, "use");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    std::fs::write(env.path().join("go"), "").expect("go");
    let used = env.path().join("used.out");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !used.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(&used).expect("remove used.out");
    id
}

#[test]
fn a_secret_in_a_plan_patch_is_written_masked_and_the_stage_gets_the_value() {
    let env = TestEnv::new().config(&config(true)).env("TOKEN", VALUE);
    std::fs::write(env.path().join("go"), "").expect("go");
    let out = env.cli(["start", "p", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = env.only_run_id();
    assert_eq!(
        std::fs::read_to_string(env.path().join("used.out")).expect("used.out"),
        VALUE
    );
    let m = env.manifest(&id);
    let patch = &m["plan_patches"][0];
    assert_eq!(patch["masked"], true, "{patch}");
    let recorded = patch["stages"][0]["command"].as_str().expect("command");
    assert!(recorded.ends_with("printf %s *** > used.out"), "{recorded}");
    assert!(m["commands"][1]["command"]
        .as_str()
        .expect("command")
        .contains("***"));
    assert!(!out.stdout.contains(VALUE) && !out.stderr.contains(VALUE));
    // Manifest, sidecar, events, logs: nothing the runner wrote holds the value.
    assert_eq!(leaks(&env), Vec::<PathBuf>::new());
    // Those that show the added stage's command show it masked.
    for (args, commands) in [
        (vec!["plan", "--last"], true),
        (vec!["plan", "--last", "--format", "json"], true),
        (vec!["plan", "--run", &id], true),
        (vec!["status", "--run", &id], false),
        (vec!["status", "--run", &id, "--format", "json"], true),
    ] {
        let shown = env.cli(&args);
        assert_eq!(shown.code, 0, "{args:?}: {}", shown.stderr);
        assert_eq!(
            shown.stdout.contains("***"),
            commands,
            "{args:?}: {}",
            shown.stdout
        );
        assert!(
            !shown.stdout.contains(VALUE) && !shown.stderr.contains(VALUE),
            "{args:?}: {}",
            shown.stdout
        );
    }
}

#[test]
fn kill_9_after_a_secret_patch_then_resume_runs_the_real_command_from_the_patch_file() {
    let env = TestEnv::new().config(&config(true)).env("TOKEN", VALUE);
    let id = kill_while_use_runs(&env);
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        stage_statuses(&env.manifest(&id)),
        [("plan", "succeeded"), ("use", "succeeded")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .to_vec()
    );
    // The real value, not `***`: the patch came from the stage's file.
    assert_eq!(
        std::fs::read_to_string(env.path().join("used.out")).expect("used.out"),
        VALUE
    );
    assert_eq!(leaks(&env), Vec::<PathBuf>::new());
}

#[test]
fn resume_refuses_a_masked_patch_whose_file_is_gone_or_differs() {
    let env = TestEnv::new().config(&config(true)).env("TOKEN", VALUE);
    let id = kill_while_use_runs(&env);
    let file = ".runs/0101/cli/".to_owned() + &id + "/commands/01-plan.patch.json";
    // Another value than the run's: masking the file no longer gives the record.
    let other = env
        .command(["resume", "--run", &id])
        .env("TOKEN", "another-value")
        .output();
    let other = other.expect("resume");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("differs from the record"), "{stderr}");
    std::fs::remove_file(env.path().join(&file)).expect("remove the patch file");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let line = out.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    for part in [
        id.as_str(),
        "stage `plan`",
        file.as_str(),
        "is missing",
        "never replayed",
    ] {
        assert!(line.contains(part), "`{part}` not in: {line}");
    }
    // Nothing ran: no `used.out` (the masked command would have written `***` to it).
    assert!(!env.path().join("used.out").exists());
    assert_ne!(env.manifest(&id)["commands"][1]["status"], "succeeded");
}

#[test]
fn a_patch_without_secrets_replays_from_the_record_when_its_file_is_gone() {
    let env = TestEnv::new().config(&config(false)).env("TOKEN", "plain");
    let id = kill_while_use_runs(&env);
    assert!(env.manifest(&id)["plan_patches"][0].get("masked").is_none());
    let file = env.run_dir(&id).join("commands/01-plan.patch.json");
    std::fs::remove_file(file).expect("remove the patch file");
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(env.path().join("used.out")).expect("used.out"),
        "plain"
    );
}
