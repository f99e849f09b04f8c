//! The on-disk record of a run besides the manifest: every path of the run layout, run and
//! task ids, and the side files (error files, run summary, mcp stub, metrics line).

pub mod artifacts;
pub mod layout;
