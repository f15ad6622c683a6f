//! Getting decoded samples into the shapes the pipeline and the encoders use.
//!
//! **CIELAB → sRGB** (§3.1), per pixel, to float in [0, 1]:
//! - input: 8-bit L = b0 / 2.55, a and b the next bytes read as signed; 16-bit
//!   L = (u0 >> 1) / 327.67, a = s1 >> 8, b = s2 >> 8 (signed, arithmetic shift); float as is;
//! - Lab → XYZ with the D65 white (95.047, 100, 108.8827): L < 8 → Y = L·100/903.3 and
//!   f_y = 7.787·Y/100 + 16/116, else f_y = (L + 16)/116 and Y = 100·f_y³;
//!   t = a/500 + f_y → X = X0·(t − 0.13793)/7.787 if t < 0.2069 else X0·t³; likewise
//!   Z from t = f_y − b/200; X, Y, Z divided by 100;
//! - linear RGB by the sRGB matrix, negatives clamped to 0, the sRGB transfer function
//!   (12.92·v up to 0.0031308, else 1.055·v^(1/2.4) − 0.055), clamped to at most 1.
//!
//! Only the first three channels are used; extra channels are dropped (upstream leaves them
//! undefined, a bug).
//!
//! **Fast bit-depth reduction** (§3.11), when no float processing is needed: 16-bit v >> 8;
//! 32-bit v >> 24 (upstream takes bits 16–23, a bug), signed 32-bit read as unsigned as
//! upstream does. 8-bit data are unchanged.
//!
//! **Flattening** (§4.1 step 9): JPEG keeps 1 channel of 2 and 3 of more than 3; PNG, WebP and
//! AVIF keep 3 of more than 4; TIFF keeps everything. The first channels are kept.

use super::{FloatImage, map_pixels};
use crate::encode::OutputFormat;
use crate::image::{ColourSpace, RawImage, Samples};

/// CIELAB (first 3 channels, 8-bit, 16-bit or float samples) → sRGB as float in [0, 1].
pub fn lab_to_float(img: &RawImage) -> FloatImage {
    let ch = img.channels as usize;
    let data = if ch < 3 {
        vec![0.0; img.width as usize * img.height as usize * 3]
    } else {
        match &img.samples {
            Samples::U8(v) => map_pixels(v, ch, 3, |p, o| {
                o.copy_from_slice(&lab_pixel(
                    p[0] as f32 / 2.55,
                    p[1] as i8 as f32,
                    p[2] as i8 as f32,
                ))
            }),
            Samples::U16(v) => map_pixels(v, ch, 3, |p, o| {
                o.copy_from_slice(&lab_pixel(
                    (p[0] >> 1) as f32 / 327.67,
                    ((p[1] as i16) >> 8) as f32,
                    ((p[2] as i16) >> 8) as f32,
                ))
            }),
            Samples::F32(v) => map_pixels(v, ch, 3, |p, o| {
                o.copy_from_slice(&lab_pixel(p[0], p[1], p[2]))
            }),
            Samples::U32(v) => map_pixels(v, ch, 3, |p, o| {
                o.copy_from_slice(&lab_pixel(p[0] as f32, p[1] as f32, p[2] as f32))
            }),
            Samples::I32(v) => map_pixels(v, ch, 3, |p, o| {
                o.copy_from_slice(&lab_pixel(p[0] as f32, p[1] as f32, p[2] as f32))
            }),
        }
    };
    FloatImage {
        width: img.width,
        height: img.height,
        channels: 3,
        data,
    }
}

/// One L*a*b* value → sRGB in [0, 1].
pub fn lab_pixel(l: f32, a: f32, b: f32) -> [f32; 3] {
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
        s.min(1.0)
    })
}

/// The fast reduction to 8 bits (§3.11): no min/max, just shifts.
pub fn reduce_to_8bit(img: &RawImage) -> RawImage {
    let data: Vec<u8> = match &img.samples {
        Samples::U8(v) => v.clone(),
        Samples::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
        Samples::U32(v) => v.iter().map(|s| (s >> 24) as u8).collect(),
        Samples::I32(v) => v.iter().map(|s| ((*s as u32) >> 24) as u8).collect(),
        // Float data always take the float path; a plain clamp keeps this total.
        Samples::F32(v) => v
            .iter()
            .map(|s| {
                if s.is_nan() {
                    255
                } else {
                    (s * 255.0).clamp(0.0, 255.0) as u8
                }
            })
            .collect(),
    };
    let colour = match img.colour {
        ColourSpace::Binary => ColourSpace::Grey,
        c => c,
    };
    RawImage {
        width: img.width,
        height: img.height,
        channels: img.channels,
        bits_per_sample: 8,
        colour,
        samples: Samples::U8(data),
    }
}

/// How many channels `format` keeps of `channels` (§4.1 step 9).
pub fn kept_channels(channels: u16, format: OutputFormat) -> u16 {
    match format {
        OutputFormat::Jpeg | OutputFormat::Pdf if channels == 2 => 1,
        OutputFormat::Jpeg | OutputFormat::Pdf if channels > 3 => 3,
        OutputFormat::Png
        | OutputFormat::Webp
        | OutputFormat::Avif
        | OutputFormat::Gif
        | OutputFormat::Jp2
            if channels > 4 =>
        {
            3
        }
        _ => channels,
    }
}

/// Keep the first channels an encoder can take (8-bit data).
pub fn flatten(img: RawImage, format: OutputFormat) -> RawImage {
    let ch = img.channels as usize;
    let keep = kept_channels(img.channels, format) as usize;
    if keep == ch {
        return img;
    }
    let Samples::U8(v) = &img.samples else {
        return img;
    };
    let out = map_pixels(v, ch, keep, |p, o| o.copy_from_slice(&p[..keep]));
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

    fn to8(p: [f32; 3]) -> [u8; 3] {
        p.map(|v| (v * 255.0) as u8)
    }

    #[test]
    fn lab_white_black_red() {
        let white = to8(lab_pixel(100.0, 0.0, 0.0));
        assert!(white.iter().all(|v| *v >= 254), "{white:?}");
        assert_eq!(to8(lab_pixel(0.0, 0.0, 0.0)), [0, 0, 0]);
        let red = to8(lab_pixel(53.24, 80.09, 67.2));
        assert!(red[0] > 250 && red[1] < 10 && red[2] < 10, "{red:?}");
    }

    #[test]
    fn lab_input_decoding() {
        // 8-bit: L byte 255 = 100, a = b = 0 → white; the 4th channel is dropped.
        let img = RawImage::from_u8(2, 1, 4, ColourSpace::CieLab, vec![255, 0, 0, 9, 0, 0, 0, 9]);
        let f = lab_to_float(&img);
        assert_eq!(f.channels, 3);
        assert!(f.data[..3].iter().all(|v| *v > 0.99));
        assert!(f.data[3..].iter().all(|v| *v < 1e-5), "{:?}", &f.data[3..]);
        // 16-bit: (65535 >> 1) / 327.67 = 100.
        let img = RawImage {
            width: 1,
            height: 1,
            channels: 3,
            bits_per_sample: 16,
            colour: ColourSpace::CieLab,
            samples: Samples::U16(vec![65535, 0, 0]),
        };
        assert!(lab_to_float(&img).data.iter().all(|v| *v > 0.99));
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
        assert_eq!(reduce_to_8bit(&img).as_u8().unwrap(), &[0xff, 0x12]);
        let u = RawImage {
            samples: Samples::U32(vec![0xfe00_0000, 0x00ff_ffff]),
            bits_per_sample: 32,
            ..img.clone()
        };
        assert_eq!(reduce_to_8bit(&u).as_u8().unwrap(), &[0xfe, 0]);
        let s = RawImage {
            samples: Samples::I32(vec![-1, 0x0100_0000]),
            bits_per_sample: 32,
            ..img
        };
        assert_eq!(reduce_to_8bit(&s).as_u8().unwrap(), &[0xff, 1]);
    }

    #[test]
    fn flattening() {
        let rgba = RawImage::from_u8(1, 1, 4, ColourSpace::Srgb, vec![1, 2, 3, 4]);
        assert_eq!(
            flatten(rgba.clone(), OutputFormat::Jpeg).as_u8().unwrap(),
            &[1, 2, 3]
        );
        assert_eq!(flatten(rgba.clone(), OutputFormat::Png).channels, 4);
        assert_eq!(flatten(rgba, OutputFormat::Tiff).channels, 4);
        let ga = RawImage::from_u8(1, 1, 2, ColourSpace::Grey, vec![9, 255]);
        assert_eq!(
            flatten(ga.clone(), OutputFormat::Jpeg).as_u8().unwrap(),
            &[9]
        );
        assert_eq!(flatten(ga, OutputFormat::Webp).channels, 2);
        let five = RawImage::from_u8(1, 1, 5, ColourSpace::Multiband, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            flatten(five.clone(), OutputFormat::Avif).as_u8().unwrap(),
            &[1, 2, 3]
        );
        assert_eq!(flatten(five, OutputFormat::Tiff).channels, 5);
    }
}
