//! `logs [RUN] [STAGE] [--stream stdout|stderr] [--follow]`: a stage's output, decoded from its
//! ndjson log and written byte for byte (non-UTF-8 and colour codes included). Without
//! `--stream` the stage's stdout goes to stdout and its stderr to stderr, as it ran; with it,
//! that one stream goes to stdout. `--follow` keeps printing while the stage runs.
//!
//! RUN is named as for every verb (id, prefix, `latest`, `--run`, `--last`; default the newest
//! run); STAGE by id or 1-based index (default: every stage in order, each introduced by a
//! `==> [NN] id <==` line on stderr).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use exec::logread::{copy_stream, Stream};
use shared_manifest::schema::Manifest;

use super::run_ref::{self, RunRef};
use crate::cli::{LogStream, LogsArgs};
use crate::errors::AppError;
use crate::exit;

/// How often `--follow` looks for new output.
const POLL: Duration = Duration::from_millis(100);

/// Runs `logs`; returns the exit code.
pub fn logs(args: LogsArgs) -> Result<i32, AppError> {
    let (run, stage) = names(&args)?;
    let located = run_ref::locate(&run, args.task.as_deref(), true)?;
    let manifest = read(&located.manifest)?;
    let picked: Vec<usize> = match &stage {
        Some(s) => vec![find_stage(&manifest, s)?],
        None => (0..manifest.commands.len()).collect(),
    };
    let headers = picked.len() > 1;
    for i in picked {
        let c = &manifest.commands[i];
        if headers {
            crate::console::err_line(&format!("==> [{:02}] {} <==", c.index, c.id));
        }
        // A stage that has not started may have no `log_path` yet: its log will be here. A
        // recorded path outside `.runs` (an edited or hostile manifest) is not followed: the
        // stage's log is read from where the runner writes it.
        let log = c
            .log_path
            .as_deref()
            .and_then(|l| located.roots.recorded_path(l))
            .unwrap_or_else(|| {
                located
                    .roots
                    .run_dir(&manifest.task_id, &manifest.run_id)
                    .stage_log(c.index, &c.id)
            });
        print_stage(&log, args.stream, args.follow, &located.manifest, i)?;
    }
    Ok(exit::OK)
}

/// The run and the stage the positionals and flags name. With `--run`/`--last` every
/// positional is the stage; otherwise the first is the run, unless it names no run and there
/// is no second (`logs build`: that stage of the newest run).
fn names(args: &LogsArgs) -> Result<(RunRef, Option<String>), AppError> {
    let flagged = args.run.is_some() || args.last;
    let flag_ref = RunRef {
        id: None,
        run: args.run.clone(),
        last: args.last,
    };
    match (flagged, args.names.as_slice()) {
        (true, []) => Ok((flag_ref, None)),
        (true, [stage]) => Ok((flag_ref, Some(stage.clone()))),
        (false, []) => Ok((RunRef::default(), None)),
        (false, [run, stage]) => Ok((RunRef::id(run), Some(stage.clone()))),
        (false, [one]) => {
            let roots = crate::record::layout::Roots::from_env().map_err(|e| {
                AppError::Usage(format!("cannot determine the current directory: {e}"))
            })?;
            match run_ref::resolve(&roots, one, args.task.as_deref()) {
                Err(AppError::Conflict(_)) => Ok((RunRef::default(), Some(one.clone()))),
                _ => Ok((RunRef::id(one), None)),
            }
        }
        _ => Err(AppError::Usage(
            "too many arguments: logs [RUN] [STAGE] (or --run RUN [STAGE])".into(),
        )),
    }
}

fn read(path: &Path) -> Result<Manifest, AppError> {
    crate::history::read_manifest(path)
        .map_err(|e| AppError::Conflict(format!("`{}`: {}", path.display(), e.one_line())))
}

/// The position in `commands` of the stage named by id or 1-based index.
fn find_stage(m: &Manifest, name: &str) -> Result<usize, AppError> {
    if let Some(i) = m.commands.iter().position(|c| c.id == name) {
        return Ok(i);
    }
    if let Ok(n) = name.parse::<usize>() {
        if let Some(i) = m.commands.iter().position(|c| c.index == n) {
            return Ok(i);
        }
    }
    let ids: Vec<&str> = m.commands.iter().map(|c| c.id.as_str()).collect();
    Err(AppError::Usage(format!(
        "run `{}` has no stage `{name}` (stages: {})",
        m.run_id,
        ids.join(", ")
    )))
}

/// Writes to our stdout through `console`, so a closed pipe ends nothing badly.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::console::out_bytes(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes to our stderr through `console`.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        crate::console::err_bytes(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One stage's streams; with `follow`, again and again from where the last copy ended until
/// the stage is over (its status terminal, or no runner left to finish it).
fn print_stage(
    log: &Path,
    only: Option<LogStream>,
    follow: bool,
    manifest: &Path,
    position: usize,
) -> Result<(), AppError> {
    let streams: Vec<(Stream, bool)> = match only {
        Some(LogStream::Stdout) => vec![(Stream::Stdout, true)],
        Some(LogStream::Stderr) => vec![(Stream::Stderr, true)],
        None => vec![(Stream::Stdout, true), (Stream::Stderr, false)],
    };
    let mut offsets = vec![0u64; streams.len()];
    loop {
        // Read the state before copying: output written before the stage ended is then
        // always copied by this round or an earlier one.
        let over = !follow || stage_over(manifest, position);
        for ((stream, to_stdout), offset) in streams.iter().zip(offsets.iter_mut()) {
            let copied = match std::fs::metadata(log) {
                // Not written yet (a stage that has not started): nothing to show so far.
                Err(_) => continue,
                _ if *to_stdout => copy_stream(log, *stream, *offset, None, &mut Stdout),
                _ => copy_stream(log, *stream, *offset, None, &mut Stderr),
            }
            .map_err(|e| AppError::Conflict(format!("cannot read `{}`: {e}", log.display())))?;
            *offset += copied.written;
        }
        if over || crate::console::stdout_closed() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

/// The stage at `position` will write nothing more: its status is terminal, or the run is
/// terminal or abandoned (no runner holds it).
fn stage_over(manifest: &Path, position: usize) -> bool {
    let Ok(m) = crate::history::read_manifest(manifest) else {
        return true;
    };
    let stage_done = m.commands.get(position).is_none_or(|c| {
        !matches!(
            c.status,
            shared_manifest::CommandStatus::Pending | shared_manifest::CommandStatus::Running
        )
    });
    stage_done || m.status.is_terminal() || !crate::control::lock::runner_alive(manifest)
}
