//! AVIF output through Debian's libavif (`docs/behaviour/pipeline-and-encoding.md` §6.4), bound by
//! [`super::avif_ffi`].
//!
//! - Input: 3 → RGB, 4 → RGBA (alpha plane), 1 → YUV 4:0:0 grey, 2 → grey + alpha plane
//!   (iipsrv produced garbage from 2 channels).
//! - Quality: −1 (and below) is lossless: YUV 4:4:4 with the identity matrix and quantizer 0.
//!   0–100 is lossy 4:2:0 with quantizer `round((100 − Q) · 63 / 100)`, libavif 1.x's own
//!   mapping of its `quality` setting; above 100 acts as 100. Setting the quantizers works on
//!   every libavif from 0.9 on, whereas iipsrv's `quality` field is ignored before 1.0 (it
//!   produced the same file for every QLT on Debian 12).
//! - The alpha plane is always lossless, as libavif's defaults have it.
//! - Codec from `AVIF_CODEC` ([`AvifCodec`]); one that this libavif lacks falls back to
//!   automatic choice with a warning. Images the chosen codec cannot encode as asked go to the
//!   automatic choice too: grey and lossless for SVT-AV1 (4:2:0 only), lossless for rav1e (not
//!   exact with Debian's rav1e 0.5). Speed 0–10 (default 10, iipsrv's "fastest"), auto-tiling,
//!   `maxThreads` from [`super::EncoderSettings`].
//! - Colour: CICP BT.709 primaries / sRGB transfer; an ICC profile, XMP and EXIF are attached
//!   when given (iipsrv attaches them regardless of MAX_ICC and colour operations [BUG]; that
//!   choice is the caller's).

use std::ffi::{CStr, c_int};
use std::mem::MaybeUninit;
use std::ptr;

use super::avif_ffi as sys;
use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat};
use crate::config::AvifCodec;
use crate::error::Result;
use crate::image::RawImage;

/// The libavif side of the codec choice.
impl AvifCodec {
    fn choice(self) -> sys::avifCodecChoice {
        match self {
            AvifCodec::Auto => sys::AVIF_CODEC_CHOICE_AUTO,
            AvifCodec::Aom => sys::AVIF_CODEC_CHOICE_AOM,
            AvifCodec::Rav1e => sys::AVIF_CODEC_CHOICE_RAV1E,
            AvifCodec::Svt => sys::AVIF_CODEC_CHOICE_SVT,
        }
    }

    /// The name of the encoder libavif would use, or `None` if it was built without it.
    pub fn encoder_name(self) -> Option<&'static str> {
        // SAFETY: avifCodecName returns null or a static NUL-terminated string.
        unsafe {
            let name = sys::avifCodecName(self.choice(), sys::AVIF_CODEC_FLAG_CAN_ENCODE);
            (!name.is_null()).then(|| CStr::from_ptr(name).to_str().unwrap_or("?"))
        }
    }
}

/// AVIF encoder: 8-bit, 1–4 channels.
#[derive(Debug, Clone, Copy)]
pub struct AvifEncoder {
    codec: AvifCodec,
    speed: u8,
    threads: u32,
}

impl AvifEncoder {
    /// An encoder for `codec` (automatic if this libavif lacks it), `speed` 0–10 (clamped) and
    /// at most `threads` codec threads (at least 1).
    pub fn new(codec: AvifCodec, speed: u8, threads: u32) -> Self {
        let codec = if codec != AvifCodec::Auto && codec.encoder_name().is_none() {
            tracing::warn!(
                ?codec,
                "libavif was built without this AV1 encoder; choosing automatically"
            );
            AvifCodec::Auto
        } else {
            codec
        };
        AvifEncoder {
            codec,
            speed: speed.min(10),
            threads: threads.max(1),
        }
    }

    /// The codec actually used.
    pub fn codec(&self) -> AvifCodec {
        self.codec
    }
}

impl Default for AvifEncoder {
    fn default() -> Self {
        AvifEncoder::new(AvifCodec::Auto, 10, 1)
    }
}

impl Encoder for AvifEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Avif
    }

    fn accepts(&self) -> Accepts {
        Accepts::EIGHT_BIT
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        let data = super::checked_u8(image, OutputFormat::Avif)?;
        Ok(self.encode_pixels(data, image.width, image.height, image.channels, options)?)
    }
}

/// libavif's return status; `()` for the setters that returned nothing before libavif 1.0.
trait Status {
    fn check(self, what: &str) -> Result<(), EncodeError>;
}

impl Status for () {
    fn check(self, _: &str) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl Status for sys::avifResult {
    fn check(self, what: &str) -> Result<(), EncodeError> {
        if self == sys::AVIF_RESULT_OK {
            return Ok(());
        }
        // SAFETY: avifResultToString returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(sys::avifResultToString(self)) };
        Err(EncodeError::codec(
            OutputFormat::Avif,
            format!("{what}: {}", text.to_string_lossy()),
        ))
    }
}

/// Owns an `avifImage`.
struct ImageHandle(*mut sys::avifImage);

impl Drop for ImageHandle {
    fn drop(&mut self) {
        // SAFETY: created by avifImageCreate*, destroyed once.
        unsafe { sys::avifImageDestroy(self.0) }
    }
}

/// Owns an `avifEncoder`.
struct EncoderHandle(*mut sys::avifEncoder);

impl Drop for EncoderHandle {
    fn drop(&mut self) {
        // SAFETY: created by avifEncoderCreate, destroyed once.
        unsafe { sys::avifEncoderDestroy(self.0) }
    }
}

/// Owns an `avifRWData` buffer.
struct RwData(sys::avifRWData);

impl Drop for RwData {
    fn drop(&mut self) {
        // SAFETY: the buffer is null or was allocated by libavif.
        unsafe { sys::avifRWDataFree(&mut self.0) }
    }
}

impl AvifEncoder {
    fn encode_pixels(
        &self,
        data: &[u8],
        width: u32,
        height: u32,
        channels: u16,
        options: &EncodeOptions<'_>,
    ) -> Result<Vec<u8>, EncodeError> {
        if !(1..=4).contains(&channels) {
            return Err(EncodeError::UnsupportedInput {
                format: OutputFormat::Avif,
                channels,
                bits: 8,
            });
        }
        let lossless = options.quality < 0;
        let quantizer = if lossless {
            0
        } else {
            ((100 - options.quality.min(100)) * 63 + 50) / 100
        };
        let grey = channels <= 2;
        let alpha = channels == 2 || channels == 4;
        let yuv_format = match (grey, lossless) {
            (true, _) => sys::AVIF_PIXEL_FORMAT_YUV400,
            (false, true) => sys::AVIF_PIXEL_FORMAT_YUV444,
            (false, false) => sys::AVIF_PIXEL_FORMAT_YUV420,
        };

        // SAFETY: every libavif object is owned by a guard that frees it; plane pointers and
        // row strides come from libavif after allocation and are written within
        // height × rowBytes; the RGB view borrows `data`, which outlives the conversion.
        unsafe {
            let image = ImageHandle(sys::avifImageCreate(width, height, 8, yuv_format));
            if image.0.is_null() {
                return Err(EncodeError::codec(
                    OutputFormat::Avif,
                    "avifImageCreate failed",
                ));
            }
            let img = &mut *image.0;
            img.yuvRange = sys::AVIF_RANGE_FULL;
            img.colorPrimaries = sys::AVIF_COLOR_PRIMARIES_BT709 as _;
            img.transferCharacteristics = sys::AVIF_TRANSFER_CHARACTERISTICS_SRGB as _;
            img.matrixCoefficients = if lossless && !grey {
                sys::AVIF_MATRIX_COEFFICIENTS_IDENTITY as _
            } else {
                sys::AVIF_MATRIX_COEFFICIENTS_BT601 as _
            };

            if grey {
                let planes = if alpha {
                    sys::AVIF_PLANES_YUV | sys::AVIF_PLANES_A
                } else {
                    sys::AVIF_PLANES_YUV
                };
                sys::avifImageAllocatePlanes(image.0, planes as _).check("allocating planes")?;
                let y = img.yuvPlanes[sys::AVIF_CHAN_Y as usize];
                let y_stride = img.yuvRowBytes[sys::AVIF_CHAN_Y as usize] as usize;
                for (row, src) in data
                    .chunks_exact(width as usize * channels as usize)
                    .enumerate()
                {
                    let dst = std::slice::from_raw_parts_mut(y.add(row * y_stride), width as usize);
                    if alpha {
                        let a = std::slice::from_raw_parts_mut(
                            img.alphaPlane.add(row * img.alphaRowBytes as usize),
                            width as usize,
                        );
                        for (i, px) in src.chunks_exact(2).enumerate() {
                            dst[i] = px[0];
                            a[i] = px[1];
                        }
                    } else {
                        dst.copy_from_slice(src);
                    }
                }
            } else {
                let mut rgb = MaybeUninit::<sys::avifRGBImage>::zeroed().assume_init();
                sys::avifRGBImageSetDefaults(&mut rgb, image.0);
                rgb.depth = 8;
                rgb.format = if alpha {
                    sys::AVIF_RGB_FORMAT_RGBA
                } else {
                    sys::AVIF_RGB_FORMAT_RGB
                };
                rgb.pixels = data.as_ptr().cast_mut();
                rgb.rowBytes = width * channels as u32;
                sys::avifImageRGBToYUV(image.0, &rgb).check("converting RGB to YUV")?;
            }

            for (bytes, set) in [
                (
                    options.icc,
                    sys::avifImageSetProfileICC
                        as unsafe extern "C" fn(*mut sys::avifImage, *const u8, usize) -> _,
                ),
                (options.xmp, sys::avifImageSetMetadataXMP),
                (options.exif_tiff(), sys::avifImageSetMetadataExif),
            ] {
                if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
                    set(image.0, bytes.as_ptr(), bytes.len()).check("attaching metadata")?;
                }
            }

            let encoder = EncoderHandle(sys::avifEncoderCreate());
            if encoder.0.is_null() {
                return Err(EncodeError::codec(
                    OutputFormat::Avif,
                    "avifEncoderCreate failed",
                ));
            }
            let enc = &mut *encoder.0;
            // SVT-AV1 only encodes 4:2:0 through libavif, and rav1e's "lossless" is not exact
            // (rav1e 0.5, libavif 0.11): such images go to the automatic choice (aom).
            let codec = match self.codec {
                AvifCodec::Svt if yuv_format != sys::AVIF_PIXEL_FORMAT_YUV420 => AvifCodec::Auto,
                AvifCodec::Rav1e if lossless => AvifCodec::Auto,
                codec => codec,
            };
            enc.codecChoice = codec.choice();
            enc.maxThreads = self.threads.min(c_int::MAX as u32) as c_int;
            enc.speed = c_int::from(self.speed);
            enc.minQuantizer = quantizer;
            enc.maxQuantizer = quantizer;
            enc.minQuantizerAlpha = 0;
            enc.maxQuantizerAlpha = 0;
            enc.autoTiling = sys::AVIF_TRUE as _;

            let mut out = RwData(sys::avifRWData {
                data: ptr::null_mut(),
                size: 0,
            });
            let result = sys::avifEncoderWrite(encoder.0, image.0, &mut out.0);
            if result != sys::AVIF_RESULT_OK {
                let detail = CStr::from_ptr(enc.diag.error.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                let err = result.check("avifEncoderWrite").unwrap_err();
                return Err(match err {
                    EncodeError::Codec { format, message } => EncodeError::Codec {
                        format,
                        message: format!("{message} ({detail})"),
                    },
                    other => other,
                });
            }
            if out.0.data.is_null() || out.0.size == 0 {
                return Err(EncodeError::codec(OutputFormat::Avif, "empty output"));
            }
            Ok(std::slice::from_raw_parts(out.0.data, out.0.size).to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::test_util::{EXIF, XMP, fake_icc, gradient, psnr};

    /// What libavif's decoder reads back.
    struct Decoded {
        width: u32,
        height: u32,
        yuv_format: sys::avifPixelFormat,
        has_alpha: bool,
        /// RGBA, 8-bit.
        rgba: Vec<u8>,
        icc: Vec<u8>,
        xmp: Vec<u8>,
        exif: Vec<u8>,
    }

    // The allocation call returns nothing before libavif 1.0 and a status after.
    #[allow(clippy::unit_arg)]
    fn decode(file: &[u8]) -> Decoded {
        let bytes = |d: &sys::avifRWData| unsafe {
            if d.data.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(d.data, d.size).to_vec()
            }
        };
        // SAFETY: decoder and image are destroyed at the end; pixels are read within rowBytes.
        unsafe {
            let decoder = sys::avifDecoderCreate();
            let image = ImageHandle(sys::avifImageCreateEmpty());
            sys::avifDecoderReadMemory(decoder, image.0, file.as_ptr(), file.len())
                .check("decode")
                .expect("libavif decodes the output");
            sys::avifDecoderDestroy(decoder);
            let img = &*image.0;
            let mut rgb = MaybeUninit::<sys::avifRGBImage>::zeroed().assume_init();
            sys::avifRGBImageSetDefaults(&mut rgb, image.0);
            rgb.depth = 8;
            rgb.format = sys::AVIF_RGB_FORMAT_RGBA;
            sys::avifRGBImageAllocatePixels(&mut rgb)
                .check("alloc")
                .unwrap();
            sys::avifImageYUVToRGB(image.0, &mut rgb)
                .check("to RGB")
                .unwrap();
            let mut rgba = Vec::with_capacity(img.width as usize * img.height as usize * 4);
            for row in 0..img.height as usize {
                rgba.extend_from_slice(std::slice::from_raw_parts(
                    rgb.pixels.add(row * rgb.rowBytes as usize),
                    img.width as usize * 4,
                ));
            }
            sys::avifRGBImageFreePixels(&mut rgb);
            Decoded {
                width: img.width,
                height: img.height,
                yuv_format: img.yuvFormat,
                has_alpha: !img.alphaPlane.is_null(),
                rgba,
                icc: bytes(&img.icc),
                xmp: bytes(&img.xmp),
                exif: bytes(&img.exif),
            }
        }
    }

    fn to_rgba(image: &RawImage) -> Vec<u8> {
        let data = image.as_u8().unwrap();
        let c = image.channels as usize;
        data.chunks(c)
            .flat_map(|p| match c {
                1 => [p[0], p[0], p[0], 255],
                2 => [p[0], p[0], p[0], p[1]],
                3 => [p[0], p[1], p[2], 255],
                _ => [p[0], p[1], p[2], p[3]],
            })
            .collect()
    }

    fn opts(quality: i32) -> EncodeOptions<'static> {
        EncodeOptions {
            quality,
            ..Default::default()
        }
    }

    fn is_avif(file: &[u8]) {
        assert_eq!(&file[4..12], b"ftypavif");
        // Top-level ISO-BMFF boxes must tile the file exactly.
        let mut pos = 0;
        while pos < file.len() {
            let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
            assert!(size >= 8, "box size");
            pos += size;
        }
        assert_eq!(pos, file.len(), "complete file");
    }

    #[test]
    fn lossless_is_exact_for_every_channel_count() {
        for channels in 1..=4u16 {
            let img = gradient(48, 33, channels);
            for quality in [-1, -5] {
                let out = AvifEncoder::default().encode(&img, &opts(quality)).unwrap();
                is_avif(&out);
                let dec = decode(&out);
                assert_eq!((dec.width, dec.height), (48, 33));
                let expected_format = if channels <= 2 {
                    sys::AVIF_PIXEL_FORMAT_YUV400
                } else {
                    sys::AVIF_PIXEL_FORMAT_YUV444
                };
                assert_eq!(dec.yuv_format, expected_format);
                assert_eq!(dec.has_alpha, channels % 2 == 0);
                assert_eq!(dec.rgba, to_rgba(&img), "{channels} channels lossless");
                assert!(dec.icc.is_empty() && dec.xmp.is_empty() && dec.exif.is_empty());
            }
        }
    }

    #[test]
    fn lossy_quality_range() {
        let img = gradient(128, 128, 3);
        let mut sizes = Vec::new();
        for quality in [0, 50, 100, 120] {
            let out = AvifEncoder::default().encode(&img, &opts(quality)).unwrap();
            is_avif(&out);
            let dec = decode(&out);
            assert_eq!(dec.yuv_format, sys::AVIF_PIXEL_FORMAT_YUV420);
            let p = psnr(&to_rgba(&img), &dec.rgba);
            assert!(
                p > if quality >= 50 { 35.0 } else { 20.0 },
                "PSNR {p} at {quality}"
            );
            sizes.push(out.len());
        }
        assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
        assert_eq!(sizes[2], sizes[3], "above 100 acts as 100");
    }

    #[test]
    fn lossy_grey_and_alpha() {
        for channels in [1u16, 2, 4] {
            let img = gradient(64, 40, channels);
            let dec = decode(&AvifEncoder::default().encode(&img, &opts(80)).unwrap());
            let expected = to_rgba(&img);
            assert!(psnr(&expected, &dec.rgba) > 35.0, "{channels} channels");
            let alpha = |v: &[u8]| v.chunks(4).map(|p| p[3]).collect::<Vec<_>>();
            assert_eq!(alpha(&dec.rgba), alpha(&expected), "alpha is lossless");
        }
    }

    #[test]
    fn metadata_round_trip() {
        let icc = fake_icc(2000);
        let prefixed_exif = [b"Exif\0\0".as_slice(), EXIF].concat();
        let options = EncodeOptions {
            quality: 50,
            icc: Some(&icc),
            xmp: Some(XMP),
            exif: Some(&prefixed_exif),
            ..Default::default()
        };
        let out = AvifEncoder::default()
            .encode(&gradient(32, 32, 3), &options)
            .unwrap();
        is_avif(&out);
        let dec = decode(&out);
        assert_eq!(dec.icc, icc);
        assert_eq!(dec.xmp, XMP);
        assert!(dec.exif.ends_with(EXIF), "EXIF payload kept");
    }

    #[test]
    fn every_available_codec() {
        for codec in [
            AvifCodec::Auto,
            AvifCodec::Aom,
            AvifCodec::Rav1e,
            AvifCodec::Svt,
        ] {
            let encoder = AvifEncoder::new(codec, 10, 1);
            if codec.encoder_name().is_none() {
                assert_eq!(
                    encoder.codec(),
                    AvifCodec::Auto,
                    "unavailable {codec:?} falls back"
                );
            }
            for channels in [1u16, 3, 4] {
                let img = gradient(96, 64, channels);
                for speed in [8, 10] {
                    let encoder = AvifEncoder::new(encoder.codec(), speed, 2);
                    let out = encoder.encode(&img, &opts(75)).unwrap();
                    let p = psnr(&to_rgba(&img), &decode(&out).rgba);
                    assert!(
                        p > 30.0,
                        "{codec:?} speed {speed}, {channels} channels: PSNR {p}"
                    );
                }
                let lossless = encoder.encode(&img, &opts(-1)).unwrap();
                assert_eq!(
                    decode(&lossless).rgba,
                    to_rgba(&img),
                    "{codec:?} lossless, {channels} channels"
                );
            }
        }
        assert_eq!(AvifCodec::from_setting(2), AvifCodec::Rav1e);
        assert_eq!(AvifCodec::from_setting(7), AvifCodec::Auto);
    }
}
