//! `exec`, `flow` and `status --watch`.

use std::time::{Duration, Instant};

use crate::harness::{assert_valid_manifest, TestEnv};
use crate::pty::{self, redact_screen, Pty};

#[test]
fn exec_records_a_one_stage_run_and_passes_the_exit_code_through() {
    let env = TestEnv::new();
    // Off a terminal the default is the peer's JSONL; `$` is the shell's, never ours.
    let out = env.cli(["exec", "sh", "-c", "echo 'out ${X}'; echo err >&2; exit 7"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert_eq!(out.stderr, "", "nothing but the events: stderr stays empty");
    let all: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let types: Vec<&str> = all
        .iter()
        .map(|l| l["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "exec:begin",
            "exec:chunk",
            "exec:chunk",
            "exec:end",
            "run:summary"
        ]
    );
    // The two chunks come through two pipes: their order is the order the runner read them,
    // which the stage's write order does not decide.
    let chunk = |stream: &str| {
        all[1..3]
            .iter()
            .find(|l| l["payload"]["stream"] == stream)
            .unwrap_or_else(|| panic!("no {stream} chunk: {}", out.stdout))
    };
    assert_eq!(chunk("stdout")["payload"]["data"], "out ${X}\n");
    assert_eq!(chunk("stderr")["payload"]["data"], "err\n");
    let summary = &all[4]["payload"];
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["result"]["exitCode"], 7);
    assert_eq!(summary["outputs"]["stdout"], "out ${X}\n");
    assert_eq!(summary["run"]["summary"], "Exited with code 7 — err");
    let m = env.manifest(summary["run"]["id"].as_str().expect("id"));
    assert_valid_manifest(&m);
    assert_eq!(m["pipeline_id"], "exec");
    assert_eq!(m["commands"][0]["id"], "exec");
    assert_eq!(
        m["commands"][0]["command"],
        "sh -c 'echo '\\''out ${X}'\\''; echo err >&2; exit 7'"
    );
    // `--json` pretty by default, one line with `compact`; `--` still works.
    let pretty = env.cli(["exec", "--json", "--", "true"]);
    assert_eq!(pretty.code, 0, "{}", pretty.stderr);
    assert!(
        pretty.stdout.starts_with("{\n  \"type\": \"run:summary\""),
        "{}",
        pretty.stdout
    );
    assert_eq!(pretty.json()["payload"]["result"]["exitCode"], 0);
    let compact = env.cli(["exec", "--json", "compact", "printf", "a b"]);
    assert_eq!(compact.stdout.lines().count(), 1, "{}", compact.stdout);
    assert_eq!(compact.json()["payload"]["outputs"]["stdout"], "a b");
    // A whole command line as one argument is split like a shell line.
    let line = env.cli(["exec", "--json", "compact", "echo 'one  two' three"]);
    assert_eq!(
        line.json()["payload"]["command"]["argv"],
        serde_json::json!(["echo", "one  two", "three"])
    );
    let bad = env.cli(["exec", "--jsn", "true"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("did you mean `--json`"),
        "{}",
        bad.stderr
    );
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

/// `flow --parent-run P --cloud`: the review run records `P` as its parent and the gate the
/// review; `--cloud` reaches both runs, each recording its fallback to `mcp`, and the note
/// is said once.
#[test]
fn flow_passes_parent_run_and_cloud_to_its_runs() {
    let env = TestEnv::new().config(FLOW);
    std::fs::write(env.path().join("docs-ok"), "").expect("w");
    let parent = env.cli(["exec", "--json", "compact", "true"]);
    assert_eq!(parent.code, 0, "{}", parent.stderr);
    let parent_id = parent.json()["payload"]["run"]["id"]
        .as_str()
        .expect("parent id")
        .to_owned();
    let out = env.cli([
        "flow",
        "--format",
        "json",
        "--parent-run",
        &parent_id,
        "--cloud",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    let review = j["docs_review"]["run_id"].as_str().expect("review id");
    let gate = j["implementation_gate"]["run_id"]
        .as_str()
        .expect("gate id");
    let rm = env.manifest(review);
    let gm = env.manifest(gate);
    assert_eq!(rm["parent_run_id"], parent_id.as_str());
    assert_eq!(gm["parent_run_id"], review);
    for (name, m) in [("review", &rm), ("gate", &gm)] {
        assert_eq!(
            m["cloud_fallback"]["mode_requested"], "cloud",
            "{name}: {}",
            m["cloud_fallback"]
        );
        assert_eq!(m["cloud_fallback"]["mode_used"], "mcp", "{name}");
    }
    assert_eq!(
        out.stderr
            .matches("note: cloud execution is not available")
            .count(),
        2,
        "one note per run: {}",
        out.stderr
    );
    // A parent run that does not exist is refused before anything runs.
    let before = crate::harness::run_dirs(&env.path().join(".runs")).len();
    let bad = env.cli(["flow", "--parent-run", "no-such-run"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("no-such-run"), "{}", bad.stderr);
    assert_eq!(
        crate::harness::run_dirs(&env.path().join(".runs")).len(),
        before
    );
}

/// `exec --notify` and `--otel-endpoint` are accepted for the peer, say once on stderr that
/// they have no effect here, and the notify targets are listed in `run:summary` with nothing
/// delivered; nothing is sent (the endpoint is a closed port: a send would fail the run).
#[test]
fn exec_notify_and_otel_endpoint_are_noted_and_listed_not_sent() {
    let env = TestEnv::new();
    let out = env.cli([
        "exec",
        "--notify",
        "a, b",
        "--notify=c",
        "--otel-endpoint",
        "http://127.0.0.1:9/v1/traces",
        "--json",
        "compact",
        "true",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let notes: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        notes,
        [
            "note: exec --notify has no effect here (no notifications are sent); the targets are listed in run:summary",
            "note: exec --otel-endpoint has no effect here (no telemetry is exported)",
        ]
    );
    let summary = out.json();
    assert_eq!(summary["type"], "run:summary");
    assert_eq!(
        summary["payload"]["notifications"],
        serde_json::json!({"targets": ["a", "b", "c"], "delivered": [], "failures": []})
    );
    // Without them: no notes at all.
    let quiet = env.cli(["exec", "--json", "compact", "true"]);
    assert_eq!(quiet.stderr, "", "{}", quiet.stderr);
    assert_eq!(
        quiet.json()["payload"]["notifications"]["targets"],
        serde_json::json!([])
    );
}

#[test]
fn status_watch_follows_a_run_in_another_process() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"one","command":"sleep 1"},
      {"kind":"command","id":"two","command":"sleep 1"}]}]}"#,
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
    // Writes nobody waits for are paced by what writes cost (see the README's durability
    // section), so a quick state may be skipped on a slow disk; a stage of a second is not.
    assert!(
        states.first().is_some_and(|s| s.starts_with("in_progress")),
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

/// `a` and then `c` end at once; `b` runs until the test creates `go`, then fails.
const LIVE: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"a","command":"true"},
  {"kind":"command","id":"b","command":"while [ ! -f go ]; do sleep 0.02; done; exit 2","dependsOn":[]},
  {"kind":"command","id":"c","command":"true","dependsOn":["a"]}]}]}"#;

#[test]
fn live_progress_on_a_terminal() {
    if !pty::available() {
        return;
    }
    let env = TestEnv::new().config(LIVE);
    // Three at once, so `b` runs beside `a` and `c` whatever the number of cores.
    let mut term = Pty::spawn(&env, &["start", "p", "--concurrency", "3"], &[]);
    // A live frame: `a` and `c` done (permanent lines), `b` still running (a spinner with its
    // elapsed time), the done/total line below. Both live rows drawn whole, so the frame is
    // complete, not a redraw caught halfway.
    let frame = term.wait_for("the frame with only `b` running", |rows| {
        let n = rows.len();
        n >= 2
            && rows.iter().any(|r| r.starts_with("[03/03] c: succeeded"))
            && rows[n - 2].ends_with("[02/03] b — while [ ! -f go ]; do sleep 0.02; done; exit 2")
            && rows[n - 1].starts_with("run 2/3 stages done")
            && rows[n - 1].ends_with('s')
    });
    insta::assert_snapshot!(redact_screen(&env, &frame), @r"
    run [RUN_ID]: pipeline `p` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
    [01/03] a: succeeded in [DUR] — Command completed with code 0
    [03/03] c: succeeded in [DUR] — Command completed with code 0
    [SPIN] [DUR] [02/03] b — while [ ! -f go ]; do sleep 0.02; done; exit 2
    run 2/3 stages done, 1 running [DUR]
    ");
    std::fs::write(env.path().join("go"), "").expect("release b");
    let (code, raw, end) = term.finish();
    assert_eq!(code, 1, "{}", end.join("\n"));
    assert!(
        raw.windows(2).any(|w| w == b"\x1b["),
        "a live display redraws with escape sequences"
    );
    // At the end the live rows are gone; the permanent lines stay, the failure among them.
    insta::assert_snapshot!(redact_screen(&env, &end), @r"
    run [RUN_ID]: pipeline `p` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
    [01/03] a: succeeded in [DUR] — Command completed with code 0
    [03/03] c: succeeded in [DUR] — Command completed with code 0
    [02/03] b: failed in [DUR] — Exited with code 2
    run [RUN_ID]: failed (stage:b:failed)
    Stage 'b' failed with exit code 2.

    Summary: run [RUN_ID] failed after [DUR]
    3 stages: 2 succeeded, 1 failed, 0 skipped, 0 not run
    FAILED [02] b — Exited with code 2
    log: .runs/0101/cli/[RUN_ID]/commands/02-b.ndjson
    resume: [BIN] resume --run [RUN_ID]
    Run started: [RUN_ID]
    Status: failed
    Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
    Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
    Runtime: cli (requested cli) via CliRuntimeProvider
    Summary:
    Stage 'b' failed with exit code 2.
    ");
}

/// `q` fails until `fixed` exists; `docs-review` and `implementation-gate` pass (for `flow`).
const PROGRESS: &str = r#"{"pipelines":[
  {"id":"q","stages":[{"kind":"command","id":"x","command":"test -f fixed"}]},
  {"id":"docs-review","stages":[{"kind":"command","id":"review","command":"true"}]},
  {"id":"implementation-gate","stages":[{"kind":"command","id":"gate","command":"true"}]}]}"#;

const NO_TERMINAL: &str =
    "note: --interactive: stderr is not a terminal that can redraw (a pipe, a file, TERM=dumb or no TERM); printing plain progress lines";

#[test]
fn interactive_without_a_terminal_prints_plain_lines() {
    let env = TestEnv::new().config(PROGRESS);
    // stderr is a pipe: a live display would draw nothing, not even the final status.
    let out = env.cli(["start", "q", "--interactive"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines: Vec<String> = out.stderr.lines().map(str::to_owned).collect();
    insta::assert_snapshot!(redact_screen(&env, &lines), @r"
    note: --interactive: stderr is not a terminal that can redraw (a pipe, a file, TERM=dumb or no TERM); printing plain progress lines
    run [RUN_ID]: pipeline `q` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
    [01/01] x: started — test -f fixed
    [01/01] x: failed in [DUR] — Exited with code 1
    run [RUN_ID]: failed (stage:x:failed)
    Stage 'x' failed with exit code 1.

    Summary: run [RUN_ID] failed after [DUR]
    1 stages: 0 succeeded, 1 failed, 0 skipped, 0 not run
    FAILED [01] x — Exited with code 1
    log: .runs/0101/cli/[RUN_ID]/commands/01-x.ndjson
    resume: [BIN] resume --run [RUN_ID]
    ");
    let id = env.only_run_id();
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    // The peer's flags are accepted by every verb that runs stages.
    let resumed = env.cli(["resume", "--run", &id, "--interactive"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.starts_with(NO_TERMINAL),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed.stderr.contains("[01/01] x: succeeded in "),
        "{}",
        resumed.stderr
    );
    for flag in ["--interactive", "--no-interactive"] {
        let flow = env.cli(["flow", flag, "--format", "json"]);
        assert_eq!(flow.code, 0, "flow {flag}: {}", flow.stderr);
        assert_eq!(flow.json()["status"], "succeeded");
        // Said once, not once per run of the flow.
        let notes = flow.stderr.matches(NO_TERMINAL).count();
        assert_eq!(
            notes,
            usize::from(flag == "--interactive"),
            "{}",
            flow.stderr
        );
    }
}

#[test]
fn resume_on_a_terminal_shows_the_live_display() {
    if !pty::available() {
        return;
    }
    let env = TestEnv::new().config(PROGRESS);
    let first = env.start("q", &[]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let (code, raw, end) = Pty::spawn(&env, &["resume", "--run", &first.run_id()], &[]).finish();
    assert_eq!(code, 0, "{}", end.join("\n"));
    let raw = String::from_utf8_lossy(&raw);
    // A line printed above the frame redraws the last frame drawn, so the total must be drawn
    // before the run's `started` line: every frame from that line on counts the run's one
    // stage (before it, the frame may still say 0/0). Not a matter of timing: a steady tick
    // that happens to come first would hide a total drawn late, never show a wrong one.
    let started = raw
        .find("pipeline `q` started")
        .unwrap_or_else(|| panic!("no started line: {raw:?}"));
    let frames: Vec<&str> = raw[started..]
        .match_indices(" stages done")
        .map(|(i, _)| {
            let line = &raw[started..started + i];
            line.rsplit(|c: char| c != '/' && !c.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .collect();
    assert!(
        !frames.is_empty(),
        "no live frame after the started line: {raw:?}"
    );
    assert!(
        frames.iter().all(|f| f.ends_with("/1")),
        "frames after the started line: {frames:?} in {raw:?}"
    );
    // No plain `started` line: the running stage was a spinner, gone at the end.
    insta::assert_snapshot!(redact_screen(&env, &end), @r"
    run [RUN_ID]: pipeline `q` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
    [01/01] x: succeeded in [DUR] — Command completed with code 0
    run [RUN_ID]: succeeded

    Summary: run [RUN_ID] succeeded after [DUR]
    1 stages: 1 succeeded, 0 failed, 0 skipped, 0 not run
    Run resumed: [RUN_ID]
    Status: succeeded
    Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
    Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
    Runtime: cli (requested cli) via CliRuntimeProvider
    ");
}

/// `a` ends at once; `b` says it started, then runs until it is cancelled.
const CANCEL: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"a","command":"true"},
  {"kind":"command","id":"b","command":"touch b.started; exec sleep 30"}]}]}"#;

fn wait_for_file(path: &std::path::Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn diagnostics_off_a_terminal_have_no_colour_codes() {
    let env = TestEnv::new().config(CANCEL);
    let child = env
        .command(["start", "p"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_file(&env.path().join("b.started"));
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the runner");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(" WARN stopping stages signal=15\n"),
        "the cancel warning: {stderr:?}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe: {stderr:?}"
    );
}

#[test]
fn diagnostics_on_a_terminal_are_drawn_above_the_live_display() {
    if !pty::available() {
        return;
    }
    for no_color in [false, true] {
        let env = TestEnv::new().config(CANCEL);
        let extra: &[(&str, &str)] = if no_color { &[("NO_COLOR", "1")] } else { &[] };
        let mut term = Pty::spawn(&env, &["start", "p"], extra);
        term.wait_for("`b` running", |rows| {
            rows.iter()
                .any(|r| r.ends_with("[02/02] b — touch b.started; exec sleep 30"))
                && rows
                    .last()
                    .is_some_and(|r| r.starts_with("run 1/2 stages done"))
        });
        wait_for_file(&env.path().join("b.started"));
        let id = env.only_run_id();
        // From another terminal: SIGTERM to the runner, which warns while the frame is up.
        let cancel = env.cli(["cancel", "--run", &id]);
        assert_eq!(cancel.code, 0, "{}", cancel.stderr);
        let (code, raw, end) = term.finish();
        assert_eq!(code, 143, "{}", end.join("\n"));
        // The warning is a line of its own above the frame, not erased by the next redraw
        // nor glued to the bars.
        // Same screen with and without colour.
        insta::allow_duplicates! {
            insta::assert_snapshot!(redact_screen(&env, &end), @r"
            run [RUN_ID]: pipeline `p` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
            [01/02] a: succeeded in [DUR] — Command completed with code 0
            [TS] WARN stopping stages signal=15
            [02/02] b: failed in [DUR] — Cancelled by SIGTERM — Terminated with signal SIGTERM
            run [RUN_ID]: cancelled (run-canceled)
            Run cancelled by SIGTERM.
            Stage 'b' was cancelled.

            Summary: run [RUN_ID] cancelled after [DUR]
            2 stages: 1 succeeded, 1 failed, 0 skipped, 0 not run
            FAILED [02] b — Cancelled by SIGTERM — Terminated with signal SIGTERM
            log: .runs/0101/cli/[RUN_ID]/commands/02-b.ndjson
            resume: [BIN] resume --run [RUN_ID]
            Run started: [RUN_ID]
            Status: cancelled
            Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
            Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
            Runtime: cli (requested cli) via CliRuntimeProvider
            Summary:
            Run cancelled by SIGTERM.
            Stage 'b' was cancelled.
            ");
        }
        if no_color {
            assert!(
                !has_colour(&raw),
                "NO_COLOR: no colour codes: {:?}",
                String::from_utf8_lossy(&raw)
            );
        } else {
            assert!(
                String::from_utf8_lossy(&raw).contains("\u{1b}[33m WARN"),
                "on a terminal the level is coloured"
            );
        }
    }
}

/// Whether `raw` holds an SGR (colour or style) sequence: ESC `[` digits/`;` `m`.
fn has_colour(raw: &[u8]) -> bool {
    raw.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b["
            && raw[i + 2..]
                .iter()
                .find(|b| !(b.is_ascii_digit() || **b == b';'))
                == Some(&b'm')
    })
}

#[test]
fn exec_on_a_terminal_streams_the_output_then_says_how_the_run_ended() {
    if !pty::available() {
        return;
    }
    let env = TestEnv::new();
    let mut term = Pty::spawn(
        &env,
        &[
            "exec",
            "sh",
            "-c",
            "echo first; while [ ! -f go ]; do sleep 0.02; done; echo second >&2; exit 3",
        ],
        &[],
    );
    // Live: the first line is on screen while the command still waits.
    term.wait_for("the command's first line", |rows| {
        rows.iter().any(|r| r == "first")
    });
    std::fs::write(env.path().join("go"), "").expect("release");
    let (code, _, end) = term.finish();
    assert_eq!(code, 3, "{}", end.join("\n"));
    insta::assert_snapshot!(redact_screen(&env, &end), @r#"
    $ sh -c 'echo first; while [ ! -f go ]; do sleep 0.02; done; echo second >&2; exit 3'
    first
    second

    [RUN_ID] FAILED
    Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
    Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
    "#);
}
