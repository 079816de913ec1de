//! Listening: an MCP session opened with `?listen=` hears other agents' messages as channel
//! events on its GET stream (one without hears none), and the relay lists who is listening on
//! each channel, by name, until they leave. A GET stream resumed with `Last-Event-ID` sends again
//! what it sent after that event.

use crate::common::{deadline, get, get_with, post_raw, wait_until, Mcp, Relay, Reply, Sse};
use serde_json::{json, Value};
use std::time::Instant;

/// Sends `initialize` to `path` (with its query).
fn initialize_at(relay: &Relay, path: &str) -> Reply {
    post_raw(
        &relay.url(path),
        &[("Content-Type", "application/json")],
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
        .as_bytes(),
    )
}

/// Initializes a session at `path` (with its query) and returns it with the result.
fn connect_at(relay: &Relay, path: &str) -> (Mcp, Value) {
    let url = relay.url(path);
    let r = initialize_at(relay, path);
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
    sse.next(deadline()).expect("the priming event");
    sse
}

fn next_json(sse: &mut Sse) -> Value {
    let e = sse.next_message(deadline()).expect("an event");
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

/// The listeners of `channel` in `GET /api/channels?detail=1`, as (name, kind).
fn listeners(relay: &Relay, channel: &str) -> Vec<(String, String)> {
    let listing = get(&relay.url("/api/channels?detail=1")).json();
    let detail = listing["detail"].as_array().expect("a detail list");
    let Some(c) = detail.iter().find(|c| c["name"] == channel) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = c["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l["since"].as_f64().unwrap() > 0.0);
            (
                l["name"].as_str().unwrap_or("-").to_string(),
                l["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn presence_lists_each_waiter_stream_bridge_and_session_by_name_until_it_leaves() {
    let relay = Relay::memory();
    let last = relay.post("proj-x", "human", "start");
    let plain = get(&relay.url("/api/channels")).json();
    assert_eq!(
        plain.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["channels"],
        "the default shape is unchanged"
    );

    let waiter = {
        let url = relay.url(&format!(
            "/api/messages?target=proj-x&since_id={last}&wait=50"
        ));
        std::thread::spawn(move || get_with(&url, &[("X-Relay-Agent", "codex")]).status)
    };
    let viewer = Sse::open(
        relay.addr(),
        "/api/stream?target=proj-x",
        &[("X-Relay-Agent", "viewer")],
    );
    assert_eq!(viewer.status, 200);
    let bridge =
        crate::bridge::Bridge::connected(&relay.base, &["--listen", "proj-x", "--as", "claude"]).0;
    let path = "/mcp?listen=proj-x&as=gemini";
    let (session, _) = connect_at(&relay, path);
    let session_stream = stream(&relay, path, &session);

    let everyone = [
        ("claude", "fetch"),
        ("codex", "fetch"),
        ("gemini", "session"),
        ("viewer", "stream"),
    ]
    .map(|(n, k)| (n.to_string(), k.to_string()));
    let until = deadline();
    while listeners(&relay, "proj-x") != everyone {
        assert!(
            Instant::now() < until,
            "listed: {:?}",
            listeners(&relay, "proj-x")
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let detail = get(&relay.url("/api/channels?detail=1")).json()["detail"].clone();
    let proj = detail
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "proj-x")
        .unwrap();
    assert_eq!(proj["newest_id"], last);
    assert_eq!(proj["messages"], 1);

    // Leaving: the session ends, the bridge is killed, the stream is closed; each is noticed
    // when its wait ends or its next write fails, which the posts below bring about.
    crate::common::delete(&session.url, &[("Mcp-Session-Id", &session.session)]);
    drop(session_stream);
    drop(bridge);
    drop(viewer);
    let until = deadline();
    while !listeners(&relay, "proj-x").is_empty() {
        assert!(
            Instant::now() < until,
            "still listed: {:?}",
            listeners(&relay, "proj-x")
        );
        relay.post("proj-x", "human", "anyone there?");
    }
    assert_eq!(waiter.join().unwrap(), 200);
}

#[test]
fn a_listener_on_a_channel_nobody_posted_to_yet_is_listed() {
    let relay = Relay::memory();
    let waiter = {
        let url = relay.url("/api/messages?target=fresh&since_id=0&wait=50");
        std::thread::spawn(move || get_with(&url, &[("X-Relay-Agent", "codex")]).status)
    };
    let until = deadline();
    while listeners(&relay, "fresh") != [("codex".to_string(), "fetch".to_string())] {
        assert!(Instant::now() < until, "never listed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let channels = get(&relay.url("/api/channels")).json()["channels"].clone();
    assert!(
        !channels.as_array().unwrap().contains(&json!("fresh")),
        "listening does not make a channel"
    );
    relay.post("fresh", "claude", "here");
    assert_eq!(waiter.join().unwrap(), 200);
}

#[test]
fn watch_as_a_name_is_listed_while_it_waits_and_not_after_it_ends() {
    let relay = Relay::memory();
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args([
            "watch", "--target", "proj-x", "--as", "codex", "--count", "1",
        ])
        .args(["--url", &relay.base])
        .env_remove("CLAUDE_CODEX_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let codex = vec![("codex".to_string(), "fetch".to_string())];
    let until = deadline();
    while listeners(&relay, "proj-x") != codex {
        assert!(Instant::now() < until, "watch --as never listed");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    relay.post("proj-x", "claude", "review this");
    assert!(watch.wait().unwrap().success());
    let until = deadline();
    while !listeners(&relay, "proj-x").is_empty() {
        assert!(Instant::now() < until, "still listed after watch ended");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn a_listen_url_naming_what_no_post_could_use_is_refused_and_nothing_is_listed() {
    let relay = Relay::memory();
    let long = "L".repeat(3000);
    for query in [
        "listen=evil%E2%80%AEgnp.exe%07".to_string(),
        format!("listen=proj-x,{long}&as=claude"),
        "listen=proj-x&as=zero%E2%80%8Bwidth".to_string(),
        "listen=proj-x&from=codex,tab%09bed".to_string(),
        "listen=proj-x&from=".to_string(),
        "listen=proj-x&from=%2C".to_string(),
    ] {
        let r = initialize_at(&relay, &format!("/mcp?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.header("mcp-session-id").is_none(), "{query}");
    }
    // A good session's stream cannot be opened with a bad listen either.
    let (mcp, _) = connect_at(&relay, "/mcp");
    let r = get_with(
        &relay.url("/mcp?listen=bell%07"),
        &[
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", &mcp.version),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let channels = get(&relay.url("/api/channels?detail=1")).json();
    for c in channels["detail"].as_array().unwrap() {
        assert_eq!(c["listeners"], json!([]), "{channels}");
        let name = c["name"].as_str().unwrap();
        assert!(name.len() < 100 && !name.contains('\u{7}'), "{channels}");
    }
}

/// A name a waiting fetch, an event stream or an MCP call gives for presence (`?as=`,
/// `X-Relay-Agent`) is checked like a post's names: one no post could use is refused with 400
/// and nothing is listed.
#[test]
fn a_presence_name_no_post_could_use_is_refused_wherever_it_is_given() {
    let relay = Relay::memory();
    for path in [
        "/api/messages?target=quiet&since_id=0&wait=1&as=%E2%80%AEevil",
        "/api/messages?target=quiet&since_id=0&wait=1&as=nul%00x",
        "/api/stream?target=quiet&as=bell%07",
    ] {
        let r = get(&relay.url(path));
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.contains("as must"), "{path}: {}", r.body);
    }
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "list_channels", "arguments": {}}});
    let r = post_raw(
        &mcp.url,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", &mcp.session),
            ("MCP-Protocol-Version", &mcp.version),
            ("X-Relay-Agent", "tab\tbed"),
        ],
        call.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("X-Relay-Agent must"), "{}", r.body);
    // The same call with a name a post could use is answered.
    assert!(mcp.call("list_channels", json!({}))["isError"] != true);
    let channels = get(&relay.url("/api/channels?detail=1")).json();
    for c in channels["detail"].as_array().unwrap() {
        assert_eq!(c["listeners"], json!([]), "{channels}");
    }
}

#[test]
fn a_get_stream_resumed_with_last_event_id_sends_again_what_it_sent_after_that_event() {
    let relay = Relay::memory();
    let path = "/mcp?listen=proj-x&as=claude";
    let (listener, _) = connect_at(&relay, path);
    let open = |last_event_id: Option<&str>| {
        let mut headers = vec![
            ("Mcp-Session-Id", listener.session.as_str()),
            ("MCP-Protocol-Version", listener.version.as_str()),
        ];
        headers.extend(last_event_id.map(|id| ("Last-Event-ID", id)));
        let sse = Sse::open(relay.addr(), path, &headers);
        assert_eq!(sse.status, 200);
        sse
    };
    let mut first = open(None);
    let priming = first.next(deadline()).expect("the priming event");
    let priming_id = priming.id.expect("the priming event's id");
    assert!(priming_id.starts_with(&format!("{}-get-", listener.session)));
    relay.post("proj-x", "codex", "one");
    relay.post("proj-x", "codex", "two");
    let one = first.next_message(deadline()).expect("one");
    let two = first.next_message(deadline()).expect("two");
    let (one_id, two_id) = (one.id.expect("an id"), two.id.expect("an id"));
    assert!(one_id.starts_with(&format!("{priming_id}-")), "{one_id}");
    assert_ne!(one_id, two_id);
    // The client lost the connection having seen only `one`.
    drop(first);

    let mut resumed = open(Some(&one_id));
    let again = resumed.next(deadline()).expect("two, sent again");
    assert_eq!(
        (again.id.as_deref(), &again.data),
        (Some(two_id.as_str()), &two.data)
    );
    relay.post("proj-x", "codex", "three");
    let three = resumed.next_message(deadline()).expect("three");
    assert!(
        three.data.contains("three"),
        "the stream goes on: {}",
        three.data
    );

    // Resumed from its priming event, the stream sends all three again, on the new connection
    // only: the one that served it ends.
    let mut from_the_start = open(Some(&priming_id));
    for text in ["one", "two", "three"] {
        let e = from_the_start.next(deadline()).expect("sent again");
        assert!(e.data.contains(text), "{text}: {}", e.data);
    }
    wait_until("only the new connection serves the stream", || {
        relay.load().long_requests == 1
    });
    assert!(resumed.next(deadline()).is_none(), "the stream moved on");

    // An id no stream of the session gave out opens a new stream, sending nothing again.
    let mut fresh = open(Some("elsewhere-get-1-1"));
    let e = fresh.next(deadline()).expect("a priming event");
    assert!(e.data.is_empty(), "{}", e.data);
    assert_ne!(e.id, Some(priming_id));
}
