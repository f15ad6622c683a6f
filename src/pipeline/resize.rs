//! Resampling of 8-bit data for region exports (§3.13), from (W, H) to (W′, H′) with
//! xs = W/W′ and ys = H/H′.
//!
//! - **Nearest neighbour** (`INTERPOLATION=0`): out(i, j) = in(⌊i·xs⌋, ⌊j·ys⌋), exactly as
//!   upstream.
//! - **Bilinear** (otherwise), upstream's corner-aligned 2×2 bilinear with x clamped to the
//!   last column (upstream reads the next row's first pixel there, **[QUIRK]**, recommended
//!   fix): ii = ⌊i·xs⌋, jj = ⌊j·ys⌋, a = ii + 1 − i·xs, b = i·xs − ii, c = jj + 1 − j·ys,
//!   d = j·ys − jj, out = c·(a·p11 + b·p21) + d·(a·p12 + b·p22). For 1–4 channels this runs in
//!   `fast_image_resize` (`Interpolation(Bilinear)`, SIMD, 2.5–5× faster) with a shifted crop
//!   box so that it samples at upstream's positions; it rounds where upstream truncates, so
//!   values differ by at most one level. Other channel counts use [`bilinear`], truncating.

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use rayon::prelude::*;

use super::PARALLEL_PIXELS;
use crate::config::Interpolation;
use crate::image::{RawImage, Samples};

/// Resize 8-bit data to `w`×`h`.
pub fn resize(img: RawImage, w: u32, h: u32, interpolation: Interpolation) -> RawImage {
    let (w, h) = (w.max(1), h.max(1));
    let (sw, sh, ch, colour) = (img.width, img.height, img.channels, img.colour);
    let Samples::U8(src) = img.samples else {
        return img;
    };
    if sw == 0 || sh == 0 || ch == 0 {
        return RawImage::from_u8(
            w,
            h,
            ch,
            colour,
            vec![0; w as usize * h as usize * ch as usize],
        );
    }
    let data = if interpolation == Interpolation::Nearest {
        nearest(&src, sw, sh, ch as usize, w, h)
    } else if (1..=4).contains(&ch) {
        fast(src, sw, sh, ch, w, h)
    } else {
        bilinear(&src, sw, sh, ch as usize, w, h)
    };
    RawImage::from_u8(w, h, ch, colour, data)
}

/// Nearest neighbour, upstream's sampling.
pub fn nearest(src: &[u8], sw: u32, sh: u32, ch: usize, w: u32, h: u32) -> Vec<u8> {
    let xs = sw as f32 / w as f32;
    let ys = sh as f32 / h as f32;
    let cols: Vec<usize> = (0..w)
        .map(|i| ((i as f32 * xs) as usize).min(sw as usize - 1))
        .collect();
    let mut out = vec![0u8; w as usize * h as usize * ch];
    for (j, row) in out.chunks_exact_mut(w as usize * ch).enumerate() {
        let jj = ((j as f32 * ys) as usize).min(sh as usize - 1);
        let line = &src[jj * sw as usize * ch..(jj + 1) * sw as usize * ch];
        for (o, &x) in row.chunks_exact_mut(ch).zip(&cols) {
            o.copy_from_slice(&line[x * ch..(x + 1) * ch]);
        }
    }
    out
}

/// `fast_image_resize` for 1–4 channels, sampling where upstream samples.
///
/// The library maps output pixel i to the source position left + (i + 0.5)·scale − 0.5 with a
/// crop box starting at `left`; a crop box of the whole width starting at 0.5 − 0.5·xs gives
/// upstream's corner-aligned position i·xs, and the library's clamping of the 2×2 window at
/// the image edge is the recommended x clamp. When upscaling that start is positive, so the
/// source gets one replicated column (row) to keep the box inside the image.
fn fast(mut src: Vec<u8>, sw: u32, sh: u32, ch: u16, w: u32, h: u32) -> Vec<u8> {
    let pt = match ch {
        1 => PixelType::U8,
        2 => PixelType::U8x2,
        3 => PixelType::U8x3,
        _ => PixelType::U8x4,
    };
    let left = 0.5 - 0.5 * (sw as f64 / w as f64);
    let top = 0.5 - 0.5 * (sh as f64 / h as f64);
    let (pad_x, pad_y) = (left > 0.0, top > 0.0);
    let mut padded = (pad_x || pad_y).then(|| pad(&src, sw, sh, ch as usize, pad_x, pad_y));
    let (buf, pw, ph) = match &mut padded {
        Some(p) => (p.as_mut_slice(), sw + pad_x as u32, sh + pad_y as u32),
        None => (src.as_mut_slice(), sw, sh),
    };
    let resized = Image::from_slice_u8(pw, ph, buf, pt).ok().and_then(|s| {
        let mut d = Image::new(w, h, pt);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear))
            .use_alpha(false)
            .crop(left, top, sw as f64, sh as f64);
        Resizer::new().resize(&s, &mut d, &options).ok()?;
        Some(d.into_vec())
    });
    // The crop box is valid by construction; the scalar code is the same sampling anyway.
    resized.unwrap_or_else(|| bilinear(&src, sw, sh, ch as usize, w, h))
}

/// Append a copy of the last column and/or the last row.
fn pad(src: &[u8], sw: u32, sh: u32, ch: usize, x: bool, y: bool) -> Vec<u8> {
    let row = sw as usize * ch;
    let out_row = row + if x { ch } else { 0 };
    let mut out = Vec::with_capacity(out_row * (sh as usize + y as usize));
    for r in src.chunks_exact(row) {
        out.extend_from_slice(r);
        if x {
            out.extend_from_slice(&r[row - ch..]);
        }
    }
    if y {
        let last = out.len() - out_row;
        out.extend_from_within(last..);
    }
    out
}

/// Upstream's corner-aligned bilinear, with x clamped to the last column.
pub fn bilinear(src: &[u8], sw: u32, sh: u32, ch: usize, w: u32, h: u32) -> Vec<u8> {
    let xs = sw as f32 / w as f32;
    let ys = sh as f32 / h as f32;
    let (sw, sh) = (sw as usize, sh as usize);
    let row = |j: usize, out: &mut [u8]| {
        let y = j as f32 * ys;
        let jj = (y as usize).min(sh - 1);
        let (c, d) = (jj as f32 + 1.0 - y, y - jj as f32);
        let jj1 = (jj + 1).min(sh - 1);
        for i in 0..w as usize {
            let x = i as f32 * xs;
            let ii = (x as usize).min(sw - 1);
            let (a, b) = (ii as f32 + 1.0 - x, x - ii as f32);
            let ii1 = (ii + 1).min(sw - 1);
            let p = |xx: usize, yy: usize, k: usize| src[(yy * sw + xx) * ch + k] as f32;
            for k in 0..ch {
                let v = c * (a * p(ii, jj, k) + b * p(ii1, jj, k))
                    + d * (a * p(ii, jj1, k) + b * p(ii1, jj1, k));
                out[i * ch + k] = v.clamp(0.0, 255.0) as u8;
            }
        }
    };
    let mut out = vec![0u8; w as usize * h as usize * ch];
    if w as usize * h as usize > PARALLEL_PIXELS {
        out.par_chunks_mut(w as usize * ch)
            .enumerate()
            .for_each(|(j, r)| row(j, r));
    } else {
        for (j, r) in out.chunks_mut(w as usize * ch).enumerate() {
            row(j, r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    #[test]
    fn nearest_samples_floor() {
        // 4×1 → 2×1: columns 0 and 2. 2×1 → 4×1: 0, 0, 1, 1.
        let img = RawImage::from_u8(4, 1, 1, ColourSpace::Grey, vec![10, 20, 30, 40]);
        assert_eq!(
            resize(img.clone(), 2, 1, Interpolation::Nearest)
                .as_u8()
                .unwrap(),
            &[10, 30]
        );
        let img = RawImage::from_u8(2, 1, 1, ColourSpace::Grey, vec![10, 20]);
        assert_eq!(
            resize(img.clone(), 4, 1, Interpolation::Nearest)
                .as_u8()
                .unwrap(),
            &[10, 10, 20, 20]
        );
        // 3 → 2 rows: ys = 1.5 → rows 0 and 1.
        let img = RawImage::from_u8(1, 3, 1, ColourSpace::Grey, vec![1, 2, 3]);
        assert_eq!(
            resize(img.clone(), 1, 2, Interpolation::Nearest)
                .as_u8()
                .unwrap(),
            &[1, 2]
        );
    }

    #[test]
    fn upstream_bilinear_formula() {
        // 2×1 → 4×1: xs = 0.5; i = 1 → ii = 0, a = b = 0.5 → 15; the last column clamps.
        let out = bilinear(&[10, 20], 2, 1, 1, 4, 1);
        assert_eq!(out, vec![10, 15, 20, 20]);
        // Five channels go through it.
        let img = RawImage::from_u8(2, 1, 5, ColourSpace::Multiband, (0..10).collect());
        let out = resize(img.clone(), 1, 1, Interpolation::Bilinear);
        assert_eq!(out.as_u8().unwrap(), &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn fast_bilinear_keeps_flat_images_and_sizes() {
        for ch in 1..=4u16 {
            let img = RawImage::from_u8(7, 5, ch, ColourSpace::Srgb, vec![200; 35 * ch as usize]);
            let out = resize(img.clone(), 3, 2, Interpolation::Bilinear);
            assert_eq!((out.width, out.height, out.channels), (3, 2, ch));
            assert!(out.as_u8().unwrap().iter().all(|&v| v == 200));
            let out = resize(img.clone(), 20, 9, Interpolation::Bilinear);
            assert!(out.as_u8().unwrap().iter().all(|&v| v == 200));
        }
        // Corner-aligned: a 2× reduction samples the top-left pixel of each 2×2 block.
        let img = RawImage::from_u8(2, 2, 1, ColourSpace::Grey, vec![0, 100, 100, 200]);
        assert_eq!(
            resize(img.clone(), 1, 1, Interpolation::Bilinear)
                .as_u8()
                .unwrap(),
            &[0]
        );
    }

    #[test]
    fn fast_path_samples_like_upstream() {
        // A busy pattern, 3 channels: the SIMD path agrees with the scalar formula within the
        // rounding (it rounds, upstream truncates) for reductions and enlargements.
        let (sw, sh) = (37u32, 23u32);
        let src: Vec<u8> = (0..sw * sh * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        for (w, h) in [
            (18, 11),
            (10, 7),
            (37, 10),
            (80, 50),
            (74, 46),
            (5, 40),
            (1, 1),
        ] {
            let fast = fast(src.clone(), sw, sh, 3, w, h);
            let slow = bilinear(&src, sw, sh, 3, w, h);
            let worst = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .max()
                .unwrap();
            assert!(worst <= 1, "{w}x{h}: {worst}");
        }
    }
}
