fn main() {
    std::process::exit(orchestrator::main_impl());
}
