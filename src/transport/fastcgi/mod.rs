//! The FastCGI record layer and connection handling (placeholder until the record layer lands).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::Limits;
use crate::http::{Request, Response};

/// The application side of a FastCGI connection.
pub trait Responder: Send + Sync + 'static {
    fn respond(&self, request: Request) -> impl std::future::Future<Output = Response> + Send;
}

/// Serve one FastCGI connection.
pub async fn serve_connection<S, R>(
    _stream: S,
    _responder: Arc<R>,
    _limits: Limits,
    _shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    R: Responder,
{
    Ok(())
}
