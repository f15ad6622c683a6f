//! Real nginx in front of the built binary, on loopback, with its own config.

use crate::support::{IIPSRV_LOCATION, Nginx, TestServer, get, require};

#[test]
fn thousand_requests_over_keep_alive() {
    if !require("nginx", "nginx-light") {
        return;
    }
    let s = TestServer::tcp(&[("CORS", "*")]);
    let locations = format!(
        "{IIPSRV_LOCATION}    location /nokeep {{\n      fastcgi_pass {};\n      include /etc/nginx/fastcgi_params;\n    }}\n",
        s.tcp_addr()
    );
    let nginx = Nginx::start(&s.addr, &locations);
    let agent = ureq::AgentBuilder::new()
        .max_idle_connections_per_host(8)
        .build();
    let queries = [
        "OBJ=IIP,1.0&OBJ=IIP-server",
        "",
        "OBJ=foo",
        "FIF=missing.tif&OBJ=Max-size",
    ];
    for i in 0..1000 {
        let q = queries[i % queries.len()];
        let (status, headers, body) =
            get(&agent, &nginx.url(&format!("/fcgi-bin/iipsrv.fcgi?{q}")));
        match i % queries.len() {
            0 => {
                assert_eq!(status, 200, "request {i}");
                assert_eq!(body, b"IIP-server:3.65\r\n");
                assert!(
                    headers
                        .iter()
                        .any(|(n, v)| n.eq_ignore_ascii_case("iip") && v == "1.3")
                );
            }
            1 => {
                assert_eq!(status, 200);
                assert!(body.starts_with(b"<!DOCTYPE html>"));
            }
            2 => {
                assert_eq!(status, 400);
                assert_eq!(body, b"Error/7:3 2 foo\r\n");
            }
            _ => {
                assert_eq!(status, 404);
                assert!(headers.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("access-control-allow-origin") && v == "*"
                }));
            }
        }
    }
    // Without keep-alive to the upstream as well.
    for _ in 0..50 {
        let (status, _, body) = get(&agent, &nginx.url("/nokeep?OBJ=IIP,1.0&OBJ=IIP-server"));
        assert_eq!(status, 200);
        assert_eq!(body, b"IIP-server:3.65\r\n");
    }
    let errors = nginx.error_log();
    assert!(
        !errors.contains("upstream"),
        "nginx reported upstream errors:\n{errors}"
    );
}

#[test]
fn uri_map_through_nginx_and_http_listener_agree() {
    if !require("nginx", "nginx-light") {
        return;
    }
    let s = TestServer::unix(&[("URI_MAP", "iiif=>IIIF")]);
    let location = "    location /iiif/ {\n      fastcgi_pass {UPSTREAM};\n      fastcgi_keep_conn on;\n      include /etc/nginx/fastcgi_params;\n    }\n";
    let nginx = Nginx::start(&s.addr, location);
    let direct = TestServer::http(&[("URI_MAP", "iiif=>IIIF")]);
    // `/iiif/x` is a base URI: a 303 whose Location names nginx's $host
    // without the port; compare the redirect itself.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    for path in [
        "/iiif/missing.tif/info.json",
        "/iiif/x",
        "/iiif/a/b/c/d/e/f.jpg",
    ] {
        let via_nginx = get(&agent, &nginx.url(path));
        let via_http = get(&agent, &format!("http://{}{path}", direct.tcp_addr()));
        assert_eq!(via_nginx.0, via_http.0, "{path}");
        assert_eq!(via_nginx.2, via_http.2, "{path}");
    }
}
