//! The plain HTTP/1.1 listener (`--http HOST:PORT`), built on hyper.
//!
//! An HTTP request becomes the same [`Request`] a web server would send over FastCGI (the CGI
//! variables `QUERY_STRING`, `REQUEST_METHOD`, `REQUEST_URI`, `HTTP_HOST`, `HTTP_ACCEPT`, …), so
//! both transports give the same answers. The response's `Status:` line becomes the status line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, watch};

use super::{FIRST_REQUEST_GRACE, Limits, Responder, shutdown_signalled};
use crate::http::{Request, Response};

/// Convert an HTTP request into CGI parameters and a body.
pub async fn to_request(
    req: hyper::Request<Incoming>,
    local: SocketAddr,
    peer: SocketAddr,
    limits: &Limits,
) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(16);
    let mut push = |k: &str, v: &[u8]| params.push((k.as_bytes().to_vec(), v.to_vec()));
    push("GATEWAY_INTERFACE", b"CGI/1.1");
    push("SERVER_SOFTWARE", crate::SERVER_HEADER.as_bytes());
    push("REQUEST_METHOD", parts.method.as_str().as_bytes());
    push("QUERY_STRING", parts.uri.query().unwrap_or("").as_bytes());
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    push("REQUEST_URI", uri.as_bytes());
    push("SCRIPT_NAME", b"");
    push("SERVER_PROTOCOL", format!("{:?}", parts.version).as_bytes());
    push("SERVER_ADDR", local.ip().to_string().as_bytes());
    push("SERVER_PORT", local.port().to_string().as_bytes());
    push("REMOTE_ADDR", peer.ip().to_string().as_bytes());
    push("REMOTE_PORT", peer.port().to_string().as_bytes());
    for (name, value) in &parts.headers {
        let key = match name.as_str() {
            "content-length" => "CONTENT_LENGTH".to_string(),
            "content-type" => "CONTENT_TYPE".to_string(),
            other => format!("HTTP_{}", other.to_ascii_uppercase().replace('-', "_")),
        };
        params.push((key.into_bytes(), value.as_bytes().to_vec()));
    }
    let body = match Limited::new(body, limits.max_body_bytes).collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        Err(_) => return Err(Response::transport_error(413, "Request body too large")),
    };
    Ok(Request::new(params, body))
}

/// Convert a response into an HTTP response.
pub fn to_http(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(r.status());
    for (name, value) in r.headers() {
        if name.eq_ignore_ascii_case("Status") {
            continue;
        }
        builder = builder.header(name.as_ref(), value.as_str());
    }
    builder.body(Full::new(r.body.clone())).unwrap_or_else(|_| {
        let mut resp =
            hyper::Response::new(Full::new(Bytes::from_static(b"Invalid response header")));
        *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        resp
    })
}

/// Serve HTTP/1.1 requests on one accepted connection (keep-alive) until the peer closes it
/// or shutdown is signalled; a request in progress then finishes and is flushed first, and a
/// connection without a request yet gets [`FIRST_REQUEST_GRACE`] for its first one.
pub(crate) async fn serve_connection<R: Responder, S>(
    stream: S,
    responder: Arc<R>,
    limits: Limits,
    (local, peer): (SocketAddr, SocketAddr),
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Notified when a request arrives (a permit is kept when nobody waits).
    let arrived = Arc::new(Notify::new());
    let arrival = arrived.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let responder = responder.clone();
        arrival.notify_one();
        async move {
            let inm = req.headers().get("if-none-match").map(|v| v.as_bytes());
            if let Some(page) = crate::viewer::respond(req.method().as_str(), req.uri().path(), inm)
            {
                return Ok(to_http(page));
            }
            let response = match to_request(req, local, peer, &limits).await {
                Ok(request) => responder.respond(request).await,
                Err(refusal) => refusal,
            };
            Ok::<_, Infallible>(to_http(response))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        // Also closes idle keep-alive connections: hyper starts it when it waits for a head.
        .header_read_timeout(limits.request_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = shutdown_signalled(&mut shutdown) => {
            // An accepted connection that has not sent its first request yet gets a moment
            // for it (its client waits for an answer); a request in progress is finished and
            // flushed by the graceful shutdown, which then closes.
            let grace = tokio::time::sleep(FIRST_REQUEST_GRACE);
            tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = arrived.notified() => None,
                _ = grace => None,
            }
        }
    };
    let ended = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!("HTTP connection: {e}");
    }
}
