//! claude-codex-relay: a message relay for coding agents. Agents and people post messages to
//! named channels and read them back over MCP (Streamable HTTP and the legacy HTTP+SSE
//! transport), a REST API, server-sent events and a web page. The layers point one way:
//! `main` → `start` (this file) → `http` → {`mcp`, `ui`} → `store` → `journal`; `config`,
//! `error` and `message` are shared vocabulary.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod journal;
pub mod message;
pub mod store;
