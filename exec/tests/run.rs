//! `exec::run` against real processes: byte-exact logs, no deadlock on flooded pipes, bounded
//! memory, enforced timeouts, cancellation, and no survivors in the stage's process group.
//! Stage commands run `co-test-helper` (exec/src/bin). Timing bounds are generous: these are
//! correctness tests (the run ends, and not only after some unrelated long wait), not
//! performance claims.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use exec::{CancelRequest, ExecResult, ExecSpec, Outcome, ProcessInfo, RunnerLog, StageLog};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// Same pattern as the helper's `bytes N`.
const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const MIB: usize = 1024 * 1024;
/// Slack on every "ends within" bound.
const SLACK: Duration = Duration::from_secs(1);

fn helper(args: &str) -> String {
    format!("'{}' {args}", env!("CARGO_BIN_EXE_co-test-helper"))
}

fn pattern(n: usize) -> Vec<u8> {
    // `repeat` rather than an iterator chain: tests run unoptimized and this makes megabytes.
    let mut p = PATTERN.repeat(n / PATTERN.len() + 1);
    p.truncate(n);
    p
}

/// One finished attempt, with both logs parsed.
struct Ran {
    result: ExecResult,
    elapsed: Duration,
    spawned: Option<ProcessInfo>,
    stage: Vec<Value>,
    runner: Vec<Value>,
}

impl Ran {
    fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
        lines.iter().filter(|l| l["type"] == kind).collect()
    }

    fn chunks(&self) -> Vec<&Value> {
        Ran::of_type(&self.stage, "exec:chunk")
    }

    fn end(&self) -> &Value {
        Ran::of_type(&self.stage, "exec:end")
            .pop()
            .expect("exec:end logged")
    }

    /// Reassembles one stream from the stage log, decoding base64 chunks; checks `bytes`.
    fn stream(&self, stream: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in self.chunks().into_iter().filter(|c| c["stream"] == stream) {
            let data = c["data"].as_str().expect("chunk data is a string");
            let raw = if c["encoding"] == "base64" {
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .expect("valid base64")
            } else {
                assert!(c.get("encoding").is_none(), "unknown encoding in {c}");
                data.as_bytes().to_vec()
            };
            assert_eq!(
                c["bytes"].as_u64(),
                Some(raw.len() as u64),
                "`bytes` is the raw size"
            );
            out.extend_from_slice(&raw);
        }
        out
    }

    /// Pid printed by the helper as `<word> <pid>` on stdout.
    fn printed_pid(&self) -> u32 {
        let text = String::from_utf8_lossy(&self.result.stdout.tail).into_owned();
        text.split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("helper printed a pid")
    }
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Byte-for-byte equality; a mismatch reports lengths and sha256 digests rather than
/// megabytes of bytes. (Hashing only on mismatch: sha2 is slow in unoptimized test builds.)
fn assert_same_bytes(actual: &[u8], expected: &[u8]) {
    if actual != expected {
        let first = actual.iter().zip(expected).position(|(a, e)| a != e);
        panic!(
            "bytes differ (first at {first:?}): got {} bytes sha256 {}, want {} bytes sha256 {}",
            actual.len(),
            sha(actual),
            expected.len(),
            sha(expected)
        );
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("log is UTF-8 text")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

/// Runs `command` in a temp dir; `adjust` tweaks the spec; `cancel` feeds cancellation.
async fn run_in(
    command: &str,
    adjust: impl FnOnce(&mut ExecSpec),
    cancel: watch::Receiver<CancelRequest>,
) -> Ran {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = ExecSpec::new(command, dir.path(), 1);
    adjust(&mut spec);
    let runner = RunnerLog::open(&dir.path().join("runner.ndjson")).expect("runner log");
    let stage_path = dir.path().join("01-stage.ndjson");
    let mut log = StageLog::open(&stage_path, 1, runner, "commands/01-stage.ndjson".into())
        .expect("stage log");
    let spawned = Arc::new(Mutex::new(None));
    let slot = spawned.clone();
    let t0 = Instant::now();
    let result = exec::run(&spec, &mut log, cancel, move |p| {
        *slot.lock().expect("not poisoned") = Some(p.clone());
    })
    .await
    .expect("logs are writable");
    let elapsed = t0.elapsed();
    log.flush().expect("flush");
    let spawned = spawned.lock().expect("not poisoned").take();
    Ran {
        result,
        elapsed,
        spawned,
        stage: read_lines(&stage_path),
        runner: read_lines(&dir.path().join("runner.ndjson")),
    }
}

async fn run(command: &str, adjust: impl FnOnce(&mut ExecSpec)) -> Ran {
    let (_tx, rx) = watch::channel(CancelRequest::None);
    run_in(command, adjust, rx).await
}

/// Sends each request after its delay, from a separate task.
fn cancel_later(steps: Vec<(u64, CancelRequest)>) -> watch::Receiver<CancelRequest> {
    let (tx, rx) = watch::channel(CancelRequest::None);
    tokio::spawn(async move {
        for (ms, request) in steps {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = tx.send(request);
        }
        // Keep the sender alive past the run: a closed channel is not a cancellation.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    rx
}

/// Gone, or a zombie nobody reaps: either way it runs nothing any more.
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn output_without_trailing_newline_is_exact_and_lines_have_the_peer_shape() {
    let r = run(&helper("bytes 12345"), |_| {}).await;
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
    assert_same_bytes(&r.stream("stdout"), &pattern(12345));
    assert!(r.stream("stderr").is_empty());

    let begin = &r.stage[0];
    assert_eq!(
        keys(begin),
        [
            "type",
            "correlation_id",
            "attempt",
            "command",
            "args",
            "cwd",
            "session_id",
            "sandbox_state",
            "persisted",
            "timestamp",
            "index"
        ]
    );
    assert_eq!(begin["sandbox_state"], "unsandboxed");
    assert_eq!(
        keys(r.chunks()[0]),
        [
            "type",
            "correlation_id",
            "attempt",
            "stream",
            "sequence",
            "bytes",
            "data",
            "timestamp",
            "index"
        ]
    );
    let end = r.end();
    assert_eq!(
        keys(end),
        [
            "type",
            "correlation_id",
            "attempt",
            "exit_code",
            "signal",
            "duration_ms",
            "status",
            "timestamp",
            "index"
        ]
    );
    assert_eq!(
        (end["exit_code"].as_i64(), end["status"].as_str()),
        (Some(0), Some("succeeded"))
    );
    assert_eq!(end["correlation_id"], begin["correlation_id"]);
    let seqs: Vec<u64> = r
        .chunks()
        .iter()
        .filter_map(|c| c["sequence"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // One 12345-character line: the summary keeps its last 240 characters.
    let summary = exec::summarize(&r.result, None);
    let all = pattern(12345);
    assert_eq!(
        summary,
        format!(
            "…{}",
            String::from_utf8(all[12345 - 240..].to_vec()).expect("ascii")
        )
    );
}

#[tokio::test]
async fn hundred_thousand_tiny_lines_are_exact_and_coalesced() {
    let r = run(&helper("lines 100000"), |_| {}).await;
    let expected: String = (0..100_000).map(|i| format!("{i}\n")).collect();
    assert_same_bytes(&r.stream("stdout"), expected.as_bytes());
    // 100 000 writes, far fewer events: reads are coalesced up to 64 KiB or 50 ms.
    assert!(r.chunks().len() < 1000, "{} chunks", r.chunks().len());
    assert!(r
        .chunks()
        .iter()
        .all(|c| c["bytes"].as_u64() <= Some(64 * 1024)));
}

#[tokio::test]
async fn one_long_line_is_exact_in_chunks_of_at_most_64_kib() {
    let r = run(&helper(&format!("bytes {}", 8 * MIB)), |_| {}).await;
    assert_same_bytes(&r.stream("stdout"), &pattern(8 * MIB));
    let sizes: Vec<u64> = r
        .chunks()
        .iter()
        .filter_map(|c| c["bytes"].as_u64())
        .collect();
    assert!(sizes.iter().all(|&s| s <= 64 * 1024), "{sizes:?}");
    assert!(sizes.len() >= 128);
    assert_eq!(r.result.stdout.total_bytes, 8 * MIB as u64);
}

#[tokio::test]
async fn invalid_utf8_goes_to_base64_chunks_and_round_trips() {
    let r = run(&helper("invalid-utf8"), |_| {}).await;
    let expected =
        b"valid start\n\xff\xfe latin-1: caf\xe9 \xc3\x28 mixed \xe2\x82\xac ok\n\xe2\x82";
    assert_eq!(r.stream("stdout"), expected);
    assert!(r.chunks().iter().any(|c| c["encoding"] == "base64"));
    for c in r
        .chunks()
        .into_iter()
        .filter(|c| c.get("encoding").is_none())
    {
        assert!(
            !c["data"].as_str().unwrap_or_default().contains('\u{FFFD}'),
            "{c}"
        );
    }
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
}

#[tokio::test]
async fn code_points_split_across_writes_are_never_cut() {
    let r = run(&helper("split-utf8"), |_| {}).await;
    assert_eq!(r.stream("stdout"), "a€b🦀z\n".as_bytes());
    let chunks = r.chunks();
    assert!(
        chunks.len() >= 2,
        "the halves arrived in separate reads: {chunks:?}"
    );
    for c in chunks {
        assert!(
            c.get("encoding").is_none(),
            "no base64 for valid UTF-8: {c}"
        );
        assert!(
            !c["data"].as_str().unwrap_or_default().contains('\u{FFFD}'),
            "{c}"
        );
    }
}

#[tokio::test]
async fn flooding_both_pipes_does_not_deadlock() {
    // The timeout only turns a deadlock into a failure instead of a hang.
    let r = run(&helper(&format!("flood {}", 16 * MIB)), |s| {
        s.timeout = Some(Duration::from_secs(120))
    })
    .await;
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
    let expected = pattern(16 * MIB);
    assert_same_bytes(&r.stream("stdout"), &expected);
    assert_same_bytes(&r.stream("stderr"), &expected);
    assert_eq!(r.result.stderr.tail.len(), 64 * 1024);
}

#[tokio::test]
async fn timeout_stops_a_process_that_ignores_sigterm() {
    let (timeout, grace) = (Duration::from_millis(400), Duration::from_millis(300));
    let r = run(&format!("exec {}", helper("ignore-term 30")), |s| {
        s.timeout = Some(timeout);
        s.kill_grace = grace;
    })
    .await;
    assert!(r.elapsed < timeout + grace + SLACK, "{:?}", r.elapsed);
    assert!(
        r.elapsed >= timeout + grace,
        "SIGTERM was ignored, so only SIGKILL ended it"
    );
    assert_eq!(
        r.result.outcome,
        Outcome::TimedOut {
            after: timeout,
            signal: Some(9),
            code: None
        }
    );
    assert!(r.result.timed_out());
    assert_eq!(
        exec::summarize(&r.result, Some("hint")),
        "Timed out after 400ms"
    );
    let end = r.end();
    assert_eq!(end["status"], "timed_out");
    assert_eq!(end["timed_out"], true);
    assert_eq!(
        (end["exit_code"].as_i64(), end["signal"].as_str()),
        (Some(137), Some("SIGKILL"))
    );
}

#[tokio::test]
async fn a_process_cleaning_up_after_sigterm_gets_the_whole_grace() {
    // Not `exec`: `sh` stays the main process and dies on SIGTERM at once, while its child
    // takes 0.6 s to clean up with the pipes open. That must not count as a leak after 0.2 s.
    let (timeout, grace) = (Duration::from_millis(300), Duration::from_secs(3));
    let r = run(&format!("{}; echo never", helper("slow-term 0.6")), |s| {
        s.timeout = Some(timeout);
        s.kill_grace = grace;
        s.leak_timeout = Duration::from_millis(200);
    })
    .await;
    let out = String::from_utf8(r.stream("stdout")).expect("utf-8");
    assert_eq!(out, "waiting for SIGTERM\ncleaned up\n");
    assert!(
        r.elapsed >= timeout + Duration::from_millis(600),
        "{:?}",
        r.elapsed
    );
    assert!(
        r.elapsed < timeout + grace,
        "ended before SIGKILL: {:?}",
        r.elapsed
    );
    assert!(r.result.timed_out());
    assert!(!r.result.leaked_processes);
}

#[tokio::test]
async fn timeout_terminates_a_cooperative_group() {
    let timeout = Duration::from_millis(300);
    let r = run(&helper("sleep 30"), |s| s.timeout = Some(timeout)).await;
    assert!(
        r.elapsed < timeout + SLACK,
        "SIGTERM was enough: {:?}",
        r.elapsed
    );
    assert_eq!(
        r.result.outcome,
        Outcome::TimedOut {
            after: timeout,
            signal: Some(15),
            code: None
        }
    );
    assert!(!r.result.leaked_processes);
}

#[tokio::test]
async fn grandchild_holding_the_pipe_is_killed_after_the_leak_wait() {
    let leak = Duration::from_millis(300);
    let r = run(&helper("grandchild 30"), |s| s.leak_timeout = leak).await;
    assert!(r.elapsed < leak + SLACK, "{:?}", r.elapsed);
    assert!(r.elapsed >= leak);
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
    assert!(r.result.leaked_processes);
    assert_eq!(r.end()["leaked_processes"], true);
    let grandchild = r.printed_pid();
    assert!(is_dead(grandchild), "grandchild {grandchild} survived");
}

#[tokio::test]
async fn background_job_that_closed_the_pipes_is_killed_at_the_end() {
    let r = run(&helper("background 30"), |_| {}).await;
    assert!(r.elapsed < SLACK, "nothing held the pipes: {:?}", r.elapsed);
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
    assert!(r.result.leaked_processes);
    let pid = r.printed_pid();
    assert!(is_dead(pid), "background job {pid} survived");
}

#[tokio::test]
async fn setsid_daemon_holding_the_pipe_cannot_hang_the_run() {
    let leak = Duration::from_millis(300);
    let r = run(&helper("daemon 30"), |s| s.leak_timeout = leak).await;
    assert!(r.elapsed < leak + SLACK, "{:?}", r.elapsed);
    assert_eq!(r.result.outcome, Outcome::Exited { code: 0 });
    assert!(r.result.leaked_processes);
    // Documented limit: a process that left the group survives; it is only cut off.
    let daemon = r.printed_pid();
    let escaped = !is_dead(daemon);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(escaped, "the setsid daemon is outside the group");
}

#[tokio::test]
async fn graceful_cancel_terminates_the_group() {
    let cancel = cancel_later(vec![(300, CancelRequest::Graceful { signal: 2 })]);
    let r = run_in(&helper("sleep 30"), |_| {}, cancel).await;
    assert!(
        r.elapsed < Duration::from_millis(300) + SLACK,
        "{:?}",
        r.elapsed
    );
    assert_eq!(
        r.result.outcome,
        Outcome::Cancelled {
            signal: Some(15),
            code: None
        }
    );
    assert_eq!(r.end()["status"], "cancelled");
    assert_eq!(
        exec::summarize(&r.result, None),
        "Terminated with signal SIGTERM"
    );
}

#[tokio::test]
async fn graceful_cancel_kills_after_the_grace() {
    let grace = Duration::from_millis(300);
    let cancel = cancel_later(vec![(400, CancelRequest::Graceful { signal: 15 })]);
    let r = run_in(
        &format!("exec {}", helper("ignore-term 30")),
        |s| s.kill_grace = grace,
        cancel,
    )
    .await;
    assert!(r.elapsed >= Duration::from_millis(400) + grace);
    assert!(
        r.elapsed < Duration::from_millis(400) + grace + SLACK,
        "{:?}",
        r.elapsed
    );
    assert_eq!(
        r.result.outcome,
        Outcome::Cancelled {
            signal: Some(9),
            code: None
        }
    );
}

#[tokio::test]
async fn immediate_cancel_kills_at_once() {
    let cancel = cancel_later(vec![(300, CancelRequest::Immediate { signal: 2 })]);
    let r = run_in(
        &format!("exec {}", helper("ignore-term 30")),
        |s| s.kill_grace = Duration::from_secs(30),
        cancel,
    )
    .await;
    assert!(
        r.elapsed < Duration::from_millis(300) + SLACK,
        "{:?}",
        r.elapsed
    );
    assert_eq!(
        r.result.outcome,
        Outcome::Cancelled {
            signal: Some(9),
            code: None
        }
    );
}

#[tokio::test]
async fn graceful_escalated_to_immediate_does_not_wait_for_the_grace() {
    let cancel = cancel_later(vec![
        (300, CancelRequest::Graceful { signal: 2 }),
        (300, CancelRequest::Immediate { signal: 2 }),
    ]);
    let r = run_in(
        &format!("exec {}", helper("ignore-term 30")),
        |s| s.kill_grace = Duration::from_secs(30),
        cancel,
    )
    .await;
    assert!(
        r.elapsed < Duration::from_millis(600) + SLACK,
        "{:?}",
        r.elapsed
    );
    assert_eq!(
        r.result.outcome,
        Outcome::Cancelled {
            signal: Some(9),
            code: None
        }
    );
}

#[tokio::test]
async fn cancel_requested_before_the_spawn_acts_at_once() {
    let (_tx, rx) = watch::channel(CancelRequest::Immediate { signal: 2 });
    let r = run_in(&helper("sleep 30"), |_| {}, rx).await;
    assert!(r.elapsed < SLACK, "{:?}", r.elapsed);
    assert_eq!(
        r.result.outcome,
        Outcome::Cancelled {
            signal: Some(9),
            code: None
        }
    );
}

#[tokio::test]
async fn memory_keeps_only_a_64_kib_tail() {
    let r = run(&helper(&format!("bytes {MIB}")), |_| {}).await;
    let out = &r.result.stdout;
    assert_eq!(out.total_bytes, MIB as u64);
    assert!(out.truncated);
    assert_eq!(out.tail, pattern(MIB)[MIB - 64 * 1024..]);
    assert_eq!(
        (r.result.stderr.total_bytes, r.result.stderr.truncated),
        (0, false)
    );
    assert_same_bytes(&r.stream("stdout"), &pattern(MIB));
}

#[tokio::test]
async fn retained_chunk_events_are_capped_and_the_rest_counted() {
    let r = run(&helper(&format!("bytes {MIB}")), |s| s.max_chunk_events = 3).await;
    let logged = r.chunks();
    assert!(logged.len() > 3);
    let kept = &r.result.chunk_events;
    assert_eq!(
        kept.iter().map(|c| c.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(r.result.dropped_chunk_events, logged.len() as u64 - 3);
    let first: Vec<u8> = kept.iter().flat_map(|c| c.data.iter().copied()).collect();
    assert_eq!(first, pattern(first.len()));
    // The default keeps none.
    let r = run("printf hi", |_| {}).await;
    assert!(r.result.chunk_events.is_empty());
    assert_eq!(r.result.dropped_chunk_events, 1);
}

#[tokio::test]
async fn runner_log_references_chunks_instead_of_repeating_their_data() {
    let r = run("printf out; printf err >&2", |_| {}).await;
    let types: Vec<&str> = r.runner.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"exec:begin"));
    assert_eq!(types.last(), Some(&"exec:end"));
    let chunks = Ran::of_type(&r.runner, "exec:chunk");
    assert_eq!(chunks.len(), r.chunks().len());
    for (runner, stage) in chunks.iter().zip(r.chunks()) {
        assert!(runner.get("data").is_none(), "{runner}");
        assert_eq!(runner["ref"], "commands/01-stage.ndjson");
        assert_eq!(
            (&runner["sequence"], &runner["bytes"]),
            (&stage["sequence"], &stage["bytes"])
        );
    }
    assert_eq!(r.stream("stdout"), b"out");
    assert_eq!(r.stream("stderr"), b"err");
}

#[tokio::test]
async fn sequence_follows_the_order_of_output_across_streams() {
    let r = run(
        "printf a; sleep 0.2; printf b >&2; sleep 0.2; printf c",
        |_| {},
    )
    .await;
    let order: Vec<(String, String)> = r
        .chunks()
        .iter()
        .map(|c| {
            (
                c["stream"].as_str().unwrap_or_default().to_owned(),
                c["data"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [("stdout", "a"), ("stderr", "b"), ("stdout", "c")]
        .map(|(s, d)| (s.to_owned(), d.to_owned()));
    assert_eq!(order, expected);
}

#[tokio::test]
async fn exit_code_env_and_closed_stdin() {
    // `cat` ends at once only if stdin is closed (/dev/null).
    let r = run("cat; echo \"$FIRST-$SECOND\"; echo oops >&2; exit 3", |s| {
        s.env = vec![
            ("FIRST".into(), "one".into()),
            ("SECOND".into(), "two".into()),
        ];
    })
    .await;
    assert_eq!(r.result.outcome, Outcome::Exited { code: 3 });
    assert_eq!(r.stream("stdout"), b"one-two\n");
    assert_eq!(
        exec::summarize(&r.result, Some("hint")),
        "Exited with code 3 — oops"
    );
    assert_eq!(
        (r.end()["exit_code"].as_i64(), r.end()["status"].as_str()),
        (Some(3), Some("failed"))
    );
    assert!(!r.result.leaked_processes);
}

#[tokio::test]
async fn spawned_process_leads_its_own_group() {
    let r = run(&helper("exit 0"), |_| {}).await;
    let p = r.spawned.expect("on_spawn was called");
    assert_eq!(p.pgid, p.pid as i32);
    assert!(p.start_ticks.is_some());
    assert!(p.started_at.ends_with('Z'));
    assert_eq!(r.result.process, Some(p));
    assert_eq!(
        exec::summarize(&r.result, None),
        "Command completed with code 0"
    );
}

#[tokio::test]
async fn a_command_that_cannot_start_is_an_outcome_not_an_error() {
    let r = run("true", |s| s.cwd = s.cwd.join("missing")).await;
    assert!(matches!(r.result.outcome, Outcome::SpawnFailed { .. }));
    assert!(r.spawned.is_none());
    assert_eq!(r.result.exit_code(), Some(127));
    assert!(exec::summarize(&r.result, None).starts_with("Failed to start: sh -c in `"));
    assert_eq!(
        (r.end()["exit_code"].as_i64(), r.end()["status"].as_str()),
        (Some(127), Some("failed"))
    );
}
