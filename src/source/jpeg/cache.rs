//! A process-wide cache of decoded JPEG images, bounded in bytes, least recently used out.
//!
//! A viewer asks for many tiles of one level in a burst; a JPEG can only be decoded whole, so
//! without this every tile would decode the file. Entries are keyed by (source, DCT scale): at
//! most four per source. A source's entries are dropped with it. Images larger than the whole
//! budget are not kept (they are decoded per request).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use super::decode::Decoded;

/// The default budget.
pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

static MAX_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BYTES);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static CACHE: LazyLock<Mutex<State>> = LazyLock::new(|| Mutex::new(State::default()));

/// Set the byte budget shared by all JPEG sources (0 disables the cache). Shrinking evicts at
/// once.
pub fn set_max_bytes(bytes: usize) {
    MAX_BYTES.store(bytes, Ordering::Relaxed);
    lock().evict(0, bytes);
}

/// The byte budget.
pub fn max_bytes() -> usize {
    MAX_BYTES.load(Ordering::Relaxed)
}

/// Bytes held now.
pub fn used_bytes() -> usize {
    lock().bytes
}

/// A fresh source identity.
pub fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Entry {
    key: (u64, u32),
    image: Arc<Decoded>,
    last_use: u64,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    bytes: usize,
    clock: u64,
}

impl State {
    /// Evict least recently used entries until `extra` more bytes fit in `max`.
    fn evict(&mut self, extra: usize, max: usize) {
        while self.bytes + extra > max && !self.entries.is_empty() {
            let oldest = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].last_use)
                .expect("not empty");
            let e = self.entries.swap_remove(oldest);
            self.bytes -= e.image.bytes();
        }
    }
}

impl State {
    fn get(&mut self, key: (u64, u32)) -> Option<Arc<Decoded>> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.iter_mut().find(|e| e.key == key)?;
        e.last_use = clock;
        Some(e.image.clone())
    }

    fn put(&mut self, key: (u64, u32), image: Arc<Decoded>, max: usize) {
        let size = image.bytes();
        if size > max || self.entries.iter().any(|e| e.key == key) {
            return;
        }
        self.evict(size, max);
        self.clock += 1;
        self.bytes += size;
        self.entries.push(Entry {
            key,
            image,
            last_use: self.clock,
        });
    }

    fn purge(&mut self, id: u64) {
        let mut freed = 0;
        self.entries.retain(|e| {
            let keep = e.key.0 != id;
            if !keep {
                freed += e.image.bytes();
            }
            keep
        });
        self.bytes -= freed;
    }
}

fn lock() -> MutexGuard<'static, State> {
    // A panic while holding the lock leaves consistent data (every update is one step).
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cached image for `key`, marking it used.
pub fn get(key: (u64, u32)) -> Option<Arc<Decoded>> {
    lock().get(key)
}

/// Keep `image` under `key` if it fits the budget.
pub fn put(key: (u64, u32), image: Arc<Decoded>) {
    let max = max_bytes();
    lock().put(key, image, max)
}

/// Drop every entry of source `id`.
pub fn purge(id: u64) {
    lock().purge(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: usize) -> Arc<Decoded> {
        Arc::new(Decoded {
            width: bytes as u32,
            height: 1,
            channels: 1,
            data: vec![0; bytes],
        })
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut s = State::default();
        s.put((1, 0), image(40), 100);
        s.put((1, 1), image(40), 100);
        assert!(s.get((1, 0)).is_some());
        // (1, 1) is the least recently used: it makes room for (2, 0).
        s.put((2, 0), image(40), 100);
        assert!(s.get((1, 1)).is_none());
        assert!(s.get((1, 0)).is_some() && s.get((2, 0)).is_some());
        assert_eq!(s.bytes, 80);
        // Too large for the budget: not kept, nothing evicted.
        s.put((3, 0), image(101), 100);
        assert!(s.get((3, 0)).is_none());
        assert_eq!(s.bytes, 80);
        // A second put of a key keeps the first.
        s.put((1, 0), image(10), 100);
        assert_eq!(s.get((1, 0)).unwrap().bytes(), 40);
        s.purge(1);
        assert_eq!((s.entries.len(), s.bytes), (1, 40));
        s.evict(0, 0);
        assert_eq!((s.entries.len(), s.bytes), (0, 0));
    }
}
