//! JPEG2000 (docs/behaviour/images-and-decoding.md §5): JP2 and JPX files and raw J2K codestreams, decoded
//! with OpenJPEG (Debian's libopenjp2).
//!
//! # Brief overview
//!
//! [`Jp2Source::open`] parses the boxes and the codestream's main header once ([`header`]),
//! has OpenJPEG read the header to confirm it accepts the file, and describes the image: a
//! virtual pyramid of 256×256 tiles whose levels are the codestream's true reduced sizes
//! (ceiling halving, `⌈x1/2^k⌉ − ⌈x0/2^k⌉`), continued by "virtual" levels when the codestream
//! has too few resolutions for the smallest level to fit one tile. The source is immutable
//! afterwards: every [`ImageSource::tile`] or [`Jp2Source::region`] call opens its own
//! OpenJPEG decoder over the shared file ([`decode`]) and decodes just the window it needs at
//! the reduced resolution, so concurrent requests never wait on each other.
//!
//! Differences from iipsrv 1.3, all deliberate (listed in docs/compatibility.md):
//! - level sizes are the codestream's true sizes (HEAD's ceiling halving, not 1.3's floor);
//! - virtual levels are decimated by 2^(levels below the smallest real one), not 2 × that;
//! - 8-bit samples are taken whole (HEAD masks them to 4 bits) and the decode window is
//!   clamped to the image (HEAD fails or crashes off-origin tiles);
//! - every depth from 1 to 16 bits is scaled to the full 8 or 16-bit range by bit replication
//!   (HEAD: only 1/2/4/6/10/12/14; 1.3: only 1), signed samples are offset to unsigned, and
//!   the maximum sample value is 255 or 65535 (1.3/HEAD push misaligned values for 9–15 bits);
//! - the ICC profile (and an XMP uuid box) are read at open, so tiles and metadata see them
//!   (OpenJPEG builds of iipsrv only see the ICC profile after a first decode);
//! - a truncated codestream is an error (OpenJPEG strict mode), not a partly black tile;
//! - raw J2K codestreams are accepted here (format detection upstream only knows JP2);
//! - components with subsampling (XRsiz/YRsiz ≠ 1) are refused with an error.

mod decode;
mod ffi;
mod header;
mod index;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use decode::{Input, Window};
use header::{Channel, Container};
use index::{Index, Piece};

use crate::config::MaxLayers;
use crate::image::{ColourSpace, RawImage, Samples};
use crate::source::error::{
    Corrupt, Defect, Result, SourceError, SourceErrorKind, TooLarge, Unsupported,
};
use crate::source::{ImageFormat, ImageInfo, ImageSource, Level, SampleFormat};
use crate::storage::Blob;

/// The virtual tile size of every level.
pub const TILE_SIZE: u32 = 256;
/// Most pixels one decode may produce at the decoded resolution (before decimation for
/// virtual levels). OpenJPEG holds 4 bytes per sample of the window.
pub const MAX_DECODE_PIXELS: u64 = 1 << 26;
/// Most bytes OpenJPEG may hold for one decode's window: 4 per sample of every component, over
/// the window widened by one code-block each way (OpenJPEG decodes whole code-blocks; the
/// main header's largest). A narrow window through a tall single-tile image at a decimated
/// level is few pixels but many code-blocks: a 1×8.4 million window of 64×64 code-blocks made
/// a release server hold 4.6 GB. Every window of up to [`MAX_DECODE_PIXELS`] RGB pixels fits.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;
/// Decodes of fewer pixels (at the decoded resolution) than this stay on one thread, whatever
/// they are granted: OpenJPEG's pool costs more than it saves on small windows (a 256² tile).
pub const THREADED_PIXELS: u64 = 512 * 512;

/// An opened JPEG2000 file.
pub struct Jp2Source {
    path: PathBuf,
    file: Arc<dyn Blob>,
    format: i32,
    info: ImageInfo,
    /// The image area on the reference grid.
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    /// Real resolutions used (the codestream's, capped at the number of levels).
    resolutions: u32,
    /// Components in the codestream, and its largest code-block (log2 width, height).
    components: u32,
    code_block: (u8, u8),
    channels: Vec<Channel>,
    /// Output sample depth: 8 or 16.
    out_bits: u32,
    /// MAX_LAYERS (docs/behaviour/images-and-decoding.md §5.3): > 0 caps the layers, < 0 decodes all by default.
    max_layers: MaxLayers,
    /// Where the tile-parts are, so that a decode reads only those under its window; `None`
    /// when the file is decoded whole ([`index`]).
    index: Option<Index>,
    /// The whole file as one piece.
    whole: [Piece; 1],
}

impl std::fmt::Debug for Jp2Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jp2Source")
            .field("path", &self.path)
            .field("levels", &self.info.levels.len())
            .field("resolutions", &self.resolutions)
            .field("layers", &self.info.quality_layers)
            .finish()
    }
}

/// The version of the OpenJPEG library in use (for the log).
pub fn library_version() -> String {
    // SAFETY: opj_version returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(ffi::opj_version()) }
        .to_string_lossy()
        .into_owned()
}

/// ⌈v / 2^k⌉.
fn ceil_shift(v: u32, k: u32) -> u64 {
    (v as u64).div_ceil(1u64 << k)
}

impl Jp2Source {
    /// Open with the default quality-layer policy (MAX_LAYERS = 0).
    pub fn open(path: &Path) -> Result<Jp2Source> {
        Self::open_with(path, MaxLayers::Default)
    }

    /// Open a JP2/JPX file or J2K codestream. `max_layers` is MAX_LAYERS (docs/behaviour/images-and-decoding.md §5.3).
    pub fn open_with(path: &Path, max_layers: MaxLayers) -> Result<Jp2Source> {
        let blob = crate::storage::Storage::local("")
            .open(path, None)
            .map_err(|e| super::open_failed(ImageFormat::Jpeg2000, e).context(path.display()))?;
        Self::open_blob(path, blob, max_layers)
    }

    /// Open a JP2/JPX file or J2K codestream read through `blob` (`path` names it in the log).
    pub fn open_blob(path: &Path, blob: Arc<dyn Blob>, max_layers: MaxLayers) -> Result<Jp2Source> {
        Self::from_blob(path, blob, max_layers).map_err(|e| e.context(path.display()))
    }

    fn from_blob(path: &Path, file: Arc<dyn Blob>, max_layers: MaxLayers) -> Result<Jp2Source> {
        let len = file.len();
        let mut magic = [0u8; 12];
        let got = len.min(12) as usize;
        let got = match file.read_exact_at(&mut magic[..got], 0) {
            Ok(()) => got,
            Err(e) if e.is_remote() => {
                return Err(super::open_failed(ImageFormat::Jpeg2000, e));
            }
            Err(_) => 0,
        };
        let container = header::detect(&magic[..got])
            .ok_or_else(|| header::corrupt("neither a JP2 signature nor a J2K codestream"))?;
        let (boxes, (cs_start, cs_len), format) = match container {
            Container::Jp2 => {
                let boxes = header::read_boxes(&*file, len)?;
                let cs = boxes
                    .codestream
                    .ok_or_else(|| header::corrupt("no codestream (jp2c) box"))?;
                (boxes, cs, ffi::OPJ_CODEC_JP2)
            }
            Container::Codestream => (Default::default(), (0, len), ffi::OPJ_CODEC_J2K),
        };
        let main = header::read_main_header(&*file, cs_start, cs_start + cs_len)?;
        if main.components.iter().any(|c| c.dx != 1 || c.dy != 1) {
            return Err(SourceError::unsupported(
                ImageFormat::Jpeg2000,
                Unsupported::Subsampling,
            ));
        }
        let channels = boxes.channels(&main.components)?;
        let bits = channels.iter().map(|c| c.precision).max().unwrap_or(0);
        if channels.is_empty() || bits > 16 {
            return Err(SourceError::unsupported(
                ImageFormat::Jpeg2000,
                Unsupported::BitDepth(bits.into()),
            ));
        }

        // OpenJPEG must agree with the header parse before anything is decoded.
        let whole = [Piece::File { offset: 0, len }];
        let input = Input {
            file: &*file,
            pieces: &whole,
            format,
        };
        let seen = decode::header(input)?;
        let expected = (
            main.x0,
            main.y0,
            main.x1,
            main.y1,
            main.components.len() as u32,
        );
        if seen != expected {
            return Err(header::corrupt(format!(
                "OpenJPEG reads {seen:?}, the main header says {expected:?}"
            )));
        }

        let jp2_boxes = (format == ffi::OPJ_CODEC_JP2).then_some(&boxes);
        let index = Index::build(&*file, jp2_boxes, &main, (cs_start, cs_start + cs_len));
        let (levels, resolutions) = pyramid(&main);
        let out_bits = if bits <= 8 { 8 } else { 16 };
        let colour = match channels.len() {
            1 if bits == 1 => ColourSpace::Binary,
            1 | 2 => ColourSpace::Grey,
            3 | 4 => ColourSpace::Srgb,
            _ => ColourSpace::Multiband,
        };
        let max = if out_bits == 8 { 255.0 } else { 65535.0 };
        let mut metadata = BTreeMap::new();
        if let Some(icc) = boxes.icc.filter(|v| !v.is_empty()) {
            metadata.insert("icc".to_string(), icc);
        }
        if let Some(xmp) = boxes.xmp.filter(|v| !v.is_empty()) {
            metadata.insert("xmp".to_string(), xmp);
        }
        let info = ImageInfo {
            format: ImageFormat::Jpeg2000,
            width: levels[0].width,
            height: levels[0].height,
            levels,
            channels: channels.len() as u16,
            bits_per_sample: bits as u16,
            sample_format: SampleFormat::Unsigned,
            colour,
            min_max: vec![(0.0, max); channels.len()],
            metadata,
            dpi: None,
            stack: Vec::new(),
            quality_layers: main.layers as u32,
        };
        Ok(Jp2Source {
            path: path.to_path_buf(),
            file,
            format,
            info,
            x0: main.x0,
            y0: main.y0,
            x1: main.x1,
            y1: main.y1,
            resolutions,
            components: main.components.len() as u32,
            code_block: main.code_block_max,
            channels,
            out_bits,
            max_layers,
            index,
            whole,
        })
    }

    /// The MAX_LAYERS setting this source was opened with.
    pub fn max_layers(&self) -> MaxLayers {
        self.max_layers
    }

    /// The layer count OpenJPEG is given for a request's LYR value `requested` (0 = none),
    /// per docs/behaviour/images-and-decoding.md §5.3; 0 means all layers.
    pub fn layers_for(&self, requested: u32) -> u32 {
        effective_layers(self.max_layers, requested, self.info.quality_layers)
    }

    /// Decode the region (x, y, w, h) of IIP resolution `resolution` (0 = smallest), in that
    /// level's pixel coordinates. `layers` is the request's LYR value (0 = none given).
    pub fn region(
        &self,
        resolution: u32,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        layers: u32,
    ) -> Result<RawImage> {
        self.read(resolution, (x, y, w, h), layers, 1)
    }

    /// [`Jp2Source::region`] decoded by OpenJPEG on up to `threads` threads.
    pub fn read(
        &self,
        resolution: u32,
        (x, y, w, h): (u32, u32, u32, u32),
        layers: u32,
        threads: u32,
    ) -> Result<RawImage> {
        self.decode_region(resolution, (x, y, w, h), layers, threads, true)
            .map_err(|e| {
                e.context(format_args!(
                    "{}: resolution {resolution}, region {x},{y} {w}x{h}",
                    self.path.display()
                ))
            })
    }

    /// The decode; `cut` = from the cut-down codestream of the window's tiles when there is an
    /// index (otherwise, and for `false`, from the whole file).
    fn decode_region(
        &self,
        resolution: u32,
        (x, y, w, h): (u32, u32, u32, u32),
        layers: u32,
        threads: u32,
        cut: bool,
    ) -> Result<RawImage> {
        super::checked_level_region(&self.info, resolution, (x, y, w, h), ImageFormat::Jpeg2000)?;
        let native = self.info.num_resolutions() - 1 - resolution;
        let (reduce, step) = if native < self.resolutions {
            (native, 1u64)
        } else {
            let r = self.resolutions - 1;
            (r, 1u64 << (native - r))
        };
        // The window in the coordinates of the decoded resolution, then on the reference grid.
        let (full_w, full_h) = self.reduced_size(reduce);
        let px0 = x as u64 * step;
        let py0 = y as u64 * step;
        let px1 = ((x + w - 1) as u64 * step + 1).min(full_w);
        let py1 = ((y + h - 1) as u64 * step + 1).min(full_h);
        let pixels = (px1 - px0) * (py1 - py0);
        let held = (px1 - px0 + (1 << self.code_block.0))
            * (py1 - py0 + (1 << self.code_block.1))
            * self.components as u64
            * 4;
        if pixels > MAX_DECODE_PIXELS || held > MAX_DECODE_BYTES {
            return Err(SourceError::too_large(
                ImageFormat::Jpeg2000,
                TooLarge::Decode {
                    width: px1 - px0,
                    height: py1 - py0,
                },
            ));
        }
        let cx0 = ceil_shift(self.x0, reduce);
        let cy0 = ceil_shift(self.y0, reduce);
        let window = Window {
            reduce,
            layers: self.layers_for(layers),
            threads: if pixels >= THREADED_PIXELS {
                threads
            } else {
                1
            },
            x0: ((cx0 + px0) << reduce) as u32,
            y0: ((cy0 + py0) << reduce) as u32,
            x1: ((cx0 + px1) << reduce).min(self.x1 as u64) as u32,
            y1: ((cy0 + py1) << reduce).min(self.y1 as u64) as u32,
        };
        let cut_down = match &self.index {
            Some(index) if cut => Some(index.stream((window.x0, window.y0, window.x1, window.y1))),
            _ => None,
        };
        let input = Input {
            file: &*self.file,
            pieces: cut_down.as_deref().unwrap_or(&self.whole),
            format: self.format,
        };
        let decoded = decode::decode(input, window)?;
        let planes = decoded.planes()?;
        let (dw, dh) = ((px1 - px0) as u32, (py1 - py0) as u32);
        if planes.len() != self.channels.len()
            || planes.iter().any(|p| (p.width, p.height) != (dw, dh))
        {
            return Err(SourceError::new(
                Some(ImageFormat::Jpeg2000),
                SourceErrorKind::Corrupt(Corrupt::Decoded(Defect::Mismatch)),
            )
            .because(format!(
                "expected {} components of {dw}x{dh}, got {:?}",
                self.channels.len(),
                planes
                    .iter()
                    .map(|p| (p.width, p.height))
                    .collect::<Vec<_>>()
            )));
        }
        // The decimated pixels lie inside the window (level sizes are ceiling divisions of
        // the decoded resolution's), so the conversion cannot index outside a plane.
        if (w as u64 - 1) * step >= dw as u64 || (h as u64 - 1) * step >= dh as u64 {
            return Err(SourceError::internal(
                ImageFormat::Jpeg2000,
                "region outside the decoded window",
            ));
        }
        if let Some(p) = planes.iter().find(|p| p.precision == 0 || p.precision > 16) {
            return Err(SourceError::unsupported(
                ImageFormat::Jpeg2000,
                Unsupported::BitDepth(p.precision),
            ));
        }
        let samples = convert(&planes, self.out_bits, w, h, step as usize);
        Ok(RawImage {
            width: w,
            height: h,
            channels: self.info.channels,
            bits_per_sample: self.info.bits_per_sample,
            colour: self.info.colour,
            samples,
        })
    }

    /// The true size of the codestream at `reduce` halvings.
    fn reduced_size(&self, reduce: u32) -> (u64, u64) {
        (
            ceil_shift(self.x1, reduce) - ceil_shift(self.x0, reduce),
            ceil_shift(self.y1, reduce) - ceil_shift(self.y0, reduce),
        )
    }
}

/// The levels (largest first) and the number of real resolutions they use: real reduced
/// sizes while the codestream has them, ceiling halvings after, until a level fits one tile.
fn pyramid(main: &header::MainHeader) -> (Vec<Level>, u32) {
    let level = |w: u64, h: u64| Level {
        width: w as u32,
        height: h as u32,
        tile_width: TILE_SIZE,
        tile_height: TILE_SIZE,
    };
    let real = |k: u32| {
        (
            ceil_shift(main.x1, k) - ceil_shift(main.x0, k),
            ceil_shift(main.y1, k) - ceil_shift(main.y0, k),
        )
    };
    let (mut w, mut h) = real(0);
    let mut levels = vec![level(w, h)];
    let mut k = 0;
    while w > TILE_SIZE as u64 || h > TILE_SIZE as u64 {
        k += 1;
        (w, h) = if k < main.resolutions {
            real(k)
        } else {
            (w.div_ceil(2), h.div_ceil(2))
        };
        levels.push(level(w, h));
    }
    let resolutions = main.resolutions.min(levels.len() as u32);
    (levels, resolutions)
}

/// docs/behaviour/images-and-decoding.md §5.3: the layer count for MAX_LAYERS `max` and request value `requested`, resolved
/// against the codestream's `quality` layers as iipsrv's OpenJPEG decoder does (all, or half
/// rounded up, at least 1). Returns 0 for "all layers".
pub fn effective_layers(max: MaxLayers, requested: u32, quality: u32) -> u32 {
    let l = requested as i64;
    let sent = match max {
        MaxLayers::AtMost(m) => {
            let m = m.min(i64::MAX as u64) as i64;
            if 0 < l && l < m { l } else { m }
        }
        MaxLayers::All if l == 0 => -1,
        _ => l,
    };
    let q = quality.max(1) as i64;
    let layers = match sent {
        s if s < 0 => q,
        0 => (q + 1) / 2,
        s => s,
    }
    .max(1);
    if layers >= q { 0 } else { layers as u32 }
}

/// Bit replication from `p` to `d` bits: 1-bit ×255, 2-bit ×85, 4-bit ×17, 6-bit
/// (v<<2)|(v>>4), 10-bit (v<<6)|(v>>4), 12-bit (v<<4)|(v>>8), 14-bit (v<<2)|(v>>12); a deeper
/// value is shifted down.
fn replicate(v: u32, p: u32, d: u32) -> u32 {
    let mut out = 0;
    let mut shift = d as i32 - p as i32;
    while shift > -(p as i32) {
        out |= if shift >= 0 { v << shift } else { v >> -shift };
        shift -= p as i32;
    }
    out
}

/// Maps decoded values of one component to output samples.
struct Mapper {
    offset: i32,
    max: i32,
    lut: Option<Vec<u16>>,
}

impl Mapper {
    fn new(precision: u32, signed: bool, out_bits: u32) -> Mapper {
        let max = (1i32 << precision) - 1;
        let lut = (precision != out_bits).then(|| {
            (0..=max as u32)
                .map(|v| replicate(v, precision, out_bits) as u16)
                .collect()
        });
        Mapper {
            offset: if signed { 1 << (precision - 1) } else { 0 },
            max,
            lut,
        }
    }

    #[inline]
    fn map(&self, v: i32) -> u16 {
        let u = v.saturating_add(self.offset).clamp(0, self.max);
        match &self.lut {
            Some(l) => l[u as usize],
            None => u as u16,
        }
    }
}

/// Interleave the planes into a `w`×`h` image, taking every `step`-th pixel.
fn convert(planes: &[decode::Plane<'_>], out_bits: u32, w: u32, h: u32, step: usize) -> Samples {
    // The common case: unsigned samples of the output depth, every pixel. OpenJPEG already
    // clamps decoded values to the component's range; the clamp here only guards the cast.
    let direct = step == 1
        && planes
            .iter()
            .all(|p| p.precision == out_bits && !p.signed && p.width == w && p.height == h);
    if direct {
        let max = ((1u32 << out_bits) - 1) as i32;
        return if out_bits == 8 {
            Samples::U8(interleave_direct(planes, w, h, |v| v.clamp(0, max) as u8))
        } else {
            Samples::U16(interleave_direct(planes, w, h, |v| v.clamp(0, max) as u16))
        };
    }
    let mappers: Vec<Mapper> = planes
        .iter()
        .map(|p| Mapper::new(p.precision, p.signed, out_bits))
        .collect();
    if out_bits == 8 {
        Samples::U8(interleave(planes, &mappers, w, h, step, |v| v as u8))
    } else {
        Samples::U16(interleave(planes, &mappers, w, h, step, |v| v))
    }
}

/// Interleave planes of `w`×`h` samples (the planes are exactly that wide), `cast` per sample.
fn interleave_direct<T: Copy + Default>(
    planes: &[decode::Plane<'_>],
    w: u32,
    h: u32,
    cast: impl Fn(i32) -> T,
) -> Vec<T> {
    let n = planes.len();
    let (w, h) = (w as usize, h as usize);
    let mut out = vec![T::default(); w * h * n];
    fn row<'a>(p: &decode::Plane<'a>, y: usize, w: usize) -> &'a [i32] {
        &p.data[y * w..(y + 1) * w]
    }
    for (y, dst) in out.chunks_exact_mut(w * n).enumerate() {
        match planes {
            [a] => {
                for (o, &v) in dst.iter_mut().zip(row(a, y, w)) {
                    *o = cast(v);
                }
            }
            [a, b, c] => {
                let src = row(a, y, w).iter().zip(row(b, y, w)).zip(row(c, y, w));
                for (o, ((&r, &g), &b)) in dst.chunks_exact_mut(3).zip(src) {
                    o[0] = cast(r);
                    o[1] = cast(g);
                    o[2] = cast(b);
                }
            }
            _ => {
                for (c, p) in planes.iter().enumerate() {
                    for (o, &v) in dst.chunks_exact_mut(n).zip(row(p, y, w)) {
                        o[c] = cast(v);
                    }
                }
            }
        }
    }
    out
}

fn interleave<T: Copy + Default>(
    planes: &[decode::Plane<'_>],
    mappers: &[Mapper],
    w: u32,
    h: u32,
    step: usize,
    cast: impl Fn(u16) -> T,
) -> Vec<T> {
    let n = planes.len();
    let (w, h) = (w as usize, h as usize);
    let pw = planes[0].width as usize;
    let mut out = vec![T::default(); w * h * n];
    for (c, (plane, m)) in planes.iter().zip(mappers).enumerate() {
        for (y, row) in out.chunks_exact_mut(w * n).enumerate() {
            let src = &plane.data[y * step * pw..];
            for (x, px) in row.chunks_exact_mut(n).enumerate() {
                px[c] = cast(m.map(src[x * step]));
            }
        }
    }
    out
}

impl ImageSource for Jp2Source {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn tile(&self, resolution: u32, tile: u32, _page: u32, layers: u32) -> Result<RawImage> {
        let rect = super::grid_tile_rect(&self.info, resolution, tile, ImageFormat::Jpeg2000)
            .map_err(|e| e.context(self.path.display()))?;
        self.read(resolution, rect, layers, 1)
    }

    /// One decode of the window (as iipsrv does), unless every tile under it is cached.
    fn region(
        &self,
        resolution: u32,
        rect: (u32, u32, u32, u32),
        read: &crate::source::RegionRead,
        supply: &dyn crate::source::TileSupply,
    ) -> Result<RawImage> {
        match crate::source::region::from_cache(&self.info, resolution, rect, supply) {
            Some(stitched) => stitched,
            None => self.read(resolution, rect, read.layers, read.threads),
        }
    }
}
