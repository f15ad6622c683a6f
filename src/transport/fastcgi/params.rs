//! FastCGI name-value pairs (FastCGI 1.0, §3.4), as carried by PARAMS and GET_VALUES.
//!
//! Each length is one byte when below 128, otherwise four bytes big-endian with the top bit
//! set. PARAMS is a byte stream: a web server may cut it into records anywhere, even inside a
//! length, so [`ParamsDecoder`] is fed record by record and keeps the unfinished tail. Names and
//! values stay bytes; nothing is decoded as UTF-8.

/// A decoded parameter list, in arrival order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Incremental decoder for one request's PARAMS stream, bounded by a byte budget.
#[derive(Debug)]
pub struct ParamsDecoder {
    pairs: Pairs,
    /// Bytes of an unfinished pair, carried over to the next record.
    pending: Vec<u8>,
    /// Name and value bytes stored so far.
    stored_bytes: usize,
    max_bytes: usize,
    too_large: bool,
}

/// What a finished PARAMS stream held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub pairs: Pairs,
    /// The names and values went over the budget; `pairs` holds only those that fitted.
    pub too_large: bool,
    /// The stream ended inside a pair; that pair was dropped.
    pub truncated: bool,
}

impl ParamsDecoder {
    /// A decoder that stores at most `max_bytes` of names and values.
    pub fn new(max_bytes: usize) -> Self {
        ParamsDecoder {
            pairs: Vec::new(),
            pending: Vec::new(),
            stored_bytes: 0,
            max_bytes,
            too_large: false,
        }
    }

    /// Feed the content of the next PARAMS record.
    ///
    /// Memory stays bounded: once a pair would go over the budget the decoder stops storing
    /// (and remembers why), and the unfinished tail is never longer than a pair that fits.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.too_large {
            return;
        }
        if self.pending.is_empty() {
            let used = self.decode(chunk);
            if !self.too_large {
                self.pending.extend_from_slice(&chunk[used..]);
            }
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.decode(&pending);
            if !self.too_large {
                pending.drain(..used);
                self.pending = pending;
            }
        }
    }

    /// Whether the budget has been exceeded.
    pub fn too_large(&self) -> bool {
        self.too_large
    }

    /// End of the stream (the empty PARAMS record).
    pub fn finish(self) -> Params {
        Params {
            pairs: self.pairs,
            too_large: self.too_large,
            truncated: !self.pending.is_empty(),
        }
    }

    /// Decode and store whole pairs from the front of `src`; returns the bytes consumed.
    fn decode(&mut self, src: &[u8]) -> usize {
        let mut pos = 0;
        while let Some((name_len, value_len, head_len)) = read_lengths(&src[pos..]) {
            let size = name_len.saturating_add(value_len);
            if size > self.max_bytes - self.stored_bytes {
                self.too_large = true;
                self.pending = Vec::new();
                return src.len();
            }
            let start = pos + head_len;
            if src.len() - start < size {
                break;
            }
            let name = src[start..start + name_len].to_vec();
            let value = src[start + name_len..start + size].to_vec();
            self.pairs.push((name, value));
            self.stored_bytes += size;
            pos = start + size;
        }
        pos
    }
}

/// Read one length; `(length, bytes used)`, or `None` if `src` is too short.
fn read_length(src: &[u8]) -> Option<(usize, usize)> {
    let first = *src.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let bytes: [u8; 4] = *src.first_chunk::<4>()?;
    let len = u32::from_be_bytes(bytes) & 0x7fff_ffff;
    Some((len as usize, 4))
}

/// Read the name and value lengths at the front of `src`.
fn read_lengths(src: &[u8]) -> Option<(usize, usize, usize)> {
    let (name_len, a) = read_length(src)?;
    let (value_len, b) = read_length(&src[a..])?;
    Some((name_len, value_len, a + b))
}

fn encode_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= 0x7fff_ffff)
            .expect("FastCGI name or value longer than 2^31 - 1 bytes");
        out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
    }
}

/// Append one name-value pair to `out`.
///
/// # Panics
/// If the name or the value is 2 GiB or longer, which the format cannot express.
pub fn encode_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    encode_length(out, name.len());
    encode_length(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Decode a complete pair list held in one buffer (a GET_VALUES body), bounded by `max_bytes`.
pub fn decode_all(src: &[u8], max_bytes: usize) -> Params {
    let mut decoder = ParamsDecoder::new(max_bytes);
    decoder.feed(src);
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in pairs {
            encode_pair(&mut out, n, v);
        }
        out
    }

    fn owned(pairs: &[(&[u8], &[u8])]) -> Pairs {
        pairs
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn short_and_long_lengths() {
        let mut out = Vec::new();
        encode_pair(&mut out, b"A", &[b'x'; 127]);
        assert_eq!(&out[..2], &[1, 127]);
        let mut out = Vec::new();
        encode_pair(&mut out, &[b'n'; 128], b"");
        assert_eq!(&out[..5], &[0x80, 0, 0, 128, 0]);
        let mut out = Vec::new();
        encode_pair(&mut out, b"", &vec![0; 70_000]);
        assert_eq!(&out[..5], &[0, 0x80, 0x01, 0x11, 0x70]);
    }

    #[test]
    fn round_trip_keeps_order_duplicates_and_raw_bytes() {
        let long = vec![b'v'; 300];
        let pairs: &[(&[u8], &[u8])] = &[
            (b"QUERY_STRING", b"FIF=a.tif&JTL=1,0"),
            (b"EMPTY", b""),
            (b"RAW", &[b'a', 0xff, 0x00, 0xfe]),
            (&[0xc3, 0x28], b"bad utf-8 name"),
            (b"LONG", &long),
            (b"EMPTY", b"again"),
        ];
        let params = decode_all(&encode(pairs), usize::MAX);
        assert_eq!(
            params,
            Params {
                pairs: owned(pairs),
                too_large: false,
                truncated: false
            }
        );
    }

    #[test]
    fn a_stream_cut_at_every_byte_decodes_the_same() {
        let long = vec![b'q'; 200];
        let pairs: &[(&[u8], &[u8])] = &[
            (b"REQUEST_METHOD", b"GET"),
            (b"QUERY_STRING", &long),
            (b"X", b""),
        ];
        let wire = encode(pairs);
        for cut in 0..=wire.len() {
            let mut d = ParamsDecoder::new(1024);
            d.feed(&wire[..cut]);
            d.feed(&wire[cut..]);
            assert_eq!(d.finish().pairs, owned(pairs), "cut at {cut}");
        }
        // And one byte per record.
        let mut d = ParamsDecoder::new(1024);
        for b in &wire {
            d.feed(std::slice::from_ref(b));
        }
        assert_eq!(d.finish().pairs, owned(pairs));
    }

    #[test]
    fn budget_counts_names_and_values() {
        let wire = encode(&[(b"AB", b"CD"), (b"EF", b"GH")]);
        let params = decode_all(&wire, 8);
        assert!(!params.too_large);
        assert_eq!(params.pairs.len(), 2);
        let params = decode_all(&wire, 7);
        assert!(params.too_large);
        assert_eq!(params.pairs, owned(&[(b"AB", b"CD")]));
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_buffering() {
        // Name length 2^31 - 1: the decoder must not wait for (or reserve) that much.
        let mut d = ParamsDecoder::new(1000);
        d.feed(&[0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(d.too_large());
        d.feed(&[b'x'; 5000]);
        assert!(d.pending.is_empty());
        let p = d.finish();
        assert!(p.too_large);
        assert!(p.pairs.is_empty());
    }

    #[test]
    fn pending_tail_stays_within_the_budget() {
        let mut d = ParamsDecoder::new(100);
        let wire = encode(&[(b"N", &[b'v'; 99])]);
        for chunk in wire.chunks(10) {
            d.feed(chunk);
            assert!(d.pending.len() <= 100 + 8);
        }
        let p = d.finish();
        assert!(!p.too_large && !p.truncated);
        assert_eq!(p.pairs[0].1.len(), 99);
    }

    #[test]
    fn truncated_stream_is_reported() {
        let wire = encode(&[(b"A", b"1"), (b"B", b"2")]);
        let p = decode_all(&wire[..wire.len() - 1], 100);
        assert!(p.truncated);
        assert_eq!(p.pairs, owned(&[(b"A", b"1")]));
        let p = decode_all(&[0x80, 0], 100);
        assert!(p.truncated && p.pairs.is_empty());
    }
}
