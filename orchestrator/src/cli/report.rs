//! `report junit --run <id> [--out PATH]`: a finished (or running) run as JUnit XML, from its
//! manifest and logs; on stdout unless `--out` names a file. A run that is not finished still
//! gets its (partial) report, with a note on stderr so a CI step cannot mistake it for the
//! final one.

use crate::cli::{ReportArgs, ReportCommand, ReportJunitArgs};
use crate::errors::AppError;
use crate::exit;

/// Runs one `report` command; returns the exit code.
pub fn report(args: ReportArgs) -> Result<i32, AppError> {
    match args.command {
        ReportCommand::Junit(a) => junit(a),
    }
}

fn junit(a: ReportJunitArgs) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&a.run, a.task.as_deref(), false)?;
    let (roots, path) = (located.roots, located.manifest);
    let m = crate::history::read_manifest(&path)
        .map_err(|e| AppError::Conflict(format!("`{}`: {}", roots.rel(&path), e.one_line())))?;
    if !m.status.is_terminal() {
        // A live runner holds the run's lock; without one the run was abandoned.
        let why = if crate::control::lock::runner_alive(&path) {
            "is still in progress"
        } else {
            "is unfinished and no runner holds it (abandoned; `resume --run` continues it)"
        };
        crate::console::err_line(&format!(
            "note: run `{}` {why} (status `{}`): the report is partial; running stages are reported as errors (`still running`), stages not started as skipped",
            m.run_id,
            m.status.as_str()
        ));
    }
    let xml = crate::report::junit::render(&m, &roots);
    match &a.out {
        Some(out) => crate::report::junit::write(out, &xml)?,
        None => crate::report::output::line(xml.trim_end_matches('\n')),
    }
    Ok(exit::OK)
}
