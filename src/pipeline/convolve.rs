//! Convolution (`CNV`, §3.9) on the float data: a correlation (the kernel is not flipped) with
//! edge replication,
//! out(x, y, c) = Σ_{i,j} in(clamp(x + i − s/2), clamp(y + j − s/2), c) · K[j·s + i],
//! s being the (odd) kernel side. The sum is divided by ΣK only when ΣK > 0; the result is not
//! clamped (quantisation clamps).
//!
//! Named kernels (rows top to bottom): sobel [−1 0 1; −2 0 2; −1 0 1], prewitt
//! [1 0 −1; 1 0 −1; 1 0 −1], scharr [−3 0 3; −10 0 10; −3 0 3], laplace
//! [−1 −1 −1; −1 8 −1; −1 −1 −1], gaussian [1 2 1; 2 4 2; 1 2 1], sharpen
//! [0 −1 0; −1 5 −1; 0 −1 0], emboss [−2 −1 0; −1 1 1; 0 1 2]. Custom kernels: at most 25
//! values forming a square with an odd side; anything else is ignored.

use rayon::prelude::*;

use super::{FloatImage, PARALLEL_PIXELS};

/// A named kernel (lower-case name).
pub fn named(name: &str) -> Option<[f32; 9]> {
    Some(match name {
        "sobel" => [-1., 0., 1., -2., 0., 2., -1., 0., 1.],
        "prewitt" => [1., 0., -1., 1., 0., -1., 1., 0., -1.],
        "scharr" => [-3., 0., 3., -10., 0., 10., -3., 0., 3.],
        "laplace" => [-1., -1., -1., -1., 8., -1., -1., -1., -1.],
        "gaussian" => [1., 2., 1., 2., 4., 2., 1., 2., 1.],
        "sharpen" => [0., -1., 0., -1., 5., -1., 0., -1., 0.],
        "emboss" => [-2., -1., 0., -1., 1., 1., 0., 1., 2.],
        _ => return None,
    })
}

/// The side of a valid kernel (1, 3 or 5 for 1, 9 or 25 values).
pub fn side(kernel: &[f32]) -> Option<usize> {
    match kernel.len() {
        1 => Some(1),
        9 => Some(3),
        25 => Some(5),
        _ => None,
    }
}

/// Convolve; an invalid kernel leaves the image unchanged.
pub fn convolve(img: &FloatImage, kernel: &[f32]) -> FloatImage {
    let Some(s) = side(kernel) else {
        return img.clone();
    };
    let sum: f32 = kernel.iter().sum();
    let k: Vec<f32> = if sum > 0.0 {
        kernel.iter().map(|v| v / sum).collect()
    } else {
        kernel.to_vec()
    };
    let (w, h, ch) = (img.width as usize, img.height as usize, img.channels.max(1));
    if w == 0 || h == 0 {
        return img.clone();
    }
    let half = (s / 2) as isize;
    let clamp_x = |x: isize| x.clamp(0, w as isize - 1) as usize;
    let clamp_y = |y: isize| y.clamp(0, h as isize - 1) as usize;
    let row = |y: usize, out: &mut [f32]| {
        for x in 0..w {
            for c in 0..ch {
                let mut acc = 0.0f32;
                for j in 0..s {
                    let yy = clamp_y(y as isize + j as isize - half);
                    let base = yy * w;
                    for i in 0..s {
                        let xx = clamp_x(x as isize + i as isize - half);
                        acc += img.data[(base + xx) * ch + c] * k[j * s + i];
                    }
                }
                out[x * ch + c] = acc;
            }
        }
    };
    let mut data = vec![0.0f32; w * h * ch];
    if w * h > PARALLEL_PIXELS {
        data.par_chunks_mut(w * ch)
            .enumerate()
            .for_each(|(y, out)| row(y, out));
    } else {
        for (y, out) in data.chunks_mut(w * ch).enumerate() {
            row(y, out);
        }
    }
    FloatImage {
        width: img.width,
        height: img.height,
        channels: ch,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, data: Vec<f32>) -> FloatImage {
        FloatImage {
            width: w,
            height: h,
            channels: 1,
            data,
        }
    }

    #[test]
    fn sobel_on_a_step() {
        // 3×3, left column 0, others 1. Centre: −1·0 + 1·1 − 2·0 + 2·1 − 1·0 + 1·1 = 4.
        // Left edge pixels replicate x = 0, so at (0, 1): (1 − 0)·(1 + 2 + 1) = 4 as well.
        let i = img(3, 3, vec![0., 1., 1., 0., 1., 1., 0., 1., 1.]);
        let out = convolve(&i, &named("sobel").unwrap());
        assert_eq!(out.data, vec![4., 4., 0., 4., 4., 0., 4., 4., 0.]);
    }

    #[test]
    fn positive_sum_is_normalised() {
        // Gaussian (sum 16) on a single bright pixel in 3×3: centre 4/16.
        let mut d = vec![0.0; 9];
        d[4] = 1.0;
        let out = convolve(&img(3, 3, d), &named("gaussian").unwrap());
        assert_eq!(out.data[4], 0.25);
        assert_eq!(out.data[0], 1.0 / 16.0);
        // Sum 0 (laplace): not divided. Flat image → 0.
        let out = convolve(&img(2, 2, vec![0.5; 4]), &named("laplace").unwrap());
        assert_eq!(out.data, vec![0.0; 4]);
        // Correlation, not convolution: kernel [0 0 0; 0 0 1; 0 0 0] reads the right neighbour.
        let k = [0., 0., 0., 0., 0., 1., 0., 0., 0.];
        let out = convolve(&img(3, 1, vec![1., 2., 3.]), &k);
        assert_eq!(out.data, vec![2., 3., 3.]);
        // Invalid kernels are ignored.
        let i = img(1, 1, vec![0.3]);
        assert_eq!(convolve(&i, &[1.0, 2.0]).data, vec![0.3]);
    }
}
