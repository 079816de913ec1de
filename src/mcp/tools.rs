//! The relay's MCP tools, `post_message`, `fetch_messages`, `list_channels` and
//! `search_messages`: their descriptions and schemas for `tools/list` (assets/api/tools.json),
//! and their execution for `tools/call`. Replies, idempotency keys and reading positions are
//! optional arguments of the first two rather than tools of their own, since a model pays for
//! every tool description. A tool that fails on its input answers an `isError` result whose
//! text says which field is wrong, so the model can correct itself; an unknown tool is a
//! protocol error.

use crate::agent;
use crate::capacity::{client_of, MAX_WAIT_SECONDS};
use crate::error::Error;
use crate::fields::{boolean, count, integer, number, optional_string, string};
use crate::json_string;
use crate::mcp::context::Context;
use crate::mcp::jsonrpc::{self, Outgoing, RpcError, INVALID_PARAMS};
use crate::message::{wire_id, Message, WireJson};
use crate::page_cache::{self, Asked};
use crate::presence::{listing, Kind};
use crate::store::{Draft, Fetch, Wait};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default and largest page of `fetch_messages`.
pub(crate) const FETCH_DEFAULT_LIMIT: u64 = 50;
pub(crate) const FETCH_MAX_LIMIT: u64 = 200;
/// Most text one `fetch_messages` result carries; a page is cut after the message that reaches
/// it (`more` says so). A result holds its page twice (as structured content and as its text),
/// so this bounds what one call, and one slow reader of it, can cost.
pub(crate) const FETCH_MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// The tools' descriptions and schemas, as `tools/list` answers them: a text a model reads
/// every word of, kept as a file (embedded compressed), not as code that builds it.
const TOOLS: &[u8] = crate::embedded::embedded!("api/tools.json");

/// The `tools/list` result.
pub(crate) fn list() -> Value {
    serde_json::from_slice(&crate::embedded::inflate(TOOLS))
        .expect("assets/api/tools.json is JSON (a unit test reads it)")
}

/// Runs `tools/call` request `id`: the whole response, a result (possibly with `isError`), or
/// -32602 for an unknown tool or malformed call.
pub(crate) fn call(
    cx: &Context,
    session: &str,
    id: &Value,
    params: &Value,
) -> Result<Outgoing, RpcError> {
    let name = match params.get("name") {
        Some(Value::String(name)) => name.as_str(),
        _ => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "tools/call needs a string name",
            ))
        }
    };
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(args)) => args,
        Some(_) => return Err(RpcError::new(INVALID_PARAMS, "arguments must be an object")),
    };
    let outcome = match name {
        "post_message" => post_message(cx, args).map(Structured::from),
        "fetch_messages" => match fetch_messages(cx, session, args) {
            Ok(Fetched::Made(made)) => {
                return Ok(jsonrpc::result_with(id, made.result.len(), |out| {
                    out.push_str(&made.result)
                }))
            }
            Ok(Fetched::Page(page)) => Ok(page),
            Err(e) => Err(e),
        },
        "list_channels" => list_channels(cx, args).map(Structured::from),
        "search_messages" => search_messages(cx, args).map(Structured::from),
        other => {
            return Err(
                RpcError::new(INVALID_PARAMS, format!("Unknown tool: {other}"))
                    .with_data(json!({"name": other})),
            )
        }
    };
    Ok(match outcome {
        Ok(structured) => jsonrpc::result_with(id, structured.result_len() + 96, |out| {
            write_result(out, &structured)
        }),
        Err(e) => jsonrpc::result_with(id, 96, |out| write_error(out, &e.to_string())),
    })
}

/// A tool's structured content, serialised: `head`, the `items` separated by commas, and
/// `tail`. A page of messages is its messages' cached JSON between the page's ends, so it is
/// written out without being put together first; each item comes with its JSON escaped as a
/// string, also cached, for the result's text block.
struct Structured {
    head: &'static str,
    items: Vec<(WireJson, WireJson)>,
    tail: String,
}

impl From<Outgoing> for Structured {
    fn from(json: Outgoing) -> Structured {
        Structured {
            head: "",
            items: Vec::new(),
            tail: json.into_string(),
        }
    }
}

impl Structured {
    /// About the bytes `write_result` writes of it: the JSON, the escaped items, and the
    /// head and tail again with room for their escapes.
    fn result_len(&self) -> usize {
        let json: usize = self.pieces().map(str::len).sum();
        let escaped: usize = self.items.iter().map(|(_, e)| e.len()).sum();
        json + escaped + 2 * (self.head.len() + self.tail.len())
    }

    /// The JSON, piece by piece.
    fn pieces(&self) -> impl Iterator<Item = &str> {
        let items = self.items.iter().enumerate().flat_map(|(i, (json, _))| {
            let comma = if i == 0 { "" } else { "," };
            [comma, json.as_str()]
        });
        std::iter::once(self.head)
            .chain(items)
            .chain(std::iter::once(self.tail.as_str()))
    }
}

/// A `tools/call` result: the structured content, and the same JSON as a text block for
/// clients that read only text. The items are copied into the text already escaped and the
/// rest is escaped here, so a page of messages is copied twice, not serialised again.
fn write_result(out: &mut String, structured: &Structured) {
    out.push_str(r#"{"content":[{"type":"text","text":""#);
    json_string::push_escaped(out, structured.head);
    for (i, (_, escaped)) in structured.items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(escaped);
    }
    json_string::push_escaped(out, &structured.tail);
    out.push_str(r#""}],"structuredContent":"#);
    for piece in structured.pieces() {
        out.push_str(piece);
    }
    out.push_str(r#","isError":false}"#);
}

/// An `isError` result whose text says what went wrong.
fn write_error(out: &mut String, text: &str) {
    out.push_str(r#"{"content":[{"type":"text","text":"#);
    json_string::push_string(out, text);
    out.push_str(r#"}],"isError":true}"#);
}

fn post_message(cx: &Context, args: &Map<String, Value>) -> Result<Outgoing, Error> {
    let sender = agent::sender(optional_string(args, "sender")?, cx.agent)?;
    let draft = Draft {
        target: string(args, "target")?,
        sender,
        text: string(args, "text")?,
        reply_to: integer(args, "reply_to")?,
        idempotency_key: optional_string(args, "idempotency_key")?,
        source: "mcp".into(),
    };
    let posted = cx.store.post(draft)?;
    if posted.repeated {
        return Ok(jsonrpc::outgoing(
            &json!({"ok": true, "posted": posted.message.id, "repeated": true}),
        ));
    }
    Ok(jsonrpc::outgoing(
        &json!({"ok": true, "posted": posted.message.id}),
    ))
}

/// Default and largest number of `search_messages` hits.
pub(crate) const SEARCH_DEFAULT_LIMIT: u64 = 20;
pub(crate) const SEARCH_MAX_LIMIT: u64 = 200;

/// `list_channels`: every channel with its detail, or with `limit` or `after` one page of them.
fn list_channels(cx: &Context, args: &Map<String, Value>) -> Result<Outgoing, Error> {
    let after = optional_string(args, "after")?;
    let limit = count(args, "limit")?;
    let listed = listing(cx.store, cx.presence, after.as_deref(), limit, true);
    /// The line's payload, its keys in sorted order as every tool-log line has them.
    #[derive(Serialize)]
    struct Line<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
        returned: usize,
    }
    let returned = listed["channels"].as_array().map_or(0, Vec::len);
    let after = after.as_deref();
    cx.logs.tool(
        "list_channels",
        &Line {
            after,
            limit,
            returned,
        },
    );
    Ok(jsonrpc::outgoing(&listed))
}

fn search_messages(cx: &Context, args: &Map<String, Value>) -> Result<Outgoing, Error> {
    let query = string(args, "query")?;
    if query.trim().is_empty() {
        return Err(Error::BadRequest("query must not be blank".into()));
    }
    let target = optional_string(args, "target")?
        .map(|t| crate::names::check("target", &t))
        .transpose()?;
    let sender = optional_string(args, "sender")?
        .map(|s| crate::names::check("sender", &s))
        .transpose()?;
    let limit = count(args, "limit")?
        .unwrap_or(SEARCH_DEFAULT_LIMIT)
        .clamp(1, SEARCH_MAX_LIMIT) as usize;
    let hits = cx
        .store
        .search(&query, target.as_deref(), sender.as_deref(), limit)?;
    /// The line's payload, in sorted order; the query's length, not its words, as a post's
    /// line has its text's.
    #[derive(Serialize)]
    struct Line<'a> {
        limit: usize,
        query_len: usize,
        returned: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        sender: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a str>,
    }
    let line = Line {
        limit,
        query_len: query.chars().count(),
        returned: hits.len(),
        sender: sender.as_deref(),
        target: target.as_deref(),
    };
    cx.logs.tool("search_messages", &line);
    #[derive(Serialize)]
    struct Answer<'a> {
        messages: &'a [Arc<Message>],
    }
    Ok(jsonrpc::outgoing(&Answer { messages: &hits }))
}

/// A `fetch_messages` result made once for a page that neither waits nor moves a reader,
/// given again while its channel is unchanged (see `page_cache`), with what the tool log says
/// of it.
pub(crate) struct MadeFetch {
    /// The `tools/call` result's JSON.
    result: String,
    latest_id: u64,
    returned: usize,
}

/// A `fetch_messages` answer: made before, or a page to write out.
enum Fetched {
    Made(Arc<MadeFetch>),
    Page(Structured),
}

fn fetch_messages(
    cx: &Context,
    session: &str,
    args: &Map<String, Value>,
) -> Result<Fetched, Error> {
    let target = crate::names::check("target", &string(args, "target")?)?;
    let reader = optional_string(args, "reader")?
        .map(|r| crate::names::check("reader", &r))
        .transpose()?;
    if let Some(reader) = &reader {
        agent::own_reader(reader, cx.agent)?;
        cx.store.admit_reader(Some(reader), &target)?;
    }
    let since_id = count(args, "since_id")?.unwrap_or(0);
    let limit = count(args, "limit")?
        .unwrap_or(FETCH_DEFAULT_LIMIT)
        .clamp(1, FETCH_MAX_LIMIT) as usize;
    let wait = number(args, "wait_seconds")?
        .unwrap_or(0.0)
        .clamp(0.0, MAX_WAIT_SECONDS);
    let query = Fetch {
        target,
        since_id,
        before_id: None,
        limit,
        newest: boolean(args, "newest")?.unwrap_or(false),
        reader,
        // Cut in the store, so a reader's position moves past only what is returned.
        max_text_bytes: Some(FETCH_MAX_TEXT_BYTES),
    };
    let asked = Asked::of(&query, wait > 0.0);
    if let Some(asked) = asked {
        let version = cx.store.version(&query.target);
        if let Some(made) = cx.fetches.get(&query.target, asked, version) {
            log_fetch(cx, &query, made.latest_id, made.returned);
            return Ok(Fetched::Made(made));
        }
    }
    let page = if wait > 0.0 {
        let _place = cx
            .long_requests
            .take(&client_of(cx.agent, cx.peer), Some(session))?;
        let _here = cx.presence.arrive(
            std::slice::from_ref(&query.target),
            Kind::Fetch,
            cx.name.as_deref(),
        );
        let until = Instant::now() + Duration::from_secs_f64(wait);
        let until = cx.wait_until.map_or(until, |shared| until.min(shared));
        let wait = Wait {
            until,
            gone: cx.client_gone,
        };
        cx.store.fetch_unread(&query, Some(wait))?
    } else {
        cx.store.fetch_unread(&query, None)?
    };
    let (head_id, more, version) = (page.head_id(), page.more(), page.version());
    // Each message's wire JSON (and its escaped copy) is made once and cached, and shared
    // with every other reply.
    let messages = cx.store.page_json_escaped(page);
    // With nothing returned, where the next call starts: since_id, or the reader's position.
    let latest_id = messages
        .last()
        .and_then(|(json, _)| wire_id(json))
        .unwrap_or_else(|| match &query.reader {
            Some(reader) if since_id == 0 => cx.store.position(reader, &query.target),
            _ => since_id,
        });
    let returned = messages.len();
    log_fetch(cx, &query, latest_id, returned);
    // `{"messages":[...],"latest_id":N,"head_id":N,"more":B}`, as serde writes the fields.
    let page = Structured {
        head: r#"{"messages":["#,
        items: messages,
        tail: format!(r#"],"latest_id":{latest_id},"head_id":{head_id},"more":{more}}}"#),
    };
    match asked {
        Some(asked) if page.result_len() <= page_cache::MAX_PAGE_BYTES => {
            let mut result = String::with_capacity(page.result_len());
            write_result(&mut result, &page);
            let made = Arc::new(MadeFetch {
                result,
                latest_id,
                returned,
            });
            let bytes = made.result.len();
            cx.fetches
                .put(&query.target, asked, version, Arc::clone(&made), bytes);
            Ok(Fetched::Made(made))
        }
        _ => Ok(Fetched::Page(page)),
    }
}

/// The tool-log line of a `fetch_messages` call.
fn log_fetch(cx: &Context, query: &Fetch, latest_id: u64, returned: usize) {
    /// The line's payload, its keys in sorted order as the log has always had them.
    #[derive(Serialize)]
    struct Line<'a> {
        latest_id: u64,
        limit: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        reader: Option<&'a str>,
        returned: usize,
        since_id: u64,
        target: &'a str,
    }
    cx.logs.tool(
        "fetch_messages",
        &Line {
            latest_id,
            limit: query.limit,
            reader: query.reader.as_deref(),
            returned,
            since_id: query.since_id,
            target: &query.target,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::MAX_WAIT_SECONDS;
    use crate::presence::LISTING_MAX_LIMIT;

    /// The schema of argument `arg` of tool `name` in the list.
    fn argument(name: &str, arg: &str) -> Value {
        let tools = list()["tools"].as_array().unwrap().clone();
        let tool = tools.iter().find(|t| t["name"] == name).unwrap();
        tool["inputSchema"]["properties"][arg].clone()
    }

    #[test]
    fn the_listed_bounds_are_the_ones_the_tools_keep() {
        let names: Vec<Value> = list()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect();
        assert_eq!(
            names,
            [
                "post_message",
                "fetch_messages",
                "list_channels",
                "search_messages"
            ]
        );
        let fetch = argument("fetch_messages", "limit");
        assert_eq!(fetch["maximum"], FETCH_MAX_LIMIT);
        assert_eq!(fetch["default"], FETCH_DEFAULT_LIMIT);
        let wait = argument("fetch_messages", "wait_seconds");
        assert_eq!(wait["maximum"].as_f64(), Some(MAX_WAIT_SECONDS));
        assert_eq!(
            argument("list_channels", "limit")["maximum"],
            LISTING_MAX_LIMIT
        );
        let search = argument("search_messages", "limit");
        assert_eq!(search["maximum"], SEARCH_MAX_LIMIT);
        assert_eq!(search["default"], SEARCH_DEFAULT_LIMIT);
    }
}
