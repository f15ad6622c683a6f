//! Colour twist (`CTW`, §3.5): a matrix with one row per output channel.
//!
//! out_k = Σ m_kj · in_j for j < min(row length, input channels): missing coefficients count as
//! 0 and extra ones are ignored. The output has as many channels as the matrix has rows.
//! Verified upstream: `[0,1,0;1,0,0;0,0,1]` swaps R and G; `[0.5,0.5,0]` gives (R + G)/2.

use super::{FloatImage, map_pixels};

/// Apply the matrix `rows`; an empty matrix leaves the image unchanged.
pub fn twist(img: &FloatImage, rows: &[Vec<f32>]) -> FloatImage {
    if rows.is_empty() {
        return img.clone();
    }
    let ch = img.channels.max(1);
    let data = map_pixels(&img.data, ch, rows.len(), |p, o| {
        for (k, row) in rows.iter().enumerate() {
            o[k] = row.iter().zip(p).map(|(m, v)| m * v).sum();
        }
    });
    FloatImage {
        width: img.width,
        height: img.height,
        channels: rows.len(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(data: Vec<f32>) -> FloatImage {
        FloatImage {
            width: 1,
            height: 1,
            channels: data.len(),
            data,
        }
    }

    #[test]
    fn swaps_and_sums() {
        let img = px(vec![0.25, 0.5, 1.0]);
        let m = vec![vec![0., 1., 0.], vec![1., 0., 0.], vec![0., 0., 1.]];
        assert_eq!(twist(&img, &m).data, vec![0.5, 0.25, 1.0]);
        let one = twist(&img, &[vec![0.5, 0.5, 0.0]]);
        assert_eq!((one.channels, one.data[0]), (1, 0.375));
        // Short rows: missing coefficients are 0; long rows: extras ignored.
        let m = vec![vec![1.0], vec![0., 0., 0., 7.0]];
        assert_eq!(twist(&img, &m).data, vec![0.25, 0.0]);
    }
}
