//! The peer's package and the variables the peer gives stages: where
//! `CODEX_ORCHESTRATOR_PACKAGE_ROOT` comes from (environment, `node_modules` up the tree, the
//! global npm root asked only when needed), what a stage sees when there is none, the package's
//! config used when the repo has none (`--repo-config-required` refusing it), and the rest of
//! the peer's stage environment. A fake package and fake `npm`/`node` on `PATH` keep these
//! independent of what the machine has installed (the real package: `compat.rs`).

use std::path::{Path, PathBuf};

use crate::harness::TestEnv;

const PKG: &str = "node_modules/@kbediako/codex-orchestrator";

/// A fake package at `dir`: `package.json`, a `dist/hello.sh`, and optionally a config.
fn fake_package(dir: &Path, config: Option<&str>) -> PathBuf {
    fake_package_at(dir.join(PKG), config)
}

/// A fake package whose root is `root`.
fn fake_package_at(root: PathBuf, config: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(root.join("dist")).expect("mkdir");
    std::fs::write(
        root.join("package.json"),
        r#"{"name":"@kbediako/codex-orchestrator"}"#,
    )
    .expect("write");
    std::fs::write(root.join("dist/hello.sh"), "echo hello-from-package\n").expect("write");
    if let Some(c) = config {
        std::fs::write(root.join("codex.orchestrator.json"), c).expect("write");
    }
    root
}

/// A `bin/` with executable scripts, first on `PATH`.
fn with_bin(env: TestEnv, scripts: &[(&str, &str)]) -> TestEnv {
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for (name, body) in scripts {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        let chmod = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&p)
            .status()
            .expect("chmod");
        assert!(chmod.success());
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    env.env("PATH", &path)
}

/// A fake `npm` that logs each call and answers `root -g` with `<env>/global`.
fn fake_npm(env: TestEnv) -> TestEnv {
    let global = env.path().join("global");
    let log = env.path().join("npm-calls.log");
    let body = format!(
        "echo \"$@\" >> '{}'\necho '{}'",
        log.display(),
        global.display()
    );
    with_bin(env, &[("npm", &body)])
}

fn npm_calls(env: &TestEnv) -> String {
    std::fs::read_to_string(env.path().join("npm-calls.log")).unwrap_or_default()
}

const USES_ROOT: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"s","command":"echo \"root=[$CODEX_ORCHESTRATOR_PACKAGE_ROOT]\" > out.txt; sh \"$CODEX_ORCHESTRATOR_PACKAGE_ROOT/dist/hello.sh\" >> out.txt"}]}]}"#;

fn out_txt(env: &TestEnv, sub: &str) -> String {
    std::fs::read_to_string(env.path().join(sub).join("out.txt")).expect("out.txt")
}

#[test]
fn the_package_is_found_in_node_modules_of_a_parent_and_the_environment_wins() {
    // The repo is `sub/`; the package is installed one level up.
    let env = fake_npm(TestEnv::new()).env("CODEX_ORCHESTRATOR_ROOT", "sub");
    std::fs::create_dir_all(env.path().join("sub")).expect("mkdir");
    std::fs::write(env.path().join("sub/codex.orchestrator.json"), USES_ROOT).expect("write");
    let root = fake_package(env.path(), None);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out_txt(&env, "sub"),
        format!("root=[{}]\nhello-from-package\n", root.display())
    );
    assert_eq!(npm_calls(&env), "", "found locally: npm is not asked");
    let elsewhere = fake_package(&env.path().join("elsewhere"), None);
    let env = env.env(
        "CODEX_ORCHESTRATOR_PACKAGE_ROOT",
        &elsewhere.to_string_lossy(),
    );
    assert_eq!(env.start("p", &[]).code, 0);
    assert!(out_txt(&env, "sub").starts_with(&format!("root=[{}]", elsewhere.display())));
}

#[test]
fn npm_is_asked_only_when_a_stage_needs_the_package() {
    let env = fake_npm(TestEnv::new()).config(
        r#"{"pipelines":[{"id":"plain","stages":[{"kind":"command","id":"s","command":"true"}]}]}"#,
    );
    assert_eq!(env.start("plain", &[]).code, 0);
    assert_eq!(
        npm_calls(&env),
        "",
        "nothing mentions the package: npm is not started"
    );
    let env = env.config(USES_ROOT);
    // `npm root -g` prints `<env>/global`, whose `@kbediako/codex-orchestrator` is the package.
    fake_package_at(env.path().join("global/@kbediako/codex-orchestrator"), None);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(npm_calls(&env), "root -g\n");
    assert!(out_txt(&env, "").contains("global/@kbediako/codex-orchestrator]"));
}

#[test]
fn without_a_package_the_variable_is_unset_and_the_failure_says_why() {
    let env = fake_npm(TestEnv::new()).config(USES_ROOT);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out_txt(&env, "").lines().next(),
        Some("root=[]"),
        "unset, as the shell sees it"
    );
    let m = env.manifest(&out.run_id());
    let summary = m["commands"][0]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("(hint: CODEX_ORCHESTRATOR_PACKAGE_ROOT is unset: the peer package @kbediako/codex-orchestrator is not in node_modules of the repo or a parent, nor installed globally; install it (npm i -D @kbediako/codex-orchestrator) or set CODEX_ORCHESTRATOR_PACKAGE_ROOT)"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 1, "one line: {summary}");
    assert_eq!(m["status_detail"], "stage:s:failed");
}

const PACKAGE_CONFIG: &str = r#"{"pipelines":[{"id":"pkgpipe","title":"From the package","stages":[
  {"kind":"command","id":"s","command":"echo \"rcr=$CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED\" > out.txt"}]}]}"#;

#[test]
fn a_repo_without_a_config_uses_the_packages_like_the_peer() {
    let env = fake_npm(TestEnv::new());
    let root = fake_package(env.path(), Some(PACKAGE_CONFIG));
    let out = env.start("pkgpipe", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "using the peer package's config `{}/codex.orchestrator.json`",
            root.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(out_txt(&env, ""), "rcr=0\n");
    let m = env.manifest(&out.run_id());
    assert_eq!(m["config_source"], "package");
    assert_eq!(m["config_path"], format!("{PKG}/codex.orchestrator.json"));
    assert_eq!(
        m["summary"],
        "Using packaged fallback codex.orchestrator.json (compatibility path). Run `codex-orchestrator init codex` to pin repo-local config.",
        "the peer's summary line"
    );
    crate::harness::assert_valid_record_files(&env.run_dir(&out.run_id()));
    let plan = env.cli(["plan", "pkgpipe", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.json()["pipeline"]["source"], "default");
    // Required: refused, nothing written, in the peer's words.
    for (args, envs) in [
        (vec!["start", "pkgpipe", "--repo-config-required"], None),
        (vec!["start", "pkgpipe"], Some("yes")),
        (vec!["plan", "pkgpipe", "--repo-config-required=true"], None),
    ] {
        let env = TestEnv::new();
        fake_package(env.path(), Some(PACKAGE_CONFIG));
        let env = match envs {
            Some(v) => env.env("CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED", v),
            None => env,
        };
        let out = env.cli(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(
            env.redact(out.stderr.trim()),
            "error: Repo-local codex.orchestrator.json is required when CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED=1. Expected: [TMP]/codex.orchestrator.json.",
            "{args:?}"
        );
        assert!(!env.runs_exists());
    }
    let bad = env.cli(["start", "pkgpipe", "--repo-config-required=maybe"]);
    assert_eq!(bad.code, 2);
    assert!(bad
        .stderr
        .contains("--repo-config-required is `maybe`, expected true or false"));
}

#[test]
fn stages_see_the_peers_variables() {
    let env = with_bin(TestEnv::new(), &[("node", "exit 0")]).config(
        r#"{"pipelines":[
          {"id":"p","stages":[{"kind":"command","id":"s","command":"env | sort > env.txt"}]},
          {"id":"design-reference","stages":[{"kind":"command","id":"s","command":"env | sort > design.txt"}]}]}"#,
    );
    let out = env.start("p", &["--repo-config-required"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(env.path().join("env.txt")).expect("env");
    let has = |line: &str| text.lines().any(|l| l == line);
    let root = env.path().display().to_string();
    for line in [
        format!("CODEX_ORCHESTRATOR_NODE_BIN={root}/bin/node"),
        "CODEX_ORCHESTRATOR_RUNTIME_MODE=cli".to_owned(),
        "CODEX_ORCHESTRATOR_RUNTIME_MODE_ACTIVE=cli".to_owned(),
        "CODEX_RUNTIME_MODE=cli".to_owned(),
        "CODEX_ORCHESTRATOR_APPSERVER_SESSION_ID=".to_owned(),
        "CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED=1".to_owned(),
        format!("DESIGN_CONFIG_PATH={root}/design.config.yaml"),
        "CODEX_ORCHESTRATOR_PIPELINE_ID=p".to_owned(),
        "MCP_RUNNER_TASK_ID=0101".to_owned(),
    ] {
        assert!(has(&line), "missing `{line}` in:\n{text}");
    }
    assert!(
        !text.contains("DESIGN_PIPELINE="),
        "only for the design pipeline"
    );
    assert_eq!(env.start("design-reference", &[]).code, 0);
    let design = std::fs::read_to_string(env.path().join("design.txt")).expect("env");
    assert!(design.lines().any(|l| l == "DESIGN_PIPELINE=1"), "{design}");
}
