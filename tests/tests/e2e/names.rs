//! Finding runs and configs the way people name them: positional or `--run`, a unique prefix,
//! `latest` / `--last`, ambiguity listing the candidates; the config found from a
//! subdirectory, `-f/--config`, and the explicit environment variables winning over the walk.

use crate::harness::TestEnv;

const ONE: &str = r#"{"pipelines":[{"id":"p","title":"P","stages":[{"kind":"command","id":"a","command":"true"}]}]}"#;

/// Two runs of task 0101 and one of task `other`, oldest first.
fn three_runs(env: &TestEnv) -> Vec<String> {
    let mut ids = Vec::new();
    for task in ["0101", "0101", "other"] {
        let run = env.start("p", &["--task", task]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        ids.push(run.run_id());
        // Run ids carry milliseconds: keep them apart.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ids
}

fn status_id(env: &TestEnv, args: &[&str]) -> Result<String, (i32, String)> {
    let mut all = vec!["status", "--format", "json"];
    all.extend_from_slice(args);
    let out = env.cli(&all);
    if out.code != 0 {
        return Err((out.code, out.stderr));
    }
    Ok(out.json()["run_id"].as_str().expect("run_id").to_owned())
}

#[test]
fn runs_by_id_prefix_and_latest() {
    let env = TestEnv::new().config(ONE);
    let ids = three_runs(&env);
    // Positional and --run name the same run.
    assert_eq!(status_id(&env, &[&ids[0]]), Ok(ids[0].clone()));
    assert_eq!(status_id(&env, &["--run", &ids[0]]), Ok(ids[0].clone()));
    // A unique prefix: the random suffix of one id, cut short.
    let unique = &ids[1][..ids[1].len() - 2];
    assert_eq!(status_id(&env, &[unique]), Ok(ids[1].clone()));
    // Newest overall, newest of a task; `status` without a run is the newest.
    assert_eq!(status_id(&env, &["--last"]), Ok(ids[2].clone()));
    assert_eq!(status_id(&env, &["latest"]), Ok(ids[2].clone()));
    assert_eq!(status_id(&env, &[]), Ok(ids[2].clone()));
    assert_eq!(
        status_id(&env, &["--last", "--task", "0101"]),
        Ok(ids[1].clone())
    );
    // Ambiguous: every run starts with the year. The error lists them, newest first.
    let (code, err) = status_id(&env, &["20"]).expect_err("ambiguous");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: run prefix `20` matches 3 runs: "),
        "{err}"
    );
    let listed = ids
        .iter()
        .rev()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>();
    assert!(err.contains(&listed.join(", ")), "{err}");
    // None.
    let (code, err) = status_id(&env, &["1999"]).expect_err("none");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("run `1999` not found"), "{err}");
    // Verbs that change a run need a name.
    let out = env.cli(["resume"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("which run?"), "{}", out.stderr);
    // The same names work for the other verbs.
    let out = env.cli(["report", "junit", "--last"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&ids[2]), "{}", out.stdout);
    let out = env.cli(["runs", "show", unique, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["run_id"], ids[1].as_str());
    let out = env.cli(["runs", "diff", "latest", unique, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = env.cli(["cancel", unique]);
    assert_eq!(out.code, 3, "a finished run has no runner: {}", out.stderr);
    assert!(out.stderr.contains(&ids[1]), "{}", out.stderr);
}

#[test]
fn no_runs_yet() {
    let env = TestEnv::new().config(ONE);
    let out = env.cli(["status"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("no runs yet"), "{}", out.stderr);
}

#[test]
fn config_found_from_a_subdirectory() {
    let env = TestEnv::new().config(ONE);
    std::fs::create_dir(env.path().join(".git")).expect(".git");
    let sub = env.path().join("src/deep");
    std::fs::create_dir_all(&sub).expect("subdir");
    let out = env
        .command(["start", "p", "--format", "json"])
        .current_dir(&sub)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run is recorded at the repo root the config was found in, not in the subdirectory.
    assert!(env.path().join(".runs/0101/cli").is_dir());
    assert!(!sub.join(".runs").exists());
    // `status` from the subdirectory finds it too.
    let out = env
        .command(["status", "--last"])
        .current_dir(&sub)
        .output()
        .expect("status");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_flag_and_environment_precedence() {
    let env = TestEnv::new().config(ONE);
    let other = env.path().join("elsewhere");
    std::fs::create_dir(&other).expect("dir");
    std::fs::write(
        other.join("ci.json"),
        r#"{"pipelines":[{"id":"q","title":"Q","stages":[{"kind":"command","id":"b","command":"true"}]}]}"#,
    )
    .expect("config");
    // -f: that file, its directory as the repo root.
    let out = env.cli(["start", "q", "-f", "elsewhere/ci.json", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(other.join(".runs/0101/cli").join(out.run_id()).is_dir());
    // CODEX_ORCHESTRATOR_REPO_CONFIG_PATH wins over the walk; the repo stays the cwd.
    let env2 = TestEnv::new().config(ONE).env(
        "CODEX_ORCHESTRATOR_REPO_CONFIG_PATH",
        &other.join("ci.json").to_string_lossy(),
    );
    let out = env2.start("q", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env2
        .path()
        .join(".runs/0101/cli")
        .join(out.run_id())
        .is_dir());
    // CODEX_ORCHESTRATOR_ROOT: no walk, that root's config.
    let env3 = TestEnv::new().env("CODEX_ORCHESTRATOR_ROOT", &env.path().to_string_lossy());
    let out = env3.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env
        .path()
        .join(".runs/0101/cli")
        .join(out.run_id())
        .is_dir());
}

/// `latest` is the newest run someone started: a sub-pipeline's child run (newer than its
/// parent, listed in the parent's `child_runs`) is passed over, so `resume --last` after a
/// failed child resumes the parent; a run started with `--parent-run` by hand still counts.
#[test]
fn latest_passes_over_a_sub_pipelines_child_run() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[
          {"id":"p","stages":[{"kind":"subpipeline","id":"sub","pipeline":"c"},
                              {"kind":"command","id":"after","command":"true"}]},
          {"id":"c","stages":[{"kind":"command","id":"x","command":"test -f ok"}]}]}"#,
    );
    let parent = env.start("p", &[]);
    assert_eq!(parent.code, 1, "{}", parent.stderr);
    let parent_id = parent.run_id();
    let m = env.manifest(&parent_id);
    let child_id = m["child_runs"][0]["run_id"]
        .as_str()
        .expect("a child run")
        .to_owned();
    assert!(child_id > parent_id, "the child is the newest run");
    assert_eq!(status_id(&env, &["--last"]), Ok(parent_id.clone()));
    assert_eq!(status_id(&env, &["latest"]), Ok(parent_id.clone()));
    // The child is still reachable by its id.
    assert_eq!(status_id(&env, &[&child_id]), Ok(child_id.clone()));
    // resume --last resumes the parent (which takes its child over) and succeeds.
    std::fs::write(env.path().join("ok"), "").expect("ok");
    let resumed = env.cli(["resume", "--last", "--format", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(env.manifest(&parent_id)["status"], "succeeded");
    // A run started by hand with --parent-run is not a sub-pipeline's child: it is latest.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let by_hand = env.start("c", &["--parent-run", &parent_id]);
    assert_eq!(by_hand.code, 0, "{}", by_hand.stderr);
    assert_eq!(status_id(&env, &["--last"]), Ok(by_hand.run_id()));
}
