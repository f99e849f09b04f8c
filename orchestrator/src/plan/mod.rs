//! Planning: the stage graph of a pipeline and the checks that must pass before anything runs.

pub mod build;
mod limits;
pub mod patch_record;
pub mod replay;
pub mod selection;
pub mod target;
mod work;

pub use crate::graph::{GraphError, StageGraph};
pub use build::{build, build_one, parse_cli_vars, runner_vars, select, Plan};
pub use selection::{Request as SelectionRequest, Selection};
