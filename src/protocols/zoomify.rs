//! Zoomify (`docs/behaviour/protocols-zoomify-deepzoom.md` §1): `ImageProperties.xml` and
//! `TileGroupN/z-x-y.jpg`.
//!
//! Tiers are the ones a Zoomify client computes: the full size floor-halved until both sides
//! fit in one tile, tier 0 the smallest. Each tier is served from the stored level with the
//! same scale factor (its stored tiles, through the tile cache and pass-through); tiers the
//! file does not store (a pyramid that stops early), and edge tiles of a level rounded up
//! (one pixel larger than the client's), are region exports at the client's size. Upstream instead counts
//! stored levels smaller than a tile, which breaks for a level of exactly the tile size and for
//! pyramids that stop early; and it wraps an out-of-range column into the next row. Both are
//! fixed here (docs/compatibility.md).

use super::grid::{Grid, GridLevel, Target, stored_level, tile_size};
use crate::source::ImageInfo;
use crate::text::number::atoi;

/// The Zoomify protocol (`Zoomify=`).
pub(crate) struct Zoomify;

/// One Zoomify tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tier {
    /// The tier's size: the stored level's size when stored, else the client's floor-halved
    /// size.
    pub width: u32,
    pub height: u32,
    /// The scale factor (a power of two; 1 = full size).
    pub factor: u64,
    /// The stored level (index into `ImageInfo::levels`, 0 = full size), if any.
    pub level: Option<usize>,
}

/// The tiers, smallest (tier 0) first.
pub(crate) fn tiers(info: &ImageInfo) -> Vec<Tier> {
    let ts = tile_size(info);
    let (mut w, mut h, mut factor) = (info.width, info.height, 1u64);
    let mut out = Vec::new();
    loop {
        let level = stored_level(info, factor);
        let (tw, th) = match level {
            Some(i) => (info.levels[i].width, info.levels[i].height),
            None => (w, h),
        };
        out.push(Tier {
            width: tw,
            height: th,
            factor,
            level,
        });
        if (w <= ts && h <= ts) || factor >= 1 << 31 {
            break;
        }
        w /= 2;
        h /= 2;
        factor *= 2;
    }
    out.reverse();
    out
}

impl Grid for Zoomify {
    const NAME: &'static str = "Zoomify";
    const USAGE: &'static str =
        "Zoomify: expected <id>/ImageProperties.xml or <id>/TileGroup<n>/<z>-<x>-<y>.jpg";

    /// `<id>/ImageProperties.xml` or `<id>/TileGroup<g>/<z>-<x>-<y>.<ext>` (§1.1; the group is
    /// ignored, as upstream).
    fn split(arg: &[u8]) -> Target<'_> {
        let Some(last) = arg.iter().rposition(|&b| b == b'/') else {
            return Target::Malformed(arg);
        };
        let suffix = &arg[last + 1..];
        if suffix == b"ImageProperties.xml" {
            return Target::Document(&arg[..last]);
        }
        let group = arg[..last]
            .iter()
            .rposition(|&b| b == b'/')
            .map(|p| p + 1)
            .unwrap_or(0);
        if !arg[group..last].starts_with(b"TileGroup") || group == 0 {
            return Target::Malformed(arg);
        }
        let text = String::from_utf8_lossy(suffix);
        let mut v = text
            .split('-')
            .filter(|t| !t.is_empty())
            .map(|t| atoi(t).value);
        let mut next = || v.next().unwrap_or(0);
        let (level, col, row) = (next(), next(), next());
        Target::Tile {
            id: &arg[..group - 1],
            level,
            col,
            row,
        }
    }

    /// `ImageProperties.xml` (§1.3), with NUMTILES the total of every tier's tiles.
    fn document(info: &ImageInfo) -> String {
        let ts = tile_size(info);
        let total: u64 = tiers(info)
            .iter()
            .map(|t| t.width.div_ceil(ts) as u64 * t.height.div_ceil(ts) as u64)
            .sum();
        format!(
            "<IMAGE_PROPERTIES WIDTH=\"{}\" HEIGHT=\"{}\" NUMTILES=\"{total}\" NUMIMAGES=\"1\" VERSION=\"1.8\" TILESIZE=\"{ts}\"/>",
            info.width, info.height
        )
    }

    /// Tier `z`, on the client's grid: the full size floor-halved.
    fn level(info: &ImageInfo, z: i64) -> Option<GridLevel> {
        let tier = *tiers(info).get(usize::try_from(z).ok()?)?;
        let k = tier.factor.trailing_zeros();
        Some(GridLevel {
            factor: tier.factor,
            width: (info.width >> k).max(1),
            height: (info.height >> k).max(1),
        })
    }

    fn tile_name(z: i64, x: i64, y: i64) -> String {
        format!("{z}-{x}-{y}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::test_util::{image_info as info, tile_target};

    #[test]
    fn properties_match_upstream_where_upstream_is_right() {
        let x = info(&[(1000, 750), (500, 375), (250, 187)], 256);
        assert_eq!(
            Zoomify::document(&x),
            "<IMAGE_PROPERTIES WIDTH=\"1000\" HEIGHT=\"750\" NUMTILES=\"17\" NUMIMAGES=\"1\" VERSION=\"1.8\" TILESIZE=\"256\"/>"
        );
        let six = info(
            &[
                (5003, 3701),
                (2501, 1850),
                (1250, 925),
                (625, 462),
                (312, 231),
                (156, 115),
            ],
            256,
        );
        assert!(Zoomify::document(&six).contains("NUMTILES=\"409\""));
        assert!(Zoomify::document(&info(&[(200, 150)], 256)).contains("NUMTILES=\"1\""));
        // A single-level 5003×3701: every client tier counts (upstream: 301).
        assert!(Zoomify::document(&info(&[(5003, 3701)], 256)).contains("NUMTILES=\"409\""));
    }

    #[test]
    fn tiers_follow_the_client() {
        // A level of exactly the tile size is the client's tier 0 (upstream: the 128 level).
        let t = tiers(&info(&[(512, 512), (256, 256), (128, 128)], 256));
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].width, t[0].level), (256, Some(1)));
        assert_eq!((t[1].width, t[1].level), (512, Some(0)));
        // A pyramid that stops early: the smaller tiers are not stored.
        let t = tiers(&info(&[(1000, 1000)], 256));
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].width, t[0].level, t[0].factor), (250, None, 4));
        assert_eq!(t[2].level, Some(0));
    }

    #[test]
    fn splitting() {
        let split = Zoomify::split;
        let id = b"/images/x.tif";
        assert_eq!(
            split(b"/images/x.tif/ImageProperties.xml"),
            Target::Document(id)
        );
        let tile = split(b"/images/x.tif/TileGroup5/2-3-2.jpg");
        assert_eq!(tile, tile_target(id, (2, 3, 2)));
        assert_eq!(split(b"x.tif"), Target::Malformed(b"x.tif"));
        let no_group = b"a/b/2-3-2.jpg";
        assert_eq!(split(no_group), Target::Malformed(no_group));
    }
}
