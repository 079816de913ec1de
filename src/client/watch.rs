//! `watch`: follows one channel with the relay's blocking fetch (`since_id` + `wait`, so a
//! message is handled within milliseconds and an idle watcher costs one request per 50 s) and
//! handles each new message exactly once: prints it, or runs CMD for it. The place is kept in
//! the state file after every message. A relay that is down, restarting or busy is retried
//! with a doubling delay; an answer that retrying cannot fix (a refused token, a wrong route)
//! ends the watch.
//!
//! Signals: the watcher installs no handler (the crate forbids `unsafe`, and needs none), so
//! SIGINT and SIGTERM end it with the default action wherever it is. That is clean by
//! construction: between runs the only state is the state file, which is only ever replaced by
//! a rename, and stdout is flushed after every line. A run in progress is not marked handled,
//! so its message runs again at the next start, and CMD itself is ended by its guardian (see
//! `child`) rather than left running unseen.

use super::child;
use super::error::Error;
use super::format::{now_utc, Format};
use super::loop_guard::LoopGuard;
use super::relay_client::RelayClient;
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

/// Runs the watch until `count` messages were handled or an error ends it.
pub(super) fn watch(
    relay: &RelayClient,
    mut opts: Options,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    let mut backoff = Backoff::new();
    let saved = match &opts.state {
        Some(s) => s.read()?,
        None => None,
    };
    let start = match (saved, opts.since_id) {
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            let newest = backoff.retry(io, || relay.messages(&opts.target, None, Some(1), None))?;
            newest.last().map_or(0, |m| m.id)
        }
    };
    if let (Some(state), None) = (&opts.state, saved) {
        state.write(start)?;
    }
    say(
        io,
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
    let (mut last, mut kept, mut handled) = (start, start, 0u64);
    loop {
        let asked = Instant::now();
        let wait = match opts.deadline {
            None => WAIT_SECS,
            Some(deadline) if deadline > asked => WAIT_SECS.min((deadline - asked).as_secs_f64()),
            Some(_) => {
                save(&opts.state, last)?;
                return timed_out(&opts, handled, last);
            }
        };
        let page = backoff.retry(io, || {
            relay.messages(&opts.target, Some(last), Some(PAGE), Some(wait))
        })?;
        if page.is_empty() {
            // An empty answer long before the deadline comes from a relay that is shutting
            // down (or one that cannot wait): pause rather than spin.
            if asked.elapsed() < Duration::from_secs_f64(wait / 2.0) {
                backoff.pause();
            } else {
                backoff.reset();
            }
            continue;
        }
        backoff.reset();
        if page.iter().all(|m| m.id <= last) {
            return Err(Error::Invalid(format!(
                "{} answered messages older than since_id={last}: it does not support since_id; upgrade the relay",
                relay.url()
            )));
        }
        for m in page {
            if m.id <= last {
                continue;
            }
            if !opts.wanted(&m) {
                last = m.id;
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
                        save(&opts.state, last)?;
                        return Err(Error::LoopGuard(format!(
                            "loop guard: CMD already ran {} (--max-runs/--per); stopping before #{}. \
                             Check the channel for agents answering each other, then start watch \
                             again: #{} is handled first",
                            opts.guard.describe(),
                            m.id,
                            m.id
                        )));
                    }
                    run(cmd, &m, relay, env, io)?;
                }
            }
            last = m.id;
            save(&opts.state, last)?;
            kept = last;
            handled += 1;
            if opts.count.is_some_and(|n| handled >= n) {
                return Ok(());
            }
        }
        if last != kept {
            save(&opts.state, last)?;
            kept = last;
        }
    }
}

/// The end of a watch at its deadline: done when it handled what it was asked to (`count`
/// messages, or without a count, any), else `TimedOut` saying how far it got.
fn timed_out(opts: &Options, handled: u64, last: u64) -> Result<(), Error> {
    let wanted = opts.count.unwrap_or(1);
    if handled >= wanted {
        return Ok(());
    }
    let from = match opts.from.as_slice() {
        [] => String::new(),
        from => format!(" from {}", from.join(" or ")),
    };
    Err(Error::TimedOut(if handled == 0 {
        format!(
            "timed out: no message{from} on {} after #{last} within --timeout",
            opts.target
        )
    } else {
        format!(
            "timed out: {handled} of the {wanted} messages{from} on {} handled within --timeout (the last #{last})",
            opts.target
        )
    }))
}

/// Runs CMD for one message, with status lines around it on stderr.
fn run(
    cmd: &str,
    m: &Message,
    relay: &RelayClient,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    say(io, &format!("{} -> running CMD", m.line()))?;
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
    let status = child::run(cmd, m, env, &extra, io)?;
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
    say(io, &verdict)
}

fn save(state: &Option<StateFile>, id: u64) -> Result<(), Error> {
    match state {
        Some(s) => s.write(id),
        None => Ok(()),
    }
}

/// A status line on stderr: `TIME watch: TEXT`.
fn say(io: &mut Io, text: &str) -> Result<(), Error> {
    writeln!(io.stderr, "{} watch: {text}", now_utc())
        .and_then(|()| io.stderr.flush())
        .map_err(Error::output)
}

/// The delay between attempts while the relay is unavailable.
struct Backoff {
    next: Duration,
    down_since: Option<Instant>,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
            down_since: None,
        }
    }

    /// Calls `attempt` until it succeeds or fails for good; says when the relay goes away
    /// and when it is back.
    fn retry<T>(
        &mut self,
        io: &mut Io,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        loop {
            match attempt() {
                Ok(v) => {
                    if let Some(since) = self.down_since.take() {
                        say(
                            io,
                            &format!("relay is back after {:.1} s", since.elapsed().as_secs_f64()),
                        )?;
                    }
                    return Ok(v);
                }
                Err(e) if e.is_transient() => {
                    if self.down_since.is_none() {
                        self.down_since = Some(Instant::now());
                        say(
                            io,
                            &format!(
                                "relay unavailable ({e}); retrying every {:.2} s up to every {} s",
                                self.next.as_secs_f64(),
                                BACKOFF_MAX.as_secs()
                            ),
                        )?;
                    }
                    self.pause();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits the current delay and doubles it.
    fn pause(&mut self) {
        thread::sleep(self.next);
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }

    fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}
