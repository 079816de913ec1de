//! PATCH(accept-never-dies): the accept loop outlives running out of descriptors. This file is a
//! test binary (a process) of its own because it lowers the process's open-file limit.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;
use tiny_http::{Limits, Response, Server};

fn get(client: &mut TcpStream) -> String {
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        client,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    answer
}

/// Reports each failed accept the server logs.
struct AcceptFailures(Mutex<Sender<()>>);

impl log::Log for AcceptFailures {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.args().to_string().contains("cannot accept") {
            let _ = self.0.lock().unwrap().send(());
        }
    }
    fn flush(&self) {}
}

#[test]
fn accept_resumes_once_descriptors_free_up() {
    let pid = std::process::id().to_string();
    let lowered = Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=256:"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(lowered.success());

    let (failed, accept_failed) = channel();
    let logger: &'static AcceptFailures = Box::leak(Box::new(AcceptFailures(Mutex::new(failed))));
    log::set_logger(logger).unwrap();
    log::set_max_level(log::LevelFilter::Error);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::serve(listener, Limits::default(), |rq| {
        let _ = rq.respond(Response::from_string("served"));
    })
    .unwrap();

    // Take every descriptor left, then give one back for the client's socket: the server's
    // accept now fails with EMFILE while the kernel completes the client's connection.
    let mut hog = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        hog.push(f);
    }
    assert!(!hog.is_empty());
    hog.pop();
    let mut client = TcpStream::connect(addr).unwrap();
    let waiting = thread::spawn(move || get(&mut client));
    accept_failed
        .recv_timeout(Duration::from_secs(20))
        .expect("the accept loop reports EMFILE");
    drop(hog);
    let answer = waiting.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", answer);
    assert!(answer.ends_with("served"));

    // And it goes on serving.
    let mut again = TcpStream::connect(addr).unwrap();
    assert!(get(&mut again).ends_with("served"));
    drop(server);
}
