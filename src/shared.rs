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
use crate::http::HeaderDefaults;
use crate::pipeline::Watermark;
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
        Shared {
            config,
            headers,
            tiles,
            meta,
            memcached,
            encoders,
            storage,
            watermark: OnceLock::new(),
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
