//! Logging: LOGFILE (a path, or `syslog`) and VERBOSITY, as iipsrv's (placeholder).

use crate::config::Config;

/// The logging handle.
#[derive(Debug)]
pub struct Logging;

/// Install the global subscriber.
pub fn init(_config: &Config) -> Logging {
    Logging
}

impl Logging {
    pub fn reopen(&self) {}
    pub fn banner(&self, _config: &Config, _warnings: &[String]) {}
    pub fn shutdown_message(&self, _accesses: u64, _signal_name: &str) {}
    pub fn initialisation_complete(&self) {}
}
