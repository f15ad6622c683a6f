//! The tile-part index of a codestream and the cut-down codestreams built from it, so that a
//! decode reads and sets up only the codestream tiles under its window.
//!
//! # Why
//!
//! Given the whole file, OpenJPEG (2.5) sets up coding parameters for every tile of the image
//! on every decode (about 10 KB each, zeroed) and reads every tile-part header to the end of the
//! codestream, even to decode one tile: on a 5003×3701 file with 300 tiles that was about
//! 1.9 ms and 2.7 MB read per decode (docs/performance.md).
//!
//! # What
//!
//! [`Index::build`] walks the tile-part headers (SOT) once at open and records where every
//! tile-part is. For a window, [`Index::stream`] then describes a smaller, valid codestream as
//! a list of [`Piece`]s of the file and of rewritten bytes:
//!
//! - the JP2 boxes before the codestream, with the image header's (ihdr) size rewritten;
//! - SOC, then SIZ rewritten to the tiles under the window: the tile grid's origin moved to the
//!   first of those tiles, the image area cut to them. Every tile keeps its place and size on
//!   the reference grid, and with them its wavelet, precinct and code-block geometry, so its
//!   samples decode exactly as from the whole file;
//! - the other main-header markers, except TLM and PLM (tile-part and packet lengths of the
//!   whole codestream, which would no longer match);
//! - each tile-part of those tiles in file order, its SOT rewritten (the tile's index in the
//!   smaller grid, an explicit length), its data as stored;
//! - EOC.
//!
//! # When not
//!
//! The index is not built, and every decode reads the whole file as before, when the main
//! header has PPM markers (packet headers of all tiles in one sequence), when a tile-part
//! header is malformed or runs past the codestream, when a tile has no tile-part or fewer than
//! its SOT announces, or when there are more than [`MAX_TILE_PARTS`] tile-parts. A truncated or
//! damaged file therefore fails (or decodes) exactly as OpenJPEG decides on the whole file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::header::{Boxes, MainHeader};

/// Most tile-parts indexed (16 bytes each); files with more decode from the whole file.
pub const MAX_TILE_PARTS: usize = 1 << 18;
/// The head of the file (JP2 boxes and main header) is kept in memory up to this size.
const MAX_HEAD_BYTES: u64 = 1 << 20;
/// Read-ahead of the tile-part walk at open.
const WALK_BUFFER: usize = 64 << 10;

/// Where some bytes of a decoder's input come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// `len` bytes of the file at `offset`.
    File { offset: u64, len: u64 },
    /// Bytes in memory.
    Mem(Bytes),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::File { len, .. } => *len,
            Piece::Mem(b) => b.len() as u64,
        }
    }
}

/// One tile-part: its tile, and its bytes from the SOT marker to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Part {
    tile: u32,
    offset: u64,
    len: u64,
    /// TPsot and TNsot of its SOT.
    part: u8,
    parts: u8,
}

/// The head before the tile-parts: in memory, or where it is in the file.
#[derive(Debug, Clone)]
enum Head {
    Mem(Bytes),
    File,
}

/// The tile-part index of one codestream, with what is needed to rewrite its head.
#[derive(Debug)]
pub struct Index {
    /// JP2 only: the ihdr HEIGHT field's offset and the jp2c box's offset.
    jp2: Option<(u64, u64)>,
    /// Codestream start (SOC).
    start: u64,
    /// The SIZ marker segment as stored.
    siz: Vec<u8>,
    /// File ranges of the main header kept after SIZ (TLM and PLM left out), merged.
    kept: Vec<(u64, u64)>,
    /// The bytes of the head ranges, when small: [0, start) for JP2 (or nothing), then `kept`.
    head: Head,
    /// Tile grid: origin, size, tiles across and down.
    grid: Grid,
    /// Tile-parts in file order.
    parts: Vec<Part>,
    /// Tile-parts of each tile (indices into `parts`): `order[first[t]..first[t + 1]]`.
    first: Vec<u32>,
    order: Vec<u32>,
}

/// The tile grid of SIZ.
#[derive(Debug, Clone, Copy)]
struct Grid {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    tx0: u32,
    ty0: u32,
    tw: u32,
    th: u32,
    across: u32,
    down: u32,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Positional reads through a read-ahead buffer (the walk reads 12 bytes per tile-part).
struct Walker<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    at: u64,
}

impl Walker<'_> {
    /// `n` bytes at `pos` (inside the codestream), or `None`.
    fn get(&mut self, pos: u64, n: usize) -> Option<&[u8]> {
        if pos.checked_add(n as u64)? > self.end {
            return None;
        }
        let inside = pos >= self.at && pos + n as u64 <= self.at + self.buf.len() as u64;
        if !inside {
            let want = (self.end - pos).min(WALK_BUFFER as u64) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos).ok()?;
            self.at = pos;
        }
        let o = (pos - self.at) as usize;
        Some(&self.buf[o..o + n])
    }
}

impl Index {
    /// Index the codestream [`start`, `end`) of `file` whose main header is `main`; `boxes`
    /// for a JP2 file. `None` when a cut-down codestream cannot be made (see the module doc).
    pub fn build(
        file: &File,
        boxes: Option<&Boxes>,
        main: &MainHeader,
        (start, end): (u64, u64),
    ) -> Option<Index> {
        let why = |what: &str| tracing::debug!("JPEG2000: no tile-part index: {what}");
        let jp2 = match boxes {
            None => None,
            Some(b) => match (b.ihdr_at, b.codestream_box, b.jp2h_boxes) {
                (Some(ihdr), Some(jp2c), 1) if ihdr + 8 <= jp2c => Some((ihdr, jp2c)),
                _ => {
                    why("no single image header before the codestream");
                    return None;
                }
            },
        };
        if main.markers.iter().any(|&(m, _, _)| m == 0x60) {
            why("PPM marker");
            return None;
        }
        let (_, siz_at, siz_len) = *main.markers.first().filter(|(m, _, _)| *m == 0x51)?;
        let mut siz = vec![0u8; siz_len as usize];
        file.read_exact_at(&mut siz, siz_at).ok()?;
        if siz.len() < 38 {
            return None;
        }
        let mut kept: Vec<(u64, u64)> = Vec::new();
        for &(m, at, len) in &main.markers[1..] {
            if m == 0x55 || m == 0x57 {
                continue;
            }
            match kept.last_mut() {
                Some((o, l)) if *o + *l == at => *l += len,
                _ => kept.push((at, len)),
            }
        }
        let across = (main.x1 - main.tile_x0).div_ceil(main.tile_width);
        let down = (main.y1 - main.tile_y0).div_ceil(main.tile_height);
        let grid = Grid {
            x0: main.x0,
            y0: main.y0,
            x1: main.x1,
            y1: main.y1,
            tx0: main.tile_x0,
            ty0: main.tile_y0,
            tw: main.tile_width,
            th: main.tile_height,
            across,
            down,
        };
        let tiles = across as usize * down as usize;
        let parts = walk(file, main.end, end, tiles).or_else(|| {
            why("tile-parts malformed, truncated or too many");
            None
        })?;
        let mut count = vec![0u32; tiles + 1];
        for p in &parts {
            count[p.tile as usize + 1] += 1;
        }
        for t in 0..tiles {
            count[t + 1] += count[t];
        }
        let first = count;
        let mut fill = first.clone();
        let mut order = vec![0u32; parts.len()];
        for (i, p) in parts.iter().enumerate() {
            order[fill[p.tile as usize] as usize] = i as u32;
            fill[p.tile as usize] += 1;
        }
        // Every tile complete: tile-parts numbered 0, 1, … and as many as TNsot says.
        for t in 0..tiles {
            let mine = &order[first[t] as usize..first[t + 1] as usize];
            let ok = !mine.is_empty()
                && mine.iter().enumerate().all(|(k, &i)| {
                    let p = &parts[i as usize];
                    p.part as usize == k && (p.parts == 0 || p.parts as usize == mine.len())
                });
            if !ok {
                why("a tile's tile-parts are missing or misnumbered");
                return None;
            }
        }
        let mut index = Index {
            jp2,
            start,
            siz,
            kept,
            head: Head::File,
            grid,
            parts,
            first,
            order,
        };
        let ranges = index.head_ranges();
        let total: u64 = ranges.iter().map(|r| r.1).sum();
        if total <= MAX_HEAD_BYTES {
            let mut head = vec![0u8; total as usize];
            let mut o = 0;
            for (at, len) in ranges {
                file.read_exact_at(&mut head[o..o + len as usize], at)
                    .ok()?;
                o += len as usize;
            }
            index.head = Head::Mem(Bytes::from(head));
        }
        Some(index)
    }

    /// The file ranges of the head, in order: the JP2 boxes before ihdr's size and after it up
    /// to jp2c, SOC, and the kept main-header markers.
    fn head_ranges(&self) -> Vec<(u64, u64)> {
        let mut r = Vec::new();
        if let Some((ihdr, jp2c)) = self.jp2 {
            r.push((0, ihdr));
            r.push((ihdr + 8, jp2c - ihdr - 8));
        }
        r.push((self.start, 2));
        r.extend(self.kept.iter().copied());
        r
    }

    /// The input for a decode of the reference-grid window [x0, x1) × [y0, y1): the pieces of
    /// a codestream (in a JP2 file when the source is one) holding only the tiles under it.
    pub fn stream(&self, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> Vec<Piece> {
        let g = self.grid;
        // The tiles OpenJPEG decodes for this window (opj_j2k_set_decode_area).
        let tx = (x0 - g.tx0) / g.tw;
        let ty = (y0 - g.ty0) / g.th;
        let ex = (x1 - g.tx0).div_ceil(g.tw).min(g.across);
        let ey = (y1 - g.ty0).div_ceil(g.th).min(g.down);
        let ntx0 = g.tx0 + tx * g.tw;
        let nty0 = g.ty0 + ty * g.th;
        let nx0 = g.x0.max(ntx0);
        let ny0 = g.y0.max(nty0);
        let nx1 = g.x1.min(g.tx0.saturating_add(ex.saturating_mul(g.tw)));
        let ny1 = g.y1.min(g.ty0.saturating_add(ey.saturating_mul(g.th)));
        let across = ex - tx;

        let mut picked: Vec<u32> = Vec::new();
        for row in ty..ey {
            for col in tx..ex {
                let t = (row * g.across + col) as usize;
                picked.extend_from_slice(
                    &self.order[self.first[t] as usize..self.first[t + 1] as usize],
                );
            }
        }
        picked.sort_unstable();

        let mut siz = self.siz.clone();
        for (at, v) in [
            (6, nx1),
            (10, ny1),
            (14, nx0),
            (18, ny0),
            (30, ntx0),
            (34, nty0),
        ] {
            siz[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        let mut body: Vec<Piece> = Vec::with_capacity(2 * picked.len() + 4);
        let head = self.head_ranges();
        let head_piece = |i: usize, body: &mut Vec<Piece>| {
            let (at, len) = head[i];
            match &self.head {
                Head::Mem(b) => {
                    let o: u64 = head[..i].iter().map(|r| r.1).sum();
                    body.push(Piece::Mem(b.slice(o as usize..(o + len) as usize)));
                }
                Head::File => body.push(Piece::File { offset: at, len }),
            }
        };
        let cs_from = if self.jp2.is_some() { 2 } else { 0 };
        head_piece(cs_from, &mut body); // SOC
        body.push(Piece::Mem(Bytes::from(siz)));
        for i in cs_from + 1..head.len() {
            head_piece(i, &mut body);
        }
        for &i in &picked {
            let p = self.parts[i as usize];
            let (col, row) = (p.tile % g.across - tx, p.tile / g.across - ty);
            let mut sot = [0u8; 12];
            sot[..4].copy_from_slice(&[0xFF, 0x90, 0, 10]);
            sot[4..6].copy_from_slice(&((row * across + col) as u16).to_be_bytes());
            sot[6..10].copy_from_slice(&(p.len as u32).to_be_bytes());
            sot[10] = p.part;
            sot[11] = p.parts;
            body.push(Piece::Mem(Bytes::copy_from_slice(&sot)));
            body.push(Piece::File {
                offset: p.offset + 12,
                len: p.len - 12,
            });
        }
        body.push(Piece::Mem(Bytes::from_static(&[0xFF, 0xD9])));

        let Some((ihdr, _)) = self.jp2 else {
            return body;
        };
        // The JP2 boxes before the codestream, ihdr's size rewritten, then a jp2c box header.
        let cs_len: u64 = body.iter().map(Piece::len).sum();
        let mut out = Vec::with_capacity(body.len() + 4);
        head_piece(0, &mut out);
        let mut size = [0u8; 8];
        size[..4].copy_from_slice(&(ny1 - ny0).to_be_bytes());
        size[4..].copy_from_slice(&(nx1 - nx0).to_be_bytes());
        out.push(Piece::Mem(Bytes::copy_from_slice(&size)));
        debug_assert_eq!(head[1].0, ihdr + 8);
        head_piece(1, &mut out);
        let jp2c = match u32::try_from(cs_len + 8) {
            Ok(n) => [&n.to_be_bytes()[..], b"jp2c"].concat(),
            Err(_) => [
                &1u32.to_be_bytes()[..],
                b"jp2c",
                &(cs_len + 16).to_be_bytes(),
            ]
            .concat(),
        };
        out.push(Piece::Mem(Bytes::from(jp2c)));
        out.extend(body);
        out
    }

    /// How many tile-parts are indexed.
    #[cfg(test)]
    pub fn tile_parts(&self) -> usize {
        self.parts.len()
    }
}

/// Walk the tile-parts from `from` to the codestream's end `end`; `None` if one is malformed.
fn walk(file: &File, from: u64, end: u64, tiles: usize) -> Option<Vec<Part>> {
    let mut w = Walker {
        file,
        end,
        buf: Vec::new(),
        at: 0,
    };
    let mut parts = Vec::new();
    let mut pos = from;
    loop {
        if pos == end {
            break;
        }
        let m = w.get(pos, 2)?;
        if m == [0xFF, 0xD9] {
            break;
        }
        let sot = w.get(pos, 12)?;
        if sot[..4] != [0xFF, 0x90, 0, 10] {
            return None;
        }
        let tile = be16(&sot[4..]) as u32;
        let psot = be32(&sot[6..]) as u64;
        let (part, count) = (sot[10], sot[11]);
        if tile as usize >= tiles || parts.len() >= MAX_TILE_PARTS {
            return None;
        }
        let len = if psot == 0 {
            // The last tile-part, running to EOC.
            let last = w.get(end - 2, 2).is_some_and(|b| b == [0xFF, 0xD9]);
            end - pos - if last { 2 } else { 0 }
        } else {
            psot
        };
        if len < 14 || len > u32::MAX as u64 || len > end - pos {
            return None;
        }
        parts.push(Part {
            tile,
            offset: pos,
            len,
            part,
            parts: count,
        });
        pos += len;
        if psot == 0 {
            break;
        }
    }
    Some(parts)
}
