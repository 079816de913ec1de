use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufRead, BufReader, BufWriter, ErrorKind, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Method};
use crate::request::list_elements;
use crate::util::{RefinedTcpStream, Ticket};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // PATCH(linger): set once the connection has been ended (`end`).
    ended: bool,

    // PATCH(connection-cap, deadlines): the connection's place in the server's table, and
    // whether the next request is the connection's first.
    ticket: Ticket,
    first: bool,
    // PATCH(handler): when the first byte of the request being read arrived.
    began: Instant,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// PATCH(bounded-heads): the head broke a limit, or names an HTTP version not served;
    /// answered with this status, then closed.
    Refused(u16),
    /// PATCH(bounded-heads): no request began before the connection ended or fell idle.
    NoRequest,
    /// PATCH(content-length): where the body ends cannot be told from the headers; answered
    /// with this status and reason, then closed.
    BadFraming(HTTPVersion, u16, String),
    /// PATCH(field-bytes): a head line holds a byte no line may: the line as far as it was read
    /// (without its line end), and the byte. Answered 400 with a reason naming the line.
    Forbidden(Vec<u8>, Forbidden),
    /// PATCH(field-bytes): the head is refused with this 400 reason, then closed.
    BadHead(HTTPVersion, String),
    /// PATCH(small-body-cut-short): reading a body of 1 KiB or less, which is read with its
    /// head, failed.
    BodyIoError(HTTPVersion, IoError),
}

/// PATCH(field-bytes): a byte RFC 9110 §5.5 and RFC 9112 §2.2 forbid inside a head line: a
/// recipient must reject the message or replace it with SP; this server rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forbidden {
    Nul,
    /// A CR not followed by LF.
    BareCr,
    /// A LF not preceded by CR: a peer that takes it for a line end sees another line here.
    BareLf,
}

impl Forbidden {
    fn describe(self) -> &'static str {
        match self {
            Forbidden::Nul => "a NUL byte",
            Forbidden::BareCr => "a CR not followed by LF",
            Forbidden::BareLf => "a LF without a CR before it",
        }
    }
}

/// PATCH(field-bytes): the reason a head line with `what` in it is refused, naming the line: the
/// request line, or a header by its name (the text before its colon).
fn forbidden_reason(request_line: bool, line: &[u8], what: Forbidden) -> String {
    let line = String::from_utf8_lossy(line);
    let place = if request_line {
        "the request line".to_owned()
    } else if line.is_empty() {
        "the empty line that ends the head".to_owned()
    } else {
        let name = line.split(':').next().unwrap_or_default();
        format!("the header {}", crate::request::quoted(name))
    };
    format!(
        "{} has {}: CR, LF and NUL are not allowed inside a line of a request head",
        place,
        what.describe()
    )
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        read_socket: RefinedTcpStream,
        ticket: Ticket,
    ) -> ClientConnection {
        let mut read_socket = read_socket.with_deadlines(Arc::clone(ticket.conn()));
        let remote_addr = read_socket.peer_addr();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            ended: false,
            ticket,
            first: true,
            began: Instant::now(),
        }
    }

    /// PATCH(bounded-heads): reads the next line of a request head (`read_head_line`); with
    /// `begins`, the line's first byte begins the request and marks the connection busy.
    fn read_next_line(
        &mut self,
        max: usize,
        too_long: u16,
        left: &mut usize,
        begins: bool,
    ) -> Result<AsciiString, ReadError> {
        let (began, ticket, first) = (&mut self.began, &self.ticket, self.first);
        let begin = || {
            *began = Instant::now();
            let conn = ticket.conn();
            !conn.is_closing() && conn.begin_request(first)
        };
        read_head_line(
            &mut self.next_header_source,
            max,
            too_long,
            left,
            begins.then_some(begin),
        )
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let limits = self.ticket.conn().limits().clone();
        self.ticket.conn().await_request(self.first);
        let mut left = limits.max_head;
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let mut request_line = |this: &mut Self, begins: bool| {
                    this.read_next_line(limits.max_request_line, 414, &mut left, begins)
                        .map_err(|e| match e {
                            ReadError::Forbidden(line, what) => ReadError::BadHead(
                                HTTPVersion(1, 1),
                                forbidden_reason(true, &line, what),
                            ),
                            e => e,
                        })
                };
                let mut line = request_line(self, true)?;
                // PATCH(leading-crlf): one empty line before the request line is ignored (RFC
                // 9112 §2.2), as a client may end a body with an extra CRLF; the request began
                // with it (its deadline runs from there).
                if line.is_empty() {
                    line = request_line(self, false)?;
                }

                // PATCH(obs-fold): the line is parsed as it came (0.12.0 trimmed it, and served
                // `  GET / HTTP/1.1`); RFC 9112 §2.2 has whitespace before it rejected.
                parse_request_line(line.as_str())?
            };
            // PATCH(bounded-heads): only HTTP/1.0 and 1.1 are served; another version is refused
            // at once with 505, in an HTTP/1.1 status line. PATCH(request-line): HTTP/0.9 too,
            // which 0.12.0 served with an `HTTP/0.9 200 OK` status line no such client reads.
            if version < HTTPVersion(1, 0) || version > HTTPVersion(1, 1) {
                return Err(ReadError::Refused(505));
            }

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self
                        .read_next_line(limits.max_header_line, 431, &mut left, false)
                        .map_err(|e| match e {
                            ReadError::Forbidden(line, what) => ReadError::BadHead(
                                version.clone(),
                                forbidden_reason(false, &line, what),
                            ),
                            e => e,
                        })?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() == limits.max_header_fields {
                        return Err(ReadError::Refused(431));
                    }
                    // PATCH(obs-fold): a line that begins with a space or tab continues the one
                    // before it (obsolete line folding) or, first, is whitespace before the first
                    // field; RFC 9112 §5.2 and §2.2 have it rejected (or unfolded). 0.12.0 trimmed
                    // it into a field of its own, which a peer that unfolds the line never sees:
                    // `X-A: a` then ` Content-Length: 5` framed a body this server alone read.
                    if line
                        .as_bytes()
                        .first()
                        .is_some_and(|&b| b == b' ' || b == b'\t')
                    {
                        return Err(ReadError::BadHead(version, OBS_FOLD.to_owned()));
                    }
                    headers.push(match FromStr::from_str(line.as_str()) {
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            // PATCH(absolute-form): a target naming its scheme and host is served as the path
            // it names, with that host for the Host header.
            let (path, headers) = match origin_form(&path, headers) {
                Ok(served) => served,
                Err(reason) => return Err(ReadError::BadHead(version, reason.to_owned())),
            };

            (method, path, version, headers)
        };
        self.first = false;
        self.ticket.conn().set_deadline(None);

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            false,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            Some(Arc::clone(self.ticket.conn())),
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => {
                    ReadError::BodyIoError(version, e)
                }
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
                request::RequestCreationError::BadFraming(status, reason) => {
                    ReadError::BadFraming(version, status, reason)
                }
            }
        })?;

        // return the request
        Ok(request.with_began(self.began))
    }

    /// PATCH(bounded-heads): answers a request that cannot be served with `status` and
    /// `Connection: close`. PATCH(linger): then ends the connection (`end`).
    /// PATCH(refusal-reasons): with a line saying why as the body (0.12.0 sent none).
    fn refuse(&mut self, status: u16, version: HTTPVersion) -> Option<Request> {
        self.refuse_saying(status, version, refusal_reason(status))
    }

    /// PATCH(content-length): the same with `reason`, a line of plain text, as the body.
    fn refuse_saying(
        &mut self,
        status: u16,
        version: HTTPVersion,
        reason: &str,
    ) -> Option<Request> {
        use crate::{Header, Response};
        let writer = self.sink.next().unwrap();
        let response = Response::from_string(format!("{}\n", reason))
            .with_status_code(status)
            .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        response.raw_print(writer, version, &[], false, None).ok();
        self.end()
    }

    /// PATCH(linger): ends a connection the server closes while the client may still be
    /// sending: what is buffered for it (the last response) is sent, then the server's side
    /// ends and what the client still sends is read and discarded, boundedly
    /// (`Conn::linger`). 0.12.0 closed at once, and a close with bytes unread resets the
    /// connection: the client's sending failed before it could read its response.
    fn end(&mut self) -> Option<Request> {
        if !self.ended {
            self.ended = true;
            // Waits for the writer of the last response to be dropped, then flushes the buffer
            // all responses share.
            if let Some(mut writer) = self.sink.next() {
                writer.flush().ok();
            }
            self.ticket.conn().linger();
        }
        None
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        // PATCH(bounded-drain): or the previous request left the connection unusable
        // PATCH(linger): and is ended so that the client gets the last response.
        if self.no_more_requests || self.ticket.conn().is_closing() || self.ended {
            return self.end();
        }

        // PATCH(bounded-heads): every refusal closes the connection, since where the next
        // request would start is unknown.
        let rq = match self.read() {
            Err(ReadError::WrongRequestLine) => {
                return self.refuse_saying(
                    400,
                    HTTPVersion(1, 1),
                    "the request line is not METHOD TARGET HTTP/VERSION",
                );
            }

            Err(ReadError::WrongHeader(ver)) => {
                return self.refuse_saying(
                    400,
                    ver,
                    "a header line is not NAME: VALUE, with a NAME of letters, digits and !#$%&'*+-.^_`|~",
                );
            }

            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                return self.refuse(408, HTTPVersion(1, 1));
            }

            Err(ReadError::ExpectationFailed(ver)) => return self.refuse(417, ver),

            Err(ReadError::Refused(status)) => return self.refuse(status, HTTPVersion(1, 1)),

            Err(ReadError::BadFraming(ver, status, reason)) => {
                return self.refuse_saying(status, ver, &reason);
            }

            Err(ReadError::BadHead(ver, reason)) => return self.refuse_saying(400, ver, &reason),

            // PATCH(field-bytes): `read` turns each forbidden byte into `BadHead`, naming its
            // line; should one get here, it is still a 400.
            Err(ReadError::Forbidden(..)) => return self.refuse(400, HTTPVersion(1, 1)),

            // PATCH(small-body-cut-short): a body that ended before its length is refused, as
            // the application refuses a longer one (`body-cut-short`): the client has shut down
            // its sending side, and may still read the answer. 0.12.0 closed without a word.
            Err(ReadError::BodyIoError(ver, e)) if e.kind() == ErrorKind::UnexpectedEof => {
                let reason = format!("cannot read the request body: {}", e);
                return self.refuse_saying(400, ver, &reason);
            }

            // PATCH(small-body-late): a body of 1 KiB or less late past the body's deadline is
            // refused as late, like a longer one the application reads; it was refused as a
            // late head.
            Err(ReadError::BodyIoError(ver, ref err))
                if matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                return self.refuse_saying(408, ver, BODY_LATE);
            }

            Err(ReadError::ReadIoError(_))
            | Err(ReadError::BodyIoError(..))
            | Err(ReadError::NoRequest) => return None,

            Ok(rq) => rq,
        };

        // PATCH(bounded-heads): a version other than HTTP/1.0 and 1.1 is refused in `read`.
        // 0.12.0 wrote its 505 here, through a second writer that waited for the request's own,
        // which deadlocked the connection's thread.

        // updating the status of the connection
        // PATCH(connection-options): from the options of every `Connection` header, each a whole
        // token in any case (RFC 9110 §7.6.1). 0.12.0 read the first header only and looked for
        // substrings, so `keep-alive, x-closed` closed and a second `Connection: close` was
        // ignored. A request that closes gets a response saying so (RFC 9112 §9.6).
        // PATCH(no-upgrade): 0.12.0 ended the connection after a `Connection: upgrade`
        // request, whose body ran to its end; nothing upgrades here, so HTTP/1.1 goes on.
        let has = |option| {
            list_elements(rq.headers(), "Connection").any(|o| o.eq_ignore_ascii_case(option))
        };
        if has("close") {
            self.no_more_requests = true;
            self.ticket.conn().close_after_response();
        } else if *rq.http_version() < (1, 1) && !has("keep-alive") {
            self.no_more_requests = true;
        }

        // returning the request
        Some(rq)
    }
}

/// PATCH(obs-fold): what the refusal of a header line that begins with a space or tab says.
const OBS_FOLD: &str =
    "a header line begins with a space or tab: folded header lines (obs-fold) are not accepted";

/// PATCH(small-body-late): what the refusal of a body that did not arrive by its deadline says.
const BODY_LATE: &str = "the request body did not arrive in time";

/// PATCH(refusal-reasons): what a refusal by `status` alone says.
fn refusal_reason(status: u16) -> &'static str {
    match status {
        408 => "the request head did not arrive in time",
        414 => "the request line is longer than this server reads",
        417 => "the Expect header asks for something other than 100-continue",
        431 => "the request head has more or longer header lines than this server reads",
        505 => "this server only supports HTTP versions 1.0 and 1.1",
        _ => "the request head is not well-formed HTTP: it must be ASCII text in lines",
    }
}

/// PATCH(bounded-heads): reads the next line of a request head from `source`, without its
/// `CRLF`: at most `max` bytes (else `Refused(too_long)`), within the head's budget of `left`
/// bytes (else `Refused(431)`) and its deadline (else `Refused(408)`), in ASCII (else
/// `Refused(400)`). For a request line, `begin` is called when its first byte arrives and
/// refuses the request by answering `false`. PATCH(line-reads): the line is taken from the
/// read buffer a chunk at a time, into one allocation when it arrived whole. PATCH(field-bytes):
/// the line ends at the first `LF`; a `LF` without a `CR` before it, a `CR` anywhere else or a
/// `NUL` is `Forbidden`, refused as soon as it is read. (0.12.0, and `line-reads` at first, kept
/// a bare `LF` inside the line, where a peer that ends lines at `LF` sees a header of its own.)
fn read_head_line<B: BufRead>(
    source: &mut B,
    max: usize,
    too_long: u16,
    left: &mut usize,
    mut begin: Option<impl FnMut() -> bool>,
) -> Result<AsciiString, ReadError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let began = begin.is_none() || !buf.is_empty();
        let chunk = match source.fill_buf() {
            // the client went away, or never began a request before falling idle
            Ok([]) => return Err(ReadError::NoRequest),
            Ok(chunk) => chunk,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) if !began => return Err(ReadError::NoRequest),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                return Err(ReadError::Refused(408))
            }
            Err(e) => return Err(ReadError::ReadIoError(e)),
        };
        if !began {
            if let Some(begin) = begin.as_mut() {
                if !begin() {
                    return Err(ReadError::NoRequest);
                }
            }
        }

        // PATCH(field-bytes): the line ends at the first LF.
        let end = chunk.iter().position(|&b| b == b'\n');
        let kept = end.unwrap_or(chunk.len());
        // Each byte kept (the CR too, removed at the end) spends one of `left` and may not take
        // the line past `max + 1`: the first byte to break a bound is refused, the head's
        // budget checked first.
        let over_budget = (*left < kept).then_some(*left + 1);
        let over_max = (buf.len() + kept > max + 1).then(|| max + 2 - buf.len());
        match (over_budget, over_max) {
            (Some(a), Some(b)) if a <= b => return Err(ReadError::Refused(431)),
            (Some(_), None) => return Err(ReadError::Refused(431)),
            (_, Some(_)) => return Err(ReadError::Refused(too_long)),
            (None, None) => {}
        }
        buf.extend_from_slice(&chunk[..kept]);
        *left -= kept;
        match end {
            Some(end) => {
                source.consume(end + 1);
                // removing the '\r'; PATCH(field-bytes): without one the LF was bare
                if buf.pop_if(|b| *b == b'\r').is_none() {
                    return Err(ReadError::Forbidden(buf, Forbidden::BareLf));
                }
                if let Some(at) = buf.iter().position(|&b| b == b'\r' || b == 0) {
                    let what = match buf[at] {
                        0 => Forbidden::Nul,
                        _ => Forbidden::BareCr,
                    };
                    return Err(ReadError::Forbidden(buf, what));
                }
                return AsciiString::from_ascii(buf).map_err(|_| ReadError::Refused(400));
            }
            None => source.consume(kept),
        }
    }
}

fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    // PATCH(obs-fold): the method is a token (0.12.0 took `\tGET`, or an empty one).
    let method = parts
        .next()
        .filter(|w| crate::common::is_token(w))
        .and_then(|w| w.parse().ok());
    let path = parts
        .next()
        .filter(|w| !w.is_empty())
        .map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());
    // PATCH(request-line): the line is `METHOD SP TARGET SP VERSION` and no more (RFC 9112 §3);
    // 0.12.0 ignored whatever followed the version, and took an empty target.
    if parts.next().is_some() {
        return Err(ReadError::WrongRequestLine);
    }

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

/// PATCH(absolute-form): the request target `target` and the `headers` as the request is served.
/// A target in absolute form (`http://host:port/path?query`, RFC 9112 §3.2.2), which a server
/// must accept though only proxies are sent it, becomes the path and query it names (`/` when
/// it names none), and its host replaces every `Host` header, as RFC 9112 §3.2.2 has an origin
/// server do. A host that is empty or carries user information is refused (RFC 9110 §4.2.1,
/// §4.2.4). Any other target is served as it came.
fn origin_form(
    target: &str,
    mut headers: Vec<crate::Header>,
) -> Result<(String, Vec<crate::Header>), &'static str> {
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
    });
    let Some(rest) = rest else {
        return Ok((target.to_owned(), headers));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, path) = rest.split_at(end);
    if host.is_empty() || host.contains('@') {
        return Err("the request target names no host, or a host with user information");
    }
    let path = match path.as_bytes().first() {
        Some(b'/') => path.to_owned(),
        _ => format!("/{path}"),
    };
    let host = crate::Header::from_bytes("Host", host)
        .map_err(|_| "the request target's host is not ASCII")?;
    headers.retain(|h| !h.field.equiv("Host"));
    headers.push(host);
    Ok((path, headers))
}

#[cfg(test)]
mod test {
    /// PATCH(absolute-form): the path it names, and its host for every `Host` header.
    #[test]
    fn an_absolute_form_target_is_served_as_its_path_with_its_host() {
        let header = |name: &str, value: &str| crate::Header::from_bytes(name, value).unwrap();
        let served = |target: &str| {
            let headers = vec![
                header("Host", "a.example"),
                header("X-A", "1"),
                header("host", "b"),
            ];
            super::origin_form(target, headers).map(|(path, headers)| {
                let hosts: Vec<String> = headers
                    .iter()
                    .filter(|h| h.field.equiv("host"))
                    .map(|h| h.value.to_string())
                    .collect();
                (path, hosts, headers.len())
            })
        };
        assert_eq!(
            served("/p?q=1"),
            Ok(("/p?q=1".into(), vec!["a.example".into(), "b".into()], 3))
        );
        assert_eq!(
            served("*"),
            Ok(("*".into(), vec!["a.example".into(), "b".into()], 3))
        );
        for (target, path, host) in [
            (
                "http://127.0.0.1:8010/api/x?y=1",
                "/api/x?y=1",
                "127.0.0.1:8010",
            ),
            ("HTTP://Relay.example", "/", "Relay.example"),
            ("https://h?q", "/?q", "h"),
            ("http://[::1]:80/", "/", "[::1]:80"),
        ] {
            assert_eq!(
                served(target),
                Ok((path.into(), vec![host.into()], 2)),
                "{target}"
            );
        }
        for target in ["http://", "http:///x", "http://user@h/", "http://?q"] {
            assert!(served(target).is_err(), "{}", target);
        }
    }

    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }

    /// PATCH(request-line): three parts, each one there, and nothing after the version.
    #[test]
    fn a_request_line_is_method_target_version_and_no_more() {
        for line in [
            "GET /hello HTTP/1.1 junk more",
            "GET /hello HTTP/1.1 ",
            "GET /hello HTTP/1.1  ",
            "GET  /hello HTTP/1.1",
            "GET  HTTP/1.1",
        ] {
            assert!(super::parse_request_line(line).is_err(), "{:?}", line);
        }
    }

    /// PATCH(obs-fold): whitespace before a request line, or a method that is not a token, is
    /// not a request line.
    #[test]
    fn whitespace_before_a_request_line_is_refused() {
        for line in [
            " GET /hello HTTP/1.1",
            "  GET /hello HTTP/1.1",
            "\tGET /hello HTTP/1.1",
            " /hello HTTP/1.1",
            "G@T /hello HTTP/1.1",
        ] {
            assert!(super::parse_request_line(line).is_err(), "{:?}", line);
        }
        assert!(super::parse_request_line("M-SEARCH * HTTP/1.1").is_ok());
    }

    /// Reads `pieces`, one per call, as a network delivers a head in packets.
    struct Pieces(std::collections::VecDeque<&'static [u8]>);

    impl std::io::Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(piece) = self.0.pop_front() else {
                return Ok(0);
            };
            buf[..piece.len()].copy_from_slice(piece);
            Ok(piece.len())
        }
    }

    /// The lines read from `pieces` with the given bounds, until the first error.
    fn lines(pieces: &[&'static [u8]], max: usize, mut left: usize) -> (Vec<String>, u16) {
        let mut source = std::io::BufReader::new(Pieces(pieces.iter().copied().collect()));
        let mut lines = Vec::new();
        loop {
            let no_begin: Option<fn() -> bool> = None;
            match super::read_head_line(&mut source, max, 414, &mut left, no_begin) {
                Ok(line) => lines.push(line.to_string()),
                Err(super::ReadError::Refused(status)) => return (lines, status),
                Err(super::ReadError::Forbidden(..)) => return (lines, 400),
                Err(super::ReadError::NoRequest) => return (lines, 0),
                Err(e) => panic!("{:?}", e),
            }
        }
    }

    #[test]
    fn a_head_line_split_anywhere_reads_the_same() {
        let head: &'static [u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        for split in 1..head.len() {
            let (lines, end) = lines(&[&head[..split], &head[split..]], 100, 1000);
            assert_eq!(
                lines,
                ["GET /a HTTP/1.1", "Host: x", ""],
                "split at {split}"
            );
            assert_eq!(end, 0);
        }
        // PATCH(field-bytes): a bare LF is refused (it was kept in its line); so is raw non-ASCII
        assert_eq!(lines(&[b"a\nb\r\n"], 100, 1000), (vec![], 400));
        assert_eq!(lines(&["\u{e9}\r\n".as_bytes()], 100, 1000), (vec![], 400));
    }

    #[test]
    fn a_head_line_keeps_its_bounds_in_any_pieces() {
        // max 4: "abcd" is read, "abcde" is too long, however it arrives
        assert_eq!(lines(&[b"abcd\r\n"], 4, 1000), (vec!["abcd".into()], 0));
        assert_eq!(lines(&[b"abcde\r\n"], 4, 1000), (vec![], 414));
        assert_eq!(lines(&[b"ab", b"cd", b"e\r\n"], 4, 1000), (vec![], 414));
        // each byte and CR spends the head's budget: "ab" and its CR take 3
        assert_eq!(lines(&[b"ab\r\n"], 100, 3), (vec!["ab".into()], 0));
        assert_eq!(lines(&[b"ab\r\n"], 100, 2), (vec![], 431));
        assert_eq!(
            lines(&[b"ab\r\n", b"c\r\n"], 100, 4),
            (vec!["ab".into()], 431)
        );
        // both bounds broken by the same byte: the budget is named
        assert_eq!(lines(&[b"abcdef\r\n"], 4, 5), (vec![], 431));
        assert_eq!(lines(&[b"abcdef\r\n"], 4, 6), (vec![], 414));
    }

    /// The first line read from `pieces`, or the forbidden byte it holds and the line so far.
    fn first_line(pieces: &[&'static [u8]]) -> Result<String, (String, super::Forbidden)> {
        let mut source = std::io::BufReader::new(Pieces(pieces.iter().copied().collect()));
        let no_begin: Option<fn() -> bool> = None;
        match super::read_head_line(&mut source, 100, 414, &mut 1000, no_begin) {
            Ok(line) => Ok(line.to_string()),
            Err(super::ReadError::Forbidden(line, what)) => {
                Err((String::from_utf8(line).unwrap(), what))
            }
            Err(e) => panic!("{:?}", e),
        }
    }

    #[test]
    fn a_line_ends_at_the_first_lf_and_cr_lf_or_nul_inside_it_is_forbidden() {
        use super::Forbidden::{BareCr, BareLf, Nul};
        assert_eq!(first_line(&[b"X-A: a\r\nrest"]), Ok("X-A: a".into()));
        // the CR may have come in the piece before
        assert_eq!(first_line(&[b"X-A: a\r", b"\nrest"]), Ok("X-A: a".into()));
        // a bare LF ends the line and is refused at once, with no more bytes to come
        for pieces in [
            &[&b"X-A: a\nContent-Length: 5\r\n"[..]][..],
            &[b"X-A: a\n"],
            &[b"X-A: a", b"\nContent-Length: 5\r\n"],
        ] {
            assert_eq!(
                first_line(pieces),
                Err(("X-A: a".into(), BareLf)),
                "{pieces:?}"
            );
        }
        assert_eq!(first_line(&[b"\n"]), Err(("".into(), BareLf)));
        // a CR not followed by LF, here or split from it, or before the CRLF
        assert_eq!(
            first_line(&[b"X-A: a\rb\r\n"]),
            Err(("X-A: a\rb".into(), BareCr))
        );
        assert_eq!(
            first_line(&[b"X-A: a\r", b"b\r\n"]),
            Err(("X-A: a\rb".into(), BareCr))
        );
        assert_eq!(
            first_line(&[b"X-A: a\r\r\n"]),
            Err(("X-A: a\r".into(), BareCr))
        );
        // a NUL anywhere
        assert_eq!(
            first_line(&[b"X-A: a\0b\r\n"]),
            Err(("X-A: a\0b".into(), Nul))
        );
        assert_eq!(first_line(&[b"X\0A: b\r\n"]), Err(("X\0A: b".into(), Nul)));
        assert_eq!(
            first_line(&[b"GET /\0 HTTP/1.1\r\n"]),
            Err(("GET /\0 HTTP/1.1".into(), Nul))
        );
    }

    #[test]
    fn a_forbidden_byte_is_refused_naming_its_line() {
        use super::{forbidden_reason, Forbidden};
        assert_eq!(
            forbidden_reason(false, b"X-A: a", Forbidden::BareLf),
            "the header \"X-A\" has a LF without a CR before it: CR, LF and NUL are not allowed inside a line of a request head"
        );
        assert_eq!(
            forbidden_reason(false, b"X\0A: b", Forbidden::Nul),
            "the header \"X\\0A\" has a NUL byte: CR, LF and NUL are not allowed inside a line of a request head"
        );
        assert_eq!(
            forbidden_reason(true, b"GET /\r HTTP/1.1", Forbidden::BareCr),
            "the request line has a CR not followed by LF: CR, LF and NUL are not allowed inside a line of a request head"
        );
        assert_eq!(
            forbidden_reason(false, b"", Forbidden::BareLf),
            "the empty line that ends the head has a LF without a CR before it: CR, LF and NUL are not allowed inside a line of a request head"
        );
        // one line, however long the name
        let long = format!("{}: b", "x".repeat(10_000));
        let reason = forbidden_reason(false, long.as_bytes(), Forbidden::Nul);
        assert!(reason.len() < 200 && !reason.contains('\n'), "{}", reason);
    }
}
