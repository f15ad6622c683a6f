//! From an identifier in a URL to a file on disk (`docs/behaviour/http-responses.md` §4): URL decoding, the
//! `../` filter, FILESYSTEM_PREFIX/SUFFIX, and format detection by magic bytes.
//!
//! Error messages name the identifier the client sent, never the server path (the path goes to
//! the log only).

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::SystemTime;

use super::ImageFormat;
use super::error::{IoOp, Missing, Result, SourceError, SourceErrorKind, Unsupported};
use super::sequence::{Sequence, find_sequence};
use crate::config::Config;
use crate::storage::Storage;

/// URL-decode an argument as iipsrv does: `+` → space, `%XY` → byte, `%00` dropped, a malformed
/// `%` kept literally. Returns the bytes and whether a `%00` was dropped.
pub fn url_decode(input: &[u8]) -> (Vec<u8>, bool) {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len());
    let mut null = false;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                match (
                    input.get(i + 1).copied().and_then(hex),
                    input.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        let byte = h * 16 + l;
                        if byte == 0 {
                            null = true;
                        } else {
                            out.push(byte);
                        }
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, null)
}

/// Remove every `../` (searching from the start each time) until none is left.
pub fn filter_traversal(mut key: Vec<u8>) -> Vec<u8> {
    while let Some(pos) = key.windows(3).position(|w| w == b"../") {
        key.drain(pos..pos + 3);
    }
    key
}

/// The image key for a raw FIF-style argument: decoded, then filtered.
pub fn image_key(raw: &[u8]) -> Vec<u8> {
    let (decoded, null) = url_decode(raw);
    if null {
        tracing::warn!(
            "Warning! Detected embedded NULL byte in URL: {}",
            String::from_utf8_lossy(raw)
        );
    }
    filter_traversal(decoded)
}

/// Detect the format from the first 10 bytes.
pub fn detect_format(magic: &[u8]) -> Option<ImageFormat> {
    const JP2: [u8; 10] = [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A];
    if magic.len() >= 10 && magic[..10] == JP2 {
        return Some(ImageFormat::Jpeg2000);
    }
    if magic.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(ImageFormat::Jpeg);
    }
    let tiff: [&[u8]; 5] = [b"I I", b"II*\0", b"MM\0*", b"MM\0+", b"II+\0"];
    if tiff.iter().any(|sig| magic.starts_with(sig)) {
        return Some(ImageFormat::Tiff);
    }
    None
}

/// A located image file.
#[derive(Debug, Clone)]
pub struct Located {
    /// The decoded, filtered identifier (the cache key; safe to show to the client).
    pub key: Vec<u8>,
    /// `FILESYSTEM_PREFIX + key + FILESYSTEM_SUFFIX`.
    pub path: PathBuf,
    pub mtime: SystemTime,
    pub format: ImageFormat,
}

impl Located {
    /// The key as text, for messages.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(&self.key).into_owned()
    }
}

/// The file path for an image key: `FILESYSTEM_PREFIX + key + FILESYSTEM_SUFFIX` (for object
/// storage, the key prefix inside the bucket or below the server's root + key + suffix: the
/// object key).
pub fn file_path(storage: &Storage, config: &Config, key: &[u8]) -> PathBuf {
    let prefix = storage.prefix();
    let mut full = Vec::with_capacity(prefix.len() + key.len() + config.files.suffix.len());
    full.extend_from_slice(prefix);
    full.extend_from_slice(key);
    full.extend_from_slice(config.files.suffix.as_bytes());
    PathBuf::from(std::ffi::OsStr::from_bytes(&full))
}

/// The path and version (mtime) of the file or object for an image key (one `stat`, or one
/// `HEAD` when the description is not cached); 404 when it is not a file. A storage failure
/// is that failure.
pub fn stat(storage: &Storage, config: &Config, key: &[u8]) -> Result<(PathBuf, SystemTime)> {
    let path = file_path(storage, config, key);
    match storage.stat(&path) {
        Ok(Some(meta)) => Ok((path, meta.modified)),
        Ok(None) => Err(
            SourceError::new(None, SourceErrorKind::NotFound(Missing::Image))
                .named(String::from_utf8_lossy(key))
                .context(path.display()),
        ),
        Err(e) => Err(SourceError::from_storage(None, e, |e| {
            SourceError::new(None, SourceErrorKind::NotFound(Missing::Image)).because(e)
        })
        .named(String::from_utf8_lossy(key))
        .context(path.display())),
    }
}

/// What an image key names (`docs/behaviour/http-responses.md` §4.2 items 4–5).
#[derive(Debug, Clone)]
pub enum Found {
    /// `FILESYSTEM_PREFIX + key + FILESYSTEM_SUFFIX` is a regular file.
    File { path: PathBuf, mtime: SystemTime },
    /// It is not, but `FILESYSTEM_PREFIX + key + FILENAME_PATTERN + "000_090.<ext>"` exists.
    Sequence(Sequence),
}

impl Found {
    /// The modification time of the file, or of the sequence's default view.
    pub fn mtime(&self) -> SystemTime {
        match self {
            Found::File { mtime, .. } => *mtime,
            Found::Sequence(s) => s.mtime,
        }
    }
}

/// Look an image key up: a regular file (one `stat`), else an image sequence.
///
/// The sequence probe uses `FILESYSTEM_PREFIX + key + FILENAME_PATTERN`, **without**
/// FILESYSTEM_SUFFIX. Upstream's probe appends the suffix but its view names do not, so with a
/// suffix no sequence is ever found ([BUG], `docs/behaviour/images-and-decoding.md` §2); leaving the suffix
/// out makes sequences work whatever the suffix (docs/compatibility.md).
///
/// Errors: 404 `<key> is neither a file nor part of an image sequence` when neither exists,
/// 404 `There are multiple file extensions matching <key><pattern>000_090.*` when the default
/// view has several extensions. Messages never name FILESYSTEM_PREFIX.
pub fn find(storage: &Storage, config: &Config, key: &[u8]) -> Result<Found> {
    match stat(storage, config, key) {
        Ok((path, mtime)) => Ok(Found::File { path, mtime }),
        Err(failed) if failed.is_storage() => Err(failed),
        Err(not_found) => match find_sequence(storage, key, &config.files.pattern)? {
            Some(sequence) => Ok(Found::Sequence(sequence)),
            None => Err(not_found),
        },
    }
}

/// Open the file and detect its format from its first 10 bytes.
///
/// Errors: [`IoOp::Open`] when unreadable, [`IoOp::ReadSignature`] when too short,
/// [`Unsupported::ImageType`] when the file is readable but not a supported format; a remote
/// storage failure as such.
pub fn detect(storage: &Storage, key: &[u8], path: PathBuf, mtime: SystemTime) -> Result<Located> {
    let shown = String::from_utf8_lossy(key).into_owned();
    let failed = |kind| {
        SourceError::new(None, kind)
            .named(shown.clone())
            .context(path.display())
    };
    let io = |e: crate::storage::StorageError| {
        SourceError::from_storage(None, e, |e| {
            SourceError::new(None, SourceErrorKind::Io(IoOp::Open)).because(e)
        })
        .named(shown.clone())
        .context(path.display())
    };
    let blob = storage.open(&path, None).map_err(io)?;
    let mut magic = [0u8; 10];
    if blob.len() < magic.len() as u64 {
        return Err(failed(SourceErrorKind::Io(IoOp::ReadSignature)));
    }
    blob.read_exact_at(&mut magic, 0).map_err(io)?;
    let format = detect_format(&magic)
        .ok_or_else(|| failed(SourceErrorKind::Unsupported(Unsupported::ImageType)))?;
    Ok(Located {
        key: key.to_vec(),
        path,
        mtime,
        format,
    })
}

/// Find the file for an image key and detect its format (`stat` then `detect`).
pub fn locate(storage: &Storage, config: &Config, key: &[u8]) -> Result<Located> {
    let (path, mtime) = stat(storage, config, key)?;
    detect(storage, key, path, mtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_rules() {
        assert_eq!(url_decode(b"a+b%20c").0, b"a b c");
        assert_eq!(url_decode(b"%2f%2F").0, b"//");
        let (d, null) = url_decode(b"a%00b");
        assert_eq!(d, b"ab");
        assert!(null);
        assert_eq!(url_decode(b"100%").0, b"100%");
        assert_eq!(
            url_decode(b"%4").0,
            b"%4",
            "a trailing %X is kept, without reading past the end"
        );
        assert_eq!(url_decode(b"%zz").0, b"%zz");
        assert_eq!(url_decode(b"%ff").0, vec![0xff]);
    }

    #[test]
    fn traversal_filter() {
        assert_eq!(filter_traversal(b"../t/grad".to_vec()), b"t/grad");
        assert_eq!(filter_traversal(b"....//t/grad".to_vec()), b"t/grad");
        assert_eq!(
            filter_traversal(b"/images/../img/x.tif".to_vec()),
            b"/images/img/x.tif"
        );
        assert_eq!(filter_traversal(b"..".to_vec()), b"..");
        assert_eq!(image_key(b"..%2Ft%2Fgrad"), b"t/grad");
    }

    #[test]
    fn magic_bytes() {
        assert_eq!(detect_format(b"II*\0\0\0\0\0\0\0"), Some(ImageFormat::Tiff));
        assert_eq!(detect_format(b"MM\0+\0\0\0\0\0\0"), Some(ImageFormat::Tiff));
        assert_eq!(
            detect_format(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0, 0, 0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            detect_format(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A]),
            Some(ImageFormat::Jpeg2000)
        );
        assert_eq!(detect_format(b"GIF89a\0\0\0\0"), None);
    }

    #[test]
    fn find_files_then_sequences_without_the_suffix() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["seq_pyr_000_090.tif", "seq_pyr_010_090.tif", "file.tif"] {
            std::fs::write(dir.path().join(name), b"II*\0 not really").unwrap();
        }
        let (mut c, _) = Config::from_lookup(|_| None);
        c.files.prefix = format!("{}/", dir.path().display());
        let storage = Storage::local(&c.files.prefix);
        for suffix in ["", ".tif"] {
            c.files.suffix = suffix.into();
            match find(&storage, &c, b"seq").unwrap() {
                Found::Sequence(s) => {
                    assert_eq!(s.horizontal, vec![0, 10], "suffix {suffix:?}");
                    assert_eq!(s.default_path, dir.path().join("seq_pyr_000_090.tif"));
                }
                other => panic!("suffix {suffix:?}: {other:?}"),
            }
        }
        // A regular file comes first: `file` + `.tif`.
        assert!(matches!(
            find(&storage, &c, b"file").unwrap(),
            Found::File { .. }
        ));
        let e = find(&storage, &c, b"none").unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Image));
        assert_eq!(e.name.as_deref(), Some("none"));
        // A directory is not a file: the probe runs (and finds nothing here).
        std::fs::create_dir(dir.path().join("d.tif")).unwrap();
        assert!(find(&storage, &c, b"d").is_err());
    }

    #[test]
    fn locate_errors_hide_the_prefix() {
        let dir = std::env::temp_dir().join(format!("iipsrv-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("short.tif"), b"II*").unwrap();
        std::fs::write(dir.join("text.tif"), b"hello world, not an image").unwrap();
        let (mut c, _) = Config::from_lookup(|_| None);
        c.files.prefix = format!("{}/", dir.display());
        let s = Storage::local(&c.files.prefix);
        // The client sees the key (`name`); the path is in the log-only detail.
        let e = locate(&s, &c, b"missing.tif").unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Image));
        assert_eq!(e.name.as_deref(), Some("missing.tif"));
        assert!(e.detail().contains(&dir.display().to_string()));
        let e = locate(&s, &c, b"short.tif").unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Io(IoOp::ReadSignature));
        assert_eq!(e.name.as_deref(), Some("short.tif"));
        let e = locate(&s, &c, b"text.tif").unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Unsupported(Unsupported::ImageType));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
