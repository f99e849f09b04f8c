//! Reading a file whose content we parse (the config, manifests): regular files only (a
//! symlink to one is fine), a size cap, and no way to block.
//!
//! `std::fs::read` on a FIFO waits forever for a writer; on `/dev/zero` (or a symlink to it) it
//! reads until memory runs out. So: `metadata` first (it never blocks, and follows symlinks),
//! refusing anything but a regular file and anything over the cap; then `open` with
//! `O_NONBLOCK` (should the path be swapped for a FIFO after the check, `open` does not wait for
//! a writer; regular files ignore the flag) and `O_NOCTTY`; the opened file's own metadata is
//! checked again, and at most `cap + 1` bytes are read, so a file that grows meanwhile or lies
//! about its size (`/proc`) stays bounded.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS refused (not found, permission, I/O error, ...).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A directory, FIFO, socket or device.
    #[error("it is {0}, not a regular file")]
    NotAFile(&'static str),
    /// Over the cap.
    #[error("it is larger than {} MiB (the limit for this file)", .0 / (1024 * 1024))]
    TooLarge(u64),
}

impl ReadError {
    /// True when the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    /// True when the fault is the storage's (an I/O error, no memory), not the path's: exit 4
    /// rather than a usage error. Missing files, permissions, odd file types, sizes and
    /// unreadable names are the caller's to fix.
    pub fn is_storage(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            ReadError::Io(e) => {
                let path_fault = matches!(
                    e.kind(),
                    K::NotFound
                        | K::PermissionDenied
                        | K::NotADirectory
                        | K::IsADirectory
                        | K::InvalidInput
                        | K::InvalidData
                        | K::InvalidFilename
                ) || e.raw_os_error() == Some(nix::libc::ELOOP);
                !path_fault
            }
            ReadError::NotAFile(_) | ReadError::TooLarge(_) => false,
        }
    }
}

fn kind_of(t: std::fs::FileType) -> Option<&'static str> {
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    }
}

/// The bytes of the regular file at `path`, at most `cap` of them.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(ReadError::NotAFile(kind));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY).bits())
        .open(path)?;
    if let Some(kind) = kind_of(file.metadata()?.file_type()) {
        return Err(ReadError::NotAFile(kind));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    String::from_utf8(read_regular(path, cap)?).map_err(|e| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        assert!(matches!(
            read_regular(&fifo, 10),
            Err(ReadError::NotAFile("a FIFO"))
        ));
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(matches!(
            read_regular(&zero, 10),
            Err(ReadError::NotAFile("a character device"))
        ));
        assert!(matches!(
            read_regular(dir.path(), 10),
            Err(ReadError::NotAFile("a directory"))
        ));
        let big = dir.path().join("big");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(11))
            .expect("sparse");
        assert!(matches!(
            read_regular(&big, 10),
            Err(ReadError::TooLarge(10))
        ));
        let link = dir.path().join("link");
        std::fs::write(dir.path().join("ok"), "{}").expect("write");
        std::os::unix::fs::symlink(dir.path().join("ok"), &link).expect("symlink");
        assert_eq!(
            read_regular_text(&link, 10).expect("a symlink to a file"),
            "{}"
        );
    }

    #[test]
    fn only_storage_faults_are_storage_errors() {
        let io = |k| ReadError::Io(std::io::Error::from(k));
        assert!(!io(std::io::ErrorKind::NotFound).is_storage());
        assert!(!io(std::io::ErrorKind::PermissionDenied).is_storage());
        assert!(!ReadError::NotAFile("a FIFO").is_storage());
        assert!(ReadError::Io(std::io::Error::from_raw_os_error(nix::libc::EIO)).is_storage());
    }
}
