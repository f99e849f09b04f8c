//! The peer (npm `@kbediako/codex-orchestrator` 0.2.1), installed by `.ci/run` (and by
//! `bench/run.sh` on a workstation) into `${XDG_CACHE_HOME:-$HOME/.cache}/
//! codex-orchestrator-peer/0.2.1` (`PEER_CACHE` overrides). Tests that compare with it call
//! [`peer`]: in CI (`CI` set) a missing peer is a failure, not a skip; elsewhere the test says
//! on stderr that it skipped and why.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The installed peer.
pub(crate) struct Peer {
    /// Its CLI (`node_modules/.bin/codex-orchestrator`).
    pub(crate) bin: PathBuf,
    /// Its package root (holds `codex.orchestrator.json`, `schemas/`, `dist/`).
    pub(crate) root: PathBuf,
}

/// The peer's cache directory.
fn cache() -> Option<PathBuf> {
    if let Ok(c) = std::env::var("PEER_CACHE") {
        return Some(PathBuf::from(c));
    }
    let base = match std::env::var("XDG_CACHE_HOME") {
        Ok(x) if !x.is_empty() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var("HOME").ok()?).join(".cache"),
    };
    Some(base.join("codex-orchestrator-peer/0.2.1"))
}

/// The peer's package root if it is installed (no decision about skipping).
pub(crate) fn root() -> Option<PathBuf> {
    let root = cache()?.join("node_modules/@kbediako/codex-orchestrator");
    root.join("package.json").is_file().then_some(root)
}

/// The peer, or `None` (after saying why) when it is not installed outside CI. Panics in CI:
/// `.ci/run` installs it, so a missing peer there is a broken setup, not a reason to skip.
pub(crate) fn peer(test: &str) -> Option<Peer> {
    let found = root().and_then(|root| {
        let bin = cache()?.join("node_modules/.bin/codex-orchestrator");
        bin.exists().then(|| Peer {
            bin,
            root: std::fs::canonicalize(&root).unwrap_or(root),
        })
    });
    if found.is_none() {
        let why = format!(
            "the peer is not installed in {} (`.ci/run` installs it, as does `bench/run.sh`)",
            cache().map_or("<no HOME>".into(), |c| c.display().to_string())
        );
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "{test}: {why}"
        );
        eprintln!("SKIPPED {test}: {why}; set CI=1 to make this a failure");
    }
    found
}

/// What one run of a binary printed.
pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Out {
    /// The JSON document on stdout. The peer prints `[Codex-Orchestrator] …` log lines on
    /// stdout before it, even with `--format json`: they are skipped.
    pub(crate) fn json(&self) -> Value {
        let start = self
            .stdout
            .lines()
            .position(|l| l.starts_with('{') || l.starts_with('['))
            .unwrap_or_else(|| {
                panic!(
                    "no JSON on stdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            });
        let text: Vec<&str> = self.stdout.lines().skip(start).collect();
        serde_json::from_str(&text.join("\n")).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `program args` in `dir` with a clean environment (`PATH`, `HOME=home`) plus `envs`.
pub(crate) fn run(
    program: &std::path::Path,
    dir: &std::path::Path,
    home: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The JSON types (`object`, `array`, `string`, `number`, `bool`; not `null`) seen at each
/// key path.
fn key_types(
    v: &Value,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<&'static str>> {
    fn kind(v: &Value) -> Option<&'static str> {
        match v {
            Value::Null => None,
            Value::Bool(_) => Some("bool"),
            Value::Number(_) => Some("number"),
            Value::String(_) => Some("string"),
            Value::Array(_) => Some("array"),
            Value::Object(_) => Some("object"),
        }
    }
    fn walk(
        v: &Value,
        prefix: &str,
        out: &mut std::collections::BTreeMap<String, std::collections::BTreeSet<&'static str>>,
    ) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    let entry = out.entry(p.clone()).or_default();
                    entry.extend(kind(x));
                    walk(x, &p, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, &format!("{prefix}[]"), out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(v, "", &mut out);
    out
}

/// Fails naming every key path the peer's document has and ours lacks, and every one whose
/// values have different JSON types on both sides (`null` matches anything), apart from
/// `allowed` (documented differences, matched as path prefixes).
pub(crate) fn assert_has_peer_keys(peer: &Value, ours: &Value, allowed: &[&str], what: &str) {
    let allowed_path = |p: &str| {
        allowed
            .iter()
            .any(|a| p == *a || p.starts_with(&format!("{a}.")) || p.starts_with(&format!("{a}[]")))
    };
    let theirs = key_types(peer);
    let mine = key_types(ours);
    let mut problems = Vec::new();
    for (path, types) in &theirs {
        if allowed_path(path) {
            continue;
        }
        match mine.get(path) {
            None => problems.push(format!("missing: {path}")),
            Some(ours) if !types.is_empty() && !ours.is_empty() && types.is_disjoint(ours) => {
                problems.push(format!("type: {path}: peer {types:?}, ours {ours:?}"));
            }
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: the peer's keys, compared with ours: {problems:#?}"
    );
}
