//! PATCH(linger): a connection the server closes while the client may still be sending reads on
//! after its last response, so that closing with bytes unread does not reset the connection
//! under the client's sending; it reads on only until the client closes, `linger_bytes` have
//! come or `linger_time` has passed, and it does not count as busy meanwhile.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Limits, Response, Server};

/// A hang guard, not a measure.
const PATIENCE: Duration = Duration::from_secs(60);

/// A request the server refuses (400) and closes on.
const REFUSED: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n";

fn serve(limits: Limits) -> (Server, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::serve(listener, limits, |rq| {
        let _ = rq.respond(Response::from_string("served"));
    })
    .unwrap();
    (server, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server ends its side, and returns what came.
fn read_to_end(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor ended: {}", e),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Waits until `done`, for `PATIENCE` at the most.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < until, "{}", what);
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_refused_client_may_send_its_whole_request_and_then_reads_the_refusal() {
    // 8 MiB after the head: more than the socket buffers of both ends hold, so the client is
    // still sending when the server refuses (without the patch its sending failed, "Broken pipe").
    let (server, addr) = serve(Limits::default());
    let mut s = connect(addr);
    let mut rq = REFUSED.to_vec();
    rq.resize(REFUSED.len() + (8 << 20), b'x');
    s.write_all(&rq).expect("the whole request is sent");
    let answer = read_to_end(&mut s);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{}", answer);
    assert!(
        answer.ends_with("is not a length: it must be a decimal number of bytes\n"),
        "{}",
        answer
    );
    drop(s);
    wait_until("the connection ends once the client closes", || {
        server.num_connections() == 0
    });
}

#[test]
fn a_closing_connection_reads_on_no_more_than_linger_bytes() {
    let limits = Limits {
        linger_bytes: 256 * 1024,
        linger_time: PATIENCE,
        ..Limits::default()
    };
    let (_server, addr) = serve(limits);
    let mut s = connect(addr);
    s.write_all(REFUSED).unwrap();
    // A client that never stops sending: its sending fails once the server has read 256 KiB
    // more and closed, long before 64 MiB (the socket buffers hold a few MiB).
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while s.write_all(&chunk).is_ok() {
        sent += chunk.len();
        assert!(sent < 64 << 20, "the server read on without bound");
    }
}

#[test]
fn a_closing_connection_reads_on_no_longer_than_linger_time() {
    let limits = Limits {
        linger_time: Duration::from_millis(100),
        ..Limits::default()
    };
    let (server, addr) = serve(limits);
    let mut s = connect(addr);
    s.write_all(REFUSED).unwrap();
    let answer = read_to_end(&mut s);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{}", answer);
    // The client neither sends nor closes: the server lets go after `linger_time`.
    wait_until("the connection ends after linger_time", || {
        server.num_connections() == 0
    });
    drop(s);
}

#[test]
fn a_lingering_connection_is_not_busy_and_ends_when_the_client_closes() {
    let limits = Limits {
        linger_time: PATIENCE,
        ..Limits::default()
    };
    let (server, addr) = serve(limits);
    let mut s = connect(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_to_end(&mut s);
    assert!(answer.ends_with("served"), "{}", answer);
    // Answered and ended on the server's side: a server that stops waits for it no longer.
    wait_until("the lingering connection is not busy", || {
        server.busy_connections() == 0
    });
    assert_eq!(server.num_connections(), 1);
    drop(s);
    wait_until("the connection ends once the client closes", || {
        server.num_connections() == 0
    });
}
