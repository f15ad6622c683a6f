//! Gamma and log (`GAM`, §3.6).
//!
//! - Gamma g (only when g ≠ 1): out = max(v, 0)^g.
//! - Log (`GAM=log`, or a gamma of exactly −1, which is how upstream stores log):
//!   out = ln(1 + 255·v) / ln(256).

use super::{FloatImage, for_each_sample};

pub fn gamma(img: &mut FloatImage, g: f32) {
    for_each_sample(&mut img.data, |v| *v = v.max(0.0).powf(g));
}

pub fn log(img: &mut FloatImage) {
    let k = 1.0 / 256f32.ln();
    for_each_sample(&mut img.data, |v| *v = (1.0 + 255.0 * *v).ln() * k);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(data: Vec<f32>) -> FloatImage {
        FloatImage {
            width: data.len() as u32,
            height: 1,
            channels: 1,
            data,
        }
    }

    #[test]
    fn power_and_log() {
        let mut f = img(vec![0.5, -0.5, 1.0]);
        gamma(&mut f, 2.0);
        assert_eq!(f.data, vec![0.25, 0.0, 1.0]);
        let mut f = img(vec![0.0, 1.0]);
        log(&mut f);
        assert_eq!(f.data[0], 0.0);
        assert!((f.data[1] - 1.0).abs() < 1e-6);
    }
}
