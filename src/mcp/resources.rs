//! One MCP resource per channel, `relay://channel/<name>` (the name percent-encoded): listed,
//! read as the channel's recent messages in JSON, and subscribable so a client hears
//! `notifications/resources/updated` when the channel gets a message.

use crate::mcp::handler::Services;
use crate::mcp::jsonrpc::{RpcError, INVALID_PARAMS, RESOURCE_NOT_FOUND};
use serde_json::{json, Value};

const PREFIX: &str = "relay://channel/";
/// Messages returned by `resources/read`: the newest this many.
pub const READ_LIMIT: usize = 50;

/// The URI of a channel's resource.
pub fn uri(channel: &str) -> String {
    let mut out = String::from(PREFIX);
    for b in channel.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The channel a resource URI names, if it is one of ours and well-formed.
pub fn channel(uri: &str) -> Option<String> {
    let encoded = uri.strip_prefix(PREFIX)?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    (!name.trim().is_empty()).then_some(name)
}

/// The `resources/list` result: every channel.
pub fn list(services: &Services) -> Value {
    let resources: Vec<Value> = services
        .store
        .channels()
        .iter()
        .map(|c| {
            json!({
                "uri": uri(c),
                "name": c,
                "title": format!("#{c}"),
                "description": format!("The newest {READ_LIMIT} messages of channel {c}"),
                "mimeType": "application/json"
            })
        })
        .collect();
    json!({ "resources": resources })
}

/// The `resources/templates/list` result.
pub fn templates() -> Value {
    json!({"resourceTemplates": [{
        "uriTemplate": format!("{PREFIX}{{name}}"),
        "name": "channel",
        "title": "Channel",
        "description": "The newest messages of a channel",
        "mimeType": "application/json"
    }]})
}

/// The `resources/read` result, or -32002 for a URI that is not a known channel.
pub fn read(services: &Services, params: &Value) -> Result<Value, RpcError> {
    let uri = requested_uri(params)?;
    let known = channel(uri).filter(|c| services.store.channels().contains(c));
    let Some(name) = known else {
        return Err(RpcError::new(RESOURCE_NOT_FOUND, "Resource not found")
            .with_data(json!({ "uri": uri })));
    };
    let messages = services.store.latest(&name, READ_LIMIT);
    let text = json!({"target": name, "messages": messages}).to_string();
    Ok(json!({"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}))
}

/// The `uri` parameter of a resources request, or -32602.
pub fn requested_uri(params: &Value) -> Result<&str, RpcError> {
    match params.get("uri") {
        Some(Value::String(uri)) if !uri.is_empty() => Ok(uri),
        _ => Err(RpcError::new(
            INVALID_PARAMS,
            "uri must be a non-empty string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_any_channel_name() {
        for name in ["proj-x", "a b/c", "ünï", "100%"] {
            assert_eq!(channel(&uri(name)).as_deref(), Some(name));
        }
        assert_eq!(uri("a b"), "relay://channel/a%20b");
        assert_eq!(channel("test://watched-resource"), None);
        assert_eq!(channel("relay://channel/%zz"), None);
        assert_eq!(channel("relay://channel/"), None);
    }
}
