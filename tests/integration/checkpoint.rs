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

#[test]
fn a_read_that_meets_damage_leaves_the_message_out_and_the_next_start_replays_in_full() {
    let dir = TempDir::new("checkpoint-damage");
    let mut config = config_in(&dir);
    // Every read goes to the journal.
    config.cache_bytes = 0;
    let mut relay = Relay::start_in(dir, config.clone());
    for i in 0..400 {
        // Texts of about 1 KB: the damage below lies far from both ends of the journal, where
        // a start from the checkpoint looks.
        relay.post(
            "a",
            "claude",
            &format!("message {i:03} {}", "x".repeat(1000)),
        );
    }
    relay.stop();
    let journal = relay.dir.path("data/messages.jsonl");
    let checkpoint = relay.dir.path(CHECKPOINT);
    assert!(checkpoint.exists(), "a clean stop writes the checkpoint");
    // Message 200's line comes to say it is message 100, at the same length.
    let text = std::fs::read_to_string(&journal).unwrap();
    let damaged = text.replacen("{\"id\":200,", "{\"id\":100,", 1);
    assert_ne!(damaged, text, "the line of message 200 was found");
    std::fs::write(&journal, &damaged).unwrap();

    relay.restart(config.clone());
    assert!(checkpoint.exists(), "the start used the checkpoint");
    let page = get_json(&relay.url("/api/messages?target=a&since_id=195&limit=10"));
    let ids: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [196, 197, 198, 199, 201, 202, 203, 204, 205]);
    assert!(!checkpoint.exists(), "the read removed the checkpoint");
    relay.stop();
    assert!(
        !checkpoint.exists(),
        "the stop could not write a checkpoint of a damaged journal"
    );
    let refused = claude_codex_relay::start(config)
        .err()
        .expect("the damage is found");
    assert!(
        refused.to_string().contains("does not follow"),
        "a full replay names the damaged line: {refused}"
    );
}
