//! The ceiling the benchmark holds the relay against: `ceiling <responses.json>` serves the
//! relay's own recorded responses (see `support/canned.rs`) on a loopback port, with the same
//! HTTP library used the same way (the patched tiny_http, `Server::serve` with the handler on
//! the connection's thread, `TCP_NODELAY` on the listener). Each request's body is read in full
//! and dropped, then the canned answer is written. It does no other work, so the relay's
//! throughput over the ceiling's is the share the relay's own work leaves. With `--keep FILE`
//! it also appends each body to FILE before answering (one write of the whole body, under the
//! file's lock, as a journal appends), and lets the file's pages go from the page cache some way
//! behind its end as the relay lets its journal's go: the least a server that keeps what it is
//! sent must add. `--keep` may be given more than once, as the relay writes a post twice (its
//! journal and its channel archive). It prints `ceiling listening on http://ADDR` first and serves
//! until it is killed.

#[path = "support/canned.rs"]
mod canned;

use claude_codex_relay::written_pages::WrittenPages;
use socket2::{Domain, Protocol, Socket, Type};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiny_http::{Header, Limits, Piece, Pieces, Request, Response, Server};

/// A canned response ready to send: parsed headers and a body shared by every answer.
struct Prepared {
    canned: canned::Canned,
    headers: Vec<Header>,
    body: Arc<[u8]>,
}

/// The relay's idle timeout, so both servers treat connections alike.
const IDLE: Duration = Duration::from_secs(30);

fn main() {
    let usage = "usage: ceiling <canned responses.json> [--keep FILE]...";
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().expect(usage));
    let mut keep = Vec::new();
    while let Some(flag) = args.next() {
        assert_eq!(flag, "--keep", "{usage}");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(args.next().expect(usage))
            .expect("open the --keep file");
        keep.push(Mutex::new(Kept {
            file,
            len: 0,
            pages: WrittenPages::default(),
        }));
    }
    let responses: Arc<Vec<Prepared>> = Arc::new(
        canned::load(&path)
            .into_iter()
            .map(|c| Prepared {
                headers: c
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Header::from_bytes(n.as_bytes(), v.as_bytes()).ok())
                    .collect(),
                body: Arc::from(c.body.as_bytes()),
                canned: c,
            })
            .collect(),
    );
    let listener = bind();
    let addr = listener.local_addr().expect("a local address");
    let limits = Limits {
        idle_timeout: Some(IDLE),
        ..Limits::default()
    };
    let _server = Server::serve(listener, limits, move |rq| answer(&responses, &keep, rq))
        .expect("serve on the listener");
    println!("ceiling listening on http://{addr}");
    std::io::stdout().flush().ok();
    loop {
        std::thread::park();
    }
}

/// A loopback listener with the relay's socket options.
fn bind() -> TcpListener {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("a socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_tcp_nodelay(true).expect("TCP_NODELAY");
    socket.bind(&addr.into()).expect("bind 127.0.0.1:0");
    socket.listen(1024).expect("listen");
    socket.into()
}

/// A canned body, sent from where it lies as the relay sends its own (`tiny_http::Pieces`).
struct Shared(Arc<[u8]>);

impl Pieces for Shared {
    fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> io::Result<()>) -> io::Result<()> {
        each(Piece::Bytes(&self.0))
    }
}

/// A file bodies are appended to, with how long it is and how much of it the page cache has
/// been told to let go of: the relay's own `WrittenPages`, as its journal uses it.
struct Kept {
    file: File,
    len: u64,
    pages: WrittenPages,
}

impl Kept {
    fn append(&mut self, body: &[u8]) {
        self.file
            .write_all(body)
            .expect("append to the --keep file");
        self.len += body.len() as u64;
        self.pages.appended(&self.file, self.len);
    }
}

/// Reads the body and drops it (or, given files to keep bodies in, appends it to each first),
/// then writes the first canned response that answers the request.
fn answer(responses: &[Prepared], keep: &[Mutex<Kept>], mut rq: Request) {
    let declared = rq.body_length().unwrap_or(0);
    if keep.is_empty() {
        let _ = std::io::copy(rq.as_reader(), &mut std::io::sink());
    } else {
        let mut body = Vec::with_capacity(declared);
        if rq.as_reader().read_to_end(&mut body).is_ok() && !body.is_empty() {
            for kept in keep {
                kept.lock().unwrap_or_else(|e| e.into_inner()).append(&body);
            }
        }
    }
    let found = responses
        .iter()
        .find(|r| r.canned.answers(rq.method().as_str(), rq.url(), declared));
    let _ = match found {
        Some(r) => {
            let mut response = Response::from_pieces(Shared(Arc::clone(&r.body)))
                .with_status_code(r.canned.status);
            for h in &r.headers {
                response.add_header(h.clone());
            }
            rq.respond(response)
        }
        None => rq.respond(Response::from_string("no canned response").with_status_code(404)),
    };
}
