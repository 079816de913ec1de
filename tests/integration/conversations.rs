//! Conversations: replies, safe retries with idempotency keys, reading positions kept by the
//! relay, search and deletion, over REST and MCP and across restarts.

use crate::common::*;
use serde_json::{json, Value};
use std::fs;

fn post_body(relay: &Relay, body: Value) -> (u16, Value) {
    post_json(&relay.url("/api/messages"), &body)
}

fn page(relay: &Relay, query: &str) -> Value {
    let r = get(&relay.url(&format!("/api/messages?{query}")));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn journal_text(relay: &Relay) -> String {
    fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap()
}

#[test]
fn a_reply_is_stored_returned_with_the_message_and_kept_across_a_restart() {
    let mut relay = Relay::start();
    let first = relay.post("proj-x", "claude", "review packet");
    let (status, body) = post_body(
        &relay,
        json!({"target": "proj-x", "sender": "codex", "text": "looks good", "reply_to": first}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"]["reply_to"], first);
    let reply = body["posted"].as_u64().unwrap();
    let listed = page(&relay, "target=proj-x");
    assert_eq!(listed["messages"][1]["reply_to"], first);
    // A message that answers nothing carries no reply_to at all: the original shape.
    assert!(listed["messages"][0].get("reply_to").is_none());

    let config = config_in(&relay.dir);
    relay.restart(config);
    let listed = page(&relay, "target=proj-x");
    assert_eq!(ids(&listed), [first, reply]);
    assert_eq!(listed["messages"][1]["reply_to"], first);
}

#[test]
fn a_reply_to_an_unknown_message_or_one_of_another_channel_is_refused() {
    let relay = Relay::start();
    let elsewhere = relay.post("other", "claude", "hello");
    for reply_to in [json!(999), json!(elsewhere), json!("x"), json!(0)] {
        let (status, body) = post_body(
            &relay,
            json!({"target": "proj-x", "sender": "codex", "text": "hi", "reply_to": reply_to}),
        );
        assert_eq!(status, 400, "{reply_to}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("reply_to"),
            "{body}"
        );
    }
    assert_eq!(relay.held_messages(), 1);

    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let result = mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "codex", "text": "hi", "reply_to": 999}),
    );
    assert_eq!(result["isError"], true, "{result}");
    assert!(result["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("reply_to"));
    assert_eq!(relay.held_messages(), 1);
}

#[test]
fn mcp_posts_a_reply_and_fetch_returns_it() {
    let relay = Relay::start();
    let first = relay.post("proj-x", "claude", "packet");
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let result = mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "codex", "text": "answer", "reply_to": first}),
    );
    assert_eq!(result["isError"], false, "{result}");
    let fetched = mcp.call("fetch_messages", json!({"target": "proj-x"}));
    let messages = &fetched["structuredContent"]["messages"];
    assert_eq!(messages[1]["reply_to"], first);
    assert_eq!(messages[1]["text"], "answer");
}

#[test]
fn a_retry_with_the_same_idempotency_key_returns_the_original_message_also_after_a_restart() {
    let mut relay = Relay::start();
    let url = relay.url("/api/messages");
    let body = json!({"target": "proj-x", "sender": "claude", "text": "packet 1"});
    let first = post_raw(
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k-1"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.json()["posted"].as_u64().unwrap();
    // The same key as a body field is the same post.
    let (status, again) = post_body(
        &relay,
        json!({"target": "proj-x", "sender": "claude", "text": "packet 1", "idempotency_key": "k-1"}),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["posted"], id);
    assert_eq!(again["repeated"], true);
    assert_eq!(again["message"]["text"], "packet 1");
    assert_eq!(relay.held_messages(), 1);
    // Another sender's key is its own.
    let (status, other) = post_body(
        &relay,
        json!({"target": "proj-x", "sender": "codex", "text": "packet 1", "idempotency_key": "k-1"}),
    );
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["posted"], id);

    let config = config_in(&relay.dir);
    relay.restart(config);
    let (status, after) = post_body(
        &relay,
        json!({"target": "proj-x", "sender": "claude", "text": "packet 1", "idempotency_key": "k-1"}),
    );
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["posted"], id);
    // The key with another text is a conflict, not a second message.
    let (status, conflict) = post_body(
        &relay,
        json!({"target": "proj-x", "sender": "claude", "text": "packet 2", "idempotency_key": "k-1"}),
    );
    assert_eq!(status, 409, "{conflict}");
    assert!(conflict["error"]
        .as_str()
        .unwrap()
        .contains("idempotency key"));
    assert_eq!(relay.held_messages(), 2);
    // That the key survives a compaction too is `an_idempotency_key_survives_a_compaction`,
    // beside the relay's start: only from inside can a test choose when the journal compacts.
}

/// A deleted message, or one retention dropped, takes its key with it: a retry of its post
/// makes it anew, the same before a restart and after one (whose journal holds neither).
#[test]
fn a_retry_of_a_post_whose_message_is_gone_posts_anew_before_and_after_a_restart() {
    let mut relay = Relay::with(|c| c.retention_max_messages = 2);
    let keyed = |relay: &Relay, text: &str, key: &str| {
        post_body(
            relay,
            json!({"target": "t", "sender": "claude", "text": text, "idempotency_key": key}),
        )
    };
    let (_, first) = keyed(&relay, "deleted", "k-deleted");
    let deleted = first["posted"].as_u64().unwrap();
    let (_, kept) = keyed(&relay, "dropped", "k-dropped");
    let dropped = kept["posted"].as_u64().unwrap();
    assert_eq!(
        delete(&relay.url(&format!("/api/messages/{deleted}")), &[]).status,
        200
    );
    // Three more posts: retention drops the oldest kept one.
    for text in ["a", "b", "c"] {
        relay.post("t", "claude", text);
    }
    let ids = |relay: &Relay| -> Vec<u64> {
        get_json(&relay.url("/api/messages?target=t&limit=50"))["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    assert!(
        !ids(&relay).contains(&dropped),
        "retention dropped it: {:?}",
        ids(&relay)
    );

    let (status, anew) = keyed(&relay, "deleted", "k-deleted");
    assert_eq!(status, 201, "{anew}");
    let remade = anew["posted"].as_u64().unwrap();
    assert!(remade > deleted);
    let (status, anew) = keyed(&relay, "dropped", "k-dropped");
    assert_eq!(status, 201, "{anew}");

    // After a restart the key names the message made anew, as it did before.
    let mut config = config_in(&relay.dir);
    config.retention_max_messages = 2;
    relay.restart(config);
    let (status, again) = keyed(&relay, "deleted", "k-deleted");
    assert_eq!(
        (status, again["posted"].as_u64()),
        (200, Some(remade)),
        "{again}"
    );
}

#[test]
fn concurrent_retries_with_one_idempotency_key_make_one_message() {
    let relay = Relay::start();
    let url = relay.url("/api/messages");
    let posts: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                post_json(
                    &url,
                    &json!({"target": "t", "sender": "claude", "text": "once", "idempotency_key": "same"}),
                )
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = posts.into_iter().map(|h| h.join().unwrap()).collect();
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 201));
    assert!(answers
        .iter()
        .all(|(_, b)| b["posted"] == answers[0].1["posted"]));
    assert_eq!(relay.held_messages(), 1);
}

#[test]
fn a_bad_idempotency_key_is_a_400() {
    let relay = Relay::start();
    let long = "k".repeat(129);
    for key in ["", "  ", long.as_str(), "a\u{7}b"] {
        let (status, body) = post_body(
            &relay,
            json!({"target": "t", "sender": "claude", "text": "x", "idempotency_key": key}),
        );
        assert_eq!(status, 400, "{key:?}: {body}");
    }
    let mismatch = post_raw(
        &relay.url("/api/messages"),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "a"),
        ],
        json!({"target": "t", "sender": "claude", "text": "x", "idempotency_key": "b"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(mismatch.status, 400, "{}", mismatch.body);
}

#[test]
fn a_blank_idempotency_key_is_refused_saying_it_is_blank() {
    let relay = Relay::start();
    let post = json!({"target": "t", "sender": "claude", "text": "x"});
    for key in ["", "  ", "\t"] {
        let mut body = post.clone();
        body["idempotency_key"] = json!(key);
        let (status, answer) = post_body(&relay, body);
        assert_eq!(status, 400, "{key:?}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("idempotency_key is blank"),
            "{key:?}: {error}"
        );
        let r = post_raw(
            &relay.url("/api/messages"),
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            post.to_string().as_bytes(),
        );
        assert_eq!(r.status, 400, "header {key:?}: {}", r.body);
        assert!(
            r.body.contains("the Idempotency-Key header is blank"),
            "header {key:?}: {}",
            r.body
        );
    }
    let long = "k".repeat(129);
    let (_, answer) = post_body(
        &relay,
        json!({"target": "t", "sender": "claude", "text": "x", "idempotency_key": long}),
    );
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("129 characters long; the most is 128"),
        "{answer}"
    );
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let r = mcp.call(
        "post_message",
        json!({"target": "t", "sender": "claude", "text": "x", "idempotency_key": " "}),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("idempotency_key is blank"),
        "{r}"
    );
    assert_eq!(
        page(&relay, "target=t")["messages"],
        json!([]),
        "nothing was posted"
    );
}

#[test]
fn mcp_post_message_with_an_idempotency_key_posts_once_and_refuses_another_text() {
    let relay = Relay::start();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let args = json!({"target": "t", "sender": "claude", "text": "once", "idempotency_key": "m-1"});
    let first = mcp.call("post_message", args.clone());
    assert_eq!(first["isError"], false, "{first}");
    let again = mcp.call("post_message", args);
    assert_eq!(again["isError"], false, "{again}");
    assert_eq!(
        again["structuredContent"]["posted"],
        first["structuredContent"]["posted"]
    );
    assert_eq!(again["structuredContent"]["repeated"], true);
    let conflict = mcp.call(
        "post_message",
        json!({"target": "t", "sender": "claude", "text": "twice", "idempotency_key": "m-1"}),
    );
    assert_eq!(conflict["isError"], true, "{conflict}");
    assert_eq!(relay.held_messages(), 1);
}

#[test]
fn a_reader_gets_what_it_has_not_seen_and_its_position_survives_a_restart() {
    let mut relay = Relay::start();
    for n in 1..=3 {
        relay.post("proj-x", "claude", &format!("m{n}"));
    }
    let first = page(&relay, "target=proj-x&reader=codex&limit=2");
    assert_eq!(ids(&first), [1, 2]);
    assert_eq!(first["more"], true);
    let second = page(&relay, "target=proj-x&reader=codex");
    assert_eq!(ids(&second), [3]);
    assert!(ids(&page(&relay, "target=proj-x&reader=codex")).is_empty());
    // Another reader has its own position.
    assert_eq!(ids(&page(&relay, "target=proj-x&reader=claude")), [1, 2, 3]);
    relay.post("proj-x", "claude", "m4");
    relay.post("other", "claude", "o1");
    let unread = get(&relay.url("/api/unread?reader=codex"));
    assert_eq!(unread.status, 200, "{}", unread.body);
    let unread = unread.json();
    assert_eq!(unread["total"], 2);
    let counts: Vec<(String, u64)> = unread["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["target"].as_str().unwrap().to_string(),
                c["unread"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("other".into(), 1), ("proj-x".into(), 1)]);

    // Compaction carries positions over too: `reading_positions_survive_a_compaction`.
    let config = config_in(&relay.dir);
    relay.restart(config);
    assert!(journal_text(&relay).contains("\"read\""));
    assert_eq!(ids(&page(&relay, "target=proj-x&reader=codex")), [4]);
    assert_eq!(ids(&page(&relay, "target=other&reader=codex")), [5]);
    assert_eq!(
        get(&relay.url("/api/unread?reader=codex")).json()["total"],
        0
    );
}

#[test]
fn a_reader_waits_for_its_next_unread_message() {
    let relay = Relay::start();
    relay.post("t", "claude", "seen");
    assert_eq!(ids(&page(&relay, "target=t&reader=codex")), [1]);
    let url = relay.url("/api/messages?target=t&reader=codex&wait=20");
    let waiter = std::thread::spawn(move || get(&url).json());
    relay.wait_for_long_requests(1);
    relay.post("t", "claude", "new");
    assert_eq!(ids(&waiter.join().unwrap()), [2]);
}

#[test]
fn a_stream_with_a_reader_starts_at_its_position_and_moves_it() {
    let relay = Relay::start();
    for n in 1..=3 {
        relay.post("t", "claude", &format!("m{n}"));
    }
    assert_eq!(ids(&page(&relay, "target=t&reader=codex&limit=1")), [1]);
    let mut stream = Sse::open(relay.addr(), "/api/stream?target=t&reader=codex", &[]);
    assert_eq!(stream.status, 200);
    let got: Vec<String> = (0..2)
        .map(|_| {
            stream
                .next_message(deadline())
                .expect("a message")
                .id
                .unwrap()
        })
        .collect();
    assert_eq!(got, ["2", "3"]);
    wait_until("the position moves", || {
        get_json(&relay.url("/api/unread?reader=codex"))["total"] == 0
    });
    assert!(ids(&page(&relay, "target=t&reader=codex")).is_empty());
}

/// `latest_id` is where the next call starts: with a reader and nothing new, the reader's
/// position, not 0 (which would read the channel from its start).
#[test]
fn an_mcp_fetch_by_a_reader_that_finds_nothing_new_says_where_the_reader_stands() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let ids: Vec<u64> = (0..3)
        .map(|i| relay.post("rd", "s", &format!("m{i}")))
        .collect();
    let fetch = |mcp: &mut Mcp| {
        mcp.call("fetch_messages", json!({"target": "rd", "reader": "D"}))["structuredContent"]
            .clone()
    };
    let first = fetch(&mut mcp);
    assert_eq!(first["messages"].as_array().unwrap().len(), 3, "{first}");
    assert_eq!(first["latest_id"], ids[2]);
    let again = fetch(&mut mcp);
    assert_eq!(again["messages"], json!([]), "{again}");
    assert_eq!(again["latest_id"], ids[2], "{again}");
}

#[test]
fn mcp_fetch_with_a_reader_moves_its_position_and_an_agent_token_moves_only_its_own() {
    let relay = Relay::with(|c| {
        c.agents = [
            ("claude".to_string(), "tok-claude".to_string()),
            ("codex".to_string(), "tok-codex".to_string()),
        ]
        .into();
    });
    let url = relay.url("/api/messages");
    for n in 1..=2 {
        let r = post_raw(
            &url,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer tok-claude"),
            ],
            json!({"target": "t", "text": format!("m{n}")})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let as_codex = [("Authorization", "Bearer tok-codex")];
    let foreign = get_with(
        &relay.url("/api/messages?target=t&reader=claude"),
        &as_codex,
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let unread = get_with(&relay.url("/api/unread?reader=claude"), &as_codex);
    assert_eq!(unread.status, 403, "{}", unread.body);
    let own = get_with(
        &relay.url("/api/messages?target=t&reader=codex&limit=1"),
        &as_codex,
    );
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(ids(&own.json()), [1]);

    // Over MCP the same reader continues where REST left it.
    let mcp_fetch = |reader: &str| {
        let auth = "Bearer tok-codex";
        let init = post_raw(
            &relay.url("/mcp"),
            &[("Content-Type", "application/json"), ("Authorization", auth)],
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        );
        let session = init.header("mcp-session-id").unwrap().to_string();
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fetch_messages", "arguments": {"target": "t", "reader": reader}}});
        post_raw(
            &relay.url("/mcp"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", auth),
                ("Mcp-Session-Id", &session),
            ],
            call.to_string().as_bytes(),
        )
        .json()["result"]
            .clone()
    };
    let result = mcp_fetch("codex");
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(ids(&result["structuredContent"]), [2]);
    let refused = mcp_fetch("claude");
    assert_eq!(refused["isError"], true, "{refused}");
    let claude_unread = get_with(
        &relay.url("/api/unread?reader=claude"),
        &[("Authorization", "Bearer tok-claude")],
    );
    assert_eq!(claude_unread.json()["total"], 2);
}

#[test]
fn search_finds_texts_ignoring_case_newest_first_over_rest_and_mcp() {
    let relay = Relay::start();
    relay.post("proj-x", "claude", "The Parser fails on tabs");
    relay.post("proj-y", "codex", "parser fixed");
    relay.post("proj-x", "codex", "unrelated");
    relay.post("proj-x", "claude", "PARSER again");
    let r = get(&relay.url("/api/search?q=parser"));
    assert_eq!(r.status, 200, "{}", r.body);
    let hits = r.json();
    assert_eq!(ids(&hits), [4, 2, 1]);
    assert_eq!(hits["messages"][1]["target"], "proj-y");
    let only_x = get(&relay.url("/api/search?q=parser&target=proj-x&sender=claude&limit=1")).json();
    assert_eq!(ids(&only_x), [4]);
    assert_eq!(get(&relay.url("/api/search?q=")).status, 400);
    assert_eq!(get(&relay.url("/api/search?q=x&limit=nope")).status, 400);

    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let tools = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "post_message",
            "fetch_messages",
            "list_channels",
            "search_messages"
        ]
    );
    let found = mcp.call(
        "search_messages",
        json!({"query": "PaRsEr", "sender": "codex"}),
    );
    assert_eq!(found["isError"], false, "{found}");
    assert_eq!(ids(&found["structuredContent"]), [2]);
    let blank = mcp.call("search_messages", json!({"query": " "}));
    assert_eq!(blank["isError"], true, "{blank}");
}

#[test]
fn deleting_a_message_is_for_loopback_without_a_token_and_survives_a_restart_and_leaves_the_disk() {
    let mut relay = Relay::start();
    let keep = relay.post("t", "claude", "keep me");
    let gone = relay.post("t", "claude", "secret text to remove");
    let mut stream = Sse::open(relay.addr(), "/api/stream?target=t", &[]);
    assert_eq!(stream.status, 200);
    let r = delete(&relay.url(&format!("/api/messages/{gone}")), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], gone);
    let event = loop {
        let e = stream.next(deadline()).expect("a deleted event");
        if e.event.as_deref() == Some("deleted") {
            break e;
        }
    };
    assert_eq!(
        serde_json::from_str::<Value>(&event.data).unwrap()["id"],
        gone
    );
    assert_eq!(ids(&page(&relay, "target=t")), [keep]);
    assert_eq!(
        delete(&relay.url(&format!("/api/messages/{gone}")), &[]).status,
        404
    );
    assert_eq!(delete(&relay.url("/api/messages/abc"), &[]).status, 400);

    let config = config_in(&relay.dir);
    relay.restart(config);
    assert_eq!(ids(&page(&relay, "target=t")), [keep]);
    // Closing the relay compacted the journal: the text is no longer on disk.
    assert!(!journal_text(&relay).contains("secret text"));
    // The channel archive keeps its history.
    let archive = fs::read_to_string(relay.dir.path("log/channel_messages.log")).unwrap();
    assert!(archive.contains("secret text to remove"));
}

#[test]
fn deleting_a_channel_removes_its_messages_and_needs_the_main_token() {
    let mut relay = Relay::with(|c| {
        c.auth_token = Some("main".into());
        c.agents = [("codex".to_string(), "tok-codex".to_string())].into();
    });
    let main = [("Authorization", "Bearer main")];
    for n in 0..3 {
        let r = post_raw(
            &relay.url("/api/messages"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer main"),
            ],
            json!({"target": "old", "sender": "claude", "text": format!("m{n}")})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.status, 201);
    }
    let by_agent = delete(
        &relay.url("/api/channels/old"),
        &[("Authorization", "Bearer tok-codex")],
    );
    assert_eq!(by_agent.status, 403, "{}", by_agent.body);
    let r = delete(&relay.url("/api/channels/old"), &main);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["messages"], 3);
    assert_eq!(delete(&relay.url("/api/channels/old"), &main).status, 404);
    let channels = get_with(&relay.url("/api/channels"), &main).json();
    assert!(
        !channels["channels"]
            .as_array()
            .unwrap()
            .contains(&json!("old")),
        "{channels}"
    );

    let mut config = config_in(&relay.dir);
    config.auth_token = Some("main".into());
    relay.restart(config);
    let listed = get_with(&relay.url("/api/messages?target=old"), &main).json();
    assert!(ids(&listed).is_empty());
    assert!(!journal_text(&relay).contains("\"m1\""));
}

/// Reader `codex`'s entry for `target` in `GET /api/unread`, if it lists one.
fn unread_on(relay: &Relay, target: &str) -> Option<Value> {
    let unread = get_json(&relay.url("/api/unread?reader=codex"));
    unread["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == target)
        .cloned()
}

#[test]
fn a_deleted_channel_forgets_its_readers_positions_across_a_restart_and_a_compaction() {
    let mut relay = Relay::start();
    for n in 1..=3 {
        relay.post("old", "claude", &format!("m{n}"));
    }
    relay.post("other", "claude", "kept");
    assert_eq!(ids(&page(&relay, "target=old&reader=codex")), [1, 2, 3]);
    assert_eq!(ids(&page(&relay, "target=other&reader=codex")), [4]);
    assert_eq!(delete(&relay.url("/api/channels/old"), &[]).status, 200);
    // Neither listed nor counted: the channel is gone with its history.
    let channels = get_json(&relay.url("/api/channels"));
    let listed = channels["channels"].as_array().unwrap();
    assert!(!listed.contains(&json!("old")), "{channels}");
    assert!(listed.contains(&json!("other")), "{channels}");
    assert_eq!(unread_on(&relay, "old"), None);
    // The deletion's compaction rewrote the journal, and the restart reads that.
    relay.restart(config_in(&relay.dir));
    assert!(!journal_text(&relay).contains(r#""target":"old","id""#));
    let new = relay.post("old", "claude", "a new history");
    assert_eq!(
        unread_on(&relay, "old"),
        Some(json!({"target": "old", "unread": 1, "position": 0}))
    );
    assert_eq!(ids(&page(&relay, "target=old&reader=codex")), [new]);
    assert_eq!(
        unread_on(&relay, "other"),
        Some(json!({"target": "other", "unread": 0, "position": 4}))
    );
}

#[test]
fn a_channel_deletion_replayed_from_the_journal_takes_the_positions_before_it() {
    let dir = TempDir::new("deleted-positions");
    let config = config_in(&dir);
    fs::create_dir_all(&config.data_dir).unwrap();
    // A relay stopped before the deletion's compaction ran leaves these lines.
    let lines = concat!(
        "{\"id\":1,\"ts\":1760000000.5,\"target\":\"old\",\"sender\":\"claude\",\"text\":\"m1\"}\n",
        "{\"read\":{\"reader\":\"codex\",\"target\":\"old\",\"id\":1}}\n",
        "{\"delete\":{\"target\":\"old\",\"through\":1}}\n",
    );
    fs::write(config.data_dir.join("messages.jsonl"), lines).unwrap();
    let relay = Relay::start_in(dir, config);
    let new = relay.post("old", "claude", "a new history");
    assert_eq!(
        unread_on(&relay, "old"),
        Some(json!({"target": "old", "unread": 1, "position": 0}))
    );
    assert_eq!(ids(&page(&relay, "target=old&reader=codex")), [new]);
}

#[test]
fn a_channel_is_deleted_by_its_name_escaped_once_whatever_it_holds() {
    let relay = Relay::start();
    let names = ["B", "%42", "100%", "a/b", "é x"];
    let escaped = |name: &str| -> String {
        name.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    for name in names {
        relay.post(name, "s", &format!("in {name}"));
    }
    for (n, name) in names.iter().enumerate().rev() {
        let r = delete(&relay.url(&format!("/api/channels/{}", escaped(name))), &[]);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.json()["deleted_channel"], *name);
        assert_eq!(r.json()["messages"], 1, "{name}");
        // The channels before it in the list are all still there, with their message.
        for kept in &names[..n] {
            let target = escaped(kept);
            let page = get_with(&relay.url(&format!("/api/messages?target={target}")), &[]).json();
            assert_eq!(page["messages"][0]["text"], format!("in {kept}"), "{name}");
        }
    }
}

#[test]
fn a_journal_written_before_replies_keys_and_positions_existed_reads_the_same() {
    let dir = TempDir::new("old-journal");
    let config = config_in(&dir);
    fs::create_dir_all(&config.data_dir).unwrap();
    // The lines as the relay wrote them before: a compaction marker and plain messages.
    let old = concat!(
        "{\"last_id\":7}\n",
        "{\"id\":8,\"ts\":1760000000.5,\"target\":\"proj-x\",\"sender\":\"claude\",\"text\":\"packet\\n```diff\\n+a\\n```\"}\n",
        "{\"id\":9,\"ts\":1760000001.25,\"target\":\"proj-x\",\"sender\":\"codex\",\"text\":\"ok\"}\n",
    );
    fs::write(config.data_dir.join("messages.jsonl"), old).unwrap();
    let relay = Relay::start_in(dir, config);
    let listed = page(&relay, "target=proj-x");
    assert_eq!(ids(&listed), [8, 9]);
    assert_eq!(listed["messages"][0]["text"], "packet\n```diff\n+a\n```");
    assert_eq!(listed["messages"][1]["ts"], 1760000001.25);
    assert!(listed["messages"][0].get("reply_to").is_none());
    assert_eq!(relay.post("proj-x", "claude", "next"), 10);
    // What was there is left byte for byte; the new message is appended after it.
    assert!(journal_text(&relay).starts_with(old));
}

#[test]
fn an_agent_token_streams_only_with_its_own_reader_name() {
    let relay = Relay::with(|c| {
        c.agents = [("codex".to_string(), "tok-codex".to_string())].into();
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let as_codex = [("Authorization", "Bearer tok-codex")];
    let foreign = Sse::open(
        relay.addr(),
        "/api/stream?target=t&reader=claude",
        &as_codex,
    );
    assert_eq!(foreign.status, 403);
    let own = Sse::open(relay.addr(), "/api/stream?target=t&reader=codex", &as_codex);
    assert_eq!(own.status, 200);
}

#[test]
fn a_search_matches_whole_queries_ignoring_ascii_case_and_refuses_queries_over_1000_characters() {
    let relay = Relay::start();
    // Long runs of one letter, the case a search that restarts its comparison at every
    // position is slowest on, and texts that hold the query only when case is ignored.
    let run = "a".repeat(5000);
    relay.post("p", "s", &format!("{run}B{run}"));
    relay.post("p", "s", &format!("{run}c"));
    relay.post("p", "s", "Grüße aus KÖLN");
    let query = |q: &str| -> Vec<u64> {
        let r = get(&relay.url(&format!("/api/search?q={q}")));
        assert_eq!(r.status, 200, "{}", r.body);
        ids(&r.json())
    };
    let long_a = "a".repeat(1000);
    assert_eq!(query(&format!("{}b", &long_a[1..])), [1]);
    assert_eq!(query(&format!("{}C", &long_a[1..])), [2]);
    assert_eq!(query(&format!("{}d", &long_a[1..])), Vec::<u64>::new());
    assert_eq!(
        query("k%C3%B6ln"),
        [3],
        "a query beyond ASCII ignores case too"
    );
    assert_eq!(query("aus%20k"), [3]);

    let refused = get(&relay.url(&format!("/api/search?q={long_a}b")));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("1000 characters"), "{}", refused.body);
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let refused = mcp.call("search_messages", json!({ "query": format!("{long_a}b") }));
    assert_eq!(refused["isError"], true, "{refused}");
}
