//! Hill-shading (`SHD=h,v`, §3.4): a 3-channel image read as a normal map.
//!
//! Light vector: a = h·π/180, s_y = cos a, s_x = √(1 − s_y²) (negated when h > 180),
//! s_z = −sin(v·π/180), normalised to unit length. Per pixel with channels (r, g, b) in [0, 1]:
//! the normal o = (0, 0, 0) if r = g = b = 0, else (1 − 2r, 1 − 2g, 1 − 2b); the output is one
//! channel, clamp(0.5 · (s · o), 0, 1), so at most 0.5 (127 after quantisation).
//!
//! Upstream reads past the end of its buffer and races on shared temporaries; it crashed the
//! server on every request (**[BUG]**). Here each pixel is independent. An image with fewer
//! than three channels uses its first channel for the missing ones.

use super::{FloatImage, map_pixels};

/// The unit light vector for horizontal angle `h` and vertical angle `v` (degrees).
pub fn light(h: i32, v: i32) -> [f32; 3] {
    let a = h as f32 * std::f32::consts::PI / 180.0;
    let sy = a.cos();
    let mut sx = (1.0 - sy * sy).max(0.0).sqrt();
    if h > 180 {
        sx = -sx;
    }
    let sz = -(v as f32 * std::f32::consts::PI / 180.0).sin();
    let len = (sx * sx + sy * sy + sz * sz).sqrt();
    if len > 0.0 {
        [sx / len, sy / len, sz / len]
    } else {
        [0.0, 0.0, 0.0]
    }
}

/// Shade `img`; the result has one channel.
pub fn shade(img: &FloatImage, h: i32, v: i32) -> FloatImage {
    let [sx, sy, sz] = light(h, v);
    let ch = img.channels.max(1);
    let data = map_pixels(&img.data, ch, 1, |p, o| {
        let r = p[0];
        let g = if ch > 1 { p[1] } else { r };
        let b = if ch > 2 { p[2] } else { r };
        o[0] = if r == 0.0 && g == 0.0 && b == 0.0 {
            0.0
        } else {
            let (ox, oy, oz) = (1.0 - 2.0 * r, 1.0 - 2.0 * g, 1.0 - 2.0 * b);
            (0.5 * (sx * ox + sy * oy + sz * oz)).clamp(0.0, 1.0)
        };
    });
    FloatImage {
        width: img.width,
        height: img.height,
        channels: 1,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_vectors() {
        // h = 0, v = 0: straight "up" the y axis.
        let l = light(0, 0);
        assert!((l[0]).abs() < 1e-6 && (l[1] - 1.0).abs() < 1e-6 && l[2].abs() < 1e-6);
        // h = 270: s_y = cos 270° ≈ 0, s_x = −1.
        let l = light(270, 0);
        assert!((l[0] + 1.0).abs() < 1e-6, "{l:?}");
        // v = 90: s_z = −1, normalised with s_y = 1.
        let l = light(0, 90);
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!((l[1] - r).abs() < 1e-6 && (l[2] + r).abs() < 1e-6, "{l:?}");
    }

    #[test]
    fn pixels() {
        // Light (0, 1, 0). Pixel (0.5, 0, 0.5): o = (0, 1, 0) → 0.5. Pixel (0.5, 1, 0.5):
        // o = (0, −1, 0) → clamped to 0. Black stays 0. Pixel (0.5, 0.25, 0.5) → 0.25.
        let img = FloatImage {
            width: 4,
            height: 1,
            channels: 3,
            data: vec![0.5, 0.0, 0.5, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.5, 0.25, 0.5],
        };
        let s = shade(&img, 0, 0);
        assert_eq!(s.channels, 1);
        assert_eq!(s.data, vec![0.5, 0.0, 0.0, 0.25]);
        // One channel works too (no read past the end).
        let g = FloatImage {
            width: 1,
            height: 1,
            channels: 1,
            data: vec![0.25],
        };
        assert_eq!(shade(&g, 0, 0).data.len(), 1);
    }
}
