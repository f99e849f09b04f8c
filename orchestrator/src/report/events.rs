//! `events.jsonl`: the run's event stream in the peer's envelope
//! (`schema_version`, `seq`, `timestamp`, `task_id`, `run_id`, `event`, `actor`, `payload`).
//!
//! One writer per run, shared by the concurrently running stages behind a mutex: a line is
//! formatted and written with one `write_all` while the lock is held, so `seq` is monotonic and
//! lines never interleave. `seq` continues from the last parseable line on resume. A runner
//! that died mid-write leaves a torn last line; it stays (readers skip it as unparseable), but
//! it is ended with a newline before anything is appended, so every new event is a whole line.
//! Stage output is never copied here; payloads point to the stage log instead.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};

/// The run's event stream.
#[derive(Debug)]
pub struct EventLog {
    path: PathBuf,
    task_id: String,
    run_id: String,
    inner: Mutex<(File, u64)>,
}

impl EventLog {
    /// Opens (or continues) the stream at `path`.
    pub fn open(path: &Path, task_id: &str, run_id: &str) -> std::io::Result<EventLog> {
        let last_seq = last_seq(path);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        end_torn_line(&mut file)?;
        Ok(EventLog {
            path: path.to_owned(),
            task_id: task_id.to_owned(),
            run_id: run_id.to_owned(),
            inner: Mutex::new((file, last_seq)),
        })
    }

    /// Appends one event.
    pub fn emit(&self, event: &str, payload: Value) -> std::io::Result<()> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (file, seq) = &mut *guard;
        *seq += 1;
        let line = json!({
            "schema_version": 1,
            "seq": *seq,
            "timestamp": crate::time::now(),
            "task_id": self.task_id,
            "run_id": self.run_id,
            "event": event,
            "actor": "runner",
            "payload": payload,
        });
        let mut text = line.to_string();
        text.push('\n');
        file.write_all(text.as_bytes())
    }

    /// Makes the stream durable (called at the end of a run).
    pub fn sync(&self) -> std::io::Result<()> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.sync_data()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a newline when the file does not end with one: otherwise the first event appended
/// after a crash mid-line would be glued to the fragment and lost to every reader.
fn end_torn_line(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

/// The highest `seq` already in the file (0 when missing or empty); a torn last line from a
/// crash is ignored.
fn last_seq(path: &Path) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter_map(|v| v.get("seq").and_then(Value::as_u64))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_monotonic_and_continues_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("events.jsonl");
        let log = EventLog::open(&p, "t", "r").expect("open");
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        log.emit("step_started", json!({})).expect("emit");
                    }
                });
            }
        });
        drop(log);
        let log = EventLog::open(&p, "t", "r").expect("reopen");
        log.emit("run_completed", json!({})).expect("emit");
        let text = std::fs::read_to_string(&p).expect("read");
        let seqs: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["seq"]
                    .as_u64()
                    .expect("seq")
            })
            .collect();
        assert_eq!(seqs, (1..=101).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_last_line_is_ended_before_appending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("events.jsonl");
        let whole = r#"{"schema_version":1,"seq":7,"event":"step_started"}"#;
        let torn = r#"{"schema_version":1,"seq":99,"tim"#;
        std::fs::write(&p, format!("{whole}\n{torn}")).expect("write");
        let log = EventLog::open(&p, "t", "r").expect("open");
        log.emit("run_started", json!({})).expect("emit");
        drop(log);
        // Reopening a file that ends with a newline adds nothing.
        let log = EventLog::open(&p, "t", "r").expect("reopen");
        log.emit("run_completed", json!({})).expect("emit");
        let text = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            &lines[..2],
            [whole, torn],
            "the fragment stays, on its own line"
        );
        let new: Vec<(u64, String)> = lines[2..]
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("a whole event");
                (
                    v["seq"].as_u64().expect("seq"),
                    v["event"].as_str().expect("event").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            new,
            [
                (8, "run_started".to_owned()),
                (9, "run_completed".to_owned())
            ],
            "seq continues from the last parseable line"
        );
    }
}
