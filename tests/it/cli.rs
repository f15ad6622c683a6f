//! The process: command line, start-up, signals.

use std::process::Command;
use std::time::Duration;

use crate::support::{BIN, TestServer};

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("iipsrv "));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--bind"));
}

#[test]
fn no_socket_is_a_clear_error() {
    // stdin is /dev/null: not a socket, so there is nothing to serve.
    let out = Command::new(BIN)
        .env("VERBOSITY", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
}

#[test]
fn missing_option_values_exit_1_not_abort() {
    for args in [
        &["--bind"][..],
        &["--bind", "127.0.0.1:1", "--backlog"],
        &["--bind", ""],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .env("VERBOSITY", "0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}

#[test]
fn bind_failure_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["--bind", &addr])
        .env("VERBOSITY", "0")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("bind/listen: "));
}

#[test]
fn sigterm_exits_zero_and_logs() {
    let mut s = TestServer::tcp(&[]);
    let status = s
        .signal_and_wait(15, Duration::from_secs(15))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    let log = s.log();
    assert!(log.contains("IIPImage Server. Version 1.3"), "{log}");
    assert!(
        log.contains("Setting maximum image tile data cache size to 10MB"),
        "{log}"
    );
    assert!(
        log.contains("Running in standalone mode on socket: 127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("Caught Terminated signal. Terminating after 0 accesses"),
        "{log}"
    );
}

#[test]
fn sighup_keeps_serving_and_reopens_the_log() {
    let mut s = TestServer::http(&[]);
    let log = s.dir.path().join("iipsrv.log");
    let rotated = s.dir.path().join("iipsrv.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    assert!(
        s.signal_and_wait(1, Duration::from_millis(300)).is_none(),
        "SIGHUP must not stop it"
    );
    let agent = ureq::AgentBuilder::new().build();
    let url = format!("http://{}/?OBJ=IIP,1.0", s.tcp_addr());
    assert_eq!(crate::support::get(&agent, &url).0, 200);
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("Caught Hangup signal")
    );
}

#[test]
fn unix_socket_bind() {
    let s = TestServer::unix(&[]);
    assert!(matches!(s.addr, crate::support::Addr::Unix(_)));
}

#[test]
fn ipv6_bind() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here");
        return;
    }
    let port = crate::support::free_port();
    let child = crate::support::Process::spawn(
        Command::new(BIN)
            .args(["--http", &format!("[::1]:{port}")])
            .env("VERBOSITY", "0"),
        9,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut ok = false;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(format!("[::1]:{port}")).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    assert!(ok, "listens on [::1]");
}
