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
    /// `sh` could not be started.
    SpawnFailed {
        /// The OS error, as text.
        message: String,
    },
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
    /// The spawned process, when spawning worked.
    pub process: Option<ProcessInfo>,
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
}
