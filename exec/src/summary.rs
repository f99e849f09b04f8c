//! The command summary rule (the peer's, with excerpts taken from the end of the output) and
//! the small accessors the orchestrator reads outcomes by.

use crate::outcome::{ExecResult, Outcome};
use crate::text;
use crate::unix::signal_name;

/// Characters of output kept in a summary (the end kept, `…` in front when cut).
const SUMMARY_CHARS: usize = 240;

/// The last non-blank line of the output, escape codes removed, at most 240 characters.
/// Empty when there is no text. (The peer takes the first 240 characters instead: behind
/// thousands of warning lines the error that failed the stage never showed.)
fn excerpt(bytes: &[u8]) -> String {
    text::last_line(&text::clean(bytes), SUMMARY_CHARS)
}

/// The summary of an attempt, the peer's `buildSummary` order: timed out / killed by a signal /
/// non-zero exit, each followed by ` — ` and the stderr excerpt when there is one; on success the
/// hint, else the stdout excerpt, else the stderr excerpt, else `Command completed with code 0`.
/// Excerpts are the output's last line (see [`excerpt`]), not its first 240 characters.
/// A cancelled attempt is summarized by how its process ended (the orchestrator says that it was
/// cancelled); a spawn failure is `Failed to start: <message>`.
pub fn summarize(r: &ExecResult, summary_hint: Option<&str>) -> String {
    let (signal, code) = match &r.outcome {
        Outcome::SpawnFailed { message } => return format!("Failed to start: {message}"),
        Outcome::Lost { message } => return message.clone(),
        Outcome::TimedOut { after, .. } => {
            return with_stderr(format!("Timed out after {}ms", after.as_millis()), r)
        }
        Outcome::Signaled { signal } => (Some(*signal), None),
        Outcome::Cancelled { signal, code } => (*signal, *code),
        Outcome::Exited { code } => (None, Some(*code)),
    };
    if let Some(sig) = signal {
        return with_stderr(format!("Terminated with signal {}", signal_name(sig)), r);
    }
    if let Some(code) = code.filter(|&c| c != 0) {
        return with_stderr(format!("Exited with code {code}"), r);
    }
    if let Some(hint) = summary_hint.map(str::trim).filter(|h| !h.is_empty()) {
        return hint.to_owned();
    }
    [&r.stdout.tail, &r.stderr.tail]
        .into_iter()
        .map(|tail| excerpt(tail))
        .find(|e| !e.is_empty())
        .unwrap_or_else(|| "Command completed with code 0".to_owned())
}

/// `head — <stderr excerpt>`, or just `head` when stderr has no text.
fn with_stderr(head: String, r: &ExecResult) -> String {
    let err = excerpt(&r.stderr.tail);
    if err.is_empty() {
        head
    } else {
        format!("{head} — {err}")
    }
}

impl ExecResult {
    /// Exit code as recorded in logs and the manifest: the code when the process exited, 128 +
    /// the signal when a signal ended it (the shell's convention; the signal itself is in
    /// [`ExecResult::signal`]), 127 when it never started (the shell's "command not found").
    pub fn exit_code(&self) -> Option<i32> {
        match &self.outcome {
            Outcome::Exited { code } => Some(*code),
            Outcome::Signaled { signal } => Some(128 + signal),
            Outcome::TimedOut { signal, code, .. } | Outcome::Cancelled { signal, code } => {
                code.or(signal.map(|s| 128 + s))
            }
            Outcome::SpawnFailed { .. } => Some(127),
            // Nobody knows how the command ended.
            Outcome::Lost { .. } => None,
        }
    }

    /// Name of the signal that ended the process (`SIGTERM`), if one did.
    pub fn signal(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Signaled { signal } => Some(signal_name(*signal)),
            Outcome::TimedOut { signal, .. } | Outcome::Cancelled { signal, .. } => {
                signal.map(signal_name)
            }
            Outcome::Exited { .. } | Outcome::SpawnFailed { .. } | Outcome::Lost { .. } => None,
        }
    }

    /// Exit code 0 (and not stopped by us).
    pub fn succeeded(&self) -> bool {
        self.outcome == Outcome::Exited { code: 0 }
    }

    /// The timeout fired.
    pub fn timed_out(&self) -> bool {
        matches!(self.outcome, Outcome::TimedOut { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Capture;
    use std::time::Duration;

    fn result(outcome: Outcome, out: &str, err: &str) -> ExecResult {
        let cap = |s: &str| Capture {
            tail: s.as_bytes().to_vec(),
            total_bytes: s.len() as u64,
            truncated: false,
        };
        ExecResult {
            outcome,
            process: None,
            remote: None,
            duration: Duration::ZERO,
            stdout: cap(out),
            stderr: cap(err),
            chunk_events: Vec::new(),
            dropped_chunk_events: 0,
            leaked_processes: false,
            redactions: 0,
        }
    }

    fn sum(outcome: Outcome, out: &str, err: &str, hint: Option<&str>) -> String {
        summarize(&result(outcome, out, err), hint)
    }

    const OK: Outcome = Outcome::Exited { code: 0 };

    #[test]
    fn timed_out() {
        let t = Outcome::TimedOut {
            after: Duration::from_millis(300),
            signal: Some(15),
            code: None,
        };
        assert_eq!(
            sum(t.clone(), "out", " late \n", Some("hint")),
            "Timed out after 300ms — late"
        );
        assert_eq!(sum(t, "out", "", None), "Timed out after 300ms");
    }

    #[test]
    fn killed_by_a_signal() {
        assert_eq!(
            sum(Outcome::Signaled { signal: 9 }, "x", "", Some("hint")),
            "Terminated with signal SIGKILL"
        );
        assert_eq!(
            sum(
                Outcome::Cancelled {
                    signal: Some(15),
                    code: None
                },
                "",
                "bye\n",
                None
            ),
            "Terminated with signal SIGTERM — bye"
        );
    }

    #[test]
    fn non_zero_exit() {
        assert_eq!(
            sum(Outcome::Exited { code: 3 }, "out", "oops\n", Some("hint")),
            "Exited with code 3 — oops"
        );
        assert_eq!(
            sum(Outcome::Exited { code: 3 }, "out", "  \n", None),
            "Exited with code 3"
        );
        assert_eq!(
            sum(
                Outcome::Cancelled {
                    signal: None,
                    code: Some(1)
                },
                "",
                "",
                None
            ),
            "Exited with code 1"
        );
    }

    #[test]
    fn success_prefers_hint_then_stdout_then_stderr() {
        assert_eq!(sum(OK, "out", "err", Some("Hinted")), "Hinted");
        assert_eq!(sum(OK, "  out\n", "err", Some(" ")), "out");
        assert_eq!(sum(OK, "", "err\n", None), "err");
        assert_eq!(
            sum(OK, " \n", "", Some("  ")),
            "Command completed with code 0"
        );
    }

    #[test]
    fn excerpts_are_the_last_line_cut_to_240_chars_from_its_end() {
        let long = "é".repeat(241);
        assert_eq!(sum(OK, &long, "", None), format!("…{}", "é".repeat(240)));
        assert_eq!(sum(OK, "", &long, None), format!("…{}", "é".repeat(240)));
        let exactly = "a".repeat(240);
        assert_eq!(sum(OK, &exactly, "", None), exactly);
        assert_eq!(
            sum(Outcome::Exited { code: 1 }, "", &exactly, None),
            format!("Exited with code 1 — {exactly}")
        );
        assert_eq!(
            sum(
                Outcome::Exited { code: 1 },
                "",
                &format!("b{exactly}"),
                None
            ),
            format!("Exited with code 1 — …{exactly}")
        );
        // Trimmed; invalid UTF-8 is shown lossily; a cut code point at the start is skipped.
        let mut binary = result(OK, "", "");
        binary.stdout.tail = b"\n\n  x\xff \n".to_vec();
        assert_eq!(summarize(&binary, None), "x\u{FFFD}");
        binary.stdout.tail = "€uro".as_bytes()[1..].to_vec();
        assert_eq!(summarize(&binary, None), "uro");
    }

    #[test]
    fn the_error_after_the_noise_is_the_summary() {
        let mut noise: String = (1..=20000)
            .map(|i| format!("warning: noise line {i}\n"))
            .collect();
        noise.push_str("\x1b[1;31merror\x1b[0m: THE REAL ERROR\n");
        // The capture keeps a 64 KiB tail, which starts inside a line.
        let tail = noise.as_bytes()[noise.len() - 65536..].to_vec();
        let mut r = result(Outcome::Exited { code: 1 }, "", "");
        r.stderr.tail = tail;
        assert_eq!(
            summarize(&r, None),
            "Exited with code 1 — error: THE REAL ERROR"
        );
    }

    #[test]
    fn spawn_failure() {
        assert_eq!(
            sum(
                Outcome::SpawnFailed {
                    message: "no such dir".into()
                },
                "",
                "e",
                Some("h")
            ),
            "Failed to start: no such dir"
        );
    }

    #[test]
    fn exit_codes_and_signals() {
        let r = |o| result(o, "", "");
        assert_eq!(r(Outcome::Signaled { signal: 15 }).exit_code(), Some(143));
        assert_eq!(
            r(Outcome::Signaled { signal: 15 }).signal().as_deref(),
            Some("SIGTERM")
        );
        assert_eq!(
            r(Outcome::SpawnFailed {
                message: "x".into()
            })
            .exit_code(),
            Some(127)
        );
        let t = Outcome::TimedOut {
            after: Duration::from_secs(1),
            signal: Some(9),
            code: None,
        };
        assert_eq!(
            (r(t.clone()).exit_code(), r(t.clone()).signal().as_deref()),
            (Some(137), Some("SIGKILL"))
        );
        assert!(r(t).timed_out());
        let c = Outcome::Cancelled {
            signal: None,
            code: Some(0),
        };
        assert_eq!(
            (r(c.clone()).exit_code(), r(c.clone()).signal()),
            (Some(0), None)
        );
        assert!(!r(c).succeeded());
        assert!(r(OK).succeeded());
        assert_eq!(r(OK).exit_code(), Some(0));
    }
}
