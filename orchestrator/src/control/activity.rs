//! Is a run being worked on right now? Our runners hold the run's `run.lock`; the peer's hold
//! nothing and only write a heartbeat (every 5 s: `heartbeat_at` in the manifest, the
//! `.heartbeat` file, and `runner.ndjson` as stages log). Living beside the peer in one
//! repository, a run is therefore live when a runner holds its lock, or when it is unfinished
//! and the newest of those three signs is younger than `heartbeat_stale_after_seconds` (the
//! peer's rule, `runtimeActivity.js`) — unless the run's lock names a runner of ours that was
//! its last writer and is gone: that one is known dead, whatever the heartbeat's age, so a run
//! of ours killed a moment ago can be resumed at once.

use std::path::Path;
use std::time::SystemTime;

use shared_manifest::schema::Manifest;
use shared_manifest::RunStatus;

/// What the run directory says about activity (the peer's `activity` object, plus ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The manifest's `heartbeat_at`.
    pub manifest_heartbeat_at: Option<String>,
    /// The `.heartbeat` file's timestamp.
    pub heartbeat_file_at: Option<String>,
    /// `runner.ndjson`'s modification time.
    pub runner_log_mtime_at: Option<String>,
    /// The newest of the three.
    pub observed_at: Option<String>,
    /// Which one it is: `manifest`, `heartbeat_file`, `runner_log`.
    pub observed_source: Option<&'static str>,
    /// Whole seconds since `observed_at`, for an `in_progress` run (else `None`, as the peer).
    pub age_seconds: Option<u64>,
    /// `age_seconds` above the threshold, for an `in_progress` run.
    pub stale: Option<bool>,
    /// `heartbeat_stale_after_seconds`.
    pub stale_threshold_seconds: u64,
    /// A runner of ours holds the run's lock.
    pub lock_held: bool,
    /// Someone works on the run: the lock is held, or it is unfinished with a fresh heartbeat
    /// that no dead runner of ours left.
    pub live: bool,
}

impl Activity {
    /// Unfinished and nobody works on it: only `resume` moves it on.
    pub fn abandoned(&self, status: RunStatus) -> bool {
        !status.is_terminal() && !self.live
    }
}

/// Reads the signs of activity of the run whose manifest (already read) is at `path`.
pub fn observe(path: &Path, m: &Manifest) -> Activity {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_at = std::fs::read_to_string(dir.join(".heartbeat"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| crate::time::parse(t).is_some());
    let log_at = std::fs::metadata(dir.join("runner.ndjson"))
        .and_then(|md| md.modified())
        .ok()
        .map(crate::time::format);
    let candidates = [
        (m.heartbeat_at.clone(), "manifest"),
        (file_at.clone(), "heartbeat_file"),
        (log_at.clone(), "runner_log"),
    ];
    let newest = candidates
        .iter()
        .filter_map(|(at, source)| {
            let at = at.as_ref()?;
            Some((crate::time::parse(at)?, at.clone(), *source))
        })
        // The first of equals wins (the manifest, as the peer reports it).
        .fold(
            None,
            |best: Option<(SystemTime, String, &str)>, c| match &best {
                Some(b) if b.0 >= c.0 => best,
                _ => Some(c),
            },
        );
    let age = newest.as_ref().map(|(t, _, _)| {
        SystemTime::now()
            .duration_since(*t)
            .map_or(0, |d| d.as_secs())
    });
    let threshold = m.heartbeat_stale_after_seconds;
    let fresh = age.is_some_and(|a| a <= threshold);
    let lock = dir.join("run.lock");
    let lock_held = crate::control::lock::holder(&lock).is_some();
    let live = lock_held || (!m.status.is_terminal() && fresh && !left_by_dead_runner(&lock, m));
    let in_progress = m.status == RunStatus::InProgress;
    Activity {
        manifest_heartbeat_at: m.heartbeat_at.clone(),
        heartbeat_file_at: file_at,
        runner_log_mtime_at: log_at,
        observed_at: newest.as_ref().map(|(_, at, _)| at.clone()),
        observed_source: newest.as_ref().map(|(_, _, s)| *s),
        age_seconds: age.filter(|_| in_progress),
        stale: in_progress.then_some(!fresh),
        stale_threshold_seconds: threshold,
        lock_held,
        live,
    }
}

/// True when the (free) lock at `lock` names the runner that last wrote the manifest: a runner
/// of ours, which died with the lock, so the heartbeat it left says nothing.
fn left_by_dead_runner(lock: &Path, m: &Manifest) -> bool {
    let Some(pid) = m.runner_pid else {
        return false;
    };
    std::fs::read_to_string(lock)
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .and_then(|p| p.parse::<u32>().ok())
        == Some(pid)
}
