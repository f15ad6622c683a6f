//! JPEG output through Debian's libturbojpeg (`docs/behaviour/pipeline-and-encoding.md` §6.1).
//!
//! libjpeg defaults as iipsrv has them: baseline, standard Huffman tables, 4:2:0 chroma
//! subsampling for colour, quality 1–100 (0 and below act as 1).
//!
//! TurboJPEG 2.x cannot write markers, so the metadata segments are spliced into its output
//! after SOI and the JFIF APP0 (whose density bytes are patched in place):
//!
//! ```text
//! SOI, APP0 JFIF 1.01 (density), COM "iipsrv/1.3", APP2 ICC_PROFILE chunks,
//! APP1 XMP, APP1 EXIF, DQT, SOF0, DHT, SOS, scan, EOI
//! ```
//!
//! [`insert_metadata`] builds the same segments for stored tiles sent by codec pass-through.
//! Unlike upstream it does not overwrite the last two bytes of the ICC profile (docs/behaviour/cache.md §4.3).

use std::borrow::Cow;
use std::cell::RefCell;

use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use super::{
    Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat, Resolution, ResolutionUnit,
    SOFTWARE,
};
use crate::error::Result;
use crate::image::RawImage;

/// Payload bytes of one APP2 ICC chunk: 65535 − 2 (length) − 12 (`ICC_PROFILE\0`) − 2 (seq, count).
const ICC_CHUNK: usize = 65519;
const ICC_TAG: &[u8] = b"ICC_PROFILE\0";
const XMP_TAG: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const EXIF_TAG: &[u8] = b"Exif\0\0";
/// Largest payload of one marker segment (its length field counts itself).
const MAX_SEGMENT: usize = 65533;

/// JPEG encoder: 8-bit grey or RGB; alpha is dropped (grey+alpha → grey, RGBA → RGB).
#[derive(Debug, Clone, Copy, Default)]
pub struct JpegEncoder;

impl Encoder for JpegEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Jpeg
    }

    fn accepts(&self) -> Accepts {
        Accepts::EIGHT_BIT
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        let data = super::checked_u8(image, OutputFormat::Jpeg)?;
        let jpeg = compress(
            data,
            image.width,
            image.height,
            image.channels,
            options.quality,
        )?;
        Ok(add_markers(jpeg, options)?)
    }
}

/// Encodes 8-bit pixels (1–4 channels, alpha dropped) into a JFIF stream as libjpeg writes
/// it: SOI, APP0 JFIF with 1:1 density, tables, scan, EOI. Also used for JPEG-in-TIFF strips.
pub(crate) fn compress(
    data: &[u8],
    width: u32,
    height: u32,
    channels: u16,
    quality: i32,
) -> Result<Vec<u8>, EncodeError> {
    let unsupported = || EncodeError::UnsupportedInput {
        format: OutputFormat::Jpeg,
        channels,
        bits: 8,
    };
    let (pixels, format, subsamp): (Cow<[u8]>, _, _) = match channels {
        1 => (Cow::Borrowed(data), PixelFormat::GRAY, Subsamp::Gray),
        2 => (
            Cow::Owned(data.iter().step_by(2).copied().collect()),
            PixelFormat::GRAY,
            Subsamp::Gray,
        ),
        3 => (Cow::Borrowed(data), PixelFormat::RGB, Subsamp::Sub2x2),
        4 => (Cow::Borrowed(data), PixelFormat::RGBX, Subsamp::Sub2x2),
        _ => return Err(unsupported()),
    };
    // TurboJPEG 2.x takes int dimensions; JPEG itself stops at 65535.
    if width > 65535 || height > 65535 {
        return Err(EncodeError::TooLarge {
            format: OutputFormat::Jpeg,
            width,
            height,
        });
    }
    let image = Image {
        pixels: &*pixels,
        width: width as usize,
        pitch: width as usize * format.size(),
        height: height as usize,
        format,
    };
    let codec = |e: turbojpeg::Error| EncodeError::codec(OutputFormat::Jpeg, e.to_string());
    thread_local! {
        static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(Compressor::new().map_err(codec)?),
        };
        compressor.set_quality(quality.clamp(1, 100));
        compressor.set_subsamp(subsamp);
        compressor.compress_to_vec(image).map_err(codec)
    })
}

/// Sets the JFIF density and splices in COM, ICC, XMP and EXIF after the APP0.
fn add_markers(mut jpeg: Vec<u8>, options: &EncodeOptions<'_>) -> Result<Vec<u8>, EncodeError> {
    let malformed = |m: &str| EncodeError::Malformed {
        format: OutputFormat::Jpeg,
        message: m.into(),
    };
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(malformed("no SOI from libturbojpeg"));
    }
    let insert_at = match jfif_end(&jpeg) {
        Some(end) => {
            let (unit, x, y) = jfif_density(options.resolution.as_ref());
            jpeg[13] = unit;
            jpeg[14..16].copy_from_slice(&x.to_be_bytes());
            jpeg[16..18].copy_from_slice(&y.to_be_bytes());
            end
        }
        None => 2,
    };
    let segments = metadata_segments(options.icc, options.xmp, options.exif_tiff());
    jpeg.splice(insert_at..insert_at, segments);
    Ok(jpeg)
}

/// The end offset of a JFIF APP0 segment directly after SOI (with room for its density fields).
fn jfif_end(jpeg: &[u8]) -> Option<usize> {
    if jpeg.len() < 20 || jpeg[2..4] != [0xFF, 0xE0] || &jpeg[6..11] != b"JFIF\0" {
        return None;
    }
    let len = u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
    (len >= 16 && 4 + len <= jpeg.len()).then_some(4 + len)
}

/// JFIF unit and densities: rounded values in the image's own unit, 1:1 unit 0 when unknown.
fn jfif_density(resolution: Option<&Resolution>) -> (u8, u16, u16) {
    let Some(r) = resolution else {
        return (0, 1, 1);
    };
    let unit = match r.unit {
        ResolutionUnit::Unknown => 0,
        ResolutionUnit::Inch => 1,
        ResolutionUnit::Centimetre => 2,
    };
    let round = |v: f64| v.round().clamp(1.0, 65535.0) as u16;
    (unit, round(r.x), round(r.y))
}

/// COM `iipsrv/1.3`, the ICC profile in APP2 chunks, APP1 XMP and APP1 EXIF, as marker
/// segments. Metadata too large for JPEG markers is left out (ICC above 255 chunks, XMP above
/// 65504 bytes, EXIF above 65527 bytes; iipsrv overflowed its buffer on such EXIF).
fn metadata_segments(icc: Option<&[u8]>, xmp: Option<&[u8]>, exif: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    push_segment(&mut out, 0xFE, &[SOFTWARE.as_bytes()]);
    if let Some(icc) = icc.filter(|icc| !icc.is_empty()) {
        let count = icc.len().div_ceil(ICC_CHUNK);
        if count <= 255 {
            for (i, chunk) in icc.chunks(ICC_CHUNK).enumerate() {
                push_segment(
                    &mut out,
                    0xE2,
                    &[ICC_TAG, &[i as u8 + 1, count as u8], chunk],
                );
            }
        } else {
            tracing::warn!(
                bytes = icc.len(),
                "ICC profile too large for JPEG APP2 markers; not embedded"
            );
        }
    }
    if let Some(xmp) = xmp.filter(|x| !x.is_empty()) {
        if XMP_TAG.len() + xmp.len() <= MAX_SEGMENT {
            push_segment(&mut out, 0xE1, &[XMP_TAG, xmp]);
        } else {
            tracing::warn!(
                bytes = xmp.len(),
                "XMP packet too large for a JPEG APP1 marker; not embedded"
            );
        }
    }
    if let Some(exif) = exif {
        if EXIF_TAG.len() + exif.len() <= MAX_SEGMENT {
            push_segment(&mut out, 0xE1, &[EXIF_TAG, exif]);
        } else {
            tracing::warn!(
                bytes = exif.len(),
                "EXIF too large for a JPEG APP1 marker; not embedded"
            );
        }
    }
    out
}

/// Appends one marker segment; the parts must fit in [`MAX_SEGMENT`] bytes.
fn push_segment(out: &mut Vec<u8>, marker: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    debug_assert!(len <= MAX_SEGMENT);
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((len + 2) as u16).to_be_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Adds iipsrv's metadata header to a JPEG stream that has none (codec pass-through tiles,
/// docs/behaviour/cache.md §4.3): SOI, COM `iipsrv/1.3`, APP2 ICC chunks, APP1 XMP, APP1 EXIF, then the stream
/// without its SOI. A JFIF APP0 at the start of the stream stays first, as JFIF requires.
///
/// With no metadata at all the stream is returned unchanged (upstream injects nothing then).
/// `exif` may carry a leading `Exif\0\0`.
pub fn insert_metadata(
    stream: &[u8],
    icc: Option<&[u8]>,
    xmp: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    if !stream.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(EncodeError::Malformed {
            format: OutputFormat::Jpeg,
            message: "no SOI".into(),
        });
    }
    let exif = exif
        .map(|e| e.strip_prefix(EXIF_TAG).unwrap_or(e))
        .filter(|e| !e.is_empty());
    let (icc, xmp) = (icc.filter(|i| !i.is_empty()), xmp.filter(|x| !x.is_empty()));
    if icc.is_none() && xmp.is_none() && exif.is_none() {
        return Ok(stream.to_vec());
    }
    let segments = metadata_segments(icc, xmp, exif);
    let at = jfif_end(stream).unwrap_or(2);
    let mut out = Vec::with_capacity(stream.len() + segments.len());
    out.extend_from_slice(&stream[..at]);
    out.extend_from_slice(&segments);
    out.extend_from_slice(&stream[at..]);
    Ok(out)
}

/// The marker segments before the first SOS: (marker, payload).
fn segments(jpeg: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut pos = 2;
    std::iter::from_fn(move || {
        if !jpeg.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        while pos < jpeg.len() && jpeg[pos] == 0xFF && jpeg.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        if pos + 4 > jpeg.len()
            || jpeg[pos] != 0xFF
            || jpeg[pos + 1] == 0xDA
            || jpeg[pos + 1] == 0xD9
        {
            return None;
        }
        let marker = jpeg[pos + 1];
        let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
        if len < 2 || pos + 2 + len > jpeg.len() {
            return None;
        }
        let payload = &jpeg[pos + 4..pos + 2 + len];
        pos += 2 + len;
        Some((marker, payload))
    })
}

/// The ICC profile stored in a JPEG's APP2 `ICC_PROFILE` chunks, reassembled in sequence
/// order; `None` if there is none or the chunks are inconsistent.
pub fn icc_profile(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, u8, &[u8])> = segments(jpeg)
        .filter(|(m, p)| *m == 0xE2 && p.starts_with(ICC_TAG) && p.len() >= ICC_TAG.len() + 2)
        .map(|(_, p)| {
            (
                p[ICC_TAG.len()],
                p[ICC_TAG.len() + 1],
                &p[ICC_TAG.len() + 2..],
            )
        })
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    let count = chunks[0].1 as usize;
    let consistent = chunks.len() == count
        && chunks
            .iter()
            .enumerate()
            .all(|(i, c)| c.0 as usize == i + 1 && c.1 as usize == count);
    consistent.then(|| chunks.iter().flat_map(|c| c.2.iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::test_util::{EXIF, XMP, drop_channel, fake_icc, gradient, psnr};

    fn decode(jpeg: &[u8], format: PixelFormat) -> turbojpeg::Image<Vec<u8>> {
        turbojpeg::decompress(jpeg, format).expect("libturbojpeg decodes the output")
    }

    fn encode(image: &RawImage, options: &EncodeOptions<'_>) -> Vec<u8> {
        let out = JpegEncoder.encode(image, options).expect("encodes");
        assert!(
            out.starts_with(&[0xFF, 0xD8]) && out.ends_with(&[0xFF, 0xD9]),
            "complete JPEG"
        );
        out
    }

    fn opts(quality: i32) -> EncodeOptions<'static> {
        EncodeOptions {
            quality,
            ..Default::default()
        }
    }

    #[test]
    fn rgb_round_trip() {
        let img = gradient(256, 256, 3);
        let out = encode(&img, &opts(75));
        let dec = decode(&out, PixelFormat::RGB);
        assert_eq!((dec.width, dec.height), (256, 256));
        let header = turbojpeg::read_header(&out).unwrap();
        assert_eq!(header.subsamp, Subsamp::Sub2x2);
        let p = psnr(img.as_u8().unwrap(), &dec.pixels);
        assert!(p > 35.0, "PSNR {p}");
        assert_eq!(icc_profile(&out), None);
    }

    #[test]
    fn grey_and_alpha_inputs() {
        for channels in [1u16, 2] {
            let img = gradient(100, 60, channels);
            let out = encode(&img, &opts(90));
            let header = turbojpeg::read_header(&out).unwrap();
            assert_eq!(header.subsamp, Subsamp::Gray);
            let dec = decode(&out, PixelFormat::GRAY);
            let grey = if channels == 2 {
                drop_channel(img.as_u8().unwrap(), 2, 1)
            } else {
                img.as_u8().unwrap().to_vec()
            };
            assert!(psnr(&grey, &dec.pixels) > 40.0);
        }
        let rgba = gradient(64, 64, 4);
        let dec = decode(&encode(&rgba, &opts(90)), PixelFormat::RGB);
        let rgb = drop_channel(rgba.as_u8().unwrap(), 4, 3);
        assert!(psnr(&rgb, &dec.pixels) > 35.0);
    }

    #[test]
    fn quality_extremes() {
        let img = gradient(256, 256, 3);
        let q1 = encode(&img, &opts(1));
        let q100 = encode(&img, &opts(100));
        let q0 = encode(&img, &opts(0));
        assert_eq!(q0, q1, "0 acts as 1");
        assert_eq!(encode(&img, &opts(150)), q100, "above 100 acts as 100");
        assert!(q1.len() < q100.len());
        let p1 = psnr(img.as_u8().unwrap(), &decode(&q1, PixelFormat::RGB).pixels);
        let p100 = psnr(
            img.as_u8().unwrap(),
            &decode(&q100, PixelFormat::RGB).pixels,
        );
        assert!(p1 > 15.0 && p100 > 45.0 && p100 > p1, "{p1} {p100}");
    }

    #[test]
    fn marker_layout_and_density() {
        let img = gradient(32, 32, 3);
        let options = EncodeOptions {
            quality: 75,
            resolution: Some(Resolution {
                x: 299.6,
                y: 150.2,
                unit: ResolutionUnit::Inch,
            }),
            ..Default::default()
        };
        let out = encode(&img, &options);
        let segs: Vec<_> = segments(&out).collect();
        assert_eq!(segs[0].0, 0xE0);
        assert_eq!(&segs[0].1[..5], b"JFIF\0");
        assert_eq!(&segs[0].1[5..7], &[1, 1], "JFIF 1.01");
        assert_eq!(&segs[0].1[7..12], &[1, 1, 44, 0, 150], "inch, 300 x 150");
        assert_eq!(segs[1], (0xFE, b"iipsrv/1.3".as_slice()));
        assert_eq!(segs[2].0, 0xDB, "tables follow directly without metadata");

        let out = encode(&img, &opts(75));
        let segs: Vec<_> = segments(&out).collect();
        assert_eq!(&segs[0].1[7..12], &[0, 0, 1, 0, 1], "1:1, no unit");
        let cm = crate::encode::test_util::five_per_centimetre();
        let segs: Vec<_> = segments(&encode(&img, &cm))
            .map(|(m, p)| (m, p.to_vec()))
            .collect();
        assert_eq!(&segs[0].1[7..12], &[2, 0, 5, 0, 5]);
    }

    #[test]
    fn icc_xmp_exif_embedded() {
        let img = gradient(64, 48, 3);
        for icc_len in [560, ICC_CHUNK, ICC_CHUNK + 1, 150_000] {
            let icc = fake_icc(icc_len);
            let options = EncodeOptions {
                quality: 75,
                icc: Some(&icc),
                xmp: Some(XMP),
                exif: Some(EXIF),
                ..Default::default()
            };
            let out = encode(&img, &options);
            assert_eq!(
                icc_profile(&out).as_deref(),
                Some(icc.as_slice()),
                "ICC of {icc_len} bytes"
            );
            let segs: Vec<_> = segments(&out).collect();
            let markers: Vec<u8> = segs.iter().map(|s| s.0).collect();
            let chunks = icc_len.div_ceil(ICC_CHUNK);
            let mut expected = vec![0xE0, 0xFE];
            expected.extend(std::iter::repeat_n(0xE2, chunks));
            expected.extend([0xE1, 0xE1, 0xDB]);
            assert_eq!(&markers[..expected.len()], &expected[..]);
            for (i, seg) in segs[2..2 + chunks].iter().enumerate() {
                assert_eq!(
                    &seg.1[12..14],
                    &[i as u8 + 1, chunks as u8],
                    "sequence numbers"
                );
            }
            assert_eq!(segs[2 + chunks].1, [XMP_TAG, XMP].concat().as_slice());
            assert_eq!(segs[3 + chunks].1, [EXIF_TAG, EXIF].concat().as_slice());
            let dec = decode(&out, PixelFormat::RGB);
            assert!(psnr(img.as_u8().unwrap(), &dec.pixels) > 35.0);
        }
    }

    #[test]
    fn exif_prefix_stripped_and_oversized_skipped() {
        let img = gradient(16, 16, 1);
        let prefixed = [EXIF_TAG, EXIF].concat();
        let big_xmp = vec![b' '; MAX_SEGMENT - XMP_TAG.len() + 1];
        let options = EncodeOptions {
            exif: Some(&prefixed),
            xmp: Some(&big_xmp),
            ..Default::default()
        };
        let out = encode(&img, &options);
        let app1: Vec<_> = segments(&out).filter(|s| s.0 == 0xE1).collect();
        assert_eq!(app1.len(), 1, "oversized XMP skipped");
        assert_eq!(app1[0].1, prefixed.as_slice(), "one Exif\\0\\0 prefix");
    }

    #[test]
    fn pass_through_insertion() {
        // A JFIF-less stream, as built from JPEGTables + tile data.
        let img = gradient(64, 64, 3);
        let plain = encode(&img, &opts(75));
        let end = jfif_end(&plain).unwrap();
        let stream = [&plain[..2], &plain[end..]].concat();
        let icc = fake_icc(70_000);
        let out = insert_metadata(&stream, Some(&icc), None, None).unwrap();
        assert_eq!(&out[..4], &[0xFF, 0xD8, 0xFF, 0xFE]);
        assert_eq!(
            icc_profile(&out).as_deref(),
            Some(icc.as_slice()),
            "profile intact to its last byte"
        );
        assert_eq!(&out[out.len() - (stream.len() - 2)..], &stream[2..]);
        assert_eq!(
            decode(&out, PixelFormat::RGB).pixels,
            decode(&stream, PixelFormat::RGB).pixels
        );
        // JFIF stays first; nothing to insert leaves the stream alone.
        let with_jfif = insert_metadata(&plain, Some(&icc), None, None).unwrap();
        assert_eq!(&with_jfif[2..4], &[0xFF, 0xE0]);
        assert_eq!(icc_profile(&with_jfif).as_deref(), Some(icc.as_slice()));
        assert_eq!(insert_metadata(&stream, None, None, None).unwrap(), stream);
        assert!(insert_metadata(b"not a jpeg", Some(&icc), None, None).is_err());
    }

    #[test]
    fn rejects_sixteen_bit_and_many_channels() {
        let img16 = crate::encode::test_util::gradient16(8, 8, 3);
        assert!(JpegEncoder.encode(&img16, &opts(75)).is_err());
        let five = RawImage::from_u8(2, 2, 5, crate::image::ColourSpace::Multiband, vec![0; 20]);
        assert!(JpegEncoder.encode(&five, &opts(75)).is_err());
    }
}
