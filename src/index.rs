//! The index memory keeps of the journal: where each message's line lies in the file (`Place`),
//! a message without its text (`Indexed`), and how far a reader has read a channel
//! (`Position`). Replay builds them, the checkpoint saves and loads them, and the store serves
//! pages from them; this module holds only the types, so those three need not know each other.

use serde::{Deserialize, Serialize};

/// Where a message's line lies in the journal file (without its newline), and how long its
/// text is, so a page can be cut by text size without reading it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Place {
    pub offset: u64,
    pub line_len: u32,
    pub text_len: u32,
}

/// A replayed message without its text: its id, time, channel (an index into
/// the replay's channel names) and where its line is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Indexed {
    pub id: u64,
    pub ts: f64,
    pub channel: u32,
    pub place: Place,
}

/// How far a reader has read a channel: every message up to `id` was returned to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    pub reader: String,
    pub target: String,
    pub id: u64,
}
