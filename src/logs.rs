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
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// (`2026-11-24 18:00:00,123 INFO post_message {...}`), made in one buffer.
    pub(crate) fn tool(&self, event: &str, payload: &impl Serialize) {
        // Writing to memory cannot fail; serde_json writes UTF-8.
        self.tool_line(event, &serde_json::to_string(payload).unwrap_or_default());
    }

    /// `tool` of a payload already written as JSON: one copy of the line's making, whatever
    /// the payload's type.
    fn tool_line(&self, event: &str, payload: &str) {
        let mut line = Vec::with_capacity(64 + payload.len());
        self.stamp(&mut line);
        line.extend_from_slice(b" INFO ");
        line.extend_from_slice(event.as_bytes());
        line.push(b' ');
        line.extend_from_slice(payload.as_bytes());
        let line = String::from_utf8(line).unwrap_or_default();
        self.tool.write_lines(&[[line.as_str()]]);
    }

    /// Appends now as `2026-11-24 18:00:00,123`, local time. The clock is read as a count of
    /// milliseconds; only in a new second is it turned into a local date and time.
    fn stamp(&self, out: &mut Vec<u8>) {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (mut second, mut millis) = (since_epoch.as_secs() as i64, since_epoch.subsec_millis());
        {
            let mut cached = self.second.lock().unwrap_or_else(|p| p.into_inner());
            if cached.0 != second {
                let mut now = DeferredNow::new();
                (second, millis) = (now.now().timestamp(), now.now().timestamp_subsec_millis());
                *cached = (second, now.format("%Y-%m-%d %H:%M:%S").to_string());
            }
            out.extend_from_slice(cached.1.as_bytes());
        }
        // A leap second reads as 1000 ms and more; the line keeps three digits.
        let millis = millis.min(999);
        out.push(b',');
        for digit in [millis / 100, millis / 10 % 10, millis % 10] {
            out.push(b'0' + digit as u8);
        }
    }

    /// Records a batch of new messages, in the order given: an archive line each (the text's
    /// JSON string copied from its wire JSON, not made again) and a `post_message` tool-log
    /// line each, the lines of each file written together. What the lines say around the texts
    /// is written into one buffer for the whole batch, and each line is pieces of it.
    pub(crate) fn posted(&self, batch: &[Recorded]) {
        let mut own = Vec::with_capacity(batch.len() * 256 + 32);
        self.stamp(&mut own);
        own.extend_from_slice(b" INFO post_message ");
        let tool_head = 0..own.len();
        let mut spans = Vec::with_capacity(batch.len());
        for r in batch {
            let m = &r.message;
            let start = own.len();
            archive_head(&mut own, m, &r.source);
            let head = start..own.len();
            // The text's JSON string is lent from the message's JSON unless that escapes
            // separators, which an archive line does not.
            let made_text = r.encoded.raw_text().is_none().then(|| {
                let start = own.len();
                let _ = serde_json::to_writer(&mut own, &m.text);
                start..own.len()
            });
            let start = own.len();
            archive_tail(&mut own, m);
            let tail = start..own.len();
            // A tool-log line is whole in the buffer: the batch's head, then its payload.
            let start = own.len();
            own.extend_from_within(tool_head.clone());
            tool_payload(&mut own, m, r.encoded.text_chars(m), &r.source);
            spans.push((head, made_text, tail, start..own.len()));
        }
        // Only serde_json and formatted numbers wrote to the buffer: it is UTF-8.
        let own = String::from_utf8(own).unwrap_or_default();
        let piece = |span: &std::ops::Range<usize>| own.get(span.clone()).unwrap_or_default();
        let archive: Vec<[&str; 3]> = batch
            .iter()
            .zip(&spans)
            .map(|(r, (head, made_text, tail, _))| {
                let text = match made_text {
                    Some(span) => piece(span),
                    None => r.encoded.raw_text().unwrap_or_default(),
                };
                [piece(head), text, piece(tail)]
            })
            .collect();
        self.archive.write_lines(&archive);
        let tool: Vec<[&str; 1]> = spans.iter().map(|(.., line)| [piece(line)]).collect();
        self.tool.write_lines(&tool);
    }

    /// Pushes buffered lines to the files.
    pub(crate) fn flush(&self) {
        self.tool.flush();
        self.archive.flush();
    }
}

/// `{"id":…,"sender":…,"source":…,"target":…,"text":…,"ts":…}`, the bytes serde gives the
/// object of those fields (keys sorted, as in a `Value`; separators not escaped), is an archive
/// line: this is what comes before the text's JSON string.
fn archive_head(out: &mut Vec<u8>, m: &Message, source: &str) {
    // Writing to memory cannot fail.
    let _ = write!(out, "{{\"id\":{},\"sender\":", m.id);
    let _ = serde_json::to_writer(&mut *out, &m.sender);
    out.extend_from_slice(b",\"source\":");
    let _ = serde_json::to_writer(&mut *out, source);
    out.extend_from_slice(b",\"target\":");
    let _ = serde_json::to_writer(&mut *out, &m.target);
    out.extend_from_slice(b",\"text\":");
}

/// What comes after the text's JSON string in an archive line.
fn archive_tail(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(b",\"ts\":");
    let _ = serde_json::to_writer(&mut *out, &m.ts);
    out.push(b'}');
}

/// A `post_message` tool-log line's payload, its keys in sorted order as the tool log has
/// always had them: `{"id","sender","source","target","text_len"}`.
fn tool_payload(out: &mut Vec<u8>, m: &Message, chars: usize, source: &str) {
    #[derive(Serialize)]
    struct Posted<'a> {
        id: u64,
        sender: &'a str,
        source: &'a str,
        target: &'a str,
        text_len: usize,
    }
    let payload = Posted {
        id: m.id,
        sender: &m.sender,
        source,
        target: &m.target,
        text_len: chars,
    };
    let _ = serde_json::to_writer(out, &payload);
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
    fn a_batch_writes_each_message_s_archive_line_and_tool_line_in_order() {
        let dir = crate::test_dir::TempDir::new();
        let config = Config {
            log_path: dir.0.join("tool.log"),
            channel_log_path: dir.0.join("archive.log"),
            ..Config::default()
        };
        let logs = Logs::open(&config).unwrap();
        // The second text holds separators: its archive string is made again, not lent.
        let texts = ["plain \" é", "sep\u{2028}and\u{2029}", "😀 last"];
        let batch: Vec<Recorded> = texts
            .iter()
            .enumerate()
            .map(|(at, text)| {
                let message = Message {
                    id: at as u64 + 7,
                    ts: 1_764_000_000.25,
                    target: format!("chan-{at}"),
                    sender: "codex".into(),
                    reply_to: None,
                    text: (*text).into(),
                };
                Recorded {
                    encoded: Encoded::new(&message),
                    message: std::sync::Arc::new(message),
                    source: if at == 1 {
                        "web-ui".into()
                    } else {
                        "rest".into()
                    },
                }
            })
            .collect();
        assert!(batch[1].encoded.raw_text().is_none());
        logs.posted(&batch);
        logs.flush();
        let archive = std::fs::read_to_string(dir.0.join("archive.log")).unwrap();
        let tool = std::fs::read_to_string(dir.0.join("tool.log")).unwrap();
        let archive: Vec<&str> = archive.lines().collect();
        let tool: Vec<&str> = tool.lines().collect();
        assert_eq!((archive.len(), tool.len()), (3, 3));
        for (r, (archived, logged)) in batch.iter().zip(archive.iter().zip(&tool)) {
            let m = &r.message;
            let tree = json!({"id": m.id, "ts": m.ts, "target": m.target, "sender": m.sender,
                              "text": m.text, "source": r.source});
            assert_eq!(*archived, tree.to_string());
            let payload = json!({"id": m.id, "sender": m.sender, "source": r.source,
                                 "target": m.target, "text_len": m.text.chars().count()});
            assert_eq!(
                logged.split_at(23).1,
                format!(" INFO post_message {payload}")
            );
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
            let (mut head, mut tail) = (Vec::new(), Vec::new());
            archive_head(&mut head, &m, "web-ui");
            archive_tail(&mut tail, &m);
            let line = [head, raw.as_bytes().to_vec(), tail].concat();
            assert_eq!(String::from_utf8(line).unwrap(), tree.to_string());
        }
    }
}
