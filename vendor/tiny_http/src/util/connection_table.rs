//! PATCH(connection-cap, deadlines): the table of live connections and the state each one
//! shares between its reading half, its requests and the accept loop.
//!
//! The table caps how many connections are served at once. When it is full, a new connection
//! takes the place of the connection that has waited longest for a request (an idle keep-alive
//! or a socket that never sent anything); when none is waiting, the accept loop refuses the new
//! one. Each connection carries the deadline its current read must meet (the request head's, then
//! the body's), whether it must close after the current response, and how much of the current
//! request's body is still unread.

use std::io::{Error as IoError, ErrorKind, Read};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::Limits;

/// `state` of a connection that is handling a request.
const BUSY: u64 = u64::MAX;
/// `state` of a connection the table closed to make room.
const EVICTED: u64 = u64::MAX - 1;
/// `state` of a connection whose thread is done with it.
const CLOSED: u64 = u64::MAX - 2;
/// `deadline` when there is none.
const NO_DEADLINE: u64 = 0;
/// PATCH(linger): the most read at once from a closing connection.
const LINGER_CHUNK: usize = 64 * 1024;

/// The live connections of one server.
pub(crate) struct ConnectionTable {
    epoch: Instant,
    live: AtomicUsize,
    conns: Mutex<Vec<Weak<Conn>>>,
    pub(crate) limits: Limits,
}

/// What one connection shares between the threads and readers that use it.
pub(crate) struct Conn {
    table: Arc<ConnectionTable>,
    socket: Connection,
    /// Milliseconds since the table's epoch at which the connection began waiting for a request,
    /// or `BUSY`, `EVICTED`, `CLOSED`.
    state: AtomicU64,
    /// Milliseconds since the epoch by which the current read must finish (`NO_DEADLINE`: none).
    deadline: AtomicU64,
    closing: AtomicBool,
    unread_body: AtomicU64,
}

/// A connection's place in the table, given back when the connection's thread is done.
pub(crate) struct Ticket {
    conn: Arc<Conn>,
}

impl ConnectionTable {
    pub(crate) fn new(limits: Limits) -> Arc<ConnectionTable> {
        Arc::new(ConnectionTable {
            epoch: Instant::now(),
            live: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            limits,
        })
    }

    /// Connections being served now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Connections handling a request now (from the first byte of its head to the end of its
    /// response).
    pub(crate) fn busy(&self) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.state.load(Ordering::Acquire) == BUSY)
            .count()
    }

    fn now_ms(&self) -> u64 {
        // Never 0 (`NO_DEADLINE`) nor one of the state markers.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// PATCH(long-timeouts): the deadline `within` from now, in milliseconds since the epoch. A
    /// timeout too long to count in milliseconds (`Duration::MAX`, or seconds near `u64::MAX`)
    /// gives the last millisecond there is, which never comes, rather than a sum that wraps
    /// into the past (every request then 408) or overflows.
    fn deadline_after(&self, within: Duration) -> u64 {
        let within = within.as_millis().min(u128::from(u64::MAX)) as u64;
        self.now_ms().saturating_add(within)
    }

    /// Takes a place for a new connection, making room by closing the connection that has waited
    /// longest for a request when the table is full; `None` when every connection is busy. The
    /// first request's head must arrive within the header timeout from now.
    pub(crate) fn admit(self: &Arc<Self>, socket: &Connection) -> Option<Ticket> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if self.live() >= self.limits.max_connections && !self.evict_longest_waiting(&conns) {
            return None;
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        let conn = Arc::new(Conn {
            table: Arc::clone(self),
            socket: socket.share(),
            state: AtomicU64::new(self.now_ms()),
            deadline: AtomicU64::new(self.deadline_after(self.limits.header_timeout)),
            closing: AtomicBool::new(false),
            unread_body: AtomicU64::new(0),
        });
        if conns.len() >= 2 * self.limits.max_connections.max(32) {
            conns.retain(|c| c.strong_count() > 0);
        }
        conns.push(Arc::downgrade(&conn));
        Some(Ticket { conn })
    }

    fn evict_longest_waiting(&self, conns: &[Weak<Conn>]) -> bool {
        loop {
            let oldest = conns
                .iter()
                .filter_map(Weak::upgrade)
                .filter_map(|c| {
                    let since = c.state.load(Ordering::Acquire);
                    (since < CLOSED).then_some((since, c))
                })
                .min_by_key(|(since, _)| *since);
            let (since, conn) = match oldest {
                Some(found) => found,
                None => return false,
            };
            // The connection may have begun a request meanwhile: then look again.
            if conn
                .state
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.live.fetch_sub(1, Ordering::AcqRel);
                conn.closing.store(true, Ordering::Release);
                let _ = conn.socket.shutdown(Shutdown::Both);
                return true;
            }
        }
    }
}

impl Ticket {
    pub(crate) fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.conn.state.swap(CLOSED, Ordering::AcqRel) != EVICTED {
            self.conn.table.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Conn {
    pub(crate) fn limits(&self) -> &Limits {
        &self.table.limits
    }

    /// PATCH(file-pieces): the connection's socket, where a response's file pieces are sent.
    pub(crate) fn socket(&self) -> &Connection {
        &self.socket
    }

    /// PATCH(peer-gone): whether the client has closed or reset the connection.
    pub(crate) fn peer_gone(&self) -> bool {
        self.socket.peer_gone()
    }

    /// The connection waits for the first byte of its next request (and may be evicted). The
    /// first request's head deadline, set at admission, stays; later requests have none until
    /// their first byte arrives.
    pub(crate) fn await_request(&self, first: bool) {
        if !first {
            self.deadline.store(NO_DEADLINE, Ordering::Release);
        }
        let _ = self.state.compare_exchange(
            BUSY,
            self.table.now_ms(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// The first byte of a request arrived: the connection is busy and its head must be complete
    /// within the header timeout. False when the table evicted it first.
    pub(crate) fn begin_request(&self, first: bool) -> bool {
        let since = self.state.load(Ordering::Acquire);
        if since >= CLOSED
            || self
                .state
                .compare_exchange(since, BUSY, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        if !first {
            self.set_deadline(Some(self.limits().header_timeout));
        }
        true
    }

    /// Sets (or clears) the deadline the next reads must meet, counted from now.
    pub(crate) fn set_deadline(&self, within: Option<Duration>) {
        let at = match within {
            Some(d) => self.table.deadline_after(d),
            None => NO_DEADLINE,
        };
        self.deadline.store(at, Ordering::Release);
    }

    /// Whether a deadline is set and has passed.
    pub(crate) fn deadline_passed(&self) -> bool {
        let at = self.deadline.load(Ordering::Acquire);
        at != NO_DEADLINE && self.table.now_ms() >= at
    }

    /// How long the next read may block: until the deadline, and never longer than the idle
    /// timeout; an error once the deadline has passed.
    pub(crate) fn read_timeout(&self) -> Result<Option<Duration>, IoError> {
        let idle = self.limits().idle_timeout;
        let at = self.deadline.load(Ordering::Acquire);
        if at == NO_DEADLINE {
            return Ok(idle);
        }
        let now = self.table.now_ms();
        if now >= at {
            return Err(IoError::new(ErrorKind::TimedOut, "deadline passed"));
        }
        let left = Duration::from_millis(at - now);
        Ok(Some(idle.map_or(left, |idle| idle.min(left))))
    }

    /// The connection closes after the current response.
    pub(crate) fn close_after_response(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// PATCH(linger): ends the server's side of a connection it closes (the response, already
    /// flushed, is followed by the end of the stream), then reads and discards what the client
    /// still sends until it closes too, `linger_bytes` have come or `linger_time` has passed.
    /// Closing a socket with bytes unread resets the connection, and the client's sending fails
    /// before it has read its response. The connection no longer counts as busy meanwhile, and
    /// may be evicted (which ends this at once).
    pub(crate) fn linger(&self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.state.compare_exchange(
            BUSY,
            self.table.now_ms(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let mut socket = self.socket.share();
        if socket.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let limits = self.limits();
        // PATCH(long-timeouts): a `linger_time` past the end of time leaves no time limit.
        let until = Instant::now().checked_add(limits.linger_time);
        let mut left = limits.linger_bytes;
        let mut buf = vec![0u8; LINGER_CHUNK.min(left)];
        while left > 0 {
            let wait = match until {
                Some(until) => match until.checked_duration_since(Instant::now()) {
                    Some(wait) if !wait.is_zero() => Some(wait),
                    _ => return,
                },
                None => None,
            };
            if socket.set_read_timeout(wait).is_err() {
                return;
            }
            let want = left.min(buf.len());
            match socket.read(&mut buf[..want]) {
                Ok(0) => return,
                Ok(n) => left -= n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Bytes of the current request's declared body not read yet; `u64::MAX` for a chunked
    /// body not read to its end.
    pub(crate) fn set_unread_body(&self, bytes: u64) {
        self.unread_body.store(bytes, Ordering::Release);
    }

    pub(crate) fn unread_body(&self) -> u64 {
        self.unread_body.load(Ordering::Acquire)
    }
}
