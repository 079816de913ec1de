//! One MCP resource per channel, `relay://channel/<name>` (the name percent-encoded): listed,
//! read as the channel's recent messages in JSON, and subscribable (by any spelling of its URI,
//! which its updates then use) so a client hears
//! `notifications/resources/updated` when the channel gets a message or loses some (a deletion
//! of a message or of the channel, or retention dropping old ones).

use crate::mcp::channel_uri::{self, channel, PREFIX};
use crate::mcp::context::Context;
use crate::mcp::jsonrpc::{RpcError, INVALID_PARAMS, RESOURCE_NOT_FOUND};
use serde_json::{json, Value};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Messages returned by `resources/read`: the newest this many, and of those only the newest
/// whose texts fit in `READ_MAX_TEXT_BYTES` (the newest one always), so that one read, and one
/// slow reader of it, costs a bounded amount.
pub(crate) const READ_LIMIT: usize = 50;
pub(crate) const READ_MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;

/// Longest `relay://` URI a subscription takes. Every valid channel name's URI fits (a
/// character percent-encoded is at most 12 bytes): only whitespace around a name, which is
/// trimmed off, could make one longer. The URI is kept as the client wrote it, to name it in
/// updates, so this bounds what a subscription costs.
const MAX_SUBSCRIBED_URI_BYTES: usize = PREFIX.len() + 12 * crate::names::MAX_CHARS;

/// What `resources/subscribe` keeps for `uri`: the canonical URI of a channel resource, or
/// -32602 for a `relay://` URI that does not name a valid channel (or is longer than any such
/// URI need be). A URI of another scheme is accepted and ignored (None): nothing here can ever
/// change it, so there is nothing to notify, and MCP clients (the conformance suite among them)
/// subscribe to URIs they learnt elsewhere and expect success. Only valid channel names are
/// stored, so a subscription costs a bounded amount.
pub(crate) fn subscription(uri: &str) -> Result<Option<String>, RpcError> {
    if !channel_uri::is_relay(uri) {
        return Ok(None);
    }
    Some(uri)
        .filter(|uri| uri.len() <= MAX_SUBSCRIBED_URI_BYTES)
        .and_then(channel)
        .and_then(|name| crate::names::check("target", &name).ok())
        .map(|name| Some(channel_uri::uri(&name)))
        .ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                format!("{PREFIX}<name> with a valid channel name is the only relay resource"),
            )
        })
}

/// Channels per page of `resources/list`.
pub(crate) const LIST_PAGE: usize = 100;

/// The `resources/list` result: a page of channels after `params.cursor` (a `nextCursor` this
/// run of the relay gave, or -32602), with `nextCursor` when more follow.
pub(crate) fn list(cx: &Context, params: &Value) -> Result<Value, RpcError> {
    let after = match params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(resumes_after(cursor).ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                "cursor is not a nextCursor this relay gave (or it has restarted since): \
                 list again without a cursor",
            )
        })?),
        Some(_) => return Err(RpcError::new(INVALID_PARAMS, "cursor must be a string")),
    };
    let (page, more) = cx.store.channels_page(after.as_deref(), LIST_PAGE);
    let resources: Vec<Value> = page
        .iter()
        .map(|c| {
            json!({
                "uri": channel_uri::uri(c),
                "name": c,
                "title": format!("#{c}"),
                "description": format!("The newest {READ_LIMIT} messages of channel {c}"),
                "mimeType": "application/json"
            })
        })
        .collect();
    let mut result = json!({ "resources": resources });
    if let Some(last) = page.last().filter(|_| more) {
        result["nextCursor"] = json!(cursor(last));
    }
    Ok(result)
}

/// The key of the cursors' tags: random for each run of the relay, so that no client can make
/// a cursor, and one from an earlier run is refused rather than read.
fn cursor_key() -> &'static RandomState {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

/// The cursor that resumes a listing after channel `name`: 16 hex digits of a keyed SipHash
/// tag of the name, then the name's bytes in hex. Opaque to clients, and any change to it
/// breaks the tag.
fn cursor(name: &str) -> String {
    let mut out = format!("{:016x}", cursor_key().hash_one(name));
    for b in name.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The channel name a cursor resumes after, if it is one [`cursor`] made in this run, spelt
/// exactly as made.
fn resumes_after(given: &str) -> Option<String> {
    let hex = given.get(16..)?.as_bytes();
    let bytes = hex
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let name = String::from_utf8(bytes).ok()?;
    (cursor(&name) == given).then_some(name)
}

/// The `resources/templates/list` result.
pub(crate) fn templates() -> Value {
    json!({"resourceTemplates": [{
        "uriTemplate": format!("{PREFIX}{{name}}"),
        "name": "channel",
        "title": "Channel",
        "description": "The newest messages of a channel: up to 50, and up to 4 MiB of text",
        "mimeType": "application/json"
    }]})
}

/// The `resources/read` result, or -32002 for a URI that is not a known channel.
pub(crate) fn read(cx: &Context, params: &Value) -> Result<Value, RpcError> {
    let uri = requested_uri(params)?;
    let known = channel(uri).filter(|c| cx.store.is_listed(c));
    let Some(name) = known else {
        return Err(RpcError::new(RESOURCE_NOT_FOUND, "Resource not found")
            .with_data(json!({ "uri": uri })));
    };
    let messages = cx.store.latest(&name, READ_LIMIT, READ_MAX_TEXT_BYTES);
    let text = json!({"target": name, "messages": messages}).to_string();
    Ok(json!({"contents": [{"uri": uri, "mimeType": "application/json", "text": text}]}))
}

/// The `uri` parameter of a resources request, or -32602.
pub(crate) fn requested_uri(params: &Value) -> Result<&str, RpcError> {
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
    fn a_cursor_resumes_after_its_channel_and_an_altered_one_is_refused() {
        for name in ["c0050", "a b", "ünï", "x"] {
            assert_eq!(resumes_after(&cursor(name)).as_deref(), Some(name));
        }
        let made = cursor("c0050");
        let flipped = |at: usize| {
            let mut bytes = made.clone().into_bytes();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(bytes).unwrap()
        };
        for forged in [
            String::new(),
            "c0050".to_string(),
            made[..16].to_string(),
            made[..made.len() - 2].to_string(),
            format!("{made}00"),
            cursor("ünï").to_uppercase(),
            flipped(0),
            flipped(made.len() - 1),
            format!("{}{}", &made[..16], "6330303531"),
            format!("+{}", &made[1..]),
        ] {
            assert_eq!(resumes_after(&forged), None, "{forged:?}");
        }
    }

    #[test]
    fn only_valid_channel_uris_are_kept_as_subscriptions() {
        assert_eq!(subscription("test://watched-resource").unwrap(), None);
        assert_eq!(
            subscription("relay://channel/a%20b").unwrap().as_deref(),
            Some("relay://channel/a%20b")
        );
        assert!(subscription("relay://channel/%E2%80%AE").is_err());
        assert!(subscription("relay://other").is_err());
        assert!(subscription("RELAY://other").is_err());
        assert_eq!(
            subscription("RELAY://Channel/Proj-X").unwrap().as_deref(),
            Some("relay://channel/Proj-X"),
            "the scheme and host in any case, the name as written"
        );
        let padded = format!("relay://channel/a{}", "%20".repeat(1000));
        assert!(subscription(&padded).is_err(), "longer than any name needs");
        assert_eq!(
            subscription("relay://channel/a%20%20").unwrap().as_deref(),
            Some("relay://channel/a")
        );
    }
}
