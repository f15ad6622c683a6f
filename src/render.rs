//! The work a [`View`] asks for, below the protocols: tiles through the shared tile cache, with
//! codec pass-through, the pipeline and the encoders (`cache.md` §2–§4,
//! `pipeline-and-encoding.md` §4.2).

use std::sync::Arc;

use bytes::Bytes;

use crate::cache::tile::{Encoding, TileData, TileKey};
use crate::encode::{EncodeOptions, OutputFormat, Resolution, ResolutionUnit};
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage, Samples};
use crate::pipeline;
use crate::protocols::iip::OpenImage;
use crate::server::App;
use crate::source::{ImageInfo, RawCodec};
use crate::view::{ColourConversion, View};

/// The quality an encoder uses: `QLT` if given, else the configured default.
pub fn quality(app: &App, view: &View, format: OutputFormat) -> i32 {
    let c = app.config();
    match view.quality {
        None => match format {
            OutputFormat::Jpeg => c.jpeg_quality,
            OutputFormat::Png => c.png_quality,
            OutputFormat::Webp => c.webp_quality,
            OutputFormat::Avif => c.avif_quality,
            OutputFormat::Tiff => c.tiff_quality,
        },
        Some(q) => match format {
            OutputFormat::Jpeg => q.clamp(0, 100),
            OutputFormat::Png => q.clamp(0, 9),
            // QLT below 1 means lossless for WebP.
            OutputFormat::Webp => {
                if q < 1 {
                    -1
                } else {
                    q.min(100)
                }
            }
            OutputFormat::Avif => q.clamp(-1, 100),
            OutputFormat::Tiff => match view.tiff_compression.unwrap_or(c.tiff_compression) {
                2 => q.clamp(0, 9),
                5 => q.clamp(0, 19),
                _ => q.clamp(0, 100),
            },
        },
    }
}

/// Whether a tile must be decoded to pixels (no pass-through, no cached encoded tile), §4.2.
pub fn forces_raw(app: &App, info: &ImageInfo, view: &View) -> bool {
    info.bits_per_sample > 8
        || info.colour == ColourSpace::CieLab
        || info.channels == 2
        || info.channels > 3
        || (view.colour.is_some() && info.channels == 3)
        || view.has_processing()
        || !app.config().watermark.is_empty()
}

/// Whether the ICC profile may be embedded (§5.1).
fn icc_for<'a>(app: &App, info: &'a ImageInfo, view: &View) -> Option<&'a [u8]> {
    let max = app.config().max_icc;
    let icc = info.metadata.get("icc")?;
    let colour_changed = view.colour_map.is_some()
        || view.shade.is_some()
        || view.twist.is_some()
        || view.colour == Some(ColourConversion::Grey);
    (max != 0 && !icc.is_empty() && (max < 0 || (icc.len() as i64) < max) && !colour_changed)
        .then_some(icc.as_slice())
}

/// DPI scaled to a level (§5.4).
fn resolution_for(info: &ImageInfo, level_width: u32, level_height: u32) -> Option<Resolution> {
    let d = info.dpi?;
    if d.x <= 0.0 || d.y <= 0.0 || info.width == 0 || info.height == 0 {
        return None;
    }
    let unit = match d.unit {
        2 => ResolutionUnit::Inch,
        3 => ResolutionUnit::Centimetre,
        _ => ResolutionUnit::Unknown,
    };
    Some(Resolution {
        x: d.x * level_width as f64 / info.width as f64,
        y: d.y * level_height as f64 / info.height as f64,
        unit,
    })
}

/// A decoded tile, through the cache (RAW entries).
pub fn raw_tile(
    app: &App,
    image: &OpenImage,
    view: &View,
    resolution: u32,
    tile: u32,
) -> Result<Arc<RawImage>> {
    let key = tile_key(image, view, resolution, tile, Encoding::Raw, 0);
    let mtime = image.located.mtime;
    if let Some(TileData::Raw(r)) = app.tiles().get(&key, mtime) {
        return Ok(r);
    }
    let raw = Arc::new(
        image
            .source
            .tile(resolution, tile, view.horizontal, view.layers)?,
    );
    app.tiles().insert(key, mtime, TileData::Raw(raw.clone()));
    Ok(raw)
}

fn tile_key(
    image: &OpenImage,
    view: &View,
    resolution: u32,
    tile: u32,
    encoding: Encoding,
    quality: i32,
) -> TileKey {
    TileKey {
        image: image.key.clone(),
        resolution,
        tile,
        horizontal: view.horizontal,
        vertical: view.vertical.unwrap_or(90),
        layers: view.layers,
        encoding,
        quality,
    }
}

/// One tile of IIP resolution `resolution`, encoded as `format` (JTL and friends, and the
/// viewer protocols' tiles). Errors: out-of-range resolution → [`Error::invalid`] (banner),
/// out-of-range tile → 404.
pub fn tile(
    app: &App,
    image: &OpenImage,
    view: &View,
    resolution: u32,
    tile: u32,
    format: OutputFormat,
) -> Result<Bytes> {
    let info = image.info();
    let level = *info.level(resolution).ok_or_else(|| {
        Error::invalid(format!(
            "JTL :: Invalid resolution/tile number: {resolution},{tile}"
        ))
    })?;
    let count = level.tile_count();
    // ROT=180 remaps the tile index so that the rotated tiles land in place.
    let tile = if pipeline::rotate::quarter_turns(view.rotation) == Some(2) && (tile as u64) < count
    {
        (count - 1 - tile as u64) as u32
    } else {
        tile
    };
    if tile as u64 >= count {
        return Err(Error::not_found(format!(
            "TPTImage :: Asked for non-existent tile: {tile}"
        )));
    }
    let q = quality(app, view, format);
    let raw_needed = forces_raw(app, info, view);
    let mtime = image.located.mtime;
    let encoded_key = tile_key(image, view, resolution, tile, format.into(), q);
    if !raw_needed {
        if let Some(TileData::Encoded(b)) = app.tiles().get(&encoded_key, mtime) {
            return Ok(b);
        }
    }
    let icc = icc_for(app, info, view);

    // Codec pass-through (cache.md §4).
    let raw_key = tile_key(image, view, resolution, tile, Encoding::Raw, 0);
    if !raw_needed
        && view.quality.is_none()
        && app.config().codec_passthrough
        && matches!(format, OutputFormat::Jpeg | OutputFormat::Webp)
        && app.tiles().get(&raw_key, mtime).is_none()
    {
        if let Some(stored) = image.source.raw_tile(resolution, tile, view.horizontal)? {
            let bytes = match (stored.codec, format, icc) {
                (RawCodec::Jpeg, OutputFormat::Jpeg, None)
                | (RawCodec::Webp, OutputFormat::Webp, None) => Some(Ok(stored.bytes)),
                (RawCodec::Jpeg, OutputFormat::Jpeg, Some(icc)) => Some(
                    crate::encode::jpeg::insert_metadata(&stored.bytes, Some(icc), None, None),
                ),
                (RawCodec::Webp, OutputFormat::Webp, Some(icc)) => Some(
                    crate::encode::webp::insert_metadata(&stored.bytes, Some(icc), None, None),
                ),
                _ => None,
            };
            if let Some(bytes) = bytes {
                let bytes = Bytes::from(bytes.map_err(Error::from)?);
                app.tiles()
                    .insert(encoded_key, mtime, TileData::Encoded(bytes.clone()));
                return Ok(bytes);
            }
        }
    }

    let raw = raw_tile(app, image, view, resolution, tile)?;
    let pixels = process_tile(app, info, view, &raw, format);
    let encoder = app.encoders().get(format);
    let options = EncodeOptions {
        quality: q,
        tiff_compression: view
            .tiff_compression
            .unwrap_or(app.config().tiff_compression),
        icc,
        resolution: resolution_for(info, level.width, level.height),
        ..EncodeOptions::default()
    };
    let bytes = Bytes::from(encoder.encode(&pixels, &options)?);
    if !raw_needed {
        app.tiles()
            .insert(encoded_key, mtime, TileData::Encoded(bytes.clone()));
    }
    Ok(bytes)
}

/// The tile pipeline on decoded pixels (§4.2 step 7): to 8-bit, flatten, colour conversion,
/// flip and rotation. (The full float pipeline lands with the processing work.)
pub fn process_tile(
    app: &App,
    info: &ImageInfo,
    view: &View,
    raw: &RawImage,
    format: OutputFormat,
) -> RawImage {
    let _ = app;
    let mut img = match (&raw.samples, raw.colour) {
        (Samples::U8(_), c) if c != ColourSpace::CieLab => raw.clone(),
        _ => pipeline::convert::to_8bit(raw, &info.min_max),
    };
    img = pipeline::convert::flatten(img, format != OutputFormat::Jpeg);
    if view.colour == Some(ColourConversion::Grey) && img.channels >= 3 {
        img = grey(&img);
    }
    pipeline::rotate::apply(img, view.rotation, view.flip)
}

/// Greyscale by ITU-R 601 luma (§3.14).
fn grey(img: &RawImage) -> RawImage {
    let Samples::U8(v) = &img.samples else {
        return img.clone();
    };
    let ch = img.channels as usize;
    let out = v
        .chunks_exact(ch)
        .map(|p| {
            (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
                .round()
                .min(255.0) as u8
        })
        .collect();
    RawImage::from_u8(img.width, img.height, 1, ColourSpace::Grey, out)
}
