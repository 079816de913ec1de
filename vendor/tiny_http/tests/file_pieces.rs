//! PATCH(file-pieces): a body whose pieces include a region of a file, served over real
//! connections. With a `Content-Length` the region goes from the file to the socket by
//! `sendfile`; chunked, it is read and written; a file that ends before its piece cuts the
//! response short and ends the connection, and the server goes on serving others.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Limits, Piece, Pieces, Request, Response, Server};

/// A hang guard, not a measure.
const PATIENCE: Duration = Duration::from_secs(60);

/// Bytes, then `len` bytes of `file` from `offset`, then bytes.
struct Mixed {
    before: Vec<u8>,
    file: Arc<File>,
    offset: u64,
    len: usize,
    after: Vec<u8>,
}

impl Pieces for Mixed {
    fn for_each_piece(
        &self,
        each: &mut dyn FnMut(Piece<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        each(Piece::Bytes(&self.before))?;
        each(Piece::File {
            file: &self.file,
            offset: self.offset,
            len: self.len,
        })?;
        each(Piece::Bytes(&self.after))
    }
}

/// An open file holding `content`, its name already removed.
fn file_of(name: &str, content: &[u8]) -> Arc<File> {
    let path = std::env::temp_dir().join(format!(
        "tiny_http-file-pieces-{}-{}",
        std::process::id(),
        name
    ));
    let _ = std::fs::remove_file(&path);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.write_all(content).unwrap();
    Arc::new(file)
}

/// `length` bytes of a pattern that does not repeat every power of two.
fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i % 251) as u8).collect()
}

/// A server that answers `/ok` with a short text and anything else with bytes around `len`
/// bytes of `file` from `offset`, and hands on the result of each `respond`.
fn serve(file: Arc<File>, offset: u64, len: usize) -> (Server, SocketAddr, Results) {
    let (kept, results) = channel();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = move |rq: Request| {
        let result = if rq.url() == "/ok" {
            rq.respond(Response::from_string("ok"))
        } else {
            rq.respond(Response::from_pieces(Mixed {
                before: b"<before>".to_vec(),
                file: Arc::clone(&file),
                offset,
                len,
                after: b"<after>".to_vec(),
            }))
        };
        let _ = kept.send(result.map_err(|e| format!("{:?}: {}", e.kind(), e)));
    };
    let server = Server::serve(listener, Limits::default(), handler).unwrap();
    (server, addr, results)
}

/// The result of each `respond`, as `kind: message` for an error.
type Results = Receiver<Result<(), String>>;

/// The result of the next `respond`.
fn responded(results: &Results) -> Result<(), String> {
    results.recv_timeout(PATIENCE).unwrap()
}

/// The body `serve` sends for a region of `content`.
fn expected(content: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let offset = offset as usize;
    [b"<before>", &content[offset..offset + len], b"<after>"].concat()
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    BufReader::new(s)
}

fn send(client: &mut BufReader<TcpStream>, request: &str) {
    client.get_mut().write_all(request.as_bytes()).unwrap();
}

/// Reads a response head, through its empty line.
fn read_head(client: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(client.read_line(&mut line).unwrap() > 0, "cut in: {}", head);
        head.push_str(&line);
        if line == "\r\n" {
            return head;
        }
    }
}

/// The value of `name` in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Reads a response with a `Content-Length`: its head and its body.
fn read_response(client: &mut BufReader<TcpStream>) -> (String, Vec<u8>) {
    let head = read_head(client);
    let length: usize = header(&head, "Content-Length")
        .unwrap_or_else(|| panic!("no Content-Length: {}", head))
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    client.read_exact(&mut body).unwrap();
    (head, body)
}

/// Reads a chunked body to its last chunk.
fn read_chunked(client: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        client.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim_end(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        client.read_exact(&mut chunk).unwrap();
        assert!(chunk.ends_with(b"\r\n"));
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// Everything the server still sends until it ends the connection.
fn read_to_end(client: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not end the connection: {}", e),
    }
    rest
}

#[test]
fn a_file_piece_is_sent_whole_with_its_content_length_and_the_connection_goes_on() {
    let content = pattern(300 * 1024);
    let (offset, len) = (12_345, 200 * 1024);
    let (_server, addr, results) = serve(file_of("whole", &content), offset, len);
    let body = expected(&content, offset, len);
    let mut client = connect(addr);
    for _ in 0..2 {
        send(&mut client, "GET /journal HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, got) = read_response(&mut client);
        assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
        assert_eq!(
            header(&head, "Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(header(&head, "Transfer-Encoding"), None, "{}", head);
        assert_eq!(header(&head, "Connection"), None, "{}", head);
        assert!(got == body, "the body differs from the pieces");
        assert_eq!(responded(&results), Ok(()));
    }
    // the connection goes on after both
    send(&mut client, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, got) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(got, b"ok");
}

#[test]
fn a_file_piece_is_chunked_when_the_request_asks() {
    let content = pattern(300 * 1024);
    let (offset, len) = (777, 200 * 1024);
    let (_server, addr, results) = serve(file_of("chunked", &content), offset, len);
    let body = expected(&content, offset, len);
    let mut client = connect(addr);
    send(
        &mut client,
        "GET /journal HTTP/1.1\r\nHost: x\r\nTE: chunked\r\n\r\n",
    );
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(header(&head, "Transfer-Encoding"), Some("chunked"));
    assert_eq!(header(&head, "Content-Length"), None, "{}", head);
    let got = read_chunked(&mut client);
    assert!(got == body, "the body differs from the pieces");
    assert_eq!(responded(&results), Ok(()));
    send(&mut client, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, got) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(got, b"ok");
}

#[test]
fn a_file_shorter_than_its_piece_cuts_the_response_and_closes_the_connection() {
    let content = pattern(100 * 1024);
    let (offset, len) = (50 * 1024, 200 * 1024);
    let (_server, addr, results) = serve(file_of("short", &content), offset, len);
    let declared = b"<before>".len() + len + b"<after>".len();
    let there = [b"<before>", &content[offset as usize..]].concat();

    // With a Content-Length (sent by `sendfile`), then chunked (read and written).
    for te in ["", "TE: chunked\r\n"] {
        let mut client = connect(addr);
        send(
            &mut client,
            &format!("GET /journal HTTP/1.1\r\nHost: x\r\n{}\r\n", te),
        );
        let head = read_head(&mut client);
        assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
        let got = read_to_end(&mut client);
        if te.is_empty() {
            assert_eq!(
                header(&head, "Content-Length"),
                Some(declared.to_string().as_str())
            );
            assert!(got.len() < declared, "{} bytes", got.len());
            assert!(there.starts_with(&got), "the bytes sent are the file's");
        } else {
            assert!(
                !got.ends_with(b"0\r\n\r\n"),
                "a cut chunked body has no last chunk"
            );
            assert!(got.len() < declared, "{} bytes", got.len());
        }
        let error = responded(&results).unwrap_err();
        assert!(
            error.starts_with("UnexpectedEof: the file ended before the piece of the body did"),
            "{}",
            error
        );
        // the server goes on, on a new connection
        let mut client = connect(addr);
        send(&mut client, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, got) = read_response(&mut client);
        assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
        assert_eq!(got, b"ok");
        assert_eq!(responded(&results), Ok(()));
    }
}

#[test]
fn a_head_request_gets_no_file_body() {
    let content = pattern(300 * 1024);
    let (offset, len) = (4096, 200 * 1024);
    let (_server, addr, results) = serve(file_of("head", &content), offset, len);
    let body = expected(&content, offset, len);
    let mut client = connect(addr);
    send(&mut client, "HEAD /journal HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = read_head(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(
        header(&head, "Content-Length"),
        Some(body.len().to_string().as_str())
    );
    // The next response follows the head at once: no body came between them.
    send(&mut client, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, got) = read_response(&mut client);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(got, b"ok");
    assert_eq!(responded(&results), Ok(()));
}
