//! The memcached reply parser and what the request path does with a hit: the binary-protocol
//! frame, and the [`Response`] served from the stored CGI bytes (`Response::from_cgi_bytes`,
//! as `Memcached::get_fresh` reads every hit). A value another process stored may be anything; whatever is
//! served must still be a well-formed response (no CR, LF or NUL inside a header line).
//!
//! Input: a mode byte (even: a reply frame; odd: a stored value as it is), then the bytes.
#![no_main]

use iipsrv::cache::memcached::wire;
use iipsrv::http::Response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let mut reader = std::io::Cursor::new(rest);
        // Replies to GET, then whatever follows on the same connection (SET, NOOP).
        for op in [wire::OP_GET, wire::OP_SET, wire::OP_NOOP] {
            let Ok(reply) = wire::read_reply(&mut reader, op) else {
                break;
            };
            if op == wire::OP_GET && reply.status == wire::STATUS_OK {
                served(reply.value());
            }
        }
    } else {
        served(rest);
    }
});

/// What a hit turns into (`Memcached::get_fresh`, then `protocols::respond`).
fn served(value: &[u8]) {
    let Some(response) = Response::from_cgi_bytes(value) else {
        return;
    };
    assert!(response.body.len() < value.len());
    iipsrv_fuzz::check_response(&response, &[]);
    // Stored again as it is served: the same response.
    let again = Response::from_cgi_bytes(&response.to_cgi_bytes());
    assert_eq!(again.as_ref(), Some(&response), "stored and read back");
}
