//! The request as the transports deliver it: CGI parameters (raw bytes) and a body.

/// One request: the CGI/FastCGI parameters, exactly as received, and the body.
///
/// Parameter names and values are bytes: a web server may pass non-UTF-8 bytes in
/// `QUERY_STRING` or `REQUEST_URI`, and they must reach the protocol parsers unchanged.
#[derive(Debug, Default, Clone)]
pub struct Request {
    params: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request body (FastCGI STDIN). Only read for IIP POST forms.
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(params: Vec<(Vec<u8>, Vec<u8>)>, body: Vec<u8>) -> Self {
        Request { params, body }
    }

    /// Build a request from string pairs (tests, the HTTP transport).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let params = pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        Request {
            params,
            body: Vec::new(),
        }
    }

    /// The value of a parameter, if present. The last occurrence wins, as in a CGI environment.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// A parameter as text (lossy for non-UTF-8 bytes); for headers such as `HTTP_HOST`.
    pub fn param_str(&self, name: &str) -> Option<String> {
        self.param(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `REQUEST_METHOD`; a request without one is treated as `GET` (upstream crashes).
    pub fn method(&self) -> &[u8] {
        self.param("REQUEST_METHOD").unwrap_or(b"GET")
    }

    /// All parameters in arrival order.
    pub fn params(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_method_is_get() {
        let r = Request::from_pairs([("QUERY_STRING", "x")]);
        assert_eq!(r.method(), b"GET");
        let r = Request::from_pairs([("REQUEST_METHOD", "POST")]);
        assert_eq!(r.method(), b"POST");
    }

    #[test]
    fn non_utf8_values_are_kept() {
        let r = Request::new(vec![(b"QUERY_STRING".to_vec(), vec![b'a', 0xff])], vec![]);
        assert_eq!(r.param("QUERY_STRING"), Some(&[b'a', 0xff][..]));
    }
}
