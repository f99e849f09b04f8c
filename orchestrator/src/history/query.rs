//! Reading the index: runs by filter, one run with its stages, and the samples `stats` needs.
//! Every query is one indexed SELECT; aggregation happens in `stats.rs`.

use std::time::SystemTime;

use rusqlite::types::Value as Sql;
use rusqlite::Row;
use serde::Serialize;

use super::errors::HistoryError;
use super::stats::{RunSample, StageSample};
use super::store::Index;

/// Which runs `runs list` (and `runs stats`) look at.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this task.
    pub task: Option<String>,
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs started at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// At most this many runs, newest first.
    pub limit: Option<u32>,
}

impl RunFilter {
    /// ` WHERE ...` over table alias `r`, and its parameters.
    fn clause(&self) -> (String, Vec<Sql>) {
        let mut parts = Vec::new();
        let mut values = Vec::new();
        for (col, v) in [
            ("r.task_id", &self.task),
            ("r.pipeline_id", &self.pipeline),
            ("r.status", &self.status),
        ] {
            if let Some(v) = v {
                parts.push(format!("{col} = ?"));
                values.push(Sql::Text(v.clone()));
            }
        }
        if let Some(ms) = self.since_ms {
            parts.push("r.started_ms >= ?".to_owned());
            values.push(Sql::Integer(ms));
        }
        let clause = if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        };
        (clause, values)
    }
}

/// One run as the index knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// Run id.
    pub run_id: String,
    /// Task id.
    pub task_id: String,
    /// Pipeline id.
    pub pipeline_id: String,
    /// Pipeline title.
    pub pipeline_title: String,
    /// Run status.
    pub status: String,
    /// Why it has that status.
    pub status_detail: Option<String>,
    /// Start time.
    pub started_at: String,
    /// End time.
    pub completed_at: Option<String>,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// Parent run (sub-pipeline runs).
    pub parent_run_id: Option<String>,
    /// Summary line(s).
    pub summary: Option<String>,
    /// Manifest path (repo-relative).
    pub manifest: String,
    /// Stages in the run.
    pub stages_total: i64,
    /// Stages that succeeded.
    pub stages_passed: i64,
    /// Stages that failed.
    pub stages_failed: i64,
    /// Stages skipped or never run.
    pub stages_skipped: i64,
}

const RUN_COLUMNS: &str = "r.run_id, r.task_id, r.pipeline_id, r.pipeline_title, r.status, \
    r.status_detail, r.started_at, r.completed_at, r.duration_ms, r.parent_run_id, r.summary, \
    r.manifest, r.stages_total, r.stages_passed, r.stages_failed, r.stages_skipped";

impl RunRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: r.get(0)?,
            task_id: r.get(1)?,
            pipeline_id: r.get(2)?,
            pipeline_title: r.get(3)?,
            status: r.get(4)?,
            status_detail: r.get(5)?,
            started_at: r.get(6)?,
            completed_at: r.get(7)?,
            duration_ms: r.get(8)?,
            parent_run_id: r.get(9)?,
            summary: r.get(10)?,
            manifest: r.get(11)?,
            stages_total: r.get(12)?,
            stages_passed: r.get(13)?,
            stages_failed: r.get(14)?,
            stages_skipped: r.get(15)?,
        })
    }
}

/// One stage of a run as the index knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRow {
    /// 1-based stage index.
    pub index: i64,
    /// Stage id.
    pub stage_id: String,
    /// Stage title.
    pub title: String,
    /// `command` or `subpipeline`.
    pub kind: String,
    /// The resolved command.
    pub command: Option<String>,
    /// Stage status.
    pub status: String,
    /// Exit code of the final attempt.
    pub exit_code: Option<i64>,
    /// Attempts made.
    pub attempts: Option<i64>,
    /// How the final attempt ended.
    pub outcome: Option<String>,
    /// Signal that ended it.
    pub signal: Option<String>,
    /// Start time.
    pub started_at: Option<String>,
    /// End time.
    pub completed_at: Option<String>,
    /// Wall time, all attempts included.
    pub duration_ms: Option<i64>,
    /// Summary.
    pub summary: Option<String>,
    /// Stage log.
    pub log_path: Option<String>,
    /// Error file.
    pub error_file: Option<String>,
    /// Child run of a sub-pipeline stage.
    pub sub_run_id: Option<String>,
}

impl StageRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<StageRow> {
        Ok(StageRow {
            index: r.get(0)?,
            stage_id: r.get(1)?,
            title: r.get(2)?,
            kind: r.get(3)?,
            command: r.get(4)?,
            status: r.get(5)?,
            exit_code: r.get(6)?,
            attempts: r.get(7)?,
            outcome: r.get(8)?,
            signal: r.get(9)?,
            started_at: r.get(10)?,
            completed_at: r.get(11)?,
            duration_ms: r.get(12)?,
            summary: r.get(13)?,
            log_path: r.get(14)?,
            error_file: r.get(15)?,
            sub_run_id: r.get(16)?,
        })
    }
}

impl Index {
    /// Runs matching `filter`, newest first.
    pub fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>, HistoryError> {
        let (clause, mut values) = filter.clause();
        let mut sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs r{clause} ORDER BY r.started_ms DESC, r.run_id DESC"
        );
        if let Some(limit) = filter.limit {
            sql.push_str(" LIMIT ?");
            values.push(Sql::Integer(i64::from(limit)));
        }
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(values), RunRow::from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One run and its stages in stage order, if the index has it.
    pub fn run(&self, run_id: &str) -> Result<Option<(RunRow, Vec<StageRow>)>, HistoryError> {
        let run = {
            let mut st = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id = ?1"
                ))
                .map_err(|e| self.err(e))?;
            let mut rows = st
                .query_map([run_id], RunRow::from_row)
                .map_err(|e| self.err(e))?;
            match rows.next() {
                None => return Ok(None),
                Some(r) => r.map_err(|e| self.err(e))?,
            }
        };
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT idx, stage_id, title, kind, command, status, exit_code, attempts, outcome,
                    signal, started_at, completed_at, duration_ms, summary, log_path, error_file,
                    sub_run_id
                 FROM stages WHERE run_id = ?1 ORDER BY idx",
            )
            .map_err(|e| self.err(e))?;
        let stages = st
            .query_map([run_id], StageRow::from_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        Ok(Some((run, stages)))
    }

    /// Pipeline, status and wall time of every run matching `filter` (its limit ignored).
    pub fn run_samples(&self, filter: &RunFilter) -> Result<Vec<RunSample>, HistoryError> {
        let (clause, values) = filter.clause();
        let sql = format!("SELECT r.pipeline_id, r.status, r.duration_ms FROM runs r{clause}");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok(RunSample {
                    pipeline_id: r.get(0)?,
                    status: r.get(1)?,
                    duration_ms: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// One sample per stage of every run matching `filter` (its limit ignored).
    pub fn stage_samples(&self, filter: &RunFilter) -> Result<Vec<StageSample>, HistoryError> {
        let (clause, values) = filter.clause();
        let sql = format!(
            "SELECT r.pipeline_id, s.stage_id, s.idx, s.status, s.duration_ms, s.attempts
             FROM stages s JOIN runs r ON r.run_id = s.run_id{clause}"
        );
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok(StageSample {
                    pipeline_id: r.get(0)?,
                    stage_id: r.get(1)?,
                    index: r.get(2)?,
                    status: r.get(3)?,
                    duration_ms: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// `--since`: an RFC 3339 time (`2026-11-01T00:00:00Z`), a date (`2026-11-01`, UTC midnight)
/// or a duration back from `now` (`7d`, `12h`, `90m`). Returns ms since the epoch.
pub fn parse_since(text: &str, now: SystemTime) -> Result<i64, String> {
    let text = text.trim();
    let at = crate::time::parse(text)
        .or_else(|| crate::time::parse(&format!("{text}T00:00:00")))
        .or_else(|| {
            humantime::parse_duration(text)
                .ok()
                .and_then(|d| now.checked_sub(d))
        })
        .ok_or_else(|| {
            format!("--since `{text}`: expected an RFC 3339 time, a date or a duration like `7d`")
        })?;
    Ok(at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn since_accepts_times_dates_and_durations() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 86_400);
        assert_eq!(parse_since("7d", now), Ok(3 * 86_400_000));
        assert_eq!(
            parse_since("12h", now),
            Ok(10 * 86_400_000 - 12 * 3_600_000)
        );
        assert_eq!(parse_since("1970-01-02T00:00:00Z", now), Ok(86_400_000));
        assert_eq!(parse_since("1970-01-02T00:00:00.5Z", now), Ok(86_400_500));
        assert_eq!(parse_since("1970-01-03", now), Ok(2 * 86_400_000));
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("", now).is_err());
    }

    #[test]
    fn filters_become_one_where_clause() {
        let (c, v) = RunFilter::default().clause();
        assert_eq!((c.as_str(), v.len()), ("", 0));
        let f = RunFilter {
            pipeline: Some("p".into()),
            status: Some("failed".into()),
            since_ms: Some(5),
            ..RunFilter::default()
        };
        let (c, v) = f.clause();
        assert_eq!(
            c,
            " WHERE r.pipeline_id = ? AND r.status = ? AND r.started_ms >= ?"
        );
        assert_eq!(v.len(), 3);
    }
}
