//! What every handler shares: where the runs are, the directory watches, the live-runs
//! tracker, one connection to the history index, the access rules and the shutdown signal.
//! Immutable after start except the index connection, which one mutex guards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::history::{HistoryError, Index};
use crate::record::layout::Roots;
use crate::serve::error::ApiError;
use crate::serve::live::LiveRuns;
use crate::serve::shutdown::Shutdown;
use crate::serve::watch::DirWatch;

/// A connection older than this is reopened: `runs reindex` may have replaced the file.
const INDEX_MAX_AGE: Duration = Duration::from_secs(10);
/// How long a probe of a run's lock answers for every stream that asks.
const ALIVE_TTL: Duration = Duration::from_secs(2);

/// Who may use the server (see `security.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// Required on every request when set.
    pub(crate) token: Option<String>,
    /// Bound to a loopback address: without a token, only loopback `Host` names are served
    /// (a page on another site cannot reach the server through DNS rebinding).
    pub(crate) loopback: bool,
}

/// Shared by every handler.
pub(crate) struct Shared {
    pub(crate) roots: Roots,
    pub(crate) dirs: DirWatch,
    pub(crate) live: LiveRuns,
    pub(crate) access: Access,
    /// Fired on Ctrl-C.
    pub(crate) shutdown: Shutdown,
    index: Mutex<Option<(Index, Instant)>>,
    /// Runner liveness by manifest path, and when it was probed.
    alive: tokio::sync::Mutex<HashMap<PathBuf, (Instant, bool)>>,
}

/// The handlers' state.
pub(crate) type AppState = Arc<Shared>;

impl Shared {
    pub(crate) fn new(
        roots: Roots,
        dirs: DirWatch,
        live: LiveRuns,
        access: Access,
        shutdown: Shutdown,
    ) -> Shared {
        Shared {
            roots,
            dirs,
            live,
            access,
            shutdown,
            index: Mutex::new(None),
            alive: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Whether a live runner holds the run whose manifest is at `manifest`. Event streams ask
    /// every few seconds; fifty streams on one run share one probe (a lock probe may wait up
    /// to 200 ms for a runner that is writing its pid, so it runs on the blocking pool, and
    /// one at a time).
    pub(crate) async fn runner_alive(&self, manifest: &Path) -> bool {
        let mut cache = self.alive.lock().await;
        if let Some((at, alive)) = cache.get(manifest) {
            if at.elapsed() < ALIVE_TTL {
                return *alive;
            }
        }
        let m = manifest.to_owned();
        let alive = tokio::task::spawn_blocking(move || crate::control::lock::runner_alive(&m))
            .await
            .unwrap_or(true);
        cache.retain(|_, (at, _)| at.elapsed() < ALIVE_TTL);
        cache.insert(manifest.to_owned(), (Instant::now(), alive));
        alive
    }

    /// `.runs` resolved (symlinks followed): every file served must lie under it.
    pub(crate) fn runs_real(&self) -> PathBuf {
        self.roots
            .runs
            .canonicalize()
            .unwrap_or_else(|_| self.roots.runs.clone())
    }

    /// Runs `query` on the history index (blocking: call from a blocking task). The connection
    /// is kept between requests; a damaged index is rebuilt from the manifests and the query
    /// run again, as the `runs` verbs do.
    pub(crate) fn with_index<T>(
        &self,
        query: impl Fn(&mut Index) -> Result<T, HistoryError>,
    ) -> Result<T, ApiError> {
        let mut slot = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if slot
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > INDEX_MAX_AGE)
        {
            *slot = None;
            let index = Index::open(&self.roots).map_err(history_error)?;
            *slot = Some((index, Instant::now()));
        }
        let (index, _) = slot.as_mut().expect("opened above");
        // Runs that ended since: runners only note themselves (see history/pending.rs).
        let answer = index.record_noted().and_then(|()| query(index));
        match answer {
            Err(e) if e.is_corrupt() => {
                *slot = None;
                let mut index = Index::repaired(&self.roots).map_err(history_error)?;
                let out = query(&mut index).map_err(history_error);
                *slot = Some((index, Instant::now()));
                out
            }
            other => other.map_err(history_error),
        }
    }
}

fn history_error(e: HistoryError) -> ApiError {
    ApiError::internal(format!("run history: {}", e.one_line()))
}
