//! The admin listener (`--admin HOST:PORT`): plain HTTP/1.1 for operators and orchestrators,
//! apart from the image traffic (so it works whatever web server is in front, and a scrape
//! never queues behind image requests in a web server's FastCGI pool).
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/health` | GET, HEAD | 200 `{"status":"ok"}` while the process serves (liveness) |
//! | `/ready` | GET, HEAD | 200 when every listener is up and every readiness check passes, else 503; JSON names each check's state ([`crate::health`]) |
//! | `/metrics` | GET, HEAD | the Prometheus text format ([`crate::metrics`]) |
//! | `/cache/purge` | POST | purge everything, or one image with `?id=IDENTIFIER` ([`purge`]) |
//!
//! Any other path is 404, another method on a known path 405 with `Allow`. Bodies are JSON
//! (except `/metrics`) and name no server path or secret; responses are `Cache-Control:
//! no-store`.
//!
//! # States
//!
//! The listener accepts until `main` stops it, after the image listeners' drain (so `/ready`
//! answers 503 while requests in flight finish), at most [`MAX_CONNECTIONS`] connections at
//! once (more wait in the backlog), each a task on the runtime that also serves images:
//! `/health` and `/metrics` read atomics and never wait for image work; `/ready` runs the
//! checks concurrently, each bounded by [`crate::health::CHECK_TIMEOUT`]; a purge runs on the
//! blocking pool (memcached deletes wait on the network).

mod common;
mod purge;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Admin, Reply, error, json, reply, wrong_method};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::app::App;
use crate::health::CHECK_TIMEOUT;
use crate::metrics;

/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the admin listener until shutdown.
pub async fn serve(listener: TcpListener, app: App, mut shutdown: watch::Receiver<bool>) {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let start_time_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let admin = Arc::new(Admin {
        app,
        loopback: local.ip().is_loopback(),
        start_time_seconds,
    });
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = crate::transport::shutdown_signalled(&mut shutdown) => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::transport::shutdown_signalled(&mut shutdown) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("Admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(route(&admin, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("Admin connection: {e}"); } }
                _ = crate::transport::shutdown_signalled(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// Answer one admin request.
async fn route(admin: &Admin, req: hyper::Request<Incoming>) -> Reply {
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        "/health" if read => json(StatusCode::OK, serde_json::json!({ "status": "ok" })),
        "/ready" if read => ready(admin).await,
        "/metrics" if read => reply(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            admin.app.metrics_text(admin.start_time_seconds),
        ),
        "/health" | "/ready" | "/metrics" => wrong_method("GET, HEAD"),
        "/cache/purge" if req.method() == Method::POST => purge::purge(admin, &req).await,
        "/cache/purge" => wrong_method("POST"),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `/ready`: the listeners, then every check (concurrently, each with a deadline).
async fn ready(admin: &Admin) -> Reply {
    let readiness = admin.app.shared().readiness();
    let mut states = serde_json::Map::new();
    let mut ready = readiness.listeners_up();
    states.insert(
        "listeners".into(),
        (if ready { "ok" } else { "not accepting" }).into(),
    );
    let running: Vec<_> = readiness
        .checks()
        .iter()
        .map(|c| {
            (
                c.name(),
                tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, c.run())),
            )
        })
        .collect();
    for (name, handle) in running {
        let state = match handle.await {
            Ok(Ok(Ok(()))) => "ok".to_string(),
            Ok(Ok(Err(reason))) => reason,
            Ok(Err(_)) => "timed out".to_string(),
            Err(_) => "check failed".to_string(),
        };
        ready &= state == "ok";
        states.insert(name.into(), state.into());
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        serde_json::json!({ "ready": ready, "checks": states }),
    )
}
