//! The runner's own diagnostics (`tracing`) on stderr.
//!
//! Colour codes only when stderr is a terminal and `NO_COLOR` is unset or empty: CI logs and
//! files must read as plain text. Lines go through `console` (above the live progress display
//! while one is drawn; a failed write is ignored, never a panic).

use std::io::IsTerminal;

use crate::env_vars;

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
        .with_writer(|| crate::console::DiagWriter)
        .with_ansi(colour(std::io::stderr().is_terminal(), no_color))
        .with_target(false)
        .try_init();
}

/// Colour codes only for a person at a terminal who did not ask for none.
fn colour(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
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
