//! Transports: FastCGI (the product's main interface) and plain HTTP/1.1 (`--http`).
//!
//! Both turn bytes from a socket into a [`crate::http::Request`], hand it to
//! [`crate::server::App::respond`], and write the [`crate::http::Response`] back. Connections
//! are tokio tasks, so an idle keep-alive connection costs a few kilobytes and no thread.

pub mod fastcgi;
pub mod http;

/// Limits the transports enforce before a request reaches the protocols.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of FastCGI parameters (names and values) accepted per request.
    pub max_params_bytes: usize,
    /// Bytes of request body (FastCGI STDIN, HTTP body) kept per request.
    pub max_body_bytes: usize,
    /// Largest FastCGI STDOUT record content (≤ 65535).
    pub max_record_content: usize,
    /// Advertised as FCGI_MAX_CONNS / FCGI_MAX_REQS.
    pub max_conns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_params_bytes: 256 * 1024,
            max_body_bytes: 64 * 1024,
            max_record_content: 65528,
            max_conns: 4096,
        }
    }
}
