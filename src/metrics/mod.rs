//! Metrics: what the server counts and times, for `GET /metrics` on the admin listener
//! (`docs/operations.md` lists every metric).
//!
//! # How it works
//!
//! - **One table of atomics** ([`METRICS`], a `static`): counters and histograms indexed by
//!   small enums, so every label has a fixed, short list of values ([`Protocol`], [`Kind`],
//!   [`Format`], [`StatusClass`], [`Codec`], [`Transport`]): an identifier or anything else a
//!   client sends never becomes a label, and the number of series is bounded whatever is
//!   requested. Recording is a few relaxed atomic adds: no lock, no allocation (the tile path
//!   answers tens of thousands of requests a second).
//! - **What a request was** (protocol, kind, output format) is learnt deep in the protocols,
//!   while the request is counted at its end in `app.rs`. The protocols [`note`] what they
//!   learn in a thread-local record; `App::respond` clears it before the protocols run and takes
//!   it afterwards. The protocols run synchronously on the worker thread between the two (no
//!   `.await` in between), so the record is the request's own.
//! - **Values that live elsewhere** (cache sizes, memcached counters, requests in flight) are
//!   read at scrape time: the admin listener fills a [`Snapshot`] and [`render`] writes the
//!   Prometheus text format with `prometheus-client` ([`exposition`]).
//!
//! The module is at the bottom of the layers (it imports nothing of the crate), so that every
//! layer may record into it.

mod exposition;
mod histogram;
pub(crate) mod note;
mod table;

use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) use exposition::{CacheStats, MemcachedStats, Snapshot, render};
pub(crate) use note::Note;
use table::METRICS;
pub(crate) use table::{Codec, Format, Kind, Protocol, StatusClass, Transport};

/// The `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Count one answered request: what it was, its status, its body bytes and how long it took.
pub(crate) fn request(note: Note, status: u16, body_bytes: u64, elapsed: Duration) {
    let m = &METRICS;
    m.requests[note.protocol as usize][note.kind as usize][note.format as usize]
        [StatusClass::of(status) as usize]
        .fetch_add(1, Ordering::Relaxed);
    m.durations[note.kind as usize].observe(elapsed);
    m.sent_bytes[note.kind as usize].fetch_add(body_bytes, Ordering::Relaxed);
}

/// Time spent decoding a tile of a `codec` source.
pub(crate) fn decoded(codec: Codec, elapsed: Duration) {
    METRICS.decode[codec as usize].observe(elapsed);
}

/// Time spent encoding an image as `format`.
pub(crate) fn encoded(format: Format, elapsed: Duration) {
    METRICS.encode[format as usize].observe(elapsed);
}

/// A cache purge: of everything (`true`) or of one image.
pub(crate) fn purged(everything: bool) {
    METRICS.purges[usize::from(!everything)].fetch_add(1, Ordering::Relaxed);
}

/// An open connection of a listener, counted until dropped.
#[derive(Debug)]
pub struct Connection(Transport);

impl Connection {
    /// Count a connection that was just accepted.
    pub(crate) fn open(transport: Transport) -> Connection {
        METRICS.connections[transport as usize].fetch_add(1, Ordering::Relaxed);
        Connection(transport)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        METRICS.connections[self.0 as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(200), StatusClass::Success);
        assert_eq!(StatusClass::of(204), StatusClass::Success);
        assert_eq!(StatusClass::of(303), StatusClass::Redirection);
        assert_eq!(StatusClass::of(304), StatusClass::Redirection);
        assert_eq!(StatusClass::of(404), StatusClass::ClientError);
        assert_eq!(StatusClass::of(503), StatusClass::ServerError);
    }

    #[test]
    fn labels_are_in_index_order() {
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, f) in Format::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        assert_eq!(Format::Pdf.label(), "pdf");
    }
}
