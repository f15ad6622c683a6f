//! info.json (`docs/behaviour/protocols-iiif.md` §3): iipsrv 1.3's exact text for versions 2 and 3, with the
//! fixes listed in docs/compatibility.md (JSON escaping, scale factors of pyramids whose levels
//! round up, the real tile height, an `id` and `type` on the physical-dimensions service) and
//! the features this server adds ([`EXTRA_FORMATS`], [`EXTRA_FEATURES`]), every one of which
//! works.

use crate::config::Config;
use crate::source::ImageInfo;
use crate::text::{fmt_g, json_escape};

/// The formats this server adds to iipsrv's (`jpg`, `png`, `tif`, `webp`, `avif`), as JSON
/// strings joined by commas: GIF, JPEG2000 and PDF output (IIIF only).
const EXTRA_FORMATS: &str = "\"gif\",\"jp2\",\"pdf\"";

/// The features this server adds to iipsrv's lists (JSON strings joined by commas): any
/// rotation angle and the two `Link` headers of image responses.
const EXTRA_FEATURES: &str = "\"rotationArbitrary\",\"canonicalLinkHeader\",\"profileLinkHeader\"";

/// The IIIF scale factor of each stored level (index 0 = full size): the power of two whose
/// halving (rounded either way) gives the level's size, so that a pyramid whose levels were
/// rounded up gets 1, 2, 4 … like a floor-rounded one; otherwise the nearest integer ratio.
pub(crate) fn scale_factors(info: &ImageInfo) -> Vec<u32> {
    let (fw, fh) = (info.width as u64, info.height as u64);
    info.levels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return 1;
            }
            let (w, h) = (l.width as u64, l.height as u64);
            let fits = |p: u64, full: u64, size: u64| full / p <= size && size <= full.div_ceil(p);
            (1..32)
                .map(|k| 1u64 << k)
                .find(|&p| fits(p, fw, w) && fits(p, fh, h))
                .map(|p| p as u32)
                .unwrap_or_else(|| ((fw as f64) / (w.max(1) as f64)).round().max(1.0) as u32)
        })
        .collect()
}

/// The tile size advertised: the full-resolution level's tile width and height.
pub(crate) fn tile_size(info: &ImageInfo) -> (u32, u32) {
    info.levels
        .first()
        .map(|l| (l.tile_width, l.tile_height))
        .unwrap_or((256, 256))
}

/// The rights statement: the image's `rights` metadata, else `COPYRIGHT`.
fn rights(info: &ImageInfo, config: &Config) -> Option<String> {
    match info.metadata.get("rights") {
        Some(v) if !v.is_empty() => Some(String::from_utf8_lossy(v).into_owned()),
        _ if !config.output.copyright.is_empty() => Some(config.output.copyright.clone()),
        _ => None,
    }
}

/// The `sizes` and `tiles` blocks shared by both versions.
fn sizes_and_tiles(info: &ImageInfo, out: &mut String) {
    out.push_str("  \"sizes\" : [\n");
    let sizes: Vec<String> = if info.levels.len() <= 1 {
        vec![format!(
            "     {{ \"width\" : {}, \"height\" : {} }}",
            info.width, info.height
        )]
    } else {
        info.levels[1..]
            .iter()
            .rev()
            .map(|l| {
                format!(
                    "     {{ \"width\" : {}, \"height\" : {} }}",
                    l.width, l.height
                )
            })
            .collect()
    };
    out.push_str(&sizes.join(",\n"));
    out.push_str("\n  ],\n");
    let (tw, th) = tile_size(info);
    let factors: Vec<String> = scale_factors(info).iter().map(|f| f.to_string()).collect();
    out.push_str(&format!(
        "  \"tiles\" : [\n     {{ \"width\" : {tw}, \"height\" : {th}, \"scaleFactors\" : [ {} ] }}\n  ],\n",
        factors.join(", ")
    ));
}

/// The physical-dimensions service block (with its leading `,` LF), if the image has a
/// resolution. Version 3 gets the `id` and `type` every IIIF 3 service needs.
fn service(info: &ImageInfo, id: &str, version: u32) -> String {
    let Some(dpi) = info.dpi.filter(|d| d.x != 0.0) else {
        return String::new();
    };
    let units = if dpi.unit == 2 { "in" } else { "cm" };
    let ident = if version >= 3 {
        format!("      \"id\": \"{id}#physdim\",\n      \"type\": \"PhysicalDimensions\",\n")
    } else {
        String::new()
    };
    format!(
        ",\n  \"service\": [\n    {{\n      \"@context\": \"http://iiif.io/api/annex/services/physdim/1/context.json\",\n{ident}      \"profile\": \"http://iiif.io/api/annex/services/physdim\",\n      \"physicalScale\": {},\n      \"physicalUnits\": \"{units}\"\n    }}\n  ]\n",
        fmt_g(1.0 / dpi.x, 6)
    )
}

/// `MAX_CVT` printed as upstream does (as an unsigned 32-bit value: -1 → 4294967295).
fn max_size(config: &Config) -> u32 {
    config.exports.max_cvt.as_sentinel() as i32 as u32
}

/// The qualities after `color`: `"gray","bitonal"` and the extension qualities.
fn qualities(info: &ImageInfo, config: &Config) -> String {
    let mut q = String::new();
    if info.channels >= 3 {
        q.push_str("\"color\",");
    }
    q.push_str("\"gray\",\"bitonal\"");
    if config.iiif.extensions {
        q.push_str(",\"negative\",\"stretch\",\"equalization\",\"log\"");
    }
    q
}

/// The info.json body for `version` (3 or more: the v3 layout; below: v2), with `id` already
/// JSON-escaped.
pub(crate) fn info_json(info: &ImageInfo, id: &str, version: u32, config: &Config) -> String {
    let mut out = String::with_capacity(2048);
    let v = version;
    out.push_str(&format!(
        "{{\n  \"@context\" : \"http://iiif.io/api/image/{v}/context.json\",\n"
    ));
    out.push_str("  \"protocol\" : \"http://iiif.io/api/image\",\n");
    out.push_str(&format!(
        "  \"width\" : {},\n  \"height\" : {},\n",
        info.width, info.height
    ));
    sizes_and_tiles(info, &mut out);
    let max = max_size(config);
    let q = qualities(info, config);
    let rights = rights(info, config).map(|r| json_escape(&r));
    if v >= 3 {
        let upscaling = if config.exports.allow_upscaling {
            ",\"sizeUpscaling\""
        } else {
            ""
        };
        out.push_str(&format!(
            "  \"id\" : \"{id}\",\n  \"type\": \"ImageService3\",\n  \"profile\" : \"level2\",\n  \"maxWidth\" : {max},\n  \"maxHeight\" : {max},\n  \"extraQualities\": [{q}],\n  \"extraFormats\": [\"tif\",\"webp\",\"avif\",{EXTRA_FORMATS}],\n  \"extraFeatures\": [\"regionByPct\",\"sizeByPct\",\"sizeByConfinedWh\"{upscaling},\"rotationBy90s\",\"mirroring\",{EXTRA_FEATURES}]"
        ));
        if let Some(r) = rights {
            out.push_str(&format!(",\n  \"rights\": \"{r}\""));
        }
    } else {
        let above = if config.exports.allow_upscaling {
            ",\"sizeAboveFull\""
        } else {
            ""
        };
        out.push_str(&format!(
            "  \"@id\" : \"{id}\",\n  \"profile\" : [\n     \"http://iiif.io/api/image/{v}/level2.json\",\n     {{ \"formats\" : [\"jpg\",\"png\",\"tif\",\"webp\",\"avif\",{EXTRA_FORMATS}],\n       \"qualities\" : [\"native\",{q}],\n       \"supports\" : [\"regionByPct\",\"regionSquare\",\"max\",\"sizeByConfinedWh\",\"sizeByForcedWh\",\"sizeByWh\"{above},\"rotationBy90s\",\"mirroring\",{EXTRA_FEATURES}],\n       \"maxWidth\" : {max},\n       \"maxHeight\" : {max}\n     }}\n  ]"
        ));
        if let Some(r) = rights {
            out.push_str(&format!(",\n  \"license\": \"{r}\""));
        }
    }
    if !config.iiif.extra_info.is_empty() {
        out.push_str(",\n  ");
        out.push_str(&config.iiif.extra_info);
    }
    out.push_str(&service(info, id, v));
    out.push_str("\n}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ColourSpace;
    use crate::protocols::test_util::{config_with as config, image_info};
    use crate::source::Dpi;

    fn image(levels: &[(u32, u32)], channels: u16, dpi: Option<Dpi>) -> ImageInfo {
        let mut info = image_info(levels, 256);
        info.channels = channels;
        if channels < 3 {
            info.colour = ColourSpace::Grey;
        }
        info.dpi = dpi;
        info
    }

    #[test]
    fn v3_is_upstreams_text_plus_the_service_id() {
        let info = image(
            &[(1000, 750), (500, 375), (250, 187)],
            3,
            Some(Dpi {
                x: 10.0,
                y: 10.0,
                unit: 3,
            }),
        );
        let id = "http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=/images/x.tif";
        let body = info_json(&info, id, 3, &config(&[]));
        let expected = concat!(
            "{\n",
            "  \"@context\" : \"http://iiif.io/api/image/3/context.json\",\n",
            "  \"protocol\" : \"http://iiif.io/api/image\",\n",
            "  \"width\" : 1000,\n",
            "  \"height\" : 750,\n",
            "  \"sizes\" : [\n",
            "     { \"width\" : 250, \"height\" : 187 },\n",
            "     { \"width\" : 500, \"height\" : 375 }\n",
            "  ],\n",
            "  \"tiles\" : [\n",
            "     { \"width\" : 256, \"height\" : 256, \"scaleFactors\" : [ 1, 2, 4 ] }\n",
            "  ],\n",
            "  \"id\" : \"http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=/images/x.tif\",\n",
            "  \"type\": \"ImageService3\",\n",
            "  \"profile\" : \"level2\",\n",
            "  \"maxWidth\" : 5000,\n",
            "  \"maxHeight\" : 5000,\n",
            "  \"extraQualities\": [\"color\",\"gray\",\"bitonal\"],\n",
            "  \"extraFormats\": [\"tif\",\"webp\",\"avif\",\"gif\",\"jp2\",\"pdf\"],\n",
            "  \"extraFeatures\": [\"regionByPct\",\"sizeByPct\",\"sizeByConfinedWh\",\"sizeUpscaling\",\"rotationBy90s\",\"mirroring\",\"rotationArbitrary\",\"canonicalLinkHeader\",\"profileLinkHeader\"],\n",
            "  \"service\": [\n",
            "    {\n",
            "      \"@context\": \"http://iiif.io/api/annex/services/physdim/1/context.json\",\n",
            "      \"id\": \"http://localhost/fcgi-bin/iipsrv.fcgi?IIIF=/images/x.tif#physdim\",\n",
            "      \"type\": \"PhysicalDimensions\",\n",
            "      \"profile\": \"http://iiif.io/api/annex/services/physdim\",\n",
            "      \"physicalScale\": 0.1,\n",
            "      \"physicalUnits\": \"cm\"\n",
            "    }\n",
            "  ]\n",
            "\n",
            "}"
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn v2_with_every_option() {
        let mut info = image(&[(1001, 601), (501, 301), (251, 151)], 1, None);
        info.metadata.clear();
        let c = config(&[
            ("COPYRIGHT", "CC \"BY\" 4.0"),
            ("IIIF_EXTRA_INFO", "\"preferredFormats\": [\"webp\"]"),
            ("IIIF_EXTENSIONS", "1"),
            ("MAX_CVT", "-1"),
        ]);
        let body = info_json(&info, "https://example.org/iiif//images/odd.tif", 2, &c);
        let expected = concat!(
            "{\n",
            "  \"@context\" : \"http://iiif.io/api/image/2/context.json\",\n",
            "  \"protocol\" : \"http://iiif.io/api/image\",\n",
            "  \"width\" : 1001,\n",
            "  \"height\" : 601,\n",
            "  \"sizes\" : [\n",
            "     { \"width\" : 251, \"height\" : 151 },\n",
            "     { \"width\" : 501, \"height\" : 301 }\n",
            "  ],\n",
            "  \"tiles\" : [\n",
            "     { \"width\" : 256, \"height\" : 256, \"scaleFactors\" : [ 1, 2, 4 ] }\n",
            "  ],\n",
            "  \"@id\" : \"https://example.org/iiif//images/odd.tif\",\n",
            "  \"profile\" : [\n",
            "     \"http://iiif.io/api/image/2/level2.json\",\n",
            "     { \"formats\" : [\"jpg\",\"png\",\"tif\",\"webp\",\"avif\",\"gif\",\"jp2\",\"pdf\"],\n",
            "       \"qualities\" : [\"native\",\"gray\",\"bitonal\",\"negative\",\"stretch\",\"equalization\",\"log\"],\n",
            "       \"supports\" : [\"regionByPct\",\"regionSquare\",\"max\",\"sizeByConfinedWh\",\"sizeByForcedWh\",\"sizeByWh\",\"sizeAboveFull\",\"rotationBy90s\",\"mirroring\",\"rotationArbitrary\",\"canonicalLinkHeader\",\"profileLinkHeader\"],\n",
            "       \"maxWidth\" : 4294967295,\n",
            "       \"maxHeight\" : 4294967295\n",
            "     }\n",
            "  ],\n",
            "  \"license\": \"CC \\\"BY\\\" 4.0\",\n",
            "  \"preferredFormats\": [\"webp\"]\n",
            "}"
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn scale_factors_for_rounding_either_way() {
        let up = image(&[(1001, 601), (501, 301), (251, 151)], 3, None);
        assert_eq!(scale_factors(&up), vec![1, 2, 4]);
        let down = image(
            &[
                (1000, 700),
                (500, 350),
                (250, 175),
                (125, 87),
                (62, 43),
                (31, 21),
                (15, 10),
            ],
            3,
            None,
        );
        assert_eq!(scale_factors(&down), vec![1, 2, 4, 8, 16, 32, 64]);
        let single = image(&[(200, 100)], 3, None);
        assert_eq!(scale_factors(&single), vec![1]);
        let odd = image(&[(900, 900), (300, 300)], 3, None);
        assert_eq!(scale_factors(&odd), vec![1, 3]);
    }

    #[test]
    fn single_level_lists_the_full_size_and_no_upscaling_features() {
        let info = image(&[(200, 100)], 3, None);
        let body = info_json(&info, "x", 3, &config(&[("ALLOW_UPSCALING", "0")]));
        assert!(body.contains("  \"sizes\" : [\n     { \"width\" : 200, \"height\" : 100 }\n  ],"));
        assert!(!body.contains("sizeUpscaling"));
        let body = info_json(&info, "x", 2, &config(&[("ALLOW_UPSCALING", "0")]));
        assert!(!body.contains("sizeAboveFull"));
    }
}
