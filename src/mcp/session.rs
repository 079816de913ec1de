//! MCP sessions: what each client negotiated, which channel resources it subscribed to (also
//! indexed by channel, so a post reaches its subscribers without visiting anyone else),
//! the queue of messages the server sends it on its stream (a `GET /mcp` stream, or the legacy
//! `/sse` stream, which also carries responses), the events its `GET` streams sent lately (for
//! a client that resumes one with `Last-Event-ID`), and the tool calls running in it, so that a
//! `notifications/cancelled` can stop one. A session belongs to the credential that
//! created it and answers to no other. Streamable-HTTP sessions idle for a while leave memory
//! but are restored from their signed id (after a restart too); only a `DELETE` ends one.
//! Legacy sessions live exactly as long as their stream. Each client address keeps a bounded
//! number of sessions in memory. A session opened with `?listen=` also hears every new message
//! from others on those channels, as a channel event.

use crate::error::Error;
use crate::listen::{channel_event, Listen, CHANNEL_METHOD};
use crate::mcp::channel_uri;
use crate::mcp::ended_sessions::EndedSessions;
use crate::mcp::jsonrpc::{self, Outgoing, RpcError, INVALID_PARAMS};
use crate::mcp::session_id::SessionIds;
use crate::mcp::DEFAULT_VERSION;
use crate::message::Message;
use crate::store::{lock, Store};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Messages queued for a session's stream: past this many, or past this many bytes, the oldest
/// notifications are dropped (the newest entry is always kept, and a response never dropped),
/// and a legacy session takes no more requests until its stream has sent some.
const OUTBOX_LIMIT: usize = 1000;
const OUTBOX_BYTES: usize = 8 * 1024 * 1024;
/// Events of a session's `GET` streams kept, once sent, for a client that reconnects with
/// `Last-Event-ID`: the newest this many, within this many bytes.
const REPLAY_EVENTS: usize = 100;
const REPLAY_BYTES: usize = 1024 * 1024;
/// Channel resources one session may subscribe to.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 64;

/// Which transport a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Streamable,
    Legacy,
}

/// One client's session.
pub(crate) struct Session {
    pub id: String,
    pub transport: Transport,
    /// The name of the credential that created it (empty without one).
    owner: String,
    /// The address of the client that created it, for the per-client cap.
    client: Option<IpAddr>,
    state: Mutex<State>,
    outbox: Mutex<Outbox>,
    queued: Condvar,
    /// Taken after `outbox` when both are held.
    replay: Mutex<Replay>,
    /// When a request last named this session.
    last_used: Mutex<Instant>,
    /// The tool calls running now, by request id, each with the flag a cancellation sets.
    calls: Mutex<Vec<(Value, Arc<AtomicBool>)>>,
}

/// A tool call of a session, registered as running while this lives, so that a
/// `notifications/cancelled` naming its request id can stop it.
pub(crate) struct Call<'a> {
    session: &'a Session,
    cancelled: Arc<AtomicBool>,
}

impl Call<'_> {
    /// Whether the client has cancelled the call.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        lock(&self.session.calls).retain(|(_, flag)| !Arc::ptr_eq(flag, &self.cancelled));
    }
}

/// What a session's stream has yet to send, and the bytes it holds.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Queued>,
    bytes: usize,
}

impl Outbox {
    fn pop(&mut self) -> Option<Queued> {
        let entry = self.queue.pop_front()?;
        self.bytes -= entry.bytes();
        Some(entry)
    }

    fn is_over_limits(&self) -> bool {
        self.queue.len() > OUTBOX_LIMIT || self.bytes > OUTBOX_BYTES
    }

    /// Whether one more entry would take the outbox past its limits.
    fn is_full(&self) -> bool {
        self.queue.len() >= OUTBOX_LIMIT || self.bytes >= OUTBOX_BYTES
    }

    /// Queues `entry`; past the limits, drops the oldest notifications (never a response, and
    /// never `entry`) until the outbox is within them again or holds none to drop.
    fn push(&mut self, entry: Queued) {
        self.bytes += entry.bytes();
        self.queue.push_back(entry);
        while self.is_over_limits() {
            let older = self.queue.len() - 1;
            let Some(oldest) = self
                .queue
                .iter()
                .take(older)
                .position(|q| !matches!(q, Queued::Response(_)))
            else {
                return;
            };
            if let Some(dropped) = self.queue.remove(oldest) {
                self.bytes -= dropped.bytes();
            }
        }
    }
}

/// A `GET /mcp` stream of a session on the connection serving it: `number` names the stream in
/// its event ids, and a stream the client resumes keeps its number on its new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GetStream {
    pub number: u64,
    pub connection: u64,
}

/// The events a session's `GET` streams sent lately, numbered in the order they were sent, and
/// the connection serving each stream now.
#[derive(Default)]
struct Replay {
    /// (stream number, event number, entry), oldest first.
    kept: VecDeque<(u64, u64, Queued)>,
    bytes: usize,
    last_event: u64,
    serving: HashMap<u64, u64>,
}

impl Replay {
    fn serves(&self, stream: GetStream) -> bool {
        self.serving.get(&stream.number) == Some(&stream.connection)
    }

    /// Numbers `entry`, sent on stream `number`, and keeps it within the limits.
    fn keep(&mut self, number: u64, entry: &Queued) -> u64 {
        self.last_event += 1;
        self.bytes += entry.bytes();
        self.kept
            .push_back((number, self.last_event, entry.clone()));
        while self.kept.len() > REPLAY_EVENTS || self.bytes > REPLAY_BYTES {
            if let Some((_, _, dropped)) = self.kept.pop_front() {
                self.bytes -= dropped.bytes();
            }
        }
        self.last_event
    }
}

/// One entry of an outbox: a response (legacy transport), a notification to send as it is, or
/// a new message of a channel to send as a channel event, made from the store when the stream
/// takes it, so that a listener's queue holds ids and not copies of texts.
#[derive(Clone)]
enum Queued {
    Response(Outgoing),
    Ready(Outgoing),
    Event { target: String, id: u64 },
}

impl Queued {
    fn bytes(&self) -> usize {
        match self {
            Queued::Response(m) | Queued::Ready(m) => m.get().len(),
            Queued::Event { target, .. } => target.len() + 8,
        }
    }
}

/// A subscription to a channel resource.
struct Subscription {
    /// The channel's URI as the relay writes it, which the subscribers are indexed by.
    canonical: String,
    /// The URI as the client wrote it (percent-encoding may differ), which its updates name.
    asked: String,
}

struct State {
    version: String,
    /// At most `MAX_SUBSCRIPTIONS`, so a list is as quick as a set and far smaller.
    subscriptions: Vec<Subscription>,
    ended: bool,
    /// Whether the session has had its `initialize`: a Streamable-HTTP session is made by it,
    /// a legacy one by its stream, before it.
    initialized: bool,
    /// Set by `?listen=` on the MCP URL: this session hears new messages as channel events.
    listen: Option<Listen>,
}

impl Session {
    fn new(id: String, transport: Transport, version: &str, owner: &Owner) -> Session {
        Session {
            id,
            transport,
            owner: owner.credential.to_string(),
            client: owner.address,
            state: Mutex::new(State {
                version: version.to_string(),
                subscriptions: Vec::new(),
                ended: false,
                initialized: transport == Transport::Streamable,
                listen: None,
            }),
            outbox: Mutex::new(Outbox::default()),
            queued: Condvar::new(),
            replay: Mutex::new(Replay::default()),
            last_used: Mutex::new(Instant::now()),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The protocol version negotiated by `initialize`.
    pub(crate) fn version(&self) -> String {
        lock(&self.state).version.clone()
    }

    /// Records the session's `initialize`, which negotiated `version`; false, changing nothing,
    /// if it already had one.
    pub(crate) fn initialize(&self, version: &str) -> bool {
        let mut state = lock(&self.state);
        if state.initialized {
            return false;
        }
        state.initialized = true;
        state.version = version.to_string();
        true
    }

    /// Makes the session a listener: it hears new messages `listen` wants as channel events.
    fn set_listen(&self, listen: Listen) {
        lock(&self.state).listen = Some(listen);
    }

    pub(crate) fn listen(&self) -> Option<Listen> {
        lock(&self.state).listen.clone()
    }

    /// Registers a tool call with request `id` as running until the returned guard is dropped.
    pub(crate) fn start_call(&self, id: &Value) -> Call<'_> {
        let cancelled = Arc::new(AtomicBool::new(false));
        lock(&self.calls).push((id.clone(), Arc::clone(&cancelled)));
        Call {
            session: self,
            cancelled,
        }
    }

    /// Marks the running tool calls with request `id` cancelled (ids compare as JSON-RPC ids:
    /// `7.0` names the call `7`). An id no call of this session runs under (unknown, finished,
    /// or not a call that can be stopped) is ignored, as MCP allows.
    pub(crate) fn cancel(&self, id: &Value) {
        for (_, flag) in lock(&self.calls)
            .iter()
            .filter(|(call, _)| jsonrpc::same_id(call, id))
        {
            flag.store(true, Ordering::Release);
        }
    }

    /// Queues a notification for the session's stream.
    pub(crate) fn send(&self, message: Outgoing) {
        self.queue(Queued::Ready(message));
    }

    /// Queues a response for the session's stream (legacy transport): unlike a notification, it
    /// is never dropped, whatever the outbox holds.
    pub(crate) fn respond(&self, response: Outgoing) {
        self.queue(Queued::Response(response));
    }

    /// 503 when the session's stream already has its fill of messages to send (its client is
    /// not reading it): a request taken now could only have its response queued past the limits.
    pub(crate) fn room_for_responses(&self) -> Result<(), Error> {
        let outbox = lock(&self.outbox);
        if !outbox.is_full() {
            return Ok(());
        }
        Err(Error::Unavailable {
            retry_after: 1,
            message: format!(
                "this session's stream has {} messages ({} bytes) waiting to be sent (limits \
                 {OUTBOX_LIMIT} messages, {OUTBOX_BYTES} bytes); read the stream, then send again",
                outbox.queue.len(),
                outbox.bytes
            ),
        })
    }

    /// Queues message `id` of `target` for the session's stream, as a channel event.
    fn send_event(&self, target: &str, id: u64) {
        self.queue(Queued::Event {
            target: target.to_string(),
            id,
        });
    }

    fn queue(&self, entry: Queued) {
        lock(&self.outbox).push(entry);
        self.queued.notify_one();
    }

    /// The next queued message, waiting until `deadline`; None at the deadline or once the
    /// session has ended. A channel event is made from `store` now; one whose message is gone
    /// (deleted, or dropped by retention) is skipped.
    pub(crate) fn next_message(&self, deadline: Instant, store: &Store) -> Option<Outgoing> {
        loop {
            let entry = self.filled_outbox(deadline)?.pop()?;
            if let Some(m) = made(entry, store) {
                return Some(m);
            }
        }
    }

    /// Starts serving `stream` on its connection, taking it over from a connection that served
    /// it before (which then stops). A stream the client resumes after its event `after` gets
    /// back, to send again first, the events of that stream sent after it that are still kept,
    /// with their numbers.
    pub(crate) fn serve(
        &self,
        stream: GetStream,
        after: Option<u64>,
        store: &Store,
    ) -> Vec<(u64, Outgoing)> {
        let mut replay = lock(&self.replay);
        replay.serving.insert(stream.number, stream.connection);
        let Some(after) = after else {
            return Vec::new();
        };
        let again: Vec<(u64, Queued)> = replay
            .kept
            .iter()
            .filter(|(number, event, _)| *number == stream.number && *event > after)
            .map(|(_, event, entry)| (*event, entry.clone()))
            .collect();
        drop(replay);
        again
            .into_iter()
            .filter_map(|(event, entry)| Some((event, made(entry, store)?)))
            .collect()
    }

    /// Whether `stream` is still served by its connection (no other has resumed it).
    pub(crate) fn serves(&self, stream: GetStream) -> bool {
        lock(&self.replay).serves(stream)
    }

    /// Ends `stream` on its connection.
    pub(crate) fn stop_serving(&self, stream: GetStream) {
        let mut replay = lock(&self.replay);
        if replay.serves(stream) {
            replay.serving.remove(&stream.number);
        }
    }

    /// The next queued message for `GET` stream `stream`, with the number of its event, which
    /// is kept for a resumption; waiting until `deadline`. None at the deadline, once the session
    /// has ended, or once another connection serves the stream.
    pub(crate) fn next_event(
        &self,
        stream: GetStream,
        deadline: Instant,
        store: &Store,
    ) -> Option<(u64, Outgoing)> {
        loop {
            let (event, entry) = {
                let mut outbox = self.filled_outbox(deadline)?;
                let mut replay = lock(&self.replay);
                if !replay.serves(stream) {
                    return None;
                }
                let entry = outbox.pop()?;
                (replay.keep(stream.number, &entry), entry)
            };
            if let Some(m) = made(entry, store) {
                return Some((event, m));
            }
        }
    }

    /// The outbox once it holds something, waiting until `deadline`; None at the deadline or
    /// once the session has ended.
    fn filled_outbox(&self, deadline: Instant) -> Option<MutexGuard<'_, Outbox>> {
        let mut outbox = lock(&self.outbox);
        loop {
            if self.has_ended() {
                return None;
            }
            if !outbox.queue.is_empty() {
                return Some(outbox);
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
    pub(crate) fn end(&self) {
        lock(&self.state).ended = true;
        let _outbox = lock(&self.outbox);
        self.queued.notify_all();
    }

    pub(crate) fn has_ended(&self) -> bool {
        lock(&self.state).ended
    }
}

/// The message an outbox entry sends: a channel event is made from `store` now, and is None
/// once its message is gone (deleted, or dropped by retention).
fn made(entry: Queued, store: &Store) -> Option<Outgoing> {
    match entry {
        Queued::Response(m) | Queued::Ready(m) => Some(m),
        Queued::Event { target, id } => store
            .message(&target, id)
            .map(|m| jsonrpc::notification(CHANNEL_METHOD, channel_event(&m))),
    }
}

/// What a session id refers to.
pub(crate) enum Lookup {
    Live(Arc<Session>),
    /// Never minted here, or malformed.
    Unknown,
    /// Ended by `DELETE` (or its legacy stream closed).
    Ended,
}

/// Who is opening or naming a session: the credential's name (as `Caller::owner`) and the
/// client's address.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Owner<'a> {
    pub credential: &'a str,
    pub address: Option<IpAddr>,
}

/// How long sessions stay in memory, and how many one client may keep there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// A session no request has named for this long, and that no stream holds, leaves memory;
    /// its signed id still restores it (without its subscriptions) if it comes back.
    pub forget_after: Duration,
    /// Sessions one client address may keep in memory. Past it the least recently used one
    /// that no stream holds leaves memory (as if idle); if every one has a stream, 503.
    pub per_client: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            forget_after: Duration::from_secs(600),
            per_client: 256,
        }
    }
}

/// Every session of the relay.
pub(crate) struct Sessions {
    ids: SessionIds,
    live: Mutex<Live>,
    ended: Mutex<EndedSessions>,
    limits: SessionLimits,
}

/// The sessions in memory and their indexes, kept consistent under one lock.
struct Live {
    sessions: HashMap<String, Arc<Session>>,
    /// Resource URI → ids of the sessions subscribed to it.
    subscribers: HashMap<String, HashSet<String>>,
    /// Client address → ids of its sessions.
    by_client: HashMap<Option<IpAddr>, HashSet<String>>,
    /// Ids of the sessions opened with `?listen=`: the only ones a post visits for channel
    /// events.
    listeners: HashSet<String>,
    /// When sessions were last swept for idleness.
    swept: Instant,
}

impl Live {
    fn new() -> Live {
        Live {
            sessions: HashMap::new(),
            subscribers: HashMap::new(),
            by_client: HashMap::new(),
            listeners: HashSet::new(),
            swept: Instant::now(),
        }
    }

    fn insert(&mut self, session: Arc<Session>) {
        self.by_client
            .entry(session.client)
            .or_default()
            .insert(session.id.clone());
        self.sessions.insert(session.id.clone(), session);
    }

    /// Takes a session out of memory with everything indexed under it.
    fn remove(&mut self, id: &str) -> Option<Arc<Session>> {
        let session = self.sessions.remove(id)?;
        self.listeners.remove(id);
        let subscriptions = std::mem::take(&mut lock(&session.state).subscriptions);
        for Subscription { canonical, .. } in subscriptions {
            if let Some(ids) = self.subscribers.get_mut(&canonical) {
                ids.remove(id);
                if ids.is_empty() {
                    self.subscribers.remove(&canonical);
                }
            }
        }
        if let Some(ids) = self.by_client.get_mut(&session.client) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_client.remove(&session.client);
            }
        }
        Some(session)
    }

    /// Drops the sessions unused for `idle`: only the map holds a session that no request and
    /// no stream is using.
    fn forget_idle(&mut self, idle: Duration) {
        let idle: Vec<String> = self
            .sessions
            .values()
            .filter(|s| Arc::strong_count(s) == 1 && lock(&s.last_used).elapsed() >= idle)
            .map(|s| s.id.clone())
            .collect();
        for id in idle {
            self.remove(&id);
        }
    }

    /// Makes room for one more session of `client` under `per_client`, forgetting its least
    /// recently used session that nothing holds; 503 when every one is in use.
    fn make_room(&mut self, client: Option<IpAddr>, per_client: usize) -> Result<(), Error> {
        let Some(ids) = self.by_client.get(&client) else {
            return Ok(());
        };
        if ids.len() < per_client {
            return Ok(());
        }
        let oldest = ids
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|s| Arc::strong_count(s) == 1)
            .min_by_key(|s| *lock(&s.last_used))
            .map(|s| s.id.clone());
        match oldest {
            Some(id) => {
                self.remove(&id);
                Ok(())
            }
            None => Err(Error::Unavailable {
                retry_after: 5,
                message: format!(
                    "this client has {} sessions with open streams (per-client session limit {per_client})",
                    ids.len()
                ),
            }),
        }
    }
}

/// Sessions are swept for idleness at most this often, in fractions of the idle limit, so the
/// cost of a sweep (a look at every session) is spread over many creations.
const SWEEPS_PER_IDLE_LIMIT: u32 = 4;

impl Sessions {
    /// Sessions whose ids are signed with the key kept in `key_dir` (memory only if None).
    pub(crate) fn new(key_dir: Option<&Path>, limits: SessionLimits) -> Sessions {
        Sessions {
            ids: SessionIds::open(key_dir),
            live: Mutex::new(Live::new()),
            ended: Mutex::new(EndedSessions::open(key_dir)),
            limits,
        }
    }

    /// Starts a session for `owner`; 503 when its client holds too many sessions with streams.
    pub(crate) fn create(
        &self,
        transport: Transport,
        version: &str,
        owner: Owner,
    ) -> Result<Arc<Session>, Error> {
        let id = self.ids.mint(owner.credential);
        let session = Arc::new(Session::new(id, transport, version, &owner));
        let mut live = lock(&self.live);
        if live.swept.elapsed() >= self.limits.forget_after / SWEEPS_PER_IDLE_LIMIT {
            live.swept = Instant::now();
            live.forget_idle(self.limits.forget_after);
        }
        live.make_room(owner.address, self.limits.per_client)?;
        live.insert(Arc::clone(&session));
        Ok(session)
    }

    /// Finds a session of `transport` created by `owner`'s credential (a session of another
    /// credential is Unknown, as if it did not exist). A Streamable-HTTP id minted before a
    /// restart, or forgotten for idleness, is restored (at `fallback_version`);
    /// a legacy one is not.
    pub(crate) fn find(
        &self,
        id: &str,
        transport: Transport,
        owner: Owner,
        fallback_version: Option<&str>,
    ) -> Lookup {
        // An ended id is never live: `end` moves it from the live sessions to the ended ones
        // while it holds this same lock.
        let mut live = lock(&self.live);
        if let Some(s) = live.sessions.get(id) {
            if s.transport != transport || s.owner != owner.credential {
                return Lookup::Unknown;
            }
            *lock(&s.last_used) = Instant::now();
            return Lookup::Live(Arc::clone(s));
        }
        if lock(&self.ended).contains(id) {
            return Lookup::Ended;
        }
        if transport == Transport::Streamable && self.ids.verify(id, owner.credential) {
            if live
                .make_room(owner.address, self.limits.per_client)
                .is_err()
            {
                return Lookup::Unknown;
            }
            let session = Arc::new(Session::new(
                id.to_string(),
                transport,
                fallback_version.unwrap_or(DEFAULT_VERSION),
                &owner,
            ));
            live.insert(Arc::clone(&session));
            return Lookup::Live(session);
        }
        Lookup::Unknown
    }

    /// Subscribes `session` to the channel resource whose canonical URI is `uri`, as the client
    /// wrote it `asked` (its updates name that; a later subscription to the same resource
    /// spelled otherwise changes it), up to `MAX_SUBSCRIPTIONS` (-32602 past it). A session no
    /// longer in memory (ended meanwhile) keeps nothing.
    pub(crate) fn subscribe(
        &self,
        session: &Session,
        uri: &str,
        asked: &str,
    ) -> Result<(), RpcError> {
        let mut live = lock(&self.live);
        if !live
            .sessions
            .get(&session.id)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), session))
        {
            return Ok(());
        }
        {
            let mut state = lock(&session.state);
            if let Some(held) = state.subscriptions.iter_mut().find(|s| s.canonical == uri) {
                held.asked = asked.to_string();
                return Ok(());
            }
            if state.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                return Err(RpcError::new(
                    INVALID_PARAMS,
                    format!("a session may subscribe to at most {MAX_SUBSCRIPTIONS} resources"),
                ));
            }
            state.subscriptions.push(Subscription {
                canonical: uri.to_string(),
                asked: asked.to_string(),
            });
        }
        live.subscribers
            .entry(uri.to_string())
            .or_default()
            .insert(session.id.clone());
        Ok(())
    }

    /// Ends `session`'s subscription to the resource whose canonical URI is `uri`, however it
    /// was spelled, if it had one.
    pub(crate) fn unsubscribe(&self, session: &Session, uri: &str) {
        let mut live = lock(&self.live);
        lock(&session.state)
            .subscriptions
            .retain(|s| s.canonical != uri);
        if let Some(ids) = live.subscribers.get_mut(uri) {
            ids.remove(&session.id);
            if ids.is_empty() {
                live.subscribers.remove(uri);
            }
        }
    }

    /// Ends a session for good: later requests with its id get 404.
    /// The id leaves the live sessions and joins the ended ones, and the session is marked
    /// ended, under one hold of the live lock: a `find` running meanwhile cannot restore it, and
    /// once a request gets 404 every call still running in the session sees it has ended.
    pub(crate) fn end(&self, id: &str) {
        let mut live = lock(&self.live);
        if let Some(s) = live.remove(id) {
            s.end();
        }
        lock(&self.ended).add(id);
    }

    /// Makes `session` hear every new message from others on the channels of `listen`.
    pub(crate) fn set_listen(&self, session: &Arc<Session>, listen: Listen) {
        session.set_listen(listen);
        lock(&self.live).listeners.insert(session.id.clone());
    }

    /// Tells the sessions about a new message: listeners that want it get it as a channel
    /// event, then subscribers of its channel hear that the resource changed. A channel's URI
    /// is made only when some session is subscribed to something.
    pub(crate) fn published(&self, m: &Message) {
        let (listening, subscriptions): (Vec<Arc<Session>>, bool) = {
            let live = lock(&self.live);
            let listening = live
                .listeners
                .iter()
                .filter_map(|id| live.sessions.get(id))
                .filter(|s| lock(&s.state).listen.as_ref().is_some_and(|l| l.wants(m)))
                .cloned()
                .collect();
            (listening, !live.subscribers.is_empty())
        };
        for s in listening {
            s.send_event(&m.target, m.id);
        }
        if subscriptions {
            self.resource_updated(&channel_uri::uri(&m.target));
        }
    }

    /// Tells the sessions subscribed to channel `target` that it changed other than by a new
    /// message (a deletion, or retention dropping messages).
    pub(crate) fn channel_changed(&self, target: &str) {
        // A channel's URI is made only when some session is subscribed to something.
        if !lock(&self.live).subscribers.is_empty() {
            self.resource_updated(&channel_uri::uri(target));
        }
    }

    /// Tells every session subscribed to the resource whose canonical URI is `uri` that it
    /// changed, naming it as that session subscribed to it; no other session is visited.
    pub(crate) fn resource_updated(&self, uri: &str) {
        let subscribed: Vec<(Arc<Session>, String)> = {
            let live = lock(&self.live);
            let Some(ids) = live.subscribers.get(uri) else {
                return;
            };
            ids.iter()
                .filter_map(|id| live.sessions.get(id))
                .filter_map(|s| {
                    let asked = lock(&s.state)
                        .subscriptions
                        .iter()
                        .find(|sub| sub.canonical == uri)
                        .map(|sub| sub.asked.clone())?;
                    Some((Arc::clone(s), asked))
                })
                .collect()
        };
        for (s, asked) in subscribed {
            s.send(jsonrpc::notification(
                "notifications/resources/updated",
                json!({ "uri": asked }),
            ));
        }
    }

    /// Ends every session (at shutdown): their streams close.
    pub(crate) fn end_all(&self) {
        for s in lock(&self.live).sessions.values() {
            s.end();
        }
    }

    /// Sessions in memory now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.live).sessions.len()
    }

    /// Resource URIs with at least one subscriber.
    pub(crate) fn subscribed_uris(&self) -> usize {
        lock(&self.live).subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Draft, Limits};

    fn post(store: &Store, text: &str) -> u64 {
        let draft = Draft {
            target: "c".into(),
            sender: "codex".into(),
            text: text.into(),
            reply_to: None,
            idempotency_key: None,
            source: "test".into(),
        };
        store.post(draft).unwrap().message.id
    }

    /// A session of `transport` on 2025-06-18, with no owner.
    fn test_session(id: &str, transport: Transport) -> Session {
        Session::new(id.into(), transport, "2025-06-18", &Owner::default())
    }

    #[test]
    fn an_outbox_keeps_its_newest_messages_within_8_mib_and_listeners_queue_ids_not_texts() {
        let store = Store::in_memory(&[], Limits::default());
        let session = test_session("s", Transport::Streamable);
        let big = |n: usize| {
            jsonrpc::notification("n", serde_json::json!({"n": n, "t": "x".repeat(1 << 20)}))
        };
        for n in 0..20 {
            session.send(big(n));
        }
        let held = lock(&session.outbox).bytes;
        assert!(held <= OUTBOX_BYTES, "{held} bytes held");
        let first = session.next_message(Instant::now(), &store).unwrap();
        assert!(
            first
                .get()
                .starts_with(r#"{"jsonrpc":"2.0","method":"n","params":{"n":13,"#),
            "the oldest went first"
        );

        let single = test_session("t", Transport::Streamable);
        single.send(jsonrpc::notification(
            "n",
            serde_json::json!({"t": "x".repeat(9 << 20)}),
        ));
        assert!(
            single.next_message(Instant::now(), &store).is_some(),
            "the newest is always kept"
        );

        let text = "y".repeat(1 << 20);
        let ids: Vec<u64> = (0..3).map(|_| post(&store, &text)).collect();
        for id in &ids {
            single.send_event("c", *id);
        }
        assert!(
            lock(&single.outbox).bytes < 100,
            "events queue ids, not texts"
        );
        store.delete_message(ids[1]).unwrap();
        for id in [ids[0], ids[2]] {
            let event = single
                .next_message(Instant::now(), &store)
                .expect("an event");
            let event: serde_json::Value = serde_json::from_str(event.get()).unwrap();
            assert_eq!(event["method"], CHANNEL_METHOD);
            assert_eq!(event["params"]["meta"]["id"], id.to_string());
            assert!(event["params"]["content"]
                .as_str()
                .unwrap()
                .ends_with(&text));
        }
        assert!(
            single.next_message(Instant::now(), &store).is_none(),
            "a deleted message's event is skipped"
        );
    }

    #[test]
    fn an_outbox_past_its_limits_drops_notifications_but_never_a_response() {
        let store = Store::in_memory(&[], Limits::default());
        let session = test_session("s", Transport::Legacy);
        let response = |n: usize| jsonrpc::result(&json!(n), jsonrpc::outgoing(&json!({})));
        session.send(jsonrpc::notification("early", json!({})));
        for n in 0..OUTBOX_LIMIT + 10 {
            session.respond(response(n));
        }
        session.send(jsonrpc::notification("late", json!({})));
        assert!(
            session.room_for_responses().is_err(),
            "no more requests are taken"
        );
        let mut sent = Vec::new();
        while let Some(m) = session.next_message(Instant::now(), &store) {
            sent.push(serde_json::from_str::<Value>(m.get()).unwrap());
        }
        assert_eq!(
            sent.len(),
            OUTBOX_LIMIT + 11,
            "only the oldest notification went"
        );
        for (n, m) in sent.iter().take(OUTBOX_LIMIT + 10).enumerate() {
            assert_eq!(m["id"], n, "every response, in order");
        }
        assert_eq!(sent.last().unwrap()["method"], "late", "the newest is kept");
        assert!(
            session.room_for_responses().is_ok(),
            "drained, it takes more"
        );
    }

    #[test]
    fn a_resumed_get_stream_gets_again_its_kept_events_after_the_last_one_its_client_had() {
        let store = Store::in_memory(&[], Limits::default());
        let session = test_session("s", Transport::Streamable);
        let (first, other) = (
            GetStream {
                number: 1,
                connection: 1,
            },
            GetStream {
                number: 2,
                connection: 2,
            },
        );
        assert!(session.serve(first, None, &store).is_empty());
        session.serve(other, None, &store);
        session.send(jsonrpc::notification("other", json!({})));
        assert_eq!(
            session.next_event(other, Instant::now(), &store).unwrap().0,
            1
        );
        for n in 0..REPLAY_EVENTS + 10 {
            session.send(jsonrpc::notification("n", json!({ "n": n })));
            session.next_event(first, Instant::now(), &store).unwrap();
        }
        assert_eq!(
            lock(&session.replay).kept.len(),
            REPLAY_EVENTS,
            "kept within bounds"
        );
        let resumed = GetStream {
            number: 1,
            connection: 3,
        };
        let again = session.serve(resumed, Some(0), &store);
        assert_eq!(
            again.len(),
            REPLAY_EVENTS,
            "the stream's own events that are kept"
        );
        assert_eq!(again[0].0, 12, "the oldest ten are no longer kept");
        let again = session.serve(resumed, Some(REPLAY_EVENTS as u64 + 9), &store);
        assert_eq!(again.len(), 2);
        assert!(
            again[1].1.get().contains(r#""n":109"#),
            "{}",
            again[1].1.get()
        );
        session.send(jsonrpc::notification("late", json!({})));
        assert!(
            !session.serves(first),
            "the old connection no longer serves it"
        );
        assert!(session.next_event(first, Instant::now(), &store).is_none());
        let (event, m) = session.next_event(resumed, Instant::now(), &store).unwrap();
        assert_eq!(
            (event, m.get().contains("late")),
            (REPLAY_EVENTS as u64 + 12, true)
        );
    }

    #[test]
    fn idle_sessions_leave_memory_and_come_back_by_their_signed_id() {
        let sessions = Sessions::new(None, SessionLimits::default());
        let me = Owner::default();
        let idle = sessions
            .create(Transport::Streamable, "2025-06-18", me)
            .unwrap();
        let streaming = sessions
            .create(Transport::Streamable, "2025-06-18", me)
            .unwrap();
        let id = idle.id.clone();
        sessions
            .subscribe(&idle, "relay://channel/a", "relay://channel/a")
            .expect("subscribed");
        drop(idle);
        lock(&sessions.live).forget_idle(Duration::ZERO);
        assert_eq!(sessions.len(), 1, "the session held by a stream stays");
        assert_eq!(
            sessions.subscribed_uris(),
            0,
            "its subscriptions left with it"
        );
        assert!(matches!(
            sessions.find(&streaming.id, Transport::Streamable, me, None),
            Lookup::Live(_)
        ));
        assert!(
            matches!(
                sessions.find(&id, Transport::Streamable, me, None),
                Lookup::Live(_)
            ),
            "restored"
        );
        sessions.end(&id);
        assert!(matches!(
            sessions.find(&id, Transport::Streamable, me, None),
            Lookup::Ended
        ));
    }

    #[test]
    fn a_session_ended_while_it_is_being_found_is_never_live_again() {
        let sessions = Arc::new(Sessions::new(None, SessionLimits::default()));
        let me = Owner::default();
        for _ in 0..2000 {
            let id = sessions
                .create(Transport::Streamable, "2025-06-18", me)
                .unwrap()
                .id
                .clone();
            let finder = {
                let (sessions, id) = (Arc::clone(&sessions), id.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !matches!(
                        sessions.find(&id, Transport::Streamable, me, None),
                        Lookup::Ended
                    ) {
                        assert!(
                            Instant::now() < deadline,
                            "the ended session was never seen"
                        );
                    }
                })
            };
            // Forgotten for idleness, so a find restores it unless it has ended.
            lock(&sessions.live).forget_idle(Duration::ZERO);
            sessions.end(&id);
            finder.join().unwrap();
            assert!(!lock(&sessions.live).sessions.contains_key(&id));
        }
    }
}
