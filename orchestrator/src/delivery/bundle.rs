//! A `bundle` delivery: the evidence directory of a run that passed its gates, in its run
//! directory (`evidence/`):
//!
//! - `manifest.json` (and `manifest.ext.json` when the run has one): the run's record as it
//!   was when the bundle was made (the live one goes on changing: deliveries, metrics);
//! - `git.json`: `HEAD`, branch, tree digest, dirty or clean (`gitstate`);
//! - `tools.json`: the runner's version, `sh` and `git`;
//! - `config.json`: the config file's SHA-256 and the resolved pipeline with its SHA-256;
//! - `digests.json`: the SHA-256 of every file above and of every log and error file of the
//!   run and of its child runs (sub-pipelines, verify runs), loop feedback included;
//! - `statement.intoto.json`: an in-toto v1 Statement whose subject is the tree digest and
//!   whose predicate is the run's outcome with its stages, binding `digests.json` by its
//!   SHA-256.
//!
//! `codex-orchestrator verify-evidence RUN_DIR` recomputes all of it (`evidence.rs`).

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared_manifest::schema::Manifest;

use crate::delivery::errors::DeliveryError;
use crate::delivery::evidence::{self, Digests, DIGESTS, STATEMENT};
use crate::gitstate::files::{hex, sha256_file};
use crate::gitstate::{Snapshot, SnapshotOptions};
use crate::record::layout::RunDir;

/// What the bundle is made from.
pub struct BundleInput<'a> {
    /// The run.
    pub dir: &'a RunDir,
    /// Its record, as made durable just before.
    pub manifest: &'a Manifest,
    /// The config file.
    pub config_path: &'a Path,
    /// The resolved pipeline (`plan --format json`).
    pub resolved: Value,
    /// What snapshots leave out.
    pub opts: &'a SnapshotOptions,
}

/// Where the bundle went.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// The evidence directory.
    pub dir: std::path::PathBuf,
    /// The statement.
    pub statement: std::path::PathBuf,
    /// The tree digest (the statement's subject).
    pub tree: String,
}

fn write_json(path: &Path, v: &Value) -> Result<(), DeliveryError> {
    let mut bytes =
        serde_json::to_vec_pretty(v).map_err(|e| DeliveryError::Other(e.to_string()))?;
    bytes.push(b'\n');
    shared_manifest::atomic::write_atomic(path, &bytes)
        .map_err(|e| DeliveryError::Other(format!("cannot write `{}`: {e}", path.display())))
}

/// Writes the evidence bundle of a run (blocking: it hashes every log).
pub fn write(input: &BundleInput<'_>) -> Result<Bundled, DeliveryError> {
    let run_dir = &input.dir.dir;
    let out = input.dir.evidence_dir();
    shared_manifest::atomic::create_dir_all_durable(&out)
        .map_err(|e| DeliveryError::io(&out, e))?;
    // The record as it is now, byte for byte.
    let mut files: Vec<String> = Vec::new();
    for name in ["manifest.json", "manifest.ext.json"] {
        let from = run_dir.join(name);
        match std::fs::read(&from) {
            Ok(bytes) => {
                shared_manifest::atomic::write_atomic(&out.join(name), &bytes).map_err(|e| {
                    DeliveryError::Other(format!("cannot copy `{}`: {e}", from.display()))
                })?;
                files.push(format!("{}/{name}", evidence::DIR));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DeliveryError::io(&from, e)),
        }
    }
    let snap = crate::gitstate::take(&input.dir.roots().repo, input.opts)?;
    write_json(&out.join("git.json"), &git_json(&snap))?;
    write_json(&out.join("tools.json"), &tools())?;
    let config = config_json(input.config_path, &input.resolved);
    write_json(&out.join("config.json"), &config)?;
    for name in ["git.json", "tools.json", "config.json"] {
        files.push(format!("{}/{name}", evidence::DIR));
    }
    // Every log and error file of the run and of its child runs; loop feedback too.
    files.push("runner.ndjson".to_owned());
    for sub in ["commands", "errors", "loop"] {
        files.extend(evidence::files_below(run_dir, sub, ""));
    }
    for child in child_dirs(input.dir, input.manifest) {
        let Some(name) = child.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let prefix = format!("../{name}/");
        for f in ["manifest.json", "manifest.ext.json", "runner.ndjson"] {
            if child.join(f).is_file() {
                files.push(format!("{prefix}{f}"));
            }
        }
        for sub in ["commands", "errors", "loop"] {
            files.extend(evidence::files_below(&child, sub, &prefix));
        }
    }
    files.sort();
    files.dedup();
    let mut digests = Vec::with_capacity(files.len());
    for f in &files {
        let d = evidence::digest(run_dir, f).map_err(|e| DeliveryError::io(&run_dir.join(f), e))?;
        digests.push(d);
    }
    let listing = Digests {
        algorithm: "sha256".into(),
        files: digests,
    };
    let listing_value =
        serde_json::to_value(&listing).map_err(|e| DeliveryError::Other(e.to_string()))?;
    let digests_path = out.join(DIGESTS);
    write_json(&digests_path, &listing_value)?;
    let digests_sha =
        sha256_file(&digests_path).map_err(|e| DeliveryError::io(&digests_path, e))?;
    let statement = statement(input.manifest, &snap, &config, &digests_sha);
    let statement_path = out.join(STATEMENT);
    write_json(&statement_path, &statement)?;
    Ok(Bundled {
        dir: out,
        statement: statement_path,
        tree: snap.tree,
    })
}

/// The directories of the run's child runs, and theirs, as their manifests say.
fn child_dirs(dir: &RunDir, m: &Manifest) -> Vec<std::path::PathBuf> {
    let repo = &dir.roots().repo;
    let mut out = Vec::new();
    let mut todo: Vec<(String, usize)> = m
        .child_runs
        .iter()
        .map(|c| (c.manifest.clone(), 1))
        .collect();
    while let Some((rel, depth)) = todo.pop() {
        let path = repo.join(&rel);
        let Some(child_dir) = path.parent().map(Path::to_path_buf) else {
            continue;
        };
        if out.contains(&child_dir) {
            continue;
        }
        if depth < 8 {
            if let Ok(cm) = crate::history::read_manifest(&path) {
                todo.extend(
                    cm.child_runs
                        .iter()
                        .map(|c| (c.manifest.clone(), depth + 1)),
                );
            }
        }
        out.push(child_dir);
    }
    out
}

fn git_json(s: &Snapshot) -> Value {
    json!({
        "kind": s.kind.as_str(),
        "head": s.head,
        "branch": s.branch,
        "tree": s.tree,
        "head_tree": s.head_tree,
        "dirty": s.dirty(),
    })
}

/// The versions of what ran the run.
fn tools() -> Value {
    let first_line = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
    };
    let sh = std::fs::canonicalize("/bin/sh")
        .map(|p| p.to_string_lossy().into_owned())
        .ok();
    json!({
        "runner": { "name": "codex-orchestrator", "version": env!("CARGO_PKG_VERSION") },
        // dash (a common /bin/sh) has no --version: then only where it resolves to.
        "sh": { "path": sh, "version": first_line("/bin/sh", &["--version"]) },
        "git": { "version": crate::gitstate::git::version() },
    })
}

fn config_json(path: &Path, resolved: &Value) -> Value {
    let canonical = serde_json::to_vec(resolved).unwrap_or_default();
    json!({
        "path": path.to_string_lossy(),
        "sha256": sha256_file(path).ok(),
        "resolved_sha256": hex(&Sha256::digest(&canonical)),
        "resolved": resolved,
    })
}

/// The in-toto v1 Statement: subject the tree, predicate the run's outcome and stages.
fn statement(m: &Manifest, snap: &Snapshot, config: &Value, digests_sha: &str) -> Value {
    let digest = match snap.tree.strip_prefix("sha256:") {
        Some(hexed) => json!({ "sha256": hexed }),
        None => json!({ "gitTree": snap.tree }),
    };
    let name = snap.root.file_name().map_or_else(
        || "work-tree".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let stages: Vec<Value> = m
        .commands
        .iter()
        .map(|c| {
            let mut v = json!({
                "index": c.index, "id": c.id, "title": c.title, "kind": c.kind,
                "status": c.status, "exit_code": c.exit_code, "outcome": c.outcome,
                "summary": c.summary, "sub_run_id": c.sub_run_id,
            });
            if let Some(l) = &c.loop_record {
                v["loop"] = json!({
                    "result": l.result, "iterations": l.iteration, "limit": l.limit,
                    "verify_runs": l.iterations.iter().filter_map(|i| i.verify.as_ref()).map(|v| json!({
                        "run_id": v.run_id, "verdict": v.verdict,
                    })).collect::<Vec<_>>(),
                });
            }
            v
        })
        .collect();
    json!({
        "_type": evidence::STATEMENT_TYPE,
        "subject": [{ "name": name, "digest": digest }],
        "predicateType": evidence::PREDICATE_TYPE,
        "predicate": {
            "run": {
                "run_id": m.run_id, "task_id": m.task_id, "pipeline_id": m.pipeline_id,
                "status": m.status, "status_detail": m.status_detail,
                "started_at": m.started_at, "completed_at": m.completed_at, "summary": m.summary,
            },
            "stages": stages,
            "child_runs": m.child_runs,
            "git": git_json(snap),
            "config": { "path": config["path"], "sha256": config["sha256"],
                        "resolved_sha256": config["resolved_sha256"] },
            "evidence": { "digests": format!("{}/{DIGESTS}", evidence::DIR), "digests_sha256": digests_sha },
        },
    })
}
