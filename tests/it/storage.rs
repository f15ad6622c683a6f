//! Images in object storage, against a real 3-node Garage cluster (tests/it/garage.rs) and a
//! plain HTTP server (nginx's file server): the same fixtures served from files and from
//! storage answer byte for byte the same in every protocol; few round trips; freshness; bad
//! keys; failures.

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
