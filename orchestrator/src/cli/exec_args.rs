//! `exec`'s command line, parsed as the peer parses it (clap cannot express these rules):
//! every token before `--` that starts with `--` is an option (also after the command), every
//! other token is part of the command, so `exec echo hi` needs no `--`. `--json` takes an
//! optional `compact` or `pretty` as the next token; the other options take a value as the next
//! token (unless it starts with `--`) or after `=`. A single command token with whitespace that
//! is not an existing path is split like a shell line (`exec 'echo one two'`).
//!
//! Unlike the peer (exit 1, no hint), an unknown option is a usage error (exit 2) with a "did
//! you mean" hint.

use std::path::Path;

use crate::errors::AppError;

/// `--json` or `--jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Only the `run:summary` event, pretty unless `compact`.
    Json,
    /// Every exec event, one per line, then `run:summary`.
    Jsonl,
}

/// The parsed options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `--json` / `--jsonl`; `None` decides by the terminal.
    pub mode: Option<OutputMode>,
    /// `--json` pretty (the default) or `compact`.
    pub pretty: bool,
    /// `--notify` targets (comma lists split).
    pub notify: Vec<String>,
    /// `--otel-endpoint`.
    pub otel_endpoint: Option<String>,
    /// `--cwd`.
    pub cwd: Option<String>,
    /// `--task`.
    pub task: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `--help`.
    Help,
    /// Run a command.
    Run(ExecOptions),
}

const OPTIONS: &[&str] = &[
    "json",
    "jsonl",
    "notify",
    "otel-endpoint",
    "cwd",
    "task",
    "help",
];

/// Parses `exec`'s arguments; `cwd` is where a single command token is looked up as a path.
pub fn parse(raw: &[String], cwd: &Path) -> Result<Parsed, AppError> {
    let mut o = ExecOptions {
        pretty: true,
        ..ExecOptions::default()
    };
    let mut i = 0;
    while i < raw.len() {
        let token = &raw[i];
        if token == "--" {
            o.command.extend(raw[i + 1..].iter().cloned());
            break;
        }
        let Some(option) = token.strip_prefix("--") else {
            o.command.push(token.clone());
            i += 1;
            continue;
        };
        let (key, inline) = match option.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (option, None),
        };
        if key == "json" {
            set_mode(&mut o, OutputMode::Json)?;
            let choice = match inline.as_deref() {
                Some(v) => Some(v.to_owned()),
                None => {
                    let next = raw.get(i + 1).filter(|n| *n == "compact" || *n == "pretty");
                    if next.is_some() {
                        i += 1;
                    }
                    next.cloned()
                }
            };
            o.pretty = choice.as_deref() != Some("compact");
            i += 1;
            continue;
        }
        let mut value = |what: &str| take_value(raw, &mut i, inline.as_deref(), key, what);
        match key {
            "help" => return Ok(Parsed::Help),
            "jsonl" => set_mode(&mut o, OutputMode::Jsonl)?,
            "notify" => {
                let v = value("a target URI")?;
                o.notify.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            "otel-endpoint" => o.otel_endpoint = Some(value("a URL")?),
            "cwd" => o.cwd = Some(value("a path")?),
            "task" => o.task = Some(value("an identifier")?),
            other => {
                let hint = crate::config::suggest::did_you_mean(other, OPTIONS)
                    .map(|s| format!(" (did you mean `--{s}`?)"))
                    .unwrap_or_default();
                return Err(AppError::Usage(format!(
                    "unknown exec option `--{other}`{hint}; a command argument that starts with `--` goes after `--`: `exec [OPTIONS] -- CMD ARGS...`"
                )));
            }
        }
        i += 1;
    }
    if o.command.is_empty() {
        return Err(AppError::Usage(
            "exec needs a command: `exec [OPTIONS] CMD ARGS...`".into(),
        ));
    }
    o.command = normalize(std::mem::take(&mut o.command), cwd, o.cwd.as_deref());
    Ok(Parsed::Run(o))
}

/// The value of option `key`: after `=`, else the next token unless it is an option.
fn take_value(
    raw: &[String],
    i: &mut usize,
    inline: Option<&str>,
    key: &str,
    what: &str,
) -> Result<String, AppError> {
    if let Some(v) = inline.filter(|v| !v.is_empty()) {
        return Ok(v.to_owned());
    }
    match raw.get(*i + 1) {
        Some(next) if !next.starts_with("--") => {
            *i += 1;
            Ok(next.clone())
        }
        _ => Err(AppError::Usage(format!("exec --{key} requires {what}"))),
    }
}

fn set_mode(o: &mut ExecOptions, mode: OutputMode) -> Result<(), AppError> {
    match o.mode {
        Some(m) if m != mode => Err(AppError::Usage(
            "exec: cannot combine --json and --jsonl".into(),
        )),
        _ => {
            o.mode = Some(mode);
            Ok(())
        }
    }
}

/// A single token with whitespace that is not a path is a whole command line: split it.
fn normalize(tokens: Vec<String>, cwd: &Path, exec_cwd: Option<&str>) -> Vec<String> {
    let [token] = tokens.as_slice() else {
        return tokens;
    };
    let t = token.trim();
    let exists = Path::new(t).exists()
        || cwd.join(t).exists()
        || exec_cwd.is_some_and(|d| Path::new(d).join(t).exists());
    if t.is_empty() || !t.contains(char::is_whitespace) || exists {
        return tokens;
    }
    let split = split_shell_like(t);
    if split.is_empty() {
        tokens
    } else {
        split
    }
}

/// Words of a command line: whitespace separates, single and double quotes group (a
/// backslash escapes the quote or a backslash inside quotes), as the peer splits it.
pub fn split_shell_like(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && quote.is_some() {
            if let Some(&next) = chars.peek() {
                if Some(next) == quote || next == '\\' {
                    current.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        if c == '"' || c == '\'' {
            match quote {
                Some(q) if q == c => quote = None,
                None => quote = Some(c),
                Some(_) => current.push(c),
            }
            continue;
        }
        if quote.is_none() && c.is_whitespace() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Quotes arguments for `sh -c` as the peer does: bare when made of `[A-Za-z0-9_/.:=-]`, `''`
/// when empty, else single-quoted.
pub fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_/.:=-".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> ExecOptions {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&raw, Path::new("/nonexistent-dir")) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        let raw: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&raw, Path::new("/nonexistent-dir")) {
            Err(e) => e.to_string(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn commands_without_double_dash_and_options_anywhere() {
        assert_eq!(run(&["echo", "hi"]).command, ["echo", "hi"]);
        let o = run(&["--json", "compact", "echo", "hi", "--task", "t"]);
        assert_eq!((o.mode, o.pretty), (Some(OutputMode::Json), false));
        assert_eq!(
            (o.command, o.task.as_deref()),
            (vec!["echo".to_owned(), "hi".to_owned()], Some("t"))
        );
        let o = run(&["--json=compact", "--cwd=/tmp", "pwd"]);
        assert_eq!((o.pretty, o.cwd.as_deref()), (false, Some("/tmp")));
        let o = run(&["--json", "echo", "--", "--color"]);
        assert!(o.pretty);
        assert_eq!(o.command, ["echo", "--color"]);
        assert_eq!(run(&["--", "--json"]).command, ["--json"]);
        assert_eq!(
            run(&["--notify", "a, b", "--notify=c", "x"]).notify,
            ["a", "b", "c"]
        );
    }

    #[test]
    fn a_single_command_line_is_split() {
        assert_eq!(
            run(&["echo 'one two' three"]).command,
            ["echo", "one two", "three"]
        );
        assert_eq!(run(&[r#"printf "a \" b""#]).command, ["printf", "a \" b"]);
    }

    #[test]
    fn errors() {
        assert!(err(&["--jsn", "x"]).contains("did you mean `--json`"));
        assert!(err(&["--json", "--jsonl", "x"]).contains("cannot combine"));
        assert!(err(&["--cwd"]).contains("--cwd requires a path"));
        assert!(err(&["--json"]).contains("needs a command"));
        let raw = vec!["--help".to_owned()];
        assert_eq!(parse(&raw, Path::new("/")).ok(), Some(Parsed::Help));
    }

    #[test]
    fn quoting_keeps_every_argument_whole() {
        let args: Vec<String> = ["echo", "a b", "it's", "$HOME", "", "x@y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_join(&args), r"echo 'a b' 'it'\''s' '$HOME' '' 'x@y'");
    }
}
