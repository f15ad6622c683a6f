//! Overload and hostile clients on the HTTP listener: heavy exports under a small memory
//! budget (200 or 503 with `Retry-After`, never anything else; tiles keep being answered), an
//! export larger than the whole budget (runs alone), heavy requests still waiting when shutdown
//! comes (a complete 503), headers sent byte by byte, a client that never reads its responses,
//! more idle connections than `IIPSRV_MAX_CONNECTIONS`, a flood of 1,000 connections (held to
//! the limit, no thread each).
//!
//! Functional outcomes only: every wait is a guard that fails the test when the server never
//! does what it must, not a measurement.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{TestServer, fixtures_prefix, get};

/// Upscaled, so that it is heavy (about 14 MiB estimated) and slow in a debug build.
const HEAVY: &str = "/?FIF=sample.tif&WID=1200&CVT=jpeg";
/// The same image's stored tiles: light.
const TILE: &str = "/?FIF=sample.tif&JTL=2,";
/// An uncompressed TIFF export of 3 MB: heavy, and larger than a socket's buffers when
/// several are pipelined.
const BIG_TIFF: &str = "/?FIF=sample.tif&WID=1000&CVT=tiff";

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

fn server(env: &[(&str, &str)]) -> TestServer {
    let prefix = fixtures_prefix();
    let mut all = vec![("FILESYSTEM_PREFIX", prefix.as_str())];
    all.extend_from_slice(env);
    TestServer::http(&all)
}

#[test]
fn a_burst_of_heavy_exports_gets_200_or_503_and_tiles_keep_being_answered() {
    let s = server(&[
        ("IIPSRV_MEMORY_BUDGET", "20"),
        ("IIPSRV_HEAVY_THREADS", "1"),
        ("IIPSRV_QUEUE_LENGTH", "2"),
        ("IIPSRV_QUEUE_TIMEOUT", "1"),
    ]);
    let base = format!("http://{}", s.tcp_addr());
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{base}{HEAVY}");
            std::thread::spawn(move || get(&agent(), &url))
        })
        .collect();
    // Light requests while the burst runs: every one is answered, with its tile.
    let tiles = agent();
    for t in 0..30 {
        let (status, h, body) = get(&tiles, &format!("{base}{TILE}{}", t % 16));
        assert_eq!(status, 200, "tile {t}");
        assert_eq!(header(&h, "Content-Type"), Some("image/jpeg"));
        assert!(body.starts_with(&[0xff, 0xd8]));
    }
    let (mut ok, mut busy) = (0, 0);
    for answer in burst {
        let (status, h, body) = answer.join().unwrap();
        match status {
            200 => {
                assert!(body.starts_with(&[0xff, 0xd8]), "a JPEG");
                ok += 1;
            }
            503 => {
                let retry = header(&h, "Retry-After").expect("Retry-After on a 503");
                assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
                assert!(String::from_utf8_lossy(&body).contains("retry later"));
                busy += 1;
            }
            other => panic!("a heavy export was answered {other}: {}", s.log()),
        }
    }
    // One runs, two wait, the others find the queue full.
    assert!(ok >= 1 && busy >= 1, "{ok} answered, {busy} refused");
    assert!(s.log().contains("not admitted"), "{}", s.log());
}

#[test]
fn an_export_larger_than_the_whole_budget_runs_alone() {
    let s = server(&[("IIPSRV_MEMORY_BUDGET", "1"), ("IIPSRV_HEAVY_THREADS", "2")]);
    let base = format!("http://{}", s.tcp_addr());
    let both: Vec<_> = (0..2)
        .map(|_| {
            let url = format!("{base}{HEAVY}");
            std::thread::spawn(move || get(&agent(), &url))
        })
        .collect();
    for answer in both {
        let (status, _, body) = answer.join().unwrap();
        assert_eq!(status, 200, "{}", s.log());
        let image = crate::support::decode_jpeg_rgb(&body);
        assert_eq!(image.width, 1200);
    }
    let log = s.log();
    assert!(log.contains("memory budget of 1 MiB"), "{log}");
    assert!(log.contains("heavy export"), "{log}");
    assert!(!log.contains("not admitted"), "{log}");
}

/// Read from `stream` until the server closes it (EOF or reset), for at most `guard`.
/// Returns the bytes read, or `None` when the connection was still open at the end.
fn read_until_closed(stream: &mut TcpStream, guard: Duration) -> Option<usize> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + guard;
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < end {
        match stream.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(total),
        }
    }
    None
}

#[test]
fn slow_headers_and_idle_connections_are_closed_after_the_read_timeout() {
    let s = server(&[("IIPSRV_READ_TIMEOUT", "1")]);
    let addr = s.tcp_addr();

    // Headers sent byte by byte, never finished.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    slow.write_all(b"GET /?OBJ=IIP,1.0 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !closed {
        if slow.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => closed = true,
            // A 408 or similar before the close is fine.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => closed = true,
        }
    }
    assert!(closed, "a client sending its headers byte by byte was kept");

    // A connection that sends nothing, and one idle after a complete exchange.
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /?OBJ=IIP,1.0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        read_until_closed(&mut silent, Duration::from_secs(30)).is_some(),
        "a silent connection was kept"
    );
    let answered = read_until_closed(&mut kept, Duration::from_secs(30));
    assert!(
        answered.is_some_and(|n| n > 0),
        "an idle keep-alive connection was kept, or its request not answered"
    );
    // The server still answers.
    let (status, _, _) = get(&agent(), &format!("http://{addr}/?OBJ=IIP,1.0"));
    assert_eq!(status, 200);
}

#[test]
fn a_client_that_never_reads_is_dropped_and_does_not_block_others() {
    let s = server(&[("IIPSRV_WRITE_TIMEOUT", "1"), ("TIFF_COMPRESSION", "0")]);
    let addr = s.tcp_addr();
    // 30 pipelined exports of 3 MB each, never read: far more than the sockets buffer.
    const N: usize = 30;
    let mut stalled = TcpStream::connect(addr).unwrap();
    let request = format!("GET {BIG_TIFF} HTTP/1.1\r\nHost: x\r\n\r\n");
    stalled.write_all(request.repeat(N).as_bytes()).unwrap();
    // Meanwhile other clients are served.
    let others = agent();
    for t in 0..20 {
        let (status, _, _) = get(&others, &format!("http://{addr}{TILE}{}", t % 16));
        assert_eq!(status, 200);
    }
    let (status, _, body) = get(&others, &format!("http://{addr}{BIG_TIFF}"));
    assert_eq!(status, 200);
    let one = body.len();
    // Give the write timeout time to pass while nobody reads (a pause, not a measurement).
    std::thread::sleep(Duration::from_secs(4));
    let read = read_until_closed(&mut stalled, Duration::from_secs(60))
        .expect("the connection of a client that stopped reading was kept open");
    assert!(
        read < N * one,
        "all {N} responses were delivered ({read} bytes): nothing was dropped"
    );
    assert!(read > 0);
}

#[test]
fn idle_connections_beyond_the_limit_wait_and_are_served_once_others_time_out() {
    let s = server(&[
        ("IIPSRV_MAX_CONNECTIONS", "10"),
        ("IIPSRV_READ_TIMEOUT", "1"),
    ]);
    let addr = s.tcp_addr();
    // Five times the limit, all silent: the server holds 10, the kernel's backlog the rest.
    let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (status, _, body) = get(
        &agent(),
        &format!("http://{addr}/?OBJ=IIP,1.0&OBJ=IIP-server"),
    );
    assert_eq!(status, 200);
    assert_eq!(body, b"IIP-server:3.65\r\n");
    drop(idle);
}

/// The HTTP status line, headers and whole body of a `Connection: close` exchange on `s`, or
/// what went wrong (nothing, or a cut answer).
fn read_close_delimited(s: &mut TcpStream) -> Result<(u16, String, Vec<u8>), String> {
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete head in {} bytes", all.len()))?;
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let body = all[end + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if length.is_some_and(|n| n != body.len()) {
        return Err(format!("body cut: {} of {length:?} bytes", body.len()));
    }
    Ok((status, head, body))
}

/// SIGTERM while heavy exports wait for memory that a client who stopped reading holds (the
/// bytes of its unsent output): admission closes halfway through `IIPSRV_SHUTDOWN_TIMEOUT`, and
/// every waiting request gets a complete 503 with `Retry-After` before the process exits,
/// rather than a connection cut at the deadline.
#[test]
fn on_shutdown_heavy_requests_still_waiting_get_a_complete_503() {
    const WAITING: usize = 4;
    let mut s = server(&[
        ("IIPSRV_MEMORY_BUDGET", "8"),
        ("IIPSRV_HEAVY_THREADS", "1"),
        ("IIPSRV_QUEUE_TIMEOUT", "600"),
        ("IIPSRV_WRITE_TIMEOUT", "600"),
        ("IIPSRV_SHUTDOWN_TIMEOUT", "6"),
        ("TIFF_COMPRESSION", "0"),
        ("VERBOSITY", "2"),
    ]);
    let addr = s.tcp_addr();
    // A 27 MB uncompressed export, more than the whole budget, never read: once its work is
    // done its output keeps the budget until it has been sent, that is until the exit.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"GET /?FIF=sample.tif&WID=3000&CVT=tiff HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut first = [0u8; 1];
    assert_eq!(
        stalled.peek(&mut first).unwrap(),
        1,
        "the stalled export never started its answer"
    );
    // Heavy exports that can only wait; each one is in line once the server logged it.
    let waiting: Vec<_> = (0..WAITING)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
            let request = format!("GET {HEAVY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            c.write_all(request.as_bytes()).unwrap();
            std::thread::spawn(move || read_close_delimited(&mut c))
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(60);
    while s.log().matches("heavy export").count() < WAITING + 1 {
        assert!(Instant::now() < end, "not in line: {}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    s.signal(libc::SIGTERM);
    let status = s
        .wait_exit(Duration::from_secs(60))
        .expect("iipsrv exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    for (i, answer) in waiting.into_iter().enumerate() {
        let (status, head, body) = answer
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("waiting request {i}: {e}"));
        assert_eq!(status, 503, "waiting request {i}: {head}");
        assert!(head.contains("Retry-After: "), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("retry later"));
    }
    assert!(s.log().contains("shutting down"), "{}", s.log());
    drop(stalled);
}

/// Sockets the process `pid` holds open.
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// A field of `/proc/PID/status` (a number).
fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().split(' ').next()?.parse().ok())
        .unwrap()
}

/// 1,000 connections opened at once, none sending anything: the process accepts only
/// `IIPSRV_MAX_CONNECTIONS` of them (the rest wait in the kernel's backlog, costing the process
/// nothing) and starts no thread for them, so its memory is bounded whatever the flood.
/// Figures for 10,000: `examples/bench/connections.sh` (docs/reliability.md).
#[test]
fn a_flood_of_connections_is_held_to_the_connection_limit_without_threads() {
    const LIMIT: usize = 40;
    const FLOOD: usize = 1000;
    let s = server(&[
        ("IIPSRV_MAX_CONNECTIONS", "40"),
        ("IIPSRV_READ_TIMEOUT", "600"),
        ("IIPSRV_WORKERS", "2"),
        ("IIPSRV_HEAVY_THREADS", "2"),
    ]);
    let (addr, pid) = (s.tcp_addr(), s.child.id());
    let threads_before = status_field(pid, "Threads:");
    // The listener, and the runtime's own (signal handling).
    let sockets_before = open_sockets(pid);
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Until every connection is accounted for: accepted by the process or waiting in the
    // listening socket's accept queue.
    let queued = || {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{}", addr.port())])
            .output()
            .expect("ss is needed: apt-get install iproute2");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .and_then(|q| q.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let end = Instant::now() + Duration::from_secs(60);
    let accepted = loop {
        // Less one when the readiness probe's connection, still open in `sockets_before`,
        // has closed since.
        let accepted = open_sockets(pid).saturating_sub(sockets_before);
        if accepted + queued() + 1 >= FLOOD {
            break accepted;
        }
        assert!(
            Instant::now() < end,
            "{accepted} accepted, {} queued",
            queued()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        accepted <= LIMIT,
        "{accepted} connections accepted with a limit of {LIMIT}"
    );
    let threads = status_field(pid, "Threads:");
    assert!(
        threads <= threads_before + 4,
        "{threads} threads with {FLOOD} connections, {threads_before} before"
    );
    drop(flood);
    // The connections are gone; the server answers.
    let (status, _, _) = get(&agent(), &format!("http://{addr}/?OBJ=IIP,1.0"));
    assert_eq!(status, 200);
}

/// A heavy export, run on the heavy pool after admission, gets what the request path adds
/// after the work: its image `ETag`, the echoed CORS origin with `Vary: Origin`, and a 304 for
/// a matching `If-None-Match` (answered before any work).
#[test]
fn a_heavy_export_gets_its_etag_and_cors_origin_like_a_light_one() {
    let s = server(&[
        ("CORS", "https://main.example"),
        ("IIPSRV_CORS_ORIGINS", "https://other.example"),
    ]);
    let url = format!("http://{}{HEAVY}", s.tcp_addr());
    let (status, h, body) = crate::support::read_response(
        agent()
            .get(&url)
            .set("Origin", "https://other.example")
            .call(),
        &url,
    );
    assert_eq!(status, 200, "{}", s.log());
    assert!(body.starts_with(&[0xff, 0xd8]));
    assert!(s.log().contains("heavy export"), "not heavy: {}", s.log());
    assert_eq!(
        header(&h, "Access-Control-Allow-Origin"),
        Some("https://other.example")
    );
    assert_eq!(header(&h, "Vary"), Some("Origin"));
    let etag = header(&h, "ETag")
        .expect("an ETag on a heavy export")
        .to_string();
    let (status, _, body) =
        crate::support::read_response(agent().get(&url).set("If-None-Match", &etag).call(), &url);
    assert_eq!(status, 304);
    assert!(body.is_empty());
}
