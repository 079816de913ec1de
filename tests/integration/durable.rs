//! Durability as a user meets it: the relay binary runs as a child process on a data directory,
//! is killed with SIGKILL while several threads post, and is started again on the same
//! directory. Every message that got a 2xx must come back exactly once, ids must stay unique
//! and increasing, and the sequence and the channels must survive. Also: the lock that keeps a
//! second relay off a data directory, and a full disk answered with 507, for posts and for
//! reads that would move a reader's position alike.

use crate::common::{agent, config_in, get, get_json, wait_until, Mcp, Relay, RelayChild, TempDir};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Acknowledged posts to collect before the kill, so it lands mid-stream.
const POSTS_BEFORE_KILL: usize = 400;
const POSTERS: usize = 8;
const TARGETS: [&str; 3] = ["crash-a", "crash-b", "crash-c"];

/// The relay binary on `dir`'s data directory and log folder.
fn start(dir: &TempDir) -> RelayChild {
    try_start(dir).unwrap_or_else(|why| panic!("the relay did not start: {why}"))
}

fn try_start(dir: &TempDir) -> Result<RelayChild, String> {
    let (data, tool, channel) = (
        dir.path("data"),
        dir.path("log/tool.log"),
        dir.path("log/channel.log"),
    );
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--log-path",
        tool.to_str().unwrap(),
        "--channel-log-path",
        channel.to_str().unwrap(),
    ];
    RelayChild::try_start(dir, &args, &[])
}

/// Posts a message; returns the status and the JSON answer, or `None` if the connection failed.
fn post(agent: &ureq::Agent, relay_base: &str, target: &str, text: &str) -> Option<(u16, Value)> {
    let mut response = agent
        .post(format!("{relay_base}/api/messages"))
        .send_json(json!({"target": target, "sender": "durable-test", "text": text}))
        .ok()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_json::<Value>().ok()?;
    Some((status, body))
}

/// Every message of `target`, read page by page with `since_id`.
fn all_messages(relay: &RelayChild, target: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    let mut since = 0;
    loop {
        let page = get_json(&relay.url(&format!(
            "/api/messages?target={target}&since_id={since}&limit=500"
        )));
        let messages = page["messages"]
            .as_array()
            .expect("a messages array")
            .clone();
        let Some(last) = messages.last() else {
            return all;
        };
        since = last["id"].as_u64().expect("a numeric id");
        all.extend(messages);
    }
}

/// One acknowledged post: what the relay answered 201 to.
#[derive(Debug, Clone)]
struct Acked {
    id: u64,
    target: String,
    text: String,
}

#[test]
fn sigkill_mid_stream_keeps_every_acknowledged_message() {
    let dir = TempDir::new("durable-crash");
    let relay = start(&dir);
    let (acks, acked) = mpsc::channel::<Acked>();
    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let acks = acks.clone();
            let base = relay.base.clone();
            thread::spawn(move || {
                let agent = agent();
                let mut errors = Vec::new();
                for seq in 0.. {
                    let target = TARGETS[(poster + seq) % TARGETS.len()];
                    let text = format!("poster {poster} message {seq}");
                    match post(&agent, &base, target, &text) {
                        Some((201, body)) => {
                            assert_eq!(body["ok"], true, "{body}");
                            let id = body["posted"].as_u64().expect("a posted id");
                            assert_eq!(body["message"]["id"], id, "{body}");
                            assert_eq!(body["message"]["text"], text.as_str(), "{body}");
                            let ack = Acked {
                                id,
                                target: target.to_string(),
                                text,
                            };
                            if acks.send(ack).is_err() {
                                break;
                            }
                        }
                        // Anything but a 201 is not an acknowledgement; a relay being killed
                        // may also answer a broken response. Only the dead socket stops us.
                        Some((status, body)) => errors.push(format!("{status} {body}")),
                        None => break,
                    }
                }
                errors
            })
        })
        .collect();
    drop(acks);

    let mut acknowledged: Vec<Acked> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.len() < POSTS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match acked.recv_timeout(left) {
            Ok(ack) => acknowledged.push(ack),
            Err(e) => panic!(
                "only {} posts acknowledged before the deadline: {e}",
                acknowledged.len()
            ),
        }
    }
    // The posters are still going: the kill lands mid-stream.
    let (_, stderr) = relay.kill();
    for poster in posters {
        let errors = poster.join().expect("a poster panicked");
        assert!(
            errors.is_empty(),
            "non-201 answers {errors:?}; stderr:\n{stderr}"
        );
    }
    // Acknowledgements that arrived between the count and the kill count too.
    acknowledged.extend(acked.try_iter());
    assert!(acknowledged.len() >= POSTS_BEFORE_KILL);

    let relay = start(&dir);
    let agent = agent();
    let mut seen_ids = BTreeSet::new();
    let mut stored: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for target in TARGETS {
        let messages = all_messages(&relay, target);
        let mut previous = 0;
        for m in &messages {
            let id = m["id"].as_u64().expect("a numeric id");
            assert!(id > previous, "{target}: id {id} after {previous}");
            previous = id;
            assert!(seen_ids.insert(id), "id {id} appears twice");
            assert_eq!(m["target"], target);
            stored.insert(
                id,
                (
                    target.to_string(),
                    m["text"].as_str().expect("a text").to_string(),
                ),
            );
        }
        // The newest page agrees with the paged history.
        let newest = get_json(&relay.url(&format!("/api/messages?target={target}&limit=500")));
        let newest = newest["messages"].as_array().expect("a messages array");
        assert_eq!(
            newest.as_slice(),
            &messages[messages.len().saturating_sub(500)..],
            "{target}: newest page"
        );
    }
    let texts: BTreeSet<&(String, String)> = stored.values().collect();
    assert_eq!(texts.len(), stored.len(), "a message was stored twice");
    for ack in &acknowledged {
        match stored.get(&ack.id) {
            Some((target, text)) => {
                assert_eq!((target, text), (&ack.target, &ack.text), "id {}", ack.id);
            }
            None => panic!(
                "acknowledged message {} ({:?} on {}) is gone after the kill; {} of {} kept",
                ack.id,
                ack.text,
                ack.target,
                stored.len(),
                acknowledged.len()
            ),
        }
    }

    // The sequence continues past everything ever written.
    let top = *stored.keys().next_back().expect("messages");
    let (status, body) = post(&agent, &relay.base, "crash-a", "after the restart").expect("post");
    assert_eq!(status, 201, "{body}");
    assert!(body["posted"].as_u64().expect("an id") > top, "{body}");
}

#[test]
fn restart_keeps_ids_and_channels() {
    let dir = TempDir::new("durable-restart");
    let relay = start(&dir);
    let agent = agent();
    let mut ids = Vec::new();
    for (i, target) in ["kept-one", "kept-two", "kept-one"].iter().enumerate() {
        let (status, body) =
            post(&agent, &relay.base, target, &format!("before {i}")).expect("post");
        assert_eq!(status, 201, "{body}");
        ids.push(body["posted"].as_u64().expect("an id"));
    }
    assert_eq!(ids, [1, 2, 3]);
    relay.kill();

    let relay = start(&dir);
    let channels = get_json(&relay.url("/api/channels"));
    let channels: Vec<&str> = channels["channels"]
        .as_array()
        .expect("a channels array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        channels.contains(&"kept-one") && channels.contains(&"kept-two"),
        "{channels:?}"
    );
    let kept = get_json(&relay.url("/api/messages?target=kept-one"));
    let texts: Vec<&str> = kept["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["before 0", "before 2"]);
    let (status, body) = post(&agent, &relay.base, "kept-two", "after").expect("post");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["posted"], 4, "{body}");
}

#[test]
fn second_relay_on_the_same_data_dir_refuses_to_start() {
    let dir = TempDir::new("durable-lock");
    let first = start(&dir);
    let why = match try_start(&dir) {
        Ok(_) => panic!("a second relay started on a locked data directory"),
        Err(why) => why,
    };
    assert!(why.contains("locked"), "{why}");
    assert!(
        why.contains(&format!("pid {}", first.id())),
        "the message does not name the holder: {why}"
    );
    // The first relay is unaffected.
    let health = agent()
        .get(first.url("/healthz"))
        .call()
        .expect("healthz")
        .body_mut()
        .read_to_string()
        .expect("a body");
    assert_eq!(health.trim(), "ok");
}

#[test]
fn deleting_the_lock_file_does_not_let_a_second_relay_in() {
    let dir = TempDir::new("durable-lock-deleted");
    let first = start(&dir);
    fs::remove_file(dir.path("data/relay.lock")).expect("the lock file exists");
    let why = match try_start(&dir) {
        Ok(_) => panic!("a second relay started once the lock file was deleted"),
        Err(why) => why,
    };
    assert!(why.contains("locked"), "{why}");
    let (status, body) = post(&agent(), &first.base, "t", "still the only writer").expect("post");
    assert_eq!(status, 201, "{body}");
}

#[test]
fn timestamps_read_back_from_the_journal_exactly_as_written() {
    let dir = TempDir::new("durable-ts");
    fs::create_dir_all(dir.path("data")).unwrap();
    // Timestamps like the relay's, written in Rust's shortest round-trip form: each must come
    // back as the very same number (compared bit for bit, as read by Rust's exact parser).
    let written: Vec<String> = (0..2000u64)
        .map(|i| (1_764_000_000.0 + i as f64 * 0.000_123_457_1 + i as f64 * 7.31).to_string())
        .collect();
    let lines: String = written
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            format!(
                "{{\"id\":{},\"ts\":{ts},\"target\":\"t\",\"sender\":\"s\",\"text\":\"x\"}}\n",
                i + 1
            )
        })
        .collect();
    fs::write(dir.path("data/messages.jsonl"), lines).unwrap();
    let relay = start(&dir);
    let mut read = Vec::new();
    let mut since = 0;
    loop {
        let page = get_json(&relay.url(&format!(
            "/api/messages?target=t&since_id={since}&limit=500"
        )));
        let messages = page["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            break;
        }
        since = messages.last().unwrap()["id"].as_u64().unwrap();
        read.extend(messages.into_iter().map(|m| m["ts"].as_f64().unwrap()));
    }
    assert_eq!(read.len(), written.len());
    let changed: Vec<_> = written
        .iter()
        .zip(&read)
        .filter(|(w, r)| w.parse::<f64>().unwrap().to_bits() != r.to_bits())
        .take(3)
        .collect();
    assert!(changed.is_empty(), "written vs read back: {changed:?}");
}

#[test]
fn full_disk_answers_507_and_keeps_serving_reads() {
    let dir = TempDir::new("durable-full");
    fs::create_dir_all(dir.path("data")).expect("create the data directory");
    // Every write to /dev/full fails with ENOSPC, for root too.
    std::os::unix::fs::symlink("/dev/full", dir.path("data").join("messages.jsonl"))
        .expect("symlink the journal to /dev/full");
    let relay = start(&dir);
    let agent = agent();
    let (status, body) = post(&agent, &relay.base, "full-disk", "lost").expect("post");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let error = body["error"].as_str().expect("an error message");
    assert!(error.contains("No space left on device"), "{error}");
    // Not acknowledged, so neither served nor listed.
    let page = get_json(&relay.url("/api/messages?target=full-disk"));
    assert_eq!(page["messages"], json!([]), "{page}");
    let channels = get_json(&relay.url("/api/channels"));
    assert!(
        !channels["channels"]
            .as_array()
            .expect("a channels array")
            .contains(&json!("full-disk")),
        "{channels}"
    );
}

/// The ids of a page's messages.
fn page_ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .expect("a messages array")
        .iter()
        .map(|m| m["id"].as_u64().expect("a numeric id"))
        .collect()
}

#[test]
fn a_reader_the_journal_cannot_move_reads_nothing_and_stays_where_the_journal_has_it() {
    let mut relay = Relay::start();
    for i in 1..=3 {
        relay.post("proj-x", "claude", &format!("text {i}"));
    }
    let first = get_json(&relay.url("/api/messages?target=proj-x&reader=codex&limit=1"));
    assert_eq!(page_ids(&first), [1], "{first}");
    // Another program cuts the journal's last byte (the newline of the position line): the
    // journal takes no more appends, and its lines still say the reader stands at 1.
    let journal = relay.dir.path("data/messages.jsonl");
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open the journal");
    let len = file.metadata().expect("the journal's length").len();
    file.set_len(len - 1).expect("cut the journal");
    let refused = get(&relay.url("/api/messages?target=proj-x&reader=codex"));
    assert_eq!(refused.status, 507, "{}", refused.body);
    let error = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("was cut"), "{error}");
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let called = mcp.call(
        "fetch_messages",
        json!({"target": "proj-x", "reader": "codex"}),
    );
    assert_eq!(called["isError"], true, "{called}");
    // A read without a reader moves nothing and is served as before.
    let plain = get_json(&relay.url("/api/messages?target=proj-x&since_id=0"));
    assert_eq!(page_ids(&plain), [1, 2, 3], "{plain}");
    let unread = get_json(&relay.url("/api/unread?reader=codex"));
    assert_eq!(
        unread["channels"],
        json!([{"target": "proj-x", "unread": 2, "position": 1}]),
        "{unread}"
    );
    // After a restart the reader goes on from where the journal has it, as memory said.
    relay.restart(config_in(&relay.dir));
    let next = get_json(&relay.url("/api/messages?target=proj-x&reader=codex"));
    assert_eq!(page_ids(&next), [2, 3], "{next}");
}

#[test]
fn a_deleted_text_whose_compaction_failed_leaves_the_disk_when_it_is_tried_again_unasked() {
    let dir = TempDir::new("durable-compaction-fails");
    let relay = start(&dir);
    let agent = agent();
    for i in 1..=5 {
        let (status, body) =
            post(&agent, &relay.base, "proj-x", &format!("text {i}")).expect("post");
        assert_eq!(status, 201, "{body}");
    }
    // The compaction's temporary file is /dev/full, which cannot be written (nor cut to
    // nothing, for root too). The failed compaction removes what it could not write.
    let tmp = dir.path("data/messages.jsonl.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmp).expect("symlink the temporary file");
    let deleted = agent
        .delete(relay.url("/api/messages/2"))
        .call()
        .expect("DELETE");
    assert_eq!(deleted.status(), 200);
    wait_until("the compaction was tried", || {
        fs::symlink_metadata(&tmp).is_err()
    });
    // Nothing more is asked of the relay: the compaction is tried again by itself.
    let journal = dir.path("data/messages.jsonl");
    wait_until("the deleted text left the journal", || {
        !fs::read_to_string(&journal).unwrap().contains("text 2")
    });
    let kept = fs::read_to_string(&journal).unwrap();
    for i in [1, 3, 4, 5] {
        assert!(kept.contains(&format!("text {i}")), "{kept}");
    }
    let (_, stderr) = relay.kill();
    assert_eq!(
        stderr.matches("journal compaction failed").count(),
        1,
        "one failure, logged once: {stderr}"
    );
}

#[test]
fn a_read_only_data_directory_stops_start_up_naming_it() {
    let dir = TempDir::new("durable-readonly-dir");
    // A directory no one may create files in, root included; the journal's own refusals while
    // running are covered by the journal's unit tests, which inject the failing writes.
    let data = std::path::Path::new("/proc/self");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--data-dir"])
        .arg(data)
        .arg("--log-path")
        .arg(dir.path("log/t.log"))
        .arg("--channel-log-path")
        .arg(dir.path("log/c.log"))
        .output()
        .expect("run the relay");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write /proc/self/relay.lock"), "{err}");
}
