//! Rotation by any angle, clockwise, with optional mirroring first (IIIF `rotation`, Image API
//! 2.1 and 3.0 §4.3: `!` mirrors on the vertical axis, then the number of degrees rotates
//! clockwise), on 8- and 16-bit images of 1–4 channels.
//!
//! # Geometry
//!
//! An input of w × h pixels rotated by θ (degrees taken modulo 360) lands on a canvas that is
//! the bounding box of the rotated image, rounded to whole pixels as Cantaloupe does (the
//! IIIF annex "Calculating the size of a rotated image" gives the unrounded formula):
//!
//! ```text
//! W′ = max(1, round(|w·cos θ| + |h·sin θ|)),   H′ = max(1, round(|h·cos θ| + |w·sin θ|))
//! ```
//!
//! Every output pixel centre is mapped back to the input (inverse mapping, rotation about the
//! centres of both images; y points down, so a clockwise turn is the usual matrix):
//!
//! ```text
//! dx = X + ½ − W′/2,   dy = Y + ½ − H′/2
//! u  = w/2 + dx·cos θ + dy·sin θ − ½        (input column, pixel centres at integers)
//! v  = h/2 − dx·sin θ + dy·cos θ − ½        (input row)
//! mirrored: u ← (w − 1) − u
//! ```
//!
//! and sampled **bilinearly**: x₀ = ⌊u⌋, fx = u − x₀ (likewise y₀, fy), taps clamped to the
//! image for the colour, out = (1−fy)·((1−fx)·p₀₀ + fx·p₁₀) + fy·((1−fx)·p₀₁ + fx·p₁₁), rounded
//! half up (8-bit pixels with all four taps inside: in integers, fx and fy in 1/65536).
//! The **coverage** c ∈ [0, 1] of the pixel by the image is the same bilinear weight summed over
//! the taps that lie inside it (cx · cy), so edges are anti-aliased: a pixel centre on the
//! image's border (u = −½) is half covered.
//!
//! # Background
//!
//! - [`Background::Transparent`] (formats with alpha: PNG, WebP, AVIF, GIF, TIFF, JPEG2000):
//!   an alpha channel is added if the image has none (1 → 2, 3 → 4 channels); alpha =
//!   c · (the image's alpha, or full). Pixels outside the image are (0, …, 0, 0).
//! - [`Background::White`] (JPEG, PDF): every channel is blended towards full white,
//!   out = c · value + (1 − c) · max.
//!
//! Exact multiples of 90° leave nothing uncovered: they keep the channel count and give exactly
//! the pixels of [`super::rotate`] (8-bit images are handed to it; 16-bit images take the
//! general path with exact sines and cosines, which samples pixel centres exactly). An alpha
//! channel already present is interpolated like the colours (not premultiplied).
//!
//! # Cost and limits
//!
//! One pass over the output, row by row (the source positions of a row are linear in X: in
//! 32.32 fixed point, two integer multiply-adds per pixel and shifts for the floor; no
//! allocation per pixel), in parallel over rows above [`super::PARALLEL_PIXELS`]. A thin image rotated by 45° has a canvas far larger than itself
//! (1 × 100 000 pixels → 70 711²), so outputs above [`MAX_ROTATED_BYTES`] are refused with
//! 400 before anything is allocated, as are sides above [`MAX_ROTATED_SIDE`];
//! [`rotated_size`] lets a caller check before decoding.

use rayon::prelude::*;

use super::{PARALLEL_PIXELS, rotate};
use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::image::{ColourSpace, RawImage, Samples};

/// Largest rotated output, in bytes of samples (the bound region exports use for their
/// output, 2 GiB).
pub const MAX_ROTATED_BYTES: u64 = 1 << 31;

/// Longest side of a rotated output (keeps the fixed-point source positions, 32 fractional
/// bits, far inside 64 bits).
pub const MAX_ROTATED_SIDE: u32 = 1 << 24;

/// What fills the canvas where the rotated image does not reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Transparent: an alpha channel is added when the image has none.
    Transparent,
    /// Opaque white, for formats without alpha.
    White,
}

impl Background {
    /// Transparent for formats that keep alpha, white for JPEG and PDF.
    pub fn for_format(format: OutputFormat) -> Self {
        if format.keeps_alpha() {
            Background::Transparent
        } else {
            Background::White
        }
    }
}

/// The angle reduced to [0, 360), or `None` when it is not a finite number.
fn normalise(degrees: f64) -> Option<f64> {
    if !degrees.is_finite() {
        return None;
    }
    let d = degrees.rem_euclid(360.0);
    // rem_euclid of a tiny negative number rounds up to 360 itself.
    Some(if d >= 360.0 { 0.0 } else { d })
}

/// Quarter turns (0–3) when the angle is an exact multiple of 90°.
fn exact_quarter(d: f64) -> Option<u32> {
    (d % 90.0 == 0.0).then(|| (d / 90.0) as u32 % 4)
}

/// cos θ and sin θ, exact for multiples of 90°.
fn cos_sin(d: f64) -> (f64, f64) {
    match exact_quarter(d) {
        Some(0) => (1.0, 0.0),
        Some(1) => (0.0, 1.0),
        Some(2) => (-1.0, 0.0),
        Some(3) => (0.0, -1.0),
        _ => {
            let r = d.to_radians();
            (r.cos(), r.sin())
        }
    }
}

/// The canvas size of a `width` × `height` image rotated by `degrees` (see the module
/// documentation), or `None` when the angle is not finite or a side would exceed `u32`.
pub fn rotated_size(width: u32, height: u32, degrees: f64) -> Option<(u32, u32)> {
    let d = normalise(degrees)?;
    if let Some(q) = exact_quarter(d) {
        return Some(if q % 2 == 1 {
            (height, width)
        } else {
            (width, height)
        });
    }
    let (c, s) = cos_sin(d);
    let (w, h) = (width as f64, height as f64);
    let side = |v: f64| {
        let v = v.round().max(1.0);
        (v <= u32::MAX as f64).then_some(v as u32)
    };
    Some((
        side((w * c).abs() + (h * s).abs())?,
        side((h * c).abs() + (w * s).abs())?,
    ))
}

/// Output channels of a rotation: one more for an added alpha channel.
fn output_channels(channels: u16, degrees: f64, background: Background) -> u16 {
    let quarter = normalise(degrees).and_then(exact_quarter).is_some();
    let has_alpha = channels == 2 || channels == 4;
    if !quarter && background == Background::Transparent && !has_alpha {
        channels + 1
    } else {
        channels
    }
}

/// Mirror (if `mirror`) and rotate `img` clockwise by `degrees` (any finite value, taken
/// modulo 360), filling uncovered areas with `background`. 8- and 16-bit images of 1–4
/// channels; a no-op (0° without mirroring) returns the image untouched.
///
/// Errors: a non-finite angle or another sample type or channel count (400 and 500: the
/// pipeline only hands 8-bit data here), an output above [`MAX_ROTATED_BYTES`] (400).
pub fn apply(
    img: RawImage,
    degrees: f64,
    mirror: bool,
    background: Background,
) -> Result<RawImage> {
    let Some(d) = normalise(degrees) else {
        return Err(Error::bad_request(format!(
            "rotation :: invalid angle {degrees}"
        )));
    };
    if !(1..=4).contains(&img.channels) || img.width == 0 || img.height == 0 {
        return Err(
            Error::internal("rotation :: unsupported image layout").with_detail(format!(
                "{}x{} with {} channels",
                img.width, img.height, img.channels
            )),
        );
    }
    let sample_bytes = match img.samples {
        Samples::U8(_) => 1,
        Samples::U16(_) => 2,
        _ => {
            return Err(Error::internal(
                "rotation :: only 8- and 16-bit images can be rotated",
            ));
        }
    };
    if img.samples.len() != img.row_len() * img.height as usize {
        return Err(Error::internal(
            "rotation :: sample buffer of the wrong size",
        ));
    }
    let quarter = exact_quarter(d);
    if quarter == Some(0) && !mirror {
        return Ok(img);
    }
    if let (Some(q), Samples::U8(_)) = (quarter, &img.samples) {
        let img = if mirror { rotate::mirror(&img) } else { img };
        return Ok(if q == 0 { img } else { rotate::rotate(&img, q) });
    }
    let too_large = || {
        Error::too_large(format!(
            "rotation :: a {}x{} image rotated by {degrees} degrees is too large",
            img.width, img.height
        ))
    };
    let (ow, oh) = rotated_size(img.width, img.height, d).ok_or_else(too_large)?;
    let out_ch = output_channels(img.channels, d, background);
    let bytes = ow as u64 * oh as u64 * out_ch as u64 * sample_bytes;
    if bytes > MAX_ROTATED_BYTES || ow.max(oh) > MAX_ROTATED_SIDE {
        return Err(too_large());
    }
    let (c, s) = cos_sin(d);
    let map = Mapping {
        w: img.width as usize,
        h: img.height as usize,
        ow: ow as usize,
        oh: oh as usize,
        cos: c,
        sin: s,
        mirror,
        background,
    };
    let samples = match &img.samples {
        Samples::U8(v) => Samples::U8(dispatch(v, img.channels, out_ch, &map)),
        Samples::U16(v) => Samples::U16(dispatch(v, img.channels, out_ch, &map)),
        _ => unreachable!("checked above"),
    };
    Ok(RawImage {
        width: ow,
        height: oh,
        channels: out_ch,
        bits_per_sample: img.bits_per_sample,
        colour: match img.colour {
            ColourSpace::Binary => ColourSpace::Grey,
            c => c,
        },
        samples,
    })
}

/// A sample type the rotation works on.
trait Sample: Copy + Default + Send + Sync {
    const FULL: f32;
    fn to_f32(self) -> f32;
    /// Rounds half up and saturates.
    fn from_f32(v: f32) -> Self;
    /// Bilinear interpolation of four samples, `fx` and `fy` the fractions in 1/65536.
    fn bilinear(p00: Self, p10: Self, p01: Self, p11: Self, fx: u32, fy: u32) -> Self;
}

impl Sample for u8 {
    const FULL: f32 = 255.0;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        // `as` saturates (and maps NaN to 0).
        (v + 0.5) as u8
    }
    /// In integers (exact for whole positions).
    #[inline(always)]
    fn bilinear(p00: u8, p10: u8, p01: u8, p11: u8, fx: u32, fy: u32) -> u8 {
        let (fx, fy) = (fx as u64, fy as u64);
        let top = p00 as u64 * (65536 - fx) + p10 as u64 * fx;
        let bottom = p01 as u64 * (65536 - fx) + p11 as u64 * fx;
        ((top * (65536 - fy) + bottom * fy + (1 << 31)) >> 32) as u8
    }
}

impl Sample for u16 {
    const FULL: f32 = 65535.0;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        (v + 0.5) as u16
    }
    #[inline(always)]
    fn bilinear(p00: u16, p10: u16, p01: u16, p11: u16, fx: u32, fy: u32) -> u16 {
        let (fx, fy) = (fx as f32 / 65536.0, fy as f32 / 65536.0);
        let (p00, p10, p01, p11) = (p00 as f32, p10 as f32, p01 as f32, p11 as f32);
        let top = p00 + fx * (p10 - p00);
        let bottom = p01 + fx * (p11 - p01);
        Self::from_f32(top + fy * (bottom - top))
    }
}

/// The inverse mapping of one rotation (module documentation).
#[derive(Debug, Clone, Copy)]
struct Mapping {
    w: usize,
    h: usize,
    ow: usize,
    oh: usize,
    cos: f64,
    sin: f64,
    mirror: bool,
    background: Background,
}

impl Mapping {
    /// Source position (u, v) of output pixel (0, y) and its change per output column.
    fn row_start(&self, y: usize) -> (f64, f64, f64, f64) {
        let dx = 0.5 - self.ow as f64 / 2.0;
        let dy = y as f64 + 0.5 - self.oh as f64 / 2.0;
        let u = self.w as f64 / 2.0 + dx * self.cos + dy * self.sin - 0.5;
        let v = self.h as f64 / 2.0 - dx * self.sin + dy * self.cos - 0.5;
        if self.mirror {
            ((self.w - 1) as f64 - u, v, -self.cos, -self.sin)
        } else {
            (u, v, self.cos, -self.sin)
        }
    }
}

/// Runs the kernel with the channel count as a constant.
fn dispatch<T: Sample>(src: &[T], ch: u16, out_ch: u16, map: &Mapping) -> Vec<T> {
    match ch {
        1 => run::<T, 1>(src, out_ch as usize, map),
        2 => run::<T, 2>(src, out_ch as usize, map),
        3 => run::<T, 3>(src, out_ch as usize, map),
        _ => run::<T, 4>(src, out_ch as usize, map),
    }
}

fn run<T: Sample, const CH: usize>(src: &[T], out_ch: usize, map: &Mapping) -> Vec<T> {
    let row_len = map.ow * out_ch;
    let mut out = vec![T::default(); row_len * map.oh];
    let work = |(y, row): (usize, &mut [T])| row_kernel::<T, CH>(src, row, y, out_ch, map);
    if map.ow * map.oh > PARALLEL_PIXELS {
        out.par_chunks_mut(row_len).enumerate().for_each(work);
    } else {
        out.chunks_mut(row_len).enumerate().for_each(work);
    }
    out
}

/// Fractional bits of the fixed-point source positions.
const FRACTION_BITS: u32 = 32;
/// 2^-FRACTION_BITS, to turn the fraction into a weight.
const FRACTION_SCALE: f32 = 1.0 / (1u64 << FRACTION_BITS) as f32;

/// `p` in fixed point (exact for the half-integers and integers of quarter turns).
#[inline(always)]
fn fixed(p: f64) -> i64 {
    (p * (1u64 << FRACTION_BITS) as f64).round() as i64
}

/// Bilinear weights of the two taps along one axis at fixed-point position `p` in an axis of
/// `n` pixels: the clamped tap indices, the fraction, and the coverage (weight of the taps
/// inside).
#[inline(always)]
fn taps(p: i64, n: usize) -> Option<(usize, usize, f32, f32)> {
    let i = p >> FRACTION_BITS;
    if i < -1 || i >= n as i64 {
        return None;
    }
    let fr = (p & ((1 << FRACTION_BITS) - 1)) as f32 * FRACTION_SCALE;
    let last = n as i64 - 1;
    let mut cov = 0.0;
    if i >= 0 {
        cov += 1.0 - fr;
    }
    if i < last {
        cov += fr;
    }
    let a = i.clamp(0, last) as usize;
    let b = (i + 1).clamp(0, last) as usize;
    Some((a, b, fr, cov))
}

/// The columns [a, b) of a row of `ow` pixels where the source position p0 + x·dp may lie in
/// (−1, n), the reach of the bilinear taps, widened by a pixel on each side.
fn span(p0: f64, dp: f64, n: usize, ow: usize) -> (usize, usize) {
    let (lo, hi) = (-1.0 - p0, n as f64 - p0);
    if dp == 0.0 {
        return if lo < 0.0 && hi > 0.0 {
            (0, ow)
        } else {
            (0, 0)
        };
    }
    let (t1, t2) = (lo / dp, hi / dp);
    let clamp = |t: f64| t.clamp(0.0, ow as f64) as usize;
    (
        clamp(t1.min(t2).floor() - 1.0),
        clamp(t1.max(t2).ceil() + 2.0),
    )
}

/// One output row.
fn row_kernel<T: Sample, const CH: usize>(
    src: &[T],
    row: &mut [T],
    y: usize,
    out_ch: usize,
    map: &Mapping,
) {
    let stride = map.w * CH;
    let has_alpha = CH == 2 || CH == 4;
    let add_alpha = out_ch > CH;
    let white = map.background == Background::White;
    let (u0, v0, du, dv) = map.row_start(y);
    // Only the columns whose source position can touch the image need the kernel; the rest
    // of the row is background (spans widened by a pixel, so the kernel decides the edges).
    let (ua, ub) = span(u0, du, map.w, map.ow);
    let (va, vb) = span(v0, dv, map.h, map.ow);
    let (first, end) = (ua.max(va), ub.min(vb).max(ua.max(va)));
    fill_background(&mut row[..first * out_ch], white);
    fill_background(&mut row[end * out_ch..], white);
    // Fixed point with FRACTION_BITS fractional bits: the position of pixel x is computed
    // from the row start (no accumulated error), its floor is a shift (no libm call).
    let (u0, v0, du, dv) = (fixed(u0), fixed(v0), fixed(du), fixed(dv));
    let (wi, hi) = (map.w as i64, map.h as i64);
    let mask = (1i64 << FRACTION_BITS) - 1;
    for (x, px) in row[first * out_ch..end * out_ch]
        .chunks_exact_mut(out_ch)
        .enumerate()
    {
        let x = x + first;
        let u = u0 + x as i64 * du;
        let v = v0 + x as i64 * dv;
        let (xi, yi) = (u >> FRACTION_BITS, v >> FRACTION_BITS);
        if xi >= 0 && yi >= 0 && xi + 1 < wi && yi + 1 < hi {
            // Inside: four taps, full coverage, the samples written directly.
            let fx = ((u & mask) >> (FRACTION_BITS - 16)) as u32;
            let fy = ((v & mask) >> (FRACTION_BITS - 16)) as u32;
            let p = yi as usize * stride + xi as usize * CH;
            let (p00, p10) = (&src[p..p + CH], &src[p + CH..p + 2 * CH]);
            let (p01, p11) = (
                &src[p + stride..p + stride + CH],
                &src[p + stride + CH..p + stride + 2 * CH],
            );
            for c in 0..CH {
                px[c] = T::bilinear(p00[c], p10[c], p01[c], p11[c], fx, fy);
            }
            if add_alpha {
                px[CH] = T::from_f32(T::FULL);
            }
            continue;
        }
        // At the border or outside: clamped taps, partial coverage.
        let (Some((xa, xb, fx, cx)), Some((ya, yb, fy, cy))) = (taps(u, map.w), taps(v, map.h))
        else {
            fill_background(px, white);
            continue;
        };
        let coverage = cx * cy;
        if coverage <= 0.0 {
            fill_background(px, white);
            continue;
        }
        let mut values = [0f32; CH];
        let (r0, r1) = (ya * stride, yb * stride);
        for c in 0..CH {
            let at = |r: usize, x: usize| src[r + x * CH + c].to_f32();
            let top = at(r0, xa) + fx * (at(r0, xb) - at(r0, xa));
            let bottom = at(r1, xa) + fx * (at(r1, xb) - at(r1, xa));
            values[c] = top + fy * (bottom - top);
        }
        if white {
            let rest = (1.0 - coverage) * T::FULL;
            for c in 0..CH {
                px[c] = T::from_f32(values[c] * coverage + rest);
            }
        } else {
            for c in 0..CH {
                px[c] = T::from_f32(values[c]);
            }
            if add_alpha {
                px[CH] = T::from_f32(coverage * T::FULL);
            } else if has_alpha {
                px[CH - 1] = T::from_f32(values[CH - 1] * coverage);
            }
        }
    }
}

/// Fills pixels (any number of whole pixels) with the background.
#[inline(always)]
fn fill_background<T: Sample>(px: &mut [T], white: bool) {
    let v = if white {
        T::from_f32(T::FULL)
    } else {
        T::default()
    };
    px.fill(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grey(w: u32, h: u32, data: Vec<u8>) -> RawImage {
        RawImage::from_u8(w, h, 1, ColourSpace::Grey, data)
    }

    /// A w × h image of `ch` channels with distinct, position-dependent values.
    fn pattern(w: u32, h: u32, ch: u16) -> RawImage {
        let data = (0..w * h * ch as u32)
            .map(|i| (i.wrapping_mul(37) % 251) as u8)
            .collect();
        let colour = if ch < 3 {
            ColourSpace::Grey
        } else {
            ColourSpace::Srgb
        };
        RawImage::from_u8(w, h, ch, colour, data)
    }

    fn pattern16(w: u32, h: u32, ch: u16) -> RawImage {
        let img = pattern(w, h, ch);
        let v = img
            .as_u8()
            .unwrap()
            .iter()
            .map(|&b| b as u16 * 257 + 3)
            .collect();
        RawImage {
            bits_per_sample: 16,
            samples: Samples::U16(v),
            ..img
        }
    }

    /// The general kernel, also for the angles that `apply` hands to `rotate`.
    fn kernel(img: &RawImage, degrees: f64, mirror: bool, bg: Background) -> RawImage {
        let (ow, oh) = rotated_size(img.width, img.height, degrees).unwrap();
        let out_ch = output_channels(img.channels, degrees, bg);
        let (c, s) = cos_sin(normalise(degrees).unwrap());
        let map = Mapping {
            w: img.width as usize,
            h: img.height as usize,
            ow: ow as usize,
            oh: oh as usize,
            cos: c,
            sin: s,
            mirror,
            background: bg,
        };
        let samples = match &img.samples {
            Samples::U8(v) => Samples::U8(dispatch(v, img.channels, out_ch, &map)),
            Samples::U16(v) => Samples::U16(dispatch(v, img.channels, out_ch, &map)),
            _ => unreachable!(),
        };
        RawImage {
            width: ow,
            height: oh,
            channels: out_ch,
            samples,
            ..img.clone()
        }
    }

    #[test]
    fn multiples_of_90_match_the_quarter_turn_rotation_exactly() {
        for (w, h) in [(1, 1), (2, 3), (5, 4), (7, 1)] {
            for ch in 1..=4 {
                let img = pattern(w, h, ch);
                for mirror in [false, true] {
                    for deg in [0.0, 90.0, 180.0, 270.0] {
                        let expected = rotate::apply(img.clone(), deg, mirror);
                        for bg in [Background::Transparent, Background::White] {
                            let out = apply(img.clone(), deg, mirror, bg).unwrap();
                            assert_eq!(out, expected, "{w}x{h}x{ch} {deg} mirror={mirror}");
                            let general = kernel(&img, deg, mirror, bg);
                            assert_eq!(general, expected, "kernel {w}x{h}x{ch} {deg} {mirror}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn sixteen_bit_quarter_turns_are_exact_permutations() {
        let img = pattern16(3, 2, 3);
        let as8 = pattern(3, 2, 3);
        for mirror in [false, true] {
            for deg in [90.0, 180.0, 270.0] {
                let out = apply(img.clone(), deg, mirror, Background::Transparent).unwrap();
                let expected = rotate::apply(as8.clone(), deg, mirror);
                let Samples::U16(v) = &out.samples else {
                    panic!("16-bit output expected")
                };
                let back: Vec<u8> = v.iter().map(|&s| ((s - 3) / 257) as u8).collect();
                assert_eq!(
                    (out.width, out.height, out.channels),
                    (expected.width, expected.height, 3)
                );
                assert_eq!(back, expected.as_u8().unwrap(), "{deg} {mirror}");
            }
        }
    }

    #[test]
    fn forty_five_degrees_of_a_2x2_matches_hand_computed_values() {
        // 0   100
        // 200 255
        let img = grey(2, 2, vec![0, 100, 200, 255]);
        let out = apply(img.clone(), 45.0, false, Background::Transparent).unwrap();
        // W′ = H′ = round(2·√2) = 3; grey + added alpha.
        assert_eq!((out.width, out.height, out.channels), (3, 3, 2));
        let px = |x: usize, y: usize| {
            let v = out.as_u8().unwrap();
            (v[(y * 3 + x) * 2], v[(y * 3 + x) * 2 + 1])
        };
        // Centre: u = v = ½, the mean of the four: 138.75 → 139, fully covered.
        assert_eq!(px(1, 1), (139, 255));
        // Top middle: dx = 0, dy = −1: u = v = ½ − √½ ≈ −0.207; the top-left pixel, coverage
        // (1 − 0.207)² = 0.6287 → alpha 160.
        assert_eq!(px(1, 0), (0, 160));
        // Top left: dx = dy = −1: u = ½ − √2 ≈ −0.914, v = ½; left column mean 100,
        // coverage 0.0858 → alpha 22.
        assert_eq!(px(0, 0), (100, 22));
        // Right middle: dx = 1, dy = 0: u = ½ + √½ ≈ 1.207, v = ½ − √½ ≈ −0.207: the
        // top-right pixel (clockwise turns it to the right), coverage 0.6287.
        assert_eq!(px(2, 1), (100, 160));
        // White background: 0·0.6287 + 255·0.3713 = 94.7 → 95, no alpha.
        let white = apply(img, 45.0, false, Background::White).unwrap();
        assert_eq!(white.channels, 1);
        assert_eq!(white.as_u8().unwrap()[1], 95);
        assert_eq!(white.as_u8().unwrap()[4], 139);
    }

    /// The module documentation's formulas, pixel by pixel in f64 (no spans, no fixed point).
    fn reference(img: &RawImage, deg: f64, mirror: bool, bg: Background) -> Vec<f64> {
        let (w, h, ch) = (img.width as i64, img.height as i64, img.channels as usize);
        let (ow, oh) = rotated_size(img.width, img.height, deg).unwrap();
        let add = output_channels(img.channels, deg, bg) as usize > ch;
        let src = img.as_u8().unwrap();
        let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
        let mut out = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                let dx = x as f64 + 0.5 - ow as f64 / 2.0;
                let dy = y as f64 + 0.5 - oh as f64 / 2.0;
                let mut u = w as f64 / 2.0 + dx * c + dy * s - 0.5;
                let v = h as f64 / 2.0 - dx * s + dy * c - 0.5;
                if mirror {
                    u = (w - 1) as f64 - u;
                }
                let (x0, y0) = (u.floor() as i64, v.floor() as i64);
                let (fx, fy) = (u - u.floor(), v - v.floor());
                let inside = |i: i64, n: i64| (0..n).contains(&i);
                let cx = if inside(x0, w) { 1.0 - fx } else { 0.0 }
                    + if inside(x0 + 1, w) { fx } else { 0.0 };
                let cy = if inside(y0, h) { 1.0 - fy } else { 0.0 }
                    + if inside(y0 + 1, h) { fy } else { 0.0 };
                let cov = cx * cy;
                let at = |i: i64, j: i64, k: usize| {
                    src[((j.clamp(0, h - 1) * w + i.clamp(0, w - 1)) as usize) * ch + k] as f64
                };
                for k in 0..ch {
                    let top = at(x0, y0, k) * (1.0 - fx) + at(x0 + 1, y0, k) * fx;
                    let bottom = at(x0, y0 + 1, k) * (1.0 - fx) + at(x0 + 1, y0 + 1, k) * fx;
                    let value = if cov > 0.0 {
                        top * (1.0 - fy) + bottom * fy
                    } else {
                        0.0
                    };
                    out.push(match bg {
                        Background::White => value * cov + 255.0 * (1.0 - cov),
                        Background::Transparent if k == ch - 1 && !add && ch % 2 == 0 => {
                            value * cov
                        }
                        Background::Transparent => value,
                    });
                }
                if add {
                    out.push(255.0 * cov);
                }
            }
        }
        out
    }

    #[test]
    fn every_pixel_follows_the_formulas() {
        for (w, h, ch) in [(7, 5, 3), (1, 6, 1), (9, 2, 2), (6, 6, 4)] {
            let img = pattern(w, h, ch);
            for deg in [0.5, 17.0, 45.0, 100.0, 200.25, 333.0] {
                for mirror in [false, true] {
                    for bg in [Background::Transparent, Background::White] {
                        let out = apply(img.clone(), deg, mirror, bg).unwrap();
                        let expected = reference(&img, deg, mirror, bg);
                        let got = out.as_u8().unwrap();
                        assert_eq!(got.len(), expected.len());
                        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
                            // Colour of fully transparent pixels is irrelevant (written as 0).
                            let (k, n) = (i % out.channels as usize, out.channels as usize);
                            let alpha = expected[i - k + n - 1];
                            if bg == Background::Transparent && n % 2 == 0 && alpha < 0.5 {
                                continue;
                            }
                            // Rounding, plus the fixed-point fractions (1/65536).
                            assert!(
                                (g as f64 - e).abs() <= 0.52,
                                "{w}x{h}x{ch} {deg} {mirror} {bg:?} sample {i}: {g} vs {e:.2}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn canvas_is_the_rounded_bounding_box() {
        assert_eq!(rotated_size(100, 50, 30.0), Some((112, 93)));
        assert_eq!(rotated_size(100, 50, 90.0), Some((50, 100)));
        assert_eq!(rotated_size(100, 50, 45.0), Some((106, 106)));
        assert_eq!(rotated_size(1, 1, 45.0), Some((1, 1)));
        assert_eq!(rotated_size(3, 1, 1.0), Some((3, 1)));
        assert_eq!(rotated_size(100, 50, 390.0), rotated_size(100, 50, 30.0));
        assert_eq!(rotated_size(100, 50, -330.0), rotated_size(100, 50, 30.0));
        assert_eq!(rotated_size(1, 1, f64::NAN), None);
        assert_eq!(rotated_size(1, 1, f64::INFINITY), None);
        assert_eq!(rotated_size(u32::MAX, u32::MAX, 45.0), None);
        let img = pattern(100, 50, 3);
        let out = apply(img, 30.0, false, Background::Transparent).unwrap();
        assert_eq!((out.width, out.height, out.channels), (112, 93, 4));
    }

    #[test]
    fn outside_is_transparent_or_white_and_inside_is_opaque() {
        let img = RawImage::from_u8(40, 20, 3, ColourSpace::Srgb, vec![90; 40 * 20 * 3]);
        let out = apply(img.clone(), 30.0, false, Background::Transparent).unwrap();
        let v = out.as_u8().unwrap();
        let w = out.width as usize;
        let at = |x: usize, y: usize| &v[(y * w + x) * 4..(y * w + x) * 4 + 4];
        assert_eq!(at(0, 0), [0, 0, 0, 0]);
        assert_eq!(at(w - 1, out.height as usize - 1), [0, 0, 0, 0]);
        let (cx, cy) = (w / 2, out.height as usize / 2);
        assert_eq!(at(cx, cy), [90, 90, 90, 255]);
        // Edge pixels keep the image's colour and are partly transparent.
        assert!(
            v.chunks_exact(4)
                .any(|p| p[3] > 0 && p[3] < 255 && p[0] == 90)
        );
        let white = apply(img, 30.0, false, Background::White).unwrap();
        let v = white.as_u8().unwrap();
        assert_eq!(white.channels, 3);
        assert_eq!(&v[..3], [255, 255, 255]);
        assert_eq!(&v[(cy * w + cx) * 3..(cy * w + cx) * 3 + 3], [90, 90, 90]);
        assert!(v.chunks_exact(3).any(|p| p[0] > 90 && p[0] < 255));
    }

    #[test]
    fn existing_alpha_is_scaled_by_coverage() {
        let mut data = Vec::new();
        for _ in 0..16 {
            data.extend_from_slice(&[10, 20, 30, 128]);
        }
        let img = RawImage::from_u8(4, 4, 4, ColourSpace::Srgb, data);
        let out = apply(img, 45.0, false, Background::Transparent).unwrap();
        assert_eq!(out.channels, 4);
        let v = out.as_u8().unwrap();
        assert!(v.chunks_exact(4).all(|p| p[3] <= 128));
        assert!(v.chunks_exact(4).any(|p| p == [10, 20, 30, 128]));
        assert!(v.chunks_exact(4).any(|p| p[3] == 0));
    }

    #[test]
    fn mirroring_comes_before_the_rotation() {
        let img = pattern(7, 3, 3);
        let mirrored = rotate::mirror(&img);
        for deg in [30.0, 135.0, 300.5] {
            let a = apply(img.clone(), deg, true, Background::Transparent).unwrap();
            let b = apply(mirrored.clone(), deg, false, Background::Transparent).unwrap();
            assert_eq!(
                (a.width, a.height, a.channels),
                (b.width, b.height, b.channels)
            );
            // Equal up to the last bit of the fixed-point positions (a level at most).
            let (a, b) = (a.as_u8().unwrap(), b.as_u8().unwrap());
            assert!(a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= 1), "{deg}");
        }
        // A mirrored 2×1 turned by 45°: the left pixel (after mirroring: the right one of the
        // input) reaches the top half.
        let img = grey(2, 1, vec![0, 200]);
        let plain = apply(img.clone(), 45.0, false, Background::White).unwrap();
        let flipped = apply(img, 45.0, true, Background::White).unwrap();
        assert_eq!((plain.width, plain.height), (2, 2));
        assert_ne!(plain, flipped);
        let top = |i: &RawImage| i.as_u8().unwrap()[0] as i32 + i.as_u8().unwrap()[1] as i32;
        assert!(top(&flipped) > top(&plain));
    }

    #[test]
    fn angle_is_taken_modulo_360() {
        let img = pattern(5, 3, 1);
        let a = apply(img.clone(), 30.0, false, Background::Transparent).unwrap();
        assert_eq!(
            a,
            apply(img.clone(), 390.0, false, Background::Transparent).unwrap()
        );
        assert_eq!(
            a,
            apply(img.clone(), -330.0, false, Background::Transparent).unwrap()
        );
        assert_eq!(
            apply(img.clone(), 360.0, false, Background::Transparent).unwrap(),
            img
        );
        assert_eq!(
            apply(img.clone(), -1e-300, false, Background::Transparent).unwrap(),
            img
        );
    }

    #[test]
    fn odd_sizes_and_a_single_pixel() {
        let one = grey(1, 1, vec![77]);
        let out = apply(one, 45.0, false, Background::Transparent).unwrap();
        // u = v = 0: the pixel itself, fully covered.
        assert_eq!((out.width, out.height), (1, 1));
        assert_eq!(out.as_u8().unwrap(), [77, 255]);
        for (w, h) in [(1, 9), (9, 1), (3, 5), (13, 7)] {
            for deg in [1.0, 33.3, 89.99, 90.01, 179.0, 271.5, 359.9] {
                let img = pattern(w, h, 2);
                let out = apply(img, deg, false, Background::Transparent).unwrap();
                let (ow, oh) = rotated_size(w, h, deg).unwrap();
                assert_eq!((out.width, out.height, out.channels), (ow, oh, 2));
                assert_eq!(out.samples.len(), (ow * oh * 2) as usize);
            }
        }
    }

    #[test]
    fn sixteen_bit_images_rotate_in_sixteen_bits() {
        let img = RawImage {
            width: 2,
            height: 2,
            channels: 1,
            bits_per_sample: 16,
            colour: ColourSpace::Grey,
            samples: Samples::U16(vec![0, 1000, 60000, 65535]),
        };
        let out = apply(img, 45.0, false, Background::Transparent).unwrap();
        let Samples::U16(v) = &out.samples else {
            panic!("16-bit output expected")
        };
        // Centre: mean 31633.75 → 31634, alpha full.
        assert_eq!(&v[8..10], [31634, 65535]);
        // Top middle: top-left pixel, coverage 0.628680 → 41200.52 → 41201.
        assert_eq!(v[2..4], [0, 41201]);
        assert_eq!(out.bits_per_sample, 16);
    }

    #[test]
    fn refuses_bad_angles_and_huge_canvases() {
        let img = pattern(4, 4, 3);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = apply(img.clone(), bad, false, Background::White).unwrap_err();
            assert_eq!(e.kind(), Some(crate::error::ErrorKind::BadRequest));
        }
        // A 1 × 100 000 strip at 45° would need a 70 711² canvas (15 GB as RGBA).
        let strip = RawImage::from_u8(100_000, 1, 3, ColourSpace::Srgb, vec![0; 300_000]);
        let e = apply(strip, 45.0, false, Background::Transparent).unwrap_err();
        assert_eq!(e.kind(), Some(crate::error::ErrorKind::TooLarge));
        let float = RawImage {
            samples: Samples::F32(vec![0.0; 48]),
            ..img.clone()
        };
        assert!(apply(float, 30.0, false, Background::White).is_err());
        let five = RawImage::from_u8(1, 1, 5, ColourSpace::Multiband, vec![0; 5]);
        assert!(apply(five, 30.0, false, Background::White).is_err());
    }

    #[test]
    fn large_images_give_the_same_result_in_parallel() {
        // Above PARALLEL_PIXELS the rows run on rayon; compare with a row-by-row run.
        let img = pattern(300, 260, 3);
        let out = apply(img.clone(), 21.0, false, Background::Transparent).unwrap();
        assert!(out.width as usize * out.height as usize > PARALLEL_PIXELS);
        let (c, s) = cos_sin(21.0);
        let map = Mapping {
            w: 300,
            h: 260,
            ow: out.width as usize,
            oh: out.height as usize,
            cos: c,
            sin: s,
            mirror: false,
            background: Background::Transparent,
        };
        let mut serial = vec![0u8; out.samples.len()];
        for (y, row) in serial.chunks_mut(out.width as usize * 4).enumerate() {
            row_kernel::<u8, 3>(img.as_u8().unwrap(), row, y, 4, &map);
        }
        assert_eq!(out.as_u8().unwrap(), serial);
    }
}
