//! Zoomify (`protocols-zoomify-deepzoom.md` §1): `ImageProperties.xml` and
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

use super::iiif::{self, info::scale_factors};
use super::iip::Session;
use crate::config::env::atoi;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::source::ImageInfo;

/// One Zoomify tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// The tier's size: the stored level's size when stored, else the client's floor-halved
    /// size.
    pub width: u32,
    pub height: u32,
    /// The scale factor (a power of two; 1 = full size).
    pub factor: u64,
    /// The stored level (index into `ImageInfo::levels`, 0 = full size), if any.
    pub level: Option<usize>,
}

/// The Zoomify tile size: the full-resolution level's tile width.
pub fn tile_size(info: &ImageInfo) -> u32 {
    iiif::info::tile_size(info).0.max(1)
}

/// The tiers, smallest (tier 0) first.
pub fn tiers(info: &ImageInfo) -> Vec<Tier> {
    let ts = tile_size(info);
    let factors = scale_factors(info);
    let (mut w, mut h, mut factor) = (info.width, info.height, 1u64);
    let mut out = Vec::new();
    loop {
        let level = factors.iter().position(|&f| f as u64 == factor);
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

/// `ImageProperties.xml` (§1.3), with NUMTILES the total of every tier's tiles.
pub fn image_properties(info: &ImageInfo) -> String {
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

/// What a Zoomify argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Properties(&'a [u8]),
    /// `<id>/TileGroup<g>/<z>-<x>-<y>.<ext>` (the group is ignored, as upstream).
    Tile {
        id: &'a [u8],
        z: i64,
        x: i64,
        y: i64,
    },
    /// Neither form: the whole argument is the identifier (upstream), answered with a 400
    /// once the image is found.
    Malformed(&'a [u8]),
}

/// Split a raw Zoomify argument (§1.1; the identifier is decoded afterwards, as FIF does).
pub fn split(arg: &[u8]) -> Target<'_> {
    let Some(last) = arg.iter().rposition(|&b| b == b'/') else {
        return Target::Malformed(arg);
    };
    let suffix = &arg[last + 1..];
    if suffix == b"ImageProperties.xml" {
        return Target::Properties(&arg[..last]);
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
    let (z, x, y) = (
        v.next().unwrap_or(0),
        v.next().unwrap_or(0),
        v.next().unwrap_or(0),
    );
    Target::Tile {
        id: &arg[..group - 1],
        z,
        x,
        y,
    }
}

/// Handle `Zoomify=<arg>`.
pub fn handle(s: &mut Session<'_>, arg: &[u8]) -> Result<Response> {
    let target = split(arg);
    let id = match target {
        Target::Properties(id) | Target::Tile { id, .. } | Target::Malformed(id) => id,
    };
    let properties = matches!(target, Target::Properties(_));
    let (image, headers) =
        match super::open_for_viewer(s, id, |info| properties.then(|| image_properties(info)))? {
            Ok(opened) => opened,
            Err(answer) => return Ok(answer),
        };
    let info = image.info();
    let (z, x, y) = match target {
        Target::Properties(_) | Target::Malformed(_) => {
            return Err(Error::bad_request(
                "Zoomify: expected <id>/ImageProperties.xml or <id>/TileGroup<n>/<z>-<x>-<y>.jpg",
            ));
        }
        Target::Tile { z, x, y, .. } => (z, x, y),
    };
    let ts = tile_size(info);
    let tiers = tiers(info);
    let missing = || {
        Error::not_found(format!(
            "Zoomify :: Asked for non-existent tile: {z}-{x}-{y}"
        ))
    };
    let tier = usize::try_from(z)
        .ok()
        .and_then(|z| tiers.get(z))
        .copied()
        .ok_or_else(missing)?;
    // The client's grid: its own floor-halved tier size.
    let k = tier.factor.trailing_zeros();
    let (cw, ch) = (info.width >> k, info.height >> k);
    let (cw, ch) = (cw.max(1), ch.max(1));
    let (ntx, nty) = (cw.div_ceil(ts) as i64, ch.div_ceil(ts) as i64);
    if x < 0 || y < 0 || x >= ntx || y >= nty {
        return Err(missing());
    }
    let (x, y) = (x as u32, y as u32);
    let (out_w, out_h) = (ts.min(cw - x * ts), ts.min(ch - y * ts));
    super::grid_tile(
        s,
        &image,
        &headers,
        tier.level,
        tier.factor,
        (x, y),
        ts,
        (out_w, out_h),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;
    use crate::source::{ImageFormat, Level, SampleFormat};

    fn info(levels: &[(u32, u32)], tile: u32) -> ImageInfo {
        ImageInfo {
            format: ImageFormat::Tiff,
            width: levels[0].0,
            height: levels[0].1,
            levels: levels
                .iter()
                .map(|&(width, height)| Level {
                    width,
                    height,
                    tile_width: tile,
                    tile_height: tile,
                })
                .collect(),
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
    fn properties_match_upstream_where_upstream_is_right() {
        let x = info(&[(1000, 750), (500, 375), (250, 187)], 256);
        assert_eq!(
            image_properties(&x),
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
        assert!(image_properties(&six).contains("NUMTILES=\"409\""));
        assert!(image_properties(&info(&[(200, 150)], 256)).contains("NUMTILES=\"1\""));
        // A single-level 5003×3701: every client tier counts (upstream: 301).
        assert!(image_properties(&info(&[(5003, 3701)], 256)).contains("NUMTILES=\"409\""));
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
        assert_eq!(
            split(b"/images/x.tif/ImageProperties.xml"),
            Target::Properties(b"/images/x.tif")
        );
        assert_eq!(
            split(b"/images/x.tif/TileGroup5/2-3-2.jpg"),
            Target::Tile {
                id: b"/images/x.tif",
                z: 2,
                x: 3,
                y: 2
            }
        );
        assert_eq!(split(b"x.tif"), Target::Malformed(b"x.tif"));
        assert_eq!(split(b"a/b/2-3-2.jpg"), Target::Malformed(b"a/b/2-3-2.jpg"));
    }
}
