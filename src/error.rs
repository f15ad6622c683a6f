//! Errors shared by the layers.
//!
//! An [`Error`] is one of two things:
//!
//! - **worded** where it arose: a client-safe `message` (it may be sent in a response body and
//!   must never contain a server file path), its [`ErrorKind`] (the status class) and an
//!   optional `detail` that only goes to the log. Protocol parsers, limits and encoders word
//!   their own errors.
//! - **typed**: a lower layer's own error value (the sources' `SourceError`), carried up
//!   unchanged. Its status and client text are chosen at the top, by `protocols::error`, as
//!   iipsrv words them; [`Error::downcast_ref`] gives it back there.

use std::fmt;
use std::sync::Arc;

/// What went wrong, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The image does not exist, cannot be read, or could not be decoded (iipsrv: 404).
    NotFound,
    /// A parameter is syntactically or semantically invalid (400).
    BadRequest,
    /// A valid request for a feature this server does not provide (IIIF: 501).
    NotImplemented,
    /// A request that upstream answers with the HTML banner page (an IIP "string exception"):
    /// an out-of-range resolution, an unsupported file type, a bare URI_MAP prefix.
    /// Answered with the banner and a real 400 (see docs/compatibility.md).
    Invalid,
    /// A resource limit was exceeded (output too large, request too large).
    TooLarge,
    /// Something failed inside the server (500).
    Internal,
    /// The image storage cannot be reached (503).
    Unavailable,
    /// The image storage answered with an error or something that makes no sense (502).
    BadGateway,
    /// The image storage did not answer in time (504).
    GatewayTimeout,
}

impl ErrorKind {
    /// The HTTP status for this kind of error.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::BadRequest | ErrorKind::Invalid | ErrorKind::TooLarge => 400,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
            ErrorKind::BadGateway => 502,
            ErrorKind::GatewayTimeout => 504,
        }
    }
}

type Typed = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An error on its way to the client: worded, or a typed error of a lower layer.
#[derive(Debug, Clone)]
pub struct Error {
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Worded {
        kind: ErrorKind,
        /// Sent to the client. Never contains a server path.
        message: String,
        /// Logged only (may contain paths and library messages).
        detail: Option<String>,
    },
    Typed(Typed),
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            repr: Repr::Worded {
                kind,
                message: message.into(),
                detail: None,
            },
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    /// A lower layer's typed error, worded at the top.
    pub fn typed(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error {
            repr: Repr::Typed(Arc::new(e)),
        }
    }

    /// The kind of a worded error (`None` for a typed one: the top decides).
    pub fn kind(&self) -> Option<ErrorKind> {
        match &self.repr {
            Repr::Worded { kind, .. } => Some(*kind),
            Repr::Typed(_) => None,
        }
    }

    /// The client text of a worded error (`None` for a typed one: the top words it).
    pub fn message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Worded { message, .. } => Some(message),
            Repr::Typed(_) => None,
        }
    }

    /// The log-only detail of a worded error.
    pub fn detail(&self) -> Option<&str> {
        match &self.repr {
            Repr::Worded { detail, .. } => detail.as_deref(),
            Repr::Typed(_) => None,
        }
    }

    /// The typed error this carries, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        match &self.repr {
            Repr::Typed(e) => e.downcast_ref::<T>(),
            Repr::Worded { .. } => None,
        }
    }

    /// Attach a log-only detail (a path, a library message) to a worded error; a typed error
    /// keeps its own context and cause.
    pub fn with_detail(mut self, new: impl Into<String>) -> Self {
        if let Repr::Worded { detail, .. } = &mut self.repr {
            *detail = Some(new.into());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Worded {
                message, detail, ..
            } => {
                f.write_str(message)?;
                if let Some(d) = detail {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            Repr::Typed(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Typed(e) => Some(&**e as &(dyn std::error::Error + 'static)),
            Repr::Worded { .. } => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
