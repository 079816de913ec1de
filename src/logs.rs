//! The two files the relay writes for people: the tool log (one line per tool call, post and
//! fetch: timestamp, level, event name and a JSON payload) and the channel archive (one JSON line
//! per message with where it came from). Both rotate by size through flexi_logger and keep a
//! fixed number of backups: the current file is `NAME_rCURRENT.log` with a symlink at the
//! configured path, backups are `NAME_r00000.log` and up. They are owned by the running relay, not installed as the process's
//! global logger, so several relays can live in one process (the tests do).

use crate::config::Config;
use crate::error::Error;
use crate::message::Message;
use flexi_logger::writers::{FileLogWriter, LogWriter};
use flexi_logger::{Cleanup, Criterion, DeferredNow, FileSpec, Naming};
use serde_json::{json, Value};
use std::path::Path;

/// The tool log and the channel archive.
pub struct Logs {
    tool: FileLogWriter,
    archive: FileLogWriter,
}

impl Logs {
    /// Opens (creating directories as needed) both files as the configuration says.
    pub fn open(config: &Config) -> Result<Logs, Error> {
        Ok(Logs {
            tool: writer(
                &config.log_path,
                config.log_max_bytes,
                config.log_backup_count,
                tool_line,
            )?,
            archive: writer(
                &config.channel_log_path,
                config.channel_log_max_bytes,
                config.channel_log_backup_count,
                archive_line,
            )?,
        })
    }

    /// Writes one tool-log line: `event` followed by its JSON payload.
    pub fn tool(&self, event: &str, payload: Value) {
        self.write(&self.tool, log::Level::Info, &format!("{event} {payload}"));
    }

    /// Records a new message: its archive line and its `post_message` tool-log line.
    pub fn posted(&self, m: &Message, source: &str) {
        let line = json!({"id": m.id, "ts": m.ts, "target": m.target, "sender": m.sender, "text": m.text, "source": source});
        self.write(&self.archive, log::Level::Info, &line.to_string());
        self.tool(
            "post_message",
            json!({"id": m.id, "target": m.target, "sender": m.sender, "text_len": m.text.chars().count(), "source": source}),
        );
    }

    /// Writes a warning to the tool log.
    pub fn warn(&self, text: &str) {
        self.write(&self.tool, log::Level::Warn, text);
    }

    fn write(&self, writer: &FileLogWriter, level: log::Level, text: &str) {
        let written = writer.write(
            &mut DeferredNow::new(),
            &log::Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target("relay")
                .build(),
        );
        if let Err(e) = written {
            log::warn!("cannot write a log line: {e}");
        }
    }

    /// Pushes buffered lines to the files.
    pub fn flush(&self) {
        let _ = self.tool.flush();
        let _ = self.archive.flush();
    }
}

fn writer(
    path: &Path,
    max_bytes: u64,
    backups: usize,
    format: flexi_logger::FormatFunction,
) -> Result<FileLogWriter, Error> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::Io(std::io::Error::other(format!(
            "cannot open log {}: {e}",
            path.display()
        )))
    };
    let spec = FileSpec::try_from(path).map_err(|e| bad(&e))?;
    FileLogWriter::builder(spec)
        .format(format)
        .rotate(
            Criterion::Size(max_bytes),
            Naming::Numbers,
            Cleanup::KeepLogFiles(backups),
        )
        .cleanup_in_background_thread(false)
        .create_symlink(path)
        .append()
        .try_build()
        .map_err(|e| bad(&e))
}

/// `2026-11-24 18:00:00,123 INFO post_message {...}`: timestamp and level first.
fn tool_line(
    w: &mut dyn std::io::Write,
    now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(
        w,
        "{} {} {}",
        now.format("%Y-%m-%d %H:%M:%S,%3f"),
        record.level(),
        record.args()
    )
}

/// The archive line is the message's JSON alone.
fn archive_line(
    w: &mut dyn std::io::Write,
    _now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(w, "{}", record.args())
}
