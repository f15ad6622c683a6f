//! A drop-in replacement for the IIPImage server (`iipsrv`).
//!
//! # Brief overview
//!
//! A request travels through the layers top to bottom, one module each:
//!
//! 1. [`transport`]: FastCGI records (or plain HTTP) become a [`http::Request`].
//! 2. [`server`]: listeners, the worker pool, shutdown; hands the request to [`protocols`].
//! 3. [`protocols`]: IIP, IIIF, Zoomify and DeepZoom parse the request into a
//!    protocol-neutral [`view::View`] and ask for the work to be done.
//! 4. [`cache`]: the shared tile cache and metadata cache answer what they can.
//! 5. [`source`]: image formats behind one trait ([`source::ImageSource`]).
//! 6. [`pipeline`]: processing of decoded pixels, in iipsrv's order.
//! 7. [`encode`]: output formats behind one trait ([`encode::Encoder`]).
//!
//! The result is a [`http::Response`] (a CGI-style response with ordered headers), which the
//! transport writes back. `docs/architecture.md` shows the same path with more detail.

// The JPEG2000 decoder (`source::jp2::ffi`) and encoder (`encode::jp2_ffi`) each declare the
// OpenJPEG functions they use, with their own opaque handle types.
#![allow(clashing_extern_declarations)]

pub mod cache;
pub mod cli;
pub mod config;
pub mod encode;
pub mod error;
pub mod http;
pub mod image;
pub mod logging;
pub mod pipeline;
pub mod protocols;
pub mod render;
pub mod server;
pub mod source;
pub mod transport;
pub mod view;

/// The version iipsrv reports in `Server:` headers, the banner page and `OBJ=IIP`.
///
/// Clients and monitoring compare against upstream's string, so we report upstream's protocol
/// version, not our crate version (see `docs/compatibility.md`).
pub const IIPSRV_VERSION: &str = "1.3";

/// The value of every `Server:` header.
pub const SERVER_HEADER: &str = "iipsrv/1.3";

/// This implementation's own version, printed by `--version` and in the log banner.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");
