//! MCP Streamable HTTP at `/mcp`. `POST` carries client messages: `initialize` starts a session
//! (its id goes out in `Mcp-Session-Id`; one sent in a live session is refused), notifications
//! and responses get 202, requests get one JSON reply (a batch only on 2025-03-26 sessions), or,
//! when the client cancelled them while they ran, an event stream that ends without a response.
//! `GET` opens a stream of the session's server messages (resource updates), answered at once
//! with 400 when there is no session; with `Last-Event-ID` it resumes a stream, sending again
//! what it sent after that event. `DELETE` ends a session. The Accept header is read leniently
//! and replies are always JSON. With `?listen=proj-x&as=claude` on the URL, the session declares
//! the `claude/channel` capability and its `GET` stream carries other agents' new messages there
//! as channel events.

use crate::app::App;
use crate::capacity::MAX_WAIT_SECONDS;
use crate::error::Error;
use crate::http::events::{self, Pacing};
use crate::http::exchange::{ClientWatch, Incoming, Reply};
use crate::http::guard::Caller;
use crate::listen::Listen;
use crate::mcp::context::Context;
use crate::mcp::handler::{self, Handled};
use crate::mcp::jsonrpc::{self, Outgoing, RpcError, RpcMessage, NOT_RUN};
use crate::mcp::session::{GetStream, Lookup, Owner, Session, Transport};
use crate::mcp::{is_supported, SUPPORTED_VERSIONS};
use crate::presence::Kind;
use crate::store::Store;
use serde_json::Value;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `MCP-Protocol-Version` header, checked against every version this relay speaks (not the
/// session's: clients are known to send another supported one).
fn protocol_version(rq: &Incoming) -> Result<Option<&str>, Error> {
    match rq.header("mcp-protocol-version") {
        None => Ok(None),
        Some(v) if is_supported(v.trim()) => Ok(Some(v.trim())),
        Some(v) => Err(Error::BadRequest(format!(
            "Unsupported MCP-Protocol-Version: {v}; supported: {}",
            SUPPORTED_VERSIONS.join(", ")
        ))),
    }
}

/// Who is naming or opening a session.
pub(crate) fn owner<'a>(rq: &Incoming, caller: &'a Caller) -> Owner<'a> {
    Owner {
        credential: &caller.owner,
        address: rq.peer,
    }
}

/// The session named by `Mcp-Session-Id`: 400 without one, 404 for an unknown or ended one, or
/// one created with another credential.
fn session(
    app: &App,
    rq: &Incoming,
    caller: &Caller,
    version: Option<&str>,
) -> Result<Arc<Session>, Error> {
    let Some(id) = rq.header("mcp-session-id") else {
        return Err(Error::BadRequest(
            "Bad Request: Mcp-Session-Id header is required".into(),
        ));
    };
    match app
        .sessions
        .find(id.trim(), Transport::Streamable, owner(rq, caller), version)
    {
        Lookup::Live(s) => Ok(s),
        Lookup::Unknown | Lookup::Ended => Err(Error::NotFound("Session not found".into())),
    }
}

/// Whether `Mcp-Session-Id` names a session `caller` may use.
fn named_session_is_live(app: &App, rq: &Incoming, caller: &Caller, version: Option<&str>) -> bool {
    rq.header("mcp-session-id").is_some() && session(app, rq, caller, version).is_ok()
}

/// What an MCP call by `caller` may use; `name` is how presence lists the caller, and
/// `client_gone` says whether the connection the answer goes to has closed. Both transports
/// build their calls' context here.
pub(crate) fn context<'a>(
    app: &'a App,
    caller: &'a Caller,
    name: Option<String>,
    client_gone: &'a dyn Fn() -> bool,
) -> Context<'a> {
    Context {
        store: &app.store,
        logs: &app.logs,
        long_requests: &app.long_requests,
        sessions: &app.sessions,
        agent: caller.agent.as_deref(),
        peer: caller.peer,
        presence: &app.presence,
        fetches: &app.fetches,
        name,
        wait_until: None,
        client_gone,
    }
}

/// Most messages in one batch.
pub(crate) const BATCH_MAX_MESSAGES: usize = 128;
/// Bytes of answers a batch's reply may hold: a request after the answers reach this many is
/// not run, and is answered with `NOT_RUN` instead.
pub(crate) const BATCH_MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Refuses a batch that holds `initialize`.
fn refuse_initialize(items: &[Value]) -> Result<(), Error> {
    if items
        .iter()
        .any(|m| m.get("method").and_then(Value::as_str) == Some("initialize"))
    {
        return Err(Error::BadRequest(
            "initialize must not be part of a batch".into(),
        ));
    }
    Ok(())
}

/// Refuses, on either transport, a batch that holds `initialize`, one on a session that
/// negotiated a version without batches (all but 2025-03-26; a legacy session counts as
/// 2025-03-26 until its `initialize`), an empty one, and one of more than
/// [`BATCH_MAX_MESSAGES`] messages.
pub(crate) fn check_batch(session: &Session, items: &[Value]) -> Result<(), Error> {
    refuse_initialize(items)?;
    if session.version() != "2025-03-26" {
        return Err(Error::BadRequest(
            "batches are only supported on 2025-03-26 sessions".into(),
        ));
    }
    if items.is_empty() {
        return Err(Error::BadRequest(
            "an empty batch is not a valid request".into(),
        ));
    }
    if items.len() > BATCH_MAX_MESSAGES {
        return Err(Error::BadRequest(format!(
            "a batch holds at most {BATCH_MAX_MESSAGES} messages, not {}",
            items.len()
        )));
    }
    Ok(())
}

/// What `?listen=C[,C...]&as=NAME[&from=S]` on the MCP URL asks for: channel events for new
/// messages from others on those channels, on the session's `GET` stream. A name a post could
/// not use is a bad request.
fn listen(rq: &Incoming) -> Result<Option<Listen>, Error> {
    let from: Vec<String> = rq
        .query
        .iter()
        .filter(|(k, _)| k == "from")
        .map(|(_, v)| v.clone())
        .collect();
    match rq.param("listen") {
        Some(channels) => Listen::parse(channels, rq.param("as"), &from),
        None => Ok(None),
    }
}

/// Refuses with 415 a POST to an MCP endpoint whose Content-Type is not `application/json`
/// (parameters such as `charset=utf-8` allowed), or that has none: every MCP client sends it.
pub(crate) fn require_json(rq: &Incoming) -> Result<(), Error> {
    let sent = rq.header("content-type");
    let media_type = sent.and_then(|t| t.split(';').next()).map(str::trim);
    if media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    let got = match sent {
        Some(t) => format!("not {:?}", t.trim()),
        None => "and none was sent".into(),
    };
    Err(Error::UnsupportedMediaType(format!(
        "Unsupported Media Type: Content-Type must be application/json, {got}"
    )))
}

/// A request body as JSON, or a parse error.
pub(crate) fn parse(body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Parse(format!("Parse error: {e}")))
}

/// `POST /mcp`.
pub(crate) fn post(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    require_json(rq)?;
    let version = protocol_version(rq)?;
    let body = parse(&rq.body)?;
    let gone = || rq.client.gone();
    let cx = context(
        app,
        caller,
        crate::http::rest::listener_name(rq, caller)?,
        &gone,
    );
    let body = match body {
        Value::Array(items) => return batch(app, rq, caller, version, &cx, items),
        single => single,
    };
    let message = match RpcMessage::parse(body) {
        Ok(m) => m,
        Err((id, e)) => return Ok(json_reply(400, jsonrpc::error(id.as_ref(), &e))),
    };
    if let RpcMessage::Request { id, method, params } = &message {
        // An `initialize` naming a session of this client is that session's second one, which
        // it refuses; one naming no session, or an unknown or ended one, starts a session.
        if method == "initialize" && !named_session_is_live(app, rq, caller, version) {
            let version = match handler::negotiate(params) {
                Ok(version) => version,
                Err(e) => return Ok(json_reply(200, jsonrpc::error(Some(id), &e))),
            };
            let listen = listen(rq)?;
            let session = app
                .sessions
                .create(Transport::Streamable, version, owner(rq, caller))?;
            let mut result = handler::initialize_result(version);
            if let Some(listen) = listen {
                listen.declare(&mut result);
                app.sessions.set_listen(&session, listen);
            }
            let result = jsonrpc::result(id, jsonrpc::outgoing(&result));
            return Ok(json_reply(200, result).with_header("Mcp-Session-Id", session.id.clone()));
        }
    }
    let session = session(app, rq, caller, version)?;
    Ok(match handler::handle(&cx, &session, &message) {
        Handled::Answer(answer) => json_reply(200, answer),
        Handled::Nothing => Reply::empty(202),
        Handled::Cancelled => cancelled_reply(),
    })
}

/// The reply to a POST whose requests were all cancelled while they ran. A request must be
/// answered with JSON or with an event stream, and a cancelled request gets no response: so an
/// event stream that ends at once, without one. (The client that cancelled ignores whatever
/// comes; a JSON-RPC error would be a response all the same.)
fn cancelled_reply() -> Reply {
    Reply::stream(Box::new(|_| Ok(())))
}

/// A batch of JSON-RPC messages (2025-03-26 sessions only): each is answered in turn, and the
/// answers go back together.
fn batch(
    app: &App,
    rq: &Incoming,
    caller: &Caller,
    version: Option<&str>,
    cx: &Context,
    items: Vec<Value>,
) -> Result<Reply, Error> {
    refuse_initialize(&items)?;
    let session = session(app, rq, caller, version)?;
    check_batch(&session, &items)?;
    let (answers, cancelled) = answer_batch(cx, &session, items);
    Ok(if answers.is_empty() && cancelled {
        cancelled_reply()
    } else if answers.is_empty() {
        Reply::empty(202)
    } else {
        json_reply(200, jsonrpc::batch(&answers))
    })
}

/// Handles the messages of a batch checked by [`check_batch`] in turn, on either transport:
/// their answers, and whether a call among them was cancelled (and so has none).
pub(crate) fn answer_batch(
    cx: &Context,
    session: &Session,
    items: Vec<Value>,
) -> (Vec<Outgoing>, bool) {
    // The batch's calls wait by turns, and all together no longer than one call may.
    let cx = Context {
        wait_until: Some(Instant::now() + Duration::from_secs_f64(MAX_WAIT_SECONDS)),
        name: cx.name.clone(),
        ..*cx
    };
    let mut answers = Vec::new();
    let mut answered_bytes = 0;
    let mut cancelled = false;
    for item in items {
        let answer = match RpcMessage::parse(item) {
            Ok(RpcMessage::Request { id, .. }) if answered_bytes >= BATCH_MAX_ANSWER_BYTES => {
                let e = RpcError::new(
                    NOT_RUN,
                    format!(
                        "not run: the batch's earlier answers already hold \
                         {BATCH_MAX_ANSWER_BYTES} bytes; send this request again on its own"
                    ),
                );
                Some(jsonrpc::error(Some(&id), &e))
            }
            Ok(m) => match handler::handle(&cx, session, &m) {
                Handled::Answer(answer) => Some(answer),
                Handled::Nothing => None,
                Handled::Cancelled => {
                    cancelled = true;
                    None
                }
            },
            Err((id, e)) => Some(jsonrpc::error(id.as_ref(), &e)),
        };
        if let Some(answer) = answer {
            answered_bytes += answer.get().len();
            answers.push(answer);
        }
    }
    (answers, cancelled)
}

/// A reply whose body is `answer` as it was serialised.
pub(crate) fn json_reply(status: u16, answer: Outgoing) -> Reply {
    Reply::Full {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: answer.into_bytes(),
    }
}

/// `GET /mcp`: one of the session's streams of server messages. Its events carry ids
/// (`<session>-get-<stream>` for the priming event, `<session>-get-<stream>-<event>` after it);
/// a `GET` whose `Last-Event-ID` is one of them resumes that stream, sending first the events it
/// sent after that one which the session still keeps (its streams' newest 100 events, within
/// 1 MiB). Any other `Last-Event-ID` opens a new stream, as if none were sent.
pub(crate) fn get(app: &Arc<App>, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let session = session(app, rq, caller, protocol_version(rq)?)?;
    if session.listen().is_none() {
        // A session restored after a restart: the URL still says what it listens to.
        if let Some(listen) = listen(rq)? {
            app.sessions.set_listen(&session, listen);
        }
    }
    let place = app
        .long_requests
        .take(&caller.client(), Some(&session.id))?;
    let here = session.listen().map(|l| {
        app.presence
            .arrive(&l.channels, Kind::Session, l.name.as_deref())
    });
    static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
    let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
    let resumed = resumed(rq, &session);
    let stream = GetStream {
        number: resumed.map_or(connection, |(number, _)| number),
        connection,
    };
    let store = Arc::clone(&app.store);
    let client = rq.client.clone();
    Ok(Reply::stream(Box::new(move |w| {
        let (_place, _here) = (place, here);
        let again = session.serve(stream, resumed.map(|(_, after)| after), &store);
        let sent = || {
            if resumed.is_none() {
                let priming = format!(
                    "id: {}-get-{}\nretry: 3000\ndata: \n\n",
                    session.id, stream.number
                );
                w.write_all(priming.as_bytes())?;
                w.flush()?;
            }
            for (event, m) in again {
                events::event(
                    w,
                    Some(&event_id(&session, stream, event)),
                    Some("message"),
                    m.get(),
                )?;
            }
            send_queued(w, &session, Some(stream), &store, &client)
        };
        let outcome = sent();
        session.stop_serving(stream);
        outcome
    })))
}

/// The stream a `GET` resumes and the number of the last event of it that its client had
/// (0 for the priming event), from a `Last-Event-ID` that one of `session`'s streams gave out.
fn resumed(rq: &Incoming, session: &Session) -> Option<(u64, u64)> {
    let last = rq.header("last-event-id")?.trim();
    let rest = last
        .strip_prefix(session.id.as_str())?
        .strip_prefix("-get-")?;
    let (number, event) = rest.split_once('-').unwrap_or((rest, "0"));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(number) || !digits(event) {
        return None;
    }
    Some((number.parse().ok()?, event.parse().ok()?))
}

/// The id of event `event` of `stream`.
fn event_id(session: &Session, stream: GetStream, event: u64) -> String {
    format!("{}-get-{}-{event}", session.id, stream.number)
}

/// Writes `session`'s queued messages to its stream `w` as they come, with keep-alives and a
/// look at the connection while none come (`events::Pacing`), until the session ends, the relay
/// stops, a write fails, the client goes or (a `GET` stream) another connection resumes the
/// stream: the stream's place, its presence and (on the legacy transport) its session are freed
/// within about a second of the client leaving. Only the thread serving the connection may look
/// at it, so the look is made here. The events of a `GET` stream carry ids.
pub(crate) fn send_queued(
    w: &mut dyn Write,
    session: &Session,
    stream: Option<GetStream>,
    store: &Store,
    client: &ClientWatch,
) -> io::Result<()> {
    let mut pacing = Pacing::new();
    loop {
        let next = match stream {
            None => session
                .next_message(pacing.wait_until(), store)
                .map(|m| (None, m)),
            Some(stream) => session
                .next_event(stream, pacing.wait_until(), store)
                .map(|(event, m)| (Some(event_id(session, stream, event)), m)),
        };
        match next {
            Some((id, m)) => {
                events::event(w, id.as_deref(), Some("message"), m.get())?;
                pacing.sent();
            }
            None if session.has_ended() || store.is_closed() => return Ok(()),
            None if stream.is_some_and(|s| !session.serves(s)) => return Ok(()),
            None => {
                if !pacing.idle(w, client)? {
                    return Ok(());
                }
            }
        }
    }
}

/// `DELETE /mcp`: ends the session; later requests with its id get 404.
pub(crate) fn delete(app: &App, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let session = session(app, rq, caller, protocol_version(rq)?)?;
    app.sessions.end(&session.id);
    Ok(Reply::empty(204))
}
