//! Telling people what happens, on stderr (stdout is reserved for results).
//!
//! What is drawn is decided once, in `display`: on a terminal that can redraw, a live frame
//! (`live`) under a permanent line per stage transition; anywhere else (CI logs, pipes,
//! `TERM=dumb`), the same permanent lines and nothing else, each written whole so lines of
//! concurrent stages never interleave. A failed stage's last output lines follow its line
//! (`--failure-output`), and the top-level run ends with a summary (`summary`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared_manifest::schema::Manifest;

use super::display::{self, Display, FailureOutput, Progress, Request};
use super::live::Live;
use super::style::{self, Tone};
use super::summary::{self, Failure, Output};

/// Progress output on stderr. Cheap to clone; clones share the live display and the failures
/// remembered for the end summary.
#[derive(Debug, Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    display: Display,
    live: Option<Live>,
    started: Instant,
    /// Prints nothing (`exec`, whose stdout and stderr are the command's or its events).
    silent: bool,
    /// Failed stages in the order they failed, for the end summary. Only reporter methods
    /// touch it; a stage's task adds, the run's end reads.
    failures: Mutex<Vec<Failure>>,
}

impl Reporter {
    /// Plain lines with the default failure output (tests and tools).
    pub fn plain() -> Reporter {
        let d = display::decide(
            display::Global::default(),
            Request {
                interactive: Some(false),
                ..Request::default()
            },
            &display::Facts::default(),
        );
        Reporter::with(d, false)
    }

    /// Nothing on stderr.
    pub fn silent() -> Reporter {
        let d = display::decide(
            display::Global::default(),
            Request {
                interactive: Some(false),
                ..Request::default()
            },
            &display::Facts::default(),
        );
        Reporter::with(d, true)
    }

    /// The display `request` gets on this process's stderr (see `display::decide`).
    pub fn new(request: Request) -> Reporter {
        let d = display::current(request);
        if d.progress == Progress::PlainNoTerminal {
            // Once per process: `flow` builds a reporter per run.
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                crate::console::err_line(
                    "note: --interactive: stderr is not a terminal that can redraw (a pipe, a file, TERM=dumb or no TERM); printing plain progress lines",
                );
            }
        }
        Reporter::with(d, false)
    }

    fn with(display: Display, silent: bool) -> Reporter {
        let started = Instant::now();
        let live =
            (display.progress == Progress::Live && !silent).then(|| Live::start(display, started));
        Reporter {
            inner: Arc::new(Inner {
                display,
                live,
                started,
                silent,
                failures: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The decisions this reporter draws by.
    pub fn display(&self) -> Display {
        self.inner.display
    }

    /// A permanent line (above the live frame when one is drawn); nothing under `-q`.
    fn line(&self, text: String) {
        if self.inner.display.progress != Progress::Quiet && !self.inner.silent {
            crate::console::err_line(&text);
        }
    }

    fn paint(&self, text: &str, tone: Tone) -> String {
        style::paint(text, tone, self.inner.display.colour)
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
        if let Some(live) = &self.inner.live {
            live.update_now(|b| b.add_total(stages));
        }
        self.line(format!(
            "{label}run {run_id}: pipeline `{pipeline}` started (manifest {manifest})"
        ));
    }

    /// A stage starts. On the live display it joins the running list instead of printing.
    pub fn stage_started(&self, label: &str, index: usize, total: usize, id: &str, command: &str) {
        let first = command.lines().next().unwrap_or_default();
        let text = format!("{label}[{index:02}/{total:02}] {id} — {first}");
        match &self.inner.live {
            Some(live) => {
                live.update(|b| b.started((label.to_owned(), index), text, Instant::now()))
            }
            None => self.line(format!(
                "{label}[{index:02}/{total:02}] {id}: started — {first}"
            )),
        }
    }

    /// A stage waits before or instead of running (an approval, resource locks): on the live
    /// display it is listed like a running stage, with what it waits for.
    pub fn stage_waiting(&self, label: &str, (index, total): (usize, usize), id: &str, what: &str) {
        match &self.inner.live {
            Some(live) => live.update(|b| {
                b.started(
                    (label.to_owned(), index),
                    format!("{label}[{index:02}/{total:02}] {id} — waiting for {what}"),
                    Instant::now(),
                )
            }),
            None => self.line(format!(
                "{label}[{index:02}/{total:02}] {id}: waiting for {what}"
            )),
        }
    }

    /// The run itself waits or changes course (a run slot, a pause, its budget): one permanent
    /// line.
    pub fn run_note(&self, label: &str, run_id: &str, note: &str) {
        self.line(format!("{label}run {run_id}: {note}"));
    }

    /// A running stage says where it is (a loop: `iteration 2/5: verifying`): its
    /// line in the live frame on a terminal, a line otherwise.
    pub fn stage_progress(
        &self,
        label: &str,
        (index, total): (usize, usize),
        id: &str,
        text: &str,
    ) {
        match &self.inner.live {
            Some(live) => live.update(|b| {
                b.progress(
                    (label.to_owned(), index),
                    format!("{label}[{index:02}/{total:02}] {id} — {text}"),
                    Instant::now(),
                )
            }),
            None => self.line(format!("{label}[{index:02}/{total:02}] {id}: {text}")),
        }
    }

    /// A line of its own (deliveries, notes), above a live display.
    pub fn note(&self, text: &str) {
        self.line(text.to_owned());
    }

    /// A stage will be retried.
    pub fn stage_retry(&self, label: &str, index: usize, id: &str, attempt: u32, delay: Duration) {
        self.line(format!(
            "{label}[{index:02}] {id}: {} (attempt {attempt}) in {}",
            self.paint("retrying", Tone::Warn),
            style::duration(delay)
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
        if let Some(live) = &self.inner.live {
            live.update(|b| b.finished(&(label.to_owned(), index), status == "failed"));
        }
        let first = summary.lines().next().unwrap_or_default();
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: {} in {} — {first}",
            self.paint(status, style::tone_of(status)),
            style::duration(took)
        ));
    }

    /// A command stage failed: its last output lines under its line (per
    /// `--failure-output`), remembered for the end summary. `log` is the stage's log on disk
    /// (read for `full`), `log_rel` its repo-relative spelling.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    pub fn stage_failed(
        &self,
        label: &str,
        index: usize,
        id: &str,
        summary: &str,
        log: &Path,
        log_rel: &str,
        result: &exec::ExecResult,
    ) {
        let d = self.inner.display;
        let output = failure_output(d, log, result);
        if let Some(o) = &output {
            for l in o.render(d.colour) {
                self.line(l);
            }
        }
        lock(&self.inner.failures).push(Failure {
            label: label.to_owned(),
            index,
            id: id.to_owned(),
            summary: summary.lines().next().unwrap_or_default().to_owned(),
            log: log_rel.to_owned(),
            output,
        });
    }

    /// A stage will not run.
    pub fn stage_skipped(&self, label: &str, index: usize, total: usize, id: &str, reason: &str) {
        if let Some(live) = &self.inner.live {
            live.update(|b| b.finished(&(label.to_owned(), index), false));
        }
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: {} — {reason}",
            self.paint("skipped", Tone::Warn)
        ));
    }

    /// A run ended. The top-level run (`label` empty) also gets the end summary; under `-q`
    /// only when it did not succeed.
    pub fn run_finished(&self, label: &str, m: &Manifest) {
        let detail = m
            .status_detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let status = m.status.as_str();
        self.line(format!(
            "{label}run {}: {}{detail}",
            m.run_id,
            self.paint(status, style::tone_of(status))
        ));
        if let Some(summary) = &m.summary {
            for l in summary.lines() {
                self.line(format!("{label}  {l}"));
            }
        }
        if !label.is_empty() {
            return;
        }
        if let Some(live) = &self.inner.live {
            live.finish();
        }
        let d = self.inner.display;
        if self.inner.silent {
            return;
        }
        if d.progress == Progress::Quiet && m.status == shared_manifest::RunStatus::Succeeded {
            return;
        }
        let program = std::env::args()
            .next()
            .unwrap_or_else(|| "codex-orchestrator".into());
        let config = crate::record::layout::config_flag().map(|p| p.to_string_lossy().into_owned());
        let resume = summary::resume_command(&program, &m.run_id, config.as_deref());
        let failures = lock(&self.inner.failures).clone();
        for l in summary::end_summary(
            m,
            self.inner.started.elapsed(),
            &failures,
            Some(&resume),
            d.colour,
        ) {
            crate::console::err_line(&l);
        }
    }
}

/// The failed stage's output to show: stderr, or stdout when stderr has no text; the last
/// lines of the in-memory tail, or (`full`) the whole stream from the log.
fn failure_output(d: Display, log: &Path, r: &exec::ExecResult) -> Option<Output> {
    if d.failure_output == FailureOutput::Never {
        return None;
    }
    let err = exec::text::clean(&r.stderr.tail);
    let (stream, capture, text) = if err.trim().is_empty() {
        ("stdout", &r.stdout, exec::text::clean(&r.stdout.tail))
    } else {
        ("stderr", &r.stderr, err)
    };
    if d.failure_output == FailureOutput::Full && capture.truncated {
        let which = if stream == "stderr" {
            exec::logread::Stream::Stderr
        } else {
            exec::logread::Stream::Stdout
        };
        let mut all = Vec::new();
        if exec::logread::copy_stream(log, which, 0, None, &mut all).is_ok() {
            return Output::of(stream, &exec::text::clean(&all), None, false);
        }
    }
    let lines = (d.failure_output == FailureOutput::Tail).then_some(d.failure_lines);
    Output::of(stream, &text, lines, capture.truncated)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A list only pushed to and cloned: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
