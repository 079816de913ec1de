//! One log file at a fixed path with numbered backups beside it: how lines reach it. Lines are
//! appended through flexi_logger's file writer as plain bytes (never formatted in the writer's
//! per-thread buffer, which would keep the largest line ever written in every thread that wrote
//! one), and the file is rotated by size the way Python's `RotatingFileHandler` does it: the
//! full file becomes `NAME.1`, older backups shift up to `NAME.N` and the oldest beyond the
//! configured count is dropped. A file opened with [`Writes::Within`] gathers its lines in
//! memory and writes them together, at the latest that long after the first of them (or at once
//! when 64 KiB have gathered), from a thread of its own that sleeps while nothing waits;
//! stopping, dropping or [`LogFile::flush`] writes them out. A file opened with
//! [`Writes::AtOnce`] writes every call's lines before it returns. A file found ending without
//! its newline (a crash between the writes of one line) or left so by a failed write gets a
//! newline before the next line, so a torn line never swallows a whole one. Written pages leave
//! memory once on disk (`written_pages`), the file's own as it grows and a rotated one's whole.

use crate::error::Error;
use crate::retired_files::RetiredFiles;
use crate::written_pages::WrittenPages;
use flexi_logger::writers::{ArcFileLogWriter, FileLogWriter, FileLogWriterHandle};
use flexi_logger::FileSpec;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When a file's lines are written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Writes {
    /// Before the call that gives them returns.
    AtOnce,
    /// Together with the lines given around them, at the latest this long after they were given.
    Within(Duration),
}

/// A size-rotated log file.
pub(crate) struct LogFile {
    file: Arc<Shared>,
    /// The thread that writes gathered lines, for a file that gathers them (none for
    /// [`Writes::AtOnce`], or when no thread could be started: then lines are written at once).
    writer_thread: Option<JoinHandle<()>>,
}

/// What a file's callers and its writing thread share.
struct Shared {
    path: PathBuf,
    max_bytes: u64,
    backups: usize,
    /// The file's size, the lines waiting and the writer; the lock also keeps a rotation and a
    /// write from interleaving.
    state: Mutex<State>,
    /// Wakes the writing thread when the first line gathers, and when the file closes.
    gathered: Condvar,
    /// Keeps the writer open for as long as the file is (dropping it closes the writer).
    _open: FileLogWriterHandle,
}

struct State {
    /// Bytes in the current file, counting lines gathered but not yet written.
    size: u64,
    /// Lines gathered, joined by newlines (a write adds the last); also where the small pieces
    /// of a large line are joined.
    waiting: String,
    writer: ArcFileLogWriter,
    closed: bool,
    /// The file may end inside a line: the next write starts with a newline.
    torn: bool,
    /// A read handle on the file, through which its pages are let go once written (none if
    /// it could not be opened after a rotation).
    handle: Option<File>,
    pages: WrittenPages,
    /// Handles on files a rotation removed, closed by a thread of their own.
    retired: RetiredFiles,
}

/// The most bytes of lines written together, and the most gathered before they are written.
/// A line this long or longer goes out alone, its large pieces from where they lie.
const GROUP_BYTES: u64 = 64 * 1024;
/// A piece of a large line this long or longer is written from where it lies; shorter ones are
/// joined first, so a line costs a few writes, not one per piece.
const DIRECT_PIECE: usize = 16 * 1024;

impl LogFile {
    /// Opens (creating directories as needed) the file at `path` for appending. A file that
    /// cannot be written is a configuration error naming its path and the setting `key`.
    pub(crate) fn open(
        key: &str,
        path: &Path,
        max_bytes: u64,
        backups: usize,
        writes: Writes,
    ) -> Result<LogFile, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Config {
            source: crate::config::absolute(path),
            key: key.to_string(),
            message: format!("cannot write the log file: {e}"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| bad(&crate::error::folder_failure(path, &e)))?;
        }
        // Opening for append here, not at the first line, is what turns an unwritable folder
        // into a start-up error instead of every later line being lost.
        let (handle, size, torn) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .and_then(|f| {
                let len = f.metadata()?.len();
                let torn = ends_inside_a_line(&f, len)?;
                Ok((f, len, torn))
            })
            .map_err(|e| bad(&e))?;
        let spec = FileSpec::try_from(path).map_err(|e| bad(&e))?;
        let (writer, open) = FileLogWriter::builder(spec)
            .append()
            .try_build_with_handle()
            .map_err(|e| bad(&e))?;
        let file = Arc::new(Shared {
            path: path.to_path_buf(),
            // As with Python's `RotatingFileHandler`, a size limit or a backup count of 0 means
            // the file is never rotated: it grows, and no line is dropped.
            max_bytes: match (max_bytes, backups) {
                (0, _) | (_, 0) => u64::MAX,
                _ => max_bytes,
            },
            backups,
            state: Mutex::new(State {
                size,
                waiting: String::new(),
                writer,
                closed: false,
                torn,
                handle: Some(handle),
                pages: WrittenPages::default(),
                retired: RetiredFiles::default(),
            }),
            gathered: Condvar::new(),
            _open: open,
        });
        let writer_thread = match writes {
            Writes::AtOnce => None,
            Writes::Within(delay) => {
                let shared = Arc::clone(&file);
                std::thread::Builder::new()
                    .name(format!("log {}", path.display()))
                    .spawn(move || shared.write_gathered(delay))
                    .map_err(|e| log::warn!("{} is written line by line: {e}", path.display()))
                    .ok()
            }
        };
        Ok(LogFile {
            file,
            writer_thread,
        })
    }

    /// Appends lines, each given in pieces: a large piece (a message's text) goes to the file
    /// without being copied into a whole line first, and lines that fit before the next
    /// rotation share a write (see [`next_write`]). The file is rotated before a line that
    /// would take it to its size limit, as Python's `RotatingFileHandler` does.
    pub(crate) fn write_lines<const N: usize>(&self, lines: &[[&str; N]]) {
        let file = &self.file;
        let gathers = self.writer_thread.is_some();
        let mut state = file.lock();
        let was_empty = state.waiting.is_empty();
        let len = |line: &[&str; N]| line.iter().map(|p| p.len() as u64).sum::<u64>() + 1;
        let mut rest = lines;
        while !rest.is_empty() {
            if state.size > 0 && state.size + len(&rest[0]) >= file.max_bytes {
                match file.rotate(&mut state) {
                    Ok(()) => (state.size, state.torn) = (0, false),
                    Err(e) => log::warn!("cannot rotate {}: {e}", file.path.display()),
                }
            }
            let (count, group) = next_write(rest.iter().map(len), state.size, file.max_bytes);
            let lines = Lines(&rest[..count]);
            if group < GROUP_BYTES {
                if !state.waiting.is_empty() {
                    state.waiting.push('\n');
                }
                lines.push_onto(&mut state.waiting);
                state.size += group;
                if !gathers || state.waiting.len() as u64 >= GROUP_BYTES {
                    file.write_waiting(&mut state);
                }
            } else {
                file.write_waiting(&mut state);
                if file.write_out(&mut state, lines.pieces()) {
                    state.size += group;
                }
            }
            rest = &rest[count..];
        }
        let State {
            handle,
            pages,
            size,
            ..
        } = &mut *state;
        if let Some(handle) = handle {
            pages.appended(handle, *size);
        }
        if was_empty && !state.waiting.is_empty() {
            file.gathered.notify_one();
        }
    }

    /// Writes the lines gathered so far and flushes the writer.
    pub(crate) fn flush(&self) {
        let mut state = self.file.lock();
        self.file.write_waiting(&mut state);
        let _ = state.writer.flush();
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        self.file.lock().closed = true;
        self.file.gathered.notify_one();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        self.flush();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writing thread: waits for a first gathered line, lets `delay` pass (or the file
    /// close), writes what gathered, and waits again.
    fn write_gathered(&self, delay: Duration) {
        let mut state = self.lock();
        loop {
            while state.waiting.is_empty() && !state.closed {
                state = self.gathered.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            let due = Instant::now() + delay;
            while !state.closed {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .gathered
                    .wait_timeout(state, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            self.write_waiting(&mut state);
            if state.closed {
                return;
            }
        }
    }

    /// Writes the gathered lines, if any, and the newline that ends the last.
    fn write_waiting(&self, state: &mut State) {
        if state.waiting.is_empty() {
            return;
        }
        let lost = state.waiting.len() as u64 + 1;
        if !self.write_out(state, std::iter::empty()) {
            state.size = state.size.saturating_sub(lost);
        }
    }

    /// Writes what `waiting` holds, then `pieces`, then a newline: runs of small pieces are
    /// joined in `waiting` and each large piece (a message's text) is written from where it
    /// lies. False, logged, when it fails.
    fn write_out<'p>(&self, state: &mut State, pieces: impl Iterator<Item = &'p str>) -> bool {
        let State {
            waiting,
            writer,
            torn,
            size,
            ..
        } = state;
        let mut written = Ok(());
        if *torn {
            written = writer.write_all(b"\n");
            *size += 1;
            *torn = written.is_err();
        }
        for piece in pieces {
            if piece.len() < DIRECT_PIECE {
                waiting.push_str(piece);
                continue;
            }
            written = written
                .and_then(|()| writer.write_all(waiting.as_bytes()))
                .and_then(|()| writer.write_all(piece.as_bytes()));
            waiting.clear();
        }
        waiting.push('\n');
        written = written.and_then(|()| writer.write_all(waiting.as_bytes()));
        waiting.clear();
        // Whatever part of the line reached the file is ended by the next write.
        *torn |= written.is_err();
        written
            .map_err(|e| log::warn!("cannot write a log line to {}: {e}", self.path.display()))
            .is_ok()
    }

    /// `NAME.(N-1)` → `NAME.N`, …, `NAME` → `NAME.1`, then a fresh `NAME`, after the gathered
    /// lines went to the old one. Never called for a file without backups.
    fn rotate(&self, state: &mut State) -> std::io::Result<()> {
        self.write_waiting(state);
        state.writer.flush()?;
        // The oldest backup loses its last name below; the last handle on it is closed by
        // another thread (`retired_files`), since that close frees its blocks.
        let oldest = File::open(backup(&self.path, self.backups)).ok();
        for n in (1..self.backups).rev() {
            let from = backup(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, backup(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, backup(&self.path, 1))?;
        state
            .writer
            .reopen_outputfile()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let new = File::open(&self.path)
            .map_err(|e| log::warn!("{}: {e}; its pages stay in memory", self.path.display()))
            .ok();
        if let Some(old) = std::mem::replace(&mut state.handle, new) {
            if let Some(done) = state.pages.replaced(old) {
                state.retired.retire(done);
            }
        }
        if let Some(oldest) = oldest {
            state.retired.retire(oldest);
        }
        Ok(())
    }
}

/// Whether `file`, `len` bytes long, is not empty and its last byte is not a newline.
fn ends_inside_a_line(file: &File, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

/// How many of the lines (of the given lengths, newline included) go out in the next write to a
/// file of `size` bytes whose limit is `max_bytes`, and their bytes: the first always, then the
/// next ones while they fit in the file and the write stays within [`GROUP_BYTES`].
fn next_write(mut lens: impl Iterator<Item = u64>, size: u64, max_bytes: u64) -> (usize, u64) {
    let Some(first) = lens.next() else {
        return (0, 0);
    };
    let (mut count, mut group) = (1, first);
    for len in lens {
        if size + group + len >= max_bytes || group + len > GROUP_BYTES {
            break;
        }
        group += len;
        count += 1;
    }
    (count, group)
}

/// The path of backup `n`: the file's name with `.n` appended.
fn backup(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Lines given in pieces, written one after another with a newline between them (the write
/// adds the last).
struct Lines<'a, const N: usize>(&'a [[&'a str; N]]);

impl<const N: usize> Lines<'_, N> {
    /// The pieces in order, with the newline between lines.
    fn pieces(&self) -> impl Iterator<Item = &str> {
        self.0.iter().enumerate().flat_map(|(at, line)| {
            (at > 0)
                .then_some("\n")
                .into_iter()
                .chain(line.iter().copied())
        })
    }

    /// Appends the lines to `out`, joined by newlines.
    fn push_onto(&self, out: &mut String) {
        self.pieces().for_each(|piece| out.push_str(piece));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    const AN_HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn gathered_lines_wait_in_memory_and_are_all_written_in_order_when_the_file_closes() {
        let dir = TempDir::new();
        let path = dir.0.join("tool.log");
        let file = LogFile::open("log_path", &path, u64::MAX, 1, Writes::Within(AN_HOUR)).unwrap();
        file.write_lines(&[["a", "1"], ["b", "2"]]);
        file.write_lines(&[["c", "3"]]);
        assert_eq!(read(&path), "", "nothing is written before the delay");
        drop(file);
        assert_eq!(read(&path), "a1\nb2\nc3\n");
    }

    #[test]
    fn flush_writes_what_gathered_and_64_kib_gathered_are_written_at_once() {
        let dir = TempDir::new();
        let path = dir.0.join("tool.log");
        let file = LogFile::open("log_path", &path, u64::MAX, 1, Writes::Within(AN_HOUR)).unwrap();
        file.write_lines(&[["first"]]);
        file.flush();
        assert_eq!(read(&path), "first\n");
        let line = "x".repeat(999);
        for _ in 0..66 {
            file.write_lines(&[[line.as_str()]]);
        }
        let written = read(&path);
        assert_eq!(
            written.len() as u64,
            6 + 66 * 1000,
            "66 lines of 1,000 bytes are over 64 KiB and go out together"
        );
        file.write_lines(&[["last"]]);
        assert_eq!(read(&path).len(), written.len(), "a new line waits again");
        drop(file);
        assert!(read(&path).ends_with(&format!("{line}\nlast\n")));
    }

    #[test]
    fn gathered_lines_reach_the_file_by_themselves() {
        let dir = TempDir::new();
        let path = dir.0.join("tool.log");
        let file = LogFile::open(
            "log_path",
            &path,
            u64::MAX,
            1,
            Writes::Within(Duration::from_millis(10)),
        )
        .unwrap();
        for round in 0..3 {
            let line = format!("line {round}");
            file.write_lines(&[[line.as_str()]]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !read(&path).contains(&line) {
                assert!(Instant::now() < deadline, "{line} never reached the file");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(read(&path), "line 0\nline 1\nline 2\n");
    }

    #[test]
    fn a_rotation_writes_the_gathered_lines_to_the_old_file_first() {
        let dir = TempDir::new();
        let path = dir.0.join("tool.log");
        let file = LogFile::open("log_path", &path, 20, 2, Writes::Within(AN_HOUR)).unwrap();
        for line in [
            "one", "two", "three", "four", "five", "six", "seven", "eight",
        ] {
            file.write_lines(&[[line]]);
        }
        drop(file);
        assert_eq!(read(&backup(&path, 2)), "one\ntwo\nthree\nfour\n");
        assert_eq!(read(&backup(&path, 1)), "five\nsix\nseven\n");
        assert_eq!(read(&path), "eight\n");
    }

    /// However many rotations, the backups hold the newest lines, and the handles on the
    /// backups that rotations removed are all closed once the file is.
    #[test]
    fn the_oldest_backup_removed_by_a_rotation_is_closed_by_the_time_the_file_is() {
        for backups in [1, 3] {
            let dir = TempDir::new();
            let path = dir.0.join("archive.log");
            let file = LogFile::open("log_path", &path, 20, backups, Writes::AtOnce).unwrap();
            for n in 0..40 {
                file.write_lines(&[[&format!("line {n:02}")]]);
            }
            drop(file);
            // Two lines of 8 bytes fill a file of 20.
            assert_eq!(read(&path), "line 38\nline 39\n");
            for n in 1..=backups {
                assert_eq!(
                    read(&backup(&path, n)),
                    format!("line {:02}\nline {:02}\n", 38 - 2 * n, 39 - 2 * n)
                );
            }
            assert!(!backup(&path, backups + 1).exists());
            assert_eq!(dir.held_open(), Vec::<PathBuf>::new(), "{backups} backups");
        }
    }

    /// Python's `RotatingFileHandler` never rotates when either its size limit or its backup
    /// count is 0: the file keeps every line.
    #[test]
    fn a_size_limit_or_a_backup_count_of_0_keeps_every_line_in_one_file() {
        for (max_bytes, backups) in [(20, 0), (0, 3)] {
            let dir = TempDir::new();
            let path = dir.0.join("tool.log");
            let file = LogFile::open("log_path", &path, max_bytes, backups, Writes::AtOnce)
                .expect("the log opens");
            let lines = [
                "one", "two", "three", "four", "five", "six", "seven", "eight",
            ];
            for line in lines {
                file.write_lines(&[[line]]);
            }
            drop(file);
            assert_eq!(read(&path), lines.map(|l| format!("{l}\n")).concat());
            assert!(
                !backup(&path, 1).exists(),
                "{max_bytes} bytes, {backups} backups"
            );
        }
    }

    #[test]
    fn a_line_torn_by_a_crash_is_ended_before_the_next_line_so_that_one_stays_whole() {
        let dir = TempDir::new();
        let path = dir.0.join("archive.log");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2,\"text\":\"xxxx").unwrap();
        let file = LogFile::open("archive_path", &path, u64::MAX, 1, Writes::AtOnce).unwrap();
        file.write_lines(&[["{\"id\":3}"]]);
        file.write_lines(&[["{\"id\":4}"]]);
        drop(file);
        assert_eq!(
            read(&path),
            "{\"id\":1}\n{\"id\":2,\"text\":\"xxxx\n{\"id\":3}\n{\"id\":4}\n"
        );
        let file = LogFile::open("archive_path", &path, u64::MAX, 1, Writes::AtOnce).unwrap();
        file.write_lines(&[["{\"id\":5}"]]);
        drop(file);
        assert!(
            read(&path).ends_with("{\"id\":4}\n{\"id\":5}\n"),
            "a whole file gains no empty line"
        );
    }

    #[test]
    fn lines_written_at_once_are_in_the_file_when_the_call_returns() {
        let dir = TempDir::new();
        let path = dir.0.join("archive.log");
        let file = LogFile::open("channel_log_path", &path, u64::MAX, 1, Writes::AtOnce).unwrap();
        file.write_lines(&[["a"], ["b"]]);
        assert_eq!(read(&path), "a\nb\n");
    }

    #[test]
    fn a_line_past_the_group_size_goes_out_whole_from_its_pieces_in_order() {
        let big = "x".repeat(GROUP_BYTES as usize);
        let large = [r#"{"text":""#, big.as_str(), r#""}"#];
        let whole = format!("{{\"text\":\"{big}\"}}\n");
        for writes in [Writes::AtOnce, Writes::Within(AN_HOUR)] {
            let dir = TempDir::new();
            let path = dir.0.join("archive.log");
            let file = LogFile::open("channel_log_path", &path, u64::MAX, 1, writes).unwrap();
            file.write_lines(&[["{\"a\":", "1", "}"]]);
            file.write_lines(&[large, ["{\"b\":", "2", "}"]]);
            let so_far = format!("{{\"a\":1}}\n{whole}");
            match writes {
                Writes::AtOnce => assert_eq!(read(&path), format!("{so_far}{{\"b\":2}}\n")),
                Writes::Within(_) => assert_eq!(read(&path), so_far, "{writes:?}"),
            }
            drop(file);
            assert_eq!(read(&path), format!("{so_far}{{\"b\":2}}\n"), "{writes:?}");
        }
        // The large line counts towards the file's size: the lines on either side of it go to
        // files of their own.
        let dir = TempDir::new();
        let path = dir.0.join("archive.log");
        let limit = big.len() as u64 + 4;
        let file = LogFile::open("channel_log_path", &path, limit, 2, Writes::AtOnce).unwrap();
        file.write_lines(&[["before"], [big.as_str()], ["after"]]);
        drop(file);
        assert_eq!(read(&backup(&path, 2)), "before\n");
        assert_eq!(read(&backup(&path, 1)), format!("{big}\n"));
        assert_eq!(read(&path), "after\n");
    }

    #[test]
    fn small_lines_share_a_write_and_large_ones_go_alone() {
        let big = 1024 * 1024;
        assert_eq!(next_write([100, 100, 100].into_iter(), 0, 1000), (3, 300));
        assert_eq!(
            next_write([100, 100, 100].into_iter(), 750, 1000),
            (2, 200),
            "the file's limit ends a write"
        );
        assert_eq!(next_write([big, 100].into_iter(), 0, u64::MAX), (1, big));
        assert_eq!(
            next_write([100, big, 100].into_iter(), 0, u64::MAX),
            (1, 100)
        );
        assert_eq!(
            next_write(std::iter::repeat_n(1000, 100), 0, u64::MAX),
            (65, 65_000),
            "a write stays within GROUP_BYTES"
        );
        assert_eq!(next_write(std::iter::empty(), 0, 10), (0, 0));
    }
}
