//! `.runs/index.sqlite`: opening it, its schema, and rebuilding it from the manifests.
//!
//! The index is derived data: every row comes from a `manifest.json`, so whenever the file is
//! missing, not a database, or of another schema version it is rebuilt from the manifests
//! instead of failing. Several runners may finish at once and a query may run meanwhile, so
//! the database is in WAL mode (readers never block the one writer) with a busy timeout
//! (writers queue instead of failing with `SQLITE_BUSY`); every write is one transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use shared_manifest::schema::Manifest;

use super::errors::HistoryError;
use super::record;
use super::scan;
use crate::record::layout::Roots;

/// Layout version of the index; a file with another version is rebuilt.
pub const SCHEMA_VERSION: i64 = 1;
/// The index file, in `.runs`.
pub const FILE_NAME: &str = "index.sqlite";
/// Taken (`flock`) while a corrupt index is removed and rebuilt, so that two processes never
/// delete each other's fresh copy.
const LOCK_NAME: &str = "index.sqlite.lock";
/// How long a writer waits for another one. A full rebuild of 10 000 runs takes a second or
/// two; a runner finishing meanwhile must wait for it rather than fail.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    run_id         TEXT PRIMARY KEY,
    task_id        TEXT NOT NULL,
    pipeline_id    TEXT NOT NULL,
    pipeline_title TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_detail  TEXT,
    started_at     TEXT NOT NULL,
    started_ms     INTEGER NOT NULL,
    completed_at   TEXT,
    duration_ms    INTEGER,
    parent_run_id  TEXT,
    summary        TEXT,
    manifest       TEXT NOT NULL,
    stages_total   INTEGER NOT NULL,
    stages_passed  INTEGER NOT NULL,
    stages_failed  INTEGER NOT NULL,
    stages_skipped INTEGER NOT NULL
);
CREATE INDEX runs_by_started  ON runs (started_ms);
CREATE INDEX runs_by_task     ON runs (task_id, started_ms);
CREATE INDEX runs_by_status   ON runs (status, started_ms);
-- Covers `stats`' scan of runs: it never reads the wide rows.
CREATE INDEX runs_by_pipeline ON runs (pipeline_id, started_ms, status, duration_ms);
CREATE TABLE stages (
    run_id       TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    pipeline_id  TEXT NOT NULL,  -- the run's, so that `stats` needs no join
    started_ms   INTEGER NOT NULL, -- the run's
    stage_id     TEXT NOT NULL,
    title        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    command      TEXT,
    status       TEXT NOT NULL,
    exit_code    INTEGER,
    attempts     INTEGER,
    outcome      TEXT,
    signal       TEXT,
    started_at   TEXT,
    completed_at TEXT,
    duration_ms  INTEGER,
    summary      TEXT,
    log_path     TEXT,
    error_file   TEXT,
    sub_run_id   TEXT,
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
-- Covers `stats`' scan of stages, in the order its aggregation likes (runs of one stage).
CREATE INDEX stages_for_stats ON stages
    (pipeline_id, stage_id, started_ms, idx, status, duration_ms, attempts);
";

/// An open run index.
pub struct Index {
    pub(super) conn: Connection,
    path: PathBuf,
    roots: Roots,
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Manifests indexed.
    pub runs: usize,
    /// Manifests that could not be read (each named in a `warning:`).
    pub skipped: usize,
}

impl Index {
    /// Opens `.runs/index.sqlite`, building it from the manifests when it is missing, and
    /// rebuilding it when it is corrupt or of another schema. Without a `.runs` directory
    /// there is no history: an empty index in memory, and nothing is written.
    /// Runs noted as finished since the last reader (`index.pending`) are recorded first.
    pub fn open(roots: &Roots) -> Result<Index, HistoryError> {
        let mut index = Index::open_with(roots, true)?;
        index.record_noted()?;
        Ok(index)
    }

    /// Records the runs noted in `index.pending` (and their child runs), then forgets the
    /// notes. Cheap when there are none: a reader that keeps the index open (the dashboard)
    /// calls it before each query.
    pub fn record_noted(&mut self) -> Result<(), HistoryError> {
        let runs = self.roots.runs.clone();
        if !super::pending::any(&runs) {
            return Ok(());
        }
        let _turn = lock(&runs.join(LOCK_NAME))?;
        let notes = super::pending::take(&runs)?;
        let roots = self.roots.clone();
        for line in &notes.manifests {
            let path = super::pending::resolve(&roots, line);
            match scan::read_manifest(&path) {
                Ok(m) => super::finish::record_tree(&roots, &m, &path, |m, p| self.record(m, p))?,
                Err(e) => crate::console::err_line(&format!(
                    "warning: run `{line}` is not in the run history: {}",
                    e.one_line()
                )),
            }
        }
        notes.forget()
    }

    /// `runs reindex`: opens the index (replacing a file that is not a database) and rebuilds
    /// it from the manifests, whatever it held.
    pub fn reindex(roots: &Roots) -> Result<Rebuilt, HistoryError> {
        let mut index = Index::open_with(roots, false)?;
        Ok(index.rebuild(true)?.unwrap_or_default())
    }

    /// An index in memory built from the manifests, writing nothing: for queries when the
    /// file cannot be used.
    pub fn in_memory(roots: &Roots) -> Result<Index, HistoryError> {
        let path = roots.runs.join(FILE_NAME);
        let conn = Connection::open_in_memory().map_err(|e| HistoryError::index(&path, e))?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| set_version(&conn))
            .map_err(|e| HistoryError::index(&path, e))?;
        let mut index = Index {
            conn,
            path,
            roots: roots.clone(),
        };
        index.rebuild(true)?;
        Ok(index)
    }

    /// A query failed because the file is damaged beyond its header: rebuild it from scratch.
    pub fn repaired(roots: &Roots) -> Result<Index, HistoryError> {
        Index::repair(roots.runs.join(FILE_NAME), roots, true, true)
    }

    fn open_with(roots: &Roots, build: bool) -> Result<Index, HistoryError> {
        let path = roots.runs.join(FILE_NAME);
        if !roots.runs.is_dir() {
            let conn = Connection::open_in_memory().map_err(|e| HistoryError::index(&path, e))?;
            conn.execute_batch(SCHEMA)
                .and_then(|()| set_version(&conn))
                .map_err(|e| HistoryError::index(&path, e))?;
            return Ok(Index {
                conn,
                path,
                roots: roots.clone(),
            });
        }
        // The first runs of a repo may finish at the same moment and all find no index: the
        // one that creates it does so under the lock, so no other opens a file whose header
        // is half written (and takes it for damage) or races it to switch to WAL.
        let fresh = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
        let creating = if fresh {
            Some(lock(&roots.runs.join(LOCK_NAME))?)
        } else {
            None
        };
        match connect(&path) {
            Ok((conn, ready)) => {
                let index = Index::ready(conn, ready || !build, path, roots);
                drop(creating);
                index
            }
            Err(e) if is_corrupt(&e) => {
                // `repair` takes the lock itself.
                drop(creating);
                Index::repair(path, roots, build, false)
            }
            Err(e) => Err(HistoryError::index(&path, e)),
        }
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The roots the index serves.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    fn ready(
        conn: Connection,
        ready: bool,
        path: PathBuf,
        roots: &Roots,
    ) -> Result<Index, HistoryError> {
        let mut index = Index {
            conn,
            path,
            roots: roots.clone(),
        };
        if !ready {
            index.rebuild(false)?;
        }
        Ok(index)
    }

    /// The file is not a database (or a damaged one): under the lock, check again (another
    /// process may have repaired it while we waited), then remove it and build a new one.
    /// `damaged`: a query already found damage that opening does not see.
    fn repair(
        path: PathBuf,
        roots: &Roots,
        build: bool,
        damaged: bool,
    ) -> Result<Index, HistoryError> {
        let _lock = lock(&roots.runs.join(LOCK_NAME))?;
        let reason = match connect(&path) {
            Ok((conn, ready)) if !damaged => {
                return Index::ready(conn, ready || !build, path, roots)
            }
            Ok(_) => "it is damaged".to_owned(),
            Err(e) if is_corrupt(&e) => e.to_string(),
            Err(e) => return Err(HistoryError::index(&path, e)),
        };
        crate::console::err_line(&format!(
            "warning: `{}` is not a usable run index ({reason}); rebuilding it from the manifests",
            roots.rel(&path)
        ));
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HistoryError::io(&p, e)),
            }
        }
        let (conn, ready) = connect(&path).map_err(|e| HistoryError::index(&path, e))?;
        Index::ready(conn, ready || !build, path, roots)
    }

    /// Replaces the whole index with what the manifests say (`runs reindex`, and the repair of
    /// a missing or outdated index). One transaction, taken before the manifests are read: a
    /// run that finishes meanwhile either is on disk already or is recorded after the commit.
    /// Without `force`, nothing happens when another process built the index first.
    pub fn rebuild(&mut self, force: bool) -> Result<Option<Rebuilt>, HistoryError> {
        let path = self.path.clone();
        let err = |e| HistoryError::index(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        if !force && schema_ready(&tx).map_err(err)? {
            return Ok(None);
        }
        let old: Vec<(String, String)> = {
            let mut st = tx
                .prepare(
                    "SELECT type, name FROM sqlite_master \
                     WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'",
                )
                .map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<Result<_, _>>().map_err(err)?
        };
        if old.iter().any(|(_, n)| n == "schema_version") {
            if let Ok(Some(v)) = version(&tx) {
                if v != SCHEMA_VERSION {
                    crate::console::err_line(&format!(
                        "warning: the run index `{}` has schema version {v}, not {SCHEMA_VERSION}; rebuilding it from the manifests",
                        self.roots.rel(&self.path)
                    ));
                }
            }
        }
        for (kind, name) in &old {
            let kind = if kind == "view" { "VIEW" } else { "TABLE" };
            let sql = format!("DROP {kind} IF EXISTS \"{}\"", name.replace('"', "\"\""));
            tx.execute_batch(&sql).map_err(err)?;
        }
        tx.execute_batch(SCHEMA).map_err(err)?;
        let mut done = Rebuilt::default();
        for manifest in scan::manifest_paths(&self.roots.runs) {
            let rel = self.roots.rel(&manifest);
            match scan::read_manifest(&manifest) {
                Ok(m) => {
                    record::insert(&tx, &m, &rel).map_err(err)?;
                    done.runs += 1;
                }
                Err(e) => {
                    crate::console::err_line(&format!(
                        "warning: skipping `{rel}` in the run index: {}",
                        e.one_line()
                    ));
                    done.skipped += 1;
                }
            }
        }
        set_version(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        // A rebuild writes the whole index into the WAL; readers would go through all of it
        // until the next checkpoint (connections do not checkpoint on close, see `connect`).
        // Best effort: a reader holding a snapshot only makes it partial.
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %e, "checkpoint after rebuild");
        }
        Ok(Some(done))
    }

    /// Records one run (again): its row and one row per stage replace what was there.
    pub fn record(&mut self, m: &Manifest, manifest: &Path) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = |e| HistoryError::index(&path, e);
        let rel = self.roots.rel(manifest);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        record::insert(&tx, m, &rel).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// A query failed: SQLite errors name no file, so say which one.
    pub(super) fn err(&self, e: rusqlite::Error) -> HistoryError {
        HistoryError::index(&self.path, e)
    }
}

/// Runs `query` on the index of `roots`; when the file turns out damaged past what opening
/// checks, rebuilds it from the manifests and runs `query` once more.
///
/// The index is derived data and a query only reads: when the file cannot be opened, built or
/// repaired (a full disk, a read-only `.runs`, an I/O error), the query runs on an index built
/// in memory from the manifests instead, with a `warning:` saying why.
pub fn with_index<T>(
    roots: &Roots,
    query: impl Fn(&mut Index) -> Result<T, HistoryError>,
) -> Result<T, HistoryError> {
    let on_file = Index::open(roots).and_then(|mut index| match query(&mut index) {
        Err(e) if e.is_corrupt() => {
            drop(index);
            query(&mut Index::repaired(roots)?)
        }
        r => r,
    });
    match on_file {
        Err(e) => {
            crate::console::err_line(&format!(
                "warning: {}; reading the manifests directly",
                e.one_line()
            ));
            query(&mut Index::in_memory(roots)?)
        }
        ok => ok,
    }
}

/// Opens the file and says whether it holds our schema. Errors here on an existing file mean
/// it is not a database ([`is_corrupt`]) or cannot be opened at all.
fn connect(path: &Path) -> rusqlite::Result<(Connection, bool)> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: a query reads a snapshot while a runner records its run; runs finishing at once
    // take turns on the write lock. NORMAL sync is enough in WAL for derived data: a power cut
    // may lose the last records, never the file's consistency, and `reindex` restores them.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // No checkpoint when this (usually last) connection closes: every run closes one, and the
    // close-time checkpoint cost each run four fsyncs of a file that is derived and
    // rebuildable. The automatic checkpoint bounds the WAL instead, at 256 pages (1 MiB):
    // every query reads through the WAL, so it is kept small (a run adds a few pages).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.pragma_update(None, "wal_autocheckpoint", 256)?;
    let ready = schema_ready(&conn)?;
    Ok((conn, ready))
}

fn schema_ready(conn: &Connection) -> rusqlite::Result<bool> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('schema_version', 'runs', 'stages')",
        [],
        |r| r.get(0),
    )?;
    Ok(tables == 3 && version(conn)? == Some(SCHEMA_VERSION))
}

fn version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
}

fn set_version(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM schema_version", [])?;
    conn.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [SCHEMA_VERSION],
    )?;
    Ok(())
}

/// True when the file is not a database or a damaged one: it is rebuilt, never fatal.
fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// An exclusive `flock` on `path`, released when the returned value is dropped (or the
/// process dies).
fn lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, HistoryError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| HistoryError::io(path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| HistoryError::io(path, errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Roots {
        Roots::for_repo(dir)
    }

    fn count(index: &Index) -> i64 {
        index
            .conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn no_runs_dir_means_an_empty_index_and_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(&roots(dir.path())).expect("open");
        assert_eq!(count(&index), 0);
        assert!(!dir.path().join(".runs").exists());
    }

    #[test]
    fn garbage_and_foreign_schemas_are_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = roots(dir.path());
        std::fs::create_dir_all(&r.runs).expect("mkdir");
        let path = r.runs.join(FILE_NAME);
        std::fs::write(
            &path,
            b"this is not a database, just garbage bytes ...........",
        )
        .expect("write");
        let index = Index::open(&r).expect("garbage is rebuilt");
        assert_eq!(count(&index), 0);
        drop(index);
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("UPDATE schema_version SET version = 99; CREATE TABLE extra (x);")
                .expect("tamper");
        }
        let index = Index::open(&r).expect("other version is rebuilt");
        assert!(schema_ready(&index.conn).expect("ready"));
        let extra: i64 = index
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'extra'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(extra, 0, "foreign tables are dropped");
    }
}
