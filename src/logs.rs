//! The two files the relay writes for people: the tool log (one line per tool call, post and
//! fetch: timestamp, level, event name and a JSON payload) and the channel archive (one JSON line
//! per message with where it came from). A post's lines are written as the store commits it,
//! a batch of posts at a time and in id order. Each is a plain file at exactly its configured
//! path, written through flexi_logger and rotated by size here the way Python's
//! `RotatingFileHandler` does it: the full file becomes `NAME.1`, older backups shift up to
//! `NAME.N` and the oldest beyond the configured count is dropped. They are owned by the running
//! relay, not installed as the process's global logger, so several relays can live in one
//! process (the tests do).

use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use crate::store::Recorded;
use flexi_logger::writers::{FileLogWriter, LogWriter};
use flexi_logger::{DeferredNow, FileSpec};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The tool log and the channel archive.
pub(crate) struct Logs {
    tool: RotatingFile,
    archive: RotatingFile,
    /// The tool log's last timestamp to the second (`2026-11-24 18:00:00`) and that second:
    /// made once a second, not for every line.
    second: Mutex<(i64, String)>,
}

impl Logs {
    /// Opens (creating directories as needed) both files as the configuration says. A file
    /// that cannot be written is a configuration error naming its path.
    pub(crate) fn open(config: &Config) -> Result<Logs, Error> {
        Ok(Logs {
            tool: RotatingFile::open(
                "log_path",
                &config.log_path,
                config.log_max_bytes,
                config.log_backup_count,
            )?,
            archive: RotatingFile::open(
                "channel_log_path",
                &config.channel_log_path,
                config.channel_log_max_bytes,
                config.channel_log_backup_count,
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
        let _ = self.tool.writer.flush();
        let _ = self.archive.writer.flush();
    }
}

/// One log file at a fixed path with numbered backups beside it.
struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backups: usize,
    writer: FileLogWriter,
    /// Bytes in the current file; the lock also keeps a rotation and a write from interleaving.
    size: Mutex<u64>,
}

impl RotatingFile {
    fn open(key: &str, path: &Path, max_bytes: u64, backups: usize) -> Result<RotatingFile, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Config {
            source: path.display().to_string(),
            key: key.to_string(),
            message: format!("cannot write the log file: {e}"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| bad(&e))?;
        }
        // Opening for append here, not at the first line, is what turns an unwritable folder
        // into a start-up error instead of every later line being lost.
        let size = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|f| f.metadata())
            .map_err(|e| bad(&e))?
            .len();
        let spec = FileSpec::try_from(path).map_err(|e| bad(&e))?;
        let writer = FileLogWriter::builder(spec)
            .format(as_given)
            .append()
            .try_build()
            .map_err(|e| bad(&e))?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            backups,
            writer,
            size: Mutex::new(size),
        })
    }

    /// Appends lines, each given in pieces: a large piece (a message's text) goes to the file
    /// without being copied into a whole line first, and lines that fit before the next
    /// rotation share a write (see [`next_write`]). The file is rotated before a line that
    /// would take it to its size limit, as Python's `RotatingFileHandler` does.
    fn write_lines<const N: usize>(&self, lines: &[[&str; N]]) {
        let mut size = self.size.lock().unwrap_or_else(|p| p.into_inner());
        let len = |line: &[&str; N]| line.iter().map(|p| p.len() as u64).sum::<u64>() + 1;
        let mut rest = lines;
        while !rest.is_empty() {
            if *size > 0 && *size + len(&rest[0]) >= self.max_bytes {
                match self.rotate() {
                    Ok(()) => *size = 0,
                    Err(e) => log::warn!("cannot rotate {}: {e}", self.path.display()),
                }
            }
            let (count, group) = next_write(rest.iter().map(len), *size, self.max_bytes);
            let written = self.writer.write(
                &mut DeferredNow::new(),
                &log::Record::builder()
                    .args(format_args!("{}", Lines(&rest[..count])))
                    .level(log::Level::Info)
                    .target("relay")
                    .build(),
            );
            match written {
                Ok(()) => *size += group,
                Err(e) => log::warn!("cannot write a log line to {}: {e}", self.path.display()),
            }
            rest = &rest[count..];
        }
    }

    /// `NAME.(N-1)` → `NAME.N`, …, `NAME` → `NAME.1`, then a fresh `NAME`. With no backups the
    /// file starts over empty.
    fn rotate(&self) -> std::io::Result<()> {
        self.writer.flush()?;
        if self.backups == 0 {
            std::fs::File::create(&self.path)?;
        } else {
            for n in (1..self.backups).rev() {
                let from = backup(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, backup(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, backup(&self.path, 1))?;
        }
        self.writer
            .reopen_outputfile()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The most bytes of lines given to the writer at once. It formats each write in a buffer its
/// thread keeps for as long as the thread lives, so grouping large lines (a batch of 1 MiB
/// messages) would leave every connection thread that wrote one holding that much.
const GROUP_BYTES: u64 = 64 * 1024;

/// How many of the lines (of the given lengths, newline included) go out in the next write to a
/// file of `size` bytes whose limit is `max_bytes`, and their bytes: the first always, then the
/// next ones while they fit in the file and the write stays within [`GROUP_BYTES`].
fn next_write(mut lens: impl Iterator<Item = u64>, size: u64, max_bytes: u64) -> (usize, u64) {
    let Some(first) = lens.next() else {
        return (0, 0);
    };
    let (mut count, mut group) = (1, first);
    for len in lens {
        if size + group + len >= max_bytes || group + len > GROUP_BYTES {
            break;
        }
        group += len;
        count += 1;
    }
    (count, group)
}

/// The path of backup `n`: the file's name with `.n` appended.
fn backup(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
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

/// Lines given in pieces, written one after another with a newline between them (the writer
/// ends the last).
struct Lines<'a, const N: usize>(&'a [[&'a str; N]]);

impl<const N: usize> std::fmt::Display for Lines<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (at, line) in self.0.iter().enumerate() {
            if at > 0 {
                f.write_str("\n")?;
            }
            line.iter().try_for_each(|piece| f.write_str(piece))?;
        }
        Ok(())
    }
}

/// Lines are formatted before they reach the writer, so their length is known for rotation.
fn as_given(
    w: &mut dyn std::io::Write,
    _now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(w, "{}", record.args())
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
    fn small_lines_share_a_write_and_large_ones_go_alone() {
        let big = 1024 * 1024;
        assert_eq!(next_write([100, 100, 100].into_iter(), 0, 1000), (3, 300));
        assert_eq!(
            next_write([100, 100, 100].into_iter(), 750, 1000),
            (2, 200),
            "the file's limit ends a write"
        );
        assert_eq!(next_write([big, 100].into_iter(), 0, u64::MAX), (1, big));
        assert_eq!(
            next_write([100, big, 100].into_iter(), 0, u64::MAX),
            (1, 100)
        );
        assert_eq!(
            next_write(std::iter::repeat_n(1000, 100), 0, u64::MAX),
            (65, 65_000),
            "a write stays within GROUP_BYTES"
        );
        assert_eq!(next_write(std::iter::empty(), 0, 10), (0, 0));
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
