//! The orchestrator library (work in progress).
/// Entry point of the binary; returns the process exit code.
pub fn main_impl() -> i32 {
    0
}
