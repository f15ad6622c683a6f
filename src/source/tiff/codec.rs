//! Compressed tile bytes to stored samples: one function per TIFF compression, plus the
//! predictors.
//!
//! Each decoder writes into a caller-provided buffer of exactly the stored tile's size (rows
//! byte-aligned, samples in file byte order) and fails if the data is short. Codec state that is
//! costly to set up (turbojpeg handles, inflate and zstd contexts, LZW tables) is kept per
//! thread and reused, so concurrent decodes never share or re-create it.

use std::cell::RefCell;

use crate::source::ImageFormat;
use crate::source::error::{Result, SourceError};

/// TIFF compression codes handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    None,
    Lzw,
    Deflate,
    PackBits,
    Jpeg,
    Webp,
    Zstd,
}

impl Codec {
    pub fn from_tiff(code: u16) -> Option<Codec> {
        Some(match code {
            1 => Codec::None,
            5 => Codec::Lzw,
            8 | 32946 => Codec::Deflate,
            32773 => Codec::PackBits,
            7 => Codec::Jpeg,
            50001 => Codec::Webp,
            50000 => Codec::Zstd,
            _ => return None,
        })
    }

    /// Codecs whose data is a bit stream subject to FillOrder (libtiff reverses the bits of
    /// these before decoding; JPEG, WebP and ZSTD are exempt).
    pub fn honours_fill_order(self) -> bool {
        matches!(
            self,
            Codec::None | Codec::Lzw | Codec::Deflate | Codec::PackBits
        )
    }
}

/// Tile data that does not decode (`detail`: the decoder's words); the caller adds the file and
/// tile as context.
pub(super) fn decode_error(detail: impl Into<String>) -> SourceError {
    SourceError::bad_data(ImageFormat::Tiff, detail)
}

/// A codec library's error as a decode error named by the codec, for `map_err`.
fn failed<E: std::fmt::Display>(codec: &'static str) -> impl Fn(E) -> SourceError {
    move |e| decode_error(format!("{codec}: {e}"))
}

/// Decompress `src` into `dst`, which must be filled completely. `Jpeg` and `Webp` are not
/// handled here (they decode to pixels, see [`jpeg`] and [`webp`]).
pub(super) fn decompress(codec: Codec, src: &[u8], dst: &mut [u8]) -> Result<()> {
    let n = match codec {
        Codec::None => {
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            n
        }
        Codec::PackBits => packbits(src, dst),
        Codec::Lzw => lzw(src, dst)?,
        Codec::Deflate => inflate(src, dst)?,
        Codec::Zstd => zstd(src, dst)?,
        Codec::Jpeg | Codec::Webp => unreachable!("pixel codecs are decoded by jpeg() and webp()"),
    };
    if n < dst.len() {
        return Err(decode_error(format!(
            "{codec:?}: not enough data ({n} of {} bytes)",
            dst.len()
        )));
    }
    Ok(())
}

/// PackBits (Macintosh run-length): returns the number of bytes written.
fn packbits(src: &[u8], dst: &mut [u8]) -> usize {
    let (mut i, mut o) = (0, 0);
    while i < src.len() && o < dst.len() {
        let n = src[i] as i8;
        i += 1;
        if n >= 0 {
            let len = (n as usize + 1).min(src.len() - i).min(dst.len() - o);
            dst[o..o + len].copy_from_slice(&src[i..i + len]);
            i += n as usize + 1;
            o += len;
        } else if n != -128 {
            let Some(&b) = src.get(i) else { break };
            i += 1;
            let len = (1 - n as isize) as usize;
            let len = len.min(dst.len() - o);
            dst[o..o + len].fill(b);
            o += len;
        }
    }
    o
}

thread_local! {
    static LZW: RefCell<Option<weezl::decode::Decoder>> = const { RefCell::new(None) };
    static INFLATE: RefCell<Option<flate2::Decompress>> = const { RefCell::new(None) };
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static TURBOJPEG: RefCell<Option<turbojpeg::Decompressor>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's decoder in `slot`, made by `new` on the thread's first use.
fn with_reused<D: 'static, T>(
    slot: &'static std::thread::LocalKey<RefCell<Option<D>>>,
    new: impl FnOnce() -> Result<D>,
    f: impl FnOnce(&mut D) -> Result<T>,
) -> Result<T> {
    slot.with_borrow_mut(|slot| {
        let decoder = match slot {
            Some(d) => d,
            None => slot.insert(new()?),
        };
        f(decoder)
    })
}

/// TIFF LZW (MSB-first with the early code-size switch), or the old LSB-first variant written
/// by libtiff before 5.0, recognised as libtiff does by its first two bytes.
fn lzw(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let old_style = src.len() >= 2 && src[0] == 0 && src[1] & 1 != 0;
    let mut run = |dec: &mut weezl::decode::Decoder| -> Result<usize> {
        let (mut i, mut o) = (0, 0);
        while o < dst.len() {
            let r = dec.decode_bytes(&src[i..], &mut dst[o..]);
            i += r.consumed_in;
            o += r.consumed_out;
            match r.status {
                Ok(weezl::LzwStatus::Ok) if r.consumed_in + r.consumed_out > 0 => {}
                Ok(_) => break,
                // libtiff also accepts streams that end in a bad code once the tile is full.
                Err(e) if o < dst.len() => return Err(decode_error(format!("LZW: {e}"))),
                Err(_) => break,
            }
        }
        Ok(o)
    };
    if old_style {
        let mut dec = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8);
        return run(&mut dec);
    }
    LZW.with_borrow_mut(|slot| {
        let dec = slot.get_or_insert_with(|| {
            weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
        });
        dec.reset();
        run(dec)
    })
}

/// zlib-wrapped Deflate (compression 8 and 32946).
fn inflate(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    INFLATE.with_borrow_mut(|slot| {
        let z = slot.get_or_insert_with(|| flate2::Decompress::new(true));
        z.reset(true);
        let mut i = 0usize;
        loop {
            let before_in = z.total_in();
            let before_out = z.total_out();
            let o = before_out as usize;
            let status = z
                .decompress(&src[i..], &mut dst[o..], flate2::FlushDecompress::Finish)
                .map_err(|e| decode_error(format!("Deflate: {e}")))?;
            i += (z.total_in() - before_in) as usize;
            let out = z.total_out() as usize;
            let progress = z.total_in() != before_in || z.total_out() != before_out;
            match status {
                flate2::Status::StreamEnd => return Ok(out),
                _ if out >= dst.len() || !progress => return Ok(out),
                _ => {}
            }
        }
    })
}

/// Zstandard.
fn zstd(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    with_reused(
        &ZSTD,
        || zstd::bulk::Decompressor::new().map_err(failed("ZSTD")),
        |z| z.decompress_to_buffer(src, dst).map_err(failed("ZSTD")),
    )
}

/// Where a pixel codec decodes a tile: `width`×`height` pixels of `channels` samples.
pub(super) struct Pixels<'a> {
    pub dst: &'a mut [u8],
    pub width: u32,
    pub height: u32,
    pub channels: u16,
}

/// Decode one JPEG stream (tables already spliced in) into `out`, whose channels are
/// 1 = grey, 3 = RGB (libjpeg-turbo converts YCbCr), 4 = CMYK.
pub(super) fn jpeg(src: &[u8], out: Pixels<'_>) -> Result<()> {
    let format = match out.channels {
        1 => turbojpeg::PixelFormat::GRAY,
        3 => turbojpeg::PixelFormat::RGB,
        4 => turbojpeg::PixelFormat::CMYK,
        n => return Err(decode_error(format!("JPEG with {n} samples per pixel"))),
    };
    let new = || turbojpeg::Decompressor::new().map_err(failed("JPEG"));
    with_reused(&TURBOJPEG, new, |tj| {
        let header = tj.read_header(src).map_err(failed("JPEG"))?;
        if header.width != out.width as usize || header.height != out.height as usize {
            return Err(decode_error(format!(
                "JPEG tile is {}x{}, expected {}x{}",
                header.width, header.height, out.width, out.height
            )));
        }
        let pitch = out.width as usize * out.channels as usize;
        let image = turbojpeg::Image {
            pixels: out.dst,
            width: out.width as usize,
            pitch,
            height: out.height as usize,
            format,
        };
        tj.decompress(src, image).map_err(failed("JPEG"))
    })
}

/// Decode one WebP tile into `out` (RGB or RGBA).
pub(super) fn webp(src: &[u8], out: Pixels<'_>) -> Result<()> {
    use libwebp_sys::{WebPDecodeRGBAInto, WebPDecodeRGBInto, WebPGetInfo};
    let (mut w, mut h) = (0, 0);
    // SAFETY: `src` is a valid slice for the duration of the call; w and h are valid out-params.
    let ok = unsafe { WebPGetInfo(src.as_ptr(), src.len(), &mut w, &mut h) };
    if ok == 0 {
        return Err(decode_error("WebP: bad header"));
    }
    if w as u32 != out.width || h as u32 != out.height {
        return Err(decode_error(format!(
            "WebP tile is {w}x{h}, expected {}x{}",
            out.width, out.height
        )));
    }
    let stride = out.width as usize * out.channels as usize;
    if out.dst.len() < stride * out.height as usize {
        return Err(decode_error("WebP: output buffer too small"));
    }
    // SAFETY: `out.dst` is valid for writes of `out.dst.len()` bytes, which covers
    // `out.height` rows of `stride` bytes; libwebp writes nothing past `output_size`.
    let written = unsafe {
        match out.channels {
            3 => WebPDecodeRGBInto(
                src.as_ptr(),
                src.len(),
                out.dst.as_mut_ptr(),
                out.dst.len(),
                stride as i32,
            ),
            4 => WebPDecodeRGBAInto(
                src.as_ptr(),
                src.len(),
                out.dst.as_mut_ptr(),
                out.dst.len(),
                stride as i32,
            ),
            n => return Err(decode_error(format!("WebP with {n} samples per pixel"))),
        }
    };
    if written.is_null() {
        return Err(decode_error("WebP: decoding failed"));
    }
    Ok(())
}

/// Undo horizontal differencing (Predictor 2) on native-endian samples, row by row.
pub(super) fn undo_horizontal<T: Copy + Default + WrappingAdd>(
    buf: &mut [T],
    row_len: usize,
    spp: usize,
) {
    if row_len == 0 {
        return;
    }
    for row in buf.chunks_exact_mut(row_len) {
        // The common sample counts get a loop that keeps the previous pixel in registers.
        match spp {
            1 => accumulate::<T, 1>(row),
            2 => accumulate::<T, 2>(row),
            3 => accumulate::<T, 3>(row),
            4 => accumulate::<T, 4>(row),
            _ => {
                for i in spp..row.len() {
                    row[i] = row[i].wrapping_add(row[i - spp]);
                }
            }
        }
    }
}

/// Running sum over the pixels of one row, `N` samples per pixel.
fn accumulate<T: Copy + Default + WrappingAdd, const N: usize>(row: &mut [T]) {
    let mut prev = [T::default(); N];
    for px in row.chunks_exact_mut(N) {
        for (s, p) in px.iter_mut().zip(prev.iter_mut()) {
            *s = s.wrapping_add(*p);
            *p = *s;
        }
    }
}

/// Wrapping addition for the sample types the horizontal predictor handles.
pub(super) trait WrappingAdd {
    fn wrapping_add(self, other: Self) -> Self;
}

impl WrappingAdd for u8 {
    fn wrapping_add(self, other: Self) -> Self {
        u8::wrapping_add(self, other)
    }
}

impl WrappingAdd for u16 {
    fn wrapping_add(self, other: Self) -> Self {
        u16::wrapping_add(self, other)
    }
}

impl WrappingAdd for u32 {
    fn wrapping_add(self, other: Self) -> Self {
        u32::wrapping_add(self, other)
    }
}

/// Undo the floating-point predictor (Predictor 3) for 32-bit samples. Each stored row holds the
/// bytes of its samples split into planes, most significant byte first, then differenced
/// byte-wise with a stride of `spp`. The result is native-endian, whatever the file's byte
/// order (as libtiff delivers it).
pub(super) fn undo_float_predictor(buf: &mut [u8], row_samples: usize, spp: usize) {
    let row_bytes = row_samples * 4;
    if row_bytes == 0 {
        return;
    }
    let mut tmp = vec![0u8; row_bytes];
    for row in buf.chunks_exact_mut(row_bytes) {
        undo_horizontal(row, row_bytes, spp);
        tmp.copy_from_slice(row);
        for (i, out) in row.chunks_exact_mut(4).enumerate() {
            let be = [
                tmp[i],
                tmp[row_samples + i],
                tmp[2 * row_samples + i],
                tmp[3 * row_samples + i],
            ];
            out.copy_from_slice(&u32::from_be_bytes(be).to_ne_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_decodes_literals_and_runs() {
        // From Apple's TN1023 example.
        let src = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let mut dst = [0u8; 24];
        assert_eq!(packbits(&src, &mut dst), 24);
        assert_eq!(
            dst,
            [
                0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
                0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA
            ]
        );
        // Truncated input and a full output never overrun.
        let mut small = [0u8; 2];
        assert_eq!(packbits(&src, &mut small), 2);
        assert_eq!(packbits(&[0x05, 1], &mut dst), 1);
        assert_eq!(packbits(&[0xF0], &mut dst), 0);
    }

    #[test]
    fn horizontal_predictor_wraps() {
        let mut v: Vec<u8> = vec![250, 10, 10, 1, 2, 3];
        undo_horizontal(&mut v, 3, 1);
        assert_eq!(v, vec![250, 4, 14, 1, 3, 6]);
    }

    #[test]
    fn float_predictor_round_trip() {
        // Encode two rows of 3 floats, 1 sample per pixel, the way libtiff does, then decode.
        let vals = [1.5f32, -2.25, 1e-3, 7.0, 0.0, 3.25];
        let mut enc = Vec::new();
        for row in vals.chunks(3) {
            let mut planes = vec![0u8; 12];
            for (i, v) in row.iter().enumerate() {
                for (b, byte) in v.to_be_bytes().iter().enumerate() {
                    planes[b * 3 + i] = *byte;
                }
            }
            for i in (1..12).rev() {
                planes[i] = planes[i].wrapping_sub(planes[i - 1]);
            }
            enc.extend(planes);
        }
        undo_float_predictor(&mut enc, 3, 1);
        let got: Vec<f32> = enc
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, vals);
    }
}
