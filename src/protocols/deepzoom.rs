//! DeepZoom (`docs/behaviour/protocols-zoomify-deepzoom.md` §2): `<id>.dzi` and
//! `<id>_files/<level>/<col>_<row>.<ext>`.
//!
//! DeepZoom level `L` of `D = ceil(log2(max(W, H)))` is the image scaled by `2^(D−L)`, with
//! `ceil` sizes. A level the file stores (same scale factor) is served from its stored tiles
//! (tile cache, pass-through); levels below the smallest stored one, and edge tiles of a
//! stored level whose size was rounded down (one pixel short of the DZI's), are region exports
//! at the size the DZI promises (upstream returns the smallest stored level's tiles at their
//! own size, and the short edge tiles as they are). Out-of-range levels and tiles are 404s,
//! not clamped or wrapped neighbours (docs/compatibility.md).

use super::grid::{Grid, GridLevel, Target, tile_size};
use crate::source::ImageInfo;
use crate::text::number::atoi;

/// The DeepZoom protocol (`DeepZoom=`).
pub(crate) struct DeepZoom;

/// `D = ceil(log2(max(W, H)))`: the number of the full-size level.
pub(crate) fn max_level(info: &ImageInfo) -> u32 {
    let m = info.width.max(info.height).max(1) as u64;
    64 - (m - 1).leading_zeros()
}

/// The size of DeepZoom level `l` (≤ D): `ceil(W / 2^(D−l))`.
pub(crate) fn level_size(info: &ImageInfo, l: u32) -> (u32, u32) {
    let shift = max_level(info) - l;
    let s = 1u64 << shift;
    (
        (info.width as u64).div_ceil(s) as u32,
        (info.height as u64).div_ceil(s) as u32,
    )
}

impl Grid for DeepZoom {
    const NAME: &'static str = "DeepZoom";
    const USAGE: &'static str = "DeepZoom: expected <id>.dzi or <id>_files/<level>/<col>_<row>.jpg";

    /// `<id>.dzi` or `<id>_files/<level>/<col>_<row>.<ext>` (§2.1, §2.4).
    fn split(arg: &[u8]) -> Target<'_> {
        if let Some(id) = arg.strip_suffix(b".dzi") {
            return Target::Document(id);
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

    /// The `.dzi` document (§2.3).
    fn document(info: &ImageInfo) -> String {
        format!(
            "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"{}\" Overlap=\"0\" Format=\"jpg\"><Size Width=\"{}\" Height=\"{}\"/></Image>",
            tile_size(info),
            info.width,
            info.height
        )
    }

    /// Level `l` ≤ D: the image scaled by `2^(D−l)`, sizes rounded up.
    fn level(info: &ImageInfo, l: i64) -> Option<GridLevel> {
        let d = max_level(info);
        let l = u32::try_from(l).ok().filter(|l| *l <= d)?;
        let (width, height) = level_size(info, l);
        Some(GridLevel {
            factor: 1u64 << (d - l),
            width,
            height,
        })
    }

    fn tile_name(level: i64, col: i64, row: i64) -> String {
        format!("{level}/{col}_{row}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::test_util::{image_info, tile_target};

    fn info(w: u32, h: u32) -> ImageInfo {
        image_info(&[(w, h)], 256)
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
            DeepZoom::document(&x),
            "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"256\" Overlap=\"0\" Format=\"jpg\"><Size Width=\"1000\" Height=\"750\"/></Image>"
        );
    }

    #[test]
    fn splitting() {
        let split = DeepZoom::split;
        let id = b"/images/x.tif";
        assert_eq!(split(b"/images/x.tif.dzi"), Target::Document(id));
        let tile = split(b"/images/x.tif_files/10/3_2.jpg");
        assert_eq!(tile, tile_target(id, (10, 3, 2)));
        assert_eq!(split(b"x.tif"), Target::Malformed(b"x.tif"));
    }
}
