//! PATCH(long-timeouts): a timeout too long to count in milliseconds since the server started
//! (seconds near `u64::MAX`, or `Duration::MAX`) means that the read it bounds has no practical
//! deadline. Each case below once made a deadline's sum wrap or overflow: into the past (the
//! request refused at once with 408, or its body failing `TimedOut`) or a panic on the
//! connection's thread. A panic anywhere in this binary fails the test.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use tiny_http::{Limits, Response, Server};

/// A hang guard, not a measure.
const PATIENCE: Duration = Duration::from_secs(60);

static PANICKED: AtomicBool = AtomicBool::new(false);

/// A server that answers each request with its body, read whole.
fn serve(limits: Limits) -> (Server, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::serve(listener, limits, |mut rq| {
        let mut body = String::new();
        let answer = match rq.as_reader().read_to_string(&mut body) {
            Ok(_) => Response::from_string(format!("body {}", body)),
            Err(e) => Response::from_string(format!("failed {:?}", e.kind())).with_status_code(500),
        };
        let _ = rq.respond(answer);
    })
    .unwrap();
    (server, addr)
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
            Err(e) => panic!("the server neither answered nor ended: {}", e),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_timeout_too_long_to_count_never_passes() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        hook(info);
    }));
    for timeout in [
        // 2^61 s is 2^64 · 125 ms: cut to 64 bits, a deadline of no time at all.
        Duration::from_secs(1 << 61),
        Duration::from_secs(i64::MAX as u64),
        Duration::from_secs(u64::MAX),
        Duration::MAX,
    ] {
        let limits = Limits {
            idle_timeout: Some(timeout),
            header_timeout: timeout,
            body_timeout: timeout,
            linger_time: timeout,
            ..Limits::default()
        };
        let (server, addr) = serve(limits);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        // Two requests on one connection: the first head's deadline is set when the connection
        // is accepted, the second's at its first byte, each body's after its head (the first
        // body's with a second more for its 64 KiB); the second closes the connection, which
        // then lingers for the client's close.
        let first = "1".repeat(64 * 1024);
        let requests = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}\
             POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo",
            first.len(),
            first
        );
        s.write_all(requests.as_bytes()).unwrap();
        let answers = read_to_end(&mut s);
        assert_eq!(
            answers.matches("HTTP/1.1 200 OK").count(),
            2,
            "{:?}: {}",
            timeout,
            answers
        );
        assert!(
            answers.contains(&format!("body {}", first)) && answers.ends_with("body two"),
            "{:?}: {}",
            timeout,
            answers
        );
        drop(s);
        let until = Instant::now() + PATIENCE;
        while server.num_connections() > 0 {
            assert!(
                Instant::now() < until,
                "{:?}: the connection never ended",
                timeout
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !PANICKED.load(Ordering::SeqCst),
            "{:?}: a thread panicked",
            timeout
        );
    }
}
