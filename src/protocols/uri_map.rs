//! `URI_MAP`: a request path such as `/iiif/x.tif/info.json` becomes the command string
//! `IIIF=x.tif/info.json`, as upstream maps it.

use crate::config::UriMap;
use crate::error::Error;

/// Match `REQUEST_URI` against the URI map: the prefix must occur right after the leading `/`
/// (no segment check, as upstream). Returns the command string, or an error for a URI that is
/// exactly the prefix (upstream: banner).
pub(crate) fn map_uri(map: &UriMap, uri: &[u8]) -> Option<Result<Vec<u8>, Error>> {
    let prefix = map.prefix.as_bytes();
    let matches = prefix.is_empty() || (uri.len() > 1 && uri[1..].starts_with(prefix));
    if !matches {
        return None;
    }
    let skip = if prefix.is_empty() {
        1
    } else {
        prefix.len() + 2
    };
    if uri.len() < skip {
        return Some(Err(Error::invalid(
            "Request URI is shorter than the URI map prefix",
        )));
    }
    let rest = &uri[skip..];
    let rest = match rest.iter().position(|&b| b == b'?') {
        Some(q) => &rest[..q],
        None => rest,
    };
    let mut s = Vec::with_capacity(map.command.len() + 1 + rest.len());
    s.extend_from_slice(map.command.as_bytes());
    s.push(b'=');
    s.extend_from_slice(rest);
    Some(Ok(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a URI maps to.
    #[derive(Debug, PartialEq)]
    enum Mapped {
        Not,
        Error,
        To(Vec<u8>),
    }

    fn mapped(prefix: &str, uri: &[u8]) -> Mapped {
        let map = UriMap {
            prefix: prefix.into(),
            protocol: "IIIF".into(),
            command: "iiif",
        };
        match map_uri(&map, uri) {
            None => Mapped::Not,
            Some(Err(_)) => Mapped::Error,
            Some(Ok(text)) => Mapped::To(text),
        }
    }

    #[test]
    fn uri_map_rules() {
        let to = |s: &[u8]| Mapped::To(s.to_vec());
        assert_eq!(
            mapped("iiif", b"/iiif/a/b.tif/info.json"),
            to(b"iiif=a/b.tif/info.json")
        );
        // No segment check, as upstream; the query is dropped.
        assert_eq!(mapped("iiif", b"/iiifx/foo?x=1"), to(b"iiif=/foo"));
        assert_eq!(mapped("iiif", b"/iiif"), Mapped::Error);
        assert_eq!(mapped("iiif", b"/iiif/"), to(b"iiif="));
        assert_eq!(mapped("iiif", b"/other/x"), Mapped::Not);
        assert_eq!(mapped("", b"/x.tif/info.json"), to(b"iiif=x.tif/info.json"));
    }
}
