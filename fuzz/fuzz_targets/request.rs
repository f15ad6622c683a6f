//! A request through the whole protocol layer (`protocols::respond`): IIP, IIIF, Zoomify and
//! DeepZoom against small copies of the fixtures, with two configurations (query strings, and
//! `URI_MAP` paths with IIIF 2 and no upscaling).
//!
//! Properties of every response: header names are tokens, no header value holds CR, LF or NUL,
//! `Content-Length` equals the body, and neither the body nor a header names the images folder
//! (a server path).
//!
//! Input, by lines: the request string (a query string, or a path starting with `/` for the
//! `URI_MAP` configuration), then `NAME=VALUE` lines of extra CGI parameters
//! (`REQUEST_METHOD`, `HTTP_ACCEPT`, `HTTP_IF_MODIFIED_SINCE`, …); after an empty line, the
//! request body.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use iipsrv::app::App;
use iipsrv::http::Request;
use libfuzzer_sys::fuzz_target;

/// The images, by the names requests use, and the fixture each is a copy of.
const IMAGES: &[(&str, &str)] = &[
    ("t.tif", "tiff/rgb8_jpeg.tif"),
    ("g.tif", "tiff/grey16.tif"),
    ("f.tif", "tiff/grey32f.tif"),
    ("s.tif", "tiff/stack_classic.tif"),
    ("m.tif", "tiff/rgb8_thumb_mask.tif"),
    ("b.tif", "tiff/bad_huge_tile.tif"),
    ("j.jp2", "jp2/rgb8_lossless.jp2"),
    ("p.jpg", "jpeg/small.jpg"),
    ("obj_pyr_000_090.tif", "sequence/obj_pyr_000_090.tif"),
    ("obj_pyr_030_090.tif", "sequence/obj_pyr_030_090.tif"),
    ("obj_pyr_000_060.tif", "sequence/obj_pyr_000_060.tif"),
];

/// A folder of copies of the fixtures, removed at exit.
struct Images {
    dir: PathBuf,
    prefix: String,
}

static IMAGES_DIR: LazyLock<Images> = LazyLock::new(|| {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let dir = std::env::temp_dir().join(format!("iipsrv-fuzz-request-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, fixture) in IMAGES {
        std::fs::copy(fixtures.join(fixture), dir.join(name)).unwrap();
    }
    extern "C" fn remove() {
        let _ = std::fs::remove_dir_all(&IMAGES_DIR.dir);
    }
    // SAFETY: registers a plain function to run at exit (libFuzzer ends with exit()).
    unsafe { libc::atexit(remove) };
    let prefix = format!("{}/", dir.display());
    Images { dir, prefix }
});

/// Query strings: IIIF 3, MAX_CVT 384, the IIIF extensions, CORS, a page delimiter.
static QUERY_APP: LazyLock<App> = LazyLock::new(|| {
    iipsrv_fuzz::app(&[
        ("FILESYSTEM_PREFIX", &IMAGES_DIR.prefix),
        ("MAX_METADATA_CACHE_SIZE", "100"),
        ("MAX_CVT", "384"),
        ("IIIF_EXTENSIONS", "1"),
        ("IIIF_DELIMITER", ";"),
        ("CORS", "*"),
    ])
});

/// Paths: `URI_MAP` `iiif=>IIIF`, IIIF 2, no upscaling, MAX_CVT 256.
static PATH_APP: LazyLock<App> = LazyLock::new(|| {
    iipsrv_fuzz::app(&[
        ("FILESYSTEM_PREFIX", &IMAGES_DIR.prefix),
        ("MAX_METADATA_CACHE_SIZE", "100"),
        ("URI_MAP", "iiif=>IIIF"),
        ("IIIF_VERSION", "2"),
        ("ALLOW_UPSCALING", "0"),
        ("MAX_CVT", "256"),
        ("BASE_URL", "http://example.org/iiif/"),
    ])
});

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(p) => (&data[..p], &data[p + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = vec![(b"REQUEST_METHOD".to_vec(), b"GET".to_vec())];
    let app: &App = if first.starts_with(b"/") {
        let query = first
            .iter()
            .position(|&b| b == b'?')
            .map(|q| &first[q + 1..]);
        params.push((b"REQUEST_URI".to_vec(), first.to_vec()));
        params.push((b"QUERY_STRING".to_vec(), query.unwrap_or_default().to_vec()));
        &PATH_APP
    } else {
        let mut uri = b"/fcgi-bin/iipsrv.fcgi?".to_vec();
        uri.extend_from_slice(first);
        params.push((b"REQUEST_URI".to_vec(), uri));
        params.push((b"QUERY_STRING".to_vec(), first.to_vec()));
        &QUERY_APP
    };
    params.push((b"HTTP_HOST".to_vec(), b"example.org".to_vec()));
    for line in lines {
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            params.push((line[..eq].to_vec(), line[eq + 1..].to_vec()));
        }
    }
    let request = Request::new(params, body.to_vec());
    let response = iipsrv::protocols::respond(app.shared(), &request);
    // The folder must not appear in an answer, unless the request itself named it (error
    // messages quote the request).
    let dir = IMAGES_DIR.dir.display().to_string();
    let named = data.windows(dir.len()).any(|w| w == dir.as_bytes());
    let secrets: &[&str] = if named { &[] } else { &[&dir] };
    iipsrv_fuzz::check_response(&response, secrets);
});
