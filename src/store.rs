//! The message store: one global id sequence, a per-channel index, and the waiters parked on each
//! channel. A post is made durable by the journal before anyone can see it, by group commit
//! (`commit`: concurrent posts share one journal write and one fsync, and their idempotency keys
//! are checked there); the recorder (the channel archive) hears of each batch once written, so
//! its lines follow id order. Retention and deletion drop messages from memory at once and from
//! the journal by a compaction written in the background (`compactor`; one that fails is tried
//! again after a back-off). Readers' positions (how far each named reader has read each channel)
//! live here and in the journal. With a journal, memory holds only an index of the kept messages
//! (id, time, where the line is) and texts are read back from the file on demand through a cache
//! bounded in bytes, so memory does not grow with history (a page sent as JSON takes each
//! message's wire JSON from there, made once; a new message's is made at commit, with the one
//! pass over its text that its journal line and the poster's reply copy from; a long text the
//! cache knows may be sent as it lies goes to a REST page from the file); the index and the
//! file handle its places point into are swapped together when a compaction replaces the file.
//! Without a journal the cache is unbounded and is where the messages live. `search` scans the
//! texts the same way. Knows nothing of HTTP or JSON-RPC.

use crate::cache::{Cache, Held};
use crate::error::Error;
use crate::idempotency;
use crate::index::{Place, Position};
use crate::journal::{
    Compaction, Deletion, Expected, Extras, Journal, Line, Reader, Relocation, Replay,
};
use crate::json_string;
use crate::message::{now, wire_json, Encoded, Message, WireJson};
use crate::sent_json::SentJson;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

mod commit;
mod compactor;
mod search;
use commit::{Committer, Queue, COMMIT_YIELDS};
use compactor::{tell_removed, Compactor};

/// Most reader positions (a reader on a channel) remembered: each costs memory and a journal
/// line, and any client can name new readers.
pub(crate) const MAX_POSITIONS: usize = 100_000;

/// A function told of every message once it is durable and visible, in id order.
pub(crate) type Hook = Box<dyn Fn(&Arc<Message>) + Send + Sync>;

/// A function told the name of a channel once a deletion or retention has removed messages
/// from it: once per deletion (of a message or a whole channel) or retention pass, not per
/// message.
pub(crate) type RemovalHook = Box<dyn Fn(&str) + Send + Sync>;

/// What a caller asks to post, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    pub target: String,
    pub sender: String,
    pub text: String,
    /// The id of an earlier message of the same channel this one answers.
    pub reply_to: Option<u64>,
    /// A retry with the same key (from the same sender, within a day) is the same post.
    pub idempotency_key: Option<String>,
    /// Where the post came from (`rest`, `mcp`, `web-ui`, `cli`, ...), for the recorder.
    pub source: String,
}

/// A new message as a batch made it, for the hooks and the recorder: with its JSON and where it
/// came from.
pub(crate) struct Recorded {
    pub message: Arc<Message>,
    pub encoded: Encoded,
    pub source: String,
}

/// The function told of each batch of new messages once it is written, by the poster that wrote
/// it, batch after batch: the channel archive, whose lines follow id order.
pub(crate) type Recorder = Box<dyn Fn(&[Recorded]) + Send + Sync>;

/// What a post made: the message, and whether an earlier post with the same idempotency key
/// had made it already.
#[derive(Debug, Clone)]
pub(crate) struct Posted {
    pub message: Arc<Message>,
    /// Its wire JSON, with the text's place in it.
    pub encoded: Encoded,
    pub repeated: bool,
}

/// What a fetch asks for. Every optional filter is a field with a default that changes nothing,
/// so a new one is one field here and one condition in `State::page`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fetch {
    pub target: String,
    /// Only messages with a larger id.
    pub since_id: u64,
    /// Only messages with a smaller id: a page of older history.
    pub before_id: Option<u64>,
    /// Most messages returned.
    pub limit: usize,
    /// The newest `limit` messages after `since_id` instead of the oldest.
    pub newest: bool,
    /// A reader whose position stands in for `since_id` (when that is 0) and is moved past
    /// what the page returns.
    pub reader: Option<String>,
    /// Most text the page may hold: it ends before the message that would pass this (the first
    /// message always comes), and says `more`. `None`: no bound but `limit`.
    pub max_text_bytes: Option<usize>,
}

/// One page of a channel, ascending, and where it stands against the channel's end.
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub messages: Vec<Arc<Message>>,
    /// The channel's newest id (0 when it holds nothing).
    pub head_id: u64,
    /// Whether messages after the last one returned exist: the page was cut by `limit`.
    pub more: bool,
}

/// A page as the index gives it, before its texts are read.
#[derive(Default)]
struct Slice {
    entries: Vec<Entry>,
    head_id: u64,
    more: bool,
}

impl Slice {
    /// Keeps the page's texts within `max_bytes`. A page of the newest messages keeps its
    /// newest that fit (the newest always), leaving out older ones as `limit` does; any other
    /// page ends before the message that would bring it past `max_bytes` (the first always
    /// stays) and says in `more` that it was cut.
    fn cap_text_bytes(&mut self, max_bytes: usize, newest: bool) {
        if newest {
            keep_newest_within(&mut self.entries, max_bytes);
            return;
        }
        let mut total = 0;
        let keep = self
            .entries
            .iter()
            .position(|e| {
                total += e.place.text_len as usize;
                total > max_bytes
            })
            .map_or(self.entries.len(), |i| i.max(1));
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.more = true;
        }
    }
}

/// Leaves out the oldest of `entries` (ascending by id) until their texts fit in `max_bytes`;
/// the newest always stays.
fn keep_newest_within(entries: &mut Vec<Entry>, max_bytes: usize) {
    let mut total = 0usize;
    let fit = entries
        .iter()
        .rev()
        .take_while(|e| {
            total += e.place.text_len as usize;
            total <= max_bytes
        })
        .count()
        .max(1);
    entries.drain(..entries.len().saturating_sub(fit));
}

/// A kept message as the index holds it: its text is at `place` in the journal (and perhaps
/// in the cache), or, without a journal, only in the cache.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    ts: f64,
    place: Place,
}

impl Entry {
    /// What a line read for this entry of channel `target` must hold.
    fn expected<'a>(&self, target: &'a str) -> Expected<'a> {
        Expected {
            id: self.id,
            ts: self.ts,
            target,
        }
    }
}

/// A page of channel `target` taken from the index whose texts are still to be read.
struct TextsToRead {
    taken: Taken,
    target: String,
    head_id: u64,
    more: bool,
    /// The channel's version when the page was taken (0 for a channel that does not exist).
    version: u64,
}

/// How a page moves its reader's position: from where it stood when the page was taken to the
/// page's last id.
#[derive(Clone, Copy)]
struct Step {
    from: u64,
    to: u64,
}

/// A page whose texts are read as it is written out (see `Store::fetch_unread`).
pub(crate) struct UnreadPage(TextsToRead);

/// Most text read at a time when an `UnreadPage` is written out.
const UNREAD_BATCH: u64 = 256 * 1024;

impl UnreadPage {
    /// The channel's newest id, as in `Page`.
    pub(crate) fn head_id(&self) -> u64 {
        self.0.head_id
    }

    /// Whether messages follow the page, as in `Page`.
    pub(crate) fn more(&self) -> bool {
        self.0.more
    }

    /// The channel's version as the page was taken: while `Store::version` says the same, the
    /// same question gets the same page.
    pub(crate) fn version(&self) -> u64 {
        self.0.version
    }

    /// The bytes of text the page holds, known without reading any.
    pub(crate) fn text_bytes(&self) -> u64 {
        self.0
            .taken
            .entries
            .iter()
            .map(|e| u64::from(e.place.text_len))
            .sum()
    }

    /// The messages' wire JSON in order, read a few at a time (at most `UNREAD_BATCH` of text,
    /// and at least one message) past the cache, each batch handed to `each`.
    pub(crate) fn for_each_batch<E>(
        &self,
        mut each: impl FnMut(&[WireJson]) -> Result<(), E>,
    ) -> Result<(), E> {
        let t = &self.0.taken;
        let mut start = 0;
        while start < t.entries.len() {
            let mut end = start + 1;
            let mut bytes = u64::from(t.entries[start].place.text_len);
            while end < t.entries.len()
                && bytes + u64::from(t.entries[end].place.text_len) <= UNREAD_BATCH
            {
                bytes += u64::from(t.entries[end].place.text_len);
                end += 1;
            }
            let (batch, _) = read_json(
                Taken {
                    entries: t.entries[start..end].to_vec(),
                    targets: t.targets[start..end].to_vec(),
                    cached: t.cached[start..end].to_vec(),
                    file: t.file.clone(),
                },
                false,
            );
            let batch: Vec<WireJson> = batch.into_iter().map(|w| w.json).collect();
            each(&batch)?;
            start = end;
        }
        Ok(())
    }
}

/// Entries taken from the index with their channels, what the cache had of them and the
/// journal file their places point into, to read the rest after the index is let go.
struct Taken {
    entries: Vec<Entry>,
    /// Each entry's channel, which a line read for it must name.
    targets: Vec<Arc<str>>,
    cached: Vec<Held>,
    file: Option<Arc<Reader>>,
}

/// How the store treats posts: the size limit and retention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest `text`, in bytes.
    pub max_message_bytes: usize,
    /// Messages kept per channel; 0 keeps all.
    pub retention_max_messages: usize,
    /// Age in seconds past which messages are dropped; 0 keeps all.
    pub retention_max_age_secs: f64,
    /// Most bytes of recently read messages kept in memory when texts live in the journal.
    pub cache_bytes: usize,
}

impl Limits {
    /// Messages older than this Unix time are past the age limit.
    fn age_cutoff(&self) -> f64 {
        if self.retention_max_age_secs > 0.0 {
            now() - self.retention_max_age_secs
        } else {
            f64::NEG_INFINITY
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            retention_max_messages: 0,
            retention_max_age_secs: 0.0,
            cache_bytes: 8 * 1024 * 1024,
        }
    }
}

pub(crate) struct Store {
    /// Shared with a compaction's thread, which installs what it wrote (`Compactor::compact`).
    state: Arc<Mutex<State>>,
    /// Held by the one poster that writes the queued batch; guards the journal and the sequence.
    /// Shared with a compaction's thread, like `state`.
    commit: Arc<Mutex<Committer>>,
    /// The posts waiting for a batch (`commit`).
    queue: Queue,
    /// The functions told of new messages. A committer takes this lock before it lets go of the
    /// commit lock and calls them after, so the next batch is written meanwhile and yet every
    /// hook hears of messages in id order.
    hooks: Mutex<Vec<Hook>>,
    /// The functions told of channels that lost messages to a deletion or retention. Shared
    /// with a compaction's thread, like `state`.
    removal_hooks: Arc<Mutex<Vec<RemovalHook>>>,
    /// Starts and installs compactions, here and on their threads.
    compactor: Compactor,
    /// Called with each batch written. Its lock is taken before the hooks' is let go, as the
    /// hooks' before the commit lock, so that the next batch is written meanwhile and yet the
    /// batches are recorded in id order.
    recorder: Mutex<Option<Recorder>>,
    /// The highest id published, readable without waiting for a batch being written.
    published_id: AtomicU64,
    /// How many times a post whose batch another thread is writing yields its processor before
    /// it sleeps (see `Store::wait_for_batch`): `COMMIT_YIELDS`, or none when every
    /// batch waits for the disk.
    commit_yields: u32,
    limits: Limits,
}

struct State {
    channels: BTreeMap<String, Channel>,
    /// Woken when a channel is created: waiters on a channel that does not exist yet park
    /// here, so a read never creates a channel.
    created: Arc<Condvar>,
    configured: BTreeSet<String>,
    closed: bool,
    count: usize,
    /// reader → channel → the id up to which the reader has been given messages.
    positions: BTreeMap<String, BTreeMap<String, u64>>,
    /// How many (reader, channel) positions `positions` holds.
    position_count: usize,
    /// The journal file the entries' places point into; replaced with them by a compaction.
    file: Option<Arc<Reader>>,
    /// Recently read messages; without a journal, every message. Under the index's lock, so
    /// a page served from it takes no other lock.
    texts: Cache,
    /// The last version given to a channel that changed.
    version: u64,
}

#[derive(Default)]
struct Channel {
    messages: VecDeque<Entry>,
    /// Woken when this channel gets a message, loses one (or the store closes).
    changed: Arc<Condvar>,
    /// Whether the channel is listed: something was posted here and neither a deletion of the
    /// channel nor retention has emptied it since.
    seen: bool,
    /// The latest deletions here, for open streams to pass on; `deletions` counts them all.
    deleted: VecDeque<Deletion>,
    deletions: usize,
    /// Changed whenever a page of this channel could read differently: a new value from the
    /// store's one sequence, so no two states of any channel share one.
    version: u64,
}

/// How long a read may wait for something to read, and for whom.
#[derive(Clone, Copy)]
pub(crate) struct Wait<'a> {
    pub until: Instant,
    /// Whether whoever waits has gone (its client closed the connection): asked at every
    /// wake-up and every `CLIENT_CHECK` while nothing comes; a wait for no one ends with
    /// nothing taken.
    pub gone: &'a dyn Fn() -> bool,
}

/// How often a wait (or a stream with nothing to send) looks whether its client is still there.
pub(crate) const CLIENT_CHECK: Duration = Duration::from_secs(1);

impl Channel {
    /// Drops the oldest `n` messages (texts from `texts` too), adding their ids to `dropped`.
    fn drop_oldest(&mut self, n: usize, texts: &mut Cache, dropped: &mut Vec<u64>) {
        for m in self.messages.drain(..n) {
            texts.remove(m.id);
            dropped.push(m.id);
        }
    }

    /// Gives back the index's room for messages that have left, once it holds less than a
    /// quarter of it: an emptied channel keeps no room for what it once held.
    fn give_back_room(&mut self) {
        if self.messages.capacity() > 16 && self.messages.len() < self.messages.capacity() / 4 {
            self.messages.shrink_to_fit();
        }
    }
}

/// Deletions remembered per channel for streams that are behind; one further behind reloads.
const DELETIONS_KEPT: usize = 1000;

/// What changed on a channel since a stream last looked.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The new messages' wire JSON, in id order.
    pub messages: Vec<WireJson>,
    pub deleted: Vec<Deletion>,
    /// The channel's deletion count, to pass back next time.
    pub deletions: usize,
}

/// One channel's unread count for a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unread {
    pub target: String,
    pub count: usize,
    /// The reader's position there.
    pub position: u64,
}

impl Drop for Store {
    /// Lets go of the journal, and with it the data directory's lock, as the store goes: a
    /// compaction's thread may still hold the committer for a moment (`Compactor::compact`).
    fn drop(&mut self) {
        lock(&self.commit).journal = None;
    }
}

impl Store {
    /// A store over `journal` (or memory only), holding what `replay` found and knowing
    /// `channels` from the start. Its `last_id` continues the sequence.
    pub(crate) fn new(
        journal: Option<Journal>,
        replay: Replay,
        channels: &[String],
        limits: Limits,
    ) -> Store {
        let mut state = State {
            channels: BTreeMap::new(),
            created: Arc::new(Condvar::new()),
            configured: channels.iter().cloned().collect(),
            closed: false,
            count: 0,
            positions: BTreeMap::new(),
            position_count: 0,
            file: journal.as_ref().map(Journal::reader),
            texts: if journal.is_some() {
                Cache::new(limits.cache_bytes)
            } else {
                Cache::unbounded()
            },
            version: 0,
        };
        let mut top = replay.last_id;
        for m in replay.messages {
            top = top.max(m.id);
            let entry = Entry {
                id: m.id,
                ts: m.ts,
                place: m.place,
            };
            // Not `State::insert`: nobody waits yet, and waking a channel's waiters is a
            // system call, which a million replayed messages would pay a million times.
            let channel = state.channel(&replay.channels[m.channel as usize]);
            channel.messages.push_back(entry);
            channel.seen = true;
            state.count += 1;
        }
        for c in state.channels.values_mut() {
            c.messages.shrink_to_fit();
        }
        for p in replay.positions {
            state.move_position(&p.reader, &p.target, p.id);
        }
        let dropped = state.retain(
            limits.retention_max_messages,
            limits.age_cutoff(),
            &mut Vec::new(),
        );
        let commit_yields = match &journal {
            Some(journal) if journal.syncs() => 0,
            _ => COMMIT_YIELDS,
        };
        let purge = replay.holds_deleted;
        let state = Arc::new(Mutex::new(state));
        let commit = Arc::new(Mutex::new(Committer {
            journal,
            last_id: top,
            since_compaction: 0,
            compacted_at: Instant::now(),
            retention_due: true,
            stale: purge,
            compaction: None,
            keys: replay.keys,
            purge,
            failures: 0,
            retry_at: None,
            retrying: false,
            checkpointing: None,
        }));
        let removal_hooks = Arc::new(Mutex::new(Vec::new()));
        let compactor = Compactor::new(&state, &commit, &removal_hooks, limits);
        let store = Store {
            state,
            commit,
            queue: Queue::default(),
            hooks: Mutex::new(Vec::new()),
            removal_hooks,
            compactor,
            recorder: Mutex::new(None),
            published_id: AtomicU64::new(top),
            commit_yields,
            limits,
        };
        {
            let mut committer = lock(&store.commit);
            committer.dropped(&dropped);
            // Deleted texts a crash left in the journal leave it now, not with some later post.
            store.purge(&mut committer);
        }
        store
    }

    /// A memory-only store, as the original relay had.
    pub(crate) fn in_memory(channels: &[String], limits: Limits) -> Store {
        Store::new(None, Replay::default(), channels, limits)
    }

    /// Registers a function told of every new message, after it is durable and visible.
    pub(crate) fn on_publish(&self, hook: Hook) {
        lock(&self.hooks).push(hook);
    }

    /// Registers a function told of every channel that loses messages to a deletion or
    /// retention, once the change is visible. It is called with the commit lock held, so it
    /// must not post or delete.
    pub(crate) fn on_removal(&self, hook: RemovalHook) {
        lock(&self.removal_hooks).push(hook);
    }

    /// Tells the removal hooks that `channels` lost messages.
    fn removed_from(&self, channels: &[String]) {
        tell_removed(&self.removal_hooks, channels);
    }

    /// Sets the function told of every batch of new messages once it is written, in id order.
    pub(crate) fn on_record(&self, recorder: Recorder) {
        *lock(&self.recorder) = Some(recorder);
    }

    /// Applies retention at most once per `retention_max_messages` (or 1,000) posts, so the
    /// cost is spread thin; the journal is rewritten in the background (see `compact`).
    fn apply_retention(&self, committer: &mut Committer) {
        let Limits {
            retention_max_messages: per_channel,
            retention_max_age_secs: max_age,
            ..
        } = self.limits;
        if per_channel == 0 && max_age <= 0.0 {
            return;
        }
        let every = if per_channel > 0 {
            per_channel.clamp(1, 1000)
        } else {
            1000
        };
        if committer.since_compaction < every && !committer.retention_due {
            return;
        }
        committer.since_compaction = 0;
        committer.retention_due = false;
        self.compact(committer, false);
    }

    /// With an age limit, starts a thread that drops messages from memory as they pass it even
    /// while nothing is posted (posts apply retention too): it looks every hundredth of the age
    /// limit, at least every second and at most every minute, and ends with the store. What it
    /// drops leaves the journal with the next rewrite, which it starts itself when none came for
    /// the age limit or ten minutes, whichever is shorter, so expiring messages do not have the
    /// whole journal rewritten every minute.
    pub(crate) fn expire_by_age(store: &Arc<Store>) {
        let max_age = store.limits.retention_max_age_secs;
        if max_age <= 0.0 {
            return;
        }
        let every = Duration::from_secs_f64((max_age / 100.0).clamp(1.0, 60.0));
        let rewrite_every = Duration::from_secs_f64(max_age.min(600.0));
        let store = Arc::downgrade(store);
        let spawned = thread::Builder::new()
            .name("relay-retention".into())
            .spawn(move || loop {
                thread::sleep(every);
                let Some(store) = store.upgrade().filter(|s| !s.is_closed()) else {
                    return;
                };
                let mut committer = lock(&store.commit);
                store.finish_compaction(&mut committer, false);
                let mut thinned = Vec::new();
                let dropped = {
                    let mut state = lock(&store.state);
                    let cutoff = store.limits.age_cutoff();
                    match state.oldest_ts() {
                        Some(ts) if ts < cutoff => state.retain(0, cutoff, &mut thinned),
                        _ => Vec::new(),
                    }
                };
                committer.dropped(&dropped);
                store.removed_from(&thinned);
                if committer.stale && committer.compacted_at.elapsed() >= rewrite_every {
                    store.compact(&mut committer, false);
                }
            });
        if let Err(e) = spawned {
            log::error!(
                "cannot start the retention thread; messages leave by age only as posts come: {e}"
            );
        }
    }

    /// Applies retention now and rewrites the journal to hold exactly what is kept, waiting
    /// for the rewrite. Returns how many messages were dropped.
    #[cfg(test)]
    pub(crate) fn compact_now(&self) -> Result<usize, Error> {
        let mut committer = lock(&self.commit);
        self.settle(&mut committer);
        Ok(self.compact(&mut committer, true))
    }

    /// Drops what retention says from memory, then has the journal rewritten to match (see
    /// `Compactor::compact`).
    fn compact(&self, committer: &mut Committer, wait: bool) -> usize {
        self.compactor.compact(&self.state, committer, wait)
    }

    /// Installs the compaction being written once it is (with `wait`, waiting for it), and
    /// starts the one a deletion made meanwhile is waiting for.
    fn finish_compaction(&self, committer: &mut Committer, wait: bool) {
        self.compactor.finish(&self.state, committer, wait);
    }

    /// Waits until no compaction is being written, installing each (and any a deletion made
    /// meanwhile started) as it is written.
    fn settle(&self, committer: &mut Committer) {
        while committer.compaction.is_some() {
            self.finish_compaction(committer, true);
        }
    }
    /// The messages `taken` names, from the cache or else read from its file; read ones are
    /// cached when `remember` says so. A message that cannot be read is logged and left out.
    fn resolve(&self, taken: Taken, remember: bool) -> Vec<Arc<Message>> {
        let (found, read) = read_texts(taken);
        if remember && !read.is_empty() {
            let mut state = lock(&self.state);
            for m in read {
                // Not if it was dropped meanwhile: its text would linger in memory.
                if state.find(&m.target, m.id).is_some() {
                    state.texts.put(m);
                }
            }
        }
        found
    }

    /// The wire JSON of every message of `page` as a reply sends it: from the cache, or else
    /// made once (from the `Message` held, or from its journal line) and cached; a long text
    /// whose journal line the cache knows may be sent as it lies, and whose JSON it no longer
    /// holds, is sent from the file (`SentJson::Lying`). A message that cannot be read is
    /// logged and left out.
    pub(crate) fn page_json(&self, page: UnreadPage) -> Vec<SentJson> {
        let TextsToRead { taken, target, .. } = page.0;
        let (found, made) = read_sent(taken);
        self.cache_made(&target, made);
        found
    }

    /// Like `page_json`, each message's wire JSON in memory and also escaped as the inside of a
    /// JSON string (what an MCP tool result's text block holds), that too made once and cached
    /// beside the JSON when the cache is bounded. An unbounded cache is where a store without
    /// a journal keeps every message, and a second copy of each would double its memory, so
    /// there the escaped form is made for each read.
    pub(crate) fn page_json_escaped(&self, page: UnreadPage) -> Vec<(WireJson, WireJson)> {
        let TextsToRead { taken, target, .. } = page.0;
        let escape = taken.file.is_some();
        let (found, made) = read_json(taken, escape);
        self.cache_made(&target, made);
        found
            .into_iter()
            .map(|w| {
                let escaped = w
                    .escaped
                    .unwrap_or_else(|| Arc::new(json_string::escaped(&w.json)));
                (w.json, escaped)
            })
            .collect()
    }

    /// Caches what a read of channel `target` made.
    fn cache_made(&self, target: &str, made: Vec<(u64, ToCache)>) {
        if made.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        for (id, to_cache) in made {
            // Not if it was dropped meanwhile: its text would linger in memory.
            if state.find(target, id).is_none() {
                continue;
            }
            let ToCache {
                json,
                escaped,
                lies_ready,
            } = to_cache;
            state.texts.put_read(id, json, escaped, lies_ready);
        }
    }

    /// Message `id` of channel `target`, if it is kept.
    fn find(&self, target: &str, id: u64) -> Option<Arc<Message>> {
        let taken = {
            let mut state = lock(&self.state);
            let found = state.find(target, id).into_iter().collect();
            state.take(target, found)
        };
        self.resolve(taken, true).pop()
    }

    fn validate(&self, draft: Draft) -> Result<Draft, Error> {
        let target = crate::names::check_owned("target", draft.target)?;
        let sender = crate::names::check_owned("sender", draft.sender)?;
        if draft.text.trim().is_empty() {
            return Err(Error::BadRequest("text must not be blank".into()));
        }
        if draft.text.len() > self.limits.max_message_bytes {
            return Err(Error::TooLarge(format!(
                "text is {} bytes; the limit is {} bytes",
                draft.text.len(),
                self.limits.max_message_bytes
            )));
        }
        let idempotency_key = match draft.idempotency_key {
            Some(key) => Some(idempotency::check_key(&key)?),
            None => None,
        };
        if let Some(id) = draft.reply_to {
            // A retry of a post still kept is answered with it (or refused for another text,
            // 409) even when the message it answered has gone since.
            let retry_of_kept = || {
                idempotency_key
                    .as_deref()
                    .is_some_and(|key| lock(&self.commit).keys.get(&sender, key).is_some())
            };
            if lock(&self.state).find(&target, id).is_none() && !retry_of_kept() {
                return Err(Error::BadRequest(format!(
                    "reply_to: no message {id} in channel {target:?} to reply to"
                )));
            }
        }
        Ok(Draft {
            target,
            sender,
            text: draft.text,
            reply_to: draft.reply_to,
            idempotency_key,
            source: draft.source,
        })
    }

    /// Message `id` of `target`, while the store holds it.
    pub(crate) fn message(&self, target: &str, id: u64) -> Option<Arc<Message>> {
        self.after(target, id.saturating_sub(1), 1)
            .into_iter()
            .find(|m| m.id == id)
    }

    /// The oldest `limit` messages of `target` with an id above `since_id`, ascending.
    pub(crate) fn after(&self, target: &str, since_id: u64, limit: usize) -> Vec<Arc<Message>> {
        let taken = {
            let mut state = lock(&self.state);
            let found = state.after(target, since_id, limit);
            state.take(target, found)
        };
        self.resolve(taken, true)
    }

    /// The page `query` asks for. With a `deadline`, when nothing is there yet, waits until a
    /// post to the channel brings something or the deadline passes. With a `reader`, the
    /// reader's position stands in for a `since_id` of 0, and moves past the page returned.
    #[cfg(test)]
    pub(crate) fn fetch(&self, query: &Fetch, deadline: Option<Instant>) -> Page {
        let wait = deadline.map(|until| Wait {
            until,
            gone: &|| false,
        });
        let page = self
            .take_page(query, wait)
            .expect("a test fetch's journal takes its reader's position");
        Page {
            messages: self.resolve(page.taken, true),
            head_id: page.head_id,
            more: page.more,
        }
    }

    /// Like `fetch`, but the texts are read only when the page is written out, a few at a time
    /// and past the cache, so that holding a large page for a slow reader costs its index
    /// entries, not its texts. A page that would move its reader's position is given only once
    /// the journal holds the new position: when the journal cannot take it, the error (507)
    /// comes back instead, and the position stays where the journal has it.
    pub(crate) fn fetch_unread(
        &self,
        query: &Fetch,
        wait: Option<Wait>,
    ) -> Result<UnreadPage, Error> {
        self.take_page(query, wait).map(UnreadPage)
    }

    /// Channel `target`'s version (0 for a channel that does not exist): it changes whenever
    /// a page of it could read differently, and never comes back to an earlier value.
    pub(crate) fn version(&self, target: &str) -> u64 {
        lock(&self.state).version_of(target)
    }

    /// Refuses a read by `reader` of `target` that would make the store remember a new
    /// position past [`MAX_POSITIONS`]; a reader that has one there already, or no reader, is
    /// always let through.
    pub(crate) fn admit_reader(&self, reader: Option<&str>, target: &str) -> Result<(), Error> {
        let Some(reader) = reader else {
            return Ok(());
        };
        let state = lock(&self.state);
        let known = state
            .positions
            .get(reader)
            .is_some_and(|of| of.contains_key(target));
        if known || state.position_count < MAX_POSITIONS {
            return Ok(());
        }
        Err(Error::BadRequest(format!(
            "the relay remembers at most {MAX_POSITIONS} reader positions (a reader on a \
             channel), and holds that many: read as a reader already known here, or with since_id"
        )))
    }

    /// Where `reader` stands on `target`: the last id it was given (0 if none).
    pub(crate) fn position(&self, reader: &str, target: &str) -> u64 {
        lock(&self.state).position(reader, target)
    }

    /// Moves `reader`'s position on `target` forward to `id` (never back) once the journal
    /// holds it; nothing is written when it stood there already. When the journal cannot take
    /// the line, the position stays where the journal has it and the error comes back.
    pub(crate) fn mark_read(&self, reader: &str, target: &str, id: u64) -> Result<(), Error> {
        let mut committer = lock(&self.commit);
        if lock(&self.state).position(reader, target) >= id {
            return Ok(());
        }
        self.journal_position(&mut committer, reader, target, id)
    }

    /// Writes `reader`'s new position on `target` to the journal and only then moves it in
    /// memory, so that memory never holds a position the next start would not find. Called with
    /// the commit lock held, under which every position moves: one read under it is still the
    /// position when the line is written.
    fn journal_position(
        &self,
        committer: &mut Committer,
        reader: &str,
        target: &str,
        id: u64,
    ) -> Result<(), Error> {
        if let Some(journal) = committer.journal.as_mut() {
            let position = Position {
                reader: reader.to_string(),
                target: target.to_string(),
                id,
            };
            if let Err(e) = journal.append_lines(&[Line::Read(&position)]) {
                log::error!("reader {reader:?}'s position on {target:?} is not stored: {e}");
                return Err(e);
            }
        }
        lock(&self.state).move_position(reader, target, id);
        Ok(())
    }

    /// The entries of the page `query` asks for (waiting as `fetch` does), with what the cache
    /// had of them for writing their wire JSON; their texts are not read yet. A page that moves
    /// its reader's position is returned once the journal holds the new position; if another
    /// read moved that position while this one took its page, the page is taken again from
    /// where the position stands now, so that two reads by one reader never get the same
    /// messages.
    fn take_page(&self, query: &Fetch, wait: Option<Wait>) -> Result<TextsToRead, Error> {
        loop {
            let (page, step) = self.wait_for_page(query, wait);
            let (Some(reader), Some(step)) = (&query.reader, step) else {
                return Ok(page);
            };
            let mut committer = lock(&self.commit);
            if lock(&self.state).position(reader, &query.target) != step.from {
                continue;
            }
            self.journal_position(&mut committer, reader, &query.target, step.to)?;
            return Ok(page);
        }
    }

    /// The page `query` asks for, waiting as `fetch` does, and how it would move its reader's
    /// position (`None` when it moves nothing); the position itself is not moved here.
    fn wait_for_page(&self, query: &Fetch, wait: Option<Wait>) -> (TextsToRead, Option<Step>) {
        let mut state = lock(&self.state);
        loop {
            let mut step = None;
            let slice = match &query.reader {
                Some(reader) => {
                    let mut q = query.clone();
                    let from = state.position(reader, &q.target);
                    if q.since_id == 0 {
                        q.since_id = from;
                    }
                    let slice = state.page(&q);
                    step = slice
                        .entries
                        .last()
                        .filter(|last| last.id > from)
                        .map(|last| Step { from, to: last.id });
                    slice
                }
                None => state.page(query),
            };
            let now = Instant::now();
            match wait {
                Some(w) if slice.entries.is_empty() && !state.closed && now < w.until => {
                    state =
                        wait_for_change(state, &query.target, (w.until - now).min(CLIENT_CHECK));
                    // Woken by news, or a second gone by: a client that has left takes nothing,
                    // so a reader's position does not move past what it never got.
                    drop(state);
                    let gone = (w.gone)();
                    state = lock(&self.state);
                    if gone {
                        return (state.texts_to_read(&query.target, slice), None);
                    }
                }
                _ => return (state.texts_to_read(&query.target, slice), step),
            }
        }
    }

    /// The newest `limit` messages of `target`, ascending, and of those only the newest whose
    /// texts together fit in `max_text_bytes` (the newest one always).
    pub(crate) fn latest(
        &self,
        target: &str,
        limit: usize,
        max_text_bytes: usize,
    ) -> Vec<Arc<Message>> {
        let taken = {
            let mut state = lock(&self.state);
            let mut entries: Vec<Entry> = match state.channels.get(target) {
                Some(c) => c
                    .messages
                    .range(c.messages.len().saturating_sub(limit)..)
                    .copied()
                    .collect(),
                None => Vec::new(),
            };
            keep_newest_within(&mut entries, max_text_bytes);
            state.take(target, entries)
        };
        self.resolve(taken, true)
    }

    /// Like `after`, but when nothing is there yet, waits until a post to `target` brings
    /// something or `deadline` passes. Only posts to `target` wake the waiter.
    #[cfg(test)]
    pub(crate) fn wait_after(
        &self,
        target: &str,
        since_id: u64,
        limit: usize,
        deadline: Instant,
    ) -> Vec<Arc<Message>> {
        let mut state = lock(&self.state);
        loop {
            let found = state.after(target, since_id, limit);
            let now = Instant::now();
            if !found.is_empty() || state.closed || now >= deadline {
                let taken = state.take(target, found);
                drop(state);
                return self.resolve(taken, true);
            }
            state = wait_for_change(state, target, deadline - now);
        }
    }

    /// A page of `channels()`: at most `limit` names after `after`, and whether more follow.
    pub(crate) fn channels_page(&self, after: Option<&str>, limit: usize) -> (Vec<String>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = lock(&self.state);
        let from = || after.map_or(Unbounded, Excluded);
        let mut configured = state
            .configured
            .range::<str, _>((from(), Unbounded))
            .peekable();
        let mut posted = state
            .channels
            .range::<str, _>((from(), Unbounded))
            .filter(|(_, c)| c.seen)
            .map(|(name, _)| name)
            .peekable();
        let mut page = Vec::new();
        loop {
            // Merge the two sorted sources, each name once.
            let next = match (configured.peek(), posted.peek()) {
                (Some(a), Some(b)) if a.as_str() == b.as_str() => {
                    posted.next();
                    configured.next()
                }
                (Some(a), Some(b)) if a.as_str() < b.as_str() => configured.next(),
                (Some(_), Some(_)) | (None, Some(_)) => posted.next(),
                (Some(_), None) => configured.next(),
                (None, None) => return (page, false),
            };
            if page.len() == limit {
                return (page, true);
            }
            if let Some(name) = next {
                page.push(name.clone());
            }
        }
    }

    /// The configured channels and every channel posted to, sorted.
    pub(crate) fn channels(&self) -> Vec<String> {
        let state = lock(&self.state);
        let mut all = state.configured.clone();
        all.extend(
            state
                .channels
                .iter()
                .filter(|(_, c)| c.seen)
                .map(|(name, _)| name.clone()),
        );
        all.into_iter().collect()
    }

    /// Whether `name` is one of [`Store::channels`], looked up without listing them.
    pub(crate) fn is_listed(&self, name: &str) -> bool {
        let state = lock(&self.state);
        state.configured.contains(name) || state.channels.get(name).is_some_and(|c| c.seen)
    }

    /// Channels held in memory, listed or not: only posts create them, never reads or waits.
    #[cfg(test)]
    pub(crate) fn channel_entries(&self) -> usize {
        lock(&self.state).channels.len()
    }

    /// Every channel `channels` lists, with its newest id (0 when it holds none) and how many
    /// messages it holds.
    #[cfg(test)]
    pub(crate) fn summaries(&self) -> Vec<(String, u64, usize)> {
        self.summaries_of(self.channels())
    }

    /// The channels `names`, each with its newest id (0 when it holds none) and how many
    /// messages it holds.
    pub(crate) fn summaries_of(&self, names: Vec<String>) -> Vec<(String, u64, usize)> {
        let state = lock(&self.state);
        names
            .into_iter()
            .map(|name| {
                let (newest, held) = state.channels.get(&name).map_or((0, 0), |c| {
                    (c.messages.back().map_or(0, |m| m.id), c.messages.len())
                });
                (name, newest, held)
            })
            .collect()
    }

    /// The highest id published so far (0 when nothing was ever posted). A batch being written
    /// is not waited for: its ids are not readable yet.
    pub(crate) fn last_id(&self) -> u64 {
        self.published_id.load(Ordering::Acquire)
    }

    /// Number of messages held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.state).count
    }

    /// What changed on `target` after message `since_id` and deletion number `deletions`;
    /// when nothing has, waits until something does or `deadline` passes.
    pub(crate) fn wait_changes(
        &self,
        target: &str,
        since_id: u64,
        deletions: usize,
        limit: usize,
        deadline: Instant,
    ) -> Changes {
        let mut state = lock(&self.state);
        loop {
            let found = state.after(target, since_id, limit);
            let mut changes = Changes {
                messages: Vec::new(),
                deleted: Vec::new(),
                deletions,
            };
            if let Some(c) = state.channels.get(target) {
                let missed = c.deletions.saturating_sub(deletions);
                changes.deleted = c
                    .deleted
                    .iter()
                    .skip(c.deleted.len().saturating_sub(missed))
                    .cloned()
                    .collect();
                changes.deletions = c.deletions;
            }
            let now = Instant::now();
            if !found.is_empty() || !changes.deleted.is_empty() || state.closed || now >= deadline {
                let taken = state.take_for_json(target, found);
                drop(state);
                let (found, made) = read_json(taken, false);
                self.cache_made(target, made);
                changes.messages = found.into_iter().map(|w| w.json).collect();
                return changes;
            }
            state = wait_for_change(state, target, deadline - now);
        }
    }

    /// How many deletions `target` has seen, where a stream starts counting.
    pub(crate) fn deletions(&self, target: &str) -> usize {
        lock(&self.state)
            .channels
            .get(target)
            .map_or(0, |c| c.deletions)
    }

    /// For each channel `reader` has read or could read, how many messages lie past its
    /// position, sorted by channel.
    pub(crate) fn unread(&self, reader: &str) -> Vec<Unread> {
        let state = lock(&self.state);
        state
            .channels
            .iter()
            .filter(|(_, c)| c.seen)
            .map(|(target, c)| {
                let position = state.position(reader, target);
                let count = c.messages.len() - c.messages.partition_point(|m| m.id <= position);
                Unread {
                    target: target.clone(),
                    count,
                    position,
                }
            })
            .collect()
    }

    /// Deletes message `id`: recorded in the journal first, then gone from memory, readers'
    /// pages and open streams; its text leaves the disk with the next compaction, started now.
    pub(crate) fn delete_message(&self, id: u64) -> Result<Arc<Message>, Error> {
        let mut committer = lock(&self.commit);
        let target = {
            let state = lock(&self.state);
            state
                .channels
                .iter()
                .find_map(|(t, _)| state.find(t, id).map(|_| t.clone()))
        };
        let found = target
            .and_then(|t| self.find(&t, id))
            .ok_or_else(|| Error::NotFound(format!("no message {id}")))?;
        self.delete(&mut committer, &found.target, Deletion::Message { id })?;
        Ok(found)
    }

    /// Deletes every message of channel `target` and the channel itself (unless it is
    /// configured); returns how many messages went. Recorded like `delete_message`.
    pub(crate) fn delete_channel(&self, target: &str) -> Result<usize, Error> {
        let mut committer = lock(&self.commit);
        let held = lock(&self.state)
            .channels
            .get(target)
            .filter(|c| c.seen || !c.messages.is_empty())
            .map(|c| c.messages.len());
        let Some(held) = held else {
            return Err(Error::NotFound(format!("no channel {target:?}")));
        };
        let through = committer.last_id;
        let deletion = Deletion::Channel {
            target: target.to_string(),
            through,
        };
        self.delete(&mut committer, target, deletion)?;
        Ok(held)
    }

    fn delete(
        &self,
        committer: &mut Committer,
        target: &str,
        deletion: Deletion,
    ) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Storage("the relay is shutting down".into()));
        }
        if let Some(journal) = committer.journal.as_mut() {
            journal.append_lines(&[Line::Delete(&deletion)])?;
        }
        let removed = lock(&self.state).delete(target, deletion);
        if !removed.is_empty() {
            self.removed_from(&[target.to_string()]);
        }
        // A retry of a deleted message's post makes it anew, as after a restart, whose journal
        // holds neither the message nor its key.
        committer.keys.forget(&removed);
        committer.stale = true;
        committer.purge = true;
        // At once, even while a failed compaction's back-off runs.
        committer.retry_at = None;
        self.purge(committer);
        Ok(())
    }

    /// Starts a compaction if a deletion left a text on disk, none is running and no failed
    /// one's back-off runs.
    fn purge(&self, committer: &mut Committer) {
        self.finish_compaction(committer, false);
        if committer.purge
            && committer.compaction.is_none()
            && committer.journal.is_some()
            && !committer.held_off()
        {
            self.compact(committer, false);
        }
    }

    /// Wakes every waiter for good (waits return what they have, streams end), refuses later
    /// posts and closes the journal, releasing the data directory's lock.
    pub(crate) fn close(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            for c in state.channels.values() {
                c.changed.notify_all();
            }
            state.created.notify_all();
        }
        let mut committer = lock(&self.commit);
        self.settle(&mut committer);
        if committer.purge {
            // A deletion's text is still on disk (its compaction failed, or was to start
            // after a back-off): remove it before letting go of the journal.
            self.compact(&mut committer, true);
        }
        if let Some(handle) = committer.checkpointing.take() {
            // Its rename must not land after (and over) the one written here.
            let _ = handle.join();
        }
        if let Some(journal) = &committer.journal {
            // The next start then reads the index instead of replaying the whole history.
            if let Err(e) = journal.checkpoint() {
                log::warn!("{e}; the next start replays the whole journal");
            }
        }
        committer.journal = None;
    }

    /// Whether `close` was called.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

/// The next value of the store's version sequence (see `Channel::version`).
fn next_version(last: &mut u64) -> u64 {
    *last += 1;
    *last
}

impl State {
    /// Channel `target`'s version, 0 for a channel that does not exist.
    fn version_of(&self, target: &str) -> u64 {
        self.channels.get(target).map_or(0, |c| c.version)
    }

    fn channel(&mut self, name: &str) -> &mut Channel {
        if !self.channels.contains_key(name) {
            self.channels.insert(name.to_string(), Channel::default());
        }
        self.channels.get_mut(name).expect("inserted above")
    }

    fn insert(&mut self, target: &str, entry: Entry) {
        if !self.channels.contains_key(target) {
            self.created.notify_all();
        }
        let version = next_version(&mut self.version);
        let channel = self.channel(target);
        channel.messages.push_back(entry);
        channel.seen = true;
        channel.version = version;
        channel.changed.notify_all();
        self.count += 1;
    }

    /// Drops `target`'s oldest messages past `per_channel` (texts from the cache too), adding
    /// their ids to `dropped`. Called under the same lock as the post that made the channel
    /// longer, whose new version covers this change too.
    fn keep_newest(&mut self, target: &str, per_channel: usize, dropped: &mut Vec<u64>) {
        let Some(c) = self.channels.get_mut(target) else {
            return;
        };
        let over = c.messages.len().saturating_sub(per_channel);
        c.drop_oldest(over, &mut self.texts, dropped);
        self.count -= over;
    }

    /// The time of the oldest message held, if any.
    fn oldest_ts(&self) -> Option<f64> {
        self.channels
            .values()
            .filter_map(|c| c.messages.front().map(|m| m.ts))
            .min_by(f64::total_cmp)
    }

    /// `slice` of `target` as a page to read the texts of once the lock is let go.
    fn texts_to_read(&mut self, target: &str, slice: Slice) -> TextsToRead {
        let Slice {
            entries,
            head_id,
            more,
        } = slice;
        TextsToRead {
            taken: self.take_for_json(target, entries),
            target: target.to_string(),
            head_id,
            more,
            version: self.version_of(target),
        }
    }

    /// The message `id` of channel `target`, if it is kept.
    fn find(&self, target: &str, id: u64) -> Option<Entry> {
        let c = self.channels.get(target)?;
        let at = c.messages.partition_point(|m| m.id < id);
        c.messages.get(at).filter(|m| m.id == id).copied()
    }

    /// `entries` of channel `target` with the file their places point into, to read once the
    /// lock is let go.
    fn take(&mut self, target: &str, entries: Vec<Entry>) -> Taken {
        let targets = vec![Arc::from(target); entries.len()];
        self.take_with(entries, targets, Cache::get_held)
    }

    /// Like `take`, for entries of any channels, each with its channel.
    fn take_each(&mut self, found: Vec<(Arc<str>, Entry)>) -> Taken {
        let (targets, entries) = found.into_iter().unzip();
        self.take_with(entries, targets, Cache::get_held)
    }

    /// Like `take`, for a reader of wire JSON: of a message whose JSON is cached, only that
    /// is taken (see `Cache::get_for_json`).
    fn take_for_json(&mut self, target: &str, entries: Vec<Entry>) -> Taken {
        let targets = vec![Arc::from(target); entries.len()];
        self.take_with(entries, targets, Cache::get_for_json)
    }

    /// `entries` (of channels `targets`) with what `get` takes of each from the cache.
    fn take_with(
        &mut self,
        entries: Vec<Entry>,
        targets: Vec<Arc<str>>,
        get: fn(&mut Cache, u64) -> Option<Held>,
    ) -> Taken {
        Taken {
            cached: entries
                .iter()
                .map(|e| get(&mut self.texts, e.id).unwrap_or_default())
                .collect(),
            entries,
            targets,
            file: self.file.clone(),
        }
    }

    /// Entries with an id below `below`, newest first, of channel `target` or of every
    /// channel: `min` of them (or all there are), then more while their texts stay within
    /// `bytes` and they number fewer than the channels walked, so that the walk's setup, a step
    /// per channel, is paid for by at least as many entries. Each comes with its channel.
    fn newest_below(
        &self,
        target: Option<&str>,
        below: u64,
        min: usize,
        bytes: u64,
    ) -> Vec<(Arc<str>, Entry)> {
        let channels: Vec<(&String, &Channel)> = match target {
            Some(t) => self.channels.get_key_value(t).into_iter().collect(),
            None => self.channels.iter().collect(),
        };
        // Walk every channel from its newest end at once, always taking the newest (the heap
        // holds each channel's next entry by id): the entries come out newest first without
        // sorting everything, at a cost of log(channels) each. A channel's name is shared by
        // its entries, made once one is taken.
        let mut cursors: Vec<(usize, &Channel, &String, Option<Arc<str>>)> = channels
            .into_iter()
            .map(|(name, c)| (c.messages.partition_point(|m| m.id < below), c, name, None))
            .filter(|(at, ..)| *at > 0)
            .collect();
        let mut next: BinaryHeap<(u64, usize)> = cursors
            .iter()
            .enumerate()
            .map(|(i, (at, c, ..))| (c.messages[at - 1].id, i))
            .collect();
        let walked = cursors.len();
        let mut found = Vec::new();
        let mut text_bytes = 0;
        while found.len() < min || (found.len() < walked && text_bytes < bytes) {
            let Some((_, i)) = next.pop() else {
                break;
            };
            let (at, c, name, shared) = &mut cursors[i];
            *at -= 1;
            text_bytes += u64::from(c.messages[*at].place.text_len);
            let name = shared.get_or_insert_with(|| Arc::from(name.as_str()));
            found.push((Arc::clone(name), c.messages[*at]));
            if *at > 0 {
                next.push((c.messages[*at - 1].id, i));
            }
        }
        found
    }

    /// Moves every entry to where a compaction put its line, with the file it is in now.
    fn relocate(&mut self, relocation: Relocation) {
        let mut lost = 0;
        for c in self.channels.values_mut() {
            for e in c.messages.iter_mut() {
                match relocation.place(e.id, e.place) {
                    Some(place) => e.place = place,
                    None => lost += 1,
                }
            }
        }
        if lost > 0 {
            // Cannot happen: a compaction keeps every message kept when it started, and only
            // those older than its start are looked up in it.
            log::error!("{lost} kept messages were not in the compacted journal");
        }
        self.file = Some(relocation.file);
    }

    /// Where `reader` stands on `target` (0 if it never read it).
    fn position(&self, reader: &str, target: &str) -> u64 {
        self.positions
            .get(reader)
            .and_then(|p| p.get(target))
            .copied()
            .unwrap_or(0)
    }

    /// Moves `reader`'s position on `target` forward to `id` (never back); whether it moved.
    fn move_position(&mut self, reader: &str, target: &str, id: u64) -> bool {
        if !self.positions.contains_key(reader) {
            self.positions.insert(reader.to_string(), BTreeMap::new());
        }
        let of_reader = self.positions.get_mut(reader).expect("inserted above");
        match of_reader.get_mut(target) {
            Some(at) if *at >= id => false,
            Some(at) => {
                *at = id;
                true
            }
            None => {
                of_reader.insert(target.to_string(), id);
                self.position_count += 1;
                true
            }
        }
    }

    /// Forgets every reader's position on `target` up to `through`, as a deletion of the
    /// channel does (and replay of its line, `journal::finish`): what is posted there later is
    /// a new history, read from its start, and a compaction writes no position back.
    fn forget_positions(&mut self, target: &str, through: u64) {
        let mut forgotten = 0;
        self.positions.retain(|_, of| {
            if of.get(target).is_some_and(|id| *id <= through) {
                of.remove(target);
                forgotten += 1;
            }
            !of.is_empty()
        });
        self.position_count -= forgotten;
    }

    /// Every position, for a compacted journal.
    fn position_list(&self) -> Vec<Position> {
        self.positions
            .iter()
            .flat_map(|(reader, of)| {
                of.iter().map(move |(target, id)| Position {
                    reader: reader.clone(),
                    target: target.clone(),
                    id: *id,
                })
            })
            .collect()
    }

    fn after(&self, target: &str, since_id: u64, limit: usize) -> Vec<Entry> {
        let Some(c) = self.channels.get(target) else {
            return Vec::new();
        };
        let start = c.messages.partition_point(|m| m.id <= since_id);
        c.messages.range(start..).take(limit).copied().collect()
    }

    fn page(&self, q: &Fetch) -> Slice {
        let Some(c) = self.channels.get(&q.target) else {
            return Slice::default();
        };
        let head_id = c.messages.back().map_or(0, |m| m.id);
        let end = q.before_id.map_or(c.messages.len(), |id| {
            c.messages.partition_point(|m| m.id < id)
        });
        let start = c.messages.partition_point(|m| m.id <= q.since_id).min(end);
        let start = if q.newest {
            start.max(end.saturating_sub(q.limit))
        } else {
            start
        };
        let entries: Vec<Entry> = c
            .messages
            .range(start..end)
            .take(q.limit)
            .copied()
            .collect();
        let more = entries.last().is_some_and(|m| m.id < head_id);
        let mut slice = Slice {
            entries,
            head_id,
            more,
        };
        if let Some(max) = q.max_text_bytes {
            slice.cap_text_bytes(max, q.newest);
        }
        slice
    }

    /// Removes what `deletion` names from `target` (texts from the cache too) and tells its
    /// waiters; returns the ids removed.
    fn delete(&mut self, target: &str, deletion: Deletion) -> Vec<u64> {
        if let Deletion::Channel { through, .. } = &deletion {
            self.forget_positions(target, *through);
        }
        let Some(c) = self.channels.get_mut(target) else {
            return Vec::new();
        };
        match &deletion {
            Deletion::Message { id } => self.texts.remove(*id),
            Deletion::Channel { through, .. } => {
                let upto = c.messages.partition_point(|m| m.id <= *through);
                for m in c.messages.range(..upto) {
                    self.texts.remove(m.id);
                }
            }
        }
        let mut removed = Vec::new();
        let mut remove = |m: &Entry, gone: bool| {
            if gone {
                removed.push(m.id);
            }
            !gone
        };
        match &deletion {
            Deletion::Message { id } => c.messages.retain(|m| remove(m, m.id == *id)),
            Deletion::Channel { through, .. } => {
                c.messages.retain(|m| remove(m, m.id <= *through));
                c.seen = !c.messages.is_empty();
            }
        }
        c.give_back_room();
        self.count -= removed.len();
        if c.deleted.len() == DELETIONS_KEPT {
            c.deleted.pop_front();
        }
        c.deleted.push_back(deletion);
        c.deletions += 1;
        c.version = next_version(&mut self.version);
        c.changed.notify_all();
        removed
    }

    /// Drops the oldest messages past `per_channel` and those older than `cutoff` (texts from
    /// the cache too); returns their ids, and adds the names of the channels they left to
    /// `thinned`.
    fn retain(&mut self, per_channel: usize, cutoff: f64, thinned: &mut Vec<String>) -> Vec<u64> {
        let mut dropped = Vec::new();
        for (name, c) in self.channels.iter_mut() {
            let over = if per_channel > 0 {
                c.messages.len().saturating_sub(per_channel)
            } else {
                0
            };
            let old = c.messages.partition_point(|m| m.ts < cutoff);
            let n = over.max(old);
            c.drop_oldest(n, &mut self.texts, &mut dropped);
            if n > 0 {
                thinned.push(name.clone());
                c.version = next_version(&mut self.version);
                // Emptied, it is listed no more, as after a restart, whose journal no longer
                // names it.
                c.seen = !c.messages.is_empty();
                c.give_back_room();
            }
        }
        self.count -= dropped.len();
        dropped
    }
}

/// Reads the texts `taken` did not find in the cache: the messages, and those of them read
/// from the journal. A message that cannot be read is logged and left out.
fn read_texts(taken: Taken) -> (Vec<Arc<Message>>, Vec<Arc<Message>>) {
    let Taken {
        entries,
        targets,
        cached,
        file,
    } = taken;
    let mut found: Vec<Option<Arc<Message>>> = cached.iter().map(|h| h.message.clone()).collect();
    if found.iter().all(Option::is_some) {
        return (found.into_iter().flatten().collect(), Vec::new());
    }
    let mut read = Vec::new();
    for (((slot, e), held), target) in found.iter_mut().zip(&entries).zip(&cached).zip(&targets) {
        if slot.is_some() {
            continue;
        }
        if let Some(m) = held.json.as_deref().and_then(|j| parse_wire_json(j, e.id)) {
            let m = Arc::new(m);
            read.push(Arc::clone(&m));
            *slot = Some(m);
            continue;
        }
        let Some(file) = file.as_deref() else {
            // Without a journal a message missing from memory was deleted or dropped by
            // retention since it was taken from the index: it is left out, as it would
            // be a moment later.
            continue;
        };
        match file.message(e.expected(target), e.place) {
            Ok(m) => {
                let m = Arc::new(m);
                read.push(Arc::clone(&m));
                *slot = Some(m);
            }
            Err(err) => log::error!("cannot read message {} from the journal: {err}", e.id),
        }
    }
    (found.into_iter().flatten().collect(), read)
}

/// A message's wire JSON and, when asked for, that JSON escaped as a string.
#[derive(Clone)]
struct Wire {
    json: WireJson,
    escaped: Option<WireJson>,
}

/// What a read leaves in the cache for one message: its wire JSON (escaped too, when made), and
/// whether its journal line may be sent as it lies.
struct ToCache {
    json: WireJson,
    escaped: Option<WireJson>,
    lies_ready: bool,
}

/// A message whose wire JSON is this long or longer, and whose journal line may be sent as it
/// lies, is sent from the file by replies that can (`read_sent`) once the cache no longer holds
/// its JSON: its text is then not copied from the file into memory, nor from memory to the
/// socket.
const LIES_FROM: usize = 64 * 1024;

/// The wire JSON of the messages `taken` names (escaped too, when `escape`), from the cache or
/// else made from the `Message` held or read from the file; with what to cache, by id. A
/// message that cannot be read is logged and left out.
fn read_json(taken: Taken, escape: bool) -> (Vec<Wire>, Vec<(u64, ToCache)>) {
    let mut found = Vec::with_capacity(taken.entries.len());
    let mut made = Vec::new();
    let file = taken.file.as_deref();
    for ((e, held), target) in taken.entries.iter().zip(taken.cached).zip(&taken.targets) {
        if let Some((wire, to_cache)) = read_one(e, held, target, file, escape) {
            made.extend(to_cache.map(|c| (e.id, c)));
            found.push(wire);
        }
    }
    (found, made)
}

/// Like `read_json` without escaping, as a reply sends them: a long text whose journal line
/// the cache says may be sent as it lies is sent from the file, its line's fields read and
/// checked, its text not read.
fn read_sent(taken: Taken) -> (Vec<SentJson>, Vec<(u64, ToCache)>) {
    let mut found = Vec::with_capacity(taken.entries.len());
    let mut made = Vec::new();
    let file = taken.file.as_ref();
    for ((e, held), target) in taken.entries.iter().zip(taken.cached).zip(&taken.targets) {
        if let (true, None, Some(file)) = (held.lies_ready, &held.json, file) {
            match file.wire_json_lying(e.expected(target), e.place) {
                Ok(lying) => found.push(SentJson::Lying(lying)),
                Err(err) => log::error!("cannot read message {} from the journal: {err}", e.id),
            }
            continue;
        }
        if let Some((wire, to_cache)) = read_one(e, held, target, file.map(|f| &**f), false) {
            made.extend(to_cache.map(|c| (e.id, c)));
            found.push(SentJson::Whole(wire.json));
        }
    }
    (found, made)
}

/// The wire JSON of the message `e` of channel `target` (escaped too, when `escape`), from
/// what the cache `held` or else made from the `Message` held or read from `file`, with what to
/// cache of it; `None` when it cannot be read (logged) or, without a journal, is gone.
fn read_one(
    e: &Entry,
    held: Held,
    target: &str,
    file: Option<&Reader>,
    escape: bool,
) -> Option<(Wire, Option<ToCache>)> {
    let Held {
        message,
        json,
        escaped,
        ..
    } = held;
    let cached = json.is_some();
    let mut may_lie = false;
    let json = match (json, message, file) {
        (Some(json), ..) => json,
        (None, Some(m), _) => wire_json(&m),
        // Without a journal, a message missing from memory was deleted or dropped by
        // retention since it was taken from the index: it is left out, as it would be a
        // moment later.
        (None, None, None) => return None,
        (None, None, Some(file)) => match file.wire_json(e.expected(target), e.place) {
            Ok((json, as_it_lies)) => {
                may_lie = as_it_lies && json.len() >= LIES_FROM;
                json
            }
            Err(err) => {
                log::error!("cannot read message {} from the journal: {err}", e.id);
                return None;
            }
        },
    };
    let escaped_now = escape && escaped.is_none();
    let escaped = match escaped {
        Some(escaped) => Some(escaped),
        None if escape => Some(Arc::new(json_string::escaped(&json))),
        None => None,
    };
    let to_cache = (!cached || escaped_now).then(|| ToCache {
        json: Arc::clone(&json),
        escaped: escaped.clone(),
        lies_ready: may_lie,
    });
    Some((Wire { json, escaped }, to_cache))
}

/// The message whose wire JSON the cache holds, if it is message `id`.
fn parse_wire_json(json: &str, id: u64) -> Option<Message> {
    serde_json::from_str::<Message>(json)
        .ok()
        .filter(|m| m.id == id)
}

/// Waits, for `at_most`, until `target` changes. A wait on a channel nobody has posted to
/// creates nothing: it wakes on the creation of any channel, and its caller looks again.
fn wait_for_change<'a>(
    state: MutexGuard<'a, State>,
    target: &str,
    at_most: Duration,
) -> MutexGuard<'a, State> {
    let changed = match state.channels.get(target) {
        Some(c) => Arc::clone(&c.changed),
        None => Arc::clone(&state.created),
    };
    changed
        .wait_timeout(state, at_most)
        .unwrap_or_else(|p| p.into_inner())
        .0
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every critical
/// section here leaves the data consistent before anything that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Fsync;
    use crate::test_dir::TempDir;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::Duration;

    /// How long a test waits for something that should happen at once before it fails.
    const PATIENCE: Duration = Duration::from_secs(60);

    impl TempDir {
        /// The store over this directory's journal, with what the journal holds.
        fn store(&self, limits: Limits) -> Store {
            let (journal, replay) = self.open_journal();
            Store::new(Some(journal), replay, &[], limits)
        }

        fn open_journal(&self) -> (Journal, Replay) {
            match Journal::open(&self.0, Fsync::Always) {
                Ok(opened) => opened,
                Err(e) => panic!("cannot open the journal: {e}"),
            }
        }

        /// The journal file's bytes as text.
        fn journal_text(&self) -> String {
            std::fs::read_to_string(self.0.join(crate::journal::JOURNAL_FILE))
                .expect("the journal file is readable")
        }
    }

    fn draft(target: &str, text: &str) -> Draft {
        Draft {
            target: target.into(),
            sender: "claude".into(),
            text: text.into(),
            ..Draft::default()
        }
    }

    pub(super) fn post(store: &Store, target: &str, text: &str) -> u64 {
        match store.post(draft(target, text)) {
            Ok(posted) => posted.message.id,
            Err(e) => panic!("post to {target} failed: {e}"),
        }
    }

    pub(super) fn ids(messages: &[Arc<Message>]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    /// Every message of `target`, ascending.
    fn all(store: &Store, target: &str) -> Vec<Arc<Message>> {
        store.after(target, 0, usize::MAX)
    }

    /// Posts `per_thread` messages from each of `threads` threads at once, thread `t` to
    /// channel `c{t % channels}`; returns what each thread posted, in the order it posted:
    /// the id it got, the channel and the text.
    fn post_from_threads(
        store: &Arc<Store>,
        threads: usize,
        per_thread: usize,
        channels: usize,
    ) -> Vec<Vec<(u64, String, String)>> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = Arc::clone(store);
                thread::spawn(move || {
                    let target = format!("c{}", t % channels);
                    (0..per_thread)
                        .map(|i| {
                            let text = format!("thread {t} post {i}");
                            (post(&store, &target, &text), target.clone(), text)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a posting thread panicked"))
            .collect()
    }

    #[test]
    fn names_are_stored_trimmed_and_a_name_with_nothing_to_trim_as_given() {
        let store = Store::in_memory(&[], Limits::default());
        for (target, sender) in [(" proj-x\t", "\u{3000}codex "), ("proj-x", "codex")] {
            let posted = store
                .post(Draft {
                    sender: sender.into(),
                    ..draft(target, "hello")
                })
                .unwrap();
            assert_eq!(
                (
                    posted.message.target.as_str(),
                    posted.message.sender.as_str()
                ),
                ("proj-x", "codex")
            );
        }
        let blank = store.post(draft(" \n ", "hello"));
        assert!(matches!(blank, Err(Error::BadRequest(m)) if m == "target must not be empty"));
        let page = store.fetch(
            &Fetch {
                target: "proj-x".into(),
                limit: 10,
                ..Fetch::default()
            },
            None,
        );
        assert_eq!(page.messages.len(), 2);
    }

    /// The ids end at `commit::MAX_ID`: a post past it is refused as a full disk's is, and no
    /// id wraps around to 0 (after which the next start would stop at ids that do not
    /// increase), not even after a journal that ends at `u64::MAX`.
    #[test]
    fn past_the_largest_id_a_post_is_refused_and_no_id_wraps_around() {
        for last in [commit::MAX_ID - 1, u64::MAX] {
            let dir = TempDir::new();
            std::fs::create_dir_all(&dir.0).unwrap();
            let marker = format!("{{\"last_id\":{last}}}\n");
            std::fs::write(dir.0.join(crate::journal::JOURNAL_FILE), marker).unwrap();
            let store = dir.store(Limits::default());
            if last < commit::MAX_ID {
                assert_eq!(post(&store, "a", "the last id"), commit::MAX_ID);
            }
            let refused = store.post(draft("a", "one too many")).unwrap_err();
            assert_eq!(refused.status(), 507, "{refused}");
            assert!(refused.to_string().contains("used up"), "{refused}");
            assert!(all(&store, "a").len() <= 1, "nothing past the last id");
            drop(store);
            let (_, replay) = dir.open_journal();
            assert_eq!(
                replay.last_id,
                last.max(commit::MAX_ID),
                "the journal still opens"
            );
        }
    }

    #[test]
    fn concurrent_posts_get_dense_unique_ids_published_in_order() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let published = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&published);
        store.on_publish(Box::new(move |m| lock(&seen).push(m.id)));

        let got = post_from_threads(&store, 8, 500, 3);

        for own in &got {
            let own: Vec<u64> = own.iter().map(|(id, ..)| *id).collect();
            assert!(
                own.windows(2).all(|w| w[0] < w[1]),
                "one thread's ids go up"
            );
        }
        let mut every: Vec<u64> = got.iter().flatten().map(|(id, ..)| *id).collect();
        every.sort_unstable();
        assert_eq!(every, (1..=4000).collect::<Vec<u64>>());
        assert_eq!(store.last_id(), 4000);
        assert_eq!(store.len(), 4000);
        assert_eq!(*lock(&published), (1..=4000).collect::<Vec<u64>>());

        let mut held = 0;
        for c in 0..3 {
            let target = format!("c{c}");
            let messages = all(&store, &target);
            assert!(messages.windows(2).all(|w| w[0].id < w[1].id), "{target}");
            assert!(messages.iter().all(|m| m.target == target));
            held += messages.len();
        }
        assert_eq!(held, 4000);
        // Each post is the message its poster got the id of.
        for (id, target, text) in got.iter().flatten() {
            let m = store.find(target, *id).expect("every posted id is held");
            assert_eq!(&m.text, text);
        }
    }

    /// Waits (up to a deadline) until the journal file no longer holds `text`.
    fn until_the_journal_lacks(dir: &TempDir, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while dir.journal_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} is still in the journal"
            );
            thread::yield_now();
        }
    }

    #[test]
    fn a_deleted_text_leaves_the_journal_with_no_later_post_or_stop() {
        let dir = TempDir::new();
        let store = dir.store(Limits::default());
        post(&store, "c", "kept text");
        let secret = post(&store, "c", "secret text");
        store.delete_message(secret).unwrap();
        // Nothing else happens: the compaction the deletion started installs itself.
        until_the_journal_lacks(&dir, "secret text");
        assert!(dir.journal_text().contains("kept text"));
        let texts: Vec<String> = all(&store, "c").iter().map(|m| m.text.clone()).collect();
        assert_eq!(texts, ["kept text"]);
        assert_eq!(post(&store, "c", "after"), secret + 1);
        store.close();
        drop(store);
        let (_, replay) = dir.open_journal();
        assert!(!replay.holds_deleted);
        assert_eq!(replay.messages.len(), 2);
    }

    #[test]
    fn a_deletion_made_while_a_compaction_is_written_leaves_the_journal_once_it_is_installed() {
        let dir = TempDir::new();
        let store = dir.store(Limits::default());
        for i in 1..=5 {
            post(&store, "proj-x", &format!("text {i}"));
        }
        {
            let mut committer = lock(&store.commit);
            store
                .delete(&mut committer, "proj-x", Deletion::Message { id: 1 })
                .unwrap();
            // The compaction the first deletion started cannot be installed while the commit
            // lock is held here; the second deletion arrives while it is still being written.
            let first = committer
                .compaction
                .replace(Arc::new(compactor::Pending::default()))
                .expect("the first deletion started a compaction");
            store
                .delete(&mut committer, "proj-x", Deletion::Message { id: 2 })
                .unwrap();
            committer.compaction = Some(first);
        }
        // Nothing else happens: once the first compaction is installed, the second starts.
        until_the_journal_lacks(&dir, "text 1");
        until_the_journal_lacks(&dir, "text 2");
        let texts: Vec<String> = all(&store, "proj-x")
            .iter()
            .map(|m| m.text.clone())
            .collect();
        assert_eq!(texts, ["text 3", "text 4", "text 5"]);
        let journal = dir.journal_text();
        assert!(!journal.contains("\"id\":2,"), "{journal}");
        assert!(!journal.contains("\"delete\""), "{journal}");
    }

    /// Makes every compaction in `dir` fail until the returned path is removed: where a
    /// compaction writes its temporary file stands a directory, which no one, root included,
    /// can open as a file.
    fn block_compactions(dir: &TempDir) -> std::path::PathBuf {
        let obstacle = dir.0.join(format!("{}.tmp", crate::journal::JOURNAL_FILE));
        std::fs::create_dir(&obstacle).expect("the obstacle is made");
        obstacle
    }

    /// Waits (up to a deadline) until the store has tried a compaction and none is running,
    /// and returns the commit lock then held.
    fn until_a_compaction_failed(store: &Store) -> MutexGuard<'_, Committer> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let committer = lock(&store.commit);
            if committer.compaction.is_none() {
                return committer;
            }
            drop(committer);
            assert!(Instant::now() < deadline, "the compaction never ended");
            thread::yield_now();
        }
    }

    #[test]
    fn a_deletion_whose_compaction_failed_leaves_the_journal_when_the_store_closes() {
        let dir = TempDir::new();
        let store = dir.store(Limits::default());
        post(&store, "c", "kept text");
        let secret = post(&store, "c", "secret text");
        let obstacle = block_compactions(&dir);
        store.delete_message(secret).unwrap();
        drop(until_a_compaction_failed(&store));
        assert!(dir.journal_text().contains("secret text"));
        std::fs::remove_dir(&obstacle).unwrap();
        store.close();
        assert!(!dir.journal_text().contains("secret text"));
        assert!(dir.journal_text().contains("kept text"));
    }

    #[test]
    fn a_failed_compaction_is_tried_again_by_a_post_once_its_back_off_has_passed() {
        let dir = TempDir::new();
        let store = dir.store(Limits::default());
        post(&store, "c", "kept text");
        let secret = post(&store, "c", "secret text");
        let obstacle = block_compactions(&dir);
        store.delete_message(secret).unwrap();
        {
            let mut committer = until_a_compaction_failed(&store);
            assert!(committer.failures > 0 && committer.purge && committer.stale);
            // A back-off far longer than the test: whatever starts a compaction below is a post.
            committer.retry_at = Some(Instant::now() + Duration::from_secs(3600));
        }
        post(&store, "c", "within the back-off");
        {
            let committer = lock(&store.commit);
            assert!(
                committer.compaction.is_none(),
                "no post starts one before then"
            );
            assert!(committer.purge, "the deleted text is still to be removed");
        }
        std::fs::remove_dir(&obstacle).unwrap();
        lock(&store.commit).retry_at = Some(Instant::now());
        post(&store, "c", "after the back-off");
        {
            let committer = lock(&store.commit);
            assert!(
                committer.compaction.is_some() || !dir.journal_text().contains("secret text"),
                "the post started the compaction"
            );
        }
        until_the_journal_lacks(&dir, "secret text");
        let committer = lock(&store.commit);
        assert_eq!((committer.failures, committer.retry_at), (0, None));
    }

    #[test]
    fn a_dropped_store_lets_go_of_the_journal_while_a_compaction_still_holds_the_committer() {
        let dir = TempDir::new();
        let store = dir.store(Limits::default());
        post(&store, "c", "one");
        // What a compaction's thread holds while it waits for the commit lock.
        let held = Arc::clone(&store.commit);
        drop(store);
        // The data directory is free: a new start takes its lock and finds the message.
        let (_, replay) = dir.open_journal();
        assert_eq!(replay.messages.len(), 1);
        drop(held);
    }

    #[test]
    fn a_start_after_a_crash_that_kept_a_deleted_text_removes_it() {
        let dir = TempDir::new();
        {
            let (mut journal, _) = dir.open_journal();
            let m = |id: u64, text: &str| Message {
                id,
                ts: 1.0,
                target: "c".into(),
                sender: "s".into(),
                reply_to: None,
                text: text.into(),
            };
            journal
                .append(&[m(1, "kept text"), m(2, "secret text")])
                .unwrap();
            // The deletion is on disk; the compaction that would remove the text never ran.
            journal
                .append_lines(&[Line::Delete(&Deletion::Message { id: 2 })])
                .unwrap();
        }
        let (journal, replay) = dir.open_journal();
        assert!(replay.holds_deleted);
        let store = Store::new(Some(journal), replay, &[], Limits::default());
        until_the_journal_lacks(&dir, "secret text");
        let texts: Vec<String> = all(&store, "c").iter().map(|m| m.text.clone()).collect();
        assert_eq!(texts, ["kept text"]);
        assert_eq!(post(&store, "c", "next"), 3);
    }

    #[test]
    fn concurrent_posts_over_a_journal_are_durable_and_replay_in_id_order() {
        let dir = TempDir::new();
        let store = Arc::new(dir.store(Limits::default()));
        let got = post_from_threads(&store, 8, 100, 4);
        store.close();
        drop(store);

        let (journal, replay) = dir.open_journal();
        assert_eq!(replay.last_id, 800);
        let replayed: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(replayed, (1..=800).collect::<Vec<u64>>());
        assert!(
            replay
                .messages
                .windows(2)
                .all(|w| w[0].place.offset < w[1].place.offset),
            "lines lie in the file in id order"
        );
        let store = Store::new(Some(journal), replay, &[], Limits::default());
        for (id, target, text) in got.iter().flatten() {
            let m = store
                .find(target, *id)
                .expect("every acknowledged post replays");
            assert_eq!(&m.text, text);
        }
        assert_eq!(post(&store, "c0", "after the restart"), 801);
    }

    #[test]
    fn racing_retries_with_one_idempotency_key_make_one_message() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let retry = Draft {
                        idempotency_key: Some("key-1".into()),
                        ..draft("a", "once")
                    };
                    store.post(retry).expect("a retry is answered")
                })
            })
            .collect();
        let posted: Vec<Posted> = handles
            .into_iter()
            .map(|h| h.join().expect("a posting thread panicked"))
            .collect();
        assert!(posted.iter().all(|p| p.message.id == 1));
        assert_eq!(posted.iter().filter(|p| !p.repeated).count(), 1);
        assert_eq!(store.last_id(), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_retried_reply_is_answered_with_its_message_after_what_it_answered_has_gone() {
        let store = Store::in_memory(&[], Limits::default());
        let question = post(&store, "c", "question");
        let reply = |text: &str| Draft {
            reply_to: Some(question),
            idempotency_key: Some("answer-1".into()),
            ..draft("c", text)
        };
        let first = store.post(reply("answer")).expect("the reply is posted");
        store
            .delete_message(question)
            .expect("the question is deleted");
        let retry = store.post(reply("answer")).expect("the retry is answered");
        assert!(retry.repeated);
        assert_eq!(retry.message.id, first.message.id);
        let other = store.post(reply("another answer"));
        assert!(matches!(other, Err(Error::Conflict(_))), "{other:?}");
        // Without the key, or once the reply is gone too, a reply to it is refused.
        let unkeyed = store.post(Draft {
            reply_to: Some(question),
            ..draft("c", "answer")
        });
        assert!(matches!(unkeyed, Err(Error::BadRequest(_))), "{unkeyed:?}");
        store
            .delete_message(first.message.id)
            .expect("the reply is deleted");
        let gone = store.post(reply("answer"));
        assert!(matches!(gone, Err(Error::BadRequest(_))), "{gone:?}");
    }

    /// A reader's page comes only once its position is in the journal: while the journal
    /// refuses writes, a read by the reader (or a stream's mark) is refused with 507 and the
    /// position stays; once the disk takes writes again the reader reads on from there.
    #[test]
    fn a_reader_position_the_journal_refuses_is_not_moved_in_memory() {
        let dir = TempDir::new();
        let (mut journal, replay) = dir.open_journal();
        let refuse = journal.inject_faults();
        let store = Store::new(Some(journal), replay, &[], Limits::default());
        for i in 1..=3 {
            post(&store, "c", &format!("text {i}"));
        }
        let query = Fetch {
            target: "c".into(),
            limit: 10,
            reader: Some("r".into()),
            ..Fetch::default()
        };
        refuse.store(true, Ordering::SeqCst);
        let refused = store.fetch_unread(&query, None).err().expect("refused");
        assert_eq!(refused.status(), 507, "{refused}");
        let marked = store.mark_read("r", "c", 2).unwrap_err();
        assert_eq!(marked.status(), 507, "{marked}");
        assert_eq!(store.position("r", "c"), 0);
        refuse.store(false, Ordering::SeqCst);
        assert_eq!(ids(&store.fetch(&query, None).messages), [1, 2, 3]);
        assert_eq!(store.position("r", "c"), 3);
        drop(store);
        let (_, replay) = dir.open_journal();
        let positions: Vec<(String, u64)> = replay
            .positions
            .iter()
            .map(|p| (p.reader.clone(), p.id))
            .collect();
        assert_eq!(positions, [("r".to_string(), 3)]);
    }

    /// A channel's deletion forgets its readers' positions, in memory (they no longer count
    /// against `MAX_POSITIONS`) and on disk: the compaction the deletion starts writes them
    /// back no more, so what is posted there next is read from its start after a restart too.
    /// (Replay of the deletion's own line is `journal`'s test.)
    #[test]
    fn a_deleted_channel_takes_its_readers_positions_with_it() {
        let dir = TempDir::new();
        let reading = |target: &str| Fetch {
            target: target.into(),
            limit: 10,
            reader: Some("r".into()),
            ..Fetch::default()
        };
        let store = dir.store(Limits::default());
        for i in 1..=3 {
            post(&store, "gone", &format!("text {i}"));
        }
        post(&store, "kept", "text");
        store.fetch(&reading("gone"), None);
        store.fetch(&reading("kept"), None);
        store.delete_channel("gone").unwrap();
        assert_eq!(store.position("r", "gone"), 0);
        assert_eq!(store.position("r", "kept"), 4);
        assert_eq!(lock(&store.state).position_count, 1);
        store.compact_now().unwrap();
        drop(store);
        let store = dir.store(Limits::default());
        assert_eq!(store.position("r", "gone"), 0);
        assert_eq!(store.position("r", "kept"), 4);
        let new = post(&store, "gone", "new history");
        assert_eq!(ids(&store.fetch(&reading("gone"), None).messages), [new]);
    }

    /// Reads by one reader at once never get the same message twice, nor miss one: a read
    /// whose position another moved while it took its page takes it again. Each position is
    /// synced to the journal, so reads overlap while one waits for the disk.
    #[test]
    fn concurrent_reads_by_one_reader_share_its_messages_out() {
        let dir = TempDir::new();
        let store = Arc::new(dir.store(Limits::default()));
        for i in 0..300 {
            post(&store, "c", &format!("text {i}"));
        }
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let query = Fetch {
                        target: "c".into(),
                        limit: 7,
                        reader: Some("r".into()),
                        ..Fetch::default()
                    };
                    let mut got = Vec::new();
                    loop {
                        let page = store.fetch(&query, None);
                        if page.messages.is_empty() {
                            return got;
                        }
                        got.extend(ids(&page.messages));
                    }
                })
            })
            .collect();
        let mut all: Vec<u64> = readers
            .into_iter()
            .flat_map(|h| h.join().expect("a reading thread panicked"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=300).collect::<Vec<u64>>());
        assert_eq!(store.position("r", "c"), 300);
    }

    #[test]
    fn past_max_positions_a_new_reader_is_refused_and_a_known_one_reads_on() {
        let store = Store::in_memory(&[], Limits::default());
        post(&store, "c", "one");
        for i in 0..MAX_POSITIONS {
            assert!(store.admit_reader(Some(&format!("r{i}")), "c").is_ok());
            store.mark_read(&format!("r{i}"), "c", 1).unwrap();
        }
        let refused = store.admit_reader(Some("newcomer"), "c");
        assert!(matches!(refused, Err(Error::BadRequest(_))), "{refused:?}");
        assert!(
            store.admit_reader(Some("r7"), "d").is_err(),
            "a known reader on a new channel"
        );
        assert!(store.admit_reader(Some("r7"), "c").is_ok());
        assert!(store.admit_reader(None, "c").is_ok());
        store.mark_read("r7", "c", 2).unwrap();
        assert!(
            store.admit_reader(Some("newcomer"), "c").is_err(),
            "moving one adds none"
        );
    }

    #[test]
    fn a_channel_emptied_or_thinned_gives_back_its_room() {
        let limits = Limits {
            retention_max_age_secs: 3600.0,
            ..Limits::default()
        };
        let store = Store::in_memory(&[], limits);
        for _ in 0..1000 {
            post(&store, "gone", "x");
            post(&store, "aged", "x");
        }
        let room = |store: &Store, c: &str| lock(&store.state).channels[c].messages.capacity();
        assert!(room(&store, "gone") >= 1000);
        store.delete_channel("gone").unwrap();
        assert!(room(&store, "gone") <= 16, "{}", room(&store, "gone"));
        // Age retention thins a channel to its newest ten.
        for m in lock(&store.state)
            .channels
            .get_mut("aged")
            .unwrap()
            .messages
            .iter_mut()
            .take(990)
        {
            m.ts -= 7200.0;
        }
        store.compact_now().unwrap();
        assert_eq!(all(&store, "aged").len(), 10);
        assert!(room(&store, "aged") <= 16, "{}", room(&store, "aged"));
    }

    #[test]
    fn retention_keeps_the_newest_messages_of_each_channel() {
        let limits = Limits {
            retention_max_messages: 3,
            ..Limits::default()
        };
        let store = Store::in_memory(&[], limits);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..10usize {
            a.push(post(&store, "a", &format!("a{i}")));
            if i < 2 {
                b.push(post(&store, "b", &format!("b{i}")));
            }
            // A channel never holds more than its limit, whenever the journal is rewritten.
            assert_eq!(
                ids(&all(&store, "a")),
                a[i.saturating_sub(2)..],
                "after post {i}"
            );
        }
        store.compact_now().expect("retention applies");
        assert_eq!(ids(&all(&store, "a")), a[7..]);
        assert_eq!(
            ids(&all(&store, "b")),
            b,
            "a quiet channel keeps its messages"
        );
        assert!(store.find("a", a[0]).is_none());
        assert_eq!(store.len(), 5);
        assert_eq!(
            store.summaries(),
            vec![("a".to_string(), a[9], 3), ("b".to_string(), b[1], 2)]
        );
        assert_eq!(post(&store, "a", "next"), 13, "ids go on past dropped ones");
    }

    #[test]
    fn retention_by_age_drops_old_messages_from_memory_and_the_journal() {
        let dir = TempDir::new();
        {
            let (mut journal, _) = dir.open_journal();
            let m = |id, age: f64, text: &str| Message {
                id,
                ts: now() - age,
                target: "a".into(),
                sender: "claude".into(),
                reply_to: None,
                text: text.into(),
            };
            journal
                .append(&[
                    m(1, 7200.0, "old one"),
                    m(2, 7200.0, "old two"),
                    m(3, 60.0, "recent three"),
                ])
                .expect("the journal takes the messages");
        }
        let limits = Limits {
            retention_max_age_secs: 3600.0,
            ..Limits::default()
        };
        let store = dir.store(limits);
        assert_eq!(ids(&all(&store, "a")), vec![3]);
        assert_eq!(store.len(), 1);
        assert_eq!(post(&store, "a", "new four"), 4);
        store.compact_now().expect("the journal is rewritten");
        store.close();
        drop(store);

        let text = dir.journal_text();
        assert!(
            !text.contains("old one") && !text.contains("old two"),
            "{text}"
        );
        let (_, replay) = dir.open_journal();
        let replayed: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(replayed, vec![3, 4]);
        assert_eq!(replay.last_id, 4);
    }

    #[test]
    fn a_channels_version_changes_with_what_its_pages_show_and_never_repeats() {
        let dir = TempDir::new();
        let limits = Limits {
            retention_max_messages: 2,
            ..Limits::default()
        };
        let store = dir.store(limits);
        let mut seen = vec![store.version("a")];
        let mut changed = |store: &Store, what: &str| {
            let v = store.version("a");
            assert!(
                !seen.contains(&v),
                "{what} gave version {v} again: {seen:?}"
            );
            seen.push(v);
        };
        let first = post(&store, "a", "one");
        changed(&store, "a post");
        let page = |store: &Store| {
            let query = Fetch {
                target: "a".into(),
                since_id: 0,
                before_id: None,
                limit: 10,
                newest: true,
                reader: None,
                max_text_bytes: None,
            };
            store.fetch_unread(&query, None).unwrap().version()
        };
        assert_eq!(page(&store), store.version("a"), "a page says its version");
        post(&store, "b", "elsewhere");
        assert_eq!(page(&store), store.version("a"), "another channel's post");
        post(&store, "a", "two");
        changed(&store, "a post");
        // The post that takes the channel past its limit drops the oldest, in one change.
        post(&store, "a", "three");
        changed(&store, "a post that retention follows");
        assert_eq!(all(&store, "a").len(), 2, "retention dropped the oldest");
        assert!(store.find("a", first).is_none());
        let kept = store.version("a");
        store.compact_now().expect("the journal compacts");
        assert_eq!(store.version("a"), kept, "a compaction changes no page");
        let last = all(&store, "a").last().expect("a message is kept").id;
        store.delete_message(last).expect("the message is deleted");
        changed(&store, "a deletion");
        store.delete_channel("a").expect("the channel is emptied");
        changed(&store, "emptying the channel");
        post(&store, "a", "again");
        changed(&store, "a post to the emptied channel");
    }

    #[test]
    fn posts_made_while_a_compaction_runs_survive_it() {
        let dir = TempDir::new();
        // No cache: every text is read back from the journal at its (relocated) place.
        let limits = Limits {
            cache_bytes: 0,
            ..Limits::default()
        };
        let store = Arc::new(dir.store(limits));
        let before: Vec<u64> = (0..5)
            .map(|i| post(&store, "a", &format!("before {i}")))
            .collect();
        store
            .delete_message(before[0])
            .expect("the message is deleted");
        // The deletion started a compaction of what was kept then. Holding its handle keeps
        // the posts below from installing it, as they do not while it is still writing.
        let running = lock(&store.commit)
            .compaction
            .take()
            .expect("the deletion started a compaction");
        let during = post_from_threads(&store, 4, 25, 2);
        assert!(
            dir.journal_text().contains("before 0"),
            "the compaction is not installed yet"
        );
        lock(&store.commit).compaction = Some(running);
        store.compact_now().expect("the compaction installs");
        assert!(!dir.journal_text().contains("before 0"), "it was compacted");

        let check = |store: &Store| {
            let kept = all(store, "a");
            assert_eq!(ids(&kept), before[1..]);
            for (m, i) in kept.iter().zip(1..) {
                assert_eq!(m.text, format!("before {i}"));
            }
            for (id, target, text) in during.iter().flatten() {
                let m = store
                    .find(target, *id)
                    .expect("a post made meanwhile is kept");
                assert_eq!(&m.text, text);
            }
            assert_eq!(store.len(), 104);
        };
        check(&store);
        store.close();
        drop(store);

        let (journal, replay) = dir.open_journal();
        let replayed: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(replayed, (2..=105).collect::<Vec<u64>>());
        check(&Store::new(Some(journal), replay, &[], limits));
    }

    #[test]
    fn close_wakes_every_waiter() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let head = post(&store, "a", "one");
        let far = Instant::now() + Duration::from_secs(3600);
        let (tx, rx) = mpsc::channel();
        type Wait = fn(&Store, u64, Instant) -> usize;
        let waits: [(&str, Wait); 4] = [
            ("fetch a", |s, head, far| {
                let q = Fetch {
                    target: "a".into(),
                    since_id: head,
                    before_id: None,
                    limit: 10,
                    ..Fetch::default()
                };
                s.fetch(&q, Some(far)).messages.len()
            }),
            ("fetch nowhere", |s, _, far| {
                let q = Fetch {
                    target: "nowhere".into(),
                    limit: 10,
                    ..Fetch::default()
                };
                s.fetch(&q, Some(far)).messages.len()
            }),
            ("wait_after nowhere", |s, _, far| {
                s.wait_after("nowhere", 0, 10, far).len()
            }),
            ("wait_changes a", |s, head, far| {
                s.wait_changes("a", head, 0, 10, far).messages.len()
            }),
        ];
        for (name, wait) in waits {
            let (store, tx) = (Arc::clone(&store), tx.clone());
            thread::spawn(move || tx.send((name, wait(&store, head, far))));
        }
        // A parked waiter holds a clone of the condition variable it waits on, and parks
        // before it lets go of the index's lock: seen under that lock, it is waiting.
        let parked = Instant::now() + PATIENCE;
        loop {
            {
                let state = lock(&store.state);
                let on_a = Arc::strong_count(&state.channels["a"].changed) - 1;
                let on_created = Arc::strong_count(&state.created) - 1;
                if on_a == 2 && on_created == 2 {
                    break;
                }
            }
            assert!(Instant::now() < parked, "the waiters did not park");
            thread::sleep(Duration::from_millis(5));
        }
        store.close();
        let mut woken: Vec<&str> = (0..4)
            .map(|_| {
                let (name, got) = rx.recv_timeout(PATIENCE).expect("a waiter woke on close");
                assert_eq!(got, 0, "{name} returned nothing new");
                name
            })
            .collect();
        woken.sort_unstable();
        assert_eq!(
            woken,
            [
                "fetch a",
                "fetch nowhere",
                "wait_after nowhere",
                "wait_changes a"
            ]
        );
        assert!(matches!(
            store.post(draft("a", "late")),
            Err(Error::Storage(_))
        ));
        assert_eq!(store.channel_entries(), 1, "waits created no channel");
    }

    #[test]
    fn pages_keep_ids_head_id_and_more_right() {
        let store = Store::in_memory(&[], Limits::default());
        let mut a = Vec::new();
        for i in 0..10 {
            // Every text of "a" is 9 bytes; "b" interleaves so ids of "a" are not contiguous.
            a.push(post(&store, "a", &format!("a-text-{i:02}")));
            post(&store, "b", "interleaved");
        }
        let head = a[9];
        let fetch = |target: &str, since_id, limit, newest, max_text_bytes| {
            let q = Fetch {
                target: target.into(),
                since_id,
                before_id: None,
                limit,
                newest,
                reader: None,
                max_text_bytes,
            };
            let page = store.fetch(&q, None);
            (ids(&page.messages), page.head_id, page.more)
        };
        // Oldest first, a page at a time.
        assert_eq!(fetch("a", 0, 4, false, None), (a[..4].to_vec(), head, true));
        assert_eq!(
            fetch("a", a[3], 4, false, None),
            (a[4..8].to_vec(), head, true)
        );
        assert_eq!(
            fetch("a", a[7], 4, false, None),
            (a[8..].to_vec(), head, false)
        );
        assert_eq!(fetch("a", head, 4, false, None), (vec![], head, false));
        // Newest: the last `limit` after `since_id`, ascending.
        assert_eq!(fetch("a", 0, 3, true, None), (a[7..].to_vec(), head, false));
        assert_eq!(
            fetch("a", a[8], 3, true, None),
            (a[9..].to_vec(), head, false)
        );
        assert_eq!(fetch("a", 0, 20, true, None), (a.clone(), head, false));
        // Cut by text bytes: ends before the message that would pass the bound.
        assert_eq!(
            fetch("a", 0, 10, false, Some(27)),
            (a[..3].to_vec(), head, true)
        );
        assert_eq!(
            fetch("a", 0, 10, false, Some(26)),
            (a[..2].to_vec(), head, true)
        );
        assert_eq!(
            fetch("a", 0, 10, false, Some(1)),
            (a[..1].to_vec(), head, true),
            "the first message always comes"
        );
        assert_eq!(
            fetch("a", a[6], 10, false, Some(27)),
            (a[7..].to_vec(), head, false),
            "a bound the rest fits exactly cuts nothing"
        );
        assert_eq!(
            fetch("a", 0, 3, true, Some(18)),
            (a[8..].to_vec(), head, false),
            "a cut newest page keeps its newest part"
        );
        assert_eq!(
            fetch("a", 0, 3, true, Some(1)),
            (a[9..].to_vec(), head, false),
            "the newest message always comes"
        );
        assert_eq!(fetch("nowhere", 0, 10, false, None), (vec![], 0, false));

        // Older history: the page before an id, newest or oldest part, within `since_id`.
        let before = |since_id, before_id, limit, newest| {
            let q = Fetch {
                target: "a".into(),
                since_id,
                before_id: Some(before_id),
                limit,
                newest,
                ..Fetch::default()
            };
            let page = store.fetch(&q, None);
            (ids(&page.messages), page.head_id, page.more)
        };
        assert_eq!(before(0, a[7], 3, true), (a[4..7].to_vec(), head, true));
        assert_eq!(before(0, a[7], 3, false), (a[..3].to_vec(), head, true));
        assert_eq!(before(0, a[2], 5, true), (a[..2].to_vec(), head, true));
        assert_eq!(before(a[3], a[7], 9, true), (a[4..7].to_vec(), head, true));
        assert_eq!(before(a[5], a[4], 9, true), (vec![], head, false));
        assert_eq!(before(0, a[0], 9, true), (vec![], head, false));
        assert_eq!(before(0, head + 1, 2, true), (a[8..].to_vec(), head, false));

        // A reader's position stands in for `since_id` and moves past each page.
        let read = |limit| {
            let q = Fetch {
                target: "a".into(),
                limit,
                reader: Some("codex".into()),
                ..Fetch::default()
            };
            let page = store.fetch(&q, None);
            (ids(&page.messages), page.more)
        };
        assert_eq!(read(4), (a[..4].to_vec(), true));
        assert_eq!(read(4), (a[4..8].to_vec(), true));
        assert_eq!(store.position("codex", "a"), a[7]);
        assert_eq!(read(4), (a[8..].to_vec(), false));
        assert_eq!(read(4), (vec![], false));
        assert_eq!(store.position("codex", "a"), head);
    }

    #[test]
    fn text_byte_cuts_count_texts_not_journal_lines_across_compaction_and_restart() {
        let dir = TempDir::new();
        let limits = Limits {
            cache_bytes: 0,
            ..Limits::default()
        };
        let store = dir.store(limits);
        // Quotes, newlines and non-ASCII make a journal line longer than its text.
        let texts = ["\"é\"\n\\", "x\ty", "✓✓✓✓", "\"\"\"\"", "plain text"];
        let posted: Vec<u64> = texts.iter().map(|t| post(&store, "a", t)).collect();
        let doomed = post(&store, "a", "deleted to force a compaction");
        let bound = texts[..3].iter().map(|t| t.len()).sum::<usize>();
        let cut = |store: &Store| {
            let q = Fetch {
                target: "a".into(),
                limit: 10,
                max_text_bytes: Some(bound),
                ..Fetch::default()
            };
            let page = store.fetch(&q, None);
            let texts: Vec<String> = page.messages.iter().map(|m| m.text.clone()).collect();
            (ids(&page.messages), texts, page.more)
        };
        let expected = (
            posted[..3].to_vec(),
            texts[..3].iter().map(|t| t.to_string()).collect(),
            true,
        );
        assert_eq!(cut(&store), expected, "as posted");
        store
            .delete_message(doomed)
            .expect("the message is deleted");
        store.compact_now().expect("the compaction installs");
        assert_eq!(cut(&store), expected, "after the compaction");
        store.close();
        drop(store);
        assert_eq!(cut(&dir.store(limits)), expected, "after a restart");
    }

    #[test]
    fn hooks_are_told_after_the_commit_lock_is_released_and_still_in_id_order() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let told = Arc::new(Mutex::new(Vec::new()));
        let saw_the_next_post = Arc::new(AtomicBool::new(false));
        let (began, hook_began) = mpsc::channel();
        let began = Mutex::new(began);
        let (weak, order, saw) = (
            Arc::downgrade(&store),
            Arc::clone(&told),
            Arc::clone(&saw_the_next_post),
        );
        store.on_publish(Box::new(move |m| {
            lock(&order).push(m.id);
            if m.id != 1 {
                return;
            }
            // While message 1's hook runs, message 2 can be written and made visible.
            let _ = lock(&began).send(());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let store = weak.upgrade().expect("the store outlives its posts");
                if !store.after("c", 1, 10).is_empty() {
                    saw.store(true, Ordering::SeqCst);
                    return;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }));
        let first = {
            let store = Arc::clone(&store);
            thread::spawn(move || post(&store, "c", "one"))
        };
        hook_began
            .recv_timeout(Duration::from_secs(10))
            .expect("message 1's hook runs");
        assert_eq!(post(&store, "c", "two"), 2);
        assert_eq!(first.join().expect("the first poster finishes"), 1);
        assert!(
            saw_the_next_post.load(Ordering::SeqCst),
            "message 2 was committed while message 1's hook ran"
        );
        assert_eq!(
            *lock(&told),
            vec![1, 2],
            "hooks hear of messages in id order"
        );
    }

    /// Plays the poster writing a batch: marks the queue as being written and waits, holding
    /// the commit lock, for a post from another thread to be queued.
    fn queued_while_writing(store: &Arc<Store>) -> (MutexGuard<'_, Committer>, Poster) {
        store.queue.writing.store(true, Ordering::Relaxed);
        let writing = lock(&store.commit);
        let (sent, got) = mpsc::channel();
        let thread = {
            let store = Arc::clone(store);
            thread::spawn(move || sent.send(store.post(draft("c", "queued")).map(|p| p.message.id)))
        };
        let deadline = Instant::now() + PATIENCE;
        while lock(&store.queue.slots).is_empty() {
            assert!(Instant::now() < deadline, "the post was not queued");
            thread::yield_now();
        }
        (writing, Poster { thread, got })
    }

    /// No batch is being written, and channel `c` holds the messages `expected`.
    fn assert_settled_with(store: &Store, expected: &[u64]) {
        assert!(
            !store.queue.writing.load(Ordering::Relaxed),
            "no batch is being written"
        );
        assert_eq!(ids(&all(store, "c")), expected);
    }

    /// A post made on another thread, and where its id arrives.
    struct Poster {
        thread: thread::JoinHandle<Result<(), mpsc::SendError<Result<u64, Error>>>>,
        got: mpsc::Receiver<Result<u64, Error>>,
    }

    #[test]
    fn a_post_in_another_threads_batch_is_answered_without_the_commit_lock() {
        for yields in [0, u32::MAX] {
            let mut store = Store::in_memory(&[], Limits::default());
            store.commit_yields = yields;
            let store = Arc::new(store);
            let (mut writing, poster) = queued_while_writing(&store);
            let batch = mem::take(&mut *lock(&store.queue.slots));
            assert_eq!(store.commit_batch(&mut writing, &batch).len(), 1);
            store.queue.hand_over(batch);
            let answer = poster.got.recv_timeout(Duration::from_secs(10));
            drop(writing);
            poster.thread.join().expect("the poster finishes").ok();
            assert_eq!(
                answer.map(Result::ok),
                Ok(Some(1)),
                "answered (yielding {yields} times) while the commit lock was held"
            );
            assert_settled_with(&store, &[1]);
        }
    }

    #[test]
    fn every_post_is_answered_when_posters_sleep_at_once_or_look_first() {
        for yields in [0, 1, COMMIT_YIELDS] {
            let mut store = Store::in_memory(&[], Limits::default());
            store.commit_yields = yields;
            let store = Arc::new(store);
            let (sent, got) = mpsc::channel();
            let posting = {
                let store = Arc::clone(&store);
                thread::spawn(move || sent.send(post_from_threads(&store, 16, 200, 3)))
            };
            // A poster nobody wakes would wait forever: the deadline turns that into a failure.
            let posted = got.recv_timeout(Duration::from_secs(120));
            let posted = posted.unwrap_or_else(|_| panic!("a post was never answered ({yields})"));
            posting.join().expect("the posting thread finishes").ok();
            let mut ids: Vec<u64> = posted.iter().flatten().map(|(id, ..)| *id).collect();
            ids.sort_unstable();
            assert_eq!(
                ids,
                (1..=3200).collect::<Vec<u64>>(),
                "yielding {yields} times"
            );
            assert!(!store.queue.writing.load(Ordering::Relaxed));
        }
    }

    #[test]
    fn a_post_whose_batch_ended_without_writing_it_is_answered_with_an_error() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let (writing, poster) = queued_while_writing(&store);
        // What a panic while writing the batch leaves: it is handed over unwritten.
        let batch = mem::take(&mut *lock(&store.queue.slots));
        store.queue.hand_over(batch);
        let answer = poster.got.recv_timeout(Duration::from_secs(10));
        drop(writing);
        poster.thread.join().expect("the poster finishes").ok();
        assert!(
            matches!(answer, Ok(Err(Error::Storage(ref why))) if why.contains("lost")),
            "{answer:?}"
        );
        assert_settled_with(&store, &[]);
    }

    #[test]
    fn a_post_queued_behind_a_batch_writes_the_next_one() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        let (writing, poster) = queued_while_writing(&store);
        // The batch being written holds nothing: the queued post's poster, woken, writes the
        // next one once the commit lock is free.
        store.queue.hand_over(Vec::new());
        drop(writing);
        let answer = poster.got.recv_timeout(Duration::from_secs(10));
        poster.thread.join().expect("the poster finishes").ok();
        assert_eq!(answer.map(Result::ok), Ok(Some(1)));
        assert_settled_with(&store, &[1]);
    }

    #[test]
    fn last_id_does_not_wait_for_a_batch_being_written() {
        let store = Arc::new(Store::in_memory(&[], Limits::default()));
        post(&store, "c", "one");
        let writing = lock(&store.commit);
        let (sent, got) = mpsc::channel();
        let reader = {
            let store = Arc::clone(&store);
            thread::spawn(move || sent.send(store.last_id()))
        };
        let last = got.recv_timeout(Duration::from_secs(10));
        drop(writing);
        reader.join().expect("the reader finishes").ok();
        assert_eq!(last, Ok(1), "read while the commit lock was held");
    }

    #[test]
    fn retention_looks_at_the_replayed_history_with_the_first_post() {
        let dir = TempDir::new();
        {
            let store = dir.store(Limits::default());
            for i in 0..6 {
                post(&store, "a", &format!("a{i}"));
            }
            store.close();
        }
        let limits = Limits {
            retention_max_messages: 2,
            ..Limits::default()
        };
        let store = dir.store(limits);
        assert_eq!(
            ids(&all(&store, "a")),
            vec![5, 6],
            "replay applies retention"
        );
        assert_eq!(dir.journal_text().lines().count(), 6);
        post(&store, "a", "next");
        store.close();
        let kept: Vec<u64> = dir
            .journal_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Message>(l).ok())
            .map(|m| m.id)
            .collect();
        assert_eq!(
            kept,
            vec![6, 7],
            "the first post compacted the replayed history"
        );
    }

    #[test]
    fn waits_on_unknown_channels_create_no_channel_entry() {
        let store = Store::in_memory(&[], Limits::default());
        let soon = || Instant::now() + Duration::from_millis(1);
        for i in 0..20 {
            let target = format!("ghost-{i}");
            let query = Fetch {
                target: target.clone(),
                limit: 10,
                ..Fetch::default()
            };
            assert!(store.fetch(&query, Some(soon())).messages.is_empty());
            assert!(store.wait_after(&target, 0, 10, soon()).is_empty());
            let changes = store.wait_changes(&target, 0, 0, 10, soon());
            assert!(changes.messages.is_empty());
        }
        assert_eq!(store.channel_entries(), 0, "a read never creates a channel");
        post(&store, "real", "x");
        assert_eq!(store.channel_entries(), 1);
    }

    #[test]
    fn rest_pages_fill_the_cache_so_a_hot_message_is_read_from_the_journal_once() {
        let dir = TempDir::new();
        let ids: Vec<u64> = {
            let store = dir.store(Limits::default());
            let ids = (0..3)
                .map(|i| post(&store, "a", &format!("text {i}")))
                .collect();
            store.close();
            ids
        };
        // After a restart nothing is cached; reading the page as JSON caches every message.
        let store = dir.store(Limits::default());
        let q = Fetch {
            target: "a".into(),
            limit: 10,
            ..Fetch::default()
        };
        assert!(ids
            .iter()
            .all(|id| lock(&store.state).texts.get_held(*id).is_none()));
        let first = store.page_json(store.fetch_unread(&q, None).unwrap());
        assert_eq!(first.len(), 3);
        for (id, json) in ids.iter().zip(&first) {
            let held = lock(&store.state).texts.get_held(*id);
            assert_eq!(held.and_then(|h| h.json).as_deref(), Some(&**whole(json)));
        }
        // The next read is served from those same strings, not made again.
        let again = store.page_json(store.fetch_unread(&q, None).unwrap());
        assert!(first
            .iter()
            .zip(&again)
            .all(|(a, b)| Arc::ptr_eq(whole(a), whole(b))));
        // Readers of messages find them in the cached JSON.
        let texts: Vec<String> = all(&store, "a").iter().map(|m| m.text.clone()).collect();
        assert_eq!(texts, ["text 0", "text 1", "text 2"]);
    }

    #[test]
    fn escaped_pages_are_made_once_with_a_journal_and_for_each_read_without() {
        let dir = TempDir::new();
        let q = Fetch {
            target: "a".into(),
            limit: 10,
            ..Fetch::default()
        };
        let texts = ["plain", "quote \" and \\ and \n", "sep \u{2028} é"];
        let journaled = dir.store(Limits::default());
        let memory = Store::in_memory(&[], Limits::default());
        for store in [&journaled, &memory] {
            for text in texts {
                post(store, "a", text);
            }
            let first = store.page_json_escaped(store.fetch_unread(&q, None).unwrap());
            assert_eq!(first.len(), 3);
            for (json, escaped) in &first {
                // The escaped form is the wire JSON as a string's inside: quoted, it reads back
                // as that JSON.
                assert_eq!(**escaped, json_string::escaped(json));
                let quoted: String = serde_json::from_str(&format!("\"{escaped}\"")).unwrap();
                assert_eq!(&quoted, &**json);
            }
            let again = store.page_json_escaped(store.fetch_unread(&q, None).unwrap());
            let same = first
                .iter()
                .zip(&again)
                .map(|((_, a), (_, b))| Arc::ptr_eq(a, b))
                .collect::<Vec<_>>();
            if std::ptr::eq(store, &journaled) {
                assert_eq!(same, [true; 3], "made once and cached");
            } else {
                assert_eq!(same, [false; 3], "an unbounded cache keeps no second copy");
            }
            // Plain pages share the same wire JSON.
            let plain = store.page_json(store.fetch_unread(&q, None).unwrap());
            assert!(plain
                .iter()
                .zip(&first)
                .all(|(a, (b, _))| Arc::ptr_eq(whole(a), b)));
        }
    }

    #[test]
    fn a_long_text_posted_is_sent_from_the_journal_once_its_json_is_not_held() {
        let dir = TempDir::new();
        // A cache too small for the long texts: of them, it holds only that they may lie.
        let store = dir.store(Limits {
            cache_bytes: 64 * 1024,
            ..Limits::default()
        });
        let long = "long \" \\ \u{e9} \n".repeat(10_000);
        let plain = post(&store, "a", &long);
        let keyed = store
            .post(Draft {
                idempotency_key: Some("key-1".into()),
                reply_to: Some(plain),
                ..draft("a", &long)
            })
            .unwrap()
            .message
            .id;
        post(&store, "a", &format!("{long}\u{2029}"));
        post(&store, "a", "short");
        let expected = wire_of_all(&store, "a");
        // No line was read whole, yet the two whose lines are their JSON are sent from the
        // file, and every message is the same bytes.
        let sent = page_of_a(&store);
        let lying: Vec<bool> = sent
            .iter()
            .map(|s| matches!(s, SentJson::Lying(_)))
            .collect();
        assert_eq!(lying, [true, true, false, false]);
        assert_eq!(sent.len(), expected.len());
        for (sent, want) in sent.iter().zip(&expected) {
            assert_eq!(sent_bytes(sent), *want);
        }
        assert!(
            page_of_a(&store)[1..2]
                .iter()
                .all(|s| matches!(s, SentJson::Lying(_))),
            "message {keyed}"
        );
    }

    /// The wire JSON of every message of `target`, as `message::wire_json` makes it.
    fn wire_of_all(store: &Store, target: &str) -> Vec<String> {
        all(store, target)
            .iter()
            .map(|m| (*crate::message::wire_json(m)).clone())
            .collect()
    }

    /// The first ten messages of channel `a` as a REST page sends them.
    fn page_of_a(store: &Store) -> Vec<SentJson> {
        let q = Fetch {
            target: "a".into(),
            limit: 10,
            ..Fetch::default()
        };
        store.page_json(store.fetch_unread(&q, None).unwrap())
    }

    /// The wire JSON of a message sent from memory.
    fn whole(sent: &SentJson) -> &WireJson {
        match sent {
            SentJson::Whole(json) => json,
            SentJson::Lying(_) => panic!("a message sent from memory"),
        }
    }

    /// What a reply sends of `sent`, its text read from the journal if it lies there.
    fn sent_bytes(sent: &SentJson) -> String {
        match sent {
            SentJson::Whole(json) => json.to_string(),
            SentJson::Lying(lying) => {
                use std::os::unix::fs::FileExt;
                let (file, offset, len) = lying.rest();
                let mut rest = vec![0; len];
                file.read_exact_at(&mut rest, offset).unwrap();
                format!("{}{}", lying.head, String::from_utf8(rest).unwrap())
            }
        }
    }

    #[test]
    fn a_long_text_read_once_is_then_sent_from_the_journal_as_it_lies() {
        let dir = TempDir::new();
        let long = "long \" \\ é ".repeat(10_000);
        let with_separator = format!("{long}\u{2028}");
        let ids: Vec<u64> = {
            let store = dir.store(Limits::default());
            let plain = post(&store, "a", &long);
            let keyed = store
                .post(Draft {
                    idempotency_key: Some("key-1".into()),
                    ..draft("a", &long)
                })
                .unwrap()
                .message
                .id;
            let separated = post(&store, "a", &with_separator);
            let short = post(&store, "a", "short");
            store.close();
            vec![plain, keyed, separated, short]
        };
        // A cache too small for the long texts: it keeps of them only whether they may lie.
        let small = Limits {
            cache_bytes: 64 * 1024,
            ..Limits::default()
        };
        let store = dir.store(small);
        let expected = wire_of_all(&store, "a");
        lock(&store.state).texts = Cache::new(small.cache_bytes);
        // The first read reads every line whole and learns which long texts may lie.
        let first = page_of_a(&store);
        assert!(first.iter().all(|s| matches!(s, SentJson::Whole(_))));
        let held = |id: u64| lock(&store.state).texts.get_held(id);
        for id in &ids[..2] {
            assert!(
                held(*id).is_some_and(|h| h.lies_ready && h.json.is_none()),
                "{id}"
            );
        }
        assert!(
            held(ids[2]).is_none(),
            "a text with a separator is escaped for each read"
        );
        assert!(held(ids[3]).is_some_and(|h| !h.lies_ready && h.json.is_some()));
        // The next sends the two from the journal, the same bytes.
        let again = page_of_a(&store);
        let lying: Vec<bool> = again
            .iter()
            .map(|s| matches!(s, SentJson::Lying(_)))
            .collect();
        assert_eq!(lying, [true, true, false, false]);
        for (sent, want) in first.iter().chain(&again).zip(expected.iter().cycle()) {
            assert_eq!(sent_bytes(sent), *want);
            assert_eq!(sent.len(), want.len());
        }
        // After a compaction the places moved; what is sent is still each message's JSON.
        store.compact_now().unwrap();
        let compacted = page_of_a(&store);
        assert_eq!(compacted.len(), 4);
        for (sent, want) in compacted.iter().zip(&expected) {
            assert_eq!(sent_bytes(sent), *want);
        }
    }
}
