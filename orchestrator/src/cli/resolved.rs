//! `start --dry-run` and `plan --resolved`: what a run would execute, resolved as the runner
//! resolves it, without running or writing anything. For every command stage of the pipeline
//! and of each pipeline its sub-pipeline stages run: the argv the executor starts, the
//! working directory, the environment the runner adds (with where each value comes from),
//! timeout, retries, failure policy and executor; for the pipeline started, which stages the
//! selection leaves out.
//!
//! Values are printed for what is config or runner content (runner variables, `vars`,
//! `--var`, the stage's `env`), secret ones (`secrets`, `--secret`) masked as a run masks
//! them; the environment the runner inherits is named by its keys only (`--format json`) or
//! counted (text): its values may be secrets. Values that depend on the
//! run id, which is only drawn at start, show the placeholder `<run-id>`.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::start::Inputs;
use crate::cli::{Format, StartArgs};
use crate::config::{CommandStage, ExecutorConfig, OnFailure, Pipeline, Stage, StageKind};
use crate::engine::state::{env_layers, resolve, run_env};
use crate::errors::AppError;

/// Stands in for the run id in paths and variables a dry run shows.
const RUN_ID_PLACEHOLDER: &str = "<run-id>";

/// `start --dry-run` (and `plan --resolved`, which builds the same `StartArgs`): checks
/// everything `start` checks, prints what it would run; exit 0. `config` replaces the repo
/// config (`plan --file`).
pub fn dry_run(args: &StartArgs, config: Option<crate::config::Config>) -> Result<i32, AppError> {
    let inputs = super::start::inputs(args, config)?;
    print(&inputs, args.format);
    Ok(crate::exit::OK)
}

/// Prints the resolved view of `inputs` on stdout.
pub fn print(inputs: &Inputs, format: Format) {
    let view = view(inputs);
    match format {
        Format::Json => crate::report::output::json(&view),
        Format::Text => crate::report::output::line(text(&view).trim_end()),
    }
}

/// The `--format json` object: `pipeline`, `config_path`, `task`, `concurrency`, the
/// `selection` and `fail_fast` asked for, `inherited_env` (count and keys), and `pipelines`:
/// the pipeline started first, then each pipeline its sub-pipeline stages run, each once.
pub fn view(inputs: &Inputs) -> Value {
    let plan = &inputs.plan;
    let config = &inputs.config;
    let mut inherited: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    inherited.sort();
    let pipelines: Vec<Value> = run_pipelines(inputs)
        .into_iter()
        .map(|p| pipeline_view(inputs, p, p.id == plan.pipeline.id))
        .collect();
    json!({
        "dry_run": true,
        "pipeline": plan.pipeline.id,
        "config_path": config.path.to_string_lossy(),
        "task": inputs.task,
        "concurrency": plan.concurrency,
        "concurrency_source": plan.concurrency_source,
        "selection": plan.selection.as_ref().map(|s| s.record(&plan.pipeline)),
        "fail_fast": inputs.fail_fast,
        "shell": ["/bin/sh", "-c"],
        "inherited_env": { "count": inherited.len(), "keys": inherited },
        "pipelines": pipelines,
    })
}

/// The pipeline started, then every pipeline a stage that runs would start as a child run
/// (transitively), each once, in the order they are met. The selection applies to the
/// pipeline started only, so a sub-pipeline stage it leaves out brings no pipeline in.
fn run_pipelines(inputs: &Inputs) -> Vec<&Pipeline> {
    let plan = &inputs.plan;
    let mut out: Vec<&Pipeline> = vec![&plan.pipeline];
    let mut next = 0;
    while let Some(&p) = out.get(next) {
        let top = next == 0;
        next += 1;
        for (i, stage) in p.stages.iter().enumerate() {
            let StageKind::Subpipeline { pipeline, .. } = &stage.kind else {
                continue;
            };
            if top && !plan.runs(i) {
                continue;
            }
            // Checked when the config was loaded; an optional one may be missing.
            if let Some(child) = inputs.config.pipeline(pipeline) {
                if !out.iter().any(|known| known.id == child.id) {
                    out.push(child);
                }
            }
        }
    }
    out
}

/// One pipeline: its stages resolved. `top`: the pipeline started (the selection applies).
fn pipeline_view(inputs: &Inputs, p: &Pipeline, top: bool) -> Value {
    let plan = &inputs.plan;
    let vars = crate::plan::runner_vars(p, &inputs.cli_vars);
    // Validated when the config was loaded: a pipeline's graph has no cycle.
    let deps = p.graph().map(|g| g.deps).unwrap_or_default();
    let dir = inputs.roots.run_dir(&inputs.task, RUN_ID_PLACEHOLDER);
    let runner = run_env(&inputs.roots, &inputs.task, &dir, &p.id, &inputs.peer_env);
    let stages: Vec<Value> = p
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = json!({
                "index": i + 1,
                "id": s.id,
                "title": s.title,
                "kind": match s.kind {
                    StageKind::Command(_) => "command",
                    StageKind::Subpipeline { .. } => "subpipeline",
                    StageKind::Approval(_) => "approval",
                    StageKind::Loop(_) => "loop",
                },
                "depends_on": deps.get(i).map_or_else(Vec::new, |d| d.iter().map(|&j| p.stages[j].id.clone()).collect()),
            });
            let obj = v.as_object_mut().expect("built as an object");
            let runs = !top || plan.runs(i);
            obj.insert("runs".into(), json!(runs));
            if !runs {
                let reason = plan.selection.as_ref().map(|sel| sel.reason());
                obj.insert("skip_reason".into(), json!(reason));
            }
            let (policy, source) = on_failure(inputs, s);
            obj.insert("on_failure".into(), json!(policy.as_str()));
            obj.insert("on_failure_source".into(), json!(source));
            match &s.kind {
                StageKind::Command(c) => {
                    command_view(inputs, obj, runner.clone(), &vars, c);
                    obj.insert("retries".into(), retries_view(s));
                }
                StageKind::Subpipeline { pipeline, optional } => {
                    obj.insert("pipeline".into(), json!(pipeline));
                    obj.insert("optional".into(), json!(optional));
                }
                StageKind::Loop(_) => {
                    // A loop's build and verify commands run per iteration: `plan` shows them.
                    obj.insert("see".into(), json!("plan --format json"));
                }
                StageKind::Approval(a) => {
                    obj.insert("prompt".into(), json!(a.prompt));
                    obj.insert("approvers".into(), json!(a.approvers));
                    obj.insert("timeout_ms".into(), json!(a.timeout.map(crate::time::millis)));
                    obj.insert("on_timeout".into(), json!(a.on_timeout.as_str()));
                }
            }
            v
        })
        .collect();
    let variables: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| {
            let v = if inputs.secrets.matches(k.as_bytes()) {
                exec::redact::MASK
            } else {
                v.as_str()
            };
            (k.clone(), json!(v))
        })
        .collect();
    json!({ "id": p.id, "title": p.title, "variables": variables, "stages": stages })
}

/// The fields of a command stage: argv, cwd, env (value and source of each name the runner
/// sets), timeout, retries, allowFailure, executor.
fn command_view(
    inputs: &Inputs,
    obj: &mut Map<String, Value>,
    runner: Vec<(String, String)>,
    vars: &[(String, String)],
    c: &CommandStage,
) {
    let layers = env_layers(runner, vars, c);
    // Secret values are masked as the run masks them in recorded texts: the value of a
    // secret variable wherever it appears (command, cwd, other values), the variable itself
    // by its name.
    let all: Vec<(String, String)> = layers.iter().flat_map(|(_, l)| l.clone()).collect();
    let secret_values = exec::Secrets::new(inputs.secrets.values(std::env::vars_os(), &all));
    let mask = |text: &str| match &secret_values {
        Some(s) => s.redact_str(text).0,
        None => text.to_owned(),
    };
    // The same resolution the stage gets; only `cwd` can fail, and the plan checked it.
    let (cwd, mut env) = match resolve(layers.clone(), &inputs.roots.repo, c) {
        Ok((_, cwd, _)) => (json!(mask(&cwd.to_string_lossy())), Map::new()),
        Err(e) => (json!({ "error": e }), Map::new()),
    };
    for (layer, pairs) in &layers {
        for (k, v) in pairs {
            // A later layer wins: re-inserting moves nothing, so remove first (keeping the
            // others in place) to keep the order in which the names are finally set.
            env.shift_remove(k);
            let value = if inputs.secrets.matches(k.as_bytes()) {
                exec::redact::MASK.to_owned()
            } else {
                mask(v)
            };
            env.insert(k.clone(), json!({ "value": value, "from": layer.as_str() }));
        }
    }
    // The argv the executor starts: `sh -c` of the command, or in argv mode (`args`) the
    // program and its arguments as they are.
    let argv: Vec<String> = match &c.args {
        None => vec!["/bin/sh".into(), "-c".into(), mask(&c.command)],
        Some(args) => std::iter::once(&c.command)
            .chain(args)
            .map(|a| mask(a))
            .collect(),
    };
    obj.insert("command".into(), json!(mask(&c.shell_text())));
    obj.insert("argv".into(), json!(argv));
    obj.insert("cwd".into(), cwd);
    obj.insert("env".into(), Value::Object(env));
    let (timeout, timeout_source) = match (c.timeout, inputs.knobs.default_timeout) {
        (Some(t), _) => (Some(t), Some("timeoutMs")),
        (None, Some(t)) => (Some(t), Some(crate::env_vars::STAGE_TIMEOUT_MS)),
        (None, None) => (None, None),
    };
    obj.insert("timeout_ms".into(), json!(timeout.map(crate::time::millis)));
    obj.insert("timeout_source".into(), json!(timeout_source));
    obj.insert("allow_failure".into(), json!(c.allow_failure));
    obj.insert("executor".into(), executor_view(c.executor.as_ref()));
}

/// A command stage's `retries`.
fn retries_view(s: &Stage) -> Value {
    let r = &s.retries;
    json!({
        "count": r.count,
        "delay_ms": crate::time::millis(r.delay),
        "backoff": if r.exponential { "exponential" } else { "fixed" },
        "max_delay_ms": r.max_delay.map(crate::time::millis),
    })
}

/// Where the stage runs; for Ray, the address after `CODEX_ORCHESTRATOR_RAY_ADDRESS`.
fn executor_view(e: Option<&ExecutorConfig>) -> Value {
    match e {
        None | Some(ExecutorConfig::Local) => json!({ "kind": "local" }),
        Some(ExecutorConfig::Ray(ray)) => json!({
            "kind": "ray",
            // Checked by the plan: an override that is not an address never gets here.
            "address": crate::config::executor::ray_address(ray).ok(),
            "working_dir": ray.working_dir,
            "num_cpus": ray.num_cpus,
            "num_gpus": ray.num_gpus,
            "resources": ray.resources.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
            "excludes": ray.excludes,
        }),
    }
}

/// The failure policy in force for `s` and where it comes from.
fn on_failure(inputs: &Inputs, s: &Stage) -> (OnFailure, &'static str) {
    match inputs.fail_fast {
        Some(true) => (OnFailure::Abort, "--fail-fast"),
        Some(false) => (OnFailure::Continue, "--no-fail-fast"),
        None => (s.on_failure, "config"),
    }
}

/// The text rendering of [`view`]: one block per pipeline, one per stage.
pub fn text(view: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let _ = writeln!(
        out,
        "Dry run of pipeline `{}` (task {}, concurrency {}, {}): nothing is run or written.",
        s(&view["pipeline"]),
        s(&view["task"]),
        view["concurrency"],
        s(&view["concurrency_source"])
    );
    let _ = writeln!(out, "Config: {}", s(&view["config_path"]));
    let _ = writeln!(
        out,
        "Every command stage runs `/bin/sh -c COMMAND` (with `args`: the program itself, no shell) in the runner's environment ({} variables, values not shown) plus the variables listed.",
        view["inherited_env"]["count"]
    );
    // The names the runner sets are the same for every stage: listed once.
    let runner: Vec<&String> = view["pipelines"][0]["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|st| st["env"].as_object())
        .next()
        .into_iter()
        .flat_map(|env| {
            env.iter()
                .filter(|(_, v)| v["from"] == "runner")
                .map(|(k, _)| k)
        })
        .collect();
    if !runner.is_empty() {
        let names: Vec<&str> = runner.iter().map(|k| k.as_str()).collect();
        let _ = writeln!(
            out,
            "Set by the runner for every stage: {}",
            names.join(" ")
        );
    }
    for p in view["pipelines"].as_array().into_iter().flatten() {
        let stages = p["stages"].as_array().map_or(&[][..], Vec::as_slice);
        let _ = writeln!(out, "\nPipeline {} ({}):", s(&p["id"]), s(&p["title"]));
        for st in stages {
            let head = format!(
                "  [{:02}/{:02}] {}",
                st["index"].as_u64().unwrap_or(0),
                stages.len(),
                s(&st["id"])
            );
            if st["runs"] == false {
                let _ = writeln!(out, "{head}: {}", s(&st["skip_reason"]).to_lowercase());
                continue;
            }
            let _ = writeln!(out, "{head}");
            let deps: Vec<String> = st["depends_on"]
                .as_array()
                .into_iter()
                .flatten()
                .map(&s)
                .collect();
            if !deps.is_empty() {
                let _ = writeln!(out, "      after: {}", deps.join(", "));
            }
            if st["kind"] == "subpipeline" {
                let optional = if st["optional"] == true {
                    " (optional)"
                } else {
                    ""
                };
                let _ = writeln!(out, "      runs pipeline {}{optional}", s(&st["pipeline"]));
            } else if st["kind"] == "loop" {
                let _ = writeln!(
                    out,
                    "      a loop stage: its build and verify commands are in `plan`"
                );
            } else if st["kind"] == "approval" {
                let _ = writeln!(out, "      waits for approval: {}", s(&st["prompt"]));
            } else {
                stage_text(&mut out, st);
            }
            let _ = writeln!(
                out,
                "      on failure: {} ({})",
                s(&st["on_failure"]),
                s(&st["on_failure_source"])
            );
        }
    }
    out
}

/// The lines of one command stage.
fn stage_text(out: &mut String, st: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let _ = writeln!(out, "      command: {}", s(&st["command"]));
    if st["argv"][0] != "/bin/sh" {
        let argv: Vec<String> = st["argv"]
            .as_array()
            .into_iter()
            .flatten()
            .map(&s)
            .collect();
        let _ = writeln!(out, "      argv (no shell): {}", argv.join(" | "));
    }
    let cwd = match &st["cwd"] {
        Value::String(c) => c.clone(),
        other => format!("cannot be resolved: {}", s(&other["error"])),
    };
    let _ = writeln!(out, "      cwd: {cwd}");
    let mut by_layer: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in st["env"].as_object().into_iter().flatten() {
        let from = s(&v["from"]);
        if from == "runner" {
            // Named once in the header: the same for every stage.
            continue;
        }
        let item = format!("{k}={}", s(&v["value"]));
        match by_layer.iter_mut().find(|(l, _)| *l == from) {
            Some((_, items)) => items.push(item),
            None => by_layer.push((from, vec![item])),
        }
    }
    for (layer, items) in by_layer {
        let _ = writeln!(out, "      env ({layer}): {}", items.join(" "));
    }
    let timeout = match st["timeout_ms"].as_u64() {
        Some(ms) => format!(
            "{} ({})",
            crate::report::style::duration(std::time::Duration::from_millis(ms)),
            s(&st["timeout_source"])
        ),
        None => "none".to_owned(),
    };
    let _ = writeln!(out, "      timeout: {timeout}");
    let r = &st["retries"];
    if r["count"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            out,
            "      retries: {} ({} delay {}ms{})",
            r["count"],
            s(&r["backoff"]),
            r["delay_ms"],
            r["max_delay_ms"]
                .as_u64()
                .map(|m| format!(", at most {m}ms"))
                .unwrap_or_default()
        );
    } else {
        let _ = writeln!(out, "      retries: none");
    }
    if st["allow_failure"] == true {
        let _ = writeln!(out, "      allowFailure: a failure is recorded skipped");
    }
    let e = &st["executor"];
    let executor = match s(&e["kind"]).as_str() {
        "ray" => format!("ray at {}", s(&e["address"])),
        other => other.to_owned(),
    };
    let _ = writeln!(out, "      executor: {executor}");
}
