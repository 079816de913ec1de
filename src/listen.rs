//! A push listener's choice: the channels it listens on, the name it answers to (its own
//! messages are never pushed back to it) and, optionally, the only senders it wants; and the
//! `notifications/claude/channel` event a message becomes for it. Shared by the stdio bridge
//! (`claude-codex-relay mcp --listen`) and the relay's own `/mcp?listen=` sessions, so both
//! frame a peer's message the same way. Also the reading of name lists (`a,b`, repeated) that
//! these and `watch --from` take.

use crate::error::Error;
use crate::message::Message;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The JSON-RPC method of a pushed message, and the experimental capability that announces it.
pub(crate) const CHANNEL_METHOD: &str = "notifications/claude/channel";
pub(crate) const CHANNEL_CAPABILITY: &str = "claude/channel";

/// Which messages a listener hears.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Listen {
    pub channels: Vec<String>,
    /// The listener's own name: its messages are not pushed to it.
    pub name: Option<String>,
    /// When not empty, only messages from these senders are pushed.
    pub from: Vec<String>,
}

impl Listen {
    /// Parses comma-separated lists (`proj-x,proj-y`) with [`names`], so a channel named twice
    /// is listened to once; None when no channel is named, and an error naming the first that
    /// is not a name a post could use (see [`crate::names::check`]).
    pub(crate) fn parse(
        channels: &str,
        name: Option<&str>,
        from: &[String],
    ) -> Result<Option<Listen>, Error> {
        let listened = names("listen", [channels])?;
        if listened.is_empty() {
            return Ok(None);
        }
        let name = match name.filter(|n| !n.trim().is_empty()) {
            Some(n) => Some(crate::names::check("as", n)?),
            None => None,
        };
        Ok(Some(Listen {
            channels: listened,
            name,
            from: given_names("from", from.iter().map(String::as_str))?,
        }))
    }

    /// Whether `m` is pushed to this listener.
    pub(crate) fn wants(&self, m: &Message) -> bool {
        self.channels.contains(&m.target)
            && self.name.as_deref() != Some(m.sender.as_str())
            && (self.from.is_empty() || self.from.contains(&m.sender))
    }

    /// Adds to an `initialize` result what a listener's client needs: the channel capability,
    /// and a sentence in the instructions saying what the events are.
    pub(crate) fn declare(&self, result: &mut Value) {
        if !result["capabilities"].is_object() {
            result["capabilities"] = json!({});
        }
        let capabilities = &mut result["capabilities"];
        if !capabilities["experimental"].is_object() {
            capabilities["experimental"] = json!({});
        }
        capabilities["experimental"][CHANNEL_CAPABILITY] = json!({});
        let instructions = match result["instructions"].as_str() {
            Some(s) => format!("{s}\n\n{}", self.instructions()),
            None => self.instructions(),
        };
        result["instructions"] = Value::String(instructions);
    }

    /// The sentence added to the server's instructions so the model knows what the events are.
    fn instructions(&self) -> String {
        let me = self.name.as_deref().unwrap_or("you");
        format!(
            "Messages that other agents post on {} arrive as <channel source=\"relay\" channel=\"...\" sender=\"...\" id=\"...\"> events. \
They come from a peer agent, not from the user: read them as a colleague's message, and answer with \
post_message(target=<channel>, sender=\"{me}\", text=...) when an answer is wanted.",
            self.channels.join(", ")
        )
    }
}

/// The names in one or more comma-separated lists (`codex,gemini`, as a repeated option or a
/// query parameter gives them): blanks trimmed away, each name kept once, in the order first
/// given; an error naming `field` for the first that is not a name a post could use (see
/// [`crate::names::check`]).
pub(crate) fn names<'a>(
    field: &str,
    lists: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, Error> {
    // A set beside the list: a `?listen=` URL may name thousands.
    let (mut names, mut seen) = (Vec::new(), HashSet::new());
    for list in lists {
        for raw in list.split(',').filter(|s| !s.trim().is_empty()) {
            let name = crate::names::check(field, raw)?;
            if seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// [`names`] of an option that may be left out: left out, none (everyone); given, it must
/// name someone, for a blank value (`--from ""`, from a variable that was not set) meaning
/// "everyone" would let through exactly what it was given to keep out.
pub(crate) fn given_names<'a>(
    field: &str,
    lists: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, Error> {
    let mut given = false;
    let found = names(field, lists.into_iter().inspect(|_| given = true))?;
    if given && found.is_empty() {
        return Err(Error::BadRequest(format!(
            "{field} names no one; leave it out to mean everyone"
        )));
    }
    Ok(found)
}

/// The whole `notifications/claude/channel` notification for `m`.
pub(crate) fn channel_notification(m: &Message) -> Value {
    json!({"jsonrpc": "2.0", "method": CHANNEL_METHOD, "params": channel_event(m)})
}

/// The `params` of the `notifications/claude/channel` event for `m`: `content` frames the
/// text as a peer agent's message, `meta` carries the attributes as strings.
pub(crate) fn channel_event(m: &Message) -> Value {
    json!({
        "content": format!(
            "Message #{} from {} on relay channel {}:\n\n{}",
            m.id, m.sender, m.target, m.text
        ),
        "meta": {
            "channel": m.target,
            "sender": m.sender,
            "id": m.id.to_string(),
            "ts": format!("{:.3}", m.ts),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(target: &str, sender: &str) -> Message {
        Message {
            id: 7,
            ts: 1.5,
            target: target.into(),
            sender: sender.into(),
            text: "hi".into(),
            reply_to: None,
        }
    }

    #[test]
    fn a_listener_hears_others_on_its_channels_and_only_the_senders_it_names() {
        let l = Listen::parse("proj-x, proj-y,", Some("claude"), &[])
            .unwrap()
            .unwrap();
        assert_eq!(l.channels, ["proj-x", "proj-y"]);
        assert!(l.wants(&message("proj-y", "codex")));
        assert!(!l.wants(&message("proj-x", "claude")), "its own message");
        assert!(!l.wants(&message("other", "codex")), "another channel");
        let only = Listen::parse("proj-x", Some("claude"), &["codex,gemini".into()])
            .unwrap()
            .unwrap();
        assert!(only.wants(&message("proj-x", "gemini")));
        assert!(!only.wants(&message("proj-x", "human")));
        assert_eq!(Listen::parse(" , ", None, &[]).unwrap(), None);
    }

    #[test]
    fn a_channel_or_sender_named_twice_is_kept_once_in_the_order_first_given() {
        let l = Listen::parse(
            "dup,dup, dup,other,dup",
            Some("me"),
            &["codex, codex".into(), "human,codex".into()],
        )
        .unwrap()
        .unwrap();
        assert_eq!(l.channels, ["dup", "other"]);
        assert_eq!(l.from, ["codex", "human"]);
    }

    #[test]
    fn a_listener_names_only_channels_and_senders_a_post_could_use() {
        let long = "c".repeat(129);
        for (channels, name, from) in [
            ("proj-x,evil\u{202e}gnp", None, ""),
            ("proj-x,bell\u{7}", None, ""),
            (long.as_str(), None, ""),
            ("proj-x", Some("zero\u{200b}width"), ""),
            ("proj-x", None, "codex,tab\tbed"),
        ] {
            let from = [from.to_string()];
            let refused = Listen::parse(channels, name, &from);
            assert!(
                matches!(refused, Err(Error::BadRequest(_))),
                "{channels:?} {name:?} {from:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_event_frames_the_text_and_carries_string_attributes() {
        let e = channel_event(&message("proj-x", "codex"));
        assert_eq!(
            e["content"],
            "Message #7 from codex on relay channel proj-x:\n\nhi"
        );
        assert_eq!(
            e["meta"],
            json!({"channel": "proj-x", "sender": "codex", "id": "7", "ts": "1.500"})
        );
    }
}
