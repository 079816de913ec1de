//! The durable message journal: `messages.jsonl` under the data directory, one JSON object per
//! line, appended in whole batches and replayed at start. Four kinds of line, told apart by
//! their keys: a message (the `Message` wire shape, optionally with `reply_to` and the
//! idempotency `key` it was posted with, the text always last); `{"read":{reader,target,id}}`,
//! a reader's position (the latest line for a reader and channel wins); `{"delete":{"id":N}}`
//! or `{"delete":{"target":T,"through":N}}`, a deletion, applied to the messages before it;
//! and, after a compaction, a first line `{"last_id":N}` so the id sequence continues even when
//! retention dropped the newest messages. Only message lines hold texts, so an index of
//! messages with texts read back by offset needs nothing else from the file. A compaction
//! writes the marker, the positions and the kept messages (with their keys), so deleted texts
//! leave the disk. Journals written before replies, keys, positions and deletions existed are
//! plain message lines and read the same. The directory itself is held under an exclusive
//! lock, so no removal of a file inside it can let a second relay in; `relay.lock` only names
//! the pid holding it. Replay repairs exactly one kind of damage, a last line without its
//! newline: cut off if it does not parse (torn by a crash mid-write, never acknowledged), kept
//! and given its newline if it does (whole: no proper prefix of a JSON object is one); anything
//! else stops start-up with the file and line, because silently dropping a message is worse
//! than not starting.

use crate::checkpoint::{self, Progress, CHECKPOINT_FILE};
use crate::config::Fsync;
use crate::error::Error;
use crate::idempotency::{self, Keys};
use crate::index::{Indexed, Place, Position};
use crate::json_string;
use crate::message::{escape_separators, has_separators, now, wire_json, Message, WireJson};
use crate::written_pages::WrittenPages;
use serde::{Deserialize, Serialize};
use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, BufWriter, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The journal's file name inside the data directory.
pub(crate) const JOURNAL_FILE: &str = "messages.jsonl";
/// The name of the file inside the data directory that names the pid holding its lock.
pub(crate) const LOCK_FILE: &str = "relay.lock";
/// Replay reads in blocks this large, so a million lines cost under two hundred reads. No
/// larger: a block the allocator maps and unmaps raises the size it serves from its reusable
/// heaps, and so how much freed memory it keeps, for the life of the process.
const READ_BUFFER: usize = 1024 * 1024;
/// An append buffer grown past this by a huge batch is given back afterwards.
const KEEP_BUFFER: usize = 1024 * 1024;
/// A message text this long or longer is written from where it lies, between the pieces of its
/// batch's buffer, instead of being copied into it: a large post costs no copy and no buffer
/// the size of its batch.
const COPY_LIMIT: usize = 64 * 1024;

/// What replay found: the messages in id order (deletions applied) without their texts, the
/// channels they name, the highest id ever handed out, the idempotency keys still in their
/// window and every reader's position.
#[derive(Default)]
pub(crate) struct Replay {
    pub messages: Vec<Indexed>,
    /// The channel names `Indexed::channel` points into.
    pub channels: Vec<String>,
    pub last_id: u64,
    pub keys: Keys,
    pub positions: Vec<Position>,
    /// The journal still holds the lines of messages since deleted (a crash came before the
    /// compaction that removes them).
    pub holds_deleted: bool,
}

/// What a deletion removes: one message, or a whole channel up to a message id (what is
/// posted to it later is a new history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Deletion {
    Channel { target: String, through: u64 },
    Message { id: u64 },
}

/// One line to append.
pub(crate) enum Line<'a> {
    /// A message, with the idempotency key it was posted with.
    Message(&'a Message, Option<&'a str>),
    /// A message as `Message` writes it, with its text's JSON string already made (as
    /// `serde_json` writes it), so the text is copied rather than escaped again.
    Encoded(&'a Message, Option<&'a str>, &'a str),
    Read(&'a Position),
    Delete(&'a Deletion),
}

/// A message line as written: the message's own fields, the optional key, and the text last,
/// so a reader can take everything else from the start of a line without the text.
#[derive(Serialize, Clone, Copy)]
struct MessageOut<'a> {
    id: u64,
    ts: f64,
    target: &'a str,
    sender: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    text: &'a str,
}

impl<'a> MessageOut<'a> {
    /// The line of message `m`, posted with `key`.
    fn of(m: &'a Message, key: Option<&'a str>) -> MessageOut<'a> {
        MessageOut {
            id: m.id,
            ts: m.ts,
            target: &m.target,
            sender: &m.sender,
            reply_to: m.reply_to,
            key,
            text: &m.text,
        }
    }

    /// All of the line before its text: `{...,"text":""}` without its last three bytes, the
    /// same whatever the text. The line is this, the text's JSON string, then `AFTER_TEXT`.
    fn before_text(self) -> String {
        // Every field is a number or a string: this always serialises.
        let mut head = serde_json::to_string(&MessageOut { text: "", ..self }).unwrap_or_default();
        head.truncate(head.len().saturating_sub(3));
        head
    }
}

/// What ends a message line after its text's JSON string (see `MessageOut::before_text`).
const AFTER_TEXT: &[u8] = b"}";

/// A message line as read: the wire shape plus the optional key. Strings without escapes are
/// borrowed from the line, so replay allocates nothing for most of them.
#[derive(Deserialize)]
struct MessageIn<'a> {
    id: u64,
    ts: f64,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    sender: Cow<'a, str>,
    #[serde(default)]
    reply_to: Option<u64>,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// The fields of a message line before its text, as read for its wire JSON.
#[derive(Deserialize)]
struct MessageHead<'a> {
    id: u64,
    ts: f64,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    sender: Cow<'a, str>,
    #[serde(default)]
    reply_to: Option<u64>,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
}

/// Every line that is not a message, as read: exactly one field is set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    #[serde(default)]
    last_id: Option<u64>,
    #[serde(default)]
    read: Option<Position>,
    #[serde(default)]
    delete: Option<Deletion>,
}

/// A reader's position or a deletion, as written.
#[derive(Serialize)]
struct RecordOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    read: Option<&'a Position>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delete: Option<&'a Deletion>,
}

impl Line<'_> {
    /// The length of the text a message line holds (0 for other lines).
    fn text_len(&self) -> u32 {
        match self {
            // Texts are bounded far below 4 GiB by `max_message_bytes`.
            Line::Message(m, _) | Line::Encoded(m, _, _) => {
                u32::try_from(m.text.len()).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }

    /// About how many bytes the line takes in its batch's buffer (a text written from where it
    /// lies takes none), so the buffer is sized once.
    fn size_hint(&self) -> usize {
        match self {
            Line::Encoded(m, key, text) => {
                let copied = if text.len() < COPY_LIMIT {
                    text.len()
                } else {
                    0
                };
                copied + m.target.len() + m.sender.len() + key.map_or(0, str::len) + 96
            }
            Line::Message(m, key) => {
                m.text.len() + m.target.len() + m.sender.len() + key.map_or(0, str::len) + 96
            }
            _ => 96,
        }
    }

    fn write(&self, out: &mut impl Write) -> serde_json::Result<()> {
        match *self {
            Line::Message(m, key) => serde_json::to_writer(out, &MessageOut::of(m, key)),
            Line::Encoded(m, key, text) => {
                let head = MessageOut::of(m, key).before_text();
                out.write_all(head.as_bytes())
                    .and_then(|()| out.write_all(text.as_bytes()))
                    .and_then(|()| out.write_all(AFTER_TEXT))
                    .map_err(serde_json::Error::io)
            }
            Line::Read(p) => serde_json::to_writer(
                out,
                &RecordOut {
                    read: Some(p),
                    delete: None,
                },
            ),
            Line::Delete(d) => serde_json::to_writer(
                out,
                &RecordOut {
                    read: None,
                    delete: Some(d),
                },
            ),
        }
    }
}

/// What a compaction keeps besides the messages: the keys of kept messages (by id) and every
/// reader's position.
#[derive(Default)]
pub(crate) struct Extras {
    pub keys: HashMap<u64, String>,
    pub positions: Vec<Position>,
}

/// The open journal, holding the data directory's lock.
pub(crate) struct Journal {
    path: PathBuf,
    dir: PathBuf,
    /// Opened for appending: every write lands at the end of the file.
    file: Appender,
    /// A read handle on the same file, for positional reads at the places appends report.
    reader: Arc<Reader>,
    /// Length of the file after the last successful append; a failed append is cut back to it.
    len: u64,
    /// A failed append could not be cut back: the file holds a partial batch past `len`, which
    /// must be removed before anything else is written after it.
    dirty: bool,
    fsync: Fsync,
    /// Reused serialisation buffer, so an append allocates nothing in the common case.
    buf: Vec<u8>,
    /// The file's pages let go once on disk.
    pages: WrittenPages,
    /// The data directory, locked for as long as the journal is open; closing it releases the
    /// lock.
    _lock: File,
}

/// A compacted journal written to a temporary file, waiting for `Journal::install`.
pub(crate) struct Compaction {
    tmp: PathBuf,
    /// Append handle on the temporary file.
    file: File,
    len: u64,
    /// The journal's length when the kept messages were taken.
    mark: u64,
    /// (id, place) of every kept message in the compacted file, ascending by id.
    places: Vec<(u64, Place)>,
}

/// Where the messages of a journal are after a compaction was installed.
pub(crate) struct Relocation {
    /// A read handle on the new journal, which the new places point into (the old handle
    /// still reads the replaced file, whose places stay right in it).
    pub file: Arc<Reader>,
    places: Vec<(u64, Place)>,
    mark: u64,
    /// Where the lines appended after `mark` start in the new file.
    base: u64,
}

impl Relocation {
    /// Where message `id`, at `old` in the replaced file, is now; `None` if the compaction did
    /// not keep it.
    pub(crate) fn place(&self, id: u64, old: Place) -> Option<Place> {
        if old.offset >= self.mark {
            return Some(Place {
                offset: old.offset - self.mark + self.base,
                ..old
            });
        }
        let at = self.places.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(self.places[at].1)
    }
}

impl Journal {
    /// Opens (creating) the journal in `dir`, takes the directory's lock and replays it.
    pub(crate) fn open(dir: &Path, fsync: Fsync) -> Result<(Journal, Replay), Error> {
        fs::create_dir_all(dir).map_err(|e| Error::Config {
            source: crate::config::absolute(dir),
            key: "data_dir".into(),
            message: format!(
                "cannot create the folder: {}",
                crate::error::folder_failure(&dir.join("messages.jsonl"), &e)
            ),
        })?;
        let lock = lock_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_context("cannot open", &path, e))?;
        if !existed && fsync == Fsync::Always {
            // The new file's directory entry must be durable too, or the first acknowledged
            // messages could vanish with it after a power loss.
            sync_dir(dir).map_err(|e| io_context("cannot sync", dir, e))?;
        }
        let (replay, len) = replay(&path, &file)?;
        let reader = file
            .try_clone()
            .map_err(|e| io_context("cannot open a reader on", &path, e))?;
        Ok((
            Journal {
                path,
                dir: dir.to_path_buf(),
                file: Appender::new(file),
                reader: Arc::new(Reader {
                    file: reader,
                    dir: dir.to_path_buf(),
                }),
                len,
                dirty: false,
                fsync,
                buf: Vec::new(),
                pages: WrittenPages::default(),
                _lock: lock,
            },
            replay,
        ))
    }

    /// Whether every append waits for the disk (`Fsync::Always`).
    pub(crate) fn syncs(&self) -> bool {
        self.fsync == Fsync::Always
    }

    /// Appends `batch` as one write (and one fsync with `Fsync::Always`). On failure nothing
    /// of the batch remains in the file.
    #[cfg(test)]
    pub(crate) fn append(&mut self, batch: &[Message]) -> Result<(), Error> {
        let lines: Vec<Line> = batch.iter().map(|m| Line::Message(m, None)).collect();
        self.append_lines(&lines).map(drop)
    }

    /// Appends `batch` (messages, positions, deletions) as one write, like `append`, and says
    /// where each line went.
    pub(crate) fn append_lines(&mut self, batch: &[Line]) -> Result<Vec<Place>, Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let every = match self.fsync {
            Fsync::Always => Duration::ZERO,
            Fsync::Never => REMOVAL_CHECK_EVERY,
        };
        if let Some(why) = self.file.lost(every, self.len) {
            // Appends would land in a file no start can find (its directory was deleted, or
            // the file itself), or after a line another program cut in two, where the next
            // start stops: refused like a full disk, never acknowledged and then lost.
            return Err(Error::Storage(format!("{} {why}", self.path.display())));
        }
        if self.dirty {
            // An earlier failed append left a partial batch behind; writing after it would
            // put damage in the middle of the journal, which stops the next start.
            self.file.set_len(self.len).map_err(|e| {
                self.storage(
                    "cannot remove a partial write from",
                    &io::Error::new(e.kind(), format!("{e}; refusing to write after it")),
                )
            })?;
            self.dirty = false;
        }
        self.buf.clear();
        self.buf.reserve(batch.iter().map(Line::size_hint).sum());
        let mut places = Vec::with_capacity(batch.len());
        // Texts written from where they lie: where each goes in the buffer, and the text.
        let mut lent: Vec<(usize, &str)> = Vec::new();
        let mut lent_bytes = 0;
        for line in batch {
            let start = self.buf.len() + lent_bytes;
            match *line {
                Line::Encoded(m, key, text) if text.len() >= COPY_LIMIT => {
                    let head = MessageOut::of(m, key).before_text();
                    self.buf.extend_from_slice(head.as_bytes());
                    lent.push((self.buf.len(), text));
                    lent_bytes += text.len();
                    self.buf.extend_from_slice(AFTER_TEXT);
                }
                _ => line
                    .write(&mut self.buf)
                    .map_err(|e| Error::Storage(format!("cannot encode a journal line: {e}")))?,
            }
            places.push(Place {
                offset: self.len + start as u64,
                line_len: line_len(self.buf.len() + lent_bytes - start)?,
                text_len: line.text_len(),
            });
            self.buf.push(b'\n');
        }
        let mut parts = Vec::with_capacity(2 * lent.len() + 1);
        let mut from = 0;
        for (at, text) in lent {
            parts.push(IoSlice::new(&self.buf[from..at]));
            parts.push(IoSlice::new(text.as_bytes()));
            from = at;
        }
        parts.push(IoSlice::new(&self.buf[from..]));
        let mut written = self.file.write_all(&mut parts);
        if written.is_ok() && self.fsync == Fsync::Always {
            written = self.file.sync_data();
        }
        let added = (self.buf.len() + lent_bytes) as u64;
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        match written {
            Ok(()) => {
                self.len += added;
                self.pages.appended(&self.file.file, self.len);
                Ok(places)
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    log::error!(
                        "{}: cannot cut a failed write back to {} bytes: {cut}",
                        self.path.display(),
                        self.len
                    );
                    self.dirty = true;
                }
                Err(self.storage("cannot write", &e))
            }
        }
    }

    /// Atomically replaces the journal with `keep`, remembering `last_id` so the sequence
    /// continues even if the newest messages were dropped. Holds the caller (and so the posts
    /// behind it) for the whole rewrite; `prepare` and `install` split it so they need not.
    #[cfg(test)]
    pub(crate) fn rewrite<'a>(
        &mut self,
        keep: impl Iterator<Item = &'a Message>,
        last_id: u64,
    ) -> Result<(), Error> {
        let keep = keep.map(Ok);
        let compaction = Journal::prepare(&self.dir, keep, &Extras::default(), last_id, self.len)?;
        self.install(compaction).map(drop)
    }

    /// Where the journal ends now: a compaction prepared from the messages up to here takes
    /// everything appended after it along when it is installed.
    pub(crate) fn mark(&self) -> u64 {
        self.len
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a compacted journal (`keep` and `extras`, everything up to `mark`) to a
    /// temporary file in `dir`, made durable. Needs no access to the open journal, so posts go
    /// on meanwhile. Deleted messages are simply not in `keep`: their texts leave the disk.
    /// `keep` yields the messages in id order; a message it cannot give fails the compaction.
    pub(crate) fn prepare<M: Borrow<Message>>(
        dir: &Path,
        keep: impl Iterator<Item = io::Result<M>>,
        extras: &Extras,
        last_id: u64,
        mark: u64,
    ) -> Result<Compaction, Error> {
        let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
        match write_compacted(&tmp, keep, extras, last_id, mark) {
            Ok(compaction) => Ok(compaction),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(Error::Storage(format!(
                    "cannot write {}: {e}",
                    tmp.display()
                )))
            }
        }
    }

    /// Finishes a compaction: copies what was appended since its mark, makes it durable and
    /// renames it over the journal, and says where every message now is. On failure the
    /// journal stays as it was.
    pub(crate) fn install(&mut self, mut c: Compaction) -> Result<Relocation, Error> {
        let tail = self.copy_tail(&mut c);
        let (copied, reader) = match tail.and_then(|n| Ok((n, c.file.try_clone()?))) {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&c.tmp);
                return Err(Error::Storage(format!(
                    "cannot finish {}: {e}",
                    c.tmp.display()
                )));
            }
        };
        if let Err(e) = fs::rename(&c.tmp, &self.path) {
            let _ = fs::remove_file(&c.tmp);
            return Err(Error::Storage(format!(
                "cannot rename {} to {}: {e}",
                c.tmp.display(),
                self.path.display()
            )));
        }
        // The handle was opened on the temporary file, which is now the journal: there is no
        // moment where appends could go to the unlinked old file.
        self.file.replace(c.file);
        self.len = c.len + copied;
        self.pages = WrittenPages::default();
        self.reader = Arc::new(Reader {
            file: reader,
            dir: self.dir.clone(),
        });
        let relocation = Relocation {
            file: Arc::clone(&self.reader),
            places: c.places,
            mark: c.mark,
            base: c.len,
        };
        self.dirty = false;
        if let Err(e) = sync_dir(&self.dir) {
            // The rename is done and visible; only its durability across a power loss is in
            // doubt, and the old journal holds every kept message too.
            log::warn!(
                "{}: cannot sync the directory after compaction: {e}",
                self.dir.display()
            );
        }
        Ok(relocation)
    }

    /// Appends the journal's bytes from the compaction's mark to its end onto the compacted
    /// file, durably; returns how many.
    fn copy_tail(&self, c: &mut Compaction) -> io::Result<u64> {
        let tail = self.len.saturating_sub(c.mark);
        if tail > 0 {
            let mut source = File::open(&self.path)?;
            source.seek(SeekFrom::Start(c.mark))?;
            let copied = io::copy(&mut source.take(tail), &mut c.file)?;
            if copied != tail {
                return Err(io::Error::other("the journal is shorter than recorded"));
            }
            c.file.sync_all()?;
        }
        Ok(tail)
    }

    /// Writes the replay checkpoint for the journal as it is now, so the next start reads it
    /// instead of the whole journal: from the checkpoint already there, if it still matches,
    /// plus the lines appended since; else from a replay of the whole file.
    pub(crate) fn checkpoint(&self) -> Result<(), Error> {
        (self.checkpoint_job())()
    }

    /// `checkpoint` as a job that needs no access to the journal, to run off the commit path:
    /// it checkpoints the file and length of now, even if a compaction replaces the file
    /// meanwhile (the next start then finds the checkpoint stale).
    pub(crate) fn checkpoint_job(&self) -> impl FnOnce() -> Result<(), Error> + Send + 'static {
        let (dir, path) = (self.dir.clone(), self.path.clone());
        let (file, len) = (Arc::clone(&self.reader), self.len);
        move || write_checkpoint(&dir, &path, &file.file, len)
    }

    /// A read handle on the journal file as it is now: the places appends report (and replay
    /// found) are right in it, even after a compaction replaces the file under its name.
    pub(crate) fn reader(&self) -> Arc<Reader> {
        Arc::clone(&self.reader)
    }

    fn storage(&self, what: &str, e: &io::Error) -> Error {
        Error::Storage(format!("{what} {}: {e}", self.path.display()))
    }

    /// Makes every later write, sync and cut-back of the journal fail while the returned flag
    /// is set, the way a full or read-only disk does, without needing either (or root).
    #[cfg(test)]
    pub(crate) fn inject_faults(&mut self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.file.faults = Some(std::sync::Arc::clone(&flag));
        flag
    }
}

/// How often, at most, appends that are not synced look up whether the journal's file was
/// removed or cut: a lookup per batch cost a twentieth of the processor time of small posts, and
/// without fsync an acknowledged post is not yet on disk anyway. Synced appends look every
/// time, next to their fsync.
const REMOVAL_CHECK_EVERY: Duration = Duration::from_millis(100);

/// The file the journal appends to: the one place its writes go through, so unit tests can
/// make them fail on demand.
struct Appender {
    file: File,
    /// When the file was last found whole (named, and as long as written), by `lost`.
    whole_at: Option<Instant>,
    /// Why the file takes no appends, once found: a removed file never gets its name back,
    /// nor a cut one its lines.
    lost: Option<String>,
    /// While set, a write stores only the first half of what it was given and then fails, and
    /// syncs and cut-backs fail outright.
    #[cfg(test)]
    faults: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Appender {
    /// Why the file must take no more appends, looked up (one `fstat`) unless it was found
    /// whole less than `every` ago: it has no name left in any directory (its last link was
    /// removed), or it is shorter than the `len` bytes written to it (another program cut it,
    /// and what is appended now would follow a torn line).
    fn lost(&mut self, every: Duration, len: u64) -> Option<&str> {
        use std::os::unix::fs::MetadataExt;
        let now = Instant::now();
        if self.lost.is_none() && self.whole_at.is_none_or(|at| now - at >= every) {
            self.lost = match self.file.metadata() {
                Ok(m) if m.nlink() == 0 => Some(
                    "was removed while the relay ran; restart it to start a new journal".into(),
                ),
                Ok(m) if m.len() < len => Some(format!(
                    "was cut to {} of the {len} bytes written to it while the relay ran; \
                     restart it to replay what is left",
                    m.len()
                )),
                _ => None,
            };
            self.whole_at = Some(now);
        }
        self.lost.as_deref()
    }

    /// Appends go to `file` from now on (the compacted journal renamed over the old one).
    fn replace(&mut self, file: File) {
        self.file = file;
        self.whole_at = None;
        self.lost = None;
    }

    fn new(file: File) -> Appender {
        Appender {
            file,
            whole_at: None,
            lost: None,
            #[cfg(test)]
            faults: None,
        }
    }

    /// Writes all of `parts` in order, in as few system calls as the kernel takes them.
    fn write_all(&mut self, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        #[cfg(test)]
        if self.faulty() {
            let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            self.file.write_all(&whole[..whole.len() / 2])?;
            return Err(Appender::fault());
        }
        // Drops leading empty parts, so a write of nothing makes no system call.
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            match self.file.write_vectored(parts) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut parts, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        #[cfg(test)]
        if self.faulty() {
            return Err(Appender::fault());
        }
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.faulty() {
            return Err(Appender::fault());
        }
        self.file.set_len(len)
    }

    #[cfg(test)]
    fn faulty(&self) -> bool {
        self.faults
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[cfg(test)]
    fn fault() -> io::Error {
        io::Error::from_raw_os_error(1) // EPERM, what a read-only (immutable) file answers
    }
}

/// Writes the checkpoint of the first `len` bytes of the journal `file` at `path` in `dir`.
fn write_checkpoint(dir: &Path, path: &Path, file: &File, len: u64) -> Result<(), Error> {
    let now = now();
    let progress = match checkpoint::load(dir, file, len, now) {
        Ok(Some(progress)) => progress,
        Ok(None) => Progress::default(),
        // Routine after a compaction, which replaces the journal the checkpoint covered.
        Err(why) => {
            log::debug!("{}: replacing {CHECKPOINT_FILE} ({why})", dir.display());
            Progress::default()
        }
    };
    let progress = scan(path, file, len, progress, Torn::Refuse)?;
    checkpoint::save(dir, file, &progress).map_err(|e| {
        Error::Storage(format!(
            "cannot write {}: {e}",
            dir.join(CHECKPOINT_FILE).display()
        ))
    })
}

/// Takes the exclusive lock on the directory `dir` itself and writes our pid into
/// `dir/relay.lock`. Returns the locked directory handle.
fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let locked = File::open(dir).map_err(|e| io_context("cannot open", dir, e))?;
    match locked.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = match fs::read_to_string(&path) {
                Ok(held) if !held.trim().is_empty() => format!("pid {}", held.trim()),
                Ok(_) => "a process that has not written its pid yet".to_string(),
                Err(_) => format!("a process whose {LOCK_FILE} is missing"),
            };
            return Err(Error::Locked {
                path: path.display().to_string(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_context("cannot lock", dir, e)),
    }
    fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|e| io_context("cannot write", &path, e))?;
    Ok(locked)
}

/// Reads the journal, cutting a torn last line off the file (or ending a whole one that lacks
/// its newline with one): from the end of a checkpoint that matches it, or else from the start.
/// Returns what was found and the file's length afterwards.
fn replay(path: &Path, file: &File) -> Result<(Replay, u64), Error> {
    // Read no more than the length at open: the lock keeps writers out, and a device such as
    // /dev/full would otherwise never end.
    let size = file
        .metadata()
        .map_err(|e| io_context("cannot read", path, e))?
        .len();
    let dir = path.parent().unwrap_or(Path::new("."));
    let now = now();
    let progress = match checkpoint::load(dir, file, size, now) {
        Ok(Some(progress)) if size == 0 => progress,
        Ok(Some(progress)) => {
            log::info!(
                "{}: starting from the checkpoint of its first {} bytes ({} messages); \
                 replaying the {} bytes after it",
                path.display(),
                progress.offset,
                progress.messages.len(),
                size - progress.offset
            );
            progress
        }
        Ok(None) => Progress::default(),
        Err(why) => {
            log::warn!(
                "{}: not using {CHECKPOINT_FILE}: {why}; replaying the whole journal",
                path.display()
            );
            Progress::default()
        }
    };
    let progress = scan(path, file, size, progress, Torn::Cut)?;
    let offset = progress.offset;
    Ok((finish(progress), offset))
}

/// Reads `file` from `at` on by position (`pread`), leaving the handle's file offset alone.
struct ReadAt<'a> {
    file: &'a File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// What `scan` does with a last line that has no newline.
#[derive(Clone, Copy, PartialEq)]
enum Torn {
    /// At start-up: cuts it off the file if it does not parse, a write a crash interrupted;
    /// else it is whole, and is read and given its newline.
    Cut,
    /// Stops with an error and leaves the file alone: while the relay runs, where the scanned
    /// length ends on a line boundary and the file is being appended to.
    Refuse,
}

/// Reads the journal's lines from `progress.offset` up to `size` into `progress`; a last line
/// without its newline is cut off, kept or refused, as `torn` says. The lines are read by position, never
/// through the handle's file offset: a handle cloned from the appender shares that offset, and
/// every append moves it to the end of the file.
fn scan(
    path: &Path,
    file: &File,
    size: u64,
    mut progress: Progress,
    torn: Torn,
) -> Result<Progress, Error> {
    let shown = path.display().to_string();
    let damage = |line: usize, message: String| Error::Journal {
        path: shown.clone(),
        line,
        message,
    };
    // A name no post could give is not the relay's writing: the line stops start-up rather
    // than be loaded, or skipped and then lost to the next compaction.
    let kept_name = |line: usize, field: &str, name: &str| {
        crate::names::check_kept(field, name)
            .map_err(|e| damage(line, format!("{e}: no post could give this {field}")))
    };
    let source = ReadAt {
        file,
        at: progress.offset,
    };
    let rest = size.saturating_sub(progress.offset);
    let mut reader = BufReader::with_capacity(READ_BUFFER, source.take(rest));
    let mut channel_of: HashMap<String, u32> = progress
        .channels
        .iter()
        .enumerate()
        .map(|(at, name)| (name.clone(), at as u32))
        .collect();
    let now = now();
    let mut line = Vec::with_capacity(1024);
    let mut fold_at = FOLD_POSITIONS_AFTER;
    let Progress {
        offset,
        lines: number,
        messages,
        channels,
        last_id,
        prev_id,
        keys,
        positions,
        deleted,
        cleared,
    } = &mut progress;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_context("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        *number += 1;
        let number = *number;
        let unterminated = line.last() != Some(&b'\n');
        if unterminated {
            if torn == Torn::Refuse {
                return Err(damage(
                    number,
                    format!(
                        "it has no newline within the {size} bytes read ({n} bytes read of it)"
                    ),
                ));
            }
            if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err() {
                // A torn last line: the write that made it never completed, so no one was
                // told it succeeded. Cut it so the next append starts on a line boundary.
                log::warn!(
                    "{shown}: line {number}: cutting off a torn last line ({n} bytes) left by \
                     a crash mid-write; it was never acknowledged"
                );
                file.set_len(*offset)
                    .map_err(|e| io_context("cannot cut the torn last line of", path, e))?;
                break;
            }
            // Whole JSON, which no proper prefix of a line's object is: the line is complete
            // (its write may have been acknowledged, or another writer left it so) and only
            // its newline is missing. Read as if it were there; added once the line is read.
            line.push(b'\n');
        }
        let n = line.len();
        let start = *offset;
        *offset += n as u64;
        let body = &line[..n - 1];
        match serde_json::from_slice::<MessageIn>(body) {
            Ok(m) => {
                kept_name(number, "sender", &m.sender)?;
                if m.id <= *prev_id {
                    return Err(damage(
                        number,
                        format!(
                            "message id {} does not follow id {prev_id}: ids must increase",
                            m.id
                        ),
                    ));
                }
                *prev_id = m.id;
                *last_id = (*last_id).max(m.id);
                if let Some(key) = &m.key {
                    let entry = idempotency::Entry {
                        id: m.id,
                        digest: idempotency::digest(&m.target, m.reply_to, &m.text),
                    };
                    keys.remember(&m.sender, key, entry, m.ts, now);
                }
                let channel = match channel_of.get(m.target.as_ref()) {
                    Some(c) => *c,
                    None => {
                        kept_name(number, "target", &m.target)?;
                        let c = u32::try_from(channels.len())
                            .map_err(|_| damage(number, "more than 2^32 channels".into()))?;
                        channels.push(m.target.to_string());
                        channel_of.insert(m.target.into_owned(), c);
                        c
                    }
                };
                messages.push(Indexed {
                    id: m.id,
                    ts: m.ts,
                    channel,
                    place: Place {
                        offset: start,
                        line_len: line_len(body.len())?,
                        text_len: u32::try_from(m.text.len()).unwrap_or(u32::MAX),
                    },
                });
            }
            Err(e) => match serde_json::from_slice::<RecordIn>(body) {
                Ok(RecordIn {
                    last_id: Some(marker),
                    read: None,
                    delete: None,
                }) if number == 1 => *last_id = (*last_id).max(marker),
                Ok(RecordIn {
                    last_id: Some(_), ..
                }) => {
                    return Err(damage(
                        number,
                        "a {\"last_id\"} marker may only be the first line".into(),
                    ))
                }
                Ok(RecordIn {
                    last_id: None,
                    read: Some(p),
                    delete: None,
                }) => {
                    kept_name(number, "reader", &p.reader)?;
                    kept_name(number, "target", &p.target)?;
                    positions.push(p);
                    if positions.len() >= fold_at {
                        fold_positions(positions);
                        fold_at = 2 * positions.len() + FOLD_POSITIONS_AFTER;
                    }
                }
                Ok(RecordIn {
                    last_id: None,
                    read: None,
                    delete: Some(Deletion::Message { id }),
                }) => {
                    deleted.insert(id);
                }
                Ok(RecordIn {
                    last_id: None,
                    read: None,
                    delete: Some(Deletion::Channel { target, through }),
                }) => {
                    kept_name(number, "target", &target)?;
                    let upto = cleared.entry(target).or_insert(0);
                    *upto = through.max(*upto);
                }
                _ => return Err(damage(number, format!("not a message: {e}"))),
            },
        }
        if unterminated {
            log::warn!(
                "{shown}: line {number}: adding the newline the last line lacks; the line is \
                 whole and kept"
            );
            let mut out = file;
            out.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .map_err(|e| io_context("cannot add the missing newline to", path, e))?;
            break;
        }
    }
    Ok(progress)
}

/// Reader positions gathered by replay before they are folded (see [`fold_positions`]).
const FOLD_POSITIONS_AFTER: usize = 4096;

/// Keeps one position per reader and channel, the furthest: replay meets a line for every
/// move of a reader, and only the last one counts.
fn fold_positions(positions: &mut Vec<Position>) {
    positions.sort_unstable_by(|a, b| {
        (&a.reader, &a.target, std::cmp::Reverse(a.id)).cmp(&(
            &b.reader,
            &b.target,
            std::cmp::Reverse(b.id),
        ))
    });
    positions.dedup_by(|later, kept| later.reader == kept.reader && later.target == kept.target);
}

/// What replay found once every line is read: the deletions applied to the messages.
fn finish(progress: Progress) -> Replay {
    let Progress {
        mut messages,
        channels,
        last_id,
        mut keys,
        mut positions,
        deleted,
        cleared,
        ..
    } = progress;
    // A channel's deletion takes its readers' positions with it, as the running relay did
    // (`State::forget_positions`): a position at or before the deletion is of the old history.
    if !cleared.is_empty() {
        positions.retain(|p| cleared.get(&p.target).is_none_or(|upto| p.id > *upto));
    }
    let read = messages.len();
    if !deleted.is_empty() || !cleared.is_empty() {
        let channel_of: HashMap<&str, u32> = channels
            .iter()
            .enumerate()
            .map(|(at, name)| (name.as_str(), at as u32))
            .collect();
        let cleared: HashMap<u32, u64> = cleared
            .iter()
            .filter_map(|(target, upto)| Some((*channel_of.get(target.as_str())?, *upto)))
            .collect();
        let mut removed = Vec::new();
        messages.retain(|m| {
            let kept =
                !deleted.contains(&m.id) && cleared.get(&m.channel).is_none_or(|upto| m.id > *upto);
            if !kept {
                removed.push(m.id);
            }
            kept
        });
        // As the running relay did at the deletion.
        keys.forget(&removed);
    }
    let holds_deleted = messages.len() < read;
    messages.shrink_to_fit();
    Replay {
        messages,
        channels,
        last_id,
        keys,
        positions,
        holds_deleted,
    }
}

/// Writes a compacted journal to `tmp`, made durable, with an append handle on it and where
/// each kept message went.
fn write_compacted<M: Borrow<Message>>(
    tmp: &Path,
    keep: impl Iterator<Item = io::Result<M>>,
    extras: &Extras,
    last_id: u64,
    mark: u64,
) -> io::Result<Compaction> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(tmp)?;
    // A temporary file left by an earlier failed compaction starts over.
    file.set_len(0)?;
    let mut out = Counted {
        inner: BufWriter::with_capacity(KEEP_BUFFER, &file),
        written: 0,
    };
    writeln!(out, "{{\"last_id\":{last_id}}}")?;
    for p in &extras.positions {
        Line::Read(p).write(&mut out)?;
        out.write_all(b"\n")?;
    }
    let mut places = Vec::new();
    let mut pages = WrittenPages::default();
    for m in keep {
        let m = m?;
        let m = m.borrow();
        let line = Line::Message(m, extras.keys.get(&m.id).map(String::as_str));
        let offset = out.written;
        line.write(&mut out)?;
        let len = usize::try_from(out.written - offset).unwrap_or(usize::MAX);
        places.push((
            m.id,
            Place {
                offset,
                line_len: line_len(len).map_err(io::Error::other)?,
                text_len: line.text_len(),
            },
        ));
        out.write_all(b"\n")?;
        // Advice behind what the buffer holds, which is less than the distance it keeps.
        pages.appended(&file, out.written);
    }
    out.inner.flush()?;
    drop(out);
    file.sync_all()?;
    let len = file.metadata()?.len();
    Ok(Compaction {
        tmp: tmp.to_path_buf(),
        file,
        len,
        mark,
        places,
    })
}

/// A writer that counts the bytes written through it, to know where each line starts.
struct Counted<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A line's length as a `Place` holds it: lines are bounded far below 4 GiB by the message
/// size limit, and one that is not is refused rather than misplaced.
fn line_len(len: usize) -> Result<u32, Error> {
    u32::try_from(len).map_err(|_| Error::Storage(format!("a journal line of {len} bytes")))
}

/// A read handle on one journal file, for positional reads at the places its appends report
/// (and replay found); it stays right after a compaction replaces the file under its name. A
/// read that does not find the message expected at a place (its id, channel and time, as the
/// index holds them) met damage made since the file was read at start: the read fails, and the
/// replay checkpoint is removed, so that the next start replays the whole journal and names the
/// damaged line (or places a changed whole line where it says) instead of trusting the index.
pub(crate) struct Reader {
    file: File,
    /// The data directory, where the checkpoint lies.
    dir: PathBuf,
}

/// What the index knows of a message whose line it placed, all of which a read of the line
/// checks: its id, time and channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub id: u64,
    pub ts: f64,
    pub target: &'a str,
}

impl Expected<'_> {
    /// Whether a line holding message `id` of `target` at time `ts` is this message; if not,
    /// the line was changed since it was placed, which is damage.
    fn check(&self, id: u64, ts: f64, target: &str) -> io::Result<()> {
        let differs = if id != self.id {
            format!("message {id}")
        } else if target != self.target {
            format!("message {id} of channel {target:?}")
        } else if ts.to_bits() != self.ts.to_bits() {
            format!("message {id} at time {ts}")
        } else {
            return Ok(());
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the journal holds {differs} where message {} of channel {:?} at time {} was \
                 expected",
                self.id, self.target, self.ts
            ),
        ))
    }
}

impl Reader {
    /// The message `expected` names, whose line is at `place`.
    pub(crate) fn message(&self, expected: Expected, place: Place) -> io::Result<Message> {
        let read = read_line(&self.file, place)
            .and_then(|line| parse_message(&line, place))
            .and_then(|m| expected.check(m.id, m.ts, &m.target).map(|()| m));
        self.damage_seen(read)
    }

    /// The message `expected` names, whose line is at `place`, as its wire JSON (see
    /// `message::wire_json`). A line this journal writes is the wire JSON already but for the
    /// idempotency key, with the text last and escaped as replies escape it; such a line is
    /// passed on with its text as it lies in the file, never unescaped or escaped again. Any
    /// other line (an older writer's field order or escaping) is parsed and serialised again.
    /// With it, whether the line's text may be sent as it lies (`wire_json_lying`): it was
    /// written so, and holds no U+2028 or U+2029, which replies escape.
    pub(crate) fn wire_json(
        &self,
        expected: Expected,
        place: Place,
    ) -> io::Result<(WireJson, bool)> {
        self.damage_seen(wire_json_at(&self.file, place, expected))
    }

    /// The message `expected` names, whose line is at `place` and whose text a `wire_json` read
    /// found may be sent as it lies, as a `LyingJson`: the fields before the text are read and
    /// checked as every read checks them; the text is sent from the file unread.
    pub(crate) fn wire_json_lying(
        self: &Arc<Self>,
        expected: Expected,
        place: Place,
    ) -> io::Result<LyingJson> {
        self.damage_seen(lying_at(self, place, expected))
    }

    /// A read that failed met damage: the next start is to replay the whole journal.
    fn damage_seen<T>(&self, read: io::Result<T>) -> io::Result<T> {
        if read.is_err() {
            checkpoint::discard(&self.dir);
        }
        read
    }
}

fn wire_json_at(file: &File, place: Place, expected: Expected) -> io::Result<(WireJson, bool)> {
    // Checked as UTF-8 once, here: parsing a `str` does not check it again.
    let line = String::from_utf8(read_line(file, place)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let Some((head, json)) = as_written(&line) else {
        let m = parse_message(line.as_bytes(), place)?;
        expected.check(m.id, m.ts, &m.target)?;
        return Ok((wire_json(&m), false));
    };
    expected.check(head.id, head.ts, &head.target)?;
    let json = match json {
        Some(json) => json,
        None => line,
    };
    if has_separators(&json) {
        return Ok((Arc::new(escape_separators(json)), false));
    }
    Ok((Arc::new(json), true))
}

/// The bytes at the start of a line read to find its fields before the text: the fields take
/// at most about 2.5 KiB (a channel, a sender and a key of at most 128 characters each).
const HEAD_READ: usize = 4096;

/// A message's wire JSON whose text is sent as it lies in the journal: the part before the
/// text, made in memory, and where the rest (the text and the closing brace) lies in the file,
/// which stays open while this is held.
pub(crate) struct LyingJson {
    pub head: String,
    reader: Arc<Reader>,
    offset: u64,
    len: usize,
}

impl LyingJson {
    /// The file the rest lies in, where it starts and its length.
    pub(crate) fn rest(&self) -> (&File, u64, usize) {
        (&self.reader.file, self.offset, self.len)
    }

    /// The whole wire JSON's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.len
    }
}

/// The wire JSON of the message line at `place` as a `LyingJson`: the line's fields before the
/// text are read, checked against `expected` and as this journal writes them; the text is not
/// read.
fn lying_at(reader: &Arc<Reader>, place: Place, expected: Expected) -> io::Result<LyingJson> {
    let mut start = vec![0; (place.line_len as usize).min(HEAD_READ)];
    reader.file.read_exact_at(&mut start, place.offset)?;
    let no_head = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no message line as written at byte {}", place.offset),
        )
    };
    let text_at = text_start(&start).ok_or_else(no_head)?;
    let before = std::str::from_utf8(&start[..text_at]).map_err(|_| no_head())?;
    let (head, wire_head) = head_as_written(before).ok_or_else(no_head)?;
    expected.check(head.id, head.ts, &head.target)?;
    Ok(LyingJson {
        head: wire_head.unwrap_or_else(|| before.to_string()),
        reader: Arc::clone(reader),
        offset: place.offset + text_at as u64,
        len: place.line_len as usize - text_at,
    })
}

/// What `as_written` read of a message line besides its wire JSON: what a read checks.
struct Head {
    id: u64,
    ts: f64,
    target: String,
}

/// Of a message line as this journal writes it (the wire JSON, its text last and escaped as
/// replies escape it, the idempotency key before the text), its id, time and channel and its
/// wire JSON: `None` for the line itself, or the line without its key. The text is checked in
/// one pass and not parsed; only the fields before it are. `None` for any other line.
fn as_written(line: &str) -> Option<(Head, Option<String>)> {
    let (before, text) = split_text(line)?;
    if !json_string::is_string_as_written(text) {
        return None;
    }
    let (found, wire_head) = head_as_written(before)?;
    let json = wire_head.map(|mut json| {
        json.reserve(text.len() + 1);
        json.push_str(text);
        json.push('}');
        json
    });
    Some((found, json))
}

/// Of the part of a message line before its text (`{...,"text":`) as this journal writes it,
/// the id, time and channel, and the same part of the wire JSON when it differs (the line's
/// idempotency key left out). `None` for anything else.
fn head_as_written(before: &str) -> Option<(Head, Option<String>)> {
    let fields = format!("{before}\"\"}}");
    let m: MessageHead = serde_json::from_str(&fields).ok()?;
    let head = |key| {
        MessageOut {
            id: m.id,
            ts: m.ts,
            target: &m.target,
            sender: &m.sender,
            reply_to: m.reply_to,
            key,
            text: "",
        }
        .before_text()
    };
    if head(m.key.as_deref()) != before {
        return None;
    }
    let wire_head = m.key.is_some().then(|| head(None));
    let found = Head {
        id: m.id,
        ts: m.ts,
        target: m.target.into_owned(),
    };
    Some((found, wire_head))
}

/// A line `{...,"text":T}` split into `{...,"text":` and `T`, where `"text"` is the object's
/// last key, found by reading only the keys and values before it; `None` when the line is not
/// an object of strings and plain values with `text` last.
fn split_text(line: &str) -> Option<(&str, &str)> {
    if !line.ends_with('}') {
        return None;
    }
    let at = text_start(line.as_bytes())?;
    Some((&line[..at], &line[at..line.len() - 1]))
}

/// Where the value of `"text"` starts in `b`, the start of a line `{...,"text":T}` (or the whole
/// line), found by reading only the keys and values before it; `None` when `b` does not start
/// as an object of strings and plain values whose keys reach `text`.
fn text_start(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut at = 1;
    loop {
        let key = at;
        at = string_end(b, at)?;
        let is_text = &b[key..at] == b"\"text\"";
        if b.get(at) != Some(&b':') {
            return None;
        }
        at += 1;
        if is_text {
            return Some(at);
        }
        if b.get(at) == Some(&b'"') {
            at = string_end(b, at)?;
        } else {
            while !matches!(b.get(at)?, b',' | b'}' | b'"') {
                at += 1;
            }
        }
        if b.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

/// Just past the end of the JSON string that starts at `start` in `b`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start) != Some(&b'"') {
        return None;
    }
    let mut at = start + 1;
    loop {
        match b.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// The line at `place`, without its newline.
fn read_line(file: &File, place: Place) -> io::Result<Vec<u8>> {
    let mut line = vec![0; place.line_len as usize];
    file.read_exact_at(&mut line, place.offset)?;
    Ok(line)
}

fn parse_message(line: &[u8], place: Place) -> io::Result<Message> {
    let m: MessageIn = serde_json::from_slice(line).map_err(|e| not_a_message(place, &e))?;
    Ok(Message {
        id: m.id,
        ts: m.ts,
        target: m.target.into_owned(),
        sender: m.sender.into_owned(),
        reply_to: m.reply_to,
        text: m.text.into_owned(),
    })
}

fn not_a_message(place: Place, e: &serde_json::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("no message line at byte {}: {e}", place.offset),
    )
}

/// Makes renames and creations inside `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_context(what: &str, path: &Path, e: io::Error) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;
    use std::sync::atomic::Ordering;

    impl TempDir {
        fn journal(&self) -> PathBuf {
            self.0.join(JOURNAL_FILE)
        }
    }

    fn msg(id: u64, target: &str) -> Message {
        Message {
            id,
            ts: 1_700_000_000.25 + id as f64,
            target: target.into(),
            sender: "claude".into(),
            reply_to: None,
            text: format!("message {id}\nwith a \"quoted\" second line ✓"),
        }
    }

    fn open(dir: &TempDir) -> (Journal, Replay) {
        match Journal::open(&dir.0, Fsync::Always) {
            Ok(opened) => opened,
            Err(e) => panic!("open failed: {e}"),
        }
    }

    fn open_err(dir: &TempDir) -> Error {
        match Journal::open(&dir.0, Fsync::Never) {
            Ok(_) => panic!("open succeeded on a damaged journal"),
            Err(e) => e,
        }
    }

    /// The replayed messages with their texts, read back from the journal at their places.
    fn messages(j: &Journal, replay: &Replay) -> Vec<Message> {
        let file = j.reader();
        replay
            .messages
            .iter()
            .map(|m| {
                let target = &replay.channels[m.channel as usize];
                let expected = Expected {
                    id: m.id,
                    ts: m.ts,
                    target,
                };
                file.message(expected, m.place).unwrap()
            })
            .collect()
    }

    /// What the index knows of `m`.
    fn indexed_as(m: &Message) -> Expected<'_> {
        Expected {
            id: m.id,
            ts: m.ts,
            target: &m.target,
        }
    }

    fn line_of(m: &Message) -> String {
        serde_json::to_string(m).unwrap() + "\n"
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new();
        let (mut j, replay) = open(&dir);
        assert!(replay.messages.is_empty());
        assert_eq!(replay.last_id, 0);
        let first = vec![msg(1, "proj-x"), msg(2, "codex")];
        j.append(&first).unwrap();
        j.append(&[msg(3, "proj-x")]).unwrap();
        j.append(&[]).unwrap();
        drop(j);
        let (j, replay) = open(&dir);
        assert_eq!(
            messages(&j, &replay),
            vec![msg(1, "proj-x"), msg(2, "codex"), msg(3, "proj-x")]
        );
        assert_eq!(replay.last_id, 3);
        // One line per message, exactly the wire shape.
        let text = fs::read_to_string(dir.journal()).unwrap();
        assert_eq!(text.lines().count(), 3);
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["id"], 1);
        assert_eq!(first["target"], "proj-x");
    }

    #[test]
    fn ids_continue_after_reopen() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a"), msg(2, "b")]).unwrap();
        drop(j);
        let (mut j, replay) = open(&dir);
        assert_eq!(replay.last_id, 2);
        j.append(&[msg(replay.last_id + 1, "a")]).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        assert_eq!(replay.last_id, 3);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn torn_tail_is_cut_and_complete_lines_kept() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let complete = line_of(&msg(1, "a")) + &line_of(&msg(2, "b"));
        let torn = &line_of(&msg(3, "a"))[..20];
        fs::write(dir.journal(), format!("{complete}{torn}")).unwrap();
        let (mut j, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2]);
        assert_eq!(replay.last_id, 2);
        assert_eq!(fs::read_to_string(dir.journal()).unwrap(), complete);
        // The next append starts on a clean line boundary.
        j.append(&[msg(3, "a")]).unwrap();
        drop(j);
        let (j, replay) = open(&dir);
        assert_eq!(replay.messages.len(), 3);
        assert_eq!(messages(&j, &replay)[2], msg(3, "a"));
    }

    #[test]
    fn a_whole_last_line_without_its_newline_is_kept_and_given_one() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let complete = line_of(&msg(1, "a")) + &line_of(&msg(2, "b")) + &line_of(&msg(3, "a"));
        fs::write(dir.journal(), complete.trim_end_matches('\n')).unwrap();
        let (mut j, replay) = open(&dir);
        assert_eq!(replay.last_id, 3);
        assert_eq!(
            messages(&j, &replay),
            vec![msg(1, "a"), msg(2, "b"), msg(3, "a")]
        );
        assert_eq!(fs::read_to_string(dir.journal()).unwrap(), complete);
        // The next append starts on a line boundary, and every line reads back.
        j.append(&[msg(4, "b")]).unwrap();
        drop(j);
        let (j, replay) = open(&dir);
        assert_eq!(
            messages(&j, &replay),
            vec![msg(1, "a"), msg(2, "b"), msg(3, "a"), msg(4, "b")]
        );
    }

    #[test]
    fn a_whole_last_line_of_any_known_kind_is_kept_and_one_of_no_known_kind_stops_start_up() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let head = line_of(&msg(1, "a")) + &line_of(&msg(2, "a"));
        fs::write(dir.journal(), head.clone() + r#"{"delete":{"id":1}}"#).unwrap();
        let (_, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [2], "the deletion on the last line counts");
        let kept = head.clone() + "{\"delete\":{\"id\":1}}\n";
        assert_eq!(fs::read_to_string(dir.journal()).unwrap(), kept);

        let unknown = head + r#"{"retract":{"id":1}}"#;
        fs::write(dir.journal(), &unknown).unwrap();
        match open_err(&dir) {
            Error::Journal { line, .. } => assert_eq!(line, 3),
            e => panic!("expected a journal error, got {e}"),
        }
        assert_eq!(fs::read_to_string(dir.journal()).unwrap(), unknown);
    }

    #[test]
    fn torn_only_line_leaves_an_empty_journal() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.journal(), "{\"id\":1,\"ts\":1.5,\"tar").unwrap();
        let (_, replay) = open(&dir);
        assert!(replay.messages.is_empty());
        assert_eq!(fs::metadata(dir.journal()).unwrap().len(), 0);
    }

    #[test]
    fn damaged_middle_line_stops_with_its_line_number() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let text = line_of(&msg(1, "a"))
            + &line_of(&msg(2, "a"))
            + "{\"id\":3,\"ts\":1.0,\"target\":\"a\",\"sen\n"
            + &line_of(&msg(4, "a"));
        fs::write(dir.journal(), &text).unwrap();
        match open_err(&dir) {
            Error::Journal { path, line, .. } => {
                assert_eq!(line, 3);
                assert!(path.ends_with(JOURNAL_FILE), "{path}");
            }
            e => panic!("expected a journal error, got {e}"),
        }
        // Nothing was repaired or dropped behind the operator's back.
        assert_eq!(fs::read_to_string(dir.journal()).unwrap(), text);
    }

    #[test]
    fn damaged_last_complete_line_is_not_treated_as_torn() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.journal(), line_of(&msg(1, "a")) + "garbage\n").unwrap();
        match open_err(&dir) {
            Error::Journal { line, .. } => assert_eq!(line, 2),
            e => panic!("expected a journal error, got {e}"),
        }
    }

    #[test]
    fn non_increasing_ids_stop_start_up() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let text = line_of(&msg(1, "a")) + &line_of(&msg(3, "a")) + &line_of(&msg(3, "b"));
        fs::write(dir.journal(), text).unwrap();
        match open_err(&dir) {
            Error::Journal { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(message.contains("increase"), "{message}");
            }
            e => panic!("expected a journal error, got {e}"),
        }
        fs::write(dir.journal(), line_of(&msg(0, "a"))).unwrap();
        match open_err(&dir) {
            Error::Journal { line, .. } => assert_eq!(line, 1),
            e => panic!("expected a journal error, got {e}"),
        }
    }

    #[test]
    fn marker_only_allowed_first() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(
            dir.journal(),
            line_of(&msg(1, "a")) + "{\"last_id\":9}\n" + &line_of(&msg(2, "a")),
        )
        .unwrap();
        match open_err(&dir) {
            Error::Journal { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("marker"), "{message}");
            }
            e => panic!("expected a journal error, got {e}"),
        }
    }

    #[test]
    fn second_open_is_locked_and_names_our_pid() {
        let dir = TempDir::new();
        let (first, _) = open(&dir);
        match Journal::open(&dir.0, Fsync::Always) {
            Ok(_) => panic!("a second open of a locked directory succeeded"),
            Err(Error::Locked { path, holder }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()));
                assert!(path.ends_with(LOCK_FILE), "{path}");
            }
            Err(e) => panic!("expected a lock error, got {e}"),
        }
        drop(first);
        // Closing the journal releases the lock.
        open(&dir);
    }

    #[test]
    fn an_installed_compaction_carries_over_what_was_appended_after_its_mark() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let first: Vec<Message> = (1..=4).map(|id| msg(id, "a")).collect();
        j.append(&first).unwrap();
        let mark = j.mark();
        let keep = [&first[2], &first[3]];
        let keep = keep.into_iter().map(Ok);
        let c = Journal::prepare(j.dir(), keep, &Extras::default(), 4, mark).unwrap();
        j.append(&[msg(5, "b"), msg(6, "a")]).unwrap();
        j.install(c).unwrap();
        j.append(&[msg(7, "a")]).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [3, 4, 5, 6, 7]);
        assert_eq!(replay.last_id, 7);
    }

    #[test]
    fn rewrite_keeps_exactly_the_kept_messages_and_the_marker() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let all: Vec<Message> = (1..=6)
            .map(|id| msg(id, ["a", "b"][id as usize % 2]))
            .collect();
        j.append(&all).unwrap();
        let keep: Vec<&Message> = all.iter().filter(|m| m.id % 2 == 0 && m.id < 6).collect();
        j.rewrite(keep.iter().copied(), 6).unwrap();
        assert!(!dir.0.join(format!("{JOURNAL_FILE}.tmp")).exists());
        // Appends after the compaction go to the new journal.
        j.append(&[msg(7, "a")]).unwrap();
        drop(j);
        let (mut j, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [2, 4, 7]);
        assert_eq!(messages(&j, &replay)[0], msg(2, "a"));
        assert_eq!(replay.last_id, 7);
        assert!(fs::read_to_string(dir.journal())
            .unwrap()
            .starts_with("{\"last_id\":6}\n"));

        // Everything dropped: the marker alone carries the sequence.
        j.rewrite(std::iter::empty(), 7).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        assert!(replay.messages.is_empty());
        assert_eq!(replay.last_id, 7);
    }

    #[test]
    fn failed_rewrite_leaves_the_old_journal() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a"), msg(2, "a")]).unwrap();
        let before = fs::read(dir.journal()).unwrap();
        // A directory where the temporary file should go makes its creation fail, even for root.
        fs::create_dir(dir.0.join(format!("{JOURNAL_FILE}.tmp"))).unwrap();
        match j.rewrite(std::iter::empty(), 2) {
            Err(Error::Storage(reason)) => assert!(reason.contains(".tmp"), "{reason}"),
            Err(e) => panic!("expected a storage error, got {e}"),
            Ok(()) => panic!("rewrite over a directory succeeded"),
        }
        assert_eq!(fs::read(dir.journal()).unwrap(), before);
        j.append(&[msg(3, "a")]).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        assert_eq!(replay.messages.len(), 3);
    }

    #[test]
    fn append_failure_is_a_storage_error_with_the_reason() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        // Writes to /dev/full fail with ENOSPC, for root too.
        std::os::unix::fs::symlink("/dev/full", dir.journal()).unwrap();
        let (mut j, replay) = open(&dir);
        assert!(replay.messages.is_empty());
        match j.append(&[msg(1, "a")]) {
            Err(Error::Storage(reason)) => {
                assert!(reason.contains("No space left on device"), "{reason}");
                assert!(reason.contains(JOURNAL_FILE), "{reason}");
            }
            Err(e) => panic!("expected a storage error, got {e}"),
            Ok(()) => panic!("an append to /dev/full succeeded"),
        }
        // It keeps failing cleanly rather than writing after a partial batch.
        assert!(matches!(j.append(&[msg(1, "a")]), Err(Error::Storage(_))));
    }

    #[test]
    fn a_line_from_an_encoded_text_is_the_bytes_of_the_message_line() {
        let mut reply = msg(2, "a");
        reply.reply_to = Some(1);
        reply.text = format!("{} \u{1} \\ {}", reply.text, "y".repeat(3000));
        let plain = msg(1, "a");
        let mut lines = Vec::new();
        for (m, key) in [(&plain, None), (&reply, Some("k\"2")), (&plain, Some("k3"))] {
            let text = serde_json::to_string(&m.text).unwrap();
            let (mut by_message, mut by_encoded) = (Vec::new(), Vec::new());
            Line::Message(m, key).write(&mut by_message).unwrap();
            Line::Encoded(m, key, &text).write(&mut by_encoded).unwrap();
            assert_eq!(
                String::from_utf8(by_encoded).unwrap(),
                String::from_utf8(by_message).unwrap()
            );
            lines.push((m, key, text));
        }
        // Appended, they read back as the messages they were made from, where the places say.
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let batch: Vec<Line> = lines
            .iter()
            .map(|(m, key, text)| Line::Encoded(m, *key, text))
            .collect();
        let places = j.append_lines(&batch).unwrap();
        let file = j.reader();
        for ((m, ..), place) in lines.iter().zip(places) {
            assert_eq!(place.text_len as usize, m.text.len());
            assert_eq!(file.message(indexed_as(m), place).unwrap(), **m);
        }
    }

    #[test]
    fn large_texts_written_from_where_they_lie_give_the_bytes_of_the_message_lines() {
        let big = |id, fill: &str| {
            let mut m = msg(id, "a");
            m.text = format!("{}\u{1} \"{}", fill.repeat(COPY_LIMIT), id);
            m
        };
        // Large texts first, in the middle and last, small ones between them.
        let first = [
            big(1, "b"),
            msg(2, "a"),
            big(3, "c"),
            msg(4, "a"),
            big(5, "d"),
        ];
        let again = [big(6, "e"), msg(7, "a"), big(8, "f")];
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let append = |j: &mut Journal, ms: &[Message]| {
            let texts: Vec<String> = ms
                .iter()
                .map(|m| serde_json::to_string(&m.text).unwrap())
                .collect();
            let batch: Vec<Line> = ms
                .iter()
                .zip(&texts)
                .map(|(m, text)| Line::Encoded(m, Some("key"), text))
                .collect();
            j.append_lines(&batch)
        };
        let places = append(&mut j, &first).unwrap();
        let mut expected = Vec::new();
        for m in &first {
            Line::Message(m, Some("key")).write(&mut expected).unwrap();
            expected.push(b'\n');
        }
        assert_eq!(fs::read(dir.journal()).unwrap(), expected);
        let file = j.reader();
        for (m, place) in first.iter().zip(places) {
            assert_eq!(file.message(indexed_as(m), place).unwrap(), *m);
        }
        // A batch of them that fails halfway leaves nothing behind once the disk takes writes.
        let refuse = j.inject_faults();
        refuse.store(true, Ordering::SeqCst);
        assert!(matches!(append(&mut j, &again), Err(Error::Storage(_))));
        refuse.store(false, Ordering::SeqCst);
        append(&mut j, &again).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn replay_keeps_only_the_furthest_position_of_each_reader_however_many_moves_it_read() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append_lines(&[Line::Message(&msg(1, "a"), None)])
            .unwrap();
        let moves: Vec<Position> = (1..=20_000u64)
            .map(|id| Position {
                reader: ["codex", "claude", "gemini"][id as usize % 3].into(),
                target: ["a", "b"][id as usize % 2].into(),
                id,
            })
            .collect();
        for chunk in moves.chunks(1000) {
            let lines: Vec<Line> = chunk.iter().map(Line::Read).collect();
            j.append_lines(&lines).unwrap();
        }
        drop(j);
        let (_, replay) = open(&dir);
        assert!(
            replay.positions.len() < 2 * FOLD_POSITIONS_AFTER,
            "{}",
            replay.positions.len()
        );
        let mut furthest: HashMap<(String, String), u64> = HashMap::new();
        for p in &replay.positions {
            let at = furthest
                .entry((p.reader.clone(), p.target.clone()))
                .or_default();
            *at = (*at).max(p.id);
        }
        let mut want = HashMap::new();
        for p in &moves {
            want.insert((p.reader.clone(), p.target.clone()), p.id);
        }
        assert_eq!(furthest, want);
    }

    #[test]
    fn replies_keys_positions_and_deletions_replay_and_survive_a_compaction() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let mut reply = msg(2, "a");
        reply.reply_to = Some(1);
        let (first, third) = (msg(1, "a"), msg(3, "b"));
        let position = Position {
            reader: "codex".into(),
            target: "a".into(),
            id: 2,
        };
        let moved = Position {
            id: 3,
            ..position.clone()
        };
        j.append_lines(&[
            Line::Message(&first, Some("k1")),
            Line::Message(&reply, None),
            Line::Read(&position),
            Line::Message(&third, Some("k3")),
            Line::Delete(&Deletion::Message { id: 1 }),
            Line::Read(&moved),
        ])
        .unwrap();
        drop(j);
        let text = fs::read_to_string(dir.journal()).unwrap();
        assert!(text.contains("\"message 1\\nwith"), "{text}");
        // The text comes last on a message line, after the key and the reply.
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("\"key\":\"k1\",\"text\":"),
            "{text}"
        );
        let (mut j, replay) = open(&dir);
        assert_eq!(messages(&j, &replay), vec![reply.clone(), third.clone()]);
        assert_eq!(replay.positions, vec![position, moved.clone()]);
        // Keys older than their window are not remembered: these messages are from 2023.
        assert!(replay.keys.is_empty());
        let extras = Extras {
            keys: HashMap::from([(3, "k3".to_string())]),
            positions: vec![moved.clone()],
        };
        let kept = messages(&j, &replay).into_iter().map(Ok);
        let c = Journal::prepare(j.dir(), kept, &extras, 3, j.mark()).unwrap();
        j.install(c).unwrap();
        j.append_lines(&[Line::Delete(&Deletion::Channel {
            target: "b".into(),
            through: 3,
        })])
        .unwrap();
        drop(j);
        let text = fs::read_to_string(dir.journal()).unwrap();
        assert!(
            !text.contains("\"message 1\\nwith"),
            "the deleted text left the file: {text}"
        );
        assert!(text.contains("\"key\":\"k3\""), "{text}");
        let (j, replay) = open(&dir);
        assert_eq!(messages(&j, &replay), vec![reply]);
        assert_eq!(replay.positions, vec![moved]);
        assert_eq!(replay.last_id, 3);
    }

    /// A channel's deletion line takes the positions on it written before it: they are of
    /// the old history. A position written after it (past the deletion), and positions on
    /// other channels, stay.
    #[test]
    fn a_channel_deletion_replays_without_its_readers_positions() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        let at = |reader: &str, target: &str, id| Position {
            reader: reader.into(),
            target: target.into(),
            id,
        };
        let (old, other, new) = (
            at("codex", "a", 1),
            at("codex", "b", 2),
            at("claude", "a", 3),
        );
        j.append_lines(&[
            Line::Message(&msg(1, "a"), None),
            Line::Message(&msg(2, "b"), None),
            Line::Read(&old),
            Line::Read(&other),
            Line::Delete(&Deletion::Channel {
                target: "a".into(),
                through: 2,
            }),
            Line::Message(&msg(3, "a"), None),
            Line::Read(&new),
        ])
        .unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        assert_eq!(replay.positions, vec![other, new]);
    }

    #[test]
    fn a_name_no_post_could_give_stops_start_up_naming_its_line() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let sent_by = |sender: &str| Message {
            sender: sender.into(),
            ..msg(2, "b")
        };
        let read = |reader: &str, target: &str| {
            serde_json::to_string(
                &serde_json::json!({"read": {"reader": reader, "target": target, "id": 1}}),
            )
            .unwrap()
                + "\n"
        };
        let head = line_of(&msg(1, "a"));
        for (bad, field) in [
            (line_of(&msg(2, "b\u{7}")), "target"),
            (line_of(&msg(2, " b")), "target"),
            (line_of(&msg(2, "b\u{202E}")), "target"),
            (line_of(&msg(2, &"b".repeat(129))), "target"),
            (line_of(&sent_by("")), "sender"),
            (line_of(&sent_by("codex\u{2028}")), "sender"),
            (line_of(&sent_by("codex ")), "sender"),
            (read("codex\u{200B}", "a"), "reader"),
            (read("codex", "a\n"), "target"),
            (read("codex", ""), "target"),
            (
                "{\"delete\":{\"target\":\"\\t\",\"through\":1}}\n".into(),
                "target",
            ),
            (
                "{\"delete\":{\"target\":\"a \",\"through\":1}}\n".into(),
                "target",
            ),
        ] {
            let text = head.clone() + &bad + &line_of(&msg(3, "a"));
            fs::write(dir.journal(), &text).unwrap();
            match open_err(&dir) {
                Error::Journal {
                    path,
                    line,
                    message,
                } => {
                    assert_eq!(line, 2, "{bad}");
                    assert!(path.ends_with(JOURNAL_FILE), "{path}");
                    assert!(message.contains(field), "{bad}: {message}");
                }
                e => panic!("expected a journal error for {bad}, got {e}"),
            }
            // Nothing was skipped or dropped behind the operator's back.
            assert_eq!(fs::read_to_string(dir.journal()).unwrap(), text);
        }
        // The same names, as a post gives them, are kept.
        let good = head + &line_of(&msg(2, "b ü")) + &read("codex", "b ü");
        fs::write(dir.journal(), good).unwrap();
        let (_, replay) = open(&dir);
        assert_eq!(replay.channels, ["a", "b ü"]);
    }

    #[test]
    fn a_checkpoint_holding_a_name_no_post_could_give_is_not_used() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let (first, bad) = (line_of(&msg(1, "a")), line_of(&msg(2, "b\u{7}")));
        fs::write(dir.journal(), first.clone() + &bad).unwrap();
        // What a relay that let such a line through would have checkpointed.
        let place = |offset: usize, line: &str| Place {
            offset: offset as u64,
            line_len: (line.len() - 1) as u32,
            text_len: 0,
        };
        let progress = Progress {
            offset: (first.len() + bad.len()) as u64,
            lines: 2,
            messages: vec![
                Indexed {
                    id: 1,
                    ts: msg(1, "a").ts,
                    channel: 0,
                    place: place(0, &first),
                },
                Indexed {
                    id: 2,
                    ts: msg(2, "a").ts,
                    channel: 1,
                    place: place(first.len(), &bad),
                },
            ],
            channels: vec!["a".into(), "b\u{7}".into()],
            last_id: 2,
            prev_id: 2,
            ..Progress::default()
        };
        let journal = File::open(dir.journal()).unwrap();
        checkpoint::save(&dir.0, &journal, &progress).unwrap();
        let refused = load_checkpoint(&dir)
            .err()
            .expect("the checkpoint is refused");
        assert!(refused.contains("no post could give"), "{refused}");
        match open_err(&dir) {
            Error::Journal { line, .. } => assert_eq!(line, 2, "found by the full replay"),
            e => panic!("expected a journal error, got {e}"),
        }
    }

    #[test]
    fn an_object_of_no_known_kind_stops_start_up() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        for bad in [
            "{}",
            "{\"read\":{\"reader\":\"x\"}}",
            "{\"delete\":{}}",
            "{\"other\":1}",
        ] {
            fs::write(dir.journal(), line_of(&msg(1, "a")) + bad + "\n").unwrap();
            match open_err(&dir) {
                Error::Journal { line, .. } => assert_eq!(line, 2, "{bad}"),
                e => panic!("expected a journal error for {bad}, got {e}"),
            }
        }
    }

    #[test]
    fn failed_append_leaves_no_partial_batch() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a")]).unwrap();
        let before = fs::read(dir.journal()).unwrap();
        // Half the batch is written, then the write fails and so does the cut-back, so the
        // next append must first cut the file back to its last good length before writing.
        let refuse = j.inject_faults();
        refuse.store(true, Ordering::SeqCst);
        assert!(matches!(j.append(&[msg(2, "a")]), Err(Error::Storage(_))));
        assert!(
            fs::read(dir.journal()).unwrap().len() > before.len(),
            "the failed append left a partial batch behind"
        );
        assert!(matches!(j.append(&[msg(2, "a")]), Err(Error::Storage(_))));
        refuse.store(false, Ordering::SeqCst);
        j.append(&[msg(2, "a")]).unwrap();
        drop(j);
        let (_, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_journal_removed_while_open_refuses_appends_and_writes_nothing_to_it() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a")]).unwrap();
        let reader = j.reader();
        fs::remove_dir_all(&dir.0).unwrap();
        let refused = j.append(&[msg(2, "b")]).unwrap_err();
        assert!(matches!(refused, Error::Storage(_)), "{refused}");
        assert!(refused.to_string().contains("was removed"), "{refused}");
        let len = reader.file.metadata().unwrap().len();
        assert_eq!(len, j.mark(), "nothing was appended to the unlinked file");
    }

    /// A journal cut shorter by another program (`truncate`) while open: an append would
    /// follow the torn line it left, and the next start would stop there.
    #[test]
    fn a_journal_cut_while_open_refuses_appends_for_good_and_writes_nothing_to_it() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a"), msg(2, "a")]).unwrap();
        let written = j.mark();
        let set_len = |len| {
            File::options()
                .write(true)
                .open(dir.journal())
                .and_then(|f| f.set_len(len))
                .unwrap()
        };
        set_len(written - 10);
        let refused = j.append(&[msg(3, "a")]).unwrap_err();
        assert_eq!(refused.status(), 507, "{refused}");
        assert!(refused.to_string().contains("was cut"), "{refused}");
        // Grown back to its length, it still holds a torn line where a whole one was.
        set_len(written);
        assert!(j.append(&[msg(4, "a")]).is_err(), "refused for good");
        assert_eq!(fs::metadata(dir.journal()).unwrap().len(), written);
    }

    #[test]
    fn without_fsync_a_removed_journal_is_refused_within_the_lookup_interval_and_for_good() {
        let dir = TempDir::new();
        let (mut j, _) = match Journal::open(&dir.0, Fsync::Never) {
            Ok(opened) => opened,
            Err(e) => panic!("open failed: {e}"),
        };
        j.append(&[msg(1, "a")]).unwrap();
        let removed_at = Instant::now();
        fs::remove_dir_all(&dir.0).unwrap();
        let mut id = 2;
        let refused = loop {
            match j.append(&[msg(id, "b")]) {
                Ok(()) => id += 1,
                Err(e) => break e,
            }
            // A hang guard: the lookup comes after REMOVAL_CHECK_EVERY.
            assert!(
                removed_at.elapsed() < Duration::from_secs(60),
                "never refused"
            );
        };
        assert!(refused.to_string().contains("was removed"), "{refused}");
        for _ in 0..3 {
            assert!(j.append(&[msg(id, "c")]).is_err(), "refused for good");
        }
    }

    /// A read-only or otherwise refusing disk under a running store: the post is refused with
    /// 507 naming the reason, nothing of it is served or kept, and posts work again (without a
    /// gap in the ids) once the disk takes writes.
    #[test]
    fn a_journal_refusing_writes_refuses_the_post_with_507_and_recovers() {
        use crate::store::{Draft, Limits, Store};
        let draft = |text: &str| Draft {
            target: "ro".into(),
            sender: "s".into(),
            text: text.into(),
            reply_to: None,
            idempotency_key: None,
            ..Draft::default()
        };
        let dir = TempDir::new();
        let (mut j, replay) = open(&dir);
        let refuse = j.inject_faults();
        let store = Store::new(Some(j), replay, &[], Limits::default());
        assert_eq!(store.post(draft("before")).unwrap().message.id, 1);
        refuse.store(true, Ordering::SeqCst);
        let refused = store.post(draft("refused")).unwrap_err();
        assert_eq!(refused.status(), 507);
        let reason = refused.to_string();
        assert!(reason.contains("Operation not permitted"), "{reason}");
        assert!(reason.contains(JOURNAL_FILE), "{reason}");
        let texts = |store: &Store| -> Vec<String> {
            store
                .after("ro", 0, 10)
                .iter()
                .map(|m| m.text.clone())
                .collect()
        };
        assert_eq!(texts(&store), ["before"], "the refused post is not served");
        refuse.store(false, Ordering::SeqCst);
        assert_eq!(
            store.post(draft("after")).unwrap().message.id,
            2,
            "it used no id"
        );
        assert_eq!(texts(&store), ["before", "after"]);
        drop(store);
        let (j, replay) = open(&dir);
        let kept: Vec<(u64, String)> = messages(&j, &replay)
            .into_iter()
            .map(|m| (m.id, m.text))
            .collect();
        let expected = [(1, "before".to_string()), (2, "after".to_string())];
        assert_eq!(kept, expected, "nothing half-stored");
    }

    /// Everything a replay restores, with channels by name and texts read back, to compare a
    /// start from a checkpoint with a full replay.
    type Restored = (
        Vec<(u64, u64, String, Place, Message)>,
        u64,
        Vec<Position>,
        Vec<(f64, u64, String, Option<u64>)>,
    );

    fn restored(j: &Journal, replay: &Replay) -> Restored {
        let texts = messages(j, replay);
        let messages = replay
            .messages
            .iter()
            .zip(texts)
            .map(|(m, text)| {
                let channel = replay.channels[m.channel as usize].clone();
                (m.id, m.ts.to_bits(), channel, m.place, text)
            })
            .collect();
        let keys = replay.keys.export();
        (messages, replay.last_id, replay.positions.clone(), keys)
    }

    /// What a start with the checkpoint in `dir` restores, and what a full replay restores.
    fn with_and_without_checkpoint(dir: &TempDir) -> (Restored, Restored) {
        let (j, replay) = open(dir);
        let with = restored(&j, &replay);
        drop(j);
        let saved = dir.0.join("saved.checkpoint");
        fs::rename(dir.0.join(CHECKPOINT_FILE), &saved).unwrap();
        let (j, replay) = open(dir);
        let without = restored(&j, &replay);
        drop(j);
        fs::rename(saved, dir.0.join(CHECKPOINT_FILE)).unwrap();
        (with, without)
    }

    /// The checkpoint in `dir`, checked against the journal there as it is now.
    fn load_checkpoint(dir: &TempDir) -> Result<Option<Progress>, String> {
        let journal = File::open(dir.journal()).unwrap();
        let size = journal.metadata().unwrap().len();
        checkpoint::load(&dir.0, &journal, size, now())
    }

    /// A message posted now (so its key is inside the window) with a key.
    fn recent(id: u64, target: &str) -> Message {
        Message {
            ts: now() - 60.0 + id as f64,
            ..msg(id, target)
        }
    }

    /// A journal with a marker, messages in three channels, keys, positions and both kinds of
    /// deletion, checkpointed after message 6.
    fn checkpointed_history(dir: &TempDir) -> (Journal, u64) {
        let (mut j, _) = open(dir);
        j.append(&[msg(1, "a")]).unwrap();
        j.rewrite(std::iter::empty(), 1).unwrap();
        let ms: Vec<Message> = (2..=6)
            .map(|id| recent(id, ["a", "b", "c"][id as usize % 3]))
            .collect();
        let read = Position {
            reader: "codex".into(),
            target: "a".into(),
            id: 3,
        };
        j.append_lines(&[
            Line::Message(&ms[0], Some("k2")),
            Line::Message(&ms[1], Some("k3")),
            Line::Read(&read),
            Line::Message(&ms[2], None),
            Line::Delete(&Deletion::Message { id: 3 }),
            Line::Message(&ms[3], Some("k5")),
            Line::Message(&ms[4], None),
        ])
        .unwrap();
        j.checkpoint().unwrap();
        let mark = j.mark();
        (j, mark)
    }

    #[test]
    fn a_start_from_a_checkpoint_restores_what_a_full_replay_restores() {
        let dir = TempDir::new();
        let (mut j, mark) = checkpointed_history(&dir);
        // After the checkpoint: new messages, a deletion of a checkpointed message and of a
        // channel, a moved position and a reused key.
        let (m7, m8) = (recent(7, "a"), recent(8, "c"));
        let moved = Position {
            reader: "codex".into(),
            target: "a".into(),
            id: 7,
        };
        j.append_lines(&[
            Line::Message(&m7, Some("k2")),
            Line::Delete(&Deletion::Message { id: 2 }),
            Line::Delete(&Deletion::Channel {
                target: "b".into(),
                through: 7,
            }),
            Line::Read(&moved),
            Line::Message(&m8, Some("k8")),
        ])
        .unwrap();
        drop(j);
        let loaded = load_checkpoint(&dir).unwrap().expect("a checkpoint");
        assert_eq!(
            loaded.offset, mark,
            "it covers the journal up to where it was taken"
        );
        let (with, without) = with_and_without_checkpoint(&dir);
        assert_eq!(with, without);
        let ids: Vec<u64> = with.0.iter().map(|m| m.0).collect();
        assert_eq!(ids, [5, 6, 7, 8], "lines after the checkpoint are replayed");
        assert_eq!(with.1, 8);
        assert_eq!(with.2.last(), Some(&moved));
        let live: Vec<u64> = with
            .3
            .iter()
            .filter(|k| k.3.is_some())
            .map(|k| k.1)
            .collect();
        assert_eq!(
            live,
            [5, 7, 8],
            "keys of the checkpoint and after it, none of deleted 3 (k2 now names 7)"
        );
    }

    #[test]
    fn a_checkpoint_of_the_whole_journal_restores_what_a_full_replay_restores() {
        let dir = TempDir::new();
        let (j, _) = checkpointed_history(&dir);
        drop(j);
        let (with, without) = with_and_without_checkpoint(&dir);
        assert_eq!(with, without);
        let ids: Vec<u64> = with.0.iter().map(|m| m.0).collect();
        assert_eq!(ids, [2, 4, 5, 6]);
    }

    #[test]
    fn a_damaged_checkpoint_is_refused_and_replaced() {
        let dir = TempDir::new();
        let (j, _) = checkpointed_history(&dir);
        drop(j);
        let path = dir.0.join(CHECKPOINT_FILE);
        let good = fs::read(&path).unwrap();
        let (expected, _) = with_and_without_checkpoint(&dir);
        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x10;
        let mut last = good.clone();
        *last.last_mut().unwrap() ^= 1;
        let damaged = [
            flipped,
            last,
            good[..good.len() - 1].to_vec(),
            good[..good.len() / 3].to_vec(),
            Vec::new(),
        ];
        for bad in damaged {
            fs::write(&path, &bad).unwrap();
            let refused = load_checkpoint(&dir);
            assert!(refused.is_err(), "{} bytes were accepted", bad.len());
            let (j, replay) = open(&dir);
            assert_eq!(restored(&j, &replay), expected);
            j.checkpoint().unwrap();
            drop(j);
            assert!(
                matches!(load_checkpoint(&dir), Ok(Some(_))),
                "it was replaced"
            );
        }
    }

    #[test]
    fn a_checkpoint_of_a_journal_since_rewritten_is_refused_and_replaced() {
        let dir = TempDir::new();
        let (mut j, _) = checkpointed_history(&dir);
        // A compaction rewrites the journal: every place the checkpoint holds is wrong now.
        j.rewrite([msg(6, "c")].iter(), 6).unwrap();
        j.append(&[msg(7, "a")]).unwrap();
        drop(j);
        let refused = load_checkpoint(&dir)
            .err()
            .expect("a stale checkpoint is refused");
        assert!(refused.contains("stale"), "{refused}");
        let (j, replay) = open(&dir);
        let ids: Vec<u64> = replay.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [6, 7]);
        assert_eq!(messages(&j, &replay), [msg(6, "c"), msg(7, "a")]);
        j.checkpoint().unwrap();
        drop(j);
        assert!(
            matches!(load_checkpoint(&dir), Ok(Some(_))),
            "it was replaced"
        );
        let (with, without) = with_and_without_checkpoint(&dir);
        assert_eq!(with, without);

        // A journal cut shorter than the checkpoint covers is stale too.
        let (mut j, _) = open(&dir);
        j.append(&[msg(8, "a")]).unwrap();
        j.checkpoint().unwrap();
        drop(j);
        let text = fs::read_to_string(dir.journal()).unwrap();
        let cut = text.trim_end_matches('\n').rfind('\n').unwrap() + 1;
        fs::write(dir.journal(), &text[..cut]).unwrap();
        assert!(load_checkpoint(&dir).is_err());
        let (_, replay) = open(&dir);
        assert_eq!(replay.last_id, 7);
    }

    #[test]
    fn a_closed_store_leaves_a_checkpoint_the_next_start_uses() {
        use crate::store::{Draft, Limits, Store};
        let dir = TempDir::new();
        let (j, replay) = open(&dir);
        let store = Store::new(Some(j), replay, &[], Limits::default());
        for text in ["one", "two"] {
            let draft = Draft {
                target: "cp".into(),
                sender: "s".into(),
                text: text.into(),
                reply_to: None,
                idempotency_key: Some(format!("key-{text}")),
                ..Draft::default()
            };
            store.post(draft).unwrap();
        }
        store.close();
        let loaded = load_checkpoint(&dir)
            .unwrap()
            .expect("close wrote a checkpoint");
        assert_eq!(loaded.offset, fs::metadata(dir.journal()).unwrap().len());
        let (with, without) = with_and_without_checkpoint(&dir);
        assert_eq!(with, without);
        assert_eq!(with.3.len(), 2, "both keys are remembered");
    }

    #[test]
    fn a_compaction_leaves_a_checkpoint_of_the_new_journal_for_a_start_after_a_crash() {
        use crate::store::{Draft, Limits, Store};
        let dir = TempDir::new();
        let (j, replay) = open(&dir);
        let store = Store::new(Some(j), replay, &[], Limits::default());
        for text in ["one", "two", "three"] {
            let draft = Draft {
                target: "cp".into(),
                sender: "s".into(),
                text: text.into(),
                reply_to: None,
                idempotency_key: None,
                ..Draft::default()
            };
            store.post(draft).unwrap();
        }
        store.delete_message(2).unwrap();
        store.compact_now().unwrap();
        let len = fs::metadata(dir.journal()).unwrap().len();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !matches!(load_checkpoint(&dir), Ok(Some(p)) if p.offset == len) {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint of the compacted journal"
            );
            std::thread::yield_now();
        }
        // Dropped without `close`, as a crash would: the compaction's checkpoint is what is left.
        drop(store);
        let (with, without) = with_and_without_checkpoint(&dir);
        assert_eq!(with, without);
        let texts: Vec<&str> = with.0.iter().map(|m| m.4.text.as_str()).collect();
        assert_eq!(texts, ["one", "three"]);
    }

    #[test]
    fn a_checkpoint_written_while_messages_are_appended_reads_its_lines_and_cuts_nothing() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        // Several of the scan's read blocks, so appends land between its reads.
        let big: Vec<Message> = (1..=40)
            .map(|id| Message {
                text: format!("{id} {}", "x".repeat(100_000)),
                ..msg(id, "a")
            })
            .collect();
        j.append(&big).unwrap();
        let job = j.checkpoint_job();
        let covered = j.mark();
        let scanning = std::thread::spawn(job);
        let mut id = 41;
        // Each append moves the file offset the checkpoint's handle shares with the appender.
        while !scanning.is_finished() {
            j.append(&[msg(id, "b")]).unwrap();
            id += 1;
        }
        let checkpointed = scanning.join().unwrap();
        assert!(checkpointed.is_ok(), "{checkpointed:?}");
        let len = j.mark();
        assert_eq!(fs::metadata(dir.journal()).unwrap().len(), len);
        assert!(matches!(load_checkpoint(&dir), Ok(Some(p)) if p.offset == covered));
        drop(j);
        let (j, replay) = open(&dir);
        let ids: Vec<u64> = messages(&j, &replay).iter().map(|m| m.id).collect();
        assert_eq!(ids, (1..id).collect::<Vec<u64>>());
    }

    #[test]
    fn a_checkpoint_never_cuts_a_line_without_its_newline_off_the_journal() {
        let dir = TempDir::new();
        let (mut j, _) = open(&dir);
        j.append(&[msg(1, "a")]).unwrap();
        let whole = fs::metadata(dir.journal()).unwrap().len();
        let reader = j.reader();
        // A length that ends inside the line, as a scan whose reads went wrong would see.
        let written = write_checkpoint(&dir.0, &dir.journal(), &reader.file, whole - 3);
        assert!(written.is_err());
        assert_eq!(fs::metadata(dir.journal()).unwrap().len(), whole);
    }

    #[test]
    fn a_message_line_reads_back_as_the_wire_json_of_its_message() {
        let dir = TempDir::new();
        let (mut journal, _) = open(&dir);
        // Every character below U+0100 and a few beyond, alone and among others, with and
        // without a key and a reply.
        let mut texts: Vec<String> = (0u32..0x100)
            .chain([0x2028, 0x2029, 0xfeff, 0x1f389])
            .filter_map(char::from_u32)
            .map(|c| format!("{c}"))
            .collect();
        texts.push((0u32..0x100).filter_map(char::from_u32).collect());
        texts.push("a \\u2028 that is text, \\\" and \u{2028}".to_string());
        let messages: Vec<Message> = texts
            .into_iter()
            .zip(1..)
            .map(|(text, id)| Message {
                reply_to: (id % 3 == 0).then_some(id - 1),
                text,
                ..msg(id, "proj-x")
            })
            .collect();
        let lines: Vec<Line> = messages
            .iter()
            .map(|m| Line::Message(m, (m.id % 2 == 0).then_some("key-\"")))
            .collect();
        let places = journal.append_lines(&lines).unwrap();
        let file = journal.reader();
        for (m, place) in messages.iter().zip(places) {
            let (json, as_it_lies) = file.wire_json(indexed_as(m), place).unwrap();
            assert_eq!(json, wire_json(m), "message {}", m.id);
            let separators = m.text.contains(['\u{2028}', '\u{2029}']);
            assert_eq!(as_it_lies, !separators, "message {}", m.id);
            // Sent as it lies, its fields from memory and its text from the file, it is the
            // same JSON.
            let lying = file.wire_json_lying(indexed_as(m), place).unwrap();
            let (from, offset, len) = lying.rest();
            let mut rest = vec![0; len];
            from.read_exact_at(&mut rest, offset).unwrap();
            let sent = format!("{}{}", lying.head, String::from_utf8(rest).unwrap());
            assert_eq!(sent.len(), lying.len());
            if !separators {
                assert_eq!(sent, *json, "message {}", m.id);
            }
        }
    }

    #[test]
    fn a_line_sent_as_it_lies_is_checked_as_any_read_is() {
        let dir = TempDir::new();
        let (mut journal, _) = open(&dir);
        let m = Message {
            text: "x".repeat(100_000),
            ..msg(7, "proj-x")
        };
        let place = journal.append_lines(&[Line::Message(&m, None)]).unwrap()[0];
        let file = journal.reader();
        assert!(file.wire_json_lying(indexed_as(&m), place).is_ok());
        // Another message's place, another channel or time: the line is not the one expected.
        let other = Message { id: 8, ..m.clone() };
        let moved = Message {
            ts: m.ts + 1.0,
            ..m.clone()
        };
        for wrong in [&other, &moved, &msg(7, "proj-y")] {
            let err = file.wire_json_lying(indexed_as(wrong), place).err();
            assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        }
        // A place inside a line: no message line starts there.
        let inside = Place {
            offset: place.offset + 10,
            line_len: place.line_len - 10,
            ..place
        };
        let err = file.wire_json_lying(indexed_as(&m), inside).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
    }

    #[test]
    fn a_line_this_journal_writes_is_passed_on_unparsed_and_a_damaged_one_is_not() {
        let m = Message {
            text: "q\"uote\\ \n \u{1} é 🎉 \"text\":\"".into(),
            target: "a\"text\":\\".into(),
            sender: "\"text\":\"x".into(),
            reply_to: Some(3),
            ..msg(7, "t")
        };
        for key in [None, Some("k\"text\":")] {
            let line = serde_json::to_string(&MessageOut::of(&m, key)).unwrap();
            let (head, json) = as_written(&line).expect("the line is passed on as written");
            assert_eq!(
                (head.id, head.ts, head.target.as_str()),
                (7, m.ts, "a\"text\":\\")
            );
            assert_eq!(
                json.unwrap_or_else(|| line.clone()),
                *wire_json(&m),
                "{key:?}"
            );
        }
        let line = serde_json::to_string(&MessageOut::of(&m, None)).unwrap();
        let text = r#"q\"uote"#;
        assert!(line.contains(text), "{line}");
        let damaged = [
            line.replacen(text, "q\"uote", 1),
            line.replacen(text, "q\u{1}uote", 1),
            line.replacen(text, "q\u{7f}\\/uote", 1),
            line.replacen(text, r#"q\u0022uote"#, 1),
            line.replacen(",\"text\":", ",\"text\" :", 1),
            line.replacen(",\"text\":", ",\"txt\":", 1),
            format!("{}}}", &line[..line.len() - 2]),
            line[..line.len() - 1].to_string(),
        ];
        for damaged in damaged {
            assert!(as_written(&damaged).is_none(), "{damaged}");
        }
    }

    #[test]
    fn a_line_whose_text_is_not_a_string_is_no_message_read_either_way() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let line = br#"{"id":1,"ts":1.5,"target":"a","sender":"s","text":5}"#;
        fs::write(dir.journal(), line).unwrap();
        let file = Reader {
            file: File::open(dir.journal()).unwrap(),
            dir: dir.0.clone(),
        };
        let place = Place {
            offset: 0,
            line_len: line.len() as u32,
            text_len: 1,
        };
        let expected = Expected {
            id: 1,
            ts: 1.5,
            target: "a",
        };
        assert!(file.message(expected, place).is_err());
        let wire = file.wire_json(expected, place);
        assert!(wire.is_err(), "{wire:?}");
    }
}
