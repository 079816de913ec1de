//! The URI of a channel's MCP resource, `relay://channel/<name>` with the name
//! percent-encoded, and its reading back: shared by the resources a client lists and reads and
//! the sessions that tell subscribers of updates.

/// Every channel resource's URI starts with this.
pub(crate) const PREFIX: &str = "relay://channel/";
/// The URI of a channel's resource.
pub(crate) fn uri(channel: &str) -> String {
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
pub(crate) fn channel(uri: &str) -> Option<String> {
    let encoded = uri.strip_prefix(PREFIX)?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
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
        assert_eq!(channel("relay://channel/%+F"), None);
    }
}
