//! Texts that JSON escapes in every way it can come back byte for byte as they were posted.
//! Read back from the journal on disk through compaction, retention, deletion and restarts,
//! they are checked where a test can choose when the journal compacts: the crate's
//! `compaction_tests`.

use crate::common::*;
use serde_json::Value;
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
