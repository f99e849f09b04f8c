//! The runner's own diagnostics (`tracing`) on stderr.
//!
//! Colour as `display` decides (`--color`, `NO_COLOR`, `CLICOLOR`, a terminal): CI logs and
//! files must read as plain text. Lines go through `console` (above the live progress display
//! while one is drawn; a failed write is ignored, never a panic).

use crate::env_vars;

/// The default filter for `-q` (`verbose` ignored), none, `-v` and `-vv`: our own crates at
/// that level, everything else at `warn`.
fn default_filter(verbose: u8, quiet: bool) -> String {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    format!("warn,codex_orchestrator={level},exec={level},shared_manifest={level}")
}

/// Installs the subscriber: `-q`/`-v`/`-vv` set the default filter, `CODEX_ORCHESTRATOR_LOG`
/// (an `EnvFilter` directive such as `debug` or `shared_manifest=debug`) replaces it. An
/// invalid directive is an error rather than silently ignored: the person asked for output.
pub fn init(verbose: u8, quiet: bool, colour: bool) -> Result<(), String> {
    let filter = match env_vars::non_blank(env_vars::LOG) {
        Some(directive) => tracing_subscriber::EnvFilter::builder()
            .parse(&directive)
            .map_err(|e| format!("{} `{directive}` is not a valid filter: {e}", env_vars::LOG))?,
        None => tracing_subscriber::EnvFilter::new(default_filter(verbose, quiet)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::console::DiagWriter)
        .with_ansi(colour)
        .with_target(false)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::default_filter;

    #[test]
    fn verbosity_sets_our_crates_level() {
        assert!(default_filter(0, false).contains("codex_orchestrator=warn"));
        assert!(default_filter(1, false).contains("exec=info"));
        assert!(default_filter(2, false).contains("shared_manifest=debug"));
        assert!(default_filter(2, true).contains("codex_orchestrator=error"));
        for v in 0..3 {
            tracing_subscriber::EnvFilter::builder()
                .parse(default_filter(v, false))
                .expect("a valid default filter");
        }
    }
}
