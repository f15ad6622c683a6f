//! Contrast and 8-bit quantisation (§3.10): out = trunc(clamp(v · 255 · contrast, 0, 255)).
//! This truncates, it does not round; NaN becomes 255. Verified upstream: `CNT=2` on
//! (127, 109, 32) gives (254, 218, 64).

use super::{FloatImage, map_pixels};
use crate::image::{ColourSpace, RawImage};

/// One value.
#[inline]
pub fn quantise_value(v: f32, scale: f32) -> u8 {
    let x = v * scale;
    if x.is_nan() {
        255
    } else {
        x.clamp(0.0, 255.0) as u8
    }
}

/// Float data → 8-bit with the contrast factor.
pub fn quantise(img: &FloatImage, contrast: f32, colour: ColourSpace) -> RawImage {
    let scale = 255.0 * contrast;
    let data = map_pixels(&img.data, 1, 1, |v, o| o[0] = quantise_value(v[0], scale));
    RawImage::from_u8(img.width, img.height, img.channels as u16, colour, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_and_clamps() {
        let f = FloatImage {
            width: 5,
            height: 1,
            channels: 1,
            data: vec![0.5, -1.0, 2.0, f32::NAN, 1.0],
        };
        let q = quantise(&f, 1.0, ColourSpace::Grey);
        assert_eq!(q.as_u8().unwrap(), &[127, 0, 255, 255, 255]);
        let q = quantise(&f, 0.0, ColourSpace::Grey);
        // Contrast 0: everything is 0, except NaN (NaN · 0 is NaN).
        assert_eq!(q.as_u8().unwrap(), &[0, 0, 0, 255, 0]);
    }
}
