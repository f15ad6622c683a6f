//! Normalisation to float (§3.2) and the contrast-stretch range (§3.3).
//!
//! **Normalisation:** for each channel c, out = (v − min_c) · k_c with k_c = 1/(max_c − min_c)
//! when |max_c − min_c| > 1e−30, otherwise 1e30. Not clamped. For float input, non-finite
//! values become 0, except that a channel whose min is exactly 0 and max exactly 1 is left
//! untouched (non-finite values included).
//!
//! **Stretch:** n0 = the first non-empty histogram bin, n1 = the last; every channel then uses
//! min = n0 and max = n1 (contrast is reset to 1). For fixed-point data wider than 8 bits both
//! are shifted left by (bits − 8), where bits is the width of the decoded samples (16 or 32).
//! For float data upstream applies the 0–255 bin numbers to [0, 1]-ranged data, which turns
//! the image black (**[QUIRK]**); here the bins are mapped into the channel range instead,
//! min + n/255 · (max − min) (CIELAB: n/255) — docs/compatibility.md.

use super::{FloatImage, map_pixels};
use crate::image::{RawImage, Samples};
use crate::pipeline::Histogram;

/// The scale factor of a (min, max) range.
fn factor(min: f32, max: f32) -> f32 {
    let r = max - min;
    if r.abs() > 1e-30 { 1.0 / r } else { 1e30 }
}

/// One channel's (min, k, whether the range is exactly [0, 1]).
type Param = (f32, f32, bool);

/// Every channel's [`Param`]; missing channels [0, 1].
fn params(ranges: &[(f32, f32)], ch: usize) -> Vec<Param> {
    (0..ch)
        .map(|c| {
            let (min, max) = ranges.get(c).copied().unwrap_or((0.0, 1.0));
            (min, factor(min, max), min == 0.0 && max == 1.0)
        })
        .collect()
}

/// Float samples: (v − min_c) · k_c, non-finite values 0, [0, 1] channels untouched.
fn float_pixel(params: &[Param], p: &[f32], o: &mut [f32]) {
    for (c, &(min, k, unit)) in params.iter().enumerate() {
        o[c] = if unit {
            p[c]
        } else if p[c].is_finite() {
            (p[c] - min) * k
        } else {
            0.0
        };
    }
}

/// Raw samples → float, normalised per channel by `ranges` (missing channels: [0, 1]).
pub fn normalise(img: &RawImage, ranges: &[(f32, f32)]) -> FloatImage {
    let ch = (img.channels as usize).max(1);
    let params = params(ranges, ch);
    let data = match &img.samples {
        Samples::U8(v) => linear(v, &params),
        Samples::U16(v) => linear(v, &params),
        Samples::U32(v) => linear(v, &params),
        Samples::I32(v) => linear(v, &params),
        Samples::F32(v) => map_pixels(v, ch, ch, |p, o| float_pixel(&params, p, o)),
    };
    FloatImage {
        width: img.width,
        height: img.height,
        channels: ch,
        data,
    }
}

/// Fixed-point samples → float: (v − min_c) · k_c for every channel of `params`.
fn linear<T: Copy + Sync + Into<f64>>(v: &[T], params: &[Param]) -> Vec<f32> {
    let ch = params.len();
    map_pixels(v, ch, ch, |p, o| {
        for c in 0..ch {
            o[c] = (p[c].into() as f32 - params[c].0) * params[c].1;
        }
    })
}

/// Normalise float data in place (CIELAB after conversion): channels with range [0, 1] are
/// left untouched, others are rescaled with non-finite values set to 0.
pub fn normalise_float(img: &mut FloatImage, ranges: &[(f32, f32)]) {
    let ch = img.channels.max(1);
    let params = params(ranges, ch);
    if params.iter().all(|p| p.2) {
        return;
    }
    img.data = map_pixels(&img.data, ch, ch, |p, o| float_pixel(&params, p, o));
}

/// How the histogram bins map to sample values for a stretch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StretchKind {
    /// Fixed-point samples of this many bits.
    Fixed(u32),
    /// Float samples: bins are spread over each channel's range.
    Float,
    /// Data already in [0, 1] (CIELAB after conversion).
    Unit,
}

impl StretchKind {
    pub fn of(samples: &Samples) -> StretchKind {
        match samples {
            Samples::U8(_) => StretchKind::Fixed(8),
            Samples::U16(_) => StretchKind::Fixed(16),
            Samples::U32(_) | Samples::I32(_) => StretchKind::Fixed(32),
            Samples::F32(_) => StretchKind::Float,
        }
    }
}

/// The (min, max) of a contrast stretch, or `None` for an empty histogram.
pub fn stretch_range(
    h: &Histogram,
    kind: StretchKind,
    ranges: &[(f32, f32)],
) -> Option<(f32, f32)> {
    let (n0, n1) = h.occupied()?;
    Some(match kind {
        StretchKind::Fixed(bits) => {
            let shift = bits.saturating_sub(8);
            (((n0 as u64) << shift) as f32, ((n1 as u64) << shift) as f32)
        }
        StretchKind::Unit => (n0 as f32 / 255.0, n1 as f32 / 255.0),
        StretchKind::Float => {
            let (min, max) = ranges.first().copied().unwrap_or((0.0, 1.0));
            (
                min + n0 as f32 / 255.0 * (max - min),
                min + n1 as f32 / 255.0 * (max - min),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    #[test]
    fn per_channel_ranges() {
        let img = RawImage::from_u8(1, 1, 2, ColourSpace::Grey, vec![100, 100]);
        let f = normalise(&img, &[(0.0, 200.0), (100.0, 100.0)]);
        assert_eq!(f.data[0], 0.5);
        // A zero range multiplies by 1e30: (100 − 100) · 1e30 = 0.
        assert_eq!(f.data[1], 0.0);
        let img = RawImage::from_u8(1, 1, 1, ColourSpace::Grey, vec![101]);
        assert_eq!(normalise(&img, &[(100.0, 100.0)]).data[0], 1e30);
    }

    #[test]
    fn float_rules() {
        let img = RawImage {
            width: 3,
            height: 1,
            channels: 1,
            bits_per_sample: 32,
            colour: ColourSpace::Grey,
            samples: Samples::F32(vec![f32::NAN, 2.0, -1.0]),
        };
        let f = normalise(&img, &[(-1.0, 3.0)]);
        assert_eq!(f.data, vec![0.0, 0.75, 0.0]);
        let f = normalise(&img, &[(0.0, 1.0)]);
        assert!(f.data[0].is_nan());
        assert_eq!(&f.data[1..], &[2.0, -1.0]);
        let mut fi = FloatImage {
            width: 1,
            height: 1,
            channels: 1,
            data: vec![0.5],
        };
        normalise_float(&mut fi, &[(0.0, 0.5)]);
        assert_eq!(fi.data, vec![1.0]);
    }

    #[test]
    fn stretch_ranges() {
        let mut h = Histogram::empty();
        h.bins[3] = 5;
        h.bins[200] = 1;
        assert_eq!(
            stretch_range(&h, StretchKind::Fixed(8), &[]),
            Some((3.0, 200.0))
        );
        assert_eq!(
            stretch_range(&h, StretchKind::Fixed(16), &[]),
            Some((768.0, 51200.0))
        );
        assert_eq!(
            stretch_range(&h, StretchKind::Unit, &[]),
            Some((3.0 / 255.0, 200.0 / 255.0))
        );
        let (a, b) = stretch_range(&h, StretchKind::Float, &[(-1.0, 1.0)]).unwrap();
        assert!(
            (a - (-1.0 + 6.0 / 255.0)).abs() < 1e-6 && (b - (-1.0 + 400.0 / 255.0)).abs() < 1e-6
        );
        assert_eq!(
            stretch_range(&Histogram::empty(), StretchKind::Fixed(8), &[]),
            None
        );
    }
}
