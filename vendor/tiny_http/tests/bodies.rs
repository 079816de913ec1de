//! How a request body that does not come as its head announced is met over a real connection.
//! PATCH(body-cut-short): a body that ends before its `Content-Length` is an `UnexpectedEof`
//! error for the application reading it, never a shorter body. PATCH(small-body-cut-short): a
//! body of 1 KiB or less, read with its head, that ends before its length is answered 400.
//! PATCH(small-body-late): one that is late is answered 408 as a late body.
//! PATCH(continue-unsent): a response sent before the `100 Continue` a body waits for closes
//! the connection, and says so.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use tiny_http::{Limits, Request, Response, Server};

/// A hang guard, not a measure.
const PATIENCE: Duration = Duration::from_secs(60);

/// A server answering each request with `handler` on its connection's thread.
fn serve(limits: Limits, handler: fn(Request)) -> (Server, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::serve(listener, limits, handler).unwrap();
    (server, addr)
}

/// Answers with the body read, or the kind and text of the error that ended the reading.
fn echo_body(mut rq: Request) {
    let mut body = Vec::new();
    let answer = match rq.as_reader().read_to_end(&mut body) {
        Ok(_) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => format!("{:?}: {}", e.kind(), e),
    };
    let _ = rq.respond(Response::from_string(answer));
}

/// Sends `request`, shuts down the sending side, and returns everything the server sent until
/// it ended the connection.
fn sent_then_shut_down(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server neither answered nor ended: {}", e),
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_long_body_cut_short_is_unexpected_eof_and_the_connection_closes() {
    let (_server, addr) = serve(Limits::default(), echo_body);
    let mut rq = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".to_vec();
    rq.extend_from_slice(&[b'a'; 70]);
    let answer = sent_then_shut_down(addr, &rq);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", answer);
    assert!(answer.contains("\r\nConnection: close\r\n"), "{}", answer);
    assert!(
        answer.ends_with("\r\n\r\nUnexpectedEof: body cut short: 70 of its 2000 bytes arrived"),
        "{}",
        answer
    );
    // The whole body is the body.
    let mut rq = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".to_vec();
    rq.extend_from_slice(&[b'a'; 2000]);
    let answer = sent_then_shut_down(addr, &rq);
    assert!(answer.ends_with(&"a".repeat(2000)), "{}", answer);
}

/// Answers "served": whoever gets it was handed the request.
fn served(rq: Request) {
    let _ = rq.respond(Response::from_string("served"));
}

#[test]
fn a_small_body_cut_short_is_400_and_never_handed_on() {
    let (_server, addr) = serve(Limits::default(), served);
    for (head, got, declared) in [
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
            3,
            100,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n",
            1023,
            1024,
        ),
        ("POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\n", 0, 1),
    ] {
        let mut rq = head.as_bytes().to_vec();
        rq.resize(rq.len() + got, b'a');
        let answer = sent_then_shut_down(addr, &rq);
        assert_eq!(
            answer.split(' ').nth(1),
            Some("400"),
            "{}: {}",
            head,
            answer
        );
        assert!(
            answer.contains("\r\nConnection: close\r\n"),
            "{}: {}",
            head,
            answer
        );
        let reason = format!(
            "\r\n\r\ncannot read the request body: body cut short: {} of its {} bytes arrived\n",
            got, declared
        );
        assert!(answer.ends_with(&reason), "{}: {}", head, answer);
    }
    // The whole body is a request like any other.
    let mut rq = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".to_vec();
    rq.resize(rq.len() + 100, b'a');
    let answer = sent_then_shut_down(addr, &rq);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{}", answer);
    assert!(answer.ends_with("served"), "{}", answer);
}

#[test]
fn a_small_body_that_stalls_is_408_as_a_late_body() {
    let limits = Limits {
        body_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let (_server, addr) = serve(limits, served);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    // The client neither sends more nor closes: the server answers once the body is late.
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server neither answered nor ended: {}", e),
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{}", answer);
    assert!(answer.contains("\r\nConnection: close\r\n"), "{}", answer);
    assert!(
        answer.ends_with("\r\n\r\nthe request body did not arrive in time\n"),
        "{}",
        answer
    );
}

/// Reads one response off `s`, by its `Content-Length`: its head and its body.
fn read_response(s: &mut TcpStream) -> (String, String) {
    let mut got = Vec::new();
    let mut byte = [0u8];
    while !got.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("a response head");
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |l| l.parse().unwrap());
    let mut body = vec![0; length];
    s.read_exact(&mut body).expect("a response body");
    (head, String::from_utf8(body).unwrap())
}

/// Whether the server has ended the connection: nothing more comes before its end.
fn ends(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
    }
}

#[test]
fn a_response_before_the_100_continue_a_body_waits_for_closes_the_connection() {
    let (_server, addr) = serve(Limits::default(), served);
    for expecting in [
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nExpect: 100-continue\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(expecting.as_bytes()).unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
        assert!(head.contains("\r\nConnection: close\r\n"), "{}", head);
        assert_eq!(body, "served");
        // The next request is never read as the body held back, nor as a request.
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ends(&mut s), "{}", expecting);
    }
}

/// Reads the body of a request to `/read` (`echo_body`), and no other (`served`).
fn echo_on_read(rq: Request) {
    if rq.url() == "/read" {
        echo_body(rq)
    } else {
        served(rq)
    }
}

#[test]
fn a_body_read_after_its_100_continue_or_none_at_all_keeps_the_connection() {
    let (_server, addr) = serve(Limits::default(), echo_on_read);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    // The body is asked for, sent and read.
    s.write_all(
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 100 "), "{}", head);
    s.write_all(b"hello").unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert!(!head.contains("Connection: close"), "{}", head);
    assert_eq!(body, "hello");
    // No body to wait for: answered unread, nothing is held back.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert!(!head.contains("Connection: close"), "{}", head);
    assert_eq!(body, "served");
    // The connection goes on.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", head);
    assert_eq!(body, "served");
    assert!(ends(&mut s));
}
