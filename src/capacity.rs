//! The cap on requests that hold a thread for long: open event streams and waiting fetches.
//! Past it a request is refused at once with 503 and `Retry-After`, so short requests such as
//! `/healthz` always find a thread. Within the cap each client (an agent's token, else an
//! address) and each MCP session has a quota of its own, so one client cannot take every place;
//! the 503 says which limit was reached, and a wait lasts at most `MAX_WAIT_SECONDS`. Also here:
//! the count of the legacy transport's tool calls, which run on threads of their own, and the
//! bytes of large request bodies arriving at once, which would otherwise grow with the number of
//! connections times the body limit (4 GiB at the defaults).

use crate::error::Error;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest wait of a blocking fetch, in seconds (REST `wait`, MCP `wait_seconds`): below the
/// 60 s tool timeout of common MCP clients, so a waiting call ends before its client gives up.
pub(crate) const MAX_WAIT_SECONDS: f64 = 50.0;

/// Whom the per-client quotas count a request against: the agent when its token was presented,
/// else the address the request came from.
pub(crate) fn client_of(agent: Option<&str>, peer: Option<IpAddr>) -> String {
    match (agent, peer) {
        (Some(agent), _) => format!("agent {agent}"),
        (None, Some(peer)) => peer.to_string(),
        (None, None) => String::new(),
    }
}

/// Legacy-transport tool calls running at once.
pub(crate) const LEGACY_TOOL_CALLS: usize = 256;

/// Places one MCP session may hold at once.
pub(crate) const PER_SESSION: usize = 16;

/// A counted cap on open event streams plus waiting fetches, with per-client and per-session
/// quotas.
pub(crate) struct LongRequests {
    counts: Arc<Mutex<Counts>>,
    max: usize,
    per_client: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    clients: HashMap<String, usize>,
    sessions: HashMap<String, usize>,
}

/// One place under the cap, given back when dropped.
pub(crate) struct LongRequest {
    counts: Arc<Mutex<Counts>>,
    client: String,
    session: Option<String>,
}

impl LongRequests {
    /// `max` places in all, `per_client` of them for any one client.
    pub(crate) fn new(max: usize, per_client: usize) -> LongRequests {
        LongRequests {
            counts: Arc::new(Mutex::new(Counts::default())),
            max,
            per_client,
        }
    }

    /// Takes a place for `client` (and `session`, if the request belongs to one), or refuses
    /// with 503 and `Retry-After` naming the limit that is reached.
    pub(crate) fn take(&self, client: &str, session: Option<&str>) -> Result<LongRequest, Error> {
        let mut counts = lock(&self.counts);
        let full = |message: String| {
            Err(Error::Unavailable {
                retry_after: 5,
                message,
            })
        };
        if counts.total >= self.max {
            return full(format!(
                "too many open streams and waiting requests (limit {})",
                self.max
            ));
        }
        if counts.clients.get(client).copied().unwrap_or(0) >= self.per_client {
            return full(format!(
                "this client has too many open streams and waiting requests (per-client limit {})",
                self.per_client
            ));
        }
        if let Some(id) = session {
            if counts.sessions.get(id).copied().unwrap_or(0) >= PER_SESSION {
                return full(format!(
                    "this session has too many open streams and waiting requests (per-session limit {PER_SESSION})"
                ));
            }
            *counts.sessions.entry(id.to_string()).or_default() += 1;
        }
        *counts.clients.entry(client.to_string()).or_default() += 1;
        counts.total += 1;
        Ok(LongRequest {
            counts: Arc::clone(&self.counts),
            client: client.to_string(),
            session: session.map(str::to_string),
        })
    }

    /// Places taken now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.counts).total
    }
}

/// Locks the counts; every update leaves them consistent, so a poisoned lock is still sound.
fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes one off `key`'s count, forgetting it at zero so the map holds only live holders.
fn release(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for LongRequest {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total -= 1;
        release(&mut counts.clients, &self.client);
        if let Some(id) = &self.session {
            release(&mut counts.sessions, id);
        }
    }
}

/// A plain counted cap: `take` hands out at most `max` slots at once.
pub(crate) struct Slots {
    used: Arc<AtomicUsize>,
    max: usize,
}

/// One slot, given back when dropped.
pub(crate) struct Slot {
    used: Arc<AtomicUsize>,
}

impl Slots {
    pub(crate) fn new(max: usize) -> Slots {
        Slots {
            used: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A slot, or None when all are taken.
    pub(crate) fn take(&self) -> Option<Slot> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot {
                used: Arc::clone(&self.used),
            })
    }

    /// Slots taken now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A body of at most this many bytes arrives without drawing on `BodyBytes`: small ones are
/// bounded well enough by the connection cap (1,024 × 64 KiB), and never wait for large ones.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// How many bodies of the size limit may arrive at once.
pub(crate) const BODIES_AT_THE_LIMIT: usize = 16;

/// A cap on the bytes of large request bodies being received and handled at once: as many as
/// `BODIES_AT_THE_LIMIT` bodies of the limit, so one body of any allowed size always fits.
pub(crate) struct BodyBytes {
    used: Arc<Mutex<usize>>,
    max: usize,
}

/// Room for one body, given back when dropped (with the body, once its request is answered).
pub(crate) struct BodyRoom {
    used: Arc<Mutex<usize>>,
    bytes: usize,
}

impl BodyBytes {
    pub(crate) fn new(max_body_bytes: usize) -> BodyBytes {
        BodyBytes {
            used: Arc::default(),
            max: max_body_bytes.saturating_mul(BODIES_AT_THE_LIMIT),
        }
    }

    /// Bytes of room taken now.
    pub(crate) fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for a body of up to `bytes`, or a 503 with `Retry-After` when large bodies already
    /// take the cap; `None` (no room needed) for a small body.
    pub(crate) fn take(&self, bytes: usize) -> Result<Option<BodyRoom>, Error> {
        if bytes <= SMALL_BODY {
            return Ok(None);
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if used.saturating_add(bytes) > self.max {
            return Err(Error::Unavailable {
                retry_after: 1,
                message: format!(
                    "too many large request bodies are arriving at once (limit {} bytes in all)",
                    self.max
                ),
            });
        }
        *used += bytes;
        Ok(Some(BodyRoom {
            used: Arc::clone(&self.used),
            bytes,
        }))
    }
}

impl Drop for BodyRoom {
    fn drop(&mut self) {
        *self.used.lock().unwrap_or_else(|p| p.into_inner()) -= self.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_share_a_cap_that_one_body_of_the_limit_always_fits() {
        let bodies = BodyBytes::new(1 << 20);
        assert!(bodies.take(SMALL_BODY).unwrap().is_none(), "a small body");
        let held: Vec<_> = (0..BODIES_AT_THE_LIMIT)
            .map(|_| bodies.take(1 << 20).unwrap().expect("room"))
            .collect();
        let refused = bodies.take(SMALL_BODY + 1).err().expect("the cap is taken");
        assert_eq!(refused.status(), 503);
        assert!(
            bodies.take(100).unwrap().is_none(),
            "small bodies never wait"
        );
        drop(held);
        assert!(bodies.take(1 << 20).unwrap().is_some(), "room comes back");
        let huge = BodyBytes::new(usize::MAX);
        assert!(
            huge.take(usize::MAX).unwrap().is_some(),
            "the cap saturates"
        );
    }

    #[test]
    fn quotas_bound_each_client_and_session_and_places_come_back() {
        let cap = LongRequests::new(4, 2);
        let a1 = cap.take("a", None).unwrap();
        let _a2 = cap.take("a", None).unwrap();
        let e = cap.take("a", None).err().expect("a is at its quota");
        assert!(e.to_string().contains("per-client"), "{e}");
        let _b = cap.take("b", Some("s")).unwrap();
        drop(a1);
        let _a3 = cap.take("a", None).unwrap();
        let _c = cap.take("c", None).unwrap();
        let e = cap.take("d", None).err().expect("the cap is reached");
        assert!(e.to_string().contains("(limit 4)"), "{e}");
        assert_eq!(cap.open(), 4);
        let many = LongRequests::new(100, 100);
        let held: Vec<_> = (0..PER_SESSION)
            .map(|_| many.take("x", Some("s")).unwrap())
            .collect();
        let e = many.take("x", Some("s")).err().expect("s is at its quota");
        assert!(e.to_string().contains("per-session"), "{e}");
        drop(held);
        assert_eq!(many.open(), 0);
        assert!(lock(&many.counts).clients.is_empty());
    }
}
