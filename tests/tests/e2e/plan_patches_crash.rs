//! A planner's patch and its own end reach the manifest in one write: the runner killed
//! (SIGKILL, injected by `strace -e inject=rename:signal=KILL:when=N`, as in
//! `crash_points.rs`) at each manifest rename of a run whose planner adds a stage never
//! leaves the patch recorded with the planner still `running`, so `resume` never runs the
//! planner again for a patch it already recorded.

use serde_json::json;

use crate::crash::{have_strace, manifests};
use crate::harness::TestEnv;

/// `plan` counts its runs in `planner.count` and adds `added`.
fn config() -> String {
    let patch = json!({"stages": [
        {"kind": "command", "id": "added", "command": "echo added > added.out"}
    ]});
    let write = format!(
        "echo run >> planner.count; printf '%s' '{}' > \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\"",
        patch.to_string().replace('\'', "'\\''")
    );
    json!({"pipelines": [{"id": "p", "stages": [
        {"kind": "command", "id": "plan", "command": write}
    ]}]})
    .to_string()
}

fn planner_runs(env: &TestEnv) -> usize {
    std::fs::read_to_string(env.path().join("planner.count"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_kill_at_any_manifest_rename_never_leaves_a_patch_whose_planner_runs_again() {
    if !have_strace() {
        return;
    }
    // Kill points at which the record held the patch: the case the one write is for.
    let mut patched_kills = 0;
    for n in 1..=12 {
        let env = TestEnv::new().config(&config());
        let inject = format!("inject=rename:signal=KILL:when={n}");
        let out = env.start_under_strace(&[
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=rename",
            "-e",
            &inject,
        ]);
        let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9)
            || out.status.code() == Some(128 + 9);
        if !killed || manifests(&env).is_empty() {
            continue;
        }
        let id = env.only_run_id();
        let m = env.manifest(&id);
        let patched = m["plan_patches"].as_array().is_some_and(|p| !p.is_empty());
        if patched {
            patched_kills += 1;
            assert_eq!(
                m["commands"][0]["status"], "succeeded",
                "when={n}: the patch is recorded but not its planner's end: {m:#}"
            );
        }
        let resumed = env.cli(["resume", "--run", &id, "--format", "json"]);
        assert_eq!(resumed.code, 0, "when={n}: {}", resumed.stderr);
        let m = env.manifest(&id);
        let s = |a: &str| (a.to_owned(), "succeeded".to_owned());
        assert_eq!(
            crate::harness::stage_statuses(&m),
            vec![s("plan"), s("added")],
            "when={n}"
        );
        if patched {
            assert_eq!(planner_runs(&env), 1, "when={n}: the planner ran again");
        }
        assert_eq!(
            m["plan_patches"].as_array().map(Vec::len),
            Some(1),
            "when={n}"
        );
    }
    assert!(patched_kills > 0, "no kill point had the patch recorded");
}
