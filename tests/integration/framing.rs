//! Where a request's head lines and body end: CR, LF and NUL inside a head line,
//! `Content-Length`, `Transfer-Encoding` and `Connection: Upgrade` sent over a real socket. A
//! request whose lines or body cannot be delimited is refused with a status that says why and the
//! connection closes, so whatever follows it is never read as a request of its own (request
//! smuggling); a request that can be delimited is answered as usual. `Connection` and `Expect`
//! are lists, read from every header of the name, that decide whether the connection goes on
//! and whether the body is waited for. A refusal that closes reaches a client that is still
//! sending megabytes after its request.

use crate::common::*;
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

/// One response read off a connection.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn says_close(&self) -> bool {
        self.head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: close"))
    }
}

/// Everything the server answered to `request`, read until it closed the connection (a reset
/// counts as closing), each response cut by its `Content-Length`.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<Response> {
    let mut s = TcpStream::connect(addr).unwrap();
    // A hang guard, not a measure: every exchange here ends with the server closing.
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
    parse_responses(&got)
}

/// The responses in `got`, each cut by its `Content-Length`.
fn parse_responses(got: &[u8]) -> Vec<Response> {
    let mut responses = Vec::new();
    let mut rest = got;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let body_end = (end + 4 + length).min(rest.len());
        let body = String::from_utf8_lossy(&rest[end + 4..body_end]).to_string();
        responses.push(Response { status, head, body });
        rest = &rest[body_end..];
    }
    responses
}

/// A `GET /healthz` that ends its connection: the request a smuggler hides in a body.
const SMUGGLED: &str = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

fn post_head(headers: &str) -> String {
    format!(
        "POST /api/messages HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}\r\n"
    )
}

fn message(text: &str) -> String {
    json!({"target": "framing", "sender": "s", "text": text}).to_string()
}

fn texts(relay: &Relay) -> Vec<String> {
    get_json(&relay.url("/api/messages?target=framing"))["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

/// `request` gets exactly one answer, `status` with `Connection: close`, whose body names the
/// header and contains `says`; then the connection closes, and the relay serves on.
fn refused_once(relay: &Relay, what: &str, request: &[u8], status: u16, says: &[&str]) {
    let answers = exchange(relay.addr(), request);
    assert_eq!(answers.len(), 1, "{what}: {answers:#?}");
    let a = &answers[0];
    assert_eq!(a.status, status, "{what}: {a:#?}");
    assert!(a.says_close(), "{what}: {a:#?}");
    for s in says {
        assert!(a.body.contains(s), "{what}: the body says {s:?}: {a:#?}");
    }
    assert_eq!(get(&relay.url("/healthz")).body, "ok", "{what}");
}

#[test]
fn an_invalid_content_length_is_400_and_nothing_after_it_is_read_as_a_request() {
    let relay = Relay::memory();
    for value in [
        "abc",
        "-1",
        "99999999999999999999999",
        "0x10",
        "",
        "+5",
        "5 5",
        "5,",
        "1.0",
    ] {
        let rq = format!(
            "{}{SMUGGLED}",
            post_head(&format!("Content-Length: {value}\r\n"))
        );
        refused_once(
            &relay,
            &format!("Content-Length: {value:?}"),
            rq.as_bytes(),
            400,
            &["Content-Length", &format!("{value:?}")],
        );
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn differing_content_lengths_are_400_and_identical_ones_are_one_length() {
    let relay = Relay::memory();
    let body = message("hello");
    let n = body.len();
    for (what, headers) in [
        (
            "two headers",
            format!("Content-Length: {}\r\nContent-Length: {n}\r\n", n + 37),
        ),
        ("a list", format!("Content-Length: {n}, {}\r\n", n + 37)),
        (
            "the second smaller",
            format!("Content-Length: {n}\r\nContent-Length: 5\r\n"),
        ),
    ] {
        let rq = format!("{}{body}{SMUGGLED}", post_head(&headers));
        refused_once(
            &relay,
            what,
            rq.as_bytes(),
            400,
            &["Content-Length", &format!("\"{n}\"")],
        );
    }
    assert_eq!(texts(&relay), Vec::<String>::new());

    // The same length repeated is that length: the message is posted, the connection goes on.
    for (i, repeated) in ["{n}, {n}", "{n}\r\nContent-Length: {n}", "{n} ,\t0{n}"]
        .iter()
        .enumerate()
    {
        let body = message(&format!("same {i}"));
        let n = body.len().to_string();
        let headers = format!("Content-Length: {}\r\n", repeated.replace("{n}", &n));
        let rq = format!("{}{body}{SMUGGLED}", post_head(&headers));
        let answers = exchange(relay.addr(), rq.as_bytes());
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [201, 200], "{headers:?}: {answers:#?}");
    }
    assert_eq!(texts(&relay), ["same 0", "same 1", "same 2"]);
}

#[test]
fn transfer_encoding_wins_over_content_length_and_the_connection_then_closes() {
    let relay = Relay::memory();
    let body = message("chunked wins");
    // The Content-Length would end the body after "2e\r\n{"; the chunks end it after "0\r\n\r\n".
    for headers in [
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: abc\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let rq = format!(
            "{}{:x}\r\n{body}\r\n0\r\n\r\n{SMUGGLED}",
            post_head(headers),
            body.len()
        );
        let answers = exchange(relay.addr(), rq.as_bytes());
        assert_eq!(answers.len(), 1, "{headers:?}: {answers:#?}");
        assert_eq!(answers[0].status, 201, "{headers:?}: {answers:#?}");
        assert!(answers[0].says_close(), "{headers:?}: {answers:#?}");
    }
    assert_eq!(texts(&relay), ["chunked wins"; 3]);
}

#[test]
fn a_request_asking_to_upgrade_is_framed_and_answered_like_any_other() {
    // The relay upgrades to nothing: `Connection: Upgrade` and `Upgrade` are ignored, the body
    // ends where its length (or last chunk) says, and the connection goes on in HTTP/1.1.
    let relay = Relay::memory();
    let by_length = message("upgrade by length");
    let chunked = message("upgrade chunked");
    let rq = format!(
        "{}{by_length}{}{:x}\r\n{chunked}\r\n0\r\n\r\n{}{SMUGGLED}",
        post_head(&format!(
            "Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: {}\r\n",
            by_length.len()
        )),
        post_head("Connection: keep-alive, Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n"),
        chunked.len(),
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201, 201, 200, 200], "{answers:#?}");
    assert!(answers[..3].iter().all(|a| !a.says_close()), "{answers:#?}");
    assert_eq!(texts(&relay), ["upgrade by length", "upgrade chunked"]);
}

#[test]
fn a_transfer_coding_other_than_chunked_is_400_at_once_and_closes() {
    let relay = Relay::memory();
    let body = message("compressed, they say");
    for te in [
        "gzip",
        "GZIP",
        "identity",
        "gzip, chunked",
        "chunked, gzip",
        "chunked;ext=1",
    ] {
        let rq = format!(
            "{}{body}{SMUGGLED}",
            post_head(&format!(
                "Transfer-Encoding: {te}\r\nContent-Length: {}\r\n",
                body.len()
            ))
        );
        refused_once(
            &relay,
            te,
            rq.as_bytes(),
            400,
            &["Transfer-Encoding", &format!("{te:?}"), "only chunked"],
        );
    }
    // Bytes that do not look like chunks, and no end: answered at once, not at the body timeout.
    let rq = format!(
        "{}\u{1f}gzipped bytes",
        post_head("Transfer-Encoding: gzip\r\n")
    );
    refused_once(&relay, "gzip alone", rq.as_bytes(), 400, &["\"gzip\""]);
    // Two headers make one list.
    let rq = format!(
        "{}{body}{SMUGGLED}",
        post_head("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")
    );
    refused_once(&relay, "two headers", rq.as_bytes(), 400, &["\"gzip\""]);
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn chunked_applied_twice_an_empty_transfer_encoding_or_one_in_http_1_0_is_400() {
    let relay = Relay::memory();
    let body = message("never posted");
    let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    for (what, head, says) in [
        (
            "chunked twice",
            post_head("Transfer-Encoding: chunked, chunked\r\n"),
            "more than once",
        ),
        (
            "chunked in two headers",
            post_head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            "more than once",
        ),
        ("empty", post_head("Transfer-Encoding: \r\n"), "empty"),
        (
            "a list of nothing",
            post_head("Transfer-Encoding: ,\r\n"),
            "empty",
        ),
        (
            "HTTP/1.0",
            post_head("Transfer-Encoding: chunked\r\n").replace("HTTP/1.1", "HTTP/1.0"),
            "HTTP/1.0",
        ),
    ] {
        let rq = format!("{head}{chunk}{SMUGGLED}");
        refused_once(
            &relay,
            what,
            rq.as_bytes(),
            400,
            &["Transfer-Encoding", says],
        );
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn chunked_in_any_case_is_read_and_the_connection_goes_on() {
    let relay = Relay::memory();
    let mut rq = String::new();
    for te in ["chunked", "Chunked", "CHUNKED", "chunked, ", " ,chunked"] {
        let body = message(te);
        rq += &format!(
            "{}{:x}\r\n{body}\r\n0\r\n\r\n",
            post_head(&format!("Transfer-Encoding: {te}\r\n")),
            body.len()
        );
    }
    rq += SMUGGLED;
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201, 201, 201, 201, 201, 200], "{answers:#?}");
    assert_eq!(
        texts(&relay),
        ["chunked", "Chunked", "CHUNKED", "chunked, ", " ,chunked"]
    );
}

#[test]
fn a_chunk_size_that_is_not_bare_hex_digits_is_400_and_closes() {
    let relay = Relay::memory();
    let body = message("signed chunk");
    for size in [
        format!("+{:x}", body.len()),
        format!(" {:x}", body.len()),
        format!("0x{:x}", body.len()),
        String::new(),
    ] {
        let rq = format!(
            "{}{size}\r\n{body}\r\n0\r\n\r\n{SMUGGLED}",
            post_head("Transfer-Encoding: chunked\r\n")
        );
        refused_once(&relay, &size, rq.as_bytes(), 400, &["chunk size"]);
    }
    // Spaces after the size, before an extension, are allowed (RFC 9112 §7.1.1).
    let rq = format!(
        "{}{:x} ;ext=1\r\n{body}\r\n0\r\n\r\n{SMUGGLED}",
        post_head("Transfer-Encoding: chunked\r\n"),
        body.len()
    );
    let statuses: Vec<u16> = exchange(relay.addr(), rq.as_bytes())
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, [201, 200]);
    assert_eq!(texts(&relay), ["signed chunk"]);
}

#[test]
fn a_bare_lf_in_a_chunk_line_or_a_trailer_that_is_not_a_field_is_400_and_closes() {
    // A chunk-size or trailer line ends at CRLF, as a head line does: a peer that ends lines at a
    // bare LF finds the body ending elsewhere. Here a bare LF in a trailer made the relay read the
    // `GET /api/channels` after it as more trailers, where such a peer answers it.
    let relay = Relay::memory();
    let body = message("chunk lines");
    let n = body.len();
    let chunked = post_head("Transfer-Encoding: chunked\r\n");
    let swallowed = "GET /api/channels HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (what, chunks, says) in [
        (
            "a bare LF in a trailer",
            format!("{n:x}\r\n{body}\r\n0\r\nX: y\n\r\n{swallowed}"),
            "LF without a CR",
        ),
        (
            "a trailer that is not a field",
            format!("{n:x}\r\n{body}\r\n0\r\nthis is not a field\r\n\r\n"),
            "trailer line",
        ),
        (
            "a bare LF in a chunk-size line",
            format!("{n:x};x\nOTHER\r\n{body}\r\n0\r\n\r\n"),
            "LF without a CR",
        ),
        (
            "a NUL in a chunk-size line",
            format!("{n:x};x\0\r\n{body}\r\n0\r\n\r\n"),
            "NUL",
        ),
    ] {
        let rq = format!("{chunked}{chunks}{SMUGGLED}");
        refused_once(&relay, what, rq.as_bytes(), 400, &["chunked body", says]);
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
    // Trailers that are fields are read past, and the connection goes on.
    let rq = format!("{chunked}{n:x}\r\n{body}\r\n0\r\nX-T: 1\r\nY:\r\n\r\n{SMUGGLED}");
    let statuses: Vec<u16> = exchange(relay.addr(), rq.as_bytes())
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, [201, 200]);
    assert_eq!(texts(&relay), ["chunk lines"]);
}

#[test]
fn cr_lf_or_nul_in_a_head_line_is_400_naming_the_line_and_closes() {
    // RFC 9110 §5.5: CR, LF and NUL in a field value are invalid and dangerous. A bare LF is where
    // a peer that ends lines at LF finds a header of its own: here a `Content-Length` the relay
    // would not see, so the body and the request after it would be read apart differently.
    let relay = Relay::memory();
    let body = message("hidden length");
    let n = body.len();
    let line = |l: &str| format!("{l}\r\nHost: localhost\r\nContent-Length: {n}\r\n\r\n");
    for (what, head, says) in [
        (
            "a bare LF in a value",
            post_head(&format!("X-A: a\nContent-Length: {n}\r\n")),
            ["the header \"X-A\"", "LF without a CR"],
        ),
        (
            "a bare LF in the name",
            post_head(&format!("X\nContent-Length: {n}\r\n")),
            ["the header \"X\"", "LF without a CR"],
        ),
        (
            "a bare CR in a value",
            post_head(&format!("X-A: a\rContent-Length: {n}\r\n")),
            ["the header \"X-A\"", "CR not followed by LF"],
        ),
        (
            "a CR before the CRLF",
            post_head(&format!("X-A: a\r\r\nContent-Length: {n}\r\n")),
            ["the header \"X-A\"", "CR not followed by LF"],
        ),
        (
            "a NUL in a value",
            post_head(&format!("X-A: a\0b\r\nContent-Length: {n}\r\n")),
            ["the header \"X-A\"", "NUL"],
        ),
        (
            "a NUL in a name",
            post_head(&format!("X\0A: b\r\nContent-Length: {n}\r\n")),
            ["the header \"X\\0A\"", "NUL"],
        ),
        (
            "a bare LF ending the head",
            post_head(&format!("Content-Length: {n}\r\n")).replace("\r\n\r\n", "\r\n\n"),
            ["the empty line that ends the head", "LF without a CR"],
        ),
        (
            "a bare LF ending the request line",
            line("POST /api/messages HTTP/1.1\n"),
            ["the request line", "LF without a CR"],
        ),
        (
            "a NUL in the target",
            line("POST /api/messages\0 HTTP/1.1"),
            ["the request line", "NUL"],
        ),
        (
            "a bare CR in the target",
            line("POST /api/messages\r HTTP/1.1"),
            ["the request line", "CR not followed by LF"],
        ),
    ] {
        let rq = format!("{head}{body}{SMUGGLED}");
        refused_once(&relay, what, rq.as_bytes(), 400, &says);
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn a_folded_header_line_or_whitespace_before_a_line_is_400_and_closes() {
    // RFC 9112 §5.2: a line that begins with a space or tab continues the field before it
    // (obsolete line folding), so a peer that unfolds it sees no `Content-Length` here, and the
    // body and the request after it would be read apart differently. §2.2: whitespace before the
    // first header field, or before the request line, is not a field or a request line either.
    let relay = Relay::memory();
    let body = message("folded length");
    let n = body.len();
    for (what, head) in [
        (
            "a field folded with a tab",
            post_head(&format!("X-A: a\r\n\tContent-Length: {n}\r\n")),
        ),
        (
            "a field folded with a space",
            post_head(&format!("X-A: a\r\n Content-Length: {n}\r\n")),
        ),
        (
            "whitespace before the first field",
            format!(
                "POST /api/messages HTTP/1.1\r\n Content-Length: {n}\r\nHost: localhost\r\nContent-Type: application/json\r\n\r\n"
            ),
        ),
    ] {
        let rq = format!("{head}{body}{SMUGGLED}");
        refused_once(&relay, what, rq.as_bytes(), 400, &["space or tab", "obs-fold"]);
    }
    for line in [
        "  GET /healthz HTTP/1.1",
        " GET /healthz HTTP/1.1",
        "\tGET /healthz HTTP/1.1",
        " /healthz HTTP/1.1",
    ] {
        let rq = format!("{line}\r\nHost: localhost\r\n\r\n{SMUGGLED}");
        refused_once(&relay, line, rq.as_bytes(), 400, &["request line"]);
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
    // Spaces and tabs around a value are not part of it.
    let rq = format!(
        "{}{body}{SMUGGLED}",
        post_head(&format!("Content-Length: \t{n} \t\r\n"))
    );
    let statuses: Vec<u16> = exchange(relay.addr(), rq.as_bytes())
        .iter()
        .map(|a| a.status)
        .collect();
    assert_eq!(statuses, [201, 200]);
    assert_eq!(texts(&relay), ["folded length"]);
}

#[test]
fn a_request_line_is_method_target_version_and_only_http_1_x_is_served() {
    // RFC 9112 §3: `method SP request-target SP HTTP-version`, and nothing after it.
    let relay = Relay::memory();
    for line in [
        "GET /healthz HTTP/1.1 junk more",
        "GET /healthz HTTP/1.1 ",
        "GET  /healthz HTTP/1.1",
        "GET  HTTP/1.1",
    ] {
        let rq = format!("{line}\r\nHost: localhost\r\n\r\n{SMUGGLED}");
        refused_once(&relay, line, rq.as_bytes(), 400, &["request line"]);
    }
    // HTTP/0.9 had no status line to read: it is refused like HTTP/2.0, in an HTTP/1.1 one.
    for version in ["0.9", "2.0"] {
        let rq = format!("{}{SMUGGLED}", healthz(version, ""));
        refused_once(&relay, version, rq.as_bytes(), 505, &["1.0 and 1.1"]);
        let answers = exchange(relay.addr(), rq.as_bytes());
        assert!(answers[0].head.starts_with("HTTP/1.1 505 "), "{answers:#?}");
    }
}

#[test]
fn an_absolute_form_target_is_served_as_its_path_with_its_host_for_the_host_check() {
    // RFC 9112 §3.2.2: a server must accept a target in absolute form, and an origin server
    // goes by its host, not the Host header's.
    let relay = Relay::memory();
    let port = relay.addr().port();
    let get = |target: &str, host: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let rq = [
        get(
            &format!("http://127.0.0.1:{port}/api/channels"),
            "evil.example",
        ),
        get(
            "http://evil.example/api/channels",
            &format!("127.0.0.1:{port}"),
        ),
        get(&format!("HTTP://localhost:{port}"), "localhost"),
        SMUGGLED.into(),
    ]
    .concat();
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 421, 200, 200], "{answers:#?}");
    assert!(answers[0].body.contains("\"channels\""), "{answers:#?}");
    assert!(answers[1].body.contains("evil.example"), "{answers:#?}");
    // A target naming no host, or a host with user information, is refused.
    for target in ["http:///api/channels", "http://me@localhost/api/channels"] {
        let rq = format!("{}{SMUGGLED}", get(target, "localhost"));
        refused_once(&relay, target, rq.as_bytes(), 400, &["host"]);
    }
}

/// `GET /healthz` in `version` with `headers`, without `Connection: close` of its own.
fn healthz(version: &str, headers: &str) -> String {
    format!("GET /healthz HTTP/{version}\r\nHost: localhost\r\n{headers}\r\n")
}

#[test]
fn connection_is_a_list_of_options_from_every_connection_header() {
    // RFC 9110 §7.6.1: `Connection` is a comma-separated list of option names, in any case, and
    // a request may carry it in several header lines. Whether the connection goes on depends on
    // whole options, never on a substring of one.
    let relay = Relay::memory();
    let statuses = |answers: &[Response]| answers.iter().map(|a| a.status).collect::<Vec<u16>>();
    let rq = [
        healthz("1.1", "Connection: keep-alive, x-closed\r\n"),
        healthz(
            "1.1",
            "Connection: Keep-Alive,,x-enclosed\r\nConnection: x-close-x\r\n",
        ),
        healthz("1.1", "Connection: keep-alive\r\nConnection: te, CLOSE\r\n"),
        SMUGGLED.into(),
    ]
    .concat();
    let answers = exchange(relay.addr(), rq.as_bytes());
    assert_eq!(statuses(&answers), [200, 200, 200], "{answers:#?}");
    assert!(
        !answers[0].says_close() && !answers[1].says_close(),
        "{answers:#?}"
    );
    // RFC 9112 §9.6: the response to a request that closes says so.
    assert!(answers[2].says_close(), "{answers:#?}");

    // HTTP/1.0 goes on only with a `keep-alive` option, in whichever header it comes.
    for (headers, going_on) in [
        ("Connection: x-keep-alive\r\n", false),
        ("Connection: keep-alive-not\r\n", false),
        ("Connection: foo\r\nConnection: KEEP-ALIVE\r\n", true),
        ("Connection: keep-alive\r\nConnection: close\r\n", false),
    ] {
        let rq = format!("{}{SMUGGLED}", healthz("1.0", headers));
        let answers = exchange(relay.addr(), rq.as_bytes());
        let expected: &[u16] = if going_on { &[200, 200] } else { &[200] };
        assert_eq!(statuses(&answers), expected, "{headers:?}: {answers:#?}");
    }
}

#[test]
fn an_http_1_0_connection_that_goes_on_says_keep_alive() {
    // RFC 9112 §9.3, Appendix C.2.2: an HTTP/1.0 client takes a response without
    // `Connection: keep-alive` to end when the connection closes; one that asked to keep it is
    // told it is kept, or else waits for a close that comes only when the connection falls idle.
    let relay = Relay::memory();
    let keep_alive = |a: &Response| {
        a.head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: keep-alive"))
    };
    for (headers, going_on) in [
        ("Connection: keep-alive\r\n", true),
        ("Connection: foo\r\nConnection: KEEP-ALIVE\r\n", true),
        ("", false),
        ("Connection: keep-alive\r\nConnection: close\r\n", false),
    ] {
        let rq = format!("{}{}", healthz("1.0", headers), healthz("1.0", ""));
        let answers = exchange(relay.addr(), rq.as_bytes());
        let expected: &[u16] = if going_on { &[200, 200] } else { &[200] };
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, expected, "{headers:?}: {answers:#?}");
        assert_eq!(
            keep_alive(&answers[0]),
            going_on,
            "{headers:?}: {answers:#?}"
        );
        assert!(answers[1..].iter().all(|a| !keep_alive(a)), "{answers:#?}");
    }
    // A 1.0 client reads its response as soon as it is told the connection is kept, then sends
    // its next request on it.
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    for i in 0..2 {
        s.write_all(healthz("1.0", "Connection: keep-alive\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 8192];
        while parse_responses(&got).len() <= i || parse_responses(&got)[i].body != "ok" {
            let n = s
                .read(&mut buf)
                .expect("the response, before the connection closes");
            assert!(n > 0, "closed after {:#?}", parse_responses(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert!(parse_responses(&got).iter().all(keep_alive));
}

#[test]
fn every_expect_header_counts() {
    // RFC 9110 §10.1.1: `Expect` is a list; this server meets `100-continue` and no other
    // expectation, in whichever header it comes.
    let relay = Relay::memory();
    let body = message("expected");
    let n = body.len();
    for headers in [
        "Expect: 100-continue\r\nExpect: magic\r\n",
        "Expect: magic\r\nExpect: 100-continue\r\n",
        "Expect: 100-continue, x-other=1\r\n",
    ] {
        let rq = format!(
            "{}{body}{SMUGGLED}",
            post_head(&format!("{headers}Content-Length: {n}\r\n"))
        );
        refused_once(&relay, headers, rq.as_bytes(), 417, &[]);
    }
    assert_eq!(texts(&relay), Vec::<String>::new());

    // `100-continue` however often and in whatever case is one expectation; an empty `Expect`
    // expects nothing.
    for (i, (headers, interim)) in [
        ("Expect: 100-continue, 100-Continue\r\n", true),
        ("Expect: 100-CONTINUE\r\nExpect: 100-continue\r\n", true),
        ("Expect: \r\n", false),
    ]
    .iter()
    .enumerate()
    {
        let body = message(&format!("expected {i}"));
        let rq = format!(
            "{}{body}{SMUGGLED}",
            post_head(&format!("{headers}Content-Length: {}\r\n", body.len()))
        );
        let answers = exchange(relay.addr(), rq.as_bytes());
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        let expected: &[u16] = if *interim {
            &[100, 201, 200]
        } else {
            &[201, 200]
        };
        assert_eq!(statuses, expected, "{headers:?}: {answers:#?}");
    }
    // An HTTP/1.0 client knows no interim response: its `100-continue` is ignored (RFC 9110
    // §10.1.1), and the answer is the only one.
    let body = message("expected in 1.0");
    let rq = post_head(&format!(
        "Expect: 100-continue\r\nContent-Length: {}\r\n",
        body.len()
    ))
    .replace("HTTP/1.1", "HTTP/1.0")
        + &body;
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201], "{answers:#?}");
    assert_eq!(
        texts(&relay),
        ["expected 0", "expected 1", "expected 2", "expected in 1.0"]
    );
}

#[test]
fn a_100_continue_or_a_204_has_no_content_length() {
    // RFC 9110 §8.6: a server must not send `Content-Length` in a 1xx or 204 response.
    let relay = Relay::memory();
    let has_length = |a: &Response| {
        a.head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("content-length"))
    };
    let body = message("continued");
    let rq = format!(
        "{}{body}",
        post_head(&format!(
            "Expect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        ))
    );
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [100, 201], "{answers:#?}");
    assert!(!has_length(&answers[0]), "{answers:#?}");
    assert!(has_length(&answers[1]), "{answers:#?}");

    let mcp = Mcp::connect(&relay, "2025-06-18");
    let rq = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: localhost\r\nMcp-Session-Id: {}\r\nMCP-Protocol-Version: {}\r\n\r\n{SMUGGLED}",
        mcp.session, mcp.version
    );
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [204, 200], "{answers:#?}");
    assert!(!has_length(&answers[0]), "{answers:#?}");
}

/// Reads off `s`, into `got`, until `n` responses have come whole; fails if the connection
/// closes first.
fn read_answers(s: &mut TcpStream, got: &mut Vec<u8>, n: usize) -> Vec<Response> {
    let whole = |a: &Response| {
        let length = a.head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        a.body.len() == length.unwrap_or(0)
    };
    let mut buf = [0u8; 8192];
    loop {
        let answers = parse_responses(got);
        if answers.len() >= n && whole(&answers[n - 1]) {
            return answers;
        }
        let read = s
            .read(&mut buf)
            .expect("the response, before the connection closes");
        assert!(read > 0, "closed after {answers:#?}");
        got.extend_from_slice(&buf[..read]);
    }
}

#[test]
fn a_refusal_before_the_100_continue_closes_so_the_next_request_is_never_read_as_the_body() {
    // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` may send its body or not once
    // it has a final response instead; where its next request begins is unknown, so the relay's
    // refusal (421, the body never asked for) says `Connection: close` and the connection ends.
    let relay = Relay::memory();
    let body = message("held back");
    let expecting = |host: &str| {
        format!(
            "POST /api/messages HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
    };
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(expecting("evil.example").as_bytes()).unwrap();
    let mut got = Vec::new();
    let answers = read_answers(&mut s, &mut got, 1);
    assert_eq!(answers[0].status, 421, "{answers:#?}");
    assert!(answers[0].says_close(), "{answers:#?}");
    // The client goes on as if the connection were kept: nothing more is answered.
    let _ = s.write_all(healthz("1.1", "").as_bytes());
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server neither answered nor closed: {e}"),
    }
    assert_eq!(String::from_utf8_lossy(&rest), "");

    // A body asked for with `100 Continue` and sent is posted, and the connection goes on.
    let mut s = TcpStream::connect(relay.addr()).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(expecting("localhost").as_bytes()).unwrap();
    let mut got = Vec::new();
    assert_eq!(read_answers(&mut s, &mut got, 1)[0].status, 100);
    s.write_all(body.as_bytes()).unwrap();
    s.write_all(healthz("1.1", "").as_bytes()).unwrap();
    let answers = read_answers(&mut s, &mut got, 3);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [100, 201, 200], "{answers:#?}");
    assert!(!answers[1].says_close(), "{answers:#?}");
    assert_eq!(texts(&relay), ["held back"]);
}

/// Bytes a client sends after a refused request before it reads anything: more than the socket
/// buffers of both ends hold on loopback (a few MiB), so the server refuses and closes while the
/// client is still sending.
const FLOOD: usize = 8 << 20;

/// Sends `request` followed by `FLOOD` bytes of `x`, all before reading, as a client that reads
/// its answer only once its request is sent; then reads until the server closes (a reset counts).
/// Returns whether the whole request could be sent, and the responses.
fn send_flooded(addr: SocketAddr, request: &[u8]) -> (std::io::Result<()>, Vec<Response>) {
    let mut s = TcpStream::connect(addr).unwrap();
    // A hang guard, not a measure.
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut all = request.to_vec();
    all.resize(request.len() + FLOOD, b'x');
    let sent = s.write_all(&all);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
    (sent, parse_responses(&got))
}

#[test]
fn a_refusal_that_closes_reaches_a_client_still_sending_megabytes() {
    // A server that closes with bytes of the client's still unread resets the connection: the
    // client's sending fails (here: "Broken pipe" in every case), and a client that stops there,
    // as most do, never reads the refusal waiting for it; some systems' stacks drop a received
    // response on the reset. (Linux keeps it: a raw client that ignores its failed send, as this
    // one could, still reads the refusal; `sent` is what fails here without the fix.) Every
    // refusal that closes reads on, boundedly, until the client has sent its request, and the
    // client then reads the refusal whole.
    let relay = Relay::memory();
    let many_fields: String = (0..101).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, String, u16, Vec<&str>)> = vec![
        (
            "an invalid Content-Length",
            post_head("Content-Length: abc\r\n"),
            400,
            vec!["the Content-Length header \"abc\" is not a length"],
        ),
        (
            "a bare LF in a header",
            post_head("X-A: a\nContent-Length: 5\r\n"),
            400,
            vec!["the header \"X-A\" has a LF without a CR before it"],
        ),
        (
            "a transfer coding other than chunked",
            post_head("Transfer-Encoding: gzip\r\n"),
            400,
            vec!["only chunked is"],
        ),
        (
            "an expectation other than 100-continue",
            post_head(&format!("Expect: magic\r\nContent-Length: {FLOOD}\r\n")),
            417,
            vec![],
        ),
        (
            "a body over the relay's limit",
            post_head(&format!("Content-Length: {FLOOD}\r\n")),
            413,
            vec!["request body is over the"],
        ),
        (
            "too many header fields",
            healthz("1.1", &many_fields),
            431,
            vec![],
        ),
        (
            "a request line over 8 KiB",
            format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000)),
            414,
            vec![],
        ),
        ("HTTP/2.0", healthz("2.0", ""), 505, vec!["1.0 and 1.1"]),
        (
            "a header line without a colon",
            healthz("1.1", "X-A b\r\n"),
            400,
            vec![],
        ),
    ];
    for (what, rq, status, says) in cases {
        let (sent, answers) = send_flooded(relay.addr(), rq.as_bytes());
        assert!(
            sent.is_ok(),
            "{what}: the request could not be sent: {sent:?}"
        );
        assert_eq!(answers.len(), 1, "{what}: {answers:#?}");
        let a = &answers[0];
        assert_eq!(a.status, status, "{what}: {a:#?}");
        assert!(a.says_close(), "{what}: {a:#?}");
        for s in says {
            assert!(a.body.contains(s), "{what}: the body says {s:?}: {a:#?}");
        }
        let length = a
            .head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "));
        let length: usize = length.map_or(0, |l| l.parse().unwrap());
        assert_eq!(a.body.len(), length, "{what}: the whole body: {a:#?}");
    }
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn a_client_library_sending_a_body_over_the_limit_gets_the_413() {
    // ureq, like most clients, sends the whole body before it reads the response, and reports a
    // failed send as the outcome: the 413 is seen only when the relay reads on until it is sent.
    let relay = Relay::memory();
    let body = vec![b'x'; FLOOD];
    let reply = post_raw(
        &relay.url("/api/messages"),
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("request body is over the"),
        "{}",
        reply.body
    );
    assert_eq!(texts(&relay), Vec::<String>::new());
}

#[test]
fn a_chunked_body_over_the_limit_gets_a_413_that_says_the_connection_closes() {
    // Where the rest of a chunked body ends is unknown when the 413 is sent, so the connection
    // closes after it, and the 413 says so: the client knows the request after it is not read.
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.max_body_bytes = 1000;
    });
    let text = "x".repeat(100_000);
    let body = message(&text);
    let one_chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let many_chunks: String = body
        .as_bytes()
        .chunks(1000)
        .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
        .chain(["0\r\n\r\n".to_owned()])
        .collect();
    let small = message(&"x".repeat(2000));
    let small = format!("{:x}\r\n{small}\r\n0\r\n\r\n", small.len());
    for (what, chunks) in [
        ("one chunk", one_chunk),
        ("many chunks", many_chunks),
        ("a little over", small),
    ] {
        let rq = format!(
            "{}{chunks}{SMUGGLED}",
            post_head("Transfer-Encoding: chunked\r\n")
        );
        refused_once(
            &relay,
            what,
            rq.as_bytes(),
            413,
            &["request body is over the"],
        );
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
    // A chunked body within the limit is read to its end, and the connection goes on.
    let body = message("within");
    let rq = format!(
        "{}{:x}\r\n{body}\r\n0\r\n\r\n{SMUGGLED}",
        post_head("Transfer-Encoding: chunked\r\n"),
        body.len()
    );
    let answers = exchange(relay.addr(), rq.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [201, 200], "{answers:#?}");
    assert!(!answers[0].says_close(), "{answers:#?}");
}

/// Sends `request`, then shuts down the sending side, as a client that has sent all it means
/// to; returns what the server answered before closing (a reset counts as closing).
fn sent_then_shut_down(addr: SocketAddr, request: &[u8]) -> Vec<Response> {
    let mut s = TcpStream::connect(addr).unwrap();
    // A hang guard, not a measure: every exchange here ends with the server closing.
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server neither answered nor closed: {e}"),
    }
    parse_responses(&got)
}

#[test]
fn a_body_cut_short_is_400_and_nothing_is_stored() {
    // A client that shuts down its sending side before its body is complete has sent a body
    // shorter than it declared: that is not the body, and it is refused, never stored. The
    // client can still read the answer.
    let relay = Relay::memory();
    let body = message("cut short");
    let chunked = format!("{:x}\r\n{body}\r\n", body.len() + 10);
    for (what, rq) in [
        (
            "a Content-Length over 1 KiB",
            format!("{}{body}", post_head("Content-Length: 2000\r\n")),
        ),
        (
            "a Content-Length of 1 KiB or less",
            format!("{}{body}", post_head("Content-Length: 100\r\n")),
        ),
        (
            "a body on a route that reads none",
            format!("{}abc", healthz("1.1", "Content-Length: 100\r\n")),
        ),
        (
            "chunks",
            format!("{}{chunked}", post_head("Transfer-Encoding: chunked\r\n")),
        ),
    ] {
        let answers = sent_then_shut_down(relay.addr(), rq.as_bytes());
        assert_eq!(answers.len(), 1, "{what}: {answers:#?}");
        let a = &answers[0];
        assert_eq!(a.status, 400, "{what}: {a:#?}");
        assert!(a.body.contains("cut short"), "{what}: {a:#?}");
        assert!(a.says_close(), "{what}: {a:#?}");
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
}

#[test]
fn a_body_that_stalls_is_408_saying_the_body_was_late_whatever_its_length() {
    // A body of 1 KiB or less is read with its head, a longer one by the relay: either way a
    // body that stops coming is late as a body, never as a head.
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.body_timeout_secs = 1;
    });
    let body = message("stalled");
    for length in [100, 1024, 1025, 2000] {
        let rq = format!(
            "{}{body}",
            post_head(&format!("Content-Length: {length}\r\n"))
        );
        let answers = exchange(relay.addr(), rq.as_bytes());
        assert_eq!(answers.len(), 1, "{length}: {answers:#?}");
        let a = &answers[0];
        assert_eq!(a.status, 408, "{length}: {a:#?}");
        assert!(
            a.body.contains("the request body did not arrive in time"),
            "{length}: {a:#?}"
        );
        assert!(a.says_close(), "{length}: {a:#?}");
    }
    assert_eq!(texts(&relay), Vec::<String>::new());
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
}

#[test]
fn every_refusal_of_a_head_says_why_in_its_body() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.header_timeout_secs = 1;
    });
    let many_fields = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "X-Field: 1\r\n".repeat(200)
    );
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(100_000)
    );
    let cases: [(&str, Vec<u8>, u16, &str); 8] = [
        (
            "no request line",
            b"HELLO\r\n\r\n".to_vec(),
            400,
            "request line",
        ),
        (
            "an empty header name",
            healthz_with(": v"),
            400,
            "NAME: VALUE",
        ),
        (
            "a header name with @",
            healthz_with("a@b: v"),
            400,
            "NAME: VALUE",
        ),
        (
            "a header name with a space",
            healthz_with("a b: v"),
            400,
            "NAME: VALUE",
        ),
        (
            "an unknown expectation",
            healthz_with("Expect: magic"),
            417,
            "100-continue",
        ),
        (
            "too many header lines",
            many_fields.into_bytes(),
            431,
            "header lines",
        ),
        (
            "a request line too long",
            long_line.into_bytes(),
            414,
            "request line",
        ),
        (
            "a head that stops",
            b"GET /healthz HTTP/1.1\r\nHo".to_vec(),
            408,
            "in time",
        ),
    ];
    for (what, request, status, says) in cases {
        refused_once(&relay, what, &request, status, &[says]);
    }
    // A name of every character a token may hold is a header like any other.
    let answers = exchange(relay.addr(), &healthz_with("x!#$%&'*+-.^_`|~9: v"));
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert_eq!((answers[0].status, answers[0].body.as_str()), (200, "ok"));
}

/// A `GET /healthz` that ends its connection, with one more header line.
fn healthz_with(line: &str) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{line}\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

#[test]
fn one_empty_line_before_a_request_line_is_ignored_and_two_are_not() {
    let relay = Relay::memory();
    // A client that ends a body with an extra CRLF, then sends its next request.
    let body = message("then a CRLF");
    let rq = format!(
        "{}{body}\r\n{SMUGGLED}",
        post_head(&format!("Content-Length: {}\r\n", body.len()))
    );
    let answers = exchange(relay.addr(), rq.as_bytes());
    let got: Vec<(u16, &str)> = answers
        .iter()
        .map(|a| (a.status, a.body.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{answers:#?}");
    assert_eq!((got[0].0, got[1]), (201, (200, "ok")), "{answers:#?}");
    assert_eq!(texts(&relay), ["then a CRLF"]);
    refused_once(
        &relay,
        "two empty lines",
        format!("\r\n\r\n{SMUGGLED}").as_bytes(),
        400,
        &["request line"],
    );
}
