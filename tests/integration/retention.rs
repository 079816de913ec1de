//! Retention and compaction: old messages leave memory at once and the journal in the
//! background, posts made meanwhile are carried over, and the id sequence survives it all.

use crate::common::*;
use claude_codex_relay::config::Config;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

fn ids(relay: &Relay, target: &str) -> Vec<u64> {
    let page = get(&relay.url(&format!("/api/messages?target={target}&limit=500"))).json();
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn journal_ids(relay: &Relay) -> Vec<u64> {
    let text = std::fs::read_to_string(relay.dir.path("data/messages.jsonl")).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["id"].as_u64())
        .collect()
}

fn restart_config(relay: &Relay, change: impl Fn(&mut Config)) -> Config {
    let mut c = config_in(&relay.dir);
    c.port = relay.addr().port();
    change(&mut c);
    c
}

#[test]
fn retention_keeps_the_newest_per_channel_across_a_restart() {
    let keep5 = |c: &mut Config| c.retention_max_messages = 5;
    let mut relay = Relay::with(keep5);
    for i in 1..=20 {
        relay.post(
            if i % 2 == 0 { "even" } else { "odd" },
            "s",
            &format!("{i}"),
        );
    }
    relay.app().store.compact_now().unwrap();
    assert_eq!(ids(&relay, "even"), vec![12, 14, 16, 18, 20]);
    assert_eq!(ids(&relay, "odd"), vec![11, 13, 15, 17, 19]);
    let mut on_disk = journal_ids(&relay);
    on_disk.sort();
    assert_eq!(
        on_disk,
        vec![11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
        "the journal was compacted"
    );
    let config = restart_config(&relay, keep5);
    relay.restart(config);
    assert_eq!(ids(&relay, "even"), vec![12, 14, 16, 18, 20]);
    assert_eq!(relay.post("even", "s", "next"), 21, "ids continue");
}

/// Counts the messages installed compactions carried over: appended after the compaction took
/// its copy and before it replaced the journal. A publish hook runs inside the commit, so when
/// it first sees a new journal file, that file is exactly what the install left plus the batch
/// being published: the marker's id, the kept messages up to it, the carried-over ones, then
/// the batch.
fn count_carried_over(relay: &Relay) -> Arc<AtomicU64> {
    use std::os::unix::fs::MetadataExt;
    let carried = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&carried);
    let path = relay.dir.path("data/messages.jsonl");
    let seen = Mutex::new(None);
    relay.app().store.on_publish(Box::new(move |m| {
        let Ok(inode) = std::fs::metadata(&path).map(|meta| meta.ino()) else {
            return;
        };
        let mut seen = seen.lock().unwrap();
        if *seen == Some(inode) {
            return;
        }
        *seen = Some(inode);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let first: Value = serde_json::from_str(lines.next().unwrap_or("{}")).unwrap();
        let Some(marker) = first["last_id"].as_u64() else {
            return;
        };
        let n = lines
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["id"].as_u64())
            .filter(|id| *id > marker && *id < m.id)
            .count();
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }));
    carried
}

#[test]
fn posts_made_while_the_journal_is_rewritten_are_kept() {
    let keep = |c: &mut Config| c.retention_max_messages = 50;
    let mut relay = Relay::with(keep);
    let carried = count_carried_over(&relay);
    let base = relay.base.clone();
    let posters: Vec<_> = (0..4)
        .map(|t| {
            let url = format!("{base}/api/messages");
            let carried = Arc::clone(&carried);
            thread::spawn(move || {
                // Until a compaction has run while posts went on, and past the retention limit.
                let deadline = deadline();
                let mut posted = 0;
                while posted < 300 || carried.load(Ordering::SeqCst) == 0 {
                    assert!(
                        Instant::now() < deadline,
                        "no compaction overlapped {posted} posts"
                    );
                    let body = serde_json::json!({"target": format!("c{t}"), "sender": "s", "text": format!("{posted}")});
                    let (status, _) = post_json(&url, &body);
                    assert_eq!(status, 201);
                    posted += 1;
                }
                posted
            })
        })
        .collect();
    let total: u64 = posters.into_iter().map(|p| p.join().unwrap()).sum();
    assert!(carried.load(Ordering::SeqCst) > 0);
    let config = restart_config(&relay, keep);
    relay.restart(config);
    let mut all = Vec::new();
    for t in 0..4 {
        let kept = ids(&relay, &format!("c{t}"));
        assert_eq!(kept.len(), 50, "c{t} keeps its newest 50");
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        all.extend(kept);
    }
    let on_disk = journal_ids(&relay);
    let unique: std::collections::BTreeSet<u64> = on_disk.iter().copied().collect();
    assert_eq!(
        unique.len(),
        on_disk.len(),
        "no message twice in the journal"
    );
    assert!(
        all.iter().all(|id| unique.contains(id)),
        "every kept message is on disk"
    );
    assert_eq!(relay.post("c0", "s", "after"), total + 1);
}

#[test]
fn age_retention_can_drop_everything_and_the_sequence_survives() {
    let mut relay = Relay::start();
    for i in 1..=3 {
        relay.post("old", "s", &format!("{i}"));
    }
    let aged = |c: &mut Config| c.retention_max_age_days = 1e-12;
    let config = restart_config(&relay, aged);
    relay.restart(config);
    relay.app().store.compact_now().unwrap();
    assert_eq!(ids(&relay, "old"), Vec::<u64>::new());
    assert!(journal_ids(&relay).is_empty());
    let channels = get(&relay.url("/api/channels")).json();
    assert!(
        channels["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "old"),
        "a channel once seen stays listed"
    );
    let config = restart_config(&relay, |_| {});
    relay.restart(config);
    assert_eq!(
        relay.post("new", "s", "x"),
        4,
        "the compaction marker carries the sequence"
    );
}

/// With a cache too small to hold any message, the texts of messages posted while a compaction
/// was being written (and carried over into the new journal) are read back from their new
/// place, before any restart.
#[test]
fn a_message_posted_while_a_compaction_runs_is_readable_after_it() {
    let relay = Relay::with(|c| {
        c.retention_max_messages = 50;
        c.cache_bytes = 1;
    });
    let carried = count_carried_over(&relay);
    let posters: Vec<_> = (0..4)
        .map(|t| {
            let url = relay.url("/api/messages");
            let carried = Arc::clone(&carried);
            thread::spawn(move || {
                let deadline = deadline();
                let mut texts = std::collections::BTreeMap::new();
                while texts.len() < 300 || carried.load(Ordering::SeqCst) == 0 {
                    assert!(Instant::now() < deadline, "no compaction overlapped a post");
                    let text = format!("c{t} post {} \u{2028} \"{}\"", texts.len(), "x".repeat(t));
                    let body =
                        serde_json::json!({"target": format!("c{t}"), "sender": "s", "text": text});
                    let (status, reply) = post_json(&url, &body);
                    assert_eq!(status, 201);
                    texts.insert(reply["posted"].as_u64().unwrap(), text);
                }
                texts
            })
        })
        .collect();
    let texts: Vec<_> = posters.into_iter().map(|p| p.join().unwrap()).collect();
    for (t, texts) in texts.iter().enumerate() {
        let page = get(&relay.url(&format!("/api/messages?target=c{t}&limit=500"))).json();
        let messages = page["messages"].as_array().unwrap();
        // Retention runs every 50 posts, so more may be held until the next run.
        assert!(messages.len() >= 50, "c{t}: {}", messages.len());
        let ids: Vec<u64> = messages.iter().map(|m| m["id"].as_u64().unwrap()).collect();
        let newest: Vec<u64> = texts.keys().rev().take(ids.len()).rev().copied().collect();
        assert_eq!(ids, newest, "c{t} holds its newest messages");
        for m in messages {
            let id = m["id"].as_u64().unwrap();
            assert_eq!(
                m["text"].as_str(),
                Some(texts[&id].as_str()),
                "message {id}"
            );
        }
    }
}
