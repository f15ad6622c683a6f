//! The FastCGI byte stream: record framing, the PARAMS name-value stream, and a whole
//! connection (`serve_connection`) over an in-memory stream.
//!
//! Properties:
//! - records come out the same however the stream arrives (read in random pieces, as sockets
//!   deliver it, or all at once);
//! - PARAMS decode the same however the stream is split: record by record, in two different
//!   random splits, and all at once;
//! - a connection given any bytes answers with well-formed records only (version 1, whole
//!   records, every STDOUT stream closed by an empty STDOUT record before its END_REQUEST).
//!
//! Input: a mode byte (odd: the rest is a bare PARAMS stream; even: a record stream), then the
//! bytes.
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use bytes::BytesMut;
use iipsrv::http::{Request, Response};
use iipsrv::transport::fastcgi::params::{self, Params, ParamsDecoder};
use iipsrv::transport::fastcgi::record::{Record, RecordError, RecordType};
use iipsrv::transport::fastcgi::serve_connection;
use iipsrv::transport::{Limits, Responder};
use iipsrv_fuzz::{Mock, Rng};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap(),
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let mut rng = Rng::from_data(data);
    let budget = [usize::MAX, 256 * 1024, 64, 1 + rng.below(300) as usize][rng.below(4) as usize];
    if mode & 1 == 1 {
        params_split_equally(&[stream], budget, &mut rng);
        return;
    }
    let records = records_split_equally(stream, &mut rng);
    // Every PARAMS record's content, in order, as the connection feeds them.
    let chunks: Vec<&[u8]> = records
        .iter()
        .filter(|r| r.record_type == RecordType::Params)
        .map(|r| &r.content[..])
        .collect();
    params_split_equally(&chunks, budget, &mut rng);
    connection(stream, &mut rng);
});

/// Parse `stream` whole and in random pieces; both must give the same records and end the
/// same way. Returns the records.
fn records_split_equally(stream: &[u8], rng: &mut Rng) -> Vec<Record> {
    let (whole, end) = parse_all(&mut BytesMut::from(stream));
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut piece_end = Err(RecordError::Incomplete);
    let mut at = 0;
    for n in rng.cuts(stream.len(), 64) {
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        let (mut got, e) = parse_all(&mut buf);
        pieces.append(&mut got);
        piece_end = e;
        if !matches!(piece_end, Err(RecordError::Incomplete)) {
            break;
        }
    }
    assert_eq!(whole, pieces, "records differ when read in pieces");
    assert_eq!(
        format!("{end:?}"),
        format!("{piece_end:?}"),
        "the stream ends differently"
    );
    whole
}

fn parse_all(buf: &mut BytesMut) -> (Vec<Record>, Result<(), RecordError>) {
    let mut out = Vec::new();
    loop {
        match Record::parse(buf) {
            Ok(r) => {
                assert!(r.content.len() <= 65535);
                out.push(r)
            }
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Decode the PARAMS stream made of `chunks` fed as they are, in two random splits, and whole.
fn params_split_equally(chunks: &[&[u8]], budget: usize, rng: &mut Rng) {
    let whole: Vec<u8> = chunks.concat();
    let as_fed = feed(chunks.iter().copied(), budget);
    let all_at_once = params::decode_all(&whole, budget);
    for _ in 0..2 {
        let max = 1 + rng.below(40) as usize;
        let mut at = 0;
        let pieces: Vec<&[u8]> = rng
            .cuts(whole.len(), max)
            .into_iter()
            .map(|n| {
                at += n;
                &whole[at - n..at]
            })
            .collect();
        let split = feed(pieces.into_iter(), budget);
        assert_eq!(split, all_at_once, "PARAMS differ when split");
    }
    assert_eq!(as_fed, all_at_once, "PARAMS differ record by record");
    let stored: usize = all_at_once
        .pairs
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum();
    assert!(stored <= budget, "over the budget");
}

fn feed<'a>(chunks: impl Iterator<Item = &'a [u8]>, budget: usize) -> Params {
    let mut decoder = ParamsDecoder::new(budget);
    for c in chunks {
        decoder.feed(c);
    }
    decoder.finish()
}

/// Answers with the parameters it received.
struct Echo;

impl Responder for Echo {
    fn respond(&self, request: Request) -> impl Future<Output = Response> + Send {
        let mut body = Vec::new();
        for (n, v) in request.params() {
            body.extend_from_slice(n);
            body.push(b'=');
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        body.extend_from_slice(&request.body);
        let mut r = Response::empty();
        r.push("Content-Type", "text/plain");
        r.body = body.into();
        std::future::ready(r)
    }
}

/// Serve the stream as one connection; the answer must be well-formed records.
fn connection(stream: &[u8], rng: &mut Rng) {
    let mut cuts = rng.cuts(stream.len(), 100);
    cuts.reverse();
    let mut mock = Mock::new(stream.to_vec(), cuts);
    let limits = Limits {
        max_params_bytes: 4096,
        max_body_bytes: 1024,
        max_record_content: 1 + rng.below(2000) as usize,
        max_conns: 8,
        ..Limits::default()
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    RUNTIME.with(|rt| {
        let _ = rt
            .borrow()
            .block_on(serve_connection(&mut mock, Arc::new(Echo), limits, rx));
    });
    let mut out = BytesMut::from(&mock.output[..]);
    let (records, end) = parse_all(&mut out);
    assert!(
        matches!(end, Err(RecordError::Incomplete)) && out.is_empty(),
        "{end:?}"
    );
    let mut open_stdout: Vec<u16> = Vec::new();
    for r in &records {
        match r.record_type {
            RecordType::Stdout if r.content.is_empty() => {
                assert!(open_stdout.contains(&r.request_id), "STDOUT closed twice");
                open_stdout.retain(|&id| id != r.request_id);
            }
            RecordType::Stdout => {
                assert!(r.content.len() <= limits.max_record_content);
                if !open_stdout.contains(&r.request_id) {
                    open_stdout.push(r.request_id);
                }
            }
            RecordType::EndRequest => {
                assert!(
                    !open_stdout.contains(&r.request_id),
                    "END_REQUEST before the end of STDOUT"
                );
                assert_eq!(r.content.len(), 8);
            }
            RecordType::GetValuesResult | RecordType::UnknownType => {
                assert_eq!(r.request_id, 0)
            }
            t => panic!("the server sent a {t:?} record"),
        }
    }
}
