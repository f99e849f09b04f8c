//! The files around a manifest: side files rebuilt from the manifest when missing, empty or
//! damaged (`status`, `resume`); paths taken from a manifest's content kept under `.runs`; the
//! run folder appearing only with its first manifest; the run lock's storage errors.

use std::process::Command;

use crate::harness::{read_json, TestEnv};

const TWO: &str = r#"{"pipelines":[
  {"id":"p","stages":[{"kind":"command","id":"a","command":"true"}]},
  {"id":"flaky","stages":[{"kind":"command","id":"a","command":"[ -f pass ]"}]}]}"#;

fn stub_path(env: &TestEnv, id: &str) -> std::path::PathBuf {
    env.path()
        .join(".runs/0101/mcp")
        .join(id)
        .join("manifest.json")
}

/// The side files of run `id` all agree with its manifest.
fn assert_side_files_whole(env: &TestEnv, id: &str) {
    let m = env.manifest(id);
    let dir = env.run_dir(id);
    let stub = read_json(&stub_path(env, id));
    assert_eq!(
        stub["manifest"],
        format!(".runs/0101/cli/{id}/manifest.json")
    );
    assert_eq!(stub["redirect_to"], format!(".runs/0101/cli/{id}"));
    let summary = read_json(&dir.join("run-summary.json"));
    assert_eq!(summary["runId"], id);
    assert_eq!(summary["status"], m["status"]);
    let token = std::fs::read_to_string(dir.join(".resume-token")).expect("token");
    assert_eq!(token.trim(), m["resume_token"].as_str().expect("token"));
    let beat = std::fs::read_to_string(dir.join(".heartbeat")).expect("heartbeat");
    assert!(!beat.trim().is_empty(), "heartbeat file");
}

/// After a power cut, files created by a rename without fsync can be empty. `status` of a run
/// no runner holds rebuilds them from the manifest.
#[test]
fn status_rebuilds_empty_side_files_of_a_finished_run() {
    let env = TestEnv::new().config(TWO);
    let id = env.start("p", &[]).run_id();
    let dir = env.run_dir(&id);
    for f in [
        dir.join("run-summary.json"),
        dir.join(".resume-token"),
        dir.join(".heartbeat"),
        stub_path(&env, &id),
    ] {
        std::fs::write(&f, "").expect("empty it");
    }
    let out = env.cli(["status", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("note: rebuilt from the manifest")
            && out.stderr.contains("run-summary.json")
            && out.stderr.contains("the mcp redirect stub"),
        "{}",
        out.stderr
    );
    assert_side_files_whole(&env, &id);
    // Whole again: a second status writes nothing.
    let again = env.cli(["status", "--run", &id]);
    assert!(!again.stderr.contains("rebuilt"), "{}", again.stderr);
}

/// A runner killed before it wrote the mcp stub (or a power cut that emptied it), and a temp
/// file of an interrupted write in its folder: `resume` rewrites the stub and removes the temp.
#[test]
fn resume_rewrites_a_missing_stub_and_removes_its_temp_files() {
    let env = TestEnv::new().config(TWO);
    let out = env.start("flaky", &[]);
    assert_eq!(out.code, 1);
    let id = out.run_id();
    let stub = stub_path(&env, &id);
    std::fs::remove_file(&stub).expect("remove stub");
    let temp = stub.with_file_name(".manifest.json.0123456789abcdef.tmp");
    std::fs::write(&temp, "{\"trunc").expect("temp");
    std::fs::write(env.run_dir(&id).join("run-summary.json"), "{not json").expect("damage");
    std::fs::write(env.path().join("pass"), "").expect("pass");
    let r = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !temp.exists(),
        "the temp file of the interrupted write is removed"
    );
    assert_side_files_whole(&env, &id);
    assert_eq!(env.manifest(&id)["status"], "succeeded");
}

/// `resume` builds every path from the manifest's ids, which must name the directory it was
/// found in: a hand-edited `run_id` pointing elsewhere is refused before anything is written.
#[test]
fn a_manifest_whose_ids_point_elsewhere_is_refused() {
    for (key, value) in [
        ("run_id", "../../../../evil"),
        ("run_id", "2026-01-01T00-00-00-000Z-00000000"),
        ("task_id", "../other"),
    ] {
        let env = TestEnv::new().config(TWO);
        let id = env.start("flaky", &[]).run_id();
        let path = env.run_dir(&id).join("manifest.json");
        // Edited consistently in the manifest and its sidecar (which carries the run id too,
        // and would otherwise be refused as another run's).
        let sidecar = path.with_file_name("manifest.ext.json");
        let mut text = String::new();
        for (file, always) in [(&path, true), (&sidecar, false)] {
            let mut m = read_json(file);
            if always || m.get(key).is_some() {
                m[key] = value.into();
            }
            let t = serde_json::to_string_pretty(&m).expect("json");
            std::fs::write(file, t.as_bytes()).expect("edit");
            if always {
                text = t;
            }
        }
        let before: Vec<_> = std::fs::read_dir(env.path())
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .collect();
        let r = env.cli(["resume", "--run", &id]);
        assert_eq!(r.code, 3, "{key}={value}: {}", r.stderr);
        assert!(
            r.stderr.contains("is not a valid manifest for this run"),
            "{}",
            r.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            text,
            "left as it was"
        );
        let after: Vec<_> = std::fs::read_dir(env.path())
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(before, after, "nothing created next to .runs");
        assert!(!env.path().join("evil").exists() && !env.path().join("../evil").exists());
    }
}

fn have_strace() -> bool {
    Command::new("strace")
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An I/O error on the run lock is a storage failure (exit 4, with the OS error), not a run
/// that is "locked"; and it leaves no run folder behind.
#[test]
fn eio_on_the_run_lock_is_exit_4_and_leaves_no_run_folder() {
    assert!(have_strace(), "strace is needed (.ci/run installs it)");
    let env = TestEnv::new().config(TWO);
    let out = env.start_under_strace(&[
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=flock",
        "-e",
        "inject=flock:error=EIO",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("run.lock`") && stderr.contains("caused by: Input/output error"),
        "{stderr}"
    );
    for sub in ["cli", ".staging"] {
        let left = std::fs::read_dir(env.path().join(".runs/0101").join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "nothing left in {sub}");
    }
}

/// A runner killed before its first manifest leaves no folder in `cli/` (the run folder is
/// built under `.staging/` and renamed in with its manifest); the next run sweeps the remains.
#[test]
fn a_runner_killed_before_its_first_manifest_leaves_nothing_the_next_run_keeps() {
    assert!(have_strace(), "strace is needed (.ci/run installs it)");
    let env = TestEnv::new().config(TWO);
    // The first rename of the process is the first manifest's atomic write.
    let out = env.start_under_strace(&[
        "-f",
        "-qq",
        "-o",
        "/dev/null",
        "-e",
        "trace=rename",
        "-e",
        "inject=rename:signal=KILL:when=1",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let cli = env.path().join(".runs/0101/cli");
    let in_cli = std::fs::read_dir(&cli).map(|d| d.count()).unwrap_or(0);
    assert_eq!(in_cli, 0, "no run folder without a manifest");
    let staging = env.path().join(".runs/0101/.staging");
    assert_eq!(std::fs::read_dir(&staging).expect("staging").count(), 1);
    let next = env.start("p", &[]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert_eq!(
        std::fs::read_dir(&staging).expect("staging").count(),
        0,
        "swept"
    );
    assert_eq!(std::fs::read_dir(&cli).expect("cli").count(), 1);
}

#[test]
fn logs_never_follows_a_recorded_log_path_outside_runs() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"echo real-output"}]}]}"#,
    );
    let id = env.start("p", &[]).run_id();
    let path = env.run_dir(&id).join("manifest.json");
    let mut m = read_json(&path);
    let log = env
        .path()
        .join(m["commands"][0]["log_path"].as_str().expect("log_path"));
    // A stage log outside `.runs` that decodes fine, with other bytes in it.
    let outside = env.path().join("outside.ndjson");
    let forged = std::fs::read_to_string(&log)
        .expect("log")
        .replace("real-output", "outside-data");
    assert!(forged.contains("outside-data"), "{forged}");
    std::fs::write(&outside, forged).expect("write");
    for recorded in [
        outside.to_string_lossy().into_owned(),
        "outside.ndjson".to_owned(),
        format!(".runs/0101/cli/{id}/../../../../outside.ndjson"),
    ] {
        m["commands"][0]["log_path"] = recorded.clone().into();
        std::fs::write(&path, serde_json::to_string_pretty(&m).expect("json")).expect("edit");
        let out = env.cli(["logs", &id, "a"]);
        assert_eq!(out.code, 0, "{recorded}: {}", out.stderr);
        assert_eq!(out.stdout, "real-output\n", "{recorded}");
    }
}

#[test]
fn nothing_waits_for_the_kernels_entropy_pool() {
    // Every getrandom(2) of a run (ids, tokens, temp names, std's hash keys, the runtime's)
    // asks not to block: on a freshly booted machine a runner must not hang before it writes.
    if !crate::crash::have_strace() {
        return;
    }
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"true"},
          {"kind":"command","id":"b","command":"exit 1","allowFailure":true}]}]}"#,
    );
    // `-ff`: one file per thread, so no call is split into `<unfinished ...>` and `resumed`.
    let traces = env.path().join("traces");
    std::fs::create_dir_all(&traces).expect("mkdir");
    let trace_path = traces.join("t").to_string_lossy().into_owned();
    let out = env.start_under_strace(&["-ff", "-qq", "-e", "trace=getrandom", "-o", &trace_path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text: String = std::fs::read_dir(&traces)
        .expect("traces")
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).expect("trace"))
        .collect();
    let calls: Vec<&str> = text.lines().filter(|l| l.contains("getrandom(")).collect();
    assert!(!calls.is_empty(), "std draws its hash keys: {text}");
    let blocking: Vec<&&str> = calls
        .iter()
        // A zero-length call (a probe for the syscall) cannot block.
        .filter(|l| {
            !(l.contains("GRND_INSECURE") || l.contains("GRND_NONBLOCK") || l.contains(", 0, 0)"))
        })
        .collect();
    assert!(blocking.is_empty(), "calls that may block: {blocking:#?}");
}

#[test]
fn a_corrupt_manifest_is_exit_3_and_left_as_it_is() {
    let env = TestEnv::new().config(TWO);
    let id = env.start("p", &[]).run_id();
    let path = env.run_dir(&id).join("manifest.json");
    std::fs::write(&path, "{\"trunc").expect("damage");
    for verb in ["status", "resume"] {
        let out = env.cli([verb, "--run", &id]);
        assert_eq!(out.code, 3, "{verb}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not a valid manifest"),
            "{verb}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"trunc",
            "{verb} left it as it was"
        );
    }
    // The harness checks every run it leaves behind against the schema: not this one.
    std::fs::remove_dir_all(env.run_dir(&id)).expect("rm");
}
