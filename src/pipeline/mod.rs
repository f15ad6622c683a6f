//! Processing of decoded pixels, in iipsrv's order (`pipeline-and-encoding.md` §4).
//!
//! (The transforms arrive with the region-export work; this module is their home.)
