//! Resource locks end to end: stages holding the same lock name never overlap, within a run or
//! across runs of the same `.runs`, while stages without it do; the wait is shown and recorded;
//! a runner killed with `kill -9` releases its locks; overlapping lock sets never deadlock.

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::control_util::{
    assert_valid, finish, kill9, kill_leftovers, spawn, the_run, ts, wait_for_record,
};
use crate::harness::TestEnv;

type Span = (SystemTime, SystemTime);

fn span(stage: &Value) -> Span {
    (ts(&stage["started_at"]), ts(&stage["completed_at"]))
}

fn overlap(a: Span, b: Span) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn stage<'m>(m: &'m Value, id: &str) -> &'m Value {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("stage {id}"))
}

#[test]
fn two_runs_sharing_a_lock_never_overlap_while_unlocked_stages_do() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","concurrency":3,"stages":[
          {"kind":"command","id":"migrate","command":"sleep 0.7","locks":["db"],"dependsOn":[]},
          {"kind":"command","id":"seed","command":"sleep 0.7","locks":["db"],"dependsOn":[]},
          {"kind":"command","id":"lint","command":"sleep 0.7","dependsOn":[]}]}]}"#,
    );
    let a = spawn(&env, &["start", "p", "--format", "json"]);
    let b = spawn(&env, &["start", "p", "--format", "json"]);
    let (a, b) = (finish(a), finish(b));
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
    let runs = [env.manifest(&a.run_id()), env.manifest(&b.run_id())];
    for m in &runs {
        assert_valid(&env, m);
    }
    let locked: Vec<Span> = runs
        .iter()
        .flat_map(|m| [span(stage(m, "migrate")), span(stage(m, "seed"))])
        .collect();
    for (i, x) in locked.iter().enumerate() {
        for y in &locked[i + 1..] {
            assert!(!overlap(*x, *y), "`db` holders overlap: {x:?} {y:?}");
        }
    }
    let lint = [span(stage(&runs[0], "lint")), span(stage(&runs[1], "lint"))];
    assert!(
        overlap(lint[0], lint[1]),
        "unlocked stages run side by side: {lint:?}"
    );
    // Three of the four `db` stages waited, and say how long.
    let waited: Vec<u64> = runs
        .iter()
        .flat_map(|m| {
            ["migrate", "seed"].map(|id| {
                stage(m, id)["locks"]["waited_ms"]
                    .as_u64()
                    .expect("waited_ms")
            })
        })
        .collect();
    assert_eq!(waited.iter().filter(|w| **w > 300).count(), 3, "{waited:?}");
    assert_eq!(
        stage(&runs[0], "migrate")["locks"]["names"],
        serde_json::json!(["db"])
    );
}

#[test]
fn a_lock_wait_is_shown_and_a_killed_runner_releases_its_locks() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"hold","stages":[
            {"kind":"command","id":"hold","command":"sleep 60","locks":["deploy"]}]},
          {"id":"p","stages":[
            {"kind":"command","id":"ship","command":"true","locks":["deploy"]}]}]}"#,
    );
    let holder = spawn(&env, &["start", "hold", "--format", "json"]);
    let holder_id = the_run(&env);
    wait_for_record(&env, &holder_id, "the holder running", |m| {
        m["commands"][0]["status"] == "running"
    });
    let waiter = spawn(&env, &["start", "p", "--format", "json"]);
    let waiter_id =
        crate::control_util::wait_until("the waiting run", crate::control_util::LIMIT, || {
            std::fs::read_dir(env.path().join(".runs/0101/cli"))
                .ok()?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| *n != holder_id)
        });
    let waiting = wait_for_record(&env, &waiter_id, "the lock wait", |m| {
        !m["commands"][0]["locks"]["waiting_since"].is_null()
    });
    assert_valid(&env, &waiting);
    assert_eq!(waiting["commands"][0]["status"], "pending");
    let status = env.cli(["status", "--run", &waiter_id]);
    assert!(
        status.stdout.contains("[waiting for lock deploy] ship"),
        "{}",
        status.stdout
    );
    let json: Value = serde_json::from_str(
        &env.cli(["status", "--run", &waiter_id, "--format", "json"])
            .stdout,
    )
    .expect("json");
    assert_eq!(json["commands"][0]["waiting"], "locks");
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    kill9(holder);
    let out = finish(waiter);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "released at once"
    );
    let m = env.manifest(&waiter_id);
    let locks = &m["commands"][0]["locks"];
    assert!(locks["waiting_since"].is_null());
    assert!(
        locks["waited_ms"].as_u64().is_some_and(|w| w >= 300),
        "{locks}"
    );
    kill_leftovers(&holder_id);
}

#[test]
fn overlapping_lock_sets_never_deadlock() {
    // Each stage wants two of three locks; every pair of stages shares one. Taken in sorted
    // order, all or nothing, so no wait-for cycle can form.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","concurrency":3,"stages":[
          {"kind":"command","id":"ab","command":"sleep 0.2","locks":["b","a"],"dependsOn":[]},
          {"kind":"command","id":"bc","command":"sleep 0.2","locks":["c","b"],"dependsOn":[]},
          {"kind":"command","id":"ca","command":"sleep 0.2","locks":["a","c"],"dependsOn":[]}]}]}"#,
    );
    let children: Vec<_> = (0..3)
        .map(|_| spawn(&env, &["start", "p", "--format", "json"]))
        .collect();
    let started = Instant::now();
    let mut spans = Vec::new();
    for c in children {
        let out = finish(c);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let m = env.manifest(&out.run_id());
        for id in ["ab", "bc", "ca"] {
            spans.push(span(stage(&m, id)));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // Any two stages share a lock, so no two of the nine ever ran together.
    for (i, x) in spans.iter().enumerate() {
        for y in &spans[i + 1..] {
            assert!(!overlap(*x, *y), "{x:?} {y:?}");
        }
    }
}

#[test]
fn a_stage_waiting_for_a_lock_takes_no_place_of_the_concurrency_cap() {
    // The lock is held from outside (flock(1) on the lock file); at concurrency 1 the stage
    // waiting for it does not hold back the independent stage after it.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","concurrency":1,"stages":[
          {"kind":"command","id":"migrate","command":"echo m > migrated","locks":["db"],"dependsOn":[]},
          {"kind":"command","id":"lint","command":"echo l > linted","dependsOn":[]}]}]}"#,
    );
    let locks = env.path().join(".runs/.locks");
    std::fs::create_dir_all(&locks).expect("mkdir");
    let lock_file = locks.join("db.lock");
    // `-o`: only flock(1) holds the lock, not its `sleep`; in a process group of its own so
    // that both go at once.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock_file)
        .args(["sleep", "30"])
        .process_group(0)
        .spawn()
        .expect("flock(1)");
    std::thread::sleep(Duration::from_millis(300));
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let id = the_run(&env);
    let m = wait_for_record(&env, &id, "lint to finish while migrate waits", |m| {
        stage(m, "lint")["status"] == "succeeded"
    });
    assert_ne!(stage(&m, "migrate")["status"], "succeeded");
    assert!(!env.path().join("migrated").exists());
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(holder.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = holder.wait();
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.path().join("migrated").exists());
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert!(
        stage(&m, "migrate")["locks"]["waited_ms"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        stage(&m, "migrate")
    );
}
