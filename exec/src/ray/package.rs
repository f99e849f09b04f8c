//! The working-directory package of a Ray stage: a deterministic zip of `workingDir` (what
//! `.gitignore` and the stage's `excludes` leave in, `.git` and the runs directory never) plus
//! the wrapper `co_entry.py` under [`WRAPPER_DIR`]. Equal trees give equal bytes (sorted
//! entries, a fixed 1980-01-01 time, unix modes kept — Ray restores them when it unpacks), so
//! the package is named by its sha256 and uploaded once per content, as Ray's own SDK does.
//!
//! Ray unpacks a `gcs://` zip as it is (no top-level directory is stripped) into the job's
//! working directory. Symbolic links are left out: Ray would unpack them as plain files.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Directory of the wrapper inside the package (and the job's working directory).
pub(crate) const WRAPPER_DIR: &str = "_codex_orchestrator";
/// The wrapper, embedded in the binary: nothing is installed on the cluster.
pub(crate) const CO_ENTRY: &str = include_str!("co_entry.py");
/// Ray refuses larger uploads (HTTP 413 above 100 MiB).
pub(crate) const MAX_PACKAGE_BYTES: usize = 100 * 1024 * 1024;

/// A built package.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    /// `co_<sha256[:32]>.zip`: the name on the head (`gcs://<name>`).
    pub(crate) name: String,
    /// sha256 of the zip, hex.
    pub(crate) sha256: String,
    /// The zip.
    pub(crate) bytes: Vec<u8>,
    /// Files in it, the wrapper included.
    pub(crate) files: usize,
}

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PackageError {
    /// The working directory is not a directory.
    #[error("workingDir `{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// An `excludes` pattern is not a valid gitignore pattern.
    #[error("excludes pattern `{pattern}`: {message}")]
    Pattern { pattern: String, message: String },
    /// Walking or reading the tree failed.
    #[error("cannot read `{}`: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A file name a zip cannot carry.
    #[error("`{}`: file names must be UTF-8 to be shipped to Ray", .0.display())]
    NonUtf8Name(PathBuf),
    /// Too big for Ray.
    #[error("the working-directory package is {} MiB; Ray accepts at most 100 MiB (add `excludes`)", .0 / (1024 * 1024))]
    TooBig(usize),
    /// Writing the zip failed (in memory: only a bug of the zip writer).
    #[error("cannot build the zip: {0}")]
    Zip(String),
}

/// Builds the package of `dir` (`None`: only the wrapper). `excludes` are gitignore-style
/// patterns relative to `dir`; `skip` are absolute directories left out (the runs directory).
pub(crate) fn build(
    dir: Option<&Path>,
    excludes: &[String],
    skip: &[PathBuf],
) -> Result<Package, PackageError> {
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    if let Some(dir) = dir {
        walk(dir, excludes, skip, &mut files, &mut dirs)?;
    }
    files.push((
        format!("{WRAPPER_DIR}/co_entry.py"),
        CO_ENTRY.as_bytes().to_vec(),
        0o755,
    ));
    dirs.push(format!("{WRAPPER_DIR}/"));
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort();
    dirs.dedup();
    let zip = write_zip(&files, &dirs)?;
    if zip.len() > MAX_PACKAGE_BYTES {
        return Err(PackageError::TooBig(zip.len()));
    }
    let sha256: String = Sha256::digest(&zip)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Package {
        name: format!("co_{}.zip", &sha256[..32]),
        sha256,
        files: files.len(),
        bytes: zip,
    })
}

fn walk(
    dir: &Path,
    excludes: &[String],
    skip: &[PathBuf],
    files: &mut Vec<(String, Vec<u8>, u32)>,
    dirs: &mut Vec<String>,
) -> Result<(), PackageError> {
    if !dir.is_dir() {
        return Err(PackageError::NotADirectory(dir.to_owned()));
    }
    let mut gi = ignore::gitignore::GitignoreBuilder::new(dir);
    for pattern in excludes {
        gi.add_line(None, pattern)
            .map_err(|e| PackageError::Pattern {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
    }
    let excluded = gi.build().map_err(|e| PackageError::Pattern {
        pattern: excludes.join(", "),
        message: e.to_string(),
    })?;
    let skip: Vec<PathBuf> = skip
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let walker = ignore::WalkBuilder::new(&root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(false)
        .ignore(false)
        .parents(false)
        // `.gitignore` applies whether or not the directory is a git checkout.
        .require_git(false)
        .filter_entry(move |e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            e.file_name() != ".git"
                && !skip.iter().any(|s| e.path() == s)
                && !excluded
                    .matched_path_or_any_parents(e.path(), is_dir)
                    .is_ignore()
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| PackageError::Read {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(&root) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = rel
            .to_str()
            .ok_or_else(|| PackageError::NonUtf8Name(path.to_owned()))?
            .to_owned();
        let kind = entry.file_type();
        if kind.is_some_and(|t| t.is_dir()) {
            dirs.push(format!("{name}/"));
        } else if kind.is_some_and(|t| t.is_file()) {
            let read_err = |e: std::io::Error| PackageError::Read {
                path: path.to_owned(),
                message: e.to_string(),
            };
            let meta = entry.metadata().map_err(|e| PackageError::Read {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777;
            files.push((name, std::fs::read(path).map_err(read_err)?, mode));
        } else {
            tracing::debug!(path = %path.display(), "not shipped to Ray: not a regular file");
        }
    }
    Ok(())
}

fn write_zip(files: &[(String, Vec<u8>, u32)], dirs: &[String]) -> Result<Vec<u8>, PackageError> {
    use zip::write::SimpleFileOptions;
    let zerr = |e: zip::result::ZipError| PackageError::Zip(e.to_string());
    let mut zw = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default().last_modified_time(zip::DateTime::default());
    for d in dirs {
        zw.add_directory(d.as_str(), base.unix_permissions(0o755))
            .map_err(zerr)?;
    }
    for (name, data, mode) in files {
        let opts = base
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        zw.start_file(name.as_str(), opts).map_err(zerr)?;
        zw.write_all(data)
            .map_err(|e| PackageError::Zip(e.to_string()))?;
    }
    Ok(zw.finish().map_err(zerr)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(p: &Package) -> Vec<(String, u32)> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(p.bytes.clone())).expect("zip");
        (0..z.len())
            .map(|i| {
                let f = z.by_index(i).expect("entry");
                (
                    f.name().expect("utf-8 name").into_owned(),
                    f.unix_mode().unwrap_or(0) & 0o777,
                )
            })
            .collect()
    }

    #[test]
    fn gitignore_excludes_git_and_runs_are_left_out_and_modes_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join(".git")).expect("git");
        std::fs::write(d.join(".git/HEAD"), "ref").expect("head");
        std::fs::create_dir_all(d.join(".runs/0101")).expect("runs");
        std::fs::write(d.join(".runs/0101/x"), "log").expect("log");
        std::fs::create_dir_all(d.join("src/target")).expect("src");
        std::fs::write(d.join(".gitignore"), "target/\n*.log\n").expect("gi");
        std::fs::write(d.join("src/a.txt"), "a").expect("a");
        std::fs::write(d.join("src/target/big"), "x").expect("big");
        std::fs::write(d.join("debug.log"), "x").expect("log");
        std::fs::write(d.join("secret.env"), "x").expect("env");
        std::fs::write(d.join("run.sh"), "#!/bin/sh\n").expect("sh");
        std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let p = build(Some(d), &["*.env".into()], &[d.join(".runs")]).expect("package");
        let got = names(&p);
        let files: Vec<&str> = got
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !n.ends_with('/'))
            .collect();
        assert_eq!(
            files,
            [
                ".gitignore",
                "_codex_orchestrator/co_entry.py",
                "run.sh",
                "src/a.txt"
            ]
        );
        assert!(got.contains(&("run.sh".into(), 0o755)));
        assert!(got.contains(&("_codex_orchestrator/co_entry.py".into(), 0o755)));
        assert_eq!(p.files, 4);
        // Same tree, same bytes, same name; a changed file changes it.
        let again = build(Some(d), &["*.env".into()], &[d.join(".runs")]).expect("package");
        assert_eq!((&again.name, &again.bytes), (&p.name, &p.bytes));
        assert!(p.name.starts_with("co_") && p.name.len() == 3 + 32 + 4);
        std::fs::write(d.join("src/a.txt"), "b").expect("a");
        let changed = build(Some(d), &["*.env".into()], &[d.join(".runs")]).expect("package");
        assert_ne!(changed.sha256, p.sha256);
    }

    #[test]
    fn no_working_dir_ships_only_the_wrapper_and_a_missing_one_is_an_error() {
        let p = build(None, &[], &[]).expect("package");
        assert_eq!(p.files, 1);
        let err = build(Some(Path::new("/no/such/dir")), &[], &[]).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "workingDir `/no/such/dir` is not a directory"
        );
    }
}
