//! Rotation by multiples of 90° (clockwise) and horizontal mirroring (§3.15), on 8-bit images.
//!
//! `ROT=!x` mirrors first, then rotates; `!180` is a vertical flip. Only multiples of 90 that
//! are not multiples of 360 rotate; negative multiples rotate the other way (upstream leaves
//! the image uninitialised, a bug).

use crate::image::{RawImage, Samples};

/// Quarter turns clockwise (0–3) for a rotation in degrees; `None` when it does not rotate.
pub fn quarter_turns(degrees: f64) -> Option<u32> {
    if !degrees.is_finite() || degrees.fract() != 0.0 {
        return None;
    }
    let d = degrees as i64;
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
    for row in v.chunks_exact(w * ch) {
        for px in row.chunks_exact(ch).rev() {
            out.extend_from_slice(px);
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

    fn img() -> RawImage {
        // 2×1: [1, 2]
        RawImage::from_u8(2, 1, 1, ColourSpace::Grey, vec![1, 2])
    }

    #[test]
    fn turns() {
        assert_eq!(quarter_turns(90.0), Some(1));
        assert_eq!(quarter_turns(-90.0), Some(3));
        assert_eq!(quarter_turns(360.0), None);
        assert_eq!(quarter_turns(45.0), None);
        assert_eq!(quarter_turns(0.0), None);
    }

    #[test]
    fn rotations() {
        let r = rotate(&img(), 1);
        assert_eq!((r.width, r.height), (1, 2));
        assert_eq!(r.as_u8().unwrap(), &[1, 2]);
        assert_eq!(rotate(&img(), 2).as_u8().unwrap(), &[2, 1]);
        assert_eq!(rotate(&img(), 3).as_u8().unwrap(), &[2, 1]);
        assert_eq!(mirror(&img()).as_u8().unwrap(), &[2, 1]);
        // !180 = vertical flip: mirror then rotate 180 on a 1×2 column leaves it flipped.
        let col = RawImage::from_u8(1, 2, 1, ColourSpace::Grey, vec![1, 2]);
        assert_eq!(apply(col, 180.0, true).as_u8().unwrap(), &[2, 1]);
    }
}
