//! `export`: a channel written out whole, oldest first, read from the relay a page at a time.
//! As Markdown, a transcript for people: a heading per message with its id, sender and time,
//! under an anchor of its own (`<a id="m8"></a>`, which GitHub and VS Code both link to), a
//! line naming the message it answers (a link to that anchor when the message is in the
//! transcript), and the text as it was written (code blocks intact).
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

/// One message of the transcript: its anchor, its heading, the message it answers (`linked`:
/// by a link to that message's anchor, as it is in the transcript too) and its text. The text
/// is written as it is: a fence it opens is its own, and the rule after it closes the entry.
fn markdown(m: &Message, linked: bool) -> String {
    let mut entry = format!(
        "<a id=\"{}\"></a>\n\n## #{} · {} · {}\n\n",
        anchor(m.id),
        m.id,
        m.sender,
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
    entry.push_str(m.text.trim_end_matches('\n'));
    entry.push_str("\n\n---\n\n");
    entry
}
