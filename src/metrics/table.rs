//! The labels (each an enum: its values are the label's only values) and the table of atomics
//! they index.

use std::sync::atomic::{AtomicI64, AtomicU64};

use super::histogram::Histogram;

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
const REQUEST_BUCKETS_NS: [u64; 15] = one_two_five(250_000);

/// Decode and encode time buckets (upper bounds in nanoseconds): 50 µs to 2.5 s.
const CODEC_BUCKETS_NS: [u64; 15] = one_two_five(50_000);

/// `N` bucket bounds from `first` (1, 2.5 or 5 × a power of ten) in steps of 1, 2.5, 5 × 10ᵏ.
const fn one_two_five<const N: usize>(first: u64) -> [u64; N] {
    let mut out = [0; N];
    let mut v = first;
    let mut i = 0;
    while i < N {
        out[i] = v;
        let mut decade = 1;
        while decade * 10 <= v {
            decade *= 10;
        }
        // 1 → 2.5 → 5 → 10 within each decade.
        v = if v == decade { v * 5 / 2 } else { v * 2 };
        i += 1;
    }
    out
}

/// Every counter and histogram recorded on the request path.
pub(crate) struct Metrics {
    /// Requests answered, by protocol, kind, format and status class.
    pub(super) requests:
        [[[[AtomicU64; StatusClass::COUNT]; Format::COUNT]; Kind::COUNT]; Protocol::COUNT],
    /// Time from the complete request to the complete response, by kind.
    pub(super) durations: [Histogram; Kind::COUNT],
    /// Body bytes of the responses, by kind.
    pub(super) sent_bytes: [AtomicU64; Kind::COUNT],
    /// Open connections, by listener.
    pub(super) connections: [AtomicI64; Transport::COUNT],
    /// Time spent decoding tiles, by source format.
    pub(super) decode: [Histogram; Codec::COUNT],
    /// Time spent encoding images, by output format.
    pub(super) encode: [Histogram; Format::COUNT],
    /// Cache purges through the admin listener: everything, one image.
    pub(super) purges: [AtomicU64; 2],
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
            durations: [const { Histogram::new(&REQUEST_BUCKETS_NS) }; Kind::COUNT],
            sent_bytes: [const { AtomicU64::new(0) }; Kind::COUNT],
            connections: [const { AtomicI64::new(0) }; Transport::COUNT],
            decode: [const { Histogram::new(&CODEC_BUCKETS_NS) }; Codec::COUNT],
            encode: [const { Histogram::new(&CODEC_BUCKETS_NS) }; Format::COUNT],
            purges: [const { AtomicU64::new(0) }; 2],
        }
    }
}
