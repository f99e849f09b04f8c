//! A finished run and the child runs of its sub-pipeline stages, found from their manifests:
//! what the index records for each run noted in `index.pending`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use shared_manifest::schema::Manifest;

use super::errors::HistoryError;
use super::scan::read_manifest;
use crate::record::layout::Roots;

/// Nesting of sub-pipelines followed when recording child runs (config validation rejects
/// cycles; this only bounds a damaged manifest).
const MAX_DEPTH: usize = 16;

/// Calls `record` for run `m` (manifest at `manifest`) and, from their manifests on disk, for
/// the child runs its sub-pipeline stages started, so that the index holds what a rebuild
/// would give.
pub(crate) fn record_tree(
    roots: &Roots,
    m: &Manifest,
    manifest: &Path,
    mut record: impl FnMut(&Manifest, &Path) -> Result<(), HistoryError>,
) -> Result<(), HistoryError> {
    record(m, manifest)?;
    let mut seen: HashSet<String> = HashSet::from([m.run_id.clone()]);
    let mut todo: Vec<(PathBuf, usize)> = children(roots, m, 1);
    while let Some((path, depth)) = todo.pop() {
        let child = match read_manifest(&path) {
            Ok(c) => c,
            Err(e) => {
                crate::console::err_line(&format!(
                    "warning: child run `{}` is not in the run history: {}",
                    roots.rel(&path),
                    e.one_line()
                ));
                continue;
            }
        };
        if !seen.insert(child.run_id.clone()) {
            continue;
        }
        record(&child, &path)?;
        if depth < MAX_DEPTH {
            todo.extend(children(roots, &child, depth + 1));
        }
    }
    Ok(())
}

fn children(roots: &Roots, m: &Manifest, depth: usize) -> Vec<(PathBuf, usize)> {
    // A recorded path that leaves `.runs` (a damaged manifest) is not followed.
    m.child_runs
        .iter()
        .filter_map(|c| roots.recorded_path(&c.manifest))
        .map(|p| (p, depth))
        .collect()
}
