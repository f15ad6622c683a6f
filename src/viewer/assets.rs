//! The files the viewer page loads, compiled into the binary (see `assets/README.md`).
//!
//! Each is served under a name that changes whenever its bytes change: OpenSeadragon's carries
//! its version ([`OSD_VERSION`]), the page's own script a digest of its content. A browser may
//! therefore keep them for a year without asking again (`immutable`); the `ETag` (a digest of
//! the bytes) answers the revalidations that happen anyway (`If-None-Match` → 304).

use std::sync::OnceLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::SERVER_HEADER;
use crate::http::Response;
use crate::http::response::status_value;

/// The vendored OpenSeadragon release (npm package `openseadragon`).
pub const OSD_VERSION: &str = "6.1.1";
/// `Cache-Control` of the assets: a year, and no revalidation (the names are versioned).
const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Hex digits of the SHA-256 digest used in ETags and in the script's name.
const DIGEST_HEX_DIGITS: usize = 16;

const OSD_JS: &[u8] = include_bytes!("assets/openseadragon-6.1.1.min.js");
const OSD_LICENSE: &[u8] = include_bytes!("assets/openseadragon-LICENSE.txt");
const VIEWER_JS: &[u8] = include_bytes!("assets/viewer.js");

/// One served file.
#[derive(Debug)]
pub struct Asset {
    /// The name under `/viewer/assets/`.
    pub name: String,
    content_type: &'static str,
    body: &'static [u8],
    /// The quoted entity tag.
    etag: String,
}

/// The first hex digits of the SHA-256 of `bytes`.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..DIGEST_HEX_DIGITS]
        .to_string()
}

/// Every asset, built once.
fn table() -> &'static [Asset] {
    static TABLE: OnceLock<Vec<Asset>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let asset = |name: String, content_type, body: &'static [u8]| Asset {
            name,
            content_type,
            body,
            etag: format!("\"{}\"", digest(body)),
        };
        vec![
            asset(
                format!("openseadragon-{OSD_VERSION}.min.js"),
                "text/javascript; charset=utf-8",
                OSD_JS,
            ),
            asset(
                format!("openseadragon-{OSD_VERSION}-LICENSE.txt"),
                "text/plain; charset=utf-8",
                OSD_LICENSE,
            ),
            asset(
                format!("viewer-{}.js", digest(VIEWER_JS)),
                "text/javascript; charset=utf-8",
                VIEWER_JS,
            ),
        ]
    })
}

/// The asset named `name` (exactly; no path resolution of any kind).
pub fn find(name: &str) -> Option<&'static Asset> {
    table().iter().find(|a| a.name == name)
}

/// The names of OpenSeadragon's script, its licence and the page's script.
pub fn names() -> [&'static str; 3] {
    let t = table();
    [&t[0].name, &t[1].name, &t[2].name]
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, lists, `*`).
fn matches(if_none_match: &[u8], etag: &str) -> bool {
    String::from_utf8_lossy(if_none_match)
        .split(',')
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        })
}

impl Asset {
    /// The file, or 304 when `If-None-Match` names it.
    pub fn response(&self, if_none_match: Option<&[u8]>) -> Response {
        let mut r = Response::empty();
        let fresh = if_none_match.is_some_and(|v| matches(v, &self.etag));
        if fresh {
            r.push("Status", status_value(304));
        }
        r.push("Server", SERVER_HEADER);
        r.push("ETag", self.etag.clone());
        r.push("Cache-Control", ASSET_CACHE_CONTROL);
        if !fresh {
            r.push("Content-Type", self.content_type);
            r.push("X-Content-Type-Options", "nosniff");
            r.body = Bytes::from_static(self.body);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openseadragon_is_served_under_its_version_with_a_long_cache_life() {
        let name = format!("openseadragon-{OSD_VERSION}.min.js");
        let r = find(&name).unwrap().response(None);
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(r.header("Cache-Control"), Some(ASSET_CACHE_CONTROL));
        assert!(r.header("ETag").unwrap().starts_with('"'));
        assert!(
            String::from_utf8_lossy(&r.body[..200])
                .contains(&format!("openseadragon {OSD_VERSION}")),
            "the vendored file is the version its name says"
        );
    }

    #[test]
    fn the_licence_is_served() {
        let r = find(&format!("openseadragon-{OSD_VERSION}-LICENSE.txt"))
            .unwrap()
            .response(None);
        assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
        assert!(String::from_utf8_lossy(&r.body).contains("OpenSeadragon contributors"));
    }

    #[test]
    fn the_page_script_name_follows_its_content() {
        let [_, _, script] = names();
        assert_eq!(script, format!("viewer-{}.js", digest(VIEWER_JS)));
        assert!(find(script).is_some());
        assert!(find("viewer.js").is_none());
    }

    #[test]
    fn a_matching_if_none_match_answers_304_without_body() {
        let asset = find(names()[0]).unwrap();
        for v in [
            asset.etag.clone(),
            format!("W/{}", asset.etag),
            format!("\"other\", {}", asset.etag),
            "*".to_string(),
        ] {
            let r = asset.response(Some(v.as_bytes()));
            assert_eq!(r.status(), 304, "{v}");
            assert!(r.body.is_empty());
            assert_eq!(r.header("ETag"), Some(asset.etag.as_str()));
        }
        let r = asset.response(Some(b"\"other\""));
        assert_eq!(r.status(), 200);
        assert_eq!(r.body.len(), OSD_JS.len());
    }
}
