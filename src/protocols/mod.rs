//! Protocols: from a request to a response.
//!
//! [`respond`] obtains the request string as iipsrv does (`URI_MAP` paths, the method checks,
//! `QUERY_STRING` or a POST body) and runs it through the IIP command loop ([`iip`]). The
//! `IIIF=`, `Zoomify=` and `DeepZoom=` commands hand over to their own modules. Each protocol
//! fills the protocol-neutral [`crate::view::View`] and asks the layers below for the work.

pub mod deepzoom;
mod error;
pub mod iiif;
pub mod iip;
mod uri_map;
pub mod zoomify;

pub use error::error_response;
use uri_map::map_uri;

use crate::error::Error;
use crate::http::{HeaderDefaults, Request, Response};
use crate::open_image::{OpenImage, open_image};
use crate::shared::Shared;

/// Where the request string came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestString {
    /// The request asked for nothing: the banner page.
    Empty,
    /// An IIP command string (query string, POST body or a mapped path).
    Commands { text: Vec<u8>, mapped: bool },
    /// A response decided before any command ran (204, 405, or a bare URI_MAP prefix).
    Answered(Response),
}

/// Obtain the request string (`server-and-config.md` §1.7).
pub fn request_string(shared: &Shared, req: &Request) -> RequestString {
    let d = &shared.headers();
    if let Some(map) = &shared.config().uri_map {
        let uri = req.param("REQUEST_URI").unwrap_or(b"");
        match map_uri(map, uri) {
            Some(Ok(text)) => {
                tracing::debug!("Request URI mapped to {}", String::from_utf8_lossy(&text));
                return RequestString::Commands { text, mapped: true };
            }
            Some(Err(e)) => return RequestString::Answered(error_response(d, &e)),
            None => {}
        }
    }
    match req.method() {
        b"OPTIONS" => {
            tracing::debug!("Sending HTTP 204 No Content");
            return RequestString::Answered(Response::header_only(d, 204));
        }
        b"GET" | b"POST" | b"HEAD" => {}
        other => {
            tracing::debug!(
                "Sending HTTP 405 Method Not Allowed for {}",
                String::from_utf8_lossy(other)
            );
            return RequestString::Answered(Response::header_only(d, 405));
        }
    }
    let mut text = req.param("QUERY_STRING").unwrap_or(b"").to_vec();
    if text.is_empty() {
        let len = req
            .param("CONTENT_LENGTH")
            .map(|v| crate::config::env::atoi(&String::from_utf8_lossy(v)).value)
            .unwrap_or(0);
        if len > 0 {
            let n = (len as usize).min(req.body.len());
            text = req.body[..n].to_vec();
            tracing::debug!(
                "HTTP {} request with contentLength {len}",
                String::from_utf8_lossy(req.method())
            );
        }
    }
    if text.is_empty() {
        RequestString::Empty
    } else {
        RequestString::Commands {
            text,
            mapped: false,
        }
    }
}

/// Answer one request. Runs on a worker thread.
pub fn respond(shared: &Shared, req: &Request) -> Response {
    match request_string(shared, req) {
        RequestString::Empty => Response::banner(200),
        RequestString::Answered(r) => r,
        RequestString::Commands { text, mapped } => {
            tracing::debug!("Full Request is {}", String::from_utf8_lossy(&text));
            let memcached = shared.memcached();
            // As iipsrv: no lookup when the client asks If-Modified-Since.
            if let Some(mc) = memcached.filter(|_| req.param("HTTP_IF_MODIFIED_SINCE").is_none()) {
                let hit = mc.get_fresh(&text, || image_mtime(shared, &text));
                if let Some(response) = hit.as_deref().and_then(Response::from_cgi_bytes) {
                    tracing::debug!("Memcached hit");
                    return response;
                }
            }
            let post = !mapped && req.method() == b"POST";
            let response = iip::run(shared, req, &text, post);
            if let Some(mc) = memcached {
                if cachable(&response) {
                    mc.set_owned(&text, response.to_cgi_bytes());
                }
            }
            response
        }
    }
}

/// Whether a response goes to memcached (`cache.md` §5): successful answers and IIIF 303s,
/// never info.json, errors, or header-only responses.
fn cachable(r: &Response) -> bool {
    match r.status() {
        200 => {
            !r.header("Content-Type")
                .is_some_and(|t| t.starts_with("application/ld+json"))
                && r.header("Content-Disposition") != Some("inline;filename=\"iipsrv.html\"")
        }
        303 => true,
        _ => false,
    }
}

/// The current mtime of the image a request string names (its first `FIF`, `IIIF`, `Zoomify`
/// or `DeepZoom` identifier; for a sequence, its default view), so that a memcached entry for a
/// changed image is not served.
fn image_mtime(shared: &Shared, text: &[u8]) -> Option<std::time::SystemTime> {
    use crate::source::resolve::{filter_traversal, image_key, url_decode};
    let key =
        iip::tokenise(text).find_map(|(name, arg)| match name.to_ascii_lowercase().as_slice() {
            b"fif" => Some(image_key(arg)),
            b"iiif" => {
                let id = match iiif::split(&url_decode(arg).0).ok()? {
                    iiif::Target::Base(id)
                    | iiif::Target::Info(id)
                    | iiif::Target::NoParameters(id)
                    | iiif::Target::Image { id, .. } => id,
                };
                let (id, _) = iiif::split_page(&id, shared.config().iiif_delimiter.as_bytes());
                Some(filter_traversal(id.to_vec()))
            }
            b"zoomify" => match zoomify::split(arg) {
                zoomify::Target::Properties(id) | zoomify::Target::Tile { id, .. } => {
                    Some(image_key(id))
                }
                zoomify::Target::Malformed(_) => None,
            },
            b"deepzoom" => match deepzoom::split(arg) {
                deepzoom::Target::Dzi(id) | deepzoom::Target::Tile { id, .. } => {
                    Some(image_key(id))
                }
                deepzoom::Target::Malformed(_) => None,
            },
            _ => None,
        })?;
    // A file, or a sequence's default view (the file whose mtime is `Last-Modified`).
    crate::source::resolve::find(shared.config(), &key)
        .ok()
        .map(|found| found.mtime())
}

/// The part of a viewer request (Zoomify, DeepZoom) before its tile: open the image named by
/// the raw identifier `id`, answer 304 when If-Modified-Since matches, and answer the XML
/// document when `document` gives one (it is called with the image's description).
/// `Ok(Err(..))` is a finished answer; `Ok(Ok(..))` the image and headers for the tile.
pub(crate) fn open_for_viewer(
    s: &mut iip::Session<'_>,
    id: &[u8],
    document: impl FnOnce(&crate::source::ImageInfo) -> Option<String>,
) -> Result<Result<(OpenImage, HeaderDefaults), Response>, Error> {
    let image = open_image(s.shared, &crate::source::resolve::image_key(id))?;
    s.image = Some(image.clone());
    let headers = s.shared.headers().clone();
    if iiif::unmodified(s, &image) {
        return Ok(Err(iiif::not_modified(&headers)));
    }
    if let Some(xml) = document(image.info()) {
        return Ok(Err(Response::content(
            &headers,
            "xml",
            &image.last_modified,
            false,
            None,
            xml,
        )));
    }
    Ok(Ok((image, headers)))
}

/// One tile of a viewer protocol's own grid (DeepZoom levels, Zoomify tiers): `ts`-pixel
/// tiles of the image scaled down by `factor`; the tile at (`col`, `row`) is `out_w`×`out_h`.
/// When the file stores that scale (`level`, an index into `ImageInfo::levels`) with the same
/// tile size and the stored tile has exactly the expected size, it is served from the tile path
/// (cache, pass-through); otherwise the tile's area of the full image is exported at that size.
#[allow(clippy::too_many_arguments)]
pub(crate) fn grid_tile(
    s: &iip::Session<'_>,
    image: &OpenImage,
    headers: &HeaderDefaults,
    level: Option<usize>,
    factor: u64,
    (col, row): (u32, u32),
    ts: u32,
    (out_w, out_h): (u32, u32),
) -> Result<Response, Error> {
    use crate::encode::OutputFormat;
    let info = image.info();
    if let Some(i) = level {
        let stored = info.levels[i];
        let (lx, ly) = stored.tiles();
        let r = (info.levels.len() - 1 - i) as u32;
        if stored.tile_width == ts && stored.tile_height == ts && col < lx && row < ly {
            let t = row * lx + col;
            // A level rounded differently from the client's grid has edge tiles one pixel
            // off: those are made to size like unstored levels.
            if stored.tile_size(t) == Some((out_w, out_h)) {
                return iiif::tile_response(
                    s.shared,
                    image,
                    &s.view,
                    r,
                    t,
                    OutputFormat::Jpeg,
                    headers,
                );
            }
        }
    }
    let (fx, fy) = (
        col as u64 * ts as u64 * factor,
        row as u64 * ts as u64 * factor,
    );
    let (fw, fh) = (info.width as u64, info.height as u64);
    let mut view = s.view.clone();
    view.region = Some(crate::view::Region::Pixels {
        x: fx as u32,
        y: fy as u32,
        w: (ts as u64 * factor).min(fw - fx) as u32,
        h: (ts as u64 * factor).min(fh - fy) as u32,
    });
    view.width = Some(out_w);
    view.height = Some(out_h);
    iiif::export_region(s.shared, image, &view, OutputFormat::Jpeg, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn shared(pairs: &[(&str, &str)]) -> Shared {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (c, _) =
            Config::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        Shared::new(c)
    }

    #[test]
    fn methods() {
        let a = shared(&[]);
        let r = respond(
            &a,
            &Request::from_pairs([("REQUEST_METHOD", "OPTIONS"), ("QUERY_STRING", "x")]),
        );
        assert_eq!(r.status(), 204);
        let r = respond(
            &a,
            &Request::from_pairs([("REQUEST_METHOD", "DELETE"), ("QUERY_STRING", "x")]),
        );
        assert_eq!(r.status(), 405);
        let r = respond(&a, &Request::from_pairs([("QUERY_STRING", "")]));
        assert_eq!(r.status(), 200);
        assert!(r.body.starts_with(b"<!DOCTYPE html>"));
    }

    #[test]
    fn post_body_is_the_request_string() {
        let a = shared(&[]);
        let mut req = Request::from_pairs([("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "12")]);
        req.body = b"OBJ=IIP,1.0&junk".to_vec();
        match request_string(&a, &req) {
            RequestString::Commands { text, mapped } => {
                assert_eq!(text, b"OBJ=IIP,1.0&");
                assert!(!mapped);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mapped_requests_skip_method_checks() {
        let a = shared(&[("URI_MAP", "iiif=>IIIF")]);
        let req = Request::from_pairs([
            ("REQUEST_METHOD", "PUT"),
            ("REQUEST_URI", "/iiif/x/info.json"),
        ]);
        assert!(matches!(
            request_string(&a, &req),
            RequestString::Commands { mapped: true, .. }
        ));
        let req = Request::from_pairs([("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/iiif")]);
        match request_string(&a, &req) {
            RequestString::Answered(r) => assert_eq!(r.status(), 400),
            other => panic!("unexpected {other:?}"),
        }
    }
}
