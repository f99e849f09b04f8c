//! `runs stats`: per pipeline and per stage, how often it ran, how often it passed, how long it
//! took (p50/p95, nearest rank) and which stages passed only after a retry. Pure functions over
//! samples read from the index, so they are tested without a database.

use std::collections::HashMap;

use serde::Serialize;

/// A run as `stats` sees it (borrowed from the query's current row: no allocation per row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSample<'a> {
    /// Pipeline id.
    pub pipeline_id: &'a str,
    /// Run status.
    pub status: &'a str,
    /// Wall time, when the run finished.
    pub duration_ms: Option<i64>,
}

/// A stage of one run as `stats` sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageSample<'a> {
    /// Pipeline id of the run.
    pub pipeline_id: &'a str,
    /// Stage id.
    pub stage_id: &'a str,
    /// 1-based stage index.
    pub index: i64,
    /// Stage status.
    pub status: &'a str,
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

/// FNV-1a: ids are short strings hashed once per row, where SipHash's DoS resistance buys
/// nothing (the keys come from our own index) and costs a tenth of `stats`' time.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

type Map<V> = HashMap<String, V, std::hash::BuildHasherDefault<Fnv>>;

struct StageAcc {
    pipeline_id: String,
    stage_id: String,
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
    /// Stage id -> position in `Aggregator::stages`.
    stages: Map<usize>,
}

/// Folds samples one at a time (straight from the query's rows: 50 000 stage rows for
/// 10 000 runs) into per-pipeline figures. Ids are copied once per pipeline and stage, not
/// once per row, and rows arrive grouped by pipeline and stage (the order of the index they
/// are read from), so most rows skip the lookups altogether.
#[derive(Default)]
pub struct Aggregator {
    pipelines: Map<PipelineAcc>,
    stages: Vec<StageAcc>,
    last_stage: Option<usize>,
}

/// The entry for `key`, allocating the key only when it is new.
fn slot<'m, V: Default>(map: &'m mut Map<V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Aggregator {
    /// Counts one run.
    pub fn run(&mut self, r: RunSample<'_>) {
        let p = slot(&mut self.pipelines, r.pipeline_id);
        p.runs += 1;
        match r.status {
            "succeeded" => p.succeeded += 1,
            "failed" => p.failed += 1,
            "cancelled" => p.cancelled += 1,
            _ => return, // still running: no outcome, no duration
        }
        p.durations.extend(r.duration_ms);
    }

    /// The accumulator of `s`'s stage.
    fn stage_acc(&mut self, s: &StageSample<'_>) -> usize {
        if let Some(i) = self.last_stage {
            let st = &self.stages[i];
            if st.stage_id == s.stage_id && st.pipeline_id == s.pipeline_id {
                return i;
            }
        }
        let p = slot(&mut self.pipelines, s.pipeline_id);
        let i = match p.stages.get(s.stage_id) {
            Some(i) => *i,
            None => {
                let i = self.stages.len();
                p.stages.insert(s.stage_id.to_owned(), i);
                self.stages.push(StageAcc {
                    pipeline_id: s.pipeline_id.to_owned(),
                    stage_id: s.stage_id.to_owned(),
                    first_index: s.index,
                    runs: 0,
                    passed: 0,
                    failed: 0,
                    skipped: 0,
                    durations: Vec::new(),
                    after_retry: 0,
                });
                i
            }
        };
        self.last_stage = Some(i);
        i
    }

    /// Counts one stage of one run.
    pub fn stage(&mut self, s: StageSample<'_>) {
        let i = self.stage_acc(&s);
        let st = &mut self.stages[i];
        st.first_index = st.first_index.min(s.index);
        st.runs += 1;
        match s.status {
            "succeeded" => {
                st.passed += 1;
                if s.attempts.unwrap_or(1) > 1 {
                    st.after_retry += 1;
                }
            }
            "failed" => st.failed += 1,
            "skipped" | "pending" => {
                st.skipped += 1;
                return;
            }
            _ => return, // running
        }
        st.durations.extend(s.duration_ms);
    }

    /// Per-pipeline figures, pipelines sorted by id and stages by where they usually sit in
    /// the pipeline.
    pub fn finish(self) -> Vec<PipelineStats> {
        let mut by_pipeline: HashMap<String, Vec<(i64, StageStats)>> = HashMap::new();
        for s in self.stages {
            by_pipeline.entry(s.pipeline_id).or_default().push((
                s.first_index,
                StageStats {
                    stage_id: s.stage_id,
                    runs: s.runs,
                    passed: s.passed,
                    failed: s.failed,
                    skipped: s.skipped,
                    pass_rate: rate(s.passed, s.passed + s.failed),
                    duration: percentiles(s.durations),
                    passed_after_retry: s.after_retry,
                },
            ));
        }
        let mut out: Vec<PipelineStats> = self
            .pipelines
            .into_iter()
            .map(|(id, p)| {
                let mut stages = by_pipeline.remove(&id).unwrap_or_default();
                stages.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.stage_id.cmp(&b.1.stage_id)));
                PipelineStats {
                    pipeline_id: id,
                    runs: p.runs,
                    succeeded: p.succeeded,
                    failed: p.failed,
                    cancelled: p.cancelled,
                    pass_rate: rate(p.succeeded, p.succeeded + p.failed + p.cancelled),
                    duration: percentiles(p.durations),
                    stages: stages.into_iter().map(|(_, s)| s).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.pipeline_id.cmp(&b.pipeline_id));
        out
    }
}

/// Aggregates whole sample lists (see [`Aggregator`]).
pub fn compute(runs: &[RunSample<'_>], stages: &[StageSample<'_>]) -> Vec<PipelineStats> {
    let mut acc = Aggregator::default();
    runs.iter().for_each(|r| acc.run(*r));
    stages.iter().for_each(|s| acc.stage(*s));
    acc.finish()
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

    fn run<'a>(p: &'a str, status: &'a str, d: Option<i64>) -> RunSample<'a> {
        RunSample {
            pipeline_id: p,
            status,
            duration_ms: d,
        }
    }

    fn stage<'a>(
        p: &'a str,
        id: &'a str,
        index: i64,
        status: &'a str,
        d: i64,
        attempts: i64,
    ) -> StageSample<'a> {
        StageSample {
            pipeline_id: p,
            stage_id: id,
            index,
            status,
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
