//! The HTTP response model shared by every protocol and both transports.
//!
//! iipsrv is a CGI-style responder: it writes header lines (with an optional `Status:` line in
//! a position that depends on the response type), a blank line and a body. [`Response`] keeps
//! exactly that: an ordered list of header lines and a body. The FastCGI transport writes it
//! verbatim; the HTTP transport turns the `Status:` line into the status line.

pub(crate) mod date;
pub mod request;
pub mod response;

pub use request::Request;
pub use response::{HeaderDefaults, Response};
