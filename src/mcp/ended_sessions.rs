//! The ids of MCP sessions ended by `DELETE`, which must never be live again: the newest
//! `ENDED_LIMIT` of them, in memory and, with a data directory, in `sessions.ended` beside the
//! session key, one id a line, so that they stay ended after a restart (the key that signs ids
//! survives one, and would otherwise bring an ended session back). Each end appends its line;
//! a file grown to twice the limit is written again with the newest ids only. A line is not
//! synced: a crash may forget the last ends, which then count as sessions from before it.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Ended ids remembered; an older one, if it comes back, is taken for a session from before a
/// restart.
const ENDED_LIMIT: usize = 100_000;
const ENDED_FILE: &str = "sessions.ended";

pub(crate) struct EndedSessions {
    ids: HashSet<String>,
    /// The same ids, oldest first.
    order: VecDeque<String>,
    /// Where they are kept, and how many lines the file holds.
    file: Option<(PathBuf, usize)>,
    limit: usize,
}

impl EndedSessions {
    /// The ended ids kept in `dir` (none, and memory only, without one).
    pub(crate) fn open(dir: Option<&Path>) -> EndedSessions {
        EndedSessions::with_limit(dir, ENDED_LIMIT)
    }

    fn with_limit(dir: Option<&Path>, limit: usize) -> EndedSessions {
        let mut ended = EndedSessions {
            ids: HashSet::new(),
            order: VecDeque::new(),
            file: None,
            limit,
        };
        let Some(dir) = dir else {
            return ended;
        };
        let path = dir.join(ENDED_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                log::warn!(
                    "{}: {e}; sessions ended before are not known",
                    path.display()
                );
                String::new()
            }
        };
        let mut lines = 0;
        for id in text.lines() {
            lines += 1;
            ended.remember(id);
        }
        ended.file = Some((path, lines));
        ended
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Ends `id` for good, on disk too.
    pub(crate) fn add(&mut self, id: &str) {
        if !self.remember(id) {
            return;
        }
        let Some((path, lines)) = &mut self.file else {
            return;
        };
        let written = if *lines >= 2 * self.limit {
            let text: String = self.order.iter().map(|id| format!("{id}\n")).collect();
            let tmp = path.with_extension("ended.tmp");
            fs::write(&tmp, text)
                .and_then(|()| fs::rename(&tmp, &*path))
                .map(|()| *lines = self.order.len())
        } else {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
                .and_then(|mut f: File| f.write_all(format!("{id}\n").as_bytes()))
                .map(|()| *lines += 1)
        };
        if let Err(e) = written {
            log::warn!(
                "{}: {e}; a restart may bring an ended session back",
                path.display()
            );
        }
    }

    /// Adds `id` in memory, forgetting the oldest past the limit; false if it was there.
    fn remember(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > self.limit {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn ended_ids_stay_ended_after_a_reopen_and_the_file_keeps_only_the_newest() {
        let dir = TempDir::new();
        fs::create_dir_all(&dir.0).unwrap();
        let id = |n: usize| format!("{n:032x}");
        let mut ended = EndedSessions::with_limit(Some(&dir.0), 3);
        for n in 0..5 {
            ended.add(&id(n));
        }
        ended.add(&id(4));
        assert!(!ended.contains(&id(1)) && ended.contains(&id(2)) && ended.contains(&id(4)));
        let again = EndedSessions::with_limit(Some(&dir.0), 3);
        let kept: Vec<bool> = (0..5).map(|n| again.contains(&id(n))).collect();
        assert_eq!(kept, [false, false, true, true, true]);
        // Past twice the limit the file is written again with the newest ids.
        let mut ended = again;
        for n in 5..9 {
            ended.add(&id(n));
        }
        let lines = fs::read_to_string(dir.0.join(ENDED_FILE)).unwrap();
        assert!(lines.lines().count() <= 6, "{lines}");
        let reopened = EndedSessions::with_limit(Some(&dir.0), 3);
        let kept: Vec<bool> = (0..9).map(|n| reopened.contains(&id(n))).collect();
        assert_eq!(
            kept,
            [false, false, false, false, false, false, true, true, true]
        );
    }

    #[test]
    fn without_a_directory_ended_ids_live_in_memory() {
        let mut ended = EndedSessions::open(None);
        ended.add("a");
        assert!(ended.contains("a") && !ended.contains("b"));
    }
}
