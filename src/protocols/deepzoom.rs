//! DeepZoom (`protocols-zoomify-deepzoom.md` §2): `<id>.dzi` and
//! `<id>_files/<level>/<col>_<row>.<ext>`.
//!
//! DeepZoom level `L` of `D = ceil(log2(max(W, H)))` is the image scaled by `2^(D−L)`, with
//! `ceil` sizes. A level the file stores (same scale factor) is served from its stored tiles
//! (tile cache, pass-through); levels below the smallest stored one, and edge tiles of a
//! stored level whose size was rounded down (one pixel short of the DZI's), are region exports
//! at the size the DZI promises (upstream returns the smallest stored level's tiles at their
//! own size, and the short edge tiles as they are). Out-of-range levels and tiles are 404s,
//! not clamped or wrapped neighbours (docs/compatibility.md).

use super::iiif::{self, info::scale_factors};
use super::iip::Session;
use crate::config::env::atoi;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::source::ImageInfo;

/// The DeepZoom tile size: the full-resolution level's tile width.
pub fn tile_size(info: &ImageInfo) -> u32 {
    iiif::info::tile_size(info).0.max(1)
}

/// `D = ceil(log2(max(W, H)))`: the number of the full-size level.
pub fn max_level(info: &ImageInfo) -> u32 {
    let m = info.width.max(info.height).max(1) as u64;
    64 - (m - 1).leading_zeros()
}

/// The size of DeepZoom level `l` (≤ D): `ceil(W / 2^(D−l))`.
pub fn level_size(info: &ImageInfo, l: u32) -> (u32, u32) {
    let shift = max_level(info) - l;
    let s = 1u64 << shift;
    (
        (info.width as u64).div_ceil(s) as u32,
        (info.height as u64).div_ceil(s) as u32,
    )
}

/// The `.dzi` document (§2.3).
pub fn dzi(info: &ImageInfo) -> String {
    format!(
        "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"{}\" Overlap=\"0\" Format=\"jpg\"><Size Width=\"{}\" Height=\"{}\"/></Image>",
        tile_size(info),
        info.width,
        info.height
    )
}

/// What a DeepZoom argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Dzi(&'a [u8]),
    Tile {
        id: &'a [u8],
        level: i64,
        col: i64,
        row: i64,
    },
    /// Neither form (no `_files/`): the whole argument is the identifier.
    Malformed(&'a [u8]),
}

/// Split a raw DeepZoom argument (§2.1, §2.4; the identifier is decoded afterwards).
pub fn split(arg: &[u8]) -> Target<'_> {
    if let Some(id) = arg.strip_suffix(b".dzi") {
        return Target::Dzi(id);
    }
    let Some(pos) = arg.windows(7).rposition(|w| w == b"_files/") else {
        return Target::Malformed(arg);
    };
    let id = &arg[..pos];
    let rest = String::from_utf8_lossy(&arg[pos + 7..]).into_owned();
    let Some((level, name)) = rest.rsplit_once('/') else {
        return Target::Malformed(arg);
    };
    let level = atoi(level.rsplit('/').next().unwrap_or("")).value;
    let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
    let (col, row) = stem.split_once('_').unwrap_or((stem, ""));
    Target::Tile {
        id,
        level,
        col: atoi(col).value,
        row: atoi(row).value,
    }
}

/// Handle `DeepZoom=<arg>`.
pub fn handle(s: &mut Session<'_>, arg: &[u8]) -> Result<Response> {
    let target = split(arg);
    let id = match target {
        Target::Dzi(id) | Target::Tile { id, .. } | Target::Malformed(id) => id,
    };
    let dzi_asked = matches!(target, Target::Dzi(_));
    let (image, headers) = match super::open_for_viewer(s, id, |info| dzi_asked.then(|| dzi(info)))?
    {
        Ok(opened) => opened,
        Err(answer) => return Ok(answer),
    };
    let info = image.info();
    let (l, col, row) = match target {
        Target::Dzi(_) | Target::Malformed(_) => {
            return Err(Error::bad_request(
                "DeepZoom: expected <id>.dzi or <id>_files/<level>/<col>_<row>.jpg",
            ));
        }
        Target::Tile {
            level, col, row, ..
        } => (level, col, row),
    };
    let missing = || {
        Error::not_found(format!(
            "DeepZoom :: Asked for non-existent tile: {l}/{col}_{row}"
        ))
    };
    let d = max_level(info);
    let l = u32::try_from(l)
        .ok()
        .filter(|l| *l <= d)
        .ok_or_else(missing)?;
    let ts = tile_size(info);
    let (lw, lh) = level_size(info, l);
    let (ntx, nty) = (lw.div_ceil(ts) as i64, lh.div_ceil(ts) as i64);
    if col < 0 || row < 0 || col >= ntx || row >= nty {
        return Err(missing());
    }
    let (col, row) = (col as u32, row as u32);
    let (out_w, out_h) = (ts.min(lw - col * ts), ts.min(lh - row * ts));
    let factor = 1u64 << (d - l);
    let level = scale_factors(info).iter().position(|&f| f as u64 == factor);
    super::grid_tile(
        s,
        &image,
        &headers,
        level,
        factor,
        (col, row),
        ts,
        (out_w, out_h),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;
    use crate::source::{ImageFormat, Level, SampleFormat};

    fn info(w: u32, h: u32) -> ImageInfo {
        ImageInfo {
            format: ImageFormat::Tiff,
            width: w,
            height: h,
            levels: vec![Level {
                width: w,
                height: h,
                tile_width: 256,
                tile_height: 256,
            }],
            channels: 3,
            bits_per_sample: 8,
            sample_format: SampleFormat::Unsigned,
            colour: ColourSpace::Srgb,
            min_max: vec![],
            metadata: Default::default(),
            dpi: None,
            stack: vec![],
            quality_layers: 0,
        }
    }

    #[test]
    fn levels() {
        let x = info(1000, 750);
        assert_eq!(max_level(&x), 10);
        assert_eq!(level_size(&x, 10), (1000, 750));
        assert_eq!(level_size(&x, 8), (250, 188));
        assert_eq!(level_size(&x, 0), (1, 1));
        assert_eq!(max_level(&info(1024, 1)), 10);
        assert_eq!(max_level(&info(1025, 1)), 11);
        assert_eq!(max_level(&info(1, 1)), 0);
        assert_eq!(
            dzi(&x),
            "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"256\" Overlap=\"0\" Format=\"jpg\"><Size Width=\"1000\" Height=\"750\"/></Image>"
        );
    }

    #[test]
    fn splitting() {
        assert_eq!(split(b"/images/x.tif.dzi"), Target::Dzi(b"/images/x.tif"));
        assert_eq!(
            split(b"/images/x.tif_files/10/3_2.jpg"),
            Target::Tile {
                id: b"/images/x.tif",
                level: 10,
                col: 3,
                row: 2
            }
        );
        assert_eq!(split(b"x.tif"), Target::Malformed(b"x.tif"));
    }
}
