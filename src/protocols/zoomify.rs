//! Zoomify (`protocols-zoomify-deepzoom.md`): `ImageProperties.xml` and `TileGroupN/z-x-y.jpg`.
//!
//! This module splits the identifier and opens the image; the XML and tiles are filled in by
//! the viewer-protocol work (issue 4).

use super::iip::{Session, open_image};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::source::resolve;

/// Split `Zoomify=<id>/ImageProperties.xml` or `<id>/TileGroupN/z-x-y.jpg` into the identifier.
pub fn identifier(decoded: &[u8]) -> Result<&[u8]> {
    let last = decoded
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or_else(|| Error::bad_request("Zoomify: malformed request"))?;
    if &decoded[last + 1..] == b"ImageProperties.xml" {
        return Ok(&decoded[..last]);
    }
    let group = decoded[..last]
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or_else(|| Error::bad_request("Zoomify: malformed request"))?;
    Ok(&decoded[..group])
}

/// Handle `Zoomify=<arg>`.
pub fn handle(s: &mut Session<'_>, arg: &[u8]) -> Result<Response> {
    let (decoded, _) = resolve::url_decode(arg);
    let id = resolve::filter_traversal(identifier(&decoded)?.to_vec());
    s.image = Some(open_image(s.app, &id)?);
    Err(Error::not_implemented(
        "Zoomify is not available in this build yet",
    ))
}
