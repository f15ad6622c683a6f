//! Processing of decoded pixels, in iipsrv's order (`pipeline-and-encoding.md` §3–§4).
//!
//! One file per transform. [`convert`] holds the steps every tile needs to become encodable:
//! CIELAB → sRGB, bit-depth reduction, and dropping bands an encoder cannot take.

pub mod convert;
pub mod rotate;
