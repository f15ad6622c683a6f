//! Histogram, Otsu threshold, bitonal output and equalisation (§3.12).
//!
//! **Histogram:** 256 bins over the thumbnail tile (tile 0 of the smallest resolution). Each
//! pixel counts once, in bin round(mean of its channels). Data wider than 8 bits are first
//! normalised by the image min/max and quantised with contrast 1 (§3.2, §3.10).
//!
//! **Otsu:** total = Σ h[n], sum = Σ n·h[n]; walking n = 0…255 with w_b += h[n] (skip while
//! w_b = 0), w_f = total − w_b (stop when 0), sum_b += n·h[n], m_b = sum_b/w_b,
//! m_f = (sum − sum_b)/w_f, score = w_b·w_f·(m_b − m_f)². The threshold is the first n with
//! the highest score (0 if none).
//!
//! **Bitonal:** 3-channel data become greyscale first (§3.14); then each sample becomes 0 if
//! below the threshold, else 255 (other channel counts keep their channels, **[QUIRK]**).
//!
//! **Equalisation:** cdf[i] = Σ_{j≤i} h[j]; n0 = the first non-empty bin; scale = 255/cdf[255];
//! cdfmin = cdf[n0] / (pixels of the image being equalised) (**[QUIRK]**: thumbnail counts
//! over output pixels); LUT[i] = round(scale·(cdf[i] − cdfmin)), applied to every sample.

use super::{for_each_sample, grey, normalise, quantise};
use crate::image::{RawImage, Samples};

/// A 256-bin histogram of pixel means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    pub bins: [u64; 256],
}

impl Histogram {
    pub fn empty() -> Histogram {
        Histogram { bins: [0; 256] }
    }

    /// The histogram of `img`, normalising data wider than 8 bits by `min_max`.
    pub fn compute(img: &RawImage, min_max: &[(f64, f64)]) -> Histogram {
        let mut h = Histogram::empty();
        let ch = (img.channels as usize).max(1);
        let mut count = |p: &[u8]| {
            let sum: u32 = p.iter().map(|&v| v as u32).sum();
            let bin = (sum as f32 / ch as f32).round() as usize;
            h.bins[bin.min(255)] += 1;
        };
        match &img.samples {
            Samples::U8(v) => v.chunks_exact(ch).for_each(&mut count),
            _ => {
                let ranges: Vec<(f32, f32)> = (0..ch)
                    .map(|c| {
                        min_max
                            .get(c)
                            .map(|&(a, b)| (a as f32, b as f32))
                            .unwrap_or((0.0, 1.0))
                    })
                    .collect();
                let f = normalise::normalise(img, &ranges);
                let q = quantise::quantise(&f, 1.0, img.colour);
                if let Some(v) = q.as_u8() {
                    v.chunks_exact(ch).for_each(&mut count);
                }
            }
        }
        h
    }

    /// The first and last non-empty bins.
    pub fn occupied(&self) -> Option<(usize, usize)> {
        let n0 = self.bins.iter().position(|&c| c > 0)?;
        let n1 = self.bins.iter().rposition(|&c| c > 0)?;
        Some((n0, n1))
    }

    /// Otsu's threshold.
    pub fn otsu(&self) -> u8 {
        let total: f64 = self.bins.iter().map(|&c| c as f64).sum();
        let sum: f64 = self
            .bins
            .iter()
            .enumerate()
            .map(|(n, &c)| n as f64 * c as f64)
            .sum();
        let (mut wb, mut sum_b, mut best, mut threshold) = (0.0f64, 0.0f64, 0.0f64, 0u8);
        for (n, &c) in self.bins.iter().enumerate() {
            wb += c as f64;
            if wb == 0.0 {
                continue;
            }
            let wf = total - wb;
            if wf == 0.0 {
                break;
            }
            sum_b += n as f64 * c as f64;
            let mb = sum_b / wb;
            let mf = (sum - sum_b) / wf;
            let score = wb * wf * (mb - mf) * (mb - mf);
            if score > best {
                best = score;
                threshold = n as u8;
            }
        }
        threshold
    }

    /// The equalisation lookup table for an image of `pixels` pixels.
    pub fn equalisation_lut(&self, pixels: u64) -> [u8; 256] {
        let mut cdf = [0f64; 256];
        let mut acc = 0f64;
        for (i, &c) in self.bins.iter().enumerate() {
            acc += c as f64;
            cdf[i] = acc;
        }
        let mut lut = [0u8; 256];
        let Some((n0, _)) = self.occupied() else {
            for (i, v) in lut.iter_mut().enumerate() {
                *v = i as u8;
            }
            return lut;
        };
        let scale = 255.0 / cdf[255];
        let cdfmin = cdf[n0] / pixels.max(1) as f64;
        for (i, v) in lut.iter_mut().enumerate() {
            *v = (scale * (cdf[i] - cdfmin)).round().clamp(0.0, 255.0) as u8;
        }
        lut
    }
}

/// Threshold 8-bit data (greyscale first for 3 channels).
pub fn bitonal(img: RawImage, threshold: u8) -> RawImage {
    let mut img = grey::grey(img);
    if let Samples::U8(v) = &mut img.samples {
        for_each_sample(v, |s| *s = if *s < threshold { 0 } else { 255 });
    }
    img
}

/// Equalise 8-bit data in place.
pub fn equalise(img: &mut RawImage, h: &Histogram) {
    let lut = h.equalisation_lut(img.width as u64 * img.height as u64);
    if let Samples::U8(v) = &mut img.samples {
        for_each_sample(v, |s| *s = lut[*s as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;

    #[test]
    fn bins_are_rounded_means() {
        // (1, 2) → 1.5 → 2; (0, 0) → 0; (255, 254) → 254.5 → 255.
        let img = RawImage::from_u8(3, 1, 2, ColourSpace::Grey, vec![1, 2, 0, 0, 255, 254]);
        let h = Histogram::compute(&img, &[]);
        assert_eq!((h.bins[2], h.bins[0], h.bins[255]), (1, 1, 1));
        assert_eq!(h.bins.iter().sum::<u64>(), 3);
        // 16-bit data are normalised by min/max first: 32768 of [0, 65535] → 127.
        let img16 = RawImage {
            width: 1,
            height: 1,
            channels: 1,
            bits_per_sample: 16,
            colour: ColourSpace::Grey,
            samples: Samples::U16(vec![32768]),
        };
        let h = Histogram::compute(&img16, &[(0.0, 65535.0)]);
        assert_eq!(h.bins[127], 1);
    }

    #[test]
    fn otsu_threshold() {
        let mut h = Histogram::empty();
        h.bins[10] = 5;
        h.bins[200] = 5;
        // Every n in 10..200 separates the two classes equally well; the first one wins.
        assert_eq!(h.otsu(), 10);
        let mut h = Histogram::empty();
        h.bins[10] = 5;
        h.bins[20] = 5;
        h.bins[200] = 10;
        assert_eq!(h.otsu(), 20);
        assert_eq!(Histogram::empty().otsu(), 0);
        let mut one = Histogram::empty();
        one.bins[7] = 3;
        assert_eq!(one.otsu(), 0);
    }

    #[test]
    fn bitonal_greys_first() {
        let img = RawImage::from_u8(
            2,
            1,
            3,
            ColourSpace::Srgb,
            vec![127, 109, 32, 200, 200, 200],
        );
        let out = bitonal(img, 106);
        assert_eq!((out.channels, out.as_u8().unwrap()), (1, &[0u8, 255][..]));
        let ga = RawImage::from_u8(1, 1, 2, ColourSpace::Grey, vec![100, 200]);
        assert_eq!(bitonal(ga, 150).as_u8().unwrap(), &[0, 255]);
    }

    #[test]
    fn equalisation() {
        let mut h = Histogram::empty();
        h.bins[0] = 2;
        h.bins[255] = 2;
        // cdf: 2 … 2, 4; scale 255/4; cdfmin = 2/4 (4 pixels).
        let lut = h.equalisation_lut(4);
        assert_eq!(lut[0], 96); // round(63.75 · 1.5) = 95.6 → 96
        assert_eq!(lut[128], 96);
        assert_eq!(lut[255], 223); // round(63.75 · 3.5) = 223.1
        let mut img = RawImage::from_u8(2, 1, 1, ColourSpace::Grey, vec![0, 255]);
        equalise(&mut img, &h);
        // 2 pixels: cdfmin = 1 → 63.75, 191.25.
        assert_eq!(img.as_u8().unwrap(), &[64, 191]);
    }
}
