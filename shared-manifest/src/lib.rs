//! Manifest types, their state machines, atomic durable writes, and the persister: the one task
//! that owns a run's manifest and is the only writer of `manifest.json`, its sidecar
//! `manifest.ext.json` and `.heartbeat`.
#![warn(missing_docs)]

pub mod atomic;
pub mod delivery_state;
pub mod document;
pub mod entropy;
pub mod errors;
pub mod loop_state;
pub mod persister;
mod render;
pub mod schema;
pub mod sidecar;
pub mod state;
pub mod update;
pub mod work_record;

pub use delivery_state::{DeliveryEvent, DeliveryPhase, Outcome};
pub use document::{ApplyError, Document, Rendered, Sidecar, SidecarMode};
pub use errors::{AtomicWriteError, PersistError, ReadError};
pub use loop_state::{LoopEvent, LoopPhase, LoopResult, LoopStep};
pub use persister::{Persister, PersisterStats, Synced, Targets};
pub use schema::Manifest;
pub use sidecar::{read_manifest, read_value, Extensions};
pub use state::{
    run_outcome, CommandEvent, CommandStatus, RunEvent, RunPhase, RunStatus, StagePhase,
};
pub use update::{
    ApprovalDecided, DeliveryPatch, DeliveryUpdate, LoopChange, LoopSettings, LoopStart, LoopStop,
    LoopUpdate, ManifestUpdate, RuntimeRecord, StageFinish,
};
pub use work_record::{DeliveryRecord, LoopRecord};
