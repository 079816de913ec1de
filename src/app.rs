//! The running relay's shared state, built once at start and handed to every request: the
//! configuration, the store, the MCP sessions, the logs, the cap on long requests, and who is
//! listening.

use crate::capacity::LongRequests;
use crate::config::Config;
use crate::logs::Logs;
use crate::mcp::session::Sessions;
use crate::presence::Presence;
use crate::store::Store;
use std::sync::Arc;

/// Everything a request handler may reach.
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub sessions: Arc<Sessions>,
    pub logs: Logs,
    pub long_requests: LongRequests,
    /// Who is waiting on which channel.
    pub presence: Arc<Presence>,
}
