//! The IIIF features beyond iipsrv (docs/compatibility.md, "Additions"): any rotation angle,
//! the formats `gif`, `jp2` and `pdf`, and the `Link` header with the canonical URI and the
//! compliance level; info.json advertises exactly these, IIP keeps iipsrv's answers, and bad
//! input gets a 400 or a correct image.

use std::io::Cursor;
use std::path::Path;

use iipsrv::image::{ColourSpace, RawImage};
use iipsrv::pipeline::rotate::rotate;
use iipsrv::pipeline::rotate_arbitrary::{Background, apply, rotated_size};
use iipsrv::source::ImageSource;
use iipsrv::source::jp2::Jp2Source;

use crate::common::fcgi::Client;
use crate::iiif::{Images, fetch, fixture, header, iiif_server, image_size};
use crate::support::{TestServer, decode_jpeg_rgb, psnr_u8, require};

/// A decoded PNG: width, height, channels, 8-bit samples.
fn png(bytes: &[u8]) -> RawImage {
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let channels = info.color_type.samples() as u16;
    let colour = if channels < 3 {
        ColourSpace::Grey
    } else {
        ColourSpace::Srgb
    };
    RawImage::from_u8(info.width, info.height, channels, colour, buf)
}

/// A decoded GIF as RGBA: width, height, samples.
fn gif_rgba(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert!(bytes.starts_with(b"GIF89a") || bytes.starts_with(b"GIF87a"));
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(Cursor::new(bytes)).expect("a GIF");
    let (w, h) = (decoder.width() as u32, decoder.height() as u32);
    let frame = decoder.read_next_frame().unwrap().expect("one frame");
    assert_eq!((frame.width as u32, frame.height as u32), (w, h));
    (w, h, frame.buffer.to_vec())
}

/// A decoded JPEG2000 file (through the server's own JPEG2000 source, OpenJPEG): the full
/// resolution, which for these small images is one tile.
fn jp2(bytes: &[u8]) -> RawImage {
    assert_eq!(&bytes[4..8], b"jP  ", "a JP2 file");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jp2");
    std::fs::write(&path, bytes).unwrap();
    let source = Jp2Source::open(&path).expect("a readable JP2");
    let info = source.info();
    assert!(info.width <= 256 && info.height <= 256, "one tile");
    source
        .tile(info.levels.len() as u32 - 1, 0, 0, 0)
        .expect("decodes")
}

/// Asserts that two images have the same shape and samples within `tolerance`, reporting only
/// the shapes and the first difference.
fn same_pixels(a: &RawImage, b: &RawImage, tolerance: u8, what: &str) {
    let shape = |i: &RawImage| (i.width, i.height, i.channels);
    assert_eq!(shape(a), shape(b), "{what}");
    let (x, y) = (u8s(a), u8s(b));
    let differ = x.iter().zip(y).filter(|(p, q)| p != q).count();
    let first = x
        .iter()
        .zip(y)
        .position(|(p, q)| p.abs_diff(*q) > tolerance);
    assert_eq!(
        first, None,
        "{what}: {differ} samples differ, the first by more than {tolerance} at {first:?}"
    );
}

/// The samples of a decoded image as 8-bit bytes.
fn u8s(img: &RawImage) -> &[u8] {
    img.as_u8().expect("8-bit samples")
}

/// The output of a poppler tool on a PDF.
fn poppler(tool: &str, args: &[&str], pdf: &[u8], dir: &Path) -> String {
    let path = dir.join("in.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new(tool)
        .args(args)
        .arg(&path)
        .args(if tool == "pdfimages" && !args.contains(&"-list") {
            vec![dir.join("img").display().to_string()]
        } else {
            vec![]
        })
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status, headers and body of a IIIF image request on the sample image.
fn get(base: &str, params: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    fetch(&format!("{base}/iiif/sample.tif/{params}"), &[])
}

/// The body of a request that must succeed.
fn ok(base: &str, params: &str) -> Vec<u8> {
    let (status, _, body) = get(base, params);
    assert_eq!(status, 200, "{params}: {}", String::from_utf8_lossy(&body));
    body
}

#[test]
fn gif_jp2_and_pdf_responses_decode_to_the_requested_image() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    for params in ["full/200,/0/default", "0,0,256,256/256,/0/default"] {
        let reference = png(&ok(&base, &format!("{params}.png")));
        let (w, h) = (reference.width, reference.height);

        // GIF: a proper palette; close to the PNG.
        let (status, headers, gif) = get(&base, &format!("{params}.gif"));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "Content-Type"), Some("image/gif"));
        let (gw, gh, rgba) = gif_rgba(&gif);
        assert_eq!((gw, gh), (w, h), "{params}");
        let rgb: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        assert!(rgba.chunks_exact(4).all(|p| p[3] == 255), "opaque");
        let psnr = psnr_u8(&rgb, u8s(&reference));
        assert!(psnr > 30.0, "{params}: GIF PSNR {psnr:.1} dB");

        // JPEG2000: a JP2 file, lossy at the default quality, close to the PNG.
        let (status, headers, body) = get(&base, &format!("{params}.jp2"));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "Content-Type"), Some("image/jp2"));
        let decoded = jp2(&body);
        assert_eq!((decoded.width, decoded.height, decoded.channels), (w, h, 3));
        let psnr = psnr_u8(u8s(&decoded), u8s(&reference));
        assert!(psnr > 32.0, "{params}: JP2 PSNR {psnr:.1} dB");

        // QLT=-1 before IIIF= makes it lossless: exactly the PNG's pixels.
        let (status, _, body) = fetch(&format!("{base}/?QLT=-1&IIIF=sample.tif/{params}.jp2"), &[]);
        assert_eq!(status, 200);
        same_pixels(&jp2(&body), &reference, 0, params);

        // PDF: one page holding the JPEG of the same request (the same pixels).
        let (status, headers, pdf) = get(&base, &format!("{params}.pdf"));
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "Content-Type"), Some("application/pdf"));
        assert!(pdf.starts_with(b"%PDF-"));
        if require("pdfimages", "poppler-utils") {
            let dir = tempfile::tempdir().unwrap();
            let info = poppler("pdfinfo", &[], &pdf, dir.path());
            assert!(
                info.lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Pages:", "1"]),
                "{info}"
            );
            let list = poppler("pdfimages", &["-list"], &pdf, dir.path());
            let images: Vec<Vec<&str>> = list
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|w| w.get(2) == Some(&"image"))
                .collect();
            let (w_text, h_text) = (w.to_string(), h.to_string());
            assert_eq!(images.len(), 1, "{list}");
            assert_eq!(
                images[0][3..9],
                [w_text.as_str(), h_text.as_str(), "rgb", "3", "8", "jpeg"],
                "{list}"
            );
            poppler("pdfimages", &["-j"], &pdf, dir.path());
            let embedded = std::fs::read(dir.path().join("img-000.jpg")).unwrap();
            let jpeg = ok(&base, &format!("{params}.jpg"));
            assert_eq!(
                decode_jpeg_rgb(&embedded).pixels,
                decode_jpeg_rgb(&jpeg).pixels,
                "{params}"
            );
        }
    }
}

#[test]
fn the_tile_cache_keeps_every_format_apart() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("MAX_IMAGE_CACHE_SIZE", "50")]);
    let tile = "0,0,256,256/256,/0/default";
    let magic = |format: &str, body: &[u8]| match format {
        "jpg" => body.starts_with(&[0xFF, 0xD8]),
        "png" => body.starts_with(b"\x89PNG"),
        "webp" => body.starts_with(b"RIFF") && &body[8..12] == b"WEBP",
        "tif" => body.starts_with(b"II*\0") || body.starts_with(b"MM\0*"),
        "avif" => &body[4..12] == b"ftypavif",
        "gif" => body.starts_with(b"GIF8"),
        "jp2" => &body[4..8] == b"jP  ",
        "pdf" => body.starts_with(b"%PDF-"),
        _ => false,
    };
    let formats = ["jpg", "gif", "jp2", "pdf", "png", "webp", "tif", "avif"];
    let first: Vec<Vec<u8>> = formats
        .iter()
        .map(|f| ok(&base, &format!("{tile}.{f}")))
        .collect();
    // Again, in the reverse order: from the cache, each still in its own format.
    for (f, body) in formats.iter().zip(&first).rev() {
        assert!(magic(f, body), "{f}");
        let again = ok(&base, &format!("{tile}.{f}"));
        assert_eq!(&again, body, "{f}");
    }
}

#[test]
fn any_angle_is_rotated_once_on_the_output_size() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    // Region export, tile path, grey and a region with a distorting size: the answer is the
    // unrotated answer (as PNG, lossless) rotated by the same formula, nothing else.
    // With `!`, the unrotated answer is already mirrored (mirroring comes first); the server
    // mirrors inside the rotation's mapping (u → w − 1 − u), whose fixed-point positions
    // round differently from those of the mirrored image: samples may differ by 1.
    for (params, angle, tolerance) in [
        ("full/200,/{}/default.png", 45.0, 0),
        ("full/200,/!{}/default.png", 30.0, 1),
        ("0,0,256,256/256,/{}/default.png", 22.5, 0),
        ("100,100,300,200/150,40/{}/gray.png", 359.5, 0),
        ("0,0,200,200/^300,/{}/default.png", 10.0, 0),
    ] {
        let plain = png(&ok(&base, &params.replace("{}", "0")));
        let angle_text = format!("{angle}");
        let rotated = png(&ok(&base, &params.replace("{}", &angle_text)));
        let expected = apply(plain.clone(), angle, false, Background::Transparent).unwrap();
        assert_eq!(
            (rotated.width, rotated.height),
            rotated_size(plain.width, plain.height, angle).unwrap(),
            "{params} {angle}"
        );
        // An alpha channel is added: transparent corners.
        let ch = rotated.channels as usize;
        assert_eq!(ch, plain.channels as usize + 1, "{params}");
        assert!(
            u8s(&rotated)
                .iter()
                .skip(ch - 1)
                .step_by(ch)
                .any(|&a| a == 0),
            "{params}"
        );
        same_pixels(&rotated, &expected, tolerance, &format!("{params} {angle}"));
    }
    // 200×200 by 45°: the bounding box, 283×283; JPEG has white corners. The centre of the
    // sample's square (5, 5), at (110, 110), is 10 px right of and below the image centre;
    // turned 45° clockwise it lies 14.1 px straight below the canvas centre (141.5, 141.5).
    let body = ok(&base, "full/200,/45/default.jpg");
    let img = decode_jpeg_rgb(&body);
    assert_eq!((img.width, img.height), (283, 283));
    assert!(img.pixels[..3].iter().all(|&v| v >= 250), "white corner");
    let plain = decode_jpeg_rgb(&ok(&base, "full/200,/0/default.jpg"));
    let at = |i: &turbojpeg::Image<Vec<u8>>, x: usize, y: usize| {
        let p = (y * i.width + x) * 3;
        i.pixels[p..p + 3].to_vec()
    };
    let (a, b) = (at(&img, 141, 155), at(&plain, 110, 110));
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) < 12),
        "{a:?} {b:?}"
    );
    // The disposition names the output size before rotation, as for quarter turns.
    let (_, h, _) = get(&base, "full/200,/45/default.jpg");
    assert_eq!(
        header(&h, "Content-Disposition"),
        Some("inline; filename=\"sample_200x200.jpg\"")
    );
}

#[test]
fn quarter_turns_stay_quarter_turns() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    for params in [
        "full/200,/{}/default.png",
        "0,0,256,256/256,/{}/default.png",
    ] {
        let plain = png(&ok(&base, &params.replace("{}", "0")));
        for (angle, turns) in [("90", 1), ("180", 2), ("270", 3), ("90.0", 1)] {
            let rotated = png(&ok(&base, &params.replace("{}", angle)));
            // No alpha channel, exactly the pixels turned.
            same_pixels(
                &rotated,
                &rotate(&plain, turns),
                0,
                &format!("{params} {angle}"),
            );
        }
        // 360 is 0, byte for byte.
        assert_eq!(
            ok(&base, &params.replace("{}", "360")),
            ok(&base, &params.replace("{}", "0"))
        );
    }
}

#[test]
fn bitonal_rotations_stay_black_and_white() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let img = png(&ok(&base, "full/200,/33/bitonal.png"));
    assert_eq!(img.channels, 2);
    let grey: Vec<u8> = u8s(&img).iter().step_by(2).copied().collect();
    assert!(grey.iter().all(|&g| g == 0 || g == 255));
    assert!(grey.contains(&0) && grey.contains(&255));
}

/// The `Link` value of a response.
fn link(headers: &[(String, String)]) -> Option<String> {
    header(headers, "Link").map(str::to_string)
}

/// The expected `Link` value for a canonical URI and a version.
fn links(canonical: &str, version: u32) -> String {
    format!(
        "<{canonical}>;rel=\"canonical\", <http://iiif.io/api/image/{version}/level2.json>;rel=\"profile\""
    )
}

#[test]
fn image_responses_link_their_canonical_uri_and_profile() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[("CORS", "*")]);
    let v2 = "application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\"";
    for (path, accept, canonical, version) in [
        (
            "sample.tif/full/max/0/default.jpg",
            None,
            "sample.tif/full/max/0/default.jpg",
            3,
        ),
        (
            "sample.tif/0,0,1000,1000/1000,/360/color.png",
            None,
            "sample.tif/full/max/0/color.png",
            3,
        ),
        (
            "sample.tif/pct:50,50,50,50/pct:50/!22.50/grey.gif",
            None,
            "sample.tif/500,500,500,500/250,250/!22.5/gray.gif",
            3,
        ),
        // The tile path too.
        (
            "sample.tif/0,0,256,256/256,/0/default.jpg",
            None,
            "sample.tif/0,0,256,256/max/0/default.jpg",
            3,
        ),
        (
            "sample.tif/full/^1500,/90./default.jp2",
            None,
            "sample.tif/full/^1500,1500/90/default.jp2",
            3,
        ),
        // Version 2 (negotiated): its canonical syntax and profile.
        (
            "sample.tif/full/max/0/native.jpg",
            Some(v2),
            "sample.tif/full/full/0/default.jpg",
            2,
        ),
        (
            "sample.tif/full/!250,300/90/default.pdf",
            Some(v2),
            "sample.tif/full/250,/90/default.pdf",
            2,
        ),
        // Identifiers keep the client's encoding.
        (
            "sub%2Fdir%2Fx.tif/full/max/0/default.jpg",
            None,
            "sub%2Fdir%2Fx.tif/full/max/0/default.jpg",
            3,
        ),
        (
            "sub/dir/x.tif/full/max/0/default.jpg",
            None,
            "sub/dir/x.tif/full/max/0/default.jpg",
            3,
        ),
        (
            "a+b.tif/square/max/0/default.jpg?t=1",
            None,
            "a+b.tif/full/max/0/default.jpg",
            3,
        ),
    ] {
        let url = format!("{base}/iiif/{path}");
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let (status, h, body) = fetch(&url, &headers);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        let canonical = format!("{base}/iiif/{canonical}");
        assert_eq!(link(&h), Some(links(&canonical, version)), "{path}");
        // The Link line follows iipsrv's lines (the HTTP listener adds its framing after it;
        // the exact FastCGI header block is checked in iiif.rs).
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        let link_at = names.iter().position(|n| n.eq_ignore_ascii_case("link"));
        let before = names
            .iter()
            .rposition(|n| {
                ["content-disposition", "access-control-max-age"]
                    .contains(&n.to_ascii_lowercase().as_str())
            })
            .unwrap();
        assert!(link_at > Some(before), "{names:?}");
        // The canonical URI answers the same image, and is its own canonical URI.
        let (status, h2, again) = fetch(&canonical, &headers);
        assert_eq!(status, 200, "{canonical}");
        assert_eq!(again, body, "{canonical}");
        assert_eq!(link(&h2), Some(links(&canonical, version)), "{canonical}");
    }
    // No Link on info.json, errors and 304s.
    let (_, h, _) = fetch(&format!("{base}/iiif/sample.tif/info.json"), &[]);
    assert_eq!(link(&h), None);
    let (status, h, _) = get(&base, "full/max/0/sepia.jpg");
    assert_eq!((status, link(&h)), (400, None));
    let (_, h, _) = get(&base, "full/max/0/default.jpg");
    let since = header(&h, "Last-Modified").unwrap().to_string();
    let (status, h, _) = fetch(
        &format!("{base}/iiif/sample.tif/full/max/0/default.jpg"),
        &[("If-Modified-Since", &since)],
    );
    assert_eq!((status, link(&h)), (304, None));
}

#[test]
fn canonical_uris_follow_the_id_of_info_json() {
    let images = Images::new();
    let params = "full/max/0/default.jpg";
    // BASE_URL.
    let (_s, base) = iiif_server(&images, &[("BASE_URL", "https://example.org/iiif/")]);
    let (_, h, _) = get(&base, params);
    assert_eq!(
        link(&h),
        Some(links(
            "https://example.org/iiif/sample.tif/full/max/0/default.jpg",
            3
        ))
    );
    // X-IIIF-ID.
    let (_, h, _) = fetch(
        &format!("{base}/iiif/sample.tif/{params}"),
        &[("X-IIIF-ID", "https://images.example.org/abc")],
    );
    assert_eq!(
        link(&h),
        Some(links(
            "https://images.example.org/abc/full/max/0/default.jpg",
            3
        ))
    );
    // The query-string form over FastCGI, with HTTPS; without HTTP_HOST a relative reference;
    // without REQUEST_URI only the profile.
    let s = TestServer::tcp(&[("FILESYSTEM_PREFIX", &images.prefix())]);
    let query = format!("IIIF=sample.tif/{params}");
    let uri = format!("/fcgi-bin/iipsrv.fcgi?{query}");
    let request = |extra: &[(&[u8], &[u8])]| {
        let mut c = Client::connect_tcp(s.tcp_addr()).unwrap();
        let mut p: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"QUERY_STRING", query.as_bytes()),
        ];
        p.extend_from_slice(extra);
        let r = c.request(&p, b"", false).unwrap();
        assert_eq!(r.status(), 200);
        let head =
            String::from_utf8_lossy(&r.stdout[..r.stdout.len() - r.body().len()]).into_owned();
        head.lines()
            .find_map(|l| l.strip_prefix("Link: ").map(str::to_string))
    };
    assert_eq!(
        request(&[
            (b"REQUEST_URI", uri.as_bytes()),
            (b"HTTP_HOST", b"images.example.org"),
            (b"HTTPS", b"on"),
        ]),
        Some(links(&format!("https://images.example.org{uri}"), 3))
    );
    assert_eq!(
        request(&[(b"REQUEST_URI", uri.as_bytes())]),
        Some(links(&uri, 3))
    );
    assert_eq!(
        request(&[]),
        Some("<http://iiif.io/api/image/3/level2.json>;rel=\"profile\"".to_string())
    );
}

/// The JSON strings in the list after `"key"` (up to its `]`).
fn json_list(body: &str, key: &str) -> Vec<String> {
    let start = body.find(key).unwrap_or_else(|| panic!("{key} in {body}")) + key.len();
    let open = body[start..].find('[').unwrap() + start + 1;
    let close = body[open..].find(']').unwrap() + open;
    body[open..close]
        .split(',')
        .map(|t| t.trim().trim_matches('"').to_string())
        .collect()
}

#[test]
fn info_json_advertises_what_works() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let v2 = "application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\"";
    for (version, accept, formats_key, features_key) in [
        (3, None, "\"extraFormats\"", "\"extraFeatures\""),
        (2, Some(v2), "\"formats\"", "\"supports\""),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let (_, _, body) = fetch(&format!("{base}/iiif/sample.tif/info.json"), &headers);
        let body = String::from_utf8(body).unwrap();
        let formats = json_list(&body, formats_key);
        let features = json_list(&body, features_key);
        for f in ["gif", "jp2", "pdf", "tif", "webp", "avif"] {
            assert!(formats.contains(&f.to_string()), "v{version}: {formats:?}");
        }
        for f in [
            "rotationArbitrary",
            "mirroring",
            "canonicalLinkHeader",
            "profileLinkHeader",
        ] {
            assert!(
                features.contains(&f.to_string()),
                "v{version}: {features:?}"
            );
        }
        // Every listed format answers in its own type.
        for f in &formats {
            let (status, h, _) = fetch(
                &format!("{base}/iiif/sample.tif/full/100,/0/default.{f}"),
                &headers,
            );
            assert_eq!(status, 200, "v{version} {f}");
            let mime = match f.as_str() {
                "jpg" => "image/jpeg".to_string(),
                "tif" => "image/tiff".to_string(),
                "pdf" => "application/pdf".to_string(),
                other => format!("image/{other}"),
            };
            assert_eq!(
                header(&h, "Content-Type"),
                Some(mime.as_str()),
                "v{version}"
            );
            assert!(header(&h, "Link").is_some(), "v{version} {f}");
        }
        // Every feature named here works: an arbitrary angle, mirrored.
        let (status, _, body) = fetch(
            &format!("{base}/iiif/sample.tif/full/100,/!12.5/default.png"),
            &headers,
        );
        assert_eq!(status, 200);
        assert_eq!(image_size(&body), Some((119, 119)));
    }
}

#[test]
fn bad_angles_are_400_or_an_image() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let at = |angle: &str| get(&base, &format!("full/64,/{angle}/default.png"));
    for angle in [
        "-0", "1e400", "nan", "!", "!!90", "-90", "+90", "inf", "90,5", "0x10",
    ] {
        let (status, _, body) = at(angle);
        assert_eq!(
            (status, String::from_utf8_lossy(&body).into_owned()),
            (400, "IIIF: invalid rotation".to_string()),
            "{angle}"
        );
    }
    for angle in ["360.0001", "12345678901234567890", &"9".repeat(400)] {
        let (status, _, body) = at(angle);
        assert_eq!(
            (status, String::from_utf8_lossy(&body).into_owned()),
            (
                400,
                "IIIF: invalid rotation: angles are from 0 to 360 degrees".to_string()
            ),
            "{angle}"
        );
    }
    // A trailing dot and 20-digit decimals are numbers.
    assert_eq!(at("90.").2, at("90").2);
    assert_eq!(at("360").2, at("0").2);
    let (status, _, body) = at("45.12345678901234567890");
    assert_eq!(status, 200);
    assert_eq!(png(&body).width, 91);
    // A tiny angle is a rotation too (onto a canvas of the same size).
    let (status, _, body) = at("0.00000000000000000001");
    assert_eq!((status, image_size(&body)), (200, Some((64, 64))));
    // The server is still there.
    assert_eq!(at("0").0, 200);
}

/// A FILESYSTEM_PREFIX with the 16-bit, 4-band and 5-band fixtures.
fn deep_images() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["grey16.tif", "rgb16_be.tif", "rgba8.tif", "multiband5.tif"] {
        std::fs::copy(fixture(&format!("tiff/{f}")), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn gifs_of_16_bit_and_4_band_images() {
    let dir = deep_images();
    let prefix = format!("{}/", dir.path().display());
    let s = TestServer::http(&[("URI_MAP", "iiif=>IIIF"), ("FILESYSTEM_PREFIX", &prefix)]);
    let base = format!("http://{}", s.tcp_addr());
    for file in ["grey16.tif", "rgb16_be.tif", "rgba8.tif", "multiband5.tif"] {
        let url = |p: &str| format!("{base}/iiif/{file}/{p}");
        let (status, _, info) = fetch(&url("info.json"), &[]);
        assert_eq!(status, 200, "{file}");
        let info = String::from_utf8(info).unwrap();
        let width: u32 = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("\"width\" : "))
            .map(|v| v.trim_end_matches(',').parse().unwrap())
            .unwrap();
        let (status, _, body) = fetch(&url("full/max/0/default.gif"), &[]);
        assert_eq!(status, 200, "{file}: {}", String::from_utf8_lossy(&body));
        let (w, _, _) = gif_rgba(&body);
        assert_eq!(w, width, "{file}");
        // Rotated: transparent corners (one transparent palette entry).
        let (status, _, body) = fetch(&url("full/max/30/default.gif"), &[]);
        assert_eq!(status, 200, "{file}");
        let (_, _, rgba) = gif_rgba(&body);
        assert_eq!(rgba[3], 0, "{file}");
        // JPEG2000 and PDF of the same images.
        for f in ["jp2", "pdf"] {
            let (status, _, body) = fetch(&url(&format!("full/max/0/default.{f}")), &[]);
            assert_eq!(
                status,
                200,
                "{file} {f}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // Five bands as TIFF keep their five bands: quarter turns only.
    let (status, _, body) = fetch(
        &format!("{base}/iiif/multiband5.tif/full/max/45/default.tif"),
        &[],
    );
    assert_eq!(
        (status, String::from_utf8_lossy(&body).into_owned()),
        (
            400,
            "rotation :: an image of 5 bands can only be rotated by multiples of 90 degrees"
                .to_string()
        )
    );
    let (status, _, _) = fetch(
        &format!("{base}/iiif/multiband5.tif/full/max/90/default.tif"),
        &[],
    );
    assert_eq!(status, 200);
}

#[test]
fn huge_outputs_are_refused_before_any_work() {
    let images = Images::new();
    for version in ["3", "2"] {
        let (_s, base) = iiif_server(&images, &[("MAX_CVT", "-1"), ("IIIF_VERSION", version)]);
        let up = if version == "3" { "^" } else { "" };
        for (params, message) in [
            // Beyond the 2 GiB of any export.
            (
                "full/{up}60000,/0/default.pdf",
                "CVT :: requested output of 60000x60000 pixels is too large",
            ),
            // Within it, beyond what the format takes (PDF: 10^8 pixels, JPEG's 65535 sides;
            // GIF: 65535 sides and its pixel limit; JPEG2000: 2^27 samples).
            ("full/{up}20000,/0/default.pdf", "Output image too large"),
            ("full/{up}20000,/0/default.gif", "Output image too large"),
            ("full/{up}12000,/0/default.jp2", "Output image too large"),
            // The rotated canvas, with its alpha channel, beyond 2 GiB.
            (
                "full/{up}26000,/45/default.png",
                "CVT :: requested output of 26000x26000 pixels is too large",
            ),
        ] {
            let params = params.replace("{up}", up);
            let (status, _, body) = get(&base, &params);
            assert_eq!(
                (status, String::from_utf8_lossy(&body).into_owned()),
                (400, message.to_string()),
                "v{version} {params}"
            );
        }
        assert_eq!(get(&base, "full/100,/0/default.pdf").0, 200);
    }
}

#[test]
fn iip_keeps_iipsrvs_rotations_and_formats() {
    let images = Images::new();
    let (_s, base) = iiif_server(&images, &[]);
    let iip = |q: &str| fetch(&format!("{base}/?FIF=sample.tif&WID=200&{q}"), &[]);
    // CVT: iipsrv's formats; anything else is a JPEG, as iipsrv answers.
    let (_, _, jpeg) = iip("CVT=jpeg");
    for f in ["gif", "jp2", "pdf"] {
        let (status, h, body) = iip(&format!("CVT={f}"));
        assert_eq!(status, 200);
        assert_eq!(header(&h, "Content-Type"), Some("image/jpeg"), "{f}");
        assert_eq!(
            header(&h, "Content-Disposition"),
            Some("inline; filename=\"sample_200x200.jpg\"")
        );
        assert_eq!(body, jpeg, "{f}");
        assert_eq!(header(&h, "Link"), None);
    }
    // ROT: angles that are not multiples of 90 do not rotate (iipsrv 1.3 ignores them).
    let (_, _, plain) = iip("CVT=png");
    let (_, _, mirrored) = iip("ROT=!0&CVT=png");
    assert_eq!(iip("ROT=45&CVT=png").2, plain);
    assert_eq!(iip("ROT=!45&CVT=png").2, mirrored);
    assert_ne!(mirrored, plain);
    let (_, _, tile) = fetch(&format!("{base}/?FIF=sample.tif&JTL=0,0"), &[]);
    let (_, _, tile45) = fetch(&format!("{base}/?FIF=sample.tif&ROT=45&JTL=0,0"), &[]);
    assert_eq!(tile45, tile);
}
