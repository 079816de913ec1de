//! A relay started in-process, as a library user starts one, over a directory of its own; and
//! journal lines in the format a relay writes and replays (one JSON object per line, a
//! message's text last), so that a benchmark can hand a relay a long history without posting
//! it. Shared by the benchmark examples that measure start-up, memory and search.

use claude_codex_relay::config::Config;
use claude_codex_relay::Running;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's name inside the data directory.
pub const JOURNAL: &str = "messages.jsonl";
/// The start-up checkpoint beside it, which a relay writes when it stops.
#[allow(dead_code)] // only the replay benchmark removes it
pub const CHECKPOINT: &str = "messages.checkpoint";

/// A fresh directory under the system temp dir, removed on drop.
pub struct RelayDir(pub PathBuf);

impl RelayDir {
    pub fn new(tag: &str) -> RelayDir {
        let dir = std::env::temp_dir().join(format!("relay-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("a temporary directory");
        RelayDir(dir)
    }

    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    /// A configuration on 127.0.0.1, port 0, with every file in this directory.
    pub fn config(&self) -> Config {
        Config {
            port: 0,
            log_path: self.0.join("log/claude_codex.log"),
            channel_log_path: self.0.join("log/channel_messages.log"),
            data_dir: self.data(),
            ..Config::default()
        }
    }

    /// Starts a relay on `config` and returns it with its base URL.
    pub fn start(&self, config: Config) -> (Running, String) {
        let running = claude_codex_relay::start(config).expect("the relay starts");
        let base = format!("http://{}", running.addr());
        (running, base)
    }
}

impl Drop for RelayDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A message line as the journal holds it.
pub fn message_line(id: u64, ts: f64, target: &str, sender: &str, text: &str) -> String {
    format!(
        "{{\"id\":{id},\"ts\":{ts},\"target\":{},\"sender\":{},\"text\":{}}}",
        json_string(target),
        json_string(sender),
        json_string(text)
    )
}

/// A reader's position line as the journal holds it.
#[allow(dead_code)] // only the conversations benchmark writes positions
pub fn position_line(reader: &str, target: &str, id: u64) -> String {
    format!(
        "{{\"read\":{{\"reader\":{},\"target\":{},\"id\":{id}}}}}",
        json_string(reader),
        json_string(target)
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Writes `lines` as the journal of data directory `data`; returns its size in bytes.
pub fn write_journal(data: &Path, lines: impl Iterator<Item = String>) -> u64 {
    let path = data.join(JOURNAL);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("the journal"));
    for line in lines {
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("write");
    std::fs::metadata(&path).expect("the journal").len()
}

/// An agent for benchmark requests: statuses as values, keep-alive.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GETs `url`, which must answer 200 with JSON.
pub fn get_json(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let mut reply = agent.get(url).call().expect("GET");
    assert_eq!(reply.status(), 200, "GET {url}");
    reply.body_mut().read_json().expect("JSON")
}

/// POSTs `body` as JSON to `url`, which must answer 201.
pub fn post(agent: &ureq::Agent, url: &str, body: &serde_json::Value) {
    let reply = agent.post(url).send_json(body).expect("POST");
    assert_eq!(reply.status(), 201, "POST {url}");
}

/// How many messages the relay at `base` holds, as `GET /api/channels?detail=1` counts them.
pub fn held(agent: &ureq::Agent, base: &str) -> u64 {
    let listing = get_json(agent, &format!("{base}/api/channels?detail=1"));
    listing["detail"]
        .as_array()
        .expect("detail")
        .iter()
        .map(|c| c["messages"].as_u64().unwrap_or(0))
        .sum()
}
