//! The one file that knows the HTTP library. It binds the listener (with `TCP_NODELAY`, which
//! every accepted connection inherits, so responses over 1 KiB do not wait for a delayed ACK),
//! starts tiny_http with the relay's connection limits, and runs each request on its
//! connection's own thread: the request is decoded into an `Incoming`, checked and routed by
//! `router`, and the `Reply` is written back, a stream straight to the socket. A handler panic
//! is caught and logged, and the client gets a 500. A stopping relay asks it how many
//! connections are still busy, to let their requests finish.

use crate::app::App;
use crate::config::Config;
use crate::error::Error;
use crate::http::exchange::{split_target, ClientWatch, Headers, Incoming, Reply};
use crate::http::router;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tiny_http::{Header, Request, Response};

/// Binds `address` (host:port) with the socket options the relay needs, without listening yet:
/// a port that is taken is found now, while no client is let in before the relay can answer
/// (`listen`). The listener itself has no timeouts: on Linux a receive timeout on a listening
/// socket bounds `accept`, which would then fail every time no client came for that long. Idle
/// connections are closed by the connection limits (`limits`) instead.
pub(crate) fn bind(address: &str) -> Result<Socket, Error> {
    // A host that names no address is a setting to correct, not a failure to start.
    let unresolved = |why: String| Error::Config {
        source: address.to_string(),
        key: "host".into(),
        message: why,
    };
    let addr: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| unresolved(format!("cannot resolve it: {e}")))?
        .next()
        .ok_or_else(|| unresolved("it resolves to no address".into()))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {address}: {e}"),
        ))
    })?;
    Ok(socket)
}

/// Starts listening on a socket from `bind`: from here on, clients are let in.
pub(crate) fn listen(socket: Socket) -> Result<TcpListener, Error> {
    // Another relay bound to the same port meanwhile and listened first.
    socket.listen(1024).map_err(|e| {
        let at = socket.local_addr().ok().and_then(|a| a.as_socket());
        let at = at.map_or_else(|| "its address".to_string(), |a| a.to_string());
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {at}: {e}"),
        ))
    })?;
    Ok(socket.into())
}

/// The HTTP server of a running relay.
pub(crate) struct HttpServer {
    server: tiny_http::Server,
}

impl HttpServer {
    /// Serves `app` on `listener` within the configured connection limits.
    pub(crate) fn start(listener: TcpListener, app: &Arc<App>) -> Result<HttpServer, Error> {
        let addr = listener.local_addr()?;
        let app = Arc::clone(app);
        let limits = limits(&app.config);
        let server =
            tiny_http::Server::serve(listener, limits, move |request| on_request(&app, request))
                .map_err(|e| {
                    Error::Io(std::io::Error::other(format!(
                        "cannot serve on {addr}: {e}"
                    )))
                })?;
        Ok(HttpServer { server })
    }

    /// Connections open now.
    pub(crate) fn connections(&self) -> usize {
        self.server.num_connections()
    }

    /// Stops accepting connections; those already open are served on.
    pub(crate) fn stop_accepting(&self) {
        self.server.stop_accepting();
    }

    /// Connections handling a request now.
    pub(crate) fn busy_connections(&self) -> usize {
        self.server.busy_connections()
    }

    /// Waits until at most `streams` connections are busy with a request (the open streams and
    /// waiting fetches, which only the relay's stop ends), or until `deadline`. A request counts
    /// from the first byte of its head, so one whose body is still arriving is waited for.
    pub(crate) fn wait_for_requests(&self, streams: impl Fn() -> usize, deadline: Instant) -> bool {
        loop {
            if self.server.busy_connections() <= streams() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The connection limits the configuration asks for.
fn limits(config: &Config) -> tiny_http::Limits {
    tiny_http::Limits {
        max_connections: config.max_connections,
        idle_timeout: Some(Duration::from_secs(config.idle_timeout_secs)),
        header_timeout: Duration::from_secs(config.header_timeout_secs),
        body_timeout: Duration::from_secs(config.body_timeout_secs),
        ..tiny_http::Limits::default()
    }
}

/// Answers one request on its connection's thread.
fn on_request(app: &Arc<App>, request: Request) {
    if app.too_late(request.began()) {
        refuse_stopping(request);
        return;
    }
    // A panic drops the request unanswered, and tiny_http answers it with a 500.
    let outcome = panic::catch_unwind(AssertUnwindSafe(move || {
        let mut request = request;
        let reply = answer(app, &mut request);
        write(request, reply);
    }));
    if let Err(cause) = outcome {
        let what = cause
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| cause.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        log::error!("a request handler panicked: {what}");
    }
}

/// Decodes the request, checks it, reads its body and routes it.
fn answer(app: &Arc<App>, request: &mut Request) -> Reply {
    let mut rq = match decode(request) {
        Ok(rq) => rq,
        Err(e) => {
            // The path as sent, without the query that could not be read: an MCP endpoint
            // still answers in JSON-RPC.
            let url = request.url();
            let raw = Incoming {
                method: request.method().as_str().to_string(),
                path: url
                    .split_once('?')
                    .map_or(url, |(path, _)| path)
                    .to_string(),
                ..Incoming::default()
            };
            return router::failure(&raw, e);
        }
    };
    let caller = match router::check(app, &rq) {
        Ok(caller) => caller,
        Err(e) => return router::failure(&rq, e),
    };
    // Held until the request is answered: its body lives as long.
    let mut _room = None;
    if matches!(rq.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        let limit = app.config.max_body_bytes;
        // A body sent in chunks may grow to the limit.
        let bytes = request.body_length().unwrap_or(limit).min(limit);
        match app.bodies.take(bytes) {
            Ok(room) => _room = room,
            Err(e) => return router::failure(&rq, e),
        }
        match read_body(request, limit) {
            Ok(body) => rq.body = body,
            Err(e) => return router::failure(&rq, e),
        }
    }
    router::route(app, &mut rq, &caller).unwrap_or_else(|e| router::failure(&rq, e))
}

/// The request's method, path, query and headers (names in lower case).
fn decode(request: &Request) -> Result<Incoming, Error> {
    let (path, query) = split_target(request.url())?;
    let headers = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    Ok(Incoming {
        // Methods are case-sensitive (RFC 9110 §9.1): `delete` is not DELETE.
        method: request.method().as_str().to_string(),
        http_version: (request.http_version().0, request.http_version().1),
        peer: request.remote_addr().map(|a| a.ip()),
        path,
        query,
        headers,
        body: Vec::new(),
        client: {
            let watch = request.peer_watch();
            ClientWatch::new(move || watch.gone())
        },
    })
}

/// Bytes of room a declared body is given beyond its length: what a message's JSON adds to the
/// post it came in (its id, time and keys), so that JSON is made in the body's own buffer.
const BODY_SPARE: usize = 256;

/// Reads the body, refusing one over `limit` bytes. The HTTP library bounds the time the body
/// may take and discards (or, when long, closes the connection on) whatever is left unread.
fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge(format!("request body is over the {limit}-byte limit"));
    let declared = request.body_length();
    if declared.is_some_and(|declared| declared > limit) {
        return Err(too_large());
    }
    // Room for the declared length (within the limit) at once, so a large body is read into
    // place rather than copied each time a growing buffer moves; a large allocation's pages
    // take memory only as the bytes arrive. A body sent in chunks grows as it comes. The spare
    // room lets a post's body become its message's JSON in place (`rest::post_message`).
    let mut body = Vec::with_capacity(declared.map_or(0, |declared| declared + BODY_SPARE));
    request
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                Error::Timeout("the request body did not arrive in time".into())
            }
            _ => Error::BadRequest(format!("cannot read the request body: {e}")),
        })?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// Answers a request that arrived while the relay stops: 503, and the connection closes.
fn refuse_stopping(request: Request) {
    let response = Response::from_string("{\"ok\":false,\"error\":\"the relay is shutting down\"}")
        .with_status_code(503)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Connection", "close"))
        .with_header(header("Retry-After", "1"));
    let _ = request.respond(response);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

/// Sends a complete response with `headers`.
fn respond<R: Read>(request: Request, mut response: Response<R>, headers: &Headers) {
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .chain([("X-Content-Type-Options", "nosniff")])
    {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("cannot send a response: {e}");
    }
}

/// Buffer between a streamed body and the socket.
const STREAM_BUFFER: usize = 64 * 1024;

/// Writes a reply; a stream is written straight to the socket, flushed event by event.
fn write(request: Request, reply: Reply) {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let response = Response::from_pieces(body).with_status_code(status);
            respond(request, response, &headers);
        }
        Reply::Parts {
            status,
            headers,
            body,
        } => {
            let response = Response::from_pieces(body).with_status_code(status);
            respond(request, response, &headers);
        }
        Reply::Stream {
            status,
            headers,
            body,
        } => {
            let reason = tiny_http::StatusCode(status).default_reason_phrase();
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for (name, value) in headers
                .iter()
                .map(|(n, v)| (n.as_ref(), v.as_ref()))
                .chain([
                    ("X-Content-Type-Options", "nosniff"),
                    ("Connection", "close"),
                    (
                        "Date",
                        &httpdate::fmt_http_date(std::time::SystemTime::now()),
                    ),
                ])
            {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            // The library's writer passes each write to the socket in 1 KiB pieces; a page goes
            // out in larger ones. Event writers flush after every event, which passes through.
            // A HEAD request gets the headers a GET would, and no body.
            let head_only = *request.method() == tiny_http::Method::Head;
            let mut writer =
                std::io::BufWriter::with_capacity(STREAM_BUFFER, request.into_writer());
            let outcome = writer
                .write_all(head.as_bytes())
                .and_then(|_| writer.flush())
                .and_then(|_| if head_only { Ok(()) } else { body(&mut writer) })
                .and_then(|_| writer.flush());
            if let Err(e) = outcome {
                log::debug!("stream ended: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{bind, listen};
    use socket2::SockRef;

    #[test]
    fn the_listener_has_no_timeout_for_accept_to_run_into() {
        let listener = listen(bind("127.0.0.1:0").unwrap()).unwrap();
        let socket = SockRef::from(&listener);
        assert_eq!(socket.read_timeout().unwrap(), None);
        assert_eq!(socket.write_timeout().unwrap(), None);
        assert!(socket.tcp_nodelay().unwrap());
    }

    #[test]
    fn a_bound_address_refuses_clients_until_it_listens_and_a_taken_one_fails_to_bind() {
        let bound = bind("127.0.0.1:0").unwrap();
        let addr = bound.local_addr().unwrap().as_socket().unwrap();
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let listener = listen(bound).unwrap();
        assert!(bind(&addr.to_string()).is_err(), "the port is taken");
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop(listener);
    }
}
