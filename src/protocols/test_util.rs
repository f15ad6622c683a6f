//! Helpers for the protocols' unit tests: configurations and image descriptions built in a
//! line.

use super::grid::Target;
use crate::config::Config;
use crate::image::ColourSpace;
use crate::shared::Shared;
use crate::source::{ImageFormat, ImageInfo, Level, SampleFormat};

/// A configuration from `(variable, value)` pairs, the rest at their defaults.
pub(crate) fn config_with(pairs: &[(&str, &str)]) -> Config {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).0
}

/// The shared state of a configuration from `(variable, value)` pairs.
pub(crate) fn shared_with(pairs: &[(&str, &str)]) -> Shared {
    Shared::new(config_with(pairs))
}

/// An 8-bit RGB TIFF with these levels (largest first), every level tiled `tile`×`tile`.
pub(crate) fn image_info(levels: &[(u32, u32)], tile: u32) -> ImageInfo {
    ImageInfo {
        format: ImageFormat::Tiff,
        width: levels[0].0,
        height: levels[0].1,
        levels: levels
            .iter()
            .map(|&(width, height)| Level {
                width,
                height,
                tile_width: tile,
                tile_height: tile,
            })
            .collect(),
        channels: 3,
        bits_per_sample: 8,
        sample_format: SampleFormat::Unsigned,
        colour: ColourSpace::Srgb,
        min_max: vec![],
        metadata: Default::default(),
        dpi: None,
        stack: vec![],
        quality_layers: 0,
    }
}

/// A grid protocol's tile (level, column, row) of the image `id`.
pub(crate) fn tile_target(id: &[u8], (level, col, row): (i64, i64, i64)) -> Target<'_> {
    Target::Tile {
        id,
        level,
        col,
        row,
    }
}
