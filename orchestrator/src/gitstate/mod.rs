//! The state of the working tree, below the engine and delivery: running git (`git`), a
//! snapshot of the work tree with its tree digest, computed without touching the user's index
//! (`snapshot`), the digest of a plain directory outside git (`files`), and what changed
//! between two snapshots (`diffstat`). The loop stage, delivery and resume fingerprints share it.

pub mod diffstat;
pub mod errors;
pub mod files;
pub mod git;
pub mod snapshot;

pub use diffstat::{DiffStat, FileChange};
pub use errors::SnapshotError;
pub use git::{Git, GitError};
pub use snapshot::{diff, take, tree_digest, Snapshot, SnapshotKind, SnapshotOptions};
