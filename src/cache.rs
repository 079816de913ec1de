//! The text cache: messages recently read from (or written to) the journal, by id, so hot pages
//! are served without reading the file. A message is held as the `Message` (for whoever reads
//! its fields), as its wire JSON (for replies that send it as it is), or both, each form counted
//! when held. Apart from the texts, it remembers (a set of ids, bounded in number) which long
//! texts' journal lines may be sent as they lie in the file, so that those are sent from there
//! once their JSON is forgotten. It is bounded in bytes and forgets by the clock algorithm (a message used since
//! the hand last passed it gets another round), so a hit costs one hash lookup and no
//! reordering; a store without a journal makes it unbounded, and then it is where the messages
//! live. Ids are never reused, so an entry never goes stale: a deleted message is removed only
//! so its text leaves memory.

use crate::message::{Message, WireJson};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// What a cached message is counted as besides its strings: the `Message`, its `Arc`, its map
/// entry and its place in the ring.
const OVERHEAD: usize = 160;
/// Most messages remembered as sendable from the journal as they lie: about 0.5 MiB of ids,
/// and every long text of a journal of 1 GiB of them.
const MAX_LIES_READY: usize = 16 * 1024;

/// What the cache holds of one message: at least one of its forms.
#[derive(Clone, Default)]
pub(crate) struct Held {
    pub message: Option<Arc<Message>>,
    pub json: Option<WireJson>,
    /// The wire JSON escaped as the inside of a JSON string; held only beside `json`.
    pub escaped: Option<WireJson>,
    /// Whether its journal line's text may be sent as it lies in the file (a read of the whole
    /// line found it so: see `Reader::wire_json`); remembered apart from the forms above, and
    /// for longer.
    pub lies_ready: bool,
}

impl Held {
    /// What this counts as against the limit.
    fn cost(&self) -> usize {
        OVERHEAD
            + self.message.as_deref().map_or(0, strings)
            + self.json.as_ref().map_or(0, |j| j.len())
            + self.escaped.as_ref().map_or(0, |j| j.len())
    }
}

/// The bytes of a `Message`'s strings.
fn strings(m: &Message) -> usize {
    m.text.len() + m.target.len() + m.sender.len()
}

/// Hashes the cache's keys, message ids. The relay hands ids out one after another and no
/// client chooses them, so they need no defence against crafted collisions: a multiply by an
/// odd constant (Fibonacci hashing) spreads them over the table at a fraction of the default
/// hasher's cost, which a page of fifty messages pays fifty times under the store's lock.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) struct Cache {
    /// Most bytes held; `usize::MAX` holds everything and keeps no ring.
    limit: usize,
    used: usize,
    /// id → (what is held, used since the hand last passed it).
    held: HashMap<u64, (Held, bool), BuildHasherDefault<IdHasher>>,
    /// Ids in the order the hand visits them; ids removed since are skipped when met.
    ring: VecDeque<u64>,
    /// Messages whose journal lines may be sent as they lie, at most `MAX_LIES_READY`, and
    /// the order they came in, the oldest forgotten first (ids removed since are skipped).
    lies_ready: HashSet<u64, BuildHasherDefault<IdHasher>>,
    lies_ready_order: VecDeque<u64>,
}

impl Cache {
    /// A cache holding at most `limit` bytes of messages.
    pub(crate) fn new(limit: usize) -> Cache {
        Cache {
            limit,
            used: 0,
            held: HashMap::default(),
            ring: VecDeque::new(),
            lies_ready: HashSet::default(),
            lies_ready_order: VecDeque::new(),
        }
    }

    /// A cache that never forgets.
    pub(crate) fn unbounded() -> Cache {
        Cache::new(usize::MAX)
    }

    fn bounded(&self) -> bool {
        self.limit != usize::MAX
    }

    /// What `m` counts as against the limit, held as a `Message` alone.
    #[cfg(test)]
    pub(crate) fn cost(m: &Message) -> usize {
        OVERHEAD + strings(m)
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Messages held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Message `id`, if held as a `Message`; it is marked used, so the hand spares it once.
    #[cfg(test)]
    pub(crate) fn get(&mut self, id: u64) -> Option<Arc<Message>> {
        self.get_held(id).and_then(|h| h.message)
    }

    /// Whatever is held of message `id`, marked used like `get`.
    pub(crate) fn get_held(&mut self, id: u64) -> Option<Held> {
        let lies_ready = self.lies_ready.contains(&id);
        let Some((held, used)) = self.held.get_mut(&id) else {
            return lies_ready.then(|| Held {
                lies_ready,
                ..Held::default()
            });
        };
        *used = true;
        Some(Held {
            lies_ready,
            ..held.clone()
        })
    }

    /// What a reader of wire JSON needs of message `id`: its JSON (and escaped JSON) when
    /// held, else the `Message` to make it from; marked used like `get`.
    pub(crate) fn get_for_json(&mut self, id: u64) -> Option<Held> {
        let lies_ready = self.lies_ready.contains(&id);
        let Some((held, used)) = self.held.get_mut(&id) else {
            return lies_ready.then(|| Held {
                lies_ready,
                ..Held::default()
            });
        };
        *used = true;
        Some(match &held.json {
            Some(json) => Held {
                message: None,
                json: Some(Arc::clone(json)),
                escaped: held.escaped.clone(),
                lies_ready,
            },
            None => Held {
                lies_ready,
                ..held.clone()
            },
        })
    }

    /// Holds `m` as a `Message` (beside its JSON, if held), forgetting others to stay within
    /// the limit.
    pub(crate) fn put(&mut self, m: Arc<Message>) {
        let id = m.id;
        self.add(id, |h| h.message = Some(m));
    }

    /// Holds the wire JSON of message `id` (beside its `Message`, if held; and that JSON escaped,
    /// when given), like `put`, and whether its journal line may be sent as it lies.
    pub(crate) fn put_read(
        &mut self,
        id: u64,
        json: WireJson,
        escaped: Option<WireJson>,
        lies_ready: bool,
    ) {
        self.add(id, |h| {
            h.json = Some(json);
            h.escaped = escaped.or(h.escaped.take());
        });
        if lies_ready && self.lies_ready.insert(id) {
            self.lies_ready_order.push_back(id);
            while self.lies_ready.len() > MAX_LIES_READY {
                let Some(oldest) = self.lies_ready_order.pop_front() else {
                    break;
                };
                self.lies_ready.remove(&oldest);
            }
        }
    }

    /// Holds what `change` makes of what is held of `id`. A message whose forms together are
    /// larger than the whole limit is not held (what was held of it stays).
    fn add(&mut self, id: u64, change: impl FnOnce(&mut Held)) {
        let old = self.held.get(&id).map(|(h, _)| h.clone());
        let mut held = old.clone().unwrap_or_default();
        change(&mut held);
        let cost = held.cost();
        if cost > self.limit {
            return;
        }
        match &old {
            Some(old) => {
                self.used -= old.cost();
                self.held.remove(&id);
            }
            None if self.bounded() => self.ring.push_back(id),
            None => {}
        }
        while self.used + cost > self.limit {
            let Some(at) = self.ring.pop_front() else {
                break;
            };
            match self.held.get_mut(&at) {
                Some((_, used)) if *used => {
                    *used = false;
                    self.ring.push_back(at);
                }
                Some(_) => {
                    if let Some((gone, _)) = self.held.remove(&at) {
                        self.used -= gone.cost();
                    }
                }
                // The message being put: its place in the ring stays.
                None if at == id => self.ring.push_back(at),
                None => {}
            }
        }
        self.used += cost;
        self.held.insert(id, (held, false));
    }

    /// Forgets message `id`.
    pub(crate) fn remove(&mut self, id: u64) {
        if self.lies_ready.remove(&id)
            && self.lies_ready_order.len() > 2 * self.lies_ready.len() + 64
        {
            let lies_ready = &self.lies_ready;
            self.lies_ready_order.retain(|id| lies_ready.contains(id));
        }
        if let Some((held, _)) = self.held.remove(&id) {
            self.used -= held.cost();
            // The ring keeps the id until the hand meets it; it is swept when most of it is
            // such ids, so it stays within twice what is held.
            if self.ring.len() > 2 * self.held.len() + 64 {
                let held = &self.held;
                self.ring.retain(|id| held.contains_key(id));
            }
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

    /// What the cache holds, counted from scratch.
    fn counted(cache: &Cache) -> usize {
        cache.held.values().map(|(h, _)| h.cost()).sum()
    }

    #[test]
    fn a_json_reader_takes_the_json_alone_when_it_is_held() {
        let mut cache = Cache::new(1 << 20);
        let (a, b) = (message(1, 10), message(2, 10));
        cache.put(Arc::clone(&a));
        cache.put_read(1, crate::message::wire_json(&a), None, false);
        cache.put(Arc::clone(&b));
        let held = cache.get_for_json(1).unwrap();
        assert!(held.message.is_none());
        assert_eq!(held.json, Some(crate::message::wire_json(&a)));
        let held = cache.get_for_json(2).unwrap();
        assert_eq!(held.message.as_deref(), Some(&*b));
        assert!(held.json.is_none());
        assert!(cache.get_for_json(3).is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_limit_and_spares_what_was_used() {
        let one = Cache::cost(&message(0, 1000));
        let limit = one * 3 + one / 2;
        let mut cache = Cache::new(limit);
        for id in 1..=3 {
            cache.put(message(id, 1000));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.used(), one * 3);
        // 1 was used since it was put, so the hand passes it and takes 2.
        assert!(cache.get(1).is_some());
        cache.put(message(4, 1000));
        assert_eq!(cache.len(), 3);
        assert!(cache.held.contains_key(&1) && !cache.held.contains_key(&2));
        // A bigger message takes as many as it needs.
        cache.put(message(5, 2500));
        assert!(cache.used() <= limit, "{}", cache.used());
        assert!(cache.get(5).is_some());
        for id in 6..500 {
            cache.put(message(id, (id as usize * 37) % 3000));
            if id % 3 == 0 {
                cache.get(id - 1);
            }
            if id % 7 == 0 {
                cache.remove(id - 2);
            }
            assert!(cache.used() <= limit, "{}", cache.used());
            assert_eq!(cache.used(), counted(&cache), "the accounting matches");
            assert!(cache.ring.len() <= 2 * cache.held.len() + 65);
            assert!(cache.held.keys().all(|id| cache.ring.contains(id)));
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
        assert_eq!(cache.ring.len(), 1);
        assert_eq!(cache.used(), Cache::cost(&message(2, 100)));
        cache.remove(2);
        assert_eq!(cache.used(), 0);
        // Posting and dropping many messages that never fill the cache leaves no trail.
        for id in 3..10_000 {
            cache.put(message(id, 10));
            cache.remove(id);
        }
        assert!(cache.ring.len() <= 65, "{}", cache.ring.len());
    }

    #[test]
    fn which_lines_may_lie_is_remembered_apart_from_the_texts_and_bounded() {
        let json = |id: u64| Arc::new(format!("{{\"id\":{id},\"text\":\"{}\"}}", "x".repeat(1000)));
        let mut cache = Cache::new(3 * (OVERHEAD + 1020));
        cache.put_read(1, json(1), None, true);
        cache.put_read(2, json(2), None, false);
        cache.put_read(3, json(3), None, true);
        assert!(cache.lies_ready.contains(&1) && !cache.lies_ready.contains(&2));
        // Three more push the first three out: the two whose lines may lie are still known so.
        for id in 4..7 {
            cache.put_read(id, json(id), None, false);
        }
        let one = cache.get_held(1).expect("remembered as lying ready");
        assert!(one.lies_ready && one.json.is_none() && one.message.is_none());
        assert!(cache
            .get_for_json(3)
            .is_some_and(|h| h.lies_ready && h.json.is_none()));
        assert!(cache.get_held(2).is_none());
        assert!(cache.used() <= 3 * (OVERHEAD + 1020));
        // One larger than the limit is remembered as lying ready, its text not held.
        cache.put_read(7, Arc::new("y".repeat(10_000)), None, true);
        assert!(cache
            .get_held(7)
            .is_some_and(|h| h.lies_ready && h.json.is_none()));
        // Removed, a message is forgotten.
        cache.remove(1);
        assert!(cache.get_held(1).is_none());
        // At most `MAX_LIES_READY` are remembered, the oldest forgotten first.
        let first = 100;
        for id in first..first + MAX_LIES_READY as u64 + 1 {
            cache.put_read(id, Arc::new("z".repeat(10_000)), None, true);
        }
        assert!(cache.lies_ready.len() <= MAX_LIES_READY);
        assert!(cache.get_held(first).is_none());
        assert!(cache.get_held(first + 1).is_some_and(|h| h.lies_ready));
        assert!(cache.lies_ready_order.len() <= 2 * MAX_LIES_READY + 64);
    }

    #[test]
    fn an_unbounded_cache_keeps_everything() {
        let mut cache = Cache::unbounded();
        for id in 1..=1000 {
            cache.put(message(id, 10_000));
        }
        assert_eq!(cache.len(), 1000);
        assert!(
            cache.ring.is_empty(),
            "no ring is kept when nothing is forgotten"
        );
        assert_eq!(cache.get(1).unwrap().id, 1);
    }

    #[test]
    fn a_message_s_json_counts_against_the_limit_beside_its_message() {
        let m = message(1, 1000);
        let json = crate::message::wire_json(&m);
        let mut cache = Cache::new(Cache::cost(&m) + json.len() + 10);
        cache.put_read(1, Arc::clone(&json), None, false);
        assert_eq!(cache.used(), OVERHEAD + json.len());
        assert!(cache.get(1).is_none(), "only the JSON is held");
        cache.put(Arc::clone(&m));
        assert_eq!(cache.used(), Cache::cost(&m) + json.len());
        let held = cache.get_held(1).unwrap();
        assert_eq!(held.json.as_deref(), Some(&*json));
        assert_eq!(held.message.as_deref(), Some(&*m));
        // Another message's JSON pushes the first out whole: both of its forms go.
        let other = crate::message::wire_json(&message(2, 1000));
        cache.put_read(2, other, None, false);
        assert!(cache.get_held(1).is_none());
        assert_eq!(cache.used(), counted(&cache));
        // A JSON that would take a message past the limit is not held, and the message stays.
        let mut small = Cache::new(Cache::cost(&m) + 10);
        small.put(Arc::clone(&m));
        small.put_read(1, json, None, false);
        let held = small.get_held(1).unwrap();
        assert!(held.json.is_none() && held.message.is_some());
        assert_eq!(small.used(), Cache::cost(&m));
    }

    #[test]
    fn a_message_held_in_both_forms_is_counted_as_both() {
        let m = message(1, 1000);
        let json = crate::message::wire_json(&m);
        let mut cache = Cache::new(2 * (Cache::cost(&m) + json.len()));
        cache.put(Arc::clone(&m));
        cache.put_read(1, Arc::clone(&json), None, false);
        assert_eq!(cache.used(), Cache::cost(&m) + json.len());
        let held = cache.get_held(1).unwrap();
        assert_eq!(held.json.as_deref(), Some(&*json));
        assert_eq!(held.message.as_deref(), Some(&*m));
        // Two more push one out whole; what is held stays within the limit.
        for id in 2..=3 {
            let m = message(id, 1000);
            let json = crate::message::wire_json(&m);
            cache.put_read(id, json, None, false);
            cache.put(m);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.used(), counted(&cache));
        assert!(cache.used() <= 2 * (Cache::cost(&m) + json.len()));
    }
}
