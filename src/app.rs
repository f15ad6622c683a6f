//! The application as the transports see it: one call, [`App::respond`], turns a request into
//! a response. It counts the request as in flight (graceful shutdown waits for zero), runs the
//! protocols inline on the worker thread, catches a panic and answers it with a 500, drops
//! the body of a HEAD response, and records the request: in the metrics ([`crate::metrics`],
//! with the labels the protocols noted) and, with `IIPSRV_LOG_FORMAT=json`, as one JSON log
//! line at VERBOSITY 2 and above.
//!
//! Only the accept loops ([`crate::server`]) and `main` use it; everything below the protocols
//! works on [`Shared`], the state every worker shares.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::{Config, LogFormat};
use crate::http::{Request, Response};
use crate::metrics::{self, note};
use crate::shared::Shared;
use crate::transport::Responder;

/// A cheap handle on the application (an `Arc`).
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Shared,
    in_flight: AtomicUsize,
    idle: Notify,
    accesses: AtomicU64,
}

/// Counts a request as in flight until dropped (graceful shutdown waits for zero).
struct InFlight<'a>(&'a Inner);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl App {
    pub fn new(config: Config) -> App {
        App {
            inner: Arc::new(Inner {
                shared: Shared::new(config),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                accesses: AtomicU64::new(0),
            }),
        }
    }

    /// The state the protocols work with.
    pub fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub fn config(&self) -> &Config {
        self.inner.shared.config()
    }

    /// Requests completed so far.
    pub fn accesses(&self) -> u64 {
        self.inner.accesses.load(Ordering::Relaxed)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// The text of `/metrics`: the recorded metrics and the caches' values now.
    pub fn metrics_text(&self, start_time_seconds: f64) -> String {
        let mut snapshot = self.inner.shared.metrics_snapshot();
        snapshot.in_flight = self.in_flight() as u64;
        snapshot.start_time_seconds = start_time_seconds;
        metrics::render(&snapshot)
    }

    /// Answer one request: run the protocols on this worker, catch panics, apply HEAD.
    pub async fn respond(&self, request: Request) -> Response {
        let inner = &*self.inner;
        inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(inner);
        let start = Instant::now();
        let head = request.method() == b"HEAD";

        // The work runs inline on this runtime worker (there are `IIPSRV_WORKERS` of them, one
        // per core by default): measured 2.7× the throughput of handing every request to a
        // separate pool (docs/performance.md). Long region exports move themselves off the
        // worker with `tokio::task::block_in_place`, so that I/O keeps flowing.
        // With object storage, the work runs in passes with asynchronous fetches in between, so
        // that waiting for storage never holds this worker (`storage::collect`). A pass may run
        // on another worker thread than the one before: each begins its own note, and the last
        // one's is taken on the thread that ran it.
        let outcome = inner
            .shared
            .storage()
            .serve(|| {
                note::begin();
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    crate::protocols::respond(&inner.shared, &request)
                }))
            })
            .await;
        let (noted, identifier) = note::take();
        let json = inner.shared.config().logging.format == LogFormat::Json;
        let query = || String::from_utf8_lossy(request.param("QUERY_STRING").unwrap_or_default());
        let mut response = match outcome {
            Ok(response) => {
                if !json {
                    tracing::debug!(
                        "Total Request Time: {} microseconds for {}",
                        start.elapsed().as_micros(),
                        query()
                    );
                }
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
        let elapsed = start.elapsed();
        let status = response.status();
        metrics::request(noted, status, response.body.len() as u64, elapsed);
        if json {
            tracing::debug!(
                target: "iipsrv::request",
                method = %String::from_utf8_lossy(request.method()),
                protocol = noted.protocol.label(),
                identifier = %identifier.as_deref().map(String::from_utf8_lossy).unwrap_or_default(),
                kind = noted.kind.label(),
                format = noted.format.label(),
                status,
                bytes = response.body.len() as u64,
                duration_ms = elapsed.as_secs_f64() * 1e3,
                request = %String::from_utf8_lossy(
                    request
                        .param("REQUEST_URI")
                        .or_else(|| request.param("QUERY_STRING"))
                        .unwrap_or_default()
                ),
                "request"
            );
        }
        inner.accesses.fetch_add(1, Ordering::Relaxed);
        response
    }

    /// Wait until no request is in flight, or until `timeout` passes. Returns whether idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.inner.in_flight.load(Ordering::Acquire) == 0;
            }
        }
    }
}

impl Responder for App {
    fn respond(&self, request: Request) -> impl std::future::Future<Output = Response> + Send {
        App::respond(self, request)
    }
}
