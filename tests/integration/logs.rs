//! The tool log and the channel archive: their line formats, and rotation by size that keeps
//! the configured number of backups and loses no line.

use crate::common::*;
use claude_codex_relay::config::StoreKind;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file at `current` and its backups `current.1`, `current.2`, ..., newest first.
fn rotation_set(current: &Path) -> Vec<PathBuf> {
    let mut files = vec![current.to_path_buf()];
    for n in 1.. {
        let mut name = current.as_os_str().to_owned();
        name.push(format!(".{n}"));
        let backup = PathBuf::from(name);
        if !backup.exists() {
            break;
        }
        files.push(backup);
    }
    let dir = current.parent().unwrap();
    let stem = current.file_name().unwrap().to_string_lossy().to_string();
    let strays: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&stem))
        .filter(|p| !files.contains(p))
        .collect();
    assert!(strays.is_empty(), "no other files: {strays:?}");
    files
}

#[test]
fn posts_and_fetches_are_logged_in_the_original_formats() {
    let mut relay = Relay::memory();
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
    mcp.call("list_channels", json!({}));
    mcp.call(
        "search_messages",
        json!({"query": "HÉ", "target": "proj-x"}),
    );
    relay.stop();
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
    // Every tool call has its line.
    let payload_of = |event: &str| -> Value {
        let marker = format!(" {event} ");
        let line = tool.lines().find(|l| l.contains(&marker));
        let line = line.unwrap_or_else(|| panic!("a {event} line in {tool}"));
        serde_json::from_str(line.split_once(&marker).unwrap().1).unwrap()
    };
    assert_eq!(payload_of("list_channels"), json!({"returned": 3}));
    assert_eq!(
        payload_of("search_messages"),
        json!({"limit": 20, "query_len": 2, "returned": 1, "target": "proj-x"})
    );
}

/// Posts `n` messages, then stops the relay so that every line is written out.
fn post_many(relay: &mut Relay, n: usize) {
    for i in 0..n {
        relay.post("rot", "s", &format!("message {i} {}", "x".repeat(60)));
    }
    relay.stop();
}

#[test]
fn rotation_loses_no_line() {
    let mut relay = Relay::with(|c| {
        c.channel_log_max_bytes = 2000;
        c.channel_log_backup_count = 1000;
        c.store = StoreKind::Memory;
    });
    post_many(&mut relay, 200);
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

/// The lines of `current` and its backups, oldest first, each parsed by `parse`.
fn lines_in_order<T>(current: &Path, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let mut files = rotation_set(current);
    files.reverse();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| parse(&line))
        .collect()
}

#[test]
fn posts_from_many_clients_are_logged_in_id_order_across_rotations() {
    let mut relay = Relay::with(|c| {
        c.channel_log_max_bytes = 3000;
        c.channel_log_backup_count = 1000;
        c.log_max_bytes = 3000;
        c.log_backup_count = 1000;
    });
    let url = relay.url("/api/messages");
    let (threads, each) = (8, 40);
    std::thread::scope(|s| {
        for t in 0..threads {
            let url = &url;
            s.spawn(move || {
                for i in 0..each {
                    let body = json!({"target": "order", "sender": format!("s{t}"), "text": format!("{t}-{i} {}", "y".repeat(40))});
                    let reply = post_raw(url, &[("Content-Type", "application/json")], body.to_string().as_bytes());
                    assert_eq!(reply.status, 201, "{}", reply.body);
                }
            });
        }
    });
    relay.stop();
    let all: Vec<u64> = (1..=(threads * each) as u64).collect();
    let archive = lines_in_order(&relay.dir.path("log/channel_messages.log"), |line| {
        Some(
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap(),
        )
    });
    assert_eq!(archive, all, "every message once, in id order");
    let tool = lines_in_order(&relay.dir.path("log/claude_codex.log"), |line| {
        let payload = line.split_once(" post_message ")?.1;
        Some(
            serde_json::from_str::<Value>(payload).unwrap()["id"]
                .as_u64()
                .unwrap(),
        )
    });
    assert_eq!(tool, all, "a post_message line each, in id order");
    for log in ["log/channel_messages.log", "log/claude_codex.log"] {
        for f in rotation_set(&relay.dir.path(log)) {
            let len = std::fs::metadata(&f).unwrap().len();
            assert!(
                len < 3000,
                "{f:?} is rotated before a line would take it to the limit: {len}"
            );
        }
    }
}

#[test]
fn rotation_keeps_the_configured_number_of_backups() {
    let mut relay = Relay::with(|c| {
        c.channel_log_max_bytes = 2000;
        c.channel_log_backup_count = 2;
        c.store = StoreKind::Memory;
    });
    post_many(&mut relay, 200);
    let files = rotation_set(&relay.dir.path("log/channel_messages.log"));
    assert_eq!(files.len(), 3, "the current file and 2 backups: {files:?}");
    let oldest: Value = serde_json::from_str(
        std::fs::read_to_string(&files[2])
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let newer: Value = serde_json::from_str(
        std::fs::read_to_string(&files[1])
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        oldest["id"].as_u64() < newer["id"].as_u64(),
        "NAME.2 is older than NAME.1"
    );
    let current = std::fs::read_to_string(relay.dir.path("log/channel_messages.log")).unwrap();
    let newest: Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
    assert_eq!(newest["id"], 200, "the current file has the newest line");
}

#[test]
fn default_relative_log_paths_are_real_files_readable_after_rotation() {
    let dir = TempDir::new("logs-relative");
    // Started in `dir` with the default relative log paths.
    let relay = RelayChild::start(
        &dir,
        &["--store", "memory", "--channel-log-max-bytes", "400"],
    );
    let url = relay.base.clone();
    for i in 1..=12 {
        let (status, _) = post_json(
            &format!("{url}/api/messages"),
            &json!({"target": "rot", "sender": "s", "text": format!("line {i} {}", "y".repeat(40))}),
        );
        assert_eq!(status, 201);
    }
    // Tool-log lines reach the file by themselves shortly after their calls.
    let tool_lines = || {
        std::fs::read_to_string(dir.path("log/claude_codex.log"))
            .unwrap_or_default()
            .matches(" post_message ")
            .count()
    };
    wait_until("12 post_message lines in the tool log", || {
        tool_lines() == 12
    });
    relay.kill();
    for name in ["log/claude_codex.log", "log/channel_messages.log"] {
        let meta = std::fs::symlink_metadata(dir.path(name)).unwrap();
        assert!(meta.file_type().is_file(), "{name} is a plain file");
    }
    let current = std::fs::read_to_string(dir.path("log/channel_messages.log")).unwrap();
    let last: Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
    assert_eq!(last["id"], 12, "the configured path has the newest line");
    let backup = std::fs::read_to_string(dir.path("log/channel_messages.log.1")).unwrap();
    assert!(
        !backup.is_empty() && !backup.contains("\"id\":12,"),
        "the rotated lines are in NAME.1: {backup}"
    );
    assert_eq!(tool_lines(), 12);
}

#[test]
fn an_unwritable_log_folder_stops_start_up_with_exit_2_naming_it() {
    let dir = TempDir::new("logs-unwritable");
    // No one may create a file in /proc/self, root included (a mode of 0o555 would not stop
    // root).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--store", "memory"])
        .args(["--log-path", "/proc/self/claude_codex.log"])
        .current_dir(&dir.0)
        .output()
        .expect("run the relay");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/self/claude_codex.log"), "{err}");
    assert!(err.contains("log_path"), "{err}");
}
