//! `status --run <id>`: a run's state from its manifest, with the heartbeat's age and whether
//! it is stale (a runner that died leaves `in_progress` with an old heartbeat).

use crate::cli::{Format, StatusArgs};
use crate::errors::AppError;
use crate::exit;
use crate::report::status::read as view;

/// Runs `status` (once, or with `--watch` until the run ends); returns the exit code.
pub fn status(args: StatusArgs) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&args.run, args.task.as_deref(), true)?;
    let (roots, path) = (located.roots, located.manifest);
    heal_unattended(&roots, &path);
    if !args.watch {
        let v = view(&roots, &path)?;
        match args.format {
            Format::Json => crate::report::output::json(&v.json),
            Format::Text => crate::report::output::line(v.text.trim_end()),
        }
        return Ok(exit::OK);
    }
    // Watch: poll the manifest (written atomically, so every read is a whole document) and
    // print on change; ndjson in JSON mode. Ends when the run is terminal or abandoned.
    let interval = args.interval.max(std::time::Duration::from_millis(100));
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut last = String::new();
    loop {
        let v = view(&roots, &path)?;
        if v.fingerprint != last {
            match args.format {
                Format::Json => crate::report::output::line(&v.json.to_string()),
                Format::Text if tty => {
                    crate::report::output::line(&format!("\x1b[2J\x1b[H{}", v.text.trim_end()))
                }
                Format::Text => crate::report::output::line(&format!("{}\n", v.text.trim_end())),
            }
            last = v.fingerprint;
        }
        // Nothing more to say once the run is over, or once nobody reads (`| head`, a lost
        // stdout: `main_impl` reports the latter).
        if v.done || crate::console::stdout_closed() || crate::console::stdout_failed() {
            return Ok(exit::OK);
        }
        std::thread::sleep(interval);
    }
}

/// Rebuilds the side files of a run no runner holds (see `record::heal`) when they do not match
/// its manifest: a status check is where damage after a crash or a power cut is first seen.
/// Best effort: a failure is a warning, and a run locked by a live runner (or never locked by
/// one of ours, such as the peer's) is left alone.
fn heal_unattended(roots: &crate::record::layout::Roots, path: &std::path::Path) {
    let Ok(m) = shared_manifest::read_manifest(path) else {
        return;
    };
    let Ok(dir) = roots.run_dir_of(path, &m.task_id, &m.run_id) else {
        return;
    };
    if crate::record::heal::stale(&dir, &m).is_empty() {
        return;
    }
    let Some(Ok(_lock)) = crate::control::lock::try_acquire(&dir.lock()) else {
        return;
    };
    // Read again under the lock: a runner may have finished the run in between.
    let Ok(m) = shared_manifest::read_manifest(path) else {
        return;
    };
    match crate::record::heal::heal(&dir, &m) {
        Ok(healed) if !healed.is_empty() => {
            let names: Vec<&str> = healed.rewritten.iter().map(|f| f.name()).collect();
            crate::console::err_line(&format!(
                "note: rebuilt from the manifest of run `{}`: {}",
                m.run_id,
                if names.is_empty() {
                    "temp files removed".to_owned()
                } else {
                    names.join(", ")
                }
            ));
        }
        Ok(_) => {}
        Err(e) => crate::console::err_line(&format!(
            "warning: cannot rebuild the side files of run `{}`: {e}",
            m.run_id
        )),
    }
}
