//! Fuzzing the real binary: random mutations of valid configs (values replaced by hostile
//! ones, keys dropped, renamed or doubled, the text cut short) and random command lines, each
//! run in a fresh directory. For every case: no panic (exit 101 or `panicked` on stderr), no
//! hang (each run is killed after [`LIMIT`] and the case fails), an exit code from the
//! documented list, and exit 2 means nothing was written under `.runs`.
//!
//! Bounded for CI: [`CASES`] cases by default (about a minute on a loaded two-core machine);
//! `CODEX_ORCHESTRATOR_FUZZ_CASES=N` runs more locally.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::harness::TestEnv;

/// Default number of cases.
const CASES: u32 = 160;
/// Longest a single run may take before it counts as a hang (stages in the seeds take
/// milliseconds; the limit is for a loaded machine).
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Exit codes a run may end with (README, "Exit codes").
const DOCUMENTED: &[i32] = &[0, 1, 2, 3, 4, 5, 129, 130, 143];

/// Valid configs to mutate: every stage kind and most fields. Commands finish at once.
fn seeds() -> Vec<Value> {
    vec![
        json!({"pipelines":[{"id":"p","title":"P","stages":[
            {"kind":"command","id":"a","command":"echo a","env":{"X":"1"},"timeoutMs":5000},
            {"kind":"command","id":"b","command":"exit 3","allowFailure":true,"summaryHint":"h"}]}]}),
        json!({"defaultPipeline":"p","stageSets":{"s":[{"kind":"command","id":"x","command":"true"}]},
            "pipelines":[{"id":"p","concurrency":2,"vars":{"V":"v"},"stages":[
                {"kind":"stage-set","ref":"s"},
                {"kind":"command","id":"y","command":"echo $V","dependsOn":["x"],"cwd":"."},
                {"kind":"subpipeline","id":"sub","pipeline":"q","dependsOn":["y"]}]},
            {"id":"q","stages":[{"kind":"command","id":"z","command":"true",
                "retries":{"count":1,"delayMs":1,"backoff":"exponential"},"onFailure":"continue"}]}]}),
    ]
}

/// Values a mutation puts in place of another.
fn hostile() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!("")),
        Just(json!("   ")),
        Just(json!("a\u{0}b")),
        Just(json!("t\u{1}\u{1b}[31m")),
        Just(json!("../../../../evil")),
        Just(json!("/")),
        Just(json!("A=B")),
        Just(json!("${NOPE_UNDEFINED}")),
        Just(json!("$$")),
        Just(json!("p")),
        Just(json!("q")),
        Just(json!("a")),
        Just(json!(["a", "a"])),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"": ""})),
        Just(json!({"A=B": "x"})),
        Just(json!({"kind":"subpipeline","id":"loop","pipeline":"p"})),
        Just(json!({"kind":"stage-set","ref":"s"})),
        Just(json!({"count": 2, "delayMs": 1})),
        "[a-zA-Z0-9 _./${}-]{0,12}".prop_map(Value::String),
        (1usize..200_000).prop_map(|n| Value::String("x".repeat(n))),
    ]
}

/// One change to a config.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the value at a random path (chosen by the list of indexes) with `Value`.
    Replace(Vec<usize>, Value),
    /// Remove the key or element at a random path.
    Remove(Vec<usize>),
    /// Rename a key at a random path (a typo, a case change).
    Rename(Vec<usize>, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = proptest::collection::vec(0usize..16, 0..7);
    prop_oneof![
        4 => (path.clone(), hostile()).prop_map(|(p, v)| Mutation::Replace(p, v)),
        1 => path.clone().prop_map(Mutation::Remove),
        1 => (path, "[a-zA-Z]{0,12}").prop_map(|(p, k)| Mutation::Rename(p, k)),
    ]
}

/// Walks `path` down `v` (each index picks a child, modulo their number) and applies `m` to
/// the last container reached.
fn apply(v: &mut Value, path: &[usize], m: &Mutation) {
    let children = match v {
        Value::Object(o) => o.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if children == 0 {
        if let Mutation::Replace(_, new) = m {
            *v = new.clone();
        }
        return;
    }
    let i = path.first().copied().unwrap_or(0) % children;
    if path.len() > 1 {
        let child = match v {
            Value::Object(o) => o.values_mut().nth(i),
            Value::Array(a) => a.get_mut(i),
            _ => None,
        };
        if let Some(child) = child {
            if child.is_object() || child.is_array() {
                return apply(child, &path[1..], m);
            }
        }
    }
    match (v, m) {
        (Value::Object(o), Mutation::Replace(_, new)) => {
            if let Some(key) = o.keys().nth(i).cloned() {
                o.insert(key, new.clone());
            }
        }
        (Value::Array(a), Mutation::Replace(_, new)) => a[i] = new.clone(),
        (Value::Object(o), Mutation::Remove(_)) => {
            if let Some(key) = o.keys().nth(i).cloned() {
                o.remove(&key);
            }
        }
        (Value::Array(a), Mutation::Remove(_)) => {
            a.remove(i);
        }
        (Value::Object(o), Mutation::Rename(_, to)) => {
            if let Some(key) = o.keys().nth(i).cloned() {
                if let Some(val) = o.remove(&key) {
                    o.insert(to.clone(), val);
                }
            }
        }
        _ => {}
    }
}

/// What is done to the text after the mutations: nothing, a key doubled, or a cut.
#[derive(Debug, Clone)]
enum TextChange {
    None,
    /// `"command"` appears twice in the first object that has it.
    DuplicateKey,
    /// The text cut at this fraction of its length.
    Cut(u8),
}

fn text_change() -> impl Strategy<Value = TextChange> {
    prop_oneof![
        6 => Just(TextChange::None),
        1 => Just(TextChange::DuplicateKey),
        1 => (0u8..100).prop_map(TextChange::Cut),
    ]
}

fn render(v: &Value, change: &TextChange) -> String {
    let text = v.to_string();
    match change {
        TextChange::None => text,
        TextChange::DuplicateKey => {
            text.replacen("\"command\":", "\"command\":\"true\",\"command\":", 1)
        }
        TextChange::Cut(pct) => {
            let mut at = text.len() * usize::from(*pct) / 100;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text[..at].to_owned()
        }
    }
}

/// A command line: a verb and flags, valid and not.
fn argv() -> impl Strategy<Value = Vec<String>> {
    let verb = prop_oneof![
        4 => Just(vec!["start"]),
        2 => Just(vec!["plan"]),
        1 => Just(vec!["status"]),
        1 => Just(vec!["resume"]),
        1 => Just(vec!["runs", "list"]),
        1 => Just(vec!["runs", "show"]),
        1 => Just(vec!["report", "junit"]),
        1 => Just(vec!["cancel"]),
        1 => Just(vec!["exec", "--", "true"]),
    ];
    let flag = prop_oneof![
        Just(vec!["p".to_owned()]),
        Just(vec!["q".to_owned()]),
        Just(vec!["--format".to_owned(), "json".to_owned()]),
        Just(vec!["--strict".to_owned()]),
        "[a-z0-9./\u{1}-]{0,10}".prop_map(|t| vec!["--task".to_owned(), t]),
        "[A-Za-z0-9_=]{0,8}".prop_map(|v| vec!["--var".to_owned(), v]),
        "[0-9-]{0,4}".prop_map(|n| vec!["--concurrency".to_owned(), n]),
        Just(vec!["--junit".to_owned(), ".".to_owned()]),
        Just(vec!["--junit".to_owned(), "out/report.xml".to_owned()]),
        "[a-z0-9./-]{0,12}".prop_map(|r| vec!["--run".to_owned(), r]),
        "[a-z0-9./-]{0,12}".prop_map(|r| vec!["--parent-run".to_owned(), r]),
        Just(vec!["--last".to_owned()]),
        Just(vec!["--no-such-flag".to_owned()]),
    ];
    (verb, proptest::collection::vec(flag, 0..4)).prop_map(|(verb, flags)| {
        let mut out: Vec<String> = verb.into_iter().map(str::to_owned).collect();
        // `exec` takes its command last.
        let tail = if out[0] == "exec" {
            out.split_off(1)
        } else {
            Vec::new()
        };
        out.extend(flags.into_iter().flatten());
        out.extend(tail);
        out
    })
}

fn cases() -> u32 {
    std::env::var("CODEX_ORCHESTRATOR_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Each step of shrinking runs the binary: keep it short.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_input_makes_the_runner_panic_hang_or_write_on_a_usage_error(
        seed in 0usize..2,
        mutations in proptest::collection::vec(mutation(), 0..4),
        change in text_change(),
        args in argv(),
    ) {
        let mut config = seeds()[seed].clone();
        for m in &mutations {
            let path = match m {
                Mutation::Replace(p, _) | Mutation::Remove(p) | Mutation::Rename(p, _) => p,
            };
            apply(&mut config, path, m);
        }
        let env = TestEnv::new().config(&render(&config, &change));
        let (out, _) = env.cli_bounded(&args, LIMIT);
        prop_assert!(
            !out.stderr.contains("panicked") && out.code != 101,
            "panic on {args:?}:\n{}", out.stderr
        );
        // `exec` passes its command's exit code through: a positional before `--` becomes the
        // command (`exec p -- true` runs `p`), which the shell reports as 127 (not found) or
        // 126 (not executable).
        let passed_through = args[0] == "exec" && matches!(out.code, 126 | 127);
        prop_assert!(
            DOCUMENTED.contains(&out.code) || passed_through,
            "exit {} on {args:?}:\n{}", out.code, out.stderr
        );
        if out.code == 2 {
            prop_assert!(!env.runs_exists(), "exit 2 wrote under .runs on {args:?}:\n{}", out.stderr);
        }
    }
}
