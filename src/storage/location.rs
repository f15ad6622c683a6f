//! FILESYSTEM_PREFIX as a location: a local path, `s3://BUCKET/key/prefix/`, or
//! `http(s)://HOST[:PORT]/path/`; and which object keys are acceptable.

/// Where FILESYSTEM_PREFIX points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path prefix on the local file system.
    Local,
    /// A bucket of S3-compatible storage, and the key prefix inside it (may be empty).
    S3 { bucket: String, prefix: String },
    /// A plain HTTP(S) server: its root URL (`scheme://authority/`) and the path prefix below
    /// it (without the leading `/`; may be empty).
    Http { root: String, prefix: String },
}

impl Location {
    /// The key prefix every object name starts with.
    pub fn key_prefix(&self) -> &str {
        match self {
            Location::Local => "",
            Location::S3 { prefix, .. } | Location::Http { prefix, .. } => prefix,
        }
    }
}

/// Read FILESYSTEM_PREFIX. Errors say what is wrong with it (it holds no secret).
pub fn parse(prefix: &str) -> Result<Location, String> {
    let lower = prefix.get(..8).unwrap_or(prefix).to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("s3://").map(|_| &prefix[5..]) {
        let (bucket, key_prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("FILESYSTEM_PREFIX '{prefix}' names no bucket"));
        }
        check_prefix(prefix, key_prefix)?;
        return Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix: key_prefix.to_string(),
        });
    }
    let scheme_len = if lower.starts_with("http://") {
        7
    } else if lower.starts_with("https://") {
        8
    } else {
        return Ok(Location::Local);
    };
    let rest = &prefix[scheme_len..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains(['?', '#', '@']) {
        return Err(format!("FILESYSTEM_PREFIX '{prefix}' names no host"));
    }
    check_prefix(prefix, path)?;
    Ok(Location::Http {
        root: format!("{}{authority}/", &prefix[..scheme_len]),
        prefix: path.to_string(),
    })
}

/// A key prefix must itself be a valid key start: no `.`/`..`/empty segment, no `?`/`#`.
fn check_prefix(whole: &str, key_prefix: &str) -> Result<(), String> {
    let segments: Vec<&str> = key_prefix.split('/').collect();
    let inner = &segments[..segments.len().saturating_sub(1)];
    let bad = key_prefix.starts_with('/')
        || inner
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
        || key_prefix.contains(['?', '#'])
        || key_prefix.chars().any(|c| c.is_control());
    if bad {
        Err(format!(
            "FILESYSTEM_PREFIX '{whole}': the key prefix '{key_prefix}' is not a valid object key prefix"
        ))
    } else {
        Ok(())
    }
}

/// The object key for a full name (key prefix + identifier + suffix), when it can name an
/// object: valid UTF-8 without control characters, not empty, no leading or trailing `/`, no
/// empty, `.` or `..` segment. Any other name names nothing (the caller answers 404), so an
/// identifier cannot reach outside the key prefix. `?` and `#` are ordinary key characters
/// (the client percent-encodes them in the request URL).
pub fn object_key(name: &[u8]) -> Option<object_store::path::Path> {
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name.chars().any(|c| c.is_control())
        || name
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    object_store::path::Path::parse(name).ok()
}

/// The prefix of a directory to list (`a/b/` → `a/b`; empty = the root).
pub fn directory_key(dir: &[u8]) -> Option<Option<object_store::path::Path>> {
    let dir = std::str::from_utf8(dir).ok()?;
    let trimmed = dir.strip_suffix('/').unwrap_or(dir);
    if trimmed.is_empty() {
        return Some(None);
    }
    object_key(trimmed.as_bytes()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_name_local_paths_buckets_and_servers() {
        assert_eq!(parse("/srv/images/"), Ok(Location::Local));
        assert_eq!(parse(""), Ok(Location::Local));
        assert_eq!(
            parse("s3://masters/iiif/"),
            Ok(Location::S3 {
                bucket: "masters".into(),
                prefix: "iiif/".into()
            })
        );
        assert_eq!(
            parse("S3://masters"),
            Ok(Location::S3 {
                bucket: "masters".into(),
                prefix: "".into()
            })
        );
        assert_eq!(
            parse("http://127.0.0.1:8080/images/"),
            Ok(Location::Http {
                root: "http://127.0.0.1:8080/".into(),
                prefix: "images/".into()
            })
        );
        assert_eq!(
            parse("https://cdn.example.org"),
            Ok(Location::Http {
                root: "https://cdn.example.org/".into(),
                prefix: "".into()
            })
        );
        assert!(parse("s3:///x").is_err());
        assert!(parse("s3://b/../x/").is_err());
        assert!(parse("s3://b//x/").is_err());
        assert!(parse("http:///x").is_err());
        assert!(parse("http://user@host/").is_err());
    }

    #[test]
    fn keys_cannot_leave_the_prefix() {
        assert_eq!(
            object_key(b"iiif/a/b.tif").map(|p| p.to_string()),
            Some("iiif/a/b.tif".into())
        );
        for bad in [
            &b"iiif/../secret.tif"[..],
            b"iiif/./a.tif",
            b"/etc/passwd",
            b"iiif//etc/passwd",
            b"iiif/a/",
            b"",
            b"..",
            b"a\nb",
            b"a\x00b",
            b"\xff\xfe",
        ] {
            assert_eq!(object_key(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // Literal characters, percent-encoded by the client on the wire.
        assert!(object_key(b"a?b.tif").is_some());
        assert!(object_key(b"a#b.tif").is_some());
        assert!(object_key(b"a%2e%2e/b.tif").is_some());
    }

    #[test]
    fn directories_to_list() {
        assert_eq!(directory_key(b""), Some(None));
        assert_eq!(
            directory_key(b"a/b/").map(|d| d.map(|p| p.to_string())),
            Some(Some("a/b".into()))
        );
        assert_eq!(directory_key(b"a//"), None);
    }
}
