//! Finding manifests on disk: every `.runs/<task>/cli/<run>/manifest.json` (the source the
//! index is rebuilt from), or one run's by id; reading one (with its sidecar).

use std::path::{Path, PathBuf};

use shared_manifest::schema::Manifest;

/// Every run manifest under `runs`, sorted (a stable order keeps rebuilds reproducible).
/// Unreadable directories are skipped: a rebuild indexes what it can.
pub(crate) fn manifest_paths(runs: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for task in dirs(runs) {
        for run in dirs(&task.join("cli")) {
            let p = run.join("manifest.json");
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(p) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The manifest of run `run_id` in any task, if there is one.
pub(crate) fn find_manifest(runs: &Path, run_id: &str) -> Option<PathBuf> {
    if !crate::record::layout::is_safe_component(run_id) {
        return None;
    }
    let mut found: Vec<PathBuf> = dirs(runs)
        .into_iter()
        .map(|t| t.join("cli").join(run_id).join("manifest.json"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Why a manifest could not be read (it names the file: `manifest.json` or its sidecar).
pub use shared_manifest::ReadError as ManifestError;

/// Reads one manifest: `manifest.json` merged with its sidecar `manifest.ext.json`.
pub fn read_manifest(path: &Path) -> Result<Manifest, ManifestError> {
    shared_manifest::read_manifest(path)
}
