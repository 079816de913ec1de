//! Listening over HTTP: an MCP session opened with `?listen=` hears other agents' messages as
//! channel events on its GET stream; one without hears none.

use crate::common::{post_raw, within, Mcp, Relay, Sse};
use serde_json::{json, Value};

/// Initializes a session at `path` (with its query) and returns it with the result.
fn connect_at(relay: &Relay, path: &str) -> (Mcp, Value) {
    let url = relay.url(path);
    let r = post_raw(
        &url,
        &[("Content-Type", "application/json")],
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mcp = Mcp {
        url,
        session: r.header("mcp-session-id").unwrap().to_string(),
        version: "2025-06-18".into(),
        next_id: 1,
    };
    assert_eq!(
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .status,
        202
    );
    (mcp, r.json()["result"].clone())
}

fn stream(relay: &Relay, path: &str, mcp: &Mcp) -> Sse {
    let mut sse = Sse::open(
        relay.addr(),
        path,
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", &mcp.version),
        ],
    );
    assert_eq!(sse.status, 200);
    sse.next(within(5.0)).expect("the priming event");
    sse
}

fn next_json(sse: &mut Sse) -> Value {
    let e = sse.next_message(within(10.0)).expect("an event");
    serde_json::from_str(&e.data).unwrap()
}

#[test]
fn a_session_opened_with_listen_hears_others_messages_on_its_get_stream_and_others_do_not() {
    let relay = Relay::memory();
    let path = "/mcp?listen=proj-x&as=claude";
    let (listener, init) = connect_at(&relay, path);
    assert_eq!(
        init["capabilities"]["experimental"]["claude/channel"],
        json!({})
    );
    assert!(init["instructions"].as_str().unwrap().contains("proj-x"));
    let (mut plain, plain_init) = connect_at(&relay, "/mcp");
    assert!(plain_init["capabilities"].get("experimental").is_none());
    plain.request(
        "resources/subscribe",
        json!({"uri": "relay://channel/proj-x"}),
    );
    let mut heard = stream(&relay, path, &listener);
    let mut unheard = stream(&relay, "/mcp", &plain);

    relay.post("proj-x", "claude", "my own");
    relay.post("elsewhere", "codex", "another channel");
    let review = relay.post("proj-x", "codex", "Verdict: approve");

    let event = next_json(&mut heard);
    assert_eq!(event["method"], "notifications/claude/channel");
    assert_eq!(event["params"]["meta"]["id"], review.to_string());
    assert_eq!(event["params"]["meta"]["sender"], "codex");
    assert_eq!(event["params"]["meta"]["channel"], "proj-x");
    assert!(event["params"]["content"]
        .as_str()
        .unwrap()
        .ends_with("Verdict: approve"));
    // A channel event is queued before the resource update of the same post, so two updates
    // in a row prove the plain session got no event for either post.
    for _ in 0..2 {
        assert_eq!(
            next_json(&mut unheard)["method"],
            "notifications/resources/updated"
        );
    }
}
