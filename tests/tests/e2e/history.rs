//! Run history (`runs` queries over `.runs/index.sqlite`) and JUnit reports (`--junit`,
//! `report junit`), on histories made of real runs.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::harness::{redact_manifest, TestEnv};

/// `ok` always passes, `flaky`'s second stage passes on its second attempt, `toggle` fails
/// while a file `fail` exists, `parent` runs `ok` as a sub-pipeline (a child run).
const HISTORY: &str = r#"{"pipelines":[
  {"id":"ok","stages":[
    {"kind":"command","id":"build","command":"echo built"},
    {"kind":"command","id":"test","command":"echo tested"}]},
  {"id":"flaky","stages":[
    {"kind":"command","id":"setup","command":"true"},
    {"kind":"command","id":"wobbly","retries":{"count":2,"delayMs":10},
     "command":"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 2 ]"}]},
  {"id":"toggle","stages":[
    {"kind":"command","id":"check","command":"echo checking; if [ -f fail ]; then echo broken >&2; exit 3; fi"},
    {"kind":"command","id":"after","command":"true"}]},
  {"id":"parent","stages":[{"kind":"subpipeline","id":"child","pipeline":"ok"}]}
]}"#;

struct History {
    env: TestEnv,
    toggle_pass: String,
    toggle_fail: String,
    flaky: String,
}

fn start_ok(env: &TestEnv, pipeline: &str, code: i32) -> String {
    let out = env.start(pipeline, &[]);
    assert_eq!(out.code, code, "{pipeline}: {}", out.stderr);
    assert!(
        !out.stderr.contains("warning:"),
        "indexing must be silent: {}",
        out.stderr
    );
    out.run_id()
}

/// Seven runs: ok, ok, flaky, toggle (passes), toggle (fails), parent and its child.
fn history() -> History {
    let env = TestEnv::new().config(HISTORY);
    start_ok(&env, "ok", 0);
    start_ok(&env, "ok", 0);
    let flaky = start_ok(&env, "flaky", 0);
    let toggle_pass = start_ok(&env, "toggle", 0);
    std::fs::write(env.path().join("fail"), "").expect("write");
    let toggle_fail = start_ok(&env, "toggle", 1);
    start_ok(&env, "parent", 0);
    History {
        env,
        toggle_pass,
        toggle_fail,
        flaky,
    }
}

fn query(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.cli(args);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    out.json()
}

fn run_ids(v: &Value) -> Vec<String> {
    v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["run_id"].as_str().expect("run_id").to_owned())
        .collect()
}

fn pipeline<'a>(stats: &'a Value, id: &str) -> &'a Value {
    stats["pipelines"]
        .as_array()
        .expect("pipelines")
        .iter()
        .find(|p| p["pipeline_id"] == id)
        .unwrap_or_else(|| panic!("no pipeline {id} in {stats}"))
}

fn stage<'a>(p: &'a Value, id: &str) -> &'a Value {
    p["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["stage_id"] == id)
        .unwrap_or_else(|| panic!("no stage {id} in {p}"))
}

/// Durations vary from run to run: replace them, and squeeze the padding they change.
fn stable_text(env: &TestEnv, text: &str) -> String {
    let is_duration = |t: &str| {
        let digits = t.trim_end_matches(['m', 's', 'h']);
        !digits.is_empty()
            && digits != t
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == 'm' || c == 'h')
            && digits.starts_with(|c: char| c.is_ascii_digit())
    };
    env.redact(text)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| if is_duration(t) { "[DUR]" } else { t })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every line's cell for `column` starts where the header's does.
fn assert_aligned(text: &str, column: &str) {
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let at = header.find(column).expect("column in header");
    for line in lines.filter(|l| !l.is_empty()) {
        let (before, cell) = line.split_at(at);
        assert!(
            before.ends_with(' ') && !cell.starts_with(' '),
            "column {column} misaligned:\n{text}"
        );
    }
}

#[test]
fn runs_answer_queries_over_a_generated_history() {
    let h = history();
    let env = &h.env;

    let all = query(env, &["runs", "list", "--format", "json"]);
    let ids = run_ids(&all);
    assert_eq!(ids.len(), 7, "{all}");
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(ids, sorted, "newest first");

    let failed = query(
        env,
        &["runs", "list", "--status", "failed", "--format", "json"],
    );
    assert_eq!(run_ids(&failed), std::slice::from_ref(&h.toggle_fail));
    assert_eq!(failed["runs"][0]["status_detail"], "stage:check:failed");
    assert_eq!(failed["runs"][0]["stages_passed"], 0);
    assert_eq!(failed["runs"][0]["stages_skipped"], 1);
    let ok = query(
        env,
        &["runs", "list", "--pipeline", "ok", "--format", "json"],
    );
    assert_eq!(run_ids(&ok).len(), 3, "two runs and parent's child run");
    let two = query(env, &["runs", "list", "--limit", "2", "--format", "json"]);
    assert_eq!(run_ids(&two), ids[..2]);
    let recent = query(env, &["runs", "list", "--since", "1h", "--format", "json"]);
    assert_eq!(run_ids(&recent).len(), 7);
    let future = query(
        env,
        &["runs", "list", "--since", "2999-01-01", "--format", "json"],
    );
    assert_eq!(run_ids(&future).len(), 0);
    let task = query(
        env,
        &["runs", "list", "--task", "other", "--format", "json"],
    );
    assert_eq!(run_ids(&task).len(), 0);

    let text = env.cli(["runs", "list", "--pipeline", "toggle"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    for column in [
        "TASK", "PIPELINE", "STATUS", "STARTED", "DURATION", "PASSED",
    ] {
        assert_aligned(&text.stdout, column);
    }
    insta::assert_snapshot!(stable_text(env, &text.stdout), @r"
    RUN ID TASK PIPELINE STATUS STARTED DURATION PASSED DETAIL
    [RUN_ID] 0101 toggle failed [TS] [DUR] 0/2 stage:check:failed
    [RUN_ID] 0101 toggle succeeded [TS] [DUR] 2/2
    ");

    let show = query(env, &["runs", "show", &h.toggle_fail, "--format", "json"]);
    insta::assert_json_snapshot!("show_failed_run", redact_manifest(env, &show));
    let shown = env.cli(["runs", "show", &h.flaky]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    insta::assert_snapshot!("show_flaky_text", stable_text(env, &shown.stdout));

    let stats = query(env, &["runs", "stats", "--format", "json"]);
    let flaky = pipeline(&stats, "flaky");
    assert_eq!(stage(flaky, "wobbly")["passed_after_retry"], 1);
    assert_eq!(stage(flaky, "setup")["passed_after_retry"], 0);
    let toggle = pipeline(&stats, "toggle");
    assert_eq!(
        (toggle["runs"].clone(), toggle["pass_rate"].clone()),
        (2.into(), 0.5.into())
    );
    assert_eq!(stage(toggle, "check")["failed"], 1);
    assert_eq!(stage(toggle, "after")["skipped"], 1);
    assert_eq!(pipeline(&stats, "ok")["runs"], 3);
    insta::assert_json_snapshot!("stats", stats, {
        ".**.p50_ms" => "[DUR]", ".**.p95_ms" => "[DUR]",
    });
    let only = query(
        env,
        &["runs", "stats", "--pipeline", "toggle", "--format", "json"],
    );
    assert_eq!(only["pipelines"].as_array().map(Vec::len), Some(1));
    let text = env.cli(["runs", "stats"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!("stats_text", stable_text(env, &text.stdout));

    let diff = query(
        env,
        &[
            "runs",
            "diff",
            &h.toggle_pass,
            &h.toggle_fail,
            "--format",
            "json",
        ],
    );
    assert_eq!(diff["differences"], 2);
    assert_eq!(
        diff["stages"][0]["changed"],
        serde_json::json!(["status", "exit_code"])
    );
    assert_eq!(diff["stages"][0]["b"]["exit_code"], 3);
    assert_eq!(
        diff["stages"][1]["changed"],
        serde_json::json!(["status", "exit_code"])
    );
    let text = env.cli(["runs", "diff", &h.toggle_pass, &h.toggle_fail]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!(stable_text(env, &text.stdout), @r"
    a: [RUN_ID] toggle succeeded [DUR]
    b: [RUN_ID] toggle failed [DUR]

    STAGE STATUS A STATUS B EXIT A EXIT B DURATION A DURATION B COMMAND
    * check succeeded failed 0 3 [DUR] [DUR]
    * after succeeded pending 0 - [DUR] -

    2 of 2 stages differ
    ");
}

#[test]
fn bad_queries_exit_with_usage_or_not_found() {
    let env = TestEnv::new().config(HISTORY);
    // No `.runs` yet: an empty history, and nothing is written.
    let empty = query(&env, &["runs", "list", "--format", "json"]);
    assert_eq!(run_ids(&empty).len(), 0);
    assert!(!env.runs_exists());
    let id = start_ok(&env, "ok", 0);
    let missing = "2026-01-01T00-00-00-000Z-00000000";
    for args in [
        vec!["runs", "show", missing],
        vec!["runs", "diff", &id, missing],
        vec!["report", "junit", "--run", missing],
    ] {
        let out = env.cli(&args);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: run `"), "{}", out.stderr);
    }
    for args in [
        vec!["runs", "list", "--since", "whenever"],
        vec!["runs", "list", "--status", "great"],
        vec!["runs", "list", "--limit", "-1"],
        vec!["runs", "show", "../etc"],
        vec!["runs"],
    ] {
        let out = env.cli(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
}

/// The same questions, asked of the index built run by run and of one rebuilt.
fn answers(h: &History) -> Vec<Value> {
    let env = &h.env;
    vec![
        query(env, &["runs", "list", "--limit", "0", "--format", "json"]),
        query(env, &["runs", "stats", "--format", "json"]),
        query(env, &["runs", "show", &h.flaky, "--format", "json"]),
        query(
            env,
            &[
                "runs",
                "diff",
                &h.toggle_pass,
                &h.toggle_fail,
                "--format",
                "json",
            ],
        ),
    ]
}

fn remove_index(env: &TestEnv) {
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(env.path().join(".runs").join(name));
    }
}

#[test]
fn reindex_and_a_missing_index_give_the_same_answers() {
    let h = history();
    let before = answers(&h);
    let out = query(&h.env, &["runs", "reindex", "--format", "json"]);
    assert_eq!(out["runs"], 7);
    assert_eq!(out["skipped"], 0);
    assert_eq!(out["index"], ".runs/index.sqlite");
    assert_eq!(answers(&h), before, "reindex from manifests");
    remove_index(&h.env);
    assert_eq!(answers(&h), before, "missing index rebuilt");
    let text = h.env.cli(["runs", "reindex"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert_eq!(
        text.stdout,
        "indexed 7 runs (0 skipped) into .runs/index.sqlite\n"
    );
}

#[test]
fn a_corrupt_index_is_rebuilt() {
    let h = history();
    let before = answers(&h);
    let index = h.env.path().join(".runs/index.sqlite");
    remove_index(&h.env);
    std::fs::write(&index, "garbage, not a database: ".repeat(200)).expect("write");
    let out = h
        .env
        .cli(["runs", "list", "--limit", "0", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("warning: `.runs/index.sqlite` is not a usable run index"),
        "{}",
        out.stderr
    );
    assert_eq!(out.json(), before[0]);
    assert_eq!(answers(&h), before);

    // Corrupt again, then a run: it still succeeds, and the index is whole again.
    remove_index(&h.env);
    std::fs::write(&index, [0xffu8; 4096]).expect("write");
    let run = h.env.start("ok", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all = query(
        &h.env,
        &["runs", "list", "--limit", "0", "--format", "json"],
    );
    assert_eq!(run_ids(&all).len(), 8);
    assert_eq!(run_ids(&all)[0], run.run_id());

    // Another schema version (a future or past binary's file) is rebuilt too.
    if python3_ok() {
        let status = Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE schema_version SET version = 99'); c.execute('DELETE FROM runs'); c.commit()"])
            .arg(&index)
            .status()
            .expect("python3");
        assert!(status.success());
        let out = h
            .env
            .cli(["runs", "list", "--limit", "0", "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains("schema version 99"), "{}", out.stderr);
        assert_eq!(run_ids(&out.json()).len(), 8);
    } else {
        eprintln!("SKIPPED schema-version check: python3 with sqlite3 is not available");
    }
}

#[test]
fn a_run_never_opens_the_index_and_an_unusable_index_fails_only_queries() {
    let env = TestEnv::new().config(HISTORY);
    // A directory where the index file should be: it can be neither opened nor replaced.
    std::fs::create_dir_all(env.path().join(".runs/index.sqlite")).expect("mkdir");
    let out = env.start("ok", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The run only notes itself for the next reader of the index (off its exit path).
    assert!(!out.stderr.contains("warning:"), "{}", out.stderr);
    assert_eq!(env.manifest(&out.run_id())["status"], "succeeded");
    let pending = std::fs::read_to_string(env.path().join(".runs/index.pending")).expect("noted");
    assert_eq!(
        pending,
        format!(".runs/0101/cli/{}/manifest.json\n", out.run_id())
    );
    // A query only reads: it answers from the manifests, and says why.
    let list = env.cli(["runs", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stderr.contains("reading the manifests directly")
            && list.stdout.contains(&out.run_id()),
        "{}\n{}",
        list.stdout,
        list.stderr
    );
}

#[test]
fn noted_runs_are_recorded_by_the_next_query_then_forgotten() {
    let env = TestEnv::new().config(HISTORY);
    let a = env.start("ok", &[]).run_id();
    let b = env.start("ok", &[]).run_id();
    let pending = env.path().join(".runs/index.pending");
    assert_eq!(
        std::fs::read_to_string(&pending)
            .expect("noted")
            .lines()
            .count(),
        2
    );
    // A reader that died after taking the notes left them aside: they are recorded too.
    let taken = env.path().join(".runs/index.pending.taken");
    std::fs::rename(&pending, &taken).expect("take");
    let c = env.start("ok", &[]).run_id();
    let all = query(&env, &["runs", "list", "--format", "json"]);
    let mut ids = run_ids(&all);
    ids.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        !pending.exists() && !taken.exists(),
        "the notes are forgotten"
    );
    // Nothing left to record: the next query finds the same runs.
    assert_eq!(
        run_ids(&query(&env, &["runs", "list", "--format", "json"])).len(),
        3
    );
}

#[test]
fn runs_finishing_at_once_are_all_recorded() {
    let env = TestEnv::new().config(HISTORY);
    let children: Vec<_> = (0..4)
        .map(|_| {
            env.command(["start", "ok", "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("warning:"), "{stderr}");
    }
    let all = query(&env, &["runs", "list", "--format", "json"]);
    assert_eq!(run_ids(&all).len(), 4);
}

fn python3_ok() -> bool {
    Command::new("python3")
        .args(["-c", "import sqlite3"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the Python JUnit parser can be used.
#[derive(Debug, Clone)]
enum JunitParser {
    Ready,
    /// No python3 or no pip: the check is skipped, saying why.
    Unavailable(String),
    /// pip runs but could not install it: the test fails, saying why.
    InstallFailed(String),
}

/// `junitparser` from PyPI, installed once per test run when missing.
fn junitparser() -> JunitParser {
    static READY: OnceLock<JunitParser> = OnceLock::new();
    READY
        .get_or_init(|| {
            let has = || {
                Command::new("python3")
                    .args(["-c", "import junitparser"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            if has() {
                return JunitParser::Ready;
            }
            match Command::new("python3").args(["-m", "pip", "--version"]).output() {
                Err(e) => {
                    return JunitParser::Unavailable(format!(
                        "python3 cannot be run ({e}); install python3 with pip to have the report parsed by junitparser"
                    ))
                }
                Ok(o) if !o.status.success() => {
                    return JunitParser::Unavailable(format!(
                        "pip is not available (`python3 -m pip --version` failed: {}); install pip to have the report parsed by junitparser",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ))
                }
                Ok(_) => {}
            }
            let out = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(["--retries", "1", "--timeout", "20", "junitparser"])
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .output();
            match out {
                Ok(o) if o.status.success() && has() => JunitParser::Ready,
                Ok(o) => JunitParser::InstallFailed(format!(
                    "`python3 -m pip install junitparser` failed (exit {:?}): {}",
                    o.status.code(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => JunitParser::InstallFailed(format!("pip could not be started: {e}")),
            }
        })
        .clone()
}

/// Parses `file` with junitparser: one JSON object per suite (`JUNIT_PARSE`); `None` (after
/// saying why) when there is no pip to install it with.
fn parse_junit(file: &Path) -> Option<Value> {
    match junitparser() {
        JunitParser::Ready => {}
        JunitParser::Unavailable(reason) => {
            eprintln!("SKIPPED junitparser check: {reason}");
            return None;
        }
        JunitParser::InstallFailed(reason) => {
            panic!("pip is available but junitparser could not be installed: {reason}")
        }
    }
    let parsed = Command::new("python3")
        .args(["-c", JUNIT_PARSE])
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        parsed.status.success(),
        "junitparser rejected the report: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    Some(serde_json::from_slice(&parsed.stdout).expect("json"))
}

const JUNIT_PARSE: &str = r#"
import json, sys
from junitparser import JUnitXml
out = []
for suite in JUnitXml.fromfile(sys.argv[1]):
    cases = [{"classname": c.classname, "name": c.name, "time": c.time,
              "results": [[type(r).__name__, r.message, r.text] for r in c.result],
              "system_out": c.system_out, "system_err": c.system_err} for c in suite]
    out.append({"name": suite.name, "tests": suite.tests, "failures": suite.failures,
                "errors": suite.errors, "skipped": suite.skipped, "cases": cases})
print(json.dumps(out))
"#;

/// `time="1.234"` -> `time="[DUR]"`.
fn redact_times(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(i) = rest.find(" time=\"") {
        let (head, tail) = rest.split_at(i + " time=\"".len());
        out.push_str(head);
        out.push_str("[DUR]");
        rest = &tail[tail.find('"').expect("closing quote")..];
    }
    out.push_str(rest);
    out
}

#[test]
fn junit_reports_are_read_by_a_real_consumer() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"ci","stages":[
      {"kind":"command","id":"noisy","command":"printf 'esc \\033[31mred\\033[0m <tag> & \"q\" done\\r\\n\\377\\376 bytes\\n'"},
      {"kind":"command","id":"flaky","retries":{"count":2,"delayMs":10},
       "command":"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo try $n; [ $n -ge 2 ]"},
      {"kind":"command","id":"soft","command":"echo tolerated >&2; exit 1","allowFailure":true},
      {"kind":"command","id":"bad","command":"echo partial; echo 'it broke <here> & \"there\"' >&2; exit 3"},
      {"kind":"command","id":"never","command":"true"}]}]}"#,
    );
    let out = env.start("ci", &["--junit", "reports/junit.xml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let file = env.path().join("reports/junit.xml");
    let xml = std::fs::read_to_string(&file).expect("--junit wrote the report");

    let run_id = out.run_id();
    let stdout = env.cli(["report", "junit", "--run", &run_id]);
    assert_eq!(stdout.code, 0, "{}", stdout.stderr);
    assert_eq!(
        stdout.stdout, xml,
        "stdout and --junit give the same report"
    );
    let again = env.cli(["report", "junit", "--run", &run_id, "--out", "again.xml"]);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("again.xml")).expect("--out"),
        xml
    );
    insta::assert_snapshot!("junit_xml", redact_times(&env.redact(&xml)));

    let Some(suites) = parse_junit(&file) else {
        return;
    };
    let suite = &suites[0];
    assert_eq!(suites.as_array().map(Vec::len), Some(1));
    assert_eq!(suite["name"], "ci");
    assert_eq!(
        (
            &suite["tests"],
            &suite["failures"],
            &suite["errors"],
            &suite["skipped"]
        ),
        (&5.into(), &1.into(), &0.into(), &2.into())
    );
    let case = |name: &str| -> Value {
        suite["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no case {name}"))
    };
    assert_eq!(case("noisy")["classname"], "ci");
    assert_eq!(
        case("noisy")["system_out"],
        "esc \u{FFFD}[31mred\u{FFFD}[0m <tag> & \"q\" done\r\n\u{FFFD}\u{FFFD} bytes\n"
    );
    assert_eq!(case("noisy")["results"], serde_json::json!([]));
    assert_eq!(
        case("flaky")["system_out"],
        "[attempt 1]\ntry 1\n[attempt 2]\ntry 2\n"
    );
    assert_eq!(
        case("bad")["results"],
        serde_json::json!([[
            "Failure",
            "Exited with code 3 — it broke <here> & \"there\"",
            "it broke <here> & \"there\""
        ]])
    );
    assert_eq!(case("bad")["system_out"], "partial\n");
    assert_eq!(
        case("bad")["system_err"],
        "it broke <here> & \"there\"\n",
        "stderr in <system-err> as well as in <failure>"
    );
    assert_eq!(
        case("noisy")["system_err"],
        Value::Null,
        "no stderr, no element"
    );
    assert_eq!(case("soft")["results"][0][0], "Skipped");
    assert_eq!(
        case("soft")["system_err"],
        "tolerated\n",
        "an allowFailure stage keeps its stderr"
    );
    assert_eq!(
        case("never")["results"],
        serde_json::json!([["Skipped", "not run", null]])
    );
}

#[test]
fn junit_of_a_run_in_progress_says_so() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"ci","stages":[
      {"kind":"command","id":"done","command":"echo finished"},
      {"kind":"command","id":"busy","command":"echo working; echo warming up >&2; touch busy.started; exec sleep 30"},
      {"kind":"command","id":"later","command":"true"}]}]}"#,
    );
    let runner = env
        .command(["start", "ci", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while !env.path().join("busy.started").exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let id = env.only_run_id();
    // The manifest is written by its own task: wait until it records `busy` running.
    while env.manifest(&id)["commands"][1]["status"] != "running" {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Output that trickles reaches the stage log within the coalescing window (50 ms).
    let log = env.run_dir(&id).join("commands/02-busy.ndjson");
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("warming up")) {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let report = env.cli(["report", "junit", "--run", &id, "--out", "partial.xml"]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(runner.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("stop the runner");
    let _ = runner.wait_with_output();
    assert_eq!(report.code, 0, "{}", report.stderr);
    assert!(
        report.stderr.starts_with(&format!(
            "note: run `{id}` is still in progress (status `in_progress`): the report is partial"
        )),
        "{}",
        report.stderr
    );
    let file = env.path().join("partial.xml");
    let xml = std::fs::read_to_string(&file).expect("report");
    let cases = &xml[xml.find("    <testcase").expect("cases")..];
    // `busy`'s output so far is there: it reached its log while the stage runs.
    insta::assert_snapshot!(redact_times(cases), @r#"
        <testcase classname="ci" name="done" time="[DUR]">
          <system-out>finished
    </system-out>
        </testcase>
        <testcase classname="ci" name="busy" time="[DUR]">
          <error message="still running" type="running">the run was still in progress when the report was written</error>
          <system-out>working
    </system-out>
          <system-err>warming up
    </system-err>
        </testcase>
        <testcase classname="ci" name="later" time="[DUR]">
          <skipped message="not started yet"/>
        </testcase>
      </testsuite>
    </testsuites>
    "#);
    let Some(suites) = parse_junit(&file) else {
        return;
    };
    assert_eq!(
        (
            &suites[0]["tests"],
            &suites[0]["failures"],
            &suites[0]["errors"],
            &suites[0]["skipped"]
        ),
        (&3.into(), &0.into(), &1.into(), &1.into())
    );
    assert_eq!(
        suites[0]["cases"][1]["results"],
        serde_json::json!([[
            "Error",
            "still running",
            "the run was still in progress when the report was written"
        ]])
    );
}

/// The report's directory checked before the run vanishes during it: writing the report
/// fails at the end, a storage error (the run itself is recorded).
#[test]
fn junit_cannot_be_written_is_a_storage_error() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"ok","stages":[
      {"kind":"command","id":"a","command":"rm -r reports && touch reports"}]}]}"#,
    );
    std::fs::create_dir(env.path().join("reports")).expect("mkdir");
    let out = env.start("ok", &["--junit", "reports/junit.xml"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("error: cannot write"), "{}", out.stderr);
    assert!(Path::new(&env.path().join(".runs")).is_dir());
}
