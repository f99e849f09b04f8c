//! The `codex-orchestrator` binary; everything lives in the library.

fn main() {
    std::process::exit(codex_orchestrator::main_impl());
}
