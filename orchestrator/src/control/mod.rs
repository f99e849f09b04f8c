//! Who may act on a run and how a run is told to stop: the run lock, signal forwarding, and the
//! peer's `control.json`.

pub mod control_file;
pub mod lock;
pub mod signals;
