//! Starting the built binary (and real web servers) for the integration tests.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_iipsrv");

/// How long a stopped process (and its children) gets to exit before the group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A process a test started, in its own process group, ended with all its children when
/// dropped, also when the test panics: the leader gets `stop` (a signal on which it ends its
/// own children, e.g. SIGTERM for nginx, whose master then stops its workers; SIGKILL for a
/// program without children), then after [`STOP_TIMEOUT`] the whole group gets SIGKILL, and
/// the leader is reaped. `.ci/run` checks that no test leaves a process behind.
#[derive(Debug)]
pub struct Process {
    child: Child,
    stop: i32,
}

impl Process {
    /// Spawn `cmd` in a new process group.
    pub fn spawn(cmd: &mut Command, stop: i32) -> std::io::Result<Process> {
        use std::os::unix::process::CommandExt as _;
        let child = cmd.process_group(0).spawn()?;
        Ok(Process { child, stop })
    }

    /// Send `sig` to the leader.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl std::ops::Deref for Process {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        if let Ok(None) = self.child.try_wait() {
            self.signal(self.stop);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever is left in the group (workers, spawned children), then the leader.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; tests retry on the rare collision).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where a test server listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The built `iipsrv`, running, killed on drop.
pub struct TestServer {
    pub child: Process,
    pub addr: Addr,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    fn command(dir: &Path, env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOGFILE", dir.join("iipsrv.log"))
            .env("VERBOSITY", "2")
            .env("MEMCACHED_SERVERS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn start(option: &str, addr: Addr, dir: tempfile::TempDir, env: &[(&str, &str)]) -> TestServer {
        let mut c = Self::command(dir.path(), env);
        match &addr {
            Addr::Tcp(a) => c.arg(option).arg(a.to_string()),
            Addr::Unix(p) => c.arg(option).arg(p),
        };
        let child = Process::spawn(&mut c, libc::SIGKILL).expect("start iipsrv");
        let s = TestServer { child, addr, dir };
        s.wait_ready();
        s
    }

    fn loopback() -> Addr {
        Addr::Tcp(format!("127.0.0.1:{}", free_port()).parse().unwrap())
    }

    /// Start with `--bind 127.0.0.1:<free port>`.
    pub fn tcp(env: &[(&str, &str)]) -> TestServer {
        Self::start(
            "--bind",
            Self::loopback(),
            tempfile::tempdir().unwrap(),
            env,
        )
    }

    /// Start with `--bind <tempdir>/iipsrv.sock`.
    pub fn unix(env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iipsrv.sock");
        Self::start("--bind", Addr::Unix(path), dir, env)
    }

    /// Start with `--http 127.0.0.1:<free port>` only.
    pub fn http(env: &[(&str, &str)]) -> TestServer {
        Self::start(
            "--http",
            Self::loopback(),
            tempfile::tempdir().unwrap(),
            env,
        )
    }

    /// Start under spawn-fcgi, which passes the listening socket on fd 0 (TCP or UNIX).
    pub fn spawn_fcgi(unix: bool, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Command::new("spawn-fcgi");
        let addr = if unix {
            let path = dir.path().join("spawned.sock");
            c.arg("-s").arg(&path);
            Addr::Unix(path)
        } else {
            let port = free_port();
            c.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
            Addr::Tcp(format!("127.0.0.1:{port}").parse().unwrap())
        };
        // -n: do not fork, so the child we hold is iipsrv itself (exec'd by spawn-fcgi).
        c.arg("-n").arg("--").arg(BIN);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOGFILE", dir.path().join("iipsrv.log"))
            .env("VERBOSITY", "2")
            .env("MEMCACHED_SERVERS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let child = Process::spawn(&mut c, libc::SIGKILL)
            .expect("spawn-fcgi is installed (apt-get install spawn-fcgi)");
        let s = TestServer { child, addr, dir };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ok = match &self.addr {
                Addr::Tcp(a) => TcpStream::connect(a).is_ok(),
                Addr::Unix(p) => UnixStream::connect(p).is_ok(),
            };
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "iipsrv did not start listening on {:?}: {}",
            self.addr,
            self.log()
        );
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        match &self.addr {
            Addr::Tcp(a) => *a,
            Addr::Unix(p) => panic!("unix server at {}", p.display()),
        }
    }

    /// The server's log file so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("iipsrv.log")).unwrap_or_default()
    }

    /// Send a signal and wait for the exit status (with a timeout).
    pub fn signal_and_wait(
        &mut self,
        sig: i32,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        self.signal(sig);
        self.wait_exit(timeout)
    }

    /// Send a signal to the server.
    pub fn signal(&self, sig: i32) {
        self.child.signal(sig);
    }

    /// The exit status, once the server has exited (`None` if still running after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Whether a Debian program the deployment tests need is installed; a missing one fails the
/// test with the install line (set IIPSRV_SKIP_DEPLOYMENT_TESTS=1 to skip them knowingly).
pub fn require(program: &str, package: &str) -> bool {
    if std::env::var_os("IIPSRV_SKIP_DEPLOYMENT_TESTS").is_some() {
        eprintln!("skipping: IIPSRV_SKIP_DEPLOYMENT_TESTS is set");
        return false;
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(program).exists();
    assert!(
        found,
        "{program} is needed: apt-get install {package} (or run .ci/run)"
    );
    true
}

/// nginx in front of a FastCGI address, from a config written for the test; stopped with its
/// workers on drop.
pub struct Nginx {
    _child: Process,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// `locations` is the body of the `server {}` block; `{UPSTREAM}` is replaced by the
    /// upstream name `iipsrv`, which points at `fastcgi` with a keep-alive pool.
    pub fn start(fastcgi: &Addr, locations: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let server = match fastcgi {
            Addr::Tcp(a) => a.to_string(),
            Addr::Unix(p) => format!("unix:{}", p.display()),
        };
        let d = dir.path().display();
        let conf = format!(
            "user root;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 2048; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n\
               proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               upstream iipsrv {{ server {server}; keepalive 32; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n{}\n  }}\n}}\n",
            locations.replace("{UPSTREAM}", "iipsrv")
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        });
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SIGTERM: the master stops its workers and waits for them.
        let child = Process::spawn(&mut cmd, libc::SIGTERM).expect("nginx is installed");
        let n = Nginx {
            _child: child,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The nginx location for iipsrv at `/fcgi-bin/iipsrv.fcgi`, as iipsrv's documentation has it,
/// with keep-alive connections to the upstream.
pub const IIPSRV_LOCATION: &str = "    location /fcgi-bin/iipsrv.fcgi {\n      fastcgi_pass {UPSTREAM};\n      fastcgi_keep_conn on;\n      include /etc/nginx/fastcgi_params;\n      fastcgi_param PATH_INFO $fastcgi_script_name;\n    }\n";

/// An HTTP GET through ureq: (status, headers we care about, body). Errors with a status are
/// returned like successes.
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    read_response(agent.get(url).call(), url)
}

/// (status, headers, body) of a ureq call; an error status is an answer like any other.
pub fn read_response(
    result: Result<ureq::Response, ureq::Error>,
    url: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, headers, body)
}

/// Decode a JPEG answer to RGB (panics when it is not a JPEG).
pub fn decode_jpeg_rgb(jpeg: &[u8]) -> turbojpeg::Image<Vec<u8>> {
    turbojpeg::decompress(jpeg, turbojpeg::PixelFormat::RGB).expect("a decodable JPEG")
}

/// PSNR in dB of two 8-bit sample buffers of equal length (99 when identical).
pub fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Debian's iipsrv 1.1 under spawn-fcgi (one process), as the reference; killed on drop.
pub struct Reference {
    pub port: u16,
    _process: Process,
}

impl Reference {
    pub const BIN: &'static str = "/usr/lib/iipimage-server/iipsrv.fcgi";

    /// Start it with `env`; panics with the apt line when it is not installed.
    pub fn start(env: &[(&str, &str)]) -> Reference {
        assert!(
            Path::new(Self::BIN).exists(),
            "iipsrv 1.1 is needed for differential tests: apt-get install iipimage-server"
        );
        let port = free_port();
        let mut c = Command::new("spawn-fcgi");
        // -n: no fork, spawn-fcgi execs iipsrv, so the process we hold is iipsrv itself.
        c.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-n", "--"])
            .arg(Self::BIN)
            .env_clear()
            .env("VERBOSITY", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let process = Process::spawn(&mut c, libc::SIGKILL).expect("spawn-fcgi is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "iipsrv 1.1 did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Reference {
            port,
            _process: process,
        }
    }

    pub fn addr(&self) -> Addr {
        Addr::Tcp(format!("127.0.0.1:{}", self.port).parse().unwrap())
    }
}

/// The bundled fixtures folder (`FILESYSTEM_PREFIX` for the sample image), with a trailing `/`.
pub fn fixtures_prefix() -> String {
    format!("{}/fixtures/", env!("CARGO_MANIFEST_DIR"))
}

/// Whether we run as root (servers that drop privileges need to be told to stay root).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A real memcached on a free loopback port (`memcached -l 127.0.0.1 -p PORT -U 0`), killed on
/// drop.
pub struct MemcachedServer {
    pub child: Option<Process>,
    pub port: u16,
}

impl MemcachedServer {
    pub fn start() -> MemcachedServer {
        Self::start_on(free_port())
    }

    /// Start on a given port (e.g. again after [`MemcachedServer::kill`]).
    pub fn start_on(port: u16) -> MemcachedServer {
        let mut c = Command::new("memcached");
        c.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
        if is_root() {
            c.args(["-u", "root"]);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = Process::spawn(&mut c, libc::SIGKILL)
            .expect("memcached is installed (apt-get install memcached)");
        let m = MemcachedServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "memcached did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        m
    }

    /// `127.0.0.1:PORT`, for MEMCACHED_SERVERS.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// memcached's `stats` (numeric values only).
    pub fn stats(&self) -> std::collections::HashMap<String, u64> {
        let text = self.text_command(b"stats\r\n", b"END\r\n");
        text.lines()
            .filter_map(|l| {
                let mut f = l.strip_prefix("STAT ")?.split(' ');
                Some((f.next()?.to_string(), f.next()?.trim().parse().ok()?))
            })
            .collect()
    }

    /// One `stats` value (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// The value stored under a key (any bytes), through the meta protocol with a base64 key.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let cmd = format!("mg {} b v\r\nmn\r\n", base64(key));
        std::io::Write::write_all(&mut s, cmd.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while !buf.ends_with(b"MN\r\n") {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "memcached closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        let head_end = buf.windows(2).position(|w| w == b"\r\n").unwrap();
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = head.strip_prefix("VA ")?.split(' ').next()?.parse().ok()?;
        Some(buf[head_end + 2..head_end + 2 + len].to_vec())
    }

    fn text_command(&self, cmd: &[u8], end: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::io::Write::write_all(&mut s, cmd).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(end) {
            let n = s.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Kill it (SIGKILL, as a crash would) and wait for it.
    pub fn kill(&mut self) {
        drop(self.child.take());
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A FastCGI client for a test server's address (30 s timeout).
pub fn fcgi_client(addr: &Addr) -> crate::common::fcgi::Client {
    use crate::common::fcgi::Client;
    let mut c = match addr {
        Addr::Tcp(a) => Client::connect_tcp(a).unwrap(),
        Addr::Unix(p) => Client::connect_unix(p).unwrap(),
    };
    c.set_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

/// A GET with a query string over FastCGI.
pub fn fcgi_get(addr: &Addr, query: &str) -> crate::common::fcgi::Reply {
    fcgi_client(addr).get(query, false).unwrap()
}

/// A GET over FastCGI with extra parameters (headers such as `HTTP_IF_MODIFIED_SINCE`).
pub fn fcgi_get_with(
    addr: &Addr,
    query: &str,
    extra: &[(&[u8], &[u8])],
) -> crate::common::fcgi::Reply {
    let mut params: Vec<(&[u8], &[u8])> = vec![
        (b"REQUEST_METHOD", b"GET"),
        (b"QUERY_STRING", query.as_bytes()),
    ];
    params.extend_from_slice(extra);
    fcgi_client(addr).request(&params, b"", false).unwrap()
}

/// `FILESYSTEM_PREFIX` for the fixtures folder.
pub fn fixtures_dir_prefix() -> String {
    format!("{}/", fixtures().display())
}

/// The non-empty body lines of an IIP text response, without a 1.1-style `IIP:` line.
pub fn body_lines(r: &crate::common::fcgi::Reply) -> Vec<String> {
    String::from_utf8_lossy(r.body())
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with("IIP:"))
        .map(str::to_string)
        .collect()
}

/// A hostile-input answer: a 200 (what the header alone allows) or a 4xx, never a 5xx or a
/// crash, and never a server path in the body.
pub fn assert_refused_cleanly(query: &str, r: &crate::common::fcgi::Reply) {
    let status = r.status();
    assert!(
        status == 200 || (400..500).contains(&status),
        "{query}: {status}"
    );
    assert!(
        !String::from_utf8_lossy(r.body()).contains(&fixtures_dir_prefix()),
        "{query}: path leaked"
    );
}
