//! The `loop` stage end to end, with real git in temp repositories: a build that fixes a file
//! only when the feedback names the failure, the iteration and wall-clock budgets, a stall, a
//! failing build fed back, a cancel in the middle of a verify run, and the checks made before
//! anything runs.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::gitrepo::{self, lines};
use crate::harness::{
    assert_valid_manifest, assert_valid_record_files, read_json, read_lines, TestEnv,
};

/// A build that records each iteration, and fixes `value.txt` only when the feedback file
/// (JSON, and its Markdown twin) names the failed gate and its message.
const BUILD: &str = r#"echo "build $CODEX_ORCHESTRATOR_ITERATION ${CODEX_ORCHESTRATOR_FEEDBACK_PATH:+with-feedback}" >> builds.log
if [ -n "$CODEX_ORCHESTRATOR_FEEDBACK_PATH" ] \
  && grep -q '"stage_id": "check"' "$CODEX_ORCHESTRATOR_FEEDBACK_PATH" \
  && grep -q 'value is broken' "$CODEX_ORCHESTRATOR_FEEDBACK_PATH" \
  && grep -q 'value is broken' "$CODEX_ORCHESTRATOR_FEEDBACK_MARKDOWN_PATH"; then
  echo fixed > value.txt
fi
"#;

/// The gate: passes once `value.txt` says `fixed`.
const CHECK: &str = r#"echo verify >> verifies.log
grep -q fixed value.txt && exit 0
echo "value is broken: $(cat value.txt)" >&2
echo "checked value.txt"
exit 1
"#;

fn config(loop_fields: &str) -> String {
    format!(
        r#"{{"pipelines":[
  {{"id":"p","stages":[{{"kind":"loop","id":"fix","title":"Fix it","build":{{"command":"sh build.sh"}},"verify":"gate"{loop_fields}}}]}},
  {{"id":"gate","stages":[{{"kind":"command","id":"check","title":"Value check","command":"sh check.sh"}}]}}]}}"#
    )
}

fn repo(loop_fields: &str, build: &str, check: &str) -> TestEnv {
    let env = TestEnv::new().config(&config(loop_fields));
    gitrepo::init(
        &env,
        &[
            ("build.sh", build),
            ("check.sh", check),
            ("value.txt", "broken\n"),
        ],
    );
    env
}

fn loop_record(env: &TestEnv, id: &str) -> Value {
    env.manifest(id)["commands"][0]["loop"].clone()
}

fn events(env: &TestEnv, id: &str) -> Vec<Value> {
    read_lines(&env.run_dir(id).join("events.jsonl"))
}

#[test]
fn the_build_fixes_the_file_from_the_feedback_and_passes_at_iteration_2() {
    let env = repo("", BUILD, CHECK);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.run_id();
    assert_eq!(
        lines(&env, "builds.log"),
        ["build 1 ", "build 2 with-feedback"]
    );
    assert_eq!(lines(&env, "value.txt"), ["fixed"]);
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_valid_record_files(&env.run_dir(&id));
    assert_eq!(m["status"], "succeeded");
    let c = &m["commands"][0];
    assert_eq!(c["status"], "succeeded");
    assert_eq!(c["kind"], "command", "the peer's schema knows no loop kind");
    assert_eq!(c["command"], "sh build.sh");
    let l = &c["loop"];
    assert_eq!(l["result"], "passed");
    assert_eq!(l["iteration"], 2);
    let its = l["iterations"].as_array().expect("iterations");
    assert_eq!(its.len(), 2);
    assert_eq!(its[0]["verify"]["verdict"], "failed");
    assert_eq!(its[0]["end"], "failed");
    assert_eq!(its[0]["changed"], true, "builds.log appeared");
    assert_eq!(its[0]["build"]["succeeded"], true);
    assert_eq!(its[1]["verify"]["verdict"], "passed");
    assert_eq!(its[1]["feedback"]["from_iteration"], 1);
    // Both snapshots of each iteration, the second diffed against the first.
    let after = &its[1]["after"];
    assert_eq!(after["kind"], "git");
    assert_eq!(after["diff"]["against"], its[1]["before"]["tree"]);
    let changed: Vec<&str> = after["diff"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert_eq!(changed, ["builds.log", "value.txt"]);
    // Every verify run is a child run of this one.
    let children = m["child_runs"].as_array().expect("child runs");
    let statuses: Vec<&str> = children
        .iter()
        .map(|r| r["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses, ["failed", "succeeded"]);
    assert_eq!(c["sub_run_id"], children[1]["run_id"]);
    // The feedback the second build read.
    let fb = read_json(
        &env.path()
            .join(its[1]["feedback"]["json"].as_str().expect("path")),
    );
    assert_eq!(fb["iteration"], 1);
    assert_eq!(fb["next_iteration"], 2);
    let gate = &fb["failed_gates"][0];
    assert_eq!(gate["stage_id"], "check");
    assert_eq!(gate["title"], "Value check");
    assert_eq!(gate["exit_code"], 1);
    assert_eq!(gate["stderr_tail"], "value is broken: broken\n");
    assert_eq!(gate["stdout_tail"], "checked value.txt\n");
    assert!(env
        .path()
        .join(gate["log_path"].as_str().expect("log"))
        .is_file());
    assert_eq!(fb["build"]["succeeded"], true);
    assert_eq!(fb["changes"]["files"][0]["path"], "builds.log");
    let md = std::fs::read_to_string(
        env.path()
            .join(its[1]["feedback"]["markdown"].as_str().expect("md")),
    )
    .expect("markdown twin");
    assert!(
        md.contains("### `check` — Value check (exit code 1)"),
        "{md}"
    );
    // Iteration events and progress.
    let ev = events(&env, &id);
    let progress: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "loop_phase_started")
        .map(|e| e["payload"]["progress"].as_str().expect("progress"))
        .collect();
    assert!(
        progress.contains(&"iteration 2/3: verifying"),
        "{progress:?}"
    );
    assert_eq!(
        progress.first(),
        Some(&"iteration 1/3: snapshot before the build")
    );
    let completed: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "loop_iteration_completed")
        .collect();
    assert_eq!(completed.len(), 2);
    assert_eq!(completed[0]["payload"]["verdict"], "failed");
    let done = ev
        .iter()
        .find(|e| e["event"] == "loop_completed")
        .expect("loop_completed");
    assert_eq!(done["payload"]["result"], "passed");
    assert!(
        out.stderr.contains("[01/01] fix: iteration 2/3: verifying"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_iteration_budget_runs_out_exhausted() {
    let env = repo(r#","maxIterations":2"#, "echo x >> builds.log\n", CHECK);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "stage:fix:loop-exhausted");
    assert_eq!(m["commands"][0]["outcome"], "loop-exhausted");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["result"], "exhausted");
    assert_eq!(l["iterations"].as_array().expect("its").len(), 2);
    assert_eq!(l["iterations"][1]["end"], "exhausted");
    assert_eq!(lines(&env, "verifies.log").len(), 2);
    assert_eq!(m["child_runs"].as_array().expect("children").len(), 2);
    // The last failure is fed back too (a resume would start the next round with it).
    assert_eq!(l["feedback"]["from_iteration"], 2);
}

#[test]
fn a_build_that_changes_nothing_stalls_the_loop() {
    let env = repo(r#","maxIterations":5"#, "true\n", CHECK);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status_detail"], "stage:fix:loop-stalled");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["result"], "stalled");
    // Iteration 1 is verified (nothing had failed yet); iteration 2 changed nothing after
    // that failure and stopped before verifying again.
    assert_eq!(l["iterations"].as_array().expect("its").len(), 2);
    assert_eq!(l["iterations"][1]["changed"], false);
    assert!(l["iterations"][1]["verify"].is_null());
    assert_eq!(lines(&env, "verifies.log").len(), 1);
    assert!(m["commands"][0]["summary"]
        .as_str()
        .expect("summary")
        .contains("changed nothing"));
    // With `stopWhenUnchanged: false` the same loop spends its budget instead.
    let env = repo(
        r#","maxIterations":3,"stopWhenUnchanged":false"#,
        "true\n",
        CHECK,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status_detail"], "stage:fix:loop-exhausted");
    assert_eq!(lines(&env, "verifies.log").len(), 3);
}

#[test]
fn the_wall_clock_budget_stops_a_build_and_a_verify_run() {
    // A build that would run for a minute.
    let env = repo(
        r#","maxWallClockMs":1500"#,
        "echo x >> builds.log; sleep 60\n",
        CHECK,
    );
    let started = Instant::now();
    let out = env.start("p", &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped at the budget"
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_valid_manifest(&m);
    assert_eq!(m["status_detail"], "stage:fix:loop-timeout");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["result"], "timeout");
    assert_eq!(l["phase"], "building");
    assert_eq!(l["max_wall_clock_ms"], 1500);
    // A verify run that would run for a minute: stopped alone, recorded failed.
    let env = repo(
        r#","maxWallClockMs":2500"#,
        "echo x >> builds.log\n",
        "sleep 60\n",
    );
    let started = Instant::now();
    let out = env.start("p", &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped at the budget"
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status_detail"], "stage:fix:loop-timeout");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["phase"], "verifying");
    let child = &m["child_runs"][0];
    assert_eq!(child["status"], "failed");
    let cm = env.manifest(child["run_id"].as_str().expect("child id"));
    assert_eq!(cm["status"], "failed");
    assert_eq!(cm["commands"][0]["outcome"], "cancelled");
}

#[test]
fn a_failing_build_is_fed_back_not_a_stop() {
    let build = r#"if [ "$CODEX_ORCHESTRATOR_ITERATION" = 1 ]; then
  echo "error: syntax error in value.txt" >&2; exit 3
fi
grep -q '"succeeded": false' "$CODEX_ORCHESTRATOR_FEEDBACK_PATH" \
  && grep -q 'syntax error in value.txt' "$CODEX_ORCHESTRATOR_FEEDBACK_PATH" \
  && echo fixed > value.txt
"#;
    let env = repo("", build, CHECK);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let l = loop_record(&env, &out.run_id());
    let first = &l["iterations"][0];
    assert_eq!(first["build"]["succeeded"], false);
    assert_eq!(first["build"]["exit_code"], 3);
    assert_eq!(first["changed"], false);
    assert_eq!(
        first["verify"]["verdict"], "failed",
        "verified all the same"
    );
    let fb = read_json(
        &env.path()
            .join(l["iterations"][1]["feedback"]["json"].as_str().expect("fb")),
    );
    assert_eq!(fb["build"]["exit_code"], 3);
    assert_eq!(
        fb["build"]["stderr_tail"],
        "error: syntax error in value.txt\n"
    );
    assert_eq!(l["result"], "passed");
}

#[test]
fn a_cancel_in_the_middle_of_a_verify_run_then_resume() {
    let ctl = tempfile::tempdir().expect("ctl");
    let hold = ctl.path().join("hold");
    let reached = ctl.path().join("in-verify");
    let check = format!(
        "echo verify >> verifies.log\nif [ -f {h} ]; then touch {r}; sleep 60; fi\n{CHECK}",
        h = hold.display(),
        r = reached.display()
    );
    let env = repo("", BUILD, &check);
    std::fs::write(&hold, "").expect("arm");
    let runner = gitrepo::spawn_start(&env, "p");
    gitrepo::wait_for(&reached);
    let id = gitrepo::top_run(&env, "p");
    // `status` from another terminal says where the loop is.
    let st = env.cli(["status", "--run", &id]);
    assert!(
        st.stdout.contains("iteration 1/3: verifying"),
        "{}",
        st.stdout
    );
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let out = runner.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(143));
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "cancelled");
    let c = &m["commands"][0];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["outcome"], "cancelled");
    assert_eq!(c["loop"]["phase"], "verifying");
    assert_eq!(c["loop"]["result"], "cancelled");
    let child_id = m["child_runs"][0]["run_id"]
        .as_str()
        .expect("child")
        .to_owned();
    assert_eq!(m["child_runs"][0]["status"], "cancelled");
    assert_eq!(env.manifest(&child_id)["status"], "cancelled");
    // Resumed: the same verify run goes on (not a new one), and the build is not repeated.
    std::fs::remove_file(&hold).expect("disarm");
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["iterations"][0]["verify"]["run_id"], child_id.as_str());
    assert_eq!(
        env.manifest(&child_id)["resume_events"]
            .as_array()
            .expect("events")
            .len(),
        1
    );
    assert_eq!(
        lines(&env, "builds.log"),
        ["build 1 ", "build 2 with-feedback"]
    );
}

/// `start` with `config`: exit 2, one error line, nothing written.
fn rejected(config: &str) -> String {
    let env = TestEnv::new().config(config);
    gitrepo::init(&env, &[]);
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!env.runs_exists(), "nothing written");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    env.redact(errors[0])
}

const GATE: &str = r#"{"id":"gate","stages":[{"kind":"command","id":"c","command":"true"}]}"#;

#[test]
fn bad_loops_and_deliveries_are_rejected_before_anything_runs() {
    let l = |fields: &str| {
        format!(
            r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"loop","id":"fix","build":"true"{fields}}}]}},{GATE}]}}"#
        )
    };
    insta::assert_snapshot!(rejected(&l(r#","verify":"nope""#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `fix`, field `verify`: unknown pipeline `nope` (known: `p`, `gate`)");
    insta::assert_snapshot!(rejected(&l(r#","verify":"gate","maxIterations":0"#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `fix`, field `maxIterations`: expected an integer >= 1, found 0");
    insta::assert_snapshot!(rejected(&l(r#""#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `fix`, field `verify`: missing (a loop names the pipeline that verifies each iteration)");
    // A loop whose verify pipeline contains the loop (directly, and through a sub-pipeline).
    insta::assert_snapshot!(rejected(&l(r#","verify":"p""#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `fix`, field `verify`: a loop's verify pipeline runs the loop again: p -> p");
    insta::assert_snapshot!(rejected(r#"{"pipelines":[
        {"id":"p","stages":[{"kind":"loop","id":"fix","build":"true","verify":"q"}]},
        {"id":"q","stages":[{"kind":"subpipeline","id":"again","pipeline":"p"}]}]}"#),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, stage `fix`, field `verify`: a loop's verify pipeline runs the loop again: p -> q -> p");
    let d = |delivery: &str| {
        format!(
            r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"a","command":"true"}}],"delivery":{delivery}}}]}}"#
        )
    };
    insta::assert_snapshot!(rejected(&d(r#"{"kind":"gitlab"}"#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, delivery `#1`, field `kind`: unknown delivery kind `gitlab` (one of: `bundle`, `git`, `github`); did you mean `github`?");
    insta::assert_snapshot!(rejected(&d(r#"[{"kind":"bundle"},{"kind":"git"}]"#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, delivery `#2`, field `remote`: missing (the git remote to push to, such as `origin`)");
    // A remote the repository does not have.
    insta::assert_snapshot!(rejected(&d(r#"{"kind":"git","remote":"origin"}"#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, delivery `#1`, field `remote`: the repository has no remote `origin` (see `git remote -v`)");
    insta::assert_snapshot!(rejected(&d(r#"{"kind":"git","remote":"origin","branch":"co/${NOPE}"}"#)),
        @"error: `[TMP]/codex.orchestrator.json`: pipeline `p`, delivery `#1`, field `branch`: undefined variable `${NOPE}`: a delivery template may use `${TASK}`, `${RUN_ID}`, `${PIPELINE}` and the runner variables (`vars`, `--var`)");
}
