//! The request string, obtained as iipsrv does (`docs/behaviour/server-and-config.md` §1.7): a `URI_MAP`
//! path, else the method checks (204 for OPTIONS, 405 for methods other than GET, POST and
//! HEAD), then `QUERY_STRING`, or the body of a POST form.

use super::error::error_response;
use super::uri_map::map_uri;
use crate::http::{Request, Response};
use crate::shared::Shared;

/// Where the request string came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestString {
    /// The request asked for nothing: the banner page.
    Empty,
    /// An IIP command string (query string, POST body or a mapped path).
    Commands { text: Vec<u8>, mapped: bool },
    /// A response decided before any command ran (204, 405, or a bare URI_MAP prefix).
    Answered(Response),
}

/// Obtain the request string (`docs/behaviour/server-and-config.md` §1.7).
pub(crate) fn request_string(shared: &Shared, req: &Request) -> RequestString {
    let d = &shared.headers();
    if let Some(map) = &shared.config().http.uri_map {
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
            .map(|v| crate::text::number::atoi(&String::from_utf8_lossy(v)).value)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::test_util::shared_with;

    #[test]
    fn post_body_is_the_request_string() {
        let a = shared_with(&[]);
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
        let a = shared_with(&[("URI_MAP", "iiif=>IIIF")]);
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
