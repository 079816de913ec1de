//! The bridge's push: one thread per listened channel follows it with the relay's blocking
//! fetch and writes each new message from another agent as a `notifications/claude/channel`
//! event, once each and in id order. The place is the id of the last message seen, kept in
//! memory: a relay restart makes the open fetch fail, or shows in the next page's
//! `X-Relay-Instance` when it came between two fetches, and the place is then asked for again,
//! so nothing is missed or repeated, and a channel whose newest messages were deleted (or
//! dropped by retention) keeps its place too. Only a relay that comes back without its history
//! (a memory store) is followed again from its first message; it is recognised by what ids can
//! never do otherwise: a message at or below the id of one seen before, posted after it.

use super::bridge_io::{note, Backoff, Gate, Out};
use super::error::Error;
use super::relay_client::{restarted_by, Page, Query, RelayClient};
use crate::listen::{channel_notification, Listen};
use crate::message::Message;

/// Seconds each blocking fetch waits (the relay's maximum).
const WAIT_SECS: f64 = 50.0;
/// Messages asked for per fetch (the relay's largest page).
const PAGE: u64 = 500;

/// Where a listener stands on its channel.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place {
    /// Messages up to this id are not pushed: they were, or came before the start.
    id: u64,
    /// The id and time of the last message at or below `id` the relay was seen to hold.
    seen: Option<(u64, f64)>,
    /// The `since_id` of the next fetch: `id`, or the channel's newest id when that is lower
    /// (after deletions, or with a `--since-id` beyond it), so that any new post wakes the
    /// fetch, even one with a lower id than `id` from a relay that lost its history.
    from: u64,
}

impl Place {
    /// The place of a relay that lost its history: its first message.
    const START: Place = Place {
        id: 0,
        seen: None,
        from: 0,
    };

    /// Whether `m` shows that the relay's ids started again (`relay_client::restarted_by`).
    fn restarted_by(&self, m: &Message) -> bool {
        restarted_by(self.seen, m)
    }

    /// Takes in one page after `from`: the messages to push, in order. `None` when the page
    /// shows a relay whose ids started again (the place is then its first message).
    fn take(&mut self, page: &Page) -> Option<Vec<Message>> {
        let mut new = Vec::new();
        for m in &page.messages {
            if m.id > self.id {
                self.id = m.id;
                self.seen = Some((m.id, m.ts));
                new.push(m.clone());
            } else if self.restarted_by(m) {
                *self = Place::START;
                return None;
            }
            self.from = self.from.max(m.id);
        }
        if let Some(head) = page.head_id {
            self.from = self.from.min(head);
        }
        Some(new)
    }
}

/// Follows `channel` for ever: from `since_id`, or else from the newest message when the relay
/// is first reached. Events start once `gate` opens (the client is initialized).
pub(super) fn follow(
    relay: &RelayClient,
    channel: &str,
    listen: &Listen,
    since_id: Option<u64>,
    gate: &Gate,
    out: &Out,
) {
    let mut backoff = Backoff::new();
    let mut place: Option<Place> = None;
    let mut failing = false;
    let mut instance: Option<u64> = None;
    gate.wait();
    loop {
        let mut here = match place {
            Some(p) if !failing => p,
            _ => match locate(relay, channel, since_id, place) {
                Ok(found) => {
                    if failing {
                        note(&format!(
                            "relay is back; following {channel} after #{}",
                            found.id
                        ));
                    }
                    failing = false;
                    found
                }
                Err(e) => {
                    if !failing {
                        note(&format!("cannot follow {channel}: {e}; retrying"));
                    }
                    failing = true;
                    backoff.sleep();
                    continue;
                }
            },
        };
        let query = Query {
            since_id: Some(here.from),
            limit: Some(PAGE),
            wait: Some(WAIT_SECS),
            ..Query::default()
        };
        match relay.page(channel, &query) {
            Ok(page) if page.is_from_another_run(&mut instance) => {
                // The relay restarted while no fetch was open to fail: this page may start
                // past a history that began again, so the place is asked for again first.
                place = Some(here);
                failing = true;
            }
            Ok(page) => {
                backoff.reset();
                match here.take(&page) {
                    Some(new) => {
                        for m in new.iter().filter(|m| listen.wants(m)) {
                            out.send(&channel_notification(m));
                        }
                    }
                    None => note_lost_history(channel),
                }
                place = Some(here);
            }
            Err(e) => {
                place = Some(here);
                if !failing {
                    note(&format!("cannot follow {channel}: {e}; retrying"));
                }
                failing = true;
                backoff.sleep();
            }
        }
    }
}

/// Where to follow `channel` from, asking the relay: on first contact `since_id` or the newest
/// message; after a failure the same place as before, unless the relay's oldest message on the
/// channel shows its ids started again. The place stays where it was when the channel's newest
/// id is below it: deletion and retention lower that too.
fn locate(
    relay: &RelayClient,
    channel: &str,
    since_id: Option<u64>,
    before: Option<Place>,
) -> Result<Place, Error> {
    let newest = relay.messages(channel, None, Some(1), None)?.pop();
    let head = newest.as_ref().map_or(0, |m| m.id);
    let Some(before) = before else {
        let id = since_id.unwrap_or(head);
        return Ok(Place {
            id,
            seen: newest.filter(|m| m.id <= id).map(|m| (m.id, m.ts)),
            from: id.min(head),
        });
    };
    if before.seen.is_some() {
        let oldest = relay.messages(channel, Some(0), Some(1), None)?.pop();
        if oldest.is_some_and(|m| before.restarted_by(&m)) {
            note_lost_history(channel);
            return Ok(Place::START);
        }
    }
    Ok(Place {
        from: before.id.min(head),
        ..before
    })
}

/// Says on standard error that the relay lost its history and `channel` is followed afresh.
fn note_lost_history(channel: &str) {
    note(&format!(
        "the relay came back without its history; following {channel} from its first message"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids_and_times: &[(u64, f64)], head_id: u64) -> Page {
        Page {
            messages: ids_and_times
                .iter()
                .map(|&(id, ts)| Message {
                    id,
                    ts,
                    target: "c".into(),
                    sender: "s".into(),
                    reply_to: None,
                    text: String::new(),
                })
                .collect(),
            head_id: Some(head_id),
            more: false,
            instance: None,
        }
    }

    fn ids(new: Option<Vec<Message>>) -> Vec<u64> {
        new.unwrap().iter().map(|m| m.id).collect()
    }

    #[test]
    fn a_place_above_the_newest_id_waits_from_the_newest_and_pushes_only_what_is_above_it() {
        // Message 4 was seen and then deleted: the channel's newest is 3.
        let mut place = Place {
            id: 4,
            seen: Some((4, 40.0)),
            from: 4,
        };
        assert_eq!(ids(place.take(&page(&[], 3))), [] as [u64; 0]);
        assert_eq!(place.from, 3);
        assert_eq!(ids(place.take(&page(&[(5, 50.0)], 5))), [5]);
        assert_eq!(
            place,
            Place {
                id: 5,
                seen: Some((5, 50.0)),
                from: 5
            }
        );
        // A --since-id beyond every id: later posts below it are passed over, not a restart.
        let mut place = Place {
            id: 100,
            seen: Some((3, 30.0)),
            from: 3,
        };
        assert_eq!(ids(place.take(&page(&[(51, 51.0)], 51))), [] as [u64; 0]);
        assert_eq!((place.id, place.from), (100, 51));
    }

    #[test]
    fn a_message_at_or_below_one_seen_but_posted_after_it_means_the_ids_started_again() {
        let mut place = Place {
            id: 7,
            seen: Some((7, 70.0)),
            from: 0,
        };
        assert!(place.take(&page(&[(1, 80.0)], 1)).is_none());
        assert_eq!(place, Place::START);
        assert_eq!(ids(place.take(&page(&[(1, 80.0)], 1))), [1]);
    }
}
