//! MCP sessions: what each client negotiated, which channel resources it subscribed to, and
//! the queue of messages the server sends it on its stream (a `GET /mcp` stream, or the legacy
//! `/sse` stream, which also carries responses). Streamable-HTTP sessions are never expired for
//! idleness and are restored after a restart from their signed id; only a `DELETE` ends one.
//! Legacy sessions live exactly as long as their stream. A session opened with `?listen=`
//! also hears every new message from others on those channels, as a channel event.

use crate::listen::{channel_event, Listen, CHANNEL_METHOD};
use crate::mcp::jsonrpc::{self, Outgoing};
use crate::mcp::resources;
use crate::mcp::session_id::SessionIds;
use crate::mcp::DEFAULT_VERSION;
use crate::message::Message;
use crate::store::lock;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Messages queued for a session with no stream open; the oldest are dropped past this.
const OUTBOX_LIMIT: usize = 1000;

/// Which transport a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Streamable,
    Legacy,
}

/// One client's session.
pub struct Session {
    pub id: String,
    pub transport: Transport,
    state: Mutex<State>,
    outbox: Mutex<VecDeque<Outgoing>>,
    queued: Condvar,
    /// When a request last named this session.
    last_used: Mutex<Instant>,
}

struct State {
    version: String,
    initialized: bool,
    subscriptions: BTreeSet<String>,
    log_level: String,
    ended: bool,
    /// Set by `?listen=` on the MCP URL: this session hears new messages as channel events.
    listen: Option<Listen>,
}

impl Session {
    fn new(id: String, transport: Transport, version: &str) -> Session {
        Session {
            id,
            transport,
            state: Mutex::new(State {
                version: version.to_string(),
                initialized: false,
                subscriptions: BTreeSet::new(),
                log_level: "info".into(),
                ended: false,
                listen: None,
            }),
            outbox: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// The protocol version negotiated by `initialize`.
    pub fn version(&self) -> String {
        lock(&self.state).version.clone()
    }

    pub fn set_version(&self, version: &str) {
        lock(&self.state).version = version.to_string();
    }

    /// Marks `notifications/initialized` as received.
    pub fn set_initialized(&self) {
        lock(&self.state).initialized = true;
    }

    pub fn is_initialized(&self) -> bool {
        lock(&self.state).initialized
    }

    pub fn subscribe(&self, uri: &str) {
        lock(&self.state).subscriptions.insert(uri.to_string());
    }

    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.state).subscriptions.remove(uri);
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        lock(&self.state).subscriptions.contains(uri)
    }

    pub fn set_log_level(&self, level: &str) {
        lock(&self.state).log_level = level.to_string();
    }

    pub fn log_level(&self) -> String {
        lock(&self.state).log_level.clone()
    }

    /// Makes the session a listener: it hears new messages `listen` wants as channel events.
    pub fn set_listen(&self, listen: Listen) {
        lock(&self.state).listen = Some(listen);
    }

    pub fn listen(&self) -> Option<Listen> {
        lock(&self.state).listen.clone()
    }

    /// Queues a message for the session's stream.
    pub fn send(&self, message: Outgoing) {
        let mut outbox = lock(&self.outbox);
        if outbox.len() >= OUTBOX_LIMIT {
            outbox.pop_front();
        }
        outbox.push_back(message);
        drop(outbox);
        self.queued.notify_one();
    }

    /// The next queued message, waiting until `deadline`; None at the deadline or once the
    /// session has ended.
    pub fn next_message(&self, deadline: Instant) -> Option<Outgoing> {
        let mut outbox = lock(&self.outbox);
        loop {
            if self.has_ended() {
                return None;
            }
            if let Some(m) = outbox.pop_front() {
                return Some(m);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            outbox = self
                .queued
                .wait_timeout(outbox, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Ends the session: its streams close.
    pub fn end(&self) {
        lock(&self.state).ended = true;
        let _outbox = lock(&self.outbox);
        self.queued.notify_all();
    }

    pub fn has_ended(&self) -> bool {
        lock(&self.state).ended
    }
}

/// What a session id refers to.
pub enum Lookup {
    Live(Arc<Session>),
    /// Never minted here, or malformed.
    Unknown,
    /// Ended by `DELETE` (or its legacy stream closed).
    Ended,
}

/// Every session of the relay.
pub struct Sessions {
    ids: SessionIds,
    live: Mutex<HashMap<String, Arc<Session>>>,
    ended: Mutex<Ended>,
}

/// Ids ended by `DELETE`, the newest `ENDED_LIMIT` of them (an older one, if it comes back, is
/// taken for a session from before a restart).
#[derive(Default)]
struct Ended {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

/// Ended ids remembered.
const ENDED_LIMIT: usize = 100_000;
/// A session no request has named for this long, and that no stream holds, is dropped from
/// memory; its signed id still restores it (without its subscriptions) if it comes back.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Sessions are swept for `FORGET_AFTER` once per this many new ones.
const SWEEP_EVERY: usize = 64;

impl Sessions {
    /// Sessions whose ids are signed with the key kept in `key_dir` (memory only if None).
    pub fn new(key_dir: Option<&Path>) -> Sessions {
        Sessions {
            ids: SessionIds::open(key_dir),
            live: Mutex::new(HashMap::new()),
            ended: Mutex::new(Ended::default()),
        }
    }

    /// Starts a session.
    pub fn create(&self, transport: Transport, version: &str) -> Arc<Session> {
        let session = Arc::new(Session::new(self.ids.mint(), transport, version));
        let mut live = lock(&self.live);
        if live.len().is_multiple_of(SWEEP_EVERY) {
            forget_idle(&mut live, FORGET_AFTER);
        }
        live.insert(session.id.clone(), Arc::clone(&session));
        session
    }

    /// Finds a session of `transport`. A Streamable-HTTP id minted before a restart is
    /// restored (as initialized, at `fallback_version`); a legacy one is not.
    pub fn find(&self, id: &str, transport: Transport, fallback_version: Option<&str>) -> Lookup {
        if lock(&self.ended).ids.contains(id) {
            return Lookup::Ended;
        }
        let mut live = lock(&self.live);
        if let Some(s) = live.get(id) {
            *lock(&s.last_used) = Instant::now();
            return if s.transport == transport {
                Lookup::Live(Arc::clone(s))
            } else {
                Lookup::Unknown
            };
        }
        if transport == Transport::Streamable && self.ids.verify(id) {
            let session = Arc::new(Session::new(
                id.to_string(),
                transport,
                fallback_version.unwrap_or(DEFAULT_VERSION),
            ));
            session.set_initialized();
            live.insert(id.to_string(), Arc::clone(&session));
            return Lookup::Live(session);
        }
        Lookup::Unknown
    }

    /// Ends a session for good: later requests with its id get 404.
    pub fn end(&self, id: &str) {
        if let Some(s) = lock(&self.live).remove(id) {
            s.end();
        }
        let mut ended = lock(&self.ended);
        if ended.ids.insert(id.to_string()) {
            ended.order.push_back(id.to_string());
            if ended.order.len() > ENDED_LIMIT {
                if let Some(oldest) = ended.order.pop_front() {
                    ended.ids.remove(&oldest);
                }
            }
        }
    }

    /// Tells the sessions about a new message: listeners that want it get it as a channel
    /// event, then subscribers of its channel hear that the resource changed.
    pub fn published(&self, m: &Message) {
        let listening: Vec<Arc<Session>> = lock(&self.live)
            .values()
            .filter(|s| lock(&s.state).listen.as_ref().is_some_and(|l| l.wants(m)))
            .cloned()
            .collect();
        for s in listening {
            s.send(jsonrpc::notification(CHANNEL_METHOD, channel_event(m)));
        }
        self.resource_updated(&resources::uri(&m.target));
    }

    /// Tells every session subscribed to `uri` that the resource changed.
    pub fn resource_updated(&self, uri: &str) {
        let subscribed: Vec<Arc<Session>> = lock(&self.live)
            .values()
            .filter(|s| s.is_subscribed(uri))
            .cloned()
            .collect();
        for s in subscribed {
            s.send(jsonrpc::notification(
                "notifications/resources/updated",
                json!({ "uri": uri }),
            ));
        }
    }

    /// Ends every session (at shutdown): their streams close.
    pub fn end_all(&self) {
        for s in lock(&self.live).values() {
            s.end();
        }
    }

    /// Sessions alive now.
    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops the sessions unused for `idle`: only the map holds a session that no request and no
/// stream is using.
fn forget_idle(live: &mut HashMap<String, Arc<Session>>, idle: Duration) {
    live.retain(|_, s| Arc::strong_count(s) > 1 || lock(&s.last_used).elapsed() < idle);
}

/// How long a stream waits for a message before it sends a keep-alive comment.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_leave_memory_and_come_back_by_their_signed_id() {
        let sessions = Sessions::new(None);
        let idle = sessions.create(Transport::Streamable, "2025-06-18");
        let streaming = sessions.create(Transport::Streamable, "2025-06-18");
        let id = idle.id.clone();
        drop(idle);
        forget_idle(&mut lock(&sessions.live), Duration::ZERO);
        assert_eq!(sessions.len(), 1, "the session held by a stream stays");
        assert!(matches!(
            sessions.find(&streaming.id, Transport::Streamable, None),
            Lookup::Live(_)
        ));
        assert!(
            matches!(
                sessions.find(&id, Transport::Streamable, None),
                Lookup::Live(_)
            ),
            "restored"
        );
        sessions.end(&id);
        assert!(matches!(
            sessions.find(&id, Transport::Streamable, None),
            Lookup::Ended
        ));
    }
}
