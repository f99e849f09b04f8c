//! The evidence bundle's digests, shared by the `bundle` delivery (which writes them) and
//! `verify-evidence` (which recomputes them).
//!
//! `evidence/digests.json` lists every file of the bundle with its SHA-256 and size, by path
//! relative to the run directory (child runs as `../<run-id>/...`). The in-toto statement
//! (`evidence/statement.intoto.json`) carries the SHA-256 of `digests.json` itself, so the
//! statement binds every file; the statement is the root of the bundle (sign it to make it
//! tamper-evident against someone who can rewrite the whole directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::gitstate::files::sha256_file;

/// Name of the evidence directory in a run directory.
pub const DIR: &str = "evidence";
/// The digest list, in the evidence directory.
pub const DIGESTS: &str = "digests.json";
/// The in-toto statement, in the evidence directory.
pub const STATEMENT: &str = "statement.intoto.json";
/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate type: a run's outcome and its stages.
pub const PREDICATE_TYPE: &str = "urn:codex-orchestrator:attestation:run-outcome:v1";

/// One file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path relative to the run directory.
    pub path: String,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// `digests.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// Always `sha256`.
    pub algorithm: String,
    /// Every file, sorted by path.
    pub files: Vec<FileDigest>,
}

/// The digest of the file at `run_dir/rel`.
pub fn digest(run_dir: &Path, rel: &str) -> std::io::Result<FileDigest> {
    let path = run_dir.join(rel);
    let bytes = std::fs::metadata(&path)?.len();
    Ok(FileDigest {
        path: rel.to_owned(),
        sha256: sha256_file(&path)?,
        bytes,
    })
}

/// Every regular file below `dir`, as paths relative to `base` prefixed with `prefix`.
pub fn files_below(base: &Path, dir: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = vec![base.join(dir)];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() && !is_temp(&path) {
                if let Ok(rel) = path.strip_prefix(base) {
                    out.push(format!("{prefix}{}", rel.to_string_lossy()));
                }
            }
        }
    }
    out.sort();
    out
}

/// Temp files of an interrupted atomic write are not part of anything.
fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
}

/// What a check of a bundle found wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, relative to the run directory.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Files whose digests were recomputed.
    pub checked: usize,
    /// Everything that did not match.
    pub problems: Vec<Problem>,
}

/// Why a run directory's bundle cannot be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No bundle there.
    #[error("`{}` has no evidence bundle (expected `{}`; a run gets one from a `bundle` delivery)", dir.display(), file.display())]
    Missing {
        /// The run directory.
        dir: PathBuf,
        /// The file looked for.
        file: PathBuf,
    },
    /// A bundle file is not what we write.
    #[error("`{}` is not a valid evidence file: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Recomputes every digest of the bundle in `run_dir`: each listed file, `digests.json`
/// against the statement, and the statement's subject against the recorded git state.
pub fn verify(run_dir: &Path) -> Result<Verification, EvidenceError> {
    let evidence = run_dir.join(DIR);
    let digests_path = evidence.join(DIGESTS);
    let statement_path = evidence.join(STATEMENT);
    for p in [&digests_path, &statement_path] {
        if !p.is_file() {
            return Err(EvidenceError::Missing {
                dir: run_dir.to_owned(),
                file: p.clone(),
            });
        }
    }
    let invalid = |path: &Path, message: String| EvidenceError::Invalid {
        path: path.to_owned(),
        message,
    };
    let digests_bytes =
        std::fs::read(&digests_path).map_err(|e| invalid(&digests_path, e.to_string()))?;
    let digests: Digests = serde_json::from_slice(&digests_bytes)
        .map_err(|e| invalid(&digests_path, e.to_string()))?;
    let statement: serde_json::Value = std::fs::read(&statement_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| invalid(&statement_path, e))?;
    if statement["_type"] != STATEMENT_TYPE {
        return Err(invalid(
            &statement_path,
            format!("`_type` is not `{STATEMENT_TYPE}`"),
        ));
    }
    let mut problems = Vec::new();
    for f in &digests.files {
        match digest(run_dir, &f.path) {
            Err(e) => problems.push(Problem {
                path: f.path.clone(),
                problem: format!("cannot be read: {e}"),
            }),
            Ok(now) if now.sha256 != f.sha256 => problems.push(Problem {
                path: f.path.clone(),
                problem: format!(
                    "sha256 mismatch: recorded {}, now {} ({} bytes recorded, {} now)",
                    f.sha256, now.sha256, f.bytes, now.bytes
                ),
            }),
            Ok(_) => {}
        }
    }
    let listed = statement["predicate"]["evidence"]["digests_sha256"]
        .as_str()
        .unwrap_or_default();
    let actual =
        crate::gitstate::files::hex(&<sha2::Sha256 as sha2::Digest>::digest(&digests_bytes));
    if listed != actual {
        problems.push(Problem {
            path: format!("{DIR}/{DIGESTS}"),
            problem: format!("sha256 mismatch with the statement: recorded {listed}, now {actual}"),
        });
    }
    // The subject is the tree digest the git state records.
    let git: serde_json::Value = std::fs::read(evidence.join("git.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let subject = &statement["subject"][0]["digest"];
    let tree = git["tree"].as_str().unwrap_or_default();
    let subject_tree = subject["gitTree"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| subject["sha256"].as_str().map(|h| format!("sha256:{h}")))
        .unwrap_or_default();
    if tree.is_empty() || subject_tree != tree {
        problems.push(Problem {
            path: format!("{DIR}/{STATEMENT}"),
            problem: format!(
                "the subject's digest `{subject_tree}` is not the recorded tree `{tree}`"
            ),
        });
    }
    Ok(Verification {
        checked: digests.files.len() + 1,
        problems,
    })
}
