//! Loading and validating `codex.orchestrator.json`.

pub mod delivery;
pub mod error;
pub mod executor;
mod json;
mod json_get;
pub mod load;
pub mod model;
pub mod package;
pub mod plan_file;
pub mod plan_patch;
#[cfg(test)]
mod props;
pub mod secrets;
pub(crate) mod suggest;
mod validate;
pub mod vars;

pub use error::ConfigError;
pub use executor::{ExecutorConfig, RayConfig};
pub use load::{load, parse, Loaded};
pub use model::{
    ApprovalStage, CommandStage, Config, ConfigSource, Durability, LoopStage, OnFailure, OnTimeout,
    Pipeline, RecordSettings, RetryPolicy, Stage, StageKind,
};
pub use secrets::SecretNames;
