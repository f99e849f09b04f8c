//! Turning what a request names into a path under `.runs`, and refusing anything else: a run
//! id must be one directory name; a file inside a run is a relative path of plain components;
//! every path is resolved (symlinks included) and must still lie inside the run's directory,
//! itself inside `.runs`. Whatever fails is a 404 that says nothing about the file system.
//!
//! Paths recorded in a manifest (`log_path`, `error_file`) are checked the same way: a damaged
//! or hostile manifest cannot make the server read `/etc/passwd`.

use std::path::{Component, Path, PathBuf};

use crate::record::layout::{is_safe_component, Roots};
use crate::serve::error::ApiError;

/// A run found on disk.
#[derive(Debug, Clone)]
pub(crate) struct RunLoc {
    /// The run id.
    pub(crate) run_id: String,
    /// Its directory, resolved (no symlinks).
    pub(crate) dir: PathBuf,
    /// Its `manifest.json` (inside `dir`).
    pub(crate) manifest: PathBuf,
}

fn not_found(run_id: &str) -> ApiError {
    ApiError::not_found(format!("run `{run_id}` not found"))
}

/// The run `run_id`, when it exists under `.runs` and its directory really lies there.
pub(crate) fn locate(roots: &Roots, runs_real: &Path, run_id: &str) -> Result<RunLoc, ApiError> {
    if !is_safe_component(run_id) {
        return Err(not_found(run_id));
    }
    let manifest =
        crate::history::find_manifest(&roots.runs, run_id).ok_or_else(|| not_found(run_id))?;
    let dir = manifest
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .filter(|d| d.starts_with(runs_real))
        .ok_or_else(|| not_found(run_id))?;
    Ok(RunLoc {
        run_id: run_id.to_owned(),
        manifest: dir.join("manifest.json"),
        dir,
    })
}

/// The file at `rel` (as a URL names it) inside the run's directory.
pub(crate) fn file_in_run(run: &RunLoc, rel: &str) -> Result<PathBuf, ApiError> {
    let missing = || ApiError::not_found(format!("no file `{rel}` in run `{}`", run.run_id));
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(missing());
    }
    contained(run, &run.dir.join(p)).ok_or_else(missing)
}

/// A path the manifest records (repo-relative or absolute), when it resolves inside the run.
pub(crate) fn recorded_in_run(roots: &Roots, run: &RunLoc, recorded: &str) -> Option<PathBuf> {
    let p = Path::new(recorded);
    let p = if p.is_absolute() {
        p.to_owned()
    } else {
        roots.repo.join(p)
    };
    contained(run, &p)
}

/// `p` resolved, when it is a file inside the run's directory.
fn contained(run: &RunLoc, p: &Path) -> Option<PathBuf> {
    let real = p.canonicalize().ok()?;
    (real.starts_with(&run.dir) && real.is_file()).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Roots, PathBuf, RunLoc) {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = Roots::for_repo(dir.path());
        let run_dir = roots.runs.join("t").join("cli").join("r1");
        std::fs::create_dir_all(run_dir.join("commands")).expect("mkdir");
        std::fs::write(run_dir.join("manifest.json"), "{}").expect("write");
        std::fs::write(run_dir.join("commands/01-a.ndjson"), "").expect("write");
        std::fs::write(dir.path().join("secret"), "s").expect("write");
        let real = roots.runs.canonicalize().expect("canon");
        let run = locate(&roots, &real, "r1").expect("found");
        (dir, roots, real, run)
    }

    #[test]
    fn files_inside_the_run_resolve_and_nothing_else_does() {
        let (dir, roots, real, run) = setup();
        assert!(file_in_run(&run, "manifest.json").is_ok());
        assert!(file_in_run(&run, "commands/01-a.ndjson").is_ok());
        for bad in [
            "",
            "../../../secret",
            "commands/../manifest.json",
            "./manifest.json",
            "/etc/passwd",
            "commands",
            "nope",
        ] {
            assert!(file_in_run(&run, bad).is_err(), "{bad:?} must be refused");
        }
        std::os::unix::fs::symlink(dir.path().join("secret"), run.dir.join("link"))
            .expect("symlink");
        assert!(
            file_in_run(&run, "link").is_err(),
            "a symlink out is refused"
        );
        assert!(recorded_in_run(&roots, &run, "secret").is_none());
        assert!(recorded_in_run(&roots, &run, "/etc/passwd").is_none());
        assert!(recorded_in_run(&roots, &run, ".runs/t/cli/r1/commands/01-a.ndjson").is_some());
        for bad in ["..", ".", "a/b", ""] {
            assert!(locate(&roots, &real, bad).is_err());
        }
        assert_eq!(
            locate(&roots, &real, "r2").expect_err("missing").status,
            axum::http::StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_run_directory_that_is_a_symlink_out_of_runs_is_not_found() {
        let (dir, roots, real, _) = setup();
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("manifest.json"), "{}").expect("write");
        std::os::unix::fs::symlink(&outside, roots.runs.join("t/cli/r9")).expect("symlink");
        assert!(locate(&roots, &real, "r9").is_err());
    }
}
