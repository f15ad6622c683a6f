//! stub
use super::{Accepts, EncodeOptions, Encoder, OutputFormat};
use crate::error::Result;
use crate::image::RawImage;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvifCodec {
    Auto,
}
#[derive(Debug, Clone, Copy)]
pub struct AvifEncoder;
impl AvifEncoder {
    pub fn new(_c: AvifCodec, _s: u8, _t: u32) -> Self {
        Self
    }
}
impl Encoder for AvifEncoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Avif
    }
    fn accepts(&self) -> Accepts {
        Accepts {
            channels: &[1, 2, 3, 4],
            more_channels: false,
            sixteen_bit: false,
        }
    }
    fn encode(&self, _i: &RawImage, _o: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Err(crate::error::Error::internal("stub"))
    }
}
