//! The command line: `iipsrv [--bind HOST:PORT|PATH [--backlog N]] [--http HOST:PORT]
//! [--admin HOST:PORT]`.
//!
//! iipsrv only knows `--bind` and `--backlog`, positionally. We accept them anywhere, add
//! `--http`, `--admin`, `--version` and `--help`, and turn upstream's crashes on a missing argument into a
//! message and exit status 1.

/// What the process was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve requests.
    Serve(Args),
    /// Print the version and exit.
    Version,
    /// Print the usage and exit.
    Help,
}

/// Options for serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// `--bind`: a socket to listen on ourselves (TCP `host:port`, `[v6]:port`, or a UNIX path).
    pub bind: Option<String>,
    /// `--backlog`: the listen() backlog for `--bind` (default 2048, as iipsrv).
    pub backlog: i32,
    /// `--http`: also serve plain HTTP/1.1 on this TCP address.
    pub http: Option<String>,
    /// `--admin`: serve the admin endpoints (health, readiness, metrics, purge) on this TCP
    /// address.
    pub admin: Option<String>,
}

/// The default listen backlog.
pub const DEFAULT_BACKLOG: i32 = 2048;

/// The usage text for `--help`.
pub const USAGE: &str = "\
Usage: iipsrv [--bind HOST:PORT | --bind /path/to/socket] [--backlog N] [--http HOST:PORT]
              [--admin HOST:PORT]

A drop-in replacement for the IIPImage server (iipsrv.fcgi): IIP, IIIF, Zoomify and DeepZoom.

  --bind SOCKET    listen for FastCGI on SOCKET: 127.0.0.1:9000, [::1]:9000, :9000 (all IPv4
                   addresses) or a UNIX socket path. Without --bind the FastCGI socket is the
                   listening socket inherited on file descriptor 0 (spawn-fcgi, Apache
                   mod_fcgid, lighttpd bin-path).
  --backlog N      listen() backlog for --bind (default 2048)
  --http ADDR      also serve plain HTTP/1.1 on ADDR (e.g. 127.0.0.1:8080), for use without a
                   web server in front
  --admin ADDR     serve /health, /ready, /metrics (Prometheus) and POST /cache/purge on
                   ADDR (e.g. 127.0.0.1:9100), apart from the image traffic; purging needs
                   IIPSRV_ADMIN_TOKEN unless ADDR is a loopback address
  --version        print the version and exit
  --help           print this help and exit

Configuration comes from iipsrv's environment variables (VERBOSITY, LOGFILE,
FILESYSTEM_PREFIX, URI_MAP, CORS, ...); see the README.
";

/// Parse the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut bind = None;
    let mut backlog = DEFAULT_BACKLOG;
    let mut http = None;
    let mut admin = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // Accept `--opt=value` as well as `--opt value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{what} needs an argument"))
        };
        match name.as_str() {
            "--bind" => {
                let v = value("--bind")?;
                if v.is_empty() {
                    return Err("No socket specified".into());
                }
                bind = Some(v);
            }
            "--backlog" => {
                let v = value("--backlog")?;
                // iipsrv: an empty string keeps the default.
                if !v.is_empty() {
                    backlog = v
                        .trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--backlog: '{v}' is not a positive number"))?;
                }
            }
            "--http" => {
                let v = value("--http")?;
                if v.is_empty() {
                    return Err("--http needs an address".into());
                }
                http = Some(v);
            }
            "--admin" => {
                let v = value("--admin")?;
                if v.is_empty() {
                    return Err("--admin needs an address".into());
                }
                admin = Some(v);
            }
            "--version" | "-V" => return Ok(Command::Version),
            "--help" | "-h" => return Ok(Command::Help),
            other => return Err(format!("unknown argument '{other}' (see --help)")),
        }
    }
    Ok(Command::Serve(Args {
        bind,
        backlog,
        http,
        admin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn bind_and_backlog() {
        assert_eq!(
            p(&["--bind", "127.0.0.1:9000", "--backlog", "64"]),
            Ok(Command::Serve(Args {
                bind: Some("127.0.0.1:9000".into()),
                backlog: 64,
                http: None,
                admin: None
            }))
        );
        assert_eq!(
            p(&["--bind=/tmp/s", "--http", ":8080"]),
            Ok(Command::Serve(Args {
                bind: Some("/tmp/s".into()),
                backlog: DEFAULT_BACKLOG,
                http: Some(":8080".into()),
                admin: None
            }))
        );
        assert_eq!(
            p(&["--bind", "x:1", "--backlog", ""]),
            Ok(Command::Serve(Args {
                bind: Some("x:1".into()),
                backlog: 2048,
                http: None,
                admin: None
            }))
        );
    }

    #[test]
    fn no_arguments_means_fd0() {
        assert_eq!(
            p(&[]),
            Ok(Command::Serve(Args {
                bind: None,
                backlog: 2048,
                http: None,
                admin: None
            }))
        );
    }

    #[test]
    fn missing_values_are_errors_not_crashes() {
        assert!(p(&["--bind"]).is_err());
        assert!(p(&["--bind", "x:1", "--backlog"]).is_err());
        assert_eq!(p(&["--bind", ""]), Err("No socket specified".into()));
        assert!(p(&["--backlog", "abc"]).is_err());
        assert!(p(&["--frobnicate"]).is_err());
    }

    #[test]
    fn admin_address() {
        assert_eq!(
            p(&["--http", ":8080", "--admin=127.0.0.1:9100"]),
            Ok(Command::Serve(Args {
                bind: None,
                backlog: DEFAULT_BACKLOG,
                http: Some(":8080".into()),
                admin: Some("127.0.0.1:9100".into())
            }))
        );
        assert!(p(&["--admin"]).is_err());
        assert!(p(&["--admin", ""]).is_err());
    }

    #[test]
    fn version_and_help() {
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }
}
