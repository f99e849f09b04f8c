//! Running one attempt: spawn `sh -c` in its own process group with stdin closed, drain stdout
//! and stderr in the same `select!` as the exit, the timeout and cancellation (so a child that
//! floods both pipes never deadlocks), log every byte, keep only a bounded tail in memory, and
//! make sure nothing of the group survives the attempt.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::capture::Tail;
use crate::errors::ExecError;
use crate::ndjson::{Chunk, Piece, StageLog, Utf8Splitter};
use crate::outcome::{ChunkRecord, ExecResult, Outcome, ProcessInfo};
use crate::spec::{CancelRequest, ExecSpec};
use crate::unix::{group_alive, process_start_ticks, signal_group};

/// Largest chunk: one read buffer.
const CHUNK_BYTES: usize = 64 * 1024;
/// Output younger than this waits to be coalesced with what follows.
const COALESCE: Duration = Duration::from_millis(50);
/// After killing leaked processes, how long to drain what they left in the pipes.
const LEAK_DRAIN: Duration = Duration::from_millis(200);

/// Kills the whole group when dropped: on every way out of `run` (normal end, log error, the
/// future being dropped) nothing of the stage's group survives.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

struct Stream {
    name: &'static str,
    reader: Option<Box<dyn AsyncRead + Unpin + Send>>,
    pending: Vec<u8>,
    since: Option<Instant>,
    splitter: Utf8Splitter,
    tail: Tail,
}

impl Stream {
    fn new(
        name: &'static str,
        reader: Option<Box<dyn AsyncRead + Unpin + Send>>,
        tail: usize,
    ) -> Stream {
        Stream {
            name,
            reader,
            pending: Vec::with_capacity(CHUNK_BYTES),
            since: None,
            splitter: Utf8Splitter::default(),
            tail: Tail::new(tail),
        }
    }

    fn flush_at(&self) -> Option<Instant> {
        self.since.map(|s| s + COALESCE)
    }
}

/// Writes chunk events and counts them.
struct Emitter<'a> {
    log: &'a mut StageLog,
    correlation_id: String,
    attempt: u32,
    sequence: u64,
    max_retained: usize,
    retained: Vec<ChunkRecord>,
    dropped: u64,
}

impl Emitter<'_> {
    fn emit(&mut self, s: &mut Stream, last: bool) -> Result<(), ExecError> {
        s.since = None;
        if s.pending.is_empty() && !last {
            return Ok(());
        }
        let data = std::mem::replace(&mut s.pending, Vec::with_capacity(CHUNK_BYTES));
        s.tail.push(&data);
        let name = s.name;
        s.splitter.feed(&data, last, |piece| {
            self.sequence += 1;
            let (text, raw, base64) = match piece {
                Piece::Text(t) => (std::borrow::Cow::Borrowed(t), t.as_bytes(), false),
                Piece::Binary(b) => {
                    use base64::Engine;
                    (
                        std::borrow::Cow::Owned(
                            base64::engine::general_purpose::STANDARD.encode(b),
                        ),
                        b,
                        true,
                    )
                }
            };
            if self.retained.len() < self.max_retained {
                self.retained.push(ChunkRecord {
                    stream: name,
                    sequence: self.sequence,
                    data: raw.to_vec(),
                });
            } else {
                self.dropped += 1;
            }
            self.log.write_chunk(&Chunk {
                correlation_id: &self.correlation_id,
                attempt: self.attempt,
                stream: name,
                sequence: self.sequence,
                bytes: raw.len(),
                data: &text,
                base64,
            })
        })
    }
}

/// A random UUID-v4-shaped id.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("built as an object"),
    }
}

/// Runs one attempt of `spec`, logging to `log`. See the module docs.
pub async fn run(
    spec: &ExecSpec,
    log: &mut StageLog,
    mut cancel: watch::Receiver<CancelRequest>,
    on_spawn: impl FnOnce(&ProcessInfo) + Send,
) -> Result<ExecResult, ExecError> {
    let correlation_id = uuid_v4();
    log.write_fields(obj(json!({
        "type": "exec:begin",
        "correlation_id": correlation_id,
        "attempt": spec.attempt,
        "command": spec.command,
        "args": [],
        "cwd": spec.cwd.to_string_lossy(),
        "session_id": uuid_v4(),
        "sandbox_state": "unsandboxed",
        "persisted": false,
    })))?;
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let message = format!("sh -c in `{}`: {e}", spec.cwd.display());
            log.write_fields(obj(json!({
                "type": "exec:end", "correlation_id": correlation_id, "attempt": spec.attempt,
                "exit_code": 127, "signal": null, "duration_ms": 0, "status": "failed", "error": message,
            })))?;
            return Ok(ExecResult {
                outcome: Outcome::SpawnFailed { message },
                process: None,
                duration: started.elapsed(),
                stdout: Default::default(),
                stderr: Default::default(),
                chunk_events: Vec::new(),
                dropped_chunk_events: 0,
                leaked_processes: false,
            });
        }
    };
    let pid = child.id().expect("a just-spawned child has a pid");
    let pgid = pid as i32;
    let guard = GroupGuard(pgid);
    let process = ProcessInfo {
        pid,
        pgid,
        started_at: crate::now_rfc3339(),
        start_ticks: process_start_ticks(pid),
    };
    on_spawn(&process);

    let mut out = Stream::new(
        "stdout",
        child.stdout.take().map(|r| Box::new(r) as _),
        spec.tail_bytes,
    );
    let mut err = Stream::new(
        "stderr",
        child.stderr.take().map(|r| Box::new(r) as _),
        spec.tail_bytes,
    );
    let mut em = Emitter {
        log,
        correlation_id,
        attempt: spec.attempt,
        sequence: 0,
        max_retained: spec.max_chunk_events,
        retained: Vec::new(),
        dropped: 0,
    };
    let mut status = None;
    let mut timeout_at = spec.timeout.map(|t| started + t);
    let mut timed_out = false;
    let mut cancelled = false;
    let mut kill_at: Option<Instant> = None;
    let mut leak_at: Option<Instant> = None;
    let mut leaked = false;
    let mut cancel_open = true;
    // A cancellation that arrived before the spawn must act at once.
    cancel.mark_changed();
    let far = Instant::now() + Duration::from_secs(86400 * 365);

    loop {
        if status.is_some() && out.reader.is_none() && err.reader.is_none() {
            break;
        }
        let flush_at = [out.flush_at(), err.flush_at()].into_iter().flatten().min();
        tokio::select! {
            r = read_into(&mut out) => {
                if r && out.pending.len() >= CHUNK_BYTES { em.emit(&mut out, false)?; }
            }
            r = read_into(&mut err) => {
                if r && err.pending.len() >= CHUNK_BYTES { em.emit(&mut err, false)?; }
            }
            st = child.wait(), if status.is_none() => {
                status = Some(st.map_err(|e| ExecError { path: spec.cwd.clone(), source: e })?);
                if out.reader.is_some() || err.reader.is_some() {
                    leak_at = Some(Instant::now() + spec.leak_timeout);
                }
            }
            () = tokio::time::sleep_until(flush_at.unwrap_or(far)), if flush_at.is_some() => {
                if out.flush_at().is_some_and(|t| t <= Instant::now()) { em.emit(&mut out, false)?; }
                if err.flush_at().is_some_and(|t| t <= Instant::now()) { em.emit(&mut err, false)?; }
            }
            () = tokio::time::sleep_until(timeout_at.unwrap_or(far)), if timeout_at.is_some() && status.is_none() => {
                timeout_at = None;
                if !cancelled {
                    timed_out = true;
                    signal_group(pgid, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + spec.kill_grace);
                }
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                kill_at = None;
                signal_group(pgid, Signal::SIGKILL);
            }
            () = tokio::time::sleep_until(leak_at.unwrap_or(far)), if leak_at.is_some() => {
                if leaked {
                    // Whatever still holds the pipes is outside the group (setsid): stop
                    // reading rather than hang the run.
                    leak_at = None;
                    out.reader = None;
                    err.reader = None;
                } else {
                    leaked = true;
                    signal_group(pgid, Signal::SIGKILL);
                    leak_at = Some(Instant::now() + LEAK_DRAIN);
                }
            }
            changed = cancel.changed(), if cancel_open => {
                if changed.is_err() {
                    cancel_open = false;
                    continue;
                }
                let request = *cancel.borrow_and_update();
                match request {
                    CancelRequest::None => {}
                    CancelRequest::Graceful { .. } if status.is_none() && !cancelled => {
                        cancelled = true;
                        timeout_at = None;
                        signal_group(pgid, Signal::SIGTERM);
                        kill_at = Some(Instant::now() + spec.kill_grace);
                    }
                    CancelRequest::Graceful { .. } => {}
                    CancelRequest::Immediate { .. } => {
                        cancelled |= status.is_none();
                        kill_at = None;
                        signal_group(pgid, Signal::SIGKILL);
                    }
                }
            }
        }
    }
    em.emit(&mut out, true)?;
    em.emit(&mut err, true)?;
    // Processes of the group that closed their pipes but still run (background jobs) are
    // killed too: a stage owns its group for exactly as long as it runs.
    if group_alive(pgid) {
        leaked = true;
    }
    drop(guard);
    let status = status.expect("the loop ends only after the exit status");
    let duration = started.elapsed();
    let signal = status.signal();
    let outcome = if timed_out {
        Outcome::TimedOut {
            after: spec.timeout.unwrap_or_default(),
            signal,
        }
    } else if cancelled {
        Outcome::Cancelled { signal }
    } else if let Some(sig) = signal {
        Outcome::Signaled { signal: sig }
    } else {
        Outcome::Exited {
            code: status.code().unwrap_or(-1),
        }
    };
    let mut result = ExecResult {
        outcome,
        process: Some(process),
        duration,
        stdout: out.tail.finish(),
        stderr: err.tail.finish(),
        chunk_events: std::mem::take(&mut em.retained),
        dropped_chunk_events: em.dropped,
        leaked_processes: leaked,
    };
    let status_name = if result.succeeded() {
        "succeeded"
    } else if timed_out {
        "timed_out"
    } else if cancelled {
        "cancelled"
    } else {
        "failed"
    };
    let mut end = obj(json!({
        "type": "exec:end",
        "correlation_id": em.correlation_id,
        "attempt": spec.attempt,
        "exit_code": result.exit_code(),
        "signal": result.signal(),
        "duration_ms": u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        "status": status_name,
    }));
    if timed_out {
        end.insert("timed_out".into(), Value::Bool(true));
    }
    if leaked {
        end.insert("leaked_processes".into(), Value::Bool(true));
    }
    em.log.write_fields(end)?;
    result.duration = duration;
    Ok(result)
}

/// Reads what is available into the stream's pending buffer; false at end of stream (and the
/// reader is dropped). Pending when the stream is closed, so `select!` skips it.
async fn read_into(s: &mut Stream) -> bool {
    let Some(reader) = s.reader.as_mut() else {
        return std::future::pending().await;
    };
    if s.pending.capacity() - s.pending.len() == 0 {
        s.pending.reserve(CHUNK_BYTES);
    }
    match reader.read_buf(&mut s.pending).await {
        Ok(0) | Err(_) => {
            s.reader = None;
            false
        }
        Ok(_) => {
            s.since.get_or_insert_with(Instant::now);
            true
        }
    }
}
