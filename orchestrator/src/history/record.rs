//! From a manifest to index rows: one row in `runs`, one per stage in `stages`. Pure mapping
//! plus the two statements that write them; the caller owns the transaction.

use rusqlite::{params, Connection};
use shared_manifest::schema::{CommandRecord, Manifest, StageKind};
use shared_manifest::CommandStatus;

/// Milliseconds since the Unix epoch of a manifest timestamp (0 when it cannot be read, so a
/// damaged timestamp sorts first instead of losing the run).
pub(crate) fn epoch_ms(ts: &str) -> i64 {
    crate::time::parse(ts)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `end - start` in milliseconds, when both are readable and in order.
pub(crate) fn span_ms(start: Option<&str>, end: Option<&str>) -> Option<i64> {
    let (a, b) = (crate::time::parse(start?)?, crate::time::parse(end?)?);
    b.duration_since(a)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// A stage's wall time: the runner's own measure, else its timestamps.
pub(crate) fn stage_duration_ms(c: &CommandRecord) -> Option<i64> {
    c.duration_ms
        .and_then(|d| i64::try_from(d).ok())
        .or_else(|| span_ms(c.started_at.as_deref(), c.completed_at.as_deref()))
}

pub(crate) fn kind_str(k: StageKind) -> &'static str {
    match k {
        StageKind::Command => "command",
        StageKind::Subpipeline => "subpipeline",
    }
}

/// Stages of run `m`: (total, succeeded, failed, skipped or never run).
pub(crate) fn stage_counts(m: &Manifest) -> (i64, i64, i64, i64) {
    let count =
        |s: &[CommandStatus]| m.commands.iter().filter(|c| s.contains(&c.status)).count() as i64;
    (
        m.commands.len() as i64,
        count(&[CommandStatus::Succeeded]),
        count(&[CommandStatus::Failed]),
        count(&[CommandStatus::Skipped, CommandStatus::Pending]),
    )
}

/// Writes (or replaces) the run's row and its stage rows.
pub(crate) fn insert(conn: &Connection, m: &Manifest, manifest: &str) -> rusqlite::Result<()> {
    let (total, passed, failed, skipped) = stage_counts(m);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO runs (run_id, task_id, pipeline_id, pipeline_title, status,
            status_detail, started_at, started_ms, completed_at, duration_ms, parent_run_id,
            summary, manifest, stages_total, stages_passed, stages_failed, stages_skipped)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        m.run_id,
        m.task_id,
        m.pipeline_id,
        m.pipeline_title,
        m.status.as_str(),
        m.status_detail,
        m.started_at,
        epoch_ms(&m.started_at),
        m.completed_at,
        span_ms(Some(&m.started_at), m.completed_at.as_deref()),
        m.parent_run_id,
        m.summary,
        manifest,
        total,
        passed,
        failed,
        skipped,
    ])?;
    // Stages are replaced wholesale: a resumed run may have changed any of them.
    conn.prepare_cached("DELETE FROM stages WHERE run_id = ?1")?
        .execute([&m.run_id])?;
    let mut st = conn.prepare_cached(
        "INSERT INTO stages (run_id, idx, pipeline_id, started_ms, stage_id, title, kind,
            command, status, exit_code, attempts, outcome, signal, started_at, completed_at,
            duration_ms, summary, log_path, error_file, sub_run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20)",
    )?;
    let started_ms = epoch_ms(&m.started_at);
    for c in &m.commands {
        st.execute(params![
            m.run_id,
            c.index as i64,
            m.pipeline_id,
            started_ms,
            c.id,
            c.title,
            kind_str(c.kind),
            c.command,
            c.status.as_str(),
            c.exit_code,
            c.attempts,
            c.outcome,
            c.signal,
            c.started_at,
            c.completed_at,
            stage_duration_ms(c),
            c.summary,
            c.log_path,
            c.error_file,
            c.sub_run_id,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_become_epoch_milliseconds_and_spans() {
        assert_eq!(epoch_ms("1970-01-01T00:00:01.500Z"), 1500);
        assert_eq!(epoch_ms("garbage"), 0);
        assert_eq!(
            span_ms(
                Some("2026-01-01T00:00:00.000Z"),
                Some("2026-01-01T00:01:00.250Z")
            ),
            Some(60_250)
        );
        assert_eq!(span_ms(Some("2026-01-01T00:00:00.000Z"), None), None);
        assert_eq!(
            span_ms(
                Some("2026-01-01T00:00:01.000Z"),
                Some("2026-01-01T00:00:00.000Z")
            ),
            None,
            "a clock step backwards gives no duration, not a huge one"
        );
    }
}
