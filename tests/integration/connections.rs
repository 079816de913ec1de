//! Connections that misbehave: hundreds left idle do not keep `/healthz` from answering, a
//! silent connection is closed after `idle_timeout_secs`, a client that stops mid-request is
//! let go, and one that leaves a waiting fetch frees its place. A relay no client visits for a while is not in error either.

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

/// A client that gives up on a waiting fetch (closes its connection) frees its place among the
/// long requests within a second or so, not when its wait (50 s here) would
/// have ended, over REST and MCP alike; a client still there goes on waiting.
#[test]
fn a_waiting_fetch_whose_client_goes_frees_its_place_long_before_its_wait_ends() {
    use serde_json::json;
    let relay = Relay::memory();
    let mcp = Mcp::connect(&relay, "2025-06-18");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "fetch_messages", "arguments": {"target": "quiet", "wait_seconds": 50}}})
    .to_string();
    let mcp_request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {}\r\n\
         MCP-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{call}",
        mcp.session,
        call.len()
    );
    let rest_request = "GET /api/messages?target=quiet&since_id=0&wait=50 HTTP/1.1\r\n\
                        Host: 127.0.0.1\r\nX-Relay-Agent: leaver\r\n\r\n";
    let open = |request: &str| {
        let mut s = TcpStream::connect(relay.addr()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s
    };
    let leaving = [open(rest_request), open(&mcp_request), open(rest_request)];
    relay.wait_for_long_requests(3);
    let mut staying = open(rest_request);
    relay.wait_for_long_requests(4);
    drop(leaving);
    // Well short of the 50 s the waits asked for, and well past the second between looks.
    let deadline = Instant::now() + Duration::from_secs(25);
    while relay.load().long_requests > 1 {
        assert!(Instant::now() < deadline, "the places were not freed");
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.post("quiet", "s", "news");
    let mut answer = String::new();
    staying.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 4096];
    while !answer.contains("news") {
        let n = staying.read(&mut buf).unwrap();
        assert!(n > 0, "the waiting client got its answer: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// A reader whose waiting fetch's client has left takes nothing: a message posted after it
/// left stays unread for the reader, and its position does not move.
#[test]
fn a_reader_whose_client_left_a_waiting_fetch_takes_nothing() {
    let relay = Relay::memory();
    let before = relay.post("left", "s", "read before");
    let read = get_json(&relay.url("/api/messages?target=left&reader=R"));
    assert_eq!(read["messages"].as_array().unwrap().len(), 1, "{read}");
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.write_all(
        b"GET /api/messages?target=left&reader=R&wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .unwrap();
    relay.wait_for_long_requests(1);
    // On loopback the close has reached the relay's socket when `drop` returns.
    drop(s);
    relay.post("left", "s", "posted after the client left");
    let deadline = Instant::now() + Duration::from_secs(25);
    while relay.load().long_requests > 0 {
        assert!(Instant::now() < deadline, "the wait did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    let unread = get_json(&relay.url("/api/unread?reader=R"));
    assert_eq!(unread["channels"][0]["unread"], 1, "{unread}");
    assert_eq!(unread["channels"][0]["position"], before, "{unread}");
}
