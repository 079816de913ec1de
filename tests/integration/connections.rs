//! Connections that misbehave: hundreds left idle do not keep `/healthz` from answering, a
//! silent connection is closed after `idle_timeout_secs`, and a client that stops mid-request
//! is let go. A relay no client visits for a while is not in error either.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn hundreds_of_idle_connections_do_not_block_healthz() {
    let relay = Relay::memory();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(relay.addr()).unwrap())
        .collect();
    let half_sent: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(relay.addr()).unwrap();
            s.write_all(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                .unwrap();
            s
        })
        .collect();
    for _ in 0..20 {
        let r = get(&relay.url("/healthz"));
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }
    relay.post("still", "serving", "yes");
    drop((idle, half_sent));
}

/// Reads until the server closes the connection; returns when it did, or None at `deadline`.
fn closed_by_server(mut s: TcpStream, deadline: Instant) -> Option<Instant> {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match s.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(Instant::now())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn silent_and_stalled_connections_are_closed_after_the_idle_timeout() {
    let relay = Relay::with(|c| {
        c.idle_timeout_secs = 1;
        c.store = claude_codex_relay::config::StoreKind::Memory;
    });
    let silent = TcpStream::connect(relay.addr()).unwrap();
    let mut stalled_head = TcpStream::connect(relay.addr()).unwrap();
    stalled_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .unwrap();
    let mut stalled_body = TcpStream::connect(relay.addr()).unwrap();
    stalled_body
        .write_all(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"tar")
        .unwrap();
    let mut kept_alive = TcpStream::connect(relay.addr()).unwrap();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    for (what, s) in [
        ("silent", silent),
        ("stalled in the head", stalled_head),
        ("stalled in the body", stalled_body),
        ("idle after a request", kept_alive),
    ] {
        let closed = closed_by_server(s, deadline());
        assert!(closed.is_some(), "the {what} connection was never closed");
    }
    assert_eq!(get(&relay.url("/healthz")).status, 200);
}

#[test]
fn a_relay_no_client_visits_for_several_idle_timeouts_logs_no_error() {
    let dir = TempDir::new("idle-listener");
    let relay = RelayChild::start(&dir, &["--idle-timeout-secs", "1", "--store", "memory"]);
    // What is under test is time passing with no connection at all, so the test lets it pass:
    // three idle timeouts.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(get(&relay.url("/healthz")).status, 200);
    let (stdout, stderr) = relay.kill();
    let output = format!("{stdout}{stderr}");
    assert!(!output.contains("ERROR"), "{output}");
    assert!(!output.contains("cannot accept"), "{output}");
}
