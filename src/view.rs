//! The protocol-neutral view of the work a request asks for.
//!
//! Every protocol parser (IIP commands, IIIF paths, Zoomify and DeepZoom tile names) fills a
//! [`View`]; the rendering code below the protocols reads only this.

use crate::config::TiffCompression;
use crate::encode::OutputFormat;

/// A region as fractions of the full image (IIP `RGN`), or in full-resolution pixels (IIIF).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Region {
    Fraction { x: f64, y: f64, w: f64, h: f64 },
    Pixels { x: u32, y: u32, w: u32, h: u32 },
}

/// Contrast (IIP `CNT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contrast {
    Factor(f32),
    Stretch,
    Equalize,
}

/// Gamma (IIP `GAM`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gamma {
    Value(f32),
    Log,
}

/// Colour map (IIP `CMP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourMap {
    Hot,
    Cold,
    Jet,
    Blue,
    Green,
    Red,
}

/// Colour conversion (IIP `COL`, IIIF quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourConversion {
    Grey,
    Binary,
}

/// The accumulated request state: what to render and how.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    /// Requested output width and height (`WID`, `HEI`, IIIF size).
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Region of interest (`RGN`, IIIF region).
    pub region: Option<Region>,
    /// Rotation in degrees as given (`ROT`, IIIF rotation), clockwise; `flip` mirrors
    /// horizontally (`!`) first. Unless `any_angle` is set, only multiples of 90 that are not
    /// multiples of 360 rotate (IIP's `ROT`: iipsrv ignores other angles).
    pub rotation: f64,
    pub flip: bool,
    /// Every angle rotates (IIIF's `rotationArbitrary`): multiples of 90 as with IIP, any other
    /// angle onto the bounding box ([`crate::pipeline::rotate_arbitrary`]).
    pub any_angle: bool,
    /// Explicit quality (`QLT`), overriding the configured default.
    pub quality: Option<i32>,
    /// TIFF compression from `QLT=comp:q`.
    pub tiff_compression: Option<TiffCompression>,
    /// Output format for region exports.
    pub format: Option<OutputFormat>,
    /// Stack page / sequence angles (`SDS`, `JTLS`, IIIF delimiter).
    pub horizontal: u32,
    pub vertical: Option<u32>,
    /// JPEG2000 quality layers (`LYR`).
    pub layers: u32,
    /// User min/max per channel (`MINMAX`).
    pub min_max: Vec<(usize, f32, f32)>,
    pub contrast: Option<Contrast>,
    pub gamma: Option<Gamma>,
    pub invert: bool,
    pub colour_map: Option<ColourMap>,
    pub colour: Option<ColourConversion>,
    /// Hill-shading angles (`SHD=h,v`).
    pub shade: Option<(i32, i32)>,
    /// Colour-twist matrix rows (`CTW`).
    pub twist: Option<Vec<Vec<f32>>>,
    /// Convolution kernel, square, row-major (`CNV`).
    pub convolution: Option<Vec<f32>>,
}
