//! The ceiling the benchmark holds the relay against: `ceiling <responses.json>` serves the
//! relay's own recorded responses (see `support/canned.rs`) on a loopback port, with the same
//! HTTP library used the same way (the patched tiny_http, `Server::serve` with the handler on
//! the connection's thread, `TCP_NODELAY` on the listener). Each request's body is read in full
//! and dropped, then the canned answer is written. It does no other work, so the relay's
//! throughput over the ceiling's is the share the relay's own work leaves. With `--keep FILE`
//! it also appends each body to FILE before answering (one write of the whole body, under a lock,
//! as a journal appends): the least a server that keeps what it is sent must add. It prints
//! `ceiling listening on http://ADDR` first and serves until it is killed.

#[path = "support/canned.rs"]
mod canned;

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
    let usage = "usage: ceiling <canned responses.json> [--keep FILE]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, keep) = match &args[..] {
        [path] => (PathBuf::from(path), None),
        [path, flag, file] if flag == "--keep" => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .expect("open the --keep file");
            (PathBuf::from(path), Some(Mutex::new(file)))
        }
        _ => panic!("{usage}"),
    };
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
    let _server = Server::serve(listener, limits, move |rq| {
        answer(&responses, keep.as_ref(), rq)
    })
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

/// Reads the body and drops it (or, given a file to keep bodies in, appends it there first),
/// then writes the first canned response that answers the request.
fn answer(responses: &[Prepared], keep: Option<&Mutex<File>>, mut rq: Request) {
    let declared = rq.body_length().unwrap_or(0);
    match keep {
        None => {
            let _ = std::io::copy(rq.as_reader(), &mut std::io::sink());
        }
        Some(file) => {
            let mut body = Vec::with_capacity(declared);
            if rq.as_reader().read_to_end(&mut body).is_ok() && !body.is_empty() {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                file.write_all(&body).expect("append to the --keep file");
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
