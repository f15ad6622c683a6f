//! The errors of the source layer, typed by whose fault they are (as image-tiff separates a
//! broken file, an unsupported one, an exceeded limit and an I/O failure).
//!
//! A [`SourceError`] says *what* went wrong and *where*: its [`SourceErrorKind`], the reader
//! that failed ([`ImageFormat`]: iipsrv's messages name it), the name the request gave the
//! image (for the messages that show it), a context (the file path, level and tile) and the
//! cause (an `io::Error`, a library's message). It does not choose a status or a client text:
//! `protocols::error` words it as iipsrv does, in one place. The context and the cause are for
//! the log only: they may hold server paths.
//!
//! Sources return it ([`Result`]); above them it travels inside a [`crate::error::Error`]
//! (`From`), from which the protocols take it back to word the answer.

use std::fmt;
use std::sync::Arc;

use super::ImageFormat;
use crate::storage::{StorageError, StorageErrorKind};

/// A result of the source layer.
pub type Result<T, E = SourceError> = std::result::Result<T, E>;

type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A failure of the source layer: what, in which reader, and why.
#[derive(Debug, Clone)]
pub struct SourceError {
    /// What went wrong.
    pub kind: SourceErrorKind,
    /// The reader that failed; `None` before the format is known (finding and detecting files).
    pub format: Option<ImageFormat>,
    /// The image as the request named it (client-safe), for the messages that show it.
    pub name: Option<String>,
    /// Where: the file, level, tile (log only; may name server paths).
    context: Option<String>,
    /// Why: an I/O error or a library's message (log only).
    cause: Option<Cause>,
}

/// What went wrong, by whose fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// The file is broken.
    Corrupt(Corrupt),
    /// A well-formed file using something this server does not read.
    Unsupported(Unsupported),
    /// More than a limit allows.
    TooLarge(TooLarge),
    /// Opening or reading the file failed.
    Io(IoOp),
    /// What the request names does not exist.
    NotFound(Missing),
    /// A region that does not lie inside its level (the caller's mistake).
    OutsideLevel {
        region: (u32, u32, u32, u32),
        level: (u32, u32),
    },
    /// A broken invariant or a library that could not start: the server's fault.
    Internal(&'static str),
    /// Remote storage failed, or has not answered yet: not the file's fault.
    Storage(StorageErrorKind),
}

/// How a file is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corrupt {
    /// Its structure (headers, directories, markers, boxes): what is wrong, in our own words
    /// (never a path; iipsrv's TIFF reader shows it to the client).
    Structure(String),
    /// Compressed data that does not decode (the decoder's words are the cause).
    Data,
    /// The decoding library refused the file at `step`, saying `message` first (iipsrv shows
    /// OpenJPEG's first error to the client).
    Rejected {
        step: DecodeStep,
        message: Option<String>,
    },
    /// The decoded image is not what the header announced.
    Decoded(Defect),
}

/// How a decoded image differs from what the header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    NoComponents,
    EmptyComponent,
    /// Other components or sizes.
    Mismatch,
}

/// The OpenJPEG call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeStep {
    SetupDecoder,
    ReadHeader,
    SetDecodeArea,
    Decode,
}

impl DecodeStep {
    /// The function's name.
    pub fn function(self) -> &'static str {
        match self {
            DecodeStep::SetupDecoder => "opj_setup_decoder",
            DecodeStep::ReadHeader => "opj_read_header",
            DecodeStep::SetDecodeArea => "opj_set_decode_area",
            DecodeStep::Decode => "opj_decode",
        }
    }
}

/// What a well-formed file uses that this server does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// Not a TIFF, JPEG or JPEG2000 file (by its first bytes, or a sequence's extension).
    ImageType,
    /// A TIFF stored in strips.
    NotTiled,
    /// A TIFF feature, described (iipsrv's TIFF reader names it to the client).
    Feature(String),
    /// Subsampled JPEG2000 components.
    Subsampling,
    /// A sample depth (bits).
    BitDepth(u32),
    /// Lossless JPEG.
    Lossless,
    /// An image sequence whose default view has several extensions.
    SeveralExtensions,
}

/// Which limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    /// The file, read whole (plain JPEG).
    File,
    /// The pixels one decode would need.
    Decode { width: u64, height: u64 },
}

/// The file operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Opening the file (or finding a sequence view's).
    Open,
    /// Reading it.
    Read,
    /// Reading the first bytes, which tell the format.
    ReadSignature,
}

/// What the request names that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The identifier names no file and no image sequence.
    Image,
    Resolution(u32),
    Tile(u32),
    Page(u32),
}

impl SourceError {
    /// A `kind` error of the `format` reader (`None`: before a format is known).
    pub fn new(format: Option<ImageFormat>, kind: SourceErrorKind) -> Self {
        SourceError {
            kind,
            format,
            name: None,
            context: None,
            cause: None,
        }
    }

    /// A broken structure, described by `problem` (our words, no path).
    pub fn corrupt(format: ImageFormat, problem: impl Into<String>) -> Self {
        Self::new(
            Some(format),
            SourceErrorKind::Corrupt(Corrupt::Structure(problem.into())),
        )
    }

    /// Compressed data that does not decode; `detail` (the decoder's words) is the cause.
    pub fn bad_data(format: ImageFormat, detail: impl Into<String>) -> Self {
        Self::new(Some(format), SourceErrorKind::Corrupt(Corrupt::Data)).because(detail.into())
    }

    pub fn unsupported(format: ImageFormat, what: Unsupported) -> Self {
        Self::new(Some(format), SourceErrorKind::Unsupported(what))
    }

    pub fn too_large(format: ImageFormat, what: TooLarge) -> Self {
        Self::new(Some(format), SourceErrorKind::TooLarge(what))
    }

    pub fn missing(format: ImageFormat, what: Missing) -> Self {
        Self::new(Some(format), SourceErrorKind::NotFound(what))
    }

    /// `op` failed with `e`.
    pub fn io(format: Option<ImageFormat>, op: IoOp, e: std::io::Error) -> Self {
        Self::new(format, SourceErrorKind::Io(op)).because(e)
    }

    /// A failed storage call: a remote failure travels up as [`SourceErrorKind::Storage`]; a
    /// local file's I/O error becomes `local(e)`, worded as the source always worded it.
    pub fn from_storage(
        format: Option<ImageFormat>,
        e: StorageError,
        local: impl FnOnce(StorageError) -> SourceError,
    ) -> Self {
        if e.is_remote() {
            Self::new(format, SourceErrorKind::Storage(e.kind)).because(e)
        } else {
            local(e)
        }
    }

    /// Whether this is a remote storage failure (not the file's fault).
    pub fn is_storage(&self) -> bool {
        matches!(self.kind, SourceErrorKind::Storage(_))
    }

    pub fn internal(format: ImageFormat, what: &'static str) -> Self {
        Self::new(Some(format), SourceErrorKind::Internal(what))
    }

    /// The image as the request named it (shown by the messages that name it).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The underlying cause (log only).
    pub fn because(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    /// Prefix the context (log only) with `what`: a path, a level, a tile.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.context = Some(match self.context.take() {
            Some(c) => format!("{what}: {c}"),
            None => what.to_string(),
        });
        self
    }

    /// Where and why, for the log: the context and the cause.
    pub fn detail(&self) -> String {
        match (&self.context, &self.cause) {
            (Some(c), Some(e)) => format!("{c}: {e}"),
            (Some(c), None) => c.clone(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for SourceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceErrorKind::Corrupt(Corrupt::Structure(p)) => write!(f, "corrupt file: {p}"),
            SourceErrorKind::Corrupt(Corrupt::Data) => f.write_str("corrupt data"),
            SourceErrorKind::Corrupt(Corrupt::Rejected { step, message }) => {
                write!(f, "{}() failed", step.function())?;
                match message {
                    Some(m) => write!(f, ": {m}"),
                    None => Ok(()),
                }
            }
            SourceErrorKind::Corrupt(Corrupt::Decoded(d)) => write!(f, "decoded image: {d:?}"),
            SourceErrorKind::Unsupported(u) => write!(f, "unsupported: {u:?}"),
            SourceErrorKind::TooLarge(t) => write!(f, "too large: {t:?}"),
            SourceErrorKind::Io(op) => write!(f, "I/O error ({op:?})"),
            SourceErrorKind::NotFound(m) => write!(f, "not found: {m:?}"),
            SourceErrorKind::OutsideLevel { region, level } => {
                write!(f, "region {region:?} outside the {level:?} level")
            }
            SourceErrorKind::Internal(what) => write!(f, "internal error: {what}"),
            SourceErrorKind::Storage(kind) => write!(f, "storage: {kind:?}"),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(format) = self.format {
            write!(f, "{format:?}: ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(name) = &self.name {
            write!(f, " [{name}]")?;
        }
        let detail = self.detail();
        if !detail.is_empty() {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<SourceError> for crate::error::Error {
    fn from(e: SourceError) -> Self {
        crate::error::Error::typed(e)
    }
}
