//! FastCGI against the built binary: TCP and UNIX sockets, spawn-fcgi (fd 0), edge cases of
//! the record layer, bad input, and many idle connections.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::fcgi::{self, Client};
use crate::support::{Addr, TestServer, require};

fn client(s: &TestServer) -> Client {
    let mut c = match &s.addr {
        Addr::Tcp(a) => Client::connect_tcp(a).unwrap(),
        Addr::Unix(p) => Client::connect_unix(p).unwrap(),
    };
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// The exact bytes of iipsrv's banner response for an empty request.
fn assert_banner(reply: &fcgi::Reply) {
    let text = String::from_utf8_lossy(&reply.stdout).into_owned();
    assert!(
        text.starts_with(
            "Server: iipsrv/1.3\r\nContent-Type: text/html\r\nContent-Disposition: inline;filename=\"iipsrv.html\"\r\nStatus: 200 OK\r\n\r\n<!DOCTYPE html>"
        ),
        "{text}"
    );
    assert_eq!(reply.protocol_status, 0);
}

#[test]
fn tcp_and_unix_serve_the_same_answers() {
    for s in [TestServer::tcp(&[]), TestServer::unix(&[])] {
        let mut c = client(&s);
        assert_banner(&c.get("", true).unwrap());
        let r = c.get("OBJ=IIP,1.0&OBJ=IIP-server", true).unwrap();
        assert_eq!(
            r.stdout,
            b"Server: iipsrv/1.3\r\nX-Powered-By: IIPImage\r\nCache-Control: max-age=86400\r\nContent-Type: application/vnd.netfpx\r\nIIP: 1.3\r\n\r\nIIP-server:3.65\r\n"
        );
        let r = c.get("OBJ=foo", false).unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.body(), b"Error/7:3 2 foo\r\n");
    }
}

#[test]
fn spawn_fcgi_hands_over_fd0_tcp_and_unix() {
    if !require("spawn-fcgi", "spawn-fcgi") {
        return;
    }
    for unix in [false, true] {
        let s = TestServer::spawn_fcgi(unix, &[]);
        let mut c = client(&s);
        let r = c.get("OBJ=IIP,1.0&OBJ=IIP-server", false).unwrap();
        assert_eq!(r.body(), b"IIP-server:3.65\r\n", "unix={unix}");
        assert!(s.log().contains("Running in FCGI mode"), "{}", s.log());
    }
}

#[test]
fn record_layer_edge_cases() {
    let s = TestServer::tcp(&[]);

    // A name-value pair split across PARAMS records, and a non-UTF-8 byte kept.
    let mut c = client(&s);
    let params = fcgi::encode_params(&[
        (b"REQUEST_METHOD", b"GET"),
        (b"QUERY_STRING", b"FIF=caf\xe9.tif&OBJ=Max-size"),
    ]);
    let mut out = fcgi::begin_request(1, 1, true);
    out.extend(fcgi::stream_records_cut_at(4, 1, &params, &[3, 9, 20]));
    out.extend(fcgi::record(5, 1, b""));
    out.extend(fcgi::record(5, 1, b"")); // a second empty STDIN, as fastcgi-client sends
    c.send_raw(&out).unwrap();
    let r = c.read_reply(1).unwrap();
    assert_eq!(r.status(), 404);
    // The byte reached the image key; the text/plain; charset=utf-8 body shows it as U+FFFD.
    assert_eq!(
        String::from_utf8(r.body().to_vec()).unwrap(),
        "caf\u{fffd}.tif is neither a file nor part of an image sequence"
    );

    // The same connection keeps working (keep-alive), and GET_VALUES answers MPXS_CONNS=0.
    let v = c
        .get_values(&["FCGI_MPXS_CONNS", "FCGI_MAX_CONNS"])
        .unwrap();
    assert!(v.contains(&("FCGI_MPXS_CONNS".into(), "0".into())), "{v:?}");
    assert!(v.iter().any(|(k, _)| k == "FCGI_MAX_CONNS"));
    assert_banner(&c.get("", true).unwrap());

    // A second request id while one is open: CANT_MPX_CONN.
    let mut c = client(&s);
    let mut out = fcgi::begin_request(1, 1, true);
    out.extend(fcgi::begin_request(2, 1, true));
    c.send_raw(&out).unwrap();
    let rec = c.read_record().unwrap().expect("a record");
    assert_eq!(rec.request_id, 2);
    assert_eq!(
        rec.end_request().map(|(_, st)| st),
        Some(1),
        "CANT_MPX_CONN"
    );

    // Unknown role.
    let mut c = client(&s);
    c.send_raw(&fcgi::begin_request(1, 9, false)).unwrap();
    let rec = c.read_record().unwrap().expect("a record");
    assert_eq!(rec.end_request().map(|(_, st)| st), Some(3), "UNKNOWN_ROLE");
}

#[test]
fn bad_input_never_hurts_other_connections() {
    let s = TestServer::tcp(&[]);
    let addr = s.tcp_addr();

    // Garbage closes that connection only.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    g.write_all(&[0xff; 4096]).unwrap();

    // A 1 MB QUERY_STRING is refused with 431 and the connection still serves.
    let mut c = client(&s);
    let big = "A".repeat(1_000_000);
    let r = c.get(&big, true).unwrap();
    assert_eq!(r.status(), 431);
    assert_banner(&c.get("", true).unwrap());

    // A client that goes away mid-response.
    let mut d = client(&s);
    d.send_raw(&{
        let mut out = fcgi::begin_request(1, 1, false);
        out.extend(fcgi::stream_records(
            4,
            1,
            &fcgi::encode_params(&[(b"QUERY_STRING", b"")]),
            65535,
        ));
        out.extend(fcgi::record(5, 1, b""));
        out
    })
    .unwrap();
    drop(d);

    // 1000 idle connections do not stop new requests.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() >= 900, "opened {}", idle.len());
    let mut c = client(&s);
    let r = c.get("OBJ=IIP,1.0&OBJ=IIP-server", false).unwrap();
    assert_eq!(r.body(), b"IIP-server:3.65\r\n");
    // Memory stays bounded: the idle connections and the refused 1 MB request cost little.
    let rss_kb = rss_kb(s.child.id());
    assert!(rss_kb < 150_000, "resident memory {rss_kb} kB");
    drop(idle);

    // The process is still alive and serving.
    let mut c = client(&s);
    assert_banner(&c.get("", false).unwrap());
}

#[test]
fn missing_request_method_is_get() {
    let s = TestServer::tcp(&[]);
    let mut c = client(&s);
    let r = c
        .request(
            &[(b"QUERY_STRING", b"OBJ=IIP,1.0&OBJ=IIP-server")],
            b"",
            false,
        )
        .unwrap();
    assert_eq!(r.body(), b"IIP-server:3.65\r\n");
}

#[test]
fn backlog_reaches_listen() {
    if !std::path::Path::new("/usr/bin/ss").exists() && !std::path::Path::new("/bin/ss").exists() {
        panic!("ss is needed: apt-get install iproute2");
    }
    let port = crate::support::free_port();
    let child = crate::support::Process::spawn(
        std::process::Command::new(crate::support::BIN)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--backlog", "777"])
            .env("VERBOSITY", "0"),
        9,
    )
    .unwrap();
    let mut seen = String::new();
    for _ in 0..200 {
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .unwrap();
        seen = String::from_utf8_lossy(&out.stdout).into_owned();
        if !seen.trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    // ss -l shows the backlog in the Send-Q column.
    let send_q: Vec<&str> = seen.split_whitespace().collect();
    assert_eq!(send_q.get(2), Some(&"777"), "{seen}");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
