//! Bytes to directories: the TIFF/BigTIFF header, IFD entries and tag values.
//!
//! Everything here reads with positional reads on one shared [`Blob`] (a file or an object),
//! so a [`Reader`] is `Sync` and needs no seeking. Every count and offset that comes from the file is
//! checked against the file's length and against the limits below before anything is allocated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::source::ImageFormat;
use crate::source::error::{IoOp, Result, SourceError, SourceErrorKind};
use crate::storage::Blob;

/// At most this many entries in one IFD (libtiff warns far below this; real files have < 100).
const MAX_ENTRIES: u64 = 4096;
/// At most this many values in one tag (4M tile offsets = a 500k × 500k image of 256² tiles).
pub(super) const MAX_VALUES: u64 = 1 << 22;
/// At most this many bytes of IFDs and tag values are read while opening a file. Directories
/// may share arrays, so without a total a small hostile file could make the reader parse the
/// same large array thousands of times. 128 MiB allows 16M tiles in classic TIFF.
const STRUCTURE_BUDGET: u64 = 128 << 20;

/// TIFF tag numbers used by the source.
pub(super) mod tag {
    pub const NEW_SUBFILE_TYPE: u16 = 254;
    pub const IMAGE_WIDTH: u16 = 256;
    pub const IMAGE_LENGTH: u16 = 257;
    pub const BITS_PER_SAMPLE: u16 = 258;
    pub const COMPRESSION: u16 = 259;
    pub const PHOTOMETRIC: u16 = 262;
    pub const FILL_ORDER: u16 = 266;
    pub const DOCUMENT_NAME: u16 = 269;
    pub const IMAGE_DESCRIPTION: u16 = 270;
    pub const MAKE: u16 = 271;
    pub const MODEL: u16 = 272;
    pub const SAMPLES_PER_PIXEL: u16 = 277;
    pub const X_RESOLUTION: u16 = 282;
    pub const Y_RESOLUTION: u16 = 283;
    pub const PLANAR_CONFIG: u16 = 284;
    pub const PAGE_NAME: u16 = 285;
    pub const RESOLUTION_UNIT: u16 = 296;
    pub const SOFTWARE: u16 = 305;
    pub const DATE_TIME: u16 = 306;
    pub const ARTIST: u16 = 315;
    pub const PREDICTOR: u16 = 317;
    pub const COLOR_MAP: u16 = 320;
    pub const TILE_WIDTH: u16 = 322;
    pub const TILE_LENGTH: u16 = 323;
    pub const TILE_OFFSETS: u16 = 324;
    pub const TILE_BYTE_COUNTS: u16 = 325;
    pub const SUB_IFDS: u16 = 330;
    pub const SAMPLE_FORMAT: u16 = 339;
    pub const SMIN_SAMPLE_VALUE: u16 = 340;
    pub const SMAX_SAMPLE_VALUE: u16 = 341;
    pub const JPEG_TABLES: u16 = 347;
    pub const YCBCR_SUBSAMPLING: u16 = 530;
    pub const XMP: u16 = 700;
    pub const COPYRIGHT: u16 = 33432;
    pub const ICC_PROFILE: u16 = 34675;
    pub const STONITS: u16 = 37439;
}

/// A malformed-file error. `what` is client-safe (iipsrv shows it); the caller attaches the path.
pub(super) fn corrupt(what: impl std::fmt::Display) -> SourceError {
    SourceError::corrupt(ImageFormat::Tiff, what.to_string())
}

/// One shared, read-only TIFF file.
#[derive(Debug)]
pub(super) struct Reader {
    blob: Arc<dyn Blob>,
    /// File length at open; nothing past it is ever read.
    pub len: u64,
    pub big_endian: bool,
    pub big_tiff: bool,
    /// Offset of the first IFD.
    pub first_ifd: u64,
    /// Bytes of structure (IFDs, tag values) that may still be read; see [`STRUCTURE_BUDGET`].
    budget: AtomicU64,
}

/// One raw IFD entry: the value bytes inline, or the offset of the values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub tag: u16,
    pub typ: u16,
    pub count: u64,
    /// The entry's value field (4 bytes used in classic TIFF, 8 in BigTIFF), as stored.
    field: [u8; 8],
}

/// A parsed IFD: its entries (sorted by tag) and the offset of the next IFD (0 = none).
#[derive(Debug, Clone)]
pub(super) struct RawIfd {
    pub entries: Vec<Entry>,
    pub next: u64,
}

impl RawIfd {
    pub fn get(&self, tag: u16) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&tag, |e| e.tag)
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Size in bytes of one value of a TIFF field type (0 = unknown type).
fn type_size(typ: u16) -> u64 {
    match typ {
        1 | 2 | 6 | 7 => 1,   // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => 2,           // SHORT, SSHORT
        4 | 9 | 11 | 13 => 4, // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 => 8,     // RATIONAL, SRATIONAL, DOUBLE
        16..=18 => 8,         // LONG8, SLONG8, IFD8
        _ => 0,
    }
}

impl Reader {
    /// Read and check the header.
    pub fn new(blob: Arc<dyn Blob>) -> Result<Reader> {
        let len = blob.len();
        let mut head = [0u8; 16];
        let n = (len.min(16)) as usize;
        blob.read_exact_at(&mut head[..n], 0).map_err(|e| {
            SourceError::from_storage(Some(ImageFormat::Tiff), e, |e| {
                SourceError::new(Some(ImageFormat::Tiff), SourceErrorKind::Io(IoOp::Read))
                    .because(e)
            })
        })?;
        if n < 8 {
            return Err(corrupt("file too short"));
        }
        let big_endian = match &head[..2] {
            b"II" => false,
            b"MM" => true,
            _ => return Err(corrupt("not a TIFF file")),
        };
        let mut r = Reader {
            blob,
            len,
            big_endian,
            big_tiff: false,
            first_ifd: 0,
            budget: AtomicU64::new(STRUCTURE_BUDGET),
        };
        match r.u16(&head[2..4]) {
            42 => r.first_ifd = r.u32(&head[4..8]) as u64,
            43 => {
                if n < 16 || r.u16(&head[4..6]) != 8 || r.u16(&head[6..8]) != 0 {
                    return Err(corrupt("bad BigTIFF header"));
                }
                r.big_tiff = true;
                r.first_ifd = r.u64(&head[8..16]);
            }
            _ => return Err(corrupt("not a TIFF file")),
        }
        Ok(r)
    }

    pub fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    pub fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    pub fn u64(&self, b: &[u8]) -> u64 {
        let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }

    /// Fill `buf` from file offset `offset`; anything reaching past the end is an error.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| corrupt("offset overflow"))?;
        if end > self.len {
            return Err(corrupt("data past the end of the file"));
        }
        let n = buf.len();
        self.blob.read_exact_at(buf, offset).map_err(|e| {
            SourceError::from_storage(Some(ImageFormat::Tiff), e, |e| {
                corrupt("read failed")
                    .context(format!("read {n} bytes at {offset}"))
                    .because(e)
            })
        })
    }

    /// Take `bytes` from the structure budget.
    fn spend(&self, bytes: u64) -> Result<()> {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .map(|_| ())
            .map_err(|_| corrupt("file structure too large"))
    }

    /// Read the IFD at `offset`.
    pub fn read_ifd(&self, offset: u64) -> Result<RawIfd> {
        if offset < 8 || offset >= self.len {
            return Err(corrupt("IFD offset out of range"));
        }
        let (count_len, entry_len, next_len) = if self.big_tiff {
            (8, 20, 8)
        } else {
            (2, 12, 4)
        };
        let mut cb = [0u8; 8];
        self.read_at(&mut cb[..count_len], offset)?;
        let count = if self.big_tiff {
            self.u64(&cb)
        } else {
            self.u16(&cb) as u64
        };
        if count == 0 || count > MAX_ENTRIES {
            return Err(corrupt("bad IFD entry count"));
        }
        let body_len = count * entry_len as u64 + next_len as u64;
        self.spend(body_len)?;
        let mut body = vec![0u8; body_len as usize];
        self.read_at(&mut body, offset + count_len as u64)?;
        let mut entries = Vec::with_capacity(count as usize);
        for e in body.chunks_exact(entry_len).take(count as usize) {
            let mut field = [0u8; 8];
            let (count, value) = if self.big_tiff {
                (self.u64(&e[4..12]), &e[12..20])
            } else {
                (self.u32(&e[4..8]) as u64, &e[8..12])
            };
            field[..value.len()].copy_from_slice(value);
            entries.push(Entry {
                tag: self.u16(&e[0..2]),
                typ: self.u16(&e[2..4]),
                count,
                field,
            });
        }
        // Tags should be sorted; tolerate files that are not (first occurrence wins).
        entries.sort_by_key(|e| e.tag);
        entries.dedup_by_key(|e| e.tag);
        let tail = &body[count as usize * entry_len..];
        let next = if self.big_tiff {
            self.u64(tail)
        } else {
            self.u32(tail) as u64
        };
        Ok(RawIfd { entries, next })
    }

    /// The raw value bytes of an entry (file byte order), at most `max_bytes` long.
    pub fn bytes(&self, e: &Entry, max_bytes: u64) -> Result<Vec<u8>> {
        self.prefix(e, e.count, max_bytes)
    }

    /// The bytes of the first `n` values of an entry (`n` ≤ its count).
    fn prefix(&self, e: &Entry, n: u64, max_bytes: u64) -> Result<Vec<u8>> {
        let size = type_size(e.typ);
        if size == 0 {
            return Err(corrupt(format!("unknown type {} for tag {}", e.typ, e.tag)));
        }
        let total = e
            .count
            .checked_mul(size)
            .ok_or_else(|| corrupt("tag too large"))?;
        let want = n.min(e.count) * size;
        if want > max_bytes {
            return Err(corrupt(format!("tag {} too large", e.tag)));
        }
        let inline = if self.big_tiff { 8 } else { 4 };
        if total <= inline {
            return Ok(e.field[..want as usize].to_vec());
        }
        let offset = if self.big_tiff {
            self.u64(&e.field)
        } else {
            self.u32(&e.field) as u64
        };
        // The whole array must lie inside the file, even if only a prefix is read.
        if offset.checked_add(total).is_none_or(|end| end > self.len) {
            return Err(corrupt(format!(
                "tag {} values past the end of the file",
                e.tag
            )));
        }
        self.spend(want)?;
        let mut buf = vec![0u8; want as usize];
        self.read_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Unsigned integer values (BYTE, SHORT, LONG, LONG8, IFD, IFD8; signed types are
    /// reinterpreted), at most `max_count` of them.
    pub fn uints(&self, e: &Entry, max_count: u64) -> Result<Vec<u64>> {
        if e.count > max_count {
            return Err(corrupt(format!("too many values in tag {}", e.tag)));
        }
        self.uints_prefix(e, e.count)
    }

    fn uints_prefix(&self, e: &Entry, n: u64) -> Result<Vec<u64>> {
        let raw = self.prefix(e, n, n.saturating_mul(8))?;
        Ok(match e.typ {
            1 | 7 => raw.iter().map(|&b| b as u64).collect(),
            6 => raw.iter().map(|&b| b as i8 as u64).collect(),
            3 => raw.chunks_exact(2).map(|c| self.u16(c) as u64).collect(),
            8 => raw
                .chunks_exact(2)
                .map(|c| self.u16(c) as i16 as u64)
                .collect(),
            4 | 13 => raw.chunks_exact(4).map(|c| self.u32(c) as u64).collect(),
            9 => raw
                .chunks_exact(4)
                .map(|c| self.u32(c) as i32 as u64)
                .collect(),
            16..=18 => raw.chunks_exact(8).map(|c| self.u64(c)).collect(),
            _ => return Err(corrupt(format!("tag {} is not an integer", e.tag))),
        })
    }

    /// The first value of an unsigned integer tag.
    pub fn uint(&self, e: &Entry) -> Result<u64> {
        self.uints_prefix(e, 1)?
            .first()
            .copied()
            .ok_or_else(|| corrupt(format!("empty tag {}", e.tag)))
    }

    /// Numeric values of any numeric type as `f64` (rationals divided out; a zero denominator
    /// gives NaN), at most `max_count` of them.
    pub fn numbers(&self, e: &Entry, max_count: u64) -> Result<Vec<f64>> {
        if e.count > max_count {
            return Err(corrupt(format!("too many values in tag {}", e.tag)));
        }
        self.numbers_prefix(e, e.count)
    }

    /// The first value of a numeric tag.
    pub fn number(&self, e: &Entry) -> Result<f64> {
        self.numbers_prefix(e, 1)?
            .first()
            .copied()
            .ok_or_else(|| corrupt(format!("empty tag {}", e.tag)))
    }

    fn numbers_prefix(&self, e: &Entry, n: u64) -> Result<Vec<f64>> {
        let ratio = |n: f64, d: f64| if d == 0.0 { f64::NAN } else { n / d };
        let raw = || self.prefix(e, n, n.saturating_mul(8));
        Ok(match e.typ {
            5 => raw()?
                .chunks_exact(8)
                .map(|c| ratio(self.u32(c) as f64, self.u32(&c[4..]) as f64))
                .collect(),
            10 => raw()?
                .chunks_exact(8)
                .map(|c| ratio(self.u32(c) as i32 as f64, self.u32(&c[4..]) as i32 as f64))
                .collect(),
            11 => raw()?
                .chunks_exact(4)
                .map(|c| f32::from_bits(self.u32(c)) as f64)
                .collect(),
            12 => raw()?
                .chunks_exact(8)
                .map(|c| f64::from_bits(self.u64(c)))
                .collect(),
            17 => raw()?
                .chunks_exact(8)
                .map(|c| self.u64(c) as i64 as f64)
                .collect(),
            typ => {
                let signed = matches!(typ, 6 | 8 | 9);
                self.uints_prefix(e, n)?
                    .into_iter()
                    .map(|v| if signed { v as i64 as f64 } else { v as f64 })
                    .collect()
            }
        })
    }

    /// Walk an IFD chain from `first`, stopping at offset 0, at a loop, or after `max` IFDs.
    /// A broken IFD after the first ends the chain (as libtiff does, with a warning).
    pub fn chain(&self, first: u64, max: usize) -> Result<Vec<RawIfd>> {
        let mut out: Vec<RawIfd> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = first;
        while next != 0 && out.len() < max {
            if !seen.insert(next) {
                tracing::debug!("TIFF IFD loop at offset {next}");
                break;
            }
            match self.read_ifd(next) {
                Ok(ifd) => {
                    next = ifd.next;
                    out.push(ifd);
                }
                Err(e) if !out.is_empty() => {
                    tracing::debug!("TIFF IFD chain ends at a bad IFD: {e}");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Err(corrupt("no IFD"));
        }
        Ok(out)
    }
}
