//! The deployment examples (`examples/`) with the real servers from Debian's packages, on
//! loopback: Apache with mod_fcgid and with mod_proxy_fcgi, lighttpd spawning iipsrv and with
//! `--bind`, nginx with spawn-fcgi and with `--bind`, two instances behind one nginx sharing one
//! memcached, the systemd units and the logrotate file.
//!
//! Each example file is used as it is, except for ports and paths, which are replaced literally
//! ([`example`]). The web server's own main configuration (the part a distribution provides)
//! is generated around it.
//!
//! A missing web server fails the test with the apt-get line; IIPSRV_SKIP_DEPLOYMENT_TESTS=1
//! skips them knowingly (`support::require`). Every answer through a web server must equal
//! iipsrv's own (status and body); checks of content iipsrv cannot produce yet in this build
//! (marked `// needs TIFF`, `// needs JTL`, `// needs CVT`, `// needs IIIF`) are skipped with a
//! message while it answers them with an error.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    BIN, MemcachedServer, Process, TestServer, fixtures_prefix, free_port, get, is_root, require,
};

const IIP_SERVER: &str = "/fcgi-bin/iipsrv.fcgi?OBJ=IIP,1.0&OBJ=IIP-server";
const MAX_SIZE: &str = "/fcgi-bin/iipsrv.fcgi?FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size";
const TILE: &str = "/fcgi-bin/iipsrv.fcgi?FIF=sample.tif&JTL=0,0";
const CVT: &str = "/fcgi-bin/iipsrv.fcgi?FIF=sample.tif&WID=200&CVT=jpeg";
const INFO_JSON: &str = "/iiif/sample.tif/info.json";
const INFO_JSON_MISSING: &str = "/iiif/missing.tif/info.json";

/// The example file with each `(from, to)` replaced; every `from` must occur (so that an edit
/// of the example cannot silently leave a production path in a test).
fn example(name: &str, replacements: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (from, to) in replacements {
        assert!(text.contains(from), "{name} no longer contains {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// The variables of `examples/systemd/iipsrv.env`, paths replaced, LOGFILE left to the
/// [`TestServer`] (its own log in its temporary folder).
fn env_file(memcached: &str) -> Vec<(String, String)> {
    let prefix = fixtures_prefix();
    example(
        "systemd/iipsrv.env",
        &[
            (
                "FILESYSTEM_PREFIX=/var/www/images/",
                &format!("FILESYSTEM_PREFIX={prefix}"),
            ),
            (
                "MEMCACHED_SERVERS=localhost",
                &format!("MEMCACHED_SERVERS={memcached}"),
            ),
        ],
    )
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .filter_map(|l| l.split_once('='))
    .filter(|(k, _)| *k != "LOGFILE")
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// iipsrv started as `examples/systemd/iipsrv.service` starts it: `--bind` on loopback with the
/// environment file.
fn bind_instance(memcached: &str, extra: &[(&str, &str)]) -> TestServer {
    let env = env_file(memcached);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    TestServer::tcp(&pairs)
}

/// A temporary folder others can enter (Apache's and spawn-fcgi's children run as www-data).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("deploy-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A folder anyone can write (logs and sockets of processes running as www-data).
fn writable_dir(parent: &Path, name: &str) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// `iipsrv.fcgi` in a folder of its own (as the examples install it): a hard link to the built
/// binary (the temporary folder is on the same file system), or a copy.
fn installed_binary(dir: &Path) -> PathBuf {
    let bin_dir = dir.join("lib");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::set_permissions(&bin_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.join("iipsrv.fcgi");
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    bin
}

/// A web server (or spawn-fcgi) in its own process group, stopped with SIGTERM (so that it
/// stops what it started) and then SIGKILL for the whole group on drop ([`Process`]).
struct Running {
    name: &'static str,
    _child: Process,
    port: u16,
    dir: tempfile::TempDir,
    error_log: PathBuf,
}

impl Running {
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        port: u16,
        dir: tempfile::TempDir,
        error_log: PathBuf,
    ) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.txt")).unwrap(),
            ));
        let child =
            Process::spawn(&mut cmd, libc::SIGTERM).unwrap_or_else(|e| panic!("start {name}: {e}"));
        let r = Running {
            name,
            _child: child,
            port,
            dir,
            error_log,
        };
        r.wait_listening();
        r
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} did not start listening: {}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "\n--- {} error log:\n{}\n--- stderr:\n{}",
            self.name,
            read(&self.error_log),
            read(&self.dir.path().join("stderr.txt"))
        )
    }
}

/// Apache in the foreground with its own ServerRoot and a generated main configuration that
/// includes `site` (an example file, templated).
fn apache(modules: &[&str], site: &str, dir: tempfile::TempDir, port: u16) -> Running {
    let d = dir.path().display().to_string();
    let mut conf = format!(
        "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
         PidFile \"{d}/apache2.pid\"\nDefaultRuntimeDir \"{d}/run\"\n\
         ErrorLog \"{d}/error.log\"\nLogLevel warn\nDocumentRoot \"{d}/htdocs\"\n"
    );
    for m in ["mpm_event", "authz_core", "alias"].iter().chain(modules) {
        conf.push_str(&format!(
            "LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"
        ));
    }
    if is_root() {
        conf.push_str("User www-data\nGroup www-data\n");
    }
    if modules.contains(&"fcgid") {
        conf.push_str(&format!(
            "FcgidIPCDir \"{d}/fcgid\"\nFcgidProcessTableFile \"{d}/fcgid_shm\"\n"
        ));
    }
    conf.push_str(&format!("Include \"{d}/iipsrv.conf\"\n"));
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    std::fs::create_dir_all(dir.path().join("htdocs")).unwrap();
    std::fs::write(dir.path().join("iipsrv.conf"), site).unwrap();
    std::fs::write(dir.path().join("apache2.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/apache2");
    cmd.arg("-f")
        .arg(dir.path().join("apache2.conf"))
        .arg("-DFOREGROUND")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let error_log = dir.path().join("error.log");
    Running::spawn("apache2", cmd, port, dir, error_log)
}

/// lighttpd in the foreground with a generated main configuration including `site`.
fn lighttpd(site: &str, dir: tempfile::TempDir, port: u16) -> Running {
    let d = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("htdocs")).unwrap();
    let conf = format!(
        "server.document-root = \"{d}/htdocs\"\nserver.bind = \"127.0.0.1\"\n\
         server.port = {port}\nserver.errorlog = \"{d}/error.log\"\n\
         include \"{d}/iipsrv.conf\"\n"
    );
    std::fs::write(dir.path().join("iipsrv.conf"), site).unwrap();
    std::fs::write(dir.path().join("lighttpd.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/lighttpd");
    cmd.arg("-D")
        .arg("-f")
        .arg(dir.path().join("lighttpd.conf"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let error_log = dir.path().join("error.log");
    Running::spawn("lighttpd", cmd, port, dir, error_log)
}

/// nginx in the foreground with a generated main configuration whose http {} block includes
/// `site` (the example's `include fastcgi_params;` finds Debian's file next to it).
fn nginx(site: &str, dir: tempfile::TempDir, port: u16) -> Running {
    let d = dir.path().display().to_string();
    std::fs::copy(
        "/etc/nginx/fastcgi_params",
        dir.path().join("fastcgi_params"),
    )
    .unwrap();
    std::fs::write(dir.path().join("iipsrv.conf"), site).unwrap();
    let user = if is_root() { "user root;\n" } else { "" };
    let conf = format!(
        "{user}worker_processes 2;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n\
         proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/iipsrv.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/nginx");
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    let error_log = dir.path().join("error.log");
    Running::spawn("nginx", cmd, port, dir, error_log)
}

/// What every deployment must answer, through the web server at `web`.
///
/// Each answer must be the one iipsrv gives directly (status and body, compared with the same
/// request to an instance on `--http` with the same settings), so the web server passes
/// everything through. Where iipsrv itself cannot answer yet (a 501 or 400 in this build), the
/// checks of the content are skipped with a message: // needs TIFF, // needs JTL,
/// // needs CVT, // needs IIIF.
fn check_deployment(web: &Running) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let prefix = fixtures_prefix();
    // The settings the example files give iipsrv (those that change response bodies).
    let direct = TestServer::http(&[
        ("FILESYSTEM_PREFIX", prefix.as_str()),
        ("URI_MAP", "iiif=>IIIF"),
        ("JPEG_QUALITY", "90"),
        ("CORS", "*"),
    ]);
    let fetch = |path: &str| {
        let via_web = get(&agent, &web.url(path));
        let reference = get(&agent, &format!("http://{}{path}", direct.tcp_addr()));
        // IIIF ids name the host the client used: compare with the host masked.
        let mask = |body: &[u8], host: &str| String::from_utf8_lossy(body).replace(host, "HOST");
        let web_host = format!("127.0.0.1:{}", web.port);
        let direct_host = direct.tcp_addr().to_string();
        assert_eq!(
            (via_web.0, mask(&via_web.2, &web_host)),
            (reference.0, mask(&reference.2, &direct_host)),
            "{path}: {} and iipsrv directly answer differently{}",
            web.name,
            web.logs()
        );
        via_web
    };
    let available = |what: &str, status: u16| {
        if status == 200 {
            return true;
        }
        eprintln!(
            "{}: skipping the {what} checks: iipsrv answers {status} in this build",
            web.name
        );
        false
    };

    // The FastCGI chain works at all.
    let (status, _, body) = fetch(IIP_SERVER);
    assert_eq!((status, &body[..]), (200, &b"IIP-server:3.65\r\n"[..]));

    // IIP metadata from the sample image (FILESYSTEM_PREFIX reached the server). // needs TIFF
    let (status, headers, body) = fetch(MAX_SIZE);
    if available("metadata", status) {
        assert_eq!(body, b"Max-size:1000 1000\r\n");
        assert!(header(&headers, "last-modified").is_some());
    }

    // A tile. // needs JTL
    let (status, headers, body) = fetch(TILE);
    if available("tile", status) {
        assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
        let image = turbojpeg::decompress(&body, turbojpeg::PixelFormat::RGB)
            .expect("a decodable JPEG tile");
        assert!(image.width > 0 && image.height > 0);
    }

    // A region export. // needs CVT
    let (status, headers, body) = fetch(CVT);
    if available("CVT", status) {
        assert_eq!(header(&headers, "content-type"), Some("image/jpeg"));
        let image = turbojpeg::decompress(&body, turbojpeg::PixelFormat::RGB)
            .expect("a decodable JPEG export");
        assert_eq!(image.width, 200);
    }

    // Clean IIIF URLs reach the IIIF handler with the identifier (URI_MAP and the web server's
    // routing): a missing image is a 404 naming it.
    let (status, _, body) = fetch(INFO_JSON_MISSING);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("missing.tif"));
    // ... and info.json itself. // needs IIIF
    let (status, headers, body) = fetch(INFO_JSON);
    if available("info.json", status) {
        assert!(header(&headers, "content-type").is_some_and(|t| t.contains("json")));
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("\"width\"") && text.contains("1000"),
            "{text}"
        );
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn apache_mod_fcgid_starts_iipsrv() {
    if !require("apache2", "apache2-bin libapache2-mod-fcgid") {
        return;
    }
    assert!(
        Path::new("/usr/lib/apache2/modules/mod_fcgid.so").exists(),
        "mod_fcgid is needed: apt-get install libapache2-mod-fcgid (or run .ci/run)"
    );
    let m = MemcachedServer::start();
    let dir = open_tempdir();
    let bin = installed_binary(dir.path());
    let bin_dir = format!("{}/", bin.parent().unwrap().display());
    let logs = writable_dir(dir.path(), "log");
    let site = example(
        "apache2-iipsrv-fcgid.conf",
        &[
            ("/usr/local/lib/iipsrv/", &bin_dir),
            (
                "/var/log/iipsrv/iipsrv.log",
                &format!("{}/iipsrv.log", logs.display()),
            ),
            ("/var/www/images/", &fixtures_prefix()),
            (
                "MEMCACHED_SERVERS \"localhost\"",
                &format!("MEMCACHED_SERVERS \"{}\"", m.addr()),
            ),
        ],
    );
    let port = free_port();
    let web = apache(&["fcgid"], &site, dir, port);
    check_deployment(&web);
    // iipsrv was started by mod_fcgid on the socket it inherited (no --bind).
    let log = std::fs::read_to_string(logs.join("iipsrv.log")).unwrap_or_default();
    assert!(log.contains("Running in FCGI mode"), "{log}");
}

#[test]
fn apache_mod_proxy_fcgi_with_bind() {
    if !require("apache2", "apache2-bin") {
        return;
    }
    let m = MemcachedServer::start();
    let s = bind_instance(&m.addr(), &[]);
    let site = example(
        "apache2-iipsrv-proxy.conf",
        &[("127.0.0.1:9000", &s.tcp_addr().to_string())],
    );
    let web = apache(&["proxy", "proxy_fcgi"], &site, open_tempdir(), free_port());
    check_deployment(&web);
}

#[test]
fn lighttpd_spawns_iipsrv() {
    if !require("lighttpd", "lighttpd") {
        return;
    }
    let m = MemcachedServer::start();
    let dir = open_tempdir();
    let run = writable_dir(dir.path(), "run");
    let logs = writable_dir(dir.path(), "log");
    let site = example(
        "lighttpd-iipsrv.conf",
        &[
            (
                "/run/lighttpd/iipsrv-fastcgi.socket",
                &format!("{}/iipsrv-fastcgi.socket", run.display()),
            ),
            ("/usr/local/lib/iipsrv/iipsrv.fcgi", BIN),
            (
                "/var/log/iipsrv/iipsrv.log",
                &format!("{}/iipsrv.log", logs.display()),
            ),
            ("/var/www/images/", &fixtures_prefix()),
            (
                "\"MEMCACHED_SERVERS\" => \"localhost\"",
                &format!("\"MEMCACHED_SERVERS\" => \"{}\"", m.addr()),
            ),
        ],
    );
    let web = lighttpd(&site, dir, free_port());
    check_deployment(&web);
    let log = std::fs::read_to_string(logs.join("iipsrv.log")).unwrap_or_default();
    assert!(log.contains("Running in FCGI mode"), "{log}");
}

#[test]
fn lighttpd_with_bind() {
    if !require("lighttpd", "lighttpd") {
        return;
    }
    let m = MemcachedServer::start();
    let s = bind_instance(&m.addr(), &[]);
    let site = example(
        "lighttpd-iipsrv-bind.conf",
        &[(
            "\"port\" => 9000",
            &format!("\"port\" => {}", s.tcp_addr().port()),
        )],
    );
    let web = lighttpd(&site, open_tempdir(), free_port());
    check_deployment(&web);
}

#[test]
fn nginx_with_spawn_fcgi() {
    if !require("nginx", "nginx-light") || !require("spawn-fcgi", "spawn-fcgi") {
        return;
    }
    let m = MemcachedServer::start();
    // iipsrv under spawn-fcgi on a UNIX socket, started by the example script.
    let dir = open_tempdir();
    let run = writable_dir(dir.path(), "run");
    let logs = writable_dir(dir.path(), "log");
    let socket = run.join("iipsrv.sock");
    let mut cmd = Command::new("sh");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/spawn-fcgi-iipsrv.sh"))
        .env("FOREGROUND", "1")
        .env("IIPSRV", BIN)
        .env("SOCKET", &socket)
        .env("LOGFILE", logs.join("iipsrv.log"))
        .env("FILESYSTEM_PREFIX", fixtures_prefix())
        .env("MEMCACHED_SERVERS", m.addr());
    let spawned = spawn_fcgi(cmd, &socket, dir);

    let port = free_port();
    let site = example(
        "nginx-iipsrv.conf",
        &[
            ("listen 80;", &format!("listen 127.0.0.1:{port};")),
            (
                "server 127.0.0.1:9000;",
                &format!("server unix:{};", socket.display()),
            ),
        ],
    );
    let web = nginx(&site, open_tempdir(), port);
    check_deployment(&web);
    let log = std::fs::read_to_string(logs.join("iipsrv.log")).unwrap_or_default();
    assert!(log.contains("Running in FCGI mode"), "{log}");
    drop(web);
    drop(spawned);
}

/// spawn-fcgi in the foreground (`-n`: it execs iipsrv, so the child is iipsrv itself).
fn spawn_fcgi(mut cmd: Command, socket: &Path, dir: tempfile::TempDir) -> Running {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("stderr.txt")).unwrap(),
        ));
    let child = Process::spawn(&mut cmd, libc::SIGTERM).expect("start spawn-fcgi");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "spawn-fcgi did not start iipsrv: {}",
            std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let error_log = dir.path().join("stderr.txt");
    Running {
        name: "spawn-fcgi",
        _child: child,
        port: 0,
        dir,
        error_log,
    }
}

#[test]
fn nginx_with_bind() {
    if !require("nginx", "nginx-light") {
        return;
    }
    let m = MemcachedServer::start();
    let s = bind_instance(&m.addr(), &[]);
    let port = free_port();
    let site = example(
        "nginx-iipsrv.conf",
        &[
            ("listen 80;", &format!("listen 127.0.0.1:{port};")),
            (
                "server 127.0.0.1:9000;",
                &format!("server {};", s.tcp_addr()),
            ),
        ],
    );
    let web = nginx(&site, open_tempdir(), port);
    check_deployment(&web);
}

/// Scaling out: two instances behind one nginx upstream, one memcached shared by both.
#[test]
fn two_instances_share_one_memcached() {
    if !require("nginx", "nginx-light") || !require("memcached", "memcached") {
        return;
    }
    let m = MemcachedServer::start();
    // VERBOSITY 2 (the environment file has 1) so that each log shows the requests it served.
    let a = bind_instance(&m.addr(), &[("VERBOSITY", "2")]);
    let b = bind_instance(&m.addr(), &[("VERBOSITY", "2")]);
    let port = free_port();
    let site = example(
        "nginx-iipsrv-cluster.conf",
        &[
            ("listen 80;", &format!("listen 127.0.0.1:{port};")),
            (
                "server 10.0.0.11:9000;",
                &format!("server {};", a.tcp_addr()),
            ),
            (
                "server 10.0.0.12:9000;",
                &format!("server {};", b.tcp_addr()),
            ),
        ],
    );
    let web = nginx(&site, open_tempdir(), port);
    check_deployment(&web);

    // The requests need no image, so that only the memcached check needs more than this build.
    let agent = ureq::AgentBuilder::new().build();
    let hits = m.stat("get_hits");
    let first = get(&agent, &web.url(IIP_SERVER));
    assert_eq!(first.0, 200);
    for i in 0..40 {
        let r = get(&agent, &web.url(IIP_SERVER));
        assert_eq!((r.0, &r.2), (200, &first.2), "request {i}");
    }
    let served = |s: &TestServer| s.log().matches("Full Request is OBJ=IIP,1.0").count();
    assert!(
        served(&a) > 5 && served(&b) > 5,
        "both instances serve: {} and {}",
        served(&a),
        served(&b)
    );

    // One instance stops: nginx sends everything to the other (fastcgi_next_upstream).
    drop(a);
    for i in 0..20 {
        let r = get(&agent, &web.url(IIP_SERVER));
        assert_eq!((r.0, &r.2), (200, &first.2), "request {i} after a stopped");
    }

    // The response, stored by whichever instance answered first, was served by both from
    // memcached. // needs the App hook
    let hits = m.stat("get_hits") - hits;
    assert!(
        hits >= 50,
        "{hits} memcached hits of 61 requests (needs the App hook)"
    );
}

#[test]
fn systemd_units_verify() {
    if !require("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/systemd/iipsrv.env");
    let env = env.display().to_string();
    for unit in [
        "iipsrv.service",
        "iipsrv-activated.service",
        "iipsrv.socket",
    ] {
        let text = if unit.ends_with(".service") {
            example(
                &format!("systemd/{unit}"),
                &[
                    (
                        "ExecStart=/usr/local/bin/iipsrv",
                        &format!("ExecStart={BIN}"),
                    ),
                    (
                        "EnvironmentFile=/etc/iipsrv/iipsrv.env",
                        &format!("EnvironmentFile={env}"),
                    ),
                ],
            )
        } else {
            example(&format!("systemd/{unit}"), &[])
        };
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args([
            "iipsrv.service",
            "iipsrv-activated.service",
            "iipsrv.socket",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Unknown") && !stderr.contains("iipsrv"),
        "{stderr}"
    );
}

/// What `iipsrv-activated.service` relies on: the listening socket on fd 0, a first connection
/// already waiting when iipsrv starts (systemd-socket-activate spawns on that connection; the
/// socket is moved from fd 3, where it passes it, to fd 0 as StandardInput=socket does).
#[test]
fn socket_activation_hands_over_fd_0() {
    if !require("systemd-socket-activate", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("iipsrv.log");
    // (systemd-socket-activate passes only the variables given with -E.)
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}")])
        .arg(format!("-ELOGFILE={}", log.display()))
        .args(["-EMEMCACHED_SERVERS=", "sh", "-c", "exec \"$0\" <&3 3<&-"])
        .arg(BIN);
    let _activator = Running::spawn("systemd-socket-activate", cmd, port, dir, log.clone());
    let reply = crate::common::fcgi::Client::connect_tcp(("127.0.0.1", port))
        .and_then(|mut c| c.get("OBJ=IIP,1.0&OBJ=IIP-server", false))
        .expect("an answer from the activated iipsrv");
    assert!(reply.stdout.ends_with(b"IIP-server:3.65\r\n"));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log.contains("Running in FCGI mode"), "{log}");
}

#[test]
fn logrotate_moves_the_log_and_iipsrv_follows() {
    if !require("logrotate", "logrotate") {
        return;
    }
    let s = TestServer::tcp(&[("VERBOSITY", "2")]);
    let log = s.dir.path().join("iipsrv.log");
    let create = if is_root() {
        "create 0640 www-data adm"
    } else {
        "create 0640"
    };
    let conf = example(
        "logrotate-iipsrv",
        &[
            ("/var/log/iipsrv/iipsrv.log", &log.display().to_string()),
            ("create 0640 www-data adm", create),
        ],
    );
    let conf_path = s.dir.path().join("logrotate.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut c = crate::common::fcgi::Client::connect_tcp(s.tcp_addr()).unwrap();
    c.get("OBJ=IIP,1.0&OBJ=IIP-server&before=rotation", true)
        .unwrap();
    let out = Command::new("logrotate")
        .arg("--force")
        .arg("--state")
        .arg(s.dir.path().join("logrotate.state"))
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = s.dir.path().join("iipsrv.log.1");
    assert!(
        std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("before=rotation")
    );
    // No postrotate: within a second iipsrv notices and writes to the new file.
    std::thread::sleep(Duration::from_millis(1100));
    c.get("OBJ=IIP,1.0&OBJ=IIP-server&after=rotation", true)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = std::fs::read_to_string(&log).unwrap_or_default();
        if now.contains("after=rotation") {
            break;
        }
        assert!(Instant::now() < deadline, "new log: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
        c.get("OBJ=IIP,1.0&OBJ=IIP-server&after=rotation", true)
            .unwrap();
    }
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("after=rotation")
    );
}
