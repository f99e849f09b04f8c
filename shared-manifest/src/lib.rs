//! Manifest types, their state machines, atomic durable writes, and the persister: the one task
//! that owns a run's manifest and is the only writer of `manifest.json`, its sidecar
//! `manifest.ext.json` and `.heartbeat`.
#![warn(missing_docs)]

pub mod atomic;
pub mod document;
pub mod entropy;
pub mod errors;
pub mod persister;
mod render;
pub mod schema;
pub mod sidecar;
pub mod state;
pub mod update;

pub use document::{ApplyError, Document, Rendered, Sidecar};
pub use errors::{AtomicWriteError, PersistError, ReadError};
pub use persister::{Persister, PersisterStats, Synced, Targets};
pub use schema::Manifest;
pub use sidecar::{read_manifest, read_value, Extensions};
pub use state::{
    run_outcome, CommandEvent, CommandStatus, RunEvent, RunPhase, RunStatus, StagePhase,
};
pub use update::{ApprovalDecided, ManifestUpdate, RuntimeRecord, StageFinish};
