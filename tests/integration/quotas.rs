//! The long-request places (open streams and waiting fetches) are shared fairly: one client
//! (an agent's token, else an address) and one MCP session each have a quota, the 503 says which
//! limit was hit, and the legacy transport's tool calls (a batch's in turn) are counted. A legacy session whose
//! stream is not read is refused more requests rather than losing their responses.

use crate::common::*;
use claude_codex_relay::config::StoreKind;
use serde_json::{json, Value};

#[test]
fn one_agent_cannot_take_every_stream_place() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.max_streams = 4;
        c.max_streams_per_client = 2;
        c.agents = [("alice", "alice-token"), ("bob", "bob-token")]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
    });
    let open = |token: &str| {
        Sse::open(
            relay.addr(),
            "/api/stream?target=t",
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    let alice: Vec<Sse> = (0..2).map(|_| open("alice-token")).collect();
    assert!(alice.iter().all(|s| s.status == 200));
    let refused = get_with(
        &relay.url("/api/messages?target=t&since_id=0&wait=30"),
        &[("Authorization", "Bearer alice-token")],
    );
    assert_eq!(refused.status, 503);
    assert!(
        refused.body.contains("per-client limit 2"),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("5"));
    let bob = open("bob-token");
    assert_eq!(bob.status, 200, "bob still finds a place");
    drop(alice);
}

#[test]
fn one_legacy_batch_of_waiting_fetches_waits_in_turn_on_one_place_and_answers_as_one_array() {
    let relay = Relay::memory();
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let endpoint = sse.next(deadline()).unwrap().data;
    let batch: Vec<Value> = (0..20)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
                "name": "fetch_messages", "arguments": {"target": "q", "since_id": 0, "wait_seconds": 50}}})
        })
        .collect();
    let r = post_raw(
        &relay.url(&endpoint),
        &[("Content-Type", "application/json")],
        Value::Array(batch).to_string().as_bytes(),
    );
    assert_eq!(r.status, 202);
    // The stream holds one place and the batch, its fetches waiting by turns, one more.
    relay.wait_for_long_requests(2);
    assert_eq!(relay.load().long_requests, 2);
    assert_eq!(relay.load().legacy_tool_calls, 1);
    let other = get(&relay.url("/api/messages?target=q&since_id=0&wait=0.01"));
    assert_eq!(other.status, 200, "other requests still get places");
    relay.post("q", "s", "wake");
    let e = sse.next(deadline()).expect("the batch's answers arrive");
    let answers: Value = serde_json::from_str(&e.data).unwrap();
    let answers = answers.as_array().expect("one array");
    assert_eq!(answers.len(), 20);
    for (i, v) in answers.iter().enumerate() {
        assert_eq!(v["id"], i, "{v}");
        assert_eq!(
            v["result"]["structuredContent"]["messages"][0]["text"],
            "wake"
        );
    }
    wait_until("every tool call uncounted", || {
        relay.load().legacy_tool_calls == 0
    });
}

#[test]
fn a_legacy_session_whose_stream_is_not_read_is_refused_with_503_and_loses_no_response() {
    let relay = Relay::memory();
    for i in 0..5 {
        relay.post("big", "codex", &format!("{i:08}{}", "x".repeat(999_992)));
    }
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let url = relay.url(&sse.next(deadline()).expect("the endpoint event").data);
    let send = |message: Value| {
        post_raw(
            &url,
            &[("Content-Type", "application/json")],
            message.to_string().as_bytes(),
        )
    };
    // Each answer holds about 4 MiB. The stream is not read: its connection fills, then the
    // session's outbox, and then requests are refused rather than their answers dropped.
    let mut taken = Vec::new();
    let refused = loop {
        let id = taken.len() + 1;
        let r = send(
            json!({"jsonrpc": "2.0", "id": id, "method": "resources/read",
            "params": {"uri": "relay://channel/big"}}),
        );
        if r.status != 202 {
            break r;
        }
        taken.push(id);
        assert!(
            taken.len() < 40,
            "160 MiB of answers taken and none refused"
        );
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.body.contains("read the stream"), "{}", refused.body);
    for id in taken {
        let answer = sse.next_message(deadline()).expect("an answer");
        let answer: Value = serde_json::from_str(&answer.data).unwrap();
        assert_eq!(
            answer["id"], id,
            "every request taken is answered, in order"
        );
    }
    // Read, the stream takes requests again.
    let ping = send(json!({"jsonrpc": "2.0", "id": "after", "method": "ping"}));
    assert_eq!(ping.status, 202, "{}", ping.body);
    let answer = sse.next_message(deadline()).expect("the ping's answer");
    assert_eq!(
        serde_json::from_str::<Value>(&answer.data).unwrap()["id"],
        "after"
    );
}
