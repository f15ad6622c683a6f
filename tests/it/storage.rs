//! Images in object storage, against a real 3-node Garage cluster (tests/it/garage.rs) and a
//! plain HTTP server (nginx's file server): the same fixtures served from files and from
//! storage answer byte for byte the same in every protocol; few round trips; freshness; bad
//! keys; failures.

use std::path::Path;
use std::time::Duration;

use super::garage::{self, BUCKET, Garage};
use super::support::{TestServer, fixtures, get};

/// The fixtures tree is uploaded under this key prefix.
const PREFIX: &str = "fix/";

/// Every fixture file, as `(identifier, local path)`, uploaded under [`PREFIX`].
fn upload_fixtures(g: &Garage) {
    g.put(
        &format!("{PREFIX}sample.tif"),
        std::fs::read(fixtures().join("sample.tif")).unwrap(),
    );
    for dir in ["tiff", "jp2", "jpeg", "sequence"] {
        g.upload_dir(&fixtures().join(dir), &format!("{PREFIX}{dir}/"));
    }
}

/// The settings both servers share (so that info.json ids and everything else agree).
const COMMON: &[(&str, &str)] = &[
    ("BASE_URL", "http://iiif.example.org/"),
    ("MAX_IMAGE_CACHE_SIZE", "0"),
];

fn env_for<'a>(extra: &'a [(String, String)], prefix: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = COMMON.to_vec();
    env.push(("FILESYSTEM_PREFIX", prefix));
    env.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env
}

/// The requests compared: every protocol, tiles, info, regions, metadata, errors.
fn requests() -> Vec<String> {
    let images = [
        "sample.tif",
        "tiff/rgb8_jpeg.tif",
        "tiff/rgb8_webp.tif",
        "tiff/rgb8_subifd.tif",
        "tiff/rgb8_bigtiff.tif",
        "tiff/grey8_bigtiff_be.tif",
        "tiff/stack_classic.tif",
        "tiff/stack_subifd.tif",
        "tiff/grey16.tif",
        "tiff/metadata.tif",
        "jp2/rgb8_tiled.jp2",
        "jp2/grey8.jp2",
        "jp2/rgb8.j2k",
        "jpeg/rgb.jpg",
        "jpeg/progressive.jpg",
        "jpeg/exif_xmp.jpg",
        "sequence/obj",
        "tiff/bad_offsets.tif",
        "tiff/rgb8_strips.tif",
        "jp2/bad_truncated.jp2",
        "jpeg/bad_truncated.jpg",
        "missing.tif",
    ];
    let mut out = Vec::new();
    for id in images {
        out.extend([
            format!("FIF={id}&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number&OBJ=Horizontal-views&OBJ=Vertical-views"),
            format!("FIF={id}&OBJ=Title&OBJ=Creator&OBJ=Date&OBJ=Description"),
            format!("FIF={id}&JTL=0,0"),
            format!("FIF={id}&JTL=1,0"),
            format!("FIF={id}&JTL=2,1"),
            format!("FIF={id}&PTL=1,0"),
            format!("FIF={id}&WID=120&CVT=jpeg"),
            format!("FIF={id}&RGN=0.25,0.25,0.5,0.5&HEI=90&CVT=png"),
            format!("IIIF={id}/info.json"),
            format!("IIIF={id}/full/max/0/default.jpg"),
            format!("IIIF={id}/10,20,70,50/35,/0/default.png"),
            format!("IIIF={id}/full/64,/90/gray.jpg"),
            format!("Zoomify={id}/ImageProperties.xml"),
            format!("Zoomify={id}/TileGroup0/0-0-0.jpg"),
            format!("Zoomify={id}/TileGroup0/1-1-0.jpg"),
            format!("DeepZoom={id}.dzi"),
            format!("DeepZoom={id}_files/0/0_0.jpg"),
            format!("DeepZoom={id}_files/7/0_0.jpg"),
            format!("DeepZoom={id}_files/9/1_0.jpg"),
        ]);
    }
    // Stack pages and sequence views.
    out.extend([
        "FIF=tiff/stack_classic.tif&SDS=1,90&JTL=0,0".to_string(),
        "FIF=tiff/stack_subifd.tif&SDS=1,90&JTL=1,0".to_string(),
        "FIF=sequence/obj&SDS=30,60&JTL=0,0".to_string(),
        "FIF=sequence/obj&SDS=60,90&WID=50&CVT=jpeg".to_string(),
        "FIF=sequence/obj&SDS=90,90&JTL=0,0".to_string(),
    ]);
    out
}

/// The parts of an answer that must agree: status, content type, body. (`Last-Modified`
/// differs by design: a file's mtime against the object's upload time.)
fn answer(agent: &ureq::Agent, base: &str, query: &str) -> (u16, Option<String>, Vec<u8>) {
    let (status, headers, body) = get(agent, &format!("{base}/?{query}"));
    let ct = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone());
    (status, ct, body)
}

#[test]
fn every_protocol_answers_the_same_from_garage_as_from_files() {
    let Some(bin) = garage::binary() else { return };
    let g = Garage::start(&bin);
    upload_fixtures(&g);
    let local_prefix = format!("{}/", fixtures().display());
    let remote_prefix = format!("s3://{BUCKET}/{PREFIX}");
    let aws = g.env(1);
    let local = TestServer::http(&env_for(&[], &local_prefix));
    let remote = TestServer::http(&env_for(&aws, &remote_prefix));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let (lb, rb) = (
        format!("http://{}", local.tcp_addr()),
        format!("http://{}", remote.tcp_addr()),
    );
    let mut ok = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for q in requests() {
        let l = answer(&agent, &lb, &q);
        let r = answer(&agent, &rb, &q);
        assert_eq!(
            (l.0, &l.1),
            (r.0, &r.1),
            "{q}: status or type differ; remote body {:?}\n{}",
            String::from_utf8_lossy(&r.2),
            remote.log()
        );
        assert!(
            l.2 == r.2,
            "{q}: bodies differ ({} and {} bytes)",
            l.2.len(),
            r.2.len()
        );
        *statuses.entry(l.0).or_insert(0) += 1;
        ok += 1;
    }
    // The comparison covers answers, not only errors.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 250,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&404).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );
    eprintln!("{ok} answers identical: {statuses:?}");
    // The remote server's log names no secret.
    assert!(!remote.log().contains(garage::SECRET));
}

/// The number of log lines containing `what`.
fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

/// A tiled pyramid TIFF with JPEG tiles, large enough that its tiles lie beyond the header's
/// read-ahead (made with vips from noise, so tiles do not compress to nothing).
fn large_jpeg_pyramid(dir: &Path, size: u32) -> Vec<u8> {
    let noise = dir.join(format!("noise{size}.v"));
    let tif = dir.join(format!("large{size}.tif"));
    let run = |args: &[&str]| {
        let st = std::process::Command::new("vips")
            .args(args)
            .status()
            .expect("vips is installed (apt-get install libvips-tools)");
        assert!(st.success(), "vips {args:?}");
    };
    let size = size.to_string();
    run(&["gaussnoise", noise.to_str().unwrap(), &size, &size]);
    run(&[
        "tiffsave",
        noise.to_str().unwrap(),
        tif.to_str().unwrap(),
        "--tile",
        "--pyramid",
        "--compression",
        "jpeg",
        "--tile-width",
        "256",
        "--tile-height",
        "256",
    ]);
    std::fs::read(tif).unwrap()
}

/// The variables that reach a Garage cluster (credentials, endpoint, region).
type AwsEnv = Vec<(String, String)>;

/// A Garage cluster holding the 2048² noise pyramid (over 1 MiB) at `dir/large.tif`, its
/// credentials, and the `s3://` prefix of `dir`; `None` without Garage.
fn garage_with_large_pyramid(dir: &str) -> Option<(Garage, AwsEnv, String)> {
    let bin = garage::binary()?;
    let g = Garage::start(&bin);
    let work = tempfile::tempdir().unwrap();
    let large = large_jpeg_pyramid(work.path(), 2048);
    assert!(large.len() > 1 << 20, "{} bytes", large.len());
    g.put(&format!("{dir}/large.tif"), large);
    let aws = g.env(0);
    Some((g, aws, format!("s3://{BUCKET}/{dir}/")))
}

#[test]
fn tiles_cost_one_ranged_get_and_regions_fetch_their_tiles_in_one_pass() {
    let Some((_garage, aws, prefix)) = garage_with_large_pyramid("t") else {
        return;
    };
    let mut env = env_for(&aws, &prefix);
    env.push(("IIPSRV_STORAGE_REVALIDATE", "3600"));
    let s = TestServer::http(&env);
    let agent = ureq::AgentBuilder::new().build();
    let base = format!("http://{}", s.tcp_addr());
    let fetch = |q: &str| {
        let (status, _, body) = get(&agent, &format!("{base}/?{q}"));
        assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
        body
    };
    let gets = || count(&s.log(), "Storage :: GET ");
    let heads = || count(&s.log(), "Storage :: HEAD ");

    // Opening: one HEAD, then the header and IFDs in a few GETs.
    fetch("FIF=large.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Resolution-number");
    let (open_gets, open_heads) = (gets(), heads());
    assert_eq!(open_heads, 1, "{}", s.log());
    assert!(
        (1..=5).contains(&open_gets),
        "opening took {open_gets} GETs"
    );

    // A pass-through tile of the full resolution: one ranged GET each, no HEAD (the opened
    // source stays cached, the description is trusted for IIPSRV_STORAGE_REVALIDATE).
    let full = 3; // 2048 → 1024 → 512 → 256: IIP resolution 3 is full size
    // (The first tiles came with the header's read-ahead.)
    for tile in [18, 27, 36, 45, 54] {
        let before = gets();
        let body = fetch(&format!("FIF=large.tif&JTL={full},{tile}"));
        assert!(body.starts_with(&[0xFF, 0xD8]));
        let log = s.log();
        assert_eq!(
            gets() - before,
            1,
            "tile {tile}: {}",
            &log[log.len().saturating_sub(3000)..]
        );
    }
    assert_eq!(heads(), 1);
    // Tiles already fetched (in cached blocks) cost nothing.
    let before = gets();
    fetch(&format!("FIF=large.tif&JTL={full},18"));
    assert_eq!(gets(), before);

    // A region over 4×2 uncached tiles: one pass records them all, the next one answers;
    // at most one GET per tile (neighbouring tiles share one).
    let before = gets();
    fetch("FIF=large.tif&RGN=0,0.625,0.5,0.125&WID=1024&CVT=jpeg");
    let region_gets = gets() - before;
    assert!((1..=4).contains(&region_gets), "{region_gets} GETs");
    let log = s.log();
    let last = log.lines().rfind(|l| l.contains("answered in pass"));
    assert_eq!(last, Some("Storage :: answered in pass 2"), "{log}");
    assert_eq!(count(&log, "blocking read"), 0, "{log}");
}

#[test]
fn a_region_larger_than_the_block_cache_is_answered_in_the_second_pass() {
    // The blocks fetched for a request stay with it: with 1 MiB of shared block cache and a
    // region over 2048² of noise (more than 1 MiB of tiles), the second pass must not find
    // its blocks evicted by its own later fetches (or by other requests) and fetch again.
    let Some((_garage, aws, prefix)) = garage_with_large_pyramid("r") else {
        return;
    };
    let mut env = env_for(&aws, &prefix);
    env.extend([
        ("IIPSRV_STORAGE_REVALIDATE", "3600"),
        ("IIPSRV_STORAGE_CACHE_SIZE", "1"),
    ]);
    let s = TestServer::http(&env);
    let agent = ureq::AgentBuilder::new().build();
    let (status, _, body) = get(
        &agent,
        &format!("http://{}/?FIF=large.tif&WID=2048&CVT=jpeg", s.tcp_addr()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let log = s.log();
    let last = log.lines().rfind(|l| l.contains("answered in pass"));
    assert_eq!(last, Some("Storage :: answered in pass 2"), "{log}");
    assert_eq!(count(&log, "blocking read"), 0, "{log}");
    assert_eq!(
        count(&log, "reading the rest with blocking calls"),
        0,
        "{log}"
    );
}

#[test]
fn changed_objects_are_picked_up_and_deleted_ones_are_404() {
    let Some(bin) = garage::binary() else { return };
    let g = Garage::start(&bin);
    let a = std::fs::read(fixtures().join("sample.tif")).unwrap();
    let b = std::fs::read(fixtures().join("tiff/rgb8_jpeg.tif")).unwrap();
    g.put("c/img.tif", a.clone());
    let aws = g.env(2);
    let prefix = format!("s3://{BUCKET}/c/");
    let mut env = env_for(&aws, &prefix);
    env.push(("IIPSRV_STORAGE_REVALIDATE", "1"));
    env.push(("MAX_IMAGE_CACHE_SIZE", "10"));
    let s = TestServer::http(&env);
    let agent = ureq::AgentBuilder::new().build();
    let base = format!("http://{}", s.tcp_addr());
    let size = |agent: &ureq::Agent| {
        let (status, _, body) = get(agent, &format!("{base}/?FIF=img.tif&OBJ=Max-size"));
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let (st, first) = size(&agent);
    assert_eq!(st, 200);
    assert!(first.contains("1000 1000"), "{first}");
    let tile_a = get(&agent, &format!("{base}/?FIF=img.tif&JTL=0,0")).2;

    // Replaced by an image of another size: picked up once the description is revalidated.
    g.put("c/img.tif", b.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let (st, second) = size(&agent);
    assert_eq!(st, 200);
    assert_ne!(first, second, "the new object is described");
    let tile_b = get(&agent, &format!("{base}/?FIF=img.tif&JTL=0,0")).2;
    assert_ne!(tile_a, tile_b, "no tile of the old object is served");

    // Deleted: 404, as a missing file.
    g.delete("c/img.tif");
    std::thread::sleep(Duration::from_millis(1500));
    let (st, body) = size(&agent);
    assert_eq!(st, 404, "{body}");
    assert!(
        body.contains("img.tif is neither a file nor part of an image sequence"),
        "{body}"
    );
}

#[test]
fn an_object_replaced_between_two_requests_is_never_mixed_with_the_old_one() {
    let Some(bin) = garage::binary() else { return };
    let g = Garage::start(&bin);
    let work = tempfile::tempdir().unwrap();
    let large = large_jpeg_pyramid(work.path(), 2048);
    let other = large_jpeg_pyramid(work.path(), 1500);
    g.put("r/img.tif", large);
    let aws = g.env(0);
    let prefix = format!("s3://{BUCKET}/r/");
    let mut env = env_for(&aws, &prefix);
    // The description is trusted for an hour: only the ETag check on reads notices.
    env.push(("IIPSRV_STORAGE_REVALIDATE", "3600"));
    let s = TestServer::http(&env);
    let agent = ureq::AgentBuilder::new().build();
    let base = format!("http://{}", s.tcp_addr());
    let (st, _, _) = get(&agent, &format!("{base}/?FIF=img.tif&OBJ=Max-size"));
    assert_eq!(st, 200);
    g.put("r/img.tif", other.clone());
    // A tile not read before (its bytes lie beyond what opening fetched): the read names the
    // old ETag, storage refuses it, the request reopens the new object and answers from it
    // (a file server gives the same answer).
    let (st, _, remote_tile) = get(&agent, &format!("{base}/?FIF=img.tif&JTL=3,20"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("img.tif"), &other).unwrap();
    let local_prefix = format!("{}/", dir.path().display());
    let local = TestServer::http(&env_for(&[], &local_prefix));
    let (lst, _, local_tile) = get(
        &agent,
        &format!("http://{}/?FIF=img.tif&JTL=3,20", local.tcp_addr()),
    );
    assert_eq!((st, lst), (200, 200), "{}", s.log());
    assert!(
        remote_tile == local_tile,
        "the answer is the new object's tile"
    );
}

#[test]
fn bad_keys_and_bad_objects_answer_as_files_do_and_name_no_bucket() {
    let Some(bin) = garage::binary() else { return };
    let g = Garage::start(&bin);
    let sample = std::fs::read(fixtures().join("sample.tif")).unwrap();
    let jp2 = std::fs::read(fixtures().join("jp2/rgb8_tiled.jp2")).unwrap();
    // The same tree as objects and as files: a good image, text, truncated images.
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("k/sample.tif", sample.clone()),
        ("k/text.tif", b"hello, this is not an image at all".to_vec()),
        ("k/half.tif", sample[..sample.len() / 2].to_vec()),
        ("k/head.tif", sample[..600].to_vec()),
        ("k/half.jp2", jp2[..jp2.len() / 2].to_vec()),
        ("k/empty.tif", Vec::new()),
        ("secret.tif", sample.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("k")).unwrap();
    for (key, bytes) in &files {
        g.put(key, bytes.clone());
        std::fs::write(dir.path().join(key), bytes).unwrap();
    }
    let aws = g.env(0);
    let remote_prefix = format!("s3://{BUCKET}/k/");
    let local_prefix = format!("{}/k/", dir.path().display());
    let remote = TestServer::http(&env_for(&aws, &remote_prefix));
    let local = TestServer::http(&env_for(&[], &local_prefix));
    let agent = ureq::AgentBuilder::new().build();
    let ask = |s: &TestServer, q: &str| get(&agent, &format!("http://{}/?{q}", s.tcp_addr()));
    for id in [
        "sample.tif",
        "text.tif",
        "half.tif",
        "head.tif",
        "half.jp2",
        "empty.tif",
        "nothing.tif",
    ] {
        for q in [
            format!("FIF={id}&OBJ=Max-size"),
            format!("FIF={id}&JTL=2,5"),
            format!("IIIF={id}/info.json"),
            format!("IIIF={id}/full/200,/0/default.jpg"),
        ] {
            let (ls, _, lb) = ask(&local, &q);
            let (rs, _, rb) = ask(&remote, &q);
            assert_eq!(ls, rs, "{q}: {}", String::from_utf8_lossy(&rb));
            assert!(
                lb == rb,
                "{q}: {} / {}",
                String::from_utf8_lossy(&lb),
                String::from_utf8_lossy(&rb)
            );
        }
    }
    // Keys that try to leave the prefix, or that carry URL syntax, name nothing: 404, and
    // never the object outside the prefix.
    for id in [
        "../secret.tif",
        "..%2Fsecret.tif",
        "%2e%2e/secret.tif",
        "%2E%2E%2Fsecret.tif",
        "/secret.tif",
        "%2Fsecret.tif",
        "./sample.tif",
        "sub//sample.tif",
        "sample.tif%3Fx=1",
        "sample.tif%23frag",
        "sample.tif%00",
        "%0asample.tif",
    ] {
        let (st, _, body) = ask(&remote, &format!("FIF={id}&OBJ=Max-size"));
        let text = String::from_utf8_lossy(&body);
        assert!(
            matches!(st, 400 | 404) || text.contains("1000 1000") && !id.contains("secret"),
            "{id}: {st} {text}"
        );
        if id.contains("secret") {
            assert_ne!(st, 200, "{id} reached outside the prefix");
        }
        for leak in [BUCKET, "127.0.0.1", garage::KEY_ID, garage::SECRET] {
            assert!(
                !text.contains(leak),
                "{id}: the answer names {leak}: {text}"
            );
        }
    }
}

/// How the misbehaving storage server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    Error500,
    Hang,
    WrongRange,
    ShortBody,
}

/// A small HTTP file server for the `http://` source that can be told to misbehave. One
/// request per connection; its thread ends with the test process.
struct Misbehaving {
    port: u16,
    mode: std::sync::Arc<std::sync::Mutex<Mode>>,
    /// Requests received.
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Misbehaving {
    fn start(files: Vec<(&'static str, Vec<u8>)>) -> Misbehaving {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = std::sync::Arc::new(std::sync::Mutex::new(Mode::Good));
        let m = mode.clone();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        let files = std::sync::Arc::new(files);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (files, mode) = (files.clone(), *m.lock().unwrap());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&req).into_owned();
                    let mut words = text.split_whitespace();
                    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let range = text.lines().find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("range: bytes=")
                            .map(str::to_string)
                    });
                    let file = files.iter().find(|(name, _)| path == format!("/{name}"));
                    let reply = |conn: &mut std::net::TcpStream, head: String, body: &[u8]| {
                        let _ = conn.write_all(head.as_bytes());
                        let _ = conn.write_all(body);
                    };
                    match (mode, file) {
                        (Mode::Hang, _) => std::thread::sleep(Duration::from_secs(30)),
                        (Mode::Error500, _) => reply(&mut conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(), b""),
                        (_, None) => reply(&mut conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(), b""),
                        (_, Some((_, bytes))) => {
                            let common = "ETag: \"v1\"\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n";
                            if method == "HEAD" {
                                return reply(&mut conn, format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{common}\r\n", bytes.len()), b"");
                            }
                            let (a, b) = match range.and_then(|r| {
                                let (a, b) = r.trim().split_once('-')?;
                                Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                            }) {
                                Some((a, b)) => (a, b.min(bytes.len() - 1)),
                                None => (0, bytes.len() - 1),
                            };
                            let body = &bytes[a..=b];
                            let (shown_a, shown_b, sent) = match mode {
                                Mode::WrongRange => (a + 1, b + 1, body),
                                Mode::ShortBody => (a, b, &body[..body.len() / 2]),
                                _ => (a, b, body),
                            };
                            reply(&mut conn, format!("HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {shown_a}-{shown_b}/{}\r\n{common}\r\n", body.len(), bytes.len()), sent);
                        }
                    }
                });
            }
        });
        Misbehaving { port, mode, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

#[test]
fn storage_failures_are_5xx_naming_no_endpoint_cached_tiles_keep_coming_and_it_recovers() {
    let sample = std::fs::read(fixtures().join("sample.tif")).unwrap();
    let files: Vec<(&'static str, Vec<u8>)> = ["a.tif", "b.tif", "c.tif", "d.tif", "e.tif"]
        .into_iter()
        .map(|n| (n, sample.clone()))
        .collect();
    let mock = Misbehaving::start(files);
    let prefix = format!("http://127.0.0.1:{}/", mock.port);
    let s = TestServer::http(&[
        ("FILESYSTEM_PREFIX", prefix.as_str()),
        ("IIPSRV_STORAGE_TIMEOUT", "3000"),
        ("IIPSRV_STORAGE_RETRIES", "1"),
        ("IIPSRV_STORAGE_REVALIDATE", "3600"),
        ("IIPSRV_WORKERS", "1"),
    ]);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let base = format!("http://{}", s.tcp_addr());
    let ask = |q: &str| {
        let (st, _, body) = get(&agent, &format!("{base}/?{q}"));
        let text = String::from_utf8_lossy(&body).into_owned();
        for leak in ["127.0.0.1", &mock.port.to_string()] {
            assert!(!text.contains(leak), "{q}: the answer names {leak}: {text}");
        }
        (st, text)
    };
    assert_eq!(ask("FIF=a.tif&JTL=1,0").0, 200);

    mock.set(Mode::Error500);
    assert_eq!(
        ask("FIF=a.tif&JTL=1,0").0,
        200,
        "a cached tile is still served"
    );
    let before = mock.hits();
    let (st, text) = ask("FIF=b.tif&JTL=1,0");
    assert_eq!(
        (st, text.as_str()),
        (502, "Image storage answered with an error")
    );
    // Retries are bounded: the description asked once and retried once (RETRIES=1).
    assert_eq!(mock.hits() - before, 2, "{}", s.log());

    mock.set(Mode::WrongRange);
    assert_eq!(ask("FIF=c.tif&JTL=1,0").0, 502, "a wrong Content-Range");
    mock.set(Mode::ShortBody);
    assert_eq!(ask("FIF=d.tif&JTL=1,0").0, 502, "a short body");

    // A storage that never answers: 504 after the timeout; meanwhile the only worker serves
    // other requests (waiting for storage never holds it).
    mock.set(Mode::Hang);
    let (tx, rx) = std::sync::mpsc::channel();
    let hung = {
        let url = format!("{base}/?FIF=e.tif&JTL=1,0");
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            let (st, _, body) = get(&agent, &url);
            tx.send(()).unwrap();
            (st, String::from_utf8_lossy(&body).into_owned())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ask("FIF=a.tif&JTL=1,0").0, 200);
    assert!(
        rx.try_recv().is_err(),
        "the cached tile was answered while the other request still waited for storage"
    );
    let (st, text) = hung.join().unwrap();
    assert_eq!(
        (st, text.as_str()),
        (504, "Image storage did not answer in time")
    );

    // Storage is back: the same images are served.
    mock.set(Mode::Good);
    for id in ["b.tif", "c.tif", "d.tif", "e.tif"] {
        assert_eq!(
            ask(&format!("FIF={id}&JTL=1,0")).0,
            200,
            "{id} after recovery"
        );
    }
    assert!(!s.log().contains("panicked"));

    // Storage that cannot be reached at all: 503.
    let closed = format!("http://127.0.0.1:{}/", super::support::free_port());
    let down = TestServer::http(&[
        ("FILESYSTEM_PREFIX", closed.as_str()),
        ("IIPSRV_STORAGE_RETRIES", "1"),
    ]);
    let (st, _, body) = get(
        &agent,
        &format!("http://{}/?FIF=a.tif&JTL=1,0", down.tcp_addr()),
    );
    assert_eq!(
        (st, String::from_utf8_lossy(&body).as_ref()),
        (503, "Image storage is unavailable")
    );
}

/// What a load of requests saw.
#[derive(Debug, Default)]
pub(super) struct LoadResult {
    pub answered: usize,
    /// Answers that were not the expected ones: (query, status, start of the body).
    pub wrong: Vec<(String, u16, String)>,
}

/// `clients` threads ask `base` for the `(query, expected body)` pairs round robin until
/// `stop` is set.
pub(super) fn load(
    base: &str,
    expected: std::sync::Arc<Vec<(String, Vec<u8>)>>,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<LoadResult>> {
    (0..clients)
        .map(|c| {
            let (base, expected, stop) = (base.to_string(), expected.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(60))
                    .build();
                let mut out = LoadResult::default();
                let mut i = c;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (q, want) = &expected[i % expected.len()];
                    let (st, _, body) = get(&agent, &format!("{base}{q}"));
                    if st != 200 || &body != want {
                        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
                        out.wrong.push((q.clone(), st, text.into_owned()));
                    }
                    out.answered += 1;
                    i += clients;
                }
                out
            })
        })
        .collect()
}

pub(super) fn total(handles: Vec<std::thread::JoinHandle<LoadResult>>) -> LoadResult {
    let mut all = LoadResult::default();
    for h in handles {
        let r = h.join().unwrap();
        all.answered += r.answered;
        all.wrong.extend(r.wrong);
    }
    all
}

#[test]
fn a_load_of_tiles_sees_no_error_when_one_garage_node_stops() {
    let Some(bin) = garage::binary() else { return };
    let mut g = Garage::start(&bin);
    let work = tempfile::tempdir().unwrap();
    g.put("n/large.tif", large_jpeg_pyramid(work.path(), 2048));
    let aws = g.env(0);
    let prefix = format!("s3://{BUCKET}/n/");
    let mut env = env_for(&aws, &prefix);
    // Every request asks storage: descriptions are never trusted, 1 MiB of blocks is kept
    // (the image's full resolution is larger), no tile cache.
    env.extend([
        ("IIPSRV_STORAGE_REVALIDATE", "0"),
        ("IIPSRV_STORAGE_CACHE_SIZE", "1"),
        ("IIPSRV_STORAGE_TIMEOUT", "5000"),
    ]);
    let s = TestServer::http(&env);
    let base = format!("http://{}/?", s.tcp_addr());
    let agent = ureq::AgentBuilder::new().build();
    // The expected tiles, read while the cluster is whole: the 64 tiles of the full
    // resolution (IIP resolution 3: 2048 px in tiles of 256).
    let expected: Vec<(String, Vec<u8>)> = (0..64)
        .map(|t| {
            let q = format!("FIF=large.tif&JTL=3,{t}");
            let (st, _, body) = get(&agent, &format!("{base}{q}"));
            assert_eq!(st, 200, "{q}: {}", String::from_utf8_lossy(&body));
            (q, body)
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles = load(&base, std::sync::Arc::new(expected), 8, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let gets_before = count(&s.log(), "Storage :: GET ");
    // A node that holds a replica of everything (replication factor 3), not the one iipsrv
    // talks to: reads go on with the two others (Garage's quorum is 2 of 3).
    g.stop(1);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let result = total(handles);
    let gets_after = count(&s.log(), "Storage :: GET ") - gets_before;
    assert!(
        result.wrong.is_empty(),
        "{} of {} answers wrong: {:?}\n{}",
        result.wrong.len(),
        result.answered,
        &result.wrong[..result.wrong.len().min(5)],
        g.logs()
    );
    assert!(result.answered > 64, "{} answers", result.answered);
    assert!(
        gets_after > 10,
        "the load kept reading from storage after the stop ({gets_after} GETs)"
    );
}

#[test]
fn the_http_source_reads_through_nginx_with_range_requests() {
    if !super::support::require("nginx", "nginx-light") {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let access = logs.path().join("access.log");
    let root = fixtures();
    // nginx's own file server (ETag, Last-Modified, Range); no WebDAV, so no listings.
    let nginx = super::support::Nginx::start(
        &super::support::Addr::Tcp("127.0.0.1:9".parse().unwrap()),
        &format!(
            "    location /images/ {{\n      alias {}/;\n      access_log {};\n    }}\n",
            root.display(),
            access.display()
        ),
    );
    let local_prefix = format!("{}/", root.display());
    let remote_prefix = nginx.url("/images/");
    let local = TestServer::http(&env_for(&[], &local_prefix));
    let remote = TestServer::http(&env_for(&[], &remote_prefix));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let (lb, rb) = (
        format!("http://{}", local.tcp_addr()),
        format!("http://{}", remote.tcp_addr()),
    );
    let mut ok = 0;
    // Everything but image sequences (found by listing, which a plain file server cannot).
    for q in requests().into_iter().filter(|q| !q.contains("sequence/")) {
        let l = answer(&agent, &lb, &q);
        let r = answer(&agent, &rb, &q);
        assert_eq!(
            (l.0, &l.1),
            (r.0, &r.1),
            "{q}: status or type differ; remote body {:?}\n{}",
            String::from_utf8_lossy(&r.2),
            remote.log()
        );
        assert!(l.2 == r.2, "{q}: bodies differ");
        ok += (l.0 == 200) as usize;
    }
    assert!(ok > 250, "{ok} answers of 200");
    // The bytes came as ranges (206), never as whole files (200) of the images.
    let log = std::fs::read_to_string(&access).unwrap();
    let ranged = log.lines().filter(|l| l.contains("\" 206 ")).count();
    let whole = log
        .lines()
        .filter(|l| l.contains("\"GET ") && l.contains("\" 200 "))
        .count();
    assert!(ranged >= 15, "{ranged} ranged answers:\n{log}");
    assert_eq!(whole, 0, "{log}");
}
