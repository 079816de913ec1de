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
fn a_repeated_authorization_header_is_400_whichever_token_each_holds() {
    let guarded = Relay::with(|c| {
        c.auth_token = Some("s3cret".into());
        c.agents = [("codex".to_string(), "tok-codex".to_string())].into();
    });
    let open = Relay::memory();
    for relay in [&guarded, &open] {
        let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
        for (first, second) in [
            ("s3cret", "s3cret"),
            ("nope", "s3cret"),
            ("s3cret", "nope"),
            ("tok-codex", "s3cret"),
        ] {
            let twice = format!(
                "{host}Authorization: Bearer {first}\r\nAuthorization: Bearer {second}\r\n"
            );
            for (method, path) in [("POST", "/api/messages"), ("GET", "/api/channels")] {
                let r = request(relay, method, path, &twice);
                assert_eq!(
                    r.status, 400,
                    "{method} {path} {first} {second}: {}",
                    r.body
                );
                assert!(
                    r.body.contains("more than one Authorization header"),
                    "{}",
                    r.body
                );
            }
        }
    }
    let held = get_json(&open.url("/api/messages?target=t"));
    assert_eq!(held["messages"], json!([]), "nothing was posted: {held}");
}

#[test]
fn a_repeated_idempotency_key_header_is_400_and_posts_nothing() {
    let relay = Relay::memory();
    let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
    for (first, second) in [("k-1", "k-1"), ("k-1", "k-2"), ("k-1", "")] {
        let twice = format!("{host}Idempotency-Key: {first}\r\nIdempotency-Key: {second}\r\n");
        let r = request(&relay, "POST", "/api/messages", &twice);
        assert_eq!(r.status, 400, "{first:?} {second:?}: {}", r.body);
        assert!(
            r.body.contains("more than one Idempotency-Key header"),
            "{}",
            r.body
        );
    }
    let once = request(
        &relay,
        "POST",
        "/api/messages",
        &format!("{host}Idempotency-Key: k-1\r\n"),
    );
    assert_eq!(once.status, 201, "{}", once.body);
    let held = get_json(&relay.url("/api/messages?target=t"));
    assert_eq!(held["messages"].as_array().unwrap().len(), 1, "{held}");
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
    assert!(stream.next_message(deadline()).is_some());
}

#[test]
fn every_route_needs_the_token_and_accepts_it() {
    let relay = Relay::with(|c| {
        c.auth_token = Some("s3cret".into());
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
    let bearer = format!("{host}Authorization: Bearer s3cret\r\n");
    // Every route, as the published document lists them (a unit test pins it to the router).
    let doc = get_with(
        &relay.url("/openapi.json"),
        &[("Authorization", "Bearer s3cret")],
    )
    .json();
    let routes: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            let methods = ops.as_object().unwrap().keys();
            methods.map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    assert!(routes.len() > 10, "{routes:?}");
    for (method, path) in &routes {
        let (method, path) = (method.as_str(), path.as_str());
        if path == "/healthz" || path == "/" || ["/api/stream", "/sse"].contains(&path) {
            continue;
        }
        let without = request(&relay, method, path, &host);
        assert_eq!(without.status, 401, "{method} {path}");
        assert!(
            without.header("www-authenticate").is_none(),
            "{method} {path}"
        );
        let with = request(&relay, method, path, &bearer);
        assert_ne!(with.status, 401, "{method} {path}");
    }
    for path in ["/api/stream?target=t", "/sse"] {
        assert_eq!(Sse::open(relay.addr(), path, &[]).status, 401, "{path}");
        assert_eq!(
            Sse::open(relay.addr(), path, &[("Authorization", "Bearer s3cret")]).status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        request(&relay, "GET", "/healthz", &host).status,
        200,
        "/healthz stays open"
    );
}

#[test]
fn an_agent_token_posts_only_as_its_agent() {
    let relay = Relay::with(|c| {
        c.agents = [
            ("claude".to_string(), "tok-claude".to_string()),
            ("codex".to_string(), "tok-codex".to_string()),
        ]
        .into();
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let url = relay.url("/api/messages");
    let as_claude = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer tok-claude"),
    ];
    let r = post_raw(
        &url,
        &as_claude,
        br#"{"target":"proj-x","sender":"codex","text":"impersonation"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("claude"));
    let r = post_raw(
        &url,
        &as_claude,
        br#"{"target":"proj-x","text":"sender filled in"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["message"]["sender"], "claude");
    let r = post_raw(
        &url,
        &as_claude,
        br#"{"target":"proj-x","sender":" claude ","text":"own name"}"#,
    );
    assert_eq!(r.status, 201);
    let r = post_raw(
        &url,
        &[("Content-Type", "application/json")],
        br#"{"target":"proj-x","sender":"claude","text":"no token"}"#,
    );
    assert_eq!(r.status, 401);

    // The same rule over MCP: the post_message tool refuses another name as a tool error.
    let mcp_post = |token: &str, args: serde_json::Value| {
        let auth = format!("Bearer {token}");
        let init = post_raw(
            &relay.url("/mcp"),
            &[("Content-Type", "application/json"), ("Authorization", &auth)],
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        );
        let session = init.header("mcp-session-id").unwrap().to_string();
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "post_message", "arguments": args}});
        post_raw(
            &relay.url("/mcp"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
                ("Mcp-Session-Id", &session),
            ],
            call.to_string().as_bytes(),
        )
        .json()
    };
    let refused = mcp_post(
        "tok-codex",
        json!({"target": "proj-x", "sender": "claude", "text": "x"}),
    );
    assert_eq!(refused["result"]["isError"], true);
    assert!(refused["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("codex"));
    let filled = mcp_post(
        "tok-codex",
        json!({"target": "proj-x", "text": "from codex"}),
    );
    assert_eq!(filled["result"]["isError"], false, "{filled}");
    let page = get_with(
        &relay.url("/api/messages?target=proj-x"),
        &[("Authorization", "Bearer tok-codex")],
    )
    .json();
    let senders: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["claude", "claude", "codex"]);
}

#[test]
fn missing_repeated_or_malformed_hosts_are_400() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let cases = [
        ("HTTP/1.1", String::new()),
        (
            "HTTP/1.1",
            format!("Host: 127.0.0.1:{port}\r\nHost: evil.com\r\n"),
        ),
        ("HTTP/1.1", "Host: [::1]evil.com\r\n".to_string()),
        ("HTTP/1.1", "Host: localhost:evil.com\r\n".to_string()),
        ("HTTP/1.1", format!("Host: 127.0.0.1:{port}@evil.com\r\n")),
    ];
    for (version, hosts) in &cases {
        let r = raw(
            relay.addr(),
            format!("GET /api/channels {version}\r\n{hosts}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 400, "{hosts:?}: {}", r.body);
    }
    let old = raw(relay.addr(), b"GET /api/channels HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200, "HTTP/1.0 has no Host to require");
}

#[test]
fn cross_site_requests_without_origin_cannot_open_streams_or_mcp_or_move_a_reader() {
    let relay = Relay::memory();
    relay.post("t", "s", "still unread");
    let host = format!("Host: 127.0.0.1:{}\r\n", relay.addr().port());
    for (method, path) in [
        ("GET", "/sse"),
        ("POST", "/mcp"),
        ("GET", "/api/stream?target=t"),
        ("GET", "/api/messages?target=t&reader=codex"),
    ] {
        let r = request(
            &relay,
            method,
            path,
            &format!("{host}Sec-Fetch-Site: cross-site\r\n"),
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }
    let same = request(
        &relay,
        "GET",
        "/api/channels",
        &format!("{host}Sec-Fetch-Site: cross-site\r\n"),
    );
    assert_eq!(same.status, 200, "plain reads are not streams");
    let page = request(
        &relay,
        "GET",
        "/api/messages?target=t",
        &format!("{host}Sec-Fetch-Site: cross-site\r\n"),
    );
    assert_eq!(page.status, 200, "nor is a page read without a reader");
    let unread = get_json(&relay.url("/api/unread?reader=codex"));
    assert_eq!(unread["total"], 1, "{unread}");
}

#[test]
fn the_token_scheme_is_case_insensitive_and_the_query_token_works_only_for_streams() {
    let relay = Relay::with(|c| {
        c.auth_token = Some("s3cret".into());
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = get_with(
            &relay.url("/api/channels"),
            &[("Authorization", &format!("{scheme} s3cret"))],
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
    assert_eq!(
        get_with(
            &relay.url("/api/channels"),
            &[("Authorization", "Basic s3cret")]
        )
        .status,
        401
    );
    for path in [
        "/api/channels?token=s3cret",
        "/api/messages?target=t&token=s3cret",
        "/sse?token=s3cret",
    ] {
        assert_eq!(get(&relay.url(path)).status, 401, "{path}");
    }
    let stream = Sse::open(relay.addr(), "/api/stream?target=t&token=s3cret", &[]);
    assert_eq!(stream.status, 200);
}

#[test]
fn mcp_error_replies_keep_allow_like_rest_replies() {
    let relay = Relay::memory();
    let r = raw(
        relay.addr(),
        format!(
            "PUT /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            relay.addr().port()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST, DELETE"));
    assert_eq!(r.json()["error"]["code"], -32600, "still a JSON-RPC error");
}

#[test]
fn percent_escapes_with_a_sign_are_refused() {
    let relay = Relay::memory();
    assert_eq!(get(&relay.url("/api/channels?x=%+F")).status, 400);
    assert_eq!(get(&relay.url("/api/channels?x=%-1")).status, 400);
    assert_eq!(get(&relay.url("/api/channels?x=%2F")).status, 200);
}

#[test]
fn a_rejected_query_token_is_never_logged() {
    let dir = TempDir::new("guard-log");
    let (tool, channel) = (dir.path("t.log"), dir.path("c.log"));
    let relay = RelayChild::try_start(
        &dir,
        &[
            "--store",
            "memory",
            "--auth-token",
            "s3cret",
            "--log-path",
            tool.to_str().unwrap(),
            "--channel-log-path",
            channel.to_str().unwrap(),
        ],
        &[("RUST_LOG", "debug")],
    )
    .unwrap();
    let base = relay.base.clone();
    for path in [
        "/api/channels?token=wrong-but-near-secret",
        "/api/stream?target=t&token=wrong-but-near-secret",
    ] {
        assert_eq!(get(&format!("{base}{path}")).status, 401, "{path}");
    }
    let (_, err) = relay.kill();
    assert!(
        err.contains("GET /api/stream: 401"),
        "the rejection is logged: {err}"
    );
    assert!(!err.contains("wrong-but-near-secret"), "{err}");
}
