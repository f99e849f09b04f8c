//! The Ray wrapper `co_entry.py` on this machine, without Ray: what it promises the runner
//! (byte-exact framed output with the streams apart, the exit record, a timeout or a stop that
//! leaves no process of the stage behind, a private copy of the working directory), read back
//! with the runner's own decoder. Needs `python3`: without it these tests print why and pass
//! locally, and fail under CI (`CI` set), which installs Python for Ray.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use exec::ray::records::{Begin, Decoder, Exit, Record};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

const WRAPPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ray/co_entry.py");

fn python() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but python3 is missing (.ci/run installs it for Ray)"
        );
        eprintln!("SKIPPED: python3 is not installed");
    }
    ok
}

/// What one wrapper run wrote.
#[derive(Debug, Default)]
struct Decoded {
    out: Vec<u8>,
    err: Vec<u8>,
    begin: Option<Begin>,
    exit: Option<Exit>,
    status: Option<i32>,
    took: Duration,
}

fn wrapper(cmd: &str, extra: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new("python3");
    c.arg(WRAPPER)
        .args(["--nonce", "T1", "--cmd-b64"])
        .arg(base64::engine::general_purpose::STANDARD.encode(cmd))
        .args(extra)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    c
}

fn decode(text: &str, status: Option<i32>, took: Duration) -> Decoded {
    let mut d = Decoded {
        status,
        took,
        ..Decoded::default()
    };
    let mut dec = Decoder::new("T1");
    let mut records = Vec::new();
    dec.feed(text, &mut |r| records.push(r));
    dec.finish(&mut |r| records.push(r));
    assert_eq!((dec.gaps, dec.malformed), (0, 0), "{text}");
    for r in records {
        match r {
            Record::Stdout(b) => d.out.extend(b),
            Record::Stderr(b) => d.err.extend(b),
            Record::Begin(b) => d.begin = Some(b),
            Record::Exit(x) => d.exit = Some(x),
        }
    }
    d
}

/// Runs the wrapper to its end; `signal` is sent to it (or its group) once the stage has
/// started (its `b` record is out) and `after` has passed.
fn run(cmd: &str, extra: &[&str], cwd: &Path, signal: Option<(Duration, Signal, bool)>) -> Decoded {
    let mut c = wrapper(cmd, extra, cwd);
    if signal.is_some_and(|(_, _, group)| group) {
        // As Ray runs an entrypoint: in a group of its own, which the wrapper then leads.
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
    }
    let t0 = Instant::now();
    let mut child = c.spawn().expect("python3");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    if let Some((after, sig, group)) = signal {
        // The machine may be loaded: wait for the stage to run rather than for a fixed time.
        while !text.contains("@@co:T1 0 b ") {
            let n = std::io::BufRead::read_line(&mut stdout, &mut text).expect("ASCII records");
            assert!(n > 0, "the wrapper ended before the stage started: {text}");
        }
        std::thread::sleep(after);
        let pid = Pid::from_raw(child.id() as i32);
        if group {
            killpg(pid, sig).expect("signal group");
        } else {
            kill(pid, sig).expect("signal");
        }
    }
    stdout.read_to_string(&mut text).expect("ASCII records");
    let status = child.wait().expect("wait").code();
    decode(&text, status, t0.elapsed())
}

/// Pids of processes whose command line contains `marker`.
fn alive(marker: &str) -> Vec<u32> {
    std::thread::sleep(Duration::from_millis(300));
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(marker)
            })
        })
        .filter(|pid| {
            // Zombies run nothing.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
            })
        })
        .collect()
}

/// A number no other test's `sleep` uses, so survivors are told apart.
fn marker(n: u32) -> String {
    format!("{}.{n}", 3000 + std::process::id() % 1000)
}

#[test]
fn every_byte_comes_back_with_the_streams_apart_and_the_exit_code() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let blob: Vec<u8> = (0..=255u8).cycle().take(25_600).collect();
    std::fs::write(dir.path().join("blob"), &blob).expect("blob");
    let d = run(
        "cat blob; cat blob >&2; printf '\\377\\376'; exit 3",
        &[],
        dir.path(),
        None,
    );
    let mut want = blob.clone();
    want.extend_from_slice(b"\xff\xfe");
    assert_eq!(d.out, want);
    assert_eq!(d.err, blob);
    let x = d.exit.expect("exit record");
    assert_eq!(
        (x.code, x.signal, x.started, x.stopped),
        (Some(3), None, true, false)
    );
    assert_eq!(
        d.status,
        Some(3),
        "the wrapper's own status follows the stage"
    );
    let b = d.begin.expect("begin record");
    assert!(b.pid.is_some() && b.host.is_some());
    let d = run("kill -TERM $$", &[], dir.path(), None);
    assert_eq!(d.exit.expect("exit").signal, Some(15));
    assert_eq!(d.status, Some(143));
}

#[test]
fn a_timeout_kills_the_whole_tree_double_forks_included() {
    if !python() {
        return;
    }
    let m = marker(1);
    // The survivor check sees a live `sleep` (so an empty list below means something).
    let mut probe = Command::new("sleep")
        .arg(format!("{m}9"))
        .spawn()
        .expect("sleep");
    assert_eq!(alive(&format!("sleep {m}9")), [probe.id()]);
    probe.kill().expect("kill probe");
    probe.wait().expect("reap probe");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = run(
        &format!("(sleep {m}1 &); setsid sleep {m}2 & echo started; sleep {m}3"),
        &["--timeout-ms", "1000", "--grace-ms", "300"],
        dir.path(),
        None,
    );
    let x = d.exit.expect("exit");
    assert!(x.timed_out && x.signal == Some(15), "{x:?}");
    assert_eq!(d.status, Some(124));
    assert_eq!(d.out, b"started\n");
    assert!(d.took < Duration::from_secs(10), "{:?}", d.took);
    assert!(
        alive(&format!("sleep {m}")).is_empty(),
        "survivors: {:?}",
        alive(&m)
    );
}

#[test]
fn a_stop_kills_the_tree_after_the_stop_grace_even_when_the_stage_ignores_term() {
    if !python() {
        return;
    }
    let m = marker(2);
    let dir = tempfile::tempdir().expect("tempdir");
    // Ray's stop: SIGTERM to the entrypoint, which leads its own group (the relay path).
    let d = run(
        &format!("(sleep {m}1 &); (setsid sleep {m}2 &); trap '' TERM; echo hi; sleep {m}3"),
        &["--grace-ms", "20000", "--stop-grace-ms", "400"],
        dir.path(),
        Some((Duration::from_millis(300), Signal::SIGTERM, false)),
    );
    let x = d.exit.expect("exit");
    assert!(
        x.stopped && x.stop_signal == Some(15) && !x.timed_out,
        "{x:?}"
    );
    assert_eq!(d.status, Some(143));
    assert!(
        d.took < Duration::from_secs(10),
        "the stop grace, not --grace-ms: {:?}",
        d.took
    );
    assert!(alive(&format!("sleep {m}")).is_empty());
}

#[test]
fn losing_rays_supervisor_still_cleans_up_and_says_so() {
    if !python() {
        return;
    }
    let m = marker(3);
    let dir = tempfile::tempdir().expect("tempdir");
    // Ray's fate sharing when its supervisor dies: SIGKILL to the entrypoint's whole group.
    let d = run(
        &format!("(sleep {m}1 &); trap '' TERM; echo hi; sleep {m}2"),
        &["--grace-ms", "300"],
        dir.path(),
        Some((Duration::from_millis(300), Signal::SIGKILL, true)),
    );
    let x = d
        .exit
        .expect("the worker writes its exit record after the relay died");
    assert!(x.parent_lost && x.stopped, "{x:?}");
    assert!(alive(&format!("sleep {m}")).is_empty());
}

#[test]
fn the_stage_runs_in_a_private_copy_of_its_working_dir() {
    if !python() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.txt"), "shipped").expect("in");
    std::fs::create_dir(dir.path().join("_codex_orchestrator")).expect("wrapper dir");
    let d = run(
        "cat in.txt; echo made > out.txt; ls -a; pwd",
        &["--private-copy"],
        dir.path(),
        None,
    );
    let out = String::from_utf8(d.out).expect("text");
    assert!(out.starts_with("shipped"), "{out}");
    assert!(
        !out.contains("_codex_orchestrator"),
        "the wrapper is not copied: {out}"
    );
    assert!(
        !dir.path().join("out.txt").exists(),
        "the shared directory is untouched"
    );
    let copy = out.lines().last().expect("pwd").to_owned();
    assert_ne!(Path::new(&copy), dir.path());
    assert!(!Path::new(&copy).exists(), "the copy is removed at the end");
    assert_eq!(d.begin.expect("begin").cwd.as_deref(), Some(copy.as_str()));
}
