//! `TestEnv`: a temp repo with a config, a clean environment, and helpers to run the binary and
//! read what it wrote. Redaction filters for snapshots live here, once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_codex-orchestrator-e2e");

pub(crate) struct TestEnv {
    pub(crate) dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    pub(crate) fn run_id(&self) -> String {
        self.json()["run_id"].as_str().expect("run_id").to_owned()
    }
}

impl TestEnv {
    pub(crate) fn new() -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("tempdir"),
            envs: Vec::new(),
        }
    }

    pub(crate) fn config(self, json: &str) -> TestEnv {
        std::fs::write(self.path().join("codex.orchestrator.json"), json).expect("write config");
        self
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> TestEnv {
        self.envs.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Drops a variable set with [`TestEnv::env`].
    pub(crate) fn unset(mut self, k: &str) -> TestEnv {
        self.envs.retain(|(name, _)| name != k);
        self
    }

    pub(crate) fn envs(&self) -> &[(String, String)] {
        &self.envs
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    pub(crate) fn cli<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out: Output = self.command(args).output().expect("run binary");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// [`TestEnv::cli`] that must end within `limit`: killed and failed otherwise (a hang is a
    /// bug, not a slow test). Returns the run and how long it took.
    pub(crate) fn cli_bounded<I, S>(
        &self,
        args: I,
        limit: std::time::Duration,
    ) -> (Run, std::time::Duration)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let started = std::time::Instant::now();
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run binary");
        // Drained on threads: a full pipe must not look like a hang.
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut b);
            b
        });
        let err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = std::io::Read::read_to_end(&mut err, &mut b);
            b
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the runner did not end within {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let took = started.elapsed();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.join().expect("stdout")).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().expect("stderr")).into_owned(),
        };
        (run, took)
    }

    /// `start <pipeline> --format json`.
    pub(crate) fn start(&self, pipeline: &str, extra: &[&str]) -> Run {
        let mut args = vec!["start", pipeline, "--format", "json"];
        args.extend_from_slice(extra);
        self.cli(args)
    }

    pub(crate) fn run_dir(&self, run_id: &str) -> PathBuf {
        self.path().join(".runs/0101/cli").join(run_id)
    }

    /// The run's record as our readers see it: `manifest.json` merged with its sidecar.
    pub(crate) fn manifest(&self, run_id: &str) -> Value {
        merged(&self.run_dir(run_id).join("manifest.json"))
    }

    /// `manifest.json` alone, as the peer's tools see it.
    pub(crate) fn main_file(&self, run_id: &str) -> Value {
        read_json(&self.run_dir(run_id).join("manifest.json"))
    }

    /// The id of the one run under `.runs/0101/cli` (the first one listed if there are more).
    pub(crate) fn only_run_id(&self) -> String {
        std::fs::read_dir(self.path().join(".runs/0101/cli"))
            .expect("runs")
            .next()
            .expect("one run")
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned()
    }

    /// `strace <strace_args> <our binary> start p` in the repo with the test's clean env.
    pub(crate) fn start_under_strace(&self, strace_args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("strace");
        cmd.args(strace_args)
            .arg(BIN)
            .args(["start", "p"])
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .stdin(Stdio::null());
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.output().expect("strace")
    }

    pub(crate) fn runs_exists(&self) -> bool {
        self.path().join(".runs").exists()
    }

    /// Replaces the temp dir, run ids and timestamps in text.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.path().to_string_lossy().to_string(), "[TMP]");
        out = redact_pattern(&out, is_run_id_at, 33, "[RUN_ID]");
        out = redact_pattern(&out, is_ts_at, 24, "[TS]");
        out
    }
}

/// Every run's record written in this test validates, whatever the test asserted: see
/// [`assert_valid_record_files`]. Not while a test is already failing (a second panic would
/// abort and hide the first).
impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for run in run_dirs(self.path()) {
            assert_valid_record_files(&run);
        }
    }
}

/// Every `<...>/cli/<run>/` directory holding a `manifest.json` under `root`.
pub(crate) fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if d.file_name().is_some_and(|n| n == "cli") && p.join("manifest.json").is_file() {
                out.push(p);
            } else {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `(id, status)` of every stage of a record, in record order.
pub(crate) fn stage_statuses(m: &Value) -> Vec<(String, String)> {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

/// Waits (30 s at most) until a record under `.runs` shows stage `stage` running; returns
/// that run's id (a sub-pipeline's child run counts too).
pub(crate) fn wait_for_running_stage(env: &TestEnv, stage: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "stage `{stage}` never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        for dir in run_dirs(&env.path().join(".runs")) {
            let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
                continue;
            };
            let Ok(m) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let running = m["commands"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["id"] == stage && c["status"] == "running")
            });
            if let Some(id) = m["run_id"].as_str().filter(|_| running) {
                return id.to_owned();
            }
        }
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `manifest.json` merged with its sidecar `manifest.ext.json`, through the one helper our
/// readers use.
pub(crate) fn merged(manifest: &Path) -> Value {
    shared_manifest::read_value(manifest)
        .unwrap_or_else(|e| panic!("{}: {}", manifest.display(), e.describe()))
}

pub(crate) fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

pub(crate) fn read_lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad line in {}: {e}: {l}", p.display()))
        })
        .collect()
}

fn redact_pattern(text: &str, at: fn(&[u8]) -> bool, len: usize, with: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if i + len <= b.len() && at(&b[i..i + len]) {
            out.push_str(with);
            i += len;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

/// `2026-11-22T07-39-12-703Z-d84e78f7`
fn is_run_id_at(b: &[u8]) -> bool {
    digits(&b[0..4])
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b'-'
        && b[19] == b'-'
        && &b[23..25] == b"Z-"
        && b[25..33].iter().all(u8::is_ascii_hexdigit)
}

/// `2026-11-22T07:39:12.703Z`
fn is_ts_at(b: &[u8]) -> bool {
    digits(&b[0..4])
        && b[4] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
}

/// The peer's published `schemas/manifest.json` (see `peer.rs`: missing in CI fails the test).
pub(crate) fn peer_schema() -> Option<Value> {
    crate::peer::peer("peer schema check").map(|p| read_json(&p.root.join("schemas/manifest.json")))
}

fn repo_schema(name: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas")
            .join(name),
    )
}

/// Our published superset schema: the inline layout, and the merged view of any layout.
pub(crate) fn our_schema() -> Value {
    repo_schema("manifest.schema.json")
}

/// Our published schema of the sidecar `manifest.ext.json`.
pub(crate) fn ext_schema() -> Value {
    repo_schema("manifest.ext.schema.json")
}

fn check(schema: &Value, doc: &Value, what: &str) {
    let v = jsonschema::validator_for(schema).expect("the schema compiles");
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

/// The merged view of a run's record (as our readers see it) validates against our superset
/// schema. The files themselves are checked by [`assert_valid_record_files`].
pub(crate) fn assert_valid_manifest(m: &Value) {
    check(
        &our_schema(),
        m,
        "the merged manifest violates schemas/manifest.schema.json",
    );
}

/// The files of one run's record, as written: `manifest.json` validates against the peer's
/// `schemas/manifest.json` exactly as published (nothing stripped), and the sidecar against
/// our `schemas/manifest.ext.schema.json`; an inline `manifest.json` (it holds
/// `schema_version`) against our superset schema.
pub(crate) fn assert_valid_record_files(run: &Path) {
    let main_path = run.join("manifest.json");
    let main = read_json(&main_path);
    let what = |schema: &str| format!("{} violates {schema}", main_path.display());
    if main.get("schema_version").is_some() {
        check(
            &our_schema(),
            &main,
            &what("schemas/manifest.schema.json (inline)"),
        );
        return;
    }
    if let Some(peer) = peer_schema() {
        check(&peer, &main, &what("the peer's schemas/manifest.json"));
    }
    let side = run.join("manifest.ext.json");
    if side.is_file() {
        check(
            &ext_schema(),
            &read_json(&side),
            &format!(
                "{} violates schemas/manifest.ext.schema.json",
                side.display()
            ),
        );
    }
}

/// The manifest with volatile values replaced, for snapshots.
pub(crate) fn redact_manifest(env: &TestEnv, m: &Value) -> Value {
    let text = serde_json::to_string_pretty(m).expect("json");
    let mut v: Value = serde_json::from_str(&env.redact(&text)).expect("json");
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    match k.as_str() {
                        "resume_token" => *x = Value::String("[TOKEN]".into()),
                        "duration_ms" => *x = Value::String("[DUR]".into()),
                        "runner_pid" | "pid" | "pgid" | "start_ticks" => {
                            *x = Value::String("[PID]".into())
                        }
                        "runner_version" => *x = Value::String("[VERSION]".into()),
                        // A digest of the whole stage config as the runner sees it: changes
                        // with every new config field, which is not what these snapshots test.
                        "fingerprint" => {
                            if let Some(c) = x.get_mut("config") {
                                *c = Value::String("[DIGEST]".into());
                            }
                        }
                        "concurrency" if x.is_number() => {}
                        _ => walk(x),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// A cgroup v2 directory of our own: everything the runner starts lands in it, so
/// `populated 0` after the run proves no process of the run survived (grandchildren and
/// reparented orphans included). `None` (with a printed reason) when not root or no cgroup2.
pub(crate) struct Cgroup(std::path::PathBuf);

impl Cgroup {
    pub(crate) fn new(name: &str) -> Option<Cgroup> {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let Some(root) = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_owned())
        }) else {
            eprintln!("SKIPPED cgroup check: no cgroup2 mount");
            return None;
        };
        let dir = std::path::Path::new(&root).join(format!("co-e2e-{name}-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!(
                "SKIPPED cgroup check: cannot create {} ({e}); needs root",
                dir.display()
            );
            return None;
        }
        Some(Cgroup(dir))
    }

    /// The runner, started through `sh` so it joins the cgroup before it execs.
    pub(crate) fn wrap(&self, env: &TestEnv, args: &[&str]) -> std::process::Command {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
            self.0.display()
        );
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg(script).arg(crate::harness::BIN).args(args);
        sh.current_dir(env.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", env.path());
        for (k, v) in env.envs() {
            sh.env(k, v);
        }
        sh
    }

    pub(crate) fn populated(&self) -> bool {
        let events = std::fs::read_to_string(self.0.join("cgroup.events")).expect("cgroup.events");
        events.lines().any(|l| l == "populated 1")
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}
