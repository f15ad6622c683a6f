//! PNG output through the `png` crate (`docs/behaviour/pipeline-and-encoding.md` §6.2).
//!
//! Input: 1 → Gray, 2 → GrayAlpha, 3 → RGB, 4 → RGBA, 8- or 16-bit. No interlace.
//!
//! # Compression levels
//!
//! PNG_QUALITY (and `QLT`) is zlib's level 0–9 in iipsrv (default 1). Through the `png` crate
//! zlib levels are slow (level 6, its default, is ~20× slower than fdeflate on a tile), so the
//! default level 1 uses fdeflate and the other levels keep their zlib meaning:
//!
//! | quality | deflate | filter | 256² tile / 1000² image (release, `examples/encode_bench.rs`) |
//! |---|---|---|---|
//! | ≤ 0 | stored (no compression) | none | 0.11 ms / 7.6 ms, largest |
//! | 1 (default) | fdeflate (`Compression::Fast`) | adaptive | 0.36 ms / 8.4 ms |
//! | 2–9 | zlib level 2–9 (flate2 with zlib-rs) | adaptive | level 2: 2.2 ms / 35 ms (−18% size); 6: 7.8 / 126 ms; 9: 17 / 313 ms |
//!
//! Values above 9 act as 9. Adaptive filtering chooses per row among all five PNG filters
//! (iipsrv limited libpng to None, Sub and Up).
//!
//! # Chunks
//!
//! `IHDR, iCCP, pHYs, eXIf, tEXt Software, text…, iTXt XMP, IDAT…, IEND`:
//! - iCCP: profile name `ICC`, zlib-compressed profile.
//! - pHYs: pixels per metre, correctly converted (iipsrv multiplied by 10 for cm and 25.4 for
//!   inches); unit "unknown" with the values unchanged when the source unit is unknown.
//! - Text: `Software` = `iipsrv/1.3`, then `Title` ← title, `Author` ← creator, `Description`
//!   ← description, `Copyright` ← rights, `Creation Time` ← date. Each is a tEXt chunk when the
//!   value is Latin-1, otherwise an uncompressed iTXt (language and translated keyword empty,
//!   properly written: iipsrv crashed with several text fields).
//! - XMP: iTXt `XML:com.adobe.xmp`, uncompressed, as the XMP specification asks (iipsrv used
//!   tEXt, which cannot hold UTF-8).
//! - EXIF: an eXIf chunk (TIFF-structured data), when given.

use std::io::Write as _;

use png::{BitDepth, ColorType, DeflateCompression, Filter};

use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat, ResolutionUnit, SOFTWARE};
use crate::error::Result;
use crate::image::{RawImage, Samples};

/// PNG text keywords by iipsrv metadata key, in the order they are written after `Software`.
const TEXT_KEYS: [(&str, &str); 5] = [
    ("title", "Title"),
    ("creator", "Author"),
    ("description", "Description"),
    ("rights", "Copyright"),
    ("date", "Creation Time"),
];

/// PNG encoder: 1–4 channels, 8- or 16-bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct PngEncoder;

impl Encoder for PngEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Png
    }

    fn accepts(&self) -> Accepts {
        Accepts::SIXTEEN_BIT
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Ok(encode(image, options)?)
    }
}

fn encode(image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>, EncodeError> {
    let colour = match image.channels {
        1 => ColorType::Grayscale,
        2 => ColorType::GrayscaleAlpha,
        3 => ColorType::Rgb,
        4 => ColorType::Rgba,
        _ => return Err(unsupported(image)),
    };
    let (depth, be16);
    let bytes: &[u8] = match &image.samples {
        Samples::U8(v) => {
            super::check_len(image, v.len())?;
            depth = BitDepth::Eight;
            v
        }
        Samples::U16(v) => {
            super::check_len(image, v.len())?;
            depth = BitDepth::Sixteen;
            be16 = v.iter().flat_map(|s| s.to_be_bytes()).collect::<Vec<u8>>();
            &be16
        }
        _ => return Err(unsupported(image)),
    };

    let mut out = Vec::with_capacity(bytes.len() / 2 + 1024);
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(colour);
    encoder.set_depth(depth);
    let (deflate, filter) = compression(options.quality);
    encoder.set_deflate_compression(deflate);
    encoder.set_filter(filter);

    let codec = |e: png::EncodingError| EncodeError::codec(OutputFormat::Png, e.to_string());
    let mut writer = encoder.write_header().map_err(codec)?;
    for (name, data) in ancillary_chunks(options)? {
        writer
            .write_chunk(png::chunk::ChunkType(name), &data)
            .map_err(codec)?;
    }
    writer.write_image_data(bytes).map_err(codec)?;
    writer.finish().map_err(codec)?;
    Ok(out)
}

fn unsupported(image: &RawImage) -> EncodeError {
    EncodeError::UnsupportedInput {
        format: OutputFormat::Png,
        channels: image.channels,
        bits: image.bits_per_sample,
    }
}

/// Deflate settings for a PNG quality (see the module documentation).
fn compression(quality: i32) -> (DeflateCompression, Filter) {
    match quality {
        ..=0 => (DeflateCompression::NoCompression, Filter::NoFilter),
        1 => (DeflateCompression::FdeflateUltraFast, Filter::Adaptive),
        level => (
            DeflateCompression::Level(level.min(9) as u8),
            Filter::Adaptive,
        ),
    }
}

/// A chunk's name and data.
type Chunk = ([u8; 4], Vec<u8>);

/// The ancillary chunks between IHDR and IDAT, in order.
fn ancillary_chunks(options: &EncodeOptions<'_>) -> Result<Vec<Chunk>, EncodeError> {
    let mut chunks = Vec::new();
    if let Some(icc) = options.icc.filter(|i| !i.is_empty()) {
        let mut data = b"ICC\0\0".to_vec(); // name, NUL, compression method 0 (zlib)
        let mut z = flate2::write::ZlibEncoder::new(&mut data, flate2::Compression::default());
        z.write_all(icc)
            .and_then(|_| z.finish().map(|_| ()))
            .map_err(|e| EncodeError::codec(OutputFormat::Png, e.to_string()))?;
        chunks.push((*b"iCCP", data));
    }
    if let Some(r) = options.resolution {
        let (x, y) = r.per_metre();
        let to_u32 = |v: f64| v.round().clamp(0.0, i32::MAX as f64) as u32;
        let mut data = Vec::with_capacity(9);
        data.extend_from_slice(&to_u32(x).to_be_bytes());
        data.extend_from_slice(&to_u32(y).to_be_bytes());
        data.push(u8::from(r.unit != ResolutionUnit::Unknown));
        chunks.push((*b"pHYs", data));
    }
    if let Some(exif) = options.exif_tiff() {
        if exif.starts_with(b"II*\0") || exif.starts_with(b"MM\0*") {
            chunks.push((*b"eXIf", exif.to_vec()));
        } else {
            tracing::debug!("EXIF without a TIFF header; not embedded in PNG");
        }
    }
    chunks.push(text_chunk("Software", SOFTWARE));
    for (key, keyword) in TEXT_KEYS {
        if let Some(value) = options.text_value(key) {
            chunks.push(text_chunk(keyword, value));
        }
    }
    if let Some(xmp) = options.xmp.filter(|x| !x.is_empty()) {
        chunks.push((*b"iTXt", itxt(b"XML:com.adobe.xmp", xmp)));
    }
    Ok(chunks)
}

/// A tEXt chunk if `text` is Latin-1, otherwise an uncompressed iTXt. NULs are dropped.
fn text_chunk(keyword: &str, text: &str) -> Chunk {
    let text: String = text.chars().filter(|&c| c != '\0').collect();
    if text.chars().all(|c| (c as u32) < 256) {
        let mut data = Vec::with_capacity(keyword.len() + 1 + text.len());
        data.extend_from_slice(keyword.as_bytes());
        data.push(0);
        data.extend(text.chars().map(|c| c as u8));
        (*b"tEXt", data)
    } else {
        (*b"iTXt", itxt(keyword.as_bytes(), text.as_bytes()))
    }
}

/// iTXt data: keyword, NUL, uncompressed, method 0, empty language tag and translated keyword.
fn itxt(keyword: &[u8], utf8: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(keyword.len() + 5 + utf8.len());
    data.extend_from_slice(keyword);
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(utf8);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Resolution;
    use crate::encode::test_util::{EXIF, XMP, fake_icc, gradient, gradient16};
    use std::io::Cursor;

    struct Decoded {
        info: png::Info<'static>,
        pixels: Vec<u8>,
        colour: ColorType,
        depth: BitDepth,
    }

    fn decode(data: &[u8]) -> Decoded {
        let mut decoder = png::Decoder::new(Cursor::new(data.to_vec()));
        decoder.set_ignore_text_chunk(false);
        let mut reader = decoder.read_info().expect("png decodes the header");
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader
            .next_frame(&mut pixels)
            .expect("png decodes the image");
        pixels.truncate(frame.buffer_size());
        reader.finish().expect("complete file");
        Decoded {
            info: reader.info().clone(),
            pixels,
            colour: frame.color_type,
            depth: frame.bit_depth,
        }
    }

    /// Chunk names in file order; checks lengths, CRCs and that IEND ends the file.
    fn chunk_names(data: &[u8]) -> Vec<String> {
        assert_eq!(&data[..8], b"\x89PNG\r\n\x1a\n");
        let mut pos = 8;
        let mut names = Vec::new();
        while pos < data.len() {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            let body = &data[pos + 4..pos + 8 + len];
            let crc = u32::from_be_bytes(data[pos + 8 + len..pos + 12 + len].try_into().unwrap());
            assert_eq!(crc32fast::hash(body), crc, "CRC");
            names.push(String::from_utf8_lossy(&body[..4]).into_owned());
            pos += 12 + len;
        }
        assert_eq!(pos, data.len());
        assert_eq!(names.last().map(String::as_str), Some("IEND"));
        names
    }

    fn opts(quality: i32) -> EncodeOptions<'static> {
        EncodeOptions {
            quality,
            ..Default::default()
        }
    }

    #[test]
    fn lossless_every_channel_count_and_level() {
        for channels in 1..=4u16 {
            let img = gradient(77, 41, channels);
            for quality in [-1, 0, 1, 2, 6, 9, 12] {
                let out = PngEncoder.encode(&img, &opts(quality)).unwrap();
                let dec = decode(&out);
                assert_eq!((dec.info.width, dec.info.height), (77, 41));
                assert_eq!(dec.colour.samples(), channels as usize);
                assert_eq!(dec.depth, BitDepth::Eight);
                assert_eq!(
                    dec.pixels,
                    img.as_u8().unwrap(),
                    "{channels} channels, quality {quality}"
                );
            }
        }
    }

    #[test]
    fn levels_trade_size() {
        let img = gradient(256, 256, 3);
        let size = |q| PngEncoder.encode(&img, &opts(q)).unwrap().len();
        let (stored, fast, best) = (size(0), size(1), size(9));
        assert!(
            stored > 3 * 256 * 256 && fast < stored && best < fast,
            "{stored} {fast} {best}"
        );
    }

    #[test]
    fn sixteen_bit() {
        for channels in [1u16, 3, 4] {
            let img = gradient16(40, 30, channels);
            let out = PngEncoder.encode(&img, &opts(1)).unwrap();
            let dec = decode(&out);
            assert_eq!(dec.depth, BitDepth::Sixteen);
            let Samples::U16(expected) = &img.samples else {
                unreachable!()
            };
            let got: Vec<u16> = dec
                .pixels
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect();
            assert_eq!(&got, expected);
        }
    }

    #[test]
    fn default_chunks_without_metadata() {
        let out = PngEncoder.encode(&gradient(8, 8, 3), &opts(1)).unwrap();
        assert_eq!(chunk_names(&out), ["IHDR", "tEXt", "IDAT", "IEND"]);
        let dec = decode(&out);
        assert!(dec.info.icc_profile.is_none() && dec.info.pixel_dims.is_none());
        assert_eq!(dec.info.uncompressed_latin1_text[0].keyword, "Software");
        assert_eq!(dec.info.uncompressed_latin1_text[0].text, "iipsrv/1.3");
    }

    #[test]
    fn metadata_chunks() {
        let icc = fake_icc(3144);
        let options = EncodeOptions {
            quality: 1,
            icc: Some(&icc),
            xmp: Some(XMP),
            exif: Some(EXIF),
            resolution: Some(Resolution {
                x: 5.0,
                y: 10.0,
                unit: ResolutionUnit::Centimetre,
            }),
            text: vec![
                ("title", "Grad".into()),
                ("creator", "Zoë".into()),
                ("description", "Ελληνικά".into()),
                ("rights", "CC0".into()),
                ("date", "2024:01:02 03:04:05".into()),
                ("make", "ignored".into()),
            ],
            ..Default::default()
        };
        let img = gradient(20, 20, 4);
        let out = PngEncoder.encode(&img, &options).unwrap();
        assert_eq!(
            chunk_names(&out),
            [
                "IHDR", "iCCP", "pHYs", "eXIf", "tEXt", "tEXt", "tEXt", "iTXt", "tEXt", "tEXt",
                "iTXt", "IDAT", "IEND"
            ]
        );
        let dec = decode(&out);
        assert_eq!(dec.pixels, img.as_u8().unwrap());
        assert_eq!(dec.info.icc_profile.as_deref(), Some(icc.as_slice()));
        assert_eq!(dec.info.exif_metadata.as_deref(), Some(EXIF));
        let dims = dec.info.pixel_dims.unwrap();
        assert_eq!(
            (dims.xppu, dims.yppu, dims.unit),
            (500, 1000, png::Unit::Meter)
        );
        let latin1: Vec<(&str, &str)> = dec
            .info
            .uncompressed_latin1_text
            .iter()
            .map(|t| (t.keyword.as_str(), t.text.as_str()))
            .collect();
        assert_eq!(
            latin1,
            [
                ("Software", "iipsrv/1.3"),
                ("Title", "Grad"),
                ("Author", "Zoë"),
                ("Copyright", "CC0"),
                ("Creation Time", "2024:01:02 03:04:05")
            ]
        );
        let utf8: Vec<(String, String)> = dec
            .info
            .utf8_text
            .iter()
            .map(|t| (t.keyword.clone(), t.get_text().unwrap()))
            .collect();
        assert_eq!(utf8[0], ("Description".to_string(), "Ελληνικά".to_string()));
        assert_eq!(
            utf8[1],
            (
                "XML:com.adobe.xmp".to_string(),
                String::from_utf8(XMP.to_vec()).unwrap()
            )
        );
        assert!(
            dec.info
                .utf8_text
                .iter()
                .all(|t| !t.compressed && t.language_tag.is_empty())
        );
    }

    #[test]
    fn resolution_units() {
        let img = gradient(4, 4, 1);
        let dims = |unit| {
            let options = EncodeOptions {
                resolution: Some(Resolution {
                    x: 300.0,
                    y: 72.0,
                    unit,
                }),
                ..Default::default()
            };
            decode(&PngEncoder.encode(&img, &options).unwrap())
                .info
                .pixel_dims
                .unwrap()
        };
        let inch = dims(ResolutionUnit::Inch);
        assert_eq!(
            (inch.xppu, inch.yppu, inch.unit),
            (11811, 2835, png::Unit::Meter)
        );
        let unknown = dims(ResolutionUnit::Unknown);
        assert_eq!(
            (unknown.xppu, unknown.yppu, unknown.unit),
            (300, 72, png::Unit::Unspecified)
        );
    }

    #[test]
    fn rejects_unsupported() {
        let five = RawImage::from_u8(2, 2, 5, crate::image::ColourSpace::Multiband, vec![0; 20]);
        assert!(PngEncoder.encode(&five, &opts(1)).is_err());
    }
}
