//! Delivering a run that succeeded: each of the pipeline's deliveries in order, every step
//! recorded (durably) in the run's `delivery[]` through the delivery table
//! (`shared_manifest::delivery_state`), events in `events.jsonl`, a progress line each. A
//! failing delivery is recorded with its error and the next one still runs; the run's status
//! stays what its stages made it. A resume retries what failed or was cut short (every step
//! is idempotent: the same commit, the same branch, the pull request found again).

use std::sync::Arc;

use serde_json::json;
use shared_manifest::schema::Manifest;
use shared_manifest::work_record::{CiRecord, DeliveryRecord};
use shared_manifest::{
    DeliveryEvent, DeliveryPatch, DeliveryPhase, DeliveryUpdate, ManifestUpdate, Persister,
};

use crate::config::delivery::{expand, Delivery, GitDelivery, GithubDelivery};
use crate::config::Config;
use crate::delivery::errors::DeliveryError;
use crate::delivery::github::{Checks, PrRequest};
use crate::delivery::{bundle, git, github};
use crate::errors::AppError;
use crate::gitstate::SnapshotOptions;
use crate::plan::Plan;
use crate::record::layout::RunDir;
use crate::report::events::EventLog;
use crate::report::progress::Reporter;

/// Everything a delivery needs of its run.
pub struct Deliverer<'a> {
    /// The run.
    pub dir: &'a RunDir,
    /// Its task.
    pub task: &'a str,
    /// The one writer of its manifest.
    pub persister: &'a Persister<Manifest>,
    /// Its event stream.
    pub events: &'a EventLog,
    /// Progress lines.
    pub reporter: &'a Reporter,
    /// The config.
    pub config: &'a Arc<Config>,
    /// The run's plan (its pipeline, its variables).
    pub plan: &'a Plan,
}

impl Deliverer<'_> {
    fn opts(&self) -> SnapshotOptions {
        let roots = self.dir.roots();
        SnapshotOptions {
            exclude: vec![roots.runs.clone(), roots.out.clone()],
            env: vec![(crate::env_vars::RUN_ID.to_owned(), self.dir.run_id.clone())],
            temp_dir: None,
        }
    }

    fn emit(&self, event: &str, payload: serde_json::Value) -> Result<(), AppError> {
        self.events
            .emit(event, payload)
            .map_err(|e| AppError::storage(self.events.path(), e))
    }

    /// Records a step, durably: a resume starts from it.
    async fn step(
        &self,
        position: usize,
        event: DeliveryEvent,
        patch: DeliveryPatch,
    ) -> Result<(), AppError> {
        self.persister
            .send(ManifestUpdate::Delivery(Box::new(DeliveryUpdate::Step {
                position,
                at: crate::time::now(),
                event,
                patch: Box::new(patch),
            })))
            .await?;
        self.persister.flush().await?;
        Ok(())
    }

    async fn record(&self, position: usize) -> Result<DeliveryRecord, AppError> {
        self.persister
            .inspect(move |m| m.delivery.get(position).cloned())
            .await?
            .ok_or_else(|| AppError::Internal(format!("no delivery at position {position}")))
    }

    /// Expands a template with the run's names and variables.
    fn expand(&self, template: &str) -> Result<String, DeliveryError> {
        let fixed = [
            ("TASK", self.task),
            ("RUN_ID", self.dir.run_id.as_str()),
            ("PIPELINE", self.plan.pipeline.id.as_str()),
        ];
        expand(template, &fixed, &self.plan.vars)
            .map_err(|e| DeliveryError::Other(format!("template `{template}`: {e}")))
    }
}

/// Runs the plan's deliveries (or records them skipped, with `skip` as the reason); returns
/// the phase each ended in.
pub async fn deliver(
    d: &Deliverer<'_>,
    skip: Option<&str>,
) -> Result<Vec<DeliveryPhase>, AppError> {
    let deliveries = &d.plan.pipeline.delivery;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    d.persister
        .send(ManifestUpdate::Delivery(Box::new(
            DeliveryUpdate::Planned {
                kinds: deliveries.iter().map(|x| x.kind().to_owned()).collect(),
            },
        )))
        .await?;
    let total = deliveries.len();
    for (pos, delivery) in deliveries.iter().enumerate() {
        let rec = d.record(pos).await?;
        match rec.phase {
            DeliveryPhase::Delivered | DeliveryPhase::NoChange | DeliveryPhase::Skipped => continue,
            DeliveryPhase::Pending => {}
            // Failed, or cut short by a crash: again from the start.
            _ => {
                d.step(pos, DeliveryEvent::Retry, DeliveryPatch::default())
                    .await?
            }
        }
        if let Some(reason) = skip {
            let patch = DeliveryPatch {
                error: Some(reason.to_owned()),
                ..DeliveryPatch::default()
            };
            d.step(pos, DeliveryEvent::Skip, patch).await?;
            continue;
        }
        let kind = delivery.kind();
        d.emit(
            "delivery_started",
            json!({ "position": pos + 1, "kind": kind }),
        )?;
        let outcome = match delivery {
            Delivery::Bundle => run_bundle(d, pos).await,
            Delivery::Git(g) => run_git(d, pos, g, None).await,
            Delivery::Github(g) => run_git(d, pos, &g.git, Some(g)).await,
        };
        if let Err(e) = outcome? {
            let patch = DeliveryPatch {
                error: Some(e.one_line()),
                ..DeliveryPatch::default()
            };
            d.step(pos, DeliveryEvent::Error, patch).await?;
        }
        let rec = d.record(pos).await?;
        let what = rec
            .url
            .clone()
            .or_else(|| rec.branch.clone().map(|b| format!("branch {b}")))
            .or_else(|| rec.evidence_dir.clone())
            .or_else(|| rec.error.clone())
            .unwrap_or_default();
        d.emit(
            if rec.phase == DeliveryPhase::Failed {
                "delivery_failed"
            } else {
                "delivery_completed"
            },
            json!({
                "position": pos + 1, "kind": kind, "status": rec.status, "error": rec.error,
                "url": rec.url, "number": rec.number, "branch": rec.branch, "commit": rec.commit,
                "evidence_dir": rec.evidence_dir, "ci": rec.ci,
            }),
        )?;
        d.reporter.note(&format!(
            "delivery {}/{total} ({kind}): {} — {what}",
            pos + 1,
            rec.status
        ));
    }
    let phases = d
        .persister
        .inspect(|m| m.delivery.iter().map(|x| x.phase).collect())
        .await?;
    Ok(phases)
}

/// A step that failed for delivery reasons (recorded) or for the run's own (storage: `Err`).
type Stepped = Result<Result<(), DeliveryError>, AppError>;

async fn run_bundle(d: &Deliverer<'_>, pos: usize) -> Stepped {
    d.step(pos, DeliveryEvent::Bundle, DeliveryPatch::default())
        .await?;
    let manifest = d.persister.inspect(Manifest::clone).await?;
    let resolved = {
        let mut v = d.plan.to_json(d.config);
        // Where the config was read from is not part of what it says.
        v["pipeline"]["source"] = serde_json::Value::Null;
        v
    };
    let (dir, config_path, opts) = (d.dir.clone(), d.config.path.clone(), d.opts());
    let made = tokio::task::spawn_blocking(move || {
        bundle::write(&bundle::BundleInput {
            dir: &dir,
            manifest: &manifest,
            config_path: &config_path,
            resolved,
            opts: &opts,
        })
    })
    .await
    .map_err(|e| AppError::Internal(format!("the bundle task failed: {e}")))?;
    let made = match made {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let patch = DeliveryPatch {
        evidence_dir: Some(d.dir.rel(&made.dir)),
        statement: Some(d.dir.rel(&made.statement)),
        tree: Some(made.tree),
        ..DeliveryPatch::default()
    };
    d.step(pos, DeliveryEvent::Bundled, patch).await?;
    Ok(Ok(()))
}

async fn run_git(
    d: &Deliverer<'_>,
    pos: usize,
    g: &GitDelivery,
    hub: Option<&GithubDelivery>,
) -> Stepped {
    d.step(pos, DeliveryEvent::Commit, DeliveryPatch::default())
        .await?;
    let (branch, message) = match (d.expand(&g.branch), d.expand(&g.message)) {
        (Ok(b), Ok(m)) => (b, m),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    let repo = d.dir.roots().repo.clone();
    if let Err(e) = git::check_branch(&repo, &branch) {
        return Ok(Err(e));
    }
    // The run's end dates the commit: a retry makes the same commit again.
    let ended = d
        .persister
        .inspect(|m| m.completed_at.clone())
        .await?
        .and_then(|t| crate::time::parse(&t))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |t| t.as_secs());
    let opts = d.opts();
    let (repo2, opts2, message2) = (repo.clone(), opts.clone(), message.clone());
    let committed =
        tokio::task::spawn_blocking(move || git::commit(&repo2, &opts2, &message2, ended))
            .await
            .map_err(|e| AppError::Internal(format!("the commit task failed: {e}")))?;
    let committed = match committed {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mut patch = DeliveryPatch {
        tree: Some(committed.tree.clone()),
        parent: committed.parent.clone(),
        remote: Some(g.remote.clone()),
        branch: Some(branch.clone()),
        ..DeliveryPatch::default()
    };
    let Some(commit) = committed.commit else {
        patch.pushed = Some(false);
        d.step(pos, DeliveryEvent::NoChange, patch).await?;
        return Ok(Ok(()));
    };
    patch.commit = Some(commit.clone());
    d.step(pos, DeliveryEvent::Push, patch).await?;
    let (repo2, remote, branch2) = (repo.clone(), g.remote.clone(), branch.clone());
    let pushed =
        tokio::task::spawn_blocking(move || git::push(&repo2, &opts, &remote, &commit, &branch2))
            .await
            .map_err(|e| AppError::Internal(format!("the push task failed: {e}")))?;
    if let Err(e) = pushed {
        return Ok(Err(e));
    }
    let pushed = DeliveryPatch {
        pushed: Some(true),
        ..DeliveryPatch::default()
    };
    let Some(hub) = hub else {
        d.step(pos, DeliveryEvent::Pushed, pushed).await?;
        return Ok(Ok(()));
    };
    d.step(pos, DeliveryEvent::OpenPr, pushed).await?;
    pull_request(d, pos, hub, &repo, &branch, &message).await
}

async fn pull_request(
    d: &Deliverer<'_>,
    pos: usize,
    hub: &GithubDelivery,
    repo: &std::path::Path,
    branch: &str,
    message: &str,
) -> Stepped {
    let title = match &hub.title {
        Some(t) => match d.expand(t) {
            Ok(t) => t,
            Err(e) => return Ok(Err(e)),
        },
        None => message.lines().next().unwrap_or(message).to_owned(),
    };
    let body = match &hub.body {
        Some(b) => match d.expand(b) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        },
        None => default_body(&d.persister.inspect(Manifest::clone).await?),
    };
    let req = PrRequest {
        branch: branch.to_owned(),
        base: hub.base.clone(),
        title,
        body,
        draft: hub.draft,
    };
    let pr = match github::open(repo, &req).await {
        Ok(pr) => pr,
        Err(e) => return Ok(Err(e)),
    };
    let opened = DeliveryPatch {
        url: Some(pr.url.clone()),
        number: pr.number,
        base: hub.base.clone(),
        draft: Some(hub.draft),
        ..DeliveryPatch::default()
    };
    if !hub.wait_for_ci {
        d.step(pos, DeliveryEvent::PrOpened, opened).await?;
        return Ok(Ok(()));
    }
    d.step(pos, DeliveryEvent::WaitForCi, opened).await?;
    let started = std::time::Instant::now();
    let (checks, said) =
        match github::wait_for_checks(repo, &pr.url, hub.ci_timeout, hub.checks_grace).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
    let event = match checks {
        Checks::Passed => DeliveryEvent::CiPassed,
        Checks::None => DeliveryEvent::CiNotConfigured,
        Checks::Failed => DeliveryEvent::CiFailed,
        Checks::TimedOut => DeliveryEvent::CiTimedOut,
    };
    let error = match checks {
        Checks::Failed => Some("a check of the pull request failed".to_owned()),
        Checks::TimedOut => Some(format!(
            "the checks did not finish within {}ms",
            crate::time::millis(hub.ci_timeout)
        )),
        _ => None,
    };
    let patch = DeliveryPatch {
        error,
        ci: Some(CiRecord {
            status: checks.as_str().to_owned(),
            waited_ms: crate::time::millis(started.elapsed()),
            summary: (!said.is_empty()).then_some(said),
        }),
        ..DeliveryPatch::default()
    };
    d.step(pos, event, patch).await?;
    Ok(Ok(()))
}

/// The pull request's body when the config gives none: the run and its loops.
fn default_body(m: &Manifest) -> String {
    let mut body = format!(
        "Run `{}` of pipeline `{}` (task `{}`) {}.\n",
        m.run_id,
        m.pipeline_id,
        m.task_id,
        m.status.as_str()
    );
    if let Some(s) = &m.summary {
        body.push_str(&format!("\n{s}\n"));
    }
    for c in &m.commands {
        let Some(l) = &c.loop_record else { continue };
        body.push_str(&format!("\nLoop `{}`: {}\n", c.id, l.progress()));
        for it in &l.iterations {
            let build = it
                .build
                .as_ref()
                .map_or("not recorded".to_owned(), |b| b.summary.clone());
            let verify = it.verify.as_ref().map_or("-".to_owned(), |v| {
                format!("{} ({})", v.verdict.as_deref().unwrap_or("?"), v.run_id)
            });
            body.push_str(&format!(
                "- iteration {}: build: {build}; verify: {verify}\n",
                it.iteration
            ));
        }
    }
    body.push_str(&format!(
        "\nDelivered by codex-orchestrator {}.\n",
        env!("CARGO_PKG_VERSION")
    ));
    body
}
