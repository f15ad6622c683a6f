//! Integration tests: one binary that starts the built `iipsrv` (and real web servers) and
//! talks to it over FastCGI and HTTP.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod deploy;
mod fastcgi;
mod garage;
mod http;
mod iiif;
mod iiif_extensions;
mod layers;
mod memcached;
mod nginx;
mod operations;
mod overload;
mod pipeline;
mod sequences;
mod shutdown;
mod sources;
mod storage;
mod support;
mod tiles;
mod viewer_page;
mod viewers;
