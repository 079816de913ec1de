//! JSON-RPC 2.0 wire types as MCP uses them: a request id is a number or a string and is echoed
//! back with its type; a message is a request, a notification or a response; an error carries a
//! standard code. Parsing checks the envelope only; methods are dispatched by `handler`.

use crate::error::Error;
use crate::message::{escape_separators, has_separators};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

pub(crate) const PARSE_ERROR: i64 = -32700;
pub(crate) const INVALID_REQUEST: i64 = -32600;
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
pub(crate) const INVALID_PARAMS: i64 = -32602;
pub(crate) const INTERNAL_ERROR: i64 = -32603;
/// MCP: the resource named by a URI does not exist.
pub(crate) const RESOURCE_NOT_FOUND: i64 = -32002;

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
    /// Reads the envelope of one message. `params` that are missing or null become `{}`.
    pub(crate) fn parse(value: &Value) -> Result<RpcMessage, (Option<Value>, RpcError)> {
        let Value::Object(obj) = value else {
            return Err((
                None,
                RpcError::new(INVALID_REQUEST, "a JSON-RPC message must be an object"),
            ));
        };
        let id = obj.get("id").cloned();
        let valid_id = matches!(&id, Some(Value::String(_)))
            || id.as_ref().is_some_and(|v| v.is_i64() || v.is_u64());
        let fail = |message: &str| {
            Err((
                id.clone().filter(|_| valid_id),
                RpcError::new(INVALID_REQUEST, message),
            ))
        };
        if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return fail("jsonrpc must be \"2.0\"");
        }
        match obj.get("method") {
            Some(Value::String(method)) => {
                let params = match obj.get("params") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(p @ Value::Object(_)) => p.clone(),
                    Some(Value::Array(_)) => return fail("params must be an object"),
                    Some(_) => return fail("params must be an object"),
                };
                match id {
                    None => Ok(RpcMessage::Notification {
                        method: method.clone(),
                        params,
                    }),
                    Some(_) if valid_id => Ok(RpcMessage::Request {
                        id: id.clone().unwrap_or(Value::Null),
                        method: method.clone(),
                        params,
                    }),
                    Some(_) => fail("id must be a string or an integer"),
                }
            }
            Some(_) => fail("method must be a string"),
            None if obj.contains_key("result") || obj.contains_key("error") => {
                Ok(RpcMessage::Response)
            }
            None => fail("a request needs a method"),
        }
    }
}

/// A message the server sends, already serialised: responses are built once and written as
/// they are to a reply body or a stream.
pub(crate) type Outgoing = Box<RawValue>;

/// Serialises `value` as an outgoing message.
pub(crate) fn outgoing(value: &impl Serialize) -> Outgoing {
    // Serialised JSON is valid JSON, so it is parsed again only in the rare case that escaping
    // the line separators changed it.
    serde_json::value::to_raw_value(value)
        .and_then(|raw| match has_separators(raw.get()) {
            false => Ok(raw),
            true => RawValue::from_string(escape_separators(raw.get().to_string())),
        })
        .unwrap_or_else(|e| {
        // Only a map with non-string keys fails to serialise, and the relay builds none.
        RawValue::from_string(json!({"jsonrpc": "2.0", "id": null, "error": {"code": INTERNAL_ERROR, "message": e.to_string()}}).to_string())
            .expect("a JSON object is valid JSON")
    })
}

/// A success response.
pub(crate) fn result(id: &Value, result: &impl Serialize) -> Outgoing {
    #[derive(Serialize)]
    struct Response<'a, R> {
        jsonrpc: &'static str,
        id: &'a Value,
        result: &'a R,
    }
    outgoing(&Response {
        jsonrpc: "2.0",
        id,
        result,
    })
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

    #[test]
    fn ids_keep_their_type_and_params_default_to_an_object() {
        let m = RpcMessage::parse(&json!({"jsonrpc":"2.0","id":"a","method":"ping"})).unwrap();
        assert_eq!(
            m,
            RpcMessage::Request {
                id: json!("a"),
                method: "ping".into(),
                params: json!({})
            }
        );
        let m = RpcMessage::parse(&json!({"jsonrpc":"2.0","id":7,"method":"ping","params":null}))
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
            json!({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}),
            json!({"jsonrpc":"2.0","id":1}),
        ] {
            let (_, e) = RpcMessage::parse(&bad).unwrap_err();
            assert_eq!(e.code, INVALID_REQUEST, "{bad}");
        }
    }

    #[test]
    fn notifications_and_responses_are_told_apart() {
        assert!(matches!(
            RpcMessage::parse(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
                .unwrap(),
            RpcMessage::Notification { .. }
        ));
        assert_eq!(
            RpcMessage::parse(&json!({"jsonrpc":"2.0","id":1,"result":{}})).unwrap(),
            RpcMessage::Response
        );
    }
}
