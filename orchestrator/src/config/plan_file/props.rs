//! Property test: a random plan file and the config a person would write for the same
//! pipeline (written here by hand, field by field, independently of the translation) are
//! accepted or refused together, and when accepted give the same pipeline: the same stage
//! graph, commands, arguments, timeouts, retries and failure policies.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::config::{Config, OnFailure, StageKind};

/// One random step.
#[derive(Debug, Clone)]
struct Step {
    id: Option<u8>,
    deps: Vec<u8>,
    args: Vec<String>,
    timeout_ms: Option<u64>,
    retries: Option<u32>,
    delay_ms: Option<u64>,
    critical: bool,
    on_failure: Option<&'static str>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        // Mostly its position (`None`), sometimes a fixed id, so duplicates happen.
        prop_oneof![4 => Just(None), 1 => (0u8..8).prop_map(Some)],
        // Mostly earlier steps (a valid graph), sometimes later ones (cycles) or `s9`,
        // which is never an id.
        proptest::collection::vec(prop_oneof![8 => 0u8..8, 1 => Just(9u8)], 0..3),
        proptest::collection::vec("[a-z $'\"]{0,6}", 0..3),
        proptest::option::of(1u64..100_000),
        proptest::option::of(0u32..4),
        proptest::option::of(0u64..5_000),
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just("abort"),
            Just("skip_dependents"),
            Just("continue")
        ]),
    )
        .prop_map(
            |(id, deps, args, timeout_ms, retries, delay_ms, critical, on_failure)| Step {
                id,
                deps,
                args,
                timeout_ms,
                retries,
                delay_ms,
                critical,
                // `skip_dependents` on a non-critical step is refused by the plan alone (the
                // config can say it); keep the pair out of the comparison.
                on_failure: on_failure.filter(|f| critical || *f != "skip_dependents"),
            },
        )
}

/// Seconds as a plan writes them (whole milliseconds, so the round trip is exact).
fn secs(ms: u64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// The step's id: its own, else its position.
fn id(i: usize, s: &Step) -> String {
    format!("s{}", s.id.map_or(i, usize::from))
}

/// Its dependencies: a number below its position is that earlier step, `9` an unknown id,
/// others a later step.
fn deps(i: usize, s: &Step) -> Vec<String> {
    s.deps
        .iter()
        .map(|&d| match d {
            9 => "s9".to_owned(),
            d if usize::from(d) < i || d % 3 == 0 => format!("s{d}"),
            d => format!("s{}", i + usize::from(d) % 2),
        })
        .collect()
}

fn plan_json(steps: &[Step], default_ms: Option<u64>, concurrency: Option<u64>) -> String {
    let steps: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = json!({
                "id": id(i, s),
                "command": "prog",
                "args": s.args,
                "depends_on": deps(i, s),
                "critical": s.critical,
            });
            if let Some(t) = s.timeout_ms {
                v["timeout_sec"] = secs(t);
            }
            if let Some(r) = s.retries {
                v["retries"] = json!(r);
            }
            if let Some(d) = s.delay_ms {
                v["retry_delay_sec"] = secs(d);
            }
            if let Some(f) = s.on_failure {
                v["on_failure"] = json!(f);
            }
            v
        })
        .collect();
    let mut globals = json!({});
    if let Some(d) = default_ms {
        globals["default_timeout_sec"] = secs(d);
    }
    if let Some(c) = concurrency {
        globals["max_concurrency"] = json!(c);
    }
    json!({"plan_id": "p", "version": 1, "globals": globals, "steps": steps}).to_string()
}

/// The same pipeline as a config file, as the README's mapping table says to write it.
fn config_json(steps: &[Step], default_ms: Option<u64>, concurrency: Option<u64>) -> String {
    let stages: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = json!({
                "kind": "command",
                "id": id(i, s),
                "command": "prog",
                "args": s.args,
                "dependsOn": deps(i, s),
                "allowFailure": !s.critical,
            });
            if let Some(t) = s.timeout_ms.or(default_ms) {
                v["timeoutMs"] = json!(t);
            }
            if s.retries.is_some() || s.delay_ms.is_some() {
                v["retries"] =
                    json!({"count": s.retries.unwrap_or(0), "delayMs": s.delay_ms.unwrap_or(0)});
            }
            if let Some(f) = s.on_failure {
                v["onFailure"] = json!(f.replace('_', "-"));
            }
            v
        })
        .collect();
    let mut p = json!({"id": "p", "stages": stages});
    if let Some(c) = concurrency {
        p["concurrency"] = json!(c);
    }
    json!({"pipelines": [p]}).to_string()
}

/// What a pipeline runs, comparable across the two sources.
fn shape(c: &Config) -> Vec<String> {
    let p = &c.pipelines[0];
    let graph = p.graph().expect("validated");
    let mut out = vec![format!("{} {:?}", p.id, p.concurrency)];
    for (i, s) in p.stages.iter().enumerate() {
        let StageKind::Command(cmd) = &s.kind else {
            unreachable!("plans have command stages only")
        };
        let policy = match s.on_failure {
            OnFailure::Abort => "abort",
            OnFailure::SkipDependents => "skip",
            OnFailure::Continue => "continue",
        };
        out.push(format!(
            "{} {:?} {} {:?} {:?} {} {:?} {:?} {policy}",
            s.id,
            graph.deps[i],
            cmd.command,
            cmd.args,
            cmd.timeout,
            cmd.allow_failure,
            s.retries.count,
            s.retries.delay,
        ));
    }
    out
}

/// Cases both accepted (a test below checks the generator does not only make invalid plans).
static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static REFUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #[test]
    fn a_plan_and_its_equivalent_config_give_the_same_pipeline(
        steps in proptest::collection::vec(step(), 1..7),
        default_ms in proptest::option::of(1u64..60_000),
        concurrency in proptest::option::of(1u64..5),
    ) {
        let path = std::path::Path::new("plan.json");
        let plan = plan_json(&steps, default_ms, concurrency);
        let config = config_json(&steps, default_ms, concurrency);
        let from_plan = super::parse(path, &plan, &[], &|_| None);
        let from_config = crate::config::parse(path, &config, true);
        match (&from_plan, &from_config) {
            (Ok(a), Ok(b)) => {
                ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert_eq!(shape(a), shape(&b.config));
            }
            (Err(_), Err(_)) => {
                REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => prop_assert!(
                false,
                "plan {} -> {:?}\nconfig {} -> {:?}",
                plan,
                from_plan.as_ref().err(),
                config,
                from_config.as_ref().err()
            ),
        }
    }
}

#[test]
fn the_generator_makes_valid_and_invalid_plans() {
    a_plan_and_its_equivalent_config_give_the_same_pipeline();
    let accepted = ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
    let refused = REFUSED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        accepted >= 20 && refused >= 20,
        "accepted {accepted}, refused {refused}"
    );
}
