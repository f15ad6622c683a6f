//! The metadata cache: opened image sources by file path, checked against the file's mtime, so
//! repeated requests neither reopen nor re-parse a file (`MAX_METADATA_CACHE_SIZE` entries;
//! negative = unlimited, 0 = off). Hits, misses and evictions are counted for `/metrics`.
//!
//! Files that fail to open are remembered too, for [`FAILURE_TTL`] and the same mtime, so a
//! broken file is not parsed again by every request for it (a flood of requests for a corrupt
//! file costs a lookup each). The time limit lets a failure that had nothing to do with the
//! file's bytes (permissions, too many open files) heal without a SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, UnitWeighter};

use super::tile::Evictions;
use crate::config::Limit;
use crate::metrics::CacheStats;
use crate::source::{ImageSource, SourceError};

/// How long a failed open is answered from memory.
pub(crate) const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Most failed opens remembered.
pub(crate) const MAX_FAILURES: usize = 1024;

/// What the cache holds per file.
#[derive(Debug, Clone)]
pub(crate) struct CachedSource {
    pub mtime: SystemTime,
    pub source: Arc<dyn ImageSource>,
}

/// A remembered failure to open a file.
#[derive(Debug, Clone)]
struct Failure {
    mtime: SystemTime,
    at: Instant,
    error: SourceError,
}

/// The shared metadata cache.
#[derive(Debug)]
pub(crate) struct MetaCache {
    cache: Option<Cache<PathBuf, CachedSource, UnitWeighter, DefaultHashBuilder, Evictions>>,
    failures: Option<Cache<PathBuf, Failure>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Evictions,
}

impl MetaCache {
    /// A cache of at most `entries` sources (MAX_METADATA_CACHE_SIZE); `Max(0)` is off.
    pub(crate) fn new(entries: Limit) -> MetaCache {
        let evictions = Evictions::default();
        let with = |n: usize| {
            Cache::with(
                n,
                n as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                evictions.clone(),
            )
        };
        let cache = match entries {
            Limit::Max(0) => None,
            Limit::Unlimited => Some(with(1 << 20)),
            Limit::Max(n) => Some(with(n.min(1 << 24) as usize)),
        };
        let failures = cache.as_ref().map(|_| Cache::new(MAX_FAILURES));
        MetaCache {
            cache,
            failures,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    /// The source for `path` if cached for this mtime.
    pub(crate) fn get(&self, path: &PathBuf, mtime: SystemTime) -> Option<Arc<dyn ImageSource>> {
        let cache = self.cache.as_ref()?;
        let found = cache
            .get(path)
            .filter(|e| e.mtime == mtime)
            .map(|e| e.source);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Drop the source of `path`; whether there was one.
    pub(crate) fn remove(&self, path: &Path) -> bool {
        if let Some(f) = &self.failures {
            f.remove(path);
        }
        self.cache
            .as_ref()
            .is_some_and(|c| c.remove(path).is_some())
    }

    /// Counters and size for `/metrics` (the cache counts entries, not bytes).
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.count(),
            entries: self.cache.as_ref().map_or(0, |c| c.len() as u64),
            bytes: 0,
            capacity_bytes: 0,
        }
    }

    pub(crate) fn insert(&self, path: PathBuf, mtime: SystemTime, source: Arc<dyn ImageSource>) {
        if let Some(c) = &self.cache {
            c.insert(path, CachedSource { mtime, source });
        }
    }

    /// Open `path` (of modification time `mtime`) with `open` and cache the source; a failure
    /// is remembered and returned again for [`FAILURE_TTL`] while the file keeps its mtime.
    pub(crate) fn open(
        &self,
        path: &Path,
        mtime: SystemTime,
        open: impl FnOnce() -> Result<Arc<dyn ImageSource>, SourceError>,
    ) -> Result<Arc<dyn ImageSource>, SourceError> {
        if let Some(f) = self.failures.as_ref().and_then(|c| c.get(path)) {
            if f.mtime == mtime && f.at.elapsed() < FAILURE_TTL {
                return Err(f.error);
            }
        }
        match open() {
            Ok(source) => {
                self.insert(path.to_path_buf(), mtime, source.clone());
                Ok(source)
            }
            Err(error) => {
                if let Some(c) = &self.failures {
                    let at = Instant::now();
                    let failure = Failure {
                        mtime,
                        at,
                        error: error.clone(),
                    };
                    c.insert(path.to_path_buf(), failure);
                }
                Err(error)
            }
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
        if let Some(c) = &self.failures {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::source::ImageFormat;
    use crate::source::error::{Corrupt, SourceErrorKind};

    fn failing(calls: &AtomicUsize) -> Result<Arc<dyn ImageSource>, SourceError> {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(SourceError::corrupt(ImageFormat::Tiff, "broken"))
    }

    #[test]
    fn a_failed_open_is_remembered_for_the_same_mtime() {
        let cache = MetaCache::new(Limit::Max(10));
        let calls = AtomicUsize::new(0);
        let path = Path::new("/images/broken.tif");
        let t0 = SystemTime::UNIX_EPOCH;
        for _ in 0..3 {
            let e = cache.open(path, t0, || failing(&calls)).unwrap_err();
            assert_eq!(
                e.kind,
                SourceErrorKind::Corrupt(Corrupt::Structure("broken".into()))
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A new version of the file is opened again.
        let t1 = t0 + Duration::from_secs(1);
        assert!(cache.open(path, t1, || failing(&calls)).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // SIGHUP forgets failures.
        cache.clear();
        assert!(cache.open(path, t1, || failing(&calls)).is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn without_a_metadata_cache_nothing_is_remembered() {
        let cache = MetaCache::new(Limit::Max(0));
        let calls = AtomicUsize::new(0);
        let path = Path::new("/images/broken.tif");
        for _ in 0..2 {
            assert!(
                cache
                    .open(path, SystemTime::UNIX_EPOCH, || failing(&calls))
                    .is_err()
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
