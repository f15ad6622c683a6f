//! One FastCGI connection: requests in, responses out, one request at a time.
//!
//! The connection moves through three states, each a method below:
//! - **idle** ([`Connection::wait_for_begin`]): waiting for BEGIN_REQUEST. No timeout (web
//!   servers keep pools of idle connections); this is the only state the shutdown signal ends.
//! - **reading** ([`Connection::read_request`]): PARAMS up to the empty PARAMS record, then STDIN
//!   up to the empty STDIN record, both bounded in bytes (`Limits`) and in time.
//! - **processing** ([`Connection::process`]): the responder runs while the socket is still read,
//!   so ABORT_REQUEST, GET_VALUES and a second BEGIN_REQUEST (CANT_MPX_CONN) are answered at once.
//!
//! Records that fit no state (management records, BEGIN_REQUEST while busy, records for other
//! request ids) are handled the same way everywhere, as libfcgi does.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, trace};

use super::params::{self, ParamsDecoder};
use super::record::{
    BeginRequestBody, EndRequestBody, Header, MAX_CONTENT_LEN, NULL_REQUEST_ID, PADDING,
    ProtocolStatus, Record, RecordError, RecordType, unknown_type_body,
};
use crate::http::{Request, Response};
use crate::transport::{Limits, Responder};

/// Output is gathered up to this size; bigger records bypass the buffer (vectored writes).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;
/// How much room a socket read gets when the read buffer runs short of `MIN_READ_BYTES`.
const READ_CHUNK_BYTES: usize = 16 * 1024;
const MIN_READ_BYTES: usize = 4 * 1024;
/// After the last response, how long to wait for the peer to close before we do (libfcgi
/// does the same "lingering close", so the peer's late records do not turn our FIN into a
/// reset that could destroy the response in flight).
const LINGER: Duration = Duration::from_secs(2);

/// Serve FastCGI requests on one connection until the peer closes it, the web server did not
/// ask for keep-alive, or `shutdown` turns true while the connection is idle.
///
/// Each complete request is passed to `responder`, and its response written back as STDOUT.
/// A request in progress always finishes; shutdown only closes idle connections.
///
/// Returns `Ok(())` for every normal end, including a peer that disconnects at any point or
/// a request that never completes within `limits.request_read_timeout`. An error means the
/// peer broke the protocol (`InvalidData`: not FastCGI, malformed records) or an unexpected
/// I/O failure; it ends this connection only, and callers should log it at debug level.
pub async fn serve_connection<S, R>(
    stream: S,
    responder: Arc<R>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    R: Responder,
{
    let mut conn = Connection::new(stream, limits);
    match conn.run(&*responder, &mut shutdown).await {
        Ok(End::Close) => Ok(()),
        Ok(End::Linger) => {
            conn.linger().await;
            Ok(())
        }
        Err(e) if is_disconnect(&e) => {
            debug!(error = %e, "fastcgi: peer went away");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// How the connection ends.
enum End {
    /// Just drop the socket: the peer is gone or misbehaved.
    Close,
    /// Close our side after a reply, then drain what the peer still sends.
    Linger,
}

/// What the reading state produced.
enum Input {
    /// A complete request for the responder.
    Request(Request),
    /// A complete request refused by the transport (431, 413).
    Refused(Response),
    /// The web server sent ABORT_REQUEST.
    Aborted,
    /// The peer closed, or the request did not arrive in time.
    Gone,
}

/// The socket, its read buffer and its buffered writer.
struct Connection<S> {
    stream: BufWriter<S>,
    buf: BytesMut,
    limits: Limits,
    /// The peer has closed its sending side; nothing more will be read.
    peer_done: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    fn new(stream: S, limits: Limits) -> Self {
        Connection {
            stream: BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream),
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            limits,
            peer_done: false,
        }
    }

    async fn run<R: Responder>(
        &mut self,
        responder: &R,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<End> {
        loop {
            let Some((id, begin)) = self.wait_for_begin(shutdown).await? else {
                return Ok(End::Close);
            };
            let keep_conn = begin.keep_conn();
            match begin.role.param_value() {
                None => {
                    debug!(id, role = ?begin.role, "fastcgi: unknown role");
                    self.end_request(id, ProtocolStatus::UnknownRole).await?;
                }
                Some(role) => {
                    let deadline = Instant::now() + self.limits.request_read_timeout;
                    let response = match self.read_request(id, role, deadline).await? {
                        Input::Request(request) => {
                            self.process(id, responder.respond(request)).await?
                        }
                        Input::Refused(response) => Some(response),
                        Input::Aborted => None,
                        Input::Gone => return Ok(End::Close),
                    };
                    if let Some(response) = response {
                        self.write_response(id, &response).await?;
                    }
                    self.end_request(id, ProtocolStatus::RequestComplete)
                        .await?;
                }
            }
            self.stream.flush().await?;
            if !keep_conn || self.peer_done || *shutdown.borrow() {
                return Ok(End::Linger);
            }
        }
    }

    /// Idle: wait for the next BEGIN_REQUEST, answering management records meanwhile.
    /// `None` when the peer closes or shutdown is requested.
    async fn wait_for_begin(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> io::Result<Option<(u16, BeginRequestBody)>> {
        loop {
            if self.peer_done {
                return Ok(None);
            }
            let record = tokio::select! {
                biased;
                () = shutdown_requested(shutdown) => return Ok(None),
                record = self.read_record() => record?,
            };
            let Some(record) = record else {
                return Ok(None);
            };
            match record.record_type {
                RecordType::BeginRequest => {
                    if record.request_id == NULL_REQUEST_ID {
                        return Err(protocol_error("BEGIN_REQUEST with request id 0"));
                    }
                    let body = BeginRequestBody::decode(&record.content)
                        .ok_or_else(|| protocol_error("BEGIN_REQUEST body is not 8 bytes"))?;
                    return Ok(Some((record.request_id, body)));
                }
                _ if record.request_id == NULL_REQUEST_ID => self.management(&record).await?,
                t => trace!(id = record.request_id, ?t, "fastcgi: ignoring stray record"),
            }
        }
    }

    /// Reading: collect PARAMS and STDIN of request `id` until the empty STDIN record.
    async fn read_request(&mut self, id: u16, role: &str, deadline: Instant) -> io::Result<Input> {
        let mut params = ParamsDecoder::new(self.limits.max_params_bytes);
        let mut params_ended = false;
        let mut body = Vec::new();
        let mut body_too_large = false;
        let timeout = tokio::time::sleep_until(deadline);
        tokio::pin!(timeout);
        loop {
            let record = tokio::select! {
                record = self.read_record() => record?,
                () = &mut timeout => {
                    debug!(id, "fastcgi: request did not arrive in time, closing");
                    return Ok(Input::Gone);
                }
            };
            let Some(record) = record else {
                debug!(id, "fastcgi: connection closed inside a request");
                return Ok(Input::Gone);
            };
            if self.handle_while_busy(id, &record).await? {
                continue;
            }
            let empty = record.content.is_empty();
            match (record.record_type, params_ended) {
                (RecordType::AbortRequest, _) => {
                    debug!(id, "fastcgi: request aborted before it was complete");
                    return Ok(Input::Aborted);
                }
                (RecordType::Params, false) if empty => params_ended = true,
                (RecordType::Params, false) => params.feed(&record.content),
                (RecordType::Stdin, true) if empty => break,
                (RecordType::Stdin, true) => {
                    let fits = body.len() + record.content.len() <= self.limits.max_body_bytes;
                    if body_too_large || !fits {
                        // Keep reading to the end of STDIN, but store nothing more.
                        body_too_large = true;
                        body = Vec::new();
                    } else {
                        body.extend_from_slice(&record.content);
                    }
                }
                // A repeated end-of-stream record, or a FILTER's DATA stream: nothing to do.
                _ if empty => {}
                (RecordType::Data, _) => {}
                (t, _) => {
                    return Err(protocol_error(format!(
                        "unexpected {t:?} record in request {id} (params ended: {params_ended})"
                    )));
                }
            }
        }
        let params = params.finish();
        if params.too_large {
            debug!(
                id,
                limit = self.limits.max_params_bytes,
                "fastcgi: parameters too large"
            );
            return Ok(Input::Refused(Response::transport_error(
                431,
                "Request header fields too large",
            )));
        }
        if body_too_large {
            debug!(
                id,
                limit = self.limits.max_body_bytes,
                "fastcgi: request body too large"
            );
            return Ok(Input::Refused(Response::transport_error(
                413,
                "Request body too large",
            )));
        }
        if params.truncated {
            debug!(
                id,
                "fastcgi: PARAMS ended inside a name-value pair; pair dropped"
            );
        }
        // libfcgi adds the role as the first parameter.
        let mut pairs = params.pairs;
        pairs.insert(0, (b"FCGI_ROLE".to_vec(), role.as_bytes().to_vec()));
        Ok(Input::Request(Request::new(pairs, body)))
    }

    /// Processing: run `work` while still answering the socket. `None` if the web server
    /// aborted the request (the unfinished work is dropped).
    async fn process<F>(&mut self, id: u16, work: F) -> io::Result<Option<Response>>
    where
        F: Future<Output = Response>,
    {
        tokio::pin!(work);
        loop {
            let record = tokio::select! {
                response = &mut work => return Ok(Some(response)),
                record = self.read_record(), if !self.peer_done => record?,
            };
            // End of file here may be a half-close: the peer can still read our reply.
            let Some(record) = record else { continue };
            if self.handle_while_busy(id, &record).await? {
                continue;
            }
            match record.record_type {
                RecordType::AbortRequest => {
                    debug!(id, "fastcgi: request aborted while processing");
                    return Ok(None);
                }
                // Late end-of-stream records (some clients send STDIN's twice), DATA.
                t => trace!(
                    id,
                    ?t,
                    "fastcgi: ignoring record for the request in progress"
                ),
            }
        }
    }

    /// Records handled alike whenever request `id` is active. Returns `false` for a record of
    /// request `id` itself, which the caller handles.
    async fn handle_while_busy(&mut self, id: u16, record: &Record) -> io::Result<bool> {
        match record.record_type {
            RecordType::BeginRequest if record.request_id == NULL_REQUEST_ID => {
                Err(protocol_error("BEGIN_REQUEST with request id 0"))
            }
            RecordType::BeginRequest if record.request_id == id => Err(protocol_error(format!(
                "BEGIN_REQUEST for request {id}, which is active"
            ))),
            RecordType::BeginRequest => {
                debug!(
                    id,
                    other = record.request_id,
                    "fastcgi: refusing a multiplexed request"
                );
                self.end_request(record.request_id, ProtocolStatus::CantMpxConn)
                    .await?;
                self.stream.flush().await?;
                Ok(true)
            }
            _ if record.request_id == NULL_REQUEST_ID => {
                self.management(record).await?;
                Ok(true)
            }
            t if record.request_id != id => {
                trace!(id = record.request_id, ?t, "fastcgi: ignoring stray record");
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Answer a management record (request id 0): GET_VALUES, or UNKNOWN_TYPE for the rest.
    async fn management(&mut self, record: &Record) -> io::Result<()> {
        match record.record_type {
            RecordType::GetValues => {
                let asked = params::decode_all(&record.content, MAX_CONTENT_LEN);
                let known = [
                    (&b"FCGI_MAX_CONNS"[..], self.limits.max_conns),
                    (b"FCGI_MAX_REQS", self.limits.max_conns),
                    (b"FCGI_MPXS_CONNS", 0),
                ];
                let mut answered = [false; 3];
                let mut out = Vec::new();
                for (name, _) in &asked.pairs {
                    let Some(i) = known.iter().position(|(n, _)| n == name) else {
                        continue;
                    };
                    // Each name once, so the answer always fits one record.
                    if !std::mem::replace(&mut answered[i], true) {
                        params::encode_pair(&mut out, name, known[i].1.to_string().as_bytes());
                    }
                }
                self.write_record(RecordType::GetValuesResult, NULL_REQUEST_ID, &out)
                    .await?;
            }
            t => {
                debug!(?t, "fastcgi: unknown management record");
                self.write_record(
                    RecordType::UnknownType,
                    NULL_REQUEST_ID,
                    &unknown_type_body(t),
                )
                .await?;
            }
        }
        self.stream.flush().await
    }

    /// The response as STDOUT (headers, then body), then the empty STDOUT record.
    async fn write_response(&mut self, id: u16, response: &Response) -> io::Result<()> {
        let head = response.head_bytes();
        self.write_stream(RecordType::Stdout, id, &[&head, &response.body])
            .await?;
        self.write_record(RecordType::Stdout, id, &[]).await
    }

    /// Write `parts`, one stream, as records of at most `max_record_content` bytes. Each record
    /// goes out as one vectored write of header, slices of `parts` and padding: no copy of the
    /// body unless the record is small enough to be gathered in the write buffer.
    async fn write_stream(&mut self, t: RecordType, id: u16, parts: &[&[u8]]) -> io::Result<()> {
        let max = self.limits.max_record_content.clamp(1, MAX_CONTENT_LEN);
        let (mut part, mut offset) = (0, 0);
        while part < parts.len() {
            let mut slices: Vec<&[u8]> = Vec::with_capacity(parts.len());
            let mut len = 0;
            while len < max && part < parts.len() {
                let rest = &parts[part][offset..];
                let take = rest.len().min(max - len);
                if take > 0 {
                    slices.push(&rest[..take]);
                    len += take;
                }
                if take == rest.len() {
                    (part, offset) = (part + 1, 0);
                } else {
                    offset += take;
                }
            }
            if len == 0 {
                break;
            }
            let header = Header::new(t, id, len as u16);
            let head = header.encode();
            let mut io = Vec::with_capacity(slices.len() + 2);
            io.push(IoSlice::new(&head));
            io.extend(slices.iter().map(|s| IoSlice::new(s)));
            if header.padding_len > 0 {
                io.push(IoSlice::new(&PADDING[..header.padding_len as usize]));
            }
            write_all_vectored(&mut self.stream, &mut io).await?;
        }
        Ok(())
    }

    /// One small record (≤ 65535 bytes of content), buffered.
    async fn write_record(&mut self, t: RecordType, id: u16, content: &[u8]) -> io::Result<()> {
        let header = Header::new(t, id, content.len() as u16);
        debug_assert!(content.len() <= MAX_CONTENT_LEN);
        self.stream.write_all(&header.encode()).await?;
        self.stream.write_all(content).await?;
        self.stream
            .write_all(&PADDING[..header.padding_len as usize])
            .await
    }

    async fn end_request(&mut self, id: u16, status: ProtocolStatus) -> io::Result<()> {
        let body = EndRequestBody {
            app_status: 0,
            protocol_status: status,
        };
        self.write_record(RecordType::EndRequest, id, &body.encode())
            .await
    }

    /// The next whole record; `None` once the peer has closed its side. Cancel-safe: bytes
    /// only move from the socket into `buf`, and a record leaves `buf` only when returned.
    async fn read_record(&mut self) -> io::Result<Option<Record>> {
        loop {
            match Record::parse(&mut self.buf) {
                Ok(record) => return Ok(Some(record)),
                Err(RecordError::Incomplete) => {}
                Err(e) => return Err(protocol_error(e.to_string())),
            }
            if self.peer_done {
                return Ok(None);
            }
            // `buf` never holds more than one partial record plus one read.
            if self.buf.capacity() - self.buf.len() < MIN_READ_BYTES {
                self.buf.reserve(READ_CHUNK_BYTES);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                self.peer_done = true;
                if !self.buf.is_empty() {
                    debug!(
                        bytes = self.buf.len(),
                        "fastcgi: connection closed inside a record"
                    );
                    self.buf.clear();
                }
                return Ok(None);
            }
        }
    }

    /// Close our side after the last reply and drain the peer for a moment.
    async fn linger(&mut self) {
        if self.stream.shutdown().await.is_err() || self.peer_done {
            return;
        }
        let drain = async {
            let mut scratch = [0u8; 4096];
            while let Ok(n) = self.stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}

/// Completes once shutdown is requested; never, if the sender is gone without asking.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Like `write_all`, for a list of slices.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match writer.write_vectored(bufs).await? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => IoSlice::advance_slices(&mut bufs, n),
        }
    }
    Ok(())
}

fn protocol_error(message: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("fastcgi: {}", message.into()),
    )
}

/// Errors that only mean the peer is gone.
fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;
    use crate::transport::fastcgi::test_client::{self as fcgi, Client};

    /// A responder that echoes its parameters and body, or plays a part chosen by QUERY_STRING:
    /// `wait` blocks until released, `big` answers 1,000,000 bytes.
    #[derive(Default)]
    struct Echo {
        release: Notify,
        calls: AtomicUsize,
        dropped_unfinished: AtomicUsize,
    }

    /// Counts a `wait` response that was dropped before it finished.
    struct Unfinished<'a>(&'a AtomicUsize, bool);

    impl Drop for Unfinished<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn big_body() -> Vec<u8> {
        (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
    }

    impl Responder for Echo {
        async fn respond(&self, request: Request) -> Response {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut body = Vec::new();
            match request.param("QUERY_STRING").unwrap_or_default() {
                b"wait" => {
                    let mut guard = Unfinished(&self.dropped_unfinished, false);
                    self.release.notified().await;
                    guard.1 = true;
                    body.extend_from_slice(b"released");
                }
                b"big" => body = big_body(),
                _ => {
                    for (name, value) in request.params() {
                        body.extend_from_slice(name);
                        body.push(b'=');
                        body.extend_from_slice(value);
                        body.push(b'\n');
                    }
                    body.extend_from_slice(b"body=");
                    body.extend_from_slice(&request.body);
                }
            }
            let mut response = Response::empty();
            response.push("Content-Type", "text/plain");
            response.body = body.into();
            response
        }
    }

    /// `serve_connection` on its own thread and runtime, so the test body can use the blocking
    /// client directly.
    struct Server {
        app: Arc<Echo>,
        shutdown: watch::Sender<bool>,
        done: mpsc::Receiver<io::Result<()>>,
    }

    impl Server {
        fn start(limits: Limits) -> (Client, Server) {
            let (client_end, server_end) = UnixStream::pair().unwrap();
            let app = Arc::new(Echo::default());
            let (shutdown, rx) = watch::channel(false);
            let (tx, done) = mpsc::channel();
            let responder = app.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let result = rt.block_on(async move {
                    server_end.set_nonblocking(true)?;
                    let stream = tokio::net::UnixStream::from_std(server_end)?;
                    serve_connection(stream, responder, limits, rx).await
                });
                let _ = tx.send(result);
            });
            (
                Client::from_unix(client_end),
                Server {
                    app,
                    shutdown,
                    done,
                },
            )
        }

        /// Drop the client, then return the result of `serve_connection`.
        fn finish(&self, client: Client) -> io::Result<()> {
            drop(client);
            self.result()
        }

        /// The result of `serve_connection`, which must have ended (or end within seconds).
        fn result(&self) -> io::Result<()> {
            self.done
                .recv_timeout(Duration::from_secs(10))
                .expect("serve_connection did not end")
        }

        fn still_running(&self) -> bool {
            matches!(self.done.try_recv(), Err(mpsc::TryRecvError::Empty))
        }
    }

    fn limits() -> Limits {
        Limits {
            max_conns: 7,
            ..Limits::default()
        }
    }

    fn body_text(reply: &fcgi::Reply) -> String {
        String::from_utf8_lossy(reply.body()).into_owned()
    }

    fn assert_complete(reply: &fcgi::Reply) {
        assert_eq!(
            (reply.app_status, reply.protocol_status),
            (0, fcgi::REQUEST_COMPLETE)
        );
        assert!(reply.stderr.is_empty());
    }

    fn request_bytes(id: u16, keep_conn: bool, query: &[u8]) -> Vec<u8> {
        let mut out = fcgi::begin_request(id, fcgi::RESPONDER, keep_conn);
        let params = fcgi::encode_params(&[(b"QUERY_STRING", query)]);
        out.extend(fcgi::stream_records(fcgi::PARAMS, id, &params, 65535));
        out.extend(fcgi::stream_records(fcgi::STDIN, id, b"", 65535));
        out
    }

    #[test]
    fn future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let (stream, _other) = tokio::io::duplex(64);
        let (_tx, rx) = watch::channel(false);
        let fut = serve_connection(stream, Arc::new(Echo::default()), limits(), rx);
        assert_send(&fut);
    }

    #[test]
    fn one_request_then_close_without_keep_conn() {
        let (mut c, server) = Server::start(limits());
        let reply = c.get("FIF=a.tif&OBJ=IIP,1.0", false).unwrap();
        assert_complete(&reply);
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.header("Content-Type").as_deref(), Some("text/plain"));
        assert_eq!(
            body_text(&reply),
            "FCGI_ROLE=RESPONDER\nREQUEST_METHOD=GET\nQUERY_STRING=FIF=a.tif&OBJ=IIP,1.0\nbody="
        );
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn lingering_close_is_bounded() {
        // The client neither closes nor sends: the server still lets go after `LINGER`.
        let (mut c, server) = Server::start(limits());
        assert_complete(&c.get("x", false).unwrap());
        let started = std::time::Instant::now();
        server.result().unwrap();
        assert!(started.elapsed() < LINGER + Duration::from_secs(1));
        assert!(c.is_closed().unwrap());
    }

    #[test]
    fn keep_alive_serves_requests_in_sequence() {
        let (mut c, server) = Server::start(limits());
        for i in 0..3 {
            let reply = c.get(&format!("n={i}"), true).unwrap();
            assert_complete(&reply);
            assert!(body_text(&reply).contains(&format!("QUERY_STRING=n={i}\n")));
        }
        assert!(server.still_running());
        drop(c);
        server.result().unwrap();
        assert_eq!(server.app.calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn params_split_anywhere_are_reassembled() {
        let long = vec![b'x'; 300]; // 4-byte value length
        let pairs: &[(&[u8], &[u8])] = &[(b"QUERY_STRING", b"a=b"), (b"HTTP_LONG", &long)];
        let wire = fcgi::encode_params(pairs);
        let (mut c, server) = Server::start(limits());
        // Cut inside the first pair's name, inside the 4-byte length, inside the value.
        for cuts in [vec![1], vec![5, 17, 18, 19, 20, 21], vec![29, 200]] {
            let mut out = fcgi::begin_request(1, fcgi::RESPONDER, true);
            out.extend(fcgi::stream_records_cut_at(fcgi::PARAMS, 1, &wire, &cuts));
            out.extend(fcgi::stream_records(fcgi::STDIN, 1, b"", 1));
            c.send_raw(&out).unwrap();
            let reply = c.read_reply(1).unwrap();
            let text = body_text(&reply);
            assert!(text.contains("QUERY_STRING=a=b\n"), "{cuts:?}: {text}");
            assert!(
                text.contains(&format!("HTTP_LONG={}\n", "x".repeat(300))),
                "{cuts:?}"
            );
        }
        // One byte per record.
        c.max_record = 1;
        let reply = c.request(pairs, b"", false).unwrap();
        assert!(body_text(&reply).contains("QUERY_STRING=a=b\n"));
        server.finish(c).unwrap();
    }

    #[test]
    fn non_utf8_params_arrive_raw() {
        let (mut c, server) = Server::start(limits());
        let reply = c.request(
            &[(b"QUERY_STRING", b"FIF=\xff\xfe.tif"), (b"N\xc3", b"v")],
            b"",
            false,
        );
        let body = reply.unwrap().body().to_vec();
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"\nQUERY_STRING=FIF=\xff\xfe.tif\n"));
        assert!(has(b"\nN\xc3=v\n"));
        server.finish(c).unwrap();
    }

    #[test]
    fn request_body_is_delivered() {
        let (mut c, server) = Server::start(limits());
        c.max_record = 3;
        let reply = c.request(
            &[(b"REQUEST_METHOD", b"POST")],
            b"FIF=a.tif&OBJ=IIP,1.0",
            false,
        );
        assert!(body_text(&reply.unwrap()).ends_with("\nbody=FIF=a.tif&OBJ=IIP,1.0"));
        server.finish(c).unwrap();
    }

    #[test]
    fn duplicate_empty_stdin_is_tolerated() {
        let (mut c, server) = Server::start(limits());
        for _ in 0..2 {
            let mut out = request_bytes(1, true, b"x=1");
            out.extend(fcgi::record(fcgi::STDIN, 1, b"")); // as fastcgi-client sends
            c.send_raw(&out).unwrap();
            assert_complete(&c.read_reply(1).unwrap());
        }
        drop(c);
        server.result().unwrap();
    }

    #[test]
    fn stray_records_are_ignored() {
        let (mut c, server) = Server::start(limits());
        let mut out = fcgi::record(fcgi::STDIN, 5, b"late");
        out.extend(fcgi::abort_request(9));
        out.extend(fcgi::record(fcgi::PARAMS, 3, b""));
        out.extend(fcgi::record(42, 4, b"unknown type, request id 4"));
        out.extend(request_bytes(1, false, b"ok"));
        c.send_raw(&out).unwrap();
        assert!(body_text(&c.read_reply(1).unwrap()).contains("QUERY_STRING=ok"));
        server.finish(c).unwrap();
    }

    #[test]
    fn second_request_id_gets_cant_mpx_conn() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
        let mut second = fcgi::begin_request(2, fcgi::RESPONDER, true);
        second.extend(fcgi::stream_records(fcgi::PARAMS, 2, b"", 10));
        second.extend(fcgi::stream_records(fcgi::STDIN, 2, b"", 10));
        c.send_raw(&second).unwrap();
        let end = c.read_record().unwrap().unwrap();
        assert_eq!(end.request_id, 2);
        assert_eq!(end.end_request(), Some((0, fcgi::CANT_MPX_CONN)));
        server.app.release.notify_one();
        let reply = c.read_reply(1).unwrap();
        assert_complete(&reply);
        assert_eq!(reply.body(), b"released");
        // The connection still works afterwards.
        assert_complete(&c.get("again", false).unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn abort_while_processing_drops_the_work() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
        // Make sure the responder is running before aborting.
        while server.app.calls.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        c.send_raw(&fcgi::abort_request(1)).unwrap();
        let reply = c.read_reply(1).unwrap();
        assert_complete(&reply);
        assert!(reply.stdout.is_empty(), "no output after an abort");
        assert_eq!(server.app.dropped_unfinished.load(Ordering::SeqCst), 1);
        assert!(body_text(&c.get("next", false).unwrap()).contains("QUERY_STRING=next"));
        server.finish(c).unwrap();
    }

    #[test]
    fn abort_before_params_end() {
        let (mut c, server) = Server::start(limits());
        let mut out = fcgi::begin_request(1, fcgi::RESPONDER, false);
        out.extend(fcgi::record(
            fcgi::PARAMS,
            1,
            &fcgi::encode_params(&[(b"A", b"1")]),
        ));
        out.extend(fcgi::abort_request(1));
        c.send_raw(&out).unwrap();
        let reply = c.read_reply(1).unwrap();
        assert_complete(&reply);
        assert!(reply.stdout.is_empty());
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
        assert_eq!(server.app.calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn get_values_answers_only_known_names() {
        let (mut c, server) = Server::start(limits());
        let values = c
            .get_values(&[
                "FCGI_MPXS_CONNS",
                "FCGI_MAX_CONNS",
                "NOT_A_NAME",
                "FCGI_MAX_REQS",
            ])
            .unwrap();
        let expect = [
            ("FCGI_MPXS_CONNS", "0"),
            ("FCGI_MAX_CONNS", "7"),
            ("FCGI_MAX_REQS", "7"),
        ];
        let expect: Vec<_> = expect
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(values, expect);
        assert!(c.get_values(&["X"]).unwrap().is_empty());
        // Repeated names are answered once.
        let names = vec!["FCGI_MAX_CONNS"; 3000];
        assert_eq!(c.get_values(&names).unwrap().len(), 1);
        // Also while a request is in progress.
        c.send_raw(&request_bytes(1, false, b"wait")).unwrap();
        assert_eq!(c.get_values(&["FCGI_MPXS_CONNS"]).unwrap().len(), 1);
        server.app.release.notify_one();
        assert_eq!(c.read_reply(1).unwrap().body(), b"released");
        server.finish(c).unwrap();
    }

    #[test]
    fn unknown_management_type_gets_unknown_type() {
        let (mut c, server) = Server::start(limits());
        for t in [42u8, fcgi::STDOUT, fcgi::GET_VALUES_RESULT] {
            c.send_raw(&fcgi::record(t, 0, b"whatever")).unwrap();
            let rec = c.read_record().unwrap().unwrap();
            assert_eq!((rec.record_type, rec.request_id), (fcgi::UNKNOWN_TYPE, 0));
            assert_eq!(rec.content, [t, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_complete(&c.get("still fine", false).unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn unknown_role_is_refused_and_known_roles_accepted() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&fcgi::begin_request(1, 9, true)).unwrap();
        let end = c.read_record().unwrap().unwrap();
        assert_eq!(
            (end.request_id, end.end_request()),
            (1, Some((0, fcgi::UNKNOWN_ROLE)))
        );
        // The web server may still send the refused request's streams: strays, ignored.
        c.send_raw(&fcgi::stream_records(fcgi::PARAMS, 1, b"", 1))
            .unwrap();
        // libfcgi accepts AUTHORIZER and FILTER too; iipsrv answers them as a responder.
        let mut out = fcgi::begin_request(1, fcgi::AUTHORIZER, false);
        out.extend(fcgi::stream_records(fcgi::PARAMS, 1, b"", 1));
        out.extend(fcgi::stream_records(fcgi::STDIN, 1, b"", 1));
        c.send_raw(&out).unwrap();
        assert!(body_text(&c.read_reply(1).unwrap()).starts_with("FCGI_ROLE=AUTHORIZER\n"));
        server.finish(c).unwrap();
    }

    #[test]
    fn unknown_role_without_keep_conn_closes() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&fcgi::begin_request(1, 0, false)).unwrap();
        let end = c.read_record().unwrap().unwrap();
        assert_eq!(end.end_request(), Some((0, fcgi::UNKNOWN_ROLE)));
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn garbage_closes_the_connection() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(c.is_closed().unwrap());
        assert_eq!(
            server.finish(c).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn garbage_after_a_good_request_closes_the_connection() {
        let (mut c, server) = Server::start(limits());
        assert_complete(&c.get("one", true).unwrap());
        c.send_raw(&[2, 1, 0, 1, 0, 8, 0, 0]).unwrap(); // version 2
        assert!(c.is_closed().unwrap());
        assert_eq!(
            server.finish(c).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn malformed_begin_request_closes_the_connection() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&fcgi::record(fcgi::BEGIN_REQUEST, 1, &[0, 1, 1]))
            .unwrap();
        assert!(c.is_closed().unwrap());
        assert_eq!(
            server.finish(c).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn oversized_params_get_431_and_the_connection_keeps_working() {
        let limits = Limits {
            max_params_bytes: 1000,
            ..limits()
        };
        let (mut c, server) = Server::start(limits);
        c.max_record = 300;
        let big = vec![b'v'; 5000];
        let reply = c.request(
            &[(b"QUERY_STRING", b"x"), (b"HTTP_COOKIE", &big)],
            b"",
            true,
        );
        let reply = reply.unwrap();
        assert_complete(&reply);
        assert_eq!(reply.status(), 431);
        assert_eq!(server.app.calls.load(Ordering::SeqCst), 0);
        // Exactly at the limit is fine.
        let value = vec![b'v'; 1000 - "QUERY_STRING".len()];
        let reply = c.request(&[(b"QUERY_STRING", &value)], b"", false).unwrap();
        assert_eq!(reply.status(), 200);
        server.finish(c).unwrap();
    }

    #[test]
    fn oversized_body_gets_413_and_the_connection_keeps_working() {
        let limits = Limits {
            max_body_bytes: 100,
            ..limits()
        };
        let (mut c, server) = Server::start(limits);
        c.max_record = 64;
        let reply = c
            .request(&[(b"REQUEST_METHOD", b"POST")], &[b'b'; 1000], true)
            .unwrap();
        assert_complete(&reply);
        assert_eq!(reply.status(), 413);
        let reply = c
            .request(&[(b"REQUEST_METHOD", b"POST")], &[b'b'; 100], false)
            .unwrap();
        assert_eq!(reply.status(), 200);
        assert!(body_text(&reply).ends_with(&format!("body={}", "b".repeat(100))));
        server.finish(c).unwrap();
    }

    #[test]
    fn a_megabyte_response_is_split_into_padded_records() {
        for max in [65528, 65535, 1000] {
            let (mut c, server) = Server::start(Limits {
                max_record_content: max,
                ..limits()
            });
            let reply = c.get("big", false).unwrap();
            assert_complete(&reply);
            assert_eq!(reply.body(), big_body().as_slice(), "max {max}");
            let (last, full) = reply.records.split_last().unwrap();
            assert!(last.content.is_empty(), "STDOUT ends with an empty record");
            for rec in full {
                assert_eq!((rec.version, rec.record_type), (1, fcgi::STDOUT));
                assert!(!rec.content.is_empty() && rec.content.len() <= max);
                assert_eq!((rec.content.len() + rec.padding_len as usize) % 8, 0);
                assert!(rec.padding_len < 8);
            }
            // Headers and body share records: only the last data record is short.
            let total = reply.stdout.len();
            assert_eq!(full.len(), total.div_ceil(max), "max {max}");
            server.finish(c).unwrap();
        }
    }

    #[test]
    fn client_disconnecting_mid_response_ends_quietly() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&request_bytes(1, true, b"big")).unwrap();
        let first = c.read_record().unwrap().unwrap();
        assert_eq!(first.record_type, fcgi::STDOUT);
        drop(c);
        server.result().unwrap();
    }

    #[test]
    fn half_closed_client_still_gets_its_reply() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
        c.shutdown_write().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        server.app.release.notify_one();
        assert_eq!(c.read_reply(1).unwrap().body(), b"released");
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn incomplete_request_times_out_but_idle_connections_do_not() {
        let limits = Limits {
            request_read_timeout: Duration::from_millis(100),
            ..limits()
        };
        let (mut c, server) = Server::start(limits);
        // Idle for longer than the request timeout: still served.
        std::thread::sleep(Duration::from_millis(300));
        assert!(server.still_running());
        assert_complete(&c.get("after idle", true).unwrap());
        // A request that starts but never finishes its PARAMS is dropped.
        let mut out = fcgi::begin_request(1, fcgi::RESPONDER, true);
        out.extend(fcgi::record(
            fcgi::PARAMS,
            1,
            &fcgi::encode_params(&[(b"A", b"1")]),
        ));
        c.send_raw(&out).unwrap();
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn shutdown_closes_idle_connections() {
        let (mut c, server) = Server::start(limits());
        assert_complete(&c.get("one", true).unwrap());
        server.shutdown.send(true).unwrap();
        assert!(c.is_closed().unwrap());
        server.finish(c).unwrap();
    }

    #[test]
    fn shutdown_lets_the_request_in_progress_finish() {
        let (mut c, server) = Server::start(limits());
        c.send_raw(&request_bytes(1, true, b"wait")).unwrap();
        while server.app.calls.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        server.shutdown.send(true).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        server.app.release.notify_one();
        let reply = c.read_reply(1).unwrap();
        assert_complete(&reply);
        assert_eq!(reply.body(), b"released");
        assert!(c.is_closed().unwrap(), "closed despite KEEP_CONN");
        server.finish(c).unwrap();
    }

    #[test]
    fn dropped_shutdown_sender_does_not_close_connections() {
        let (mut c, server) = Server::start(limits());
        let Server {
            app,
            shutdown,
            done,
        } = server;
        drop(shutdown);
        assert_complete(&c.get("one", true).unwrap());
        assert_complete(&c.get("two", false).unwrap());
        let server = Server {
            app,
            shutdown: watch::channel(false).0,
            done,
        };
        server.finish(c).unwrap();
    }
}
