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
//! The answer is an [`Answer`]: a response, or heavy work (a large region export) that the
//! application schedules on its own pool ([`answer`](mod@answer) says how requests are classified).
//!
//! Inside this module, calls go one way: `mod.rs` → `iip` → `iiif`, `zoomify`, `deepzoom` →
//! `grid` → `responses`, `context`, `error`, `uri_map`, `answer` (the leaves); [`cors`]
//! rewrites the finished response; no child calls back into `mod.rs`.

mod answer;
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

pub use answer::{Answer, Deferred};

use crate::http::{Request, Response};
use crate::shared::Shared;
use grid::Grid;
use request_string::{RequestString, request_string};

/// Answer one request, doing any heavy work right here.
pub fn respond(shared: &Shared, req: &Request) -> Response {
    answer(shared, req).into_response(shared)
}

/// Answer one request, or hand back its heavy work ([`Answer::Heavy`]), with the per-request
/// CORS origin ([`cors`]) either way. Runs on a worker thread; decodes nothing when the answer
/// is heavy.
pub fn answer(shared: &Shared, req: &Request) -> Answer {
    match commands(shared, req) {
        Answer::Ready(r) => Answer::Ready(cors::echo_origin(
            &shared.config().http.cors_origins,
            req,
            r,
        )),
        Answer::Heavy(work) => {
            let req = req.clone();
            Answer::Heavy(work.then(move |shared, r| {
                cors::echo_origin(&shared.config().http.cors_origins, &req, r)
            }))
        }
    }
}

/// The answer before the per-request CORS origin.
fn commands(shared: &Shared, req: &Request) -> Answer {
    match request_string(shared, req) {
        RequestString::Empty => Response::banner(200).into(),
        RequestString::Answered(r) => r.into(),
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
                    return response.into();
                }
            }
            let post = !mapped && req.method() == b"POST";
            let answer = iip::run(shared, req, &text, post);
            // The image the request opened is noted on this thread: known now, stored later.
            let image = crate::metrics::note::identifier_now();
            let finish = move |shared: &Shared, req: &Request, mut response: Response| {
                validators::add_content_etag(&mut response);
                if let Some(mc) = shared.memcached() {
                    if cachable(&response) {
                        mc.set_for_image(&text, image, response.to_cgi_bytes());
                    }
                }
                validators::conditional(req, shared.headers(), response)
            };
            match answer {
                Answer::Ready(r) => Answer::Ready(finish(shared, req, r)),
                Answer::Heavy(work) => {
                    let req = req.clone();
                    Answer::Heavy(work.then(move |shared, r| finish(shared, &req, r)))
                }
            }
        }
    }
}

/// The response to a heavy request that was not admitted (the queue was full, or it waited
/// `retry_after_secs`): 503 with `Retry-After`, plain text, CORS lines as for other errors.
pub fn busy(shared: &Shared, retry_after_secs: u64) -> Response {
    error::busy_response(shared.headers(), retry_after_secs)
}

/// Whether a response goes to memcached (`docs/behaviour/cache.md` §5): successful answers and IIIF 303s,
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

    /// Tiles, metadata and small exports are answered at once; a large export, whatever the
    /// protocol, is handed back as heavy work with its estimated memory, and decodes nothing
    /// until it is run.
    #[test]
    fn requests_are_classified_by_the_estimated_cost_of_their_plan() {
        let prefix = format!("{}/fixtures/", env!("CARGO_MANIFEST_DIR"));
        let shared = shared_with(&[("FILESYSTEM_PREFIX", &prefix)]);
        let ask = |q: &str| answer(&shared, &Request::from_pairs([("QUERY_STRING", q)]));
        for light in [
            "FIF=sample.tif&JTL=2,0",
            "FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size",
            "IIIF=sample.tif/info.json",
            "FIF=sample.tif&WID=200&CVT=jpeg",
            "IIIF=sample.tif/full/!200,200/0/default.jpg",
            "DeepZoom=sample.tif_files/10/0_0.jpg",
        ] {
            assert!(matches!(ask(light), Answer::Ready(_)), "{light}");
        }
        for heavy in [
            "FIF=sample.tif&WID=1000&CVT=png",
            "IIIF=sample.tif/full/1000,/0/default.jpg",
            "IIIF=sample.tif/0,0,1000,1000/1000,/0/default.png",
        ] {
            let Answer::Heavy(work) = ask(heavy) else {
                panic!("{heavy} is light")
            };
            assert!(work.bytes() > answer::LIGHT_EXPORT_BYTES, "{heavy}");
            let r = work.run(&shared);
            assert_eq!(r.status(), 200, "{heavy}");
            assert!(r.header("Content-Disposition").is_some());
        }
        // Its errors become their responses when it runs, as the session makes them.
        let Answer::Heavy(work) = ask("FIF=sample.tif&WID=1000&CVT=jpeg") else {
            panic!("light")
        };
        assert_eq!(
            work.then(|_, _| Response::banner(500))
                .run(&shared)
                .status(),
            500
        );
    }
}
