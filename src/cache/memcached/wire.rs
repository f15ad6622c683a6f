//! The three commands of memcached's binary protocol this client needs (framing only): `GET`,
//! `SET` and `NOOP`.

use std::io::{self, Read, Write};

pub const OP_GET: u8 = 0x00;
pub const OP_SET: u8 = 0x01;
pub const OP_DELETE: u8 = 0x04;
pub const OP_NOOP: u8 = 0x0a;
pub const STATUS_OK: u16 = 0x0000;
const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const HEADER: usize = 24;

/// The largest reply body accepted (a mixed fleet may have stored more than we would).
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// A reply: status, and the body (extras, key, value).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    extras_len: usize,
    key_len: usize,
    body: Vec<u8>,
}

impl Reply {
    /// The value part of the body.
    pub fn value(&self) -> &[u8] {
        self.body
            .get(self.extras_len + self.key_len..)
            .unwrap_or(&[])
    }
}

/// A request frame: 24-byte header, extras, key, value.
pub fn request(op: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let body = extras.len() + key.len() + value.len();
    let mut out = Vec::with_capacity(HEADER + body);
    out.push(REQUEST_MAGIC);
    out.push(op);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.push(0); // data type
    out.extend_from_slice(&0u16.to_be_bytes()); // vbucket
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // opaque
    out.extend_from_slice(&0u64.to_be_bytes()); // CAS
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// Send one request and read its reply. Any error leaves the connection unusable.
pub fn exchange(conn: &mut (impl Read + Write), request: &[u8], op: u8) -> io::Result<Reply> {
    conn.write_all(request)?;
    read_reply(conn, op)
}

pub fn read_reply(conn: &mut impl Read, op: u8) -> io::Result<Reply> {
    let mut h = [0u8; HEADER];
    conn.read_exact(&mut h)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    if h[0] != RESPONSE_MAGIC {
        return Err(bad("not a memcached binary-protocol reply"));
    }
    if h[1] != op {
        return Err(bad("reply to another command"));
    }
    let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let extras_len = usize::from(h[4]);
    let status = u16::from_be_bytes([h[6], h[7]]);
    let body_len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if body_len > MAX_REPLY_BYTES || extras_len + key_len > body_len {
        return Err(bad("reply body too large or inconsistent"));
    }
    let mut body = vec![0u8; body_len];
    conn.read_exact(&mut body)?;
    Ok(Reply {
        status,
        extras_len,
        key_len,
        body,
    })
}
