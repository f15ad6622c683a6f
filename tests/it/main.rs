//! Integration tests: one binary that starts the built `iipsrv` (and real web servers) and
//! talks to it over FastCGI and HTTP.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod fastcgi;
mod http;
mod nginx;
mod pipeline;
mod support;
