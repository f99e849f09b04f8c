//! `verify-evidence RUN_DIR`: recompute every digest of a run's evidence bundle (written by a
//! `bundle` delivery) and say which file does not match. Exit 0 only when everything matches;
//! 1 when something does not; 2 when the directory has no readable bundle.

use crate::cli::{Format, VerifyEvidenceArgs};
use crate::delivery::evidence;
use crate::errors::AppError;

/// Runs `verify-evidence`; returns the exit code.
pub fn verify_evidence(args: VerifyEvidenceArgs) -> Result<i32, AppError> {
    let dir = &args.run_dir;
    let checked = evidence::verify(dir).map_err(|e| AppError::Usage(e.to_string()))?;
    let ok = checked.problems.is_empty();
    if args.format == Format::Json {
        crate::report::output::json(&serde_json::json!({
            "run_dir": dir.to_string_lossy(),
            "ok": ok,
            "checked": checked.checked,
            "problems": checked.problems,
        }));
    } else if ok {
        crate::console::err_line(&format!(
            "evidence of `{}`: {} digests match",
            dir.display(),
            checked.checked
        ));
    } else {
        for p in &checked.problems {
            crate::console::err_line(&format!("error: `{}`: {}", p.path, p.problem));
        }
        crate::console::err_line(&format!(
            "evidence of `{}`: {} of {} digests do not match",
            dir.display(),
            checked.problems.len(),
            checked.checked
        ));
    }
    Ok(if ok {
        crate::exit::OK
    } else {
        crate::exit::RUN_FAILED
    })
}
