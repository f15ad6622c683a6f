//! The built-in HTTP/1.1 listener (`--http`).

use crate::support::{TestServer, get};

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn banner_obj_errors_and_methods() {
    let s = TestServer::http(&[("CORS", "*")]);
    let base = format!("http://{}", s.tcp_addr());
    let agent = ureq::AgentBuilder::new().build();

    let (status, h, body) = get(&agent, &format!("{base}/"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Content-Type"), Some("text/html"));
    assert!(body.starts_with(b"<!DOCTYPE html>"));

    let (status, h, body) = get(&agent, &format!("{base}/?OBJ=IIP,1.0&OBJ=IIP-server"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "Server"), Some("iipsrv/1.3"));
    assert_eq!(header(&h, "IIP"), Some("1.3"));
    assert_eq!(header(&h, "Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(body, b"IIP-server:3.65\r\n");

    let (status, h, body) = get(&agent, &format!("{base}/?OBJ=foo"));
    assert_eq!(status, 400);
    assert_eq!(header(&h, "Cache-Control"), Some("no-cache"));
    assert_eq!(body, b"Error/7:3 2 foo\r\n");

    let (status, _, body) = get(&agent, &format!("{base}/?FIF=missing.tif&OBJ=Max-size"));
    assert_eq!(status, 404);
    assert_eq!(
        body,
        b"missing.tif is neither a file nor part of an image sequence"
    );

    let resp = agent
        .request("OPTIONS", &format!("{base}/?FIF=x"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.header("Allow"), Some("GET POST OPTIONS"));
    let resp = agent.request("DELETE", &format!("{base}/?FIF=x"));
    match resp.call() {
        Err(ureq::Error::Status(405, _)) => {}
        other => panic!("expected 405, got {other:?}"),
    }
    let resp = agent
        .head(&format!("{base}/?OBJ=IIP,1.0&OBJ=IIP-server"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn post_form_is_the_request_string() {
    let s = TestServer::http(&[]);
    let agent = ureq::AgentBuilder::new().build();
    let resp = agent
        .post(&format!("http://{}/", s.tcp_addr()))
        .send_string("OBJ=IIP,1.0&OBJ=IIP-server")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.into_string().unwrap(), "IIP-server:3.65\r\n");
}

#[test]
fn uri_map_routes_paths() {
    let s = TestServer::http(&[("URI_MAP", "iiif=>IIIF")]);
    let agent = ureq::AgentBuilder::new().build();
    let (status, _, body) = get(
        &agent,
        &format!("http://{}/iiif/missing.tif/info.json", s.tcp_addr()),
    );
    assert_eq!(status, 404);
    assert_eq!(
        body,
        b"missing.tif is neither a file nor part of an image sequence"
    );
    let (status, _, _) = get(&agent, &format!("http://{}/iiif", s.tcp_addr()));
    assert_eq!(status, 400);
}
