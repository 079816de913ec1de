//! The REST API of the original relay: `GET /api/messages` (newest page, or the oldest page
//! after `since_id`, optionally waiting for one; `newest` picks either, and every page says the
//! channel's `head_id` and whether `more` follows it), `POST /api/messages`, `GET /api/channels` and
//! `GET /healthz`. Shapes are the original's (`?detail=1` on channels adds a key); every bad
//! input is a 4xx naming the problem. A client waiting in a blocking fetch is listed as
//! listening on its channel meanwhile.

use crate::app::App;
use crate::error::Error;
use crate::http::exchange::{Incoming, Reply};
use crate::http::guard::Caller;
use crate::message::Message;
use crate::presence::{detail, Kind};
use crate::store::{Draft, Fetch};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default and largest page of `GET /api/messages`.
pub const LIST_DEFAULT_LIMIT: u64 = 200;
pub const LIST_MAX_LIMIT: u64 = 500;
/// Pages whose texts add up to more than this are serialised straight to the socket instead of
/// into memory first, so a slow reader of a large page costs a buffer, not the page.
pub const STREAMED_PAGE_BYTES: usize = 1024 * 1024;

/// Longest `wait`, in seconds.
pub const MAX_WAIT_SECONDS: f64 = 50.0;

/// `GET /api/messages?target=T[&limit=N][&since_id=N][&wait=S][&newest=1]`.
pub fn list_messages(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let target = crate::store::name("target", rq.param("target").unwrap_or(""))?;
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
    if since_id.is_none() && wait > 0.0 {
        return Err(Error::BadRequest(
            "wait needs since_id: the id to wait beyond".into(),
        ));
    }
    let query = Fetch {
        target,
        since_id: since_id.unwrap_or(0),
        limit,
        // Without since_id the newest page is the original's answer; with it, the oldest.
        newest: flag(rq, "newest")?.unwrap_or(since_id.is_none()),
    };
    let page = if wait > 0.0 {
        let _place = app.long_requests.take(&caller.client, None)?;
        let _here = app.presence.arrive(
            std::slice::from_ref(&query.target),
            Kind::Fetch,
            listener_name(rq, caller).as_deref(),
        );
        app.store
            .fetch(&query, Some(Instant::now() + Duration::from_secs_f64(wait)))
    } else {
        app.store.fetch(&query, None)
    };
    #[derive(Serialize)]
    struct Answer {
        target: String,
        messages: Vec<Arc<Message>>,
        head_id: u64,
        more: bool,
    }
    let large = page.messages.iter().map(|m| m.text.len()).sum::<usize>() > STREAMED_PAGE_BYTES;
    let answer = Answer {
        target: query.target,
        messages: page.messages,
        head_id: page.head_id,
        more: page.more,
    };
    Ok(if large {
        Reply::json_streamed(200, answer)
    } else {
        Reply::json(200, &answer)
    })
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
/// `"source"`, which the archive records: `rest` by default, `web-ui` from the page).
pub fn post_message(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let body: Value = serde_json::from_slice(&rq.body)
        .map_err(|e| Error::BadRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(fields) = body else {
        return Err(Error::BadRequest(
            "body must be a JSON object with target, sender and text".into(),
        ));
    };
    let sender = match (field(&fields, "sender")?, &caller.agent) {
        (None, Some(agent)) => agent.clone(),
        (Some(s), Some(agent)) if s.trim() != agent => {
            return Err(Error::Forbidden(format!(
                "this token may only post as {agent:?}"
            )))
        }
        (Some(s), _) => s,
        (None, None) => return Err(Error::BadRequest("sender is required".into())),
    };
    let draft = Draft {
        target: field(&fields, "target")?
            .ok_or_else(|| Error::BadRequest("target is required".into()))?,
        sender,
        text: field(&fields, "text")?
            .ok_or_else(|| Error::BadRequest("text is required".into()))?,
    };
    let source = match field(&fields, "source")? {
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
    let m = app.store.post(draft)?;
    app.logs.posted(&m, &source);
    Ok(Reply::json(
        201,
        &json!({"ok": true, "posted": m.id, "message": m.as_ref()}),
    ))
}

/// Largest page of `GET /api/channels`.
pub const CHANNELS_MAX_LIMIT: u64 = 1000;

/// `GET /api/channels[?limit=N][&after=NAME][&detail=1]`: every channel, as the original
/// answered; with `limit` or `after`, one page of them (at most `limit`, default and largest
/// 1000, after the name `after`), and `next` to pass as `after` when more follow. `detail=1`
/// adds each channel's newest id, message count and listeners under `detail`.
pub fn channels(app: &App, rq: &Incoming) -> Result<Reply, Error> {
    let after = rq.param("after");
    let limit = rq.number_param("limit")?;
    if matches!(rq.param("detail"), Some("1" | "true")) {
        return Ok(Reply::json(
            200,
            &json!({"channels": app.store.channels(), "detail": detail(&app.store, &app.presence)}),
        ));
    }
    if after.is_none() && limit.is_none() {
        return Ok(Reply::json(200, &json!({"channels": app.store.channels()})));
    }
    let limit = limit
        .unwrap_or(CHANNELS_MAX_LIMIT)
        .clamp(1, CHANNELS_MAX_LIMIT) as usize;
    let (page, more) = app.store.channels_page(after, limit);
    let mut body = json!({"channels": page});
    if more {
        body["next"] = json!(page.last());
    }
    Ok(Reply::json(200, &body))
}

/// The name a waiting client gives for presence: `X-Relay-Agent`, else `?as=`, else the agent
/// its token belongs to.
pub fn listener_name(rq: &Incoming, caller: &Caller) -> Option<String> {
    rq.header("x-relay-agent")
        .or_else(|| rq.param("as"))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| caller.agent.clone())
}

/// A string field of a JSON body: None if absent or null, 400 if another type.
fn field(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::BadRequest(format!("{key} must be a string"))),
    }
}
