//! The `codex-orchestrator` binary; everything lives in the library.

fn main() {
    std::process::exit(orchestrator::main_impl());
}
