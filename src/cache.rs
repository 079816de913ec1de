//! The text cache: messages recently read from (or written to) the journal, by id, so hot pages
//! are served without reading the file. It is bounded in bytes and forgets the least recently
//! used message first; a store without a journal makes it unbounded, and then it is where the
//! messages live. Ids are never reused, so an entry never goes stale: a deleted message is
//! removed only so its text leaves memory.

use crate::message::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a cached message is counted as besides its strings: the `Message`, its `Arc` and the
/// two map entries that find it.
const OVERHEAD: usize = 160;

pub struct Cache {
    /// Most bytes held; `usize::MAX` holds everything and keeps no order.
    limit: usize,
    used: usize,
    /// id → (message, its last use).
    held: HashMap<u64, (Arc<Message>, u64)>,
    /// last use → id, oldest first.
    order: BTreeMap<u64, u64>,
    clock: u64,
}

impl Cache {
    /// A cache holding at most `limit` bytes of messages.
    pub fn new(limit: usize) -> Cache {
        Cache {
            limit,
            used: 0,
            held: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
        }
    }

    /// A cache that never forgets.
    pub fn unbounded() -> Cache {
        Cache::new(usize::MAX)
    }

    fn bounded(&self) -> bool {
        self.limit != usize::MAX
    }

    /// What `m` counts as against the limit.
    pub fn cost(m: &Message) -> usize {
        m.text.len() + m.target.len() + m.sender.len() + OVERHEAD
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Messages held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Message `id`, if held; it becomes the most recently used.
    pub fn get(&mut self, id: u64) -> Option<Arc<Message>> {
        let bounded = self.bounded();
        let (m, used) = self.held.get_mut(&id)?;
        if bounded {
            self.clock += 1;
            self.order.remove(used);
            *used = self.clock;
            self.order.insert(self.clock, id);
        }
        Some(Arc::clone(m))
    }

    /// Holds `m`, forgetting the least recently used messages to stay within the limit. A
    /// message larger than the whole limit is not held.
    pub fn put(&mut self, m: Arc<Message>) {
        let cost = Cache::cost(&m);
        if cost > self.limit {
            return;
        }
        self.remove(m.id);
        while self.used + cost > self.limit {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.held.remove(&oldest) {
                self.used -= Cache::cost(&gone);
            }
        }
        self.clock += 1;
        if self.bounded() {
            self.order.insert(self.clock, m.id);
        }
        self.used += cost;
        self.held.insert(m.id, (m, self.clock));
    }

    /// Forgets message `id`.
    pub fn remove(&mut self, id: u64) {
        if let Some((m, used)) = self.held.remove(&id) {
            self.used -= Cache::cost(&m);
            self.order.remove(&used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, text_bytes: usize) -> Arc<Message> {
        Arc::new(Message {
            id,
            ts: 1.5,
            target: "proj-x".into(),
            sender: "codex".into(),
            reply_to: None,
            text: "t".repeat(text_bytes),
        })
    }

    #[test]
    fn the_cache_never_holds_more_than_its_limit_and_forgets_the_least_recently_used() {
        let one = Cache::cost(&message(0, 1000));
        let mut cache = Cache::new(one * 3 + one / 2);
        for id in 1..=3 {
            cache.put(message(id, 1000));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.used(), one * 3);
        // 1 is used again, so 2 is now the least recently used and goes first.
        assert!(cache.get(1).is_some());
        cache.put(message(4, 1000));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(2).is_none());
        assert!(cache.get(1).is_some() && cache.get(3).is_some() && cache.get(4).is_some());
        // A bigger message pushes out as many as it needs.
        cache.put(message(5, 2500));
        assert!(cache.used() <= one * 3 + one / 2, "{}", cache.used());
        assert_eq!(cache.used(), Cache::cost(&message(5, 2500)) + one);
        assert!(cache.get(1).is_none() && cache.get(3).is_none());
        assert!(cache.get(4).is_some() && cache.get(5).is_some());
        for id in 6..200 {
            cache.put(message(id, id as usize * 7));
            assert!(cache.used() <= one * 3 + one / 2, "{}", cache.used());
            let counted: usize = cache.held.values().map(|(m, _)| Cache::cost(m)).sum();
            assert_eq!(cache.used(), counted, "the accounting matches what is held");
            assert_eq!(cache.order.len(), cache.held.len());
        }
    }

    #[test]
    fn a_message_larger_than_the_limit_is_not_held_and_removal_gives_its_bytes_back() {
        let mut cache = Cache::new(10_000);
        cache.put(message(1, 20_000));
        assert!(cache.is_empty());
        assert_eq!(cache.used(), 0);
        cache.put(message(2, 100));
        cache.put(message(2, 100));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.used(), Cache::cost(&message(2, 100)));
        cache.remove(2);
        assert_eq!(cache.used(), 0);
        assert!(cache.order.is_empty());
    }

    #[test]
    fn an_unbounded_cache_keeps_everything() {
        let mut cache = Cache::unbounded();
        for id in 1..=1000 {
            cache.put(message(id, 10_000));
        }
        assert_eq!(cache.len(), 1000);
        assert!(
            cache.order.is_empty(),
            "no order is kept when nothing is forgotten"
        );
        assert_eq!(cache.get(1).unwrap().id, 1);
    }
}
