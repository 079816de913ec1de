//! The REST API: shapes of the original relay, the since_id page, and every error case.

use crate::common::*;
use claude_codex_relay::config::Config;
use serde_json::{json, Value};
use std::thread;

#[test]
fn post_then_read_back_in_the_original_shapes() {
    let relay = Relay::start();
    let (status, body) = post_json(
        &relay.url("/api/messages"),
        &json!({"target": " proj-x ", "sender": "claude", "text": "  hi\n"}),
    );
    assert_eq!(status, 201);
    assert_eq!(body["ok"], true);
    assert_eq!(body["posted"], 1);
    let m = &body["message"];
    assert_eq!(
        (
            m["id"].as_u64(),
            m["target"].as_str(),
            m["sender"].as_str(),
            m["text"].as_str()
        ),
        (Some(1), Some("proj-x"), Some("claude"), Some("  hi\n"))
    );
    assert!(m["ts"].as_f64().unwrap() > 1.7e9);
    let page = get(&relay.url("/api/messages?target=proj-x")).json();
    assert_eq!(page["target"], "proj-x");
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0], body["message"]);
}

#[test]
fn ids_are_one_sequence_across_channels_and_pages_pick_the_right_end() {
    let relay = Relay::memory();
    for i in 1..=10 {
        let target = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(relay.post(target, "s", &format!("m{i}")), i);
    }
    let ids = |url: &str| -> Vec<u64> {
        get(&relay.url(url)).json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        ids("/api/messages?target=even&limit=2"),
        vec![8, 10],
        "newest page, ascending"
    );
    assert_eq!(
        ids("/api/messages?target=even&since_id=3&limit=2"),
        vec![4, 6],
        "oldest page after since_id"
    );
    assert_eq!(
        ids("/api/messages?target=even&since_id=10"),
        Vec::<u64>::new()
    );
    assert_eq!(
        ids("/api/messages?target=even&limit=0"),
        vec![10],
        "limit clamps to 1"
    );
    assert_eq!(
        ids("/api/messages?target=odd&limit=99999").len(),
        5,
        "limit clamps to 500"
    );
    assert_eq!(ids("/api/messages?target=nobody"), Vec::<u64>::new());
}

#[test]
fn channels_are_the_sorted_union_of_configured_and_seen() {
    let relay = Relay::memory();
    assert_eq!(
        get(&relay.url("/api/channels")).json(),
        json!({"channels": ["claude", "codex", "proj-x"]})
    );
    relay.post("alpha", "s", "x");
    relay.post("zeta", "s", "x");
    relay.post("codex", "s", "x");
    assert_eq!(
        get(&relay.url("/api/channels")).json()["channels"],
        json!(["alpha", "claude", "codex", "proj-x", "zeta"])
    );
}

#[test]
fn healthz_docs_openapi_and_page_answer() {
    let relay = Relay::memory();
    let h = get(&relay.url("/healthz"));
    assert_eq!((h.status, h.body.as_str()), (200, "ok"));
    assert!(h.header("content-type").unwrap().starts_with("text/plain"));
    let docs = get(&relay.url("/docs"));
    assert_eq!(docs.status, 200);
    assert!(docs.body.contains("/api/messages") && docs.body.contains("since_id"));
    let api = get(&relay.url("/openapi.json"));
    assert_eq!(api.json()["openapi"], "3.1.0");
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/api/openapi.json"
    ))
    .unwrap();
    assert_eq!(api.body, on_disk, "inflated for a client without gzip");
    let compressed = get_with(&relay.url("/openapi.json"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    let length: usize = compressed
        .header("content-length")
        .unwrap()
        .parse()
        .unwrap();
    assert!(length < on_disk.len() / 2, "{length} of {}", on_disk.len());
    let page = get(&relay.url("/"));
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
}

#[test]
fn bad_input_gets_a_4xx_that_names_the_problem() {
    let relay = Relay::with(|c| {
        c.max_body_bytes = 4096;
        c.max_message_bytes = 1024;
    });
    let url = relay.url("/api/messages");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("invalid JSON", b"{nope".to_vec(), 400, "not valid JSON"),
        ("a list", b"[1,2]".to_vec(), 400, "JSON object"),
        ("a string", b"\"hi\"".to_vec(), 400, "JSON object"),
        ("null", b"null".to_vec(), 400, "JSON object"),
        (
            "an object and more",
            b"{} {}".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "text given as a number",
            br#"{"target":"t","sender":"s","text":5}"#.to_vec(),
            400,
            "text must be a string",
        ),
        (
            "reply_to given as text",
            br#"{"target":"t","sender":"s","text":"x","reply_to":"one"}"#.to_vec(),
            400,
            "reply_to must be the id of a message",
        ),
        (
            "missing text",
            br#"{"target":"t","sender":"s"}"#.to_vec(),
            400,
            "text is required",
        ),
        (
            "blank text",
            br#"{"target":"t","sender":"s","text":"  \n"}"#.to_vec(),
            400,
            "text must not be blank",
        ),
        (
            "blank target",
            br#"{"target":" ","sender":"s","text":"x"}"#.to_vec(),
            400,
            "target must not be empty",
        ),
        (
            "numeric sender",
            br#"{"target":"t","sender":5,"text":"x"}"#.to_vec(),
            400,
            "sender must be a string",
        ),
        (
            "object text",
            br#"{"target":"t","sender":"s","text":{}}"#.to_vec(),
            400,
            "text must be a string",
        ),
        (
            "control character",
            b"{\"target\":\"a\\u0007b\",\"sender\":\"s\",\"text\":\"x\"}".to_vec(),
            400,
            "control characters",
        ),
        (
            "text too large",
            format!(
                r#"{{"target":"t","sender":"s","text":"{}"}}"#,
                "x".repeat(2000)
            )
            .into_bytes(),
            413,
            "limit is 1024 bytes",
        ),
        ("body too large", vec![b' '; 5000], 413, "4096-byte limit"),
        ("not UTF-8", vec![0xff, 0xfe, b'{'], 400, "not valid JSON"),
    ];
    for (what, body, status, needle) in cases {
        let r = post_raw(&url, &[("Content-Type", "application/json")], &body);
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let v = r.json();
        assert_eq!(v["ok"], false, "{what}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{what}: {}",
            v["error"]
        );
    }
    for (query, needle) in [
        ("target=t&limit=abc", "limit"),
        ("target=t&limit=--1", "limit"),
        ("target=t&since_id=1.5", "since_id"),
        ("target=t&since_id=0&wait=soon", "wait"),
        ("target=t&wait=5", "since_id"),
        ("limit=5", "target"),
        ("target=%ZZ", "percent"),
        ("target=%FF", "UTF-8"),
    ] {
        let r = get(&relay.url(&format!("/api/messages?{query}")));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(needle),
            "{query}: {}",
            r.body
        );
    }
    assert_eq!(
        get(&relay.url("/api/messages?target=t")).json()["messages"],
        json!([]),
        "nothing was stored"
    );
    // A whole number past 2^64 - 1 is that: a limit is clamped, an id lies past every message.
    let id = relay.post("t", "s", "kept");
    let huge = "18446744073709551616";
    let page = get_json(&relay.url(&format!("/api/messages?target=t&limit={huge}")));
    assert_eq!(page["messages"][0]["id"], id, "{page}");
    let past = get_json(&relay.url(&format!("/api/messages?target=t&since_id={huge}")));
    assert_eq!(past["messages"], json!([]), "{past}");
}

#[test]
fn a_negative_count_is_0_as_the_original_read_it_but_a_negative_id_is_refused() {
    let relay = Relay::memory();
    for i in 1..=3 {
        relay.post("t", "s", &format!("m{i}"));
    }
    let ids = |query: &str| -> Vec<u64> {
        let page = get_json(&relay.url(query));
        let messages = page["messages"].as_array().unwrap().clone();
        messages.iter().map(|m| m["id"].as_u64().unwrap()).collect()
    };
    assert_eq!(ids("/api/messages?target=t&limit=-1"), [3]);
    assert_eq!(ids("/api/messages?target=t&limit=%2B2"), [2, 3]);
    assert_eq!(ids("/api/messages?target=t&since_id=-3"), [1, 2, 3]);
    assert_eq!(ids("/api/messages?target=t&before_id=-1"), [] as [u64; 0]);
    assert_eq!(ids("/api/search?q=m&limit=-1"), [3]);
    let page = get_json(&relay.url("/api/channels?limit=-1"));
    assert_eq!(page["channels"], json!(["claude"]), "{page}");
    // An id that names a message takes no sign.
    for id in ["-1", "+1"] {
        let r = delete(&relay.url(&format!("/api/messages/{id}")), &[]);
        assert_eq!(r.status, 400, "{id}: {}", r.body);
    }
    let (status, body) = post_json(
        &relay.url("/api/messages"),
        &json!({"target": "t", "sender": "s", "text": "x", "reply_to": -1}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        ids("/api/messages?target=t"),
        [1, 2, 3],
        "nothing was deleted"
    );
}

#[test]
fn wrong_methods_get_405_with_allow_and_unknown_paths_404() {
    let relay = Relay::memory();
    let r = delete(&relay.url("/api/messages"), &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    let r = post_raw(&relay.url("/healthz"), &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The read-only GET routes answer HEAD with the GET's headers and no body.
    relay.post("t", "s", "findable");
    for path in [
        "/api/search?q=find",
        "/api/unread?reader=r",
        "/api/channels",
        "/healthz",
        "/api/messages?target=t",
        "/api/messages?target=t&since_id=0&limit=1",
    ] {
        let got = get(&relay.url(path));
        let head = raw(
            relay.addr(),
            format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(head.status, 200, "{path}: {}", head.body);
        assert_eq!(head.body, "", "{path}");
        let length = got.body.len().to_string();
        assert_eq!(
            head.header("content-length"),
            Some(length.as_str()),
            "{path}"
        );
    }
    // A page large enough to be streamed as it is written is not written to HEAD either.
    let long = "x".repeat(600 * 1024);
    relay.post("long", "s", &long);
    relay.post("long", "s", &long);
    let head = raw(
        relay.addr(),
        b"HEAD /api/messages?target=long HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((head.status, head.body.len()), (200, 0));
    // Its head is written by the relay, with the Date every response carries.
    let date = head.header("date").map(httpdate::parse_http_date);
    assert!(matches!(date, Some(Ok(_))), "{:?}", head.header("date"));
    // Methods are case-sensitive: `delete` and `post` are not DELETE and POST.
    let doomed = relay.post("keep", "s", "not deleted by a lower-case method");
    for request in [
        format!("delete /api/messages/{doomed} HTTP/1.1\r\n"),
        "delete /api/channels/keep HTTP/1.1\r\n".to_string(),
        "post /api/messages HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n"
            .to_string(),
    ] {
        let body = r#"{"target":"keep","sender":"s","text":"x"}"#;
        let answer = raw(
            relay.addr(),
            format!("{request}Host: 127.0.0.1\r\nConnection: close\r\n\r\n{body}").as_bytes(),
        );
        assert_eq!(answer.status, 405, "{request}");
    }
    let kept = get_json(&relay.url("/api/messages?target=keep"));
    assert_eq!(kept["messages"].as_array().map(Vec::len), Some(1), "{kept}");
    // HEAD is safe: it neither moves a reader nor waits.
    for query in ["reader=r", "since_id=1&wait=5"] {
        let head = raw(
            relay.addr(),
            format!("HEAD /api/messages?target=t&{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(head.status, 400, "{query}");
    }
    let unread = get_json(&relay.url("/api/unread?reader=r"));
    let on_t = unread["channels"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["target"] == "t"));
    assert_eq!(
        on_t.map(|c| &c["position"]),
        Some(&json!(0)),
        "no HEAD moved the reader: {unread}"
    );
    let r = post_raw(
        &relay.url("/sse"),
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(
        r.status, 405,
        "clients falling back from Streamable HTTP need a quick 4xx"
    );
    for path in [
        "/nope",
        "/mcp/extra",
        "/api",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-protected-resource/mcp",
        "/mcp/.well-known/openid-configuration",
    ] {
        let r = get(&relay.url(path));
        assert_eq!(r.status, 404, "{path}");
        assert!(r.header("www-authenticate").is_none());
    }
}

#[test]
fn a_body_claiming_terabytes_gets_413_and_the_relay_keeps_serving() {
    let relay = Relay::memory();
    for declared in ["1000000000000000", "5000000"] {
        let mut s = std::net::TcpStream::connect(relay.addr()).unwrap();
        use std::io::{Read, Write};
        let head = format!("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{\"a\":");
        s.write_all(head.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        // Read the status line only: a connection whose body was never sent is not closed.
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            out.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&out);
        assert!(line.starts_with("HTTP/1.1 413"), "{declared}: {line}");
    }
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
    relay.post("still", "here", "fine");
}

#[test]
fn a_burst_of_new_connections_is_served_while_others_stay_open() {
    // Browsers open several connections at once and keep them alive. Every one must be
    // answered while the others stay open, not left queued until another connection's idle
    // timeout, which is set far beyond the test's patience.
    use std::io::{BufRead, BufReader, Write};
    let relay = Relay::with(|c| {
        c.idle_timeout_secs = 3600;
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(24));
    let handles: Vec<_> = (0..24)
        .map(|_| {
            let (addr, barrier) = (relay.addr(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                barrier.wait();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .unwrap();
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut line = String::new();
                BufReader::new(&s).read_line(&mut line).unwrap();
                (line, s)
            })
        })
        .collect();
    let mut kept = Vec::new();
    for h in handles {
        let (line, s) = h.join().unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
        kept.push(s);
    }
    drop(kept);
}

#[test]
fn pages_carry_head_id_and_more_and_newest_picks_the_end_after_since_id() {
    let relay = Relay::memory();
    for i in 1..=6 {
        relay.post("proj-x", "s", &format!("m{i}"));
    }
    let page =
        |query: &str| get(&relay.url(&format!("/api/messages?target=proj-x&{query}"))).json();
    let ids = |v: &serde_json::Value| -> Vec<u64> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    let newest = page("limit=2");
    assert_eq!(
        (
            ids(&newest),
            newest["head_id"].as_u64(),
            newest["more"].as_bool()
        ),
        (vec![5, 6], Some(6), Some(false))
    );
    let oldest = page("since_id=1&limit=2");
    assert_eq!(
        (ids(&oldest), oldest["more"].as_bool()),
        (vec![2, 3], Some(true))
    );
    let end = page("since_id=1&limit=2&newest=1");
    assert_eq!(
        (ids(&end), end["more"].as_bool()),
        (vec![5, 6], Some(false))
    );
    assert_eq!(
        ids(&page("limit=2&newest=false")),
        vec![1, 2],
        "newest=false from the start"
    );
    let empty = get(&relay.url("/api/messages?target=nobody")).json();
    assert_eq!(
        (empty["head_id"].as_u64(), empty["more"].as_bool()),
        (Some(0), Some(false))
    );
    let bad = get(&relay.url("/api/messages?target=proj-x&newest=maybe"));
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("newest"), "{}", bad.body);
}

#[test]
fn before_id_pages_back_through_older_history_in_a_file_store() {
    let relay = Relay::start();
    let ids: Vec<u64> = (1..=7)
        .map(|i| {
            relay.post("other", "s", "between");
            relay.post("proj-x", "s", &format!("m{i}"))
        })
        .collect();
    let page = |query: &str| {
        let v = get(&relay.url(&format!("/api/messages?target=proj-x&{query}"))).json();
        let texts: Vec<String> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect();
        (texts, v["messages"][0]["id"].as_u64())
    };
    // The web page's walk: the latest page, then the page before its first id, and on.
    let (latest, mut first) = page("limit=3");
    assert_eq!(latest, ["m5", "m6", "m7"]);
    let mut walked = latest;
    while let Some(id) = first {
        let (older, next) = page(&format!("limit=3&before_id={id}"));
        assert!(older.len() <= 3, "{older:?}");
        walked.splice(0..0, older);
        first = next;
    }
    assert_eq!(walked, ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
    assert_eq!(page("before_id=7&newest=0&limit=2").0, ["m1", "m2"]);
    // A lower bound keeps the page the newest below before_id.
    let (bounded, _) = page(&format!("before_id={}&since_id={}&limit=2", ids[5], ids[0]));
    assert_eq!(bounded, ["m4", "m5"]);
    for refused in ["before_id=5&reader=codex", "before_id=5&since_id=1&wait=1"] {
        let answer = get(&relay.url(&format!("/api/messages?target=proj-x&{refused}")));
        assert_eq!(answer.status, 400, "{refused}");
        assert!(answer.body.contains("before_id"), "{}", answer.body);
    }
    let bad = get(&relay.url("/api/messages?target=proj-x&before_id=soon"));
    assert_eq!(bad.status, 400);
}

#[test]
fn names_with_invisible_format_characters_are_refused() {
    let relay = Relay::memory();
    for (target, sender) in [
        ("proj\u{202E}x", "claude"),
        ("proj-x", "cla\u{200B}ude"),
        ("\u{FEFF}proj-x", "claude"),
        ("proj-x", "claude\u{2066}"),
        ("proj\u{2028}x", "claude"),
        ("proj-x", "a\u{2029}b"),
        ("proj-x", "a\u{E0041}b"),
    ] {
        let (status, body) = post_json(
            &relay.url("/api/messages"),
            &json!({"target": target, "sender": sender, "text": "hi"}),
        );
        assert_eq!(status, 400, "{target:?} {sender:?}: {body}");
    }
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let r = mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "b\u{202E}ob", "text": "hi"}),
    );
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(relay.held_messages(), 0);
}

#[test]
fn texts_keep_line_separators_but_json_output_escapes_them() {
    let relay = Relay::memory();
    let text = "one\u{2028}two\u{2029}three \u{202E}kept";
    relay.post("proj-x", "claude", text);
    let r = get(&relay.url("/api/messages?target=proj-x"));
    assert!(
        !r.body.contains('\u{2028}') && !r.body.contains('\u{2029}'),
        "{}",
        r.body
    );
    assert!(r.body.contains(r"one\u2028two\u2029three"), "{}", r.body);
    assert_eq!(r.json()["messages"][0]["text"], text);
    let mcp = Mcp::connect(&relay, "2025-06-18");
    let fetched = mcp.send(
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "fetch_messages", "arguments": {"target": "proj-x"}}}),
    );
    assert!(!fetched.body.contains('\u{2028}'), "{}", fetched.body);
    let mut stream = Sse::open(relay.addr(), "/api/stream?target=proj-x&since_id=0", &[]);
    let e = stream.next_message(deadline()).expect("the backlog");
    assert!(
        !e.data.contains('\u{2028}') && e.data.contains(r"\u2028"),
        "{}",
        e.data
    );
}

#[test]
fn waits_on_unknown_channels_create_no_channel() {
    // That they leave no entry in memory either is the store's unit test
    // `waits_on_unknown_channels_create_no_channel_entry`; here, nothing is listed.
    let relay = Relay::memory();
    let before = get_json(&relay.url("/api/channels"));
    for i in 0..50 {
        let r = get(&relay.url(&format!(
            "/api/messages?target=ghost-{i}&since_id=0&wait=0.001"
        )));
        assert_eq!(r.status, 200);
    }
    assert_eq!(get_json(&relay.url("/api/channels")), before);
    // A waiter on a channel that does not exist yet still hears its first message.
    let url = relay.url("/api/messages?target=born-later&since_id=0&wait=30");
    let waiter = std::thread::spawn(move || get(&url));
    relay.wait_for_long_requests(1);
    relay.post("born-later", "s", "first");
    let r = waiter.join().unwrap();
    assert_eq!(r.json()["messages"][0]["text"], "first");
}

#[test]
fn channel_listings_are_paginated_on_request() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.channels = vec!["b".into(), "d".into()];
    });
    for name in ["a", "c", "d", "e"] {
        relay.post(name, "s", "x");
    }
    let all = get(&relay.url("/api/channels")).json();
    assert_eq!(
        all,
        json!({"channels": ["a", "b", "c", "d", "e"]}),
        "the original shape"
    );
    let mut seen = Vec::new();
    let mut url = relay.url("/api/channels?limit=2");
    loop {
        let page = get(&url).json();
        let names = page["channels"].as_array().unwrap().clone();
        assert!(names.len() <= 2);
        seen.extend(names.iter().map(|n| n.as_str().unwrap().to_string()));
        match page.get("next") {
            Some(next) => {
                url = relay.url(&format!(
                    "/api/channels?limit=2&after={}",
                    next.as_str().unwrap()
                ))
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(
        get(&relay.url("/api/channels?after=c")).json(),
        json!({"channels": ["d", "e"]})
    );
    assert_eq!(get(&relay.url("/api/channels?limit=x")).status, 400);
}

/// The detailed listing (REST `?detail=1`, MCP `list_channels`) page by page holds what it holds
/// whole: every channel once, in order, with the detail of each (a channel only listened on
/// included) on the page whose span of names holds it.
#[test]
fn the_detailed_listing_page_by_page_holds_what_it_holds_whole() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.channels = vec!["b".into(), "d".into()];
    });
    for name in ["a", "c", "d", "e", "f"] {
        relay.post(name, "s", "x");
    }
    // Someone waits on a channel nothing was posted to: it is in the detail only.
    let waiting = {
        let url = relay.url("/api/messages?target=dd&since_id=0&wait=50&as=w");
        thread::spawn(move || get(&url))
    };
    wait_until("the wait on dd is listed", || {
        let whole = get_json(&relay.url("/api/channels?detail=1"));
        whole["detail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "dd")
    });
    let whole = get_json(&relay.url("/api/channels?detail=1"));
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let by_tool = mcp.call("list_channels", json!({}))["structuredContent"].clone();
    assert_eq!(by_tool["channels"], whole["channels"]);
    let names = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.get("name").unwrap_or(d).as_str().unwrap().to_string())
            .collect()
    };
    for limit in [1, 2, 3] {
        for via_tool in [false, true] {
            let (mut channels, mut detail) = (Vec::new(), Vec::new());
            let mut after: Option<String> = None;
            loop {
                let page = if via_tool {
                    let mut args = json!({"limit": limit});
                    if let Some(a) = &after {
                        args["after"] = json!(a);
                    }
                    mcp.call("list_channels", args)["structuredContent"].clone()
                } else {
                    let after = after
                        .as_deref()
                        .map_or(String::new(), |a| format!("&after={a}"));
                    get_json(&relay.url(&format!("/api/channels?detail=1&limit={limit}{after}")))
                };
                let here = names(&page, "channels");
                assert!(here.len() <= limit, "{page}");
                for d in names(&page, "detail") {
                    assert!(after.as_ref().is_none_or(|a| &d > a), "{d} after {after:?}");
                    if page.get("next").is_some() {
                        assert!(&d <= here.last().unwrap(), "{d} within the page: {page}");
                    }
                }
                channels.extend(here);
                detail.extend(page["detail"].as_array().unwrap().iter().cloned());
                match page.get("next") {
                    Some(next) => after = Some(next.as_str().unwrap().to_string()),
                    None => break,
                }
            }
            assert_eq!(channels, names(&whole, "channels"), "limit {limit}");
            assert_eq!(json!(detail), whole["detail"], "limit {limit}");
        }
    }
    relay.post("dd", "s", "the wait ends");
    assert_eq!(waiting.join().unwrap().status, 200);
}

/// A message line of the journal as it has always been written: the message's fields, the
/// idempotency key, and the text last.
#[derive(serde::Serialize)]
struct JournalLine<'a> {
    id: u64,
    ts: f64,
    target: &'a str,
    sender: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    text: &'a str,
}

impl<'a> JournalLine<'a> {
    /// The line of a message `codex` posted to `proj-x`, answering none, with no key.
    fn plain(id: u64, ts: f64, text: &'a str) -> JournalLine<'a> {
        JournalLine {
            id,
            ts,
            target: "proj-x",
            sender: "codex",
            reply_to: None,
            key: None,
            text,
        }
    }
}

/// A post's 201 body: the message as pages send it (its journal line's fields without the
/// key), after the id.
#[derive(serde::Serialize)]
struct Created<'a> {
    ok: bool,
    posted: u64,
    message: JournalLine<'a>,
}

impl Created<'_> {
    /// The bytes of the serialisation, separators escaped as every reply escapes them.
    fn body(&self) -> String {
        serde_json::to_string(self)
            .unwrap()
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    }
}

#[test]
fn a_text_escaped_once_gives_the_201_journal_and_archive_bytes_of_a_serialisation_each() {
    let mut relay = Relay::start();
    let texts = [
        "plain".to_string(),
        "quote \" backslash \\ tab \t nul \u{0} é 😀 <&>".to_string(),
        "line\u{2028}para\u{2029}end".to_string(),
        "y".repeat(300_000),
    ];
    let mut posted = Vec::new();
    for (n, text) in texts.iter().enumerate() {
        let reply_to = (n > 0).then_some(1);
        let key = (n % 2 == 1).then(|| format!("key-{n}"));
        let mut body = json!({"target": "proj-x", "sender": "codex", "text": text});
        if let Some(reply_to) = reply_to {
            body["reply_to"] = json!(reply_to);
        }
        if let Some(key) = &key {
            body["idempotency_key"] = json!(key);
        }
        let reply = post_raw(
            &relay.url("/api/messages"),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let m = reply.json()["message"].clone();
        assert_eq!(m["text"], json!(text));
        let ts = m["ts"].as_f64().unwrap();
        let id = m["id"].as_u64().unwrap();
        let message = JournalLine {
            id,
            ts,
            target: "proj-x",
            sender: "codex",
            reply_to,
            key: None,
            text,
        };
        let expected = Created {
            ok: true,
            posted: id,
            message,
        };
        assert_eq!(reply.body, expected.body(), "the 201 of text {n}");
        posted.push((id, ts, reply_to, key));
    }
    relay.stop();
    let journal = std::fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap();
    let archive = std::fs::read_to_string(relay.dir.path("log/channel_messages.log")).unwrap();
    let (journal, archive): (Vec<&str>, Vec<&str>) =
        (journal.lines().collect(), archive.lines().collect());
    assert_eq!((journal.len(), archive.len()), (texts.len(), texts.len()));
    for (n, (text, (id, ts, reply_to, key))) in texts.iter().zip(&posted).enumerate() {
        let line = JournalLine {
            id: *id,
            ts: *ts,
            target: "proj-x",
            sender: "codex",
            reply_to: *reply_to,
            key: key.as_deref(),
            text,
        };
        assert_eq!(
            journal[n],
            serde_json::to_string(&line).unwrap(),
            "journal line {n}"
        );
        let archived = json!({"id": id, "ts": ts, "target": "proj-x", "sender": "codex", "text": text, "source": "rest"});
        assert_eq!(archive[n], archived.to_string(), "archive line {n}");
    }
}

#[test]
fn a_text_sent_with_other_escapes_or_twice_is_written_as_the_relay_escapes_it() {
    let mut relay = Relay::start();
    // Long enough for the relay to look for the text's JSON in the body, and short.
    let bodies = [5000, 0].into_iter().flat_map(|pad| {
        let z = "z".repeat(pad);
        [
            (
                format!(r#"{{"target":"proj-x","sender":"codex","text":"a\/b \u0041 \u00E9 \ud83d\ude00 \u001F \u2028 \n{z}"}}"#),
                format!("a/b A é 😀 \u{1f} \u{2028} \n{z}"),
            ),
            (
                format!(r#"{{"target":"proj-x","sender":"codex","text":"first{z}","text":"second \"q\"{z}"}}"#),
                format!("second \"q\"{z}"),
            ),
            (
                format!(r#"{{"text" : "spaced\tout{z}" , "target":"proj-x","sender":"codex"}}"#),
                format!("spaced\tout{z}"),
            ),
        ]
    });
    let mut posted = Vec::new();
    for (body, text) in bodies {
        let reply = post_raw(
            &relay.url("/api/messages"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let m = reply.json()["message"].clone();
        let (id, ts) = (m["id"].as_u64().unwrap(), m["ts"].as_f64().unwrap());
        let expected = Created {
            ok: true,
            posted: id,
            message: JournalLine::plain(id, ts, &text),
        };
        assert_eq!(reply.body, expected.body(), "the 201 of {body}");
        posted.push((id, ts, text));
    }
    relay.stop();
    let journal = std::fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap();
    let lines: Vec<&str> = journal.lines().collect();
    assert_eq!(lines.len(), posted.len());
    for (line, (id, ts, text)) in lines.iter().zip(posted) {
        let expected = JournalLine::plain(id, ts, &text);
        assert_eq!(*line, serde_json::to_string(&expected).unwrap());
    }
}

/// Pages asked again and again are made once while their channel is unchanged; every change
/// to the channel (a post, a deletion, retention, emptying it) shows in the very next read,
/// other channels' posts change nothing, and a restart serves what the journal holds.
#[test]
fn a_page_read_again_shows_every_change_to_its_channel_at_once() {
    let dir = TempDir::new("pages");
    let config = Config {
        retention_max_messages: 3,
        ..config_in(&dir)
    };
    let mut relay = Relay::start_in(dir, config.clone());
    let newest = |relay: &Relay| get(&relay.url("/api/messages?target=p&limit=500"));
    let oldest = |relay: &Relay| get(&relay.url("/api/messages?target=p&since_id=0&limit=2"));
    let ids = |reply: &Reply| -> Vec<u64> {
        reply.json()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    // What the relay holds of `p`, from the channel listing, which pages do not make.
    let held = |relay: &Relay| -> (u64, u64) {
        let listing = get_json(&relay.url("/api/channels?detail=1"));
        let p = listing["detail"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "p")
            .cloned()
            .unwrap_or_default();
        (
            p["messages"].as_u64().unwrap_or(0),
            p["newest_id"].as_u64().unwrap_or(0),
        )
    };
    let check = |relay: &Relay, what: &str| -> Vec<u64> {
        let first = newest(relay);
        assert_eq!(first.status, 200, "{what}: {}", first.body);
        let again = newest(relay);
        assert_eq!(again.body, first.body, "{what}: read twice, the same bytes");
        let page = ids(&first);
        let (count, last) = held(relay);
        assert_eq!(page.len() as u64, count, "{what}: {page:?}");
        assert_eq!(page.last().copied().unwrap_or(0), last, "{what}: {page:?}");
        assert_eq!(first.json()["head_id"].as_u64(), Some(last), "{what}");
        assert_eq!(ids(&oldest(relay)), page[..page.len().min(2)], "{what}");
        page
    };
    let one = relay.post("p", "s", "one");
    let two = relay.post("p", "s", "two");
    assert_eq!(check(&relay, "two posts"), [one, two]);
    let before = newest(&relay).body;
    relay.post("q", "s", "elsewhere");
    assert_eq!(newest(&relay).body, before, "another channel's post");
    let three = relay.post("p", "s", "three");
    assert_eq!(check(&relay, "a third post"), [one, two, three]);
    let r = delete(&relay.url(&format!("/api/messages/{two}")), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(check(&relay, "a deletion"), [one, three]);
    // Retention keeps 3, from the post that makes a fourth on (the journal is rewritten every
    // few posts): every page in between is right.
    let mut posted = vec![one, three];
    for i in 0..8 {
        posted.push(relay.post("p", "s", &format!("more {i}")));
        let page = check(&relay, &format!("post {i}"));
        assert_eq!(
            page[..],
            posted[posted.len().saturating_sub(3)..],
            "post {i}"
        );
    }
    assert!(!check(&relay, "retention").contains(&one), "retention ran");
    relay.restart(config);
    // A start applies retention at once.
    assert_eq!(check(&relay, "a restart"), posted[posted.len() - 3..]);
    let r = delete(&relay.url("/api/channels/p"), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(check(&relay, "the channel emptied"), Vec::<u64>::new());
    let again = relay.post("p", "s", "again");
    assert_eq!(check(&relay, "a post to the emptied channel"), [again]);
}

/// With an age limit, messages leave as they pass it even when nothing more is posted, from
/// pages and from the journal (a restart does not bring them back).
#[test]
fn messages_past_the_age_limit_leave_without_a_further_post() {
    let dir = TempDir::new("age");
    let config = Config {
        retention_max_age_days: 2.0 / 86_400.0,
        ..config_in(&dir)
    };
    let mut relay = Relay::start_in(dir, config.clone());
    for text in ["one", "two", "three"] {
        relay.post("aged", "s", text);
    }
    let held = |relay: &Relay| {
        get_json(&relay.url("/api/messages?target=aged&limit=50"))["messages"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(held(&relay), 3);
    wait_until("the messages pass the age limit", || held(&relay) == 0);
    relay.stop();
    let journal = std::fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap();
    assert!(
        !journal.contains("\"one\""),
        "the journal was rewritten: {journal}"
    );
    relay.restart(config);
    assert_eq!(held(&relay), 0, "a restart serves what was served");
}

/// Reads one response from `s`: its status and the body its `Content-Length` announces.
fn read_response(s: &mut std::io::BufReader<std::net::TcpStream>) -> (u16, Vec<u8>) {
    use std::io::{BufRead, Read};
    let mut status_line = String::new();
    s.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut length = None;
    loop {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
    }
    let mut body = vec![0; length.expect("a Content-Length")];
    s.read_exact(&mut body).unwrap();
    (status, body)
}

/// A connection to `relay`, as a writer and a buffered reader, whose reads give up after 10 s.
fn connection(relay: &Relay) -> (std::net::TcpStream, std::io::BufReader<std::net::TcpStream>) {
    let stream = std::net::TcpStream::connect(relay.addr()).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    (stream.try_clone().unwrap(), std::io::BufReader::new(stream))
}

#[test]
fn a_page_of_a_mib_text_is_sent_whole_and_the_connection_goes_on() {
    use std::io::Write;
    let relay = Relay::start();
    let text = "0123456789abcdef\"\\ é".repeat(45_000);
    relay.post("big", "s", &text);
    relay.post("big", "s", "a short one after it");
    let page = "/api/messages?target=big&since_id=0&limit=10";
    let expected = get(&relay.url(page)).body;
    let (mut writer, mut reader) = connection(&relay);
    let host = relay.addr().to_string();
    // The large page, a short answer and the large page again on one keep-alive connection:
    // each answer ends where its Content-Length says, so the next is read whole.
    for path in [page, "/healthz", page] {
        write!(writer, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, 200, "{path}");
        let body = String::from_utf8(body).unwrap();
        if path == page {
            assert_eq!(body, expected);
        }
    }
    let page: serde_json::Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(page["messages"][0]["text"], json!(text));
    assert_eq!(page["messages"][1]["text"], json!("a short one after it"));
}

#[test]
fn a_long_text_sent_from_the_journal_file_is_the_same_page_on_every_read() {
    use std::io::{Read, Write};
    // Over the 256 KiB a page kept whole may hold, and with escapes. The first read reads the
    // line whole and learns that its text may be sent as it lies; the reads after it send it
    // from the file.
    let text = "0123456789abcdef\"\\ \u{e9}".repeat(15_000);
    let relay = relay_with_texts_in_the_journal("lying", &[&text, "a short one after it"]);
    let page = "/api/messages?target=big&since_id=0&limit=10";
    let first = get(&relay.url(page)).body;
    let read: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(read["messages"][0]["text"], json!(text));
    assert_eq!(read["messages"][1]["text"], json!("a short one after it"));
    let (mut writer, mut reader) = connection(&relay);
    let host = relay.addr().to_string();
    for path in [page, "/healthz", page, page] {
        write!(writer, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let (status, body) = read_response(&mut reader);
        assert_eq!(status, 200, "{path}");
        if path == page {
            assert_eq!(String::from_utf8(body).unwrap(), first);
        }
    }
    // A HEAD gets the length and no body: the next answer on the connection is the health one.
    write!(writer, "HEAD {page} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    write!(writer, "GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let head = read_head(&mut reader);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length = format!("content-length: {}\r\n", first.len());
    assert!(head.to_ascii_lowercase().contains(&length), "{head}");
    let (status, _) = read_response(&mut reader);
    assert_eq!(status, 200);
    // HTTP/1.0: the same body, then the connection closes.
    write!(writer, "GET {page} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let (status, body) = read_response(&mut reader);
    assert_eq!((status, String::from_utf8(body).unwrap()), (200, first));
    assert_eq!(
        reader.read(&mut [0; 1]).unwrap(),
        0,
        "closed after a 1.0 answer"
    );
}

#[test]
fn a_reader_that_leaves_while_a_text_is_sent_from_the_journal_harms_nothing() {
    use std::io::{Read, Write};
    let relay = relay_with_texts_in_the_journal("lying-left", &[&"x".repeat(1024 * 1024)]);
    let page = "/api/messages?target=big&since_id=0&limit=1";
    let first = get(&relay.url(page)).body;
    // Readers that ask for the page (now sent from the file) and leave after a few bytes, or
    // at once: their sends fail on a closed connection and the relay goes on.
    for bytes in [0, 1, 64 * 1024] {
        let mut stream = std::net::TcpStream::connect(relay.addr()).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let host = relay.addr();
        write!(stream, "GET {page} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let mut got = vec![0; bytes];
        stream.read_exact(&mut got).unwrap();
        drop(stream);
    }
    assert_eq!(get(&relay.url("/healthz")).status, 200);
    assert_eq!(get(&relay.url(page)).body, first);
}

/// A relay whose channel `big` holds `texts`, restarted (nothing of them in memory) with a
/// cache too small to hold a long text: once read whole, such a text is sent from the journal
/// file every time.
fn relay_with_texts_in_the_journal(name: &str, texts: &[&str]) -> Relay {
    let dir = TempDir::new(name);
    let config = Config {
        cache_bytes: 64 * 1024,
        ..config_in(&dir)
    };
    let mut relay = Relay::start_in(dir, config.clone());
    for text in texts {
        relay.post("big", "s", text);
    }
    relay.restart(config);
    relay
}

/// The head of the next response on `s`, up to its empty line.
fn read_head(s: &mut std::io::BufReader<std::net::TcpStream>) -> String {
    use std::io::BufRead;
    let mut head = String::new();
    loop {
        let mut line = String::new();
        s.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            return head;
        }
    }
}

#[test]
fn a_page_of_messages_names_the_run_of_the_relay_that_served_it() {
    let dir = TempDir::new("instance");
    let config = config_in(&dir);
    let mut relay = Relay::start_in(dir, config.clone());
    let instance = |relay: &Relay| {
        let page = get(&relay.url("/api/messages?target=proj-x&since_id=0"));
        assert_eq!(page.status, 200);
        let name = page.header("X-Relay-Instance").map(str::to_string);
        name.expect("X-Relay-Instance on a page of messages")
    };
    let first = instance(&relay);
    assert!(u64::from_str_radix(&first, 16).is_ok(), "{first}");
    relay.post("proj-x", "codex", "one");
    assert_eq!(instance(&relay), first, "the same run names itself alike");
    relay.restart(config);
    assert_ne!(
        instance(&relay),
        first,
        "another run names itself otherwise"
    );
}
