//! The legacy MCP HTTP+SSE transport (protocol 2024-11-05), for clients configured with
//! `--transport sse`: `GET /sse` opens a session whose first event names the endpoint to POST
//! to (`/messages?sessionId=...`); each POST there is answered 202 and its response travels on
//! the stream, as do resource updates. The session ends when its stream closes, which the stream
//! notices within about a second of its client leaving. Tool calls run on threads of their own,
//! counted under a cap.

use crate::app::App;
use crate::error::Error;
use crate::http::events;
use crate::http::exchange::{Incoming, Reply};
use crate::http::guard::Caller;
use crate::http::streamable::{check_batch, context, owner, parse, require_json, send_queued};
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
            .and_then(|()| send_queued(w, &session, &app.store, &client));
        app.sessions.end(&session.id);
        outcome
    })))
}

/// `POST /messages?sessionId=ID`: 202, with the answer sent on the session's stream (415 unless
/// the body is sent as `application/json`; 503 while the stream has its fill of messages to
/// send, as a response is never dropped). Tool calls
/// run on their own thread, so a waiting `fetch_messages` does not hold back the 202 or the
/// session's other requests; past `capacity::LEGACY_TOOL_CALLS` running at once, a call is
/// answered with an error at once.
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
    let items = match parse(&rq.body)? {
        Value::Array(items) => {
            check_batch(&session, &items)?;
            items
        }
        single => vec![single],
    };
    for item in items {
        match RpcMessage::parse(item) {
            Ok(RpcMessage::Request { id, method, params }) if method == "tools/call" => {
                let Some(running) = app.legacy_tool_calls.take() else {
                    let busy = RpcError::new(
                        INTERNAL_ERROR,
                        "too many tool calls running; try again shortly",
                    );
                    session.respond(jsonrpc::error(Some(&id), &busy));
                    continue;
                };
                let this_session = Arc::clone(&session);
                let (app, session, caller) =
                    (Arc::clone(app), Arc::clone(&session), caller.clone());
                let reply_to = id.clone();
                let m = RpcMessage::Request { id, method, params };
                let spawned = thread::Builder::new()
                    .name("relay-legacy-tool".into())
                    .spawn(move || {
                        let _running = running;
                        // A panic would otherwise take the answer with it: the client hears an
                        // error instead of waiting forever.
                        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
                            answer(&app, &session, &caller, &m)
                        }));
                        if ran.is_err() {
                            if let RpcMessage::Request { id, .. } = &m {
                                let e = RpcError::new(INTERNAL_ERROR, "the tool call failed");
                                session.respond(jsonrpc::error(Some(id), &e));
                            }
                        }
                    });
                if let Err(e) = spawned {
                    log::error!("cannot start a thread for a tool call: {e}");
                    let busy = RpcError::new(INTERNAL_ERROR, "the tool call could not start");
                    this_session.respond(jsonrpc::error(Some(&reply_to), &busy));
                }
            }
            Ok(m) => answer(app, &session, caller, &m),
            Err((id, e)) => session.respond(jsonrpc::error(id.as_ref(), &e)),
        }
    }
    Ok(Reply::text(202, "Accepted"))
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
