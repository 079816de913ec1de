//! Letting go of a write-once file's pages once they are on disk. The journal is appended to
//! and seldom read back (the store keeps recent texts in its own cache), so its pages do the
//! host little good in memory: left to the kernel, a journal of gigabytes pushes other files
//! out of the page cache, and every page appended is taken from free memory, which is far
//! slower than reusing one, most of all on a virtual machine that hands its free memory back to
//! the host (there, appending reuses pages at several times the speed of taking fresh ones).
//! So each time a mebibyte boundary is passed, the file's pages some way behind its end are
//! advised away in three passes: `START_BEHIND` the end, the advice starts their writeback;
//! `DROP_BEHIND` the end, it drops them, written back by then; `SWEEP_BEHIND` the end, it drops
//! again those that were still being written at the second pass (a disk slower than the
//! appends leaves a tenth of them there, which would otherwise stay in memory until the kernel
//! needs it). A file replaced by a new one (a rotated log) is let go of
//! whole in the same two passes: its writeback is started when it is replaced, and its pages
//! dropped when the next one is. Nothing here waits for the disk, and the advice changes no byte
//! of a file: a read of a page let go reads it from disk again.

use rustix::fs::{fadvise, Advice};
use std::fs::File;
use std::num::NonZeroU64;
use std::ops::Range;

/// How far apart the advice is given.
const CHUNK: u64 = 1 << 20;
/// How far behind the end writeback is started.
const START_BEHIND: u64 = 8 * CHUNK;
/// How far behind the end pages are dropped.
const DROP_BEHIND: u64 = 32 * CHUNK;
/// How far behind the end pages still being written at `DROP_BEHIND` are dropped.
const SWEEP_BEHIND: u64 = 256 * CHUNK;

/// How much of a file has been advised away; a new file starts at 0, so its first appends let
/// go of everything already there but its last `DROP_BEHIND` bytes.
#[derive(Debug, Default)]
pub struct WrittenPages {
    /// The chunk boundary the advice has reached: bytes before `advised - START_BEHIND` have
    /// had their writeback started, bytes before `advised - DROP_BEHIND` were dropped, and
    /// bytes before `advised - SWEEP_BEHIND` dropped again.
    advised: u64,
    /// The file the current one replaced, whose pages are dropped when it is replaced in turn.
    replaced: Option<File>,
}

impl WrittenPages {
    /// Tells the pages of `file`, now `len` bytes long, to leave memory where they are far
    /// enough behind its end. Advice only: a kernel or file system that ignores it keeps the
    /// pages, as it would have anyway.
    pub fn appended(&mut self, file: &File, len: u64) {
        let _ = self.let_go(file, len);
    }

    /// The file appended to is now a new one, and `old` (a handle on the one it replaced) will
    /// not be written again: `old`'s writeback is started, and the file it replaced is dropped.
    /// Returns the handle on that file, no longer needed here: the caller closes it, and may
    /// want that done elsewhere if the file is removed (see `retired_files`).
    #[must_use]
    pub(crate) fn replaced(&mut self, old: File) -> Option<File> {
        for file in self.replaced.iter().chain([&old]) {
            let _ = fadvise(file, 0, None, Advice::DontNeed);
        }
        std::mem::replace(
            self,
            WrittenPages {
                advised: 0,
                replaced: Some(old),
            },
        )
        .replaced
    }

    /// `appended`, saying whether the kernel took the advice.
    fn let_go(&mut self, file: &File, len: u64) -> std::io::Result<()> {
        for range in self.advise(len) {
            if let Some(n) = NonZeroU64::new(range.end - range.start) {
                fadvise(file, range.start, Some(n), Advice::DontNeed)?;
            }
        }
        Ok(())
    }

    /// The byte ranges to advise away now that the file is `len` bytes long: the pages newly
    /// `START_BEHIND` the last whole chunk's end, then those newly `DROP_BEHIND` and
    /// `SWEEP_BEHIND` it.
    fn advise(&mut self, len: u64) -> [Range<u64>; 3] {
        let to = (len / CHUNK * CHUNK).max(self.advised);
        let from = std::mem::replace(&mut self.advised, to);
        [START_BEHIND, DROP_BEHIND, SWEEP_BEHIND]
            .map(|behind| from.saturating_sub(behind)..to.saturating_sub(behind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;
    use std::io::Write;

    /// Whatever sizes the appends have, each pass advises every byte once, in order, and never
    /// one within its distance of the end.
    #[test]
    fn each_pass_covers_the_file_once_in_order_and_stays_its_distance_behind_the_end() {
        let mut pages = WrittenPages::default();
        let mut reached = [0, 0, 0];
        let mut len = 0;
        let sizes = [
            1,
            100,
            CHUNK - 101,
            3 * CHUNK + 7,
            40 * CHUNK,
            5,
            CHUNK,
            64 * CHUNK,
        ];
        for size in sizes.iter().cycle().take(40) {
            len += size;
            let ranges = pages.advise(len);
            for (pass, (range, behind)) in ranges
                .iter()
                .zip([START_BEHIND, DROP_BEHIND, SWEEP_BEHIND])
                .enumerate()
            {
                assert_eq!(
                    range.start, reached[pass],
                    "pass {pass} goes on where it stopped"
                );
                assert!(
                    range.end <= len.saturating_sub(behind),
                    "pass {pass} at {len}"
                );
                assert!(
                    len - range.end < behind + CHUNK,
                    "pass {pass} keeps up at {len}"
                );
                reached[pass] = range.end;
            }
        }
        assert!(
            reached[2] < reached[1] && reached[1] < reached[0],
            "pages are dropped after their writeback started, and swept after that"
        );
    }

    #[test]
    fn the_advice_is_taken_and_leaves_every_byte_of_the_file_as_it_was() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let path = dir.0.join("written");
        let mut file = File::create(&path).unwrap();
        let mut pages = WrittenPages::default();
        let mut written = Vec::new();
        for i in 0..48u8 {
            let chunk = vec![b'a' + i % 26; CHUNK as usize + usize::from(i)];
            file.write_all(&chunk).unwrap();
            written.extend_from_slice(&chunk);
            let len = written.len() as u64;
            pages.let_go(&file, len).expect("the advice is taken");
        }
        assert!(pages.advised > DROP_BEHIND, "pages were dropped");
        assert!(
            std::fs::read(&path).unwrap() == written,
            "the file reads as written"
        );
    }
}
