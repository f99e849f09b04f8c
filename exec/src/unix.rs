//! Process-group signalling and process identity (Linux).

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Sends `sig` to every process of group `pgid`; a group that is already gone is not an error.
pub(crate) fn signal_group(pgid: i32, sig: Signal) {
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, signal = %sig, error = %e, "cannot signal process group"),
    }
}

/// True while a process of group `pgid` is still running. Zombies do not count: an orphan
/// whose new parent never reaps it (a container whose init does not reap) stays a zombie
/// forever, yet it runs nothing and holds nothing.
pub(crate) fn group_has_live_members(pgid: i32) -> bool {
    // Cheap common case first: no member at all, not even a zombie.
    // (EPERM means members exist that we may not signal: look closer.)
    if killpg(Pid::from_raw(pgid), None) == Err(nix::errno::Errno::ESRCH) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // Without /proc, believe the signal probe.
        return true;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(proc_stat)
        .any(|st| st.pgrp == pgid && st.is_running())
}

/// `PF_EXITING` in the `flags` field of `/proc/<pid>/stat` (include/linux/sched.h): the
/// process is inside `exit()`. It has already closed its files (which is how the pipes reached
/// end of file) but is not a zombie yet; on a loaded machine that window is long enough to be
/// seen, and such a process is dying, not leaking.
const PF_EXITING: u32 = 0x4;

/// The few fields of `/proc/<pid>/stat` the runner needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub(crate) state: char,
    /// Field 5: process group.
    pub(crate) pgrp: i32,
    /// Field 9: kernel flags (`PF_*`).
    pub(crate) flags: u32,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_ticks: u64,
}

impl ProcStat {
    /// Running, sleeping or stopped: neither a zombie (`Z`), nor dead (`X`), nor exiting.
    pub(crate) fn is_running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x') && self.flags & PF_EXITING == 0
    }
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone (or was never there).
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<ProcStat> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // `fields[0]` is field 3.
    let fields: Vec<&str> = rest.split_whitespace().take(20).collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        flags: fields.get(6)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), to tell a
/// process from a later one that reuses its pid.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|st| st.start_ticks)
}

/// Process group and start time (clock ticks since boot) of `pid`, for telling survivors of a
/// crashed runner from unrelated processes; `None` when it is gone.
pub fn process_group_and_start(pid: u32) -> Option<(i32, u64)> {
    proc_stat(pid).map(|st| (st.pgrp, st.start_ticks))
}

/// The conventional name of signal `sig` (`SIGTERM`), or `SIG<n>`.
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("SIG{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_own_start_time() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(200), "SIG200");
        assert!(process_start_ticks(std::process::id()).is_some());
        assert_eq!(process_start_ticks(u32::MAX), None);
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 777 777 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        let st = parse_stat(line).expect("parses");
        assert_eq!(
            st,
            ProcStat {
                state: 'S',
                pgrp: 777,
                flags: 4194560,
                start_ticks: 98765
            }
        );
        assert!(st.is_running());
        let exiting = "4242 (a) R 1 777 777 0 -1 4194564 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert!(!parse_stat(exiting).expect("parses").is_running());
        let zombie = "4242 (a) Z 1 777 777 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert!(!parse_stat(zombie).expect("parses").is_running());
        assert_eq!(parse_stat("4242 (truncated"), None);
        let me = proc_stat(std::process::id()).expect("own stat");
        assert_ne!(me.state, 'Z');
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
    }
}
