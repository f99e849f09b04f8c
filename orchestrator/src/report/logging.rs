//! The runner's own diagnostics (`tracing`) on stderr.
//!
//! Colour codes only when stderr is a terminal and `NO_COLOR` is unset or empty: CI logs and
//! files must read as plain text. While the live progress display is drawn, each diagnostic
//! line is written with the display suspended (bars cleared, line written, bars redrawn), so
//! it lands above the frame; written straight to the terminal it would be erased by the next
//! redraw, which moves up over the rows it believes are its own.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::MultiProgress;

use crate::env_vars;

/// The live display being drawn, if any. Set by the reporter when it starts one; a clone, so
/// suspending it from here coordinates with every bar of that display.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Installs the subscriber: `-v`/`-vv` set the default filter, `CODEX_ORCHESTRATOR_LOG`
/// overrides it.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env_vars::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_color = std::env::var_os(env_vars::NO_COLOR).is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr)
        .with_ansi(colour(std::io::stderr().is_terminal(), no_color))
        .with_target(false)
        .try_init();
}

/// Colour codes only for a person at a terminal who did not ask for none.
fn colour(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

/// Routes diagnostics through `multi` while it is drawn (`None`: straight to stderr again).
pub(crate) fn draw_above(multi: Option<MultiProgress>) {
    *LIVE.lock().unwrap_or_else(|p| p.into_inner()) = multi;
}

/// stderr, or stderr under the live display. tracing formats an event whole and hands it over
/// in one `write_all`, so each line is written in one piece.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Cloned out so the lock is not held while indicatif redraws.
        let live = LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match live {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, false));
        assert!(!colour(true, true));
        assert!(!colour(false, false));
        assert!(!colour(false, true));
    }
}
