//! Protocols: from a request to a response.
//!
//! [`respond`] obtains the request string
//! ([`request_string()`](request_string::request_string): `URI_MAP` paths, the method checks,
//! `QUERY_STRING` or a POST body), answers from memcached when it can, and otherwise runs the
//! string through the IIP command loop ([`iip`]). The `IIIF=`, `Zoomify=` and `DeepZoom=`
//! commands hand over to their own modules, which see only the protocol-neutral
//! [`context::Context`]. Each protocol fills a [`crate::view::View`] and answers through the
//! shared image responses ([`responses`]: tiles, exports, 304) and the one error mapping
//! ([`error::error_response`]).
//!
//! Inside this module, calls go one way: `mod.rs` → `iip` → `iiif`, `zoomify`, `deepzoom` →
//! `grid` → `responses`, `context`, `error`, `uri_map` (the leaves); [`cors`] rewrites the
//! finished response; no child calls back into `mod.rs`.

mod context;
mod cors;
mod deepzoom;
mod error;
mod grid;
pub mod iiif;
mod iip;
mod request_string;
mod responses;
#[cfg(test)]
mod test_util;
mod uri_map;
mod validators;
mod zoomify;

use crate::http::{Request, Response};
use crate::shared::Shared;
use grid::Grid;
use request_string::{RequestString, request_string};

/// Answer one request. Runs on a worker thread.
pub fn respond(shared: &Shared, req: &Request) -> Response {
    let response = answer(shared, req);
    cors::echo_origin(&shared.config().http.cors_origins, req, response)
}

/// The response before the per-request CORS origin ([`cors`]).
fn answer(shared: &Shared, req: &Request) -> Response {
    match request_string(shared, req) {
        RequestString::Empty => Response::banner(200),
        RequestString::Answered(r) => r,
        RequestString::Commands { text, mapped } => {
            tracing::debug!("Full Request is {}", String::from_utf8_lossy(&text));
            let memcached = shared.memcached();
            // As iipsrv: no lookup when the client asks If-Modified-Since (nor, here, when it
            // asks If-None-Match: both are answered by the protocols).
            let conditional = req.param("HTTP_IF_MODIFIED_SINCE").is_some()
                || req.param("HTTP_IF_NONE_MATCH").is_some();
            if let Some(mc) = memcached.filter(|_| !conditional) {
                if let Some(mut response) = mc.get_fresh(&text, || image_mtime(shared, &text)) {
                    tracing::debug!("Memcached hit");
                    // An entry iipsrv stored has no tag: the body's.
                    validators::add_content_etag(&mut response);
                    return response;
                }
            }
            let post = !mapped && req.method() == b"POST";
            let mut response = iip::run(shared, req, &text, post);
            validators::add_content_etag(&mut response);
            if let Some(mc) = memcached {
                if cachable(&response) {
                    let image = crate::metrics::note::identifier_now();
                    mc.set_for_image(&text, image, response.to_cgi_bytes());
                }
            }
            validators::conditional(req, shared.headers(), response)
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
                let (id, _) = iiif::split_page(&id, shared.config().iiif.delimiter.as_bytes());
                Some(filter_traversal(id.to_vec()))
            }
            b"zoomify" => grid_key(zoomify::Zoomify::split(arg)),
            b"deepzoom" => grid_key(deepzoom::DeepZoom::split(arg)),
            _ => None,
        })?;
    fn grid_key(target: grid::Target<'_>) -> Option<Vec<u8>> {
        match target {
            grid::Target::Malformed(_) => None,
            named => Some(image_key(named.id())),
        }
    }
    // A file, or a sequence's default view (the file whose mtime is `Last-Modified`).
    crate::source::resolve::find(shared.storage(), shared.config(), &key)
        .ok()
        .map(|found| found.mtime())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_util::shared_with;

    #[test]
    fn methods() {
        let a = shared_with(&[]);
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
}
