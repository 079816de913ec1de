//! The running relay's shared state, built once at start and handed to every request: the
//! configuration, the store, the MCP sessions, the logs, the cap on long requests and the
//! count of the legacy transport's running tool calls, and who is listening.

use crate::capacity::{LongRequests, Slots};
use crate::config::Config;
use crate::logs::Logs;
use crate::mcp::session::Sessions;
use crate::presence::Presence;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Everything a request handler may reach.
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub sessions: Arc<Sessions>,
    pub logs: Logs,
    pub long_requests: LongRequests,
    pub legacy_tool_calls: Slots,
    /// Who is waiting on which channel.
    pub presence: Arc<Presence>,
    /// Set when the relay begins to stop: new requests are refused with 503 from then on.
    pub stopping: AtomicBool,
}

impl App {
    /// Whether the relay is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}
