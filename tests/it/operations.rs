//! Operations (issue 13): the admin listener (`/health`, `/ready`, `/metrics`, `/cache/purge`),
//! HTTP caching validators over HTTP and FastCGI, logs on stdout/stderr and as JSON lines, and
//! systemd's readiness notification. Every test starts the built binary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Addr, BIN, MemcachedServer, Process, fcgi_get, fcgi_get_with, fixtures_dir_prefix, free_port,
    read_response, require,
};

/// `iipsrv --bind 127.0.0.1:P --http 127.0.0.1:Q --admin ADMIN`, ended on drop.
struct Ops {
    child: Process,
    fastcgi: SocketAddr,
    http: SocketAddr,
    /// Where to connect to the admin listener (its bind address may be 0.0.0.0).
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Ops {
    fn start(env: &[(&str, &str)]) -> Ops {
        Self::start_on("127.0.0.1", env, |_| {})
    }

    /// Start with the admin listener on `admin_host` and a chance to change the command.
    fn start_on(admin_host: &str, env: &[(&str, &str)], tweak: impl FnOnce(&mut Command)) -> Ops {
        let dir = tempfile::tempdir().unwrap();
        let loopback = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
        let (fastcgi, http, admin_port) = (free_port(), free_port(), free_port());
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOGFILE", dir.path().join("iipsrv.log"))
            .env("VERBOSITY", "2")
            .env("MEMCACHED_SERVERS", "")
            .env("FILESYSTEM_PREFIX", fixtures_dir_prefix())
            .args(["--bind", &loopback(fastcgi).to_string()])
            .args(["--http", &loopback(http).to_string()])
            .args(["--admin", &format!("{admin_host}:{admin_port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        tweak(&mut c);
        let child = Process::spawn(&mut c, libc::SIGKILL).expect("start iipsrv");
        let ops = Ops {
            child,
            fastcgi: loopback(fastcgi),
            http: loopback(http),
            admin: loopback(admin_port),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = ureq::get(&ops.admin_url("/ready")).call() {
                if r.status() == 200 {
                    return ops;
                }
            }
            assert!(Instant::now() < deadline, "iipsrv did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    fn fcgi(&self) -> Addr {
        Addr::Tcp(self.fastcgi)
    }

    /// GET an image URL (with extra headers): (status, headers, body).
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = ureq::get(&self.url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        read_response(req.call(), path).into()
    }

    fn admin(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = ureq::request(method, &self.admin_url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        read_response(req.call(), path).into()
    }

    fn scrape(&self) -> Exposition {
        let r = self.admin("GET", "/metrics", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        Exposition::parse(&String::from_utf8(r.body).unwrap())
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl From<(u16, Vec<(String, String)>, Vec<u8>)> for Response {
    fn from((status, headers, body): (u16, Vec<(String, String)>, Vec<u8>)) -> Self {
        Response {
            status,
            headers,
            body,
        }
    }
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A sample of the Prometheus text format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Prometheus text format (0.0.4), parsed strictly: every line is a `# HELP`, a `# TYPE`
/// or a sample of a family declared before it; label values are unescaped.
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with("# HELP ") {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                assert!(
                    ["counter", "gauge", "histogram", "untyped", "summary"].contains(&kind),
                    "{line}"
                );
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{name} declared twice"
                );
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => line.split_at(i),
                None => panic!("no value: {line}"),
            };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad name {name}"
            );
            let mut labels = BTreeMap::new();
            let mut rest = rest;
            if let Some(mut l) = rest.strip_prefix('{') {
                loop {
                    if let Some(after) = l.strip_prefix('}') {
                        rest = after;
                        break;
                    }
                    let (key, after) = l.split_once("=\"").expect("label=\"value\"");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect("a closing quote") {
                            (i, '"') => break i,
                            (_, '\\') => match chars.next().expect("an escape").1 {
                                'n' => value.push('\n'),
                                c => value.push(c),
                            },
                            (_, c) => value.push(c),
                        }
                    };
                    labels.insert(key.trim_start_matches(',').to_string(), value);
                    l = &after[end + 1..];
                    l = l.strip_prefix(',').unwrap_or(l);
                }
            }
            let value = rest.trim();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "{name} has no # TYPE");
            if types[family] == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Exposition { types, samples }
    }

    /// The value of the sample `name` whose labels include `labels` (0 when there is none).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Every series: name and labels.
    fn series(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| format!("{}{:?}", s.name, s.labels))
            .collect()
    }
}

const TILE: &str = "/?IIIF=sample.tif/0,0,256,256/256,/0/default.jpg";

#[test]
fn admin_endpoints_answer_and_refuse_what_they_do_not_serve() {
    let s = Ops::start(&[]);
    let r = s.admin("GET", "/health", &[]);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    let r = s.admin("GET", "/ready", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    assert_eq!(r.json()["checks"]["listeners"], "ok");
    let r = s.admin("HEAD", "/metrics", &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    for path in [
        "/",
        "/nothing",
        "/metrics/x",
        "/cache",
        "/cache/purge/x",
        "/viewer/sample.tif",
    ] {
        assert_eq!(s.admin("GET", path, &[]).status, 404, "{path}");
    }
    for (method, path, allow) in [
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/ready", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("GET", "/cache/purge", "POST"),
        ("DELETE", "/cache/purge", "POST"),
    ] {
        let r = s.admin(method, path, &[]);
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("Allow"), Some(allow), "{method} {path}");
    }
    // The image listeners do not answer the admin paths as admin endpoints.
    let r = s.get("/metrics", &[]);
    assert!(!String::from_utf8_lossy(&r.body).contains("iipsrv_requests_total"));
}

#[test]
fn metrics_count_requests_caches_and_codecs() {
    let s = Ops::start(&[]);
    let ok = |path: &str| assert_eq!(s.get(path, &[]).status, 200, "{path}");
    ok(TILE);
    ok(TILE);
    ok("/?IIIF=sample.tif/info.json");
    ok("/?IIIF=sample.tif/full/100,/0/default.png");
    ok("/?DeepZoom=sample.tif_files/10/0_0.jpg");
    ok("/?FIF=sample.tif&WID=50&CVT=jpeg");
    assert_eq!(s.get("/?FIF=missing.tif&JTL=0,0", &[]).status, 404);
    assert_eq!(fcgi_get(&s.fcgi(), "FIF=sample.tif&JTL=0,0").status(), 200);
    let m = s.scrape();
    let requests = |p, k, f, st| {
        m.value(
            "iipsrv_requests_total",
            &[("protocol", p), ("kind", k), ("format", f), ("status", st)],
        )
    };
    assert_eq!(requests("iiif", "tile", "jpeg", "2xx"), 2.0);
    assert_eq!(requests("iiif", "info", "none", "2xx"), 1.0);
    assert_eq!(requests("iiif", "region", "png", "2xx"), 1.0);
    assert_eq!(requests("deepzoom", "tile", "jpeg", "2xx"), 1.0);
    assert_eq!(requests("iip", "region", "jpeg", "2xx"), 1.0);
    assert_eq!(requests("iip", "tile", "jpeg", "2xx"), 1.0, "over FastCGI");
    assert_eq!(requests("iip", "other", "none", "4xx"), 1.0);
    assert_eq!(
        m.value("iipsrv_request_duration_seconds_count", &[("kind", "tile")]),
        4.0
    );
    assert!(m.value("iipsrv_sent_bytes_total", &[("kind", "tile")]) > 1000.0);
    assert!(m.value("iipsrv_tile_cache_hits_total", &[]) >= 1.0);
    assert!(m.value("iipsrv_tile_cache_misses_total", &[]) >= 1.0);
    assert!(m.value("iipsrv_tile_cache_bytes", &[]) > 0.0);
    assert!(m.value("iipsrv_metadata_cache_hits_total", &[]) >= 1.0);
    assert_eq!(m.value("iipsrv_metadata_cache_entries", &[]), 1.0);
    assert!(m.value("iipsrv_decode_duration_seconds_count", &[("codec", "tiff")]) >= 1.0);
    assert!(m.value("iipsrv_encode_duration_seconds_count", &[("format", "png")]) >= 1.0);
    assert_eq!(m.value("iipsrv_requests_in_flight", &[]), 0.0);
    assert_eq!(m.types["iipsrv_request_duration_seconds"], "histogram");
    assert_eq!(m.value("iipsrv_build_info", &[]), 1.0);
    // No memcached configured: no memcached series.
    assert!(!m.types.contains_key("iipsrv_memcached_hits_total"));
    // Histogram buckets are cumulative and end at +Inf = _count.
    let buckets: Vec<&Sample> = m
        .samples
        .iter()
        .filter(|x| {
            x.name == "iipsrv_request_duration_seconds_bucket"
                && x.labels.get("kind").map(String::as_str) == Some("tile")
        })
        .collect();
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    assert_eq!(buckets.last().unwrap().labels["le"], "+Inf");
    assert_eq!(buckets.last().unwrap().value, 4.0);
}

#[test]
fn open_connections_are_counted_by_listener() {
    let s = Ops::start(&[]);
    let held = std::net::TcpStream::connect(s.fastcgi).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = s.scrape();
        if m.value("iipsrv_open_connections", &[("transport", "fastcgi")]) == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the connection was not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .scrape()
        .value("iipsrv_open_connections", &[("transport", "fastcgi")])
        != 0.0
    {
        assert!(
            Instant::now() < deadline,
            "a closed connection stayed counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metric_series_stay_the_same_whatever_identifiers_are_requested() {
    let s = Ops::start(&[]);
    let shapes = |id: &str| {
        [
            format!("/?IIIF={id}/0,0,256,256/256,/0/default.jpg"),
            format!("/?IIIF={id}/info.json"),
            format!("/?FIF={id}&JTL=0,0"),
            format!("/?DeepZoom={id}.dzi"),
            format!("/?Zoomify={id}/TileGroup0/0-0-0.jpg"),
        ]
    };
    // Warm up every shape, for an image that exists and one that does not.
    for id in ["sample.tif", "missing.tif"] {
        for path in shapes(id) {
            s.get(&path, &[]);
        }
    }
    let before = s.scrape();
    // Many other identifiers, hostile ones among them.
    let mut ids: Vec<String> = (0..150).map(|i| format!("nothing-{i}.tif")).collect();
    ids.extend(
        [
            "a%22b.tif",
            "x%0Ay",
            "%7B%7D.tif",
            "..%2F..%2Fetc%2Fpasswd",
            "%C3%A9t%C3%A9.jp2",
        ]
        .map(String::from),
    );
    for id in &ids {
        for path in shapes(id) {
            s.get(&path, &[]);
        }
    }
    let after = s.scrape();
    assert_eq!(before.series(), after.series());
    let text = after
        .samples
        .iter()
        .flat_map(|x| x.labels.values())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        !text.contains("nothing-") && !text.contains("sample"),
        "{text}"
    );
}

#[test]
fn scrapes_in_parallel_leave_image_traffic_alone() {
    let s = Ops::start(&[]);
    let reference = s.get(TILE, &[]).body;
    std::thread::scope(|scope| {
        let scrapers: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new().build();
                    for _ in 0..20 {
                        let r = agent.get(&s.admin_url("/metrics")).call().unwrap();
                        let mut text = String::new();
                        r.into_reader().read_to_string(&mut text).unwrap();
                        assert!(text.contains("iipsrv_requests_total"));
                    }
                })
            })
            .collect();
        let viewers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new().build();
                    for i in 0..50 {
                        let path = if i % 2 == 0 {
                            TILE.to_string()
                        } else {
                            format!("/?IIIF=sample.tif/full/{},/0/default.jpg", 50 + i)
                        };
                        let (status, _, body) =
                            read_response(agent.get(&s.url(&path)).call(), &path);
                        assert_eq!(status, 200, "{path}");
                        if i % 2 == 0 {
                            assert_eq!(body, reference);
                        }
                    }
                })
            })
            .collect();
        for t in scrapers.into_iter().chain(viewers) {
            t.join().unwrap();
        }
    });
    // 1000 scrapes, and the 200 image requests all counted.
    let m = s.scrape();
    assert_eq!(
        m.value(
            "iipsrv_requests_total",
            &[("protocol", "iiif"), ("status", "2xx")]
        ),
        201.0
    );
}

#[test]
fn purge_needs_the_token_and_drops_one_image() {
    let s = Ops::start(&[("IIPSRV_ADMIN_TOKEN", "s3cret")]);
    s.get(TILE, &[]);
    s.get("/?FIF=sequence/obj&JTL=0,0", &[]);
    let entries = |s: &Ops| s.scrape().value("iipsrv_tile_cache_entries", &[]);
    let full = entries(&s);
    assert!(full >= 2.0);
    // Refused: nothing purged.
    let r = s.admin("POST", "/cache/purge", &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Bearer"));
    let r = s.admin(
        "POST",
        "/cache/purge?id=sample.tif",
        &[("Authorization", "Bearer nope")],
    );
    assert_eq!(r.status, 403);
    let r = s.admin(
        "POST",
        "/cache/purge",
        &[("Authorization", "Basic czNjcmV0")],
    );
    assert_eq!(r.status, 401);
    assert_eq!(entries(&s), full);
    let auth = [("Authorization", "Bearer s3cret")];
    // Identifiers that climb or hide are refused, with nothing purged.
    for q in [
        "id=../sample.tif",
        "id=..%2Fsample.tif",
        "id=a/../../sample.tif",
        "id=",
        "x=1",
        "id=a%00",
    ] {
        let r = s.admin("POST", &format!("/cache/purge?{q}"), &auth);
        assert_eq!(r.status, 400, "{q}");
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(entries(&s), full);
    let r = s.admin("POST", "/cache/purge?id=sample.tif", &auth);
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["purged"]["id"], "sample.tif");
    assert!(j["tiles"].as_u64().unwrap() >= 1);
    assert_eq!(j["metadata"], 1);
    let after = entries(&s);
    assert!(after >= 1.0 && after < full, "the other image's tiles stay");
    let r = s.admin("POST", "/cache/purge", &auth);
    assert_eq!((r.status, r.json()["purged"].as_str()), (200, Some("all")));
    assert_eq!(entries(&s), 0.0);
    let m = s.scrape();
    assert_eq!(
        m.value("iipsrv_cache_purges_total", &[("scope", "image")]),
        1.0
    );
    assert_eq!(
        m.value("iipsrv_cache_purges_total", &[("scope", "all")]),
        1.0
    );
    // The image is served again after the purge.
    assert_eq!(s.get(TILE, &[]).status, 200);
}

#[test]
fn purge_without_a_token_is_refused_off_loopback() {
    // Bound to every address; the test still only connects to 127.0.0.1.
    let s = Ops::start_on("0.0.0.0", &[], |_| {});
    s.get(TILE, &[]);
    let r = s.admin("POST", "/cache/purge", &[]);
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("IIPSRV_ADMIN_TOKEN")
    );
    assert!(s.scrape().value("iipsrv_tile_cache_entries", &[]) >= 1.0);
    // On loopback without a token, purging is allowed.
    let local = Ops::start(&[]);
    assert_eq!(local.admin("POST", "/cache/purge", &[]).status, 200);
}

#[test]
fn purge_deletes_the_memcached_entries_this_server_stored() {
    if !require("memcached", "memcached") {
        return;
    }
    let mc = MemcachedServer::start();
    let s = Ops::start(&[("MEMCACHED_SERVERS", &mc.addr())]);
    let query = "IIIF=sample.tif/full/64,/0/default.jpg";
    let other = "IIIF=sequence/obj/full/64,/0/default.jpg";
    assert_eq!(s.get(&format!("/?{query}"), &[]).status, 200);
    assert_eq!(s.get(&format!("/?{other}"), &[]).status, 200);
    let key = format!("iipsrv::{query}");
    let other_key = format!("iipsrv::{other}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mc.get(key.as_bytes()).is_none() || mc.get(other_key.as_bytes()).is_none() {
        assert!(Instant::now() < deadline, "the responses were not stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = s.admin("GET", "/ready", &[]);
    assert_eq!(ready.json()["checks"]["memcached"], "ok");
    let r = s.admin("POST", "/cache/purge?id=sample.tif", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["memcached"], 1);
    assert!(mc.get(key.as_bytes()).is_none(), "deleted");
    assert!(
        mc.get(other_key.as_bytes()).is_some(),
        "another image's entry stays"
    );
    let m = s.scrape();
    assert!(m.value("iipsrv_memcached_stored_total", &[]) >= 2.0);
    assert_eq!(m.value("iipsrv_memcached_servers_up", &[]), 1.0);
}

/// Start iipsrv with `--http` and `--admin` only and `env`, and read `/ready` once the admin
/// listener answers: (status, JSON body as text).
fn ready_with(env: &[(&str, &str)]) -> Response {
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("LOGFILE", dir.path().join("log"))
        .env("MEMCACHED_SERVERS", "")
        .env("FILESYSTEM_PREFIX", fixtures_dir_prefix())
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let _child = Process::spawn(&mut c, libc::SIGKILL).unwrap();
    let url = format!("http://127.0.0.1:{admin}/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ureq::get(&url).call() {
            Err(ureq::Error::Status(_, r)) => break read_response(Ok(r), &url).into(),
            Ok(r) => break read_response(Ok(r), &url).into(),
            Err(_) => {
                assert!(Instant::now() < deadline, "no admin listener");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn ready_is_503_while_memcached_is_unreachable() {
    // A port nobody listens on.
    let dead = format!("127.0.0.1:{}", free_port());
    let r = ready_with(&[("MEMCACHED_SERVERS", &dead)]);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["ready"], false);
    assert_eq!(j["checks"]["listeners"], "ok");
    assert_eq!(j["checks"]["storage"], "ok");
    assert_eq!(j["checks"]["memcached"], "1 of 1 servers unreachable");
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&dead),
        "no endpoint named"
    );
}

#[test]
fn ready_is_503_while_the_image_directory_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let gone = format!("{}/not-there/", dir.path().display());
    let r = ready_with(&[("FILESYSTEM_PREFIX", &gone)]);
    assert_eq!(r.status, 503);
    let j = r.json();
    assert_eq!(j["ready"], false);
    assert_eq!(j["checks"]["listeners"], "ok");
    assert_eq!(
        j["checks"]["storage"],
        "the image directory is not readable"
    );
    assert!(j["checks"].get("memcached").is_none(), "not configured");
    let body = String::from_utf8_lossy(&r.body);
    assert!(!body.contains("not-there"), "no server path named: {body}");
    // The same server with its directory: ready.
    let r = ready_with(&[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["checks"]["storage"], "ok");
}

#[test]
fn listed_origins_are_echoed_with_vary_origin() {
    let s = Ops::start(&[
        ("CORS", "https://main.example"),
        (
            "IIPSRV_CORS_ORIGINS",
            "https://a.example, https://b.example",
        ),
    ]);
    let allow = |r: &Response| r.header("Access-Control-Allow-Origin").map(String::from);
    for path in [
        TILE,
        "/?IIIF=sample.tif/info.json",
        "/?FIF=sample.tif&JTL=0,0",
    ] {
        let r = s.get(path, &[("Origin", "https://b.example")]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(allow(&r).as_deref(), Some("https://b.example"), "{path}");
        assert_eq!(r.header("Vary"), Some("Origin"), "{path}");
        let r = s.get(path, &[("Origin", "https://evil.example")]);
        assert_eq!(allow(&r).as_deref(), Some("https://main.example"), "{path}");
        assert_eq!(r.header("Vary"), Some("Origin"), "{path}");
    }
    // The 304 too, and over FastCGI.
    let etag = s.get(TILE, &[]).header("ETag").unwrap().to_string();
    let r = s.get(
        TILE,
        &[("Origin", "https://a.example"), ("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(allow(&r).as_deref(), Some("https://a.example"));
    assert_eq!(r.header("Vary"), Some("Origin"));
    let r = fcgi_get_with(
        &s.fcgi(),
        "FIF=sample.tif&JTL=0,0",
        &[(b"HTTP_ORIGIN", b"https://a.example")],
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin").as_deref(),
        Some("https://a.example")
    );
    assert_eq!(r.header("Vary").as_deref(), Some("Origin"));
    // Without the list, iipsrv's fixed value and no Vary.
    let plain = Ops::start(&[("CORS", "*")]);
    let r = plain.get(TILE, &[("Origin", "https://a.example")]);
    assert_eq!(allow(&r).as_deref(), Some("*"));
    assert_eq!(r.header("Vary"), None);
}

#[test]
fn etags_and_conditional_requests_over_http() {
    let s = Ops::start(&[]);
    let first = s.get(TILE, &[]);
    let etag = first.header("ETag").expect("an ETag").to_string();
    // Weak: the same image, whether passed through or re-encoded.
    assert!(
        etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() > 20,
        "{etag}"
    );
    let lm = first.header("Last-Modified").unwrap().to_string();
    assert_eq!(
        s.get(TILE, &[]).header("ETag"),
        Some(etag.as_str()),
        "stable"
    );

    let encodes = |s: &Ops| {
        s.scrape().value(
            "iipsrv_encode_duration_seconds_count",
            &[("format", "jpeg")],
        )
    };
    for inm in [
        etag.clone(),
        etag.trim_start_matches("W/").to_string(),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let r = s.get(TILE, &[("If-None-Match", &inm)]);
        assert_eq!(r.status, 304, "{inm}");
        assert_eq!(r.header("ETag"), Some(etag.as_str()));
        assert!(r.body.is_empty());
    }
    // A region export: the 304 comes before any pixel is made.
    let region = "/?IIIF=sample.tif/full/123,/0/default.jpg";
    let r = s.get(region, &[]);
    let region_etag = r.header("ETag").unwrap().to_string();
    assert_ne!(region_etag, etag);
    let before = encodes(&s);
    let r = s.get(region, &[("If-None-Match", &region_etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(encodes(&s), before, "nothing was encoded for the 304");
    // Another tag, or another request: the image.
    assert_eq!(s.get(TILE, &[("If-None-Match", "\"other\"")]).status, 200);
    // With If-None-Match, If-Modified-Since is not looked at.
    let r = s.get(
        TILE,
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
    );
    assert_eq!(r.status, 200);
    // If-Modified-Since: any date not older than the file.
    assert_eq!(s.get(TILE, &[("If-Modified-Since", &lm)]).status, 304);
    let later = "Fri, 01 Jan 2100 00:00:00 GMT";
    assert_eq!(s.get(TILE, &[("If-Modified-Since", later)]).status, 304);
    let earlier = "Thu, 01 Jan 1998 00:00:00 GMT";
    assert_eq!(s.get(TILE, &[("If-Modified-Since", earlier)]).status, 200);
    // HEAD carries the same validators.
    let head: Response = read_response(ureq::head(&s.url(TILE)).call(), TILE).into();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("ETag"), Some(etag.as_str()));
    assert_eq!(head.header("Last-Modified"), Some(lm.as_str()));
    assert!(head.body.is_empty());
    // info.json and the DeepZoom document: tags of their own, and 304s.
    for doc in ["/?IIIF=sample.tif/info.json", "/?DeepZoom=sample.tif.dzi"] {
        let r = s.get(doc, &[]);
        let tag = r.header("ETag").expect("a document ETag").to_string();
        assert!(tag.starts_with('"'), "a document's tag is strong: {tag}");
        let r = s.get(doc, &[("If-None-Match", &tag)]);
        assert_eq!(
            (r.status, r.header("ETag")),
            (304, Some(tag.as_str())),
            "{doc}"
        );
    }
    // Stable across restarts; another output setting gives another tag.
    drop(s);
    let again = Ops::start(&[]);
    assert_eq!(again.get(TILE, &[]).header("ETag"), Some(etag.as_str()));
    let other = Ops::start(&[("JPEG_QUALITY", "90")]);
    assert_ne!(other.get(TILE, &[]).header("ETag"), Some(etag.as_str()));
}

#[test]
fn etags_over_fastcgi_sit_after_last_modified() {
    let s = Ops::start(&[("CORS", "*")]);
    let r = fcgi_get(&s.fcgi(), "FIF=sample.tif&JTL=1,0");
    let names: Vec<String> = r.headers().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Server",
            "X-Powered-By",
            "Content-Type",
            "Last-Modified",
            "ETag",
            "Cache-Control",
            "Content-Length",
            "Access-Control-Allow-Origin",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Max-Age",
        ]
    );
    let etag = r.header("ETag").unwrap();
    let r = fcgi_get_with(
        &s.fcgi(),
        "FIF=sample.tif&JTL=1,0",
        &[(b"HTTP_IF_NONE_MATCH", etag.as_bytes())],
    );
    assert_eq!(r.status(), 304);
    assert_eq!(r.header("ETag"), Some(etag.clone()));
    assert!(r.body().is_empty());
    // The same request over HTTP has the same tag.
    assert_eq!(
        s.get("/?FIF=sample.tif&JTL=1,0", &[]).header("ETag"),
        Some(etag.as_str())
    );
    // OBJ answers of an image are documents with a tag.
    let r = fcgi_get(&s.fcgi(), "FIF=sample.tif&OBJ=Max-size");
    assert!(r.header("ETag").is_some());
    // Errors have none.
    assert!(
        fcgi_get(&s.fcgi(), "FIF=missing.tif&JTL=0,0")
            .header("ETag")
            .is_none()
    );
}

#[test]
fn iiif_base_uri_redirects_to_an_absolute_url() {
    let s = Ops::start(&[("URI_MAP", "iiif=>IIIF")]);
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let url = s.url("/iiif/sample.tif");
    let r: Response = read_response(agent.get(&url).call(), &url).into();
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("Location"),
        Some(format!("http://{}/iiif/sample.tif/info.json", s.http).as_str())
    );
    // Behind a TLS front end (HTTPS set), https.
    let r = crate::support::fcgi_client(&s.fcgi())
        .request(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"QUERY_STRING", b""),
                (b"REQUEST_URI", b"/iiif/sample.tif"),
                (b"HTTP_HOST", b"images.example.org"),
                (b"HTTPS", b"on"),
            ],
            b"",
            false,
        )
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.header("Location").as_deref(),
        Some("https://images.example.org/iiif/sample.tif/info.json")
    );
}

/// Read lines from a child's pipe until `until` matches one or the pipe closes.
fn lines_until(pipe: impl Read, until: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let done = until(&line);
        out.push(line);
        if done {
            break;
        }
    }
    out
}

#[test]
fn json_log_lines_on_stdout_one_per_request() {
    let mut s = Ops::start_on(
        "127.0.0.1",
        &[
            ("LOGFILE", "stdout"),
            ("IIPSRV_LOG_FORMAT", "json"),
            ("VERBOSITY", "2"),
        ],
        |c| {
            c.stdout(Stdio::piped());
        },
    );
    assert_eq!(s.get(TILE, &[]).status, 200);
    assert_eq!(s.get("/?IIIF=missing.tif/info.json", &[]).status, 404);
    assert_eq!(
        fcgi_get(&s.fcgi(), "FIF=sample.tif&OBJ=Max-size").status(),
        200
    );
    s.child.signal(libc::SIGTERM);
    let stdout = s.child.stdout.take().unwrap();
    let lines = lines_until(stdout, |_| false);
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        records
            .iter()
            .all(|r| r["timestamp"].is_string() && r["level"].is_string())
    );
    assert!(
        records
            .iter()
            .any(|r| r["message"] == "IIPImage Server. Version 1.3")
    );
    let requests: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "{lines:#?}");
    let tile = requests[0];
    assert_eq!(tile["protocol"], "iiif");
    assert_eq!(tile["identifier"], "sample.tif");
    assert_eq!(tile["kind"], "tile");
    assert_eq!(tile["format"], "jpeg");
    assert_eq!(tile["status"], 200);
    assert!(tile["bytes"].as_u64().unwrap() > 100);
    assert!(tile["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(requests[1]["status"], 404);
    assert_eq!(requests[1]["identifier"], "missing.tif");
    assert_eq!(requests[2]["protocol"], "iip");
    assert_eq!(requests[2]["kind"], "metadata");
    let _ = s.child.wait();
}

#[test]
fn text_log_on_stderr_keeps_iipsrvs_lines() {
    let mut s = Ops::start_on("127.0.0.1", &[("LOGFILE", "stderr")], |c| {
        c.stderr(Stdio::piped());
    });
    assert_eq!(s.get(TILE, &[]).status, 200);
    s.child.signal(libc::SIGTERM);
    let stderr = s.child.stderr.take().unwrap();
    let lines = lines_until(stderr, |_| false);
    assert!(
        lines.iter().any(|l| l == "IIPImage Server. Version 1.3"),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("Total Request Time: ")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Caught Terminated signal."))
    );
    assert!(!lines.iter().any(|l| l.starts_with('{')));
    let _ = s.child.wait();
}

#[test]
fn systemd_hears_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = free_port();
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("LOGFILE", dir.path().join("log"))
        .env("MEMCACHED_SERVERS", "")
        .env("NOTIFY_SOCKET", &socket_path)
        .args(["--http", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Process::spawn(&mut c, libc::SIGKILL).unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 arrives");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    // READY=1 comes once the listener accepts.
    let connected = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    child.signal(libc::SIGTERM);
    let n = socket.recv(&mut buf).expect("STOPPING=1 arrives");
    let stopping = String::from_utf8_lossy(&buf[..n]).to_string();
    let status = child.wait().unwrap();
    assert_eq!(ready.trim(), "READY=1");
    assert!(connected);
    assert_eq!(stopping.trim(), "STOPPING=1");
    assert!(status.success());
}

#[test]
fn ready_turns_503_while_shutdown_drains_and_metrics_stay_readable() {
    use crate::common::fcgi::{Client, begin_request, encode_params, record, stream_records};
    // A long drain limit: the test, not the limit, ends the drain.
    let mut s = Ops::start(&[("IIPSRV_SHUTDOWN_TIMEOUT", "120")]);
    // A request that has begun to arrive: BEGIN_REQUEST and part of its parameters. Shutdown
    // waits for it to be read and answered.
    let mut c = Client::connect_tcp(s.fastcgi).unwrap();
    c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    let params = encode_params(&[
        (b"REQUEST_METHOD", b"GET"),
        (b"QUERY_STRING", b"FIF=sample.tif&JTL=0,0"),
    ]);
    let mut first = begin_request(1, 1, false);
    first.extend(record(4, 1, &params));
    c.send_raw(&first).unwrap();
    // Accepted (a connection still in the backlog at SIGTERM is never served).
    let deadline = Instant::now() + Duration::from_secs(20);
    while s
        .scrape()
        .value("iipsrv_open_connections", &[("transport", "fastcgi")])
        != 1.0
    {
        assert!(Instant::now() < deadline, "the connection was not accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.child.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        // The admin listener still answers (a refused connection fails the test).
        let r = s.admin("GET", "/ready", &[]);
        if r.status == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "/ready stayed 200 after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.json()["checks"]["listeners"], "not accepting");
    assert_eq!(s.admin("GET", "/health", &[]).status, 200);
    assert_eq!(s.scrape().value("iipsrv_build_info", &[]), 1.0);
    // The rest of the request: it is answered, then the process exits.
    let mut rest = record(4, 1, b"");
    rest.extend(stream_records(5, 1, b"", 65535));
    c.send_raw(&rest).unwrap();
    let reply = c.read_reply(1).unwrap();
    assert_eq!(reply.status(), 200);
    assert!(s.child.wait().unwrap().success());
}
