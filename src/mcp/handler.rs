//! MCP method dispatch: one match from method name to what answers it. `initialize` negotiates
//! the version and states the capabilities actually implemented (tools, channel resources with
//! subscriptions, logging), once per session (a second one is refused with -32600); every other
//! request is answered within its session. Notifications never get an answer;
//! `notifications/cancelled` stops a tool call of the session still waiting, which then takes
//! nothing and gets no answer either.

use crate::mcp::context::Context;
use crate::mcp::jsonrpc::{
    self, Outgoing, RpcError, RpcMessage, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
};
use crate::mcp::session::Session;
use crate::mcp::{resources, tools, SUPPORTED_VERSIONS};
use serde_json::{json, Value};
use std::cell::Cell;

/// Log levels of `logging/setLevel`, least to most severe.
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

const INSTRUCTIONS: &str = "A message relay between coding agents. Channels are named threads (e.g. proj-x). \
Post with post_message(target, sender, text); read with fetch_messages(target, since_id, limit, wait_seconds), \
passing the returned latest_id as since_id next time; use wait_seconds (up to 50) to wait for a reply \
instead of polling. list_channels shows every channel.";

/// The version to answer an `initialize` with `params`: the one it asks for if supported, else
/// the newest. One that asks for none, or not as a string, is invalid.
pub(crate) fn negotiate(params: &Value) -> Result<&'static str, RpcError> {
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            "initialize needs protocolVersion, a string",
        ));
    };
    Ok(SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(SUPPORTED_VERSIONS[0]))
}

/// The `initialize` result at `version`.
pub(crate) fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "logging": {}
        },
        "serverInfo": {"name": "claude-codex-relay", "title": "Claude ↔ Codex relay", "version": env!("CARGO_PKG_VERSION")},
        "instructions": INSTRUCTIONS
    })
}

/// What handling one message comes to.
pub(crate) enum Handled {
    /// The response to a request.
    Answer(Outgoing),
    /// Nothing to send: the message was a notification or a response.
    Nothing,
    /// A tool call the client cancelled while it waited: it took nothing, and (as MCP asks of
    /// a cancelled request) gets no response.
    Cancelled,
}

/// Handles one message in `session`.
pub(crate) fn handle(cx: &Context, session: &Session, message: &RpcMessage) -> Handled {
    match message {
        RpcMessage::Request { id, method, params } if method == "tools/call" => {
            let call = session.start_call(id);
            // Only a wait asks whether its caller has gone, and a wait that hears yes ends
            // taking nothing: the answer is left out only then. A cancellation that comes too
            // late to stop the call (what it took is in the answer) is ignored, as MCP allows.
            let stopped = Cell::new(false);
            let gone = || {
                let cancelled = call.cancelled();
                stopped.set(stopped.get() || cancelled);
                cancelled || (cx.client_gone)()
            };
            let cx = Context {
                client_gone: &gone,
                name: cx.name.clone(),
                ..*cx
            };
            // A tool result is written whole, envelope and all: it carries its content twice,
            // as JSON and as text, and may be large.
            let answer = tools::call(&cx, &session.id, id, params)
                .unwrap_or_else(|e| jsonrpc::error(Some(id), &e));
            if stopped.get() {
                Handled::Cancelled
            } else {
                Handled::Answer(answer)
            }
        }
        RpcMessage::Request { id, method, params } => {
            Handled::Answer(match answer(cx, session, method, params) {
                Ok(result) => jsonrpc::result(id, result),
                Err(e) => jsonrpc::error(Some(id), &e),
            })
        }
        RpcMessage::Notification { method, params } if method == "notifications/cancelled" => {
            if let Some(id) = params.get("requestId") {
                session.cancel(id);
            }
            Handled::Nothing
        }
        // `notifications/initialized` included: nothing the relay sends waits for it.
        RpcMessage::Notification { .. } | RpcMessage::Response => Handled::Nothing,
    }
}

/// The serialised result of request `method`, or the JSON-RPC error answering it.
fn answer(
    cx: &Context,
    session: &Session,
    method: &str,
    params: &Value,
) -> Result<Outgoing, RpcError> {
    let result = match method {
        "initialize" => {
            let version = negotiate(params)?;
            if !session.initialize(version) {
                return Err(RpcError::new(
                    INVALID_REQUEST,
                    "the session is already initialized; start a new session to initialize again",
                ));
            }
            initialize_result(version)
        }
        "ping" => json!({}),
        "tools/list" => {
            if params.get("cursor").is_some_and(|c| !c.is_null()) {
                // The list is one page, so no cursor names a next one.
                return Err(RpcError::new(INVALID_PARAMS, "unknown cursor"));
            }
            tools::list()
        }
        "resources/list" => resources::list(cx, params)?,
        "resources/templates/list" => resources::templates(),
        "resources/read" => resources::read(cx, params)?,
        "resources/subscribe" => {
            let asked = resources::requested_uri(params)?;
            if let Some(uri) = resources::subscription(asked)? {
                cx.sessions.subscribe(session, &uri, asked)?;
            }
            json!({})
        }
        "resources/unsubscribe" => {
            if let Some(uri) = resources::subscription(resources::requested_uri(params)?)? {
                cx.sessions.unsubscribe(session, &uri);
            }
            json!({})
        }
        // The relay sends no `notifications/message`, so a valid level is acknowledged and
        // there is nothing for it to filter: it is not kept.
        "logging/setLevel" => match params.get("level").and_then(Value::as_str) {
            Some(level) if LOG_LEVELS.contains(&level) => json!({}),
            _ => {
                return Err(RpcError::new(
                    INVALID_PARAMS,
                    format!("level must be one of: {}", LOG_LEVELS.join(", ")),
                ))
            }
        },
        other => {
            return Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("Method not found: {other}"),
            ))
        }
    };
    Ok(jsonrpc::outgoing(&result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_versions_and_offers_the_newest_otherwise() {
        let asking = |v: Value| negotiate(&json!({"protocolVersion": v})).ok();
        for v in SUPPORTED_VERSIONS {
            assert_eq!(asking(json!(v)), Some(v));
        }
        assert_eq!(asking(json!("2026-07-28")), Some("2025-11-25"));
        assert_eq!(asking(json!("")), Some("2025-11-25"));
        assert_eq!(asking(json!(5)), None, "not a string");
        assert!(negotiate(&json!({})).is_err(), "none asked for");
    }
}
