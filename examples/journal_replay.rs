//! Replay benchmark for the journal: writes 100k and 1M messages with ~200 bytes of text into a
//! journal in a temporary directory, then times `Journal::open` (which replays the whole file),
//! median of three, and prints the journal's bytes per message. Also times single-message
//! appends with `fsync=always` and `never`, the worst case group commit improves on.
//! Run with `cargo run --release --example journal_replay`.

use claude_codex_relay::config::Fsync;
use claude_codex_relay::journal::{Journal, JOURNAL_FILE};
use claude_codex_relay::message::Message;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TARGETS: [&str; 4] = ["proj-x", "codex", "claude", "review-backend"];

fn message(id: u64) -> Message {
    let mut text = format!(
        "Review packet #{id}: summary of the change, then feedback.\n\
         - `src/store.rs`: group commit keeps one fsync per batch; check the \"since_id\" path.\n"
    );
    while text.len() < 200 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(200);
    Message {
        id,
        ts: 1_760_000_000.0 + id as f64 * 0.001,
        target: TARGETS[id as usize % TARGETS.len()].to_string(),
        sender: ["claude", "codex"][(id % 2) as usize].to_string(),
        reply_to: None,
        text,
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("relay-journal-bench-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path, fsync: Fsync) -> (Journal, claude_codex_relay::journal::Replay) {
    Journal::open(dir, fsync).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

fn replay(count: u64) {
    let dir = temp_dir(&format!("replay-{count}"));
    let (mut journal, _) = open(&dir, Fsync::Never);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for id in 1..=count {
        batch.push(message(id));
        if batch.len() == 1000 || id == count {
            journal.append(&batch).expect("append");
            batch.clear();
        }
    }
    let write_time = started.elapsed();
    drop(journal);
    let bytes = fs::metadata(dir.join(JOURNAL_FILE)).expect("journal").len();
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let (journal, replay) = open(&dir, Fsync::Never);
            let took = started.elapsed();
            assert_eq!(replay.messages.len() as u64, count);
            assert_eq!(replay.last_id, count);
            drop((journal, replay));
            took
        })
        .collect();
    times.sort();
    let median = times[1];
    println!(
        "replay {count:>9} messages: median {:>8.1} ms of 3 ({:.0} ms, {:.0} ms, {:.0} ms), \
         {:.2} M msg/s, {:.0} MB/s; journal {:.1} MB = {:.1} bytes/message; written in {:.0} ms \
         (batches of 1000, fsync never)",
        ms(median),
        ms(times[0]),
        ms(times[1]),
        ms(times[2]),
        count as f64 / median.as_secs_f64() / 1e6,
        bytes as f64 / median.as_secs_f64() / 1e6,
        bytes as f64 / 1e6,
        bytes as f64 / count as f64,
        ms(write_time),
    );
    let _ = fs::remove_dir_all(&dir);
}

fn appends(fsync: Fsync, count: u64) {
    let dir = temp_dir(&format!("append-{fsync:?}"));
    let (mut journal, _) = open(&dir, fsync);
    let started = Instant::now();
    for id in 1..=count {
        journal.append(&[message(id)]).expect("append");
    }
    let took = started.elapsed();
    println!(
        "append one message per call, fsync {fsync:?}: {count} in {:.0} ms = {:.0} appends/s \
         ({:.1} µs each)",
        ms(took),
        count as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / count as f64,
    );
    drop(journal);
    let _ = fs::remove_dir_all(&dir);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    replay(100_000);
    replay(1_000_000);
    appends(Fsync::Never, 100_000);
    appends(Fsync::Always, 2_000);
}
