use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

use crate::util::{Body, ChunkedDecoder, Conn, EqualReader, FusedReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header, which indicates that this is the last
///    request that will be received on this connection
///
/// PATCH(no-upgrade): a `Connection: upgrade` request is framed and answered like any other;
/// this copy has no `Request::upgrade`.
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Box<dyn Read + Send + 'static>>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    /// PATCH(continue-unsent): whether the request has a body (a `Content-Length` over 0, or
    /// chunks): with `must_send_continue` still set when the response goes out, that body was
    /// never asked for.
    has_body: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    /// PATCH(bounded-drain): the connection the request came on, so a response can announce
    /// that the connection closes after it.
    conn: Option<Arc<Conn>>,

    /// PATCH(handler): when the first byte of the request's head arrived.
    began: Instant,
}

/// PATCH(peer-gone): see [`Request::peer_watch`].
#[derive(Clone)]
pub struct PeerWatch(Option<Arc<Conn>>);

impl PeerWatch {
    /// Whether the client has closed or reset its connection.
    pub fn gone(&self) -> bool {
        self.0.as_ref().is_some_and(|c| c.peer_gone())
    }
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Error while reading data from the socket during the creation of the `Request`.
    /// PATCH(small-body-cut-short): that is, while reading a body of 1 KiB or less, which is
    /// read before the request is handed on; a body cut short is `UnexpectedEof`.
    CreationIoError(IoError),

    /// PATCH(content-length): where the request's body ends cannot be told from its headers.
    /// Answered with this status and the reason, then the connection closes, since where the
    /// next request would begin is unknown.
    BadFraming(u16, String),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    writer: W,
    conn: Option<Arc<Conn>>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    // PATCH(content-length): the body's framing, from every `Transfer-Encoding` and
    // `Content-Length` header (0.12.0 read the first of each and took a `Content-Length` it
    // could not parse for no body at all).
    let (transfer_encoding, content_length) = match framing(&version, &headers)? {
        Framing::Chunked { content_length } => {
            // RFC 9112 §6.1: the Transfer-Encoding wins, and the connection closes after the
            // response, since a peer that went by the Content-Length sees another request here.
            if content_length {
                if let Some(conn) = &conn {
                    conn.close_after_response();
                }
            }
            (true, None)
        }
        Framing::Length(length) => (false, Some(length)),
        Framing::None => (false, None),
    };

    // true if the client sent a `Expect: 100-continue` header
    // PATCH(connection-options): every expectation of every `Expect` header counts (0.12.0 read
    // the first header only, and took `100-continue, 100-continue` for an unknown expectation);
    // an HTTP/1.0 client's `100-continue` is ignored, as RFC 9110 §10.1.1 says, since it knows
    // no interim response.
    let expects_continue = {
        let mut expects_continue = false;
        for expectation in list_elements(&headers, "Expect") {
            if !expectation.eq_ignore_ascii_case("100-continue") {
                return Err(RequestCreationError::ExpectationFailed);
            }
            expects_continue = true;
        }
        expects_continue && version >= HTTPVersion(1, 1)
    };

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    // PATCH(bounded-drain, deadlines, bounded-chunks): a body on a served connection is read
    // through `Body` (its deadline, and a bounded drain when it is dropped unread) and a chunked
    // one through the bounded `ChunkedDecoder`. PATCH(no-upgrade): a `Connection: upgrade`
    // request's body is framed like any other (0.12.0 ran it to the end of the connection).
    let reader = if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if content_length <= 1024 && !expects_continue {
            // if the content-length is small enough (1 KiB), we just read the whole body now
            if let Some(conn) = &conn {
                conn.set_deadline(Some(
                    conn.limits().body_deadline(Some(content_length as u64)),
                ));
            }
            // PATCH(small-body-cut-short): a body that ends before its length is the
            // `UnexpectedEof` of `body-cut-short`, which the connection answers with 400 (0.12.0
            // closed it without a word, `ConnectionAborted`).
            let mut buffer = vec![0; content_length];
            EqualReader::new(&mut source_data, content_length).read_exact(&mut buffer)?;
            if let Some(conn) = &conn {
                conn.set_deadline(None);
            }

            Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
        } else {
            let data_reader = EqualReader::new(source_data, content_length);
            match &conn {
                Some(conn) => Box::new(Body::new(
                    data_reader,
                    Arc::clone(conn),
                    Some(content_length as u64),
                )) as Box<dyn Read + Send + 'static>,
                None => Box::new(FusedReader::new(data_reader)) as Box<dyn Read + Send + 'static>,
            }
        }
    } else if transfer_encoding {
        let decoder = ChunkedDecoder::new(source_data);
        match &conn {
            Some(conn) => Box::new(Body::new(decoder, Arc::clone(conn), None))
                as Box<dyn Read + Send + 'static>,
            None => Box::new(FusedReader::new(decoder)) as Box<dyn Read + Send + 'static>,
        }
    } else {
        // we have no information about the length of the data, so we assume there isn't any
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        must_send_continue: expects_continue,
        has_body: transfer_encoding || content_length.is_some_and(|n| n > 0),
        notify_when_responded: None,
        conn,
        began: Instant::now(),
    })
}

/// PATCH(content-length): how a request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// `Transfer-Encoding: chunked`; `content_length` says a `Content-Length` came too.
    Chunked { content_length: bool },
    /// A `Content-Length`.
    Length(usize),
    /// Neither: a request without either has no body.
    None,
}

/// PATCH(connection-options): the elements of the comma-separated lists in every `field`
/// header, without the spaces and tabs around them, empty ones left out (RFC 9110 §5.6.1).
pub(crate) fn list_elements<'a>(
    headers: &'a [Header],
    field: &'static str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.field.equiv(field))
        .flat_map(|h| h.value.as_str().split(','))
        .map(|e| e.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|e| !e.is_empty())
}

/// Longest part of a header's value quoted back in a refusal.
const QUOTED: usize = 64;

/// `value` in double quotes, escaped, and cut short when long.
pub(crate) fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED) {
        Some((end, _)) => format!("{:?}...", &value[..end]),
        None => format!("{:?}", value),
    }
}

/// PATCH(content-length): the framing `headers` give a request's body, or why they give none.
/// Every `Content-Length` must be decimal digits, each one (and each element of a list, such as
/// `5, 5`) the same length; anything else is a 400, because a peer that read the headers
/// differently would find another request in this one's body.
///
/// PATCH(transfer-codings): every `Transfer-Encoding` header together must name `chunked` once
/// and nothing else (empty list elements aside): any other coding is a 400, since this server
/// implements none (RFC 9112 §6.1 suggests 501, but the relay answers no request's content with
/// a server error); `chunked` twice, an empty list, or a `Transfer-Encoding` in
/// an HTTP/1.0 request (whose framing RFC 9112 §6.1 says to treat as faulty) is a 400.
fn framing(version: &HTTPVersion, headers: &[Header]) -> Result<Framing, RequestCreationError> {
    let bad = |reason: String| Err(RequestCreationError::BadFraming(400, reason));
    let content_length = headers.iter().filter(|h| h.field.equiv("Content-Length"));
    let transfer_encoding: Vec<&str> = headers
        .iter()
        .filter(|h| h.field.equiv("Transfer-Encoding"))
        .map(|h| h.value.as_str())
        .collect();
    if !transfer_encoding.is_empty() {
        if *version < (1, 1) {
            return bad(format!(
                "Transfer-Encoding is not allowed in an HTTP/{} request",
                version
            ));
        }
        let list = transfer_encoding.join(", ");
        let codings: Vec<&str> = list
            .split(',')
            .map(|c| c.trim_matches(|c| c == ' ' || c == '\t'))
            .filter(|c| !c.is_empty())
            .collect();
        if let Some(coding) = codings.iter().find(|c| !c.eq_ignore_ascii_case("chunked")) {
            return Err(RequestCreationError::BadFraming(
                400,
                format!(
                    "the Transfer-Encoding header {} names the transfer coding {}, which is not implemented: only chunked is",
                    quoted(&list),
                    quoted(coding)
                ),
            ));
        }
        return match codings.len() {
            0 => bad("the Transfer-Encoding header is empty".into()),
            1 => Ok(Framing::Chunked {
                content_length: content_length.count() > 0,
            }),
            _ => bad(format!(
                "the Transfer-Encoding header {} applies chunked more than once",
                quoted(&list)
            )),
        };
    }
    let mut length: Option<(usize, &str)> = None;
    for header in content_length {
        let value = header.value.as_str();
        for element in value.split(',') {
            let element = element.trim_matches(|c| c == ' ' || c == '\t');
            if element.is_empty() || !element.bytes().all(|b| b.is_ascii_digit()) {
                return bad(format!(
                    "the Content-Length header {} is not a length: it must be a decimal number of bytes",
                    quoted(value)
                ));
            }
            // all digits: only a number past `usize::MAX` fails to parse
            let n = match element.parse::<usize>() {
                Ok(n) => n,
                Err(_) => {
                    return bad(format!(
                        "the Content-Length header {} is too large a length",
                        quoted(value)
                    ))
                }
            };
            match length {
                Some((first, first_text)) if first != n => {
                    return bad(format!(
                        "the Content-Length headers disagree: {} and {}",
                        quoted(first_text),
                        quoted(element)
                    ))
                }
                Some(_) => {}
                None => length = Some((n, element)),
            }
        }
    }
    Ok(match length {
        Some((n, _)) => Framing::Length(n),
        None => Framing::None,
    })
}

impl Request {
    /// Returns true if the request was made through HTTPS.
    /// PATCH(handler): when the first byte of this request arrived, so that a server that begins
    /// to stop can still serve the requests that had begun before.
    #[inline]
    pub fn began(&self) -> Instant {
        self.began
    }

    pub(crate) fn with_began(mut self, began: Instant) -> Self {
        self.began = began;
        self
    }

    /// PATCH(peer-gone): a handle that says whether the client has gone (closed or reset the
    /// connection) while the request waits to be answered, for a handler that waits long
    /// (for news to send) to stop waiting for no one. Asking costs three system calls and
    /// reads nothing; a request with no connection (a `TestRequest`) never sees its client go.
    pub fn peer_watch(&self) -> PeerWatch {
        PeerWatch(self.conn.clone())
    }

    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate tiny_http;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        // PATCH(close-after-raw): where a response written by hand ends is unknown here, so the
        // connection closes once the writer is dropped (0.12.0 read on, and a client waiting for
        // the end of an event stream never saw it).
        if let Some(conn) = &self.conn {
            conn.close_after_response();
        }
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        // PATCH(bounded-drain): a body too long to drain, or a connection already condemned,
        // closes after this response; say so, so the client does not send another request.
        let mut response = response;
        if let Some(conn) = &self.conn {
            if conn.unread_body() > conn.limits().drain_cap as u64 {
                conn.close_after_response();
            }
            // PATCH(continue-unsent): a final response to a request whose `100 Continue` was
            // never sent leaves it unknown whether the client will send the body it held back
            // (RFC 9110 §10.1.1): the connection closes after it, and the response says so.
            // 0.12.0 kept the connection and discarded, as the body, the first bytes the client
            // sent next: its next request, whose rest was then refused as a bad request line.
            if self.must_send_continue && self.has_body {
                conn.close_after_response();
            }
            // PATCH(close-after-raw): a response that says `Connection: close` closes it too.
            let says_close = response.headers().iter().any(|h| {
                h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("close")
            });
            if says_close {
                conn.close_after_response();
            }
            let says_connection = response
                .headers()
                .iter()
                .any(|h| h.field.equiv("Connection"));
            // PATCH(connection-options): an HTTP/1.0 connection goes on only when the request
            // asked for it, and its response says so (RFC 9112 §9.3, Appendix C.2.2): a 1.0
            // client takes a response without `Connection: keep-alive` to end with the
            // connection, and waited for a close that came only at the idle timeout.
            let keep_alive = self.http_version < HTTPVersion(1, 1)
                && list_elements(&self.headers, "Connection")
                    .any(|o| o.eq_ignore_ascii_case("keep-alive"));
            if conn.is_closing() && !says_connection {
                response.add_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
            } else if keep_alive && !conn.is_closing() && !says_connection {
                response.say_keep_alive();
            }
        }

        // PATCH(file-pieces): a request with a connection writes to that connection's socket,
        // where a file's piece of the body can be sent from the file by the kernel.
        let socket = self.conn.as_ref().map(|conn| conn.socket());
        let sent = response
            .print(
                writer.by_ref(),
                self.http_version.clone(),
                &self.headers,
                do_not_send_body,
                None,
                socket,
            )
            .and_then(|()| writer.flush());
        // PATCH(file-pieces): a response that failed on its way (a file that ended before its
        // piece, a socket that failed or timed out) may have sent part of its body: the client
        // cannot tell where it stopped, so the connection ends after it, never to be reused.
        if sent.is_err() {
            if let Some(conn) = &self.conn {
                conn.close_after_response();
            }
        }
        Self::ignore_client_closing_errors(sent)
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{framing, Framing, Request, RequestCreationError};
    use crate::{HTTPVersion, Header};

    /// The framing of a request with `headers` (`name: value` each), or the refusal's status and
    /// reason.
    fn framed(headers: &[&str]) -> Result<Framing, (u16, String)> {
        framed_in(HTTPVersion(1, 1), headers)
    }

    fn framed_in(version: HTTPVersion, headers: &[&str]) -> Result<Framing, (u16, String)> {
        let headers: Vec<Header> = headers.iter().map(|h| h.parse().unwrap()).collect();
        framing(&version, &headers).map_err(|e| match e {
            RequestCreationError::BadFraming(status, reason) => (status, reason),
            e => panic!("{:?}", e),
        })
    }

    #[test]
    fn a_content_length_is_decimal_digits_and_one_length() {
        assert_eq!(framed(&[]), Ok(Framing::None));
        assert_eq!(framed(&["Content-Length: 0"]), Ok(Framing::Length(0)));
        assert_eq!(framed(&["Content-Length: 007"]), Ok(Framing::Length(7)));
        assert_eq!(framed(&["Content-Length: 5, 5"]), Ok(Framing::Length(5)));
        assert_eq!(
            framed(&["Content-Length: 5", "content-length: 5,5"]),
            Ok(Framing::Length(5))
        );
        for value in [
            "abc", "-1", "+5", "0x10", "", "5 5", "5,", ",5", "1e3", "5;",
        ] {
            let (status, reason) = framed(&[&format!("Content-Length: {}", value)]).unwrap_err();
            assert_eq!(status, 400, "{:?}", value);
            assert_eq!(
                reason,
                format!(
                    "the Content-Length header {:?} is not a length: it must be a decimal number of bytes",
                    value
                )
            );
        }
        assert_eq!(
            framed(&["Content-Length: 99999999999999999999999"]),
            Err((
                400,
                "the Content-Length header \"99999999999999999999999\" is too large a length"
                    .into()
            ))
        );
        let disagree = Err((
            400,
            "the Content-Length headers disagree: \"42\" and \"5\"".into(),
        ));
        assert_eq!(
            framed(&["Content-Length: 42", "Content-Length: 5"]),
            disagree
        );
        assert_eq!(framed(&["Content-Length: 42, 5"]), disagree);
        // a long value is quoted in part
        let long = format!("Content-Length: {}", "x".repeat(1000));
        let (_, reason) = framed(&[&long]).unwrap_err();
        assert!(reason.len() < 200, "{}", reason);
    }

    #[test]
    fn a_transfer_encoding_wins_over_a_content_length() {
        assert_eq!(
            framed(&["Transfer-Encoding: chunked"]),
            Ok(Framing::Chunked {
                content_length: false
            })
        );
        for headers in [
            ["Transfer-Encoding: chunked", "Content-Length: 5"],
            ["Content-Length: abc", "Transfer-Encoding: chunked"],
        ] {
            assert_eq!(
                framed(&headers),
                Ok(Framing::Chunked {
                    content_length: true
                })
            );
        }
    }

    #[test]
    fn only_chunked_once_is_a_transfer_encoding() {
        let chunked = Ok(Framing::Chunked {
            content_length: false,
        });
        for list in ["chunked", "CHUNKED", "chunked, ", ", chunked,,"] {
            assert_eq!(framed(&[&format!("Transfer-Encoding: {}", list)]), chunked);
        }
        let not_implemented = |list: &str, coding: &str| {
            Err((
                400,
                format!(
                    "the Transfer-Encoding header {:?} names the transfer coding {:?}, which is not implemented: only chunked is",
                    list, coding
                ),
            ))
        };
        for (list, coding) in [
            ("gzip", "gzip"),
            ("identity", "identity"),
            ("gzip, chunked", "gzip"),
            ("chunked, gzip", "gzip"),
            ("chunked;x=1", "chunked;x=1"),
        ] {
            assert_eq!(
                framed(&[&format!("Transfer-Encoding: {}", list)]),
                not_implemented(list, coding)
            );
        }
        assert_eq!(
            framed(&["Transfer-Encoding: deflate", "Transfer-Encoding: chunked"]),
            not_implemented("deflate, chunked", "deflate")
        );
        assert_eq!(
            framed(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
            Err((
                400,
                "the Transfer-Encoding header \"chunked, chunked\" applies chunked more than once"
                    .into()
            ))
        );
        for list in ["", " , "] {
            assert_eq!(
                framed(&[&format!("Transfer-Encoding: {}", list)]),
                Err((400, "the Transfer-Encoding header is empty".into()))
            );
        }
        assert_eq!(
            framed_in(HTTPVersion(1, 0), &["Transfer-Encoding: chunked"]),
            Err((
                400,
                "Transfer-Encoding is not allowed in an HTTP/1.0 request".into()
            ))
        );
    }

    #[test]
    fn list_elements_come_from_every_header_of_the_name() {
        let headers: Vec<Header> = [
            "Connection: keep-alive, x-closed",
            "X: close",
            "connection: ,\tTE ,, Close",
        ]
        .iter()
        .map(|h| h.parse().unwrap())
        .collect();
        let elements: Vec<&str> = super::list_elements(&headers, "Connection").collect();
        assert_eq!(elements, ["keep-alive", "x-closed", "TE", "Close"]);
        assert_eq!(super::list_elements(&headers, "Upgrade").count(), 0);
    }

    /// Whether a request with `headers` waits for `100 Continue`, or is refused with 417.
    fn expects_continue(version: HTTPVersion, headers: &[&str]) -> Result<bool, ()> {
        let headers: Vec<Header> = headers.iter().map(|h| h.parse().unwrap()).collect();
        match super::new_request(
            false,
            crate::Method::Post,
            "/".into(),
            version,
            headers,
            None,
            std::io::empty(),
            std::io::sink(),
            None,
        ) {
            Ok(rq) => Ok(rq.must_send_continue),
            Err(RequestCreationError::ExpectationFailed) => Err(()),
            Err(e) => panic!("{:?}", e),
        }
    }

    #[test]
    fn every_expect_header_counts() {
        let v11 = || HTTPVersion(1, 1);
        assert_eq!(expects_continue(v11(), &[]), Ok(false));
        assert_eq!(expects_continue(v11(), &["Expect: 100-continue"]), Ok(true));
        for headers in [
            &["Expect: 100-Continue, 100-continue"][..],
            &["Expect: 100-continue", "expect: 100-CONTINUE"],
            &["Expect: , 100-continue"],
        ] {
            assert_eq!(expects_continue(v11(), headers), Ok(true), "{:?}", headers);
        }
        assert_eq!(expects_continue(v11(), &["Expect: "]), Ok(false));
        for headers in [
            &["Expect: magic"][..],
            &["Expect: 100-continue", "Expect: magic"],
            &["Expect: magic", "Expect: 100-continue"],
            &["Expect: 100-continue, x=1"],
            &["Expect: 100-continue;x=1"],
        ] {
            assert_eq!(expects_continue(v11(), headers), Err(()), "{:?}", headers);
        }
        // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored
        assert_eq!(
            expects_continue(HTTPVersion(1, 0), &["Expect: 100-continue"]),
            Ok(false)
        );
        assert_eq!(
            expects_continue(HTTPVersion(1, 0), &["Expect: magic"]),
            Err(())
        );
    }

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
