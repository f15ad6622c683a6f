//! Fixture-based tests. The fixtures and the formulas used here are made by
//! `fixtures/make-fixtures.sh` and `fixtures/tiff/tiffgen.py`; `fixtures/tiff/README.md` lists
//! them.

use std::path::PathBuf;

use super::*;
use crate::source::Level;
use crate::source::error::{Corrupt, IoOp, Missing, SourceError, SourceErrorKind, Unsupported};
use crate::source::testutil::{Focus, Mutator, SourceTester, assert_file_fault, fixture};

fn fx(name: &str) -> PathBuf {
    fixture("tiff", name)
}

fn open(name: &str) -> TiffSource {
    TiffSource::open(&fx(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn as_f64(s: &Samples) -> Vec<f64> {
    match s {
        Samples::U8(v) => v.iter().map(|&x| x as f64).collect(),
        Samples::U16(v) => v.iter().map(|&x| x as f64).collect(),
        Samples::U32(v) => v.iter().map(|&x| x as f64).collect(),
        Samples::I32(v) => v.iter().map(|&x| x as f64).collect(),
        Samples::F32(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

/// A whole level stitched from its tiles: (level, channels, samples). Checks every tile's size.
fn stitch(src: &TiffSource, r: u32, page: u32) -> (Level, usize, Vec<f64>) {
    let lvl = *src.info().level(r).expect("resolution");
    let (nx, ny) = lvl.tiles();
    let (w, h) = (lvl.width as usize, lvl.height as usize);
    let mut out = Vec::new();
    let mut ch = 0;
    for t in 0..nx * ny {
        let img = src
            .tile(r, t, page, 0)
            .unwrap_or_else(|e| panic!("r{r} t{t} p{page}: {e}"));
        assert_eq!(
            (img.width, img.height),
            lvl.tile_size(t).unwrap(),
            "tile {t} size"
        );
        assert_eq!(
            img.samples.len(),
            (img.width * img.height) as usize * img.channels as usize
        );
        if out.is_empty() {
            ch = img.channels as usize;
            out = vec![f64::NAN; w * h * ch];
        }
        let (x0, y0) = (
            (t % nx * lvl.tile_width) as usize,
            (t / nx * lvl.tile_height) as usize,
        );
        let v = as_f64(&img.samples);
        let row = img.width as usize * ch;
        for y in 0..img.height as usize {
            let dst = ((y0 + y) * w + x0) * ch;
            out[dst..dst + row].copy_from_slice(&v[y * row..(y + 1) * row]);
        }
    }
    (lvl, ch, out)
}

/// The expected samples of a `w`×`h` image from a pixel formula.
fn expect(w: u32, h: u32, f: impl Fn(u32, u32) -> Vec<f64>) -> Vec<f64> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .flat_map(|(x, y)| f(x, y))
        .collect()
}

/// Exact equality of sample lists, reporting the first difference instead of both lists.
#[track_caller]
fn assert_same(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} samples differ; first at {i}: got {} want {}",
            bad.len(),
            got[i],
            want[i]
        );
    }
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn mean_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64
}

/// base.ppm: R = x*255/99, G = y*255/74, B = (x*3 + y*5) % 256.
fn base_rgb(x: u32, y: u32) -> Vec<f64> {
    vec![
        (x * 255 / 99) as f64,
        (y * 255 / 74) as f64,
        ((x * 3 + y * 5) % 256) as f64,
    ]
}

fn sizes(info: &ImageInfo) -> Vec<(u32, u32, u32, u32)> {
    info.levels
        .iter()
        .map(|l| (l.width, l.height, l.tile_width, l.tile_height))
        .collect()
}

#[test]
fn source_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TiffSource>();
}

#[test]
fn rgb_reference_description() {
    let src = open("rgb8_none.tif");
    let info = src.info();
    assert_eq!(info.format, ImageFormat::Tiff);
    assert_eq!((info.width, info.height), (100, 75));
    assert_eq!(
        sizes(info),
        vec![(100, 75, 32, 32), (50, 37, 32, 32), (25, 18, 32, 32)]
    );
    assert_eq!((info.channels, info.bits_per_sample), (3, 8));
    assert_eq!(
        (info.sample_format, info.colour),
        (SampleFormat::Unsigned, ColourSpace::Srgb)
    );
    assert_eq!(info.min_max, vec![(0.0, 255.0); 3]);
    // vips writes 10 pixels per centimetre by default.
    assert_eq!(
        info.dpi,
        Some(Dpi {
            x: 10.0,
            y: 10.0,
            unit: 3
        })
    );
    assert!(info.stack.is_empty());
    assert_eq!(info.quality_layers, 0);
}

#[test]
fn rgb_reference_pixels_match_the_generator() {
    let src = open("rgb8_none.tif");
    let (lvl, ch, got) = stitch(&src, 2, 0);
    assert_eq!(ch, 3);
    assert_same(&got, &expect(lvl.width, lvl.height, base_rgb), "level");
    let img = src.tile(2, 0, 0, 0).unwrap();
    assert_eq!(
        (img.channels, img.bits_per_sample, img.colour),
        (3, 8, ColourSpace::Srgb)
    );
    assert!(matches!(img.samples, Samples::U8(_)));
}

#[test]
fn edge_tiles_are_cropped() {
    let src = open("rgb8_none.tif");
    // Level 0 is 4 x 3 tiles: the last column is 4 wide, the last row 11 high.
    assert_eq!(
        (
            src.tile(2, 3, 0, 0).unwrap().width,
            src.tile(2, 3, 0, 0).unwrap().height
        ),
        (4, 32)
    );
    let corner = src.tile(2, 11, 0, 0).unwrap();
    assert_eq!((corner.width, corner.height), (4, 11));
    assert_eq!(as_f64(&corner.samples)[..3], base_rgb(96, 64)[..]);
    // The smallest level is a single partial tile.
    let small = src.tile(0, 0, 0, 0).unwrap();
    assert_eq!((small.width, small.height), (25, 18));
}

#[test]
fn lossless_compressions_and_layouts_decode_identically() {
    let reference = open("rgb8_none.tif");
    let levels: Vec<_> = (0..3).map(|r| stitch(&reference, r, 0)).collect();
    for name in [
        "rgb8_lzw.tif",
        "rgb8_deflate.tif",
        "rgb8_deflate32946.tif",
        "rgb8_packbits.tif",
        "rgb8_zstd.tif",
        "rgb8_webp.tif",
        "rgb8_subifd.tif",
        "rgb8_bigtiff.tif",
        "rgb8_separate.tif",
    ] {
        let src = open(name);
        assert_eq!(sizes(src.info()), sizes(reference.info()), "{name}");
        assert_eq!(
            (src.info().channels, src.info().colour),
            (3, ColourSpace::Srgb),
            "{name}"
        );
        for (r, want) in levels.iter().enumerate() {
            assert_eq!(&stitch(&src, r as u32, 0), want, "{name} resolution {r}");
        }
    }
    let single = open("rgb8_single.tif");
    assert_eq!(sizes(single.info()), vec![(100, 75, 32, 32)]);
    assert_eq!(stitch(&single, 0, 0), levels[2]);
}

#[test]
fn lossy_compressions_decode_close_to_the_reference() {
    // A sanity bound only (the small levels are full of sharp edges); exactness against
    // libtiff is checked by `lossy_compressions_decode_exactly_like_libtiff`.
    let reference = open("rgb8_none.tif");
    for name in [
        "rgb8_jpeg.tif",
        "rgb8_jpeg_q95.tif",
        "rgb8_jpeg_ycbcr.tif",
        "rgb8_jpeg_rgb.tif",
        "rgb8_webp_lossy.tif",
    ] {
        let src = open(name);
        assert_eq!(sizes(src.info()), sizes(reference.info()), "{name}");
        for r in 0..3 {
            let (_, ch, got) = stitch(&src, r, 0);
            let (_, _, want) = stitch(&reference, r, 0);
            assert_eq!(ch, 3);
            let m = mean_diff(&got, &want);
            assert!(m < 16.0, "{name} r{r}: mean difference {m}");
        }
    }
}

#[test]
fn lossy_compressions_decode_exactly_like_libtiff() {
    let table = std::fs::read_to_string(fx("lossy-reference.txt")).unwrap();
    let mut checked = 0;
    for line in table.lines().filter(|l| !l.starts_with('#')) {
        let [name, native, hash] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            panic!("{line}")
        };
        let src = open(name);
        let r = src.info().num_resolutions() - 1 - native.parse::<u32>().unwrap();
        let (_, _, got) = stitch(&src, r, 0);
        let fnv = got.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &v| {
            (h ^ v as u64).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!(format!("{fnv:016x}"), hash, "{name} resolution {r}");
        checked += 1;
    }
    assert_eq!(checked, 18);
}

#[test]
fn non_square_tiles() {
    let src = open("rgb8_nonsquare.tif");
    let info = src.info();
    assert_eq!(
        info.levels[0],
        Level {
            width: 100,
            height: 75,
            tile_width: 48,
            tile_height: 16
        }
    );
    let (lvl, _, got) = stitch(&src, info.num_resolutions() - 1, 0);
    assert_same(&got, &expect(lvl.width, lvl.height, base_rgb), "level");
    // 3 x 5 tiles: last column 4 wide, last row 11 high.
    let t = src.tile(info.num_resolutions() - 1, 14, 0, 0).unwrap();
    assert_eq!((t.width, t.height), (4, 11));
}

#[test]
fn out_of_range_requests_fail() {
    let src = open("rgb8_none.tif");
    let e = src.tile(3, 0, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Resolution(3)));
    assert_eq!(e.format, Some(ImageFormat::Tiff));
    let e = src.tile(2, 12, 0, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Tile(12)));
    assert!(src.raw_tile(5, 0, 0).is_err());
    assert!(src.raw_tile(0, 1, 0).is_err());
    // A single image ignores the page number.
    assert_eq!(src.tile(0, 0, 3, 0).unwrap(), src.tile(0, 0, 0, 0).unwrap());
}

#[test]
fn stripped_files_are_not_tiled() {
    let e = TiffSource::open(&fx("rgb8_strips.tif")).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Unsupported(Unsupported::NotTiled));
    assert_file_fault(&e, ImageFormat::Tiff, "rgb8_strips.tif");
}

#[test]
fn missing_files_do_not_leak_paths() {
    let e = TiffSource::open(&fx("no-such-file.tif")).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Io(IoOp::Open));
    assert_eq!(e.name, None);
    assert_file_fault(&e, ImageFormat::Tiff, "no-such-file");
}

#[test]
fn greyscale_8_bit() {
    let grey = |x: u32, y: u32| vec![((x * 2 + y * 3) % 256) as f64];
    let src = open("grey8_deflate.tif");
    assert_eq!(
        (src.info().channels, src.info().colour),
        (1, ColourSpace::Grey)
    );
    let (lvl, _, got) = stitch(&src, 2, 0);
    assert_same(&got, &expect(lvl.width, lvl.height, grey), "level");
    let jpeg = open("grey8_jpeg.tif");
    let (_, _, got) = stitch(&jpeg, 2, 0);
    let want = expect(lvl.width, lvl.height, grey);
    assert!(mean_diff(&got, &want) < 4.0, "{}", mean_diff(&got, &want));
    // Big-endian BigTIFF written by hand: nearest-neighbour levels.
    let be = open("grey8_bigtiff_be.tif");
    assert_eq!(sizes(be.info()), vec![(70, 45, 32, 32), (35, 22, 32, 32)]);
    for r in 0..2 {
        let k = 1 - r;
        let (lvl, _, got) = stitch(&be, r, 0);
        assert_same(
            &got,
            &expect(lvl.width, lvl.height, |x, y| grey(x << k, y << k)),
            "level",
        );
    }
}

#[test]
fn sixteen_bit_in_both_byte_orders() {
    let f = |x: u32, y: u32| vec![(x * 600 + y * 37) as f64];
    let le = open("grey16.tif");
    let be = open("grey16_be.tif");
    assert_eq!(
        (le.info().bits_per_sample, le.info().colour),
        (16, ColourSpace::Grey)
    );
    assert_eq!(le.info().min_max, vec![(0.0, 65535.0)]);
    let (lvl, _, got) = stitch(&le, 2, 0);
    assert_same(&got, &expect(lvl.width, lvl.height, f), "level");
    assert!(matches!(
        le.tile(2, 0, 0, 0).unwrap().samples,
        Samples::U16(_)
    ));
    for r in 0..3 {
        assert_eq!(stitch(&le, r, 0), stitch(&be, r, 0), "resolution {r}");
    }
    let rgb = open("rgb16_be.tif");
    assert_eq!((rgb.info().channels, rgb.info().bits_per_sample), (3, 16));
    for r in 0..2 {
        let k = 1 - r;
        let (lvl, _, got) = stitch(&rgb, r, 0);
        let want = expect(lvl.width, lvl.height, |x, y| {
            let (x, y) = (x << k, y << k);
            vec![
                (x * 900) as f64,
                (y * 1400) as f64,
                (65535 - x * 900) as f64,
            ]
        });
        assert_same(&got, &want, &format!("resolution {r}"));
    }
}

#[test]
fn float_pyramid_inherits_sample_format() {
    let f = |x: u32, y: u32| vec![(x as f64 / 100.0 + y as f64 / 1000.0) as f32 as f64];
    let src = open("grey32f.tif");
    let info = src.info();
    assert_eq!(
        (info.bits_per_sample, info.sample_format),
        (32, SampleFormat::Float)
    );
    assert_eq!(info.min_max, vec![(0.0, 1.0)]);
    let (lvl, _, got) = stitch(&src, 2, 0);
    assert_same(&got, &expect(lvl.width, lvl.height, f), "level");
    let none = open("grey32f_none.tif");
    assert_eq!(stitch(&none, 0, 0).2, got);
    // Reduced levels carry no SampleFormat (vips); they are still floats: 2x2 means.
    for r in 0..2 {
        let img = src.tile(r, 0, 0, 0).unwrap();
        assert!(matches!(img.samples, Samples::F32(_)), "resolution {r}");
        let k = 2 - r;
        let (lvl, _, got) = stitch(&src, r, 0);
        let n = (1u32 << k) as f64;
        let want = expect(lvl.width, lvl.height, |x, y| {
            vec![
                ((x << k) as f64 + (n - 1.0) / 2.0) / 100.0
                    + ((y << k) as f64 + (n - 1.0) / 2.0) / 1000.0,
            ]
        });
        assert!(
            max_diff(&got, &want) < 1e-5,
            "resolution {r}: {}",
            max_diff(&got, &want)
        );
    }
}

#[test]
fn thirty_two_bit_integers() {
    let src = open("grey32u.tif");
    assert_eq!(src.info().min_max, vec![(7.0, 2800044007.0)]);
    assert_eq!(src.info().sample_format, SampleFormat::Unsigned);
    for r in 0..2 {
        let k = 1 - r;
        let (lvl, _, got) = stitch(&src, r, 0);
        assert_same(
            &got,
            &expect(lvl.width, lvl.height, |x, y| {
                vec![((x << k) * 40000000 + (y << k) * 1000 + 7) as f64]
            }),
            "level",
        );
    }
    assert!(matches!(
        src.tile(1, 0, 0, 0).unwrap().samples,
        Samples::U32(_)
    ));
    let signed = open("grey32s.tif");
    assert_eq!(signed.info().sample_format, SampleFormat::Signed);
    let (lvl, _, got) = stitch(&signed, 0, 0);
    assert_same(
        &got,
        &expect(lvl.width, lvl.height, |x, y| {
            vec![x as f64 * 1000.0 - y as f64 * 100000.0]
        }),
        "level",
    );
    assert!(matches!(
        signed.tile(0, 0, 0, 0).unwrap().samples,
        Samples::I32(_)
    ));
}

#[test]
fn sub_byte_depths_are_unpacked_and_scaled() {
    for bps in [1u32, 2, 4] {
        let src = open(&format!("grey{bps}.tif"));
        let info = src.info();
        assert_eq!(info.bits_per_sample, bps as u16);
        assert_eq!(
            info.colour,
            if bps == 1 {
                ColourSpace::Binary
            } else {
                ColourSpace::Grey
            }
        );
        assert_eq!(info.min_max, vec![(0.0, 255.0)]);
        for r in 0..2 {
            let k = 1 - r;
            let (lvl, _, got) = stitch(&src, r, 0);
            let want = expect(lvl.width, lvl.height, |x, y| {
                let v = ((x << k) * 7 + (y << k) * 13) % (1 << bps);
                vec![convert::scale8(v, bps as u8) as f64]
            });
            assert_same(&got, &want, &format!("{bps} bits, resolution {r}"));
        }
        assert!(matches!(
            src.tile(1, 0, 0, 0).unwrap().samples,
            Samples::U8(_)
        ));
    }
}

#[test]
fn ten_to_fourteen_bits_are_scaled_to_sixteen() {
    for (name, bps, levels) in [
        ("grey10.tif", 10u32, 2),
        ("grey12.tif", 12, 2),
        ("grey14.tif", 14, 2),
        ("grey12_be.tif", 12, 1),
        ("grey12_lzw.tif", 12, 2),
    ] {
        let src = open(name);
        assert_eq!(src.info().min_max, vec![(0.0, 65535.0)], "{name}");
        assert_eq!(src.info().num_resolutions(), levels, "{name}");
        for r in 0..levels {
            let k = levels - 1 - r;
            let (lvl, _, got) = stitch(&src, r, 0);
            let want = expect(lvl.width, lvl.height, |x, y| {
                vec![
                    convert::scale16(((x << k) * 7 + (y << k) * 13) % (1 << bps), bps as u8) as f64,
                ]
            });
            assert_same(&got, &want, &format!("{name} resolution {r}"));
        }
        assert!(matches!(
            src.tile(0, 0, 0, 0).unwrap().samples,
            Samples::U16(_)
        ));
    }
}

#[test]
fn fill_order_and_sparse_tiles() {
    let lsb = open("grey1_fillorder2.tif");
    assert_eq!(stitch(&lsb, 0, 0), stitch(&open("grey1.tif"), 1, 0));
    let sparse = open("grey8_sparse.tif");
    let (lvl, _, got) = stitch(&sparse, 0, 0);
    let want = expect(lvl.width, lvl.height, |x, y| {
        vec![if (32..64).contains(&x) && y < 32 {
            0.0
        } else {
            ((x + y) % 256) as f64
        }]
    });
    assert_same(&got, &want, "sparse");
    assert_eq!(sparse.raw_tile(0, 1, 0).unwrap(), None);
}

#[test]
fn subsampled_rgb_jpeg_is_not_passed_through() {
    // Turn the Orientation entry (274, SHORT, 1) of rgb8_jpeg_q95.tif (photometric RGB) into a
    // YCbCrSubsampling entry (530): iipsrv decodes such tiles instead of passing them on.
    let mut data = std::fs::read(fx("rgb8_jpeg_q95.tif")).unwrap();
    let entry = [0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00];
    let mut patched = 0;
    for i in 0..data.len() - entry.len() {
        if data[i..i + entry.len()] == entry {
            data[i + 1] = 0x02;
            patched += 1;
        }
    }
    assert_eq!(patched, 3);
    let src = open_bytes("subsampled", &data).unwrap();
    assert_eq!(src.raw_tile(2, 0, 0).unwrap(), None);
    assert_eq!(
        src.tile(2, 0, 0, 0).unwrap(),
        open("rgb8_jpeg_q95.tif").tile(2, 0, 0, 0).unwrap()
    );
    assert!(
        open("rgb8_jpeg_q95.tif")
            .raw_tile(2, 0, 0)
            .unwrap()
            .is_some()
    );
}

#[test]
fn min_is_white_is_inverted() {
    let one = open("grey1_miniswhite.tif");
    assert_eq!(one.info().colour, ColourSpace::Binary);
    let (lvl, _, got) = stitch(&one, 0, 0);
    assert_same(
        &got,
        &expect(lvl.width, lvl.height, |x, y| {
            vec![if (x + y) % 2 == 1 { 0.0 } else { 255.0 }]
        }),
        "level",
    );
    let eight = open("grey8_miniswhite.tif");
    assert_eq!(eight.info().colour, ColourSpace::Grey);
    let (lvl, _, got) = stitch(&eight, 0, 0);
    assert_same(
        &got,
        &expect(lvl.width, lvl.height, |x, y| {
            vec![(255 - (x * 3 + y * 2) % 256) as f64]
        }),
        "level",
    );
    assert_eq!(eight.raw_tile(0, 0, 0).unwrap(), None);
}

#[test]
fn palettes_are_expanded_to_rgb() {
    let src = open("palette8.tif");
    let info = src.info();
    assert_eq!(
        (info.channels, info.bits_per_sample, info.colour),
        (3, 8, ColourSpace::Srgb)
    );
    assert_eq!(info.min_max, vec![(0.0, 255.0); 3]);
    let (lvl, ch, got) = stitch(&src, 0, 0);
    assert_eq!(ch, 3);
    assert_eq!(
        got,
        expect(lvl.width, lvl.height, |x, y| {
            let i = (x + y) % 256;
            vec![i as f64, (255 - i) as f64, (i * 7 % 256) as f64]
        })
    );
    let src = open("palette4.tif");
    let (lvl, _, got) = stitch(&src, 0, 0);
    assert_eq!(
        got,
        expect(lvl.width, lvl.height, |x, y| {
            let i = (x + y) % 16;
            vec![(i * 17) as f64, ((15 - i) * 17) as f64, 128.0]
        })
    );
}

#[test]
fn alpha_and_extra_bands() {
    let src = open("rgba8.tif");
    assert_eq!(
        (src.info().channels, src.info().colour),
        (4, ColourSpace::Srgb)
    );
    let (lvl, _, got) = stitch(&src, 2, 0);
    assert_eq!(
        got,
        expect(lvl.width, lvl.height, |x, y| {
            let mut v = base_rgb(x, y);
            v.push(((x + y * 2) % 256) as f64);
            v
        })
    );
    assert_eq!(src.raw_tile(2, 0, 0).unwrap(), None);
    let src = open("multiband5.tif");
    assert_eq!(
        (src.info().channels, src.info().colour),
        (5, ColourSpace::Multiband)
    );
    assert_eq!(src.info().min_max.len(), 5);
    let (lvl, ch, got) = stitch(&src, 2, 0);
    assert_eq!(ch, 5);
    assert_eq!(
        got,
        expect(lvl.width, lvl.height, |x, y| {
            let mut v = base_rgb(x, y);
            v.extend([((x * 2 + y * 3) % 256) as f64, ((x + y * 2) % 256) as f64]);
            v
        })
    );
}

#[test]
fn cielab_in_8_bit_and_float() {
    let lab8 = open("lab8.tif");
    let labf = open("labf.tif");
    for src in [&lab8, &labf] {
        assert_eq!(
            (src.info().channels, src.info().colour),
            (3, ColourSpace::CieLab)
        );
    }
    assert_eq!(labf.info().sample_format, SampleFormat::Float);
    let img = lab8
        .tile(lab8.info().num_resolutions() - 1, 0, 0, 0)
        .unwrap();
    assert_eq!(img.colour, ColourSpace::CieLab);
    let Samples::U8(l8) = img.samples else {
        panic!("8-bit Lab")
    };
    let img = labf
        .tile(labf.info().num_resolutions() - 1, 0, 0, 0)
        .unwrap();
    let Samples::F32(lf) = img.samples else {
        panic!("float Lab")
    };
    // Black at the origin.
    assert_eq!(&l8[..3], &[0, 0, 0]);
    assert!(lf[..3].iter().all(|v| v.abs() < 0.01), "{:?}", &lf[..3]);
    // Both tiles are 32x32: 8-bit L is L*255/100, a and b are signed bytes.
    for (p8, pf) in l8.chunks(3).zip(lf.chunks(3)) {
        assert!((p8[0] as f32 - pf[0] * 2.55).abs() <= 1.5, "{p8:?} {pf:?}");
        assert!((p8[1] as i8 as f32 - pf[1]).abs() <= 1.5, "{p8:?} {pf:?}");
        assert!((p8[2] as i8 as f32 - pf[2]).abs() <= 1.5, "{p8:?} {pf:?}");
    }
    assert_eq!(lab8.raw_tile(2, 0, 0).unwrap(), None);
}

#[test]
fn classic_stack_selects_pages() {
    let src = open("stack_classic.tif");
    let info = src.info();
    assert_eq!(sizes(info), vec![(64, 48, 32, 32)]);
    assert_eq!(info.stack.len(), 3);
    assert!(info.stack.iter().all(|p| p.scale == 1.0));
    for page in 0..3u32 {
        let (lvl, _, got) = stitch(&src, 0, page);
        let want = expect(lvl.width, lvl.height, |x, y| {
            vec![(x * 4) as f64, (y * 5) as f64, (page * 80 + 10) as f64]
        });
        assert_same(&got, &want, &format!("page {page}"));
    }
    let e = src.tile(0, 0, 3, 0).unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::NotFound(Missing::Page(3)));
}

#[test]
fn subifd_stack_selects_pages_and_levels() {
    let src = open("stack_subifd.tif");
    let info = src.info();
    assert_eq!(sizes(info), vec![(64, 48, 32, 32), (32, 24, 32, 32)]);
    assert_eq!(info.stack.len(), 3);
    for page in 0..3u32 {
        let (lvl, _, got) = stitch(&src, 1, page);
        let want = expect(lvl.width, lvl.height, |x, y| {
            vec![(x * 4) as f64, (y * 5) as f64, (page * 80 + 10) as f64]
        });
        assert_same(&got, &want, &format!("page {page}"));
        let (_, _, small) = stitch(&src, 0, page);
        assert!(
            small.chunks(3).all(|p| p[2] == (page * 80 + 10) as f64),
            "page {page}"
        );
    }
    assert!(src.tile(1, 0, 3, 0).is_err());
}

#[test]
fn thumbnails_and_masks_are_not_levels() {
    let src = open("rgb8_thumb_mask.tif");
    assert_eq!(
        sizes(src.info()),
        vec![(70, 45, 32, 32), (35, 22, 32, 32), (17, 11, 32, 32)]
    );
    for r in 0..3 {
        let k = 2 - r;
        let (lvl, _, got) = stitch(&src, r, 0);
        let want = expect(lvl.width, lvl.height, |x, y| {
            vec![
                ((x << k) * 3 % 256) as f64,
                ((y << k) * 5 % 256) as f64,
                77.0,
            ]
        });
        assert_same(&got, &want, &format!("resolution {r}"));
    }
}

#[test]
fn metadata_and_resolution() {
    let src = open("metadata.tif");
    let info = src.info();
    let text = |k: &str| {
        info.metadata
            .get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(text("title").as_deref(), Some("Test title"));
    assert_eq!(text("description").as_deref(), Some("A description"));
    assert_eq!(text("make").as_deref(), Some("Acme"));
    assert_eq!(text("model").as_deref(), Some("X1"));
    assert_eq!(text("pagename").as_deref(), Some("page one"));
    assert_eq!(text("software").as_deref(), Some("make-fixtures"));
    assert_eq!(text("date").as_deref(), Some("2026:11:20 12:00:00"));
    assert_eq!(text("creator").as_deref(), Some("A. Creator"));
    assert_eq!(text("rights").as_deref(), Some("CC0"));
    assert_eq!(text("scale").as_deref(), Some("0.25"));
    assert_eq!(
        info.metadata["xmp"],
        b"<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"></x:xmpmeta>"
    );
    assert_eq!(
        info.metadata["icc"],
        (0..=255u8).chain(0..=255u8).collect::<Vec<_>>()
    );
    assert_eq!(info.metadata.len(), 12);
    assert_eq!(
        info.dpi,
        Some(Dpi {
            x: 300.0,
            y: 150.0,
            unit: 2
        })
    );
    assert_eq!(info.min_max, vec![(10.0, 200.0)]);
    assert!(open("rgb8_thumb_mask.tif").info().metadata.is_empty());
    assert_eq!(open("rgb8_thumb_mask.tif").info().dpi, None);
}

/// The stored bytes of chunk `t` of the directory behind IIP resolution `r`.
fn stored(src: &TiffSource, r: u32, t: usize) -> (Vec<u8>, Option<Vec<u8>>) {
    let dir = src.directory(r, 0).unwrap();
    let file = std::fs::read(&src.path).unwrap();
    let (o, n) = (dir.offsets[t] as usize, dir.byte_counts[t] as usize);
    (file[o..o + n].to_vec(), dir.jpeg_tables.clone())
}

#[test]
fn jpeg_pass_through_splices_the_tables() {
    for name in [
        "rgb8_jpeg.tif",
        "rgb8_jpeg_q95.tif",
        "rgb8_jpeg_ycbcr.tif",
        "rgb8_jpeg_rgb.tif",
        "grey8_jpeg.tif",
    ] {
        let src = open(name);
        let raw = src
            .raw_tile(2, 5, 0)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no pass-through"));
        assert_eq!(raw.codec, RawCodec::Jpeg);
        let (tile, tables) = stored(&src, 2, 5);
        let tables = tables.unwrap();
        let mut want = tables[..tables.len() - 2].to_vec();
        want.extend_from_slice(&tile[2..]);
        assert_eq!(raw.bytes, want, "{name}");
        assert_eq!(raw.bytes.len(), tables.len() + tile.len() - 4);
        assert_eq!(&raw.bytes[..2], &[0xFF, 0xD8]);
        assert_eq!(&raw.bytes[raw.bytes.len() - 2..], &[0xFF, 0xD9]);
        // The spliced stream decodes to exactly the decoded tile.
        let decoded = src.tile(2, 5, 0, 0).unwrap();
        let ch = decoded.channels;
        let mut px = vec![0u8; 32 * 32 * ch as usize];
        let out = codec::Pixels {
            dst: &mut px,
            width: 32,
            height: 32,
            channels: ch,
        };
        codec::jpeg(&raw.bytes, out).unwrap();
        assert_eq!(decoded.samples, Samples::U8(px), "{name}");
        // Edge tiles and partial levels are never passed through.
        assert_eq!(src.raw_tile(2, 3, 0).unwrap(), None, "{name}");
        assert_eq!(src.raw_tile(2, 8, 0).unwrap(), None, "{name}");
        assert_eq!(src.raw_tile(0, 0, 0).unwrap(), None, "{name}");
    }
}

#[test]
fn webp_pass_through_returns_the_stored_tile() {
    for name in ["rgb8_webp.tif", "rgb8_webp_lossy.tif"] {
        let src = open(name);
        let raw = src.raw_tile(2, 0, 0).unwrap().unwrap();
        assert_eq!(raw.codec, RawCodec::Webp);
        assert_eq!(raw.bytes, stored(&src, 2, 0).0);
        assert_eq!(&raw.bytes[..4], b"RIFF");
        assert_eq!(src.raw_tile(2, 11, 0).unwrap(), None);
    }
}

#[test]
fn other_compressions_are_not_passed_through() {
    for name in [
        "rgb8_none.tif",
        "rgb8_deflate.tif",
        "rgb8_zstd.tif",
        "grey16.tif",
        "grey1.tif",
        "palette8.tif",
    ] {
        let src = open(name);
        assert_eq!(
            src.raw_tile(src.info().num_resolutions() - 1, 0, 0)
                .unwrap(),
            None,
            "{name}"
        );
    }
}

#[test]
fn malformed_files_fail_at_open() {
    for name in [
        "bad_zero_size.tif",
        "bad_zero_tile.tif",
        "bad_huge_size.tif",
        "bad_huge_tile.tif",
        "bad_few_offsets.tif",
        "bad_ifd_offset.tif",
        "bad_ifd_count.tif",
        "bad_mask_only.tif",
    ] {
        let e = TiffSource::open(&fx(name)).expect_err(name);
        assert_file_fault(&e, ImageFormat::Tiff, name);
    }
}

/// A stack whose later pages are tiled unlike the first (found by fuzzing: page 1's tiles were
/// 32×32 where the grid, from page 0, promised 32×48): those pages are dropped, so every tile
/// served has the size its level promises.
#[test]
fn stack_pages_laid_out_unlike_the_first_are_dropped() {
    let src = open("bad_page_layout.tif");
    let info = src.info();
    assert!(info.stack.len() <= 1, "{} pages kept", info.stack.len());
    for page in 0..3 {
        for r in 0..info.num_resolutions() {
            let level = *info.level(r).expect("level");
            if let Ok(tile) = src.tile(r, 0, page, 0) {
                assert_eq!((tile.width, tile.height), level.tile_size(0).unwrap());
            }
        }
    }
}

#[test]
fn levels_wider_or_taller_than_the_level_before_are_skipped() {
    // Found by fuzzing: a SubIFD level of 32×24 under a full resolution of 20×48.
    let src = open("bad_level_wider.tif");
    let info = src.info();
    let n = info.num_resolutions();
    for r in 1..n {
        let (small, large) = (info.level(r - 1).unwrap(), info.level(r).unwrap());
        assert!(
            small.width <= large.width && small.height <= large.height,
            "level {r}: {large:?} after {small:?}"
        );
    }
}

#[test]
fn malformed_tiles_fail_at_decode() {
    for name in [
        "bad_bits.tif",
        "bad_compression.tif",
        "bad_offsets.tif",
        "bad_bytecounts.tif",
        "bad_deflate.tif",
        "bad_jpeg.tif",
    ] {
        let src = open(name);
        assert_eq!(sizes(src.info()), vec![(64, 64, 32, 32)], "{name}");
        for t in 0..4 {
            let e = src.tile(0, t, 0, 0).expect_err(name);
            assert_file_fault(&e, ImageFormat::Tiff, name);
            let _ = src.raw_tile(0, t, 0);
        }
    }
    assert!(matches!(
        open("bad_compression.tif")
            .tile(0, 0, 0, 0)
            .unwrap_err()
            .kind,
        SourceErrorKind::Unsupported(Unsupported::Feature(_))
    ));
    assert!(matches!(
        open("bad_deflate.tif").tile(0, 0, 0, 0).unwrap_err().kind,
        SourceErrorKind::Corrupt(Corrupt::Data)
    ));
}

#[test]
fn ifd_loops_end() {
    let src = open("bad_loop.tif");
    assert_eq!(sizes(src.info()), vec![(64, 64, 32, 32)]);
    assert!(src.tile(0, 0, 0, 0).is_ok());
}

/// Write `data` to a fresh temporary file and open it (the result, never a panic).
fn open_bytes(tag: &str, data: &[u8]) -> Result<TiffSource> {
    let path = std::env::temp_dir().join(format!("iipsrv-tiff-{}-{tag}.tif", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let src = TiffSource::open(&path);
    std::fs::remove_file(&path).unwrap();
    src
}

/// The shared hostile-file harness, set up for TIFF (no region reads: TIFF regions are
/// stitched from tiles above the source).
fn tester() -> SourceTester<TiffSource, SourceError> {
    SourceTester::new(TiffSource::open).max_tiles(64)
}

#[test]
fn truncated_files_never_panic() {
    let tester = tester();
    for name in [
        "rgb8_jpeg.tif",
        "rgb8_subifd.tif",
        "rgb8_bigtiff.tif",
        "stack_subifd.tif",
        "grey12_lzw.tif",
    ] {
        tester.truncations(&fx(name), 97);
    }
}

#[test]
fn corrupted_files_never_panic() {
    // Concentrated on the directories at the end of vips files and spread over the data of
    // the others.
    let tester = tester();
    let mut mutator = Mutator::new(0x2545_F491_4F6C_DD1D, Focus::Tail(600));
    for name in [
        "rgb8_jpeg.tif",
        "rgb8_webp.tif",
        "rgb8_lzw.tif",
        "rgb8_subifd.tif",
        "grey8_bigtiff_be.tif",
        "palette4.tif",
        "grey12.tif",
        "rgb8_separate.tif",
        "grey32f.tif",
    ] {
        tester.mutations(&fx(name), &mut mutator, 60);
    }
}

#[test]
fn concurrent_decodes_agree() {
    let src = std::sync::Arc::new(open("rgb8_jpeg.tif"));
    let want: Vec<_> = (0..12).map(|t| src.tile(2, t, 0, 0).unwrap()).collect();
    let want = std::sync::Arc::new(want);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (src, want) = (src.clone(), want.clone());
            std::thread::spawn(move || {
                for round in 0..20 {
                    let t = (i * 7 + round) % 12;
                    assert_eq!(src.tile(2, t as u32, 0, 0).unwrap(), want[t]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn format_g_matches_c() {
    assert_eq!(format_g(0.25), "0.25");
    assert_eq!(format_g(1.0), "1");
    assert_eq!(format_g(100000.0), "100000");
    assert_eq!(format_g(1000000.0), "1e+06");
    assert_eq!(format_g(0.0001), "0.0001");
    assert_eq!(format_g(0.00001234), "1.234e-05");
    assert_eq!(format_g(1.234567891), "1.23457");
    assert_eq!(format_g(-2.5), "-2.5");
    assert_eq!(format_g(123456789.0), "1.23457e+08");
    assert_eq!(format_g(0.0), "0");
}

#[test]
fn shared_tile_arrays_are_read_within_a_budget() {
    // 48 IFDs of 1M tiles each, all pointing at the same 4 MiB offset array: 384 MiB of
    // arrays to parse from a 4 MiB file. The structure budget stops the parse early.
    let tiles: u32 = 1 << 20;
    let mut f = b"II*\0".to_vec();
    let first_ifd = 8 + tiles * 4;
    f.extend(first_ifd.to_le_bytes());
    f.resize(first_ifd as usize, 0);
    let entry = |tag: u16, typ: u16, count: u32, value: u32| -> Vec<u8> {
        [
            &tag.to_le_bytes()[..],
            &typ.to_le_bytes(),
            &count.to_le_bytes(),
            &value.to_le_bytes(),
        ]
        .concat()
    };
    for i in 0..48u32 {
        let next = if i == 47 {
            0
        } else {
            f.len() as u32 + 2 + 6 * 12 + 4
        };
        f.extend(6u16.to_le_bytes());
        f.extend(entry(256, 4, 1, 16 << 10));
        f.extend(entry(257, 4, 1, 16 << 10));
        f.extend(entry(322, 4, 1, 16));
        f.extend(entry(323, 4, 1, 16));
        f.extend(entry(324, 4, tiles, 8));
        f.extend(entry(325, 4, tiles, 8));
        f.extend(next.to_le_bytes());
    }
    let start = std::time::Instant::now();
    if let Ok(src) = open_bytes("shared", &f) {
        assert_eq!(src.info().levels.len(), 1);
        assert_eq!(
            src.tile(0, 0, 0, 0).unwrap().samples,
            Samples::U8(vec![0; 256])
        );
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

/// Decode speed per tile of full-resolution tiles of `$BENCH_DIR/{none,jpeg,...}.tif` (vips
/// pyramids with 256² tiles). Run with
/// `BENCH_DIR=... cargo test --release --lib bench_decode -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_decode() {
    let dir = std::env::var("BENCH_DIR").unwrap();
    for name in [
        "none",
        "jpeg",
        "deflate",
        "lzw",
        "webp",
        "zstd",
        "packbits",
        "deflate16",
        "float",
    ] {
        let src =
            TiffSource::open(&std::path::Path::new(&dir).join(format!("{name}.tif"))).unwrap();
        let r = src.info().num_resolutions() - 1;
        let n = src.info().level(r).unwrap().tile_count() as u32;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t0 = std::time::Instant::now();
            for t in 0..n {
                std::hint::black_box(src.tile(r, t, 0, 0).unwrap());
            }
            best = best.min(t0.elapsed().as_secs_f64() / n as f64);
        }
        let t0 = std::time::Instant::now();
        for t in 0..n {
            std::hint::black_box(src.raw_tile(r, t, 0).unwrap());
        }
        let raw = t0.elapsed().as_secs_f64() / n as f64;
        println!(
            "{name:10} {:7.1} us/tile  raw {:5.1} us",
            best * 1e6,
            raw * 1e6
        );
    }
}
