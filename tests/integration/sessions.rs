//! MCP sessions under hostile or careless clients: subscriptions take only channel resources
//! and are capped, a session's state leaves memory when it ends or idles, each client address
//! keeps a bounded number of sessions, and a session answers only to the credential that
//! created it.

use crate::common::*;
use serde_json::{json, Value};

fn subscribe(mcp: &mut Mcp, uri: &str) -> Value {
    mcp.request("resources/subscribe", json!({ "uri": uri }))
}

#[test]
fn subscriptions_accept_only_valid_channel_uris_and_store_nothing_else() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    // Other schemes are accepted, as MCP clients expect, but never stored.
    let foreign = subscribe(&mut mcp, "test://watched-resource");
    assert_eq!(foreign["result"], json!({}), "{foreign}");
    let huge = format!("test://{}", "x".repeat(1 << 20));
    assert_eq!(subscribe(&mut mcp, &huge)["result"], json!({}));
    assert_eq!(relay.load().subscriptions, 0);
    let long_name = format!("relay://channel/{}", "n".repeat(4096));
    for bad in [
        "relay://channel/",
        "relay://channel/a%E2%80%AEb",
        "relay://channel/%+F",
        "relay://elsewhere/x",
        long_name.as_str(),
    ] {
        let r = subscribe(&mut mcp, bad);
        assert_eq!(r["error"]["code"], -32602, "{bad}: {r}");
    }
    assert_eq!(relay.load().subscriptions, 0);
    assert_eq!(
        subscribe(&mut mcp, "relay://channel/proj-x")["result"],
        json!({})
    );
    assert_eq!(relay.load().subscriptions, 1);
}

#[test]
fn subscriptions_per_session_are_capped() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    // Subscriptions are taken until one is refused; the refusal names the cap.
    let mut taken = 0;
    let over = loop {
        let r = subscribe(&mut mcp, &format!("relay://channel/c{taken}"));
        if r.get("error").is_some() {
            break r;
        }
        assert_eq!(r["result"], json!({}), "{r}");
        taken += 1;
        assert!(taken <= 10_000, "subscriptions are not capped");
    };
    assert_eq!(over["error"]["code"], -32602, "{over}");
    let message = over["error"]["message"].as_str().unwrap();
    let cap = message
        .split_once("at most ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("the refusal names the cap: {message}"));
    assert_eq!(taken, cap);
    assert_eq!(relay.load().subscriptions, cap);
    let again = subscribe(&mut mcp, "relay://channel/c0");
    assert_eq!(again["result"], json!({}), "a repeat costs nothing");
    let over = subscribe(&mut mcp, "relay://channel/one-too-many");
    assert_eq!(over["error"]["code"], -32602, "{over}");
    mcp.request(
        "resources/unsubscribe",
        json!({"uri": "relay://channel/c0"}),
    );
    let r = subscribe(&mut mcp, "relay://channel/one-too-many");
    assert_eq!(r["result"], json!({}), "room after an unsubscribe: {r}");
}

#[test]
fn a_deleted_session_frees_its_subscriptions() {
    let relay = Relay::memory();
    let before = relay.load().sessions;
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    subscribe(&mut mcp, "relay://channel/proj-x");
    assert_eq!(relay.load().subscriptions, 1);
    let r = delete(
        &mcp.url,
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", &mcp.version),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(relay.load().sessions, before);
    assert_eq!(relay.load().subscriptions, 0);
}

#[test]
fn a_delete_with_an_unsupported_protocol_version_is_refused_and_ends_nothing() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let r = delete(
        &mcp.url,
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", "garbage"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("MCP-Protocol-Version"), "{}", r.body);
    let ping = mcp.request("ping", json!({}));
    assert_eq!(ping["result"], json!({}), "the session lives on");
}

#[test]
fn idle_sessions_leave_memory_with_their_subscriptions_after_session_idle_secs() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.session_idle_secs = 1;
        c.max_sessions_per_client = 100_000;
    });
    let mut idle = Mcp::connect(&relay, "2025-06-18");
    subscribe(&mut idle, "relay://channel/proj-x");
    // New sessions trigger the sweep; the idle one goes once it has been unused for a second.
    let deadline = deadline();
    while relay.load().subscriptions > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle session never left memory"
        );
        Mcp::connect(&relay, "2025-06-18");
    }
    // Its signed id still restores it, without the subscription.
    let ping = idle.request("ping", json!({}));
    assert_eq!(ping["result"], json!({}));
}

#[test]
fn sessions_per_client_address_are_capped_oldest_idle_first() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.max_sessions_per_client = 3;
    });
    let first = Mcp::connect(&relay, "2025-06-18");
    for _ in 0..5 {
        Mcp::connect(&relay, "2025-06-18");
    }
    assert_eq!(relay.load().sessions, 3, "only the newest three stay");
    drop(first);
    // Sessions holding streams are never pushed out: with all three streaming, a fourth is 503.
    let streams: Vec<Sse> = (0..3)
        .map(|_| {
            let m = Mcp::connect(&relay, "2025-06-18");
            let s = Sse::open(
                relay.addr(),
                "/mcp",
                &[
                    ("Mcp-Session-Id", &m.session),
                    ("MCP-Protocol-Version", "2025-06-18"),
                ],
            );
            assert_eq!(s.status, 200);
            s
        })
        .collect();
    relay.wait_for_long_requests(3);
    let r = post_raw(
        &relay.url("/mcp"),
        &[("Content-Type", "application/json")],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("per-client session limit"), "{}", r.body);
    assert_eq!(
        r.header("retry-after"),
        Some("5"),
        "MCP 503s carry Retry-After"
    );
    drop(streams);
}

/// An MCP POST with a bearer token and, if given, a session id.
fn post_as(relay: &Relay, token: &str, session: Option<&str>, body: &Value) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
    }
    post_raw(&relay.url("/mcp"), &headers, body.to_string().as_bytes())
}

#[test]
fn another_agents_token_cannot_use_a_session() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.agents = [("alice", "alice-token"), ("bob", "bob-token")]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
    });
    let init = post_as(
        &relay,
        "alice-token",
        None,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert_eq!(init.status, 200);
    let id = init.header("mcp-session-id").unwrap().to_string();
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(post_as(&relay, "bob-token", Some(&id), &ping).status, 404);
    let stream = Sse::open(
        relay.addr(),
        "/mcp",
        &[
            ("Mcp-Session-Id", &id),
            ("Authorization", "Bearer bob-token"),
        ],
    );
    assert_eq!(stream.status, 404, "bob cannot take alice's notifications");
    let r = delete(
        &relay.url("/mcp"),
        &[
            ("Mcp-Session-Id", &id),
            ("Authorization", "Bearer bob-token"),
        ],
    );
    assert_eq!(r.status, 404, "bob cannot end alice's session");
    assert_eq!(post_as(&relay, "alice-token", Some(&id), &ping).status, 200);

    // The legacy transport too: bob cannot post into alice's stream.
    let mut sse = Sse::open(
        relay.addr(),
        "/sse",
        &[("Authorization", "Bearer alice-token")],
    );
    assert_eq!(sse.status, 200);
    let endpoint = sse.next(deadline()).unwrap().data;
    let as_bob = post_raw(
        &relay.url(&endpoint),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer bob-token"),
        ],
        ping.to_string().as_bytes(),
    );
    assert_eq!(as_bob.status, 404);
    let as_alice = post_raw(
        &relay.url(&endpoint),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer alice-token"),
        ],
        ping.to_string().as_bytes(),
    );
    assert_eq!(as_alice.status, 202);
}
