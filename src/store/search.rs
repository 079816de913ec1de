//! Search: the texts of a channel (or of every channel) that hold a query, ignoring case,
//! newest first. The index is walked a chunk at a time and let go while the chunk's texts are
//! read and scanned, so a search of a long history holds up no post.

use super::{lock, Store};
use crate::error::Error;
use crate::message::Message;
use std::sync::Arc;

/// Longest text a search looks for.
const MAX_QUERY_CHARS: usize = 1000;
/// Messages a search takes from the index at a time, at least; of every channel, up to as many
/// as there are channels while their texts stay within `SEARCH_CHUNK_BYTES`.
pub(super) const SEARCH_CHUNK: usize = 512;
pub(super) const SEARCH_CHUNK_BYTES: u64 = 8 << 20;

impl Store {
    /// Up to `limit` messages whose text contains `query` (ignoring case), newest first,
    /// optionally only of channel `target` and sender `sender`.
    pub(crate) fn search(
        &self,
        query: &str,
        target: Option<&str>,
        sender: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<Message>>, Error> {
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::BadRequest(format!(
                "the text to search for is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let mut needle = Needle::new(query);
        let mut hits = Vec::new();
        // The index is taken a chunk at a time, newest first, and let go while the texts are
        // read and scanned, so a search of a long history holds up no post.
        let mut below = u64::MAX;
        while hits.len() < limit {
            let taken = {
                let mut state = lock(&self.state);
                let found = state.newest_below(target, below, SEARCH_CHUNK, SEARCH_CHUNK_BYTES);
                state.take_each(found)
            };
            let Some(last) = taken.entries.last() else {
                break;
            };
            below = last.id;
            for m in self.resolve(taken, false) {
                if hits.len() < limit
                    && sender.is_none_or(|s| m.sender == s)
                    && needle.found_in(&m.text)
                {
                    hits.push(m);
                }
            }
        }
        Ok(hits)
    }
}

/// A case-insensitive substring search, in time linear in the text whatever the query. Query
/// and text are compared with every character lowercased on its own (`char::to_lowercase`),
/// not as words (`str::to_lowercase` makes a final capital sigma `ς` and any other `σ`), so a
/// text holding the query as it was typed is always found. An ASCII query (the common case) is
/// looked for in a copy of the text with its ASCII letters lowercased, made in one buffer
/// reused from text to text, unless the text holds one of the two characters whose lowercase
/// holds an ASCII letter (the Kelvin sign, `İ`); other texts are lowercased whole into it.
struct Needle {
    lower: String,
    ascii: bool,
    folded: String,
}

/// The characters other than ASCII letters whose lowercase holds an ASCII letter: the Kelvin
/// sign (`k`) and the capital I with a dot above (`i` and a combining dot).
const FOLD_TO_ASCII: [&str; 2] = ["\u{212A}", "\u{130}"];

impl Needle {
    fn new(query: &str) -> Needle {
        let mut lower = String::new();
        lowercase_into(&mut lower, query);
        Needle {
            lower,
            ascii: query.is_ascii(),
            folded: String::new(),
        }
    }

    fn found_in(&mut self, text: &str) -> bool {
        if self.lower.is_empty() {
            return true;
        }
        let bytes = text.as_bytes();
        let plain = self.ascii
            && (bytes.is_ascii()
                || !FOLD_TO_ASCII
                    .iter()
                    .any(|c| memchr::memmem::find(bytes, c.as_bytes()).is_some()));
        if plain {
            self.folded.clear();
            self.folded.push_str(text);
            self.folded.make_ascii_lowercase();
        } else {
            lowercase_into(&mut self.folded, text);
        }
        self.folded.contains(self.lower.as_str())
    }
}

/// `text` with every character lowercased on its own, in `out`.
fn lowercase_into(out: &mut String, text: &str) {
    out.clear();
    out.extend(text.chars().flat_map(char::to_lowercase));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{ids, post};
    use crate::store::Limits;

    #[test]
    fn a_search_finds_every_text_holding_the_query_as_typed_or_in_another_case() {
        let store = Store::in_memory(&[], Limits::default());
        let texts = [
            "ΟΔΟΣ",
            "ΟΔΟΣΑ test",
            "KELVIN \u{212A}",
            "\u{130}stanbul",
            "plain kelvin k",
            "straße",
        ];
        let posted: Vec<u64> = texts.iter().map(|t| post(&store, "s", t)).collect();
        let found = |query: &str| {
            let mut hits = ids(&store.search(query, None, None, 50).expect("a search"));
            hits.sort_unstable();
            hits
        };
        // Each text holds itself, and each of its words, as typed.
        for (text, id) in texts.iter().zip(&posted) {
            for query in std::iter::once(*text).chain(text.split(' ')) {
                assert!(found(query).contains(id), "{query:?} in {text:?}");
            }
        }
        assert_eq!(found("Σ"), posted[0..2]);
        assert_eq!(found("σ"), posted[0..2]);
        assert_eq!(found("ΟΔΟΣ"), posted[0..2]);
        assert_eq!(found("kelvin k"), [posted[2], posted[4]]);
        assert_eq!(found("\u{212A}"), [posted[2], posted[4]]);
        assert_eq!(found("İSTANBUL"), [posted[3]]);
        assert_eq!(found("i\u{307}stanbul"), [posted[3]]);
        assert!(
            found("i").contains(&posted[3]),
            "İ lowercases to i and a dot"
        );
        assert_eq!(found("STRASSE"), Vec::<u64>::new());
        assert_eq!(found("STRAßE"), [posted[5]]);
    }

    #[test]
    fn a_search_of_every_channel_finds_every_hit_newest_first_across_chunks() {
        let store = Store::in_memory(&[], Limits::default());
        let mut hits = Vec::new();
        for i in 0..1500usize {
            let target = format!("c{}", (i * 7) % 37);
            let text = if i % 3 == 0 { "a HIT here" } else { "nothing" };
            let id = post(&store, &target, text);
            if i % 3 == 0 {
                hits.push(id);
            }
        }
        hits.reverse();
        let found = |limit| -> Vec<u64> {
            let found = store.search("hit", None, None, limit).unwrap();
            found.iter().map(|m| m.id).collect()
        };
        assert_eq!(found(10_000), hits);
        assert_eq!(found(3), hits[..3]);
    }

    /// A search of many channels takes as many entries at a time as there are channels (its
    /// setup is a step per channel), unless their texts grow too large.
    #[test]
    fn a_search_chunk_of_every_channel_holds_as_many_entries_as_there_are_channels() {
        let store = Store::in_memory(&[], Limits::default());
        let mut posted = Vec::new();
        for i in 0..3 * SEARCH_CHUNK {
            posted.push(post(&store, &format!("c{i}"), "text"));
        }
        let state = lock(&store.state);
        let chunk = state.newest_below(None, u64::MAX, SEARCH_CHUNK, SEARCH_CHUNK_BYTES);
        let ids: Vec<u64> = chunk.iter().map(|(_, e)| e.id).collect();
        posted.reverse();
        assert_eq!(
            ids, posted,
            "every channel's entry, newest first, in one chunk"
        );
        let small = state.newest_below(None, u64::MAX, SEARCH_CHUNK, 100);
        assert_eq!(
            small.len(),
            SEARCH_CHUNK,
            "texts past the bytes stop it at the minimum"
        );
        let one = state.newest_below(Some("c7"), u64::MAX, SEARCH_CHUNK, SEARCH_CHUNK_BYTES);
        assert_eq!(one.len(), 1, "one channel");
    }
}
