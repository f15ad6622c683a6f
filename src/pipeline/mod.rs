//! Processing of decoded pixels, in iipsrv's order (`docs/behaviour/pipeline-and-encoding.md` §3–§4).
//!
//! # Brief overview
//!
//! One file per transform, each with its formula in the module documentation; [`process`] runs
//! them in the fixed order of §4.1 (region exports) and §4.2 (tiles), whatever the order of the
//! commands in the request:
//!
//! 1. CIELAB → sRGB ([`convert::lab_to_float`]), giving float data in [0, 1];
//! 2. if the data are float or any float operation was asked for ([`needs_float`]): min/max
//!    (image values, `MINMAX`), contrast stretch ([`normalise::stretch_range`]), normalisation
//!    ([`normalise`]), hill-shading ([`shade`]), colour twist ([`twist`]), gamma or log
//!    ([`gamma`]), invert ([`invert`]), colour map ([`colourmap`]), convolution ([`convolve`]),
//!    contrast and 8-bit quantisation ([`quantise`]); otherwise the fast bit-depth reduction
//!    ([`convert::reduce_to_8bit`]);
//! 3. resize (region exports only, [`resize`]);
//! 4. dropping bands the encoder cannot take ([`convert::flatten`]);
//! 5. greyscale ([`grey`]), bitonal and equalisation ([`histogram`]);
//! 6. flip and rotation ([`rotate`]; for IIIF, any other angle: [`rotate_arbitrary`], on the
//!    final-size image, onto the bounding box, transparent for formats with alpha and white
//!    for JPEG and PDF; a bitonal image is thresholded again at 128 afterwards, since the
//!    interpolation makes greys along its edges);
//! 7. watermark ([`watermark`]).
//!
//! From step 3 on the data are 8-bit. [`process`] fails only in step 6, for a canvas too
//! large ([`rotate_arbitrary::MAX_ROTATED_BYTES`], 400) or an arbitrary angle on an image of
//! more than 4 channels (TIFF output, 400). Level and region selection for region exports is
//! [`geometry`]. Pixel loops run on rayon above [`PARALLEL_PIXELS`] pixels (upstream's OpenMP
//! threshold); results never depend on the thread count.

pub mod colourmap;
pub mod convert;
pub mod convolve;
pub mod gamma;
pub mod geometry;
pub mod grey;
pub mod histogram;
pub mod invert;
pub mod normalise;
pub mod quantise;
pub mod resize;
pub mod rotate;
pub mod rotate_arbitrary;
pub mod shade;
pub mod twist;
pub mod watermark;

use rayon::prelude::*;

use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage, Samples};
use crate::source::ImageInfo;
use crate::view::{ColourConversion, Contrast, Gamma, View};

pub use histogram::Histogram;
pub use watermark::Watermark;

/// Above this many pixels, pixel loops run in parallel (upstream's OpenMP threshold, §7).
pub const PARALLEL_PIXELS: usize = 65_536;

/// Pixels per parallel work item.
const BLOCK_PIXELS: usize = 4096;

/// Interleaved 32-bit float samples: the data of the float processing path.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<f32>,
}

impl FloatImage {
    pub fn pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// Map every pixel of `src` (`in_ch` samples each) to `out_ch` output samples, in parallel
/// above [`PARALLEL_PIXELS`].
pub(crate) fn map_pixels<T, U>(
    src: &[T],
    in_ch: usize,
    out_ch: usize,
    f: impl Fn(&[T], &mut [U]) + Sync,
) -> Vec<U>
where
    T: Sync,
    U: Send + Copy + Default,
{
    let in_ch = in_ch.max(1);
    let n = src.len() / in_ch;
    let mut out = vec![U::default(); n * out_ch];
    if out_ch == 0 {
        return out;
    }
    let run = |o: &mut [U], i: &[T]| {
        for (o, i) in o.chunks_exact_mut(out_ch).zip(i.chunks_exact(in_ch)) {
            f(i, o);
        }
    };
    if n > PARALLEL_PIXELS {
        out.par_chunks_mut(BLOCK_PIXELS * out_ch)
            .zip(src.par_chunks(BLOCK_PIXELS * in_ch))
            .for_each(|(o, i)| run(o, i));
    } else {
        run(&mut out, src);
    }
    out
}

/// Apply `f` to every sample in place, in parallel above [`PARALLEL_PIXELS`] samples.
pub(crate) fn for_each_sample<T: Send>(data: &mut [T], f: impl Fn(&mut T) + Sync) {
    if data.len() > PARALLEL_PIXELS {
        data.par_chunks_mut(BLOCK_PIXELS * 4)
            .for_each(|c| c.iter_mut().for_each(&f));
    } else {
        data.iter_mut().for_each(f);
    }
}

/// Whether the float path is needed for the *operations* (§1): contrast ≠ 1 (stretch
/// included), gamma ≠ 1 (log included), colour map, hill-shading, invert, MINMAX, colour twist
/// or convolution. Float samples (and CIELAB) take the float path anyway.
pub fn needs_float(view: &View) -> bool {
    let contrast = matches!(view.contrast, Some(Contrast::Stretch))
        || matches!(view.contrast, Some(Contrast::Factor(c)) if c != 1.0);
    let gamma = match view.gamma {
        Some(Gamma::Log) => true,
        Some(Gamma::Value(g)) => g != 1.0,
        None => false,
    };
    contrast
        || gamma
        || view.colour_map.is_some()
        || view.shade.is_some()
        || view.invert
        || !view.min_max.is_empty()
        || view.twist.is_some()
        || view.convolution.is_some()
}

/// Whether the image histogram is needed: equalisation, bitonal output or contrast stretch.
pub fn needs_histogram(view: &View) -> bool {
    matches!(
        view.contrast,
        Some(Contrast::Equalize) | Some(Contrast::Stretch)
    ) || view.colour == Some(ColourConversion::Binary)
}

/// A watermark pass: the mark, the block size (0 = the whole image) and the probability.
#[derive(Debug, Clone, Copy)]
pub struct WatermarkPass<'a> {
    pub mark: &'a Watermark,
    pub block: u32,
    pub probability: f64,
}

/// What [`process`] needs besides the pixels.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub info: &'a ImageInfo,
    pub view: &'a View,
    pub format: OutputFormat,
    /// The image histogram, when [`needs_histogram`].
    pub histogram: Option<&'a Histogram>,
    /// Output size for region exports (`None` for tiles: no resize).
    pub resize: Option<(u32, u32)>,
    /// `INTERPOLATION`.
    pub interpolation: crate::config::Interpolation,
    pub watermark: Option<WatermarkPass<'a>>,
}

/// The per-channel (min, max) used by the float path (§4.1 step 7a): the image's values
/// (padded with the sample type's range), overridden by `MINMAX`; CIELAB uses [0, 1].
pub fn channel_ranges(info: &ImageInfo, view: &View, raw: &RawImage) -> Vec<(f32, f32)> {
    let ch = raw.channels as usize;
    if raw.colour == ColourSpace::CieLab || info.colour == ColourSpace::CieLab {
        return vec![(0.0, 1.0); 3];
    }
    let default = match raw.samples {
        Samples::U8(_) => (0.0, 255.0),
        Samples::U16(_) => (0.0, 65535.0),
        Samples::U32(_) => (0.0, u32::MAX as f32),
        Samples::I32(_) => (i32::MIN as f32, i32::MAX as f32),
        Samples::F32(_) => (0.0, 1.0),
    };
    let mut ranges: Vec<(f32, f32)> = (0..ch)
        .map(|c| {
            info.min_max
                .get(c)
                .map(|&(a, b)| (a as f32, b as f32))
                .unwrap_or(default)
        })
        .collect();
    for &(c, min, max) in &view.min_max {
        if let Some(r) = ranges.get_mut(c) {
            *r = (min, max);
        }
    }
    ranges
}

/// Run the pipeline on decoded pixels (a tile or a stitched region): the result is 8-bit,
/// flattened for `format`, resized, converted, rotated and watermarked as the request asks.
///
/// An owned 8-bit input (a stitched region) is processed in place; a borrowed one (a cached
/// tile) is copied once. Errors: only from an arbitrary rotation (see the module
/// documentation).
pub fn process(raw: std::borrow::Cow<'_, RawImage>, s: &Settings<'_>) -> Result<RawImage> {
    let view = s.view;
    let lab = raw.colour == ColourSpace::CieLab || s.info.colour == ColourSpace::CieLab;
    let float_samples = matches!(raw.samples, Samples::F32(_));
    let mut img = if lab || float_samples || needs_float(view) {
        float_path(&raw, s, lab)
    } else {
        match raw {
            std::borrow::Cow::Owned(r) if matches!(r.samples, Samples::U8(_)) => RawImage {
                colour: match r.colour {
                    ColourSpace::Binary => ColourSpace::Grey,
                    c => c,
                },
                bits_per_sample: 8,
                ..r
            },
            raw => convert::reduce_to_8bit(&raw),
        }
    };
    if let Some((w, h)) = s.resize {
        if (w, h) != (img.width, img.height) {
            img = resize::resize(img, w, h, s.interpolation);
        }
    }
    img = convert::flatten(img, s.format);
    let srgb = matches!(s.info.colour, ColourSpace::Srgb | ColourSpace::Multiband);
    if view.colour == Some(ColourConversion::Grey) && srgb {
        img = grey::grey(img);
    }
    if view.colour == Some(ColourConversion::Binary) && s.info.colour != ColourSpace::Binary {
        if let Some(h) = s.histogram {
            img = histogram::bitonal(img, h.otsu());
        }
    }
    if view.contrast == Some(Contrast::Equalize) {
        if let Some(h) = s.histogram {
            histogram::equalise(&mut img, h);
        }
    }
    img = rotation(img, view, s.format)?;
    if let Some(w) = s.watermark {
        w.mark.apply(&mut img, w.block, w.probability);
    }
    Ok(img)
}

/// Whether the view rotates by an angle that is not a multiple of 90 (IIIF only).
pub fn arbitrary_angle(view: &View) -> bool {
    view.any_angle && view.rotation.is_finite() && view.rotation % 90.0 != 0.0
}

/// Step 6: mirror and rotate. Multiples of 90 (and IIP's `ROT`, whatever its value) take the
/// quarter-turn copy of [`rotate`] as they always did; any other IIIF angle goes through
/// [`rotate_arbitrary`].
fn rotation(img: RawImage, view: &View, format: OutputFormat) -> Result<RawImage> {
    if !arbitrary_angle(view) {
        return Ok(rotate::apply(img, view.rotation, view.flip));
    }
    if img.channels > 4 {
        return Err(Error::bad_request(format!(
            "rotation :: an image of {} bands can only be rotated by multiples of 90 degrees",
            img.channels
        )));
    }
    let background = rotate_arbitrary::Background::for_format(format);
    let mut img = rotate_arbitrary::apply(img, view.rotation, view.flip, background)?;
    if view.colour == Some(ColourConversion::Binary) {
        // Black and white again: the interpolated edges are greys. Alpha (the last of 2 or 4
        // channels) keeps its coverage.
        let ch = img.channels as usize;
        let colours = if matches!(ch, 2 | 4) { ch - 1 } else { ch };
        if let Samples::U8(v) = &mut img.samples {
            v.chunks_exact_mut(ch.max(1)).for_each(|px| {
                px[..colours]
                    .iter_mut()
                    .for_each(|s| *s = if *s < 128 { 0 } else { 255 })
            });
        }
    }
    Ok(img)
}

/// §4.1 step 7: the float path, from raw samples to 8-bit.
fn float_path(raw: &RawImage, s: &Settings<'_>, lab: bool) -> RawImage {
    let view = s.view;
    let mut ranges = channel_ranges(s.info, view, raw);
    let mut contrast = match view.contrast {
        Some(Contrast::Factor(c)) => c,
        _ => 1.0,
    };
    if view.contrast == Some(Contrast::Stretch) {
        if let Some(h) = s.histogram {
            let kind = if lab {
                normalise::StretchKind::Unit
            } else {
                normalise::StretchKind::of(&raw.samples)
            };
            if let Some(r) = normalise::stretch_range(h, kind, &ranges) {
                ranges.iter_mut().for_each(|x| *x = r);
            }
        }
        contrast = 1.0;
    }
    let mut f = if lab {
        let mut f = convert::lab_to_float(raw);
        normalise::normalise_float(&mut f, &ranges);
        f
    } else {
        normalise::normalise(raw, &ranges)
    };
    if let Some((h, v)) = view.shade {
        f = shade::shade(&f, h, v);
    }
    if let Some(m) = &view.twist {
        f = twist::twist(&f, m);
    }
    match view.gamma {
        Some(Gamma::Log) | Some(Gamma::Value(-1.0)) => gamma::log(&mut f),
        Some(Gamma::Value(g)) if g != 1.0 => gamma::gamma(&mut f, g),
        _ => {}
    }
    if view.invert {
        invert::invert(&mut f);
    }
    if let Some(map) = view.colour_map {
        f = colourmap::apply(&f, map);
    }
    if let Some(k) = &view.convolution {
        f = convolve::convolve(&f, k);
    }
    let colour = match (f.channels, raw.colour) {
        (1, _) => ColourSpace::Grey,
        (3, _) | (4, _) => ColourSpace::Srgb,
        (_, ColourSpace::Binary) => ColourSpace::Grey,
        (_, c) => c,
    };
    quantise::quantise(&f, contrast, colour)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ImageFormat, Level, SampleFormat};

    pub(crate) fn info(channels: u16, colour: ColourSpace) -> ImageInfo {
        ImageInfo {
            format: ImageFormat::Tiff,
            width: 4,
            height: 1,
            levels: vec![Level {
                width: 4,
                height: 1,
                tile_width: 256,
                tile_height: 256,
            }],
            channels,
            bits_per_sample: 8,
            sample_format: SampleFormat::Unsigned,
            colour,
            min_max: vec![(0.0, 255.0); channels as usize],
            metadata: Default::default(),
            dpi: None,
            stack: Vec::new(),
            quality_layers: 0,
        }
    }

    fn run(raw: &RawImage, view: &View, format: OutputFormat) -> Vec<u8> {
        let i = info(raw.channels, raw.colour);
        let h = Histogram::compute(raw, &i.min_max);
        process(
            std::borrow::Cow::Borrowed(raw),
            &Settings {
                info: &i,
                view,
                format,
                histogram: Some(&h),
                resize: None,
                interpolation: crate::config::Interpolation::Bilinear,
                watermark: None,
            },
        )
        .unwrap()
        .as_u8()
        .unwrap()
        .to_vec()
    }

    fn rgb(px: &[[u8; 3]]) -> RawImage {
        RawImage::from_u8(
            px.len() as u32,
            1,
            3,
            ColourSpace::Srgb,
            px.iter().flatten().copied().collect(),
        )
    }

    #[test]
    fn verified_contrast_and_maps() {
        // §3.10: CNT=2 on (127, 109, 32) gives (254, 218, 64).
        let v = View {
            contrast: Some(Contrast::Factor(2.0)),
            ..View::default()
        };
        assert_eq!(
            run(&rgb(&[[127, 109, 32]]), &v, OutputFormat::Png),
            [254, 218, 64]
        );
        // §3.8 at v = 127/255: JET → (125, 255, 129), HOT → (255, 126, 0).
        let grey = RawImage::from_u8(1, 1, 1, ColourSpace::Grey, vec![127]);
        let jet = View {
            colour_map: Some(crate::view::ColourMap::Jet),
            ..View::default()
        };
        assert_eq!(run(&grey, &jet, OutputFormat::Png), [125, 255, 129]);
        let hot = View {
            colour_map: Some(crate::view::ColourMap::Hot),
            ..View::default()
        };
        assert_eq!(run(&grey, &hot, OutputFormat::Png), [255, 126, 0]);
        // §3.7: inverting 127 gives 127.
        let inv = View {
            invert: true,
            ..View::default()
        };
        assert_eq!(run(&grey, &inv, OutputFormat::Png), [127]);
        // §3.14: (127, 109, 32) → 105.
        let g = View {
            colour: Some(ColourConversion::Grey),
            ..View::default()
        };
        assert_eq!(run(&rgb(&[[127, 109, 32]]), &g, OutputFormat::Png), [105]);
    }

    #[test]
    fn order_twist_then_gamma_then_invert_then_map() {
        // CTW averages R and G into one channel, GAM=2 squares, INV inverts, CMP=red maps.
        let v = View {
            twist: Some(vec![vec![0.5, 0.5, 0.0]]),
            gamma: Some(Gamma::Value(2.0)),
            invert: true,
            colour_map: Some(crate::view::ColourMap::Red),
            ..View::default()
        };
        // (R+G)/2 = 0.5 → 0.25 → 0.75 → (0.75, 0, 0) → (191, 0, 0).
        let out = run(&rgb(&[[255, 0, 9]]), &v, OutputFormat::Png);
        assert_eq!(out, [191, 0, 0]);
    }

    #[test]
    fn minmax_overrides_and_float_samples() {
        let raw = RawImage {
            width: 2,
            height: 1,
            channels: 1,
            bits_per_sample: 16,
            colour: ColourSpace::Grey,
            samples: Samples::U16(vec![1000, 3000]),
        };
        let v = View {
            min_max: vec![(0, 1000.0, 3000.0)],
            ..View::default()
        };
        assert_eq!(run(&raw, &v, OutputFormat::Png), [0, 255]);
        // Without MINMAX the fast path shifts: 1000 >> 8 = 3, 3000 >> 8 = 11.
        assert_eq!(run(&raw, &View::default(), OutputFormat::Png), [3, 11]);
        let f = RawImage {
            samples: Samples::F32(vec![0.5, f32::INFINITY]),
            bits_per_sample: 32,
            ..raw
        };
        // min 0, max 1: left untouched, so infinity stays and saturates.
        let mut i = info(1, ColourSpace::Grey);
        i.min_max = vec![(0.0, 1.0)];
        let out = process(
            std::borrow::Cow::Borrowed(&f),
            &Settings {
                info: &i,
                view: &View::default(),
                format: OutputFormat::Png,
                histogram: None,
                resize: None,
                interpolation: crate::config::Interpolation::Bilinear,
                watermark: None,
            },
        )
        .unwrap();
        assert_eq!(out.as_u8().unwrap(), [127, 255]);
    }

    #[test]
    fn stretch_uses_histogram_bins() {
        // Values 50 and 150: stretched to [0, 255].
        let grey = RawImage::from_u8(2, 1, 1, ColourSpace::Grey, vec![50, 150]);
        let v = View {
            contrast: Some(Contrast::Stretch),
            ..View::default()
        };
        assert_eq!(run(&grey, &v, OutputFormat::Png), [0, 255]);
    }

    #[test]
    fn flatten_then_grey_then_rotate() {
        let rgba = RawImage::from_u8(
            2,
            1,
            4,
            ColourSpace::Srgb,
            vec![127, 109, 32, 255, 0, 0, 0, 255],
        );
        let v = View {
            colour: Some(ColourConversion::Grey),
            rotation: 90.0,
            ..View::default()
        };
        // JPEG keeps 3 channels, greyscale makes 1, rotation makes a 1×2 column.
        let i = info(4, ColourSpace::Srgb);
        let out = process(
            std::borrow::Cow::Borrowed(&rgba),
            &Settings {
                info: &i,
                view: &v,
                format: OutputFormat::Jpeg,
                histogram: None,
                resize: None,
                interpolation: crate::config::Interpolation::Bilinear,
                watermark: None,
            },
        )
        .unwrap();
        assert_eq!((out.width, out.height, out.channels), (1, 2, 1));
        assert_eq!(out.as_u8().unwrap(), [105, 0]);
        // PNG keeps RGBA, which greyscale leaves alone (§4.1 step 10).
        assert_eq!(run(&rgba, &v, OutputFormat::Png).len(), 8);
    }

    #[test]
    fn binary_and_equalise() {
        let grey = RawImage::from_u8(4, 1, 1, ColourSpace::Grey, vec![10, 20, 200, 210]);
        let v = View {
            colour: Some(ColourConversion::Binary),
            ..View::default()
        };
        // Otsu: n = 20 separates best (first of the tied maxima); 20 itself is not below it.
        assert_eq!(run(&grey, &v, OutputFormat::Png), [0, 255, 255, 255]);
        let v = View {
            contrast: Some(Contrast::Equalize),
            ..View::default()
        };
        // cdf = 1, 2, 3, 4 at 10, 20, 200, 210; LUT = round(255/4 · (cdf − 1/4)).
        assert_eq!(run(&grey, &v, OutputFormat::Png), [48, 112, 175, 239]);
    }
    fn settings<'a>(i: &'a ImageInfo, v: &'a View, format: OutputFormat) -> Settings<'a> {
        Settings {
            info: i,
            view: v,
            format,
            histogram: None,
            resize: None,
            interpolation: crate::config::Interpolation::Bilinear,
            watermark: None,
        }
    }

    /// A `w`×`h` RGB image of distinct pixels.
    fn pattern(w: u32, h: u32) -> RawImage {
        let data = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        RawImage::from_u8(w, h, 3, ColourSpace::Srgb, data)
    }

    #[test]
    fn iip_rot_ignores_angles_that_are_not_multiples_of_90() {
        let img = pattern(6, 4);
        let i = info(3, ColourSpace::Srgb);
        for (rotation, flip) in [(45.0, false), (45.0, true), (360.0, false)] {
            let v = View {
                rotation,
                flip,
                ..View::default()
            };
            let plain = View {
                flip,
                ..View::default()
            };
            let a = process(
                std::borrow::Cow::Borrowed(&img),
                &settings(&i, &v, OutputFormat::Png),
            );
            let b = process(
                std::borrow::Cow::Borrowed(&img),
                &settings(&i, &plain, OutputFormat::Png),
            );
            assert_eq!(a.unwrap(), b.unwrap(), "{rotation} {flip}");
        }
    }

    #[test]
    fn iiif_multiples_of_90_are_the_quarter_turns() {
        let img = pattern(6, 4);
        let i = info(3, ColourSpace::Srgb);
        for (rotation, flip) in [(0.0, false), (90.0, false), (180.0, true), (270.0, true)] {
            let iiif = View {
                rotation,
                flip,
                any_angle: true,
                ..View::default()
            };
            let iip = View {
                any_angle: false,
                ..iiif.clone()
            };
            for format in [OutputFormat::Jpeg, OutputFormat::Png] {
                let a = process(
                    std::borrow::Cow::Borrowed(&img),
                    &settings(&i, &iiif, format),
                );
                let b = process(
                    std::borrow::Cow::Borrowed(&img),
                    &settings(&i, &iip, format),
                );
                assert_eq!(a.unwrap(), b.unwrap(), "{rotation} {flip} {format:?}");
            }
        }
    }

    #[test]
    fn iiif_other_angles_fill_the_bounding_box() {
        let img = pattern(40, 20);
        let i = info(3, ColourSpace::Srgb);
        let v = View {
            rotation: 45.0,
            any_angle: true,
            ..View::default()
        };
        // JPEG: white corners, 3 channels; the canvas is the rounded bounding box (42.43²).
        let out = process(
            std::borrow::Cow::Borrowed(&img),
            &settings(&i, &v, OutputFormat::Jpeg),
        )
        .unwrap();
        assert_eq!((out.width, out.height, out.channels), (42, 42, 3));
        assert_eq!(&out.as_u8().unwrap()[..3], [255, 255, 255]);
        // PNG: an alpha channel, transparent corners, opaque centre.
        let out = process(
            std::borrow::Cow::Borrowed(&img),
            &settings(&i, &v, OutputFormat::Png),
        )
        .unwrap();
        assert_eq!((out.width, out.height, out.channels), (42, 42, 4));
        let px = |x: usize, y: usize| out.as_u8().unwrap()[(y * 42 + x) * 4 + 3];
        assert_eq!(px(0, 0), 0);
        assert_eq!(px(21, 21), 255);
    }

    #[test]
    fn bitonal_stays_black_and_white_after_an_arbitrary_rotation() {
        let data = (0..30 * 30)
            .map(|i| if (i % 30) < 15 { 0 } else { 255 })
            .collect();
        let grey = RawImage::from_u8(30, 30, 1, ColourSpace::Grey, data);
        let mut i = info(1, ColourSpace::Grey);
        i.colour = ColourSpace::Binary;
        let v = View {
            rotation: 30.0,
            any_angle: true,
            colour: Some(ColourConversion::Binary),
            ..View::default()
        };
        for (format, ch) in [(OutputFormat::Jpeg, 1), (OutputFormat::Png, 2)] {
            let out =
                process(std::borrow::Cow::Borrowed(&grey), &settings(&i, &v, format)).unwrap();
            assert_eq!(out.channels, ch);
            let grey_values: Vec<u8> = out
                .as_u8()
                .unwrap()
                .iter()
                .step_by(ch as usize)
                .copied()
                .collect();
            assert!(
                grey_values.iter().all(|&g| g == 0 || g == 255),
                "{format:?}"
            );
            assert!(grey_values.contains(&0) && grey_values.contains(&255));
            if ch == 2 {
                // The coverage is still anti-aliased.
                let alpha: Vec<u8> = out
                    .as_u8()
                    .unwrap()
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .copied()
                    .collect();
                assert!(alpha.iter().any(|&a| a > 0 && a < 255));
            }
        }
    }

    #[test]
    fn more_than_four_bands_rotate_only_by_quarter_turns() {
        let data = (0..4 * 2 * 5).map(|i| i as u8).collect();
        let img = RawImage::from_u8(4, 2, 5, ColourSpace::Multiband, data);
        let i = info(5, ColourSpace::Multiband);
        let v = View {
            rotation: 10.0,
            any_angle: true,
            ..View::default()
        };
        let e = process(
            std::borrow::Cow::Borrowed(&img),
            &settings(&i, &v, OutputFormat::Tiff),
        )
        .unwrap_err();
        assert_eq!(e.kind(), Some(crate::error::ErrorKind::BadRequest));
        let v = View {
            rotation: 90.0,
            ..v
        };
        let out = process(
            std::borrow::Cow::Borrowed(&img),
            &settings(&i, &v, OutputFormat::Tiff),
        )
        .unwrap();
        assert_eq!((out.width, out.height, out.channels), (2, 4, 5));
    }
}
