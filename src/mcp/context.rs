//! What an MCP method may use while it runs: the relay's store, logs, sessions, cap on long
//! requests, presence and recent fetch results, and who is calling. The HTTP transport that carried the call builds
//! one per call; the dispatch (`handler`), the tools and the resources only read it, so they
//! depend on this type and never on each other's.

use crate::capacity::LongRequests;
use crate::logs::Logs;
use crate::mcp::session::Sessions;
use crate::mcp::tools::MadeFetch;
use crate::page_cache::PageCache;
use crate::presence::Presence;
use crate::store::Store;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// The relay's parts and the caller, for one MCP call.
pub(crate) struct Context<'a> {
    pub store: &'a Store,
    pub logs: &'a Logs,
    pub long_requests: &'a LongRequests,
    pub sessions: &'a Sessions,
    /// The agent whose token made the call: it may only post under this name.
    pub agent: Option<&'a str>,
    /// The address the call came from, when known: with `agent`, whom the per-client quotas
    /// count the call against (`capacity::client_of`).
    pub peer: Option<IpAddr>,
    pub presence: &'a Arc<Presence>,
    /// Recent `fetch_messages` results.
    pub fetches: &'a PageCache<Arc<MadeFetch>>,
    /// The name the caller gives for presence (`X-Relay-Agent`, `?as=`), else its agent's.
    pub name: Option<String>,
    /// The latest a wait may end, when the call shares one with others (a batch's calls wait
    /// by turns, and all of them together at most as long as one call may).
    pub wait_until: Option<Instant>,
    /// Whether the caller has gone (closed its connection): a wait for no one ends.
    pub client_gone: &'a dyn Fn() -> bool,
}
