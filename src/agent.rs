//! What an agent's token binds, whichever way the agent calls (REST or MCP): it posts only under
//! its own name, and reads and moves only its own reading positions. Without an agent's token
//! (no token configured, or the shared one) any name is accepted.

use crate::error::Error;

/// The sender a post is made under: the name given, which an agent's token must match (up to
/// surrounding spaces), or the agent's own name when none is given.
pub(crate) fn sender(given: Option<String>, agent: Option<&str>) -> Result<String, Error> {
    match (given, agent) {
        (None, Some(agent)) => Ok(agent.to_string()),
        (Some(given), Some(agent)) if given.trim() != agent => Err(Error::Forbidden(format!(
            "this token may only post as {agent:?}"
        ))),
        (Some(given), _) => Ok(given),
        (None, None) => Err(Error::BadRequest("sender is required".into())),
    }
}

/// Whether `reader`'s positions may be used: always, unless an agent's token names another.
pub(crate) fn own_reader(reader: &str, agent: Option<&str>) -> Result<(), Error> {
    match agent {
        Some(agent) if agent != reader => Err(Error::Forbidden(format!(
            "this token may only use the reader name {agent:?}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_posts_only_as_itself_and_defaults_to_its_name() {
        assert_eq!(sender(None, Some("codex")).unwrap(), "codex");
        assert_eq!(
            sender(Some(" codex ".into()), Some("codex")).unwrap(),
            " codex "
        );
        let e = sender(Some("claude".into()), Some("codex")).unwrap_err();
        assert_eq!(e.status(), 403);
        assert_eq!(e.to_string(), "this token may only post as \"codex\"");
        assert_eq!(sender(Some("anyone".into()), None).unwrap(), "anyone");
        let e = sender(None, None).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            (400, "sender is required".into())
        );
    }

    #[test]
    fn an_agent_reads_only_with_its_own_reader_name() {
        assert!(own_reader("codex", Some("codex")).is_ok());
        assert!(own_reader("claude", None).is_ok());
        let e = own_reader("claude", Some("codex")).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("reader name \"codex\""), "{e}");
    }
}
