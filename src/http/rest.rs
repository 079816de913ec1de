//! The REST API: the original relay's `GET /api/messages` (newest page, or the oldest page
//! after `since_id`, optionally waiting for one; `newest` picks either, and every page says the
//! channel's `head_id` and whether `more` follows it; with `reader`, what that reader has not
//! seen; with `before_id`, a page of older history; HEAD too, when it neither waits nor moves a
//! reader), `POST /api/messages` (optionally a reply, optionally with an idempotency key),
//! `GET /api/channels` and `GET /healthz`; and the conversation routes `GET /api/unread`,
//! `GET /api/search`, `DELETE /api/messages/{id}` and `DELETE /api/channels/{name}`. Shapes are
//! the original's where it had them (`?detail=1` on channels adds a key); every bad input is a
//! 4xx naming the problem. A client waiting in a blocking fetch is listed as listening on its
//! channel meanwhile.

use crate::agent;
use crate::app::App;
use crate::capacity::MAX_WAIT_SECONDS;
use crate::error::Error;
use crate::fields::{raw_string, raw_string_as_sent};
use crate::http::exchange::{Incoming, JsonParts, Reply};
use crate::http::guard::Caller;
use crate::idempotency;
use crate::message::escape_separators;
use crate::message::{TextJson, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT};
use crate::page_cache::{self, Asked};
use crate::presence::{listing, Kind};
use crate::store::{Draft, Fetch, Posted, Wait};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::io;
use std::mem;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pages whose texts add up to more than this are serialised straight to the socket instead of
/// into memory first, so a slow reader of a large page costs a buffer, not the page.
pub(crate) const STREAMED_PAGE_BYTES: usize = 1024 * 1024;

/// `GET /api/messages?target=T[&limit=N][&since_id=N][&before_id=N][&wait=S][&newest=1]
/// [&reader=R]`, and HEAD.
pub(crate) fn list_messages(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let target = crate::names::check("target", rq.param("target").unwrap_or(""))?;
    let reader = reader(rq, caller)?;
    let limit = rq
        .number_param("limit")?
        .unwrap_or(LIST_DEFAULT_LIMIT)
        .clamp(1, LIST_MAX_LIMIT) as usize;
    let since_id = rq.number_param("since_id")?;
    let wait = match rq.param("wait") {
        None => 0.0,
        Some(raw) => match raw.trim().parse::<f64>() {
            Ok(s) if s >= 0.0 && s.is_finite() => s.min(MAX_WAIT_SECONDS),
            _ => {
                return Err(Error::BadRequest(format!(
                    "wait must be a number of seconds, 0 or more, not {raw:?}"
                )))
            }
        },
    };
    if since_id.is_none() && reader.is_none() && wait > 0.0 {
        return Err(Error::BadRequest(
            "wait needs since_id (the id to wait beyond) or reader".into(),
        ));
    }
    if rq.method == "HEAD" && (reader.is_some() || wait > 0.0) {
        return Err(Error::BadRequest(
            "HEAD takes neither reader nor wait: it must not move a reader or hold a request"
                .into(),
        ));
    }
    let before_id = rq.number_param("before_id")?;
    if before_id.is_some() && (reader.is_some() || wait > 0.0) {
        return Err(Error::BadRequest(
            "before_id reads older history: it takes neither reader nor wait".into(),
        ));
    }
    let query = Fetch {
        target,
        since_id: since_id.unwrap_or(0),
        before_id,
        limit,
        // Without since_id the newest page is the original's answer; with it, or for a
        // reader catching up, the oldest. A page of older history is the newest before its id.
        newest: flag(rq, "newest")?
            .unwrap_or((since_id.is_none() || before_id.is_some()) && reader.is_none()),
        reader,
        // REST pages are streamed when large, so only `limit` bounds them.
        max_text_bytes: None,
    };
    app.store
        .admit_reader(query.reader.as_deref(), &query.target)?;
    let asked = Asked::of(&query, wait > 0.0);
    if let Some(asked) = asked {
        let version = app.store.version(&query.target);
        if let Some(body) = app.pages.get(&query.target, asked, version) {
            return Ok(Reply::json_shared(200, body));
        }
    }
    let page = if wait > 0.0 {
        let _place = app.long_requests.take(&caller.client(), None)?;
        let _here = app.presence.arrive(
            std::slice::from_ref(&query.target),
            Kind::Fetch,
            listener_name(rq, caller)?.as_deref(),
        );
        let wait = Wait {
            until: Instant::now() + Duration::from_secs_f64(wait),
            gone: &|| rq.client.gone(),
        };
        app.store.fetch_unread(&query, Some(wait))?
    } else {
        app.store.fetch_unread(&query, None)?
    };
    // A page is written from its messages' wire JSON, each made once and cached; a large one
    // is written as its texts are read, a few at a time and past the cache.
    let (head, tail) = page_ends(&query.target, page.head_id(), page.more());
    if page.text_bytes() > STREAMED_PAGE_BYTES as u64 {
        return Ok(Reply::json_stream(
            200,
            Box::new(move |w| {
                w.write_all(head.as_bytes())?;
                let mut first = true;
                page.for_each_batch(|batch| {
                    for json in batch {
                        if !mem::take(&mut first) {
                            w.write_all(b",")?;
                        }
                        w.write_all(json.as_bytes())?;
                    }
                    Ok::<(), io::Error>(())
                })?;
                w.write_all(tail.as_bytes())?;
                w.flush()
            }),
        ));
    }
    let version = page.version();
    let items = app.store.page_json(page);
    let parts = JsonParts { head, items, tail };
    // A page with a text sent from the journal is not kept whole: the journal is where it is.
    let whole = match asked {
        Some(asked) if parts.len() <= page_cache::MAX_PAGE_BYTES => {
            parts.joined().map(|body| (asked, Arc::new(body)))
        }
        _ => None,
    };
    match whole {
        Some((asked, body)) => {
            app.pages
                .put(&query.target, asked, version, Arc::clone(&body), body.len());
            Ok(Reply::json_shared(200, body))
        }
        None => Ok(Reply::json_parts(200, parts)),
    }
}

/// What a page of `GET /api/messages` holds before and after its messages:
/// `{"target":T,"messages":[` and `],"head_id":N,"more":B}`, the bytes serde gives the struct
/// `{target, messages, head_id, more}`.
fn page_ends(target: &str, head_id: u64, more: bool) -> (String, String) {
    let target = escape_separators(serde_json::to_string(target).unwrap_or_default());
    (
        format!("{{\"target\":{target},\"messages\":["),
        format!("],\"head_id\":{head_id},\"more\":{more}}}"),
    )
}

/// The `reader` parameter, checked: a name, and with an agent's token only that agent's own.
fn reader(rq: &Incoming, caller: &Caller) -> Result<Option<String>, Error> {
    let Some(raw) = rq.param("reader") else {
        return Ok(None);
    };
    let reader = crate::names::check("reader", raw)?;
    agent::own_reader(&reader, caller.agent.as_deref())?;
    Ok(Some(reader))
}

/// A yes/no query parameter: `1`/`true` or `0`/`false`, or a 400 naming it.
fn flag(rq: &Incoming, key: &str) -> Result<Option<bool>, Error> {
    match rq.param(key).map(str::trim) {
        None => Ok(None),
        Some("1" | "true") => Ok(Some(true)),
        Some("0" | "false") => Ok(Some(false)),
        Some(raw) => Err(Error::BadRequest(format!(
            "{key} must be 1, true, 0 or false, not {raw:?}"
        ))),
    }
}

/// `POST /api/messages` with a JSON object `{"target","sender","text"}` (and optionally
/// `"source"`, which the archive records: `rest` by default, `web-ui` from the page;
/// `"reply_to"`, the id of the message answered; `"idempotency_key"`, also taken from the
/// `Idempotency-Key` header). A retry of a post already made answers 200 with that message.
pub(crate) fn post_message(app: &App, rq: &mut Incoming, caller: &Caller) -> Result<Reply, Error> {
    // Checked as UTF-8 whole, once: serde_json then checks none of its strings again, and a
    // long text's JSON string can become the message's JSON with no further check.
    let body = String::from_utf8(std::mem::take(&mut rq.body))
        .map_err(|_| Error::BadRequest("body is not valid JSON: it is not UTF-8".into()))?;
    let fields: PostFields = serde_json::from_str(&body).map_err(|e| match e.classify() {
        Category::Data => {
            Error::BadRequest("body must be a JSON object with target, sender and text".into())
        }
        _ => Error::BadRequest(format!("body is not valid JSON: {e}")),
    })?;
    let sender = agent::sender(
        raw_string(fields.sender, "sender")?,
        caller.agent.as_deref(),
    )?;
    let decoded = raw_string_as_sent(fields.text, "text")?
        .ok_or_else(|| Error::BadRequest("text is required".into()))?;
    let source = match raw_string(fields.source, "source")? {
        Some(s)
            if !s.is_empty()
                && s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            s
        }
        Some(_) => {
            return Err(Error::BadRequest(
                "source must be 1 to 32 letters, digits, - or _".into(),
            ))
        }
        None => "rest".into(),
    };
    let draft = Draft {
        target: raw_string(fields.target, "target")?
            .ok_or_else(|| Error::BadRequest("target is required".into()))?,
        sender,
        text: decoded.text,
        reply_to: match fields
            .reply_to
            .map(|raw| serde_json::from_str::<Value>(raw.get()))
        {
            None | Some(Ok(Value::Null)) => None,
            Some(v) => Some(
                v.ok()
                    .and_then(|v| v.as_u64())
                    .filter(|id| *id > 0)
                    .ok_or_else(|| {
                        Error::BadRequest(
                            "reply_to must be the id of a message (a whole number)".into(),
                        )
                    })?,
            ),
        },
        idempotency_key: match (
            raw_string(fields.idempotency_key, "idempotency_key")?,
            rq.header("idempotency-key"),
        ) {
            (Some(body), Some(header)) if body.trim() != header.trim() => {
                return Err(Error::BadRequest(
                    "the Idempotency-Key header and the idempotency_key field differ".into(),
                ))
            }
            (Some(key), _) => Some(key),
            (None, Some(header)) => Some(idempotency::check_key_from(
                header,
                "the Idempotency-Key header",
            )?),
            (None, None) => None,
        },
        source,
    };
    // A short text is escaped faster than its JSON string can be copied and checked. A long
    // one's JSON string stays where it is in the body, which then becomes the message's JSON
    // (`Encoded::with_text`): no second buffer. Another writer's escapes (`\/`, `\u0041`) read
    // the same but are not the bytes this relay writes: such a text is escaped anew.
    let text_json = match (body.len(), fields.text) {
        (len, Some(raw)) if len >= TEXT_JSON_MIN_BODY && decoded.as_written => {
            let at = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize);
            at.map(|at| at..at + raw.get().len())
                .filter(|span| span.end <= body.len())
        }
        _ => None,
    }
    .map(|span| TextJson {
        buf: body,
        span,
        chars: Some(decoded.chars),
    });
    let posted = app.store.post_with_text_json(draft, text_json)?;
    let status = if posted.repeated { 200 } else { 201 };
    Ok(Reply::json_parts(status, posted_body(&posted)))
}

/// The smallest body whose text's JSON string is taken from it rather than made again.
const TEXT_JSON_MIN_BODY: usize = 4096;

/// The fields of a post's body, each the JSON it was sent as, borrowed from the body: the body
/// is parsed once, and only the fields the relay takes are decoded. Other fields are skipped; a
/// field given twice counts as given last, as in any JSON object.
#[derive(Default)]
struct PostFields<'a> {
    target: Option<&'a RawValue>,
    sender: Option<&'a RawValue>,
    text: Option<&'a RawValue>,
    reply_to: Option<&'a RawValue>,
    idempotency_key: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for PostFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "snake_case")]
        enum Name {
            Target,
            Sender,
            Text,
            ReplyTo,
            IdempotencyKey,
            Source,
            #[serde(other)]
            Other,
        }
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = PostFields<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = PostFields::default();
                while let Some(key) = map.next_key::<Name>()? {
                    let field = match key {
                        Name::Target => &mut fields.target,
                        Name::Sender => &mut fields.sender,
                        Name::Text => &mut fields.text,
                        Name::ReplyTo => &mut fields.reply_to,
                        Name::IdempotencyKey => &mut fields.idempotency_key,
                        Name::Source => &mut fields.source,
                        Name::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *field = Some(map.next_value()?);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// The answer to a post: `{"ok":true,"posted":ID,"message":M}`, with `"repeated":true` after
/// the id for a retry, where M is the message's wire JSON as pages and streams send it, shared,
/// not copied.
fn posted_body(posted: &Posted) -> JsonParts {
    let repeated = if posted.repeated {
        ",\"repeated\":true"
    } else {
        ""
    };
    JsonParts {
        head: format!(
            "{{\"ok\":true,\"posted\":{}{repeated},\"message\":",
            posted.message.id
        ),
        items: vec![Arc::clone(&posted.encoded.json).into()],
        tail: "}".into(),
    }
}

/// `GET /api/unread?reader=R`: for every channel, how many messages lie past R's position.
pub(crate) fn unread(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let reader =
        reader(rq, caller)?.ok_or_else(|| Error::BadRequest("reader is required".into()))?;
    // Written from the store's own list (a line per channel), not through a JSON tree of it,
    // which would cost a few times the answer for every channel.
    #[derive(Serialize)]
    struct Answer<'a> {
        reader: &'a str,
        channels: Vec<Channel>,
        total: usize,
    }
    #[derive(Serialize)]
    struct Channel {
        target: String,
        unread: usize,
        position: u64,
    }
    let channels: Vec<Channel> = app
        .store
        .unread(&reader)
        .into_iter()
        .map(|u| Channel {
            target: u.target,
            unread: u.count,
            position: u.position,
        })
        .collect();
    let total = channels.iter().map(|c| c.unread).sum();
    Ok(Reply::json(
        200,
        &Answer {
            reader: &reader,
            channels,
            total,
        },
    ))
}

/// Default and largest number of search hits.
pub(crate) const SEARCH_DEFAULT_LIMIT: u64 = 50;
pub(crate) const SEARCH_MAX_LIMIT: u64 = 500;

/// `GET /api/search?q=Q[&target=T][&sender=S][&limit=N]`: messages whose text contains Q
/// (ignoring case), newest first.
pub(crate) fn search(app: &App, rq: &Incoming) -> Result<Reply, Error> {
    let query = rq.param("q").unwrap_or("");
    if query.trim().is_empty() {
        return Err(Error::BadRequest(
            "q (the text to search for) is required".into(),
        ));
    }
    let target = rq
        .param("target")
        .map(|t| crate::names::check("target", t))
        .transpose()?;
    let sender = rq
        .param("sender")
        .map(|s| crate::names::check("sender", s))
        .transpose()?;
    let limit = rq
        .number_param("limit")?
        .unwrap_or(SEARCH_DEFAULT_LIMIT)
        .clamp(1, SEARCH_MAX_LIMIT) as usize;
    let hits = app
        .store
        .search(query, target.as_deref(), sender.as_deref(), limit)?;
    Ok(Reply::json(200, &json!({"query": query, "messages": hits})))
}

/// `DELETE /api/messages/{id}`.
pub(crate) fn delete_message(
    app: &App,
    rq: &Incoming,
    caller: &Caller,
    id: &str,
) -> Result<Reply, Error> {
    may_delete(app, rq, caller)?;
    let id = crate::fields::whole_number(id)
        .ok_or_else(|| Error::BadRequest(format!("{id:?} is not a message id")))?;
    let m = app.store.delete_message(id)?;
    Ok(Reply::json(
        200,
        &json!({"ok": true, "deleted": m.id, "target": m.target}),
    ))
}

/// `DELETE /api/channels/{name}`.
pub(crate) fn delete_channel(
    app: &App,
    rq: &Incoming,
    caller: &Caller,
    name: &str,
) -> Result<Reply, Error> {
    may_delete(app, rq, caller)?;
    // The path is percent-decoded once, with the request (`exchange`): `name` is the name.
    let name = crate::names::check("channel", name)?;
    let n = app.store.delete_channel(&name)?;
    Ok(Reply::json(
        200,
        &json!({"ok": true, "deleted_channel": name, "messages": n}),
    ))
}

/// Deletion is for the operator: the main token, or with no token at all, a caller on this
/// machine. An agent's token never deletes.
fn may_delete(app: &App, rq: &Incoming, caller: &Caller) -> Result<(), Error> {
    if caller.agent.is_some() {
        return Err(Error::Forbidden(
            "an agent's token may not delete; use the main auth_token".into(),
        ));
    }
    if app.config.auth_token.is_some() {
        return Ok(());
    }
    if !app.config.agents.is_empty() {
        return Err(Error::Forbidden(
            "deleting needs the main auth_token, which is not set".into(),
        ));
    }
    match rq.peer {
        Some(ip) if is_loopback(ip) => Ok(()),
        _ => Err(Error::Forbidden(
            "without an auth_token, deleting is only allowed from this machine (loopback)".into(),
        )),
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `GET /api/channels[?limit=N][&after=NAME][&detail=1]`: every channel, as the original
/// answered; with `limit` or `after`, one page of them (at most `limit`, default and largest
/// 1000, after the name `after`), and `next` to pass as `after` when more follow. `detail=1`
/// adds each channel's newest id, message count and listeners under `detail` (of the page's
/// channels, when paged).
pub(crate) fn channels(app: &App, rq: &Incoming) -> Result<Reply, Error> {
    let after = rq.param("after");
    let limit = rq.number_param("limit")?;
    let with_detail = flag(rq, "detail")? == Some(true);
    Ok(Reply::json(
        200,
        &listing(&app.store, &app.presence, after, limit, with_detail),
    ))
}

/// The name a waiting client gives for presence: `X-Relay-Agent`, else `?as=`, else the agent
/// its token belongs to. A name given must be one a post could use (400 otherwise).
pub(crate) fn listener_name(rq: &Incoming, caller: &Caller) -> Result<Option<String>, Error> {
    let given = [
        ("X-Relay-Agent", rq.header("x-relay-agent")),
        ("as", rq.param("as")),
    ]
    .into_iter()
    .find_map(|(field, raw)| Some((field, raw.filter(|n| !n.trim().is_empty())?)));
    match given {
        Some((field, raw)) => crate::names::check(field, raw).map(Some),
        None => Ok(caller.agent.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Encoded, Message};
    use std::sync::Arc;

    #[test]
    fn the_posted_body_holds_the_message_as_pages_send_it() {
        for text in ["plain", "q \" b \\ \u{1} é 😀", "sep\u{2028}and\u{2029}"] {
            for (reply_to, names) in [None, Some(7)].into_iter().zip([0, 1]) {
                for repeated in [false, true] {
                    let message = Arc::new(Message {
                        id: 42,
                        ts: 1_764_000_000.000_001,
                        target: ["chan\u{2029}\"x\"", "chan"][names].into(),
                        sender: ["codex\u{2028}", "codex"][names].into(),
                        reply_to,
                        text: text.into(),
                    });
                    let posted = Posted {
                        encoded: Encoded::new(&message),
                        message: Arc::clone(&message),
                        repeated,
                    };
                    let body = posted_body(&posted)
                        .joined()
                        .expect("a post's answer is in memory");
                    let wire = crate::message::wire_json(&message);
                    let retry = if repeated { ",\"repeated\":true" } else { "" };
                    let expected =
                        format!("{{\"ok\":true,\"posted\":42{retry},\"message\":{wire}}}");
                    assert_eq!(body, expected);
                    assert!(!body.contains(['\u{2028}', '\u{2029}']), "{body}");
                    let tree: Value = serde_json::from_str(&body).unwrap();
                    let mut want = json!({"ok": true, "posted": 42, "message": message.as_ref()});
                    if repeated {
                        want["repeated"] = json!(true);
                    }
                    assert_eq!(tree, want);
                }
            }
        }
    }
}
