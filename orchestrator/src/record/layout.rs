//! Where everything of a run lives: repo root, `.runs`, the run directory and every file in it,
//! run ids and stage-file slugs (the peer's layout).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::env_vars;

/// The config file's name, looked for in the working directory and its parents.
pub const CONFIG_FILE: &str = "codex.orchestrator.json";

/// `-f/--config`, set once by the entry point before any verb runs (a flag every verb shares;
/// carrying it through every call that builds `Roots` would thread it through the engine).
static CONFIG_FLAG: OnceLock<PathBuf> = OnceLock::new();

/// `-f/--config PATH` as given, if it was (the end summary repeats it in the resume command).
pub fn config_flag() -> Option<&'static PathBuf> {
    CONFIG_FLAG.get()
}

/// Remembers `-f/--config PATH` for every later [`Roots::from_env`].
pub fn set_config_flag(path: PathBuf) {
    let _ = CONFIG_FLAG.set(path);
}

/// The directories a command works with.
#[derive(Debug, Clone)]
pub struct Roots {
    /// Absolute repo root: `CODEX_ORCHESTRATOR_ROOT`, else the directory of `-f`'s file, else
    /// the directory where the config was found, else the current directory.
    pub repo: PathBuf,
    /// Absolute `.runs` directory.
    pub runs: PathBuf,
    /// Absolute `out` directory.
    pub out: PathBuf,
    /// Where the config comes from.
    pub config: ConfigSource,
}

/// How the config file was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `-f/--config PATH` (absolute).
    Flag(PathBuf),
    /// `CODEX_ORCHESTRATOR_REPO_CONFIG_PATH`, or `CODEX_ORCHESTRATOR_ROOT`'s config file.
    Env(PathBuf),
    /// Found walking up from the working directory.
    Found(PathBuf),
    /// Not found: these directories were looked in, nearest first (the walk stops at a
    /// repository root, a directory with `.git`, or at `/`).
    Missing {
        /// The directories searched.
        looked_in: Vec<PathBuf>,
    },
}

impl Roots {
    /// Resolves the roots from `-f`, the environment and the working directory.
    pub fn from_env() -> std::io::Result<Roots> {
        let cwd = std::env::current_dir()?;
        let flag = CONFIG_FLAG.get().map(|p| absolute(&cwd, p));
        let root_env = env_vars::non_blank(env_vars::ROOT).map(|r| absolute(&cwd, Path::new(&r)));
        let (repo, config) = match (root_env, flag) {
            (Some(root), Some(f)) => (root, ConfigSource::Flag(f)),
            (Some(root), None) => {
                let config = env_vars::non_blank(env_vars::REPO_CONFIG_PATH).map_or_else(
                    || root.join(CONFIG_FILE),
                    |p| absolute(&root, Path::new(&p)),
                );
                (root, ConfigSource::Env(config))
            }
            (None, Some(f)) => {
                let dir = f.parent().map_or_else(|| cwd.clone(), Path::to_owned);
                (dir, ConfigSource::Flag(f))
            }
            (None, None) => match env_vars::non_blank(env_vars::REPO_CONFIG_PATH) {
                Some(p) => (
                    cwd.clone(),
                    ConfigSource::Env(absolute(&cwd, Path::new(&p))),
                ),
                None => discover(&cwd),
            },
        };
        let runs = env_vars::non_blank(env_vars::RUNS_DIR)
            .map(|r| absolute(&repo, Path::new(&r)))
            .unwrap_or_else(|| repo.join(".runs"));
        let out = env_vars::non_blank(env_vars::OUT_DIR)
            .map(|r| absolute(&repo, Path::new(&r)))
            .unwrap_or_else(|| repo.join("out"));
        tracing::debug!(
            repo = %repo.display(), runs = %runs.display(), config = ?config,
            "resolved the repo root, the runs directory and the config"
        );
        Ok(Roots {
            repo,
            runs,
            out,
            config,
        })
    }

    /// Roots for `repo` with the default layout (tests and tools that know their repo).
    pub fn for_repo(repo: &Path) -> Roots {
        Roots {
            repo: repo.to_owned(),
            runs: repo.join(".runs"),
            out: repo.join("out"),
            config: ConfigSource::Env(repo.join(CONFIG_FILE)),
        }
    }

    /// The config file to read (for `Missing`: where it would be in the current directory,
    /// so that reading it fails with the OS error; [`Roots::config_missing`] says more).
    pub fn config_path(&self) -> PathBuf {
        match &self.config {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Found(p) => p.clone(),
            ConfigSource::Missing { .. } => self.repo.join(CONFIG_FILE),
        }
    }

    /// When no config was found: `no codex.orchestrator.json found: looked in `a`, `b``, naming
    /// every directory searched.
    pub fn config_missing(&self) -> Option<String> {
        let ConfigSource::Missing { looked_in } = &self.config else {
            return None;
        };
        let dirs: Vec<String> = looked_in
            .iter()
            .map(|d| format!("`{}`", d.display()))
            .collect();
        let stop = match looked_in.last() {
            Some(d) if d.join(".git").exists() => " (stopped at the repository root)",
            _ => "",
        };
        Some(format!(
            "no `{CONFIG_FILE}` found: looked in {}{stop}",
            dirs.join(", ")
        ))
    }

    /// `path` relative to the repo root when it is inside it (the manifest's convention),
    /// otherwise absolute.
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.repo)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// The run directory of an existing or new run.
    pub fn run_dir(&self, task: &str, run_id: &str) -> RunDir {
        RunDir {
            dir: self.runs.join(task).join("cli").join(run_id),
            task_dir: self.runs.join(task),
            run_id: run_id.to_owned(),
            roots: self.clone(),
        }
    }

    /// The run directory of the manifest found at `manifest`, whose content says it is run
    /// `run_id` of task `task`: both must be ids (see [`id_problem`]) and name the directory
    /// the file was found in. Every path of the run is then derived from ids that were
    /// checked: a hand-edited `"run_id": "../../../../evil"` cannot point a lock, a log or a
    /// write outside `.runs`.
    pub fn run_dir_of(&self, manifest: &Path, task: &str, run_id: &str) -> Result<RunDir, String> {
        for (what, id) in [("task_id", task), ("run_id", run_id)] {
            if let Some(problem) = id_problem(id) {
                return Err(format!("its `{what}` `{}` {problem}", show_id(id)));
            }
        }
        let dir = self.run_dir(task, run_id);
        if dir.manifest() != manifest {
            return Err(format!(
                "it says it is run `{run_id}` of task `{task}`, which is not where it was found"
            ));
        }
        Ok(dir)
    }

    /// A path a manifest records (repo-relative or absolute), when it stays under `.runs`:
    /// no `..`, inside `.runs` as written and, when it exists, once symlinks are resolved.
    /// `None` for anything else, which readers treat as missing.
    pub fn recorded_path(&self, recorded: &str) -> Option<PathBuf> {
        let p = absolute(&self.repo, Path::new(recorded));
        let plain = p
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir));
        if !plain || !p.starts_with(&self.runs) {
            return None;
        }
        match (p.canonicalize(), self.runs.canonicalize()) {
            (Ok(real), Ok(runs)) if !real.starts_with(&runs) => None,
            _ => Some(p),
        }
    }
}

/// Walks up from `cwd` to the first directory holding the config, stopping after a repository
/// root (a directory with `.git`) or `/`. Found: that directory is the repo root.
fn discover(cwd: &Path) -> (PathBuf, ConfigSource) {
    let mut looked_in = Vec::new();
    for dir in cwd.ancestors() {
        looked_in.push(dir.to_owned());
        let candidate = dir.join(CONFIG_FILE);
        if candidate.is_file() {
            return (dir.to_owned(), ConfigSource::Found(candidate));
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    (cwd.to_owned(), ConfigSource::Missing { looked_in })
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Every path of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `.runs/<task>/cli/<run>` (absolute).
    pub dir: PathBuf,
    /// `.runs/<task>` (absolute).
    pub task_dir: PathBuf,
    /// The run id.
    pub run_id: String,
    roots: Roots,
}

impl RunDir {
    /// Repo-relative (or absolute) spelling of a path, for the manifest.
    pub fn rel(&self, p: &Path) -> String {
        self.roots.rel(p)
    }
    /// The roots this run lives under.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }
    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }
    /// `runner.ndjson`.
    pub fn runner_log(&self) -> PathBuf {
        self.dir.join("runner.ndjson")
    }
    /// `events.jsonl`.
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }
    /// `.heartbeat`.
    pub fn heartbeat(&self) -> PathBuf {
        self.dir.join(".heartbeat")
    }
    /// `.resume-token`.
    pub fn resume_token(&self) -> PathBuf {
        self.dir.join(".resume-token")
    }
    /// `run.lock`: held by the runner that owns the run.
    pub fn lock(&self) -> PathBuf {
        self.dir.join("run.lock")
    }
    /// `control.json`: the peer's control protocol (cancel requests).
    pub fn control(&self) -> PathBuf {
        self.dir.join("control.json")
    }
    /// `run-summary.json`.
    pub fn run_summary(&self) -> PathBuf {
        self.dir.join("run-summary.json")
    }
    /// `commands/`.
    pub fn commands_dir(&self) -> PathBuf {
        self.dir.join("commands")
    }
    /// `errors/`.
    pub fn errors_dir(&self) -> PathBuf {
        self.dir.join("errors")
    }
    /// `commands/NN-<slug>.ndjson`.
    pub fn stage_log(&self, index: usize, id: &str) -> PathBuf {
        self.commands_dir()
            .join(format!("{index:02}-{}.ndjson", slug(id)))
    }
    /// `commands/NN-<slug>.patch.json`: where stage NN may write a plan patch.
    pub fn plan_patch(&self, index: usize, id: &str) -> PathBuf {
        self.commands_dir()
            .join(format!("{index:02}-{}.patch.json", slug(id)))
    }
    /// `errors/NN-<slug>.json`.
    pub fn error_file(&self, index: usize, id: &str) -> PathBuf {
        self.errors_dir()
            .join(format!("{index:02}-{}.json", slug(id)))
    }
    /// `commands/NN-<slug>.iteration-K.ndjson`: the build log of a loop's iteration K.
    pub fn loop_build_log(&self, index: usize, id: &str, iteration: u32) -> PathBuf {
        self.commands_dir().join(format!(
            "{index:02}-{}.iteration-{iteration}.ndjson",
            slug(id)
        ))
    }
    /// `loop/NN-<slug>/`: a loop stage's feedback files and snapshot listings.
    pub fn loop_dir(&self, index: usize, id: &str) -> PathBuf {
        self.dir
            .join("loop")
            .join(format!("{index:02}-{}", slug(id)))
    }
    /// `evidence/`: the bundle delivery's evidence directory.
    pub fn evidence_dir(&self) -> PathBuf {
        self.dir.join("evidence")
    }
    /// `.runs/<task>/.staging/<run>`: where the run's directory is built before it is
    /// renamed into `cli/` with its first manifest (see `engine::run::prepare`).
    pub fn staging_dir(&self) -> PathBuf {
        self.task_dir.join(".staging").join(&self.run_id)
    }
    /// `.runs/<task>/mcp/<run>`.
    pub fn mcp_dir(&self) -> PathBuf {
        self.task_dir.join("mcp").join(&self.run_id)
    }
    /// `.runs/<task>/metrics.json`.
    pub fn metrics(&self) -> PathBuf {
        self.task_dir.join("metrics.json")
    }
}

/// A new run id: `YYYY-MM-DDTHH-MM-SS-mmmZ-<8 hex>` (UTC).
pub fn new_run_id() -> String {
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    // `2026-11-22T07:39:12.703Z` -> `2026-11-22T07-39-12-703Z`
    let ts = ts.replace([':', '.'], "-");
    let suffix = shared_manifest::entropy::random_u64() as u32;
    format!("{ts}-{suffix:08x}")
}

/// A new resume token: 64 hex characters.
pub fn new_resume_token() -> String {
    (0..4)
        .map(|_| format!("{:016x}", shared_manifest::entropy::random_u64()))
        .collect()
}

/// The peer's file slug: runs of non-alphanumerics become `-`, trimmed, at most 80 characters,
/// `command` when nothing is left.
pub fn slug(id: &str) -> String {
    // Exactly the peer's `slugify`: case kept, `[^a-zA-Z0-9]+` -> `-`, dashes trimmed, then cut
    // to 80 characters (a cut may leave a trailing `-`, as in the peer).
    let mut out = String::with_capacity(id.len());
    for c in id.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "command".to_owned()
    } else {
        trimmed.chars().take(80).collect()
    }
}

/// Longest task or run id: the longest file name Linux filesystems take (`NAME_MAX`).
pub const MAX_ID_BYTES: usize = 255;

/// Why `s` cannot be a task or run id (one component of a path under `.runs`, shown in
/// messages and progress lines), if it cannot.
pub fn id_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("is empty")
    } else if s == "." || s == ".." {
        Some("is `.` or `..`")
    } else if s.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if s.chars().any(char::is_control) {
        Some("contains control characters")
    } else if s.len() > MAX_ID_BYTES {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

/// True for ids usable as one path component (task ids, run ids): see [`id_problem`].
pub fn is_safe_component(s: &str) -> bool {
    id_problem(s).is_none()
}

/// An id as an error message shows it: control characters escaped, long ones shortened.
pub fn show_id(s: &str) -> String {
    let shown: String = s
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 64 {
        format!("{shown}… ({} bytes)", s.len())
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_peer() {
        assert_eq!(slug("hello"), "hello");
        assert_eq!(slug("Build & Test!!"), "Build-Test");
        assert_eq!(slug("--"), "command");
        assert_eq!(slug(&"a".repeat(100)).len(), 80);
    }

    #[test]
    fn run_ids_have_the_peer_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), "2026-11-22T07-39-12-703Z-d84e78f7".len(), "{id}");
        assert_eq!(&id[10..11], "T");
        assert_eq!(&id[23..25], "Z-");
        assert!(id[25..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_run_id(), id);
        assert_eq!(new_resume_token().len(), 64);
    }

    #[test]
    fn discovery_walks_up_to_the_repository_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        let deep = repo.join("a/b");
        std::fs::create_dir_all(&deep).expect("dirs");
        std::fs::create_dir(repo.join(".git")).expect(".git");
        // Above the repository root: never found from inside it.
        std::fs::write(tmp.path().join(CONFIG_FILE), "{}").expect("outer config");
        let (root, source) = discover(&deep);
        assert_eq!(root, deep);
        assert_eq!(
            source,
            ConfigSource::Missing {
                looked_in: vec![deep.clone(), repo.join("a"), repo.clone()]
            }
        );
        std::fs::write(repo.join(CONFIG_FILE), "{}").expect("config");
        assert_eq!(
            discover(&deep),
            (repo.clone(), ConfigSource::Found(repo.join(CONFIG_FILE)))
        );
    }

    #[test]
    fn recorded_paths_stay_under_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = Roots::for_repo(dir.path());
        let inside = ".runs/t/cli/r/commands/01-a.ndjson";
        assert_eq!(roots.recorded_path(inside), Some(dir.path().join(inside)));
        assert_eq!(roots.recorded_path(".runs/t/../../etc/passwd"), None);
        assert_eq!(roots.recorded_path("/etc/passwd"), None);
        assert_eq!(roots.recorded_path("src/main.rs"), None);
        std::fs::create_dir_all(dir.path().join(".runs/t")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", dir.path().join(".runs/t/out")).expect("symlink");
        assert_eq!(
            roots.recorded_path(".runs/t/out/passwd"),
            None,
            "a symlink out"
        );
        let m = roots.run_dir("t", "r").manifest();
        assert!(roots.run_dir_of(&m, "t", "r").is_ok());
        assert!(roots.run_dir_of(&m, "t", "../../../../evil").is_err());
        assert!(roots.run_dir_of(&m, "t", "other").is_err());
        assert!(roots.run_dir_of(&m, "u", "r").is_err());
    }

    #[test]
    fn unsafe_components_are_rejected() {
        assert!(is_safe_component("0101"));
        assert!(!is_safe_component("../x"));
        assert!(!is_safe_component(".."));
        assert!(!is_safe_component(""));
        assert!(!is_safe_component("t\u{1}"));
        assert!(!is_safe_component(&"x".repeat(256)));
        assert!(is_safe_component(&"x".repeat(255)));
        assert_eq!(show_id("t\u{1}"), "t\\u{1}");
        assert_eq!(
            show_id(&"y".repeat(5000)),
            format!("{}… (5000 bytes)", "y".repeat(64))
        );
    }
}
