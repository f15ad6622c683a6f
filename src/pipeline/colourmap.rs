//! Colour maps (`CMP`, §3.8): the first channel v → RGB in [0, 1].
//!
//! - HOT: v > 1 → white; v ≤ 0 → black; v < 1/3 → (3v, 0, 0); v < 2/3 → (1, 3v − 1, 0);
//!   v < 1 → (1, 1, 3v − 2); v = 1 → white.
//! - COLD: v > 1 → white; v ≤ 0 → black; v < 1/3 → (0, 0, 3v); v < 2/3 → (0, 3v − 1, 1);
//!   v < 1 → (3v − 2, 1, 1); v = 1 → white.
//! - JET: v < 0 → black; v < 1/8 → (0, 0, 4v + 0.5); v < 3/8 → (0, 4v − 0.5, 1);
//!   v < 5/8 → (4v − 1.5, 1, 2.5 − 4v); v < 7/8 → (1, 3.5 − 4v, 0); v < 1 → (4.5 − 4v, 0, 0);
//!   v ≥ 1 → (0.5, 0, 0).
//! - RED, GREEN, BLUE: (v, 0, 0), (0, v, 0), (0, 0, v), not clamped.
//!
//! A NaN first channel maps to black (every comparison fails).

use super::{FloatImage, map_pixels};
use crate::view::ColourMap;

/// One value through a map.
pub fn map(m: ColourMap, v: f32) -> [f32; 3] {
    const THIRD: f32 = 1.0 / 3.0;
    const TWO_THIRDS: f32 = 2.0 / 3.0;
    match m {
        ColourMap::Hot => {
            if v > 1.0 {
                [1.0, 1.0, 1.0]
            } else if v <= 0.0 {
                [0.0, 0.0, 0.0]
            } else if v < THIRD {
                [3.0 * v, 0.0, 0.0]
            } else if v < TWO_THIRDS {
                [1.0, 3.0 * v - 1.0, 0.0]
            } else if v < 1.0 {
                [1.0, 1.0, 3.0 * v - 2.0]
            } else {
                [1.0, 1.0, 1.0]
            }
        }
        ColourMap::Cold => {
            if v > 1.0 {
                [1.0, 1.0, 1.0]
            } else if v <= 0.0 {
                [0.0, 0.0, 0.0]
            } else if v < THIRD {
                [0.0, 0.0, 3.0 * v]
            } else if v < TWO_THIRDS {
                [0.0, 3.0 * v - 1.0, 1.0]
            } else if v < 1.0 {
                [3.0 * v - 2.0, 1.0, 1.0]
            } else {
                [1.0, 1.0, 1.0]
            }
        }
        ColourMap::Jet => {
            if v < 0.0 {
                [0.0, 0.0, 0.0]
            } else if v < 0.125 {
                [0.0, 0.0, 4.0 * v + 0.5]
            } else if v < 0.375 {
                [0.0, 4.0 * v - 0.5, 1.0]
            } else if v < 0.625 {
                [4.0 * v - 1.5, 1.0, 2.5 - 4.0 * v]
            } else if v < 0.875 {
                [1.0, 3.5 - 4.0 * v, 0.0]
            } else if v < 1.0 {
                [4.5 - 4.0 * v, 0.0, 0.0]
            } else if v >= 1.0 {
                [0.5, 0.0, 0.0]
            } else {
                [0.0, 0.0, 0.0]
            }
        }
        ColourMap::Red => [v, 0.0, 0.0],
        ColourMap::Green => [0.0, v, 0.0],
        ColourMap::Blue => [0.0, 0.0, v],
    }
}

/// Map the first channel of every pixel; the result has 3 channels.
pub fn apply(img: &FloatImage, m: ColourMap) -> FloatImage {
    let ch = img.channels.max(1);
    let data = map_pixels(&img.data, ch, 3, |p, o| o.copy_from_slice(&map(m, p[0])));
    FloatImage {
        width: img.width,
        height: img.height,
        channels: 3,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakpoints() {
        assert_eq!(map(ColourMap::Hot, 0.0), [0.0, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Hot, 0.25), [0.75, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Hot, 1.0), [1.0, 1.0, 1.0]);
        assert_eq!(map(ColourMap::Hot, 2.0), [1.0, 1.0, 1.0]);
        assert_eq!(map(ColourMap::Cold, 0.25), [0.0, 0.0, 0.75]);
        assert_eq!(map(ColourMap::Cold, 0.5), [0.0, 0.5, 1.0]);
        assert_eq!(map(ColourMap::Cold, -1.0), [0.0, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Jet, 0.0), [0.0, 0.0, 0.5]);
        assert_eq!(map(ColourMap::Jet, 0.25), [0.0, 0.5, 1.0]);
        assert_eq!(map(ColourMap::Jet, 0.75), [1.0, 0.5, 0.0]);
        assert_eq!(map(ColourMap::Jet, 0.9375), [0.75, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Jet, 1.0), [0.5, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Jet, -0.1), [0.0, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Jet, f32::NAN), [0.0, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Red, 1.5), [1.5, 0.0, 0.0]);
        assert_eq!(map(ColourMap::Green, 0.5), [0.0, 0.5, 0.0]);
        assert_eq!(map(ColourMap::Blue, 0.5), [0.0, 0.0, 0.5]);
    }

    #[test]
    fn uses_first_channel() {
        let img = FloatImage {
            width: 1,
            height: 1,
            channels: 2,
            data: vec![0.5, 0.9],
        };
        let out = apply(&img, ColourMap::Green);
        assert_eq!((out.channels, out.data), (3, vec![0.0, 0.5, 0.0]));
    }
}
