//! The HTTP listener's request handling: hyper parses the bytes (as `--http` configures it),
//! `transport::http::to_request` turns each request into the CGI parameters the protocols read,
//! and `to_http` turns a response back, over an in-memory connection.
//!
//! Properties: the CGI parameters are consistent with the request (`QUERY_STRING` is the part
//! of `REQUEST_URI` after `?`, header names become `HTTP_*` names without `-`), and whatever
//! response the application gives (here: one parsed from the request body, i.e. any header
//! lines) the connection writes a well-formed HTTP/1.1 answer.
#![no_main]

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use iipsrv::http::Response;
use iipsrv::transport::Limits;
use iipsrv::transport::http::{to_http, to_request};
use iipsrv_fuzz::{Mock, Rng};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap(),
    );
}

fuzz_target!(|data: &[u8]| {
    let mut rng = Rng::from_data(data);
    let mut cuts = rng.cuts(data.len(), 200);
    cuts.reverse();
    let mock = Mock::new(data.to_vec(), cuts);
    let output = RUNTIME.with(|rt| rt.borrow().block_on(serve(mock)));
    if !output.is_empty() {
        // (hyper answers an HTTP/1.0 request as HTTP/1.0.)
        assert!(
            output.starts_with(b"HTTP/1.1 ") || output.starts_with(b"HTTP/1.0 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&output[..output.len().min(200)])
        );
    }
});

async fn serve(mut mock: Mock) -> Vec<u8> {
    let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let limits = Limits {
        max_body_bytes: 4096,
        ..Limits::default()
    };
    let service = service_fn(move |req: hyper::Request<Incoming>| async move {
        let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_string());
        let method = req.method().as_str().to_string();
        let response = match to_request(req, local, peer, &limits).await {
            Ok(request) => {
                check(&request, &method, path_and_query.as_deref());
                Response::from_cgi_bytes(&request.body).unwrap_or_else(|| {
                    let mut r = Response::empty();
                    r.push("Content-Type", "text/plain");
                    r.body = request.body.clone().into();
                    r
                })
            }
            Err(refusal) => refusal,
        };
        Ok::<_, Infallible>(to_http(response))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60))
        .serve_connection(TokioIo::new(&mut mock), service);
    let _ = conn.await;
    mock.output
}

/// The CGI parameters agree with the request.
fn check(request: &iipsrv::http::Request, method: &str, path_and_query: Option<&str>) {
    assert_eq!(request.method(), method.as_bytes());
    let uri = request.param("REQUEST_URI").unwrap();
    let query = request.param("QUERY_STRING").unwrap();
    if let Some(pq) = path_and_query {
        assert_eq!(uri, pq.as_bytes());
    }
    match uri.iter().position(|&b| b == b'?') {
        Some(q) => assert_eq!(query, &uri[q + 1..], "QUERY_STRING"),
        None => assert!(query.is_empty(), "QUERY_STRING without '?'"),
    }
    for (name, _) in request.params() {
        assert!(!name.is_empty(), "empty parameter name");
        assert!(
            !name.contains(&b'-'),
            "'-' in {:?}",
            String::from_utf8_lossy(name)
        );
        assert!(
            !name.iter().any(u8::is_ascii_lowercase),
            "lower case in {:?}",
            String::from_utf8_lossy(name)
        );
    }
    assert!(request.body.len() <= 4096);
}
