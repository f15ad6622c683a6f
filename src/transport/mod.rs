//! Transports: FastCGI (the product's main interface) and plain HTTP/1.1 (`--http`).
//!
//! Both turn bytes from a socket into a [`Request`], hand it to a [`Responder`] (the
//! application, [`crate::app::App`]), and write the [`Response`] back. Connections are tokio
//! tasks, so an idle keep-alive connection costs a few kilobytes and no thread. The accept
//! loops that start them live in [`crate::server`].

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::http::{Request, Response};

mod connections;
pub mod fastcgi;
pub mod http;

pub(crate) use connections::ConnectionGuard;
pub use connections::Connections;

/// On shutdown, how long an accepted connection that has not sent a request yet is given for
/// its first one (its client waits for an answer). Connections between two requests of a
/// keep-alive session close at once.
pub(crate) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Limits the transports enforce before a request reaches the protocols.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of FastCGI parameters (names and values) accepted per request.
    pub max_params_bytes: usize,
    /// Bytes of request body (FastCGI STDIN, HTTP body) kept per request.
    pub max_body_bytes: usize,
    /// Largest FastCGI STDOUT record content (≤ 65535).
    pub max_record_content: usize,
    /// Connections served at once. FastCGI reports it as `FCGI_MAX_CONNS` and, since each
    /// connection carries one request at a time, as `FCGI_MAX_REQS`.
    pub max_conns: usize,
    /// Time a request may take to arrive in full, from its first record (FastCGI
    /// BEGIN_REQUEST) to the end of its body; over HTTP, the time its headers may take, which
    /// is also the longest an idle keep-alive connection is kept. Idle FastCGI keep-alive
    /// connections (the web server's pool) have no timeout. `IIPSRV_READ_TIMEOUT`.
    pub request_read_timeout: Duration,
    /// Time a response may make no progress to the peer (a write that stays pending) before
    /// the connection is dropped, with the response's memory. `IIPSRV_WRITE_TIMEOUT`.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_params_bytes: 256 * 1024,
            max_body_bytes: 64 * 1024,
            max_record_content: 65528,
            max_conns: 1024,
            request_read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// The application behind the transports: turns one request into one response.
pub trait Responder: Send + Sync + 'static {
    /// Answer `request`. The future may be dropped unfinished when the web server aborts the
    /// request.
    fn respond(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// A connection's stream whose writes fail (`TimedOut`) after `limits.write_timeout` without
/// progress, so that a peer that stops reading cannot hold a connection and its response.
pub(crate) fn with_write_timeout<S>(
    stream: S,
    limits: &Limits,
) -> std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<S>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(limits.write_timeout));
    Box::pin(stream)
}

/// Resolve when shutdown has been signalled (or when its sender is gone).
pub(crate) async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
