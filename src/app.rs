//! The application as the transports see it: one call, [`App::respond`], turns a request into
//! a response. It counts the request as in flight (graceful shutdown waits for zero), runs the
//! protocols inline on the worker thread, catches a panic and answers it with a 500, drops
//! the body of a HEAD response, and records the request: in the metrics ([`crate::metrics`],
//! with the labels the protocols noted) and, with `IIPSRV_LOG_FORMAT=json`, as one JSON log
//! line at VERBOSITY 2 and above.
//!
//! Heavy work ([`Answer::Heavy`]: a large region export, classified by the protocols before
//! anything is decoded) goes through the [`Scheduler`]: it waits, without holding the worker,
//! until the memory budget admits it (or is answered 503 with `Retry-After`), runs on the heavy
//! pool, and its response comes back to this task, so it is written by the same connection.
//! The bytes of the output stay reserved until the transport has written and dropped the body.
//!
//! Only the accept loops ([`crate::server`]) and `main` use it; everything below the protocols
//! works on [`Shared`], the state every worker shares.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use bytes::Bytes;

use crate::config::{Config, LogFormat};
use crate::http::{Request, Response};
use crate::metrics::{self, note};
use crate::protocols::{Answer, Deferred};
use crate::schedule::{self, Refusal, Reservation, Scheduler};
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
    schedule: Scheduler,
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
        let l = &config.load;
        let schedule = Scheduler::new(schedule::Settings {
            budget_bytes: l.memory_budget_bytes,
            threads: l.heavy_threads,
            nice: l.heavy_nice,
            queue_length: l.queue_length,
            queue_timeout: Duration::from_secs(l.queue_timeout_secs),
        });
        tracing::info!(
            "Heavy requests: {}, {} threads, at most {} waiting for {} s\n",
            match l.memory_budget_bytes {
                0 => "no memory budget".to_string(),
                b => format!("memory budget of {} MiB", b >> 20),
            },
            l.heavy_threads,
            l.queue_length,
            l.queue_timeout_secs
        );
        App {
            inner: Arc::new(Inner {
                shared: Shared::new(config),
                schedule,
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

        // Parsing, planning and light work run inline on this runtime worker (there are
        // `IIPSRV_WORKERS` of them, one per core by default): measured 2.7× the throughput of
        // handing every request to a separate pool (docs/performance.md). Heavy work waits for
        // admission here, asynchronously, and runs on the heavy pool.
        //
        // With object storage, the light part runs in passes with asynchronous fetches in
        // between, so that waiting for storage never holds this worker (`storage::collect`).
        // A pass may run on another worker thread than the one before: each begins its own
        // note, and the last one's is taken on the thread that ran it, before any other wait.
        // Heavy work reads what it still needs from storage on its own pool's thread.
        let outcome = inner
            .shared
            .storage()
            .serve(|| {
                note::begin();
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    crate::protocols::answer(&inner.shared, &request)
                }))
            })
            .await;
        let (noted, identifier) = note::take();
        let outcome = match outcome {
            Ok(Answer::Ready(r)) => Ok(r),
            Ok(Answer::Heavy(work)) => self.heavy(work).await,
            Err(panic) => Err(panic),
        };
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

    /// Admit heavy work, run it on the heavy pool, and keep the bytes of its output reserved
    /// until the body is dropped; 503 when not admitted.
    async fn heavy(&self, work: Deferred) -> std::thread::Result<Response> {
        let inner = self.inner.clone();
        let bytes = work.bytes();
        match self
            .inner
            .schedule
            .run(bytes, move || work.run(&inner.shared))
            .await
        {
            Err(refusal) => {
                let waited = match refusal {
                    Refusal::QueueFull => "the queue of heavy requests is full",
                    Refusal::Timeout => "no memory within the queue timeout",
                    Refusal::ShuttingDown => "the server is shutting down",
                };
                tracing::info!(
                    "Heavy request of {} KiB not admitted: {waited}",
                    bytes >> 10
                );
                let retry = self.inner.schedule.budget().timeout().as_secs();
                Ok(crate::protocols::busy(&self.inner.shared, retry))
            }
            Ok(done) => {
                let mut response = done.outcome?;
                let mut reservation = done.reservation;
                reservation.keep_only(response.body.len() as u64);
                if reservation.bytes() > 0 {
                    let body = std::mem::take(&mut response.body);
                    response.body = Bytes::from_owner(Held {
                        body,
                        _reservation: reservation,
                    });
                }
                Ok(response)
            }
        }
    }

    /// Shutdown has begun and gives requests `timeout` to finish: heavy requests keep being
    /// admitted in their order during the first [`SHUTDOWN_ADMISSION_SHARE`] of it; those
    /// still waiting then (and later ones) are answered 503 with `Retry-After`, so that they
    /// get a complete answer and the work admitted last has the rest of the time to finish.
    pub fn begin_shutdown(&self, timeout: Duration) {
        let admitting = timeout.mul_f64(SHUTDOWN_ADMISSION_SHARE);
        self.inner
            .schedule
            .budget()
            .close_at(tokio::time::Instant::now() + admitting);
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

/// The share of `IIPSRV_SHUTDOWN_TIMEOUT` during which heavy requests waiting for memory are
/// still admitted after a shutdown signal ([`App::begin_shutdown`]).
pub const SHUTDOWN_ADMISSION_SHARE: f64 = 0.5;

/// A response body that holds the budget's bytes for it until it is dropped.
struct Held {
    body: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Responder for App {
    fn respond(&self, request: Request) -> impl std::future::Future<Output = Response> + Send {
        App::respond(self, request)
    }
}
