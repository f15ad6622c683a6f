//! The metadata cache: opened image sources by file path, checked against the file's mtime, so
//! repeated requests neither reopen nor re-parse a file (`MAX_METADATA_CACHE_SIZE` entries;
//! negative = unlimited, 0 = off). Hits, misses and evictions are counted for `/metrics`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, UnitWeighter};

use super::tile::Evictions;
use crate::config::Limit;
use crate::metrics::CacheStats;
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
    cache: Option<Cache<PathBuf, CachedSource, UnitWeighter, DefaultHashBuilder, Evictions>>,
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
        MetaCache {
            cache,
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

    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }
}
