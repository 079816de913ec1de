//! Compaction: rewriting the journal without what retention and deletions removed. A
//! compaction is written to a temporary file on a thread of its own while posts go on, installed
//! by whichever comes first (its thread, a commit, a close), and the next one a deletion made
//! meanwhile is waiting for starts as it is installed. One that fails leaves its work pending
//! and is tried again after a back-off. The `Compactor` holds what it needs of the store weakly,
//! so its threads never keep a dropped store alive.

use super::*;

/// A compaction written on a thread of its own: what came of it once written, and a signal for
/// whoever waits for that.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) outcome: Mutex<Option<Result<Compaction, Error>>>,
    pub(super) written: Condvar,
    /// Whether it removes deleted texts: if it fails, they are still to be removed.
    pub(super) purge: bool,
}

/// How long after a compaction fails it is tried again, at first; each failure in a row
/// doubles it, up to `RETRY_AT_MOST`, so a full disk is not rewritten to again and again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_AT_MOST: Duration = Duration::from_secs(60);

/// What compacting the journal needs of a store, held weakly so that the threads writing
/// compactions can install them and start the next one without keeping a dropped store alive.
#[derive(Clone)]
pub(super) struct Compactor {
    state: Weak<Mutex<State>>,
    commit: Weak<Mutex<Committer>>,
    removal_hooks: Weak<Mutex<Vec<RemovalHook>>>,
    limits: Limits,
}

impl Compactor {
    /// The compactor of the store made of `state`, `commit` and `removal_hooks`.
    pub(super) fn new(
        state: &Arc<Mutex<State>>,
        commit: &Arc<Mutex<Committer>>,
        removal_hooks: &Arc<Mutex<Vec<RemovalHook>>>,
        limits: Limits,
    ) -> Compactor {
        Compactor {
            state: Arc::downgrade(state),
            commit: Arc::downgrade(commit),
            removal_hooks: Arc::downgrade(removal_hooks),
            limits,
        }
    }

    /// Tells the removal hooks that `channels` lost messages (see `Store::removed_from`).
    fn removed_from(&self, channels: &[String]) {
        if let Some(hooks) = self.removal_hooks.upgrade() {
            tell_removed(&hooks, channels);
        }
    }

    /// Drops what retention says from memory, then has the journal rewritten to match: the
    /// kept messages go to a temporary file on a thread of their own while posts go on, and
    /// that thread (or a commit or close that comes first) installs it, carrying over what was
    /// appended meanwhile (`finish`). With `wait`, the rewrite is done and installed here.
    pub(super) fn compact(
        &self,
        state: &Mutex<State>,
        committer: &mut Committer,
        wait: bool,
    ) -> usize {
        if committer.compaction.is_some() {
            return 0;
        }
        // A compaction failed a moment ago: it is tried again when its back-off ends, and
        // until then only memory is thinned.
        let held_off = !wait && committer.held_off();
        let mut thinned = Vec::new();
        let (dropped, mut kept, names, file, positions) = {
            let mut state = lock(state);
            let dropped = state.retain(
                self.limits.retention_max_messages,
                self.limits.age_cutoff(),
                &mut thinned,
            );
            committer.dropped(&dropped);
            let dropped = dropped.len();
            // Each kept entry with its channel's place in `names`.
            let mut kept: Vec<(usize, Entry)> = Vec::new();
            let mut names: Vec<String> = Vec::new();
            if committer.stale && committer.journal.is_some() && !held_off {
                for (name, c) in state
                    .channels
                    .iter()
                    .filter(|(_, c)| !c.messages.is_empty())
                {
                    let at = names.len();
                    names.push(name.clone());
                    kept.extend(c.messages.iter().map(|e| (at, *e)));
                }
            }
            let (file, positions) = (state.file.clone(), state.position_list());
            (dropped, kept, names, file, positions)
        };
        self.removed_from(&thinned);
        let Some(journal) = committer
            .journal
            .as_ref()
            .filter(|_| committer.stale && !held_off)
        else {
            return dropped;
        };
        let Some(file) = file else {
            return dropped;
        };
        committer.stale = false;
        // Every deletion made so far is in what this compaction keeps out.
        let purge = mem::take(&mut committer.purge);
        committer.compacted_at = Instant::now();
        let extras = Extras {
            keys: committer.keys.by_id(),
            positions,
        };
        let (dir, mark, last_id) = (
            journal.dir().to_path_buf(),
            journal.mark(),
            committer.last_id,
        );
        let mut prepare = move || {
            kept.sort_unstable_by_key(|(_, e)| e.id);
            // A line that is not the message the index placed there (a journal damaged since
            // it was read: another id, channel or time) fails the compaction: the journal is
            // left as it is, never rewritten with the wrong text or channel under a kept
            // message's id, and the next start replays it in full (see `Reader`).
            let texts = kept
                .iter()
                .map(|(at, e)| file.message(e.expected(&names[*at]), e.place));
            Journal::prepare(&dir, texts, &extras, last_id, mark)
        };
        if wait {
            self.install(state, committer, prepare(), purge);
            return dropped;
        }
        let pending = Arc::new(Pending {
            purge,
            ..Pending::default()
        });
        let written = Arc::clone(&pending);
        let compactor = self.clone();
        let spawned = thread::Builder::new()
            .name("relay-compact".into())
            .spawn(move || {
                let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare))
                    .unwrap_or_else(|_| Err(Error::Storage("journal compaction panicked".into())));
                *lock(&written.outcome) = Some(prepared);
                written.written.notify_all();
                // Installed at once, so that a relay no one posts to still replaces its journal
                // (and a deleted text leaves the disk); a commit or a close that takes the lock
                // first installs it instead. Not if the store is gone.
                if let (Some(state), Some(commit)) =
                    (compactor.state.upgrade(), compactor.commit.upgrade())
                {
                    compactor.finish(&state, &mut lock(&commit), false);
                }
            });
        match spawned {
            Ok(_) => committer.compaction = Some(pending),
            Err(e) => log::error!("cannot start journal compaction: {e}"),
        }
        dropped
    }

    /// Installs the compaction being written once it is (with `wait`, waiting for it). A
    /// deletion made while it was written left its text out of it: the compaction that
    /// removes that text starts now.
    pub(super) fn finish(&self, state: &Mutex<State>, committer: &mut Committer, wait: bool) {
        let Some(pending) = committer.compaction.clone() else {
            return;
        };
        let mut outcome = lock(&pending.outcome);
        while wait && outcome.is_none() {
            outcome = pending
                .written
                .wait(outcome)
                .unwrap_or_else(|e| e.into_inner());
        }
        let Some(prepared) = outcome.take() else {
            return;
        };
        drop(outcome);
        committer.compaction = None;
        self.install(state, committer, prepared, pending.purge);
        if committer.purge {
            self.compact(state, committer, false);
        }
    }

    /// Installs a written compaction and moves the index to the new file with it, under the
    /// index's lock: a reader takes places and the file they point into together, so it never
    /// reads one file at the other's places. A compaction that failed leaves its work to do
    /// (`purge`: it was to remove deleted texts), tried again when its back-off ends.
    fn install(
        &self,
        state: &Mutex<State>,
        committer: &mut Committer,
        prepared: Result<Compaction, Error>,
        purge: bool,
    ) {
        let installed = prepared.and_then(|c| match committer.journal.as_mut() {
            Some(journal) => journal.install(c).map(Some),
            None => Ok(None),
        });
        match installed {
            Ok(Some(relocation)) => {
                committer.failures = 0;
                committer.retry_at = None;
                lock(state).relocate(relocation);
                Compactor::start_checkpoint(committer);
            }
            Ok(None) => {}
            Err(e) => {
                committer.stale = true;
                committer.purge |= purge;
                committer.failures = committer.failures.saturating_add(1);
                let back_off = RETRY_FIRST
                    .saturating_mul(1 << committer.failures.min(16).saturating_sub(1))
                    .min(RETRY_AT_MOST);
                committer.retry_at = Some(Instant::now() + back_off);
                if lock(state).closed {
                    log::error!(
                        "journal compaction failed as the relay stops; the journal keeps every \
                         message until a later start compacts it: {e}"
                    );
                } else {
                    log::error!(
                        "journal compaction failed; the journal keeps every message, and the \
                         compaction is tried again in {}s: {e}",
                        back_off.as_secs()
                    );
                    self.start_retrying(committer);
                }
            }
        }
    }

    /// Starts the thread that tries a failed compaction again when its back-off ends, whether
    /// or not anything is posted meanwhile, unless one is waiting already.
    fn start_retrying(&self, committer: &mut Committer) {
        if committer.retrying {
            return;
        }
        let compactor = self.clone();
        let spawned = thread::Builder::new()
            .name("relay-compact-retry".into())
            .spawn(move || compactor.retry());
        match spawned {
            Ok(_) => committer.retrying = true,
            Err(e) => log::error!(
                "cannot start the thread that tries the compaction again; the next post or \
                 deletion does: {e}"
            ),
        }
    }

    /// Waits for the back-off of a failed compaction to end, then starts it again, unless a
    /// post or deletion did meanwhile or the store closed or went. Holds none of the store
    /// while it waits.
    fn retry(&self) {
        loop {
            let Some(commit) = self.commit.upgrade() else {
                return;
            };
            let mut committer = lock(&commit);
            let at = match committer.retry_at {
                Some(at) if committer.journal.is_some() => at,
                _ => {
                    committer.retrying = false;
                    return;
                }
            };
            let now = Instant::now();
            if now < at {
                drop(committer);
                drop(commit);
                // Looks again at least this often, so a store gone meanwhile is let go of.
                thread::sleep((at - now).min(RETRY_AT_MOST));
                continue;
            }
            committer.retrying = false;
            let Some(state) = self.state.upgrade() else {
                return;
            };
            // One running already (a post's or a deletion's) tries it; its failure, if it
            // fails, starts a new wait.
            if committer.compaction.is_none() {
                self.compact(&state, &mut committer, false);
            }
            return;
        }
    }

    /// Starts writing the replay checkpoint of the journal just compacted, in the background
    /// (it reads the whole new file), unless one is still being written.
    fn start_checkpoint(committer: &mut Committer) {
        if committer
            .checkpointing
            .as_ref()
            .is_some_and(|h| !h.is_finished())
        {
            return;
        }
        let Some(journal) = committer.journal.as_ref() else {
            return;
        };
        let job = journal.checkpoint_job();
        let spawned = thread::Builder::new()
            .name("relay-checkpoint".into())
            .spawn(move || {
                if let Err(e) = job() {
                    log::warn!("{e}; a start after a crash replays the whole journal");
                }
            });
        match spawned {
            Ok(handle) => committer.checkpointing = Some(handle),
            Err(e) => log::warn!("cannot start writing the replay checkpoint: {e}"),
        }
    }
}

/// Tells each of `hooks` that `channels` lost messages.
pub(super) fn tell_removed(hooks: &Mutex<Vec<RemovalHook>>, channels: &[String]) {
    if channels.is_empty() {
        return;
    }
    for hook in lock(hooks).iter() {
        for channel in channels {
            hook(channel);
        }
    }
}
