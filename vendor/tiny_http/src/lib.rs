//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]
// Lints newer than the 0.12.0 code they flag, left as upstream wrote it (the head reader's
// `bytes()` reads from a buffered reader).
#![allow(
    clippy::doc_overindented_list_items,
    clippy::io_other_error,
    clippy::needless_borrow,
    clippy::unnecessary_map_or,
    clippy::unbuffered_bytes
)]

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use client::ClientConnection;
use connection::Connection;
use util::{ConnectionTable, MessagesQueue, RefinedTcpStream, TaskPool};

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use limits::Limits;
pub use request::{PeerWatch, Request};
pub use response::{Piece, Pieces, Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod limits;
mod request;
mod response;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // PATCH(connection-cap): the connections being served
    table: Arc<ConnectionTable>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this is to make sure that Server implements Share and Send
const _: fn() = || {
    fn must_be_share<T: Sync + Send>() {}
    must_be_share::<Server>();
};

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    ///
    /// PATCH(no-tls): TLS is not built in; an `ssl_config` is refused.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        if ssl_config.is_some() {
            return Err("this build of tiny_http serves plain HTTP only".into());
        }
        Self::from_listener_with_limits(listener, Limits::default())
    }

    /// PATCH(limits): a server on `listener` whose connections and requests keep to `limits`;
    /// requests are received with `recv()`.
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        limits: Limits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let messages = MessagesQueue::with_capacity(8);
        Self::start(
            listener.into(),
            limits,
            Dispatch::Queue(Arc::clone(&messages)),
            messages,
        )
    }

    /// PATCH(handler): a server on `listener` whose connections and requests keep to `limits`,
    /// and that runs `handler` for each request on the thread of the request's connection, one
    /// request at a time per connection: no hand-off between threads, and a client that sends
    /// requests faster than it reads responses waits in its socket, not in the server's memory.
    pub fn serve<L, H>(
        listener: L,
        limits: Limits,
        handler: H,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        L: Into<Listener>,
        H: Fn(Request) + Send + Sync + 'static,
    {
        let messages = MessagesQueue::with_capacity(1);
        Self::start(
            listener.into(),
            limits,
            Dispatch::Handler(Arc::new(handler)),
            messages,
        )
    }

    fn start(
        listener: Listener,
        limits: Limits,
        dispatch: Dispatch,
        messages: Arc<MessagesQueue<Message>>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let close = Arc::new(AtomicBool::new(false));
        let local_addr = listener.local_addr()?;
        log::debug!("Server listening on {}", local_addr);
        let table = ConnectionTable::new(limits);
        let (inside_close, inside_table) = (Arc::clone(&close), Arc::clone(&table));
        thread::Builder::new()
            .name("tiny-http-accept".into())
            .spawn(move || accept_loop(listener, &inside_close, &inside_table, dispatch))?;
        Ok(Server {
            messages,
            close,
            listening_addr: local_addr,
            table,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        // PATCH(connection-cap): 0.12.0 panicked here (`unimplemented!`).
        self.table.live()
    }

    /// PATCH(connection-cap): the number of connections handling a request now, from the first
    /// byte of its head to the end of its response; a server that stops can wait for it to
    /// fall.
    pub fn busy_connections(&self) -> usize {
        self.table.busy()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Server {
    /// PATCH(accept-never-dies): stops accepting connections; those already accepted are
    /// served on. (0.12.0 did this only on drop; a server that stops in stages needs it
    /// apart, and its accept loop must not take the closed listener's errors for trouble.)
    pub fn stop_accepting(&self) {
        if self.close.swap(true, Relaxed) {
            return;
        }
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => match addr.as_pathname() {
                Some(path) => std::os::unix::net::UnixStream::connect(path).map(Connection::from),
                None => return,
            },
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_accepting();

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// PATCH(handler): where the requests of a connection go.
enum Dispatch {
    /// Into the queue that `recv()` takes them from, one at a time per connection: the next
    /// request of a connection is read only once the previous one has been answered (0.12.0
    /// read ahead without limit, so a client pipelining requests it never read the answers to
    /// grew the queue without bound).
    Queue(Arc<MessagesQueue<Message>>),
    /// To a handler run on the connection's own thread.
    Handler(Arc<dyn Fn(Request) + Send + Sync>),
}

/// The first pause after a failed `accept`, and the longest.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(500));

/// PATCH(accept-never-dies): accepts connections until `close` is set. 0.12.0 ended the accept
/// loop on the first failed `accept` (with `EMFILE` at its descriptor limit the server stayed up
/// but never answered again) and panicked it when a socket could not be duplicated. A failed
/// accept is now logged (at most once a second) and retried after a growing pause, and a
/// connection beyond `Limits::max_connections` is refused on this thread with a 503.
fn accept_loop(
    listener: Listener,
    close: &AtomicBool,
    table: &Arc<ConnectionTable>,
    dispatch: Dispatch,
) {
    let pool = TaskPool::new();
    let mut backoff = ACCEPT_BACKOFF.0;
    let mut last_report: Option<Instant> = None;
    let mut unreported = 0u64;
    log::debug!("Running accept thread");
    while !close.load(Relaxed) {
        let sock = match listener.accept() {
            Ok((sock, _)) => {
                backoff = ACCEPT_BACKOFF.0;
                sock
            }
            Err(e) => {
                if close.load(Relaxed) {
                    break;
                }
                if last_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    log::error!(
                        "cannot accept a connection: {} ({} more failures since the last report); retrying",
                        e,
                        unreported
                    );
                    last_report = Some(Instant::now());
                    unreported = 0;
                } else {
                    unreported += 1;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                continue;
            }
        };
        if close.load(Relaxed) {
            break;
        }
        let ticket = match table.admit(&sock) {
            Some(ticket) => ticket,
            None => {
                refuse_busy(sock);
                continue;
            }
        };
        if let Some(idle) = table.limits.idle_timeout {
            let _ = sock.set_write_timeout(Some(idle));
        }
        let (read, write) = RefinedTcpStream::new(sock);
        let client = ClientConnection::new(write, read, ticket);
        match &dispatch {
            Dispatch::Handler(handler) => {
                let handler = Arc::clone(handler);
                pool.spawn(Box::new(move || {
                    for rq in client {
                        handler(rq);
                    }
                }));
            }
            Dispatch::Queue(messages) => {
                let messages = Arc::clone(messages);
                pool.spawn(Box::new(move || {
                    let (sender, receiver) = mpsc::channel();
                    for rq in client {
                        messages.push(rq.with_notify_sender(sender.clone()).into());
                        if receiver.recv().is_err() {
                            break;
                        }
                    }
                }));
            }
        }
    }
    log::debug!("Terminating accept thread");
}

/// PATCH(connection-cap): answers a connection the table has no room for, without a thread of
/// its own: whatever the client sent already is read (so closing does not reset the answer
/// away), then a 503 with `Retry-After`, then the connection closes.
fn refuse_busy(mut sock: Connection) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 43\r\nConnection: close\r\n\r\nthe server has too many connections; retry\n";
    let _ = sock.set_read_timeout(Some(Duration::from_millis(2)));
    let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = sock.read(&mut [0u8; 4096]);
    let _ = sock.write_all(BUSY);
    let _ = sock.shutdown(Shutdown::Write);
    let _ = sock.read(&mut [0u8; 4096]);
}
