//! The page cache: recent answers to "this page of this channel" (a REST page's body, an MCP
//! fetch's result), kept whole so a channel polled again and again is answered without reading
//! its index, its texts or making its JSON. Each answer is stamped with the channel's version
//! when its page was taken from the store (`UnreadPage::version`); it is given again only while
//! `Store::version` still says the same, so any post, deletion or retention drop on the channel
//! makes its pages miss (a compaction moves texts but changes no page, and versions never
//! repeat, not even for a channel emptied and posted to again). Pages that move a reader's
//! position, or that waited, are not cached. It is bounded in bytes and in pages per channel:
//! past either, whole channels are forgotten until it fits.

use crate::store::Fetch;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Most bytes of answers held.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Largest answer held; a bigger page is made afresh each time.
pub(crate) const MAX_PAGE_BYTES: usize = 256 * 1024;
/// Most pages (different `since_id`, `limit` or `newest`) held per channel; the oldest goes.
const PAGES_PER_CHANNEL: usize = 8;
/// What a held page is counted as besides its answer and its channel's name: its place in the
/// map and the list.
const OVERHEAD: usize = 128;

/// What an answer of `bytes` to a page of `target` counts as against `MAX_BYTES`.
fn cost(target: &str, bytes: usize) -> usize {
    bytes + target.len() + OVERHEAD
}

/// What a page asks of its channel besides the channel's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asked {
    pub since_id: u64,
    pub before_id: Option<u64>,
    pub limit: usize,
    pub newest: bool,
}

impl Asked {
    /// What `query` asks, when its page may be cached: when it neither waits nor moves a
    /// reader, it is the same for everyone while its channel is unchanged.
    pub(crate) fn of(query: &Fetch, waits: bool) -> Option<Asked> {
        (query.reader.is_none() && !waits).then_some(Asked {
            since_id: query.since_id,
            before_id: query.before_id,
            limit: query.limit,
            newest: query.newest,
        })
    }
}

/// One held answer.
struct Held<V> {
    asked: Asked,
    version: u64,
    value: V,
    bytes: usize,
}

#[derive(Default)]
struct Pages<V> {
    /// Channel → its held pages, oldest first, all of one version.
    channels: HashMap<String, Vec<Held<V>>>,
    bytes: usize,
}

/// Answers of kind `V` (cheap to clone: shared), by channel and what was asked.
pub(crate) struct PageCache<V> {
    pages: Mutex<Pages<V>>,
}

impl<V: Clone> Default for PageCache<V> {
    fn default() -> Self {
        PageCache {
            pages: Mutex::new(Pages {
                channels: HashMap::new(),
                bytes: 0,
            }),
        }
    }
}

impl<V: Clone> PageCache<V> {
    /// The pages, whatever a thread that panicked holding them left (every change is whole).
    fn lock(&self) -> MutexGuard<'_, Pages<V>> {
        self.pages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer held for `asked` of `target` at `version`, if any.
    pub(crate) fn get(&self, target: &str, asked: Asked, version: u64) -> Option<V> {
        let pages = self.lock();
        pages
            .channels
            .get(target)?
            .iter()
            .find(|h| h.asked == asked && h.version == version)
            .map(|h| h.value.clone())
    }

    /// Holds `value` (`bytes` long) as the answer to `asked` of `target` at `version`. Pages
    /// of an older version of the channel are dropped; an answer older than those held, or
    /// larger than `MAX_PAGE_BYTES`, is not kept.
    pub(crate) fn put(&self, target: &str, asked: Asked, version: u64, value: V, bytes: usize) {
        if bytes > MAX_PAGE_BYTES {
            return;
        }
        let bytes = cost(target, bytes);
        let mut guard = self.lock();
        let pages = &mut *guard;
        let held = pages.channels.entry(target.to_string()).or_default();
        match held.first().map(|h| h.version) {
            Some(v) if v > version => return,
            Some(v) if v < version => {
                pages.bytes -= held.iter().map(|h| h.bytes).sum::<usize>();
                held.clear();
            }
            _ => {}
        }
        if let Some(at) = held.iter().position(|h| h.asked == asked) {
            pages.bytes -= held.remove(at).bytes;
        } else if held.len() == PAGES_PER_CHANNEL {
            pages.bytes -= held.remove(0).bytes;
        }
        held.push(Held {
            asked,
            version,
            value,
            bytes,
        });
        pages.bytes += bytes;
        while pages.bytes > MAX_BYTES {
            let Some(other) = pages.channels.keys().find(|k| *k != target).cloned() else {
                break;
            };
            let dropped = pages.channels.remove(&other).unwrap_or_default();
            pages.bytes -= dropped.iter().map(|h| h.bytes).sum::<usize>();
        }
    }

    /// Bytes of answers held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(since_id: u64) -> Asked {
        Asked {
            since_id,
            before_id: None,
            limit: 10,
            newest: false,
        }
    }

    #[test]
    fn an_answer_is_given_only_for_the_same_question_at_the_same_version() {
        let cache = PageCache::<String>::default();
        cache.put("c", asked(0), 5, "page".into(), 4);
        assert_eq!(cache.get("c", asked(0), 5).as_deref(), Some("page"));
        assert_eq!(cache.get("c", asked(0), 6), None);
        assert_eq!(cache.get("c", asked(1), 5), None);
        assert_eq!(cache.get("d", asked(0), 5), None);
        let newest = Asked {
            newest: true,
            ..asked(0)
        };
        assert_eq!(cache.get("c", newest, 5), None);
        let older = Asked {
            before_id: Some(9),
            ..asked(0)
        };
        assert_eq!(cache.get("c", older, 5), None);
    }

    #[test]
    fn a_newer_version_replaces_the_channels_pages_and_an_older_one_is_refused() {
        let cache = PageCache::<String>::default();
        cache.put("c", asked(0), 5, "old".into(), 3);
        cache.put("c", asked(1), 5, "old too".into(), 7);
        cache.put("c", asked(0), 6, "new".into(), 3);
        assert_eq!(cache.get("c", asked(1), 5), None);
        assert_eq!(cache.bytes(), cost("c", 3));
        cache.put("c", asked(1), 5, "late".into(), 4);
        assert_eq!(cache.get("c", asked(1), 5), None);
        assert_eq!(cache.get("c", asked(0), 6).as_deref(), Some("new"));
        assert_eq!(cache.bytes(), cost("c", 3));
    }

    #[test]
    fn its_memory_is_bounded_in_bytes_and_in_pages_per_channel() {
        let cache = PageCache::<String>::default();
        cache.put("c", asked(0), 1, "huge".into(), MAX_PAGE_BYTES + 1);
        assert_eq!(cache.get("c", asked(0), 1), None);
        for since in 0..PAGES_PER_CHANNEL as u64 + 3 {
            cache.put("c", asked(since), 1, since.to_string(), 10);
        }
        assert_eq!(cache.bytes(), cost("c", 10) * PAGES_PER_CHANNEL);
        assert_eq!(cache.get("c", asked(0), 1), None, "the oldest went");
        let last = PAGES_PER_CHANNEL as u64 + 2;
        assert_eq!(cache.get("c", asked(last), 1), Some(last.to_string()));
        let channels = 2 * MAX_BYTES / MAX_PAGE_BYTES;
        for n in 0..channels {
            cache.put(
                &format!("ch{n}"),
                asked(0),
                1,
                n.to_string(),
                MAX_PAGE_BYTES,
            );
            assert!(cache.bytes() <= MAX_BYTES, "{} held", cache.bytes());
        }
        let newest = format!("ch{}", channels - 1);
        assert!(
            cache.get(&newest, asked(0), 1).is_some(),
            "the page just put stays"
        );
    }
}
