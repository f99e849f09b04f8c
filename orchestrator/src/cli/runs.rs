//! `runs list|show|stats|diff|reindex`: queries over the run history index. Text is aligned
//! columns on stdout; `--format json` prints one JSON value on stdout.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::cli::{
    Format, RunsArgs, RunsCommand, RunsDiffArgs, RunsListArgs, RunsShowArgs, RunsStatsArgs,
};
use crate::errors::AppError;
use crate::exit;
use crate::history::table::{self, duration, first_line, opt, percent};
use crate::history::{diff, parse_since, stats, with_index, Index, RunFilter, RunRow, StageRow};
use crate::record::layout::{is_safe_component, Roots};
use crate::report::output;

/// Runs one `runs` query; returns the exit code.
pub fn runs(args: RunsArgs) -> Result<i32, AppError> {
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    match args.command {
        RunsCommand::List(a) => list(&roots, a),
        RunsCommand::Show(a) => show(&roots, a),
        RunsCommand::Stats(a) => stats(&roots, a),
        RunsCommand::Diff(a) => diff(&roots, a),
        RunsCommand::Reindex(a) => reindex(&roots, a.format),
    }
}

fn since(text: Option<&str>) -> Result<Option<i64>, AppError> {
    text.map(|t| parse_since(t, SystemTime::now()).map_err(AppError::Usage))
        .transpose()
}

fn list(roots: &Roots, a: RunsListArgs) -> Result<i32, AppError> {
    let filter = RunFilter {
        task: a.task,
        pipeline: a.pipeline,
        status: a.status,
        since_ms: since(a.since.as_deref())?,
        limit: (a.limit > 0).then_some(a.limit),
    };
    let rows = with_index(roots, |i| i.list(&filter))?;
    if a.format == Format::Json {
        output::json(&json!({ "runs": rows }));
        return Ok(exit::OK);
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.run_id.clone(),
                r.task_id.clone(),
                r.pipeline_id.clone(),
                r.status.clone(),
                r.started_at.clone(),
                duration(r.duration_ms),
                format!("{}/{}", r.stages_passed, r.stages_total),
                r.status_detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "RUN ID", "TASK", "PIPELINE", "STATUS", "STARTED", "DURATION", "PASSED", "DETAIL",
        ],
        &body,
    );
    if rows.is_empty() {
        crate::console::err_line("no recorded runs match");
    }
    Ok(exit::OK)
}

/// A run and its stages: from the index, else from its manifest on disk (a run the index
/// missed, e.g. one whose indexing failed), which is then recorded.
/// `name` is an id, a unique prefix or `latest` (see `run_ref`).
fn find_run(roots: &Roots, name: &str) -> Result<(RunRow, Vec<StageRow>), AppError> {
    if !is_safe_component(name) {
        return Err(AppError::Usage(format!("`{name}` is not a run id")));
    }
    let run_id = &match super::run_ref::resolve(roots, name, None) {
        Ok((_, id)) => id,
        // Only in the index (its run directory is gone): the name must be the full id.
        Err(AppError::Conflict(_)) => name.to_owned(),
        Err(e) => return Err(e),
    };
    let found = with_index(roots, |index| {
        if let Some(found) = index.run(run_id)? {
            return Ok(Some(found));
        }
        let Some(path) = crate::history::find_manifest(&roots.runs, run_id) else {
            return Ok(None);
        };
        let Ok(m) = crate::history::read_manifest(&path) else {
            return Ok(None);
        };
        index.record(&m, &path)?;
        index.run(run_id)
    })?;
    found.ok_or_else(|| {
        AppError::Conflict(format!(
            "run `{run_id}` not found under `{}`",
            roots.runs.display()
        ))
    })
}

fn show(roots: &Roots, a: RunsShowArgs) -> Result<i32, AppError> {
    let (run, stages) = find_run(roots, a.run.name().unwrap_or(super::run_ref::LATEST))?;
    if a.format == Format::Json {
        let mut v = serde_json::to_value(&run).expect("a run row serializes");
        if let Value::Object(o) = &mut v {
            o.insert("stages".into(), json!(stages));
        }
        output::json(&v);
        return Ok(exit::OK);
    }
    let detail = run
        .status_detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let head = [
        ("Run:", run.run_id.clone()),
        ("Task:", run.task_id.clone()),
        (
            "Pipeline:",
            format!("{} ({})", run.pipeline_id, run.pipeline_title),
        ),
        ("Status:", format!("{}{detail}", run.status)),
        ("Started:", run.started_at.clone()),
        ("Completed:", opt(run.completed_at.as_deref())),
        ("Duration:", duration(run.duration_ms)),
        ("Manifest:", run.manifest.clone()),
    ];
    for (k, v) in head {
        output::line(&format!("{k:<11}{v}"));
    }
    if let Some(parent) = &run.parent_run_id {
        output::line(&format!("{:<11}{parent}", "Parent:"));
    }
    output::line("");
    let body: Vec<Vec<String>> = stages
        .iter()
        .map(|s| {
            vec![
                format!("{:02}", s.index),
                s.stage_id.clone(),
                s.status.clone(),
                opt(s.exit_code),
                opt(s.attempts),
                duration(s.duration_ms),
                first_line(s.summary.as_deref(), 80),
            ]
        })
        .collect();
    print_table(
        &[
            "#", "STAGE", "STATUS", "EXIT", "ATTEMPTS", "DURATION", "SUMMARY",
        ],
        &body,
    );
    Ok(exit::OK)
}

fn stats(roots: &Roots, a: RunsStatsArgs) -> Result<i32, AppError> {
    let filter = RunFilter {
        pipeline: a.pipeline,
        since_ms: since(a.since.as_deref())?,
        ..RunFilter::default()
    };
    let pipelines = with_index(roots, |i| {
        let mut acc = stats::Aggregator::default();
        i.aggregate(&filter, &mut acc)?;
        Ok(acc.finish())
    })?;
    if a.format == Format::Json {
        output::json(&json!({ "pipelines": pipelines }));
        return Ok(exit::OK);
    }
    let body: Vec<Vec<String>> = pipelines
        .iter()
        .map(|p| {
            vec![
                p.pipeline_id.clone(),
                p.runs.to_string(),
                p.succeeded.to_string(),
                p.failed.to_string(),
                p.cancelled.to_string(),
                percent(p.pass_rate),
                duration(p.duration.p50_ms),
                duration(p.duration.p95_ms),
            ]
        })
        .collect();
    print_table(
        &[
            "PIPELINE",
            "RUNS",
            "SUCCEEDED",
            "FAILED",
            "CANCELLED",
            "PASS RATE",
            "P50",
            "P95",
        ],
        &body,
    );
    output::line("");
    let body: Vec<Vec<String>> = pipelines
        .iter()
        .flat_map(|p| {
            p.stages.iter().map(|s| {
                vec![
                    p.pipeline_id.clone(),
                    s.stage_id.clone(),
                    s.runs.to_string(),
                    s.passed.to_string(),
                    s.failed.to_string(),
                    s.skipped.to_string(),
                    percent(s.pass_rate),
                    duration(s.duration.p50_ms),
                    duration(s.duration.p95_ms),
                    s.passed_after_retry.to_string(),
                ]
            })
        })
        .collect();
    print_table(
        &[
            "PIPELINE",
            "STAGE",
            "RUNS",
            "PASSED",
            "FAILED",
            "SKIPPED",
            "PASS RATE",
            "P50",
            "P95",
            "PASSED AFTER RETRY",
        ],
        &body,
    );
    if pipelines.is_empty() {
        crate::console::err_line("no recorded runs match");
    }
    Ok(exit::OK)
}

fn diff(roots: &Roots, a: RunsDiffArgs) -> Result<i32, AppError> {
    let (run_a, stages_a) = find_run(roots, &a.a)?;
    let (run_b, stages_b) = find_run(roots, &a.b)?;
    let stages = diff::diff(&stages_a, &stages_b);
    if a.format == Format::Json {
        let side = |r: &RunRow| {
            json!({
                "run_id": r.run_id, "pipeline_id": r.pipeline_id, "status": r.status,
                "status_detail": r.status_detail, "started_at": r.started_at,
                "duration_ms": r.duration_ms,
            })
        };
        output::json(&json!({
            "a": side(&run_a),
            "b": side(&run_b),
            "stages": stages,
            "differences": stages.iter().filter(|s| s.differs()).count(),
        }));
        return Ok(exit::OK);
    }
    let head: Vec<Vec<String>> = [("a", &run_a), ("b", &run_b)]
        .iter()
        .map(|(k, r)| {
            vec![
                format!("{k}:"),
                r.run_id.clone(),
                r.pipeline_id.clone(),
                r.status.clone(),
                duration(r.duration_ms),
            ]
        })
        .collect();
    // The run lines are a table without a header: drop its (empty) first line.
    let head = table::render(&["", "", "", "", ""], &head);
    for line in head.lines().skip(1) {
        output::line(line);
    }
    output::line("");
    let side = |s: Option<&diff::Side>, f: &dyn Fn(&diff::Side) -> String| {
        s.map_or("(absent)".to_owned(), f)
    };
    let body: Vec<Vec<String>> = stages
        .iter()
        .map(|d| {
            let (sa, sb) = (d.a.as_ref(), d.b.as_ref());
            vec![
                if d.differs() { "*" } else { "" }.to_owned(),
                d.stage_id.clone(),
                side(sa, &|s| s.status.clone()),
                side(sb, &|s| s.status.clone()),
                side(sa, &|s| opt(s.exit_code)),
                side(sb, &|s| opt(s.exit_code)),
                side(sa, &|s| duration(s.duration_ms)),
                side(sb, &|s| duration(s.duration_ms)),
                if d.changed.contains(&"command") {
                    "changed"
                } else {
                    ""
                }
                .to_owned(),
            ]
        })
        .collect();
    print_table(
        &[
            "",
            "STAGE",
            "STATUS A",
            "STATUS B",
            "EXIT A",
            "EXIT B",
            "DURATION A",
            "DURATION B",
            "COMMAND",
        ],
        &body,
    );
    for d in stages.iter().filter(|d| d.changed.contains(&"command")) {
        let cmd = |s: &Option<diff::Side>| opt(s.as_ref().and_then(|s| s.command.as_deref()));
        output::line("");
        output::line(&format!("command of `{}`:", d.stage_id));
        output::line(&format!("  a: {}", cmd(&d.a)));
        output::line(&format!("  b: {}", cmd(&d.b)));
    }
    output::line("");
    output::line(&format!(
        "{} of {} stages differ",
        stages.iter().filter(|s| s.differs()).count(),
        stages.len()
    ));
    Ok(exit::OK)
}

fn reindex(roots: &Roots, format: Format) -> Result<i32, AppError> {
    let done = Index::reindex(roots)?;
    let path = roots.runs.join(crate::history::store::FILE_NAME);
    let written = roots.runs.is_dir();
    if format == Format::Json {
        output::json(&json!({
            "index": written.then(|| roots.rel(&path)),
            "runs": done.runs,
            "skipped": done.skipped,
        }));
    } else if written {
        output::line(&format!(
            "indexed {} runs ({} skipped) into {}",
            done.runs,
            done.skipped,
            roots.rel(&path)
        ));
    } else {
        output::line(&format!(
            "no runs to index: `{}` does not exist",
            roots.rel(&roots.runs)
        ));
    }
    Ok(exit::OK)
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let text = table::render(headers, rows);
    output::line(text.trim_end_matches('\n'));
}
