//! The bridge's push: one thread per listened channel follows it with the relay's blocking
//! fetch and writes each new message from another agent as a `notifications/claude/channel`
//! event, once each and in id order. The place is the id of the last message seen, kept in
//! memory: a relay restart only makes the next fetch fail and be retried from the same place,
//! so nothing is missed or repeated. A relay that comes back without its history (a memory
//! store) is followed from its first message.

use super::bridge_io::{note, Backoff, Gate, Out};
use super::relay_client::RelayClient;
use crate::listen::{channel_notification, Listen};

/// Seconds each blocking fetch waits (the relay's maximum).
const WAIT_SECS: f64 = 50.0;
/// Messages asked for per fetch (the relay's largest page).
const PAGE: u64 = 500;

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
    let mut since = since_id;
    let mut failing = false;
    gate.wait();
    loop {
        let place = match since {
            Some(id) if !failing => id,
            _ => match relay.messages(channel, None, Some(1), None) {
                Ok(newest) => {
                    let newest = newest.last().map_or(0, |m| m.id);
                    let place = match since {
                        // A relay whose newest message is older than the place lost its
                        // history: its ids start again from 1.
                        Some(id) if newest < id => 0,
                        Some(id) => id,
                        None => newest,
                    };
                    if failing {
                        note(&format!(
                            "relay is back; following {channel} after #{place}"
                        ));
                    }
                    failing = false;
                    since = Some(place);
                    place
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
        match relay.messages(channel, Some(place), Some(PAGE), Some(WAIT_SECS)) {
            Ok(page) => {
                backoff.reset();
                for m in page.iter().filter(|m| m.id > place) {
                    if listen.wants(m) {
                        out.send(&channel_notification(m));
                    }
                    since = Some(m.id);
                }
            }
            Err(e) => {
                if !failing {
                    note(&format!("cannot follow {channel}: {e}; retrying"));
                }
                failing = true;
                backoff.sleep();
            }
        }
    }
}
