//! Run history: an SQLite index at `.runs/index.sqlite` of every run and its stages, derived
//! from the manifests and rebuilt from them whenever it is missing, damaged or outdated. It
//! backs the `runs` queries; a run that finishes notes itself with [`note_finished`] and the
//! next query records it (see `pending.rs`).

pub mod diff;
pub mod errors;
mod finish;
mod pending;
pub mod query;
pub(crate) mod record;
mod scan;
pub mod stats;
pub mod store;
pub mod table;

pub use errors::HistoryError;
pub use pending::note as note_finished;
pub use query::{parse_since, PipelineTrend, RecentRun, RunFilter, RunRow, StageRow};
pub use scan::{read_manifest, ManifestError};
pub use store::{with_index, Index, Rebuilt};

/// The manifest of run `run_id` in any task under `runs`, if there is one.
pub fn find_manifest(runs: &std::path::Path, run_id: &str) -> Option<std::path::PathBuf> {
    scan::find_manifest(runs, run_id)
}
