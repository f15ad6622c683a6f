//! The FastCGI transport: our own record layer and connection handling.
//!
//! # Design
//!
//! - **Framing apart from meaning** (as in mini-redis). [`record`] only knows the 8-byte
//!   header and the fixed bodies, and hands out whole records; [`params`] decodes name-value
//!   pairs.
//!
//! Why not a crate: every published FastCGI server crate failed a basic case (split PARAMS,
//! non-UTF-8 parameters, keep-alive, multiplexing under backpressure); see the crate research.

pub mod params;
pub mod record;
