//! Compaction seen whole: a relay serving on a real socket with its journal on disk, whose
//! store is made to compact at a chosen moment or is watched from inside by a publish hook.
//! No client can bring about or see those moments, so these checks live beside `start`
//! instead of among the integration tests, which reach the relay only as a library user does.

use crate::config::Config;
use crate::store::Store;
use crate::test_dir::TempDir;
use crate::{start, Running};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long something that must happen may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn deadline() -> Instant {
    Instant::now() + PATIENCE
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into()
}

/// POSTs JSON to `url` and returns the status and the parsed body.
fn post_json(url: &str, body: &Value) -> (u16, Value) {
    let mut reply = agent().post(url).send_json(body).expect("POST");
    let status = reply.status().as_u16();
    (status, reply.body_mut().read_json().expect("a JSON body"))
}

/// A relay on port 0 whose files all live in its own directory.
struct Relay {
    running: Option<Running>,
    dir: TempDir,
    base: String,
}

impl Relay {
    fn with(change: impl Fn(&mut Config)) -> Relay {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut relay = Relay {
            running: None,
            dir,
            base: String::new(),
        };
        let config = relay.config(change);
        relay.restart(config);
        relay
    }

    /// A configuration on port 0 over this relay's directory, which `change` adjusts.
    fn config(&self, change: impl Fn(&mut Config)) -> Config {
        let mut c = Config {
            port: 0,
            log_path: self.dir.0.join("log/claude_codex.log"),
            channel_log_path: self.dir.0.join("log/channel_messages.log"),
            data_dir: self.dir.0.join("data"),
            ..Config::default()
        };
        change(&mut c);
        c
    }

    /// Stops the relay (if it runs) and starts it again on the same directory with `config`.
    fn restart(&mut self, config: Config) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
        // Another test starting a child process at this moment holds a copy of every open
        // descriptor, the data directory's lock among them, until the child runs its program:
        // a start meeting that lock is tried again until the deadline.
        let deadline = deadline();
        let running = loop {
            match start(config.clone()) {
                Ok(running) => break running,
                Err(crate::error::Error::Locked { .. }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("relay starts: {e}"),
            }
        };
        self.base = format!("http://{}", running.addr());
        self.running = Some(running);
    }

    fn store(&self) -> &Store {
        &self.running.as_ref().unwrap().app.store
    }

    /// Applies retention and rewrites the journal now, as a long enough run of posts would.
    fn compact(&self) {
        self.store()
            .compact_now()
            .expect("the journal is rewritten");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Value {
        let mut reply = agent().get(&self.url(path)).call().expect("GET");
        assert_eq!(reply.status(), 200, "GET {path}");
        reply.body_mut().read_json().expect("a JSON body")
    }

    fn post_body(&self, body: Value) -> (u16, Value) {
        post_json(&self.url("/api/messages"), &body)
    }

    fn post(&self, target: &str, sender: &str, text: &str) -> u64 {
        let (status, body) =
            self.post_body(json!({"target": target, "sender": sender, "text": text}));
        assert_eq!(status, 201, "{body}");
        body["posted"].as_u64().unwrap()
    }

    fn delete(&self, path: &str) -> u16 {
        let reply = agent().delete(&self.url(path)).call().expect("DELETE");
        reply.status().as_u16()
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.0.join("data/messages.jsonl")
    }

    fn journal_text(&self) -> String {
        std::fs::read_to_string(self.journal_path()).unwrap()
    }

    /// The ids of the message lines in the journal, in file order.
    fn journal_ids(&self) -> Vec<u64> {
        self.journal_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["id"].as_u64())
            .collect()
    }

    /// The ids `GET /api/messages` lists for `target`, oldest first.
    fn ids(&self, query: &str) -> Vec<u64> {
        ids(&self.get(&format!("/api/messages?{query}")))
    }

    /// Every message of `target` as the REST API returns it, by id.
    fn page(&self, target: &str) -> BTreeMap<u64, Value> {
        let page = self.get(&format!("/api/messages?target={target}&limit=500"));
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_u64().unwrap(), m.clone()))
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

fn ids(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
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
    relay.compact();
    assert_eq!(relay.ids("target=even"), vec![12, 14, 16, 18, 20]);
    assert_eq!(relay.ids("target=odd"), vec![11, 13, 15, 17, 19]);
    let mut on_disk = relay.journal_ids();
    on_disk.sort();
    assert_eq!(
        on_disk,
        vec![11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
        "the journal was compacted"
    );
    let config = relay.config(keep5);
    relay.restart(config);
    assert_eq!(relay.ids("target=even"), vec![12, 14, 16, 18, 20]);
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
    let path = relay.journal_path();
    let seen = Mutex::new(None);
    relay.store().on_publish(Box::new(move |m| {
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

/// Posts from four threads, each to its own channel `c0`..`c3` with the text `text(thread, n)`,
/// until each has made 300 posts and a compaction has carried over messages posted while it ran.
/// Returns each thread's posts, by id.
fn post_until_a_compaction_overlaps(
    relay: &Relay,
    text: fn(usize, usize) -> String,
) -> Vec<BTreeMap<u64, String>> {
    let carried = count_carried_over(relay);
    let posters: Vec<_> = (0..4)
        .map(|t| {
            let url = relay.url("/api/messages");
            let carried = Arc::clone(&carried);
            thread::spawn(move || {
                let deadline = deadline();
                let mut texts = BTreeMap::new();
                while texts.len() < 300 || carried.load(Ordering::SeqCst) == 0 {
                    assert!(
                        Instant::now() < deadline,
                        "no compaction overlapped {} posts",
                        texts.len()
                    );
                    let text = text(t, texts.len());
                    let body = json!({"target": format!("c{t}"), "sender": "s", "text": text});
                    let (status, reply) = post_json(&url, &body);
                    assert_eq!(status, 201);
                    texts.insert(reply["posted"].as_u64().unwrap(), text);
                }
                texts
            })
        })
        .collect();
    let texts = posters.into_iter().map(|p| p.join().unwrap()).collect();
    assert!(carried.load(Ordering::SeqCst) > 0);
    texts
}

#[test]
fn posts_made_while_the_journal_is_rewritten_are_kept() {
    let keep = |c: &mut Config| c.retention_max_messages = 50;
    let mut relay = Relay::with(keep);
    // Past the retention limit, and until a compaction has run while posts went on.
    let posted = post_until_a_compaction_overlaps(&relay, |_, n| format!("{n}"));
    let total = posted.iter().map(BTreeMap::len).sum::<usize>() as u64;
    let config = relay.config(keep);
    relay.restart(config);
    let mut all = Vec::new();
    for t in 0..4 {
        let kept = relay.ids(&format!("target=c{t}&limit=500"));
        assert_eq!(kept.len(), 50, "c{t} keeps its newest 50");
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        all.extend(kept);
    }
    let on_disk = relay.journal_ids();
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
    let mut relay = Relay::with(|_| {});
    for i in 1..=3 {
        relay.post("old", "s", &format!("{i}"));
    }
    let config = relay.config(|c| c.retention_max_age_days = 1e-12);
    relay.restart(config);
    relay.compact();
    assert_eq!(relay.ids("target=old"), Vec::<u64>::new());
    assert!(relay.journal_ids().is_empty());
    let listed = |relay: &Relay| {
        relay.get("/api/channels")["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "old")
    };
    assert!(
        !listed(&relay),
        "a channel retention emptied is listed no more"
    );
    let config = relay.config(|_| {});
    relay.restart(config);
    assert!(!listed(&relay), "nor after a restart");
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
    let texts = post_until_a_compaction_overlaps(&relay, |t, n| {
        format!("c{t} post {n} \u{2028} \"{}\"", "x".repeat(t))
    });
    for (t, texts) in texts.iter().enumerate() {
        let page = relay.get(&format!("/api/messages?target=c{t}&limit=500"));
        let messages = page["messages"].as_array().unwrap();
        // Retention runs every 50 posts, so more may be held until the next run.
        assert!(messages.len() >= 50, "c{t}: {}", messages.len());
        let ids = ids(&page);
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

#[test]
fn an_idempotency_key_survives_a_compaction() {
    let mut relay = Relay::with(|_| {});
    let body = json!({"target": "proj-x", "sender": "claude", "text": "packet 1", "idempotency_key": "k-1"});
    let (status, first) = relay.post_body(body.clone());
    assert_eq!(status, 201, "{first}");
    let id = first["posted"].as_u64().unwrap();
    relay.post("proj-x", "claude", "packet 2");
    relay.compact();
    let config = relay.config(|_| {});
    relay.restart(config);
    let (status, again) = relay.post_body(body);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["posted"], id);
    assert_eq!(again["repeated"], true);
    let (status, conflict) = relay.post_body(
        json!({"target": "proj-x", "sender": "claude", "text": "packet 3", "idempotency_key": "k-1"}),
    );
    assert_eq!(status, 409, "{conflict}");
}

#[test]
fn reading_positions_survive_a_compaction() {
    let mut relay = Relay::with(|_| {});
    for n in 1..=3 {
        relay.post("proj-x", "claude", &format!("m{n}"));
    }
    assert_eq!(relay.ids("target=proj-x&reader=codex&limit=2"), [1, 2]);
    relay.post("other", "claude", "o1");
    relay.compact();
    let config = relay.config(|_| {});
    relay.restart(config);
    assert!(relay.journal_text().contains("\"read\""));
    assert_eq!(relay.ids("target=proj-x&reader=codex"), [3]);
    assert_eq!(relay.ids("target=other&reader=codex"), [4]);
    assert_eq!(relay.get("/api/unread?reader=codex")["total"], 0);
}

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

/// A cache that cannot hold a single message, so every text comes from the journal.
fn uncached(c: &mut Config) {
    c.cache_bytes = 1;
}

#[test]
fn texts_read_back_from_disk_are_byte_identical_after_compaction_retention_deletion_and_restart() {
    let mut relay = Relay::with(uncached);
    let mut posted: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for round in 0..2 {
        for (i, text) in texts().into_iter().enumerate() {
            let target = ["a", "b"][(i + round) % 2];
            posted.insert(relay.post(target, "s", &text), (target.to_string(), text));
        }
    }
    let check = |relay: &Relay, kept: &dyn Fn(u64) -> bool, seen: &BTreeMap<u64, Value>| {
        let mut all = relay.page("a");
        all.extend(relay.page("b"));
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
    let found = relay.get("/api/search?q=%E6%BC%A2%E5%AD%97");
    let hits = found["messages"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{found}");
    for hit in hits {
        assert_eq!(hit, &seen[&hit["id"].as_u64().unwrap()]);
    }

    // A deletion rewrites the journal; the rest is read at its new place.
    let gone = *posted.keys().nth(4).unwrap();
    assert_eq!(relay.delete(&format!("/api/messages/{gone}")), 200);
    relay.compact();
    assert!(
        !relay.journal_ids().contains(&gone),
        "the deleted message left the file"
    );
    check(&relay, &|id| id != gone, &seen);

    // A restart reads the compacted journal.
    let config = relay.config(uncached);
    relay.restart(config);
    check(&relay, &|id| id != gone, &seen);

    // Retention drops the oldest at start and the compaction moves the rest again.
    let config = relay.config(|c| {
        uncached(c);
        c.retention_max_messages = 4;
    });
    relay.restart(config);
    relay.compact();
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
    let config = relay.config(uncached);
    relay.restart(config);
    check(&relay, &|id| kept.contains(&id), &seen);

    // Posts after all that are read back too.
    let id = relay.post("a", "s", "after \u{2028} all");
    assert_eq!(relay.page("a")[&id]["text"], json!("after \u{2028} all"));
}

/// A relay stopped after 400 posts of about 1 KB each on channel `p` (ids to texts), with the
/// checkpoint written at its stop: damage made in the middle of its journal lies far from both
/// ends, where a start from the checkpoint looks.
fn stopped_with_400_long_messages() -> (Relay, BTreeMap<u64, String>) {
    let mut relay = Relay::with(uncached);
    let mut posted = BTreeMap::new();
    for i in 0..400 {
        let text = format!("message {i:03} {}", "x".repeat(1000));
        posted.insert(relay.post("p", "s", &text), text);
    }
    relay.running.take().unwrap().shutdown();
    assert!(relay.dir.0.join("data/messages.checkpoint").exists());
    (relay, posted)
}

/// Writes `damaged` as `relay`'s journal, starts it again, and has a deletion compact the
/// journal: the compaction meets the damage and leaves the journal as it was, only appended to.
fn compacted_over(relay: &mut Relay, damaged: &str) {
    std::fs::write(relay.journal_path(), damaged).unwrap();
    let config = relay.config(uncached);
    relay.restart(config);
    assert_eq!(relay.delete("/api/messages/300"), 200);
    relay.compact();
    assert!(
        relay.journal_text().starts_with(damaged),
        "the compaction that met the damage left the journal as it was, only appended to"
    );
}

#[test]
fn a_compaction_never_writes_a_damaged_line_under_a_kept_messages_id() {
    let (mut relay, posted) = stopped_with_400_long_messages();
    // Message 200's line comes to say it is message 100, at the same length.
    let journal = relay.journal_text();
    let damaged = journal.replacen("{\"id\":200,", "{\"id\":100,", 1);
    assert_ne!(damaged, journal, "the line of message 200 was found");
    compacted_over(&mut relay, &damaged);
    let page = relay.page("p");
    for (id, m) in &page {
        assert_eq!(
            m["text"].as_str(),
            Some(posted[id].as_str()),
            "message {id}"
        );
    }
    relay.running.take().unwrap().shutdown();
    let refused = start(relay.config(uncached))
        .err()
        .expect("the damage is found");
    assert!(
        refused.to_string().contains("does not follow"),
        "a full replay names the damaged line: {refused}"
    );
}

#[test]
fn a_compaction_never_keeps_a_message_under_a_channel_its_line_no_longer_names() {
    let (mut relay, posted) = stopped_with_400_long_messages();
    // Message 200's line comes to name channel q, at the same length.
    let journal = relay.journal_text();
    let line = journal
        .lines()
        .find(|l| l.starts_with("{\"id\":200,"))
        .unwrap();
    let moved = line.replacen("\"target\":\"p\"", "\"target\":\"q\"", 1);
    assert_ne!(moved, line, "the line of message 200 was found");
    let damaged = journal.replacen(line, &moved, 1);
    compacted_over(&mut relay, &damaged);
    let page = relay.page("p");
    assert!(!page.contains_key(&200), "the moved line is left out of p");
    for (id, m) in &page {
        assert_eq!(m["target"], "p", "message {id}");
        assert_eq!(
            m["text"].as_str(),
            Some(posted[id].as_str()),
            "message {id}"
        );
    }
}

#[test]
fn a_reader_asking_again_for_what_it_has_read_writes_nothing_to_the_journal() {
    let relay = Relay::with(|_| {});
    for text in ["one", "two", "three"] {
        relay.post("p", "s", text);
    }
    let reads = |relay: &Relay| {
        relay
            .journal_text()
            .lines()
            .filter(|l| l.starts_with("{\"read\""))
            .count()
    };
    for _ in 0..20 {
        assert_eq!(relay.ids("target=p&reader=r&since_id=1"), [2, 3]);
    }
    assert_eq!(reads(&relay), 1, "only the first read moved the position");
    relay.post("p", "s", "four");
    for _ in 0..20 {
        assert_eq!(relay.ids("target=p&reader=r&since_id=1"), [2, 3, 4]);
    }
    assert_eq!(reads(&relay), 2);
    assert_eq!(relay.ids("target=p&reader=r"), Vec::<u64>::new());
    assert_eq!(reads(&relay), 2);
}
