//! Loading and validating `codex.orchestrator.json`.

pub mod error;
pub mod package;
pub mod load;
pub mod model;
#[cfg(test)]
mod props;
mod suggest;
mod validate;
pub mod vars;

pub use error::ConfigError;
pub use load::{load, parse, Loaded};
pub use model::{CommandStage, Config, ConfigSource, OnFailure, Pipeline, RetryPolicy, Stage, StageKind};
