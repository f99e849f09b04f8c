//! Manifest types, their state machines, atomic durable writes, and the persister: the one task
//! that owns a run's manifest and is the only writer of `manifest.json` and `.heartbeat`.
#![warn(missing_docs)]

pub mod atomic;
pub mod document;
pub mod errors;
pub mod persister;
pub mod schema;
pub mod state;
pub mod update;

pub use document::{ApplyError, Document};
pub use errors::{AtomicWriteError, PersistError};
pub use persister::{Persister, PersisterStats};
pub use schema::Manifest;
pub use state::{
    run_outcome, CommandEvent, CommandStatus, RunEvent, RunPhase, RunStatus, StagePhase,
};
pub use update::{ApprovalDecided, ManifestUpdate, RuntimeRecord, StageFinish};
