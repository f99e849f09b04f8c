//! `POST /api/runs/{id}/approvals`: the dashboard's Approve / Reject buttons. A decision goes
//! through `control::approvals::decide`, the path of the `approve` / `reject` verbs, with
//! source `dashboard`: checked against the request the runner recorded, then dropped as a
//! create-only decision file (first decision wins) that the runner records. The server never
//! writes the manifest. The access rules are the ones every request passes (`security.rs`:
//! token, loopback `Host`, same-origin POST).
//!
//! Errors follow the verbs' exit codes: a request that can never succeed as given (unknown
//! stage, not an approval, an actor not in `approvers`, a blank actor) is 400 (exit 2); a run
//! not in a state to take it (not waiting, decided already) is 409 (exit 3); a decision that
//! cannot be written is 500 (exit 4). Nothing is written in any of these cases.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use shared_manifest::schema::ApprovalState;

use crate::control::approvals::{self, DecisionError, DecisionRequest, ErrorKind};
use crate::serve::error::{blocking, ApiError};
use crate::serve::paths;
use crate::serve::state::AppState;

/// The `source` recorded for a decision made here.
const SOURCE: &str = "dashboard";

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideBody {
    /// The stage; absent: the one approval waiting.
    #[serde(default)]
    stage: Option<String>,
    /// `approve` or `reject`.
    decision: String,
    /// Who decides.
    actor: String,
    /// Why.
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/runs/{id}/approvals` with `{stage?, decision, actor, reason?}`. 202 with the
/// decision when it was published; the runner (or the next `resume`) records it.
pub(crate) async fn decide(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    body: Result<Json<DecideBody>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let decision = match body.decision.as_str() {
        "approve" => ApprovalState::Approved,
        "reject" => ApprovalState::Rejected,
        other => {
            return Err(ApiError::bad_request(format!(
                "`decision` must be `approve` or `reject`, not `{other}`"
            )))
        }
    };
    blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        let stage = body
            .stage
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let reason = body
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let decided = approvals::decide(
            &run.manifest,
            DecisionRequest {
                stage,
                decision,
                actor: &body.actor,
                reason,
                source: SOURCE,
            },
        )
        .map_err(api_error)?;
        let f = decided.file;
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "run_id": f.run_id,
                "stage_id": f.stage_id,
                "stage_index": f.stage_index,
                "request": f.request,
                "decision": f.decision.as_str(),
                "actor": f.actor,
                "reason": f.reason,
                "source": f.source,
                "timestamp": f.timestamp,
                "decision_file": state.roots.rel(&decided.path),
                "runner_alive": decided.runner_alive,
            })),
        ))
    })
    .await
}

/// The verbs' exit codes as HTTP statuses: usage 400, conflict 409, storage 500.
fn api_error(e: DecisionError) -> ApiError {
    let message = match &e {
        DecisionError::Manifest { source, .. } => format!("{e}: {}", source.one_line()),
        _ => e.to_string(),
    };
    let status = match e.kind() {
        ErrorKind::Usage => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Storage => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, message)
}
