//! Output that cannot be written: a terminal that goes away (SIGHUP, then EIO on every write),
//! `2>/dev/full`, `>/dev/full`, a reader that leaves. Never a panic; a run keeps its outcome and
//! its exit code; a result lost on stdout is exit 4; a broken pipe keeps the exit code.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::{assert_valid_manifest, TestEnv};

const LONG: &str = r#"{"pipelines":[
  {"id":"sig","stages":[{"kind":"command","id":"s","command":"touch started; sleep 300"},
                        {"kind":"command","id":"never","command":"touch never-ran"}]},
  {"id":"ok","stages":[{"kind":"command","id":"a","command":"echo hi"}]},
  {"id":"bad","stages":[{"kind":"command","id":"a","command":"echo no >&2; exit 3"}]}]}"#;

fn full() -> Stdio {
    Stdio::from(
        File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

fn wait_for(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` at most `limit`; kills it and fails when it does not end.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the runner did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one run's manifest, checked: cancelled by the signal, the stage interrupted, the next
/// never started.
fn assert_cancelled(env: &TestEnv) {
    let m = env.manifest(&env.only_run_id());
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "cancelled", "{m:#}");
    assert_eq!(m["status_detail"], "run-canceled");
    assert_eq!(m["commands"][0]["outcome"], "cancelled");
    assert_eq!(m["commands"][1]["status"], "pending");
    assert!(!env.path().join("never-ran").exists());
}

#[test]
fn sighup_with_stderr_unwritable_records_cancelled_and_exits_129() {
    let env = TestEnv::new()
        .config(LONG)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "300");
    let mut child = env
        .command(["start", "sig"])
        .stdout(Stdio::null())
        .stderr(full())
        .spawn()
        .expect("spawn");
    wait_for(&env.path().join("started"));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).expect("SIGHUP");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(129));
    assert_cancelled(&env);
}

/// The runner on a real terminal (a pty it has as controlling terminal, with the live
/// display), then the terminal goes away: the kernel sends SIGHUP and every later write to
/// the terminal fails with EIO.
#[test]
fn a_terminal_that_goes_away_records_cancelled_and_exits_129() {
    let env = TestEnv::new()
        .config(LONG)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "300")
        .env("TERM", "xterm");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    // openpty(3) does not set close-on-exec: a master inherited by the runner would keep the
    // terminal from ever going away.
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .expect("cloexec");
    let slave = File::from(pty.slave);
    let mut cmd = env.command(["start", "sig"]);
    cmd.stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd);
    let mut master = File::from(pty.master);
    nix::fcntl::fcntl(
        &master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .expect("nonblocking");
    // Read what the live display draws (a full pty would block the runner) until the stage
    // runs and the display has drawn it.
    let start = Instant::now();
    let mut screen = Vec::new();
    let mut buf = [0u8; 4096];
    while !(env.path().join("started").exists()
        && String::from_utf8_lossy(&screen).contains("sleep 300"))
    {
        assert!(start.elapsed() < Duration::from_secs(20), "no frame drawn");
        match master.read(&mut buf) {
            Ok(n) => screen.extend_from_slice(&buf[..n]),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    drop(master);
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(129), "{status:?}");
    assert_cancelled(&env);
}

/// Every verb's error path with stderr unwritable: its documented code, no panic (101).
#[test]
fn error_paths_keep_their_codes_when_stderr_is_unwritable() {
    let env = TestEnv::new().config(LONG);
    let cases: &[(&[&str], i32)] = &[
        (&["start", "nope"], 2),
        (&["plan", "nope"], 2),
        (&["start", "ok", "--bogus-flag"], 2),
        (&["exec"], 2),
        (&["status", "--run", "nope"], 3),
        (&["resume", "--run", "nope"], 3),
        (&["cancel", "--run", "nope"], 3),
        (&["report", "junit", "--run", "nope"], 3),
        (&["runs", "show", "nope"], 3),
    ];
    for (args, code) in cases {
        let out = env
            .command(*args)
            .stdout(Stdio::null())
            .stderr(full())
            .status()
            .expect("run");
        assert_eq!(out.code(), Some(*code), "{args:?}");
    }
    // And a run whose stderr is unwritable runs, records and exits like any other.
    let out = env
        .command(["start", "bad"])
        .stderr(full())
        .status()
        .expect("run");
    assert_eq!(out.code(), Some(1));
    let m = env.manifest(&env.only_run_id());
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "stage:a:failed");
}

/// A result that cannot be written to stdout is exit 4 (the run itself is recorded as it
/// went); a failure's own code stands.
#[test]
fn results_lost_on_stdout_exit_4() {
    let env = TestEnv::new().config(LONG);
    let lost = |args: &[&str]| {
        let out = env
            .command(args)
            .stdout(full())
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = lost(&["start", "ok", "--format", "json"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("error: cannot write the result to stdout")
            && stderr.contains("caused by: No space left on device"),
        "{stderr}"
    );
    let id = env.only_run_id();
    assert_eq!(env.manifest(&id)["status"], "succeeded");
    for args in [
        &["runs", "list"][..],
        &["plan", "ok"],
        &["plan", "ok", "--format", "json"],
        &["status", "--run", &id],
        &["report", "junit", "--run", &id],
        &["--help"],
    ] {
        assert_eq!(lost(args).0, Some(4), "{args:?}");
    }
    // The run failed: its exit code says more than the lost output.
    assert_eq!(lost(&["start", "bad", "--format", "json"]).0, Some(1));
}

/// A reader that leaves early (`| head`) is not an error: the exit code stands.
#[test]
fn a_reader_that_leaves_keeps_the_exit_code() {
    let env = TestEnv::new().config(LONG);
    assert_eq!(env.start("ok", &[]).code, 0);
    for args in [&["runs", "list"][..], &["plan", "ok", "--format", "json"]] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = env
            .command(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{args:?}"
        );
    }
    // `status --watch` of a running run stops once nobody reads, instead of polling on.
    let mut runner = env
        .command(["start", "sig"])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(&env.path().join("started"));
    let running = std::fs::read_dir(env.path().join(".runs/0101/cli"))
        .expect("runs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|id| env.manifest(id)["status"] == "in_progress")
        .expect("the running run");
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut watch = env
        .command(["status", "--run", &running, "--watch"])
        .stdout(writer)
        .spawn()
        .expect("spawn");
    let code = wait_bounded(&mut watch, Duration::from_secs(20)).code();
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    assert_eq!(
        wait_bounded(&mut runner, Duration::from_secs(20)).code(),
        Some(143)
    );
    assert_eq!(code, Some(0));
}
