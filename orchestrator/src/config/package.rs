//! The peer's npm package (`@kbediako/codex-orchestrator`): where it is installed, and its
//! `codex.orchestrator.json`, which the peer uses when a repository has none.
//!
//! Most of the peer's shipped pipelines run scripts from the package
//! (`node "$CODEX_ORCHESTRATOR_PACKAGE_ROOT/dist/..."`), so stages need its location. The peer
//! knows it as its own install directory; we look for it, in this order: the environment
//! (`CODEX_ORCHESTRATOR_PACKAGE_ROOT`), `node_modules/@kbediako/codex-orchestrator` in the repo
//! root or one of its parents (a project dependency, the usual install), then the global npm
//! root. Asking npm costs a process start (most of a second), so it happens only when a stage
//! mentions the variable or there is no repo config to use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::ConfigError;
use crate::env_vars;

/// The package's name under `node_modules`.
pub const PACKAGE_DIR: &str = "node_modules/@kbediako/codex-orchestrator";

/// A found package and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Its root directory (holds `package.json`, `dist/`, `codex.orchestrator.json`).
    pub root: PathBuf,
    /// Where it was found.
    pub source: PackageSource,
}

/// Where a package root came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageSource {
    /// `CODEX_ORCHESTRATOR_PACKAGE_ROOT` in the environment.
    Env,
    /// `node_modules` of the repo root or a parent directory.
    NodeModules,
    /// The global npm root (`npm root -g`).
    NpmGlobal,
}

impl PackageSource {
    /// How the source is named in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageSource::Env => "env",
            PackageSource::NodeModules => "node_modules",
            PackageSource::NpmGlobal => "npm-global",
        }
    }
}

impl Package {
    /// The package's own `codex.orchestrator.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("codex.orchestrator.json")
    }
}

/// Finds the package without starting any process: the environment, then `node_modules` in
/// `repo` or a parent.
pub fn find_local(repo: &Path) -> Option<Package> {
    if let Some(root) = env_vars::non_blank(env_vars::PACKAGE_ROOT) {
        // Taken as given, like every other path variable: a wrong value shows up as the
        // stage's own error, naming the path.
        return Some(Package {
            root: PathBuf::from(root),
            source: PackageSource::Env,
        });
    }
    repo.ancestors()
        .map(|dir| dir.join(PACKAGE_DIR))
        .find(|root| root.join("package.json").is_file())
        .map(|root| Package {
            root: real(root),
            source: PackageSource::NodeModules,
        })
}

/// [`find_local`], then the global npm root (asks `npm root -g`; `None` when npm is missing,
/// fails, or the package is not installed there).
pub fn find(repo: &Path) -> Option<Package> {
    find_local(repo).or_else(|| {
        let out = Command::new("npm")
            .args(["root", "-g"])
            .current_dir(repo)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let global = String::from_utf8(out.stdout).ok()?;
        let root = Path::new(global.trim()).join("@kbediako/codex-orchestrator");
        root.join("package.json").is_file().then(|| Package {
            root: real(root),
            source: PackageSource::NpmGlobal,
        })
    })
}

/// Which config file a command reads: `repo_config` when it exists; otherwise, unless the
/// repo config is `required`, the package's own config (the peer's fallback), returned with
/// the package it came from.
pub fn locate_config(
    repo_config: &Path,
    repo: &Path,
    required: bool,
) -> Result<(PathBuf, Option<Package>), ConfigError> {
    // Anything but "not there" (a directory, no permission) is the repo config's own error,
    // reported when it is read: the fallback is for a repository without a config only.
    match std::fs::symlink_metadata(repo_config) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return Ok((repo_config.to_owned(), None)),
    }
    if required {
        return Err(ConfigError::RepoConfigRequired {
            path: repo_config.to_owned(),
        });
    }
    match find(repo) {
        Some(package) if package.config_path().is_file() => {
            Ok((package.config_path(), Some(package)))
        }
        found => Err(ConfigError::Missing {
            path: repo_config.to_owned(),
            package: found.map(|p| p.root),
        }),
    }
}

/// `--repo-config-required[=BOOL]`, else `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED` (blank:
/// unset), else false. Values as the peer reads them: `1 true yes on` / `0 false no off`.
pub fn repo_config_required(flag: Option<&str>) -> Result<bool, String> {
    let (raw, label) = match flag {
        Some(v) => (v.to_owned(), "--repo-config-required".to_owned()),
        None => match env_vars::non_blank(env_vars::REPO_CONFIG_REQUIRED) {
            Some(v) => (v, env_vars::REPO_CONFIG_REQUIRED.to_owned()),
            None => return Ok(false),
        },
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{label} is `{raw}`, expected true or false (1/0, yes/no, on/off)"
        )),
    }
}

/// The package's real path: the peer knows its root as the directory its own code runs from,
/// with symlinks resolved (a linked or pnpm-style install), and its scripts print it.
fn real(root: PathBuf) -> PathBuf {
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// The first `node` on `PATH` (the peer gives stages the node running it).
pub fn node_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join("node"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_values_as_the_peer_reads_them() {
        for (v, want) in [
            ("1", true),
            ("Yes", true),
            (" on ", true),
            ("0", false),
            ("off", false),
        ] {
            assert_eq!(repo_config_required(Some(v)), Ok(want), "{v}");
        }
        assert!(repo_config_required(Some("maybe")).is_err());
    }

    #[test]
    fn finds_the_package_in_a_parent_node_modules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join(PACKAGE_DIR);
        std::fs::create_dir_all(&root).expect("mkdir");
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("mkdir");
        // Without package.json it is not a package.
        if std::env::var_os(env_vars::PACKAGE_ROOT).is_none() {
            assert_eq!(find_local(&nested), None);
            std::fs::write(root.join("package.json"), "{}").expect("write");
            assert_eq!(
                find_local(&nested),
                Some(Package {
                    root: std::fs::canonicalize(&root).expect("exists"),
                    source: PackageSource::NodeModules
                })
            );
        }
    }
}
