//! The HTTP side of the client: one `RelayClient` per command, holding the base URL, the bearer
//! token and a ureq agent, with a method per REST route the commands use. Every transport failure
//! becomes `Unreachable`, every error status `Refused` with the relay's own `error` text, and a
//! 2xx answer that does not parse `Invalid`, so callers decide on retries by kind, not by text.

use super::error::Error;
use crate::message::Message;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The relay used when neither `--url` nor `CLAUDE_CODEX_URL` names one.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8010";
/// How long an ordinary request may take, from connecting to the last byte of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take; a relay on the LAN answers in well under this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a page of 500 messages of 1 MiB each fits).
const MAX_ANSWER_BYTES: u64 = 1 << 30;

/// A relay, as seen by the client commands.
pub(crate) struct RelayClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    /// Sent as `?as=` with blocking fetches, so the relay can say who is listening.
    name: Option<String>,
}

/// One `GET /api/messages` request; every field is an optional query parameter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    pub since_id: Option<u64>,
    pub limit: Option<u64>,
    /// Seconds to wait for a message after `since_id`.
    pub wait: Option<f64>,
    /// The newest `limit` after `since_id` instead of the oldest.
    pub newest: bool,
    /// A reader whose position on the relay stands in for `since_id` and moves past the page.
    pub reader: Option<String>,
}

/// One post: the text and where it goes, and optionally the message it answers and the
/// idempotency key that makes a retry of it safe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Post<'a> {
    pub target: &'a str,
    pub sender: &'a str,
    pub text: &'a str,
    pub reply_to: Option<u64>,
    pub idempotency_key: Option<&'a str>,
}

/// A page of messages and where the channel stands (absent from relays that predate them).
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub messages: Vec<Message>,
    #[serde(default)]
    pub head_id: Option<u64>,
    #[serde(default)]
    pub more: bool,
    /// The run of the relay that answered (its `X-Relay-Instance` header), where it says.
    #[serde(skip)]
    pub instance: Option<u64>,
}

impl Page {
    /// Whether this page came from another run of the relay than the pages before it, `seen`
    /// being the run that answered last (which becomes this page's, where it says).
    pub(crate) fn is_from_another_run(&self, seen: &mut Option<u64>) -> bool {
        let before = std::mem::replace(seen, self.instance.or(*seen));
        before.is_some_and(|before| self.instance.is_some_and(|now| now != before))
    }
}

/// Whether `m` shows that the relay's ids started again (a memory store that restarted): it is
/// at or below a message seen before (`seen`: that message's id and time) and was posted after
/// it. Deletion and retention never do that: they only take messages away.
pub(crate) fn restarted_by(seen: Option<(u64, f64)>, m: &Message) -> bool {
    seen.is_some_and(|(id, ts)| m.id <= id && m.ts > ts)
}

impl RelayClient {
    /// A client for the relay at `url` (`http://host:port`, optionally with a path prefix, or
    /// the relay's MCP URL: the same ending in `/mcp`).
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<RelayClient, Error> {
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(Error::Usage(
                "--url must not be blank (like http://127.0.0.1:8010)".into(),
            ));
        }
        // The scheme is looked at before trailing slashes go: `http://` is a URL without a
        // host, not the host `http:`.
        let mut base = trimmed.to_string();
        if !base.contains("://") {
            // `--url 127.0.0.1:8010` is what people type; the relay only speaks http.
            base = format!("http://{base}");
        }
        if base.starts_with("https://") {
            return Err(Error::Usage(format!(
                "{base}: https is not built in; reach the relay over http (a TLS proxy in front of it can keep https for browsers)"
            )));
        }
        if !base.starts_with("http://") {
            return Err(Error::Usage(format!(
                "--url must look like http://127.0.0.1:8010, not {url:?}"
            )));
        }
        let mut base = base.trim_end_matches('/').to_string();
        // The MCP URL a client is configured with (`http://host:port/mcp`) names the same
        // relay: its endpoints are found from the base, so `/mcp` is not doubled.
        let path_at = base
            .get("http://".len()..)
            .and_then(|rest| rest.find('/'))
            .map(|at| at + "http://".len());
        if path_at.is_some_and(|at| base[at..].ends_with("/mcp")) {
            base.truncate(base.len() - "/mcp".len());
            base.truncate(base.trim_end_matches('/').len());
        }
        if base.len() <= "http://".len() {
            return Err(Error::Usage(format!(
                "--url {url:?} names no host (like http://127.0.0.1:8010)"
            )));
        }
        let authority = base["http://".len()..]
            .split('/')
            .next()
            .unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // The port follows the last `:` outside an IPv6 address's brackets.
        let host = match host_port.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
            Some((host, port)) => {
                if port.parse::<u16>().map_or(true, |p| p == 0) {
                    return Err(Error::Usage(format!(
                        "--url {url:?}: {port:?} is not a port (1 to 65535)"
                    )));
                }
                host
            }
            None => host_port,
        };
        if host.is_empty() || host == "[]" {
            return Err(Error::Usage(format!(
                "--url {url:?} names no host (like http://127.0.0.1:8010)"
            )));
        }
        // It travels in an `Authorization: Bearer` header: the relay takes only the tokens
        // such a header can carry, and the client refuses the others before sending anything.
        if let Some(t) = &token {
            crate::config::sendable_token(t)
                .map_err(|e| Error::Usage(format!("the token cannot be sent: it {e}")))?;
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // The relay is reached directly: a proxy from the environment would see the token
            // and usually cannot reach a loopback or LAN address anyway.
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            // Every request opens its own connection. A command makes one request, and watch
            // one per message or per 50 s, so reuse saves nothing; and a kept connection can
            // outlive the relay's idle timeout during a long CMD run, or (for a relay embedded
            // in a process and restarted there) be one the old relay reads but never answers.
            .max_idle_connections(0)
            .user_agent(concat!("claude-codex-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(RelayClient {
            base,
            token,
            agent,
            name: None,
        })
    }

    /// The same relay, telling it who waits in blocking fetches (opt-in presence).
    pub(crate) fn named(mut self, name: Option<&str>) -> RelayClient {
        self.name = name.map(str::to_string);
        self
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn url(&self) -> &str {
        &self.base
    }

    /// The token sent as `Authorization: Bearer`, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `POST /api/messages` with every field `post` sets.
    pub(crate) fn send(&self, post: &Post) -> Result<Value, Error> {
        let mut body = json!({"target": post.target, "sender": post.sender, "text": post.text, "source": "cli"});
        if let Some(id) = post.reply_to {
            body["reply_to"] = json!(id);
        }
        if let Some(key) = post.idempotency_key {
            body["idempotency_key"] = json!(key);
        }
        let rq = self.agent.post(format!("{}/api/messages", self.base));
        let rq = match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        };
        let answer = self.answer(rq.send_json(&body))?;
        match answer.get("posted").and_then(Value::as_u64) {
            Some(_) => Ok(answer),
            None => Err(Error::Invalid(format!(
                "{}: the answer to a post has no id: {answer}",
                self.base
            ))),
        }
    }

    /// `GET /api/messages`: the newest `limit` of `target` without `since_id`, the oldest
    /// `limit` after it with one, waiting up to `wait` seconds for one to arrive.
    pub(crate) fn messages(
        &self,
        target: &str,
        since_id: Option<u64>,
        limit: Option<u64>,
        wait: Option<f64>,
    ) -> Result<Vec<Message>, Error> {
        let query = Query {
            since_id,
            limit,
            wait,
            ..Query::default()
        };
        self.page(target, &query).map(|p| p.messages)
    }

    /// `GET /api/messages` with every parameter `query` sets.
    pub(crate) fn page(&self, target: &str, query: &Query) -> Result<Page, Error> {
        let mut rq = self
            .agent
            .get(format!("{}/api/messages", self.base))
            .query("target", target);
        if let Some(since) = query.since_id {
            rq = rq.query("since_id", since.to_string());
        }
        if let Some(limit) = query.limit {
            rq = rq.query("limit", limit.to_string());
        }
        if query.newest {
            rq = rq.query("newest", "1");
        }
        if let Some(reader) = &query.reader {
            rq = rq.query("reader", reader);
        }
        if let Some(wait) = query.wait.filter(|w| *w > 0.0) {
            // The relay answers at the deadline at the latest; allow the ordinary request
            // time on top of it.
            rq = rq
                .query("wait", wait.to_string())
                .config()
                .timeout_global(Some(REQUEST_TIMEOUT + Duration::from_secs_f64(wait)))
                .build();
            if let Some(name) = &self.name {
                // As `?as=`, percent-encoded: a header could carry only ASCII.
                rq = rq.query("as", name);
            }
        }
        let rq = match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        };
        let sent = rq.call();
        let instance = sent.as_ref().ok().and_then(|answer| {
            let value = answer.headers().get("x-relay-instance")?;
            u64::from_str_radix(value.to_str().ok()?, 16).ok()
        });
        let answer = self.answer(sent)?;
        let page = serde_json::from_value::<Page>(answer)
            .map_err(|e| Error::Invalid(format!("{}: not a page of messages: {e}", self.base)))?;
        Ok(Page { instance, ..page })
    }

    /// `GET /api/channels` (with `?detail=1` when `detail`); returns the relay's answer
    /// (`{"channels": [...]}`, plus `detail` when asked for).
    pub(crate) fn channels(&self, detail: bool) -> Result<Value, Error> {
        let mut rq = self.agent.get(format!("{}/api/channels", self.base));
        if detail {
            rq = rq.query("detail", "1");
        }
        let rq = match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        };
        let answer = self.answer(rq.call())?;
        match answer.get("channels") {
            Some(Value::Array(_)) => Ok(answer),
            _ => Err(Error::Invalid(format!(
                "{}: not a list of channels: {answer}",
                self.base
            ))),
        }
    }

    /// `DELETE /api/messages/{id}`; returns the relay's answer.
    pub(crate) fn delete_message(&self, id: u64) -> Result<Value, Error> {
        self.delete(&format!("/api/messages/{id}"))
    }

    /// `DELETE /api/channels/{name}`; returns the relay's answer.
    pub(crate) fn delete_channel(&self, name: &str) -> Result<Value, Error> {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.delete(&format!("/api/channels/{encoded}"))
    }

    fn delete(&self, path: &str) -> Result<Value, Error> {
        let rq = self.agent.delete(format!("{}{path}", self.base));
        let rq = match &self.token {
            Some(t) => rq.header("Authorization", format!("Bearer {t}")),
            None => rq,
        };
        self.answer(rq.call())
    }

    /// Reads an answer: the JSON body of a 2xx, or the error it stands for.
    fn answer(
        &self,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, Error> {
        let mut response = sent.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        let json: Option<Value> = serde_json::from_str(&body).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                Error::Invalid(format!(
                    "{} answered {status} with something that is not JSON: {}",
                    self.base,
                    excerpt(&body)
                ))
            });
        }
        let said = json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| excerpt(&body));
        let message = match (status, &self.token) {
            (401, None) => {
                format!("{said} (this relay needs a token: --token or CLAUDE_CODEX_TOKEN)")
            }
            _ => said,
        };
        Err(Error::Refused { status, message })
    }

    /// A failure before a whole answer arrived. Only a failure to reach the relay or to hear
    /// it out is `Unreachable` (worth a retry); a request that could not even be made is not.
    fn transport(&self, e: ureq::Error) -> Error {
        match e {
            ureq::Error::BadUri(m) => Error::Usage(format!("bad --url {}: {m}", self.base)),
            ureq::Error::Http(e) => Error::Usage(format!(
                "cannot make a request to {} from these arguments: {e}",
                self.base
            )),
            ureq::Error::Json(e) => Error::Local(format!("cannot write the request: {e}")),
            ureq::Error::BodyExceedsLimit(limit) => Error::Invalid(format!(
                "{}: the answer is larger than {limit} bytes",
                self.base
            )),
            ureq::Error::Timeout(_) => Error::Unreachable(format!("{}: timed out", self.base)),
            ureq::Error::HostNotFound => {
                Error::Unreachable(format!("{}: host not found", self.base))
            }
            ureq::Error::Protocol(p) => {
                Error::Unreachable(format!("{}: not an HTTP answer ({p})", self.base))
            }
            ureq::Error::Io(e) => Error::Unreachable(format!("cannot reach {}: {e}", self.base)),
            other => Error::Unreachable(format!("cannot reach {}: {other}", self.base)),
        }
    }
}

/// The start of a body that is not what was expected, for an error message.
fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &body[..at]),
        None if body.is_empty() => "(empty body)".into(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_from_another_run_of_the_relay_is_told_apart() {
        let from = |instance: Option<u64>| Page {
            messages: Vec::new(),
            head_id: None,
            more: false,
            instance,
        };
        let mut seen = None;
        assert!(
            !from(Some(7)).is_from_another_run(&mut seen),
            "the first run seen"
        );
        assert!(!from(Some(7)).is_from_another_run(&mut seen));
        assert!(
            !from(None).is_from_another_run(&mut seen),
            "a relay that does not say"
        );
        assert_eq!(seen, Some(7));
        assert!(from(Some(8)).is_from_another_run(&mut seen));
        assert!(!from(Some(8)).is_from_another_run(&mut seen), "told once");
    }

    #[test]
    fn a_request_that_cannot_be_made_is_a_usage_error_not_an_unreachable_relay() {
        let relay = RelayClient::new("http://127.0.0.1:9", None).unwrap();
        let bad_header = ureq::http::HeaderValue::from_str("a\nb").unwrap_err();
        let e = relay.transport(ureq::Error::Http(bad_header.into()));
        assert!(matches!(e, Error::Usage(_)), "{e:?}");
        assert!(!e.is_transient());
        let e = relay.transport(ureq::Error::BodyExceedsLimit(1));
        assert!(!e.is_transient(), "{e:?}");
    }

    #[test]
    fn a_url_ending_in_mcp_names_the_relay_at_its_base() {
        for (given, base) in [
            ("http://127.0.0.1:8010/mcp", "http://127.0.0.1:8010"),
            ("http://127.0.0.1:8010/mcp/", "http://127.0.0.1:8010"),
            ("127.0.0.1:8010/mcp", "http://127.0.0.1:8010"),
            ("http://h/relay/mcp", "http://h/relay"),
            ("http://mcp", "http://mcp"),
            ("http://mcp:8010", "http://mcp:8010"),
            ("http://h/mcpx", "http://h/mcpx"),
        ] {
            let relay = RelayClient::new(given, None).unwrap();
            assert_eq!(relay.url(), base, "{given}");
        }
    }

    #[test]
    fn a_token_a_header_cannot_carry_is_a_usage_error() {
        for token in [
            "é",
            "tök",
            "a\u{2028}b",
            "tab\there",
            "a b",
            "nul\0",
            "del\u{7f}",
        ] {
            let made = RelayClient::new("http://127.0.0.1:9", Some(token.into()));
            assert!(matches!(made, Err(Error::Usage(_))), "{token:?}");
        }
        assert!(RelayClient::new("http://127.0.0.1:9", Some("ab~!=+/".into())).is_ok());
    }
}
