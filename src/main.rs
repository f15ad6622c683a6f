//! `iipsrv`: the process. Reads the command line and the environment, sets up logging and the
//! listening sockets, runs the server until a signal asks it to stop.

use std::process::ExitCode;
use std::time::Duration;

use iipsrv::app::App;
use iipsrv::cli::{self, Command};
use iipsrv::config::Config;
use iipsrv::server;
use iipsrv::server::listen::{self, StdListener};
use iipsrv::transport::{Connections, Limits};
use tokio::signal::unix::{Signal, SignalKind, signal};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Version) => {
            println!(
                "iipsrv {} (a Rust implementation of the IIPImage server, compatible with iipsrv {})",
                iipsrv::CRATE_VERSION,
                iipsrv::IIPSRV_VERSION
            );
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("iipsrv: {message}");
            return ExitCode::from(1);
        }
    };

    raise_open_file_limit();
    let (config, warnings) = Config::from_env();
    // A FILESYSTEM_PREFIX that looks like a storage URL but is not a valid one stops here.
    if let Err(message) = iipsrv::storage::location::parse(&config.files.prefix) {
        eprintln!("iipsrv: {message}");
        return ExitCode::from(1);
    }
    let logging = iipsrv::logging::init(&config);
    logging.banner(&config, &warnings);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.workers)
        .max_blocking_threads(config.server.workers + 4)
        .thread_name("iipsrv")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iipsrv: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown_timeout = Duration::from_secs(config.server.shutdown_timeout_secs);
    let app = App::new(config);
    if let Some(mc) = app.shared().memcached() {
        tracing::info!(
            "Memcached support enabled. Connected to servers: '{}' with timeout {}\n",
            app.config().caches.memcached_servers,
            app.config().caches.memcached_timeout
        );
        // Give the background connection a moment, so that the first responses are stored;
        // a server that is down is retried later and never delays a request.
        if !mc.wait_connected(Duration::from_millis(500)) {
            tracing::info!(
                "Memcached: not every server is reachable yet; retrying in the background\n"
            );
        }
    }
    let limits = Limits {
        max_conns: app.config().server.max_connections,
        request_read_timeout: Duration::from_secs(app.config().load.read_timeout_secs),
        write_timeout: Duration::from_secs(app.config().load.write_timeout_secs),
        ..Limits::default()
    };

    runtime.block_on(async move {
        // Signal handlers first: a supervisor may signal us as soon as the socket accepts.
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("iipsrv: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        // The FastCGI socket: --bind, or the listening socket inherited on fd 0.
        let fastcgi: Option<StdListener> = match &args.bind {
            Some(spec) => {
                let bound = listen::parse_bind(spec).and_then(|s| listen::bind(&s, args.backlog));
                match bound {
                    Ok(l) => {
                        tracing::info!(
                            "Running in standalone mode on socket: {spec} with backlog: {}\n",
                            args.backlog
                        );
                        Some(l)
                    }
                    Err(e) => {
                        eprintln!("bind/listen: {e}");
                        tracing::error!("bind/listen: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            None => match listen::inherited() {
                Ok(Some(l)) => {
                    tracing::info!("Running in FCGI mode\n");
                    Some(l)
                }
                Ok(None) => None,
                Err(e) => {
                    eprintln!("iipsrv: cannot use the socket on file descriptor 0: {e}");
                    return ExitCode::from(1);
                }
            },
        };
        let http = match tcp_listener(args.http.as_deref(), "http", "Serving HTTP", args.backlog) {
            Ok(l) => l,
            Err(code) => return code,
        };
        let admin = match tcp_listener(
            args.admin.as_deref(),
            "admin",
            "Serving the admin endpoints",
            args.backlog,
        ) {
            Ok(l) => l,
            Err(code) => return code,
        };
        if fastcgi.is_none() && http.is_none() {
            tracing::info!("CGI-only mode detected\n");
            eprintln!(
                "iipsrv: no socket to serve. Use --bind HOST:PORT (or a UNIX socket path), \
                 --http HOST:PORT, or start iipsrv from a FastCGI process manager \
                 (spawn-fcgi, Apache mod_fcgid, lighttpd) that passes a listening socket on \
                 file descriptor 0. See --help."
            );
            return ExitCode::from(1);
        }

        let (tx, rx) = tokio::sync::watch::channel(false);
        // Every accepted connection, until its last response is flushed and its socket closed.
        let open = Connections::new();
        let mut tasks = Vec::new();
        for (listener, is_http) in [(fastcgi, false), (http, true)] {
            let Some(listener) = listener else { continue };
            let listener = match listener.into_tokio() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("iipsrv: {e}");
                    return ExitCode::from(1);
                }
            };
            let (app, rx, open) = (app.clone(), rx.clone(), open.clone());
            tasks.push(tokio::spawn(async move {
                match (listener, is_http) {
                    (listen::Listener::Tcp(l), true) => {
                        server::serve_http(l, app, (limits, &open), rx).await
                    }
                    (l, _) => server::serve_fastcgi(l, app, (limits, &open), rx).await,
                }
            }));
        }
        // The admin listener stops last, after the drain, so that `/ready` answers 503 and
        // `/metrics` is readable while requests in flight finish.
        let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
        let mut admin_task = None;
        if let Some(listener) = admin {
            match listener.into_tokio() {
                Ok(listen::Listener::Tcp(l)) => {
                    let admin_token = app.config().server.admin_token.is_some();
                    if !admin_token && l.local_addr().is_ok_and(|a| !a.ip().is_loopback()) {
                        tracing::warn!(
                            "Admin: the admin address is not a loopback address and \
                             IIPSRV_ADMIN_TOKEN is unset: POST /cache/purge is refused"
                        );
                    }
                    admin_task = Some(tokio::spawn(iipsrv::admin::serve(
                        l,
                        app.clone(),
                        admin_stopped,
                    )));
                }
                Ok(listen::Listener::Unix(_)) => {
                    eprintln!("iipsrv: --admin needs a HOST:PORT address");
                    return ExitCode::from(1);
                }
                Err(e) => {
                    eprintln!("iipsrv: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        logging.initialisation_complete();
        // Every listener accepts: ready (GET /ready, and systemd's Type=notify).
        app.shared().readiness().set_listeners_up(true);
        notify_systemd(sd_notify::NotifyState::Ready);

        let name = signals.wait_for_termination(&app, &logging).await;
        app.shared().readiness().set_listeners_up(false);
        notify_systemd(sd_notify::NotifyState::Stopping);
        let _ = tx.send(true);
        app.begin_shutdown(shutdown_timeout);
        for t in tasks {
            let _ = t.await;
        }
        // Requests finish their work, then their connections write, flush and close.
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        if !app.wait_idle(shutdown_timeout).await {
            tracing::warn!("Shutdown: requests still running after {shutdown_timeout:?}; exiting");
        } else if !open.wait_closed(deadline).await {
            tracing::warn!(
                "Shutdown: {} connections still open after {shutdown_timeout:?}; exiting",
                open.count()
            );
        }
        let _ = admin_stop.send(true);
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        logging.shutdown_message(app.accesses(), name);
        ExitCode::SUCCESS
    })
}

/// Tell systemd (when it started us with `NOTIFY_SOCKET`, a `Type=notify` unit) our state;
/// without `NOTIFY_SOCKET` nothing happens.
/// The TCP listener of `--FLAG HOST:PORT` (`None` without the option), logged as `what`; a
/// bad address or a failed bind is reported and ends the process with status 1.
fn tcp_listener(
    addr: Option<&str>,
    flag: &str,
    what: &str,
    backlog: i32,
) -> Result<Option<StdListener>, ExitCode> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let bound = listen::parse_bind(addr).and_then(|s| match s {
        listen::BindSpec::Tcp(_) => listen::bind(&s, backlog),
        listen::BindSpec::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("'{addr}' is not a HOST:PORT address"),
        )),
    });
    match bound {
        Ok(l) => {
            tracing::info!("{what} on {}\n", l.describe());
            Ok(Some(l))
        }
        Err(e) => {
            eprintln!("iipsrv: --{flag} {addr}: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!("systemd notification failed: {e}");
    }
}

/// The signals iipsrv handles.
struct Signals {
    term: Signal,
    int: Signal,
    usr1: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Handle signals until one asks us to stop; returns its name for the log.
    async fn wait_for_termination(
        &mut self,
        app: &App,
        logging: &iipsrv::logging::Logging,
    ) -> &'static str {
        loop {
            tokio::select! {
                _ = self.term.recv() => return "Terminated",
                _ = self.int.recv() => return "Interrupt",
                _ = self.usr1.recv() => return "User defined signal 1",
                _ = self.hup.recv() => {
                    app.shared().clear_caches();
                    logging.reopen();
                    logging.hangup_message();
                }
            }
        }
    }
}

/// Cached image sources keep their files open (no per-request re-open): raise the soft limit on
/// open files to the hard limit, as servers commonly do.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
