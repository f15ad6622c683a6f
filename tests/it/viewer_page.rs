//! The viewer page (`GET /viewer/IDENTIFIER` on the `--http` listener): its HTTP answers, and
//! the page in a real browser. Debian's Chromium, headless and driven over the DevTools
//! protocol (on a pipe), opens the page for the bundled sample once per tile source
//! (`?protocol=iiif|dzi|zoomify|iip`) in an 800×840 viewport, waits until the page says it is
//! done (`<body data-state>`: "drawn" or "failed"), and takes a screenshot. The image must be
//! drawn there with the sample's colours in the right places: the drawn area is found against
//! the page's background and cut into the sample's 10×10 grid, and the middle of every cell
//! must have the colour of the same cell of `fixtures/iiif-validator.png` (the picture
//! `fixtures/sample.tif` was made from). A page whose tiles do not load draws nothing and
//! fails; a tile in the wrong place fails its cell.
//!
//! (Chromium's plain `--screenshot --virtual-time-budget` mode was tried first: it took some
//! screenshots before the page had its answers, and it resizes the page just before the
//! screenshot, so it was replaced by this driver.)
//!
//! Chromium runs in a process group of its own, which is killed (SIGKILL, all of it) when the
//! test ends, also when it fails. A missing Chromium fails the tests with the install line;
//! IIPSRV_SKIP_DEPLOYMENT_TESTS=1 skips them knowingly (`support::require`).

use std::io::{BufRead as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{TestServer, fcgi_get_with, fixtures, fixtures_prefix, get, require};

/// The page's background (`#141414` in `src/viewer/assets/viewer.html`).
const BACKGROUND: [u8; 3] = [0x14, 0x14, 0x14];
/// The page's header height in CSS pixels (the viewer starts below it).
const HEADER: u32 = 40;
/// The page's viewport (CSS pixels, device scale factor 1).
const VIEWPORT: (u32, u32) = (800, 840);
/// A pixel is part of the image when a channel differs from the background by more than this.
const BACKGROUND_TOLERANCE: i32 = 24;
/// The sample is a 10×10 grid of flat colours.
const GRID: u32 = 10;
/// Largest difference of a cell's mean colour (any channel) from the reference's: two JPEG
/// encodings and a resampling apart, flat colours stay within a few levels.
const CELL_TOLERANCE: f64 = 16.0;
/// A guard against a hung browser or page (not a measurement: a page takes a second or two).
const CHROMIUM_GUARD: Duration = Duration::from_secs(120);

fn server() -> TestServer {
    TestServer::http(&[("FILESYSTEM_PREFIX", &fixtures_prefix())])
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The asset URLs the page links to (`src="../viewer/assets/..."`), made absolute.
fn asset_urls(base: &str, html: &str) -> Vec<String> {
    html.split("\"../viewer/assets/")
        .skip(1)
        .map(|s| format!("{base}/viewer/assets/{}", &s[..s.find('"').unwrap()]))
        .collect()
}

#[test]
fn viewer_page_and_assets_are_served_with_their_types_and_cache_headers() {
    let s = server();
    let base = format!("http://{}", s.tcp_addr());
    let agent = ureq::AgentBuilder::new().build();

    let (status, h, body) = get(&agent, &format!("{base}/viewer/sample.tif"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));
    let html = String::from_utf8(body).unwrap();
    let urls = asset_urls(&base, &html);
    assert_eq!(urls.len(), 3, "{html}");
    for url in &urls {
        let (status, h, body) = get(&agent, url);
        assert_eq!(status, 200, "{url}");
        let etag = header(&h, "etag").expect("an ETag").to_string();
        assert_eq!(
            header(&h, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        let expected_type = if url.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        assert_eq!(header(&h, "content-type"), Some(expected_type), "{url}");
        assert!(!body.is_empty());
        // Revalidation: 304 without a body.
        let r = agent.get(url).set("If-None-Match", &etag).call();
        let (status, _, body) = crate::support::read_response(r, url);
        assert_eq!(status, 304, "{url}");
        assert!(body.is_empty());
        // HEAD: the same headers, no body.
        let r = agent.head(url).call();
        let (status, head_h, body) = crate::support::read_response(r, url);
        assert_eq!(status, 200);
        assert!(body.is_empty());
        assert_eq!(header(&head_h, "etag"), Some(etag.as_str()));
        assert_eq!(header(&head_h, "content-type"), Some(expected_type));
    }
    assert!(
        urls.iter()
            .any(|u| u.contains("/openseadragon-") && u.ends_with(".min.js")),
        "{urls:?}"
    );
}

#[test]
fn viewer_refuses_traversal_unknown_assets_and_other_methods() {
    let s = server();
    let addr = s.tcp_addr();
    // Raw requests: a client library would normalise the dot segments away.
    for path in [
        "/viewer/assets/../../Cargo.toml",
        "/viewer/assets/..%2f..%2fCargo.toml",
        "/viewer/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/viewer/assets/viewer.js",
        "/viewer/",
    ] {
        let reply = raw_request(addr, "GET", path);
        assert!(reply.starts_with("HTTP/1.1 404"), "{path}: {reply}");
        assert!(!reply.contains("[package]"), "{path}");
    }
    let reply = raw_request(addr, "POST", "/viewer/sample.tif");
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert!(reply.contains("\r\nAllow: GET, HEAD\r\n"), "{reply}");
}

/// One request over a fresh connection; the whole answer as text.
fn raw_request(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn viewer_is_not_on_the_fastcgi_listener() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_prefix())]);
    let reply = fcgi_get_with(
        &s.addr,
        "",
        &[(b"REQUEST_URI".as_slice(), b"/viewer/sample.tif".as_slice())],
    );
    let body = String::from_utf8_lossy(reply.body());
    assert!(!body.contains("viewer-config"), "{body}");
    assert!(body.contains("IIPImage Server"), "iipsrv's banner: {body}");
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// commands go to its fd 3, answers and events come from its fd 4, each a JSON text ended by
/// NUL), with one page whose viewport is exactly [`VIEWPORT`]. It runs in a process group of its
/// own; the whole group (renderer, GPU and utility processes) is killed on drop, also when a
/// test fails.
struct Browser {
    child: Child,
    commands: std::fs::File,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _dir: tempfile::TempDir,
}

/// A pipe whose both ends are closed on exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    fn start() -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let (their_commands, our_commands) = pipe();
        let (our_answers, their_answers) = pipe();
        let mut c = Command::new("chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-proxy-server",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("about:blank")
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        let (read_fd, write_fd) = (their_commands.as_raw_fd(), their_answers.as_raw_fd());
        // In the child, between fork and exec: only async-signal-safe calls. The ends are
        // first copied above 10 so that dup2 cannot overwrite one with the other.
        unsafe {
            c.pre_exec(move || {
                let r = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c
            .spawn()
            .expect("chromium starts (apt-get install chromium)");
        drop((their_commands, their_answers));
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let mut input = std::io::BufReader::new(std::fs::File::from(our_answers));
            let mut message = Vec::new();
            while matches!(input.read_until(0, &mut message), Ok(n) if n > 0) {
                message.pop_if(|b| *b == 0);
                if let Ok(v) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut b = Browser {
            child,
            commands: std::fs::File::from(our_commands),
            answers,
            next_id: 0,
            session: String::new(),
            _dir: dir,
        };
        let target = b.call(false, "Target.createTarget", json!({"url": "about:blank"}));
        let target = target["targetId"].clone();
        let attached = b.call(
            false,
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call(
            true,
            "Emulation.setDeviceMetricsOverride",
            json!({"width": VIEWPORT.0, "height": VIEWPORT.1, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    /// Send a command (to the page when `page`, else to the browser); its result.
    fn call(&mut self, page: bool, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if page {
            command["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&command).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium: {method}: {e}"));
        let deadline = Instant::now() + CHROMIUM_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("chromium did not answer {method}: {e}"));
            if message["id"] == json!(id) {
                assert!(
                    message.get("error").is_none(),
                    "chromium: {method}: {message}"
                );
                return message["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            true,
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Open `url` and wait until the viewer page says "drawn" or "failed" (`data-state`);
    /// then let two frames pass so that what was loaded is on the screen. The final state.
    fn open(&mut self, url: &str) -> String {
        self.call(true, "Page.navigate", json!({"url": url}));
        let deadline = Instant::now() + CHROMIUM_GUARD;
        let state = loop {
            let state = self.eval(
                "document.readyState === 'complete' && document.body \
                 ? (document.body.dataset.state || '') : ''",
            );
            let state = state.as_str().unwrap_or("").to_string();
            if state == "drawn" || state == "failed" {
                break state;
            }
            assert!(
                Instant::now() < deadline,
                "{url}: the page did not finish (state {state:?})"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.eval(
            "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(1))))",
        );
        state
    }

    /// A PNG of the viewport.
    fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call(true, "Page.captureScreenshot", json!({"format": "png"}));
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// An RGB picture.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Rgb {
    fn decode_png(bytes: &[u8]) -> Rgb {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).expect("PNG decodes");
        buf.truncate(info.buffer_size());
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected PNG colour type {other:?}"),
        };
        let pixels = buf
            .chunks_exact(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Rgb {
            width: info.width,
            height: info.height,
            pixels,
        }
    }

    fn at(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// The mean colour of the rectangle [x0, x1) × [y0, y1).
    fn mean(&self, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> [f64; 3] {
        let mut sum = [0f64; 3];
        for y in y0..y1 {
            for x in x0..x1 {
                for (s, v) in sum.iter_mut().zip(self.at(x, y)) {
                    *s += v as f64;
                }
            }
        }
        let n = ((x1 - x0) * (y1 - y0)).max(1) as f64;
        sum.map(|s| s / n)
    }

    /// The bounding box [x0, x1) × [y0, y1) of the pixels at `y >= top` that are not the
    /// page's background; `None` when there are none.
    fn drawn_box(&self, top: u32) -> Option<(u32, u32, u32, u32)> {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for y in top..self.height {
            for x in 0..self.width {
                let p = self.at(x, y);
                let differs = (0..3)
                    .any(|c| (p[c] as i32 - BACKGROUND[c] as i32).abs() > BACKGROUND_TOLERANCE);
                if differs {
                    b = Some(match b {
                        None => (x, y, x + 1, y + 1),
                        Some((x0, y0, x1, y1)) => {
                            (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1))
                        }
                    });
                }
            }
        }
        b
    }
}

/// The middle half of cell (`i`, `j`) of a `GRID`×`GRID` division of `area`.
fn cell_middle(area: (u32, u32, u32, u32), i: u32, j: u32) -> (u32, u32, u32, u32) {
    let (x0, y0, x1, y1) = area;
    let (w, h) = ((x1 - x0) as f64, (y1 - y0) as f64);
    let at = |origin: u32, size: f64, k: f64| origin + (size * k / GRID as f64).round() as u32;
    (
        at(x0, w, i as f64 + 0.25),
        at(y0, h, j as f64 + 0.25),
        at(x0, w, i as f64 + 0.75),
        at(y0, h, j as f64 + 0.75),
    )
}

/// Open the viewer page of the sample with `protocol`, take a screenshot and check the image.
fn check_drawn(browser: &mut Browser, base: &str, protocol: &str, reference: &Rgb) {
    let url = format!("{base}/viewer/sample.tif?protocol={protocol}");
    let state = browser.open(&url);
    let bytes = browser.screenshot();
    let picture = Rgb::decode_png(&bytes);
    assert_eq!((picture.width, picture.height), VIEWPORT, "{protocol}");
    let keep = || {
        let kept = std::env::temp_dir().join(format!("iipsrv-viewer-{protocol}.png"));
        let _ = std::fs::write(&kept, &bytes);
        kept.display().to_string()
    };
    let Some(area) = picture.drawn_box(HEADER) else {
        panic!(
            "{protocol}: nothing drawn, page state {state:?} (screenshot kept as {})",
            keep()
        );
    };
    let (x0, y0, x1, y1) = area;
    let (w, h) = (x1 - x0, y1 - y0);
    // The sample is square; the page fits it into the viewer below the header.
    assert!(
        w >= 400 && w.abs_diff(h) <= 2,
        "{protocol}: drawn area {area:?} is not the square sample (screenshot kept as {})",
        keep()
    );
    let full = (0, 0, reference.width, reference.height);
    let mut wrong = Vec::new();
    for j in 0..GRID {
        for i in 0..GRID {
            let got = picture.mean(cell_middle(area, i, j));
            let want = reference.mean(cell_middle(full, i, j));
            let diff = (0..3).map(|c| (got[c] - want[c]).abs()).fold(0.0, f64::max);
            if diff > CELL_TOLERANCE {
                wrong.push(format!("cell ({i},{j}): {got:.0?} instead of {want:.0?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{protocol}: {} of {} cells wrong (screenshot kept as {}): {wrong:#?}",
        wrong.len(),
        GRID * GRID,
        keep()
    );
    assert_eq!(state, "drawn", "{protocol}: every tile loaded");
}

fn reference() -> Rgb {
    Rgb::decode_png(&std::fs::read(fixtures().join("iiif-validator.png")).unwrap())
}

#[test]
fn viewer_draws_the_sample_with_every_tile_source() {
    if !require("chromium", "chromium") {
        return;
    }
    let s = server();
    let base = format!("http://{}", s.tcp_addr());
    let reference = reference();
    let mut browser = Browser::start();
    for protocol in ["iiif", "dzi", "zoomify", "iip"] {
        check_drawn(&mut browser, &base, protocol, &reference);
    }
}

#[test]
fn viewer_shows_the_servers_error_for_an_unknown_image_and_draws_nothing() {
    if !require("chromium", "chromium") {
        return;
    }
    let s = server();
    let base = format!("http://{}", s.tcp_addr());
    let mut browser = Browser::start();
    for protocol in ["iiif", "dzi", "zoomify", "iip"] {
        let state = browser.open(&format!("{base}/viewer/missing.tif?protocol={protocol}"));
        assert_eq!(state, "failed", "{protocol}");
        let error = browser.eval("document.getElementById('error').textContent");
        let error = error.as_str().unwrap_or("");
        assert!(
            error.starts_with("404 Not Found from ")
                && error.contains("missing.tif is neither a file nor part of an image sequence"),
            "{protocol}: {error}"
        );
        let picture = Rgb::decode_png(&browser.screenshot());
        // The error box sits at the top of the viewer; below it nothing is drawn.
        assert_eq!(picture.drawn_box(300), None, "{protocol}");
        assert_ne!(
            picture.at(VIEWPORT.0 / 2, HEADER + 20),
            BACKGROUND,
            "{protocol}: error box"
        );
    }
}

#[test]
fn viewer_shows_markup_in_an_identifier_as_text() {
    if !require("chromium", "chromium") {
        return;
    }
    let s = server();
    let base = format!("http://{}", s.tcp_addr());
    let mut browser = Browser::start();
    let state = browser.open(&format!(
        "{base}/viewer/%22%3E%3Cimg%20id=injected%20src=x%3E\
         %3Cscript%3Edocument.documentElement.dataset.pwned=1%3C%2Fscript%3E.tif"
    ));
    assert_eq!(state, "failed", "no such image");
    let injected = browser.eval(
        "[document.getElementById('injected') !== null, \
          document.documentElement.dataset.pwned || '', \
          document.getElementById('identifier').textContent]",
    );
    assert_eq!(
        injected,
        json!([
            false,
            "",
            "\"><img id=injected src=x><script>document.documentElement.dataset.pwned=1</script>.tif"
        ])
    );
}
