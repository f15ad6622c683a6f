//! Logging: LOGFILE (a path, or `syslog`) and VERBOSITY, as iipsrv's, built on `tracing`.
