//! Reading the index: runs by filter, one run with its stages, and the samples `stats` needs.
//! Every query is one indexed SELECT; aggregation happens in `stats.rs`.

use std::time::SystemTime;

use rusqlite::types::Value as Sql;
use rusqlite::Row;
use serde::Serialize;

use shared_manifest::schema::Manifest;

use super::errors::HistoryError;
use super::record;
use super::stats::{Aggregator, RunSample, StageSample};
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
    /// The row the index holds for run `m` once recorded (`manifest`: its repo-relative path),
    /// built without the index: for runs it does not know yet.
    pub fn from_manifest(m: &Manifest, manifest: &str) -> RunRow {
        let (total, passed, failed, skipped) = record::stage_counts(m);
        RunRow {
            run_id: m.run_id.clone(),
            task_id: m.task_id.clone(),
            pipeline_id: m.pipeline_id.clone(),
            pipeline_title: m.pipeline_title.clone(),
            status: m.status.as_str().to_owned(),
            status_detail: m.status_detail.clone(),
            started_at: m.started_at.clone(),
            completed_at: m.completed_at.clone(),
            duration_ms: record::span_ms(Some(&m.started_at), m.completed_at.as_deref()),
            parent_run_id: m.parent_run_id.clone(),
            summary: m.summary.clone(),
            manifest: manifest.to_owned(),
            stages_total: total,
            stages_passed: passed,
            stages_failed: failed,
            stages_skipped: skipped,
        }
    }

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

/// A pipeline's record for the dashboard: counts by status and its latest runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineTrend {
    /// Pipeline id.
    pub pipeline_id: String,
    /// Runs recorded.
    pub runs: u64,
    /// Of which succeeded.
    pub succeeded: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which cancelled.
    pub cancelled: u64,
    /// Succeeded over finished runs (none finished: `None`).
    pub pass_rate: Option<f64>,
    /// The latest runs, newest first.
    pub recent: Vec<RecentRun>,
}

/// One of a pipeline's latest runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentRun {
    /// Run id.
    pub run_id: String,
    /// Run status.
    pub status: String,
    /// Wall time.
    pub duration_ms: Option<i64>,
    /// Start time.
    pub started_at: String,
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

    /// Start time (ms since the epoch) and id of the runs matching `filter`, newest first (at
    /// most its limit): enough to place runs on a page without reading their rows.
    pub fn keys(&self, filter: &RunFilter) -> Result<Vec<(i64, String)>, HistoryError> {
        let (clause, mut values) = filter.clause();
        let mut sql = format!(
            "SELECT r.started_ms, r.run_id FROM runs r{clause} ORDER BY r.started_ms DESC, r.run_id DESC"
        );
        if let Some(limit) = filter.limit {
            sql.push_str(" LIMIT ?");
            values.push(Sql::Integer(i64::from(limit)));
        }
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(values), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The rows of the runs `ids` that the index has, in no particular order.
    pub fn rows(&self, ids: &[String]) -> Result<Vec<RunRow>, HistoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id IN ({marks})");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(ids), RunRow::from_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every run's id and status.
    pub fn statuses(&self) -> Result<Vec<(String, String)>, HistoryError> {
        let mut st = self
            .conn
            .prepare("SELECT run_id, status FROM runs")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Per pipeline: its runs by status, and its `last` most recent runs, newest first.
    pub fn pipeline_trends(&self, last: u32) -> Result<Vec<PipelineTrend>, HistoryError> {
        self.pipeline_trends_rows(last).map_err(|e| self.err(e))
    }

    fn pipeline_trends_rows(&self, last: u32) -> rusqlite::Result<Vec<PipelineTrend>> {
        let mut out: Vec<PipelineTrend> = Vec::new();
        let mut st = self.conn.prepare(
            "SELECT pipeline_id, status, count(*) FROM runs GROUP BY pipeline_id, status
             ORDER BY pipeline_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let pipeline: String = r.get(0)?;
            let status: String = r.get(1)?;
            let n = u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0);
            if out.last().is_none_or(|p| p.pipeline_id != pipeline) {
                out.push(PipelineTrend {
                    pipeline_id: pipeline,
                    ..PipelineTrend::default()
                });
            }
            let p = out.last_mut().expect("pushed above");
            p.runs += n;
            match status.as_str() {
                "succeeded" => p.succeeded += n,
                "failed" => p.failed += n,
                "cancelled" => p.cancelled += n,
                _ => {}
            }
        }
        // Each pipeline's latest runs through the index `runs_by_pipeline` (pipeline, start):
        // `last` rows each, whatever the size of the history.
        let mut st = self.conn.prepare_cached(
            "SELECT run_id, status, duration_ms, started_at FROM runs
             WHERE pipeline_id = ?1 ORDER BY started_ms DESC LIMIT ?2",
        )?;
        for p in &mut out {
            let mut rows = st.query(rusqlite::params![p.pipeline_id, last])?;
            while let Some(r) = rows.next()? {
                p.recent.push(RecentRun {
                    run_id: r.get(0)?,
                    status: r.get(1)?,
                    duration_ms: r.get(2)?,
                    started_at: r.get(3)?,
                });
            }
        }
        for p in &mut out {
            let finished = p.succeeded + p.failed + p.cancelled;
            p.pass_rate = (finished > 0).then(|| p.succeeded as f64 / finished as f64);
        }
        Ok(out)
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

    /// Feeds every run matching `filter` (its limit ignored), and every stage of those runs,
    /// to `acc`. Rows are read in place (see [`Aggregator`]).
    pub fn aggregate(&self, filter: &RunFilter, acc: &mut Aggregator) -> Result<(), HistoryError> {
        self.aggregate_rows(filter, acc).map_err(|e| self.err(e))
    }

    fn aggregate_rows(&self, filter: &RunFilter, acc: &mut Aggregator) -> rusqlite::Result<()> {
        let (clause, values) = filter.clause();
        let sql = format!("SELECT r.pipeline_id, r.status, r.duration_ms FROM runs r{clause}");
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
        while let Some(r) = rows.next()? {
            acc.run(RunSample {
                pipeline_id: r.get_ref(0)?.as_str()?,
                status: r.get_ref(1)?.as_str()?,
                duration_ms: r.get(2)?,
            });
        }
        // Stage rows carry their run's pipeline and start time: filtered on those alone, the
        // scan stays inside the covering index `stages_for_stats`, with no join.
        let sql = if filter.task.is_none() && filter.status.is_none() {
            format!(
                "SELECT r.pipeline_id, r.stage_id, r.idx, r.status, r.duration_ms, r.attempts
                 FROM stages r{clause}"
            )
        } else {
            format!(
                "SELECT r.pipeline_id, s.stage_id, s.idx, s.status, s.duration_ms, s.attempts
                 FROM stages s JOIN runs r ON r.run_id = s.run_id{clause}"
            )
        };
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(values.iter()))?;
        while let Some(r) = rows.next()? {
            acc.stage(StageSample {
                pipeline_id: r.get_ref(0)?.as_str()?,
                stage_id: r.get_ref(1)?.as_str()?,
                index: r.get(2)?,
                status: r.get_ref(3)?.as_str()?,
                duration_ms: r.get(4)?,
                attempts: r.get(5)?,
            });
        }
        Ok(())
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
    use crate::history::stats::PipelineStats;
    use crate::record::layout::Roots;
    use shared_manifest::schema::Manifest;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// A finished run's manifest: `stages` are (id, status, duration_ms, attempts).
    fn manifest(
        run_id: &str,
        pipeline: &str,
        status: &str,
        started: &str,
        stages: &[(&str, &str, u64, u32)],
    ) -> Manifest {
        let commands: Vec<_> = stages
            .iter()
            .enumerate()
            .map(|(i, (id, st, d, a))| {
                serde_json::json!({"index": i + 1, "id": id, "title": id, "command": "true",
                    "kind": "command", "status": st, "duration_ms": d, "attempts": a,
                    "exit_code": if *st == "failed" { 1 } else { 0 }})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "version": 1, "task_id": "t", "run_id": run_id, "pipeline_id": pipeline,
            "pipeline_title": pipeline, "runner": "codex-cli", "status": status,
            "started_at": started, "completed_at": started, "updated_at": started,
            "heartbeat_interval_seconds": 5, "heartbeat_stale_after_seconds": 30,
            "artifact_root": "a", "compat_path": "c", "log_path": "l", "metrics_recorded": false,
            "resume_token": "x", "resume_events": [], "approvals": [], "commands": commands,
            "child_runs": [], "runtime_mode_requested": "cli", "runtime_mode": "cli",
            "runtime_provider": "CliRuntimeProvider", "instructions_sources": [],
        }))
        .expect("a valid manifest")
    }

    fn save(roots: &Roots, m: &Manifest) -> PathBuf {
        let dir = roots.runs.join(&m.task_id).join("cli").join(&m.run_id);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("manifest.json");
        std::fs::write(&p, serde_json::to_vec(m).expect("json")).expect("write");
        p
    }

    fn ids(rows: &[RunRow]) -> Vec<&str> {
        rows.iter().map(|r| r.run_id.as_str()).collect()
    }

    fn stats(index: &Index, filter: &RunFilter) -> Vec<PipelineStats> {
        let mut acc = Aggregator::default();
        index.aggregate(filter, &mut acc).expect("aggregate");
        acc.finish()
    }

    #[test]
    fn recorded_runs_answer_queries_and_survive_a_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = Roots::for_repo(dir.path());
        std::fs::create_dir_all(&roots.runs).expect("mkdir");
        let runs = [
            manifest(
                "r1",
                "ci",
                "succeeded",
                "2026-01-01T00:00:00.000Z",
                &[("build", "succeeded", 10, 1), ("test", "succeeded", 30, 2)],
            ),
            manifest(
                "r2",
                "ci",
                "failed",
                "2026-01-02T00:00:00.000Z",
                &[("build", "succeeded", 20, 1), ("test", "failed", 50, 3)],
            ),
            manifest(
                "r3",
                "docs",
                "succeeded",
                "2026-01-03T00:00:00.000Z",
                &[("render", "succeeded", 5, 1)],
            ),
        ];
        let mut index = Index::open(&roots).expect("open");
        for m in &runs {
            let p = save(&roots, m);
            index.record(m, &p).expect("record");
        }
        let all = index.list(&RunFilter::default()).expect("list");
        assert_eq!(ids(&all), ["r3", "r2", "r1"]);
        assert_eq!(all[1].manifest, ".runs/t/cli/r2/manifest.json");
        let f = RunFilter {
            pipeline: Some("ci".into()),
            limit: Some(1),
            ..RunFilter::default()
        };
        assert_eq!(ids(&index.list(&f).expect("list")), ["r2"]);
        let f = RunFilter {
            since_ms: Some(super::super::record::epoch_ms("2026-01-02T00:00:00Z")),
            ..RunFilter::default()
        };
        assert_eq!(ids(&index.list(&f).expect("list")), ["r3", "r2"]);
        let f = RunFilter {
            status: Some("failed".into()),
            ..RunFilter::default()
        };
        assert_eq!(ids(&index.list(&f).expect("list")), ["r2"]);

        let (run, stages) = index.run("r2").expect("query").expect("r2 is indexed");
        assert_eq!((run.stages_passed, run.stages_failed), (1, 1));
        assert_eq!(stages[1].exit_code, Some(1));
        assert!(index.run("nope").expect("query").is_none());

        let s = stats(&index, &RunFilter::default());
        assert_eq!(s[0].pipeline_id, "ci");
        assert_eq!(s[0].stages[1].passed_after_retry, 1);
        assert_eq!(s[0].stages[1].duration.p95_ms, Some(50));
        // Filters that the stage rows do not carry go through the join.
        let failed = RunFilter {
            status: Some("failed".into()),
            ..RunFilter::default()
        };
        assert_eq!(stats(&index, &failed)[0].stages[1].passed_after_retry, 0);

        // Recording a run again replaces its rows (a resumed run): no duplicates.
        let resumed = manifest(
            "r2",
            "ci",
            "succeeded",
            "2026-01-02T00:00:00.000Z",
            &[("build", "succeeded", 20, 1), ("test", "succeeded", 40, 1)],
        );
        let p = save(&roots, &resumed);
        index.record(&resumed, &p).expect("record");
        let (run, stages) = index.run("r2").expect("query").expect("r2");
        assert_eq!((run.status.as_str(), stages.len()), ("succeeded", 2));
        let before = (
            index.list(&RunFilter::default()).expect("list"),
            stats(&index, &RunFilter::default()),
        );
        drop(index);

        let done = Index::reindex(&roots).expect("reindex");
        assert_eq!((done.runs, done.skipped), (3, 0));
        let index = Index::open(&roots).expect("open");
        let after = (
            index.list(&RunFilter::default()).expect("list"),
            stats(&index, &RunFilter::default()),
        );
        assert_eq!(
            after, before,
            "a rebuild from the manifests gives the same answers"
        );
    }

    #[test]
    fn unreadable_manifests_are_skipped_by_a_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = Roots::for_repo(dir.path());
        let m = manifest("r1", "ci", "succeeded", "2026-01-01T00:00:00.000Z", &[]);
        save(&roots, &m);
        let bad = roots.runs.join("t/cli/r2");
        std::fs::create_dir_all(&bad).expect("mkdir");
        std::fs::write(bad.join("manifest.json"), "{ not json").expect("write");
        assert_eq!(
            Index::reindex(&roots).expect("reindex"),
            crate::history::Rebuilt {
                runs: 1,
                skipped: 1
            }
        );
        assert!(Path::new(&roots.runs.join("index.sqlite")).is_file());
    }

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
