//! PATCH(limits): what a server allows one client, so that no client can make it allocate,
//! wait or hold connections without bound. 0.12.0 had none of these.

use std::time::Duration;

/// The bounds a server applies to its connections and their requests. A timeout may be of any
/// length: one too long to count in milliseconds, up to `Duration::MAX`, never passes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once. A new connection beyond it takes the place of the connection
    /// that has waited longest for a request; when none is waiting it is answered
    /// `503 Service Unavailable` and closed. Default 1,024.
    pub max_connections: usize,
    /// The longest a read or a write may block (an idle keep-alive connection is closed after
    /// it). Default: none.
    pub idle_timeout: Option<Duration>,
    /// A request head (request line and header fields) must be complete this long after its
    /// first byte (for a new connection, after it was accepted), or `408 Request Timeout`.
    /// Default 10 s.
    pub header_timeout: Duration,
    /// A request body must be complete this long after its head, plus one second for every
    /// `body_min_rate` bytes it declares, or reading it fails with `TimedOut`. Default 10 s.
    pub body_timeout: Duration,
    /// The slowest upload rate allowed, in bytes per second. Default 64 KiB/s.
    pub body_min_rate: u64,
    /// The longest request line, or `414 URI Too Long`. Default 8 KiB.
    pub max_request_line: usize,
    /// The longest header field line, or `431 Request Header Fields Too Large`. Default 8 KiB.
    pub max_header_line: usize,
    /// The most header fields, or `431`. Default 100.
    pub max_header_fields: usize,
    /// The longest request head, or `431`. Default 64 KiB.
    pub max_head: usize,
    /// The most unread body bytes discarded to keep a connection alive; a longer remainder
    /// closes the connection instead. Default 64 KiB.
    pub drain_cap: usize,
    /// PATCH(linger): when the server closes a connection the client may still be sending on (a
    /// refusal, a body left unread, `Connection: close`), it ends its side of the connection,
    /// then reads and discards what still comes until the client closes, this many bytes have
    /// come or `linger_time` has passed: closing with bytes unread resets the connection, which
    /// fails the client's sending before it reads its response. Default 16 MiB.
    pub linger_bytes: usize,
    /// PATCH(linger): the longest a closing connection reads on. Default 2 s.
    pub linger_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            idle_timeout: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 64 * 1024,
            max_request_line: 8 * 1024,
            max_header_line: 8 * 1024,
            max_header_fields: 100,
            max_head: 64 * 1024,
            drain_cap: 64 * 1024,
            linger_bytes: 16 * 1024 * 1024,
            linger_time: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// How long a body of `declared` bytes (`None`: chunked, unknown) may take to arrive.
    pub(crate) fn body_deadline(&self, declared: Option<u64>) -> Duration {
        let rate = self.body_min_rate.max(1);
        // PATCH(long-timeouts): a `body_timeout` near `Duration::MAX` stays there.
        self.body_timeout
            .saturating_add(Duration::from_secs(declared.unwrap_or(0) / rate))
    }
}
