//! The legacy MCP HTTP+SSE transport (protocol 2024-11-05), for clients configured with
//! `--transport sse`: `GET /sse` opens a session whose first event names the endpoint to POST
//! to (`/messages?sessionId=...`); each POST there is answered 202 and its response travels on
//! the stream, as do resource updates. The session ends when its stream closes, which the stream
//! notices within about a second of its client leaving. A batch's answers travel as one event
//! holding their array. Tool calls, and batches holding one, run on threads of their own,
//! counted under a cap.

use crate::app::App;
use crate::error::Error;
use crate::http::events;
use crate::http::exchange::{Incoming, Reply};
use crate::http::guard::Caller;
use crate::http::streamable::{
    answer_batch, check_batch, context, owner, parse, require_json, send_queued,
};
use crate::mcp::handler::{self, Handled};
use crate::mcp::jsonrpc::{self, RpcError, RpcMessage, INTERNAL_ERROR};
use crate::mcp::session::{Lookup, Session, Transport};
use crate::mcp::DEFAULT_VERSION;
use serde_json::Value;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread;

/// `GET /sse`.
pub(crate) fn open(app: &Arc<App>, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let session = app
        .sessions
        .create(Transport::Legacy, DEFAULT_VERSION, owner(rq, caller))?;
    let place = match app.long_requests.take(&caller.client(), Some(&session.id)) {
        Ok(place) => place,
        Err(e) => {
            app.sessions.end(&session.id);
            return Err(e);
        }
    };
    let app = Arc::clone(app);
    let client = rq.client.clone();
    Ok(Reply::stream(Box::new(move |w| {
        let _place = place;
        let endpoint = format!("/messages?sessionId={}", session.id);
        let outcome = events::event(w, None, Some("endpoint"), &endpoint)
            .and_then(|()| send_queued(w, &session, None, &app.store, &client));
        app.sessions.end(&session.id);
        outcome
    })))
}

/// `POST /messages?sessionId=ID`: 202, with the answer sent on the session's stream (415 unless
/// the body is sent as `application/json`; 503 while the stream has its fill of messages to
/// send, as a response is never dropped). A batch is answered with one event holding the array
/// of its answers. Tool calls, and batches holding one, run on their own thread, so a waiting
/// `fetch_messages` does not hold back the 202 or the session's other requests; past
/// `capacity::LEGACY_TOOL_CALLS` running at once, they are answered with an error at once.
pub(crate) fn post(app: &Arc<App>, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let Some(id) = rq.param("sessionId").or_else(|| rq.param("session_id")) else {
        return Err(Error::BadRequest("sessionId is required".into()));
    };
    let session = match app
        .sessions
        .find(id, Transport::Legacy, owner(rq, caller), None)
    {
        Lookup::Live(s) => s,
        Lookup::Unknown | Lookup::Ended => return Err(Error::NotFound("Session not found".into())),
    };
    require_json(rq)?;
    session.room_for_responses()?;
    match parse(&rq.body)? {
        Value::Array(items) => {
            check_batch(&session, &items)?;
            let calls_a_tool = items
                .iter()
                .any(|m| m.get("method").and_then(Value::as_str) == Some("tools/call"));
            if calls_a_tool {
                let ids = items.iter().filter_map(request_id).collect();
                off_thread(
                    app,
                    &session,
                    caller,
                    Unanswered::Batch(ids),
                    move |app, s, c| answer_batch_on_stream(app, s, c, items),
                );
            } else {
                answer_batch_on_stream(app, &session, caller, items);
            }
        }
        single => match RpcMessage::parse(single) {
            Ok(RpcMessage::Request { id, method, params }) if method == "tools/call" => {
                let unanswered = Unanswered::One(id.clone());
                let m = RpcMessage::Request { id, method, params };
                off_thread(app, &session, caller, unanswered, move |app, s, c| {
                    answer(app, s, c, &m)
                });
            }
            Ok(m) => answer(app, &session, caller, &m),
            Err((id, e)) => session.respond(jsonrpc::error(id.as_ref(), &e)),
        },
    }
    Ok(Reply::text(202, "Accepted"))
}

/// The id of a batch item that is a request (a message with a method and a valid id).
fn request_id(item: &Value) -> Option<Value> {
    item.get("method")?;
    item.get("id")
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
        .cloned()
}

/// The requests of work run on a thread, answered with an error if it cannot run or fails.
enum Unanswered {
    One(Value),
    Batch(Vec<Value>),
}

impl Unanswered {
    /// Answers the requests on `session`'s stream with error `why`: one response, or one array
    /// for a batch.
    fn fail(&self, session: &Session, why: &str) {
        let e = RpcError::new(INTERNAL_ERROR, why);
        match self {
            Unanswered::One(id) => session.respond(jsonrpc::error(Some(id), &e)),
            Unanswered::Batch(ids) => {
                let errors: Vec<_> = ids.iter().map(|id| jsonrpc::error(Some(id), &e)).collect();
                if !errors.is_empty() {
                    session.respond(jsonrpc::batch(&errors));
                }
            }
        }
    }
}

/// Runs `work` on a thread of its own, counted under `capacity::LEGACY_TOOL_CALLS`. When it
/// cannot start, or panics (which would otherwise take the answer with it), its requests are
/// answered with an error instead of leaving the client waiting forever.
fn off_thread(
    app: &Arc<App>,
    session: &Arc<Session>,
    caller: &Caller,
    unanswered: Unanswered,
    work: impl FnOnce(&App, &Session, &Caller) + Send + 'static,
) {
    let Some(running) = app.legacy_tool_calls.take() else {
        unanswered.fail(session, "too many tool calls running; try again shortly");
        return;
    };
    let unanswered = Arc::new(unanswered);
    let failed = Arc::clone(&unanswered);
    let (app, this_session, caller) = (Arc::clone(app), Arc::clone(session), caller.clone());
    let spawned = thread::Builder::new()
        .name("relay-legacy-tool".into())
        .spawn(move || {
            let _running = running;
            let ran = panic::catch_unwind(AssertUnwindSafe(|| work(&app, &this_session, &caller)));
            if ran.is_err() {
                failed.fail(&this_session, "the tool call failed");
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start a thread for a tool call: {e}");
        unanswered.fail(session, "the tool call could not start");
    }
}

/// Handles one message and queues its answer, if any, on the session's stream.
fn answer(app: &App, session: &Session, caller: &Caller, message: &RpcMessage) {
    // The answer goes to the session's stream, not to this request's connection: the client
    // has gone once that stream has, which ends the session. A wait looks at the session, never
    // at the stream's socket, which only the stream's own thread may look at.
    let gone = || session.has_ended();
    let cx = context(app, caller, caller.agent.clone(), &gone);
    // A call the client cancelled gets no answer.
    if let Handled::Answer(answer) = handler::handle(&cx, session, message) {
        session.respond(answer);
    }
}

/// Handles a batch's messages in turn and queues their answers, if any, on the session's
/// stream as one array.
fn answer_batch_on_stream(app: &App, session: &Session, caller: &Caller, items: Vec<Value>) {
    let gone = || session.has_ended();
    let cx = context(app, caller, caller.agent.clone(), &gone);
    let (answers, _) = answer_batch(&cx, session, items);
    if !answers.is_empty() {
        session.respond(jsonrpc::batch(&answers));
    }
}
