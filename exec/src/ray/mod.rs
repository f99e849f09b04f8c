//! The Ray Jobs backend: a command stage's attempt runs as a job on a Ray cluster (one laptop,
//! a cluster, or KubeRay: the same HTTP API), with the same log events and the same record as
//! a local process group.
//!
//! Why plain HTTP/JSON from Rust: Ray's own clients are Python (the runner has no Python at run
//! time) and the crates.io Ray clients are toys or empty placeholders. The Jobs API is small
//! (`api.rs`): `reqwest` (no default features: it shares `hyper` with the rest of the tokio
//! stack, and without TLS nothing links OpenSSL or builds aws-lc), `tokio-tungstenite` for the
//! log tail (a WebSocket), `zip` + `ignore` for the working-directory package. TLS (`https://`,
//! `wss://` addresses) is the cargo feature `ray-tls` (rustls): a Ray dashboard is plain http
//! inside its cluster, and most builds should not carry a TLS stack for it.
//!
//! An attempt (`start` here, `wait` in `follow.rs`):
//! 1. its id is deterministic, `<run-id>--<stage-id>--<attempt>` sanitised to what Ray accepts,
//!    so when the head already knows it (a crashed runner submitted it) the runner attaches;
//! 2. otherwise: check that some alive node has the requested resources (Ray would leave an
//!    infeasible job PENDING for 15 minutes), build the package (`package.rs`), upload it if
//!    the head does not have it, and submit the job with the wrapper `co_entry.py` as its
//!    entrypoint and the stage's environment in `runtime_env.env_vars`;
//! 3. the wrapper runs the command in its own session on the node, enforces the timeout,
//!    kills the whole tree at the end, and frames stdout and stderr into records
//!    (`records.rs`) that survive Ray's text-only, merged, replayed logs byte for byte.

mod api;
mod follow;
mod package;
pub mod records;
mod verdict;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::emit::uuid_v4;
use crate::errors::ExecError;
use crate::executor::{Attempt, BoxFuture, Executor, Started};
use crate::ndjson::{LogEvent, StageLog};
use crate::outcome::{ExecResult, Outcome, RemoteInfo};
use crate::spec::{CancelRequest, ExecSpec};

use api::{ApiError, Client, JobDetails, SubmitRequest};

/// Ray's limit on a submission id is ~240 bytes; ours stay well below.
const MAX_ID_LEN: usize = 128;
/// Ray SIGKILLs a stopped job's tree `RAY_JOB_STOP_WAIT_TIME_S` (3 s) after its SIGTERM: the
/// wrapper's grace after a stop must end before that.
const MAX_STOP_GRACE: Duration = Duration::from_millis(2500);
/// Longest command (base64) passed on the entrypoint: one argument is capped at 128 KiB.
const MAX_COMMAND_B64: usize = 96 * 1024;

/// What one Ray stage asks for, decided by the orchestrator from its config.
#[derive(Debug, Clone, Default)]
pub struct RaySettings {
    /// The head's HTTP address (`http://127.0.0.1:8265`), validated.
    pub address: String,
    /// `entrypoint_num_cpus`.
    pub num_cpus: Option<f64>,
    /// `entrypoint_num_gpus`.
    pub num_gpus: Option<f64>,
    /// `entrypoint_resources` (custom resources).
    pub resources: BTreeMap<String, f64>,
    /// The directory shipped as the job's working directory (absolute); `None` ships only
    /// the wrapper.
    pub working_dir: Option<PathBuf>,
    /// gitignore-style patterns left out of the package.
    pub excludes: Vec<String>,
    /// Absolute directories never shipped (the runs directory).
    pub skip: Vec<PathBuf>,
    /// `<run-id>--<stage-id>`: the attempt's id is this plus `--<attempt>`, sanitised.
    pub submission_prefix: String,
    /// Job metadata for people looking at the Ray dashboard (run, stage, pipeline ids).
    pub metadata: BTreeMap<&'static str, String>,
}

/// Runs attempts as Ray jobs.
#[derive(Debug)]
pub struct RayExecutor {
    settings: RaySettings,
    client: Arc<Client>,
}

/// One HTTP client per head and run: the stages of a run share connections.
///
/// Not per process: a pooled connection is driven by a task on the tokio runtime that
/// opened it, and once that runtime ends every later request on it fails with "runtime
/// dropped the dispatch task". A run lives on one runtime; separate runtimes (tests, an
/// embedding program) get separate clients. Entries are weak so a finished run's client
/// goes away with its last executor.
fn client_for(address: &str, scope: &str) -> Result<Arc<Client>, ApiError> {
    type Pool = HashMap<(String, String), Weak<Client>>;
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = (address.to_owned(), scope.to_owned());
    if let Some(c) = pool.get(&key).and_then(Weak::upgrade) {
        return Ok(c);
    }
    pool.retain(|_, w| w.strong_count() > 0);
    let c = Arc::new(Client::new(address)?);
    pool.insert(key, Arc::downgrade(&c));
    Ok(c)
}

impl RayExecutor {
    /// An executor for one stage. Fails only when no HTTP client can be built (no TLS
    /// support compiled in for an `https://` address is caught earlier, by validation).
    pub fn new(settings: RaySettings) -> Result<RayExecutor, String> {
        let scope = settings
            .metadata
            .get("codex_orchestrator.run_id")
            .unwrap_or(&settings.submission_prefix);
        let client = client_for(&settings.address, scope).map_err(|e| e.to_string())?;
        Ok(RayExecutor { settings, client })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> String {
        format!("Ray unreachable at {}: {detail}", self.settings.address)
    }
}

/// Ray's submission id for `attempt`: `<prefix>--<attempt>` with every character outside
/// `[A-Za-z0-9._-]` replaced by `_` (others break Ray's URLs or leave zombie jobs), starting
/// with an alphanumeric, at most [`MAX_ID_LEN`] bytes (a long prefix is cut and a hash of the
/// whole keeps ids apart).
pub fn submission_id(prefix: &str, attempt: u32) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = if clean.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        clean
    } else {
        format!("co{clean}")
    };
    let suffix = format!("--{attempt}");
    if clean.len() + suffix.len() <= MAX_ID_LEN {
        return format!("{clean}{suffix}");
    }
    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(prefix.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let keep = MAX_ID_LEN - suffix.len() - hash.len() - 1;
    format!("{}-{hash}{suffix}", &clean[..keep])
}

/// Checks one `excludes` pattern (gitignore syntax), for config validation.
pub fn check_exclude(pattern: &str) -> Result<(), String> {
    let mut gi = ignore::gitignore::GitignoreBuilder::new("/");
    gi.add_line(None, pattern).map_err(|e| e.to_string())?;
    gi.build().map(drop).map_err(|e| e.to_string())
}

/// The nonce of a job we submitted, read back from its entrypoint (`--nonce <hex>`).
fn nonce_of(entrypoint: &str) -> Option<String> {
    let mut words = entrypoint.split_whitespace();
    words.find(|w| *w == "--nonce")?;
    words
        .next()
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_owned)
}

/// The job's command line: find a Python, run the wrapper with the stage's command.
fn entrypoint(nonce: &str, spec: &ExecSpec) -> Result<String, String> {
    // The wrapper runs shell text; argv mode reaches it quoted, which runs the same argv.
    let text = spec.shell_text();
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    if b64.len() > MAX_COMMAND_B64 {
        return Err(format!(
            "the command is {} bytes; a Ray stage's command can be at most {} bytes",
            text.len(),
            MAX_COMMAND_B64 / 4 * 3
        ));
    }
    let ms = |d: Duration| d.as_millis();
    let timeout = spec.timeout.map_or(0, ms);
    Ok(format!(
        "PY=$(command -v python3 || command -v python) || {{ echo 'codex-orchestrator: no python3 on this Ray node' >&2; exit 127; }}; \
         exec \"$PY\" {dir}/co_entry.py --nonce {nonce} --timeout-ms {timeout} --grace-ms {grace} \
         --stop-grace-ms {stop} --private-copy --cmd-b64 {b64}",
        dir = package::WRAPPER_DIR,
        grace = ms(spec.kill_grace),
        stop = ms(spec.kill_grace.min(MAX_STOP_GRACE)),
    ))
}

/// What the requested resources lack on every alive node, or `None` when one node has them.
fn infeasible(s: &RaySettings, nodes: &[api::Node]) -> Option<String> {
    let mut want: BTreeMap<String, f64> = s.resources.clone();
    if let Some(c) = s.num_cpus {
        want.insert("CPU".into(), c);
    }
    if let Some(g) = s.num_gpus {
        want.insert("GPU".into(), g);
    }
    want.retain(|_, v| *v > 0.0);
    if want.is_empty()
        || nodes.iter().any(|n| {
            want.iter()
                .all(|(k, v)| n.resources_total.get(k).is_some_and(|h| h >= v))
        })
    {
        return None;
    }
    let asked: Vec<String> = want.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let best: Vec<String> = want
        .keys()
        .map(|k| {
            let most = nodes
                .iter()
                .filter_map(|n| n.resources_total.get(k))
                .fold(0.0_f64, |a, b| a.max(*b));
            format!("{k}: {most}")
        })
        .collect();
    Some(format!(
        "no alive node of the Ray cluster has {{{}}} (the most any node has: {{{}}}; {} alive node(s))",
        asked.join(", "),
        best.join(", "),
        nodes.len()
    ))
}

impl Executor for RayExecutor {
    fn kind(&self) -> &'static str {
        "ray"
    }

    fn attempts_outlive_the_runner(&self) -> bool {
        true
    }

    fn start<'a>(
        &'a self,
        spec: &'a ExecSpec,
        log: &'a mut StageLog,
        cancel: &'a mut watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<Box<dyn Attempt>, ExecError>> {
        Box::pin(self.start_inner(spec, log, cancel))
    }
}

/// How starting ended when no job runs.
enum NotStarted {
    /// Refused or failed before the job existed (the summary's `Failed to start: ...`).
    Failed(String),
    /// The head could not be reached.
    Lost(String),
    /// Cancelled while preparing.
    Cancelled,
}

impl RayExecutor {
    async fn start_inner(
        &self,
        spec: &ExecSpec,
        log: &mut StageLog,
        cancel: &mut watch::Receiver<CancelRequest>,
    ) -> Result<Box<dyn Attempt>, ExecError> {
        let started = Instant::now();
        let id = submission_id(&self.settings.submission_prefix, spec.attempt);
        let correlation_id = uuid_v4();
        let mut remote = RemoteInfo {
            kind: "ray",
            address: self.settings.address.clone(),
            submission_id: id.clone(),
            node: None,
            host: None,
            working_dir_sha256: None,
            attached: false,
            status: None,
        };
        // Attach when the head already knows this attempt: only an earlier runner of this run
        // (which we now hold the lock of) can have submitted it.
        let known = self.client.job(&id).await;
        if let Ok(Some(job)) = &known {
            remote.attached = true;
            remote.node.clone_from(&job.driver_node_id);
        }
        begin_event(log, spec, &correlation_id, &remote)?;
        let prepared = match known {
            Err(e) => Err(NotStarted::Lost(self.unreachable(e))),
            Ok(Some(job)) => match nonce_of(&job.entrypoint) {
                Some(nonce) => {
                    remote.working_dir_sha256 = working_dir_of(&job);
                    Ok(nonce)
                }
                None => Err(NotStarted::Failed(format!(
                    "the Ray cluster at {} already has a job `{id}` that this runner did not submit",
                    self.settings.address
                ))),
            },
            Ok(None) => self.submit(spec, &id, &mut remote, cancel).await,
        };
        let nonce = match prepared {
            Ok(n) => n,
            Err(why) => {
                let outcome = match why {
                    NotStarted::Failed(message) => Outcome::SpawnFailed { message },
                    NotStarted::Lost(message) => Outcome::Lost { message },
                    NotStarted::Cancelled => Outcome::Cancelled {
                        signal: None,
                        code: None,
                    },
                };
                let result = follow::ended(outcome, Some(remote), started.elapsed());
                follow::end_event(log, &correlation_id, spec.attempt, &result, &[])?;
                return Ok(Box::new(follow::RayAttempt::Ended(Box::new(result))));
            }
        };
        log.write_runner_only(&LogEvent::ExecRemote {
            attempt: spec.attempt,
            kind: "ray".into(),
            address: remote.address.clone(),
            submission_id: id.clone(),
            attached: remote.attached,
        })?;
        Ok(Box::new(follow::RayAttempt::Running(Box::new(
            follow::Job {
                client: self.client.clone(),
                spec: spec.clone(),
                remote,
                nonce,
                correlation_id,
                started,
                exit: None,
            },
        ))))
    }

    /// Checks resources, ships the package and submits the job; returns its nonce.
    async fn submit(
        &self,
        spec: &ExecSpec,
        id: &str,
        remote: &mut RemoteInfo,
        cancel: &mut watch::Receiver<CancelRequest>,
    ) -> Result<String, NotStarted> {
        let s = &self.settings;
        let nonce: String = {
            let n = shared_manifest::entropy::random_u64();
            format!("{n:016x}")
        };
        let entry = entrypoint(&nonce, spec).map_err(NotStarted::Failed)?;
        let prepare = async {
            let nodes = self
                .client
                .nodes()
                .await
                .map_err(|e| self.lost_or_failed(e))?;
            if let Some(why) = infeasible(s, &nodes) {
                return Err(NotStarted::Failed(why));
            }
            let (dir, excludes, skip) = (s.working_dir.clone(), s.excludes.clone(), s.skip.clone());
            let pkg = tokio::task::spawn_blocking(move || {
                package::build(dir.as_deref(), &excludes, &skip)
            })
            .await
            .map_err(|e| NotStarted::Failed(format!("packaging the working directory: {e}")))?
            .map_err(|e| NotStarted::Failed(e.to_string()))?;
            if !self
                .client
                .package_exists(&pkg.name)
                .await
                .map_err(|e| self.lost_or_failed(e))?
            {
                tracing::debug!(package = %pkg.name, bytes = pkg.bytes.len(), files = pkg.files, "uploading the working directory to Ray");
                let (name, bytes) = (pkg.name.clone(), pkg.bytes.clone());
                self.client
                    .put_package(&name, bytes)
                    .await
                    .map_err(|e| self.lost_or_failed(e))?;
            }
            Ok(pkg)
        };
        // A stop asked for while preparing (an upload can take long) ends the attempt
        // before anything is submitted.
        let pkg = tokio::select! {
            pkg = prepare => pkg?,
            () = stop_requested(cancel) => return Err(NotStarted::Cancelled),
        };
        remote.working_dir_sha256 = Some(pkg.sha256.clone());
        let env: BTreeMap<&str, &str> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut metadata = s.metadata.clone();
        metadata.insert("codex_orchestrator.attempt", spec.attempt.to_string());
        // The whole digest, for a runner that attaches later (the package name has half).
        metadata.insert(DIGEST_KEY, pkg.sha256.clone());
        let req = SubmitRequest {
            entrypoint: &entry,
            submission_id: id,
            runtime_env: json!({
                "working_dir": format!("gcs://{}", pkg.name),
                "env_vars": env,
            }),
            metadata,
            entrypoint_num_cpus: s.num_cpus,
            entrypoint_num_gpus: s.num_gpus,
            entrypoint_resources: s.resources.clone(),
        };
        match self.client.submit(&req).await {
            Ok(()) => Ok(nonce),
            Err(e) => {
                // The POST may have reached the head even though its answer did not reach us
                // (a timeout): then the job is ours and runs.
                match self.client.job(id).await {
                    Ok(Some(job)) if nonce_of(&job.entrypoint).as_deref() == Some(&nonce) => {
                        Ok(nonce)
                    }
                    _ => Err(self.lost_or_failed(e)),
                }
            }
        }
    }

    fn lost_or_failed(&self, e: ApiError) -> NotStarted {
        if e.is_transport() {
            NotStarted::Lost(self.unreachable(e))
        } else {
            NotStarted::Failed(format!(
                "the Ray cluster at {} refused the job: {e}",
                self.settings.address
            ))
        }
    }
}

/// Resolves once `cancel` asks for a stop (never when every sender is gone).
async fn stop_requested(cancel: &mut watch::Receiver<CancelRequest>) {
    loop {
        if *cancel.borrow_and_update() != CancelRequest::None {
            return;
        }
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The job metadata key holding the sha256 of the job's working-dir package.
const DIGEST_KEY: &str = "codex_orchestrator.working_dir_sha256";

/// The sha256 of the package a job was submitted with: from the job's metadata, else (a job
/// submitted by an older runner) from its `gcs://co_<sha>.zip` name, which holds only the first
/// 32 hex digits.
fn working_dir_of(job: &JobDetails) -> Option<String> {
    if let Some(sha) = job.metadata.as_ref().and_then(|m| m.get(DIGEST_KEY)) {
        return Some(sha.clone());
    }
    let wd = job.runtime_env.as_ref()?.get("working_dir")?.as_str()?;
    let name = wd.strip_prefix("gcs://co_")?.strip_suffix(".zip")?;
    Some(name.to_owned())
}

/// `exec:begin` for a Ray attempt: the local event's fields plus `executor`.
fn begin_event(
    log: &mut StageLog,
    spec: &ExecSpec,
    correlation_id: &str,
    remote: &RemoteInfo,
) -> Result<(), ExecError> {
    let mut fields = obj(json!({
        "type": "exec:begin",
        "correlation_id": correlation_id,
        "attempt": spec.attempt,
        "command": spec.shown_command(),
        "args": spec.shown_args(),
        "cwd": spec.cwd.to_string_lossy(),
        "session_id": uuid_v4(),
        "sandbox_state": "unsandboxed",
        "persisted": false,
    }));
    fields.insert(
        "executor".into(),
        json!({
            "kind": remote.kind, "address": remote.address,
            "submission_id": remote.submission_id, "attached": remote.attached,
        }),
    );
    log.write_fields(fields)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Attempt for follow::RayAttempt {
    fn started(&self) -> Option<Started> {
        match self {
            follow::RayAttempt::Running(job) => Some(Started::Remote(job.remote.clone())),
            follow::RayAttempt::Ended(_) => None,
        }
    }

    fn wait<'a>(
        self: Box<Self>,
        log: &'a mut StageLog,
        cancel: watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
        Box::pin(async move {
            match *self {
                follow::RayAttempt::Ended(result) => Ok(*result),
                follow::RayAttempt::Running(job) => job.wait(log, cancel).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_ids_are_what_ray_accepts_and_stay_apart() {
        assert_eq!(
            submission_id("2026-12-01T20-17-46-803Z-0a1b2c3d--build", 2),
            "2026-12-01T20-17-46-803Z-0a1b2c3d--build--2"
        );
        assert_eq!(submission_id("r--a b/c?é", 1), "r--a_b_c__--1");
        assert_eq!(submission_id("_x", 1), "co_x--1");
        let long_a = format!("run--{}", "a".repeat(300));
        let long_b = format!("run--{}b", "a".repeat(300));
        let (a, b) = (submission_id(&long_a, 12), submission_id(&long_b, 12));
        assert!(a.len() <= MAX_ID_LEN && b.len() <= MAX_ID_LEN);
        assert_ne!(a, b);
        assert!(a.ends_with("--12"));
        let ok = |id: &str| {
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        assert!(ok(&a) && ok(&b));
    }

    #[test]
    fn the_entrypoint_carries_the_nonce_and_the_command_safely() {
        let mut spec = ExecSpec::new("echo 'it''s' \"$HOME\"; exit 3", "/w", 1);
        spec.timeout = Some(Duration::from_millis(1500));
        let e = entrypoint("00ff00ff00ff00ff", &spec).expect("short command");
        assert_eq!(nonce_of(&e).as_deref(), Some("00ff00ff00ff00ff"));
        assert!(e.contains("--timeout-ms 1500 --grace-ms 5000 --stop-grace-ms 2500"));
        let b64 = e.rsplit(' ').next().expect("last word");
        let cmd = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(cmd, spec.command.as_bytes());
        let long = ExecSpec::new("x".repeat(200_000), "/w", 1);
        assert!(entrypoint("n", &long).is_err());
    }

    #[test]
    fn infeasible_requests_are_named_before_ray_would_leave_them_pending() {
        let node = |cpu: f64| api::Node {
            state: "ALIVE".into(),
            resources_total: [("CPU".to_owned(), cpu)].into_iter().collect(),
        };
        let mut s = RaySettings {
            num_cpus: Some(4.0),
            ..RaySettings::default()
        };
        let why = infeasible(&s, &[node(2.0), node(3.0)]).expect("infeasible");
        assert_eq!(why, "no alive node of the Ray cluster has {CPU: 4} (the most any node has: {CPU: 3}; 2 alive node(s))");
        s.num_cpus = Some(2.0);
        assert_eq!(infeasible(&s, &[node(2.0)]), None);
        s.resources.insert("tpu".into(), 1.0);
        assert!(infeasible(&s, &[node(8.0)]).is_some());
        s.num_cpus = Some(0.0);
        s.resources.clear();
        assert_eq!(infeasible(&s, &[]), None, "nothing asked for");
    }
}
