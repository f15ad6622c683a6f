//! HTTP dates: `Last-Modified` formatting and `If-Modified-Since` parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Format a time as iipsrv does: `strftime("%a, %d %b %Y %H:%M:%S GMT")` in UTC.
pub(crate) fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Truncate a time to whole seconds (HTTP dates have no fraction).
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => UNIX_EPOCH,
    }
}

/// Parse an `If-Modified-Since` value (`%a, %d %b %Y %H:%M:%S %Z`, UTC). `None` if malformed.
pub(crate) fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let s = http_date(t);
        assert_eq!(s, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(parse_http_date(&s), Some(t));
        assert_eq!(parse_http_date("garbage"), None);
    }
}
