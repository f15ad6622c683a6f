//! Listening sockets: `--bind` (TCP over IPv4 or IPv6, or a UNIX socket, with a real backlog
//! through socket2) and the listening socket inherited on file descriptor 0 (spawn-fcgi, Apache
//! mod_fcgid, lighttpd `bin-path`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;

use socket2::{Domain, SockAddr, Socket, Type};

/// Where `--bind` asks us to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSpec {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Parse a socket spec as libfcgi does, plus IPv6:
/// - `[v6addr]:port` → IPv6 TCP;
/// - `host:port` where the part after the first colon is a port number → TCP; an empty host or
///   `*` means all IPv4 addresses; a host name is resolved (the first address is used);
/// - anything else → a UNIX socket path.
pub fn parse_bind(spec: &str) -> io::Result<BindSpec> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, port) = rest
            .split_once("]:")
            .ok_or_else(|| invalid(format!("'{spec}': expected [address]:port")))?;
        let ip: IpAddr = host
            .parse()
            .map_err(|_| invalid(format!("'{host}' is not an IPv6 address")))?;
        let port = parse_port(port).ok_or_else(|| invalid(format!("'{port}' is not a port")))?;
        return Ok(BindSpec::Tcp(SocketAddr::new(ip, port)));
    }
    if let Some((host, port)) = spec.split_once(':') {
        if let Some(port) = parse_port(port) {
            if host.is_empty() || host == "*" {
                return Ok(BindSpec::Tcp(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    port,
                )));
            }
            if let Ok(ip) = host.parse::<IpAddr>() {
                return Ok(BindSpec::Tcp(SocketAddr::new(ip, port)));
            }
            let addr = (host, port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| invalid(format!("'{host}' does not resolve")))?;
            return Ok(BindSpec::Tcp(addr));
        }
    }
    Ok(BindSpec::Unix(PathBuf::from(spec)))
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A bound, listening socket (not yet registered with the async runtime).
#[derive(Debug)]
pub enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl StdListener {
    /// Register with the tokio runtime (must be called inside it).
    pub fn into_tokio(self) -> io::Result<Listener> {
        Ok(match self {
            StdListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                Listener::Tcp(tokio::net::TcpListener::from_std(l)?)
            }
            StdListener::Unix(l) => {
                l.set_nonblocking(true)?;
                Listener::Unix(tokio::net::UnixListener::from_std(l)?)
            }
        })
    }

    /// A description for the log.
    pub fn describe(&self) -> String {
        match self {
            StdListener::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            StdListener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_else(|| "unix socket".into()),
        }
    }
}

/// A listening socket registered with tokio.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Bind and listen with the given backlog.
pub fn bind(spec: &BindSpec, backlog: i32) -> io::Result<StdListener> {
    match spec {
        BindSpec::Tcp(addr) => {
            let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&SockAddr::from(*addr))?;
            socket.listen(backlog)?;
            Ok(StdListener::Tcp(socket.into()))
        }
        BindSpec::Unix(path) => {
            // As libfcgi: an existing file at the path is removed first.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.bind(&SockAddr::unix(path)?)?;
            socket.listen(backlog)?;
            Ok(StdListener::Unix(socket.into()))
        }
    }
}

/// Take over the listening socket on fd 0, as iipsrv does under a FastCGI process manager.
///
/// Like libfcgi, fd 0 counts as a FastCGI listener when `getpeername(0)` fails with
/// `ENOTCONN`. Returns `Ok(None)` when fd 0 is something else (a terminal, a file, a pipe).
pub fn inherited() -> io::Result<Option<StdListener>> {
    inherited_fd(0)
}

fn inherited_fd(fd: RawFd) -> io::Result<Option<StdListener>> {
    // SAFETY: getpeername and getsockname write at most `len` bytes into a zeroed
    // sockaddr_storage that outlives the calls.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let r = libc::getpeername(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len);
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOTCONN) {
            return Ok(None);
        }
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Take ownership of a duplicate so that fd 0 itself stays open (and nothing else gets
        // handed fd 0 later by accident).
        let dup = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        match storage.ss_family as libc::c_int {
            libc::AF_UNIX => Ok(Some(StdListener::Unix(
                std::os::unix::net::UnixListener::from_raw_fd(dup),
            ))),
            libc::AF_INET | libc::AF_INET6 => Ok(Some(StdListener::Tcp(
                std::net::TcpListener::from_raw_fd(dup),
            ))),
            family => {
                libc::close(dup);
                Err(invalid(format!(
                    "fd 0 is a socket of unsupported family {family}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_bind("127.0.0.1:9000").unwrap(),
            BindSpec::Tcp("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            parse_bind(":9000").unwrap(),
            BindSpec::Tcp("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(
            parse_bind("*:9000").unwrap(),
            BindSpec::Tcp("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(
            parse_bind("[::1]:9000").unwrap(),
            BindSpec::Tcp("[::1]:9000".parse().unwrap())
        );
        assert_eq!(
            parse_bind("/tmp/iipsrv.sock").unwrap(),
            BindSpec::Unix("/tmp/iipsrv.sock".into())
        );
        // A colon followed by a non-number is a path, as in libfcgi.
        assert_eq!(
            parse_bind("/tmp/a:b").unwrap(),
            BindSpec::Unix("/tmp/a:b".into())
        );
        assert!(parse_bind("[::1]9000").is_err());
    }

    #[test]
    fn backlog_reaches_listen() {
        let l = bind(&BindSpec::Tcp("127.0.0.1:0".parse().unwrap()), 77).unwrap();
        let StdListener::Tcp(l) = l else {
            panic!("tcp expected")
        };
        let port = l.local_addr().unwrap().port();
        // /proc/net/tcp shows listening sockets; the backlog is visible through `ss` only, so
        // here we check the socket listens; the integration test checks Send-Q with ss.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn unix_socket_replaces_stale_file() {
        let path = std::env::temp_dir().join(format!("iipsrv-listen-{}.sock", std::process::id()));
        let first = bind(&BindSpec::Unix(path.clone()), 16).unwrap();
        drop(first);
        let second = bind(&BindSpec::Unix(path.clone()), 16).unwrap();
        assert!(matches!(second, StdListener::Unix(_)));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn inherited_rejects_non_sockets() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        assert!(inherited_fd(f.as_raw_fd()).unwrap().is_none());
    }

    #[test]
    fn inherited_accepts_listening_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let got = inherited_fd(l.as_raw_fd()).unwrap();
        assert!(matches!(got, Some(StdListener::Tcp(_))));
    }
}
