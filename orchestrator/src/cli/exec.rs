//! `exec [--json|--jsonl] [--task ID] [--cwd P] -- cmd args...`: one command recorded as a
//! one-stage run with the same manifest and logs as `start`. The command's output is replayed
//! from its log (text mode), streamed line by line so memory stays bounded, and its exit code
//! passes through.

use std::io::BufRead;

use base64::Engine;
use serde_json::Value;

use super::start::{launch, StartArgs};
use crate::cli::{ExecArgs, Format};
use crate::config::{
    CommandStage, Config, ConfigSource, OnFailure, Pipeline, RetryPolicy, Stage, StageKind,
};
use crate::errors::AppError;
use crate::exit;

/// Runs `exec`; returns the command's exit code (or 128+n when the runner was interrupted).
pub async fn exec(args: ExecArgs) -> Result<i32, AppError> {
    if args.command.is_empty() {
        return Err(AppError::Usage("exec needs a command after `--`".into()));
    }
    let command = shell_join(&args.command);
    let stage = Stage {
        id: crate::record::layout::slug(&args.command[0]),
        title: args.command.join(" "),
        kind: StageKind::Command(CommandStage {
            command,
            cwd: args.cwd.clone(),
            env: Vec::new(),
            timeout: None,
            allow_failure: false,
            summary_hint: None,
        }),
        depends_on: None,
        on_failure: OnFailure::Abort,
        retries: RetryPolicy::default(),
        plan: None,
    };
    let config = Config {
        path: "<exec>".into(),
        source: ConfigSource::Inline,
        default_pipeline: Some("exec".into()),
        runtime_mode: None,
        pipelines: vec![Pipeline {
            id: "exec".into(),
            title: format!("exec: {}", args.command.join(" ")),
            description: None,
            stages: vec![stage],
            concurrency: None,
            vars: Vec::new(),
        }],
        record: Default::default(),
    };
    let mut start = StartArgs::for_pipeline("exec", args.task.clone(), Format::Json);
    start.progress = args.progress;
    let launched = launch(&start, Some(config)).await?;
    let m = &launched.report.manifest;
    let stage = &m.commands[0];
    let code = match launched.code {
        exit::OK | exit::RUN_FAILED => stage.exit_code.unwrap_or(exit::RUN_FAILED),
        interrupted => interrupted,
    };
    let log = stage
        .log_path
        .as_ref()
        .map(|p| launched.report.dir.roots().repo.join(p));
    let mut json = launched.json;
    json["exit_code"] = Value::from(code);
    if args.jsonl {
        if let Some(log) = &log {
            for line in log_lines(log) {
                crate::report::output::line(&line);
            }
        }
        crate::report::output::line(&json.to_string());
    } else if args.json {
        crate::report::output::json(&json);
    } else if let Some(log) = &log {
        replay(log);
    }
    Ok(code)
}

/// The lines of a stage log, read one at a time: the log holds the command's whole output,
/// which must never be in memory at once (a line is one chunk of at most 64 KiB).
fn log_lines(log: &std::path::Path) -> impl Iterator<Item = String> {
    std::fs::File::open(log)
        .ok()
        .map(|f| std::io::BufReader::new(f).lines().map_while(Result::ok))
        .into_iter()
        .flatten()
}

/// Writes the logged stdout and stderr chunks back to our stdout and stderr, in order.
fn replay(log: &std::path::Path) {
    for line in log_lines(log) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["type"] != "exec:chunk" {
            continue;
        }
        let data = v["data"].as_str().unwrap_or_default();
        let bytes = if v["encoding"] == "base64" {
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default()
        } else {
            data.as_bytes().to_vec()
        };
        if v["stream"] == "stderr" {
            crate::console::err_bytes(&bytes);
        } else {
            crate::console::out_bytes(&bytes);
        }
    }
}

/// Quotes arguments for `sh -c` so each reaches the command unchanged.
fn shell_join(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./=:@%+-,".contains(c));
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
    use super::shell_join;

    #[test]
    fn quoting_keeps_every_argument_whole() {
        let args: Vec<String> = ["echo", "a b", "it's", "$HOME", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_join(&args), r"echo 'a b' 'it'\''s' '$HOME' ''");
    }
}
