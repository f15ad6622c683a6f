//! The WebP RIFF container: adds ICC, EXIF and XMP chunks by rewriting a simple (`VP8 `,
//! `VP8L`) or extended (`VP8X`) still image into the extended layout.
//!
//! ```text
//! RIFF <size = file length − 8> WEBP
//!   VP8X (flags: ICC 0x20, alpha 0x10, EXIF 0x08, XMP 0x04; canvas width−1, height−1)
//!   ICCP, ALPH, VP8 /VP8L, EXIF, XMP , unknown chunks
//! ```
//!
//! Every chunk is `fourcc, u32 LE size, data`, padded to an even length. Written here rather
//! than through libwebpmux: it is this one rewrite, and it avoids another C library.

use super::{EncodeError, OutputFormat};

const FLAG_ICC: u8 = 0x20;
const FLAG_ALPHA: u8 = 0x10;
const FLAG_EXIF: u8 = 0x08;
const FLAG_XMP: u8 = 0x04;
const FLAG_ANIMATION: u8 = 0x02;

/// One chunk of a WebP file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk<'a> {
    pub fourcc: [u8; 4],
    pub data: &'a [u8],
}

fn malformed(message: &str) -> EncodeError {
    EncodeError::Malformed {
        format: OutputFormat::Webp,
        message: message.into(),
    }
}

/// The chunks of a RIFF/WEBP file, in order.
pub(crate) fn chunks(file: &[u8]) -> Result<Vec<Chunk<'_>>, EncodeError> {
    if file.len() < 12 || &file[..4] != b"RIFF" || &file[8..12] != b"WEBP" {
        return Err(malformed("not a RIFF/WEBP file"));
    }
    let riff_size = u32::from_le_bytes(file[4..8].try_into().expect("4 bytes")) as usize;
    let end = riff_size
        .checked_add(8)
        .filter(|&e| e <= file.len())
        .ok_or_else(|| malformed("truncated file"))?;
    let mut pos = 12;
    let mut out = Vec::new();
    while pos + 8 <= end {
        let fourcc: [u8; 4] = file[pos..pos + 4].try_into().expect("4 bytes");
        let size = u32::from_le_bytes(file[pos + 4..pos + 8].try_into().expect("4 bytes")) as usize;
        let data_end = (pos + 8)
            .checked_add(size)
            .filter(|&e| e <= end)
            .ok_or_else(|| malformed("truncated chunk"))?;
        out.push(Chunk {
            fourcc,
            data: &file[pos + 8..data_end],
        });
        pos = data_end + (size & 1);
    }
    if out.is_empty() {
        return Err(malformed("no chunks"));
    }
    Ok(out)
}

/// Canvas size and alpha flag from a `VP8 ` or `VP8L` bitstream chunk.
fn bitstream_info(chunk: &Chunk<'_>) -> Option<(u32, u32, bool)> {
    let d = chunk.data;
    match &chunk.fourcc {
        b"VP8 " if d.len() >= 10 && d[3..6] == [0x9D, 0x01, 0x2A] => {
            let w = u16::from_le_bytes([d[6], d[7]]) & 0x3FFF;
            let h = u16::from_le_bytes([d[8], d[9]]) & 0x3FFF;
            Some((w as u32, h as u32, false))
        }
        b"VP8L" if d.len() >= 5 && d[0] == 0x2F => {
            let bits = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
            Some((
                (bits & 0x3FFF) + 1,
                ((bits >> 14) & 0x3FFF) + 1,
                (bits >> 28) & 1 == 1,
            ))
        }
        _ => None,
    }
}

/// Rewrites a still WebP file with the given metadata chunks (replacing any already there;
/// `None` keeps an existing chunk). Returns the file unchanged if nothing is to be added.
pub(crate) fn add_metadata(
    file: &[u8],
    icc: Option<&[u8]>,
    xmp: Option<&[u8]>,
    exif: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let (icc, xmp, exif) = (
        icc.filter(|d| !d.is_empty()),
        xmp.filter(|d| !d.is_empty()),
        exif.filter(|d| !d.is_empty()),
    );
    if icc.is_none() && xmp.is_none() && exif.is_none() {
        return Ok(file.to_vec());
    }
    let chunks = chunks(file)?;
    let find = |fourcc: &[u8; 4]| chunks.iter().find(|c| &c.fourcc == fourcc).map(|c| c.data);
    let image = chunks
        .iter()
        .find(|c| &c.fourcc == b"VP8 " || &c.fourcc == b"VP8L")
        .ok_or_else(|| malformed("no VP8/VP8L image chunk (animated files are not supported)"))?;
    let (width, height, vp8l_alpha) =
        bitstream_info(image).ok_or_else(|| malformed("bad image chunk header"))?;
    let old_flags = match find(b"VP8X") {
        Some(vp8x) if vp8x.len() >= 10 => vp8x[0],
        Some(_) => return Err(malformed("short VP8X chunk")),
        None => 0,
    };
    if old_flags & FLAG_ANIMATION != 0 {
        return Err(malformed("animated WebP"));
    }
    if width == 0 || height == 0 || width > 1 << 24 || height > 1 << 24 {
        return Err(malformed("bad canvas size"));
    }

    let icc = icc.or_else(|| find(b"ICCP"));
    let exif = exif.or_else(|| find(b"EXIF"));
    let xmp = xmp.or_else(|| find(b"XMP "));
    let alpha = old_flags & FLAG_ALPHA != 0 || find(b"ALPH").is_some() || vp8l_alpha;
    let mut flags = 0;
    for (present, flag) in [
        (icc.is_some(), FLAG_ICC),
        (alpha, FLAG_ALPHA),
        (exif.is_some(), FLAG_EXIF),
        (xmp.is_some(), FLAG_XMP),
    ] {
        if present {
            flags |= flag;
        }
    }
    let mut vp8x = [0u8; 10];
    vp8x[0] = flags;
    vp8x[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);

    let total: usize = chunks.iter().map(|c| 8 + c.data.len() + 1).sum::<usize>()
        + [icc, exif, xmp]
            .iter()
            .flatten()
            .map(|d| 9 + d.len())
            .sum::<usize>()
        + 30;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    push_chunk(&mut out, b"VP8X", &vp8x);
    if let Some(icc) = icc {
        push_chunk(&mut out, b"ICCP", icc);
    }
    for fourcc in [b"ALPH", b"VP8 ", b"VP8L"] {
        if let Some(data) = find(fourcc) {
            push_chunk(&mut out, fourcc, data);
        }
    }
    if let Some(exif) = exif {
        push_chunk(&mut out, b"EXIF", exif);
    }
    if let Some(xmp) = xmp {
        push_chunk(&mut out, b"XMP ", xmp);
    }
    const KNOWN: [&[u8; 4]; 7] = [
        b"VP8X", b"ICCP", b"ALPH", b"VP8 ", b"VP8L", b"EXIF", b"XMP ",
    ];
    for chunk in chunks.iter().filter(|c| !KNOWN.contains(&&c.fourcc)) {
        push_chunk(&mut out, &chunk.fourcc, chunk.data);
    }
    let riff_size = u32::try_from(out.len() - 8).map_err(|_| malformed("file above 4 GiB"))?;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    Ok(out)
}

fn push_chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(fourcc);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple_vp8l(width: u32, height: u32, alpha: bool) -> Vec<u8> {
        let bits = (width - 1) | ((height - 1) << 14) | (u32::from(alpha) << 28);
        let mut data = vec![0x2F];
        data.extend_from_slice(&bits.to_le_bytes());
        data.extend_from_slice(&[1, 2, 3]); // odd length: padded
        let mut file = b"RIFF\0\0\0\0WEBP".to_vec();
        push_chunk(&mut file, b"VP8L", &data);
        let size = (file.len() - 8) as u32;
        file[4..8].copy_from_slice(&size.to_le_bytes());
        file
    }

    #[test]
    fn simple_file_becomes_extended() {
        let file = simple_vp8l(300, 20, true);
        let out = add_metadata(&file, Some(b"icc"), Some(b"<x/>"), Some(b"II*\0")).unwrap();
        assert_eq!(
            u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize,
            out.len() - 8
        );
        let chunks = chunks(&out).unwrap();
        let names: Vec<&[u8; 4]> = chunks.iter().map(|c| &c.fourcc).collect();
        assert_eq!(names, [b"VP8X", b"ICCP", b"VP8L", b"EXIF", b"XMP "]);
        assert_eq!(chunks[0].data, &[0x3C, 0, 0, 0, 43, 1, 0, 19, 0, 0]);
        assert_eq!(chunks[1].data, b"icc");
        assert_eq!(chunks[2].data, chunks_of(&file)[0].data);
    }

    fn chunks_of(file: &[u8]) -> Vec<Chunk<'_>> {
        chunks(file).unwrap()
    }

    #[test]
    fn existing_metadata_kept_or_replaced() {
        let file = simple_vp8l(8, 8, false);
        let first = add_metadata(&file, Some(b"one"), None, Some(b"II*\0")).unwrap();
        let second = add_metadata(&first, Some(b"two!"), Some(b"x"), None).unwrap();
        let chunks = chunks(&second).unwrap();
        assert_eq!(chunks[0].data[0], FLAG_ICC | FLAG_EXIF | FLAG_XMP);
        assert_eq!(
            chunks.iter().find(|c| &c.fourcc == b"ICCP").unwrap().data,
            b"two!"
        );
        assert_eq!(
            chunks.iter().find(|c| &c.fourcc == b"EXIF").unwrap().data,
            b"II*\0"
        );
        assert_eq!(add_metadata(&file, None, None, None).unwrap(), file);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(add_metadata(b"RIFF\x04\0\0\0WEBP", Some(b"i"), None, None).is_err());
        let mut file = simple_vp8l(8, 8, false);
        file.pop();
        assert!(
            add_metadata(&file, Some(b"i"), None, None).is_err(),
            "truncated"
        );
        assert!(add_metadata(b"GIF89a", Some(b"i"), None, None).is_err());
    }
}
