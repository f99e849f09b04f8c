//! What a person sees on stderr: a failed stage's last output lines under its line and again
//! in the end summary, plain lines wherever a live display cannot draw (`TERM=dumb`, no
//! `TERM`), the capped live list on a small terminal, the end summary, and no escape codes in
//! anything recorded or printed off a terminal.

use crate::harness::{TestEnv, BIN};
use crate::pty::{self, redact_screen, Pty};

/// The issue's example: 20 000 warning lines, then the error that matters, in red.
const NOISE: &str = r#"seq 1 20000 | sed 's/^/warning: noise line /' >&2; printf '\033[1;31merror\033[0m: THE REAL ERROR\n' >&2; exit 1"#;

fn noisy_config() -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p","title":"P","stages":[
        {{"kind":"command","id":"ok","command":"echo fine"}},
        {{"kind":"command","id":"noisy","command":{}}},
        {{"kind":"command","id":"after","command":"true"}}]}}]}}"#,
        serde_json::to_string(NOISE).expect("json string")
    )
}

/// `env.cli(args)` with extra environment variables.
fn cli_with(env: &TestEnv, extra: &[(&str, &str)], args: &[&str]) -> crate::harness::Run {
    let mut cmd = env.command(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run binary");
    crate::harness::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn redact(env: &TestEnv, text: &str) -> String {
    env.redact(text).replace(BIN, "[BIN]")
}

#[test]
fn the_failure_tail_shows_the_real_error() {
    let env = TestEnv::new().config(&noisy_config());
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // No colour codes in a pipe, in the summary or in the output block.
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("[02/03] noisy: failed in "))
        .expect("the failed stage's line");
    assert!(
        lines[at].ends_with(" — Exited with code 1 — error: THE REAL ERROR"),
        "{}",
        lines[at]
    );
    // Under it: the last 20 lines of stderr, the real error last.
    assert_eq!(lines[at + 1], "    stderr, last 20 lines:");
    assert_eq!(lines[at + 2], "    │ warning: noise line 19982");
    assert_eq!(lines[at + 21], "    │ error: THE REAL ERROR");
    // The manifest records the same summary, without escape codes.
    let m = env.manifest(&env.only_run_id());
    assert_eq!(
        m["commands"][1]["summary"],
        "Exited with code 1 — error: THE REAL ERROR"
    );
    // Again in the end summary, with the log and the resume command.
    let summary = &out.stderr[out.stderr.find("\nSummary: ").expect("end summary")..];
    insta::assert_snapshot!(redact(&env, summary.trim()).replace(|c: char| c.is_ascii_digit(), "9"), @r"
    Summary: run [RUN_ID] failed after 9.99s
      9 stages: 9 succeeded, 9 failed, 9 skipped, 9 not run
      FAILED [99] noisy — Exited with code 9 — error: THE REAL ERROR
        log: .runs/9999/cli/[RUN_ID]/commands/99-noisy.ndjson
        stderr, last 99 lines:
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ warning: noise line 99999
        │ error: THE REAL ERROR
      resume: [BIN] resume --run [RUN_ID]
    ");
}

#[test]
fn failure_output_never_and_full() {
    let env = TestEnv::new().config(&noisy_config());
    let never = env.cli(["start", "p", "--failure-output", "never"]);
    assert_eq!(never.code, 1);
    assert!(!never.stderr.contains("│ "), "{}", never.stderr);
    assert!(
        never.stderr.contains("error: THE REAL ERROR"),
        "the summary stays"
    );
    let full = cli_with(
        &env,
        &[("CODEX_ORCHESTRATOR_FAILURE_OUTPUT", "full")],
        &["start", "p"],
    );
    assert_eq!(full.code, 1);
    // Every line, from the log (the in-memory tail holds only the last 64 KiB), twice.
    assert_eq!(full.stderr.matches("│ warning: noise line 1\n").count(), 2);
    assert_eq!(
        full.stderr.matches("│ warning: noise line ").count(),
        40_000
    );
    let five = env.cli(["start", "p", "--failure-output-lines", "5"]);
    assert!(five
        .stderr
        .contains("    stderr, last 5 lines:\n    │ warning: noise line 19997\n"));
}

#[test]
fn plain_lines_where_no_live_display_can_draw() {
    if !pty::available() {
        return;
    }
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"echo hi"}]}]}"#,
    );
    for term in [Some("dumb"), None] {
        let (code, raw, shown) = Pty::spawn_sized(&env, &["start", "p"], &[], 40, term).finish();
        assert_eq!(code, 0, "{term:?}: {}", shown.join("\n"));
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("\u{1b}["),
            "{term:?}: no escape codes: {text:?}"
        );
        insta::allow_duplicates! {
            insta::assert_snapshot!(redact_screen(&env, &shown), @r"
            run [RUN_ID]: pipeline `p` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
            [01/01] a: started — echo hi
            [01/01] a: succeeded in [DUR] — hi
            run [RUN_ID]: succeeded

            Summary: run [RUN_ID] succeeded after [DUR]
            1 stages: 1 succeeded, 0 failed, 0 skipped, 0 not run
            Run started: [RUN_ID]
            Status: succeeded
            Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
            Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
            Runtime: cli (requested cli) via CliRuntimeProvider
            ");
        }
    }
}

#[test]
fn the_live_list_is_capped_on_a_small_terminal() {
    if !pty::available() {
        return;
    }
    let stages: Vec<String> = (1..=30)
        .map(|i| {
            format!(
                r#"{{"kind":"command","id":"s{i:02}","command":"while [ ! -f go ]; do sleep 0.05; done","dependsOn":[]}}"#
            )
        })
        .collect();
    let env = TestEnv::new().config(&format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":30,"stages":[{}]}}]}}"#,
        stages.join(",")
    ));
    let mut term = Pty::spawn_sized(&env, &["start", "p"], &[], 15, Some("xterm"));
    let frame = term.wait_for("30 stages running", |rows| {
        rows.last()
            .is_some_and(|r| r.starts_with("run 0/30 stages done, 30 running"))
    });
    // The run's first line, then the frame: 9 running stages (15 rows less 6), the rest
    // counted, the totals last.
    // Which 9 of the 30 started first depends on the scheduler: numbers redacted.
    let shown = redact_screen(&env, &frame);
    let shown: String = shown
        .split('\n')
        .map(|l| match l.find("/30] s") {
            Some(i) if i >= 3 => format!("{}[NN/30] sNN{}", &l[..i - 3], &l[i + 8..]),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(shown, @r"
    run [RUN_ID]: pipeline `p` started (manifest .runs/0101/cli/[RUN_ID]/manifest.json)
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    [SPIN] [DUR] [NN/30] sNN — while [ ! -f go ]; do sleep 0.05; done
    … and 21 more running
    run 0/30 stages done, 30 running [DUR]
    ");
    std::fs::write(env.path().join("go"), "").expect("release");
    let (code, _, end) = term.finish();
    assert_eq!(code, 0, "{}", end.join("\n"));
    assert!(!end.iter().any(|r| r.contains("more running")), "{end:?}");
}

#[test]
fn the_end_summary_counts_every_stage() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
        {"kind":"command","id":"ok","command":"true"},
        {"kind":"command","id":"allowed","command":"echo allowed >&2; exit 3","allowFailure":true},
        {"kind":"command","id":"bad","command":"echo out only; exit 4","dependsOn":["ok"]},
        {"kind":"command","id":"later","command":"true","dependsOn":["bad"]}]}]}"#,
    );
    let out = env.cli(["start", "p", "--concurrency", "1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let summary = &out.stderr[out.stderr.find("\nSummary: ").expect("end summary")..];
    insta::assert_snapshot!(redact(&env, summary.trim()).replace(|c: char| c.is_ascii_digit(), "9"), @r"
    Summary: run [RUN_ID] failed after 9.99s
      9 stages: 9 succeeded, 9 failed, 9 skipped, 9 not run
      FAILED [99] bad — Exited with code 9
        log: .runs/9999/cli/[RUN_ID]/commands/99-bad.ndjson
        stdout:
        │ out only
      resume: [BIN] resume --run [RUN_ID]
    ");
    // The snapshot masks digits (durations, dates); the counts are asserted exactly, and
    // agree with the record: `allowed` failed under allowFailure and is recorded `skipped`
    // (as the peer does), `later` never ran.
    let lines: Vec<&str> = summary.trim().lines().collect();
    assert_eq!(
        lines[1], "  4 stages: 1 succeeded, 1 failed, 1 skipped, 1 not run",
        "{summary}"
    );
    assert_eq!(
        lines[2], "  FAILED [03] bad — Exited with code 4",
        "{summary}"
    );
    assert!(lines[3].ends_with("/commands/03-bad.ndjson"), "{summary}");
    let statuses = crate::harness::stage_statuses(&env.manifest(&env.only_run_id()));
    let count = |s: &str| statuses.iter().filter(|(_, st)| st == s).count();
    assert_eq!(
        (
            count("succeeded"),
            count("failed"),
            count("skipped"),
            count("pending")
        ),
        (1, 1, 1, 1),
        "{statuses:?}"
    );
    // -q: no progress lines, the summary only (the run failed).
    let quiet = env.cli(["start", "p", "-q"]);
    assert_eq!(quiet.code, 1);
    assert!(
        quiet.stderr.trim_start().starts_with("Summary: "),
        "{}",
        quiet.stderr
    );
    // --color always: coloured status words even in a pipe; NO_COLOR does not override it.
    let colour = cli_with(
        &env,
        &[("NO_COLOR", "1")],
        &["start", "p", "--color", "always"],
    );
    assert!(
        colour.stderr.contains("\u{1b}[1;31mfailed\u{1b}[0m"),
        "{}",
        colour.stderr
    );
    let plain = cli_with(
        &env,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
        &["start", "p"],
    );
    assert!(
        !plain.stderr.contains('\u{1b}'),
        "NO_COLOR wins over CLICOLOR_FORCE"
    );
}

#[test]
fn colour_codes_of_stages_never_reach_the_record() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
        {"kind":"command","id":"c","command":"printf '\\033[32mgreen\\033[0m done\\n'"}]}]}"#,
    );
    let run = env.start("p", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.run_id();
    assert_eq!(env.manifest(&id)["commands"][0]["summary"], "green done");
    for args in [vec!["status", &id], vec!["status", &id, "--format", "json"]] {
        let out = env.cli(&args);
        assert!(!out.stdout.contains('\u{1b}'), "{args:?}: {}", out.stdout);
    }
    // The log keeps the bytes.
    let out = env.cli(["logs", &id, "c"]);
    assert_eq!(out.stdout, "\u{1b}[32mgreen\u{1b}[0m done\n");
}

#[test]
fn logs_are_byte_exact_and_follow_a_running_stage() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
        {"kind":"command","id":"bin","command":"printf '\\377\\376abc\\n\\000z'; printf 'e\\200' >&2"},
        {"kind":"command","id":"slow","command":"echo one; while [ ! -f go ]; do sleep 0.05; done; echo two"}]}]}"#,
    );
    let mut runner = env
        .command(["start", "p"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // Follow `slow` of the newest run while it waits.
    let started = std::time::Instant::now();
    let has_manifest = || {
        std::fs::read_dir(env.path().join(".runs/0101/cli"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("manifest.json").is_file())
    };
    while !has_manifest() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let follower = env
        .command(["logs", "--last", "slow", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("logs --follow");
    std::thread::sleep(std::time::Duration::from_millis(500));
    std::fs::write(env.path().join("go"), "").expect("release");
    let followed = follower
        .wait_with_output()
        .expect("follow ends with the stage");
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "one\ntwo\n");
    assert!(runner.wait().expect("runner").success());
    let id = env.only_run_id();
    let raw = |args: &[&str]| env.command(args).output().expect("logs");
    let out = raw(&["logs", &id, "bin", "--stream", "stdout"]);
    assert_eq!(out.stdout, b"\xff\xfeabc\n\x00z");
    let out = raw(&["logs", "--run", &id, "1", "--stream", "stderr"]);
    assert_eq!(out.stdout, b"e\x80");
    // Without --stream: each stream to its own.
    let out = raw(&["logs", "bin"]);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"\xff\xfeabc\n\x00z"[..], &b"e\x80"[..])
    );
    let out = env.cli(["logs", &id, "nope"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("has no stage `nope` (stages: bin, slow)"),
        "{}",
        out.stderr
    );
}
