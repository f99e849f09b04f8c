//! Config errors: each names the file and, where it applies, the pipeline, stage and field.

use std::path::PathBuf;

/// Why a config was rejected: exit 2 (exit 4 for an I/O error reading it), nothing written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (exit 2; exit 4 when the storage failed, see
    /// [`ConfigError::is_storage`]).
    #[error("cannot read config `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why: the OS error, or not a regular file, or too large.
        #[source]
        source: crate::files::ReadError,
    },
    /// The file is not JSON.
    #[error("`{}`:{line}:{column}: invalid JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// No repo config and `--repo-config-required` (the peer's wording, which scripts match).
    #[error("Repo-local codex.orchestrator.json is required when CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED=1. Expected: {}.", path.display())]
    RepoConfigRequired {
        /// Where the repo config was expected.
        path: PathBuf,
    },
    /// No repo config and no package config to fall back to.
    #[error("no config: `{}` does not exist{}", path.display(), match package {
        Some(p) => format!(" and the package at `{}` has no codex.orchestrator.json", p.display()),
        None => " and the peer package (@kbediako/codex-orchestrator), whose config would be used instead, was not found".to_owned(),
    })]
    Missing {
        /// Where the repo config was expected.
        path: PathBuf,
        /// The package found, when one was.
        package: Option<PathBuf>,
    },
    /// The JSON does not describe a valid config.
    #[error("`{}`: {location}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// `pipeline `p`, stage `s`, field `command``.
        location: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// True when the config could not be read because the storage failed (EIO, ...): the
    /// input may be fine, so this is exit 4, not a usage error.
    pub fn is_storage(&self) -> bool {
        matches!(self, ConfigError::Read { source, .. } if source.is_storage())
    }
}

/// A position in the config, rendered as `pipeline `p`, stage `s`, field `f``.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loc {
    parts: Vec<String>,
}

impl Loc {
    pub(crate) fn root() -> Self {
        Self::default()
    }
    pub(crate) fn with(&self, what: &str, name: impl std::fmt::Display) -> Self {
        let mut parts = self.parts.clone();
        parts.push(format!("{what} `{name}`"));
        Self { parts }
    }
    /// A field; inside a field (`build.command`, `retries.count`) it is one dotted name, as the
    /// unknown-key messages write it.
    pub(crate) fn field(&self, name: &str) -> Self {
        let outer = self
            .parts
            .last()
            .and_then(|p| p.strip_prefix("field `"))
            .and_then(|p| p.strip_suffix('`'));
        match outer {
            Some(outer) => {
                let mut parts = self.parts.clone();
                let nested = format!("field `{outer}.{name}`");
                parts.pop();
                parts.push(nested);
                Self { parts }
            }
            None => self.with("field", name),
        }
    }
    pub(crate) fn render(&self) -> String {
        if self.parts.is_empty() {
            "top level".to_owned()
        } else {
            self.parts.join(", ")
        }
    }
}

/// Names for a message: "`a`, `b`", or "none".
pub(crate) fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
