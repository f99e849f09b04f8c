//! Crash consistency and storage faults: a run killed after its end finishes its bookkeeping
//! on resume; ENOSPC and EIO end the run with exit 4 and an intact last manifest. (Kills at
//! every write point: `crash_points.rs`.)
//! Needs `strace` (fault injection) and, for ENOSPC, root to mount a small tmpfs; each test
//! prints why it skipped when those are missing.

use std::process::Command;

use crate::harness::TestEnv;

pub(crate) fn have_strace() -> bool {
    let ok = Command::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        // CI installs strace (.ci/run): there, a missing one is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but strace is not usable: .ci/run must install it"
        );
        eprintln!("SKIPPED: strace is not installed or ptrace is not permitted");
    }
    ok
}

fn ten_stages() -> String {
    let stages: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"kind":"command","id":"s{i}","command":"echo x >> s{i}.count"}}"#))
        .collect();
    format!(
        r#"{{"pipelines":[{{"id":"p","stages":[{}]}}]}}"#,
        stages.join(",")
    )
}

pub(crate) fn manifests(env: &TestEnv) -> Vec<std::path::PathBuf> {
    let dir = env.path().join(".runs/0101/cli");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("manifest.json"))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Every folder under `.runs/0101/cli` holds a manifest, and no staging folder is left: a
/// runner that failed before its first manifest cleaned up after itself.
fn assert_no_run_without_manifest(env: &TestEnv) {
    for dir in ["cli", ".staging"] {
        for e in std::fs::read_dir(env.path().join(".runs/0101").join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            assert!(
                dir == "cli" && e.path().join("manifest.json").is_file(),
                "left behind: {}",
                e.path().display()
            );
        }
    }
}

/// Lines of `metrics.json` for run `id` that record the end in manifest `fin`.
pub(crate) fn metrics_lines(env: &TestEnv, id: &str, fin: &serde_json::Value) -> usize {
    std::fs::read_to_string(env.path().join(".runs/0101/metrics.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["run_id"] == id && l["completed_at"] == fin["completed_at"])
        .count()
}

/// Puts a succeeded run back into the state a kill after its terminal manifest write leaves:
/// `metrics_recorded: false`, a temp file of the interrupted write, and (unless
/// `metrics_written`) no summary and no metrics line.
fn unfinish_bookkeeping(env: &TestEnv, id: &str, metrics_written: bool) {
    let dir = env.run_dir(id);
    let mut m = env.main_file(id);
    m["metrics_recorded"] = serde_json::Value::Bool(false);
    let mut text = serde_json::to_string_pretty(&m).expect("json");
    text.push('\n');
    std::fs::write(dir.join("manifest.json"), text).expect("manifest");
    std::fs::write(dir.join(".manifest.json.0123456789abcdef.tmp"), "{\"trunc").expect("temp");
    if !metrics_written {
        std::fs::remove_file(dir.join("run-summary.json")).expect("summary");
        std::fs::write(env.path().join(".runs/0101/metrics.json"), "").expect("metrics");
    }
}

#[test]
fn resume_finishes_the_bookkeeping_of_a_run_killed_after_its_end() {
    for metrics_written in [false, true] {
        let env = TestEnv::new().config(&ten_stages());
        let id = env.start("p", &[]).run_id();
        unfinish_bookkeeping(&env, &id, metrics_written);
        let before = env.manifest(&id);
        let r = env.cli(["resume", "--run", &id, "--format", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr.contains("repaired:") && r.stderr.contains("stale temp file"),
            "{}",
            r.stderr
        );
        assert_eq!(r.json()["status"], "succeeded");
        let fin = env.manifest(&id);
        assert_eq!(fin["metrics_recorded"], true);
        // As on the peer, resuming a succeeded run is recorded (and runs nothing: the stage
        // counts below).
        assert_eq!(fin["resume_events"].as_array().map(Vec::len), Some(1));
        assert!(env.run_dir(&id).join("run-summary.json").is_file());
        assert_eq!(
            metrics_lines(&env, &id, &before),
            1,
            "the run's own line: written by the repair, never doubled"
        );
        assert_eq!(metrics_lines(&env, &id, &fin), 1, "and the resume's");
        let temps = std::fs::read_dir(env.run_dir(&id))
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(temps, 0);
        for i in 0..10 {
            let count = std::fs::read_to_string(env.path().join(format!("s{i}.count")));
            assert_eq!(count.expect("count"), "x\n", "stage s{i} ran once");
        }
        // Now complete: a second resume is recorded too and has nothing to do.
        let again = env.cli(["resume", "--run", &id]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(!again.stderr.contains("repaired:"), "{}", again.stderr);
        assert_eq!(
            env.manifest(&id)["resume_events"].as_array().map(Vec::len),
            Some(2)
        );
        for i in 0..10 {
            let count = std::fs::read_to_string(env.path().join(format!("s{i}.count")));
            assert_eq!(count.expect("count"), "x\n", "stage s{i} still ran once");
        }
    }
}

#[test]
fn eio_on_fsync_exits_4_naming_the_path() {
    if !have_strace() {
        return;
    }
    let env = TestEnv::new().config(&ten_stages());
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync",
            "-e",
            "inject=fsync:error=EIO:when=1",
        ])
        .arg(crate::harness::BIN)
        .args(["start", "p"])
        .current_dir(env.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("strace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    // The first fsync is the run directory's, built under `.runs/0101/.staging/`.
    assert!(
        stderr.contains("error: ")
            && stderr.contains(".runs/0101/")
            && stderr.contains("Input/output error"),
        "{stderr}"
    );
    assert_no_run_without_manifest(&env);
    for m in manifests(&env) {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(m).expect("read"))
            .expect("parseable");
    }
}

/// A manifest write that fails while a stage runs stops that stage at once, not when it ends:
/// `b` would append to `b-ran` after its sleep. The write that fails is found from the trace:
/// strace counts fsyncs per thread, so `when=N` cannot name "the write after `b` spawned"; each
/// N is classified instead by where its injected fsync falls relative to `b`'s exec and to
/// `b`'s own write of `b-ran`, and only failures in between must stop `b`. strace waits for
/// every traced descendant, so a stage left running would still get to write `b-ran`.
#[test]
fn a_write_failure_while_a_stage_runs_stops_it_at_once() {
    // Stage `b` makes its own run directory immutable (chattr +i: no new entries, so the
    // manifest's temp file cannot be created), then works for 3 s. The runner's next manifest
    // write (the paced one that records `b`'s start) fails, and the run must stop `b` at once
    // rather than let it finish: `b-ran` never appears, `c` never starts. In both durability
    // modes.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let probe = tempfile::tempdir().expect("tempdir");
    let chattr_works = is_root
        && Command::new("chattr")
            .arg("+i")
            .arg(probe.path())
            .status()
            .is_ok_and(|s| s.success());
    let _ = Command::new("chattr").arg("-i").arg(probe.path()).status();
    if !chattr_works {
        eprintln!("SKIPPED: needs root and a filesystem with chattr +i (ext4, xfs, btrfs)");
        return;
    }
    for strict in [false, true] {
        let mode = if strict { "strict" } else { "batched" };
        let env = TestEnv::new()
            .config(
                r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"a","command":"echo a"},
      {"kind":"command","id":"b","command":"chattr +i \"$CODEX_ORCHESTRATOR_RUN_DIR\" && sleep 3; echo b >> b-ran"},
      {"kind":"command","id":"c","command":"touch c-ran"}]}]}"#,
            )
            .env("CODEX_ORCHESTRATOR_DURABILITY", mode);
        let started = std::time::Instant::now();
        let out = env.start("p", &[]);
        let elapsed = started.elapsed();
        let dir = std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .expect("runs")
            .flatten()
            .next()
            .expect("one run")
            .path();
        // Unfreeze first, whatever happens next, so the temp dir can be removed.
        let _ = Command::new("chattr").arg("-i").arg(&dir).status();
        assert_eq!(out.code, 4, "{mode}: {}", out.stderr);
        assert!(
            out.stderr.contains("manifest.") && out.stderr.contains("Operation not permitted"),
            "{mode}: {}",
            out.stderr
        );
        assert!(
            !env.path().join("b-ran").exists(),
            "{mode}: stage `b` ran on after the manifest write failed"
        );
        assert!(!env.path().join("c-ran").exists(), "{mode}: `c` started");
        assert!(
            elapsed < std::time::Duration::from_secs(3),
            "{mode}: the run waited for `b` ({elapsed:?})"
        );
        let last = crate::harness::merged(&dir.join("manifest.json"));
        assert_eq!(
            last["status"], "in_progress",
            "{mode}: the last good manifest"
        );
        // The event stream still ends, with the peer's `run_failed` naming the error: a
        // watcher of events.jsonl is not left waiting for an end that never comes.
        let events = crate::harness::read_lines(&dir.join("events.jsonl"));
        let end = events.last().expect("events");
        assert_eq!(end["event"], "run_failed", "{mode}: {end}");
        assert_eq!(end["payload"]["pipeline_id"], "p");
        assert!(end["payload"]["stage_id"].is_null(), "{mode}: {end}");
        let message = end["payload"]["message"].as_str().expect("message");
        assert!(
            message.contains("cannot record the run")
                && message.contains("Operation not permitted"),
            "{mode}: {message}"
        );
        assert_eq!(
            events.iter().filter(|e| e["event"] == "run_failed").count(),
            1,
            "{mode}: one end"
        );
        if strict {
            // `a`'s end was durable before `b` started.
            assert_eq!(last["commands"][0]["status"], "succeeded");
        }
    }
}

#[test]
fn enospc_exits_4_with_an_intact_manifest() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !is_root {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let env = TestEnv::new().config("{}");
    let mnt = env.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount tmpfs here");
        return;
    }
    std::fs::write(
        mnt.join("codex.orchestrator.json"),
        r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"big","command":"head -c 8000000 /dev/zero | tr '\\0' 'a'"},
      {"kind":"command","id":"after","command":"touch after-ran"}]}]}"#,
    )
    .expect("config");
    let out = Command::new(crate::harness::BIN)
        .args(["start", "p"])
        .current_dir(&mnt)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let manifest = std::fs::read_dir(mnt.join(".runs/0101/cli"))
        .expect("ls")
        .flatten()
        .next()
        .map(|e| e.path().join("manifest.json"));
    let parsed = manifest.as_ref().map(|m| {
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(m).expect("read"))
    });
    let after_ran = mnt.join("after-ran").exists();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("commands/01-big.ndjson"),
        "{stderr}"
    );
    let m = parsed
        .expect("a manifest was written before the disk filled")
        .expect("the last manifest parses");
    assert_ne!(m["status"], "succeeded");
    assert!(!after_ran, "stages stop after a storage failure");
}

/// `runs list` only reads: on a full disk, where the index cannot be built, it reads the
/// manifests directly (with a warning) instead of failing with a storage error.
#[test]
fn runs_list_on_a_full_disk_reads_the_manifests() {
    let env = TestEnv::new().config("{}");
    let mnt = env.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted,
        "mounting a small tmpfs needs root (CI runs as root)"
    );
    let run = |args: &[&str]| {
        Command::new(crate::harness::BIN)
            .args(args)
            .current_dir(&mnt)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("run")
    };
    std::fs::write(
        mnt.join("codex.orchestrator.json"),
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#,
    )
    .expect("config");
    let first = run(&["start", "p"]);
    let second = run(&["start", "p"]);
    // The index must be built again, and the disk is full.
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(mnt.join(".runs").join(f));
    }
    let _ = Command::new("sh")
        .arg("-c")
        .arg("head -c 2000000 /dev/zero > fill")
        .current_dir(&mnt)
        .status();
    let listed = run(&["runs", "list", "--format", "json"]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(first.status.code(), Some(0));
    assert_eq!(second.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert_eq!(listed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("reading the manifests directly"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(v["runs"].as_array().map(Vec::len), Some(2), "{v:#}");
}
