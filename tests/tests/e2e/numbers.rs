//! Odd numbers never panic: every numeric flag, config field and environment knob gets the
//! same table of awkward values once (infinities, NaN, negatives, overflow, fractions, text).
//! Each must end in exit 0 or 1 (accepted), 3 (accepted, but the run cannot be resumed) or
//! exit 2 with one `error:` line; never exit 101.

use crate::harness::TestEnv;

/// Awkward spellings of a number on the command line or in the environment.
const TEXT: &[&str] = &[
    "inf",
    "-inf",
    "NaN",
    "-1",
    "0",
    "-0",
    "1e400",
    "1.5",
    "0x10",
    "",
    " ",
    "18446744073709551616",
    "4294967296",
    "99999999999999999999999",
    "1_000",
    "+3",
];

/// Awkward numbers as JSON values in the config.
const JSON: &[&str] = &[
    "-1",
    "0",
    "-0",
    "1e400",
    "1.5",
    "1e3",
    "18446744073709551615",
    "18446744073709551616",
    "4294967296",
    "9007199254740993",
    "\"5\"",
    "null",
    "true",
    "[]",
];

fn check(what: &str, run: &crate::harness::Run) {
    assert!(
        matches!(run.code, 0..=3),
        "{what}: exit {}\nstderr:\n{}",
        run.code,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
    if run.code == 2 {
        assert!(
            run.stderr.lines().any(|l| l.starts_with("error:")),
            "{what}: exit 2 without an error line:\n{}",
            run.stderr
        );
    }
}

const ONE_STAGE: &str = r#"{"pipelines":[{"id":"p","title":"P","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#;

#[test]
fn every_numeric_flag() {
    let env = TestEnv::new().config(ONE_STAGE);
    let run = env.start("p", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.run_id();
    for v in TEXT {
        let cases: Vec<(String, Vec<String>)> = vec![
            (
                "status --interval".into(),
                vec!["status", "--run", &id, "--watch", "--interval", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            (
                "start --concurrency".into(),
                vec!["start", "p", "--concurrency", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            (
                "plan --concurrency".into(),
                vec!["plan", "p", "--concurrency", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            (
                "resume --concurrency".into(),
                vec!["resume", "--run", &id, "--concurrency", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            (
                "runs list --limit".into(),
                vec!["runs", "list", "--limit", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
            (
                "start --failure-output-lines".into(),
                vec!["start", "p", "--failure-output-lines", v]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            ),
        ];
        for (what, args) in cases {
            let run = env.cli(&args);
            check(&format!("{what} {v:?}"), &run);
            // `resume` of a succeeded run is a conflict (3) when the number was accepted.
            assert!(run.code != 101, "{what} {v:?}");
        }
    }
}

#[test]
fn interval_inf_is_a_usage_error() {
    let env = TestEnv::new().config(ONE_STAGE);
    let id = env.start("p", &[]).run_id();
    for v in ["inf", "NaN", "-1", "1e400"] {
        let run = env.cli(["status", "--run", &id, "--watch", "--interval", v]);
        assert_eq!(run.code, 2, "{v}: {}", run.stderr);
        assert!(run.stderr.contains("--interval"), "{}", run.stderr);
    }
}

#[test]
fn every_numeric_environment_knob() {
    for knob in [
        "CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS",
        "CODEX_ORCHESTRATOR_KILL_GRACE_MS",
        "CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS",
    ] {
        for v in TEXT {
            let env = TestEnv::new().config(ONE_STAGE).env(knob, v);
            check(&format!("{knob}={v:?}"), &env.start("p", &[]));
        }
    }
}

#[test]
fn every_numeric_config_field() {
    // `{}` is replaced by the value; the command succeeds at once, so no timeout or retry
    // delay is ever waited for.
    let shapes = [
        (
            "timeoutMs",
            r#"{"kind":"command","id":"a","command":"true","timeoutMs":{}}"#,
            "",
        ),
        (
            "concurrency",
            r#"{"kind":"command","id":"a","command":"true"}"#,
            r#","concurrency":{}"#,
        ),
        (
            "retries",
            r#"{"kind":"command","id":"a","command":"true","retries":{}}"#,
            "",
        ),
        (
            "retries.count",
            r#"{"kind":"command","id":"a","command":"true","retries":{"count":{}}}"#,
            "",
        ),
        (
            "retries.delayMs",
            r#"{"kind":"command","id":"a","command":"true","retries":{"count":1,"delayMs":{}}}"#,
            "",
        ),
        (
            "retries.maxDelayMs",
            r#"{"kind":"command","id":"a","command":"true","retries":{"count":1,"maxDelayMs":{}}}"#,
            "",
        ),
    ];
    for (field, stage, pipeline_extra) in shapes {
        for v in JSON {
            let config = format!(
                r#"{{"pipelines":[{{"id":"p","title":"P"{},"stages":[{}]}}]}}"#,
                pipeline_extra.replace("{}", v),
                stage.replace("{}", v)
            );
            let env = TestEnv::new().config(&config);
            let run = env.start("p", &[]);
            check(&format!("{field} = {v}"), &run);
            if run.code == 2 {
                // Out of JSON's range (1e400) is a syntax error, named by line and column.
                assert!(
                    run.stderr
                        .contains(field.rsplit('.').next().unwrap_or(field))
                        || run.stderr.contains("invalid JSON"),
                    "{field} = {v}: the error names the field:\n{}",
                    run.stderr
                );
                assert!(!env.runs_exists(), "{field} = {v}: nothing written");
            }
        }
    }
}

/// Time values far past year 9999 (`--max-wall-clock`, the pipeline's and a loop's
/// `maxWallClockMs`, an approval's `timeoutMs`, a stage's `timeoutMs`, the kill grace)
/// are RUN, not only planned: each run ends as it would with no limit at all.
#[test]
fn huge_time_values_run_to_the_end() {
    const HUGE_MS: &[&str] = &[
        "253402300799999",
        "9007199254740991",
        "18446744073709551615",
    ];
    for v in ["999999999h", "100000000000d", "18446744073709551615s"] {
        let env = TestEnv::new().config(ONE_STAGE);
        let run = env.start("p", &["--max-wall-clock", v]);
        check(&format!("start --max-wall-clock {v}"), &run);
        assert_eq!(run.code, 0, "start --max-wall-clock {v}: {}", run.stderr);
        assert_eq!(env.manifest(&run.run_id())["status"], "succeeded");
        // The same flag on `resume`: a run that failed until `go` exists.
        let env = TestEnv::new().config(
            r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"test -e go"}]}]}"#,
        );
        let id = env.start("p", &[]).run_id();
        std::fs::write(env.path().join("go"), "").expect("write go");
        let run = env.cli(["resume", "--run", &id, "--max-wall-clock", v]);
        check(&format!("resume --max-wall-clock {v}"), &run);
        assert_eq!(run.code, 0, "resume --max-wall-clock {v}: {}", run.stderr);
        assert_eq!(env.manifest(&id)["status"], "succeeded");
    }
    for v in HUGE_MS {
        let shapes = [
            (
                "pipeline maxWallClockMs",
                format!(
                    r#"{{"pipelines":[{{"id":"p","maxWallClockMs":{v},"stages":[{{"kind":"command","id":"a","command":"true"}}]}}]}}"#
                ),
            ),
            (
                "loop maxWallClockMs",
                format!(
                    r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"loop","id":"fix","build":"true","verify":"gate","maxWallClockMs":{v}}}]}},
                        {{"id":"gate","stages":[{{"kind":"command","id":"c","command":"true"}}]}}]}}"#
                ),
            ),
            (
                "stage timeoutMs",
                format!(
                    r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"command","id":"a","command":"true","timeoutMs":{v}}}]}}]}}"#
                ),
            ),
        ];
        for (what, config) in shapes {
            let env = TestEnv::new().config(&config);
            let run = env.start("p", &[]);
            check(&format!("{what} = {v}"), &run);
            assert_eq!(run.code, 0, "{what} = {v}: {}", run.stderr);
            assert_eq!(env.manifest(&run.run_id())["status"], "succeeded");
        }
        // A kill grace past year 9999: the stage's timeout sends SIGTERM, `sleep` dies of it,
        // and the run fails as any timed-out stage does.
        let env = TestEnv::new()
            .config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"sleep 5","timeoutMs":300}]}]}"#)
            .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", v);
        let run = env.start("p", &[]);
        check(&format!("kill grace {v}"), &run);
        assert_eq!(run.code, 1, "kill grace {v}: {}", run.stderr);
        assert_eq!(env.manifest(&run.run_id())["status"], "failed");
        // An approval that would wait until after year 9999 can still be approved.
        let env = TestEnv::new().config(&format!(
            r#"{{"pipelines":[{{"id":"p","stages":[{{"kind":"approval","id":"gate","prompt":"ok?","timeoutMs":{v}}},
                {{"kind":"command","id":"after","command":"true"}}]}}]}}"#
        ));
        let child = crate::control_util::spawn(&env, &["start", "p"]);
        let id = crate::control_util::the_run(&env);
        let waiting = crate::control_util::awaiting_approval(&env, &id, 0);
        assert_eq!(
            waiting["commands"][0]["approval"]["deadline"], "9999-12-31T23:59:59.999Z",
            "approval timeoutMs = {v}: the deadline saturates"
        );
        let ok = env.cli(["approve", "--run", &id, "--stage", "gate", "--actor", "me"]);
        assert_eq!(ok.code, 0, "{}", ok.stderr);
        let out = crate::control_util::finish(child);
        check(&format!("approval timeoutMs = {v}"), &out);
        assert_eq!(out.code, 0, "approval timeoutMs = {v}: {}", out.stderr);
        assert_eq!(env.manifest(&id)["status"], "succeeded");
    }
}
