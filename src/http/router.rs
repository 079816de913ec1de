//! From a tiny_http request to a written response: decode the request, run the guard (Host,
//! Origin, token), read the body within its limit, find the handler with one match on method
//! and path, and write what it answers — a complete response, or an event stream straight to the
//! socket. Errors become responses here, and are logged here, once.

use crate::app::App;
use crate::error::Error;
use crate::http::exchange::{error_reply, split_target, Incoming, Reply};
use crate::http::guard::{self, Caller};
use crate::http::{apidoc, events, legacy, rest, streamable};
use crate::ui;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tiny_http::{Header, Request, Response};

/// Every route served, as (method, path); the web page's assets come on top.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/api/messages"),
    ("POST", "/api/messages"),
    ("GET", "/api/channels"),
    ("GET", "/api/stream"),
    ("POST", "/mcp"),
    ("GET", "/mcp"),
    ("DELETE", "/mcp"),
    ("GET", "/sse"),
    ("POST", "/messages"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
];

/// Answers one request.
pub fn handle(app: &Arc<App>, mut request: Request) {
    let (rq, outcome) = match read(app, &mut request) {
        Ok((rq, caller)) => {
            let outcome = route(app, &rq, &caller);
            (rq, outcome)
        }
        Err(e) => (
            Incoming {
                method: request.method().as_str().to_string(),
                path: request.url().to_string(),
                ..Incoming::default()
            },
            Err(e),
        ),
    };
    if let Err(e @ Error::BodyStalled(_)) = &outcome {
        quarantine(request, e);
        return;
    }
    let reply = outcome.unwrap_or_else(|e| {
        if e.status() >= 500 {
            log::error!("{} {}: {e}", rq.method, rq.path);
        } else {
            log::debug!("{} {}: {} {e}", rq.method, rq.path, e.status());
        }
        if rq.path == "/mcp" || rq.path == "/messages" {
            streamable::rpc_error(
                e.status(),
                crate::mcp::jsonrpc::INVALID_REQUEST,
                &e.to_string(),
            )
        } else {
            error_reply(&e)
        }
    });
    write(request, reply);
}

/// Decodes the request, checks it and reads its body.
fn read(app: &App, request: &mut Request) -> Result<(Incoming, Caller), Error> {
    let (path, query) = split_target(request.url())?;
    let headers = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let mut rq = Incoming {
        method: request.method().as_str().to_ascii_uppercase(),
        path,
        query,
        headers,
        body: Vec::new(),
    };
    let caller = guard::check(&app.config, &rq)?;
    if matches!(rq.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        rq.body = read_body(request, app.config.max_body_bytes)?;
    }
    Ok((rq, caller))
}

fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge(format!("request body is over the {limit}-byte limit"));
    // tiny_http 0.12 discards an unread body (on drop, or as soon as a read meets the end of
    // the stream) by allocating one buffer of the whole declared remainder: a request claiming
    // terabytes would abort the process. Such a body is never touched (see `quarantine`); a
    // merely oversized one is refused and discarded as usual.
    match request.body_length() {
        Some(declared) if declared > DROPPABLE_BODY => {
            return Err(Error::BodyStalled(format!(
                "request body is over the {limit}-byte limit"
            )))
        }
        Some(declared) if declared > limit => return Err(too_large()),
        _ => {}
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// Largest declared body that may ever be dropped unread (see `read_body`).
const DROPPABLE_BODY: usize = 64 * 1024 * 1024;

/// The one match from method and path to handler.
fn route(app: &Arc<App>, rq: &Incoming, caller: &Caller) -> Result<Reply, Error> {
    let method = rq.method.as_str();
    let path = rq.path.as_str();
    let not_allowed = |allow: &'static str| Err(Error::MethodNotAllowed { allow });
    match (method, path) {
        ("GET" | "HEAD", "/healthz") => Ok(Reply::text(200, "ok")),
        (_, "/healthz") => not_allowed("GET, HEAD"),
        ("GET", "/api/messages") => rest::list_messages(app, rq, caller),
        ("POST", "/api/messages") => rest::post_message(app, rq, caller),
        (_, "/api/messages") => not_allowed("GET, POST"),
        ("GET" | "HEAD", "/api/channels") => Ok(rest::channels(app, rq)),
        (_, "/api/channels") => not_allowed("GET, HEAD"),
        ("GET", "/api/stream") => events::message_stream(app, rq, caller),
        (_, "/api/stream") => not_allowed("GET"),
        ("POST", "/mcp") => streamable::post(app, rq, caller),
        ("GET", "/mcp") => streamable::get(app, rq),
        ("DELETE", "/mcp") => streamable::delete(app, rq),
        (_, "/mcp") => not_allowed("GET, POST, DELETE"),
        ("GET", "/sse") => legacy::open(app),
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
        ("GET" | "HEAD", "/openapi.json") => Ok(Reply::bytes(
            200,
            "application/json",
            apidoc::OPENAPI.as_bytes(),
        )),
        (_, "/docs" | "/openapi.json") => not_allowed("GET, HEAD"),
        (_, path) => match ui::asset(path) {
            Some(asset) if matches!(method, "GET" | "HEAD") => {
                Ok(Reply::bytes(200, asset.content_type, asset.body)
                    .with_header("Content-Security-Policy", ui::CONTENT_SECURITY_POLICY)
                    .with_header("Cache-Control", "no-cache"))
            }
            Some(_) => not_allowed("GET, HEAD"),
            None => Err(Error::NotFound(format!("no route {method} {path}"))),
        },
    }
}

/// Answers a request that arrived after the relay stopped: 503, and the connection closes.
pub fn refuse_closing(request: Request) {
    let response = Response::from_string("{\"ok\":false,\"error\":\"the relay is shutting down\"}")
        .with_status_code(503)
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("a valid header"),
        )
        .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).expect("a valid header"))
        .with_header(Header::from_bytes(&b"Retry-After"[..], &b"1"[..]).expect("a valid header"));
    let _ = request.respond(response);
}

/// Connections kept open for good because their request claimed a body it never sent.
static QUARANTINED: AtomicUsize = AtomicUsize::new(0);

/// Answers a request whose unread body must never be dropped (see `read_body`): the reply goes out
/// through tiny_http's upgrade path, which hands over the body reader, and the reader is
/// forgotten. This costs the connection (it stays open until the process ends) instead of the
/// process.
fn quarantine(request: Request, e: &Error) {
    let n = QUARANTINED.fetch_add(1, Ordering::Relaxed) + 1;
    log::warn!("a request declared a body of over {DROPPABLE_BODY} bytes; its connection is held open ({n} so far)");
    let body = serde_json::json!({"ok": false, "error": e.to_string()}).to_string();
    let response = Response::from_string(body)
        .with_status_code(e.status())
        .with_header(
            Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                .expect("a valid header"),
        );
    let stream = request.upgrade("close", response);
    std::mem::forget(stream);
}

/// Writes a reply; a stream is written straight to the socket, flushed event by event.
fn write(request: Request, reply: Reply) {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut response = Response::from_data(body).with_status_code(status);
            for (name, value) in headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .chain([("X-Content-Type-Options", "nosniff")])
            {
                if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                    response.add_header(h);
                }
            }
            if let Err(e) = request.respond(response) {
                log::debug!("cannot send a response: {e}");
            }
        }
        Reply::Stream { headers, body } => {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            for (name, value) in events::STREAM_HEADERS
                .iter()
                .copied()
                .chain(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let mut writer = request.into_writer();
            let outcome = writer
                .write_all(head.as_bytes())
                .and_then(|_| writer.flush())
                .and_then(|_| body(&mut *writer));
            if let Err(e) = outcome {
                log::debug!("stream ended: {e}");
            }
        }
    }
}
