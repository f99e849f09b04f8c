//! Delivery of a run that passed its gates: the evidence bundle and `verify-evidence`, a git
//! delivery pushed to a local bare repository, and a github delivery through a stand-in `gh`.
//!
//! GitHub cannot be reached from the test machines, so `gh` is a stand-in script put first on
//! `PATH`: it records its arguments and prints what the real one prints (a pull request URL;
//! `no checks reported on the '<branch>' branch` and exit 1 when a repository has no checks;
//! the checks' lines and exit 0 or 1 otherwise).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::gitrepo::{self, git};
use crate::harness::{assert_valid_manifest, assert_valid_record_files, read_json, TestEnv};

/// A loop that fixes `value.txt` at iteration 2, then `delivery`.
fn config(delivery: &str) -> String {
    format!(
        r#"{{"pipelines":[
  {{"id":"p","stages":[{{"kind":"loop","id":"fix","build":"echo \"$CODEX_ORCHESTRATOR_ITERATION\" >> builds.log; [ -n \"$CODEX_ORCHESTRATOR_FEEDBACK_PATH\" ] && echo fixed > value.txt; true","verify":"gate"}}],
   "delivery":{delivery}}},
  {{"id":"gate","stages":[{{"kind":"command","id":"check","command":"grep -q fixed value.txt"}}]}}]}}"#
    )
}

fn repo(delivery: &str) -> TestEnv {
    let env = TestEnv::new().config(&config(delivery));
    gitrepo::init(
        &env,
        &[("value.txt", "broken\n"), (".gitignore", ".runs/\n")],
    );
    env
}

/// A bare repository as `origin`.
fn with_origin(env: &TestEnv) -> tempfile::TempDir {
    let bare = tempfile::tempdir().expect("bare");
    git(bare.path(), &["init", "-q", "--bare"]);
    git(
        env.path(),
        &["remote", "add", "origin", &bare.path().to_string_lossy()],
    );
    bare
}

#[test]
fn a_bundle_verifies_until_one_byte_of_a_log_changes() {
    let env = repo(r#"{"kind":"bundle"}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_valid_record_files(&env.run_dir(&id));
    let d = &m["delivery"][0];
    assert_eq!(d["kind"], "bundle");
    assert_eq!(d["status"], "succeeded");
    assert_eq!(out.json()["delivery"][0]["status"], "succeeded");
    let dir = env.run_dir(&id);
    let evidence = dir.join("evidence");
    // The statement: in-toto v1, subject the tree digest of the work tree, predicate the run.
    let st = read_json(&evidence.join("statement.intoto.json"));
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    let tree = st["subject"][0]["digest"]["gitTree"]
        .as_str()
        .expect("git tree");
    let last_after = &m["commands"][0]["loop"]["iterations"][1]["after"]["tree"];
    assert_eq!(
        tree,
        last_after.as_str().expect("tree"),
        "the tree the gates passed on"
    );
    assert_eq!(st["predicate"]["run"]["status"], "succeeded");
    assert_eq!(st["predicate"]["stages"][0]["loop"]["result"], "passed");
    let git_state = read_json(&evidence.join("git.json"));
    assert_eq!(git_state["tree"], tree);
    assert_eq!(git_state["dirty"], true);
    assert_eq!(git_state["head"], git(env.path(), &["rev-parse", "HEAD"]));
    let tools = read_json(&evidence.join("tools.json"));
    assert!(tools["git"]["version"]
        .as_str()
        .expect("git")
        .starts_with("git version"));
    let config = read_json(&evidence.join("config.json"));
    assert_eq!(config["resolved"]["pipeline"]["id"], "p");
    // Every log and error file, the verify runs' included.
    let digests = read_json(&evidence.join("digests.json"));
    let paths: Vec<&str> = digests["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    for want in [
        "evidence/manifest.json",
        "runner.ndjson",
        "commands/01-fix.iteration-1.ndjson",
        "commands/01-fix.iteration-2.ndjson",
        "loop/01-fix/feedback-1.json",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    let child = m["child_runs"][0]["run_id"].as_str().expect("verify run");
    assert!(paths.contains(&format!("../{child}/commands/01-check.ndjson").as_str()));
    assert!(paths.contains(&format!("../{child}/errors/01-check.json").as_str()));
    let check = env.cli(["verify-evidence", &dir.to_string_lossy()]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    // One byte of one log changed: the check fails and names the file.
    let log = dir.join("commands/01-fix.iteration-1.ndjson");
    let mut bytes = std::fs::read(&log).expect("log");
    let at = bytes.iter().position(|&b| b == b'1').expect("a digit");
    bytes[at] = b'2';
    std::fs::write(&log, bytes).expect("tamper");
    let check = env.cli([
        "verify-evidence",
        &dir.to_string_lossy(),
        "--format",
        "json",
    ]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    let v = check.json();
    assert_eq!(v["ok"], false);
    let bad: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["path"].as_str().expect("path"))
        .collect();
    assert_eq!(bad, ["commands/01-fix.iteration-1.ndjson"]);
    let text = env.cli(["verify-evidence", &dir.to_string_lossy()]);
    assert!(
        text.stderr
            .contains("error: `commands/01-fix.iteration-1.ndjson`: sha256 mismatch"),
        "{}",
        text.stderr
    );
    // A directory without a bundle is a usage error.
    let none = env.cli(["verify-evidence", &env.path().to_string_lossy()]);
    assert_eq!(none.code, 2, "{}", none.stderr);
}

#[test]
fn a_git_delivery_pushes_the_tree_without_touching_the_users_branch_or_index() {
    let env =
        repo(r#"{"kind":"git","remote":"origin","message":"fix value (${PIPELINE} ${RUN_ID})"}"#);
    let bare = with_origin(&env);
    let head = git(env.path(), &["rev-parse", "HEAD"]);
    git(env.path(), &["status", "--porcelain"]);
    let index = std::fs::read(env.path().join(".git/index")).expect("index");
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    let d = &m["delivery"][0];
    assert_eq!(d["status"], "succeeded", "{d}");
    let branch = format!("co/0101/{id}");
    assert_eq!(d["branch"], branch.as_str());
    assert_eq!(d["pushed"], true);
    // The branch exists on the remote, its commit's tree is the snapshot's, on top of HEAD.
    let pushed = git(bare.path(), &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(d["commit"], pushed.as_str());
    let tree = git(bare.path(), &["rev-parse", &format!("{pushed}^{{tree}}")]);
    let last_after = m["commands"][0]["loop"]["iterations"][1]["after"]["tree"].clone();
    assert_eq!(tree, last_after.as_str().expect("tree"));
    assert_eq!(d["tree"], tree.as_str());
    assert_eq!(
        git(bare.path(), &["rev-parse", &format!("{pushed}^")]),
        head
    );
    assert_eq!(
        git(bare.path(), &["log", "-1", "--format=%s", &pushed]),
        format!("fix value (p {id})")
    );
    let files = git(bare.path(), &["show", &format!("{pushed}:value.txt")]);
    assert_eq!(files, "fixed");
    // The user's branch, HEAD and index are as they were; the fix is still uncommitted there.
    assert_eq!(git(env.path(), &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git(env.path(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    assert_eq!(
        std::fs::read(env.path().join(".git/index")).expect("index"),
        index
    );
    assert!(
        git(env.path(), &["branch", "--list"]).lines().count() == 1,
        "no local branch made"
    );
    assert_eq!(
        git(env.path(), &["status", "--porcelain", "value.txt"]),
        "M value.txt"
    );
}

#[test]
fn a_git_delivery_with_nothing_to_commit_pushes_nothing() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true"}],
            "delivery":{"kind":"git","remote":"origin"}}]}"#,
    );
    gitrepo::init(&env, &[(".gitignore", ".runs/\n")]);
    let bare = with_origin(&env);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = &env.manifest(&out.run_id())["delivery"][0];
    assert_eq!(d["status"], "no_change");
    assert_eq!(d["pushed"], false);
    assert!(d["commit"].is_null());
    assert_eq!(git(bare.path(), &["for-each-ref"]), "", "nothing pushed");
}

#[test]
fn a_failed_delivery_keeps_the_runs_verdict_and_has_its_own_exit_code() {
    let env = repo(r#"[{"kind":"git","remote":"origin"},{"kind":"bundle"}]"#);
    let bare = with_origin(&env);
    // The remote refuses every push.
    let hook = bare.path().join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'pushes are closed today' >&2\nexit 1\n",
    )
    .expect("hook");
    make_executable(&hook);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 5, "gates passed, delivery failed: {}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status"], "succeeded", "the gates' verdict stands");
    assert!(m["status_detail"].is_null());
    let d = &m["delivery"];
    assert_eq!(d[0]["status"], "failed");
    assert!(
        d[0]["error"]
            .as_str()
            .expect("error")
            .contains("pushes are closed today"),
        "{d}"
    );
    assert_eq!(d[1]["status"], "succeeded", "the next delivery still ran");
    // The remote opens again: `resume` retries the delivery that failed (and only that one).
    let id = out.run_id();
    let evidence = read_json(&env.run_dir(&id).join("evidence/digests.json"));
    std::fs::remove_file(&hook).expect("rm hook");
    let again = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["delivery"][0]["status"], "succeeded");
    assert_eq!(m["delivery"][1]["status"], "succeeded");
    let branch = format!("refs/heads/co/0101/{id}");
    assert_eq!(
        git(bare.path(), &["rev-parse", &branch]),
        m["delivery"][0]["commit"].as_str().expect("commit")
    );
    assert_eq!(
        read_json(&env.run_dir(&id).join("evidence/digests.json")),
        evidence,
        "the bundle that had succeeded was not made again"
    );
    // `--no-deliver`: recorded skipped, nothing pushed, exit 0.
    let out = env.start("p", &["--no-deliver"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = &env.manifest(&out.run_id())["delivery"];
    assert_eq!(d[0]["status"], "skipped");
    assert_eq!(d[1]["status"], "skipped");
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The stand-in `gh`: records each call's arguments (one JSON array per line) and answers
/// `pr create` with a URL and `pr checks` as `checks` says: `none`, `pass` or `fail`.
fn stand_in_gh(checks: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("bin");
    let calls = dir.path().join("calls.jsonl");
    let script = format!(
        r#"#!/bin/sh
# A stand-in for the GitHub CLI: GitHub cannot be reached from the tests.
{{ printf '['; first=1; for a in "$@"; do
    [ $first = 1 ] || printf ','; first=0
    printf '"%s"' "$(printf '%s' "$a" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr '\n' ' ')"
  done; printf ']\n'; }} >> {calls}
case "$1 $2" in
  "pr create") echo "Creating pull request"; echo "https://github.com/example/repo/pull/42" ;;
  "pr checks")
    case "{checks}" in
      none) echo "no checks reported on the 'branch' branch" >&2; exit 1 ;;
      pass) printf 'build\tpass\t1m\thttps://ci/1\n'; exit 0 ;;
      fail) printf 'build\tfail\t1m\thttps://ci/1\n'; exit 1 ;;
    esac ;;
  *) echo "unexpected gh call: $*" >&2; exit 2 ;;
esac
"#,
        calls = calls.display(),
    );
    let gh = dir.path().join("gh");
    std::fs::write(&gh, script).expect("gh");
    make_executable(&gh);
    (dir, calls)
}

fn calls(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn github_run(
    delivery: &str,
    checks: &str,
) -> (
    TestEnv,
    crate::harness::Run,
    Vec<Vec<String>>,
    tempfile::TempDir,
) {
    let (bin, calls_file) = stand_in_gh(checks);
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = repo(delivery).env("PATH", &path);
    let bare = with_origin(&env);
    let out = env.start("p", &[]);
    let seen = calls(&calls_file);
    drop(bin);
    (env, out, seen, bare)
}

#[test]
fn a_github_delivery_opens_a_pull_request_through_gh() {
    let (env, out, seen, bare) = github_run(
        r#"{"kind":"github","remote":"origin","base":"main","title":"Fix the value","draft":true}"#,
        "pass",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    let d = &m["delivery"][0];
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["url"], "https://github.com/example/repo/pull/42");
    assert_eq!(d["number"], 42);
    assert!(d["ci"].is_null(), "checks not waited for");
    let branch = format!("co/0101/{id}");
    git(bare.path(), &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let create = &seen[0];
    assert_eq!(&create[..4], ["pr", "create", "--head", branch.as_str()]);
    let arg = |name: &str| {
        let i = create
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("{name} in {create:?}"));
        create[i + 1].clone()
    };
    assert_eq!(arg("--title"), "Fix the value");
    assert_eq!(arg("--base"), "main");
    assert!(create.contains(&"--draft".to_owned()));
    assert!(arg("--body").contains(&format!("Run `{id}`")), "{create:?}");
}

#[test]
fn a_github_delivery_waits_for_ci() {
    let delivery = r#"{"kind":"github","remote":"origin","waitForCi":true,"checksGraceMs":0}"#;
    let (env, out, seen, _bare) = github_run(delivery, "pass");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = &env.manifest(&out.run_id())["delivery"][0];
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["ci"]["status"], "passed");
    assert_eq!(
        seen[1],
        [
            "pr",
            "checks",
            "https://github.com/example/repo/pull/42",
            "--watch"
        ]
    );
    // A failing check fails the delivery, not the run.
    let (env, out, _, _bare) = github_run(delivery, "fail");
    assert_eq!(out.code, 5, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["delivery"][0]["status"], "failed");
    assert_eq!(m["delivery"][0]["phase"], "failed");
    assert_eq!(m["delivery"][0]["ci"]["status"], "failed");
}

#[test]
fn a_repository_without_checks_is_not_a_failure() {
    let delivery = r#"{"kind":"github","remote":"origin","waitForCi":true,"checksGraceMs":0}"#;
    let (env, out, seen, _bare) = github_run(delivery, "none");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status"], "succeeded");
    let d = &m["delivery"][0];
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["phase"], "delivered");
    assert_eq!(d["ci"]["status"], "none");
    assert_eq!(seen.len(), 2, "{seen:?}");
    let events: Vec<Value> =
        crate::harness::read_lines(&env.run_dir(&out.run_id()).join("events.jsonl"));
    let done = events
        .iter()
        .find(|e| e["event"] == "delivery_completed")
        .expect("delivery_completed");
    assert_eq!(done["payload"]["ci"]["status"], "none");
}
