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
