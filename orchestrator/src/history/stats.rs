//! `runs stats`: per pipeline and per stage, how often it ran, how often it passed, how long it
//! took (p50/p95, nearest rank) and which stages passed only after a retry. Pure functions over
//! samples read from the index, so they are tested without a database.

use std::collections::BTreeMap;

use serde::Serialize;

/// A run as `stats` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSample {
    /// Pipeline id.
    pub pipeline_id: String,
    /// Run status.
    pub status: String,
    /// Wall time, when the run finished.
    pub duration_ms: Option<i64>,
}

/// A stage of one run as `stats` sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StageSample {
    /// Pipeline id of the run.
    pub pipeline_id: String,
    /// Stage id.
    pub stage_id: String,
    /// 1-based stage index.
    pub index: i64,
    /// Stage status.
    pub status: String,
    /// Wall time, all attempts included.
    pub duration_ms: Option<i64>,
    /// Attempts made.
    pub attempts: Option<i64>,
}

/// p50 and p95 of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: Option<i64>,
    /// 95th percentile.
    pub p95_ms: Option<i64>,
}

/// One pipeline's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineStats {
    /// Pipeline id.
    pub pipeline_id: String,
    /// Runs recorded.
    pub runs: usize,
    /// Runs that succeeded.
    pub succeeded: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Runs that were cancelled.
    pub cancelled: usize,
    /// `succeeded / (succeeded + failed + cancelled)`; none before any run finished.
    pub pass_rate: Option<f64>,
    /// Wall time of finished runs.
    pub duration: Percentiles,
    /// Per stage, in stage order.
    pub stages: Vec<StageStats>,
}

/// One stage's figures within a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStats {
    /// Stage id.
    pub stage_id: String,
    /// Runs the stage appears in.
    pub runs: usize,
    /// Times it succeeded.
    pub passed: usize,
    /// Times it failed.
    pub failed: usize,
    /// Times it was skipped or never ran.
    pub skipped: usize,
    /// `passed / (passed + failed)`; none when it never ran to an end.
    pub pass_rate: Option<f64>,
    /// Wall time when it ran (passed or failed).
    pub duration: Percentiles,
    /// Times it succeeded only after a failed attempt (flakiness).
    pub passed_after_retry: usize,
}

/// Nearest-rank percentile `p` (0 < p <= 100) of `sorted` (ascending): the smallest value with
/// at least p% of the values at or below it.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn percentiles(mut values: Vec<i64>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        p50_ms: percentile(&values, 50.0),
        p95_ms: percentile(&values, 95.0),
    }
}

/// `num / den` rounded to 4 decimals (a stable JSON value), none when `den` is 0.
fn rate(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| ((num as f64 / den as f64) * 10_000.0).round() / 10_000.0)
}

#[derive(Default)]
struct StageAcc {
    first_index: i64,
    runs: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
    durations: Vec<i64>,
    after_retry: usize,
}

#[derive(Default)]
struct PipelineAcc {
    runs: usize,
    succeeded: usize,
    failed: usize,
    cancelled: usize,
    durations: Vec<i64>,
    stages: BTreeMap<String, StageAcc>,
}

/// Aggregates samples into per-pipeline figures, pipelines sorted by id and stages by where
/// they usually sit in the pipeline.
pub fn compute(runs: &[RunSample], stages: &[StageSample]) -> Vec<PipelineStats> {
    let mut acc: BTreeMap<&str, PipelineAcc> = BTreeMap::new();
    for r in runs {
        let p = acc.entry(&r.pipeline_id).or_default();
        p.runs += 1;
        match r.status.as_str() {
            "succeeded" => p.succeeded += 1,
            "failed" => p.failed += 1,
            "cancelled" => p.cancelled += 1,
            _ => continue, // still running: no outcome, no duration
        }
        p.durations.extend(r.duration_ms);
    }
    for s in stages {
        let p = acc.entry(&s.pipeline_id).or_default();
        let st = p.stages.entry(s.stage_id.clone()).or_insert(StageAcc {
            first_index: s.index,
            ..StageAcc::default()
        });
        st.first_index = st.first_index.min(s.index);
        st.runs += 1;
        match s.status.as_str() {
            "succeeded" => {
                st.passed += 1;
                if s.attempts.unwrap_or(1) > 1 {
                    st.after_retry += 1;
                }
            }
            "failed" => st.failed += 1,
            "skipped" | "pending" => {
                st.skipped += 1;
                continue;
            }
            _ => continue, // running
        }
        st.durations.extend(s.duration_ms);
    }
    acc.into_iter()
        .map(|(id, p)| {
            let mut stages: Vec<(i64, StageStats)> = p
                .stages
                .into_iter()
                .map(|(sid, s)| {
                    (
                        s.first_index,
                        StageStats {
                            stage_id: sid,
                            runs: s.runs,
                            passed: s.passed,
                            failed: s.failed,
                            skipped: s.skipped,
                            pass_rate: rate(s.passed, s.passed + s.failed),
                            duration: percentiles(s.durations),
                            passed_after_retry: s.after_retry,
                        },
                    )
                })
                .collect();
            stages.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.stage_id.cmp(&b.1.stage_id)));
            PipelineStats {
                pipeline_id: id.to_owned(),
                runs: p.runs,
                succeeded: p.succeeded,
                failed: p.failed,
                cancelled: p.cancelled,
                pass_rate: rate(p.succeeded, p.succeeded + p.failed + p.cancelled),
                duration: percentiles(p.durations),
                stages: stages.into_iter().map(|(_, s)| s).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 95.0), Some(4));
        assert_eq!(percentile(&[10, 20, 30], 50.0), Some(20));
        assert_eq!(percentile(&[10, 20, 30], 1.0), Some(10));
    }

    fn run(p: &str, status: &str, d: Option<i64>) -> RunSample {
        RunSample {
            pipeline_id: p.into(),
            status: status.into(),
            duration_ms: d,
        }
    }

    fn stage(p: &str, id: &str, index: i64, status: &str, d: i64, attempts: i64) -> StageSample {
        StageSample {
            pipeline_id: p.into(),
            stage_id: id.into(),
            index,
            status: status.into(),
            duration_ms: Some(d),
            attempts: Some(attempts),
        }
    }

    #[test]
    fn pipelines_and_stages_are_aggregated() {
        let runs = [
            run("ci", "succeeded", Some(100)),
            run("ci", "failed", Some(300)),
            run("ci", "in_progress", None),
            run("docs", "cancelled", Some(50)),
        ];
        let stages = [
            stage("ci", "test", 2, "succeeded", 80, 2),
            stage("ci", "build", 1, "succeeded", 10, 1),
            stage("ci", "test", 2, "failed", 280, 3),
            stage("ci", "build", 1, "succeeded", 20, 1),
            stage("ci", "lint", 3, "skipped", 0, 0),
        ];
        let s = compute(&runs, &stages);
        assert_eq!(s.len(), 2);
        let ci = &s[0];
        assert_eq!(
            (ci.runs, ci.succeeded, ci.failed, ci.cancelled),
            (3, 1, 1, 0)
        );
        assert_eq!(ci.pass_rate, Some(0.5));
        assert_eq!(
            ci.duration,
            Percentiles {
                p50_ms: Some(100),
                p95_ms: Some(300)
            }
        );
        let ids: Vec<&str> = ci.stages.iter().map(|s| s.stage_id.as_str()).collect();
        assert_eq!(
            ids,
            ["build", "test", "lint"],
            "stage order, not name order"
        );
        let test = &ci.stages[1];
        assert_eq!((test.runs, test.passed, test.failed), (2, 1, 1));
        assert_eq!(test.passed_after_retry, 1);
        assert_eq!(test.pass_rate, Some(0.5));
        assert_eq!(test.duration.p95_ms, Some(280));
        let lint = &ci.stages[2];
        assert_eq!((lint.skipped, lint.pass_rate), (1, None));
        assert_eq!(
            lint.duration,
            Percentiles::default(),
            "skips have no duration"
        );
        assert_eq!(s[1].pass_rate, Some(0.0));
    }

    #[test]
    fn rates_are_rounded() {
        assert_eq!(rate(2, 3), Some(0.6667));
        assert_eq!(rate(0, 0), None);
    }
}
