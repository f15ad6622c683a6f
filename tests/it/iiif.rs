//! IIIF Image API 2 and 3 against the built binary: URLs, info.json, the tile path, errors,
//! pages, the comparison with Debian's iipsrv 1.1, and the official validator behind nginx.
//! Helpers here are shared with `viewers.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::fcgi::{Client, Reply};
use crate::support::{Nginx, Process, TestServer, free_port, require};

/// The identifier the IIIF validator asks for (its test image is fixtures/sample.tif).
pub const VALIDATOR_ID: &str = "67352ccc-d1b0-11e1-89ae-279075081939";

/// A fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A temporary FILESYSTEM_PREFIX with the images the tests use, under the names they use.
pub struct Images {
    pub dir: tempfile::TempDir,
}

impl Images {
    pub fn new() -> Images {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let copy = |from: &Path, to: &str| {
            let to = d.join(to);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(from, &to).unwrap();
        };
        let sample = fixture("sample.tif");
        copy(&sample, "sample.tif");
        copy(&sample, VALIDATOR_ID);
        copy(&sample, "a b.tif");
        copy(&sample, "a+b.tif");
        copy(&sample, "sub/dir/x.tif");
        for f in [
            "rgb8_jpeg.tif",
            "rgb8_none.tif",
            "rgb8_single.tif",
            "rgb8_nonsquare.tif",
            "grey8_jpeg.tif",
            "stack_subifd.tif",
        ] {
            copy(&fixture(&format!("tiff/{f}")), f);
        }
        Images { dir }
    }

    /// The FILESYSTEM_PREFIX value (with a trailing slash).
    pub fn prefix(&self) -> String {
        format!("{}/", self.dir.path().display())
    }
}

/// (status, headers, body) of a GET with extra request headers; redirects are not followed.
pub fn fetch(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    crate::support::read_response(req.call(), url)
}

/// The first value of a response header.
pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Width, height and components of a JPEG (from its SOF marker).
pub fn jpeg_info(b: &[u8]) -> Option<(u32, u32, u8)> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let m = b[i + 1];
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if matches!(m, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]) as u32;
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]) as u32;
            return Some((w, h, b[i + 9]));
        }
        i += 2 + len;
    }
    None
}

/// Width and height of a JPEG, PNG, WebP or TIFF.
pub fn image_size(b: &[u8]) -> Option<(u32, u32)> {
    if let Some((w, h, _)) = jpeg_info(b) {
        return Some((w, h));
    }
    if b.starts_with(b"\x89PNG") && b.len() > 24 {
        let w = u32::from_be_bytes(b[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(b[20..24].try_into().unwrap());
        return Some((w, h));
    }
    if b.starts_with(b"RIFF") && b.len() > 12 && &b[8..12] == b"WEBP" {
        let (mut w, mut h) = (0i32, 0i32);
        let ok = unsafe { libwebp_sys::WebPGetInfo(b.as_ptr(), b.len(), &mut w, &mut h) };
        return (ok != 0).then_some((w as u32, h as u32));
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        let mut d = tiff::decoder::Decoder::new(std::io::Cursor::new(b)).ok()?;
        return d.dimensions().ok();
    }
    None
}

/// A server for IIIF over HTTP with `URI_MAP=iiif=>IIIF` and the images.
pub fn iiif_server(images: &Images, env: &[(&str, &str)]) -> (TestServer, String) {
    let prefix = images.prefix();
    let mut all: Vec<(&str, &str)> =
        vec![("URI_MAP", "iiif=>IIIF"), ("FILESYSTEM_PREFIX", &prefix)];
    all.extend_from_slice(env);
    let s = TestServer::http(&all);
    let base = format!("http://{}", s.tcp_addr());
    (s, base)
}

/// A simple JSON number list after `"key" : [` (no JSON library in the dev-dependencies).
pub fn json_numbers_after(body: &str, key: &str) -> Vec<u32> {
    let start = body.find(key).expect(key) + key.len();
    let open = body[start..].find('[').unwrap() + start + 1;
    let close = body[open..].find(']').unwrap() + open;
    body[open..close]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect()
}

#[test]
fn info_json_v3_v2_and_negotiation() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("CORS", "*")]);
    let host = base.trim_start_matches("http://").to_string();

    let (status, h, body) = fetch(&format!("{base}/iiif/sample.tif/info.json"), &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&h, "Content-Type"),
        Some("application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"")
    );
    assert_eq!(header(&h, "Cache-Control"), Some("max-age=86400"));
    assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    assert!(header(&h, "Last-Modified").is_some());
    assert!(body.starts_with("{\n  \"@context\" : \"http://iiif.io/api/image/3/context.json\",\n"));
    assert!(body.contains(&format!("  \"id\" : \"http://{host}/iiif/sample.tif\",\n")));
    assert!(body.contains("  \"width\" : 1000,\n  \"height\" : 1000,\n"));
    assert!(body.contains(
        "  \"sizes\" : [\n     { \"width\" : 250, \"height\" : 250 },\n     { \"width\" : 500, \"height\" : 500 }\n  ],\n"
    ));
    assert!(
        body.contains(
            "     { \"width\" : 256, \"height\" : 256, \"scaleFactors\" : [ 1, 2, 4 ] }\n"
        )
    );
    assert!(body.ends_with('}'));

    // Accept negotiation to version 2: the v2 layout, Cache-Control: private.
    let accept = "application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\"";
    let (status, h, body) = fetch(
        &format!("{base}/iiif/sample.tif/info.json"),
        &[("Accept", accept)],
    );
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Cache-Control"), Some("private"));
    assert_eq!(
        header(&h, "Content-Type"),
        Some("application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\"")
    );
    assert!(body.contains(&format!("  \"@id\" : \"http://{host}/iiif/sample.tif\",\n")));
    assert!(body.contains("\"http://iiif.io/api/image/2/level2.json\""));
    // Image responses are private after negotiation too.
    let (status, h, _) = fetch(
        &format!("{base}/iiif/sample.tif/0,0,256,256/256,/0/default.jpg"),
        &[("Accept", accept)],
    );
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Cache-Control"), Some("private"));

    // X-IIIF-ID is the id as given.
    let (_, _, body) = fetch(
        &format!("{base}/iiif/sample.tif/info.json"),
        &[("X-IIIF-ID", "https://images.example.org/abc")],
    );
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("\"id\" : \"https://images.example.org/abc\",")
    );

    // Identifiers with encoded slashes, spaces and `+` keep their encoding in the id (so the
    // id works as a base URI), and a query string is not part of it.
    for (path, file) in [
        ("sub%2Fdir%2Fx.tif", "sub/dir/x.tif"),
        ("a%20b.tif", "a b.tif"),
        ("a+b.tif", "a b.tif"),
        ("a%2Bb.tif", "a+b.tif"),
    ] {
        let (status, _, body) = fetch(&format!("{base}/iiif/{path}/info.json?x=1"), &[]);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "{path} ({file}): {body}");
        let id = format!("http://{host}/iiif/{path}");
        assert!(body.contains(&format!("\"id\" : \"{id}\",")), "{body}");
        // The id is a working base URI.
        let (status, _, tile) = fetch(&format!("{id}/0,0,256,256/256,/0/default.jpg"), &[]);
        assert_eq!(status, 200, "{id}");
        assert_eq!(image_size(&tile), Some((256, 256)));
    }
}

#[test]
fn info_json_options() {
    let images = Images::new();
    let (_s, base) = iiif_server(
        &images,
        &[
            ("IIIF_VERSION", "2"),
            ("BASE_URL", "https://example.org/iiif/"),
            ("COPYRIGHT", "CC \"BY\" 4.0"),
            ("IIIF_EXTRA_INFO", "\"preferredFormats\": [\"webp\"]"),
            ("IIIF_EXTENSIONS", "1"),
            ("MAX_CVT", "3000"),
        ],
    );
    let (status, h, body) = fetch(&format!("{base}/iiif/sample.tif/info.json"), &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Cache-Control"), Some("max-age=86400"));
    assert!(body.contains("  \"@id\" : \"https://example.org/iiif/sample.tif\",\n"));
    assert!(body.contains(
        "       \"qualities\" : [\"native\",\"color\",\"gray\",\"bitonal\",\"negative\",\"stretch\",\"equalization\",\"log\"],\n"
    ));
    assert!(body.contains("       \"maxWidth\" : 3000,\n       \"maxHeight\" : 3000\n"));
    // The sample image has a resolution: the service block follows the extra info.
    assert!(body.contains(
        "  ],\n  \"license\": \"CC \\\"BY\\\" 4.0\",\n  \"preferredFormats\": [\"webp\"],\n  \"service\": [\n"
    ));
    assert!(body.ends_with("\n    }\n  ]\n\n}"));

    // HTTPS and the host make the id when BASE_URL is not set (FastCGI parameters).
    let s = TestServer::tcp(&[
        ("URI_MAP", "iiif=>IIIF"),
        ("FILESYSTEM_PREFIX", &images.prefix()),
    ]);
    let mut c = Client::connect_tcp(s.tcp_addr()).unwrap();
    let r = c
        .request(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/iiif/sample.tif/info.json"),
                (b"HTTP_HOST", b"images.example.org"),
                (b"HTTPS", b"on"),
            ],
            b"",
            false,
        )
        .unwrap();
    assert!(
        String::from_utf8_lossy(r.body())
            .contains("\"id\" : \"https://images.example.org/iiif/sample.tif\",")
    );
    // Without REQUEST_URI (and BASE_URL) there is no id: 400.
    let mut c = Client::connect_tcp(s.tcp_addr()).unwrap();
    let r = c.get("IIIF=sample.tif/info.json", false).unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.body(),
        b"IIIF: REQUEST_URI was not set in FastCGI request, so the ID parameter cannot be set"
    );
}

#[test]
fn base_uri_redirects() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("CORS", "*")]);
    let host = base.trim_start_matches("http://").to_string();
    for (path, location) in [
        (
            "/iiif/sample.tif",
            format!("http://{host}/iiif/sample.tif/info.json"),
        ),
        (
            "/iiif/nothing-here",
            format!("http://{host}/iiif/nothing-here/info.json"),
        ),
        // Identifiers with slashes, encoded or not (upstream: 400 Not enough parameters).
        (
            "/iiif/sub%2Fdir%2Fx.tif",
            format!("http://{host}/iiif/sub%2Fdir%2Fx.tif/info.json"),
        ),
        (
            "/iiif/sub/dir/x.tif",
            format!("http://{host}/iiif/sub/dir/x.tif/info.json"),
        ),
        (
            "/iiif/sub/dir/x.tif?a=b",
            format!("http://{host}/iiif/sub/dir/x.tif/info.json"),
        ),
    ] {
        let (status, h, body) = fetch(&format!("{base}{path}"), &[]);
        assert_eq!(status, 303, "{path}");
        assert_eq!(header(&h, "Location"), Some(location.as_str()), "{path}");
        assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
        assert!(body.is_empty());
    }
    // A missing identifier with slashes is still the upstream 400.
    let (status, _, body) = fetch(&format!("{base}/iiif/no/such.tif"), &[]);
    assert_eq!(
        (status, body.as_slice()),
        (400, &b"IIIF: Not enough parameters"[..])
    );

    let (_s2, base2) = iiif_server(&images, &[("BASE_URL", "https://example.org/iiif/")]);
    let (status, h, _) = fetch(&format!("{base2}/iiif/sub%2Fdir%2Fx.tif"), &[]);
    assert_eq!(status, 303);
    assert_eq!(
        header(&h, "Location"),
        Some("https://example.org/iiif/sub%2Fdir%2Fx.tif/info.json")
    );
}

#[test]
fn tile_requests_use_the_tile_path() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let url = |p: &str| format!("{base}/iiif/sample.tif/{p}");

    // A stored JPEG tile passes through unchanged: the same bytes as JTL.
    let (status, h, tile) = fetch(&url("0,0,256,256/256,/0/default.jpg"), &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Content-Type"), Some("image/jpeg"));
    assert_eq!(header(&h, "Content-Disposition"), None);
    let (_, _, jtl) = fetch(&format!("{base}/?FIF=sample.tif&JTL=2,0"), &[]);
    assert_eq!(tile, jtl);
    // The CGI header block as a web server gets it (FastCGI): Content-Length, no disposition.
    let s = TestServer::tcp(&[
        ("URI_MAP", "iiif=>IIIF"),
        ("FILESYSTEM_PREFIX", &images.prefix()),
    ]);
    let r = Reference::request(
        s.tcp_addr().port(),
        &[
            ("REQUEST_METHOD", "GET"),
            (
                "REQUEST_URI",
                "/iiif/sample.tif/0,0,256,256/256,/0/default.jpg",
            ),
        ],
    );
    let head = String::from_utf8_lossy(&r.stdout[..r.stdout.len() - r.body().len()]).into_owned();
    assert!(
        head.starts_with(
            "Server: iipsrv/1.3\r\nX-Powered-By: IIPImage\r\nContent-Type: image/jpeg\r\nLast-Modified: "
        ),
        "{head}"
    );
    // The Link line (canonical and profile) comes last, after iipsrv's lines.
    assert!(
        head.ends_with(&format!(
            "\r\nCache-Control: max-age=86400\r\nContent-Length: {}\r\nLink: </iiif/sample.tif/0,0,256,256/max/0/default.jpg>;rel=\"canonical\", <http://iiif.io/api/image/3/level2.json>;rel=\"profile\"\r\n\r\n",
            tile.len()
        )),
        "{head}"
    );
    assert_eq!(r.body(), tile.as_slice());

    for (params, size) in [
        ("0,0,256,256/256,256/0/default.jpg", (256, 256)),
        ("768,768,232,232/232,232/0/default.jpg", (232, 232)),
        ("768,768,232,232/232,/0/default.jpg", (232, 232)),
        ("512,0,488,512/244,256/0/default.jpg", (244, 256)),
        ("full/250,/0/default.jpg", (250, 250)),
        ("full/250,250/0/default.jpg", (250, 250)),
        ("0,0,1000,1000/250,/0/default.jpg", (250, 250)),
        ("768,0,232,256/232,/90/default.jpg", (256, 232)),
        ("768,0,232,256/232,/!270/default.png", (256, 232)),
        ("768,0,232,256/232,/180/gray.webp", (232, 256)),
        ("0,0,256,256/256,/0/default.tif", (256, 256)),
        ("0,0,256,256/256,/0/color.png", (256, 256)),
    ] {
        let (status, h, body) = fetch(&url(params), &[]);
        assert_eq!(status, 200, "{params}: {}", String::from_utf8_lossy(&body));
        assert_eq!(header(&h, "Content-Disposition"), None, "{params}");
        assert_eq!(image_size(&body), Some(size), "{params}");
    }
    // Grey quality gives a one-component JPEG.
    let (_, _, body) = fetch(&url("0,0,256,256/256,/0/gray.jpg"), &[]);
    assert_eq!(jpeg_info(&body), Some((256, 256, 1)));
    let (_, h, _) = fetch(&url("0,0,256,256/256,/0/default.avif"), &[]);
    assert_eq!(header(&h, "Content-Type"), Some("image/avif"));

    // A 180° rotation of a tile is that tile rotated (JTL's ROT=180 remaps the index):
    // the top-left tile rotated has the top-left pixel of the plain tile at its bottom right.
    let (_, _, plain) = fetch(&url("0,0,256,256/256,/0/default.png"), &[]);
    let (_, _, turned) = fetch(&url("0,0,256,256/256,/180/default.png"), &[]);
    let (a, b) = (decode_png(&plain), decode_png(&turned));
    assert_eq!(a.len(), b.len());
    let px = |v: &[u8], x: usize, y: usize| v[(y * 256 + x) * 3..(y * 256 + x) * 3 + 3].to_vec();
    assert_eq!(px(&a, 0, 0), px(&b, 255, 255));
    assert_eq!(px(&a, 10, 20), px(&b, 245, 235));
}

/// The RGB pixels of a PNG written by this server (8-bit RGB).
pub fn decode_png(bytes: &[u8]) -> Vec<u8> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    buf
}

#[test]
fn errors_and_unsupported_features() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("CORS", "*")]);
    let url = |p: &str| format!("{base}/iiif/sample.tif/{p}");
    for (params, status, message) in [
        (
            "0,0,0,10/max/0/default.jpg",
            400,
            "IIIF: incorrect region format: 0,0,0,10",
        ),
        (
            "full/abc/0/default.jpg",
            400,
            "invalid size: no comma found",
        ),
        ("full/x,/0/default.jpg", 400, "invalid width"),
        (
            "full/0,/0/default.jpg",
            400,
            "IIIF: invalid size: requested width or height < 0",
        ),
        (
            "full/2000,/0/default.jpg",
            400,
            "IIIF: upscaling should be prefixed with ^",
        ),
        (
            "full/full/0/default.jpg",
            400,
            "IIIF: invalid size: 'full' is not a size in IIIF 3, use 'max'",
        ),
        (
            "full/max/361/default.jpg",
            400,
            "IIIF: invalid rotation: angles are from 0 to 360 degrees",
        ),
        ("full/max/x/default.jpg", 400, "IIIF: invalid rotation"),
        (
            "full/max/0/default.bmp",
            400,
            "IIIF :: unsupported output format",
        ),
        (
            "full/max/0/sepia.jpg",
            400,
            "unsupported quality parameter: sepia",
        ),
        ("full/max//default.jpg", 400, "IIIF: invalid rotation"),
        (
            "info.xml",
            400,
            "IIIF: Query has too few parameters. IIIF syntax is {identifier}/{region}/{size}/{rotation}/{quality}{.format}",
        ),
    ] {
        let (st, h, body) = fetch(&url(params), &[]);
        assert_eq!(st, status, "{params}");
        assert_eq!(String::from_utf8_lossy(&body), message, "{params}");
        assert_eq!(
            header(&h, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            header(&h, "Access-Control-Allow-Origin"),
            Some("*"),
            "{params}"
        );
    }
    // A missing image is a 404 before any parameter is looked at.
    let (st, h, body) = fetch(
        &format!("{base}/iiif/missing.tif/full/bad/0/default.jpg"),
        &[],
    );
    assert_eq!(st, 404);
    assert_eq!(
        body,
        b"missing.tif is neither a file nor part of an image sequence"
    );
    assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    let (st, _, _) = fetch(&format!("{base}/iiif/missing.tif/info.json"), &[]);
    assert_eq!(st, 404);
}

/// Whether this build answers region exports (render::region_with) or 501.
pub fn region_export_available(base: &str) -> bool {
    let (status, _, _) = fetch(
        &format!("{base}/iiif/sample.tif/full/max/0/default.jpg"),
        &[],
    );
    assert!(status == 200 || status == 501, "full/max gave {status}");
    status == 200
}

#[test]
fn region_exports() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let url = |p: &str| format!("{base}/iiif/sample.tif/{p}");
    if !region_export_available(&base) {
        let (st, h, body) = fetch(&url("full/max/0/default.jpg"), &[]);
        assert_eq!(st, 501);
        assert_eq!(
            header(&h, "Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(String::from_utf8_lossy(&body).contains("Region export"));
        eprintln!("region export is not available in this build: exports answer 501");
        return;
    }
    for (params, size, name) in [
        (
            "full/max/0/default.jpg",
            (1000, 1000),
            "sample_1000x1000.jpg",
        ),
        (
            "900,700,200,200/max/0/default.jpg",
            (100, 200),
            "sample_100x200.jpg",
        ),
        (
            "full/!100,100/90/default.jpg",
            (100, 100),
            "sample_100x100.jpg",
        ),
        (
            "square/256,/0/default.png",
            (256, 256),
            "sample_256x256.png",
        ),
        (
            "pct:10,10,50,50/pct:50/0/default.jpg",
            (250, 250),
            "sample_250x250.jpg",
        ),
    ] {
        let (st, h, body) = fetch(&url(params), &[]);
        assert_eq!(st, 200, "{params}");
        assert_eq!(image_size(&body), Some(size), "{params}");
        assert_eq!(
            header(&h, "Content-Disposition"),
            Some(format!("inline; filename=\"{name}\"").as_str())
        );
    }
}

/// Found by fuzzing: sizes fitted to MAX_CVT had a zero side (served as 1, named 0) or went
/// past MAX_CVT (re-fitted by the render, named with the planned size). The file name now
/// always gives the size served.
#[test]
fn sizes_fitted_to_max_cvt_are_served_as_named() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("MAX_CVT", "384")]);
    let url = |p: &str| format!("{base}/iiif/sample.tif/{p}");
    if !region_export_available(&base) {
        return;
    }
    for (params, size) in [
        ("0,0,1000,1/max/0/default.jpg", (384, 1)),
        ("0,0,1,1000/max/0/default.png", (1, 384)),
        ("0,0,1,150/^99999999999999999999,/0/default.jpg", (3, 384)),
    ] {
        let (st, h, body) = fetch(&url(params), &[]);
        assert_eq!(st, 200, "{params}");
        assert_eq!(image_size(&body), Some(size), "{params}");
        let ext = &params[params.len() - 3..];
        let name = format!("sample_{}x{}.{ext}", size.0, size.1);
        assert_eq!(
            header(&h, "Content-Disposition"),
            Some(format!("inline; filename=\"{name}\"").as_str()),
            "{params}"
        );
    }
}

#[test]
fn pages_by_delimiter() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("IIIF_DELIMITER", ";")]);
    // Three 64×48 pages, each a SubIFD pyramid of 64×48 and 32×24 with 32×32 tiles.
    let mut pages = Vec::new();
    for page in 0..3 {
        let (st, _, tile) = fetch(
            &format!("{base}/iiif/stack_subifd.tif;{page}/full/32,/0/default.png"),
            &[],
        );
        assert_eq!(st, 200, "page {page}");
        assert_eq!(image_size(&tile), Some((32, 24)));
        let (_, _, ptl) = fetch(
            &format!("{base}/?FIF=stack_subifd.tif&SDS={page},90&PTL=0,0"),
            &[],
        );
        assert_eq!(tile, ptl, "page {page}");
        pages.push(tile);
    }
    assert_ne!(pages[0], pages[1]);
    let (st, _, _) = fetch(&format!("{base}/iiif/stack_subifd.tif;3/info.json"), &[]);
    assert_eq!(st, 404);
    let (st, _, body) = fetch(&format!("{base}/iiif/stack_subifd.tif;1/info.json"), &[]);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("/iiif/stack_subifd.tif;1\","));
}

/// Debian's iipsrv 1.1 under spawn-fcgi (no fork), killed on drop.
pub struct Reference {
    _child: Process,
    pub port: u16,
}

impl Reference {
    pub const BINARY: &str = "/usr/lib/iipimage-server/iipsrv.fcgi";

    pub fn start(env: &[(&str, &str)]) -> Reference {
        let port = free_port();
        let mut c = Command::new("spawn-fcgi");
        c.args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            "--",
            Self::BINARY,
        ])
        .env_clear()
        .env("LOGFILE", "/dev/null")
        .env("VERBOSITY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let child = Process::spawn(&mut c, 9).expect("spawn-fcgi");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "iipsrv 1.1 did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Reference {
            _child: child,
            port,
        }
    }

    /// A FastCGI request with these parameters.
    pub fn request(port: u16, params: &[(&str, &str)]) -> Reply {
        let mut c = Client::connect_tcp(("127.0.0.1", port)).unwrap();
        c.set_timeout(Some(Duration::from_secs(20))).unwrap();
        let p: Vec<(&[u8], &[u8])> = params
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        c.request(&p, b"", false).unwrap()
    }
}

/// Whether Debian's iipsrv can be used for comparisons.
pub fn reference_available() -> bool {
    require("spawn-fcgi", "spawn-fcgi") && {
        assert!(
            Path::new(Reference::BINARY).exists(),
            "iipsrv 1.1 is needed: apt-get install iipimage-server (or run .ci/run)"
        );
        true
    }
}

#[test]
fn info_json_v2_agrees_with_iipsrv_1_1() {
    if !reference_available() {
        return;
    }
    let images = Images::new();
    let prefix = images.prefix();
    let env = [
        ("FILESYSTEM_PREFIX", prefix.as_str()),
        ("IIIF_VERSION", "2"),
    ];
    let reference = Reference::start(&env);
    let ours = TestServer::tcp(&env);
    for file in [
        "sample.tif",
        "rgb8_jpeg.tif",
        "grey8_jpeg.tif",
        "rgb8_single.tif",
    ] {
        let query = format!("IIIF={file}/info.json");
        let uri = format!("/fcgi-bin/iipsrv.fcgi?{query}");
        let params = [
            ("REQUEST_METHOD", "GET"),
            ("QUERY_STRING", query.as_str()),
            ("REQUEST_URI", uri.as_str()),
            ("HTTP_HOST", "localhost"),
        ];
        let theirs = Reference::request(reference.port, &params);
        let mine = Reference::request(ours.tcp_addr().port(), &params);
        let (t, m) = (
            String::from_utf8_lossy(theirs.body()).into_owned(),
            String::from_utf8_lossy(mine.body()).into_owned(),
        );
        // The lines iipsrv 1.1 and 1.3 have in common (docs/behaviour/protocols-iiif.md §3.5: 1.1 differs
        // in the order of @id, the formats, qualities and supports lists, the profile level
        // and the optional blocks).
        let common = |body: &str| -> Vec<String> {
            const KEYS: [&str; 10] = [
                "\"@context\" : ",
                "\"@id\" : ",
                "\"protocol\" : ",
                "\"width\" : ",
                "\"height\" : ",
                "\"sizes\" : [",
                "\"tiles\" : [",
                "{ \"width\" : ",
                "\"maxWidth\" : ",
                "\"maxHeight\" : ",
            ];
            body.lines()
                .filter(|l| KEYS.iter().any(|k| l.trim_start().starts_with(k)))
                .map(|l| l.trim_end_matches(',').to_string())
                .collect()
        };
        let (ct, cm) = (common(&t), common(&m));
        let mut sorted_t = ct.clone();
        let mut sorted_m = cm.clone();
        sorted_t.sort();
        sorted_m.sort();
        assert_eq!(sorted_m, sorted_t, "{file}\n--- 1.1:\n{t}\n--- ours:\n{m}");
        assert!(ct.len() >= 10, "{file}: too few lines compared:\n{ct:?}");
    }
}

/// Where the official validator's command is: `IIIF_VALIDATE`, `PATH`, or the virtualenv
/// `.ci/run` makes (`target/iiif-venv`).
fn validator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("IIIF_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/iiif-venv/bin/iiif-validate.py");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("iiif-validate.py"))
            .find(|f| f.exists())
    })
}

/// The validator's verdict per test name: every test up to `--level 3` (the optional
/// features included).
fn run_validator(cmd: &Path, port: u16, version: &str) -> Vec<(String, bool, String)> {
    let out = Command::new(cmd)
        .args([
            "-s",
            &format!("127.0.0.1:{port}"),
            "-p",
            "iiif",
            "-i",
            VALIDATOR_ID,
            "--version",
            version,
            "--level",
            "3",
        ])
        .output()
        .expect("run iiif-validate.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "[n] test <name> PASS|FAIL", followed for failures by indented detail lines.
    let mut results: Vec<(String, bool, String)> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 4 && words[0].starts_with('[') && words[1] == "test" {
            results.push((words[2].to_string(), words[3] == "PASS", String::new()));
        } else if let Some(last) = results.last_mut() {
            if !last.1 {
                last.2.push_str(line);
                last.2.push('\n');
            }
        }
    }
    assert!(!results.is_empty(), "no validator results:\n{text}");
    results
}

/// Validator tests that can pass without region export: info.json, headers, redirects and
/// the error statuses.
const PASS_WITHOUT_REGION_EXPORT: &[&str] = &[
    "info_json",
    "cors",
    "jsonld",
    "baseurl_redirect",
    "id_error_escapedslash",
    "id_error_unescaped",
    "id_error_random",
    "region_error_random",
    "size_error_random",
    "rot_error_random",
    "quality_error_random",
    "format_error_random",
    "size_noup",
    "size_nofull",
];

/// The validator's own bug: iiif-validator 1.0.5's `format_webp`, `format_jp2` and
/// `format_pdf` call Python 2's `urllib.urlopen` and fail on Python 3 whatever the server does.
/// `.ci/run` ports them (`.ci/patch-iiif-validator.py`); an unported validator (found on
/// `PATH` or through `IIIF_VALIDATE`) fails them with this text, which is excused (the formats
/// are checked by `iiif_extensions.rs` anyway). With the ported validator they must pass.
const PYTHON2_FAILURE: &str = "has no attribute 'urlopen'";

#[test]
fn official_iiif_validator_behind_nginx() {
    if !require("nginx", "nginx-light") {
        return;
    }
    let Some(cmd) = validator() else {
        panic!(
            "iiif-validate.py is needed: python3 -m venv target/iiif-venv && \
             target/iiif-venv/bin/pip install iiif-validator==1.0.5 (or run .ci/run), \
             or set IIIF_VALIDATE"
        );
    };
    let images = Images::new();
    let prefix = images.prefix();
    // Debian's fastcgi_params sets HTTP_HOST to $host, which drops the port; the id must be
    // the URL the validator used, port included.
    let location = "    location /iiif/ {\n      fastcgi_pass {UPSTREAM};\n      fastcgi_keep_conn on;\n      fastcgi_param QUERY_STRING $query_string;\n      fastcgi_param REQUEST_METHOD $request_method;\n      fastcgi_param REQUEST_URI $request_uri;\n      fastcgi_param HTTP_HOST $http_host;\n    }\n";
    let mut report = String::new();
    let mut unexpected = Vec::new();
    for version in ["2.0", "3.0"] {
        // The validator does not negotiate: the server's IIIF_VERSION is the version tested.
        let s = TestServer::tcp(&[
            ("URI_MAP", "iiif=>IIIF"),
            ("CORS", "*"),
            ("FILESYSTEM_PREFIX", &prefix),
            ("IIIF_VERSION", &version[..1]),
        ]);
        let nginx = Nginx::start(&s.addr, location);
        let regions = region_export_available(&nginx.url(""));
        // Level 3: level 2 and every optional feature (info.json claims them all).
        let results = run_validator(&cmd, nginx.port, version);
        // Level 3 has 45 tests for 3.0 and 42 for 2.0 (1.0.5); fewer means some did not run.
        let expected = if version == "3.0" { 45 } else { 42 };
        assert_eq!(results.len(), expected, "{version}: {results:?}");
        let passed = results.iter().filter(|r| r.1).count();
        report.push_str(&format!(
            "IIIF {version}: {passed}/{} passed\n",
            results.len()
        ));
        for (name, ok, detail) in &results {
            if *ok {
                continue;
            }
            let python2 = detail.contains(PYTHON2_FAILURE);
            let excused =
                python2 || (!regions && !PASS_WITHOUT_REGION_EXPORT.contains(&name.as_str()));
            report.push_str(&format!(
                "  FAIL {name}{}\n",
                if python2 {
                    " (validator bug on Python 3: run .ci/patch-iiif-validator.py)"
                } else if excused {
                    " (needs region export)"
                } else {
                    ""
                }
            ));
            if !excused {
                unexpected.push(format!("{version} {name}:\n{detail}"));
            }
        }
    }
    eprintln!("{report}");
    assert!(
        unexpected.is_empty(),
        "validator failures:\n{}\n{report}",
        unexpected.join("\n")
    );
}
