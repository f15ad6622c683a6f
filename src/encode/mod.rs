//! Output encoders, one per format, behind the [`Encoder`] trait.
//!
//! An encoder declares what it accepts ([`Encoder::accepts`]); the pipeline converts pixels to
//! that before calling [`Encoder::encode`], so encoders never see data they cannot write.
//!
//! # Brief overview
//!
//! | format | module | library | input |
//! |---|---|---|---|
//! | JPEG | [`jpeg`] | Debian's libturbojpeg (`turbojpeg` 0.5) | 8-bit, 1–4 channels (alpha dropped) |
//! | PNG | [`png`] | `png` crate | 8- or 16-bit, 1–4 channels |
//! | WebP | [`webp`] | Debian's libwebp (`libwebp-sys2`), own RIFF muxer | 8-bit, 1–4 channels |
//! | AVIF | [`avif`] | Debian's libavif (bindgen, `build.rs`) | 8-bit, 1–4 channels |
//! | TIFF | [`tiff`] | own container writer; weezl, flate2, zstd, turbojpeg, libwebp | 8- or 16-bit, any channels |
//! | GIF | [`gif`] | `gif` crate; palettes by `imagequant` | 8-bit (16-bit scaled), 1–4 channels |
//! | JPEG2000 | [`jp2`] | Debian's libopenjp2 (FFI in `jp2_ffi.rs`), JP2 file | 8- or 16-bit, 1–4 channels |
//! | PDF | [`pdf`] | `pdf-writer`; the JPEG of [`jpeg`] as a DCT image | 8-bit, 1–4 channels (alpha dropped) |
//!
//! GIF, JPEG2000 and PDF are IIIF extensions: iipsrv has none of them, and IIP's `CVT` keeps
//! iipsrv's set. Their memory limits ([`gif::MAX_GIF_PIXELS`], [`jp2::MAX_JP2_SAMPLES`],
//! [`pdf::MAX_PDF_PIXELS`]) are refused with [`EncodeError::OverLimit`] (400);
//! [`check_size`] tells before any decoding.
//!
//! Every encoder returns the complete file in memory: iipsrv's WebP/AVIF/TIFF streaming
//! dropped the final byte (`docs/behaviour/pipeline-and-encoding.md` §6.6); the transport sends it whole.
//!
//! Metadata (§5): the caller decides *whether* ICC, XMP and EXIF may be embedded (MAX_ICC,
//! colour-changing operations, tiles versus region exports) and passes only what is allowed in
//! [`EncodeOptions`]; the encoders embed everything they are given.
//!
//! Stored tiles sent by codec pass-through get their metadata from
//! [`jpeg::insert_metadata`] and [`webp::insert_metadata`].

use std::fmt;
use std::sync::OnceLock;

use crate::config::{AvifCodec, TiffCompression};
use crate::error::{Error, Result};
use crate::image::RawImage;

pub mod avif;
mod avif_ffi;
pub mod gif;
pub mod jp2;
mod jp2_ffi;
pub mod jpeg;
pub mod pdf;
pub mod png;
pub mod tiff;
pub mod webp;
mod webp_mux;

#[cfg(test)]
mod test_util;

pub use self::avif::AvifEncoder;
pub use self::gif::GifEncoder;
pub use self::jp2::Jp2Encoder;
pub use self::jpeg::JpegEncoder;
pub use self::pdf::PdfEncoder;
pub use self::png::PngEncoder;
pub use self::tiff::TiffEncoder;
pub use self::webp::WebpEncoder;

/// The value of the `Software` tag and of the JPEG COM marker.
pub const SOFTWARE: &str = "iipsrv/1.3";

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
    Tiff,
    /// IIIF extension (iipsrv has no GIF output).
    Gif,
    /// JPEG2000 (JP2 container); IIIF extension.
    Jp2,
    /// One-page PDF holding the JPEG; IIIF extension.
    Pdf,
}

impl OutputFormat {
    /// Every format, in the order of the enum.
    pub const ALL: [OutputFormat; 8] = [
        OutputFormat::Jpeg,
        OutputFormat::Png,
        OutputFormat::Webp,
        OutputFormat::Avif,
        OutputFormat::Tiff,
        OutputFormat::Gif,
        OutputFormat::Jp2,
        OutputFormat::Pdf,
    ];

    /// The format's label in the metrics.
    pub(crate) fn metric(self) -> crate::metrics::Format {
        use crate::metrics::Format;
        match self {
            OutputFormat::Jpeg => Format::Jpeg,
            OutputFormat::Png => Format::Png,
            OutputFormat::Webp => Format::Webp,
            OutputFormat::Avif => Format::Avif,
            OutputFormat::Tiff => Format::Tiff,
            OutputFormat::Gif => Format::Gif,
            OutputFormat::Jp2 => Format::Jp2,
            OutputFormat::Pdf => Format::Pdf,
        }
    }

    /// The `Content-Type` value.
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
            OutputFormat::Tiff => "image/tiff",
            OutputFormat::Gif => "image/gif",
            OutputFormat::Jp2 => "image/jp2",
            OutputFormat::Pdf => "application/pdf",
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
            OutputFormat::Gif => "gif",
            OutputFormat::Jp2 => "jp2",
            OutputFormat::Pdf => "pdf",
        }
    }

    /// Whether the format keeps an alpha channel (GIF as one transparent palette entry); JPEG
    /// and the JPEG inside a PDF do not.
    pub fn keeps_alpha(self) -> bool {
        !matches!(self, OutputFormat::Jpeg | OutputFormat::Pdf)
    }
}

/// What an encoder can take as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    /// Channel counts it can write (e.g. PNG: 1 to 4).
    pub channels: &'static [u16],
    /// Whether any channel count above those listed is written too (TIFF: as extra samples).
    pub more_channels: bool,
    /// Whether 16-bit samples can be written (PNG, TIFF); otherwise 8-bit only.
    pub sixteen_bit: bool,
}

impl Accepts {
    /// Grey, grey+alpha, RGB, RGBA in 8 bits (JPEG, WebP, AVIF, GIF).
    pub const EIGHT_BIT: Accepts = Accepts {
        channels: &[1, 2, 3, 4],
        more_channels: false,
        sixteen_bit: false,
    };
    /// The same in 8 or 16 bits (PNG, JPEG2000).
    pub const SIXTEEN_BIT: Accepts = Accepts {
        sixteen_bit: true,
        ..Accepts::EIGHT_BIT
    };

    /// Whether `channels` samples per pixel can be written.
    pub fn takes_channels(&self, channels: u16) -> bool {
        self.channels.contains(&channels)
            || (self.more_channels && self.channels.iter().all(|&c| channels > c))
    }

    /// Whether an image with this layout can be written as it is.
    pub fn takes(&self, image: &RawImage) -> bool {
        let depth_ok = match image.samples {
            crate::image::Samples::U8(_) => true,
            crate::image::Samples::U16(_) => self.sixteen_bit,
            _ => false,
        };
        depth_ok && self.takes_channels(image.channels)
    }
}

/// The unit of a physical resolution, as the source image stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolutionUnit {
    /// No absolute unit: the values only give the pixel aspect ratio (TIFF unit 1, JFIF 0).
    #[default]
    Unknown,
    /// Pixels per inch.
    Inch,
    /// Pixels per centimetre.
    Centimetre,
}

/// A physical resolution: pixels per [`ResolutionUnit`], already scaled to the pyramid level
/// that was read (§5.4). Only set when both values are positive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolution {
    pub x: f64,
    pub y: f64,
    pub unit: ResolutionUnit,
}

impl Resolution {
    /// The values in pixels per metre (PNG `pHYs`); unchanged when the unit is unknown.
    pub fn per_metre(&self) -> (f64, f64) {
        let factor = match self.unit {
            ResolutionUnit::Unknown => 1.0,
            ResolutionUnit::Inch => 1.0 / 0.0254,
            ResolutionUnit::Centimetre => 100.0,
        };
        (self.x * factor, self.y * factor)
    }
}

/// Per-request encoding options (qualities come from the configuration, overridden by `QLT`).
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions<'a> {
    /// Quality in the encoder's own scale, clamped by the encoder as iipsrv does (§6):
    /// JPEG 1–100 (0 acts as 1), PNG 0–9 (see [`png`] for the levels), WebP below 1 is lossless,
    /// AVIF −1 is lossless, TIFF per compression (Deflate 0–9, ZSTD 0–19, JPEG/WebP 0–100).
    pub quality: i32,
    /// TIFF compression (`QLT`'s, else `TIFF_COMPRESSION`).
    pub tiff_compression: TiffCompression,
    /// ICC profile to embed (already checked against MAX_ICC and the colour operations).
    pub icc: Option<&'a [u8]>,
    /// XMP packet to embed (region exports only).
    pub xmp: Option<&'a [u8]>,
    /// EXIF data to embed (region exports only): the TIFF-structured block, starting with
    /// `II*\0` or `MM\0*`. A leading `Exif\0\0` (as in a JPEG APP1) is accepted and stripped.
    pub exif: Option<&'a [u8]>,
    /// Physical resolution, if the source image has one.
    pub resolution: Option<Resolution>,
    /// Text metadata by iipsrv's metadata keys: `title`, `creator`, `description`, `rights`,
    /// `date` (PNG and TIFF), and `pagename`, `make`, `model` (TIFF only). Others are ignored.
    pub text: Vec<(&'static str, String)>,
}

impl EncodeOptions<'_> {
    /// The text value for a metadata key, if present and non-empty.
    pub fn text_value(&self, key: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The EXIF block without any `Exif\0\0` prefix.
    pub fn exif_tiff(&self) -> Option<&[u8]> {
        self.exif
            .map(|e| e.strip_prefix(b"Exif\0\0".as_slice()).unwrap_or(e))
            .filter(|e| !e.is_empty())
    }
}

/// An output encoder.
pub trait Encoder: Send + Sync {
    fn format(&self) -> OutputFormat;
    fn accepts(&self) -> Accepts;
    /// Encode a whole image into a complete file.
    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>>;
}

/// Start-up settings of the encoders (from the configuration; not per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    /// `AVIF_CODEC`.
    pub avif_codec: AvifCodec,
    /// AV1 encoder speed, 0 (slowest) to 10 (fastest).
    pub avif_speed: u8,
    /// Threads libavif's codec may use (1: single-threaded; requests run in parallel anyway).
    pub avif_threads: u32,
    /// libwebp `method`, 0 (fastest) to 6 (smallest).
    pub webp_method: u8,
}

impl Default for EncoderSettings {
    /// iipsrv's settings: fastest AVIF speed and WebP method 0, automatic codec choice.
    fn default() -> Self {
        EncoderSettings {
            avif_codec: AvifCodec::Auto,
            avif_speed: 10,
            avif_threads: 1,
            webp_method: 0,
        }
    }
}

/// One encoder per format, built once from the configuration.
#[derive(Debug)]
pub struct Encoders {
    jpeg: JpegEncoder,
    png: PngEncoder,
    webp: WebpEncoder,
    avif: AvifEncoder,
    tiff: TiffEncoder,
    gif: GifEncoder,
    jp2: Jp2Encoder,
    pdf: PdfEncoder,
}

impl Encoders {
    pub fn new(settings: EncoderSettings) -> Self {
        Encoders {
            jpeg: JpegEncoder,
            png: PngEncoder,
            webp: WebpEncoder::new(settings.webp_method),
            avif: AvifEncoder::new(
                settings.avif_codec,
                settings.avif_speed,
                settings.avif_threads,
            ),
            tiff: TiffEncoder::new(settings.webp_method),
            gif: GifEncoder,
            jp2: Jp2Encoder,
            pdf: PdfEncoder,
        }
    }

    /// The encoder for a format.
    pub fn get(&self, format: OutputFormat) -> &dyn Encoder {
        match format {
            OutputFormat::Jpeg => &self.jpeg,
            OutputFormat::Png => &self.png,
            OutputFormat::Webp => &self.webp,
            OutputFormat::Avif => &self.avif,
            OutputFormat::Tiff => &self.tiff,
            OutputFormat::Gif => &self.gif,
            OutputFormat::Jp2 => &self.jp2,
            OutputFormat::Pdf => &self.pdf,
        }
    }
}

impl Default for Encoders {
    fn default() -> Self {
        Encoders::new(EncoderSettings::default())
    }
}

/// The encoder for a format with the default [`EncoderSettings`].
pub fn encoder_for(format: OutputFormat) -> &'static dyn Encoder {
    static DEFAULT: OnceLock<Encoders> = OnceLock::new();
    DEFAULT.get_or_init(Encoders::default).get(format)
}

/// What went wrong while encoding. Converts into an [`Error`] (500: by the time an encoder
/// runs, the request has been validated, so a failure here is the server's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The pixel layout is not one [`Encoder::accepts`] declares.
    UnsupportedInput {
        format: OutputFormat,
        channels: u16,
        bits: u16,
    },
    /// The sample buffer does not hold width × height × channels samples.
    BadDimensions {
        width: u32,
        height: u32,
        channels: u16,
        samples: usize,
    },
    /// The image is too large for the format (e.g. WebP's 16383-pixel limit, 4 GiB TIFF).
    TooLarge {
        format: OutputFormat,
        width: u32,
        height: u32,
    },
    /// The image exceeds a memory limit of this server (e.g. [`gif::MAX_GIF_PIXELS`]): the
    /// request asked for too much, so it converts to a 400, unlike [`EncodeError::TooLarge`]
    /// (500, kept for iipsrv's formats).
    OverLimit {
        format: OutputFormat,
        width: u32,
        height: u32,
    },
    /// The codec library failed.
    Codec {
        format: OutputFormat,
        message: String,
    },
    /// A stream given for metadata insertion is not a valid file of its format.
    Malformed {
        format: OutputFormat,
        message: String,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::UnsupportedInput {
                format,
                channels,
                bits,
            } => {
                write!(
                    f,
                    "{format:?} cannot encode {channels}-channel {bits}-bit images"
                )
            }
            EncodeError::BadDimensions {
                width,
                height,
                channels,
                samples,
            } => {
                write!(
                    f,
                    "{width}x{height}x{channels} image with {samples} samples"
                )
            }
            EncodeError::TooLarge {
                format,
                width,
                height,
            } => {
                write!(f, "{width}x{height} image too large for {format:?}")
            }
            EncodeError::OverLimit {
                format,
                width,
                height,
            } => {
                write!(f, "{width}x{height} image above the {format:?} size limit")
            }
            EncodeError::Codec { format, message } => write!(f, "{format:?} encoder: {message}"),
            EncodeError::Malformed { format, message } => {
                write!(f, "malformed {format:?}: {message}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        if let EncodeError::OverLimit { .. } = e {
            return Error::too_large("Output image too large").with_detail(e.to_string());
        }
        let message = match &e {
            EncodeError::TooLarge { .. } => "Output image too large",
            _ => "Image encoding failed",
        };
        Error::internal(message).with_detail(e.to_string())
    }
}

impl EncodeError {
    pub(crate) fn codec(format: OutputFormat, message: impl Into<String>) -> Self {
        EncodeError::Codec {
            format,
            message: message.into(),
        }
    }
}

/// The 8-bit samples of `image` after checking the buffer length, or an error naming `format`.
pub(crate) fn checked_u8(image: &RawImage, format: OutputFormat) -> Result<&[u8], EncodeError> {
    let Some(data) = image.as_u8() else {
        return Err(EncodeError::UnsupportedInput {
            format,
            channels: image.channels,
            bits: image.bits_per_sample,
        });
    };
    check_len(image, data.len())?;
    Ok(data)
}

/// Checks that a sample buffer of `len` samples matches the image's dimensions.
pub(crate) fn check_len(image: &RawImage, len: usize) -> Result<(), EncodeError> {
    let expected = (image.width as u64)
        .checked_mul(image.height as u64)
        .and_then(|n| n.checked_mul(image.channels as u64));
    if image.width == 0 || image.height == 0 || image.channels == 0 || expected != Some(len as u64)
    {
        return Err(EncodeError::BadDimensions {
            width: image.width,
            height: image.height,
            channels: image.channels,
            samples: len,
        });
    }
    Ok(())
}

/// Whether an output of `width` × `height` pixels with `channels` channels can be encoded as
/// `format` within this server's memory limits (GIF, JPEG2000, PDF); call before decoding so
/// that a request for too much is answered with 400 at once. iipsrv's formats are bounded by
/// the region export limits instead.
pub fn check_size(format: OutputFormat, width: u32, height: u32, channels: u16) -> Result<()> {
    let pixels = width as u64 * height as u64;
    let within = match format {
        OutputFormat::Gif => width <= 65535 && height <= 65535 && pixels <= gif::MAX_GIF_PIXELS,
        OutputFormat::Jp2 => pixels * channels.max(1) as u64 <= jp2::MAX_JP2_SAMPLES,
        OutputFormat::Pdf => width <= 65535 && height <= 65535 && pixels <= pdf::MAX_PDF_PIXELS,
        _ => true,
    };
    if within {
        Ok(())
    } else {
        Err(EncodeError::OverLimit {
            format,
            width,
            height,
        }
        .into())
    }
}

/// Grey (1 channel) to RGB, or grey+alpha to RGBA, for codecs without grey input.
pub(crate) fn expand_grey(data: &[u8], channels: u16) -> Vec<u8> {
    match channels {
        1 => data.iter().flat_map(|&g| [g, g, g]).collect(),
        2 => data
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        _ => data.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    #[test]
    fn accepts_channel_sets() {
        let jpeg = encoder_for(OutputFormat::Jpeg).accepts();
        assert!(jpeg.takes_channels(1) && jpeg.takes_channels(3) && !jpeg.takes_channels(5));
        let tiff = encoder_for(OutputFormat::Tiff).accepts();
        assert!(tiff.takes_channels(1) && tiff.takes_channels(7) && !tiff.takes_channels(0));
        let img16 = RawImage {
            width: 1,
            height: 1,
            channels: 3,
            bits_per_sample: 16,
            colour: ColourSpace::Srgb,
            samples: crate::image::Samples::U16(vec![1, 2, 3]),
        };
        assert!(encoder_for(OutputFormat::Png).accepts().takes(&img16));
        assert!(!encoder_for(OutputFormat::Webp).accepts().takes(&img16));
    }

    #[test]
    fn encoder_for_every_format() {
        for f in OutputFormat::ALL {
            assert_eq!(encoder_for(f).format(), f);
        }
    }

    #[test]
    fn resolution_per_metre() {
        let cm = Resolution {
            x: 5.0,
            y: 10.0,
            unit: ResolutionUnit::Centimetre,
        };
        assert_eq!(cm.per_metre(), (500.0, 1000.0));
        let inch = Resolution {
            x: 254.0,
            y: 254.0,
            unit: ResolutionUnit::Inch,
        };
        let (x, _) = inch.per_metre();
        assert!((x - 10000.0).abs() < 1e-6);
    }

    #[test]
    fn bad_dimensions_rejected() {
        let img = RawImage {
            width: 4,
            height: 4,
            channels: 3,
            bits_per_sample: 8,
            colour: ColourSpace::Srgb,
            samples: crate::image::Samples::U8(vec![0; 10]),
        };
        for f in OutputFormat::ALL {
            let err = encoder_for(f)
                .encode(&img, &EncodeOptions::default())
                .unwrap_err();
            assert_eq!(err.kind(), Some(crate::error::ErrorKind::Internal), "{f:?}");
        }
    }
}
