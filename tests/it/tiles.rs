//! Pyramid TIFFs over IIP: metadata, tiles, caches and pass-through, against the fixtures and
//! against Debian's iipsrv 1.1.

use std::time::Duration;

use crate::support::{
    Reference, TestServer, assert_refused_cleanly, body_lines, decode_jpeg_rgb, fcgi_get,
    fcgi_get_with, fixtures, fixtures_dir_prefix, psnr_u8,
};

const OBJS: &[&str] = &[
    "Max-size",
    "Resolution-number",
    "Resolutions",
    "Tile-size",
    "Bits-per-channel",
    "Min-Max-sample-values",
    "colorspace",
    "Horizontal-views",
    "Vertical-views",
];

#[test]
fn obj_answers_match_iipsrv_1_1() {
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let files = [
        "sample.tif",
        "tiff/rgb8_none.tif",
        "tiff/rgb8_lzw.tif",
        "tiff/rgb8_deflate.tif",
        "tiff/rgb8_jpeg.tif",
        "tiff/rgb8_zstd.tif",
        "tiff/rgb8_bigtiff.tif",
        "tiff/rgba8.tif",
        "tiff/grey8_deflate.tif",
        "tiff/grey16.tif",
        "tiff/lab8.tif",
    ];
    let mut compared = 0;
    for f in files {
        let q: String = std::iter::once(format!("FIF={f}"))
            .chain(OBJS.iter().map(|o| format!("OBJ={o}")))
            .collect::<Vec<_>>()
            .join("&");
        let theirs = fcgi_get(&reference.addr(), &q);
        let mine = fcgi_get(&ours.addr, &q);
        assert_eq!(
            mine.status(),
            200,
            "{f}: {}",
            String::from_utf8_lossy(&mine.stdout)
        );
        if !String::from_utf8_lossy(&theirs.stdout).contains("Max-size:") {
            eprintln!("{f}: iipsrv 1.1 does not serve this file; compared with ours only");
            continue;
        }
        assert_eq!(body_lines(&mine), body_lines(&theirs), "{f}");
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} files compared");
}

#[test]
fn obj_answers_for_fixtures() {
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &fixtures_dir_prefix()),
        ("COPYRIGHT", "CC0"),
    ]);
    let r = fcgi_get(
        &s.addr,
        "FIF=tiff/rgb8_nonsquare.tif&OBJ=Tile-size&OBJ=Max-size&OBJ=Resolutions",
    );
    assert_eq!(
        body_lines(&r),
        [
            "Tile-size:48 16",
            "Max-size:100 75",
            "Resolutions:12 9,25 18,50 37,100 75"
        ]
    );
    let r = fcgi_get(&s.addr, "FIF=tiff/rgb8_none.tif&OBJ=DPI");
    assert_eq!(body_lines(&r), ["DPI:1000.000000 1000.000000"]);
    let r = fcgi_get(
        &s.addr,
        "FIF=tiff/grey16.tif&OBJ=bits-per-channel&OBJ=colorspace",
    );
    assert_eq!(
        body_lines(&r),
        ["Bits-per-channel:16", "Colorspace,0-2,0:0 0 1 1 0"]
    );
    let r = fcgi_get(&s.addr, "FIF=tiff/lab8.tif&OBJ=colorspace");
    assert_eq!(body_lines(&r), ["Colorspace,0-2,0:1 0 4 3 0 1 2"]);
    let r = fcgi_get(&s.addr, "FIF=tiff/stack_classic.tif&OBJ=Horizontal-views");
    assert_eq!(body_lines(&r), ["Horizontal-views:0 1 2"]);
    // COPYRIGHT stands in for a missing rights tag.
    let r = fcgi_get(&s.addr, "FIF=sample.tif&OBJ=rights");
    assert_eq!(r.body(), b"CC0\r\n");
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain"));
    let r = fcgi_get(&s.addr, "FIF=tiff/metadata.tif&OBJ=metadata");
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    let text = String::from_utf8_lossy(r.body()).into_owned();
    assert!(
        text.starts_with("{ \n\t\"") || text.starts_with("{\n\t\""),
        "{text}"
    );
}

#[test]
fn tile_pixels_match_iipsrv_1_1() {
    let ours = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let reference = Reference::start(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    for (f, resolutions) in [
        ("sample.tif", 3u32),
        ("tiff/rgb8_deflate.tif", 3),
        ("tiff/rgb8_jpeg.tif", 3),
    ] {
        for r in 0..resolutions {
            for t in 0..16 {
                let q = format!("FIF={f}&JTL={r},{t}");
                let theirs = fcgi_get(&reference.addr(), &q);
                if theirs.header("Content-Type").as_deref() != Some("image/jpeg") {
                    break; // past the last tile of this level
                }
                let mine = fcgi_get(&ours.addr, &q);
                assert_eq!(
                    mine.header("Content-Type").as_deref(),
                    Some("image/jpeg"),
                    "{q}"
                );
                let (a, b) = (decode_jpeg_rgb(mine.body()), decode_jpeg_rgb(theirs.body()));
                assert_eq!((a.width, a.height), (b.width, b.height), "{q}: tile size");
                let p = psnr_u8(&a.pixels, &b.pixels);
                assert!(p > 30.0, "{q}: PSNR {p:.1} dB");
            }
        }
    }
}

/// Raw bytes of a stored JPEG tile, read independently with the `tiff` crate.
fn stored_jpeg_tile(path: &std::path::Path, tile: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    use tiff::tags::Tag;
    let mut d = tiff::decoder::Decoder::new(std::fs::File::open(path).unwrap()).unwrap();
    let offsets = d.get_tag_u64_vec(Tag::TileOffsets).unwrap();
    let counts = d.get_tag_u64_vec(Tag::TileByteCounts).unwrap();
    let tables = d.get_tag_u8_vec(Tag::JPEGTables).unwrap();
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offsets[tile])).unwrap();
    let mut data = vec![0u8; counts[tile] as usize];
    f.read_exact(&mut data).unwrap();
    let mut out = tables[..tables.len() - 2].to_vec();
    out.extend_from_slice(&data[2..]);
    out
}

#[test]
fn passthrough_sends_the_stored_tile() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    // Resolution 2 of sample.tif is the full 1000×1000 level; tile 0 is a full 256×256 tile.
    let expected = stored_jpeg_tile(&fixtures().join("sample.tif"), 0);
    for _ in 0..2 {
        // the second time from the tile cache
        let r = fcgi_get(&s.addr, "FIF=sample.tif&JTL=2,0");
        assert_eq!(r.body(), &expected[..]);
        assert_eq!(r.header("Content-Length"), Some(expected.len().to_string()));
    }
    // QLT forces a transcode.
    let r = fcgi_get(&s.addr, "FIF=sample.tif&QLT=60&JTL=2,0");
    assert_ne!(r.body(), &expected[..]);
    assert_eq!(decode_jpeg_rgb(r.body()).width, 256);
    // So does CODEC_PASSTHROUGH=0.
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &fixtures_dir_prefix()),
        ("CODEC_PASSTHROUGH", "0"),
    ]);
    let r = fcgi_get(&s.addr, "FIF=sample.tif&JTL=2,0");
    assert_ne!(r.body(), &expected[..]);
    let p = psnr_u8(
        &decode_jpeg_rgb(r.body()).pixels,
        &decode_jpeg_rgb(&expected).pixels,
    );
    assert!(p > 30.0, "transcoded tile PSNR {p:.1}");
}

#[test]
fn every_format_and_edge_tiles() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    // rgb8_none: 100×75 with 32×32 tiles (4×3): tile 3 is 4×32, tile 11 is 4×11.
    let r = fcgi_get(&s.addr, "FIF=tiff/rgb8_none.tif&JTL=2,11");
    let img = decode_jpeg_rgb(r.body());
    assert_eq!((img.width, img.height), (4, 11));
    for (cmd, mime, magic) in [
        ("PTL", "image/png", &b"\x89PNG"[..]),
        ("WTL", "image/webp", b"RIFF"),
        ("TTL", "image/tiff", b"II*\0"),
        ("ATL", "image/avif", b"\0\0\0"),
    ] {
        let r = fcgi_get(&s.addr, &format!("FIF=tiff/rgb8_none.tif&{cmd}=1,0"));
        assert_eq!(r.header("Content-Type").as_deref(), Some(mime), "{cmd}");
        assert!(r.body().starts_with(magic), "{cmd}");
    }
    // 16-bit, float, CIELAB and 1-bit sources become 8-bit JPEG tiles.
    for f in [
        "grey16",
        "grey32f",
        "lab8",
        "grey1",
        "rgba8",
        "multiband5",
        "palette8",
    ] {
        let r = fcgi_get(&s.addr, &format!("FIF=tiff/{f}.tif&JTL=0,0"));
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("image/jpeg"),
            "{f}: {}",
            String::from_utf8_lossy(&r.stdout)
        );
        decode_jpeg_rgb(r.body());
    }
    // Out of range: resolution → banner (400 here), tile → 404.
    assert_eq!(fcgi_get(&s.addr, "FIF=sample.tif&JTL=3,0").status(), 400);
    assert_eq!(fcgi_get(&s.addr, "FIF=sample.tif&JTL=-1,0").status(), 400);
    let r = fcgi_get(&s.addr, "FIF=sample.tif&JTL=2,16");
    assert_eq!(r.status(), 404);
    assert_eq!(r.body(), b"TPTImage :: Asked for non-existent tile: 16");
    // TIL streams several tiles column-major.
    let r = fcgi_get(&s.addr, "FIF=sample.tif&TIL=1,0-3");
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/vnd.netfpx")
    );
    let body = String::from_utf8_lossy(r.body()).into_owned();
    let order: Vec<&str> = body
        .match_indices("Tile,1,")
        .map(|(i, _)| &body[i + 7..i + 8])
        .collect();
    assert_eq!(order, ["0", "2", "1", "3"]);
}

#[test]
fn malformed_tiffs_are_errors_and_the_server_survives() {
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &fixtures_dir_prefix())]);
    let dir = fixtures().join("tiff");
    let mut bad: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("bad_") || n == "rgb8_strips.tif")
        .collect();
    bad.sort();
    assert!(bad.len() >= 10);
    for f in &bad {
        for q in [
            format!("FIF=tiff/{f}&OBJ=Max-size"),
            format!("FIF=tiff/{f}&JTL=0,0"),
        ] {
            let r = fcgi_get(&s.addr, &q);
            assert_refused_cleanly(&q, &r);
            if q.contains("JTL") && r.status() == 200 {
                decode_jpeg_rgb(r.body());
            }
        }
    }
    assert_eq!(
        fcgi_get(&s.addr, "FIF=sample.tif&OBJ=Max-size").status(),
        200
    );
}

#[test]
fn if_modified_since_and_stale_files() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.tif");
    std::fs::copy(fixtures().join("tiff/rgb8_none.tif"), &img).unwrap();
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &format!("{}/", dir.path().display()))]);
    let r = fcgi_get(&s.addr, "FIF=x.tif&OBJ=Max-size");
    let lm = r.header("Last-Modified").expect("Last-Modified");
    let r = fcgi_get_with(
        &s.addr,
        "FIF=x.tif&OBJ=Max-size",
        &[(b"HTTP_IF_MODIFIED_SINCE", lm.as_bytes())],
    );
    assert_eq!(r.status(), 304);
    // Any date not older than the file is a 304 (iipsrv: only an equal date); an older one
    // gets the image.
    let later = "Fri, 01 Jan 2100 00:00:00 GMT";
    let r = fcgi_get_with(
        &s.addr,
        "FIF=x.tif&OBJ=Max-size",
        &[(b"HTTP_IF_MODIFIED_SINCE", later.as_bytes())],
    );
    assert_eq!(r.status(), 304, "a later date");
    let earlier = "Thu, 01 Jan 1998 00:00:00 GMT";
    let r = fcgi_get_with(
        &s.addr,
        "FIF=x.tif&OBJ=Max-size",
        &[(b"HTTP_IF_MODIFIED_SINCE", earlier.as_bytes())],
    );
    assert_eq!(r.status(), 200, "an earlier date");
    let first_tile = fcgi_get(&s.addr, "FIF=x.tif&JTL=0,0").body().to_vec();

    // Replace the file (new content, new mtime): nothing stale is served.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::copy(fixtures().join("tiff/grey8_deflate.tif"), &img).unwrap();
    let r = fcgi_get(&s.addr, "FIF=x.tif&OBJ=colorspace");
    assert_eq!(body_lines(&r), ["Colorspace,0-2,0:0 0 1 1 0"]);
    assert_ne!(
        fcgi_get(&s.addr, "FIF=x.tif&JTL=0,0").body(),
        &first_tile[..]
    );
}

#[test]
fn tile_cache_hits_are_logged_at_verbosity_3() {
    let s = TestServer::tcp(&[
        ("FILESYSTEM_PREFIX", &fixtures_dir_prefix()),
        ("VERBOSITY", "3"),
        ("CODEC_PASSTHROUGH", "0"),
    ]);
    let a = fcgi_get(&s.addr, "FIF=sample.tif&JTL=1,1");
    let b = fcgi_get(&s.addr, "FIF=sample.tif&JTL=1,1");
    assert_eq!(a.body(), b.body());
    let log = s.log();
    assert!(log.contains("Tile cache hit"), "{log}");
    assert!(log.contains("FIF :: Image cache hit"), "{log}");
}
