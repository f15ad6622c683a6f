//! The image responses every protocol shares: one stored tile (with `Content-Length`), a
//! region export (with `Content-Disposition`), the 304 of the viewer protocols, and IIP's
//! mosaic rule for tile indices under `ROT=180`. IIP, IIIF, Zoomify and DeepZoom all answer
//! through these, so a tile or an export has the same headers whichever protocol asked. Both
//! carry the image `ETag` ([`super::validators`]), and a matching `If-None-Match` is answered
//! 304 before any pixel is decoded.

use super::answer::{Answer, Deferred, LIGHT_EXPORT_BYTES};
use super::context::Context;
use super::error::error_response;
use super::validators::{self, Served};
use crate::encode::OutputFormat;
use crate::error::Result;
use crate::http::{HeaderDefaults, Response};
use crate::metrics::{Kind, note};
use crate::open_image::OpenImage;
use crate::pipeline::geometry::Plan;
use crate::pipeline::rotate::quarter_turns;
use crate::render::{self, RegionOptions};
use crate::shared::Shared;
use crate::source::ImageInfo;
use crate::view::View;

/// The 304 for an unmodified image of the viewer protocols (IIIF, Zoomify, DeepZoom):
/// iipsrv's header-only response, plus the CORS lines (upstream sends none on a 304).
pub(crate) fn not_modified(headers: &HeaderDefaults) -> Response {
    let mut r = Response::header_only(headers, 304);
    r.add_cors(headers);
    r
}

/// The stored tile to send for tile `tile` of IIP resolution `resolution` (JTL, TIL, Zoomify,
/// DeepZoom): with `ROT=180` the index is turned around so that the rotated tiles of a mosaic
/// land in place. Out-of-range indices are left for [`render::tile`] to refuse. (IIIF names
/// its tiles by region, so it does not apply this.)
pub(crate) fn mosaic_tile(info: &ImageInfo, view: &View, resolution: u32, tile: u32) -> u32 {
    match info.level(resolution) {
        Some(level) if quarter_turns(view.rotation) == Some(2) => {
            let count = level.tile_count();
            if (tile as u64) < count {
                (count - 1 - tile as u64) as u32
            } else {
                tile
            }
        }
        _ => tile,
    }
}

/// One stored tile through [`render::tile`] (tile cache, codec pass-through) with
/// `Content-Length` and its `ETag`.
pub(crate) fn tile(
    ctx: &Context<'_>,
    image: &OpenImage,
    view: &View,
    (resolution, tile): (u32, u32),
    format: OutputFormat,
    headers: &HeaderDefaults,
) -> Result<Response> {
    note::kind(Kind::Tile);
    note::format(format.metric());
    let shared = ctx.shared;
    let served = Served::Tile { resolution, tile };
    let etag = validators::image_etag(shared, image, view, served, format);
    if let Some(not_modified) = validators::precondition(ctx, &etag, headers) {
        return Ok(not_modified);
    }
    let bytes = render::tile(shared, image, view, resolution, tile, format)?;
    let mut r = Response::content(
        headers,
        format.mime(),
        &image.last_modified,
        true,
        None,
        bytes,
    );
    r.set_etag(&etag);
    Ok(r)
}

/// A region export with `Content-Disposition` naming the output size (`attachment` for IIP's
/// POST form, else `inline`). Planned here ([`render::prepare_region`]); a light export is
/// rendered at once, a heavy one is handed back as [`Answer::Heavy`] with its estimated memory
/// (its errors become their responses there, as the session would make them).
pub(crate) fn export(
    ctx: &Context<'_>,
    image: &OpenImage,
    view: &View,
    format: OutputFormat,
    (options, attachment): (&RegionOptions, bool),
    headers: &HeaderDefaults,
) -> Result<Answer> {
    note::kind(Kind::Region);
    note::format(format.metric());
    let shared = ctx.shared;
    let etag = validators::image_etag(shared, image, view, Served::Export(options), format);
    if let Some(not_modified) = validators::precondition(ctx, &etag, headers) {
        return Ok(not_modified.into());
    }
    let prepared = render::prepare_region(shared, image, view, format, options)?;
    let plan = prepared.plan;
    if prepared.bytes <= LIGHT_EXPORT_BYTES {
        return render_export(shared, image, view, format, (&plan, attachment), headers).map(
            |mut r| {
                r.set_etag(&etag);
                Answer::Ready(r)
            },
        );
    }
    tracing::debug!(
        "CVT :: heavy export, about {} KiB at its peak",
        prepared.bytes >> 10
    );
    let (image, view, headers) = (image.clone(), view.clone(), headers.clone());
    Ok(Answer::Heavy(Deferred::new(
        prepared.bytes,
        move |shared| {
            // In passes, as light work: a region's missing tiles are fetched together.
            let render =
                || render_export(shared, &image, &view, format, (&plan, attachment), &headers);
            shared
                .storage()
                .serve_blocking(render)
                .map(|mut r| {
                    r.set_etag(&etag);
                    r
                })
                .unwrap_or_else(|e| error_response(shared.headers(), &e))
        },
    )))
}

/// Render a planned export ([`render::render_region`]) into its response.
fn render_export(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    format: OutputFormat,
    (plan, attachment): (&Plan, bool),
    headers: &HeaderDefaults,
) -> Result<Response> {
    let r = render::render_region(shared, image, view, format, plan)?;
    tracing::debug!(
        "CVT :: {}x{} from resolution {} region {},{} {}x{}",
        r.width,
        r.height,
        r.plan.resolution,
        r.plan.x,
        r.plan.y,
        r.plan.w,
        r.plan.h
    );
    let disposition = disposition(&image.key, format, (r.width, r.height), attachment);
    Ok(Response::content(
        headers,
        format.mime(),
        &image.last_modified,
        false,
        Some(disposition),
        r.bytes,
    ))
}

/// The `Content-Disposition` value of a region export (`docs/behaviour/protocols-iip.md` §6.1), as iipsrv 1.3
/// sends it for IIP and IIIF alike: `inline; filename="<base>_<w>x<h>.<ext>"` (`attachment`
/// for POST), where base is the image key (the identifier without prefix, suffix or IIIF
/// page) after its last `/`, up to its last `.`, and `w`×`h` the output size before rotation.
/// A `"`, `\` or control character in the base becomes `_`, so that the value stays a valid
/// quoted string (upstream copies them).
pub(crate) fn disposition(
    key: &[u8],
    format: OutputFormat,
    (w, h): (u32, u32),
    attachment: bool,
) -> String {
    let name = match key.iter().rposition(|&b| b == b'/') {
        Some(p) => &key[p + 1..],
        None => key,
    };
    let base = match name.iter().rposition(|&b| b == b'.') {
        Some(p) => &name[..p],
        None => name,
    };
    let base: String = String::from_utf8_lossy(base)
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(
        "{}; filename=\"{base}_{w}x{h}.{}\"",
        if attachment { "attachment" } else { "inline" },
        format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names() {
        use OutputFormat::*;
        let cases: [(&[u8], OutputFormat, bool, &str); 5] = [
            (
                b"images/x.tif",
                Jpeg,
                false,
                "inline; filename=\"x_200x150.jpg\"",
            ),
            (
                b"a.b/noext",
                Tiff,
                true,
                "attachment; filename=\"noext_200x150.tif\"",
            ),
            (
                b"my.image.v2.tif",
                Png,
                false,
                "inline; filename=\"my.image.v2_200x150.png\"",
            ),
            (
                b"q\"x.tif",
                Webp,
                false,
                "inline; filename=\"q_x_200x150.webp\"",
            ),
            // A sequence's key names no file: its base is the key's last segment, as 1.3.
            (
                b"sequence/obj",
                Jpeg,
                false,
                "inline; filename=\"obj_200x150.jpg\"",
            ),
        ];
        for (key, format, attachment, expected) in cases {
            assert_eq!(disposition(key, format, (200, 150), attachment), expected);
        }
    }
}
