//! DeepZoom (`protocols-zoomify-deepzoom.md`): `<id>.dzi` and `<id>_files/level/col_row.jpg`.
//!
//! This module splits the identifier and opens the image; the DZI and tiles are filled in by
//! the viewer-protocol work (issue 4).

use super::iip::{Session, open_image};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::source::resolve;

/// The identifier of a DeepZoom argument.
pub fn identifier(decoded: &[u8]) -> Result<&[u8]> {
    if let Some(id) = decoded.strip_suffix(b".dzi") {
        return Ok(id);
    }
    let pos = decoded
        .windows(7)
        .rposition(|w| w == b"_files/")
        .ok_or_else(|| Error::bad_request("DeepZoom: malformed request"))?;
    Ok(&decoded[..pos])
}

/// Handle `DeepZoom=<arg>`.
pub fn handle(s: &mut Session<'_>, arg: &[u8]) -> Result<Response> {
    let (decoded, _) = resolve::url_decode(arg);
    let id = resolve::filter_traversal(identifier(&decoded)?.to_vec());
    s.image = Some(open_image(s.app, &id)?);
    Err(Error::not_implemented(
        "DeepZoom is not available in this build yet",
    ))
}
