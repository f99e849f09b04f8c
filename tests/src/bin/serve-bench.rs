//! The client side of `bench/serve.sh` (not a test): measures a running `serve`. It shares the
//! tests' HTTP client (`tests/e2e/serve/http.rs`).
//!
//! `serve-bench latency <base-url> <pipeline> <clients>`: waits for a run of `<pipeline>` to be
//! in progress, opens `<clients>` event streams on it at once, reads every event until `end`,
//! and reports how long after an event's line was written (its `timestamp`, stamped as the
//! line is written) each client received it: p50, p99, max over every (client, event) pair
//! written after all clients were connected. One JSON object on stdout.
//!
//! `serve-bench list <base-url> <repeats>`: times `GET /api/runs` (the runs page's first page)
//! and `GET /api/pipelines` `<repeats>` times each after a first (cold) request, one request
//! per connection; prints first / min / median / max in milliseconds as one JSON object.

#[path = "../../tests/e2e/serve/http.rs"]
#[expect(
    dead_code,
    reason = "the tests use more of the client than the benchmark does"
)]
mod http;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a base URL like http://127.0.0.1:7878")
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ts_ms(ts: &str) -> Option<f64> {
    humantime::parse_rfc3339(ts)
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(base: &str, pipeline: &str, clients: usize) {
    let addr = addr(base);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let v = http::get(
            addr,
            &format!("/api/runs?pipeline={pipeline}&status=in_progress"),
        )
        .json();
        if let Some(id) = v["runs"][0]["run_id"].as_str() {
            break id.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no run of `{pipeline}` in progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let path = format!("/api/runs/{run}/events");
    let streams: Vec<http::Sse> = (0..clients).map(|_| http::sse(addr, &path, &[])).collect();
    // Events written before every client was connected are backlog, not latency.
    let connected = now_ms();
    let handles: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                let mut events = 0usize;
                while let Some(e) = s.next(Duration::from_secs(120)) {
                    let got = now_ms();
                    if e.event == "end" {
                        break;
                    }
                    events += 1;
                    let v: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
                    if let Some(written) = v["timestamp"].as_str().and_then(ts_ms) {
                        if written > connected {
                            samples.push(got - written);
                        }
                    }
                }
                (events, samples)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_client = Vec::new();
    for h in handles {
        let (events, samples) = h.join().expect("client thread");
        per_client.push(events);
        all.extend(samples);
    }
    all.sort_by(f64::total_cmp);
    let out = json!({
        "run_id": run,
        "clients": clients,
        "events_per_client_min": per_client.iter().min(),
        "events_per_client_max": per_client.iter().max(),
        "samples": all.len(),
        "p50_ms": percentile(&all, 0.50),
        "p99_ms": percentile(&all, 0.99),
        "max_ms": all.last(),
    });
    println!("{out}");
}

fn timed(addr: SocketAddr, path: &str, repeats: usize) -> Value {
    let once = || {
        let t = Instant::now();
        let r = http::get(addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        (t.elapsed().as_secs_f64() * 1000.0, r.body.len())
    };
    // The first request is the cold one (the server opens the index); reported apart.
    let (first, bytes) = once();
    let mut t: Vec<f64> = (0..repeats).map(|_| once().0).collect();
    t.sort_by(f64::total_cmp);
    json!({ "path": path, "bytes": bytes, "first_ms": first, "min_ms": t[0], "median_ms": percentile(&t, 0.5), "max_ms": t[t.len() - 1] })
}

fn list(base: &str, repeats: usize) {
    let addr = addr(base);
    let out = json!({
        "runs": timed(addr, "/api/runs", repeats),
        "failed": timed(addr, "/api/runs?status=failed", repeats),
        "page_100": timed(addr, "/api/runs?offset=5000&limit=50", repeats),
        "pipelines": timed(addr, "/api/pipelines", repeats),
    });
    println!("{out}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("latency") if args.len() == 5 => {
            latency(&args[2], &args[3], args[4].parse().expect("clients"))
        }
        Some("list") if args.len() == 4 => list(&args[2], args[3].parse().expect("repeats")),
        _ => {
            eprintln!("usage: serve-bench latency <base-url> <pipeline> <clients> | list <base-url> <repeats>");
            std::process::exit(2);
        }
    }
}
