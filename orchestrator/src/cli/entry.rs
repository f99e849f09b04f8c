//! The program's entry point: parse the command line, start the runtime, run the verb, print
//! the error (the only place that does) and map it to the exit code.

use clap::Parser;

use crate::cli::{Cli, ColorChoice, Command};
use crate::errors::AppError;
use crate::exit;
use crate::report::{display, logging};

/// The whole program; returns the process exit code. `main` only calls this.
pub fn main_impl() -> i32 {
    // First: a panic anywhere, from here on, ends the process promptly (exit 101) with the runs
    // it was working on recorded and their locks free, instead of a wedged process.
    crate::engine::crash::install();
    // The peer prints its bare version for `version`, `--version` and `-v` as the first
    // argument; scripts compare it. `-v` before a verb stays our `--verbose`.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = args.get(1).and_then(|a| a.to_str());
    if matches!(first, Some("version" | "--version" | "-V"))
        || (first == Some("-v") && args.len() == 2)
    {
        crate::report::output::line(env!("CARGO_PKG_VERSION"));
        return exit::OK;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            // Help that cannot be written is a lost result, like any other (exit 4).
            let printed = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else if printed.is_err() {
                exit::STORAGE
            } else {
                exit::OK
            };
        }
    };
    if let Some(path) = &cli.global.config {
        crate::record::layout::set_config_flag(path.clone());
    }
    display::set_global(display::Global {
        color: match cli.global.color {
            ColorChoice::Auto => None,
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
        },
        quiet: cli.global.quiet,
    });
    if let Err(e) = logging::init(cli.global.verbose, cli.global.quiet, display::colour_now()) {
        crate::console::err_line(&format!("error: {e}"));
        return exit::USAGE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::console::err_line(&format!(
                "error: cannot start the async runtime\n  caused by: {e}"
            ));
            return exit::STORAGE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Start(args) if args.dry_run => super::resolved::dry_run(&args, None),
            Command::Start(args) => super::start::start(args).await,
            Command::Plan(args) => super::plan::plan(args),
            Command::RunPlan(args) => super::run_plan::run_plan(args).await,
            Command::PlanPatch(args) => super::plan_patch::plan_patch(args),
            Command::Status(args) => super::status::status(args),
            Command::Runs(args) => super::runs::runs(args),
            Command::Report(args) => super::report::report(args),
            Command::Resume(args) => super::resume::resume(args).await,
            Command::Cancel(args) => super::cancel::cancel(args),
            Command::Approve(args) => {
                super::decide::decide(args, shared_manifest::schema::ApprovalState::Approved)
            }
            Command::Reject(args) => {
                super::decide::decide(args, shared_manifest::schema::ApprovalState::Rejected)
            }
            Command::Pause(args) => {
                super::pause::pause(args, crate::control::control_file::Action::Pause)
            }
            Command::Unpause(args) => {
                super::pause::pause(args, crate::control::control_file::Action::Resume)
            }
            Command::Exec(args) => super::exec::exec(args).await,
            Command::Flow(args) => super::flow::flow(args).await,
            Command::Version => {
                crate::report::output::line(env!("CARGO_PKG_VERSION"));
                Ok(exit::OK)
            }
            Command::Serve(args) => super::serve::serve(args).await,
            Command::VerifyEvidence(args) => super::verify_evidence::verify_evidence(args),
            Command::Logs(args) => super::logs::logs(args),
            Command::Completions(args) => super::tooling::completions(args),
            Command::Man => super::tooling::man(),
            Command::List(args) => super::list::list(args),
        }
    });
    // Stage processes are waited for by their tasks; nothing may outlive the run, so do not
    // wait for stray blocking work at shutdown.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            e.exit_code()
        }
    };
    // A result that could not be written to stdout (a full disk, EIO; not a reader that left)
    // turns a success into exit 4; a failure's own code says more and stands.
    match crate::console::take_stdout_error() {
        Some(lost) if code == exit::OK => {
            let e = AppError::from(lost);
            print_error(&e);
            e.exit_code()
        }
        _ => code,
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
    crate::console::err_line(&text);
}
