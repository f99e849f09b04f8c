//! Finishing the bookkeeping of a run that reached its terminal state but whose runner died
//! before it was done with it.
//!
//! A run ends in this order (see `run::finalize`): terminal manifest (durable), then
//! `run-summary.json`, then the `metrics.json` line, then `metrics_recorded: true` in the
//! manifest. A kill anywhere after the first step leaves an honest terminal manifest with
//! `metrics_recorded: false`, maybe no summary, maybe a temp file of the interrupted write.
//! Nothing about that needs the stages again, so `resume` completes these steps (under the run
//! lock) instead of refusing a run that "already succeeded".

use shared_manifest::schema::Manifest;
use shared_manifest::{ManifestUpdate, Persister, Targets};

use crate::errors::AppError;
use crate::record::layout::RunDir;

/// What [`complete`] did; empty when the bookkeeping was already complete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repairs {
    /// Temp files of interrupted writes removed from the run directory.
    pub temps_removed: usize,
    /// Side files that were missing, empty, unparseable or stale, rebuilt from the manifest
    /// (`run-summary.json`, the mcp stub, ...), and temp files removed from the mcp folder.
    pub healed: crate::record::heal::Healed,
    /// The run's `metrics.json` line was missing and is appended now.
    pub metrics_appended: bool,
    /// The manifest now says `metrics_recorded: true`.
    pub marked_recorded: bool,
}

impl Repairs {
    /// True when nothing needed doing.
    pub fn is_empty(&self) -> bool {
        *self == Repairs::default()
    }

    /// `removed 1 temp file, wrote run-summary.json, ...`, for the stderr note.
    pub fn describe(&self) -> String {
        let mut done = Vec::new();
        if self.temps_removed > 0 {
            let s = if self.temps_removed == 1 { "" } else { "s" };
            done.push(format!("removed {} stale temp file{s}", self.temps_removed));
        }
        for file in &self.healed.rewritten {
            done.push(format!("rewrote {}", file.name()));
        }
        if self.healed.temps_removed > 0 {
            done.push(format!(
                "removed {} temp file(s) from its mcp folder",
                self.healed.temps_removed
            ));
        }
        if self.metrics_appended {
            done.push("appended its metrics.json line".to_owned());
        }
        if self.marked_recorded {
            done.push("set metrics_recorded".to_owned());
        }
        done.join(", ")
    }
}

/// Completes the bookkeeping of terminal run `m` in `dir`; returns the manifest as it now is
/// and what was repaired. A run that is not terminal is returned untouched (its runner, or the
/// resume about to start, does the bookkeeping at its end).
///
/// The caller holds the run lock: nobody else writes in `dir`, so every temp file there is stale.
pub async fn complete(dir: &RunDir, m: Manifest) -> Result<(Manifest, Repairs), AppError> {
    let mut repairs = Repairs::default();
    if !m.status.is_terminal() {
        return Ok((m, repairs));
    }
    repairs.temps_removed = shared_manifest::atomic::remove_stale_temps(&dir.dir)
        .map_err(|e| AppError::storage(&dir.dir, e))?;
    repairs.healed = crate::record::heal::heal(dir, &m)?;
    if m.metrics_recorded {
        return Ok((m, repairs));
    }
    // The kill may have hit between the append and the manifest write that records it: append
    // only when this run's end is not in the file yet, so the line is never doubled.
    if !has_metrics_line(dir, &m)? {
        crate::record::artifacts::append_metrics(dir, &m)?;
        repairs.metrics_appended = true;
    }
    // Through a persister, like every manifest write: it is the one writer of the file. No
    // heartbeat path: the run is over, its heartbeat stays as the runner left it.
    let persister = Persister::spawn(m, Targets::manifest(dir.manifest(), None));
    persister.send(ManifestUpdate::MetricsRecorded).await?;
    let m = persister.close().await?;
    repairs.marked_recorded = true;
    Ok((m, repairs))
}

/// True when `metrics.json` holds the line of this run's end (same run id and completion time).
fn has_metrics_line(dir: &RunDir, m: &Manifest) -> Result<bool, AppError> {
    let path = dir.metrics();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(AppError::storage(&path, e)),
    };
    Ok(text.lines().any(|line| {
        // A torn or foreign line is not ours; skip it rather than fail the repair.
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
            v["run_id"] == m.run_id.as_str()
                && v["completed_at"].as_str() == m.completed_at.as_deref()
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_lists_what_was_done() {
        assert!(Repairs::default().is_empty());
        let r = Repairs {
            temps_removed: 1,
            healed: crate::record::heal::Healed {
                rewritten: vec![
                    crate::record::heal::SideFile::RunSummary,
                    crate::record::heal::SideFile::McpStub,
                ],
                temps_removed: 1,
            },
            metrics_appended: true,
            marked_recorded: true,
        };
        assert_eq!(
            r.describe(),
            "removed 1 stale temp file, rewrote run-summary.json, rewrote the mcp redirect stub, removed 1 temp file(s) from its mcp folder, appended its metrics.json line, set metrics_recorded"
        );
    }
}
