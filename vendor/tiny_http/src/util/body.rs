//! PATCH(bounded-drain, deadlines): a request body as the application reads it.
//!
//! The whole body must arrive by the connection's body deadline. When the application drops a
//! body it has not read to the end, the rest is read and discarded in small chunks up to
//! `Limits::drain_cap`; a longer (or broken, or late) remainder closes the connection instead,
//! since the next request could not be found in the stream. Nothing is ever allocated from a
//! length the client declared.

use std::io::{Read, Result as IoResult};
use std::sync::Arc;

use crate::util::connection_table::Conn;

/// Size of the buffer a dropped body is drained through.
const DRAIN_CHUNK: usize = 8 * 1024;

pub(crate) struct Body<R: Read> {
    inner: R,
    conn: Arc<Conn>,
    /// Declared bytes still to come (`None` for a chunked body).
    remaining: Option<u64>,
    done: bool,
}

impl<R: Read> Body<R> {
    /// A body of `declared` bytes (`None`: chunked); the connection's body deadline is set.
    /// PATCH(bounded-drain): what is left of a chunked body is unknown, so until its end is read
    /// it counts as more than `drain_cap`, and a response sent before then says
    /// `Connection: close` (it counted as none: the connection then closed after a response
    /// that did not say so, when the rest was over `drain_cap`).
    pub(crate) fn new(inner: R, conn: Arc<Conn>, declared: Option<u64>) -> Body<R> {
        conn.set_deadline(Some(conn.limits().body_deadline(declared)));
        conn.set_unread_body(declared.unwrap_or(u64::MAX));
        Body {
            inner,
            conn,
            remaining: declared,
            done: false,
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.conn.set_deadline(None);
        self.conn.set_unread_body(0);
    }
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.done {
            return Ok(0);
        }
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.finish();
                Ok(0)
            }
            Ok(n) => {
                if let Some(left) = self.remaining.as_mut() {
                    *left = left.saturating_sub(n as u64);
                    self.conn.set_unread_body(*left);
                    if *left == 0 {
                        self.finish();
                    }
                }
                Ok(n)
            }
            Err(e) => {
                // Where this body ends in the stream is no longer known.
                self.conn.close_after_response();
                Err(e)
            }
        }
    }
}

impl<R: Read> Drop for Body<R> {
    fn drop(&mut self) {
        let cap = self.conn.limits().drain_cap;
        let mut drained = 0;
        // PATCH(linger): the connection closes after the response, and reads on until the
        // client has sent what it meant to; it no longer shuts down its reading half here, which
        // made closing with the rest unread reset the connection under the client's sending.
        if self.remaining.is_some_and(|left| left > cap as u64) {
            self.conn.close_after_response();
            return;
        }
        let mut chunk = [0u8; DRAIN_CHUNK];
        while !self.done && drained <= cap && !self.conn.is_closing() {
            match self.read(&mut chunk) {
                Ok(n) => drained += n,
                Err(_) => break,
            }
        }
        if !self.done {
            self.conn.close_after_response();
        }
    }
}
