//! The two files the relay writes for people: the tool log (one line per tool call, post and
//! fetch: timestamp, level, event name and a JSON payload) and the channel archive (one JSON line
//! per message with where it came from): what their lines say. A post's archive lines are
//! written as the store commits it, a batch of posts at a time and in id order; tool-log lines
//! are gathered and written together, at the latest [`TOOL_LOG_DELAY`] after they were made, so
//! a busy relay makes a few writes a second for them instead of one per call. Each is a
//! [`LogFile`] at exactly its configured path, rotated by size. They are owned by the running
//! relay, not installed as the process's global logger, so several relays can live in one
//! process (the tests do).

use crate::config::Config;
use crate::error::Error;
use crate::log_file::{LogFile, Writes};
use crate::message::Message;
use crate::store::Recorded;
use flexi_logger::DeferredNow;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The longest a tool-log line waits in memory before it is written: short enough that
/// `tail -f` shows a call as it happens.
pub(crate) const TOOL_LOG_DELAY: Duration = Duration::from_millis(100);

/// The tool log and the channel archive.
pub(crate) struct Logs {
    tool: LogFile,
    archive: LogFile,
    /// The tool log's last timestamp to the second (`2026-11-24 18:00:00`) and that second:
    /// made once a second, not for every line.
    second: Mutex<(i64, String)>,
}

impl Logs {
    /// Opens (creating directories as needed) both files as the configuration says. A file
    /// that cannot be written is a configuration error naming its path.
    pub(crate) fn open(config: &Config) -> Result<Logs, Error> {
        Ok(Logs {
            tool: LogFile::open(
                "log_path",
                &config.log_path,
                config.log_max_bytes,
                config.log_backup_count,
                Writes::Within(TOOL_LOG_DELAY),
            )?,
            archive: LogFile::open(
                "channel_log_path",
                &config.channel_log_path,
                config.channel_log_max_bytes,
                config.channel_log_backup_count,
                Writes::AtOnce,
            )?,
            second: Mutex::new((i64::MIN, String::new())),
        })
    }

    /// Writes one tool-log line: timestamp, level, `event` and its JSON payload
    /// (`2026-11-24 18:00:00,123 INFO post_message {...}`).
    pub(crate) fn tool(&self, event: &str, payload: &impl Serialize) {
        let payload = serde_json::to_string(payload).unwrap_or_default();
        self.tool
            .write_lines(&[[&self.timestamp(), " INFO ", event, " ", &payload]]);
    }

    /// Now as `2026-11-24 18:00:00,123`, local time.
    fn timestamp(&self) -> String {
        let mut now = DeferredNow::new();
        let (second, millis) = (now.now().timestamp(), now.now().timestamp_subsec_millis());
        let mut stamp = {
            let mut cached = self.second.lock().unwrap_or_else(|p| p.into_inner());
            if cached.0 != second {
                *cached = (second, now.format("%Y-%m-%d %H:%M:%S").to_string());
            }
            cached.1.clone()
        };
        // A leap second reads as 1000 ms and more; the line keeps three digits.
        let _ = write!(stamp, ",{:03}", millis.min(999));
        stamp
    }

    /// Records a batch of new messages, in the order given: an archive line each (the text's
    /// JSON string copied from its wire JSON, not made again) and a `post_message` tool-log
    /// line each, the lines of each file written together.
    pub(crate) fn posted(&self, batch: &[Recorded]) {
        /// A tool-log line's payload, its keys in sorted order as the tool log has always had
        /// them.
        #[derive(Serialize)]
        struct Posted<'a> {
            id: u64,
            sender: &'a str,
            source: &'a str,
            target: &'a str,
            text_len: usize,
        }
        let mut archive = Vec::with_capacity(batch.len());
        let mut tool = Vec::with_capacity(batch.len());
        let stamp = self.timestamp();
        for r in batch {
            let m = &r.message;
            let text =
                r.encoded.raw_text().map(Cow::Borrowed).unwrap_or_else(|| {
                    Cow::Owned(serde_json::to_string(&m.text).unwrap_or_default())
                });
            archive.push((archive_line(m, &r.source), text));
            let payload = Posted {
                id: m.id,
                sender: &m.sender,
                source: &r.source,
                target: &m.target,
                text_len: m.text.chars().count(),
            };
            tool.push(serde_json::to_string(&payload).unwrap_or_default());
        }
        let archive: Vec<[&str; 3]> = archive
            .iter()
            .map(|([head, tail], text)| [head.as_str(), text, tail.as_str()])
            .collect();
        self.archive.write_lines(&archive);
        let tool: Vec<[&str; 3]> = tool
            .iter()
            .map(|payload| [stamp.as_str(), " INFO post_message ", payload.as_str()])
            .collect();
        self.tool.write_lines(&tool);
    }

    /// Pushes buffered lines to the files.
    pub(crate) fn flush(&self) {
        self.tool.flush();
        self.archive.flush();
    }
}

/// `{"id":…,"sender":…,"source":…,"target":…,"text":…,"ts":…}`: the bytes serde gives the object
/// of those fields (keys sorted, as in a `Value`; separators not escaped), as what comes before
/// the text's JSON string and what comes after it.
fn archive_line(m: &Message, source: &str) -> [String; 2] {
    // Writing to memory cannot fail, and serde_json writes UTF-8 only.
    let mut head = Vec::with_capacity(m.target.len() + m.sender.len() + 80);
    let _ = write!(head, "{{\"id\":{},\"sender\":", m.id);
    let _ = serde_json::to_writer(&mut head, &m.sender);
    head.extend_from_slice(b",\"source\":");
    let _ = serde_json::to_writer(&mut head, source);
    head.extend_from_slice(b",\"target\":");
    let _ = serde_json::to_writer(&mut head, &m.target);
    head.extend_from_slice(b",\"text\":");
    let mut tail = b",\"ts\":".to_vec();
    let _ = serde_json::to_writer(&mut tail, &m.ts);
    tail.push(b'}');
    [head, tail].map(|bytes| String::from_utf8(bytes).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Encoded;
    use serde_json::json;

    #[test]
    fn tool_lines_start_with_the_local_time_to_the_millisecond_and_the_level() {
        let dir = std::env::temp_dir().join(format!("relay-logs-{}", std::process::id()));
        let config = Config {
            log_path: dir.join("tool.log"),
            channel_log_path: dir.join("archive.log"),
            ..Config::default()
        };
        let logs = Logs::open(&config).unwrap();
        let payload = json!({"b": 1, "a": "x"});
        for _ in 0..3 {
            logs.tool("fetch_messages", &payload);
        }
        logs.flush();
        let text = std::fs::read_to_string(dir.join("tool.log")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for line in lines {
            let (stamp, rest) = line.split_at(23);
            let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
            let shape: String = stamp
                .chars()
                .map(|c| if c.is_ascii_digit() { 'd' } else { c })
                .collect();
            assert_eq!(shape, "dddd-dd-dd dd:dd:dd,ddd", "{line}");
            assert_eq!(digits.len(), 17);
            assert_eq!(rest, r#" INFO fetch_messages {"a":"x","b":1}"#);
        }
    }

    #[test]
    fn the_archive_line_is_the_bytes_of_the_serde_tree() {
        for text in ["plain", "q \" b \\ \u{1} é 😀", "sep\u{2028}and\u{2029}"] {
            let m = Message {
                id: 9,
                ts: 1_764_000_000.5,
                target: "chan\u{2029}\"x\"".into(),
                sender: "codex".into(),
                reply_to: Some(3),
                text: text.into(),
            };
            let tree = json!({"id": m.id, "ts": m.ts, "target": m.target, "sender": m.sender, "text": m.text, "source": "web-ui"});
            let encoded = Encoded::new(&m);
            let text_json = serde_json::to_string(&m.text).unwrap();
            let raw = encoded.raw_text().unwrap_or(&text_json);
            let [head, tail] = archive_line(&m, "web-ui");
            assert_eq!(format!("{head}{raw}{tail}"), tree.to_string());
        }
    }
}
