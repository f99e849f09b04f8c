//! The command line: clap types (`args`), the entry point, and one module per verb that turns
//! its arguments into work and the outcome into an exit code.

pub mod args;
pub mod cancel;
pub mod common;
pub mod decide;
pub mod entry;
pub mod exec;
pub mod exec_args;
pub mod flow;
pub mod help;
pub mod list;
pub mod logs;
pub mod pause;
pub mod peer_flags;
pub mod plan;
pub mod plan_patch;
pub mod plan_run;
pub mod report;
pub mod resolved;
pub mod resume;
pub mod run_flags;
pub mod run_plan;
pub mod run_ref;
pub mod runs;
pub mod serve;
pub mod setup;
pub mod start;
pub mod status;
pub mod tooling;
pub mod values;
pub mod verify_evidence;

pub use args::*;
