//! Feedback for the next build: after a failed verify, the gates that failed (stage, title,
//! exit code or signal, summary, the last 16 KiB of stderr and of stdout, log and error file),
//! the previous build's own result, and what that build changed, written as JSON and as a
//! Markdown twin for agents that read prose: `loop/NN-<slug>/feedback-K.{json,md}`, where K is
//! the iteration they describe. The next build finds them through
//! `CODEX_ORCHESTRATOR_FEEDBACK_PATH` and `CODEX_ORCHESTRATOR_FEEDBACK_MARKDOWN_PATH`.

use std::fmt::Write as _;
use std::path::Path;

use exec::logread::{copy_stream, Stream};
use serde_json::{json, Value};
use shared_manifest::schema::Manifest;
use shared_manifest::work_record::{FeedbackRef, LoopRecord};
use shared_manifest::CommandStatus;

use crate::engine::state::{RunReport, RunState};
use crate::gitstate::DiffStat;

/// Bytes of each stream's tail in the feedback.
pub(crate) const TAIL_BYTES: u64 = 16 * 1024;
/// How deep failed sub-pipelines inside the verify run are followed.
const MAX_DEPTH: usize = 4;

/// Writes the feedback of iteration `rec.iteration` (its verify run `verify`, its build and
/// `changes`) into `loop_dir`; returns where, repo-relative.
pub(crate) fn write(
    run: &RunState,
    stage_id: &str,
    loop_dir: &Path,
    rec: &LoopRecord,
    verify: &RunReport,
    changes: Option<&DiffStat>,
) -> Result<FeedbackRef, String> {
    let repo = &run.ctx.roots.repo;
    let it = rec.current().ok_or("no current iteration")?;
    let mut gates = Vec::new();
    failed_gates(repo, &verify.manifest, "", 0, &mut gates);
    let build = it.build.as_ref().map(|b| {
        let (stdout, stderr) = tails(repo, &b.log_path);
        json!({
            "succeeded": b.succeeded, "outcome": b.outcome, "exit_code": b.exit_code,
            "signal": b.signal, "summary": b.summary, "log_path": b.log_path,
            "stdout_tail": stdout.0, "stdout_truncated": stdout.1,
            "stderr_tail": stderr.0, "stderr_truncated": stderr.1,
        })
    });
    let changes = match (it.before.as_ref(), it.after.as_ref()) {
        (Some(before), Some(after)) => Some(json!({
            "against": before.tree,
            "tree": after.tree,
            "files_changed": changes.map(|c| c.files_changed),
            "insertions": changes.map(|c| c.insertions),
            "deletions": changes.map(|c| c.deletions),
            "files": changes.map(|c| c.files.iter().map(|f| json!({
                "path": f.path, "status": f.status,
                "insertions": f.insertions, "deletions": f.deletions,
            })).collect::<Vec<_>>()),
            "truncated": changes.map(|c| c.truncated),
        })),
        _ => None,
    };
    let m = &verify.manifest;
    let doc = json!({
        "schema_version": 1,
        "run_id": run.dir.run_id,
        "stage_id": stage_id,
        "iteration": it.iteration,
        "next_iteration": it.iteration + 1,
        "verify": {
            "pipeline": m.pipeline_id, "run_id": m.run_id, "status": m.status,
            "status_detail": m.status_detail, "summary": m.summary,
            "manifest": verify.dir.rel(&verify.dir.manifest()),
        },
        "failed_gates": gates,
        "build": build,
        "changes": changes,
    });
    let json_path = loop_dir.join(format!("feedback-{}.json", it.iteration));
    let md_path = loop_dir.join(format!("feedback-{}.md", it.iteration));
    let err = |e: &dyn std::error::Error| crate::engine::loop_stage::snapshot::one_line(e);
    shared_manifest::atomic::create_dir_all_durable(loop_dir).map_err(|e| err(&e))?;
    let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    shared_manifest::atomic::write_atomic(&json_path, &bytes).map_err(|e| err(&e))?;
    shared_manifest::atomic::write_atomic(&md_path, markdown(&doc).as_bytes())
        .map_err(|e| err(&e))?;
    Ok(FeedbackRef {
        from_iteration: it.iteration,
        json: run.dir.rel(&json_path),
        markdown: run.dir.rel(&md_path),
    })
}

/// The failed stages of run `m`, following failed sub-pipelines into their child runs.
fn failed_gates(repo: &Path, m: &Manifest, prefix: &str, depth: usize, out: &mut Vec<Value>) {
    for c in m
        .commands
        .iter()
        .filter(|c| c.status == CommandStatus::Failed)
    {
        let (stdout, stderr) = c
            .log_path
            .as_deref()
            .map_or(((String::new(), false), (String::new(), false)), |l| {
                tails(repo, l)
            });
        out.push(json!({
            "stage_id": format!("{prefix}{}", c.id),
            "title": c.title,
            "run_id": m.run_id,
            "exit_code": c.exit_code,
            "signal": c.signal,
            "outcome": c.outcome,
            "summary": c.summary,
            "log_path": c.log_path,
            "error_file": c.error_file,
            "stdout_tail": stdout.0, "stdout_truncated": stdout.1,
            "stderr_tail": stderr.0, "stderr_truncated": stderr.1,
        }));
        let child = c
            .sub_run_id
            .as_ref()
            .and_then(|id| m.child_runs.iter().find(|r| &r.run_id == id));
        if let (Some(child), true) = (child, depth < MAX_DEPTH) {
            if let Ok(cm) = crate::history::read_manifest(&repo.join(&child.manifest)) {
                failed_gates(repo, &cm, &format!("{prefix}{}/", c.id), depth + 1, out);
            }
        }
    }
}

/// The last [`TAIL_BYTES`] of stdout and of stderr in the log at `rel` (repo-relative), and
/// whether each was cut.
fn tails(repo: &Path, rel: &str) -> ((String, bool), (String, bool)) {
    let log = repo.join(rel);
    (tail(&log, Stream::Stdout), tail(&log, Stream::Stderr))
}

fn tail(log: &Path, stream: Stream) -> (String, bool) {
    let Ok(total) = copy_stream(log, stream, 0, Some(0), &mut std::io::sink()) else {
        return (String::new(), false);
    };
    let from = total.total.saturating_sub(TAIL_BYTES);
    let mut bytes = Vec::new();
    if copy_stream(log, stream, from, Some(TAIL_BYTES), &mut bytes).is_err() {
        return (String::new(), false);
    }
    // A cut may fall inside a UTF-8 character: start at the next whole one.
    let skip = if from > 0 {
        bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count()
    } else {
        0
    };
    (
        String::from_utf8_lossy(&bytes[skip..]).into_owned(),
        from > 0,
    )
}

/// The Markdown twin of the feedback document.
fn markdown(doc: &Value) -> String {
    let mut md = String::new();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let _ = writeln!(
        md,
        "# Feedback for iteration {} of loop `{}`\n",
        doc["next_iteration"],
        s(&doc["stage_id"])
    );
    let v = &doc["verify"];
    let _ = writeln!(
        md,
        "Iteration {} was verified by run `{}` of pipeline `{}`, which failed.\n",
        doc["iteration"],
        s(&v["run_id"]),
        s(&v["pipeline"])
    );
    let _ = writeln!(md, "## Failed gates\n");
    let gates = doc["failed_gates"].as_array().cloned().unwrap_or_default();
    if gates.is_empty() {
        let _ = writeln!(md, "No stage of the verify run is recorded as failed.\n");
    }
    for g in &gates {
        let how = match (&g["exit_code"], &g["signal"]) {
            (Value::Number(n), _) => format!("exit code {n}"),
            (_, Value::String(sig)) => format!("signal {sig}"),
            _ => s(&g["outcome"]),
        };
        let _ = writeln!(
            md,
            "### `{}` — {} ({how})\n",
            s(&g["stage_id"]),
            s(&g["title"])
        );
        let _ = writeln!(md, "- Summary: {}", s(&g["summary"]));
        let _ = writeln!(md, "- Log: `{}`", s(&g["log_path"]));
        if let Some(e) = g["error_file"].as_str() {
            let _ = writeln!(md, "- Error file: `{e}`");
        }
        md.push('\n');
        output_block(&mut md, "stderr", g);
        output_block(&mut md, "stdout", g);
    }
    if let Some(b) = doc["build"].as_object() {
        let b = Value::Object(b.clone());
        let _ = writeln!(md, "## The build of iteration {}\n", doc["iteration"]);
        let verdict = if b["succeeded"] == true {
            "succeeded"
        } else {
            "failed"
        };
        let _ = writeln!(md, "- It {verdict}: {}", s(&b["summary"]));
        let _ = writeln!(md, "- Log: `{}`\n", s(&b["log_path"]));
        if b["succeeded"] != true {
            output_block(&mut md, "stderr", &b);
            output_block(&mut md, "stdout", &b);
        }
    }
    if let Some(c) = doc["changes"].as_object() {
        let _ = writeln!(
            md,
            "## What the build of iteration {} changed\n",
            doc["iteration"]
        );
        match c.get("files_changed").and_then(Value::as_u64) {
            Some(0) => {
                let _ = writeln!(md, "Nothing: the work tree is as it was before the build.");
            }
            Some(n) => {
                let _ = writeln!(
                    md,
                    "{n} file(s) changed, {} insertion(s), {} deletion(s):\n",
                    c["insertions"], c["deletions"]
                );
                for f in c["files"].as_array().cloned().unwrap_or_default() {
                    let lines = match (f["insertions"].as_u64(), f["deletions"].as_u64()) {
                        (Some(a), Some(d)) => format!(", +{a} -{d}"),
                        _ => String::new(),
                    };
                    let _ = writeln!(md, "- `{}` ({}{lines})", s(&f["path"]), s(&f["status"]));
                }
                if c["truncated"] == true {
                    let _ = writeln!(md, "- ... and more");
                }
            }
            None => {
                let _ = writeln!(
                    md,
                    "Unknown (the tree changed from `{}` to `{}`).",
                    s(&c["against"]),
                    s(&c["tree"])
                );
            }
        }
    }
    md
}

/// A stream's tail as a fenced block (the fence longer than any backtick run inside).
fn output_block(md: &mut String, stream: &str, v: &Value) {
    let text = v[format!("{stream}_tail")].as_str().unwrap_or_default();
    if text.is_empty() {
        return;
    }
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let cut = if v[format!("{stream}_truncated")] == true {
        " (last 16 KiB)"
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "{stream}{cut}:\n\n{fence}text\n{}\n{fence}\n",
        text.trim_end()
    );
}
