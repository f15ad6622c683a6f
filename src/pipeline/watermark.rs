//! Watermarks (`WATERMARK`, `WATERMARK_PROBABILITY`, `WATERMARK_OPACITY`, §3.16).
//!
//! **Loading** (once): the TIFF is decoded to RGBA (any layout the `tiff` crate reads: strips
//! or tiles, grey, RGB, with or without alpha, 8 or 16 bits) and each pixel is stored as RGB
//! pre-multiplied by opacity and alpha, wm_c = trunc(c · opacity · a/255).
//!
//! **Applying** (skipped when the probability or the opacity is 0): the image is cut into
//! blocks of side B (partial blocks at the right and bottom; B = the whole image for tiles, and
//! for region exports 2 × the larger tile side of the full-resolution level when the image is
//! larger than that). For each block a draw r in [0, 1) decides: the mark is pasted only if
//! r < probability, at a random offset trunc(rand · (block − mark)) in each direction where the
//! block is larger than the mark (else 0), clipped to the block. Each covered colour sample
//! becomes min(255, v + wm_k). Alpha channels (the 2nd of 2, the 4th of 4) are left alone;
//! upstream reads the next pixel's red for them (**[QUIRK]**). Grey images take the red mark.
//!
//! The random generator is seeded once per process, so results differ per request;
//! watermarked output is never cached (docs/behaviour/cache.md §3).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::image::{RawImage, Samples};

/// Largest watermark accepted (pixels).
const MAX_PIXELS: u64 = 1 << 26;

/// A loaded watermark: RGB pre-multiplied by opacity and alpha.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub width: u32,
    pub height: u32,
    pub opacity: f64,
    /// Interleaved RGB.
    pub rgb: Vec<u8>,
}

impl Watermark {
    /// Build from 8-bit RGBA pixels.
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8], opacity: f64) -> Watermark {
        let rgb = rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let k = opacity as f32 * p[3] as f32 / 255.0;
                [
                    (p[0] as f32 * k) as u8,
                    (p[1] as f32 * k) as u8,
                    (p[2] as f32 * k) as u8,
                ]
            })
            .collect();
        Watermark {
            width,
            height,
            opacity,
            rgb,
        }
    }

    /// Read a TIFF file.
    pub fn load(path: &Path, opacity: f64) -> Result<Watermark> {
        let fail = |e: String| {
            Error::internal("watermark could not be loaded")
                .with_detail(format!("{}: {e}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut d = tiff::decoder::Decoder::new(std::io::BufReader::new(file))
            .map_err(|e| fail(e.to_string()))?;
        let (w, h) = d.dimensions().map_err(|e| fail(e.to_string()))?;
        if w == 0 || h == 0 || w as u64 * h as u64 > MAX_PIXELS {
            return Err(fail(format!("unsupported size {w}x{h}")));
        }
        let colour = d.colortype().map_err(|e| fail(e.to_string()))?;
        let image = d.read_image().map_err(|e| fail(e.to_string()))?;
        let samples: Vec<u8> = match image {
            tiff::decoder::DecodingResult::U8(v) => v,
            tiff::decoder::DecodingResult::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
            _ => return Err(fail(format!("unsupported sample type for {colour:?}"))),
        };
        use tiff::ColorType as C;
        let ch = match colour {
            C::Gray(8 | 16) => 1,
            C::GrayA(8 | 16) => 2,
            C::RGB(8 | 16) => 3,
            C::RGBA(8 | 16) => 4,
            other => return Err(fail(format!("unsupported colour type {other:?}"))),
        };
        let n = w as usize * h as usize;
        if samples.len() < n * ch {
            return Err(fail("short pixel data".into()));
        }
        let rgba: Vec<u8> = samples[..n * ch]
            .chunks_exact(ch)
            .flat_map(|p| match ch {
                1 => [p[0], p[0], p[0], 255],
                2 => [p[0], p[0], p[0], p[1]],
                3 => [p[0], p[1], p[2], 255],
                _ => [p[0], p[1], p[2], p[3]],
            })
            .collect();
        Ok(Watermark::from_rgba(w, h, &rgba, opacity))
    }

    /// Paste the mark into 8-bit `img`, block by block (`block` 0 = one block).
    pub fn apply(&self, img: &mut RawImage, block: u32, probability: f64) {
        self.apply_with(img, block, probability, &mut random01);
    }

    /// [`Watermark::apply`] with a given random source (values in [0, 1)).
    pub fn apply_with(
        &self,
        img: &mut RawImage,
        block: u32,
        probability: f64,
        rand: &mut dyn FnMut() -> f64,
    ) {
        if probability <= 0.0 || self.opacity <= 0.0 || self.width == 0 || self.height == 0 {
            return;
        }
        let (iw, ih, ch) = (img.width, img.height, img.channels as usize);
        let Samples::U8(data) = &mut img.samples else {
            return;
        };
        let colours = if ch >= 3 { 3 } else { 1 };
        let (bw, bh) = if block == 0 || (iw <= block && ih <= block) {
            (iw.max(1), ih.max(1))
        } else {
            (block, block)
        };
        let mut by = 0;
        while by < ih {
            let block_h = bh.min(ih - by);
            let mut bx = 0;
            while bx < iw {
                let block_w = bw.min(iw - bx);
                if rand() < probability {
                    let xo = if block_w > self.width {
                        (rand() * (block_w - self.width) as f64) as u32
                    } else {
                        0
                    };
                    let yo = if block_h > self.height {
                        (rand() * (block_h - self.height) as f64) as u32
                    } else {
                        0
                    };
                    let w = self.width.min(block_w - xo);
                    let h = self.height.min(block_h - yo);
                    for j in 0..h as usize {
                        let y = (by + yo) as usize + j;
                        for i in 0..w as usize {
                            let x = (bx + xo) as usize + i;
                            let px = &mut data[(y * iw as usize + x) * ch..][..ch];
                            let m = &self.rgb[(j * self.width as usize + i) * 3..][..3];
                            for k in 0..colours {
                                px[k] = px[k].saturating_add(m[k]);
                            }
                        }
                    }
                }
                bx += bw;
            }
            by += bh;
        }
    }
}

static STATE: AtomicU64 = AtomicU64::new(0);

/// A process-wide SplitMix64 draw in [0, 1), seeded from the clock on first use.
pub fn random01() -> f64 {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    if STATE.load(Ordering::Relaxed) == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let seed = (nanos ^ ((std::process::id() as u64) << 32)) | 1;
        let _ = STATE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE
        .fetch_add(GOLDEN, Ordering::Relaxed)
        .wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    fn mark() -> Watermark {
        // 2×1: opaque (100, 50, 10) and half-transparent white.
        Watermark::from_rgba(2, 1, &[100, 50, 10, 255, 255, 255, 255, 128], 0.5)
    }

    #[test]
    fn premultiplied() {
        let m = mark();
        // 100·0.5 = 50; 255·0.5·128/255 = 64.
        assert_eq!(m.rgb, vec![50, 25, 5, 64, 64, 64]);
    }

    #[test]
    fn pasted_in_each_block() {
        let m = mark();
        let mut img = RawImage::from_u8(4, 1, 3, ColourSpace::Srgb, vec![200; 12]);
        // Blocks of 2: each block is as wide as the mark, so no offset draw.
        let mut draws = vec![0.0, 0.0].into_iter();
        m.apply_with(&mut img, 2, 1.0, &mut || draws.next().unwrap());
        assert_eq!(
            img.as_u8().unwrap(),
            &[250, 225, 205, 255, 255, 255, 250, 225, 205, 255, 255, 255]
        );
        // Probability: a draw ≥ p skips the block.
        let mut img = RawImage::from_u8(4, 1, 1, ColourSpace::Grey, vec![0; 4]);
        let mut draws = vec![0.9, 0.1].into_iter();
        m.apply_with(&mut img, 2, 0.5, &mut || draws.next().unwrap());
        assert_eq!(img.as_u8().unwrap(), &[0, 0, 50, 64]);
        // One block (tiles): offset = trunc(0.5 · (4 − 2)) = 1; alpha untouched.
        let mut img = RawImage::from_u8(4, 1, 2, ColourSpace::Grey, vec![0; 8]);
        let mut draws = vec![0.0, 0.5].into_iter();
        m.apply_with(&mut img, 0, 1.0, &mut || draws.next().unwrap());
        assert_eq!(img.as_u8().unwrap(), &[0, 0, 50, 0, 64, 0, 0, 0]);
    }

    #[test]
    fn clipped_at_partial_blocks() {
        let m = Watermark::from_rgba(3, 3, &[255; 36], 1.0);
        let mut img = RawImage::from_u8(2, 2, 1, ColourSpace::Grey, vec![1; 4]);
        m.apply(&mut img, 0, 1.0);
        assert_eq!(img.as_u8().unwrap(), &[255; 4]);
    }

    #[test]
    fn random_numbers_are_in_range() {
        for _ in 0..1000 {
            let r = random01();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
