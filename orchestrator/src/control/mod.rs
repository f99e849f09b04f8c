//! Who may act on a run and how a run is told to stop: the run lock, signal forwarding, cancel
//! requests from outside the runner, and the peer's `control.json`.

pub mod activity;
pub mod approvals;
pub mod cancel;
pub mod control_file;
pub mod lock;
pub mod resource_locks;
pub mod signals;
pub mod slots;
