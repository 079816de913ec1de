//! A fresh directory for one unit test: under the system's temporary directory, named after the
//! process and a counter so tests running side by side never share one, not created (the code
//! under test may be what creates it), and removed with everything in it when the test ends.
//! Test modules add the helpers they need with `impl TempDir` blocks of their own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("relay-unit-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    /// The files under the directory this process holds open, by the names they were opened
    /// under (which end in ` (deleted)` once removed).
    pub(crate) fn held_open(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/proc/self/fd")
            .map(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .filter(|target| target.starts_with(&self.0))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
