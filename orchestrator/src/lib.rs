//! codex-orchestrator: runs pipelines of shell stages from `codex.orchestrator.json` and leaves
//! a crash-safe record of every run under `.runs/<task>/cli/<run-id>/`.
//!
//! Flow: config (validated) -> plan (stage graph) -> scheduler -> exec (one stage process) ->
//! updates to the persister (the manifest's only writer), the event stream and the reporter.

pub mod artifacts;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod control;
pub mod env_vars;
pub mod errors;
pub mod events;
pub mod exit;
pub mod history;
pub mod junit;
pub mod lock;
pub mod logging;
pub mod modes;
pub mod output;
pub mod plan;
pub mod repair;
pub mod report;
pub mod resume;
pub mod run;
pub mod run_layout;
pub mod schedule;
pub mod signals;
pub mod stage;
pub mod subpipeline;
pub mod time;
pub mod vars;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::errors::AppError;

/// The whole program; returns the process exit code. `main` only calls this.
pub fn main_impl() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    logging::init(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime\n  caused by: {e}");
            return exit::STORAGE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Start(args) => commands::start::start(args).await,
            Command::Plan(args) => commands::plan::plan(args),
            Command::Status(args) => commands::status::status(args),
            Command::Runs(args) => commands::runs::runs(args),
            Command::Report(args) => commands::report::report(args),
            Command::Resume(args) => commands::resume::resume(args).await,
            Command::Cancel(args) => commands::cancel::cancel(args),
            Command::Exec(args) => commands::exec::exec(args).await,
            Command::Flow(args) => commands::flow::flow(args).await,
        }
    });
    // Stage processes are waited for by their tasks; nothing may outlive the run, so do not
    // wait for stray blocking work at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            e.exit_code()
        }
    }
}

/// `error: …` then one `caused by: …` per source.
fn print_error(e: &AppError) {
    let mut text = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    eprintln!("{text}");
}
