//! The dashboard in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs). While real pipelines run, the
//! runs page gains the new run without a reload, the run page moves stages from running to
//! succeeded and failed as the events arrive, shows a stage's output live (colours rendered,
//! stderr told apart, markup shown as text), its Cancel button cancels the run, and its Approve
//! button lets a run waiting at an approval stage go on. The pages are saved as screenshots
//! under `target/screenshots/` for a person to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{run_of, start_in_background, Server};
use crate::harness::TestEnv;

const CONFIG: &str = r#"{"pipelines":[
  {"id":"gate","title":"Release gate","stages":[
    {"kind":"command","id":"build","title":"Build","command":"printf '\\033[1;32mcompiled\\033[0m 42 crates\\n'; echo 'warning: unused variable' >&2; sleep 3; echo linked"},
    {"kind":"command","id":"unit","title":"Unit tests","dependsOn":["build"],"command":"echo 'running 12 tests'; sleep 1; echo 'test result: ok'"},
    {"kind":"command","id":"lint","title":"Lint","dependsOn":["build"],"command":"echo '<script>window.pwned=1</script><b>not bold</b>'; echo 'lint: 2 problems' >&2; sleep 1.5; exit 2"},
    {"kind":"command","id":"package","title":"Package","dependsOn":["unit","lint"],"command":"echo packaged"}]},
  {"id":"nightly","title":"Nightly soak","stages":[
    {"kind":"command","id":"soak","title":"Soak test","command":"echo soaking; sleep 60"},
    {"kind":"command","id":"report","title":"Report","command":"echo done"}]},
  {"id":"release","title":"Release","stages":[
    {"kind":"approval","id":"gate","title":"Go / no-go","prompt":"Ship build 42 to production?","approvers":["alice"]},
    {"kind":"command","id":"ship","title":"Ship","command":"echo shipped"}]}]}"#;

/// `chromedriver` on a free loopback port, stopped on drop.
pub(super) struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    pub(super) fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group: the browsers it starts join it, so that one signal ends them
        // all even when the test fails before it closes the session.
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = Pid::from_raw(-(self.child.id() as i32));
        let _ = kill(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The browser's profile directory; on drop, any process still using it (a browser that
/// left the driver's process group) is killed before the directory goes.
pub(super) struct Profile(pub(super) tempfile::TempDir);

impl Drop for Profile {
    fn drop(&mut self) {
        let needle = self.0.path().to_string_lossy().into_owned();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

pub(super) async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    // Without the background-networking flags Chromium tries to reach the network at start,
    // which this machine refuses.
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-crash-reporter",
        "--window-size=1280,1500",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Evaluates `expr` in the page until it is truthy; returns its value.
pub(super) async fn until(c: &Client, what: &str, limit: Duration, expr: &str) -> Value {
    let deadline = Instant::now() + limit;
    let script = format!("return ({expr});");
    loop {
        let v = c.execute(&script, vec![]).await.unwrap_or(Value::Null);
        let truthy =
            !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
        if truthy {
            return v;
        }
        if Instant::now() > deadline {
            let html = c.source().await.unwrap_or_default();
            panic!(
                "timed out waiting for {what} ({expr})\npage:\n{}",
                &html[..html.len().min(4000)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn eval(c: &Client, expr: &str) -> Value {
    c.execute(&format!("return ({expr});"), vec![])
        .await
        .expect("script")
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

pub(super) async fn save(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshots().join(name);
    std::fs::write(&path, png).expect("save screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Clicks the element `css` selects. Through the page's own `click()`: rows are redrawn as
/// events arrive, so a WebDriver element reference taken a moment earlier may be stale.
async fn click(c: &Client, css: &str) {
    let css = serde_json::to_string(css).expect("json");
    let done = eval(c, &format!("(() => {{ const e = document.querySelector({css}); if (e) e.click(); return !!e; }})()")).await;
    assert_eq!(done, json!(true), "nothing to click at {css}");
}

pub(super) fn stage(id: &str, what: &str) -> String {
    format!("document.querySelector('#stages tr[data-stage=\"{id}\"]')?.dataset.{what}")
}

#[test]
fn the_dashboard_follows_runs_live_in_a_real_browser() {
    let env = TestEnv::new().config(CONFIG);
    // One finished run first, so the runs page has history and a pass rate to show.
    assert_eq!(env.start("gate", &[]).code, 1);
    let server = Server::start(&env, &[]);
    let driver = Driver::start();
    let profile = Profile(tempfile::tempdir().expect("profile dir"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let c = browser(&driver, profile.0.path()).await;
        let base = server.url.trim_end_matches('/').to_owned();

        // The runs page is open when a run starts: the run appears without a reload.
        c.goto(&format!("{base}/")).await.expect("runs page");
        until(&c, "the live stream", Duration::from_secs(10), "document.getElementById('live').dataset.state === 'live'").await;
        until(&c, "the recorded run", Duration::from_secs(10), "document.querySelectorAll('#runs tbody tr[data-status=\"failed\"]').length === 1").await;
        eval(&c, "window.notReloaded = true").await;
        let mut runner = start_in_background(&env, "gate");
        let run = run_of(&server, "gate&status=in_progress");
        until(&c, "the new run's row", Duration::from_secs(10), &format!("document.querySelector('#runs tr[data-run=\"{run}\"]')?.dataset.status === 'in_progress'")).await;
        assert_eq!(eval(&c, "window.notReloaded").await, json!(true), "no reload");

        // Its page: stages move from running to their results as the events arrive.
        click(&c, &format!("#runs tr[data-run=\"{run}\"] a")).await;
        until(&c, "the run page", Duration::from_secs(10), &format!("document.getElementById('run')?.dataset.runId === '{run}'")).await;
        eval(&c, "window.notReloaded = true").await;
        until(&c, "build to run", Duration::from_secs(10), &format!("{} === 'running'", stage("build", "status"))).await;
        until(&c, "build's node to run", Duration::from_secs(5), "document.querySelector('#graph g.node[data-stage=\"build\"]')?.dataset.status === 'running'").await;
        // Its output shows while it runs: colours rendered, stderr told apart.
        until(&c, "build's output", Duration::from_secs(10), "document.getElementById('log').textContent.includes('compiled 42 crates')").await;
        assert_eq!(eval(&c, "document.querySelector('#log .ansi-bold.fg-green')?.textContent").await, json!("compiled"));
        // (stderr is its own pipe: its chunk may come a moment later, through the log's stream)
        until(&c, "build's stderr", Duration::from_secs(10), "document.querySelector('#log .err')?.textContent === 'warning: unused variable\\n'").await;
        assert_eq!(eval(&c, "document.getElementById('log').textContent.includes('\\u001b')").await, json!(false));
        save(&c, "run-page-running.png").await;
        until(&c, "build to succeed", Duration::from_secs(10), &format!("{} === 'succeeded'", stage("build", "status"))).await;
        until(&c, "the rest of build's output", Duration::from_secs(5), "document.getElementById('log').textContent.includes('linked')").await;
        until(&c, "lint to run", Duration::from_secs(5), &format!("{} === 'running' || {} === 'failed'", stage("lint", "status"), stage("lint", "status"))).await;
        until(&c, "lint to fail", Duration::from_secs(10), &format!("{} === 'failed'", stage("lint", "status"))).await;
        until(&c, "the run to fail", Duration::from_secs(10), "document.getElementById('run').dataset.status === 'failed'").await;
        assert_eq!(eval(&c, &stage("unit", "status")).await, json!("succeeded"));
        assert_eq!(eval(&c, &stage("package", "status")).await, json!("pending"));
        assert_eq!(eval(&c, "window.notReloaded").await, json!(true), "all of it without a reload");
        assert!(eval(&c, "Number(document.getElementById('run').dataset.events)").await.as_u64().unwrap_or(0) >= 8, "driven by the event stream");
        assert_eq!(runner.wait().expect("runner").code(), Some(1));

        // Lint's output: markup is text, never markup.
        click(&c, "#stages tr[data-stage=\"lint\"]").await;
        until(&c, "lint's output", Duration::from_secs(10), "document.getElementById('log').textContent.includes('<script>window.pwned=1</script><b>not bold</b>')").await;
        assert_eq!(eval(&c, "document.querySelectorAll('#log script, #log b').length").await, json!(0));
        assert_eq!(eval(&c, "typeof window.pwned").await, json!("undefined"));
        assert_eq!(eval(&c, "document.querySelector('#errors [data-stage=\"lint\"]') !== null").await, json!(true), "its error file is shown");
        click(&c, "#stages tr[data-stage=\"build\"]").await;
        until(&c, "build's output again", Duration::from_secs(10), "document.getElementById('log').dataset.state === 'ended' && document.getElementById('log').textContent.includes('linked')").await;
        assert_eq!(
            eval(&c, "document.getElementById('rawlog').getAttribute('href')").await,
            json!(format!("/api/runs/{run}/files/commands/01-build.ndjson"))
        );
        save(&c, "run-page.png").await;

        // Back on the runs page: the failed run, the failed stage, the pipeline's record.
        c.goto(&format!("{base}/")).await.expect("runs page");
        until(&c, "both runs", Duration::from_secs(10), "document.querySelectorAll('#runs tbody tr[data-status=\"failed\"]').length === 2").await;
        assert_eq!(eval(&c, &format!("document.querySelector('#runs tr[data-run=\"{run}\"] td:last-child').textContent")).await, json!("lint"));
        until(&c, "the pipeline card", Duration::from_secs(10), "document.querySelector('#pipelines [data-pipeline=\"gate\"]')?.textContent.includes('2 runs')").await;

        // Cancel: the button does what `cancel --run` does.
        let mut soak = start_in_background(&env, "nightly");
        let soak_run = run_of(&server, "nightly&status=in_progress");
        until(&c, "the soak run's row", Duration::from_secs(10), &format!("document.querySelector('#runs tr[data-run=\"{soak_run}\"]')?.dataset.status === 'in_progress'")).await;
        save(&c, "runs-page.png").await;
        c.goto(&format!("{base}/runs/{soak_run}")).await.expect("run page");
        until(&c, "the soak stage to run", Duration::from_secs(10), &format!("{} === 'running'", stage("soak", "status"))).await;
        until(&c, "the cancel button", Duration::from_secs(10), "!document.getElementById('cancel').hidden").await;
        let button = c.find(Locator::Id("cancel")).await.expect("cancel button");
        button.click().await.expect("click once");
        assert_eq!(eval(&c, "document.getElementById('cancel').textContent").await, json!("Click again to cancel the run"));
        button.click().await.expect("click again");
        until(&c, "the run to be cancelled", Duration::from_secs(15), "document.getElementById('run').dataset.status === 'cancelled'").await;
        assert_eq!(soak.wait().expect("runner").code(), Some(143));
        assert_eq!(env.manifest(&soak_run)["status"], "cancelled");

        // Approve: a run waiting at an approval shows its prompt; one click lets it finish.
        let mut release = start_in_background(&env, "release");
        let release_run = run_of(&server, "release&status=in_progress");
        c.goto(&format!("{base}/runs/{release_run}")).await.expect("run page");
        until(&c, "the approval card", Duration::from_secs(15), "document.querySelector('#approvals [data-stage=\"gate\"] .prompt')?.textContent === 'Ship build 42 to production?'").await;
        assert_eq!(eval(&c, "document.getElementById('approvalsec').hidden").await, json!(false));
        assert_eq!(eval(&c, &stage("gate", "status")).await, json!("running"));
        c.find(Locator::Css("#approvals [data-stage=\"gate\"] input.actor")).await.expect("actor field").send_keys("alice").await.expect("type the actor");
        save(&c, "run-page-approval.png").await;
        c.find(Locator::Css("#approvals [data-stage=\"gate\"] button.approve")).await.expect("approve button").click().await.expect("click approve");
        until(&c, "the release run to succeed", Duration::from_secs(15), "document.getElementById('run').dataset.status === 'succeeded'").await;
        // (the run's end arrives as an event; the stages follow with the next fetch)
        until(&c, "ship to succeed", Duration::from_secs(10), &format!("{} === 'succeeded'", stage("ship", "status"))).await;
        until(&c, "the approval card to go", Duration::from_secs(10), "document.getElementById('approvalsec').hidden").await;
        assert_eq!(release.wait().expect("runner").code(), Some(0));
        let m = env.manifest(&release_run);
        assert_eq!(m["approvals"][0]["actor"], "alice");
        assert_eq!(m["approval_decisions"][0]["source"], "dashboard");
        c.close().await.expect("close the session");
    });
}
