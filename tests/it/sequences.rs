//! Image sequences (FILENAME_PATTERN, `docs/behaviour/images-and-decoding.md` §2) over IIP and IIIF: the view
//! lists, the view a request selects (SDS, JTLS, the IIIF delimiter), missing views, region
//! exports, SPECTRA/PFL over the views, glob metacharacters, FILESYSTEM_SUFFIX, Last-Modified,
//! stale views and memcached; OBJ answers and tiles compared with Debian's iipsrv 1.1.
//!
//! The fixture `fixtures/sequence/obj_pyr_HHH_VVV.tif` has views (h, v) = (0, 90), (30, 90),
//! (60, 90), (0, 60), (0, 120) and (30, 60); pixel (x, y) of view (h, v) is
//! R = 40 + 2h, G = v, B = 2x + y (fixtures/make-sequence-fixtures.sh).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::common::fcgi::Reply;
use crate::support::{
    MemcachedServer, Reference, TestServer, body_lines, decode_jpeg_rgb, fcgi_get, fcgi_get_with,
    fixtures, fixtures_dir_prefix, psnr_u8, require,
};

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The views of the fixture: (h, v).
const VIEWS: [(u32, u32); 6] = [(0, 90), (30, 90), (60, 90), (0, 60), (0, 120), (30, 60)];

const OBJS: &[&str] = &[
    "Horizontal-views",
    "Vertical-views",
    "Max-size",
    "Resolution-number",
    "Resolutions",
    "Tile-size",
    "Bits-per-channel",
    "Min-Max-sample-values",
    "colorspace",
];

fn obj_query(id: &str) -> String {
    std::iter::once(format!("FIF={id}"))
        .chain(OBJS.iter().map(|o| format!("OBJ={o}")))
        .collect::<Vec<_>>()
        .join("&")
}

/// Mean R and G of interleaved RGB pixels.
fn mean_rg(rgb: &[u8]) -> (f64, f64) {
    let n = (rgb.len() / 3) as f64;
    let r = rgb.chunks(3).map(|p| p[0] as f64).sum::<f64>() / n;
    let g = rgb.chunks(3).map(|p| p[1] as f64).sum::<f64>() / n;
    (r, g)
}

/// Assert that pixels are those of view (h, v): R = 40 + 2h, G = v (within JPEG error).
fn assert_view(rgb: &[u8], (h, v): (u32, u32), what: &str) {
    let (r, g) = mean_rg(rgb);
    let (er, eg) = (40.0 + 2.0 * h as f64, v as f64);
    assert!(
        (r - er).abs() < 3.0 && (g - eg).abs() < 3.0,
        "{what}: mean R,G = {r:.1},{g:.1}, expected view {h},{v} ({er},{eg})"
    );
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("PNG decodes");
    buf.truncate(info.buffer_size());
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, buf)
}

/// A temporary image folder holding copies of the fixture's views under other names.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, view) in files {
        std::fs::copy(
            fixtures().join(format!("sequence/obj_pyr_{view}.tif")),
            dir.path().join(name),
        )
        .unwrap();
    }
    dir
}

fn dir_prefix(dir: &tempfile::TempDir) -> String {
    format!("{}/", dir.path().display())
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn obj_views_match_iipsrv_1_1() {
    let p = fixtures_dir_prefix();
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &p)]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &p)]);
    let q = obj_query("sequence/obj");
    let mine = fcgi_get(&ours.addr, &q);
    assert_eq!(mine.status(), 200, "{}", text(&mine));
    assert_eq!(
        body_lines(&mine)[..4],
        [
            "Horizontal-views:0 30 60",
            "Vertical-views:60 90 120",
            "Max-size:64 48",
            "Resolution-number:3",
        ]
    );
    assert_eq!(
        body_lines(&mine),
        body_lines(&fcgi_get(&reference.addr(), &q))
    );
    // SDS does not change the description (it is the default view's), in both servers.
    let q = format!("FIF=sequence/obj&SDS=30,60&{}", &obj_query("x")[6..]);
    assert_eq!(
        body_lines(&fcgi_get(&ours.addr, &q)),
        body_lines(&fcgi_get(&reference.addr(), &q))
    );
    // A missing sequence: the same 404 message, without the server path.
    let r = fcgi_get(&ours.addr, "FIF=sequence/none&OBJ=Max-size");
    assert_eq!(r.status(), 404);
    assert_eq!(
        text(&r),
        "sequence/none is neither a file nor part of an image sequence"
    );
    let theirs = fcgi_get(&reference.addr(), "FIF=sequence/none&OBJ=Max-size");
    assert_eq!(theirs.status(), 404);
    assert!(text(&theirs).ends_with(&text(&r)), "{}", text(&theirs));
}

#[test]
fn views_have_their_own_pixels_as_in_iipsrv_1_1() {
    let p = fixtures_dir_prefix();
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &p)]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &p)]);
    for (h, v) in VIEWS {
        for (r, t) in [(2, 0), (2, 5), (2, 11), (1, 3), (0, 0)] {
            let q = format!("FIF=sequence/obj&SDS={h},{v}&JTL={r},{t}");
            let mine = fcgi_get(&ours.addr, &q);
            assert_eq!(
                mine.header("Content-Type").as_deref(),
                Some("image/jpeg"),
                "{q}: {}",
                text(&mine)
            );
            let a = decode_jpeg_rgb(mine.body());
            assert_view(&a.pixels, (h, v), &q);
            let theirs = fcgi_get(&reference.addr(), &q);
            assert_eq!(
                theirs.header("Content-Type").as_deref(),
                Some("image/jpeg"),
                "{q}: iipsrv 1.1"
            );
            let b = decode_jpeg_rgb(theirs.body());
            assert_eq!((a.width, a.height), (b.width, b.height), "{q}");
            let p = psnr_u8(&a.pixels, &b.pixels);
            assert!(p > 35.0, "{q}: PSNR {p:.1} dB against iipsrv 1.1");
        }
    }
    // Without SDS: the default view (0, 90).
    let r = fcgi_get(&ours.addr, "FIF=sequence/obj&JTL=2,0");
    assert_view(&decode_jpeg_rgb(r.body()).pixels, (0, 90), "no SDS");
}

#[test]
fn passthrough_sends_each_views_stored_tile() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let stored = |view: &str| {
        fcgi_get(&s.addr, &format!("FIF=sequence/obj_pyr_{view}.tif&JTL=2,5"))
            .body()
            .to_vec()
    };
    // The same tile through the sequence is the same bytes as through the view's own file.
    for (h, v) in VIEWS {
        let r = fcgi_get(&s.addr, &format!("FIF=sequence/obj&SDS={h},{v}&JTL=2,5"));
        assert_eq!(r.body(), stored(&format!("{h:03}_{v:03}")), "view {h},{v}");
    }
    assert_ne!(stored("000_090"), stored("030_090"));
}

#[test]
fn sds_and_jtls_select_the_same_tiles() {
    let env = [
        ("FILESYSTEM_PREFIX", fixtures_dir_prefix()),
        // No tile cache: every answer is computed afresh.
        ("MAX_IMAGE_CACHE_SIZE", "0".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = TestServer::tcp(&env);
    for (h, v) in VIEWS {
        for (r, t) in [(2, 0), (2, 7), (1, 2), (0, 0)] {
            let sds = fcgi_get(
                &s.addr,
                &format!("FIF=sequence/obj&SDS={h},{v}&JTL={r},{t}"),
            );
            let jtls = fcgi_get(&s.addr, &format!("FIF=sequence/obj&JTLS={h},{r},{t},{v}"));
            assert_eq!(sds.status(), 200, "{h},{v}: {}", text(&sds));
            assert_eq!(sds.stdout, jtls.stdout, "view {h},{v} tile {r},{t}");
            // Processing forces decoding: still the view's pixels.
            let inv = fcgi_get(
                &s.addr,
                &format!("FIF=sequence/obj&INV&JTLS={h},{r},{t},{v}"),
            );
            let inv2 = fcgi_get(
                &s.addr,
                &format!("FIF=sequence/obj&INV&SDS={h},{v}&JTL={r},{t}"),
            );
            assert_eq!(inv.stdout, inv2.stdout);
            let img = decode_jpeg_rgb(inv.body());
            let flipped: Vec<u8> = img.pixels.iter().map(|p| 255 - p).collect();
            assert_view(&flipped, (h, v), "INV");
        }
    }
}

#[test]
fn missing_views_are_404() {
    let p = fixtures_dir_prefix();
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &p)]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &p)]);
    for q in [
        "FIF=sequence/obj&SDS=60,60&JTL=2,0",
        "FIF=sequence/obj&JTLS=60,2,0,60",
        "FIF=sequence/obj&SDS=60,60&CVT=jpeg",
        "FIF=sequence/obj&SDS=45,90&WID=10&CVT=png",
    ] {
        let r = fcgi_get(&s.addr, q);
        assert_eq!(r.status(), 404, "{q}");
        let name = if q.contains("45") {
            "045_090"
        } else {
            "060_060"
        };
        assert_eq!(
            text(&r),
            format!("Unable to open file 'sequence/obj_pyr_{name}.tif'"),
            "{q}"
        );
        assert!(!text(&r).contains(&p));
        // iipsrv 1.1 agrees for tiles; its CVT ignores the angles (the default view).
        if q.contains("JTL") {
            assert_eq!(
                fcgi_get(&reference.addr(), q).status(),
                404,
                "{q}: iipsrv 1.1"
            );
        }
    }
    // A lone SDS=h sets the vertical angle to 0 ([QUIRK]), a view that does not exist.
    let r = fcgi_get(&s.addr, "FIF=sequence/obj&SDS=30&JTL=2,0");
    assert_eq!(r.status(), 404);
    assert_eq!(
        text(&r),
        "Unable to open file 'sequence/obj_pyr_030_000.tif'"
    );
    // The server is fine afterwards.
    assert_eq!(fcgi_get(&s.addr, "FIF=sequence/obj&JTL=2,0").status(), 200);
}

#[test]
fn region_exports_of_a_view() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    for (h, v) in VIEWS {
        let q = format!("FIF=sequence/obj&SDS={h},{v}&CVT=png");
        let r = fcgi_get(&s.addr, &q);
        assert_eq!(r.status(), 200, "{q}: {}", text(&r));
        assert_eq!(
            r.header("Content-Disposition").as_deref(),
            Some("inline; filename=\"obj_64x48.png\"")
        );
        let (w, hh, rgb) = decode_png(r.body());
        assert_eq!((w, hh), (64, 48));
        assert_view(&rgb, (h, v), &q);
        // The blue gradient B = 2x + y survives JPEG at Q90 (within a few levels).
        let b = |x: usize, y: usize| rgb[(y * 64 + x) * 3 + 2] as i32;
        assert!((b(10, 20) - 40).abs() <= 4, "{q}: B(10,20) = {}", b(10, 20));
        // A smaller export from a lower level, a region, JPEG.
        let q = format!("FIF=sequence/obj&SDS={h},{v}&RGN=0.25,0.25,0.5,0.5&WID=16&CVT=jpeg");
        let r = fcgi_get(&s.addr, &q);
        assert_eq!(r.status(), 200, "{q}: {}", text(&r));
        let img = decode_jpeg_rgb(r.body());
        assert_eq!(img.width, 16);
        assert_view(&img.pixels, (h, v), &q);
    }
}

#[test]
fn spectra_and_pfl_read_the_horizontal_views() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    // Pixel (1, 1) of tile 0: R = 40 + 2h, so the first channel is 40, 100, 160.
    let r = fcgi_get(&s.addr, "FIF=sequence/obj&SPECTRA=2,0,1,1");
    assert_eq!(r.status(), 200, "{}", text(&r));
    let body = text(&r);
    let points: Vec<(String, f64)> = body
        .split("<point>")
        .skip(1)
        .map(|p| {
            let between = |a: &str, b: &str| {
                let s = &p[p.find(a).unwrap() + a.len()..];
                s[..s.find(b).unwrap()].to_string()
            };
            (
                between("<wavelength>", "</wavelength>"),
                between("<reflectance>", "</reflectance>").parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = points.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["0", "30", "60"], "{body}");
    for ((_, value), expected) in points.iter().zip([40.0, 100.0, 160.0]) {
        assert!((value * 255.0 - expected).abs() < 3.0, "{body}");
    }

    // PFL: one object entry per horizontal view, all channels of each pixel.
    let r = fcgi_get(&s.addr, "FIF=sequence/obj&PFL=2:1,1-3,1");
    assert_eq!(r.status(), 200, "{}", text(&r));
    let body = text(&r);
    assert!(
        body.starts_with("{\n\t\"profile\": {\n\t\t\"0\": ["),
        "{body}"
    );
    assert!(body.contains("\n\t\t\"30\": [") && body.contains("\n\t\t\"60\": ["));
    let values = |name: &str| -> Vec<f64> {
        let start = body.find(&format!("\"{name}\": [")).unwrap() + name.len() + 5;
        let end = start + body[start..].find(']').unwrap();
        body[start..end]
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect()
    };
    for (name, red) in [("0", 40.0), ("30", 100.0), ("60", 160.0)] {
        let v = values(name);
        assert_eq!(v.len(), 6, "2 pixels × 3 channels: {body}");
        assert!(
            (v[0] - red).abs() < 3.0 && (v[1] - 90.0).abs() < 3.0,
            "{body}"
        );
    }
    // The vertical angle of the request applies to every band: (30, 60) exists, (60, 60) not.
    let r = fcgi_get(&s.addr, "FIF=sequence/obj&SDS=0,60&PFL=2:1,1");
    assert_eq!(r.status(), 404, "{}", text(&r));
}

#[test]
fn glob_metacharacters_in_identifiers_are_literal() {
    // `[ab]` as a glob matches `a`; here it is only the file called `[ab]…`.
    let dir = folder(&[
        ("[ab]_pyr_000_090.tif", "000_090"),
        ("[ab]_pyr_000_120.tif", "000_120"),
        ("a_pyr_000_090.tif", "030_090"),
        ("a_pyr_030_090.tif", "060_090"),
        ("a_pyr_060_090.tif", "060_090"),
    ]);
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &dir_prefix(&dir))]);
    let r = fcgi_get(&s.addr, "FIF=[ab]&OBJ=Horizontal-views&OBJ=Vertical-views");
    assert_eq!(
        body_lines(&r),
        ["Horizontal-views:0", "Vertical-views:90 120"]
    );
    let r = fcgi_get(&s.addr, "FIF=%5Bab%5D&JTL=2,0");
    assert_view(&decode_jpeg_rgb(r.body()).pixels, (0, 90), "[ab]");
    let r = fcgi_get(&s.addr, "FIF=a&SDS=0,90&JTL=2,0");
    assert_view(&decode_jpeg_rgb(r.body()).pixels, (30, 90), "a");
    for id in ["*", "?", "[a]", "a*", "%2A"] {
        let r = fcgi_get(&s.addr, &format!("FIF={id}&OBJ=Max-size"));
        assert_eq!(r.status(), 404, "{id}: {}", text(&r));
        assert!(text(&r).ends_with("is neither a file nor part of an image sequence"));
    }
}

#[test]
fn sequences_are_found_with_a_filesystem_suffix() {
    let p = fixtures_dir_prefix();
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &p), ("FILESYSTEM_SUFFIX", ".tif")]);
    let q = obj_query("sequence/obj");
    let mine = fcgi_get(&ours.addr, &q);
    assert_eq!(mine.status(), 200, "{}", text(&mine));
    // iipsrv 1.1 has no FILESYSTEM_SUFFIX, so its answer without one is the reference (1.3
    // appends the suffix to its probe and finds nothing: [BUG]).
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &p)]);
    assert_eq!(
        body_lines(&mine),
        body_lines(&fcgi_get(&reference.addr(), &q))
    );
    let r = fcgi_get(&ours.addr, "FIF=sequence/obj&SDS=60,90&JTL=2,3");
    assert_view(&decode_jpeg_rgb(r.body()).pixels, (60, 90), "suffix");
    // Single files still get the suffix.
    let r = fcgi_get(&ours.addr, "FIF=sample&OBJ=Max-size");
    assert_eq!(r.status(), 200, "{}", text(&r));
    // A file named like the identifier plus the suffix wins over a sequence.
    let dir = folder(&[("obj.tif", "060_090"), ("obj_pyr_000_090.tif", "000_090")]);
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &dir_prefix(&dir)),
        ("FILESYSTEM_SUFFIX", ".tif"),
    ]);
    let r = fcgi_get(&s.addr, "FIF=obj&OBJ=Horizontal-views&JTL=2,0");
    assert_view(
        &decode_jpeg_rgb(r.body()).pixels,
        (60, 90),
        "file before sequence",
    );
}

#[test]
fn ambiguous_and_unsupported_sequences() {
    let dir = folder(&[
        ("two_pyr_000_090.tif", "000_090"),
        ("two_pyr_000_090.tiff", "000_090"),
        ("up_pyr_000_090.TIF", "000_090"),
    ]);
    let jpeg = fcgi_get(
        &TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]).addr,
        "FIF=sequence/obj&CVT=jpeg",
    )
    .body()
    .to_vec();
    std::fs::write(dir.path().join("jpg_pyr_000_090.jpg"), &jpeg).unwrap();
    let p = dir_prefix(&dir);
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &p)]);
    let r = fcgi_get(&s.addr, "FIF=two&OBJ=Max-size");
    assert_eq!(r.status(), 404);
    assert_eq!(
        text(&r),
        "There are multiple file extensions matching two_pyr_000_090.*"
    );
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &p)]);
    let theirs = fcgi_get(&reference.addr(), "FIF=two&OBJ=Max-size");
    assert_eq!(theirs.status(), 404);
    assert!(text(&theirs).starts_with("There are multiple file extensions matching"));
    // JPEG sequences and upper-case extensions are unsupported: the banner, as a 400.
    for id in ["jpg", "up"] {
        let r = fcgi_get(&s.addr, &format!("FIF={id}&OBJ=Max-size"));
        assert_eq!(r.status(), 400, "{id}");
        assert!(
            text(&r).starts_with("<!DOCTYPE html>"),
            "{id}: {}",
            text(&r)
        );
    }
}

#[test]
fn iiif_delimiter_selects_a_horizontal_view() {
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &fixtures_dir_prefix()),
        ("IIIF_DELIMITER", ";"),
    ]);
    for h in [0, 30, 60] {
        let q = format!("IIIF=sequence/obj;{h}/full/max/0/default.jpg");
        let r = fcgi_get(&s.addr, &q);
        assert_eq!(r.status(), 200, "{q}: {}", text(&r));
        // Named after the identifier, not the view's file, as iipsrv 1.3.
        assert_eq!(
            r.header("Content-Disposition").as_deref(),
            Some("inline; filename=\"obj_64x48.jpg\""),
            "{q}"
        );
        let img = decode_jpeg_rgb(r.body());
        assert_eq!((img.width, img.height), (64, 48));
        assert_view(&img.pixels, (h, 90), &q);
    }
    // No view 45: a 404 (not a base-URI redirect).
    let r = fcgi_get(&s.addr, "IIIF=sequence/obj;45/full/max/0/default.jpg");
    assert_eq!(r.status(), 404, "{}", text(&r));
    let r = fcgi_get_with(
        &s.addr,
        "IIIF=sequence/obj/info.json",
        &[(
            b"REQUEST_URI",
            b"/fcgi-bin/iipsrv.fcgi?IIIF=sequence/obj/info.json",
        )],
    );
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(text(&r).contains("\"width\" : 64"), "{}", text(&r));
}

#[test]
fn last_modified_is_the_default_views_and_views_are_checked_for_changes() {
    let dir = folder(&[
        ("obj_pyr_000_090.tif", "000_090"),
        ("obj_pyr_030_090.tif", "030_090"),
    ]);
    let default = dir.path().join("obj_pyr_000_090.tif");
    let other = dir.path().join("obj_pyr_030_090.tif");
    set_mtime(&default, 1_700_000_000);
    set_mtime(&other, 1_600_000_000);
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &dir_prefix(&dir))]);
    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    for q in [
        "FIF=obj&OBJ=Max-size",
        "FIF=obj&JTL=2,0",
        "FIF=obj&SDS=30,90&JTL=2,0",
        "FIF=obj&SDS=30,90&CVT=jpeg",
    ] {
        let r = fcgi_get(&s.addr, q);
        assert_eq!(r.header("Last-Modified").as_deref(), Some(LM), "{q}");
        let r = fcgi_get_with(&s.addr, q, &[(b"HTTP_IF_MODIFIED_SINCE", LM.as_bytes())]);
        assert_eq!(r.status(), 304, "{q}");
    }
    let r = fcgi_get(&s.addr, "FIF=obj&SDS=30,90&JTL=2,5");
    assert_view(&decode_jpeg_rgb(r.body()).pixels, (30, 90), "before");

    // The view file is replaced (new content, new mtime): its cached tiles and source are not
    // used any more.
    std::fs::copy(fixtures().join("sequence/obj_pyr_060_090.tif"), &other).unwrap();
    set_mtime(&other, 1_600_000_100);
    for q in ["FIF=obj&SDS=30,90&JTL=2,5", "FIF=obj&SDS=30,90&INV&JTL=2,5"] {
        let r = fcgi_get(&s.addr, q);
        let mut px = decode_jpeg_rgb(r.body()).pixels;
        if q.contains("INV") {
            px.iter_mut().for_each(|p| *p = 255 - *p);
        }
        assert_view(&px, (60, 90), &format!("{q} after the change"));
    }
    // The default view changes: so does Last-Modified.
    set_mtime(&default, 1_700_000_100);
    let r = fcgi_get(&s.addr, "FIF=obj&SDS=30,90&JTL=2,5");
    assert_eq!(
        r.header("Last-Modified").as_deref(),
        Some("Tue, 14 Nov 2023 22:15:00 GMT")
    );
}

#[test]
fn memcached_entries_of_sequences_follow_the_default_view() {
    if !require("memcached", "memcached") {
        return;
    }
    let dir = folder(&[
        ("obj_pyr_000_090.tif", "000_090"),
        ("obj_pyr_030_090.tif", "030_090"),
    ]);
    let default = dir.path().join("obj_pyr_000_090.tif");
    set_mtime(&default, 1_700_000_000);
    let m = MemcachedServer::start();
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &dir_prefix(&dir)),
        ("MEMCACHED_SERVERS", &m.addr()),
    ]);
    const Q: &str = "FIF=obj&SDS=30,90&JTL=2,0";
    let first = fcgi_get(&s.addr, Q);
    assert_eq!(first.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while m.stat("curr_items") < 1 {
        assert!(std::time::Instant::now() < deadline, "never stored");
        std::thread::sleep(Duration::from_millis(10));
    }
    let hits = m.stat("get_hits");
    assert_eq!(fcgi_get(&s.addr, Q).stdout, first.stdout);
    assert_eq!(m.stat("get_hits"), hits + 1, "a sequence's entry is served");
    // The default view changes: the entry is stale and not served.
    set_mtime(&default, 1_700_000_100);
    let r = fcgi_get(&s.addr, Q);
    assert_eq!(
        r.header("Last-Modified").as_deref(),
        Some("Tue, 14 Nov 2023 22:15:00 GMT")
    );
}

#[test]
fn jpeg2000_sequences_and_raw_codestreams() {
    let dir = tempfile::tempdir().unwrap();
    let jp2 = fixtures().join("jp2");
    for (src, dst) in [
        ("rgb8_lossless.jp2", "j_pyr_000_090.jp2"),
        ("rgb8_lossless.jp2", "j_pyr_020_090.jp2"),
        ("rgb8.j2k", "k_pyr_000_090.j2k"),
        ("rgb8.j2k", "k_pyr_000_045.j2k"),
    ] {
        std::fs::copy(jp2.join(src), dir.path().join(dst)).unwrap();
    }
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &dir_prefix(&dir))]);
    for (id, views) in [
        ("j", ["Horizontal-views:0 20", "Vertical-views:90"]),
        ("k", ["Horizontal-views:0", "Vertical-views:45 90"]),
    ] {
        let r = fcgi_get(
            &s.addr,
            &format!("FIF={id}&OBJ=Max-size&OBJ=Horizontal-views&OBJ=Vertical-views"),
        );
        assert_eq!(r.status(), 200, "{id}: {}", text(&r));
        let lines = body_lines(&r);
        assert_eq!(lines[0], "Max-size:300 200", "{id}");
        assert_eq!(lines[1..], views, "{id}");
    }
    // The same pixels through both views (copies of one file).
    let a = fcgi_get(&s.addr, "FIF=j&JTL=1,0");
    let b = fcgi_get(&s.addr, "FIF=j&SDS=20,90&JTL=1,0");
    assert_eq!(a.header("Content-Type").as_deref(), Some("image/jpeg"));
    assert_eq!(a.body(), b.body());
    let c = fcgi_get(&s.addr, "FIF=k&SDS=0,45&WID=30&CVT=png");
    assert_eq!(c.status(), 200, "{}", text(&c));
    assert_eq!(decode_png(c.body()).0, 30);
}
