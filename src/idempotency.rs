//! Idempotency keys: the table that lets a client retry a post safely. A key is scoped to its
//! sender; the same key from the same sender within `WINDOW_SECS` names the message first
//! posted with it, and a digest of what was posted tells a true retry (same channel, reply and
//! text) from a reuse of the key for something else. The table is bounded twice, by age and by
//! `MAX_KEYS` (the oldest go first), and holds no texts, only a 64-bit digest per key. The keys
//! themselves are stored on the messages' journal lines, so the table is rebuilt at start.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::Error;

/// How long a key names its message: a retry later than this posts anew.
pub(crate) const WINDOW_SECS: f64 = 24.0 * 3600.0;
/// Most keys remembered; past this the oldest are forgotten before their window ends.
pub(crate) const MAX_KEYS: usize = 100_000;
/// Longest key, in characters.
pub(crate) const MAX_KEY_CHARS: usize = 128;

/// Checks an idempotency key given as the `idempotency_key` field (see `check_key_from`).
pub(crate) fn check_key(raw: &str) -> Result<String, Error> {
    check_key_from(raw, "idempotency_key")
}

/// Checks an idempotency key that `from` (the field or header, for the message) gave: trimmed,
/// 1 to `MAX_KEY_CHARS` characters, none of them control characters. Each refusal says which
/// rule the key broke.
pub(crate) fn check_key_from(raw: &str, from: &str) -> Result<String, Error> {
    let key = raw.trim();
    let chars = key.chars().count();
    let wrong = if key.is_empty() {
        format!("{from} is blank: give a key of 1 to {MAX_KEY_CHARS} characters, or none")
    } else if chars > MAX_KEY_CHARS {
        format!("{from} is {chars} characters long; the most is {MAX_KEY_CHARS}")
    } else if key.chars().any(char::is_control) {
        format!("{from} holds a control character; a key may not")
    } else {
        return Ok(key.to_string());
    };
    Err(Error::BadRequest(wrong))
}

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: u64,
    /// `digest` of what was posted with the key.
    pub digest: u64,
}

/// The remembered keys, oldest first.
#[derive(Default)]
pub(crate) struct Keys {
    by_key: HashMap<Arc<str>, Entry>,
    /// (time posted, message id, key) in the order they were remembered, which is id order.
    order: VecDeque<(f64, u64, Arc<str>)>,
}

impl Keys {
    /// What `key` from `sender` names, if it is remembered.
    pub(crate) fn get(&self, sender: &str, key: &str) -> Option<Entry> {
        self.by_key.get(scoped(sender, key).as_str()).copied()
    }

    /// Remembers that `key` from `sender` named `entry` at `ts`, then forgets keys older than
    /// `now - WINDOW_SECS` and the oldest past `MAX_KEYS`.
    pub(crate) fn remember(&mut self, sender: &str, key: &str, entry: Entry, ts: f64, now: f64) {
        let scoped: Arc<str> = scoped(sender, key).into();
        if ts >= now - WINDOW_SECS {
            self.by_key.insert(Arc::clone(&scoped), entry);
            self.order.push_back((ts, entry.id, scoped));
        }
        self.expire(now);
    }

    /// Forgets keys past their window or past the bound.
    pub(crate) fn expire(&mut self, now: f64) {
        while let Some((ts, id, key)) = self.order.front() {
            if *ts >= now - WINDOW_SECS && self.order.len() <= MAX_KEYS {
                break;
            }
            // A key used again after it expired names a newer message: that entry stays.
            if self.by_key.get(key).is_some_and(|e| e.id == *id) {
                self.by_key.remove(key);
            }
            self.order.pop_front();
        }
    }

    /// Forgets the keys that name the messages `ids` (no longer kept), so that a retry of
    /// their posts makes them anew, as it would after a restart.
    pub(crate) fn forget(&mut self, ids: &[u64]) {
        for id in ids {
            // `order` is in id order.
            let Ok(at) = self.order.binary_search_by_key(id, |(_, id, _)| *id) else {
                continue;
            };
            let key = &self.order[at].2;
            if self.by_key.get(key).is_some_and(|e| e.id == *id) {
                self.by_key.remove(key);
            }
        }
    }

    /// Number of keys remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is remembered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The table as (time, message id, sender and key, digest if the key still names that
    /// message), oldest first, for a checkpoint to carry; `restore` makes the same table.
    pub(crate) fn export(&self) -> Vec<(f64, u64, String, Option<u64>)> {
        self.order
            .iter()
            .map(|(ts, id, key)| {
                let live = self.by_key.get(key).filter(|e| e.id == *id);
                (*ts, *id, key.to_string(), live.map(|e| e.digest))
            })
            .collect()
    }

    /// The table `export` gave, then forgetting what `now` puts past the window.
    pub(crate) fn restore(exported: Vec<(f64, u64, String, Option<u64>)>, now: f64) -> Keys {
        let mut keys = Keys::default();
        for (ts, id, key, digest) in exported {
            let key: Arc<str> = key.into();
            if let Some(digest) = digest {
                keys.by_key.insert(Arc::clone(&key), Entry { id, digest });
            }
            keys.order.push_back((ts, id, key));
        }
        keys.expire(now);
        keys
    }

    /// Every remembered key as (message id, key), for writing them back to a compacted
    /// journal; `sender` is not part of it since it is on the message's line.
    pub(crate) fn by_id(&self) -> HashMap<u64, String> {
        self.by_key
            .iter()
            .map(|(scoped, e)| {
                let key = scoped.split_once('\n').map_or("", |(_, k)| k);
                (e.id, key.to_string())
            })
            .collect()
    }
}

/// The table's key: a sender cannot contain a line break, so the pair reads back unambiguously.
fn scoped(sender: &str, key: &str) -> String {
    format!("{sender}\n{key}")
}

/// A digest of what a post asked for: two posts with one key are the same post when it agrees.
pub(crate) fn digest(target: &str, reply_to: Option<u64>, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (target, reply_to, text).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> Entry {
        Entry { id, digest: id * 7 }
    }

    #[test]
    fn a_forgotten_messages_key_names_nothing_and_the_others_stay() {
        let mut keys = Keys::default();
        for id in 1..=5 {
            keys.remember("s", &format!("k{id}"), entry(id), 100.0, 100.0);
        }
        keys.forget(&[2, 4, 9]);
        let named: Vec<Option<u64>> = (1..=5)
            .map(|id| keys.get("s", &format!("k{id}")).map(|e| e.id))
            .collect();
        assert_eq!(named, [Some(1), None, Some(3), None, Some(5)]);
        let restored = Keys::restore(keys.export(), 100.0);
        assert_eq!(restored.len(), 3, "a checkpoint carries the forgetting");
    }

    #[test]
    fn a_key_is_scoped_to_its_sender_and_expires_after_the_window() {
        let mut keys = Keys::default();
        keys.remember("claude", "k1", entry(1), 1000.0, 1000.0);
        assert_eq!(keys.get("claude", "k1"), Some(entry(1)));
        assert_eq!(keys.get("codex", "k1"), None);
        keys.expire(1000.0 + WINDOW_SECS - 1.0);
        assert_eq!(keys.get("claude", "k1"), Some(entry(1)));
        keys.expire(1000.0 + WINDOW_SECS + 1.0);
        assert_eq!(keys.get("claude", "k1"), None);
        assert!(keys.is_empty());
        // A key already past its window (seen at replay) is not remembered at all.
        keys.remember("claude", "old", entry(2), 10.0, 10.0 + WINDOW_SECS + 1.0);
        assert!(keys.is_empty());
    }

    #[test]
    fn the_table_never_holds_more_than_max_keys_and_forgets_the_oldest() {
        let mut keys = Keys::default();
        for id in 1..=(MAX_KEYS as u64 + 10) {
            keys.remember("claude", &format!("k{id}"), entry(id), 5.0, 5.0);
        }
        assert_eq!(keys.len(), MAX_KEYS);
        assert_eq!(keys.get("claude", "k10"), None);
        assert_eq!(keys.get("claude", "k11"), Some(entry(11)));
        let last = MAX_KEYS as u64 + 10;
        assert_eq!(keys.get("claude", &format!("k{last}")), Some(entry(last)));
    }

    #[test]
    fn a_key_reused_after_expiry_keeps_its_newer_entry() {
        let mut keys = Keys::default();
        keys.remember("claude", "k", entry(1), 0.0, 0.0);
        let later = WINDOW_SECS + 5.0;
        keys.remember("claude", "k", entry(2), later, later);
        assert_eq!(keys.get("claude", "k"), Some(entry(2)));
        assert_eq!(keys.by_id(), HashMap::from([(2, "k".to_string())]));
    }
}
