//! A hostile peer on the network: requests built to make the relay allocate, wait or hold
//! connections without bound, or to stop it answering. Each test sends the attack over a real
//! socket and then checks that the relay answered it with the right refusal, let the
//! connection go, and still serves everyone else.

use crate::common::*;
use claude_codex_relay::config::StoreKind;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What came back on a connection: the status (0 when none), the head's headers, and whether
/// the server then closed the connection.
struct Answer {
    status: u16,
    head: String,
    closed: bool,
}

/// Sends `request` on a new connection (a write the server refuses midway is fine) and reads
/// the answer's head, then whether the server closes the connection, within a hang guard.
fn send(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(request);
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> Answer {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed = false;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if !closed {
        closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) => break e.kind() == ErrorKind::ConnectionReset,
            }
        };
    }
    Answer {
        status,
        head,
        closed,
    }
}

/// Sends `request` to a fresh relay and checks that it is refused with `status`, the connection
/// closes, and the relay goes on serving.
fn refused(request: &[u8], status: u16) {
    let relay = Relay::memory();
    let a = send(relay.addr(), request);
    assert_eq!((a.status, a.closed), (status, true), "{}", a.head);
    healthz_ok(&relay);
}

/// `line` and then `filler` a million times, with no end.
fn endless(line: &str, filler: u8) -> Vec<u8> {
    let mut rq = line.as_bytes().to_vec();
    rq.extend(std::iter::repeat_n(filler, 1_000_000));
    rq
}

fn healthz_ok(relay: &Relay) {
    let r = get(&relay.url("/healthz"));
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
}

fn connections(relay: &Relay) -> usize {
    relay.running.as_ref().unwrap().connections()
}

#[test]
fn a_declared_petabyte_body_on_any_route_leaves_the_relay_serving() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let petabyte = "Content-Length: 1000000000000000\r\n";
    let heads = [
        ("GET /healthz", host.clone(), 200),
        ("HEAD /healthz", host.clone(), 200),
        ("OPTIONS /healthz", host.clone(), 405),
        ("GET /healthz", "Host: evil.example\r\n".to_string(), 421),
        (
            "GET /api/channels",
            format!("{host}Origin: http://evil.example\r\n"),
            403,
        ),
        ("GET /nowhere", host.clone(), 404),
        ("GET /api/messages?target=%zz", host.clone(), 400),
        (
            "POST /api/messages",
            format!("{host}Content-Type: application/json\r\n"),
            413,
        ),
    ];
    for (line, headers, status) in heads {
        let a = send(
            relay.addr(),
            format!("{line} HTTP/1.1\r\n{headers}{petabyte}\r\n").as_bytes(),
        );
        assert_eq!(a.status, status, "{line}: {}", a.head);
        assert!(a.closed, "{line}: the connection closes, its body unread");
        assert!(a.head.contains("Connection: close"), "{line}: {}", a.head);
        healthz_ok(&relay);
    }
    let guarded = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.auth_token = Some("secret".into());
    });
    let port = guarded.addr().port();
    let a = send(
        guarded.addr(),
        format!("GET /api/channels HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{petabyte}\r\n")
            .as_bytes(),
    );
    assert_eq!((a.status, a.closed), (401, true), "{}", a.head);
    assert_eq!(get(&guarded.url("/healthz")).status, 200);
}

#[test]
fn an_unread_small_body_is_drained_and_the_connection_reused() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    let rq = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 5000\r\n\r\n{}GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n", "x".repeat(5000));
    s.write_all(rq.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200").count(), 2, "{all}");
}

#[test]
fn an_endless_chunk_size_line_is_refused() {
    refused(&endless("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", b'f'), 400);
}

#[test]
fn an_endless_request_line_is_414() {
    refused(&endless("GET /", b'a'), 414);
}

#[test]
fn an_endless_header_line_is_431() {
    refused(&endless("GET /healthz HTTP/1.1\r\nX-Endless: ", b'a'), 431);
}

#[test]
fn too_many_header_fields_are_431() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let mut rq = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for i in 0..100 {
        rq.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    rq.push_str("\r\n");
    let a = send(relay.addr(), rq.as_bytes());
    assert_eq!((a.status, a.closed), (431, true), "{}", a.head);
    // One field fewer is served.
    let fine = rq.replacen("X-Field-0: 0\r\n", "", 1);
    assert_eq!(send(relay.addr(), fine.as_bytes()).status, 200);
}

#[test]
fn a_head_over_64_kib_is_431() {
    let mut rq = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..20 {
        rq.push_str(&format!("X-Big-{i}: {}\r\n", "b".repeat(4000)));
    }
    rq.push_str("\r\n");
    refused(rq.as_bytes(), 431);
}

#[test]
fn raw_utf8_in_a_header_is_400() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let rq = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Name: Zoë\r\n\r\n");
    let a = send(relay.addr(), rq.as_bytes());
    assert_eq!((a.status, a.closed), (400, true), "{}", a.head);
    let rq = "GET /caf\u{e9} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_eq!(send(relay.addr(), rq.as_bytes()).status, 400);
    healthz_ok(&relay);
}

#[test]
fn http_2_is_505_and_frees_the_connection() {
    let relay = Relay::memory();
    for _ in 0..20 {
        let a = send(relay.addr(), b"GET /healthz HTTP/2.0\r\n\r\n");
        assert_eq!((a.status, a.closed), (505, true), "{}", a.head);
    }
    // Every one of those connections is let go (0.12.0 kept each, with its thread, for good).
    wait_until("the refused connections are gone", || {
        connections(&relay) == 0
    });
    healthz_ok(&relay);
}

#[test]
fn a_dribbled_head_is_408_after_the_header_timeout() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.header_timeout_secs = 1;
    });
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let a = read_answer(&mut s);
    assert_eq!((a.status, a.closed), (408, true), "{}", a.head);
    healthz_ok(&relay);
}

#[test]
fn a_new_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.header_timeout_secs = 1;
        c.idle_timeout_secs = 600;
    });
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    // Far past the header timeout and far short of the idle timeout: only the first closes it.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e.kind() == ErrorKind::ConnectionReset,
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert!(closed, "still open after 60 s: {text}");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    healthz_ok(&relay);
}

#[test]
fn a_dribbled_body_is_408_after_the_body_timeout() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.body_timeout_secs = 1;
    });
    let port = relay.addr().port();
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.write_all(format!("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n{{\"target\":").as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!((a.status, a.closed), (408, true), "{}", a.head);
    assert_eq!(
        get(&relay.url("/api/messages?target=proj-x")).json()["messages"],
        serde_json::json!([])
    );
    healthz_ok(&relay);
}

/// Bodies arriving slowly on many connections would hold connections × the body limit; large
/// ones share room for 16 bodies of the limit, past which a large post gets 503 at once while
/// small posts go on.
#[test]
fn large_bodies_arriving_at_once_share_a_bounded_room_and_small_posts_go_on() {
    const LIMIT: usize = 100_000;
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.max_body_bytes = LIMIT;
    });
    let port = relay.addr().port();
    let head = |len: usize| {
        format!("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n")
    };
    let body = |text_len: usize| {
        format!(
            "{{\"target\":\"big\",\"sender\":\"s\",\"text\":\"{}\"}}",
            "x".repeat(text_len)
        )
    };
    let full = body(LIMIT - 60);
    let slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(relay.addr()).unwrap();
            s.write_all(head(full.len()).as_bytes()).unwrap();
            s.write_all(&full.as_bytes()[..1000]).unwrap();
            s
        })
        .collect();
    wait_until("16 bodies arriving", || {
        relay.load().body_bytes == 16 * full.len()
    });
    let large = post_raw(
        &relay.url("/api/messages"),
        &[("Content-Type", "application/json")],
        full.as_bytes(),
    );
    assert_eq!(large.status, 503, "{}", large.body);
    assert!(large.header("retry-after").is_some());
    let small = post_raw(
        &relay.url("/api/messages"),
        &[("Content-Type", "application/json")],
        body(10).as_bytes(),
    );
    assert_eq!(small.status, 201, "{}", small.body);
    let mut slow = slow.into_iter();
    let mut first = slow.next().unwrap();
    first.write_all(&full.as_bytes()[1000..]).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut status = [0u8; 12];
    first.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 201", "the first body, whole, is stored");
    // Bodies cut short give their room back too.
    drop(slow);
    wait_until("no body arriving", || relay.load().body_bytes == 0);
    let large = post_raw(
        &relay.url("/api/messages"),
        &[("Content-Type", "application/json")],
        full.as_bytes(),
    );
    assert_eq!(large.status, 201, "room came back: {}", large.body);
}

#[test]
fn idle_sockets_beyond_the_cap_make_room_for_new_clients() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.max_connections = 16;
    });
    let idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(relay.addr()).unwrap())
        .collect();
    for _ in 0..20 {
        healthz_ok(&relay);
    }
    assert!(connections(&relay) <= 16, "{}", connections(&relay));
    drop(idle);
}

#[test]
fn a_connection_beyond_the_cap_when_all_are_busy_gets_503() {
    let relay = Relay::with(|c| {
        c.store = StoreKind::Memory;
        c.max_connections = 8;
    });
    // Streams may take all but the reserved place: they open until one is refused.
    let mut open: Vec<Sse> = Vec::new();
    let refused = loop {
        let s = Sse::open(
            relay.addr(),
            &format!("/api/stream?target=t{}", open.len()),
            &[],
        );
        if s.status != 200 {
            break s;
        }
        open.push(s);
        assert!(open.len() < 8, "a stream took the reserved place");
    };
    assert_eq!(refused.status, 503);
    let streams = open.len();
    assert!(streams > 0);
    drop(refused);
    let only_streams = || {
        wait_until("only the streams are left", || {
            connections(&relay) == streams
        })
    };
    only_streams();
    // The place the streams leave free serves short requests.
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    assert_eq!(send(relay.addr(), healthz).status, 200);
    only_streams();
    // Now every place gets busy: a head that is still arriving holds each of the others.
    let busy: Vec<TcpStream> = (streams..8)
        .map(|_| {
            let mut s = TcpStream::connect(relay.addr()).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    let running = relay.running.as_ref().unwrap();
    wait_until("every place is busy", || running.busy_connections() == 8);
    let a = send(relay.addr(), healthz);
    assert_eq!((a.status, a.closed), (503, true), "{}", a.head);
    assert!(a.head.contains("Retry-After: 1"), "{}", a.head);
    drop(busy);
    wait_until("a place frees up", || connections(&relay) < 8);
    healthz_ok(&relay);
    drop(open);
}

#[test]
fn a_client_that_pipelines_without_reading_is_held_in_its_socket() {
    let relay = Relay::memory();
    let port = relay.addr().port();
    let one = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let chunk = one.repeat(10_000);
    let mut written = 0usize;
    // 400 MB of requests: far beyond every socket buffer, so the writes must stall once the
    // relay stops reading (it reads a request only after answering the one before, and the
    // answers are not being read).
    let stalled = (0..1_000).any(|_| match s.write(chunk.as_bytes()) {
        Ok(n) => {
            written += n;
            false
        }
        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    });
    assert!(stalled, "the relay read {written} bytes of requests ahead");
    healthz_ok(&relay);
    drop(s);
    wait_until("the pipelining connection is gone", || {
        connections(&relay) == 0
    });
}

/// A relay child process, killed when the test ends, even by a failed assertion.
struct RelayProcess(Child);

impl std::ops::Deref for RelayProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for RelayProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` (a relay binary, its stdout and stderr piped) and returns it with the
/// address its start line announces.
fn spawn_relay(command: &mut Command) -> (RelayProcess, SocketAddr) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line[line.find("http://").expect("an address")..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit());
    let addr = url.trim_start_matches("http://").parse().unwrap();
    (RelayProcess(child), addr)
}

/// A relay binary started under `sh -c 'ulimit -n LIMIT; exec ...'` in `dir`, and its address.
fn relay_with_open_file_limit(dir: &TempDir, limit: u32) -> (RelayProcess, SocketAddr, String) {
    let (mut child, addr) = spawn_relay(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" --port 0 --store memory"
            ))
            .arg(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .current_dir(&dir.0),
    );
    let mut err = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    while !err.contains("max_streams lowered") {
        let mut l = String::new();
        if stderr.read_line(&mut l).unwrap() == 0 {
            break;
        }
        err.push_str(&l);
    }
    (child, addr, err)
}

#[test]
fn a_relay_at_a_low_open_file_limit_keeps_serving_past_it() {
    let dir = TempDir::new("fdlimit");
    let (mut child, addr, warnings) = relay_with_open_file_limit(&dir, 160);
    assert!(
        warnings.contains("max_connections lowered"),
        "the start says what fits: {warnings}"
    );
    let base = format!("http://{addr}");
    // More idle sockets than the limit allows descriptors: the oldest make room.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    assert_eq!(get(&format!("{base}/healthz")).status, 200);
    // More streams than fit: the extra ones are refused, and short requests still find a place.
    let streams: Vec<Sse> = (0..150)
        .map(|i| Sse::open(addr, &format!("/api/stream?target=c{i}"), &[]))
        .collect();
    let open = streams.iter().filter(|s| s.status == 200).count();
    let refused = streams.iter().filter(|s| s.status == 503).count();
    let statuses: Vec<u16> = streams.iter().map(|s| s.status).collect();
    assert_eq!(open + refused, 150, "{statuses:?}");
    assert!(open > 0 && refused > 0, "{open} open, {refused} refused");
    for _ in 0..10 {
        assert_eq!(get(&format!("{base}/healthz")).status, 200);
    }
    drop((idle, streams));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_ends_streams_and_exits_0() {
    let dir = TempDir::new("drain");
    let (mut child, addr) = spawn_relay(
        Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(["--port", "0"])
            .env("RUST_LOG", "debug")
            .current_dir(&dir.0),
    );
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut all);
        all
    });
    let mut stream = Sse::open(addr, "/api/stream?target=proj-x", &[]);
    assert_eq!(stream.status, 200);
    let body = br#"{"target":"proj-x","sender":"claude","text":"sent while the relay stops"}"#;
    let mut post = TcpStream::connect(addr).unwrap();
    post.write_all(format!("POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", addr.port(), body.len()).as_bytes()).unwrap();
    // The relay asks for the body once its handler reads it: the request is in flight.
    post.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        post.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_until("the relay stops accepting", || {
        TcpStream::connect(addr).is_err()
    });
    post.write_all(body).unwrap();
    let a = read_answer(&mut post);
    if a.status != 201 {
        let _ = child.wait();
        panic!(
            "the request in flight did not finish: {}\nrelay log:\n{}",
            a.head,
            log.join().unwrap()
        );
    }
    let until = deadline();
    while stream.next(until).is_some() {}
    assert!(Instant::now() < until, "the stream ends");
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let journal = std::fs::read_to_string(dir.path("data/messages.jsonl")).unwrap();
    assert!(journal.contains("sent while the relay stops"));
    // Tool-log lines still waiting in memory are written before the relay exits.
    let tool = std::fs::read_to_string(dir.path("log/claude_codex.log")).unwrap();
    assert!(tool.contains(" post_message "), "{tool}");
}

#[test]
fn a_closed_standard_error_costs_log_lines_not_requests() {
    let dir = TempDir::new("stderr");
    let (mut child, addr) = spawn_relay(
        Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(["--port", "0", "--store", "memory"])
            .env("RUST_LOG", "debug")
            .current_dir(&dir.0),
    );
    // Whoever started the relay goes away: every log line now fails to be written.
    drop(child.stderr.take());
    let url = format!("http://{addr}");
    for _ in 0..3 {
        // Each of these is logged at debug level.
        assert_eq!(get(&format!("{url}/nowhere")).status, 404);
    }
    assert_eq!(get(&format!("{url}/healthz")).status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_large_page_is_written_as_it_is_serialised_and_reads_back_whole() {
    let relay = Relay::memory();
    let big = format!("{}\u{2028}end", "d".repeat(600_000));
    let ids: Vec<u64> = (0..3).map(|_| relay.post("big", "claude", &big)).collect();
    let framed =
        |r: &Reply| r.header("content-length").is_some() || r.header("transfer-encoding").is_some();
    let small = get(&relay.url("/api/messages?target=big&limit=1"));
    assert!(
        framed(&small),
        "a small page is framed: {:?}",
        small.headers
    );
    let page = get(&relay.url("/api/messages?target=big"));
    assert_eq!(page.status, 200);
    // Past 1 MiB of text the page is streamed: it ends where the connection closes.
    assert!(!framed(&page), "{:?}", page.headers);
    assert_eq!(page.header("connection"), Some("close"));
    assert!(page.body.contains("\\u2028end"), "separators stay escaped");
    let v = page.json();
    let got: Vec<u64> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(v["messages"][2]["text"], big);
    assert_eq!(
        (v["head_id"].as_u64(), v["more"].as_bool()),
        (Some(ids[2]), Some(false))
    );
}

#[test]
fn an_mcp_fetch_stops_at_4_mb_of_text_and_says_more() {
    let relay = Relay::memory();
    let text = "m".repeat(1_000_000);
    let ids: Vec<u64> = (0..6).map(|_| relay.post("big", "claude", &text)).collect();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let r = mcp.call(
        "fetch_messages",
        serde_json::json!({"target": "big", "limit": 200}),
    );
    let page = &r["structuredContent"];
    let got = page["messages"].as_array().unwrap();
    assert_eq!(got.len(), 4, "4 MB of text, then the page ends");
    assert_eq!(page["latest_id"].as_u64(), Some(ids[3]));
    assert_eq!(page["more"], true);
    let rest = mcp.call(
        "fetch_messages",
        serde_json::json!({"target": "big", "since_id": ids[3]}),
    );
    assert_eq!(
        rest["structuredContent"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(rest["structuredContent"]["more"], false);
}

#[test]
fn a_reader_cut_short_by_the_4_mb_bound_reads_on_from_where_the_page_ended() {
    let relay = Relay::memory();
    let text = "r".repeat(1_000_000);
    let ids: Vec<u64> = (0..6).map(|_| relay.post("big", "claude", &text)).collect();
    let mut mcp = Mcp::connect(&relay, "2025-11-25");
    let read = |mcp: &mut Mcp| -> Vec<u64> {
        let r = mcp.call(
            "fetch_messages",
            serde_json::json!({"target": "big", "reader": "codex", "limit": 200}),
        );
        r["structuredContent"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect()
    };
    let first = read(&mut mcp);
    let second = read(&mut mcp);
    assert_eq!(first.len(), 4);
    assert_eq!([first, second].concat(), ids, "nothing skipped");
}
