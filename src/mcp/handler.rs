//! MCP method dispatch: one match from method name to what answers it. `initialize` negotiates
//! the version and states the capabilities actually implemented (tools, channel resources with
//! subscriptions, logging); every other request is answered within its session. Notifications
//! never get an answer.

use crate::capacity::LongRequests;
use crate::logs::Logs;
use crate::mcp::jsonrpc::{self, Message, Outgoing, RpcError, INVALID_PARAMS, METHOD_NOT_FOUND};
use crate::mcp::session::{Session, Sessions};
use crate::mcp::{resources, tools, SUPPORTED_VERSIONS};
use crate::presence::Presence;
use crate::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

/// What MCP methods may use.
pub struct Services<'a> {
    pub store: &'a Store,
    pub logs: &'a Logs,
    pub long_requests: &'a LongRequests,
    pub sessions: &'a Sessions,
    /// The agent whose token made the call: it may only post under this name.
    pub agent: Option<&'a str>,
    /// Whom the per-client quotas count the call against.
    pub client: &'a str,
    pub presence: &'a Arc<Presence>,
    /// The name the caller gives for presence (`X-Relay-Agent`, `?as=`), else its agent's.
    pub name: Option<String>,
}

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

/// The version to answer an `initialize` asking for `requested`: the same if supported, else
/// the newest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    SUPPORTED_VERSIONS
        .iter()
        .find(|v| Some(**v) == requested)
        .copied()
        .unwrap_or(SUPPORTED_VERSIONS[0])
}

/// The `initialize` result at `version`.
pub fn initialize_result(version: &str) -> Value {
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

/// Handles one message in `session`; the response for a request, None for anything else.
pub fn handle(services: &Services, session: &Session, message: &Message) -> Option<Outgoing> {
    match message {
        // A tool result arrives serialised: it carries its content twice, as JSON and as text.
        Message::Request { id, method, params } if method == "tools/call" => {
            Some(match tools::call(services, &session.id, params) {
                Ok(result) => jsonrpc::result(id, &result),
                Err(e) => jsonrpc::error(Some(id), &e),
            })
        }
        Message::Request { id, method, params } => {
            Some(match answer(services, session, method, params) {
                Ok(result) => jsonrpc::result(id, &result),
                Err(e) => jsonrpc::error(Some(id), &e),
            })
        }
        Message::Notification { method, .. } => {
            if method == "notifications/initialized" {
                session.set_initialized();
            }
            None
        }
        Message::Response => None,
    }
}

fn answer(
    services: &Services,
    session: &Session,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    match method {
        "initialize" => {
            let version = negotiate(params.get("protocolVersion").and_then(Value::as_str));
            session.set_version(version);
            Ok(initialize_result(version))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(tools::list()),
        "resources/list" => resources::list(services, params),
        "resources/templates/list" => Ok(resources::templates()),
        "resources/read" => resources::read(services, params),
        "resources/subscribe" => {
            if let Some(uri) = resources::subscription(resources::requested_uri(params)?)? {
                services.sessions.subscribe(session, &uri)?;
            }
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            if let Some(uri) = resources::subscription(resources::requested_uri(params)?)? {
                services.sessions.unsubscribe(session, &uri);
            }
            Ok(json!({}))
        }
        "logging/setLevel" => match params.get("level").and_then(Value::as_str) {
            Some(level) if LOG_LEVELS.contains(&level) => {
                session.set_log_level(level);
                Ok(json!({}))
            }
            _ => Err(RpcError::new(
                INVALID_PARAMS,
                format!("level must be one of: {}", LOG_LEVELS.join(", ")),
            )),
        },
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("Method not found: {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_versions_and_offers_the_newest_otherwise() {
        for v in SUPPORTED_VERSIONS {
            assert_eq!(negotiate(Some(v)), v);
        }
        assert_eq!(negotiate(Some("2026-07-28")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }
}
