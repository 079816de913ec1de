//! Texts that JSON escapes in every way it can come back byte for byte as they were posted.
//! Read back from the journal on disk through compaction, retention, deletion and restarts,
//! they are checked where a test can choose when the journal compacts: the crate's
//! `compaction_tests`.

use crate::common::*;
use claude_codex_relay::config::Config;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Texts that JSON escapes in every way it can, and some that it does not escape at all.
fn texts() -> Vec<String> {
    vec![
        "plain".to_string(),
        "quotes \" and \\ backslashes \\\" mixed".to_string(),
        "line\nbreaks\r\nand\ttabs".to_string(),
        "unicode ✓ é 漢字 🎉 and a BOM \u{feff}".to_string(),
        "separators \u{2028} and \u{2029} in the text".to_string(),
        "control characters \u{1} \u{1f} \u{7f}".to_string(),
        "{\"id\":1,\"text\":\"a journal line inside a text\"}\n".to_string(),
        "  leading and trailing spaces  ".to_string(),
        "big ".repeat(50_000),
    ]
}

/// A configuration over `dir` whose cache holds nothing, so every text is read from disk.
fn uncached(dir: &TempDir, change: impl Fn(&mut Config)) -> Config {
    let mut c = config_in(dir);
    c.cache_bytes = 1;
    change(&mut c);
    c
}

/// Every message of `target` as the REST API returns it, by id.
fn page(relay: &Relay, target: &str) -> BTreeMap<u64, Value> {
    let page = get_json(&relay.url(&format!("/api/messages?target={target}&limit=500")));
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m.clone()))
        .collect()
}

#[test]
fn a_memory_store_returns_the_same_texts() {
    let relay = Relay::memory();
    let mut posted = BTreeMap::new();
    for text in texts() {
        posted.insert(relay.post("a", "s", &text), text);
    }
    let all = page(&relay, "a");
    assert_eq!(all.len(), posted.len());
    for (id, m) in all {
        assert_eq!(m["text"].as_str().unwrap(), posted[&id]);
    }
}

/// A message's JSON as every reply sends it: the fields in this order, `reply_to` only when
/// set, strings escaped as `serde_json` escapes them and U+2028/U+2029 as `\u2028`/`\u2029`.
fn wire(id: u64, ts: f64, target: &str, sender: &str, reply_to: Option<u64>, text: &str) -> String {
    let s = |v: &str| serde_json::to_string(v).unwrap();
    let reply = reply_to.map_or(String::new(), |r| format!(",\"reply_to\":{r}"));
    format!(
        "{{\"id\":{id},\"ts\":{},\"target\":{},\"sender\":{}{reply},\"text\":{}}}",
        serde_json::to_string(&ts).unwrap(),
        s(target),
        s(sender),
        s(text)
    )
    .replace('\u{2028}', "\\u2028")
    .replace('\u{2029}', "\\u2029")
}

/// The body of `GET /api/messages` for `messages` (the whole channel `target`).
fn wire_page(target: &str, messages: &[String], head_id: u64) -> String {
    format!(
        "{{\"target\":{},\"messages\":[{}],\"head_id\":{head_id},\"more\":false}}",
        serde_json::to_string(target).unwrap(),
        messages.join(",")
    )
}

/// The raw body of the oldest page of `target` (every message of it).
fn page_bytes(relay: &Relay, target: &str) -> String {
    let r = get(&relay.url(&format!(
        "/api/messages?target={target}&since_id=0&limit=500"
    )));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[test]
fn a_page_is_the_same_bytes_as_posted_from_the_cache_and_from_the_journal() {
    let dir = TempDir::new("wire");
    let config = config_in(&dir);
    let mut relay = Relay::start_in(dir, config);
    // Some posts carry an idempotency key, which their journal lines hold and replies do not,
    // and one is a reply.
    let mut expected = Vec::new();
    let mut head = 0;
    for (i, text) in texts().into_iter().enumerate() {
        let mut body = json!({"target": "a", "sender": "s", "text": text});
        if i % 2 == 0 {
            body["idempotency_key"] = json!(format!("key-{i}"));
        }
        if i == 3 {
            body["reply_to"] = json!(head);
        }
        let (status, posted) = post_json(&relay.url("/api/messages"), &body);
        assert_eq!(status, 201, "{posted}");
        let m = &posted["message"];
        head = m["id"].as_u64().unwrap();
        let reply_to = m["reply_to"].as_u64();
        assert_eq!(reply_to.is_some(), i == 3);
        let ts = m["ts"].as_f64().unwrap();
        expected.push(wire(head, ts, "a", "s", reply_to, &text));
    }
    let expected = wire_page("a", &expected, head);
    // Posted messages are held as they were posted; the first read makes their JSON, the
    // second finds it made.
    assert_eq!(page_bytes(&relay, "a"), expected, "as posted");
    assert_eq!(page_bytes(&relay, "a"), expected, "from the JSON cached");
    // After a restart the cache is empty: the texts come from the journal's lines.
    let port = relay.addr().port();
    relay.restart(Config {
        port,
        ..config_in(&relay.dir)
    });
    assert_eq!(page_bytes(&relay, "a"), expected, "read from the journal");
    assert_eq!(page_bytes(&relay, "a"), expected, "cached from the journal");
    // Other readers find the same messages in what REST cached.
    let found = get_json(&relay.url("/api/search?q=backslashes&target=a"));
    let page: Value = serde_json::from_str(&expected).unwrap();
    assert_eq!(found["messages"], json!([page["messages"][1]]));
    // With no room in the cache, every read goes to the journal.
    relay.restart(uncached(&relay.dir, |c| c.port = port));
    assert_eq!(page_bytes(&relay, "a"), expected, "never cached");
    assert_eq!(page_bytes(&relay, "a"), expected, "never cached, again");
}

#[test]
fn journal_lines_in_another_field_order_or_escaping_are_sent_as_this_build_writes_them() {
    let texts = texts();
    // Lines as other writers make them: keys in alphabetical order (a `serde_json::Value`),
    // escapes `serde_json` does not write (`\/`, `\u00e9`, a surrogate pair, `\u000a` for a
    // newline), a `reply_to` of null, and one line as this build writes it, with a key.
    let lines = [
        serde_json::to_string(&json!({"id": 1, "ts": 1.7e9, "target": "a", "sender": "old", "text": texts[1]}))
            .unwrap(),
        r#"{"id":2,"ts":1700000001.25,"target":"a","sender":"old","text":"caf\u00e9 \/ \ud83c\udf89 \u2028 x\u000ay"}"#
            .to_string(),
        format!(
            r#"{{"id":3,"ts":1700000002.5,"target":"a","sender":"old","reply_to":null,"text":{}}}"#,
            serde_json::to_string(&texts[2]).unwrap()
        ),
        format!(
            r#"{{"id":4,"ts":1700000003.75,"target":"a","sender":"old","reply_to":3,"key":"k-4","text":{}}}"#,
            serde_json::to_string(&texts[4]).unwrap()
        ),
    ];
    let expected = wire_page(
        "a",
        &[
            wire(1, 1.7e9, "a", "old", None, &texts[1]),
            wire(
                2,
                1700000001.25,
                "a",
                "old",
                None,
                "café / 🎉 \u{2028} x\ny",
            ),
            wire(3, 1700000002.5, "a", "old", None, &texts[2]),
            wire(4, 1700000003.75, "a", "old", Some(3), &texts[4]),
        ],
        4,
    );
    for cache_bytes in [8 * 1024 * 1024, 1] {
        let dir = TempDir::new("older");
        std::fs::create_dir_all(dir.path("data")).unwrap();
        std::fs::write(dir.path("data/messages.jsonl"), lines.join("\n") + "\n").unwrap();
        let mut config = config_in(&dir);
        config.cache_bytes = cache_bytes;
        let relay = Relay::start_in(dir, config);
        assert_eq!(
            page_bytes(&relay, "a"),
            expected,
            "cache of {cache_bytes} bytes"
        );
        assert_eq!(page_bytes(&relay, "a"), expected, "again");
    }
}

#[test]
fn a_journal_whose_last_line_lacks_its_newline_is_served_whole_and_kept_so() {
    let dir = TempDir::new("no-final-newline");
    std::fs::create_dir_all(dir.path("data")).unwrap();
    // A journal made by hand (or by an export), its last line whole but without a newline.
    let made = [
        r#"{"id":1,"ts":1700000000.5,"target":"a","sender":"old","text":"first"}"#,
        r#"{"id":2,"ts":1700000001.5,"target":"a","sender":"old","text":"last, \"quoted\""}"#,
    ]
    .join("\n");
    let journal = dir.path("data/messages.jsonl");
    std::fs::write(&journal, &made).unwrap();
    let config = uncached(&dir, |_| {});
    let mut relay = Relay::start_in(dir, config.clone());
    let texts = |relay: &Relay| -> Vec<String> {
        page(relay, "a")
            .values()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(texts(&relay), ["first", "last, \"quoted\""]);
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        made.clone() + "\n"
    );
    assert_eq!(relay.post("a", "new", "after"), 3);
    relay.restart(config);
    assert_eq!(texts(&relay), ["first", "last, \"quoted\"", "after"]);
}
