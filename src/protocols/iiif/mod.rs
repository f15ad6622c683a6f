//! IIIF Image API 2 and 3 (`docs/behaviour/protocols-iiif.md`): `IIIF=` arguments and URI_MAP paths.
//!
//! - [`split`]: identifier and parameters (§1.2, without upstream's wrap-around bug);
//! - [`negotiate`]: the version from `IIIF_VERSION` and the `Accept` header (§1.3);
//! - the base URI → 303 (§2), also for identifiers that contain slashes;
//! - [`info`]: info.json (§3);
//! - [`parse`]: the image parameters, resolved with the IIIF specification's arithmetic (§4);
//! - [`tile_for`]: a request that is exactly one stored tile is served by
//!   [`responses::tile`] (tile cache, codec pass-through, `Content-Length`); everything else
//!   is a region export ([`responses::export`], with `Content-Disposition`);
//! - `links`: every image response ends with one `Link` line naming the canonical URI of the
//!   request ([`parse::canonical`]) and the compliance level (`rel="profile"`).
//!
//! Beyond iipsrv (IIIF extensions, docs/compatibility.md "Additions"): any rotation angle, the
//! formats `gif`, `jp2` and `pdf`, and the `Link` header.
//!
//! The differences from iipsrv 1.3 are listed in docs/compatibility.md.

pub(crate) mod info;
pub mod parse;

use super::answer::Answer;
use super::context::Context;
use super::responses;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{HeaderDefaults, Response};
use crate::metrics::{Kind, note};
use crate::open_image::{OpenImage, open_image};
use crate::render::RegionOptions;
use crate::shared::Shared;
use crate::source::{ImageInfo, resolve};
use crate::text::number::atoi;
use crate::text::{header_text, json_escape};
use crate::view::{ColourConversion, Contrast, Gamma, Region, View};
use parse::{ImageRequest, Limits, Quality};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_encode};

/// What a IIIF argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No `/` at all: the base URI, redirected to its info.json.
    Base(Vec<u8>),
    /// `{id}/info.json`.
    Info(Vec<u8>),
    /// `{id}/info…` other than `info.json`: an image request without parameters.
    NoParameters(Vec<u8>),
    /// `{id}/{region}/{size}/{rotation}/{quality}.{format}`.
    Image { id: Vec<u8>, params: Vec<u8> },
}

/// The message for an argument with fewer than 4 slashes after the identifier.
const NOT_ENOUGH: &str = "IIIF: Not enough parameters";

/// Split a decoded IIIF argument (§1.2). Upstream's search wraps around when a slash is at
/// position 0 (an argument starting with `/` never gets the 400); here it does not.
pub(crate) fn split(decoded: &[u8]) -> Result<Target> {
    let Some(last) = decoded.iter().rposition(|&b| b == b'/') else {
        return Ok(Target::Base(decoded.to_vec()));
    };
    let suffix = &decoded[last + 1..];
    if suffix.starts_with(b"info") {
        let id = decoded[..last].to_vec();
        return Ok(if suffix == b"info.json" {
            Target::Info(id)
        } else {
            Target::NoParameters(id)
        });
    }
    let mut end = last;
    for _ in 0..3 {
        match decoded[..end].iter().rposition(|&b| b == b'/') {
            Some(p) => end = p,
            None => return Err(Error::bad_request(NOT_ENOUGH)),
        }
    }
    Ok(Target::Image {
        id: decoded[..end].to_vec(),
        params: decoded[end + 1..].to_vec(),
    })
}

/// The version to answer with (§1.3): `IIIF_VERSION`, or the digit in an `Accept` header
/// naming `http://iiif.io/api/image/<d>/context.json`; `true` when the header changed it (the
/// response is then `Cache-Control: private`).
pub(crate) fn negotiate(default: u32, accept: Option<&[u8]>) -> (u32, bool) {
    const PREFIX: &[u8] = b"http://iiif.io/api/image";
    let Some(accept) = accept else {
        return (default, false);
    };
    let Some(pos) = accept.windows(PREFIX.len()).position(|w| w == PREFIX) else {
        return (default, false);
    };
    let slice = &accept[pos..];
    if slice.len() < 39 || &slice[26..39] != b"/context.json" || slice[24] != b'/' {
        return (default, false);
    }
    match slice[25] {
        d @ b'1'..=b'9' if (d - b'0') as u32 != default => ((d - b'0') as u32, true),
        _ => (default, false),
    }
}

/// `Content-Type` of info.json.
fn info_content_type(version: u32) -> String {
    format!("application/ld+json;profile=\"http://iiif.io/api/image/{version}/context.json\"")
}

/// The response header defaults, `Cache-Control: private` after negotiation.
fn header_defaults(shared: &Shared, negotiated: bool) -> HeaderDefaults {
    let mut d = shared.headers().clone();
    if negotiated {
        d.cache_control = "private".into();
    }
    d
}

/// Split `<id><IIIF_DELIMITER><page>` at the delimiter's last occurrence (§1.2 step 4; the
/// page number is read after the whole delimiter, also for delimiters longer than 1 byte).
pub(crate) fn split_page<'a>(id: &'a [u8], delimiter: &[u8]) -> (&'a [u8], Option<u32>) {
    if delimiter.is_empty() || id.len() < delimiter.len() {
        return (id, None);
    }
    match id.windows(delimiter.len()).rposition(|w| w == delimiter) {
        Some(pos) => {
            let page = atoi(&String::from_utf8_lossy(&id[pos + delimiter.len()..])).value;
            (&id[..pos], Some(page.clamp(0, u32::MAX as i64) as u32))
        }
        None => (id, None),
    }
}

/// Open the image named by a decoded identifier; the view is the context's, on the page
/// (stack layer) `IIIF_DELIMITER` selects, if any.
fn open(ctx: &Context<'_>, id: &[u8]) -> Result<(OpenImage, View)> {
    let (id, page) = split_page(id, ctx.config().iiif.delimiter.as_bytes());
    let key = resolve::filter_traversal(id.to_vec());
    let image = open_image(ctx.shared, &key)?;
    let mut view = ctx.view.clone();
    if let Some(p) = page {
        // A stack page, or a sequence's horizontal angle (docs/behaviour/protocols-iiif.md §1.2 step 4).
        if !image.horizontal_views().contains(&p) {
            return Err(Error::not_found(format!(
                "IIIF: {} has no page {p}",
                String::from_utf8_lossy(&key)
            )));
        }
        view.horizontal = p;
    }
    Ok((image, view))
}

/// Whether a decoded argument as a whole names an image file or sequence (a base URI whose
/// identifier contains slashes).
fn names_image(shared: &Shared, decoded: &[u8]) -> bool {
    let whole = resolve::filter_traversal(decoded.to_vec());
    let delimiter = shared.config().iiif.delimiter.as_bytes();
    // A page selector only at the very end (`id;2`), not inside a longer path
    // (`id;45/full/max/0/default.jpg` names no image: a missing page is a 404, not a 303).
    let key = match split_page(&whole, delimiter) {
        (id, Some(_))
            if whole[id.len() + delimiter.len()..]
                .iter()
                .all(u8::is_ascii_digit) =>
        {
            id
        }
        _ => &whole[..],
    };
    resolve::find(shared.storage(), shared.config(), key).is_ok()
}

/// Whether this request came through `URI_MAP` (its `REQUEST_URI` matches the mapping).
fn mapped(ctx: &Context<'_>) -> bool {
    let uri = ctx.req.param("REQUEST_URI").unwrap_or(b"");
    ctx.shared
        .config()
        .http
        .uri_map
        .as_ref()
        .is_some_and(|m| super::uri_map::map_uri(m, uri).is_some_and(|r| r.is_ok()))
}

/// The scheme of the request: `https` when the web server set `HTTPS` (non-empty), else
/// `http`.
fn scheme(ctx: &Context<'_>) -> &'static str {
    match ctx.req.param("HTTPS") {
        Some(v) if !v.is_empty() => "https",
        _ => "http",
    }
}

/// §2: `303 See Other` to `<base URI>/info.json`. With `BASE_URL`: `BASE_URL` + the raw
/// argument; otherwise the absolute `http[s]://HTTP_HOST` + `REQUEST_URI` (without the query
/// string for a URI_MAP path; iipsrv sends the protocol-relative `//HTTP_HOST…`, which the
/// IIIF validator rejects). CORS is added (upstream sends none, which stops browsers from
/// following the redirect of a cross-origin request).
fn redirect(ctx: &Context<'_>, arg: &[u8], headers: &HeaderDefaults) -> Response {
    let base_url = &ctx.config().http.base_url;
    let location = if !base_url.is_empty() {
        format!("{base_url}{}/info.json", header_text(arg))
    } else {
        let host = header_text(ctx.req.param("HTTP_HOST").unwrap_or(b""));
        let mut uri = ctx.req.param("REQUEST_URI").unwrap_or(b"");
        if mapped(ctx) {
            if let Some(q) = uri.iter().position(|&b| b == b'?') {
                uri = &uri[..q];
            }
        }
        format!("{}://{host}{}/info.json", scheme(ctx), header_text(uri))
    };
    tracing::debug!("IIIF :: Sending HTTP 303 See Other : {location}");
    note::kind(Kind::Redirect);
    let mut r = Response::see_other(&location);
    r.add_cors(headers);
    r
}

/// §3.2: the `id` of info.json, JSON-escaped. `X-IIIF-ID` if given; else `BASE_URL` + the raw
/// argument; else `http[s]://HTTP_HOST` + the raw `REQUEST_URI`, each without the
/// `/info.json` and what follows it. The id is kept URL-encoded (upstream decodes it, which
/// breaks identifiers with spaces, `+` or `%`), and a query string is dropped.
fn service_id(ctx: &Context<'_>, arg: &[u8]) -> Result<String> {
    fn cut(text: &[u8]) -> &[u8] {
        const SUFFIX: &[u8] = b"/info.json";
        match text.windows(SUFFIX.len()).rposition(|w| w == SUFFIX) {
            Some(p) => &text[..p],
            None => &text[..text.len().saturating_sub(SUFFIX.len())],
        }
    }
    if let Some(id) = ctx.req.param("HTTP_X_IIIF_ID").filter(|v| !v.is_empty()) {
        return Ok(json_escape(&String::from_utf8_lossy(id)));
    }
    let base_url = &ctx.config().http.base_url;
    if !base_url.is_empty() {
        return Ok(json_escape(&format!(
            "{base_url}{}",
            String::from_utf8_lossy(cut(arg))
        )));
    }
    let Some(uri) = ctx.req.param("REQUEST_URI") else {
        return Err(Error::bad_request(
            "IIIF: REQUEST_URI was not set in FastCGI request, so the ID parameter cannot be set",
        ));
    };
    let scheme = scheme(ctx);
    let host = String::from_utf8_lossy(ctx.req.param("HTTP_HOST").unwrap_or(b"")).into_owned();
    Ok(json_escape(&format!(
        "{scheme}://{host}{}",
        String::from_utf8_lossy(cut(uri))
    )))
}

/// Handle `IIIF=<arg>`.
pub(crate) fn handle(ctx: &Context<'_>, arg: &[u8]) -> Result<Answer> {
    let shared = ctx.shared;
    let (decoded, null) = resolve::url_decode(arg);
    if null {
        tracing::warn!(
            "Warning! Detected embedded NULL byte in URL: {}",
            String::from_utf8_lossy(arg)
        );
    }
    let (version, negotiated) =
        negotiate(shared.config().iiif.version, ctx.req.param("HTTP_ACCEPT"));
    let headers = header_defaults(shared, negotiated);
    note::kind(Kind::Region);
    let target = match split(&decoded) {
        Ok(t) => t,
        Err(_) if names_image(shared, &decoded) => return Ok(redirect(ctx, arg, &headers).into()),
        Err(e) => return Err(e),
    };
    match target {
        Target::Base(_) => Ok(redirect(ctx, arg, &headers).into()),
        Target::Info(id) => {
            note::kind(Kind::Info);
            let (image, _) = open(ctx, &id)?;
            if ctx.unmodified(&image) {
                return Ok(responses::not_modified(&headers).into());
            }
            let ident = service_id(ctx, arg)?;
            let body = info::info_json(image.info(), &ident, version, shared.config());
            Ok(Response::content(
                &headers,
                &info_content_type(version),
                &image.last_modified,
                false,
                None,
                body,
            )
            .into())
        }
        Target::NoParameters(id) => {
            let (image, _) = open(ctx, &id)?;
            if ctx.unmodified(&image) {
                return Ok(responses::not_modified(&headers).into());
            }
            Err(Error::bad_request(
                "IIIF: Query has too few parameters. IIIF syntax is {identifier}/{region}/{size}/{rotation}/{quality}{.format}",
            ))
        }
        Target::Image { id, params } => {
            let (image, view) = match open(ctx, &id) {
                Ok(opened) => opened,
                Err(e)
                    if super::error::kind(&e) == ErrorKind::NotFound
                        && names_image(shared, &decoded) =>
                {
                    return Ok(redirect(ctx, arg, &headers).into());
                }
                Err(e) => return Err(e),
            };
            if ctx.unmodified(&image) {
                return Ok(responses::not_modified(&headers).into());
            }
            let limits = Limits::new(shared.config(), version);
            let info = image.info();
            let req = parse::parse(
                &String::from_utf8_lossy(&params),
                info.width,
                info.height,
                &limits,
            )?;
            let answer = image_response(ctx, &image, &view, &req, &headers)?;
            let canonical = parse::canonical(&req, info.width, info.height, &limits);
            let link = links(ctx, arg, &id, &canonical, version);
            // A heavy export's failure is answered later as its error, without the link.
            Ok(answer.map(shared, move |_, mut response| {
                if response.status() < 400 {
                    response.push("Link", link);
                }
                response
            }))
        }
    }
}

/// Bytes percent-encoded in the URI of a `Link` value: the WHATWG URL standard's path set
/// without `#` and `?` (they are already what they mean in the request): controls, space,
/// `"`, `<`, `>`, `` ` ``, `{`, `}`, and every non-ASCII byte. `^` stays as IIIF writes it.
const NOT_IN_URI: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Bytes an identifier re-encoded from its decoded form keeps: the URI's unreserved characters.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How many `/` from the end of the raw argument are tried as the end of the identifier.
const IDENTIFIER_END_CANDIDATES: usize = 8;

/// The identifier as the client encoded it: the raw argument up to the `/` whose prefix
/// decodes to `id` (the parameters hold 3 more `/`, or more when encoded); when none does,
/// `id` percent-encoded (a `/` in it as `%2F`).
fn raw_identifier(arg: &[u8], id: &[u8]) -> String {
    arg.iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'/')
        .take(IDENTIFIER_END_CANDIDATES)
        .find(|&(p, _)| resolve::url_decode(&arg[..p]).0 == id)
        .map(|(p, _)| String::from_utf8_lossy(&arg[..p]).into_owned())
        .unwrap_or_else(|| percent_encode(id, NOT_UNRESERVED).to_string())
}

/// The base URI of the image an image request names, built like the info.json `id` (§3.2):
/// `X-IIIF-ID`; else `BASE_URL` + the identifier; else `http[s]://HTTP_HOST` + the
/// `REQUEST_URI` up to the argument + the identifier (without `HTTP_HOST`, only the path: a
/// reference relative to the request). `None` when there is no `REQUEST_URI` or it does not
/// contain the argument (a POST body).
fn base_uri(ctx: &Context<'_>, arg: &[u8], id: &[u8]) -> Option<String> {
    if let Some(given) = ctx.req.param("HTTP_X_IIIF_ID").filter(|v| !v.is_empty()) {
        return Some(header_text(given));
    }
    let raw_id = raw_identifier(arg, id);
    let base_url = &ctx.config().http.base_url;
    if !base_url.is_empty() {
        return Some(format!("{base_url}{raw_id}"));
    }
    let uri = ctx.req.param("REQUEST_URI")?;
    let start = uri.windows(arg.len().max(1)).rposition(|w| w == arg)?;
    let scheme = match ctx.req.param("HTTPS") {
        Some(v) if !v.is_empty() => "https",
        _ => "http",
    };
    let host = header_text(ctx.req.param("HTTP_HOST").unwrap_or(b""));
    let path = String::from_utf8_lossy(&uri[..start]);
    Some(if host.is_empty() {
        // No host: the path alone, a reference relative to the request's own URI.
        format!("{path}{raw_id}")
    } else {
        format!("{scheme}://{host}{path}{raw_id}")
    })
}

/// The `Link` value of an image response: `<canonical URI>;rel="canonical"` (when a base URI
/// can be made, [`base_uri`]) and `<http://iiif.io/api/image/<v>/level2.json>;rel="profile"`,
/// in one line (clients such as the IIIF validator read only the first `Link` line).
/// `canonical` is the request's [`parse::canonical`] form.
pub(crate) fn links(
    ctx: &Context<'_>,
    arg: &[u8],
    id: &[u8],
    canonical: &str,
    version: u32,
) -> String {
    let profile = format!("<http://iiif.io/api/image/{version}/level2.json>;rel=\"profile\"");
    match base_uri(ctx, arg, id) {
        Some(base) => {
            let uri = format!("{base}/{canonical}");
            let uri = percent_encode(uri.as_bytes(), NOT_IN_URI);
            format!("<{uri}>;rel=\"canonical\", {profile}")
        }
        None => profile,
    }
}

/// The view for a resolved request: the session's IIP parameters (commands before `IIIF=`
/// apply), then the IIIF rotation (any angle), mirror and quality.
pub(crate) fn request_view(base: &View, req: &ImageRequest) -> View {
    let mut view = base.clone();
    view.rotation = req.rotation;
    view.any_angle = true;
    view.flip = req.mirror;
    view.format = Some(req.format);
    match req.quality {
        Quality::Default | Quality::Color => {}
        Quality::Gray => view.colour = Some(ColourConversion::Grey),
        Quality::Bitonal => view.colour = Some(ColourConversion::Binary),
        Quality::Negative => view.invert = true,
        Quality::Stretch => view.contrast = Some(Contrast::Stretch),
        Quality::Equalization => view.contrast = Some(Contrast::Equalize),
        Quality::Log => view.gamma = Some(Gamma::Log),
    }
    view
}

/// Whether the tile pipeline ([`render::process_tile`]) does everything the view asks for:
/// greyscale, mirror and rotation. Anything else goes through the region export.
fn tile_pipeline_suffices(view: &View) -> bool {
    view.min_max.is_empty()
        && view.contrast.is_none()
        && view.gamma.is_none()
        && !view.invert
        && view.colour_map.is_none()
        && view.colour != Some(ColourConversion::Binary)
        && view.shade.is_none()
        && view.twist.is_none()
        && view.convolution.is_none()
}

/// The stored tile a request is exactly, as (IIP resolution, tile index): at some level with
/// scale factor f, the region is one tile of the advertised size scaled by f (clipped at the
/// image edge, as IIIF clients compute it) and the output size is that tile's stored size.
pub(crate) fn tile_for(info: &ImageInfo, req: &ImageRequest) -> Option<(u32, u32)> {
    let (tw, th) = info::tile_size(info);
    let factors = info::scale_factors(info);
    let (fw, fh) = (info.width as u64, info.height as u64);
    let r = req.region;
    let (x, y) = (r.x as u64, r.y as u64);
    let n = info.levels.len();
    for (i, level) in info.levels.iter().enumerate() {
        if level.tile_width != tw || level.tile_height != th || tw == 0 || th == 0 {
            continue;
        }
        let f = factors[i] as u64;
        let (sw, sh) = (tw as u64 * f, th as u64 * f);
        if x % sw != 0 || y % sh != 0 || x >= fw || y >= fh {
            continue;
        }
        let (col, row) = (x / sw, y / sh);
        let (ntx, nty) = level.tiles();
        if col >= ntx as u64 || row >= nty as u64 {
            continue;
        }
        if r.w as u64 != sw.min(fw - x) || r.h as u64 != sh.min(fh - y) {
            continue;
        }
        let t = (row * ntx as u64 + col) as u32;
        if level.tile_size(t) == Some((req.width, req.height)) {
            return Some(((n - 1 - i) as u32, t));
        }
    }
    None
}

/// An image request: the tile path when the request is exactly one stored tile, otherwise a
/// region export. `base` is the view of the IIP parameters and the page.
fn image_response(
    ctx: &Context<'_>,
    image: &OpenImage,
    base: &View,
    req: &ImageRequest,
    headers: &HeaderDefaults,
) -> Result<Answer> {
    let mut view = request_view(base, req);
    if tile_pipeline_suffices(&view) {
        if let Some(tile) = tile_for(image.info(), req) {
            // The tile the request names, rotated (IIP's mosaic rule does not apply).
            return responses::tile(ctx, image, &view, tile, req.format, headers).map(Answer::from);
        }
    }
    let g = req.region;
    view.region = Some(Region::Pixels {
        x: g.x,
        y: g.y,
        w: g.w,
        h: g.h,
    });
    view.width = Some(req.width);
    view.height = Some(req.height);
    // The view carries the region in full-resolution pixels and the exact output size (the
    // IIIF rules are applied): no fitting.
    responses::export(
        ctx,
        image,
        &view,
        req.format,
        (&RegionOptions::EXACT, false),
        headers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::test_util::image_info;

    #[test]
    fn splitting() {
        assert_eq!(split(b"img").unwrap(), Target::Base(b"img".to_vec()));
        assert_eq!(
            split(b"a/b.tif/info.json").unwrap(),
            Target::Info(b"a/b.tif".to_vec())
        );
        assert_eq!(
            split(b"a/b.tif/infox").unwrap(),
            Target::NoParameters(b"a/b.tif".to_vec())
        );
        assert_eq!(
            split(b"a/b.tif/full/max/0/default.jpg").unwrap(),
            Target::Image {
                id: b"a/b.tif".to_vec(),
                params: b"full/max/0/default.jpg".to_vec()
            }
        );
        assert_eq!(
            split(b"images/x.tif").unwrap_err().message().unwrap(),
            NOT_ENOUGH
        );
        // No wrap-around at a leading slash.
        assert_eq!(
            split(b"/images/x.tif").unwrap_err().message().unwrap(),
            NOT_ENOUGH
        );
        assert_eq!(
            split(b"/images/x.tif/full/max/0/default.jpg").unwrap(),
            Target::Image {
                id: b"/images/x.tif".to_vec(),
                params: b"full/max/0/default.jpg".to_vec()
            }
        );
    }

    #[test]
    fn version_negotiation() {
        let a = |s: &str| negotiate(3, Some(s.as_bytes()));
        assert_eq!(negotiate(3, None), (3, false));
        assert_eq!(
            a("application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\""),
            (2, true)
        );
        assert_eq!(
            a("application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\""),
            (3, false)
        );
        assert_eq!(a("application/ld+json"), (3, false));
        assert_eq!(a("http://iiif.io/api/image/2/info.json"), (3, false));
        assert_eq!(
            negotiate(2, Some(b"http://iiif.io/api/image/3/context.json")),
            (3, true)
        );
    }

    #[test]
    fn pages() {
        assert_eq!(
            split_page(b"stack.tif;1", b";"),
            (&b"stack.tif"[..], Some(1))
        );
        assert_eq!(split_page(b"a;b.tif;2", b";"), (&b"a;b.tif"[..], Some(2)));
        assert_eq!(split_page(b"x.tif", b";"), (&b"x.tif"[..], None));
        assert_eq!(split_page(b"x.tif", b""), (&b"x.tif"[..], None));
        assert_eq!(
            split_page(b"stack.tif::3", b"::"),
            (&b"stack.tif"[..], Some(3))
        );
    }

    #[test]
    fn raw_identifiers_keep_the_clients_encoding() {
        let raw = |arg: &str, id: &str| raw_identifier(arg.as_bytes(), id.as_bytes());
        assert_eq!(raw("a+b.tif/full/max/0/default.jpg", "a b.tif"), "a+b.tif");
        assert_eq!(
            raw("sub%2Fx.tif/full/max/0/default.jpg", "sub/x.tif"),
            "sub%2Fx.tif"
        );
        assert_eq!(
            raw("sub/x.tif/full/max/0/default.jpg", "sub/x.tif"),
            "sub/x.tif"
        );
        // An encoded slash in the parameters is not the identifier's end.
        assert_eq!(raw("x.tif/full/max%2F0/default.jpg", "x.tif"), "x.tif");
        // No prefix decodes to the identifier: it is encoded afresh.
        assert_eq!(raw("other", "a/b c~.tif"), "a%2Fb%20c~.tif");
    }

    fn sample_info() -> ImageInfo {
        image_info(&[(1000, 750), (500, 375), (250, 187)], 256)
    }

    fn tile(info: &ImageInfo, params: &str) -> Option<(u32, u32)> {
        let limits = Limits {
            version: 3,
            max: Some(5000),
            allow_upscaling: true,
            extensions: false,
        };
        tile_for(
            info,
            &parse::parse(params, info.width, info.height, &limits).unwrap(),
        )
    }

    #[test]
    fn tile_detection() {
        let info = sample_info();
        assert_eq!(tile(&info, "0,0,256,256/256,/0/default.jpg"), Some((2, 0)));
        assert_eq!(
            tile(&info, "0,0,256,256/256,256/0/default.jpg"),
            Some((2, 0))
        );
        // The edge tile of the full level (232×238), and of the middle level.
        assert_eq!(
            tile(&info, "768,512,232,238/232,238/0/default.jpg"),
            Some((2, 11))
        );
        assert_eq!(
            tile(&info, "512,0,488,512/244,256/0/default.jpg"),
            Some((1, 1))
        );
        // The smallest level as a whole, as OpenSeadragon and Leaflet ask for it.
        assert_eq!(tile(&info, "full/250,187/0/default.jpg"), Some((0, 0)));
        assert_eq!(tile(&info, "0,0,1000,750/250,/0/default.jpg"), None);
        assert_eq!(tile(&info, "full/max/0/default.jpg"), None);
        assert_eq!(tile(&info, "0,0,256,256/128,/0/default.jpg"), None);
        assert_eq!(tile(&info, "1,0,256,256/256,/0/default.jpg"), None);
    }
}
