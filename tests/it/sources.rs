//! JPEG2000 and JPEG sources through the server: every protocol, against iipsrv 1.1, region
//! exports against their stitched tiles, and corrupt files.

use std::time::Duration;

use crate::common::fcgi::{Client, Reply};
use crate::support::{
    Addr, Reference, TestServer, assert_refused_cleanly, body_lines, decode_jpeg_rgb, fcgi_get,
    fixtures, fixtures_dir_prefix,
};

/// A request as a web server sends it (IIIF ids need REQUEST_URI and HTTP_HOST).
fn get_web(addr: &Addr, query: &str) -> Reply {
    let mut c = match addr {
        Addr::Tcp(a) => Client::connect_tcp(a).unwrap(),
        Addr::Unix(p) => Client::connect_unix(p).unwrap(),
    };
    c.set_timeout(Some(Duration::from_secs(60))).unwrap();
    let uri = format!("/fcgi-bin/iipsrv.fcgi?{query}");
    let params: [(&[u8], &[u8]); 4] = [
        (b"REQUEST_METHOD", b"GET"),
        (b"QUERY_STRING", query.as_bytes()),
        (b"REQUEST_URI", uri.as_bytes()),
        (b"HTTP_HOST", b"localhost"),
    ];
    c.request(&params, b"", false).unwrap()
}

#[test]
fn every_protocol_on_jpeg2000_and_jpeg() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    for f in [
        "jp2/rgb8_tiled.jp2",
        "jp2/rgb8_untiled.jp2",
        "jp2/grey12.jp2",
        "jp2/rgb16.jp2",
        "jpeg/rgb.jpg",
        "jpeg/grey.jpg",
        "jpeg/progressive.jpg",
        "jpeg/cmyk.jpg",
    ] {
        let r = fcgi_get(
            &s.addr,
            &format!("FIF={f}&OBJ=Max-size&OBJ=Resolution-number&OBJ=Tile-size"),
        );
        assert_eq!(
            r.status(),
            200,
            "{f}: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        let l = body_lines(&r);
        assert!(l[0].starts_with("Max-size:"), "{f}: {l:?}");
        let levels: u32 = l[1]
            .trim_start_matches("Resolution-number:")
            .parse()
            .unwrap();
        for res in 0..levels {
            let r = fcgi_get(&s.addr, &format!("FIF={f}&JTL={res},0"));
            assert_eq!(
                r.header("Content-Type").as_deref(),
                Some("image/jpeg"),
                "{f} r{res}: {}",
                String::from_utf8_lossy(&r.stdout)
            );
            decode_jpeg_rgb(r.body());
        }
        let r = get_web(&s.addr, &format!("IIIF={f}/info.json"));
        assert_eq!(r.status(), 200, "{f} info.json");
        let r = fcgi_get(&s.addr, &format!("DeepZoom={f}.dzi"));
        assert_eq!(r.status(), 200, "{f} dzi");
        let r = fcgi_get(&s.addr, &format!("Zoomify={f}/ImageProperties.xml"));
        assert_eq!(r.status(), 200, "{f} zoomify");
    }
}

#[test]
fn jpeg2000_tiles_match_iipsrv_1_1() {
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let mut compared = 0;
    for f in [
        "jp2/rgb8_tiled.jp2",
        "jp2/rgb8_untiled.jp2",
        "jp2/grey8.jp2",
    ] {
        let q = format!("FIF={f}&OBJ=Max-size&OBJ=Resolutions");
        let (mine, theirs) = (fcgi_get(&ours.addr, &q), fcgi_get(&reference.addr(), &q));
        assert_eq!(body_lines(&mine), body_lines(&theirs), "{f}");
        let levels = body_lines(&mine)[1].matches(',').count() as u32 + 1;
        for r in 0..levels {
            for t in 0..4 {
                let q = format!("FIF={f}&JTL={r},{t}");
                let theirs = fcgi_get(&reference.addr(), &q);
                if theirs.header("Content-Type").as_deref() != Some("image/jpeg") {
                    break;
                }
                let mine = fcgi_get(&ours.addr, &q);
                let (a, b) = (decode_jpeg_rgb(mine.body()), decode_jpeg_rgb(theirs.body()));
                assert_eq!((a.width, a.height), (b.width, b.height), "{q}");
                let mse: f64 = a
                    .pixels
                    .iter()
                    .zip(&b.pixels)
                    .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                    .sum::<f64>()
                    / a.pixels.len() as f64;
                assert!(mse < 60.0, "{q}: MSE {mse:.1}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 6, "{compared}");
}

#[test]
fn corrupt_files_are_errors_and_the_server_survives() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    for dir in ["tiff", "jp2", "jpeg"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.starts_with("bad_") {
                continue;
            }
            for q in [
                format!("FIF={dir}/{name}&OBJ=Max-size"),
                format!("FIF={dir}/{name}&JTL=0,0"),
            ] {
                assert_refused_cleanly(&q, &fcgi_get(&s.addr, &q));
            }
        }
    }
    assert_eq!(
        fcgi_get(&s.addr, "FIF=sample.tif&OBJ=Max-size").status(),
        200
    );
}

/// A PNG answer as 8-bit samples, with its width, height and channel count.
fn decode_png(body: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(body))
        .read_info()
        .expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let frame = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!(frame.bit_depth, png::BitDepth::Eight);
    buf.truncate(frame.buffer_size());
    let channels = frame.color_type.samples();
    (frame.width, frame.height, channels, buf)
}

#[test]
fn full_resolution_regions_match_their_stitched_tiles() {
    // A region export at full size (the source's region read: one JPEG2000 window decode, a
    // crop of the decoded JPEG, TIFF tiles through the tile cache) against the same pixels
    // taken from the PNG tiles (one decode per tile, the old path): PSNR ≥ 40 dB.
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &fixtures_dir_prefix()),
        ("MAX_IMAGE_CACHE_SIZE", "0"),
    ]);
    for (f, (x, y, w, h)) in [
        ("jp2/rgb8_tiled.jp2", (130, 70, 500, 400)),
        ("jp2/rgb8_untiled.jp2", (300, 260, 400, 230)),
        ("jpeg/rgb_odd.jpg", (250, 100, 700, 597)),
        ("sample.tif", (200, 300, 700, 600)),
    ] {
        let r = get_web(
            &s.addr,
            &format!("IIIF={f}/{x},{y},{w},{h}/max/0/default.png"),
        );
        assert_eq!(
            r.status(),
            200,
            "{f} region: {}",
            String::from_utf8_lossy(r.body())
        );
        let (rw, rh, ch, region) = decode_png(r.body());
        assert_eq!((rw, rh), (w, h), "{f}");
        let l = body_lines(&fcgi_get(
            &s.addr,
            &format!("FIF={f}&OBJ=Resolution-number&OBJ=Max-size"),
        ));
        let top: u32 = l[0]
            .trim_start_matches("Resolution-number:")
            .parse()
            .unwrap();
        let width: u32 = l[1]
            .trim_start_matches("Max-size:")
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let across = width.div_ceil(256);
        let mut stitched = vec![0u8; region.len()];
        for ty in y / 256..=(y + h - 1) / 256 {
            for tx in x / 256..=(x + w - 1) / 256 {
                let t = ty * across + tx;
                let r = fcgi_get(&s.addr, &format!("FIF={f}&PTL={},{t}", top - 1));
                assert_eq!(r.status(), 200, "{f} tile {t}");
                let (tw, th, tch, tile) = decode_png(r.body());
                assert_eq!(tch, ch, "{f} tile {t}");
                for row in 0..th {
                    let (gy, gx) = (ty * 256 + row, tx * 256);
                    if gy < y || gy >= y + h {
                        continue;
                    }
                    let x0 = gx.max(x);
                    let x1 = (gx + tw).min(x + w);
                    let src = ((row * tw + (x0 - gx)) as usize) * ch;
                    let dst = (((gy - y) * w + (x0 - x)) as usize) * ch;
                    let n = (x1 - x0) as usize * ch;
                    stitched[dst..dst + n].copy_from_slice(&tile[src..src + n]);
                }
            }
        }
        let psnr = crate::support::psnr_u8(&region, &stitched);
        assert!(psnr >= 40.0, "{f}: PSNR {psnr:.1} dB");
    }
}
