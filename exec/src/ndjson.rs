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
        serde_json::to_vec(&Value::Object(fields)).expect("a JSON value always serializes");
    out.push(b'\n');
    out
}

/// The run's `runner.ndjson`. Cloneable; every line is one `write` under the mutex, so lines of
/// concurrently running stages never interleave. Unbuffered: its lines are small (no output).
#[derive(Debug, Clone)]
pub struct RunnerLog {
    path: Arc<PathBuf>,
    file: Arc<Mutex<File>>,
}

impl RunnerLog {
    /// Creates or appends to `path`.
    pub fn open(path: &Path) -> Result<RunnerLog, ExecError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ExecError {
                path: path.to_owned(),
                source,
            })?;
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
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(bytes).map_err(|source| ExecError {
            path: (*self.path).clone(),
            source,
        })
    }

    /// fdatasync (end of run).
    pub fn sync(&self) -> Result<(), ExecError> {
        let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.sync_data().map_err(|source| ExecError {
            path: (*self.path).clone(),
            source,
        })
    }
}

/// One stage's log plus the run's log. Appends: a retry or a resume continues the same file.
#[derive(Debug)]
pub struct StageLog {
    path: PathBuf,
    file: BufWriter<File>,
    index: usize,
    runner: RunnerLog,
    log_ref: String,
}

/// One `exec:chunk` line, serialized without copying the data.
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
    /// UTF-8 text or base64 of the raw bytes.
    pub(crate) data: &'a str,
    pub(crate) base64: bool,
}

impl StageLog {
    /// Opens the stage log at `path` (append). `log_ref` is how runner lines refer to it.
    pub fn open(
        path: &Path,
        index: usize,
        runner: RunnerLog,
        log_ref: String,
    ) -> Result<StageLog, ExecError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ExecError {
                path: path.to_owned(),
                source,
            })?;
        Ok(StageLog {
            path: path.to_owned(),
            file: BufWriter::with_capacity(64 * 1024, file),
            index,
            runner,
            log_ref,
        })
    }

    fn err(&self, source: std::io::Error) -> ExecError {
        ExecError {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes an event to the stage log and the runner log.
    pub fn write(&mut self, event: &LogEvent) -> Result<(), ExecError> {
        let bytes = line(event.fields(), self.index);
        self.file.write_all(&bytes).map_err(|e| self.err(e))?;
        self.runner.write_raw(&bytes)
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
        let mut buf = serde_json::to_vec(&l).expect("chunk lines always serialize");
        buf.push(b'\n');
        self.file.write_all(&buf).map_err(|e| self.err(e))?;
        l.data = None;
        l.encoding = None;
        l.reference = Some(&self.log_ref);
        let mut buf = serde_json::to_vec(&l).expect("chunk lines always serialize");
        buf.push(b'\n');
        self.runner.write_raw(&buf)
    }

    /// Flushes the buffer and fdatasyncs the stage log.
    pub fn flush(&mut self) -> Result<(), ExecError> {
        self.file.flush().map_err(|e| self.err(e))?;
        self.file.get_ref().sync_data().map_err(|e| self.err(e))
    }
}

/// Splits a stream's bytes into chunk payloads: valid UTF-8 as text, never cutting a code point;
/// invalid bytes as base64. An incomplete code point at the end is carried to the next read.
#[derive(Debug, Default)]
pub(crate) struct Utf8Splitter {
    carry: Vec<u8>,
}

/// One payload: text, or raw bytes to base64.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl Utf8Splitter {
    /// Feeds `input` (with any carried bytes prepended) and calls `emit` per piece. With
    /// `last`, nothing is carried: an incomplete trailing sequence is emitted as binary.
    pub(crate) fn feed<E>(
        &mut self,
        input: &[u8],
        last: bool,
        mut emit: impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let owned;
        let mut buf: &[u8] = if self.carry.is_empty() {
            input
        } else {
            let mut v = std::mem::take(&mut self.carry);
            v.extend_from_slice(input);
            owned = v;
            &owned
        };
        while !buf.is_empty() {
            match std::str::from_utf8(buf) {
                Ok(s) => {
                    emit(Piece::Text(s))?;
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if valid > 0 {
                        emit(Piece::Text(
                            std::str::from_utf8(&buf[..valid]).expect("checked valid"),
                        ))?;
                        buf = &buf[valid..];
                        continue;
                    }
                    match e.error_len() {
                        None if !last => {
                            // An incomplete code point at the very end: wait for the rest.
                            self.carry.extend_from_slice(buf);
                            break;
                        }
                        None => {
                            emit(Piece::Binary(buf))?;
                            break;
                        }
                        Some(mut n) => {
                            // Gather the whole run of invalid bytes into one binary piece.
                            while n < buf.len() {
                                match std::str::from_utf8(&buf[n..]) {
                                    Err(e2) if e2.valid_up_to() == 0 => match e2.error_len() {
                                        Some(k) => n += k,
                                        None if last => n = buf.len(),
                                        None => break,
                                    },
                                    _ => break,
                                }
                            }
                            emit(Piece::Binary(&buf[..n]))?;
                            buf = &buf[n..];
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> (Vec<u8>, Vec<String>) {
        let mut s = Utf8Splitter::default();
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            s.feed::<()>(c, i + 1 == chunks.len(), |p| {
                match p {
                    Piece::Text(t) => {
                        out.extend_from_slice(t.as_bytes());
                        kinds.push(format!("t:{t}"));
                    }
                    Piece::Binary(b) => {
                        out.extend_from_slice(b);
                        kinds.push(format!("b:{}", b.len()));
                    }
                }
                Ok(())
            })
            .expect("no error");
        }
        (out, kinds)
    }

    #[test]
    fn split_code_point_is_carried_not_cut() {
        let euro = "€".as_bytes();
        let (bytes, kinds) = split(&[&[b'a', euro[0]], &euro[1..], b"z"]);
        assert_eq!(bytes, "a€z".as_bytes());
        assert_eq!(kinds, ["t:a", "t:€", "t:z"]);
    }

    #[test]
    fn invalid_bytes_become_binary_pieces() {
        let (bytes, kinds) = split(&[b"ok\xff\xfe\xfdok"]);
        assert_eq!(bytes, b"ok\xff\xfe\xfdok");
        assert_eq!(kinds, ["t:ok", "b:3", "t:ok"]);
        let (bytes, kinds) = split(&[b"end\xe2\x82"]);
        assert_eq!(bytes, b"end\xe2\x82");
        assert_eq!(kinds, ["t:end", "b:2"]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_any_split_round_trip(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), cuts in proptest::collection::vec(0usize..300, 0..6)) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= data.len()).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            cuts.dedup();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
            let chunks = if chunks.is_empty() { vec![&data[..]] } else { chunks };
            let (bytes, _) = split(&chunks);
            proptest::prop_assert_eq!(bytes, data);
        }
    }
}
