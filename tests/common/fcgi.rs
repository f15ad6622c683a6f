//! A small synchronous FastCGI client that plays the web server, for tests.
//!
//! It is written from the FastCGI 1.0 specification with std only and shares no code with the
//! server's record layer, so a bug there cannot hide itself here. Besides whole requests it can
//! build records by hand for the edge cases web servers produce: PARAMS split anywhere,
//! interleaved request ids, ABORT_REQUEST, GET_VALUES, raw garbage.
//!
//! ```ignore
//! let mut c = Client::connect("127.0.0.1:9000")?;
//! let reply = c.request(&[(b"QUERY_STRING", b"FIF=x.tif&OBJ=IIP,1.0")], b"", false)?;
//! assert_eq!(reply.status(), 200);
//! ```
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const RESPONDER: u16 = 1;
pub const AUTHORIZER: u16 = 2;
pub const FILTER: u16 = 3;

pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const OVERLOADED: u8 = 2;
pub const UNKNOWN_ROLE: u8 = 3;

/// The socket to the server.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One record as received. `padding_len` is kept so tests can check the framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub version: u8,
    pub record_type: u8,
    pub request_id: u16,
    pub content: Vec<u8>,
    pub padding_len: u8,
}

impl RawRecord {
    /// For END_REQUEST: `(appStatus, protocolStatus)`.
    pub fn end_request(&self) -> Option<(u32, u8)> {
        if self.record_type != END_REQUEST || self.content.len() != 8 {
            return None;
        }
        let c = &self.content;
        Some((u32::from_be_bytes([c[0], c[1], c[2], c[3]]), c[4]))
    }
}

/// Everything the server sent for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    /// Every STDOUT/STDERR record, in order, for framing checks.
    pub records: Vec<RawRecord>,
}

impl Reply {
    /// Split STDOUT into CGI header lines and the body. Lines end in `\r\n` (a bare `\n` is
    /// accepted too); the header block ends at the first empty line.
    pub fn head_and_body(&self) -> (Vec<(String, String)>, &[u8]) {
        let mut headers = Vec::new();
        let mut pos = 0;
        let out = &self.stdout;
        while pos < out.len() {
            let end = out[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(out.len(), |i| pos + i);
            let line = &out[pos..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            pos = (end + 1).min(out.len());
            if line.is_empty() {
                break;
            }
            let text = String::from_utf8_lossy(line);
            match text.split_once(':') {
                Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
                None => headers.push((text.trim().to_string(), String::new())),
            }
        }
        (headers, &out[pos..])
    }

    /// The header lines.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.head_and_body().0
    }

    /// The body after the header block.
    pub fn body(&self) -> &[u8] {
        self.head_and_body().1
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The HTTP status the web server would send: the `Status:` code, or 200 without one.
    pub fn status(&self) -> u16 {
        self.header("Status")
            .and_then(|v| v.split_whitespace().next().and_then(|c| c.parse().ok()))
            .unwrap_or(200)
    }
}

/// A FastCGI connection.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    /// The request id [`Client::request`] uses (nginx always uses 1).
    pub request_id: u16,
    /// Largest content per PARAMS/STDIN record this client sends.
    pub max_record: usize,
}

impl Client {
    /// Connect like the server's socket spec: `host:port` is TCP, anything else a UNIX path.
    pub fn connect(spec: &str) -> io::Result<Client> {
        match spec.split_once(':') {
            Some((_, port)) if port.parse::<u16>().is_ok_and(|p| p != 0) => {
                Client::connect_tcp(spec)
            }
            _ => Client::connect_unix(spec),
        }
    }

    pub fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<Client> {
        Ok(Client::new(Stream::Tcp(TcpStream::connect(addr)?)))
    }

    pub fn connect_unix(path: impl AsRef<Path>) -> io::Result<Client> {
        Ok(Client::new(Stream::Unix(UnixStream::connect(path)?)))
    }

    /// Use an already connected socket (e.g. one end of `UnixStream::pair`).
    pub fn from_unix(stream: UnixStream) -> Client {
        Client::new(Stream::Unix(stream))
    }

    fn new(stream: Stream) -> Client {
        let mut c = Client {
            stream,
            request_id: 1,
            max_record: 65535,
        };
        // A test must fail, not hang, when the server stops answering.
        c.set_timeout(Some(Duration::from_secs(10)))
            .expect("set socket timeout");
        c
    }

    /// Read and write timeout for the socket.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    /// Close our sending side (the server then sees end of file).
    pub fn shutdown_write(&self) -> io::Result<()> {
        match &self.stream {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    /// One whole responder request: BEGIN_REQUEST, PARAMS, empty PARAMS, STDIN, empty STDIN;
    /// then the reply up to its END_REQUEST.
    pub fn request(
        &mut self,
        params: &[(&[u8], &[u8])],
        stdin: &[u8],
        keep_conn: bool,
    ) -> io::Result<Reply> {
        let id = self.request_id;
        let mut out = begin_request(id, RESPONDER, keep_conn);
        out.extend(stream_records(
            PARAMS,
            id,
            &encode_params(params),
            self.max_record,
        ));
        out.extend(stream_records(STDIN, id, stdin, self.max_record));
        self.send_raw(&out)?;
        self.read_reply(id)
    }

    /// Shorthand for a GET with a query string.
    pub fn get(&mut self, query: &str, keep_conn: bool) -> io::Result<Reply> {
        self.request(
            &[
                (b"REQUEST_METHOD", b"GET"),
                (b"QUERY_STRING", query.as_bytes()),
            ],
            b"",
            keep_conn,
        )
    }

    /// Ask FCGI_GET_VALUES for `names`; returns the pairs of the GET_VALUES_RESULT.
    pub fn get_values(&mut self, names: &[&str]) -> io::Result<Vec<(String, String)>> {
        let pairs: Vec<(&[u8], &[u8])> = names.iter().map(|n| (n.as_bytes(), &b""[..])).collect();
        self.send_raw(&record(GET_VALUES, 0, &encode_params(&pairs)))?;
        let rec = self
            .read_record()?
            .ok_or_else(|| eof("GET_VALUES_RESULT"))?;
        if rec.record_type != GET_VALUES_RESULT || rec.request_id != 0 {
            return Err(io::Error::other(format!(
                "expected GET_VALUES_RESULT, got {rec:?}"
            )));
        }
        let pairs = decode_params(&rec.content)?;
        Ok(pairs
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect())
    }

    /// Send bytes exactly as given.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Read one record; `None` at a clean end of file.
    pub fn read_record(&mut self) -> io::Result<Option<RawRecord>> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match self.stream.read(&mut head[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(eof("record header")),
                n => got += n,
            }
        }
        let content_len = u16::from_be_bytes([head[4], head[5]]) as usize;
        let padding_len = head[6];
        let mut content = vec![0; content_len + padding_len as usize];
        self.stream.read_exact(&mut content)?;
        content.truncate(content_len);
        Ok(Some(RawRecord {
            version: head[0],
            record_type: head[1],
            request_id: u16::from_be_bytes([head[2], head[3]]),
            content,
            padding_len,
        }))
    }

    /// Collect STDOUT and STDERR for `id` until its END_REQUEST. Records for other ids are an
    /// error (this server never multiplexes); so is end of file.
    pub fn read_reply(&mut self, id: u16) -> io::Result<Reply> {
        let mut reply = Reply::default();
        loop {
            let rec = self.read_record()?.ok_or_else(|| eof("END_REQUEST"))?;
            if rec.request_id != id {
                return Err(io::Error::other(format!("record for another id: {rec:?}")));
            }
            match rec.record_type {
                STDOUT => reply.stdout.extend_from_slice(&rec.content),
                STDERR => reply.stderr.extend_from_slice(&rec.content),
                END_REQUEST => {
                    let (app, protocol) = rec
                        .end_request()
                        .ok_or_else(|| io::Error::other(format!("bad END_REQUEST {rec:?}")))?;
                    reply.app_status = app;
                    reply.protocol_status = protocol;
                    return Ok(reply);
                }
                _ => return Err(io::Error::other(format!("unexpected record {rec:?}"))),
            }
            reply.records.push(rec);
        }
    }

    /// True if the server has closed the connection: the next read is end of file (or a
    /// reset). Anything the server still sends first is an error.
    pub fn is_closed(&mut self) -> io::Result<bool> {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => Ok(true),
            Ok(_) => Err(io::Error::other("server sent more data")),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

fn eof(waiting_for: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed before {waiting_for}"),
    )
}

// ---- building records by hand ----

/// One record with the padding a careful sender adds (to a multiple of 8).
///
/// # Panics
/// If `content` is longer than 65535 bytes.
pub fn record(record_type: u8, request_id: u16, content: &[u8]) -> Vec<u8> {
    let padding = (8 - content.len() % 8) % 8;
    record_padded(record_type, request_id, content, padding as u8)
}

/// One record with an explicit padding length.
pub fn record_padded(record_type: u8, request_id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("record content over 65535 bytes");
    let mut out = vec![1, record_type];
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[padding, 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + padding as usize, 0);
    out
}

/// BEGIN_REQUEST for `role`, with or without FCGI_KEEP_CONN.
pub fn begin_request(request_id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    record(
        BEGIN_REQUEST,
        request_id,
        &[hi, lo, keep_conn as u8, 0, 0, 0, 0, 0],
    )
}

pub fn abort_request(request_id: u16) -> Vec<u8> {
    record(ABORT_REQUEST, request_id, b"")
}

/// A stream (PARAMS, STDIN, DATA) cut into records of at most `max_record` bytes, followed by
/// the empty record that ends it.
pub fn stream_records(record_type: u8, request_id: u16, data: &[u8], max_record: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(max_record.clamp(1, 65535)) {
        out.extend(record(record_type, request_id, chunk));
    }
    out.extend(record(record_type, request_id, b""));
    out
}

/// A stream cut at the given byte offsets (e.g. inside a name-value length), with the end record.
pub fn stream_records_cut_at(
    record_type: u8,
    request_id: u16,
    data: &[u8],
    cuts: &[usize],
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(start, data.len());
        if cut > start {
            out.extend(record(record_type, request_id, &data[start..cut]));
        }
        start = cut;
    }
    out.extend(record(record_type, request_id, b""));
    out
}

/// Encode name-value pairs (1-byte lengths below 128, else 4 bytes with the top bit set).
pub fn encode_params(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 128 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    let mut out = Vec::new();
    for (name, value) in pairs {
        length(&mut out, name.len());
        length(&mut out, value.len());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// Decode a complete name-value list.
pub fn decode_params(mut src: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    fn length(src: &mut &[u8]) -> io::Result<usize> {
        let bad = || io::Error::other("truncated name-value pair");
        let first = *src.first().ok_or_else(bad)?;
        if first < 128 {
            *src = &src[1..];
            Ok(first as usize)
        } else {
            let b: [u8; 4] = src.get(..4).ok_or_else(bad)?.try_into().unwrap();
            *src = &src[4..];
            Ok((u32::from_be_bytes(b) & 0x7fff_ffff) as usize)
        }
    }
    let mut pairs = Vec::new();
    while !src.is_empty() {
        let n = length(&mut src)?;
        let v = length(&mut src)?;
        if src.len() < n + v {
            return Err(io::Error::other("truncated name-value pair"));
        }
        pairs.push((src[..n].to_vec(), src[n..n + v].to_vec()));
        src = &src[n + v..];
    }
    Ok(pairs)
}
