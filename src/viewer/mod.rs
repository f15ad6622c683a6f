//! The viewer page of the `--http` listener: `GET /viewer/IDENTIFIER` shows the image in
//! OpenSeadragon through the IIIF, DeepZoom, Zoomify or IIP tile source (a select box, or
//! `?protocol=iiif|dzi|zoomify|iip` in the page's URL), so that a person can look at what this
//! server serves. The FastCGI transport never reaches this module: iipsrv has no such page, and
//! its paths keep their meaning there.
//!
//! # Routes (a request path, before any `URI_MAP` or query-string handling)
//!
//! | path | answer |
//! |---|---|
//! | not `/viewer` and not under `/viewer/` | `None`: the request goes to the protocols |
//! | any of ours, method not GET or HEAD | 405 with `Allow: GET, HEAD` |
//! | `/viewer`, `/viewer/` | 404 naming the form `/viewer/IDENTIFIER` |
//! | `/viewer/assets/NAME`, NAME one of [`assets`] | the file, immutable (its name is versioned) |
//! | any other `/viewer/assets/...` (`..` included) | 404: nothing outside the table is served |
//! | `/viewer/IDENTIFIER` longer than [`MAX_IDENTIFIER_BYTES`] | 414 |
//! | `/viewer/IDENTIFIER` | the page ([`page`]), whether the image exists or not: the page asks the server for the image's description and shows its error |
//!
//! HEAD is answered like GET (the HTTP transport sends no body for it). The page and the assets
//! are compiled into the binary; the page links to them, and to the server's root, with
//! relative URLs, so that it also works under a path prefix behind a proxy.

pub(crate) mod assets;
pub(crate) mod page;

use crate::SERVER_HEADER;
use crate::http::Response;
use crate::http::response::status_value;

/// The route's prefix (without the trailing slash).
const PREFIX: &str = "/viewer";
/// Where the assets are, under [`PREFIX`].
const ASSETS: &str = "/viewer/assets/";
/// The longest identifier (in the path, percent-encoded) a page is made for; longer ones get 414.
/// The page embeds it twice, escaped, so this bounds the page's size.
pub const MAX_IDENTIFIER_BYTES: usize = 4096;

/// Answer a request of the HTTP listener when its path is the viewer's; `None` otherwise.
/// `path` is the request's path as sent (percent-encoded, without the query string);
/// `if_none_match` the request's `If-None-Match` header.
pub fn respond(method: &str, path: &str, if_none_match: Option<&[u8]>) -> Option<Response> {
    let rest = match path.strip_prefix(PREFIX)? {
        "" => "",
        r => r.strip_prefix('/')?,
    };
    let response = if method != "GET" && method != "HEAD" {
        let mut r = error(405, "The viewer answers GET and HEAD only");
        r.push("Allow", "GET, HEAD");
        r
    } else if let Some(name) = path.strip_prefix(ASSETS) {
        match assets::find(name) {
            Some(asset) => asset.response(if_none_match),
            None => error(404, "No such viewer asset"),
        }
    } else if rest.is_empty() {
        error(404, "Give an image: /viewer/IDENTIFIER")
    } else if rest.len() > MAX_IDENTIFIER_BYTES {
        error(414, "The identifier is too long for the viewer")
    } else {
        page::page(rest)
    };
    tracing::debug!("Viewer: {method} {path}: {}", response.status());
    Some(response)
}

/// An error answer with a plain-text body.
fn error(code: u16, message: &'static str) -> Response {
    let mut r = Response::empty();
    r.push("Status", status_value(code));
    r.push("Server", SERVER_HEADER);
    r.push("Content-Type", "text/plain; charset=utf-8");
    r.push("Cache-Control", "no-cache");
    r.body = message.into();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response> {
        respond("GET", path, None)
    }

    #[test]
    fn other_paths_are_not_the_viewers() {
        for path in [
            "/",
            "/viewers/a.tif",
            "/viewerx",
            "/iiif/viewer/a.tif",
            "/fcgi-bin/iipsrv.fcgi",
        ] {
            assert!(get(path).is_none(), "{path}");
        }
    }

    #[test]
    fn a_page_is_served_for_an_identifier() {
        let r = get("/viewer/sample.tif").unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
        assert!(String::from_utf8_lossy(&r.body).contains("sample.tif"));
    }

    #[test]
    fn the_bare_prefix_names_the_form() {
        for path in ["/viewer", "/viewer/"] {
            let r = get(path).unwrap();
            assert_eq!(r.status(), 404, "{path}");
            assert!(String::from_utf8_lossy(&r.body).contains("/viewer/IDENTIFIER"));
        }
    }

    #[test]
    fn methods_other_than_get_and_head_are_refused() {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = respond(method, "/viewer/sample.tif", None).unwrap();
            assert_eq!(r.status(), 405, "{method}");
            assert_eq!(r.header("Allow"), Some("GET, HEAD"));
        }
        assert_eq!(
            respond("HEAD", "/viewer/sample.tif", None).unwrap(),
            get("/viewer/sample.tif").unwrap()
        );
    }

    #[test]
    fn unknown_and_traversing_asset_paths_are_not_found() {
        for path in [
            "/viewer/assets/",
            "/viewer/assets/../../Cargo.toml",
            "/viewer/assets/..%2f..%2fCargo.toml",
            "/viewer/assets/viewer.html",
            "/viewer/assets/openseadragon-0.0.0.min.js",
            "/viewer/assets/mod.rs",
        ] {
            let r = get(path).unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
    }

    #[test]
    fn an_overlong_identifier_is_refused() {
        let path = format!("/viewer/{}", "a".repeat(MAX_IDENTIFIER_BYTES + 1));
        assert_eq!(get(&path).unwrap().status(), 414);
        let path = format!("/viewer/{}", "a".repeat(MAX_IDENTIFIER_BYTES));
        assert_eq!(get(&path).unwrap().status(), 200);
    }
}
