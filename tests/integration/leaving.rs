//! MCP clients that leave or give up: a session's stream (legacy `/sse`, `GET /mcp`) whose
//! client disconnects frees its place, its presence and (legacy) its session within about a
//! second; a legacy tool call waiting for a client whose stream is gone ends and takes nothing;
//! a call the client cancels (`notifications/cancelled`) ends, takes nothing and gets no
//! response.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Shorter than the keep-alive interval (15 s): a stream that noticed a departed client only
/// when a keep-alive write failed could not meet it, so meeting it shows the stream looked at its
/// connection. Still ten times what the look takes, for a loaded machine.
const BEFORE_A_KEEPALIVE: Duration = Duration::from_secs(10);

/// Polls `done` until it holds; fails naming `what` once `within` has passed.
fn within(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The listeners of `channel` in `GET /api/channels?detail=1`, as (kind, name).
fn listeners(relay: &Relay, channel: &str) -> Vec<(String, String)> {
    let listing = get(&relay.url("/api/channels?detail=1")).json();
    let detail = listing["detail"].as_array().expect("a detail list").clone();
    detail
        .iter()
        .filter(|c| c["name"] == channel)
        .flat_map(|c| c["listeners"].as_array().unwrap().clone())
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["name"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// A legacy session: its stream, and the URL its messages are POSTed to.
fn legacy(relay: &Relay) -> (Sse, String) {
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    assert_eq!(sse.status, 200);
    let endpoint = sse.next(deadline()).expect("the endpoint event");
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    (sse, relay.url(&endpoint.data))
}

/// Initializes the legacy session whose stream is `sse` and whose messages go to `url`.
fn initialize(sse: &mut Sse, url: &str) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    assert_eq!(send(url, &init), 202);
    sse.next(deadline()).expect("the initialize result");
}

fn send(url: &str, message: &Value) -> u16 {
    post_raw(
        url,
        &[("Content-Type", "application/json")],
        message.to_string().as_bytes(),
    )
    .status
}

#[test]
fn a_closed_legacy_stream_ends_its_session_and_frees_its_place_within_a_second_or_so() {
    let relay = Relay::memory();
    let (mut sse, url) = legacy(&relay);
    initialize(&mut sse, &url);
    assert_eq!(relay.load().long_requests, 1);
    drop(sse);
    // A notification is answered 202 while the session lives, and nothing is written to its
    // stream (a request's answer would be, and a write could find the client gone).
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    within(
        BEFORE_A_KEEPALIVE,
        "the session ended with its stream",
        || send(&url, &notification) == 404,
    );
    within(BEFORE_A_KEEPALIVE, "the stream's place is free", || {
        relay.load().long_requests == 0
    });
}

#[test]
fn a_closed_get_stream_stops_listening_and_frees_its_place_within_a_second_or_so() {
    let relay = Relay::memory();
    let path = "/mcp?listen=lst&as=bob";
    let init = post_raw(
        &relay.url(path),
        &[("Content-Type", "application/json")],
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(init.status, 200, "{}", init.body);
    let session = init.header("mcp-session-id").unwrap().to_string();
    let mut stream = Sse::open(
        relay.addr(),
        path,
        &[
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
    );
    assert_eq!(stream.status, 200);
    stream.next(deadline()).expect("the priming event");
    let bob = ("session".to_string(), "bob".to_string());
    wait_until("bob is listed as listening", || {
        listeners(&relay, "lst") == [bob.clone()]
    });
    drop(stream);
    within(BEFORE_A_KEEPALIVE, "bob is no longer listening", || {
        listeners(&relay, "lst").is_empty()
    });
    within(BEFORE_A_KEEPALIVE, "the stream's place is free", || {
        relay.load().long_requests == 0
    });
}

fn unread(relay: &Relay, reader: &str) -> u64 {
    get(&relay.url(&format!("/api/unread?reader={reader}"))).json()["total"]
        .as_u64()
        .unwrap()
}

/// Opens a legacy session, starts `fetch_messages` waiting 50 s on `target` as `reader`, and
/// closes the session's stream once the fetch waits; returns once the session has ended.
fn a_legacy_fetch_left_waiting(relay: &Relay, target: &str, reader: &str) {
    let (mut sse, url) = legacy(relay);
    initialize(&mut sse, &url);
    let fetch = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "fetch_messages",
        "arguments": {"target": target, "reader": reader, "wait_seconds": 50}}});
    assert_eq!(send(&url, &fetch), 202);
    relay.wait_for_long_requests(2);
    drop(sse);
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    within(
        BEFORE_A_KEEPALIVE,
        "the session ended with its stream",
        || send(&url, &notification) == 404,
    );
}

#[test]
fn a_legacy_fetch_whose_stream_has_gone_takes_nothing_posted_after() {
    let relay = Relay::memory();
    relay.post("rd", "bob", "read before");
    get(&relay.url("/api/messages?target=rd&reader=alice"));
    assert_eq!(unread(&relay, "alice"), 0);
    a_legacy_fetch_left_waiting(&relay, "rd", "alice");
    // The answer could reach alice only on the stream that is gone: the message stays unread.
    relay.post("rd", "bob", "nobody received this");
    wait_until("the fetch ended", || relay.load().long_requests == 0);
    assert_eq!(unread(&relay, "alice"), 1);
}

#[test]
fn a_legacy_fetch_whose_stream_has_gone_stops_waiting_long_before_its_time() {
    let relay = Relay::memory();
    a_legacy_fetch_left_waiting(&relay, "quiet", "alice");
    // Its wait is 50 s; it ends within about a second of the session's.
    within(BEFORE_A_KEEPALIVE, "the fetch stopped waiting", || {
        relay.load().long_requests == 0 && listeners(&relay, "quiet").is_empty()
    });
}

/// A fetch waiting as `reader` on `rd` for 50 s, to cancel: `rd` holds one message, already
/// read by `reader`.
fn a_channel_read_to_its_end(relay: &Relay, reader: &str) {
    relay.post("rd", "bob", "read before");
    get(&relay.url(&format!("/api/messages?target=rd&reader={reader}")));
    assert_eq!(unread(relay, reader), 0);
}

fn waiting_fetch(id: u64, reader: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "fetch_messages",
        "arguments": {"target": "rd", "reader": reader, "wait_seconds": 50}}})
}

fn cancellation(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "the user gave up"}})
}

/// POSTs `message` in `mcp`'s session on a thread of its own.
fn posted_in_the_background(mcp: &Mcp, message: Value) -> std::thread::JoinHandle<Reply> {
    let (url, session) = (mcp.url.clone(), mcp.session.clone());
    std::thread::spawn(move || {
        post_raw(
            &url,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &session),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
            message.to_string().as_bytes(),
        )
    })
}

#[test]
fn a_cancelled_waiting_fetch_ends_takes_nothing_and_its_post_gets_no_response() {
    let relay = Relay::memory();
    a_channel_read_to_its_end(&relay, "alice");
    let mcp = Mcp::connect(&relay, "2025-11-25");
    let call = posted_in_the_background(&mcp, waiting_fetch(77, "alice"));
    relay.wait_for_long_requests(1);
    let r = mcp.send(&cancellation(77));
    assert_eq!(r.status, 202, "{}", r.body);
    // Posted once the cancellation is in: the fetch, woken by it, must not take it.
    relay.post("rd", "bob", "after the cancellation");
    let reply = call.join().unwrap();
    // A request is answered with JSON or an event stream; a cancelled one gets a stream that
    // ends without a response.
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.body, "", "no response to the cancelled call");
    assert_eq!(unread(&relay, "alice"), 1);
    // The session goes on; a cancellation of a call no longer running is ignored.
    assert_eq!(mcp.send(&cancellation(77)).status, 202);
    let mut mcp = mcp;
    assert_eq!(mcp.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn a_cancellation_naming_the_call_by_an_equal_number_stops_it() {
    let relay = Relay::memory();
    a_channel_read_to_its_end(&relay, "alice");
    let mcp = Mcp::connect(&relay, "2025-11-25");
    let call = posted_in_the_background(&mcp, waiting_fetch(77, "alice"));
    relay.wait_for_long_requests(1);
    // 77.0 is the number 77, the call's id.
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 77.0}});
    assert_eq!(mcp.send(&cancel).status, 202);
    let reply = call.join().unwrap();
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.body, "", "no response to the cancelled call");
}

#[test]
fn a_cancelled_waiting_fetch_on_the_legacy_transport_gets_no_response_on_the_stream() {
    let relay = Relay::memory();
    a_channel_read_to_its_end(&relay, "alice");
    let (mut sse, url) = legacy(&relay);
    assert_eq!(send(&url, &waiting_fetch(77, "alice")), 202);
    relay.wait_for_long_requests(2);
    assert_eq!(send(&url, &cancellation(77)), 202);
    // Its wait is 50 s; it ends within about a second of the cancellation, with nothing new
    // posted to wake it.
    within(BEFORE_A_KEEPALIVE, "the fetch stopped waiting", || {
        relay.load().long_requests == 1
    });
    relay.post("rd", "bob", "after the cancellation");
    assert_eq!(unread(&relay, "alice"), 1);
    // Answers go out in order on the stream: the next is the ping's, not the fetch's.
    assert_eq!(
        send(&url, &json!({"jsonrpc": "2.0", "id": 78, "method": "ping"})),
        202
    );
    let next: Value = serde_json::from_str(&sse.next(deadline()).expect("an answer").data).unwrap();
    assert_eq!(next["id"], 78, "{next}");
}
