//! Caches shared by all worker threads: the tile cache, the metadata cache and memcached.
//!
//! (The tile and metadata caches arrive with the TIFF source work; memcached with the
//! deployment work. This module is their home.)

pub mod memcached;
