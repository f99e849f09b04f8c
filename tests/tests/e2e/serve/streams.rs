//! The event streams: a run's `events.jsonl` as SSE with reconnection by `Last-Event-ID`, a
//! torn last line held back until it is complete, run-level changes on `/api/events`, a live
//! stage log, and a clean stop on Ctrl-C with streams open.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use super::http::{self, SseEvent};
use super::{eventually, run_of, start_in_background, Server};
use crate::harness::TestEnv;

const STEPS: &str = r#"{"pipelines":[{"id":"steps","stages":[
  {"kind":"command","id":"s1","command":"sleep 0.4; echo one"},
  {"kind":"command","id":"s2","command":"sleep 0.4; echo two"},
  {"kind":"command","id":"s3","command":"sleep 0.4; echo three"},
  {"kind":"command","id":"s4","command":"sleep 0.4; echo four"},
  {"kind":"command","id":"s5","command":"sleep 0.4; echo five"}]}]}"#;

fn seqs(events: &[SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event == "message")
        .map(|e| {
            let v: Value = serde_json::from_str(&e.data).expect("data is the line");
            assert_eq!(
                e.id.as_deref(),
                Some(v["seq"].to_string().as_str()),
                "id is the seq"
            );
            v["seq"].as_u64().expect("seq")
        })
        .collect()
}

#[test]
fn a_reconnecting_client_misses_nothing_and_gets_nothing_twice() {
    let env = TestEnv::new().config(STEPS);
    let server = Server::start(&env, &[]);
    let mut runner = start_in_background(&env, "steps");
    let run = run_of(&server, "steps");
    let path = format!("/api/runs/{run}/events");

    // First connection: read a few events while the run goes on, then cut it.
    let mut first = http::sse(server.addr, &path, &[]);
    assert_eq!(first.status, 200);
    assert_eq!(
        first
            .headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str()),
        Some("text/event-stream")
    );
    assert!(
        !first.headers.iter().any(|(k, _)| k == "content-encoding"),
        "no compression on the stream"
    );
    let got = first.until(Duration::from_secs(10), |e| e.id.as_deref() == Some("3"));
    let mut seen = seqs(&got);
    assert_eq!(seen, [1, 2, 3]);
    first.cut();

    // The run goes on without us; then reconnect from the last id seen.
    std::thread::sleep(Duration::from_millis(900));
    let mut second = http::sse(server.addr, &path, &[("Last-Event-ID", "3")]);
    let rest = second.until(Duration::from_secs(20), |e| e.event == "end");
    let end = rest.last().expect("events");
    assert_eq!(end.event, "end", "{rest:?}");
    let end: Value = serde_json::from_str(&end.data).expect("json");
    assert_eq!(end["status"], "succeeded");
    seen.extend(seqs(&rest));
    assert!(
        second.next(Duration::from_secs(2)).is_none(),
        "the stream closes after `end`"
    );
    assert!(runner.wait().expect("runner").success());

    // Every line once, in order, and nothing else.
    let lines = crate::harness::read_lines(&env.run_dir(&run).join("events.jsonl"));
    let all: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seen, all);
    assert_eq!(*all.last().expect("lines"), all.len() as u64);

    // A finished run: the query parameter works as the header does, then `end`.
    let mut again = http::sse(
        server.addr,
        &format!("{path}?last_event_id={}", all.len() - 1),
        &[],
    );
    let tail = again.until(Duration::from_secs(10), |e| e.event == "end");
    assert_eq!(seqs(&tail), [all.len() as u64]);
}

#[test]
fn a_torn_last_line_is_sent_only_once_complete() {
    let env = TestEnv::new().config(STEPS);
    let run = env.start("steps", &[]).run_id();
    let dir = env.run_dir(&run);
    // Make the run look in progress, with a live runner (we hold its lock) writing a line.
    let manifest = dir.join("manifest.json");
    let mut m: Value = crate::harness::read_json(&manifest);
    m["status"] = "in_progress".into();
    m["completed_at"] = Value::Null;
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).expect("json")).expect("write");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("run.lock"))
        .expect("lock file");
    let _held =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).expect("lock");
    let events = dir.join("events.jsonl");
    let lines = std::fs::read_to_string(&events).expect("read");
    let mut kept: Vec<&str> = lines.lines().take(2).collect();
    let third = r#"{"schema_version":1,"seq":3,"timestamp":"2026-01-01T00:00:00.000Z","task_id":"0101","run_id":"x","event":"step_started","actor":"runner","payload":{"stage_id":"s2"}}"#;
    let (head, rest) = third.split_at(60);
    std::fs::write(&events, format!("{}\n{head}", kept.join("\n"))).expect("write");

    let server = Server::start(&env, &[]);
    let mut s = http::sse(server.addr, &format!("/api/runs/{run}/events"), &[]);
    let first = s.until(Duration::from_secs(5), |e| e.id.as_deref() == Some("2"));
    assert_eq!(seqs(&first), [1, 2]);
    assert!(
        s.next(Duration::from_millis(700)).is_none(),
        "half a line is not an event"
    );

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .expect("open");
    f.write_all(rest.as_bytes()).expect("append");
    f.write_all(b"\n").expect("append");
    let next = s.next(Duration::from_secs(5)).expect("the completed line");
    assert_eq!(next.id.as_deref(), Some("3"));
    assert_eq!(next.data, third);
    let done = r#"{"schema_version":1,"seq":4,"timestamp":"2026-01-01T00:00:01.000Z","task_id":"0101","run_id":"x","event":"run_completed","actor":"runner","payload":{"status":"succeeded"}}"#;
    writeln!(f, "{done}").expect("append");
    let rest = s.until(Duration::from_secs(5), |e| e.event == "end");
    assert_eq!(seqs(&rest), [4]);
    kept.clear();
}

#[test]
fn run_level_changes_stream_to_every_runs_page() {
    let env = TestEnv::new().config(STEPS);
    let server = Server::start(&env, &[]);
    let mut changes = http::sse(server.addr, "/api/events", &[]);
    assert_eq!(changes.status, 200);
    let mut runner = start_in_background(&env, "steps");
    let got = changes.until(Duration::from_secs(20), |e| {
        e.event == "run" && e.data.contains(r#""status":"succeeded""#)
    });
    let rows: Vec<Value> = got
        .iter()
        .filter(|e| e.event == "run")
        .map(|e| serde_json::from_str(&e.data).expect("json"))
        .collect();
    assert!(
        rows.iter().any(|r| r["status"] == "in_progress"),
        "{rows:?}"
    );
    let last = rows.last().expect("rows");
    assert_eq!(last["status"], "succeeded");
    assert_eq!(last["stages_passed"], 5);
    let run = last["run_id"].as_str().expect("id").to_owned();
    assert!(runner.wait().expect("runner").success());

    std::fs::remove_dir_all(env.run_dir(&run)).expect("delete");
    let gone = changes.until(Duration::from_secs(10), |e| e.event == "removed");
    let removed = gone.last().expect("an event");
    assert_eq!(removed.event, "removed");
    assert_eq!(
        serde_json::from_str::<Value>(&removed.data).expect("json")["run_id"],
        run.as_str()
    );
}

#[test]
fn a_stage_log_streams_as_it_is_written_and_ctrl_c_stops_the_server_cleanly() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"talk","stages":[{"kind":"command","id":"talker",
          "command":"for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.25; done; echo bye >&2"}]}]}"#,
    );
    let server = Server::start(&env, &[]);
    let mut runner = start_in_background(&env, "talk");
    let run = run_of(&server, "talk");
    let tail = eventually(Duration::from_secs(10), "the log to exist", || {
        let r = server.get(&format!("/api/runs/{run}/stages/talker/tail"));
        (r.status == 200).then(|| r.json())
    });
    let from = tail["end"].as_u64().expect("end");
    let mut text: String = tail["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| c["text"].as_str().expect("t").to_owned())
        .collect();
    let mut log = http::sse(
        server.addr,
        &format!("/api/runs/{run}/stages/talker/log/events?from={from}"),
        &[],
    );
    let events = log.until(Duration::from_secs(15), |e| e.event == "end");
    assert_eq!(
        events.last().map(|e| e.event.as_str()),
        Some("end"),
        "{events:?}"
    );
    for e in events.iter().filter(|e| e.event == "chunk") {
        let c: Value = serde_json::from_str(&e.data).expect("json");
        text.push_str(c["text"].as_str().expect("text"));
    }
    let expected: String = (1..=6).map(|i| format!("line-{i}\n")).collect::<String>() + "bye\n";
    assert_eq!(text, expected, "every byte once, in order");
    assert!(runner.wait().expect("runner").success());

    // Ctrl-C with streams open: they end, the server exits 0.
    let _open = http::sse(server.addr, "/api/events", &[]);
    let _run = http::sse(
        server.addr,
        &format!("/api/runs/{run}/events?last_event_id=9999"),
        &[],
    );
    assert_eq!(server.interrupt(), Some(0));
}
