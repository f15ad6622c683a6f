//! `MEMCACHED_SERVERS`: the list of servers, read as libmemcached reads it.

use std::fmt;
use std::path::PathBuf;

/// memcached's default port, used when an entry of `MEMCACHED_SERVERS` names none.
pub(crate) const DEFAULT_PORT: u16 = 11211;

/// One entry of `MEMCACHED_SERVERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
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
pub(crate) fn parse_servers(list: &str) -> Vec<Endpoint> {
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
