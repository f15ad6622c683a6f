//! The work a [`View`] asks for, below the protocols: tiles through the shared tile cache, with
//! codec pass-through, the pipeline and the encoders (`docs/behaviour/cache.md` §2–§4,
//! `docs/behaviour/pipeline-and-encoding.md` §4.2).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rayon::prelude::*;

use crate::cache::tile::{Encoding, TileData, TileKey};
use crate::config::Config;
use crate::encode::{EncodeOptions, OutputFormat, Resolution, ResolutionUnit};
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage};
use crate::metrics;
use crate::open_image::{OpenImage, ViewSource};
use crate::pipeline::{self, Histogram, Settings, WatermarkPass, geometry};
use crate::shared::Shared;
use crate::source::{self, ImageFormat, ImageInfo, RawCodec, RegionRead, TileSupply};
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

/// The tiles of one level of a view's source, through the tile cache (RAW entries): the
/// [`TileSupply`] a source's region read assembles from. Several tiles are decoded in parallel.
struct CachedTiles<'a> {
    shared: &'a Shared,
    image: &'a OpenImage,
    source: &'a ViewSource,
    view: &'a View,
    resolution: u32,
}

impl CachedTiles<'_> {
    fn key(&self, tile: u32) -> TileKey {
        tile_key(
            self.image,
            self.view,
            self.resolution,
            tile,
            Encoding::Raw,
            0,
        )
    }
}

impl TileSupply for CachedTiles<'_> {
    fn tiles(&self, tiles: &[u32]) -> source::Result<Vec<Arc<RawImage>>> {
        // Every tile is read even when one fails, so that a pass waiting for remote storage
        // asks for all of them at once (the storage scope follows the tiles onto rayon's
        // threads).
        let storage = crate::storage::collect::scope();
        let fetch = |&tile: &u32| {
            storage.enter(|| -> source::Result<Arc<RawImage>> {
                let key = self.key(tile);
                let mtime = self.source.mtime;
                if let Some(TileData::Raw(r)) = self.shared.tiles().get(&key, mtime) {
                    return Ok(r);
                }
                let started = Instant::now();
                let raw = Arc::new(self.source.source.tile(
                    self.resolution,
                    tile,
                    self.source.page,
                    self.view.layers,
                )?);
                metrics::decoded(codec(self.source.source.info().format), started.elapsed());
                self.shared
                    .tiles()
                    .insert(key, mtime, TileData::Raw(raw.clone()));
                Ok(raw)
            })
        };
        let read: Vec<source::Result<Arc<RawImage>>> = if tiles.len() > 1 {
            tiles.par_iter().map(fetch).collect()
        } else {
            tiles.iter().map(fetch).collect()
        };
        read.into_iter().collect()
    }

    fn cached(&self, tiles: &[u32]) -> Option<Vec<Arc<RawImage>>> {
        let mtime = self.source.mtime;
        tiles
            .iter()
            .map(|&t| match self.shared.tiles().get(&self.key(t), mtime) {
                Some(TileData::Raw(r)) => Some(r),
                _ => None,
            })
            .collect()
    }
}

/// Region exports running now (see [`decoder_threads`]).
static HEAVY_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one region export while it runs.
struct Heavy;

impl Heavy {
    fn start() -> Heavy {
        HEAVY_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Heavy
    }
}

impl Drop for Heavy {
    fn drop(&mut self) {
        HEAVY_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many threads one region read may give its decoder (OpenJPEG's thread pool): every
/// worker while this is the only region export running, one otherwise, so that a lone export
/// on an idle server uses the idle cores and a loaded server keeps one request per core. Light
/// requests (tiles, info.json) are short and not counted. This is the one place a request
/// scheduler decides a request's parallelism from the load.
pub fn decoder_threads(shared: &Shared) -> u32 {
    threads_for(
        HEAVY_IN_FLIGHT.load(Ordering::Relaxed),
        shared.config().server.workers,
    )
}

/// [`decoder_threads`] with `in_flight` region exports running (this one included) on
/// `workers` worker threads.
fn threads_for(in_flight: usize, workers: usize) -> u32 {
    if in_flight <= 1 {
        workers.clamp(1, u32::MAX as usize) as u32
    } else {
        1
    }
}

/// The rectangle (`x`, `y`, `w`, `h`) of IIP resolution `resolution` (of the view's stack page
/// or sequence view, [`OpenImage::source_for`]) at its native depth: read by the source
/// ([`ImageSource::region`](crate::source::ImageSource::region)): one decode of the window for
/// JPEG2000 and plain JPEG, else stitched from the tiles through the tile cache, decoded in
/// parallel when there is more than one.
pub fn read_region(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    resolution: u32,
    (x, y, w, h): (u32, u32, u32, u32),
) -> Result<RawImage> {
    let info = image.info();
    let level = *info.level(resolution).ok_or_else(|| {
        Error::invalid(format!("Asked for non-existent resolution: {resolution}"))
    })?;
    let fits =
        |start: u32, len: u32, size: u32| len > 0 && (start as u64 + len as u64) <= size as u64;
    if !fits(x, w, level.width) || !fits(y, h, level.height) {
        return Err(Error::bad_request(format!(
            "Region {x},{y},{w},{h} is outside the {}x{} level",
            level.width, level.height
        )));
    }
    let source = image.source_for(shared, view)?;
    let supply = CachedTiles {
        shared,
        image,
        source: &source,
        view,
        resolution,
    };
    let read = RegionRead {
        page: source.page,
        layers: view.layers,
        threads: decoder_threads(shared),
    };
    let started = Instant::now();
    let region = source
        .source
        .region(resolution, (x, y, w, h), &read, &supply)?;
    // TIFF regions are stitched from tiles, each timed where it is decoded; JPEG2000 decodes
    // the window in one go.
    let format = info.format;
    if format == ImageFormat::Jpeg2000 {
        metrics::decoded(codec(format), started.elapsed());
    }
    Ok(region)
}

/// How a region export fits its output to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionOptions {
    /// Fit inside the WID×HEI box (IIP, IIIF `!w,h`) or stretch to it (IIIF `w,h`).
    pub maintain_aspect: bool,
    /// `ALLOW_UPSCALING` (IIIF v3 without `^` turns it off).
    pub allow_upscaling: bool,
}

impl RegionOptions {
    /// IIP's settings: keep the aspect ratio, upscaling as configured.
    pub fn iip(config: &Config) -> RegionOptions {
        RegionOptions {
            maintain_aspect: true,
            allow_upscaling: config.exports.allow_upscaling,
        }
    }

    /// The settings of a protocol that computed the exact output size itself (IIIF, and the
    /// viewer grids): stretch to it, whatever `ALLOW_UPSCALING` says.
    pub const EXACT: RegionOptions = RegionOptions {
        maintain_aspect: false,
        allow_upscaling: true,
    };
}

/// An encoded region export.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Bytes,
    /// Output size before rotation (as in the Content-Disposition file name).
    pub width: u32,
    pub height: u32,
    /// The level, region and size that were used.
    pub plan: geometry::Plan,
}

/// The size of the encoded image for an output of `size` before rotation: swapped by 90 and
/// 270, the bounding box of an arbitrary IIIF angle ([`pipeline::rotate_arbitrary::rotated_size`]);
/// `None` when that does not fit in 32 bits.
pub(crate) fn final_size(view: &View, (w, h): (u32, u32)) -> Option<(u32, u32)> {
    if pipeline::arbitrary_angle(view) {
        return pipeline::rotate_arbitrary::rotated_size(w, h, view.rotation);
    }
    Some(match pipeline::rotate::quarter_turns(view.rotation) {
        Some(1 | 3) => (h, w),
        _ => (w, h),
    })
}

/// Level, region and output size for a region export (§2), without decoding anything.
pub fn region_plan(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    options: &RegionOptions,
) -> Result<geometry::Plan> {
    let info = image.info();
    let levels: Vec<(u32, u32)> = info.levels.iter().map(|l| (l.width, l.height)).collect();
    geometry::plan(&geometry::Request {
        width: info.width,
        height: info.height,
        levels: &levels,
        region: view.region,
        out_width: view.width,
        out_height: view.height,
        maintain_aspect: options.maintain_aspect,
        allow_upscaling: options.allow_upscaling,
        max_size: shared.config().exports.max_cvt.max(),
    })
    .ok_or_else(|| Error::not_found("Image has no resolution levels"))
}

/// A region export made ready to run: its plan, and the memory it will hold at its peak.
#[derive(Debug, Clone)]
pub struct PreparedRegion {
    pub plan: geometry::Plan,
    /// The estimated peak memory of [`render_region`], in bytes ([`region_cost`]).
    pub bytes: u64,
}

/// The memory a region export holds at its peak, estimated from its plan without decoding:
/// the decoded tiles that cover the region (whole tiles, at the source's depth), the stitched
/// region, the float copies of the region and of the resized output when the float path runs,
/// and the output three times (its pixels, and the encoder's growing buffer, which may hold
/// twice the encoded size while it grows). Each term is what one step allocates while the
/// previous one is still alive, summed. An arbitrary rotation's canvas counts as twice the
/// output. Measured: a 5000-wide PNG export of a 5003×3701 JPEG2000 raised the resident size
/// by 170 MiB for an estimate of 268 MiB (docs/reliability.md).
pub(crate) fn region_cost(
    info: &ImageInfo,
    view: &View,
    plan: &geometry::Plan,
    float: bool,
) -> u64 {
    let channels = info.channels.max(1) as u64;
    let depth: u64 = match info.bits_per_sample {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    };
    let (tw, th) = info
        .levels
        .get(plan.level)
        .map(|l| (l.tile_width.max(1) as u64, l.tile_height.max(1) as u64))
        .unwrap_or((1, 1));
    let (x, y, w, h) = (plan.x as u64, plan.y as u64, plan.w as u64, plan.h as u64);
    let cols = (x + w).div_ceil(tw) - x / tw;
    let rows = (y + h).div_ceil(th) - y / th;
    let tiles = cols * tw * rows * th * channels * depth;
    let region_px = w * h;
    let out_px = plan.out_width as u64 * plan.out_height as u64;
    let region = region_px * channels * depth;
    let floats = if float {
        (region_px + out_px) * channels * 4
    } else {
        0
    };
    let rotation = if view.rotation % 90.0 != 0.0 { 2 } else { 1 };
    let out = out_px * channels.max(3) * depth.min(2) * rotation;
    tiles
        .saturating_add(region)
        .saturating_add(floats)
        .saturating_add(out.saturating_mul(3))
}

/// Plan a region export (§2) and estimate its memory, without decoding anything. Sizes above
/// [`MAX_EXPORT_BYTES`] are refused with 400.
pub fn prepare_region(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    format: OutputFormat,
    options: &RegionOptions,
) -> Result<PreparedRegion> {
    let plan = region_plan(shared, image, view, options)?;
    let info = image.info();
    let channels = info.channels.max(3) as u64;
    let float = pipeline::needs_float(view)
        || info.colour == ColourSpace::CieLab
        || info.bits_per_sample > 8;
    let sample_bytes = if float { 4 } else { 1 };
    let region_bytes = (plan.w as u64)
        .checked_mul(plan.h as u64)
        .and_then(|v| v.checked_mul(channels * sample_bytes));
    let out_bytes = (plan.out_width as u64)
        .checked_mul(plan.out_height as u64)
        .and_then(|v| v.checked_mul(channels));
    // The rotated canvas of a IIIF angle other than a multiple of 90, with an alpha channel
    // added (otherwise the output itself).
    let arbitrary = pipeline::arbitrary_angle(view);
    let canvas = final_size(view, (plan.out_width, plan.out_height));
    let canvas_bytes = canvas.and_then(|(w, h)| {
        (w as u64)
            .checked_mul(h as u64)
            .and_then(|v| v.checked_mul(channels + u64::from(arbitrary)))
    });
    match (region_bytes, out_bytes, canvas_bytes) {
        (Some(r), Some(o), Some(c))
            if r <= MAX_EXPORT_BYTES && o <= MAX_EXPORT_BYTES && c <= MAX_EXPORT_BYTES => {}
        _ => {
            return Err(Error::too_large(format!(
                "CVT :: requested output of {}x{} pixels is too large",
                plan.out_width, plan.out_height
            )));
        }
    }
    // The limits of the IIIF extension formats (GIF, JPEG2000, PDF), before any decoding.
    if let Some((w, h)) = canvas {
        let ch = pipeline::convert::kept_channels(info.channels, format)
            + u16::from(arbitrary && format.keeps_alpha());
        crate::encode::check_size(format, w, h, ch)?;
    }
    let bytes = region_cost(info, view, &plan, float);
    Ok(PreparedRegion { plan, bytes })
}

/// A region export (§4.1): [`prepare_region`], then [`render_region`].
pub fn region_with(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    format: OutputFormat,
    options: &RegionOptions,
) -> Result<Rendered> {
    let prepared = prepare_region(shared, image, view, format, options)?;
    render_region(shared, image, view, format, &prepared.plan)
}

/// Run a planned region export: stitch the region from its raw tiles, run the pipeline with
/// the resize, and encode with XMP, EXIF, ICC (§5.1) and DPI (§5.4). Synchronous and long for
/// large regions: the application runs heavy ones on its own pool, never on a runtime worker.
pub fn render_region(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    format: OutputFormat,
    plan: &geometry::Plan,
) -> Result<Rendered> {
    let plan = *plan;
    let info = image.info();
    let _heavy = Heavy::start();
    let raw = read_region(
        shared,
        image,
        view,
        plan.resolution,
        (plan.x, plan.y, plan.w, plan.h),
    )?;
    let histogram = if pipeline::needs_histogram(view) {
        Some(histogram(shared, image, view)?)
    } else {
        None
    };
    let full = info.levels.first();
    let block = full
        .map(|l| 2 * l.tile_width.max(l.tile_height))
        .unwrap_or(0);
    let watermark = shared.watermark().map(|mark| WatermarkPass {
        mark,
        block,
        probability: shared.config().output.watermark_probability,
    });
    let pixels = pipeline::process(
        std::borrow::Cow::Owned(raw),
        &Settings {
            info,
            view,
            format,
            histogram: histogram.as_ref(),
            resize: Some((plan.out_width, plan.out_height)),
            interpolation: shared.config().output.interpolation,
            watermark,
        },
    )?;
    let (lw, lh) = info
        .levels
        .get(plan.level)
        .map(|l| (l.width, l.height))
        .unwrap_or((info.width, info.height));
    let meta = |k: &str| {
        info.metadata
            .get(k)
            .map(|v| v.as_slice())
            .filter(|v| !v.is_empty())
    };
    let options = EncodeOptions {
        quality: quality(shared, view, format),
        tiff_compression: view
            .tiff_compression
            .unwrap_or(shared.config().output.tiff_compression),
        icc: icc_for(shared, info, view),
        xmp: meta("xmp"),
        exif: meta("exif"),
        resolution: resolution_for(info, lw, lh),
        text: text_metadata(shared, info),
    };
    let started = Instant::now();
    let bytes = Bytes::from(shared.encoders().get(format).encode(&pixels, &options)?);
    metrics::encoded(format.metric(), started.elapsed());
    Ok(Rendered {
        bytes,
        width: plan.out_width,
        height: plan.out_height,
        plan,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_export_gets_every_worker_for_its_decoder_and_concurrent_ones_get_one() {
        assert_eq!(threads_for(1, 4), 4);
        assert_eq!(threads_for(0, 2), 2);
        assert_eq!(threads_for(2, 4), 1);
        assert_eq!(threads_for(5, 4), 1);
        assert_eq!(threads_for(1, 0), 1);
    }
}
