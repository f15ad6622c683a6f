//! Errors shared by the layers, and the one place that maps them to HTTP statuses.
//!
//! Each error carries a client-safe `message` (it may be sent in a response body and must never
//! contain a server file path) and an optional `detail` that only goes to the log.

use std::fmt;

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
}

impl ErrorKind {
    /// The HTTP status for this kind of error.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::BadRequest | ErrorKind::Invalid | ErrorKind::TooLarge => 400,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error with a client-safe message and a log-only detail.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// Sent to the client. Never contains a server path.
    pub message: String,
    /// Logged only (may contain paths and library messages).
    pub detail: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            detail: None,
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
    /// Prefix the log-only detail with `what` (a path, a tile); the message is left alone.
    pub fn context(self, what: &str) -> Self {
        let detail = match &self.detail {
            Some(d) => format!("{what}: {d}"),
            None => what.to_string(),
        };
        self.with_detail(detail)
    }

    /// Attach a log-only detail (a path, a library message).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
