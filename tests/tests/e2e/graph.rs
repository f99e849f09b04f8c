//! The stage graph: concurrency, retries, failure policies, variables.

use serde_json::Value;

use crate::harness::{read_lines, redact_manifest, TestEnv};

fn ts(v: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(v.as_str().expect("timestamp")).expect("rfc3339")
}

const DIAMOND: &str = r#"{"pipelines":[{"id":"d","stages":[
  {"kind":"command","id":"a","command":"true"},
  {"kind":"command","id":"b","command":"sleep 0.4","dependsOn":["a"]},
  {"kind":"command","id":"c","command":"sleep 0.4","dependsOn":["a"]},
  {"kind":"command","id":"d","command":"true","dependsOn":["b","c"]}]}]}"#;

#[test]
fn diamond_runs_b_and_c_concurrently() {
    let env = TestEnv::new().config(DIAMOND);
    let out = env.start("d", &["--concurrency", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let c = &m["commands"];
    // Overlap from the recorded times: each of b and c started before the other completed.
    assert!(
        ts(&c[1]["started_at"]) < ts(&c[2]["completed_at"])
            && ts(&c[2]["started_at"]) < ts(&c[1]["completed_at"]),
        "b and c overlap"
    );
    // d started only after both finished, a finished before either started.
    assert!(
        ts(&c[3]["started_at"]) >= ts(&c[1]["completed_at"])
            && ts(&c[3]["started_at"]) >= ts(&c[2]["completed_at"])
    );
    assert!(ts(&c[0]["completed_at"]) <= ts(&c[1]["started_at"]));
    assert_eq!(m["concurrency"], 2);
}

#[test]
fn concurrency_one_serialises_the_diamond() {
    let env = TestEnv::new().config(DIAMOND);
    let out = env.start("d", &["--concurrency", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let c = env.manifest(&out.run_id())["commands"].clone();
    let (b, cc) = (&c[1], &c[2]);
    assert!(
        ts(&b["completed_at"]) <= ts(&cc["started_at"])
            || ts(&cc["completed_at"]) <= ts(&b["started_at"]),
        "no overlap"
    );
}

#[test]
fn retries_succeed_on_the_third_attempt() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"flaky",
      "command":"n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]",
      "retries":{"count":4,"delayMs":50,"backoff":"exponential"}}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_id = out.run_id();
    let m = env.manifest(&run_id);
    assert_eq!(m["commands"][0]["status"], "succeeded");
    assert_eq!(m["commands"][0]["attempts"], 3);
    assert_eq!(
        std::fs::read_to_string(env.path().join("count"))
            .expect("count")
            .trim(),
        "3"
    );
    let log = read_lines(&env.run_dir(&run_id).join("commands/01-flaky.ndjson"));
    let attempts: Vec<u64> = log
        .iter()
        .filter(|l| l["type"] == "exec:begin")
        .map(|l| l["attempt"].as_u64().expect("attempt"))
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let delays: Vec<u64> = log
        .iter()
        .filter(|l| l["type"] == "command:retry")
        .map(|l| l["delay_ms"].as_u64().expect("delay"))
        .collect();
    assert_eq!(delays, [50, 100], "exponential backoff recorded");
    let events = read_lines(&env.run_dir(&run_id).join("events.jsonl"));
    assert_eq!(
        events.iter().filter(|e| e["event"] == "step_retry").count(),
        2
    );
}

#[test]
fn retries_exhausted_fail_the_stage() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"bad","command":"exit 7","retries":2}]}]}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["commands"][0]["attempts"], 3);
    assert_eq!(m["commands"][0]["exit_code"], 7);
}

/// a fails; b depends on a; c independent; d depends on b.
fn policy_cfg(policy: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":1,"stages":[
      {{"kind":"command","id":"a","command":"exit 1","onFailure":"{policy}"}},
      {{"kind":"command","id":"b","command":"true","dependsOn":["a"]}},
      {{"kind":"command","id":"c","command":"true","dependsOn":[]}},
      {{"kind":"command","id":"d","command":"true","dependsOn":["b"]}}]}}]}}"#
    )
}

#[test]
fn failure_policies() {
    for policy in ["abort", "skip-dependents", "continue"] {
        let env = TestEnv::new().config(&policy_cfg(policy));
        let out = env.start("p", &[]);
        assert_eq!(out.code, 1, "{policy}: the run fails: {}", out.stderr);
        let m = env.manifest(&out.run_id());
        crate::harness::assert_valid_manifest(&m);
        assert_eq!(m["status_detail"], "stage:a:failed", "{policy}");
        let s: Vec<String> = crate::harness::stage_statuses(&m)
            .into_iter()
            .map(|(id, st)| format!("{id}={st}"))
            .collect();
        insta::assert_snapshot!(format!("policy_{policy}"), s.join(" "));
    }
}

#[test]
fn skip_dependents_records_the_reason() {
    let env = TestEnv::new().config(&policy_cfg("skip-dependents"));
    let out = env.start("p", &[]);
    let m = env.manifest(&out.run_id());
    insta::assert_json_snapshot!(
        "skip_dependents_manifest",
        redact_manifest(&env, &m)["commands"]
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..Default::default() })]

    /// Random DAGs (edges only to earlier stages), random concurrency: no stage starts before
    /// every dependency completed, and every stage runs.
    #[test]
    fn no_stage_starts_before_its_dependencies_finished(
        n in 2usize..8,
        edges in proptest::collection::vec((0usize..8, 0usize..8), 0..14),
        concurrency in 1u32..4,
    ) {
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (a, b) in edges {
            if a < n && b < a && !deps[a].contains(&b) {
                deps[a].push(b);
            }
        }
        let stages: Vec<String> = (0..n)
            .map(|i| {
                let d: Vec<String> = deps[i].iter().map(|j| format!("\"s{j}\"")).collect();
                format!(r#"{{"kind":"command","id":"s{i}","command":"sleep 0.0{}","dependsOn":[{}]}}"#, i % 3, d.join(","))
            })
            .collect();
        let env = TestEnv::new().config(&format!(r#"{{"pipelines":[{{"id":"p","stages":[{}]}}]}}"#, stages.join(",")));
        let out = env.start("p", &["--concurrency", &concurrency.to_string()]);
        proptest::prop_assert_eq!(out.code, 0, "{}", out.stderr);
        let m = env.manifest(&out.run_id());
        let c = m["commands"].as_array().expect("commands");
        for (i, d) in deps.iter().enumerate() {
            proptest::prop_assert_eq!(&c[i]["status"], "succeeded");
            for &j in d {
                proptest::prop_assert!(ts(&c[i]["started_at"]) >= ts(&c[j]["completed_at"]), "s{} started before s{} finished", i, j);
            }
        }
    }
}

/// One random stage of the outcome property: whether its command fails, its policies, and
/// its dependencies (indices of earlier stages).
#[derive(Debug, Clone)]
struct RandomStage {
    fails: bool,
    allow_failure: bool,
    on_failure: &'static str,
    deps: Vec<usize>,
}

fn random_stages() -> impl proptest::strategy::Strategy<Value = Vec<RandomStage>> {
    use proptest::prelude::*;
    let stage = (
        proptest::bool::weighted(0.35),
        proptest::bool::weighted(0.2),
        prop_oneof![Just("abort"), Just("skip-dependents"), Just("continue")],
        proptest::collection::vec(0usize..8, 0..3),
    );
    proptest::collection::vec(stage, 1..8).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (fails, allow_failure, on_failure, deps))| {
                let mut deps: Vec<usize> = deps.into_iter().filter(|&d| d < i).collect();
                deps.sort_unstable();
                deps.dedup();
                RandomStage {
                    fails,
                    allow_failure,
                    on_failure,
                    deps,
                }
            })
            .collect()
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

    /// Random graphs with random stage outcomes and failure policies, run by the real binary:
    /// the run's status is a function of its stages' recorded statuses (failed iff a stage
    /// failed), `status_detail` names a failed stage, each stage's status follows from its
    /// command and `allowFailure`, a stage ran only after dependencies that let it run, and
    /// unless some failure aborted the run, every stage whose dependencies let it run did run.
    #[test]
    fn run_status_follows_from_the_stages(stages in random_stages(), concurrency in 1u32..4) {
        use proptest::{prop_assert, prop_assert_eq};
        let json: Vec<String> = stages.iter().enumerate().map(|(i, s)| {
            let deps: Vec<String> = s.deps.iter().map(|d| format!("\"s{d}\"")).collect();
            format!(
                r#"{{"kind":"command","id":"s{i}","command":"exit {}","allowFailure":{},"onFailure":"{}","dependsOn":[{}]}}"#,
                u8::from(s.fails), s.allow_failure, s.on_failure, deps.join(",")
            )
        }).collect();
        let env = TestEnv::new().config(&format!(r#"{{"pipelines":[{{"id":"p","stages":[{}]}}]}}"#, json.join(",")));
        let out = env.start("p", &["--concurrency", &concurrency.to_string()]);
        let m = env.manifest(&out.run_id());
        let c = m["commands"].as_array().expect("commands");
        let status = |i: usize| c[i]["status"].as_str().expect("status").to_owned();
        let ran = |i: usize| !c[i]["started_at"].is_null();
        let any_failed = (0..stages.len()).any(|i| status(i) == "failed");
        prop_assert_eq!(&m["status"], if any_failed { "failed" } else { "succeeded" });
        prop_assert_eq!(out.code, i32::from(any_failed), "{}", out.stderr);
        if any_failed {
            let detail = m["status_detail"].as_str().expect("detail");
            let id = detail.strip_prefix("stage:").and_then(|d| d.strip_suffix(":failed")).expect("stage:<id>:failed");
            let i: usize = id[1..].parse().expect("index");
            prop_assert_eq!(status(i), "failed");
        }
        // Dependencies that let a dependent run: succeeded, failed under allowFailure
        // (recorded skipped, but it ran), or failed under `onFailure: continue`.
        let lets_run = |d: usize| match status(d).as_str() {
            "succeeded" => true,
            "skipped" => ran(d),
            "failed" => stages[d].on_failure == "continue",
            _ => false,
        };
        let aborted = (0..stages.len()).any(|i| status(i) == "failed" && stages[i].on_failure == "abort");
        for (i, s) in stages.iter().enumerate() {
            if ran(i) {
                let expected = match (s.fails, s.allow_failure) {
                    (false, _) => "succeeded",
                    (true, true) => "skipped",
                    (true, false) => "failed",
                };
                prop_assert_eq!(status(i), expected, "s{}", i);
                for &d in &s.deps {
                    prop_assert!(lets_run(d), "s{} ran although s{} is {}", i, d, status(d));
                    prop_assert!(ts(&c[i]["started_at"]) >= ts(&c[d]["completed_at"]));
                }
            } else if !aborted {
                prop_assert!(!s.deps.iter().all(|&d| lets_run(d)), "s{} never ran", i);
            }
        }
    }
}

#[test]
fn events_of_a_run_with_a_retry_and_a_failure() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"flaky","command":"n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]","retries":1},
      {"kind":"command","id":"bad","command":"exit 3"},
      {"kind":"command","id":"never","command":"true"}]}]}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1);
    let events = read_lines(&env.run_dir(&out.run_id()).join("events.jsonl"));
    let lines: Vec<String> = events
        .iter()
        .map(|e| {
            let p = &e["payload"];
            let stage = p["stage_id"]
                .as_str()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let extra = match e["event"].as_str().expect("event") {
                "step_retry" => format!(" attempt={}", p["attempt"]),
                "step_completed" | "step_failed" => {
                    format!(" status={} exit={}", p["status"], p["exit_code"])
                }
                "run_failed" | "run_completed" => {
                    format!(" status={} detail={}", p["status"], p["status_detail"])
                }
                "tool_called" => format!(
                    " {} {} attempt={}",
                    p["status"].as_str().expect("status"),
                    p["message"],
                    p["attempt"]
                ),
                _ => String::new(),
            };
            format!(
                "{} {}{stage}{extra}",
                e["seq"],
                e["event"].as_str().expect("event")
            )
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r#"
    1 run_started
    2 step_started flaky
    3 tool_called flaky started "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]" attempt=1
    4 tool_called flaky failed "exit 1" attempt=1
    5 step_retry flaky attempt=2
    6 tool_called flaky started "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]" attempt=2
    7 tool_called flaky succeeded "exit 0" attempt=2
    8 step_completed flaky status="succeeded" exit=0
    9 step_started bad
    10 tool_called bad started "exit 3" attempt=1
    11 tool_called bad failed "exit 3" attempt=1
    12 step_failed bad status="failed" exit=3
    13 run_completed status="failed" detail="stage:bad:failed"
    "#);
    assert!(events
        .iter()
        .all(|e| e["schema_version"] == 1 && e["actor"] == "runner" && e["task_id"] == "0101"));
    // No stage output is copied into the event stream.
    let text =
        std::fs::read_to_string(env.run_dir(&out.run_id()).join("events.jsonl")).expect("read");
    assert!(!text.contains("exec:chunk"));
}
