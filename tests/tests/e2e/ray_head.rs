//! What the Ray tests need of a head besides the runner: reading its job list (a tiny HTTP
//! GET over std, so the tests do not need an HTTP client crate), and a head of their own for
//! the test that stops one (`.ci/ray-head.sh` on other ports in its own temp dir: `ray stop`
//! would take every head on the machine down, the shared one included).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `GET <address><path>`: the body, parsed as JSON.
fn get(address: &str, path: &str) -> Value {
    let host = address
        .strip_prefix("http://")
        .expect("an http:// address")
        .trim_end_matches('/');
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    assert!(
        head.starts_with("http/1.1 200"),
        "GET {path}: {}",
        head.lines().next().unwrap_or("")
    );
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// `GET /api/jobs/{id}`.
pub(crate) fn job(address: &str, id: &str) -> Value {
    get(address, &format!("/api/jobs/{id}"))
}

/// `GET /api/jobs/`: every job of the head's session.
pub(crate) fn jobs(address: &str) -> Vec<Value> {
    match get(address, "/api/jobs/") {
        Value::Array(a) => a,
        other => panic!("job list: {other}"),
    }
}

/// A head of the test's own, stopped (only it) when dropped.
pub(crate) struct Head {
    pub(crate) address: String,
    venv: String,
    tmp: String,
    base: u16,
    stopped: bool,
}

impl Head {
    /// Starts a head on ports 27600.. in `/tmp/co-ray-<name>-<pid>`; `None` (printed) when no
    /// Ray install is named outside CI.
    pub(crate) fn start_own(name: &str) -> Option<Head> {
        let venv = match std::env::var("CODEX_ORCHESTRATOR_TEST_RAY_VENV") {
            Ok(v) if !v.trim().is_empty() => v,
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI is set but CODEX_ORCHESTRATOR_TEST_RAY_VENV is not (.ci/run sets it)")
            }
            _ => {
                eprintln!("SKIPPED: no Ray install to start a second head (CODEX_ORCHESTRATOR_TEST_RAY_VENV unset)");
                return None;
            }
        };
        let mut head = Head {
            address: String::new(),
            venv,
            tmp: format!("/tmp/co-ray-{name}-{}", std::process::id()),
            base: 27600,
            stopped: false,
        };
        let t0 = Instant::now();
        let out = head.script("start").output().expect("run .ci/ray-head.sh");
        assert!(
            out.status.success(),
            "a second head did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        head.address = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!("second Ray head up in {:?}: {}", t0.elapsed(), head.address);
        Some(head)
    }

    fn script(&self, verb: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(crate::ray::head_script())
            .arg(verb)
            .env("RAY_VENV", &self.venv)
            .env("RAY_TMP", &self.tmp)
            .env("RAY_PORT_BASE", self.base.to_string())
            .env("RAY_NUM_CPUS", "1");
        c
    }

    /// Stops the head (all of its processes) now.
    pub(crate) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let t0 = Instant::now();
        let _ = self.script("stop").status();
        eprintln!("second Ray head stopped in {:?}", t0.elapsed());
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        self.stop_now();
    }
}
