//! Invert (`INV`, §3.7): out = 1 − v on every channel. Because of float rounding and the
//! truncating quantisation, 127 inverts to 127 (as upstream, verified).

use super::{FloatImage, for_each_sample};

pub fn invert(img: &mut FloatImage) {
    for_each_sample(&mut img.data, |v| *v = 1.0 - *v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_minus() {
        let mut f = FloatImage {
            width: 2,
            height: 1,
            channels: 1,
            data: vec![0.25, 1.0],
        };
        invert(&mut f);
        assert_eq!(f.data, vec![0.75, 0.0]);
    }
}
