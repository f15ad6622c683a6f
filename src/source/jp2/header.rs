//! The file structure around the pixels, parsed once at open: the JP2/JPX boxes (ICC profile,
//! XMP, palette, where the codestream is) and the codestream's main header (size, tiling,
//! components, quality layers, resolution count).
//!
//! OpenJPEG reads these too, but it does not report the ICC profile before a decode, nor the
//! layer and resolution counts without the codestream-info structures; parsing them here keeps
//! the FFI small and lets every size be checked before OpenJPEG allocates anything.

use crate::storage::Blob;

use crate::source::ImageFormat;
use crate::source::error::{Result, SourceError};

/// At most this many boxes are looked at (each is at least 8 bytes, so this only bounds work).
const MAX_BOXES: usize = 4096;
/// At most this many main-header markers.
const MAX_MARKERS: usize = 65536;
/// Largest box payload read into memory (the jp2h super-box, an XMP uuid box).
const MAX_BOX_BYTES: u64 = 16 << 20;
/// Most components accepted.
pub const MAX_COMPONENTS: usize = 256;
/// Most codestream tiles accepted: OpenJPEG sets up about 10 KB of coding parameters per tile
/// (plus about 2 KB per component) for every decode, even of one small window; 32768 tiles
/// cost some 400 MB per decode.
pub const MAX_TILES: u64 = 1 << 15;
/// Most tiles × components.
pub const MAX_TILE_COMPONENTS: u64 = 1 << 17;
/// The fewest bytes one tile takes in a codestream: every tile has at least one tile-part,
/// a SOT marker segment (12 bytes) and SOD (2). A file declaring more tiles than its
/// codestream can hold is refused at open: OpenJPEG would set up every declared tile on every
/// decode (a 300-byte file declaring 13,294 tiles cost 0.4 s per request), so the work it does
/// per decode stays proportional to the file's size, as it is for real images.
pub const MIN_TILE_BYTES: u64 = 14;
/// Most samples in one codestream tile (tile area clipped to the image × components).
pub const MAX_TILE_SAMPLES: u64 = 1 << 32;
/// Most code-blocks in one codestream tile (its samples over the main header's smallest
/// code-block): OpenJPEG sets up every code-block of the tile on every decode, however small
/// the window, about 400 bytes each (measured: a 217×16,777,485 single-tile file of 64×64
/// code-blocks, 1.05 million of them, took 420 MB and 0.5 s per tile request). 2^20 keeps
/// every single-tile image up to [`MAX_TILE_SAMPLES`] with the default 64×64 code-blocks (a
/// 37000² RGB master) and refuses the same sizes cut into tiny code-blocks.
pub const MAX_TILE_CODE_BLOCKS: u64 = 1 << 20;

/// The XMP box's UUID (ISO 16684-1 / Adobe XMP specification part 3).
const XMP_UUID: [u8; 16] = [
    0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC,
];

/// The container: a JP2-family file (`.jp2`, `.jpx`) or a raw codestream (`.j2k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Jp2,
    Codestream,
}

/// One channel as the decoder will deliver it (after any palette has been applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    pub precision: u8,
    pub signed: bool,
}

/// What the boxes say.
#[derive(Debug, Default)]
pub struct Boxes {
    /// Byte offset and length of the codestream (the jp2c payload).
    pub codestream: Option<(u64, u64)>,
    pub icc: Option<Vec<u8>>,
    pub xmp: Option<Vec<u8>>,
    /// Palette column depths (pclr), when a component mapping (cmap) applies them.
    palette: Option<Vec<Channel>>,
    /// Component mapping: (component, mapping type, palette column).
    cmap: Option<Vec<(u16, u8, u8)>>,
    /// Offset of the jp2c box header (where the codestream box starts).
    pub codestream_box: Option<u64>,
    /// File offset of the HEIGHT field of the first jp2h's image header (ihdr) box: OpenJPEG
    /// checks it against SIZ, so a rewritten SIZ needs it rewritten too ([`super::index`]).
    pub ihdr_at: Option<u64>,
    /// How many jp2h boxes precede the codestream.
    pub jp2h_boxes: u32,
}

/// A codestream component (SIZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub precision: u8,
    pub signed: bool,
    pub dx: u8,
    pub dy: u8,
}

/// The codestream's main header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MainHeader {
    /// Image area on the reference grid: [x0, x1) × [y0, y1).
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub tile_x0: u32,
    pub tile_y0: u32,
    pub components: Vec<Component>,
    /// Quality layers (COD).
    pub layers: u16,
    /// Resolutions available for every component: 1 + the fewest DWT levels (COD/COC).
    pub resolutions: u32,
    /// Code-block width and height exponents (log2), the smallest and the largest of COD and
    /// the COCs of the main header.
    pub code_block_min: (u8, u8),
    pub code_block_max: (u8, u8),
    /// The marker segments after SOC, in order: (marker, file offset, bytes with the marker).
    pub markers: Vec<(u8, u64, u64)>,
    /// Where the main header ends: the first SOT (or EOC).
    pub end: u64,
}

impl MainHeader {
    /// Samples in one codestream tile: its area clipped to the image, times the components.
    pub fn tile_samples(&self) -> u64 {
        (self.tile_width.min(self.x1 - self.x0) as u64)
            * (self.tile_height.min(self.y1 - self.y0) as u64)
            * self.components.len() as u64
    }

    pub fn tile_count(&self) -> u64 {
        let nx = (self.x1 - self.tile_x0).div_ceil(self.tile_width) as u64;
        let ny = (self.y1 - self.tile_y0).div_ceil(self.tile_height) as u64;
        nx * ny
    }
}

/// A broken file: `what` is wrong with its structure (iipsrv reports OpenJPEG's header read
/// failing).
pub fn corrupt(what: impl Into<String>) -> SourceError {
    SourceError::corrupt(ImageFormat::Jpeg2000, what)
}

fn read_at(file: &dyn Blob, buf: &mut [u8], offset: u64) -> Result<()> {
    let n = buf.len();
    file.read_exact_at(buf, offset).map_err(|e| {
        SourceError::from_storage(Some(ImageFormat::Jpeg2000), e, |e| {
            corrupt(format!("read of {n} bytes at {offset}")).because(e)
        })
    })
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The code-block size exponents (log2) of a COD or COC: xcb + 2 and ycb + 2, each at most 10
/// and together at most 12 (ISO/IEC 15444-1 A.6.1).
fn code_block(xcb: u8, ycb: u8) -> Result<(u8, u8)> {
    if xcb > 8 || ycb > 8 || xcb + ycb > 8 {
        return Err(corrupt(format!(
            "code-blocks of 2^{} x 2^{}",
            xcb as u32 + 2,
            ycb as u32 + 2
        )));
    }
    Ok((xcb + 2, ycb + 2))
}

/// Detect the container from the first bytes: the JP2 signature box, or SOC + SIZ.
pub fn detect(magic: &[u8]) -> Option<Container> {
    const JP2: [u8; 12] = [
        0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
    ];
    if magic.len() >= 12 && magic[..12] == JP2 {
        Some(Container::Jp2)
    } else if magic.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        Some(Container::Codestream)
    } else {
        None
    }
}

/// A box header: (type, payload offset, end offset).
fn box_at(file: &dyn Blob, pos: u64, end: u64) -> Result<([u8; 4], u64, u64)> {
    if end - pos < 8 {
        return Err(corrupt(format!(
            "box header at {pos} runs past its container"
        )));
    }
    let mut head = [0u8; 16];
    read_at(file, &mut head[..8], pos)?;
    let typ = [head[4], head[5], head[6], head[7]];
    let (payload, len) = match be32(&head) {
        0 => (pos + 8, end - pos),
        1 => {
            if end - pos < 16 {
                return Err(corrupt(format!("XL box header at {pos} is truncated")));
            }
            read_at(file, &mut head[8..16], pos + 8)?;
            let len = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
            (pos + 16, len)
        }
        n => (pos + 8, n as u64),
    };
    if len > end - pos && &typ == b"jp2c" && payload <= end {
        // A truncated codestream: the tiles that are there can still be decoded (the others
        // fail in OpenJPEG's strict mode).
        tracing::debug!("JPEG2000: codestream box truncated to the end of the file");
        return Ok((typ, payload, end));
    }
    if len < payload - pos || len > end - pos {
        return Err(corrupt(format!(
            "box {:?} at {pos} has length {len}, {} bytes are left",
            String::from_utf8_lossy(&typ),
            end - pos
        )));
    }
    Ok((typ, payload, pos + len))
}

fn read_payload(file: &dyn Blob, start: u64, end: u64) -> Result<Vec<u8>> {
    let len = end - start;
    if len > MAX_BOX_BYTES {
        return Err(corrupt(format!("box of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    read_at(file, &mut buf, start)?;
    Ok(buf)
}

/// Walk the top-level boxes of a JP2-family file of `file_len` bytes.
pub fn read_boxes(file: &dyn Blob, file_len: u64) -> Result<Boxes> {
    let mut boxes = Boxes::default();
    let mut pos = 0;
    let mut seen = 0;
    while pos < file_len {
        seen += 1;
        if seen > MAX_BOXES {
            break;
        }
        let (typ, payload, end) = box_at(file, pos, file_len)?;
        match &typ {
            b"jp2h" => {
                let first = boxes.jp2h_boxes == 0 && boxes.codestream.is_none();
                if boxes.codestream.is_none() {
                    boxes.jp2h_boxes += 1;
                }
                let ihdr = parse_jp2h(&read_payload(file, payload, end)?, &mut boxes)?;
                if first {
                    boxes.ihdr_at = ihdr.map(|at| payload + at as u64);
                }
            }
            b"jp2c" if boxes.codestream.is_none() => {
                boxes.codestream = Some((payload, end - payload));
                boxes.codestream_box = Some(pos);
            }
            b"uuid" if boxes.xmp.is_none() && end - payload > 16 => {
                let mut id = [0u8; 16];
                read_at(file, &mut id, payload)?;
                if id == XMP_UUID {
                    boxes.xmp = Some(read_payload(file, payload + 16, end)?);
                }
            }
            _ => {}
        }
        pos = end;
    }
    Ok(boxes)
}

/// A box inside an in-memory payload: (type, payload offset in the payload, its payload).
type SubBox<'a> = ([u8; 4], usize, &'a [u8]);

/// Box headers inside an in-memory payload: (type, payload offset in `data`, payload).
fn sub_boxes(data: &[u8]) -> Result<Vec<SubBox<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < 8 {
            return Err(corrupt("truncated box inside jp2h"));
        }
        let typ = [rest[4], rest[5], rest[6], rest[7]];
        let (head, len) = match be32(rest) {
            0 => (8, rest.len()),
            1 => {
                if rest.len() < 16 {
                    return Err(corrupt("truncated XL box inside jp2h"));
                }
                let len = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
                (16, usize::try_from(len).unwrap_or(usize::MAX))
            }
            n => (8, n as usize),
        };
        if len < head || len > rest.len() {
            return Err(corrupt(format!(
                "box {:?} inside jp2h has length {len}, {} bytes are left",
                String::from_utf8_lossy(&typ),
                rest.len()
            )));
        }
        out.push((typ, pos + head, &rest[head..len]));
        pos += len;
    }
    Ok(out)
}

/// Read the colour, palette and mapping boxes of a jp2h payload; returns the offset in `data`
/// of the first image header's (ihdr) payload, if it has one of the right size.
fn parse_jp2h(data: &[u8], boxes: &mut Boxes) -> Result<Option<usize>> {
    let mut ihdr = None;
    for (typ, at, payload) in sub_boxes(data)? {
        match &typ {
            b"ihdr" if ihdr.is_none() && payload.len() == 14 => ihdr = Some(at),
            // The first colour specification wins (as in OpenJPEG); METH 2 and 3 carry ICC.
            b"colr" if boxes.icc.is_none() && payload.len() > 3 => {
                if matches!(payload[0], 2 | 3) {
                    boxes.icc = Some(payload[3..].to_vec());
                }
            }
            b"pclr" if payload.len() >= 3 => {
                let columns = payload[2] as usize;
                let depths = payload
                    .get(3..3 + columns)
                    .ok_or_else(|| corrupt("short pclr"))?;
                boxes.palette = Some(
                    depths
                        .iter()
                        .map(|&b| Channel {
                            precision: (b & 0x7F) + 1,
                            signed: b & 0x80 != 0,
                        })
                        .collect(),
                );
            }
            b"cmap" => {
                boxes.cmap = Some(
                    payload
                        .chunks_exact(4)
                        .map(|e| (be16(e), e[2], e[3]))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(ihdr)
}

/// Parse the main header of the codestream at `start` (up to `end`).
pub fn read_main_header(file: &dyn Blob, start: u64, end: u64) -> Result<MainHeader> {
    let mut soc = [0u8; 2];
    if end - start < 2 {
        return Err(corrupt("empty codestream"));
    }
    read_at(file, &mut soc, start)?;
    if soc != [0xFF, 0x4F] {
        return Err(corrupt("codestream does not start with SOC"));
    }
    let mut pos = start + 2;
    let mut siz: Option<MainHeader> = None;
    let mut cod_levels: Option<u8> = None;
    let mut coc_levels: Vec<(u16, u8)> = Vec::new();
    let mut code_blocks: Vec<(u8, u8)> = Vec::new();
    let mut markers = Vec::new();
    for _ in 0..MAX_MARKERS {
        if end - pos < 4 {
            return Err(corrupt("main header runs past the codestream"));
        }
        let mut m = [0u8; 4];
        read_at(file, &mut m, pos)?;
        if m[0] != 0xFF {
            return Err(corrupt(format!("no marker at {pos}")));
        }
        let marker = m[1];
        if marker == 0x90 || marker == 0x93 || marker == 0xD9 {
            // SOT, SOD or EOC: the main header is over.
            let mut h = siz.ok_or_else(|| corrupt("no SIZ marker"))?;
            let levels = cod_levels.ok_or_else(|| corrupt("no COD marker"))?;
            let min_levels = (0..h.components.len() as u16)
                .map(|c| {
                    coc_levels
                        .iter()
                        .rev()
                        .find(|(i, _)| *i == c)
                        .map_or(levels, |(_, l)| *l)
                })
                .min()
                .unwrap_or(levels);
            if min_levels > 32 {
                return Err(corrupt(format!("{min_levels} decomposition levels")));
            }
            h.resolutions = min_levels as u32 + 1;
            h.markers = markers;
            h.end = pos;
            let fold = |f: fn(u8, u8) -> u8| {
                code_blocks
                    .iter()
                    .copied()
                    .reduce(|a, b| (f(a.0, b.0), f(a.1, b.1)))
                    .unwrap_or((6, 6))
            };
            h.code_block_min = fold(u8::min);
            h.code_block_max = fold(u8::max);
            let (cw, ch) = h.code_block_min;
            let blocks = h.tile_samples() >> (cw + ch);
            if blocks > MAX_TILE_CODE_BLOCKS {
                return Err(corrupt(format!(
                    "codestream tiles of {blocks} code-blocks of 2^{cw} x 2^{ch}"
                )));
            }
            let room = end - pos;
            if h.tile_count() > room / MIN_TILE_BYTES {
                return Err(corrupt(format!(
                    "{} tiles declared, {room} bytes of tile-parts",
                    h.tile_count()
                )));
            }
            return Ok(h);
        }
        if siz.is_none() && marker != 0x51 {
            return Err(corrupt("SIZ does not follow SOC"));
        }
        let len = be16(&m[2..]) as u64;
        if len < 2 || len > end - pos - 2 {
            return Err(corrupt(format!(
                "marker {marker:#04x} at {pos} has length {len}"
            )));
        }
        markers.push((marker, pos, 2 + len));
        let body = || -> Result<Vec<u8>> {
            let mut b = vec![0u8; len as usize - 2];
            read_at(file, &mut b, pos + 4)?;
            Ok(b)
        };
        match marker {
            0x51 if siz.is_none() => siz = Some(parse_siz(&body()?)?),
            0x51 => return Err(corrupt("second SIZ marker")),
            0x52 => {
                let b = body()?;
                if b.len() < 8 {
                    return Err(corrupt("short COD"));
                }
                let layers = be16(&b[2..]);
                if layers == 0 {
                    return Err(corrupt("COD with zero layers"));
                }
                if let Some(h) = siz.as_mut() {
                    h.layers = layers;
                }
                cod_levels = Some(b[5]);
                code_blocks.push(code_block(b[6], b[7])?);
            }
            0x53 => {
                let b = body()?;
                let wide = siz.as_ref().is_some_and(|h| h.components.len() >= 257);
                let (comp, rest) = if wide {
                    (b.get(..2).map(be16), b.get(2..))
                } else {
                    (b.first().map(|&c| c as u16), b.get(1..))
                };
                match (comp, rest) {
                    (Some(c), Some(r)) if r.len() >= 4 => {
                        coc_levels.push((c, r[1]));
                        code_blocks.push(code_block(r[2], r[3])?);
                    }
                    _ => return Err(corrupt("short COC")),
                }
            }
            _ => {}
        }
        pos += 2 + len;
    }
    Err(corrupt("too many markers in the main header"))
}

fn parse_siz(b: &[u8]) -> Result<MainHeader> {
    if b.len() < 36 {
        return Err(corrupt("short SIZ"));
    }
    let u = |i: usize| be32(&b[i..]);
    let (x1, y1, x0, y0) = (u(2), u(6), u(10), u(14));
    let (tile_width, tile_height, tile_x0, tile_y0) = (u(18), u(22), u(26), u(30));
    let n = be16(&b[34..]) as usize;
    if n == 0 || n > MAX_COMPONENTS || b.len() < 36 + 3 * n {
        return Err(corrupt(format!("SIZ with {n} components")));
    }
    if x1 <= x0 || y1 <= y0 {
        return Err(corrupt(format!("empty image area {x0}..{x1} x {y0}..{y1}")));
    }
    if x1 > i32::MAX as u32 || y1 > i32::MAX as u32 {
        return Err(corrupt(format!("image area {x1} x {y1} is too large")));
    }
    if tile_width == 0 || tile_height == 0 || tile_x0 > x0 || tile_y0 > y0 {
        return Err(corrupt("bad tiling in SIZ"));
    }
    if tile_x0.saturating_add(tile_width) <= x0 || tile_y0.saturating_add(tile_height) <= y0 {
        return Err(corrupt("first tile outside the image"));
    }
    let components = b[36..36 + 3 * n]
        .chunks_exact(3)
        .map(|c| Component {
            precision: (c[0] & 0x7F) + 1,
            signed: c[0] & 0x80 != 0,
            dx: c[1],
            dy: c[2],
        })
        .collect::<Vec<_>>();
    if components.iter().any(|c| c.dx == 0 || c.dy == 0) {
        return Err(corrupt("component with zero subsampling"));
    }
    let h = MainHeader {
        x0,
        y0,
        x1,
        y1,
        tile_width,
        tile_height,
        tile_x0,
        tile_y0,
        components,
        layers: 1,
        resolutions: 1,
        code_block_min: (6, 6),
        code_block_max: (6, 6),
        markers: Vec::new(),
        end: 0,
    };
    let tiles = h.tile_count();
    if tiles > MAX_TILES || tiles * n as u64 > MAX_TILE_COMPONENTS {
        return Err(corrupt(format!("{tiles} tiles of {n} components")));
    }
    let tile_samples = h.tile_samples();
    if tile_samples > MAX_TILE_SAMPLES {
        return Err(corrupt(format!(
            "codestream tiles of {tile_samples} samples"
        )));
    }
    Ok(h)
}

impl Boxes {
    /// The channels the decoder delivers for these components: the component mapping of a
    /// palette, or the components themselves.
    pub fn channels(&self, components: &[Component]) -> Result<Vec<Channel>> {
        let direct = |c: &Component| Channel {
            precision: c.precision,
            signed: c.signed,
        };
        match (&self.palette, &self.cmap) {
            (Some(palette), Some(cmap)) => cmap
                .iter()
                .map(|&(cmp, mtyp, pcol)| match mtyp {
                    0 => components
                        .get(cmp as usize)
                        .map(direct)
                        .ok_or_else(|| corrupt("cmap names a missing component")),
                    _ => palette
                        .get(pcol as usize)
                        .copied()
                        .ok_or_else(|| corrupt("cmap names a missing palette column")),
                })
                .collect(),
            _ => Ok(components.iter().map(direct).collect()),
        }
    }
}
