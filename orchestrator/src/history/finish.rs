//! Recording a finished run (and the child runs of its sub-pipeline stages) in the index.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use shared_manifest::schema::Manifest;

use super::errors::HistoryError;
use super::scan::read_manifest;
use super::store::Index;
use crate::record::layout::Roots;

/// Nesting of sub-pipelines followed when recording child runs (config validation rejects
/// cycles; this only bounds a damaged manifest).
const MAX_DEPTH: usize = 16;

/// Records run `m` (manifest at `manifest`) and, from their manifests on disk, the child runs
/// its sub-pipeline stages started, so that the index holds what a rebuild would give.
pub fn record_run(roots: &Roots, m: &Manifest, manifest: &Path) -> Result<(), HistoryError> {
    let mut index = Index::open(roots)?;
    index.record(m, manifest)?;
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
        index.record(&child, &path)?;
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
