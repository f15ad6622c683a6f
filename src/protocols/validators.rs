//! HTTP caching validators: the `ETag` of image and document responses, and conditional
//! requests (`If-None-Match`; `If-Modified-Since` is read in [`super::context`]).
//!
//! # The entity tag
//!
//! Stable across restarts and across instances that serve the same files with the same
//! settings and version, and different whenever the bytes may differ:
//! - **images** (tiles and region exports, [`image_etag`]): SHA-256 of the server's seed
//!   (this version and the output settings: qualities, watermark, interpolation, ICC, size
//!   limits, JPEG2000 layers; `Shared::etag_seed`), the image key, the file's modification time in
//!   nanoseconds, and the normalised request: the whole view as parsed (region, size,
//!   rotation, processing, angles), what is served (tile and resolution, or the region
//!   options) and the output format. It is known before any pixel is decoded, so a matching
//!   `If-None-Match` is answered 304 without doing the work ([`super::responses`]).
//! - **documents** (info.json, DZI, Zoomify XML, OBJ, SPECTRA, PFL, TIL streams;
//!   [`add_content_etag`]): SHA-256 of the body. They are cheap to make; the body depends on
//!   more than the image (the request's host, IIIF version negotiation) and the hash covers
//!   all of it.
//!
//! The tag is 128 bits of the digest in hex, quoted. Image tags are weak (`W/"…"`): the same
//! request always shows the same image, but its bytes may differ — a stored JPEG tile is sent
//! as stored (codec pass-through) or, once its decoded pixels are cached, re-encoded
//! (`behaviour/cache.md` §4), and a watermark with `WATERMARK_PROBABILITY` below 1 lands at
//! random. Document tags are strong: they are the bytes' digest.
//!
//! # Conditional requests
//!
//! `If-None-Match` (any of its tags, compared weakly as RFC 9110 §13.1.2 asks, or `*`) → 304
//! with the `ETag`; when it is present, `If-Modified-Since` is not looked at (§13.2.2).

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::context::Context;
use crate::encode::OutputFormat;
use crate::http::{HeaderDefaults, Request, Response};
use crate::open_image::OpenImage;
use crate::render::RegionOptions;
use crate::shared::Shared;
use crate::view::View;

/// What of an image a response is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Served<'a> {
    /// Stored tile `tile` of IIP resolution `resolution`.
    Tile { resolution: u32, tile: u32 },
    /// A region export with these options.
    Export(&'a RegionOptions),
}

/// Feeds `Debug` output into the hash without building a string.
struct HashWriter<'a>(&'a mut Sha256);

impl std::fmt::Write for HashWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

fn tag(digest: &[u8], weak: bool) -> String {
    let mut out = String::with_capacity(36);
    if weak {
        out.push_str("W/");
    }
    out.push('"');
    for b in &digest[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out.push('"');
    out
}

/// The tag of an image response (see the module doc).
pub(crate) fn image_etag(
    shared: &Shared,
    image: &OpenImage,
    view: &View,
    served: Served<'_>,
    format: OutputFormat,
) -> String {
    let mut h = Sha256::new();
    h.update(shared.etag_seed());
    h.update((image.key.len() as u64).to_le_bytes());
    h.update(&image.key);
    let mtime = image
        .located
        .mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(mtime.to_le_bytes());
    match served {
        Served::Tile { resolution, tile } => {
            h.update(b"tile");
            h.update(resolution.to_le_bytes());
            h.update(tile.to_le_bytes());
        }
        Served::Export(options) => {
            let _ = write!(HashWriter(&mut h), "export {options:?}");
        }
    }
    let _ = write!(HashWriter(&mut h), "|{view:?}|{format:?}");
    tag(&h.finalize(), true)
}

/// The tag of a document: its body's digest.
pub(crate) fn content_etag(body: &[u8]) -> String {
    tag(&Sha256::digest(body), false)
}

/// The tags of `If-None-Match`, if the request has the header.
fn if_none_match(req: &Request) -> Option<&[u8]> {
    req.param("HTTP_IF_NONE_MATCH")
}

/// Whether `header` (an `If-None-Match` value) matches `etag`: `*`, or one of its tags equal
/// to `etag` once `W/` is ignored on both.
pub(crate) fn matches(header: &[u8], etag: &str) -> bool {
    let opaque = |t: &[u8]| -> Vec<u8> {
        let t = t.trim_ascii();
        t.strip_prefix(b"W/").unwrap_or(t).to_vec()
    };
    let ours = opaque(etag.as_bytes());
    header
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii() == b"*" || opaque(t) == ours)
}

/// The 304 for a matching `If-None-Match`: the header-only 304 with the CORS lines (as the
/// viewer protocols' 304 of `If-Modified-Since`) and the tag.
pub(crate) fn not_modified(headers: &HeaderDefaults, etag: &str) -> Response {
    let mut r = Response::header_only(headers, 304);
    r.add_cors(headers);
    r.set_etag(etag);
    r
}

/// The 304 to send instead of the response tagged `etag`, when the request's `If-None-Match`
/// matches it.
pub(crate) fn precondition(
    ctx: &Context<'_>,
    etag: &str,
    headers: &HeaderDefaults,
) -> Option<Response> {
    let header = if_none_match(ctx.req)?;
    matches(header, etag).then(|| not_modified(headers, etag))
}

/// Give a successful document response (one with `Last-Modified` and no `ETag` yet) the tag of
/// its body.
pub(crate) fn add_content_etag(response: &mut Response) {
    if response.status() == 200
        && response.header("ETag").is_none()
        && response.header("Last-Modified").is_some()
    {
        let etag = content_etag(&response.body);
        response.set_etag(&etag);
    }
}

/// Answer a matching `If-None-Match` with 304 instead of `response` (a tagged 200).
pub(crate) fn conditional(req: &Request, headers: &HeaderDefaults, response: Response) -> Response {
    let (Some(header), Some(etag)) = (if_none_match(req), response.header("ETag")) else {
        return response;
    };
    if response.status() == 200 && matches(header, etag) {
        let etag = etag.to_string();
        return not_modified(headers, &etag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "\"abc\"";
        assert!(matches(b"\"abc\"", etag));
        assert!(matches(b"W/\"abc\"", etag));
        assert!(matches(b"\"x\", \"abc\"", etag));
        assert!(matches(b"*", etag));
        assert!(matches(b"\"abc\"", "W/\"abc\""));
        assert!(!matches(b"\"abd\"", etag));
        assert!(!matches(b"abc", etag));
        assert!(!matches(b"", etag));
    }

    #[test]
    fn tags_are_quoted_hex() {
        let t = content_etag(b"body");
        assert_eq!(t.len(), 34);
        assert!(t.starts_with('"') && t.ends_with('"'));
        assert_eq!(t, content_etag(b"body"));
        assert_ne!(t, content_etag(b"Body"));
    }
}
