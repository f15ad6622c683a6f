//! Rotation by multiples of 90° (clockwise) and mirroring (`ROT`, §3.15), on 8-bit images.
//!
//! - The angle is truncated to an integer ai; it rotates only if ai mod 90 = 0 and
//!   ai mod 360 ≠ 0. 90 → clockwise (output row y′ is input column y′ read bottom to top),
//!   180, 270 → counter-clockwise; 90 and 270 swap width and height. Other angles are ignored.
//! - Negative multiples rotate the other way: ((ai mod 360) + 360) mod 360. Upstream returns an
//!   uninitialised buffer for them (**[BUG]**).
//! - `!` mirrors left–right *before* rotating; `!180` is therefore a vertical flip.

use crate::image::{RawImage, Samples};

/// Quarter turns clockwise (1–3) for a rotation in degrees; `None` when it does not rotate.
pub fn quarter_turns(degrees: f64) -> Option<u32> {
    if !degrees.is_finite() {
        return None;
    }
    let d = degrees.trunc() as i64;
    if d % 90 != 0 || d % 360 == 0 {
        return None;
    }
    Some((d.rem_euclid(360) / 90) as u32)
}

/// Mirror left–right.
pub fn mirror(img: &RawImage) -> RawImage {
    let Samples::U8(v) = &img.samples else {
        return img.clone();
    };
    let (w, ch) = (img.width as usize, img.channels as usize);
    let mut out = Vec::with_capacity(v.len());
    if w > 0 && ch > 0 {
        for row in v.chunks_exact(w * ch) {
            for px in row.chunks_exact(ch).rev() {
                out.extend_from_slice(px);
            }
        }
    }
    RawImage {
        samples: Samples::U8(out),
        ..img.clone()
    }
}

/// Rotate clockwise by `turns` quarter turns.
pub fn rotate(img: &RawImage, turns: u32) -> RawImage {
    let Samples::U8(v) = &img.samples else {
        return img.clone();
    };
    let (w, h, ch) = (
        img.width as usize,
        img.height as usize,
        img.channels as usize,
    );
    let (nw, nh) = if turns % 2 == 1 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; v.len()];
    for y in 0..h {
        for x in 0..w {
            let (nx, ny) = match turns % 4 {
                1 => (h - 1 - y, x),
                2 => (w - 1 - x, h - 1 - y),
                3 => (y, w - 1 - x),
                _ => (x, y),
            };
            let src = (y * w + x) * ch;
            let dst = (ny * nw + nx) * ch;
            out[dst..dst + ch].copy_from_slice(&v[src..src + ch]);
        }
    }
    RawImage {
        width: nw as u32,
        height: nh as u32,
        samples: Samples::U8(out),
        ..img.clone()
    }
}

/// Apply `ROT`: mirror if `flip`, then rotate.
pub fn apply(img: RawImage, degrees: f64, flip: bool) -> RawImage {
    let img = if flip { mirror(&img) } else { img };
    match quarter_turns(degrees) {
        Some(t) => rotate(&img, t),
        None => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    #[test]
    fn turns() {
        assert_eq!(quarter_turns(90.0), Some(1));
        assert_eq!(quarter_turns(90.7), Some(1));
        assert_eq!(quarter_turns(-90.0), Some(3));
        assert_eq!(quarter_turns(-180.0), Some(2));
        assert_eq!(quarter_turns(-270.0), Some(1));
        assert_eq!(quarter_turns(450.0), Some(1));
        assert_eq!(quarter_turns(360.0), None);
        assert_eq!(quarter_turns(-720.0), None);
        assert_eq!(quarter_turns(45.0), None);
        assert_eq!(quarter_turns(0.0), None);
        assert_eq!(quarter_turns(f64::NAN), None);
        assert_eq!(quarter_turns(1e300), None);
    }

    #[test]
    fn rotations_on_a_2x2() {
        // 1 2
        // 3 4
        let img = RawImage::from_u8(2, 2, 1, ColourSpace::Grey, vec![1, 2, 3, 4]);
        // Clockwise: 3 1 / 4 2.
        assert_eq!(
            apply(img.clone(), 90.0, false).as_u8().unwrap(),
            &[3, 1, 4, 2]
        );
        assert_eq!(
            apply(img.clone(), 180.0, false).as_u8().unwrap(),
            &[4, 3, 2, 1]
        );
        assert_eq!(
            apply(img.clone(), 270.0, false).as_u8().unwrap(),
            &[2, 4, 1, 3]
        );
        assert_eq!(
            apply(img.clone(), -90.0, false).as_u8().unwrap(),
            &[2, 4, 1, 3]
        );
        // !0: mirror. !180: vertical flip. !90: mirror, then clockwise.
        assert_eq!(
            apply(img.clone(), 0.0, true).as_u8().unwrap(),
            &[2, 1, 4, 3]
        );
        assert_eq!(
            apply(img.clone(), 180.0, true).as_u8().unwrap(),
            &[3, 4, 1, 2]
        );
        assert_eq!(apply(img, 90.0, true).as_u8().unwrap(), &[4, 2, 3, 1]);
    }

    #[test]
    fn sizes_swap() {
        let img = RawImage::from_u8(3, 1, 2, ColourSpace::Grey, vec![1, 1, 2, 2, 3, 3]);
        let r = rotate(&img, 1);
        assert_eq!((r.width, r.height), (1, 3));
        assert_eq!(r.as_u8().unwrap(), &[1, 1, 2, 2, 3, 3]);
        let r = rotate(&img, 3);
        assert_eq!(r.as_u8().unwrap(), &[3, 3, 2, 2, 1, 1]);
    }
}
