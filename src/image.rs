//! Decoded pixels, as they travel from the sources through the pipeline to the encoders.

/// The sample storage of a [`RawImage`]: interleaved, row-major, no padding.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// 1–8 bit samples, one byte each (sub-byte depths are unpacked).
    U8(Vec<u8>),
    /// 9–16 bit samples.
    U16(Vec<u16>),
    /// 32-bit unsigned integer samples.
    U32(Vec<u32>),
    /// 32-bit signed integer samples.
    I32(Vec<i32>),
    /// 32-bit float samples.
    F32(Vec<f32>),
}

impl Samples {
    /// Number of samples stored.
    pub fn len(&self) -> usize {
        match self {
            Samples::U8(v) => v.len(),
            Samples::U16(v) => v.len(),
            Samples::U32(v) => v.len(),
            Samples::I32(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The colour interpretation of the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColourSpace {
    /// Greyscale (MINISWHITE already inverted by the source).
    Grey,
    /// RGB (YCbCr already converted by the source).
    #[default]
    Srgb,
    /// CIE L*a*b* (converted to sRGB by the pipeline).
    CieLab,
    /// Bilevel (1-bit) images, served as grey.
    Binary,
    /// More than 3 or 4 bands without colour meaning (multispectral).
    Multiband,
}

/// A decoded rectangle of pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    pub width: u32,
    pub height: u32,
    /// Samples per pixel, including alpha/extra samples.
    pub channels: u16,
    /// Significant bits per sample as stored in the file (1, 8, 12, 16, 32, …).
    pub bits_per_sample: u16,
    pub colour: ColourSpace,
    pub samples: Samples,
}

impl RawImage {
    /// An 8-bit image from its bytes. Panics in debug builds if the length is wrong.
    pub fn from_u8(
        width: u32,
        height: u32,
        channels: u16,
        colour: ColourSpace,
        data: Vec<u8>,
    ) -> Self {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels as usize
        );
        RawImage {
            width,
            height,
            channels,
            bits_per_sample: 8,
            colour,
            samples: Samples::U8(data),
        }
    }

    /// Samples in one row.
    pub fn row_len(&self) -> usize {
        self.width as usize * self.channels as usize
    }

    /// The 8-bit samples, if this is an 8-bit image.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.samples {
            Samples::U8(v) => Some(v),
            _ => None,
        }
    }
}
