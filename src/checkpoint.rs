//! The replay checkpoint: `messages.checkpoint` next to the journal holds everything replay had
//! gathered (`Progress`) after reading the journal's first `len` bytes, so a start reads it
//! and replays only the lines after them instead of the whole history. It names the journal
//! prefix it was made from by a digest of that prefix's first and last bytes, and itself ends
//! with a digest of its own bytes: a torn, damaged or stale checkpoint (the journal was
//! compacted or replaced since) is refused and replay reads the whole journal, so a checkpoint
//! can make a start faster but never change what it finds. Written whole to a temporary file,
//! synced and renamed into place, so a crash leaves the old checkpoint or the new one.

use crate::idempotency::Keys;
use crate::index::{Indexed, Place, Position};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The checkpoint's file name inside the data directory.
pub(crate) const CHECKPOINT_FILE: &str = "messages.checkpoint";
/// The first bytes of a checkpoint; a new layout gets a new one.
const MAGIC: &[u8; 8] = b"RLYCKPT1";
/// How many bytes at each end of the journal prefix the digest covers: enough that a rewritten
/// journal of the same length differs in them, few enough to read at once.
const DIGESTED: u64 = 64 * 1024;
/// Bytes of one message in the checkpoint: id, ts, channel, offset, line and text length.
const MESSAGE_BYTES: usize = 8 + 8 + 4 + 8 + 4 + 4;

/// Removes the checkpoint in `dir` of a journal found damaged after it was made, so that the
/// next start replays the whole journal and reports the damage where replay finds it.
pub(crate) fn discard(dir: &Path) {
    match fs::remove_file(dir.join(CHECKPOINT_FILE)) {
        Ok(()) => log::error!("the journal is damaged: the next start replays it in full"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::error!("cannot remove the checkpoint of a damaged journal: {e}"),
    }
}

/// What replay has gathered after reading the journal up to `offset` (line `lines`): the
/// messages before deletions are applied, and the deletions, positions and keys seen so far.
#[derive(Default)]
pub(crate) struct Progress {
    pub offset: u64,
    pub lines: usize,
    pub messages: Vec<Indexed>,
    pub channels: Vec<String>,
    pub last_id: u64,
    /// The id of the last message line, which the next one must exceed.
    pub prev_id: u64,
    pub keys: Keys,
    pub positions: Vec<Position>,
    pub deleted: HashSet<u64>,
    /// channel name → every message there up to this id is deleted.
    pub cleared: HashMap<String, u64>,
}

/// Everything of `Progress` but the messages, which are written in binary since there may be
/// millions of them.
#[derive(Serialize, Deserialize)]
struct Header {
    journal_len: u64,
    journal_digest: u64,
    lines: usize,
    channels: Vec<String>,
    last_id: u64,
    prev_id: u64,
    /// (time, message id, sender and key, digest of what was posted if still named by it).
    keys: Vec<(f64, u64, String, Option<u64>)>,
    positions: Vec<Position>,
    deleted: Vec<u64>,
    cleared: Vec<(String, u64)>,
}

/// Reads the checkpoint in `dir` and checks it against `journal` (`size` bytes long now).
/// `Ok(None)` if there is none; `Err` names why one that is there cannot be used.
pub(crate) fn load(
    dir: &Path,
    journal: &File,
    size: u64,
    now: f64,
) -> Result<Option<Progress>, String> {
    let bytes = match fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let body_len = bytes
        .len()
        .checked_sub(8)
        .filter(|n| *n >= MAGIC.len() + 8)
        .ok_or("it is too short")?;
    let (body, sum) = bytes.split_at(body_len);
    if digest(body) != u64_at(sum, 0) {
        return Err("its checksum does not match (torn or damaged)".into());
    }
    if &body[..MAGIC.len()] != MAGIC {
        return Err("it is not a checkpoint of this version".into());
    }
    let header_len = usize::try_from(u64_at(body, MAGIC.len())).map_err(|_| "bad header")?;
    let header_start = MAGIC.len() + 8;
    let header_end = header_start
        .checked_add(header_len)
        .filter(|end| *end + 8 <= body.len())
        .ok_or("its header is cut short")?;
    let header: Header = serde_json::from_slice(&body[header_start..header_end])
        .map_err(|e| format!("its header is not readable: {e}"))?;
    if header.journal_len > size {
        return Err(format!(
            "it covers {} bytes of a journal now {size} bytes long (stale)",
            header.journal_len
        ));
    }
    let found = prefix_digest(journal, header.journal_len)
        .map_err(|e| format!("cannot read the journal to check it: {e}"))?;
    if found != header.journal_digest {
        return Err("the journal no longer starts with what it covers (stale)".into());
    }
    held_names_are_kept(&header).map_err(|e| format!("it holds {e}"))?;
    let count = usize::try_from(u64_at(body, header_end)).map_err(|_| "bad count")?;
    let messages_at = header_end + 8;
    if count.checked_mul(MESSAGE_BYTES) != Some(body.len() - messages_at) {
        return Err("its message count does not match its size".into());
    }
    let channels = header.channels.len();
    let mut messages = Vec::with_capacity(count);
    for record in body[messages_at..].chunks_exact(MESSAGE_BYTES) {
        let channel = u32_at(record, 16);
        if channel as usize >= channels {
            return Err("a message names a channel it does not list".into());
        }
        messages.push(Indexed {
            id: u64_at(record, 0),
            ts: f64::from_bits(u64_at(record, 8)),
            channel,
            place: Place {
                offset: u64_at(record, 20),
                line_len: u32_at(record, 28),
                text_len: u32_at(record, 32),
            },
        });
    }
    Ok(Some(Progress {
        offset: header.journal_len,
        lines: header.lines,
        messages,
        channels: header.channels,
        last_id: header.last_id,
        prev_id: header.prev_id,
        keys: Keys::restore(header.keys, now),
        positions: header.positions,
        deleted: header.deleted.into_iter().collect(),
        cleared: header.cleared.into_iter().collect(),
    }))
}

/// Checks every name `header` holds as replay checks the journal's (`names::check_kept`): a
/// checkpoint made from lines replay now refuses is not used, so the full replay finds them.
fn held_names_are_kept(header: &Header) -> Result<(), String> {
    let channels = header.channels.iter().map(|c| ("target", c.as_str()));
    let positions = header
        .positions
        .iter()
        .flat_map(|p| [("reader", p.reader.as_str()), ("target", p.target.as_str())]);
    let cleared = header.cleared.iter().map(|(c, _)| ("target", c.as_str()));
    // A key is kept as its sender, a newline and the key.
    let senders = header
        .keys
        .iter()
        .map(|(_, _, scoped, _)| ("sender", scoped.split_once('\n').map_or("", |(s, _)| s)));
    for (field, name) in channels.chain(positions).chain(cleared).chain(senders) {
        crate::names::check_kept(field, name)
            .map_err(|e| format!("a {field} no post could give ({e})"))?;
    }
    Ok(())
}

/// Writes `progress`, made from the first `progress.offset` bytes of `journal`, as the
/// checkpoint in `dir`: to a temporary file, synced, then renamed over the old one.
pub(crate) fn save(dir: &Path, journal: &File, progress: &Progress) -> io::Result<()> {
    let header = Header {
        journal_len: progress.offset,
        journal_digest: prefix_digest(journal, progress.offset)?,
        lines: progress.lines,
        channels: progress.channels.clone(),
        last_id: progress.last_id,
        prev_id: progress.prev_id,
        keys: progress.keys.export(),
        positions: progress.positions.clone(),
        deleted: progress.deleted.iter().copied().collect(),
        cleared: progress
            .cleared
            .iter()
            .map(|(target, through)| (target.clone(), *through))
            .collect(),
    };
    let header = serde_json::to_vec(&header)?;
    let mut out = Vec::with_capacity(
        MAGIC.len() + 24 + header.len() + progress.messages.len() * MESSAGE_BYTES,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(progress.messages.len() as u64).to_le_bytes());
    for m in &progress.messages {
        out.extend_from_slice(&m.id.to_le_bytes());
        out.extend_from_slice(&m.ts.to_bits().to_le_bytes());
        out.extend_from_slice(&m.channel.to_le_bytes());
        out.extend_from_slice(&m.place.offset.to_le_bytes());
        out.extend_from_slice(&m.place.line_len.to_le_bytes());
        out.extend_from_slice(&m.place.text_len.to_le_bytes());
    }
    let sum = digest(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&out)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A digest of the journal's first `len` bytes by their length and the `DIGESTED` bytes at
/// each end: a compaction or a replaced file changes them.
fn prefix_digest(journal: &File, len: u64) -> io::Result<u64> {
    let head = len.min(DIGESTED);
    let tail = len.min(DIGESTED);
    let mut bytes = vec![0; (head + tail) as usize];
    journal.read_exact_at(&mut bytes[..head as usize], 0)?;
    journal.read_exact_at(&mut bytes[head as usize..], len - tail)?;
    bytes.extend_from_slice(&len.to_le_bytes());
    Ok(digest(&bytes))
}

/// FNV-1a over 8-byte words (then the remaining bytes): not cryptographic, but any flipped
/// bit or cut changes it, and it runs at memory speed over a checkpoint of millions of entries.
fn digest(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    for word in words {
        hash = (hash ^ u64_at(word, 0)).wrapping_mul(PRIME);
    }
    for byte in rest {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(PRIME);
    }
    (hash ^ bytes.len() as u64).wrapping_mul(PRIME)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}
