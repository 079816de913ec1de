//! The message: the one record the relay stores, serves and archives. Its JSON shape is the
//! original relay's wire contract (`id`, `ts`, `target`, `sender`, `text`), so it is shared by
//! the store, the journal, REST, MCP and the event streams; `reply_to` is the one optional
//! addition, absent when unset, so readers of the original shape are not disturbed. JSON sent out passes through
//! `escape_separators`, since texts may hold characters that break JavaScript readers.

use serde::{Deserialize, Serialize};
use std::io::{self, Write};

/// One posted message. `id` is a single sequence shared by every channel, starting at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Message {
    pub id: u64,
    /// Unix time in seconds, with a fractional part.
    pub ts: f64,
    pub target: String,
    pub sender: String,
    /// The id of the earlier message of the same channel this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    pub text: String,
}

/// Writes U+2028 and U+2029 in serialised JSON as `\u2028` and `\u2029`. Both are legal
/// unescaped in JSON strings, which is the only place they can occur, but they end a line in
/// JavaScript source and in some line-oriented readers. Text without them is returned as it is.
pub(crate) fn escape_separators(json: String) -> String {
    if !has_separators(&json) {
        return json;
    }
    json.replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Whether `json` holds U+2028 or U+2029. Both start with the byte 0xE2, which a byte search
/// (memchr) rules out quickly; searching for the characters themselves decodes every one, and
/// cost a fifth of a fetch's CPU.
pub(crate) fn has_separators(json: &str) -> bool {
    json.as_bytes().contains(&SEPARATOR_PREFIX[0]) && json.contains(['\u{2028}', '\u{2029}'])
}

/// A writer that does what `escape_separators` does to JSON written through it, for JSON too
/// large to hold whole: a separator split across two writes is still found.
pub(crate) struct EscapeSeparators<W: Write> {
    inner: W,
    /// The start of a separator that the last write ended with (at most two bytes).
    held: Vec<u8>,
}

/// U+2028 and U+2029 in UTF-8 share these first two bytes.
const SEPARATOR_PREFIX: [u8; 2] = [0xE2, 0x80];

impl<W: Write> EscapeSeparators<W> {
    pub(crate) fn new(inner: W) -> EscapeSeparators<W> {
        EscapeSeparators {
            inner,
            held: Vec::new(),
        }
    }

    /// Writes what is held back and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        let held = std::mem::take(&mut self.held);
        self.inner.write_all(&held)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EscapeSeparators<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.held.is_empty() && !buf.contains(&SEPARATOR_PREFIX[0]) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(buf);
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != SEPARATOR_PREFIX[0] {
                i += 1;
                continue;
            }
            let rest = &bytes[i..];
            if rest.len() < 3 && SEPARATOR_PREFIX.starts_with(rest) {
                // Maybe a separator cut by the end of this write: keep it for the next one.
                self.inner.write_all(&bytes[start..i])?;
                self.held = rest.to_vec();
                return Ok(buf.len());
            }
            let escape: Option<&[u8]> = match rest {
                [0xE2, 0x80, 0xA8, ..] => Some(b"\\u2028"),
                [0xE2, 0x80, 0xA9, ..] => Some(b"\\u2029"),
                _ => None,
            };
            match escape {
                Some(escape) => {
                    self.inner.write_all(&bytes[start..i])?;
                    self.inner.write_all(escape)?;
                    i += 3;
                    start = i;
                }
                None => i += 1,
            }
        }
        self.inner.write_all(&bytes[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escaping_writer_matches_escape_separators_however_the_json_is_cut() {
        let text = "x\u{2028}y\u{2029}z \u{2026}\u{20AC} end\u{2028}";
        let json = serde_json::to_string(text).unwrap();
        let whole = escape_separators(json.clone());
        let bytes = json.as_bytes();
        for cut in 1..bytes.len() {
            let mut w = EscapeSeparators::new(Vec::new());
            for piece in bytes.chunks(cut) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(
                String::from_utf8(w.finish().unwrap()).unwrap(),
                whole,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn separators_are_escaped_and_read_back_the_same() {
        let text = "a\u{2028}b\u{2029}c";
        let json = escape_separators(serde_json::to_string(text).unwrap());
        assert_eq!(json, r#""a\u2028b\u2029c""#);
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
        assert_eq!(escape_separators("\"plain\"".into()), "\"plain\"");
    }
}
