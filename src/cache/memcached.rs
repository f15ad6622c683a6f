//! The memcached response cache (`cache.md` §5): whole CGI responses (headers and body) stored
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
//! - iipsrv serves an entry until it expires even when the image file changed (`cache.md` §5,
//!   **[QUIRK]**). [`Memcached::get_fresh`] checks the `Last-Modified` header of a stored
//!   response against the image's current modification time (one `stat`), so a replaced image
//!   is never served stale. Entries without `Last-Modified` (IIP errors, IIIF redirects) are
//!   served as stored.
//! - `MEMCACHED_TIMEOUT` above 30 days: memcached reads such a number as an absolute Unix time,
//!   so iipsrv's entries expire at once (a date in 1970). Here it is converted to now + timeout.
//! - Keys over 250 bytes are hashed (above) instead of never being cached.
//! - Values over memcached's 1 MB item limit are not sent at all (iipsrv sends them and the
//!   server refuses them).
//!
//! # Failure handling
//!
//! A memcached server that is missing, dead, or dies mid-run must never hold a request:
//! - connect, read and write time out after [`IO_TIMEOUT`]; only a server that stops answering
//!   without closing its connections makes a request wait, for a few timeouts at most, once;
//! - a server that fails is marked down and skipped (every key it holds is a miss) until the
//!   background thread reconnects to it, retrying after a back-off that doubles from
//!   [`FIRST_RETRY`] to [`MAX_RETRY`]. Its keys are not moved to other servers, as libmemcached
//!   does not move them by default, so every process keeps agreeing on where a key lives;
//! - host names are resolved on the background thread, never on the request path;
//! - servers start "down, retry now": the background thread makes the first connection, so the
//!   first requests after start-up may miss. Later, a request that finds no idle connection to
//!   a server that is up opens one (bounded by the same timeout).
//!
//! # Why an own client
//!
//! The `memcache` crate (0.21, measured in `research/crates.md` §6) speaks the binary protocol,
//! but its keys are `&str` (request strings are bytes and need not be UTF-8), it picks servers
//! with `DefaultHasher` unless given another hash function, building a client fails when any
//! listed server is down, and its r2d2 pools block for 30 s on a dead server. Wrapping all of
//! that would be more code than the commands needed here: `GET` and `SET` of the binary
//! protocol, plus `NOOP` as a health check, over `std` sockets with timeouts (the `wire` module,
//! under 100 lines; the rest is the failure handling any client would need around it). The
//! binary protocol is what iipsrv uses; memcached 1.4 to 1.6 support it (1.6 calls it deprecated
//! in favour of the meta protocol, which stores the same items, so a later switch would not
//! change what is shared).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::http::{Response, date};

/// memcached's default port, used when an entry of `MEMCACHED_SERVERS` names none.
pub const DEFAULT_PORT: u16 = 11211;

/// The prefix iipsrv puts before the request string.
pub const KEY_PREFIX: &[u8] = b"iipsrv::";

/// The prefix of hashed keys (request strings too long for a memcached key).
pub const HASHED_KEY_PREFIX: &[u8] = b"iipsrv#sha256:";

/// memcached's longest key.
pub const MAX_KEY_BYTES: usize = 250;

/// memcached's default item size limit (`-I 1m`): key, value and item header together.
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;

/// Room for memcached's item header within [`MAX_ITEM_BYTES`].
const ITEM_OVERHEAD_BYTES: usize = 64;

/// Connect, read and write timeout of every memcached operation.
pub const IO_TIMEOUT: Duration = Duration::from_millis(50);

/// The first back-off before a failed server is tried again.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest back-off between attempts to reach a failed server.
pub const MAX_RETRY: Duration = Duration::from_secs(5);

/// Stores waiting for the background thread, at most.
const QUEUE_ITEMS: usize = 1024;

/// Bytes waiting for the background thread, at most (further stores are dropped).
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Idle connections kept per server.
const IDLE_PER_SERVER: usize = 32;

/// The largest reply body accepted (a mixed fleet may have stored more than we would).
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;

/// memcached reads an expiry above this many seconds as an absolute Unix time.
const RELATIVE_EXPIRY_MAX: u32 = 60 * 60 * 24 * 30;

/// One entry of `MEMCACHED_SERVERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host[:port]` or `[ipv6]:port`.
    Tcp { host: String, port: u16 },
    /// An absolute path: a UNIX socket (libmemcached's rule for names starting with `/`).
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Parse `MEMCACHED_SERVERS` as libmemcached's `memcached_servers_parse` does: a comma list of
/// `host[:port[:weight]]`, `[ipv6][:port]` or `/unix/socket/path`; port 0 or none means
/// [`DEFAULT_PORT`]; weights do not matter for modulo distribution and are ignored. Empty entries
/// are skipped; an entry with a port that is not a number from 0 to 65535 is skipped with a
/// warning (libmemcached would truncate it to 16 bits).
pub fn parse_servers(list: &str) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        if entry.starts_with('/') {
            out.push(Endpoint::Unix(PathBuf::from(entry)));
            continue;
        }
        let (host, rest) = match (entry.strip_prefix('['), entry.find(']')) {
            (Some(inner), Some(close)) => {
                let host = &inner[..close - 1];
                let after = &entry[close + 1..];
                (host, after.strip_prefix(':'))
            }
            _ => match entry.split_once(':') {
                Some((h, r)) => (h, Some(r)),
                None => (entry, None),
            },
        };
        let port = match rest {
            None => DEFAULT_PORT,
            Some(r) => {
                // The port ends at the weight separator (' ' or ':'), as in libmemcached.
                let digits = r.split([' ', ':']).next().unwrap_or("");
                match digits.parse::<u16>() {
                    Ok(0) => DEFAULT_PORT,
                    Ok(p) => p,
                    Err(_) if digits.is_empty() => DEFAULT_PORT,
                    Err(_) => {
                        tracing::warn!(
                            "Memcached :: ignoring server '{entry}': '{digits}' is not a port"
                        );
                        continue;
                    }
                }
            }
        };
        let host = if host.is_empty() { "localhost" } else { host };
        out.push(Endpoint::Tcp {
            host: host.to_string(),
            port,
        });
    }
    out
}

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
pub fn one_at_a_time(key: &[u8]) -> u32 {
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
pub fn server_index(key: &[u8], servers: usize) -> usize {
    if servers <= 1 {
        0
    } else {
        (one_at_a_time(key) % servers as u32) as usize
    }
}

/// The expiry field of a `SET` for `MEMCACHED_TIMEOUT` seconds (0 = never expires).
pub fn expiry_field(timeout_secs: u32, now: SystemTime) -> u32 {
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
}

/// The memcached response cache: cheap to share (`Send + Sync`), never blocks a request for
/// longer than [`IO_TIMEOUT`].
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
}

struct Store {
    key: Vec<u8>,
    value: Vec<u8>,
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
        let key = key_for(request_string);
        if self.accept(&key, response_bytes.len()) {
            self.enqueue(key, response_bytes.to_vec());
        }
    }

    /// [`Memcached::set`] for a response the caller no longer needs (saves a copy).
    pub fn set_owned(&self, request_string: &[u8], response_bytes: Vec<u8>) {
        let key = key_for(request_string);
        if self.accept(&key, response_bytes.len()) {
            self.enqueue(key, response_bytes);
        }
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

    fn enqueue(&self, key: Vec<u8>, value: Vec<u8>) {
        let len = value.len();
        self.inner.queued_bytes.fetch_add(len, Ordering::Relaxed);
        match self.queue.try_send(Store { key, value }) {
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
                server.mark_down(&e);
                None
            }
        }
    }

    fn store(&self, key: &[u8], value: &[u8]) {
        let server = self.server_for(key);
        if !server.is_up() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
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
            }
            Ok(reply) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "Memcached :: {} refused {} bytes (status {:#x})",
                    server.endpoint,
                    value.len(),
                    reply.status
                );
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                server.mark_down(&e);
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
                inner.store(&store.key, &store.value);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One memcached server: its pool of idle connections and whether it is up.
struct Server {
    endpoint: Endpoint,
    up: AtomicBool,
    idle: Mutex<Vec<Conn>>,
    /// Resolved addresses and the retry schedule (the background thread's, mostly).
    state: Mutex<ServerState>,
}

struct ServerState {
    addrs: Vec<SocketAddr>,
    retry_at: Instant,
    backoff: Duration,
    /// Whether the server has been reached at least once (for the log wording).
    reached: bool,
}

impl Server {
    fn new(endpoint: Endpoint) -> Server {
        Server {
            endpoint,
            up: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            state: Mutex::new(ServerState {
                addrs: Vec::new(),
                retry_at: Instant::now(),
                backoff: FIRST_RETRY,
                reached: false,
            }),
        }
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request and its reply. A pooled connection the server has closed meanwhile (a
    /// restart, an idle timeout) gets one retry on a fresh connection; a timeout does not.
    fn call(&self, request: &[u8], op: u8) -> io::Result<wire::Reply> {
        let pooled = self.idle().pop();
        if let Some(mut conn) = pooled {
            match wire::exchange(&mut conn, request, op) {
                Ok(reply) => {
                    self.give_back(conn);
                    return Ok(reply);
                }
                Err(e) if !is_closed(&e) => return Err(e),
                Err(_) => self.idle().clear(),
            }
        }
        let mut conn = self.connect()?;
        let reply = wire::exchange(&mut conn, request, op)?;
        self.give_back(conn);
        Ok(reply)
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle();
        if idle.len() < IDLE_PER_SERVER {
            idle.push(conn);
        }
    }

    /// A new connection with the timeouts set, to the addresses the background thread resolved.
    fn connect(&self) -> io::Result<Conn> {
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(Conn::Unix(s))
            }
            Endpoint::Tcp { .. } => {
                let addrs = self.state().addrs.clone();
                let mut last = io::Error::new(io::ErrorKind::NotConnected, "not resolved");
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            s.set_read_timeout(Some(IO_TIMEOUT))?;
                            s.set_write_timeout(Some(IO_TIMEOUT))?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// Stop using the server until the background thread has reached it again.
    fn mark_down(&self, e: &io::Error) {
        let was_up = self.up.swap(false, Ordering::AcqRel);
        self.idle().clear();
        if was_up {
            let mut st = self.state();
            st.backoff = FIRST_RETRY;
            st.retry_at = Instant::now() + FIRST_RETRY;
            tracing::warn!(
                "Memcached :: server {} failed ({e}); its entries are misses until it answers again",
                self.endpoint
            );
        }
    }

    /// If the server is down and its retry time has come, try to reach it (resolve, connect,
    /// `NOOP`). Returns the next retry time while it stays down.
    fn revive_if_due(&self, now: Instant) -> Option<Instant> {
        if self.is_up() {
            return None;
        }
        let retry_at = self.state().retry_at;
        if now < retry_at {
            return Some(retry_at);
        }
        match self.probe() {
            Ok(conn) => {
                self.give_back(conn);
                let mut st = self.state();
                st.backoff = FIRST_RETRY;
                if st.reached {
                    tracing::info!("Memcached :: server {} is back", self.endpoint);
                } else {
                    tracing::debug!("Memcached :: connected to {}", self.endpoint);
                }
                st.reached = true;
                self.up.store(true, Ordering::Release);
                None
            }
            Err(e) => {
                let mut st = self.state();
                if !st.reached && st.backoff == FIRST_RETRY {
                    tracing::info!(
                        "Memcached :: cannot reach server {} ({e}); retrying in the background",
                        self.endpoint
                    );
                }
                st.retry_at = Instant::now() + st.backoff;
                st.backoff = (st.backoff * 2).min(MAX_RETRY);
                Some(st.retry_at)
            }
        }
    }

    fn probe(&self) -> io::Result<Conn> {
        if let Endpoint::Tcp { host, port } = &self.endpoint {
            let addrs: Vec<SocketAddr> = (host.as_str(), *port).to_socket_addrs()?.collect();
            self.state().addrs = addrs;
        }
        let mut conn = self.connect()?;
        let noop = wire::request(wire::OP_NOOP, &[], &[], &[]);
        let reply = wire::exchange(&mut conn, &noop, wire::OP_NOOP)?;
        if reply.status != wire::STATUS_OK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("NOOP answered with status {:#x}", reply.status),
            ));
        }
        Ok(conn)
    }
}

/// Errors that mean "the other side closed this connection" (worth one fresh connection).
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The three commands of memcached's binary protocol this client needs (framing only).
mod wire {
    use std::io::{self, Read, Write};

    pub const OP_GET: u8 = 0x00;
    pub const OP_SET: u8 = 0x01;
    pub const OP_NOOP: u8 = 0x0a;
    pub const STATUS_OK: u16 = 0x0000;
    const REQUEST_MAGIC: u8 = 0x80;
    const RESPONSE_MAGIC: u8 = 0x81;
    const HEADER: usize = 24;

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
        if body_len > super::MAX_REPLY_BYTES || extras_len + key_len > body_len {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::TcpListener;

    #[test]
    fn server_lists_parse_as_libmemcached_does() {
        let tcp = |h: &str, p| Endpoint::Tcp {
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_servers("localhost"), [tcp("localhost", 11211)]);
        assert_eq!(
            parse_servers("a:1, b ,c:0,,d:22:5,e:33 7"),
            [
                tcp("a", 1),
                tcp("b", 11211),
                tcp("c", 11211),
                tcp("d", 22),
                tcp("e", 33)
            ]
        );
        assert_eq!(
            parse_servers("[::1]:5,[fe80::1]"),
            [tcp("::1", 5), tcp("fe80::1", 11211)]
        );
        assert_eq!(
            parse_servers("/run/memcached.sock"),
            [Endpoint::Unix("/run/memcached.sock".into())]
        );
        assert_eq!(parse_servers(":7"), [tcp("localhost", 7)]);
        assert!(parse_servers("").is_empty());
        assert!(parse_servers(" , ").is_empty());
        assert_eq!(parse_servers("bad:port,ok"), [tcp("ok", 11211)]);
        assert_eq!(parse_servers("big:70000"), []);
        assert_eq!(tcp("::1", 5).to_string(), "[::1]:5");
        assert_eq!(tcp("a", 5).to_string(), "a:5");
    }

    #[test]
    fn keys_are_iipsrvs_until_too_long() {
        assert_eq!(key_for(b"FIF=a.tif&JTL=1,0"), b"iipsrv::FIF=a.tif&JTL=1,0");
        // Spaces and control bytes stay: the binary protocol carries them.
        assert_eq!(key_for(b"a b\r\n\0"), b"iipsrv::a b\r\n\0");
        let longest = vec![b'x'; MAX_KEY_BYTES - KEY_PREFIX.len()];
        assert_eq!(key_for(&longest).len(), MAX_KEY_BYTES);
        assert!(key_for(&longest).starts_with(KEY_PREFIX));
        let long = vec![b'x'; MAX_KEY_BYTES - KEY_PREFIX.len() + 1];
        let k = key_for(&long);
        assert!(k.starts_with(HASHED_KEY_PREFIX));
        assert_eq!(k.len(), HASHED_KEY_PREFIX.len() + 64);
        assert!(k.iter().all(|b| b.is_ascii_graphic()));
        let mut other = long.clone();
        other[0] = b'y';
        assert_ne!(key_for(&other), k);
        assert_eq!(key_for(&long), k, "deterministic");
    }

    #[test]
    fn distribution_matches_libmemcached() {
        // Where Debian's iipsrv 1.1 (libmemcached 1.1.4) put these keys with two servers.
        let cases: [(&[u8], u32, usize); 6] = [
            (
                b"iipsrv::FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size",
                3155770106,
                0,
            ),
            (b"iipsrv::FIF=sample.tif&OBJ=Resolutions", 1860060030, 0),
            (b"iipsrv::FIF=sample.tif&JTL=0,0", 1544086058, 0),
            (b"iipsrv::FIF=sample.tif&OBJ=Tile-size", 2210897418, 0),
            (b"iipsrv::FIF=sample.tif&JTL=1,0", 3756932413, 1),
            (b"iipsrv::FIF=sample.tif&JTL=1,1", 2190574213, 1),
        ];
        for (key, hash, server) in cases {
            assert_eq!(one_at_a_time(key), hash);
            assert_eq!(server_index(key, 2), server);
            assert_eq!(server_index(key, 1), 0);
        }
        // Bytes >= 0x80 are C chars: sign-extended where char is signed.
        let high = b"iipsrv::FIF=\xe9.tif&JTL=0,0";
        let expected = if std::ffi::c_char::MIN == 0 {
            2976737384
        } else {
            4027603945
        };
        assert_eq!(one_at_a_time(high), expected);
    }

    #[test]
    fn expiry_beyond_thirty_days_becomes_absolute() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(expiry_field(0, now), 0);
        assert_eq!(expiry_field(86400, now), 86400);
        assert_eq!(expiry_field(2_592_000, now), 2_592_000);
        assert_eq!(expiry_field(2_592_001, now), 1_802_592_001);
        assert_eq!(expiry_field(u32::MAX, now), u32::MAX);
    }

    #[test]
    fn request_frames() {
        let f = wire::request(wire::OP_SET, b"k", &[0, 0, 0, 0, 0, 0, 0, 9], b"vv");
        assert_eq!(
            &f[..12],
            &[0x80, 0x01, 0, 1, 8, 0, 0, 0, 0, 0, 0, 11],
            "magic, opcode, key length, extras length, data type, vbucket, body length"
        );
        assert_eq!(&f[24..], &[0, 0, 0, 0, 0, 0, 0, 9, b'k', b'v', b'v']);
        let mut reply: &[u8] = &[
            0x81, 0x00, 0, 0, 4, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, b'h', b'i',
        ];
        let r = wire::read_reply(&mut reply, wire::OP_GET).unwrap();
        assert_eq!((r.status, r.value()), (0, &b"hi"[..]));
        let mut wrong: &[u8] = &[
            0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(wire::read_reply(&mut wrong, wire::OP_GET).is_err());
    }

    /// What a fake server does with each connection.
    #[derive(Clone, Copy, PartialEq)]
    enum Behaviour {
        /// A working memcached (GET, SET, NOOP).
        Serve,
        /// Accepts and reads, never answers.
        Hang,
        /// Answers `NOOP` (the health check), never anything else: a server that hangs later.
        HangAfterNoop,
    }

    /// A fake memcached on 127.0.0.1 speaking the binary protocol, in a thread.
    struct Fake {
        port: u16,
        items: Arc<Items>,
        stop: Arc<AtomicBool>,
    }

    impl Fake {
        fn start(behaviour: Behaviour) -> Fake {
            Fake::on(TcpListener::bind("127.0.0.1:0").unwrap(), behaviour)
        }

        fn on(listener: TcpListener, behaviour: Behaviour) -> Fake {
            let port = listener.local_addr().unwrap().port();
            let items = Arc::new(Mutex::new(HashMap::new()));
            let stop = Arc::new(AtomicBool::new(false));
            listener.set_nonblocking(true).unwrap();
            let (its, st) = (items.clone(), stop.clone());
            std::thread::spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let (its, st) = (its.clone(), st.clone());
                            std::thread::spawn(move || serve(s, behaviour, &its, &st));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            Fake { port, items, stop }
        }

        fn addr(&self) -> String {
            format!("127.0.0.1:{}", self.port)
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    type Items = Mutex<HashMap<Vec<u8>, (Vec<u8>, u32)>>;

    fn serve(mut s: TcpStream, behaviour: Behaviour, items: &Items, stop: &AtomicBool) {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut h = [0u8; 24];
        loop {
            if stop.load(Ordering::Relaxed) {
                return; // closes the connection, as a killed memcached would
            }
            match s.read_exact(&mut h) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
            let key_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let extras = usize::from(h[4]);
            let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            let mut body = vec![0u8; len];
            s.set_read_timeout(None).unwrap();
            if s.read_exact(&mut body).is_err() {
                return;
            }
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            if behaviour == Behaviour::Hang
                || (behaviour == Behaviour::HangAfterNoop && h[1] != wire::OP_NOOP)
            {
                continue;
            }
            let key = body[extras..extras + key_len].to_vec();
            let (status, extras_out, value): (u16, Vec<u8>, Vec<u8>) = match h[1] {
                wire::OP_GET => match items.lock().unwrap().get(&key) {
                    Some((v, _)) => (0, vec![0; 4], v.clone()),
                    None => (1, vec![], b"Not found".to_vec()),
                },
                wire::OP_SET => {
                    let exp = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    let value = body[extras + key_len..].to_vec();
                    items.lock().unwrap().insert(key, (value, exp));
                    (0, vec![], vec![])
                }
                wire::OP_NOOP => (0, vec![], vec![]),
                _ => (0x81, vec![], b"Unknown command".to_vec()),
            };
            let mut r = vec![0x81, h[1], 0, 0, extras_out.len() as u8, 0];
            r.extend_from_slice(&status.to_be_bytes());
            r.extend_from_slice(&((extras_out.len() + value.len()) as u32).to_be_bytes());
            r.extend_from_slice(&[0; 12]);
            r.extend_from_slice(&extras_out);
            r.extend_from_slice(&value);
            if s.write_all(&r).is_err() {
                return;
            }
        }
    }

    fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    const RESPONSE: &[u8] =
        b"Server: iipsrv/1.3\r\nContent-Type: text/plain\r\n\r\nMax-size:1 1\r\n";

    #[test]
    fn empty_list_is_no_cache() {
        assert!(Memcached::new("", 86400).is_none());
        assert!(Memcached::new(" ,, ", 86400).is_none());
    }

    #[test]
    fn round_trip_through_a_server() {
        let fake = Fake::start(Behaviour::Serve);
        let mc = Memcached::new(&fake.addr(), 86400).unwrap();
        wait_until("the server to be reached", || mc.is_up(b"q"));
        assert_eq!(mc.get(b"q"), None);
        mc.set(b"q", RESPONSE);
        wait_until("the store", || mc.stats().stored == 1);
        assert_eq!(mc.get(b"q").as_deref(), Some(RESPONSE));
        let items = fake.items.lock().unwrap();
        let (value, expiry) = &items[&b"iipsrv::q"[..]];
        assert_eq!((&value[..], *expiry), (RESPONSE, 86400));
        drop(items);
        // Not a CGI response (another client's data): never served.
        fake.items
            .lock()
            .unwrap()
            .insert(b"iipsrv::junk".to_vec(), (b"junk".to_vec(), 0));
        assert_eq!(mc.get(b"junk"), None);
        // Too large for memcached: dropped before the queue.
        mc.set(b"big", &vec![b'x'; MAX_ITEM_BYTES]);
        assert_eq!(mc.stats().dropped, 1);
        let s = mc.stats();
        assert_eq!((s.hits, s.stored), (1, 1));
    }

    #[test]
    fn fresh_lookups_compare_last_modified() {
        let fake = Fake::start(Behaviour::Serve);
        let mc = Memcached::new(&fake.addr(), 60).unwrap();
        wait_until("the server to be reached", || mc.is_up(b"q"));
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let with_date = b"Last-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\nx";
        mc.set(b"dated", with_date);
        mc.set(b"undated", RESPONSE);
        wait_until("the stores", || mc.stats().stored == 2);
        let later = t + Duration::from_millis(1500);
        assert!(
            mc.get_fresh(b"dated", || Some(t + Duration::from_millis(300)))
                .is_some()
        );
        assert!(mc.get_fresh(b"dated", || Some(later)).is_none());
        assert!(mc.get_fresh(b"dated", || None).is_none(), "image gone");
        assert!(
            mc.get_fresh(b"undated", || panic!("no date, no check"))
                .is_some()
        );
        assert_eq!(mc.stats().stale, 2);
    }

    #[test]
    fn a_refused_server_costs_nothing() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mc = Memcached::new(&format!("127.0.0.1:{port}"), 60).unwrap();
        let start = Instant::now();
        for _ in 0..1000 {
            assert_eq!(mc.get(b"FIF=x.tif&OBJ=Max-size"), None);
            mc.set(b"FIF=x.tif&OBJ=Max-size", RESPONSE);
        }
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_server_hanging_from_the_start_never_delays_a_request() {
        let fake = Fake::start(Behaviour::Hang);
        let mc = Memcached::new(&fake.addr(), 60).unwrap();
        // The background probe times out; requests never wait on it.
        std::thread::sleep(IO_TIMEOUT * 3);
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(mc.get(b"q"), None);
        }
        assert!(start.elapsed() < IO_TIMEOUT, "{:?}", start.elapsed());
        assert!(!mc.is_up(b"q"));
    }

    #[test]
    fn a_server_that_stops_answering_costs_one_timeout() {
        let fake = Fake::start(Behaviour::HangAfterNoop);
        let mc = Memcached::new(&fake.addr(), 60).unwrap();
        wait_until("the server to be reached", || mc.is_up(b"q"));
        let start = Instant::now();
        assert_eq!(mc.get(b"q"), None);
        let first = start.elapsed();
        assert!(first >= IO_TIMEOUT && first < IO_TIMEOUT * 4, "{first:?}");
        assert!(!mc.is_up(b"q"));
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(mc.get(b"q"), None);
        }
        assert!(start.elapsed() < IO_TIMEOUT, "{:?}", start.elapsed());
    }

    #[test]
    fn a_server_that_dies_and_returns() {
        let fake = Fake::start(Behaviour::Serve);
        let port = fake.port;
        let mc = Memcached::new(&fake.addr(), 60).unwrap();
        wait_until("the server to be reached", || mc.is_up(b"q"));
        mc.set(b"q", RESPONSE);
        wait_until("the store", || mc.get(b"q").is_some());
        drop(fake);
        // Its connections close (the fake's connection threads may answer one more request
        // while they wind down): misses, then the server is skipped.
        let start = Instant::now();
        wait_until("the server to be marked down", || {
            mc.get(b"q").is_none() && !mc.is_up(b"q")
        });
        assert_eq!(mc.get(b"q"), None);
        assert!(start.elapsed() < Duration::from_secs(1));
        // Back on the same port (empty, as a restarted memcached): used again after the back-off.
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let _again = Fake::on(listener, Behaviour::Serve);
        wait_until("the server to be back", || mc.is_up(b"q"));
        mc.set(b"q", RESPONSE);
        wait_until("a hit", || mc.get(b"q").is_some());
    }

    #[test]
    fn keys_spread_over_servers_in_list_order() {
        let (a, b) = (Fake::start(Behaviour::Serve), Fake::start(Behaviour::Serve));
        let mc = Memcached::new(&format!("{},{}", a.addr(), b.addr()), 60).unwrap();
        wait_until("both servers", || {
            mc.is_up(b"FIF=sample.tif&JTL=0,0") && mc.is_up(b"FIF=sample.tif&JTL=1,0")
        });
        mc.set(b"FIF=sample.tif&JTL=0,0", RESPONSE); // server 0 (see above)
        mc.set(b"FIF=sample.tif&JTL=1,0", RESPONSE); // server 1
        wait_until("the stores", || mc.stats().stored == 2);
        assert!(
            a.items
                .lock()
                .unwrap()
                .contains_key(&b"iipsrv::FIF=sample.tif&JTL=0,0"[..])
        );
        assert!(
            b.items
                .lock()
                .unwrap()
                .contains_key(&b"iipsrv::FIF=sample.tif&JTL=1,0"[..])
        );
        assert_eq!(a.items.lock().unwrap().len(), 1);
        assert_eq!(b.items.lock().unwrap().len(), 1);
    }
}
