//! A drop-in replacement for the IIPImage server (`iipsrv`).
//!
//! # Brief overview
//!
//! A request travels through the layers top to bottom; each module only imports from the ones
//! below it (`tests/it/layers.rs` checks it):
//!
//! 1. [`server`]: the accept loops; [`transport`]: FastCGI records (or plain HTTP) become a
//!    [`http::Request`].
//! 2. [`app`]: [`app::App::respond`] counts the request in flight and catches panics.
//! 3. [`protocols`]: IIP, IIIF, Zoomify and DeepZoom parse the request into a
//!    protocol-neutral [`view::View`] and answer through shared tile and export responses.
//! 4. [`open_image`] opens the image, [`render`] does the work of a view, both with the state
//!    every worker shares ([`shared::Shared`]).
//! 5. [`cache`]: the shared tile cache and metadata cache answer what they can.
//! 6. [`source`]: image formats behind one trait ([`source::ImageSource`]).
//! 7. [`pipeline`]: processing of decoded pixels, in iipsrv's order.
//! 8. [`encode`]: output formats behind one trait ([`encode::Encoder`]).
//!
//! The result is a [`http::Response`] (a CGI-style response with ordered headers), which the
//! transport writes back. `docs/architecture.md` shows the same path with more detail.

// The module docs are written for the people who work on the crate and link to its private
// items (`cargo doc --document-private-items` shows them).
#![allow(rustdoc::private_intra_doc_links)]

pub mod admin;
pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod encode;
pub mod error;
pub mod health;
pub mod http;
pub mod image;
pub mod logging;
pub(crate) mod metrics;
pub mod open_image;
mod openjpeg;
pub mod pipeline;
pub mod protocols;
pub mod render;
pub mod schedule;
pub mod server;
pub mod shared;
pub mod source;
pub mod storage;
mod text;
pub mod transport;
pub mod view;
pub(crate) mod viewer;

/// The version iipsrv reports in `Server:` headers, the banner page and `OBJ=IIP`.
///
/// Clients and monitoring compare against upstream's string, so we report upstream's protocol
/// version, not our crate version (see `docs/compatibility.md`).
pub const IIPSRV_VERSION: &str = "1.3";

/// The value of every `Server:` header.
pub const SERVER_HEADER: &str = "iipsrv/1.3";

/// This implementation's own version, printed by `--version` and in the log banner.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");
