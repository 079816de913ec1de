//! The Model Context Protocol, apart from any transport: JSON-RPC wire types (`jsonrpc`),
//! sessions and their outgoing queues (`session`, with ids from `session_id`, and those ended
//! kept in `ended_sessions`), what a call may
//! use (`context`), the relay's tools (`tools`), one resource per channel (`resources`, named by `channel_uri`), and
//! the method dispatch (`handler`), which alone imports the tools and the resources. The HTTP transports in `http::streamable` and `http::legacy` carry it.

pub(crate) mod channel_uri;
pub(crate) mod context;
pub(crate) mod ended_sessions;
pub(crate) mod handler;
pub(crate) mod jsonrpc;
pub(crate) mod resources;
pub(crate) mod session;
pub(crate) mod session_id;
pub(crate) mod tools;

/// Protocol versions this relay speaks, newest first.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version assumed when a request carries no `MCP-Protocol-Version` and no session says.
pub(crate) const DEFAULT_VERSION: &str = "2025-03-26";

/// Whether `version` is one this relay speaks.
pub(crate) fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}
