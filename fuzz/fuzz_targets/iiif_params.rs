//! The IIIF image-request parameters `{region}/{size}/{rotation}/{quality}.{format}` for an
//! image of any size and any limits. Properties of an accepted request: the region lies inside
//! the image, the planned size has no zero side, stays within MAX_CVT, and is larger than the
//! region only where upscaling is allowed.
//!
//! Input: width (4 bytes LE), height (4 bytes LE), a settings byte, then the parameters.
#![no_main]

use iipsrv::protocols::iiif::parse::{Limits, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let width = u32::from_le_bytes(data[0..4].try_into().unwrap()).max(1);
    let height = u32::from_le_bytes(data[4..8].try_into().unwrap()).max(1);
    let settings = data[8];
    let limits = Limits {
        version: if settings & 1 == 0 { 3 } else { 2 },
        max: [None, Some(5000), Some(384), Some(1)][(settings >> 1 & 3) as usize],
        allow_upscaling: settings & 8 == 0,
        extensions: settings & 16 != 0,
    };
    let params = String::from_utf8_lossy(&data[9..]);
    let Ok(req) = parse(&params, width, height, &limits) else {
        return;
    };
    let r = req.region;
    assert!(r.w >= 1 && r.h >= 1, "empty region {r:?}");
    assert!(
        r.x as u64 + r.w as u64 <= width as u64 && r.y as u64 + r.h as u64 <= height as u64,
        "region {r:?} outside {width}x{height}"
    );
    assert!(req.width >= 1 && req.height >= 1, "zero side: {req:?}");
    if let Some(m) = limits.max {
        assert!(
            req.width <= m && req.height <= m,
            "over MAX_CVT {m}: {req:?}"
        );
    }
    let upscaled = req.width > r.w || req.height > r.h;
    if upscaled {
        let caret = params
            .split('/')
            .filter(|t| !t.is_empty())
            .nth(1)
            .is_some_and(|s| s.starts_with('^'));
        assert!(
            limits.allow_upscaling,
            "upscaled without ALLOW_UPSCALING: {req:?}"
        );
        assert!(
            limits.version < 3 || caret,
            "v3 upscaled without ^: {req:?}"
        );
    }
    assert!(
        (0.0..360.0).contains(&req.rotation),
        "rotation outside [0, 360): {req:?}"
    );
});
