//! GIF output (an IIIF extension; iipsrv writes no GIF): one frame, a palette of at most 256
//! colours, with the image-rs `gif` encoder (LZW).
//!
//! The palette depends on the image:
//!
//! | input | palette | pixels |
//! |---|---|---|
//! | grey | the 256 greys, index = value | exact |
//! | grey + alpha | the 256 greys, the least used grey turned into the transparent entry | exact except that grey (moved to its neighbour), `gif`'s `from_grayscale_with_alpha` |
//! | RGB, RGBA | quantised by imagequant (libimagequant 4, pngquant's library), with Floyd–Steinberg dithering | nearest palette colours |
//!
//! GIF has one bit of transparency: alpha below 128 becomes the transparent entry, anything
//! else is opaque.
//!
//! imagequant was chosen over NeuQuant (`color_quant`, what `gif` itself offers) for its
//! better palettes and its dithering (it is what pngquant and gifski use); it is
//! GPL-3.0-or-later like this program. Measured on three 512-pixel-wide images (a painting,
//! a photograph, flat colours), as PSNR after a 3×3 blur (dithering is meant to be seen from
//! a distance): imagequant at [`SPEED`] with dithering 50.3 / 40.8 / 47.1 dB in 40–120 ms,
//! NeuQuant at `gif`'s default sampling 49.0 / 39.2 / 43.6 dB in 20–35 ms, NeuQuant at its
//! best sampling 51.5 / 41.6 / 44.8 dB in 125–210 ms (no dithering: banding on gradients).
//! `quantette` (faster) needs a newer Rust than ours.
//!
//! 16-bit samples (not produced by the pipeline, which hands over 8-bit data) are scaled to
//! 8 bits, round(v · 255 / 65535). No metadata is written (GIF has no place for ICC, EXIF or
//! resolution).
//!
//! Limits: GIF sides are 16-bit (65535); quantisation and remapping hold about 6 bytes per
//! pixel besides the input, so images above [`MAX_GIF_PIXELS`] are refused.

use std::borrow::Cow;

use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat};
use crate::error::Result;
use crate::image::{RawImage, Samples};

/// Largest GIF written, in pixels: the default `MAX_CVT` (5000) squared. Quantising holds the
/// RGBA copy (4 bytes/pixel), the indices (1 byte/pixel) and imagequant's working rows; at
/// this size about 150 MB and some 10 seconds.
pub const MAX_GIF_PIXELS: u64 = 25_000_000;

/// GIF's largest side (16-bit fields).
const MAX_GIF_SIDE: u32 = 65535;

/// imagequant speed, 1 (best) to 10 (fastest), for images up to [`SMALL_PIXELS`]: 6 keeps its
/// contrast and dithering maps (edges are not dithered) with few k-means iterations. 4 is
/// imagequant's default and barely better.
pub const SPEED: i32 = 6;

/// imagequant speed above [`SMALL_PIXELS`]: 8 drops the maps, three times faster on large
/// images (measured 0.4 s instead of 1.3 s for a noisy 1000×1000 image on a busy machine).
pub const SPEED_LARGE: i32 = 8;

/// Images up to this many pixels (512²) are quantised at [`SPEED`], larger ones at
/// [`SPEED_LARGE`].
pub const SMALL_PIXELS: u64 = 512 * 512;

/// Alpha below this is the transparent palette entry, the rest opaque.
const ALPHA_THRESHOLD: u8 = 128;

/// GIF encoder: 8-bit (16-bit scaled) grey, grey+alpha, RGB or RGBA.
#[derive(Debug, Clone, Copy, Default)]
pub struct GifEncoder;

impl Encoder for GifEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Gif
    }

    fn accepts(&self) -> Accepts {
        Accepts::EIGHT_BIT
    }

    fn encode(&self, image: &RawImage, _options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Ok(encode(image)?)
    }
}

fn encode(image: &RawImage) -> Result<Vec<u8>, EncodeError> {
    let data: Cow<[u8]> = match &image.samples {
        Samples::U16(v) => {
            super::check_len(image, v.len())?;
            Cow::Owned(
                v.iter()
                    .map(|&s| ((s as u32 * 255 + 32767) / 65535) as u8)
                    .collect(),
            )
        }
        _ => Cow::Borrowed(super::checked_u8(image, OutputFormat::Gif)?),
    };
    let (w, h) = (image.width, image.height);
    if w > MAX_GIF_SIDE || h > MAX_GIF_SIDE || w as u64 * h as u64 > MAX_GIF_PIXELS {
        return Err(EncodeError::OverLimit {
            format: OutputFormat::Gif,
            width: w,
            height: h,
        });
    }
    let (w16, h16) = (w as u16, h as u16);
    let frame = match image.channels {
        1 => ::gif::Frame {
            width: w16,
            height: h16,
            buffer: data,
            palette: Some(grey_palette()),
            ..::gif::Frame::default()
        },
        2 => {
            let thresholded: Vec<u8> = data
                .chunks_exact(2)
                .flat_map(|p| [p[0], if p[1] < ALPHA_THRESHOLD { 0 } else { 255 }])
                .collect();
            ::gif::Frame::from_grayscale_with_alpha(w16, h16, &thresholded)
        }
        3 | 4 => quantised(&data, image.channels as usize, w, h)?,
        channels => {
            return Err(EncodeError::UnsupportedInput {
                format: OutputFormat::Gif,
                channels,
                bits: image.bits_per_sample,
            });
        }
    };
    let codec = |e: ::gif::EncodingError| EncodeError::codec(OutputFormat::Gif, e.to_string());
    let mut out = Vec::with_capacity(frame.buffer.len() / 2 + 1024);
    {
        let mut encoder = ::gif::Encoder::new(&mut out, w16, h16, &[]).map_err(codec)?;
        encoder.write_frame(&frame).map_err(codec)?;
    }
    Ok(out)
}

fn grey_palette() -> Vec<u8> {
    (0..=255u8).flat_map(|g| [g, g, g]).collect()
}

/// RGB or RGBA through imagequant: palette, dithered indices, one transparent entry.
fn quantised(
    data: &[u8],
    channels: usize,
    w: u32,
    h: u32,
) -> Result<::gif::Frame<'static>, EncodeError> {
    let liq = |e: imagequant::Error| EncodeError::codec(OutputFormat::Gif, e.to_string());
    let pixels: Vec<imagequant::RGBA> = data
        .chunks_exact(channels)
        .map(|p| {
            if channels == 4 && p[3] < ALPHA_THRESHOLD {
                imagequant::RGBA::new(0, 0, 0, 0)
            } else {
                imagequant::RGBA::new(p[0], p[1], p[2], 255)
            }
        })
        .collect();
    let mut attributes = imagequant::new();
    let speed = if w as u64 * h as u64 <= SMALL_PIXELS {
        SPEED
    } else {
        SPEED_LARGE
    };
    attributes.set_speed(speed).map_err(liq)?;
    attributes.set_max_colors(256).map_err(liq)?;
    let mut img = attributes
        .new_image(pixels, w as usize, h as usize, 0.0)
        .map_err(liq)?;
    let mut result = attributes.quantize(&mut img).map_err(liq)?;
    result.set_dithering_level(1.0).map_err(liq)?;
    let (palette, mut indices) = result.remapped(&mut img).map_err(liq)?;
    // Every entry with low alpha stands for transparency; GIF has one such entry.
    let transparent = palette.iter().position(|c| c.a < ALPHA_THRESHOLD);
    if let Some(t) = transparent {
        let others: Vec<usize> = palette
            .iter()
            .enumerate()
            .filter(|&(i, c)| i != t && c.a < ALPHA_THRESHOLD)
            .map(|(i, _)| i)
            .collect();
        if !others.is_empty() {
            let mut map: Vec<u8> = (0..=255).collect();
            for i in others {
                map[i] = t as u8;
            }
            indices.iter_mut().for_each(|i| *i = map[*i as usize]);
        }
    }
    Ok(::gif::Frame {
        width: w as u16,
        height: h as u16,
        buffer: Cow::Owned(indices),
        palette: Some(palette.iter().flat_map(|c| [c.r, c.g, c.b]).collect()),
        transparent: transparent.map(|t| t as u8),
        ..::gif::Frame::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::test_util::{gradient, gradient16, psnr};
    use crate::image::ColourSpace;

    /// Decodes with the `gif` crate: (width, height, RGBA pixels).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut options = ::gif::DecodeOptions::new();
        options.set_color_output(::gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(bytes).expect("a GIF");
        let frame = decoder
            .read_next_frame()
            .expect("decodes")
            .expect("a frame");
        let out = (
            frame.width as u32,
            frame.height as u32,
            frame.buffer.to_vec(),
        );
        assert!(decoder.read_next_frame().unwrap().is_none(), "one frame");
        out
    }

    fn encode_default(img: &RawImage) -> Vec<u8> {
        GifEncoder.encode(img, &EncodeOptions::default()).unwrap()
    }

    fn rgb_of(rgba: &[u8]) -> Vec<u8> {
        rgba.chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    #[test]
    fn grey_is_exact_through_a_grey_palette() {
        let img = gradient(64, 48, 1);
        let bytes = encode_default(&img);
        assert!(bytes.starts_with(b"GIF89a"));
        let (w, h, rgba) = decode(&bytes);
        assert_eq!((w, h), (64, 48));
        let grey: Vec<u8> = rgba.chunks_exact(4).map(|p| p[0]).collect();
        assert_eq!(grey, img.as_u8().unwrap());
        assert!(
            rgba.chunks_exact(4)
                .all(|p| p[0] == p[1] && p[1] == p[2] && p[3] == 255)
        );
    }

    #[test]
    fn grey_alpha_gets_one_transparent_entry() {
        // Alpha 0, 100 (below the threshold) and 200, 255 (opaque).
        let data = vec![10, 0, 20, 100, 30, 200, 40, 255];
        let img = RawImage::from_u8(4, 1, 2, ColourSpace::Grey, data);
        let (_, _, rgba) = decode(&encode_default(&img));
        let alpha: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
        assert_eq!(alpha, [0, 0, 255, 255]);
        assert_eq!((rgba[8], rgba[12]), (30, 40));
    }

    #[test]
    fn colour_is_quantised_to_a_good_palette() {
        // Small (SPEED) and large (SPEED_LARGE) images.
        for (w, h) in [(128, 128), (600, 500)] {
            palette_beats_a_fixed_one(w, h);
        }
        // An image with few colours comes out exact.
        let mut data = Vec::new();
        for i in 0..100u32 {
            data.extend_from_slice(&[(i % 5 * 50) as u8, 7, (i % 3 * 100) as u8]);
        }
        let few = RawImage::from_u8(10, 10, 3, ColourSpace::Srgb, data);
        let (_, _, rgba) = decode(&encode_default(&few));
        assert_eq!(rgb_of(&rgba), few.as_u8().unwrap());
    }

    fn palette_beats_a_fixed_one(width: u32, height: u32) {
        // A smooth gradient has far more than 256 colours; dithering keeps it close.
        let img = gradient(width, height, 3);
        let (w, h, rgba) = decode(&encode_default(&img));
        assert_eq!((w, h), (width, height));
        // Far better than a fixed palette (the 6×6×6 web palette, nearest colour), although
        // dithering costs PSNR.
        let quality = psnr(&rgb_of(&rgba), img.as_u8().unwrap());
        let web: Vec<u8> = img
            .as_u8()
            .unwrap()
            .iter()
            .map(|&v| ((v as f64 / 51.0).round() * 51.0) as u8)
            .collect();
        let fixed = psnr(&web, img.as_u8().unwrap());
        assert!(
            quality > fixed + 3.0,
            "{width}x{height}: PSNR {quality:.1} dB, fixed palette {fixed:.1} dB"
        );
    }

    #[test]
    fn rgba_alpha_becomes_the_transparent_index() {
        let mut img = gradient(32, 32, 4);
        if let Samples::U8(v) = &mut img.samples {
            for (i, p) in v.chunks_exact_mut(4).enumerate() {
                p[3] = if i % 3 == 0 { 0 } else { 255 };
            }
        }
        let bytes = encode_default(&img);
        let (_, _, rgba) = decode(&bytes);
        for (i, p) in rgba.chunks_exact(4).enumerate() {
            assert_eq!(p[3], if i % 3 == 0 { 0 } else { 255 }, "pixel {i}");
        }
        let frame_info = ::gif::DecodeOptions::new()
            .read_info(bytes.as_slice())
            .unwrap()
            .read_next_frame()
            .unwrap()
            .unwrap()
            .transparent;
        assert!(frame_info.is_some());
    }

    #[test]
    fn sixteen_bit_input_is_scaled_to_eight_bits() {
        let img = gradient16(16, 4, 1);
        let (_, _, rgba) = decode(&encode_default(&img));
        let Samples::U16(v) = &img.samples else {
            unreachable!()
        };
        let expected: Vec<u8> = v
            .iter()
            .map(|&s| (s as f64 * 255.0 / 65535.0).round() as u8)
            .collect();
        let grey: Vec<u8> = rgba.chunks_exact(4).map(|p| p[0]).collect();
        assert_eq!(grey, expected);
    }

    #[test]
    fn refuses_oversized_and_unsupported_images() {
        let wide = RawImage::from_u8(70_000, 1, 1, ColourSpace::Grey, vec![0; 70_000]);
        let e = GifEncoder
            .encode(&wide, &EncodeOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), Some(crate::error::ErrorKind::TooLarge));
        // The pixel limit is checked before anything is quantised (the buffer is never read).
        let huge = RawImage {
            width: 6000,
            height: 6000,
            channels: 3,
            bits_per_sample: 8,
            colour: ColourSpace::Srgb,
            samples: Samples::U8(vec![0; 6000 * 6000 * 3]),
        };
        let e = GifEncoder
            .encode(&huge, &EncodeOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), Some(crate::error::ErrorKind::TooLarge));
        let five = RawImage::from_u8(1, 1, 5, ColourSpace::Multiband, vec![0; 5]);
        assert!(GifEncoder.encode(&five, &EncodeOptions::default()).is_err());
    }
}
