//! codex-orchestrator: runs pipelines of shell stages from `codex.orchestrator.json` and leaves
//! a crash-safe record of every run under `.runs/<task>/cli/<run-id>/`.
//!
//! Flow: config (validated) -> plan (stage graph) -> scheduler -> exec (one stage process) ->
//! updates to the persister (the manifest's only writer), the event stream and the reporter.
//!
//! Folders by concern, imports pointing one way (checked by `tests/module_graph.rs`):
//! `cli` (clap types, the verbs) -> `engine` (run lifecycle, scheduler, stages) ->
//! `control` (locks, signals, `control.json`), `plan`, `report` (progress, events, JUnit),
//! `history` (run index), `record` (run layout and side files) -> `config` -> leaves
//! (`graph`, `modes`, `errors`, `exit`, `env_vars`, `time`, `files`, `console`: the process's stdout and
//! stderr, written only there).

// Output goes through `console`: the print macros panic when a write fails.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod delivery;
pub mod engine;
pub mod env_vars;
pub mod errors;
pub mod exit;
pub mod files;
pub mod gitstate;
pub mod graph;
pub mod history;
pub mod modes;
pub mod plan;
pub mod record;
pub mod report;
pub mod serve;
pub mod time;

pub use cli::entry::main_impl;
