//! The `loop` stage: build -> snapshot -> verify -> feedback, until the verify pipeline passes
//! or a budget (iterations, wall clock) is spent, or a build changes nothing after a failed
//! verify. `driver` walks the loop's state machine (`shared_manifest::loop_state`) from the
//! durable record; `build` runs the build through the command-stage path; `verify` runs the
//! verify pipeline as a child run; `snapshot` records the work tree (`gitstate`); `feedback`
//! writes what failed for the next build.

pub mod build;
pub mod driver;
pub mod feedback;
pub mod snapshot;
pub mod verify;

pub use driver::run_loop;
