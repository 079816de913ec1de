//! `claude-codex-relay mcp`: a stdio MCP server for clients that can only spawn a command.
//! JSON-RPC messages arrive one per line on standard input and are forwarded to the relay's
//! `/mcp` (see `upstream`); the relay's answers go back one per line on standard output,
//! unchanged, and nothing else is ever written there (notes go to standard error). A line may
//! hold a batch (an array) when the client negotiated 2025-03-26, the one version that has
//! batches; it is forwarded as one and answered with one array. The bridge
//! answers `initialize` even while the relay is down, answers a tool call it cannot forward
//! with an `isError` result; what a relay that answers refuses (a bad `initialize`, a wrong
//! token) is refused to the client too. With `--listen` it also pushes other agents' messages
//! on those channels as `notifications/claude/channel` events (see `listener`). When standard
//! input ends the bridge reads no more and pushes nothing more, and ends once every request it
//! has read is answered, or at once when the reader of standard output is gone (a write to it
//! failed, or the system says that its pipe has no reader). Threads: the caller's for
//! standard input, one per forwarded request (a `fetch_messages` may wait 50 s), one for the
//! session's stream, one per listened channel.

use super::bridge_io::{note, reader_gone, Backoff, Gate, InFlight, Out};
use super::error::Error;
use super::listener;
use super::relay_client::RelayClient;
use super::upstream::{Failure, Upstream};
use crate::listen::Listen;
use crate::mcp::jsonrpc::RpcMessage;
use serde_json::{json, Value};
use std::io::BufRead;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread;

/// JSON-RPC error codes the bridge answers with itself.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
/// The relay could not be reached (an implementation-defined server error).
const RELAY_DOWN: i64 = -32000;

/// Runs the bridge until `stdin` ends and every request read from it is answered.
pub(super) fn run(
    relay: RelayClient,
    listen: Option<Listen>,
    since_id: Option<u64>,
    stdin: &mut dyn BufRead,
    out: Arc<Out>,
) -> Result<(), Error> {
    let relay = Arc::new(relay);
    let upstream = Arc::new(Upstream::new(&relay));
    let gate = Arc::new(Gate::default());
    if let Some(listen) = &listen {
        for channel in &listen.channels {
            let (relay, listen, out, gate) = (
                Arc::clone(&relay),
                listen.clone(),
                Arc::clone(&out),
                Arc::clone(&gate),
            );
            let channel = channel.clone();
            thread::Builder::new()
                .name(format!("listen-{channel}"))
                .spawn(move || listener::follow(&relay, &channel, &listen, since_id, &gate, &out))
                .map_err(|e| Error::Local(format!("cannot start a thread: {e}")))?;
        }
    }
    {
        let (upstream, out, gate) = (Arc::clone(&upstream), Arc::clone(&out), Arc::clone(&gate));
        thread::Builder::new()
            .name("session-stream".into())
            .spawn(move || follow_stream(&upstream, &gate, &out))
            .map_err(|e| Error::Local(format!("cannot start a thread: {e}")))?;
    }
    let in_flight = Arc::new(InFlight::default());
    let read = read_messages(stdin, &upstream, listen.as_ref(), &gate, &in_flight, &out);
    // The client has said all it will: nothing more is pushed, and the requests it sent are
    // answered before the bridge ends (the listeners and the stream end with the process).
    out.answers_only();
    notice_a_closed_stdout(&out, &in_flight);
    in_flight.wait(&out);
    read
}

/// Closes `out` and ends the wait for answers as soon as the reader of standard output is gone,
/// even if nothing is written to find out (the client read its answers and closed the pipe).
fn notice_a_closed_stdout(out: &Arc<Out>, in_flight: &Arc<InFlight>) {
    let Ok(stdout) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return;
    };
    let (out, in_flight) = (Arc::clone(out), Arc::clone(in_flight));
    let watching = thread::Builder::new()
        .name("stdout-reader".into())
        .spawn(move || {
            if reader_gone(stdout.as_fd()) {
                out.close();
                in_flight.wake();
            }
        });
    if let Err(e) = watching {
        note(&format!("cannot start a thread: {e}"));
    }
}

/// Reads and handles one message per line of `stdin` until it ends.
fn read_messages(
    stdin: &mut dyn BufRead,
    upstream: &Arc<Upstream>,
    listen: Option<&Listen>,
    gate: &Gate,
    in_flight: &Arc<InFlight>,
    out: &Arc<Out>,
) -> Result<(), Error> {
    // Bytes, not text: a line that is not UTF-8 is one bad message, answered like any other.
    let mut line = Vec::new();
    // The protocol version the client was answered with: it says whether batches are taken.
    let mut negotiated: Option<String> = None;
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(Error::Local(format!("cannot read standard input: {e}"))),
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message: Value = match serde_json::from_slice(&line) {
            Ok(Value::Object(m)) => Value::Object(m),
            Ok(Value::Array(items)) => {
                handle_batch(items, negotiated.as_deref(), upstream, gate, in_flight, out);
                continue;
            }
            Ok(_) => {
                out.send(&error(
                    &Value::Null,
                    INVALID_REQUEST,
                    "expected one JSON-RPC message (an object) per line",
                ));
                continue;
            }
            Err(e) => {
                out.send(&error(
                    &Value::Null,
                    PARSE_ERROR,
                    &format!("Parse error: {e}"),
                ));
                continue;
            }
        };
        handle(
            message,
            upstream,
            listen,
            gate,
            in_flight,
            &mut negotiated,
            out,
        );
    }
}

/// Forwards a JSON-RPC batch (one line holding an array) to the relay as one batch, and writes
/// the relay's answers as one array. Only a client that negotiated 2025-03-26 may send one
/// (batches were removed in 2025-06-18, and earlier versions had none): any other batch, an
/// empty one and one holding `initialize` are refused with one -32600 error, as the relay
/// refuses them. While the relay is down each request of the batch is answered as it would be
/// on its own, all in one array.
fn handle_batch(
    mut items: Vec<Value>,
    negotiated: Option<&str>,
    upstream: &Arc<Upstream>,
    gate: &Gate,
    in_flight: &Arc<InFlight>,
    out: &Arc<Out>,
) {
    let refusal = if negotiated != Some("2025-03-26") {
        Some("batches are only supported on 2025-03-26 sessions")
    } else if items.is_empty() {
        Some("an empty batch is not a valid request")
    } else if items.iter().any(|m| m["method"] == "initialize") {
        Some("initialize must not be part of a batch")
    } else {
        None
    };
    if let Some(why) = refusal {
        out.send(&error(&Value::Null, INVALID_REQUEST, why));
        return;
    }
    // The bridge sends its own `initialized` with every new session.
    items.retain(|m| {
        let initialized = m["method"] == "notifications/initialized" && m.get("id").is_none();
        if initialized {
            gate.open();
        }
        !initialized
    });
    if items.is_empty() {
        return;
    }
    let (upstream, out) = (Arc::clone(upstream), Arc::clone(out));
    let forwarding = in_flight.start();
    let spawned = thread::Builder::new()
        .name("forward-batch".into())
        .spawn(move || {
            let batch = Value::Array(items);
            match upstream.send(&batch) {
                Ok(Some(answers)) => out.answer(&answers),
                Ok(None) => {}
                Err(failure) => {
                    let Value::Array(items) = batch else { return };
                    let answers: Vec<Value> = items
                        .into_iter()
                        .filter_map(|item| unforwarded(item, &failure))
                        .collect();
                    if !answers.is_empty() {
                        out.send(&Value::Array(answers));
                    }
                }
            }
            drop(forwarding);
        });
    if let Err(e) = spawned {
        note(&format!("cannot start a thread: {e}"));
    }
}

/// The answer to one request of a batch the relay did not answer (`failure` says why), as
/// `forward` answers a request sent on its own; None for a notification or a response.
fn unforwarded(item: Value, failure: &Failure) -> Option<Value> {
    let (id, method) = match RpcMessage::parse(item) {
        Ok(RpcMessage::Request { id, method, .. }) => (id, method),
        Ok(_) => return None,
        Err((id, e)) => {
            let mut answer = error(&id.unwrap_or(Value::Null), e.code, &e.message);
            if let Some(data) = e.data {
                answer["error"]["data"] = data;
            }
            return Some(answer);
        }
    };
    Some(match failure {
        Failure::Refused(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        Failure::Down(why) => answer_while_down(&id, &method, why),
    })
}

/// Answers or forwards one client message.
fn handle(
    message: Value,
    upstream: &Arc<Upstream>,
    listen: Option<&Listen>,
    gate: &Gate,
    in_flight: &Arc<InFlight>,
    negotiated: &mut Option<String>,
    out: &Arc<Out>,
) {
    // The envelope is read by the relay's own reader, so a message the bridge answers itself
    // (`initialize`, `ping`, a malformed one) is refused exactly as the relay's endpoint
    // refuses it: `jsonrpc` must be "2.0", an id a string or an integer (else the answer's id
    // is null), `params` an object.
    let (id, method, params) = match RpcMessage::parse(message.clone()) {
        Ok(RpcMessage::Request { id, method, params }) => (Some(id), method, params),
        Ok(RpcMessage::Notification { method, params }) => (None, method, params),
        // A response to a server request (the relay sends none): nothing to answer.
        Ok(RpcMessage::Response) => return,
        Err((id, e)) => {
            let mut answer = error(&id.unwrap_or(Value::Null), e.code, &e.message);
            if let Some(data) = e.data {
                answer["error"]["data"] = data;
            }
            out.send(&answer);
            return;
        }
    };
    match (method.as_str(), id) {
        ("initialize", Some(id)) => {
            let result = match upstream.initialize(&params) {
                Ok(result) => result,
                Err(Failure::Down(why)) => {
                    note(&format!("{why}; answering initialize without the relay"));
                    offline_initialize(&params)
                }
                Err(Failure::Refused(error)) => {
                    out.send(&json!({"jsonrpc": "2.0", "id": id, "error": error}));
                    return;
                }
            };
            let mut result = result;
            *negotiated = result["protocolVersion"].as_str().map(str::to_string);
            if let Some(listen) = listen {
                listen.declare(&mut result);
            }
            out.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
        }
        // The bridge sends its own to the relay with every new session.
        ("notifications/initialized", None) => gate.open(),
        ("ping", Some(id)) => out.send(&json!({"jsonrpc": "2.0", "id": id, "result": {}})),
        (_, id) => {
            let (upstream, out) = (Arc::clone(upstream), Arc::clone(out));
            let forwarding = in_flight.start();
            let spawned = thread::Builder::new()
                .name("forward".into())
                .spawn(move || {
                    forward(&message, id, &method, &upstream, &out);
                    drop(forwarding);
                });
            if let Err(e) = spawned {
                note(&format!("cannot start a thread: {e}"));
            }
        }
    }
}

fn forward(message: &Value, id: Option<Value>, method: &str, upstream: &Upstream, out: &Out) {
    match (upstream.send(message), id) {
        (Ok(Some(answer)), Some(_)) => out.answer(&answer),
        (Ok(_), _) => {}
        (Err(Failure::Refused(error)), Some(id)) => {
            out.send(&json!({"jsonrpc": "2.0", "id": id, "error": error}));
        }
        (Err(Failure::Refused(error)), None) => {
            note(&format!("{method} refused: {}", error["message"]));
        }
        (Err(Failure::Down(why)), Some(id)) => out.send(&answer_while_down(&id, method, &why)),
        (Err(Failure::Down(why)), None) => note(&format!("{method} not forwarded: {why}")),
    }
}

/// The bridge's own answer to request `id` for `method`, which could not reach the relay.
fn answer_while_down(id: &Value, method: &str, why: &str) -> Value {
    match method {
        // The tools are this build's, fixed for the session (`listChanged` is false): a client
        // that lists them once, before the relay is up, must still get them all.
        "tools/list" => {
            note(&format!("{why}; listing the tools without the relay"));
            json!({"jsonrpc": "2.0", "id": id, "result": crate::mcp::tools::list()})
        }
        "tools/call" => {
            note(why);
            let text = format!("The relay is unreachable right now ({why}); nothing was done. Try again in a moment.");
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": text}], "isError": true}})
        }
        "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        _ => {
            note(why);
            error(id, RELAY_DOWN, &format!("the relay is unreachable: {why}"))
        }
    }
}

/// Keeps the session's stream open for as long as the bridge runs, from the client's
/// `initialized` on.
fn follow_stream(upstream: &Upstream, gate: &Gate, out: &Out) {
    gate.wait();
    let mut backoff = Backoff::new();
    loop {
        let outcome = upstream.stream(&|message: &str| {
            // Every event of the stream is one JSON-RPC message: one line on stdout.
            if serde_json::from_str::<Value>(message).is_ok() {
                out.line(message);
            }
        });
        match outcome {
            Ok(()) => backoff.reset(),
            Err(Failure::Down(why)) => log_once(&why),
            Err(Failure::Refused(error)) => log_once(error["message"].as_str().unwrap_or_default()),
        }
        backoff.sleep();
    }
}

fn log_once(why: &str) {
    static LAST: Mutex<String> = Mutex::new(String::new());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if *last != why {
        note(why);
        *last = why.to_string();
    }
}

/// The `initialize` result when the relay cannot be asked: what the relay itself declares, so
/// the client connects now and its requests reach the relay once it is back.
fn offline_initialize(params: &Value) -> Value {
    let version = params["protocolVersion"].as_str().unwrap_or("2025-06-18");
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "logging": {}
        },
        "serverInfo": {"name": "claude-codex-relay", "version": env!("CARGO_PKG_VERSION")}
    })
}

fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}
