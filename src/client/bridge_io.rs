//! What the stdio bridge's threads share (`bridge` forwarding requests, `listener` pushing
//! channel events): standard output written one whole line at a time, the gate that holds
//! pushes until the client is initialized, notes on standard error, and the backoff between
//! attempts to reach a relay that is down.

use serde_json::Value;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Standard output, shared by every thread: one whole line per message.
pub(super) struct Out(Mutex<Box<dyn Write + Send>>);

impl Out {
    pub(super) fn new(w: Box<dyn Write + Send>) -> Out {
        Out(Mutex::new(w))
    }

    /// Writes one JSON-RPC message as a line. A closed output is not an error here: the
    /// client is gone, and standard input's end will follow.
    pub(super) fn line(&self, json: &str) {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = w.write_all(&line).and_then(|()| w.flush());
    }

    pub(super) fn send(&self, message: &Value) {
        self.line(&message.to_string());
    }
}

/// A one-way latch: closed until the client says `notifications/initialized`.
#[derive(Default)]
pub(super) struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub(super) fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }

    pub(super) fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Writes a note on standard error, through a handle of its own: `main` holds the lock of
/// `std::io::stderr()` for the whole command.
pub(super) fn note(text: &str) {
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let line = format!("claude-codex-relay mcp: {text}\n");
        let _ = std::fs::File::from(fd).write_all(line.as_bytes());
    }
}

/// The doubling delay between attempts to reach a relay that is down.
pub(super) struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    pub(super) fn new() -> Backoff {
        Backoff(Self::FIRST)
    }

    pub(super) fn reset(&mut self) {
        self.0 = Self::FIRST;
    }

    pub(super) fn sleep(&mut self) {
        thread::sleep(self.0);
        self.0 = (self.0 * 2).min(Self::MAX);
    }
}
