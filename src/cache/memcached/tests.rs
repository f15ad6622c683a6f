//! Tests of the memcached client: keys and distribution as libmemcached's, wire frames, and
//! the failure handling against a fake server that misbehaves on purpose.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::endpoint::*;
use super::keys::*;
use super::*;

#[test]
fn server_lists_parse_as_libmemcached_does() {
    let tcp = |h: &str, p| Endpoint::Tcp {
        host: h.into(),
        port: p,
    };
    assert_eq!(parse_servers("localhost"), [tcp("localhost", 11211)]);
    assert_eq!(
        parse_servers("a:1, b ,c:0,,d:22:5,e:33 7"),
        [
            tcp("a", 1),
            tcp("b", 11211),
            tcp("c", 11211),
            tcp("d", 22),
            tcp("e", 33)
        ]
    );
    assert_eq!(
        parse_servers("[::1]:5,[fe80::1]"),
        [tcp("::1", 5), tcp("fe80::1", 11211)]
    );
    assert_eq!(
        parse_servers("/run/memcached.sock"),
        [Endpoint::Unix("/run/memcached.sock".into())]
    );
    assert_eq!(parse_servers(":7"), [tcp("localhost", 7)]);
    assert!(parse_servers("").is_empty());
    assert!(parse_servers(" , ").is_empty());
    assert_eq!(parse_servers("bad:port,ok"), [tcp("ok", 11211)]);
    assert_eq!(parse_servers("big:70000"), []);
    assert_eq!(tcp("::1", 5).to_string(), "[::1]:5");
    assert_eq!(tcp("a", 5).to_string(), "a:5");
}

#[test]
fn keys_are_iipsrvs_until_too_long() {
    assert_eq!(key_for(b"FIF=a.tif&JTL=1,0"), b"iipsrv::FIF=a.tif&JTL=1,0");
    // Spaces and control bytes stay: the binary protocol carries them.
    assert_eq!(key_for(b"a b\r\n\0"), b"iipsrv::a b\r\n\0");
    let longest = vec![b'x'; MAX_KEY_BYTES - KEY_PREFIX.len()];
    assert_eq!(key_for(&longest).len(), MAX_KEY_BYTES);
    assert!(key_for(&longest).starts_with(KEY_PREFIX));
    let long = vec![b'x'; MAX_KEY_BYTES - KEY_PREFIX.len() + 1];
    let k = key_for(&long);
    assert!(k.starts_with(HASHED_KEY_PREFIX));
    assert_eq!(k.len(), HASHED_KEY_PREFIX.len() + 64);
    assert!(k.iter().all(|b| b.is_ascii_graphic()));
    let mut other = long.clone();
    other[0] = b'y';
    assert_ne!(key_for(&other), k);
    assert_eq!(key_for(&long), k, "deterministic");
}

#[test]
fn distribution_matches_libmemcached() {
    // Where Debian's iipsrv 1.1 (libmemcached 1.1.4) put these keys with two servers.
    let cases: [(&[u8], u32, usize); 6] = [
        (
            b"iipsrv::FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size",
            3155770106,
            0,
        ),
        (b"iipsrv::FIF=sample.tif&OBJ=Resolutions", 1860060030, 0),
        (b"iipsrv::FIF=sample.tif&JTL=0,0", 1544086058, 0),
        (b"iipsrv::FIF=sample.tif&OBJ=Tile-size", 2210897418, 0),
        (b"iipsrv::FIF=sample.tif&JTL=1,0", 3756932413, 1),
        (b"iipsrv::FIF=sample.tif&JTL=1,1", 2190574213, 1),
    ];
    for (key, hash, server) in cases {
        assert_eq!(one_at_a_time(key), hash);
        assert_eq!(server_index(key, 2), server);
        assert_eq!(server_index(key, 1), 0);
    }
    // Bytes >= 0x80 are C chars: sign-extended where char is signed.
    let high = b"iipsrv::FIF=\xe9.tif&JTL=0,0";
    let expected = if std::ffi::c_char::MIN == 0 {
        2976737384
    } else {
        4027603945
    };
    assert_eq!(one_at_a_time(high), expected);
}

#[test]
fn expiry_beyond_thirty_days_becomes_absolute() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(expiry_field(0, now), 0);
    assert_eq!(expiry_field(86400, now), 86400);
    assert_eq!(expiry_field(2_592_000, now), 2_592_000);
    assert_eq!(expiry_field(2_592_001, now), 1_802_592_001);
    assert_eq!(expiry_field(u32::MAX, now), u32::MAX);
}

#[test]
fn request_frames() {
    let f = wire::request(wire::OP_SET, b"k", &[0, 0, 0, 0, 0, 0, 0, 9], b"vv");
    assert_eq!(
        &f[..12],
        &[0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0, 11],
        "magic, opcode, key length, extras length, data type, vbucket, body length"
    );
    assert_eq!(&f[24..], &[0, 0, 0, 0, 0, 0, 0, 9, b'k', b'v', b'v']);
    let mut reply: &[u8] = &[
        0x81, 0x00, 0, 0, 4, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        b'h', b'i',
    ];
    let r = wire::read_reply(&mut reply, wire::OP_GET).unwrap();
    assert_eq!((r.status, r.value()), (0, &b"hi"[..]));
    let mut wrong: &[u8] = &[
        0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert!(wire::read_reply(&mut wrong, wire::OP_GET).is_err());
}

/// What a fake server does with each connection.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// A working memcached (GET, SET, NOOP).
    Serve,
    /// Accepts and reads, never answers.
    Hang,
    /// Answers `NOOP` (the health check), never anything else: a server that hangs later.
    HangAfterNoop,
}

/// A fake memcached on 127.0.0.1 speaking the binary protocol, in a thread.
struct Fake {
    port: u16,
    items: Arc<Items>,
    stop: Arc<AtomicBool>,
}

impl Fake {
    fn start(behaviour: Behaviour) -> Fake {
        Fake::on(TcpListener::bind("127.0.0.1:0").unwrap(), behaviour)
    }

    fn on(listener: TcpListener, behaviour: Behaviour) -> Fake {
        let port = listener.local_addr().unwrap().port();
        let items = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (its, st) = (items.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (its, st) = (its.clone(), st.clone());
                        std::thread::spawn(move || serve(s, behaviour, &its, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Fake { port, items, stop }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

type Items = Mutex<HashMap<Vec<u8>, (Vec<u8>, u32)>>;

fn serve(mut s: TcpStream, behaviour: Behaviour, items: &Items, stop: &AtomicBool) {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut h = [0u8; 24];
    loop {
        if stop.load(Ordering::Relaxed) {
            return; // closes the connection, as a killed memcached would
        }
        match s.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
        let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let extras = usize::from(h[4]);
        let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let mut body = vec![0u8; len];
        s.set_read_timeout(None).unwrap();
        if s.read_exact(&mut body).is_err() {
            return;
        }
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        if behaviour == Behaviour::Hang
            || (behaviour == Behaviour::HangAfterNoop && h[1] != wire::OP_NOOP)
        {
            continue;
        }
        let key = body[extras..extras + key_len].to_vec();
        let (status, extras_out, value): (u16, Vec<u8>, Vec<u8>) = match h[1] {
            wire::OP_GET => match items.lock().unwrap().get(&key) {
                Some((v, _)) => (0, vec![0; 4], v.clone()),
                None => (1, vec![], b"Not found".to_vec()),
            },
            wire::OP_SET => {
                let exp = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                let value = body[extras + key_len..].to_vec();
                items.lock().unwrap().insert(key, (value, exp));
                (0, vec![], vec![])
            }
            wire::OP_NOOP => (0, vec![], vec![]),
            _ => (0x81, vec![], b"Unknown command".to_vec()),
        };
        let mut r = vec![0x81, h[1], 0, 0, extras_out.len() as u8, 0];
        r.extend_from_slice(&status.to_be_bytes());
        r.extend_from_slice(&((extras_out.len() + value.len()) as u32).to_be_bytes());
        r.extend_from_slice(&[0; 12]);
        r.extend_from_slice(&extras_out);
        r.extend_from_slice(&value);
        if s.write_all(&r).is_err() {
            return;
        }
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const RESPONSE: &[u8] = b"Server: iipsrv/1.3\r\nContent-Type: text/plain\r\n\r\nMax-size:1 1\r\n";

#[test]
fn empty_list_is_no_cache() {
    assert!(Memcached::new("", 86400).is_none());
    assert!(Memcached::new(" ,, ", 86400).is_none());
}

#[test]
fn round_trip_through_a_server() {
    let fake = Fake::start(Behaviour::Serve);
    let mc = Memcached::new(&fake.addr(), 86400).unwrap();
    wait_until("the server to be reached", || mc.is_up(b"q"));
    assert_eq!(mc.get(b"q"), None);
    mc.set(b"q", RESPONSE);
    wait_until("the store", || mc.stats().stored == 1);
    assert_eq!(mc.get(b"q").as_deref(), Some(RESPONSE));
    let items = fake.items.lock().unwrap();
    let (value, expiry) = &items[&b"iipsrv::q"[..]];
    assert_eq!((&value[..], *expiry), (RESPONSE, 86400));
    drop(items);
    // Not a CGI response (another client's data): never served.
    fake.items
        .lock()
        .unwrap()
        .insert(b"iipsrv::junk".to_vec(), (b"junk".to_vec(), 0));
    assert_eq!(mc.get(b"junk"), None);
    // Too large for memcached: dropped before the queue.
    mc.set(b"big", &vec![b'x'; MAX_ITEM_BYTES]);
    assert_eq!(mc.stats().dropped, 1);
    let s = mc.stats();
    assert_eq!((s.hits, s.stored), (1, 1));
}

#[test]
fn fresh_lookups_compare_last_modified() {
    let fake = Fake::start(Behaviour::Serve);
    let mc = Memcached::new(&fake.addr(), 60).unwrap();
    wait_until("the server to be reached", || mc.is_up(b"q"));
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let with_date = b"Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\nx";
    mc.set(b"dated", with_date);
    mc.set(b"undated", RESPONSE);
    wait_until("the stores", || mc.stats().stored == 2);
    let later = t + Duration::from_millis(1500);
    assert!(
        mc.get_fresh(b"dated", || Some(t + Duration::from_millis(300)))
            .is_some()
    );
    assert!(mc.get_fresh(b"dated", || Some(later)).is_none());
    assert!(mc.get_fresh(b"dated", || None).is_none(), "image gone");
    assert!(
        mc.get_fresh(b"undated", || panic!("no date, no check"))
            .is_some()
    );
    assert_eq!(mc.stats().stale, 2);
}

#[test]
fn a_refused_server_costs_nothing() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mc = Memcached::new(&format!("127.0.0.1:{port}"), 60).unwrap();
    let start = Instant::now();
    for _ in 0..1000 {
        assert_eq!(mc.get(b"FIF=x.tif&OBJ=Max-size"), None);
        mc.set(b"FIF=x.tif&OBJ=Max-size", RESPONSE);
    }
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_server_hanging_from_the_start_never_delays_a_request() {
    let fake = Fake::start(Behaviour::Hang);
    let mc = Memcached::new(&fake.addr(), 60).unwrap();
    // The background probe times out; requests never wait on it.
    std::thread::sleep(IO_TIMEOUT * 3);
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(mc.get(b"q"), None);
    }
    assert!(start.elapsed() < IO_TIMEOUT, "{:?}", start.elapsed());
    assert!(!mc.is_up(b"q"));
}

#[test]
fn a_server_that_stops_answering_costs_one_timeout() {
    let fake = Fake::start(Behaviour::HangAfterNoop);
    let mc = Memcached::new(&fake.addr(), 60).unwrap();
    wait_until("the server to be reached", || mc.is_up(b"q"));
    let start = Instant::now();
    assert_eq!(mc.get(b"q"), None);
    let first = start.elapsed();
    assert!(first >= IO_TIMEOUT && first < IO_TIMEOUT * 4, "{first:?}");
    assert!(!mc.is_up(b"q"));
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(mc.get(b"q"), None);
    }
    assert!(start.elapsed() < IO_TIMEOUT, "{:?}", start.elapsed());
}

#[test]
fn a_server_that_dies_and_returns() {
    let fake = Fake::start(Behaviour::Serve);
    let port = fake.port;
    let mc = Memcached::new(&fake.addr(), 60).unwrap();
    wait_until("the server to be reached", || mc.is_up(b"q"));
    mc.set(b"q", RESPONSE);
    wait_until("the store", || mc.get(b"q").is_some());
    drop(fake);
    // Its connections close (the fake's connection threads may answer one more request
    // while they wind down): misses, then the server is skipped.
    let start = Instant::now();
    wait_until("the server to be marked down", || {
        mc.get(b"q").is_none() && !mc.is_up(b"q")
    });
    assert_eq!(mc.get(b"q"), None);
    assert!(start.elapsed() < Duration::from_secs(1));
    // Back on the same port (empty, as a restarted memcached): used again after the back-off.
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => break l,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _again = Fake::on(listener, Behaviour::Serve);
    wait_until("the server to be back", || mc.is_up(b"q"));
    mc.set(b"q", RESPONSE);
    wait_until("a hit", || mc.get(b"q").is_some());
}

#[test]
fn keys_spread_over_servers_in_list_order() {
    let (a, b) = (Fake::start(Behaviour::Serve), Fake::start(Behaviour::Serve));
    let mc = Memcached::new(&format!("{},{}", a.addr(), b.addr()), 60).unwrap();
    wait_until("both servers", || {
        mc.is_up(b"FIF=sample.tif&JTL=0,0") && mc.is_up(b"FIF=sample.tif&JTL=1,0")
    });
    mc.set(b"FIF=sample.tif&JTL=0,0", RESPONSE); // server 0 (see above)
    mc.set(b"FIF=sample.tif&JTL=1,0", RESPONSE); // server 1
    wait_until("the stores", || mc.stats().stored == 2);
    assert!(
        a.items
            .lock()
            .unwrap()
            .contains_key(&b"iipsrv::FIF=sample.tif&JTL=0,0"[..])
    );
    assert!(
        b.items
            .lock()
            .unwrap()
            .contains_key(&b"iipsrv::FIF=sample.tif&JTL=1,0"[..])
    );
    assert_eq!(a.items.lock().unwrap().len(), 1);
    assert_eq!(b.items.lock().unwrap().len(), 1);
}
