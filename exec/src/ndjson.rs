//! The ndjson logs: a stage's `commands/NN-<slug>.ndjson` (every event, full output) and the
//! run's `runner.ndjson` (every event of every stage; output chunks only as references, so the
//! output is stored once). One compact JSON object per line, keys in the peer's order with
//! `timestamp` and `index` last.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::errors::ExecError;

/// Events written by the orchestrator around an attempt (exec writes the `exec:*` events).
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// `command:start`.
    CommandStart {
        /// The resolved command.
        command: String,
    },
    /// `command:config` (runner log): the enforced timeout.
    CommandConfig {
        /// Timeout.
        timeout_ms: u64,
    },
    /// `exec:process` (runner log only): an attempt's process group, written the moment it is
    /// spawned, so a resume can find its survivors even if the runner dies before the manifest
    /// records the process.
    ExecProcess {
        /// Attempt number.
        attempt: u32,
        /// Pid of `sh`, which leads the group.
        pid: u32,
        /// Process group id.
        pgid: i32,
        /// Start time of `sh` in clock ticks since boot.
        start_ticks: Option<u64>,
    },
    /// `exec:remote` (runner log only): an attempt's job on a cluster, written when it was
    /// submitted or attached to (the ids are deterministic; this is the audit trail).
    ExecRemote {
        /// Attempt number.
        attempt: u32,
        /// Executor kind (`ray`).
        kind: String,
        /// Cluster address.
        address: String,
        /// The job's id on the cluster.
        submission_id: String,
        /// An earlier runner of this run had started it.
        attached: bool,
    },
    /// `command:end`.
    CommandEnd {
        /// Exit code of the final attempt.
        exit_code: Option<i32>,
        /// Signal name.
        signal: Option<String>,
        /// Duration of the final attempt.
        duration_ms: u64,
    },
    /// `command:fallback` (runner log): a failure tolerated by `allowFailure`.
    CommandFallback {
        /// `command_failed`, `timed_out`, ...
        reason: String,
        /// Exit code.
        exit_code: Option<i32>,
        /// Signal name.
        signal: Option<String>,
        /// Timeout that fired.
        timeout_ms: Option<u64>,
    },
    /// `command:retry`: another attempt follows after `delay_ms`.
    CommandRetry {
        /// The attempt about to start.
        attempt: u32,
        /// Delay before it.
        delay_ms: u64,
    },
    /// `command:warning`.
    CommandWarning {
        /// Text.
        message: String,
    },
}

impl LogEvent {
    fn fields(&self) -> Map<String, Value> {
        let v = match self {
            LogEvent::CommandStart { command } => {
                json!({"type": "command:start", "command": command})
            }
            LogEvent::CommandConfig { timeout_ms } => {
                json!({"type": "command:config", "timeout_ms": timeout_ms})
            }
            LogEvent::ExecProcess {
                attempt,
                pid,
                pgid,
                start_ticks,
            } => {
                json!({"type": "exec:process", "attempt": attempt, "pid": pid, "pgid": pgid, "start_ticks": start_ticks})
            }
            LogEvent::ExecRemote {
                attempt,
                kind,
                address,
                submission_id,
                attached,
            } => json!({
                "type": "exec:remote", "attempt": attempt, "kind": kind, "address": address,
                "submission_id": submission_id, "attached": attached,
            }),
            LogEvent::CommandEnd {
                exit_code,
                signal,
                duration_ms,
            } => {
                json!({"type": "command:end", "exit_code": exit_code, "signal": signal, "duration_ms": duration_ms})
            }
            LogEvent::CommandFallback {
                reason,
                exit_code,
                signal,
                timeout_ms,
            } => json!({
                "type": "command:fallback", "fallback": "allow_failure", "reason": reason,
                "exit_code": exit_code, "signal": signal, "timeout_ms": timeout_ms,
            }),
            LogEvent::CommandRetry { attempt, delay_ms } => {
                json!({"type": "command:retry", "attempt": attempt, "delay_ms": delay_ms})
            }
            LogEvent::CommandWarning { message } => {
                json!({"type": "command:warning", "message": message})
            }
        };
        match v {
            Value::Object(m) => m,
            _ => unreachable!("built as objects above"),
        }
    }
}

/// Adds `timestamp` and `index` (last) and renders one line with its newline.
fn line(mut fields: Map<String, Value>, index: usize) -> Vec<u8> {
    fields.insert("timestamp".into(), Value::String(crate::now_rfc3339()));
    fields.insert("index".into(), json!(index));
    let mut out =
        serde_json::to_vec(&Value::Object(fields)).expect("a JSON map with string keys serializes");
    out.push(b'\n');
    out
}

/// The run's `runner.ndjson`. Cloneable; every line is one `write_all` on an `O_APPEND` file
/// under the mutex, so lines of concurrently running stages never interleave. Unbuffered: its
/// lines are small (chunks appear only as references) and must not be lost in a buffer when
/// the runner dies.
#[derive(Debug, Clone)]
pub struct RunnerLog {
    path: Arc<PathBuf>,
    file: Arc<Mutex<File>>,
}

/// Opens `path` for appending, creating it: a retry or a resume continues the same log.
fn open_append(path: &Path) -> Result<File, ExecError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ExecError::Open {
            path: path.to_owned(),
            source,
        })
}

impl RunnerLog {
    /// Creates or appends to `path`.
    pub fn open(path: &Path) -> Result<RunnerLog, ExecError> {
        let file = open_append(path)?;
        Ok(RunnerLog {
            path: Arc::new(path.to_owned()),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Writes one event for stage `index`.
    pub fn write(&self, index: usize, event: &LogEvent) -> Result<(), ExecError> {
        self.write_raw(&line(event.fields(), index))
    }

    fn write_raw(&self, bytes: &[u8]) -> Result<(), ExecError> {
        // A panic while holding the lock cannot leave a half-written line (write_all on one
        // buffer), so a poisoned lock is still usable.
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(bytes).map_err(|source| ExecError::Write {
            path: (*self.path).clone(),
            source,
        })
    }

    /// fdatasync (end of run).
    pub fn sync(&self) -> Result<(), ExecError> {
        let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.sync_data().map_err(|source| ExecError::Write {
            path: (*self.path).clone(),
            source,
        })
    }
}

/// One stage's log plus a handle on the run's log. Appends: a retry or a resume continues the
/// same file. Buffered (64 KiB): output chunks go straight from the read buffer through here to
/// the file, so the runner's memory does not grow with the output.
#[derive(Debug)]
pub struct StageLog {
    path: PathBuf,
    file: BufWriter<File>,
    index: usize,
    runner: RunnerLog,
    log_ref: String,
    /// Reused line buffer for chunk lines (up to ~6x a 64 KiB chunk when JSON escapes it).
    scratch: Vec<u8>,
}

/// One `exec:chunk` line, serialized without copying the data. Field order is the line's key
/// order: the peer's keys, then `encoding` (base64 chunks) or `ref` (runner log), then
/// `timestamp` and `index`.
#[derive(Serialize)]
struct ChunkLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    correlation_id: &'a str,
    attempt: u32,
    stream: &'a str,
    sequence: u64,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "ref")]
    reference: Option<&'a str>,
    timestamp: &'a str,
    index: usize,
}

/// A chunk to log.
pub(crate) struct Chunk<'a> {
    pub(crate) correlation_id: &'a str,
    pub(crate) attempt: u32,
    pub(crate) stream: &'static str,
    pub(crate) sequence: u64,
    /// Raw byte count.
    pub(crate) bytes: usize,
    /// UTF-8 text, or base64 of the raw bytes.
    pub(crate) data: &'a str,
    pub(crate) base64: bool,
}

impl StageLog {
    /// Opens the stage log at `path` (append). `log_ref` is how runner lines refer to it (the
    /// repo-relative path of the stage log).
    pub fn open(
        path: &Path,
        index: usize,
        runner: RunnerLog,
        log_ref: String,
    ) -> Result<StageLog, ExecError> {
        let file = open_append(path)?;
        Ok(StageLog {
            path: path.to_owned(),
            file: BufWriter::with_capacity(64 * 1024, file),
            index,
            runner,
            log_ref,
            scratch: Vec::new(),
        })
    }

    fn err(&self, source: std::io::Error) -> ExecError {
        ExecError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes an event to the stage log and the runner log.
    pub fn write(&mut self, event: &LogEvent) -> Result<(), ExecError> {
        self.write_fields(event.fields())
    }

    /// Writes an event to the runner log only.
    pub fn write_runner_only(&mut self, event: &LogEvent) -> Result<(), ExecError> {
        self.runner.write(self.index, event)
    }

    /// Writes an `exec:*` event (other than chunks) to both logs.
    pub(crate) fn write_fields(&mut self, fields: Map<String, Value>) -> Result<(), ExecError> {
        let bytes = line(fields, self.index);
        self.file.write_all(&bytes).map_err(|e| self.err(e))?;
        self.runner.write_raw(&bytes)
    }

    /// Writes a chunk: the data to the stage log, a reference to the runner log.
    pub(crate) fn write_chunk(&mut self, c: &Chunk<'_>) -> Result<(), ExecError> {
        let ts = crate::now_rfc3339();
        let mut l = ChunkLine {
            kind: "exec:chunk",
            correlation_id: c.correlation_id,
            attempt: c.attempt,
            stream: c.stream,
            sequence: c.sequence,
            bytes: c.bytes,
            data: Some(c.data),
            encoding: c.base64.then_some("base64"),
            reference: None,
            timestamp: &ts,
            index: self.index,
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        serde_json::to_writer(&mut buf, &l).expect("chunk lines serialize into memory");
        buf.push(b'\n');
        let written = self.file.write_all(&buf);
        // Keep the buffer for the next chunk, but not a huge one (a chunk of control
        // characters escapes to 6x its size).
        if buf.capacity() <= 128 * 1024 {
            self.scratch = buf;
        }
        written.map_err(|e| self.err(e))?;
        l.data = None;
        l.encoding = None;
        l.reference = Some(&self.log_ref);
        let mut buf = serde_json::to_vec(&l).expect("chunk lines serialize into memory");
        buf.push(b'\n');
        self.runner.write_raw(&buf)
    }

    /// Pushes buffered lines to the file (no fsync), so that readers see a finished attempt,
    /// and a record written after this never claims more than the file holds (short of a
    /// power cut: the orchestrator's persister fsyncs the log before that record is durable).
    pub fn flush_buffer(&mut self) -> Result<(), ExecError> {
        self.file.flush().map_err(|e| self.err(e))
    }

    /// Flushes the buffer and fdatasyncs the stage log.
    pub fn flush(&mut self) -> Result<(), ExecError> {
        self.flush_buffer()?;
        self.file.get_ref().sync_data().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .expect("log readable")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn events_go_to_both_logs_and_chunks_are_referenced_in_the_runner_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = RunnerLog::open(&dir.path().join("runner.ndjson")).expect("open runner");
        let stage_path = dir.path().join("01-a.ndjson");
        let mut log = StageLog::open(
            &stage_path,
            1,
            runner.clone(),
            "commands/01-a.ndjson".into(),
        )
        .expect("open");
        log.write(&LogEvent::CommandStart {
            command: "echo hi".into(),
        })
        .expect("write");
        log.write_runner_only(&LogEvent::CommandConfig { timeout_ms: 5 })
            .expect("write");
        let chunk = Chunk {
            correlation_id: "c",
            attempt: 1,
            stream: "stdout",
            sequence: 1,
            bytes: 3,
            data: "/w==",
            base64: true,
        };
        log.write_chunk(&chunk).expect("chunk");
        log.write(&LogEvent::CommandFallback {
            reason: "command_failed".into(),
            exit_code: Some(3),
            signal: None,
            timeout_ms: None,
        })
        .expect("write");
        log.flush().expect("flush");

        let stage = lines(&stage_path);
        assert_eq!(stage.len(), 3);
        assert_eq!(keys(&stage[0]), ["type", "command", "timestamp", "index"]);
        assert_eq!(
            keys(&stage[1]),
            [
                "type",
                "correlation_id",
                "attempt",
                "stream",
                "sequence",
                "bytes",
                "data",
                "encoding",
                "timestamp",
                "index"
            ]
        );
        assert_eq!(
            (stage[1]["data"].as_str(), stage[1]["encoding"].as_str()),
            (Some("/w=="), Some("base64"))
        );
        assert_eq!(
            keys(&stage[2]),
            [
                "type",
                "fallback",
                "reason",
                "exit_code",
                "signal",
                "timeout_ms",
                "timestamp",
                "index"
            ]
        );

        let run = lines(&dir.path().join("runner.ndjson"));
        let types: Vec<_> = run
            .iter()
            .map(|v| v["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            types,
            [
                "command:start",
                "command:config",
                "exec:chunk",
                "command:fallback"
            ]
        );
        assert_eq!(
            keys(&run[2]),
            [
                "type",
                "correlation_id",
                "attempt",
                "stream",
                "sequence",
                "bytes",
                "ref",
                "timestamp",
                "index"
            ]
        );
        assert_eq!(run[2]["ref"], "commands/01-a.ndjson");
    }

    #[test]
    fn open_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no/such/runner.ndjson");
        let err = RunnerLog::open(&missing).expect_err("parent missing");
        assert_eq!(err.to_string(), format!("open log `{}`", missing.display()));
        assert_eq!(err.path(), missing);
    }
}
