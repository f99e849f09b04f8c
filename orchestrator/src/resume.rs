//! What a resume must do before running anything: kill the survivors of a crashed runner's
//! stages, and decide which stages are left to run.
//!
//! Survivor identity: each running stage recorded its process group and the leader's start time
//! (clock ticks since boot). If the leader is alive with that start time, the group is ours. If
//! the leader is alive with another start time, the pid was reused: leave it alone. If the
//! leader is gone, the kernel cannot hand its pid out as a new group id while members of the old
//! group live, so any process still in that group is a survivor of ours.

use std::path::Path;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shared_manifest::schema::{CommandRecord, Manifest};
use shared_manifest::CommandStatus;

/// `(pid, pgid, start_ticks)` of every process, from `/proc`.
fn processes() -> Vec<(i32, i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state(3) ppid(4) pgrp(5) ... starttime(22).
            Some((
                pid,
                fields.get(2)?.parse().ok()?,
                fields.get(19)?.parse().ok()?,
            ))
        })
        .collect()
}

/// How deep child runs are followed: sub-pipeline cycles are rejected at plan time, this only
/// guards against a hand-edited manifest naming itself.
const MAX_CHILD_DEPTH: usize = 16;

/// Kills what is left of stages a crashed runner left `running`, in this run and in the child
/// runs of its running sub-pipeline stages (a child's stages ran in the same crashed runner);
/// returns how many groups. `repo` resolves the repo-relative child manifest paths.
pub fn kill_survivors(m: &Manifest, repo: &Path) -> usize {
    kill_survivors_in(m, repo, &processes(), 0)
}

fn kill_survivors_in(m: &Manifest, repo: &Path, procs: &[(i32, i32, u64)], depth: usize) -> usize {
    let mut killed = 0;
    for c in m
        .commands
        .iter()
        .filter(|c| c.status == CommandStatus::Running)
    {
        if let Some(child) = c
            .sub_run_id
            .as_ref()
            .and_then(|id| m.child_runs.iter().find(|r| &r.run_id == id))
            .filter(|_| depth < MAX_CHILD_DEPTH)
        {
            if let Ok(cm) = crate::history::read_manifest(&repo.join(&child.manifest)) {
                killed += kill_survivors_in(&cm, repo, procs, depth + 1);
            }
            continue;
        }
        let Some(p) = &c.process else { continue };
        let leader = procs.iter().find(|(pid, _, _)| *pid == p.pgid);
        let ours = match (leader, p.start_ticks) {
            (Some((_, _, ticks)), Some(recorded)) => *ticks == recorded,
            // Alive but no recorded start time: cannot prove identity, leave it.
            (Some(_), None) => false,
            (None, _) => procs.iter().any(|(_, pgrp, _)| *pgrp == p.pgid),
        };
        if ours {
            tracing::warn!(stage = %c.id, pgid = p.pgid, "killing survivors of a crashed runner");
            if killpg(Pid::from_raw(p.pgid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

/// True when the stage is done for a resume: succeeded, or skipped by `allowFailure` (a stage
/// skipped because a dependency failed never ran and runs again).
pub fn is_done(c: &CommandRecord) -> bool {
    match c.status {
        CommandStatus::Succeeded => true,
        CommandStatus::Skipped => c.outcome.as_deref() != Some("dependency_failed"),
        _ => false,
    }
}
