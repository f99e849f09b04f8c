//! Test-only helper: a stage command with exactly the awkward behaviour the exec tests need
//! (binary output, split code points, floods, ignoring SIGTERM, children that outlive it).
//! Run by `exec/tests` through `CARGO_BIN_EXE_co-test-helper`; not part of the product.
//!
//! Output patterns are deterministic so tests can compute the expected bytes themselves.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// `bytes N` prints `PATTERN` repeated to N bytes.
const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn usage() -> ExitCode {
    eprintln!(
        "usage: co-test-helper <bytes N | lines N | invalid-utf8 | split-utf8 | flood N | \
         ignore-term SECS | slow-term SECS | grandchild SECS | daemon SECS | background SECS | sleep SECS | exit N>"
    );
    ExitCode::from(2)
}

/// The first `n` bytes of the repeating pattern, written in blocks.
fn write_pattern(w: &mut impl Write, n: usize) -> std::io::Result<()> {
    let block: Vec<u8> = PATTERN
        .iter()
        .copied()
        .cycle()
        .take(PATTERN.len() * 1024)
        .collect();
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        w.write_all(&block[..k])?;
        left -= k;
    }
    w.flush()
}

fn sleep_secs(secs: f64) {
    std::thread::sleep(Duration::from_secs_f64(secs));
}

/// Starts this helper again with `args`, stdout and stderr inherited unless `quiet`.
fn spawn_self(args: &[&str], quiet: bool) -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    if quiet {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    Ok(cmd.spawn()?.id())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let num = || arg(1).and_then(|s| s.parse::<f64>().ok());
    let result = match (arg(0), num()) {
        (Some("bytes"), Some(n)) => write_pattern(&mut std::io::stdout().lock(), n as usize),
        (Some("lines"), Some(n)) => {
            // Rust's stdout is line-buffered: one write per line, the worst case for a reader.
            let mut out = std::io::stdout().lock();
            (0..n as u64).try_for_each(|i| writeln!(out, "{i}"))
        }
        (Some("invalid-utf8"), _) => {
            let mut out = std::io::stdout().lock();
            out.write_all(
                b"valid start\n\xff\xfe latin-1: caf\xe9 \xc3\x28 mixed \xe2\x82\xac ok\n\xe2\x82",
            )
            .and_then(|()| out.flush())
        }
        (Some("split-utf8"), _) => {
            // Each multi-byte code point is cut between two writes, with a pause longer than the
            // runner's coalescing window so the halves arrive in different reads.
            let euro = "€".as_bytes();
            let crab = "🦀".as_bytes();
            let mut out = std::io::stdout().lock();
            let mut step = |bytes: &[u8]| -> std::io::Result<()> {
                out.write_all(bytes)?;
                out.flush()?;
                sleep_secs(0.15);
                Ok(())
            };
            step(&[b"a".as_slice(), &euro[..1]].concat())
                .and_then(|()| step(&[&euro[1..], b"b".as_slice(), &crab[..2]].concat()))
                .and_then(|()| step(&crab[2..3]))
                .and_then(|()| step(&[&crab[3..], b"z\n".as_slice()].concat()))
        }
        (Some("flood"), Some(n)) => {
            // Alternate blocks on both pipes with blocking writes: a reader that drains one
            // pipe at a time deadlocks as soon as the other pipe's buffer is full.
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let block: Vec<u8> = PATTERN
                .iter()
                .copied()
                .cycle()
                .take(PATTERN.len() * 1024)
                .collect();
            let mut left = n as usize;
            let mut res = Ok(());
            while left > 0 && res.is_ok() {
                let k = left.min(block.len());
                res = out
                    .write_all(&block[..k])
                    .and_then(|()| out.flush())
                    .and_then(|()| err.write_all(&block[..k]));
                left -= k;
            }
            res
        }
        (Some("slow-term"), Some(secs)) => {
            // Waits for SIGTERM, then takes SECS to "clean up" before exiting 0: a cooperative
            // process that needs the grace period. SIGTERM is blocked and taken with sigwait,
            // so no handler is needed.
            let mut term = nix::sys::signal::SigSet::empty();
            term.add(nix::sys::signal::Signal::SIGTERM);
            if let Err(e) = term.thread_block() {
                eprintln!("cannot block SIGTERM: {e}");
                return ExitCode::from(3);
            }
            println!("waiting for SIGTERM");
            let _ = std::io::stdout().flush();
            match term.wait() {
                Ok(_) => {
                    sleep_secs(secs);
                    println!("cleaned up");
                    Ok(())
                }
                Err(e) => Err(std::io::Error::other(e)),
            }
        }
        (Some("ignore-term"), Some(secs)) => {
            // SAFETY: installing SIG_IGN is async-signal-safe and no handler is replaced.
            let ignored = unsafe {
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGTERM,
                    nix::sys::signal::SigHandler::SigIgn,
                )
            };
            if let Err(e) = ignored {
                eprintln!("cannot ignore SIGTERM: {e}");
                return ExitCode::from(3);
            }
            println!("ignoring SIGTERM");
            sleep_secs(secs);
            Ok(())
        }
        (Some("grandchild"), Some(_)) => spawn_self(&["sleep", arg(1).unwrap_or("1")], false)
            .map(|pid| println!("grandchild {pid}")),
        (Some("daemon"), Some(_)) => spawn_self(&["setsid-sleep", arg(1).unwrap_or("1")], false)
            .map(|pid| println!("daemon {pid}")),
        (Some("background"), Some(_)) => spawn_self(&["sleep", arg(1).unwrap_or("1")], true)
            .map(|pid| println!("background {pid}")),
        (Some("setsid-sleep"), Some(secs)) => {
            if let Err(e) = nix::unistd::setsid() {
                eprintln!("setsid failed: {e}");
            }
            sleep_secs(secs);
            Ok(())
        }
        (Some("sleep"), Some(secs)) => {
            sleep_secs(secs);
            Ok(())
        }
        (Some("exit"), Some(n)) => return ExitCode::from(n as u8),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("co-test-helper: {e}");
            ExitCode::from(1)
        }
    }
}
