//! What happened: the typed result of one stage attempt.

use std::time::Duration;

/// Identity of a spawned stage process, recorded so a later resume can find survivors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id of `sh`.
    pub pid: u32,
    /// Process group id (equal to `pid`: the stage leads its own group).
    pub pgid: i32,
    /// Wall-clock spawn time, ISO-8601 with milliseconds and `Z`.
    pub started_at: String,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22), to tell this process
    /// from an unrelated one that later reuses the pid.
    pub start_ticks: Option<u64>,
}

/// How the attempt ended. Never a bare exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code.
    Exited {
        /// Exit status.
        code: i32,
    },
    /// The process was killed by a signal it did not get from us.
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// The enforced timeout fired and we stopped the group.
    TimedOut {
        /// The limit that was exceeded.
        after: Duration,
        /// Signal that finally ended the main process, if it died of one.
        signal: Option<i32>,
        /// Exit code of the main process, if it exited on its own after SIGTERM.
        code: Option<i32>,
    },
    /// The runner was asked to cancel and stopped the group.
    Cancelled {
        /// Signal that finally ended the main process, if it died of one.
        signal: Option<i32>,
        /// Exit code of the main process, if it exited on its own after SIGTERM.
        code: Option<i32>,
    },
    /// `sh` could not be started (locally), or a remote executor refused the attempt or
    /// failed before the command started (Ray: the job's runtime environment failed).
    SpawnFailed {
        /// The OS error or the executor's reason, as text.
        message: String,
    },
    /// A remote executor lost the attempt: its cluster could not be reached, or it no longer
    /// knows the job (its head restarted), or the job ended without the wrapper's exit record.
    /// The attempt's real outcome is unknown.
    Lost {
        /// What happened, a whole sentence (`Ray unreachable at <address>: <error>`).
        message: String,
    },
}

/// Where a remote attempt ran, recorded with the stage (`executor` in the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteInfo {
    /// The executor kind (`ray`).
    pub kind: &'static str,
    /// The cluster's address as used (`http://127.0.0.1:8265`).
    pub address: String,
    /// The job's id on the cluster (Ray's `submission_id`).
    pub submission_id: String,
    /// The node the command ran on, once known (Ray's `driver_node_id`).
    pub node: Option<String>,
    /// The host name of that node, as the wrapper reported it.
    pub host: Option<String>,
    /// sha256 of the working-directory package shipped with the job.
    pub working_dir_sha256: Option<String>,
    /// The attempt was started by an earlier runner of this run and attached to, not
    /// submitted again.
    pub attached: bool,
    /// The job's last status as the cluster reported it (`SUCCEEDED`, `FAILED`, ...).
    pub status: Option<String>,
}

/// The in-memory part of one stream's output: only the tail, plus counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// Last `tail_bytes` bytes written to the stream.
    pub tail: Vec<u8>,
    /// Every byte written to the stream.
    pub total_bytes: u64,
    /// True when `total_bytes` exceeds what `tail` holds.
    pub truncated: bool,
}

/// One retained `exec:chunk` event (only when `max_chunk_events` > 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// Sequence number shared by both streams, from 1.
    pub sequence: u64,
    /// The raw bytes of the chunk.
    pub data: Vec<u8>,
}

/// Everything the orchestrator learns from one attempt.
#[derive(Debug, Clone)]
pub struct ExecResult {
    /// How it ended.
    pub outcome: Outcome,
    /// The spawned process, when spawning worked (local executor).
    pub process: Option<ProcessInfo>,
    /// Where the attempt ran, for a remote executor.
    pub remote: Option<RemoteInfo>,
    /// Wall time from spawn to the end of output.
    pub duration: Duration,
    /// Tail of stdout.
    pub stdout: Capture,
    /// Tail of stderr.
    pub stderr: Capture,
    /// Retained chunk events, the first `max_chunk_events` of the attempt.
    pub chunk_events: Vec<ChunkRecord>,
    /// Chunk events not retained because of the cap.
    pub dropped_chunk_events: u64,
    /// True when processes of the group outlived the main process and had to be killed: they
    /// held stdout/stderr past `leak_timeout`, or were still running (background jobs) when the
    /// output ended. Processes that left the group (`setsid`) are not killed; they are only cut
    /// off from the pipes.
    pub leaked_processes: bool,
    /// Secret values masked in the output (both streams; see `ExecSpec::secrets`).
    pub redactions: u64,
}
