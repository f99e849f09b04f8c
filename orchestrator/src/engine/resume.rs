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

use crate::record::layout::Roots;

/// `(pid, pgid, start_ticks)` of every process, from `/proc`.
fn processes() -> Vec<(i32, i32, u64)> {
    proc_pids()
        .into_iter()
        .filter_map(|pid| {
            let (pgid, ticks) = exec::process_group_and_start(pid)?;
            Some((i32::try_from(pid).ok()?, pgid, ticks))
        })
        .collect()
}

fn proc_pids() -> Vec<u32> {
    std::fs::read_dir("/proc").map_or_else(
        |_| Vec::new(),
        |d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        },
    )
}

/// How deep child runs are followed: sub-pipeline cycles are rejected at plan time, this only
/// guards against a hand-edited manifest naming itself.
const MAX_CHILD_DEPTH: usize = 16;

/// The child runs below `m` (a sub-pipeline's child run ran in the same runner as its parent),
/// read from their manifests; unreadable ones are left out.
fn descendants(m: &Manifest, roots: &Roots) -> Vec<Manifest> {
    let mut out = Vec::new();
    let mut todo: Vec<(String, usize)> = m
        .child_runs
        .iter()
        .map(|c| (c.manifest.clone(), 1))
        .collect();
    while let Some((path, depth)) = todo.pop() {
        // A recorded path that leaves `.runs` (a damaged manifest) is not followed.
        let Some(child) = roots
            .recorded_path(&path)
            .and_then(|p| crate::history::read_manifest(&p).ok())
        else {
            continue;
        };
        if depth < MAX_CHILD_DEPTH {
            todo.extend(
                child
                    .child_runs
                    .iter()
                    .map(|c| (c.manifest.clone(), depth + 1)),
            );
        }
        out.push(child);
    }
    out
}

/// Kills what is left of the stages of a crashed runner, in this run and in its child runs;
/// returns how many groups. `roots` resolves the recorded paths of manifests and logs (only
/// those under `.runs` are followed).
pub fn kill_survivors(m: &Manifest, roots: &Roots) -> usize {
    let procs = processes();
    let children = descendants(m, roots);
    std::iter::once(m)
        .chain(&children)
        .map(|run| kill_groups(run, roots, &procs))
        .sum()
}

/// Kills the surviving process groups of one run's stages.
fn kill_groups(m: &Manifest, roots: &Roots, procs: &[(i32, i32, u64)]) -> usize {
    let mut killed = 0;
    // Every group the run ever spawned: the manifest's records, and the runner log's
    // `exec:process` lines, written the moment each attempt was spawned (the manifest may not
    // have the latest attempt yet when the runner died). Groups that ended are gone; the
    // identity check leaves reused pids alone.
    let mut groups: Vec<(String, i32, Option<u64>)> = m
        .commands
        .iter()
        .filter_map(|c| Some((c.id.clone(), c.process.as_ref()?)))
        .map(|(id, p)| (id, p.pgid, p.start_ticks))
        .collect();
    if let Some(log) = roots.recorded_path(&m.log_path) {
        groups.extend(logged_groups(&log, m));
    }
    groups.sort_by_key(|g| g.1);
    groups.dedup_by_key(|g| g.1);
    for (stage, pgid, start_ticks) in groups {
        let leader = procs.iter().find(|(pid, _, _)| *pid == pgid);
        let ours = match (leader, start_ticks) {
            (Some((_, _, ticks)), Some(recorded)) => *ticks == recorded,
            // Alive but no recorded start time: cannot prove identity, leave it.
            (Some(_), None) => false,
            (None, _) => procs.iter().any(|(_, pgrp, _)| *pgrp == pgid),
        };
        if ours {
            tracing::warn!(%stage, pgid, "killing survivors of a crashed runner");
            if killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    killed
}

/// Kills every process that carries this run's id in its environment (`CODEX_ORCHESTRATOR_RUN_ID`,
/// which every stage gets and its children inherit), and the same for its child runs; returns
/// how many. This finds what the recorded groups cannot: a stage spawned in the instant before
/// the runner logged its group, and processes that left the group (`setsid` daemons). Only
/// for a run whose lock we hold: no live runner's stage carries the id then.
pub fn kill_marked(m: &Manifest, roots: &Roots) -> usize {
    let marks: Vec<Vec<u8>> = std::iter::once(m.run_id.clone())
        .chain(descendants(m, roots).into_iter().map(|c| c.run_id))
        .map(|id| format!("{}={id}", crate::env_vars::RUN_ID).into_bytes())
        .collect();
    let me = std::process::id();
    let mut killed = 0;
    // A survivor may be forking while we look: repeat until a pass finds nothing (bounded).
    for _ in 0..10 {
        let found: Vec<u32> = proc_pids()
            .into_iter()
            .filter(|&pid| pid != me && carries_mark(pid, &marks))
            .collect();
        if found.is_empty() {
            break;
        }
        for pid in found {
            let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
            if nix::sys::signal::kill(pid, Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    killed
}

/// True when `/proc/<pid>/environ` has one of `marks` as a whole entry. Zombies have an empty
/// environ and are not counted (they run nothing). A process of a Ray stage (a job of a
/// cluster that runs on this machine) carries the mark too but is not the crashed runner's:
/// the cluster runs it, and the resumed stage attaches to it.
fn carries_mark(pid: u32, marks: &[Vec<u8>]) -> bool {
    let remote = format!("{}=ray", crate::env_vars::EXECUTOR).into_bytes();
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        let mut entries = env.split(|&b| b == 0);
        let marked = entries
            .clone()
            .any(|e| marks.iter().any(|m| e == m.as_slice()));
        marked && !entries.any(|e| e == remote.as_slice())
    })
}

/// `(stage id, pgid, start_ticks)` of every `exec:process` line in the runner log at `path`.
/// Read line by line: the log also references every output chunk of the run.
fn logged_groups(path: &Path, m: &Manifest) -> Vec<(String, i32, Option<u64>)> {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("\"exec:process\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| {
            let index = usize::try_from(v["index"].as_u64()?).ok()?;
            let stage = m.commands.get(index.checked_sub(1)?)?.id.clone();
            let pgid = i32::try_from(v["pgid"].as_i64()?).ok()?;
            Some((stage, pgid, v["start_ticks"].as_u64()))
        })
        .collect()
}

/// True when the stage is done for a resume: succeeded, or skipped by `allowFailure`. A stage
/// skipped because a dependency failed never ran and runs again; one the run's stage
/// selection left out is decided again by the resumed run's selection.
pub fn is_done(c: &CommandRecord) -> bool {
    match c.status {
        CommandStatus::Succeeded => true,
        CommandStatus::Skipped => !matches!(
            c.outcome.as_deref(),
            Some("dependency_failed" | "not_selected")
        ),
        _ => false,
    }
}
