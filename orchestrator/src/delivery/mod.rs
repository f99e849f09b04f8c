//! Delivery of a run that passed its gates (pipeline `delivery`): an evidence bundle with an
//! in-toto statement (`bundle`, checked by `verify-evidence` through `evidence`), a commit
//! pushed to a branch without touching the user's branch or index (`git`), a pull request
//! through the GitHub CLI (`github`). `deliver` runs them in order and records each apart
//! from the run's status.

pub mod bundle;
pub mod deliver;
pub mod errors;
pub mod evidence;
pub mod git;
pub mod github;
pub mod preflight;

pub use deliver::{deliver, Deliverer};
pub use errors::DeliveryError;
