//! The stdio bridge's session with the relay: one MCP session over Streamable HTTP at `/mcp`,
//! opened with the client's own `initialize` parameters and opened again, with the same ones,
//! whenever the relay has forgotten it (404) or could not be reached. Requests are sent with
//! whichever session is current; the session's `GET /mcp` stream is read by one thread that
//! hands every server message on unchanged. Channel subscriptions are remembered and made
//! again on every new stream, since a relay that restarts forgets them. A relay that cannot be
//! reached (or fails with a server error) is `Down`, and the bridge answers for it meanwhile; a
//! relay that answers and refuses (a JSON-RPC error, a token it does not take) has `Refused`,
//! and its word goes to the client.

use super::relay_client::RelayClient;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long one forwarded request may take: a `fetch_messages` waits up to 50 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The protocol version asked for when the client has not initialized yet.
const FALLBACK_VERSION: &str = "2025-06-18";

/// Why a message got no answer from the relay.
#[derive(Debug)]
pub(super) enum Failure {
    /// The relay could not be reached (no connection, a timeout, a connection cut off) or
    /// failed with a server error: it may be restarting, so it is asked again later.
    Down(String),
    /// The relay answered and refused: the JSON-RPC error object (`code`, `message`) the
    /// client gets for its request.
    Refused(Value),
}

use Failure::{Down, Refused};

/// The code of a refusal the relay gave without a JSON-RPC error of its own (an
/// implementation-defined server error).
const REFUSED: i64 = -32001;

/// The relay, as one MCP session.
pub(super) struct Upstream {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// For the `GET` stream, which has no deadline (the relay sends a keep-alive every 15 s).
    stream_agent: ureq::Agent,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// The client's `initialize` params, sent again for every new session.
    init: Option<Value>,
    /// The subscriptions the relay accepted: the resource's canonical URI → the URI as the
    /// client last wrote it, which is subscribed again (the relay's updates name it so).
    subscriptions: BTreeMap<String, String>,
}

#[derive(Clone)]
struct Session {
    id: String,
    version: String,
}

impl Upstream {
    /// The MCP endpoint of `relay`.
    pub(super) fn new(relay: &RelayClient) -> Upstream {
        let build = |timeout: Option<Duration>| -> ureq::Agent {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_global(timeout)
                // A pooled connection may belong to a relay that has since restarted.
                .max_idle_connections(0)
                .user_agent(concat!(
                    "claude-codex-relay-mcp/",
                    env!("CARGO_PKG_VERSION")
                ))
                .build()
                .into()
        };
        Upstream {
            url: format!("{}/mcp", relay.url()),
            token: relay.token().map(str::to_string),
            agent: build(Some(REQUEST_TIMEOUT)),
            stream_agent: build(None),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session with the client's `initialize` params and returns the relay's result.
    pub(super) fn initialize(&self, params: &Value) -> Result<Value, Failure> {
        let mut state = self.state();
        state.init = Some(params.clone());
        state.session = None;
        let (session, result) = self.open(params)?;
        state.session = Some(session);
        Ok(result)
    }

    /// Sends one client message (request or notification) in the current session, opening a
    /// new one first if the relay forgot it. Returns the relay's answer as it came, if any.
    pub(super) fn send(&self, message: &Value) -> Result<Option<String>, Failure> {
        let mut last = Down("the relay did not answer".into());
        for _ in 0..2 {
            let session = self.session()?;
            match self.post(Some(&session), message) {
                Ok(Posted::Answer(body)) => {
                    if changes_subscriptions(message) {
                        self.remember(message, &serde_json::from_str(&body).unwrap_or_default());
                    }
                    return Ok(Some(body));
                }
                Ok(Posted::Accepted) => return Ok(None),
                Ok(Posted::Gone) => {
                    self.forget(&session.id);
                    last = Down("the relay forgot the session".into());
                }
                Err(down) => {
                    self.forget(&session.id);
                    return Err(down);
                }
            }
        }
        Err(last)
    }

    /// Reads the session's `GET /mcp` stream, handing each server message to `deliver`, until
    /// the stream ends. Subscriptions are made again first.
    pub(super) fn stream(&self, deliver: &dyn Fn(&str)) -> Result<(), Failure> {
        let session = self.session()?;
        let uris: Vec<String> = self.state().subscriptions.values().cloned().collect();
        for (n, uri) in uris.iter().enumerate() {
            let again = json!({"jsonrpc": "2.0", "id": format!("bridge-subscribe-{n}"),
                "method": "resources/subscribe", "params": {"uri": uri}});
            self.post(Some(&session), &again)?;
        }
        let rq = self
            .stream_agent
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session.id)
            .header("MCP-Protocol-Version", &session.version);
        let rq = match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        };
        let mut response = rq.call().map_err(|e| self.down(e))?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                self.forget(&session.id);
                return Err(Down("the relay forgot the session".into()));
            }
            status => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                return Err(self.failure(status, &body, "GET"));
            }
        }
        let mut data = String::new();
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line.map_err(|e| Down(format!("stream ended: {e}")))?;
            if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            } else if line.is_empty() && !data.trim().is_empty() {
                deliver(&std::mem::take(&mut data));
            } else if line.is_empty() {
                data.clear();
            }
        }
        Ok(())
    }

    /// The current session, opening one if there is none. A refusal says that it came while
    /// opening a session, since the client's request is not what the relay refused.
    fn session(&self) -> Result<Session, Failure> {
        let mut state = self.state();
        if let Some(s) = &state.session {
            return Ok(s.clone());
        }
        let params = state.init.clone().unwrap_or_else(|| {
            json!({"protocolVersion": FALLBACK_VERSION, "capabilities": {},
                "clientInfo": {"name": "claude-codex-relay-mcp", "version": env!("CARGO_PKG_VERSION")}})
        });
        let (session, _) = self.open(&params).map_err(|failure| match failure {
            Refused(mut error) => {
                let why = error["message"].as_str().unwrap_or_default();
                error["message"] = format!("cannot open an MCP session: {why}").into();
                Refused(error)
            }
            down => down,
        })?;
        state.session = Some(session.clone());
        Ok(session)
    }

    /// Drops `id` as the current session (unless another thread replaced it already).
    fn forget(&self, id: &str) {
        let mut state = self.state();
        if state.session.as_ref().is_some_and(|s| s.id == id) {
            state.session = None;
        }
    }

    /// Keeps track of the subscriptions and unsubscriptions the relay accepted, by the
    /// `answer` it gave (a batch's answers by their ids): one refused changes nothing.
    fn remember(&self, message: &Value, answer: &Value) {
        if let (Value::Array(items), Value::Array(answers)) = (message, answer) {
            for item in items {
                let id = item.get("id").filter(|id| !id.is_null());
                let answered = id.and_then(|id| answers.iter().find(|a| a.get("id") == Some(id)));
                if let Some(answer) = answered {
                    self.remember(item, answer);
                }
            }
            return;
        }
        let (Some(uri), Some(_), None) = (
            message["params"]["uri"].as_str(),
            answer.get("result"),
            answer.get("error"),
        ) else {
            return;
        };
        match message["method"].as_str() {
            Some("resources/subscribe") => {
                self.state()
                    .subscriptions
                    .insert(canonical(uri), uri.to_string());
            }
            Some("resources/unsubscribe") => {
                self.state().subscriptions.remove(&canonical(uri));
            }
            _ => {}
        }
    }

    /// `initialize` then `notifications/initialized`: a new session and the relay's result.
    fn open(&self, params: &Value) -> Result<(Session, Value), Failure> {
        let init = json!({"jsonrpc": "2.0", "id": "bridge-initialize", "method": "initialize", "params": params});
        let mut response = self
            .request(None)
            .send_json(&init)
            .map_err(|e| self.down(e))?;
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.down(e))?;
        let body = serde_json::from_str::<Value>(&text).unwrap_or_default();
        let (Some(id), 200, Some(result)) = (id, status, body.get("result")) else {
            return Err(self.failure(status, &text, "initialize"));
        };
        let session = Session {
            id,
            version: result["protocolVersion"]
                .as_str()
                .unwrap_or(FALLBACK_VERSION)
                .to_string(),
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(Some(&session), &initialized)?;
        Ok((session, result.clone()))
    }

    fn request(
        &self,
        session: Option<&Session>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let mut rq = self
            .agent
            .post(&self.url)
            .header("Accept", "application/json, text/event-stream");
        if let Some(s) = session {
            rq = rq
                .header("Mcp-Session-Id", &s.id)
                .header("MCP-Protocol-Version", &s.version);
        }
        match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        }
    }

    /// One `POST /mcp`.
    fn post(&self, session: Option<&Session>, message: &Value) -> Result<Posted, Failure> {
        let mut response = self
            .request(session)
            .send_json(message)
            .map_err(|e| self.down(e))?;
        let status = response.status().as_u16();
        if status == 404 {
            return Ok(Posted::Gone);
        }
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.down(e))?;
        if status == 202 || (body.trim().is_empty() && (200..300).contains(&status)) {
            return Ok(Posted::Accepted);
        }
        if matches!(status, 401 | 403) {
            return Err(self.failure(status, &body, "a request"));
        }
        match serde_json::from_str::<Value>(&body) {
            // A JSON-RPC answer, even with a 4xx (a bad request, a body too large), is the
            // relay's own word and goes to the client as it is, with the client's id when the
            // relay refused the request before reading it. An id that is not one (an object, a
            // fraction) stays null, as JSON-RPC answers an invalid id.
            // A batch's answers: one array.
            Ok(Value::Array(_)) if message.is_array() => Ok(Posted::Answer(body)),
            Ok(answer) if answer.get("jsonrpc").is_some() => {
                let id = message.get("id");
                let valid = id.is_some_and(|i| i.is_string() || i.is_i64() || i.is_u64());
                if answer.get("id").is_some_and(|i| i.is_null()) && valid {
                    let mut answer = answer;
                    answer["id"] = message["id"].clone();
                    return Ok(Posted::Answer(answer.to_string()));
                }
                Ok(Posted::Answer(body))
            }
            _ => Err(self.failure(status, &body, "a request")),
        }
    }

    fn down(&self, e: ureq::Error) -> Failure {
        Down(format!("cannot reach {}: {e}", self.url))
    }

    /// What an answer other than the one hoped for means: `body` is what the relay sent with
    /// `status` in reply to `what`. A refused token is said to be one, with how to give
    /// another; a server error (5xx, with or without a JSON-RPC error: a relay at its session
    /// or stream limits answers 503 with one) is the relay being down for now; a JSON-RPC
    /// error with any other status is the relay's own refusal; anything else is a refusal
    /// saying what came back.
    fn failure(&self, status: u16, body: &str, what: &str) -> Failure {
        let answer = serde_json::from_str::<Value>(body).unwrap_or_default();
        let error = answer.get("error").filter(|e| e["message"].is_string());
        let said = error
            .and_then(|e| e["message"].as_str())
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        let code = error.and_then(|e| e["code"].as_i64()).unwrap_or(REFUSED);
        let refused = |message: String| Refused(json!({"code": code, "message": message}));
        match (status, error) {
            (401, _) if self.token.is_some() => refused(format!(
                "the relay at {} refused the token (401{said}); give the relay's token with --token, --token-file or CLAUDE_CODEX_TOKEN",
                self.url
            )),
            (401, _) => refused(format!(
                "the relay at {} wants a token (401{said}); give it with --token, --token-file or CLAUDE_CODEX_TOKEN",
                self.url
            )),
            (403, _) => refused(format!(
                "the relay at {} refused the bridge's {what} (403{said})",
                self.url
            )),
            (500.., _) => Down(format!("{} answered {status} to {what}{said}", self.url)),
            (_, Some(error)) => Refused(error.clone()),
            (_, None) => refused(format!(
                "{} answered {status} to {what} with something that is not a JSON-RPC answer: is it a relay?",
                self.url
            )),
        }
    }
}

/// Whether `message` (or one message of a batch) subscribes or unsubscribes: only then is the
/// relay's answer read, not for every tool call's result.
fn changes_subscriptions(message: &Value) -> bool {
    match message {
        Value::Array(items) => items.iter().any(changes_subscriptions),
        m => matches!(
            m["method"].as_str(),
            Some("resources/subscribe" | "resources/unsubscribe")
        ),
    }
}

/// The key a subscription to `uri` is kept under: the relay's own spelling of a channel
/// resource's URI, so that one resource however spelt is one subscription; any other URI as it
/// is written.
fn canonical(uri: &str) -> String {
    match crate::mcp::resources::subscription(uri) {
        Ok(Some(canonical)) => canonical,
        _ => uri.to_string(),
    }
}

/// What a `POST /mcp` came back with.
enum Posted {
    Answer(String),
    Accepted,
    /// 404: the relay does not know the session.
    Gone,
}
