//! The memcached response cache (`docs/behaviour/cache.md` §5): whole CGI responses (headers and body) stored
//! under `iipsrv::` + the raw request string, shared by every process that points at the same
//! memcached servers.
//!
//! # Brief overview
//!
//! [`Memcached::get`] runs on the request path: it picks the server for the key, sends one
//! binary-protocol `GET` on a pooled connection and treats every failure as a miss.
//! [`Memcached::set`] never touches the network: it queues the response for a background thread
//! (a bounded queue; a full queue drops the store) that sends the `SET`. The same thread brings
//! servers that failed back into service.
//!
//! `docs/deployment.md` ("memcached") describes the same for operators.
//!
//! # Keys: shared with iipsrv
//!
//! A fleet that mixes iipsrv and this server can share one set of memcached servers: both read
//! and write the same entries.
//! - The key is `iipsrv::` followed by the request string, byte for byte, exactly as iipsrv
//!   builds it (the query string as received, the URI_MAP-rewritten string, or the POST body).
//! - The server for a key is chosen as libmemcached's defaults choose it: Bob Jenkins'
//!   one-at-a-time hash of the whole key, modulo the number of servers, servers in the order of
//!   `MEMCACHED_SERVERS` (a single server takes every key). Checked against Debian's iipsrv 1.1
//!   and libmemcached 1.1.4 (`tests/it/memcached.rs`). Like libmemcached on the same machine,
//!   the hash reads bytes as C `char` (signed on x86-64), which matters only for raw bytes ≥ 0x80.
//! - Values are stored with flags 0, as iipsrv does, so either server can answer from the
//!   other's entries. (Their bytes differ where this server deliberately differs from iipsrv,
//!   `docs/compatibility.md`; a mixed fleet serves whichever process stored first.)
//! - The binary protocol carries keys as counted bytes, so keys with spaces or control bytes
//!   (possible in POST bodies and raw query strings) are stored as they are, as iipsrv stores
//!   them; they would break the text protocol but are legal here.
//! - A key longer than memcached's 250-byte limit cannot be stored by iipsrv at all (it fails
//!   silently). Here it becomes `iipsrv#sha256:` + the hex SHA-256 of the request string: no
//!   other process looks it up, and it can never equal an iipsrv key (those all start with
//!   `iipsrv::`). A cryptographic hash, so that nobody can craft a request whose cached error
//!   would be served for someone else's request.
//!
//! # Differences from iipsrv
//!
//! - iipsrv serves an entry until it expires even when the image file changed (`docs/behaviour/cache.md` §5,
//!   **\[QUIRK\]**). [`Memcached::get_fresh`] checks the `Last-Modified` header of a stored
//!   response against the image's current modification time (one `stat`), so a replaced image
//!   is never served stale. Entries without `Last-Modified` (IIP errors, IIIF redirects) are
//!   served as stored.
//! - `MEMCACHED_TIMEOUT` above 30 days: memcached reads such a number as an absolute Unix time,
//!   so iipsrv's entries expire at once (a date in 1970). Here it is converted to now + timeout.
//! - Keys over 250 bytes are hashed (above) instead of never being cached.
//! - Values over memcached's 1 MB item limit are not sent at all (iipsrv sends them and the
//!   server refuses them).
//!
//! # Purging what this server stored
//!
//! The admin listener's `POST /cache/purge` deletes the entries this process stored: each
//! successful store is remembered with its image key ([`TRACKED_KEYS`] at most, the oldest
//! forgotten first), and [`Memcached::purge`] sends a `DELETE` for each remembered key of the
//! image (or of every image). Entries stored by other processes (iipsrv, or other instances of
//! this server sharing the memcached servers) cannot be found — memcached cannot list keys, and
//! the keys must stay iipsrv's so that the fleet shares them — so they stay until
//! `MEMCACHED_TIMEOUT`; a changed image is never served from them anyway (the
//! `Last-Modified` check above). `docs/operations.md` says the same for operators.
//!
//! # Failure handling
//!
//! A memcached server that is missing, dead, or dies mid-run must never hold a request:
//! - connect, read and write time out after [`IO_TIMEOUT`]; only a server that stops answering
//!   without closing its connections makes a request wait, for a few timeouts at most, once;
//! - a server that fails is marked down and skipped (every key it holds is a miss) until the
//!   background thread reconnects to it, retrying after a back-off that doubles from
//!   [`FIRST_RETRY`](server::FIRST_RETRY) to [`MAX_RETRY`](server::MAX_RETRY). Its keys are not moved to other servers, as libmemcached
//!   does not move them by default, so every process keeps agreeing on where a key lives;
//! - host names are resolved on the background thread, never on the request path;
//! - servers start "down, retry now": the background thread makes the first connection, so the
//!   first requests after start-up may miss. Later, a request that finds no idle connection to
//!   a server that is up opens one (bounded by the same timeout).
//!
//! # Why an own client
//!
//! The `memcache` crate (0.21, measured in `docs/dependencies.md` §6) speaks the binary protocol,
//! but its keys are `&str` (request strings are bytes and need not be UTF-8), it picks servers
//! with `DefaultHasher` unless given another hash function, building a client fails when any
//! listed server is down, and its r2d2 pools block for 30 s on a dead server. Wrapping all of
//! that would be more code than the commands needed here: `GET` and `SET` of the binary
//! protocol, plus `NOOP` as a health check, over `std` sockets with timeouts (the `wire` module,
//! under 100 lines; the rest is the failure handling any client would need around it). The
//! binary protocol is what iipsrv uses; memcached 1.4 to 1.6 support it (1.6 calls it deprecated
//! in favour of the meta protocol, which stores the same items, so a later switch would not
//! change what is shared).

mod endpoint;
mod keys;
mod server;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::{Response, date};
use endpoint::parse_servers;
pub use keys::key_for;
use keys::server_index;
pub use server::IO_TIMEOUT;
use server::Server;

/// memcached's default item size limit (`-I 1m`): key, value and item header together.
pub(crate) const MAX_ITEM_BYTES: usize = 1024 * 1024;

/// Room for memcached's item header within [`MAX_ITEM_BYTES`].
const ITEM_OVERHEAD_BYTES: usize = 64;

/// Stores waiting for the background thread, at most.
const QUEUE_ITEMS: usize = 1024;

/// Bytes waiting for the background thread, at most (further stores are dropped).
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Stored keys remembered for purging, at most (about 300 bytes each at most).
pub(crate) const TRACKED_KEYS: usize = 65_536;

/// memcached's status for a key it does not hold.
const STATUS_NOT_FOUND: u16 = 0x0001;

/// memcached reads an expiry above this many seconds as an absolute Unix time.
const RELATIVE_EXPIRY_MAX: u32 = 60 * 60 * 24 * 30;

/// The expiry field of a `SET` for `MEMCACHED_TIMEOUT` seconds (0 = never expires).
pub(crate) fn expiry_field(timeout_secs: u32, now: SystemTime) -> u32 {
    if timeout_secs <= RELATIVE_EXPIRY_MAX {
        return timeout_secs;
    }
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (now + u64::from(timeout_secs)).min(u64::from(u32::MAX)) as u32
}

/// Counters since start-up (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups answered from memcached.
    pub hits: u64,
    /// Lookups that found nothing, or failed.
    pub misses: u64,
    /// Entries found but not served because the image changed since they were stored.
    pub stale: u64,
    /// Responses stored.
    pub stored: u64,
    /// Responses not stored: too large, queue full, server down or refusing.
    pub dropped: u64,
    /// Operations that failed on the network (the server is then marked down).
    pub errors: u64,
}

/// The memcached response cache: cheap to share (`Send + Sync`), never blocks a request for
/// longer than [`IO_TIMEOUT`].
#[derive(Clone)]
pub struct Memcached {
    inner: Arc<Inner>,
    queue: SyncSender<Store>,
}

struct Inner {
    servers: Vec<Server>,
    expiry_secs: u32,
    queued_bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    stored: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    /// Keys stored by this process → the image key of their response (for purging).
    tracked: quick_cache::sync::Cache<Vec<u8>, Arc<[u8]>>,
}

struct Store {
    key: Vec<u8>,
    value: Vec<u8>,
    /// The image the response is of, remembered with the key once stored.
    image: Option<Arc<[u8]>>,
}

impl fmt::Debug for Memcached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memcached")
            .field("servers", &self.servers())
            .field("expiry_secs", &self.inner.expiry_secs)
            .finish()
    }
}

impl Memcached {
    /// A client for `MEMCACHED_SERVERS` storing entries for `expiry_secs` (`MEMCACHED_TIMEOUT`);
    /// `None` when the list names no server. Connects nothing on the caller's thread: a
    /// background thread starts connecting at once.
    pub fn new(servers: &str, expiry_secs: u32) -> Option<Memcached> {
        let endpoints = parse_servers(servers);
        if endpoints.is_empty() {
            return None;
        }
        let inner = Arc::new(Inner {
            servers: endpoints.into_iter().map(Server::new).collect(),
            expiry_secs,
            queued_bytes: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            tracked: quick_cache::sync::Cache::new(TRACKED_KEYS),
        });
        let (queue, rx) = mpsc::sync_channel(QUEUE_ITEMS);
        let worker = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("memcached".into())
            .spawn(move || background(&worker, &rx));
        if let Err(e) = spawned {
            tracing::error!("Memcached :: cannot start the background thread: {e}");
            return None;
        }
        Some(Memcached { inner, queue })
    }

    /// The servers, in `MEMCACHED_SERVERS` order (as logged at start-up).
    pub fn servers(&self) -> Vec<String> {
        self.inner
            .servers
            .iter()
            .map(|s| s.endpoint.to_string())
            .collect()
    }

    /// The stored response for a request string, as stored, or `None` (a miss, any failure,
    /// or a value that is not a CGI response).
    pub fn get(&self, request_string: &[u8]) -> Option<Vec<u8>> {
        let value = self
            .inner
            .get(&key_for(request_string))
            .filter(|v| Response::from_cgi_bytes(v).is_some());
        self.count(value.is_some());
        value
    }

    /// The stored response for a request string, parsed; an entry with a `Last-Modified` header
    /// only when `current_mtime()` (the image's modification time now; `None` if it is gone) is
    /// that same second. Otherwise the entry is stale: `None`, and the caller answers and
    /// stores afresh.
    pub fn get_fresh(
        &self,
        request_string: &[u8],
        current_mtime: impl FnOnce() -> Option<SystemTime>,
    ) -> Option<Response> {
        let value = self.inner.get(&key_for(request_string));
        let response = value.as_deref().and_then(Response::from_cgi_bytes);
        let fresh = response.filter(|r| {
            let Some(stored) = r.header("Last-Modified").and_then(date::parse_http_date) else {
                return true;
            };
            let ok = current_mtime().map(date::whole_seconds) == Some(stored);
            if !ok {
                self.inner.stale.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("Memcached :: stale entry (the image changed) ignored");
            }
            ok
        });
        self.count(fresh.is_some());
        fresh
    }

    fn count(&self, hit: bool) {
        let counter = if hit {
            &self.inner.hits
        } else {
            &self.inner.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Store a response for a request string, in the background: returns at once. Dropped
    /// (silently, as iipsrv's failed stores are) when too large for memcached, when its server
    /// is down, or when the queue is full.
    pub fn set(&self, request_string: &[u8], response_bytes: &[u8]) {
        if crate::storage::collect::pending() {
            // A pass that is waiting for storage is thrown away: store nothing it answered.
            return;
        }
        let key = key_for(request_string);
        if self.accept(&key, response_bytes.len()) {
            self.enqueue(key, response_bytes.to_vec(), None);
        }
    }

    /// [`Memcached::set`] for a response the caller no longer needs (saves a copy).
    pub fn set_owned(&self, request_string: &[u8], response_bytes: Vec<u8>) {
        self.set_for_image(request_string, None, response_bytes);
    }

    /// [`Memcached::set_owned`] for a response of the image `image` (its key): once stored,
    /// the key is remembered so that [`Memcached::purge`] can delete it.
    pub fn set_for_image(
        &self,
        request_string: &[u8],
        image: Option<Arc<[u8]>>,
        response_bytes: Vec<u8>,
    ) {
        if crate::storage::collect::pending() {
            // A pass that is waiting for storage is thrown away: store nothing it answered.
            return;
        }
        let key = key_for(request_string);
        if self.accept(&key, response_bytes.len()) {
            self.enqueue(key, response_bytes, image);
        }
    }

    /// Delete the entries this process stored for the image `image` (its key), or for every
    /// image; returns how many memcached deleted. Blocks on the network (at most
    /// [`IO_TIMEOUT`] per server that stops answering): call it off the request path.
    pub fn purge(&self, image: Option<&[u8]>) -> u64 {
        let inner = &*self.inner;
        let keys: Vec<Vec<u8>> = inner
            .tracked
            .iter()
            .filter(|(_, i)| image.is_none_or(|image| &**i == image))
            .map(|(k, _)| k)
            .collect();
        let mut deleted = 0;
        for key in keys {
            inner.tracked.remove(&key);
            if inner.delete(&key) {
                deleted += 1;
            }
        }
        deleted
    }

    /// The servers reachable now, and how many are configured.
    pub fn servers_up(&self) -> (usize, usize) {
        let servers = &self.inner.servers;
        (servers.iter().filter(|s| s.is_up()).count(), servers.len())
    }

    fn accept(&self, key: &[u8], len: usize) -> bool {
        let inner = &*self.inner;
        if key.len() + len + ITEM_OVERHEAD_BYTES > MAX_ITEM_BYTES {
            tracing::trace!("Memcached :: {len} bytes are too large to store");
        } else if !inner.servers[server_index(key, inner.servers.len())].is_up() {
            tracing::trace!("Memcached :: not stored: server down");
        } else if inner.queued_bytes.load(Ordering::Relaxed) + len > QUEUE_BYTES {
            tracing::debug!("Memcached :: not stored: store queue full");
        } else {
            return true;
        }
        inner.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn enqueue(&self, key: Vec<u8>, value: Vec<u8>, image: Option<Arc<[u8]>>) {
        let len = value.len();
        self.inner.queued_bytes.fetch_add(len, Ordering::Relaxed);
        match self.queue.try_send(Store { key, value, image }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("Memcached :: not stored: store queue full");
            }
        }
    }

    /// Wait (at most `timeout`) until every server has been reached once. Called at start-up,
    /// before the server accepts requests, so that the first responses can be stored; a server
    /// that is down is simply retried in the background afterwards.
    pub fn wait_connected(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.inner.servers.iter().all(|s| s.is_up()) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Counters since start-up.
    pub fn stats(&self) -> Stats {
        let i = &*self.inner;
        Stats {
            hits: i.hits.load(Ordering::Relaxed),
            misses: i.misses.load(Ordering::Relaxed),
            stale: i.stale.load(Ordering::Relaxed),
            stored: i.stored.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
            errors: i.errors.load(Ordering::Relaxed),
        }
    }

    /// Whether the server for this request string is currently reachable.
    pub fn is_up(&self, request_string: &[u8]) -> bool {
        let key = key_for(request_string);
        self.inner.servers[server_index(&key, self.inner.servers.len())].is_up()
    }
}

impl Inner {
    fn server_for(&self, key: &[u8]) -> &Server {
        &self.servers[server_index(key, self.servers.len())]
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let server = self.server_for(key);
        if !server.is_up() {
            return None;
        }
        let request = wire::request(wire::OP_GET, key, &[], &[]);
        match server.call(&request, wire::OP_GET) {
            // Whatever another process put there, only a CGI response is ever served (the
            // callers parse it).
            Ok(reply) if reply.status == wire::STATUS_OK => Some(reply.value().to_vec()),
            Ok(_) => None,
            Err(e) => {
                self.failed(server, &e);
                None
            }
        }
    }

    fn failed(&self, server: &Server, e: &std::io::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        server.mark_down(e);
    }

    /// Delete `key`; whether memcached held it.
    fn delete(&self, key: &[u8]) -> bool {
        let server = self.server_for(key);
        if !server.is_up() {
            return false;
        }
        let request = wire::request(wire::OP_DELETE, key, &[], &[]);
        match server.call(&request, wire::OP_DELETE) {
            Ok(reply) if reply.status == wire::STATUS_OK => true,
            Ok(reply) => {
                if reply.status != STATUS_NOT_FOUND {
                    tracing::debug!(
                        "Memcached :: {} refused a delete (status {:#x})",
                        server.endpoint,
                        reply.status
                    );
                }
                false
            }
            Err(e) => {
                self.failed(server, &e);
                false
            }
        }
    }

    /// Store a value; whether memcached took it.
    fn store(&self, key: &[u8], value: &[u8]) -> bool {
        let server = self.server_for(key);
        if !server.is_up() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let start = Instant::now();
        let mut extras = [0u8; 8];
        let expiry = expiry_field(self.expiry_secs, SystemTime::now());
        extras[4..].copy_from_slice(&expiry.to_be_bytes());
        let request = wire::request(wire::OP_SET, key, &extras, value);
        match server.call(&request, wire::OP_SET) {
            Ok(reply) if reply.status == wire::STATUS_OK => {
                self.stored.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(
                    "Memcached :: stored {} bytes in {} microseconds",
                    value.len(),
                    start.elapsed().as_micros()
                );
                true
            }
            Ok(reply) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "Memcached :: {} refused {} bytes (status {:#x})",
                    server.endpoint,
                    value.len(),
                    reply.status
                );
                false
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.failed(server, &e);
                false
            }
        }
    }
}

/// The background thread: sends queued stores and reconnects failed servers when their
/// back-off has passed. Ends when the [`Memcached`] is dropped.
fn background(inner: &Inner, rx: &Receiver<Store>) {
    loop {
        let now = Instant::now();
        let mut wait = Duration::from_millis(500);
        for server in &inner.servers {
            if let Some(due) = server.revive_if_due(now) {
                wait = wait.min(due.saturating_duration_since(Instant::now()));
            }
        }
        match rx.recv_timeout(wait) {
            Ok(store) => {
                inner
                    .queued_bytes
                    .fetch_sub(store.value.len(), Ordering::Relaxed);
                if inner.store(&store.key, &store.value) {
                    if let Some(image) = store.image {
                        inner.tracked.insert(store.key, image);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests;
