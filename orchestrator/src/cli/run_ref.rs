//! Naming a run: every verb that takes one accepts it positionally or as `--run` (the peer's
//! spelling), as the full id, a unique prefix of it, or `latest` / `--last` (the newest run of
//! `--task` when given, else of every task). A prefix that matches several runs is an error
//! listing them; one that matches none says where it looked.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::errors::AppError;
use crate::record::layout::{is_safe_component, Roots};

/// The name that means "the newest run".
pub const LATEST: &str = "latest";

/// How many candidates an ambiguity error lists before `… and N more`.
const LISTED: usize = 8;

/// The run a verb works on.
#[derive(Debug, Args, Clone, Default)]
pub struct RunRef {
    /// Run id, a unique prefix of one, or `latest`.
    #[arg(value_name = "RUN", conflicts_with_all = ["run", "last"])]
    pub id: Option<String>,
    /// The run, as the positional RUN (the peer's spelling).
    #[arg(long = "run", value_name = "RUN", conflicts_with = "last")]
    pub run: Option<String>,
    /// The newest run (of `--task` when given, else of every task).
    #[arg(long)]
    pub last: bool,
}

impl RunRef {
    /// The run as given (`latest` for `--last`), if any.
    pub fn name(&self) -> Option<&str> {
        if self.last {
            return Some(LATEST);
        }
        self.id.as_deref().or(self.run.as_deref())
    }

    /// A run named by its id.
    pub fn id(id: &str) -> RunRef {
        RunRef {
            id: Some(id.to_owned()),
            ..RunRef::default()
        }
    }
}

/// A run found on disk.
#[derive(Debug, Clone)]
pub struct Located {
    /// The roots it lives under.
    pub roots: Roots,
    /// Its `manifest.json`.
    pub manifest: PathBuf,
    /// Its full id.
    pub run_id: String,
}

/// Finds the run `r` names; without a name, `default_latest` decides between the newest run
/// and a usage error.
pub(crate) fn locate(
    r: &RunRef,
    task: Option<&str>,
    default_latest: bool,
) -> Result<Located, AppError> {
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let name = match r.name() {
        Some(n) => n.trim(),
        None if default_latest => LATEST,
        None => {
            return Err(AppError::Usage(
                "which run? give its id (or a unique prefix) as RUN or --run, or --last".into(),
            ))
        }
    };
    let (manifest, run_id) = resolve(&roots, name, task)?;
    tracing::debug!(run = %run_id, manifest = %manifest.display(), "run resolved");
    Ok(Located {
        roots,
        manifest,
        run_id,
    })
}

/// `(manifest path, run id)` of the run `name` means under `roots`.
pub(crate) fn resolve(
    roots: &Roots,
    name: &str,
    task: Option<&str>,
) -> Result<(PathBuf, String), AppError> {
    super::common::check_run_flag("run", name)?;
    if let Some(t) = task {
        // Checked like `--task` anywhere: it names a directory under `.runs`.
        super::common::task_id(Some(t))?;
    }
    // An exact id wins, in the task asked for (or the environment's) first. A task from the
    // environment that is no directory name finds nothing there.
    let preferred = task
        .map(str::to_owned)
        .or_else(super::common::task_from_env)
        .filter(|t| is_safe_component(t));
    if name != LATEST {
        if let Some(t) = &preferred {
            let p = roots.run_dir(t, name).manifest();
            if p.is_file() {
                return Ok((p, name.to_owned()));
            }
        }
    }
    let mut runs = list_runs(&roots.runs, task);
    if name == LATEST {
        // The newest run someone started: a sub-pipeline's child run is reached through its
        // parent (which resumes and reports it), so it is passed over.
        while runs.last().is_some_and(|(id, p)| is_child_run(p, id)) {
            runs.pop();
        }
        return runs.pop().map(|(id, p)| (p, id)).ok_or_else(|| {
            AppError::Conflict(format!(
                "no runs yet under `{}`{}",
                roots.runs.display(),
                task.map(|t| format!(" for task `{t}`")).unwrap_or_default()
            ))
        });
    }
    if let Some((id, p)) = runs.iter().find(|(id, _)| id == name) {
        return Ok((p.clone(), id.clone()));
    }
    runs.retain(|(id, _)| id.starts_with(name));
    match runs.len() {
        1 => {
            let (id, p) = runs.remove(0);
            Ok((p, id))
        }
        0 => Err(AppError::Conflict(format!(
            "run `{name}` not found under `{}`{}",
            roots.runs.display(),
            task.map(|t| format!(" (task `{t}`)")).unwrap_or_default()
        ))),
        n => {
            // Newest first: the one people most likely meant.
            let mut listed: Vec<String> = runs
                .iter()
                .rev()
                .take(LISTED)
                .map(|(id, _)| format!("`{id}`"))
                .collect();
            if n > LISTED {
                listed.push(format!("… and {} more", n - LISTED));
            }
            Err(AppError::Usage(format!(
                "run prefix `{name}` matches {n} runs: {}; give more of the id",
                listed.join(", ")
            )))
        }
    }
}

/// True when run `id` (its `manifest`) was started by a sub-pipeline stage of its parent: the
/// parent's record, in the same task folder, lists it in `child_runs`. A run started with
/// `--parent-run` by hand (or `flow`'s gate) is not listed there and is not a child here.
fn is_child_run(manifest: &Path, id: &str) -> bool {
    let read = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    };
    let Some(parent) = read(manifest).and_then(|m| m["parent_run_id"].as_str().map(str::to_owned))
    else {
        return false;
    };
    if !is_safe_component(&parent) {
        return false;
    }
    let Some(task_cli) = manifest.parent().and_then(Path::parent) else {
        return false;
    };
    read(&task_cli.join(&parent).join("manifest.json")).is_some_and(|m| {
        m["child_runs"]
            .as_array()
            .is_some_and(|c| c.iter().any(|r| r["run_id"] == id))
    })
}

/// `(run id, manifest path)` of every recorded run (of `task` when given), oldest first. Run
/// ids start with their UTC start time, so their order is the order the runs started in.
fn list_runs(runs_dir: &Path, task: Option<&str>) -> Vec<(String, PathBuf)> {
    let tasks: Vec<PathBuf> = match task {
        Some(t) => vec![runs_dir.join(t)],
        None => std::fs::read_dir(runs_dir)
            .map(|it| it.flatten().map(|e| e.path()).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for t in tasks {
        let Ok(entries) = std::fs::read_dir(t.join("cli")) else {
            continue;
        };
        for e in entries.flatten() {
            let manifest = e.path().join("manifest.json");
            if manifest.is_file() {
                out.push((e.file_name().to_string_lossy().into_owned(), manifest));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots_with(runs: &[(&str, &str)]) -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = Roots::for_repo(dir.path());
        for (task, id) in runs {
            let d = roots.run_dir(task, id).dir;
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("manifest.json"), "{}").expect("manifest");
        }
        (dir, roots)
    }

    #[test]
    fn ids_prefixes_and_latest() {
        let (_d, roots) = roots_with(&[
            ("t1", "2026-01-01T00-00-00-000Z-aaaaaaaa"),
            ("t1", "2026-01-02T00-00-00-000Z-bbbbbbbb"),
            ("t2", "2026-01-03T00-00-00-000Z-cccccccc"),
        ]);
        let id = |name: &str, task: Option<&str>| resolve(&roots, name, task).map(|(_, id)| id);
        assert_eq!(
            id("2026-01-02", None).expect("unique"),
            "2026-01-02T00-00-00-000Z-bbbbbbbb"
        );
        assert_eq!(
            id(LATEST, None).expect("latest"),
            "2026-01-03T00-00-00-000Z-cccccccc"
        );
        assert_eq!(
            id(LATEST, Some("t1")).expect("latest of t1"),
            "2026-01-02T00-00-00-000Z-bbbbbbbb"
        );
        let ambiguous = id("2026-01", None).expect_err("ambiguous").to_string();
        assert!(ambiguous.contains("matches 3 runs"), "{ambiguous}");
        assert!(ambiguous.contains("cccccccc`, `2026-01-02"), "{ambiguous}");
        let none = id("2027", None).expect_err("none");
        assert!(matches!(none, AppError::Conflict(_)), "{none}");
        assert!(matches!(
            id("../x", None).expect_err("unsafe"),
            AppError::Usage(_)
        ));
        assert!(id(LATEST, Some("t3")).is_err());
    }
}
