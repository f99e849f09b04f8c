//! The peer's command summary rule and the small accessors the orchestrator reads outcomes by.

use crate::outcome::{ExecResult, Outcome};
use crate::unix::signal_name;

/// Characters of output kept in a summary before `…`.
const SUMMARY_CHARS: usize = 240;

/// Trimmed text, first 240 characters, `…` when cut. Empty when there is no text.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut out: String = text.chars().take(SUMMARY_CHARS).collect();
    if text.chars().nth(SUMMARY_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The summary of an attempt, exactly the peer's `buildSummary`: timed out / signal / non-zero
/// exit (each with ` — ` and the stderr excerpt when there is one); on success the hint, else
/// the stdout excerpt, else the stderr excerpt, else `Command completed with code 0`.
pub fn summarize(r: &ExecResult, summary_hint: Option<&str>) -> String {
    let head = match &r.outcome {
        Outcome::TimedOut { after, .. } => Some(format!("Timed out after {}ms", after.as_millis())),
        Outcome::Signaled { signal } => {
            Some(format!("Terminated with signal {}", signal_name(*signal)))
        }
        Outcome::Cancelled { signal: Some(sig) } => {
            Some(format!("Terminated with signal {}", signal_name(*sig)))
        }
        Outcome::Cancelled { signal: None } => Some("Cancelled".to_owned()),
        Outcome::Exited { code } if *code != 0 => Some(format!("Exited with code {code}")),
        Outcome::SpawnFailed { message } => return format!("Failed to start: {message}"),
        Outcome::Exited { .. } => None,
    };
    if let Some(head) = head {
        let err = excerpt(&r.stderr.tail);
        return if err.is_empty() {
            head
        } else {
            format!("{head} — {err}")
        };
    }
    if let Some(hint) = summary_hint.map(str::trim).filter(|h| !h.is_empty()) {
        return hint.to_owned();
    }
    let out = excerpt(&r.stdout.tail);
    if !out.is_empty() {
        return out;
    }
    let err = excerpt(&r.stderr.tail);
    if !err.is_empty() {
        return err;
    }
    "Command completed with code 0".to_owned()
}

impl ExecResult {
    /// Exit code as recorded: the code, or 128 + the signal that ended the process (the shell's
    /// convention), 127 when it never started, `None` when it is unknown.
    pub fn exit_code(&self) -> Option<i32> {
        match &self.outcome {
            Outcome::Exited { code } => Some(*code),
            Outcome::Signaled { signal } => Some(128 + signal),
            Outcome::TimedOut { signal, .. } | Outcome::Cancelled { signal } => {
                signal.map(|s| 128 + s)
            }
            Outcome::SpawnFailed { .. } => Some(127),
        }
    }

    /// Name of the signal that ended the process.
    pub fn signal(&self) -> Option<String> {
        match &self.outcome {
            Outcome::Signaled { signal } => Some(signal_name(*signal)),
            Outcome::TimedOut { signal, .. } | Outcome::Cancelled { signal } => {
                signal.map(signal_name)
            }
            _ => None,
        }
    }

    /// Exit code 0.
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
            duration: Duration::ZERO,
            stdout: cap(out),
            stderr: cap(err),
            chunk_events: Vec::new(),
            dropped_chunk_events: 0,
            leaked_processes: false,
        }
    }

    #[test]
    fn every_branch_of_the_rule() {
        let ok = Outcome::Exited { code: 0 };
        assert_eq!(
            summarize(
                &result(
                    Outcome::TimedOut {
                        after: Duration::from_millis(300),
                        signal: Some(15)
                    },
                    "",
                    " late \n"
                ),
                None
            ),
            "Timed out after 300ms — late"
        );
        assert_eq!(
            summarize(
                &result(Outcome::Signaled { signal: 9 }, "x", ""),
                Some("hint")
            ),
            "Terminated with signal SIGKILL"
        );
        assert_eq!(
            summarize(
                &result(Outcome::Exited { code: 3 }, "out", "oops\n"),
                Some("hint")
            ),
            "Exited with code 3 — oops"
        );
        assert_eq!(
            summarize(&result(Outcome::Exited { code: 3 }, "out", ""), None),
            "Exited with code 3"
        );
        assert_eq!(
            summarize(&result(ok.clone(), "out", "err"), Some("Hinted")),
            "Hinted"
        );
        assert_eq!(
            summarize(&result(ok.clone(), "  out\n", "err"), None),
            "out"
        );
        assert_eq!(summarize(&result(ok.clone(), "", "err\n"), None), "err");
        assert_eq!(
            summarize(&result(ok.clone(), " \n", ""), Some("  ")),
            "Command completed with code 0"
        );
        let long = "é".repeat(241);
        assert_eq!(
            summarize(&result(ok, &long, ""), None),
            format!("{}…", "é".repeat(240))
        );
        let exactly = "a".repeat(240);
        assert_eq!(
            summarize(&result(Outcome::Exited { code: 1 }, "", &exactly), None),
            format!("Exited with code 1 — {exactly}")
        );
    }

    #[test]
    fn exit_codes_and_signals() {
        assert_eq!(
            result(Outcome::Signaled { signal: 15 }, "", "").exit_code(),
            Some(143)
        );
        assert_eq!(
            result(Outcome::Signaled { signal: 15 }, "", "")
                .signal()
                .as_deref(),
            Some("SIGTERM")
        );
        assert_eq!(
            result(
                Outcome::SpawnFailed {
                    message: "x".into()
                },
                "",
                ""
            )
            .exit_code(),
            Some(127)
        );
        assert!(result(Outcome::Exited { code: 0 }, "", "").succeeded());
    }
}
