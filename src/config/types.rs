//! The typed values of settings: each one says which values its variable (and, for the TIFF
//! compression, the `QLT` command) may choose, and what they mean. The layers that use them
//! (encoders, pipeline, sources, caches) import them from here; what is specific to a library
//! (libavif's codec choice, the TIFF tag values) lives beside that library.

/// A bound that may be lifted: iipsrv's `-1` ("unlimited") sentinels, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    #[default]
    Unlimited,
    Max(u64),
}

impl Limit {
    /// The bound, `None` when unlimited.
    pub fn max(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Max(n) => Some(n),
        }
    }

    /// The value as iipsrv holds it in its `int` settings: -1 for unlimited.
    pub fn as_sentinel(self) -> i64 {
        match self {
            Limit::Unlimited => -1,
            Limit::Max(n) => n.min(i64::MAX as u64) as i64,
        }
    }
}

/// TIFF compressions this encoder writes: the one type of `TIFF_COMPRESSION`, of the `QLT`
/// prefix and of the encoder. Where each may be chosen:
///
/// | compression | `TIFF_COMPRESSION` ([`from_setting`](Self::from_setting)) | `QLT=<name>:` ([`from_qlt_name`](Self::from_qlt_name)) | quality range |
/// |---|---|---|---|
/// | [`None`](Self::None) | 0 (and, with a warning, any code outside 0–4) | any other name | — |
/// | [`Lzw`](Self::Lzw) | 1 | `lzw` | — |
/// | [`Deflate`](Self::Deflate) | 2 (the default) | `deflate` | 0–9 |
/// | [`Jpeg`](Self::Jpeg) | 3 | `jpeg` | 0–100 |
/// | [`Webp`](Self::Webp) | 4 | `webp` | 0–100 |
/// | [`Zstd`](Self::Zstd) | — (as iipsrv: not configurable) | `zstd` | 0–19 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TiffCompression {
    #[default]
    None,
    Lzw,
    Deflate,
    Jpeg,
    Webp,
    Zstd,
}

impl TiffCompression {
    /// `TIFF_COMPRESSION`: 0 none, 1 LZW, 2 Deflate, 3 JPEG, 4 WebP; `None` (not a
    /// compression the variable can choose) for anything else, ZSTD's 5 included.
    pub fn from_setting(code: i64) -> Option<Self> {
        Some(match code {
            0 => TiffCompression::None,
            1 => TiffCompression::Lzw,
            2 => TiffCompression::Deflate,
            3 => TiffCompression::Jpeg,
            4 => TiffCompression::Webp,
            _ => return None,
        })
    }

    /// The compression named before the `:` of `QLT` (lower case): `lzw`, `deflate`, `jpeg`,
    /// `webp`, `zstd`; any other name is no compression.
    pub fn from_qlt_name(name: &str) -> Self {
        match name {
            "lzw" => TiffCompression::Lzw,
            "deflate" => TiffCompression::Deflate,
            "jpeg" => TiffCompression::Jpeg,
            "webp" => TiffCompression::Webp,
            "zstd" => TiffCompression::Zstd,
            _ => TiffCompression::None,
        }
    }

    /// The name iipsrv logs at start-up (`None`, `LZW`, `Deflate`, `JPEG`, `WebP`, `ZSTD`).
    pub fn name(self) -> &'static str {
        match self {
            TiffCompression::None => "None",
            TiffCompression::Lzw => "LZW",
            TiffCompression::Deflate => "Deflate",
            TiffCompression::Jpeg => "JPEG",
            TiffCompression::Webp => "WebP",
            TiffCompression::Zstd => "ZSTD",
        }
    }

    /// The largest quality value this compression takes (a zlib or zstd level, or a JPEG/WebP
    /// quality); qualities are clamped to `0..=max_quality()`.
    pub fn max_quality(self) -> i32 {
        match self {
            TiffCompression::Deflate => 9,
            TiffCompression::Zstd => 19,
            _ => 100,
        }
    }
}

/// The AV1 encoder libavif should use (`AVIF_CODEC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AvifCodec {
    /// libavif's first available encoder (aom on Debian).
    #[default]
    Auto,
    Aom,
    Rav1e,
    Svt,
}

impl AvifCodec {
    /// `AVIF_CODEC`: 0 auto, 1 aom, 2 rav1e, 3 svt; anything else is auto.
    pub fn from_setting(value: i64) -> Self {
        match value {
            1 => AvifCodec::Aom,
            2 => AvifCodec::Rav1e,
            3 => AvifCodec::Svt,
            _ => AvifCodec::Auto,
        }
    }

    /// The name iipsrv logs at start-up (`auto`, `aom`, `rav1e`, `svt`).
    pub fn name(self) -> &'static str {
        match self {
            AvifCodec::Auto => "auto",
            AvifCodec::Aom => "aom",
            AvifCodec::Rav1e => "rav1e",
            AvifCodec::Svt => "svt",
        }
    }
}

/// How region exports are resampled (`INTERPOLATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// `INTERPOLATION=0`.
    Nearest,
    /// Any other value (the default, 1).
    #[default]
    Bilinear,
}

impl Interpolation {
    /// `INTERPOLATION`: 0 nearest neighbour, anything else bilinear.
    pub fn from_setting(value: i64) -> Self {
        if value == 0 {
            Interpolation::Nearest
        } else {
            Interpolation::Bilinear
        }
    }
}

/// `MAX_LAYERS`: the quality layers a decode uses when the request (`LYR`) names none, and
/// the cap on the ones it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxLayers {
    /// 0: half the codestream's layers, rounded up (iipsrv's OpenJPEG default); `LYR` uncapped.
    #[default]
    Default,
    /// Negative: all layers; `LYR` uncapped.
    All,
    /// n > 0: at most n layers, the default too.
    AtMost(u64),
}

impl MaxLayers {
    /// `MAX_LAYERS`: 0 the default, negative all layers, n at most n.
    pub fn from_setting(value: i64) -> Self {
        match value {
            0 => MaxLayers::Default,
            v if v < 0 => MaxLayers::All,
            v => MaxLayers::AtMost(v as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_choose_five_compressions_and_qlt_six() {
        let all = [
            TiffCompression::None,
            TiffCompression::Lzw,
            TiffCompression::Deflate,
            TiffCompression::Jpeg,
            TiffCompression::Webp,
        ];
        for (code, c) in all.iter().enumerate() {
            assert_eq!(TiffCompression::from_setting(code as i64), Some(*c));
        }
        assert_eq!(TiffCompression::from_setting(5), None, "ZSTD is QLT-only");
        assert_eq!(TiffCompression::from_setting(-1), None);
        assert_eq!(
            TiffCompression::from_qlt_name("zstd"),
            TiffCompression::Zstd
        );
        assert_eq!(
            TiffCompression::from_qlt_name("deflate"),
            TiffCompression::Deflate
        );
        assert_eq!(
            TiffCompression::from_qlt_name("packbits"),
            TiffCompression::None
        );
        assert_eq!(TiffCompression::Deflate.max_quality(), 9);
        assert_eq!(TiffCompression::Zstd.max_quality(), 19);
        assert_eq!(TiffCompression::Jpeg.max_quality(), 100);
    }

    #[test]
    fn other_settings_read_iipsrvs_codes() {
        assert_eq!(AvifCodec::from_setting(2), AvifCodec::Rav1e);
        assert_eq!(AvifCodec::from_setting(7), AvifCodec::Auto);
        assert_eq!(AvifCodec::Svt.name(), "svt");
        assert_eq!(Interpolation::from_setting(0), Interpolation::Nearest);
        assert_eq!(Interpolation::from_setting(-3), Interpolation::Bilinear);
        assert_eq!(MaxLayers::from_setting(0), MaxLayers::Default);
        assert_eq!(MaxLayers::from_setting(-5), MaxLayers::All);
        assert_eq!(MaxLayers::from_setting(3), MaxLayers::AtMost(3));
        assert_eq!(Limit::Unlimited.as_sentinel(), -1);
        assert_eq!(Limit::Max(7).max(), Some(7));
    }
}

/// `IIPSRV_LOG_FORMAT`: how log records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// iipsrv's plain lines (the default).
    #[default]
    Text,
    /// One JSON object per line (`docs/operations.md`).
    Json,
}

impl LogFormat {
    /// The variable's value: `text` or `json` (any case); `None` for anything else.
    pub fn from_setting(value: &str) -> Option<LogFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}
