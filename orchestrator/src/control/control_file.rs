//! The peer's `control.json` protocol. Another tool (the peer's control server, our `pause` /
//! `unpause` verbs, a test) writes the run's latest requested action; the runner reads it
//! when a stage ends and every second while stages run, like the peer's `ControlWatcher`:
//!
//! `{"run_id": "...", "control_seq": 3, "latest_action": {"action": "pause", "requested_by":
//! "ops", "reason": null, "request_id": null, "intent_id": null, ...}}`
//!
//! Actions: `pause` (no new stage starts), `resume` (stages start again), `cancel` and `fail`.
//! Only requests newer than the run's start count (`control_seq` above the one the runner
//! found when it took the run): a resumed run is not paused or cancelled again by the request
//! that stopped it before. A request carrying a `confirm_nonce` is refused, as the peer does.

use std::fs::OpenOptions;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

/// An action of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// No new stage starts; running stages go on.
    Pause,
    /// A paused run goes on (the protocol's `resume`; our verb is `unpause`).
    Resume,
    /// Stop the run, recorded `cancelled`.
    Cancel,
    /// Stop the run, recorded `failed`.
    Fail,
}

impl Action {
    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Cancel => "cancel",
            Action::Fail => "fail",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "cancel" => Some(Action::Cancel),
            "fail" => Some(Action::Fail),
            _ => None,
        }
    }
}

/// The latest request in a `control.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its `control_seq`.
    pub seq: u64,
    /// The action; `None` for an action this runner does not know (the sequence still moves).
    pub action: Option<Action>,
    /// `requested_by`.
    pub requested_by: Option<String>,
    /// `reason`.
    pub reason: Option<String>,
    /// `request_id`.
    pub request_id: Option<String>,
    /// `intent_id`.
    pub intent_id: Option<String>,
    /// The request carries a `confirm_nonce` (refused: the peer's rule).
    pub confirm_nonce: bool,
}

impl Request {
    /// ` (intent_id=…, request_id=…)` as the peer appends it to its summary lines, or nothing.
    pub fn trace(&self) -> String {
        let parts: Vec<String> = [
            ("intent_id", &self.intent_id),
            ("request_id", &self.request_id),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            let v = v.as_deref()?.trim();
            (!v.is_empty()).then(|| format!("{k}={}", encode_trace(v)))
        })
        .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }

    /// The request's fields as event payload keys (the peer's names).
    pub fn payload(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "intent_id": self.intent_id,
            "control_seq": self.seq,
            "requested_by": self.requested_by,
            "requested_reason": self.reason,
        })
    }
}

/// The peer's `encodeTraceId`: at most 160 characters, then `encodeURIComponent`.
fn encode_trace(v: &str) -> String {
    let bounded: String = v.chars().take(160).collect();
    let mut out = String::with_capacity(bounded.len());
    for b in bounded.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `control_seq` in `path`, 0 when the file is missing or unreadable (the peer's rule).
pub fn current_seq(path: &Path) -> u64 {
    read(path).map_or(0, |r| r.seq)
}

/// The latest request in `path` when it is newer than `since`.
pub fn newer_than(path: &Path, since: u64) -> Option<Request> {
    read(path).filter(|r| r.seq > since)
}

/// The latest request; `None` when there is no file or it is not JSON (a writer that is not
/// atomic may be half-way: the next look sees the whole file).
fn read(path: &Path) -> Option<Request> {
    let bytes = std::fs::read(path).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let latest = &v["latest_action"];
    let text = |k: &str| latest[k].as_str().map(str::to_owned);
    Some(Request {
        seq: v["control_seq"].as_u64().unwrap_or(0),
        action: latest["action"].as_str().and_then(Action::parse),
        requested_by: text("requested_by"),
        reason: text("reason"),
        request_id: text("request_id"),
        intent_id: text("intent_id"),
        confirm_nonce: latest.get("confirm_nonce").is_some()
            || latest.get("confirmNonce").is_some(),
    })
}

/// Why a request could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The lock or the file could not be used.
    #[error("cannot update `{}`", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The atomic write failed.
    #[error(transparent)]
    Write(#[from] shared_manifest::errors::AtomicWriteError),
}

/// Writes a request into the `control.json` at `path` as the peer's control server does: the
/// sequence goes up by one, `latest_action` is replaced, every other key is kept. Writers are
/// serialised by an `flock` on a sibling `.control.lock`, so two requests at once get two
/// sequence numbers; the file is replaced atomically, so the runner never reads half of it.
/// Returns the new `control_seq`.
pub fn request(
    path: &Path,
    run_id: &str,
    action: Action,
    requested_by: &str,
    reason: Option<&str>,
) -> Result<u64, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let lock_path = path.with_file_name(".control.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    // Held for the read-modify-write; released when dropped.
    let _lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io(std::io::Error::from(errno)))?;
    let mut doc = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            json!({
                "run_id": run_id, "control_seq": 0, "latest_action": null,
                "feature_toggles": null, "transport_mutation": null,
            })
        });
    let seq = doc["control_seq"].as_u64().unwrap_or(0) + 1;
    doc["control_seq"] = json!(seq);
    doc["latest_action"] = json!({
        "request_id": null,
        "intent_id": null,
        "requested_by": requested_by,
        "requested_at": crate::time::now(),
        "action": action.as_str(),
        "reason": reason,
        "transport": null,
        "actor_id": null,
        "actor_source": null,
        "transport_principal": null,
    });
    let mut text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
    text.push('\n');
    shared_manifest::atomic::write_atomic(path, text.as_bytes())?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_request_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("control.json");
        assert_eq!(current_seq(&p), 0);
        assert_eq!(newer_than(&p, 0), None, "no file");
        std::fs::write(
            &p,
            r#"{"control_seq":2,"latest_action":{"action":"pause"}}"#,
        )
        .expect("w");
        assert_eq!(current_seq(&p), 2);
        assert_eq!(
            newer_than(&p, 0).and_then(|r| r.action),
            Some(Action::Pause)
        );
        assert_eq!(newer_than(&p, 2), None, "seen before this run started");
        std::fs::write(&p, r#"{"control_seq":4,"latest_"#).expect("w");
        assert_eq!(newer_than(&p, 2), None, "a torn file is not a request yet");
        std::fs::write(
            &p,
            r#"{"control_seq":5,"latest_action":{"action":"reboot"}}"#,
        )
        .expect("w");
        let unknown = newer_than(&p, 2).expect("a newer request");
        assert_eq!((unknown.seq, unknown.action), (5, None));
    }

    #[test]
    fn the_peers_fields_and_trace_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("control.json");
        std::fs::write(
            &p,
            r#"{"run_id":"r","control_seq":1,"latest_action":{"request_id":"req 1","intent_id":"intent-1","requested_by":"tester","requested_at":"2026-01-01T00:00:00.000Z","action":"fail","reason":"because-fail","transport":null}}"#,
        )
        .expect("w");
        let r = newer_than(&p, 0).expect("request");
        assert_eq!(r.action, Some(Action::Fail));
        assert_eq!(r.requested_by.as_deref(), Some("tester"));
        assert_eq!(r.reason.as_deref(), Some("because-fail"));
        assert_eq!(r.trace(), " (intent_id=intent-1, request_id=req%201)");
        assert!(!r.confirm_nonce);
        std::fs::write(
            &p,
            r#"{"control_seq":2,"latest_action":{"action":"cancel","confirm_nonce":"x"}}"#,
        )
        .expect("w");
        assert!(newer_than(&p, 1).expect("request").confirm_nonce);
    }

    #[test]
    fn requests_count_up_and_keep_other_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("control.json");
        std::fs::write(
            &p,
            r#"{"run_id":"r","control_seq":4,"latest_action":null,"feature_toggles":{"x":1}}"#,
        )
        .expect("w");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| request(&p, "r", Action::Pause, "ops", None).expect("request"));
            }
        });
        assert_eq!(current_seq(&p), 12, "eight requests, eight numbers");
        let r = request(&p, "r", Action::Resume, "ops", Some("go on")).expect("request");
        assert_eq!(r, 13);
        let v: Value = serde_json::from_slice(&std::fs::read(&p).expect("r")).expect("json");
        assert_eq!(v["feature_toggles"], json!({"x": 1}));
        assert_eq!(v["latest_action"]["action"], "resume");
        assert_eq!(v["latest_action"]["reason"], "go on");
        assert_eq!(v["latest_action"]["requested_by"], "ops");
        let fresh = dir.path().join("new.json");
        assert_eq!(
            request(&fresh, "r2", Action::Fail, "ci", None).expect("new"),
            1
        );
        let v: Value = serde_json::from_slice(&std::fs::read(&fresh).expect("r")).expect("json");
        assert_eq!(v["run_id"], "r2");
    }
}
