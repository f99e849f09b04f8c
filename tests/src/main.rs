fn main() {
    std::process::exit(codex_orchestrator::main_impl());
}
