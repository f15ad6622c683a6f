//! Image sequences (FILENAME_PATTERN, docs/behaviour/images-and-decoding.md §2, docs/behaviour/http-responses.md §4.2 item
//! 5): a set of files `<base><pattern><h>_<v>.<ext>` that are views of one object at horizontal
//! angle h and vertical angle v, e.g. `FZ1_pyr_000_090.tif`, `FZ1_pyr_010_090.tif`.
//!
//! iipsrv finds them with shell globs. Here the directory is listed (for object storage: the
//! keys directly under the key's "directory" prefix) and names are compared literally, so glob
//! metacharacters in an identifier (`*`, `?`, `[`) are just characters.
//!
//! Differences from iipsrv, deliberate:
//! - the caller passes the base without FILESYSTEM_SUFFIX (upstream includes the suffix in the
//!   existence probe but not in the view names, so with a suffix no sequence is ever found,
//!   `[BUG]`); see [`find_sequence`];
//! - an angle is only taken from an all-digit field (upstream's `atoi` turns `abc` into 0), and
//!   the vertical angle is the whole number between `000_` and `.ext`, not just 3 characters.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::ImageFormat;
use super::error::{IoOp, Result, SourceError, SourceErrorKind, Unsupported};
use crate::storage::Storage;

/// At most this many directory entries are looked at.
const MAX_ENTRIES: usize = 1 << 20;
/// At most this many angles of each kind are kept.
const MAX_ANGLES: usize = 10_000;

/// A found sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// `prefix + key + pattern`: every view's path starts with it.
    pub base: Vec<u8>,
    /// The extension of the default view `000_090` (case kept).
    pub extension: String,
    /// The format the extension names: `jp2`, `jpx`, `j2k` → JPEG2000; `tif`, `tiff` → TIFF;
    /// `None` for anything else (upstream: "Unsupported image type"; JPEG sequences are not
    /// supported).
    pub format: Option<ImageFormat>,
    /// Horizontal angles, ascending (from the `*_090.<ext>` views).
    pub horizontal: Vec<u32>,
    /// Vertical angles, ascending (from the `000_*.<ext>` views).
    pub vertical: Vec<u32>,
    /// The default view's path and modification time.
    pub default_path: PathBuf,
    pub mtime: SystemTime,
}

impl Sequence {
    /// The file of view (h, v): `base + %03d(h) + "_" + %03d(v) + "." + ext`. It may not exist.
    pub fn path(&self, h: u32, v: u32) -> PathBuf {
        let mut name = self.base.clone();
        name.extend_from_slice(format!("{h:03}_{v:03}.{}", self.extension).as_bytes());
        PathBuf::from(OsStr::from_bytes(&name))
    }
}

/// The format of a sequence extension (case-sensitive, as upstream).
pub fn format_for_extension(ext: &str) -> Option<ImageFormat> {
    match ext {
        "jp2" | "jpx" | "j2k" => Some(ImageFormat::Jpeg2000),
        "tif" | "tiff" => Some(ImageFormat::Tiff),
        _ => None,
    }
}

/// Look for the sequence `prefix + key + pattern + "000_090.*"`.
///
/// `prefix` is the storage's (FILESYSTEM_PREFIX, or the key prefix of object storage); pass
/// the key **without** FILESYSTEM_SUFFIX (upstream's probe
/// appends it but its view names do not, so sequences never work with a suffix). Returns
/// `Ok(None)` when no default view exists (the caller answers 404 `<key> is neither a file nor
/// part of an image sequence`), and a 404 error naming the key when several extensions match.
/// Messages name the key and pattern, never the prefix.
pub fn find_sequence(storage: &Storage, key: &[u8], pattern: &str) -> Result<Option<Sequence>> {
    let prefix = storage.prefix();
    let mut base = Vec::with_capacity(prefix.len() + key.len() + pattern.len());
    base.extend_from_slice(prefix);
    base.extend_from_slice(key);
    base.extend_from_slice(pattern.as_bytes());
    let (dir, stem) = match base.iter().rposition(|&b| b == b'/') {
        Some(i) => (&base[..=i], &base[i + 1..]),
        None => (&b""[..], &base[..]),
    };
    let shown = || {
        format!(
            "{}{pattern}000_090.*",
            String::from_utf8_lossy(key).into_owned()
        )
    };
    let storage_failed = |e| {
        SourceError::from_storage(None, e, |e| {
            SourceError::new(None, SourceErrorKind::Io(IoOp::Open)).because(e)
        })
        .named(shown())
    };
    let listed = storage
        .list(Path::new(OsStr::from_bytes(dir)), MAX_ENTRIES)
        .map_err(storage_failed)?;
    let Some(names) = listed else {
        return Ok(None);
    };
    // The names in the directory that start with the stem, minus the stem.
    let rests: Vec<Vec<u8>> = names
        .iter()
        .filter_map(|name| name.strip_prefix(stem).map(<[u8]>::to_vec))
        .collect();

    let defaults: Vec<&Vec<u8>> = rests
        .iter()
        .filter(|r| r.starts_with(b"000_090."))
        .collect();
    let default = match defaults.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(SourceError::new(
                None,
                SourceErrorKind::Unsupported(Unsupported::SeveralExtensions),
            )
            .named(shown()));
        }
    };
    let dot = default
        .iter()
        .rposition(|&b| b == b'.')
        .expect("starts with 000_090.");
    let extension = String::from_utf8_lossy(&default[dot + 1..]).into_owned();
    let mut default_path = base.clone();
    default_path.extend_from_slice(default);
    let default_path = PathBuf::from(OsStr::from_bytes(&default_path));
    let mtime = match storage.stat(&default_path) {
        Ok(Some(meta)) => meta.modified,
        Ok(None) => {
            return Err(SourceError::new(None, SourceErrorKind::Io(IoOp::Open))
                .named(shown())
                .context(default_path.display()));
        }
        Err(e) => return Err(storage_failed(e).context(default_path.display())),
    };

    let suffix = format!(".{extension}");
    let number = |s: &[u8]| -> Option<u32> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let mut horizontal = Vec::new();
    let mut vertical = Vec::new();
    for rest in &rests {
        let Some(head) = rest.strip_suffix(suffix.as_bytes()) else {
            continue;
        };
        // `<h>_090.<ext>`: h is what precedes the last '_'.
        if let Some(h) = head.strip_suffix(b"_090")
            && let Some(h) = number(h)
        {
            horizontal.push(h);
        }
        // `000_<v>.<ext>`.
        if let Some(v) = head.strip_prefix(b"000_").and_then(number) {
            vertical.push(v);
        }
    }
    for list in [&mut horizontal, &mut vertical] {
        list.sort_unstable();
        list.dedup();
        list.truncate(MAX_ANGLES);
    }
    Ok(Some(Sequence {
        base,
        format: format_for_extension(&extension),
        extension,
        horizontal,
        vertical,
        default_path,
        mtime,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    fn prefix(dir: &Path) -> Storage {
        Storage::local(&format!("{}/", dir.display()))
    }

    #[test]
    fn angles_and_view_paths() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "FZ1_pyr_000_090.tif",
            "FZ1_pyr_010_090.tif",
            "FZ1_pyr_000_100.tif",
            "FZ1_pyr_350_090.tif",
            "FZ1_pyr_010_100.tif",
            // Not views: other extension, other stem, non-numeric angle.
            "FZ1_pyr_020_090.jp2",
            "FZ2_pyr_030_090.tif",
            "FZ1_pyr_abc_090.tif",
        ] {
            touch(dir.path(), name);
        }
        let seq = find_sequence(&prefix(dir.path()), b"FZ1", "_pyr_")
            .unwrap()
            .expect("found");
        assert_eq!(seq.extension, "tif");
        assert_eq!(seq.format, Some(ImageFormat::Tiff));
        assert_eq!(seq.horizontal, vec![0, 10, 350]);
        assert_eq!(seq.vertical, vec![90, 100]);
        assert_eq!(seq.default_path, dir.path().join("FZ1_pyr_000_090.tif"));
        assert_eq!(seq.path(10, 100), dir.path().join("FZ1_pyr_010_100.tif"));
        assert_eq!(seq.path(5, 1000), dir.path().join("FZ1_pyr_005_1000.tif"));
    }

    #[test]
    fn absent_ambiguous_and_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let p = prefix(dir.path());
        assert_eq!(find_sequence(&p, b"none", "_pyr_").unwrap(), None);
        assert_eq!(
            find_sequence(&Storage::local("/no/such/dir/"), b"x", "_pyr_").unwrap(),
            None
        );

        touch(dir.path(), "two_pyr_000_090.tif");
        touch(dir.path(), "two_pyr_000_090.jp2");
        let e = find_sequence(&p, b"two", "_pyr_").unwrap_err();
        assert_eq!(
            e.kind,
            SourceErrorKind::Unsupported(Unsupported::SeveralExtensions)
        );
        assert_eq!(e.name.as_deref(), Some("two_pyr_000_090.*"));

        touch(dir.path(), "jpg_pyr_000_090.jpg");
        let seq = find_sequence(&p, b"jpg", "_pyr_").unwrap().unwrap();
        assert_eq!((seq.extension.as_str(), seq.format), ("jpg", None));
        touch(dir.path(), "up_pyr_000_090.TIF");
        assert_eq!(
            find_sequence(&p, b"up", "_pyr_").unwrap().unwrap().format,
            None,
            "extensions are case-sensitive"
        );
        touch(dir.path(), "k_pyr_000_090.jpx");
        assert_eq!(
            find_sequence(&p, b"k", "_pyr_").unwrap().unwrap().format,
            Some(ImageFormat::Jpeg2000)
        );
    }

    #[test]
    fn glob_metacharacters_are_literal() {
        let dir = tempfile::tempdir().unwrap();
        let p = prefix(dir.path());
        touch(dir.path(), "a_pyr_000_090.tif");
        touch(dir.path(), "[a]_pyr_000_090.tif");
        assert_eq!(find_sequence(&p, b"*", "_pyr_").unwrap(), None);
        assert_eq!(find_sequence(&p, b"?", "_pyr_").unwrap(), None);
        let seq = find_sequence(&p, b"[a]", "_pyr_").unwrap().unwrap();
        assert_eq!(seq.default_path, dir.path().join("[a]_pyr_000_090.tif"));
        assert_eq!(seq.horizontal, vec![0]);
    }

    #[test]
    fn keys_with_directories_and_patterns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        touch(&dir.path().join("sub"), "obj-000_090.jp2");
        touch(&dir.path().join("sub"), "obj-045_090.jp2");
        let seq = find_sequence(&prefix(dir.path()), b"sub/obj", "-")
            .unwrap()
            .unwrap();
        assert_eq!(seq.horizontal, vec![0, 45]);
        assert_eq!(seq.vertical, vec![90]);
        assert_eq!(seq.path(45, 90), dir.path().join("sub/obj-045_090.jp2"));
    }
}
