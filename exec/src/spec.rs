//! What to run: the inputs of one stage attempt, decided by the orchestrator.

use std::path::PathBuf;
use std::time::Duration;

/// Default bytes of each stream kept in memory for summaries and error files (the peer's 64 KiB).
pub const DEFAULT_TAIL_BYTES: usize = 64 * 1024;
/// Default grace between SIGTERM and SIGKILL when a stage is stopped.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);
/// Default wait, after the stage's main process exited, for grandchildren still holding its pipes.
pub const DEFAULT_LEAK_TIMEOUT: Duration = Duration::from_millis(500);

/// One attempt of one command stage: `sh -c <command>` (or, with `args`, the program `command`
/// with those arguments and no shell) in `cwd`, stdin closed, own process group.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Shell text run with `sh -c`; with `args`, the program (a path, or a name looked up in
    /// `PATH`).
    pub command: String,
    /// Argv mode: the program's arguments, handed over as they are, without a shell (no
    /// quoting, no expansion). `None` runs `command` with `sh -c`.
    pub args: Option<Vec<String>>,
    /// Working directory of the process.
    pub cwd: PathBuf,
    /// Variables set on top of the runner's own environment, applied in order.
    pub env: Vec<(String, String)>,
    /// Enforced wall-clock limit; `None` runs without limit.
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM to the group and SIGKILL.
    pub kill_grace: Duration,
    /// How long to wait for pipe-holding grandchildren after the main process exited.
    pub leak_timeout: Duration,
    /// 1-based stage index recorded as `index` on every log line.
    pub index: usize,
    /// 1-based attempt number recorded as `attempt` on exec events.
    pub attempt: u32,
    /// Bytes of each stream kept in memory (the tail).
    pub tail_bytes: usize,
    /// Chunk events kept in memory (`CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS`); 0 keeps none.
    pub max_chunk_events: usize,
    /// Values masked as `***` in everything logged or kept of the output (the environment
    /// still carries them to the command).
    pub secrets: Option<crate::redact::Secrets>,
}

impl ExecSpec {
    /// The command as logs show it: with secret values masked (the shell gets it as written).
    pub fn shown_command(&self) -> std::borrow::Cow<'_, str> {
        match &self.secrets {
            Some(s) => std::borrow::Cow::Owned(s.redact_str(&self.command).0),
            None => std::borrow::Cow::Borrowed(&self.command),
        }
    }

    /// Argv mode's arguments as logs show them: secret values masked (the program gets them
    /// as written); empty in shell mode.
    pub fn shown_args(&self) -> Vec<String> {
        self.args
            .iter()
            .flatten()
            .map(|a| match &self.secrets {
                Some(s) => s.redact_str(a).0,
                None => a.clone(),
            })
            .collect()
    }

    /// A spec with the defaults above for everything but the command, cwd and index.
    pub fn new(command: impl Into<String>, cwd: impl Into<PathBuf>, index: usize) -> Self {
        Self {
            command: command.into(),
            args: None,
            cwd: cwd.into(),
            env: Vec::new(),
            timeout: None,
            kill_grace: DEFAULT_KILL_GRACE,
            leak_timeout: DEFAULT_LEAK_TIMEOUT,
            index,
            attempt: 1,
            tail_bytes: DEFAULT_TAIL_BYTES,
            max_chunk_events: 0,
            secrets: None,
        }
    }
}

impl ExecSpec {
    /// What runs, as shell text: `command` itself, or in argv mode the program and its
    /// arguments quoted so that `sh -c` runs exactly that argv (for executors that can only
    /// run shell text, and for display).
    pub fn shell_text(&self) -> String {
        match &self.args {
            None => self.command.clone(),
            Some(args) => shell_words(std::iter::once(&self.command).chain(args)),
        }
    }
}

/// Quotes each word for `sh` and joins them with spaces: `sh -c` of the result runs exactly
/// these words as argv. Words made only of safe characters stay as they are (`=` is not one:
/// a first word `A=b` would be an assignment).
pub fn shell_words<'a>(words: impl IntoIterator<Item = &'a String>) -> String {
    let quote = |w: &str| -> String {
        let safe = !w.is_empty()
            && w.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'_' | b'.' | b'/' | b':' | b'+' | b',' | b'@' | b'%'
                    )
            });
        if safe {
            w.to_owned()
        } else {
            // Inside single quotes nothing is special but the quote itself: close, escape, reopen.
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words
        .into_iter()
        .map(|w| quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A request to stop running stages, sent by the orchestrator's signal handling over a
/// `tokio::sync::watch` channel so every running stage sees the latest level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CancelRequest {
    /// Keep running.
    #[default]
    None,
    /// Stop gracefully: SIGTERM to the group, `kill_grace`, then SIGKILL. `signal` is the
    /// signal number the runner received (SIGINT, SIGTERM, SIGHUP) and is recorded.
    Graceful {
        /// Signal number that caused the cancellation.
        signal: i32,
    },
    /// Stop now: SIGKILL to the group (a second Ctrl-C).
    Immediate {
        /// Signal number that caused the cancellation.
        signal: i32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_only_what_needs_it() {
        let w: Vec<String> = ["echo", "a b", "it's", "", "$HOME", "x=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_words(&w), r#"echo 'a b' 'it'\''s' '' '$HOME' 'x=1'"#);
    }
}
