//! claude-codex-relay: a message relay for coding agents. Agents and people post messages to
//! named channels and read them back over MCP (Streamable HTTP and the legacy HTTP+SSE
//! transport), a REST API, server-sent events and a web page. The layers point one way:
//! `main` → `start` (this file) → `http` → {`mcp`, `ui`} → {`store`, `presence`, `logs`,
//! `capacity`} → `journal`; `config`, `error`, `message` and `listen` are shared vocabulary,
//! and `app` is the state the HTTP layer hands to every request. `client` is the other side:
//! the `post`, `fetch`, `channels`, `watch`, `mcp` (the stdio bridge) and `setup` commands,
//! which talk to a relay over HTTP and share only `message` and `listen`.
#![forbid(unsafe_code)]

pub mod app;
pub mod capacity;
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod journal;
pub mod listen;
pub mod logs;
pub mod mcp;
pub mod message;
pub mod presence;
pub mod store;
pub mod ui;

use crate::app::App;
use crate::capacity::LongRequests;
use crate::config::{Config, StoreKind};
use crate::error::Error;
use crate::http::server::{bind, nudge, Pool};
use crate::journal::Journal;
use crate::logs::Logs;
use crate::mcp::session::Sessions;
use crate::store::{Limits, Store};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// Workers beyond the long-request cap, for ordinary requests.
const SHORT_REQUEST_WORKERS: usize = 256;

/// A relay that is serving.
pub struct Running {
    addr: SocketAddr,
    app: Arc<App>,
    server: Arc<tiny_http::Server>,
    /// A handle on the listening socket, to release the port at once on shutdown.
    listener: std::net::TcpListener,
    acceptor: Option<JoinHandle<()>>,
    nudger: Option<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    pool: Arc<Pool>,
}

/// Opens the store (replaying the journal), binds the listener and starts serving.
pub fn start(config: Config) -> Result<Running, Error> {
    let logs = Logs::open(&config)?;
    let limits = Limits {
        max_message_bytes: config.max_message_bytes,
        retention_max_messages: config.retention_max_messages,
        retention_max_age_secs: config.retention_max_age_days * 86_400.0,
    };
    let (store, key_dir) = match config.store {
        StoreKind::File => {
            let (journal, replay) = Journal::open(&config.data_dir, config.fsync)?;
            let store = Store::new(
                Some(journal),
                replay.messages,
                replay.last_id,
                &config.channels,
                limits,
            );
            (store, Some(config.data_dir.as_path()))
        }
        StoreKind::Memory => (Store::in_memory(&config.channels, limits), None),
    };
    let store = Arc::new(store);
    let sessions = Arc::new(Sessions::new(key_dir));
    let notify = Arc::clone(&sessions);
    store.on_publish(Box::new(move |m| notify.published(m)));
    let idle = std::time::Duration::from_secs(config.idle_timeout_secs);
    let listener = bind(&config.bind_address(), idle)?;
    let addr = listener.local_addr()?;
    let handle = listener.try_clone()?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(|e| {
        Error::Io(std::io::Error::other(format!(
            "cannot serve on {addr}: {e}"
        )))
    })?;
    let server = Arc::new(server);
    let pool = Arc::new(Pool::new(config.max_streams + SHORT_REQUEST_WORKERS));
    let app = Arc::new(App {
        long_requests: LongRequests::new(config.max_streams),
        config,
        store,
        sessions,
        logs,
        presence: Arc::default(),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let acceptor = {
        let (server, pool, app) = (Arc::clone(&server), Arc::clone(&pool), Arc::clone(&app));
        let requests = Arc::clone(&requests);
        thread::Builder::new()
            .name("relay-accept".into())
            .spawn(move || {
                while let Ok(request) = server.recv() {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if app.store.is_closed() {
                        http::router::refuse_closing(request);
                        break;
                    }
                    let app = Arc::clone(&app);
                    pool.run(Box::new(move || http::router::handle(&app, request)));
                }
                drain(&server);
            })?
    };
    Ok(Running {
        addr,
        app,
        server,
        listener: handle,
        acceptor: Some(acceptor),
        nudger: Some(nudge(addr, Arc::clone(&stopping), requests)?),
        stopping,
        pool,
    })
}

/// How long a stopped relay goes on answering requests that arrive on connections it had
/// already accepted, once they fall silent.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Answers 503 and closes the connection for every request still arriving on connections the
/// stopped relay had accepted (tiny_http keeps reading them), so a client with a pooled
/// connection learns at once to connect anew instead of waiting for an answer that never comes.
fn drain(server: &tiny_http::Server) {
    loop {
        match server.recv_timeout(DRAIN_GRACE) {
            Ok(Some(request)) => http::router::refuse_closing(request),
            Ok(None) => return,
            // The listener's shutdown reaches tiny_http's accept thread as an error.
            Err(_) => continue,
        }
    }
}

impl Running {
    /// The address the relay listens on (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for callers embedding the relay.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Stops accepting, ends every stream and waiting request, releases the data directory and
    /// closes the listener.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(nudger) = self.nudger.take() {
            nudger.thread().unpark();
            let _ = nudger.join();
        }
        self.app.store.close();
        self.app.sessions.end_all();
        // The acceptor wakes, then drains stray requests by itself for a moment.
        self.server.unblock();
        drop(self.acceptor.take());
        // tiny_http's own accept thread closes the listener only when it next wakes; shutting
        // the socket down takes it out of the listening state now, so the port can be reused.
        let _ = socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Both);
        self.pool.stop();
        self.app.logs.flush();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
