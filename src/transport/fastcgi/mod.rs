//! The FastCGI transport: our own record layer and connection handling.
//!
//! # Design
//!
//! - **Framing apart from meaning** (as in mini-redis). [`record`] only knows the 8-byte
//!   header and the fixed bodies, and hands out whole records; [`params`] decodes name-value
//!   pairs; `conn.rs` gives records their meaning (which request, which state).
//! - **One request per connection at a time**, like libfcgi: a second BEGIN_REQUEST gets
//!   CANT_MPX_CONN and GET_VALUES reports `FCGI_MPXS_CONNS=0`. No web server we target
//!   multiplexes, and it keeps each connection a simple sequence of states. Concurrency comes
//!   from many connections, each a tokio task; idle keep-alive connections cost no thread.
//! - **Lenient where web servers are sloppy, strict where framing is at stake.** A PARAMS
//!   stream split anywhere, repeated empty STDIN records and records for finished requests are
//!   accepted; anything that is not a version-1 record ends that connection (only).
//! - **Bounded**: parameters and body have byte limits (431 and 413 answers), a request must
//!   arrive within a time limit, and a record is never buffered beyond its 64 KiB maximum.
//!
//! Why not a crate: every published FastCGI server crate failed a basic case (split PARAMS,
//! non-UTF-8 parameters, keep-alive, multiplexing under backpressure); see docs/dependencies.md §1.

mod conn;
pub mod params;
pub mod record;

pub use conn::serve_connection;

/// The raw-record client that integration tests use, compiled here too so the in-process
/// tests talk to the server through an implementation that shares no code with it.
#[cfg(test)]
#[path = "../../../tests/common/fcgi.rs"]
mod test_client;
