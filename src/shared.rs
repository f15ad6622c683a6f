//! The state every worker shares, below the protocols: the configuration, the response header
//! defaults, the caches, the encoders and the watermark. Built once at start-up by
//! [`crate::app::App`]; the protocols, [`crate::open_image`] and [`crate::render`] read it
//! through `&Shared`.

use std::sync::OnceLock;

use crate::cache::memcached::Memcached;
use crate::cache::meta::MetaCache;
use crate::cache::tile::TileCache;
use crate::config::Config;
use crate::encode::{EncoderSettings, Encoders};
use crate::health::{Check, Readiness};
use crate::http::HeaderDefaults;
use crate::metrics::{MemcachedStats, Snapshot};
use crate::pipeline::Watermark;
use crate::source::resolve::{self, Found};
use crate::storage::Storage;

/// State shared by every connection and worker.
#[derive(Debug)]
pub struct Shared {
    config: Config,
    headers: HeaderDefaults,
    tiles: TileCache,
    meta: MetaCache,
    memcached: Option<Memcached>,
    encoders: Encoders,
    /// Where images are: local files or object storage (FILESYSTEM_PREFIX).
    storage: Storage,
    /// The `WATERMARK` image, loaded on first use (`None`: not configured or unreadable).
    watermark: OnceLock<Option<Watermark>>,
    /// The listeners' state and the checks of the configured dependencies (`/ready`).
    readiness: Readiness,
    /// The per-process part of image `ETag`s (`protocols/validators.rs`).
    etag_seed: [u8; 32],
}

/// The per-process part of every image `ETag` (`protocols/validators.rs`): this version and
/// the settings that change the bytes of an image response (qualities, watermark,
/// interpolation, ICC, size limits, JPEG2000 layers). The Debug forms are stable for a given
/// build, and a new version changes the seed anyway.
fn etag_seed(config: &Config) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"iipsrv-rs ");
    h.update(crate::CRATE_VERSION.as_bytes());
    h.update(
        format!(
            "\n{:?}\n{:?}\n{:?}",
            config.output, config.exports, config.decoding
        )
        .as_bytes(),
    );
    h.finalize().into()
}

/// What a purge dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Tiles (encoded and raw) dropped from the tile cache.
    pub tiles: u64,
    /// Opened files dropped from the metadata cache.
    pub metadata: u64,
    /// memcached entries deleted (those this process stored).
    pub memcached: u64,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let headers = config.header_defaults();
        crate::source::jpeg::set_decoded_cache_bytes(
            (config.caches.decoded_jpeg_mib as usize) << 20,
        );
        let tiles = TileCache::new(config.max_image_cache_bytes());
        let meta = MetaCache::new(config.caches.metadata_entries);
        let memcached = Memcached::new(
            &config.caches.memcached_servers,
            config.caches.memcached_timeout,
        );
        let encoders = Encoders::new(EncoderSettings {
            avif_codec: config.output.avif_codec,
            ..EncoderSettings::default()
        });
        // main checks the prefix first and refuses to start with a bad one; here a store that
        // cannot be built leaves every image not found.
        let storage = Storage::new(&config.files.prefix, config.storage).unwrap_or_else(|e| {
            tracing::error!("{e}");
            Storage::local(&config.files.prefix)
        });
        let etag_seed = etag_seed(&config);
        let mut readiness = Readiness::default();
        let store = storage.clone();
        readiness.add(Check::new("storage", move || {
            let store = store.clone();
            Box::pin(async move { store.reachable().await })
        }));
        if let Some(mc) = &memcached {
            let mc = mc.clone();
            readiness.add(Check::new("memcached", move || {
                let (up, total) = mc.servers_up();
                Box::pin(async move {
                    if up == total {
                        Ok(())
                    } else {
                        Err(format!("{} of {total} servers unreachable", total - up))
                    }
                })
            }));
        }
        Shared {
            config,
            headers,
            tiles,
            meta,
            memcached,
            encoders,
            storage,
            watermark: OnceLock::new(),
            readiness,
            etag_seed,
        }
    }

    /// The per-process part of image `ETag`s.
    pub(crate) fn etag_seed(&self) -> &[u8; 32] {
        &self.etag_seed
    }

    /// The listeners' state and the readiness checks (`/ready`).
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The readiness checks, to add one at start-up (before the state is shared).
    pub fn readiness_mut(&mut self) -> &mut Readiness {
        &mut self.readiness
    }

    /// The cache values of `/metrics` (the rest of the snapshot is the caller's).
    pub(crate) fn metrics_snapshot(&self) -> Snapshot {
        Snapshot {
            tile_cache: self.tiles.stats(),
            metadata_cache: self.meta.stats(),
            memcached: self.memcached.as_ref().map(|mc| {
                let s = mc.stats();
                let (up, total) = mc.servers_up();
                MemcachedStats {
                    hits: s.hits,
                    misses: s.misses,
                    errors: s.errors,
                    stale: s.stale,
                    stored: s.stored,
                    dropped: s.dropped,
                    servers: total as u64,
                    servers_up: up as u64,
                }
            }),
            ..Snapshot::default()
        }
    }

    /// Purge everything: the in-process caches (as SIGHUP) and the memcached entries this
    /// process stored. Blocks on memcached: call it off the request path.
    pub fn purge_all(&self) -> Purged {
        let counts = (self.tiles.stats().entries, self.meta.stats().entries);
        self.clear_caches();
        Purged {
            tiles: counts.0,
            metadata: counts.1,
            memcached: self.memcached.as_ref().map_or(0, |mc| mc.purge(None)),
        }
    }

    /// Purge one image, by its key (the identifier as decoded, without `FILESYSTEM_PREFIX` or
    /// `FILESYSTEM_SUFFIX`): its tiles, its opened file(s) (a sequence's every view) and the
    /// memcached entries this process stored for it. Blocks on memcached.
    pub fn purge_image(&self, key: &[u8]) -> Purged {
        let tiles = self.tiles.purge(key);
        let metadata = match resolve::find(&self.storage, &self.config, key) {
            Ok(Found::File { path, .. }) => u64::from(self.meta.remove(&path)),
            Ok(Found::Sequence(seq)) => {
                let mut n = u64::from(self.meta.remove(&seq.default_path));
                for &h in &seq.horizontal {
                    for &v in &seq.vertical {
                        n += u64::from(self.meta.remove(&seq.path(h, v)));
                    }
                }
                n
            }
            // Gone: nothing is served from its cached source any more (the stat fails first).
            Err(_) => 0,
        };
        Purged {
            tiles,
            metadata,
            memcached: self.memcached.as_ref().map_or(0, |mc| mc.purge(Some(key))),
        }
    }

    /// Where images are read from.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The header lines every response takes from the configuration (CORS, Cache-Control).
    pub fn headers(&self) -> &HeaderDefaults {
        &self.headers
    }

    /// The shared tile cache.
    pub(crate) fn tiles(&self) -> &TileCache {
        &self.tiles
    }

    /// The shared metadata cache (opened sources by path).
    pub(crate) fn meta(&self) -> &MetaCache {
        &self.meta
    }

    /// The memcached response cache, when MEMCACHED_SERVERS names servers.
    pub fn memcached(&self) -> Option<&Memcached> {
        self.memcached.as_ref()
    }

    /// The encoders, configured once.
    pub fn encoders(&self) -> &Encoders {
        &self.encoders
    }

    /// The watermark (`WATERMARK`), loaded once; failures are logged and disable it.
    pub(crate) fn watermark(&self) -> Option<&Watermark> {
        self.watermark
            .get_or_init(|| {
                let c = &self.config;
                if c.output.watermark.is_empty() {
                    return None;
                }
                match Watermark::load(
                    std::path::Path::new(&c.output.watermark),
                    c.output.watermark_opacity,
                ) {
                    Ok(w) => {
                        tracing::info!(
                            "Loaded watermark image '{}': {}x{}",
                            c.output.watermark,
                            w.width,
                            w.height
                        );
                        Some(w)
                    }
                    Err(e) => {
                        tracing::error!("Unable to load watermark: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Empty the in-process caches (SIGHUP).
    pub fn clear_caches(&self) {
        self.tiles.clear();
        self.meta.clear();
        self.storage.clear_caches();
        // Emptying the decoded-JPEG cache: set its size to 0 and back.
        crate::source::jpeg::set_decoded_cache_bytes(0);
        crate::source::jpeg::set_decoded_cache_bytes(
            (self.config.caches.decoded_jpeg_mib as usize) << 20,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_seed_changes_with_output_settings_only() {
        let a = Config::default();
        let mut b = Config::default();
        b.output.jpeg_quality += 1;
        assert_ne!(etag_seed(&a), etag_seed(&b));
        let mut c = Config::default();
        c.logging.verbosity = 5;
        assert_eq!(etag_seed(&a), etag_seed(&c));
    }
}
