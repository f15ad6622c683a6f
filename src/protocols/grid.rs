//! The shape Zoomify and DeepZoom share: a document (`ImageProperties.xml`, `.dzi`) and tiles
//! named by (level, column, row) on the client's own grid of square tiles, each level the
//! image scaled down by a power of two.
//!
//! A protocol says how its arguments are named ([`Grid::split`]), what its document is and how
//! big its levels are ([`Grid::level`]); [`handle`] does the rest once for both: open the
//! image, answer 304 or the document, check the tile is on the grid, and serve it with
//! [`grid_tile`], from the stored tile when the file stores that scale at that tile size, else
//! as a region export at the size the client expects.

use super::answer::Answer;
use super::context::Context;
use super::responses;
use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::http::{HeaderDefaults, Response};
use crate::metrics::{Kind, note};
use crate::open_image::{OpenImage, open_image};
use crate::render::RegionOptions;
use crate::source::ImageInfo;
use crate::source::resolve::image_key;
use crate::view::Region;

/// What a grid protocol's argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// The protocol's XML document of the image.
    Document(&'a [u8]),
    /// Tile (`col`, `row`) of grid level `level`, as the client numbers them.
    Tile {
        id: &'a [u8],
        level: i64,
        col: i64,
        row: i64,
    },
    /// Neither form: the whole argument is the identifier (upstream), answered with a 400
    /// once the image is found.
    Malformed(&'a [u8]),
}

impl<'a> Target<'a> {
    /// The raw identifier (decoded later, as `FIF` does).
    pub(crate) fn id(&self) -> &'a [u8] {
        match *self {
            Target::Document(id) | Target::Tile { id, .. } | Target::Malformed(id) => id,
        }
    }
}

/// One level of a client's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridLevel {
    /// The scale factor: a power of two, 1 = full size.
    pub factor: u64,
    /// The level's size as the client computes it.
    pub width: u32,
    pub height: u32,
}

/// A protocol with a document and a tile grid (Zoomify, DeepZoom).
pub(crate) trait Grid {
    /// The protocol's name in messages.
    const NAME: &'static str;
    /// The 400 message for an argument that names neither the document nor a tile.
    const USAGE: &'static str;
    /// Split a raw argument; the identifier is decoded afterwards.
    fn split(arg: &[u8]) -> Target<'_>;
    /// The XML document.
    fn document(info: &ImageInfo) -> String;
    /// Grid level `level` as the client numbers it; `None` when there is no such level.
    fn level(info: &ImageInfo, level: i64) -> Option<GridLevel>;
    /// A tile's name in the 404 message.
    fn tile_name(level: i64, col: i64, row: i64) -> String;
}

/// The grid's tile size: the full-resolution level's tile width.
pub(crate) fn tile_size(info: &ImageInfo) -> u32 {
    super::iiif::info::tile_size(info).0.max(1)
}

/// Answer a grid protocol's argument.
pub(crate) fn handle<G: Grid>(ctx: &Context<'_>, arg: &[u8]) -> Result<Answer> {
    let target = G::split(arg);
    note::kind(match target {
        Target::Document(_) => Kind::Info,
        Target::Tile { .. } => Kind::Tile,
        Target::Malformed(_) => Kind::Other,
    });
    let image = open_image(ctx.shared, &image_key(target.id()))?;
    let headers = ctx.headers();
    if ctx.unmodified(&image) {
        return Ok(responses::not_modified(headers).into());
    }
    let info = image.info();
    let (l, col, row) = match target {
        Target::Document(_) => {
            return Ok(Response::content(
                headers,
                "xml",
                &image.last_modified,
                false,
                None,
                G::document(info),
            )
            .into());
        }
        Target::Malformed(_) => return Err(Error::bad_request(G::USAGE)),
        Target::Tile {
            level, col, row, ..
        } => (level, col, row),
    };
    let missing = || {
        Error::not_found(format!(
            "{} :: Asked for non-existent tile: {}",
            G::NAME,
            G::tile_name(l, col, row)
        ))
    };
    let level = G::level(info, l).ok_or_else(missing)?;
    let ts = tile_size(info);
    let (ntx, nty) = (
        level.width.div_ceil(ts) as i64,
        level.height.div_ceil(ts) as i64,
    );
    if col < 0 || row < 0 || col >= ntx || row >= nty {
        return Err(missing());
    }
    let (col, row) = (col as u32, row as u32);
    let out = (
        ts.min(level.width - col * ts),
        ts.min(level.height - row * ts),
    );
    grid_tile(ctx, &image, headers, level.factor, (col, row), out)
}

/// The stored level (an index into `ImageInfo::levels`) with scale factor `factor`, if any.
pub(crate) fn stored_level(info: &ImageInfo, factor: u64) -> Option<usize> {
    super::iiif::info::scale_factors(info)
        .iter()
        .position(|&f| f as u64 == factor)
}

/// Tile (`col`, `row`) of the grid level with scale factor `factor`, `out_w`×`out_h` pixels.
/// When the file stores that scale with the grid's tile size and the stored tile has exactly
/// that size, it is served from the tile path (cache, pass-through); otherwise the tile's area
/// of the full image is exported at that size.
fn grid_tile(
    ctx: &Context<'_>,
    image: &OpenImage,
    headers: &HeaderDefaults,
    factor: u64,
    (col, row): (u32, u32),
    (out_w, out_h): (u32, u32),
) -> Result<Answer> {
    let info = image.info();
    let ts = tile_size(info);
    if let Some(i) = stored_level(info, factor) {
        let stored = info.levels[i];
        let (lx, ly) = stored.tiles();
        let r = (info.levels.len() - 1 - i) as u32;
        if stored.tile_width == ts && stored.tile_height == ts && col < lx && row < ly {
            let t = row * lx + col;
            // A level rounded differently from the client's grid has edge tiles one pixel
            // off: those are made to size like unstored levels.
            if stored.tile_size(t) == Some((out_w, out_h)) {
                let t = responses::mosaic_tile(info, &ctx.view, r, t);
                return responses::tile(ctx, image, &ctx.view, (r, t), OutputFormat::Jpeg, headers)
                    .map(Answer::from);
            }
        }
    }
    let (fx, fy) = (
        col as u64 * ts as u64 * factor,
        row as u64 * ts as u64 * factor,
    );
    let (fw, fh) = (info.width as u64, info.height as u64);
    let mut view = ctx.view.clone();
    view.region = Some(Region::Pixels {
        x: fx as u32,
        y: fy as u32,
        w: (ts as u64 * factor).min(fw - fx) as u32,
        h: (ts as u64 * factor).min(fh - fy) as u32,
    });
    view.width = Some(out_w);
    view.height = Some(out_h);
    responses::export(
        ctx,
        image,
        &view,
        OutputFormat::Jpeg,
        (&RegionOptions::EXACT, false),
        headers,
    )
}
