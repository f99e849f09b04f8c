//! The peer's `control.json` protocol, the part a pipeline runner honours: a `cancel` action
//! written into the run directory by another tool stops the run between stages, like the
//! peer's `ControlWatcher` does. Only requests newer than the run's start count: a resumed run
//! is not cancelled again by the request that cancelled it before.
//!
//! `{"run_id": "...", "control_seq": 3, "latest_action": {"action": "cancel", ...}}`

use std::path::Path;

/// The `control_seq` in `path`, 0 when the file is missing or unreadable (the peer's rule).
pub fn current_seq(path: &Path) -> u64 {
    read(path).map_or(0, |c| c.0)
}

/// The `control_seq` of a `cancel` action in `path` newer than `since`, if there is one.
pub fn cancel_requested(path: &Path, since: u64) -> Option<u64> {
    read(path).and_then(|(seq, action)| {
        (seq > since && action.as_deref() == Some("cancel")).then_some(seq)
    })
}

/// `(control_seq, latest_action.action)`; `None` when there is no file or it is not JSON (a
/// writer that is not atomic may be half-way: the next look sees the whole file).
fn read(path: &Path) -> Option<(u64, Option<String>)> {
    let bytes = std::fs::read(path).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let seq = v["control_seq"].as_u64().unwrap_or(0);
    let action = v["latest_action"]["action"].as_str().map(str::to_owned);
    Some((seq, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_cancel_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("control.json");
        assert_eq!(current_seq(&p), 0);
        assert_eq!(cancel_requested(&p, 0), None, "no file");
        std::fs::write(
            &p,
            r#"{"control_seq":2,"latest_action":{"action":"pause"}}"#,
        )
        .expect("w");
        assert_eq!(current_seq(&p), 2);
        assert_eq!(cancel_requested(&p, 0), None, "not a cancel");
        std::fs::write(
            &p,
            r#"{"control_seq":3,"latest_action":{"action":"cancel"}}"#,
        )
        .expect("w");
        assert_eq!(cancel_requested(&p, 2), Some(3));
        assert_eq!(
            cancel_requested(&p, 3),
            None,
            "seen before this run started"
        );
        std::fs::write(&p, r#"{"control_seq":4,"latest_"#).expect("w");
        assert_eq!(
            cancel_requested(&p, 3),
            None,
            "a torn file is not a request yet"
        );
    }
}
