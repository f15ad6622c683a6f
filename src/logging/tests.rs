use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, error, info, trace, warn};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("iipsrv-logging-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn config(verbosity: i64, logfile: &Path) -> Config {
    let mut config = Config::default();
    config.logging.verbosity = verbosity;
    config.logging.logfile = logfile.to_str().unwrap().to_string();
    config
}

fn options(check_every: Duration) -> Options {
    Options {
        check_every,
        ..Options::default()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// Run `f` with `logging`'s subscriber as this thread's default.
fn with(logging: &Logging, f: impl FnOnce()) {
    tracing::subscriber::with_default(logging.subscriber(), f);
}

#[test]
fn level_filter_follows_verbosity() {
    assert_eq!(level_filter(-1), LevelFilter::OFF);
    assert_eq!(level_filter(0), LevelFilter::OFF);
    assert_eq!(level_filter(1), LevelFilter::INFO);
    assert_eq!(level_filter(2), LevelFilter::DEBUG);
    assert_eq!(level_filter(3), LevelFilter::TRACE);
    assert_eq!(level_filter(6), LevelFilter::TRACE);
}

#[test]
fn ctime_looks_like_ctime() {
    // `Fri Nov 20 23:03:10 2026`
    let date = ctime_now();
    let parts: Vec<&str> = date.split_whitespace().collect();
    assert_eq!(date.len(), 24, "{date:?}");
    assert_eq!(parts.len(), 5, "{date:?}");
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&parts[0]));
    assert_eq!(parts[3].len(), 8);
    assert!(parts[4].parse::<u32>().unwrap() >= 2024);
}

#[test]
fn banner_and_fixed_blocks_go_to_logfile() {
    let dir = TempDir::new("banner");
    let path = dir.path("iipsrv.log");
    fs::write(&path, "older line\n").unwrap();
    let config = config(1, &path);
    let logging = Logging::new(&config);

    logging.banner(
        &config,
        &["JPEG_QUALITY=500 is outside 1..100: using 100".to_string()],
    );
    logging.initialisation_complete();
    logging.hangup_message();
    logging.shutdown_message(42, "Terminated");

    let text = read(&path);
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines[0], "older line", "append mode keeps what was there");
    assert_eq!(lines[1], SEPARATOR);
    assert_eq!(lines[2].len(), 24, "the ctime line: {:?}", lines[2]);
    let head = [
        "",
        "IIPImage Server. Version 1.3",
        "*** Ruven Pillay <ruven@users.sourceforge.net> ***",
        "",
        "Verbosity level set to 1",
    ];
    assert_eq!(lines[3..8], head);
    assert_eq!(lines[8], format!("iipsrv-rs {}", crate::CRATE_VERSION));
    let settings = config.settings_lines();
    assert_eq!(lines[9..9 + settings.len()], settings[..]);
    let rest = &lines[9 + settings.len()..];
    assert_eq!(rest[0], "JPEG_QUALITY=500 is outside 1..100: using 100");
    assert_eq!(
        rest[1..6],
        ["", "", "Initialisation Complete.", SEPARATOR, ""]
    );
    assert_eq!(
        rest[6..8],
        ["Caught Hangup signal. Emptying internal caches", ""]
    );
    assert_eq!(
        rest[8..10],
        [
            "",
            "Caught Terminated signal. Terminating after 42 accesses"
        ]
    );
    assert_eq!(rest[10].len(), 24, "the ctime line: {:?}", rest[10]);
    assert_eq!(
        rest[11..],
        [SEPARATOR, "", ""],
        "ends with a blank line and its newline"
    );
}

#[test]
fn verbosity_zero_opens_nothing() {
    let dir = TempDir::new("quiet");
    let path = dir.path("iipsrv.log");
    let config = config(0, &path);
    let logging = Logging::new(&config);
    logging.banner(&config, &[]);
    with(&logging, || error!("not written"));
    logging.shutdown_message(1, "Terminated");
    assert!(!path.exists());
}

#[test]
fn unopenable_logfile_runs_without_logging() {
    let dir = TempDir::new("unopenable");
    let path = dir.path("missing-dir/iipsrv.log");
    let logging = Logging::new(&config(1, &path));
    assert!(matches!(*logging.sink, Sink::Off));
    with(&logging, || error!("nowhere to go"));
    assert!(!path.exists());
}

#[test]
fn levels_follow_verbosity() {
    let dir = TempDir::new("levels");
    let all = ["error", "warn", "info", "debug", "trace"];
    for (verbosity, shown) in [(1, 3), (2, 4), (3, 5), (5, 5)] {
        let path = dir.path(&format!("v{verbosity}.log"));
        let logging = Logging::new(&config(verbosity, &path));
        with(&logging, || {
            error!("error");
            warn!("warn");
            info!("info");
            debug!("debug");
            trace!("trace");
        });
        let expected: String = all[..shown].iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(read(&path), expected, "verbosity {verbosity}");
    }
}

#[test]
fn events_are_plain_lines_with_fields() {
    let dir = TempDir::new("fields");
    let path = dir.path("iipsrv.log");
    let logging = Logging::new(&config(1, &path));
    with(&logging, || {
        info!("Full Request is FIF=a.tif&JTL=0,0");
        info!(micros = 153, path = "a b.tif", "Total Request Time");
        info!(micros = 7);
        info!("two\nlines");
    });
    assert_eq!(
        read(&path),
        "Full Request is FIF=a.tif&JTL=0,0\n\
         Total Request Time micros=153 path=\"a b.tif\"\n\
         micros=7\n\
         two\nlines\n"
    );
}

#[test]
fn reopen_follows_logrotate() {
    let dir = TempDir::new("reopen");
    let path = dir.path("iipsrv.log");
    let rotated = dir.path("iipsrv.log.1");
    // No automatic check during the test: only reopen() may switch files.
    let logging = Logging::with_options(&config(1, &path), &options(Duration::from_secs(3600)));
    with(&logging, || info!("before"));
    fs::rename(&path, &rotated).unwrap();
    with(&logging, || info!("still old"));
    assert!(!path.exists(), "no new file before reopen");
    logging.reopen();
    with(&logging, || info!("after"));
    assert_eq!(read(&rotated), "before\nstill old\n");
    assert_eq!(read(&path), "after\n");
}

#[test]
fn writer_notices_rename_and_delete() {
    let dir = TempDir::new("auto");
    let path = dir.path("iipsrv.log");
    let logging = Logging::with_options(&config(1, &path), &options(Duration::ZERO));
    with(&logging, || info!("one"));
    fs::rename(&path, dir.path("iipsrv.log.1")).unwrap();
    with(&logging, || info!("two"));
    assert_eq!(read(&dir.path("iipsrv.log.1")), "one\n");
    assert_eq!(read(&path), "two\n");

    fs::remove_file(&path).unwrap();
    logging.banner(&config(1, &path), &[]);
    assert!(
        read(&path).starts_with(SEPARATOR),
        "the banner went to a new file"
    );
}

#[test]
fn concurrent_writers_produce_whole_lines() {
    const THREADS: usize = 8;
    const LINES: usize = 500;
    let dir = TempDir::new("threads");
    let path = dir.path("iipsrv.log");
    let logging = Logging::with_options(&config(1, &path), &options(Duration::ZERO));
    let dispatch = tracing::Dispatch::new(logging.subscriber());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let dispatch = &dispatch;
            s.spawn(move || {
                let fill = char::from(b'a' + t as u8).to_string().repeat(300);
                tracing::dispatcher::with_default(dispatch, || {
                    for i in 0..LINES {
                        info!("thread {t} line {i} {fill}");
                    }
                });
            });
        }
    });
    let text = read(&path);
    let mut count = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 5, "a torn line: {line:?}");
        let t: usize = parts[1].parse().unwrap();
        assert_eq!(parts[4], char::from(b'a' + t as u8).to_string().repeat(300));
        count += 1;
    }
    assert_eq!(count, THREADS * LINES);
}

#[test]
fn syslog_sends_one_debug_record_per_line() {
    let dir = TempDir::new("syslog");
    let socket_path = dir.path("log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut config = config(1, &socket_path);
    config.logging.logfile = "syslog".into();
    let options = Options {
        syslog_socket: Some(socket_path),
        ..Options::default()
    };
    let logging = Logging::with_options(&config, &options);
    assert!(matches!(*logging.sink, Sink::Syslog(_)));

    with(&logging, || warn!("first\n\nsecond"));
    let mut buf = [0u8; 512];
    // <15> is facility USER (1) × 8 + LOG_DEBUG (7).
    let tag = format!("iipsrv[{}]: ", std::process::id());
    for expected in ["first", "second"] {
        let n = socket.recv(&mut buf).unwrap();
        let record = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(record.starts_with("<15>"), "{record:?}");
        assert!(record.ends_with(&format!("{tag}{expected}")), "{record:?}");
    }
    assert!(socket.recv(&mut buf).is_err(), "the empty line is not sent");
}

#[test]
fn syslog_without_socket_falls_back_to_stderr() {
    let dir = TempDir::new("nosyslog");
    let mut config = config(1, &dir.path("x"));
    config.logging.logfile = "syslog".into();
    let options = Options {
        syslog_socket: Some(dir.path("no-such-socket")),
        ..Options::default()
    };
    let logging = Logging::with_options(&config, &options);
    assert!(matches!(*logging.sink, Sink::Stderr));
}
