//! Texts kept in the journal and read back from it on demand: with a cache too small to hold
//! any message, every read goes to the file, and what comes back is byte for byte what was
//! posted, through compaction, retention, deletion and restarts.

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

/// A relay whose cache cannot hold a single message, so every text comes from the journal.
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
fn texts_read_back_from_disk_are_byte_identical_after_compaction_retention_deletion_and_restart() {
    let dir = TempDir::new("texts");
    let config = uncached(&dir, |_| {});
    let mut relay = Relay::start_in(dir, config);
    let mut posted: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for round in 0..2 {
        for (i, text) in texts().into_iter().enumerate() {
            let target = ["a", "b"][(i + round) % 2];
            posted.insert(relay.post(target, "s", &text), (target.to_string(), text));
        }
    }
    let check = |relay: &Relay, kept: &dyn Fn(u64) -> bool, seen: &BTreeMap<u64, Value>| {
        let mut all = page(relay, "a");
        all.extend(page(relay, "b"));
        let expected: Vec<u64> = posted.keys().copied().filter(|id| kept(*id)).collect();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), expected);
        for (id, m) in &all {
            let (target, text) = &posted[id];
            assert_eq!(m["text"].as_str().unwrap(), text, "message {id}");
            assert_eq!(m["target"].as_str().unwrap(), target, "message {id}");
            if let Some(before) = seen.get(id) {
                assert_eq!(m, before, "message {id} is what it was");
            }
        }
        all
    };
    let seen = check(&relay, &|_| true, &BTreeMap::new());

    // Search reads the texts back the same way.
    let found = get_json(&relay.url("/api/search?q=%E6%BC%A2%E5%AD%97"));
    let hits = found["messages"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{found}");
    for hit in hits {
        assert_eq!(hit, &seen[&hit["id"].as_u64().unwrap()]);
    }

    // A deletion rewrites the journal; the rest is read at its new place.
    let gone = *posted.keys().nth(4).unwrap();
    let r = delete(&relay.url(&format!("/api/messages/{gone}")), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    relay.app().store.compact_now().unwrap();
    let on_disk = std::fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap();
    assert!(
        on_disk
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).unwrap()["id"] != json!(gone)),
        "the deleted message left the file"
    );
    check(&relay, &|id| id != gone, &seen);

    // A restart reads the compacted journal.
    let config = uncached(&relay.dir, |c| c.port = relay.addr().port());
    relay.restart(config);
    check(&relay, &|id| id != gone, &seen);

    // Retention drops the oldest at start and the compaction moves the rest again.
    let config = uncached(&relay.dir, |c| {
        c.port = relay.addr().port();
        c.retention_max_messages = 4;
    });
    relay.restart(config);
    relay.app().store.compact_now().unwrap();
    let newest = |target: &str| -> Vec<u64> {
        let mut ids: Vec<u64> = posted
            .iter()
            .filter(|(id, (t, _))| t == target && **id != gone)
            .map(|(id, _)| *id)
            .collect();
        ids.split_off(ids.len() - 4)
    };
    let kept: Vec<u64> = [newest("a"), newest("b")].concat();
    check(&relay, &|id| kept.contains(&id), &seen);
    let config = uncached(&relay.dir, |c| c.port = relay.addr().port());
    relay.restart(config);
    check(&relay, &|id| kept.contains(&id), &seen);

    // Posts after all that are read back too.
    let id = relay.post("a", "s", "after \u{2028} all");
    assert_eq!(page(&relay, "a")[&id]["text"], json!("after \u{2028} all"));
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
