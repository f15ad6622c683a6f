//! Fixture-based tests. The fixtures and the pixel formulas are made by
//! `fixtures/make-jp2-jpeg-fixtures.sh` and `fixtures/jp2/gen.py`; `fixtures/jpeg/README.md`
//! lists them.
//!
//! References are independent of the source's decode path: the pixel formulas (within JPEG's
//! error), box averages of a full-size decode by the `turbojpeg` crate's own API (accurate DCT,
//! fancy upsampling) for the DCT-scaled levels, and crops of whole-level regions for tiles.

use std::path::PathBuf;

use super::*;
use crate::source::error::{Corrupt, Missing, SourceErrorKind, TooLarge, Unsupported};
use crate::source::testutil::{Focus, Mutator, SourceTester, assert_file_fault, fixture};

fn fx(name: &str) -> PathBuf {
    fixture("jpeg", name)
}

fn open(name: &str) -> JpegSource {
    JpegSource::open(&fx(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rgb8(x: u32, y: u32, w: u32, h: u32) -> [f64; 3] {
    [
        (x * 255 / (w - 1)) as f64,
        (y * 255 / (h - 1)) as f64,
        (((x / 32 + y / 32) % 2) * 160 + (x + 2 * y) % 64) as f64,
    ]
}

fn grey8(x: u32, y: u32, w: u32, h: u32) -> f64 {
    let [r, g, b] = rgb8(x, y, w, h);
    ((r + 2.0 * g + b) as u32 / 4) as f64
}

fn sizes(src: &JpegSource) -> Vec<(u32, u32)> {
    src.info()
        .levels
        .iter()
        .map(|l| (l.width, l.height))
        .collect()
}

fn bytes(img: &RawImage) -> &[u8] {
    img.as_u8().expect("8-bit")
}

/// Stitch level `r` from its tiles, checking each tile's size.
fn stitch(src: &JpegSource, r: u32) -> Vec<u8> {
    let l = *src.info().level(r).unwrap();
    let (nx, ny) = l.tiles();
    let c = src.info().channels as usize;
    let mut out = vec![0u8; l.width as usize * l.height as usize * c];
    for t in 0..nx * ny {
        let img = src
            .tile(r, t, 0, 0)
            .unwrap_or_else(|e| panic!("r{r} t{t}: {e}"));
        assert_eq!((img.width, img.height), l.tile_size(t).unwrap(), "tile {t}");
        assert_eq!(img.channels as usize, c);
        let (x0, y0) = ((t % nx * TILE_SIZE) as usize, (t / nx * TILE_SIZE) as usize);
        let row = img.width as usize * c;
        for y in 0..img.height as usize {
            let dst = ((y0 + y) * l.width as usize + x0) * c;
            out[dst..dst + row].copy_from_slice(&bytes(&img)[y * row..(y + 1) * row]);
        }
    }
    out
}

/// Mean absolute difference.
#[track_caller]
fn mean_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / got.len() as f64
}

fn as_f64(v: &[u8]) -> Vec<f64> {
    v.iter().map(|&b| b as f64).collect()
}

/// A full-size decode by the turbojpeg crate's safe API (accurate DCT, fancy upsampling).
fn reference(name: &str, format: turbojpeg::PixelFormat) -> turbojpeg::Image<Vec<u8>> {
    let data = std::fs::read(fx(name)).unwrap();
    turbojpeg::decompress(&data, format).unwrap()
}

/// Box average of `img` (channels `c`) over the `f`×`f` block at (x·f + dx, y·f + dy).
fn box_average(
    img: &turbojpeg::Image<Vec<u8>>,
    c: usize,
    (x, y): (usize, usize),
    f: usize,
    n: usize,
    ch: usize,
) -> f64 {
    let mut sum = 0.0;
    for j in 0..n {
        for i in 0..n {
            let (px, py) = (
                (x * f + i).min(img.width - 1),
                (y * f + j).min(img.height - 1),
            );
            sum += img.pixels[py * img.pitch + px * c + ch] as f64;
        }
    }
    sum / (n * n) as f64
}

#[test]
fn level_sizes_are_floor_halvings() {
    let cases: &[(&str, &[(u32, u32)])] = &[
        ("rgb.jpg", &[(700, 500), (350, 250), (175, 125)]),
        ("rgb_odd.jpg", &[(999, 697), (499, 348), (249, 174)]),
        ("small.jpg", &[(200, 150)]),
        (
            "wide.jpg",
            &[
                (4200, 150),
                (2100, 75),
                (1050, 37),
                (525, 18),
                (262, 9),
                (131, 4),
            ],
        ),
        ("grey.jpg", &[(600, 400), (300, 200), (150, 100)]),
        ("progressive.jpg", &[(700, 500), (350, 250), (175, 125)]),
        ("cmyk.jpg", &[(300, 200), (150, 100)]),
    ];
    for &(name, want) in cases {
        let src = open(name);
        assert_eq!(sizes(&src), want, "{name}");
        let info = src.info();
        assert_eq!(info.format, ImageFormat::Jpeg);
        assert_eq!((info.width, info.height), want[0]);
        assert_eq!(info.bits_per_sample, 8);
        assert_eq!(info.quality_layers, 0);
        assert!(
            info.levels
                .iter()
                .all(|l| (l.tile_width, l.tile_height) == (256, 256))
        );
    }
    let grey = open("grey.jpg");
    assert_eq!(
        (grey.info().channels, grey.info().colour),
        (1, ColourSpace::Grey)
    );
    assert_eq!(grey.info().min_max, vec![(0.0, 255.0)]);
    for name in ["rgb.jpg", "cmyk.jpg"] {
        let src = open(name);
        assert_eq!(
            (src.info().channels, src.info().colour),
            (3, ColourSpace::Srgb)
        );
        assert_eq!(src.info().min_max, vec![(0.0, 255.0); 3]);
    }
}

/// A density as the source reports it.
fn density(x: f64, y: f64, unit: u16) -> Option<Dpi> {
    Some(Dpi { x, y, unit })
}

#[test]
fn metadata_and_density() {
    let icc =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/jp2/test.icc"))
            .unwrap();
    // Two APP2 chunks stored in reverse order, reassembled by sequence number.
    let src = open("icc.jpg");
    assert_eq!(src.info().metadata.get("icc"), Some(&icc));
    assert_eq!(src.info().dpi, density(1.0, 1.0, 1));

    let src = open("exif_xmp.jpg");
    let exif = src.info().metadata.get("exif").expect("exif");
    assert!(
        exif.starts_with(b"II*\0"),
        "the Exif\\0\\0 prefix is stripped"
    );
    assert!(exif.windows(11).any(|w| w == b"iipsrv-test"));
    let xmp = src.info().metadata.get("xmp").expect("xmp");
    assert!(xmp.starts_with(b"<?xpacket begin="));
    assert!(xmp.ends_with(b"<?xpacket end=\"r\"?>"));
    // No JFIF marker: libjpeg's defaults, 1×1 with unknown units.
    assert_eq!(src.info().dpi, density(1.0, 1.0, 1));

    let src = open("jfif_dpi.jpg");
    assert_eq!(src.info().dpi, density(300.0, 150.0, 2));
    assert!(src.info().metadata.is_empty());
    assert_eq!(dpi(Some((2, 40, 40))).unwrap().unit, 3);
    assert_eq!(dpi(Some((0, 0, 0))), None);
}

#[test]
fn full_size_is_close_to_the_formula() {
    for (name, limit) in [
        ("rgb.jpg", 3.0),
        ("rgb444.jpg", 2.0),
        ("progressive.jpg", 3.0),
        ("icc.jpg", 3.0),
    ] {
        let src = open(name);
        let got = as_f64(&stitch(&src, 2));
        let want: Vec<f64> = (0..500)
            .flat_map(|y| (0..700).flat_map(move |x| rgb8(x, y, 700, 500)))
            .collect();
        let d = mean_diff(&got, &want);
        assert!(d < limit, "{name}: mean error {d}");
    }
    let src = open("grey.jpg");
    let got = as_f64(&stitch(&src, 2));
    let want: Vec<f64> = (0..400)
        .flat_map(|y| (0..600).map(move |x| grey8(x, y, 600, 400)))
        .collect();
    let d = mean_diff(&got, &want);
    assert!(d < 2.0, "grey: mean error {d}");
}

#[test]
fn full_size_agrees_with_an_accurate_decode() {
    for (name, format, c) in [
        ("rgb.jpg", turbojpeg::PixelFormat::RGB, 3),
        ("rgb_odd.jpg", turbojpeg::PixelFormat::RGB, 3),
        ("grey.jpg", turbojpeg::PixelFormat::GRAY, 1),
        ("progressive.jpg", turbojpeg::PixelFormat::RGB, 3),
    ] {
        let src = open(name);
        let r = src.info().num_resolutions() - 1;
        let got = as_f64(&stitch(&src, r));
        let full = reference(name, format);
        let want: Vec<f64> = (0..full.height)
            .flat_map(|y| full.pixels[y * full.pitch..][..full.width * c].to_vec())
            .map(|b| b as f64)
            .collect();
        let d = mean_diff(&got, &want);
        // Fast integer DCT and plain upsampling (iipsrv's settings) against the accurate ones.
        assert!(d < 4.0, "{name}: mean difference {d}");
    }
}

/// DCT-scaled levels (1/2, 1/4, 1/8) and decimated ones (1/16, 1/32) against box averages of
/// an accurate full-size decode: pixel (x, y) of level k ≈ the mean of the 2^k block at
/// (x·2^k, y·2^k), and below 1/8 the mean of the 8×8 block at (x·2^k, y·2^k).
#[test]
fn reduced_levels_approximate_box_averages() {
    for (name, limit) in [("rgb.jpg", 4.0), ("wide.jpg", 6.0), ("rgb_odd.jpg", 4.0)] {
        let src = open(name);
        let full = reference(name, turbojpeg::PixelFormat::RGB);
        let n = src.info().num_resolutions();
        for native in 1..n {
            let r = n - 1 - native;
            let l = *src.info().level(r).unwrap();
            let got = as_f64(&stitch(&src, r));
            let f = 1usize << native;
            let block = f.min(8);
            let want: Vec<f64> = (0..l.height as usize)
                .flat_map(|y| (0..l.width as usize).map(move |x| (x, y)))
                .flat_map(|p| (0..3).map(move |ch| (p, ch)))
                .map(|(p, ch)| box_average(&full, 3, p, f, block, ch))
                .collect();
            let d = mean_diff(&got, &want);
            assert!(d < limit, "{name} level {native}: mean difference {d}");
        }
    }
}

#[test]
fn tiles_and_regions_are_crops_of_the_level() {
    for name in ["rgb.jpg", "rgb_odd.jpg", "wide.jpg", "grey.jpg", "cmyk.jpg"] {
        let src = open(name);
        let c = src.info().channels as usize;
        for r in 0..src.info().num_resolutions() {
            let l = *src.info().level(r).unwrap();
            let whole = src.region(r, 0, 0, l.width, l.height).unwrap();
            assert_eq!((whole.width, whole.height), (l.width, l.height));
            assert_eq!(stitch(&src, r), bytes(&whole), "{name} r{r}");
            for (x, y, w, h) in [(37, 3, 100, 5), (1, 1, 2, 2)] {
                let (w, h) = (w.min(l.width - x), h.min(l.height - y));
                let got = src.region(r, x, y, w, h).unwrap();
                let want: Vec<u8> = (y..y + h)
                    .flat_map(|j| {
                        let at = (j * l.width + x) as usize * c;
                        bytes(&whole)[at..at + w as usize * c].to_vec()
                    })
                    .collect();
                assert_eq!(bytes(&got), want, "{name} r{r} region {x},{y}");
            }
        }
    }
}

#[test]
fn cmyk_is_converted_to_rgb() {
    // C = x·255/299, M = y·255/199, Y = 0, K = 40: R = (255 − C)(255 − K)/255, etc.
    let src = open("cmyk.jpg");
    let got = as_f64(&stitch(&src, 1));
    let want: Vec<f64> = (0..200u32)
        .flat_map(|y| {
            (0..300u32).flat_map(move |x| {
                let (c, m, k) = ((x * 255 / 299) as f64, (y * 255 / 199) as f64, 40.0);
                [
                    (255.0 - c) * (255.0 - k) / 255.0,
                    (255.0 - m) * (255.0 - k) / 255.0,
                    255.0 * (255.0 - k) / 255.0,
                ]
            })
        })
        .collect();
    let d = mean_diff(&got, &want);
    assert!(d < 3.0, "mean difference {d}");
}

#[test]
fn one_decode_serves_a_level() {
    let src = open("rgb_odd.jpg");
    assert_eq!(src.decode_count(), 0);
    let (nx, ny) = src.info().level(2).unwrap().tiles();
    for t in 0..nx * ny {
        src.tile(2, t, 0, 0).unwrap();
    }
    src.region(2, 10, 10, 500, 300).unwrap();
    assert_eq!(src.decode_count(), 1, "one decode for all tiles of a level");
    src.tile(1, 0, 0, 0).unwrap();
    src.tile(0, 0, 0, 0).unwrap();
    assert_eq!(src.decode_count(), 3, "one per DCT scale");
    assert!(decoded_cache_used_bytes() > 0);

    // Concurrent first requests on one scale share one decode.
    let src = Arc::new(open("rgb.jpg"));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let src = src.clone();
            std::thread::spawn(move || src.tile(2, i % 6, 0, 0).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(src.decode_count(), 1);
}

#[test]
fn out_of_range_requests() {
    let src = open("rgb.jpg");
    let e = src.tile(3, 0, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Resolution(3)));
    assert_eq!(e.format, Some(ImageFormat::Jpeg));
    let e = src.tile(0, 1, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Tile(1)));
    let outside = |e: SourceError| matches!(e.kind, SourceErrorKind::OutsideLevel { .. });
    assert!(outside(src.region(0, 170, 0, 10, 10).unwrap_err()));
    assert!(outside(src.region(0, 0, 0, 0, 10).unwrap_err()));
    let t = src.tile(2, 5, 0, 0).unwrap();
    assert_eq!((t.width, t.height), (188, 244));
}

#[test]
fn corrupt_files_are_errors() {
    for name in [
        "bad_header_only.jpg",
        "bad_marker_length.jpg",
        "bad_zero_size.jpg",
        "bad_12bit.jpg",
        "bad_garbage.jpg",
        "missing.jpg",
    ] {
        let e = JpegSource::open(&fx(name)).expect_err(name);
        assert_file_fault(&e, ImageFormat::Jpeg, name);
    }
    assert_eq!(
        JpegSource::open(&fx("bad_12bit.jpg")).unwrap_err().kind,
        SourceErrorKind::Unsupported(Unsupported::BitDepth(12))
    );
    // Headers intact, data missing: every decode fails.
    let src = open("bad_truncated.jpg");
    for r in 0..src.info().num_resolutions() {
        let e = src.tile(r, 0, 0, 0).unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Corrupt(Corrupt::Data), "{e}");
    }
    // 65535 × 65535 in 29 KB: refused before anything is allocated.
    let e = JpegSource::open(&fx("bad_huge.jpg")).unwrap_err();
    assert!(
        matches!(e.kind, SourceErrorKind::Corrupt(Corrupt::Structure(_))),
        "{e}"
    );
    let e = JpegSource::open(&fx("bad_huge_progressive.jpg")).unwrap_err();
    assert!(matches!(
        e.kind,
        SourceErrorKind::TooLarge(TooLarge::Decode { .. })
    ));
}

/// Mutated copies of the fixtures through the shared harness, mostly in the headers where
/// the structure is: every open, tile and region decode answers, with pixels of the advertised
/// size or an error. `cargo test --lib mutations -- --ignored` runs many more.
fn mutate_and_decode(names: &[&str], rounds: u32) {
    let tester = SourceTester::new(JpegSource::open)
        .region(|src: &JpegSource, r, (x, y, w, h)| src.region(r, x, y, w, h))
        .max_tiles(1);
    let mut mutator = Mutator::new(0x2545_F491_4F6C_DD1D, Focus::Head(700)).truncate_every(5);
    for name in names {
        tester.mutations(&fx(name), &mut mutator, rounds);
    }
}

#[test]
fn mutated_files_answer() {
    mutate_and_decode(&["rgb.jpg", "progressive.jpg", "icc.jpg"], 20);
}

#[test]
#[ignore]
fn mutations() {
    mutate_and_decode(
        &[
            "rgb.jpg",
            "progressive.jpg",
            "icc.jpg",
            "exif_xmp.jpg",
            "grey.jpg",
            "cmyk.jpg",
            "wide.jpg",
        ],
        400,
    );
}
