//! Keys and where they live: iipsrv's key for a request string (a hash of our own when it is
//! too long for memcached) and libmemcached's modulo distribution over the servers, so that a
//! fleet mixing iipsrv and this server agrees on both.

use sha2::{Digest, Sha256};

/// The prefix iipsrv puts before the request string.
pub(crate) const KEY_PREFIX: &[u8] = b"iipsrv::";

/// The prefix of hashed keys (request strings too long for a memcached key).
pub(crate) const HASHED_KEY_PREFIX: &[u8] = b"iipsrv#sha256:";

/// memcached's longest key.
pub(crate) const MAX_KEY_BYTES: usize = 250;

/// The memcached key for a request string (see the module doc): iipsrv's key when it fits,
/// otherwise a SHA-256 key of our own.
pub fn key_for(request_string: &[u8]) -> Vec<u8> {
    if KEY_PREFIX.len() + request_string.len() <= MAX_KEY_BYTES {
        let mut key = Vec::with_capacity(KEY_PREFIX.len() + request_string.len());
        key.extend_from_slice(KEY_PREFIX);
        key.extend_from_slice(request_string);
        return key;
    }
    let digest = Sha256::digest(request_string);
    let mut key = Vec::with_capacity(HASHED_KEY_PREFIX.len() + 64);
    key.extend_from_slice(HASHED_KEY_PREFIX);
    for b in digest {
        key.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    key
}

/// Bob Jenkins' one-at-a-time hash as libmemcached's `hashkit_one_at_a_time` computes it: each
/// byte is read as a C `char` and widened to 32 bits (sign-extended where `char` is signed).
pub(crate) fn one_at_a_time(key: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &b in key {
        h = h.wrapping_add(i64::from(b as std::ffi::c_char) as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// The server (index into the list) that holds `key`: libmemcached's modulo distribution.
pub(crate) fn server_index(key: &[u8], servers: usize) -> usize {
    if servers <= 1 {
        0
    } else {
        (one_at_a_time(key) % servers as u32) as usize
    }
}
