//! The server: shared state ([`App`]), the worker pool, accept loops and shutdown.
//!
//! # Concurrency model
//!
//! Connections are tasks on a tokio multi-thread runtime with `IIPSRV_WORKERS` threads (default:
//! one per core): an idle keep-alive connection (nginx keeps pools of them) costs a parked task
//! and a buffer, never a thread, so idle connections cannot starve new requests. A complete
//! request is answered by [`App::respond`] on the worker thread that read it, so CPU work is
//! bounded to the worker threads, i.e. to the cores, and a cache hit costs no thread hand-off.
//! Work that takes long (region exports) calls `tokio::task::block_in_place`, which hands the
//! worker's other connections to a fresh thread while it computes. A panic in the work is
//! caught at that edge and answered with a 500; the process keeps serving.

pub mod listen;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};

use crate::cache::memcached::Memcached;
use crate::cache::meta::MetaCache;
use crate::cache::tile::TileCache;
use crate::config::Config;
use crate::encode::{AvifCodec, EncoderSettings, Encoders};
use crate::http::{HeaderDefaults, Request, Response};
use crate::transport::{self, Limits};
use listen::Listener;

/// State shared by every connection and worker.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub headers: HeaderDefaults,
    tiles: TileCache,
    meta: MetaCache,
    memcached: Option<Memcached>,
    encoders: Encoders,
    /// The `WATERMARK` image, loaded on first use (`None`: not configured or unreadable).
    watermark: OnceLock<Option<crate::pipeline::Watermark>>,
    in_flight: AtomicUsize,
    idle: Notify,
    accesses: AtomicU64,
}

/// A cheap handle on the shared state (an `Arc`).
#[derive(Debug, Clone)]
pub struct App {
    shared: Arc<Shared>,
}

/// Counts a request as in flight until dropped (graceful shutdown waits for zero).
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl App {
    pub fn new(config: Config) -> App {
        let headers = config.header_defaults();
        crate::source::jpeg::set_decoded_cache_bytes((config.jpeg_cache_mib as usize) << 20);
        let tiles = TileCache::new(config.max_image_cache_bytes());
        let meta = MetaCache::new(config.max_metadata_cache);
        let memcached = Memcached::new(&config.memcached_servers, config.memcached_timeout);
        let encoders = Encoders::new(EncoderSettings {
            avif_codec: AvifCodec::from_config(config.avif_codec as i64),
            ..EncoderSettings::default()
        });
        App {
            shared: Arc::new(Shared {
                config,
                headers,
                tiles,
                meta,
                memcached,
                encoders,
                watermark: OnceLock::new(),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                accesses: AtomicU64::new(0),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Requests completed so far.
    pub fn accesses(&self) -> u64 {
        self.shared.accesses.load(Ordering::Relaxed)
    }

    /// The shared tile cache.
    pub fn tiles(&self) -> &TileCache {
        &self.shared.tiles
    }

    /// The shared metadata cache (opened sources by path).
    pub fn meta(&self) -> &MetaCache {
        &self.shared.meta
    }

    /// The memcached response cache, when MEMCACHED_SERVERS names servers.
    pub fn memcached(&self) -> Option<&Memcached> {
        self.shared.memcached.as_ref()
    }

    /// The encoders, configured once.
    pub fn encoders(&self) -> &Encoders {
        &self.shared.encoders
    }

    /// The watermark (`WATERMARK`), loaded once; failures are logged and disable it.
    pub fn watermark(&self) -> Option<&crate::pipeline::Watermark> {
        self.shared
            .watermark
            .get_or_init(|| {
                let c = &self.shared.config;
                if c.watermark.is_empty() {
                    return None;
                }
                match crate::pipeline::Watermark::load(
                    std::path::Path::new(&c.watermark),
                    c.watermark_opacity,
                ) {
                    Ok(w) => {
                        tracing::info!(
                            "Loaded watermark image '{}': {}x{}",
                            c.watermark,
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
        self.shared.tiles.clear();
        self.shared.meta.clear();
        // Emptying the decoded-JPEG cache: set its size to 0 and back.
        crate::source::jpeg::set_decoded_cache_bytes(0);
        crate::source::jpeg::set_decoded_cache_bytes((self.config().jpeg_cache_mib as usize) << 20);
    }

    /// Answer one request: run the protocols on the worker pool, catch panics, apply HEAD.
    pub async fn respond(&self, request: Request) -> Response {
        let shared = &*self.shared;
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(shared);
        let start = Instant::now();
        let head = request.method() == b"HEAD";

        // The work runs inline on this runtime worker (there are `IIPSRV_WORKERS` of them, one
        // per core by default): measured 2.7× the throughput of handing every request to a
        // separate pool (docs/performance.md). Long region exports move themselves off the
        // worker with `tokio::task::block_in_place`, so that I/O keeps flowing.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            crate::protocols::respond(self, &request)
        }));
        let query = || String::from_utf8_lossy(request.param("QUERY_STRING").unwrap_or_default());
        let mut response = match outcome {
            Ok(response) => {
                tracing::debug!(
                    "Total Request Time: {} microseconds for {}",
                    start.elapsed().as_micros(),
                    query()
                );
                response
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(
                    "Error: internal failure ({what}) while answering '{}'",
                    query()
                );
                Response::banner(500)
            }
        };
        if head {
            // HEAD is answered like GET without the body (docs/compatibility.md).
            response.body = bytes::Bytes::new();
        }
        shared.accesses.fetch_add(1, Ordering::Relaxed);
        response
    }

    /// Wait until no request is in flight, or until `timeout` passes. Returns whether idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.idle.notified();
            if self.shared.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.shared.in_flight.load(Ordering::Acquire) == 0;
            }
        }
    }
}

impl transport::fastcgi::Responder for App {
    fn respond(&self, request: Request) -> impl std::future::Future<Output = Response> + Send {
        App::respond(self, request)
    }
}

/// Resolve when shutdown has been signalled.
pub async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Accept FastCGI connections until shutdown.
pub async fn serve_fastcgi(
    listener: Listener,
    app: App,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Arc::new(app);
    let connections = Arc::new(Semaphore::new(app.config().max_connections));
    let allowed = app.config().fcgi_web_server_addrs.clone();
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        match accepted {
            Ok(Stream::Tcp(stream, peer)) => {
                backoff = Duration::from_millis(5);
                if let Some(allowed) = &allowed {
                    if !allowed.contains(&peer.ip()) {
                        tracing::warn!(
                            "Connection from {} refused (FCGI_WEB_SERVER_ADDRS)",
                            peer.ip()
                        );
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                spawn_connection(stream, app.clone(), limits, shutdown.clone(), permit);
            }
            Ok(Stream::Unix(stream)) => {
                backoff = Duration::from_millis(5);
                spawn_connection(stream, app.clone(), limits, shutdown.clone(), permit);
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Serve one FastCGI connection in its own task, holding its connection permit.
fn spawn_connection<S>(
    stream: S,
    app: Arc<App>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _permit = permit;
        if let Err(e) = transport::fastcgi::serve_connection(stream, app, limits, shutdown).await {
            tracing::debug!("FastCGI connection ended: {e}");
        }
    });
}

enum Stream {
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, a)| Stream::Tcp(s, a)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
    }
}
