//! The image-request parameters `{region}/{size}/{rotation}/{quality}.{format}`
//! (`docs/behaviour/protocols-iiif.md` §4), resolved to exact pixels.
//!
//! Parsing is upstream's (lower-casing, `atof` values, empty tokens skipped, the error texts);
//! the arithmetic is the IIIF specification's (docs/behaviour/README.md, "Decisions already taken"): the region is
//! a rectangle of whole full-resolution pixels clipped to the image, and the output size is
//! computed from that rectangle exactly as the specification defines each size form, so
//! `900,700,200,200/max` on 1000×750 is 100×50 and `full/256,` on 5003×3701 is 256×189.
//!
//! The rotation is any decimal number from 0 to 360 (360 is 0), with an optional leading `!`
//! (mirror first); only digits and one `.` are allowed, so `-0`, `1e2`, `nan` and `!!90` are
//! 400s. [`canonical`] writes a resolved request back in the specification's canonical URI
//! syntax (IIIF 2.1 and 3.0 §4.7/§4.8), for the `Link: …;rel="canonical"` header.

use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::text::number::{atof, leading_u64, stream_f64};

/// The parameter syntax, quoted by the token-count errors.
const SYNTAX: &str = "IIIF syntax is {identifier}/{region}/{size}/{rotation}/{quality}{.format}";

/// A rectangle in full-resolution pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The IIIF qualities (with the `IIIF_EXTENSIONS` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// `default`, `native`.
    Default,
    /// `color`: the same pixels as `default` (also for grey images), its own canonical name.
    Color,
    /// `gray`, `grey`.
    Gray,
    Bitonal,
    Negative,
    Stretch,
    Equalization,
    Log,
}

/// A parsed, resolved image request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    /// The region, clipped to the image.
    pub region: Rect,
    /// The output size before rotation.
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation in degrees, in [0, 360) (360 is read as 0), after the optional
    /// mirror.
    pub rotation: f64,
    pub mirror: bool,
    pub quality: Quality,
    pub format: OutputFormat,
}

/// What the size rules depend on besides the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// IIIF version (2 or 3 rules: `^`, `full`).
    pub version: u32,
    /// `MAX_CVT`; `None` when unlimited (-1).
    pub max: Option<u32>,
    /// `ALLOW_UPSCALING`.
    pub allow_upscaling: bool,
    /// `IIIF_EXTENSIONS`: the extra qualities.
    pub extensions: bool,
}

impl Limits {
    /// The limits a configuration gives for a request of `version`.
    pub fn new(config: &crate::config::Config, version: u32) -> Limits {
        Limits {
            version,
            max: config
                .exports
                .max_cvt
                .max()
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| *m > 0),
            allow_upscaling: config.exports.allow_upscaling,
            extensions: config.iiif.extensions,
        }
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request(message)
}

/// Parse the parameters that follow the identifier (the text after its `/`), for an image of
/// `width`×`height` pixels.
pub fn parse(params: &str, width: u32, height: u32, limits: &Limits) -> Result<ImageRequest> {
    let mut tokens = params.split('/').filter(|t| !t.is_empty());
    let mut next = || {
        tokens
            .next()
            .ok_or_else(|| bad(format!("IIIF: Query has too few parameters. {SYNTAX}")))
    };
    let region = parse_region(&next()?.to_ascii_lowercase(), width, height)?;
    let (w, h) = parse_size(&next()?.to_ascii_lowercase(), region, limits)?;
    let (rotation, mirror) = parse_rotation(next()?)?;
    let (quality, format) = parse_quality(&next()?.to_ascii_lowercase(), limits)?;
    if tokens.next().is_some() {
        return Err(bad(format!(
            "IIIF: Query has too many parameters. {SYNTAX}"
        )));
    }
    Ok(ImageRequest {
        region,
        width: w,
        height: h,
        rotation,
        mirror,
        quality,
        format,
    })
}

/// §4.1: `full`, `square`, `x,y,w,h`, `pct:x,y,w,h` (already lower-cased).
pub fn parse_region(text: &str, width: u32, height: u32) -> Result<Rect> {
    let (fw, fh) = (width as f64, height as f64);
    match text {
        "full" => {
            return Ok(Rect {
                x: 0,
                y: 0,
                w: width,
                h: height,
            });
        }
        "square" => {
            let side = width.min(height);
            return Ok(Rect {
                x: (width - side) / 2,
                y: (height - side) / 2,
                w: side,
                h: side,
            });
        }
        _ => {}
    }
    let (pct, values) = match text.strip_prefix("pct:") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let error = || bad(format!("IIIF: incorrect region format: {values}"));
    let tokens: Vec<&str> = values.split(',').filter(|t| !t.is_empty()).collect();
    if tokens.len() != 4 {
        return Err(error());
    }
    let v: Vec<f64> = tokens.iter().map(|t| atof(t).value).collect();
    let (sx, sy) = if pct {
        (fw / 100.0, fh / 100.0)
    } else {
        (1.0, 1.0)
    };
    if !(v[2] > 0.0 && v[3] > 0.0) || v.iter().any(|x| !x.is_finite()) {
        return Err(error());
    }
    // Edges in pixels, rounded; a negative origin is moved to 0 without shrinking the size
    // (upstream quirk).
    let edge = |a: f64, s: f64| (a * s).round();
    let x0 = edge(v[0], sx).max(0.0);
    let y0 = edge(v[1], sy).max(0.0);
    let w = (edge(v[0] + v[2], sx) - edge(v[0], sx)).max(1.0);
    let h = (edge(v[1] + v[3], sy) - edge(v[1], sy)).max(1.0);
    if x0 >= fw || y0 >= fh {
        return Err(error());
    }
    let w = w.min(fw - x0);
    let h = h.min(fh - y0);
    Ok(Rect {
        x: x0 as u32,
        y: y0 as u32,
        w: w as u32,
        h: h as u32,
    })
}

/// `round(a · b / c)` in double precision, at least 0.
fn scaled(a: u64, b: u32, c: u32) -> u64 {
    ((a as f64) * (b as f64) / (c as f64)).round().max(0.0) as u64
}

/// §4.2 with the IIIF specification's arithmetic: the output size for a region.
pub fn parse_size(text: &str, region: Rect, limits: &Limits) -> Result<(u32, u32)> {
    let (rw, rh) = (region.w, region.h);
    let (text, caret) = match text.strip_prefix('^') {
        Some(rest) if limits.version >= 3 => (rest, true),
        _ => (text, false),
    };
    // Whether the aspect ratio of the region is kept (everything but `w,h`).
    let mut keep_aspect = true;
    let (w, h): (u64, u64) = match text {
        "max" => (rw as u64, rh as u64),
        "full" if limits.version < 3 => (rw as u64, rh as u64),
        "full" => {
            return Err(bad(
                "IIIF: invalid size: 'full' is not a size in IIIF 3, use 'max'",
            ));
        }
        _ => {
            if let Some(n) = text.strip_prefix("pct:") {
                let n = stream_f64(n).ok_or_else(|| bad("invalid size"))?;
                let n = n.max(0.0);
                (
                    ((rw as f64) * n / 100.0).round() as u64,
                    ((rh as f64) * n / 100.0).round() as u64,
                )
            } else {
                let (confined, text) = match text.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, text),
                };
                let Some((ws, hs)) = text.split_once(',') else {
                    return Err(bad("invalid size: no comma found"));
                };
                match (ws.is_empty(), hs.is_empty()) {
                    (true, _) => {
                        let h = leading_u64(hs).ok_or_else(|| bad("invalid height"))?;
                        (scaled(h, rw, rh), h)
                    }
                    (false, true) => {
                        let w = leading_u64(ws).ok_or_else(|| bad("invalid width"))?;
                        (w, scaled(w, rh, rw))
                    }
                    (false, false) => {
                        let w = leading_u64(ws).ok_or_else(|| bad("invalid width"))?;
                        let h = leading_u64(hs).ok_or_else(|| bad("invalid height"))?;
                        if confined {
                            // Fit inside the box: the limiting side is exact.
                            if (w as f64) * (rh as f64) <= (h as f64) * (rw as f64) {
                                (w, scaled(w, rh, rw))
                            } else {
                                (scaled(h, rw, rh), h)
                            }
                        } else {
                            keep_aspect = false;
                            (w, h)
                        }
                    }
                }
            }
        }
    };
    if w == 0 || h == 0 {
        return Err(bad("IIIF: invalid size: requested width or height < 0"));
    }
    let upscales = w > rw as u64 || h > rh as u64;
    let (mut w, mut h) = (w, h);
    if upscales {
        if limits.version >= 3 && (!caret || !limits.allow_upscaling) {
            return Err(bad("IIIF: upscaling should be prefixed with ^"));
        }
        if limits.version < 3 && !limits.allow_upscaling {
            // No upscaling allowed: the largest size of the requested shape within the region.
            (w, h) = fit(w, h, rw as u64, rh as u64, keep_aspect, region);
        }
    }
    if let Some(m) = limits.max {
        let m = m as u64;
        if w > m || h > m {
            (w, h) = fit(w, h, m, m, keep_aspect, region);
        }
    }
    match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(bad(
            "IIIF: invalid size: requested width or height too large",
        )),
    }
}

/// Shrink `w`×`h` to fit `bw`×`bh`, the limiting side exact; an aspect-keeping size is
/// recomputed from the region so that it stays exact. Which side limits an aspect-keeping size
/// is decided by the region's shape (`w` and `h` may have been saturated by absurd requests).
/// Neither side becomes 0 (a 4200×1 region fitted to 384 wide is 384×1) or exceeds the box.
fn fit(w: u64, h: u64, bw: u64, bh: u64, keep_aspect: bool, region: Rect) -> (u64, u64) {
    let (rw, rh) = (region.w as f64, region.h as f64);
    let (fw, fh) = match keep_aspect {
        true if (bw as f64) * rh <= (bh as f64) * rw => (bw, scaled(bw, region.h, region.w)),
        true => (scaled(bh, region.w, region.h), bh),
        false if (bw as f64) * (h as f64) <= (bh as f64) * (w as f64) => {
            (bw, ((h as f64) * (bw as f64) / (w as f64)).round() as u64)
        }
        false => (((w as f64) * (bh as f64) / (h as f64)).round() as u64, bh),
    };
    (fw.clamp(1, bw.max(1)), fh.clamp(1, bh.max(1)))
}

/// The largest rotation angle (§4.3: "any floating point number from 0 to 360").
const MAX_ANGLE: f64 = 360.0;

/// §4.3: `[!]n`, n a decimal number from 0 to 360 (not lower-cased; the whole text must be a
/// number of digits and at most one `.`). Returns the clockwise angle in [0, 360) — 360 is a
/// full turn, read as 0 — and whether to mirror first.
pub fn parse_rotation(text: &str) -> Result<(f64, bool)> {
    let (mirror, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text),
    };
    // The whole text must be a number (upstream ignores trailing text, so `0abc` rotated by 0).
    let numeric = !rest.is_empty()
        && rest.bytes().any(|b| b.is_ascii_digit())
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && rest.bytes().filter(|&b| b == b'.').count() <= 1;
    let angle = numeric
        .then(|| stream_f64(rest))
        .flatten()
        .ok_or_else(|| bad("IIIF: invalid rotation"))?;
    if !(0.0..=MAX_ANGLE).contains(&angle) {
        return Err(bad(
            "IIIF: invalid rotation: angles are from 0 to 360 degrees",
        ));
    }
    Ok((if angle == MAX_ANGLE { 0.0 } else { angle }, mirror))
}

/// §4.4: `quality[.format]` (lower-cased; anything from `?` on is dropped).
pub fn parse_quality(text: &str, limits: &Limits) -> Result<(Quality, OutputFormat)> {
    let text = text.split('?').next().unwrap_or("");
    let (quality, format) = match text.rsplit_once('.') {
        Some((q, f)) => {
            let format = match f {
                "jpg" => OutputFormat::Jpeg,
                "png" => OutputFormat::Png,
                "webp" => OutputFormat::Webp,
                "avif" => OutputFormat::Avif,
                "tif" => OutputFormat::Tiff,
                // IIIF extensions beyond iipsrv (IIP's CVT keeps iipsrv's set).
                "gif" => OutputFormat::Gif,
                "jp2" => OutputFormat::Jp2,
                "pdf" => OutputFormat::Pdf,
                _ => return Err(bad("IIIF :: unsupported output format")),
            };
            (q, format)
        }
        None => (text, OutputFormat::Jpeg),
    };
    let q = match quality {
        "default" | "native" => Quality::Default,
        "color" => Quality::Color,
        "gray" | "grey" => Quality::Gray,
        "bitonal" => Quality::Bitonal,
        "negative" if limits.extensions => Quality::Negative,
        "stretch" if limits.extensions => Quality::Stretch,
        "equalization" if limits.extensions => Quality::Equalization,
        "log" if limits.extensions => Quality::Log,
        other => return Err(bad(format!("unsupported quality parameter: {other}"))),
    };
    Ok((q, format))
}

impl Quality {
    /// The quality's name in a canonical URI (`grey` → `gray`, `native` → `default`).
    pub fn name(self) -> &'static str {
        match self {
            Quality::Default => "default",
            Quality::Color => "color",
            Quality::Gray => "gray",
            Quality::Bitonal => "bitonal",
            Quality::Negative => "negative",
            Quality::Stretch => "stretch",
            Quality::Equalization => "equalization",
            Quality::Log => "log",
        }
    }
}

/// A rotation angle as the canonical syntax writes it: an integer when it is one, otherwise
/// the shortest decimal that reads back as the same number, with a leading `0` below 1 and no
/// trailing zeros (`22.5`, `0.5`; never an exponent).
pub fn angle_text(angle: f64) -> String {
    if angle.fract() == 0.0 {
        format!("{}", angle as u32)
    } else {
        // Rust's `Display` of an f64 is the shortest round-trip decimal, without exponent.
        format!("{angle}")
    }
}

/// The canonical form of a resolved request (IIIF 2.1 §4.7, 3.0 §4.8):
/// `{region}/{size}/{rotation}/{quality}.{format}`, which, parsed again with the same limits,
/// gives the same request.
///
/// | parameter | canonical |
/// |---|---|
/// | region | `full` when the region is the whole image (a `square` of a square image too), otherwise `x,y,w,h` of the clipped region |
/// | size, v3 | `max` when `max` gives this size, otherwise `w,h`, or `^w,h` when it is larger than the region |
/// | size, v2 | `full` when `full` gives this size, `w,` when `w,` gives it (the aspect ratio is kept), otherwise `w,h` |
/// | rotation | `!` when mirrored, then [`angle_text`] |
/// | quality | the quality's [`Quality::name`] |
/// | format | the format's extension, always given |
pub fn canonical(req: &ImageRequest, width: u32, height: u32, limits: &Limits) -> String {
    let r = req.region;
    let region = if (r.x, r.y, r.w, r.h) == (0, 0, width, height) {
        "full".to_string()
    } else {
        format!("{},{},{},{}", r.x, r.y, r.w, r.h)
    };
    let out = (req.width, req.height);
    let gives = |text: &str| parse_size(text, r, limits).ok() == Some(out);
    let size = if limits.version >= 3 {
        if gives("max") {
            "max".to_string()
        } else {
            let up = if out.0 > r.w || out.1 > r.h { "^" } else { "" };
            format!("{up}{},{}", out.0, out.1)
        }
    } else if gives("full") {
        "full".to_string()
    } else if gives(&format!("{},", out.0)) {
        format!("{},", out.0)
    } else {
        format!("{},{}", out.0, out.1)
    };
    format!(
        "{region}/{size}/{}{}/{}.{}",
        if req.mirror { "!" } else { "" },
        angle_text(req.rotation),
        req.quality.name(),
        req.format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: Limits = Limits {
        version: 3,
        max: Some(5000),
        allow_upscaling: true,
        extensions: false,
    };
    const V2: Limits = Limits { version: 2, ..V3 };

    fn size(req: &str, w: u32, h: u32, l: &Limits) -> Result<(u32, u32)> {
        let (r, s) = req.split_once('/').unwrap();
        parse_size(s, parse_region(r, w, h)?, l)
    }

    fn msg(r: Result<(u32, u32)>) -> String {
        r.unwrap_err().message().unwrap().to_string()
    }

    #[test]
    fn spec_size_table() {
        // docs/behaviour/protocols-iiif.md §4.2 on 1000×750, with the IIIF-exact rows.
        let ok = |r: &str| size(r, 1000, 750, &V3).unwrap();
        assert_eq!(ok("full/max"), (1000, 750));
        assert_eq!(ok("full/250,"), (250, 188));
        assert_eq!(ok("full/,100"), (133, 100));
        assert_eq!(ok("full/!100,100"), (100, 75));
        assert_eq!(ok("full/100,100"), (100, 100));
        assert_eq!(ok("pct:10,10,50,50/max"), (500, 375));
        assert_eq!(ok("pct:10,10,50,50/pct:50"), (250, 188));
        assert_eq!(ok("pct:0,0,33.3,33.3/pct:33.3"), (111, 83));
        assert_eq!(ok("900,700,200,200/max"), (100, 50));
        assert_eq!(ok("square/max"), (750, 750));
        assert_eq!(ok("full/^2000,"), (2000, 1500));
        assert_eq!(
            msg(size("full/2000,", 1000, 750, &V3)),
            "IIIF: upscaling should be prefixed with ^"
        );
        assert_eq!(size("full/256,", 5003, 3701, &V3).unwrap(), (256, 189));
        let small = Limits {
            max: Some(300),
            ..V3
        };
        for s in ["max", "^400,", "^,400", "!400,400", "pct:50"] {
            assert_eq!(
                size(&format!("full/{s}"), 1000, 750, &small).unwrap(),
                (300, 225),
                "{s}"
            );
        }
        assert_eq!(size("full/400,400", 1000, 750, &small).unwrap(), (300, 300));
        // Distorting sizes keep their shape when shrunk (upstream: 300×300).
        assert_eq!(size("full/400,100", 1000, 750, &small).unwrap(), (300, 75));
    }

    #[test]
    fn sizes_fitted_to_max_cvt_have_no_zero_side_and_stay_within_it() {
        // Found by fuzzing: a 4200×1 region fitted to 384 wide was planned as 384×0, and a
        // saturated width on a 1×150 region was fitted by the wrong side (5000×750000).
        let small = Limits {
            max: Some(384),
            ..V3
        };
        let on = |r: &str, l: &Limits| size(r, 5000, 5000, l).unwrap();
        assert_eq!(on("0,0,4200,1/max", &small), (384, 1));
        assert_eq!(on("0,0,1,4200/max", &small), (1, 384));
        assert_eq!(on("0,0,4200,1/4200,1", &small), (384, 1));
        assert_eq!(on("0,0,1,150/^99999999999999999999,", &V3), (33, 5000));
        assert_eq!(on("0,0,150,1/^,99999999999999999999", &V3), (5000, 33));
        assert_eq!(on("0,0,1,150/^pct:99999999999999999999", &V3), (33, 5000));
        let no_up = Limits {
            allow_upscaling: false,
            ..V2
        };
        assert_eq!(on("0,0,1000,1/99999999999999999999,", &no_up), (1000, 1));
    }

    #[test]
    fn size_errors() {
        assert_eq!(
            msg(size("full/abc", 100, 100, &V3)),
            "invalid size: no comma found"
        );
        assert_eq!(msg(size("full/x,", 100, 100, &V3)), "invalid width");
        assert_eq!(msg(size("full/,x", 100, 100, &V3)), "invalid height");
        assert_eq!(msg(size("full/pct:x", 100, 100, &V3)), "invalid size");
        assert_eq!(
            msg(size("full/0,", 100, 100, &V3)),
            "IIIF: invalid size: requested width or height < 0"
        );
        // `^` is not part of v2: the width does not parse.
        assert_eq!(msg(size("full/^200,", 100, 100, &V2)), "invalid width");
        // v2 accepts `full`; v3 does not (IIIF 3 removed it).
        assert_eq!(size("full/full", 100, 80, &V2).unwrap(), (100, 80));
        assert!(size("full/full", 100, 80, &V3).is_err());
        // v3 without ^ never upscales, also for !w,h (the validator's reading).
        assert!(size("full/!2000,3000", 1000, 1000, &V3).is_err());
        assert!(size("full/pct:200", 1000, 1000, &V3).is_err());
        assert_eq!(
            size("full/^!2000,500", 1000, 1000, &V3).unwrap(),
            (500, 500)
        );
        assert_eq!(
            size("full/^!2000,3000", 1000, 1000, &V3).unwrap(),
            (2000, 2000)
        );
        assert_eq!(size("full/^max", 1000, 1000, &V3).unwrap(), (1000, 1000));
        assert_eq!(size("full/100abc,", 1000, 1000, &V3).unwrap(), (100, 100));
        let unlimited = Limits { max: None, ..V3 };
        assert!(size("full/^99999999999,", 1000, 1000, &unlimited).is_err());
        // v2 upscales freely, unless ALLOW_UPSCALING=0.
        assert_eq!(size("full/2000,", 1000, 750, &V2).unwrap(), (2000, 1500));
        let no_up = Limits {
            allow_upscaling: false,
            ..V2
        };
        assert_eq!(size("full/2000,", 1000, 750, &no_up).unwrap(), (1000, 750));
        let no_up3 = Limits {
            allow_upscaling: false,
            ..V3
        };
        assert!(size("full/^2000,", 1000, 750, &no_up3).is_err());
        assert_eq!(size("full/^500,", 1000, 750, &no_up3).unwrap(), (500, 375));
    }

    #[test]
    fn regions() {
        let r = |t: &str| parse_region(t, 1000, 750);
        assert_eq!(
            r("full").unwrap(),
            Rect {
                x: 0,
                y: 0,
                w: 1000,
                h: 750
            }
        );
        assert_eq!(
            r("square").unwrap(),
            Rect {
                x: 125,
                y: 0,
                w: 750,
                h: 750
            }
        );
        assert_eq!(
            r("900,700,200,200").unwrap(),
            Rect {
                x: 900,
                y: 700,
                w: 100,
                h: 50
            }
        );
        assert_eq!(
            r("-10,-10,100,100").unwrap(),
            Rect {
                x: 0,
                y: 0,
                w: 100,
                h: 100
            }
        );
        assert_eq!(
            r("10,,20,30,40").unwrap(),
            Rect {
                x: 10,
                y: 20,
                w: 30,
                h: 40
            }
        );
        assert_eq!(
            r("pct:10,10,50,50").unwrap(),
            Rect {
                x: 100,
                y: 75,
                w: 500,
                h: 375
            }
        );
        assert_eq!(
            r("0,0,0,10").unwrap_err().message().unwrap(),
            "IIIF: incorrect region format: 0,0,0,10"
        );
        assert_eq!(
            r("pct:1,2,3").unwrap_err().message().unwrap(),
            "IIIF: incorrect region format: 1,2,3"
        );
        assert!(r("1000,0,10,10").is_err());
        assert!(r("1,2,3,4,5").is_err());
        let sq = parse_region("square", 600, 1000).unwrap();
        assert_eq!((sq.x, sq.y, sq.w, sq.h), (0, 200, 600, 600));
    }

    #[test]
    fn rotation_and_quality() {
        assert_eq!(parse_rotation("0").unwrap(), (0.0, false));
        assert_eq!(parse_rotation("!180").unwrap(), (180.0, true));
        assert_eq!(parse_rotation("90.0").unwrap(), (90.0, false));
        assert_eq!(
            parse_rotation("90abc").unwrap_err().message().unwrap(),
            "IIIF: invalid rotation"
        );
        assert_eq!(parse_rotation("360").unwrap(), (0.0, false));
        assert_eq!(
            parse_rotation("abc").unwrap_err().message().unwrap(),
            "IIIF: invalid rotation"
        );
        assert_eq!(parse_rotation("45").unwrap(), (45.0, false));
        assert_eq!(parse_rotation("!22.5").unwrap(), (22.5, true));
        assert_eq!(
            parse_quality("default.jpg?t=1", &V3).unwrap(),
            (Quality::Default, OutputFormat::Jpeg)
        );
        assert_eq!(
            parse_quality("gray.tif", &V3).unwrap(),
            (Quality::Gray, OutputFormat::Tiff)
        );
        assert_eq!(
            parse_quality("default", &V3).unwrap(),
            (Quality::Default, OutputFormat::Jpeg)
        );
        assert_eq!(
            parse_quality("color.gif", &V3).unwrap(),
            (Quality::Color, OutputFormat::Gif)
        );
        assert_eq!(
            parse_quality("grey.jp2", &V3).unwrap(),
            (Quality::Gray, OutputFormat::Jp2)
        );
        assert_eq!(
            parse_quality("native.pdf", &V3).unwrap(),
            (Quality::Default, OutputFormat::Pdf)
        );
        assert_eq!(
            parse_quality("default.jpeg", &V3)
                .unwrap_err()
                .message()
                .unwrap(),
            "IIIF :: unsupported output format"
        );
        assert_eq!(
            parse_quality("negative.png", &V3)
                .unwrap_err()
                .message()
                .unwrap(),
            "unsupported quality parameter: negative"
        );
        let ext = Limits {
            extensions: true,
            ..V3
        };
        assert_eq!(
            parse_quality("negative.png", &ext).unwrap().0,
            Quality::Negative
        );
    }

    #[test]
    fn token_counts() {
        let p = |t: &str| parse(t, 1000, 750, &V3);
        assert!(p("full/max/0/default.jpg").is_ok());
        assert!(
            p("full/max/0")
                .unwrap_err()
                .message()
                .unwrap()
                .starts_with("IIIF: Query has too few parameters.")
        );
        // An empty segment shifts the tokens (upstream).
        assert_eq!(
            p("full/max//default.jpg").unwrap_err().message().unwrap(),
            "IIIF: invalid rotation"
        );
        assert!(
            p("full/max/0/default.jpg/x")
                .unwrap_err()
                .message()
                .unwrap()
                .starts_with("IIIF: Query has too many parameters.")
        );
    }
    #[test]
    fn rotation_angles_from_0_to_360() {
        let ok = |t: &str| parse_rotation(t).unwrap();
        assert_eq!(ok("359.5"), (359.5, false));
        assert_eq!(ok("!0"), (0.0, true));
        assert_eq!(ok("0.5"), (0.5, false));
        assert_eq!(ok(".5"), (0.5, false));
        // A trailing dot is a decimal number (C++ reads it, and the grammar allows it).
        assert_eq!(ok("90."), (90.0, false));
        // 20-digit decimals are read to the nearest double.
        assert_eq!(ok("45.12345678901234567890"), (45.123456789012344, false));
        assert_eq!(ok("00000000000000000090"), (90.0, false));
        // A value that rounds to 360 is a full turn.
        assert_eq!(ok("359.99999999999999999999"), (0.0, false));
        let err = |t: &str| {
            parse_rotation(t)
                .unwrap_err()
                .message()
                .unwrap()
                .to_string()
        };
        for t in [
            "-0", "-90", "+90", "1e400", "1e2", "nan", "inf", "!", "!!90", "", " 90", "90 ",
            "9..0", "0x5a", "90,0",
        ] {
            assert_eq!(err(t), "IIIF: invalid rotation", "{t:?}");
        }
        for t in ["360.5", "361", "12345678901234567890", &"9".repeat(400)] {
            assert_eq!(
                err(t),
                "IIIF: invalid rotation: angles are from 0 to 360 degrees",
                "{t}"
            );
        }
    }

    #[test]
    fn angle_texts_are_canonical() {
        assert_eq!(angle_text(0.0), "0");
        assert_eq!(angle_text(90.0), "90");
        assert_eq!(angle_text(22.5), "22.5");
        assert_eq!(angle_text(0.5), "0.5");
        assert_eq!(angle_text(1e-7), "0.0000001");
        assert_eq!(angle_text(45.123456789012344), "45.123456789012344");
        assert_eq!(angle_text(359.99), "359.99");
    }

    /// The canonical form of `params` on a `w`×`h` image.
    fn canon(params: &str, w: u32, h: u32, l: &Limits) -> String {
        canonical(&parse(params, w, h, l).unwrap(), w, h, l)
    }

    #[test]
    fn canonical_forms_v3() {
        let c = |p: &str| canon(p, 1000, 750, &V3);
        assert_eq!(c("full/max/0/default.jpg"), "full/max/0/default.jpg");
        assert_eq!(c("0,0,1000,750/max/360/native"), "full/max/0/default.jpg");
        assert_eq!(
            c("pct:0,0,100,100/pct:100/0/color.png"),
            "full/max/0/color.png"
        );
        assert_eq!(c("full/250,/0/grey.gif"), "full/250,188/0/gray.gif");
        assert_eq!(
            c("full/!100,100/90.0/default.jp2"),
            "full/100,75/90/default.jp2"
        );
        assert_eq!(
            c("pct:10,10,50,50/pct:50/!22.50/bitonal.pdf"),
            "100,75,500,375/250,188/!22.5/bitonal.pdf"
        );
        assert_eq!(
            c("900,700,200,200/max/0/default.webp"),
            "900,700,100,50/max/0/default.webp"
        );
        assert_eq!(
            c("square/max/0/default.jpg"),
            "125,0,750,750/max/0/default.jpg"
        );
        assert_eq!(
            c("full/^2000,/0/default.jpg"),
            "full/^2000,1500/0/default.jpg"
        );
        assert_eq!(c("full/^max/0/default.jpg"), "full/max/0/default.jpg");
        assert_eq!(
            c("0,0,10,10/^20,5/0/default.jpg"),
            "0,0,10,10/^20,5/0/default.jpg"
        );
        // `max` limited by MAX_CVT stays `max`.
        let small = Limits {
            max: Some(300),
            ..V3
        };
        assert_eq!(
            canon("full/max/0/default.jpg", 1000, 750, &small),
            "full/max/0/default.jpg"
        );
        assert_eq!(
            canon("full/400,/0/default.jpg", 1000, 750, &small),
            "full/max/0/default.jpg"
        );
        // A square region of a square image is the full image.
        assert_eq!(
            canon("square/max/0/default.jpg", 500, 500, &V3),
            "full/max/0/default.jpg"
        );
    }

    #[test]
    fn canonical_forms_v2() {
        let c = |p: &str| canon(p, 1000, 750, &V2);
        assert_eq!(c("full/full/0/default.jpg"), "full/full/0/default.jpg");
        assert_eq!(c("full/max/0/native.jpg"), "full/full/0/default.jpg");
        assert_eq!(c("full/,100/0/default.jpg"), "full/133,/0/default.jpg");
        assert_eq!(c("full/!100,100/0/default.jpg"), "full/100,/0/default.jpg");
        // A distorting size keeps both numbers.
        assert_eq!(
            c("full/100,100/0/default.jpg"),
            "full/100,100/0/default.jpg"
        );
        // An aspect-keeping w,h is written w, (it gives the same size).
        assert_eq!(
            c("full/100,75/!45/default.jpg"),
            "full/100,/!45/default.jpg"
        );
        assert_eq!(c("full/2000,/0/default.jpg"), "full/2000,/0/default.jpg");
    }

    #[test]
    fn canonical_forms_read_back_to_the_same_request() {
        let sizes = [
            "max", "full", "^max", "250,", ",100", "!100,100", "100,100", "pct:33.3", "^2000,",
            "2000,", "^,3000", "1,1",
        ];
        let regions = [
            "full",
            "square",
            "900,700,200,200",
            "pct:10,10,50,50",
            "0,0,1,1",
            "-5,-5,30,40",
            "pct:0,0,33.3,33.3",
        ];
        let rotations = ["0", "!90", "180.0", "22.5", "!359.99", "360", "0.001"];
        for limits in [
            V3,
            V2,
            Limits {
                max: Some(300),
                ..V3
            },
            Limits {
                allow_upscaling: false,
                ..V2
            },
            Limits { max: None, ..V3 },
        ] {
            for (w, h) in [(1000, 750), (500, 500), (7, 3000)] {
                for region in regions {
                    for size in sizes {
                        for rotation in rotations {
                            let params = format!("{region}/{size}/{rotation}/grey.png");
                            let Ok(req) = parse(&params, w, h, &limits) else {
                                continue;
                            };
                            let text = canonical(&req, w, h, &limits);
                            let again = parse(&text, w, h, &limits)
                                .unwrap_or_else(|e| panic!("{params} → {text}: {e:?}"));
                            assert_eq!(again, req, "{params} → {text} ({limits:?}, {w}x{h})");
                            assert_eq!(canonical(&again, w, h, &limits), text);
                        }
                    }
                }
            }
        }
    }
}
