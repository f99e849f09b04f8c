//! Where each key of a manifest lives on disk, and the one way to read a manifest back.
//!
//! `manifest.json` must validate against the peer's published `schemas/manifest.json`, which
//! is closed (`additionalProperties: false` at the top level and per command). So in the
//! default layout ([`Extensions::Sidecar`]) `manifest.json` holds exactly the keys the peer's
//! schema defines ([`PEER_KEYS`], [`PEER_COMMAND_KEYS`]), and every other key — our extension
//! fields, and keys another tool wrote that the peer's schema does not define — lives in the
//! sidecar `manifest.ext.json` (described by our `schemas/manifest.ext.schema.json`):
//!
//! ```json
//! { "run_id": "…", "updated_at": "…", "schema_version": 1, "runner_pid": 42, …,
//!   "commands": [ { "index": 1, "id": "build", "attempts": 1, "outcome": "exited", … } ] }
//! ```
//!
//! `run_id` and `updated_at` (top level) and `index` and `id` (per command) repeat the main
//! file's values: they say which run, which write and which stage the extension keys belong
//! to. The persister writes the sidecar durably *before* the main file, in the same batch, so
//! a crash between the two leaves a sidecar ahead of the main file, never behind it (see
//! `persister.rs`). With [`Extensions::Inline`] everything is in `manifest.json` (our superset
//! schema `schemas/manifest.schema.json`), and a sidecar left from an earlier layout is removed.
//!
//! Readers never open the two files themselves: [`read_manifest`] (typed) and [`read_value`]
//! (JSON) return the merged view. An inline manifest is recognised by `schema_version` in the
//! main file; its sidecar, if one is left, is ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::errors::ReadError;
use crate::schema::Manifest;

/// File name of the sidecar, next to `manifest.json`.
pub const SIDECAR_FILE_NAME: &str = "manifest.ext.json";

/// Top-level keys of the peer's `schemas/manifest.json` (0.2.1), in its order. Checked against
/// the installed peer's schema by the end-to-end tests.
pub const PEER_KEYS: &[&str] = &[
    "version",
    "task_id",
    "task_slug",
    "run_id",
    "parent_run_id",
    "pipeline_id",
    "pipeline_title",
    "runner",
    "approval_policy",
    "status",
    "status_detail",
    "started_at",
    "completed_at",
    "updated_at",
    "heartbeat_at",
    "heartbeat_interval_seconds",
    "heartbeat_stale_after_seconds",
    "artifact_root",
    "compat_path",
    "log_path",
    "issue_provider",
    "issue_id",
    "issue_identifier",
    "issue_updated_at",
    "workspace_path",
    "provider_launch_source",
    "provider_control_host_task_id",
    "provider_control_host_run_id",
    "provider_linear_worker_tokens",
    "summary",
    "metrics_recorded",
    "resume_token",
    "resume_events",
    "approvals",
    "handles",
    "commands",
    "collab_tool_calls",
    "collab_tool_calls_max_events",
    "child_runs",
    "run_summary_path",
    "plan_target_id",
    "control_plane",
    "guardrails_required",
    "guardrails_required_source",
    "runtime_mode_requested",
    "runtime_mode",
    "runtime_provider",
    "runtime_fallback",
    "scheduler",
    "cloud_execution",
    "cloud_fallback",
    "privacy",
    "instructions_hash",
    "instructions_sources",
    "prompt_packs",
    "memory",
    "tfgrpo",
    "learning",
    "guardrail_status",
    "toolRuns",
    "design_artifacts",
    "design_artifacts_summary",
    "design_config_snapshot",
    "design_toolkit_artifacts",
    "design_toolkit_summary",
    "design_plan",
    "design_guardrail",
    "design_history",
    "design_style_profile",
    "design_metrics",
];

/// Per-command keys of the peer's schema, in its order.
pub const PEER_COMMAND_KEYS: &[&str] = &[
    "index",
    "id",
    "title",
    "command",
    "kind",
    "status",
    "started_at",
    "completed_at",
    "exit_code",
    "summary",
    "log_path",
    "error_file",
    "sub_run_id",
];

/// Sidecar keys that repeat the main file's values to join the two (top level).
const JOIN_KEYS: &[&str] = &["run_id", "updated_at"];
/// Sidecar keys that repeat the main file's values to join the two (per command).
const COMMAND_JOIN_KEYS: &[&str] = &["index", "id"];
/// A top-level key only we write, and always: its presence in `manifest.json` marks the
/// inline layout.
const INLINE_MARKER: &str = "schema_version";

/// Reads again (2 ms apart) while the sidecar is ahead of the main file, before taking the
/// pair as it is: about 40 ms, far more than a writer spends between its two renames.
const SKEW_RETRIES: u32 = 20;

/// Where a manifest's extension fields are written (config `manifestExtensions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extensions {
    /// In `manifest.ext.json`: `manifest.json` validates against the peer's schema as published.
    #[default]
    Sidecar,
    /// In `manifest.json` itself (one file; valid against our superset schema only).
    Inline,
}

impl Extensions {
    /// Parses the config value (`sidecar` | `inline`, case-insensitive, trimmed).
    pub fn parse(s: &str) -> Option<Extensions> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sidecar" => Some(Extensions::Sidecar),
            "inline" => Some(Extensions::Inline),
            _ => None,
        }
    }
}

/// The sidecar next to `manifest`.
pub fn sidecar_path(manifest: &Path) -> PathBuf {
    manifest.with_file_name(SIDECAR_FILE_NAME)
}

/// Splits the whole manifest (every key, as one JSON object) into `manifest.json` (the peer's
/// keys) and the sidecar (every other key, plus the join keys).
pub fn split(all: Value) -> (Value, Value) {
    let Value::Object(all) = all else {
        // A manifest always serializes to an object; anything else has nothing to split.
        return (all, Value::Object(Map::new()));
    };
    let mut main = Map::new();
    let mut ext = Map::new();
    for key in JOIN_KEYS {
        if let Some(v) = all.get(*key) {
            ext.insert((*key).to_owned(), v.clone());
        }
    }
    let mut ext_commands = Vec::new();
    for (k, v) in all {
        if k == "commands" {
            let Value::Array(commands) = v else {
                main.insert(k, v);
                continue;
            };
            let mut kept = Vec::with_capacity(commands.len());
            for c in commands {
                let (peer, extra) = split_command(c);
                kept.push(peer);
                ext_commands.push(extra);
            }
            main.insert(k, Value::Array(kept));
        } else if PEER_KEYS.contains(&k.as_str()) {
            main.insert(k, v);
        } else {
            ext.insert(k, v);
        }
    }
    ext.insert("commands".to_owned(), Value::Array(ext_commands));
    (Value::Object(main), Value::Object(ext))
}

fn split_command(c: Value) -> (Value, Value) {
    let Value::Object(c) = c else {
        return (c, Value::Object(Map::new()));
    };
    let mut peer = Map::new();
    let mut extra = Map::new();
    for key in COMMAND_JOIN_KEYS {
        if let Some(v) = c.get(*key) {
            extra.insert((*key).to_owned(), v.clone());
        }
    }
    for (k, v) in c {
        if PEER_COMMAND_KEYS.contains(&k.as_str()) {
            peer.insert(k, v);
        } else {
            extra.insert(k, v);
        }
    }
    (Value::Object(peer), Value::Object(extra))
}

/// The merged view: `main` with the sidecar's keys added (per command matched by `index` and
/// `id`). A key present in both keeps the main file's value. An inline `main` ignores `ext`.
pub fn merge(main: Value, ext: Option<Value>) -> Value {
    let Value::Object(mut main) = main else {
        return main;
    };
    let Some(Value::Object(ext)) = ext else {
        return Value::Object(main);
    };
    if main.contains_key(INLINE_MARKER) {
        return Value::Object(main);
    }
    for (k, v) in ext {
        if k != "commands" {
            main.entry(k).or_insert(v);
            continue;
        }
        let (Value::Array(extra), Some(Value::Array(commands))) = (v, main.get_mut("commands"))
        else {
            continue;
        };
        for e in extra {
            let Value::Object(e) = e else { continue };
            let target = commands.iter_mut().find(|c| {
                COMMAND_JOIN_KEYS
                    .iter()
                    .all(|j| e.get(*j).is_some() && c.get(*j) == e.get(*j))
            });
            let Some(Value::Object(target)) = target else {
                continue;
            };
            for (ck, cv) in e {
                target.entry(ck).or_insert(cv);
            }
        }
    }
    Value::Object(main)
}

/// Reads one JSON file; `Ok(None)` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Value>, ReadError> {
    // A FIFO or a device in a manifest's place must not block the reader or fill its memory.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(ReadError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReadError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ReadError::Parse {
            path: path.to_owned(),
            source,
        })
}

/// The merged view of the manifest at `path` (`manifest.json` and its sidecar) as JSON.
pub fn read_value(path: &Path) -> Result<Value, ReadError> {
    read_merged(path).map(|(v, _)| v)
}

/// The merged view and the layout it was found in.
fn read_merged(path: &Path) -> Result<(Value, Extensions), ReadError> {
    let mut tries = 0;
    loop {
        // The main file first: the writer renames the sidecar first, so the sidecar read
        // next is at least as new as this main file.
        let main = read_json(path)?.ok_or_else(|| ReadError::Io {
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        if main.get(INLINE_MARKER).is_some() {
            return Ok((main, Extensions::Inline));
        }
        let side = sidecar_path(path);
        let ext = read_json(&side)?;
        if let Some(found) = ext.as_ref().and_then(|e| e.get("run_id")) {
            // A sidecar copied from another run must not dress this one in its fields.
            if Some(found) != main.get("run_id") {
                return Err(ReadError::Foreign {
                    path: side,
                    run_id: found.as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        // A sidecar ahead of the main file: a live writer is between its two renames (a
        // moment), or one died there. Read again so a live run shows one consistent write;
        // after a few tries take what is there (ahead is harmless, see the module doc).
        let ahead = ext
            .as_ref()
            .is_some_and(|e| e.get("updated_at") != main.get("updated_at"));
        if ahead && tries < SKEW_RETRIES {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
            continue;
        }
        return Ok((merge(main, ext), Extensions::Sidecar));
    }
}

/// The manifest at `path`, merged with its sidecar: what every reader of a run uses. Its
/// [`Manifest::extensions`] is the layout it was found in.
pub fn read_manifest(path: &Path) -> Result<Manifest, ReadError> {
    let (merged, layout) = read_merged(path)?;
    let mut m: Manifest = serde_json::from_value(merged).map_err(|source| ReadError::Parse {
        path: path.to_owned(),
        source,
    })?;
    m.extensions = layout;
    Ok(m)
}

#[cfg(test)]
pub(crate) mod tests;
