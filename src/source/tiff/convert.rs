//! Stored samples to output samples (docs/behaviour/images-and-decoding.md §3.7): byte order, predictors,
//! cropping of edge tiles, bit unpacking and scaling, MinIsWhite inversion, palette expansion
//! and planar interleaving.
//!
//! Scaling of unpacked depths (v = stored value):
//!
//! | bits | output | formula |
//! |---|---|---|
//! | 1 | 8-bit | v × 255 |
//! | 2 | 8-bit | v × 85 |
//! | 4 | 8-bit | v × 17 |
//! | 6 | 8-bit | (v << 2) \| (v >> 4) |
//! | 10 | 16-bit | (v << 6) \| (v >> 4) |
//! | 12 | 16-bit | (v << 4) \| (v >> 8) |
//! | 14 | 16-bit | (v << 2) \| (v >> 12) |
//!
//! MinIsWhite data is inverted after scaling (255 − v, 65535 − v, 2³² − 1 − v). Float samples
//! are never inverted.

use super::codec::{undo_float_predictor, undo_horizontal};
use super::dir::{Plan, SampleKind};
use crate::image::Samples;

/// A decoded chunk: the stored samples of a full tile, in the plan's storage type.
pub(super) enum Stored {
    Bytes(Vec<u8>),
    Words(Vec<u16>),
    Longs(Vec<u32>),
}

impl Stored {
    /// A zeroed buffer for one chunk of `plan`.
    pub fn for_plan(plan: &Plan) -> Stored {
        match plan.kind {
            SampleKind::U16 => Stored::Words(vec![0; plan.chunk_bytes / 2]),
            SampleKind::U32 | SampleKind::I32 | SampleKind::F32 => {
                Stored::Longs(vec![0; plan.chunk_bytes / 4])
            }
            _ => Stored::Bytes(vec![0; plan.chunk_bytes]),
        }
    }

    /// The buffer's bytes, for decoders to write into.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Stored::Bytes(v) => v,
            Stored::Words(v) => bytes_of_mut(v),
            Stored::Longs(v) => bytes_of_mut(v),
        }
    }
}

/// Plain integer types whose every bit pattern is valid.
trait Pod: Copy {}
impl Pod for u16 {}
impl Pod for u32 {}

/// View a slice of plain integers as bytes.
fn bytes_of_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    let len = std::mem::size_of_val(v);
    // SAFETY: T is u16 or u32 (sealed by `Pod`): no padding, every byte pattern is a valid
    // value, and u8 has alignment 1. The view borrows `v` mutably, so nothing aliases it.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// Convert one decoded chunk (a full `tile_width`×`tile_height` tile of `plan.chunk_spp`
/// samples per pixel) into output samples cropped to `width`×`height`.
pub(super) fn to_samples(
    stored: Stored,
    plan: &Plan,
    colormap: &[u16],
    tile_width: u32,
    (width, height): (u32, u32),
) -> Samples {
    let spp = plan.chunk_spp as usize;
    let tile_row = tile_width as usize * spp;
    let tile_rows = plan.chunk_bytes / plan.row_bytes.max(1);
    let (w, h) = (width as usize, height as usize);
    match (stored, plan.kind) {
        (Stored::Bytes(mut v), SampleKind::U8) => {
            if plan.predictor == 2 {
                undo_horizontal(&mut v, tile_row, spp);
            }
            crop(&mut v, tile_row, w * spp, h);
            if plan.invert {
                v.iter_mut().for_each(|s| *s = !*s);
            }
            Samples::U8(v)
        }
        (Stored::Words(mut v), SampleKind::U16) => {
            if plan.swap {
                v.iter_mut().for_each(|s| *s = s.swap_bytes());
            }
            if plan.predictor == 2 {
                undo_horizontal(&mut v, tile_row, spp);
            }
            crop(&mut v, tile_row, w * spp, h);
            if plan.invert {
                v.iter_mut().for_each(|s| *s = !*s);
            }
            Samples::U16(v)
        }
        (Stored::Longs(mut v), kind) => {
            if plan.predictor == 3 {
                undo_float_predictor(bytes_of_mut(&mut v), tile_row, spp);
            } else if plan.swap {
                v.iter_mut().for_each(|s| *s = s.swap_bytes());
            }
            if plan.predictor == 2 {
                undo_horizontal(&mut v, tile_row, spp);
            }
            crop(&mut v, tile_row, w * spp, h);
            // These collects reuse the allocation (same size and alignment).
            match kind {
                SampleKind::F32 => Samples::F32(v.into_iter().map(f32::from_bits).collect()),
                SampleKind::I32 => Samples::I32(v.into_iter().map(|s| s as i32).collect()),
                _ => {
                    if plan.invert {
                        v.iter_mut().for_each(|s| *s = !*s);
                    }
                    Samples::U32(v)
                }
            }
        }
        (Stored::Bytes(v), SampleKind::Packed8 { bits }) => {
            let mut out = Vec::with_capacity(w * h * spp);
            let scale = |s: u32| scale8(s, bits);
            unpack(&v, plan.row_bytes, tile_rows, w * spp, h, bits, |s| {
                out.push(scale(s))
            });
            if plan.invert {
                out.iter_mut().for_each(|s| *s = !*s);
            }
            Samples::U8(out)
        }
        (Stored::Bytes(v), SampleKind::Packed16 { bits }) => {
            let mut out = Vec::with_capacity(w * h * spp);
            unpack(&v, plan.row_bytes, tile_rows, w * spp, h, bits, |s| {
                out.push(scale16(s, bits))
            });
            if plan.invert {
                out.iter_mut().for_each(|s| *s = !*s);
            }
            Samples::U16(out)
        }
        (Stored::Bytes(v), SampleKind::Palette { bits }) => {
            let n = 1usize << bits;
            let (r, g, b) = (&colormap[..n], &colormap[n..2 * n], &colormap[2 * n..3 * n]);
            let mut out = Vec::with_capacity(w * h * 3);
            unpack(&v, plan.row_bytes, tile_rows, w, h, bits, |i| {
                let i = i as usize;
                out.extend_from_slice(&[(r[i] >> 8) as u8, (g[i] >> 8) as u8, (b[i] >> 8) as u8]);
            });
            Samples::U8(out)
        }
        // `Stored::for_plan` always matches the plan's kind.
        (_, kind) => unreachable!("storage does not match {kind:?}"),
    }
}

/// Keep the top-left `keep`×`rows` samples of rows `stride` samples long, in place.
fn crop<T: Copy>(v: &mut Vec<T>, stride: usize, keep: usize, rows: usize) {
    if keep == stride {
        v.truncate(stride * rows);
        return;
    }
    for r in 0..rows {
        v.copy_within(r * stride..r * stride + keep, r * keep);
    }
    v.truncate(keep * rows);
}

/// Call `emit` for the first `count` `bits`-bit samples (MSB first) of each of the first `rows`
/// rows of `row_bytes` bytes. Missing bytes read as zero.
fn unpack(
    src: &[u8],
    row_bytes: usize,
    stored_rows: usize,
    count: usize,
    rows: usize,
    bits: u8,
    mut emit: impl FnMut(u32),
) {
    let bits = bits as usize;
    let mask = (1u32 << bits) - 1;
    for r in 0..rows.min(stored_rows) {
        let row = &src[r * row_bytes..(r + 1) * row_bytes];
        if bits == 8 {
            row[..count].iter().for_each(|&b| emit(b as u32));
            continue;
        }
        let byte = |i: usize| row.get(i).copied().unwrap_or(0) as u32;
        for s in 0..count {
            let pos = s * bits;
            let i = pos / 8;
            // A 24-bit window holds any sample of up to 17 bits at any bit offset.
            let window = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
            emit((window >> (24 - (pos % 8) - bits)) & mask);
        }
    }
}

/// Scale a 1, 2, 4 or 6-bit value to 8 bits.
pub(super) fn scale8(v: u32, bits: u8) -> u8 {
    (match bits {
        1 => v * 255,
        2 => v * 85,
        4 => v * 17,
        6 => (v << 2) | (v >> 4),
        _ => v,
    }) as u8
}

/// Scale a 10, 12 or 14-bit value to 16 bits.
pub(super) fn scale16(v: u32, bits: u8) -> u16 {
    (match bits {
        10 => (v << 6) | (v >> 4),
        12 => (v << 4) | (v >> 8),
        14 => (v << 2) | (v >> 12),
        _ => v,
    }) as u16
}

/// Interleave single-channel planes of equal type and length into pixel-major samples.
pub(super) fn interleave(planes: Vec<Samples>) -> Samples {
    fn join<T: Copy>(planes: Vec<Vec<T>>) -> Vec<T> {
        let n = planes.len();
        let len = planes.iter().map(Vec::len).min().unwrap_or(0);
        let mut out = Vec::with_capacity(len * n);
        for i in 0..len {
            out.extend(planes.iter().map(|p| p[i]));
        }
        out
    }
    macro_rules! collect {
        ($variant:ident) => {
            Samples::$variant(join(
                planes
                    .into_iter()
                    .map(|p| {
                        if let Samples::$variant(v) = p {
                            v
                        } else {
                            Vec::new()
                        }
                    })
                    .collect(),
            ))
        };
    }
    match planes.first() {
        Some(Samples::U8(_)) => collect!(U8),
        Some(Samples::U16(_)) => collect!(U16),
        Some(Samples::U32(_)) => collect!(U32),
        Some(Samples::I32(_)) => collect!(I32),
        Some(Samples::F32(_)) => collect!(F32),
        None => Samples::U8(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_keeps_top_left() {
        let mut v: Vec<u8> = (0..12).collect();
        crop(&mut v, 4, 2, 2);
        assert_eq!(v, vec![0, 1, 4, 5]);
    }

    #[test]
    fn unpack_reads_msb_first_with_row_padding() {
        // Two rows of three 12-bit samples: 0xABC 0x123 0xFFF | 0x001 0x800 0x7FF, each row
        // padded to 5 bytes (36 bits -> 40).
        let src = [0xAB, 0xC1, 0x23, 0xFF, 0xF0, 0x00, 0x18, 0x00, 0x7F, 0xF0];
        let mut got = Vec::new();
        unpack(&src, 5, 2, 3, 2, 12, |v| got.push(v));
        assert_eq!(got, vec![0xABC, 0x123, 0xFFF, 0x001, 0x800, 0x7FF]);
        let mut bits = Vec::new();
        unpack(&[0b1010_0000, 0b0100_0000], 1, 2, 3, 2, 1, |v| bits.push(v));
        assert_eq!(bits, vec![1, 0, 1, 0, 1, 0]);
    }

    #[test]
    fn scaling_fills_the_range() {
        assert_eq!(
            (scale8(1, 1), scale8(3, 2), scale8(15, 4), scale8(63, 6)),
            (255, 255, 255, 255)
        );
        assert_eq!(
            (scale16(1023, 10), scale16(4095, 12), scale16(16383, 14)),
            (65535, 65535, 65535)
        );
        assert_eq!((scale8(0, 6), scale16(0, 12)), (0, 0));
    }

    #[test]
    fn planes_interleave() {
        let s = interleave(vec![
            Samples::U8(vec![1, 2]),
            Samples::U8(vec![3, 4]),
            Samples::U8(vec![5, 6]),
        ]);
        assert_eq!(s, Samples::U8(vec![1, 3, 5, 2, 4, 6]));
    }
}
