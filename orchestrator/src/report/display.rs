//! Every display decision in one place: live display or plain lines, colour, the width lines
//! are cut to, how much of a failed stage's output is shown. Decided once per process from the
//! flags, the environment and the terminal; everything that prints asks here.
//!
//! The live display needs a terminal that can move the cursor: a terminal with `TERM=dumb` or
//! no `TERM` at all gets the plain lines, as a pipe does. Never nothing: the live display is
//! only chosen where it can draw.

use std::sync::OnceLock;

use crate::env_vars;

/// How much of a failed stage's output to print, under its line and in the end summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailureOutput {
    /// The last lines of stderr (of stdout when stderr is empty).
    #[default]
    Tail,
    /// All of stderr (of stdout when stderr is empty), from the stage's log.
    Full,
    /// None: the stage's line and its summary only.
    Never,
}

/// Lines of a failed stage's output shown by default.
pub const DEFAULT_FAILURE_LINES: usize = 20;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The live display: a line per running stage, redrawn in place.
    Live,
    /// One plain line per stage transition.
    Plain,
    /// `--interactive` where no live display can draw: plain lines, and a note saying why.
    PlainNoTerminal,
    /// `-q`: no progress lines; the end summary's failures only.
    Quiet,
}

/// What the process-wide flags say (`--color`, `-q`), set once by the entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Global {
    /// `--color always` (Some(true)), `never` (Some(false)), `auto` (None).
    pub color: Option<bool>,
    /// `-q`.
    pub quiet: bool,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

/// Records the global flags (first call wins; later calls change nothing).
pub fn set_global(g: Global) {
    let _ = GLOBAL.set(g);
}

fn global() -> Global {
    GLOBAL.get().copied().unwrap_or_default()
}

/// What a verb that runs stages asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// `--interactive` (Some(true)) / `--no-interactive` (Some(false)) / neither.
    pub interactive: Option<bool>,
    /// `--failure-output`.
    pub failure_output: FailureOutput,
    /// `--failure-output-lines`.
    pub failure_lines: usize,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            interactive: None,
            failure_output: FailureOutput::Tail,
            failure_lines: DEFAULT_FAILURE_LINES,
        }
    }
}

/// The decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Display {
    /// Live or plain.
    pub progress: Progress,
    /// Colour codes in what the runner prints on stderr.
    pub colour: bool,
    /// Columns lines of the live display are cut to.
    pub width: Option<usize>,
    /// Rows of the terminal (the live display keeps its running list below them).
    pub rows: Option<usize>,
    /// Failure output.
    pub failure_output: FailureOutput,
    /// Lines of failure output with `tail`.
    pub failure_lines: usize,
}

/// What the decisions are made from, gathered so the rules can be tested without a terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// stderr is a terminal.
    pub tty: bool,
    /// `TERM`.
    pub term: Option<String>,
    /// `NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `CLICOLOR`.
    pub clicolor: Option<String>,
    /// `CLICOLOR_FORCE`.
    pub clicolor_force: Option<String>,
    /// Terminal size (rows, columns).
    pub size: Option<(usize, usize)>,
}

impl Facts {
    /// The facts of this process's stderr and environment.
    pub fn now() -> Facts {
        let term = console::Term::stderr();
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Facts {
            tty,
            term: std::env::var(env_vars::TERM).ok(),
            no_color: std::env::var_os(env_vars::NO_COLOR).is_some_and(|v| !v.is_empty()),
            clicolor: std::env::var(env_vars::CLICOLOR).ok(),
            clicolor_force: std::env::var(env_vars::CLICOLOR_FORCE).ok(),
            size: if tty {
                term.size_checked()
                    .map(|(r, c)| (usize::from(r), usize::from(c)))
            } else {
                None
            },
        }
    }

    /// A terminal that can redraw: a tty whose `TERM` is set, not empty and not `dumb`.
    pub fn can_redraw(&self) -> bool {
        self.tty
            && self
                .term
                .as_deref()
                .is_some_and(|t| !t.trim().is_empty() && t != "dumb")
    }
}

/// Colour: `--color` first; then `NO_COLOR` (any non-empty value) says no, `CLICOLOR_FORCE`
/// (non-empty, not `0`) says yes, `CLICOLOR=0` says no; else a terminal that can redraw.
pub fn colour(flag: Option<bool>, f: &Facts) -> bool {
    if let Some(c) = flag {
        return c;
    }
    if f.no_color {
        return false;
    }
    if f.clicolor_force
        .as_deref()
        .is_some_and(|v| !v.is_empty() && v != "0")
    {
        return true;
    }
    if f.clicolor.as_deref() == Some("0") {
        return false;
    }
    f.can_redraw()
}

/// Every decision, from the flags and the facts.
pub fn decide(g: Global, r: Request, f: &Facts) -> Display {
    let progress = if g.quiet {
        Progress::Quiet
    } else {
        match (r.interactive, f.can_redraw()) {
            (Some(false), _) | (None, false) => Progress::Plain,
            (Some(true), false) => Progress::PlainNoTerminal,
            (_, true) => Progress::Live,
        }
    };
    Display {
        progress,
        colour: colour(g.color, f),
        width: f.size.map(|(_, c)| c),
        rows: f.size.map(|(r, _)| r),
        failure_output: r.failure_output,
        failure_lines: r.failure_lines,
    }
}

/// The decisions for this process and `r`.
pub fn current(r: Request) -> Display {
    decide(global(), r, &Facts::now())
}

/// Colour for text the runner prints outside a run (errors, `status`, `list`).
pub fn colour_now() -> bool {
    colour(global().color, &Facts::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tty(term: Option<&str>) -> Facts {
        Facts {
            tty: true,
            term: term.map(str::to_owned),
            size: Some((24, 80)),
            ..Facts::default()
        }
    }

    #[test]
    fn the_live_display_needs_a_terminal_that_can_redraw() {
        let live = |r: Option<bool>, f: &Facts| {
            decide(
                Global::default(),
                Request {
                    interactive: r,
                    ..Request::default()
                },
                f,
            )
            .progress
        };
        assert_eq!(live(None, &tty(Some("xterm"))), Progress::Live);
        assert_eq!(live(Some(true), &tty(Some("xterm"))), Progress::Live);
        assert_eq!(live(Some(false), &tty(Some("xterm"))), Progress::Plain);
        assert_eq!(live(None, &tty(Some("dumb"))), Progress::Plain);
        assert_eq!(live(None, &tty(None)), Progress::Plain);
        assert_eq!(live(None, &tty(Some(""))), Progress::Plain);
        assert_eq!(
            live(Some(true), &tty(Some("dumb"))),
            Progress::PlainNoTerminal
        );
        assert_eq!(live(None, &Facts::default()), Progress::Plain);
        assert_eq!(
            live(Some(true), &Facts::default()),
            Progress::PlainNoTerminal
        );
        let quiet = Global {
            quiet: true,
            ..Global::default()
        };
        assert_eq!(
            decide(quiet, Request::default(), &tty(Some("xterm"))).progress,
            Progress::Quiet
        );
    }

    #[test]
    fn colour_follows_the_flag_then_the_environment() {
        let t = tty(Some("xterm"));
        assert!(colour(None, &t));
        assert!(!colour(Some(false), &t));
        assert!(colour(Some(true), &Facts::default()));
        assert!(!colour(None, &Facts::default()));
        assert!(!colour(None, &tty(Some("dumb"))));
        let no = Facts {
            no_color: true,
            clicolor_force: Some("1".into()),
            ..t.clone()
        };
        assert!(!colour(None, &no));
        assert!(colour(Some(true), &no));
        let forced = Facts {
            clicolor_force: Some("1".into()),
            ..Facts::default()
        };
        assert!(colour(None, &forced));
        let off = Facts {
            clicolor: Some("0".into()),
            ..t
        };
        assert!(!colour(None, &off));
    }
}
