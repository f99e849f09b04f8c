//! `exec`'s output as the peer prints it, from the stage log while the command runs: a thread
//! follows `commands/01-exec.ndjson` (the one full copy of the output) and turns each line into
//! the peer's event `{type, timestamp, payload}` (`--jsonl`, the default off a terminal), or
//! writes the output bytes back to stdout and stderr (on a terminal). It also keeps what the
//! final `run:summary` needs: the attempt's `exec:begin` and `exec:end`, and the last 64 KiB of
//! each stream (the peer keeps 64 KiB too), so memory stays bounded whatever the output size.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

/// Bytes of each stream kept for `exec:end` and `run:summary`, and of chunk data kept in the
/// summary's `toolRun.events`.
const TAIL: usize = 64 * 1024;
/// How often the log is polled for new lines.
const POLL: Duration = Duration::from_millis(20);

/// What the follower prints as the log grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// The peer's JSONL events on stdout.
    Events,
    /// The command's stdout and stderr, byte for byte, on ours.
    Output,
    /// Nothing (`--json` prints only the summary at the end).
    Nothing,
}

/// What was seen in the log.
#[derive(Debug, Default)]
pub struct Collected {
    /// The peer-shaped `exec:begin` event.
    pub begin: Option<Value>,
    /// The peer-shaped `exec:end` event.
    pub end: Option<Value>,
    /// The last bytes of stdout.
    pub stdout: Vec<u8>,
    /// The last bytes of stderr.
    pub stderr: Vec<u8>,
    /// Every event flattened (the peer's `toolRun.events`: payload keys beside `type`): the
    /// begin, the newest chunks (their data at most [`TAIL`] bytes in all), the end.
    pub flat: Vec<Value>,
}

/// A running follower.
#[derive(Debug)]
pub struct ExecStream {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Collected>,
}

impl ExecStream {
    /// Starts following `log` (which may not exist yet).
    pub fn follow(log: PathBuf, echo: Echo) -> ExecStream {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || follow(&log, echo, &flag));
        ExecStream { stop, handle }
    }

    /// Reads what is left of the log (the run has ended) and returns what was seen.
    pub fn finish(self) -> Collected {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    begin: Option<Value>,
    end: Option<Value>,
    stdout: VecDeque<u8>,
    stderr: VecDeque<u8>,
    session_id: Value,
    /// Flattened chunk events kept, and the bytes of data they hold.
    chunks: VecDeque<Value>,
    chunk_bytes: usize,
}

fn follow(log: &std::path::Path, echo: Echo, stop: &AtomicBool) -> Collected {
    let mut state = State::default();
    let mut offset = 0u64;
    let mut file: Option<std::fs::File> = None;
    loop {
        // Read the stop flag before reading: after it is set, one more full read sees every
        // line the finished run wrote.
        let last = stop.load(Ordering::SeqCst);
        if file.is_none() {
            file = std::fs::File::open(log).ok();
        }
        if let Some(f) = &file {
            if let Ok(next) = exec::logread::lines_from(f, offset, |_, line| {
                on_line(&mut state, echo, line);
                ControlFlow::Continue(())
            }) {
                offset = next;
            }
        }
        if last {
            break;
        }
        std::thread::sleep(POLL);
    }
    let flat = state
        .begin
        .iter()
        .map(flatten)
        .chain(state.chunks)
        .chain(state.end.iter().map(flatten))
        .collect();
    Collected {
        begin: state.begin,
        end: state.end,
        stdout: state.stdout.into(),
        stderr: state.stderr.into(),
        flat,
    }
}

/// `{type, timestamp, payload: {correlationId, ...}}` as `{type, correlationId, timestamp,
/// ...}`, the peer's form in `toolRun.events`.
fn flatten(e: &Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), e["type"].clone());
    m.insert(
        "correlationId".into(),
        e["payload"]["correlationId"].clone(),
    );
    m.insert("timestamp".into(), e["timestamp"].clone());
    if let Some(p) = e["payload"].as_object() {
        for (k, v) in p {
            if k != "correlationId" {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(m)
}

fn on_line(state: &mut State, echo: Echo, line: &[u8]) {
    let Ok(Value::Object(v)) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let get = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let event = match v.get("type").and_then(Value::as_str) {
        Some("exec:begin") => {
            state.session_id = get("session_id");
            let e = peer_event(
                "exec:begin",
                &get("timestamp"),
                json!({
                    "attempt": get("attempt"), "correlationId": get("correlation_id"),
                    "command": get("command"), "args": get("args"), "cwd": get("cwd"),
                    "sessionId": get("session_id"), "sandboxState": get("sandbox_state"),
                    "persisted": get("persisted"),
                }),
            );
            state.begin = Some(e.clone());
            e
        }
        Some("exec:chunk") => {
            let Some(chunk) = exec::logread::parse_chunk(line) else {
                return;
            };
            let (tail, is_err) = match chunk.stream {
                exec::logread::Stream::Stdout => (&mut state.stdout, false),
                exec::logread::Stream::Stderr => (&mut state.stderr, true),
            };
            tail.extend(&chunk.data);
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
            if echo == Echo::Output {
                if is_err {
                    crate::console::err_bytes(&chunk.data);
                } else {
                    crate::console::out_bytes(&chunk.data);
                }
                return;
            }
            let mut payload = json!({
                "attempt": get("attempt"), "correlationId": get("correlation_id"),
                "stream": get("stream"), "sequence": get("sequence"), "bytes": get("bytes"),
                "data": get("data"),
            });
            if let Some(enc) = v.get("encoding") {
                payload["encoding"] = enc.clone();
            }
            let e = peer_event("exec:chunk", &get("timestamp"), payload);
            state.chunk_bytes += chunk.data.len();
            state.chunks.push_back(flatten(&e));
            // Oldest first out, but the newest chunk always stays.
            while state.chunk_bytes > TAIL && state.chunks.len() > 1 {
                if let Some(old) = state.chunks.pop_front() {
                    let n = old["bytes"].as_u64().unwrap_or(0);
                    state.chunk_bytes = state.chunk_bytes.saturating_sub(n as usize);
                }
            }
            e
        }
        Some("exec:end") => {
            let text = |t: &VecDeque<u8>| {
                let bytes: Vec<u8> = t.iter().copied().collect();
                String::from_utf8_lossy(&bytes).into_owned()
            };
            let e = peer_event(
                "exec:end",
                &get("timestamp"),
                json!({
                    "attempt": get("attempt"), "correlationId": get("correlation_id"),
                    "exitCode": get("exit_code"), "signal": get("signal"),
                    "durationMs": get("duration_ms"), "stdout": text(&state.stdout),
                    "stderr": text(&state.stderr), "sandboxState": "unsandboxed",
                    "sessionId": state.session_id, "status": get("status"),
                }),
            );
            state.end = Some(e.clone());
            e
        }
        _ => return,
    };
    if echo == Echo::Events {
        crate::report::output::line(&event.to_string());
    }
}

/// `{type, timestamp, payload}`, the peer's event envelope.
pub fn peer_event(kind: &str, timestamp: &Value, payload: Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("timestamp".into(), timestamp.clone());
    m.insert("payload".into(), payload);
    Value::Object(m)
}
