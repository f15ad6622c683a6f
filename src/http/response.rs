//! The response model: ordered CGI header lines and a body, plus one builder per response type
//! of `docs/behaviour/http-responses.md` §2. Each builder writes iipsrv's exact header order; the status line
//! sits where upstream writes it, and every error gets a real 4xx/5xx status (compatibility
//! policy; the differences are listed in `docs/compatibility.md`).

use std::borrow::Cow;

use bytes::Bytes;

use crate::SERVER_HEADER;

/// The parts of every response that come from the configuration.
#[derive(Debug, Clone, Default)]
pub struct HeaderDefaults {
    /// `CORS`: the value of `Access-Control-Allow-Origin`; `None` when unset or empty.
    pub cors: Option<String>,
    /// `CACHE_CONTROL` (default `max-age=86400`).
    pub cache_control: String,
}

/// A response: CGI header lines in order (a `Status` line among them, or none for 200) and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    headers: Vec<(Cow<'static, str>, String)>,
    /// The body bytes.
    pub body: Bytes,
}

/// The reason phrase for the statuses this server writes.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The value of a `Status:` line: the code and its reason phrase.
pub(crate) fn status_value(code: u16) -> String {
    format!("{code} {}", reason(code))
}

/// The fixed HTML page iipsrv sends for an empty request (and, upstream, for internal errors).
pub const BANNER_HTML: &str = concat!(
    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/><title>IIPImage Server</title>",
    "<meta name=\"DC.creator\" content=\"Ruven Pillay &lt;ruven@users.sourceforge.net&gt;\"/>",
    "<meta name=\"DC.title\" content=\"IIPImage Server\"/>",
    "<meta name=\"DC.source\" content=\"https://iipimage.sourceforge.io\"/></head>",
    "<body style=\"font-family:Helvetica,sans-serif; margin:4em\"><center><h1>IIPImage Server</h1>",
    "<h2>Version 1.3</h2><br/><h3>Project Home Page: <a href=\"https://iipimage.sourceforge.io\">",
    "https://iipimage.sourceforge.io</a></h3><br/><h4>by<br/>Ruven Pillay</h4></center></body></html>"
);

/// The file name iipsrv puts in the Content-Disposition of IIP error responses.
const IIP_ERROR_DISPOSITION: &str =
    "inline;filename=\"IIPisAMadGameClosedToOurUnderstanding.netfpx\"";

impl Response {
    /// An empty response with no headers; builders add lines in order.
    pub fn empty() -> Self {
        Response {
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Append a header line.
    pub fn push(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.push(name, value);
        self
    }

    fn cors(mut self, d: &HeaderDefaults) -> Self {
        if let Some(origin) = &d.cors {
            self.push("Access-Control-Allow-Origin", origin.clone());
            self.push("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            self.push(
                "Access-Control-Allow-Headers",
                "Accept, Content-Type, X-Requested-With, If-Modified-Since",
            );
            self.push("Access-Control-Max-Age", "86400");
        }
        self
    }

    fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The header lines in order.
    pub fn headers(&self) -> &[(Cow<'static, str>, String)] {
        &self.headers
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replace the value of a header, or append it.
    pub fn set_header(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value,
            None => self.headers.push((name.into(), value)),
        }
    }

    /// Set the `ETag` line: replaced if present, else right after `Last-Modified` (the
    /// validators together), else after `Cache-Control` (the header-only 304), else last.
    pub fn set_etag(&mut self, etag: &str) {
        if let Some(h) = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("ETag"))
        {
            h.1 = etag.to_string();
            return;
        }
        let after = ["Last-Modified", "Cache-Control"].iter().find_map(|name| {
            self.headers
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name))
        });
        let at = after.map_or(self.headers.len(), |i| i + 1);
        self.headers.insert(at, ("ETag".into(), etag.to_string()));
    }

    /// The HTTP status: from the `Status` line, 200 when there is none.
    pub fn status(&self) -> u16 {
        self.header("Status")
            .and_then(|v| v.split(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(200)
    }

    /// A response from stored CGI bytes (a memcached hit, ours or iipsrv's): header lines
    /// `Name: value` up to the blank line, then the body. `None` when the bytes are not a
    /// well-formed CGI response: a name that is not visible ASCII, a value that is not UTF-8
    /// or holds a control character (a CR, LF or NUL would change the framing of the answer),
    /// a `Content-Length` other than the body's length or a `Status` that is not a code
    /// 100–599. Whatever another process stored under our keys, only a well-formed answer is
    /// served. This is the one CGI parser of the crate.
    pub fn from_cgi_bytes(bytes: &[u8]) -> Option<Response> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let mut r = Response::empty();
        for line in bytes[..end].split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return None;
            }
            let colon = line.iter().position(|&b| b == b':')?;
            let name = &line[..colon];
            if name.is_empty() || name.iter().any(|b| !b.is_ascii_graphic()) {
                return None;
            }
            let name = std::str::from_utf8(name).ok()?;
            let value = std::str::from_utf8(line[colon + 1..].trim_ascii()).ok()?;
            r.push(name.to_string(), value.to_string());
        }
        r.body = Bytes::copy_from_slice(&bytes[end + 4..]);
        for (name, value) in &r.headers {
            let ok = if name.eq_ignore_ascii_case("Content-Length") {
                value.trim().parse::<usize>().ok() == Some(r.body.len())
            } else if name.eq_ignore_ascii_case("Status") {
                let code = value.split(' ').next().and_then(|c| c.parse::<u16>().ok());
                code.is_some_and(|c| (100..600).contains(&c))
            } else {
                true
            };
            if !ok {
                return None;
            }
        }
        Some(r)
    }

    /// The CGI bytes of the header block: each line `Name: value\r\n`, then `\r\n`.
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        for (n, v) in &self.headers {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The whole CGI response (headers and body), as stored in memcached.
    pub fn to_cgi_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    // ---- builders, one per response type of docs/behaviour/http-responses.md §2 ----

    /// §2.1: the IIP text response (OBJ results). `last_modified` is `None` before any FIF
    /// (upstream then writes an empty line that ends the headers early; we omit the line).
    pub fn iip_text(
        d: &HeaderDefaults,
        mime: &str,
        last_modified: Option<&str>,
        iip_line: bool,
        body: impl Into<Bytes>,
    ) -> Self {
        let mut r = Response::empty()
            .with("Server", SERVER_HEADER)
            .with("X-Powered-By", "IIPImage")
            .with("Cache-Control", d.cache_control.clone());
        if let Some(lm) = last_modified {
            r.push("Last-Modified", lm);
        }
        r = r.with("Content-Type", mime).cors(d);
        if iip_line {
            r.push("IIP", crate::IIPSRV_VERSION);
        }
        r.body(body)
    }

    /// §2.2: generated content (tiles, regions, XML, JSON). `content_length` only for the JTL
    /// family; `disposition` only for region exports (CVT, IIIF region path).
    pub fn content(
        d: &HeaderDefaults,
        content_type: &str,
        last_modified: &str,
        content_length: bool,
        disposition: Option<String>,
        body: impl Into<Bytes>,
    ) -> Self {
        let body: Bytes = body.into();
        let ct = if content_type.contains('/') {
            content_type.to_string()
        } else {
            format!("application/{content_type}")
        };
        let mut r = Response::empty()
            .with("Server", SERVER_HEADER)
            .with("X-Powered-By", "IIPImage")
            .with("Content-Type", ct)
            .with("Last-Modified", last_modified)
            .with("Cache-Control", d.cache_control.clone());
        if content_length && !body.is_empty() {
            r.push("Content-Length", body.len().to_string());
        }
        r = r.cors(d);
        if let Some(disp) = disposition {
            r.push("Content-Disposition", disp);
        }
        r.body(body)
    }

    /// §2.4: the IIIF base-URI redirect.
    pub fn see_other(location: &str) -> Self {
        Response::empty()
            .with("Status", status_value(303))
            .with("Location", location)
            .with("Server", SERVER_HEADER)
            .with("X-Powered-By", "IIPImage")
    }

    /// §2.5–2.7: a plain-text error (404, 400, 500; 501 for unsupported IIIF features).
    /// The message must be client-safe: no server paths.
    pub fn plain_error(d: &HeaderDefaults, code: u16, message: &str) -> Self {
        Response::empty()
            .with("Status", status_value(code))
            .with("Server", SERVER_HEADER)
            .with("Content-Type", "text/plain; charset=utf-8")
            .cors(d)
            .body(message.to_string())
    }

    /// §2.8: 204 (OPTIONS), 304 (If-Modified-Since) and 405 (other methods). CORS only on 204.
    pub fn header_only(d: &HeaderDefaults, code: u16) -> Self {
        let r = Response::empty()
            .with("Status", status_value(code))
            .with("Server", SERVER_HEADER)
            .with("X-Powered-By", "IIPImage")
            .with("Allow", "GET POST OPTIONS")
            .with("Cache-Control", d.cache_control.clone())
            .with("Content-Length", "0");
        if code == 204 { r.cors(d) } else { r }
    }

    /// §2.9: the HTML banner. `200` for an empty request; upstream sends it with no status for
    /// internal errors, we send a real error status in the same position.
    pub fn banner(code: u16) -> Self {
        Response::empty()
            .with("Server", SERVER_HEADER)
            .with("Content-Type", "text/html")
            .with("Content-Disposition", "inline;filename=\"iipsrv.html\"")
            .with("Status", status_value(code))
            .body(BANNER_HTML)
    }

    /// §2.10: IIP `Error/…` lines. Upstream leaves the status line empty (so HTTP 200 with the
    /// disposition in the body); we write `Status: 400 Bad Request` there, as iipsrv 1.1 did.
    pub fn iip_error(d: &HeaderDefaults, mime: &str, lines: &[u8]) -> Self {
        Response::empty()
            .with("Server", SERVER_HEADER)
            .with("Cache-Control", "no-cache")
            .with("Content-Type", mime)
            .cors(d)
            .with("Status", status_value(400))
            .with("Content-Disposition", IIP_ERROR_DISPOSITION)
            .body(lines.to_vec())
    }

    /// §2.11: the TIL stream header.
    pub fn til(d: &HeaderDefaults, last_modified: &str, body: impl Into<Bytes>) -> Self {
        Response::empty()
            .with("Server", SERVER_HEADER)
            .with("Content-Type", "application/vnd.netfpx")
            .with("Last-Modified", last_modified)
            .with("Cache-Control", d.cache_control.clone())
            .body(body)
    }

    /// A transport-level refusal (request too large, server overloaded): plain text, no CORS.
    pub fn transport_error(code: u16, message: &str) -> Self {
        Response::empty()
            .with("Status", status_value(code))
            .with("Server", SERVER_HEADER)
            .with("Content-Type", "text/plain; charset=utf-8")
            .body(message.to_string())
    }
}

impl Response {
    /// Append the CORS lines (when `CORS` is set) to a response built without them, such as
    /// the IIIF 303 (browsers follow a cross-origin redirect only when it carries them).
    pub fn add_cors(&mut self, d: &HeaderDefaults) {
        let r = std::mem::replace(self, Response::empty());
        *self = r.cors(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> HeaderDefaults {
        HeaderDefaults {
            cors: None,
            cache_control: "max-age=86400".into(),
        }
    }

    #[test]
    fn tile_header_order_is_upstreams() {
        let r = Response::content(
            &defaults(),
            "image/jpeg",
            "Fri, 20 Nov 2026 23:02:47 GMT",
            true,
            None,
            vec![0u8; 9699],
        );
        assert_eq!(
            String::from_utf8(r.head_bytes()).unwrap(),
            "Server: iipsrv/1.3\r\nX-Powered-By: IIPImage\r\nContent-Type: image/jpeg\r\n\
             Last-Modified: Fri, 20 Nov 2026 23:02:47 GMT\r\nCache-Control: max-age=86400\r\n\
             Content-Length: 9699\r\n\r\n"
        );
        assert_eq!(r.status(), 200);
    }

    #[test]
    fn etag_sits_after_last_modified_or_cache_control() {
        let mut r = Response::content(&defaults(), "image/jpeg", "d", true, None, vec![1u8]);
        r.set_etag("\"t\"");
        let names: Vec<&str> = r.headers().iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                "Server",
                "X-Powered-By",
                "Content-Type",
                "Last-Modified",
                "ETag",
                "Cache-Control",
                "Content-Length"
            ]
        );
        r.set_etag("\"u\"");
        assert_eq!(r.header("ETag"), Some("\"u\""));
        let mut r = Response::header_only(&defaults(), 304);
        r.set_etag("\"t\"");
        assert_eq!(
            String::from_utf8(r.head_bytes()).unwrap(),
            "Status: 304 Not Modified\r\nServer: iipsrv/1.3\r\nX-Powered-By: IIPImage\r\n\
             Allow: GET POST OPTIONS\r\nCache-Control: max-age=86400\r\nETag: \"t\"\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn banner_for_empty_request() {
        let r = Response::banner(200);
        let bytes = r.to_cgi_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(
            "Server: iipsrv/1.3\r\nContent-Type: text/html\r\nContent-Disposition: inline;filename=\"iipsrv.html\"\r\nStatus: 200 OK\r\n\r\n<!DOCTYPE html>"
        ));
        assert!(text.ends_with("</html>"));
    }

    #[test]
    fn header_only_has_cors_on_204_only() {
        let d = HeaderDefaults {
            cors: Some("*".into()),
            cache_control: "max-age=1".into(),
        };
        let r = Response::header_only(&d, 204);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(r.status(), 204);
        let r = Response::header_only(&d, 405);
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
        assert_eq!(
            String::from_utf8(r.head_bytes()).unwrap(),
            "Status: 405 Method Not Allowed\r\nServer: iipsrv/1.3\r\nX-Powered-By: IIPImage\r\n\
             Allow: GET POST OPTIONS\r\nCache-Control: max-age=1\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn iip_error_is_a_real_400() {
        let r = Response::iip_error(
            &defaults(),
            "application/vnd.netfpx",
            b"Error/7:3 2 foo\r\n",
        );
        assert_eq!(r.status(), 400);
        assert_eq!(r.body.as_ref(), b"Error/7:3 2 foo\r\n");
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
    }

    #[test]
    fn cgi_bytes_round_trip() {
        let r = Response::content(&defaults(), "image/jpeg", "d", true, None, vec![1u8, 2, 3]);
        let back = Response::from_cgi_bytes(&r.to_cgi_bytes()).unwrap();
        assert_eq!(back, r);
        assert!(Response::from_cgi_bytes(b"garbage").is_none());
    }

    #[test]
    fn stored_responses_parse_strictly() {
        let v = b"Server: iipsrv/1.3\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\nbody";
        let r = Response::from_cgi_bytes(v).unwrap();
        assert_eq!(r.headers().len(), 2);
        assert_eq!(r.headers()[0].0, "Server");
        assert_eq!(r.headers()[0].1, "iipsrv/1.3");
        assert_eq!(
            r.header("Last-Modified"),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        assert_eq!(r.body.as_ref(), b"body");
        assert!(Response::from_cgi_bytes(b"no header block").is_none());
        assert!(Response::from_cgi_bytes(b"not a header\r\n\r\n").is_none());
        assert!(Response::from_cgi_bytes(b"Bad name: x\r\n\r\n").is_none());
        assert!(Response::from_cgi_bytes(b": no name\r\n\r\n").is_none());
    }

    #[test]
    fn stored_responses_with_broken_framing_are_not_served() {
        // Found by fuzzing the memcached reply path: a stored value is served as it is, so its
        // header block must not be able to change the framing of the answer.
        let ok = b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        assert!(Response::from_cgi_bytes(ok).is_some());
        for bad in [
            &b"Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nok"[..],
            b"Content-Length: x\r\n\r\nok",
            b"X-A: a\rb\r\n\r\nok",
            b"X-A: a\0b\r\n\r\nok",
            b"X A: b\r\n\r\nok",
            b": b\r\n\r\nok",
            b"Status: 999 Odd\r\n\r\nok",
            b"Status: abc\r\n\r\nok",
        ] {
            assert!(
                Response::from_cgi_bytes(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Response::from_cgi_bytes(b"Status: 404 Not Found\r\nX-T: a\tb\r\n\r\n").is_some());
    }

    #[test]
    fn bare_content_type_gets_application_prefix() {
        let r = Response::content(&defaults(), "xml", "d", false, None, "x");
        assert_eq!(r.header("Content-Type"), Some("application/xml"));
        assert_eq!(r.header("Content-Length"), None);
    }
}
