//! `serve`: the JSON API and its event streams (`api.rs`, `streams.rs`, `access.rs`), deciding
//! approvals (`approvals.rs`), and the pages in a real headless Chromium driven through
//! WebDriver (`browser.rs`; stages a plan patch adds while the page is open:
//! `browser_patch.rs`). Each test starts the real binary's server on a free loopback port in
//! its own temp repo.

mod access;
mod api;
mod approvals;
mod browser;
mod browser_patch;
pub(crate) mod http;
mod streams;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::TestEnv;

/// A running `serve`.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) url: String,
}

impl Server {
    /// `serve --bind 127.0.0.1:0` plus `extra`, in `env`'s repo; waits for the URL it prints.
    pub(crate) fn start(env: &TestEnv, extra: &[&str]) -> Server {
        let mut args = vec!["serve"];
        if !extra.contains(&"--bind") {
            args.extend(["--bind", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let mut child = env
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("serve prints its URL");
        let url = line.trim().to_owned();
        let hostport = url
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("serve printed {url:?}, not a URL"));
        let addr: SocketAddr = hostport.parse().expect("host:port");
        Server { child, addr, url }
    }

    pub(crate) fn get(&self, path: &str) -> http::Response {
        http::get(self.addr, path)
    }

    /// SIGINT, then the exit code (within 5 s).
    pub(crate) fn interrupt(mut self) -> Option<i32> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 50 ms until it gives `Some`, for at most `limit`.
pub(crate) fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `start <pipeline>` in the background (its output discarded).
pub(crate) fn start_in_background(env: &TestEnv, pipeline: &str) -> Child {
    env.command(["start", pipeline, "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn start")
}

/// The id of the first run of `pipeline` the server lists.
pub(crate) fn run_of(server: &Server, pipeline: &str) -> String {
    eventually(Duration::from_secs(10), "the run to be listed", || {
        let v = server.get(&format!("/api/runs?pipeline={pipeline}")).json();
        v["runs"][0]["run_id"].as_str().map(str::to_owned)
    })
}
