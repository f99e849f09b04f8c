//! The runner killed (SIGKILL) at every manifest rename, every fsync and fdatasync and a
//! sample of its writes, in both durability modes, then resumed. Each kill is injected by
//! `strace -f -e inject=<syscall>:signal=KILL:when=N` (strace counts calls per thread, so the
//! N-th call of the first thread that makes N of them is hit; the trace tells which call of
//! the whole run that was). After every kill:
//! - no manifest (main file or sidecar) is unparseable;
//! - a run with no manifest ran no stage;
//! - every stage the record says ended has a log ending with `command:end` (the record never
//!   claims more than the log holds);
//! - the run resumes to `succeeded`, and a stage runs again only if its end was not in the
//!   record: each stage counts its runs in its own append-only file;
//! - strict mode: no stage whose dependents had started runs again (only the one stage the
//!   kill interrupted may).
//!
//! Each mode reaches at least 50 distinct kill points: a 10-stage run is swept first, and a
//! longer one too when that run made too few calls (see `kill_everywhere`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::crash::{have_strace, manifests, metrics_lines};
use crate::harness::{merged, read_json, TestEnv};

/// The stages of the first sweep of each mode.
const STAGES: usize = 10;
/// The distinct kill points each mode must reach.
const POINTS: usize = 50;

/// `stages` stages in a row; each counts its runs, prints to both streams, and takes a moment,
/// so that in batched mode several stage ends can be unwritten at once.
fn config(stages: usize) -> String {
    let stages: Vec<String> = (0..stages)
        .map(|i| {
            format!(
                r#"{{"kind":"command","id":"s{i}","command":"echo x >> s{i}.count; echo out-{i}; echo err-{i} >&2; sleep 0.01"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"pipelines":[{{"id":"p","stages":[{}]}}]}}"#,
        stages.join(",")
    )
}

fn counts(env: &TestEnv, stages: usize) -> Vec<usize> {
    (0..stages)
        .map(|i| {
            std::fs::read_to_string(env.path().join(format!("s{i}.count")))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        })
        .collect()
}

/// Lines of the trace that are calls of `syscall` (`PID  name(...`).
fn calls(trace: &str, syscall: &str) -> usize {
    let needle = format!(" {syscall}(");
    trace.lines().filter(|l| l.contains(&needle)).count()
}

/// What the kill-point runs of one mode found.
#[derive(Default)]
struct Tally {
    /// (stages of the run, syscall, how many of them the run made, the killed one included).
    points: BTreeSet<(usize, String, usize)>,
    resumed: usize,
    /// Stages that ran a second time, over all points (their ends were not in the record).
    reran: usize,
}

/// Kills the runner at the `n`-th `syscall` call of a thread; returns where (the number of
/// such calls in the whole run), or `None` when the runner was not killed (it finished, or
/// the kill hit a stage's shell instead).
fn kill_at(env: &TestEnv, syscall: &str, n: usize) -> Option<usize> {
    let trace = env.path().join("trace.txt");
    let trace_path = trace.to_string_lossy().into_owned();
    let filter = format!("trace={syscall}");
    let inject = format!("inject={syscall}:signal=KILL:when={n}");
    let out =
        env.start_under_strace(&["-f", "-qq", "-e", &filter, "-e", &inject, "-o", &trace_path]);
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    // strace ends the way the runner did: by SIGKILL when the kill hit it.
    let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9)
        || out.status.code() == Some(128 + 9);
    killed.then(|| calls(&text, syscall))
}

/// The checks after one kill (see the module doc); `point` names it in messages.
fn check_and_resume(env: &TestEnv, stages: usize, strict: bool, point: &str, tally: &mut Tally) {
    let before = counts(env, stages);
    let runs = manifests(env);
    if runs.is_empty() {
        assert_eq!(
            before,
            vec![0; stages],
            "{point}: stages ran before the run had a manifest"
        );
        return;
    }
    assert_eq!(runs.len(), 1, "{point}");
    let path = &runs[0];
    let dir = path.parent().expect("run dir").to_owned();
    for f in ["manifest.json", "manifest.ext.json"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(f)) {
            assert!(
                serde_json::from_str::<Value>(&text).is_ok(),
                "{point}: {f} does not parse:\n{text}"
            );
        }
    }
    let m = merged(path);
    let recorded: Vec<bool> = m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["status"] == "succeeded")
        .collect();
    for (i, c) in m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .enumerate()
    {
        if c["completed_at"].is_string() {
            let log = dir.join(format!("commands/{:02}-s{i}.ndjson", i + 1));
            let last = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .last()
                .and_then(|l| serde_json::from_str::<Value>(l).ok());
            assert_eq!(
                last.as_ref().map(|l| l["type"].clone()),
                Some(Value::from("command:end")),
                "{point}: s{i} is recorded ended but its log does not end with command:end"
            );
        }
        if recorded[i] {
            assert_eq!(
                before[i], 1,
                "{point}: s{i} is recorded succeeded: it ran once"
            );
        }
    }
    let id = dir
        .file_name()
        .expect("run id")
        .to_string_lossy()
        .into_owned();
    let r = env.cli(["resume", "--run", &id]);
    assert_eq!(r.code, 0, "{point}: resume: {}", r.stderr);
    tally.resumed += 1;
    let fin = merged(path);
    assert_eq!(fin["status"], "succeeded", "{point}");
    assert_eq!(fin["metrics_recorded"], true, "{point}");
    assert_eq!(
        metrics_lines(env, &id, &fin),
        1,
        "{point}: one metrics line"
    );
    let after = counts(env, stages);
    let mut reran = Vec::new();
    for i in 0..stages {
        assert_eq!(
            fin["commands"][i]["status"], "succeeded",
            "{point}: s{i} after the resume"
        );
        match (recorded[i], before[i], after[i]) {
            // Its end was in the record: never again.
            (true, 1, 1) => {}
            // It never ran, or its end was not in the record: once more.
            (false, b, a) if a == b + 1 && b <= 1 => {
                if b == 1 {
                    reran.push(i);
                }
            }
            other => panic!("{point}: s{i} (recorded, before, after) = {other:?}"),
        }
    }
    if strict {
        // A stage's successor starts only once its end is durable: only the stage the kill
        // interrupted (the last that ran) may run again.
        let last_ran = before.iter().rposition(|&c| c > 0);
        assert!(
            reran.iter().all(|&i| Some(i) == last_ran),
            "{point}: strict mode ran {reran:?} again (last started: {last_ran:?})"
        );
    }
    tally.reran += reran.len();
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{point}: temp files left: {leftovers:?}"
    );
    let _ = read_json(path);
}

/// Every kill point of one run of `stages` stages: each rename, fsync and fdatasync, and
/// every 4th write.
fn sweep(strict: bool, stages: usize, tally: &mut Tally) {
    let mode = if strict { "strict" } else { "batched" };
    for (syscall, step) in [("rename", 1), ("fsync", 1), ("fdatasync", 1), ("write", 4)] {
        let mut n = 1;
        loop {
            let env = TestEnv::new()
                .config(&config(stages))
                .env("CODEX_ORCHESTRATOR_DURABILITY", mode);
            let Some(at) = kill_at(&env, syscall, n) else {
                // Past the writes of every thread: no larger N can hit. (The first writes of
                // a stage's shell can be hit too; that is not a runner kill, and it is only
                // possible for small N.)
                if syscall != "write" || n > 4 {
                    break;
                }
                n += step;
                continue;
            };
            let point = format!("{mode}, {stages} stages: {syscall} #{at} (when={n})");
            check_and_resume(&env, stages, strict, &point, tally);
            tally.points.insert((stages, syscall.to_owned(), at));
            n += step;
        }
    }
}

/// Sweeps of one mode until they reach [`POINTS`] distinct kill points: a 10-stage run, then,
/// only if that was not enough, longer runs. How many manifest writes a run makes is not fixed:
/// in batched mode the persister paces its writes by what they cost, so a loaded machine (and
/// strace makes every call dear) writes fewer times, and tokio's wake-up writes follow the
/// scheduling. The coverage is what it claims whatever the load: every rename, fsync and
/// fdatasync of each swept run, a sample of its writes, and at least [`POINTS`] kill points.
fn kill_everywhere(strict: bool) -> Tally {
    let mode = if strict { "strict" } else { "batched" };
    let mut tally = Tally::default();
    for stages in [STAGES, 2 * STAGES, 4 * STAGES] {
        sweep(strict, stages, &mut tally);
        eprintln!(
            "{mode}: {} distinct kill points after the {stages}-stage sweep, {} runs resumed, {} stage runs repeated (ends not yet durable): {:?}",
            tally.points.len(),
            tally.resumed,
            tally.reran,
            tally.points
        );
        if tally.points.len() >= POINTS {
            break;
        }
    }
    tally
}

#[test]
fn kill_at_every_write_point_then_resume_strict() {
    if !have_strace() {
        return;
    }
    let t = kill_everywhere(true);
    assert!(t.points.len() >= POINTS, "{} kill points", t.points.len());
}

#[test]
fn kill_at_every_write_point_then_resume_batched() {
    if !have_strace() {
        return;
    }
    let t = kill_everywhere(false);
    assert!(t.points.len() >= POINTS, "{} kill points", t.points.len());
}

/// Stages of run `dir` the record says ended.
fn recorded_ends(manifest: &std::path::Path) -> usize {
    shared_manifest::read_value(manifest)
        .ok()
        .and_then(|m| {
            m["commands"]
                .as_array()
                .map(|cs| cs.iter().filter(|c| c["completed_at"].is_string()).count())
        })
        .unwrap_or(0)
}

/// Many quick stages ending at once, the runner killed in the middle of the burst (once the
/// record shows a given number of ends): for every stage the record says ended, the stage's
/// log ends with `command:end`.
#[test]
fn the_record_never_claims_more_than_the_log_holds() {
    let stages: Vec<String> = (0..80)
        .map(|i| {
            format!(
                r#"{{"kind":"command","id":"b{i}","command":"for k in 1 2 3 4 5; do echo line-$k; done","dependsOn":[]}}"#
            )
        })
        .collect();
    let cfg = format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":4,"stages":[{}]}}]}}"#,
        stages.join(",")
    );
    let mut checked = 0;
    for target in [1usize, 4, 10, 25, 45] {
        let env = TestEnv::new().config(&cfg);
        let mut runner = env
            .command(["start", "p"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let start = std::time::Instant::now();
        loop {
            let ends = manifests(&env).first().map_or(0, |m| recorded_ends(m));
            let done = runner.try_wait().expect("wait").is_some();
            if ends >= target || done || start.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = runner.kill();
        let _ = runner.wait();
        for path in manifests(&env) {
            let dir = path.parent().expect("dir");
            let m = merged(&path);
            for c in m["commands"].as_array().expect("commands") {
                if !c["completed_at"].is_string() {
                    continue;
                }
                let log = dir.join(format!(
                    "commands/{:02}-{}.ndjson",
                    c["index"].as_u64().expect("index"),
                    c["id"].as_str().expect("id")
                ));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let last: Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
                    .expect("a whole last line");
                assert_eq!(
                    last["type"], "command:end",
                    "killed after {target} recorded ends: {} recorded ended, log:\n{text}",
                    c["id"]
                );
                checked += 1;
            }
        }
    }
    eprintln!("stages recorded ended and checked against their logs: {checked}");
    assert!(
        checked >= 45,
        "the kills must leave recorded ends to check: {checked}"
    );
}
