//! Telling people what happens, on stderr (stdout is reserved for `--format json`).
//!
//! Off a terminal (CI logs, pipes): one plain line per stage transition, written whole so lines
//! of concurrent stages never interleave. On a terminal (unless `--no-interactive`): a live
//! display (indicatif) with one spinner per running stage showing its elapsed time, a
//! done/total bar, and a permanent line per finished stage, failures included as they happen.
//! `--interactive` cannot make a pipe a terminal: indicatif draws nothing to a non-terminal, so
//! it would hide every line, the final status included; plain lines are printed instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared_manifest::schema::Manifest;

/// Progress output on stderr. Cheap to clone; clones share the live display.
#[derive(Debug, Clone)]
pub struct Reporter {
    live: Option<Arc<Live>>,
    /// Prints nothing (`exec`, whose stdout and stderr are the command's or its events).
    silent: bool,
}

#[derive(Debug)]
struct Live {
    multi: MultiProgress,
    /// done/total over every run of the invocation (sub-pipelines add their stages).
    overall: ProgressBar,
    /// One spinner per running stage, by label and index.
    running: Mutex<HashMap<(String, usize), ProgressBar>>,
    /// Stages done so far.
    done: std::sync::atomic::AtomicU64,
    /// Stages of every run started so far.
    total: std::sync::atomic::AtomicU64,
}

impl Live {
    /// One more stage done. Positions are set explicitly (not `inc`) so every redraw, including
    /// the one `println` triggers, shows the current count.
    fn tick(&self) {
        self.done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.show();
    }

    /// `done/total stages` as the bar's message (messages redraw at once).
    fn show(&self) {
        let done = self.done.load(std::sync::atomic::Ordering::SeqCst);
        let total = self.total.load(std::sync::atomic::Ordering::SeqCst);
        self.overall
            .set_message(format!("{done}/{total} stages done"));
    }
}

/// Which progress output a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Display {
    /// One line per transition.
    Plain,
    /// `--interactive` without a terminal: plain lines, and a note saying why.
    PlainNoTerminal,
    /// The live display.
    Live,
}

/// The flag (`None`: neither given) and whether stderr is a terminal decide.
fn display(interactive: Option<bool>, tty: bool) -> Display {
    match (interactive, tty) {
        (Some(false), _) | (None, false) => Display::Plain,
        (Some(true), false) => Display::PlainNoTerminal,
        (_, true) => Display::Live,
    }
}

impl Reporter {
    /// Plain lines.
    pub fn plain() -> Reporter {
        Reporter {
            live: None,
            silent: false,
        }
    }

    /// Nothing on stderr.
    pub fn silent() -> Reporter {
        Reporter {
            live: None,
            silent: true,
        }
    }

    /// A live display when stderr is a terminal, unless `interactive` is `Some(false)`.
    pub fn for_terminal(interactive: Option<bool>) -> Reporter {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        match display(interactive, tty) {
            Display::Plain => return Reporter::plain(),
            Display::PlainNoTerminal => {
                // Once per process: `flow` builds a reporter per run.
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Ordering::Relaxed) {
                    crate::console::err_line(
                        "note: --interactive: stderr is not a terminal; printing plain progress lines",
                    );
                }
                return Reporter::plain();
            }
            Display::Live => {}
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:.bold} {msg}  {elapsed}")
                .expect("a valid template"),
        );
        overall.set_prefix("run");
        overall.enable_steady_tick(Duration::from_millis(200));
        // Diagnostics (tracing) are written above the frame from now on.
        crate::console::set_live(Some(multi.clone()));
        let live = Live {
            multi,
            overall,
            running: Mutex::new(HashMap::new()),
            done: Default::default(),
            total: Default::default(),
        };
        Reporter {
            live: Some(Arc::new(live)),
            silent: false,
        }
    }

    /// A line above the bars (so it stays when they redraw), or a plain line; through
    /// `console`, so a terminal that went away never makes it panic.
    fn line(&self, text: String) {
        if self.silent {
            return;
        }
        crate::console::err_line(&text);
    }

    /// A run starts with `stages` stages.
    pub fn run_started(
        &self,
        label: &str,
        run_id: &str,
        pipeline: &str,
        manifest: &str,
        stages: usize,
    ) {
        if let Some(live) = &self.live {
            live.total
                .fetch_add(stages as u64, std::sync::atomic::Ordering::SeqCst);
            live.show();
        }
        self.line(format!(
            "{label}run {run_id}: pipeline `{pipeline}` started (manifest {manifest})"
        ));
    }

    /// A stage starts.
    pub fn stage_started(&self, label: &str, index: usize, total: usize, id: &str, command: &str) {
        let first = command.lines().next().unwrap_or_default();
        let Some(live) = &self.live else {
            self.line(format!(
                "{label}[{index:02}/{total:02}] {id}: started — {first}"
            ));
            return;
        };
        let bar = live
            .multi
            .insert_before(&live.overall, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("a valid template"),
        );
        bar.set_message(format!("{label}[{index:02}/{total:02}] {id} — {first}"));
        bar.enable_steady_tick(Duration::from_millis(100));
        live.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((label.to_owned(), index), bar);
    }

    /// A running stage says where it is (a loop: `iteration 2/5: verifying`): the spinner's
    /// message on a terminal, a line otherwise.
    pub fn stage_progress(
        &self,
        label: &str,
        (index, total): (usize, usize),
        id: &str,
        text: &str,
    ) {
        if let Some(live) = &self.live {
            let running = live.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(bar) = running.get(&(label.to_owned(), index)) {
                bar.set_message(format!("{label}[{index:02}/{total:02}] {id} — {text}"));
                return;
            }
        }
        self.line(format!("{label}[{index:02}/{total:02}] {id}: {text}"));
    }

    /// A line of its own (deliveries, notes), above a live display.
    pub fn note(&self, text: &str) {
        self.line(text.to_owned());
    }

    /// A stage will be retried.
    pub fn stage_retry(&self, label: &str, index: usize, id: &str, attempt: u32, delay: Duration) {
        self.line(format!(
            "{label}[{index:02}] {id}: retrying (attempt {attempt}) in {}ms",
            delay.as_millis()
        ));
    }

    /// A stage ended.
    pub fn stage_finished(
        &self,
        label: &str,
        (index, total): (usize, usize),
        id: &str,
        status: &str,
        took: Duration,
        summary: &str,
    ) {
        if let Some(live) = &self.live {
            if let Some(bar) = live
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(label.to_owned(), index))
            {
                bar.finish_and_clear();
                live.multi.remove(&bar);
            }
            live.tick();
        }
        let first = summary.lines().next().unwrap_or_default();
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: {status} in {}ms — {first}",
            took.as_millis()
        ));
    }

    /// A stage will not run.
    pub fn stage_skipped(&self, label: &str, index: usize, total: usize, id: &str, reason: &str) {
        if let Some(live) = &self.live {
            live.tick();
        }
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: skipped — {reason}"
        ));
    }

    /// A run ended.
    pub fn run_finished(&self, label: &str, m: &Manifest) {
        let detail = m
            .status_detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        self.line(format!(
            "{label}run {}: {}{detail}",
            m.run_id,
            m.status.as_str()
        ));
        if let Some(summary) = &m.summary {
            for l in summary.lines() {
                self.line(format!("{label}  {l}"));
            }
        }
        if let (Some(live), "") = (&self.live, label) {
            live.overall.finish_and_clear();
            crate::console::set_live(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{display, Display};

    #[test]
    fn the_live_display_needs_a_terminal() {
        assert_eq!(display(None, true), Display::Live);
        assert_eq!(display(Some(true), true), Display::Live);
        assert_eq!(display(Some(false), true), Display::Plain);
        assert_eq!(display(None, false), Display::Plain);
        assert_eq!(display(Some(false), false), Display::Plain);
        assert_eq!(display(Some(true), false), Display::PlainNoTerminal);
    }
}
