//! One FastCGI connection: requests in, responses out, one request at a time.
//!
//! The connection moves through three states, each a method below:
//! - **idle** ([`Connection::wait_for_begin`]): waiting for BEGIN_REQUEST. No timeout (web
//!   servers keep pools of idle connections); this is the only state the shutdown signal ends,
//!   and only when no request has begun to arrive: a record already (partly) received is read
//!   and served, and a connection that has not sent its first request yet gets
//!   [`FIRST_REQUEST_GRACE`] for it (it was accepted, so its client waits for an answer).
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
use crate::transport::{FIRST_REQUEST_GRACE, Limits, Responder};

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
    /// Requests begun on this connection.
    begun: u64,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Connection<S> {
    fn new(stream: S, limits: Limits) -> Self {
        Connection {
            stream: BufWriter::with_capacity(WRITE_BUFFER_BYTES, stream),
            buf: BytesMut::with_capacity(READ_CHUNK_BYTES),
            limits,
            peer_done: false,
            begun: 0,
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
                () = shutdown_requested(shutdown) => self.read_on_shutdown().await?,
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
                    self.begun += 1;
                    return Ok(Some((record.request_id, body)));
                }
                _ if record.request_id == NULL_REQUEST_ID => self.management(&record).await?,
                t => trace!(id = record.request_id, ?t, "fastcgi: ignoring stray record"),
            }
        }
    }

    /// Idle at shutdown: the next record if it has begun to arrive (bounded by the request
    /// timeout), or within [`FIRST_REQUEST_GRACE`] on a connection without a request yet;
    /// `None` closes the connection.
    async fn read_on_shutdown(&mut self) -> io::Result<Option<Record>> {
        let wait = if !self.buf.is_empty() {
            self.limits.request_read_timeout
        } else if self.begun == 0 {
            FIRST_REQUEST_GRACE
        } else {
            // Between two requests of a keep-alive connection: only what is already here.
            Duration::ZERO
        };
        tokio::time::timeout(wait, self.read_record())
            .await
            .unwrap_or(Ok(None))
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
mod tests;
