//! What the tests share: a relay started on a free port with its own temporary directory, a
//! ureq agent that returns 4xx/5xx as values, an MCP session helper, a raw HTTP exchange for
//! inputs no client library would send, and a reader of server-sent events with deadlines.

use claude_codex_relay::config::{Config, StoreKind};
use claude_codex_relay::{Load, Running};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "relay-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration on port 0 whose files all live in `dir`.
pub fn config_in(dir: &TempDir) -> Config {
    Config {
        port: 0,
        log_path: dir.path("log/claude_codex.log"),
        channel_log_path: dir.path("log/channel_messages.log"),
        data_dir: dir.path("data"),
        ..Config::default()
    }
}

/// A running relay and its directory.
pub struct Relay {
    pub running: Option<Running>,
    pub dir: TempDir,
    pub base: String,
}

impl Relay {
    /// A relay with the default configuration (journal on disk) in a fresh directory.
    pub fn start() -> Relay {
        Relay::with(|_| {})
    }

    /// A relay whose configuration `change` adjusts first.
    pub fn with(change: impl FnOnce(&mut Config)) -> Relay {
        let dir = TempDir::new("relay");
        let mut config = config_in(&dir);
        change(&mut config);
        Relay::start_in(dir, config)
    }

    /// A relay on `config`, owning `dir`.
    pub fn start_in(dir: TempDir, config: Config) -> Relay {
        let running = claude_codex_relay::start(config).expect("relay starts");
        let base = format!("http://{}", running.addr());
        Relay {
            running: Some(running),
            dir,
            base,
        }
    }

    /// A memory-only relay.
    pub fn memory() -> Relay {
        Relay::with(|c| c.store = StoreKind::Memory)
    }

    /// What the running relay holds now.
    pub fn load(&self) -> Load {
        self.running.as_ref().unwrap().load()
    }

    /// How many messages the relay holds, over every channel, as `GET /api/channels?detail=1`
    /// counts them.
    pub fn held_messages(&self) -> u64 {
        let listing = get_json(&self.url("/api/channels?detail=1"));
        listing["detail"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["messages"].as_u64().unwrap())
            .sum()
    }

    /// Stops the relay for good, leaving its files (logs written out, journal closed) to read.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().addr()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the relay and starts a new one on the same directory with `config`.
    pub fn restart(&mut self, config: Config) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
        let running = start_again(config);
        self.base = format!("http://{}", running.addr());
        self.running = Some(running);
    }

    /// Returns once `n` streams or waiting fetches are open, i.e. a waiter has been admitted
    /// (it then sees any message posted from here on, whether or not it is parked yet).
    pub fn wait_for_long_requests(&self, n: usize) {
        wait_until(&format!("{n} long requests open"), || {
            self.load().long_requests >= n
        });
    }

    /// Posts a message over REST and returns its id.
    pub fn post(&self, target: &str, sender: &str, text: &str) -> u64 {
        let (status, body) = post_json(
            &self.url("/api/messages"),
            &json!({"target": target, "sender": sender, "text": text}),
        );
        assert_eq!(status, 201, "{body}");
        body["posted"].as_u64().unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// An agent that hands back every status as a value.
/// Starts a relay on a directory a relay of this process has just let go of. Another test
/// starting a child process at that moment holds a copy of every open descriptor, the data
/// directory's lock among them, until the child runs its program: a start meeting that lock
/// is tried again until the deadline.
pub fn start_again(config: Config) -> Running {
    let deadline = deadline();
    loop {
        match claude_codex_relay::start(config.clone()) {
            Ok(running) => return running,
            Err(claude_codex_relay::error::Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("relay restarts: {e}"),
        }
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(70)))
        .build()
        .into()
}

/// A response reduced to what tests look at.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn reduce(resp: ureq::http::Response<ureq::Body>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.into_body().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Reply {
    reduce(agent().get(url).call().expect("GET"))
}

/// GETs `url`, which must answer 200 with JSON, and returns the JSON.
pub fn get_json(url: &str) -> Value {
    let r = get(url);
    assert_eq!(r.status, 200, "GET {url}: {}", r.body);
    r.json()
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut rq = agent().get(url);
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    reduce(rq.call().expect("GET"))
}

pub fn post_raw(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut rq = agent().post(url);
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    reduce(rq.send(body).expect("POST"))
}

/// POSTs JSON and returns the status and the parsed body.
pub fn post_json(url: &str, value: &Value) -> (u16, Value) {
    let r = post_raw(
        url,
        &[("Content-Type", "application/json")],
        value.to_string().as_bytes(),
    );
    let v = r.json();
    (r.status, v)
}

pub fn delete(url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut rq = agent().delete(url);
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    reduce(rq.call().expect("DELETE"))
}

/// Sends `request` as raw bytes (it should say `Connection: close`) and returns the response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// An MCP client session over Streamable HTTP.
pub struct Mcp {
    pub url: String,
    pub session: String,
    pub version: String,
    pub next_id: u64,
}

impl Mcp {
    /// Initializes at `version`, sends `notifications/initialized`, and checks both answers.
    pub fn connect(relay: &Relay, version: &str) -> Mcp {
        let url = relay.url("/mcp");
        let r = post_raw(
            &url,
            &[("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")],
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let session = r.header("mcp-session-id").expect("session id").to_string();
        assert_eq!(r.json()["result"]["protocolVersion"], version);
        let mcp = Mcp {
            url,
            session,
            version: version.to_string(),
            next_id: 1,
        };
        let n = mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert_eq!(n.status, 202);
        assert!(n.body.is_empty());
        mcp
    }

    /// POSTs one message with this session's headers.
    pub fn send(&self, message: &Value) -> Reply {
        post_raw(
            &self.url,
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", &self.session),
                ("MCP-Protocol-Version", &self.version),
            ],
            message.to_string().as_bytes(),
        )
    }

    /// Calls `method` and returns the whole JSON-RPC response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let r = self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["id"], id);
        v
    }

    /// Calls a tool and returns its result object.
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let v = self.request("tools/call", json!({"name": tool, "arguments": arguments}));
        v["result"].clone()
    }
}

/// One server-sent event.
#[derive(Debug, Default, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// A reader of an event stream over a raw connection, with deadlines.
pub struct Sse {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Sse {
    /// Opens `GET path` with `headers` and reads the response head.
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut rq = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n",
            addr.port()
        );
        for (k, v) in headers {
            rq.push_str(&format!("{k}: {v}\r\n"));
        }
        rq.push_str("\r\n");
        s.write_all(rq.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        Sse {
            reader,
            status,
            headers,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next event (comments skipped), or None if none arrives before `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Option<Event> {
        let mut event = Event::default();
        let mut has_field = false;
        let mut line = String::new();
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(_) => return None,
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if has_field {
                    return Some(event);
                }
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            let (field, value) = l
                .split_once(':')
                .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
                .unwrap_or((l, ""));
            has_field |= matches!(field, "id" | "event" | "data");
            match field {
                "id" => event.id = Some(value.to_string()),
                "event" => event.event = Some(value.to_string()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }

    /// The next event named `message`, skipping priming events with empty data.
    pub fn next_message(&mut self, deadline: Instant) -> Option<Event> {
        loop {
            let e = self.next(deadline)?;
            if !e.data.is_empty() {
                return Some(e);
            }
        }
    }
}

/// How long a test waits for something that must happen before it calls it a hang: a guard
/// against waiting forever on a loaded machine, never a measure of speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The deadline for something that must happen: `PATIENCE` from now.
pub fn deadline() -> Instant {
    Instant::now() + PATIENCE
}

/// Polls `done` (every few milliseconds, so a waiting test leaves the cores to the relay) until
/// it holds; fails naming `what` at the deadline.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = deadline();
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The relay binary running as a child process in a directory of its own, found at the
/// address it writes to its `--addr-file`; killed (SIGKILL) when dropped. Its standard output
/// and error are read all along, so a chatty relay never blocks on a full pipe.
pub struct RelayChild {
    child: std::process::Child,
    pub base: String,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl RelayChild {
    /// Starts the binary in `dir` on port 0 with `args` and waits until it listens.
    pub fn start(dir: &TempDir, args: &[&str]) -> RelayChild {
        RelayChild::try_start(dir, args, &[])
            .unwrap_or_else(|why| panic!("the relay did not start: {why}"))
    }

    /// Starts the binary with `args` and the environment variables `env` (and no
    /// `CLAUDE_CODEX_*` variables of the test's own); if it exits before it listens, returns
    /// its exit status and standard error.
    pub fn try_start(
        dir: &TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<RelayChild, String> {
        use std::process::{Command, Stdio};
        let addr_file = dir.path(&format!(
            "relay-addr-{}",
            N_CHILDREN.fetch_add(1, Ordering::Relaxed)
        ));
        let mut command = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"));
        for (key, _) in std::env::vars() {
            if key.starts_with("CLAUDE_CODEX_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .envs(env.iter().copied())
            .current_dir(&dir.0)
            .args(["--port", "0"])
            .args(args)
            .arg("--addr-file")
            .arg(&addr_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the relay binary");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = Some(drain(Box::new(child.stdout.take().unwrap())));
        let stderr = Some(drain(Box::new(child.stderr.take().unwrap())));
        let mut started = RelayChild {
            child,
            base: String::new(),
            stdout,
            stderr,
        };
        let deadline = deadline();
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                started.base = text.trim().to_string();
                return Ok(started);
            }
            if let Some(status) = started.child.try_wait().expect("poll the relay") {
                return Err(format!(
                    "exited with {status}; stderr:\n{}",
                    started.kill().1
                ));
            }
            assert!(Instant::now() < deadline, "the relay never listened");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The relay's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the relay with SIGKILL, no chance to flush anything, and returns what it wrote to
    /// standard output and standard error.
    pub fn kill(mut self) -> (String, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        (join(self.stdout.take()), join(self.stderr.take()))
    }
}

static N_CHILDREN: AtomicUsize = AtomicUsize::new(0);

impl Drop for RelayChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
