//! The on-disk record of a run besides the manifest: every path of the run layout, run and
//! task ids, and the side files (error files, run summary, mcp stub, metrics line), checked
//! and rebuilt from the manifest when damaged (`heal`).

pub mod artifacts;
pub mod heal;
pub mod layout;
