//! Level, region and output-size selection for region exports (CVT, IIIF regions; §2 of
//! `docs/behaviour/pipeline-and-encoding.md`, `docs/behaviour/protocols-iip.md` §7).
//!
//! Notation: W×H the full size, N levels, (vl, vt, vw, vh) the region as fractions (32-bit
//! floats, as in the 1.3 release), (RW, RH) the requested size (0 = unset), M = `MAX_CVT`.
//!
//! 1. **Requested size** (§2.1). ratio = (vw·W)/(vh·H) as a 32-bit float. Neither size →
//!    (W, H), the *full* size even for a region (**[QUIRK]**, kept); only RH →
//!    (round(RH·ratio), RH); only RW → (RW, round(RW/ratio)); both with kept aspect → fit in
//!    the box (xs = RW/(vw·W), ys = RH/(vh·H): xs > ys → height wins, else width); both
//!    without → (RW, RH). Then if M > 0 and a side exceeds M, the larger side becomes M and the
//!    other round(M/ratio) or round(M·ratio) (equal sides: both M).
//! 2. **Level** (§2.2, the 1.3 release's algorithm): t = max(⌊RW/vw⌋, 1); from d = W and
//!    j = N − 1 repeat d = ⌊d/2⌋, stop as soon as d < t, else j − 1; clamp j to [0, N − 1].
//!    The same for the height gives j′; the IIP resolution is max(j, j′), the native level
//!    k = N − 1 − resolution. The request size used is the one *after* the MAX_CVT clamp, and
//!    upstream's later "MAX_CVT level reduction" (which could serve a clamped request from a
//!    level smaller than the output, then upsample) is not done (docs/compatibility.md).
//! 3. **Region in level pixels** (§2.3), only when a region is set: s = 2^k and the level size
//!    (lw, lh) = W×H floor-halved k times (never more than the stored level size);
//!    left = min(round(vl·W/s), lw), width = round(vw·W/s), cut to lw − left, at least 1; the
//!    same for the height. A region starting at the right or bottom edge is moved in by one
//!    pixel (upstream reads past the level). Without a region: the whole stored level.
//! 4. **Output size** (§2.4): (RW, RH); with upscaling disallowed each side is capped at the
//!    stored level size (**[QUIRK]**: the level, not the region); zero sides become 1.
//!
//! Regions in full-resolution pixels (IIIF) use exact integer arithmetic where the fractions
//! would otherwise be rounded.

use crate::view::Region;

/// What a region export asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// Full-resolution size.
    pub width: u32,
    pub height: u32,
    /// Stored level sizes, largest first (index = native level k).
    pub levels: &'a [(u32, u32)],
    pub region: Option<Region>,
    /// Requested output width and height (`None` = unset).
    pub out_width: Option<u32>,
    pub out_height: Option<u32>,
    /// Fit inside WID×HEI (true for IIP) or stretch to it (IIIF `w,h`).
    pub maintain_aspect: bool,
    pub allow_upscaling: bool,
    /// `MAX_CVT`: the largest output width and height; `None` means no limit.
    pub max_size: Option<u64>,
}

/// The result: which level to read, which part of it, and the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// IIP resolution (0 = smallest).
    pub resolution: u32,
    /// Native level index (0 = full size).
    pub level: usize,
    /// The region in the level's pixels.
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// Output size before rotation (saturated at `u32::MAX`; callers refuse large sizes).
    pub out_width: u32,
    pub out_height: u32,
}

/// The region in one of its two forms.
#[derive(Debug, Clone, Copy)]
enum Extent {
    /// 32-bit fractions.
    Fraction { l: f32, t: f32, w: f32, h: f32 },
    /// Full-resolution pixels, clipped to the image.
    Pixels { l: u64, t: u64, w: u64, h: u64 },
}

impl Extent {
    fn new(region: Option<Region>, width: u32, height: u32) -> Extent {
        match region {
            None => Extent::Fraction {
                l: 0.0,
                t: 0.0,
                w: 1.0,
                h: 1.0,
            },
            Some(Region::Fraction { x, y, w, h }) => {
                let c = |v: f64| (v as f32).clamp(0.0, 1.0);
                Extent::Fraction {
                    l: c(x),
                    t: c(y),
                    w: c(w),
                    h: c(h),
                }
            }
            Some(Region::Pixels { x, y, w, h }) => {
                let (fw, fh) = (width as u64, height as u64);
                let (l, t) = ((x as u64).min(fw), (y as u64).min(fh));
                Extent::Pixels {
                    l,
                    t,
                    w: (w as u64).min(fw - l),
                    h: (h as u64).min(fh - t),
                }
            }
        }
    }

    fn is_set(&self, width: u32, height: u32) -> bool {
        match *self {
            Extent::Fraction { l, t, w, h } => w < 1.0 || h < 1.0 || l > 0.0 || t > 0.0,
            Extent::Pixels { l, t, w, h } => {
                l > 0 || t > 0 || w < width as u64 || h < height as u64
            }
        }
    }

    /// (left, top, width, height) in full-resolution pixels.
    fn pixels(&self, width: u32, height: u32) -> [f64; 4] {
        match *self {
            Extent::Fraction { l, t, w, h } => {
                let (fw, fh) = (width as f32, height as f32);
                [
                    (fw * l) as f64,
                    (fh * t) as f64,
                    (fw * w) as f64,
                    (fh * h) as f64,
                ]
            }
            Extent::Pixels { l, t, w, h } => [l as f64, t as f64, w as f64, h as f64],
        }
    }

    fn ratio(&self, width: u32, height: u32) -> f32 {
        match *self {
            Extent::Fraction { w, h, .. } => (w * width as f32) / (h * height as f32),
            Extent::Pixels { w, h, .. } => (w as f64 / h as f64) as f32,
        }
    }

    /// ⌊req / fraction⌋ for the width (`horizontal`) or the height, at least 1.
    fn target(&self, req: u64, horizontal: bool, full: u32) -> u64 {
        let t = match *self {
            Extent::Fraction { w, h, .. } => {
                let f = if horizontal { w } else { h };
                to_u64((req as f32 / f).floor() as f64)
            }
            Extent::Pixels { w, h, .. } => {
                let e = if horizontal { w } else { h };
                (req as u128 * full as u128)
                    .checked_div(e as u128)
                    .map_or(u64::MAX, |v| v.min(u64::MAX as u128) as u64)
            }
        };
        t.max(1)
    }
}

/// A float → u64 conversion that saturates (NaN → 0).
fn to_u64(v: f64) -> u64 {
    if v.is_nan() { 0 } else { v as u64 }
}

/// C `round` in 32-bit float.
fn round32(v: f32) -> u64 {
    to_u64(v.round() as f64)
}

/// j for one axis (§2.2).
fn pick(target: u64, full: u32, n: usize) -> usize {
    let mut d = full as u64;
    let mut j = n as i64 - 1;
    loop {
        d /= 2;
        if d < target || j <= 0 {
            break;
        }
        j -= 1;
    }
    j.clamp(0, n as i64 - 1) as usize
}

/// The requested output size (§2.1), clamped by MAX_CVT.
fn requested(r: &Request<'_>, e: &Extent) -> (u64, u64) {
    let ratio = e.ratio(r.width, r.height);
    let [_, _, pw, ph] = e.pixels(r.width, r.height);
    let (mut rw, mut rh) = match (r.out_width, r.out_height) {
        (None, None) => (r.width as u64, r.height as u64),
        (None, Some(h)) => (round32(h as f32 * ratio), h as u64),
        (Some(w), None) => (w as u64, round32(w as f32 / ratio)),
        (Some(w), Some(h)) if r.maintain_aspect => {
            let xs = w as f64 / pw;
            let ys = h as f64 / ph;
            if xs > ys {
                (round32(h as f32 * ratio), h as u64)
            } else {
                (w as u64, round32(w as f32 / ratio))
            }
        }
        (Some(w), Some(h)) => (w as u64, h as u64),
    };
    if let Some(m) = r.max_size {
        if rw > m || rh > m {
            if rw > rh {
                rw = m;
                rh = round32(m as f32 / ratio);
            } else if rh > rw {
                rh = m;
                rw = round32(m as f32 * ratio);
            } else {
                rw = m;
                rh = m;
            }
        }
    }
    (rw, rh)
}

/// One axis of the region in level pixels: (start, length).
fn axis(start_px: f64, len_px: f64, s: f64, level: u32) -> (u32, u32) {
    let level = level.max(1) as u64;
    let mut start = to_u64((start_px / s).round()).min(level);
    if start >= level {
        start = level - 1;
    }
    let mut len = to_u64((len_px / s).round());
    if start + len > level {
        len = level - start;
    }
    (start as u32, len.max(1) as u32)
}

/// Plan a region export. `None` if the image has no levels.
pub fn plan(r: &Request<'_>) -> Option<Plan> {
    let n = r.levels.len();
    if n == 0 {
        return None;
    }
    let e = Extent::new(r.region, r.width, r.height);
    let (rw, rh) = requested(r, &e);
    let j = pick(e.target(rw, true, r.width), r.width, n);
    let j2 = pick(e.target(rh, false, r.height), r.height, n);
    let resolution = j.max(j2);
    let k = n - 1 - resolution;
    let (stored_w, stored_h) = r.levels[k];
    let (x, y, w, h) = if e.is_set(r.width, r.height) {
        let halved = |full: u32| if k >= 32 { 0 } else { full >> k };
        let lw = halved(r.width).min(stored_w);
        let lh = halved(r.height).min(stored_h);
        let s = (k as f64).exp2();
        let [pl, pt, pw, ph] = e.pixels(r.width, r.height);
        let (x, w) = axis(pl, pw, s, lw);
        let (y, h) = axis(pt, ph, s, lh);
        (x, y, w, h)
    } else {
        (0, 0, stored_w, stored_h)
    };
    let (mut ow, mut oh) = (rw, rh);
    if !r.allow_upscaling {
        ow = ow.min(stored_w as u64);
        oh = oh.min(stored_h as u64);
    }
    let sat = |v: u64| v.clamp(1, u32::MAX as u64) as u32;
    Some(Plan {
        resolution: resolution as u32,
        level: k,
        x,
        y,
        w,
        h,
        out_width: sat(ow),
        out_height: sat(oh),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const L750: [(u32, u32); 3] = [(1000, 750), (500, 375), (250, 187)];
    const L700: [(u32, u32); 3] = [(1000, 700), (500, 350), (250, 175)];

    fn req(levels: &[(u32, u32)]) -> Request<'_> {
        Request {
            width: levels[0].0,
            height: levels[0].1,
            levels,
            region: None,
            out_width: None,
            out_height: None,
            maintain_aspect: true,
            allow_upscaling: true,
            max_size: Some(5000),
        }
    }

    fn frac(x: f64, y: f64, w: f64, h: f64) -> Option<Region> {
        Some(Region::Fraction { x, y, w, h })
    }

    fn out(p: &Plan) -> (u32, u32) {
        (p.out_width, p.out_height)
    }

    #[test]
    fn protocol_examples() {
        // docs/behaviour/protocols-iip.md §7 on 1000×750 with 3 levels.
        let p = plan(&Request {
            out_width: Some(300),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((300, 225), 1));
        assert_eq!((p.x, p.y, p.w, p.h), (0, 0, 500, 375));
        let p = plan(&Request {
            out_height: Some(300),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((400, 300), 1));
        let p = plan(&Request {
            out_width: Some(300),
            out_height: Some(300),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!(out(&p), (300, 225));
        let p = plan(&Request {
            region: frac(0.5, 0.5, 0.5, 0.5),
            out_width: Some(200),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((200, 150), 1));
        // left = round(250) = 250; top = round(187.5) = 188, height 188 cut to 375 − 188.
        assert_eq!((p.x, p.y, p.w, p.h), (250, 188, 250, 187));
        let p = plan(&Request {
            region: frac(0.5, 0.5, 0.5, 0.5),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((1000, 750), 2));
        assert_eq!((p.x, p.y, p.w, p.h), (500, 375, 500, 375));
        let p = plan(&Request {
            out_width: Some(20000),
            ..req(&L750)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((5000, 3750), 2));
        let p = plan(&req(&L750)).unwrap();
        assert_eq!(
            (out(&p), p.resolution, p.w, p.h),
            ((1000, 750), 2, 1000, 750)
        );
    }

    #[test]
    fn max_cvt_never_upsamples() {
        // Upstream serves this 300×210 from the 250×175 level; we use 500×350.
        let p = plan(&Request {
            out_width: Some(1000),
            max_size: Some(300),
            ..req(&L700)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((300, 210), 1));
        let p = plan(&Request {
            out_width: Some(300),
            max_size: Some(300),
            ..req(&L700)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((300, 210), 1));
        // Taller than wide; equal sides.
        let tall = [(700, 1000)];
        let p = plan(&Request {
            max_size: Some(100),
            ..req(&tall)
        })
        .unwrap();
        assert_eq!(out(&p), (70, 100));
        let sq = [(400, 400)];
        let p = plan(&Request {
            max_size: Some(100),
            ..req(&sq)
        })
        .unwrap();
        assert_eq!(out(&p), (100, 100));
        // No limit.
        let p = plan(&Request {
            out_width: Some(999_999),
            max_size: None,
            ..req(&L700)
        })
        .unwrap();
        assert_eq!(out(&p), (999_999, 699_999));
    }

    #[test]
    fn upscaling_disallowed_caps_at_the_level() {
        let p = plan(&Request {
            out_width: Some(2000),
            allow_upscaling: false,
            ..req(&L700)
        })
        .unwrap();
        assert_eq!(out(&p), (1000, 700));
        // The cap is the level, not the region (a quirk): the 250×175 region becomes 800×560.
        let p = plan(&Request {
            region: frac(0.0, 0.0, 0.5, 0.5),
            out_width: Some(800),
            allow_upscaling: false,
            ..req(&L700)
        })
        .unwrap();
        assert_eq!(out(&p), (800, 560));
        assert_eq!((p.resolution, p.w, p.h), (2, 500, 350));
    }

    #[test]
    fn aspect_and_stretch() {
        // Box 300×300 on a 2:1 region → 300×150; without kept aspect → 300×300.
        let levels = [(2000, 1000), (1000, 500)];
        let p = plan(&Request {
            out_width: Some(300),
            out_height: Some(300),
            ..req(&levels)
        })
        .unwrap();
        assert_eq!(out(&p), (300, 150));
        let p = plan(&Request {
            out_width: Some(300),
            out_height: Some(300),
            maintain_aspect: false,
            ..req(&levels)
        })
        .unwrap();
        assert_eq!((out(&p), p.resolution), ((300, 300), 0));
    }

    #[test]
    fn edges_and_degenerate_regions() {
        // A region starting at the right edge reads the last column, not past it.
        let p = plan(&Request {
            region: frac(1.0, 1.0, 0.5, 0.5),
            out_width: Some(10),
            ..req(&L700)
        })
        .unwrap();
        assert!(p.x < 1000 >> p.level && p.y < 700 >> p.level, "{p:?}");
        assert_eq!((p.w, p.h), (1, 1));
        // A tiny height fraction gives an enormous ratio: still a valid plan.
        let p = plan(&Request {
            region: frac(0.0, 0.0, 1.0, 1e-30),
            ..req(&L700)
        })
        .unwrap();
        assert!(p.out_width >= 1 && p.out_height >= 1 && p.h >= 1);
        assert!(
            plan(&Request {
                levels: &[],
                ..req(&L700)
            })
            .is_none()
        );
    }

    #[test]
    fn pixel_regions() {
        // IIIF 500,500,200,200 of 1000×700 → 100: level 500×350, region 250,250,100,100.
        let p = plan(&Request {
            region: Some(Region::Pixels {
                x: 500,
                y: 500,
                w: 200,
                h: 200,
            }),
            out_width: Some(100),
            out_height: Some(100),
            maintain_aspect: false,
            ..req(&L700)
        })
        .unwrap();
        assert_eq!(
            (p.resolution, p.x, p.y, p.w, p.h, out(&p)),
            (1, 250, 250, 100, 100, (100, 100))
        );
        // Beyond the image: clipped (width 0 becomes 1 pixel).
        let p = plan(&Request {
            region: Some(Region::Pixels {
                x: 5000,
                y: 0,
                w: 10,
                h: 10,
            }),
            ..req(&L700)
        })
        .unwrap();
        assert_eq!((p.x, p.w), (999, 1));
    }

    #[test]
    fn level_pick() {
        assert_eq!(pick(300, 1000, 3), 1);
        assert_eq!(pick(1000, 1000, 3), 2);
        assert_eq!(pick(1, 1000, 3), 0);
        assert_eq!(pick(251, 1000, 3), 1);
        assert_eq!(pick(250, 1000, 3), 0);
        assert_eq!(pick(u64::MAX, 1000, 1), 0);
    }
}
