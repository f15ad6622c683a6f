//! The metadata cache: opened image sources by file path, checked against the file's mtime, so
//! repeated requests neither reopen nor re-parse a file (`MAX_METADATA_CACHE_SIZE` entries;
//! negative = unlimited, 0 = off).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use quick_cache::sync::Cache;

use crate::config::Limit;
use crate::source::ImageSource;

/// What the cache holds per file.
#[derive(Debug, Clone)]
pub(crate) struct CachedSource {
    pub mtime: SystemTime,
    pub source: Arc<dyn ImageSource>,
}

/// The shared metadata cache.
#[derive(Debug)]
pub(crate) struct MetaCache {
    cache: Option<Cache<PathBuf, CachedSource>>,
}

impl MetaCache {
    /// A cache of at most `entries` sources (MAX_METADATA_CACHE_SIZE); `Max(0)` is off.
    pub(crate) fn new(entries: Limit) -> MetaCache {
        let cache = match entries {
            Limit::Max(0) => None,
            Limit::Unlimited => Some(Cache::new(1 << 20)),
            Limit::Max(n) => Some(Cache::new(n.min(1 << 24) as usize)),
        };
        MetaCache { cache }
    }

    /// The source for `path` if cached for this mtime.
    pub(crate) fn get(&self, path: &PathBuf, mtime: SystemTime) -> Option<Arc<dyn ImageSource>> {
        let e = self.cache.as_ref()?.get(path)?;
        (e.mtime == mtime).then_some(e.source)
    }

    pub(crate) fn insert(&self, path: PathBuf, mtime: SystemTime, source: Arc<dyn ImageSource>) {
        if crate::storage::collect::pending() {
            // A pass that is waiting for storage is thrown away: cache nothing it made.
            return;
        }
        if let Some(c) = &self.cache {
            c.insert(path, CachedSource { mtime, source });
        }
    }

    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }
}
