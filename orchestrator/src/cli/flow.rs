//! `flow`: `docs-review`, then `implementation-gate` only if the review succeeded, as the
//! peer does: the gate's run records the review's run as its parent, `--parent-run` goes to
//! the review, `--target` to the run whose pipeline has that stage. Text mode prints the peer's
//! block per run and a closing line on stdout; `--format json` one object with both runs and
//! `failed_stage`. Exit 1 if either run failed.

use serde_json::{json, Value};

use super::start::{launch, Launched, StartArgs};
use crate::cli::{FlowArgs, Format};
use crate::errors::AppError;
use crate::exit;

const REVIEW: &str = "docs-review";
const GATE: &str = "implementation-gate";

/// Runs `flow`; returns the exit code.
pub async fn flow(args: FlowArgs) -> Result<i32, AppError> {
    let (review_target, gate_target) = split_target(&args)?;
    let mut review_args = start_args(&args, REVIEW, review_target);
    review_args.parent_run = args.parent_run.clone();
    let review = launch(&review_args, None).await?;
    if args.format == Format::Text {
        print_block(&review, "Docs-review run");
    }
    let mut gate: Option<Launched> = None;
    if review.code == exit::OK {
        let mut gate_args = start_args(&args, GATE, gate_target);
        gate_args.parent_run = Some(review.report.manifest.run_id.clone());
        // The notes of flags with no effect were said once, for the review.
        gate_args.inert = Default::default();
        let launched = launch(&gate_args, None).await?;
        if args.format == Format::Text {
            print_block(&launched, "Implementation-gate run");
        }
        gate = Some(launched);
    }
    let code = gate.as_ref().map_or(review.code, |g| g.code);
    let failed_stage = match &gate {
        None => Some(REVIEW),
        Some(g) if g.code != exit::OK => Some(GATE),
        Some(_) => None,
    };
    match args.format {
        Format::Json => {
            let last = gate.as_ref().unwrap_or(&review);
            crate::report::output::json(&json!({
                "status": last.report.manifest.status,
                "failed_stage": failed_stage,
                "docs_review": review.json,
                "implementation_gate": gate.as_ref().map_or(Value::Null, |g| g.json.clone()),
                "issue_log": null,
                "issue_log_error": null,
            }));
        }
        Format::Text => crate::report::output::line(match failed_stage {
            None => "Flow complete: docs-review -> implementation-gate.",
            Some(REVIEW) => "Flow halted: docs-review failed.",
            Some(_) => "Flow halted: implementation-gate failed.",
        }),
    }
    Ok(code)
}

/// `start <pipeline>` with the flow's shared options.
fn start_args(args: &FlowArgs, pipeline: &str, target: Option<String>) -> StartArgs {
    // Each run's own object is collected, not printed: flow prints one object at the end.
    let mut s = StartArgs::for_pipeline(pipeline, args.task.clone(), Format::Json);
    s.vars = args.vars.clone();
    s.secrets = args.secrets.clone();
    s.progress = args.progress;
    s.repo_config_required = args.repo_config_required.clone();
    s.approval_policy = args.approval_policy.clone();
    s.execution_mode = args.execution_mode.clone();
    s.cloud = args.cloud;
    s.runtime_mode = args.runtime_mode.clone();
    s.target.target = target;
    s.inert = args.inert.clone();
    s
}

/// Which run `--target` applies to: a `docs-review:` / `implementation-gate:` prefix scopes
/// it; otherwise it applies to each pipeline that has such a stage. A stage in neither is a
/// usage error before anything runs.
fn split_target(args: &FlowArgs) -> Result<(Option<String>, Option<String>), AppError> {
    let Some(target) = args.target.id() else {
        return Ok((None, None));
    };
    let roots = crate::record::layout::Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let config =
        super::setup::load_config(&roots, false, args.repo_config_required.as_deref())?.config;
    let has = |pipeline: &str, t: &str| {
        config
            .pipeline(pipeline)
            .is_some_and(|p| crate::plan::target::find(p, t).is_some())
    };
    let scoped = |pipeline: &str| {
        target
            .strip_prefix(pipeline)
            .and_then(|rest| rest.strip_prefix(':'))
    };
    let (review, gate) = match (scoped(REVIEW), scoped(GATE)) {
        (Some(t), _) => (has(REVIEW, t).then(|| t.to_owned()), None),
        (_, Some(t)) => (None, has(GATE, t).then(|| t.to_owned())),
        _ => (
            has(REVIEW, target).then(|| target.to_owned()),
            has(GATE, target).then(|| target.to_owned()),
        ),
    };
    if review.is_none() && gate.is_none() {
        return Err(AppError::Usage(format!(
            "--target `{target}`: no such stage in `{REVIEW}` or `{GATE}`"
        )));
    }
    Ok((review, gate))
}

fn print_block(launched: &Launched, label: &str) {
    crate::report::output::line(super::common::run_text(&launched.report, label).trim_end());
}
