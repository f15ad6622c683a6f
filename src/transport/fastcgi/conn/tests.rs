//! Tests of the connection states, through the raw-record client of the integration tests.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::Notify;

use super::*;
use crate::transport::fastcgi::test_client::{self as fcgi, Client};

/// A responder that echoes its parameters and body, or plays a part chosen by QUERY_STRING:
/// `wait` blocks until released, `big` answers 1,000,000 bytes.
#[derive(Default)]
struct Echo {
    release: Notify,
    calls: AtomicUsize,
    dropped_unfinished: AtomicUsize,
}

/// Counts a `wait` response that was dropped before it finished.
struct Unfinished<'a>(&'a AtomicUsize, bool);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn big_body() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

impl Responder for Echo {
    async fn respond(&self, request: Request) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut body = Vec::new();
        match request.param("QUERY_STRING").unwrap_or_default() {
            b"wait" => {
                let mut guard = Unfinished(&self.dropped_unfinished, false);
                self.release.notified().await;
                guard.1 = true;
                body.extend_from_slice(b"released");
            }
            b"big" => body = big_body(),
            _ => {
                for (name, value) in request.params() {
                    body.extend_from_slice(name);
                    body.push(b'=');
                    body.extend_from_slice(value);
                    body.push(b'\n');
                }
                body.extend_from_slice(b"body=");
                body.extend_from_slice(&request.body);
            }
        }
        let mut response = Response::empty();
        response.push("Content-Type", "text/plain");
        response.body = body.into();
        response
    }
}

/// `serve_connection` on its own thread and runtime, so the test body can use the blocking
/// client directly.
struct Server {
    app: Arc<Echo>,
    shutdown: watch::Sender<bool>,
    done: mpsc::Receiver<io::Result<()>>,
}

impl Server {
    fn start(limits: Limits) -> (Client, Server) {
        let (client_end, server_end) = UnixStream::pair().unwrap();
        let app = Arc::new(Echo::default());
        let (shutdown, rx) = watch::channel(false);
        let (tx, done) = mpsc::channel();
        let responder = app.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let result = rt.block_on(async move {
                server_end.set_nonblocking(true)?;
                let stream = tokio::net::UnixStream::from_std(server_end)?;
                serve_connection(stream, responder, limits, rx).await
            });
            let _ = tx.send(result);
        });
        (
            Client::from_unix(client_end),
            Server {
                app,
                shutdown,
                done,
            },
        )
    }

    /// Drop the client, then return the result of `serve_connection`.
    fn finish(&self, client: Client) -> io::Result<()> {
        drop(client);
        self.result()
    }

    /// The result of `serve_connection`, which must have ended (or end within seconds).
    fn result(&self) -> io::Result<()> {
        self.done
            .recv_timeout(Duration::from_secs(10))
            .expect("serve_connection did not end")
    }

    fn still_running(&self) -> bool {
        matches!(self.done.try_recv(), Err(mpsc::TryRecvError::Empty))
    }
}

fn limits() -> Limits {
    Limits {
        max_conns: 7,
        ..Limits::default()
    }
}

fn body_text(reply: &fcgi::Reply) -> String {
    String::from_utf8_lossy(reply.body()).into_owned()
}

fn assert_complete(reply: &fcgi::Reply) {
    assert_eq!(
        (reply.app_status, reply.protocol_status),
        (0, fcgi::REQUEST_COMPLETE)
    );
    assert!(reply.stderr.is_empty());
}

fn request_bytes(id: u16, keep_conn: bool, query: &[u8]) -> Vec<u8> {
    let mut out = fcgi::begin_request(id, fcgi::RESPONDER, keep_conn);
    let params = fcgi::encode_params(&[(b"QUERY_STRING", query)]);
    out.extend(fcgi::stream_records(fcgi::PARAMS, id, &params, 65535));
    out.extend(fcgi::stream_records(fcgi::STDIN, id, b"", 65535));
    out
}

#[test]
fn future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (stream, _other) = tokio::io::duplex(64);
    let (_tx, rx) = watch::channel(false);
    let fut = serve_connection(stream, Arc::new(Echo::default()), limits(), rx);
    assert_send(&fut);
}

#[test]
fn one_request_then_close_without_keep_conn() {
    let (mut c, server) = Server::start(limits());
    let reply = c.get("FIF=a.tif&OBJ=IIP,1.0", false).unwrap();
    assert_complete(&reply);
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.header("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(
        body_text(&reply),
        "FCGI_ROLE=RESPONDER\nREQUEST_METHOD=GET\nQUERY_STRING=FIF=a.tif&OBJ=IIP,1.0\nbody="
    );
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn lingering_close_is_bounded() {
    // The client neither closes nor sends: the server still lets go after `LINGER`.
    let (mut c, server) = Server::start(limits());
    assert_complete(&c.get("x", false).unwrap());
    let started = std::time::Instant::now();
    server.result().unwrap();
    assert!(started.elapsed() < LINGER + Duration::from_secs(1));
    assert!(c.is_closed().unwrap());
}

#[test]
fn keep_alive_serves_requests_in_sequence() {
    let (mut c, server) = Server::start(limits());
    for i in 0..3 {
        let reply = c.get(&format!("n={i}"), true).unwrap();
        assert_complete(&reply);
        assert!(body_text(&reply).contains(&format!("QUERY_STRING=n={i}\n")));
    }
    assert!(server.still_running());
    drop(c);
    server.result().unwrap();
    assert_eq!(server.app.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn params_split_anywhere_are_reassembled() {
    let long = vec![b'x'; 300]; // 4-byte value length
    let pairs: &[(&[u8], &[u8])] = &[(b"QUERY_STRING", b"a=b"), (b"HTTP_LONG", &long)];
    let wire = fcgi::encode_params(pairs);
    let (mut c, server) = Server::start(limits());
    // Cut inside the first pair's name, inside the 4-byte length, inside the value.
    for cuts in [vec![1], vec![5, 17, 18, 19, 20, 21], vec![29, 200]] {
        let mut out = fcgi::begin_request(1, fcgi::RESPONDER, true);
        out.extend(fcgi::stream_records_cut_at(fcgi::PARAMS, 1, &wire, &cuts));
        out.extend(fcgi::stream_records(fcgi::STDIN, 1, b"", 1));
        c.send_raw(&out).unwrap();
        let reply = c.read_reply(1).unwrap();
        let text = body_text(&reply);
        assert!(text.contains("QUERY_STRING=a=b\n"), "{cuts:?}: {text}");
        assert!(
            text.contains(&format!("HTTP_LONG={}\n", "x".repeat(300))),
            "{cuts:?}"
        );
    }
    // One byte per record.
    c.max_record = 1;
    let reply = c.request(pairs, b"", false).unwrap();
    assert!(body_text(&reply).contains("QUERY_STRING=a=b\n"));
    server.finish(c).unwrap();
}

#[test]
fn non_utf8_params_arrive_raw() {
    let (mut c, server) = Server::start(limits());
    let reply = c.request(
        &[(b"QUERY_STRING", b"FIF=\xff\xfe.tif"), (b"N\xc3", b"v")],
        b"",
        false,
    );
    let body = reply.unwrap().body().to_vec();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"\nQUERY_STRING=FIF=\xff\xfe.tif\n"));
    assert!(has(b"\nN\xc3=v\n"));
    server.finish(c).unwrap();
}

#[test]
fn request_body_is_delivered() {
    let (mut c, server) = Server::start(limits());
    c.max_record = 3;
    let reply = c.request(
        &[(b"REQUEST_METHOD", b"POST")],
        b"FIF=a.tif&OBJ=IIP,1.0",
        false,
    );
    assert!(body_text(&reply.unwrap()).ends_with("\nbody=FIF=a.tif&OBJ=IIP,1.0"));
    server.finish(c).unwrap();
}

#[test]
fn duplicate_empty_stdin_is_tolerated() {
    let (mut c, server) = Server::start(limits());
    for _ in 0..2 {
        let mut out = request_bytes(1, true, b"x=1");
        out.extend(fcgi::record(fcgi::STDIN, 1, b"")); // as fastcgi-client sends
        c.send_raw(&out).unwrap();
        assert_complete(&c.read_reply(1).unwrap());
    }
    drop(c);
    server.result().unwrap();
}

#[test]
fn stray_records_are_ignored() {
    let (mut c, server) = Server::start(limits());
    let mut out = fcgi::record(fcgi::STDIN, 5, b"late");
    out.extend(fcgi::abort_request(9));
    out.extend(fcgi::record(fcgi::PARAMS, 3, b""));
    out.extend(fcgi::record(42, 4, b"unknown type, request id 4"));
    out.extend(request_bytes(1, false, b"ok"));
    c.send_raw(&out).unwrap();
    assert!(body_text(&c.read_reply(1).unwrap()).contains("QUERY_STRING=ok"));
    server.finish(c).unwrap();
}

#[test]
fn second_request_id_gets_cant_mpx_conn() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
    let mut second = fcgi::begin_request(2, fcgi::RESPONDER, true);
    second.extend(fcgi::stream_records(fcgi::PARAMS, 2, b"", 10));
    second.extend(fcgi::stream_records(fcgi::STDIN, 2, b"", 10));
    c.send_raw(&second).unwrap();
    let end = c.read_record().unwrap().unwrap();
    assert_eq!(end.request_id, 2);
    assert_eq!(end.end_request(), Some((0, fcgi::CANT_MPX_CONN)));
    server.app.release.notify_one();
    let reply = c.read_reply(1).unwrap();
    assert_complete(&reply);
    assert_eq!(reply.body(), b"released");
    // The connection still works afterwards.
    assert_complete(&c.get("again", false).unwrap());
    server.finish(c).unwrap();
}

#[test]
fn abort_while_processing_drops_the_work() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
    // Make sure the responder is running before aborting.
    while server.app.calls.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    c.send_raw(&fcgi::abort_request(1)).unwrap();
    let reply = c.read_reply(1).unwrap();
    assert_complete(&reply);
    assert!(reply.stdout.is_empty(), "no output after an abort");
    assert_eq!(server.app.dropped_unfinished.load(Ordering::SeqCst), 1);
    assert!(body_text(&c.get("next", false).unwrap()).contains("QUERY_STRING=next"));
    server.finish(c).unwrap();
}

#[test]
fn abort_before_params_end() {
    let (mut c, server) = Server::start(limits());
    let mut out = fcgi::begin_request(1, fcgi::RESPONDER, false);
    out.extend(fcgi::record(
        fcgi::PARAMS,
        1,
        &fcgi::encode_params(&[(b"A", b"1")]),
    ));
    out.extend(fcgi::abort_request(1));
    c.send_raw(&out).unwrap();
    let reply = c.read_reply(1).unwrap();
    assert_complete(&reply);
    assert!(reply.stdout.is_empty());
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
    assert_eq!(server.app.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn get_values_answers_only_known_names() {
    let (mut c, server) = Server::start(limits());
    let values = c
        .get_values(&[
            "FCGI_MPXS_CONNS",
            "FCGI_MAX_CONNS",
            "NOT_A_NAME",
            "FCGI_MAX_REQS",
        ])
        .unwrap();
    let expect = [
        ("FCGI_MPXS_CONNS", "0"),
        ("FCGI_MAX_CONNS", "7"),
        ("FCGI_MAX_REQS", "7"),
    ];
    let expect: Vec<_> = expect
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(values, expect);
    assert!(c.get_values(&["X"]).unwrap().is_empty());
    // Repeated names are answered once.
    let names = vec!["FCGI_MAX_CONNS"; 3000];
    assert_eq!(c.get_values(&names).unwrap().len(), 1);
    // Also while a request is in progress.
    c.send_raw(&request_bytes(1, false, b"wait")).unwrap();
    assert_eq!(c.get_values(&["FCGI_MPXS_CONNS"]).unwrap().len(), 1);
    server.app.release.notify_one();
    assert_eq!(c.read_reply(1).unwrap().body(), b"released");
    server.finish(c).unwrap();
}

#[test]
fn unknown_management_type_gets_unknown_type() {
    let (mut c, server) = Server::start(limits());
    for t in [42u8, fcgi::STDOUT, fcgi::GET_VALUES_RESULT] {
        c.send_raw(&fcgi::record(t, 0, b"whatever")).unwrap();
        let rec = c.read_record().unwrap().unwrap();
        assert_eq!((rec.record_type, rec.request_id), (fcgi::UNKNOWN_TYPE, 0));
        assert_eq!(rec.content, [t, 0, 0, 0, 0, 0, 0, 0]);
    }
    assert_complete(&c.get("still fine", false).unwrap());
    server.finish(c).unwrap();
}

#[test]
fn unknown_role_is_refused_and_known_roles_accepted() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&fcgi::begin_request(1, 9, true)).unwrap();
    let end = c.read_record().unwrap().unwrap();
    assert_eq!(
        (end.request_id, end.end_request()),
        (1, Some((0, fcgi::UNKNOWN_ROLE)))
    );
    // The web server may still send the refused request's streams: strays, ignored.
    c.send_raw(&fcgi::stream_records(fcgi::PARAMS, 1, b"", 1))
        .unwrap();
    // libfcgi accepts AUTHORIZER and FILTER too; iipsrv answers them as a responder.
    let mut out = fcgi::begin_request(1, fcgi::AUTHORIZER, false);
    out.extend(fcgi::stream_records(fcgi::PARAMS, 1, b"", 1));
    out.extend(fcgi::stream_records(fcgi::STDIN, 1, b"", 1));
    c.send_raw(&out).unwrap();
    assert!(body_text(&c.read_reply(1).unwrap()).starts_with("FCGI_ROLE=AUTHORIZER\n"));
    server.finish(c).unwrap();
}

#[test]
fn unknown_role_without_keep_conn_closes() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&fcgi::begin_request(1, 0, false)).unwrap();
    let end = c.read_record().unwrap().unwrap();
    assert_eq!(end.end_request(), Some((0, fcgi::UNKNOWN_ROLE)));
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn garbage_closes_the_connection() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(c.is_closed().unwrap());
    assert_eq!(
        server.finish(c).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn garbage_after_a_good_request_closes_the_connection() {
    let (mut c, server) = Server::start(limits());
    assert_complete(&c.get("one", true).unwrap());
    c.send_raw(&[2, 1, 0, 1, 0, 8, 0, 0]).unwrap(); // version 2
    assert!(c.is_closed().unwrap());
    assert_eq!(
        server.finish(c).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn malformed_begin_request_closes_the_connection() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&fcgi::record(fcgi::BEGIN_REQUEST, 1, &[0, 1, 1]))
        .unwrap();
    assert!(c.is_closed().unwrap());
    assert_eq!(
        server.finish(c).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn oversized_params_get_431_and_the_connection_keeps_working() {
    let limits = Limits {
        max_params_bytes: 1000,
        ..limits()
    };
    let (mut c, server) = Server::start(limits);
    c.max_record = 300;
    let big = vec![b'v'; 5000];
    let reply = c.request(
        &[(b"QUERY_STRING", b"x"), (b"HTTP_COOKIE", &big)],
        b"",
        true,
    );
    let reply = reply.unwrap();
    assert_complete(&reply);
    assert_eq!(reply.status(), 431);
    assert_eq!(server.app.calls.load(Ordering::SeqCst), 0);
    // Exactly at the limit is fine.
    let value = vec![b'v'; 1000 - "QUERY_STRING".len()];
    let reply = c.request(&[(b"QUERY_STRING", &value)], b"", false).unwrap();
    assert_eq!(reply.status(), 200);
    server.finish(c).unwrap();
}

#[test]
fn oversized_body_gets_413_and_the_connection_keeps_working() {
    let limits = Limits {
        max_body_bytes: 100,
        ..limits()
    };
    let (mut c, server) = Server::start(limits);
    c.max_record = 64;
    let reply = c
        .request(&[(b"REQUEST_METHOD", b"POST")], &[b'b'; 1000], true)
        .unwrap();
    assert_complete(&reply);
    assert_eq!(reply.status(), 413);
    let reply = c
        .request(&[(b"REQUEST_METHOD", b"POST")], &[b'b'; 100], false)
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(body_text(&reply).ends_with(&format!("body={}", "b".repeat(100))));
    server.finish(c).unwrap();
}

#[test]
fn a_megabyte_response_is_split_into_padded_records() {
    for max in [65528, 65535, 1000] {
        let (mut c, server) = Server::start(Limits {
            max_record_content: max,
            ..limits()
        });
        let reply = c.get("big", false).unwrap();
        assert_complete(&reply);
        assert_eq!(reply.body(), big_body().as_slice(), "max {max}");
        let (last, full) = reply.records.split_last().unwrap();
        assert!(last.content.is_empty(), "STDOUT ends with an empty record");
        for rec in full {
            assert_eq!((rec.version, rec.record_type), (1, fcgi::STDOUT));
            assert!(!rec.content.is_empty() && rec.content.len() <= max);
            assert_eq!((rec.content.len() + rec.padding_len as usize) % 8, 0);
            assert!(rec.padding_len < 8);
        }
        // Headers and body share records: only the last data record is short.
        let total = reply.stdout.len();
        assert_eq!(full.len(), total.div_ceil(max), "max {max}");
        server.finish(c).unwrap();
    }
}

#[test]
fn client_disconnecting_mid_response_ends_quietly() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&request_bytes(1, true, b"big")).unwrap();
    let first = c.read_record().unwrap().unwrap();
    assert_eq!(first.record_type, fcgi::STDOUT);
    drop(c);
    server.result().unwrap();
}

#[test]
fn half_closed_client_still_gets_its_reply() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
    c.shutdown_write().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    server.app.release.notify_one();
    assert_eq!(c.read_reply(1).unwrap().body(), b"released");
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn incomplete_request_times_out_but_idle_connections_do_not() {
    let limits = Limits {
        request_read_timeout: Duration::from_millis(100),
        ..limits()
    };
    let (mut c, server) = Server::start(limits);
    // Idle for longer than the request timeout: still served.
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.still_running());
    assert_complete(&c.get("after idle", true).unwrap());
    // A request that starts but never finishes its PARAMS is dropped.
    let mut out = fcgi::begin_request(1, fcgi::RESPONDER, true);
    out.extend(fcgi::record(
        fcgi::PARAMS,
        1,
        &fcgi::encode_params(&[(b"A", b"1")]),
    ));
    c.send_raw(&out).unwrap();
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn shutdown_closes_idle_connections() {
    let (mut c, server) = Server::start(limits());
    assert_complete(&c.get("one", true).unwrap());
    server.shutdown.send(true).unwrap();
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn shutdown_serves_the_first_request_of_an_accepted_connection() {
    let (mut c, server) = Server::start(limits());
    server.shutdown.send(true).unwrap();
    // Accepted before the signal: its request (well within FIRST_REQUEST_GRACE) is served,
    // then the connection closes despite KEEP_CONN.
    assert_complete(&c.get("late but accepted", true).unwrap());
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn shutdown_reads_a_request_that_has_begun_to_arrive() {
    let (mut c, server) = Server::start(limits());
    assert_complete(&c.get("one", true).unwrap());
    // Half a record header, then the signal: the record is still read and served. (The pauses
    // let the server read the first bytes, then see the signal, before the rest arrives.)
    let request = request_bytes(1, true, b"two");
    c.send_raw(&request[..3]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.shutdown.send(true).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.send_raw(&request[3..]).unwrap();
    assert!(body_text(&c.read_reply(1).unwrap()).contains("QUERY_STRING=two"));
    assert!(c.is_closed().unwrap());
    server.finish(c).unwrap();
}

#[test]
fn shutdown_lets_the_request_in_progress_finish() {
    let (mut c, server) = Server::start(limits());
    c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
    while server.app.calls.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.shutdown.send(true).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    server.app.release.notify_one();
    let reply = c.read_reply(1).unwrap();
    assert_complete(&reply);
    assert_eq!(reply.body(), b"released");
    assert!(c.is_closed().unwrap(), "closed despite KEEP_CONN");
    server.finish(c).unwrap();
}

#[test]
fn dropped_shutdown_sender_does_not_close_connections() {
    let (mut c, server) = Server::start(limits());
    let Server {
        app,
        shutdown,
        done,
    } = server;
    drop(shutdown);
    assert_complete(&c.get("one", true).unwrap());
    assert_complete(&c.get("two", false).unwrap());
    let server = Server {
        app,
        shutdown: watch::channel(false).0,
        done,
    };
    server.finish(c).unwrap();
}
