//! The process's own stdout and stderr: every byte the runner prints goes through here, and
//! nothing here can panic.
//!
//! Why one place: `println!`/`eprintln!` panic when the write fails ("failed printing to
//! stderr"), and indicatif's `MultiProgress::suspend` unwraps its redraw. A terminal that goes
//! away (SIGHUP, then every write to the tty fails with EIO), `2>/dev/full` or a closed pipe
//! turned a cancellation into a crash. The lint `clippy::print_stdout`/`print_stderr` (denied in
//! `lib.rs`) keeps the macros out of the crate; this module writes with `write_all` and decides
//! what a failure means:
//!
//! - stderr (diagnostics, progress): a failure is ignored. There is nowhere left to report it,
//!   and a run's outcome, record and exit code must stay those of what happened.
//! - stdout (results: `--format json`, `status`, `runs`, `plan`, ...): a failure other than a
//!   broken pipe is remembered; `main_impl` then turns a success into exit 4 (the result was
//!   lost), and a non-zero code stands. A broken pipe (`| head`) means the reader left on
//!   purpose: the exit code stands, and loops that print (`status --watch`) stop.
//!
//! While a live progress display is drawn on the terminal, diagnostics are printed above it
//! through indicatif's `println` (which returns its error instead of unwrapping it); written
//! straight to the terminal they would be erased by the next redraw.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use indicatif::MultiProgress;

/// The live display being drawn, if any (set by the progress reporter).
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);
/// The first stdout write that failed for another reason than a broken pipe.
static STDOUT_LOST: Mutex<Option<std::io::Error>> = Mutex::new(None);
/// A stdout write met a broken pipe: the reader is gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The result could not be written to stdout.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the result to stdout")]
pub struct StdoutError(#[source] pub std::io::Error);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data, never left half-updated: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes result bytes to stdout (and flushes): a failure is remembered, see the module doc.
pub fn out_bytes(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        } else {
            lock(&STDOUT_LOST).get_or_insert(e);
        }
    }
}

/// Prints `text` and a newline on stdout.
pub fn out_line(text: &str) {
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
    out_bytes(&buf);
}

/// Prints a JSON value, pretty, on stdout.
pub fn out_json(value: &serde_json::Value) {
    out_line(&serde_json::to_string_pretty(value).expect("a JSON value always serializes"));
}

/// True once the reader of stdout has gone away (broken pipe): stop producing output.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// True once a stdout write failed for another reason than a broken pipe.
pub fn stdout_failed() -> bool {
    lock(&STDOUT_LOST).is_some()
}

/// The first failed stdout write (other than a broken pipe), taken: `main_impl` asks once.
pub fn take_stdout_error() -> Option<StdoutError> {
    lock(&STDOUT_LOST).take().map(StdoutError)
}

/// Prints a line on stderr (above the live display when one is drawn). Never fails.
pub fn err_line(text: &str) {
    // Cloned out so the lock is not held while indicatif draws.
    let live = lock(&LIVE).clone();
    if let Some(multi) = live {
        let _ = multi.println(text);
        return;
    }
    let mut buf = Vec::with_capacity(text.len() + 1);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
    err_bytes(&buf);
}

/// Writes bytes to stderr as they are (a replayed stage's stderr). Never fails.
pub fn err_bytes(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes).and_then(|()| err.flush());
}

/// Routes stderr lines through `multi` while it is drawn (`None`: straight to stderr again).
pub fn set_live(multi: Option<MultiProgress>) {
    *lock(&LIVE) = multi;
}

/// The writer the diagnostics subscriber (`tracing`) uses: stderr through [`err_line`].
/// tracing formats an event whole and hands it over in one `write_all`, so each line is
/// written in one piece; it ignores what `write` returns, and so do we (always `Ok`).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiagWriter;

impl Write for DiagWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        err_line(text.strip_suffix('\n').unwrap_or(&text));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
