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

#[test]
fn a_line_given_another_channel_or_time_since_the_checkpoint_is_left_out_until_a_full_replay() {
    let dir = TempDir::new("checkpoint-moved");
    let mut config = config_in(&dir);
    // Every read goes to the journal.
    config.cache_bytes = 0;
    let mut relay = Relay::start_in(dir, config.clone());
    for i in 0..400 {
        // Texts of about 1 KB: the edits below lie far from both ends of the journal, where a
        // start from the checkpoint looks.
        let text = format!("message {i:03} {}", "x".repeat(1000));
        relay.post("proj-x", "claude", &text);
    }
    relay.stop();
    let journal = relay.dir.path("data/messages.jsonl");
    let checkpoint = relay.dir.path(CHECKPOINT);
    assert!(checkpoint.exists(), "a clean stop writes the checkpoint");
    // At the same lengths, message 201's line comes to name channel proj-y, and message 150's
    // time changes (its first digit, from 1 to 2).
    let text = std::fs::read_to_string(&journal).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            if line.starts_with("{\"id\":201,") {
                line.replacen("\"target\":\"proj-x\"", "\"target\":\"proj-y\"", 1)
            } else if line.starts_with("{\"id\":150,\"ts\":1") {
                line.replacen("\"ts\":1", "\"ts\":2", 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    let edited = edited.join("\n") + "\n";
    assert_eq!(edited.len(), text.len());
    assert_eq!(
        text.lines()
            .zip(edited.lines())
            .filter(|(a, b)| a != b)
            .count(),
        2,
        "both lines were found"
    );
    std::fs::write(&journal, &edited).unwrap();

    relay.restart(config.clone());
    assert!(checkpoint.exists(), "the start used the checkpoint");
    let page = |relay: &Relay, target: &str, since: u64| -> Vec<(u64, String)> {
        let page = get_json(&relay.url(&format!(
            "/api/messages?target={target}&since_id={since}&limit=10"
        )));
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let target = m["target"].as_str().unwrap().to_string();
                (m["id"].as_u64().unwrap(), target)
            })
            .collect()
    };
    let ids = |page: &[(u64, String)]| -> Vec<u64> { page.iter().map(|(id, _)| *id).collect() };
    let near_201 = page(&relay, "proj-x", 197);
    assert_eq!(
        ids(&near_201),
        [198, 199, 200, 202, 203, 204, 205, 206, 207]
    );
    assert!(near_201.iter().all(|(_, t)| t == "proj-x"), "{near_201:?}");
    assert_eq!(
        ids(&page(&relay, "proj-x", 146)),
        [147, 148, 149, 151, 152, 153, 154, 155, 156]
    );
    assert!(!checkpoint.exists(), "the read removed the checkpoint");

    // The edited lines are whole lines of a journal: a full replay places them where they
    // say, and so does every start after it, from a checkpoint or not.
    for _ in 0..2 {
        relay.restart(config.clone());
        assert_eq!(page(&relay, "proj-y", 0), [(201, "proj-y".to_string())]);
        assert_eq!(
            ids(&page(&relay, "proj-x", 197)),
            [198, 199, 200, 202, 203, 204, 205, 206, 207, 208]
        );
        assert_eq!(
            ids(&page(&relay, "proj-x", 146)),
            [147, 148, 149, 150, 151, 152, 153, 154, 155, 156]
        );
    }
}
