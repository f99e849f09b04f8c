//! Exit codes: the one map from outcomes to process exit status (meanings in README.md, "Exit codes").

/// Run succeeded, or a query worked.
pub const OK: i32 = 0;
/// The run failed (or was cancelled by policy).
pub const RUN_FAILED: i32 = 1;
/// Usage or configuration error; nothing was written.
pub const USAGE: i32 = 2;
/// Run-state conflict: run locked, not found, cannot be resumed, token mismatch.
pub const CONFLICT: i32 = 3;
/// Storage failure: `.runs` could not be written.
pub const STORAGE: i32 = 4;
/// The run succeeded (its gates passed) but a delivery failed (`delivery[]` says which).
pub const DELIVERY_FAILED: i32 = 5;

/// The runner panicked (a bug): the panic hook recorded what it could and exited.
pub const PANIC: i32 = 101;

/// Exit status for a run interrupted by `signal` (128 + the signal number: SIGINT 130,
/// SIGTERM 143, SIGHUP 129).
pub fn interrupted(signal: i32) -> i32 {
    128 + signal
}
