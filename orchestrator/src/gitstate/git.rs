//! Running `git`: one helper that runs it in a directory with a chosen environment, captures its
//! output and turns a failure into a typed error naming the command. Every git call of the
//! orchestrator (snapshots, delivery) goes through here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a git command failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` could not be started (not installed, not on `PATH`).
    #[error("cannot run `git {args}`")]
    Spawn {
        /// The arguments, joined.
        args: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `git` ran and failed.
    #[error("`git {args}` failed with exit code {code}: {stderr}")]
    Failed {
        /// The arguments, joined.
        args: String,
        /// Its exit code (-1: killed by a signal).
        code: i32,
        /// Its stderr, trimmed and cut to 1000 characters.
        stderr: String,
    },
    /// A file git needs (a temporary index) could not be prepared.
    #[error("cannot prepare `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A git invocation: where it runs and what it adds to the environment.
#[derive(Debug, Clone, Default)]
pub struct Git {
    /// `git -C <dir>`.
    pub dir: PathBuf,
    /// Variables set for the command (after the runner's own, minus `GIT_INDEX_FILE`).
    pub env: Vec<(String, String)>,
}

impl Git {
    /// Git in `dir` with the runner's environment.
    pub fn in_dir(dir: &Path) -> Git {
        Git {
            dir: dir.to_owned(),
            env: Vec::new(),
        }
    }

    /// The same invocation with one more variable.
    pub fn with_env(&self, name: &str, value: impl Into<String>) -> Git {
        let mut g = self.clone();
        g.env.push((name.to_owned(), value.into()));
        g
    }

    fn command<I, S>(&self, args: I) -> (Command, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> =
            args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let shown = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir).args(&args);
        // An index chosen by whoever started the runner (a git hook, say) must never be the one
        // a snapshot writes to: only `env` may name one.
        cmd.env_remove("GIT_INDEX_FILE");
        // Never wait for a pager, an editor or a credential prompt on a terminal.
        // No opportunistic refresh of the user's index by a read-only command either.
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_EDITOR", "true")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        (cmd, shown)
    }

    /// Runs `git <args>`; its stdout on success.
    pub fn run<I, S>(&self, args: I) -> Result<Vec<u8>, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (mut cmd, shown) = self.command(args);
        let out = cmd.output().map_err(|source| GitError::Spawn {
            args: shown.clone(),
            source,
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(GitError::Failed {
            args: shown,
            code: out.status.code().unwrap_or(-1),
            // One line: it ends up in summaries and error records.
            stderr: stderr
                .trim()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" / ")
                .chars()
                .take(1000)
                .collect(),
        })
    }

    /// Runs `git <args>`; its stdout as trimmed text.
    pub fn text<I, S>(&self, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Ok(String::from_utf8_lossy(&self.run(args)?).trim().to_owned())
    }

    /// Runs `git <args>` where a non-zero exit means "no" (`rev-parse --verify -q`,
    /// `symbolic-ref -q`): `None` then, the trimmed stdout otherwise.
    pub fn optional<I, S>(&self, args: I) -> Result<Option<String>, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self.text(args) {
            Ok(t) if t.is_empty() => Ok(None),
            Ok(t) => Ok(Some(t)),
            Err(GitError::Failed { code: 1, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The top of the git work tree containing `dir`, or `None` when `dir` is not in one (or git
/// is not installed: then there is no repository to speak of either).
pub fn work_tree_top(dir: &Path) -> Option<PathBuf> {
    let git = Git::in_dir(dir);
    match git.text(["rev-parse", "--show-toplevel"]) {
        Ok(top) if !top.is_empty() => Some(PathBuf::from(top)),
        _ => None,
    }
}

/// The version line of `git --version`, for evidence.
pub fn version() -> Option<String> {
    Git::in_dir(Path::new("."))
        .text(["--version"])
        .ok()
        .filter(|v| !v.is_empty())
}
