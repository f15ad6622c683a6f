//! Graceful shutdown: SIGTERM while requests are in flight loses no response.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::fcgi::{Client, Reply};
use crate::support::{TestServer, fixtures_dir_prefix};

/// Requests of mixed weight on the 1000×1000 sample: PNG region exports (the heavy ones),
/// uncompressed TIFF exports (6.75 MB, more than the socket buffers take while the client does
/// not read), JPEG tiles, IIIF regions and metadata.
fn mixed_request(i: usize) -> String {
    match i % 5 {
        0 => format!("FIF=sample.tif&WID={}&CVT=png", 900 + i),
        1 => "FIF=sample.tif&WID=1500&CVT=tiff".to_string(),
        2 => format!("FIF=sample.tif&JTL=2,{}", i % 16),
        3 => format!("IIIF=sample.tif/{},0,300,300/max/0/default.png", i),
        _ => "FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size".to_string(),
    }
}

/// A complete answer: END_REQUEST with REQUEST_COMPLETE, status 200, and a whole body (an
/// image that ends where its format says it ends, or the metadata line).
fn assert_complete(i: usize, query: &str, reply: &std::io::Result<Reply>) {
    let reply = match reply {
        Ok(r) => r,
        Err(e) => panic!("request {i} ({query}): no complete reply: {e}"),
    };
    assert_eq!(reply.protocol_status, 0, "request {i} ({query})");
    assert_eq!(reply.status(), 200, "request {i} ({query})");
    let body = reply.body();
    if let Some(len) = reply.header("Content-Length") {
        assert_eq!(len.parse::<usize>().unwrap(), body.len(), "request {i}");
    }
    if query.contains("png") {
        assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"), "request {i}");
        assert!(
            body.ends_with(b"IEND\xae\x42\x60\x82"),
            "request {i}: PNG cut"
        );
    } else if query.contains("tiff") {
        assert!(body.starts_with(b"II*\0") || body.starts_with(b"MM\0*"));
        assert!(body.len() > 1500 * 1500 * 3, "request {i}: TIFF cut");
    } else if query.contains("JTL") {
        assert!(body.starts_with(&[0xFF, 0xD8]) && body.ends_with(&[0xFF, 0xD9]));
    } else {
        assert_eq!(body, b"Max-size:1000 1000\r\n", "request {i}");
    }
}

/// Connections waiting in the listening socket's accept queue (`ss` Recv-Q), or `None` when
/// the socket is not listed.
fn accept_queue(port: u16) -> Option<u64> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss is needed: apt-get install iproute2");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace().nth(1).and_then(|q| q.parse().ok())
}

/// Whether client `i` reads its answer only after the signal: every other one, so that some
/// responses are still being written (held up by a client that does not read yet, beyond what
/// the socket buffers take) when the work is already done.
fn reads_late(i: usize) -> bool {
    i % 2 == 1
}

/// Wait until `signalled` is set (by the test, right after it sends the signal).
fn wait_for(signalled: &AtomicBool) {
    while !signalled.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// 50 requests over FastCGI, each on its own connection, SIGTERM once the server has accepted
/// them all and answered fewer than all; half the clients read their answer only after the
/// signal. Every request gets its complete response before the process exits (0), within
/// IIPSRV_SHUTDOWN_TIMEOUT.
#[test]
fn sigterm_mid_flight_loses_no_response() {
    const REQUESTS: usize = 50;
    let prefix = fixtures_dir_prefix();
    let mut server = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", prefix.as_str()),
        ("IIPSRV_WORKERS", "2"),
        ("IIPSRV_SHUTDOWN_TIMEOUT", "60"),
        // Heavy exports run many at once at the workers' priority and wait for admission as
        // long as shutdown lets them: on a machine busy with other processes, two threads at
        // a lower priority would not get through them before admission closes (this test is
        // about shutdown, not admission).
        ("IIPSRV_QUEUE_TIMEOUT", "120"),
        ("IIPSRV_HEAVY_THREADS", "8"),
        ("IIPSRV_HEAVY_NICE", "0"),
        ("MAX_IMAGE_CACHE_SIZE", "0"),
        ("TIFF_COMPRESSION", "0"),
        ("VERBOSITY", "1"),
    ]);
    let addr = server.tcp_addr();
    let done = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (done, sent, signalled) = (done.clone(), sent.clone(), signalled.clone());
            std::thread::spawn(move || {
                let query = mixed_request(i);
                let reply = Client::connect_tcp(addr).and_then(|mut c| {
                    c.set_timeout(Some(Duration::from_secs(120)))?;
                    let mut out = crate::common::fcgi::begin_request(1, 1, false);
                    let params = crate::common::fcgi::encode_params(&[
                        (b"REQUEST_METHOD", b"GET"),
                        (b"QUERY_STRING", query.as_bytes()),
                    ]);
                    out.extend(crate::common::fcgi::stream_records(4, 1, &params, 65535));
                    out.extend(crate::common::fcgi::stream_records(5, 1, b"", 65535));
                    c.send_raw(&out)?;
                    sent.fetch_add(1, Ordering::SeqCst);
                    if reads_late(i) {
                        wait_for(&signalled);
                    }
                    c.read_reply(1)
                });
                done.fetch_add(1, Ordering::SeqCst);
                (query, reply)
            })
        })
        .collect();
    // Every request sent and every connection accepted (none left in the accept queue).
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(Ordering::SeqCst) < REQUESTS || accept_queue(addr.port()) != Some(0) {
        assert!(Instant::now() < deadline, "requests not accepted in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    let answered_before = done.load(Ordering::SeqCst);
    server.signal(libc::SIGTERM);
    signalled.store(true, Ordering::SeqCst);
    let status = server.wait_exit(Duration::from_secs(90));
    assert!(
        answered_before < REQUESTS / 2,
        "the signal came after every prompt answer: no work was in flight"
    );
    let status = status.expect("iipsrv exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    for (i, client) in clients.into_iter().enumerate() {
        let (query, reply) = client.join().unwrap();
        assert_complete(i, &query, &reply);
    }
    let log = server.log();
    assert!(log.contains("Caught Terminated signal"), "{log}");
    eprintln!("SIGTERM with {} of {REQUESTS} answered", answered_before);
}

/// The same over the HTTP listener: 20 requests on their own connections (half of them read
/// late), SIGTERM once all are accepted; every response arrives whole (hyper's graceful shutdown finishes the request
/// in progress, and the process waits for the connection to flush and close).
#[test]
fn sigterm_mid_flight_over_http_loses_no_response() {
    const REQUESTS: usize = 20;
    let prefix = fixtures_dir_prefix();
    let mut server = TestServer::http(&[
        ("FILESYSTEM_PREFIX", prefix.as_str()),
        ("IIPSRV_WORKERS", "2"),
        ("IIPSRV_SHUTDOWN_TIMEOUT", "60"),
        // Heavy exports run many at once at the workers' priority and wait for admission as
        // long as shutdown lets them: on a machine busy with other processes, two threads at
        // a lower priority would not get through them before admission closes (this test is
        // about shutdown, not admission).
        ("IIPSRV_QUEUE_TIMEOUT", "120"),
        ("IIPSRV_HEAVY_THREADS", "8"),
        ("IIPSRV_HEAVY_NICE", "0"),
        ("MAX_IMAGE_CACHE_SIZE", "0"),
        ("TIFF_COMPRESSION", "0"),
        ("VERBOSITY", "1"),
    ]);
    let addr = server.tcp_addr();
    let done = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let signalled = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (done, sent, signalled) = (done.clone(), sent.clone(), signalled.clone());
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let query = mixed_request(i);
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                let request =
                    format!("GET /fcgi-bin/iipsrv.fcgi?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
                s.write_all(request.as_bytes()).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                if reads_late(i) {
                    wait_for(&signalled);
                }
                let mut answer = Vec::new();
                let read = s.read_to_end(&mut answer);
                done.fetch_add(1, Ordering::SeqCst);
                (query, read.map(|_| answer))
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent.load(Ordering::SeqCst) < REQUESTS || accept_queue(addr.port()) != Some(0) {
        assert!(Instant::now() < deadline, "requests not accepted in time");
        std::thread::sleep(Duration::from_millis(5));
    }
    let answered_before = done.load(Ordering::SeqCst);
    server.signal(libc::SIGTERM);
    signalled.store(true, Ordering::SeqCst);
    let status = server.wait_exit(Duration::from_secs(90));
    assert!(answered_before < REQUESTS / 2, "no work was in flight");
    assert!(status.expect("iipsrv exits after SIGTERM").success());
    for (i, client) in clients.into_iter().enumerate() {
        let (query, answer) = client.join().unwrap();
        let answer = answer.unwrap_or_else(|e| panic!("request {i} ({query}): {e}"));
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("request {i} ({query}): no complete header"));
        let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "request {i}: {head}");
        let body = &answer[head_end + 4..];
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("request {i}: no Content-Length: {head}"));
        assert_eq!(body.len(), length, "request {i} ({query}): body cut");
    }
}
