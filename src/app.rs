//! The running relay's shared state, built once at start and handed to every request: the
//! configuration, the store, the MCP sessions, the logs, the cap on long requests and the
//! count of the legacy transport's running tool calls, who is listening, and the recent pages.

use crate::capacity::{BodyBytes, LongRequests, Slots};
use crate::config::Config;
use crate::logs::Logs;
use crate::mcp::session::Sessions;
use crate::mcp::tools::MadeFetch;
use crate::message::WireJson;
use crate::page_cache::PageCache;
use crate::presence::Presence;
use crate::store::Store;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Everything a request handler may reach.
pub(crate) struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub sessions: Arc<Sessions>,
    pub logs: Arc<Logs>,
    pub long_requests: LongRequests,
    pub legacy_tool_calls: Slots,
    /// Room for large request bodies being received and handled.
    pub bodies: BodyBytes,
    /// Who is waiting on which channel.
    pub presence: Arc<Presence>,
    /// Recent REST pages' bodies.
    pub pages: PageCache<WireJson>,
    /// Recent MCP `fetch_messages` results.
    pub fetches: PageCache<Arc<MadeFetch>>,
    /// When the relay began to stop: requests that begin later are refused with 503.
    pub stopping: OnceLock<Instant>,
    /// Names this run of the relay (its start time and process id), sent with every page of
    /// messages as `X-Relay-Instance`: a client that sees it change knows the relay restarted,
    /// even one that had no request open to fail meanwhile, and can check whether the
    /// channel's history survived (a memory store's does not).
    pub instance: String,
}

impl App {
    /// Whether a request that began at `began` came too late to be served: after the relay
    /// began to stop.
    pub(crate) fn too_late(&self, began: Instant) -> bool {
        self.stopping.get().is_some_and(|&stop| began >= stop)
    }

    /// Marks the relay as stopping (once; the first time counts).
    pub(crate) fn begin_stopping(&self) {
        let _ = self.stopping.set(Instant::now());
    }
}
