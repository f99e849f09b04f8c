//! A loop's runner killed (`kill -9`) in each of its phases, then resumed: the loop goes on at
//! the iteration and phase its record says, a half-done build runs again, a verify run is
//! resumed where it was, and no completed iteration is repeated. Append-only files count what
//! ran: `builds.log` (one line per build started), `verifies.log` (one per verify stage).
//!
//! The kills land in iteration 2, once iteration 1 (build, verify, feedback) is complete, except
//! the one in the feedback step, which comes after iteration 1's failed verify. The snapshot
//! phases are held with a git clean filter on `*.slow` files (git runs it while `git add`
//! hashes them, which is exactly the snapshot's work), armed through a file; the feedback step
//! by the runner's hold point for tests (debug builds only).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::gitrepo::{self, lines};
use crate::harness::{assert_valid_manifest, TestEnv};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SnapshotBefore,
    Building,
    SnapshotAfter,
    Verifying,
    /// After iteration 1's failed verify, while its feedback is written: held by the runner's
    /// debug-build hold point (`CODEX_ORCHESTRATOR_TEST_HOLD`), as no process of a test script
    /// runs in that step.
    Feedback,
}

/// Control files outside the repository (so they never count as a change of the tree).
struct Ctl {
    dir: tempfile::TempDir,
}

impl Ctl {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn scripts(ctl: &Ctl) -> (String, String, String) {
    let c = |n: &str| ctl.path(n).display().to_string();
    // The build: counted, changes `data.slow` every time, fixes the value at iteration 2.
    let build = format!(
        r#"echo "build $CODEX_ORCHESTRATOR_ITERATION" >> builds.log
echo "data $CODEX_ORCHESTRATOR_ITERATION" >> data.slow
if [ "$CODEX_ORCHESTRATOR_ITERATION" = 2 ]; then
  if [ -f {hold_build} ]; then touch {reached}; while true; do sleep 0.05; done; fi
  echo fixed > value.txt
  if [ -f {hold_after} ]; then touch {block}; fi
fi
"#,
        hold_build = c("hold-building"),
        hold_after = c("hold-snapshot-after"),
        reached = c("reached"),
        block = c("block-snapshot"),
    );
    // The gate: counted; the first verify arms the next snapshot's block, the second may hold.
    let check = format!(
        r#"n=$(cat verifies.log 2>/dev/null | wc -l)
echo "verify $((n + 1))" >> verifies.log
if [ "$n" -eq 0 ] && [ -f {hold_before} ]; then touch {block}; fi
if [ "$n" -eq 1 ] && [ -f {hold_verify} ]; then touch {reached}; while true; do sleep 0.05; done; fi
grep -q fixed value.txt || {{ echo "value is broken" >&2; exit 1; }}
"#,
        hold_before = c("hold-snapshot-before"),
        hold_verify = c("hold-verifying"),
        block = c("block-snapshot"),
        reached = c("reached"),
    );
    // The clean filter: holds `git add` while the block is armed.
    let clean = format!(
        "if [ -f {block} ]; then touch {reached}; while [ -f {block} ]; do sleep 0.05; done; fi\ncat\n",
        block = c("block-snapshot"),
        reached = c("reached"),
    );
    (build, check, clean)
}

fn setup(ctl: &Ctl) -> TestEnv {
    let env = TestEnv::new().config(
        r#"{"pipelines":[
  {"id":"p","stages":[{"kind":"loop","id":"fix","build":{"command":"sh build.sh"},"verify":"gate","maxIterations":3}]},
  {"id":"gate","stages":[
    {"kind":"command","id":"count","command":"echo counted"},
    {"kind":"command","id":"check","command":"sh check.sh"}]}]}"#,
    );
    let (build, check, clean) = scripts(ctl);
    std::fs::write(ctl.path("clean.sh"), clean).expect("clean filter");
    gitrepo::init(
        &env,
        &[
            ("build.sh", &build),
            ("check.sh", &check),
            ("value.txt", "broken\n"),
            (".gitattributes", "*.slow filter=slow\n"),
        ],
    );
    let filter = format!("sh {}", ctl.path("clean.sh").display());
    gitrepo::git(env.path(), &["config", "filter.slow.clean", &filter]);
    env
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

/// Kills the runner while it is in `phase` of iteration 2, resumes, and checks what ran.
fn kill_in(phase: Phase) {
    let ctl = Ctl {
        dir: tempfile::tempdir().expect("ctl"),
    };
    let hold = ctl.path("hold-feedback");
    let env = setup(&ctl).env(
        "CODEX_ORCHESTRATOR_TEST_HOLD",
        &format!("loop-feedback:{}", hold.display()),
    );
    let arm = match phase {
        Phase::SnapshotBefore => "hold-snapshot-before",
        Phase::Building => "hold-building",
        Phase::SnapshotAfter => "hold-snapshot-after",
        Phase::Verifying => "hold-verifying",
        Phase::Feedback => "hold-feedback",
    };
    std::fs::write(ctl.path(arm), "").expect("arm");
    let runner = gitrepo::spawn_start(&env, "p");
    let reached = match phase {
        Phase::Feedback => "hold-feedback.reached",
        _ => "reached",
    };
    gitrepo::wait_for(&ctl.path(reached));
    let id = gitrepo::top_run(&env, "p");
    let recorded = env.manifest(&id);
    let l = &recorded["commands"][0]["loop"];
    let expected = match phase {
        Phase::SnapshotBefore => "snapshot-before",
        Phase::Building => "building",
        Phase::SnapshotAfter => "snapshot-after",
        Phase::Verifying => "verifying",
        Phase::Feedback => "feedback",
    };
    let held_in = if phase == Phase::Feedback { 1 } else { 2 };
    assert_eq!(l["iteration"], held_in, "{phase:?}");
    assert_eq!(
        l["phase"], expected,
        "{phase:?}: the record says where it is"
    );
    if phase == Phase::Verifying {
        let st = env.cli(["status", "--run", &id]);
        assert!(
            st.stdout.contains("iteration 2/3: verifying"),
            "{}",
            st.stdout
        );
    }
    let verify_run = l["iterations"][1]["verify"]["run_id"].clone();
    if phase == Phase::Verifying {
        // Batched durability (the default): a stage's end reaches the record with the next
        // paced write, and a stage the record does not have as ended runs again on resume
        // (README, "Durability"). The claim checked below is about a stage the record has as
        // succeeded, so wait for the record to say so before the kill.
        let child = verify_run.as_str().expect("verify run id").to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while env.manifest(&child)["commands"][0]["status"] != "succeeded" {
            assert!(
                std::time::Instant::now() < deadline,
                "the verify run's first stage never reached the record"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    gitrepo::kill9(runner);
    // Disarm: what the killed runner left holding is killed by the resume.
    for f in [arm, "block-snapshot"] {
        let _ = std::fs::remove_file(ctl.path(f));
    }
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{phase:?}: {}", out.stderr);
    let m = env.manifest(&id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "succeeded", "{phase:?}");
    let l = &m["commands"][0]["loop"];
    assert_eq!(l["result"], "passed");
    let its = l["iterations"].as_array().expect("iterations");
    assert_eq!(its.len(), 2, "{phase:?}: no iteration added or repeated");
    // Iteration 1 ran once: its build, its verify.
    let builds = lines(&env, "builds.log");
    let verifies = lines(&env, "verifies.log");
    assert_eq!(count(&builds, "build 1"), 1, "{phase:?}: {builds:?}");
    assert_eq!(count(&verifies, "verify 1"), 1, "{phase:?}: {verifies:?}");
    assert_eq!(its[0]["builds_started"], 1);
    // Iteration 2's build was given iteration 1's feedback, whole, naming the failed gate (in
    // the feedback step, written by the resumed runner from the verify run's record).
    let given = &its[1]["feedback"];
    assert_eq!(given["from_iteration"], 1, "{phase:?}");
    let feedback: Value = serde_json::from_str(
        &std::fs::read_to_string(
            env.path()
                .join(given["json"].as_str().expect("feedback path")),
        )
        .expect("feedback file"),
    )
    .expect("feedback JSON");
    assert!(
        feedback.to_string().contains("value is broken"),
        "{phase:?}: {feedback}"
    );
    // Iteration 2: the half-done build runs again; a completed one does not.
    let build2 = if phase == Phase::Building { 2 } else { 1 };
    assert_eq!(count(&builds, "build 2"), build2, "{phase:?}: {builds:?}");
    assert_eq!(its[1]["builds_started"], build2, "{phase:?}");
    // The verify run of iteration 2: resumed (same run) when it was running.
    let children: Vec<&Value> = m["child_runs"]
        .as_array()
        .expect("children")
        .iter()
        .collect();
    assert_eq!(children.len(), 2, "{phase:?}: one verify run per iteration");
    let v2 = &its[1]["verify"];
    assert_eq!(v2["verdict"], "passed");
    if phase == Phase::Verifying {
        assert_eq!(v2["run_id"], verify_run, "the same verify run, resumed");
        let child = env.manifest(v2["run_id"].as_str().expect("id"));
        assert_eq!(child["resume_events"].as_array().expect("events").len(), 1);
        assert_eq!(child["status"], "succeeded");
        // Its first stage had succeeded before the kill: not run again.
        let counted = std::fs::read_to_string(
            env.path()
                .join(child["commands"][0]["log_path"].as_str().expect("log")),
        )
        .expect("log");
        assert_eq!(counted.matches("\"exec:begin\"").count(), 1, "{counted}");
        assert_eq!(verifies.len(), 3, "the interrupted verify stage ran again");
    } else {
        assert_eq!(verifies.len(), 2, "{phase:?}: {verifies:?}");
    }
    assert_eq!(m["resume_events"].as_array().expect("resumes").len(), 1);
    // Nothing of the killed runner is left: no process carries the id of the run or of one
    // of its verify runs.
    for run in
        std::iter::once(id.as_str()).chain(children.iter().filter_map(|c| c["run_id"].as_str()))
    {
        assert!(!marked_processes(run), "{phase:?}: survivors of {run} left");
    }
}

/// True when a process (other than us) has `CODEX_ORCHESTRATOR_RUN_ID=<id>` in its environment.
fn marked_processes(id: &str) -> bool {
    let mark = format!("CODEX_ORCHESTRATOR_RUN_ID={id}");
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read(Path::new("/proc").join(e.file_name()).join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == mark.as_bytes()))
        })
}

#[test]
fn kill_9_while_taking_the_snapshot_before_the_build_then_resume() {
    kill_in(Phase::SnapshotBefore);
}

#[test]
fn kill_9_while_building_then_resume() {
    kill_in(Phase::Building);
}

#[test]
fn kill_9_while_taking_the_snapshot_after_the_build_then_resume() {
    kill_in(Phase::SnapshotAfter);
}

#[test]
fn kill_9_while_verifying_then_resume() {
    kill_in(Phase::Verifying);
}

#[test]
fn kill_9_while_writing_the_feedback_then_resume() {
    kill_in(Phase::Feedback);
}
