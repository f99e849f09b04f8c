//! JUnit XML for one run, for CI systems: one `<testsuite>` (the pipeline) with one
//! `<testcase>` per stage. Failed stages carry the stderr tail from their error file in
//! `<failure>`; every stage with output carries the tails of its stdout and stderr in
//! `<system-out>` and `<system-err>`, read back from its ndjson log (allowFailure stages,
//! reported `<skipped>`, keep their stderr that way). A run still in progress gives a partial
//! report: a running stage is an `<error message="still running">`, one not started yet is
//! skipped as "not started yet".
//!
//! Stage output is arbitrary bytes, so everything that reaches the XML is escaped, and
//! characters XML 1.0 cannot carry at all (control characters such as ESC from colour codes,
//! U+FFFE, U+FFFF) become U+FFFD: a consumer's parser must never choke on a report.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

use exec::logread::{self, Stream};
use serde_json::Value;
use shared_manifest::atomic::{create_dir_all_durable, write_atomic};
use shared_manifest::schema::{CommandRecord, Manifest};
use shared_manifest::CommandStatus;

use crate::errors::AppError;
use crate::history::record::{span_ms, stage_duration_ms};
use crate::record::layout::Roots;

/// Most output kept per stage and stream in `<system-out>` / `<system-err>` (the last bytes).
pub const OUTPUT_TAIL: usize = 64 * 1024;

/// The report of run `m`; stage logs and error files are read relative to `repo`.
pub fn render(m: &Manifest, roots: &Roots) -> String {
    let count =
        |f: &dyn Fn(CommandStatus) -> bool| m.commands.iter().filter(|c| f(c.status)).count();
    let tests = m.commands.len();
    let failures = count(&|s| s == CommandStatus::Failed);
    let errors = count(&|s| s == CommandStatus::Running);
    let skipped = count(&|s| matches!(s, CommandStatus::Skipped | CommandStatus::Pending));
    let time = seconds(
        span_ms(Some(&m.started_at), m.completed_at.as_deref())
            .or_else(|| Some(m.commands.iter().filter_map(stage_duration_ms).sum())),
    );
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"codex-orchestrator\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">\n"
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{}\">\n",
        escape_attr(&m.pipeline_id),
        escape_attr(&m.started_at),
    ));
    x.push_str("    <properties>\n");
    let props = [
        ("run_id", Some(m.run_id.as_str())),
        ("task_id", Some(m.task_id.as_str())),
        ("pipeline_title", Some(m.pipeline_title.as_str())),
        ("status", Some(m.status.as_str())),
        ("status_detail", m.status_detail.as_deref()),
        ("artifact_root", Some(m.artifact_root.as_str())),
    ];
    for (name, value) in props {
        if let Some(v) = value {
            x.push_str(&format!(
                "      <property name=\"{name}\" value=\"{}\"/>\n",
                escape_attr(v)
            ));
        }
    }
    x.push_str("    </properties>\n");
    for c in &m.commands {
        testcase(&mut x, m, c, roots);
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn testcase(x: &mut String, m: &Manifest, c: &CommandRecord, roots: &Roots) {
    let mut inner = String::new();
    let summary = c.summary.as_deref().unwrap_or("");
    match c.status {
        CommandStatus::Succeeded => {}
        CommandStatus::Failed => {
            let kind = c.outcome.as_deref().unwrap_or("failed");
            let body = c
                .error_file
                .as_deref()
                .and_then(|p| roots.recorded_path(p))
                .and_then(|p| error_stderr(&p))
                .unwrap_or_else(|| summary.to_owned());
            inner.push_str(&format!(
                "      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                escape_attr(summary),
                escape_attr(kind),
                escape_text(&body),
            ));
        }
        CommandStatus::Running => {
            // Not skipped: it ran, and its outcome is unknown yet.
            inner.push_str(
                "      <error message=\"still running\" type=\"running\">the run was still in progress when the report was written</error>\n",
            );
        }
        CommandStatus::Skipped | CommandStatus::Pending => {
            let pending = if m.status.is_terminal() {
                "not run"
            } else {
                "not started yet"
            };
            let message =
                c.skip_reason
                    .as_deref()
                    .or(c.summary.as_deref())
                    .unwrap_or(match c.status {
                        CommandStatus::Pending => pending,
                        _ => "skipped",
                    });
            inner.push_str(&format!(
                "      <skipped message=\"{}\"/>\n",
                escape_attr(message)
            ));
        }
    }
    if let Some(log) = c.log_path.as_deref() {
        let tails = roots
            .recorded_path(log)
            .and_then(|p| output_tails(&p, OUTPUT_TAIL).ok());
        if let Some(tails) = tails {
            for (tag, text) in [("system-out", tails.stdout), ("system-err", tails.stderr)] {
                if !text.is_empty() {
                    inner.push_str(&format!("      <{tag}>{}</{tag}>\n", escape_text(&text)));
                }
            }
        }
    }
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        escape_attr(&m.pipeline_id),
        escape_attr(&c.id),
        seconds(stage_duration_ms(c)),
    );
    if inner.is_empty() {
        x.push_str(&format!("{open}/>\n"));
    } else {
        x.push_str(&format!("{open}>\n{inner}    </testcase>\n"));
    }
}

/// Writes `xml` to `path` atomically, creating missing parent directories.
pub fn write(path: &Path, xml: &str) -> Result<(), AppError> {
    let path = std::path::absolute(path).map_err(|e| AppError::storage(path, e))?;
    if let Some(dir) = path.parent() {
        create_dir_all_durable(dir).map_err(|e| AppError::storage(dir, e))?;
    }
    write_atomic(&path, xml.as_bytes()).map_err(AppError::from)
}

/// `12.345` seconds from milliseconds (`0.000` when unknown).
fn seconds(ms: Option<i64>) -> String {
    let ms = ms.unwrap_or(0).max(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `details.stderr` of an error file (already the tail of the stage's stderr, capped).
fn error_stderr(path: &Path) -> Option<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let text = v["details"]["stderr"].as_str()?;
    (!text.is_empty()).then(|| text.to_owned())
}

/// What a stage wrote to each stream, the last bytes only.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tails {
    /// The end of stdout.
    pub stdout: String,
    /// The end of stderr.
    pub stderr: String,
}

/// One stream's chunks, newest first, while reading a log backwards.
#[derive(Debug, Default)]
struct Tail {
    pieces: Vec<(Option<u64>, Vec<u8>)>,
    total: usize,
    /// More than `cap` bytes held: older chunks of this stream are no longer read.
    full: bool,
}

/// The last `cap` bytes a stage wrote to stdout and to stderr, from the `exec:chunk` lines of
/// its log, read backwards in one pass so that a huge log costs only its tail (or one scan
/// when a stream has less than `cap` bytes). When the stage ran more than once each attempt's
/// output is introduced by `[attempt N]`; a cut is marked at the front.
pub fn output_tails(log: &Path, cap: usize) -> std::io::Result<Tails> {
    let mut tails = [Tail::default(), Tail::default()];
    let slot = |s: Stream| usize::from(s == Stream::Stderr);
    let f = File::open(log)?;
    // Newest first: each line is parsed at most once, only for a stream not yet full; stop
    // once both are full.
    logread::lines_before(&f, u64::MAX, |_, line| {
        if let Some(c) = logread::parse_chunk_if(line, |s| !tails[slot(s)].full) {
            let t = &mut tails[slot(c.stream)];
            t.total += c.data.len();
            t.pieces.push((c.attempt, c.data));
            t.full = t.total > cap;
        }
        if tails.iter().all(|t| t.full) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let [out, err] = tails;
    Ok(Tails {
        stdout: render_tail(out, cap),
        stderr: render_tail(err, cap),
    })
}

/// One stream's text: attempts marked when there were several, at most `cap` bytes.
fn render_tail(tail: Tail, cap: usize) -> String {
    let mut pieces = tail.pieces;
    pieces.reverse();
    let attempts: std::collections::BTreeSet<_> = pieces.iter().map(|p| p.0).collect();
    let mut out: Vec<u8> = Vec::new();
    let mut last = None;
    for (attempt, data) in &pieces {
        if attempts.len() > 1 && last != Some(*attempt) {
            if out.last().is_some_and(|b| *b != b'\n') {
                out.push(b'\n');
            }
            out.extend_from_slice(
                format!(
                    "[attempt {}]\n",
                    attempt.map_or("?".into(), |a| a.to_string())
                )
                .as_bytes(),
            );
            last = Some(*attempt);
        }
        out.extend_from_slice(data);
    }
    let mut cut = tail.full;
    if out.len() > cap {
        let mut from = out.len() - cap;
        // Do not start in the middle of a UTF-8 character.
        while from < out.len() && (out[from] & 0xC0) == 0x80 {
            from += 1;
        }
        out.drain(..from);
        cut = true;
    }
    let text = String::from_utf8_lossy(&out);
    if cut {
        format!("[earlier output omitted]\n{text}")
    } else {
        text.into_owned()
    }
}

/// True for the characters XML 1.0 allows in a document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes element text: `&`, `<`, `>`; `\r` as a reference (a parser would fold it into
/// `\n`); characters XML cannot hold become U+FFFD.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Escapes an attribute value: as text, plus quotes, and whitespace as references (a parser
/// would normalise a literal newline or tab in an attribute to a space).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push_str(&escape_text(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::io::Write;

    #[test]
    fn text_and_attributes_are_escaped() {
        assert_eq!(escape_text("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(escape_text("]]>"), "]]&gt;");
        assert_eq!(
            escape_text("\x1b[31mred\x1b[0m"),
            "\u{FFFD}[31mred\u{FFFD}[0m"
        );
        assert_eq!(
            escape_text("a\0b\x07\u{FFFE}\u{FFFF}"),
            "a\u{FFFD}b\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(escape_text("tab\there\nnl\r\n"), "tab\there\nnl&#13;\n");
        assert_eq!(escape_text("é—😀"), "é—😀");
        assert_eq!(
            escape_attr("say \"hi\" & 'bye'\n\t<x>"),
            "say &quot;hi&quot; &amp; &apos;bye&apos;&#10;&#9;&lt;x&gt;"
        );
        assert_eq!(escape_attr("\x1b"), "\u{FFFD}");
    }

    fn chunk(attempt: u64, stream: &str, data: &[u8]) -> String {
        match std::str::from_utf8(data) {
            Ok(s) => serde_json::json!({"type":"exec:chunk","attempt":attempt,"stream":stream,
                "bytes":data.len(),"data":s,"index":1})
            .to_string(),
            Err(_) => serde_json::json!({"type":"exec:chunk","attempt":attempt,"stream":stream,
                "bytes":data.len(),"data":base64::engine::general_purpose::STANDARD.encode(data),
                "encoding":"base64","index":1})
            .to_string(),
        }
    }

    fn log(lines: &[String]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp");
        for l in lines {
            writeln!(f, "{l}").expect("write");
        }
        f
    }

    fn stdout_tail(log: &Path, cap: usize) -> std::io::Result<String> {
        output_tails(log, cap).map(|t| t.stdout)
    }

    #[test]
    fn both_tails_come_from_one_pass_and_a_full_stream_does_not_stop_the_other() {
        let mut lines = vec![chunk(1, "stderr", b"early warning\n")];
        lines.extend((0..1000).map(|i| chunk(1, "stdout", format!("out {i:04}\n").as_bytes())));
        lines.push(chunk(1, "stderr", b"late error\n"));
        let f = log(&lines);
        let tails = output_tails(f.path(), 30).expect("tails");
        assert_eq!(
            tails.stdout,
            "[earlier output omitted]\n96\nout 0997\nout 0998\nout 0999\n"
        );
        assert_eq!(tails.stderr, "early warning\nlate error\n");
        let f = log(&[chunk(1, "stdout", b"only out")]);
        assert_eq!(
            output_tails(f.path(), 20).expect("tails"),
            Tails {
                stdout: "only out".into(),
                stderr: String::new()
            }
        );
    }

    #[test]
    fn stdout_tail_decodes_chunks_and_skips_stderr() {
        let f = log(&[
            r#"{"type":"command:start","command":"x","index":1}"#.to_owned(),
            chunk(1, "stdout", b"hello "),
            chunk(1, "stderr", b"noise"),
            chunk(1, "stdout", b"\xff\xfe"),
            chunk(1, "stdout", b"world\n"),
            r#"{"type":"command:end","exit_code":0,"index":1}"#.to_owned(),
        ]);
        assert_eq!(
            stdout_tail(f.path(), 1024).expect("tail"),
            "hello \u{FFFD}\u{FFFD}world\n"
        );
    }

    #[test]
    fn stdout_tail_keeps_the_last_bytes_and_marks_the_cut() {
        let lines: Vec<String> = (0..20_000)
            .map(|i| chunk(1, "stdout", format!("line {i:05}\n").as_bytes()))
            .collect();
        let f = log(&lines);
        let tail = stdout_tail(f.path(), 100).expect("tail");
        assert!(tail.starts_with("[earlier output omitted]\n"), "{tail}");
        assert!(tail.ends_with("line 19999\n"), "{tail}");
        assert_eq!(tail.len(), "[earlier output omitted]\n".len() + 100);
    }

    #[test]
    fn stdout_tail_marks_attempts_of_a_retried_stage() {
        let f = log(&[
            chunk(1, "stdout", b"try one"),
            chunk(2, "stdout", b"try two\n"),
        ]);
        assert_eq!(
            stdout_tail(f.path(), 1024).expect("tail"),
            "[attempt 1]\ntry one\n[attempt 2]\ntry two\n"
        );
    }

    #[test]
    fn stdout_tail_never_starts_inside_a_character() {
        let f = log(&[chunk(1, "stdout", "ééé".as_bytes())]);
        assert_eq!(
            stdout_tail(f.path(), 3).expect("tail"),
            "[earlier output omitted]\né"
        );
    }
}
