//! Greyscale (`COL=grey`, §3.14) on 8-bit 3-channel data; anything else is returned unchanged.
//!
//! Y = (1254097·R + 2462056·G + 478151·B) >> 22: Rec.601 weights (0.299, 0.587, 0.114) in
//! fixed point, truncated. Verified upstream: (127, 109, 32) → 105.

use super::map_pixels;
use crate::image::{ColourSpace, RawImage, Samples};

#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((1254097u32 * r as u32 + 2462056 * g as u32 + 478151 * b as u32) >> 22) as u8
}

pub fn grey(img: RawImage) -> RawImage {
    if img.channels != 3 {
        return img;
    }
    let Samples::U8(v) = &img.samples else {
        return img;
    };
    let out = map_pixels(v, 3, 1, |p, o| o[0] = luma(p[0], p[1], p[2]));
    RawImage::from_u8(img.width, img.height, 1, ColourSpace::Grey, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rec601_fixed_point() {
        assert_eq!(luma(127, 109, 32), 105);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        let img = RawImage::from_u8(1, 1, 3, ColourSpace::Srgb, vec![255, 0, 0]);
        assert_eq!(grey(img).as_u8().unwrap(), &[76]);
        let rgba = RawImage::from_u8(1, 1, 4, ColourSpace::Srgb, vec![1, 2, 3, 4]);
        assert_eq!(grey(rgba).channels, 4);
    }
}
