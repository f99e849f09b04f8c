//! The binary under a pseudo-terminal (`script` from util-linux) and what a terminal would show.
//!
//! A live display is drawn with cursor moves over padded lines, not with newlines, so the raw
//! bytes say little; `screen` replays them on a tiny terminal model that knows the sequences
//! indicatif and tracing emit (carriage return, cursor up/down, erase line, SGR colours,
//! auto-wrap at the last column). The pty gets a fixed size so the frames do not depend on the
//! machine.

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::harness::{TestEnv, BIN};

/// Columns of the pseudo-terminal (`stty cols`): wide enough that no line with a run id wraps.
pub(crate) const COLS: usize = 160;

/// False (with a printed reason) when `script` is missing.
pub(crate) fn available() -> bool {
    let ok = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
    }
    ok
}

/// A runner whose stdout and stderr are a terminal; we read that terminal's output.
pub(crate) struct Pty {
    child: Child,
    chunks: Receiver<Vec<u8>>,
    raw: Vec<u8>,
}

impl Pty {
    /// Starts `codex-orchestrator <args>` on a `COLS`-wide pty in `env`'s repo, with `env`'s
    /// variables and `extra`.
    pub(crate) fn spawn(env: &TestEnv, args: &[&str], extra: &[(&str, &str)]) -> Pty {
        Pty::spawn_sized(env, args, extra, 40, Some("xterm"))
    }

    /// As [`Pty::spawn`], on a terminal of `rows` rows with `TERM` set to `term` (unset for
    /// `None`).
    pub(crate) fn spawn_sized(
        env: &TestEnv,
        args: &[&str],
        extra: &[(&str, &str)],
        rows: usize,
        term: Option<&str>,
    ) -> Pty {
        let mut line = format!("stty cols {COLS} rows {rows} && exec {}", quote(BIN));
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let mut cmd = std::process::Command::new("script");
        // -e: script exits with the runner's code; -f: flush on every write, so frames arrive
        // while they are on screen.
        cmd.args(["-qefc", &line, "/dev/null"])
            .current_dir(env.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", env.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(term) = term {
            cmd.env("TERM", term);
        }
        for (k, v) in env.envs() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn script");
        let mut out = child.stdout.take().expect("piped stdout");
        let (tx, chunks) = std::sync::mpsc::channel();
        // A reader thread so that waiting for a frame can time out; it ends at EOF, when the
        // runner (and with it script) exits.
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Pty {
            child,
            chunks,
            raw: Vec::new(),
        }
    }

    /// Reads until the screen satisfies `ready`, and returns that screen; panics after 20 s
    /// with what was on screen.
    pub(crate) fn wait_for(
        &mut self,
        what: &str,
        ready: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = screen(&self.raw, COLS);
            if ready(&now) {
                return now;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(c) => self.raw.extend_from_slice(&c),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} on screen after 20 s:\n{}", now.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the runner ended before {what}:\n{}", now.join("\n"))
                }
            }
        }
    }

    /// Waits for the runner to end: its exit code, every byte it wrote, the final screen.
    pub(crate) fn finish(mut self) -> (i32, Vec<u8>, Vec<String>) {
        for c in self.chunks.iter() {
            self.raw.extend_from_slice(&c);
        }
        let status = self.child.wait().expect("wait for script");
        let shown = screen(&self.raw, COLS);
        (status.code().unwrap_or(-1), self.raw, shown)
    }
}

/// Single-quotes a word for `sh -c`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The rows a `width`-column terminal shows after `raw` (scrolled-off rows included, trailing
/// blanks trimmed). Unknown sequences are ignored; colours are dropped.
pub(crate) fn screen(raw: &[u8], width: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    // A character written in the last column leaves the cursor there; the next one wraps
    // (xterm's "pending wrap"), which is what indicatif's padded lines rely on.
    let mut wrap = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\r' => {
                col = 0;
                wrap = false;
            }
            // The pty turns `\n` into `\r\n` (onlcr).
            '\n' => {
                row += 1;
                col = 0;
                wrap = false;
            }
            '\u{1b}' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut params = String::new();
                let mut fin = ' ';
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        fin = c;
                        break;
                    }
                    params.push(c);
                }
                let n = params.parse::<usize>().unwrap_or(0);
                // Cursor moves cancel a pending wrap; colours and erasing do not.
                if "ABCDG".contains(fin) {
                    wrap = false;
                }
                match fin {
                    'A' => row = row.saturating_sub(n.max(1)),
                    'B' => row += n.max(1),
                    'C' => col = (col + n.max(1)).min(width - 1),
                    'D' => col = col.saturating_sub(n.max(1)),
                    'G' => col = n.max(1) - 1,
                    'K' => {
                        rows.resize(rows.len().max(row + 1), Vec::new());
                        let r = &mut rows[row];
                        match n {
                            0 => r.truncate(col),
                            1 => r.iter_mut().take(col + 1).for_each(|c| *c = ' '),
                            _ => r.clear(),
                        }
                    }
                    'J' if n == 0 => {
                        rows.resize(rows.len().max(row + 1), Vec::new());
                        rows.truncate(row + 1);
                        rows[row].truncate(col);
                    }
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                if wrap {
                    row += 1;
                    col = 0;
                    wrap = false;
                }
                rows.resize(rows.len().max(row + 1), Vec::new());
                let r = &mut rows[row];
                if r.len() <= col {
                    r.resize(col + 1, ' ');
                }
                r[col] = c;
                if col + 1 == width {
                    wrap = true;
                } else {
                    col += 1;
                }
            }
        }
    }
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| r.iter().collect::<String>().trim_end().to_owned())
        .collect();
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// A frame or screen for a snapshot: run ids and timestamps redacted, `in 12ms` -> `in [DUR]`, elapsed times
/// (`0s`, `12s`) -> `[ELAPSED]`, spinner glyphs -> `[SPIN]`, runs of spaces (padding and
/// right-aligned times) folded to one.
pub(crate) fn redact_screen(env: &TestEnv, rows: &[String]) -> String {
    let word = |w: &str| -> String {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let mut cs = w.chars();
        if let (Some(c), None) = (cs.next(), cs.next()) {
            if ('\u{2800}'..='\u{28ff}').contains(&c) {
                return "[SPIN]".into();
            }
        }
        if w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('T') && w.ends_with('Z') {
            "[TS]".into()
        } else if w.strip_suffix("ms").is_some_and(digits)
            || w.strip_suffix('s')
                .and_then(|t| t.split_once('.'))
                .is_some_and(|(a, b)| digits(a) && digits(b))
        {
            "[DUR]".into()
        } else if w.strip_suffix(['s', 'm', 'h']).is_some_and(digits) {
            "[ELAPSED]".into()
        } else {
            w.to_owned()
        }
    };
    rows.iter()
        .map(|r| {
            env.redact(r)
                .replace(BIN, "[BIN]")
                .split_whitespace()
                .map(word)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_screen_model_follows_redraws_and_wraps() {
    let raw =
        "line one\n\u{1b}[1mbar\u{1b}[0m 1/2\r\u{1b}[2Kdone a\nbar 2/2\u{1b}[1A\r\u{1b}[2Kdone b";
    assert_eq!(
        screen(raw.as_bytes(), 10),
        ["line one", "done b", "bar 2/2"]
    );
    assert_eq!(screen(b"0123456789ab\r\x1b[2Kc", 10), ["0123456789", "c"]);
    assert_eq!(screen(b"0123456789\r\x1b[2Kc", 10), ["c"]);
    assert_eq!(screen(b"0123456789\x1b[1mc", 10), ["0123456789", "c"]);
}
