//! Output encoders, one per format, behind the [`Encoder`] trait.
//!
//! An encoder declares what it accepts ([`Encoder::accepts`]); the pipeline converts pixels to
//! that before calling [`Encoder::encode`], so encoders never see data they cannot write.

use crate::error::Result;
use crate::image::RawImage;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
    Tiff,
}

impl OutputFormat {
    /// The `Content-Type` value.
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Tiff => "image/tiff",
        }
    }

    /// The file-name suffix used in `Content-Disposition`.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Tiff => "tif",
        }
    }
}

/// What an encoder can take as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    /// Channel counts it can write (e.g. JPEG: 1 and 3).
    pub channels: &'static [u16],
    /// Whether 16-bit samples can be written (PNG, TIFF); otherwise 8-bit only.
    pub sixteen_bit: bool,
}

/// Per-request encoding options (qualities come from the configuration, overridden by `QLT`).
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions<'a> {
    /// Quality in the encoder's own scale (JPEG 1–100, PNG 0–9, WebP/AVIF -1–100, TIFF 0–100).
    pub quality: i32,
    /// TIFF compression (0 None, 1 LZW, 2 Deflate, 3 JPEG, 4 WebP, 5 ZSTD).
    pub tiff_compression: u32,
    /// ICC profile to embed (already checked against MAX_ICC).
    pub icc: Option<&'a [u8]>,
    /// XMP packet to embed (region exports only).
    pub xmp: Option<&'a [u8]>,
    /// EXIF block to embed (region exports only).
    pub exif: Option<&'a [u8]>,
    /// Physical resolution in pixels per inch (x, y), if known.
    pub dpi: Option<(f64, f64)>,
    /// Text metadata (`title`, `creator`, `description`, `rights`, `date`), for PNG and TIFF.
    pub text: Vec<(&'static str, String)>,
}

/// An output encoder.
pub trait Encoder: Send + Sync {
    fn format(&self) -> OutputFormat;
    fn accepts(&self) -> Accepts;
    /// Encode a whole image into a complete file.
    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>>;
}
