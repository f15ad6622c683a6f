//! The tile cache: encoded and raw tiles, bounded by bytes (`MAX_IMAGE_CACHE_SIZE` × 1,024,000),
//! shared by every worker (`docs/behaviour/cache.md` §1–§3).
//!
//! The key has iipsrv's fields (image key, resolution, tile, horizontal and vertical angle,
//! encoding, quality) plus the JPEG2000 layer count, which changes the pixels. The file's mtime
//! is stored with the entry and checked on every lookup, so a changed file is never served
//! stale.
//!
//! Hits, misses and evictions are counted (relaxed atomics) for `/metrics`; [`TileCache::purge`]
//! drops the tiles of one image (the admin listener's purge).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};

use crate::metrics::CacheStats;

use crate::encode::OutputFormat;
use crate::image::RawImage;

/// The encoding of a cached tile (iipsrv's enum values, kept for log compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Encoding {
    Raw = 1,
    Tiff = 2,
    Jp2 = 3,
    Jpeg = 4,
    Png = 6,
    Webp = 7,
    Avif = 8,
    /// Not in iipsrv (IIIF extensions).
    Gif = 9,
    Pdf = 10,
}

impl From<OutputFormat> for Encoding {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Jpeg => Encoding::Jpeg,
            OutputFormat::Png => Encoding::Png,
            OutputFormat::Webp => Encoding::Webp,
            OutputFormat::Avif => Encoding::Avif,
            OutputFormat::Tiff => Encoding::Tiff,
            OutputFormat::Gif => Encoding::Gif,
            OutputFormat::Jp2 => Encoding::Jp2,
            OutputFormat::Pdf => Encoding::Pdf,
        }
    }
}

/// Which tile, in which form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TileKey {
    /// The decoded, filtered identifier (without FILESYSTEM_PREFIX/SUFFIX).
    pub image: Arc<[u8]>,
    pub resolution: u32,
    pub tile: u32,
    /// Horizontal angle or stack page.
    pub horizontal: u32,
    /// Vertical angle (90 unless set by SDS/JTLS).
    pub vertical: u32,
    /// JPEG2000 quality layers asked for (0 = default).
    pub layers: u32,
    pub encoding: Encoding,
    /// Encoder quality (0 for raw tiles).
    pub quality: i32,
}

/// A cached tile.
#[derive(Debug, Clone)]
pub(crate) enum TileData {
    /// A complete encoded file (JPEG, WebP, …).
    Encoded(Bytes),
    /// Decoded pixels.
    Raw(Arc<RawImage>),
}

impl TileData {
    fn bytes(&self) -> usize {
        match self {
            TileData::Encoded(b) => b.len(),
            TileData::Raw(r) => {
                let per = match r.samples {
                    crate::image::Samples::U8(_) => 1,
                    crate::image::Samples::U16(_) => 2,
                    _ => 4,
                };
                r.samples.len() * per
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    mtime: SystemTime,
    data: TileData,
}

/// iipsrv's per-entry overhead, for comparable accounting.
const OVERHEAD_BYTES: u64 = 368;

#[derive(Debug, Clone)]
struct ByBytes;

impl Weighter<TileKey, Entry> for ByBytes {
    fn weight(&self, key: &TileKey, entry: &Entry) -> u64 {
        entry.data.bytes() as u64 + key.image.len() as u64 + OVERHEAD_BYTES
    }
}

/// Counts the entries the cache drops to stay within its capacity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evictions(Arc<AtomicU64>);

impl<K, V> Lifecycle<K, V> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, _val: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Evictions {
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

type Tiles = Cache<TileKey, Entry, ByBytes, DefaultHashBuilder, Evictions>;

/// The shared tile cache; `None` inside when `MAX_IMAGE_CACHE_SIZE` is 0.
#[derive(Debug)]
pub(crate) struct TileCache {
    cache: Option<Tiles>,
    capacity_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Evictions,
}

impl TileCache {
    /// A cache holding at most `capacity_bytes` (0 disables it).
    pub(crate) fn new(capacity_bytes: u64) -> TileCache {
        let evictions = Evictions::default();
        let cache = (capacity_bytes > 0).then(|| {
            // quick_cache wants an estimate of the entry count: assume ~32 KB tiles.
            let items = (capacity_bytes / 32_768).clamp(16, 1 << 22) as usize;
            Cache::with(
                items,
                capacity_bytes,
                ByBytes,
                DefaultHashBuilder::default(),
                evictions.clone(),
            )
        });
        TileCache {
            cache,
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    /// A tile, if cached for this exact file version.
    pub(crate) fn get(&self, key: &TileKey, mtime: SystemTime) -> Option<TileData> {
        let cache = self.cache.as_ref()?;
        let found = cache.get(key).filter(|e| {
            let current = e.mtime == mtime;
            if !current {
                tracing::trace!("TileManager :: Tile has different timestamp ... updating");
            }
            current
        });
        match found {
            Some(e) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(
                    "TileManager :: Tile cache hit {}:{}",
                    key.resolution,
                    key.tile
                );
                Some(e.data)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Drop every tile of the image `key` (its raw and encoded tiles, every view and
    /// resolution); returns how many were dropped.
    pub(crate) fn purge(&self, key: &[u8]) -> u64 {
        let Some(cache) = &self.cache else { return 0 };
        let doomed: Vec<TileKey> = cache
            .iter()
            .filter(|(k, _)| &*k.image == key)
            .map(|(k, _)| k)
            .collect();
        doomed.iter().filter(|k| cache.remove(*k).is_some()).count() as u64
    }

    /// Counters and sizes for `/metrics`.
    pub(crate) fn stats(&self) -> CacheStats {
        let (entries, bytes) = self
            .cache
            .as_ref()
            .map_or((0, 0), |c| (c.len() as u64, c.weight()));
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.count(),
            entries,
            bytes,
            capacity_bytes: self.capacity_bytes,
        }
    }

    /// Store a tile.
    pub(crate) fn insert(&self, key: TileKey, mtime: SystemTime, data: TileData) {
        if crate::storage::collect::pending() {
            // A pass that is waiting for storage is thrown away: cache nothing it made.
            return;
        }
        if let Some(c) = &self.cache {
            c.insert(key, Entry { mtime, data });
        }
    }

    /// Empty the cache (SIGHUP).
    pub(crate) fn clear(&self) {
        if let Some(c) = &self.cache {
            c.clear();
        }
    }

    /// Entries and accounted bytes.
    #[cfg(test)]
    pub fn usage(&self) -> (usize, u64) {
        self.cache
            .as_ref()
            .map(|c| (c.len(), c.weight()))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tile: u32) -> TileKey {
        TileKey {
            image: Arc::from(&b"x.tif"[..]),
            resolution: 0,
            tile,
            horizontal: 0,
            vertical: 90,
            layers: 0,
            encoding: Encoding::Jpeg,
            quality: 75,
        }
    }

    #[test]
    fn hit_needs_same_mtime() {
        let c = TileCache::new(1_024_000);
        let t0 = SystemTime::UNIX_EPOCH;
        let t1 = t0 + std::time::Duration::from_secs(1);
        c.insert(key(1), t0, TileData::Encoded(Bytes::from_static(b"abc")));
        assert!(matches!(c.get(&key(1), t0), Some(TileData::Encoded(_))));
        assert!(c.get(&key(1), t1).is_none(), "a changed file is a miss");
        assert!(c.get(&key(2), t0).is_none());
        let stats = c.stats();
        assert_eq!((stats.hits, stats.misses), (1, 2));
    }

    #[test]
    fn purge_drops_one_image_only() {
        let c = TileCache::new(1_024_000);
        let t0 = SystemTime::UNIX_EPOCH;
        let mut other = key(1);
        other.image = Arc::from(&b"other.tif"[..]);
        c.insert(key(1), t0, TileData::Encoded(Bytes::from_static(b"a")));
        c.insert(key(2), t0, TileData::Encoded(Bytes::from_static(b"b")));
        c.insert(
            other.clone(),
            t0,
            TileData::Encoded(Bytes::from_static(b"c")),
        );
        assert_eq!(c.purge(b"x.tif"), 2);
        assert!(c.get(&key(1), t0).is_none());
        assert!(c.get(&other, t0).is_some());
        assert_eq!(c.purge(b"x.tif"), 0);
    }

    #[test]
    fn bounded_by_bytes_and_disabled_at_zero() {
        let c = TileCache::new(100_000);
        for i in 0..100 {
            c.insert(
                key(i),
                SystemTime::UNIX_EPOCH,
                TileData::Encoded(Bytes::from(vec![0u8; 10_000])),
            );
        }
        let (_, bytes) = c.usage();
        assert!(bytes <= 100_000, "{bytes}");
        assert!(c.stats().evictions > 0, "the cache made room");
        let off = TileCache::new(0);
        off.insert(
            key(1),
            SystemTime::UNIX_EPOCH,
            TileData::Encoded(Bytes::from_static(b"x")),
        );
        assert!(off.get(&key(1), SystemTime::UNIX_EPOCH).is_none());
    }
}
