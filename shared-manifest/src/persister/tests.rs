//! Tests of the persister: coalescing, the flush barrier, one write in flight, errors reaching
//! every handle, the pace, deadlines, group commit.

use super::*;
use crate::atomic::write_atomic;
use crate::document::ApplyError;
use crate::errors::{AtomicWriteError, WriteStep};
use serde::Serialize;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

#[derive(Debug, Serialize, Default)]
struct Toy {
    items: Vec<u32>,
    beat: Option<String>,
}

enum ToyUpdate {
    Push(u32),
    Beat(String),
    Reject,
}

impl Document for Toy {
    type Update = ToyUpdate;
    fn apply(&mut self, u: ToyUpdate) -> Result<(), ApplyError> {
        match u {
            ToyUpdate::Push(n) => self.items.push(n),
            ToyUpdate::Beat(b) => self.beat = Some(b),
            ToyUpdate::Reject => return Err(ApplyError("illegal".into())),
        }
        Ok(())
    }
    fn heartbeat(&self) -> Option<String> {
        self.beat.clone()
    }
}

/// Wraps the real sink: can hold the first write until released, can fail every write, and
/// records the most writes ever in flight at once.
#[derive(Default)]
struct Probe {
    gate: Option<std::sync::mpsc::Receiver<()>>,
    entered: Option<std::sync::mpsc::Sender<()>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    delay_ms: u64,
    fail: bool,
}

impl Sink for Probe {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(entered) = self.entered.take() {
            let _ = entered.send(());
        }
        if let Some(gate) = self.gate.take() {
            let _ = gate.recv();
        }
        std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
        let r = if self.fail {
            Err(AtomicWriteError {
                path: path.to_owned(),
                step: WriteStep::Fsync,
                source: std::io::Error::from_raw_os_error(5),
            })
        } else {
            write_atomic(path, bytes)
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// A probe whose first write blocks until the returned sender sends; `entered` reports that
/// the write has started.
fn gated() -> (
    Box<Probe>,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<()>,
) {
    let (gate_tx, gate_rx) = std::sync::mpsc::channel();
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let probe = Probe {
        gate: Some(gate_rx),
        entered: Some(entered_tx),
        ..Probe::default()
    };
    (Box::new(probe), gate_tx, entered_rx)
}

async fn wait_entered(entered: std::sync::mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || entered.recv())
        .await
        .expect("join")
        .expect("the write started");
}

/// The toy's file and heartbeat, no sidecar.
fn targets(main: PathBuf, heartbeat: Option<PathBuf>) -> Targets {
    Targets {
        main,
        sidecar: None,
        heartbeat,
    }
}

fn items(p: &Path) -> Vec<u32> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
    serde_json::from_value(v["items"].clone()).expect("items")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_updates_coalesce_into_one_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let (sink, release, entered) = gated();
    let p = Persister::spawn_with_sink(Toy::default(), targets(path.clone(), None), sink);
    // The first update's write (asked for by a flush) blocks on the gate; the next 99 queue
    // up behind it, and the sends return at once: nobody waits for a write to send.
    p.send(ToyUpdate::Push(0)).await.expect("send");
    let first = tokio::spawn({
        let p = p.clone();
        async move { p.flush().await }
    });
    wait_entered(entered).await;
    for i in 1..100 {
        p.send(ToyUpdate::Push(i)).await.expect("send");
    }
    release.send(()).expect("release");
    first.await.expect("join").expect("first flush");
    p.flush().await.expect("flush");
    assert_eq!(items(&path), (0..100).collect::<Vec<_>>());
    assert_eq!(
        p.stats().writes,
        2,
        "the held write, then one for the 99 queued"
    );
    let doc = p.close().await.expect("close");
    assert_eq!(doc.items.len(), 100);
}

#[tokio::test(start_paused = true)]
async fn a_deferred_update_shares_the_next_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    let long = std::time::Duration::from_secs(60);
    p.send_deferred(ToyUpdate::Push(1), long)
        .await
        .expect("send");
    p.send(ToyUpdate::Push(2)).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(p.stats().writes, 1, "one write for both");
    assert_eq!(items(&path), [1, 2]);
    // A flush alone covers a deferred update too.
    p.send_deferred(ToyUpdate::Push(3), long)
        .await
        .expect("send");
    p.flush().await.expect("flush");
    assert_eq!(p.stats().writes, 2);
    assert_eq!(items(&path), [1, 2, 3]);
    // And so does close.
    p.send_deferred(ToyUpdate::Push(4), long)
        .await
        .expect("send");
    let doc = p.close().await.expect("close");
    assert_eq!(doc.items, [1, 2, 3, 4]);
    assert_eq!(items(&path), [1, 2, 3, 4]);
}

/// Waits (real time) until `p` has made `n` writes; the write itself runs on the blocking
/// pool, outside the paused clock.
async fn writes_reach(p: &Persister<Toy>, n: u64) -> u64 {
    // Generous: a busy machine may be slow to run the blocking pool.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if p.stats().writes >= n {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    p.stats().writes
}

#[tokio::test(start_paused = true)]
async fn an_update_nobody_waits_for_is_written_within_the_minimum_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn_on_pool(Toy::default(), targets(path.clone(), None));
    for i in 0..50 {
        p.send(ToyUpdate::Push(i)).await.expect("send");
    }
    tokio::time::sleep(pacing::MIN_GAP / 2).await;
    assert_eq!(p.stats().writes, 0, "a burst gathers first");
    tokio::time::sleep(pacing::MIN_GAP).await;
    assert_eq!(writes_reach(&p, 1).await, 1, "one write for the burst");
    assert_eq!(items(&path), (0..50).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_deferred_update_is_written_by_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn_on_pool(Toy::default(), targets(path.clone(), None));
    // Well inside the pace's own minimum gap: the deadline decides.
    let within = pacing::MIN_GAP / 5;
    p.send_deferred(ToyUpdate::Push(7), within)
        .await
        .expect("send");
    tokio::time::sleep(within / 2).await;
    assert_eq!(p.stats().writes, 0, "not before the deadline");
    tokio::time::sleep(within).await;
    assert_eq!(
        writes_reach(&p, 1).await,
        1,
        "written once the deadline passed"
    );
    assert_eq!(items(&path), [7]);
}

/// Sleeps (real time) in every write, so that writes cost what the pace reacts to.
struct Slow(Duration);

impl Sink for Slow {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        std::thread::sleep(self.0);
        write_atomic(path, bytes)
    }
}

/// The owner paces by what its writes cost. The cost is measured in real time (the sink
/// sleeps 20 ms in each write), so it is read back from the stats rather than assumed: on a
/// busy machine a write costs more, and the pace must follow what it really cost. The wait
/// itself runs on the paused clock, which moves only when this test sleeps, so the schedule
/// is checked to the millisecond whatever the load. (The pacing rule's arithmetic is tested
/// in `pacing`; the figures of what it saves are in bench/.)
#[tokio::test(start_paused = true)]
async fn the_pace_follows_what_writes_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let sleep = Duration::from_millis(20);
    let p = Persister::spawn_on(
        Toy::default(),
        targets(path.clone(), None),
        Box::new(Slow(sleep)),
        writer::Writer::Pool,
    );
    p.send(ToyUpdate::Push(1)).await.expect("send");
    p.flush().await.expect("a first write");
    let cost = p.stats().last_cost;
    assert!(
        cost >= sleep,
        "the cost measured is what the write took: {cost:?}"
    );
    // The next write waits 9 times what the last one cost (a tenth of the time goes to
    // writing), within the bounds of the gap; the record is tiny, so its size plays no part.
    let gap = (cost * pacing::PACE).clamp(pacing::MIN_GAP, pacing::MAX_GAP);
    assert!(
        gap > pacing::MIN_GAP,
        "a 20 ms write is paced beyond the minimum gap"
    );
    p.send(ToyUpdate::Push(2)).await.expect("send");
    let margin = Duration::from_millis(5);
    tokio::time::sleep(gap - margin).await;
    assert_eq!(
        p.stats().writes,
        1,
        "paced: no write within {gap:?} of one that cost {cost:?}"
    );
    tokio::time::sleep(2 * margin).await;
    assert_eq!(writes_reach(&p, 2).await, 2, "written once the gap passed");
    assert_eq!(items(&path), [1, 2]);
    // A barrier does not wait for the pace.
    p.send(ToyUpdate::Push(3)).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(p.stats().writes, 3);
}

#[tokio::test]
async fn peek_sees_every_earlier_update_without_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    for i in 0..5 {
        p.send(ToyUpdate::Push(i)).await.expect("send");
    }
    let seen = p.peek(|d: &Toy| d.items.clone()).await.expect("peek");
    assert_eq!(seen, (0..5).collect::<Vec<_>>());
    assert_eq!(p.stats().writes, 0);
    assert!(!path.exists());
    p.close().await.expect("close");
    assert_eq!(items(&path), (0..5).collect::<Vec<_>>());
}

#[tokio::test]
async fn spawn_writes_nothing_until_the_first_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(
        Toy::default(),
        targets(path.clone(), Some(dir.path().join(".hb"))),
    );
    p.flush().await.expect("an empty flush");
    assert_eq!(p.stats(), PersisterStats::default());
    p.close().await.expect("close");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_is_a_barrier_for_every_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    let mut tasks = Vec::new();
    for t in 0..4u32 {
        let (p, path) = (p.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                p.send(ToyUpdate::Push(t * 100 + i)).await.expect("send");
                p.flush().await.expect("flush");
                // Everything this handle sent is on disk now, whatever the others do.
                let on_disk = items(&path);
                for j in 0..=i {
                    assert!(
                        on_disk.contains(&(t * 100 + j)),
                        "{} missing after flush",
                        t * 100 + j
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(p.close().await.expect("close").items.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_two_writes_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max = Arc::new(AtomicUsize::new(0));
    let sink = Probe {
        max_in_flight: Arc::clone(&max),
        delay_ms: 2,
        ..Probe::default()
    };
    let hb = Some(dir.path().join(".hb"));
    let p = Persister::spawn_with_sink(
        Toy::default(),
        targets(dir.path().join("m.json"), hb),
        Box::new(sink),
    );
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                p.send(ToyUpdate::Push(t * 100 + i)).await.expect("send");
                p.send(ToyUpdate::Beat(format!("{t}-{i}")))
                    .await
                    .expect("send");
                if i % 7 == 0 {
                    p.flush().await.expect("flush");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = p.stats();
    let doc = p.close().await.expect("close");
    assert_eq!(doc.items.len(), 400);
    assert!(
        stats.writes > 1 && stats.heartbeat_writes > 1,
        "{stats:?}: the test must overlap writes"
    );
    assert_eq!(max.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn write_error_reaches_every_handle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let sink = Probe {
        fail: true,
        ..Probe::default()
    };
    let p = Persister::spawn_with_sink(Toy::default(), targets(path.clone(), None), Box::new(sink));
    let other = p.clone();
    p.send(ToyUpdate::Push(1))
        .await
        .expect("queued before the failure");
    let e = p.flush().await.expect_err("the write failed");
    assert!(matches!(e, PersistError::Write(_)), "{e:?}");
    let text = format!(
        "{e}: {}",
        e.source().map(ToString::to_string).unwrap_or_default()
    );
    assert!(
        text.contains("m.json` (fsync)") && text.contains("os error 5"),
        "{text}"
    );
    let again = other
        .send(ToyUpdate::Push(2))
        .await
        .expect_err("the writer stopped");
    assert!(again.to_string().contains("m.json"), "{again}");
    assert!(matches!(other.flush().await, Err(PersistError::Write(_))));
    assert!(matches!(p.close().await, Err(PersistError::Write(_))));
    assert!(!path.exists(), "nothing was written");
}

#[tokio::test]
async fn failed_resolves_on_a_failed_write_without_a_send() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Probe {
        fail: true,
        ..Probe::default()
    };
    let p = Persister::spawn_with_sink(
        Toy::default(),
        targets(dir.path().join("m.json"), None),
        Box::new(sink),
    );
    let watcher = tokio::spawn({
        let p = p.clone();
        async move { p.failed().await }
    });
    p.send(ToyUpdate::Push(1)).await.expect("queued");
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
        .await
        .expect("failed() resolves without another send or flush")
        .expect("join");
    assert!(e.to_string().contains("m.json"), "{e}");
    // A late subscriber sees the failure too.
    assert!(matches!(p.failed().await, PersistError::Write(_)));
}

#[tokio::test(start_paused = true)]
async fn failed_stays_pending_after_a_clean_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Persister::spawn_on_pool(Toy::default(), targets(dir.path().join("m.json"), None));
    let other = p.clone();
    p.send(ToyUpdate::Push(1)).await.expect("send");
    p.close().await.expect("close");
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), other.failed()).await;
    assert!(waited.is_err(), "no write failed: {waited:?}");
}

#[tokio::test]
async fn write_to_a_missing_directory_fails_with_the_path_and_the_os_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gone/m.json");
    let p = Persister::spawn(Toy::default(), targets(path, None));
    p.send(ToyUpdate::Push(1)).await.expect("send");
    let e = p.flush().await.expect_err("no directory");
    assert!(e.to_string().contains("gone/m.json"), "{e}");
    let source = e.source().map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("os error 2"), "{source}");
    let e = p.close().await.expect_err("close reports it too");
    assert!(e.to_string().contains("gone/m.json"), "{e}");
}

#[tokio::test]
async fn rejected_update_is_reported_and_the_rest_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    p.send(ToyUpdate::Push(1)).await.expect("send");
    p.send(ToyUpdate::Reject).await.expect("send");
    p.send(ToyUpdate::Push(2)).await.expect("send");
    let e = p.flush().await.expect_err("rejected");
    assert!(
        matches!(&e, PersistError::Apply(ApplyError(m)) if m == "illegal"),
        "{e:?}"
    );
    assert_eq!(items(&path), [1, 2]);
    p.send(ToyUpdate::Push(3))
        .await
        .expect("the writer goes on");
    assert!(matches!(p.close().await, Err(PersistError::Apply(_))));
    assert_eq!(items(&path), [1, 2, 3]);
}

#[tokio::test]
async fn heartbeat_written_only_when_it_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hb = dir.path().join(".heartbeat");
    let p = Persister::spawn(
        Toy::default(),
        targets(dir.path().join("m.json"), Some(hb.clone())),
    );
    p.send(ToyUpdate::Push(0)).await.expect("send");
    p.flush().await.expect("flush");
    assert!(!hb.exists(), "no heartbeat yet");
    p.send(ToyUpdate::Beat("t1".into())).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(std::fs::read_to_string(&hb).expect("hb"), "t1");
    p.send(ToyUpdate::Push(1)).await.expect("send");
    p.flush().await.expect("flush");
    p.send(ToyUpdate::Beat("t2".into())).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(
        std::fs::read_to_string(&hb).expect("hb"),
        "t2",
        "no trailing newline"
    );
    assert_eq!(
        p.stats(),
        PersisterStats {
            writes: 4,
            sidecar_writes: 0,
            heartbeat_writes: 2,
            bytes: p.stats().bytes,
            synced: 0,
            last_cost: p.stats().last_cost,
        }
    );
}

#[tokio::test]
async fn inspect_sees_exactly_what_is_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    for i in 0..10 {
        p.send(ToyUpdate::Push(i)).await.expect("send");
    }
    let seen = p.inspect(|d: &Toy| d.items.clone()).await.expect("inspect");
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert_eq!(
        items(&path),
        seen,
        "inspect runs after the write that covers earlier sends"
    );
    p.send(ToyUpdate::Reject).await.expect("send");
    assert!(matches!(
        p.inspect(|d: &Toy| d.items.len()).await,
        Err(PersistError::Apply(_))
    ));
}

#[tokio::test]
async fn heartbeat_sidecar_is_written_relaxed() {
    struct Probe(std::sync::Arc<std::sync::Mutex<Vec<(String, bool)>>>);
    impl Sink for Probe {
        fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
            self.0
                .lock()
                .expect("lock")
                .push((path.display().to_string(), true));
            write_atomic(path, bytes)
        }
        fn write_relaxed(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
            self.0
                .lock()
                .expect("lock")
                .push((path.display().to_string(), false));
            crate::atomic::write_atomic_relaxed(path, bytes)
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p = Persister::spawn_with_sink(
        Toy::default(),
        targets(
            dir.path().join("m.json"),
            Some(dir.path().join(".heartbeat")),
        ),
        Box::new(Probe(log.clone())),
    );
    p.send(ToyUpdate::Beat("t1".into())).await.expect("send");
    p.close().await.expect("close");
    let log = log.lock().expect("lock").clone();
    let durable: Vec<bool> = log.iter().map(|(_, d)| *d).collect();
    assert_eq!(
        durable,
        [true, false],
        "manifest durable, heartbeat relaxed: {log:?}"
    );
    assert!(log[1].0.ends_with(".heartbeat"));
}

#[tokio::test]
async fn close_works_while_other_handles_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Persister::spawn(Toy::default(), targets(dir.path().join("m.json"), None));
    let other = p.clone();
    other.send(ToyUpdate::Push(7)).await.expect("send");
    let doc = p.close().await.expect("close");
    assert_eq!(doc.items, vec![7]);
    assert!(matches!(
        other.send(ToyUpdate::Push(8)).await,
        Err(PersistError::Closed)
    ));
    assert!(matches!(other.flush().await, Err(PersistError::Closed)));
    assert!(matches!(other.close().await, Err(PersistError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_writes_updates_queued_behind_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let (sink, release, entered) = gated();
    let p = Persister::spawn_with_sink(Toy::default(), targets(path.clone(), None), sink);
    let other = p.clone();
    p.send(ToyUpdate::Push(0)).await.expect("send");
    let first = tokio::spawn({
        let p = p.clone();
        async move { p.flush().await }
    });
    wait_entered(entered).await;
    // Queue `Close` while the writer is held, then more updates than one batch holds from
    // another handle behind it: those sends succeeded, so all of them must reach the disk
    // before close returns.
    let mut closing = Box::pin(p.close());
    tokio::select! {
        biased;
        _ = &mut closing => panic!("close cannot finish while the write is held"),
        () = std::future::ready(()) => {}
    }
    for i in 1..=2 * BATCH as u32 {
        other
            .send(ToyUpdate::Push(i))
            .await
            .expect("queued behind close");
    }
    release.send(()).expect("release");
    let doc = closing.await.expect("close");
    first.await.expect("join").expect("the first write");
    let all: Vec<u32> = (0..=2 * BATCH as u32).collect();
    assert_eq!(doc.items, all);
    assert_eq!(items(&path), all);
    assert!(matches!(
        other.send(ToyUpdate::Push(2)).await,
        Err(PersistError::Closed)
    ));
}

/// A document with a sidecar: `items` in the main file, `extra` in the sidecar (or inline).
#[derive(Debug, Serialize, Default)]
struct Split {
    items: Vec<u32>,
    extra: u32,
    inline: bool,
}

enum SplitUpdate {
    Push(u32),
    Extra(u32),
    Inline,
}

impl Document for Split {
    type Update = SplitUpdate;
    fn apply(&mut self, u: SplitUpdate) -> Result<(), ApplyError> {
        match u {
            SplitUpdate::Push(n) => self.items.push(n),
            SplitUpdate::Extra(n) => self.extra = n,
            SplitUpdate::Inline => self.inline = true,
        }
        Ok(())
    }
    fn sidecar(&self) -> crate::document::SidecarMode {
        if self.inline {
            crate::document::SidecarMode::Remove
        } else {
            crate::document::SidecarMode::Write
        }
    }
    fn render_main(&mut self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        if self.inline {
            return crate::document::pretty_to(out, &*self);
        }
        crate::document::pretty_to(out, &self.items)
    }
    fn render_sidecar(&mut self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        crate::document::pretty_to(out, &self.extra)
    }
}

/// Records every write and removal, in order, and does them.
struct Journal(Arc<std::sync::Mutex<Vec<String>>>);

impl Sink for Journal {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        let name = path.file_name().expect("name").to_string_lossy();
        self.0.lock().expect("lock").push(format!("write {name}"));
        write_atomic(path, bytes)
    }
    fn remove(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        let name = path.file_name().expect("name").to_string_lossy();
        self.0.lock().expect("lock").push(format!("remove {name}"));
        crate::atomic::remove_durable(path)
    }
}

#[tokio::test]
async fn the_sidecar_is_written_first_only_when_it_changed_and_removed_when_inline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let main = dir.path().join("m.json");
    let side = dir.path().join("m.ext.json");
    let p = Persister::spawn_with_sink(
        Split::default(),
        Targets {
            main: main.clone(),
            sidecar: Some(side.clone()),
            heartbeat: None,
        },
        Box::new(Journal(log.clone())),
    );
    p.send(SplitUpdate::Extra(1)).await.expect("send");
    p.flush().await.expect("flush");
    // Only the main file changes: the sidecar is not written again.
    p.send(SplitUpdate::Push(5)).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(std::fs::read_to_string(&side).expect("side"), "1\n");
    p.send(SplitUpdate::Inline).await.expect("send");
    p.flush().await.expect("flush");
    // Already gone: no second removal.
    p.send(SplitUpdate::Push(6)).await.expect("send");
    let stats = p.stats();
    p.close().await.expect("close");
    assert_eq!(
        *log.lock().expect("lock"),
        [
            "write m.ext.json",
            "write m.json",
            "write m.json",
            "write m.json",
            "remove m.ext.json",
            "write m.json"
        ]
    );
    assert!(!side.exists());
    assert_eq!((stats.writes, stats.sidecar_writes), (3, 1));
}

/// The real sink streams each file into its temp file: an unchanged sidecar (known by the
/// hash of its stream) keeps its file, inode and all, and leaves no temp file behind.
#[tokio::test]
async fn the_real_sink_keeps_an_unchanged_sidecar_in_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("m.json");
    let side = dir.path().join("m.ext.json");
    let p = Persister::spawn(
        Split::default(),
        Targets {
            main: main.clone(),
            sidecar: Some(side.clone()),
            heartbeat: None,
        },
    );
    p.send(SplitUpdate::Extra(1)).await.expect("send");
    p.flush().await.expect("flush");
    let inode = std::fs::metadata(&side).expect("side").ino();
    p.send(SplitUpdate::Push(5)).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(std::fs::metadata(&side).expect("side").ino(), inode);
    assert_eq!(std::fs::read_to_string(&main).expect("main"), "[\n  5\n]\n");
    p.send(SplitUpdate::Extra(2)).await.expect("send");
    let stats = p.stats();
    p.close().await.expect("close");
    assert_ne!(std::fs::metadata(&side).expect("side").ino(), inode);
    assert_eq!(std::fs::read_to_string(&side).expect("side"), "2\n");
    assert_eq!((stats.writes, stats.sidecar_writes), (2, 1));
    assert_eq!(
        crate::atomic::remove_stale_temps(dir.path()).expect("ls"),
        0
    );
}

#[tokio::test]
async fn a_sidecar_without_a_path_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = Persister::spawn(Split::default(), targets(dir.path().join("m.json"), None));
    p.send(SplitUpdate::Extra(1)).await.expect("send");
    let e = p.flush().await.expect_err("no sidecar path");
    assert!(matches!(e, PersistError::NoSidecarPath), "{e}");
}

/// Records syncs and writes in order, and does them.
struct Order(Arc<std::sync::Mutex<Vec<String>>>);

impl Order {
    fn note(&self, what: &str, path: &Path) {
        let name = path.file_name().expect("name").to_string_lossy();
        self.0.lock().expect("lock").push(format!("{what} {name}"));
    }
}

impl Sink for Order {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        self.note("write", path);
        write_atomic(path, bytes)
    }
    fn sync_file(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        self.note("sync", path);
        AtomicSink.sync_file(path)
    }
    fn sync_dir(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        self.note("syncdir", path);
        AtomicSink.sync_dir(path)
    }
}

#[tokio::test]
async fn group_commit_syncs_what_an_update_names_before_the_write_that_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));
    std::fs::write(&a, "a").expect("w");
    std::fs::write(&b, "b").expect("w");
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let p = Persister::spawn_with_sink(
        Toy::default(),
        targets(dir.path().join("m.json"), None),
        Box::new(Order(order.clone())),
    );
    for (i, log) in [&a, &b].into_iter().enumerate() {
        let mut sync = Synced::default();
        sync.file_in_dir(log.clone());
        p.send_synced(ToyUpdate::Push(i as u32), sync)
            .await
            .expect("send");
    }
    p.flush().await.expect("flush");
    // Nothing more to sync: the next write is the document alone.
    p.send(ToyUpdate::Push(9)).await.expect("send");
    p.flush().await.expect("flush");
    assert_eq!(
        *order.lock().expect("lock"),
        [
            "sync a.log",
            "sync b.log",
            "syncdir logs",
            "write m.json",
            "write m.json"
        ],
        "both logs and their directory (once) before the one write that records them"
    );
    assert_eq!(p.stats().synced, 3);
}

#[tokio::test]
async fn a_failed_sync_fails_the_write_and_keeps_the_last_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.json");
    let p = Persister::spawn(Toy::default(), targets(path.clone(), None));
    p.send(ToyUpdate::Push(1)).await.expect("send");
    p.flush().await.expect("flush");
    let mut sync = Synced::default();
    sync.file_in_dir(dir.path().join("vanished.log"));
    p.send_synced(ToyUpdate::Push(2), sync).await.expect("send");
    let e = p.flush().await.expect_err("the log cannot be synced");
    assert!(e.to_string().contains("vanished.log"), "{e}");
    assert_eq!(items(&path), [1], "never a record of what is not durable");
}
