//! The tool log and the channel archive: their line formats, and rotation by size that keeps
//! the configured number of backups and loses no line.

use crate::common::*;
use claude_codex_relay::config::StoreKind;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every file of the rotation set behind the symlink `current` (`x_rCURRENT.log`, `x_r*.log`).
fn rotation_set(current: &Path) -> Vec<PathBuf> {
    let dir = current.parent().unwrap();
    let stem = current.file_stem().unwrap().to_string_lossy().to_string();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with(&format!("{stem}_r")) && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn posts_and_fetches_are_logged_in_the_original_formats() {
    let relay = Relay::memory();
    relay.post("proj-x", "claude", "héllo");
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    mcp.call(
        "post_message",
        json!({"target": "proj-x", "sender": "codex", "text": "ok"}),
    );
    mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "since_id": 0, "limit": 10}),
    );
    relay.app().logs.flush();
    let archive = std::fs::read_to_string(relay.dir.path("log/channel_messages.log")).unwrap();
    let lines: Vec<Value> = archive
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["source"], "rest");
    assert_eq!(lines[1]["source"], "mcp");
    for key in ["id", "ts", "target", "sender", "text", "source"] {
        assert!(lines[0].get(key).is_some(), "archive line has {key}");
    }
    let tool = std::fs::read_to_string(relay.dir.path("log/claude_codex.log")).unwrap();
    let post = tool
        .lines()
        .find(|l| l.contains(" post_message "))
        .expect("a post_message line");
    assert_eq!(
        post.split(' ').nth(2),
        Some("INFO"),
        "timestamp and level first: {post}"
    );
    let payload: Value =
        serde_json::from_str(post.split_once(" post_message ").unwrap().1).unwrap();
    assert_eq!(
        payload,
        json!({"id": 1, "target": "proj-x", "sender": "claude", "text_len": 5, "source": "rest"})
    );
    let fetch = tool
        .lines()
        .find(|l| l.contains(" fetch_messages "))
        .expect("a fetch_messages line");
    let payload: Value =
        serde_json::from_str(fetch.split_once(" fetch_messages ").unwrap().1).unwrap();
    assert_eq!(
        payload,
        json!({"target": "proj-x", "since_id": 0, "limit": 10, "returned": 2, "latest_id": 2})
    );
    assert!(
        !tool.contains("/api/messages"),
        "polling routes are not access-logged"
    );
}

fn post_many(relay: &Relay, n: usize) {
    for i in 0..n {
        relay.post("rot", "s", &format!("message {i} {}", "x".repeat(60)));
    }
    relay.app().logs.flush();
}

#[test]
fn rotation_loses_no_line() {
    let relay = Relay::with(|c| {
        c.channel_log_max_bytes = 2000;
        c.channel_log_backup_count = 1000;
        c.store = StoreKind::Memory;
    });
    post_many(&relay, 200);
    let files = rotation_set(&relay.dir.path("log/channel_messages.log"));
    assert!(files.len() > 5, "it rotated: {files:?}");
    let mut ids = BTreeSet::new();
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{f:?}: {e}: {line}"));
            assert!(ids.insert(v["id"].as_u64().unwrap()), "no line twice");
        }
        assert!(
            std::fs::metadata(f).unwrap().len() <= 2000 + 200,
            "{f:?} stays near the limit"
        );
    }
    assert_eq!(ids, (1..=200).collect(), "every line is somewhere");
}

#[test]
fn rotation_keeps_the_configured_number_of_backups() {
    let relay = Relay::with(|c| {
        c.channel_log_max_bytes = 2000;
        c.channel_log_backup_count = 2;
        c.store = StoreKind::Memory;
    });
    post_many(&relay, 200);
    let files = rotation_set(&relay.dir.path("log/channel_messages.log"));
    assert_eq!(files.len(), 3, "the current file and 2 backups: {files:?}");
    let current = std::fs::read_to_string(relay.dir.path("log/channel_messages.log")).unwrap();
    let newest: Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
    assert_eq!(newest["id"], 200, "the current file has the newest line");
}
