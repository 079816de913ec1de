//! Delivery without polling: waiting fetches (MCP and REST), the `/api/stream` event stream,
//! resource subscriptions on the `GET /mcp` stream, the legacy `/sse` transport, and the cap on
//! long requests. Every wait is bounded by a deadline.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn a_post_wakes_a_waiting_mcp_fetch() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = mcp.call(
            "fetch_messages",
            json!({"target": "proj-x", "since_id": 0, "wait_seconds": 50}),
        );
        tx.send(r).unwrap();
    });
    relay.wait_for_long_requests(1);
    relay.post("proj-x", "claude", "wake up");
    // Given up before the fetch's own 50 s deadline, so only the post can have ended it.
    let r = rx
        .recv_timeout(Duration::from_secs(40))
        .expect("the post woke the waiter");
    assert_eq!(r["structuredContent"]["messages"][0]["text"], "wake up");
    assert_eq!(r["structuredContent"]["latest_id"], 1);
}

#[test]
fn a_post_to_another_channel_does_not_end_the_wait_and_the_deadline_does() {
    let relay = Relay::memory();
    let url = relay.url("/api/messages?target=quiet&since_id=0&wait=1");
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        (get(&url), start.elapsed())
    });
    relay.wait_for_long_requests(1);
    relay.post("noisy", "s", "not for you");
    let (r, elapsed) = waiter.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["messages"], json!([]));
    assert!(
        elapsed >= Duration::from_millis(950),
        "returned at its deadline, not early: {elapsed:?}"
    );
}

#[test]
fn a_post_wakes_a_waiting_rest_fetch() {
    let relay = Relay::memory();
    relay.post("proj-x", "s", "old");
    let url = relay.url("/api/messages?target=proj-x&since_id=1&wait=30");
    let waiter = thread::spawn(move || get(&url));
    relay.wait_for_long_requests(1);
    relay.post("proj-x", "s", "new");
    let r = waiter.join().unwrap();
    let msgs = r.json()["messages"].clone();
    assert_eq!(msgs.as_array().unwrap().len(), 1);
    assert_eq!(msgs[0]["text"], "new");
}

#[test]
fn the_event_stream_sends_the_backlog_then_live_messages_and_resumes() {
    let relay = Relay::memory();
    for i in 1..=3 {
        relay.post("proj-x", "s", &format!("m{i}"));
    }
    let mut sse = Sse::open(relay.addr(), "/api/stream?target=proj-x&since_id=1", &[]);
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    for want in [2, 3] {
        let e = sse.next(deadline()).expect("backlog");
        assert_eq!(e.id.as_deref(), Some(want.to_string().as_str()));
        assert_eq!(e.event.as_deref(), Some("message"));
        let m: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(m["id"], want);
    }
    relay.post("proj-x", "s", "live\nwith two lines");
    let e = sse
        .next(deadline())
        .expect("a live message within a second");
    let m: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(m["text"], "live\nwith two lines");
    drop(sse);
    relay.post("proj-x", "s", "while away");
    let mut again = Sse::open(
        relay.addr(),
        "/api/stream?target=proj-x&since_id=0",
        &[("Last-Event-ID", "4")],
    );
    let e = again.next(deadline()).unwrap();
    assert_eq!(
        e.id.as_deref(),
        Some("5"),
        "Last-Event-ID resumes with no gap and no duplicate"
    );
}

#[test]
fn a_stream_whose_client_goes_leaves_the_listeners_well_before_a_keepalive_is_due() {
    let relay = Relay::memory();
    let listed = |relay: &Relay| {
        let listing = get_json(&relay.url("/api/channels?detail=1"));
        listing["detail"].as_array().unwrap().iter().any(|c| {
            c["name"] == "proj-x"
                && c["listeners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["name"] == "gone-soon")
        })
    };
    let sse = Sse::open(relay.addr(), "/api/stream?target=proj-x&as=gone-soon", &[]);
    assert_eq!(sse.status, 200);
    wait_until("the stream is listed", || listed(&relay));
    let closed = Instant::now();
    drop(sse);
    // The first keep-alive, whose failed write would also end the stream, is due 15 s after
    // the stream opened: leaving before 10 s have passed shows the stream saw its client go.
    while listed(&relay) {
        assert!(
            closed.elapsed() < Duration::from_secs(10),
            "still listed 10 s after its client went"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A stream sends each message as the bytes a page of it holds (separators escaped), on a
/// relay with a journal: messages just posted, held in memory, and after a restart read from
/// disk; its reader's position follows what was sent.
#[test]
fn the_event_stream_sends_each_message_as_the_bytes_of_its_page() {
    let mut relay = Relay::start();
    let mut texts: Vec<String> = [
        "plain",
        "line\u{2028}and paragraph\u{2029}",
        "q \" b \\ é 😀",
    ]
    .map(String::from)
    .to_vec();
    for text in &texts {
        relay.post("proj-x", "codex", text);
    }
    for round in 0..2 {
        if round == 1 {
            relay.restart(config_in(&relay.dir));
        }
        let page = get(&relay.url("/api/messages?target=proj-x&limit=50")).body;
        let reader = format!("watcher-{round}");
        let path = format!("/api/stream?target=proj-x&reader={reader}");
        let mut sse = Sse::open(relay.addr(), &path, &[]);
        relay.wait_for_long_requests(1);
        let live_text = format!("live {round}\u{2029}");
        let live = relay.post("proj-x", "claude", &live_text);
        texts.push(live_text);
        for (at, text) in texts.iter().enumerate() {
            let e = sse
                .next_message(deadline())
                .expect("each message within the deadline");
            assert!(!e.data.contains(['\u{2028}', '\u{2029}']), "{}", e.data);
            let m: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(m["text"], text.as_str());
            assert_eq!(e.id, Some(m["id"].to_string()));
            if at + 1 < texts.len() {
                assert!(page.contains(&e.data), "{} is not in {page}", e.data);
            }
        }
        let unread = format!("/api/unread?reader={reader}");
        wait_until("the reader's position is the live message", || {
            get_json(&relay.url(&unread))["channels"][0]["position"] == live
        });
    }
}

#[test]
fn a_thousand_posts_from_eight_threads_arrive_in_order_exactly_once() {
    let relay = Relay::memory();
    let mut sse = Sse::open(relay.addr(), "/api/stream?target=load&since_id=0", &[]);
    assert_eq!(sse.status, 200);
    let base = relay.base.clone();
    let chain = {
        let base = base.clone();
        thread::spawn(move || {
            let mut since = 0u64;
            let mut seen = Vec::new();
            while seen.len() < 1000 {
                let r = get(&format!(
                    "{base}/api/messages?target=load&since_id={since}&limit=500&wait=10"
                ));
                let msgs = r.json()["messages"].as_array().unwrap().clone();
                assert!(
                    !msgs.is_empty(),
                    "a waiting fetch returned empty before all were seen"
                );
                for m in msgs {
                    let id = m["id"].as_u64().unwrap();
                    assert!(id > since);
                    since = id;
                    seen.push(id);
                }
            }
            seen
        })
    };
    let posters: Vec<_> = (0..8)
        .map(|t| {
            let url = format!("{base}/api/messages");
            thread::spawn(move || {
                let agent = agent();
                for i in 0..125 {
                    let body = json!({"target": "load", "sender": format!("t{t}"), "text": format!("{t}-{i}")});
                    let r = agent.post(&url).header("Content-Type", "application/json").send(body.to_string()).unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                }
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    let mut streamed = Vec::new();
    let deadline = deadline();
    while streamed.len() < 1000 {
        let e = sse.next(deadline).expect("every message is streamed");
        streamed.push(e.id.unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(
        streamed,
        (1..=1000).collect::<Vec<_>>(),
        "in order, exactly once"
    );
    assert_eq!(chain.join().unwrap(), (1..=1000).collect::<Vec<_>>());
}

#[test]
fn subscribed_sessions_hear_of_updates_on_their_get_stream() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    assert_eq!(
        mcp.request(
            "resources/subscribe",
            json!({"uri": "relay://channel/proj-x"})
        )["result"],
        json!({})
    );
    assert_eq!(
        mcp.request(
            "resources/subscribe",
            json!({"uri": "test://watched-resource"})
        )["result"],
        json!({})
    );
    let mut stream = Sse::open(
        relay.addr(),
        "/mcp",
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    assert_eq!(stream.status, 200);
    let priming = stream.next(deadline()).expect("a priming event");
    assert!(priming.id.unwrap().starts_with(&mcp.session));
    relay.post("elsewhere", "s", "not subscribed");
    relay.post("proj-x", "s", "subscribed");
    let e = stream
        .next_message(deadline())
        .expect("an update within a second");
    let n: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(n["method"], "notifications/resources/updated");
    assert_eq!(n["params"]["uri"], "relay://channel/proj-x");
    assert!(n.get("id").is_none());
    mcp.request(
        "resources/unsubscribe",
        json!({"uri": "relay://channel/proj-x"}),
    );
    relay.post("proj-x", "s", "after unsubscribing");
    // Updates go out in post order, so the next one is the marker's unless the unsubscribed
    // channel still sent one.
    mcp.request(
        "resources/subscribe",
        json!({"uri": "relay://channel/marker"}),
    );
    relay.post("marker", "s", "after the unsubscribed post");
    let e = stream
        .next_message(deadline())
        .expect("the marker's update");
    let n: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        n["params"]["uri"], "relay://channel/marker",
        "no update after unsubscribe"
    );
}

#[test]
fn resources_list_read_and_templates() {
    let relay = Relay::memory();
    relay.post("a b", "s", "hello");
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let list = mcp.request("resources/list", json!({}))["result"]["resources"].clone();
    let uris: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "relay://channel/a%20b",
            "relay://channel/claude",
            "relay://channel/codex",
            "relay://channel/proj-x"
        ]
    );
    let read =
        mcp.request("resources/read", json!({"uri": "relay://channel/a%20b"}))["result"].clone();
    let content: Value =
        serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(content["messages"][0]["text"], "hello");
    let missing = mcp.request("resources/read", json!({"uri": "relay://channel/nope"}));
    assert_eq!(missing["error"]["code"], -32002);
    let templates = mcp.request("resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "relay://channel/{name}"
    );
}

#[test]
fn the_legacy_sse_transport_carries_every_method() {
    let relay = Relay::memory();
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    assert_eq!(sse.status, 200);
    let endpoint = sse.next(deadline()).unwrap();
    assert_eq!(endpoint.event.as_deref(), Some("endpoint"));
    assert!(endpoint.data.starts_with("/messages?sessionId="));
    let url = relay.url(&endpoint.data);
    let send = |v: Value| {
        post_raw(
            &url,
            &[("Content-Type", "application/json")],
            v.to_string().as_bytes(),
        )
    };
    let r = send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert_eq!(r.status, 202);
    let init: Value = serde_json::from_str(&sse.next(deadline()).unwrap().data).unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).status,
        202
    );
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "relay://channel/proj-x"}}),
    );
    assert_eq!(
        serde_json::from_str::<Value>(&sse.next(deadline()).unwrap().data).unwrap()["id"],
        2
    );
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "post_message", "arguments": {"target": "proj-x", "sender": "claude", "text": "via sse"}}}),
    );
    let mut got_result = false;
    let mut got_update = false;
    for _ in 0..2 {
        let v: Value =
            serde_json::from_str(&sse.next(deadline()).expect("within a second").data).unwrap();
        got_result |= v["id"] == 3 && v["result"]["structuredContent"]["posted"] == 1;
        got_update |= v["method"] == "notifications/resources/updated";
    }
    assert!(got_result && got_update);
    let bad = post_raw(&url, &[("Content-Type", "application/json")], b"{oops");
    assert_eq!(bad.status, 400);
    assert_eq!(
        post_raw(&relay.url("/messages"), &[], b"{}").status,
        400,
        "no session id"
    );
    assert_eq!(
        post_raw(&relay.url("/messages?sessionId=abc"), &[], b"{}").status,
        404
    );
    drop(sse);
    // The session ends with its stream, once the relay notices the client has gone (within
    // about a second), so poll with a deadline.
    wait_until("the session ended with its stream", || {
        send(json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})).status == 404
    });
}

#[test]
fn past_the_cap_long_requests_get_503_and_healthz_still_answers() {
    let relay = Relay::with(|c| {
        c.max_streams = 2;
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let a = Sse::open(relay.addr(), "/api/stream?target=x", &[]);
    let b = Sse::open(relay.addr(), "/api/stream?target=x", &[]);
    assert_eq!((a.status, b.status), (200, 200));
    let c = get(&relay.url("/api/stream?target=x"));
    assert_eq!(c.status, 503);
    assert!(c.header("retry-after").is_some());
    let w = get(&relay.url("/api/messages?target=x&since_id=0&wait=5"));
    assert_eq!(w.status, 503);
    assert_eq!(get(&relay.url("/healthz")).status, 200);
}

#[test]
fn a_waiting_fetch_over_legacy_sse_does_not_hold_back_the_post() {
    let relay = Relay::memory();
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let url = relay.url(&sse.next(deadline()).unwrap().data);
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fetch_messages", "arguments": {"target": "later", "wait_seconds": 30}}});
    let r = post_raw(
        &url,
        &[("Content-Type", "application/json")],
        call.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "answered before the fetch finished waiting");
    relay.post("later", "s", "arrived");
    let answer: Value =
        serde_json::from_str(&sse.next(deadline()).expect("the fetch's answer").data).unwrap();
    assert_eq!(answer["id"], 7);
    assert_eq!(
        answer["result"]["structuredContent"]["messages"][0]["text"],
        "arrived"
    );
}

#[test]
fn resources_list_is_paginated_with_a_cursor() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.channels = Vec::new();
    });
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    // Channels are added until the list needs a second page; its first page's length is the
    // page size. Then a part of a page more.
    let mut total: usize = 0;
    let page_size = loop {
        for _ in 0..50 {
            relay.post(&format!("c{total:04}"), "s", "x");
            total += 1;
        }
        let first = mcp.request("resources/list", json!({}))["result"].clone();
        if first.get("nextCursor").is_some() {
            break first["resources"].as_array().unwrap().len();
        }
        assert!(total < 5000, "resources/list never pages");
    };
    assert!(page_size > 20, "{page_size}");
    for _ in 0..20 {
        relay.post(&format!("c{total:04}"), "s", "x");
        total += 1;
    }
    let mut names = Vec::new();
    let mut params = json!({});
    let mut pages = 0;
    loop {
        let result = mcp.request("resources/list", params.clone())["result"].clone();
        pages += 1;
        let page = result["resources"].as_array().unwrap();
        assert!(page.len() <= page_size);
        names.extend(page.iter().map(|r| r["name"].as_str().unwrap().to_string()));
        match result.get("nextCursor") {
            Some(cursor) => params = json!({ "cursor": cursor }),
            None => break,
        }
    }
    assert_eq!(pages, total.div_ceil(page_size));
    let expected: Vec<String> = (0..total).map(|i| format!("c{i:04}")).collect();
    assert_eq!(names, expected);
    let bad = mcp.request("resources/list", json!({"cursor": 5}));
    assert_eq!(bad["error"]["code"], -32602);
}

#[test]
fn a_forged_or_altered_resources_list_cursor_is_invalid_params() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.channels = Vec::new();
    });
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let mut total = 0;
    let cursor = loop {
        for _ in 0..50 {
            relay.post(&format!("c{total:04}"), "s", "x");
            total += 1;
        }
        let first = mcp.request("resources/list", json!({}))["result"].clone();
        if let Some(cursor) = first["nextCursor"].as_str() {
            break cursor.to_string();
        }
        assert!(total < 5000, "resources/list never pages");
    };
    let next = mcp.request("resources/list", json!({ "cursor": cursor }));
    assert!(next["result"]["resources"].is_array(), "{next}");
    let last = cursor.len() - 1;
    let altered = format!(
        "{}{}",
        &cursor[..last],
        if cursor.ends_with('0') { '1' } else { '0' }
    );
    for forged in [
        "",
        "c0000",
        "zzzz",
        altered.as_str(),
        &format!("{cursor}00"),
    ] {
        let r = mcp.request("resources/list", json!({ "cursor": forged }));
        assert_eq!(r["error"]["code"], -32602, "{forged:?}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("cursor"), "{forged:?}: {message}");
    }
}

#[test]
fn a_resource_read_holds_the_newest_messages_whose_texts_fit_in_4_mib() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let read = |mcp: &mut Mcp, uri: &str| -> Vec<String> {
        let result = mcp.request("resources/read", json!({ "uri": uri }))["result"].clone();
        let content: Value =
            serde_json::from_str(result["contents"][0]["text"].as_str().unwrap()).unwrap();
        content["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap()[..8].to_string())
            .collect()
    };
    for i in 0..6 {
        relay.post("big", "codex", &format!("{i:08}{}", "x".repeat(999_992)));
    }
    assert_eq!(
        read(&mut mcp, "relay://channel/big"),
        ["00000002", "00000003", "00000004", "00000005"],
        "four texts of a million bytes fit in 4 MiB, five do not"
    );
    relay.post("small", "codex", "00000000 a short one");
    assert_eq!(read(&mut mcp, "relay://channel/small"), ["00000000"]);
}

/// A session subscribed to `uris`, with its `GET` stream open past the priming event.
fn subscribed(relay: &Relay, uris: &[&str]) -> (Mcp, Sse) {
    let mut mcp = Mcp::connect(relay, "2025-11-25");
    for uri in uris {
        let r = mcp.request("resources/subscribe", json!({ "uri": uri }));
        assert_eq!(r["result"], json!({}), "{r}");
    }
    let mut stream = Sse::open(
        relay.addr(),
        "/mcp",
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
    );
    assert_eq!(stream.status, 200);
    stream.next(deadline()).expect("a priming event");
    (mcp, stream)
}

/// The URI of the next `notifications/resources/updated` on `stream`.
fn next_update(stream: &mut Sse) -> String {
    let e = stream.next_message(deadline()).expect("an update");
    let n: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(n["method"], "notifications/resources/updated", "{n}");
    n["params"]["uri"].as_str().unwrap().to_string()
}

#[test]
fn subscribers_hear_once_of_each_deletion_on_their_channel() {
    let relay = Relay::memory();
    let (proj, marker) = ("relay://channel/proj-x", "relay://channel/marker");
    let (_mcp, mut stream) = subscribed(&relay, &[proj, marker]);
    let first = relay.post("proj-x", "s", "one");
    relay.post("proj-x", "s", "two");
    relay.post("proj-x", "s", "three");
    for _ in 0..3 {
        assert_eq!(next_update(&mut stream), proj);
    }
    // Updates go out in the order of the changes, so a marker's update posted after each
    // deletion shows how many the deletion sent.
    let r = delete(&relay.url(&format!("/api/messages/{first}")), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    relay.post("marker", "s", "after the message's deletion");
    assert_eq!(next_update(&mut stream), proj, "the deletion of a message");
    assert_eq!(next_update(&mut stream), marker);
    let r = delete(&relay.url("/api/channels/proj-x"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    relay.post("marker", "s", "after the channel's deletion");
    assert_eq!(
        next_update(&mut stream),
        proj,
        "the deletion of the channel"
    );
    assert_eq!(
        next_update(&mut stream),
        marker,
        "one update for the channel's two messages"
    );
}

#[test]
fn subscribers_hear_when_retention_drops_messages_of_their_channel() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.retention_max_age_days = 2.0 / 86_400.0;
    });
    let (aged, marker) = ("relay://channel/aged", "relay://channel/marker");
    let (_mcp, mut stream) = subscribed(&relay, &[aged, marker]);
    relay.post("aged", "s", "soon too old");
    assert_eq!(next_update(&mut stream), aged, "the post");
    wait_until("the message passes the age limit", || {
        get_json(&relay.url("/api/messages?target=aged"))["messages"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    relay.post("marker", "s", "after the message left");
    assert_eq!(next_update(&mut stream), aged, "retention dropped it");
    assert_eq!(next_update(&mut stream), marker);
}

#[test]
fn updates_name_a_resource_as_each_session_subscribed_to_it() {
    let relay = Relay::memory();
    let (encoded, canonical) = ("relay://channel/proj%2dx", "relay://channel/proj-x");
    let (mut mcp, mut stream) = subscribed(&relay, &[encoded, "relay://channel/marker"]);
    let (_other, mut other_stream) = subscribed(&relay, &[canonical]);
    relay.post("proj-x", "s", "one");
    assert_eq!(next_update(&mut stream), encoded);
    assert_eq!(next_update(&mut other_stream), canonical);
    // Any spelling names the same subscription.
    let r = mcp.request("resources/unsubscribe", json!({ "uri": canonical }));
    assert_eq!(r["result"], json!({}), "{r}");
    relay.post("proj-x", "s", "two");
    relay.post("marker", "s", "after unsubscribing");
    assert_eq!(next_update(&mut stream), "relay://channel/marker");
}

#[test]
fn the_scheme_and_host_of_a_resource_uri_match_in_any_case() {
    let relay = Relay::memory();
    let (shouting, marker) = ("RELAY://Channel/proj-x", "relay://channel/marker");
    let (mut mcp, mut stream) = subscribed(&relay, &[shouting, marker]);
    relay.post("proj-x", "s", "one");
    relay.post("marker", "s", "after the post");
    assert_eq!(next_update(&mut stream), shouting, "named as subscribed");
    assert_eq!(next_update(&mut stream), marker);
    let read = mcp.request("resources/read", json!({ "uri": shouting }));
    let text = read["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("\"one\""), "{read}");
    // The name keeps its case: another case is another channel.
    let other = mcp.request("resources/read", json!({"uri": "relay://channel/PROJ-X"}));
    assert_eq!(other["error"]["code"], -32002, "{other}");
    let r = mcp.request(
        "resources/unsubscribe",
        json!({"uri": "relay://CHANNEL/proj-x"}),
    );
    assert_eq!(r["result"], json!({}), "{r}");
    relay.post("proj-x", "s", "two");
    relay.post("marker", "s", "after unsubscribing");
    assert_eq!(
        next_update(&mut stream),
        marker,
        "any spelling unsubscribes"
    );
}
