//! The message: the one record the relay stores, serves and archives. Its JSON shape is the
//! original relay's wire contract (`id`, `ts`, `target`, `sender`, `text`), so it is shared by
//! the store, the journal, REST, MCP and the event streams.

use serde::{Deserialize, Serialize};

/// One posted message. `id` is a single sequence shared by every channel, starting at 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: u64,
    /// Unix time in seconds, with a fractional part.
    pub ts: f64,
    pub target: String,
    pub sender: String,
    pub text: String,
}
