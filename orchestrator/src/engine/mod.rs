//! Running a pipeline: the run lifecycle (`run`), the scheduler, one command stage, one
//! sub-pipeline stage, and taking over a run for `resume` (`resume`, `repair`). The state a
//! run's stages share lives in `state`, which uses none of its siblings, so imports point one
//! way: run -> schedule -> stage, subpipeline -> state.

pub mod approval;
pub mod capacity;
pub mod context;
pub mod crash;
pub mod earlier_run;
pub mod executor;
pub mod fingerprint;
pub mod gate;
pub mod locks;
pub mod loop_stage;
pub mod patch;
pub mod peer_env;
pub mod queue;
pub mod records;
pub mod repair;
pub mod resume;
pub mod run;
pub mod schedule;
pub mod stage;
pub mod stage_end;
pub mod state;
pub mod subpipeline;
