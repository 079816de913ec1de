//! Who is listening, per channel, right now: every parked blocking fetch, open message stream
//! and listening MCP session registers here for as long as it waits, by the name the client
//! chose to give (`X-Relay-Agent`, `?as=`, a per-agent token) or else only by its kind. A
//! client that fetches in a loop is away between two fetches for an instant; its entry outlives
//! its last wait by `LINGER`, so it neither flickers nor resets its "since", and one that has
//! really gone is dropped soon after. A client that vanishes mid-wait is noticed within about a
//! second by a blocking fetch, a message stream (`/api/stream`) and an MCP session's stream,
//! which look at their connections that often. The listing of channels with who listens on
//! each (`?detail=1`, `list_channels`) is made here, whole or a page at a time.

use crate::message::now;
use crate::store::{lock, Store};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a listener stays listed after its last wait ended.
pub(crate) const LINGER: Duration = Duration::from_millis(500);

/// What kind of waiting a listener does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A blocking fetch (REST `wait`, MCP `wait_seconds`), as `watch` and the stdio bridge use.
    Fetch,
    /// `GET /api/stream`, as the web page uses.
    Stream,
    /// An MCP session opened with `?listen=`, with its `GET` stream open.
    Session,
}

/// One listener as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Listener {
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unix time in seconds since when it has been listening without a break.
    pub since: f64,
    /// How many of this kind and name are waiting (anonymous ones are counted together).
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    channel: String,
    kind: Kind,
    name: Option<String>,
}

struct Entry {
    since: f64,
    waiting: usize,
    left: Instant,
}

/// The listeners of every channel.
#[derive(Default)]
pub(crate) struct Presence {
    entries: Mutex<BTreeMap<Key, Entry>>,
}

/// Held while a listener waits; dropping it marks the wait over.
pub(crate) struct Here {
    presence: Arc<Presence>,
    keys: Vec<Key>,
}

impl Presence {
    /// Registers a listener on `channels` until the returned guard is dropped.
    pub(crate) fn arrive(
        self: &Arc<Self>,
        channels: &[String],
        kind: Kind,
        name: Option<&str>,
    ) -> Here {
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(crate::names::MAX_CHARS).collect());
        let keys: Vec<Key> = channels
            .iter()
            .map(|channel| Key {
                channel: channel.clone(),
                kind,
                name: Clone::clone(&name),
            })
            .collect();
        let mut entries = lock(&self.entries);
        let now_instant = Instant::now();
        entries.retain(|_, e| e.waiting > 0 || now_instant.duration_since(e.left) < LINGER);
        for key in &keys {
            entries
                .entry(key.clone())
                .or_insert_with(|| Entry {
                    since: now(),
                    waiting: 0,
                    left: now_instant,
                })
                .waiting += 1;
        }
        Here {
            presence: Arc::clone(self),
            keys,
        }
    }

    /// The listeners of every channel that has any, by channel.
    pub(crate) fn listeners(&self) -> BTreeMap<String, Vec<Listener>> {
        let mut out: BTreeMap<String, Vec<Listener>> = BTreeMap::new();
        let entries = lock(&self.entries);
        for (key, e) in entries.iter() {
            if e.waiting == 0 && e.left.elapsed() >= LINGER {
                continue;
            }
            out.entry(key.channel.clone()).or_default().push(Listener {
                kind: key.kind,
                name: key.name.clone(),
                since: e.since,
                count: e.waiting.max(1),
            });
        }
        out
    }
}

/// One channel in the detailed listing: its newest id, how many messages it holds, and who is
/// listening now.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelDetail {
    pub name: String,
    pub newest_id: u64,
    pub messages: usize,
    pub listeners: Vec<Listener>,
}

/// Largest page of the channel listing.
pub(crate) const LISTING_MAX_LIMIT: u64 = 1000;

/// The channel listing (`GET /api/channels`, `list_channels`): `{"channels": [...]}`, with
/// `with_detail` also `"detail"` (`detail`), whole; or with `after` (a name) or `limit` (1 to
/// `LISTING_MAX_LIMIT`, the default), one page of the listed channels, `"next"` to pass as
/// `after` when more follow, and the detail of the channels in the same span of names (those
/// only listened on included).
pub(crate) fn listing(
    store: &Store,
    presence: &Presence,
    after: Option<&str>,
    limit: Option<u64>,
    with_detail: bool,
) -> serde_json::Value {
    if after.is_none() && limit.is_none() {
        let names = store.channels();
        let mut all = serde_json::json!({"channels": names});
        if with_detail {
            all["detail"] = serde_json::json!(detail(store, presence, names, |_| true));
        }
        return all;
    }
    let limit = limit
        .unwrap_or(LISTING_MAX_LIMIT)
        .clamp(1, LISTING_MAX_LIMIT) as usize;
    let (names, more) = store.channels_page(after, limit);
    let next = names.last().filter(|_| more).cloned();
    let mut body = serde_json::json!({"channels": names});
    if with_detail {
        // Through the page's last name while more follow; to the end on the last page.
        let within = |name: &str| {
            after.is_none_or(|after| name > after)
                && next.as_deref().is_none_or(|last| name <= last)
        };
        body["detail"] = serde_json::json!(detail(store, presence, names, within));
    }
    if let Some(next) = next {
        body["next"] = serde_json::json!(next);
    }
    body
}

/// The detailed listing of the listed channels `names`, and of every channel someone listens on
/// before anything was posted there whose name is `within` the span listed, by name.
fn detail(
    store: &Store,
    presence: &Presence,
    names: Vec<String>,
    within: impl Fn(&str) -> bool,
) -> Vec<ChannelDetail> {
    let mut listening = presence.listeners();
    let mut all: Vec<ChannelDetail> = store
        .summaries_of(names)
        .into_iter()
        .map(|(name, newest_id, messages)| ChannelDetail {
            listeners: listening.remove(&name).unwrap_or_default(),
            name,
            newest_id,
            messages,
        })
        .collect();
    all.extend(
        listening
            .into_iter()
            .filter(|(name, _)| within(name))
            .map(|(name, listeners)| ChannelDetail {
                name,
                newest_id: 0,
                messages: 0,
                listeners,
            }),
    );
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

impl Drop for Here {
    fn drop(&mut self) {
        let mut entries = lock(&self.presence.entries);
        for key in &self.keys {
            if let Some(e) = entries.get_mut(key) {
                e.waiting = e.waiting.saturating_sub(1);
                e.left = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_listed_while_it_waits_and_keeps_its_since_across_quick_returns() {
        let presence = Arc::new(Presence::default());
        let channels = ["proj-x".to_string()];
        let first = presence.arrive(&channels, Kind::Fetch, Some("codex"));
        let anonymous = presence.arrive(&channels, Kind::Stream, None);
        let listed = presence.listeners();
        assert_eq!(listed["proj-x"].len(), 2);
        let since = listed["proj-x"][0].since;
        drop(first);
        let again = presence.arrive(&channels, Kind::Fetch, Some("codex"));
        let codex = presence.listeners()["proj-x"][0].clone();
        assert_eq!(codex.name.as_deref(), Some("codex"));
        assert_eq!(
            codex.since, since,
            "a fetch right after the last one continues it"
        );
        drop(again);
        drop(anonymous);
        assert!(
            !presence.listeners().is_empty(),
            "listed for LINGER after leaving"
        );
    }
}
