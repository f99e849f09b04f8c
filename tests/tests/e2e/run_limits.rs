//! Wall-clock budgets and run slots end to end: a budget that runs out mid-stage (no orphan
//! process left), a fresh budget per resume, approval waits counting; five runs under
//! `maxConcurrentRuns: 2` (never more than two running, all finish, first come first served),
//! a killed runner's slot reused, `--no-wait`, and a queued runner interrupted.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::control_util::{
    assert_valid, finish, kill9, kill_leftovers, manifest_now, ms_between, processes_of_run, spawn,
    the_run, ts, wait_for_record, wait_until, LIMIT,
};
use crate::harness::{Cgroup, TestEnv};

#[test]
fn a_budget_exceeded_mid_stage_stops_everything_and_fails_the_run() {
    // The stage leaves a grandchild in its group and ignores SIGTERM itself: TERM, grace, KILL.
    let env = TestEnv::new()
        .config(
            r#"{"pipelines":[{"id":"p","maxWallClockMs":1000,"stages":[
              {"kind":"command","id":"long","command":"trap '' TERM; sleep 60 & echo $! > kid.pid; wait"},
              {"kind":"command","id":"never","command":"touch never-ran"}]}]}"#,
        )
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "300");
    let cgroup = Cgroup::new("budget");
    let mut cmd = match &cgroup {
        Some(cg) => cg.wrap(&env, &["start", "p", "--format", "json"]),
        None => env.command(["start", "p", "--format", "json"]),
    };
    let started = Instant::now();
    let out = cmd.output().expect("run");
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(15),
        "stopped promptly ({took:?})"
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = j["run_id"].as_str().expect("id").to_owned();
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "run-timeout");
    assert!(
        m["summary"]
            .as_str()
            .is_some_and(|s| s
                .starts_with("Run exceeded its wall-clock budget of 1s (maxWallClockMs 1000).")),
        "{}",
        m["summary"]
    );
    assert_eq!(m["commands"][0]["status"], "failed");
    assert_eq!(m["commands"][0]["outcome"], "cancelled");
    assert_eq!(m["commands"][1]["status"], "pending", "nothing new starts");
    assert!(!env.path().join("never-ran").exists());
    let budget = &m["wall_clock_budgets"][0];
    assert_eq!(budget["limit_ms"], 1000);
    assert_eq!(budget["source"], "pipeline");
    let over = ms_between(ts(&budget["deadline"]), ts(&m["completed_at"]));
    assert!(
        (0..5000).contains(&over),
        "ended {over}ms after the deadline"
    );
    // No orphan: the grandchild died with the group, and nothing carries the run id.
    let kid: i32 = std::fs::read_to_string(env.path().join("kid.pid"))
        .expect("kid")
        .trim()
        .parse()
        .expect("pid");
    let gone = std::fs::read_to_string(format!("/proc/{kid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim().starts_with('Z'))
    });
    assert!(gone, "the grandchild was killed");
    assert_eq!(processes_of_run(&id), Vec::<i32>::new());
    if let Some(cg) = &cgroup {
        assert!(
            !cg.populated(),
            "no process of the run is left in its cgroup"
        );
    }
}

#[test]
fn a_resume_gets_a_fresh_budget_and_the_flag_overrides_the_pipeline() {
    let env = TestEnv::new()
        .config(
            r#"{"pipelines":[{"id":"p","maxWallClockMs":600000,"stages":[
              {"kind":"command","id":"slow","command":"test -f quick || sleep 5"}]}]}"#,
        )
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "200");
    let out = env.start("p", &["--max-wall-clock", "700ms"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    assert_eq!(env.manifest(&id)["status_detail"], "run-timeout");
    std::fs::write(env.path().join("quick"), "").expect("w");
    let again = env.cli(["resume", "--run", &id, "--max-wall-clock", "2m"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    let budgets: Vec<(u64, String)> = m["wall_clock_budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .map(|b| {
            (
                b["limit_ms"].as_u64().expect("ms"),
                b["source"].as_str().expect("s").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        budgets,
        [(700, "flag".to_owned()), (120_000, "flag".to_owned())]
    );
    assert!(
        ts(&m["wall_clock_budgets"][1]["started_at"]) > ts(&m["wall_clock_budgets"][0]["deadline"])
    );
    // Without the flag, the pipeline's budget.
    let third = env.start("p", &[]);
    assert_eq!(third.code, 0);
    let m3 = env.manifest(&third.run_id());
    assert_eq!(m3["wall_clock_budgets"][0]["source"], "pipeline");
    assert_eq!(m3["wall_clock_budgets"][0]["limit_ms"], 600_000);
    let bad = env.cli(["start", "p", "--max-wall-clock", "soon"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn time_waiting_for_an_approval_counts() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","maxWallClockMs":800,"stages":[
          {"kind":"approval","id":"gate","prompt":"Ship?"}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_valid(&env, &m);
    assert_eq!(m["status_detail"], "run-timeout");
    assert_eq!(m["commands"][0]["status"], "failed");
    assert_eq!(
        m["commands"][0]["summary"],
        "Stopped: the run's wall-clock budget of 800ms ran out while waiting for approval."
    );
    assert_eq!(
        m["commands"][0]["approval"]["state"], "waiting",
        "still undecided"
    );
    assert_eq!(m["approvals"], serde_json::json!([]));
}

/// `(stage start, stage end)` of the one stage of each run, in the order of `ids`.
fn intervals(env: &TestEnv, ids: &[String]) -> Vec<(std::time::SystemTime, std::time::SystemTime)> {
    ids.iter()
        .map(|id| {
            let m = env.manifest(id);
            assert_valid(env, &m);
            assert_eq!(m["status"], "succeeded", "{id}");
            (
                ts(&m["commands"][0]["started_at"]),
                ts(&m["commands"][0]["completed_at"]),
            )
        })
        .collect()
}

/// The one run under `.runs/0101/cli` that is not in `known`, once its record exists.
fn new_run(env: &TestEnv, known: &[String]) -> Option<String> {
    std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !known.contains(n) && manifest_now(env, n).is_some())
}

#[test]
fn five_runs_under_two_slots_never_overlap_more_than_two_and_start_in_order() {
    // Each stage holds its run's slot until `go` exists, and the test starts the next run only
    // once the runner has recorded the previous one running or in line (its place), so the
    // order of arrival is the runner's own, whatever the load.
    let env = TestEnv::new().config(
        r#"{"maxConcurrentRuns":2,"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"work","command":"while [ ! -f go ]; do sleep 0.02; done; sleep 0.3"}]}]}"#,
    );
    let mut children = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for k in 0..5usize {
        children.push(spawn(&env, &["start", "p", "--format", "json"]));
        let id = wait_until("the new run", LIMIT, || new_run(&env, &ids));
        if k < 2 {
            wait_for_record(&env, &id, "its stage running", |m| {
                m["commands"][0]["status"] == "running"
            });
        } else {
            let place = k - 1;
            wait_for_record(&env, &id, "its place in line", |m| {
                m["status"] == "queued" && m["queue"]["position"] == place
            });
        }
        ids.push(id);
    }
    std::fs::write(env.path().join("go"), "").expect("go");
    let printed: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = finish(c);
            assert_eq!(out.code, 0, "{}", out.stderr);
            out.run_id()
        })
        .collect();
    assert_eq!(printed, ids, "all five finish");
    let spans = intervals(&env, &ids);
    // At every stage start, count the stages running then (start <= t < end).
    let mut most = 0;
    for (t, _) in &spans {
        let running = spans.iter().filter(|(s, e)| s <= t && t < e).count();
        most = most.max(running);
    }
    assert_eq!(most, 2, "two at a time, never more: {spans:?}");
    // The first two took a slot on arrival; the last three waited in line and say so.
    for id in &ids[..2] {
        assert!(env.manifest(id)["queue"].is_null(), "{id} did not wait");
    }
    let mut granted = Vec::new();
    for id in &ids[2..] {
        let m = env.manifest(id);
        let q = &m["queue"];
        assert_eq!(q["max_concurrent_runs"], 2, "{id}: {q}");
        assert!(q["waited_ms"].as_u64().is_some_and(|w| w > 0), "{id}: {q}");
        // The slot came before the stage started.
        assert!(
            ts(&q["started_at"]) <= ts(&m["commands"][0]["started_at"]),
            "{id}: {m}"
        );
        granted.push(ts(&q["started_at"]));
    }
    // First come, first served: the runner granted the slots in the order of the line (each
    // grant is stamped before its runner leaves the line, and the next in line can only take
    // a slot after that).
    let mut sorted = granted.clone();
    sorted.sort();
    assert_eq!(granted, sorted, "first come, first served");
}

#[test]
fn a_queued_run_shows_its_place_and_an_interrupted_one_is_cancelled() {
    let env = TestEnv::new().config(
        r#"{"maxConcurrentRuns":1,"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"work","command":"while [ ! -f done ]; do sleep 0.05; done"}]}]}"#,
    );
    let first = spawn(&env, &["start", "p", "--format", "json"]);
    let first_id = the_run(&env);
    wait_for_record(&env, &first_id, "the first run going", |m| {
        m["status"] == "in_progress"
    });
    let second = spawn(&env, &["start", "p", "--format", "json"]);
    let second_id = wait_until("the second run", LIMIT, || {
        std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| *n != first_id)
    });
    let queued = wait_for_record(&env, &second_id, "the second run in line", |m| {
        m["queue"]["position"] == 1
    });
    assert_valid(&env, &queued);
    assert_eq!(queued["status"], "queued");
    let status = env.cli(["status", "--run", &second_id]);
    assert!(
        status.stdout.contains("Status: queued"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("Queued: place 1 in line for one of 1 run slots"),
        "{}",
        status.stdout
    );
    // --no-wait: a conflict at once.
    let refused = env.start("p", &["--no-wait"]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("--no-wait"), "{}", refused.stderr);
    kill(Pid::from_raw(second.id() as i32), Signal::SIGINT).expect("SIGINT");
    let out = finish(second);
    assert_eq!(out.code, 130, "{}", out.stderr);
    let m = env.manifest(&second_id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "cancelled");
    assert_eq!(m["status_detail"], "run-canceled");
    assert_eq!(m["commands"][0]["status"], "pending");
    std::fs::write(env.path().join("done"), "").expect("done");
    assert_eq!(finish(first).code, 0);
}

#[test]
fn a_killed_runners_slot_is_free_at_once() {
    let env = TestEnv::new().config(
        r#"{"maxConcurrentRuns":1,"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"work","command":"test -f quick || sleep 60"}]}]}"#,
    );
    let first = spawn(&env, &["start", "p", "--format", "json"]);
    let first_id = the_run(&env);
    wait_for_record(&env, &first_id, "the first run's stage", |m| {
        m["commands"][0]["status"] == "running"
    });
    assert_eq!(env.start("p", &["--no-wait"]).code, 3, "the slot is taken");
    kill9(first);
    std::fs::write(env.path().join("quick"), "").expect("w");
    let started = Instant::now();
    let next = env.start("p", &["--no-wait"]);
    assert_eq!(
        next.code, 0,
        "the dead runner's slot is free: {}",
        next.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        env.manifest(&next.run_id())["queue"].is_null(),
        "it did not wait"
    );
    kill_leftovers(&first_id);
}

#[test]
fn the_environment_sets_the_slot_count() {
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"w","command":"sleep 1"}]}]}"#)
        .env("CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS", "1");
    let first = spawn(&env, &["start", "p", "--format", "json"]);
    let id = the_run(&env);
    wait_for_record(&env, &id, "running", |m| m["status"] == "in_progress");
    assert_eq!(env.start("p", &["--no-wait"]).code, 3);
    assert_eq!(finish(first).code, 0);
    let bad = TestEnv::new()
        .config(
            r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"w","command":"true"}]}]}"#,
        )
        .env("CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS", "many");
    let out = bad.start("p", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS is `many`"),
        "{}",
        out.stderr
    );
    assert!(!bad.runs_exists(), "nothing written");
}
