//! The image-request parameters `{region}/{size}/{rotation}/{quality}.{format}`
//! (`protocols-iiif.md` §4), resolved to exact pixels.
//!
//! Parsing is upstream's (lower-casing, `atof` values, empty tokens skipped, the error texts);
//! the arithmetic is the IIIF specification's (README "Decisions already taken"): the region is
//! a rectangle of whole full-resolution pixels clipped to the image, and the output size is
//! computed from that rectangle exactly as the specification defines each size form, so
//! `900,700,200,200/max` on 1000×750 is 100×50 and `full/256,` on 5003×3701 is 256×189.

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
    /// `default`, `color`, `native`.
    Default,
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
    /// Clockwise quarter turns (0–3) after the optional mirror.
    pub turns: u32,
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
    let (turns, mirror) = parse_rotation(next()?)?;
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
        turns,
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

/// §4.3: `[!]n` with n ∈ {0, 90, 180, 270, 360} (not lower-cased; the whole text must be a
/// number).
pub fn parse_rotation(text: &str) -> Result<(u32, bool)> {
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
    let turns = match (angle.fract() == 0.0).then_some(angle as i64) {
        Some(0 | 360) => 0,
        Some(90) => 1,
        Some(180) => 2,
        Some(270) => 3,
        _ => {
            return Err(bad(
                "IIIF: currently implemented rotation angles are 0, 90, 180 and 270 degrees",
            ));
        }
    };
    Ok((turns, mirror))
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
                _ => return Err(bad("IIIF :: unsupported output format")),
            };
            (q, format)
        }
        None => (text, OutputFormat::Jpeg),
    };
    let q = match quality {
        "default" | "color" | "native" => Quality::Default,
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
        // protocols-iiif.md §4.2 on 1000×750, with the IIIF-exact rows.
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
        assert_eq!(parse_rotation("0").unwrap(), (0, false));
        assert_eq!(parse_rotation("!180").unwrap(), (2, true));
        assert_eq!(parse_rotation("90.0").unwrap(), (1, false));
        assert_eq!(
            parse_rotation("90abc").unwrap_err().message().unwrap(),
            "IIIF: invalid rotation"
        );
        assert_eq!(parse_rotation("360").unwrap(), (0, false));
        assert_eq!(
            parse_rotation("abc").unwrap_err().message().unwrap(),
            "IIIF: invalid rotation"
        );
        assert_eq!(
            parse_rotation("45").unwrap_err().message().unwrap(),
            "IIIF: currently implemented rotation angles are 0, 90, 180 and 270 degrees"
        );
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
}
