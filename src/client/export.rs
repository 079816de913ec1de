//! `export`: a channel written out whole, oldest first, read from the relay a page at a time.
//! As Markdown, a transcript for people: a heading per message with its id, sender and time,
//! under an anchor of its own (`<a id="m8"></a>`, which GitHub and VS Code both link to), a
//! line naming the message it answers (a link to that anchor when the message is in the
//! transcript), and the text as it was written (code blocks intact, one left open closed).
//! As JSON lines, one message per line in the journal's own shape, so the file is a journal a
//! relay starts from (`data_dir/messages.jsonl`) with the same ids, times and texts.

use super::error::Error;
use super::format::{json_line, utc};
use super::relay_client::{Query, RelayClient};
use crate::message::Message;
use std::collections::HashSet;
use std::io::Write;

/// Messages asked for per request: the relay's largest page.
const PAGE: u64 = 500;

/// The two ways a channel is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Markdown,
    Jsonl,
}

impl Format {
    pub(super) fn parse(raw: &str) -> Result<Format, Error> {
        match raw.trim() {
            "md" | "markdown" => Ok(Format::Markdown),
            "jsonl" | "json" => Ok(Format::Jsonl),
            other => Err(Error::Usage(format!(
                "--format must be md or jsonl, not {other:?}"
            ))),
        }
    }
}

/// Writes every message of `target` after `since_id` to `out` in `format`; returns how many.
/// Nothing is written until the relay has answered once.
pub(super) fn export(
    relay: &RelayClient,
    target: &str,
    since_id: u64,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize, Error> {
    let mut last = since_id;
    let mut written = 0;
    let mut headed = false;
    // The ids written so far: a reply links to its message only when that is one of them
    // (a message is answered only by later ones).
    let mut exported = HashSet::new();
    loop {
        let query = Query {
            since_id: Some(last),
            limit: Some(PAGE),
            ..Query::default()
        };
        let page = relay.page(target, &query)?;
        // The heading waits for the relay's first answer: an export that fails at once
        // writes nothing.
        if format == Format::Markdown && !headed {
            write!(out, "# {target}\n\n").map_err(Error::output)?;
            headed = true;
        }
        for m in &page.messages {
            if m.id <= last {
                return Err(Error::Invalid(format!(
                    "{} answered message {} after {last}: ids must increase",
                    relay.url(),
                    m.id
                )));
            }
            let text = match format {
                Format::Markdown => {
                    let linked = m.reply_to.is_some_and(|id| exported.contains(&id));
                    exported.insert(m.id);
                    markdown(m, linked)
                }
                Format::Jsonl => json_line(m),
            };
            out.write_all(text.as_bytes()).map_err(Error::output)?;
            last = m.id;
            written += 1;
        }
        if !page.more || page.messages.is_empty() {
            break;
        }
    }
    out.flush().map_err(Error::output)?;
    Ok(written)
}

/// The id of a message's anchor in the transcript.
fn anchor(id: u64) -> String {
    format!("m{id}")
}

/// One message of the transcript: its anchor, its heading (the sender's name as plain text,
/// never markup), the message it answers (`linked`: by a link to that message's anchor, as it
/// is in the transcript too) and its text. The text is written as it is, but a code fence it
/// leaves open is closed, so the rule after it ends the entry and the next heading is one.
fn markdown(m: &Message, linked: bool) -> String {
    let mut entry = format!(
        "<a id=\"{}\"></a>\n\n## #{} · {} · {}\n\n",
        anchor(m.id),
        m.id,
        plain(&m.sender),
        utc(m.ts)
    );
    match m.reply_to {
        Some(answered) if linked => entry.push_str(&format!(
            "*In reply to [#{answered}](#{}).*\n\n",
            anchor(answered)
        )),
        Some(answered) => entry.push_str(&format!("*In reply to #{answered}.*\n\n")),
        None => {}
    }
    let text = m.text.trim_end_matches('\n');
    entry.push_str(text);
    if let Some(fence) = open_fence(text) {
        entry.push('\n');
        entry.push_str(&fence);
    }
    entry.push_str("\n\n---\n\n");
    entry
}

/// `text` as Markdown shows it literally: HTML and inline markup characters escaped.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '|' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The fence that closes a code block `text` opens and leaves open (CommonMark: a line of three
/// or more backticks or tildes, indented at most three spaces, closed by a line of at least as
/// many of the same), or None when every block it opens is closed.
fn open_fence(text: &str) -> Option<String> {
    let mut open: Option<(char, usize)> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            continue;
        }
        let rest = &line[indent..];
        let Some(mark) = rest.chars().next().filter(|c| *c == '`' || *c == '~') else {
            continue;
        };
        let run = rest.chars().take_while(|c| *c == mark).count();
        if run < 3 {
            continue;
        }
        let after = &rest[run..];
        open = match open {
            None if mark == '~' || !after.contains('`') => Some((mark, run)),
            Some((c, len)) if c == mark && run >= len && after.trim().is_empty() => None,
            other => other,
        };
    }
    open.map(|(c, len)| c.to_string().repeat(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_left_open_is_closed_with_its_own_kind_and_length() {
        assert_eq!(open_fence("```unterminated"), Some("```".into()));
        assert_eq!(open_fence("````rust\ncode\n```"), Some("````".into()));
        assert_eq!(open_fence("~~~\n```\nstill code"), Some("~~~".into()));
        assert_eq!(open_fence("```\ncode\n```"), None);
        assert_eq!(open_fence("  ```\ncode\n   ````  "), None);
        assert_eq!(open_fence("    ```\nindented four: not a fence"), None);
        assert_eq!(open_fence("inline ``` is no fence"), None);
        assert_eq!(open_fence("``` a`b\nnot an opening"), None);
        assert_eq!(open_fence("no code at all"), None);
    }

    #[test]
    fn an_entry_ends_outside_any_code_block_and_a_senders_markup_is_shown_as_text() {
        let m = Message {
            id: 7,
            ts: 0.0,
            target: "t".into(),
            sender: "c<script>*x*".into(),
            text: "```diff\n+ half a diff".into(),
            reply_to: None,
        };
        let entry = markdown(&m, false);
        assert!(
            entry.contains("## #7 · c&lt;script&gt;\\*x\\* · "),
            "{entry}"
        );
        assert!(entry.ends_with("+ half a diff\n```\n\n---\n\n"), "{entry}");
    }
}
