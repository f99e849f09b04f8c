//! What the history index does not know (yet): runs in progress, runs it has not recorded,
//! manifests that cannot be read, and indexed runs whose directory is gone. The runs list is
//! the index corrected by this; `GET /api/events` streams its changes.
//!
//! One task owns the picture (the [`Tracker`]); handlers read the snapshot it publishes and
//! subscribe to its changes. It follows `.runs`, each task's `cli/` directory and the
//! directory of every unfinished run through inotify ([`DirWatch`]), and every
//! [`SLOW_SCAN`] stats every run's manifest, which catches what inotify did not watch (a
//! finished run resumed, a manifest rewritten in place, a missed event). Finished runs are not
//! watched: there may be ten thousand of them.
//!
//! The server never writes a manifest; this only reads them, whole (they are replaced
//! atomically), and a manifest that does not parse is shown as unreadable until it does.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::history::{Index, RunRow};
use crate::record::layout::Roots;
use crate::serve::shutdown::Shutdown;
use crate::serve::watch::{DirWatch, Subscription};

/// How often every run directory is looked at, whatever inotify says.
const SLOW_SCAN: Duration = Duration::from_secs(10);
/// How often everything is looked at when inotify cannot watch `.runs` (no inotify instance,
/// watch limit reached).
const FALLBACK_SCAN: Duration = Duration::from_secs(2);
/// Events arriving together are handled together: the tracker waits this long after a wake.
const COALESCE: Duration = Duration::from_millis(50);
/// Changes kept for a slow `/api/events` client before it is told to reload.
const CHANGES: usize = 1024;

/// A run as the runs list shows it when the index's row is missing or out of date.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LiveRow {
    /// Read from its manifest.
    Run(Box<RunRow>),
    /// Its manifest exists but cannot be read or parsed.
    Unreadable {
        /// The run id (its directory name).
        run_id: String,
        /// The task (its task directory name).
        task_id: String,
        /// The manifest, repo-relative.
        manifest: String,
        /// Why it cannot be read.
        error: String,
    },
}

impl LiveRow {
    /// The run id.
    pub(crate) fn run_id(&self) -> &str {
        match self {
            LiveRow::Run(r) => &r.run_id,
            LiveRow::Unreadable { run_id, .. } => run_id,
        }
    }

    /// Start time in ms since the epoch, as the index sorts by it (`started_ms`); for an
    /// unreadable run, the time its id was made from.
    pub(crate) fn started_ms(&self) -> i64 {
        match self {
            LiveRow::Run(r) => epoch_ms(&r.started_at),
            LiveRow::Unreadable { run_id, .. } => {
                // `2026-12-01T19-53-09-545Z-…` -> `2026-12-01T19:53:09.545Z`
                let t: String = run_id
                    .chars()
                    .take(24)
                    .enumerate()
                    .map(|(i, c)| match (i, c) {
                        (13 | 16, '-') => ':',
                        (19, '-') => '.',
                        _ => c,
                    })
                    .collect();
                epoch_ms(&t)
            }
        }
    }

    /// The row as the API sends it.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            LiveRow::Run(r) => row_json(r),
            LiveRow::Unreadable {
                run_id,
                task_id,
                manifest,
                error,
            } => json!({
                "run_id": run_id, "task_id": task_id, "manifest": manifest,
                "status": "unreadable", "error": error, "pipeline_id": null,
                "started_at": null,
            }),
        }
    }
}

fn epoch_ms(ts: &str) -> i64 {
    crate::time::parse(ts)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A runs-list row as the API sends it: the index's row plus the stage that failed the run,
/// read from `status_detail` (`stage:<id>:failed`, `subpipeline:<id>:failed`, ...).
pub(crate) fn row_json(r: &RunRow) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    let failed = r.status_detail.as_deref().and_then(|d| {
        let rest = d
            .strip_prefix("stage:")
            .or_else(|| d.strip_prefix("subpipeline:"))?;
        let (id, _) = rest.rsplit_once(':')?;
        Some(id.to_owned())
    });
    if let Value::Object(o) = &mut v {
        o.insert("failed_stage".into(), json!(failed));
    }
    v
}

/// `row` (as the API sends it) with `abandoned`: an unfinished run that nobody works on (its
/// runner died: `kill -9`, a power cut), by `control::activity::observe`, the rule `status`
/// uses. Only unfinished rows cost anything (a manifest read and a lock probe); a finished or
/// unreadable run is never abandoned. Called for the rows of a page (blocking: from a
/// blocking task); the tracker's change events go without it, since a change of the manifest
/// means someone writes it.
pub(crate) fn with_activity(roots: &Roots, mut row: Value) -> Value {
    let unfinished = matches!(row["status"].as_str(), Some("in_progress" | "queued"));
    let abandoned = unfinished
        && row["manifest"].as_str().is_some_and(|rel| {
            let path = roots.repo.join(rel);
            crate::history::read_manifest(&path)
                .is_ok_and(|m| crate::control::activity::observe(&path, &m).abandoned(m.status))
        });
    if let Value::Object(o) = &mut row {
        o.insert("abandoned".into(), json!(abandoned));
    }
    row
}

/// What the tracker knows beyond the index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Rows that replace the index's (or add to it), by run id.
    pub(crate) rows: HashMap<String, LiveRow>,
    /// Runs the index has whose directory is gone.
    pub(crate) hidden: HashSet<String>,
}

/// A change for `/api/events`.
#[derive(Debug, Clone)]
pub(crate) enum RunChange {
    /// A run appeared or changed.
    Updated(Arc<LiveRow>),
    /// A run's directory was deleted.
    Removed(String),
}

/// The handlers' side of the tracker.
#[derive(Clone)]
pub(crate) struct LiveRuns {
    /// The latest picture.
    pub(crate) snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Changes as they happen.
    pub(crate) changes: broadcast::Sender<RunChange>,
}

/// Starts the tracker of the runs under `roots`; it stops when `shutdown` fires (and
/// `DirWatch::wake` wakes it).
///
/// The tracker has a thread of its own (it blocks on the file system and parses manifests of
/// up to a megabyte): on the blocking pool each scan would land on whichever thread is idle,
/// and every thread's allocator arena would end up holding a parsed manifest (measured: peak
/// RSS 113 MiB with 50 clients on a 1000-stage run, 19 MiB without them). It waits on the
/// directory watch's event count, with no runtime timer, so it cannot outlive the runtime in
/// a way that matters: at exit it is ended with the process.
pub(crate) fn start(roots: Roots, dirs: DirWatch, shutdown: Shutdown) -> std::io::Result<LiveRuns> {
    let (snap_tx, snapshot) = watch::channel(Arc::new(Snapshot::default()));
    let (changes, _) = broadcast::channel(CHANGES);
    let out = changes.clone();
    std::thread::Builder::new()
        .name("serve-runs".into())
        .spawn(move || {
            let mut tracker = Tracker::new(roots, dirs.clone());
            let mut seen = dirs.generation();
            tracker.scan_all(&mut Vec::new());
            snap_tx.send_replace(Arc::new(tracker.snapshot.clone()));
            let mut next_scan = Instant::now() + tracker.scan_interval();
            loop {
                let wait = next_scan.saturating_duration_since(Instant::now());
                let now = dirs.wait_any(seen, wait);
                if shutdown.fired() {
                    return;
                }
                let full = Instant::now() >= next_scan;
                if now == seen && !full {
                    continue;
                }
                std::thread::sleep(COALESCE);
                // Read the count before taking the dirty set: an event after this is seen
                // by the next wait.
                seen = dirs.generation();
                let mut found = Vec::new();
                if full {
                    next_scan = Instant::now() + tracker.scan_interval();
                    dirs.take_dirty();
                    tracker.scan_all(&mut found);
                } else {
                    let dirty = dirs.take_dirty();
                    tracker.scan_dirty(&dirty, &mut found);
                }
                if !found.is_empty() {
                    snap_tx.send_replace(Arc::new(tracker.snapshot.clone()));
                    for change in found {
                        // No receiver is fine: nobody has the runs page open.
                        let _ = out.send(change);
                    }
                }
            }
        })?;
    Ok(LiveRuns { snapshot, changes })
}

/// A file's identity and version: a manifest replaced by a rename gets a new inode.
type Stamp = (u64, u64, Option<SystemTime>);

fn stamp(p: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()))
}

/// One run directory the tracker has seen.
struct Known {
    run_id: String,
    task_id: String,
    manifest: Option<Stamp>,
    /// Watched while the run is unfinished (or unreadable, or has no manifest yet).
    sub: Option<Subscription>,
}

/// A task directory and its `cli/`, watched for runs appearing and disappearing.
struct TaskDir {
    dir: Subscription,
    cli: Subscription,
}

/// The owner of the picture (see the module doc).
struct Tracker {
    roots: Roots,
    dirs: DirWatch,
    root: Option<Subscription>,
    /// The directory `.runs` will be created in, watched while it does not exist.
    parent: Option<Subscription>,
    tasks: HashMap<PathBuf, TaskDir>,
    runs: HashMap<PathBuf, Known>,
    /// The index's status of each run it had when the server started.
    indexed: HashMap<String, String>,
    snapshot: Snapshot,
}

impl Tracker {
    fn new(roots: Roots, dirs: DirWatch) -> Tracker {
        Tracker {
            roots,
            dirs,
            root: None,
            parent: None,
            tasks: HashMap::new(),
            runs: HashMap::new(),
            indexed: HashMap::new(),
            snapshot: Snapshot::default(),
        }
    }

    /// Slow when inotify watches `.runs` (or, while there is none, the directory it will be
    /// created in); faster when it cannot.
    fn scan_interval(&self) -> Duration {
        let watched = self.root.as_ref().is_some_and(Subscription::watched)
            || self.parent.as_ref().is_some_and(Subscription::watched);
        if watched {
            SLOW_SCAN
        } else {
            FALLBACK_SCAN
        }
    }

    /// Looks at everything: new and removed tasks and runs, every manifest.
    fn scan_all(&mut self, found: &mut Vec<RunChange>) {
        let first = self.root.is_none();
        if self.root.as_ref().is_none_or(|s| !s.watched()) {
            let root = self.dirs.subscribe(&self.roots.runs);
            // No `.runs` yet: watch where it will appear, so the first run shows at once.
            self.parent = match (root.watched(), self.roots.runs.parent()) {
                (false, Some(p)) => Some(self.dirs.subscribe(p)),
                _ => None,
            };
            self.root = Some(root);
        }
        if first {
            match Index::open(&self.roots).and_then(|i| i.statuses()) {
                Ok(rows) => self.indexed = rows.into_iter().collect(),
                Err(e) => tracing::warn!(error = %e.one_line(), "run index unavailable"),
            }
        }
        let tasks = subdirs(&self.roots.runs);
        self.tasks.retain(|t, _| tasks.contains(t));
        let mut seen = HashSet::new();
        for task in tasks {
            self.scan_task(&task, true, &mut seen, found);
        }
        let gone: Vec<PathBuf> = self
            .runs
            .keys()
            .filter(|d| !seen.contains(*d))
            .cloned()
            .collect();
        for d in gone {
            self.forget(&d, found);
        }
        if first {
            // Runs the index lists whose directory no longer exists.
            let present: HashSet<&str> = self.runs.values().map(|k| k.run_id.as_str()).collect();
            self.snapshot.hidden = self
                .indexed
                .keys()
                .filter(|id| !present.contains(id.as_str()))
                .cloned()
                .collect();
        }
    }

    /// Looks at the directories inotify reported.
    fn scan_dirty(&mut self, dirty: &HashSet<PathBuf>, found: &mut Vec<RunChange>) {
        if dirty.contains(&self.roots.runs) || self.root.as_ref().is_none_or(|s| !s.watched()) {
            return self.scan_all(found);
        }
        let mut tasks: HashSet<PathBuf> = HashSet::new();
        for d in dirty {
            if d.parent() == Some(self.roots.runs.as_path()) {
                tasks.insert(d.clone());
            } else if d.file_name().is_some_and(|n| n == "cli")
                && d.parent().and_then(Path::parent) == Some(self.roots.runs.as_path())
            {
                if let Some(t) = d.parent() {
                    tasks.insert(t.to_owned());
                }
            }
        }
        for task in tasks {
            let mut seen = HashSet::new();
            self.scan_task(&task, false, &mut seen, found);
            let cli = task.join("cli");
            let gone: Vec<PathBuf> = self
                .runs
                .keys()
                .filter(|d| d.parent() == Some(cli.as_path()) && !seen.contains(*d))
                .cloned()
                .collect();
            for d in gone {
                self.forget(&d, found);
            }
        }
        let runs: Vec<PathBuf> = dirty
            .iter()
            .filter(|d| self.runs.contains_key(*d))
            .cloned()
            .collect();
        for d in runs {
            self.check(&d, found);
        }
    }

    /// One task: watch it, find its runs; `all` also checks runs already known.
    fn scan_task(
        &mut self,
        task: &Path,
        all: bool,
        seen: &mut HashSet<PathBuf>,
        found: &mut Vec<RunChange>,
    ) {
        let cli = task.join("cli");
        let stale = self
            .tasks
            .get(task)
            .is_none_or(|t| !t.dir.watched() || !t.cli.watched());
        if stale {
            self.tasks.insert(
                task.to_owned(),
                TaskDir {
                    dir: self.dirs.subscribe(task),
                    cli: self.dirs.subscribe(&cli),
                },
            );
        }
        for run in subdirs(&cli) {
            seen.insert(run.clone());
            if !self.runs.contains_key(&run) {
                self.discover(task, &run, found);
            } else if all {
                // One stat of the manifest: catches a resume, a missed event, and a manifest
                // rewritten in place by a tool that does not write atomically.
                self.check(&run, found);
            }
        }
    }

    /// A run directory seen for the first time.
    fn discover(&mut self, task: &Path, run: &Path, found: &mut Vec<RunChange>) {
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let run_id = name(run);
        let known = Known {
            task_id: name(task),
            manifest: None,
            sub: None,
            run_id: run_id.clone(),
        };
        self.runs.insert(run.to_owned(), known);
        // Deleted, then back (restored from a backup): the index row applies again.
        self.snapshot.hidden.remove(&run_id);
        let finished_in_index = self
            .indexed
            .get(&run_id)
            .is_some_and(|s| matches!(s.as_str(), "succeeded" | "failed" | "cancelled"));
        if finished_in_index {
            // The index is right about it: remember the manifest as it is, read nothing.
            let st = stamp(&run.join("manifest.json"));
            if let Some(k) = self.runs.get_mut(run) {
                k.manifest = st;
            }
            return;
        }
        self.check(run, found);
    }

    /// Reads the run's manifest again when it changed.
    fn check(&mut self, run: &Path, found: &mut Vec<RunChange>) {
        let manifest = run.join("manifest.json");
        let now = stamp(&manifest);
        let Some(k) = self.runs.get_mut(run) else {
            return;
        };
        if now.is_some() && now == k.manifest {
            return;
        }
        k.manifest = now;
        if now.is_none() {
            // No manifest yet (a run being created): watch for it.
            if k.sub.is_none() {
                k.sub = Some(self.dirs.subscribe(run));
            }
            return;
        }
        let rel = self.roots.rel(&manifest);
        let (row, live) = match crate::history::read_manifest(&manifest) {
            Ok(m) => {
                let live = !m.status.is_terminal();
                let indexed_same = self.indexed.get(&m.run_id).map(String::as_str)
                    == Some(m.status.as_str())
                    && !live
                    && !self.snapshot.rows.contains_key(&k.run_id);
                if indexed_same {
                    (None, false)
                } else {
                    (
                        Some(LiveRow::Run(Box::new(RunRow::from_manifest(&m, &rel)))),
                        live,
                    )
                }
            }
            Err(e) => (
                Some(LiveRow::Unreadable {
                    run_id: k.run_id.clone(),
                    task_id: k.task_id.clone(),
                    manifest: rel,
                    error: e.one_line(),
                }),
                true,
            ),
        };
        match (live, k.sub.is_some()) {
            (true, false) => k.sub = Some(self.dirs.subscribe(run)),
            (false, true) => k.sub = None,
            _ => {}
        }
        if let Some(row) = row {
            let id = row.run_id().to_owned();
            if self.snapshot.rows.get(&id) != Some(&row) {
                self.snapshot.rows.insert(id, row.clone());
                found.push(RunChange::Updated(Arc::new(row)));
            }
        }
    }

    /// A run directory that disappeared.
    fn forget(&mut self, run: &Path, found: &mut Vec<RunChange>) {
        if let Some(k) = self.runs.remove(run) {
            self.snapshot.rows.remove(&k.run_id);
            // The index may have it (recorded before or since the server started).
            self.snapshot.hidden.insert(k.run_id.clone());
            found.push(RunChange::Removed(k.run_id));
        }
    }
}

/// The directories inside `p` (none when it cannot be read), symlinks not followed.
fn subdirs(p: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(p) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}
