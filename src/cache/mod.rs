//! Caches shared by all worker threads: the tile cache ([`tile`]), the metadata cache
//! ([`meta`]) and, optionally, memcached for whole responses.
//!
//! Both in-process caches are `quick_cache` caches (measured 2.4–3.8× the throughput of a
//! mutex-wrapped `lru`, with a better hit ratio: `docs/dependencies.md` §6), shared by
//! reference from [`crate::shared::Shared`], emptied on SIGHUP.

pub mod memcached;
pub(crate) mod meta;
pub(crate) mod tile;
