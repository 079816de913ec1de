//! From a decoded request to a reply: the guard (Host, Origin, token) runs first, then one match
//! on method and path finds the handler. Errors become replies here, and are logged here, once,
//! in the body their route speaks (the route table says which: REST or JSON-RPC).
//! Reading requests and writing replies belongs to `server`, the one file that knows the HTTP
//! library.

use crate::app::App;
use crate::error::Error;
use crate::http::exchange::{error_reply, with_error_headers, Incoming, Reply};
use crate::http::guard::{self, Caller};
use crate::http::{apidoc, events, legacy, rest, streamable};
use crate::mcp::jsonrpc::{self, RpcError};
use crate::ui;
use std::sync::Arc;

/// What a route's failures are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `{"ok": false, "error": "..."}`.
    Rest,
    /// A JSON-RPC error response without an id, as MCP clients read it.
    JsonRpc,
}

/// Every route served, as (method, path, what its failures are written as); the web page's
/// assets come on top.
#[rustfmt::skip]
pub(crate) const ROUTES: &[(&str, &str, Body)] = &[
    ("GET", "/", Body::Rest),
    ("GET", "/healthz", Body::Rest),
    ("GET", "/api/messages", Body::Rest),
    ("POST", "/api/messages", Body::Rest),
    ("GET", "/api/channels", Body::Rest),
    ("DELETE", "/api/messages/{id}", Body::Rest),
    ("DELETE", "/api/channels/{name}", Body::Rest),
    ("GET", "/api/unread", Body::Rest),
    ("GET", "/api/search", Body::Rest),
    ("GET", "/api/stream", Body::Rest),
    ("POST", "/mcp", Body::JsonRpc),
    ("GET", "/mcp", Body::JsonRpc),
    ("DELETE", "/mcp", Body::JsonRpc),
    ("GET", "/sse", Body::Rest),
    ("POST", "/messages", Body::JsonRpc),
    ("GET", "/docs", Body::Rest),
    ("GET", "/openapi.json", Body::Rest),
];

/// What failures at `path` are written as, whatever the method (a wrong method on an MCP
/// endpoint is still answered as JSON-RPC); REST for a path no route serves.
fn body(path: &str) -> Body {
    ROUTES
        .iter()
        .find(|(_, route, _)| *route == path)
        .map_or(Body::Rest, |(_, _, body)| *body)
}

/// Checks Host, Origin and token before anything else is read.
pub(crate) fn check(app: &App, rq: &Incoming) -> Result<Caller, Error> {
    guard::check(&app.config, rq)
}

/// The reply to a failed request, logged here once: JSON-RPC on the MCP endpoints, the REST
/// error body elsewhere.
pub(crate) fn failure(rq: &Incoming, e: Error) -> Reply {
    // A full relay says so to the client; logging every refusal would let a flood of them
    // fill the log too.
    if e.status() >= 500 && !matches!(e, Error::Unavailable { .. }) {
        log::error!("{} {}: {e}", rq.method, rq.path);
    } else {
        log::debug!("{} {}: {} {e}", rq.method, rq.path, e.status());
    }
    match body(&rq.path) {
        Body::JsonRpc => {
            let error = jsonrpc::error(None, &RpcError::from(&e));
            with_error_headers(streamable::json_reply(e.status(), error), &e)
        }
        Body::Rest => error_reply(&e),
    }
}

/// An embedded file (`gzip`, as `build.rs` compressed it): sent compressed to a client that
/// takes gzip, inflated for one that does not.
fn compressed(rq: &Incoming, content_type: &'static str, gzip: &'static [u8]) -> Reply {
    let reply = if ui::accepts_gzip(rq.header("accept-encoding")) {
        Reply::bytes(200, content_type, gzip).with_header("Content-Encoding", "gzip")
    } else {
        Reply::owned(200, content_type, crate::embedded::inflate(gzip))
    };
    reply.with_header("Vary", "Accept-Encoding")
}

/// The one match from method and path to handler. A handler may take the request's body.
pub(crate) fn route(app: &Arc<App>, rq: &mut Incoming, caller: &Caller) -> Result<Reply, Error> {
    let method = rq.method.as_str();
    let path = rq.path.as_str();
    let not_allowed = |allow: &'static str| Err(Error::MethodNotAllowed { allow });
    match (method, path) {
        ("GET" | "HEAD", "/healthz") => Ok(Reply::text(200, "ok")),
        (_, "/healthz") => not_allowed("GET, HEAD"),
        ("GET" | "HEAD", "/api/messages") => rest::list_messages(app, rq, caller)
            .map(|page| page.with_header("X-Relay-Instance", app.instance.clone())),
        ("POST", "/api/messages") => rest::post_message(app, rq, caller),
        (_, "/api/messages") => not_allowed("GET, HEAD, POST"),
        ("GET" | "HEAD", "/api/channels") => rest::channels(app, rq),
        (_, "/api/channels") => not_allowed("GET, HEAD"),
        ("GET" | "HEAD", "/api/unread") => rest::unread(app, rq, caller),
        (_, "/api/unread") => not_allowed("GET, HEAD"),
        ("GET" | "HEAD", "/api/search") => rest::search(app, rq),
        (_, "/api/search") => not_allowed("GET, HEAD"),
        ("DELETE", _) if path.starts_with("/api/messages/") => {
            rest::delete_message(app, rq, caller, &path["/api/messages/".len()..])
        }
        ("DELETE", _) if path.starts_with("/api/channels/") => {
            rest::delete_channel(app, rq, caller, &path["/api/channels/".len()..])
        }
        (_, _) if path.starts_with("/api/messages/") || path.starts_with("/api/channels/") => {
            not_allowed("DELETE")
        }
        ("GET", "/api/stream") => events::message_stream(app, rq, caller),
        (_, "/api/stream") => not_allowed("GET"),
        ("POST", "/mcp") => streamable::post(app, rq, caller),
        ("GET", "/mcp") => streamable::get(app, rq, caller),
        ("DELETE", "/mcp") => streamable::delete(app, rq, caller),
        (_, "/mcp") => not_allowed("GET, POST, DELETE"),
        ("GET", "/sse") => legacy::open(app, rq, caller),
        (_, "/sse") => not_allowed("GET"),
        ("POST", "/messages") => legacy::post(app, rq, caller),
        (_, "/messages") => not_allowed("POST"),
        ("GET" | "HEAD", "/docs") => {
            Ok(
                Reply::bytes(200, "text/html; charset=utf-8", apidoc::page().as_bytes())
                    .with_header(
                        "Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'",
                    ),
            )
        }
        ("GET" | "HEAD", "/openapi.json") => {
            Ok(compressed(rq, "application/json", apidoc::OPENAPI))
        }
        (_, "/docs" | "/openapi.json") => not_allowed("GET, HEAD"),
        (_, path) => match ui::asset(path) {
            Some(asset) if matches!(method, "GET" | "HEAD") => {
                Ok(compressed(rq, asset.content_type, asset.gzip)
                    .with_header("Content-Security-Policy", ui::CONTENT_SECURITY_POLICY)
                    .with_header("Cache-Control", "no-cache"))
            }
            Some(_) => not_allowed("GET, HEAD"),
            None => Err(Error::NotFound(format!("no route {method} {path}"))),
        },
    }
}
