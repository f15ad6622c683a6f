//! Logging: LOGFILE (a path, `syslog`, or — ours — `stdout` / `stderr`) and VERBOSITY, as
//! iipsrv's, built on `tracing`; with `IIPSRV_LOG_FORMAT=json`, JSON lines instead.
//!
//! Operators grep iipsrv's log and rotate it with logrotate, so the output keeps iipsrv's shape:
//! each event is its message and `\n`, with no timestamp or level prefix (fields follow as
//! `key=value`), and the start-up banner, settings and signal lines are iipsrv's own text
//! (`docs/behaviour/server-and-config.md` §1.4, §1.5, §1.9). The rest of the crate logs through the `tracing`
//! macros; [`init`] installs the subscriber that filters them by VERBOSITY and writes them here.
//! LOGFILE is opened in append mode, written one whole record per `write` under a lock (threads
//! never interleave within a line), and reopened after rotation, by [`Logging::reopen`] on
//! SIGHUP and by itself when the path no longer names the open file (checked at most once a
//! second). With LOGFILE=`syslog` each line is one record at LOG_DEBUG, facility USER, as iipsrv
//! sends them; without a syslog socket the log goes to stderr. LOGFILE=`stdout` or `stderr`
//! writes each record to that stream with one `write` (the container convention; nothing to
//! reopen).
//!
//! # JSON lines
//!
//! `IIPSRV_LOG_FORMAT=json` writes every record as one JSON object on one line, formatted by
//! `tracing-subscriber`'s JSON formatter: `timestamp` (RFC 3339, UTC), `level`, `message` and
//! the event's fields at the top level. The banner and the other fixed blocks become one
//! `INFO` object per non-empty line. At VERBOSITY 2 and above each request is one object with
//! `"message":"request"` and the fields `method`, `protocol`, `identifier`, `kind`, `format`,
//! `status`, `bytes`, `duration_ms` and `request` (written by `App::respond`, which then
//! leaves out the text format's `Total Request Time` line). The text format is unchanged.
//!
//! # Which level to log at
//!
//! | VERBOSITY | events written | log at this level |
//! |---|---|---|
//! | 0 | none; LOGFILE is not even opened | |
//! | 1 (default) | `ERROR`, `WARN`, `INFO` | `info!` for banner-like notices; `warn!`/`error!` for the warnings and errors iipsrv logs at 1 |
//! | 2 | and `DEBUG` | `debug!`: per-request trace (`Full Request is …`, handler lines, timings, 404 notices) |
//! | ≥ 3 | and `TRACE` | `trace!`: cache hits and misses, codec details and warnings, anything iipsrv logs at 3 and above (its levels 4 and 5 show nothing more here) |
//!
//! The level is not printed; it only decides whether a line is written. Code that would do work
//! just to build a message can ask `tracing::enabled!(tracing::Level::TRACE)` first.

mod file;
mod layer;
mod syslog_sink;

use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::Subscriber;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::SubscriberExt;

use crate::config::{Config, LogFormat};
use file::LogFile;
use layer::LineLayer;
use syslog_sink::SyslogSink;

const SEPARATOR: &str = "<----------------------------------->";

/// How often a LOGFILE writer checks whether logrotate moved the file away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// The events VERBOSITY lets through: 0 none, 1 INFO and above, 2 DEBUG, 3 or more TRACE.
pub fn level_filter(verbosity: i64) -> LevelFilter {
    match verbosity {
        ..=0 => LevelFilter::OFF,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// Open the log for `config` and install it as the global `tracing` subscriber.
///
/// Call it once, first thing in `main`. A second call leaves the first subscriber installed;
/// the `Logging` it returns writes its banner lines to its own, newly opened sink.
pub fn init(config: &Config) -> Logging {
    let logging = Logging::new(config);
    let _ = tracing::subscriber::set_global_default(logging.subscriber());
    logging
}

/// The open log: writes iipsrv's fixed blocks and builds the subscriber for `tracing` events.
/// Cheap to clone; all clones share one destination.
#[derive(Clone)]
pub struct Logging {
    verbosity: i64,
    format: LogFormat,
    sink: Arc<Sink>,
}

impl std::fmt::Debug for Logging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sink = match *self.sink {
            Sink::Off => "off",
            Sink::File(_) => "file",
            Sink::Syslog(_) => "syslog",
            Sink::Stdout => "stdout",
            Sink::Stderr => "stderr",
        };
        f.debug_struct("Logging")
            .field("verbosity", &self.verbosity)
            .field("format", &self.format)
            .field("sink", &sink)
            .finish()
    }
}

/// Where records go. Every record is text without its final `\n`.
enum Sink {
    /// VERBOSITY 0, or LOGFILE could not be opened.
    Off,
    File(LogFile),
    Syslog(SyslogSink),
    /// LOGFILE=`stdout`.
    Stdout,
    /// LOGFILE=`stderr`, or `syslog` without a syslog socket.
    Stderr,
}

impl Sink {
    fn write(&self, mut record: String) {
        match self {
            Sink::Off => {}
            Sink::Syslog(syslog) => syslog.write(&record),
            Sink::File(file) => {
                record.push('\n');
                file.write(record.as_bytes());
            }
            Sink::Stdout => {
                record.push('\n');
                let _ = std::io::stdout().lock().write_all(record.as_bytes());
            }
            Sink::Stderr => {
                record.push('\n');
                let _ = std::io::stderr().lock().write_all(record.as_bytes());
            }
        }
    }
}

/// The JSON formatter's writer: collects one formatted event and hands it to the sink as one
/// record when dropped (the formatter writes each event with one `write_all`).
struct RecordWriter {
    sink: Arc<Sink>,
    buf: Vec<u8>,
}

impl std::io::Write for RecordWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let record = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        if !record.is_empty() {
            self.sink
                .write(String::from_utf8_lossy(record).into_owned());
        }
    }
}

/// Makes a [`RecordWriter`] per event.
struct SinkWriter(Arc<Sink>);

impl<'a> MakeWriter<'a> for SinkWriter {
    type Writer = RecordWriter;

    fn make_writer(&'a self) -> RecordWriter {
        RecordWriter {
            sink: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

/// What tests change: the rotation check interval and the syslog socket.
struct Options {
    check_every: Duration,
    /// `None`: the system's syslog socket.
    syslog_socket: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check_every: ROTATION_CHECK,
            syslog_socket: None,
        }
    }
}

impl Logging {
    /// Open the destination `config` names, without installing anything globally. A LOGFILE that
    /// cannot be opened, or a missing syslog socket, is reported once on stderr.
    pub fn new(config: &Config) -> Logging {
        Logging::with_options(config, &Options::default())
    }

    fn with_options(config: &Config, options: &Options) -> Logging {
        let sink = if config.logging.verbosity < 1 {
            Sink::Off
        } else if config.logging.logfile == "stdout" {
            Sink::Stdout
        } else if config.logging.logfile == "stderr" {
            Sink::Stderr
        } else if config.logging.logfile == "syslog" {
            match SyslogSink::connect(options.syslog_socket.as_deref()) {
                Ok(syslog) => Sink::Syslog(syslog),
                Err(e) => {
                    eprintln!("iipsrv: cannot connect to syslog ({e}); logging to stderr");
                    Sink::Stderr
                }
            }
        } else {
            match LogFile::open(Path::new(&config.logging.logfile), options.check_every) {
                Ok(file) => Sink::File(file),
                Err(e) => {
                    eprintln!(
                        "iipsrv: cannot open log file '{}': {e}; running without logging",
                        config.logging.logfile
                    );
                    Sink::Off
                }
            }
        };
        Logging {
            verbosity: config.logging.verbosity,
            format: config.logging.format,
            sink: Arc::new(sink),
        }
    }

    /// A subscriber that filters events by VERBOSITY and writes them to this log. [`init`]
    /// installs it globally; tests use it with `tracing::subscriber::with_default`.
    pub fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static {
        let filter = match *self.sink {
            Sink::Off => LevelFilter::OFF,
            _ => level_filter(self.verbosity),
        };
        let json = self.format == LogFormat::Json;
        let text = (!json).then(|| LineLayer {
            sink: self.sink.clone(),
        });
        let json = json.then(|| {
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_target(false)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(SinkWriter(self.sink.clone()))
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(text)
            .with(json)
    }

    /// Write a fixed block (banner, start-up, signals): as it is, or in the JSON format one
    /// `INFO` object per non-empty line (the separator lines left out).
    fn block(&self, text: String) {
        if self.format != LogFormat::Json {
            self.sink.write(text);
            return;
        }
        let mut timestamp = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && *l != SEPARATOR)
        {
            let record = serde_json::json!({
                "timestamp": timestamp,
                "level": "INFO",
                "message": line,
            });
            self.sink.write(record.to_string());
        }
    }

    /// Reopen LOGFILE, or reconnect to syslog (SIGHUP, after logrotate).
    pub fn reopen(&self) {
        match &*self.sink {
            Sink::File(file) => file.reopen(),
            Sink::Syslog(syslog) => syslog.reopen(),
            Sink::Off | Sink::Stdout | Sink::Stderr => {}
        }
    }

    /// iipsrv's start-up block, then our version, the settings, `warnings` and a blank line.
    pub fn banner(&self, config: &Config, warnings: &[String]) {
        let mut lines = vec![
            SEPARATOR.to_string(),
            ctime_now(),
            String::new(),
            format!("IIPImage Server. Version {}", crate::IIPSRV_VERSION),
            "*** Ruven Pillay <ruven@users.sourceforge.net> ***".to_string(),
            String::new(),
            format!("Verbosity level set to {}", self.verbosity),
            format!("iipsrv-rs {}", crate::CRATE_VERSION),
        ];
        lines.extend(config.settings_lines());
        lines.extend(warnings.iter().cloned());
        lines.push(String::new());
        self.block(lines.join("\n"));
    }

    /// The end of start-up: blank line, `Initialisation Complete.`, separator, blank line.
    pub fn initialisation_complete(&self) {
        self.block(format!("\nInitialisation Complete.\n{SEPARATOR}\n"));
    }

    /// SIGHUP: `Caught Hangup signal. Emptying internal caches` and a blank line.
    pub fn hangup_message(&self) {
        self.block("Caught Hangup signal. Emptying internal caches\n".to_string());
    }

    /// SIGTERM, SIGINT, SIGUSR1: `signal_name` is strsignal's text (`Terminated`, `Interrupt`,
    /// `User defined signal 1`); `accesses` the requests completed.
    pub fn shutdown_message(&self, accesses: u64, signal_name: &str) {
        self.block(format!(
            "\nCaught {signal_name} signal. Terminating after {accesses} accesses\n{}\n{SEPARATOR}\n",
            ctime_now()
        ));
    }
}

/// The local time as ctime(3) prints it, without its newline: `Fri Nov 20 23:03:10 2026`.
fn ctime_now() -> String {
    // ctime_r needs at least 26 bytes.
    let mut buf: [libc::c_char; 64] = [0; 64];
    // SAFETY: `time` accepts a null pointer; `ctime_r` writes a NUL-terminated string of at most
    // 26 bytes into `buf`, which is 64 long, or returns null and leaves `buf` unused.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        if libc::ctime_r(&now, buf.as_mut_ptr()).is_null() {
            return String::new();
        }
        CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .trim_end()
            .to_string()
    }
}

#[cfg(test)]
mod tests;
