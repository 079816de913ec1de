//! Host and Origin protection on every route, and the bearer token.

use crate::common::*;
use serde_json::json;

fn request(relay: &Relay, method: &str, path: &str, extra: &str) -> Reply {
    let body = if method == "POST" {
        r#"{"target":"t","sender":"s","text":"x"}"#
    } else {
        ""
    };
    raw(
        relay.addr(),
        format!(
            "{method} {path} HTTP/1.1\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn foreign_hosts_are_refused_on_every_route() {
    let relay = Relay::memory();
    for path in [
        "/",
        "/healthz",
        "/api/channels",
        "/api/messages?target=t",
        "/mcp",
        "/docs",
    ] {
        let r = request(&relay, "GET", path, "Host: evil.example:8010\r\n");
        assert_eq!(r.status, 421, "{path}");
        let ok = request(
            &relay,
            "GET",
            path,
            &format!("Host: localhost:{}\r\n", relay.addr().port()),
        );
        assert_ne!(ok.status, 421, "{path}");
    }
    assert_eq!(
        request(&relay, "POST", "/api/messages", "Host: evil.example\r\n").status,
        421
    );
    assert_eq!(
        get(&relay.url("/api/messages?target=t")).json()["messages"],
        json!([]),
        "nothing was posted"
    );
}

#[test]
fn browser_origins_must_be_local_or_allowed() {
    let relay = Relay::with(|c| c.allowed_hosts = vec!["192.168.2.3".into()]);
    let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
    for (origin, status) in [
        ("http://evil.example", 403),
        ("null", 403),
        ("http://localhost:5173", 200),
        ("http://127.0.0.1:8010", 200),
        ("http://192.168.2.3:8010", 200),
    ] {
        let r = request(
            &relay,
            "GET",
            "/api/channels",
            &format!("{host}Origin: {origin}\r\n"),
        );
        assert_eq!(r.status, status, "{origin}");
    }
    let r = request(
        &relay,
        "POST",
        "/api/messages",
        &format!("{host}Origin: http://evil.example\r\n"),
    );
    assert_eq!(r.status, 403);
    let r = request(&relay, "GET", "/api/channels", "Host: 192.168.2.3:9999\r\n");
    assert_eq!(r.status, 200, "allowed_hosts entries match any port");
}

#[test]
fn a_configured_token_guards_every_route_but_healthz() {
    let relay = Relay::with(|c| c.auth_token = Some("s3cret".into()));
    let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
    assert_eq!(request(&relay, "GET", "/healthz", &host).status, 200);
    assert_eq!(
        request(&relay, "GET", "/", &host).status,
        200,
        "the page loads to ask for the token"
    );
    for (method, path) in [
        ("GET", "/api/channels"),
        ("GET", "/api/stream?target=t"),
        ("GET", "/openapi.json"),
        ("POST", "/api/messages"),
        ("POST", "/mcp"),
        ("GET", "/docs"),
    ] {
        assert_eq!(
            request(&relay, method, path, &host).status,
            401,
            "{method} {path}"
        );
        let wrong = request(
            &relay,
            method,
            path,
            &format!("{host}Authorization: Bearer nope\r\n"),
        );
        assert_eq!(wrong.status, 401, "{method} {path}");
    }
    let ok = request(
        &relay,
        "POST",
        "/api/messages",
        &format!("{host}Authorization: Bearer s3cret\r\n"),
    );
    assert_eq!(ok.status, 201);
    let mut stream = Sse::open(
        relay.addr(),
        "/api/stream?target=t&since_id=0&token=s3cret",
        &[],
    );
    assert_eq!(
        stream.status, 200,
        "EventSource passes the token in the query"
    );
    assert!(stream.next_message(within(5.0)).is_some());
}
