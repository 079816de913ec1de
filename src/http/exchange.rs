//! The request a handler sees (`Incoming`: method, path, decoded query, headers, body) and the
//! reply it gives back (`Reply`: a complete response, or a stream written straight to the socket
//! because tiny_http buffers any response of unknown length).

use crate::error::Error;
use crate::message::WireJson;
use crate::sent_json::SentJson;
use serde::Serialize;
use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;
use tiny_http::Piece;

/// A request, read and decoded: header names are lower-case.
#[derive(Debug, Default, Clone)]
pub(crate) struct Incoming {
    pub method: String,
    /// (major, minor), e.g. (1, 1).
    pub http_version: (u8, u8),
    /// The client's address, when the connection has one.
    pub peer: Option<IpAddr>,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the client has gone while the request waits (for a handler that waits long).
    pub client: ClientWatch,
}

/// Says whether a request's client has gone (closed its connection): the server fills it in
/// from the connection; a request made any other way (a test's) never sees its client go.
#[derive(Clone, Default)]
pub(crate) struct ClientWatch(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl ClientWatch {
    pub(crate) fn new(gone: impl Fn() -> bool + Send + Sync + 'static) -> ClientWatch {
        ClientWatch(Some(Arc::new(gone)))
    }

    pub(crate) fn gone(&self) -> bool {
        self.0.as_ref().is_some_and(|gone| gone())
    }
}

impl std::fmt::Debug for ClientWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientWatch")
    }
}

impl Incoming {
    /// The first header named `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter named `key`.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A whole-number query parameter that counts or bounds (a limit, a since_id), a negative
    /// one counting as 0 (`fields::whole_count`), or a 400 naming it.
    pub(crate) fn number_param(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.param(key) {
            None => Ok(None),
            Some(raw) => crate::fields::whole_count(raw).map(Some).ok_or_else(|| {
                Error::BadRequest(format!("{key} must be a whole number, not {raw:?}"))
            }),
        }
    }
}

/// Writes one stream to its socket; returns when the stream ends or the peer goes away.
pub(crate) type StreamBody = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// A reply's headers, as (name, value): most are fixed text, which is not copied.
pub(crate) type Headers = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// What a handler answers.
pub(crate) enum Reply {
    /// A complete response.
    Full {
        status: u16,
        headers: Headers,
        body: Vec<u8>,
    },
    /// A complete JSON response made of parts serialised before, sent without being copied into
    /// one buffer first.
    Parts {
        status: u16,
        headers: Headers,
        body: JsonParts,
    },
    /// A body written as it is made (an event stream, or a page too large to hold whole): the
    /// status line and `headers` go out first, then `body` writes to the socket until it is
    /// done, and the connection closes, which marks the body's end.
    Stream {
        status: u16,
        headers: Headers,
        body: StreamBody,
    },
}

/// A JSON body made of parts serialised before: `head`, the `items` separated by commas, and
/// `tail`. Items are shared (a message's JSON is made once for every reply that sends it), or
/// lie in the journal file, so the body is read from them as it is sent.
pub(crate) struct JsonParts {
    pub head: String,
    pub items: Vec<SentJson>,
    pub tail: String,
}

impl JsonParts {
    /// The body's length in bytes.
    pub(crate) fn len(&self) -> usize {
        let items: usize = self.items.iter().map(SentJson::len).sum();
        let commas = self.items.len().saturating_sub(1);
        self.head.len() + items + commas + self.tail.len()
    }

    /// The body in one piece, when all of it is in memory (no text lies in the journal).
    pub(crate) fn joined(&self) -> Option<String> {
        let mut body = String::with_capacity(self.len());
        body.push_str(&self.head);
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            match item {
                SentJson::Whole(json) => body.push_str(json),
                SentJson::Lying(_) => return None,
            }
        }
        body.push_str(&self.tail);
        Some(body)
    }
}

/// The body is sent from its pieces where they lie: a long text goes to the socket without
/// being copied into a buffer first, and one in the journal is sent from the file.
impl tiny_http::Pieces for JsonParts {
    fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> io::Result<()>) -> io::Result<()> {
        each(Piece::Bytes(self.head.as_bytes()))?;
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                each(Piece::Bytes(b","))?;
            }
            match item {
                SentJson::Whole(json) => each(Piece::Bytes(json.as_bytes()))?,
                SentJson::Lying(lying) => {
                    each(Piece::Bytes(lying.head.as_bytes()))?;
                    let (file, offset, len) = lying.rest();
                    each(Piece::File { file, offset, len })?;
                }
            }
        }
        each(Piece::Bytes(self.tail.as_bytes()))
    }
}

/// Headers of every event stream.
const EVENT_STREAM_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
];

impl Reply {
    /// A JSON response.
    pub(crate) fn json(status: u16, value: &impl Serialize) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_string(value)
                .map(crate::message::escape_separators)
                .unwrap_or_default()
                .into_bytes(),
        }
    }

    /// A plain-text response.
    pub(crate) fn text(status: u16, text: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: text.as_bytes().to_vec(),
        }
    }

    /// A response with no body (`Content-Length: 0`).
    pub(crate) fn empty(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response made of parts already serialised (with U+2028 and U+2029 escaped as in
    /// `json`).
    pub(crate) fn json_parts(status: u16, body: JsonParts) -> Reply {
        Reply::Parts {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// A JSON response whose body was made before and is shared (with U+2028 and U+2029
    /// escaped as in `json`).
    pub(crate) fn json_shared(status: u16, body: WireJson) -> Reply {
        Reply::json_parts(
            status,
            JsonParts {
                head: String::new(),
                items: vec![body.into()],
                tail: String::new(),
            },
        )
    }

    /// A fixed body with its content type.
    pub(crate) fn bytes(status: u16, content_type: &'static str, body: &[u8]) -> Reply {
        Reply::owned(status, content_type, body.to_vec())
    }

    /// A body made for this reply, with its content type.
    pub(crate) fn owned(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    /// An event stream whose events `body` writes.
    pub(crate) fn stream(body: StreamBody) -> Reply {
        Reply::Stream {
            status: 200,
            headers: EVENT_STREAM_HEADERS
                .iter()
                .map(|&(n, v)| (n.into(), v.into()))
                .collect(),
            body,
        }
    }

    /// A JSON body that `body` writes straight to the socket (escaping U+2028 and U+2029 as
    /// `json` does), for a value too large to hold as bytes beside its parts: the memory a slow
    /// reader costs stays the size of a buffer, not of the value.
    pub(crate) fn json_stream(status: u16, body: StreamBody) -> Reply {
        Reply::Stream {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(
        mut self,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) -> Reply {
        match &mut self {
            Reply::Full { headers, .. }
            | Reply::Parts { headers, .. }
            | Reply::Stream { headers, .. } => headers.push((name.into(), value.into())),
        }
        self
    }
}

/// The REST error body: `{"ok": false, "error": "..."}`, with `Allow` or `Retry-After` when the
/// error calls for one.
pub(crate) fn error_reply(e: &Error) -> Reply {
    let reply = Reply::json(
        e.status(),
        &serde_json::json!({"ok": false, "error": e.to_string()}),
    );
    with_error_headers(reply, e)
}

/// Adds the header an error calls for, if any: `Allow` to a 405, `Retry-After` to a 503.
pub(crate) fn with_error_headers(reply: Reply, e: &Error) -> Reply {
    match e {
        Error::MethodNotAllowed { allow } => reply.with_header("Allow", *allow),
        Error::Unavailable { retry_after, .. } => {
            reply.with_header("Retry-After", retry_after.to_string())
        }
        _ => reply,
    }
}

/// Splits a request target into its path and its percent-decoded query pairs.
pub(crate) fn split_target(target: &str) -> Result<(String, Vec<(String, String)>), Error> {
    // A control character or a space cannot be in a target (RFC 9112 §3.2); sent escaped, it
    // can.
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::BadRequest(
            "the request target holds a control character; escape it as %XX".into(),
        ));
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path, false)?;
    let mut query = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((percent_decode(k, true)?, percent_decode(v, true)?));
    }
    Ok((path, query))
}

/// Decodes `%XX` escapes (and `+` as a space in a query), refusing text that is not UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let plain = |b: &u8| *b != b'%' && !(plus_is_space && *b == b'+');
    if bytes.iter().all(plain) {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                // from_str_radix alone would take a sign: `%+F` is not an escape.
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => return Err(Error::BadRequest(format!("bad percent-escape in {s:?}"))),
                }
            }
            b'%' => return Err(Error::BadRequest(format!("bad percent-escape in {s:?}"))),
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::BadRequest(format!("{s:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tiny_http::Pieces;

    #[test]
    fn a_target_is_split_and_decoded_whether_or_not_it_has_escapes() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (path, query) = split_target("/api/messages?target=proj-x&limit=35&&flag").unwrap();
        assert_eq!(path, "/api/messages");
        assert_eq!(
            query,
            pairs(&[("target", "proj-x"), ("limit", "35"), ("flag", "")])
        );
        let (path, query) = split_target("/a+b%2F?t=a+b%20c&%C3%A9=%2B").unwrap();
        assert_eq!(path, "/a+b/", "a `+` in the path is itself");
        assert_eq!(query, pairs(&[("t", "a b c"), ("\u{e9}", "+")]));
        for bad in ["/?t=%ZZ", "/?t=%4", "/?t=%+1", "/%FF", "/?t=%C3"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_body_of_parts_is_its_parts_joined_by_commas() {
        let parts = |items: &[&str]| JsonParts {
            head: "{\"messages\":[".into(),
            items: items
                .iter()
                .map(|i| Arc::new(i.to_string()).into())
                .collect(),
            tail: "],\"more\":false}".into(),
        };
        for items in [
            &[][..],
            &["{\"id\":1}"],
            &["{\"id\":1}", "{}", "{\"id\":3}"],
        ] {
            let whole = format!("{{\"messages\":[{}],\"more\":false}}", items.join(","));
            assert_eq!(parts(items).len(), whole.len());
            assert_eq!(parts(items).joined().as_deref(), Some(&whole[..]));
            let mut sent = Vec::new();
            parts(items)
                .for_each_piece(&mut |piece| {
                    let Piece::Bytes(bytes) = piece else {
                        panic!("a piece in memory");
                    };
                    sent.extend_from_slice(bytes);
                    Ok(())
                })
                .unwrap();
            assert_eq!(String::from_utf8(sent).unwrap(), whole);
        }
    }
}
