//! IIIF Image API 2 and 3 (`protocols-iiif.md`): `IIIF=` arguments and URI_MAP paths.
//!
//! This module splits the identifier from the parameters and opens the image; info.json and
//! image requests are filled in by the IIIF work (issue 4).

use super::iip::{Session, open_image};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::source::resolve;

/// What a IIIF argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No `/` at all: the base URI, redirected to its info.json.
    Base(Vec<u8>),
    /// `{id}/info.json`.
    Info(Vec<u8>),
    /// `{id}/{region}/{size}/{rotation}/{quality}.{format}`.
    Image { id: Vec<u8>, params: Vec<u8> },
}

/// Split a decoded IIIF argument (§1.2, without upstream's wrap-around bug).
pub fn split(decoded: &[u8]) -> Result<Target> {
    let Some(last) = decoded.iter().rposition(|&b| b == b'/') else {
        return Ok(Target::Base(decoded.to_vec()));
    };
    let suffix = &decoded[last + 1..];
    if suffix.starts_with(b"info") {
        return if suffix == b"info.json" {
            Ok(Target::Info(decoded[..last].to_vec()))
        } else {
            Err(Error::bad_request("IIIF: too few parameters"))
        };
    }
    let mut end = last;
    for _ in 0..3 {
        match decoded[..end].iter().rposition(|&b| b == b'/') {
            Some(p) => end = p,
            None => return Err(Error::bad_request("IIIF: Not enough parameters")),
        }
    }
    Ok(Target::Image {
        id: decoded[..end].to_vec(),
        params: decoded[end + 1..].to_vec(),
    })
}

/// Handle `IIIF=<arg>`.
pub fn handle(s: &mut Session<'_>, arg: &[u8]) -> Result<Response> {
    let (decoded, _) = resolve::url_decode(arg);
    let id = match split(&decoded)? {
        Target::Base(id) | Target::Info(id) | Target::Image { id, .. } => id,
    };
    let image = open_image(s.app, &resolve::filter_traversal(id))?;
    s.image = Some(image);
    Err(Error::not_implemented(
        "IIIF is not available in this build yet",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(split(b"img").unwrap(), Target::Base(b"img".to_vec()));
        assert_eq!(
            split(b"a/b.tif/info.json").unwrap(),
            Target::Info(b"a/b.tif".to_vec())
        );
        assert!(split(b"a/b.tif/infox").is_err());
        assert_eq!(
            split(b"a/b.tif/full/max/0/default.jpg").unwrap(),
            Target::Image {
                id: b"a/b.tif".to_vec(),
                params: b"full/max/0/default.jpg".to_vec()
            }
        );
        assert!(split(b"images/x.tif").is_err());
    }
}
