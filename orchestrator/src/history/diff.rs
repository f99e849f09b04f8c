//! `runs diff <a> <b>`: the two runs' stages side by side, matched by stage id, with what
//! changed marked. Durations are shown but never count as a change: they always differ.

use serde::Serialize;

use super::query::StageRow;

/// One side of a stage comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The resolved command.
    pub command: Option<String>,
    /// Stage status.
    pub status: String,
    /// Exit code of the final attempt.
    pub exit_code: Option<i64>,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// Attempts made.
    pub attempts: Option<i64>,
}

/// One stage in either run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageDiff {
    /// Stage id.
    pub stage_id: String,
    /// The stage in run a (none when only b has it).
    pub a: Option<Side>,
    /// The stage in run b (none when only a has it).
    pub b: Option<Side>,
    /// What differs: `stage` (only one run has it), `command`, `status`, `exit_code`.
    pub changed: Vec<&'static str>,
}

impl StageDiff {
    /// True when anything but the duration differs.
    pub fn differs(&self) -> bool {
        !self.changed.is_empty()
    }
}

fn side(s: &StageRow) -> Side {
    Side {
        command: s.command.clone(),
        status: s.status.clone(),
        exit_code: s.exit_code,
        duration_ms: s.duration_ms,
        attempts: s.attempts,
    }
}

/// Stages of `a` in order, then those only `b` has, in `b`'s order.
pub fn diff(a: &[StageRow], b: &[StageRow]) -> Vec<StageDiff> {
    let mut out: Vec<StageDiff> = a
        .iter()
        .map(|sa| {
            let sb = b.iter().find(|s| s.stage_id == sa.stage_id);
            let mut changed = Vec::new();
            match sb {
                None => changed.push("stage"),
                Some(sb) => {
                    if sa.command != sb.command {
                        changed.push("command");
                    }
                    if sa.status != sb.status {
                        changed.push("status");
                    }
                    if sa.exit_code != sb.exit_code {
                        changed.push("exit_code");
                    }
                }
            }
            StageDiff {
                stage_id: sa.stage_id.clone(),
                a: Some(side(sa)),
                b: sb.map(side),
                changed,
            }
        })
        .collect();
    out.extend(
        b.iter()
            .filter(|sb| !a.iter().any(|sa| sa.stage_id == sb.stage_id))
            .map(|sb| StageDiff {
                stage_id: sb.stage_id.clone(),
                a: None,
                b: Some(side(sb)),
                changed: vec!["stage"],
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, cmd: &str, status: &str, exit: Option<i64>, d: i64) -> StageRow {
        StageRow {
            index: 0,
            stage_id: id.into(),
            title: id.into(),
            kind: "command".into(),
            command: Some(cmd.into()),
            status: status.into(),
            exit_code: exit,
            attempts: Some(1),
            outcome: None,
            signal: None,
            started_at: None,
            completed_at: None,
            duration_ms: Some(d),
            summary: None,
            log_path: None,
            error_file: None,
            sub_run_id: None,
        }
    }

    #[test]
    fn stages_are_matched_by_id_and_changes_marked() {
        let a = [
            row("build", "make", "succeeded", Some(0), 10),
            row("test", "make test", "succeeded", Some(0), 20),
            row("old", "true", "succeeded", Some(0), 1),
        ];
        let b = [
            row("test", "make test", "failed", Some(2), 25),
            row("build", "make -j4", "succeeded", Some(0), 99),
            row("new", "true", "skipped", None, 0),
        ];
        let d = diff(&a, &b);
        let summary: Vec<(&str, Vec<&str>)> = d
            .iter()
            .map(|s| (s.stage_id.as_str(), s.changed.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("build", vec!["command"]),
                ("test", vec!["status", "exit_code"]),
                ("old", vec!["stage"]),
                ("new", vec!["stage"]),
            ]
        );
        assert_eq!(d[0].b.as_ref().and_then(|s| s.duration_ms), Some(99));
        assert!(d[2].b.is_none() && d[3].a.is_none());
    }

    #[test]
    fn durations_alone_are_no_difference() {
        let a = [row("x", "true", "succeeded", Some(0), 1)];
        let b = [row("x", "true", "succeeded", Some(0), 1000)];
        assert!(!diff(&a, &b)[0].differs());
    }
}
