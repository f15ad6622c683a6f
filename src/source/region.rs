//! Reading a rectangle of a level: [`ImageSource::region`](super::ImageSource::region) and
//! what it is given.
//!
//! The default ([`stitch`]) assembles the rectangle from the level's tiles, which the caller
//! supplies ([`TileSupply`]: through its tile cache, decoded in parallel) and copies only the
//! part of each tile inside the rectangle. Sources that decode arbitrary windows (JPEG2000,
//! plain JPEG) decode the rectangle itself instead, once, and take the supplied tiles only when
//! every one of them is already at hand ([`TileSupply::cached`]): a cached tile costs a copy, a
//! decode costs the codec's work.

use std::sync::Arc;

use super::error::{Result, SourceError};
use super::{ImageInfo, Level};
use crate::image::{RawImage, Samples};

/// How a rectangle may be read, besides where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionRead {
    /// Stack page (0 for single images).
    pub page: u32,
    /// JPEG2000 quality layers asked for (0 = the source's default).
    pub layers: u32,
    /// Threads the decoder may use for this one read (1 = the calling thread only).
    pub threads: u32,
}

impl Default for RegionRead {
    fn default() -> Self {
        RegionRead {
            page: 0,
            layers: 0,
            threads: 1,
        }
    }
}

/// Decoded tiles of the level being read, as the caller holds them.
pub trait TileSupply: Sync {
    /// Tiles `tiles` (row-major indices of the level), in that order: cached or decoded now.
    fn tiles(&self, tiles: &[u32]) -> Result<Vec<Arc<RawImage>>>;

    /// The same tiles, only if every one is at hand without decoding.
    fn cached(&self, tiles: &[u32]) -> Option<Vec<Arc<RawImage>>>;
}

/// The tiles of `level` under the rectangle `(x, y, w, h)`, row by row.
pub fn tiles_under(level: &Level, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<u32> {
    let (tw, th) = (level.tile_width.max(1), level.tile_height.max(1));
    let (ntx, _) = level.tiles();
    (y / th..=(y + h - 1) / th)
        .flat_map(|ty| (x / tw..=(x + w - 1) / tw).map(move |tx| ty * ntx + tx))
        .collect()
}

/// Copy a `cw`×`chh` block of `ch`-sample pixels between row-major buffers.
#[allow(clippy::too_many_arguments)]
fn blit<T: Copy>(
    dst: &mut [T],
    dst_w: usize,
    (dx, dy): (usize, usize),
    src: &[T],
    src_w: usize,
    (sx, sy): (usize, usize),
    (cw, chh): (usize, usize),
    ch: usize,
) {
    for r in 0..chh {
        let d = ((dy + r) * dst_w + dx) * ch;
        let s = ((sy + r) * src_w + sx) * ch;
        dst[d..d + cw * ch].copy_from_slice(&src[s..s + cw * ch]);
    }
}

/// The rectangle `(x, y, w, h)` of IIP resolution `resolution`, assembled from its tiles (the
/// part of each inside the rectangle); the rectangle lies inside the level.
pub fn stitch(
    info: &ImageInfo,
    resolution: u32,
    (x, y, w, h): (u32, u32, u32, u32),
    supply: &dyn TileSupply,
) -> Result<RawImage> {
    let missing = || SourceError::internal(info.format, "region of a missing level");
    let level = *info.level(resolution).ok_or_else(missing)?;
    let cells = tiles_under(&level, (x, y, w, h));
    let tiles = supply.tiles(&cells)?;
    assemble(info, &level, (x, y, w, h), &cells, &tiles)
}

/// Copy the parts of `tiles` (the tiles `cells` of `level`) inside the rectangle into one
/// image; a single tile that is exactly the rectangle is returned as it is.
pub fn assemble(
    info: &ImageInfo,
    level: &Level,
    (x, y, w, h): (u32, u32, u32, u32),
    cells: &[u32],
    tiles: &[Arc<RawImage>],
) -> Result<RawImage> {
    let bad = |what| SourceError::internal(info.format, what);
    let (tw, th) = (level.tile_width.max(1), level.tile_height.max(1));
    let (ntx, _) = level.tiles();
    let first = tiles.first().ok_or_else(|| bad("empty region"))?;
    if cells.len() == 1 && x % tw == 0 && y % th == 0 && first.width == w && first.height == h {
        return Ok((**first).clone());
    }
    let ch = first.channels as usize;
    let n = w as usize * h as usize * ch;
    let mut samples = match first.samples {
        Samples::U8(_) => Samples::U8(vec![0; n]),
        Samples::U16(_) => Samples::U16(vec![0; n]),
        Samples::U32(_) => Samples::U32(vec![0; n]),
        Samples::I32(_) => Samples::I32(vec![0; n]),
        Samples::F32(_) => Samples::F32(vec![0.0; n]),
    };
    for (&t, tile) in cells.iter().zip(tiles) {
        if tile.channels as usize != ch {
            return Err(bad("tiles with different channel counts"));
        }
        let (ox, oy) = ((t % ntx) * tw, (t / ntx) * th);
        // The overlap of the tile (as decoded) with the region.
        let x0 = x.max(ox);
        let y0 = y.max(oy);
        let x1 = (x + w).min(ox + tile.width);
        let y1 = (y + h).min(oy + tile.height);
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        let dst_at = ((x0 - x) as usize, (y0 - y) as usize);
        let src_at = ((x0 - ox) as usize, (y0 - oy) as usize);
        let size = ((x1 - x0) as usize, (y1 - y0) as usize);
        let (dw, sw) = (w as usize, tile.width as usize);
        match (&mut samples, &tile.samples) {
            (Samples::U8(d), Samples::U8(s)) => blit(d, dw, dst_at, s, sw, src_at, size, ch),
            (Samples::U16(d), Samples::U16(s)) => blit(d, dw, dst_at, s, sw, src_at, size, ch),
            (Samples::U32(d), Samples::U32(s)) => blit(d, dw, dst_at, s, sw, src_at, size, ch),
            (Samples::I32(d), Samples::I32(s)) => blit(d, dw, dst_at, s, sw, src_at, size, ch),
            (Samples::F32(d), Samples::F32(s)) => blit(d, dw, dst_at, s, sw, src_at, size, ch),
            _ => return Err(bad("tiles with different sample types")),
        }
    }
    Ok(RawImage {
        width: w,
        height: h,
        channels: first.channels,
        bits_per_sample: first.bits_per_sample,
        colour: first.colour,
        samples,
    })
}

/// For window-decoding sources: the rectangle from the supplied tiles when all of them are
/// cached, else `None` (decode the window).
pub fn from_cache(
    info: &ImageInfo,
    resolution: u32,
    rect: (u32, u32, u32, u32),
    supply: &dyn TileSupply,
) -> Option<Result<RawImage>> {
    let level = *info.level(resolution)?;
    let cells = tiles_under(&level, rect);
    let tiles = supply.cached(&cells)?;
    Some(assemble(info, &level, rect, &cells, &tiles))
}

#[cfg(test)]
mod tests {
    //! The region reads against the path they replace: tiles decoded one by one and stitched
    //! ([`stitch`] over a supply that decodes every tile). Lossy-format decoders may round
    //! differently over a window than over a tile, so the bar is the issue's: PSNR ≥ 40 dB.
    use super::*;
    use crate::source::ImageSource;
    use crate::source::jp2::Jp2Source;
    use crate::source::jpeg::JpegSource;
    use crate::source::testutil::fixture;
    use crate::source::tiff::TiffSource;

    /// The least PSNR a region read may have against the stitched tiles.
    const MIN_PSNR: f64 = 40.0;

    /// Decodes every tile asked for and caches none: the supply of the old path.
    struct Decoding<'a> {
        source: &'a dyn ImageSource,
        resolution: u32,
    }

    impl TileSupply for Decoding<'_> {
        fn tiles(&self, tiles: &[u32]) -> Result<Vec<Arc<RawImage>>> {
            tiles
                .iter()
                .map(|&t| self.source.tile(self.resolution, t, 0, 0).map(Arc::new))
                .collect()
        }

        fn cached(&self, _tiles: &[u32]) -> Option<Vec<Arc<RawImage>>> {
            None
        }
    }

    /// Holds the given tiles as cached; decoding is a test failure.
    struct Cached(Vec<Arc<RawImage>>);

    impl TileSupply for Cached {
        fn tiles(&self, _tiles: &[u32]) -> Result<Vec<Arc<RawImage>>> {
            panic!("a tile was decoded although every one was cached")
        }

        fn cached(&self, tiles: &[u32]) -> Option<Vec<Arc<RawImage>>> {
            tiles
                .iter()
                .map(|&t| self.0.get(t as usize).cloned())
                .collect()
        }
    }

    fn values(s: &Samples) -> Vec<f64> {
        match s {
            Samples::U8(v) => v.iter().map(|&x| x as f64).collect(),
            Samples::U16(v) => v.iter().map(|&x| x as f64 / 257.0).collect(),
            Samples::U32(v) => v.iter().map(|&x| x as f64).collect(),
            Samples::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Samples::F32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// PSNR of `a` against `b` on the 8-bit scale (infinite when identical).
    fn psnr(a: &RawImage, b: &RawImage) -> f64 {
        assert_eq!(
            (a.width, a.height, a.channels),
            (b.width, b.height, b.channels),
            "sizes differ"
        );
        let (a, b) = (values(&a.samples), values(&b.samples));
        assert_eq!(a.len(), b.len());
        let mse = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
        10.0 * (255.0f64.powi(2) / mse).log10()
    }

    /// Rectangles of a `w`×`h` level: the whole, across tile borders at odd places, the
    /// bottom-right edge, one pixel, one row.
    fn rects(w: u32, h: u32) -> Vec<(u32, u32, u32, u32)> {
        let mut out = vec![
            (0, 0, w, h),
            (w / 3, h / 5, (w / 2).max(1), (h / 2).max(1)),
            (
                w - (w / 3).max(1),
                h - (h / 4).max(1),
                (w / 3).max(1),
                (h / 4).max(1),
            ),
            (w / 2, h / 2, 1, 1),
            (0, h - 1, w, 1),
        ];
        out.retain(|&(x, y, rw, rh)| rw > 0 && rh > 0 && x + rw <= w && y + rh <= h);
        out
    }

    /// Every level's rectangles read by `source.region` against the stitched tiles; returns
    /// the lowest PSNR seen.
    fn region_reads_match_stitched_tiles(source: &dyn ImageSource, name: &str) -> f64 {
        let info = source.info();
        let read = RegionRead {
            threads: 2,
            ..RegionRead::default()
        };
        let mut lowest = f64::INFINITY;
        for r in 0..info.num_resolutions() {
            let level = *info.level(r).unwrap();
            let supply = Decoding {
                source,
                resolution: r,
            };
            for rect in rects(level.width, level.height) {
                let what = format!("{name} resolution {r} {rect:?}");
                let new = source.region(r, rect, &read, &supply).expect(&what);
                let old = stitch(info, r, rect, &supply).expect(&what);
                assert_eq!((new.width, new.height), (rect.2, rect.3), "{what}");
                let p = psnr(&new, &old);
                assert!(p >= MIN_PSNR, "{what}: {p:.1} dB");
                lowest = lowest.min(p);
            }
        }
        lowest
    }

    #[test]
    fn jpeg2000_window_decodes_match_stitched_tile_decodes() {
        for name in [
            "rgb8_tiled.jp2",
            "rgb8_untiled.jp2",
            "rgb16.jp2",
            "rgb8_res1.jp2",
        ] {
            let source = Jp2Source::open(&fixture("jp2", name)).unwrap();
            // With OpenJPEG 2.5 the window decodes are identical to the tile decodes.
            region_reads_match_stitched_tiles(&source, name);
        }
    }

    #[test]
    fn plain_jpeg_level_crops_match_stitched_tiles() {
        for name in ["rgb_odd.jpg", "grey.jpg", "wide.jpg"] {
            let source = JpegSource::open(&fixture("jpeg", name)).unwrap();
            region_reads_match_stitched_tiles(&source, name);
        }
    }

    #[test]
    fn tiff_jpeg_region_reads_match_stitched_tiles() {
        let source = TiffSource::open(&fixture("", "sample.tif")).unwrap();
        region_reads_match_stitched_tiles(&source, "sample.tif");
    }

    #[test]
    fn psnr_bar_catches_a_window_one_pixel_off() {
        // The bar is not trivially met: the same window moved by one pixel fails it.
        let source = TiffSource::open(&fixture("", "sample.tif")).unwrap();
        let top = source.info().num_resolutions() - 1;
        let supply = Decoding {
            source: &source,
            resolution: top,
        };
        let a = stitch(source.info(), top, (100, 100, 400, 300), &supply).unwrap();
        let b = stitch(source.info(), top, (101, 100, 400, 300), &supply).unwrap();
        assert!(psnr(&a, &b) < MIN_PSNR, "{:.1} dB", psnr(&a, &b));
    }

    #[test]
    fn window_decoders_take_the_tiles_when_all_are_cached() {
        // A JPEG2000 region whose tiles are all in the cache is copied from them, not decoded:
        // cached tiles of one flat value give a region of that value.
        let source = Jp2Source::open(&fixture("jp2", "rgb8_tiled.jp2")).unwrap();
        let top = source.info().num_resolutions() - 1;
        let level = *source.info().level(top).unwrap();
        let tiles = (0..level.tile_count() as u32)
            .map(|t| {
                let mut tile = source.tile(top, t, 0, 0).unwrap();
                tile.samples = Samples::U8(vec![7; tile.samples.len()]);
                Arc::new(tile)
            })
            .collect();
        let rect = (200, 100, 300, 200);
        let got = ImageSource::region(&source, top, rect, &RegionRead::default(), &Cached(tiles))
            .unwrap();
        assert_eq!((got.width, got.height), (300, 200));
        assert!(values(&got.samples).iter().all(|&v| v == 7.0));
    }
}
