//! The replay checkpoint as an operator meets it: a relay stopped cleanly leaves
//! `messages.checkpoint` next to the journal, and a restart from it serves exactly what a
//! restart that replays the whole journal serves (messages, texts, channels, reader positions,
//! idempotent retries); a damaged checkpoint is not used and is replaced at the next stop.

use crate::common::*;
use serde_json::{json, Value};

const CHECKPOINT: &str = "data/messages.checkpoint";

/// What the relay serves: every channel's messages, the reader's unread counts and positions.
fn served(relay: &Relay) -> Value {
    let channels = get_json(&relay.url("/api/channels"));
    let pages: Vec<Value> = ["a", "b", "c"]
        .iter()
        .map(|t| get_json(&relay.url(&format!("/api/messages?target={t}&limit=500"))))
        .collect();
    let unread = get_json(&relay.url("/api/unread?reader=codex"));
    json!({"channels": channels, "pages": pages, "unread": unread})
}

/// Posts `text` to `target` with an idempotency key; returns the status and the id.
fn post_keyed(relay: &Relay, target: &str, text: &str, key: &str) -> (u16, u64) {
    let (status, body) = post_json(
        &relay.url("/api/messages"),
        &json!({"target": target, "sender": "claude", "text": text, "idempotency_key": key}),
    );
    (status, body["posted"].as_u64().unwrap_or(0))
}

#[test]
fn a_restart_from_the_checkpoint_serves_what_a_full_replay_serves() {
    let dir = TempDir::new("checkpoint");
    let config = config_in(&dir);
    let mut relay = Relay::start_in(dir, config.clone());
    for i in 0..30 {
        let text = format!("message {i}: \"quoted\"\nsecond line ✓");
        post_keyed(&relay, ["a", "b", "c"][i % 3], &text, &format!("k{i}"));
    }
    // The reader `codex` reads channel a; message 4 is deleted.
    get_json(&relay.url("/api/messages?target=a&reader=codex&limit=5"));
    assert_eq!(delete(&relay.url("/api/messages/4"), &[]).status, 200);
    let before = served(&relay);

    relay.restart(config.clone());
    let checkpoint = relay.dir.path(CHECKPOINT);
    assert!(checkpoint.exists(), "a clean stop writes the checkpoint");
    let from_checkpoint = served(&relay);
    assert_eq!(from_checkpoint, before);
    // The keys came back too: a retry names the message it made, and posts nothing new.
    assert_eq!(
        post_keyed(&relay, "b", "message 1: \"quoted\"\nsecond line ✓", "k1"),
        (200, 2)
    );

    // The same journal without the checkpoint: the full replay serves the same.
    std::fs::remove_file(&checkpoint).unwrap();
    relay.restart(config.clone());
    assert_eq!(served(&relay), before);

    // A damaged checkpoint is refused (the full replay serves the same) and replaced.
    relay.restart(config.clone());
    let good = std::fs::read(&checkpoint).unwrap();
    let mut damaged = good.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    assert_eq!(post_keyed(&relay, "c", "after", "k-after").0, 201);
    let expected = served(&relay);
    if let Some(r) = relay.running.take() {
        r.shutdown();
    }
    std::fs::write(&checkpoint, &damaged).unwrap();
    relay.restart(config.clone());
    assert_eq!(served(&relay), expected);
    relay.restart(config);
    assert_ne!(
        std::fs::read(&checkpoint).unwrap(),
        damaged,
        "it was replaced"
    );
    assert_eq!(served(&relay), expected);
    let retry = post_keyed(&relay, "c", "after", "k-after").0;
    assert_eq!(retry, 200, "the key survived both restarts");
}
