//! Where image bytes come from: local files, or objects in S3-compatible storage or behind a
//! plain HTTP server. Every source reads through a [`Blob`] (length, positional reads), and
//! finds images through [`Storage`] (`stat`, `list`, `open`), so the image formats never know
//! where their bytes are.
//!
//! # States
//!
//! - **Local** (`FILESYSTEM_PREFIX` a path, the default): a [`Blob`] is an open file read with
//!   `pread`, exactly as before this layer existed; `stat` is one `stat(2)`, `list` one
//!   directory listing. Nothing is cached here.
//! - **Remote** (`FILESYSTEM_PREFIX` = `s3://BUCKET/key/prefix/` or `http(s)://HOST/path/`):
//!   names are object keys under the prefix ([`location`]), validated before any request (no
//!   `..` or `.` segment, no empty segment, no leading `/`: such keys name nothing). The
//!   `object_store` client (one per process, [`remote`]) runs on a small runtime of its own.
//!   Three caches sit in front of it: object descriptions (`HEAD`: size, ETag, Last-Modified,
//!   or "absent"), directory listings (for image sequences), both trusted for
//!   `IIPSRV_STORAGE_REVALIDATE` seconds, and byte blocks of [`BLOCK`] bytes keyed by key,
//!   version and block number, bounded by `IIPSRV_STORAGE_CACHE_SIZE`.
//!
//! # How a request waits for storage without holding a worker
//!
//! The decoders are synchronous. A request runs them inside [`Storage::serve`]: a read that
//! misses the caches does not wait; it records what it needs and fails with
//! [`StorageErrorKind::Pending`] ([`collect`]). `serve` then fetches everything recorded, all
//! at once and asynchronously (the worker serves other connections meanwhile), and runs the
//! request again, now reading from the caches. A pass-through tile thus costs one pass that
//! finds the tile's byte range, one ranged GET, and a second pass that answers; a region
//! records all its tiles in one pass and fetches them concurrently. After
//! [`collect::MAX_ROUNDS`] rounds a request reads what it still misses with blocking calls.

mod client;
pub mod collect;
pub mod error;
mod local;
pub mod location;
mod object;
mod remote;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

pub use error::{Result, StorageError, StorageErrorKind};
use location::Location;

/// The size of the blocks remote bytes are fetched and cached in.
pub const BLOCK: u64 = 64 << 10;
/// The first read of an object (its header, at offset 0) fetches at least this much, so that
/// the IFDs or boxes that follow usually come in the same GET.
pub const HEADER_READ_AHEAD: u64 = 256 << 10;

/// Positional reads of one file or object, shared by every thread that decodes from it.
pub trait Blob: Send + Sync + std::fmt::Debug {
    /// Its length in bytes (at open).
    fn len(&self) -> u64;

    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` from `offset`. A read past the end fails with an `Io` error of kind
    /// `UnexpectedEof`, as a file's does. When the bytes must be fetched, at least `ahead`
    /// bytes from `offset` are (a sequential reader's read-ahead; 0 = only these).
    fn read_at(&self, buf: &mut [u8], offset: u64, ahead: u64) -> Result<()>;

    /// [`read_at`](Self::read_at) without read-ahead.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.read_at(buf, offset, 0)
    }
}

/// What `stat` tells about a file or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    /// The version: a file's mtime; an object's Last-Modified (whole seconds, as HTTP dates
    /// have them) with a hash of its ETag as the sub-second part, so that an object replaced
    /// within the same second is still a new version. Caches compare it; `Last-Modified`
    /// headers show its seconds.
    pub modified: SystemTime,
}

/// Where images are: the local file system, or a remote store.
#[derive(Debug, Clone)]
pub struct Storage {
    remote: Option<Arc<remote::Remote>>,
    /// What names start with: FILESYSTEM_PREFIX for files; the key prefix for objects.
    prefix: String,
}

pub use crate::config::StorageSettings as Settings;

impl Storage {
    /// Local files under `prefix` (FILESYSTEM_PREFIX).
    pub fn local(prefix: &str) -> Storage {
        Storage {
            remote: None,
            prefix: prefix.to_string(),
        }
    }

    /// The storage FILESYSTEM_PREFIX names: local files, or a remote store configured from the
    /// conventional AWS variables (read from the process environment by `object_store`).
    /// Errors name what is wrong with the prefix, never a credential.
    pub fn new(prefix: &str, settings: Settings) -> std::result::Result<Storage, String> {
        match location::parse(prefix)? {
            Location::Local => Ok(Storage::local(prefix)),
            remote @ (Location::S3 { .. } | Location::Http { .. }) => {
                let key_prefix = remote.key_prefix().to_string();
                let remote = remote::Remote::new(&remote, settings)?;
                Ok(Storage {
                    remote: Some(Arc::new(remote)),
                    prefix: key_prefix,
                })
            }
        }
    }

    /// Whether images are remote objects.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// What every name starts with: FILESYSTEM_PREFIX, or the key prefix inside the bucket.
    pub fn prefix(&self) -> &[u8] {
        self.prefix.as_bytes()
    }

    /// For the log: the store (`s3://bucket`, the HTTP base), or `local files`.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => r.describe().to_string(),
            None => "local files".to_string(),
        }
    }

    /// The size and version of a regular file or object; `None` when there is none (or the
    /// name cannot name one).
    pub fn stat(&self, path: &Path) -> Result<Option<Meta>> {
        match &self.remote {
            None => Ok(local::stat(path)),
            Some(r) => r.stat(path),
        }
    }

    /// The names of the files (objects) directly inside directory `dir` (a key prefix ending in
    /// `/`, or empty for the root), at most `max`; `None` when it cannot be listed.
    pub fn list(&self, dir: &Path, max: usize) -> Result<Option<Vec<Vec<u8>>>> {
        match &self.remote {
            None => Ok(local::list(dir, max)),
            Some(r) => r.list(dir, max),
        }
    }

    /// Open a file or object for reading. `meta` is what `stat` said, when the caller has it
    /// (an object is opened at that version; a file ignores it).
    pub fn open(&self, path: &Path, meta: Option<Meta>) -> Result<Arc<dyn Blob>> {
        match &self.remote {
            None => Ok(Arc::new(local::LocalFile::open(path)?)),
            Some(r) => Ok(Arc::new(r.open(path, meta)?)),
        }
    }

    /// Run `work` (a request's synchronous work) so that it never blocks on storage: see the
    /// module documentation. For local files it simply runs once.
    pub async fn serve<R>(&self, work: impl FnMut() -> R) -> R {
        match &self.remote {
            None => {
                let mut work = work;
                work()
            }
            Some(r) => remote::serve(r, work).await,
        }
    }

    /// [`Self::serve`] for a thread that may block (heavy work on its own pool).
    pub fn serve_blocking<R>(&self, mut work: impl FnMut() -> R) -> R {
        match &self.remote {
            None => work(),
            Some(r) => remote::serve_blocking(r, work),
        }
    }

    /// Whether the images can be reached (`/ready`): the image directory is readable, or the
    /// remote store answers. The reason names no path, bucket or endpoint.
    pub async fn reachable(&self) -> std::result::Result<(), String> {
        match &self.remote {
            Some(r) => r.probe(&self.prefix).await,
            None => {
                let images = image_directory(&self.prefix);
                // A directory on a network file system may hang: off the workers, and the
                // admin listener's deadline answers for it.
                let readable =
                    tokio::task::spawn_blocking(move || std::fs::read_dir(images).is_ok());
                match readable.await {
                    Ok(true) => Ok(()),
                    _ => Err("the image directory is not readable".to_string()),
                }
            }
        }
    }

    /// Empty the caches (SIGHUP).
    pub fn clear_caches(&self) {
        if let Some(r) = &self.remote {
            r.clear_caches();
        }
    }
}

/// The directory that `FILESYSTEM_PREFIX` names images in: the prefix itself when it ends
/// with `/`, else the directory part of it (`/images/img_` → `/images`; empty → `.`).
fn image_directory(prefix: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    if prefix.ends_with('/') {
        return PathBuf::from(prefix);
    }
    match Path::new(prefix).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_directory_is_the_prefix_or_its_directory_part() {
        use std::path::PathBuf;
        assert_eq!(image_directory("/images/"), PathBuf::from("/images/"));
        assert_eq!(image_directory("/images/img_"), PathBuf::from("/images"));
        assert_eq!(image_directory("img_"), PathBuf::from("."));
        assert_eq!(image_directory(""), PathBuf::from("."));
    }
}
