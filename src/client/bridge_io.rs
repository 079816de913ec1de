//! What the stdio bridge's threads share (`bridge` forwarding requests, `listener` pushing
//! channel events): standard output written one whole line at a time (only answers once
//! standard input has ended), the count of requests still being forwarded, the gate that holds
//! pushes until the client is initialized, notes on standard error, and the backoff between
//! attempts to reach a relay that is down.

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use serde_json::Value;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Standard output, shared by every thread: one whole line per message.
pub(super) struct Out {
    sink: Mutex<Sink>,
    /// A write failed, or the reader was seen to be gone: the client no longer reads what the
    /// bridge writes.
    closed: AtomicBool,
}

struct Sink {
    w: Box<dyn Write + Send>,
    /// Standard input has ended: only answers to the client's requests are written now, no
    /// channel event or other message the client did not ask for.
    answers_only: bool,
}

impl Out {
    pub(super) fn new(w: Box<dyn Write + Send>) -> Out {
        Out {
            sink: Mutex::new(Sink {
                w,
                answers_only: false,
            }),
            closed: AtomicBool::new(false),
        }
    }

    /// Writes one JSON-RPC message as a line. A closed output is not an error here: the
    /// client is gone, and standard input's end will follow; `closed` says so from then on.
    pub(super) fn line(&self, json: &str) {
        self.write(json, || {
            !serde_json::from_str::<Value>(json).is_ok_and(|m| m.get("method").is_some())
        });
    }

    /// Writes the relay's answer to a client's request, as it came.
    pub(super) fn answer(&self, json: &str) {
        self.write(json, || true);
    }

    pub(super) fn send(&self, message: &Value) {
        self.write(&message.to_string(), || message.get("method").is_none());
    }

    /// Writes `json` unless standard input has ended and `is_answer` says it is not a response
    /// (a message with a `method` is a notification or a request of the server's).
    fn write(&self, json: &str, is_answer: impl FnOnce() -> bool) {
        let mut line = Vec::with_capacity(json.len() + 1);
        line.extend_from_slice(json.as_bytes());
        line.push(b'\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        if sink.answers_only && !is_answer() {
            return;
        }
        let written = sink.w.write_all(&line).and_then(|()| sink.w.flush());
        if written.is_err() {
            self.closed.store(true, Ordering::SeqCst);
        }
    }

    /// From now on only answers are written: standard input has ended, and nothing is pushed.
    pub(super) fn answers_only(&self) {
        self.sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .answers_only = true;
    }

    /// Whether a write has failed or the reader of standard output was seen to be gone.
    pub(super) fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The reader of standard output is gone: nothing written can reach it.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

/// Returns true once the reader at the other end of `fd` (a pipe or a socket) is gone, asked
/// of the system without writing; false if the system cannot tell. Never returns for an output
/// that has no reader to lose (a file, `/dev/null`).
pub(super) fn reader_gone(fd: BorrowedFd<'_>) -> bool {
    loop {
        // No event asked for: poll reports only an error (a pipe whose reader closed), a
        // hang-up (a socket or terminal whose other end closed) or an fd that is not open.
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) if !fds[0].revents().is_empty() => return true,
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// The client messages being forwarded to the relay, each by a thread of its own: when
/// standard input ends, the bridge waits for them to be answered before it ends.
#[derive(Default)]
pub(super) struct InFlight {
    count: Mutex<usize>,
    done: Condvar,
}

/// One message being forwarded: it counts as in flight until this is dropped, which happens
/// after its answer is written (or when its thread ends any other way).
pub(super) struct Forwarding(Arc<InFlight>);

impl InFlight {
    pub(super) fn start(self: &Arc<Self>) -> Forwarding {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Forwarding(Arc::clone(self))
    }

    /// Returns once every message in flight is done, or at once when `out` is closed (and
    /// `wake` is called), since no answer can reach the client then. Each forward ends within
    /// its own bound (its `wait_seconds` and the request timeout of `upstream`), so this does
    /// too.
    pub(super) fn wait(&self, out: &Out) {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 && !out.closed() {
            count = self.done.wait(count).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl InFlight {
    /// Has a `wait` look again whether the output it was given is closed.
    pub(super) fn wake(&self) {
        let _count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        self.done.notify_all();
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        *self.0.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.done.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A writer whose reader is gone.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn once_answers_only_a_pushed_message_is_dropped_and_an_answer_written() {
        let written = Shared::default();
        let out = Out::new(Box::new(written.clone()));
        let event = json!({"jsonrpc": "2.0", "method": "notifications/claude/channel"});
        out.send(&event);
        out.answers_only();
        out.send(&event);
        out.line(&event.to_string());
        out.line(r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}"#);
        out.send(&json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
        out.line(r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#);
        out.answer(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#);
        let text = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
        let ids: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
            .collect();
        assert_eq!(ids, [Value::Null, json!(2), json!(3), json!(4)], "{text}");
        assert!(!out.closed());
    }

    #[test]
    fn a_failed_write_closes_the_output_and_ends_the_wait_for_answers() {
        let out = Out::new(Box::new(Gone));
        let in_flight = Arc::new(InFlight::default());
        let forwarding = in_flight.start();
        out.send(&json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert!(out.closed());
        in_flight.wait(&out);
        drop(forwarding);
    }

    #[test]
    fn a_pipe_whose_reader_closed_is_noticed_without_a_write() {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        assert!(reader_gone(writer.as_fd()));
    }

    #[test]
    fn the_wait_for_answers_ends_when_the_last_forward_does() {
        let out = Arc::new(Out::new(Box::new(Shared::default())));
        let in_flight = Arc::new(InFlight::default());
        let forwards: Vec<Forwarding> = (0..3).map(|_| in_flight.start()).collect();
        let finisher = thread::spawn(move || drop(forwards));
        in_flight.wait(&out);
        assert_eq!(
            *in_flight.count.lock().unwrap(),
            0,
            "every forward was done"
        );
        finisher.join().unwrap();
    }
}
