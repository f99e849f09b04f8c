//! `plan-patch --file F`, run from inside a command stage: the same plan patch a stage may
//! write to `CODEX_ORCHESTRATOR_PLAN_PATCH_PATH`, checked at once and handed to the runner.
//!
//! The stage is found from the variables the runner gives it (`CODEX_ORCHESTRATOR_PLAN_PATCH_PATH`,
//! `CODEX_ORCHESTRATOR_STAGE_ID`, `CODEX_ORCHESTRATOR_MANIFEST_PATH`,
//! `CODEX_ORCHESTRATOR_MAX_DYNAMIC_STAGES`); outside a stage the verb is a usage error. The
//! patch is validated by `config::plan_patch` (the one definition the runner uses too)
//! against the pipeline as its record stands, merged with what earlier calls of the same
//! stage attempt (or the stage itself) put in the patch file, and the merged patch replaces
//! the file atomically. Several calls therefore add all their stages, and a later one may
//! depend on an earlier one's. Nothing runs yet: the runner applies the file, checked again
//! against the plan as it is then, when the stage exits successfully. A refused patch is
//! exit 2 with the one-line error, and the file is left as it was.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

use crate::cli::{Format, PlanPatchArgs};
use crate::config::plan_patch::{self, Standing};
use crate::config::ConfigError;
use crate::env_vars as ev;
use crate::errors::AppError;
use crate::exit;

/// Runs `plan-patch`; returns the exit code.
pub fn plan_patch(args: PlanPatchArgs) -> Result<i32, AppError> {
    let inside = Inside::from_env()?;
    let (source, text) = read_input(&args.file)?;
    let new = plan_patch::stages_of(&source, &text)?;
    let standing = inside.standing()?;
    // One call at a time per run: the read-merge-replace of the file must not interleave
    // with another call's (a stage may run several in the background).
    let _turn = lock_dir(&inside.patch_path)?;
    let earlier = inside.earlier(&standing)?;
    let mut all = earlier.clone();
    all.extend(new.iter().cloned());
    let merged = plan_patch::from_stages(&source, &all, &standing, &inside.stage_id)?;
    let body = serde_json::to_vec_pretty(&json!({ "stages": merged.raw }))
        .map_err(|e| AppError::Internal(format!("a plan patch did not serialize: {e}")))?;
    shared_manifest::atomic::write_atomic(&inside.patch_path, &body)?;
    let added: Vec<&str> = merged
        .stages
        .iter()
        .skip(earlier.len())
        .map(|s| s.id.as_str())
        .collect();
    let added_raw: Vec<&Value> = merged.raw.iter().skip(earlier.len()).collect();
    let pending: Vec<&str> = merged.stages.iter().map(|s| s.id.as_str()).collect();
    match args.format {
        Format::Json => crate::report::output::json(&json!({
            "run_id": inside.run_id,
            "pipeline_id": standing.pipeline_id,
            "stage_id": inside.stage_id,
            "patch_path": inside.patch_path,
            "added": added,
            "stages": added_raw,
            "pending": pending,
        })),
        Format::Text => crate::console::err_line(&format!(
            "plan patch accepted: stage `{}` adds {} stage(s) when it exits successfully: {} ({} in its patch)",
            inside.stage_id,
            added.len(),
            added.join(", "),
            pending.len()
        )),
    }
    Ok(exit::OK)
}

/// The stage `plan-patch` runs in, from the variables the runner set for it.
struct Inside {
    patch_path: PathBuf,
    stage_id: String,
    manifest: PathBuf,
    run_id: String,
    max: usize,
}

impl Inside {
    fn from_env() -> Result<Inside, AppError> {
        let Some(patch_path) = std::env::var_os(ev::PLAN_PATCH_PATH).filter(|v| !v.is_empty())
        else {
            return Err(AppError::Usage(format!(
                "plan-patch: not inside a stage of a run (`{}` is not set): a command stage calls it, and the runner adds its stages when the stage exits successfully",
                ev::PLAN_PATCH_PATH
            )));
        };
        let var = |name: &str| {
            ev::non_blank(name).ok_or_else(|| {
                AppError::Usage(format!(
                    "plan-patch: `{}` is set but `{name}` is not: run it from a command stage of this runner",
                    ev::PLAN_PATCH_PATH
                ))
            })
        };
        let max = var(ev::MAX_DYNAMIC_STAGES)?;
        let max = max.parse().map_err(|_| {
            AppError::Usage(format!(
                "plan-patch: `{}` is `{max}`, not a number of stages",
                ev::MAX_DYNAMIC_STAGES
            ))
        })?;
        Ok(Inside {
            patch_path: PathBuf::from(patch_path),
            stage_id: var(ev::STAGE_ID)?,
            manifest: PathBuf::from(var(ev::MANIFEST_PATH)?),
            run_id: ev::non_blank(ev::RUN_ID).unwrap_or_default(),
            max,
        })
    }

    /// The pipeline as the run's record has it. The runner checks the patch again when the
    /// stage ends, against the plan as it is then (another stage may have added an id since).
    fn standing(&self) -> Result<Standing, AppError> {
        let m = crate::history::read_manifest(&self.manifest).map_err(|e| {
            AppError::Conflict(format!(
                "plan-patch: cannot read the run's manifest `{}`: {e}",
                self.manifest.display()
            ))
        })?;
        let stage_ids: Vec<String> = m.commands.iter().map(|c| c.id.clone()).collect();
        if !stage_ids.contains(&self.stage_id) {
            return Err(AppError::Usage(format!(
                "plan-patch: run `{}` has no stage `{}` (`{}`)",
                m.run_id,
                self.stage_id,
                ev::STAGE_ID
            )));
        }
        Ok(Standing {
            pipeline_id: m.pipeline_id,
            stage_ids,
            added_before: m.plan_patches.iter().map(|p| p.stage_ids.len()).sum(),
            max: self.max,
        })
    }

    /// The stages already in the stage's patch file (earlier calls, or the stage's own
    /// write), checked again: a file that holds no valid patch is refused, not overwritten.
    fn earlier(&self, standing: &Standing) -> Result<Vec<Value>, AppError> {
        let text = match crate::files::read_regular_text(
            &self.patch_path,
            crate::config::load::MAX_CONFIG_BYTES,
        ) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: self.patch_path.clone(),
                    source,
                }
                .into())
            }
        };
        let earlier = plan_patch::parse(&self.patch_path, &text, standing, &self.stage_id)
            .map_err(|e| {
                AppError::Usage(format!(
                    "plan-patch: the stage's patch file already holds a patch that is refused, so nothing is added: {e}"
                ))
            })?;
        Ok(earlier.raw)
    }
}

/// The patch text and the name its errors give: `--file -` reads stdin.
fn read_input(file: &Path) -> Result<(PathBuf, String), AppError> {
    let cap = crate::config::load::MAX_CONFIG_BYTES;
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| AppError::Usage(format!("plan-patch: cannot read stdin: {e}")))?;
        if bytes.len() as u64 > cap {
            return Err(AppError::Usage(format!(
                "plan-patch: the patch on stdin is larger than {} MiB",
                cap / (1024 * 1024)
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| AppError::Usage("plan-patch: the patch on stdin is not UTF-8".into()))?;
        return Ok((PathBuf::from("<stdin>"), text));
    }
    let text = crate::files::read_regular_text(file, cap).map_err(|e| {
        AppError::Usage(format!("plan-patch: cannot read `{}`: {e}", file.display()))
    })?;
    Ok((file.to_owned(), text))
}

/// An exclusive lock on the directory of the patch file, held while the guard lives.
fn lock_dir(patch_path: &Path) -> Result<Flock<std::fs::File>, AppError> {
    let dir = patch_path.parent().unwrap_or(Path::new("."));
    let file = std::fs::File::open(dir).map_err(|e| AppError::storage(dir, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
        AppError::storage(dir, std::io::Error::from_raw_os_error(errno as i32))
    })
}
