//! The accept loop and the worker pool. The listener is bound here with `TCP_NODELAY` and read
//! and write timeouts, which every accepted connection inherits (tiny_http sets neither: without
//! the first every response over 1 KiB waits ~40 ms for a delayed ACK, without the others a
//! silent client holds its connection forever), and `SO_REUSEADDR`; one thread
//! receives requests and hands them to a pool of reusable workers that grows when every worker
//! is busy (streams and waiting fetches hold theirs) and shrinks when idle. A handler panic is
//! caught, logged and answered with a 500; the relay keeps serving. A nudger thread works
//! around a tiny_http flaw that can leave a new connection unserved (see `nudge`).

use crate::error::Error;
use crate::store::lock;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Workers kept alive when idle.
const MIN_WORKERS: usize = 4;
/// How long an idle worker above the minimum lingers before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(30);

/// Binds `address` (host:port) for tiny_http with the socket options the relay needs;
/// connections silent for `idle` (or not reading for as long) are closed.
pub fn bind(address: &str, idle: Duration) -> Result<TcpListener, Error> {
    let addr: SocketAddr = address
        .to_socket_addrs()
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot resolve {address}: {e}"),
            ))
        })?
        .next()
        .ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "{address} resolves to nothing"
            )))
        })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_read_timeout(Some(idle))?;
    socket.set_write_timeout(Some(idle))?;
    socket.bind(&addr.into()).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {address}: {e}"),
        ))
    })?;
    socket.listen(1024)?;
    Ok(socket.into())
}

type Job = Box<dyn FnOnce() + Send>;

/// A pool of worker threads that grows on demand up to `max` and shrinks back when idle.
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<PoolState>,
    work: Condvar,
    max: usize,
}

struct PoolState {
    jobs: VecDeque<Job>,
    idle: usize,
    workers: usize,
    stopping: bool,
}

impl Pool {
    /// A pool of at most `max` workers.
    pub fn new(max: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    idle: 0,
                    workers: 0,
                    stopping: false,
                }),
                work: Condvar::new(),
                max: max.max(MIN_WORKERS),
            }),
        }
    }

    /// Runs `job` on a worker, starting a new one when every worker is busy.
    pub fn run(&self, job: Job) {
        let mut state = lock(&self.shared.state);
        state.jobs.push_back(job);
        if state.jobs.len() > state.idle && state.workers < self.shared.max {
            state.workers += 1;
            drop(state);
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new()
                .name("relay-worker".into())
                .spawn(move || worker(shared));
            if let Err(e) = spawned {
                log::error!("cannot start a worker thread: {e}");
                lock(&self.shared.state).workers -= 1;
            }
        } else {
            drop(state);
            self.shared.work.notify_one();
        }
    }

    /// Lets every worker finish its job and exit.
    pub fn stop(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.work.notify_all();
    }

    /// Workers alive now.
    pub fn workers(&self) -> usize {
        lock(&self.shared.state).workers
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.stopping {
                    state.workers -= 1;
                    return;
                }
                state.idle += 1;
                let (next, timeout) = shared
                    .work
                    .wait_timeout(state, IDLE_EXIT)
                    .unwrap_or_else(|p| p.into_inner());
                state = next;
                state.idle -= 1;
                if timeout.timed_out() && state.jobs.is_empty() && state.workers > MIN_WORKERS {
                    state.workers -= 1;
                    return;
                }
            }
        };
        if let Err(cause) = panic::catch_unwind(AssertUnwindSafe(job)) {
            let what = cause
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| cause.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            log::error!("a request handler panicked: {what}");
        }
    }
}

/// How often the nudger connects while requests are arriving, and how many connections it
/// makes each time: each one frees at most one stranded connection.
const NUDGE_ACTIVE: (Duration, usize) = (Duration::from_millis(50), 4);
/// The same while no request has arrived since the last round.
const NUDGE_IDLE: (Duration, usize) = (Duration::from_millis(250), 1);

/// Keeps tiny_http's connection threads from stranding a connection, until `stop` is set;
/// `requests` counts the requests received, so the nudger knows when the relay is busy.
///
/// tiny_http 0.12 runs each connection on a thread of its own pool for the connection's whole
/// life, and queues a new connection instead of starting a thread when it believes one is
/// idle; a burst of connections (a browser opens six at once) can queue more than there are
/// idle threads, and the extra ones then wait until some keep-alive connection ends, up to the
/// idle timeout. An empty connection that closes at once is a cheap remedy: when every thread
/// is busy it makes the pool start a new one, which finishes the empty connection immediately
/// and then takes a stranded one from the queue.
pub fn nudge(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
) -> std::io::Result<thread::JoinHandle<()>> {
    let target = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], a.port()))
        }
        other => other,
    };
    thread::Builder::new()
        .name("relay-nudge".into())
        .spawn(move || {
            let mut seen = requests.load(Ordering::Relaxed);
            let mut round = NUDGE_IDLE;
            while !stop.load(Ordering::Acquire) {
                thread::park_timeout(round.0);
                for _ in 0..round.1 {
                    if let Ok(s) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                        drop(s);
                    }
                }
                let now = requests.load(Ordering::Relaxed);
                round = if now != seen {
                    NUDGE_ACTIVE
                } else {
                    NUDGE_IDLE
                };
                seen = now;
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_panicking_job_leaves_the_pool_serving() {
        let pool = Pool::new(4);
        for _ in 0..8 {
            pool.run(Box::new(|| panic!("a handler bug")));
        }
        let (tx, rx) = mpsc::channel();
        for i in 0..8 {
            let tx = tx.clone();
            pool.run(Box::new(move || tx.send(i).unwrap()));
        }
        let mut got: Vec<i32> = (0..8)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        pool.stop();
    }
}
