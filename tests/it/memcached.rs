//! memcached with a real memcached on loopback: the client library on its own, entries shared
//! with Debian's iipsrv (libmemcached), and the built binary using the response cache.
//!
//! Tests marked `// needs the App hook` expect `protocols::respond` to look responses up and store
//! them (`docs/behaviour/cache.md` §5); they fail until that hook exists.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use iipsrv::cache::memcached::{IO_TIMEOUT, Memcached, key_for};

use crate::common::fcgi::{Client, Reply};
use crate::support::{
    Addr, MemcachedServer, Process, TestServer, fixtures_prefix, free_port, require,
};

const MAX_SIZE: &str = "FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size";

/// Debian's iipsrv (package iipimage-server), built with libmemcached.
const DEBIAN_IIPSRV: &str = "/usr/lib/iipimage-server/iipsrv.fcgi";

fn client(s: &TestServer) -> Client {
    match &s.addr {
        Addr::Tcp(a) => Client::connect_tcp(a).unwrap(),
        Addr::Unix(p) => Client::connect_unix(p).unwrap(),
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn server_with(m: &str, extra: &[(&str, &str)]) -> TestServer {
    let prefix = fixtures_prefix();
    let mut env = vec![
        ("MEMCACHED_SERVERS", m),
        ("FILESYSTEM_PREFIX", prefix.as_str()),
    ];
    env.extend_from_slice(extra);
    TestServer::tcp(&env)
}

#[test]
fn client_against_a_real_memcached() {
    if !require("memcached", "memcached") {
        return;
    }
    let m = MemcachedServer::start();
    let mc = Memcached::new(&m.addr(), 3600).unwrap();
    wait_until("the connection", Duration::from_secs(5), || mc.is_up(b"x"));
    let response = b"Server: iipsrv/1.3\r\nContent-Type: text/plain\r\n\r\nMax-size:1 1\r\n";

    // Keys a text-protocol client could not send: spaces, CR LF, NUL, bytes >= 0x80.
    let requests: [&[u8]; 5] = [
        MAX_SIZE.as_bytes(),
        b"FIF=a b.tif&OBJ=Max-size",
        b"FIF=x\r\n.tif",
        b"FIF=\0\x01\x7f",
        b"FIF=\xe9\xff.tif",
    ];
    for r in requests {
        assert_eq!(mc.get(r), None);
        mc.set(r, response);
    }
    wait_until("the stores", Duration::from_secs(5), || {
        mc.stats().stored == 5
    });
    for r in requests {
        assert_eq!(mc.get(r).as_deref(), Some(&response[..]), "{r:?}");
        // Stored under iipsrv's exact key.
        let mut key = b"iipsrv::".to_vec();
        key.extend_from_slice(r);
        assert_eq!(m.get(&key).as_deref(), Some(&response[..]), "{r:?}");
    }

    // A request string too long for a key: stored under a hashed key of our own.
    let long = format!("IIIF={}/full/max/0/default.jpg", "d/".repeat(150));
    mc.set(long.as_bytes(), response);
    wait_until("the store", Duration::from_secs(5), || {
        mc.stats().stored == 6
    });
    assert_eq!(mc.get(long.as_bytes()).as_deref(), Some(&response[..]));
    let hashed = key_for(long.as_bytes());
    assert!(hashed.starts_with(b"iipsrv#sha256:"));
    assert!(m.get(&hashed).is_some());

    // Over memcached's 1 MB item limit: never sent.
    let sets = m.stat("cmd_set");
    let mut big = response.to_vec();
    big.resize(1024 * 1024, b'x');
    mc.set(b"FIF=big.tif&CVT=jpeg", &big);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(m.stat("cmd_set"), sets);
    assert!(mc.stats().dropped >= 1);
}

/// Debian's iipsrv under spawn-fcgi (TCP), killed on drop.
struct DebianIipsrv {
    _child: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl DebianIipsrv {
    fn start(memcached_servers: &str) -> DebianIipsrv {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Process::spawn(
            Command::new("spawn-fcgi")
                .args(["-n", "-a", "127.0.0.1", "-p", &port.to_string(), "--"])
                .arg(DEBIAN_IIPSRV)
                .env_clear()
                .env("LOGFILE", dir.path().join("iipsrv.log"))
                .env("VERBOSITY", "0")
                .env("MEMCACHED_SERVERS", memcached_servers)
                .env("FILESYSTEM_PREFIX", fixtures_prefix())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            9,
        )
        .expect("spawn-fcgi is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Debian's iipsrv did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        DebianIipsrv {
            _child: child,
            port,
            _dir: dir,
        }
    }

    fn get(&self, query: &str) -> Reply {
        Client::connect_tcp(("127.0.0.1", self.port))
            .unwrap()
            .get(query, false)
            .unwrap()
    }
}

/// A mixed fleet: entries stored by iipsrv (libmemcached, two servers) are found by this
/// client, in the server libmemcached chose, and iipsrv answers from entries we store.
#[test]
fn entries_are_shared_with_iipsrv() {
    if !require("memcached", "memcached") || !require("spawn-fcgi", "spawn-fcgi") {
        return;
    }
    assert!(
        Path::new(DEBIAN_IIPSRV).exists(),
        "Debian's iipsrv is needed: apt-get install iipimage-server (or run .ci/run)"
    );
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let servers = format!("{},{}", a.addr(), b.addr());
    let upstream = DebianIipsrv::start(&servers);
    let queries = [
        MAX_SIZE,
        "FIF=sample.tif&OBJ=Resolutions",
        "FIF=sample.tif&OBJ=Tile-size",
        "FIF=sample.tif&JTL=0,0",
        "FIF=sample.tif&JTL=1,0",
        "FIF=sample.tif&JTL=1,1",
        "FIF=sample.tif&JTL=2,3",
        "FIF=sample.tif&JTL=2,7",
    ];
    let answers: Vec<Reply> = queries.iter().map(|q| upstream.get(q)).collect();
    wait_until("iipsrv's stores", Duration::from_secs(5), || {
        a.stat("curr_items") + b.stat("curr_items") == queries.len() as u64
    });
    assert!(
        a.stat("curr_items") > 0 && b.stat("curr_items") > 0,
        "the keys spread over both servers"
    );

    let mc = Memcached::new(&servers, 60).unwrap();
    wait_until("the connections", Duration::from_secs(5), || {
        queries.iter().all(|q| mc.is_up(q.as_bytes()))
    });
    for (q, answer) in queries.iter().zip(&answers) {
        assert_eq!(
            mc.get(q.as_bytes()).as_deref(),
            Some(&answer.stdout[..]),
            "{q}"
        );
    }

    // The other way round: iipsrv serves what we stored (its lookup is a hit).
    let query = "FIF=sample.tif&OBJ=Horizontal-views";
    let ours =
        b"Server: iipsrv/1.3\r\nContent-Type: text/plain\r\n\r\nstored by the Rust server\r\n";
    mc.set(query.as_bytes(), ours);
    wait_until("our store", Duration::from_secs(5), || {
        mc.stats().stored == 1
    });
    assert_eq!(upstream.get(query).stdout, ours);
}

#[test]
fn repeated_request_is_a_hit() {
    // needs the App hook
    if !require("memcached", "memcached") {
        return;
    }
    let m = MemcachedServer::start();
    let s = server_with(&m.addr(), &[]);
    let mut c = client(&s);
    let first = c.get(MAX_SIZE, true).unwrap();
    assert_eq!(first.status(), 200);
    wait_until(
        "the response in memcached (needs the App hook)",
        Duration::from_secs(5),
        || m.stat("curr_items") == 1,
    );
    assert_eq!(
        m.get(format!("iipsrv::{MAX_SIZE}").as_bytes()).as_deref(),
        Some(&first.stdout[..]),
        "headers and body are stored"
    );
    // (Reading the entry above counted as a hit too.)
    let hits = m.stat("get_hits");
    let second = c.get(MAX_SIZE, true).unwrap();
    assert_eq!(second.stdout, first.stdout);
    assert_eq!(m.stat("get_hits"), hits + 1);

    // If-Modified-Since skips the lookup.
    let lm = first.header("Last-Modified").expect("Last-Modified");
    let r = c
        .request(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"QUERY_STRING", MAX_SIZE.as_bytes()),
                (b"HTTP_IF_MODIFIED_SINCE", lm.as_bytes()),
            ],
            b"",
            true,
        )
        .unwrap();
    assert_eq!(r.status(), 304);
    // A 404 is not stored.
    let r = c.get("FIF=missing.tif&OBJ=Max-size", true).unwrap();
    assert_eq!(r.status(), 404);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(m.stat("get_hits"), hits + 1);
    assert_eq!(m.stat("curr_items"), 1);
}

#[test]
fn changed_image_is_not_served_stale() {
    // needs the App hook
    if !require("memcached", "memcached") {
        return;
    }
    let images = tempfile::tempdir().unwrap();
    let image = images.path().join("sample.tif");
    std::fs::copy(Path::new(&fixtures_prefix()).join("sample.tif"), &image).unwrap();
    let set_mtime = |secs: u64| {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let f = std::fs::File::options().write(true).open(&image).unwrap();
        f.set_modified(t).unwrap();
    };
    set_mtime(1_700_000_000);
    let m = MemcachedServer::start();
    let prefix = format!("{}/", images.path().display());
    let s = TestServer::tcp(&[
        ("MEMCACHED_SERVERS", &m.addr()),
        ("FILESYSTEM_PREFIX", &prefix),
    ]);
    let mut c = client(&s);
    let old = c.get(MAX_SIZE, true).unwrap();
    assert_eq!(
        old.header("Last-Modified").as_deref(),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
    wait_until(
        "the response in memcached (needs the App hook)",
        Duration::from_secs(5),
        || m.stat("curr_items") == 1,
    );
    assert_eq!(c.get(MAX_SIZE, true).unwrap().stdout, old.stdout);
    assert_eq!(m.stat("get_hits"), 1);

    // The image is replaced: iipsrv would serve the old entry until it expires; we do not.
    set_mtime(1_700_000_100);
    let new = c.get(MAX_SIZE, true).unwrap();
    assert_eq!(
        new.header("Last-Modified").as_deref(),
        Some("Tue, 14 Nov 2023 22:15:00 GMT")
    );
    // ... and the fresh response replaces the entry.
    let key = format!("iipsrv::{MAX_SIZE}");
    wait_until("the entry to be replaced", Duration::from_secs(5), || {
        m.get(key.as_bytes()).as_deref() == Some(&new.stdout[..])
    });
    assert_eq!(c.get(MAX_SIZE, true).unwrap().stdout, new.stdout);
}

#[test]
fn memcached_killed_mid_run_loses_no_request() {
    // needs the App hook
    if !require("memcached", "memcached") {
        return;
    }
    let mut m = MemcachedServer::start();
    let port = m.port;
    let s = server_with(&m.addr(), &[]);
    let queries = [
        MAX_SIZE,
        "FIF=sample.tif&OBJ=Resolutions",
        "FIF=sample.tif&OBJ=Tile-size",
        "FIF=sample.tif&OBJ=IIP,1.0&OBJ=Horizontal-views",
    ];
    let mut c = client(&s);
    let expected: HashMap<&str, Vec<u8>> = queries
        .iter()
        .map(|q| (*q, c.get(q, true).unwrap().stdout))
        .collect();
    wait_until(
        "the responses in memcached (needs the App hook)",
        Duration::from_secs(5),
        || m.stat("curr_items") == queries.len() as u64,
    );
    let check = |c: &mut Client, i: usize| {
        let q = queries[i % queries.len()];
        let r = c.get(q, true).unwrap();
        assert_eq!(r.stdout, expected[q], "request {i}: {q}");
    };
    for i in 0..100 {
        check(&mut c, i);
    }
    assert!(m.stat("get_hits") >= 90);

    // Killed while requests keep coming, on several connections at once.
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let s = &s;
                let check = &check;
                scope.spawn(move || {
                    let mut c = client(s);
                    for i in 0..300 {
                        check(&mut c, i + t);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        m.kill();
        for h in handles {
            h.join().unwrap();
        }
    });

    // Back on the same port: used again (empty, so stores first, then hits).
    let m = MemcachedServer::start_on(port);
    wait_until(
        "hits on the restarted memcached",
        Duration::from_secs(20),
        || {
            for i in 0..queries.len() {
                check(&mut c, i);
            }
            m.stat("get_hits") > 0
        },
    );
}

/// Median and maximum of `n` requests on one keep-alive connection.
fn timings(s: &TestServer, n: usize) -> (Duration, Duration) {
    let mut c = client(s);
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let r = c.get("OBJ=IIP,1.0&OBJ=IIP-server", true).unwrap();
            assert_eq!(r.status(), 200);
            start.elapsed()
        })
        .collect();
    t.sort();
    (t[n / 2], t[n - 1])
}

#[test]
fn unreachable_memcached_adds_no_latency() {
    // needs the App hook (without it, memcached is never asked and this passes trivially)
    // Refused: nothing listens on the port. Silent: a socket that is never accepted (the
    // kernel completes the handshake, nobody ever answers), as a hung memcached behaves.
    let refused = format!("127.0.0.1:{}", free_port());
    let never_accepts = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = never_accepts.local_addr().unwrap().to_string();
    let baseline = timings(&server_with("", &[]), 200);
    for servers in [refused, silent.clone(), format!("{silent},{}", free_port())] {
        let s = server_with(&servers, &[]);
        let (median, max) = timings(&s, 200);
        assert!(
            median < baseline.0 + Duration::from_millis(2),
            "{servers}: median {median:?}, without memcached {:?}",
            baseline.0
        );
        assert!(
            max < IO_TIMEOUT * 4 + baseline.1,
            "{servers}: slowest {max:?}, without memcached {:?}",
            baseline.1
        );
    }
}
