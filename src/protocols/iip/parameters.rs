//! IIP's parameter commands (`docs/behaviour/protocols-iip.md` §8): each sets one part of the [`View`] that
//! the output commands then render. Arguments are read with C's `atoi`/`atof` rules, as
//! upstream; a malformed argument leaves the view as it was unless noted.

use crate::config::TiffCompression;
use crate::pipeline::convolve;
use crate::source::resolve::url_decode;
use crate::text::number::{atof, atoi};
use crate::view::{ColourConversion, ColourMap, Contrast, Gamma, Region, View};

/// Apply the parameter command `name` (lower case). `channels` is the open image's channel
/// count (0 before `FIF`), for `MINMAX`. Returns false when `name` is not a parameter command.
pub(super) fn apply(view: &mut View, channels: usize, name: &[u8], arg: &[u8]) -> bool {
    let a = String::from_utf8_lossy(arg);
    match name {
        b"qlt" => {
            let (compression, quality) = quality(&a);
            if compression.is_some() {
                view.tiff_compression = compression;
            }
            view.quality = Some(quality);
        }
        b"wid" => view.width = positive(&a),
        b"hei" => view.height = positive(&a),
        b"rgn" => {
            if let Some(region) = region(&a) {
                view.region = Some(region);
            }
        }
        b"rot" => (view.flip, view.rotation) = rotation(&a),
        b"sds" => (view.horizontal, view.vertical) = angles(&a),
        b"minmax" => view.min_max.extend(min_max(&a, channels)),
        b"cnt" => view.contrast = Some(contrast(&a)),
        b"gam" => view.gamma = Some(gamma(&a)),
        b"inv" => view.invert = true,
        b"cmp" => view.colour_map = colour_map(&a),
        b"col" => {
            if let Some(colour) = colour(&a) {
                view.colour = Some(colour);
            }
        }
        b"shd" => {
            if let Some(angles) = shade(&a) {
                view.shade = Some(angles);
            }
        }
        b"lyr" => view.layers = atoi(&a).value.clamp(0, u32::MAX as i64) as u32,
        b"ctw" => view.twist = colour_twist(bracketed(&decoded(arg))),
        b"cnv" => {
            view.convolution = convolution_kernel(bracketed(&decoded(arg).to_ascii_lowercase()))
        }
        _ => return false,
    }
    true
}

/// `QLT=q` or `QLT=<compression>:q`: the TIFF compression named, if any (unknown names are
/// none), and the quality.
fn quality(a: &str) -> (Option<TiffCompression>, i32) {
    let lower = a.to_ascii_lowercase();
    let (compression, q) = match lower.split_once(':') {
        Some((comp, q)) => (Some(TiffCompression::from_qlt_name(comp)), q),
        None => (None, lower.as_str()),
    };
    let q = atoi(q).value.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    (compression, q)
}

/// `WID`, `HEI`: a positive size, else none.
fn positive(a: &str) -> Option<u32> {
    u32::try_from(atoi(a).value).ok().filter(|v| *v > 0)
}

/// `RGN=x,y,w,h` in fractions of the image, clamped to 0–1; `None` unless four numbers with a
/// positive width and height.
fn region(a: &str) -> Option<Region> {
    let vals = numbers(a, 4, |t| atof(t).value);
    if vals.len() == 4 && vals[2] > 0.0 && vals[3] > 0.0 {
        let c = |x: f64| x.clamp(0.0, 1.0);
        Some(Region::Fraction {
            x: c(vals[0]),
            y: c(vals[1]),
            w: c(vals[2]),
            h: c(vals[3]),
        })
    } else {
        None
    }
}

/// `ROT=[!]degrees`: (mirror, angle).
fn rotation(a: &str) -> (bool, f64) {
    match a.strip_prefix('!') {
        Some(rest) => (true, atof(rest).value),
        None => (false, atof(a).value),
    }
}

/// `SDS=h,v`: the horizontal and vertical angles (negative → 0; a missing `v` is 0).
fn angles(a: &str) -> (u32, Option<u32>) {
    let mut parts = a.split(',');
    let h = atoi(parts.next().unwrap_or("")).value.max(0) as u32;
    let v = parts
        .next()
        .map(|y| atoi(y).value.max(0) as u32)
        .unwrap_or(0);
    (h, Some(v))
}

/// `MINMAX=c:min,max` for channel `c`, or `-` for every channel; channels the image does not
/// have are ignored.
fn min_max(a: &str, channels: usize) -> Vec<(usize, f32, f32)> {
    let Some((c, range)) = a.split_once(':') else {
        return Vec::new();
    };
    let Some((min, max)) = range.split_once(',') else {
        return Vec::new();
    };
    let (min, max) = (atof(min).value as f32, atof(max).value as f32);
    if c == "-" {
        return (0..channels).map(|ch| (ch, min, max)).collect();
    }
    let ch = atoi(c).value;
    if ch >= 0 && (ch as usize) < channels {
        vec![(ch as usize, min, max)]
    } else {
        Vec::new()
    }
}

/// `CNT`: equalisation, stretch, or a factor.
fn contrast(a: &str) -> Contrast {
    match a.to_ascii_lowercase().as_str() {
        "eq" | "equalization" => Contrast::Equalize,
        "st" | "stretch" => Contrast::Stretch,
        other => Contrast::Factor(atof(other).value as f32),
    }
}

/// `GAM`: logarithm, or a gamma value.
fn gamma(a: &str) -> Gamma {
    match a.to_ascii_lowercase().as_str() {
        "log" | "logarithm" => Gamma::Log,
        other => Gamma::Value(atof(other).value as f32),
    }
}

/// `CMP`: a named colour map; an unknown name turns it off.
fn colour_map(a: &str) -> Option<ColourMap> {
    match a.to_ascii_lowercase().as_str() {
        "hot" => Some(ColourMap::Hot),
        "cold" => Some(ColourMap::Cold),
        "jet" => Some(ColourMap::Jet),
        "blue" => Some(ColourMap::Blue),
        "green" => Some(ColourMap::Green),
        "red" => Some(ColourMap::Red),
        _ => None,
    }
}

/// `COL`: greyscale or bitonal; other values leave the view as it was.
fn colour(a: &str) -> Option<ColourConversion> {
    match a.to_ascii_lowercase().as_str() {
        "grey" | "gray" => Some(ColourConversion::Grey),
        "binary" => Some(ColourConversion::Binary),
        _ => None,
    }
}

/// `SHD=h,v`: the hill-shading angles; `None` with fewer than two numbers.
fn shade(a: &str) -> Option<(i32, i32)> {
    let vals = numbers(a, 2, |t| atoi(t).value);
    (vals.len() >= 2).then(|| (vals[0] as i32, vals[1] as i32))
}

/// The first `max` comma-separated numbers of an argument (empty items skipped), each read
/// with `read` (C's `atoi` or `atof`).
pub(super) fn numbers<T>(a: &str, max: usize, read: impl Fn(&str) -> T) -> Vec<T> {
    a.split(',')
        .filter(|t| !t.is_empty())
        .take(max)
        .map(read)
        .collect()
}

/// A URL-decoded argument as text (`CTW`, `CNV` carry brackets and `;`).
fn decoded(arg: &[u8]) -> String {
    String::from_utf8_lossy(&url_decode(arg).0).into_owned()
}

/// The text between the first `[` and the first `]` after it, else all of it.
fn bracketed(s: &str) -> &str {
    match (s.find('['), s.find(']')) {
        (Some(a), Some(b)) if b > a => &s[a + 1..b],
        _ => s,
    }
}

/// A named or explicit convolution kernel (`CNV`, `docs/behaviour/pipeline-and-encoding.md` §3.9); `None` if
/// not a named kernel or an odd square of at most 25 numbers.
fn convolution_kernel(s: &str) -> Option<Vec<f32>> {
    if let Some(k) = convolve::named(s.trim()) {
        return Some(k.to_vec());
    }
    // Values that are not numbers make the kernel invalid (upstream reads them as 0).
    let parsed: Vec<_> = s
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(atof)
        .collect();
    if parsed.iter().any(|p| !p.clean) {
        return None;
    }
    let vals: Vec<f32> = parsed.iter().map(|p| p.value as f32).collect();
    convolve::side(&vals).map(|_| vals)
}

/// A colour-twist matrix (`CTW`, §3.5): rows on `;` (empty rows skipped), values on `,`
/// (atof). `None` when there is no row.
fn colour_twist(s: &str) -> Option<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = s
        .split(';')
        .filter(|row| !row.trim().is_empty())
        .map(|row| row.split(',').map(|x| atof(x).value as f32).collect())
        .collect();
    (!rows.is_empty()).then_some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels() {
        assert_eq!(convolution_kernel("sobel").unwrap().len(), 9);
        assert_eq!(convolution_kernel("1,2,3").map(|v| v.len()), None);
        assert_eq!(convolution_kernel("1,1,1,1,1,1,1,1,1").unwrap().len(), 9);
        assert_eq!(bracketed("[1,2;3,4]"), "1,2;3,4");
        assert_eq!(
            convolution_kernel("prewitt").unwrap(),
            vec![1., 0., -1., 1., 0., -1., 1., 0., -1.]
        );
        assert_eq!(convolution_kernel("laplace").unwrap()[4], 8.0);
        assert_eq!(convolution_kernel("2").unwrap(), vec![2.0]);
        assert_eq!(
            convolution_kernel(&["1"; 25].join(",")).map(|k| k.len()),
            Some(25)
        );
        assert_eq!(convolution_kernel(&["1"; 26].join(",")), None);
        assert_eq!(convolution_kernel(&["1"; 16].join(",")), None);
        assert_eq!(convolution_kernel("nonsense"), None);
    }

    #[test]
    fn twist_matrices() {
        assert_eq!(
            colour_twist("0,1,0;1,0,0;0,0,1").unwrap(),
            vec![vec![0., 1., 0.], vec![1., 0., 0.], vec![0., 0., 1.]]
        );
        // Empty rows are skipped; values are atof (garbage is 0).
        assert_eq!(
            colour_twist(";0.5,0.5;;x,2").unwrap(),
            vec![vec![0.5, 0.5], vec![0.0, 2.0]]
        );
        assert_eq!(colour_twist(";;"), None);
        assert_eq!(colour_twist(""), None);
    }
}
