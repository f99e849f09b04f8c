//! The contract between the persister and the document it owns.
//!
//! The persister is generic so it can be tested with a toy document and so the manifest's own
//! rules (state machines) stay in the manifest's module: the persister only applies updates in
//! order and writes the result.

use std::io::Write;

use serde::Serialize;

/// An update the document refused (an illegal state transition, an unknown stage...). The
/// persister keeps the document unchanged for that update and reports the error to the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// A document owned by a persister task.
pub trait Document: Serialize + Send + 'static {
    /// One change to the document, sent over the persister's channel.
    type Update: Send + 'static;

    /// Applies one update. Pure and synchronous so it can be tested without tokio.
    fn apply(&mut self, update: Self::Update) -> Result<(), ApplyError>;

    /// Text of the `.heartbeat` file, if the document has one. The persister rewrites the file
    /// (atomically) whenever this value changes.
    fn heartbeat(&self) -> Option<String> {
        None
    }

    /// What a write does with the document's sidecar file. Default: the document has none.
    fn sidecar(&self) -> SidecarMode {
        SidecarMode::Keep
    }

    /// Writes the document's file to `out`. Default: the document as pretty JSON with a
    /// trailing newline. Streamed (the persister renders straight into the temp file, so a
    /// large document never exists twice in memory). Mutable so that a large document can set
    /// parts of itself aside while it renders (it must be unchanged on return).
    fn render_main(&mut self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
        pretty_to(out, &*self)
    }

    /// Writes the document's sidecar to `out`; only called when [`Document::sidecar`] says
    /// [`SidecarMode::Write`].
    fn render_sidecar(&mut self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
        let _ = out;
        Ok(())
    }

    /// The bytes of the document's files, in memory (for tests and tools; the persister
    /// streams them instead).
    fn render(&mut self) -> Result<Rendered, serde_json::Error> {
        let mut main = Vec::new();
        self.render_main(&mut main)?;
        let sidecar = match self.sidecar() {
            SidecarMode::Keep => Sidecar::Keep,
            SidecarMode::Remove => Sidecar::Remove,
            SidecarMode::Write => {
                let mut bytes = Vec::new();
                self.render_sidecar(&mut bytes)?;
                Sidecar::Write(bytes)
            }
        };
        Ok(Rendered { main, sidecar })
    }
}

/// What a write does with a document's sidecar file (see [`Sidecar`] for each case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarMode {
    /// No sidecar: leave the file alone.
    Keep,
    /// Write it, durably, before the main file.
    Write,
    /// Remove a sidecar left by an earlier layout, after the main file is written.
    Remove,
}

/// What one write puts on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The document's file.
    pub main: Vec<u8>,
    /// Its sidecar.
    pub sidecar: Sidecar,
}

/// What a write does with the document's sidecar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sidecar {
    /// The document has no sidecar: leave the file alone.
    Keep,
    /// Write it, durably, before the main file.
    Write(Vec<u8>),
    /// The main file holds everything: remove a sidecar left by an earlier layout, after the
    /// main file is written.
    Remove,
}

/// `value` as pretty JSON with a trailing newline.
pub fn pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// `value` as pretty JSON with a trailing newline, written to `out`.
pub fn pretty_to<T: Serialize + ?Sized>(
    mut out: &mut dyn Write,
    value: &T,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}
