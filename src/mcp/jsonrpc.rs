//! JSON-RPC 2.0 wire types as MCP uses them: a request id is a number or a string and is echoed
//! back with its type; a message is a request, a notification or a response; an error carries a
//! standard code. Parsing checks the envelope only; methods are dispatched by `handler`. What
//! the server sends is written once as text (`Outgoing`), a large result straight into its
//! response around parts serialised before, with strings escaped as `serde_json` escapes them.

use crate::error::Error;
use crate::message::{escape_separators, has_separators};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// MCP: the resource named by a URI does not exist.
pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;
/// A request of a batch that was not run: the answers before it already reached their limit.
pub(crate) const NOT_RUN: i64 = -32000;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub(crate) fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }

    fn to_value(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// The one mapping from the relay's `Error` to a JSON-RPC error, for a request to an MCP
/// endpoint that failed as a whole (its HTTP status stays `Error::status`): a body that is not
/// JSON is a parse error, anything else an invalid request, and the message is the error's.
impl From<&Error> for RpcError {
    fn from(e: &Error) -> RpcError {
        let code = match e {
            Error::Parse(_) => PARSE_ERROR,
            _ => INVALID_REQUEST,
        };
        RpcError::new(code, e.to_string())
    }
}

/// One incoming JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RpcMessage {
    /// A call that wants an answer; `id` is a JSON number or string.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A call that wants none.
    Notification { method: String, params: Value },
    /// An answer to a request the server sent; the relay sends none, so these are dropped.
    Response,
}

impl RpcMessage {
    /// Reads the envelope of one message, taking its parts without copying them. `params`
    /// that are missing or null become `{}`.
    pub(crate) fn parse(value: Value) -> Result<RpcMessage, (Option<Value>, RpcError)> {
        let Value::Object(mut obj) = value else {
            return Err((
                None,
                RpcError::new(INVALID_REQUEST, "a JSON-RPC message must be an object"),
            ));
        };
        let id = obj.remove("id");
        let valid_id = matches!(&id, Some(Value::String(_)))
            || id.as_ref().is_some_and(|v| v.is_i64() || v.is_u64());
        let fail = |id: Option<Value>, message: &str| {
            Err((
                id.filter(|_| valid_id),
                RpcError::new(INVALID_REQUEST, message),
            ))
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return fail(id, "jsonrpc must be \"2.0\"");
        }
        match obj.remove("method") {
            Some(Value::String(method)) => {
                let params = match obj.remove("params") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(p @ Value::Object(_)) => p,
                    Some(_) => {
                        let e = RpcError::new(INVALID_PARAMS, "params must be an object");
                        return Err((id.filter(|_| valid_id), e));
                    }
                };
                match id {
                    None => Ok(RpcMessage::Notification { method, params }),
                    Some(id) if valid_id => Ok(RpcMessage::Request { id, method, params }),
                    Some(_) => fail(None, "id must be a string or an integer"),
                }
            }
            Some(_) => fail(id, "method must be a string"),
            None if obj.contains_key("result") || obj.contains_key("error") => {
                Ok(RpcMessage::Response)
            }
            None => fail(id, "a request needs a method"),
        }
    }
}

/// Whether request ids `a` and `b` name the same request: strings by their text, numbers by
/// their value (`1`, `1.0` and `1e0` are one id), and a string never a number.
pub(crate) fn same_id(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (whole(x), whole(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

/// A number's value if it is a whole number, exactly.
fn whole(n: &serde_json::Number) -> Option<i128> {
    if let Some(i) = n.as_i64() {
        return Some(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.into());
    }
    // Whole floats within ±2^64 convert exactly; larger ones compare as floats.
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 18_446_744_073_709_551_616.0).then_some(f as i128)
}

/// A message the server sends, already serialised: responses are built once and written as
/// they are to a reply body or a stream. It always holds one JSON value as `serde_json` writes
/// it, with U+2028 and U+2029 escaped: it is made by `outgoing`, or written here around parts
/// that are such JSON already.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outgoing(String);

impl Outgoing {
    /// Wraps `json`, written from parts already serialised (and separators escaped), so it is
    /// not parsed again. Test builds check that it is JSON.
    fn from_serialised(json: String) -> Outgoing {
        debug_assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(&json).is_ok() && !has_separators(&json),
            "not serialised JSON: {json}"
        );
        Outgoing(json)
    }

    /// The JSON text.
    pub(crate) fn get(&self) -> &str {
        &self.0
    }

    /// The JSON text as bytes, for a reply body.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }

    /// The JSON text, to be written into a larger message.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Serialises `value` as an outgoing message.
pub(crate) fn outgoing(value: &impl Serialize) -> Outgoing {
    match serde_json::to_string(value) {
        Ok(json) => Outgoing(escape_separators(json)),
        // Only a map with non-string keys fails to serialise, and the relay builds none.
        Err(e) => Outgoing(
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": INTERNAL_ERROR, "message": e.to_string()}})
                .to_string(),
        ),
    }
}

/// A success response carrying `result`, written around it without copying it again into
/// another serialiser.
pub(crate) fn result(id: &Value, result: Outgoing) -> Outgoing {
    result_with(id, result.0.len(), |out| out.push_str(&result.0))
}

/// A success response whose result `write` appends (about `len` bytes of JSON, with U+2028 and
/// U+2029 escaped) to the buffer that becomes the response, so a large one is written once.
pub(crate) fn result_with(id: &Value, len: usize, write: impl FnOnce(&mut String)) -> Outgoing {
    let id = outgoing(id);
    let mut json = String::with_capacity(len + id.0.len() + 32);
    json.push_str(r#"{"jsonrpc":"2.0","id":"#);
    json.push_str(&id.0);
    json.push_str(r#","result":"#);
    write(&mut json);
    json.push('}');
    Outgoing::from_serialised(json)
}

/// The answers to a batch, as one JSON array.
pub(crate) fn batch(answers: &[Outgoing]) -> Outgoing {
    let mut json = String::with_capacity(answers.iter().map(|a| a.0.len() + 1).sum::<usize>() + 1);
    json.push('[');
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&answer.0);
    }
    json.push(']');
    Outgoing(json)
}

/// An error response; `id` is null when the request's id could not be read.
pub(crate) fn error(id: Option<&Value>, e: &RpcError) -> Outgoing {
    outgoing(
        &json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": e.to_value()}),
    )
}

/// A notification the server sends.
pub(crate) fn notification(method: &str, params: Value) -> Outgoing {
    outgoing(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_string::tests::tricky_texts;

    #[test]
    fn ids_compare_as_json_rpc_ids() {
        let same = |a: &str, b: &str| {
            same_id(
                &serde_json::from_str(a).unwrap(),
                &serde_json::from_str(b).unwrap(),
            )
        };
        for (a, b) in [
            ("1", "1.0"),
            ("1", "1e0"),
            ("-3", "-3.0"),
            ("\"a\"", "\"a\""),
        ] {
            assert!(same(a, b), "{a} and {b}");
        }
        let big = "18446744073709551615";
        assert!(same(big, big));
        for (a, b) in [
            ("1", "\"1\""),
            ("1", "1.5"),
            ("1", "2"),
            ("\"1.0\"", "\"1\""),
        ] {
            assert!(!same(a, b), "{a} and {b}");
        }
    }

    #[test]
    fn a_result_is_written_around_its_serialised_part_as_serde_writes_the_whole() {
        for id in [json!(1), json!("a\u{2028}\"b"), json!(u64::MAX)] {
            let value = json!({"text": tricky_texts(), "n": 1.5, "ok": false});
            #[derive(Serialize)]
            struct Response<'a> {
                jsonrpc: &'static str,
                id: &'a Value,
                result: &'a Value,
            }
            let whole = escape_separators(
                serde_json::to_string(&Response {
                    jsonrpc: "2.0",
                    id: &id,
                    result: &value,
                })
                .unwrap(),
            );
            assert_eq!(result(&id, outgoing(&value)).get(), whole);
        }
        let answers = [outgoing(&json!({"a": 1})), outgoing(&json!("\u{2029}"))];
        assert_eq!(batch(&answers).get(), r#"[{"a":1},"\u2029"]"#);
    }

    #[test]
    fn ids_keep_their_type_and_params_default_to_an_object() {
        let m = RpcMessage::parse(json!({"jsonrpc":"2.0","id":"a","method":"ping"})).unwrap();
        assert_eq!(
            m,
            RpcMessage::Request {
                id: json!("a"),
                method: "ping".into(),
                params: json!({})
            }
        );
        let m = RpcMessage::parse(json!({"jsonrpc":"2.0","id":7,"method":"ping","params":null}))
            .unwrap();
        assert_eq!(
            m,
            RpcMessage::Request {
                id: json!(7),
                method: "ping".into(),
                params: json!({})
            }
        );
    }

    #[test]
    fn a_failed_request_is_a_parse_error_only_when_its_body_is_not_json() {
        let parse = RpcError::from(&Error::Parse("Parse error: eof".into()));
        assert_eq!(
            (parse.code, parse.message.as_str()),
            (PARSE_ERROR, "Parse error: eof")
        );
        for e in [
            Error::BadRequest("an empty batch is not a valid request".into()),
            Error::NotFound("Session not found".into()),
            Error::Unauthorized,
            Error::MethodNotAllowed { allow: "POST" },
        ] {
            let rpc = RpcError::from(&e);
            assert_eq!((rpc.code, rpc.message), (INVALID_REQUEST, e.to_string()));
        }
    }

    #[test]
    fn bad_envelopes_are_invalid_requests() {
        for bad in [
            json!([]),
            json!({"id":1,"method":"ping"}),
            json!({"jsonrpc":"1.0","id":1,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":null,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"ping"}),
            json!({"jsonrpc":"2.0","id":1,"method":5}),
            json!({"jsonrpc":"2.0","id":1}),
        ] {
            let (_, e) = RpcMessage::parse(bad.clone()).unwrap_err();
            assert_eq!(e.code, INVALID_REQUEST, "{bad}");
        }
        // A request whose params are not an object is a request with invalid params.
        let bad = json!({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]});
        let (_, e) = RpcMessage::parse(bad).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS);
        // The error answers the request's id when it is one.
        for (bad, id) in [
            (
                json!({"jsonrpc":"2.0","id":"a","method":"ping","params":[1]}),
                Some(json!("a")),
            ),
            (
                json!({"jsonrpc":"1.0","id":7,"method":"ping"}),
                Some(json!(7)),
            ),
            (json!({"jsonrpc":"2.0","id":7,"method":5}), Some(json!(7))),
            (json!({"jsonrpc":"2.0","id":1.5,"method":"ping"}), None),
            (json!({"jsonrpc":"2.0","id":[1],"method":"ping"}), None),
        ] {
            assert_eq!(RpcMessage::parse(bad.clone()).unwrap_err().0, id, "{bad}");
        }
    }

    #[test]
    fn notifications_and_responses_are_told_apart() {
        assert!(matches!(
            RpcMessage::parse(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
                .unwrap(),
            RpcMessage::Notification { .. }
        ));
        assert_eq!(
            RpcMessage::parse(json!({"jsonrpc":"2.0","id":1,"result":{}})).unwrap(),
            RpcMessage::Response
        );
    }
}
