//! MCP over Streamable HTTP: the handshake at every version, the tools, sessions, and the
//! protocol errors: JSON-RPC codes, version headers, batches (on the legacy transport too) and
//! sessions ended by DELETE.

use crate::common::*;
use serde_json::{json, Value};

const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

#[test]
fn the_handshake_works_at_every_supported_version() {
    let relay = Relay::memory();
    for v in VERSIONS {
        let mut mcp = Mcp::connect(&relay, v);
        assert_eq!(mcp.session.len(), 32);
        assert!(mcp.session.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(mcp.request("ping", json!({}))["result"], json!({}));
        let tools = mcp.request("tools/list", json!({}))["result"]["tools"].clone();
        let names: Vec<&str> = tools
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
            ],
            "at {v}"
        );
    }
}

#[test]
fn an_unknown_version_is_answered_with_the_newest() {
    let relay = Relay::memory();
    let r = post_raw(
        &relay.url("/mcp"),
        &[("Content-Type", "application/json")],
        br#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["id"], "init", "string ids come back as strings");
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    let caps = &v["result"]["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], false);
    assert_eq!(caps["resources"]["subscribe"], true);
    assert!(caps["logging"].is_object());
    assert_eq!(v["result"]["serverInfo"]["name"], "claude-codex-relay");
}

#[test]
fn tools_describe_themselves_for_every_client() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let tools = mcp.request("tools/list", json!({}))["result"]["tools"].clone();
    for tool in tools.as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        assert!(!tool["description"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert!(
            tool["inputSchema"]["properties"].is_object(),
            "{name} needs explicit properties"
        );
        for (prop, schema) in tool["inputSchema"]["properties"].as_object().unwrap() {
            assert!(schema["type"].is_string(), "{name}.{prop} needs a type");
        }
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        assert!(tool["annotations"]["readOnlyHint"].is_boolean(), "{name}");
    }
    assert_eq!(
        tools[0]["inputSchema"]["required"],
        json!(["target", "sender", "text"])
    );
    // list_channels is called with no arguments, as the original's was; a page of a long
    // listing is asked for with optional ones.
    assert_eq!(tools[2]["name"], "list_channels");
    assert!(tools[2]["inputSchema"].get("required").is_none());
    let optional: Vec<&String> = tools[2]["inputSchema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(optional, ["after", "limit"]);
}

#[test]
fn tools_post_fetch_and_list_with_structured_content() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let posted = mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "claude", "text": "review packet"}),
    );
    assert_eq!(posted["isError"], false);
    assert_eq!(
        posted["structuredContent"],
        json!({"ok": true, "posted": 1})
    );
    let text: Value = serde_json::from_str(posted["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        text, posted["structuredContent"],
        "the text block holds the same JSON"
    );
    for i in 2..=5 {
        mcp.call(
            "post_message",
            json!({"target": "proj-x", "sender": "codex", "text": format!("m{i}")}),
        );
    }
    let fetched = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "since_id": 1, "limit": 2}),
    );
    let s = &fetched["structuredContent"];
    let ids: Vec<u64> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 3], "the oldest page after since_id");
    assert_eq!(s["latest_id"], 3);
    let empty = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "since_id": 99}),
    );
    assert_eq!(
        empty["structuredContent"],
        json!({"messages": [], "latest_id": 99, "head_id": 5, "more": false})
    );
    let all = mcp.call("fetch_messages", json!({"target": "proj-x", "limit": 1000}));
    assert_eq!(
        all["structuredContent"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "limit clamps to 200, 5 exist"
    );
    let stringy = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "since_id": "4"}),
    );
    assert_eq!(
        stringy["structuredContent"]["latest_id"], 5,
        "digit strings are read as numbers"
    );
    let channels = mcp.call("list_channels", json!({}));
    assert_eq!(
        channels["structuredContent"]["channels"],
        json!(["claude", "codex", "proj-x"])
    );
    let detail = &channels["structuredContent"]["detail"];
    assert_eq!(detail[2]["name"], "proj-x");
    assert_eq!(detail[2]["listeners"], json!([]));
    assert_eq!(detail[0]["messages"], 0);
}

#[test]
fn a_negative_limit_or_since_id_counts_as_0_as_the_original_read_them() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    for i in 1..=3 {
        relay.post("t", "s", &format!("m{i}"));
    }
    let ids = |r: Value| -> Vec<u64> {
        assert_eq!(r["isError"], false, "{r}");
        let messages = r["structuredContent"]["messages"]
            .as_array()
            .unwrap()
            .clone();
        messages.iter().map(|m| m["id"].as_u64().unwrap()).collect()
    };
    let fetch = |mcp: &mut Mcp, args: Value| ids(mcp.call("fetch_messages", args));
    assert_eq!(fetch(&mut mcp, json!({"target": "t", "limit": -5})), [1]);
    assert_eq!(fetch(&mut mcp, json!({"target": "t", "limit": "-5"})), [1]);
    assert_eq!(
        fetch(&mut mcp, json!({"target": "t", "limit": "+2"})),
        [1, 2]
    );
    assert_eq!(
        fetch(&mut mcp, json!({"target": "t", "since_id": -3})),
        [1, 2, 3]
    );
    assert_eq!(
        ids(mcp.call("search_messages", json!({"query": "m", "limit": -1}))),
        [3]
    );
    let page = mcp.call("list_channels", json!({"limit": -1}));
    assert_eq!(
        page["structuredContent"]["channels"],
        json!(["claude"]),
        "{page}"
    );
}

#[test]
fn invalid_arguments_are_tool_errors_that_name_the_field() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    for (tool, args, needle) in [
        (
            "post_message",
            json!({"target": "t", "sender": "s"}),
            "text is required",
        ),
        (
            "post_message",
            json!({"target": " ", "sender": "s", "text": "x"}),
            "target must not be empty",
        ),
        (
            "post_message",
            json!({"target": "t", "sender": "", "text": "x"}),
            "sender must not be empty",
        ),
        (
            "post_message",
            json!({"target": "t", "sender": "s", "text": "   "}),
            "text must not be blank",
        ),
        (
            "post_message",
            json!({"target": 1, "sender": "s", "text": "x"}),
            "target must be a string",
        ),
        ("fetch_messages", json!({}), "target is required"),
        (
            "fetch_messages",
            json!({"target": "t", "since_id": "--1"}),
            "since_id",
        ),
        (
            "post_message",
            json!({"target": "t", "sender": "s", "text": "x", "reply_to": -1}),
            "reply_to must be a whole number, 0 or more",
        ),
        (
            "fetch_messages",
            json!({"target": "t", "limit": "many"}),
            "limit",
        ),
        (
            "fetch_messages",
            json!({"target": "t", "wait_seconds": -3}),
            "wait_seconds",
        ),
    ] {
        let r = mcp.call(tool, args.clone());
        assert_eq!(r["isError"], true, "{tool} {args}");
        assert!(r.get("structuredContent").is_none());
        assert!(
            r["content"][0]["text"].as_str().unwrap().contains(needle),
            "{tool} {args}: {r}"
        );
    }
    assert_eq!(
        mcp.call("list_channels", json!({}))["structuredContent"]["channels"],
        json!(["claude", "codex", "proj-x"]),
        "nothing was posted"
    );
}

#[test]
fn protocol_errors_use_the_json_rpc_codes() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let unknown_tool = mcp.request(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(unknown_tool["error"]["code"], -32602);
    let bad_name = mcp.request("tools/call", json!({"name": 5}));
    assert_eq!(bad_name["error"]["code"], -32602);
    assert_eq!(
        mcp.request("prompts/list", json!({}))["error"]["code"],
        -32601
    );
    assert_eq!(
        mcp.request("logging/setLevel", json!({"level": "loud"}))["error"]["code"],
        -32602
    );
    assert_eq!(
        mcp.request("logging/setLevel", json!({"level": "warning"}))["result"],
        json!({})
    );
    let parse = mcp.send_raw(b"{not json");
    assert_eq!(parse.status, 400);
    assert_eq!(parse.json()["error"]["code"], -32700);
    assert_eq!(parse.json()["id"], Value::Null);
    let null_id = mcp.send(&json!({"jsonrpc": "2.0", "id": null, "method": "ping"}));
    assert_eq!(
        (null_id.status, null_id.json()["error"]["code"].as_i64()),
        (400, Some(-32600))
    );
    let batch = mcp.send(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]));
    assert_eq!(
        (batch.status, batch.json()["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "no batches after 2025-03-26"
    );
    let cancelled = mcp.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}),
    );
    assert_eq!((cancelled.status, cancelled.body.as_str()), (202, ""));
    let response = mcp.send(&json!({"jsonrpc": "2.0", "id": 5, "result": {}}));
    assert_eq!(response.status, 202);
}

#[test]
fn batches_work_on_2025_03_26_sessions() {
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-03-26");
    let r = mcp.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "list_channels"}}
    ]));
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.json();
    assert_eq!(answers.as_array().unwrap().len(), 2);
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[1]["id"], "b");
    let only_notes = mcp.send(&json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]));
    assert_eq!(only_notes.status, 202);
    assert_eq!(mcp.send(&json!([])).status, 400);
    let init_in_batch =
        mcp.send(&json!([{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}]));
    assert_eq!(init_in_batch.status, 400);
}

/// A legacy session initialized at `version`: its stream and its endpoint's URL.
fn legacy_at(relay: &Relay, version: &str) -> (Sse, String) {
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let url = relay.url(&sse.next(deadline()).unwrap().data);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = post_raw(
        &url,
        &[("Content-Type", "application/json")],
        init.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202);
    let answer: Value = serde_json::from_str(&sse.next(deadline()).unwrap().data).unwrap();
    assert_eq!(answer["result"]["protocolVersion"], version);
    (sse, url)
}

#[test]
fn legacy_batches_are_taken_only_on_2025_03_26_sessions_as_on_mcp() {
    let relay = Relay::memory();
    let pings = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    ])
    .to_string();
    let send = |url: &str, body: &str| {
        post_raw(
            url,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    };
    for version in ["2025-11-25", "2025-06-18"] {
        let (_sse, url) = legacy_at(&relay, version);
        let r = send(&url, &pings);
        assert_eq!(r.status, 400, "{version}: {}", r.body);
        assert!(r.body.contains("2025-03-26"), "{}", r.body);
    }
    let (mut sse, url) = legacy_at(&relay, "2025-03-26");
    // A batch's answers go out as one event holding their array, tool calls (which run on a
    // thread of their own) or not.
    assert_eq!(send(&url, &pings).status, 202);
    let answers: Value = serde_json::from_str(&sse.next(deadline()).unwrap().data).unwrap();
    assert_eq!(
        answers,
        json!([{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": 2, "result": {}}])
    );
    let with_a_call = json!([
        {"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {"name": "list_channels"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"}
    ]);
    assert_eq!(send(&url, &with_a_call.to_string()).status, 202);
    let answers: Value = serde_json::from_str(&sse.next(deadline()).unwrap().data).unwrap();
    let ids: Vec<&Value> = answers
        .as_array()
        .expect("one array")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!("c"), &json!(4)], "{answers}");
    assert!(
        answers[0]["result"]["structuredContent"].is_object(),
        "{answers}"
    );
    let init = r#"[{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}}]"#;
    assert_eq!(send(&url, init).status, 400, "initialize is never batched");
    assert_eq!(send(&url, "[]").status, 400, "an empty batch");
}

fn initialize(id: u64, version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

#[test]
fn a_second_initialize_in_a_session_is_refused_and_one_naming_an_ended_session_starts_one() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let again = mcp.send(&initialize(5, "2025-03-26"));
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.header("mcp-session-id").is_none(), "no new session");
    let again = again.json();
    assert_eq!(
        (again["id"].clone(), again["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    // The session goes on at the version it negotiated: a batch is still not taken.
    assert_eq!(mcp.request("ping", json!({}))["result"], json!({}));
    let batch = json!([{"jsonrpc": "2.0", "id": 6, "method": "ping"}]);
    assert_eq!(mcp.send(&batch).status, 400);

    assert_eq!(
        delete(&mcp.url, &[("Mcp-Session-Id", &mcp.session)]).status,
        204
    );
    let fresh = mcp.send(&initialize(7, "2025-06-18"));
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.json()["result"]["protocolVersion"], "2025-06-18");
    let new_id = fresh.header("mcp-session-id").expect("a new session");
    assert_ne!(new_id, mcp.session);

    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let url = relay.url(&sse.next(deadline()).unwrap().data);
    let send = |v: Value| {
        post_raw(
            &url,
            &[("Content-Type", "application/json")],
            v.to_string().as_bytes(),
        )
        .status
    };
    let mut answer =
        || -> Value { serde_json::from_str(&sse.next(deadline()).unwrap().data).unwrap() };
    assert_eq!(send(initialize(1, "2025-06-18")), 202);
    assert_eq!(answer()["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(send(initialize(2, "2025-03-26")), 202);
    let again = answer();
    assert_eq!(
        (again["id"].clone(), again["error"]["code"].clone()),
        (json!(2), json!(-32600))
    );
    let batch = json!([{"jsonrpc": "2.0", "id": 3, "method": "ping"}]);
    assert_eq!(send(batch), 400, "the legacy session stays at 2025-06-18");
}

#[test]
fn sessions_are_required_checked_and_ended_by_delete() {
    let relay = Relay::memory();
    let url = relay.url("/mcp");
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let ct = ("Content-Type", "application/json");
    let missing = post_raw(&url, &[ct], ping.as_bytes());
    assert_eq!(missing.status, 400);
    let unknown = post_raw(
        &url,
        &[ct, ("Mcp-Session-Id", "0123456789abcdef0123456789abcdef")],
        ping.as_bytes(),
    );
    assert_eq!(unknown.status, 404);
    let mcp = Mcp::connect(&relay, "2025-11-25");
    assert_eq!(
        mcp.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .status,
        200
    );
    assert_eq!(delete(&url, &[]).status, 400, "DELETE without a session");
    assert_eq!(delete(&url, &[("Mcp-Session-Id", "nope")]).status, 404);
    let ended = delete(&url, &[("Mcp-Session-Id", &mcp.session)]);
    assert_eq!(ended.status, 204);
    assert_eq!(
        mcp.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .status,
        404
    );
    assert_eq!(
        delete(&url, &[("Mcp-Session-Id", &mcp.session)]).status,
        404
    );
}

#[test]
fn sessions_survive_a_restart_of_the_relay() {
    let mut relay = Relay::start();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "claude", "text": "before"}),
    );
    let config = common_config(&relay);
    relay.restart(config);
    mcp.url = relay.url("/mcp");
    let r = mcp.request("tools/call", json!({"name": "list_channels"}));
    assert_eq!(
        r["result"]["isError"], false,
        "the old session id is still accepted: {r}"
    );
}

#[test]
fn a_deleted_session_stays_ended_after_a_restart() {
    let mut relay = Relay::start();
    let mut ended = Mcp::connect(&relay, "2025-06-18");
    let mut kept = Mcp::connect(&relay, "2025-06-18");
    let gone = delete(&ended.url, &[("Mcp-Session-Id", &ended.session)]);
    assert_eq!(gone.status, 204, "{}", gone.body);
    let config = common_config(&relay);
    relay.restart(config);
    for mcp in [&mut ended, &mut kept] {
        mcp.url = relay.url("/mcp");
    }
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(
        ended.send(&ping).status,
        404,
        "the deleted session stays ended"
    );
    assert_eq!(kept.send(&ping).status, 200, "the other one lives on");
}

fn common_config(relay: &Relay) -> claude_codex_relay::config::Config {
    let mut c = config_in(&relay.dir);
    c.port = relay.addr().port();
    c
}

#[test]
fn protocol_version_headers_are_checked_against_the_supported_set() {
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-11-25");
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for (version, status) in [
        ("2025-03-26", 200),
        ("2024-11-05", 200),
        ("2026-07-28", 400),
        ("banana", 400),
    ] {
        let r = post_raw(
            &mcp.url,
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &mcp.session),
                ("MCP-Protocol-Version", version),
            ],
            ping.as_bytes(),
        );
        assert_eq!(r.status, status, "{version}");
    }
    let no_header = post_raw(
        &mcp.url,
        &[
            ("Content-Type", "application/json"),
            ("Mcp-Session-Id", &mcp.session),
        ],
        ping.as_bytes(),
    );
    assert_eq!(no_header.status, 200, "the header is never required");
}

#[test]
fn newer_clients_probing_with_server_discover_fall_back() {
    let relay = Relay::memory();
    let r = post_raw(
        &relay.url("/mcp"),
        &[("Content-Type", "application/json"), ("mcp-protocol-version", "2026-07-28"), ("mcp-method", "server/discover")],
        br#"{"jsonrpc":"2.0","id":"server-discover-probe-1","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    );
    assert_eq!(r.status, 400);
    let code = r.json()["error"]["code"].as_i64().unwrap();
    assert_eq!(
        code, -32600,
        "a plain invalid-request, not a modern -3202x error"
    );
}

#[test]
fn accept_headers_are_read_leniently_and_replies_are_json() {
    let relay = Relay::memory();
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/event-stream"),
        Some("text/event-stream, application/json"),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = accept {
            headers.push(("Accept", a));
        }
        let r = post_raw(&relay.url("/mcp"), &headers, init);
        assert_eq!(r.status, 200, "{accept:?}");
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
    for content_type in [" Application/JSON; charset=utf-8", "application/json"] {
        let r = post_raw(&relay.url("/mcp"), &[("Content-Type", content_type)], init);
        assert_eq!(r.status, 200, "{content_type:?}");
    }
    for content_type in [
        "text/plain",
        "application/jso",
        "",
        "application/ json",
        "application/jsonx",
        "application/json-seq",
    ] {
        let r = post_raw(&relay.url("/mcp"), &[("Content-Type", content_type)], init);
        assert_eq!(r.status, 415, "{content_type:?}");
        assert!(r.body.contains("must be application/json"), "{}", r.body);
    }
}

#[test]
fn a_legacy_post_must_be_sent_as_json() {
    let relay = Relay::memory();
    let mut sse = Sse::open(relay.addr(), "/sse", &[]);
    let url = relay.url(&sse.next(deadline()).expect("the endpoint event").data);
    let ping = |id: u64, headers: &[(&str, &str)]| {
        post_raw(
            &url,
            headers,
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
                .to_string()
                .as_bytes(),
        )
    };
    for (id, refused) in [
        (1, Some("text/plain")),
        (2, None),
        (3, Some("application/jsonx")),
    ] {
        let headers: Vec<(&str, &str)> = refused.map(|t| ("Content-Type", t)).into_iter().collect();
        let r = ping(id, &headers);
        assert_eq!(r.status, 415, "{refused:?}");
        assert!(
            r.body.contains("Content-Type must be application/json"),
            "{}",
            r.body
        );
    }
    let r = ping(4, &[("Content-Type", "application/json; charset=utf-8")]);
    assert_eq!(r.status, 202, "{}", r.body);
    let answer: Value =
        serde_json::from_str(&sse.next(deadline()).expect("an answer").data).unwrap();
    assert_eq!(answer["id"], 4, "the refused pings were not run: {answer}");
}

#[test]
fn get_without_a_session_answers_at_once() {
    let relay = Relay::memory();
    let r = get_with(
        &relay.url("/mcp"),
        &[("Accept", "*/*"), ("mcp-protocol-version", "2024-11-05")],
    );
    assert_eq!(r.status, 400);
    assert!(r.header("www-authenticate").is_none());
}

#[test]
fn concurrent_requests_in_one_session_are_all_answered() {
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-11-25");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (url, session) = (mcp.url.clone(), mcp.session.clone());
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "post_message", "arguments": {"target": "c", "sender": "s", "text": format!("{i}")}}});
                let r = post_raw(&url, &[("Content-Type", "application/json"), ("Mcp-Session-Id", &session)], body.to_string().as_bytes());
                assert_eq!(r.json()["id"], i);
                r.json()["result"]["structuredContent"]["posted"].as_u64().unwrap()
            })
        })
        .collect();
    let mut ids: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
}

impl Mcp {
    fn send_raw(&self, body: &[u8]) -> Reply {
        post_raw(
            &self.url,
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", &self.session),
            ],
            body,
        )
    }
}

#[test]
fn fetch_says_how_far_behind_the_page_is_and_newest_reads_the_end() {
    let relay = Relay::memory();
    for i in 1..=7 {
        relay.post("proj-x", "claude", &format!("m{i}"));
    }
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let ids = |s: &Value| -> Vec<u64> {
        s["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    let oldest = mcp.call("fetch_messages", json!({"target": "proj-x", "limit": 3}));
    let s = &oldest["structuredContent"];
    assert_eq!(
        ids(s),
        vec![1, 2, 3],
        "without newest: the original contract"
    );
    assert_eq!(
        (s["head_id"].as_u64(), s["more"].as_bool()),
        (Some(7), Some(true))
    );
    let newest = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "limit": 3, "newest": true}),
    );
    let s = &newest["structuredContent"];
    assert_eq!(ids(s), vec![5, 6, 7], "the newest page, ascending");
    assert_eq!(
        (s["latest_id"].as_u64(), s["more"].as_bool()),
        (Some(7), Some(false))
    );
    let after = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "since_id": 5, "limit": 3, "newest": "true"}),
    );
    assert_eq!(ids(&after["structuredContent"]), vec![6, 7]);
    let bad = mcp.call("fetch_messages", json!({"target": "proj-x", "newest": 3}));
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(bad["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("newest"));
    let tools = mcp.request("tools/list", json!({}));
    let fetch = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fetch_messages")
        .unwrap()
        .clone();
    let description = fetch["description"].as_str().unwrap();
    for word in ["OLDEST", "newest=true", "head_id", "more"] {
        assert!(
            description.contains(word),
            "the description explains {word}"
        );
    }
    assert_eq!(
        fetch["inputSchema"]["properties"]["newest"]["type"],
        "boolean"
    );
}

/// Texts whose escaping differs between the forms a result carries them in: quotes,
/// backslashes, CRLF, emoji, the line separators U+2028/U+2029, control characters, JSON and
/// an escape sequence written out literally.
const TRICKY_TEXTS: [&str; 8] = [
    "a \"quoted\" word and a \\ backslash",
    "two lines\r\nof CRLF\r\n",
    "emoji 🦀👍🏽, accents é ü, 漢字",
    "line\u{2028}and paragraph\u{2029}separators",
    "controls \u{0}\u{1}\u{8}\t\u{b}\u{c}\u{1b}\u{1f}\u{7f} end",
    "{\"id\":1,\"text\":\"json inside\"}",
    "not a separator: \\u2028, \\n",
    "a closing backslash \\",
];

/// The bytes serde writes for a `fetch_messages` response: the JSON-RPC envelope, the tool
/// result, and the page as structured content and again as the text of a content item, with
/// U+2028 and U+2029 escaped.
fn fetch_response_as_serde_writes_it(id: u64, page: &Value) -> String {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        id: u64,
        ts: f64,
        target: &'a str,
        sender: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        text: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Page<'a> {
        messages: Vec<Message<'a>>,
        latest_id: u64,
        head_id: u64,
        more: bool,
    }
    let messages = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message {
            id: m["id"].as_u64().unwrap(),
            ts: m["ts"].as_f64().unwrap(),
            target: m["target"].as_str().unwrap(),
            sender: m["sender"].as_str().unwrap(),
            reply_to: m.get("reply_to").map(|r| r.as_u64().unwrap()),
            text: m["text"].as_str().unwrap(),
        });
    let escape = |json: String| {
        json.replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    };
    let structured = escape(
        serde_json::to_string(&Page {
            messages: messages.collect(),
            latest_id: page["latest_id"].as_u64().unwrap(),
            head_id: page["head_id"].as_u64().unwrap(),
            more: page["more"].as_bool().unwrap(),
        })
        .unwrap(),
    );
    let structured: &serde_json::value::RawValue = serde_json::from_str(&structured).unwrap();
    #[derive(serde::Serialize)]
    struct Text<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        text: &'a str,
    }
    #[derive(serde::Serialize)]
    struct ToolResult<'a> {
        content: [Text<'a>; 1],
        #[serde(rename = "structuredContent")]
        structured_content: &'a serde_json::value::RawValue,
        #[serde(rename = "isError")]
        is_error: bool,
    }
    #[derive(serde::Serialize)]
    struct Response<'a> {
        jsonrpc: &'a str,
        id: u64,
        result: ToolResult<'a>,
    }
    escape(
        serde_json::to_string(&Response {
            jsonrpc: "2.0",
            id,
            result: ToolResult {
                content: [Text {
                    kind: "text",
                    text: structured.get(),
                }],
                structured_content: structured,
                is_error: false,
            },
        })
        .unwrap(),
    )
}

#[test]
fn fetch_results_of_tricky_texts_are_the_same_bytes_from_the_cache_and_from_the_journal() {
    let mut relay = Relay::start();
    let first = relay.post("tricky", "claude", TRICKY_TEXTS[0]);
    for (i, text) in TRICKY_TEXTS.iter().enumerate().skip(1) {
        let mut body = json!({"target": "tricky", "sender": "codex", "text": text});
        if i == 3 {
            body["reply_to"] = json!(first);
        }
        let (status, answer) = post_json(&relay.url("/api/messages"), &body);
        assert_eq!(status, 201, "{answer}");
    }
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "fetch_messages", "arguments": {"target": "tricky", "limit": 5, "since_id": 1}}});
    let fetch = |relay: &Relay| {
        let mcp = Mcp::connect(relay, "2025-06-18");
        let r = mcp.send(&call);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    };
    // Posted just now: made from the messages' cached wire JSON, then given again as made.
    let fresh = fetch(&relay);
    let cached = fetch(&relay);
    assert_eq!(cached, fresh);
    let result = serde_json::from_str::<Value>(&fresh).unwrap()["result"].clone();
    let page = &result["structuredContent"];
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, TRICKY_TEXTS[1..6]);
    assert_eq!(page["messages"][2]["reply_to"], first);
    assert_eq!(
        (&page["latest_id"], &page["more"]),
        (&json!(first + 5), &json!(true))
    );
    let text = result["content"][0]["text"].as_str().unwrap();
    assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), page);
    assert!(!fresh.contains(['\u{2028}', '\u{2029}']), "{fresh}");
    assert_eq!(fresh, fetch_response_as_serde_writes_it(7, page));

    // After a restart with no cache, every text is read from the journal.
    let mut config = common_config(&relay);
    config.cache_bytes = 0;
    relay.restart(config);
    assert_eq!(fetch(&relay), fresh);
    let mut config = common_config(&relay);
    config.cache_bytes = 8 << 20;
    relay.restart(config);
    let from_journal = fetch(&relay);
    assert_eq!(from_journal, fresh);
    assert_eq!(fetch(&relay), fresh);
}

/// A `fetch_messages` call asked again is answered with the same result (its id aside) while
/// the channel is unchanged, shows every post and deletion at once, and is logged every time.
#[test]
fn a_fetch_asked_again_shows_every_change_at_once_and_is_logged_each_time() {
    let mut relay = Relay::start();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let fetch = |mcp: &mut Mcp| -> (Value, Vec<u64>) {
        let result = mcp.call(
            "fetch_messages",
            json!({"target": "p", "since_id": 0, "limit": 10}),
        );
        assert_eq!(result["isError"], false, "{result}");
        let text: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text, result["structuredContent"],
            "the text block is the same page"
        );
        let ids = text["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        (result, ids)
    };
    let one = relay.post("p", "s", "one");
    let two = relay.post("p", "s", "two \"quoted\"\nline ✓");
    let (first, ids) = fetch(&mut mcp);
    assert_eq!(ids, [one, two]);
    assert_eq!(fetch(&mut mcp).0, first, "asked again, the same result");
    relay.post("q", "s", "elsewhere");
    assert_eq!(fetch(&mut mcp).0, first, "another channel's post");
    let three = relay.post("p", "s", "three");
    let (after_post, ids) = fetch(&mut mcp);
    assert_eq!(ids, [one, two, three]);
    assert_eq!(after_post["structuredContent"]["latest_id"], three);
    let r = delete(&relay.url(&format!("/api/messages/{two}")), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fetch(&mut mcp).1, [one, three]);
    relay.stop();
    let tool = std::fs::read_to_string(relay.dir.path("log/claude_codex.log")).unwrap();
    let returned: Vec<(u64, u64)> = tool
        .lines()
        .filter_map(|l| l.split_once(" fetch_messages "))
        .map(|(_, payload)| {
            let v: Value = serde_json::from_str(payload).unwrap();
            (
                v["returned"].as_u64().unwrap(),
                v["latest_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        returned,
        [(2, two), (2, two), (2, two), (3, three), (2, three)],
        "one line per call, cached or not"
    );
}

/// A 2025-03-26 batch sent on its own connection, read whole however large its reply.
fn send_batch(relay: &Relay, mcp: &Mcp, batch: &Value) -> Reply {
    let body = batch.to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Mcp-Session-Id: {}\r\nMCP-Protocol-Version: 2025-03-26\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        mcp.session,
        body.len()
    );
    raw(relay.addr(), request.as_bytes())
}

#[test]
fn a_batch_holds_at_most_128_messages_and_16_mib_of_answers() {
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-03-26");
    let pings: Vec<Value> = (0..129)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let refused = send_batch(&relay, &mcp, &Value::Array(pings.clone()));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("at most 128"), "{}", refused.body);
    let fine = send_batch(&relay, &mcp, &Value::Array(pings[..128].to_vec()));
    assert_eq!(fine.status, 200);
    assert_eq!(fine.json().as_array().unwrap().len(), 128);

    for _ in 0..4 {
        relay.post("big", "codex", &"x".repeat(1_000_000));
    }
    // Each read answers with the four texts, about 4 MB: five answers pass 16 MiB.
    let mut batch: Vec<Value> = (1..=8)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "resources/read",
            "params": {"uri": "relay://channel/big"}})
        })
        .collect();
    batch.push(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let r = send_batch(&relay, &mcp, &Value::Array(batch));
    assert_eq!(r.status, 200);
    let answers = r.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 8);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["id"], i + 1);
        if i < 5 {
            assert!(a["result"]["contents"][0]["text"].is_string(), "answer {i}");
        } else {
            assert_eq!(a["error"]["code"], -32000, "answer {i}");
            assert!(a["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("not run"));
        }
    }
    assert!(r.body.len() < 24_000_000, "{} bytes", r.body.len());
}

/// A request missing a parameter its method needs is invalid params (-32602), however the
/// parameter is missing: no params at all, null params, or params without it.
#[test]
fn a_missing_required_parameter_is_invalid_params() {
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-11-25");
    let needs = [
        ("tools/call", "name"),
        ("resources/read", "uri"),
        ("resources/subscribe", "uri"),
        ("resources/unsubscribe", "uri"),
        ("logging/setLevel", "level"),
    ];
    for (method, needed) in needs {
        for params in [
            None,
            Some(json!(null)),
            Some(json!({})),
            Some(json!({"arguments": {}})),
        ] {
            let mut message = json!({"jsonrpc": "2.0", "id": 7, "method": method});
            if let Some(params) = &params {
                message["params"] = params.clone();
            }
            let r = mcp.send(&message);
            assert_eq!(r.status, 200, "{method} {params:?}: {}", r.body);
            let v = r.json();
            assert_eq!(v["id"], 7, "{method} {params:?}: {v}");
            assert_eq!(v["error"]["code"], -32602, "{method} {params:?}: {v}");
            let text = v["error"]["message"].as_str().unwrap_or_default();
            assert!(text.contains(needed), "{method} {params:?}: {text}");
        }
    }
    let url = relay.url("/mcp");
    for params in [None, Some(json!(null)), Some(json!({"capabilities": {}}))] {
        let mut message = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"});
        if let Some(params) = &params {
            message["params"] = params.clone();
        }
        let r = post_raw(
            &url,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            message.to_string().as_bytes(),
        );
        assert_eq!(r.json()["error"]["code"], -32602, "{params:?}: {}", r.body);
        assert!(r.header("mcp-session-id").is_none(), "{params:?}");
    }
}

/// Params of the wrong shape are invalid params (-32602): not an object, an `initialize` with no
/// protocolVersion string (no session is made), a cursor for the one-page tool list.
#[test]
fn params_of_the_wrong_shape_are_invalid_params() {
    let relay = Relay::memory();
    let url = relay.url("/mcp");
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for version in [json!(5), json!(null)] {
        let r = post_raw(
            &url,
            &headers,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(r.json()["error"]["code"], -32602, "{version}: {}", r.body);
        assert!(r.header("mcp-session-id").is_none(), "{version}");
    }
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let r = mcp.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping", "params": []}));
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.body);
    assert_eq!(r.json()["id"], 2, "{}", r.body);
    let r = mcp.send(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "bogus"}}),
    );
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.body);
    let listed = mcp.request("tools/list", json!({}));
    assert!(listed["result"]["tools"].as_array().unwrap().len() >= 4);
}
