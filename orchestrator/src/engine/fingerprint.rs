//! Fail-closed resume: what a stage's result depends on, recorded when it starts, and the
//! repository state where the run stopped, so that `resume` reuses a succeeded stage only
//! when none of it changed.
//!
//! A stage's fingerprint (extension key `fingerprint` of its record) holds digests, never
//! values (a variable may be a secret): its command text, its `cwd` as configured, its whole
//! stage config, and the value of every variable it names (`$NAME`/`${NAME}` in its command or
//! `cwd`, and its `env` keys) as the stage gets it. The repository state (`repo_state.stopped`,
//! top level) is a snapshot of the git work tree (`gitstate`: HEAD and the tree digest of
//! every non-ignored file, taken through a temporary index, never the user's) when the run
//! stopped: after its last stage ended, cancelled or failed, or — for a runner that crashed —
//! when `resume` found it. Comparing the tree *now* with the tree *then* means a stage's own
//! outputs never count as a change; only what changed since the run stopped does. Outside a
//! git work tree there is no repository state, and only the fingerprints are compared.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared_manifest::schema::Manifest;

use crate::config::{CommandStage, StageKind};
use crate::gitstate::{self, Git, SnapshotOptions};
use crate::plan::Plan;
use crate::record::layout::Roots;

/// A stage record's key for its fingerprint.
pub const KEY: &str = "fingerprint";
/// A stage record's key saying it was reused although what it depends on changed.
pub const STALE_KEY: &str = "reused_stale";
/// The run record's key for the repository state.
pub const REPO_KEY: &str = "repo_state";
/// Changed files named per stage in a message.
const NAMED: usize = 5;

fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The variables a stage names: `$NAME` and `${NAME...}` in its command (or its `args`) and
/// `cwd`, and the keys of its `env`. A shell's own variables (`$1`, `$?`, `$$`) are not names.
fn named_vars(cmd: &CommandStage) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = cmd.env.iter().map(|(k, _)| k.clone()).collect();
    let command = cmd.shell_text();
    for text in [Some(command.as_str()), cmd.cwd.as_deref()]
        .into_iter()
        .flatten()
    {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'$' {
                let start = i + 1 + usize::from(b.get(i + 1) == Some(&b'{'));
                let mut end = start;
                while end < b.len()
                    && (b[end].is_ascii_alphanumeric() || b[end] == b'_')
                    && !(end == start && b[end].is_ascii_digit())
                {
                    end += 1;
                }
                if end > start {
                    names.insert(text[start..end].to_owned());
                }
                i = end.max(i + 1);
            } else {
                i += 1;
            }
        }
    }
    names
}

/// The fingerprint of command stage `cmd` run with runner variables `vars` (`vars`, `--var`):
/// what its result depends on besides the work tree.
pub fn stage(vars: &[(String, String)], cmd: &CommandStage) -> Value {
    let env: BTreeMap<String, Value> = named_vars(cmd)
        .into_iter()
        .map(|name| {
            let value = vars
                .iter()
                .chain(&cmd.env)
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes().to_vec())
                .or_else(|| std::env::var_os(&name).map(OsStringExt::into_vec));
            (
                name,
                value.map_or(Value::Null, |v| Value::String(digest(&v))),
            )
        })
        .collect();
    json!({
        "command": digest(cmd.shell_text().as_bytes()),
        "cwd": cmd.cwd,
        "config": digest(format!("{cmd:?}").as_bytes()),
        "env": env,
    })
}

/// What differs between a recorded fingerprint and the one of now, in words.
pub fn compare(then: &Value, now: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if then["command"] != now["command"] {
        out.push("command changed".to_owned());
    } else if then["config"] != now["config"] {
        out.push("config changed".to_owned());
    }
    if then["cwd"] != now["cwd"] {
        out.push("cwd changed".to_owned());
    }
    let empty = serde_json::Map::new();
    let (a, b) = (
        then["env"].as_object().unwrap_or(&empty),
        now["env"].as_object().unwrap_or(&empty),
    );
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for name in names {
        if a.get(name) != b.get(name) {
            out.push(format!("env changed: {name}"));
        }
    }
    out
}

/// True when `dir` or a parent holds `.git`: the cheap test before any git process is spawned
/// (a run outside git pays nothing).
fn in_git(dir: &Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

fn options(roots: &Roots) -> SnapshotOptions {
    SnapshotOptions {
        exclude: vec![roots.runs.clone(), roots.out.clone()],
        ..SnapshotOptions::default()
    }
}

/// The repository state now (`{kind, head, tree, at}`), or `None` outside a git work tree or
/// when git fails (then there is nothing to compare a resume with; logged).
pub fn repo_state(roots: &Roots) -> Option<Value> {
    if !in_git(&roots.repo) {
        return None;
    }
    match gitstate::take(&roots.repo, &options(roots)) {
        Ok(s) if s.kind == gitstate::SnapshotKind::Git => Some(json!({
            "kind": "git", "head": s.head, "tree": s.tree, "at": crate::time::now(),
        })),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take a snapshot of the work tree; resume will not compare it");
            None
        }
    }
}

/// Files that changed since `stopped` (paths relative to the repo root), or why that cannot
/// be known (which counts as a change: fail closed).
fn tree_changes(roots: &Roots, stopped: &Value) -> Result<Vec<String>, String> {
    let tree = stopped["tree"]
        .as_str()
        .ok_or("the recorded state has no tree")?;
    let now = gitstate::take(&roots.repo, &options(roots)).map_err(|e| e.to_string())?;
    if now.tree == tree {
        return Ok(Vec::new());
    }
    let diff = gitstate::snapshot::diff_trees(&Git::in_dir(&now.root), tree, &now.tree)
        .map_err(|e| format!("cannot compare with the recorded tree {tree}: {e}"))?;
    let repo = std::fs::canonicalize(&roots.repo).unwrap_or_else(|_| roots.repo.clone());
    let top = std::fs::canonicalize(&now.root).unwrap_or(now.root);
    let prefix = repo
        .strip_prefix(&top)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut paths: Vec<String> = diff
        .files
        .into_iter()
        .map(|f| match prefix.is_empty() {
            true => f.path,
            false => f
                .path
                .strip_prefix(&format!("{prefix}/"))
                .map_or_else(|| format!("/{}", f.path), str::to_owned),
        })
        .collect();
    if diff.truncated {
        paths.push(format!("… ({} files in all)", diff.files_changed));
    }
    Ok(paths)
}

/// A succeeded stage whose dependencies changed since the run stopped.
#[derive(Debug, Clone)]
pub struct Stale {
    /// 1-based index.
    pub index: usize,
    /// Stage id.
    pub id: String,
    /// What changed, in words (`command changed`, `tree changed: src/lib.rs, Cargo.lock`).
    pub changes: Vec<String>,
}

impl Stale {
    /// `build: tree changed: src/lib.rs; env changed: TOKEN`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.id, self.changes.join("; "))
    }
}

fn name_files(paths: &[String]) -> String {
    let mut s = paths
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > NAMED {
        s.push_str(&format!(" and {} more", paths.len() - NAMED));
    }
    s
}

/// The stages `resume` would reuse although what they depend on changed since the run
/// stopped. Stages without a fingerprint (a peer run, a run of an older runner) are not
/// compared.
pub fn check(manifest: &Manifest, plan: &Plan, roots: &Roots) -> Vec<Stale> {
    let stopped = manifest
        .other
        .get(REPO_KEY)
        .and_then(|r| r.get("stopped"))
        .filter(|s| s["kind"] == "git");
    let tree = stopped.map(|s| tree_changes(roots, s));
    let inputs = input_set(&plan.pipeline.inputs);
    let mut out = Vec::new();
    for (i, (c, s)) in manifest
        .commands
        .iter()
        .zip(&plan.pipeline.stages)
        .enumerate()
    {
        let reused = crate::engine::resume::is_done(c);
        let (StageKind::Command(cmd), Some(then), true) = (&s.kind, c.other.get(KEY), reused)
        else {
            continue;
        };
        let mut changes = compare(then, &stage(&plan.vars, cmd));
        match &tree {
            Some(Ok(paths)) => {
                let relevant: Vec<String> = paths
                    .iter()
                    .filter(|p| inputs.as_ref().is_none_or(|g| g.is_match(p.as_str())))
                    .cloned()
                    .collect();
                if !relevant.is_empty() {
                    changes.push(format!("tree changed: {}", name_files(&relevant)));
                }
            }
            Some(Err(why)) => changes.push(format!("tree changed: {why}")),
            None => {}
        }
        if !changes.is_empty() {
            out.push(Stale {
                index: i + 1,
                id: s.id.clone(),
                changes,
            });
        }
    }
    out
}

/// The pipeline's `inputs` as one matcher; `None` when it has none (the whole tree counts).
fn input_set(globs: &[String]) -> Option<globset::GlobSet> {
    if globs.is_empty() {
        return None;
    }
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        // Checked when the config was read.
        if let Ok(glob) = globset::Glob::new(g) {
            b.add(glob);
        }
    }
    b.build().ok()
}

/// `stale` and every stage that depends on one of them, directly or not (1-based, sorted).
pub fn with_dependents(plan: &Plan, stale: &[Stale]) -> Vec<usize> {
    let mut set: BTreeSet<usize> = stale.iter().map(|s| s.index - 1).collect();
    loop {
        let before = set.len();
        for (i, deps) in plan.graph.deps.iter().enumerate() {
            if deps.iter().any(|d| set.contains(d)) {
                set.insert(i);
            }
        }
        if set.len() == before {
            break;
        }
    }
    set.into_iter().map(|i| i + 1).collect()
}

#[cfg(test)]
mod tests {
    use super::{compare, named_vars};
    use crate::config::CommandStage;

    fn cmd(command: &str) -> CommandStage {
        CommandStage {
            command: command.to_owned(),
            args: None,
            cwd: Some("${DIR}/x".to_owned()),
            env: vec![("FROM_ENV".to_owned(), "1".to_owned())],
            timeout: None,
            allow_failure: false,
            summary_hint: None,
            executor: None,
        }
    }

    #[test]
    fn the_names_a_stage_uses_are_its_variables() {
        let names: Vec<String> = named_vars(&cmd("echo $TOKEN ${PROFILE:-x} $1 $$ $? '$_A1' ${9}"))
            .into_iter()
            .collect();
        assert_eq!(names, ["DIR", "FROM_ENV", "PROFILE", "TOKEN", "_A1"]);
    }

    #[test]
    fn a_changed_value_is_named_and_values_are_not_recorded() {
        let vars = vec![("PROFILE".to_owned(), "release".to_owned())];
        let a = super::stage(&vars, &cmd("make ${PROFILE}"));
        assert!(!a.to_string().contains("release"), "{a}");
        let other = vec![("PROFILE".to_owned(), "debug".to_owned())];
        let b = super::stage(&other, &cmd("make ${PROFILE}"));
        assert_eq!(compare(&a, &b), ["env changed: PROFILE"]);
        let c = super::stage(&vars, &cmd("make  ${PROFILE}"));
        assert_eq!(compare(&a, &c), ["command changed"]);
        assert!(compare(&a, &a).is_empty());
    }
}
