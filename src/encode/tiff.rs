//! TIFF output (`docs/behaviour/pipeline-and-encoding.md` §6.5): one IFD, classic little-endian TIFF,
//! strips, written by a small container writer of our own.
//!
//! The `tiff` crate's encoder has no JPEG, WebP or ZSTD compression and only three Deflate
//! levels, so one writer here serves every compression and the crate is only the test oracle.
//!
//! # Compression (`TIFF_COMPRESSION`, or the `QLT` prefix)
//!
//! | code | compression | tag value | quality |
//! |---|---|---|---|
//! | 0 (and unknown) | none | 1 | — |
//! | 1 | LZW (weezl) | 5 | — |
//! | 2 | Deflate (zlib stream, flate2) | 8 | zlib level, clamped to 0–9 |
//! | 3 | JPEG (libturbojpeg; each strip a complete JPEG) | 7 | 0–100, 0 acts as 1 |
//! | 4 | WebP (libwebp; each strip a complete lossy RIFF file, as libtiff writes) | 50001 | 0–100 |
//! | 5 | ZSTD (libzstd) | 50000 | level, clamped to 0–19 (0: zstd's default) |
//!
//! No predictor. A compression that cannot store the image falls back to Deflate (logged at
//! debug): JPEG needs 8-bit 1 or 3 channels, WebP 8-bit 3 or 4 channels and at most
//! 16383 pixels a side (libtiff refuses the same cases).
//!
//! # Layout and tags
//!
//! Header, strips, out-of-line tag values, then the IFD. RowsPerStrip ≈ 512 KiB of
//! uncompressed samples (libtiff's default strip × 64, as iipsrv sets for CVT), so a tile is a
//! single strip; a multiple of 16 rows for JPEG (4:2:0 MCUs).
//!
//! - Photometric: MinIsBlack for 1–2 channels (iipsrv wrote RGB [BUG]), RGB for 3–4, YCbCr
//!   with 2×2 subsampling for JPEG-compressed RGB (libjpeg's own colour transform, as every
//!   JPEG-in-TIFF reader expects), MinIsBlack with unspecified extra samples above 4.
//! - ExtraSamples: unassociated alpha for 2 and 4 channels. SampleFormat: unsigned.
//! - Metadata: DocumentName ← title, ImageDescription ← description, Make, Model, PageName ←
//!   pagename, DateTime ← date, Artist ← creator, Copyright ← rights, Software `iipsrv/1.3`;
//!   ICC (34675) and XMP (700) when given; no EXIF.
//! - Resolution: X/YResolution with the source's own unit (none, inch or centimetre); iipsrv
//!   labelled every unit as centimetre [BUG].

use std::io::Write as _;

use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat, ResolutionUnit, SOFTWARE};
use crate::config::TiffCompression;
use crate::error::Result;
use crate::image::{RawImage, Samples};

/// What the TIFF writer needs to know of each compression.
impl TiffCompression {
    /// The value of the Compression tag.
    pub fn tag_value(self) -> u16 {
        match self {
            TiffCompression::None => 1,
            TiffCompression::Lzw => 5,
            TiffCompression::Jpeg => 7,
            TiffCompression::Deflate => 8,
            TiffCompression::Zstd => 50000,
            TiffCompression::Webp => 50001,
        }
    }

    /// Whether this compression can store the image; otherwise Deflate is used.
    fn can_store(self, channels: u16, sixteen_bit: bool, width: u32, height: u32) -> bool {
        match self {
            TiffCompression::Jpeg => {
                !sixteen_bit && matches!(channels, 1 | 3) && width <= 65535 && height <= 65535
            }
            TiffCompression::Webp => {
                let max = super::webp::MAX_DIMENSION;
                !sixteen_bit && matches!(channels, 3 | 4) && width <= max && height <= max
            }
            _ => true,
        }
    }
}

/// TIFF encoder: 8- or 16-bit, any number of channels.
#[derive(Debug, Clone, Copy)]
pub struct TiffEncoder {
    webp_method: u8,
}

impl TiffEncoder {
    /// An encoder whose WebP strips use libwebp `method` (0 fastest … 6).
    pub fn new(webp_method: u8) -> Self {
        TiffEncoder {
            webp_method: webp_method.min(6),
        }
    }
}

impl Default for TiffEncoder {
    fn default() -> Self {
        TiffEncoder::new(0)
    }
}

impl Encoder for TiffEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Tiff
    }

    fn accepts(&self) -> Accepts {
        Accepts {
            channels: &[1, 2, 3, 4],
            more_channels: true,
            sixteen_bit: true,
        }
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Ok(self.write(image, options)?)
    }
}

// Tag numbers and field types.
const BYTE: u16 = 1;
const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const UNDEFINED: u16 = 7;

const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const BITS_PER_SAMPLE: u16 = 258;
const COMPRESSION: u16 = 259;
const PHOTOMETRIC: u16 = 262;
const DOCUMENT_NAME: u16 = 269;
const IMAGE_DESCRIPTION: u16 = 270;
const MAKE: u16 = 271;
const MODEL: u16 = 272;
const STRIP_OFFSETS: u16 = 273;
const ORIENTATION: u16 = 274;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const X_RESOLUTION: u16 = 282;
const Y_RESOLUTION: u16 = 283;
const PLANAR_CONFIGURATION: u16 = 284;
const PAGE_NAME: u16 = 285;
const RESOLUTION_UNIT: u16 = 296;
const SOFTWARE_TAG: u16 = 305;
const DATE_TIME: u16 = 306;
const ARTIST: u16 = 315;
const EXTRA_SAMPLES: u16 = 338;
const SAMPLE_FORMAT: u16 = 339;
const YCBCR_SUBSAMPLING: u16 = 530;
const REFERENCE_BLACK_WHITE: u16 = 532;
const XMP: u16 = 700;
const COPYRIGHT: u16 = 33432;
const ICC_PROFILE: u16 = 34675;

/// Text tags by iipsrv metadata key.
const TEXT_TAGS: [(&str, u16); 8] = [
    ("title", DOCUMENT_NAME),
    ("description", IMAGE_DESCRIPTION),
    ("make", MAKE),
    ("model", MODEL),
    ("pagename", PAGE_NAME),
    ("date", DATE_TIME),
    ("creator", ARTIST),
    ("rights", COPYRIGHT),
];

/// Uncompressed bytes per strip to aim for: libtiff's 8 KiB default strip × 64.
const STRIP_BYTES: usize = 8192 * 64;

/// One IFD entry with its value already in file byte order (little-endian).
struct Entry {
    tag: u16,
    field_type: u16,
    count: u32,
    value: Vec<u8>,
}

impl Entry {
    fn shorts(tag: u16, values: &[u16]) -> Self {
        let value = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Entry {
            tag,
            field_type: SHORT,
            count: values.len() as u32,
            value,
        }
    }

    fn longs(tag: u16, values: &[u32]) -> Self {
        let value = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Entry {
            tag,
            field_type: LONG,
            count: values.len() as u32,
            value,
        }
    }

    fn rationals(tag: u16, values: &[(u32, u32)]) -> Self {
        let value = values
            .iter()
            .flat_map(|(n, d)| [n.to_le_bytes(), d.to_le_bytes()])
            .flatten()
            .collect();
        Entry {
            tag,
            field_type: RATIONAL,
            count: values.len() as u32,
            value,
        }
    }

    fn ascii(tag: u16, text: &str) -> Self {
        let mut value: Vec<u8> = text.bytes().filter(|&b| b != 0).collect();
        value.push(0);
        Entry {
            tag,
            field_type: ASCII,
            count: value.len() as u32,
            value,
        }
    }

    fn bytes(tag: u16, field_type: u16, data: &[u8]) -> Self {
        Entry {
            tag,
            field_type,
            count: data.len() as u32,
            value: data.to_vec(),
        }
    }
}

/// A rational close to `v` (positive, finite).
fn rational(v: f64) -> (u32, u32) {
    let v = if v.is_finite() && v > 0.0 { v } else { 1.0 };
    if v * 10000.0 < u32::MAX as f64 {
        ((v * 10000.0).round() as u32, 10000)
    } else {
        (v.round().min(u32::MAX as f64) as u32, 1)
    }
}

impl TiffEncoder {
    fn write(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>, EncodeError> {
        let (width, height, channels) = (image.width, image.height, image.channels);
        let le16;
        let (bytes, bits): (&[u8], u16) = match &image.samples {
            Samples::U8(v) => {
                super::check_len(image, v.len())?;
                (v, 8)
            }
            Samples::U16(v) => {
                super::check_len(image, v.len())?;
                le16 = v.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>();
                (&le16, 16)
            }
            _ => {
                return Err(EncodeError::UnsupportedInput {
                    format: OutputFormat::Tiff,
                    channels,
                    bits: image.bits_per_sample,
                });
            }
        };

        let requested = options.tiff_compression;
        let compression = if requested.can_store(channels, bits == 16, width, height) {
            requested
        } else {
            tracing::debug!(
                ?requested,
                channels,
                bits,
                "TIFF compression cannot store this image; using Deflate"
            );
            TiffCompression::Deflate
        };
        let row_bytes = width as usize * channels as usize * (bits as usize / 8);
        let mut rows_per_strip = (STRIP_BYTES / row_bytes).max(1);
        if compression == TiffCompression::Jpeg {
            rows_per_strip = rows_per_strip.next_multiple_of(16);
        }
        if compression == TiffCompression::Webp {
            rows_per_strip = rows_per_strip.min(super::webp::MAX_DIMENSION as usize);
        }
        let rows_per_strip = rows_per_strip.min(height as usize);

        let too_large = || EncodeError::TooLarge {
            format: OutputFormat::Tiff,
            width,
            height,
        };
        let mut out = Vec::with_capacity(match compression {
            TiffCompression::None => bytes.len() + 4096,
            _ => bytes.len() / 3 + 4096,
        });
        out.extend_from_slice(b"II*\0\0\0\0\0");
        let mut offsets = Vec::new();
        let mut counts = Vec::new();
        for strip in bytes.chunks(rows_per_strip * row_bytes) {
            let strip_rows = (strip.len() / row_bytes) as u32;
            let start = out.len();
            offsets.push(u32::try_from(start).map_err(|_| too_large())?);
            let quality = options.quality;
            match compression {
                TiffCompression::None => out.extend_from_slice(strip),
                TiffCompression::Lzw => {
                    let mut lzw =
                        weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                    let result = lzw.into_vec(&mut out).encode_all(strip);
                    result
                        .status
                        .map_err(|e| EncodeError::codec(OutputFormat::Tiff, format!("LZW: {e}")))?;
                }
                TiffCompression::Deflate => {
                    let level = flate2::Compression::new(quality.clamp(0, 9) as u32);
                    let mut z = flate2::write::ZlibEncoder::new(&mut out, level);
                    z.write_all(strip)
                        .and_then(|_| z.finish().map(|_| ()))
                        .map_err(|e| {
                            EncodeError::codec(OutputFormat::Tiff, format!("Deflate: {e}"))
                        })?;
                }
                TiffCompression::Zstd => {
                    let compressed =
                        zstd::bulk::compress(strip, quality.clamp(0, 19)).map_err(|e| {
                            EncodeError::codec(OutputFormat::Tiff, format!("ZSTD: {e}"))
                        })?;
                    out.extend_from_slice(&compressed);
                }
                TiffCompression::Jpeg => {
                    out.extend_from_slice(&super::jpeg::compress(
                        strip, width, strip_rows, channels, quality,
                    )?);
                }
                TiffCompression::Webp => {
                    let params = super::webp::Params {
                        lossless: false,
                        quality: quality.clamp(0, 100) as f32,
                        method: self.webp_method,
                    };
                    out.extend_from_slice(&super::webp::encode_pixels(
                        strip, width, strip_rows, channels, params,
                    )?);
                }
            }
            counts.push(u32::try_from(out.len() - start).map_err(|_| too_large())?);
        }

        let entries = self.entries(
            image,
            bits,
            compression,
            rows_per_strip as u32,
            offsets,
            counts,
            options,
        );
        write_ifd(&mut out, entries).map_err(|_| too_large())?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn entries(
        &self,
        image: &RawImage,
        bits: u16,
        compression: TiffCompression,
        rows_per_strip: u32,
        offsets: Vec<u32>,
        counts: Vec<u32>,
        options: &EncodeOptions<'_>,
    ) -> Vec<Entry> {
        let channels = image.channels;
        let ycbcr = compression == TiffCompression::Jpeg && channels == 3;
        let photometric = match channels {
            _ if ycbcr => 6,
            3 | 4 => 2,
            _ => 1,
        };
        let extra: Vec<u16> = match channels {
            2 | 4 => vec![2],
            n if n > 4 => vec![0; n as usize - 1],
            _ => Vec::new(),
        };
        let mut entries = vec![
            Entry::longs(IMAGE_WIDTH, &[image.width]),
            Entry::longs(IMAGE_LENGTH, &[image.height]),
            Entry::shorts(BITS_PER_SAMPLE, &vec![bits; channels as usize]),
            Entry::shorts(COMPRESSION, &[compression.tag_value()]),
            Entry::shorts(PHOTOMETRIC, &[photometric]),
            Entry::longs(STRIP_OFFSETS, &offsets),
            Entry::shorts(ORIENTATION, &[1]),
            Entry::shorts(SAMPLES_PER_PIXEL, &[channels]),
            Entry::longs(ROWS_PER_STRIP, &[rows_per_strip]),
            Entry::longs(STRIP_BYTE_COUNTS, &counts),
            Entry::shorts(PLANAR_CONFIGURATION, &[1]),
            Entry::ascii(SOFTWARE_TAG, SOFTWARE),
            Entry::shorts(SAMPLE_FORMAT, &vec![1; channels as usize]),
        ];
        if !extra.is_empty() {
            entries.push(Entry::shorts(EXTRA_SAMPLES, &extra));
        }
        if ycbcr {
            entries.push(Entry::shorts(YCBCR_SUBSAMPLING, &[2, 2]));
            entries.push(Entry::rationals(
                REFERENCE_BLACK_WHITE,
                &[(0, 1), (255, 1), (128, 1), (255, 1), (128, 1), (255, 1)],
            ));
        }
        if let Some(r) = options.resolution {
            entries.push(Entry::rationals(X_RESOLUTION, &[rational(r.x)]));
            entries.push(Entry::rationals(Y_RESOLUTION, &[rational(r.y)]));
            let unit = match r.unit {
                ResolutionUnit::Unknown => 1,
                ResolutionUnit::Inch => 2,
                ResolutionUnit::Centimetre => 3,
            };
            entries.push(Entry::shorts(RESOLUTION_UNIT, &[unit]));
        }
        for (key, tag) in TEXT_TAGS {
            if let Some(text) = options.text_value(key) {
                entries.push(Entry::ascii(tag, text));
            }
        }
        if let Some(xmp) = options.xmp.filter(|x| !x.is_empty()) {
            entries.push(Entry::bytes(XMP, BYTE, xmp));
        }
        if let Some(icc) = options.icc.filter(|i| !i.is_empty()) {
            entries.push(Entry::bytes(ICC_PROFILE, UNDEFINED, icc));
        }
        entries
    }
}

/// Appends the out-of-line values and the IFD (entries sorted by tag) and points the header
/// at it. Fails if an offset does not fit in 32 bits.
fn write_ifd(out: &mut Vec<u8>, mut entries: Vec<Entry>) -> Result<(), std::num::TryFromIntError> {
    entries.sort_by_key(|e| e.tag);
    let mut fields = Vec::with_capacity(entries.len());
    for entry in &entries {
        if entry.value.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..entry.value.len()].copy_from_slice(&entry.value);
            fields.push(inline);
        } else {
            if out.len() % 2 == 1 {
                out.push(0);
            }
            fields.push(u32::try_from(out.len())?.to_le_bytes());
            out.extend_from_slice(&entry.value);
        }
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    let ifd = u32::try_from(out.len())?;
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (entry, field) in entries.iter().zip(&fields) {
        out.extend_from_slice(&entry.tag.to_le_bytes());
        out.extend_from_slice(&entry.field_type.to_le_bytes());
        out.extend_from_slice(&entry.count.to_le_bytes());
        out.extend_from_slice(field);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    u32::try_from(out.len())?;
    out[4..8].copy_from_slice(&ifd.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Resolution;
    use crate::encode::test_util::{XMP as XMP_PACKET, fake_icc, gradient, gradient16, psnr};
    use ::tiff::decoder::{Decoder, DecodingResult, ifd::Value};
    use ::tiff::tags::Tag;
    use std::io::Cursor;

    /// iipsrv's compression codes as the tests write them (0 none … 5 ZSTD; others none).
    fn from_code(code: u32) -> TiffCompression {
        TiffCompression::from_setting(code as i64).unwrap_or(match code {
            5 => TiffCompression::Zstd,
            _ => TiffCompression::None,
        })
    }

    fn encode(image: &RawImage, compression: u32, quality: i32) -> Vec<u8> {
        let options = EncodeOptions {
            quality,
            tiff_compression: from_code(compression),
            ..Default::default()
        };
        TiffEncoder::default()
            .encode(image, &options)
            .expect("encodes")
    }

    fn decoder(file: &[u8]) -> Decoder<Cursor<Vec<u8>>> {
        Decoder::new(Cursor::new(file.to_vec())).expect("the tiff crate reads the header")
    }

    /// Strip offsets and counts lie inside the file; returns the strips.
    fn strips(file: &[u8]) -> Vec<Vec<u8>> {
        let mut d = decoder(file);
        let offsets = d.get_tag_u32_vec(Tag::StripOffsets).unwrap();
        let counts = d.get_tag_u32_vec(Tag::StripByteCounts).unwrap();
        assert_eq!(offsets.len(), counts.len());
        offsets
            .iter()
            .zip(&counts)
            .map(|(&o, &c)| {
                assert!(
                    o as usize + c as usize <= file.len(),
                    "strip within the file"
                );
                file[o as usize..(o + c) as usize].to_vec()
            })
            .collect()
    }

    fn tag_u16(file: &[u8], tag: Tag) -> Option<Vec<u16>> {
        decoder(file)
            .find_tag(tag)
            .unwrap()
            .map(|v| v.into_u16_vec().unwrap())
    }

    fn read_u8(file: &[u8]) -> Vec<u8> {
        match decoder(file).read_image().expect("the tiff crate decodes") {
            DecodingResult::U8(v) => v,
            other => panic!("unexpected {:?}", std::mem::discriminant(&other)),
        }
    }

    #[test]
    fn lossless_compressions_every_channel_count() {
        for compression in [0, 1, 2, 5, 9] {
            for channels in [1u16, 2, 3, 4, 5] {
                let img = gradient(83, 57, channels);
                let out = encode(&img, compression, 1);
                let mut d = decoder(&out);
                assert_eq!(d.dimensions().unwrap(), (83, 57));
                let expected = from_code(compression).tag_value();
                assert_eq!(tag_u16(&out, Tag::Compression), Some(vec![expected]));
                assert_eq!(tag_u16(&out, Tag::SamplesPerPixel), Some(vec![channels]));
                assert_eq!(
                    read_u8(&out),
                    img.as_u8().unwrap(),
                    "compression {compression}, {channels} channels"
                );
                strips(&out);
            }
        }
    }

    #[test]
    fn photometric_and_extra_samples() {
        let cases: [(u16, u16, Option<Vec<u16>>); 5] = [
            (1, 1, None),
            (2, 1, Some(vec![2])),
            (3, 2, None),
            (4, 2, Some(vec![2])),
            (6, 1, Some(vec![0; 5])),
        ];
        for (channels, photometric, extra) in cases {
            let out = encode(&gradient(8, 8, channels), 2, 1);
            assert_eq!(
                tag_u16(&out, Tag::PhotometricInterpretation),
                Some(vec![photometric])
            );
            assert_eq!(tag_u16(&out, Tag::ExtraSamples), extra);
            assert_eq!(
                tag_u16(&out, Tag::BitsPerSample),
                Some(vec![8; channels as usize])
            );
        }
    }

    #[test]
    fn sixteen_bit() {
        for compression in [0, 1, 2, 3, 4, 5] {
            let img = gradient16(50, 20, 3);
            let out = encode(&img, compression, 5);
            let Samples::U16(expected) = &img.samples else {
                unreachable!()
            };
            match decoder(&out).read_image().unwrap() {
                DecodingResult::U16(v) => assert_eq!(&v, expected, "compression {compression}"),
                _ => panic!("not 16-bit"),
            }
            // JPEG and WebP cannot hold 16 bits: Deflate instead.
            let tag = tag_u16(&out, Tag::Compression).unwrap()[0];
            assert_eq!(
                tag,
                if matches!(compression, 3 | 4) {
                    8
                } else {
                    from_code(compression).tag_value()
                }
            );
        }
    }

    #[test]
    fn deflate_and_zstd_levels() {
        let img = gradient(256, 256, 3);
        let d0 = encode(&img, 2, 0).len();
        let d1 = encode(&img, 2, 1).len();
        let d9 = encode(&img, 2, 9).len();
        // Without a predictor the smooth gradient barely compresses at level 1.
        assert!(d0 > 3 * 256 * 256 && d9 < d1 && d9 < d0, "{d0} {d1} {d9}");
        assert_eq!(encode(&img, 2, 42), encode(&img, 2, 9), "clamped to 9");
        let z1 = encode(&img, 5, 1).len();
        let z19 = encode(&img, 5, 19).len();
        assert!(z19 <= z1, "{z1} {z19}");
        assert_eq!(read_u8(&encode(&img, 5, 19)), img.as_u8().unwrap());
    }

    #[test]
    fn jpeg_strips() {
        for channels in [1u16, 3] {
            // Tall enough for several strips.
            let img = gradient(700, 400, channels);
            for quality in [0, 75, 100] {
                let out = encode(&img, 3, quality);
                assert_eq!(tag_u16(&out, Tag::Compression), Some(vec![7]));
                let rows = decoder(&out).get_tag_u32(Tag::RowsPerStrip).unwrap();
                assert_eq!(rows % 16, 0);
                let strips = strips(&out);
                assert_eq!(strips.len(), 400usize.div_ceil(rows as usize));
                let format = if channels == 1 {
                    turbojpeg::PixelFormat::GRAY
                } else {
                    turbojpeg::PixelFormat::RGB
                };
                let pixels: Vec<u8> = strips
                    .iter()
                    .flat_map(|s| turbojpeg::decompress(s, format).unwrap().pixels)
                    .collect();
                let p = psnr(img.as_u8().unwrap(), &pixels);
                assert!(p > if quality == 0 { 15.0 } else { 35.0 }, "PSNR {p}");
            }
            let photometric = if channels == 1 { 1 } else { 6 };
            let out = encode(&img, 3, 75);
            assert_eq!(
                tag_u16(&out, Tag::PhotometricInterpretation),
                Some(vec![photometric])
            );
            if channels == 3 {
                assert_eq!(tag_u16(&out, Tag::ChromaSubsampling), Some(vec![2, 2]));
            }
        }
        // Grey JPEG strips decode through the tiff crate too.
        let img = gradient(64, 64, 1);
        assert!(psnr(img.as_u8().unwrap(), &read_u8(&encode(&img, 3, 90))) > 35.0);
    }

    #[test]
    fn webp_strips() {
        for channels in [3u16, 4] {
            let img = gradient(300, 200, channels);
            for quality in [0, 50, 100] {
                let out = encode(&img, 4, quality);
                assert_eq!(tag_u16(&out, Tag::Compression), Some(vec![50001]));
                let mut pixels = Vec::new();
                for strip in strips(&out) {
                    assert_eq!(
                        u32::from_le_bytes(strip[4..8].try_into().unwrap()) as usize,
                        strip.len() - 8,
                        "complete RIFF"
                    );
                    pixels.extend(crate::encode::webp::tests::decode_rgba(&strip).2);
                }
                let expected: Vec<u8> = if channels == 3 {
                    img.as_u8()
                        .unwrap()
                        .chunks(3)
                        .flat_map(|p| [p[0], p[1], p[2], 255])
                        .collect()
                } else {
                    img.as_u8().unwrap().to_vec()
                };
                let p = psnr(&expected, &pixels);
                assert!(
                    p > if quality == 0 { 20.0 } else { 30.0 },
                    "PSNR {p} at {quality}"
                );
            }
        }
        // WebP cannot store grey: Deflate instead.
        let grey = encode(&gradient(16, 16, 1), 4, 50);
        assert_eq!(tag_u16(&grey, Tag::Compression), Some(vec![8]));
    }

    #[test]
    fn metadata_tags() {
        let icc = fake_icc(1234);
        let options = EncodeOptions {
            tiff_compression: TiffCompression::Deflate,
            quality: 1,
            icc: Some(&icc),
            xmp: Some(XMP_PACKET),
            resolution: Some(Resolution {
                x: 300.0,
                y: 150.5,
                unit: ResolutionUnit::Inch,
            }),
            text: vec![
                ("title", "Title".into()),
                ("creator", "Artist".into()),
                ("description", "Desc".into()),
                ("rights", "CC0".into()),
                ("date", "2024:01:02 03:04:05".into()),
                ("pagename", "Page".into()),
                ("make", "Make".into()),
                ("model", "Model".into()),
            ],
            ..Default::default()
        };
        let out = TiffEncoder::default()
            .encode(&gradient(30, 20, 3), &options)
            .unwrap();
        let mut d = decoder(&out);
        let text = |d: &mut Decoder<_>, tag| d.get_tag_ascii_string(tag).unwrap();
        assert_eq!(text(&mut d, Tag::Software), "iipsrv/1.3");
        assert_eq!(
            text(&mut d, Tag::from_u16_exhaustive(DOCUMENT_NAME)),
            "Title"
        );
        assert_eq!(text(&mut d, Tag::Artist), "Artist");
        assert_eq!(text(&mut d, Tag::ImageDescription), "Desc");
        assert_eq!(text(&mut d, Tag::Copyright), "CC0");
        assert_eq!(text(&mut d, Tag::DateTime), "2024:01:02 03:04:05");
        assert_eq!(text(&mut d, Tag::from_u16_exhaustive(PAGE_NAME)), "Page");
        assert_eq!(text(&mut d, Tag::Make), "Make");
        assert_eq!(text(&mut d, Tag::Model), "Model");
        assert_eq!(
            d.get_tag_u8_vec(Tag::from_u16_exhaustive(ICC_PROFILE))
                .unwrap(),
            icc
        );
        assert_eq!(
            d.get_tag_u8_vec(Tag::from_u16_exhaustive(XMP)).unwrap(),
            XMP_PACKET
        );
        assert_eq!(d.get_tag_u16_vec(Tag::ResolutionUnit).unwrap(), [2]);
        match d.get_tag(Tag::YResolution).unwrap() {
            Value::Rational(n, den) => assert_eq!(n as f64 / den as f64, 150.5),
            other => panic!("{other:?}"),
        }
        // Without metadata: no ICC, XMP, resolution or text beyond Software.
        let plain = encode(&gradient(30, 20, 3), 2, 1);
        let mut d = decoder(&plain);
        for tag in [
            ICC_PROFILE,
            XMP,
            X_RESOLUTION,
            RESOLUTION_UNIT,
            ARTIST,
            COPYRIGHT,
        ] {
            assert!(
                d.find_tag(Tag::from_u16_exhaustive(tag)).unwrap().is_none(),
                "tag {tag}"
            );
        }
        let cm = crate::encode::test_util::five_per_centimetre();
        let out = TiffEncoder::default()
            .encode(&gradient(4, 4, 1), &cm)
            .unwrap();
        assert_eq!(tag_u16(&out, Tag::ResolutionUnit), Some(vec![3]));
    }

    #[test]
    fn ifd_is_last_and_complete() {
        let out = encode(&gradient(40, 40, 3), 2, 1);
        let ifd = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        assert_eq!(ifd % 2, 0);
        let count = u16::from_le_bytes([out[ifd], out[ifd + 1]]) as usize;
        assert_eq!(
            ifd + 2 + count * 12 + 4,
            out.len(),
            "the file ends with the IFD"
        );
        let tags: Vec<u16> = (0..count)
            .map(|i| u16::from_le_bytes([out[ifd + 2 + i * 12], out[ifd + 3 + i * 12]]))
            .collect();
        assert!(tags.windows(2).all(|w| w[0] < w[1]), "sorted tags");
    }

    /// libtiff (through `tiffcp`, when installed) reads every compression back.
    #[test]
    fn libtiff_reads_every_compression() {
        let dir = std::env::temp_dir().join(format!("iipsrv-tiff-{}", std::process::id()));
        if std::process::Command::new("tiffcp")
            .arg("-h")
            .output()
            .is_err()
        {
            eprintln!("tiffcp not installed; skipped");
            return;
        }
        std::fs::create_dir_all(&dir).unwrap();
        for (compression, channels) in [
            (0, 3),
            (1, 4),
            (2, 1),
            (3, 3),
            (3, 1),
            (4, 3),
            (4, 4),
            (5, 2),
        ] {
            let img = gradient(300, 1000, channels);
            let input = dir.join(format!("in-{compression}-{channels}.tif"));
            let output = dir.join(format!("out-{compression}-{channels}.tif"));
            std::fs::write(&input, encode(&img, compression, 90)).unwrap();
            let run = std::process::Command::new("tiffcp")
                .args(["-c", "none"])
                .arg(&input)
                .arg(&output)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(
                run.status.success() && stderr.trim().is_empty(),
                "compression {compression}: {stderr}"
            );
            let pixels = read_u8(&std::fs::read(&output).unwrap());
            let expected = img.as_u8().unwrap();
            let p = psnr(expected, &pixels[..expected.len()]);
            assert!(
                p > 30.0,
                "compression {compression}, {channels} channels: PSNR {p}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
