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
