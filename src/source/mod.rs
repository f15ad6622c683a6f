//! Image sources: one module per file format, behind the [`ImageSource`] trait.
//!
//! A source is opened once per file (and kept in the metadata cache, keyed by path and mtime);
//! it describes the image ([`ImageInfo`]) and hands out tiles, either as decoded pixels
//! ([`ImageSource::tile`]) or, for codec pass-through, as the stored compressed bytes
//! ([`ImageSource::raw_tile`]).
//!
//! Resolution numbers follow IIP: `0` is the smallest level, `levels.len() - 1` full size.

pub mod error;
pub mod jp2;
pub mod jpeg;
pub mod region;
pub mod resolve;
pub mod sequence;
#[cfg(test)]
mod testutil;
pub mod tiff;

use std::collections::BTreeMap;

use crate::image::{ColourSpace, RawImage};
pub use error::{Result, SourceError};
pub use region::{RegionRead, TileSupply};

/// The file formats iipsrv recognises by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Tiff,
    Jpeg,
    Jpeg2000,
}

/// How the samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SampleFormat {
    #[default]
    Unsigned,
    Signed,
    Float,
}

/// One pyramid level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub width: u32,
    pub height: u32,
    /// This level's own tile size (levels may differ).
    pub tile_width: u32,
    pub tile_height: u32,
}

impl Level {
    /// Tiles across and down (edge tiles included).
    pub fn tiles(&self) -> (u32, u32) {
        (
            self.width.div_ceil(self.tile_width.max(1)),
            self.height.div_ceil(self.tile_height.max(1)),
        )
    }

    /// Total number of tiles.
    pub fn tile_count(&self) -> u64 {
        let (x, y) = self.tiles();
        x as u64 * y as u64
    }

    /// The real (cropped) size of tile `t` in row-major order; `None` if out of range.
    pub fn tile_size(&self, t: u32) -> Option<(u32, u32)> {
        let (nx, ny) = self.tiles();
        if nx == 0 || (t as u64) >= nx as u64 * ny as u64 {
            return None;
        }
        let (tx, ty) = (t % nx, t / nx);
        let w = (self.width - tx * self.tile_width).min(self.tile_width);
        let h = (self.height - ty * self.tile_height).min(self.tile_height);
        Some((w, h))
    }
}

/// Physical resolution as stored (TIFF XResolution/YResolution and ResolutionUnit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dpi {
    pub x: f64,
    pub y: f64,
    /// 1 = no unit, 2 = inch, 3 = centimetre (TIFF ResolutionUnit values).
    pub unit: u16,
}

/// One page of a multi-page stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackPage {
    pub name: String,
    pub scale: f64,
}

/// Everything a protocol needs to describe an image without decoding pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// Full-resolution size.
    pub width: u32,
    pub height: u32,
    /// Pyramid levels, **largest first** (index 0 = full size, IIP resolution `n-1`).
    pub levels: Vec<Level>,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub sample_format: SampleFormat,
    pub colour: ColourSpace,
    /// Per-channel (min, max) sample values (SMinSampleValue/SMaxSampleValue or the type range).
    pub min_max: Vec<(f64, f64)>,
    /// Metadata by iipsrv's key names (`creator`, `rights`, `date`, `description`, `title`,
    /// `pagename`, `software`, `make`, `model`, `xmp`, `icc`, `scale`, `exif`).
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub dpi: Option<Dpi>,
    /// Stack pages (multi-page TIFFs); empty for a single image.
    pub stack: Vec<StackPage>,
    /// JPEG2000 quality layers (0 for other formats).
    pub quality_layers: u32,
}

impl ImageInfo {
    /// Number of resolution levels.
    pub fn num_resolutions(&self) -> u32 {
        self.levels.len() as u32
    }

    /// The level for IIP resolution `r` (0 = smallest); `None` if out of range.
    pub fn level(&self, r: u32) -> Option<&Level> {
        let n = self.levels.len() as u32;
        if r >= n {
            None
        } else {
            self.levels.get((n - 1 - r) as usize)
        }
    }
}

/// Which codec a stored tile is compressed with, for pass-through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawCodec {
    /// A complete JPEG stream (JPEGTables already spliced in, SOI..EOI).
    Jpeg,
    /// A complete WebP file.
    Webp,
}

/// A tile exactly as stored, ready to be sent without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTile {
    pub codec: RawCodec,
    pub bytes: Vec<u8>,
}

/// An opened image file. Implementations are immutable after opening and shared between
/// threads (the metadata cache hands the same source to concurrent requests), so decoding must
/// not need `&mut self`: read with positional I/O (`FileExt::read_at`) or open per call.
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// The image's description.
    fn info(&self) -> &ImageInfo;

    /// Decode tile `tile` (row-major) of IIP resolution `resolution`, cropped to its real size.
    /// `page` selects a stack page (0 for single images); `layers` is the JPEG2000 quality-layer
    /// limit (0 = the source's default).
    fn tile(&self, resolution: u32, tile: u32, page: u32, layers: u32) -> Result<RawImage>;

    /// The stored bytes of a tile, when they can be sent as they are (JPEG or WebP compressed,
    /// full-size tile, plain colour space). `Ok(None)` when pass-through does not apply.
    fn raw_tile(&self, _resolution: u32, _tile: u32, _page: u32) -> Result<Option<RawTile>> {
        Ok(None)
    }

    /// The rectangle `rect` = (x, y, w, h) of IIP resolution `resolution`, which lies inside
    /// that level. By default assembled from the tiles `supply` gives ([`region::stitch`]);
    /// sources that decode arbitrary windows decode it in one go ([`region`]).
    fn region(
        &self,
        resolution: u32,
        rect: (u32, u32, u32, u32),
        _read: &RegionRead,
        supply: &dyn TileSupply,
    ) -> Result<RawImage> {
        region::stitch(self.info(), resolution, rect, supply)
    }
}

/// The level of IIP resolution `resolution`, when the region `x, y, w, h` lies inside it (for
/// sources that decode arbitrary windows: JPEG2000, JPEG): a missing level, or a region outside
/// it, is an error of the `format` reader.
pub fn checked_level_region(
    info: &ImageInfo,
    resolution: u32,
    (x, y, w, h): (u32, u32, u32, u32),
    format: ImageFormat,
) -> Result<Level> {
    use error::{Missing, SourceErrorKind};
    let level = *info
        .level(resolution)
        .ok_or_else(|| SourceError::missing(format, Missing::Resolution(resolution)))?;
    if w == 0
        || h == 0
        || x as u64 + w as u64 > level.width as u64
        || y as u64 + h as u64 > level.height as u64
    {
        return Err(SourceError::new(
            Some(format),
            SourceErrorKind::OutsideLevel {
                region: (x, y, w, h),
                level: (level.width, level.height),
            },
        ));
    }
    Ok(level)
}

/// The rectangle (x, y, width, height) of tile `tile` of IIP resolution `resolution`, in that
/// level's pixels, for sources whose tiles are a grid over decoded levels (JPEG2000, JPEG).
/// A missing level or tile is an error of the `format` reader.
pub fn grid_tile_rect(
    info: &ImageInfo,
    resolution: u32,
    tile: u32,
    format: ImageFormat,
) -> Result<(u32, u32, u32, u32)> {
    use error::Missing;
    let level = info
        .level(resolution)
        .ok_or_else(|| SourceError::missing(format, Missing::Resolution(resolution)))?;
    let (w, h) = level
        .tile_size(tile)
        .ok_or_else(|| SourceError::missing(format, Missing::Tile(tile)))?;
    let nx = level.tiles().0;
    Ok((
        (tile % nx) * level.tile_width,
        (tile / nx) * level.tile_height,
        w,
        h,
    ))
}

/// Open the source for a located file, by its detected format (`max_layers` is MAX_LAYERS).
pub fn open(
    located: &resolve::Located,
    max_layers: crate::config::MaxLayers,
) -> Result<std::sync::Arc<dyn ImageSource>> {
    use std::sync::Arc;
    Ok(match located.format {
        ImageFormat::Tiff => Arc::new(tiff::TiffSource::open(&located.path)?),
        ImageFormat::Jpeg2000 => Arc::new(jp2::Jp2Source::open_with(&located.path, max_layers)?),
        ImageFormat::Jpeg => Arc::new(jpeg::JpegSource::open(&located.path)?),
    })
}
