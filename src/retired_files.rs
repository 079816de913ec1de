//! Closing the last handle on a file whose last name is gone, away from the thread that removed
//! the name. That close is when the file system frees the file's blocks, and on one mounted
//! with `discard` it waits for the device to trim them: for a rotated log's oldest backup of
//! 25 MB that is milliseconds, which a writer holding a log's lock (and, behind it, every post
//! being recorded) must not spend. A thread of the owner's closes them instead; it starts with
//! the first file handed over, so an owner that never retires one costs no thread. At most
//! [`WAITING`] files wait for it: past that, the caller closes the file itself, so a device that
//! trims more slowly than files are retired slows the writer down instead of piling up handles.
//! Dropping the owner closes every file still waiting before it returns.

use std::fs::File;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;

/// The most files that wait to be closed.
const WAITING: usize = 4;

/// Files to be closed by a thread of their own.
#[derive(Default)]
pub(crate) struct RetiredFiles {
    /// Where files go to be closed, and the thread that closes them; none until the first file.
    closer: Option<(SyncSender<File>, JoinHandle<()>)>,
    /// The closing thread could not be started: files are closed where they are retired.
    inline: bool,
}

impl RetiredFiles {
    /// Hands over `file`, to be closed by the closing thread; closes it here when that thread
    /// cannot be started or already has [`WAITING`] files to close.
    pub(crate) fn retire(&mut self, file: File) {
        if self.closer.is_none() && !self.inline {
            let (sender, files) = mpsc::sync_channel::<File>(WAITING);
            match std::thread::Builder::new()
                .name("retired files".into())
                .spawn(move || files.into_iter().for_each(drop))
            {
                Ok(thread) => self.closer = Some((sender, thread)),
                Err(e) => {
                    log::warn!("removed files are closed by their writers: {e}");
                    self.inline = true;
                }
            }
        }
        // A file the thread does not take comes back in the error, and is closed with it here.
        if let Some((sender, _)) = &self.closer {
            let _ = sender.try_send(file);
        }
    }
}

impl Drop for RetiredFiles {
    fn drop(&mut self) {
        if let Some((sender, thread)) = self.closer.take() {
            drop(sender);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;
    use std::path::{Path, PathBuf};

    /// A file under `dir`, opened and then removed: only the handle keeps it.
    fn removed(dir: &Path, n: usize) -> File {
        let path = dir.join(format!("removed.{n}"));
        std::fs::write(&path, vec![b'x'; 64 * 1024]).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn every_retired_file_is_closed_by_the_time_the_owner_is_dropped() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut retired = RetiredFiles::default();
        for n in 0..3 * WAITING {
            retired.retire(removed(&dir.0, n));
        }
        assert!(retired.closer.is_some(), "a thread closes them");
        drop(retired);
        assert_eq!(dir.held_open(), Vec::<PathBuf>::new());
    }

    #[test]
    fn with_no_closing_thread_a_file_is_closed_where_it_is_retired() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut retired = RetiredFiles {
            closer: None,
            inline: true,
        };
        let file = removed(&dir.0, 0);
        assert_eq!(dir.held_open().len(), 1);
        retired.retire(file);
        assert_eq!(dir.held_open(), Vec::<PathBuf>::new());
    }

    #[test]
    fn an_owner_that_retires_nothing_starts_no_thread() {
        let retired = RetiredFiles::default();
        assert!(retired.closer.is_none());
    }
}
