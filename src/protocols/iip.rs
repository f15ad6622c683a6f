//! The IIP protocol: `&`-separated commands run left to right over one request state
//! (`protocols-iip.md`). Parameter commands fill the [`View`]; `FIF` opens the image; `OBJ`
//! appends metadata lines; output commands produce the response.
//!
//! The first output command's response is the answer: upstream appends the output of later
//! commands to the same body, which no client can use (docs/compatibility.md).

use crate::config::env::{atof, atoi};
use crate::encode::OutputFormat;
use crate::error::{Error, Result};
use crate::http::Request;
use crate::http::{Response, date};
use crate::image::Samples;
use crate::open_image::{OpenImage, open_image};
use crate::render;
use crate::shared::Shared;
use crate::source::ImageInfo;
use crate::source::resolve;
use crate::text::{fmt_g, json_escape, xml_escape};
use crate::view::{ColourConversion, ColourMap, Contrast, Gamma, View};

/// The state of one IIP request.
pub struct Session<'a> {
    pub shared: &'a Shared,
    pub req: &'a Request,
    /// The raw request string.
    pub request_string: &'a [u8],
    /// Query-mode POST (region exports become `attachment`).
    pub post: bool,
    pub image: Option<OpenImage>,
    pub view: View,
    /// Pending OBJ lines (each ends in CRLF).
    text: Vec<u8>,
    mime: &'static str,
    iip_line: bool,
    /// Pending `Error/` lines.
    errors: Vec<u8>,
}

/// What a command did.
enum Step {
    Continue,
    /// Stop and answer with this response.
    Answer(Response),
    /// Stop (an error line was added that ends processing).
    Stop,
}

/// Append an IIP error line: `Error/<L>:<code> <arg>` CRLF with `L = len(code) + len(arg) + 1`.
/// Upstream truncates the line to 31 bytes (a bug); we send it whole.
pub fn error_line(out: &mut Vec<u8>, code: &str, arg: &[u8]) {
    out.extend_from_slice(format!("Error/{}:{code} ", code.len() + arg.len() + 1).as_bytes());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Run an IIP command string.
pub fn run(shared: &Shared, req: &Request, request_string: &[u8], post: bool) -> Response {
    let mut s = Session {
        shared,
        req,
        request_string,
        post,
        image: None,
        view: View {
            vertical: None,
            ..View::default()
        },
        text: Vec::new(),
        mime: "application/vnd.netfpx",
        iip_line: false,
        errors: Vec::new(),
    };
    let commands: Vec<(&[u8], &[u8])> = tokenise(request_string).collect();
    let n = commands.len();
    for (i, (name, arg)) in commands.into_iter().enumerate() {
        tracing::debug!(
            "[{}/{n}]: Command / Argument is {} : {}",
            i + 1,
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(arg)
        );
        match s.command(name, arg) {
            Ok(Step::Continue) => {}
            Ok(Step::Answer(r)) => return r,
            Ok(Step::Stop) => break,
            Err(e) => return super::error::error_response(&shared.headers(), &e),
        }
    }
    s.finish()
}

/// Split a request string into (command, argument) pairs as iipsrv does.
pub fn tokenise(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .filter_map(|piece| match piece.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, arg) = (&piece[..eq], &piece[eq + 1..]);
                (!name.is_empty() && !arg.is_empty()).then_some((name, arg))
            }
            None => Some((piece, piece)),
        })
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

impl<'a> Session<'a> {
    fn headers(&self) -> &crate::http::HeaderDefaults {
        &self.shared.headers()
    }

    /// Run one command.
    fn command(&mut self, name: &[u8], arg: &[u8]) -> Result<Step> {
        let lower = name.to_ascii_lowercase();
        match lower.as_slice() {
            b"fif" => self.fif(arg),
            b"obj" => Ok(self.obj(arg)),
            b"iiif" => self.protocol(|s| super::iiif::handle(s, arg)),
            b"zoomify" => self.protocol(|s| super::zoomify::handle(s, arg)),
            b"deepzoom" => self.protocol(|s| super::deepzoom::handle(s, arg)),
            b"jtl" | b"ptl" | b"wtl" | b"atl" | b"ttl" | b"jtls" | b"til" | b"cvt" | b"spectra"
            | b"pfl" => {
                if self.image.is_none() {
                    error_line(&mut self.errors, "1 3", b"");
                    return Ok(Step::Stop);
                }
                match lower.as_slice() {
                    b"jtl" => self.tile_command(arg, OutputFormat::Jpeg),
                    b"ptl" => self.tile_command(arg, OutputFormat::Png),
                    b"wtl" => self.tile_command(arg, OutputFormat::Webp),
                    b"atl" => self.tile_command(arg, OutputFormat::Avif),
                    b"ttl" => self.tile_command(arg, OutputFormat::Tiff),
                    b"jtls" => self.jtls(arg),
                    b"til" => self.til(arg),
                    b"cvt" => self.cvt(arg),
                    b"spectra" => self.spectra(arg),
                    _ => self.pfl(arg),
                }
            }
            b"icc" => Ok(Step::Continue),
            b"minmax" if self.image.is_none() => {
                // Upstream crashes here; we answer as for any command that needs an image.
                error_line(&mut self.errors, "1 3", b"");
                Ok(Step::Stop)
            }
            _ if self.parameter(&lower, arg) => Ok(Step::Continue),
            _ => {
                tracing::info!("Unsupported command: {}", String::from_utf8_lossy(name));
                error_line(&mut self.errors, "2 2", name);
                Ok(Step::Continue)
            }
        }
    }

    fn protocol(&mut self, f: impl FnOnce(&mut Self) -> Result<Response>) -> Result<Step> {
        f(self).map(Step::Answer)
    }

    /// Parameter commands (`protocols-iip.md` §8). Returns false for an unknown name.
    fn parameter(&mut self, name: &[u8], arg: &[u8]) -> bool {
        let v = &mut self.view;
        let a = text(arg);
        match name {
            b"qlt" => {
                let lower = a.to_ascii_lowercase();
                let q = match lower.split_once(':') {
                    Some((comp, q)) => {
                        v.tiff_compression = Some(match comp {
                            "lzw" => 1,
                            "deflate" => 2,
                            "jpeg" => 3,
                            "webp" => 4,
                            "zstd" => 5,
                            _ => 0,
                        });
                        q.to_string()
                    }
                    None => lower,
                };
                v.quality = Some(atoi(&q).value.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
            }
            b"wid" => v.width = u32::try_from(atoi(&a).value).ok().filter(|w| *w > 0),
            b"hei" => v.height = u32::try_from(atoi(&a).value).ok().filter(|h| *h > 0),
            b"rgn" => {
                let vals: Vec<f64> = a
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .take(4)
                    .map(|t| atof(t).value)
                    .collect();
                if vals.len() == 4 && vals[2] > 0.0 && vals[3] > 0.0 {
                    let c = |x: f64| x.clamp(0.0, 1.0);
                    v.region = Some(crate::view::Region::Fraction {
                        x: c(vals[0]),
                        y: c(vals[1]),
                        w: c(vals[2]),
                        h: c(vals[3]),
                    });
                }
            }
            b"rot" => {
                let (flip, rest) = match a.strip_prefix('!') {
                    Some(r) => (true, r),
                    None => (false, a.as_str()),
                };
                v.flip = flip;
                v.rotation = atof(rest).value;
            }
            b"sds" => {
                let mut parts = a.split(',');
                v.horizontal = atoi(parts.next().unwrap_or("")).value.max(0) as u32;
                v.vertical = Some(
                    parts
                        .next()
                        .map(|y| atoi(y).value.max(0) as u32)
                        .unwrap_or(0),
                );
            }
            b"minmax" => {
                if let Some((c, range)) = a.split_once(':') {
                    if let Some((min, max)) = range.split_once(',') {
                        let (min, max) = (atof(min).value as f32, atof(max).value as f32);
                        let channels = self
                            .image
                            .as_ref()
                            .map(|i| i.info().channels as usize)
                            .unwrap_or(0);
                        if c == "-" {
                            for ch in 0..channels {
                                v.min_max.push((ch, min, max));
                            }
                        } else {
                            let ch = atoi(c).value;
                            if ch >= 0 && (ch as usize) < channels {
                                v.min_max.push((ch as usize, min, max));
                            }
                        }
                    }
                }
            }
            b"cnt" => {
                v.contrast = Some(match a.to_ascii_lowercase().as_str() {
                    "eq" | "equalization" => Contrast::Equalize,
                    "st" | "stretch" => Contrast::Stretch,
                    other => Contrast::Factor(atof(other).value as f32),
                })
            }
            b"gam" => {
                v.gamma = Some(match a.to_ascii_lowercase().as_str() {
                    "log" | "logarithm" => Gamma::Log,
                    other => Gamma::Value(atof(other).value as f32),
                })
            }
            b"inv" => v.invert = true,
            b"cmp" => {
                v.colour_map = match a.to_ascii_lowercase().as_str() {
                    "hot" => Some(ColourMap::Hot),
                    "cold" => Some(ColourMap::Cold),
                    "jet" => Some(ColourMap::Jet),
                    "blue" => Some(ColourMap::Blue),
                    "green" => Some(ColourMap::Green),
                    "red" => Some(ColourMap::Red),
                    _ => None,
                }
            }
            b"col" => match a.to_ascii_lowercase().as_str() {
                "grey" | "gray" => v.colour = Some(ColourConversion::Grey),
                "binary" => v.colour = Some(ColourConversion::Binary),
                _ => {}
            },
            b"shd" => {
                let vals: Vec<i64> = a
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| atoi(t).value)
                    .collect();
                if vals.len() >= 2 {
                    v.shade = Some((vals[0] as i32, vals[1] as i32));
                }
            }
            b"lyr" => v.layers = atoi(&a).value.clamp(0, u32::MAX as i64) as u32,
            b"ctw" => {
                let decoded = text(&resolve::url_decode(arg).0);
                v.twist = colour_twist(bracketed(&decoded));
            }
            b"cnv" => {
                let decoded = text(&resolve::url_decode(arg).0).to_ascii_lowercase();
                v.convolution = convolution_kernel(bracketed(&decoded));
            }
            _ => return false,
        }
        true
    }

    /// `JTL=r,t` and friends (§6.2): one tile with Content-Length.
    fn tile_command(&mut self, arg: &[u8], format: OutputFormat) -> Result<Step> {
        let a = text(arg);
        let (r, t) = match a.split_once(',') {
            Some((r, t)) => (atoi(r).value, atoi(t).value),
            // A missing `,t` reuses the resolution text as the tile (upstream quirk).
            None => (atoi(&a).value, atoi(&a).value),
        };
        let (Ok(r), Ok(t)) = (u32::try_from(r), u32::try_from(t)) else {
            return Err(Error::invalid(format!(
                "JTL :: Invalid resolution/tile number: {r},{t}"
            )));
        };
        let image = self.image.clone().expect("checked by the caller");
        let bytes = render::tile(self.shared, &image, &self.view, r, t, format)?;
        Ok(Step::Answer(Response::content(
            self.headers(),
            format.mime(),
            &image.last_modified,
            true,
            None,
            bytes,
        )))
    }

    /// `CVT=format` (§6.1): the view as one image, with a Content-Disposition file name.
    fn cvt(&mut self, arg: &[u8]) -> Result<Step> {
        let a = text(arg).to_ascii_lowercase();
        let format = match a.as_str() {
            "jpeg" | "jpg" => OutputFormat::Jpeg,
            "png" => OutputFormat::Png,
            "webp" => OutputFormat::Webp,
            "avif" => OutputFormat::Avif,
            "tiff" => OutputFormat::Tiff,
            other => {
                tracing::info!("CVT :: Unsupported request: '{other}'. Sending JPEG.");
                OutputFormat::Jpeg
            }
        };
        let image = self.image.clone().expect("checked by the caller");
        let r = render::region(self.shared, &image, &self.view, format)?;
        tracing::debug!(
            "CVT :: {}x{} from resolution {} region {},{} {}x{}",
            r.width,
            r.height,
            r.plan.resolution,
            r.plan.x,
            r.plan.y,
            r.plan.w,
            r.plan.h
        );
        let disposition = render::disposition(&image.key, format, r.width, r.height, self.post);
        Ok(Step::Answer(Response::content(
            self.headers(),
            format.mime(),
            &image.last_modified,
            false,
            Some(disposition),
            r.bytes,
        )))
    }

    /// The bands of `SPECTRA` and `PFL`: the horizontal views (a sequence's angles, a stack's
    /// pages, or the single view 0), with their labels (the stack page's name, else the view
    /// number) and scale factors (stack pages only).
    fn bands(image: &OpenImage) -> Vec<(u32, String, f64)> {
        let stack = &image.info().stack;
        image
            .horizontal_views()
            .into_iter()
            .map(
                |h| match stack.get(h as usize).filter(|_| image.sequence.is_none()) {
                    Some(p) if !p.name.is_empty() => (h, p.name.clone(), p.scale),
                    Some(p) => (h, h.to_string(), p.scale),
                    None => (h, h.to_string(), 1.0),
                },
            )
            .collect()
    }

    /// `SPECTRA=r,t,x,y` (§6.5): the first-channel value at one tile pixel for every band.
    fn spectra(&mut self, arg: &[u8]) -> Result<Step> {
        let a = text(arg);
        let mut v = a.split(',').map(|t| atoi(t).value);
        let mut next = || v.next().unwrap_or(0);
        let (r, t, x, y) = (next(), next(), next(), next());
        let image = self.image.clone().expect("checked by the caller");
        let info = image.info();
        let level = u32::try_from(r)
            .ok()
            .and_then(|r| info.level(r).copied())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "SPECTRA :: Invalid resolution/tile number: {r},{t}"
                ))
            })?;
        if t < 0 || t as u64 >= level.tile_count() {
            return Err(Error::not_found(format!(
                "TPTImage :: Asked for non-existent tile: {t}"
            )));
        }
        if x < 0 || y < 0 || x >= level.tile_width as i64 || y >= level.tile_height as i64 {
            return Err(Error::bad_request(
                "SPECTRA :: Error: x,y coordinates outside of tile boundaries",
            ));
        }
        let (r, t, x, y) = (r as u32, t as u32, x as usize, y as usize);
        let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<spectra>\n");
        for (page, name, _) in Self::bands(&image) {
            let view = View {
                horizontal: page,
                ..self.view.clone()
            };
            let tile = render::raw_tile(self.shared, &image, &view, r, t)?;
            // An edge tile is narrower than the nominal size: the point may lie outside it.
            if x >= tile.width as usize || y >= tile.height as usize {
                break;
            }
            let i = (y * tile.width as usize + x) * tile.channels as usize;
            let value = match &tile.samples {
                Samples::U8(s) => s[i] as f64 / 255.0,
                Samples::U16(s) => s[i] as f64 / 65535.0,
                Samples::U32(s) => s[i] as f64,
                Samples::I32(s) => s[i] as f64,
                Samples::F32(s) => s[i] as f64,
            };
            body.push_str(&format!(
                "\t<point>\n\t\t<wavelength>{}</wavelength>\n\t\t<reflectance>{value:.6}</reflectance>\n\t</point>\n",
                xml_escape(&name)
            ));
        }
        body.push_str("</spectra>");
        Ok(Step::Answer(Response::content(
            self.headers(),
            "xml",
            &image.last_modified,
            false,
            None,
            body,
        )))
    }

    /// `PFL=r:x1,y1[-x2,y2]` (§6.6): the values along a horizontal or vertical line (or at one
    /// point), all channels, for every band, as JSON.
    fn pfl(&mut self, arg: &[u8]) -> Result<Step> {
        let a = text(arg);
        let bad = || Error::invalid(format!("PFL :: Invalid argument: {a}"));
        let (r, points) = a.split_once(':').ok_or_else(bad)?;
        let r = atoi(r).value;
        let point = |p: &str| -> (i64, i64) {
            let (x, y) = p.split_once(',').unwrap_or((p, ""));
            (atoi(x).value, atoi(y).value)
        };
        // The `-` between the points follows a digit (a leading `-` is a negative number).
        let dash = points
            .char_indices()
            .skip(1)
            .find(|&(i, c)| c == '-' && points.as_bytes()[i - 1].is_ascii_digit())
            .map(|(i, _)| i);
        let ((x1, y1), (x2, y2)) = match dash {
            Some(i) => (point(&points[..i]), point(&points[i + 1..])),
            None => (point(points), point(points)),
        };
        let image = self.image.clone().expect("checked by the caller");
        let info = image.info();
        let level = u32::try_from(r)
            .ok()
            .and_then(|r| info.level(r).copied())
            .ok_or_else(|| Error::invalid(format!("PFL :: Invalid resolution: {r}")))?;
        let (lw, lh) = (level.width as i64, level.height as i64);
        if [x1, x2].iter().any(|&v| v < 0 || v > lw) || [y1, y2].iter().any(|&v| v < 0 || v > lh) {
            return Err(Error::invalid(format!(
                "PFL :: Invalid coordinates: {x1},{y1}-{x2},{y2}"
            )));
        }
        let (w, h) = if x2 > x1 {
            (x2 - x1, 1)
        } else if y2 > y1 {
            (1, y2 - y1)
        } else {
            (1, 1)
        };
        if x1 + w > lw || y1 + h > lh {
            return Err(Error::invalid(format!(
                "PFL :: Invalid coordinates: {x1},{y1}-{x2},{y2}"
            )));
        }
        let rect = (x1 as u32, y1 as u32, w as u32, h as u32);
        let bands = Self::bands(&image);
        // One band of a single image is a plain array; a stack or several bands an object.
        let object = !info.stack.is_empty() || bands.len() > 1;
        let mut lines = Vec::with_capacity(bands.len());
        for (page, name, scale) in &bands {
            let view = View {
                horizontal: *page,
                ..self.view.clone()
            };
            let region = render::read_region(self.shared, &image, &view, r as u32, rect)?;
            let scale = *scale;
            let int = |v: f64| fmt_g(v * scale, 6);
            let values: Vec<String> = match &region.samples {
                Samples::U8(s) => s.iter().map(|&v| int(v as f64)).collect(),
                Samples::U16(s) => s.iter().map(|&v| int(v as f64)).collect(),
                Samples::U32(s) => s.iter().map(|&v| int(v as f64)).collect(),
                Samples::I32(s) => s.iter().map(|&v| int(v as f64)).collect(),
                Samples::F32(s) => s
                    .iter()
                    .map(|&v| format!("{:.9}", v as f64 * scale))
                    .collect(),
            };
            lines.push((name.clone(), values.join(",")));
        }
        let body = if !object {
            format!("{{\n\t\"profile\": [{}]\n}}", lines[0].1)
        } else {
            let entries: Vec<String> = lines
                .iter()
                .map(|(n, v)| format!("\t\t\"{}\": [{v}]", json_escape(n)))
                .collect();
            format!("{{\n\t\"profile\": {{\n{}\n\t}}\n}}", entries.join(",\n"))
        };
        Ok(Step::Answer(Response::content(
            self.headers(),
            "json",
            &image.last_modified,
            false,
            None,
            body,
        )))
    }

    /// `JTLS=x,r,t,y` (§6.3): set the sequence angles, then as JTL.
    fn jtls(&mut self, arg: &[u8]) -> Result<Step> {
        let a = text(arg);
        let v: Vec<i64> = a
            .split(',')
            .filter(|t| !t.is_empty())
            .take(4)
            .map(|t| atoi(t).value)
            .collect();
        if v.len() < 4 {
            return Ok(Step::Continue);
        }
        self.view.horizontal = v[0].max(0) as u32;
        self.view.vertical = Some(v[3].max(0) as u32);
        self.tile_command(format!("{},{}", v[1], v[2]).as_bytes(), OutputFormat::Jpeg)
    }

    /// `TIL=r,s[-e]` (§6.4): the legacy multi-tile stream, column-major.
    fn til(&mut self, arg: &[u8]) -> Result<Step> {
        const MAX_TILES: u64 = 4096;
        let a = text(arg);
        let (r, range) = a.split_once(',').unwrap_or((a.as_str(), "0"));
        let r = atoi(r).value;
        let (s, e) = match range.split_once('-') {
            Some((s, e)) => (atoi(s).value, atoi(e).value),
            None => (atoi(range).value, atoi(range).value),
        };
        let e = e.max(s);
        let image = self.image.clone().expect("checked by the caller");
        let info = image.info();
        let level = u32::try_from(r)
            .ok()
            .and_then(|r| info.level(r).copied())
            .ok_or_else(|| Error::invalid(format!("TIL :: Invalid resolution: {r}")))?;
        let (ntlx, _) = level.tiles();
        if s < 0 || ntlx == 0 || e as u64 >= level.tile_count() {
            return Err(Error::not_found(format!(
                "TPTImage :: Asked for non-existent tile: {e}"
            )));
        }
        let ntlx = ntlx as i64;
        let (mut x0, mut x1) = (s % ntlx, e % ntlx);
        if x1 < x0 {
            std::mem::swap(&mut x0, &mut x1);
        }
        let (y0, y1) = (s / ntlx, e / ntlx);
        if ((x1 - x0 + 1) * (y1 - y0 + 1)) as u64 > MAX_TILES {
            return Err(Error::bad_request(format!(
                "TIL :: more than {MAX_TILES} tiles requested"
            )));
        }
        let mut body = Vec::new();
        let compression: &[u8] = if info.bits_per_sample <= 8 {
            &[2, 0, 0, 0]
        } else {
            &[3, 0, 0, 0]
        };
        for x in x0..=x1 {
            for y in y0..=y1 {
                let n = (y * ntlx + x) as u32;
                let jpeg = render::tile(
                    self.shared,
                    &image,
                    &self.view,
                    r as u32,
                    n,
                    OutputFormat::Jpeg,
                )?;
                body.extend_from_slice(format!("Tile,{r},{n},0/{}:", jpeg.len() + 8).as_bytes());
                body.extend_from_slice(compression);
                body.extend_from_slice(&[0, 0x11, 0, 0]);
                body.extend_from_slice(&jpeg);
                body.extend_from_slice(b"\r\n");
            }
        }
        Ok(Step::Answer(Response::til(
            self.headers(),
            &image.last_modified,
            body,
        )))
    }

    /// `FIF`: locate and open the image, answer 304 when If-Modified-Since matches.
    fn fif(&mut self, arg: &[u8]) -> Result<Step> {
        let key = resolve::image_key(arg);
        tracing::trace!(
            "FIF :: URL decoding/filtering: {} => {}",
            String::from_utf8_lossy(arg),
            String::from_utf8_lossy(&key)
        );
        let image = open_image(self.shared, &key)?;
        if let Some(ims) = self.req.param("HTTP_IF_MODIFIED_SINCE") {
            let ims = String::from_utf8_lossy(ims);
            match date::parse_http_date(&ims) {
                Some(t) if t == date::whole_seconds(image.located.mtime) => {
                    tracing::debug!("FIF :: Unmodified content");
                    return Ok(Step::Answer(Response::header_only(self.headers(), 304)));
                }
                Some(_) => tracing::debug!("FIF :: Content modified since requested time"),
                None => tracing::info!("FIF :: Error creating timestamp"),
            }
        }
        self.image = Some(image);
        Ok(Step::Continue)
    }

    /// A metadata value, with `COPYRIGHT` standing in for a missing `rights`.
    fn metadata(&self, key: &str) -> Option<Vec<u8>> {
        let info = self.image.as_ref()?.info();
        match info.metadata.get(key) {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ if key == "rights" && !self.shared.config().copyright.is_empty() => {
                Some(self.shared.config().copyright.as_bytes().to_vec())
            }
            _ => None,
        }
    }

    fn line(&mut self, l: impl AsRef<[u8]>) {
        self.text.extend_from_slice(l.as_ref());
        self.text.extend_from_slice(b"\r\n");
    }

    /// `OBJ` (`protocols-iip.md` §5).
    fn obj(&mut self, arg: &[u8]) -> Step {
        let a = text(arg).to_ascii_lowercase();
        if a.starts_with("iip,") {
            self.iip_line = true;
            return Step::Continue;
        }
        match a.as_str() {
            "iip-server" => {
                self.line("IIP-server:3.65");
                return Step::Continue;
            }
            "iip-opt-comm" => {
                self.line("IIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW");
                return Step::Continue;
            }
            "iip-opt-obj" => {
                self.line("IIP-opt-obj:Horizontal-views Vertical-views Tile-size Bits-per-channel Min-Max-sample-values Resolutions");
                return Step::Continue;
            }
            _ => {}
        }
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
        let known = matches!(
            a.as_str(),
            "basic-info"
                | "resolution-number"
                | "max-size"
                | "tile-size"
                | "bits-per-channel"
                | "vertical-views"
                | "horizontal-views"
                | "min-max-sample-values"
                | "resolutions"
                | "dpi"
                | "stack"
                | "summary-info"
                | "metadata"
        ) || a.contains("colorspace")
            || FIELDS.contains(&a.as_str());
        if !known {
            error_line(&mut self.errors, "3 2", a.as_bytes());
            return Step::Continue;
        }
        let Some(image) = self.image.clone() else {
            error_line(&mut self.errors, "1 3", a.as_bytes());
            return Step::Stop;
        };
        let info = image.info();
        match a.as_str() {
            "basic-info" => {
                self.line("IIP-server:3.65");
                self.max_size(info);
                self.line(format!("Resolution-number:{}", info.num_resolutions()));
                self.colorspace(info, "colorspace");
            }
            "resolution-number" => {
                self.line(format!("Resolution-number:{}", info.num_resolutions()))
            }
            "max-size" => self.max_size(info),
            "tile-size" => {
                let l = info.levels.first();
                let (tw, th) = l.map(|l| (l.tile_width, l.tile_height)).unwrap_or((0, 0));
                self.line(format!("Tile-size:{tw} {th}"));
            }
            "bits-per-channel" => self.line(format!("Bits-per-channel:{}", info.bits_per_sample)),
            "vertical-views" => {
                let views = image.vertical_views();
                self.line(format!("Vertical-views:{}", join_numbers(&views)));
            }
            "horizontal-views" => {
                let views = image.horizontal_views();
                self.line(format!("Horizontal-views:{}", join_numbers(&views)));
            }
            "min-max-sample-values" => {
                let mut l = String::from("Min-Max-sample-values:");
                for (min, max) in &info.min_max {
                    l.push_str(&format!(" {} ", fmt_g(*min, 9)));
                    l.push_str(&format!(" {} ", fmt_g(*max, 9)));
                }
                if l.ends_with(' ') {
                    l.pop();
                }
                self.line(l);
            }
            "resolutions" => {
                let sizes: Vec<String> = info
                    .levels
                    .iter()
                    .rev()
                    .map(|l| format!("{} {}", l.width, l.height))
                    .collect();
                self.line(format!("Resolutions:{}", sizes.join(",")));
            }
            "dpi" => {
                if let Some(d) = info.dpi {
                    let scale = match d.unit {
                        3 => 100.0,
                        2 => 1.0 / 0.0254,
                        _ => 1.0,
                    };
                    if d.x != 0.0 && d.y != 0.0 {
                        self.line(format!("DPI:{:.6} {:.6}", d.x * scale, d.y * scale));
                    }
                }
            }
            "stack" => {
                if !info.stack.is_empty() {
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
                    self.line(out);
                    self.mime = "application/json";
                }
            }
            "summary-info" => {
                for key in ["rights", "description", "creator", "date", "software"] {
                    if let Some(v) = self.metadata(key) {
                        self.line(v);
                        self.mime = "text/plain";
                    }
                }
            }
            "metadata" => {
                let mut keys: Vec<String> = info.metadata.keys().cloned().collect();
                if !self.shared.config().copyright.is_empty() && !keys.iter().any(|k| k == "rights")
                {
                    keys.push("rights".into());
                    keys.sort();
                }
                let mut out = String::from("{ ");
                for k in keys.iter().filter(|k| *k != "icc" && *k != "xmp") {
                    if let Some(v) = self.metadata(k) {
                        out.push_str(&format!(
                            "\n\t\"{}\": \"{}\",",
                            json_escape(k),
                            json_escape(&String::from_utf8_lossy(&v))
                        ));
                    }
                }
                out.pop();
                out.push_str("\n}");
                self.line(out);
                self.mime = "application/json";
            }
            other if other.contains("colorspace") => self.colorspace(info, other),
            field => {
                if let Some(v) = self.metadata(field) {
                    self.line(v);
                    self.mime = if field == "xmp" {
                        "application/xml"
                    } else {
                        "text/plain"
                    };
                }
            }
        }
        Step::Continue
    }

    fn max_size(&mut self, info: &ImageInfo) {
        let (mut w, mut h) = (info.width, info.height);
        if (self.view.rotation as i64) % 180 == 90 {
            std::mem::swap(&mut w, &mut h);
        }
        self.line(format!("Max-size:{w} {h}"));
    }

    fn colorspace(&mut self, info: &ImageInfo, _arg: &str) {
        use crate::image::ColourSpace;
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

    /// After the last command: the pending text or error response.
    fn finish(mut self) -> Response {
        if self.text.is_empty() && self.errors.is_empty() && !self.iip_line {
            error_line(&mut self.errors, "2 1", self.request_string);
        }
        let d = self.shared.headers().clone();
        if !self.errors.is_empty() {
            return Response::iip_error(&d, self.mime, &self.errors);
        }
        let lm = self.image.as_ref().map(|i| i.last_modified.clone());
        Response::iip_text(
            &d,
            self.mime,
            lm.as_deref(),
            self.iip_line,
            std::mem::take(&mut self.text),
        )
    }
}

/// Numbers separated by single spaces (OBJ view lists).
fn join_numbers(values: &[u32]) -> String {
    let text: Vec<String> = values.iter().map(u32::to_string).collect();
    text.join(" ")
}

fn bracketed(s: &str) -> &str {
    match (s.find('['), s.find(']')) {
        (Some(a), Some(b)) if b > a => &s[a + 1..b],
        _ => s,
    }
}

/// A named or explicit convolution kernel (`CNV`, `pipeline-and-encoding.md` §3.9); `None` if
/// not a named kernel or an odd square of at most 25 numbers.
fn convolution_kernel(s: &str) -> Option<Vec<f32>> {
    if let Some(k) = crate::pipeline::convolve::named(s.trim()) {
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
    crate::pipeline::convolve::side(&vals).map(|_| vals)
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
    use crate::config::Config;

    fn run_str(q: &str) -> Response {
        let shared = Shared::new(Config::default());
        let req = Request::from_pairs([("QUERY_STRING", q), ("REQUEST_METHOD", "GET")]);
        run(&shared, &req, q.as_bytes(), false)
    }

    #[test]
    fn tokenising_rules() {
        let t: Vec<_> = tokenise(b"&&FIF=a&OBJ=Max-size=3&INV&=x&OBJ=&").collect();
        assert_eq!(
            t,
            vec![
                (&b"FIF"[..], &b"a"[..]),
                (&b"OBJ"[..], &b"Max-size=3"[..]),
                (&b"INV"[..], &b"INV"[..]),
            ]
        );
    }

    #[test]
    fn error_lines() {
        let mut v = Vec::new();
        error_line(&mut v, "3 2", b"foo");
        assert_eq!(v, b"Error/7:3 2 foo\r\n");
        let mut v = Vec::new();
        error_line(&mut v, "1 3", b"");
        assert_eq!(v, b"Error/4:1 3 \r\n");
    }

    #[test]
    fn unknown_obj_and_command() {
        let r = run_str("OBJ=foo");
        assert_eq!(r.status(), 400);
        assert_eq!(r.body.as_ref(), b"Error/7:3 2 foo\r\n");
        let r = run_str("FOO=bar");
        assert_eq!(r.body.as_ref(), b"Error/7:2 2 FOO\r\n");
        let r = run_str("OBJ=Max-size");
        assert_eq!(r.body.as_ref(), b"Error/12:1 3 max-size\r\n");
        let r = run_str("JTL=0,0");
        assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n");
        let r = run_str("MINMAX=1:0,100&FIF=x.tif&OBJ=Max-size");
        assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n");
        let r = run_str("ICC=1");
        assert_eq!(r.body.as_ref(), b"Error/9:2 1 ICC=1\r\n");
    }

    #[test]
    fn server_objects_need_no_image() {
        let r = run_str("OBJ=IIP,1.0&OBJ=IIP-server&OBJ=iip-opt-comm");
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("IIP"), Some("1.3"));
        assert_eq!(r.header("Last-Modified"), None);
        assert_eq!(
            r.body.as_ref(),
            &b"IIP-server:3.65\r\nIIP-opt-comm:CVT CNT QLT JTL JTLS WID HEI RGN MINMAX SHD CMP INV CTW\r\n"[..]
        );
        let r = run_str("OBJ=IIP,1.0");
        assert_eq!(r.status(), 200);
        assert!(r.body.is_empty());
    }

    #[test]
    fn missing_image_is_404_without_path() {
        let r = run_str("FIF=/definitely/not/here.tif&OBJ=Max-size");
        assert_eq!(r.status(), 404);
        assert_eq!(
            r.body.as_ref(),
            b"/definitely/not/here.tif is neither a file nor part of an image sequence"
        );
    }

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

    #[test]
    fn cvt_spectra_pfl_need_an_image() {
        for q in ["CVT=jpeg", "SPECTRA=0,0,0,0", "PFL=0:0,0"] {
            let r = run_str(q);
            assert_eq!(r.body.as_ref(), b"Error/4:1 3 \r\n", "{q}");
        }
    }
}
