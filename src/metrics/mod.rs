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

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use exposition::{CacheStats, MemcachedStats, Snapshot, render};
use histogram::Histogram;
pub(crate) use note::Note;

/// The `Content-Type` of `/metrics`: the Prometheus text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Defines a label: an enum whose values are the label's only values.
macro_rules! label {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name { $($variant),+ }

        impl $name {
            /// Every value, in index order.
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The number of values.
            pub(crate) const COUNT: usize = Self::ALL.len();

            /// The label value as exported.
            pub(crate) fn label(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
    };
}

label! {
    /// The protocol a request used (`none`: no protocol command, e.g. OPTIONS, the banner).
    Protocol { None => "none", Iip => "iip", Iiif => "iiif", Zoomify => "zoomify", DeepZoom => "deepzoom" }
}

label! {
    /// What a request asked for.
    Kind {
        Other => "other",
        Tile => "tile",
        Region => "region",
        Info => "info",
        Metadata => "metadata",
        Values => "values",
        TileStream => "tile_stream",
        Redirect => "redirect",
    }
}

label! {
    /// The output format of an image response (`none` for everything else).
    Format {
        None => "none",
        Jpeg => "jpeg",
        Png => "png",
        Webp => "webp",
        Avif => "avif",
        Tiff => "tiff",
        Gif => "gif",
        Jp2 => "jp2",
        Pdf => "pdf",
    }
}

label! {
    /// The class of an HTTP status.
    StatusClass { Success => "2xx", Redirection => "3xx", ClientError => "4xx", ServerError => "5xx" }
}

label! {
    /// The source format whose decoder made pixels.
    Codec { Tiff => "tiff", Jpeg2000 => "jpeg2000", Jpeg => "jpeg" }
}

label! {
    /// The listener a connection came in on.
    Transport { FastCgi => "fastcgi", Http => "http" }
}

impl StatusClass {
    /// The class of `status` (1xx never occurs; it counts as 2xx).
    pub(crate) fn of(status: u16) -> StatusClass {
        match status {
            ..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

/// Request latency buckets (upper bounds in nanoseconds): 250 µs to 10 s.
const REQUEST_BUCKETS_NS: &[u64] = &[
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Decode and encode time buckets (upper bounds in nanoseconds): 50 µs to 5 s.
const CODEC_BUCKETS_NS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// Every counter and histogram recorded on the request path.
pub(crate) struct Metrics {
    /// Requests answered, by protocol, kind, format and status class.
    requests: [[[[AtomicU64; StatusClass::COUNT]; Format::COUNT]; Kind::COUNT]; Protocol::COUNT],
    /// Time from the complete request to the complete response, by kind.
    durations: [Histogram; Kind::COUNT],
    /// Body bytes of the responses, by kind.
    sent_bytes: [AtomicU64; Kind::COUNT],
    /// Open connections, by listener.
    connections: [AtomicI64; Transport::COUNT],
    /// Time spent decoding tiles, by source format.
    decode: [Histogram; Codec::COUNT],
    /// Time spent encoding images, by output format.
    encode: [Histogram; Format::COUNT],
    /// Cache purges through the admin listener: everything, one image.
    purges: [AtomicU64; 2],
}

/// The process's metrics.
pub(crate) static METRICS: Metrics = Metrics::new();

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            requests: [const {
                [const { [const { [const { AtomicU64::new(0) }; StatusClass::COUNT] }; Format::COUNT] };
                    Kind::COUNT]
            }; Protocol::COUNT],
            durations: [const { Histogram::new(REQUEST_BUCKETS_NS) }; Kind::COUNT],
            sent_bytes: [const { AtomicU64::new(0) }; Kind::COUNT],
            connections: [const { AtomicI64::new(0) }; Transport::COUNT],
            decode: [const { Histogram::new(CODEC_BUCKETS_NS) }; Codec::COUNT],
            encode: [const { Histogram::new(CODEC_BUCKETS_NS) }; Format::COUNT],
            purges: [const { AtomicU64::new(0) }; 2],
        }
    }
}

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
