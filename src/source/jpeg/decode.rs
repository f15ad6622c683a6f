//! One libjpeg-turbo decode of a whole JPEG at a DCT scale of 1/2^s (s = 0..=3), through the
//! TurboJPEG API of Debian's libturbojpeg (2.1): asking `tjDecompress2` for a smaller size
//! makes libjpeg scale in the DCT domain, which is what iipsrv's `scale_denom` does.
//!
//! Settings as iipsrv's: fastest DCT, no fancy upsampling. Progressive files with an absurd
//! number of scans are refused (TJFLAG_LIMITSCANS). A libjpeg warning is an error, except the
//! common "extraneous bytes before marker" one: a truncated or corrupt file is answered with an
//! error rather than served with its missing part grey.

use std::ffi::CStr;

use turbojpeg::raw;

use super::markers::{Header, corrupt};
use crate::source::ImageFormat;
use crate::source::error::{Result, SourceError};

/// A decoded image: 8-bit, interleaved, 1 (grey) or 3 (RGB) channels.
#[derive(Debug)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub channels: u16,
    pub data: Vec<u8>,
}

impl Decoded {
    /// Memory held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// The size of an image of `w`×`h` decoded at 1/2^scale: libjpeg rounds up.
pub fn scaled_size(w: u32, h: u32, scale: u32) -> (u32, u32) {
    (w.div_ceil(1 << scale), h.div_ceil(1 << scale))
}

struct Handle(raw::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tjInitDecompress, destroyed once.
        unsafe { raw::tjDestroy(self.0) };
    }
}

fn message(h: &Handle) -> String {
    // SAFETY: tjGetErrorStr2 returns a NUL-terminated string owned by the handle.
    let s = unsafe { raw::tjGetErrorStr2(h.0) };
    if s.is_null() {
        return "unknown error".to_string();
    }
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Decode the whole of `jpeg` at 1/2^`scale`.
pub fn decode(jpeg: &[u8], header: &Header, scale: u32) -> Result<Decoded> {
    let (w, h) = scaled_size(header.width, header.height, scale);
    let (format, px) = match header.components {
        1 => (raw::TJPF_TJPF_GRAY, 1usize),
        3 => (raw::TJPF_TJPF_RGB, 3),
        4 => (raw::TJPF_TJPF_CMYK, 4),
        n => return Err(corrupt(format!("{n} components"))),
    };
    let pitch = w as usize * px;
    let mut data = vec![0u8; pitch * h as usize];
    // SAFETY: plain constructor; checked for null.
    let handle = Handle(unsafe { raw::tjInitDecompress() });
    if handle.0.is_null() {
        return Err(SourceError::internal(
            ImageFormat::Jpeg,
            "cannot create a decoder",
        ));
    }
    let flags = (raw::TJFLAG_FASTDCT | raw::TJFLAG_FASTUPSAMPLE | raw::TJFLAG_LIMITSCANS) as i32;
    // SAFETY: `data` holds pitch * h bytes; libjpeg-turbo writes at most the scaled size,
    // which is w x h for the scaling factor it chooses for this w x h (1/2^scale, or another
    // factor giving the same size).
    let rc = unsafe {
        raw::tjDecompress2(
            handle.0,
            jpeg.as_ptr(),
            jpeg.len() as libc::c_ulong,
            data.as_mut_ptr(),
            w as libc::c_int,
            pitch as libc::c_int,
            h as libc::c_int,
            format as libc::c_int,
            flags,
        )
    };
    if rc != 0 {
        let msg = message(&handle);
        tracing::debug!("JPEG :: {msg}");
        if !msg.contains("extraneous bytes") {
            return Err(SourceError::bad_data(ImageFormat::Jpeg, msg));
        }
    }
    if px == 4 {
        data = cmyk_to_rgb(&data, header.adobe.is_some());
    }
    Ok(Decoded {
        width: w,
        height: h,
        channels: if px == 1 { 1 } else { 3 },
        data,
    })
}

/// CMYK (or YCCK, converted by libjpeg) to RGB without a colour profile: R = (1−C)(1−K) etc.
/// Adobe files (APP14) store the samples inverted, so there R = C·K/255.
fn cmyk_to_rgb(cmyk: &[u8], inverted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let (c, m, y, k) = if inverted {
            (p[0] as u32, p[1] as u32, p[2] as u32, p[3] as u32)
        } else {
            (
                255 - p[0] as u32,
                255 - p[1] as u32,
                255 - p[2] as u32,
                255 - p[3] as u32,
            )
        };
        out.extend_from_slice(&[
            ((c * k + 127) / 255) as u8,
            ((m * k + 127) / 255) as u8,
            ((y * k + 127) / 255) as u8,
        ]);
    }
    out
}
