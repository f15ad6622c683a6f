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
//! Work that takes long (region exports) calls `tokio::task::block_in_place`, which hands the
//! worker's other connections to a fresh thread while it computes. A panic in the work is
//! caught at that edge and answered with a 500; the process keeps serving.

pub mod listen;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::app::App;
use crate::transport::{self, Limits, shutdown_signalled};
use listen::Listener;

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

/// Accept HTTP connections until shutdown.
pub async fn serve_http(
    listener: TcpListener,
    app: App,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Arc::new(app);
    let connections = Arc::new(Semaphore::new(app.config().max_connections));
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown_signalled(&mut shutdown) => return,
        };
        let _ = stream.set_nodelay(true);
        let (app, rx) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            transport::http::serve_connection(stream, app, limits, (local, peer), rx).await;
        });
    }
}
