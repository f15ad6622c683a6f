//! The JPEG header, parsed once at open with positional reads: the frame (SOFn) and the
//! application markers iipsrv reads (docs/behaviour/images-and-decoding.md §4): JFIF density (APP0), EXIF and
//! XMP (APP1), the ICC profile (APP2 chunks) and Adobe's colour transform (APP14).

use crate::storage::Blob;

use crate::source::ImageFormat;
use crate::source::error::{Result, SourceError};

/// At most this many segments before the first scan.
const MAX_SEGMENTS: usize = 10_000;
/// Most bytes of ICC profile kept (it may span many APP2 chunks).
const MAX_ICC_BYTES: usize = 16 << 20;

/// The frame and metadata of a JPEG file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub precision: u8,
    /// The SOF marker (0xC0..=0xCF).
    pub sof: u8,
    /// JFIF APP0: (units, x density, y density).
    pub jfif: Option<(u8, u16, u16)>,
    /// Adobe APP14 transform flag (present on most CMYK files, whose samples are inverted).
    pub adobe: Option<u8>,
    pub icc: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
    pub exif: Option<Vec<u8>>,
}

impl Header {
    /// Progressive (SOF2, SOF6, SOF10, SOF14): libjpeg holds every coefficient in memory.
    pub fn progressive(&self) -> bool {
        matches!(self.sof, 0xC2 | 0xC6 | 0xCA | 0xCE)
    }

    /// Lossless (SOF3, SOF7, SOF11, SOF15), which libjpeg-turbo 2.1 cannot decode.
    pub fn lossless(&self) -> bool {
        matches!(self.sof, 0xC3 | 0xC7 | 0xCB | 0xCF)
    }
}

/// A broken file: `what` is wrong (iipsrv reports every libjpeg failure alike).
pub fn corrupt(what: impl Into<String>) -> SourceError {
    SourceError::corrupt(ImageFormat::Jpeg, what)
}

fn read_at(file: &dyn Blob, buf: &mut [u8], offset: u64) -> Result<()> {
    let n = buf.len();
    file.read_exact_at(buf, offset).map_err(|e| {
        crate::source::SourceError::from_storage(Some(crate::source::ImageFormat::Jpeg), e, |e| {
            corrupt(format!("read of {n} bytes at {offset}")).because(e)
        })
    })
}

/// Parse the segments of the file (of `len` bytes) up to the first scan.
pub fn read_header(file: &dyn Blob, len: u64) -> Result<Header> {
    let mut soi = [0u8; 2];
    if len < 4 {
        return Err(corrupt("file too short"));
    }
    read_at(file, &mut soi, 0)?;
    if soi != [0xFF, 0xD8] {
        return Err(corrupt("no SOI marker"));
    }
    let mut h = Header::default();
    let mut icc_chunks: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut icc_bytes = 0usize;
    let mut pos = 2u64;
    for _ in 0..MAX_SEGMENTS {
        // A marker: 0xFF, any number of 0xFF fill bytes, the marker code.
        let mut b = [0u8; 1];
        read_at(file, &mut b, pos)?;
        if b[0] != 0xFF {
            return Err(corrupt(format!("no marker at {pos}")));
        }
        let mut code = 0xFF;
        while code == 0xFF {
            pos += 1;
            if pos >= len {
                return Err(corrupt("file ends inside a marker"));
            }
            read_at(file, &mut b, pos)?;
            code = b[0];
        }
        pos += 1;
        match code {
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err(corrupt("second SOI")),
            0xD9 => return Err(corrupt("EOI before the first scan")),
            0x00 => return Err(corrupt("stuffed zero outside a scan")),
            _ => {}
        }
        if len - pos < 2 {
            return Err(corrupt("file ends inside a segment length"));
        }
        let mut l = [0u8; 2];
        read_at(file, &mut l, pos)?;
        let seg_len = u16::from_be_bytes(l) as u64;
        if seg_len < 2 || seg_len > len - pos {
            return Err(corrupt(format!(
                "marker {code:#04x} at {pos} has length {seg_len}"
            )));
        }
        let payload_at = pos + 2;
        let payload_len = (seg_len - 2) as usize;
        let payload = || -> Result<Vec<u8>> {
            let mut v = vec![0u8; payload_len];
            read_at(file, &mut v, payload_at)?;
            Ok(v)
        };
        match code {
            0xC0..=0xCF if !matches!(code, 0xC4 | 0xC8 | 0xCC) => {
                if h.sof != 0 {
                    return Err(corrupt("second frame header"));
                }
                let p = payload()?;
                if p.len() < 6 {
                    return Err(corrupt("short SOF"));
                }
                h.sof = code;
                h.precision = p[0];
                h.height = u16::from_be_bytes([p[1], p[2]]) as u32;
                h.width = u16::from_be_bytes([p[3], p[4]]) as u32;
                h.components = p[5];
                if p.len() < 6 + 3 * p[5] as usize {
                    return Err(corrupt("SOF shorter than its components"));
                }
            }
            0xDA => {
                if h.sof == 0 {
                    return Err(corrupt("scan before the frame header"));
                }
                if !icc_chunks.is_empty() {
                    icc_chunks.sort_by_key(|(seq, _)| *seq);
                    h.icc = Some(icc_chunks.into_iter().flat_map(|(_, c)| c).collect());
                }
                return Ok(h);
            }
            0xE0 if h.jfif.is_none() && payload_len >= 12 => {
                let p = payload()?;
                if p.starts_with(b"JFIF\0") {
                    h.jfif = Some((
                        p[7],
                        u16::from_be_bytes([p[8], p[9]]),
                        u16::from_be_bytes([p[10], p[11]]),
                    ));
                }
            }
            0xE1 => {
                let p = payload()?;
                if p.starts_with(b"Exif") && h.exif.is_none() {
                    h.exif = Some(p.get(6..).unwrap_or_default().to_vec());
                } else if p.starts_with(b"http") && h.xmp.is_none() {
                    // The namespace URI ends at a NUL within the first 80 bytes; the packet
                    // follows it. Extended-XMP segments (later, same prefix) are not taken.
                    let limit = p.len().saturating_sub(2).min(80);
                    if let Some(nul) = p[..limit].iter().position(|&c| c == 0) {
                        h.xmp = Some(p[nul + 1..].to_vec());
                    }
                }
            }
            0xE2 if payload_len >= 14 => {
                let p = payload()?;
                if p.starts_with(b"ICC_PROFILE\0") {
                    icc_bytes += p.len() - 14;
                    if icc_bytes > MAX_ICC_BYTES {
                        return Err(corrupt("ICC profile too large"));
                    }
                    icc_chunks.push((p[12], p[14..].to_vec()));
                }
            }
            0xEE if payload_len >= 12 && h.adobe.is_none() => {
                let p = payload()?;
                if p.starts_with(b"Adobe") {
                    h.adobe = Some(p[11]);
                }
            }
            _ => {}
        }
        pos = payload_at + payload_len as u64;
    }
    Err(corrupt("too many segments before the first scan"))
}
