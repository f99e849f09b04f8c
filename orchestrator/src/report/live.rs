//! The live display: one frame redrawn in place under the permanent lines, showing the stages
//! that are running (at most a screenful, then `… and N more`) and the run's totals. Every
//! line is cut to the terminal's width: a wrapped line breaks the redraw, which moves up by the
//! number of lines it believes it drew.
//!
//! The frame is one indicatif bar whose template is a single custom key, rendered from the
//! [`Board`] at each tick (10 per second), so elapsed times move without anyone calling in.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::display::Display;
use super::style::{self, Tone};

/// Spinner frames, one per 100 ms.
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Rows the frame leaves for the permanent lines above it and the prompt: the running list is
/// capped at the terminal's rows minus this (at least 1, at most [`MAX_RUNNING`]).
const RESERVED_ROWS: usize = 6;
/// The longest running list, even on a tall terminal: more is noise.
const MAX_RUNNING: usize = 12;

/// What the frame shows; the reporter updates it, the draw reads it.
#[derive(Debug, Default)]
pub struct Board {
    /// Running stages, in the order they started.
    running: Vec<Running>,
    /// Stages finished (any status) over every run of the invocation.
    done: usize,
    /// Stages failed so far.
    failed: usize,
    /// Stages of every run started so far (sub-pipelines add theirs).
    total: usize,
}

#[derive(Debug)]
struct Running {
    key: (String, usize),
    text: String,
    since: Instant,
}

impl Board {
    /// A run with `stages` stages started.
    pub fn add_total(&mut self, stages: usize) {
        self.total += stages;
    }

    /// A stage started: `text` is its label, index and first command line.
    pub fn started(&mut self, key: (String, usize), text: String, now: Instant) {
        // A stage that waited (an approval, its locks) is listed once: its new line replaces
        // the waiting one.
        self.running.retain(|r| r.key != key);
        self.running.push(Running {
            key,
            text,
            since: now,
        });
    }

    /// A running stage says where it is (a loop's phase): its line changes, its clock does
    /// not. A stage not listed yet is listed from `now`.
    pub fn progress(&mut self, key: (String, usize), text: String, now: Instant) {
        match self.running.iter_mut().find(|r| r.key == key) {
            Some(r) => r.text = text,
            None => self.running.push(Running {
                key,
                text,
                since: now,
            }),
        }
    }

    /// A stage ended (or will not run: `key` is then not among the running).
    pub fn finished(&mut self, key: &(String, usize), failed: bool) {
        self.running.retain(|r| &r.key != key);
        self.done += 1;
        if failed {
            self.failed += 1;
        }
    }

    /// The frame's lines: the capped running list, then the totals, each cut to `width`.
    pub fn render(&self, now: Instant, started: Instant, d: &Display) -> Vec<String> {
        let cap = d
            .rows
            .map_or(MAX_RUNNING, |r| r.saturating_sub(RESERVED_ROWS))
            .clamp(1, MAX_RUNNING);
        let spin = SPINNER[(now.duration_since(started).as_millis() / 100) as usize % 10];
        let mut lines: Vec<String> = self
            .running
            .iter()
            .take(cap)
            .map(|r| {
                let took = style::duration(now.duration_since(r.since));
                style::fit(&format!("{spin} {took:>7} {}", r.text), d.width)
            })
            .collect();
        if self.running.len() > cap {
            lines.push(format!("  … and {} more running", self.running.len() - cap));
        }
        let failed = if self.failed > 0 {
            format!(
                ", {}",
                style::paint(&format!("{} failed", self.failed), Tone::Bad, d.colour)
            )
        } else {
            String::new()
        };
        let totals = format!(
            "{} {}/{} stages done{failed}, {} running  {}",
            style::paint("run", Tone::Bold, d.colour),
            self.done,
            self.total,
            self.running.len(),
            style::duration(now.duration_since(started))
        );
        lines.push(style::fit(&totals, d.width));
        lines
    }
}

/// A live display on stderr.
#[derive(Debug)]
pub struct Live {
    multi: MultiProgress,
    frame: ProgressBar,
    /// Shared with the frame's draw callback.
    pub board: Arc<Mutex<Board>>,
}

impl Live {
    /// Starts drawing; lines printed through `console` go above the frame from now on.
    pub fn start(d: Display, started: Instant) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let board = Arc::new(Mutex::new(Board::default()));
        let drawn = board.clone();
        let key = move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let lines = lock(&drawn).render(Instant::now(), started, &d);
            let _ = w.write_str(&lines.join("\n"));
        };
        let style = ProgressStyle::with_template("{frame}")
            .expect("a valid template")
            .with_key("frame", key);
        let frame = multi.add(ProgressBar::new(0).with_style(style));
        frame.enable_steady_tick(Duration::from_millis(100));
        crate::console::set_live(Some(multi.clone()));
        Live {
            multi,
            frame,
            board,
        }
    }

    /// Updates the board and redraws at once.
    pub fn update(&self, f: impl FnOnce(&mut Board)) {
        f(&mut lock(&self.board));
        self.frame.tick();
    }

    /// [`Live::update`], then draws at once, past the draw rate limit: the lines printed
    /// above the frame repeat the last frame drawn, so a change that must show (a run's stage
    /// total) is drawn now rather than at the next tick, which a short run may never reach.
    pub fn update_now(&self, f: impl FnOnce(&mut Board)) {
        f(&mut lock(&self.board));
        self.frame.force_draw();
    }

    /// Clears the frame; lines go straight to stderr again.
    pub fn finish(&self) {
        self.frame.finish_and_clear();
        let _ = self.multi.clear();
        crate::console::set_live(None);
    }
}

fn lock(board: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    // Counters and a list, never left half-updated: a poisoned lock is still consistent.
    board
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::display::{FailureOutput, Progress};

    fn display(rows: usize, cols: usize) -> Display {
        Display {
            progress: Progress::Live,
            colour: false,
            width: Some(cols),
            rows: Some(rows),
            failure_output: FailureOutput::Tail,
            failure_lines: 20,
        }
    }

    #[test]
    fn the_running_list_is_capped_and_cut_to_the_width() {
        let t0 = Instant::now();
        let mut b = Board::default();
        b.add_total(30);
        for i in 1..=30 {
            b.started(
                (String::new(), i),
                format!("[{i:02}/30] stage-{i} — sleep 10 && a very long command line"),
                t0,
            );
        }
        b.finished(&(String::new(), 1), true);
        let lines = b.render(t0 + Duration::from_millis(1500), t0, &display(15, 40));
        assert_eq!(lines.len(), 15 - RESERVED_ROWS + 2, "{lines:#?}");
        assert!(
            lines.iter().all(|l| console::measure_text_width(l) <= 40),
            "{lines:#?}"
        );
        assert_eq!(lines[0], "⠴   1.50s [02/30] stage-2 — sleep 10 &&…");
        assert_eq!(lines[9], "  … and 20 more running");
        assert_eq!(lines[10], "run 1/30 stages done, 1 failed, 29 runn…");
    }
}
