//! WebP output through Debian's libwebp (`docs/behaviour/pipeline-and-encoding.md` §6.3).
//!
//! - Input: 3 → RGB, 4 → RGBA; 1 → grey copied to RGB; 2 → grey+alpha expanded to RGBA
//!   (iipsrv imported 2-channel data with the wrong stride).
//! - Quality: below 1 → lossless (libwebp's fastest lossless effort, and `exact` so that
//!   colours under transparent pixels survive); 1–100 lossy; above 100 acts as 100.
//! - `method` (0 fastest … 6 smallest) comes from [`super::EncoderSettings`]; iipsrv uses 0,
//!   which is ~6× faster than libwebp's default 4 at q75.
//! - Metadata: with an ICC profile, XMP or EXIF the file is rewritten into the extended
//!   (VP8X) layout by [`super::webp_mux`]; otherwise it stays a simple VP8/VP8L file.
//! - Dimensions are limited to 16383 × 16383 by the format.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use libwebp_sys as sys;

use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat, webp_mux};
use crate::error::Result;
use crate::image::RawImage;

/// The largest width or height a WebP image can have.
pub const MAX_DIMENSION: u32 = 16383;

/// WebP encoder: 8-bit, 1–4 channels.
#[derive(Debug, Clone, Copy)]
pub struct WebpEncoder {
    method: u8,
}

impl WebpEncoder {
    /// An encoder using libwebp `method` (clamped to 0–6).
    pub fn new(method: u8) -> Self {
        WebpEncoder {
            method: method.min(6),
        }
    }
}

impl Default for WebpEncoder {
    fn default() -> Self {
        WebpEncoder::new(0)
    }
}

impl Encoder for WebpEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Webp
    }

    fn accepts(&self) -> Accepts {
        Accepts::EIGHT_BIT
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        let data = super::checked_u8(image, OutputFormat::Webp)?;
        let params = Params::from_quality(options.quality, self.method);
        let file = encode_pixels(data, image.width, image.height, image.channels, params)?;
        Ok(webp_mux::add_metadata(
            &file,
            options.icc,
            options.xmp,
            options.exif_tiff(),
        )?)
    }
}

/// libwebp settings for one encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    pub lossless: bool,
    /// Lossy quality 0–100, or lossless effort 0–100.
    pub quality: f32,
    pub method: u8,
}

impl Params {
    /// iipsrv's quality rule: below 1 is lossless (fastest effort), above 100 is 100.
    pub fn from_quality(quality: i32, method: u8) -> Self {
        if quality < 1 {
            Params {
                lossless: true,
                quality: 0.0,
                method,
            }
        } else {
            Params {
                lossless: false,
                quality: quality.min(100) as f32,
                method,
            }
        }
    }
}

/// Encodes 8-bit pixels (1–4 channels) into a simple WebP file (VP8, VP8L, or VP8X+ALPH+VP8
/// for lossy with alpha). Also used for WebP-in-TIFF strips.
pub(crate) fn encode_pixels(
    data: &[u8],
    width: u32,
    height: u32,
    channels: u16,
    params: Params,
) -> Result<Vec<u8>, EncodeError> {
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(EncodeError::TooLarge {
            format: OutputFormat::Webp,
            width,
            height,
        });
    }
    let expanded;
    let (pixels, alpha) = match channels {
        3 => (data, false),
        4 => (data, true),
        1 | 2 => {
            expanded = super::expand_grey(data, channels);
            (expanded.as_slice(), channels == 2)
        }
        _ => {
            return Err(EncodeError::UnsupportedInput {
                format: OutputFormat::Webp,
                channels,
                bits: 8,
            });
        }
    };
    let codec = |m: String| EncodeError::codec(OutputFormat::Webp, m);
    let stride = width as usize * if alpha { 4 } else { 3 };
    debug_assert_eq!(pixels.len(), stride * height as usize);

    // SAFETY: the config and picture are initialised by libwebp's init functions before use;
    // the pixel buffer outlives the import (which copies it); the writer callback receives
    // `custom_ptr` pointing at `out`, which lives until WebPEncode returns; the picture is
    // freed on every path after a successful init.
    unsafe {
        let mut config = MaybeUninit::<sys::WebPConfig>::uninit();
        if sys::WebPConfigInit(config.as_mut_ptr()) == 0 {
            return Err(codec("libwebp version mismatch".into()));
        }
        let mut config = config.assume_init();
        config.lossless = c_int::from(params.lossless);
        config.quality = params.quality;
        config.method = c_int::from(params.method.min(6));
        config.exact = c_int::from(params.lossless);
        if sys::WebPValidateConfig(&config) == 0 {
            return Err(codec("invalid configuration".into()));
        }

        let mut picture = MaybeUninit::<sys::WebPPicture>::uninit();
        if sys::WebPPictureInit(picture.as_mut_ptr()) == 0 {
            return Err(codec("libwebp version mismatch".into()));
        }
        let mut picture = picture.assume_init();
        picture.use_argb = c_int::from(params.lossless);
        picture.width = width as c_int;
        picture.height = height as c_int;
        let imported = if alpha {
            sys::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride as c_int)
        } else {
            sys::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride as c_int)
        };
        if imported == 0 {
            sys::WebPPictureFree(&mut picture);
            return Err(codec("out of memory importing pixels".into()));
        }
        let mut out: Vec<u8> = Vec::with_capacity(pixels.len() / 8 + 1024);
        picture.writer = Some(push_bytes);
        picture.custom_ptr = (&mut out as *mut Vec<u8>).cast();
        let ok = sys::WebPEncode(&config, &mut picture);
        let error = picture.error_code;
        sys::WebPPictureFree(&mut picture);
        if ok == 0 {
            return Err(codec(format!("WebPEncode failed (error {error:?})")));
        }
        Ok(out)
    }
}

/// libwebp's writer callback: appends to the `Vec<u8>` in `custom_ptr`.
extern "C" fn push_bytes(data: *const u8, size: usize, picture: *const sys::WebPPicture) -> c_int {
    // SAFETY: libwebp passes the picture given to WebPEncode, whose custom_ptr is the Vec set
    // up by `encode_pixels`, and `data` points at `size` readable bytes.
    unsafe {
        let out = &mut *(*picture).custom_ptr.cast::<Vec<u8>>();
        if size > 0 {
            out.extend_from_slice(std::slice::from_raw_parts(data, size));
        }
    }
    1
}

/// Adds ICC, XMP and EXIF chunks to a stored WebP tile sent by codec pass-through
/// (docs/behaviour/cache.md §4.3), rewriting it into the extended layout. iipsrv only did this for simple
/// files; extended files (e.g. lossy with alpha) are handled too. With no metadata the file is
/// returned unchanged.
pub fn insert_metadata(
    webp: &[u8],
    icc: Option<&[u8]>,
    xmp: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let exif = exif.map(|e| e.strip_prefix(b"Exif\0\0".as_slice()).unwrap_or(e));
    webp_mux::add_metadata(webp, icc, xmp, exif)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::encode::test_util::{EXIF, XMP, fake_icc, gradient, psnr};
    use std::ffi::c_char;

    /// Decodes with libwebp into RGBA; (width, height, pixels).
    pub(crate) fn decode_rgba(file: &[u8]) -> (u32, u32, Vec<u8>) {
        let (mut w, mut h) = (0, 0);
        // SAFETY: libwebp reads `file` and returns a buffer of w*h*4 bytes or null.
        unsafe {
            let ptr = sys::WebPDecodeRGBA(file.as_ptr(), file.len(), &mut w, &mut h);
            assert!(!ptr.is_null(), "libwebp decodes the output");
            let pixels = std::slice::from_raw_parts(ptr, (w * h * 4) as usize).to_vec();
            sys::WebPFree(ptr.cast());
            (w as u32, h as u32, pixels)
        }
    }

    /// A chunk as libwebp's demuxer sees it, and the VP8X flags.
    fn demux_chunk(file: &[u8], fourcc: &[u8; 4]) -> (u32, Option<Vec<u8>>) {
        // SAFETY: the demuxer reads `file`, which outlives it; the iterator is released.
        unsafe {
            let data = sys::WebPData {
                bytes: file.as_ptr(),
                size: file.len(),
            };
            let demux = sys::WebPDemux(&data);
            assert!(!demux.is_null(), "libwebp demuxes the output");
            let flags = sys::WebPDemuxGetI(demux, sys::WEBP_FF_FORMAT_FLAGS);
            let mut iter = MaybeUninit::<sys::WebPChunkIterator>::zeroed().assume_init();
            let found =
                sys::WebPDemuxGetChunk(demux, fourcc.as_ptr().cast::<c_char>(), 1, &mut iter) != 0;
            let chunk = found
                .then(|| std::slice::from_raw_parts(iter.chunk.bytes, iter.chunk.size).to_vec());
            sys::WebPDemuxReleaseChunkIterator(&mut iter);
            sys::WebPDemuxDelete(demux);
            (flags, chunk)
        }
    }

    fn riff_complete(file: &[u8]) {
        assert_eq!(&file[..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize,
            file.len() - 8,
            "RIFF size = length − 8"
        );
        webp_mux::chunks(file).unwrap();
    }

    fn encode(image: &RawImage, options: &EncodeOptions<'_>) -> Vec<u8> {
        let out = WebpEncoder::default()
            .encode(image, options)
            .expect("encodes");
        riff_complete(&out);
        out
    }

    fn opts(quality: i32) -> EncodeOptions<'static> {
        EncodeOptions {
            quality,
            ..Default::default()
        }
    }

    fn to_rgba(image: &RawImage) -> Vec<u8> {
        let data = image.as_u8().unwrap();
        match image.channels {
            1 | 2 => crate::encode::expand_grey(data, image.channels)
                .chunks(if image.channels == 1 { 3 } else { 4 })
                .flat_map(|p| [p[0], p[1], p[2], p.get(3).copied().unwrap_or(255)])
                .collect(),
            3 => data
                .chunks(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            _ => data.to_vec(),
        }
    }

    #[test]
    fn lossless_is_exact_for_every_channel_count() {
        for channels in 1..=4u16 {
            let img = gradient(67, 45, channels);
            for quality in [-1, 0] {
                let out = encode(&img, &opts(quality));
                assert_eq!(&out[12..16], b"VP8L", "lossless bitstream");
                let (w, h, rgba) = decode_rgba(&out);
                assert_eq!((w, h), (67, 45));
                assert_eq!(rgba, to_rgba(&img), "{channels} channels");
            }
        }
    }

    #[test]
    fn lossy_quality_range() {
        let img = gradient(256, 256, 3);
        let mut last_size = 0;
        for quality in [1, 50, 100, 250] {
            let out = encode(&img, &opts(quality));
            assert_eq!(&out[12..16], b"VP8 ", "lossy bitstream at {quality}");
            let (w, h, rgba) = decode_rgba(&out);
            assert_eq!((w, h), (256, 256));
            let p = psnr(&to_rgba(&img), &rgba);
            assert!(
                p > if quality >= 50 { 35.0 } else { 25.0 },
                "PSNR {p} at {quality}"
            );
            assert!(out.len() >= last_size, "size grows with quality");
            last_size = out.len();
        }
        assert_eq!(
            encode(&img, &opts(250)),
            encode(&img, &opts(100)),
            "above 100 acts as 100"
        );
    }

    #[test]
    fn lossy_with_alpha() {
        for channels in [2u16, 4] {
            let img = gradient(64, 64, channels);
            let out = encode(&img, &opts(80));
            let (_, _, rgba) = decode_rgba(&out);
            let expected = to_rgba(&img);
            let alpha = |v: &[u8]| v.chunks(4).map(|p| p[3]).collect::<Vec<_>>();
            assert_eq!(alpha(&rgba), alpha(&expected), "alpha is lossless");
            assert!(psnr(&expected, &rgba) > 30.0);
        }
    }

    #[test]
    fn methods() {
        let img = gradient(128, 128, 3);
        for method in [0, 4, 6, 9] {
            let out = WebpEncoder::new(method).encode(&img, &opts(75)).unwrap();
            riff_complete(&out);
            assert!(psnr(&to_rgba(&img), &decode_rgba(&out).2) > 35.0);
        }
    }

    #[test]
    fn metadata_through_libwebp_demux() {
        let img = gradient(40, 30, 3);
        let plain = encode(&img, &opts(75));
        assert_eq!(demux_chunk(&plain, b"ICCP"), (0, None));

        let icc = fake_icc(3001);
        for quality in [-1, 75] {
            for channels in [3u16, 4] {
                let img = gradient(40, 30, channels);
                let options = EncodeOptions {
                    quality,
                    icc: Some(&icc),
                    xmp: Some(XMP),
                    exif: Some(EXIF),
                    ..Default::default()
                };
                let out = encode(&img, &options);
                assert_eq!(&out[12..16], b"VP8X");
                let (flags, got) = demux_chunk(&out, b"ICCP");
                assert_eq!(got.as_deref(), Some(icc.as_slice()));
                let alpha = if channels == 4 { 0x10 } else { 0 };
                assert_eq!(flags, 0x20 | 0x08 | 0x04 | alpha);
                assert_eq!(demux_chunk(&out, b"XMP ").1.as_deref(), Some(XMP));
                assert_eq!(demux_chunk(&out, b"EXIF").1.as_deref(), Some(EXIF));
                let (w, h, rgba) = decode_rgba(&out);
                assert_eq!((w, h), (40, 30));
                assert_eq!(
                    rgba,
                    decode_rgba(&encode(&img, &opts(quality))).2,
                    "same pixels as without metadata"
                );
            }
        }
    }

    #[test]
    fn pass_through_insertion() {
        let tile = encode(&gradient(64, 64, 3), &opts(75));
        let icc = fake_icc(999);
        let out = insert_metadata(
            &tile,
            Some(&icc),
            None,
            Some(&[b"Exif\0\0".as_slice(), EXIF].concat()),
        )
        .unwrap();
        riff_complete(&out);
        assert_eq!(
            demux_chunk(&out, b"ICCP").1.as_deref(),
            Some(icc.as_slice())
        );
        assert_eq!(demux_chunk(&out, b"EXIF").1.as_deref(), Some(EXIF));
        assert_eq!(decode_rgba(&out), decode_rgba(&tile));
        assert_eq!(insert_metadata(&tile, None, None, None).unwrap(), tile);
    }

    #[test]
    fn size_limits() {
        let wide = RawImage::from_u8(
            MAX_DIMENSION + 1,
            1,
            1,
            crate::image::ColourSpace::Grey,
            vec![0; MAX_DIMENSION as usize + 1],
        );
        let err = WebpEncoder::default().encode(&wide, &opts(50)).unwrap_err();
        assert_eq!(err.message(), Some("Output image too large"));
        let five = RawImage::from_u8(2, 2, 5, crate::image::ColourSpace::Multiband, vec![0; 20]);
        assert!(WebpEncoder::default().encode(&five, &opts(50)).is_err());
    }
}
