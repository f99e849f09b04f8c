//! Fail-closed resume with real git: a succeeded stage is reused only when its command, its
//! config, the variables it names and the work tree (or the pipeline's `inputs`) are as they
//! were where the run stopped; otherwise `resume` refuses (exit 3, naming the change), or runs
//! the changed stages and their dependents again (`--rerun-changed`, counted with counter
//! files), or keeps them and records it (`--allow-stale`).

use std::path::Path;
use std::process::Command;

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

/// A git repository with the config committed, and a run whose `c` failed (`a`, `b`
/// succeeded). Returns the env and the run id.
fn failed_run(inputs: &str) -> (TestEnv, String) {
    let env = TestEnv::new()
        .config(&config("echo \\\"$FLAVOR\\\"", inputs))
        .env("FLAVOR", "vanilla");
    let dir = env.path();
    std::fs::create_dir_all(dir.join("src")).expect("src");
    std::fs::create_dir_all(dir.join("counts")).expect("counts");
    std::fs::write(dir.join("src/lib.txt"), "one\n").expect("write");
    std::fs::write(dir.join("docs.txt"), "docs\n").expect("write");
    std::fs::write(dir.join(".gitignore"), "counts/\n.runs/\n").expect("write");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "init"]);
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

/// A runner that crashed recorded no stopped state: `resume` records the work tree it found
/// as where the run stopped (changes before that resume cannot be seen), and compares with
/// it from then on.
#[test]
fn a_crashed_run_gets_its_stopped_state_when_resumed() {
    let (env, run_id) = failed_run("");
    // The record as a crashed runner leaves it: no stopped state (its extension key removed).
    let side_path = env.run_dir(&run_id).join("manifest.ext.json");
    let mut side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&side_path).expect("read")).expect("json");
    assert!(side["repo_state"]["stopped"].is_object(), "{side}");
    side.as_object_mut().expect("object").remove("repo_state");
    std::fs::write(
        &side_path,
        serde_json::to_string_pretty(&side).expect("json"),
    )
    .expect("write");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(counts(&env), [1, 1, 2]);
    let m = merged(&env.run_dir(&run_id).join("manifest.json"));
    // The recovered state was recorded, then replaced by where this runner stopped.
    assert!(m["repo_state"]["stopped"]["tree"].is_string(), "{m}");
    // From then on a change is seen again.
    std::fs::write(env.path().join("src/lib.txt"), "two\n").expect("write");
    let out = resume(&env, &run_id, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
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
