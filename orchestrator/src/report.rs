//! Telling people what happens: one plain line per stage transition on stderr (stdout is
//! reserved for `--format json`). Writes are whole lines so concurrent stages never interleave.

use std::io::Write;
use std::time::Duration;

use shared_manifest::schema::Manifest;

/// Progress output on stderr.
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    quiet: bool,
}

impl Reporter {
    /// A reporter; `quiet` prints nothing.
    pub fn new(quiet: bool) -> Reporter {
        Reporter { quiet }
    }

    fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{text}");
    }

    /// A run starts.
    pub fn run_started(&self, label: &str, run_id: &str, pipeline: &str, manifest: &str) {
        self.line(format!(
            "{label}run {run_id}: pipeline `{pipeline}` started (manifest {manifest})"
        ));
    }

    /// A stage starts.
    pub fn stage_started(&self, label: &str, index: usize, total: usize, id: &str, command: &str) {
        let first = command.lines().next().unwrap_or_default();
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: started — {first}"
        ));
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
        let first = summary.lines().next().unwrap_or_default();
        self.line(format!(
            "{label}[{index:02}/{total:02}] {id}: {status} in {}ms — {first}",
            took.as_millis()
        ));
    }

    /// A stage will not run.
    pub fn stage_skipped(&self, label: &str, index: usize, total: usize, id: &str, reason: &str) {
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
    }
}
