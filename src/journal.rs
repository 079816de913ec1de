//! The durable message journal: an append-only file of JSON lines under the data directory,
//! replayed at start. (Interface only; the durable implementation follows.)

use crate::config::Fsync;
use crate::error::Error;
use crate::message::Message;
use std::path::Path;

/// What replay found: the messages in id order and the highest id ever handed out.
pub struct Replay {
    pub messages: Vec<Message>,
    pub last_id: u64,
}

/// The open journal, holding the data directory's lock.
pub struct Journal {
    _fsync: Fsync,
}

impl Journal {
    /// Opens (creating) the journal in `dir`, takes the directory's lock and replays it.
    pub fn open(_dir: &Path, fsync: Fsync) -> Result<(Journal, Replay), Error> {
        Ok((
            Journal { _fsync: fsync },
            Replay {
                messages: Vec::new(),
                last_id: 0,
            },
        ))
    }

    /// Appends `batch` as one write (and one fsync with `Fsync::Always`). On failure nothing
    /// of the batch remains in the file.
    pub fn append(&mut self, _batch: &[Message]) -> Result<(), Error> {
        Ok(())
    }

    /// Atomically replaces the journal with `keep`, remembering `last_id` so the sequence
    /// continues even if the newest messages were dropped.
    pub fn rewrite<'a>(
        &mut self,
        _keep: impl Iterator<Item = &'a Message>,
        _last_id: u64,
    ) -> Result<(), Error> {
        Ok(())
    }
}
