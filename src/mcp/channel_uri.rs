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

/// Whether `uri` is of the `relay` scheme, in any case (a URI's scheme is case-insensitive).
pub(crate) fn is_relay(uri: &str) -> bool {
    after_any_case(uri, "relay:").is_some()
}

/// What follows `prefix` at the start of `text`, the prefix matching in any ASCII case.
fn after_any_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let start = text.get(..prefix.len())?;
    start
        .eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The channel a resource URI names, if it is one of ours and well-formed. The scheme and the
/// host (`relay`, `channel`) match in any case, as a URI's scheme and host do; the name is read
/// as written, after its percent-encoding.
pub(crate) fn channel(uri: &str) -> Option<String> {
    let encoded = after_any_case(uri, PREFIX)?;
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

    #[test]
    fn the_scheme_and_host_match_in_any_case_and_the_name_as_written() {
        for spelling in ["RELAY://Channel/Proj-X", "Relay://CHANNEL/Proj%2DX"] {
            assert_eq!(channel(spelling).as_deref(), Some("Proj-X"), "{spelling}");
        }
        assert_eq!(channel("relay://channel/proj-x").as_deref(), Some("proj-x"));
        assert_eq!(channel("RELAY://CHANNEL/ü").as_deref(), Some("ü"));
        assert_eq!(channel("relay://channe/"), None);
        assert_eq!(
            channel("rélay://channel/x"),
            None,
            "not cut inside a character"
        );
        assert!(is_relay("RELAY://anything") && is_relay("relay:x"));
        assert!(!is_relay("relays://x") && !is_relay("ré"));
    }
}
