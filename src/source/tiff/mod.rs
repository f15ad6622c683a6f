//! TIFF pyramids (docs/behaviour/images-and-decoding.md §3): classic IFD-chain and SubIFD pyramids, BigTIFF,
//! single-level tiled files and multi-page stacks.
//!
//! # Brief overview
//!
//! [`TiffSource::open`] reads the header and walks the IFDs once ([`ifd`]), turns every level
//! and page into a checked [`dir::Directory`] (tile offsets, byte counts, JPEGTables, decode
//! plan) and describes the image ([`ImageInfo`]). After that the source is immutable: a tile
//! decode reads the tile's bytes with one positional read on the shared file, decompresses them
//! ([`codec`]) and converts the samples ([`convert`]), so any number of threads can decode at
//! once without locks or re-parsing.
//!
//! Differences from iipsrv 1.3, all deliberate (listed in docs/compatibility.md):
//! - non-square tiles use TileLength at every level;
//! - classic-chain stacks select page x (the x-th page IFD), SubIFD levels are only the
//!   reduced-resolution SubIFDs, wherever they sit in the list;
//! - in a classic chain, tiled IFDs that are masks (NewSubfileType bit 4) are not levels, and
//!   in every layout a level larger than the one before it in either dimension is skipped;
//! - MinIsWhite is inverted at every integer depth, not only below 8 bits and 10/12/14;
//! - palette images are expanded to RGB; planar-separate images are interleaved (all channels);
//! - 10/12/14-bit data defaults to a maximum of 65535;
//! - JPEG tiles without JPEGTables are decoded instead of failing pass-through;
//! - for a non-stack image the page number is ignored.

mod codec;
mod convert;
mod dir;
mod ifd;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use codec::Codec;
use convert::Stored;
use dir::{Directory, MAX_TILE_BYTES, SampleKind, is_tiled, photometric, subfile_type};
use ifd::{RawIfd, Reader, tag};

use crate::image::{ColourSpace, RawImage, Samples};
use crate::source::error::{Missing, Result, SourceError, Unsupported};
use crate::source::{
    Dpi, ImageFormat, ImageInfo, ImageSource, RawCodec, RawTile, SampleFormat, StackPage,
};

/// At most this many top-level IFDs are read (stack pages included).
const MAX_IFDS: usize = 16384;
/// At most this many IFDs in one SubIFD chain.
const MAX_SUBIFDS: usize = 64;
/// Largest metadata tag kept (ICC profiles, XMP packets).
const MAX_METADATA_BYTES: u64 = 16 << 20;

/// NewSubfileType values.
const REDUCED_RESOLUTION: u32 = 1;
const PAGE: u32 = 2;
const MASK: u32 = 4;

/// An opened TIFF file: its description and the parsed directories of every level and page.
pub struct TiffSource {
    path: PathBuf,
    reader: Reader,
    info: ImageInfo,
    /// `pages[page][native level]`; a single image has one page.
    pages: Vec<Vec<Directory>>,
}

impl std::fmt::Debug for TiffSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffSource")
            .field("path", &self.path)
            .field("pages", &self.pages.len())
            .field("levels", &self.info.levels.len())
            .finish()
    }
}

impl TiffSource {
    /// Open a local TIFF file and parse its structure.
    pub fn open(path: &Path) -> Result<TiffSource> {
        let blob = crate::storage::Storage::local("")
            .open(path, None)
            .map_err(|e| super::open_failed(ImageFormat::Tiff, e).context(path.display()))?;
        Self::open_blob(path, blob)
    }

    /// Parse the structure of a TIFF file or object (`path` names it in the log).
    pub fn open_blob(path: &Path, blob: Arc<dyn crate::storage::Blob>) -> Result<TiffSource> {
        let at = |e: SourceError| e.context(path.display());
        let reader = Reader::new(blob).map_err(at)?;
        let (info, pages) = discover(&reader).map_err(at)?;
        Ok(TiffSource {
            path: path.to_path_buf(),
            reader,
            info,
            pages,
        })
    }

    /// The directory for IIP resolution `resolution` of `page`.
    fn directory(&self, resolution: u32, page: u32) -> Result<&Directory> {
        let n = self.info.levels.len() as u32;
        let no_resolution =
            || SourceError::missing(ImageFormat::Tiff, Missing::Resolution(resolution));
        if resolution >= n {
            return Err(no_resolution());
        }
        let page = if self.info.stack.is_empty() {
            0
        } else {
            page as usize
        };
        let dirs = self
            .pages
            .get(page)
            .ok_or_else(|| SourceError::missing(ImageFormat::Tiff, Missing::Page(page as u32)))?;
        dirs.get((n - 1 - resolution) as usize)
            .ok_or_else(no_resolution)
    }

    /// The directory and checked tile index.
    fn locate(&self, resolution: u32, tile: u32, page: u32) -> Result<&Directory> {
        let dir = self.directory(resolution, page)?;
        if tile as u64 >= dir.tile_count() {
            return Err(SourceError::missing(ImageFormat::Tiff, Missing::Tile(tile)));
        }
        Ok(dir)
    }

    /// Read the stored bytes of chunk `chunk` (at most `MAX_TILE_BYTES`).
    fn read_chunk(&self, dir: &Directory, chunk: usize) -> Result<Vec<u8>> {
        let (offset, count) = (dir.offsets[chunk], dir.byte_counts[chunk]);
        if count > MAX_TILE_BYTES {
            return Err(ifd::corrupt(format!("tile byte count {count} too large")));
        }
        let mut buf = vec![0u8; count as usize];
        self.reader.read_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// A complete JPEG stream for chunk `chunk`: JPEGTables without its EOI followed by the
    /// tile without its SOI, read straight into place (one read, no further copy).
    fn jpeg_stream(&self, dir: &Directory, chunk: usize) -> Result<Vec<u8>> {
        const SOI: [u8; 2] = [0xFF, 0xD8];
        const EOI: [u8; 2] = [0xFF, 0xD9];
        let tables = match &dir.jpeg_tables {
            Some(t) if t.len() >= 4 && t[..2] == SOI => t,
            _ => return self.read_chunk(dir, chunk),
        };
        let head = if tables[tables.len() - 2..] == EOI {
            tables.len() - 2
        } else {
            tables.len()
        };
        let (offset, count) = (dir.offsets[chunk], dir.byte_counts[chunk]);
        if !(2..=MAX_TILE_BYTES).contains(&count) {
            return Err(ifd::corrupt(format!("JPEG tile byte count {count}")));
        }
        // Read the whole tile at head - 2 (over the last two table bytes), check its SOI, then
        // put the two table bytes back.
        let mut buf = vec![0u8; head - 2 + count as usize];
        buf[..head].copy_from_slice(&tables[..head]);
        let saved = [buf[head - 2], buf[head - 1]];
        self.reader.read_at(&mut buf[head - 2..], offset)?;
        if buf[head - 2..head] != SOI {
            return Err(codec::decode_error("JPEG tile does not start with SOI"));
        }
        buf[head - 2..head].copy_from_slice(&saved);
        Ok(buf)
    }

    /// Decode chunk `chunk` of `dir` into stored samples of a full tile.
    fn decode_chunk(&self, dir: &Directory, plan: &dir::Plan, chunk: usize) -> Result<Stored> {
        let mut stored = Stored::for_plan(plan);
        let (offset, count) = (dir.offsets[chunk], dir.byte_counts[chunk]);
        if count == 0 {
            // A sparse tile (no data written): zeros, as GDAL and libtiff ≥ 4.1 treat it.
            return if offset == 0 {
                Ok(stored)
            } else {
                Err(codec::decode_error("zero tile byte count"))
            };
        }
        let dst = stored.bytes_mut();
        let (tw, th) = (dir.tile_width, dir.tile_height);
        match plan.codec {
            Codec::None if !plan.reverse_bits => {
                let n = (count as usize).min(dst.len());
                self.reader.read_at(&mut dst[..n], offset)?;
                if n < dst.len() {
                    return Err(codec::decode_error(format!(
                        "uncompressed tile has {n} of {} bytes",
                        dst.len()
                    )));
                }
            }
            Codec::Jpeg | Codec::Webp => {
                let out = codec::Pixels {
                    dst,
                    width: tw,
                    height: th,
                    channels: plan.chunk_spp,
                };
                if matches!(plan.codec, Codec::Jpeg) {
                    codec::jpeg(&self.jpeg_stream(dir, chunk)?, out)?
                } else {
                    codec::webp(&self.read_chunk(dir, chunk)?, out)?
                }
            }
            c => {
                let mut src = self.read_chunk(dir, chunk)?;
                if plan.reverse_bits {
                    src.iter_mut().for_each(|b| *b = b.reverse_bits());
                }
                codec::decompress(c, &src, dst)?;
            }
        }
        Ok(stored)
    }

    /// Decode tile `tile` of `dir`, cropped to its real size.
    fn decode_tile(&self, dir: &Directory, tile: u32) -> Result<RawImage> {
        let plan = dir.plan.as_ref().map_err(Clone::clone)?;
        let size = dir.tile_size(tile);
        let plane = |p: u64| -> Result<Samples> {
            let chunk = (p * dir.tile_count() + tile as u64) as usize;
            let stored = self.decode_chunk(dir, plan, chunk)?;
            Ok(convert::to_samples(
                stored,
                plan,
                &dir.colormap,
                dir.tile_width,
                size,
            ))
        };
        let samples = if plan.planes == 1 {
            plane(0)?
        } else {
            convert::interleave(
                (0..plan.planes as u64)
                    .map(plane)
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        let bits_per_sample = if matches!(plan.kind, SampleKind::Palette { .. }) {
            8
        } else {
            dir.bits_per_sample
        };
        Ok(RawImage {
            width: size.0,
            height: size.1,
            channels: dir.channels,
            bits_per_sample,
            colour: dir.colour,
            samples,
        })
    }

    fn context(&self, e: SourceError, resolution: u32, tile: u32, page: u32) -> SourceError {
        e.context(format_args!(
            "{}: resolution {resolution}, tile {tile}, page {page}",
            self.path.display()
        ))
    }
}

impl ImageSource for TiffSource {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn tile(&self, resolution: u32, tile: u32, page: u32, _layers: u32) -> Result<RawImage> {
        self.locate(resolution, tile, page)
            .and_then(|dir| self.decode_tile(dir, tile))
            .map_err(|e| self.context(e, resolution, tile, page))
    }

    fn raw_tile(&self, resolution: u32, tile: u32, page: u32) -> Result<Option<RawTile>> {
        let dir = self
            .locate(resolution, tile, page)
            .map_err(|e| self.context(e, resolution, tile, page))?;
        let Ok(plan) = &dir.plan else { return Ok(None) };
        let full = dir.tile_size(tile) == (dir.tile_width, dir.tile_height);
        let plain = plan.planes == 1
            && plan.kind == SampleKind::U8
            && !plan.invert
            && matches!(dir.channels, 1 | 3)
            && matches!(dir.colour, ColourSpace::Srgb | ColourSpace::Grey);
        if !full || !plain || dir.byte_counts[tile as usize] == 0 {
            return Ok(None);
        }
        let (codec, bytes) = match plan.codec {
            Codec::Jpeg => {
                // libtiff stores RGB JPEG with an explicit subsampling tag in a way iipsrv
                // decodes rather than passes on (docs/behaviour/cache.md §4.1); tiles without tables are
                // decoded too.
                let subsampled_rgb =
                    dir.has_ycbcr_subsampling && dir.photometric == photometric::RGB;
                let tables = dir.jpeg_tables.as_ref().is_some_and(|t| t.len() > 4);
                if subsampled_rgb || !tables {
                    return Ok(None);
                }
                (RawCodec::Jpeg, self.jpeg_stream(dir, tile as usize))
            }
            Codec::Webp => (RawCodec::Webp, self.read_chunk(dir, tile as usize)),
            _ => return Ok(None),
        };
        let bytes = bytes.map_err(|e| self.context(e, resolution, tile, page))?;
        Ok(Some(RawTile { codec, bytes }))
    }
}

/// Walk the file's IFDs and build the image description and the per-page level directories.
fn discover(r: &Reader) -> Result<(ImageInfo, Vec<Vec<Directory>>)> {
    let top = r.chain(r.first_ifd, MAX_IFDS)?;
    let ifd0 = &top[0];
    if !is_tiled(ifd0) {
        return Err(SourceError::unsupported(
            ImageFormat::Tiff,
            Unsupported::NotTiled,
        ));
    }
    let format0 = match ifd0.get(tag::SAMPLE_FORMAT) {
        Some(e) => Some(r.uint(e)? as u16),
        None => None,
    };
    let parse = |ifd: &RawIfd| Directory::parse(r, ifd, format0);
    let is_page = |ifd: &RawIfd| subfile_type(r, ifd) == PAGE;
    let level0 = parse(ifd0)?;

    let sub_levels = subifd_levels(r, ifd0, format0)?;
    let (pages, stack_ifds): (Vec<Vec<Directory>>, Vec<&RawIfd>) = if !sub_levels.is_empty() {
        // SubIFD pyramid; pages, if any, are the top-level IFDs marked as pages.
        let page_ifds: Vec<&RawIfd> = top.iter().filter(|i| is_page(i)).collect();
        if is_page(ifd0) && page_ifds.len() > 1 {
            let mut pages = vec![reducing(std::iter::once(level0).chain(sub_levels))];
            for ifd in &page_ifds[1..] {
                let first = parse(ifd)?;
                pages.push(reducing(
                    std::iter::once(first).chain(subifd_levels(r, ifd, format0)?),
                ));
            }
            (pages, page_ifds)
        } else {
            (
                vec![reducing(std::iter::once(level0).chain(sub_levels))],
                Vec::new(),
            )
        }
    } else {
        // Classic chain: every later tiled IFD is a candidate level.
        let mut candidates = vec![(ifd0, level0)];
        for ifd in top[1..].iter().filter(|i| is_tiled(i)) {
            match parse(ifd) {
                Ok(d) => candidates.push((ifd, d)),
                Err(e) => tracing::debug!("TIFF: skipping a broken tiled IFD: {e}"),
            }
        }
        let same_size = candidates.len() >= 2
            && (candidates[1].1.width, candidates[1].1.height)
                == (candidates[0].1.width, candidates[0].1.height);
        let page_count = top.iter().filter(|i| is_page(i)).count();
        if same_size && is_page(ifd0) && page_count > 1 {
            // A multi-page stack: each page IFD is a single-level image.
            let mut pages = Vec::new();
            let mut ifds = Vec::new();
            for (ifd, d) in candidates.into_iter().filter(|(i, _)| is_page(i)) {
                pages.push(vec![d]);
                ifds.push(ifd);
            }
            (pages, ifds)
        } else {
            let levels = candidates
                .into_iter()
                .map(|(_, d)| d)
                .filter(|d| d.subfile_type & MASK == 0);
            (vec![reducing(levels)], Vec::new())
        }
    };

    // Every page is read with page 0's description (levels, tile grid, channels): a page laid
    // out otherwise would give tiles of other sizes than the grid promises, so it is dropped.
    let (pages, stack_ifds): (Vec<Vec<Directory>>, Vec<&RawIfd>) = if stack_ifds.is_empty() {
        (pages, stack_ifds)
    } else {
        let kept: Vec<bool> = pages.iter().map(|p| same_layout(&pages[0], p)).collect();
        if kept.contains(&false) {
            tracing::debug!("TIFF: skipping stack pages laid out unlike the first");
        }
        let mut keep = kept.iter().copied();
        let stack_ifds = stack_ifds
            .into_iter()
            .filter(|_| keep.next().unwrap_or(false))
            .collect();
        let mut keep = kept.iter().copied();
        let pages = pages
            .into_iter()
            .filter(|_| keep.next().unwrap_or(false))
            .collect();
        (pages, stack_ifds)
    };

    let stack = stack_ifds
        .iter()
        .map(|ifd| StackPage {
            name: ascii(r, ifd, tag::DOCUMENT_NAME)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            scale: number(r, ifd, tag::STONITS)
                .filter(|v| v.is_finite())
                .unwrap_or(1.0),
        })
        .collect();
    // Every tiled IFD may be a mask (NewSubfileType 4), which is never a level.
    if pages.first().is_none_or(Vec::is_empty) {
        return Err(SourceError::corrupt(
            ImageFormat::Tiff,
            "no image level (every tiled directory is a mask)",
        ));
    }
    let info = describe(r, ifd0, &pages[0], stack);
    Ok((info, pages))
}

/// The levels that make a pyramid, largest first: each one kept only if it is no larger than
/// the level kept before it in either dimension, and smaller in one (thumbnails, previews and
/// other IFDs between the levels are skipped).
fn reducing(levels: impl IntoIterator<Item = Directory>) -> Vec<Directory> {
    let mut kept: Vec<Directory> = Vec::new();
    for d in levels {
        let reduces = kept.last().is_none_or(|p| {
            d.width <= p.width && d.height <= p.height && (d.width, d.height) != (p.width, p.height)
        });
        if reduces {
            kept.push(d);
        }
    }
    kept
}

/// Whether two pages have the same levels: sizes, tiling, channels and sample width.
fn same_layout(a: &[Directory], b: &[Directory]) -> bool {
    let shape = |d: &Directory| {
        (
            d.width,
            d.height,
            d.tile_width,
            d.tile_height,
            d.channels,
            d.bits_per_sample,
        )
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| shape(x) == shape(y))
}

/// The reduced-resolution SubIFDs of `ifd`, in order, as directories. A single SubIFD offset
/// may start a chain (linked by next-IFD offsets); broken SubIFDs are skipped.
fn subifd_levels(r: &Reader, ifd: &RawIfd, format0: Option<u16>) -> Result<Vec<Directory>> {
    let Some(e) = ifd.get(tag::SUB_IFDS) else {
        return Ok(Vec::new());
    };
    let Ok(offsets) = r.uints(e, MAX_SUBIFDS as u64) else {
        tracing::debug!("TIFF: unreadable SubIFDs tag");
        return Ok(Vec::new());
    };
    let subs: Vec<RawIfd> = match offsets.as_slice() {
        [] => Vec::new(),
        [one] => r.chain(*one, MAX_SUBIFDS).unwrap_or_default(),
        many => many.iter().filter_map(|&o| r.read_ifd(o).ok()).collect(),
    };
    Ok(subs
        .iter()
        .filter(|s| subfile_type(r, s) == REDUCED_RESOLUTION && is_tiled(s))
        .filter_map(|s| {
            Directory::parse(r, s, format0)
                .inspect_err(|e| tracing::debug!("TIFF: bad SubIFD: {e}"))
                .ok()
        })
        .collect())
}

/// Build the [`ImageInfo`] from IFD 0's tags and page 0's levels.
fn describe(r: &Reader, ifd0: &RawIfd, levels: &[Directory], stack: Vec<StackPage>) -> ImageInfo {
    let d0 = &levels[0];
    let palette = d0.photometric == photometric::PALETTE;
    let bits_per_sample = if palette { 8 } else { d0.bits_per_sample };
    ImageInfo {
        format: ImageFormat::Tiff,
        width: d0.width,
        height: d0.height,
        levels: levels.iter().map(Directory::level).collect(),
        channels: d0.channels,
        bits_per_sample,
        sample_format: d0.sample_format,
        colour: d0.colour,
        min_max: min_max(r, ifd0, d0.channels, bits_per_sample, d0.sample_format),
        metadata: metadata(r, ifd0),
        dpi: dpi(r, ifd0),
        stack,
        quality_layers: 0,
    }
}

/// Per-channel (min, max): SMinSampleValue/SMaxSampleValue, else 0 and the type's maximum
/// (docs/behaviour/images-and-decoding.md §3.8, with 65535 for all 9–16-bit data). Stored values of depths
/// that are scaled on decode are scaled the same way.
fn min_max(
    r: &Reader,
    ifd0: &RawIfd,
    channels: u16,
    bps: u16,
    format: SampleFormat,
) -> Vec<(f64, f64)> {
    let default_max = match (bps, format) {
        (_, SampleFormat::Float) => 1.0,
        (0..=8, _) => 255.0,
        (9..=16, _) => 65535.0,
        _ => u32::MAX as f64,
    };
    let scale = |v: f64| match bps {
        1 | 2 | 4 | 6 if v >= 0.0 && v < (1u32 << bps) as f64 => {
            convert::scale8(v as u32, bps as u8) as f64
        }
        10 | 12 | 14 if v >= 0.0 && v < (1u32 << bps) as f64 => {
            convert::scale16(v as u32, bps as u8) as f64
        }
        _ => v,
    };
    let values = |t: u16| -> Vec<f64> {
        ifd0.get(t)
            .and_then(|e| r.numbers(e, channels as u64).ok())
            .unwrap_or_default()
    };
    let pick = |v: &[f64], c: usize| v.get(c).or(v.first()).copied();
    let (mins, maxs) = (
        values(tag::SMIN_SAMPLE_VALUE),
        values(tag::SMAX_SAMPLE_VALUE),
    );
    (0..channels as usize)
        .map(|c| {
            let min = pick(&mins, c)
                .filter(|v| v.is_finite())
                .map(scale)
                .unwrap_or(0.0);
            let max = pick(&maxs, c)
                .filter(|v| v.is_finite() && *v != 0.0)
                .map(scale)
                .unwrap_or(default_max);
            (min, max)
        })
        .collect()
}

/// An ASCII tag up to its first NUL.
fn ascii(r: &Reader, ifd: &RawIfd, t: u16) -> Option<Vec<u8>> {
    let mut v = r.bytes(ifd.get(t)?, MAX_METADATA_BYTES).ok()?;
    if let Some(nul) = v.iter().position(|&b| b == 0) {
        v.truncate(nul);
    }
    Some(v)
}

/// The first value of a numeric tag.
fn number(r: &Reader, ifd: &RawIfd, t: u16) -> Option<f64> {
    r.number(ifd.get(t)?).ok()
}

/// The metadata map (docs/behaviour/images-and-decoding.md §3.9).
fn metadata(r: &Reader, ifd0: &RawIfd) -> BTreeMap<String, Vec<u8>> {
    let mut map = BTreeMap::new();
    for (t, key) in [
        (tag::ARTIST, "creator"),
        (tag::COPYRIGHT, "rights"),
        (tag::DATE_TIME, "date"),
        (tag::IMAGE_DESCRIPTION, "description"),
        (tag::DOCUMENT_NAME, "title"),
        (tag::PAGE_NAME, "pagename"),
        (tag::SOFTWARE, "software"),
        (tag::MAKE, "make"),
        (tag::MODEL, "model"),
    ] {
        if let Some(v) = ascii(r, ifd0, t) {
            map.insert(key.to_string(), v);
        }
    }
    for (t, key) in [(tag::XMP, "xmp"), (tag::ICC_PROFILE, "icc")] {
        if let Some(v) = ifd0
            .get(t)
            .and_then(|e| r.bytes(e, MAX_METADATA_BYTES).ok())
        {
            map.insert(key.to_string(), v);
        }
    }
    if let Some(v) = number(r, ifd0, tag::STONITS) {
        map.insert("scale".to_string(), format_g(v).into_bytes());
    }
    map
}

/// XResolution/YResolution/ResolutionUnit; `None` unless both resolutions are present.
fn dpi(r: &Reader, ifd0: &RawIfd) -> Option<Dpi> {
    let x = number(r, ifd0, tag::X_RESOLUTION).filter(|v| v.is_finite())?;
    let y = number(r, ifd0, tag::Y_RESOLUTION).filter(|v| v.is_finite())?;
    let unit = ifd0
        .get(tag::RESOLUTION_UNIT)
        .and_then(|e| r.uint(e).ok())
        .unwrap_or(1);
    let unit = if (1..=3).contains(&unit) {
        unit as u16
    } else {
        1
    };
    Some(Dpi { x, y, unit })
}

/// C's `%g`: six significant digits, trailing zeros removed, exponent form below 1e-4 and from
/// 1e6 on.
fn format_g(v: f64) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&exp) {
        format!(
            "{}e{}{:02}",
            trim(mantissa),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        trim(&format!("{v:.*}", (5 - exp) as usize))
    }
}
