//! Running one attempt of a stage: spawn `sh -c` in its own process group with stdin closed,
//! drain stdout and stderr in the same `select!` as the exit, the timers and cancellation (so a
//! child that floods both pipes never deadlocks), log every byte as it comes, keep only a
//! bounded tail in memory, and make sure nothing of the group survives the attempt.
//!
//! Memory does not grow with the output: each stream has one read buffer of at most 64 KiB,
//! flushed as `exec:chunk` events when it is full or its oldest byte is 50 ms old, straight into
//! the stage log's `BufWriter`; only the last `tail_bytes` of each stream and the first
//! `max_chunk_events` chunks are kept.
//!
//! What a process group cannot reach: a process that calls `setsid` (a daemon) leaves the
//! stage's group on purpose. It is not killed; if it still holds the stage's pipes after the
//! leak wait, the runner stops reading them, and the attempt ends anyway.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::capture::Tail;
use crate::chunk::split_pieces;
use crate::emit::{uuid_v4, Emitter};
use crate::errors::ExecError;
use crate::ndjson::StageLog;
use crate::outcome::{ExecResult, Outcome, ProcessInfo};
use crate::spec::{CancelRequest, ExecSpec};
use crate::stop::{Action, Stopper};
use crate::unix::{group_has_live_members, process_start_ticks, signal_group};

/// Largest chunk, and the size of each stream's read buffer.
const CHUNK_BYTES: usize = 64 * 1024;
/// Output younger than this waits to be coalesced with what follows: a stage printing 100 000
/// tiny lines makes a few dozen chunk events, not 100 000.
const COALESCE: Duration = Duration::from_millis(50);

/// Kills the whole group when dropped. `tokio`'s `kill_on_drop` would only kill `sh`; this
/// covers every way out of `run` (normal end, a log write error, the future being dropped), so
/// nothing of the stage's group survives the attempt.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// One output stream being drained.
struct Stream {
    name: &'static str,
    /// `None` once the stream ended (or we stopped reading it).
    reader: Option<Reader>,
    /// Bytes read and not logged yet: never more than `CHUNK_BYTES`. Between flushes it may
    /// start with an unfinished code point (at most 3 bytes) carried from the previous chunk.
    pending: Vec<u8>,
    /// Arrival of the oldest fresh byte in `pending`; `None` when nothing fresh is pending.
    since: Option<Instant>,
    tail: Tail,
}

impl Stream {
    fn new(name: &'static str, reader: Option<Reader>, tail_bytes: usize) -> Stream {
        Stream {
            name,
            reader,
            pending: Vec::with_capacity(CHUNK_BYTES),
            since: None,
            tail: Tail::new(tail_bytes),
        }
    }

    fn open(&self) -> bool {
        self.reader.is_some()
    }

    /// Open, with room in the buffer for another read.
    fn readable(&self) -> bool {
        self.open() && self.pending.len() < CHUNK_BYTES
    }

    /// When pending output must be logged at the latest.
    fn due(&self) -> Option<Instant> {
        self.since.map(|s| s + COALESCE)
    }
}

/// Reads once into the stream's buffer, never past `CHUNK_BYTES` in all. Cancel-safe, which
/// `select!` needs: `read_buf` appends only what a completed read returned, so dropping this
/// future when another branch wins loses no bytes.
async fn read_some(s: &mut Stream) -> std::io::Result<usize> {
    let room = (CHUNK_BYTES - s.pending.len()) as u64;
    match s.reader.as_mut() {
        Some(r) => r.take(room).read_buf(&mut s.pending).await,
        None => Ok(0),
    }
}

/// Logs what both streams have pending, older data first, so that `sequence` follows the order
/// the output was produced in (as closely as coalescing allows).
fn flush(em: &mut Emitter<'_>, a: &mut Stream, b: &mut Stream) -> Result<(), ExecError> {
    let b_first = match (a.since, b.since) {
        (Some(x), Some(y)) => y < x,
        (None, Some(_)) => true,
        _ => false,
    };
    if b_first {
        emit(em, b)?;
        emit(em, a)
    } else {
        emit(em, a)?;
        emit(em, b)
    }
}

/// Logs what `s` has pending: everything once the stream is closed, otherwise everything but
/// an unfinished code point at the end, which waits for the next read.
fn emit(em: &mut Emitter<'_>, s: &mut Stream) -> Result<(), ExecError> {
    s.since = None;
    let last = !s.open();
    em.emit(s.name, &mut s.pending, last, &mut s.tail)
}

/// Accounts for one read of `this`. A stream that ended or filled its buffer is logged at once.
fn after_read(
    em: &mut Emitter<'_>,
    this: &mut Stream,
    other: &mut Stream,
    read: std::io::Result<usize>,
) -> Result<(), ExecError> {
    match read {
        Ok(0) => this.reader = None,
        Ok(_) => {
            this.since.get_or_insert_with(Instant::now);
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(e) => {
            // A pipe read does not fail in practice; if it does, the stream is over for us.
            tracing::warn!(stream = this.name, error = %e, "cannot read stage output; treating it as ended");
            this.reader = None;
        }
    }
    if !this.open() || this.pending.len() >= CHUNK_BYTES {
        flush(em, this, other)?;
    }
    Ok(())
}

/// How long [`wait_group_gone`] waits for killed processes to disappear. SIGKILL cannot be
/// caught, so only a process stuck in uninterruptible sleep (a hung NFS read) takes longer;
/// the runner then goes on rather than hang, and says so.
const GONE_WAIT: Duration = Duration::from_secs(2);

/// Polls until no process of group `pgid` runs (zombies and exiting processes do not count).
async fn wait_group_gone(pgid: i32) {
    let deadline = Instant::now() + GONE_WAIT;
    while group_has_live_members(pgid) {
        if Instant::now() >= deadline {
            tracing::warn!(pgid, "processes of the stage's group outlived SIGKILL");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Carries out a decision of the [`Stopper`].
fn apply(action: Action, pgid: i32, out: &mut Stream, err: &mut Stream) {
    match action {
        Action::Term => signal_group(pgid, Signal::SIGTERM),
        Action::Kill => signal_group(pgid, Signal::SIGKILL),
        Action::Detach => {
            if out.open() || err.open() {
                tracing::warn!(pgid, "a process outside the stage's group still holds its output; no longer reading it");
            }
            out.reader = None;
            err.reader = None;
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs one attempt of `spec`, logging `exec:begin`, `exec:chunk`s and `exec:end` to `log`
/// (chunks with their data in the stage log, as references in `runner.ndjson`). `on_spawn` is
/// called right after the process started. Returns `Ok` for every way the command can end,
/// including a failed spawn; `Err` only when the logs cannot be written (or the OS refuses to
/// wait), and even then the process group is killed first.
///
/// The same as [`Local`](crate::Local)'s `start` then `wait`, for callers that do not need the
/// executor seam.
pub async fn run(
    spec: &ExecSpec,
    log: &mut StageLog,
    cancel: watch::Receiver<CancelRequest>,
    on_spawn: impl FnOnce(&ProcessInfo) + Send,
) -> Result<ExecResult, ExecError> {
    let attempt = start(spec, log)?;
    if let LocalAttempt::Running(r) = &attempt {
        on_spawn(&r.process);
    }
    attempt.wait(log, cancel).await
}

/// A local attempt after its start: running, or over because `sh` could not be spawned.
pub(crate) enum LocalAttempt {
    /// `sh` runs in its own group.
    Running(Box<Spawned>),
    /// The spawn failed; `exec:end` is logged already.
    Ended(Box<ExecResult>),
}

/// A spawned attempt whose output is not drained yet.
pub(crate) struct Spawned {
    spec: ExecSpec,
    child: tokio::process::Child,
    /// Kills the group when dropped, whichever way the attempt ends (see [`GroupGuard`]).
    guard: GroupGuard,
    pub(crate) process: ProcessInfo,
    correlation_id: String,
    /// Spawn time: the timeout counts from here.
    started: Instant,
}

/// Starts one attempt: logs `exec:begin`, spawns `sh -c` in its own process group with stdin
/// closed and both outputs piped, and logs the group to `runner.ndjson` at once. A failed
/// spawn is not an error: it is logged (`exec:end`) and the attempt is over.
pub(crate) fn start(spec: &ExecSpec, log: &mut StageLog) -> Result<LocalAttempt, ExecError> {
    let correlation_id = uuid_v4();
    log.write_fields(obj(json!({
        "type": "exec:begin",
        "correlation_id": correlation_id,
        "attempt": spec.attempt,
        "command": spec.shown_command(),
        "args": spec.shown_args(),
        "cwd": spec.cwd.to_string_lossy(),
        "session_id": uuid_v4(),
        // We do not sandbox stages; say so rather than copy the peer's "sandboxed".
        "sandbox_state": "unsandboxed",
        "persisted": false,
    })))?;
    let started = Instant::now();
    // `/bin/sh` by path: a bare `sh` makes every spawn search `PATH` (8 failed execve calls
    // per stage on a usual PATH), and the shell a stage gets must not depend on the PATH the
    // runner was started with (the peer's `shell: true` is `/bin/sh` too).
    let mut cmd = match &spec.args {
        None => {
            let mut sh = tokio::process::Command::new("/bin/sh");
            sh.arg("-c").arg(&spec.command);
            sh
        }
        // Argv mode: the program itself leads the group, its arguments untouched by a shell.
        Some(args) => {
            let mut program = tokio::process::Command::new(&spec.command);
            program.args(args);
            program
        }
    };
    cmd.current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, led by `sh`: timeouts and cancellation signal the whole group, and
        // the terminal's Ctrl-C does not reach it behind the runner's back.
        .process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let message = match &spec.args {
                None => format!("sh -c in `{}`: {e}", spec.cwd.display()),
                Some(_) => format!("`{}` in `{}`: {e}", spec.command, spec.cwd.display()),
            };
            log.write_fields(obj(json!({
                "type": "exec:end",
                "correlation_id": correlation_id,
                "attempt": spec.attempt,
                "exit_code": 127,
                "signal": null,
                "duration_ms": millis(started.elapsed()),
                "status": "failed",
                "error": message,
            })))?;
            log.flush_buffer()?;
            return Ok(LocalAttempt::Ended(Box::new(ExecResult {
                outcome: Outcome::SpawnFailed { message },
                process: None,
                remote: None,
                duration: started.elapsed(),
                stdout: Default::default(),
                stderr: Default::default(),
                chunk_events: Vec::new(),
                dropped_chunk_events: 0,
                leaked_processes: false,
                redactions: 0,
            })));
        }
    };
    let pid = child
        .id()
        .expect("a child that was never waited for has a pid");
    let pgid = i32::try_from(pid).expect("pids fit in pid_t");
    let guard = GroupGuard(pgid);
    // `sh` is not reaped before `wait()` below, so its /proc entry is there to read.
    let process = ProcessInfo {
        pid,
        pgid,
        started_at: crate::now_rfc3339(),
        start_ticks: process_start_ticks(pid),
    };
    // Unbuffered and before anything else: once `sh` runs, a record of its group exists that
    // survives a crash of the runner (the manifest gets it later, from the caller).
    log.write_runner_only(&crate::ndjson::LogEvent::ExecProcess {
        attempt: spec.attempt,
        pid,
        pgid,
        start_ticks: process.start_ticks,
    })?;
    Ok(LocalAttempt::Running(Box::new(Spawned {
        spec: spec.clone(),
        child,
        guard,
        process,
        correlation_id,
        started,
    })))
}

impl LocalAttempt {
    /// Drains the attempt's output into `log` until it ends, enforcing the timeout and
    /// following `cancel`, then logs `exec:end`.
    pub(crate) async fn wait(
        self,
        log: &mut StageLog,
        cancel: watch::Receiver<CancelRequest>,
    ) -> Result<ExecResult, ExecError> {
        match self {
            LocalAttempt::Ended(result) => Ok(*result),
            LocalAttempt::Running(spawned) => spawned.wait(log, cancel).await,
        }
    }
}

impl Spawned {
    async fn wait(
        self,
        log: &mut StageLog,
        mut cancel: watch::Receiver<CancelRequest>,
    ) -> Result<ExecResult, ExecError> {
        let Spawned {
            spec,
            mut child,
            guard,
            process,
            correlation_id,
            started,
        } = self;
        let (pid, pgid) = (process.pid, process.pgid);
        let mut out = Stream::new(
            "stdout",
            child.stdout.take().map(|r| Box::new(r) as Reader),
            spec.tail_bytes,
        );
        let mut err = Stream::new(
            "stderr",
            child.stderr.take().map(|r| Box::new(r) as Reader),
            spec.tail_bytes,
        );
        let mut em = Emitter::new(log, correlation_id, spec.attempt, spec.max_chunk_events)
            .redacting(spec.secrets.clone());
        let mut stopper = Stopper::new(started, spec.timeout, spec.kill_grace, spec.leak_timeout);
        let mut status: Option<ExitStatus> = None;
        // A cancellation requested before the spawn acts at once.
        let request = *cancel.borrow_and_update();
        if let Some(action) = stopper.cancel(request, Instant::now()) {
            apply(action, pgid, &mut out, &mut err);
        }
        let mut cancel_open = true;

        // Ends when the main process was reaped and both pipes reached end of file (or were
        // abandoned to a process outside the group).
        while status.is_none() || out.open() || err.open() {
            let deadline = [out.due(), err.due(), stopper.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                read = read_some(&mut out), if out.readable() => after_read(&mut em, &mut out, &mut err, read)?,
                read = read_some(&mut err), if err.readable() => after_read(&mut em, &mut err, &mut out, read)?,
                st = child.wait(), if status.is_none() => {
                    let st = st.map_err(|source| ExecError::Wait { pid, cwd: spec.cwd.clone(), source })?;
                    status = Some(st);
                    stopper.exited(Instant::now(), out.open() || err.open());
                }
                () = tokio::time::sleep_until(deadline.unwrap_or(started)), if deadline.is_some() => {
                    let now = Instant::now();
                    while let Some(action) = stopper.expire(now) {
                        apply(action, pgid, &mut out, &mut err);
                    }
                    if [out.due(), err.due()].into_iter().flatten().any(|d| d <= now) {
                        flush(&mut em, &mut out, &mut err)?;
                        // Output that trickles (the coalescing timer fired, not a full chunk)
                        // reaches the file now, so followers of the log (`exec`'s live output,
                        // `serve`) see it as it comes. Heavy output fills chunks instead and
                        // stays buffered: no extra write per chunk.
                        em.log.flush_buffer()?;
                    }
                }
                changed = cancel.changed(), if cancel_open => match changed {
                    Ok(()) => {
                        let request = *cancel.borrow_and_update();
                        if let Some(action) = stopper.cancel(request, Instant::now()) {
                            apply(action, pgid, &mut out, &mut err);
                        }
                    }
                    // Every sender is gone: no cancellation can come any more.
                    Err(_) => cancel_open = false,
                },
            }
        }
        // Both streams are closed: this logs everything, unfinished code points included.
        flush(&mut em, &mut out, &mut err)?;
        let duration = started.elapsed();
        // Group members still running now closed their pipes but outlived `sh` (background
        // jobs): a stage owns its group for exactly as long as it runs, so they are killed too.
        let leftovers = group_has_live_members(pgid);
        drop(guard);
        // SIGKILL is delivered asynchronously: wait until the group is really gone, so that
        // when a stage is reported finished nothing of it still runs (a cancelled or timed-out
        // run must not leave a process behind for even a moment after the runner exits).
        wait_group_gone(pgid).await;

        let status = status.expect("the loop ends only once the exit status is known");
        let (signal, code) = (status.signal(), status.code());
        let outcome = if stopper.timed_out {
            Outcome::TimedOut {
                after: spec.timeout.unwrap_or_default(),
                signal,
                code,
            }
        } else if stopper.cancelled {
            Outcome::Cancelled { signal, code }
        } else if let Some(signal) = signal {
            Outcome::Signaled { signal }
        } else {
            // `wait` reports only exits and deaths by signal, so a code is always there.
            Outcome::Exited {
                code: code.unwrap_or(-1),
            }
        };
        let result = ExecResult {
            outcome,
            process: Some(process),
            remote: None,
            duration,
            stdout: out.tail.finish(),
            stderr: err.tail.finish(),
            chunk_events: std::mem::take(&mut em.retained),
            dropped_chunk_events: em.dropped,
            leaked_processes: stopper.leaked || leftovers,
            redactions: em.redactions(),
        };
        let mut end = end_fields(&em.correlation_id, spec.attempt, &result, duration);
        if result.leaked_processes {
            end.insert("leaked_processes".into(), Value::Bool(true));
        }
        em.log.write_fields(end)?;
        em.log.flush_buffer()?;
        Ok(result)
    }
}

/// The fields of `exec:end` every executor writes: exit code, signal, duration, status, and
/// `timed_out` when the timeout fired.
pub(crate) fn end_fields(
    correlation_id: &str,
    attempt: u32,
    result: &ExecResult,
    duration: Duration,
) -> Map<String, Value> {
    let status_name = if result.succeeded() {
        "succeeded"
    } else if result.timed_out() {
        "timed_out"
    } else if matches!(result.outcome, Outcome::Cancelled { .. }) {
        "cancelled"
    } else {
        "failed"
    };
    let mut end = obj(json!({
        "type": "exec:end",
        "correlation_id": correlation_id,
        "attempt": attempt,
        "exit_code": result.exit_code(),
        "signal": result.signal(),
        "duration_ms": millis(duration),
        "status": status_name,
    }));
    if result.timed_out() {
        end.insert("timed_out".into(), Value::Bool(true));
    }
    end
}

/// Logs `data` as one stream's output read in `read_size` pieces, through the same splitting,
/// encoding and writing as a running stage (without a process). For micro-benchmarks of the
/// chunk path only; returns the number of chunk events written.
#[doc(hidden)]
pub fn log_output_for_bench(
    log: &mut StageLog,
    data: &[u8],
    read_size: usize,
) -> Result<u64, ExecError> {
    let mut em = Emitter::new(log, uuid_v4(), 1, 0);
    let mut pending: Vec<u8> = Vec::with_capacity(read_size + 4);
    let reads: Vec<&[u8]> = data.chunks(read_size.max(1)).collect();
    for (i, read) in reads.iter().enumerate() {
        pending.extend_from_slice(read);
        let last = i + 1 == reads.len();
        let consumed = split_pieces(&pending, last, |piece| em.piece("stdout", piece))?;
        pending.drain(..consumed);
    }
    Ok(em.sequence)
}
