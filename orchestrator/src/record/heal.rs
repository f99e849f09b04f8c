//! The side files derived from the manifest (`run-summary.json`, the `mcp/<run>` redirect stub,
//! `.resume-token`, `.heartbeat`): checked, and rebuilt from the manifest when they are
//! missing, empty, unparseable or stale.
//!
//! They are written atomically but without fsync (each duplicates or derives from the fsynced
//! manifest, and an fsync each would cost every run several more). After a power cut a file
//! created by a rename that did not reach the disk with its data can be empty (ext4 orders
//! data before a rename only over an existing file), and a runner killed before writing one
//! leaves it missing. So readers never trust them blindly: `resume` (under the run lock),
//! `status` (when no runner holds the lock) and the repair of a finished run's bookkeeping
//! rebuild whatever does not match the manifest. The manifest is the record; these follow it.

use std::path::Path;

use serde_json::Value;
use shared_manifest::schema::Manifest;

use crate::errors::AppError;
use crate::record::layout::RunDir;

/// Side files are small; anything larger is damaged.
const CAP: u64 = 16 * 1024 * 1024;

/// One side file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideFile {
    /// `.runs/<task>/mcp/<run>/manifest.json`.
    McpStub,
    /// `.resume-token`.
    ResumeToken,
    /// `.heartbeat`.
    Heartbeat,
    /// `run-summary.json` (once the run is over).
    RunSummary,
}

impl SideFile {
    /// How messages name it.
    pub fn name(self) -> &'static str {
        match self {
            SideFile::McpStub => "the mcp redirect stub",
            SideFile::ResumeToken => ".resume-token",
            SideFile::Heartbeat => ".heartbeat",
            SideFile::RunSummary => "run-summary.json",
        }
    }
}

/// What [`heal`] rebuilt.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Healed {
    /// The files rewritten.
    pub rewritten: Vec<SideFile>,
    /// Temp files of interrupted writes removed from the `mcp/<run>` folder.
    pub temps_removed: usize,
}

impl Healed {
    /// True when nothing needed doing.
    pub fn is_empty(&self) -> bool {
        self.rewritten.is_empty() && self.temps_removed == 0
    }
}

fn read_text(path: &Path) -> Option<String> {
    crate::files::read_regular_text(path, CAP).ok()
}

fn read_json(path: &Path) -> Option<Value> {
    read_text(path).and_then(|t| serde_json::from_str(&t).ok())
}

/// The side files of run `m` that do not match it (`run-summary.json` only once the run is
/// over: it is written at its end).
pub fn stale(dir: &RunDir, m: &Manifest) -> Vec<SideFile> {
    let mut out = Vec::new();
    let stub = read_json(&dir.mcp_dir().join("manifest.json"));
    let stub_ok = stub.is_some_and(|v| {
        v["manifest"] == dir.rel(&dir.manifest()).as_str()
            && v["redirect_to"] == dir.rel(&dir.dir).as_str()
    });
    if !stub_ok {
        out.push(SideFile::McpStub);
    }
    if read_text(&dir.resume_token()).is_none_or(|t| t.trim() != m.resume_token) {
        out.push(SideFile::ResumeToken);
    }
    if let Some(beat) = &m.heartbeat_at {
        let ok =
            read_text(&dir.heartbeat()).is_some_and(|t| crate::time::parse(t.trim()).is_some());
        if !ok && !beat.is_empty() {
            out.push(SideFile::Heartbeat);
        }
    }
    if m.status.is_terminal() {
        let ok = read_json(&dir.run_summary()).is_some_and(|v| v["runId"] == m.run_id.as_str());
        if !ok {
            out.push(SideFile::RunSummary);
        }
    }
    out
}

/// Rebuilds every side file of run `m` that does not match it, and removes temp files left in
/// its `mcp/<run>` folder. The caller holds the run lock: nobody else writes them.
pub fn heal(dir: &RunDir, m: &Manifest) -> Result<Healed, AppError> {
    let mut healed = Healed::default();
    let mcp = dir.mcp_dir();
    if mcp.is_dir() {
        healed.temps_removed = shared_manifest::atomic::remove_stale_temps(&mcp)
            .map_err(|e| AppError::storage(&mcp, e))?;
    }
    for file in stale(dir, m) {
        match file {
            SideFile::McpStub => crate::record::artifacts::write_mcp_stub(dir)?,
            SideFile::ResumeToken => shared_manifest::atomic::write_atomic_relaxed(
                &dir.resume_token(),
                format!("{}\n", m.resume_token).as_bytes(),
            )?,
            SideFile::Heartbeat => shared_manifest::atomic::write_atomic_relaxed(
                &dir.heartbeat(),
                m.heartbeat_at.as_deref().unwrap_or_default().as_bytes(),
            )?,
            // The execution mode that ran is always `mcp` (cloud has no backend and falls
            // back).
            SideFile::RunSummary => crate::record::artifacts::write_run_summary(dir, m, "mcp")?,
        }
        healed.rewritten.push(file);
    }
    Ok(healed)
}
