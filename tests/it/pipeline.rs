//! Region exports (CVT), the processing pipeline on tiles, SPECTRA and PFL, through the built
//! binary; CVT output compared with Debian's iipsrv 1.1 (same sizes, PSNR ≥ 35 dB).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fcgi::Client;
use crate::support::{Process, TestServer, free_port, get, require};

const IIPSRV_1_1: &str = "/usr/lib/iipimage-server/iipsrv.fcgi";

fn fixtures() -> String {
    format!("{}/fixtures/", env!("CARGO_MANIFEST_DIR"))
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// This server over HTTP with FILESYSTEM_PREFIX at the fixtures.
struct Ours {
    _server: TestServer,
    agent: ureq::Agent,
    base: String,
}

impl Ours {
    fn start(env: &[(&str, &str)]) -> Ours {
        let prefix = fixtures();
        let mut all = vec![("FILESYSTEM_PREFIX", prefix.as_str())];
        all.extend_from_slice(env);
        let server = TestServer::http(&all);
        let base = format!("http://{}/", server.tcp_addr());
        Ours {
            _server: server,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
            base,
        }
    }

    fn get(&self, q: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        get(&self.agent, &format!("{}?{q}", self.base))
    }

    /// A 200 image response: (Content-Type, Content-Disposition, body).
    fn image(&self, q: &str) -> (String, String, Vec<u8>) {
        let (status, h, body) = self.get(q);
        assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
        (
            header(&h, "Content-Type").unwrap_or("").to_string(),
            header(&h, "Content-Disposition").unwrap_or("").to_string(),
            body,
        )
    }
}

/// Debian's iipsrv 1.1 under spawn-fcgi; killed on drop.
struct Reference {
    _child: Process,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Reference {
    fn start() -> Option<Reference> {
        if !require("spawn-fcgi", "spawn-fcgi") {
            return None;
        }
        assert!(
            Path::new(IIPSRV_1_1).exists(),
            "iipsrv 1.1 is needed: apt-get install iipimage-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Process::spawn(
            Command::new("spawn-fcgi")
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-n", "--"])
                .arg(IIPSRV_1_1)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("FILESYSTEM_PREFIX", fixtures())
                .env("LOGFILE", dir.path().join("iipsrv.log"))
                .env("VERBOSITY", "0")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            9,
        )
        .expect("spawn-fcgi runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "iipsrv 1.1 did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Reference {
            _child: child,
            port,
            _dir: dir,
        })
    }

    /// The body of a 200 response.
    fn image(&self, q: &str) -> Vec<u8> {
        let mut c = Client::connect_tcp(("127.0.0.1", self.port)).unwrap();
        c.set_timeout(Some(Duration::from_secs(60))).unwrap();
        let r = c.get(q, false).unwrap();
        assert_eq!(r.status(), 200, "iipsrv 1.1, {q}");
        r.body().to_vec()
    }
}

/// Decoded 8-bit pixels.
#[derive(Debug)]
struct Decoded {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

fn decode_jpeg(body: &[u8]) -> Decoded {
    let header = turbojpeg::read_header(body).expect("a JPEG");
    let grey = header.colorspace == turbojpeg::Colorspace::Gray;
    let format = if grey {
        turbojpeg::PixelFormat::GRAY
    } else {
        turbojpeg::PixelFormat::RGB
    };
    let img = turbojpeg::decompress(body, format).expect("libturbojpeg decodes it");
    let channels = if grey { 1 } else { 3 };
    let mut pixels = Vec::with_capacity(img.width * img.height * channels);
    for row in 0..img.height {
        pixels.extend_from_slice(&img.pixels[row * img.pitch..][..img.width * channels]);
    }
    Decoded {
        width: img.width as u32,
        height: img.height as u32,
        channels,
        pixels,
    }
}

fn decode_png(body: &[u8]) -> Decoded {
    let mut d = png::Decoder::new(std::io::Cursor::new(body))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; d.output_buffer_size().unwrap()];
    let info = d.next_frame(&mut buf).expect("PNG decodes");
    buf.truncate(info.buffer_size());
    Decoded {
        width: info.width,
        height: info.height,
        channels: info.color_type.samples(),
        pixels: buf,
    }
}

fn decode_webp(body: &[u8]) -> Decoded {
    let (mut w, mut h) = (0, 0);
    // SAFETY: libwebp reads `body` and returns w*h*4 bytes or null.
    unsafe {
        let ptr = libwebp_sys::WebPDecodeRGBA(body.as_ptr(), body.len(), &mut w, &mut h);
        assert!(!ptr.is_null(), "libwebp decodes it");
        let pixels = std::slice::from_raw_parts(ptr, (w * h * 4) as usize).to_vec();
        libwebp_sys::WebPFree(ptr.cast());
        Decoded {
            width: w as u32,
            height: h as u32,
            channels: 4,
            pixels,
        }
    }
}

fn decode_tiff(body: &[u8]) -> Decoded {
    let mut d = tiff::decoder::Decoder::new(std::io::Cursor::new(body)).expect("a TIFF");
    let (width, height) = d.dimensions().unwrap();
    let tiff::decoder::DecodingResult::U8(pixels) = d.read_image().expect("TIFF decodes") else {
        panic!("8-bit TIFF expected");
    };
    let channels = pixels.len() / (width as usize * height as usize);
    Decoded {
        width,
        height,
        channels,
        pixels,
    }
}

/// The size in an AVIF file's `ispe` box (the image is not decoded).
fn avif_size(body: &[u8]) -> (u32, u32) {
    assert_eq!(&body[4..12], b"ftypavif", "an AVIF file");
    let at = body
        .windows(4)
        .position(|w| w == b"ispe")
        .expect("an ispe box");
    let be = |i: usize| u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
    (be(at + 8), be(at + 12))
}

fn decode(mime: &str, body: &[u8]) -> Decoded {
    match mime {
        "image/jpeg" => decode_jpeg(body),
        "image/png" => decode_png(body),
        "image/webp" => decode_webp(body),
        "image/tiff" => decode_tiff(body),
        other => panic!("cannot decode {other}"),
    }
}

/// PSNR in dB over RGB (grey is spread to RGB; alpha ignored).
fn psnr(a: &Decoded, b: &Decoded) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let rgb = |d: &Decoded, i: usize| -> [f64; 3] {
        let p = &d.pixels[i * d.channels..];
        if d.channels < 3 {
            [p[0] as f64; 3]
        } else {
            [p[0] as f64, p[1] as f64, p[2] as f64]
        }
    };
    let n = a.width as usize * a.height as usize;
    let mut se = 0.0;
    for i in 0..n {
        let (x, y) = (rgb(a, i), rgb(b, i));
        for k in 0..3 {
            se += (x[k] - y[k]).powi(2);
        }
    }
    let mse = se / (3 * n) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[test]
fn cvt_sizes_and_file_names() {
    let s = Ours::start(&[]);
    // (query, expected size, file name) on the 1000×1000 sample (levels 1000, 500, 250).
    let cases = [
        ("CVT=jpeg", (1000, 1000), "sample_1000x1000.jpg"),
        ("WID=300&CVT=jpeg", (300, 300), "sample_300x300.jpg"),
        ("HEI=123&CVT=jpeg", (123, 123), "sample_123x123.jpg"),
        (
            "RGN=0,0,0.5,0.25&WID=200&CVT=jpeg",
            (200, 100),
            "sample_200x100.jpg",
        ),
        (
            "RGN=0,0,0.5,0.25&WID=200&HEI=200&CVT=jpeg",
            (200, 100),
            "sample_200x100.jpg",
        ),
        // Without WID/HEI a region is scaled to the full size (upstream quirk, kept).
        (
            "RGN=0.5,0.5,0.5,0.5&CVT=jpeg",
            (1000, 1000),
            "sample_1000x1000.jpg",
        ),
        // MAX_CVT (5000) caps the size.
        ("WID=999999&CVT=jpeg", (5000, 5000), "sample_5000x5000.jpg"),
        // The file name has the size before rotation.
        (
            "RGN=0,0,0.5,0.25&WID=200&ROT=90&CVT=jpeg",
            (100, 200),
            "sample_200x100.jpg",
        ),
        (
            "RGN=0,0,0.5,0.25&WID=200&ROT=-90&CVT=jpeg",
            (100, 200),
            "sample_200x100.jpg",
        ),
        // WID=0 is unset; a negative width is ignored.
        ("WID=0&HEI=50&CVT=jpeg", (50, 50), "sample_50x50.jpg"),
        ("WID=-5&HEI=50&CVT=jpeg", (50, 50), "sample_50x50.jpg"),
        // Parameters after CVT do not apply.
        ("CVT=jpeg&WID=100", (1000, 1000), "sample_1000x1000.jpg"),
    ];
    for (q, (w, h), name) in cases {
        let (mime, disposition, body) = s.image(&format!("FIF=sample.tif&{q}"));
        assert_eq!(mime, "image/jpeg", "{q}");
        assert_eq!(disposition, format!("inline; filename=\"{name}\""), "{q}");
        let d = decode_jpeg(&body);
        assert_eq!((d.width, d.height), (w, h), "{q}");
    }
    // Stack pages and other fixtures.
    let (_, disposition, body) = s.image("FIF=tiff/stack_subifd.tif&SDS=2&WID=32&CVT=png");
    assert_eq!(disposition, "inline; filename=\"stack_subifd_32x24.png\"");
    let d = decode_png(&body);
    assert_eq!((d.width, d.height), (32, 24));
}

#[test]
fn cvt_every_format() {
    let s = Ours::start(&[]);
    for (arg, mime, ext) in [
        ("jpeg", "image/jpeg", "jpg"),
        ("jpg", "image/jpeg", "jpg"),
        ("JPEG", "image/jpeg", "jpg"),
        ("png", "image/png", "png"),
        ("webp", "image/webp", "webp"),
        ("tiff", "image/tiff", "tif"),
        ("gif", "image/jpeg", "jpg"),
        ("avif", "image/avif", "avif"),
    ] {
        let q = format!("FIF=tiff/rgb8_none.tif&WID=60&CVT={arg}");
        let (m, disposition, body) = s.image(&q);
        assert_eq!(m, mime, "{q}");
        assert_eq!(
            disposition,
            format!("inline; filename=\"rgb8_none_60x45.{ext}\""),
            "{q}"
        );
        let size = if mime == "image/avif" {
            avif_size(&body)
        } else {
            let d = decode(mime, &body);
            assert!(d.channels >= 3, "{q}");
            (d.width, d.height)
        };
        assert_eq!(size, (60, 45), "{q}");
    }
    // Alpha is kept by PNG and dropped by JPEG; 5 bands become 3 (PNG) or stay 5 (TIFF).
    let (_, _, body) = s.image("FIF=tiff/rgba8.tif&CVT=png");
    assert_eq!(decode_png(&body).channels, 4);
    let (_, _, body) = s.image("FIF=tiff/rgba8.tif&CVT=jpeg");
    assert_eq!(decode_jpeg(&body).channels, 3);
    let (_, _, body) = s.image("FIF=tiff/multiband5.tif&CVT=png");
    assert_eq!(decode_png(&body).channels, 3);
    let (_, _, body) = s.image("FIF=tiff/multiband5.tif&WID=40&CVT=tiff");
    let d = decode_tiff(&body);
    assert_eq!((d.width, d.channels), (40, 5));
    // Deeper and odder sources all come out as 8-bit images of the right size.
    for f in [
        "grey16.tif",
        "rgb16_be.tif",
        "grey12.tif",
        "grey32f.tif",
        "grey32u.tif",
        "grey32s.tif",
        "grey1.tif",
        "lab8.tif",
        "labf.tif",
        "palette8.tif",
        "rgb8_jpeg.tif",
        "rgb8_nonsquare.tif",
        "rgb8_separate.tif",
        "grey8_miniswhite.tif",
    ] {
        let (m, _, body) = s.image(&format!("FIF=tiff/{f}&WID=30&CVT=png"));
        let d = decode(&m, &body);
        assert_eq!(d.width, 30, "{f}");
    }
}

#[test]
fn cvt_post_is_an_attachment() {
    let s = Ours::start(&[]);
    let resp = s
        .agent
        .post(&s.base)
        .send_string("FIF=sample.tif&WID=100&CVT=png")
        .unwrap();
    assert_eq!(
        resp.header("Content-Disposition"),
        Some("attachment; filename=\"sample_100x100.png\"")
    );
}

#[test]
fn cvt_embeds_xmp_tiles_do_not() {
    let s = Ours::start(&[]);
    // metadata.tif has an XMP packet: region exports carry it (TIFF tag 700, PNG text chunk).
    let (status, _, xmp) = s.get("FIF=tiff/metadata.tif&OBJ=xmp");
    assert_eq!(status, 200);
    let xmp = String::from_utf8(xmp).unwrap();
    let xmp = xmp.trim_end();
    assert!(!xmp.is_empty());
    for f in ["tiff", "png", "jpeg", "webp"] {
        let (_, _, body) = s.image(&format!("FIF=tiff/metadata.tif&CVT={f}"));
        assert!(String::from_utf8_lossy(&body).contains(xmp), "{f}");
    }
    // Tiles never carry XMP.
    let (_, _, body) = s.image("FIF=tiff/metadata.tif&PTL=0,0");
    assert!(!String::from_utf8_lossy(&body).contains(xmp));
}

#[test]
fn cvt_matches_iipsrv_1_1() {
    let Some(reference) = Reference::start() else {
        return;
    };
    let s = Ours::start(&[]);
    // iipsrv 1.1 only writes JPEG; both outputs are decoded and compared.
    let cases = [
        "FIF=sample.tif&WID=300",
        "FIF=sample.tif",
        "FIF=sample.tif&RGN=0.25,0.25,0.5,0.5&WID=512",
        "FIF=sample.tif&RGN=0.1,0.2,0.3,0.4&WID=400",
        "FIF=sample.tif&HEI=123",
        "FIF=sample.tif&WID=300&ROT=90",
        "FIF=sample.tif&WID=300&ROT=180",
        "FIF=sample.tif&WID=300&CNT=2",
        "FIF=sample.tif&WID=300&GAM=2",
        "FIF=sample.tif&WID=300&INV=1",
        "FIF=sample.tif&WID=300&CMP=jet",
        "FIF=sample.tif&WID=300&CMP=hot",
        "FIF=sample.tif&WID=300&COL=gray",
        "FIF=tiff/rgb8_none.tif&WID=77",
        "FIF=tiff/grey8_deflate.tif&WID=60",
        "FIF=tiff/grey16.tif",
        "FIF=tiff/rgb8_lzw.tif&RGN=0.2,0.2,0.6,0.6&WID=40",
    ];
    let mut report = Vec::new();
    for q in cases {
        let ours = decode_jpeg(&s.image(&format!("{q}&CVT=jpeg")).2);
        let theirs = decode_jpeg(&reference.image(&format!("{q}&CVT=jpeg")));
        assert_eq!(
            (ours.width, ours.height),
            (theirs.width, theirs.height),
            "{q}"
        );
        let p = psnr(&ours, &theirs);
        report.push(format!("{q}: {p:.1} dB"));
        assert!(p >= 35.0, "{q}: PSNR {p:.1} dB\n{}", report.join("\n"));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn transforms_on_tiles_are_exact() {
    let s = Ours::start(&[]);
    let tile = |q: &str| decode_png(&s.image(&format!("FIF=tiff/grey8_deflate.tif&{q}")).2);
    let plain = tile("PTL=0,0");
    assert_eq!(plain.channels, 1);
    // INV: 1 − v/255, truncated: 255 − v, or one less where float rounding falls short.
    let inv = tile("INV=1&PTL=0,0");
    for (a, b) in plain.pixels.iter().zip(&inv.pixels) {
        let want = 255 - *a as i32;
        assert!(*b as i32 == want || *b as i32 == want - 1, "{a} → {b}");
    }
    // CNT=0.5 halves (truncating), CMP=red puts the value in R.
    let half = tile("CNT=0.5&PTL=0,0");
    for (a, b) in plain.pixels.iter().zip(&half.pixels) {
        assert!((*a as i32 / 2 - *b as i32).abs() <= 1, "{a} → {b}");
    }
    let red = tile("CMP=red&PTL=0,0");
    assert_eq!(red.channels, 3);
    for (a, p) in plain.pixels.iter().zip(red.pixels.chunks(3)) {
        assert!((*a as i32 - p[0] as i32).abs() <= 1 && p[1] == 0 && p[2] == 0);
    }
    // ROT=90 on a tile: transposed size; ROT=180 remaps the tile index.
    let r = tile("ROT=90&PTL=0,0");
    assert_eq!((r.width, r.height), (plain.height, plain.width));
    let rgb = |q: &str| decode_png(&s.image(&format!("FIF=tiff/rgb8_none.tif&{q}")).2);
    let grey = rgb("COL=grey&PTL=2,0");
    let colour = rgb("PTL=2,0");
    assert_eq!(grey.channels, 1);
    let p = &colour.pixels[..3];
    let y = (1254097u32 * p[0] as u32 + 2462056 * p[1] as u32 + 478151 * p[2] as u32) >> 22;
    assert_eq!(grey.pixels[0] as u32, y);
    // Hill-shading (upstream crashes): one channel, at most 127.
    let shd = rgb("SHD=45,30&PTL=2,0");
    assert_eq!(shd.channels, 1);
    assert!(shd.pixels.iter().all(|&v| v <= 127));
    let shd = rgb("SHD=45,30&WID=50&CVT=png");
    assert_eq!((shd.width, shd.channels), (50, 1));
    // A twist that swaps R and G.
    let swapped = rgb("CTW=[0,1,0;1,0,0;0,0,1]&PTL=2,0");
    for (a, b) in colour.pixels.chunks(3).zip(swapped.pixels.chunks(3)) {
        assert!((a[1] as i32 - b[0] as i32).abs() <= 1 && (a[0] as i32 - b[1] as i32).abs() <= 1);
    }
    // Convolution with the identity kernel changes nothing beyond float rounding.
    let id = rgb("CNV=[0,0,0,0,1,0,0,0,0]&PTL=2,0");
    for (a, b) in colour.pixels.iter().zip(&id.pixels) {
        assert!((*a as i32 - *b as i32).abs() <= 1);
    }
    // Named kernels and equalisation run.
    for q in [
        "CNV=sobel",
        "CNV=%5Bgaussian%5D",
        "CNT=eq",
        "CNT=st",
        "COL=binary",
        "GAM=log",
        "MINMAX=0:10,200",
    ] {
        let d = rgb(&format!("{q}&PTL=1,0"));
        assert!(d.width > 0, "{q}");
    }
    let bin = rgb("COL=binary&PTL=2,0");
    assert!(bin.pixels.iter().all(|&v| v == 0 || v == 255));
}

#[test]
fn processed_tiles_do_not_poison_the_cache() {
    let s = Ours::start(&[]);
    for f in ["grey8_deflate.tif", "grey8_jpeg.tif"] {
        let tile = |q: &str| decode_png(&s.image(&format!("FIF=tiff/{f}&{q}")).2);
        let bin = tile("COL=binary&PTL=1,0");
        let plain = tile("PTL=1,0");
        let again = tile("COL=binary&PTL=1,0");
        let is_binary = |d: &Decoded| d.pixels.iter().all(|&v| v == 0 || v == 255);
        assert!(is_binary(&bin) && is_binary(&again), "{f}");
        assert!(!is_binary(&plain), "{f}");
        // JPEG tiles: the bitonal tile is not the stored (passed-through) one.
        let jtl = |q: &str| s.image(&format!("FIF=tiff/{f}&{q}")).2;
        assert_ne!(jtl("COL=binary&JTL=1,0"), jtl("JTL=1,0"), "{f}");
    }
}

#[test]
fn bad_arguments_never_crash() {
    let s = Ours::start(&[]);
    for q in [
        "CNT=abc&WID=50&CVT=jpeg",
        "GAM=-1&WID=50&CVT=jpeg",
        "GAM=-3&WID=50&CVT=jpeg",
        "GAM=abc&WID=50&CVT=jpeg",
        "WID=0&CVT=jpeg",
        "RGN=2,2,1,1&WID=50&CVT=jpeg",
        "RGN=0.99,0.99,0.5,0.5&WID=50&CVT=jpeg",
        "RGN=-1,-1,0,0&WID=50&CVT=jpeg",
        "RGN=a,b,c,d&WID=50&CVT=jpeg",
        "RGN=0.1,0.1,0.000001,0.9&WID=50&CVT=jpeg",
        "CTW=[&WID=50&CVT=jpeg",
        "CTW=[;;]&WID=50&CVT=jpeg",
        "CTW=[1,2,3,4,5,6,7,8,9,10;x]&WID=50&CVT=jpeg",
        "CNV=[1,2]&WID=50&CVT=jpeg",
        "CNV=[nonsense]&WID=50&CVT=jpeg",
        "CNV=[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]&WID=50&CVT=jpeg",
        "SHD=1&WID=50&CVT=jpeg",
        "SHD=400,-400&WID=50&CVT=jpeg",
        "MINMAX=9:0,1&WID=50&CVT=jpeg",
        "MINMAX=-:5,5&WID=50&CVT=jpeg",
        "ROT=45&WID=50&CVT=jpeg",
        "ROT=1e300&WID=50&CVT=jpeg",
        "ROT=!-270&WID=50&CVT=jpeg",
        "QLT=-5&WID=50&CVT=webp",
        "QLT=999&WID=50&CVT=avif",
        "QLT=zstd:99&WID=50&CVT=tiff",
        "CNT=eq&COL=binary&CMP=cold&INV=1&WID=50&CVT=png",
    ] {
        let (status, _, body) = s.get(&format!("FIF=sample.tif&{q}"));
        assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
    }
    // CNT=abc is a contrast of 0: black.
    let (_, _, body) = s.get("FIF=sample.tif&CNT=abc&WID=50&CVT=png");
    assert!(decode_png(&body).pixels.iter().all(|&v| v == 0));
    // A region at the edge is one pixel of the level, scaled up.
    let (_, h, _) = s.get("FIF=sample.tif&RGN=1,1,1,1&WID=20&CVT=jpeg");
    assert_eq!(
        header(&h, "Content-Disposition"),
        Some("inline; filename=\"sample_20x20.jpg\"")
    );
    // Without MAX_CVT an absurd size is refused, not allocated.
    let unlimited = Ours::start(&[("MAX_CVT", "-1")]);
    let (status, _, body) = unlimited.get("FIF=sample.tif&WID=999999&CVT=jpeg");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = unlimited.get("FIF=sample.tif&WID=2000&CVT=jpeg");
    assert_eq!(status, 200);
    // CVT without an image is the IIP error.
    let (status, _, body) = s.get("CVT=jpeg");
    assert_eq!((status, body.as_slice()), (400, &b"Error/4:1 3 \r\n"[..]));
}

#[test]
fn upscaling_and_interpolation_settings() {
    let s = Ours::start(&[("ALLOW_UPSCALING", "0"), ("INTERPOLATION", "0")]);
    let (_, _, body) = s.image("FIF=sample.tif&WID=2000&CVT=png");
    let d = decode_png(&body);
    assert_eq!((d.width, d.height), (1000, 1000));
    // The cap is the level, not the region (upstream quirk).
    let (_, _, body) = s.image("FIF=sample.tif&RGN=0,0,0.5,0.5&WID=800&CVT=png");
    assert_eq!(decode_png(&body).width, 800);
    // Nearest neighbour 2× upscale: every pixel doubled.
    let (_, _, small) = s.image("FIF=tiff/rgb8_none.tif&RGN=0,0,0.1,0.1&WID=10&CVT=png");
    let (_, _, big) = s.image("FIF=tiff/rgb8_none.tif&RGN=0,0,0.1,0.1&WID=20&CVT=png");
    let (a, b) = (decode_png(&small), decode_png(&big));
    assert_eq!((a.width, b.width), (10, 20));
    for x in 0..20usize {
        assert_eq!(
            b.pixels[x * 3..x * 3 + 3],
            a.pixels[(x / 2) * 3..(x / 2) * 3 + 3]
        );
    }
}

#[test]
fn watermark_is_applied_and_not_cached() {
    // A 8×8 opaque mid-grey watermark written as a stripped TIFF.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wm.tif");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(file).unwrap();
        enc.write_image::<tiff::encoder::colortype::RGB8>(8, 8, &[100u8; 8 * 8 * 3])
            .unwrap();
    }
    let wm = path.to_str().unwrap();
    let s = Ours::start(&[("WATERMARK", wm), ("WATERMARK_OPACITY", "0.5")]);
    let plain = Ours::start(&[]);
    let q = "FIF=tiff/grey8_deflate.tif&PTL=0,0";
    let (a, b) = (decode_png(&plain.image(q).2), decode_png(&s.image(q).2));
    // Exactly one 8×8 block brightened by 50 (saturating), somewhere in the tile.
    let changed: Vec<usize> = (0..a.pixels.len())
        .filter(|&i| a.pixels[i] != b.pixels[i])
        .collect();
    assert!(
        !changed.is_empty() && changed.len() <= 64,
        "{}",
        changed.len()
    );
    for &i in &changed {
        assert_eq!(b.pixels[i], a.pixels[i].saturating_add(50));
    }
    let q = "FIF=sample.tif&WID=200&CVT=png";
    let (a, b) = (decode_png(&plain.image(q).2), decode_png(&s.image(q).2));
    assert_ne!(a.pixels, b.pixels);
}

#[test]
fn spectra_and_profiles() {
    let s = Ours::start(&[]);
    // A stack: one point per page.
    let (status, h, body) = s.get("FIF=tiff/stack_subifd.tif&SPECTRA=1,0,10,10");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Content-Type"), Some("application/xml"));
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<spectra>\n\t<point>\n\t\t<wavelength>"
    ));
    assert!(text.ends_with("</reflectance>\n\t</point>\n</spectra>"));
    assert_eq!(text.matches("<point>").count(), 3);
    // Profiles: the same pixels as a PNG tile, all channels.
    let tile = decode_png(&s.image("FIF=tiff/rgb8_none.tif&PTL=2,0").2);
    let (status, h, body) = s.get("FIF=tiff/rgb8_none.tif&PFL=2:3,5-6,5");
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Content-Type"), Some("application/json"));
    let row = 5 * tile.width as usize * 3;
    let want: Vec<String> = tile.pixels[row + 9..row + 18]
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{{\n\t\"profile\": [{}]\n}}", want.join(","))
    );
    // Vertical and single point.
    let (_, _, body) = s.get("FIF=tiff/rgb8_none.tif&PFL=2:3,5-3,7");
    assert_eq!(String::from_utf8(body).unwrap().matches(',').count(), 5);
    let (_, _, body) = s.get("FIF=tiff/rgb8_none.tif&PFL=2:3,5");
    let p = &tile.pixels[row + 9..row + 12];
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!("{{\n\t\"profile\": [{},{},{}]\n}}", p[0], p[1], p[2])
    );
    // A stack: an object with one array per page.
    let (_, _, body) = s.get("FIF=tiff/stack_subifd.tif&PFL=0:1,1-3,1");
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("{\n\t\"profile\": {\n\t\t\""), "{text}");
    assert!(text.ends_with("]\n\t}\n}"), "{text}");
    assert_eq!(text.matches(": [").count(), 3, "{text}");
    // Float data: 9 decimals.
    let (_, _, body) = s.get("FIF=tiff/grey32f_none.tif&PFL=0:0,0");
    let text = String::from_utf8(body).unwrap();
    let value = text.split('[').nth(1).unwrap().split(']').next().unwrap();
    assert_eq!(value.split('.').nth(1).map(str::len), Some(9), "{text}");

    // Bad arguments: 400 (SPECTRA point outside the tile; PFL and resolutions: the banner).
    for (q, status) in [
        ("SPECTRA=0,0,9999,0", 400),
        ("SPECTRA=0,0,-1,0", 400),
        ("SPECTRA=9,0,0,0", 400),
        ("SPECTRA=0,99,0,0", 404),
        ("SPECTRA=abc", 200),
        ("PFL=9:0,0", 400),
        ("PFL=0:-1,0", 400),
        ("PFL=0:0,0-99999,0", 400),
        ("PFL=junk", 400),
        ("PFL=2:100,0", 400),
    ] {
        let (got, _, body) = s.get(&format!("FIF=tiff/rgb8_none.tif&{q}"));
        assert_eq!(got, status, "{q}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _, body) = s.get("PFL=0:0,0");
    assert_eq!((status, body.as_slice()), (400, &b"Error/4:1 3 \r\n"[..]));
}

#[test]
fn plain_cvt_reads_the_response_whole() {
    // The body is complete (upstream loses the last byte of WebP/TIFF output).
    let s = Ours::start(&[]);
    for f in ["webp", "tiff"] {
        let (_, _, body) = s.image(&format!("FIF=sample.tif&WID=512&CVT={f}"));
        if f == "webp" {
            let riff = u32::from_le_bytes(body[4..8].try_into().unwrap()) as usize;
            assert_eq!(riff + 8, body.len());
        } else {
            let d = decode_tiff(&body);
            assert_eq!(d.width, 512);
        }
    }
}
