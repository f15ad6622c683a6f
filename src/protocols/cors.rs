//! `IIPSRV_CORS_ORIGINS` (ours): a request whose `Origin` is listed is answered with that
//! origin as `Access-Control-Allow-Origin` (instead of the `CORS` value), so that several
//! sites may read the images with credentials-free CORS without `*`.
//!
//! # Rule
//!
//! Only responses that carry the CORS lines (`CORS` is set and the response type has them)
//! change:
//!
//! - `Origin` is one of the listed origins (byte for byte): `Access-Control-Allow-Origin:
//!   <Origin>`;
//! - any other or no `Origin`: the `CORS` value stays;
//! - either way `Vary: Origin` is appended, because the response depends on the header and a
//!   shared cache (a CDN, a browser's cache) must not serve one origin's copy to another.
//!
//! The rewrite happens after memcached: an entry is stored with the `CORS` value and rewritten
//! on the way out like a fresh response. Without the variable nothing changes (iipsrv's
//! headers, byte for byte).

use crate::http::{Request, Response};

/// The header the rule rewrites.
const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";

/// Apply the rule to `response` for `req`, with the listed `origins`.
pub(crate) fn echo_origin(origins: &[String], req: &Request, mut response: Response) -> Response {
    if origins.is_empty() || response.header(ALLOW_ORIGIN).is_none() {
        return response;
    }
    let asked = req.param("HTTP_ORIGIN").unwrap_or_default();
    if let Some(origin) = origins.iter().find(|o| o.as_bytes() == asked) {
        response.set_header(ALLOW_ORIGIN, origin.clone());
    }
    response.push("Vary", "Origin");
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HeaderDefaults;

    fn with_cors() -> Response {
        let d = HeaderDefaults {
            cors: Some("https://main.example".into()),
            cache_control: "max-age=86400".into(),
        };
        Response::plain_error(&d, 404, "x")
    }

    fn request(origin: Option<&str>) -> Request {
        let mut pairs = vec![("QUERY_STRING", "FIF=x.tif")];
        if let Some(o) = origin {
            pairs.push(("HTTP_ORIGIN", o));
        }
        Request::from_pairs(pairs)
    }

    fn listed() -> Vec<String> {
        vec!["https://a.example".into(), "https://b.example".into()]
    }

    #[test]
    fn a_listed_origin_is_echoed_with_vary() {
        let r = echo_origin(&listed(), &request(Some("https://b.example")), with_cors());
        assert_eq!(r.header(ALLOW_ORIGIN), Some("https://b.example"));
        assert_eq!(r.header("Vary"), Some("Origin"));
    }

    #[test]
    fn another_origin_gets_the_cors_value_and_vary() {
        for origin in [
            Some("https://evil.example"),
            Some("https://a.example.evil"),
            None,
        ] {
            let r = echo_origin(&listed(), &request(origin), with_cors());
            assert_eq!(r.header(ALLOW_ORIGIN), Some("https://main.example"));
            assert_eq!(r.header("Vary"), Some("Origin"));
        }
    }

    #[test]
    fn without_a_list_or_cors_lines_nothing_changes() {
        let r = echo_origin(&[], &request(Some("https://a.example")), with_cors());
        assert_eq!(r, with_cors());
        let plain = Response::plain_error(&HeaderDefaults::default(), 404, "x");
        let r = echo_origin(
            &listed(),
            &request(Some("https://a.example")),
            plain.clone(),
        );
        assert_eq!(r, plain);
    }
}
