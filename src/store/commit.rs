//! Group commit: how a post becomes a message. Each post is queued; one poster at a time (the
//! first to find no batch being written) takes the commit lock and writes every post queued so
//! far as one journal append (one fsync), checks their idempotency keys (so two retries racing
//! each other still make one message), gives them their ids in order (none past `MAX_ID`),
//! publishes them, and answers each poster. The others yield their processor a few times while
//! they look for their answer, then sleep until their own batch is handed over: a post is never
//! kept waiting behind the batch after its own, and most are answered without a sleep and a
//! wake-up each.

use super::{compactor::Pending, lock, Draft, Entry, Posted, Recorded, Store, LIES_FROM};
use crate::error::Error;
use crate::idempotency::{self, Keys};
use crate::index::Place;
use crate::journal::{Journal, Line};
use crate::message::{now, Encoded, Message, TextJson};
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

pub(super) struct Committer {
    pub(super) journal: Option<Journal>,
    pub(super) last_id: u64,
    /// Messages published since the journal was last compacted, for the retention check.
    pub(super) since_compaction: usize,
    /// When the journal was last rewritten (or the store opened).
    pub(super) compacted_at: Instant,
    /// Retention is yet to look at the replayed history, which it does with the first post.
    pub(super) retention_due: bool,
    /// Retention or a deletion removed messages that the journal still holds (a compaction
    /// that failed leaves this set, as it found it).
    pub(super) stale: bool,
    /// A compacted journal being written in the background.
    pub(super) compaction: Option<Arc<Pending>>,
    /// Idempotency keys of recent posts.
    pub(super) keys: Keys,
    /// A deletion left a text on disk that a compaction has yet to remove (set again when the
    /// compaction that was to remove it fails).
    pub(super) purge: bool,
    /// Compactions that failed since one was last installed.
    pub(super) failures: u32,
    /// While a failed compaction's back-off runs, until when: no post or retention starts one
    /// before then (a deletion does). `None` once one is installed.
    pub(super) retry_at: Option<Instant>,
    /// Whether a thread waits to try a failed compaction again when its back-off ends.
    pub(super) retrying: bool,
    /// The replay checkpoint of the last compacted journal being written in the background.
    pub(super) checkpointing: Option<JoinHandle<()>>,
}

impl Committer {
    /// Retention dropped messages `ids` from memory: their keys go with them (a retry of their
    /// posts makes them anew, as after a restart) and the journal, which still holds them, is
    /// to be rewritten.
    pub(super) fn dropped(&mut self, ids: &[u64]) {
        self.keys.forget(ids);
        self.stale |= !ids.is_empty();
    }

    /// Whether a failed compaction's back-off still runs.
    pub(super) fn held_off(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }
}

/// A post of the batch being committed that gets a new id.
struct Fresh {
    /// Its place in the batch.
    at: usize,
    message: Message,
    /// Its JSON, made once for the journal line, the cache and the reply.
    encoded: Encoded,
    key: Option<String>,
    /// `idempotency::digest` of what was posted, with a key (0 without: never compared).
    digest: u64,
    source: String,
}

/// A queued post and, once its batch is written, its outcome.
pub(super) struct Slot {
    /// Taken (not copied) into the message when the batch is written, with the text's JSON
    /// string as the poster received it, if it gave one.
    draft: Mutex<Option<(Draft, Option<TextJson>)>>,
    /// The outcome once the batch is written, and whether the poster sleeps on `changed`.
    standing: Mutex<Standing>,
    changed: Condvar,
}

#[derive(Default)]
struct Standing {
    outcome: Option<Result<Posted, Error>>,
    asleep: bool,
}

impl Slot {
    fn new(draft: Draft, text_json: Option<TextJson>) -> Slot {
        Slot {
            draft: Mutex::new(Some((draft, text_json))),
            standing: Mutex::new(Standing::default()),
            changed: Condvar::new(),
        }
    }

    /// Sets the post's outcome: a poster still looking sees it at once, one asleep is woken
    /// when the batch is handed over.
    fn finish(&self, outcome: Result<Posted, Error>) {
        lock(&self.standing).outcome = Some(outcome);
    }

    /// Wakes the poster if it sleeps, once `change` is made to its outcome. A poster still
    /// looking sees the change by itself, and waking a condition variable nobody waits on
    /// would still cost a system call.
    fn tell(&self, change: impl FnOnce(&mut Option<Result<Posted, Error>>)) {
        let mut standing = lock(&self.standing);
        change(&mut standing.outcome);
        let asleep = standing.asleep;
        drop(standing);
        if asleep {
            self.changed.notify_one();
        }
    }
}

/// The posts waiting for a batch, and whether a poster is writing one. Any queued poster that
/// finds no batch being written writes the next one (whichever is on a processor first, so a
/// busy relay seldom waits for a thread to be woken); the others look for their outcome, then
/// sleep until their own batch is written, never behind the next one. A batch handed over
/// wakes the first post queued since, if its poster sleeps, so a queued post always has a
/// poster on its way to writing it.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) slots: Mutex<Vec<Arc<Slot>>>,
    pub(super) writing: AtomicBool,
}

impl Queue {
    /// Whether this poster is to write the next batch: none was being written, and now it is.
    fn lead(&self) -> bool {
        // Read first: a failed exchange still takes the flag's cache line from the writer.
        !self.writing.load(Ordering::Relaxed)
            && self
                .writing
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Answers the posters of `batch`, written, and lets the next batch be written.
    #[cfg(test)]
    pub(super) fn hand_over(&self, batch: Vec<Arc<Slot>>) {
        drop(Handover { queue: self, batch });
    }
}

/// Hands a written batch over when dropped (even by a panic while writing it): answers its
/// posters, then lets the next batch be written.
struct Handover<'a> {
    queue: &'a Queue,
    batch: Vec<Arc<Slot>>,
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        for slot in &self.batch {
            slot.tell(|outcome| {
                outcome.get_or_insert_with(lost);
            });
        }
        self.queue.writing.store(false, Ordering::Release);
        if let Some(first) = lock(&self.queue.slots).first() {
            first.tell(|_| ());
        }
    }
}

/// The outcome of a post whose batch ended without giving it one (a panic while writing it).
fn lost() -> Result<Posted, Error> {
    Err(Error::Storage(
        "the post was lost before it was written".into(),
    ))
}

/// How many times a post whose batch another thread is writing gives up its processor before it
/// sleeps (see `Store::wait_for_batch`), when batches are not synced to disk. A synced batch
/// takes a millisecond or more, past any useful number of yields, which would only burn
/// processor time the posts queueing for the next batch need: with them, 16 connections
/// posting at fsync=always get about 9% fewer posts through; without fsync, a third more.
pub(super) const COMMIT_YIELDS: u32 = 64;

/// The largest message id handed out: 2^53 - 1, the largest integer that JavaScript (the web
/// page, and any client that reads JSON numbers as doubles) reads exactly, so that no client
/// answers or reads on from an id other than the one it was given. At a million posts a second
/// the ids last 285 years; past them a post is refused rather than given an id that wraps
/// around to 0 and so breaks the order replay needs.
pub(super) const MAX_ID: u64 = (1 << 53) - 1;

/// The text length from which a post sleeps at once while another poster writes a batch,
/// yielding no processor first: a batch holding such texts takes a millisecond or more to
/// write, and 16 connections posting 1 MiB texts spent a twelfth of the relay's processor time
/// yielding.
const YIELDS_UP_TO_TEXT: usize = 64 * 1024;

impl Store {
    /// Checks a draft, makes it durable and visible, and returns the stored message. Fails with
    /// 400 for a blank field or an unknown `reply_to`, 413 for a text over the limit, 409 for
    /// an idempotency key already used for another post, 507 when it cannot be persisted.
    pub(crate) fn post(&self, draft: Draft) -> Result<Posted, Error> {
        self.post_with_text_json(draft, None)
    }

    /// Posts like `post`, given the text's JSON string as the caller received it (a post's
    /// body holds one) when that is in the form `serde_json` writes (`json_string::decode`
    /// says whether it is): the message's JSON copies it instead of escaping the text again.
    pub(crate) fn post_with_text_json(
        &self,
        draft: Draft,
        text_json: Option<TextJson>,
    ) -> Result<Posted, Error> {
        let draft = self.validate(draft)?;
        // A large text's batch takes longer to write than any useful number of yields.
        let yields = match draft.text.len() {
            len if len >= YIELDS_UP_TO_TEXT => 0,
            _ => self.commit_yields,
        };
        let slot = Arc::new(Slot::new(draft, text_json));
        lock(&self.queue.slots).push(Arc::clone(&slot));
        if let Some(outcome) = self.wait_for_batch(&slot, yields) {
            return outcome;
        }
        let mut committer = lock(&self.commit);
        let handover = Handover {
            queue: &self.queue,
            batch: mem::take(&mut *lock(&self.queue.slots)),
        };
        let published = if handover.batch.is_empty() {
            // This post was in the batch just handed over.
            Vec::new()
        } else if self.is_closed() {
            for slot in &handover.batch {
                slot.finish(Err(Error::Storage("the relay is shutting down".into())));
            }
            Vec::new()
        } else {
            self.commit_batch(&mut committer, &handover.batch)
        };
        let hooks = lock(&self.hooks);
        drop(committer);
        // The batch's posters are answered, and the next batch may be written, before the
        // hooks and the recorder hear of this one.
        drop(handover);
        for recorded in &published {
            for hook in hooks.iter() {
                hook(&recorded.message);
            }
        }
        let recorder = lock(&self.recorder);
        drop(hooks);
        if let Some(record) = recorder.as_ref().filter(|_| !published.is_empty()) {
            record(&published);
        }
        drop(recorder);
        let outcome = lock(&slot.standing).outcome.take();
        outcome.unwrap_or_else(lost)
    }

    /// Waits for the queued post `slot` to be written by another poster's batch, and returns
    /// its outcome, or `None` when this poster is to write the next batch itself. It yields its
    /// processor and looks again up to `yields` times before it sleeps: under many posts at
    /// once, most are answered without a sleep, a wake-up and a thread switch each.
    fn wait_for_batch(&self, slot: &Slot, yields: u32) -> Option<Result<Posted, Error>> {
        let mut looks = 0;
        let mut standing = lock(&slot.standing);
        loop {
            if let Some(outcome) = standing.outcome.take() {
                return Some(outcome);
            }
            if self.queue.lead() {
                return None;
            }
            if looks < yields {
                looks += 1;
                drop(standing);
                thread::yield_now();
                standing = lock(&slot.standing);
            } else {
                // Asleep before the last look, under the lock a handover takes to see it: either
                // that look finds the batch handed over, or the handover wakes this poster.
                standing.asleep = true;
                if self.queue.lead() {
                    standing.asleep = false;
                    return None;
                }
                standing = slot
                    .changed
                    .wait(standing)
                    .unwrap_or_else(|p| p.into_inner());
                standing.asleep = false;
            }
        }
    }

    /// Writes a batch of queued posts as one journal append and publishes them in id order. A
    /// post whose idempotency key is known (from before, or earlier in the batch) gets the
    /// message that key made, or a conflict, and no id. Returns the new messages, for the hooks and
    /// the recorder.
    pub(super) fn commit_batch(
        &self,
        committer: &mut Committer,
        batch: &[Arc<Slot>],
    ) -> Vec<Recorded> {
        self.finish_compaction(committer, false);
        let ts = now();
        committer.keys.expire(ts);
        // Saturating: a journal written by hand may end at `u64::MAX`.
        let mut next = committer.last_id.saturating_add(1);
        let mut fresh: Vec<Fresh> = Vec::new();
        let mut repeats = Vec::new();
        for (at, slot) in batch.iter().enumerate() {
            let (
                Draft {
                    target,
                    sender,
                    text,
                    reply_to,
                    idempotency_key: key,
                    source,
                },
                text_json,
            ) = lock(&slot.draft).take().unwrap_or_default();
            // Only a post with a key is ever compared, and hashing a large text is not free.
            let digest = match &key {
                Some(_) => idempotency::digest(&target, reply_to, &text),
                None => 0,
            };
            if let Some(key) = &key {
                let earlier = committer.keys.get(&sender, key).or_else(|| {
                    fresh.iter().find_map(|f| {
                        (f.key.as_deref() == Some(key.as_str()) && f.message.sender == sender)
                            .then_some(idempotency::Entry {
                                id: f.message.id,
                                digest: f.digest,
                            })
                    })
                });
                if let Some(entry) = earlier {
                    repeats.push((at, entry, digest, target));
                    continue;
                }
            }
            if next > MAX_ID {
                let reason = format!(
                    "message not stored: the message ids are used up (the last is {}, and ids \
                     stop at {MAX_ID})",
                    committer.last_id
                );
                log::error!("{reason}");
                slot.finish(Err(Error::Storage(reason)));
                continue;
            }
            let message = Message {
                id: next,
                ts,
                target,
                sender,
                reply_to,
                text,
            };
            next += 1;
            let text_json = text_json.filter(TextJson::is_string);
            fresh.push(Fresh {
                at,
                encoded: Encoded::with_text(&message, text_json),
                message,
                key,
                digest,
                source,
            });
        }
        let written = match committer.journal.as_mut() {
            Some(journal) => {
                let lines: Vec<Line> = fresh
                    .iter()
                    .map(|f| match f.encoded.raw_text() {
                        Some(text) => Line::Encoded(&f.message, f.key.as_deref(), text),
                        None => Line::Message(&f.message, f.key.as_deref()),
                    })
                    .collect();
                journal.append_lines(&lines)
            }
            None => Ok(fresh
                .iter()
                .map(|f| Place {
                    text_len: u32::try_from(f.message.text.len()).unwrap_or(u32::MAX),
                    ..Place::default()
                })
                .collect()),
        };
        let places = match written {
            Ok(places) => places,
            Err(e) => {
                self.refuse(batch, &fresh, &repeats, &e);
                return Vec::new();
            }
        };
        committer.last_id += fresh.len() as u64;
        committer.since_compaction += fresh.len();
        let mut published = Vec::with_capacity(fresh.len());
        let mut entries = Vec::with_capacity(fresh.len());
        for (f, place) in fresh.into_iter().zip(places) {
            if let Some(key) = &f.key {
                let entry = idempotency::Entry {
                    id: f.message.id,
                    digest: f.digest,
                };
                committer
                    .keys
                    .remember(&f.message.sender, key, entry, ts, ts);
            }
            entries.push(Entry {
                id: f.message.id,
                ts: f.message.ts,
                place,
            });
            published.push((f.at, Arc::new(f.message), f.encoded, f.source));
        }
        {
            let journaled = committer.journal.is_some();
            let mut state = lock(&self.state);
            for ((_, m, encoded, _), entry) in published.iter().zip(entries) {
                // Without a journal the cache is the only place the text is, and holding every
                // JSON too would double what memory holds. With one, the cache is bounded and a
                // fresh message is the likeliest read next, by a page or a stream, which send
                // its JSON: that is held, and a reader of its fields makes them from it once.
                // A long text whose line is its JSON is known at once to be sendable from the
                // journal as it lies, once the cache lets its JSON go.
                if journaled {
                    let lies_ready = encoded.is_as_journaled() && encoded.json.len() >= LIES_FROM;
                    state
                        .texts
                        .put_read(m.id, Arc::clone(&encoded.json), None, lies_ready);
                } else {
                    state.texts.put(Arc::clone(m));
                }
                state.insert(&m.target, entry);
            }
            // A channel never holds more than its limit, not even until the next retention
            // pass: that pass only rewrites the journal to match.
            let per_channel = self.limits.retention_max_messages;
            if per_channel > 0 {
                let mut dropped = Vec::new();
                for (_, m, ..) in &published {
                    state.keep_newest(&m.target, per_channel, &mut dropped);
                }
                committer.dropped(&dropped);
            }
        }
        self.published_id
            .store(committer.last_id, Ordering::Release);
        let mut new = Vec::with_capacity(published.len());
        for (at, message, encoded, source) in published {
            new.push(Recorded {
                message: Arc::clone(&message),
                encoded: encoded.clone(),
                source,
            });
            batch[at].finish(Ok(Posted {
                message,
                encoded,
                repeated: false,
            }));
        }
        // Repeats are answered once the batch is visible, since one may repeat a post of it.
        for (at, entry, digest, target) in repeats {
            batch[at].finish(self.repeat(entry, digest, &target));
        }
        self.apply_retention(committer);
        self.purge(committer);
        new
    }

    /// Answers every post of a batch the journal refused with the reason.
    fn refuse(
        &self,
        batch: &[Arc<Slot>],
        fresh: &[Fresh],
        repeats: &[(usize, idempotency::Entry, u64, String)],
        e: &Error,
    ) {
        let reason = format!("message not stored: {e}");
        log::error!("{reason}");
        for f in fresh {
            batch[f.at].finish(Err(Error::Storage(reason.clone())));
        }
        for (at, ..) in repeats {
            batch[*at].finish(Err(Error::Storage(reason.clone())));
        }
    }

    /// The outcome of a post whose key already named message `entry`: that message if the post
    /// is the same, a conflict if not.
    fn repeat(
        &self,
        entry: idempotency::Entry,
        digest: u64,
        target: &str,
    ) -> Result<Posted, Error> {
        if entry.digest != digest {
            return Err(Error::Conflict(format!(
                "this idempotency key was already used for message {} with a different channel, reply or text; use a new key for a new message",
                entry.id
            )));
        }
        let found = self.find(target, entry.id);
        match found {
            Some(message) => Ok(Posted {
                encoded: Encoded::new(&message),
                message,
                repeated: true,
            }),
            None => Err(Error::Conflict(format!(
                "this idempotency key was already used for message {}, which is no longer kept",
                entry.id
            ))),
        }
    }
}
