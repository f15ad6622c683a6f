//! Plain JPEG files as a virtual pyramid (docs/behaviour/images-and-decoding.md §4).
//!
//! # Brief overview
//!
//! [`JpegSource::open`] parses the header and application markers once ([`markers`]): size,
//! components, JFIF density, EXIF, XMP and the ICC profile. The pyramid is virtual: level 0 is
//! the full size and each further level the floor half of the previous, until one fits a
//! 256×256 tile. Level k is decoded whole by libjpeg-turbo at a DCT scale of 1/2^min(k, 3)
//! ([`decode`]); levels below 1/8 take every 2^(k−3)-th pixel of the 1/8 image, as iipsrv does.
//! A JPEG can only be decoded whole, so the decoded images are kept in a small process-wide
//! cache bounded in bytes ([`cache`]): a viewer's burst of tile requests on one level costs one
//! decode. Concurrent requests for the same scale wait for that one decode.
//!
//! Differences from iipsrv 1.3, all deliberate:
//! - every tile and region is decoded independently (upstream fails from the second JPEG tile
//!   of one request, `[BUG]`), and all levels use the 256×256 tile size (`[BUG]` for TIL);
//! - CMYK/YCCK files are converted to RGB (upstream serves four channels as if RGBA);
//! - a truncated or corrupt file is an error (libjpeg warnings other than "extraneous bytes"
//!   are fatal), not an image with a grey remainder;
//! - a level is never 0 pixels wide or high (floor halving stops at 1);
//! - only the first APP1 XMP packet is taken (extended-XMP segments are ignored);
//! - limits: at most [`MAX_DECODE_PIXELS`] decoded pixels per scale (and for a progressive
//!   file at full size, since libjpeg holds all its coefficients), files up to
//!   [`MAX_FILE_BYTES`].

mod cache;
mod decode;
mod markers;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use cache::{
    DEFAULT_MAX_BYTES, max_bytes as decoded_cache_max_bytes, used_bytes as decoded_cache_used_bytes,
};
use decode::Decoded;
use markers::{Header, corrupt};

use crate::image::{ColourSpace, RawImage};
use crate::source::error::{Result, SourceError, TooLarge, Unsupported};
use crate::source::{Dpi, ImageFormat, ImageInfo, ImageSource, Level, SampleFormat};
use crate::storage::Blob;

/// The virtual tile size of every level.
pub const TILE_SIZE: u32 = 256;
/// Most pixels decoded at once (a level's DCT scale, or a progressive file's full size).
pub const MAX_DECODE_PIXELS: u64 = 1 << 27;
/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Set the byte budget of the decoded-image cache shared by all JPEG sources (default
/// [`DEFAULT_MAX_BYTES`]; 0 disables it).
pub fn set_decoded_cache_bytes(bytes: usize) {
    cache::set_max_bytes(bytes)
}

/// An opened JPEG file.
pub struct JpegSource {
    path: PathBuf,
    file: Arc<dyn Blob>,
    len: u64,
    /// Identity in the decoded-image cache.
    id: u64,
    header: Header,
    info: ImageInfo,
    /// One lock per DCT scale, so concurrent misses on a scale decode it once.
    decoding: [Mutex<()>; 4],
    /// Whole-image decodes made so far.
    decodes: AtomicU64,
}

impl std::fmt::Debug for JpegSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JpegSource")
            .field("path", &self.path)
            .field("width", &self.info.width)
            .field("height", &self.info.height)
            .field("levels", &self.info.levels.len())
            .finish()
    }
}

impl Drop for JpegSource {
    fn drop(&mut self) {
        cache::purge(self.id);
    }
}

impl JpegSource {
    /// Open a local JPEG file and parse its header.
    pub fn open(path: &Path) -> Result<JpegSource> {
        let blob = crate::storage::Storage::local("")
            .open(path, None)
            .map_err(|e| super::open_failed(ImageFormat::Jpeg, e).context(path.display()))?;
        Self::open_blob(path, blob)
    }

    /// Parse the header of a JPEG file or object read through `blob` (`path` names it in the
    /// log).
    pub fn open_blob(path: &Path, blob: Arc<dyn Blob>) -> Result<JpegSource> {
        Self::from_blob(path, blob).map_err(|e| e.context(path.display()))
    }

    fn from_blob(path: &Path, file: Arc<dyn Blob>) -> Result<JpegSource> {
        let len = file.len();
        if len > MAX_FILE_BYTES {
            return Err(SourceError::too_large(ImageFormat::Jpeg, TooLarge::File)
                .context(format_args!("{len} bytes")));
        }
        let header = markers::read_header(&*file, len)?;
        if header.lossless() {
            return Err(SourceError::unsupported(
                ImageFormat::Jpeg,
                Unsupported::Lossless,
            ));
        }
        if header.precision != 8 {
            return Err(SourceError::unsupported(
                ImageFormat::Jpeg,
                Unsupported::BitDepth(header.precision.into()),
            ));
        }
        if header.width == 0 || header.height == 0 {
            return Err(corrupt(format!(
                "image size {}x{}",
                header.width, header.height
            )));
        }
        if !matches!(header.components, 1 | 3 | 4) {
            return Err(corrupt(format!("{} components", header.components)));
        }
        // Huffman-coded sequential data needs at least two bits (a DC and an EOB code) per
        // 8×8 block: a file far too short for its header's size is refused before libjpeg
        // allocates and decodes the whole area (progressive and arithmetic coding can be
        // denser; the pixel limits bound those).
        let blocks = header.width.div_ceil(8) as u64 * header.height.div_ceil(8) as u64;
        if matches!(header.sof, 0xC0 | 0xC1) && len < blocks / 4 {
            return Err(corrupt(format!(
                "{len} bytes cannot hold {}x{} pixels",
                header.width, header.height
            )));
        }
        let full = header.width as u64 * header.height as u64;
        if header.progressive() && full > MAX_DECODE_PIXELS {
            return Err(SourceError::too_large(
                ImageFormat::Jpeg,
                TooLarge::Decode {
                    width: header.width.into(),
                    height: header.height.into(),
                },
            )
            .context("progressive"));
        }
        let info = describe(&header);
        Ok(JpegSource {
            path: path.to_path_buf(),
            file,
            len,
            id: cache::new_id(),
            header,
            info,
            decoding: Default::default(),
            decodes: AtomicU64::new(0),
        })
    }

    /// Decode the region (x, y, w, h) of IIP resolution `resolution` (0 = smallest), in that
    /// level's pixel coordinates.
    pub fn region(&self, resolution: u32, x: u32, y: u32, w: u32, h: u32) -> Result<RawImage> {
        self.decode_region(resolution, x, y, w, h).map_err(|e| {
            e.context(format_args!(
                "{}: resolution {resolution}, region {x},{y} {w}x{h}",
                self.path.display()
            ))
        })
    }

    fn decode_region(&self, resolution: u32, x: u32, y: u32, w: u32, h: u32) -> Result<RawImage> {
        super::checked_level_region(&self.info, resolution, (x, y, w, h), ImageFormat::Jpeg)?;
        let native = self.info.num_resolutions() - 1 - resolution;
        let scale = native.min(3);
        let step = 1usize << (native - scale);
        let image = self.decoded(scale)?;
        let c = image.channels as usize;
        let (iw, ih) = (image.width as usize, image.height as usize);
        let (x, y, w, h) = (x as usize, y as usize, w as usize, h as usize);
        // Level sizes are floor halvings, libjpeg's scaled sizes ceilings: always inside.
        if (x + w - 1) * step >= iw || (y + h - 1) * step >= ih {
            return Err(SourceError::internal(
                ImageFormat::Jpeg,
                "region outside the decoded image",
            ));
        }
        let mut out = Vec::with_capacity(w * h * c);
        for row in 0..h {
            let start = ((y + row) * step * iw + x * step) * c;
            if step == 1 {
                out.extend_from_slice(&image.data[start..start + w * c]);
            } else {
                for col in 0..w {
                    let at = start + col * step * c;
                    out.extend_from_slice(&image.data[at..at + c]);
                }
            }
        }
        Ok(RawImage::from_u8(
            w as u32,
            h as u32,
            image.channels,
            self.info.colour,
            out,
        ))
    }

    /// How many times the file has been decoded (the decoded-image cache saves the others).
    pub fn decode_count(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// The whole image at 1/2^scale, from the cache or decoded now.
    fn decoded(&self, scale: u32) -> Result<Arc<Decoded>> {
        let key = (self.id, scale);
        if let Some(image) = cache::get(key) {
            return Ok(image);
        }
        let _one_decode = self.decoding[scale as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(image) = cache::get(key) {
            return Ok(image);
        }
        let (w, h) = decode::scaled_size(self.header.width, self.header.height, scale);
        if w as u64 * h as u64 > MAX_DECODE_PIXELS {
            return Err(SourceError::too_large(
                ImageFormat::Jpeg,
                TooLarge::Decode {
                    width: w.into(),
                    height: h.into(),
                },
            )
            .context(format_args!("at scale 1/{}", 1 << scale)));
        }
        let mut jpeg = vec![0u8; self.len as usize];
        self.file.read_at(&mut jpeg, 0, self.len).map_err(|e| {
            SourceError::from_storage(Some(ImageFormat::Jpeg), e, |e| corrupt("read").because(e))
        })?;
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let image = Arc::new(decode::decode(&jpeg, &self.header, scale)?);
        cache::put(key, image.clone());
        Ok(image)
    }
}

/// The image description: floor-halved levels down to one tile, 8-bit grey or RGB.
fn describe(h: &Header) -> ImageInfo {
    let mut levels = Vec::new();
    let (mut w, mut ht) = (h.width, h.height);
    loop {
        levels.push(Level {
            width: w,
            height: ht,
            tile_width: TILE_SIZE,
            tile_height: TILE_SIZE,
        });
        if w <= TILE_SIZE && ht <= TILE_SIZE {
            break;
        }
        (w, ht) = ((w / 2).max(1), (ht / 2).max(1));
    }
    let channels: u16 = if h.components == 1 { 1 } else { 3 };
    let mut metadata = BTreeMap::new();
    for (key, value) in [("icc", &h.icc), ("xmp", &h.xmp), ("exif", &h.exif)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            metadata.insert(key.to_string(), v.clone());
        }
    }
    ImageInfo {
        format: ImageFormat::Jpeg,
        width: h.width,
        height: h.height,
        levels,
        channels,
        bits_per_sample: 8,
        sample_format: SampleFormat::Unsigned,
        colour: if channels == 1 {
            ColourSpace::Grey
        } else {
            ColourSpace::Srgb
        },
        min_max: vec![(0.0, 255.0); channels as usize],
        metadata,
        dpi: dpi(h.jfif),
        stack: Vec::new(),
        quality_layers: 0,
    }
}

/// JFIF density as libjpeg reports it: without a JFIF marker, 1×1 with unknown units (iipsrv
/// passes that on, `[QUIRK]`); a zero density stays zero; `None` when both are zero.
fn dpi(jfif: Option<(u8, u16, u16)>) -> Option<Dpi> {
    let (unit, x, y) = jfif.unwrap_or((0, 1, 1));
    if x == 0 && y == 0 {
        return None;
    }
    Some(Dpi {
        x: x as f64,
        y: y as f64,
        unit: match unit {
            1 => 2,
            2 => 3,
            _ => 1,
        },
    })
}

impl ImageSource for JpegSource {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn tile(&self, resolution: u32, tile: u32, _page: u32, _layers: u32) -> Result<RawImage> {
        let (x, y, w, h) = super::grid_tile_rect(&self.info, resolution, tile, ImageFormat::Jpeg)
            .map_err(|e| e.context(self.path.display()))?;
        self.region(resolution, x, y, w, h)
    }

    /// A crop of the decoded level (one copy), unless every tile under it is cached.
    fn region(
        &self,
        resolution: u32,
        (x, y, w, h): (u32, u32, u32, u32),
        _read: &crate::source::RegionRead,
        supply: &dyn crate::source::TileSupply,
    ) -> Result<RawImage> {
        match crate::source::region::from_cache(&self.info, resolution, (x, y, w, h), supply) {
            Some(stitched) => stitched,
            None => JpegSource::region(self, resolution, x, y, w, h),
        }
    }
}
