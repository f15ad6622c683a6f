//! IIP's output commands (`docs/behaviour/protocols-iip.md` §6): each answers the request from the open image
//! and the view built so far. They run only once `FIF` has opened an image (the session
//! answers `Error/…:1 3` otherwise), so each takes the [`OpenImage`] itself.

use super::parameters::numbers;
use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::image::Samples;
use crate::metrics::{Kind, note};
use crate::open_image::OpenImage;
use crate::protocols::answer::Answer;
use crate::protocols::context::Context;
use crate::protocols::responses;
use crate::render::{self, RegionOptions};
use crate::text::number::atoi;
use crate::text::{fmt_g, json_escape, xml_escape};
use crate::view::View;

/// The most tiles one `TIL` request may ask for.
const MAX_TILES: u64 = 4096;

/// An output command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// `JTL`, `PTL`, `WTL`, `ATL`, `TTL`: one tile in that format.
    Tile(OutputFormat),
    /// `JTLS`: JTL with the sequence angles.
    Jtls,
    /// `TIL`: several tiles in the legacy stream.
    Til,
    /// `CVT`: a region export.
    Cvt,
    /// `SPECTRA`: one pixel of every band.
    Spectra,
    /// `PFL`: a line profile of every band.
    Pfl,
}

impl Output {
    /// The output command `name` (lower case) names, if any.
    pub(crate) fn from_name(name: &[u8]) -> Option<Output> {
        Some(match name {
            b"jtl" => Output::Tile(OutputFormat::Jpeg),
            b"ptl" => Output::Tile(OutputFormat::Png),
            b"wtl" => Output::Tile(OutputFormat::Webp),
            b"atl" => Output::Tile(OutputFormat::Avif),
            b"ttl" => Output::Tile(OutputFormat::Tiff),
            b"jtls" => Output::Jtls,
            b"til" => Output::Til,
            b"cvt" => Output::Cvt,
            b"spectra" => Output::Spectra,
            b"pfl" => Output::Pfl,
            _ => return None,
        })
    }
}

/// Run an output command: the response, or `None` when it asks for nothing (a `JTLS` with
/// fewer than four numbers). `post` makes region exports `attachment`s.
pub(super) fn run(
    output: Output,
    ctx: &mut Context<'_>,
    image: &OpenImage,
    post: bool,
    arg: &[u8],
) -> Result<Option<Answer>> {
    note::kind(match output {
        Output::Tile(_) | Output::Jtls => Kind::Tile,
        Output::Til => Kind::TileStream,
        Output::Cvt => Kind::Region,
        Output::Spectra | Output::Pfl => Kind::Values,
    });
    let ready = |r: Result<Response>| r.map(|r| Some(Answer::Ready(r)));
    match output {
        Output::Tile(format) => ready(tile(ctx, image, arg, format)),
        Output::Jtls => jtls(ctx, image, arg).map(|r| r.map(Answer::Ready)),
        Output::Til => ready(til(ctx, image, arg)),
        Output::Cvt => cvt(ctx, image, arg, post).map(Some),
        Output::Spectra => ready(spectra(ctx, image, arg)),
        Output::Pfl => ready(pfl(ctx, image, arg)),
    }
}

/// `JTL=r,t` and friends (§6.2): one tile with Content-Length, placed by the mosaic rule.
fn tile(
    ctx: &Context<'_>,
    image: &OpenImage,
    arg: &[u8],
    format: OutputFormat,
) -> Result<Response> {
    let a = String::from_utf8_lossy(arg);
    let (r, t) = match a.split_once(',') {
        Some((r, t)) => (atoi(r).value, atoi(t).value),
        // A missing `,t` reuses the resolution text as the tile (upstream quirk).
        None => (atoi(&a).value, atoi(&a).value),
    };
    let (Ok(r), Ok(t)) = (u32::try_from(r), u32::try_from(t)) else {
        return Err(Error::invalid(format!(
            "JTL :: Invalid resolution/tile number: {r},{t}"
        )));
    };
    let t = responses::mosaic_tile(image.info(), &ctx.view, r, t);
    responses::tile(ctx, image, &ctx.view, (r, t), format, ctx.headers())
}

/// `CVT=format` (§6.1): the view as one image, with a Content-Disposition file name.
fn cvt(ctx: &Context<'_>, image: &OpenImage, arg: &[u8], post: bool) -> Result<Answer> {
    let a = String::from_utf8_lossy(arg).to_ascii_lowercase();
    let format = match a.as_str() {
        "jpeg" | "jpg" => OutputFormat::Jpeg,
        "png" => OutputFormat::Png,
        "webp" => OutputFormat::Webp,
        "avif" => OutputFormat::Avif,
        "tiff" => OutputFormat::Tiff,
        other => {
            tracing::info!("CVT :: Unsupported request: '{other}'. Sending JPEG.");
            OutputFormat::Jpeg
        }
    };
    let options = RegionOptions::iip(ctx.config());
    responses::export(
        ctx,
        image,
        &ctx.view,
        format,
        (&options, post),
        ctx.headers(),
    )
}

/// The bands of `SPECTRA` and `PFL`: the horizontal views (a sequence's angles, a stack's
/// pages, or the single view 0), with their labels (the stack page's name, else the view
/// number) and scale factors (stack pages only).
fn bands(image: &OpenImage) -> Vec<(u32, String, f64)> {
    let stack = &image.info().stack;
    image
        .horizontal_views()
        .into_iter()
        .map(
            |h| match stack.get(h as usize).filter(|_| image.sequence.is_none()) {
                Some(p) if !p.name.is_empty() => (h, p.name.clone(), p.scale),
                Some(p) => (h, h.to_string(), p.scale),
                None => (h, h.to_string(), 1.0),
            },
        )
        .collect()
}

/// `SPECTRA=r,t,x,y` (§6.5): the first-channel value at one tile pixel for every band.
fn spectra(ctx: &Context<'_>, image: &OpenImage, arg: &[u8]) -> Result<Response> {
    let a = String::from_utf8_lossy(arg);
    let mut v = a.split(',').map(|t| atoi(t).value);
    let mut next = || v.next().unwrap_or(0);
    let (r, t, x, y) = (next(), next(), next(), next());
    let info = image.info();
    let level = u32::try_from(r)
        .ok()
        .and_then(|r| info.level(r).copied())
        .ok_or_else(|| {
            Error::invalid(format!(
                "SPECTRA :: Invalid resolution/tile number: {r},{t}"
            ))
        })?;
    if t < 0 || t as u64 >= level.tile_count() {
        return Err(Error::not_found(format!(
            "TPTImage :: Asked for non-existent tile: {t}"
        )));
    }
    if x < 0 || y < 0 || x >= level.tile_width as i64 || y >= level.tile_height as i64 {
        return Err(Error::bad_request(
            "SPECTRA :: Error: x,y coordinates outside of tile boundaries",
        ));
    }
    let (r, t, x, y) = (r as u32, t as u32, x as usize, y as usize);
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<spectra>\n");
    for (page, name, _) in bands(image) {
        let view = View {
            horizontal: page,
            ..ctx.view.clone()
        };
        let tile = render::raw_tile(ctx.shared, image, &view, r, t)?;
        // An edge tile is narrower than the nominal size: the point may lie outside it.
        if x >= tile.width as usize || y >= tile.height as usize {
            break;
        }
        let i = (y * tile.width as usize + x) * tile.channels as usize;
        let value = match &tile.samples {
            Samples::U8(s) => s[i] as f64 / 255.0,
            Samples::U16(s) => s[i] as f64 / 65535.0,
            Samples::U32(s) => s[i] as f64,
            Samples::I32(s) => s[i] as f64,
            Samples::F32(s) => s[i] as f64,
        };
        body.push_str(&format!(
            "\t<point>\n\t\t<wavelength>{}</wavelength>\n\t\t<reflectance>{value:.6}</reflectance>\n\t</point>\n",
            xml_escape(&name)
        ));
    }
    body.push_str("</spectra>");
    Ok(Response::content(
        ctx.headers(),
        "xml",
        &image.last_modified,
        false,
        None,
        body,
    ))
}

/// A point (x, y) of a level, as given.
type Point = (i64, i64);

/// The resolution and the two points of a `PFL` argument (one point: both the same).
fn pfl_line(a: &str) -> Result<(i64, Point, Point)> {
    let bad = || Error::invalid(format!("PFL :: Invalid argument: {a}"));
    let (r, points) = a.split_once(':').ok_or_else(bad)?;
    let point = |p: &str| -> Point {
        let (x, y) = p.split_once(',').unwrap_or((p, ""));
        (atoi(x).value, atoi(y).value)
    };
    // The `-` between the points follows a digit (a leading `-` is a negative number).
    let dash = points
        .char_indices()
        .skip(1)
        .find(|&(i, c)| c == '-' && points.as_bytes()[i - 1].is_ascii_digit())
        .map(|(i, _)| i);
    let (p1, p2) = match dash {
        Some(i) => (point(&points[..i]), point(&points[i + 1..])),
        None => (point(points), point(points)),
    };
    Ok((atoi(r).value, p1, p2))
}

/// `PFL=r:x1,y1[-x2,y2]` (§6.6): the values along a horizontal or vertical line (or at one
/// point), all channels, for every band, as JSON.
fn pfl(ctx: &Context<'_>, image: &OpenImage, arg: &[u8]) -> Result<Response> {
    let (r, (x1, y1), (x2, y2)) = pfl_line(&String::from_utf8_lossy(arg))?;
    let info = image.info();
    let level = u32::try_from(r)
        .ok()
        .and_then(|r| info.level(r).copied())
        .ok_or_else(|| Error::invalid(format!("PFL :: Invalid resolution: {r}")))?;
    let (lw, lh) = (level.width as i64, level.height as i64);
    if [x1, x2].iter().any(|&v| v < 0 || v > lw) || [y1, y2].iter().any(|&v| v < 0 || v > lh) {
        return Err(Error::invalid(format!(
            "PFL :: Invalid coordinates: {x1},{y1}-{x2},{y2}"
        )));
    }
    let (w, h) = if x2 > x1 {
        (x2 - x1, 1)
    } else if y2 > y1 {
        (1, y2 - y1)
    } else {
        (1, 1)
    };
    if x1 + w > lw || y1 + h > lh {
        return Err(Error::invalid(format!(
            "PFL :: Invalid coordinates: {x1},{y1}-{x2},{y2}"
        )));
    }
    let rect = (x1 as u32, y1 as u32, w as u32, h as u32);
    let bands = bands(image);
    // One band of a single image is a plain array; a stack or several bands an object.
    let object = !info.stack.is_empty() || bands.len() > 1;
    let mut lines = Vec::with_capacity(bands.len());
    for (page, name, scale) in &bands {
        let view = View {
            horizontal: *page,
            ..ctx.view.clone()
        };
        let region = render::read_region(ctx.shared, image, &view, r as u32, rect)?;
        let scale = *scale;
        let int = |v: f64| fmt_g(v * scale, 6);
        let values: Vec<String> = match &region.samples {
            Samples::U8(s) => s.iter().map(|&v| int(v as f64)).collect(),
            Samples::U16(s) => s.iter().map(|&v| int(v as f64)).collect(),
            Samples::U32(s) => s.iter().map(|&v| int(v as f64)).collect(),
            Samples::I32(s) => s.iter().map(|&v| int(v as f64)).collect(),
            Samples::F32(s) => s
                .iter()
                .map(|&v| format!("{:.9}", v as f64 * scale))
                .collect(),
        };
        lines.push((name.clone(), values.join(",")));
    }
    let body = if !object {
        format!("{{\n\t\"profile\": [{}]\n}}", lines[0].1)
    } else {
        let entries: Vec<String> = lines
            .iter()
            .map(|(n, v)| format!("\t\t\"{}\": [{v}]", json_escape(n)))
            .collect();
        format!("{{\n\t\"profile\": {{\n{}\n\t}}\n}}", entries.join(",\n"))
    };
    Ok(Response::content(
        ctx.headers(),
        "json",
        &image.last_modified,
        false,
        None,
        body,
    ))
}

/// `JTLS=x,r,t,y` (§6.3): set the sequence angles, then as JTL.
fn jtls(ctx: &mut Context<'_>, image: &OpenImage, arg: &[u8]) -> Result<Option<Response>> {
    let a = String::from_utf8_lossy(arg);
    let v = numbers(&a, 4, |t| atoi(t).value);
    if v.len() < 4 {
        return Ok(None);
    }
    ctx.view.horizontal = v[0].max(0) as u32;
    ctx.view.vertical = Some(v[3].max(0) as u32);
    let tile_arg = format!("{},{}", v[1], v[2]);
    tile(ctx, image, tile_arg.as_bytes(), OutputFormat::Jpeg).map(Some)
}

/// `TIL=r,s[-e]` (§6.4): the legacy multi-tile stream, column-major.
fn til(ctx: &Context<'_>, image: &OpenImage, arg: &[u8]) -> Result<Response> {
    let a = String::from_utf8_lossy(arg);
    let (r, range) = a.split_once(',').unwrap_or((&a, "0"));
    let r = atoi(r).value;
    let (s, e) = match range.split_once('-') {
        Some((s, e)) => (atoi(s).value, atoi(e).value),
        None => (atoi(range).value, atoi(range).value),
    };
    let e = e.max(s);
    let info = image.info();
    let level = u32::try_from(r)
        .ok()
        .and_then(|r| info.level(r).copied())
        .ok_or_else(|| Error::invalid(format!("TIL :: Invalid resolution: {r}")))?;
    let (ntlx, _) = level.tiles();
    if s < 0 || ntlx == 0 || e as u64 >= level.tile_count() {
        return Err(Error::not_found(format!(
            "TPTImage :: Asked for non-existent tile: {e}"
        )));
    }
    let ntlx = ntlx as i64;
    let (mut x0, mut x1) = (s % ntlx, e % ntlx);
    if x1 < x0 {
        std::mem::swap(&mut x0, &mut x1);
    }
    let (y0, y1) = (s / ntlx, e / ntlx);
    if ((x1 - x0 + 1) * (y1 - y0 + 1)) as u64 > MAX_TILES {
        return Err(Error::bad_request(format!(
            "TIL :: more than {MAX_TILES} tiles requested"
        )));
    }
    let mut body = Vec::new();
    let compression: &[u8] = if info.bits_per_sample <= 8 {
        &[2, 0, 0, 0]
    } else {
        &[3, 0, 0, 0]
    };
    for x in x0..=x1 {
        for y in y0..=y1 {
            let n = (y * ntlx + x) as u32;
            let stored = responses::mosaic_tile(info, &ctx.view, r as u32, n);
            let jpeg = render::tile(
                ctx.shared,
                image,
                &ctx.view,
                r as u32,
                stored,
                OutputFormat::Jpeg,
            )?;
            body.extend_from_slice(format!("Tile,{r},{n},0/{}:", jpeg.len() + 8).as_bytes());
            body.extend_from_slice(compression);
            body.extend_from_slice(&[0, 0x11, 0, 0]);
            body.extend_from_slice(&jpeg);
            body.extend_from_slice(b"\r\n");
        }
    }
    Ok(Response::til(ctx.headers(), &image.last_modified, body))
}
