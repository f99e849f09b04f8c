//! The digest of a plain directory (outside any git work tree): every regular file and
//! symbolic link below it, sorted by path, each as `<kind> <sha256 of its content> <path>`
//! (`kind`: `file`, `exec` for a file with an execute bit, `link` whose content is its target),
//! hashed together with SHA-256 and written `sha256:<hex>`. Directories count only through
//! what they contain (as in git); `.git` entries and the excluded directories are left out.
//! The listing itself is kept beside a snapshot so that a later diff can say which files
//! changed (outside git there are no line counts).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::gitstate::diffstat::{stat, DiffStat, FileChange};
use crate::gitstate::errors::SnapshotError;

/// One file of a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// `file`, `exec` or `link`.
    pub kind: String,
    /// SHA-256 of the content (of the target, for a link), lower-case hex.
    pub sha256: String,
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's content, lower-case hex, read in 64 KiB pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Every file below `dir`, sorted by path, leaving out `.git` and `exclude` (canonical paths).
pub fn list(dir: &Path, exclude: &[PathBuf]) -> Result<Vec<FileEntry>, SnapshotError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |path: &Path, source| SnapshotError::Read {
        path: path.to_owned(),
        source,
    };
    let root = std::fs::canonicalize(dir).map_err(|e| read(dir, e))?;
    let mut out = Vec::new();
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| read(&d, e))? {
            let entry = entry.map_err(|e| read(&d, e))?;
            let path = entry.path();
            if entry.file_name() == ".git" || exclude.contains(&path) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|e| read(&path, e))?;
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let (kind, sha256) = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| read(&path, e))?;
                let digest = Sha256::digest(target.as_os_str().as_encoded_bytes());
                ("link", hex(&digest))
            } else if meta.is_dir() {
                todo.push(path);
                continue;
            } else if meta.is_file() {
                let exec = meta.permissions().mode() & 0o111 != 0;
                let digest = sha256_file(&path).map_err(|e| read(&path, e))?;
                (if exec { "exec" } else { "file" }, digest)
            } else {
                // Sockets, fifos, devices: not content.
                continue;
            };
            out.push(FileEntry {
                path: rel,
                kind: kind.to_owned(),
                sha256,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// `sha256:<hex>` of a listing.
pub fn digest(listing: &[FileEntry]) -> String {
    let mut hasher = Sha256::new();
    for e in listing {
        hasher.update(e.kind.as_bytes());
        hasher.update(b" ");
        hasher.update(e.sha256.as_bytes());
        hasher.update(b" ");
        hasher.update(e.path.as_bytes());
        hasher.update([0u8]);
    }
    format!("sha256:{}", hex(&hasher.finalize()))
}

/// Which files differ between two listings.
pub fn diff(from: &[FileEntry], to: &[FileEntry]) -> DiffStat {
    let before: BTreeMap<&str, &FileEntry> = from.iter().map(|e| (e.path.as_str(), e)).collect();
    let after: BTreeMap<&str, &FileEntry> = to.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut files = Vec::new();
    let change = |path: &str, status| FileChange {
        path: path.to_owned(),
        status,
        insertions: None,
        deletions: None,
    };
    for (path, a) in &before {
        match after.get(path) {
            None => files.push(change(path, "deleted")),
            Some(b) if b.kind != a.kind && (a.kind == "link" || b.kind == "link") => {
                files.push(change(path, "type-changed"))
            }
            Some(b) if b != a => files.push(change(path, "modified")),
            Some(_) => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            files.push(change(path, "added"));
        }
    }
    stat(files, 0, 0)
}
