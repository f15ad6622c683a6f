//! One memcached server: a pool of connections with timeouts, and whether the server is up.
//! A server that fails is marked down (its keys are misses) until the background thread,
//! retrying with a doubling back-off, reaches it again.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::endpoint::Endpoint;
use super::wire;

/// Connect, read and write timeout of every memcached operation.
pub const IO_TIMEOUT: Duration = Duration::from_millis(50);

/// The first back-off before a failed server is tried again.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest back-off between attempts to reach a failed server.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(5);

/// Idle connections kept per server.
const IDLE_PER_SERVER: usize = 32;

/// One memcached server: its pool of idle connections and whether it is up.
pub(super) struct Server {
    pub endpoint: Endpoint,
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
    pub(crate) fn new(endpoint: Endpoint) -> Server {
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

    pub(crate) fn is_up(&self) -> bool {
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
    pub(crate) fn call(&self, request: &[u8], op: u8) -> io::Result<wire::Reply> {
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
    pub(crate) fn mark_down(&self, e: &io::Error) {
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
    pub(crate) fn revive_if_due(&self, now: Instant) -> Option<Instant> {
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
