//! What the admin endpoints share: the listener's state and the response builders.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::header::{self, HeaderValue};

use crate::app::App;

/// The shared state of the admin listener.
pub(super) struct Admin {
    pub app: App,
    /// Whether the listener's address is a loopback address (purge without a token allowed).
    pub loopback: bool,
    /// When the process started, in seconds since the Unix epoch (`/metrics`).
    pub start_time_seconds: f64,
}

pub(super) type Reply = hyper::Response<Full<Bytes>>;

/// A response with `body` of `content_type`, `Cache-Control: no-store`.
pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(crate::SERVER_HEADER),
    );
    r
}

/// A JSON response.
pub(super) fn json(status: StatusCode, value: serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// A JSON error: `{"error": message}`.
pub(super) fn error(status: StatusCode, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }))
}

/// 405 with the methods the path allows.
pub(super) fn wrong_method(allow: &'static str) -> Reply {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}
