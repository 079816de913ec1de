//! Figures for the conversation features: `cargo run --release --example conversations_bench`.
//! Search latency over an in-process store of 1k, 100k and 1M messages (~100-byte texts in
//! eight channels, kept in a journal and read back from it), for a query that matches nothing
//! (every text is read) and one whose hits fill the page early; and, measured first while the heap is fresh, the memory (RSS growth) of
//! the idempotency-key table for 100k posts with keys and of 10,000 reader positions kept in
//! the journal and replayed.

use claude_codex_relay::config::Fsync;
use claude_codex_relay::idempotency::{digest, Entry, Keys};
use claude_codex_relay::journal::{Journal, Line, Position};
use claude_codex_relay::message::Message;
use claude_codex_relay::store::{Limits, Store};
use std::time::Instant;

const CHANNELS: [&str; 8] = [
    "proj-x", "proj-y", "codex", "claude", "review-a", "review-b", "ops", "notes",
];

fn message(id: u64) -> Message {
    let mut text = format!(
        "Review packet {id}: the parser change in src/store.rs keeps one fsync per batch; "
    );
    while text.len() < 100 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(100);
    Message {
        id,
        ts: 1_760_000_000.0 + id as f64 * 0.001,
        target: CHANNELS[id as usize % CHANNELS.len()].to_string(),
        sender: ["claude", "codex"][(id % 2) as usize].to_string(),
        reply_to: None,
        text,
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Median and worst of `runs` timings of `f`, in milliseconds.
fn time(runs: usize, mut f: impl FnMut() -> usize) -> (f64, f64, usize) {
    let mut ms = Vec::with_capacity(runs);
    let mut hits = 0;
    for _ in 0..runs {
        let start = Instant::now();
        hits = f();
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[ms.len() / 2], ms[ms.len() - 1], hits)
}

fn main() {
    let before = rss_kib();
    let mut keys = Keys::default();
    let now = 1_760_000_000.0;
    for id in 1..=100_000u64 {
        let key = format!("cli-12345-{}-{id}", 1_760_000_000_000_000_000u64 + id);
        keys.remember(
            ["claude", "codex"][(id % 2) as usize],
            &key,
            Entry {
                id,
                digest: digest("proj-x", None, &key),
            },
            now,
            now,
        );
    }
    let after = rss_kib();
    println!(
        "idempotency keys: {} keys of ~36 characters take {} KiB ({:.0} bytes each)",
        keys.len(),
        after - before,
        (after - before) as f64 * 1024.0 / keys.len() as f64
    );

    let dir = std::env::temp_dir().join(format!("relay-conv-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let (mut journal, _) = Journal::open(&dir, Fsync::Never).expect("journal");
        let positions: Vec<Position> = (0..10_000)
            .map(|i| Position {
                reader: format!("agent-{}", i / 100),
                target: format!("channel-{}", i % 100),
                id: i as u64 + 1,
            })
            .collect();
        let lines: Vec<Line> = positions.iter().map(Line::Read).collect();
        journal.append_lines(&lines).expect("append");
    }
    let before = rss_kib();
    let (journal, replay) = Journal::open(&dir, Fsync::Never).expect("journal");
    let store = Store::new(Some(journal), replay, &[], Limits::default());
    let after = rss_kib();
    println!(
        "reader positions: 10,000 (100 readers x 100 channels) take {} KiB once replayed",
        after - before
    );
    store.close();
    let _ = std::fs::remove_dir_all(&dir);

    println!("search (in-process store over a journal, limit 50; texts are read from the file)");
    println!(
        "{:>9}  {:>28}  {:>28}  {:>28}",
        "stored", "miss: median / max ms", "hit: median / max ms", "miss in one channel"
    );
    for n in [1_000u64, 100_000, 1_000_000] {
        let dir = std::env::temp_dir().join(format!("relay-search-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let (mut journal, _) = Journal::open(&dir, Fsync::Never).expect("journal");
            let all: Vec<Message> = (1..=n).map(message).collect();
            for batch in all.chunks(10_000) {
                journal.append(batch).expect("append");
            }
        }
        let (journal, replay) = Journal::open(&dir, Fsync::Never).expect("journal");
        let store = Store::new(Some(journal), replay, &[], Limits::default());
        let runs = if n >= 1_000_000 { 7 } else { 21 };
        let miss = time(runs, || store.search("no such words", None, None, 50).len());
        let hit = time(runs, || store.search("PARSER change", None, None, 50).len());
        let one = time(runs, || {
            store
                .search("no such words", Some("proj-x"), None, 50)
                .len()
        });
        println!(
            "{n:>9}  {:>12.2} / {:>8.2} ({} hits)  {:>12.2} / {:>8.2} ({} hits)  {:>12.2} / {:>8.2}",
            miss.0, miss.1, miss.2, hit.0, hit.1, hit.2, one.0, one.1
        );
        store.close();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
