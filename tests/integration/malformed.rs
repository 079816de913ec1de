//! No input gets a 5xx: a table of malformed requests across REST, the event stream and MCP,
//! each with the status (and JSON-RPC code) it must get, then a seeded random mutation of valid
//! requests. Afterwards the relay still answers and what was stored is byte-for-byte the same.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What a row checks besides the status.
#[derive(Clone, Copy)]
enum Then {
    Nothing,
    /// A JSON-RPC error with this code.
    Rpc(i64),
    /// A tool result with `isError: true`.
    ToolError,
}

struct Row {
    what: String,
    request: Vec<u8>,
    status: u16,
    then: Then,
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        out.extend_from_slice(b"Host: 127.0.0.1\r\n");
    }
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

fn json_post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request("POST", path, &all, body)
}

/// Sends raw bytes and returns the status (0 if the connection closed without one) and body.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The relay may answer (413) and close before reading everything: that is allowed.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        // A response whose body is complete is enough (some connections stay open).
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| out.len() >= end + 4 + n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn rpc(id: Value, method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = vec![b'['; depth];
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

fn table(relay: &Relay) -> Vec<Row> {
    let modern = Mcp::connect(relay, "2025-11-25");
    let old = Mcp::connect(relay, "2025-03-26");
    let ended = Mcp::connect(relay, "2025-06-18");
    assert_eq!(
        delete(&relay.url("/mcp"), &[("Mcp-Session-Id", &ended.session)]).status,
        204
    );
    let s = modern.session.clone();
    let session = [("Mcp-Session-Id", s.as_str())];
    let call = |name: &str, args: Value| {
        rpc(
            json!(1),
            "tools/call",
            json!({"name": name, "arguments": args}),
        )
    };
    let long = "x".repeat(129);
    let big_text =
        json!({"target": "t", "sender": "s", "text": "x".repeat(2 * 1024 * 1024)}).to_string();
    let mut rows: Vec<(String, Vec<u8>, u16, Then)> = vec![
        // REST: POST bodies
        ("invalid JSON".into(), json_post("/api/messages", &[], b"{"), 400, Then::Nothing),
        ("truncated JSON".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b","text":"c""#), 400, Then::Nothing),
        ("empty body".into(), json_post("/api/messages", &[], b""), 400, Then::Nothing),
        ("a list".into(), json_post("/api/messages", &[], b"[1]"), 400, Then::Nothing),
        ("a number".into(), json_post("/api/messages", &[], b"5"), 400, Then::Nothing),
        ("null".into(), json_post("/api/messages", &[], b"null"), 400, Then::Nothing),
        ("a string".into(), json_post("/api/messages", &[], b"\"hi\""), 400, Then::Nothing),
        ("numeric target".into(), json_post("/api/messages", &[], br#"{"target":1,"sender":"b","text":"c"}"#), 400, Then::Nothing),
        ("list sender".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":[],"text":"c"}"#), 400, Then::Nothing),
        ("object text".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b","text":{}}"#), 400, Then::Nothing),
        ("boolean text".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b","text":true}"#), 400, Then::Nothing),
        ("missing target".into(), json_post("/api/messages", &[], br#"{"sender":"b","text":"c"}"#), 400, Then::Nothing),
        ("missing sender".into(), json_post("/api/messages", &[], br#"{"target":"a","text":"c"}"#), 400, Then::Nothing),
        ("missing text".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b"}"#), 400, Then::Nothing),
        ("blank text".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b","text":" \n\t"}"#), 400, Then::Nothing),
        ("blank target".into(), json_post("/api/messages", &[], br#"{"target":"   ","sender":"b","text":"c"}"#), 400, Then::Nothing),
        ("control character in target".into(), json_post("/api/messages", &[], br#"{"target":"a\u0001b","sender":"b","text":"c"}"#), 400, Then::Nothing),
        ("newline in sender".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b\nc","text":"c"}"#), 400, Then::Nothing),
        ("overlong target".into(), json_post("/api/messages", &[], format!(r#"{{"target":"{long}","sender":"b","text":"c"}}"#).as_bytes()), 400, Then::Nothing),
        ("non-UTF-8 body".into(), json_post("/api/messages", &[], &[0xff, 0xfe, 0xfd]), 400, Then::Nothing),
        ("non-UTF-8 inside a string".into(), json_post("/api/messages", &[], b"{\"target\":\"a\xff\",\"sender\":\"b\",\"text\":\"c\"}"), 400, Then::Nothing),
        ("nesting 100,000 deep".into(), json_post("/api/messages", &[], &nested(100_000)), 400, Then::Nothing),
        ("number out of range".into(), json_post("/api/messages", &[], br#"{"target":1e999,"sender":"b","text":"c"}"#), 400, Then::Nothing),
        ("byte-order mark".into(), json_post("/api/messages", &[], b"\xef\xbb\xbf{\"target\":\"a\",\"sender\":\"b\",\"text\":\"c\"}"), 400, Then::Nothing),
        ("bad source".into(), json_post("/api/messages", &[], br#"{"target":"a","sender":"b","text":"c","source":"no spaces!"}"#), 400, Then::Nothing),
        ("text over the message limit".into(), json_post("/api/messages", &[], big_text.as_bytes()), 413, Then::Nothing),
        ("10 MB body".into(), json_post("/api/messages", &[], &vec![b' '; 10 * 1024 * 1024]), 413, Then::Nothing),
        // REST: query parameters
        ("limit=abc".into(), request("GET", "/api/messages?target=t&limit=abc", &[], b""), 400, Then::Nothing),
        ("detail=2".into(), request("GET", "/api/channels?detail=2", &[], b""), 400, Then::Nothing),
        ("detail=yes".into(), request("GET", "/api/channels?detail=yes", &[], b""), 400, Then::Nothing),
        ("limit=--1".into(), request("GET", "/api/messages?target=t&limit=--1", &[], b""), 400, Then::Nothing),
        ("limit=1e3".into(), request("GET", "/api/messages?target=t&limit=1e3", &[], b""), 400, Then::Nothing),
        ("since_id=- 5".into(), request("GET", "/api/messages?target=t&since_id=-%205", &[], b""), 400, Then::Nothing),
        ("since_id=1.5".into(), request("GET", "/api/messages?target=t&since_id=1.5", &[], b""), 400, Then::Nothing),
        ("wait=1e309".into(), request("GET", "/api/messages?target=t&since_id=0&wait=1e309", &[], b""), 400, Then::Nothing),
        ("wait=-1".into(), request("GET", "/api/messages?target=t&since_id=0&wait=-1", &[], b""), 400, Then::Nothing),
        ("wait=NaN".into(), request("GET", "/api/messages?target=t&since_id=0&wait=NaN", &[], b""), 400, Then::Nothing),
        ("wait without since_id".into(), request("GET", "/api/messages?target=t&wait=1", &[], b""), 400, Then::Nothing),
        ("no target".into(), request("GET", "/api/messages?limit=5", &[], b""), 400, Then::Nothing),
        ("NUL in target".into(), request("GET", "/api/messages?target=a%00b", &[], b""), 400, Then::Nothing),
        ("bad percent-escape".into(), request("GET", "/api/messages?target=%ZZ", &[], b""), 400, Then::Nothing),
        ("escape that is not UTF-8".into(), request("GET", "/api/messages?target=%FF", &[], b""), 400, Then::Nothing),
        ("a control character in the request target".into(), b"GET /healthz\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(), 400, Then::Nothing),
        ("a message id with a sign".into(), request("DELETE", "/api/messages/+1", &[], b""), 400, Then::Nothing),
        ("a negative message id".into(), request("DELETE", "/api/messages/-1", &[], b""), 400, Then::Nothing),
        ("overlong target in query".into(), request("GET", &format!("/api/messages?target={long}"), &[], b""), 400, Then::Nothing),
        // the event stream
        ("stream without target".into(), request("GET", "/api/stream", &[], b""), 400, Then::Nothing),
        ("stream with a bad Last-Event-ID".into(), request("GET", "/api/stream?target=t", &[("Last-Event-ID", "abc")], b""), 400, Then::Nothing),
        ("stream with a bad since_id".into(), request("GET", "/api/stream?target=t&since_id=x", &[], b""), 400, Then::Nothing),
        // methods and paths
        ("PUT /api/messages".into(), request("PUT", "/api/messages", &[], b"{}"), 405, Then::Nothing),
        ("PATCH /api/channels".into(), request("PATCH", "/api/channels", &[], b"{}"), 405, Then::Nothing),
        ("DELETE /healthz".into(), request("DELETE", "/healthz", &[], b""), 405, Then::Nothing),
        ("OPTIONS /mcp".into(), request("OPTIONS", "/mcp", &[], b""), 405, Then::Nothing),
        ("TRACE /".into(), request("TRACE", "/", &[], b""), 405, Then::Nothing),
        ("POST /sse".into(), json_post("/sse", &[], b"{}"), 405, Then::Nothing),
        ("unknown path".into(), request("GET", "/nope", &[], b""), 404, Then::Nothing),
        ("a path below a route".into(), request("GET", "/api/search/1", &[], b""), 404, Then::Nothing),
        ("GET of a message, which only DELETE takes".into(), request("GET", "/api/messages/1", &[], b""), 405, Then::Nothing),
        ("a path below /mcp".into(), request("GET", "/mcp/x", &[], b""), 404, Then::Nothing),
        ("OAuth discovery".into(), request("GET", "/.well-known/oauth-authorization-server", &[], b""), 404, Then::Nothing),
        ("path traversal".into(), request("GET", "/assets/../Cargo.toml", &[], b""), 404, Then::Nothing),
        // the request itself
        ("a foreign Host".into(), request("GET", "/healthz", &[("Host", "evil.example")], b""), 421, Then::Nothing),
        ("a foreign Origin".into(), request("GET", "/api/channels", &[("Origin", "http://evil.example")], b""), 403, Then::Nothing),
        ("two Origin headers".into(), request("GET", "/api/channels", &[("Origin", "http://127.0.0.1"), ("Origin", "http://evil.example")], b""), 400, Then::Nothing),
        ("a null Origin".into(), json_post("/mcp", &[("Origin", "null")], b"{}"), 403, Then::Nothing),
        ("garbage request line".into(), b"HELLO\r\n\r\n".to_vec(), 400, Then::Nothing),
        ("header without a colon".into(), b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n".to_vec(), 400, Then::Nothing),
        ("unknown Expect".into(), request("GET", "/healthz", &[("Expect", "magic")], b""), 417, Then::Nothing),
        ("absurd Content-Length".into(), b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000000000\r\n\r\n{".to_vec(), 413, Then::Nothing),
        // MCP over Streamable HTTP
        ("MCP without Content-Type".into(), request("POST", "/mcp", &[], &rpc(json!(1), "ping", json!({}))), 415, Then::Nothing),
        ("MCP as text/plain".into(), request("POST", "/mcp", &[("Content-Type", "text/plain")], &rpc(json!(1), "ping", json!({}))), 415, Then::Nothing),
        ("MCP with a bad percent-escape in its query".into(), json_post("/mcp?x=%zz", &session, &rpc(json!(1), "ping", json!({}))), 400, Then::Rpc(-32600)),
        ("MCP invalid JSON".into(), json_post("/mcp", &session, b"{oops"), 400, Then::Rpc(-32700)),
        ("MCP empty body".into(), json_post("/mcp", &session, b""), 400, Then::Rpc(-32700)),
        ("MCP nesting 100,000 deep".into(), json_post("/mcp", &session, &nested(100_000)), 400, Then::Rpc(-32700)),
        ("MCP without jsonrpc".into(), json_post("/mcp", &session, br#"{"id":1,"method":"ping"}"#), 400, Then::Rpc(-32600)),
        ("MCP jsonrpc 1.0".into(), json_post("/mcp", &session, br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), 400, Then::Rpc(-32600)),
        ("MCP null id".into(), json_post("/mcp", &session, br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), 400, Then::Rpc(-32600)),
        ("MCP fractional id".into(), json_post("/mcp", &session, br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), 400, Then::Rpc(-32600)),
        ("MCP numeric method".into(), json_post("/mcp", &session, br#"{"jsonrpc":"2.0","id":1,"method":7}"#), 400, Then::Rpc(-32600)),
        ("MCP params as a list".into(), json_post("/mcp", &session, br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[]}"#), 400, Then::Rpc(-32602)),
        ("MCP unknown session".into(), json_post("/mcp", &[("Mcp-Session-Id", "00000000000000000000000000000000")], &rpc(json!(1), "ping", json!({}))), 404, Then::Nothing),
        ("MCP ended session".into(), json_post("/mcp", &[("Mcp-Session-Id", ended.session.as_str())], &rpc(json!(1), "ping", json!({}))), 404, Then::Nothing),
        ("MCP without a session".into(), json_post("/mcp", &[], &rpc(json!(1), "ping", json!({}))), 400, Then::Nothing),
        ("MCP unsupported protocol version".into(), json_post("/mcp", &[("Mcp-Session-Id", s.as_str()), ("MCP-Protocol-Version", "1999-01-01")], &rpc(json!(1), "ping", json!({}))), 400, Then::Rpc(-32600)),
        ("MCP batch on a 2025-11-25 session".into(), json_post("/mcp", &session, br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), 400, Then::Rpc(-32600)),
        ("MCP empty batch".into(), json_post("/mcp", &[("Mcp-Session-Id", old.session.as_str())], b"[]"), 400, Then::Rpc(-32600)),
        ("MCP initialize in a batch".into(), json_post("/mcp", &[("Mcp-Session-Id", old.session.as_str())], br#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#), 400, Then::Rpc(-32600)),
        ("MCP unknown method".into(), json_post("/mcp", &session, &rpc(json!(1), "prompts/list", json!({}))), 200, Then::Rpc(-32601)),
        ("MCP unknown tool".into(), json_post("/mcp", &session, &call("rm_rf", json!({}))), 200, Then::Rpc(-32602)),
        ("MCP numeric tool name".into(), json_post("/mcp", &session, &rpc(json!(1), "tools/call", json!({"name": 3}))), 200, Then::Rpc(-32602)),
        ("MCP arguments as a string".into(), json_post("/mcp", &session, &rpc(json!(1), "tools/call", json!({"name": "list_channels", "arguments": "x"}))), 200, Then::Rpc(-32602)),
        ("MCP post with a control character".into(), json_post("/mcp", &session, &call("post_message", json!({"target": "a\u{7}", "sender": "b", "text": "c"}))), 200, Then::ToolError),
        ("MCP post with a numeric text".into(), json_post("/mcp", &session, &call("post_message", json!({"target": "a", "sender": "b", "text": 5}))), 200, Then::ToolError),
        ("MCP fetch with a fractional since_id".into(), json_post("/mcp", &session, &call("fetch_messages", json!({"target": "a", "since_id": -1.5}))), 200, Then::ToolError),
        ("MCP post replying to a negative id".into(), json_post("/mcp", &session, &call("post_message", json!({"target": "a", "sender": "b", "text": "c", "reply_to": -1}))), 200, Then::ToolError),
        ("MCP read of an unknown resource".into(), json_post("/mcp", &session, &rpc(json!(1), "resources/read", json!({"uri": "relay://channel/none"}))), 200, Then::Rpc(-32002)),
        ("MCP subscribe without a uri".into(), json_post("/mcp", &session, &rpc(json!(1), "resources/subscribe", json!({"uri": 5}))), 200, Then::Rpc(-32602)),
        ("MCP bad log level".into(), json_post("/mcp", &session, &rpc(json!(1), "logging/setLevel", json!({"level": "LOUD"}))), 200, Then::Rpc(-32602)),
        ("MCP 10 MB body".into(), json_post("/mcp", &session, &vec![b' '; 10 * 1024 * 1024]), 413, Then::Nothing),
        ("GET /mcp with an unknown session".into(), request("GET", "/mcp", &[("Mcp-Session-Id", "nope")], b""), 404, Then::Nothing),
        ("DELETE /mcp without a session".into(), request("DELETE", "/mcp", &[], b""), 400, Then::Nothing),
        // the legacy transport
        ("legacy POST without sessionId".into(), json_post("/messages", &[], &rpc(json!(1), "ping", json!({}))), 400, Then::Nothing),
        ("legacy POST with an unknown session".into(), json_post("/messages?sessionId=abc", &[], &rpc(json!(1), "ping", json!({}))), 404, Then::Nothing),
    ];
    rows.drain(..)
        .map(|(what, request, status, then)| Row {
            what,
            request,
            status,
            then,
        })
        .collect()
}

#[test]
fn every_malformed_input_gets_its_4xx_and_nothing_stored_changes() {
    let relay = Relay::start();
    for i in 0..5 {
        relay.post(
            "keep",
            "claude",
            &format!("stored {i} ünïcode ```diff\n+x\n```"),
        );
    }
    let before = get(&relay.url("/api/messages?target=keep")).body;
    let rows = table(&relay);
    assert!(rows.len() >= 60, "{} rows", rows.len());
    for row in &rows {
        let (status, body) = exchange(relay.addr(), &row.request);
        assert_eq!(status, row.status, "{}: {body}", row.what);
        match row.then {
            Then::Nothing => {}
            Then::Rpc(code) => {
                let v: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{}: {e}: {body}", row.what));
                assert_eq!(v["error"]["code"], code, "{}: {body}", row.what);
            }
            Then::ToolError => {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["result"]["isError"], true, "{}: {body}", row.what);
            }
        }
    }
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
    assert_eq!(
        get(&relay.url("/api/messages?target=keep")).body,
        before,
        "stored messages are unchanged"
    );
    assert_eq!(
        get(&relay.url("/api/channels")).json(),
        json!({"channels": ["claude", "codex", "keep", "proj-x"]})
    );
}

/// xorshift64*: a small, seeded, reproducible source of noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Changes a valid request a little: flips, inserts, deletes or repeats bytes after the request
/// line (whose HTTP version tiny_http itself answers), or cuts it short.
fn mutate(noise: &mut Noise, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    let start = out
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    for _ in 0..1 + noise.below(4) {
        if out.len() <= start + 1 {
            break;
        }
        let at = start + noise.below(out.len() - start);
        match noise.below(5) {
            0 => out[at] ^= 1 << noise.below(8),
            1 => out.insert(at, noise.next() as u8),
            2 => {
                out.remove(at);
            }
            3 => {
                let piece: Vec<u8> = out[at..(at + 8).min(out.len())].to_vec();
                for _ in 0..noise.below(50) {
                    out.splice(at..at, piece.iter().copied());
                }
            }
            _ => out.truncate(at),
        }
    }
    out
}

#[test]
fn thousands_of_mutated_requests_get_no_5xx() {
    let relay = Relay::start();
    relay.post("keep", "s", "stored");
    let before = get(&relay.url("/api/messages?target=keep")).body;
    let mcp = Mcp::connect(&relay, "2025-03-26");
    let s = mcp.session.clone();
    let h = [("Mcp-Session-Id", s.as_str())];
    let valid: Vec<Vec<u8>> = vec![
        json_post("/api/messages", &[], br#"{"target":"fuzz","sender":"s","text":"hello"}"#),
        request("GET", "/api/messages?target=fuzz&since_id=0&limit=5", &[], b""),
        request("GET", "/api/channels", &[], b""),
        json_post("/mcp", &h, &rpc(json!(1), "tools/call", json!({"name": "post_message", "arguments": {"target": "fuzz", "sender": "s", "text": "x"}}))),
        json_post("/mcp", &h, &rpc(json!(2), "tools/call", json!({"name": "fetch_messages", "arguments": {"target": "fuzz", "since_id": 0, "limit": 3}}))),
        json_post("/mcp", &h, br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#),
        json_post("/mcp", &[], &rpc(json!("i"), "initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "f", "version": "1"}}))),
        json_post("/mcp", &h, &rpc(json!(3), "resources/read", json!({"uri": "relay://channel/fuzz"}))),
    ];
    let mut noise = Noise(0x5eed_1234_abcd_0001);
    let mut sent = 0;
    let mut statuses = std::collections::BTreeMap::new();
    while sent < 1000 {
        let base = &valid[noise.below(valid.len())];
        let input = mutate(&mut noise, base);
        let (status, body) = exchange(relay.addr(), &input);
        assert!(
            status < 500,
            "{status} for {:?}: {body}",
            String::from_utf8_lossy(&input)
        );
        *statuses.entry(status).or_insert(0) += 1;
        sent += 1;
    }
    // Status 0 means the connection closed unanswered: tiny_http does that for a request whose
    // head is cut short (the mutation can truncate it); a body cut short is a 400.
    eprintln!("mutated requests: {sent}, by status: {statuses:?}");
    assert!(
        statuses.keys().any(|s| *s >= 400),
        "the mutations reached the validation: {statuses:?}"
    );
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
    assert_eq!(get(&relay.url("/api/messages?target=keep")).body, before);
}
