//! The one place where an [`Error`] becomes a response.

use crate::error::{Error, ErrorKind};
use crate::http::{HeaderDefaults, Response};

/// The one place where an [`Error`] becomes a response (bodies are client-safe; details are
/// logged).
pub(crate) fn error_response(d: &HeaderDefaults, e: &Error) -> Response {
    match e.kind {
        ErrorKind::NotFound
        | ErrorKind::BadRequest
        | ErrorKind::TooLarge
        | ErrorKind::NotImplemented => {
            tracing::debug!("{e}");
            tracing::debug!("Sending HTTP {}", e.kind.status());
            Response::plain_error(d, e.kind.status(), &e.message)
        }
        ErrorKind::Invalid => {
            tracing::info!("\n{e}\n");
            Response::banner(400)
        }
        ErrorKind::Internal => {
            tracing::error!("\n{e}\n");
            Response::banner(500)
        }
    }
}
