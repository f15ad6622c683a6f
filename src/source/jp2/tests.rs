//! Fixture-based tests. The fixtures and the pixel formulas are made by
//! `fixtures/make-jp2-jpeg-fixtures.sh` and `fixtures/jp2/gen.py`; `fixtures/jp2/README.md`
//! lists them.
//!
//! References are computed at test time: lossless files against the formulas, lossy files
//! against a decode of the whole level by this source (and, when `opj_decompress` is installed,
//! against its output), so every tile, off-origin region and virtual level is checked against
//! an independent path through the decoder.

use std::path::{Path, PathBuf};

use super::*;
use crate::source::error::{Missing, SourceErrorKind, TooLarge, Unsupported};
use crate::source::testutil::{Focus, Mutator, SourceTester, assert_file_fault, fixture};

fn fx(name: &str) -> PathBuf {
    fixture("jp2", name)
}

fn open(name: &str) -> Jp2Source {
    Jp2Source::open(&fx(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn open_all_layers(name: &str) -> Jp2Source {
    Jp2Source::open_with(&fx(name), MaxLayers::All).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn values(s: &Samples) -> Vec<i64> {
    match s {
        Samples::U8(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::U16(v) => v.iter().map(|&x| x as i64).collect(),
        other => panic!("unexpected sample type {other:?}"),
    }
}

// The formulas of fixtures/jp2/gen.py.
fn rgb8(x: u32, y: u32, w: u32, h: u32) -> [i64; 3] {
    [
        (x * 255 / (w - 1)) as i64,
        (y * 255 / (h - 1)) as i64,
        (((x / 32 + y / 32) % 2) * 160 + (x + 2 * y) % 64) as i64,
    ]
}

fn grey8(x: u32, y: u32, w: u32, h: u32) -> i64 {
    let [r, g, b] = rgb8(x, y, w, h);
    (r + 2 * g + b) / 4
}

fn grey12(x: u32, y: u32, w: u32) -> i64 {
    ((x * 4095 / (w - 1)) ^ (y % 16)) as i64
}

fn alpha(x: u32, y: u32) -> i64 {
    if (x / 50 + y / 50).is_multiple_of(2) {
        255
    } else {
        64
    }
}

fn bilevel(x: u32, y: u32) -> i64 {
    if (x / 8 + y / 8).is_multiple_of(2) {
        1
    } else {
        0
    }
}

/// The samples of a `w`×`h` image from a pixel formula.
fn expect(w: u32, h: u32, f: impl Fn(u32, u32) -> Vec<i64>) -> Vec<i64> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| f(x, y))
        .collect()
}

fn sizes(src: &Jp2Source) -> Vec<(u32, u32)> {
    src.info()
        .levels
        .iter()
        .map(|l| (l.width, l.height))
        .collect()
}

/// The whole level `r`, decoded as one region.
fn whole(src: &Jp2Source, r: u32, layers: u32) -> RawImage {
    let l = *src.info().level(r).unwrap();
    src.region(r, 0, 0, l.width, l.height, layers)
        .unwrap_or_else(|e| panic!("r{r}: {e}"))
}

/// A crop of `img`, taking every `step`-th pixel from (x, y).
fn crop(img: &RawImage, x: u32, y: u32, w: u32, h: u32, step: u32) -> Vec<i64> {
    let v = values(&img.samples);
    let c = img.channels as usize;
    let mut out = Vec::new();
    for j in 0..h {
        for i in 0..w {
            let at =
                (((y + j) * step) as usize * img.width as usize + ((x + i) * step) as usize) * c;
            out.extend_from_slice(&v[at..at + c]);
        }
    }
    out
}

/// The largest absolute difference.
#[track_caller]
fn max_diff(got: &[i64], want: &[i64]) -> i64 {
    assert_eq!(got.len(), want.len(), "length");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .max()
        .unwrap_or(0)
}

/// Exact equality, reporting the first difference instead of both lists.
#[track_caller]
fn assert_same(got: &[i64], want: &[i64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let bad = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        panic!(
            "{what}: {bad} samples differ, first at {i}: {} != {}",
            got[i], want[i]
        );
    }
}

/// Stitch level `r` from its tiles (checking each tile's size) into one sample list.
fn stitch(src: &Jp2Source, r: u32, layers: u32) -> Vec<i64> {
    let l = *src.info().level(r).unwrap();
    let (nx, ny) = l.tiles();
    let c = src.info().channels as usize;
    let mut out = vec![-1; l.width as usize * l.height as usize * c];
    for t in 0..nx * ny {
        let img = src
            .tile(r, t, 0, layers)
            .unwrap_or_else(|e| panic!("r{r} t{t}: {e}"));
        assert_eq!((img.width, img.height), l.tile_size(t).unwrap(), "tile {t}");
        assert_eq!(img.channels as usize, c);
        let v = values(&img.samples);
        let (x0, y0) = ((t % nx * TILE_SIZE) as usize, (t / nx * TILE_SIZE) as usize);
        let row = img.width as usize * c;
        for y in 0..img.height as usize {
            let dst = ((y0 + y) * l.width as usize + x0) * c;
            out[dst..dst + row].copy_from_slice(&v[y * row..(y + 1) * row]);
        }
    }
    assert!(out.iter().all(|&v| v >= 0), "every pixel covered");
    out
}

#[test]
fn level_sizes_are_the_codestream_sizes() {
    type Case = (&'static str, &'static [(u32, u32)], u32);
    let cases: &[Case] = &[
        ("rgb8_tiled.jp2", &[(700, 500), (350, 250), (175, 125)], 3),
        ("rgb8_untiled.jp2", &[(700, 500), (350, 250), (175, 125)], 1),
        ("rgb8_res1.jp2", &[(700, 500), (350, 250), (175, 125)], 1),
        ("rgb8_res2.jp2", &[(700, 500), (350, 250), (175, 125)], 1),
        ("rgb8_lossless.jp2", &[(300, 200), (150, 100)], 1),
        ("rgb8.j2k", &[(300, 200), (150, 100)], 1),
        ("rgb8_jpx.jpx", &[(300, 200), (150, 100)], 1),
        ("rgb8_icc.jp2", &[(300, 200), (150, 100)], 1),
        // Image offset (3, 5): ⌈704/2⌉ − ⌈3/2⌉ = 350, not ⌈701/2⌉ = 351.
        ("grey8_offset.jp2", &[(701, 499), (350, 249), (175, 124)], 1),
        ("grey8.jp2", &[(400, 300), (200, 150)], 1),
        ("grey12.jp2", &[(300, 200), (150, 100)], 1),
        ("rgb16.jp2", &[(300, 200), (150, 100)], 1),
        ("rgba8.jp2", &[(300, 200), (150, 100)], 1),
        ("bilevel.jp2", &[(300, 200), (150, 100)], 1),
    ];
    for &(name, want, layers) in cases {
        let src = open(name);
        assert_eq!(sizes(&src), want, "{name}");
        let info = src.info();
        assert_eq!((info.width, info.height), want[0], "{name}");
        assert_eq!(info.format, ImageFormat::Jpeg2000);
        assert_eq!(info.quality_layers, layers, "{name}");
        assert!(
            info.levels
                .iter()
                .all(|l| (l.tile_width, l.tile_height) == (256, 256))
        );
        assert!(info.stack.is_empty() && info.dpi.is_none());
    }
}

#[test]
fn channels_depths_and_colour() {
    let cases = [
        ("rgb8_tiled.jp2", 3, 8, ColourSpace::Srgb, 255.0),
        ("grey8.jp2", 1, 8, ColourSpace::Grey, 255.0),
        ("grey12.jp2", 1, 12, ColourSpace::Grey, 65535.0),
        ("rgb16.jp2", 3, 16, ColourSpace::Srgb, 65535.0),
        ("rgba8.jp2", 4, 8, ColourSpace::Srgb, 255.0),
        ("bilevel.jp2", 1, 1, ColourSpace::Binary, 255.0),
    ];
    for (name, channels, bits, colour, max) in cases {
        let info = open(name).info().clone();
        assert_eq!(info.channels, channels, "{name}");
        assert_eq!(info.bits_per_sample, bits, "{name}");
        assert_eq!(info.colour, colour, "{name}");
        assert_eq!(info.min_max, vec![(0.0, max); channels as usize], "{name}");
        assert_eq!(info.sample_format, SampleFormat::Unsigned);
    }
}

#[test]
fn icc_profile_is_metadata_from_open() {
    let src = open("rgb8_icc.jp2");
    let icc = std::fs::read(fx("test.icc")).unwrap();
    assert_eq!(src.info().metadata.get("icc"), Some(&icc));
    assert!(open("rgb8_lossless.jp2").info().metadata.is_empty());
}

#[test]
fn lossless_tiles_match_the_formulas() {
    for name in [
        "rgb8_lossless.jp2",
        "rgb8.j2k",
        "rgb8_jpx.jpx",
        "rgb8_icc.jp2",
    ] {
        let src = open(name);
        let want = expect(300, 200, |x, y| rgb8(x, y, 300, 200).to_vec());
        assert_same(&stitch(&src, 1, 0), &want, name);
        let t = src.tile(1, 1, 0, 0).unwrap();
        assert_eq!((t.width, t.height, t.channels), (44, 200, 3));
        assert!(matches!(t.samples, Samples::U8(_)));
    }
    let src = open("grey8.jp2");
    assert_same(
        &stitch(&src, 1, 0),
        &expect(400, 300, |x, y| vec![grey8(x, y, 400, 300)]),
        "grey8",
    );
    // 12 bits, replicated to 16: (v << 4) | (v >> 8).
    let src = open("grey12.jp2");
    let t = src.tile(1, 0, 0, 0).unwrap();
    assert!(matches!(t.samples, Samples::U16(_)));
    assert_eq!(t.bits_per_sample, 12);
    assert_same(
        &stitch(&src, 1, 0),
        &expect(300, 200, |x, y| {
            let v = grey12(x, y, 300);
            vec![(v << 4) | (v >> 8)]
        }),
        "grey12",
    );
    let src = open("rgba8.jp2");
    assert_same(
        &stitch(&src, 1, 0),
        &expect(300, 200, |x, y| {
            let mut v = rgb8(x, y, 300, 200).to_vec();
            v.push(alpha(x, y));
            v
        }),
        "rgba8",
    );
    // 1 bit, scaled to 0/255.
    let src = open("bilevel.jp2");
    assert_same(
        &stitch(&src, 1, 0),
        &expect(300, 200, |x, y| vec![bilevel(x, y) * 255]),
        "bilevel",
    );
}

/// The mean absolute difference of two sample lists.
fn mean_abs_error(got: &[i64], want: &[i64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .sum::<i64>() as f64
        / got.len() as f64
}

#[test]
fn lossy_full_resolution_is_close_to_the_formula() {
    for name in ["rgb8_tiled.jp2", "rgb8_untiled.jp2", "rgb8_res1.jp2"] {
        let src = open_all_layers(name);
        let got = stitch(&src, 2, 0);
        let want = expect(700, 500, |x, y| rgb8(x, y, 700, 500).to_vec());
        let mean = mean_abs_error(&got, &want);
        assert!(mean < 6.0, "{name}: mean error {mean}");
    }
    let src = open("grey8_offset.jp2");
    let got = stitch(&src, 2, 0);
    let want = expect(701, 499, |x, y| vec![grey8(x, y, 701, 499)]);
    let mean = mean_abs_error(&got, &want);
    assert!(mean < 3.0, "mean error {mean}");
}

/// Tiles and off-origin regions of every level against the whole level decoded in one go.
#[test]
fn tiles_and_regions_match_whole_level_decodes() {
    for name in [
        "rgb8_tiled.jp2",
        "rgb8_untiled.jp2",
        "rgb8_res2.jp2",
        "grey8_offset.jp2",
        "rgb16.jp2",
        "rgb8_lossless.jp2",
    ] {
        let src = open(name);
        for r in 0..src.info().num_resolutions() {
            let reference = whole(&src, r, 0);
            let l = *src.info().level(r).unwrap();
            let all = crop(&reference, 0, 0, l.width, l.height, 1);
            // OpenJPEG's windowed decode is exact, even for the irreversible 9/7 wavelet.
            let d = max_diff(&stitch(&src, r, 0), &all);
            assert_eq!(d, 0, "{name} r{r}: tiles differ by {d}");
            for (x, y, w, h) in [(37, 41, 100, 77), (1, 1, 3, 3), (0, 0, 1, 1)] {
                let (w, h) = (w.min(l.width - x), h.min(l.height - y));
                let got = src.region(r, x, y, w, h, 0).unwrap();
                assert_eq!((got.width, got.height), (w, h));
                let d = max_diff(&values(&got.samples), &crop(&reference, x, y, w, h, 1));
                assert_eq!(d, 0, "{name} r{r} region {x},{y}: differs by {d}");
            }
            // The bottom-right corner region.
            let (x, y) = (l.width - 5, l.height - 3);
            let got = src.region(r, x, y, 5, 3, 0).unwrap();
            let d = max_diff(&values(&got.samples), &crop(&reference, x, y, 5, 3, 1));
            assert_eq!(d, 0, "{name} r{r} corner: differs by {d}");
        }
    }
}

/// Virtual levels take every 2^k-th pixel of the smallest real resolution.
#[test]
fn virtual_levels_decimate_the_smallest_real_resolution() {
    // res1: only full resolution; levels 1 and 0 are virtual (steps 2 and 4).
    let src = open("rgb8_res1.jp2");
    let full = whole(&src, 2, 0);
    for (r, step) in [(1u32, 2u32), (0, 4)] {
        let l = *src.info().level(r).unwrap();
        let got = stitch(&src, r, 0);
        assert_same(
            &got,
            &crop(&full, 0, 0, l.width, l.height, step),
            "virtual level",
        );
        let region = src.region(r, 10, 20, 30, 40, 0).unwrap();
        assert_same(
            &values(&region.samples),
            &crop(&full, 10, 20, 30, 40, step),
            "virtual region",
        );
    }
    // res2: one real reduction (350x250), then one virtual level (step 2).
    let src = open("rgb8_res2.jp2");
    let half = whole(&src, 1, 0);
    assert_same(&stitch(&src, 0, 0), &crop(&half, 0, 0, 175, 125, 2), "res2");
}

#[test]
fn opj_decompress_agrees() {
    let tool = std::process::Command::new("opj_decompress")
        .arg("-h")
        .output();
    if tool.is_err() {
        eprintln!("opj_decompress not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, reduce, r) in [
        ("rgb8_tiled.jp2", 1, 1),
        ("rgb8_untiled.jp2", 2, 0),
        ("grey8_offset.jp2", 1, 1),
        ("grey8_offset.jp2", 2, 0),
    ] {
        let grey = name.starts_with("grey");
        let out = dir
            .path()
            .join(format!("{reduce}.{}", if grey { "pgm" } else { "ppm" }));
        let status = std::process::Command::new("opj_decompress")
            .arg("-i")
            .arg(fx(name))
            .arg("-o")
            .arg(&out)
            .arg("-r")
            .arg(reduce.to_string())
            .arg("-quiet")
            .status()
            .unwrap();
        assert!(status.success());
        let pnm = std::fs::read(&out).unwrap();
        // P5/P6 header: magic, width, height, maxval, one whitespace byte.
        let mut fields = Vec::new();
        let mut pos = 0;
        while fields.len() < 4 {
            while pnm[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if pnm[pos] == b'#' {
                while pnm[pos] != b'\n' {
                    pos += 1;
                }
                continue;
            }
            let start = pos;
            while !pnm[pos].is_ascii_whitespace() {
                pos += 1;
            }
            fields.push(String::from_utf8_lossy(&pnm[start..pos]).into_owned());
        }
        let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        let src = open_all_layers(name);
        let l = *src.info().level(r).unwrap();
        assert_eq!((l.width, l.height), (w, h), "{name} -r {reduce}");
        let want: Vec<i64> = pnm[pos + 1..].iter().map(|&b| b as i64).collect();
        assert_same(&stitch(&src, r, 0), &want, name);
    }
}

#[test]
fn quality_layers() {
    // MAX_LAYERS 0: LYR 0 gives ⌈3/2⌉ = 2 layers, LYR n gives n; ≥ all layers means all (0).
    let src = open("rgb8_tiled.jp2");
    assert_eq!(src.info().quality_layers, 3);
    assert_eq!(src.layers_for(0), 2);
    assert_eq!(src.layers_for(1), 1);
    assert_eq!(src.layers_for(3), 0);
    assert_eq!(src.layers_for(9), 0);
    // More layers, less error.
    let want = expect(700, 500, |x, y| rgb8(x, y, 700, 500).to_vec());
    let err = |layers| {
        let got = values(&whole(&src, 2, layers).samples);
        got.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .sum::<i64>()
    };
    let (e1, e2, e3) = (err(1), err(2), err(3));
    assert!(e1 > e2 && e2 > e3, "errors {e1} {e2} {e3}");
    assert_eq!(err(0), e2, "the default is half the layers");
    // Tiles honour the layers argument.
    let t1 = src.tile(2, 0, 0, 1).unwrap();
    assert_same(
        &values(&t1.samples),
        &crop(&whole(&src, 2, 1), 0, 0, 256, 256, 1),
        "one layer",
    );
    // MAX_LAYERS -1: all by default; MAX_LAYERS 2 caps requests.
    assert_eq!(open_all_layers("rgb8_tiled.jp2").layers_for(0), 0);
    let capped = Jp2Source::open_with(&fx("rgb8_tiled.jp2"), MaxLayers::AtMost(2)).unwrap();
    assert_eq!(capped.max_layers(), MaxLayers::AtMost(2));
    assert_eq!(capped.layers_for(0), 2);
    assert_eq!(capped.layers_for(1), 1);
    assert_eq!(capped.layers_for(3), 2);
}

#[test]
fn layer_rules() {
    // (MAX_LAYERS, LYR, quality layers) → layers (0 = all).
    for (max, lyr, q, want) in [
        (0, 0, 3, 2),
        (0, 0, 1, 0),
        (0, 0, 8, 4),
        (0, 5, 8, 5),
        (0, 9, 8, 0),
        (-1, 0, 8, 0),
        (-1, 3, 8, 3),
        (4, 0, 8, 4),
        (4, 2, 8, 2),
        (4, 6, 8, 4),
        (12, 0, 8, 0),
    ] {
        let setting = MaxLayers::from_setting(max);
        assert_eq!(effective_layers(setting, lyr, q), want, "{max} {lyr} {q}");
    }
}

#[test]
fn bit_replication() {
    assert_eq!(replicate(1, 1, 8), 255);
    assert_eq!(replicate(2, 2, 8), 170);
    assert_eq!(replicate(0xA, 4, 8), 0xAA);
    assert_eq!(replicate(63, 6, 8), 255);
    assert_eq!(replicate(0b100000, 6, 8), (0b100000 << 2) | (0b100000 >> 4));
    assert_eq!(replicate(7, 3, 8), 255);
    assert_eq!(replicate(1023, 10, 16), 65535);
    assert_eq!(replicate(0x123, 12, 16), 0x1231);
    assert_eq!(replicate(511, 9, 16), 65535);
    assert_eq!(replicate(256, 9, 16), 0x8040);
    assert_eq!(replicate(0xFFF, 12, 8), 0xFF);
    assert_eq!(replicate(200, 8, 8), 200);
}

#[test]
fn out_of_range_requests() {
    let src = open("rgb8_tiled.jp2");
    let e = src.tile(3, 0, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Resolution(3)));
    assert_eq!(e.format, Some(ImageFormat::Jpeg2000));
    let e = src.tile(0, 1, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Tile(1)));
    let outside = |e: SourceError| matches!(e.kind, SourceErrorKind::OutsideLevel { .. });
    assert!(outside(src.region(0, 170, 0, 10, 10, 0).unwrap_err()));
    assert!(outside(src.region(0, 0, 0, 0, 10, 0).unwrap_err()));
    assert!(outside(src.region(0, u32::MAX, 0, 2, 10, 0).unwrap_err()));
    // Edge tiles are cropped: the 700x500 level has 3x2 tiles, the last 188x244.
    let t = src.tile(2, 5, 0, 0).unwrap();
    assert_eq!((t.width, t.height), (188, 244));
}

#[test]
fn corrupt_files_are_errors() {
    for name in [
        "bad_truncated_header.jp2",
        "bad_box_length.jp2",
        "bad_no_codestream.jp2",
        "bad_garbage.jp2",
        "bad_siz_zero.j2k",
        "bad_siz_huge.j2k",
        "bad_cod_length.j2k",
        "bad_depth17.j2k",
        "bad_huge_untiled.j2k",
        "bad_many_tiles.j2k",
        "bad_tiles_past_end.j2k",
        "bad_tiny_code_blocks.j2k",
    ] {
        let e = Jp2Source::open(&fx(name)).expect_err(name);
        assert_file_fault(&e, ImageFormat::Jpeg2000, name);
    }
    assert_eq!(
        Jp2Source::open(&fx("bad_depth17.j2k")).unwrap_err().kind,
        SourceErrorKind::Unsupported(Unsupported::BitDepth(17))
    );
    assert!(Jp2Source::open(&fx("missing.jp2")).is_err());
    // More tiles declared than the codestream has bytes for (14 per tile at least): refused
    // before OpenJPEG sets them all up.
    let e = Jp2Source::open(&fx("bad_tiles_past_end.j2k")).unwrap_err();
    assert!(
        format!("{e:?}").contains("13294 tiles declared, 184 bytes"),
        "{e:?}"
    );

    // The headers of a truncated file are intact; the missing tiles are errors.
    let src = open("bad_truncated.jp2");
    let mut failures = 0;
    for r in 0..src.info().num_resolutions() {
        let (nx, ny) = src.info().level(r).unwrap().tiles();
        for t in 0..nx * ny {
            if let Err(e) = src.tile(r, t, 0, 3) {
                assert!(matches!(e.kind, SourceErrorKind::Corrupt(_)), "{e}");
                assert_eq!(e.format, Some(ImageFormat::Jpeg2000));
                failures += 1;
            }
        }
    }
    assert!(failures > 0);

    // An acceptable header for a 40000² image in 2048² tiles with 3 resolutions: the smallest
    // level needs 10000² pixels decoded per tile, which is refused before decoding.
    let src = open("bad_huge_tiled.j2k");
    assert_eq!(src.info().width, 40000);
    let e = src.tile(0, 0, 0, 0).unwrap_err();
    assert!(
        matches!(e.kind, SourceErrorKind::TooLarge(TooLarge::Decode { .. })),
        "{e}"
    );
    // A tall single-tile image: a tile of its smallest (decimated) level is one pixel wide
    // but runs through every row of the smallest real resolution, and OpenJPEG would hold
    // every 64×64 code-block along it: refused by the bytes the window would take.
    let tall = open("bad_narrow_tall.j2k");
    assert_eq!(tall.info().height, 16_777_485);
    let e = tall.tile(0, 0, 0, 0).unwrap_err();
    assert!(
        matches!(e.kind, SourceErrorKind::TooLarge(TooLarge::Decode { .. })),
        "{e}"
    );
    let e = Jp2Source::open(&fx("bad_tiny_code_blocks.j2k")).unwrap_err();
    assert!(
        format!("{e:?}").contains("code-blocks of 2^2 x 2^2"),
        "{e:?}"
    );

    // Its full-resolution tile 0 decodes from a codestream tile of the wrong size: whatever
    // OpenJPEG makes of it, the answer is a tile of the advertised size or an error.
    let top = src.info().num_resolutions() - 1;
    if let Ok(t) = src.tile(top, 0, 0, 0) {
        assert_eq!((t.width, t.height), (256, 256));
    }
}

#[test]
fn concurrent_decodes_agree() {
    let src = std::sync::Arc::new(open("rgb8_tiled.jp2"));
    let want: Vec<Vec<i64>> = (0..6)
        .map(|t| values(&src.tile(2, t, 0, 0).unwrap().samples))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let src = src.clone();
            std::thread::spawn(move || {
                (0..12)
                    .map(|k| {
                        let t = (i + k) % 6;
                        (t, values(&src.tile(2, t, 0, 0).unwrap().samples))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for th in threads {
        for (t, v) in th.join().unwrap() {
            assert_same(&v, &want[t as usize], "concurrent tile");
        }
    }
}

/// Windows of a level of `w`×`h`: every 256² tile, 1×1 corners, odd strips and the whole.
fn windows(w: u32, h: u32) -> Vec<(u32, u32, u32, u32)> {
    let mut out = vec![
        (0, 0, w, h),
        (0, 0, 1, 1),
        (w - 1, h - 1, 1, 1),
        (w / 3, h / 5, (w / 2).max(1), (h / 3).max(1)),
        (
            w.saturating_sub(70),
            1.min(h - 1),
            70.min(w),
            h - 1.min(h - 1),
        ),
        (1.min(w - 1), h / 2, w - 1.min(w - 1), 1),
    ];
    let (nx, ny) = (w.div_ceil(TILE_SIZE), h.div_ceil(TILE_SIZE));
    for t in 0..nx * ny {
        let (x, y) = (t % nx * TILE_SIZE, t / nx * TILE_SIZE);
        out.push((x, y, TILE_SIZE.min(w - x), TILE_SIZE.min(h - y)));
    }
    out
}

#[test]
fn cut_down_codestreams_decode_exactly_like_the_whole_file() {
    // Tiled files get a tile-part index, and a decode from the codestream cut down to the
    // window's tiles gives the same samples as one from the whole file, at every level (real
    // and virtual), for every layer count, with image and tile offsets, tile-parts per
    // resolution, TLM and PLT markers, raw codestreams and 16-bit samples.
    for name in [
        "rgb8_tiled.jp2",
        "rgb8_tileparts.jp2",
        "grey8_offset.jp2",
        "rgb8_lossless.jp2",
        "rgb8.j2k",
        "rgb8_icc.jp2",
        "rgb16.jp2",
        "rgb8_res2.jp2",
        "rgb8_untiled.jp2",
        "rgba8.jp2",
    ] {
        let src = open(name);
        assert!(src.index.is_some(), "{name}: no tile-part index");
        for r in 0..src.info().num_resolutions() {
            let l = *src.info().level(r).unwrap();
            for layers in [0, 1, 3] {
                for rect in windows(l.width, l.height) {
                    let what = format!("{name} r{r} layers {layers} {rect:?}");
                    let cut = src.decode_region(r, rect, layers, 1, true);
                    let whole = src.decode_region(r, rect, layers, 1, false);
                    let (cut, whole) = (cut.expect(&what), whole.expect(&what));
                    assert_same(&values(&cut.samples), &values(&whole.samples), &what);
                }
            }
        }
    }
    let parts = open("rgb8_tileparts.jp2").index.unwrap().tile_parts();
    // LRCP progression split at every change of resolution: 3 layers × 3 resolutions.
    assert_eq!(parts, 20 * 9, "nine tile-parts for each of the 20 tiles");
}

#[test]
fn damaged_codestreams_are_decoded_from_the_whole_file() {
    // A truncated file has no index: its decodes fail (strict mode) as they did before.
    let src = open("bad_truncated.jp2");
    assert!(src.index.is_none());
    assert!(src.tile(src.info().num_resolutions() - 1, 0, 0, 0).is_err());
}

#[test]
fn threaded_decodes_agree() {
    // OpenJPEG's thread pool (granted for windows of THREADED_PIXELS or more) changes nothing.
    let src = open("rgb8_tiled.jp2");
    let top = src.info().num_resolutions() - 1;
    let rect = (0, 0, 700, 500);
    let one = src.read(top, rect, 0, 1).unwrap();
    let four = src.decode_region(top, rect, 0, 4, true).unwrap();
    assert_same(&values(&four.samples), &values(&one.samples), "4 threads");
}

#[test]
fn library_is_openjpeg_2_5_or_later() {
    let v = library_version();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!((major, minor) >= (2, 5), "OpenJPEG {v}");
}

/// Debian's iipsrv 1.1 (package iipimage-server), which decodes JPEG2000 correctly, serving
/// the fixtures over FastCGI on a UNIX socket; queried with `cgi-fcgi` (package libfcgi-bin).
struct Iipsrv {
    child: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Iipsrv {
    const BINARY: &'static str = "/usr/lib/iipimage-server/iipsrv.fcgi";

    fn start() -> Option<Iipsrv> {
        let have_client = std::process::Command::new("cgi-fcgi")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !Path::new(Self::BINARY).exists() || !have_client {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("iipsrv.sock");
        let child = std::process::Command::new(Self::BINARY)
            .arg("--bind")
            .arg(&socket)
            .env("FILESYSTEM_PREFIX", format!("{}/", fx("").display()))
            .env("JPEG_QUALITY", "100")
            .env("LOGFILE", dir.path().join("iipsrv.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let server = Iipsrv {
            child,
            socket,
            _dir: dir,
        };
        for _ in 0..100 {
            if server.socket.exists() {
                return Some(server);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// The body of the response to `query`, and whether it was an image.
    fn get(&self, query: &str) -> (bool, Vec<u8>) {
        let out = std::process::Command::new("cgi-fcgi")
            .args(["-bind", "-connect"])
            .arg(&self.socket)
            .env("REQUEST_METHOD", "GET")
            .env("QUERY_STRING", query)
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .output()
            .unwrap();
        let raw = out.stdout;
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        (
            head.contains("Content-Type: image/jpeg"),
            raw[end + 4..].to_vec(),
        )
    }
}

impl Drop for Iipsrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every tile of several files against iipsrv 1.1's JPEG tiles (quality 100, all layers):
/// level sizes and luma agree within JPEG's error. 1.1 floor-halves level sizes, so only files
/// whose sizes halve exactly are compared, and it crashes or returns garbage on virtual levels
/// (rgb8_res1.jp2, rgb8_res2.jp2), which are therefore left out.
#[test]
fn iipsrv_1_1_agrees() {
    let Some(server) = Iipsrv::start() else {
        eprintln!("iipsrv 1.1 or cgi-fcgi not installed; skipped");
        return;
    };
    for name in [
        "rgb8_tiled.jp2",
        "rgb8_untiled.jp2",
        "grey8.jp2",
        "rgba8.jp2",
        "rgb8_lossless.jp2",
    ] {
        let src = open(name);
        let all = src.info().quality_layers;
        let (_, body) = server.get(&format!("FIF={name}&OBJ=Max-size&OBJ=Resolution-number"));
        let text = String::from_utf8_lossy(&body).into_owned();
        let n = src.info().num_resolutions();
        assert!(
            text.contains(&format!(
                "Max-size:{} {}",
                src.info().width,
                src.info().height
            )),
            "{name}: {text}"
        );
        assert!(
            text.contains(&format!("Resolution-number:{n}")),
            "{name}: {text}"
        );
        for r in 0..n {
            let (nx, ny) = src.info().level(r).unwrap().tiles();
            for t in 0..nx * ny {
                let ours = src.tile(r, t, 0, all).unwrap();
                let (is_jpeg, body) = server.get(&format!("FIF={name}&LYR={all}&JTL={r},{t}"));
                assert!(
                    is_jpeg,
                    "{name} r{r} t{t}: {}",
                    String::from_utf8_lossy(&body)
                );
                let c = match ours.channels {
                    1 => 1,
                    _ => 3,
                };
                let format = if c == 1 {
                    turbojpeg::PixelFormat::GRAY
                } else {
                    turbojpeg::PixelFormat::RGB
                };
                let theirs = turbojpeg::decompress(&body, format).unwrap();
                assert_eq!(
                    (theirs.width as u32, theirs.height as u32),
                    (ours.width, ours.height),
                    "{name} r{r} t{t}"
                );
                // Compare luma: iipsrv's JPEG tiles are chroma-subsampled even at quality 100.
                let luma = |p: &[i64]| match p {
                    [g] => *g as f64,
                    [r, g, b, ..] => 0.299 * *r as f64 + 0.587 * *g as f64 + 0.114 * *b as f64,
                    _ => unreachable!(),
                };
                let ours = values(&ours.samples);
                let oc = ours.len() / (theirs.width * theirs.height);
                let mut sum = 0.0;
                let mut worst = 0.0f64;
                for y in 0..theirs.height {
                    for x in 0..theirs.width {
                        let at = (y * theirs.width + x) * oc;
                        let a = luma(&ours[at..at + c]);
                        let at = y * theirs.pitch + x * c;
                        let px: Vec<i64> = theirs.pixels[at..at + c]
                            .iter()
                            .map(|&v| v as i64)
                            .collect();
                        let d = (a - luma(&px)).abs();
                        sum += d;
                        worst = worst.max(d);
                    }
                }
                let mean = sum / (theirs.width * theirs.height) as f64;
                assert!(mean < 1.0, "{name} r{r} t{t}: mean luma difference {mean}");
                assert!(worst < 12.0, "{name} r{r} t{t}: luma difference {worst}");
            }
        }
    }
}

/// Mutated copies of the fixtures through the shared harness: every open, tile and region
/// decode answers, with pixels of the advertised size or an error.
/// `cargo test --lib mutations -- --ignored` runs many more.
fn mutate_and_decode(names: &[&str], rounds: u32) {
    let tester = SourceTester::new(Jp2Source::open)
        .region(|src: &Jp2Source, r, (x, y, w, h)| src.region(r, x, y, w, h, 0));
    let mut mutator = Mutator::new(0x9E37_79B9_7F4A_7C15, Focus::Anywhere).truncate_every(5);
    for name in names {
        tester.mutations(&fx(name), &mut mutator, rounds);
    }
}

#[test]
fn mutated_files_answer() {
    mutate_and_decode(&["rgb8_tiled.jp2", "grey8_offset.jp2", "rgb8.j2k"], 20);
}

#[test]
#[ignore]
fn mutations() {
    mutate_and_decode(
        &[
            "rgb8_tiled.jp2",
            "rgb8_untiled.jp2",
            "grey8_offset.jp2",
            "rgb8.j2k",
            "rgba8.jp2",
            "rgb16.jp2",
            "bilevel.jp2",
        ],
        400,
    );
}
