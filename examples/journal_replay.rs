//! Start-up benchmark for the journal, through the library's `start` as an embedder calls it:
//! writes journals of 100k and 1M messages with ~200 bytes of text (in the format a relay
//! writes), then times `start` replaying the whole file (the start-up checkpoint removed first)
//! and `start` reading the checkpoint a stopped relay leaves, median of three each, and prints
//! the journal's bytes per message. Also times single posts, one request at a time over HTTP,
//! with `fsync` always and never: the worst case group commit improves on.
//! Run with `cargo run --release --example journal_replay`.

#[path = "support/relay_dir.rs"]
mod relay_dir;

use claude_codex_relay::config::Fsync;
use relay_dir::{agent, held, message_line, post, write_journal, RelayDir, CHECKPOINT};
use std::time::{Duration, Instant};

const TARGETS: [&str; 4] = ["proj-x", "codex", "claude", "review-backend"];

fn text(id: u64) -> String {
    let mut text = format!(
        "Review packet #{id}: summary of the change, then feedback.\n\
         - `src/store.rs`: group commit keeps one fsync per batch; check the \"since_id\" path.\n"
    );
    while text.len() < 200 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(200);
    text
}

fn line(id: u64) -> String {
    message_line(
        id,
        1_760_000_000.0 + id as f64 * 0.001,
        TARGETS[id as usize % TARGETS.len()],
        ["claude", "codex"][(id % 2) as usize],
        &text(id),
    )
}

/// Median of three `start`s over `dir` (the checkpoint removed first when `replay`), each
/// checked to hold `count` messages and stopped again.
fn starts(dir: &RelayDir, count: u64, replay: bool) -> [Duration; 3] {
    let agent = agent();
    let mut times = [0; 3].map(|_| {
        if replay {
            let _ = std::fs::remove_file(dir.data().join(CHECKPOINT));
        }
        let started = Instant::now();
        let (running, base) = dir.start(dir.config());
        let took = started.elapsed();
        assert_eq!(held(&agent, &base), count);
        running.shutdown();
        took
    });
    times.sort();
    times
}

fn replay(count: u64) {
    let dir = RelayDir::new(&format!("replay-{count}"));
    let started = Instant::now();
    let bytes = write_journal(&dir.data(), (1..=count).map(line));
    let write_time = started.elapsed();
    let full = starts(&dir, count, true);
    let checkpointed = starts(&dir, count, false);
    let median = full[1];
    println!(
        "start replaying {count:>9} messages: median {:>8.1} ms of 3 ({:.0} ms, {:.0} ms, {:.0} ms), \
         {:.2} M msg/s, {:.0} MB/s; journal {:.1} MB = {:.1} bytes/message (written in {:.0} ms); \
         start from the checkpoint: median {:.1} ms",
        ms(median),
        ms(full[0]),
        ms(full[1]),
        ms(full[2]),
        count as f64 / median.as_secs_f64() / 1e6,
        bytes as f64 / median.as_secs_f64() / 1e6,
        bytes as f64 / 1e6,
        bytes as f64 / count as f64,
        ms(write_time),
        ms(checkpointed[1]),
    );
}

fn posts(fsync: Fsync, count: u64) {
    let dir = RelayDir::new(&format!("posts-{fsync:?}"));
    let mut config = dir.config();
    config.fsync = fsync;
    let (running, base) = dir.start(config);
    let agent = agent();
    let url = format!("{base}/api/messages");
    let started = Instant::now();
    for id in 1..=count {
        let target = TARGETS[id as usize % TARGETS.len()];
        post(
            &agent,
            &url,
            &serde_json::json!({"target": target, "sender": "claude", "text": text(id)}),
        );
    }
    let took = started.elapsed();
    println!(
        "one post per request, fsync {fsync:?}: {count} in {:.0} ms = {:.0} posts/s \
         ({:.1} µs each, the HTTP round trip included)",
        ms(took),
        count as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / count as f64,
    );
    running.shutdown();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    replay(100_000);
    replay(1_000_000);
    posts(Fsync::Never, 20_000);
    posts(Fsync::Always, 2_000);
}
