//! FastCGI framing: the 8-byte record header, record types and the fixed-size bodies.
//!
//! Parsing follows mini-redis: [`Record::check`] answers [`RecordError::Incomplete`] until a
//! whole record (header, content and padding) is buffered, and only then does
//! [`Record::parse`] split it off the buffer. Nothing here knows what a request is; that is
//! `conn.rs`.
//!
//! Wire format (FastCGI 1.0, §3.3): `version, type, requestIdB1, requestIdB0,
//! contentLengthB1, contentLengthB0, paddingLength, reserved`, then the content and the padding.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// The only protocol version there is.
pub const FCGI_VERSION_1: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// Largest content a record can carry.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;
/// The request id of management records (GET_VALUES and friends).
pub const NULL_REQUEST_ID: u16 = 0;

/// A record type. Unknown values are kept, not rejected: the connection answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    /// Any other value.
    Other(u8),
}

impl RecordType {
    /// The type for a wire value.
    pub fn from_u8(value: u8) -> Self {
        match value {
            1 => RecordType::BeginRequest,
            2 => RecordType::AbortRequest,
            3 => RecordType::EndRequest,
            4 => RecordType::Params,
            5 => RecordType::Stdin,
            6 => RecordType::Stdout,
            7 => RecordType::Stderr,
            8 => RecordType::Data,
            9 => RecordType::GetValues,
            10 => RecordType::GetValuesResult,
            11 => RecordType::UnknownType,
            other => RecordType::Other(other),
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            RecordType::BeginRequest => 1,
            RecordType::AbortRequest => 2,
            RecordType::EndRequest => 3,
            RecordType::Params => 4,
            RecordType::Stdin => 5,
            RecordType::Stdout => 6,
            RecordType::Stderr => 7,
            RecordType::Data => 8,
            RecordType::GetValues => 9,
            RecordType::GetValuesResult => 10,
            RecordType::UnknownType => 11,
            RecordType::Other(v) => v,
        }
    }
}

/// Why bytes could not be parsed as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// Not enough bytes buffered yet; read more and try again.
    Incomplete,
    /// The first byte is not version 1: the peer does not speak FastCGI (or we lost framing).
    UnsupportedVersion(u8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Incomplete => f.write_str("incomplete FastCGI record"),
            RecordError::UnsupportedVersion(v) => {
                write!(f, "not a FastCGI record (version byte {v})")
            }
        }
    }
}

impl std::error::Error for RecordError {}

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub record_type: RecordType,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// A header for `content_len` bytes of content, padded so the record is a multiple of 8.
    pub fn new(record_type: RecordType, request_id: u16, content_len: u16) -> Self {
        Header {
            record_type,
            request_id,
            content_len,
            padding_len: padding_for(content_len),
        }
    }

    /// Decode a header; only the version is checked, every other value is legal.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, RecordError> {
        if bytes[0] != FCGI_VERSION_1 {
            return Err(RecordError::UnsupportedVersion(bytes[0]));
        }
        Ok(Header {
            record_type: RecordType::from_u8(bytes[1]),
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_len: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_len: bytes[6],
        })
    }

    /// The 8 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_len.to_be_bytes();
        [
            FCGI_VERSION_1,
            self.record_type.as_u8(),
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_len,
            0,
        ]
    }

    /// Header, content and padding together.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.content_len as usize + self.padding_len as usize
    }
}

/// Padding that brings `HEADER_LEN + content_len` to a multiple of 8 (as libfcgi does).
pub fn padding_for(content_len: u16) -> u8 {
    ((8 - content_len % 8) % 8) as u8
}

/// The padding bytes, for writers that send header, content and padding as separate slices.
pub const PADDING: [u8; 7] = [0; 7];

/// One whole record; padding is already dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub record_type: RecordType,
    pub request_id: u16,
    pub content: Bytes,
}

impl Record {
    /// Is a whole record buffered at the front of `src`? Returns its header if so.
    pub fn check(src: &[u8]) -> Result<Header, RecordError> {
        let Some(head) = src.first_chunk::<HEADER_LEN>() else {
            // A wrong version byte is known before the header is complete.
            return match src.first() {
                Some(&v) if v != FCGI_VERSION_1 => Err(RecordError::UnsupportedVersion(v)),
                _ => Err(RecordError::Incomplete),
            };
        };
        let header = Header::decode(head)?;
        if src.len() < header.record_len() {
            return Err(RecordError::Incomplete);
        }
        Ok(header)
    }

    /// Split the first record off `src`. Leaves `src` untouched unless a record is returned.
    pub fn parse(src: &mut BytesMut) -> Result<Record, RecordError> {
        let header = Record::check(src)?;
        let mut bytes = src.split_to(header.record_len());
        bytes.advance(HEADER_LEN);
        bytes.truncate(header.content_len as usize);
        Ok(Record {
            record_type: header.record_type,
            request_id: header.request_id,
            content: bytes.freeze(),
        })
    }

    /// Append a whole record (header, content, padding) to `out`.
    ///
    /// # Panics
    /// If `content` is longer than [`MAX_CONTENT_LEN`]; callers split streams into records.
    pub fn encode(out: &mut Vec<u8>, record_type: RecordType, request_id: u16, content: &[u8]) {
        let len = u16::try_from(content.len()).expect("FastCGI record content over 65535 bytes");
        let header = Header::new(record_type, request_id, len);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(content);
        out.extend_from_slice(&PADDING[..header.padding_len as usize]);
    }
}

/// The FastCGI role a request asks the application to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Responder,
    Authorizer,
    Filter,
    /// Any other value; answered with [`ProtocolStatus::UnknownRole`].
    Other(u16),
}

impl Role {
    /// The role for a wire value.
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Role::Responder,
            2 => Role::Authorizer,
            3 => Role::Filter,
            other => Role::Other(other),
        }
    }

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            Role::Responder => 1,
            Role::Authorizer => 2,
            Role::Filter => 3,
            Role::Other(v) => v,
        }
    }

    /// The value libfcgi passes as the `FCGI_ROLE` parameter; `None` for unknown roles.
    pub fn param_value(self) -> Option<&'static str> {
        match self {
            Role::Responder => Some("RESPONDER"),
            Role::Authorizer => Some("AUTHORIZER"),
            Role::Filter => Some("FILTER"),
            Role::Other(_) => None,
        }
    }
}

/// The flag bit asking the application to keep the connection open after the request.
pub const FCGI_KEEP_CONN: u8 = 1;

/// The body of a BEGIN_REQUEST record: `roleB1, roleB0, flags, reserved[5]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequestBody {
    pub role: Role,
    pub flags: u8,
}

impl BeginRequestBody {
    /// Decode the body; `None` unless it is exactly 8 bytes (libfcgi calls that a protocol error).
    pub fn decode(content: &[u8]) -> Option<Self> {
        let bytes: &[u8; 8] = content.try_into().ok()?;
        Some(BeginRequestBody {
            role: Role::from_u16(u16::from_be_bytes([bytes[0], bytes[1]])),
            flags: bytes[2],
        })
    }

    /// The 8 body bytes.
    pub fn encode(&self) -> [u8; 8] {
        let [hi, lo] = self.role.as_u16().to_be_bytes();
        [hi, lo, self.flags, 0, 0, 0, 0, 0]
    }

    /// Whether the web server wants the connection kept open after this request.
    pub fn keep_conn(&self) -> bool {
        self.flags & FCGI_KEEP_CONN != 0
    }
}

/// The protocol status of an END_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// Normal end of a request.
    RequestComplete,
    /// A second request on a connection that is busy: we do not multiplex.
    CantMpxConn,
    /// The application is out of some resource.
    Overloaded,
    /// The role in BEGIN_REQUEST is not one we play.
    UnknownRole,
}

impl ProtocolStatus {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            ProtocolStatus::RequestComplete => 0,
            ProtocolStatus::CantMpxConn => 1,
            ProtocolStatus::Overloaded => 2,
            ProtocolStatus::UnknownRole => 3,
        }
    }
}

/// The body of an END_REQUEST record: `appStatus` (4 bytes), `protocolStatus`, `reserved[3]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRequestBody {
    pub app_status: u32,
    pub protocol_status: ProtocolStatus,
}

impl EndRequestBody {
    /// The 8 body bytes.
    pub fn encode(&self) -> [u8; 8] {
        let [a, b, c, d] = self.app_status.to_be_bytes();
        [a, b, c, d, self.protocol_status.as_u8(), 0, 0, 0]
    }
}

/// The body of an UNKNOWN_TYPE record: the type we did not understand, then 7 reserved bytes.
pub fn unknown_type_body(record_type: RecordType) -> [u8; 8] {
    [record_type.as_u8(), 0, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_the_spec_layout() {
        let h = Header::new(RecordType::Stdout, 0x0102, 0x0304);
        assert_eq!(h.padding_len, 4); // 0x304 = 772 = 96 * 8 + 4
        assert_eq!(h.encode(), [1, 6, 1, 2, 3, 4, 4, 0]);
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        assert_eq!(h.record_len(), 8 + 772 + 4);
    }

    #[test]
    fn padding_rounds_to_eight() {
        for len in 0u16..40 {
            assert_eq!(
                (len as usize + padding_for(len) as usize) % 8,
                0,
                "len {len}"
            );
            assert!(padding_for(len) < 8);
        }
        assert_eq!(padding_for(65535), 1);
        assert_eq!(padding_for(65528), 0);
    }

    #[test]
    fn every_type_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(RecordType::from_u8(v).as_u8(), v);
        }
        assert_eq!(RecordType::from_u8(9), RecordType::GetValues);
        assert_eq!(RecordType::from_u8(12), RecordType::Other(12));
    }

    #[test]
    fn check_waits_for_the_whole_record() {
        let mut wire = Vec::new();
        Record::encode(&mut wire, RecordType::Params, 1, b"abc");
        assert_eq!(wire.len(), 16);
        for cut in 0..wire.len() {
            assert_eq!(
                Record::check(&wire[..cut]),
                Err(RecordError::Incomplete),
                "cut {cut}"
            );
        }
        let h = Record::check(&wire).unwrap();
        assert_eq!(h.content_len, 3);
        assert_eq!(h.padding_len, 5);
    }

    #[test]
    fn parse_splits_one_record_and_drops_padding() {
        let mut wire = Vec::new();
        Record::encode(&mut wire, RecordType::Stdin, 7, b"hello");
        Record::encode(&mut wire, RecordType::Stdin, 7, b"");
        wire.extend_from_slice(&[1, 5]); // the start of a third record
        let mut buf = BytesMut::from(&wire[..]);
        let r = Record::parse(&mut buf).unwrap();
        assert_eq!(r.record_type, RecordType::Stdin);
        assert_eq!(r.request_id, 7);
        assert_eq!(&r.content[..], b"hello");
        let r = Record::parse(&mut buf).unwrap();
        assert!(r.content.is_empty());
        assert_eq!(Record::parse(&mut buf), Err(RecordError::Incomplete));
        assert_eq!(&buf[..], &[1, 5]);
    }

    #[test]
    fn padding_sent_by_the_peer_is_honoured_even_when_unusual() {
        // A client may pad more than needed (up to 255 bytes); the next record starts after it.
        let mut wire = vec![1, 4, 0, 1, 0, 2, 9, 0, b'h', b'i'];
        wire.extend_from_slice(&[0xAA; 9]);
        Record::encode(&mut wire, RecordType::Params, 1, b"");
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(&Record::parse(&mut buf).unwrap().content[..], b"hi");
        let r = Record::parse(&mut buf).unwrap();
        assert_eq!((r.record_type, r.content.len()), (RecordType::Params, 0));
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_is_rejected_from_the_first_byte() {
        assert_eq!(
            Record::check(b"G"),
            Err(RecordError::UnsupportedVersion(b'G'))
        );
        assert_eq!(
            Record::check(b"GET / HTTP/1.1\r\n"),
            Err(RecordError::UnsupportedVersion(b'G'))
        );
        assert_eq!(Record::check(&[]), Err(RecordError::Incomplete));
        assert_eq!(Record::check(&[1]), Err(RecordError::Incomplete));
    }

    #[test]
    fn begin_request_body() {
        let b = BeginRequestBody::decode(&[0, 1, 1, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(b.role, Role::Responder);
        assert!(b.keep_conn());
        let b = BeginRequestBody::decode(&[0, 3, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(b.role, Role::Filter);
        assert!(!b.keep_conn());
        let b = BeginRequestBody::decode(&[1, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(b.role, Role::Other(256));
        assert_eq!(b.role.param_value(), None);
        assert_eq!(b.encode(), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(BeginRequestBody::decode(&[0, 1, 1]), None);
        assert_eq!(BeginRequestBody::decode(&[0; 9]), None);
    }

    #[test]
    fn end_request_and_unknown_type_bodies() {
        let e = EndRequestBody {
            app_status: 0x01020304,
            protocol_status: ProtocolStatus::UnknownRole,
        };
        assert_eq!(e.encode(), [1, 2, 3, 4, 3, 0, 0, 0]);
        let e = EndRequestBody {
            app_status: 0,
            protocol_status: ProtocolStatus::CantMpxConn,
        };
        assert_eq!(e.encode(), [0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(ProtocolStatus::Overloaded.as_u8(), 2);
        assert_eq!(
            unknown_type_body(RecordType::Other(200)),
            [200, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    #[should_panic(expected = "over 65535")]
    fn encode_refuses_oversized_content() {
        Record::encode(&mut Vec::new(), RecordType::Stdout, 1, &vec![0; 65536]);
    }
}
