//! Opening an image for any protocol: an identifier's key becomes an [`OpenImage`] (the file
//! or image sequence, its opened source through the metadata cache, its `Last-Modified`), and
//! [`OpenImage::source_for`] picks the file of one view of a sequence. Below the protocols,
//! above the sources.

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::Result;
use crate::http::date;
use crate::shared::Shared;
use crate::source::error::{IoOp, SourceError, SourceErrorKind, Unsupported};
use crate::source::resolve::{self, Located};
use crate::source::sequence::Sequence;
use crate::source::{ImageInfo, ImageSource};
use crate::view::View;

/// An image opened by `FIF`, IIIF, Zoomify or DeepZoom.
#[derive(Debug, Clone)]
pub struct OpenImage {
    /// The image key shared by cache keys.
    pub key: Arc<[u8]>,
    pub located: Located,
    /// The opened file: the image, or a sequence's default view (0, 90).
    pub source: Arc<dyn ImageSource>,
    /// The image sequence this image is, if it is one (its views are other files).
    pub sequence: Option<Arc<Sequence>>,
    /// `Last-Modified` value (the file's mtime; for a sequence, the default view's).
    pub last_modified: String,
}

/// The file to read the pixels of one view from (see [`OpenImage::source_for`]).
#[derive(Debug, Clone)]
pub(crate) struct ViewSource {
    pub source: Arc<dyn ImageSource>,
    /// That file's mtime (stored with its cached tiles).
    pub mtime: SystemTime,
    /// The page to pass to the source: the stack page (`view.horizontal`) for a single file,
    /// 0 for a sequence view (a file of its own).
    pub page: u32,
}

impl OpenImage {
    /// The description of the image (for a sequence: of its default view, used for every
    /// view).
    pub fn info(&self) -> &ImageInfo {
        self.source.info()
    }

    /// The horizontal angles: a sequence's (ascending), a stack's pages `0 … n-1`, else `[0]`.
    pub fn horizontal_views(&self) -> Vec<u32> {
        match &self.sequence {
            Some(seq) => seq.horizontal.clone(),
            None => (0..self.info().stack.len().max(1) as u32).collect(),
        }
    }

    /// The vertical angles: a sequence's (ascending), else `[90]`.
    pub fn vertical_views(&self) -> Vec<u32> {
        match &self.sequence {
            Some(seq) => seq.vertical.clone(),
            None => vec![90],
        }
    }

    /// The source for the view's angles. A single file is its own source for every view (the
    /// horizontal angle is its stack page). For a sequence, view (h, v) is the file
    /// `<prefix><key><pattern><h:03>_<v:03>.<ext>`: the default source for (0, 90), otherwise
    /// that file through the metadata cache (one `stat`), 404 when it does not exist.
    pub(crate) fn source_for(&self, shared: &Shared, view: &View) -> Result<ViewSource> {
        let (h, v) = (view.horizontal, view.vertical.unwrap_or(90));
        let Some(seq) = &self.sequence else {
            return Ok(ViewSource {
                source: self.source.clone(),
                mtime: self.located.mtime,
                page: h,
            });
        };
        if (h, v) == (0, 90) {
            return Ok(ViewSource {
                source: self.source.clone(),
                mtime: self.located.mtime,
                page: 0,
            });
        }
        let path = seq.path(h, v);
        // The view's name relative to FILESYSTEM_PREFIX, for messages.
        let shown = format!(
            "{}{}{h:03}_{v:03}.{}",
            String::from_utf8_lossy(&self.key),
            shared.config().files.pattern,
            seq.extension
        );
        let mtime = match shared.storage().stat(&path) {
            Ok(Some(meta)) => meta.modified,
            Ok(None) => {
                return Err(SourceError::new(None, SourceErrorKind::Io(IoOp::Open))
                    .named(shown)
                    .context(format_args!("{}: no such view", path.display()))
                    .into());
            }
            Err(e) => {
                return Err(SourceError::from_storage(None, e, |e| {
                    SourceError::new(None, SourceErrorKind::Io(IoOp::Open)).because(e)
                })
                .named(shown)
                .context(path.display())
                .into());
            }
        };
        if let Some(source) = shared.meta().get(&path, mtime) {
            return Ok(ViewSource {
                source,
                mtime,
                page: 0,
            });
        }
        tracing::debug!("Sequence :: opening view {h},{v}");
        let located = Located {
            key: self.key.to_vec(),
            path,
            mtime,
            format: self.located.format,
        };
        let source = open_located(shared, &located, mtime)?;
        Ok(ViewSource {
            source,
            mtime,
            page: 0,
        })
    }
}

/// Open an image by key: one `stat` (for a sequence: the directory listing of its views, then
/// the default view), then the metadata cache (keyed by path and mtime), and only on a miss
/// open the file, detect its format and parse it.
///
/// A sequence (`docs/behaviour/images-and-decoding.md` §2) is found without FILESYSTEM_SUFFIX (see
/// [`resolve::find`]); its format comes from the extension of the default view `000_090`, as
/// upstream (an unsupported extension, JPEG included, gives the banner), and its
/// `Last-Modified` is the default view's mtime.
pub fn open_image(shared: &Shared, key: &[u8]) -> Result<OpenImage> {
    let key: Arc<[u8]> = Arc::from(key);
    crate::metrics::note::identifier(&key);
    let (path, mtime, format, sequence) =
        match resolve::find(shared.storage(), shared.config(), &key)? {
            resolve::Found::File { path, mtime } => (path, mtime, None, None),
            resolve::Found::Sequence(seq) => {
                tracing::debug!(
                    "FIF :: Image sequence with {} horizontal and {} vertical views",
                    seq.horizontal.len(),
                    seq.vertical.len()
                );
                let format = seq.format.ok_or_else(|| {
                    SourceError::new(None, SourceErrorKind::Unsupported(Unsupported::ImageType))
                        .named(String::from_utf8_lossy(&key))
                        .context(seq.default_path.display())
                })?;
                (
                    seq.default_path.clone(),
                    seq.mtime,
                    Some(format),
                    Some(Arc::new(seq)),
                )
            }
        };
    let last_modified = date::http_date(mtime);
    if let Some(source) = shared.meta().get(&path, mtime) {
        tracing::debug!("FIF :: Image cache hit");
        let format = source.info().format;
        let located = Located {
            key: key.to_vec(),
            path,
            mtime,
            format,
        };
        return Ok(OpenImage {
            key,
            located,
            source,
            sequence,
            last_modified,
        });
    }
    tracing::debug!("FIF :: Image cache miss");
    let located = match format {
        // A sequence view: the format its extension names (upstream does not read the magic).
        Some(format) => Located {
            key: key.to_vec(),
            path,
            mtime,
            format,
        },
        None => resolve::detect(shared.storage(), &key, path, mtime)?,
    };
    let source = open_located(shared, &located, mtime)?;
    Ok(OpenImage {
        key,
        located,
        source,
        sequence,
        last_modified,
    })
}

/// The opened source of `located` at `mtime`, through the metadata cache.
fn open_located(
    shared: &Shared,
    located: &Located,
    mtime: std::time::SystemTime,
) -> Result<Arc<dyn ImageSource>> {
    Ok(shared.meta().open(&located.path, mtime, || {
        crate::source::open(
            shared.storage(),
            located,
            shared.config().decoding.max_layers,
        )
    })?)
}
