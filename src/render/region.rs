//! Region exports: the plan of a region (its level, size and estimated cost), reading it
//! through [`ImageSource::region`](crate::source::ImageSource::region) with the tile cache as
//! the tile supply, the pipeline and the encoder (`docs/behaviour/pipeline-and-encoding.md`
//! §4.3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use rayon::prelude::*;

use crate::cache::tile::{Encoding, TileData, TileKey};
use crate::config::Config;
use crate::encode::{EncodeOptions, OutputFormat};
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage};
use crate::metrics;
use crate::open_image::{OpenImage, ViewSource};
use crate::pipeline::{self, Settings, WatermarkPass, geometry};
use crate::shared::Shared;
use crate::source::{self, ImageFormat, ImageInfo, RegionRead, TileSupply};
use crate::view::View;

use super::{
    MAX_EXPORT_BYTES, codec, histogram, icc_for, quality, resolution_for, text_metadata, tile_key,
};

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
