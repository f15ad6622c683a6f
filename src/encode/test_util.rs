//! Test inputs and measures shared by the encoder tests.

use super::{EncodeOptions, Resolution, ResolutionUnit};
use crate::image::{ColourSpace, RawImage, Samples};

/// A smooth synthetic image: horizontal, vertical and diagonal gradients in the colour
/// channels, a radial alpha ramp in the last channel of 2- and 4-channel images.
pub fn gradient(width: u32, height: u32, channels: u16) -> RawImage {
    let mut data = Vec::with_capacity(width as usize * height as usize * channels as usize);
    for y in 0..height {
        for x in 0..width {
            let fx = x as f64 / (width.max(2) - 1) as f64;
            let fy = y as f64 / (height.max(2) - 1) as f64;
            let values = [fx, fy, (fx + fy) / 2.0];
            let alpha = 1.0 - ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt();
            for c in 0..channels {
                let has_alpha = channels == 2 || channels == 4;
                let v = if has_alpha && c == channels - 1 {
                    alpha
                } else {
                    values[c as usize % 3]
                };
                data.push((v * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    let colour = if channels < 3 {
        ColourSpace::Grey
    } else {
        ColourSpace::Srgb
    };
    RawImage::from_u8(width, height, channels, colour, data)
}

/// A 16-bit version of [`gradient`] with full 16-bit precision.
pub fn gradient16(width: u32, height: u32, channels: u16) -> RawImage {
    let mut data = Vec::with_capacity(width as usize * height as usize * channels as usize);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let v = (x as u64 * 65535 / width.max(1) as u64 + y as u64 * 977 + c as u64 * 4099)
                    % 65536;
                data.push(v as u16);
            }
        }
    }
    RawImage {
        width,
        height,
        channels,
        bits_per_sample: 16,
        colour: if channels < 3 {
            ColourSpace::Grey
        } else {
            ColourSpace::Srgb
        },
        samples: Samples::U16(data),
    }
}

/// Peak signal-to-noise ratio of two 8-bit buffers in dB (infinite when identical).
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "buffer lengths differ");
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// A fake ICC profile of `len` bytes with a recognisable pattern (encoders must not parse it).
pub fn fake_icc(len: usize) -> Vec<u8> {
    let mut icc: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    if len >= 4 {
        icc[..4].copy_from_slice(&(len as u32).to_be_bytes());
    }
    icc
}

/// A small XMP packet.
pub const XMP: &[u8] = br#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta><?xpacket end="w"?>"#;

/// A minimal EXIF block: little-endian TIFF header and an IFD with one Orientation entry.
pub const EXIF: &[u8] = &[
    b'I', b'I', 42, 0, 8, 0, 0, 0, // header, IFD at 8
    1, 0, // one entry
    0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, // Orientation SHORT 1 = 1
    0, 0, 0, 0, // no next IFD
];

/// Drops every `channels`-th sample starting at `skip` (e.g. the alpha channel).
pub fn drop_channel(data: &[u8], channels: usize, skip: usize) -> Vec<u8> {
    data.iter()
        .enumerate()
        .filter(|(i, _)| i % channels != skip)
        .map(|(_, &v)| v)
        .collect()
}

/// Options asking for 5 pixels per centimetre (a resolution every format writes differently).
pub fn five_per_centimetre() -> EncodeOptions<'static> {
    EncodeOptions {
        resolution: Some(Resolution {
            x: 5.0,
            y: 5.0,
            unit: ResolutionUnit::Centimetre,
        }),
        ..Default::default()
    }
}
