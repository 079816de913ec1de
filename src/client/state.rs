//! The watch state file: the id of the last message handled, as decimal text. It is replaced
//! atomically (a temporary file in the same directory, flushed to disk, then renamed over it),
//! so a watcher killed at any instant leaves either the old id or the new one, never a torn
//! file, and a restart neither repeats a handled message nor skips an unhandled one. A file
//! that cannot be used (a folder, one that cannot be read, a folder that cannot be made or
//! written in) is a local failure (exit 5) found before the watch begins, not after the first
//! message's CMD ran; a file that holds something other than an id is for the operator to look
//! at (exit 2).

use super::error::Error;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where `watch` keeps its place.
pub(super) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub(super) fn new(path: impl Into<PathBuf>) -> StateFile {
        StateFile { path: path.into() }
    }

    /// The state file `--state` names: a blank name is a usage error, and the name of a
    /// folder a local failure, now rather than a failed write after the watch has begun.
    pub(super) fn from_arg(arg: &str) -> Result<StateFile, Error> {
        if arg.trim().is_empty() {
            return Err(Error::Usage("--state needs a file name".into()));
        }
        let path = Path::new(arg);
        if arg.ends_with('/') || path.file_name().is_none() || path.is_dir() {
            return Err(Error::Local(format!(
                "--state {arg:?} is a folder, which cannot hold the state; give a file in it, like {}",
                path.join("last_id").display()
            )));
        }
        Ok(StateFile::new(path))
    }

    /// Makes sure the file can be kept, before the watch begins: its folder is made, and a
    /// file is created in it (the temporary one a write uses, removed at once).
    pub(super) fn check(&self) -> Result<(), Error> {
        let fail = |e: std::io::Error| {
            Error::Local(format!(
                "cannot keep the state file {}: {e}",
                self.path.display()
            ))
        };
        let tmp = self.make_folder().map_err(fail)?;
        fs::File::create(&tmp).map_err(fail)?;
        fs::remove_file(&tmp).map_err(fail)
    }

    /// Makes the file's folder if it is missing (`--state .codex/last_id` in a fresh checkout)
    /// and returns the name of the temporary file a write goes through.
    fn make_folder(&self) -> std::io::Result<PathBuf> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| std::io::Error::from(ErrorKind::InvalidInput))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        Ok(self.path.with_file_name(tmp_name))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The last handled id, or None when the file does not exist or is empty. Anything else
    /// that is not an id is an error: guessing 0 would replay the whole channel.
    pub(super) fn read(&self) -> Result<Option<u64>, Error> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Local(format!(
                    "cannot read the state file {}: {e}",
                    self.path.display()
                )))
            }
        };
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            Error::BadState(format!(
                "the state file {} holds {text:?}, not a message id; fix or remove it",
                self.path.display()
            ))
        })
    }

    /// Records `id` as the last handled message.
    pub(super) fn write(&self, id: u64) -> Result<(), Error> {
        let fail = |e: std::io::Error| {
            Error::Local(format!(
                "cannot write the state file {}: {e}",
                self.path.display()
            ))
        };
        let tmp = self.make_folder().map_err(fail)?;
        let written = fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(format!("{id}\n").as_bytes())?;
            f.sync_all()
        });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &self.path)) {
            let _ = fs::remove_file(&tmp);
            return Err(fail(e));
        }
        // Makes the rename itself durable; not every file system lets a directory be synced.
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("relay-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let state = StateFile::new(dir.join("last_id"));
        assert_eq!(state.read().unwrap(), None);
        state.write(41).unwrap();
        state.write(42).unwrap();
        assert_eq!(state.read().unwrap(), Some(42));
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        fs::write(state.path(), "").unwrap();
        assert_eq!(state.read().unwrap(), None);
        fs::write(state.path(), "forty\n").unwrap();
        assert!(matches!(state.read(), Err(Error::BadState(_))));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_blank_name_is_a_usage_error_and_a_folder_a_local_failure() {
        for blank in ["", " "] {
            assert!(
                matches!(StateFile::from_arg(blank), Err(Error::Usage(_))),
                "{blank:?}"
            );
        }
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        for folder in ["/", "..", "some/folder/", dir] {
            assert!(
                matches!(StateFile::from_arg(folder), Err(Error::Local(_))),
                "{folder:?}"
            );
        }
        assert!(StateFile::from_arg(".codex/last_id").is_ok());
    }

    #[test]
    fn a_file_that_cannot_be_kept_is_a_local_failure_before_any_write() {
        let dir = std::env::temp_dir().join(format!("relay-state-bad-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a-file");
        fs::write(&file, "").unwrap();
        // A file where a folder should be: it can neither be read nor made.
        let under = StateFile::new(file.join("last_id"));
        assert!(matches!(under.read(), Err(Error::Local(_))));
        assert!(matches!(under.check(), Err(Error::Local(_))));
        let deeper = StateFile::new(file.join("sub").join("last_id"));
        assert!(matches!(deeper.check(), Err(Error::Local(_))));
        let fine = StateFile::new(dir.join("new").join("last_id"));
        fine.check().unwrap();
        assert_eq!(fine.read().unwrap(), None, "the check leaves no file");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_in_a_missing_folder_gets_its_folder() {
        let dir = std::env::temp_dir().join(format!("relay-state-new-{}", std::process::id()));
        let state = StateFile::new(dir.join(".codex").join("last_id"));
        state.write(7).unwrap();
        assert_eq!(state.read().unwrap(), Some(7));
        fs::remove_dir_all(&dir).unwrap();
    }
}
