//! Manifest types, their state machines, atomic durable writes, and the persister: the one task
//! that owns a run's manifest and is the only writer of `manifest.json` and `.heartbeat`.
#![warn(missing_docs)]

pub mod document;

pub use document::{ApplyError, Document};
