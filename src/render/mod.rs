//! The work a [`View`] asks for, below the protocols: tiles through the shared tile cache, with
//! codec pass-through, the pipeline and the encoders (`docs/behaviour/cache.md` §2–§4,
//! `docs/behaviour/pipeline-and-encoding.md` §4.2); region exports in [`region`].
//!
//! This file holds the tile work and what both share (qualities, ICC, resolution, text
//! metadata, tile-cache keys, the histogram); `region.rs` uses them.

mod region;

pub use region::{
    PreparedRegion, RegionOptions, Rendered, decoder_threads, prepare_region, read_region,
    region_plan, region_with, render_region,
};

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::cache::tile::{Encoding, TileData, TileKey};
use crate::encode::{EncodeOptions, OutputFormat, Resolution, ResolutionUnit};
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage};
use crate::metrics;
use crate::open_image::{OpenImage, ViewSource};
use crate::pipeline::{self, Histogram, Settings, WatermarkPass};
use crate::shared::Shared;
use crate::source::{ImageFormat, ImageInfo, RawCodec};
use crate::view::{ColourConversion, Contrast, View};

/// The most memory one region export may work on: the decoded region (as float when the float
/// path runs) and the output, each at most this many bytes. Larger requests (possible with
/// `MAX_CVT=-1`) are refused with 400 instead of overflowing (docs/behaviour/server-and-config.md §7.2).
pub(crate) const MAX_EXPORT_BYTES: u64 = 1 << 31;

/// The quality an encoder uses: `QLT` if given, else the configured default.
pub(crate) fn quality(shared: &Shared, view: &View, format: OutputFormat) -> i32 {
    let c = shared.config();
    match view.quality {
        None => match format {
            OutputFormat::Jpeg | OutputFormat::Pdf | OutputFormat::Jp2 => c.output.jpeg_quality,
            OutputFormat::Gif => 0,
            OutputFormat::Png => c.output.png_quality,
            OutputFormat::Webp => c.output.webp_quality,
            OutputFormat::Avif => c.output.avif_quality,
            OutputFormat::Tiff => c.output.tiff_quality,
        },
        Some(q) => match format {
            OutputFormat::Jpeg | OutputFormat::Pdf => q.clamp(0, 100),
            OutputFormat::Jp2 => q.clamp(-1, 100),
            OutputFormat::Gif => 0,
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
            OutputFormat::Tiff => q.clamp(
                0,
                view.tiff_compression
                    .unwrap_or(c.output.tiff_compression)
                    .max_quality(),
            ),
        },
    }
}

/// Whether a tile must be decoded to pixels (no pass-through, no cached encoded tile), §4.2:
/// more than 8 bits, CIELAB, 2 or more than 3 channels, greyscale or bitonal output of an
/// 8-bit RGB image, float processing, equalisation, rotation or flip, or a loaded watermark.
/// Also bitonal output of a 1-channel image: upstream passes such a stored tile through
/// unchanged; here every tile whose pixels the pipeline changes is decoded, so that the
/// encoded-tile cache only ever holds unprocessed tiles.
pub(crate) fn forces_raw(shared: &Shared, info: &ImageInfo, view: &View) -> bool {
    info.bits_per_sample > 8
        || info.colour == ColourSpace::CieLab
        || info.channels == 2
        || info.channels > 3
        || (view.colour.is_some() && info.channels == 3)
        || (view.colour == Some(ColourConversion::Binary) && info.colour != ColourSpace::Binary)
        || pipeline::needs_float(view)
        || view.contrast == Some(Contrast::Equalize)
        || view.rotation != 0.0
        || view.flip
        || shared.watermark().is_some()
}

/// Whether the ICC profile may be embedded (§5.1).
fn icc_for<'a>(shared: &Shared, info: &'a ImageInfo, view: &View) -> Option<&'a [u8]> {
    let max = shared.config().output.max_icc;
    let icc = info.metadata.get("icc")?;
    let colour_changed = view.colour_map.is_some()
        || view.shade.is_some()
        || view.twist.is_some()
        || view.colour == Some(ColourConversion::Grey);
    let small_enough = max.max().is_none_or(|max| (icc.len() as u64) < max);
    (!icc.is_empty() && small_enough && !colour_changed).then_some(icc.as_slice())
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

/// A decoded tile of the view's angles (stack page or sequence view), through the cache (RAW
/// entries).
pub(crate) fn raw_tile(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    resolution: u32,
    tile: u32,
) -> Result<Arc<RawImage>> {
    let source = image.source_for(shared, view)?;
    raw_tile_from(shared, image, &source, view, resolution, tile)
}

/// [`raw_tile`] with the view's source already chosen.
fn raw_tile_from(
    shared: &Shared,
    image: &OpenImage,
    source: &ViewSource,
    view: &View,
    resolution: u32,
    tile: u32,
) -> Result<Arc<RawImage>> {
    let key = tile_key(image, view, resolution, tile, Encoding::Raw, 0);
    let mtime = source.mtime;
    if let Some(TileData::Raw(r)) = shared.tiles().get(&key, mtime) {
        return Ok(r);
    }
    let started = Instant::now();
    let raw = Arc::new(
        source
            .source
            .tile(resolution, tile, source.page, view.layers)?,
    );
    metrics::decoded(codec(source.source.info().format), started.elapsed());
    shared
        .tiles()
        .insert(key, mtime, TileData::Raw(raw.clone()));
    Ok(raw)
}

/// The decoder label of a source format.
fn codec(format: ImageFormat) -> metrics::Codec {
    match format {
        ImageFormat::Tiff => metrics::Codec::Tiff,
        ImageFormat::Jpeg2000 => metrics::Codec::Jpeg2000,
        ImageFormat::Jpeg => metrics::Codec::Jpeg,
    }
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

/// Stored tile `tile` of IIP resolution `resolution`, encoded as `format` (JTL and friends,
/// and the viewer protocols' tiles); the tile is the one stored at that index, whatever the
/// view's rotation. Errors: out-of-range resolution → [`Error::invalid`] (banner),
/// out-of-range tile → 404.
pub(crate) fn tile(
    shared: &Shared,
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
    if tile as u64 >= level.tile_count() {
        return Err(Error::not_found(format!(
            "TPTImage :: Asked for non-existent tile: {tile}"
        )));
    }
    let q = quality(shared, view, format);
    let raw_needed = forces_raw(shared, info, view);
    // The file of the view's angles; its mtime guards the cached tiles.
    let source = image.source_for(shared, view)?;
    let mtime = source.mtime;
    let encoded_key = tile_key(image, view, resolution, tile, format.into(), q);
    if !raw_needed {
        if let Some(TileData::Encoded(b)) = shared.tiles().get(&encoded_key, mtime) {
            return Ok(b);
        }
    }
    let icc = icc_for(shared, info, view);

    // Codec pass-through (docs/behaviour/cache.md §4).
    let raw_key = tile_key(image, view, resolution, tile, Encoding::Raw, 0);
    if !raw_needed
        && view.quality.is_none()
        && shared.config().output.codec_passthrough
        && matches!(format, OutputFormat::Jpeg | OutputFormat::Webp)
        && shared.tiles().get(&raw_key, mtime).is_none()
    {
        if let Some(stored) = source.source.raw_tile(resolution, tile, source.page)? {
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
                shared
                    .tiles()
                    .insert(encoded_key, mtime, TileData::Encoded(bytes.clone()));
                return Ok(bytes);
            }
        }
    }

    let raw = raw_tile_from(shared, image, &source, view, resolution, tile)?;
    let pixels = process_tile(shared, image, view, &raw, format)?;
    let encoder = shared.encoders().get(format);
    let options = EncodeOptions {
        quality: q,
        tiff_compression: view
            .tiff_compression
            .unwrap_or(shared.config().output.tiff_compression),
        icc,
        resolution: resolution_for(info, level.width, level.height),
        text: text_metadata(shared, info),
        ..EncodeOptions::default()
    };
    let started = Instant::now();
    let bytes = Bytes::from(encoder.encode(&pixels, &options)?);
    metrics::encoded(format.metric(), started.elapsed());
    if !raw_needed {
        shared
            .tiles()
            .insert(encoded_key, mtime, TileData::Encoded(bytes.clone()));
    }
    Ok(bytes)
}

/// The text metadata the encoders write (§5.3): PNG and TIFF use them, the others ignore them.
fn text_metadata(shared: &Shared, info: &ImageInfo) -> Vec<(&'static str, String)> {
    const KEYS: [&str; 8] = [
        "title",
        "creator",
        "description",
        "rights",
        "date",
        "pagename",
        "make",
        "model",
    ];
    let mut out = Vec::new();
    for key in KEYS {
        match info.metadata.get(key) {
            Some(v) if !v.is_empty() => out.push((key, String::from_utf8_lossy(v).into_owned())),
            _ if key == "rights" && !shared.config().output.copyright.is_empty() => {
                out.push((key, shared.config().output.copyright.clone()))
            }
            _ => {}
        }
    }
    out
}

/// The image histogram (§4.1 step 4): from the raw tile 0 of the smallest resolution, page 0,
/// through the tile cache.
pub(crate) fn histogram(shared: &Shared, image: &OpenImage, view: &View) -> Result<Histogram> {
    let page0 = View {
        horizontal: 0,
        vertical: view.vertical,
        layers: view.layers,
        ..View::default()
    };
    let raw = raw_tile(shared, image, &page0, 0, 0)?;
    Ok(Histogram::compute(&raw, &image.info().min_max))
}

/// The tile pipeline on decoded pixels (§4.2 step 7–8): CIELAB, the float path or the fast
/// 8-bit reduction, flattening, greyscale, bitonal, equalisation, flip, rotation and the
/// watermark (one per tile at most). No resize.
pub(crate) fn process_tile(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    raw: &RawImage,
    format: OutputFormat,
) -> Result<RawImage> {
    let histogram = if pipeline::needs_histogram(view) {
        Some(histogram(shared, image, view)?)
    } else {
        None
    };
    let watermark = shared.watermark().map(|mark| WatermarkPass {
        mark,
        block: 0,
        probability: shared.config().output.watermark_probability,
    });
    pipeline::process(
        std::borrow::Cow::Borrowed(raw),
        &Settings {
            info: image.info(),
            view,
            format,
            histogram: histogram.as_ref(),
            resize: None,
            interpolation: shared.config().output.interpolation,
            watermark,
        },
    )
}
