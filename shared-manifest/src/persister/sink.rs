//! Where the persister's bytes go: the [`Sink`] trait (tests swap it to observe or fail
//! writes), the real [`AtomicSink`], and the files a persister owns ([`Targets`]).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::atomic::{
    write_atomic, write_atomic_all, write_atomic_relaxed, write_atomic_rendered, Render,
};
use crate::errors::{AtomicWriteError, WriteStep};

/// Where the persister writes: [`AtomicSink`] in production; tests swap it to observe writes.
/// Every method is called on the persister's writer thread, one call at a time.
pub trait Sink: Send + 'static {
    /// Writes `bytes` to `path` durably, all or nothing.
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError>;

    /// Writes a file that only needs to be atomic, not durable (the heartbeat: the manifest
    /// holds the same time durably). Defaults to [`Sink::write`].
    fn write_relaxed(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        self.write(path, bytes)
    }

    /// Writes several files durably, each all or nothing, renamed in the given order so that
    /// a later one is never newer than an earlier one after a crash. Defaults to
    /// [`Sink::write`] of each in turn.
    fn write_in_order(&mut self, files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
        for (path, bytes) in files {
            self.write(path, bytes)?;
        }
        Ok(())
    }

    /// Writes several files like [`Sink::write_in_order`], each produced by `render(i, out)`
    /// (see [`Render`]: it may say to leave file `i` as it is). [`AtomicSink`] renders straight
    /// into the temp files, so no file is ever whole in memory; the default renders each into
    /// memory and calls [`Sink::write_in_order`] (what a test sink observes).
    fn write_rendered(
        &mut self,
        paths: &[&Path],
        render: &mut Render<'_>,
    ) -> Result<(), AtomicWriteError> {
        let mut kept: Vec<(&Path, Vec<u8>)> = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let mut bytes = Vec::new();
            let keep = render(i, &mut bytes).map_err(|source| AtomicWriteError {
                path: path.to_path_buf(),
                step: WriteStep::Write,
                source,
            })?;
            if keep {
                kept.push((path, bytes));
            }
        }
        let files: Vec<(&Path, &[u8])> = kept.iter().map(|(p, b)| (*p, b.as_slice())).collect();
        self.write_in_order(&files)
    }

    /// Removes `path` durably (the directory is fsynced); a missing file is not an error.
    fn remove(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        crate::atomic::remove_durable(path)
    }

    /// Makes a file the document refers to durable (fdatasync): a stage log, an error file.
    /// Called before the document's write in the same batch (group commit).
    fn sync_file(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        sync_path(path, false)
    }

    /// Makes a directory's entries durable (fsync): where such a file was created.
    fn sync_dir(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        sync_path(path, true)
    }
}

/// The real sink: the atomic, durable writes of [`crate::atomic`].
#[derive(Debug, Default, Clone, Copy)]
pub struct AtomicSink;

impl Sink for AtomicSink {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        write_atomic(path, bytes)
    }

    fn write_relaxed(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        write_atomic_relaxed(path, bytes)
    }

    fn write_in_order(&mut self, files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
        write_atomic_all(files)
    }

    fn write_rendered(
        &mut self,
        paths: &[&Path],
        render: &mut Render<'_>,
    ) -> Result<(), AtomicWriteError> {
        write_atomic_rendered(paths, render)
    }
}

/// fdatasync of a file or fsync of a directory, by path (the writer holds no descriptor of
/// the files it syncs: the stages that wrote them may have closed theirs).
fn sync_path(path: &Path, dir: bool) -> Result<(), AtomicWriteError> {
    let err = |step, source| AtomicWriteError {
        path: path.to_owned(),
        step,
        source,
    };
    let f = File::open(path).map_err(|e| err(WriteStep::Create, e))?;
    if dir {
        f.sync_all().map_err(|e| err(WriteStep::FsyncDir, e))
    } else {
        f.sync_data().map_err(|e| err(WriteStep::Fsync, e))
    }
}

/// The files a persister writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The document.
    pub main: PathBuf,
    /// Its sidecar, for documents that render one (the manifest's `manifest.ext.json`).
    pub sidecar: Option<PathBuf>,
    /// The heartbeat file, for documents that have one.
    pub heartbeat: Option<PathBuf>,
}

impl Targets {
    /// Just the document's file.
    pub fn new(main: PathBuf) -> Targets {
        Targets {
            main,
            sidecar: None,
            heartbeat: None,
        }
    }

    /// A run's manifest: `manifest.json`, its sidecar next to it and, while the run is
    /// going, its heartbeat file.
    pub fn manifest(main: PathBuf, heartbeat: Option<PathBuf>) -> Targets {
        Targets {
            sidecar: Some(crate::sidecar::sidecar_path(&main)),
            main,
            heartbeat,
        }
    }
}

/// Files an update refers to that must be durable before the document that records the
/// update is: group commit. The persister syncs them, on its writer thread, right before the
/// write that includes the update (see `Persister::send_synced`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Synced {
    /// Files to fdatasync (a stage log, an error file).
    pub files: Vec<PathBuf>,
    /// Directories to fsync (where those files were created).
    pub dirs: Vec<PathBuf>,
}

impl Synced {
    /// Nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }

    /// Adds a file and the directory it lives in.
    pub fn file_in_dir(&mut self, file: PathBuf) {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            self.dirs.push(dir.to_owned());
        }
        self.files.push(file);
    }

    /// Takes `other`'s paths. Directories are kept once (a run has a handful, named again by
    /// every stage); files are not compared (each is named by the one update that ends its
    /// stage, and syncing one twice is harmless).
    pub(crate) fn absorb(&mut self, other: Synced) {
        self.files.extend(other.files);
        for d in other.dirs {
            if !self.dirs.contains(&d) {
                self.dirs.push(d);
            }
        }
    }
}
