//! stub
use super::{Accepts, EncodeOptions, Encoder, OutputFormat};
use crate::error::Result;
use crate::image::RawImage;

#[derive(Debug, Clone, Copy, Default)]
pub struct TiffEncoder;
impl TiffEncoder {
    pub fn new(_m: u8) -> Self {
        Self
    }
}
impl Encoder for TiffEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Tiff
    }
    fn accepts(&self) -> Accepts {
        Accepts {
            channels: &[1, 2, 3, 4],
            more_channels: "tiff" == "tiff",
            sixteen_bit: false,
        }
    }
    fn encode(&self, _i: &RawImage, _o: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Err(crate::error::Error::internal("stub"))
    }
}
