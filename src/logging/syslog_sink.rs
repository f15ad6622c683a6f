//! LOGFILE=`syslog`: ident `iipsrv` with the pid, facility USER, one record per non-empty line,
//! every record at LOG_DEBUG as iipsrv sends them (so existing `user.debug`/`user.=debug`
//! selectors keep matching).
//!
//! The `syslog` crate reports connection and send errors (`docs/dependencies.md` §8). A failed send
//! (syslogd restarted, socket replaced) reconnects once and retries; after that the line is lost.
//! The crate stamps records in UTC; rsyslog and journald use their own receive time for records
//! from the local socket, so this does not show in the system log.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

type Connection = Logger<LoggerBackend, Formatter3164>;

pub(super) struct SyslogSink {
    /// `None`: the system's socket (`/dev/log`, `/var/run/syslog`, `/var/run/log`).
    socket: Option<PathBuf>,
    connection: Mutex<Connection>,
}

fn connect(socket: Option<&Path>) -> syslog::Result<Connection> {
    let formatter = Formatter3164 {
        facility: Facility::LOG_USER,
        hostname: None,
        process: "iipsrv".into(),
        pid: std::process::id(),
    };
    match socket {
        Some(path) => syslog::unix_custom(formatter, path),
        None => syslog::unix(formatter),
    }
}

impl SyslogSink {
    pub(super) fn connect(socket: Option<&Path>) -> syslog::Result<SyslogSink> {
        let connection = Mutex::new(connect(socket)?);
        Ok(SyslogSink {
            socket: socket.map(Path::to_path_buf),
            connection,
        })
    }

    /// Send each non-empty line of `text` as its own record.
    pub(super) fn write(&self, text: &str) {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for line in text.lines().filter(|l| !l.is_empty()) {
            if connection.debug(line).is_err() {
                if let Ok(fresh) = connect(self.socket.as_deref()) {
                    *connection = fresh;
                    let _ = connection.debug(line);
                }
            }
        }
    }

    /// Reconnect (SIGHUP); keeps the old connection if that fails.
    pub(super) fn reopen(&self) {
        if let Ok(fresh) = connect(self.socket.as_deref()) {
            *self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }
}
