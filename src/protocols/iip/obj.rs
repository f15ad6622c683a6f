//! IIP's `OBJ` command (`docs/behaviour/protocols-iip.md` §5): server and image objects, answered as text
//! lines. Each object name is listed once, in [`Obj::from_name`]'s tables, and parsed once
//! into an [`Obj`]; [`ObjText`] collects the lines (and the content type) of every `OBJ` of a
//! request.

use crate::config::Config;
use crate::image::ColourSpace;
use crate::open_image::OpenImage;
use crate::source::ImageInfo;
use crate::text::{fmt_g, json_escape};
use crate::view::View;

/// An object `OBJ` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Obj {
    /// Answered without an image.
    Server(ServerObj),
    /// Needs an image opened by `FIF` first.
    Image(ImageObj),
}

/// Objects about the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerObj {
    /// `IIP,<version>`: adds the `IIP:` header, no line.
    Iip,
    IipServer,
    IipOptComm,
    IipOptObj,
}

/// Objects about the open image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImageObj {
    BasicInfo,
    ResolutionNumber,
    MaxSize,
    TileSize,
    BitsPerChannel,
    VerticalViews,
    HorizontalViews,
    MinMaxSampleValues,
    Resolutions,
    Dpi,
    Stack,
    SummaryInfo,
    Metadata,
    /// Any name containing `colorspace` (`colorspace,0-3,0`, …).
    Colorspace,
    /// One metadata field, by its key.
    Field(&'static str),
}

/// The objects with a name of their own.
const NAMED: [(&str, Obj); 16] = [
    ("iip-server", Obj::Server(ServerObj::IipServer)),
    ("iip-opt-comm", Obj::Server(ServerObj::IipOptComm)),
    ("iip-opt-obj", Obj::Server(ServerObj::IipOptObj)),
    ("basic-info", Obj::Image(ImageObj::BasicInfo)),
    ("resolution-number", Obj::Image(ImageObj::ResolutionNumber)),
    ("max-size", Obj::Image(ImageObj::MaxSize)),
    ("tile-size", Obj::Image(ImageObj::TileSize)),
    ("bits-per-channel", Obj::Image(ImageObj::BitsPerChannel)),
    ("vertical-views", Obj::Image(ImageObj::VerticalViews)),
    ("horizontal-views", Obj::Image(ImageObj::HorizontalViews)),
    (
        "min-max-sample-values",
        Obj::Image(ImageObj::MinMaxSampleValues),
    ),
    ("resolutions", Obj::Image(ImageObj::Resolutions)),
    ("dpi", Obj::Image(ImageObj::Dpi)),
    ("stack", Obj::Image(ImageObj::Stack)),
    ("summary-info", Obj::Image(ImageObj::SummaryInfo)),
    ("metadata", Obj::Image(ImageObj::Metadata)),
];

/// The metadata fields `OBJ` answers by key.
const FIELDS: [&str; 17] = [
    "rights",
    "title",
    "description",
    "creator",
    "keywords",
    "comment",
    "last-author",
    "rev-number",
    "edit-time",
    "last-printed",
    "date",
    "last-save-dtm",
    "software",
    "make",
    "model",
    "xmp",
    "scale",
];

/// The line of `OBJ=IIP-opt-comm`.
const OPTIONAL_COMMANDS: &str =
    "IIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW";

/// The line of `OBJ=IIP-opt-obj`.
const OPTIONAL_OBJECTS: &str = "IIP-opt-obj:Horizontal-views Vertical-views Tile-size Bits-per-channel Min-Max-sample-values Resolutions";

/// The line of `OBJ=IIP-server`.
const SERVER_LINE: &str = "IIP-server:3.65";

impl Obj {
    /// The object an `OBJ` argument (lower case) names, if any.
    pub(crate) fn from_name(name: &str) -> Option<Obj> {
        if name.starts_with("iip,") {
            return Some(Obj::Server(ServerObj::Iip));
        }
        if let Some((_, obj)) = NAMED.iter().find(|(n, _)| *n == name) {
            return Some(*obj);
        }
        if name.contains("colorspace") {
            return Some(Obj::Image(ImageObj::Colorspace));
        }
        FIELDS
            .iter()
            .find(|f| **f == name)
            .map(|f| Obj::Image(ImageObj::Field(f)))
    }
}

/// The answer of a request's `OBJ` commands so far.
#[derive(Debug)]
pub(super) struct ObjText {
    /// The lines, each ending in CRLF.
    pub text: Vec<u8>,
    /// The content type (the last object that sets one wins).
    pub mime: &'static str,
    /// Whether `OBJ=IIP,…` asked for the `IIP:` header.
    pub iip_line: bool,
}

impl Default for ObjText {
    fn default() -> Self {
        ObjText {
            text: Vec::new(),
            mime: "application/vnd.netfpx",
            iip_line: false,
        }
    }
}

impl ObjText {
    /// Whether nothing has been asked for.
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty() && !self.iip_line
    }

    fn line(&mut self, l: impl AsRef<[u8]>) {
        self.text.extend_from_slice(l.as_ref());
        self.text.extend_from_slice(b"\r\n");
    }

    /// Answer a server object.
    pub(crate) fn server(&mut self, obj: ServerObj) {
        match obj {
            ServerObj::Iip => self.iip_line = true,
            ServerObj::IipServer => self.line(SERVER_LINE),
            ServerObj::IipOptComm => self.line(OPTIONAL_COMMANDS),
            ServerObj::IipOptObj => self.line(OPTIONAL_OBJECTS),
        }
    }

    /// Answer an image object; `view` for the rotation of `Max-size`, `config` for the
    /// `COPYRIGHT` that stands in for missing rights.
    pub(crate) fn image(&mut self, obj: ImageObj, image: &OpenImage, view: &View, config: &Config) {
        let info = image.info();
        match obj {
            ImageObj::BasicInfo => {
                self.line(SERVER_LINE);
                self.max_size(info, view);
                self.line(format!("Resolution-number:{}", info.num_resolutions()));
                self.colorspace(info);
            }
            ImageObj::ResolutionNumber => {
                self.line(format!("Resolution-number:{}", info.num_resolutions()))
            }
            ImageObj::MaxSize => self.max_size(info, view),
            ImageObj::TileSize => {
                let l = info.levels.first();
                let (tw, th) = l.map(|l| (l.tile_width, l.tile_height)).unwrap_or((0, 0));
                self.line(format!("Tile-size:{tw} {th}"));
            }
            ImageObj::BitsPerChannel => {
                self.line(format!("Bits-per-channel:{}", info.bits_per_sample))
            }
            ImageObj::VerticalViews => {
                let views = join_numbers(&image.vertical_views());
                self.line(format!("Vertical-views:{views}"));
            }
            ImageObj::HorizontalViews => {
                let views = join_numbers(&image.horizontal_views());
                self.line(format!("Horizontal-views:{views}"));
            }
            ImageObj::MinMaxSampleValues => self.line(min_max_line(info)),
            ImageObj::Resolutions => self.line(resolutions_line(info)),
            ImageObj::Dpi => {
                if let Some(l) = dpi_line(info) {
                    self.line(l);
                }
            }
            ImageObj::Stack => {
                if let Some(json) = stack_json(info) {
                    self.line(json);
                    self.mime = "application/json";
                }
            }
            ImageObj::SummaryInfo => {
                for key in ["rights", "description", "creator", "date", "software"] {
                    if let Some(v) = metadata(info, config, key) {
                        self.line(v);
                        self.mime = "text/plain";
                    }
                }
            }
            ImageObj::Metadata => {
                self.line(metadata_json(info, config));
                self.mime = "application/json";
            }
            ImageObj::Colorspace => self.colorspace(info),
            ImageObj::Field(field) => {
                if let Some(v) = metadata(info, config, field) {
                    self.line(v);
                    self.mime = if field == "xmp" {
                        "application/xml"
                    } else {
                        "text/plain"
                    };
                }
            }
        }
    }

    /// `Max-size:w h`, swapped for a view rotated by 90° or 270°.
    fn max_size(&mut self, info: &ImageInfo, view: &View) {
        let (mut w, mut h) = (info.width, info.height);
        if (view.rotation as i64) % 180 == 90 {
            std::mem::swap(&mut w, &mut h);
        }
        self.line(format!("Max-size:{w} {h}"));
    }

    fn colorspace(&mut self, info: &ImageInfo) {
        let tail = match info.colour {
            ColourSpace::CieLab => "1 0 4 3 0 1 2",
            ColourSpace::Grey => "0 0 1 1 0",
            _ => "0 0 3 3 0 1 2",
        };
        self.line(format!(
            "Colorspace,0-{},0:{tail}",
            info.num_resolutions().saturating_sub(1)
        ));
    }
}

/// `Min-Max-sample-values:` with each channel's minimum and maximum (`%g`, spaced as upstream).
fn min_max_line(info: &ImageInfo) -> String {
    let mut l = String::from("Min-Max-sample-values:");
    for (min, max) in &info.min_max {
        l.push_str(&format!(" {} ", fmt_g(*min, 9)));
        l.push_str(&format!(" {} ", fmt_g(*max, 9)));
    }
    if l.ends_with(' ') {
        l.pop();
    }
    l
}

/// `Resolutions:` every level's size, smallest first.
fn resolutions_line(info: &ImageInfo) -> String {
    let sizes: Vec<String> = info
        .levels
        .iter()
        .rev()
        .map(|l| format!("{} {}", l.width, l.height))
        .collect();
    format!("Resolutions:{}", sizes.join(","))
}

/// `DPI:x y` in pixels per inch (centimetre units converted), if the image has a resolution.
fn dpi_line(info: &ImageInfo) -> Option<String> {
    let d = info.dpi?;
    let scale = match d.unit {
        3 => 100.0,
        2 => 1.0 / 0.0254,
        _ => 1.0,
    };
    (d.x != 0.0 && d.y != 0.0).then(|| format!("DPI:{:.6} {:.6}", d.x * scale, d.y * scale))
}

/// The stack pages as a JSON array (id, name, scale), if the image is a stack.
fn stack_json(info: &ImageInfo) -> Option<String> {
    if info.stack.is_empty() {
        return None;
    }
    let mut out = String::from("[ ");
    for (i, p) in info.stack.iter().enumerate() {
        out.push_str(&format!(
            "\n\t{{\n\t\t\"id\": {i},\n\t\t\"name\": \"{}\",\n\t\t\"scale\": {}\n\t}},",
            json_escape(&p.name),
            fmt_g(p.scale, 9)
        ));
    }
    out.pop();
    out.push_str("\n]");
    Some(out)
}

/// Every metadata field but the ICC profile and XMP, as a JSON object (with `COPYRIGHT` as
/// the rights when the image has none).
fn metadata_json(info: &ImageInfo, config: &Config) -> String {
    let mut keys: Vec<String> = info.metadata.keys().cloned().collect();
    if !config.output.copyright.is_empty() && !keys.iter().any(|k| k == "rights") {
        keys.push("rights".into());
        keys.sort();
    }
    let mut out = String::from("{ ");
    for k in keys.iter().filter(|k| *k != "icc" && *k != "xmp") {
        if let Some(v) = metadata(info, config, k) {
            out.push_str(&format!(
                "\n\t\"{}\": \"{}\",",
                json_escape(k),
                json_escape(&String::from_utf8_lossy(&v))
            ));
        }
    }
    out.pop();
    out.push_str("\n}");
    out
}

/// A metadata value, with `COPYRIGHT` standing in for a missing `rights`.
fn metadata(info: &ImageInfo, config: &Config, key: &str) -> Option<Vec<u8>> {
    match info.metadata.get(key) {
        Some(v) if !v.is_empty() => Some(v.clone()),
        _ if key == "rights" && !config.output.copyright.is_empty() => {
            Some(config.output.copyright.as_bytes().to_vec())
        }
        _ => None,
    }
}

/// Numbers separated by single spaces (OBJ view lists).
fn join_numbers(values: &[u32]) -> String {
    let text: Vec<String> = values.iter().map(u32::to_string).collect();
    text.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_object() {
        for (name, obj) in NAMED {
            assert_eq!(Obj::from_name(name), Some(obj), "{name}");
        }
        for field in FIELDS {
            assert_eq!(
                Obj::from_name(field),
                Some(Obj::Image(ImageObj::Field(field)))
            );
        }
        assert_eq!(Obj::from_name("iip,1.0"), Some(Obj::Server(ServerObj::Iip)));
        assert_eq!(
            Obj::from_name("colorspace,0-3,0"),
            Some(Obj::Image(ImageObj::Colorspace))
        );
        assert_eq!(Obj::from_name("foo"), None);
        assert_eq!(Obj::from_name("icc"), None);
    }
}
