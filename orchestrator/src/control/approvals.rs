//! Approval decisions: the file a decision is dropped in, and the one function every way of
//! deciding goes through ([`decide`]: the `approve` / `reject` verbs, the dashboard).
//!
//! The runner stays the only writer of the manifest. A decision is a create-only file in the
//! run directory, `approvals/NN-<stage>.<request>.json`, published whole and durably
//! (`write_create_only`): the first decision for a request wins, every later one learns it
//! lost. The runner picks the file up, checks it against the request it recorded and records
//! the decision. Nothing here depends on a runner being alive: a decision made while the run
//! has none is honoured by the next `resume`, which waits for the same request.
//!
//! `control.json` is not used for this: it holds one `latest_action`, so a later cancel or
//! pause could overwrite a decision before the runner saw it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared_manifest::atomic::{create_dir_all_durable, write_create_only, Created};
use shared_manifest::schema::{ApprovalRecord, ApprovalState, CommandRecord, StageKind};
use shared_manifest::CommandStatus;

/// Where the decisions go, in the run directory.
pub const DIR: &str = "approvals";
/// The `source` of a decision taken by the runner at the deadline.
pub const TIMEOUT_SOURCE: &str = "timeout";

/// A decision as it is dropped into the run directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DecisionFile {
    /// The run.
    pub run_id: String,
    /// The stage id.
    pub stage_id: String,
    /// The stage's 1-based index.
    pub stage_index: usize,
    /// The request it answers.
    pub request: u32,
    /// `approved` or `rejected`.
    pub decision: ApprovalState,
    /// Who decided.
    pub actor: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// `cli`, `dashboard`, `timeout`, ...
    pub source: String,
    /// When.
    pub timestamp: String,
}

/// The decision file of request `request` of stage `index`/`stage_id` in `run_dir`.
pub fn decision_path(run_dir: &Path, index: usize, stage_id: &str, request: u32) -> PathBuf {
    run_dir.join(DIR).join(format!(
        "{index:02}-{}.{request}.json",
        crate::record::layout::slug(stage_id)
    ))
}

/// Publishes `file` at `path` unless a decision is there already.
pub fn write(
    path: &Path,
    file: &DecisionFile,
) -> Result<Created, shared_manifest::AtomicWriteError> {
    if let Some(dir) = path.parent() {
        create_dir_all_durable(dir).map_err(|source| shared_manifest::AtomicWriteError {
            path: dir.to_owned(),
            step: shared_manifest::errors::WriteStep::Create,
            source,
        })?;
    }
    let mut text = serde_json::to_string_pretty(file).expect("a decision serializes");
    text.push('\n');
    write_create_only(path, text.as_bytes())
}

/// The decision at `path`: `Ok(None)` when there is none yet, `Err` (with the reason) when the
/// file is not a decision.
pub fn read(path: &Path) -> Result<Option<DecisionFile>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("not a decision: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read it: {e}")),
    }
}

/// True when `actor` may decide under `record` (no list: anyone).
pub fn allowed(record: &ApprovalRecord, actor: &str) -> bool {
    record
        .approvers
        .as_ref()
        .is_none_or(|list| list.iter().any(|a| a == actor))
}

/// Checks a decision against the request the runner recorded; the reason when it does not
/// fit. The runner's own timeout decision is exempt from `approvers` (`now_past_deadline`
/// says whether the deadline has passed, which is what makes it legitimate).
pub fn check(
    file: &DecisionFile,
    (stage_id, stage_index): (&str, usize),
    record: &ApprovalRecord,
    now_past_deadline: bool,
) -> Result<(), String> {
    if file.stage_id != stage_id
        || file.stage_index != stage_index
        || file.request != record.request
    {
        return Err(format!(
            "it answers stage `{}` #{} request {}, not `{stage_id}` #{stage_index} request {}",
            file.stage_id, file.stage_index, file.request, record.request
        ));
    }
    if file.decision == ApprovalState::Waiting {
        return Err("`waiting` is not a decision".into());
    }
    if file.actor.trim().is_empty() {
        return Err("it names no actor".into());
    }
    if file.source == TIMEOUT_SOURCE {
        return if now_past_deadline {
            Ok(())
        } else {
            Err("a timeout decision before the deadline".into())
        };
    }
    if !allowed(record, &file.actor) {
        return Err(format!("`{}` is not an approver", file.actor));
    }
    Ok(())
}

/// A decision someone wants to make.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// The stage id; `None`: the one approval waiting (an error when there are several).
    pub stage: Option<&'a str>,
    /// `Approved` or `Rejected`.
    pub decision: ApprovalState,
    /// Who decides.
    pub actor: &'a str,
    /// Why.
    pub reason: Option<&'a str>,
    /// Where it comes from: `cli`, `dashboard`, ...
    pub source: &'a str,
}

/// A decision that was published.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What was written.
    pub file: DecisionFile,
    /// Where.
    pub path: PathBuf,
    /// Whether a runner holds the run now (otherwise the next `resume` applies the decision).
    pub runner_alive: bool,
}

/// Why a decision was not recorded. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The run's manifest cannot be read.
    #[error("cannot read the manifest `{}`", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::history::ManifestError,
    },
    /// `--actor` is blank.
    #[error("the actor must not be empty")]
    EmptyActor,
    /// No such stage in the run.
    #[error("run `{run}` has no stage `{stage}` (stages: {known})")]
    UnknownStage {
        /// Run id.
        run: String,
        /// The stage asked for.
        stage: String,
        /// The run's stages.
        known: String,
    },
    /// The stage is not an approval stage.
    #[error("stage `{stage}` of run `{run}` is not an approval stage")]
    NotAnApproval {
        /// Run id.
        run: String,
        /// Stage id.
        stage: String,
    },
    /// The approval stage is not waiting for a decision.
    #[error("stage `{stage}` of run `{run}` is not waiting for a decision ({state})")]
    NotWaiting {
        /// Run id.
        run: String,
        /// Stage id.
        stage: String,
        /// Where it stands instead.
        state: String,
    },
    /// No stage was named and no approval waits.
    #[error("run `{run}` has no approval waiting for a decision")]
    NoneWaiting {
        /// Run id.
        run: String,
    },
    /// No stage was named and several approvals wait.
    #[error("run `{run}` has several approvals waiting ({stages}); name one with --stage")]
    Ambiguous {
        /// Run id.
        run: String,
        /// The waiting stages.
        stages: String,
    },
    /// The actor is not in the stage's `approvers`.
    #[error("`{actor}` may not decide stage `{stage}` (approvers: {approvers})")]
    NotAllowed {
        /// Who tried.
        actor: String,
        /// Stage id.
        stage: String,
        /// Who may.
        approvers: String,
    },
    /// Another decision for the same request was first.
    #[error("stage `{stage}` was already decided: {decision} by `{actor}` ({source_name})")]
    AlreadyDecided {
        /// Stage id.
        stage: String,
        /// The earlier decision.
        decision: &'static str,
        /// Its actor.
        actor: String,
        /// Its source.
        source_name: String,
    },
    /// The decision file could not be written.
    #[error(transparent)]
    Write(#[from] shared_manifest::AtomicWriteError),
}

/// What kind of failure a [`DecisionError`] is, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad usage: exit 2.
    Usage,
    /// Run-state conflict: exit 3.
    Conflict,
    /// Storage: exit 4.
    Storage,
}

impl DecisionError {
    /// Usage (the request can never succeed as given), conflict (the run is not in a state to
    /// take it, or someone was first) or storage.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DecisionError::EmptyActor
            | DecisionError::UnknownStage { .. }
            | DecisionError::NotAnApproval { .. }
            | DecisionError::Ambiguous { .. }
            | DecisionError::NotAllowed { .. } => ErrorKind::Usage,
            DecisionError::Manifest { .. }
            | DecisionError::NotWaiting { .. }
            | DecisionError::NoneWaiting { .. }
            | DecisionError::AlreadyDecided { .. } => ErrorKind::Conflict,
            DecisionError::Write(_) => ErrorKind::Storage,
        }
    }
}

/// An undecided request: the stage waits for it (`running`), or waited for it when the run was
/// stopped (`failed` with the record still `waiting`; the next resume asks the same request).
fn undecided(c: &CommandRecord) -> bool {
    c.approval
        .as_ref()
        .is_some_and(|a| a.state == ApprovalState::Waiting)
        && matches!(c.status, CommandStatus::Running | CommandStatus::Failed)
}

/// Records a decision for the run whose manifest is at `manifest`: the one path for the CLI
/// verbs and the dashboard. Checks the stage and the actor against the request the runner
/// recorded, then publishes the decision file (first one wins). The runner, or the next
/// `resume`, records it in the manifest.
pub fn decide(manifest: &Path, req: DecisionRequest<'_>) -> Result<Decided, DecisionError> {
    let actor = req.actor.trim();
    if actor.is_empty() {
        return Err(DecisionError::EmptyActor);
    }
    let m = crate::history::read_manifest(manifest).map_err(|source| DecisionError::Manifest {
        path: manifest.to_owned(),
        source,
    })?;
    let run = m.run_id.clone();
    let stage =
        match req.stage {
            Some(id) => m.commands.iter().find(|c| c.id == id).ok_or_else(|| {
                DecisionError::UnknownStage {
                    run: run.clone(),
                    stage: id.to_owned(),
                    known: m
                        .commands
                        .iter()
                        .map(|c| format!("`{}`", c.id))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?,
            None => {
                let waiting: Vec<&CommandRecord> =
                    m.commands.iter().filter(|c| undecided(c)).collect();
                match waiting.as_slice() {
                    [one] => *one,
                    [] => return Err(DecisionError::NoneWaiting { run }),
                    many => {
                        return Err(DecisionError::Ambiguous {
                            run,
                            stages: many
                                .iter()
                                .map(|c| format!("`{}`", c.id))
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                }
            }
        };
    // An approval stage not reached yet has no record yet: it is the only command-kind stage
    // recorded without a command.
    let Some(record) = stage.approval.as_ref() else {
        let unreached_approval = stage.kind == StageKind::Command
            && stage.command.is_none()
            && stage.status == CommandStatus::Pending;
        return Err(if unreached_approval {
            DecisionError::NotWaiting {
                run,
                stage: stage.id.clone(),
                state: "not reached yet".into(),
            }
        } else {
            DecisionError::NotAnApproval {
                run,
                stage: stage.id.clone(),
            }
        });
    };
    if !undecided(stage) {
        let state = if record.state == ApprovalState::Waiting {
            format!(
                "{}; asked again when the run resumes",
                stage.status.as_str()
            )
        } else {
            format!(
                "{} by `{}`",
                record.state.as_str(),
                record.actor.as_deref().unwrap_or("?")
            )
        };
        return Err(DecisionError::NotWaiting {
            run,
            stage: stage.id.clone(),
            state,
        });
    }
    if !allowed(record, actor) {
        return Err(DecisionError::NotAllowed {
            actor: actor.to_owned(),
            stage: stage.id.clone(),
            approvers: record
                .approvers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let run_dir = manifest.parent().unwrap_or(Path::new("."));
    let path = decision_path(run_dir, stage.index, &stage.id, record.request);
    let file = DecisionFile {
        run_id: run,
        stage_id: stage.id.clone(),
        stage_index: stage.index,
        request: record.request,
        decision: req.decision,
        actor: actor.to_owned(),
        reason: req.reason.map(str::to_owned),
        source: req.source.to_owned(),
        timestamp: crate::time::now(),
    };
    match write(&path, &file)? {
        Created::Created => Ok(Decided {
            file,
            path,
            runner_alive: crate::control::activity::observe(manifest, &m).live,
        }),
        Created::Exists => {
            let earlier = read(&path).ok().flatten();
            Err(DecisionError::AlreadyDecided {
                stage: stage.id.clone(),
                decision: earlier.as_ref().map_or("decided", |e| e.decision.as_str()),
                actor: earlier
                    .as_ref()
                    .map_or_else(|| "?".into(), |e| e.actor.clone()),
                source_name: earlier.map_or_else(|| "?".into(), |e| e.source),
            })
        }
    }
}
