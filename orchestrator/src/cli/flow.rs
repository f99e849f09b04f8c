//! `flow`: `docs-review`, then `implementation-gate` only if the review succeeded. One JSON
//! object with both runs; exit 1 if either failed.

use serde_json::{json, Value};

use super::start::{launch, StartArgs};
use crate::cli::{FlowArgs, Format};
use crate::errors::AppError;
use crate::exit;

/// Runs `flow`; returns the exit code.
pub async fn flow(args: FlowArgs) -> Result<i32, AppError> {
    let mut review_args = StartArgs::for_pipeline("docs-review", args.task.clone(), args.format);
    review_args.vars = args.vars.clone();
    review_args.progress = args.progress;
    review_args.repo_config_required = args.repo_config_required.clone();
    let review = launch(&review_args, None).await?;
    let mut gate_json = Value::Null;
    let mut code = review.code;
    if review.code == exit::OK {
        let mut gate_args =
            StartArgs::for_pipeline("implementation-gate", args.task.clone(), args.format);
        gate_args.vars = args.vars.clone();
        gate_args.progress = args.progress;
        gate_args.repo_config_required = args.repo_config_required.clone();
        let gate = launch(&gate_args, None).await?;
        code = gate.code;
        gate_json = gate.json;
    } else {
        crate::console::err_line(
            "flow: docs-review did not succeed; implementation-gate not started",
        );
    }
    if args.format == Format::Json {
        crate::report::output::json(&json!({
            "status": if code == exit::OK { "succeeded" } else { "failed" },
            "docs_review": review.json,
            "implementation_gate": gate_json,
        }));
    }
    Ok(code)
}
