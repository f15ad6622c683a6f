//! What viewers ask for: the exact tile URLs OpenSeadragon 6 computes for IIIF 2 and 3, DZI
//! and Zoomify sources, and Leaflet-IIIF's (rounding up) URLs, checked for the size of every
//! tile at every level, edge tiles included. Also the DZI and ImageProperties.xml documents,
//! against their spec text and Debian's iipsrv 1.1, and out-of-range tiles.

use crate::common::fcgi::Reply;
use crate::iiif::{
    Images, Reference, fetch, header, iiif_server, image_size, json_numbers_after,
    reference_available, region_export_available,
};
use crate::support::TestServer;

/// One tile URL and the size the viewer expects.
struct Expect {
    url: String,
    size: (u32, u32),
}

/// How the URLs of one source were answered.
#[derive(Debug, Default)]
struct Tally {
    tiles: usize,
    regions: usize,
    not_implemented: usize,
}

/// Fetch every URL; check the size; count tile-path, region and 501 answers. A 501 is
/// accepted only when this build has no region export and the request is not one stored tile.
/// `fallback`: without region export, DeepZoom and Zoomify send the stored tile of a level
/// whose size was rounded the other way (one pixel off at the edge) instead of a 501.
fn check(what: &str, expects: &[Expect], regions: bool, fallback: bool) -> Tally {
    assert!(!expects.is_empty(), "{what}: no URLs");
    let mut t = Tally::default();
    for e in expects {
        let (status, h, body) = fetch(&e.url, &[]);
        if status == 501 && !regions {
            t.not_implemented += 1;
            continue;
        }
        assert_eq!(
            status,
            200,
            "{what}: {}: {}",
            e.url,
            String::from_utf8_lossy(&body)
        );
        let size = image_size(&body).unwrap();
        if fallback && !regions {
            let near = |a: u32, b: u32| a.abs_diff(b) <= 1;
            assert!(
                near(size.0, e.size.0) && near(size.1, e.size.1),
                "{what}: {}: {size:?} for {:?}",
                e.url,
                e.size
            );
        } else {
            assert_eq!(size, e.size, "{what}: {}", e.url);
        }
        // Over HTTP every response has a length; the tile path has no disposition.
        if header(&h, "Content-Disposition").is_none() {
            t.tiles += 1;
        } else {
            t.regions += 1;
        }
    }
    eprintln!("{what}: {} URLs, {t:?}", expects.len());
    t
}

/// What an info.json says, as viewers read it.
struct Info {
    width: u32,
    height: u32,
    tile_w: u32,
    tile_h: u32,
    factors: Vec<u32>,
    sizes: Vec<(u32, u32)>,
}

fn read_info(body: &str) -> Info {
    let dims = |key: &str| -> u32 {
        let start = body.find(key).unwrap() + key.len();
        body[start..]
            .split(|c: char| !c.is_ascii_digit())
            .find(|t| !t.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let sizes_start = body.find("\"sizes\"").unwrap();
    let sizes_end = body[sizes_start..].find(']').unwrap() + sizes_start;
    let nums: Vec<u32> = body[sizes_start..sizes_end]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().unwrap())
        .collect();
    let tiles = &body[body.find("\"tiles\"").unwrap()..];
    Info {
        width: dims("\"width\" : "),
        height: dims("\"height\" : "),
        tile_w: {
            let s = tiles.find("\"width\" : ").unwrap() + 10;
            tiles[s..]
                .split(',')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        },
        tile_h: {
            let s = tiles.find("\"height\" : ").unwrap() + 11;
            tiles[s..]
                .split(',')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        },
        factors: json_numbers_after(body, "\"scaleFactors\""),
        sizes: nums.chunks(2).map(|c| (c[0], c[1])).collect(),
    }
}

/// The IIIF size `w,` gives for a region (the height rounded from the exact ratio).
fn by_width(w: u32, rw: u32, rh: u32) -> (u32, u32) {
    (w, ((w as f64) * (rh as f64) / (rw as f64)).round() as u32)
}

/// OpenSeadragon 6 `IIIFTileSource.getTileUrl` for every tile of every level.
fn osd_iiif(base: &str, info: &Info, version: u32) -> Vec<Expect> {
    let (w, h, tw, th) = (info.width, info.height, info.tile_w, info.tile_h);
    let max_sf = *info.factors.iter().max().unwrap();
    let max_level = (max_sf as f64).log2().round() as u32;
    // levelSizes: the sizes (plus the full size) if they match the scale factors.
    let mut sorted = info.sizes.clone();
    sorted.sort();
    if sorted.last().is_some_and(|l| l.0 < w && l.1 < h) {
        sorted.push((w, h));
    }
    let level_sizes = (sorted.len() as u32 == max_level + 1
        && (sorted.len() != info.factors.len()
            || sorted.iter().enumerate().all(|(i, s)| {
                let f = info.factors[sorted.len() - i - 1] as f64;
                ((w as f64) / (s.0 as f64)).round() == f && ((h as f64) / (s.1 as f64)).round() == f
            })))
    .then_some(sorted);
    let mut out = Vec::new();
    for level in 0..=max_level {
        let scale = 0.5f64.powi((max_level - level) as i32);
        let (lw, lh) = match &level_sizes {
            Some(s) => s[level as usize],
            None => (
                ((w as f64) * scale).ceil() as u32,
                ((h as f64) * scale).ceil() as u32,
            ),
        };
        let (sw, sh) = (
            ((tw as f64) / scale).round() as u32,
            ((th as f64) / scale).round() as u32,
        );
        let q = "default.jpg";
        if lw < tw && lh < th {
            let (size, expect) = if version == 2 && lw == w {
                ("full".to_string(), (w, h))
            } else if version == 3 && lw == w && lh == h {
                ("max".to_string(), (w, h))
            } else if version == 3 {
                (format!("{lw},{lh}"), (lw, lh))
            } else {
                (format!("{lw},"), by_width(lw, w, h))
            };
            out.push(Expect {
                url: format!("{base}/full/{size}/0/{q}"),
                size: expect,
            });
            continue;
        }
        let (nx, ny) = match &level_sizes {
            Some(_) => (lw.div_ceil(tw), lh.div_ceil(th)),
            None => (
                ((scale * w as f64) / tw as f64).ceil() as u32,
                ((scale * h as f64) / th as f64).ceil() as u32,
            ),
        };
        for y in 0..ny {
            for x in 0..nx {
                let (rx, ry) = (x * sw, y * sh);
                let (rw, rh) = (sw.min(w - rx), sh.min(h - ry));
                let region = if x == 0 && y == 0 && rw == w && rh == h {
                    "full".to_string()
                } else {
                    format!("{rx},{ry},{rw},{rh}")
                };
                let (zw, zh) = (tw.min(lw - x * tw), th.min(lh - y * th));
                let (size, expect) = if version == 2 && zw == w {
                    ("full".to_string(), (rw, rh))
                } else if version == 3 && zw == w && zh == h {
                    ("max".to_string(), (rw, rh))
                } else {
                    (format!("{zw},{zh}"), (zw, zh))
                };
                out.push(Expect {
                    url: format!("{base}/{region}/{size}/0/{q}"),
                    size: expect,
                });
            }
        }
    }
    out
}

/// Leaflet-IIIF: `w,` sizes rounded up (`w,h` for ImageService3), levels by `ceil(log2)`.
fn leaflet(base: &str, info: &Info, version: u32) -> Vec<Expect> {
    let (w, h, ts) = (info.width, info.height, info.tile_w);
    let ceil_log2 = |x: f64| x.log2().ceil() as i32;
    let max_zoom = ceil_log2(w as f64 / ts as f64)
        .max(ceil_log2(h as f64 / ts as f64))
        .max(0) as u32;
    let mut out = Vec::new();
    for z in 0..=max_zoom {
        let scale = 1u32 << (max_zoom - z);
        let (lw, lh) = (w.div_ceil(scale), h.div_ceil(scale));
        let base_size = ts * scale;
        for y in 0..lh.div_ceil(ts) {
            for x in 0..lw.div_ceil(ts) {
                let (minx, miny) = (x * base_size, y * base_size);
                let (xd, yd) = (
                    (minx + base_size).min(w) - minx,
                    (miny + base_size).min(h) - miny,
                );
                let sw = xd.div_ceil(scale);
                let (size, expect) = if version == 3 {
                    let sh = yd.div_ceil(scale);
                    (format!("{sw},{sh}"), (sw, sh))
                } else {
                    (format!("{sw},"), by_width(sw, xd, yd))
                };
                out.push(Expect {
                    url: format!("{base}/{minx},{miny},{xd},{yd}/{size}/0/default.jpg"),
                    size: expect,
                });
            }
        }
    }
    out
}

/// OpenSeadragon's DziTileSource: levels 0…ceil(log2(max)), `ceil` sizes, overlap 0.
fn osd_dzi(files: &str, w: u32, h: u32, ts: u32) -> Vec<Expect> {
    let max_level = (w.max(h) as f64).log2().ceil() as u32;
    let mut out = Vec::new();
    for level in 0..=max_level {
        let scale = 0.5f64.powi((max_level - level) as i32);
        let (lw, lh) = (
            ((w as f64) * scale).ceil() as u32,
            ((h as f64) * scale).ceil() as u32,
        );
        for y in 0..lh.div_ceil(ts) {
            for x in 0..lw.div_ceil(ts) {
                out.push(Expect {
                    url: format!("{files}{level}/{x}_{y}.jpg"),
                    size: (ts.min(lw - x * ts), ts.min(lh - y * ts)),
                });
            }
        }
    }
    out
}

/// OpenSeadragon's ZoomifyTileSource: floor-halving until both sides fit in a tile; tile
/// groups of 256 tiles counted from tier 0.
fn osd_zoomify(dir: &str, w: u32, h: u32, ts: u32) -> Vec<Expect> {
    let mut sizes = vec![(w, h)];
    let (mut cw, mut ch) = (w, h);
    while cw > ts || ch > ts {
        cw /= 2;
        ch /= 2;
        sizes.push((cw, ch));
    }
    sizes.reverse();
    let mut out = Vec::new();
    let mut before = 0;
    for (level, &(lw, lh)) in sizes.iter().enumerate() {
        let (nx, ny) = (lw.div_ceil(ts), lh.div_ceil(ts));
        for y in 0..ny {
            for x in 0..nx {
                let group = (before + y * nx + x) / 256;
                out.push(Expect {
                    url: format!("{dir}/TileGroup{group}/{level}-{x}-{y}.jpg"),
                    size: (ts.min(lw - x * ts), ts.min(lh - y * ts)),
                });
            }
        }
        before += nx * ny;
    }
    out
}

/// The `key="value"` attributes of a one-element XML document, in order.
fn attributes(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq]
            .rsplit(|c: char| c.is_whitespace() || c == '<')
            .next()
            .unwrap()
            .to_string();
        let after = &rest[eq + 2..];
        let end = after.find('"').unwrap();
        out.push((key, after[..end].to_string()));
        rest = &after[end + 1..];
    }
    out
}

const FILES: [&str; 4] = [
    "sample.tif",
    "rgb8_jpeg.tif",
    "rgb8_single.tif",
    "rgb8_nonsquare.tif",
];

#[test]
fn openseadragon_and_leaflet_iiif_tiles() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let regions = region_export_available(&base);
    for file in FILES {
        let mut sample_tiles = 0;
        let mut total = 0;
        for version in [2u32, 3] {
            let accept = format!(
                "application/ld+json;profile=\"http://iiif.io/api/image/{version}/context.json\""
            );
            let (status, _, body) = fetch(
                &format!("{base}/iiif/{file}/info.json"),
                &[("Accept", &accept)],
            );
            assert_eq!(status, 200);
            let info = read_info(&String::from_utf8(body).unwrap());
            let id = format!("{base}/iiif/{file}");
            let osd = osd_iiif(&id, &info, version);
            let t = check(&format!("{file} OSD IIIF v{version}"), &osd, regions, false);
            sample_tiles += t.tiles;
            total += osd.len();
            let lf = leaflet(&id, &info, version);
            let t = check(
                &format!("{file} Leaflet-IIIF v{version}"),
                &lf,
                regions,
                false,
            );
            if file == "sample.tif" {
                sample_tiles += t.tiles;
                total += lf.len();
            }
        }
        // The validator's image is a regular pyramid: every viewer tile is a stored tile.
        if file == "sample.tif" {
            assert_eq!(
                sample_tiles, total,
                "{file}: not every tile used the tile path"
            );
        }
    }
}

#[test]
fn openseadragon_dzi_and_zoomify_tiles() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let regions = region_export_available(&base);
    for file in FILES {
        let (status, h, dzi) = fetch(&format!("{base}/?DeepZoom={file}.dzi"), &[]);
        assert_eq!(status, 200);
        assert_eq!(header(&h, "Content-Type"), Some("application/xml"));
        let a = attributes(&String::from_utf8(dzi).unwrap());
        let get = |k: &str| -> u32 { a.iter().find(|(n, _)| n == k).unwrap().1.parse().unwrap() };
        let (w, hh, ts) = (get("Width"), get("Height"), get("TileSize"));
        let dz = osd_dzi(&format!("{base}/?DeepZoom={file}_files/"), w, hh, ts);
        let t = check(&format!("{file} OSD DZI"), &dz, regions, true);
        if file == "sample.tif" {
            // Levels 0–7 are below the smallest stored level (250×250): made to size.
            let stored = 1 + 4 + 16;
            assert_eq!(t.tiles, stored, "{file}");
        }

        let (status, _, xml) = fetch(&format!("{base}/?Zoomify={file}/ImageProperties.xml"), &[]);
        assert_eq!(status, 200);
        let a = attributes(&String::from_utf8(xml).unwrap());
        let get = |k: &str| -> u32 { a.iter().find(|(n, _)| n == k).unwrap().1.parse().unwrap() };
        let zs = osd_zoomify(
            &format!("{base}/?Zoomify={file}"),
            get("WIDTH"),
            get("HEIGHT"),
            get("TILESIZE"),
        );
        let t = check(&format!("{file} OSD Zoomify"), &zs, regions, true);
        if file == "sample.tif" {
            assert_eq!(t.tiles, zs.len(), "{file}");
            assert_eq!(get("NUMTILES") as usize, zs.len());
        }
    }
}

#[test]
fn documents_and_out_of_range_tiles() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("CORS", "*")]);
    let (status, h, body) = fetch(&format!("{base}/?DeepZoom=sample.tif.dzi"), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<Image xmlns=\"http://schemas.microsoft.com/deepzoom/2008\" TileSize=\"256\" Overlap=\"0\" Format=\"jpg\"><Size Width=\"1000\" Height=\"1000\"/></Image>"
    );
    assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    assert!(header(&h, "Last-Modified").is_some());
    let (status, h, body) = fetch(
        &format!("{base}/?Zoomify=sample.tif/ImageProperties.xml"),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Content-Type"), Some("application/xml"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "<IMAGE_PROPERTIES WIDTH=\"1000\" HEIGHT=\"1000\" NUMTILES=\"21\" NUMIMAGES=\"1\" VERSION=\"1.8\" TILESIZE=\"256\"/>"
    );
    // Tiles: JPEG whatever the extension, with Content-Length; the same bytes as JTL.
    let (_, h, dz) = fetch(
        &format!("{base}/?DeepZoom=sample.tif_files/10/3_2.png"),
        &[],
    );
    assert_eq!(header(&h, "Content-Type"), Some("image/jpeg"));
    assert_eq!(image_size(&dz), Some((232, 256)));
    let (_, _, jtl) = fetch(&format!("{base}/?FIF=sample.tif&JTL=2,11"), &[]);
    assert_eq!(dz, jtl);
    let (_, _, zf) = fetch(
        &format!("{base}/?Zoomify=sample.tif/TileGroup0/2-3-2.jpg"),
        &[],
    );
    assert_eq!(zf, jtl);
    // The TileGroup number is not checked (as upstream).
    let (_, _, zf) = fetch(
        &format!("{base}/?Zoomify=sample.tif/TileGroup9/2-3-2.jpg"),
        &[],
    );
    assert_eq!(zf, jtl);

    // IIP commands before the protocol apply, JTL's ROT=180 mosaic rule included.
    let (_, _, dz) = fetch(
        &format!("{base}/?ROT=180&DeepZoom=sample.tif_files/10/0_0.jpg"),
        &[],
    );
    let (_, _, jtl) = fetch(&format!("{base}/?FIF=sample.tif&ROT=180&JTL=2,0"), &[]);
    assert_eq!(dz, jtl);
    assert_eq!(image_size(&dz), Some((232, 232)));

    // Out of range: errors, not a neighbouring tile.
    for q in [
        "Zoomify=sample.tif/TileGroup0/2-4-0.jpg",
        "Zoomify=sample.tif/TileGroup0/2-0-4.jpg",
        "Zoomify=sample.tif/TileGroup0/3-0-0.jpg",
        "DeepZoom=sample.tif_files/10/4_0.jpg",
        "DeepZoom=sample.tif_files/11/0_0.jpg",
        "DeepZoom=sample.tif_files/0/1_0.jpg",
    ] {
        let (status, h, _) = fetch(&format!("{base}/?{q}"), &[]);
        assert_eq!(status, 404, "{q}");
        assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    }
    for q in [
        "Zoomify=missing.tif/ImageProperties.xml",
        "DeepZoom=missing.tif.dzi",
    ] {
        let (status, _, body) = fetch(&format!("{base}/?{q}"), &[]);
        assert_eq!(status, 404, "{q}");
        assert_eq!(
            body,
            b"missing.tif is neither a file nor part of an image sequence"
        );
    }
    // If-Modified-Since equal to the file time: 304.
    let (_, h, _) = fetch(&format!("{base}/?DeepZoom=sample.tif.dzi"), &[]);
    let lm = header(&h, "Last-Modified").unwrap().to_string();
    for q in [
        "DeepZoom=sample.tif.dzi",
        "Zoomify=sample.tif/TileGroup0/0-0-0.jpg",
    ] {
        let (status, h, _) = fetch(&format!("{base}/?{q}"), &[("If-Modified-Since", &lm)]);
        assert_eq!(status, 304, "{q}");
        assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    }
    let (status, _, _) = fetch(
        &format!("{base}/iiif/sample.tif/info.json"),
        &[("If-Modified-Since", &lm)],
    );
    assert_eq!(status, 304);
}

#[test]
fn documents_agree_with_iipsrv_1_1() {
    if !reference_available() {
        return;
    }
    let images = Images::new();
    let prefix = images.prefix();
    let env = [("FILESYSTEM_PREFIX", prefix.as_str())];
    let reference = Reference::start(&env);
    let ours = TestServer::tcp(&env);
    let ask = |port: u16, q: &str| -> Reply {
        Reference::request(port, &[("REQUEST_METHOD", "GET"), ("QUERY_STRING", q)])
    };
    for file in FILES {
        // DZI: 1.1 adds an XML declaration and a CRLF inside the element; the attributes agree.
        let q = format!("DeepZoom={file}.dzi");
        let (t, m) = (ask(reference.port, &q), ask(ours.tcp_addr().port(), &q));
        assert_eq!(m.header("Content-Type").as_deref(), Some("application/xml"));
        assert_eq!(
            attributes(&String::from_utf8_lossy(m.body())),
            attributes(&String::from_utf8_lossy(t.body()))
                .into_iter()
                .filter(|(k, _)| k != "version" && k != "encoding")
                .collect::<Vec<_>>(),
            "{file}"
        );
        // ImageProperties.xml: the same but for 1.1's NUMTILES (counted differently) and its
        // space before `/>`.
        let q = format!("Zoomify={file}/ImageProperties.xml");
        let (t, m) = (ask(reference.port, &q), ask(ours.tcp_addr().port(), &q));
        let strip = |r: &Reply| -> Vec<(String, String)> {
            attributes(&String::from_utf8_lossy(r.body()))
                .into_iter()
                .filter(|(k, _)| k != "NUMTILES")
                .collect()
        };
        assert_eq!(strip(&m), strip(&t), "{file}");
        // Stored tiles are the same pixels (both pass the stored JPEG tile through).
        let q = format!("DeepZoom={file}_files/{}/0_0.jpg", {
            let a = attributes(&String::from_utf8_lossy(
                ask(ours.tcp_addr().port(), &format!("DeepZoom={file}.dzi")).body(),
            ));
            let w: u32 = a
                .iter()
                .find(|(k, _)| k == "Width")
                .unwrap()
                .1
                .parse()
                .unwrap();
            let h: u32 = a
                .iter()
                .find(|(k, _)| k == "Height")
                .unwrap()
                .1
                .parse()
                .unwrap();
            (w.max(h) as f64).log2().ceil() as u32
        });
        let (t, m) = (ask(reference.port, &q), ask(ours.tcp_addr().port(), &q));
        if file == "rgb8_nonsquare.tif" {
            // Non-square stored tiles cannot be DeepZoom tiles: made to size by region export
            // (upstream sends the 48×16 stored tile for a 48×48 DeepZoom tile).
            assert!(m.status() == 501 || image_size(m.body()) == Some((48, 48)));
            assert_eq!(image_size(t.body()), Some((48, 16)));
            continue;
        }
        assert_eq!(image_size(m.body()), image_size(t.body()), "{file} {q}");
    }
}
