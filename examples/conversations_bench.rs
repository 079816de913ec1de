//! Figures for the conversation features, measured on a relay started in-process with the
//! library's `start` and driven over HTTP: `cargo run --release --example conversations_bench`.
//! Search latency (`GET /api/search`, limit 50) over 1k, 100k and 1M stored messages (~100-byte
//! texts in eight channels, kept in a journal and read back from it), for a query that matches
//! nothing (every text is read), one whose hits fill the page early, and a miss within one
//! channel; and, measured first while the heap is fresh, the memory (RSS growth) of the
//! idempotency-key table for 100k posts with keys (over the same posts without keys) and of
//! 10,000 reader positions replayed from the journal (over a start with none).

#[path = "support/relay_dir.rs"]
mod relay_dir;

use claude_codex_relay::config::StoreKind;
use relay_dir::{
    agent, get_json, held, message_line, position_line, post, write_journal, RelayDir,
};
use serde_json::json;
use std::time::Instant;

const CHANNELS: [&str; 8] = [
    "proj-x", "proj-y", "codex", "claude", "review-a", "review-b", "ops", "notes",
];

fn text(id: u64) -> String {
    let mut text = format!(
        "Review packet {id}: the parser change in src/store.rs keeps one fsync per batch; "
    );
    while text.len() < 100 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(100);
    text
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

/// RSS growth of 100k posts with idempotency keys, less that of as many posts without.
fn idempotency_keys() {
    const POSTS: u64 = 100_000;
    let dir = RelayDir::new("conv-keys");
    let mut config = dir.config();
    config.store = StoreKind::Memory;
    let (running, base) = dir.start(config);
    let agent = agent();
    let url = format!("{base}/api/messages");
    let growth = |keyed: bool| {
        let before = rss_kib();
        for id in 1..=POSTS {
            let sender = ["claude", "codex"][(id % 2) as usize];
            let mut body = json!({"target": "proj-x", "sender": sender, "text": text(id)});
            if keyed {
                body["idempotency_key"] = json!(format!(
                    "cli-12345-{}-{id}",
                    1_760_000_000_000_000_000u64 + id
                ));
            }
            post(&agent, &url, &body);
        }
        rss_kib() - before
    };
    let plain = growth(false);
    let keyed = growth(true);
    let keys = keyed.saturating_sub(plain);
    println!(
        "idempotency keys: {POSTS} keys of ~36 characters take {keys} KiB ({:.0} bytes each): \
         {keyed} KiB for {POSTS} posts with keys, {plain} KiB for as many without",
        keys as f64 * 1024.0 / POSTS as f64
    );
    running.shutdown();
}

/// RSS growth of a start replaying 10,000 reader positions, less that of a start with none.
fn reader_positions() {
    let growth = |positions: usize| {
        let dir = RelayDir::new(&format!("conv-positions-{positions}"));
        write_journal(
            &dir.data(),
            (0..positions).map(|i| {
                position_line(
                    &format!("agent-{}", i / 100),
                    &format!("channel-{}", i % 100),
                    i as u64 + 1,
                )
            }),
        );
        let before = rss_kib();
        let (running, _) = dir.start(dir.config());
        let grew = rss_kib() - before;
        running.shutdown();
        grew
    };
    let none = growth(0);
    let replayed = growth(10_000);
    println!(
        "reader positions: 10,000 (100 readers x 100 channels) take {} KiB once replayed \
         ({replayed} KiB for the start, {none} KiB for a start with none)",
        replayed.saturating_sub(none)
    );
}

fn search() {
    println!("search (GET /api/search, limit 50; texts are read from the journal)");
    println!(
        "{:>9}  {:>28}  {:>28}  {:>28}",
        "stored", "miss: median / max ms", "hit: median / max ms", "miss in one channel"
    );
    let agent = agent();
    for n in [1_000u64, 100_000, 1_000_000] {
        let dir = RelayDir::new("conv-search");
        write_journal(
            &dir.data(),
            (1..=n).map(|id| {
                message_line(
                    id,
                    1_760_000_000.0 + id as f64 * 0.001,
                    CHANNELS[id as usize % CHANNELS.len()],
                    ["claude", "codex"][(id % 2) as usize],
                    &text(id),
                )
            }),
        );
        let (running, base) = dir.start(dir.config());
        assert_eq!(held(&agent, &base), n);
        let hits = |query: &str| {
            let found = get_json(&agent, &format!("{base}/api/search?{query}&limit=50"));
            found["messages"].as_array().map_or(0, Vec::len)
        };
        let runs = if n >= 1_000_000 { 7 } else { 21 };
        let miss = time(runs, || hits("q=no+such+words"));
        let hit = time(runs, || hits("q=PARSER+change"));
        let one = time(runs, || hits("q=no+such+words&target=proj-x"));
        println!(
            "{n:>9}  {:>12.2} / {:>8.2} ({} hits)  {:>12.2} / {:>8.2} ({} hits)  {:>12.2} / {:>8.2}",
            miss.0, miss.1, miss.2, hit.0, hit.1, hit.2, one.0, one.1
        );
        running.shutdown();
    }
}

fn main() {
    idempotency_keys();
    reader_positions();
    search();
}
