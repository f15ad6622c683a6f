//! Raw IFDs to typed image directories: every tag a tile decode needs, checked once at open,
//! and the decode [`Plan`] derived from them.
//!
//! A structurally broken directory (zero or huge sizes, missing or short tile arrays) fails
//! [`Directory::parse`]. A well-formed directory that uses something this reader does not decode
//! (an unknown compression, an odd bit depth) parses fine and keeps the error in
//! [`Directory::plan`], so the image can still be described and only its tiles fail.

use super::codec::Codec;
use super::ifd::{MAX_VALUES, RawIfd, Reader, corrupt, tag};
use crate::image::ColourSpace;
use crate::source::error::{Result, SourceError, SourceErrorKind, Unsupported};
use crate::source::{ImageFormat, Level, SampleFormat};

/// Largest decoded tile (stored or converted), in bytes.
pub(super) const MAX_TILE_BYTES: u64 = 256 << 20;
/// Largest JPEGTables tag accepted.
const MAX_JPEG_TABLES: u64 = 1 << 20;

/// TIFF Photometric values that change decoding.
pub(super) mod photometric {
    pub const MIN_IS_WHITE: u16 = 0;
    pub const MIN_IS_BLACK: u16 = 1;
    pub const RGB: u16 = 2;
    pub const PALETTE: u16 = 3;
    pub const YCBCR: u16 = 6;
    pub const CIELAB: u16 = 8;
}

/// How the stored samples of one chunk become output samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SampleKind {
    /// 8-bit samples, kept.
    U8,
    /// 16-bit samples, kept (byte-swapped to native).
    U16,
    /// 32-bit unsigned (or signed, reinterpreted: see [`SampleKind::I32`]).
    U32,
    /// 32-bit signed.
    I32,
    /// 32-bit IEEE float.
    F32,
    /// 1, 2, 4 or 6-bit samples, unpacked and scaled to 8 bits.
    Packed8 { bits: u8 },
    /// 10, 12 or 14-bit samples, unpacked and scaled to 16 bits.
    Packed16 { bits: u8 },
    /// 1–8-bit palette indices, expanded to 8-bit RGB.
    Palette { bits: u8 },
}

/// Everything needed to decode one tile of a directory, computed once.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub codec: Codec,
    /// 1 none, 2 horizontal differencing, 3 floating point.
    pub predictor: u16,
    /// Samples per pixel in one stored chunk (1 for planar-separate data).
    pub chunk_spp: u16,
    /// Number of sample planes (chunks per tile): 1, or SamplesPerPixel if separate.
    pub planes: u16,
    /// Stored bytes per tile row within one chunk (rows are byte-aligned).
    pub row_bytes: usize,
    /// Stored bytes of one decoded chunk.
    pub chunk_bytes: usize,
    pub kind: SampleKind,
    /// MinIsWhite: invert integer samples (after scaling).
    pub invert: bool,
    /// Multi-byte samples are in the non-native byte order.
    pub swap: bool,
    /// FillOrder 2: reverse the bits of every stored byte before decompressing.
    pub reverse_bits: bool,
}

/// One tiled image directory (a pyramid level or a stack page).
#[derive(Debug)]
pub(super) struct Directory {
    pub width: u32,
    pub height: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub samples_per_pixel: u16,
    pub bits_per_sample: u16,
    pub sample_format: SampleFormat,
    pub photometric: u16,
    pub compression: u16,
    pub subfile_type: u32,
    /// Whether a YCbCrSubsampling tag is present (pass-through excludes RGB JPEG with one).
    pub has_ycbcr_subsampling: bool,
    /// Chunk offsets and byte counts (plane-major for planar-separate data).
    pub offsets: Vec<u64>,
    pub byte_counts: Vec<u64>,
    pub jpeg_tables: Option<Vec<u8>>,
    /// Palette: 3 × 2^bps entries (all reds, then greens, then blues), 16-bit.
    pub colormap: Vec<u16>,
    /// Channels and colour of the decoded tiles.
    pub channels: u16,
    pub colour: ColourSpace,
    /// How to decode, or why this directory's tiles cannot be decoded.
    pub plan: Result<Plan, SourceError>,
}

/// Whether an IFD is tiled (has both tile dimensions).
pub(super) fn is_tiled(ifd: &RawIfd) -> bool {
    ifd.get(tag::TILE_WIDTH).is_some() && ifd.get(tag::TILE_LENGTH).is_some()
}

/// NewSubfileType of an IFD (0 if absent or unreadable).
pub(super) fn subfile_type(r: &Reader, ifd: &RawIfd) -> u32 {
    ifd.get(tag::NEW_SUBFILE_TYPE)
        .and_then(|e| r.uint(e).ok())
        .unwrap_or(0) as u32
}

/// The first value of an integer tag, or `default` when absent.
fn uint_or(r: &Reader, ifd: &RawIfd, t: u16, default: u64) -> Result<u64> {
    match ifd.get(t) {
        Some(e) => r.uint(e),
        None => Ok(default),
    }
}

/// A 32-bit dimension that must be non-zero.
fn dimension(r: &Reader, ifd: &RawIfd, t: u16, what: &str) -> Result<u32> {
    let v = match ifd.get(t) {
        Some(e) => r.uint(e)?,
        None => return Err(corrupt(format!("missing {what}"))),
    };
    if v == 0 || v > u32::MAX as u64 {
        return Err(corrupt(format!("bad {what} {v}")));
    }
    Ok(v as u32)
}

impl Directory {
    /// Parse a tiled IFD. `inherited_format` is IFD 0's SampleFormat, used when this IFD has
    /// none (vips writes SampleFormat only in the first IFD of float pyramids).
    pub fn parse(r: &Reader, ifd: &RawIfd, inherited_format: Option<u16>) -> Result<Directory> {
        let width = dimension(r, ifd, tag::IMAGE_WIDTH, "image width")?;
        let height = dimension(r, ifd, tag::IMAGE_LENGTH, "image length")?;
        let tile_width = dimension(r, ifd, tag::TILE_WIDTH, "tile width")?;
        let tile_height = dimension(r, ifd, tag::TILE_LENGTH, "tile length")?;
        let spp = uint_or(r, ifd, tag::SAMPLES_PER_PIXEL, 1)?;
        if spp == 0 || spp > u16::MAX as u64 {
            return Err(corrupt(format!("bad samples per pixel {spp}")));
        }
        let spp = spp as u16;
        let bps = uint_or(r, ifd, tag::BITS_PER_SAMPLE, 1)?;
        if bps == 0 || bps > 64 {
            return Err(corrupt(format!("bad bits per sample {bps}")));
        }
        let bps = bps as u16;
        let format_code = match ifd.get(tag::SAMPLE_FORMAT) {
            Some(e) => r.uint(e)? as u16,
            None => inherited_format.unwrap_or(1),
        };
        let sample_format = match format_code {
            2 => SampleFormat::Signed,
            3 => SampleFormat::Float,
            _ => SampleFormat::Unsigned,
        };
        let photometric = match ifd.get(tag::PHOTOMETRIC) {
            Some(e) => r.uint(e)? as u16,
            None if spp >= 3 => photometric::RGB,
            None => photometric::MIN_IS_BLACK,
        };
        let compression = uint_or(r, ifd, tag::COMPRESSION, 1)? as u16;
        let predictor = uint_or(r, ifd, tag::PREDICTOR, 1)? as u16;
        let separate = uint_or(r, ifd, tag::PLANAR_CONFIG, 1)? == 2 && spp > 1;
        let reverse_bits = uint_or(r, ifd, tag::FILL_ORDER, 1)? == 2;
        let subfile_type = subfile_type(r, ifd);

        // Tile grid and chunk arrays.
        let across = (width as u64).div_ceil(tile_width as u64);
        let down = (height as u64).div_ceil(tile_height as u64);
        let planes: u64 = if separate { spp as u64 } else { 1 };
        let chunks = across
            .checked_mul(down)
            .and_then(|n| n.checked_mul(planes))
            .filter(|&n| n <= MAX_VALUES)
            .ok_or_else(|| corrupt(format!("too many tiles ({across} x {down})")))?;
        let (Some(oe), Some(ce)) = (ifd.get(tag::TILE_OFFSETS), ifd.get(tag::TILE_BYTE_COUNTS))
        else {
            return Err(corrupt("missing tile offsets"));
        };
        if oe.count < chunks || ce.count < chunks {
            return Err(corrupt(format!(
                "{} tile offsets for {chunks} tiles",
                oe.count.min(ce.count)
            )));
        }
        let mut offsets = r.uints(oe, MAX_VALUES)?;
        let mut byte_counts = r.uints(ce, MAX_VALUES)?;
        offsets.truncate(chunks as usize);
        byte_counts.truncate(chunks as usize);

        // Stored and decoded tile sizes.
        let chunk_spp = if separate { 1 } else { spp };
        let row_bits = (tile_width as u64) * chunk_spp as u64 * bps as u64;
        let row_bytes = row_bits.div_ceil(8);
        let chunk_bytes = row_bytes
            .checked_mul(tile_height as u64)
            .filter(|&n| n <= MAX_TILE_BYTES);
        let decoded = (tile_width as u64 * tile_height as u64)
            .checked_mul(spp as u64 * 4)
            .filter(|&n| n <= MAX_TILE_BYTES);
        if chunk_bytes.is_none() || decoded.is_none() {
            return Err(corrupt(format!(
                "tile too large ({tile_width} x {tile_height} x {spp} x {bps} bits)"
            )));
        }
        let chunk_bytes = chunk_bytes.unwrap_or(0) as usize;

        let jpeg_tables = match ifd.get(tag::JPEG_TABLES) {
            Some(e) if compression == 7 => Some(r.bytes(e, MAX_JPEG_TABLES)?),
            _ => None,
        };
        let colormap = match ifd.get(tag::COLOR_MAP) {
            Some(e) if photometric == photometric::PALETTE && bps <= 8 => {
                r.uints(e, 3 << 8)?.into_iter().map(|v| v as u16).collect()
            }
            _ => Vec::new(),
        };

        let (channels, colour) = classify(photometric, spp, bps);
        let mut dir = Directory {
            width,
            height,
            tile_width,
            tile_height,
            samples_per_pixel: spp,
            bits_per_sample: bps,
            sample_format,
            photometric,
            compression,
            subfile_type,
            has_ycbcr_subsampling: ifd.get(tag::YCBCR_SUBSAMPLING).is_some(),
            offsets,
            byte_counts,
            jpeg_tables,
            colormap,
            channels,
            colour,
            plan: Err(SourceError::new(
                Some(ImageFormat::Tiff),
                SourceErrorKind::Internal("unplanned"),
            )),
        };
        dir.plan = dir.make_plan(
            predictor,
            separate,
            row_bytes as usize,
            chunk_bytes,
            reverse_bits,
            r.big_endian,
        );
        Ok(dir)
    }

    /// The level this directory describes.
    pub fn level(&self) -> Level {
        Level {
            width: self.width,
            height: self.height,
            tile_width: self.tile_width,
            tile_height: self.tile_height,
        }
    }

    fn make_plan(
        &self,
        predictor: u16,
        separate: bool,
        row_bytes: usize,
        chunk_bytes: usize,
        reverse_bits: bool,
        big_endian: bool,
    ) -> Result<Plan> {
        let unsupported =
            |what: String| SourceError::unsupported(ImageFormat::Tiff, Unsupported::Feature(what));
        let codec = Codec::from_tiff(self.compression)
            .ok_or_else(|| unsupported(format!("compression {}", self.compression)))?;
        let bps = self.bits_per_sample;
        let float = self.sample_format == SampleFormat::Float;
        let palette = self.photometric == photometric::PALETTE;
        let kind = match (bps, self.sample_format) {
            (1..=8, _) if palette => {
                if self.samples_per_pixel != 1 || !matches!(bps, 1 | 2 | 4 | 8) {
                    return Err(unsupported(format!(
                        "{bps}-bit palette with {} samples",
                        self.samples_per_pixel
                    )));
                }
                if self.colormap.len() < 3 << bps {
                    return Err(unsupported("palette without a colour map".into()));
                }
                SampleKind::Palette { bits: bps as u8 }
            }
            (_, _) if palette => return Err(unsupported(format!("{bps}-bit palette"))),
            (8, SampleFormat::Float) | (16, SampleFormat::Float) => {
                return Err(unsupported(format!("{bps}-bit floating point")));
            }
            (8, _) => SampleKind::U8,
            (16, _) => SampleKind::U16,
            (32, SampleFormat::Float) => SampleKind::F32,
            (32, SampleFormat::Signed) => SampleKind::I32,
            (32, _) => SampleKind::U32,
            (1 | 2 | 4 | 6, _) if !float => SampleKind::Packed8 { bits: bps as u8 },
            (10 | 12 | 14, _) if !float => SampleKind::Packed16 { bits: bps as u8 },
            _ => return Err(unsupported(format!("{bps} bits per sample"))),
        };
        match predictor {
            1 => {}
            2 if matches!(
                kind,
                SampleKind::U8
                    | SampleKind::U16
                    | SampleKind::U32
                    | SampleKind::I32
                    | SampleKind::F32
            ) => {}
            3 if kind == SampleKind::F32 => {}
            p => return Err(unsupported(format!("predictor {p} with {bps}-bit samples"))),
        }
        let chunk_spp = if separate { 1 } else { self.samples_per_pixel };
        match codec {
            Codec::Jpeg if bps != 8 => return Err(unsupported(format!("{bps}-bit JPEG"))),
            Codec::Jpeg if !matches!(chunk_spp, 1 | 3 | 4) => {
                return Err(unsupported(format!(
                    "JPEG with {chunk_spp} samples per pixel"
                )));
            }
            Codec::Webp if bps != 8 || !matches!(chunk_spp, 3 | 4) => {
                return Err(unsupported(format!(
                    "WebP with {chunk_spp} samples of {bps} bits"
                )));
            }
            _ => {}
        }
        if self.photometric == photometric::YCBCR && codec != Codec::Jpeg {
            return Err(unsupported("YCbCr without JPEG compression".into()));
        }
        Ok(Plan {
            codec,
            predictor,
            chunk_spp,
            planes: if separate { self.samples_per_pixel } else { 1 },
            row_bytes,
            chunk_bytes,
            kind,
            invert: self.photometric == photometric::MIN_IS_WHITE && !float,
            swap: big_endian != cfg!(target_endian = "big"),
            reverse_bits: reverse_bits && codec.honours_fill_order(),
        })
    }

    /// Number of tiles across.
    pub fn tiles_across(&self) -> u32 {
        self.width.div_ceil(self.tile_width)
    }

    /// Number of tiles (per plane).
    pub fn tile_count(&self) -> u64 {
        self.tiles_across() as u64 * self.height.div_ceil(self.tile_height) as u64
    }

    /// The real (cropped) size of tile `t`.
    pub fn tile_size(&self, t: u32) -> (u32, u32) {
        let across = self.tiles_across();
        let (col, row) = (t % across, t / across);
        let w = (self.width - col * self.tile_width).min(self.tile_width);
        let h = (self.height - row * self.tile_height).min(self.tile_height);
        (w, h)
    }
}

/// Output channels and colour space of a directory (docs/behaviour/images-and-decoding.md §3.4, with palette
/// images expanded to RGB and bands without colour meaning reported as multiband).
pub(super) fn classify(photometric: u16, spp: u16, bps: u16) -> (u16, ColourSpace) {
    match photometric {
        photometric::CIELAB => (spp, ColourSpace::CieLab),
        photometric::MIN_IS_WHITE | photometric::MIN_IS_BLACK => {
            let colour = match spp {
                1 if bps == 1 => ColourSpace::Binary,
                1 | 2 => ColourSpace::Grey,
                _ => ColourSpace::Multiband,
            };
            (spp, colour)
        }
        photometric::PALETTE => (3, ColourSpace::Srgb),
        _ if spp > 4 => (spp, ColourSpace::Multiband),
        _ => (spp, ColourSpace::Srgb),
    }
}
