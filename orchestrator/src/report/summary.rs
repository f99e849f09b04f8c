//! What a person reads when a stage fails and when the run ends: the failed stage's last output
//! lines (nextest's failure output), and the end summary (counts, total time, each failure
//! with its log and output, the exact command that resumes the run). Pure: text in, lines out.

use std::time::Duration;

use shared_manifest::schema::Manifest;
use shared_manifest::{CommandStatus, RunStatus};

use super::style::{self, Tone};

/// The end of a failed stage's output, as text (escape codes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// `stderr`, or `stdout` when stderr had no text.
    pub stream: &'static str,
    /// The lines shown.
    pub lines: Vec<String>,
    /// More output came before them (in the log).
    pub cut: bool,
}

impl Output {
    /// The last `n` lines (all with `None`) of `text`, which is the end of the stream when
    /// `partial` (the in-memory tail of a longer stream).
    pub fn of(stream: &'static str, text: &str, n: Option<usize>, partial: bool) -> Option<Output> {
        if text.trim().is_empty() {
            return None;
        }
        let (mut lines, before) = exec::text::last_lines(text, n.unwrap_or(usize::MAX));
        // A partial tail starts inside a line: never show that fragment as if it were whole.
        let fragment = partial && before == 0 && lines.len() > 1;
        if fragment {
            lines.remove(0);
        }
        Some(Output {
            stream,
            lines: lines.into_iter().map(str::to_owned).collect(),
            cut: before > 0 || partial,
        })
    }

    /// The block printed under a stage's line: a heading, then the lines, indented.
    pub fn render(&self, colour: bool) -> Vec<String> {
        let heading = if self.cut {
            format!("{}, last {} lines:", self.stream, self.lines.len())
        } else {
            format!("{}:", self.stream)
        };
        let mut out = vec![format!("    {}", style::paint(&heading, Tone::Dim, colour))];
        out.extend(self.lines.iter().map(|l| format!("    │ {l}")));
        out
    }
}

/// A failed stage, remembered for the end summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `""` for the top-level run, else the sub-pipeline's label.
    pub label: String,
    /// 1-based stage index.
    pub index: usize,
    /// Stage id.
    pub id: String,
    /// Its summary.
    pub summary: String,
    /// Its log, repo-relative.
    pub log: String,
    /// Its output's end, unless `--failure-output never`.
    pub output: Option<Output>,
}

/// The end summary of run `m`, which took `took`; `resume` is the command that resumes it.
pub fn end_summary(
    m: &Manifest,
    took: Duration,
    failures: &[Failure],
    resume: Option<&str>,
    colour: bool,
) -> Vec<String> {
    let count = |s: CommandStatus| m.commands.iter().filter(|c| c.status == s).count();
    let (ok, failed, skipped) = (
        count(CommandStatus::Succeeded),
        count(CommandStatus::Failed),
        count(CommandStatus::Skipped),
    );
    let not_run = m.commands.len() - ok - failed - skipped;
    let status = m.status.as_str();
    let mut out = vec![
        String::new(),
        format!(
            "{} run {} {} after {}",
            style::paint("Summary:", Tone::Bold, colour),
            m.run_id,
            style::paint(status, style::tone_of(status), colour),
            style::duration(took)
        ),
        format!(
            "  {} stages: {} succeeded, {} failed, {} skipped, {} not run",
            m.commands.len(),
            style::paint(&ok.to_string(), Tone::Good, colour && ok > 0),
            style::paint(&failed.to_string(), Tone::Bad, colour && failed > 0),
            style::paint(&skipped.to_string(), Tone::Warn, colour && skipped > 0),
            style::paint(&not_run.to_string(), Tone::Warn, colour && not_run > 0),
        ),
    ];
    for f in failures {
        out.push(format!(
            "  {} {}[{:02}] {} — {}",
            style::paint("FAILED", Tone::Bad, colour),
            f.label,
            f.index,
            f.id,
            f.summary
        ));
        out.push(format!(
            "    log: {}",
            style::paint(&f.log, Tone::Dim, colour)
        ));
        if let Some(o) = &f.output {
            out.extend(o.render(colour));
        }
    }
    if let Some(cmd) = resume.filter(|_| m.status != RunStatus::Succeeded) {
        out.push(format!("  resume: {cmd}"));
    }
    out
}

/// `program resume --run <id>`, with `-f <config>` when the run was started with one; words
/// quoted for a POSIX shell where needed.
pub fn resume_command(program: &str, run_id: &str, config: Option<&str>) -> String {
    let mut words = vec![quote(program), "resume".to_owned()];
    if let Some(c) = config {
        words.push("-f".to_owned());
        words.push(quote(c));
    }
    words.push("--run".to_owned());
    words.push(quote(run_id));
    words.join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_tails_drop_a_cut_first_line() {
        let o =
            Output::of("stderr", "tail of a line\nwhole 1\nwhole 2\n", None, true).expect("text");
        assert_eq!(o.lines, ["whole 1", "whole 2"]);
        assert!(o.cut);
        let o = Output::of("stdout", "a\nb\nc\n", Some(2), false).expect("text");
        assert_eq!(
            (o.lines.clone(), o.cut),
            (vec!["b".into(), "c".into()], true)
        );
        assert_eq!(
            o.render(false),
            ["    stdout, last 2 lines:", "    │ b", "    │ c"]
        );
        let all = Output::of("stderr", "only\n", Some(20), false).expect("text");
        assert_eq!(all.render(false), ["    stderr:", "    │ only"]);
        assert_eq!(Output::of("stderr", " \n", Some(20), false), None);
    }

    #[test]
    fn resume_commands_are_quoted_for_the_shell() {
        assert_eq!(
            resume_command("codex-orchestrator", "2026-x", None),
            "codex-orchestrator resume --run 2026-x"
        );
        assert_eq!(
            resume_command("./bin/co", "r", Some("my dir/it's.json")),
            r"./bin/co resume -f 'my dir/it'\''s.json' --run r"
        );
    }
}
