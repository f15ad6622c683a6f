//! The errors of the storage layer: what went wrong reading bytes, classified by what the
//! client should be told (a missing object, storage that cannot be reached, a storage answer
//! that makes no sense), never worded here. The detail (object key, the client library's
//! message, which may name the endpoint) is for the log only.

use std::fmt;
use std::sync::Arc;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    /// A local file read failed (the sources word it as they always have).
    Io,
    /// No such object (or the key cannot name one: `..`, empty segments, a leading `/`).
    NotFound,
    /// Storage could not be reached (connection refused or reset, DNS), after the retries.
    Unreachable,
    /// A call took longer than its timeout, after the retries.
    Timeout,
    /// Storage answered, but not usefully: a 5xx after the retries, a wrong `Content-Range`,
    /// a short body, an answer that does not parse.
    BadResponse,
    /// Storage refused the credentials (401/403): a configuration error.
    Denied,
    /// The object changed while it was being read (its ETag no longer matches).
    Changed,
    /// The bytes are not here yet: a read inside a request's first passes, which collects
    /// what it needs and lets the request fetch it without holding a worker (see
    /// `storage::collect`). Never reaches a client unless the fetch loop gives up.
    Pending,
}

/// A storage failure: its kind, and where and why (log only).
#[derive(Debug, Clone)]
pub struct StorageError {
    pub kind: StorageErrorKind,
    /// The key or path and the operation (log only).
    context: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, context: impl Into<String>) -> Self {
        StorageError {
            kind,
            context: context.into(),
            cause: None,
        }
    }

    /// A local I/O error.
    pub fn io(e: std::io::Error, context: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::Io, context).because(e)
    }

    pub fn because(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    /// A local I/O error's `std::io::Error` (for the sources that word local failures as they
    /// always did); `None` for a remote failure.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        if self.kind != StorageErrorKind::Io {
            return None;
        }
        self.cause.as_deref()?.downcast_ref::<std::io::Error>()
    }

    /// Whether this is a remote failure (which travels up typed, to be answered 404/5xx),
    /// rather than a local I/O error (which the sources word as a broken file).
    pub fn is_remote(&self) -> bool {
        self.kind != StorageErrorKind::Io
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage {:?}: {}", self.kind, self.context)?;
        if let Some(c) = &self.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The kind of an `object_store` failure: a missing object, a refusal, or (walking the error's
/// causes for the HTTP client's own error) a timeout, an unreachable server, or a bad answer.
pub(crate) fn classify(e: &object_store::Error) -> StorageErrorKind {
    use object_store::Error as E;
    use object_store::client::HttpErrorKind as H;
    match e {
        E::NotFound { .. } | E::InvalidPath { .. } => return StorageErrorKind::NotFound,
        E::Precondition { .. } | E::NotModified { .. } => return StorageErrorKind::Changed,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            return StorageErrorKind::Denied;
        }
        _ => {}
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<object_store::client::HttpError>() {
            return match http.kind() {
                H::Timeout => StorageErrorKind::Timeout,
                H::Connect | H::Request | H::Interrupted => StorageErrorKind::Unreachable,
                _ => StorageErrorKind::BadResponse,
            };
        }
        cause = c.source();
    }
    StorageErrorKind::BadResponse
}
