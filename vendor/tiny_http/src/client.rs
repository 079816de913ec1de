use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Method};
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
    /// PATCH(bounded-heads): the head broke a limit; answered with this status, then closed.
    Refused(u16),
    /// PATCH(bounded-heads): no request began before the connection ended or fell idle.
    NoRequest,
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
            ticket,
            first: true,
            began: Instant::now(),
        }
    }

    /// PATCH(bounded-heads): reads the next line of a request head, without its `CRLF`: at most
    /// `max` bytes (else `Refused(too_long)`), within the head's budget of `left` bytes (else
    /// `Refused(431)`) and its deadline (else `Refused(408)`), in ASCII (else `Refused(400)`).
    /// The first byte of a request line marks the connection busy.
    fn read_next_line(
        &mut self,
        max: usize,
        too_long: u16,
        left: &mut usize,
        request_line: bool,
    ) -> Result<AsciiString, ReadError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();
            let began = !(request_line && buf.is_empty());

            let byte = match byte {
                Some(Ok(b)) => b,
                // the client went away, or never began a request before falling idle
                None => return Err(ReadError::NoRequest),
                Some(Err(_)) if !began => return Err(ReadError::NoRequest),
                Some(Err(e)) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                    return Err(ReadError::Refused(408))
                }
                Some(Err(e)) => return Err(ReadError::ReadIoError(e)),
            };

            if !began {
                self.began = Instant::now();
                let conn = self.ticket.conn();
                if conn.is_closing() || !conn.begin_request(self.first) {
                    return Err(ReadError::NoRequest);
                }
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| ReadError::Refused(400));
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
            if *left == 0 {
                return Err(ReadError::Refused(431));
            }
            *left -= 1;
            if buf.len() > max + 1 {
                return Err(ReadError::Refused(too_long));
            }
        }
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
                let line = self.read_next_line(limits.max_request_line, 414, &mut left, true)?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line =
                        self.read_next_line(limits.max_header_line, 431, &mut left, false)?;

                    if line.is_empty() {
                        break;
                    };
                    if headers.len() == limits.max_header_fields {
                        return Err(ReadError::Refused(431));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
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
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        // return the request
        Ok(request.with_began(self.began))
    }

    /// PATCH(bounded-heads): answers a request that cannot be served with `status` and
    /// `Connection: close`.
    fn refuse(&mut self, status: u16, version: HTTPVersion) {
        use crate::{Header, Response, StatusCode};
        let writer = self.sink.next().unwrap();
        let response = Response::new_empty(StatusCode(status))
            .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        response.raw_print(writer, version, &[], false, None).ok();
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Header, Response};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        // PATCH(bounded-drain): or the previous request left the connection unusable
        if self.no_more_requests || self.ticket.conn().is_closing() {
            return None;
        }

        // PATCH(bounded-heads): every refusal closes the connection, since where the next
        // request would start is unknown.
        let rq = match self.read() {
            Err(ReadError::WrongRequestLine) => {
                self.refuse(400, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::WrongHeader(ver)) => {
                self.refuse(400, ver);
                return None;
            }

            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                self.refuse(408, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::ExpectationFailed(ver)) => {
                self.refuse(417, ver);
                return None;
            }

            Err(ReadError::Refused(status)) => {
                self.refuse(status, HTTPVersion(1, 1));
                return None;
            }

            Err(ReadError::ReadIoError(_)) | Err(ReadError::NoRequest) => return None,

            Ok(rq) => rq,
        };

        // checking HTTP version
        // PATCH(bounded-heads): 0.12.0 wrote the 505 through a second writer that waited for the
        // request's own, which deadlocked the connection's thread; it answers through the
        // request now, and closes.
        if *rq.http_version() > (1, 1) {
            let response = Response::from_string(
                "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
            )
            .with_status_code(505)
            .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
            rq.respond(response).ok();
            return None;
        }

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// Parses a "HTTP/1.1" string.
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

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
