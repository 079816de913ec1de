//! The message: the one record the relay stores, serves and archives. Its JSON shape is the
//! original relay's wire contract (`id`, `ts`, `target`, `sender`, `text`), so it is shared by
//! the store, the journal, REST, MCP, the event streams and the client; `reply_to` is the one
//! optional addition, absent when unset, so readers of the original shape are not disturbed.
//! JSON sent out passes through `escape_separators`, since texts may hold characters that
//! break JavaScript readers. The size of a REST page of messages is part of that contract too.

use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default and largest page of `GET /api/messages` (the client's `fetch --limit` too).
pub(crate) const LIST_DEFAULT_LIMIT: u64 = 200;
pub(crate) const LIST_MAX_LIMIT: u64 = 500;

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
    Encoded::new(m).json
}

/// A new message's wire JSON and where its text's JSON string lies in it, made at commit with
/// one pass over the text. Every other JSON that holds the text (the journal line, the archive
/// line, the 201) copies that string from here instead of escaping the text again, which for a
/// large text is most of a post's work.
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    pub json: WireJson,
    /// Where the text's JSON string starts: it runs to the closing `}`.
    text_at: usize,
    /// Whether the text holds U+2028 or U+2029, escaped here but not in the journal's lines.
    separators: bool,
    /// Whether the fields before the text hold U+2028 or U+2029, likewise.
    head_separators: bool,
    /// How many characters the text holds, when the text's JSON string came with the count.
    chars: Option<usize>,
}

/// A text's JSON string where it arrived, `buf[span]`, in the form `serde_json` writes it: a
/// post's body holds one among its other fields. The message's JSON is made in that buffer.
pub(crate) struct TextJson {
    pub buf: String,
    pub span: Range<usize>,
    /// How many characters the text holds, when the pass that decoded it counted them.
    pub chars: Option<usize>,
}

impl TextJson {
    /// A JSON string that is the whole of its buffer.
    #[cfg(test)]
    pub(crate) fn whole(json: String) -> TextJson {
        TextJson {
            span: 0..json.len(),
            buf: json,
            chars: None,
        }
    }

    /// Whether the span starts as a JSON string does.
    pub(crate) fn is_string(&self) -> bool {
        self.buf.as_bytes().get(self.span.start) == Some(&b'"')
    }

    /// The buffer made into `head` followed by the JSON string: the string is moved once, to
    /// just after the head, whichever side of it the string was; the bytes around it are
    /// dropped. `None`, with the buffer lost, if the span is not within it.
    fn after(self, head: &str) -> Option<String> {
        let TextJson { mut buf, span, .. } = self;
        if !(buf.is_char_boundary(span.start) && buf.is_char_boundary(span.end))
            || span.start > span.end
        {
            return None;
        }
        buf.truncate(span.end);
        buf.replace_range(..span.start, head);
        // Room for the closing brace, usually there already: not a doubled buffer.
        buf.reserve_exact(1);
        Some(buf)
    }
}

/// The fields of a `Message` in its own order, borrowed, to serialise its head without
/// copying the text.
#[derive(Serialize)]
struct Borrowed<'a> {
    id: u64,
    ts: f64,
    target: &'a str,
    sender: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    text: &'a str,
}

/// Room for a message's JSON beyond its names and text: the keys, the id, the time and a reply.
const HEAD_ROOM: usize = 96;

impl Encoded {
    /// Makes the wire JSON of `m` (the bytes `wire_json` makes) and remembers where its text is.
    pub(crate) fn new(m: &Message) -> Encoded {
        Encoded::with_text(m, None)
    }

    /// Like `new`, taking the text's JSON string from `text_json` when given: it must be the
    /// bytes `serde_json` writes for `m.text` (as a post's body often holds them). The JSON is
    /// then made in that string's own buffer, the text moved once to follow the head: a large
    /// text is neither escaped again nor copied into a second buffer.
    pub(crate) fn with_text(m: &Message, text_json: Option<TextJson>) -> Encoded {
        let head = Borrowed {
            id: m.id,
            ts: m.ts,
            target: &m.target,
            sender: &m.sender,
            reply_to: m.reply_to,
            text: "",
        };
        // Room for the head and, when the text is escaped here, its JSON string (more only if
        // it has escapes) and `}`.
        let text_room = text_json.as_ref().map_or(m.text.len() + 3, |_| 0);
        let mut bytes = Vec::with_capacity(HEAD_ROOM + m.target.len() + m.sender.len() + text_room);
        // A `Message` always serialises: every field is a number or a string.
        let _ = serde_json::to_writer(&mut bytes, &head);
        // `{...,"text":""}` without its last three bytes: all that comes before the text.
        bytes.truncate(bytes.len().saturating_sub(3));
        // serde_json writes UTF-8; the check is one quick pass over the head.
        let head = String::from_utf8(bytes).unwrap_or_default();
        let head_separators = has_separators(&head);
        let head = escape_separators(head);
        let text_at = head.len();
        let chars = text_json.as_ref().and_then(|text_json| text_json.chars);
        let given = text_json.and_then(|text_json| text_json.after(&head));
        let mut json = match given {
            Some(json) => json,
            None => {
                let mut bytes = head.into_bytes();
                bytes.reserve(m.text.len() + 3);
                // Written straight after the head: no second copy.
                let _ = serde_json::to_writer(&mut bytes, &m.text);
                String::from_utf8(bytes).unwrap_or_default()
            }
        };
        json.push('}');
        let separators = json.get(text_at..).is_some_and(has_separators);
        if separators {
            let text = json.split_off(text_at);
            json.push_str(&escape_separators(text));
        }
        Encoded {
            json: Arc::new(json),
            text_at,
            separators,
            head_separators,
            chars,
        }
    }

    /// Whether the message's journal line is this JSON but for an idempotency key: it holds no
    /// U+2028 or U+2029, which replies escape and journal lines do not.
    pub(crate) fn is_as_journaled(&self) -> bool {
        !self.separators && !self.head_separators
    }

    /// How many characters `m`'s text holds (`m` being the message this is the JSON of): the
    /// count that came with its JSON string, else counted now.
    pub(crate) fn text_chars(&self, m: &Message) -> usize {
        self.chars.unwrap_or_else(|| m.text.chars().count())
    }

    /// The text's JSON string as replies send it (separators escaped).
    pub(crate) fn text(&self) -> &str {
        let end = self.json.len().saturating_sub(1);
        self.json.get(self.text_at..end).unwrap_or_default()
    }

    /// The text's JSON string exactly as `serde_json` writes it (separators not escaped), when
    /// that is the same as `text`: the form the journal and the archive write.
    pub(crate) fn raw_text(&self) -> Option<&str> {
        (!self.separators).then(|| self.text())
    }
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
    memchr::memchr(SEPARATOR_LEAD, json.as_bytes()).is_some()
        && json.contains(['\u{2028}', '\u{2029}'])
}

/// Now as Unix seconds with a fractional part.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_is_as_journaled_only_without_separators_anywhere() {
        let m = |target: &str, text: &str| Message {
            id: 1,
            ts: 1.5,
            target: target.into(),
            sender: "s".into(),
            reply_to: None,
            text: text.into(),
        };
        assert!(Encoded::new(&m("a", "plain \" \\ \u{e9}")).is_as_journaled());
        assert!(!Encoded::new(&m("a", "x\u{2028}")).is_as_journaled());
        assert!(!Encoded::new(&m("a\u{2029}", "plain")).is_as_journaled());
    }

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

    #[test]
    fn a_given_text_json_with_room_becomes_the_message_json_in_its_own_buffer() {
        let m = Message {
            id: 7,
            ts: 1_764_000_000.5,
            target: "proj-x".into(),
            sender: "codex".into(),
            reply_to: Some(3),
            text: "y".repeat(100_000),
        };
        let mut text_json = String::with_capacity(m.text.len() + 256);
        text_json.push_str(&serde_json::to_string(&m.text).unwrap());
        let buffer = text_json.as_ptr();
        let encoded = Encoded::with_text(&m, Some(TextJson::whole(text_json)));
        assert_eq!(*encoded.json, serde_json::to_string(&m).unwrap());
        assert_eq!(
            encoded.json.as_ptr(),
            buffer,
            "the JSON was made in a new buffer"
        );
    }

    #[test]
    fn a_text_json_inside_a_body_becomes_the_message_json_in_the_body_buffer() {
        let m = Message {
            id: 12,
            ts: 1_764_000_000.25,
            target: "proj-x".into(),
            sender: "claude".into(),
            reply_to: None,
            text: "z\"q\n".repeat(30_000),
        };
        let text = serde_json::to_string(&m.text).unwrap();
        // Fields before the text both shorter and longer than the message's head, and after it.
        for before in [
            r#"{"sender":"claude","text":"#.to_string(),
            format!(r#"{{"pad":"{}","text":"#, "p".repeat(500)),
        ] {
            let body = format!(r#"{before}{text},"target":"proj-x"}}"#);
            let mut buf = String::with_capacity(body.len() + 256);
            buf.push_str(&body);
            let pointer = buf.as_ptr();
            let span = before.len()..before.len() + text.len();
            let chars = Some(120_000);
            let encoded = Encoded::with_text(&m, Some(TextJson { buf, span, chars }));
            assert_eq!(*encoded.json, serde_json::to_string(&m).unwrap());
            assert_eq!(encoded.text(), text);
            assert_eq!(
                encoded.text_chars(&m),
                120_000,
                "the count that came with it"
            );
            assert_eq!(
                encoded.json.as_ptr(),
                pointer,
                "the JSON was made in a new buffer"
            );
        }
        // A span that does not lie on characters of its buffer is not taken: the text is
        // escaped anew, and its characters counted.
        for span in [0..2, 2..4, 0..9] {
            let broken = TextJson {
                buf: "\"é\"".into(),
                span,
                chars: None,
            };
            let encoded = Encoded::with_text(&m, Some(broken));
            assert_eq!(*encoded.json, serde_json::to_string(&m).unwrap());
            assert_eq!(encoded.text_chars(&m), m.text.chars().count());
        }
    }

    #[test]
    fn encoded_json_is_the_wire_json_and_finds_its_text() {
        let texts = [
            "",
            "plain",
            "quote \" backslash \\ tab \t nul \u{0} é 😀",
            "line\u{2028}para\u{2029}end",
            &"x".repeat(10_000),
        ];
        for (n, text) in texts.iter().enumerate() {
            for reply_to in [None, Some(3)] {
                let m = Message {
                    id: n as u64 + 1,
                    ts: 1_764_000_000.123_456_7,
                    target: "chan\u{2028}\"x\"".into(),
                    sender: "codex".into(),
                    reply_to,
                    text: text.to_string(),
                };
                let encoded = Encoded::new(&m);
                let whole = escape_separators(serde_json::to_string(&m).unwrap());
                assert_eq!(*encoded.json, whole);
                let text_json = serde_json::to_string(&m.text).unwrap();
                let given = Encoded::with_text(&m, Some(TextJson::whole(text_json.clone())));
                assert_eq!(*given.json, whole);
                assert_eq!(
                    (given.text(), given.raw_text()),
                    (encoded.text(), encoded.raw_text())
                );
                assert_eq!(encoded.text(), escape_separators(text_json.clone()));
                let raw = encoded.raw_text();
                assert_eq!(raw.is_none(), has_separators(&m.text));
                if let Some(raw) = raw {
                    assert_eq!(raw, text_json);
                }
            }
        }
    }
}
