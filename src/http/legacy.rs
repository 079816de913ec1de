//! The legacy MCP HTTP+SSE transport (protocol 2024-11-05), for clients configured with
//! `--transport sse`: `GET /sse` opens a session whose first event names the endpoint to POST
//! to (`/messages?sessionId=...`); each POST there is answered 202 and its response travels on
//! the stream, as do resource updates. The session ends when its stream closes.

use crate::app::App;
use crate::error::Error;
use crate::http::events;
use crate::http::exchange::{Incoming, Reply};
use crate::http::guard::Caller;
use crate::http::streamable::rpc_error;
use crate::mcp::handler::{self, Services};
use crate::mcp::jsonrpc::{self, Message, INVALID_REQUEST, PARSE_ERROR};
use crate::mcp::session::{Lookup, Session, Transport, KEEPALIVE};
use crate::mcp::DEFAULT_VERSION;
use serde_json::Value;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// `GET /sse`.
pub fn open(app: &Arc<App>) -> Result<Reply, Error> {
    let place = app.long_requests.take()?;
    let session = app.sessions.create(Transport::Legacy, DEFAULT_VERSION);
    let app = Arc::clone(app);
    Ok(Reply::stream(Box::new(move |w| {
        let _place = place;
        let endpoint = format!("/messages?sessionId={}", session.id);
        let mut outcome = events::event(w, None, Some("endpoint"), &endpoint);
        while outcome.is_ok() {
            outcome = match session.next_message(Instant::now() + KEEPALIVE) {
                Some(m) => events::event(w, None, Some("message"), m.get()),
                None if session.has_ended() || app.store.is_closed() => break,
                None => events::comment(w, "keepalive"),
            };
        }
        app.sessions.end(&session.id);
        outcome
    })))
}

/// `POST /messages?sessionId=ID`: 202, with the answer sent on the session's stream. Tool calls
/// run on their own thread, so a waiting `fetch_messages` does not hold back the 202 or the
/// session's other requests.
pub fn post(app: &Arc<App>, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let Some(id) = rq.param("sessionId").or_else(|| rq.param("session_id")) else {
        return Ok(rpc_error(400, INVALID_REQUEST, "sessionId is required"));
    };
    let session = match app.sessions.find(id, Transport::Legacy, None) {
        Lookup::Live(s) => s,
        Lookup::Unknown | Lookup::Ended => {
            return Ok(rpc_error(404, INVALID_REQUEST, "Session not found"))
        }
    };
    let body: Value = match serde_json::from_slice(&rq.body) {
        Ok(v) => v,
        Err(e) => return Ok(rpc_error(400, PARSE_ERROR, &format!("Parse error: {e}"))),
    };
    let items = match body {
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => {
            return Ok(rpc_error(
                400,
                INVALID_REQUEST,
                "an empty batch is not a valid request",
            ))
        }
        single => vec![single],
    };
    for item in &items {
        match Message::parse(item) {
            Ok(m @ Message::Request { .. }) if m.method() == Some("tools/call") => {
                let (app, session, agent) =
                    (Arc::clone(app), Arc::clone(&session), caller.agent.clone());
                thread::spawn(move || answer(&app, &session, agent.as_deref(), &m));
            }
            Ok(m) => answer(app, &session, caller.agent.as_deref(), &m),
            Err((id, e)) => session.send(jsonrpc::error(id.as_ref(), &e)),
        }
    }
    Ok(Reply::text(202, "Accepted"))
}

/// Handles one message and queues its answer, if any, on the session's stream.
fn answer(app: &App, session: &Session, agent: Option<&str>, message: &Message) {
    let services = Services {
        store: &app.store,
        logs: &app.logs,
        long_requests: &app.long_requests,
        sessions: &app.sessions,
        agent,
        presence: &app.presence,
        name: agent.map(str::to_string),
    };
    if let Some(answer) = handler::handle(&services, session, message) {
        session.send(answer);
    }
}
