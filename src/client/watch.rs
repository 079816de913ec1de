//! `watch`: follows one channel with the relay's blocking fetch (`since_id` + `wait`, so a
//! message is handled within milliseconds and an idle watcher costs one request per 50 s) and
//! handles each new message exactly once: prints it, or runs CMD for it. The place is kept in
//! the state file after every message. A relay that is down, restarting or busy is retried
//! with a doubling delay; an answer that retrying cannot fix (a refused token, a wrong route)
//! ends the watch. A relay that comes back without its history (a memory store) is followed
//! from its first message: it is recognised, as the bridge's listener recognises it, by a
//! message at or below one seen before but posted after it, looked for whenever the relay may
//! have restarted (a request failed, or a page came from another run of the relay, its
//! `X-Relay-Instance`, as after a restart while CMD ran and no request was open to fail). A
//! start position beyond the channel's newest id is said and moved down to it,
//! since no message to come can have an id below the newest.
//!
//! Signals: the watcher installs no handler (the crate forbids `unsafe`, and needs none), so
//! SIGINT and SIGTERM end it with the default action wherever it is. That is clean by
//! construction: between runs the only state is the state file, which is only ever replaced by
//! a rename, and stdout is flushed after every line. A run in progress is not marked handled,
//! so its message runs again at the next start, and CMD itself is ended by its guardian (see
//! `child`) rather than left running unseen. At the `--timeout` deadline a CMD still running is
//! stopped the same way, and its message is not marked handled either.

use super::child;
use super::error::Error;
use super::format::{counted, now_utc, Format};
use super::loop_guard::LoopGuard;
use super::relay_client::{restarted_by, Page, Query, RelayClient};
use super::state::StateFile;
use super::Io;
use crate::message::Message;
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

/// Seconds each blocking fetch waits: the relay's maximum.
pub(super) const WAIT_SECS: f64 = 50.0;
/// Messages asked for per fetch.
const PAGE: u64 = 100;
/// The first delay after a failed request, and the longest.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What `watch` was asked to do.
pub(super) struct Options {
    /// The command the user ran, which names the status lines: `watch`, or `post` (`--await`).
    pub command: &'static str,
    pub target: String,
    /// Only messages from these senders (all when empty).
    pub from: Vec<String>,
    /// Skip messages that reply to anything but this id: a message that answers another one
    /// is not the answer awaited (one that answers nothing may be).
    pub answering: Option<u64>,
    /// Never messages from these senders.
    pub ignore: Vec<String>,
    /// `sh -c` this for each message instead of printing it.
    pub exec: Option<String>,
    pub state: Option<StateFile>,
    /// Where to start when there is no state file: after this id (default: the newest).
    pub since_id: Option<u64>,
    /// Stop after handling this many messages.
    pub count: Option<u64>,
    pub guard: LoopGuard,
    pub format: Format,
    /// Stop then: done if `count` messages (without a count, any message) were handled,
    /// else `TimedOut`.
    pub deadline: Option<Instant>,
}

impl Options {
    fn wanted(&self, m: &Message) -> bool {
        (self.from.is_empty() || self.from.contains(&m.sender))
            && !self.ignore.contains(&m.sender)
            && match (self.answering, m.reply_to) {
                (Some(awaited), Some(answered)) => awaited == answered,
                _ => true,
            }
    }
}

/// Where the watch stands on its channel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place {
    /// Messages up to this id are handled, or came before the start.
    last: u64,
    /// The id and time of the newest message at or below `last` the relay was seen to hold.
    seen: Option<(u64, f64)>,
    /// The `since_id` of the next fetch: `last`, or the channel's newest id when that is lower
    /// (after deletions), so that any new post wakes the fetch, even one with a lower id than
    /// `last` from a relay that lost its history.
    from: u64,
    /// The channel's newest id, as the last answer gave it.
    head: u64,
    /// Set when the relay may have been restarted since it was last heard (a failed request,
    /// an answer that came back early, a newest id that went down, a page from another run of
    /// the relay): the next fetch first asks whether it still holds its history.
    unsure: bool,
    /// Set when the relay was found to have lost its history, until that is said.
    lost: bool,
    /// The run of the relay that answered last (`X-Relay-Instance`): another one answering
    /// means a restart, seen even when no request was open to fail.
    instance: Option<u64>,
}

impl Place {
    /// The place after `start`, with `newest` the channel's newest message then.
    fn at(start: u64, head: u64, newest: Option<&Message>) -> Place {
        Place {
            last: start,
            seen: newest.filter(|m| m.id <= start).map(|m| (m.id, m.ts)),
            from: start.min(head),
            head,
            unsure: false,
            lost: false,
            instance: None,
        }
    }

    /// Whether `m` shows that the relay's ids started again (`relay_client::restarted_by`).
    fn restarted_by(&self, m: &Message) -> bool {
        restarted_by(self.seen, m)
    }

    /// Follows a relay that lost its history from its first message.
    fn start_again(&mut self) {
        *self = Place {
            lost: true,
            ..Place::at(0, 0, None)
        };
    }

    /// The next page after `from`, waiting up to `wait` seconds; first, when the relay may
    /// have been restarted, asks for the channel's newest and oldest messages to tell.
    fn fetch(&mut self, relay: &RelayClient, target: &str, wait: f64) -> Result<Page, Error> {
        if self.unsure {
            let newest = relay.page(target, &NEWEST)?;
            let mut lost = newest.messages.iter().any(|m| self.restarted_by(m));
            if !lost && self.seen.is_some() {
                let oldest = relay.page(target, &OLDEST)?;
                lost = oldest.messages.iter().any(|m| self.restarted_by(m));
            }
            if lost {
                self.start_again();
            } else if let Some(head) = newest.head_id {
                self.head = head;
                self.from = self.from.min(head);
            }
            self.unsure = false;
        }
        let query = Query {
            since_id: Some(self.from),
            limit: Some(PAGE),
            wait: Some(wait),
            ..Query::default()
        };
        let page = relay
            .page(target, &query)
            .inspect_err(|_| self.unsure = true)?;
        if page.is_from_another_run(&mut self.instance) {
            // Another run of the relay answered: its history is checked before its page is
            // taken in, which may start past messages of a history that began again. The
            // next fetch does that; this one answers as an early empty page would.
            self.unsure = true;
            return Ok(Page {
                messages: Vec::new(),
                ..page
            });
        }
        Ok(page)
    }

    /// Takes in a message at or below `last` that was not news: the next fetch goes past it.
    fn pass(&mut self, m: &Message) {
        self.from = self.from.max(m.id);
        if self.seen.is_none_or(|(id, _)| id < m.id) {
            self.seen = Some((m.id, m.ts));
        }
    }

    /// Takes in a message handled (or passed over by the filters).
    fn handled(&mut self, m: &Message) {
        self.last = m.id;
        self.seen = Some((m.id, m.ts));
        self.from = self.from.max(m.id);
    }

    /// Takes in where the channel stands after a page: a newest id below the place is where
    /// the next fetch waits from, and one that went down calls for a check of the history.
    fn stands_at(&mut self, head: Option<u64>) {
        if let Some(head) = head {
            if head < self.head {
                self.unsure = true;
            }
            self.head = head;
            self.from = self.from.min(head);
        }
    }
}

/// The channel's newest message (and its newest id).
const NEWEST: Query = Query {
    since_id: None,
    limit: Some(1),
    wait: None,
    newest: false,
    reader: None,
};

/// The channel's oldest message.
const OLDEST: Query = Query {
    since_id: Some(0),
    limit: Some(1),
    wait: None,
    newest: false,
    reader: None,
};

/// Runs the watch until `count` messages were handled or an error ends it.
pub(super) fn watch(
    relay: &RelayClient,
    mut opts: Options,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    let mut backoff = Backoff::new(opts.command);
    let saved = match &opts.state {
        Some(s) => {
            let saved = s.read()?;
            s.check()?;
            saved
        }
        None => None,
    };
    let newest = match backoff.retry(io, opts.deadline, || relay.page(&opts.target, &NEWEST)) {
        Err(Error::TimedOut(unreachable)) => {
            return Err(Error::TimedOut(format!(
                "timed out: the relay could not be reached within --timeout ({unreachable})"
            )))
        }
        newest => newest?,
    };
    let head = newest
        .head_id
        .or(newest.messages.last().map(|m| m.id))
        .unwrap_or(0);
    let mut start = saved.or(opts.since_id).unwrap_or(head);
    if start > head {
        // Handled ids are never reused, so every message to come is after the newest: going
        // on from there misses none and runs none again, whether the relay lost its history
        // or the newest messages were deleted.
        say(
            io,
            opts.command,
            &format!(
                "the newest message on {} is #{head}, below #{start}: the relay lost its history \
                 (a memory store restarted) or its newest messages were deleted; going on after #{head}",
                opts.target
            ),
        )?;
        start = head;
    }
    if let Some(state) = &opts.state {
        if saved != Some(start) {
            state.write(start)?;
        }
    }
    say(
        io,
        opts.command,
        &format!(
            "watching {} on {} after #{start}{}{}",
            opts.target,
            relay.url(),
            opts.state
                .as_ref()
                .map(|s| format!(", state {}", s.path().display()))
                .unwrap_or_default(),
            opts.exec
                .as_ref()
                .map(|c| format!(", running {c:?} for each message"))
                .unwrap_or_default(),
        ),
    )?;
    let mut place = Place::at(start, head, newest.messages.last());
    let (mut kept, mut handled) = (start, 0u64);
    loop {
        if opts.deadline.is_some_and(|d| d <= Instant::now()) {
            save(&opts.state, place.last)?;
            return timed_out(&opts, handled, place.last, None);
        }
        // Each attempt waits no longer than the deadline leaves, however long the relay was
        // away before it.
        let (mut asked, mut wait) = (Instant::now(), WAIT_SECS);
        let page = backoff.retry(io, opts.deadline, || {
            asked = Instant::now();
            wait = opts.deadline.map_or(WAIT_SECS, |deadline| {
                WAIT_SECS.min(deadline.saturating_duration_since(asked).as_secs_f64())
            });
            place.fetch(relay, &opts.target, wait)
        });
        if place.lost {
            kept = lost_history(&opts, &mut place, io)?;
        }
        let page = match page {
            Err(Error::TimedOut(unreachable)) => {
                save(&opts.state, place.last)?;
                return timed_out(&opts, handled, place.last, Some(&unreachable));
            }
            page => page?,
        };
        let asked_from = place.from;
        if page.messages.is_empty() {
            // An empty answer long before the deadline comes from a relay that is shutting
            // down (or one that cannot wait): pause rather than spin, and make sure of the
            // relay's history before the next wait.
            if asked.elapsed() < Duration::from_secs_f64(wait / 2.0) {
                backoff.pause(opts.deadline);
                place.unsure = true;
            } else {
                backoff.reset();
            }
            place.stands_at(page.head_id);
            continue;
        }
        backoff.reset();
        if page
            .messages
            .iter()
            .any(|m| m.id <= place.last && place.restarted_by(m))
        {
            place.start_again();
            kept = lost_history(&opts, &mut place, io)?;
            continue;
        }
        if page.messages.iter().all(|m| m.id <= asked_from) {
            return Err(Error::Invalid(format!(
                "{} answered messages older than since_id={asked_from}: it does not support since_id; upgrade the relay",
                relay.url()
            )));
        }
        for m in &page.messages {
            if m.id <= place.last {
                place.pass(m);
                continue;
            }
            if !opts.wanted(m) {
                place.handled(m);
                continue;
            }
            match &opts.exec {
                None => {
                    io.stdout
                        .write_all(m.render(opts.format).as_bytes())
                        .and_then(|()| io.stdout.flush())
                        .map_err(Error::output)?;
                }
                Some(cmd) => {
                    if !opts.guard.admit(Instant::now()) {
                        save(&opts.state, place.last)?;
                        return Err(Error::LoopGuard(format!(
                            "loop guard: CMD already ran {}, the most --max-runs/--per allow; stopping before #{}. \
                             Check the channel for agents answering each other, then start watch \
                             again: #{} is handled first",
                            opts.guard.describe(),
                            m.id,
                            m.id
                        )));
                    }
                    if !run(cmd, m, relay, env, opts.deadline, io, opts.command)? {
                        save(&opts.state, place.last)?;
                        return timed_out(&opts, handled, place.last, None);
                    }
                }
            }
            place.handled(m);
            save(&opts.state, place.last)?;
            kept = place.last;
            handled += 1;
            if opts.count.is_some_and(|n| handled >= n) {
                return Ok(());
            }
        }
        place.stands_at(page.head_id);
        if place.last != kept {
            save(&opts.state, place.last)?;
            kept = place.last;
        }
    }
}

/// Says on standard error that the relay lost its history and the channel is followed afresh
/// from its first message, and keeps that place in the state file; returns the id kept.
fn lost_history(opts: &Options, place: &mut Place, io: &mut Io) -> Result<u64, Error> {
    place.lost = false;
    say(
        io,
        opts.command,
        &format!(
            "the relay came back without its history (its ids started again); following {} from its first message",
            opts.target
        ),
    )?;
    save(&opts.state, place.last)?;
    Ok(place.last)
}

/// The end of a watch at its deadline: done when it handled what it was asked to (`count`
/// messages, or without a count, any), else `TimedOut` saying how far it got, and why the
/// relay could not be reached if it could not at the end.
fn timed_out(
    opts: &Options,
    handled: u64,
    last: u64,
    unreachable: Option<&str>,
) -> Result<(), Error> {
    let wanted = opts.count.unwrap_or(1);
    if handled >= wanted {
        return Ok(());
    }
    let from = match opts.from.as_slice() {
        [] => String::new(),
        from => format!(" from {}", from.join(" or ")),
    };
    let why = unreachable
        .map(|e| format!("; the relay could not be reached ({e})"))
        .unwrap_or_default();
    Err(Error::TimedOut(if handled == 0 {
        format!(
            "timed out: no message{from} on {} after #{last} within --timeout{why}",
            opts.target
        )
    } else {
        format!(
            "timed out: {handled} of the {}{from} on {} handled within --timeout (the last #{last}){why}",
            counted(wanted, "message"),
            opts.target
        )
    }))
}

/// Runs CMD for one message, with status lines around it on stderr. Returns false when CMD
/// was stopped at `deadline`: its message is not handled.
fn run(
    cmd: &str,
    m: &Message,
    relay: &RelayClient,
    env: &BTreeMap<String, String>,
    deadline: Option<Instant>,
    io: &mut Io,
    who: &str,
) -> Result<bool, Error> {
    say(io, who, &format!("{} -> running CMD", m.line()))?;
    let mut extra = vec![
        ("RELAY_MESSAGE_ID", m.id.to_string()),
        ("RELAY_SENDER", m.sender.clone()),
        ("RELAY_TARGET", m.target.clone()),
        ("RELAY_URL", relay.url().to_string()),
        // So `claude-codex-relay post` inside CMD reaches the same relay with the same token.
        ("CLAUDE_CODEX_URL", relay.url().to_string()),
    ];
    if let Some(token) = relay.token() {
        extra.push(("CLAUDE_CODEX_TOKEN", token.to_string()));
    }
    let began = Instant::now();
    let status = match child::run(cmd, m, env, &extra, deadline, io)? {
        child::Ran::Finished(status) => status,
        child::Ran::Stopped => {
            let took = began.elapsed().as_secs_f64();
            say(
                io,
                who,
                &format!(
                    "#{} CMD stopped at --timeout after {took:.1} s; the message is not handled and runs again at the next start",
                    m.id
                ),
            )?;
            return Ok(false);
        }
    };
    let took = began.elapsed().as_secs_f64();
    let verdict = match status.code() {
        Some(0) => format!("#{} done in {took:.1} s", m.id),
        Some(code) => format!(
            "#{} CMD failed with exit {code} after {took:.1} s; the message counts as handled",
            m.id
        ),
        None => format!(
            "#{} CMD was killed by a signal after {took:.1} s; the message counts as handled",
            m.id
        ),
    };
    say(io, who, &verdict)?;
    Ok(true)
}

fn save(state: &Option<StateFile>, id: u64) -> Result<(), Error> {
    match state {
        Some(s) => s.write(id),
        None => Ok(()),
    }
}

/// A status line on stderr: `TIME COMMAND: TEXT`, `who` being the command that watches.
fn say(io: &mut Io, who: &str, text: &str) -> Result<(), Error> {
    writeln!(io.stderr, "{} {who}: {text}", now_utc())
        .and_then(|()| io.stderr.flush())
        .map_err(Error::output)
}

/// The delay between attempts while the relay is unavailable.
struct Backoff {
    next: Duration,
    down_since: Option<Instant>,
    /// The command that watches, for its status lines.
    who: &'static str,
}

impl Backoff {
    fn new(who: &'static str) -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            down_since: None,
            who,
        }
    }

    /// Calls `attempt` until it succeeds, fails for good, or fails for want of the relay at
    /// or after `deadline`: then `TimedOut` holding that last failure. Says when the relay
    /// goes away and when it is back.
    fn retry<T>(
        &mut self,
        io: &mut Io,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        loop {
            match attempt() {
                Ok(v) => {
                    if let Some(since) = self.down_since.take() {
                        say(
                            io,
                            self.who,
                            &format!("relay is back after {:.1} s", since.elapsed().as_secs_f64()),
                        )?;
                    }
                    return Ok(v);
                }
                Err(e) if e.is_transient() => {
                    if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                        return Err(Error::TimedOut(e.to_string()));
                    }
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        say(
                            io,
                            self.who,
                            &format!(
                                "relay unavailable ({e}); retrying every {:.2} s up to every {} s",
                                self.next.as_secs_f64(),
                                BACKOFF_MAX.as_secs()
                            ),
                        )?;
                    }
                    self.pause(deadline);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits the current delay, or until `deadline` if that comes first, and doubles it.
    fn pause(&mut self, deadline: Option<Instant>) {
        let left = deadline.map_or(self.next, |d| d.saturating_duration_since(Instant::now()));
        thread::sleep(self.next.min(left));
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, ts: f64) -> Message {
        Message {
            id,
            ts,
            target: "c".into(),
            sender: "s".into(),
            reply_to: None,
            text: String::new(),
        }
    }

    #[test]
    fn only_a_message_at_or_below_one_seen_but_posted_after_it_shows_a_restart() {
        let place = Place::at(7, 7, Some(&message(7, 70.0)));
        assert!(place.restarted_by(&message(1, 80.0)));
        assert!(place.restarted_by(&message(7, 80.0)));
        // Older messages, and newer ids, are what a relay that kept its history serves.
        assert!(!place.restarted_by(&message(3, 30.0)));
        assert!(!place.restarted_by(&message(8, 80.0)));
        // Nothing seen yet: nothing to tell a restart by.
        assert!(!Place::at(0, 0, None).restarted_by(&message(1, 1.0)));
    }

    #[test]
    fn a_newest_id_that_goes_down_is_waited_from_and_calls_for_a_check() {
        let mut place = Place::at(7, 7, Some(&message(7, 70.0)));
        place.stands_at(Some(7));
        assert!(!place.unsure);
        place.stands_at(Some(5));
        assert!(place.unsure, "deleted, or a relay that started again");
        assert_eq!((place.last, place.from, place.head), (7, 5, 5));
        place.handled(&message(9, 90.0));
        assert_eq!(
            (place.last, place.from, place.seen),
            (9, 9, Some((9, 90.0)))
        );
        place.start_again();
        assert!(place.lost);
        assert_eq!((place.last, place.from, place.seen), (0, 0, None));
    }
}
