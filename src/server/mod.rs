//! The accept loops: FastCGI on `--bind` or the socket on fd 0 ([`serve_fastcgi`]), plain
//! HTTP on `--http` ([`serve_http`]), each until shutdown. Every accepted connection is a task
//! that a transport serves with the [`App`]; the loops only depend on the app and the
//! transports.
//!
//! # Concurrency model
//!
//! Connections are tasks on a tokio multi-thread runtime with `IIPSRV_WORKERS` threads (default:
//! one per core): an idle keep-alive connection (nginx keeps pools of them) costs a parked task
//! and a buffer, never a thread, so idle connections cannot starve new requests. A complete
//! request is answered by [`App::respond`] on the worker thread that read it, so CPU work is
//! bounded to the worker threads, i.e. to the cores, and a cache hit costs no thread hand-off.
//! Heavy work (large region exports) waits for the memory budget without holding the worker
//! and runs on the low-priority heavy pool ([`crate::schedule`]), so light requests never wait
//! behind it. A panic in the work is caught and answered with a 500; the process keeps
//! serving. Every connection's stream drops the connection when a write makes no progress
//! for `IIPSRV_WRITE_TIMEOUT` seconds.

pub mod listen;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::app::App;
use crate::metrics;
use crate::transport::{self, ConnectionGuard, Connections, Limits, shutdown_signalled};
use listen::Listener;

/// The first pause after a failed `accept`; it doubles up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// The longest pause after failed `accept`s.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What the task of an accepted connection holds until it ends: its place among the
/// `max_connections`, and its count among the open connections that shutdown waits for.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    _open: ConnectionGuard,
}

/// Accept connections until shutdown: at most `max_connections` at once (a permit is taken
/// before `accept`), a failed `accept` (EMFILE and friends) backs off instead of spinning, and
/// each accepted stream goes to `serve` with its permit and its guard in `open`, which the
/// connection's task keeps until its last response is flushed and its socket closed.
async fn accept_loop<S, F>(
    max_connections: usize,
    open: &Connections,
    mut shutdown: watch::Receiver<bool>,
    what: &str,
    mut accept: impl FnMut() -> F,
    mut serve: impl FnMut(S, Admitted, watch::Receiver<bool>),
) where
    F: Future<Output = io::Result<S>>,
{
    let connections = Arc::new(Semaphore::new(max_connections));
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        let accepted = tokio::select! {
            a = accept() => a,
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        match accepted {
            Ok(stream) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                let admitted = Admitted {
                    _permit: permit,
                    _open: open.open(),
                };
                serve(stream, admitted, shutdown.clone());
            }
            Err(e) => {
                tracing::warn!("{what} accept failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
        }
    }
}

/// Accept FastCGI connections until shutdown, counting them in `open`. A TCP peer not in
/// `FCGI_WEB_SERVER_ADDRS` (when set) is refused.
pub async fn serve_fastcgi(
    listener: Listener,
    app: App,
    (limits, open): (Limits, &Connections),
    shutdown: watch::Receiver<bool>,
) {
    let app = Arc::new(app);
    let allowed = app.config().server.web_server_addrs.clone();
    let serve = |stream, admitted, shutdown| match stream {
        Stream::Tcp(stream, peer) => {
            if let Some(allowed) = &allowed {
                if !allowed.contains(&peer.ip()) {
                    tracing::warn!(
                        "Connection from {} refused (FCGI_WEB_SERVER_ADDRS)",
                        peer.ip()
                    );
                    return;
                }
            }
            let _ = stream.set_nodelay(true);
            let stream = transport::with_write_timeout(stream, &limits);
            spawn_connection(stream, app.clone(), limits, shutdown, admitted);
        }
        Stream::Unix(stream) => {
            let stream = transport::with_write_timeout(stream, &limits);
            spawn_connection(stream, app.clone(), limits, shutdown, admitted)
        }
    };
    let max = app.config().server.max_connections;
    accept_loop(max, open, shutdown, "FastCGI", || accept(&listener), serve).await;
}

/// Serve one FastCGI connection in its own task, holding its admission.
fn spawn_connection<S>(
    stream: S,
    app: Arc<App>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
    admitted: Admitted,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _admitted = admitted;
        let _open = metrics::Connection::open(metrics::Transport::FastCgi);
        if let Err(e) = transport::fastcgi::serve_connection(stream, app, limits, shutdown).await {
            tracing::debug!("FastCGI connection ended: {e}");
        }
    });
}

enum Stream {
    Tcp(tokio::net::TcpStream, SocketAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Stream> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, a)| Stream::Tcp(s, a)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Stream::Unix(s)),
    }
}

/// Accept HTTP connections until shutdown, counting them in `open`.
pub async fn serve_http(
    listener: TcpListener,
    app: App,
    (limits, open): (Limits, &Connections),
    shutdown: watch::Receiver<bool>,
) {
    let app = Arc::new(app);
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let serve = |(stream, peer): (tokio::net::TcpStream, SocketAddr), admitted, shutdown| {
        let _ = stream.set_nodelay(true);
        let stream = transport::with_write_timeout(stream, &limits);
        let app = app.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            let _open = metrics::Connection::open(metrics::Transport::Http);
            transport::http::serve_connection(stream, app, limits, (local, peer), shutdown).await;
        });
    };
    let max = app.config().server.max_connections;
    accept_loop(max, open, shutdown, "HTTP", || listener.accept(), serve).await;
}
