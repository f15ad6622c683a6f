//! stub
use super::{Accepts, EncodeOptions, Encoder, OutputFormat};
use crate::error::Result;
use crate::image::RawImage;

#[derive(Debug, Clone, Copy, Default)]
pub struct WebpEncoder;
impl WebpEncoder {
    pub fn new(_m: u8) -> Self {
        Self
    }
}
impl Encoder for WebpEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Webp
    }
    fn accepts(&self) -> Accepts {
        Accepts {
            channels: &[1, 2, 3, 4],
            more_channels: "webp" == "tiff",
            sixteen_bit: false,
        }
    }
    fn encode(&self, _i: &RawImage, _o: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Err(crate::error::Error::internal("stub"))
    }
}
