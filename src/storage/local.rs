//! Local files: `stat(2)`, a directory listing, and `pread` on one shared open file.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::SystemTime;

use super::{Blob, Meta, Result, StorageError};

/// The size and mtime of a regular file; `None` when it is not one.
pub(super) fn stat(path: &Path) -> Option<Meta> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Some(Meta {
            len: m.len(),
            modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        }),
        _ => None,
    }
}

/// The names in directory `dir` (the current directory when empty), at most `max`.
pub(super) fn list(dir: &Path, max: usize) -> Option<Vec<Vec<u8>>> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .take(max)
            .flatten()
            .map(|e| e.file_name().as_bytes().to_vec())
            .collect(),
    )
}

/// An open local file.
#[derive(Debug)]
pub(super) struct LocalFile {
    file: File,
    len: u64,
}

impl LocalFile {
    pub(super) fn open(path: &Path) -> Result<LocalFile> {
        let file = File::open(path).map_err(|e| StorageError::io(e, "open"))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io(e, "stat"))?
            .len();
        Ok(LocalFile { file, len })
    }
}

impl Blob for LocalFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, _ahead: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| StorageError::io(e, format!("read {} bytes at {offset}", buf.len())))
    }
}
