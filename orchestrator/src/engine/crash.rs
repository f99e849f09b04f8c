//! What a panic does: end the process promptly, with every run it was working on recorded as
//! well as can be, its stages stopped, and its lock free.
//!
//! Without this, a panic inside the async runtime could leave the process alive and wedged
//! (a task waiting forever on the one that panicked), still holding the run lock, so `resume`
//! refused the run forever. The hook (installed by `main_impl`, before the runtime starts):
//!
//! 1. prints the panic message (the default hook; it ignores a failed write);
//! 2. on a separate thread, for every run registered here (a run registers when its persister
//!    starts, see [`register`]): asks its persister for the manifest (or reads it from disk if
//!    the persister does not answer), kills its stages' process groups (the same identity-checked
//!    kill `resume` uses on a crashed runner's survivors), records each running stage `failed`
//!    (`outcome: cancelled`) and the run `failed` / `internal-error`, and flushes;
//! 3. waits for that at most [`RECORD_BUDGET`], whatever happens to the runtime (a wedged or
//!    panicked persister just runs the clock out), then exits 101. The run lock is a `flock`,
//!    which the kernel drops with the process.
//!
//! A run recorded this way is `failed`, so `resume` continues it (and first completes its
//! bookkeeping: summary and metrics). A run the hook could not record stays `in_progress`
//! with no runner holding its lock: `status` says `abandoned`, `resume` continues it.
//!
//! Tests reach the hook through `CODEX_ORCHESTRATOR_TEST_PANIC=<stage id>`, honoured only in
//! builds with debug assertions (see [`test_panic_point`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use shared_manifest::schema::Manifest;
use shared_manifest::{
    CommandEvent, CommandStatus, ManifestUpdate, Persister, RunEvent, StageFinish,
};

use crate::record::layout::RunDir;

/// Longest the hook waits for the runs to be recorded before it exits anyway.
const RECORD_BUDGET: Duration = Duration::from_secs(2);

/// The runs being worked on, by registration number.
static ACTIVE: Mutex<Vec<(u64, Persister<Manifest>, RunDir)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

fn active() -> MutexGuard<'static, Vec<(u64, Persister<Manifest>, RunDir)>> {
    // Plain data, never left half-updated: a poisoned lock is still consistent.
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A run known to the panic hook; dropping it forgets the run.
#[derive(Debug)]
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        active().retain(|(id, _, _)| *id != self.0);
    }
}

/// Makes the run whose manifest `persister` owns known to the panic hook.
pub fn register(persister: &Persister<Manifest>, dir: &RunDir) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    active().push((id, persister.clone(), dir.clone()));
    Registration(id)
}

/// Installs the hook. Only `main_impl` calls this: library users and unit tests keep Rust's
/// default panic behaviour.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        end_process(&message);
    }));
}

/// Records what it can within the budget, then exits 101. A second panic (on another thread,
/// or in the recording itself) waits for the first to end the process.
fn end_process(message: &str) -> ! {
    static ENDING: AtomicBool = AtomicBool::new(false);
    if ENDING.swap(true, Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
    let runs: Vec<(Persister<Manifest>, RunDir)> = active()
        .iter()
        .map(|(_, p, d)| (p.clone(), d.clone()))
        .collect();
    if !runs.is_empty() {
        let (done, wait) = std::sync::mpsc::channel();
        let message = message.to_owned();
        let recorder = std::thread::Builder::new()
            .name("panic-recorder".into())
            .spawn(move || {
                record_all(runs, &message);
                let _ = done.send(());
            });
        if recorder.is_ok() {
            let _ = wait.recv_timeout(RECORD_BUDGET);
        }
    }
    crate::console::err_line(
        "error: internal error: the runner panicked (a bug); the run is recorded `failed` / `internal-error` and `resume --run` continues it",
    );
    std::process::exit(crate::exit::PANIC)
}

/// Records every run on a runtime of its own: the main one may be what panicked.
fn record_all(runs: Vec<(Persister<Manifest>, RunDir)>, message: &str) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        // Side by side: one run whose persister does not answer must not hold up the others.
        let mut set = tokio::task::JoinSet::new();
        for (persister, dir) in runs {
            set.spawn(record_one(persister, dir, message.to_owned()));
        }
        let _ = tokio::time::timeout(RECORD_BUDGET, async {
            while set.join_next().await.is_some() {}
        })
        .await;
    });
}

/// Stops one run's stages and records it failed.
async fn record_one(persister: Persister<Manifest>, dir: RunDir, message: String) {
    // Half the budget for the persister to answer; the manifest on disk otherwise (it may lack
    // the latest stage start, whose group the runner log's `exec:process` line still names).
    let answered = tokio::time::timeout(RECORD_BUDGET / 2, persister.inspect(Manifest::clone))
        .await
        .ok()
        .and_then(Result::ok);
    let manifest = answered
        .clone()
        .or_else(|| crate::history::read_manifest(&dir.manifest()).ok());
    if let Some(m) = &manifest {
        crate::engine::resume::kill_survivors(m, dir.roots());
    }
    let Some(m) = answered else {
        return;
    };
    if m.status.is_terminal() {
        return;
    }
    let at = crate::time::now();
    for c in m
        .commands
        .iter()
        .filter(|c| c.status == CommandStatus::Running)
    {
        let finish = StageFinish {
            index: c.index,
            at: at.clone(),
            event: CommandEvent::Fail,
            exit_code: None,
            summary: Some("Interrupted: the runner stopped on an internal error.".to_owned()),
            error_file: None,
            outcome: Some("cancelled".to_owned()),
            signal: None,
            duration_ms: None,
            stdout_bytes: None,
            stderr_bytes: None,
            leaked_processes: false,
            dropped_chunk_events: None,
            redactions: None,
        };
        if persister
            .send(ManifestUpdate::StageFinished(Box::new(finish)))
            .await
            .is_err()
        {
            return;
        }
    }
    let update = ManifestUpdate::RunFinished {
        at,
        event: RunEvent::Fail,
        status_detail: Some("internal-error".to_owned()),
        summary: Some(format!(
            "The runner stopped on an internal error (a panic: {message})."
        )),
    };
    if persister.send(update).await.is_ok() {
        let _ = persister.flush().await;
    }
}

/// Panics when `CODEX_ORCHESTRATOR_TEST_PANIC` names `point` (a stage id, checked when the
/// stage starts), in builds with debug assertions only. A test-only hook: the end-to-end tests
/// run a debug build; a release build never reads the variable, so no environment can make a
/// production runner panic. A cargo feature would not do: features unify across the
/// workspace, so `cargo build --release` of the workspace would compile it in.
pub fn test_panic_point(point: &str) {
    if cfg!(debug_assertions)
        && std::env::var_os(crate::env_vars::TEST_PANIC).is_some_and(|v| v == point)
    {
        panic!(
            "injected panic at `{point}` ({})",
            crate::env_vars::TEST_PANIC
        );
    }
}

/// Holds the runner at `point` while the file named by `CODEX_ORCHESTRATOR_TEST_HOLD`
/// (`<point>:<file>`) exists, after creating `<file>.reached`; in builds with debug assertions
/// only, like [`test_panic_point`]. It lets a test kill the runner in a step that starts no
/// process a test script could hold (a loop's feedback step).
pub async fn test_hold_point(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(value) = std::env::var_os(crate::env_vars::TEST_HOLD) else {
        return;
    };
    let value = value.to_string_lossy();
    let Some((at, file)) = value.split_once(':') else {
        return;
    };
    let file = std::path::PathBuf::from(file);
    if at != point || !file.exists() {
        return;
    }
    let mut reached = file.clone().into_os_string();
    reached.push(".reached");
    let _ = std::fs::write(&reached, b"");
    while file.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
