//! Making decoded tiles encodable: CIELAB → sRGB (§3.1), the fast bit-depth reduction (§3.11,
//! with upstream's 32-bit bug fixed), float normalisation by the image's min/max (§3.2, §3.10),
//! and flattening to the channels an encoder accepts (§4.1 step 9).

use crate::image::{ColourSpace, RawImage, Samples};

/// CIELAB (8-bit, 16-bit or float samples, first 3 channels) → 8-bit sRGB, per §3.1.
pub fn lab_to_srgb(img: &RawImage) -> RawImage {
    let n = img.width as usize * img.height as usize;
    let ch = img.channels as usize;
    let mut out = Vec::with_capacity(n * 3);
    let lab = |i: usize| -> (f32, f32, f32) {
        match &img.samples {
            Samples::U8(v) => (
                v[i] as f32 / 2.55,
                v[i + 1] as i8 as f32,
                v[i + 2] as i8 as f32,
            ),
            Samples::U16(v) => (
                (v[i] >> 1) as f32 / 327.67,
                ((v[i + 1] as i16) >> 8) as f32,
                ((v[i + 2] as i16) >> 8) as f32,
            ),
            Samples::F32(v) => (v[i], v[i + 1], v[i + 2]),
            Samples::U32(v) => (v[i] as f32, v[i + 1] as f32, v[i + 2] as f32),
            Samples::I32(v) => (v[i] as f32, v[i + 1] as f32, v[i + 2] as f32),
        }
    };
    if ch >= 3 {
        for p in 0..n {
            let (l, a, b) = lab(p * ch);
            let [r, g, bl] = lab_pixel(l, a, b);
            out.extend_from_slice(&[r, g, bl]);
        }
    }
    RawImage::from_u8(img.width, img.height, 3, ColourSpace::Srgb, out)
}

fn lab_pixel(l: f32, a: f32, b: f32) -> [u8; 3] {
    const X0: f32 = 95.047;
    const Y0: f32 = 100.0;
    const Z0: f32 = 108.8827;
    let (fy, y) = if l < 8.0 {
        let y = l * 100.0 / 903.3;
        (7.787 * (y / 100.0) + 16.0 / 116.0, y)
    } else {
        let fy = (l + 16.0) / 116.0;
        (fy, Y0 * fy * fy * fy)
    };
    let t = a / 500.0 + fy;
    let x = if t < 0.2069 {
        X0 * (t - 0.13793) / 7.787
    } else {
        X0 * t * t * t
    };
    let t = fy - b / 200.0;
    let z = if t < 0.2069 {
        Z0 * (t - 0.13793) / 7.787
    } else {
        Z0 * t * t * t
    };
    let (x, y, z) = (x / 100.0, y / 100.0, z / 100.0);
    let lin = [
        3.2406255 * x - 1.537208 * y - 0.4986286 * z,
        -0.9689307 * x + 1.8757561 * y + 0.0415175 * z,
        0.0557101 * x - 0.2040211 * y + 1.0569959 * z,
    ];
    lin.map(|v| {
        let v = v.max(0.0);
        let s = if v <= 0.0031308 {
            12.92 * v
        } else {
            1.055 * v.powf(1.0 / 2.4) - 0.055
        };
        (s.min(1.0) * 255.0) as u8
    })
}

/// Any sample type → 8-bit: 16-bit `>> 8`, 32-bit unsigned `>> 24` (upstream takes bits
/// 16–23, a bug), signed and float data normalised by the per-channel min/max (§3.2) and
/// quantised by truncation (§3.10).
pub fn to_8bit(img: &RawImage, min_max: &[(f64, f64)]) -> RawImage {
    if img.colour == ColourSpace::CieLab {
        return lab_to_srgb(img);
    }
    let ch = img.channels.max(1) as usize;
    let norm = |v: f32, c: usize| -> u8 {
        let (min, max) = min_max.get(c % ch).copied().unwrap_or((0.0, 1.0));
        let range = (max - min) as f32;
        let k = if range.abs() > 1e-30 {
            1.0 / range
        } else {
            1e30
        };
        let x = (v - min as f32) * k;
        if x.is_nan() {
            255
        } else {
            (x * 255.0).clamp(0.0, 255.0) as u8
        }
    };
    let data: Vec<u8> = match &img.samples {
        Samples::U8(v) => v.clone(),
        Samples::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
        Samples::U32(v) => v.iter().map(|s| (s >> 24) as u8).collect(),
        Samples::I32(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| norm(*s as f32, i % ch))
            .collect(),
        Samples::F32(v) => v
            .iter()
            .enumerate()
            .map(|(i, s)| norm(if s.is_finite() { *s } else { 0.0 }, i % ch))
            .collect(),
    };
    let colour = match img.colour {
        ColourSpace::Binary => ColourSpace::Grey,
        c => c,
    };
    RawImage {
        bits_per_sample: 8,
        samples: Samples::U8(data),
        colour,
        ..img.clone()
    }
}

/// Drop bands to what an encoder takes: `max` channels (JPEG 3, others 4); 2 bands (grey +
/// alpha) become 1 when alpha is not accepted.
pub fn flatten(img: RawImage, accepts_alpha: bool) -> RawImage {
    let ch = img.channels as usize;
    let keep = match (ch, accepts_alpha) {
        (2, false) => 1,
        (c, false) if c > 3 => 3,
        (c, true) if c > 4 => 3,
        (c, _) => c,
    };
    if keep == ch {
        return img;
    }
    let Samples::U8(v) = &img.samples else {
        return img;
    };
    let mut out = Vec::with_capacity(img.width as usize * img.height as usize * keep);
    for px in v.chunks_exact(ch) {
        out.extend_from_slice(&px[..keep]);
    }
    let colour = if keep == 1 {
        ColourSpace::Grey
    } else {
        ColourSpace::Srgb
    };
    RawImage::from_u8(img.width, img.height, keep as u16, colour, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_white_and_black() {
        let white = lab_pixel(100.0, 0.0, 0.0);
        assert!(white.iter().all(|v| *v >= 254), "{white:?}");
        assert_eq!(lab_pixel(0.0, 0.0, 0.0), [0, 0, 0]);
        let red = lab_pixel(53.24, 80.09, 67.2);
        assert!(red[0] > 250 && red[1] < 10 && red[2] < 10, "{red:?}");
    }

    #[test]
    fn depth_reduction() {
        let img = RawImage {
            width: 2,
            height: 1,
            channels: 1,
            bits_per_sample: 16,
            colour: ColourSpace::Grey,
            samples: Samples::U16(vec![0xffff, 0x1234]),
        };
        assert_eq!(to_8bit(&img, &[]).as_u8().unwrap(), &[0xff, 0x12]);
        let f = RawImage {
            samples: Samples::F32(vec![0.5, f32::NAN]),
            bits_per_sample: 32,
            ..img
        };
        assert_eq!(to_8bit(&f, &[(0.0, 1.0)]).as_u8().unwrap(), &[127, 0]);
    }

    #[test]
    fn flattening() {
        let rgba = RawImage::from_u8(1, 1, 4, ColourSpace::Srgb, vec![1, 2, 3, 4]);
        assert_eq!(flatten(rgba.clone(), false).as_u8().unwrap(), &[1, 2, 3]);
        assert_eq!(flatten(rgba, true).channels, 4);
        let ga = RawImage::from_u8(1, 1, 2, ColourSpace::Grey, vec![9, 255]);
        assert_eq!(flatten(ga, false).as_u8().unwrap(), &[9]);
    }
}
