//! Fail-closed resume with real git: a succeeded stage is reused only when its command, its
//! config, the variables it names and the work tree (or the pipeline's `inputs`) are as they
//! were where the run stopped; otherwise `resume` refuses (exit 3, naming the change), or runs
//! the changed stages and their dependents again (`--rerun-changed`, counted with counter
//! files), or keeps them and records it (`--allow-stale`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_orchestrator::gitstate::{tree_digest, SnapshotOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::harness::{merged, TestEnv};

/// Three stages in a line (each waits for the one before): `a` reads `src/lib.txt`, `b` prints
/// `$FLAVOR`, `c` passes only with `PASS=1`. Each appends to its counter under `counts/`
/// (git-ignored, so the counters themselves are no change to the tree).
fn config(b_command: &str, inputs: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p",{inputs}"stages":[
  {{"kind":"command","id":"a","command":"echo a >> counts/a; cat src/lib.txt"}},
  {{"kind":"command","id":"b","command":"echo b >> counts/b; {b_command}"}},
  {{"kind":"command","id":"c","command":"echo c >> counts/c; test \"$PASS\" = 1"}}
]}}]}}"#
    )
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .expect("git");
    assert!(st.success(), "git {args:?}");
}

/// A git repository with `config` committed (`src/lib.txt`, `docs.txt`; `counts/` and
/// `.runs/` ignored).
fn repo_with(config: &str) -> TestEnv {
    let env = TestEnv::new().config(config).env("FLAVOR", "vanilla");
    let dir = env.path();
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::create_dir_all(dir.join("counts")).expect("counts");
    std::fs::write(dir.join("src/lib.txt"), "one\n").expect("write");
    std::fs::write(dir.join("docs.txt"), "docs\n").expect("write");
    std::fs::write(dir.join(".gitignore"), "counts/\n.runs/\n").expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "init"]);
    env
}

/// A git repository with the config committed, and a run whose `c` failed (`a`, `b`
/// succeeded). Returns the env and the run id.
fn failed_run(inputs: &str) -> (TestEnv, String) {
    let env = repo_with(&config("echo \\\"$FLAVOR\\\"", inputs));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_id = out.run_id();
    assert_eq!(counts(&env), [1, 1, 1]);
    (env, run_id)
}

fn counts(env: &TestEnv) -> Vec<usize> {
    ["a", "b", "c"]
        .iter()
        .map(|s| {
            std::fs::read_to_string(env.path().join("counts").join(s))
                .map_or(0, |t| t.lines().count())
        })
        .collect()
}

fn resume(env: &TestEnv, run_id: &str, extra: &[&str]) -> crate::harness::Run {
    let mut args = vec!["resume", "--run", run_id, "--format", "json"];
    args.extend_from_slice(extra);
    let mut cmd = env.command(&args);
    cmd.env("PASS", "1");
    let out = cmd.output().expect("run");
    crate::harness::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn nothing_changed_resumes_as_before() {
    let (env, run_id) = failed_run("");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `a` and `b` reused, `c` run again.
    assert_eq!(counts(&env), [1, 1, 2]);
    let m = merged(&env.run_dir(&run_id).join("manifest.json"));
    assert!(m["repo_state"]["stopped"]["tree"].is_string(), "{m}");
    assert!(m["commands"][0]["fingerprint"]["command"].is_string());
    assert_eq!(m["commands"][0].get("reused_stale"), None);
}

#[test]
fn each_kind_of_change_makes_resume_refuse_and_name_it() {
    type Change = fn(&TestEnv) -> Vec<(&'static str, &'static str)>;
    let cases: [(&str, Change, &[&str]); 4] = [
        (
            "tracked file",
            |env| {
                std::fs::write(env.path().join("src/lib.txt"), "two\n").expect("write");
                Vec::new()
            },
            &[
                "a: tree changed: src/lib.txt",
                "b: tree changed: src/lib.txt",
            ],
        ),
        (
            "untracked file",
            |env| {
                std::fs::write(env.path().join("new.txt"), "new\n").expect("write");
                Vec::new()
            },
            &["a: tree changed: new.txt", "b: tree changed: new.txt"],
        ),
        (
            "the config's command",
            |env| {
                std::fs::write(
                    env.path().join("codex.orchestrator.json"),
                    config("echo \\\"$FLAVOR\\\" twice", ""),
                )
                .expect("write");
                // The config file is part of the tree as well, so its change is named too.
                Vec::new()
            },
            &["b: command changed"],
        ),
        (
            "a variable the stage names",
            |_| vec![("FLAVOR", "chocolate")],
            &["b: env changed: FLAVOR"],
        ),
    ];
    for (what, change, want) in cases {
        let (env, run_id) = failed_run("");
        let mut env = env;
        for (k, v) in change(&env) {
            env = env.unset(k).env(k, v);
        }
        let out = resume(&env, &run_id, &[]);
        assert_eq!(out.code, 3, "{what}: {}", out.stderr);
        for w in want {
            assert!(
                out.stderr.contains(w),
                "{what}: no `{w}` in:\n{}",
                out.stderr
            );
        }
        assert!(
            out.stderr.contains("--rerun-changed"),
            "{what}: {}",
            out.stderr
        );
        // Nothing ran, and the record is as the run left it.
        assert_eq!(counts(&env), [1, 1, 1], "{what}");
        let m = merged(&env.run_dir(&run_id).join("manifest.json"));
        assert_eq!(m["status"], "failed", "{what}");
        assert_eq!(m["resume_events"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn rerun_changed_runs_exactly_the_changed_stages_and_their_dependents() {
    let (env, run_id) = failed_run("");
    let env = env.unset("FLAVOR").env("FLAVOR", "chocolate");
    let out = resume(&env, &run_id, &["--rerun-changed"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // `b` changed and `c` depends on it; `a` did not change.
    assert_eq!(counts(&env), [1, 2, 2]);
    let m = merged(&env.run_dir(&run_id).join("manifest.json"));
    let detail = m["resume_events"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("rerun-changed: b: env changed: FLAVOR"),
        "{detail}"
    );
    // A second resume compares with the new fingerprint: nothing changed since.
    let again = resume(&env, &run_id, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(counts(&env), [1, 2, 2]);
}

#[test]
fn allow_stale_keeps_the_results_and_records_it() {
    let (env, run_id) = failed_run("");
    std::fs::write(env.path().join("src/lib.txt"), "two\n").expect("write");
    let out = resume(&env, &run_id, &["--allow-stale"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(counts(&env), [1, 1, 2]);
    let m = merged(&env.run_dir(&run_id).join("manifest.json"));
    let detail = m["resume_events"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("allow-stale: a: tree changed: src/lib.txt"),
        "{detail}"
    );
    for i in [0, 1] {
        assert_eq!(
            m["commands"][i]["reused_stale"]["changes"][0], "tree changed: src/lib.txt",
            "{m}"
        );
    }
    assert_eq!(m["commands"][2].get("reused_stale"), None);
    let main = std::fs::read_to_string(env.run_dir(&run_id).join("manifest.json")).expect("read");
    assert!(!main.contains("reused_stale") && !main.contains("repo_state"));
}

#[test]
fn inputs_narrow_what_counts_as_a_change() {
    let (env, run_id) = failed_run(r#""inputs":["src/**"],"#);
    std::fs::write(env.path().join("docs.txt"), "other docs\n").expect("write");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 0, "a file outside the inputs: {}", out.stderr);
    assert_eq!(counts(&env), [1, 1, 2]);

    let (env, run_id) = failed_run(r#""inputs":["src/**"],"#);
    std::fs::write(env.path().join("src/lib.txt"), "two\n").expect("write");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("a: tree changed: src/lib.txt"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_inputs_are_config_errors() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","inputs":["src/[x"],"stages":[{"kind":"command","id":"a","command":"true"}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.starts_with("error:"), "{}", out.stderr);
    assert!(out.stderr.contains("field `inputs`"), "{}", out.stderr);
    assert!(!env.runs_exists());
}

/// The stages of [`config`], but `c` waits for `counts/go` (ignored, like its counter) before
/// it passes with `PASS=1`: a runner can be killed while `c` runs.
const WAITING_C: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"a","command":"echo a >> counts/a; cat src/lib.txt"},
  {"kind":"command","id":"b","command":"echo b >> counts/b; echo \"$FLAVOR\""},
  {"kind":"command","id":"c","command":"echo c >> counts/c; until [ -e counts/go ]; do sleep 0.05; done; test \"$PASS\" = 1"}
]}]}"#;

/// Polls `ready` for up to a minute (a generous bound: a busy machine is slow, not wrong).
fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (at most a minute; killed and failed after that).
fn exit_code(mut child: std::process::Child, what: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a stage's record must keep across a crash and a resume that reuses it.
fn kept(stage: &serde_json::Value) -> serde_json::Value {
    json!([
        stage["status"],
        stage["started_at"],
        stage["completed_at"],
        stage["exit_code"],
        stage["attempts"],
        stage["fingerprint"],
    ])
}

/// A runner killed (`kill -9`) while `c` runs records no stopped state. `resume` then records
/// the work tree it finds as where the run stopped (`recovered`: changes made before that
/// resume cannot be seen), before any stage runs again; it reuses `a` and `b` with their
/// records as they were, runs `c` again, and compares with the recovered state from then on.
#[test]
fn a_crashed_run_gets_its_stopped_state_when_resumed() {
    let env = repo_with(WAITING_C).env("PASS", "1");
    let runner = env
        .command(["start", "p"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the runner");
    wait_until("c started", || counts(&env)[2] == 1);
    let run_id = env.only_run_id();
    let manifest = env.run_dir(&run_id).join("manifest.json");
    // `c`'s process is recorded before the runner is killed, so the resume can stop it.
    wait_until("c's process group recorded", || {
        merged(&manifest)["commands"][2]["process"]["pgid"].is_i64()
    });
    let survivor = merged(&manifest)["commands"][2]["process"]["pgid"]
        .as_i64()
        .expect("pgid");
    let mut runner = runner;
    kill(Pid::from_raw(runner.id() as i32), Signal::SIGKILL).expect("kill -9 the runner");
    runner.wait().expect("reap the runner");

    // The record as the crash left it: in progress, `c` running, no stopped state.
    let crashed = merged(&manifest);
    assert_eq!(crashed["status"], "in_progress", "{crashed}");
    let statuses: Vec<&serde_json::Value> =
        (0..3).map(|i| &crashed["commands"][i]["status"]).collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "running"], "{crashed}");
    assert_eq!(crashed.get("repo_state"), None, "{crashed}");

    // The tree as the resume will find it (nothing changes it from here on: the stages write
    // only under the ignored `counts/`).
    let options = SnapshotOptions {
        exclude: vec![env.path().join(".runs"), env.path().join("out")],
        ..SnapshotOptions::default()
    };
    let tree_now = tree_digest(env.path(), &options).expect("digest");
    let resumed = env
        .command(["resume", "--run", &run_id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn resume");
    wait_until("c started again", || counts(&env)[2] == 2);
    // Before `c` runs again, the recovered state is durable: a second crash now would still
    // compare with it.
    let during = merged(&manifest);
    assert_eq!(during["repo_state"]["recovered"], true, "{during}");
    assert_eq!(during["repo_state"]["stopped"]["kind"], "git", "{during}");
    assert_eq!(during["repo_state"]["stopped"]["tree"], tree_now.as_str());
    let detail = during["resume_events"][0]["detail"]
        .as_str()
        .expect("detail");
    assert!(detail.contains("previous status: in_progress"), "{detail}");
    // The crashed runner's `c` was stopped, not left running beside the new one.
    wait_until("the crashed runner's stage group gone", || {
        kill(Pid::from_raw(-(survivor as i32)), None).is_err()
    });
    std::fs::write(env.path().join("counts/go"), "").expect("go");
    assert_eq!(exit_code(resumed, "resume"), 0);

    // Nothing lost: `a` and `b` ran once and their records are as the crash left them; `c`
    // ran again and succeeded.
    assert_eq!(counts(&env), [1, 1, 2]);
    let m = merged(&manifest);
    assert_eq!(m["status"], "succeeded", "{m}");
    for i in [0, 1] {
        assert_eq!(
            kept(&m["commands"][i]),
            kept(&crashed["commands"][i]),
            "stage {i}"
        );
    }
    assert_eq!(m["commands"][2]["status"], "succeeded", "{m}");
    assert_eq!(m["resume_events"].as_array().map(Vec::len), Some(1), "{m}");
    // Where this runner stopped replaced the recovered state.
    assert_eq!(m["repo_state"].get("recovered"), None, "{m}");
    assert_eq!(m["repo_state"]["stopped"]["tree"], tree_now.as_str());
    // From then on a change is seen again.
    std::fs::write(env.path().join("src/lib.txt"), "two\n").expect("write");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("a: tree changed: src/lib.txt"),
        "{}",
        out.stderr
    );
}

/// The tree digest resume compares (`gitstate`): one value for the same files whatever order
/// they were written in and whatever the user's index holds (nothing, some of them staged,
/// an older version staged), never touching that index; another value as soon as the bytes
/// of any non-ignored file change; the same value when only an ignored file changes.
mod tree_digest {
    use std::path::Path;

    use codex_orchestrator::gitstate::{tree_digest, SnapshotOptions};
    use proptest::prelude::*;

    use super::git;

    fn repo(files: &[(String, Vec<u8>)], order: &[usize], staged: &[usize]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        git(p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join(".gitignore"), "*.log\n").expect("write");
        for &i in order {
            let (name, bytes) = &files[i];
            std::fs::write(p.join(name), bytes).expect("write");
        }
        std::fs::write(p.join("ignored.log"), "noise").expect("write");
        for &i in staged {
            git(p, &["add", "--", &files[i].0]);
        }
        dir
    }

    fn digest(p: &Path) -> String {
        tree_digest(p, &SnapshotOptions::default()).expect("digest")
    }

    fn index(p: &Path) -> Option<Vec<u8>> {
        std::fs::read(p.join(".git/index")).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]
        #[test]
        fn the_digest_depends_on_file_bytes_only(
            contents in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6),
            seed in any::<u64>(),
            flip in any::<(usize, usize, u8)>(),
        ) {
            let files: Vec<(String, Vec<u8>)> = contents
                .into_iter()
                .enumerate()
                .map(|(i, c)| (format!("f{i}.bin"), c))
                .collect();
            let n = files.len();
            let forward: Vec<usize> = (0..n).collect();
            let mut shuffled = forward.clone();
            shuffled.rotate_left((seed as usize) % n);
            shuffled.reverse();
            let some: Vec<usize> = (0..n).filter(|i| (seed >> i) & 1 == 1).collect();
            let a = repo(&files, &forward, &[]);
            let b = repo(&files, &shuffled, &some);
            let before = index(b.path());
            let d = digest(a.path());
            prop_assert_eq!(&d, &digest(b.path()));
            prop_assert_eq!(before, index(b.path()), "the user's index was touched");
            // An ignored file is no change.
            std::fs::write(b.path().join("ignored.log"), "other noise").expect("write");
            prop_assert_eq!(&d, &digest(b.path()));
            // Any byte of any file is.
            let (file, at, xor) = flip;
            let (name, bytes) = &files[file % n];
            let mut changed = bytes.clone();
            if changed.is_empty() {
                changed.push(xor);
            } else {
                let at = at % changed.len();
                changed[at] ^= xor.max(1);
            }
            std::fs::write(b.path().join(name), &changed).expect("write");
            prop_assert_ne!(&d, &digest(b.path()));
        }
    }
}
