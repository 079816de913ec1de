//! claude-codex-relay: a message relay for coding agents. Agents and people post messages to
//! named channels and read them back over MCP (Streamable HTTP and the legacy HTTP+SSE
//! transport), a REST API, server-sent events and a web page. The layers point one way:
//! `main` → `start` (this file) → `http` → {`mcp`, `ui`} → {`store`, `page_cache` (recent
//! pages whole), `presence`, `logs`, `capacity`} → `sent_json` (a message's JSON as a reply
//! sends it: in memory, or its text from the journal file) → {`journal` (and its replay
//! `checkpoint`),
//! `cache`, `idempotency`, `log_file` (a size-rotated file the logs write to)} → {`index` (where
//! each message's line lies, shared by replay, checkpoint and store), `written_pages` (a
//! write-once file's pages let go once on disk), `retired_files` (removed files closed by a
//! thread of their own)}; `test_dir` is the unit
//! tests' scratch directory; `config`, `error`, `message`, `names` (what a channel, sender or
//! reader name may be), `json_string` (strings written into
//! JSON by hand), `listen`, `fields` (a caller's JSON fields), `agent` (what an agent's token
//! binds), `suggest` and `embedded` (the files under `assets/` compiled in compressed) are shared
//! vocabulary, `open_files` fits the connection limits to the process's
//! open-file limit at start, and `app` is the state the HTTP layer hands to every request. The
//! HTTP library itself is `vendor/tiny_http`, reached only from `http::server`.
//! `client` is the other side: the `post`, `fetch`, `channels`, `watch`, `delete`, `export`,
//! `mcp` (the stdio bridge) and `setup` commands, which talk to a relay over HTTP and share
//! only `message`, `listen`, `names`, `idempotency::check_key`, `suggest` ("did you mean", for
//! every name the binary refuses) and `mcp::tools` (the tools the bridge lists while its relay is
//! down).
//!
//! The public surface is what a program embedding the relay needs, and all that the binary,
//! the integration tests and the benchmarks use: `start` a relay from a `config::Config` (its
//! `StoreKind` and `Fsync`; `Config::load` reads it from a file, the environment and the
//! `config::Args` of a command line, `config::settings_help` describes it), hold the
//! `Running` relay (its address and `Load`; `drain`, `serve_until` with `StopSignals`, or
//! `shutdown`), `error::Error` (and `error::folder_failure` and `config::absolute`, which
//! start-up messages use to name a path), and the client commands `client::run` with its `client::Io`
//! and `client::usage`, and `written_pages::WrittenPages`, which the benchmark's ceiling uses to
//! let its files' pages go as the journal does. Every other module is private to the crate.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod agent;
mod app;
mod cache;
mod capacity;
mod checkpoint;
pub mod client;
pub mod config;
mod embedded;
pub mod error;
mod fields;
mod http;
mod idempotency;
mod index;
mod journal;
mod json_string;
mod listen;
mod log_file;
mod logs;
mod mcp;
mod message;
mod names;
mod open_files;
mod page_cache;
mod presence;
mod retired_files;
mod sent_json;
mod store;
mod suggest;
mod ui;
pub mod written_pages;

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod test_dir;

use crate::app::App;
use crate::capacity::{BodyBytes, LongRequests, Slots, LEGACY_TOOL_CALLS};
use crate::config::{Config, StoreKind};
use crate::error::Error;
use crate::http::server::{bind, listen, HttpServer};
use crate::journal::Journal;
use crate::logs::Logs;
use crate::mcp::session::{SessionLimits, Sessions};
use crate::store::{Limits, Store};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a stopping relay lets the requests in flight finish (open streams and waiting
/// fetches are ended at once).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// SIGTERM and SIGINT, caught from the moment this is made: made before the relay announces
/// itself, so that no signal can arrive while the default action would still kill it.
pub struct StopSignals(signal_hook::iterator::Signals);

impl StopSignals {
    pub fn catch() -> Result<StopSignals, Error> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        Ok(StopSignals(signal_hook::iterator::Signals::new([
            SIGTERM, SIGINT,
        ])?))
    }
}

/// What a running relay holds now, of the resources its configuration bounds: for whoever
/// embeds the relay to watch it, and to wait on it (a waiter admitted, a session gone) without
/// guessing with sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Streams and waiting fetches open (at most `max_streams`).
    pub long_requests: usize,
    /// Tool calls running on the legacy transport.
    pub legacy_tool_calls: usize,
    /// MCP sessions in memory (at most `max_sessions_per_client` per client address).
    pub sessions: usize,
    /// Channel subscriptions those sessions hold.
    pub subscriptions: usize,
    /// Bytes of room taken by large request bodies being received and handled (at most 16
    /// bodies of `max_body_bytes`).
    pub body_bytes: usize,
}

/// A relay that is serving.
pub struct Running {
    addr: SocketAddr,
    app: Arc<App>,
    http: Option<HttpServer>,
    /// A handle on the listening socket, to release the port at once on shutdown.
    listener: std::net::TcpListener,
}

/// Binds the listening address, opens the logs and the store (replaying the journal), then
/// listens and starts serving.
pub fn start(mut config: Config) -> Result<Running, Error> {
    // Bound first: a port that is taken or a host that names nothing stops start-up before a
    // folder is made or a journal read. Clients are let in (`listen`) once the store is open.
    let socket = bind(&config.bind_address())?;
    open_files::fit(&mut config, open_files::raise());
    let logs = Logs::open(&config)?;
    let limits = Limits {
        max_message_bytes: config.max_message_bytes,
        retention_max_messages: config.retention_max_messages,
        retention_max_age_secs: config.retention_max_age_days * 86_400.0,
        cache_bytes: usize::try_from(config.cache_bytes).unwrap_or(usize::MAX),
    };
    let (store, key_dir) = match config.store {
        StoreKind::File => {
            let (journal, replay) = Journal::open(&config.data_dir, config.fsync)?;
            let store = Store::new(Some(journal), replay, &config.channels, limits);
            (store, Some(config.data_dir.as_path()))
        }
        StoreKind::Memory => (Store::in_memory(&config.channels, limits), None),
    };
    let store = Arc::new(store);
    Store::expire_by_age(&store);
    let sessions = Arc::new(Sessions::new(
        key_dir,
        SessionLimits {
            forget_after: std::time::Duration::from_secs(config.session_idle_secs),
            per_client: config.max_sessions_per_client,
        },
    ));
    let notify = Arc::clone(&sessions);
    store.on_publish(Box::new(move |m| notify.published(m)));
    let notify = Arc::clone(&sessions);
    store.on_removal(Box::new(move |target| notify.channel_changed(target)));
    let logs = Arc::new(logs);
    let archive = Arc::clone(&logs);
    store.on_record(Box::new(move |batch| archive.posted(batch)));
    let listener = listen(socket)?;
    let addr = listener.local_addr()?;
    let handle = listener.try_clone()?;
    let app = Arc::new(App {
        long_requests: LongRequests::new(config.max_streams, config.max_streams_per_client),
        legacy_tool_calls: Slots::new(LEGACY_TOOL_CALLS),
        bodies: BodyBytes::new(config.max_body_bytes),
        config,
        store,
        sessions,
        logs,
        presence: Arc::default(),
        pages: page_cache::PageCache::default(),
        fetches: page_cache::PageCache::default(),
        stopping: OnceLock::new(),
        instance: instance_name(),
    });
    let http = HttpServer::start(listener, &app)?;
    Ok(Running {
        addr,
        app,
        http: Some(http),
        listener: handle,
    })
}

/// A name for this run of the relay, in hex: its start time in nanoseconds, with its process id
/// mixed into the high bits.
fn instance_name() -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}", started ^ (u64::from(std::process::id()) << 40))
}

impl Running {
    /// The address the relay listens on (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the relay holds now of the resources its configuration bounds.
    pub fn load(&self) -> Load {
        Load {
            long_requests: self.app.long_requests.open(),
            legacy_tool_calls: self.app.legacy_tool_calls.used(),
            sessions: self.app.sessions.len(),
            subscriptions: self.app.sessions.subscribed_uris(),
            body_bytes: self.app.bodies.used(),
        }
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.http.as_ref().map_or(0, HttpServer::connections)
    }

    /// Connections handling a request now (from the first byte of its head to the end of its
    /// response).
    pub fn busy_connections(&self) -> usize {
        self.http.as_ref().map_or(0, HttpServer::busy_connections)
    }

    /// Stops the relay gently: no new connections, 503 for every new request, the requests in
    /// flight (but not open streams or waiting fetches) finish for up to `grace`, then streams
    /// and waits end and the data directory is released. True when nothing was cut short.
    pub fn drain(mut self, grace: Duration) -> bool {
        self.app.begin_stopping();
        if let Some(http) = &self.http {
            http.stop_accepting();
        }
        self.close_listener();
        let finished = match &self.http {
            Some(http) => {
                http.wait_for_requests(|| self.app.long_requests.open(), Instant::now() + grace)
            }
            None => true,
        };
        self.stop();
        finished
    }

    /// Serves until one of `signals` arrives, then drains (see `drain`) with 5 seconds' grace.
    pub fn serve_until(self, mut signals: StopSignals) {
        if let Some(signal) = signals.0.forever().next() {
            log::info!("signal {signal}: stopping (in-flight requests get up to {DRAIN_GRACE:?})");
        }
        if !self.drain(DRAIN_GRACE) {
            log::warn!("some requests were still running when the relay stopped");
        }
    }

    /// Stops accepting, ends every stream and waiting request, releases the data directory and
    /// closes the listener.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Takes the listening socket out of the listening state, so the port is free at once and
    /// new connections are refused by the system.
    fn close_listener(&self) {
        let _ = socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Both);
    }

    fn stop(&mut self) {
        self.app.begin_stopping();
        self.app.store.close();
        self.app.sessions.end_all();
        // Told first, the accept loop takes the closed listener's error for the stop it is.
        if let Some(http) = &self.http {
            http.stop_accepting();
        }
        self.close_listener();
        drop(self.http.take());
        self.app.logs.flush();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
