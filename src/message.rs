//! The message: the one record the relay stores, serves and archives. Its JSON shape is the
//! original relay's wire contract (`id`, `ts`, `target`, `sender`, `text`), so it is shared by
//! the store, the journal, REST, MCP and the event streams; `reply_to` is the one optional
//! addition, absent when unset, so readers of the original shape are not disturbed. JSON sent out passes through
//! `escape_separators`, since texts may hold characters that break JavaScript readers.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

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

/// A message's JSON exactly as replies send it (`serde_json` of the `Message`, separators
/// escaped), made once and shared by every reply that sends it. An `Arc<String>` rather than an
/// `Arc<str>`, so that a JSON made in a `String` is shared without being copied again.
pub(crate) type WireJson = Arc<String>;

/// Makes the wire JSON of `m`.
pub(crate) fn wire_json(m: &Message) -> WireJson {
    // A `Message` always serialises: every field is a number or a string.
    Arc::new(escape_separators(
        serde_json::to_string(m).unwrap_or_default(),
    ))
}

/// The id of the message whose wire JSON is `json`: it is the first field, so it is read
/// without parsing the rest.
pub(crate) fn wire_id(json: &str) -> Option<u64> {
    let rest = json.strip_prefix(r#"{"id":"#)?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
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

/// The first byte of U+2028 and U+2029 in UTF-8.
pub(crate) const SEPARATOR_LEAD: u8 = 0xE2;

/// Whether `json` holds U+2028 or U+2029. Both start with the byte 0xE2, which a byte search
/// (memchr) rules out quickly; searching for the characters themselves decodes every one, and
/// cost a fifth of a fetch's CPU.
pub(crate) fn has_separators(json: &str) -> bool {
    json.as_bytes().contains(&SEPARATOR_LEAD) && json.contains(['\u{2028}', '\u{2029}'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_read_from_the_front_of_the_wire_json() {
        for (id, reply_to) in [(1, None), (18_446_744_073_709_551_615, Some(7))] {
            let m = Message {
                id,
                ts: 1.5,
                target: "t".into(),
                sender: "s".into(),
                reply_to,
                text: r#"{"id":99}"#.into(),
            };
            assert_eq!(wire_id(&wire_json(&m)), Some(id));
        }
        assert_eq!(wire_id(r#"{"ts":1,"id":2}"#), None);
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
