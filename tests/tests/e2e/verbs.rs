//! `exec`, `flow` and `status --watch`.

use std::time::{Duration, Instant};

use crate::harness::{assert_valid_manifest, TestEnv};

#[test]
fn exec_records_a_one_stage_run_and_passes_the_exit_code_through() {
    let env = TestEnv::new();
    let out = env.cli([
        "exec",
        "--",
        "sh",
        "-c",
        "echo 'out ${X}'; echo err >&2; exit 7",
    ]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert_eq!(
        out.stdout, "out ${X}\n",
        "the command's output is replayed, `$` taken literally"
    );
    assert!(out.stderr.contains("err\n"));
    let ok = env.cli(["exec", "--json", "--", "true"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let j = ok.json();
    assert_eq!(j["exit_code"], 0);
    let m = env.manifest(j["run_id"].as_str().expect("id"));
    assert_valid_manifest(&m);
    assert_eq!(m["pipeline_id"], "exec");
    assert_eq!(m["commands"][0]["command"], "true");
    let lines = env.cli(["exec", "--jsonl", "--", "printf", "a b"]);
    assert_eq!(lines.code, 0);
    let all: Vec<serde_json::Value> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(all.first().expect("first")["type"], "command:start");
    assert!(all
        .iter()
        .any(|l| l["type"] == "exec:chunk" && l["data"] == "a b"));
    assert_eq!(all.last().expect("last")["status"], "succeeded");
}

const FLOW: &str = r#"{"pipelines":[
  {"id":"docs-review","stages":[{"kind":"command","id":"review","command":"test -f docs-ok"}]},
  {"id":"implementation-gate","stages":[{"kind":"command","id":"gate","command":"touch gate-ran"}]}]}"#;

#[test]
fn flow_stops_after_a_failed_docs_review() {
    let env = TestEnv::new().config(FLOW);
    let out = env.cli(["flow", "--format", "json"]);
    assert_eq!(out.code, 1);
    let j = out.json();
    assert_eq!(j["status"], "failed");
    assert_eq!(j["docs_review"]["status"], "failed");
    assert_eq!(j["implementation_gate"], serde_json::Value::Null);
    assert!(!env.path().join("gate-ran").exists());
    std::fs::write(env.path().join("docs-ok"), "").expect("w");
    let out = env.cli(["flow", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["implementation_gate"]["status"], "succeeded");
    assert!(env.path().join("gate-ran").exists());
}

#[test]
fn status_watch_follows_a_run_in_another_process() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"one","command":"sleep 0.6"},
      {"kind":"command","id":"two","command":"sleep 0.6"}]}]}"#,
    );
    let runner = env
        .command(["start", "p"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let id = loop {
        let found = std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok);
        if let Some(e) = found {
            if e.path().join("manifest.json").is_file() {
                break e.file_name().to_string_lossy().into_owned();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    };
    let watch = env.cli([
        "status",
        "--run",
        &id,
        "--watch",
        "--interval",
        "0.05",
        "--format",
        "json",
    ]);
    let _ = runner.wait_with_output();
    assert_eq!(watch.code, 0, "{}", watch.stderr);
    let states: Vec<String> = watch
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("ndjson");
            let cmds: Vec<&str> = v["commands"]
                .as_array()
                .expect("c")
                .iter()
                .map(|c| c["status"].as_str().expect("s"))
                .collect();
            format!(
                "{} {}",
                v["status"].as_str().expect("status"),
                cmds.join(",")
            )
        })
        .collect();
    assert!(
        states.contains(&"in_progress running,pending".to_owned()),
        "{states:#?}"
    );
    assert!(
        states.contains(&"in_progress succeeded,running".to_owned()),
        "{states:#?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded succeeded,succeeded"),
        "{states:#?}"
    );
    let mut dedup = states.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), states.len(), "one line per change");
}

/// Removes ANSI escape sequences and carriage-return redraws, keeping printed lines.
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[test]
fn live_progress_on_a_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"a","command":"sleep 0.2"},
      {"kind":"command","id":"b","command":"sleep 0.8; exit 2","dependsOn":[]},
      {"kind":"command","id":"c","command":"true","dependsOn":["a"]}]}]}"#,
    );
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} start p", crate::harness::BIN),
            "/dev/null",
        ])
        .current_dir(env.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .output()
        .expect("script");
    assert_eq!(out.status.code(), Some(1));
    let raw = String::from_utf8_lossy(&out.stdout);
    // b fails (abort): c never starts, so two of three stages end.
    assert!(
        raw.contains("1/3 stages done") && raw.contains("2/3 stages done"),
        "the done/total line counts: {raw}"
    );
    assert!(
        raw.contains("\u{1b}["),
        "a live display redraws with escape sequences"
    );
    // The permanent lines (the frames are drawn with cursor moves, not newlines): every
    // `[NN/03] id: status in Nms — summary`, without durations.
    let text = strip_ansi(&raw);
    let mut finished: Vec<String> = Vec::new();
    for status in [": succeeded in ", ": failed in "] {
        for (at, _) in text.match_indices(status) {
            let start = text[..at].rfind('[').expect("stage prefix");
            let rest = &text[at + status.len()..];
            let summary = rest.split_once(" — ").map_or("", |t| t.1);
            let summary = summary.split("  ").next().unwrap_or_default().trim_end();
            finished.push(format!(
                "{}{} — {summary}",
                &text[start..at],
                status.trim_end().trim_end_matches(" in")
            ));
        }
    }
    finished.sort();
    finished.dedup();
    insta::assert_snapshot!(finished.join("\n"), @r"
    [01/03] a: succeeded — Command completed with code 0
    [02/03] b: failed — Exited with code 2
    [03/03] c: succeeded — Command completed with code 0
    ");
}
