//! Real git for the loop and delivery tests: a repository in a test's temp dir, commits made
//! with a throwaway identity, and small waiting helpers for runs in the background.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::TestEnv;

/// `git -C dir args...`; its trimmed stdout. Panics when git fails.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Makes the test's directory a git repository on `main` with `files` (and the config)
/// committed. `.runs/` is not ignored on purpose: the runner leaves it out of snapshots itself.
pub(crate) fn init(env: &TestEnv, files: &[(&str, &str)]) {
    let dir = env.path();
    git(dir, &["init", "-q", "-b", "main"]);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write file");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "start"]);
}

/// The lines of a file of the repository (empty when missing).
pub(crate) fn lines(env: &TestEnv, name: &str) -> Vec<String> {
    std::fs::read_to_string(env.path().join(name))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits (at most 20 s) until `path` exists.
pub(crate) fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `start <pipeline>` in the background, output discarded.
pub(crate) fn spawn_start(env: &TestEnv, pipeline: &str) -> std::process::Child {
    env.command(["start", pipeline])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the runner")
}

/// `kill -9` of a runner, reaped.
pub(crate) fn kill9(mut runner: std::process::Child) {
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGKILL).expect("kill -9 the runner");
    let _ = runner.wait();
}

/// The id of the one run of `pipeline` (the top-level run: no parent).
pub(crate) fn top_run(env: &TestEnv, pipeline: &str) -> String {
    let dir = env.path().join(".runs/0101/cli");
    std::fs::read_dir(&dir)
        .expect("runs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|id| {
            let m = env.manifest(id);
            m["pipeline_id"] == pipeline && m["parent_run_id"].is_null()
        })
        .unwrap_or_else(|| panic!("no run of {pipeline}"))
}
