//! The stdio bridge (`claude-codex-relay mcp`) as a real child process: JSON-RPC lines on its
//! standard input and output, a real relay behind it, restarts of that relay in the middle, the
//! channel events it pushes, and how it ends: with every request it read answered once its
//! standard input ends, and at once when no one reads its standard output.

use crate::common::{deadline, delete, get, post_json, post_raw, Mcp, Relay, Sse, TempDir};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A running bridge: its stdin, and every line of its stdout parsed, in order.
pub struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    next_id: u64,
}

impl Bridge {
    /// Starts `claude-codex-relay mcp --url URL ARGS...`.
    pub fn start(url: &str, args: &[&str]) -> Bridge {
        let mut child = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .arg("mcp")
            .args(["--url", url])
            .args(args)
            .env_remove("CLAUDE_CODEX_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the bridge starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout holds only JSON-RPC ({e}): {line}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Bridge {
            child,
            stdin: Some(stdin),
            lines,
            next_id: 1,
        }
    }

    /// Starts a bridge and initializes it; returns it with the `initialize` result.
    pub fn connected(url: &str, args: &[&str]) -> (Bridge, Value) {
        let mut bridge = Bridge::start(url, args);
        let init = bridge.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bridge-test", "version": "1"}}),
        );
        bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        (bridge, init["result"].clone())
    }

    pub fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").expect("the bridge reads its stdin");
        stdin.flush().unwrap();
    }

    /// The next line of stdout, or None at `deadline`.
    pub fn next(&self, until: Instant) -> Option<Value> {
        let left = until.checked_duration_since(Instant::now())?;
        self.lines.recv_timeout(left).ok()
    }

    /// Sends a request and returns its response; other lines before it are kept in `skipped`.
    pub fn request_keeping(
        &mut self,
        method: &str,
        params: Value,
        skipped: &mut Vec<Value>,
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let until = deadline();
        loop {
            let line = self
                .next(until)
                .unwrap_or_else(|| panic!("no answer to {method}"));
            if line["id"] == id {
                return line;
            }
            skipped.push(line);
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let mut skipped = Vec::new();
        let answer = self.request_keeping(method, params, &mut skipped);
        assert!(skipped.is_empty(), "unexpected lines: {skipped:?}");
        answer
    }

    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))["result"].clone()
    }

    /// The next `n` channel events, failing on anything else or at `deadline`.
    pub fn events(&self, n: usize, until: Instant) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let line = self
                    .next(until)
                    .unwrap_or_else(|| panic!("only {i} of {n} channel events arrived"));
                assert_eq!(line["method"], "notifications/claude/channel", "{line}");
                line["params"].clone()
            })
            .collect()
    }

    /// Every line of stdout from here to its end; fails at `until`.
    pub fn rest(&self, until: Instant) -> Vec<Value> {
        let mut lines = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => panic!("stdout never ended: {lines:?}"),
            }
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_bridge_forwards_initialize_tools_and_a_post_fetch_round_trip() {
    let relay = Relay::memory();
    let (mut bridge, init) = Bridge::connected(&relay.base, &[]);
    assert_eq!(init["serverInfo"]["name"], "claude-codex-relay");
    assert_eq!(init["protocolVersion"], "2025-06-18");
    assert!(
        init["capabilities"].get("experimental").is_none(),
        "no channel without --listen"
    );
    let mut direct = crate::common::Mcp::connect(&relay, "2025-06-18");
    let tools = bridge.request("tools/list", json!({}));
    assert_eq!(
        tools["result"],
        direct.request("tools/list", json!({}))["result"]
    );
    let posted = bridge.call(
        "post_message",
        json!({"target": "proj-x", "sender": "claude", "text": "hello"}),
    );
    assert_eq!(posted["isError"], false, "{posted}");
    let id = posted["structuredContent"]["posted"].as_u64().unwrap();
    let fetched = bridge.call("fetch_messages", json!({"target": "proj-x"}));
    assert_eq!(fetched["structuredContent"]["messages"][0]["id"], id);
    assert_eq!(fetched["structuredContent"]["messages"][0]["text"], "hello");
    let resources = bridge.request("resources/list", json!({}));
    let uris = resources["result"]["resources"].as_array().unwrap();
    assert!(
        uris.iter().any(|r| r["uri"] == "relay://channel/proj-x"),
        "{resources}"
    );
    let bad = bridge.call("post_message", json!({"target": "proj-x"}));
    assert_eq!(
        bad["isError"], true,
        "the relay's own tool error passes through"
    );
    let unknown = bridge.request("no/such", json!({}));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    bridge.send(&json!({"not": "json-rpc"}));
    let invalid = bridge
        .next(deadline())
        .expect("an answer to a message without a method");
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");
    let stdin = bridge.stdin.as_mut().unwrap();
    stdin.write_all(b"{not json\n").unwrap();
    stdin.flush().unwrap();
    let parse_error = bridge.next(deadline()).expect("an answer to a bad line");
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
    assert!(bridge.alive());
}

#[test]
fn the_bridge_ends_when_its_stdin_ends() {
    let relay = Relay::memory();
    let (mut bridge, _) = Bridge::connected(&relay.base, &["--listen", "proj-x"]);
    drop(bridge.stdin.take());
    let until = deadline();
    while bridge.alive() {
        assert!(Instant::now() < until, "the bridge outlived its stdin");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(bridge.child.wait().unwrap().success());
}

#[test]
fn at_the_end_of_its_stdin_the_bridge_answers_every_request_it_read_then_exits() {
    let relay = Relay::memory();
    let before = relay.post("later", "codex", "before");
    let mut bridge = Bridge::start(&relay.base, &["--listen", "later", "--as", "claude"]);
    let call = |id: u64, tool: &str, arguments: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}})
    };
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        // Answered when its wait is up, with nothing.
        call(
            2,
            "fetch_messages",
            json!({"target": "quiet", "wait_seconds": 2}),
        ),
        // Answered when the message posted below, after the end of stdin, arrives.
        call(
            3,
            "fetch_messages",
            json!({"target": "later", "since_id": before, "wait_seconds": 50}),
        ),
        call(4, "list_channels", json!({})),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 6, "method": "ping"}),
    ] {
        bridge.send(&message);
    }
    drop(bridge.stdin.take());

    // Once the relay holds the waiting fetch (or the bridge is gone), its message comes.
    let until = deadline();
    while !fetch_waits_on(&relay.base, "later") && bridge.alive() {
        assert!(Instant::now() < until, "the fetch never reached the relay");
        std::thread::sleep(Duration::from_millis(2));
    }
    let after = relay.post("later", "codex", "after");

    let lines = bridge.rest(deadline());
    let answer = |id: u64| -> &Value {
        let mut answers = lines.iter().filter(|line| line["id"] == id);
        let answer = answers
            .next()
            .unwrap_or_else(|| panic!("no answer to request {id} before stdout ended: {lines:?}"));
        assert!(answers.next().is_none(), "one answer to {id}: {lines:?}");
        answer
    };
    assert_eq!(
        answer(1)["result"]["serverInfo"]["name"],
        "claude-codex-relay"
    );
    let quiet = &answer(2)["result"];
    assert_eq!(quiet["isError"], false, "{quiet}");
    assert_eq!(quiet["structuredContent"]["messages"], json!([]), "{quiet}");
    let later = &answer(3)["result"]["structuredContent"]["messages"];
    assert_eq!(later[0]["id"], after, "{later}");
    assert_eq!(later[0]["text"], "after", "{later}");
    assert_eq!(answer(4)["result"]["isError"], false);
    assert!(answer(5)["result"]["tools"].is_array());
    assert_eq!(answer(6)["result"], json!({}));
    assert!(bridge.child.wait().unwrap().success());
}

/// Whether a `fetch_messages` is waiting on `channel` at the relay at `base`.
fn fetch_waits_on(base: &str, channel: &str) -> bool {
    let listing = get(&format!("{base}/api/channels?detail=1")).json();
    listing["detail"].as_array().unwrap().iter().any(|c| {
        c["name"] == channel
            && c["listeners"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["kind"] == "fetch")
    })
}

#[test]
fn with_no_one_reading_its_stdout_the_bridge_exits_at_the_end_of_stdin_without_waiting() {
    // A relay that takes connections and never answers: a request forwarded to it stays in
    // flight for the bridge's whole request timeout.
    let (silent, mut bridge) = bridge_to_a_silent_relay();
    drop(bridge.stdout.take());
    let mut stdin = bridge.stdin.take().unwrap();
    // The ping's answer finds standard output closed (not a signal that ends the bridge).
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    )
    .unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "list_channels", "arguments": {}}});
    writeln!(stdin, "{call}").unwrap();
    stdin.flush().unwrap();
    let until = deadline();
    let _held = forwarded_to(&silent, until);
    drop(stdin);
    let status = exit_within(&mut bridge, until);
    assert!(status.success(), "{status:?}");
}

/// A relay that takes connections and never answers (accepting without blocking), and a
/// bridge forwarding to it.
fn bridge_to_a_silent_relay() -> (std::net::TcpListener, Child) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let bridge = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["mcp", "--url", &url])
        .env_remove("CLAUDE_CODEX_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bridge starts");
    (silent, bridge)
}

/// The connection a forwarded call opened to `silent`, a relay that never answers.
fn forwarded_to(silent: &std::net::TcpListener, until: Instant) -> std::net::TcpStream {
    loop {
        match silent.accept() {
            Ok((connection, _)) => return connection,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < until, "the call was never forwarded");
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// How `bridge` exited, which it must do before `until`.
fn exit_within(bridge: &mut Child, until: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = bridge.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= until {
            let _ = bridge.kill();
            panic!("the bridge waited for an answer no one can read");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_bridge_whose_stdout_was_closed_without_a_write_failing_exits_at_the_end_of_stdin() {
    // A relay that takes connections and never answers: a request forwarded to it stays in
    // flight for the bridge's whole request timeout, and nothing is written meanwhile.
    let (silent, mut bridge) = bridge_to_a_silent_relay();
    let mut stdin = bridge.stdin.take().unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "list_channels", "arguments": {}}});
    writeln!(stdin, "{call}").unwrap();
    stdin.flush().unwrap();
    let until = deadline();
    let _held = forwarded_to(&silent, until);
    // The client closes its end of stdout, then stdin: no write tells the bridge.
    drop(bridge.stdout.take());
    drop(stdin);
    let status = exit_within(&mut bridge, until);
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_bridge_pushes_others_messages_as_channel_events_with_string_meta() {
    let relay = Relay::memory();
    let before = relay.post("proj-x", "codex", "posted before the bridge started");
    let (mut bridge, init) = Bridge::connected(
        &relay.base,
        &["--listen", "proj-x,proj-y", "--as", "claude"],
    );
    assert_eq!(
        init["capabilities"]["experimental"]["claude/channel"],
        json!({})
    );
    assert!(init["capabilities"]["tools"].is_object());
    relay.wait_for_long_requests(3); // two channel listeners and the session stream
    relay.post("proj-x", "claude", "my own message is not pushed back");
    relay.post("elsewhere", "codex", "not a listened channel");
    let review = relay.post("proj-x", "codex", "Verdict: approve");
    let other = relay.post("proj-y", "gemini", "second channel");
    let events = bridge.events(2, deadline());
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["meta"]["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [review.to_string(), other.to_string()]);
    let e = events
        .iter()
        .find(|e| e["meta"]["channel"] == "proj-x")
        .unwrap();
    assert_eq!(e["meta"]["sender"], "codex");
    assert!(e["meta"]["ts"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    assert!(e["content"].as_str().unwrap().contains("Verdict: approve"));
    assert!(e["content"]
        .as_str()
        .unwrap()
        .contains(&format!("#{review} from codex")));
    assert!(ids.iter().all(|id| *id != before.to_string()));
    // The bridge still answers requests after pushing.
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn from_and_since_id_choose_which_messages_are_pushed() {
    let relay = Relay::memory();
    let first = relay.post("proj-x", "codex", "one");
    relay.post("proj-x", "human", "two");
    let third = relay.post("proj-x", "codex", "three");
    let (bridge, _) = Bridge::connected(
        &relay.base,
        &[
            "--listen",
            "proj-x",
            "--as",
            "claude",
            "--from",
            "codex",
            "--since-id",
            "0",
        ],
    );
    let ids: Vec<Value> = bridge
        .events(2, deadline())
        .iter()
        .map(|e| e["meta"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!(first.to_string()), json!(third.to_string())]);
}

#[test]
fn a_channel_named_twice_in_listen_is_listened_to_and_pushed_once() {
    let relay = Relay::memory();
    let first = relay.post("dup", "codex", "one");
    // From the start of the channel, so every listener the bridge runs pushes `first`.
    let (bridge, init) = Bridge::connected(
        &relay.base,
        &["--listen", "dup,dup, dup", "--as", "me", "--since-id", "0"],
    );
    let instructions = init["instructions"].as_str().unwrap();
    assert!(instructions.contains(" on dup arrive "), "{instructions}");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        first.to_string()
    );
    let second = relay.post("dup", "codex", "two");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        second.to_string(),
        "the next event is the next message, not the first one again"
    );
}

#[test]
fn a_thousand_posts_from_another_thread_are_a_thousand_channel_events_in_order() {
    let relay = Relay::memory();
    let (bridge, _) = Bridge::connected(&relay.base, &["--listen", "proj-x", "--as", "claude"]);
    relay.wait_for_long_requests(2);
    let url = relay.url("/api/messages");
    let poster = std::thread::spawn(move || {
        (0..1000)
            .map(|i| {
                let (status, body) = crate::common::post_json(
                    &url,
                    &json!({"target": "proj-x", "sender": "codex", "text": format!("n{i}")}),
                );
                assert_eq!(status, 201);
                body["posted"].as_u64().unwrap()
            })
            .collect::<Vec<u64>>()
    });
    let events = bridge.events(1000, deadline());
    let posted = poster.join().unwrap();
    let seen: Vec<u64> = events
        .iter()
        .map(|e| e["meta"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seen, posted, "each once, in order");
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, e)| e["content"].as_str().unwrap().ends_with(&format!("n{i}"))));
}

/// Returns once the relay at `base` lists `name` as listening on `channel`.
fn wait_for_listener(base: &str, channel: &str, name: &str) {
    let until = deadline();
    loop {
        let listing = get(&format!("{base}/api/channels?detail=1")).json();
        let listed = listing["detail"].as_array().unwrap().iter().any(|c| {
            c["name"] == channel
                && c["listeners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["name"] == name)
        });
        if listed {
            return;
        }
        assert!(Instant::now() < until, "{name} never listened on {channel}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A relay run as a child process, so a restart is the process ending (with `kill -9`) and
/// another starting on the same port and directory.
struct ChildRelay {
    child: Child,
    base: String,
}

impl ChildRelay {
    fn start(dir: &TempDir, port: u16, store: &str) -> ChildRelay {
        let mut child = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(["--port", &port.to_string(), "--store", store])
            .arg("--data-dir")
            .arg(dir.path("data"))
            .arg("--log-path")
            .arg(dir.path("log/tool.log"))
            .arg("--channel-log-path")
            .arg(dir.path("log/channel.log"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the relay starts");
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let base = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .to_string();
        ChildRelay { child, base }
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn post(&self, target: &str, sender: &str, text: &str) -> u64 {
        let (status, body) = post_json(
            &format!("{}/api/messages", self.base),
            &json!({"target": target, "sender": sender, "text": text}),
        );
        assert_eq!(status, 201, "{body}");
        body["posted"].as_u64().unwrap()
    }

    /// Returns once `name` is listed as listening on `channel`.
    fn wait_for_listener(&self, channel: &str, name: &str) {
        wait_for_listener(&self.base, channel, name);
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_bridge_survives_a_relay_restart_and_resumes_the_push_with_nothing_missed_or_doubled() {
    let dir = TempDir::new("bridge-restart");
    let relay = ChildRelay::start(&dir, 0, "file");
    let port = relay.port();
    let (mut bridge, _) = Bridge::connected(&relay.base, &["--listen", "proj-x", "--as", "claude"]);
    relay.wait_for_listener("proj-x", "claude");
    let first = relay.post("proj-x", "codex", "before the restart");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        first.to_string()
    );

    relay.kill();
    let down = bridge.call("list_channels", json!({}));
    assert_eq!(down["isError"], true, "{down}");
    assert!(down["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert!(bridge.alive());

    let relay = ChildRelay::start(&dir, port, "file");
    let later: Vec<u64> = (0..3)
        .map(|i| relay.post("proj-x", "codex", &format!("after {i}")))
        .collect();
    let ids: Vec<String> = bridge
        .events(3, deadline())
        .iter()
        .map(|e| e["meta"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, later.iter().map(u64::to_string).collect::<Vec<_>>());
    let until = deadline();
    loop {
        let mut skipped = Vec::new();
        let r = bridge.request_keeping(
            "tools/call",
            json!({"name": "list_channels", "arguments": {}}),
            &mut skipped,
        )["result"]
            .clone();
        assert!(skipped.is_empty(), "nothing pushed twice: {skipped:?}");
        if r["isError"] == false {
            assert!(r["structuredContent"]["channels"]
                .as_array()
                .unwrap()
                .contains(&json!("proj-x")));
            break;
        }
        assert!(Instant::now() < until, "tools never came back: {r}");
    }
    relay.post("proj-x", "codex", "last");
    let last = bridge.events(1, deadline());
    assert_eq!(
        last[0]["meta"]["id"],
        (later[2] + 1).to_string(),
        "no event repeated"
    );
}

#[test]
fn subscriptions_made_through_the_bridge_are_made_again_on_a_relay_that_forgot_the_session() {
    // A memory relay signs session ids with a key it forgets: after a restart the bridge's
    // session is unknown (404) and the bridge opens a new one, subscribing again.
    let dir = TempDir::new("bridge-resubscribe");
    let relay = ChildRelay::start(&dir, 0, "memory");
    let port = relay.port();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    let uri = "relay://channel/proj-x";
    assert_eq!(
        bridge.request("resources/subscribe", json!({"uri": uri}))["result"],
        json!({})
    );
    let update_after_posting = |relay: &ChildRelay, bridge: &Bridge| {
        // The stream may not be open yet: post until an update comes.
        let until = deadline();
        loop {
            relay.post("proj-x", "codex", "ping");
            if let Some(line) = bridge.next(Instant::now() + Duration::from_millis(200)) {
                return line;
            }
            assert!(Instant::now() < until, "no update");
        }
    };
    let update = update_after_posting(&relay, &bridge);
    assert_eq!(update["method"], "notifications/resources/updated");
    assert_eq!(update["params"]["uri"], uri);

    relay.kill();
    let relay = ChildRelay::start(&dir, port, "memory");
    let update = update_after_posting(&relay, &bridge);
    assert_eq!(update["method"], "notifications/resources/updated");
    assert_eq!(update["params"]["uri"], uri);
    while bridge
        .next(Instant::now() + Duration::from_millis(200))
        .is_some()
    {}
    let fetched = bridge.call("fetch_messages", json!({"target": "proj-x"}));
    assert_eq!(fetched["structuredContent"]["messages"][0]["text"], "ping");
}

/// Posts to `channel` on `relay` until `bridge` passes on an update (its stream may not be open
/// yet), then drains what else comes at once; returns the first update's URI.
fn first_update_after_posting(relay: &ChildRelay, bridge: &Bridge, channel: &str) -> String {
    let until = deadline();
    loop {
        relay.post(channel, "codex", "ping");
        if let Some(line) = bridge.next(Instant::now() + Duration::from_millis(200)) {
            assert_eq!(line["method"], "notifications/resources/updated", "{line}");
            return line["params"]["uri"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < until, "no update");
    }
}

/// The URI of the next update `bridge` passes on for a resource other than `skipped`.
fn next_update_but(bridge: &Bridge, skipped: &str) -> String {
    loop {
        let line = bridge.next(deadline()).expect("an update");
        assert_eq!(line["method"], "notifications/resources/updated", "{line}");
        let uri = line["params"]["uri"].as_str().unwrap();
        if uri != skipped {
            return uri.to_string();
        }
    }
}

#[test]
fn an_unsubscribe_through_the_bridge_in_another_spelling_lasts_past_a_relay_restart() {
    let dir = TempDir::new("bridge-unsubscribe-spelling");
    let relay = ChildRelay::start(&dir, 0, "memory");
    let port = relay.port();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    let (proj, marker, opener) = (
        "relay://channel/proj-x",
        "RELAY://Channel/marker",
        "relay://channel/opener",
    );
    for uri in [proj, marker, opener] {
        let r = bridge.request("resources/subscribe", json!({ "uri": uri }));
        assert_eq!(r["result"], json!({}), "{r}");
    }
    let r = bridge.request(
        "resources/unsubscribe",
        json!({"uri": "Relay://CHANNEL/proj%2Dx"}),
    );
    assert_eq!(r["result"], json!({}), "{r}");

    relay.kill();
    let relay = ChildRelay::start(&dir, port, "memory");
    assert_eq!(
        first_update_after_posting(&relay, &bridge, "opener"),
        opener
    );
    relay.post("proj-x", "codex", "not subscribed");
    relay.post("marker", "codex", "after it");
    assert_eq!(
        next_update_but(&bridge, opener),
        marker,
        "proj-x stays unsubscribed, and marker is subscribed again as the client spelt it"
    );
}

#[test]
fn a_subscription_the_relay_refused_is_not_made_again_after_a_relay_restart() {
    let dir = TempDir::new("bridge-refused-subscription");
    let relay = ChildRelay::start(&dir, 0, "memory");
    let port = relay.port();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    // A session holds at most 64 subscriptions: the 65th is refused.
    for n in 1..=64 {
        let uri = format!("relay://channel/c{n:02}");
        let r = bridge.request("resources/subscribe", json!({ "uri": uri }));
        assert_eq!(r["result"], json!({}), "{uri}: {r}");
    }
    let refused = bridge.request("resources/subscribe", json!({"uri": "relay://channel/a00"}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let invalid = bridge.request(
        "resources/subscribe",
        json!({"uri": "relay://channel/%E2%80%AE"}),
    );
    assert_eq!(invalid["error"]["code"], -32602, "{invalid}");

    relay.kill();
    let relay = ChildRelay::start(&dir, port, "memory");
    // Were the refused ones made again first, c64 would be refused in their place.
    assert_eq!(
        first_update_after_posting(&relay, &bridge, "c01"),
        "relay://channel/c01"
    );
    relay.post("c64", "codex", "still subscribed");
    relay.post("c02", "codex", "after it");
    let opener = "relay://channel/c01";
    assert_eq!(next_update_but(&bridge, opener), "relay://channel/c64");
    assert_eq!(next_update_but(&bridge, opener), "relay://channel/c02");
}

#[test]
fn a_bridge_started_before_its_relay_answers_initialize_and_connects_when_the_relay_comes() {
    let dir = TempDir::new("bridge-early");
    let port = {
        let relay = ChildRelay::start(&dir, 0, "memory");
        let port = relay.port();
        relay.kill();
        port
    };
    let url = format!("http://127.0.0.1:{port}");
    let (mut bridge, init) = Bridge::connected(&url, &["--listen", "proj-x", "--as", "claude"]);
    assert_eq!(init["serverInfo"]["name"], "claude-codex-relay");
    assert!(init["capabilities"]["tools"].is_object());
    assert_eq!(
        init["capabilities"]["experimental"]["claude/channel"],
        json!({})
    );
    let down = bridge.call("list_channels", json!({}));
    assert_eq!(down["isError"], true, "{down}");
    // A client that lists the tools once, at its start, gets them all: the list is fixed.
    let offline = bridge.request("tools/list", json!({}));
    assert!(
        offline["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() >= 4),
        "{offline}"
    );

    let relay = ChildRelay::start(&dir, port, "memory");
    relay.wait_for_listener("proj-x", "claude");
    let id = relay.post("proj-x", "codex", "you were there first");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        id.to_string()
    );
    let up = bridge.call("list_channels", json!({}));
    assert_eq!(up["isError"], false, "{up}");
    let online = bridge.request("tools/list", json!({}));
    assert_eq!(
        offline["result"], online["result"],
        "the relay lists the same tools"
    );
}

#[test]
fn an_initialize_the_relay_refuses_is_refused_to_the_client_with_the_relays_error() {
    let relay = Relay::memory();
    let mut bridge = Bridge::start(&relay.base, &[]);
    let refused = bridge.request("initialize", json!({"capabilities": {}}));
    assert!(refused.get("result").is_none(), "{refused}");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(
        refused["error"]["message"], "initialize needs protocolVersion, a string",
        "the relay's own words: {refused}"
    );
    // A request sent anyway is refused for the same reason, not as if the relay were away.
    let call = bridge.request(
        "tools/call",
        json!({"name": "list_channels", "arguments": {}}),
    );
    assert_eq!(call["error"]["code"], -32602, "{call}");
    let why = call["error"]["message"].as_str().unwrap();
    assert!(why.contains("initialize needs protocolVersion"), "{call}");
    // The same bridge initialized properly works.
    let init = bridge.request(
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "claude-codex-relay");
    let listed = bridge.call("list_channels", json!({}));
    assert_eq!(listed["isError"], false, "{listed}");
}

#[test]
fn a_relay_at_its_session_limit_is_down_for_now_not_refusing_and_the_bridge_gets_in_later() {
    let relay = Relay::with(|c| {
        c.store = claude_codex_relay::config::StoreKind::Memory;
        c.max_sessions_per_client = 1;
    });
    // One session of this client holds a stream: the relay has no room for another.
    let held = Mcp::connect(&relay, "2025-06-18");
    let stream = Sse::open(
        relay.addr(),
        "/mcp",
        &[
            ("Mcp-Session-Id", &held.session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
    );
    assert_eq!(stream.status, 200);
    relay.wait_for_long_requests(1);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}}});
    let full = post_raw(
        &relay.url("/mcp"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        initialize.to_string().as_bytes(),
    );
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.json()["error"]["message"].is_string(), "{}", full.body);

    // The bridge answers initialize itself, as for a relay that is down, and a call says the
    // relay cannot be used right now.
    let (mut bridge, init) = Bridge::connected(&relay.base, &[]);
    assert_eq!(init["serverInfo"]["name"], "claude-codex-relay", "{init}");
    assert!(
        init.get("instructions").is_none(),
        "answered by the bridge, not the relay: {init}"
    );
    let refused = bridge.call("list_channels", json!({}));
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(refused.to_string().contains("503"), "{refused}");

    // Once the held session ends, the relay has room, and the bridge's next call gets in.
    let ended = delete(
        &relay.url("/mcp"),
        &[
            ("Mcp-Session-Id", &held.session),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
    );
    assert!(ended.status < 300, "{}", ended.status);
    drop(stream);
    let until = deadline();
    loop {
        let listed = bridge.call("list_channels", json!({}));
        if listed["isError"] == false {
            break;
        }
        assert!(Instant::now() < until, "the bridge never got in: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_token_the_relay_refuses_is_said_to_be_refused_not_unreachable() {
    let relay = Relay::with(|c| c.auth_token = Some("sekrit".into()));
    let params = json!({"protocolVersion": "2025-06-18", "capabilities": {}});
    for (args, said) in [
        (&["--token", "wrong"][..], "refused the token"),
        (&[][..], "wants a token"),
    ] {
        let mut bridge = Bridge::start(&relay.base, args);
        let refused = bridge.request("initialize", params.clone());
        assert!(refused.get("result").is_none(), "{args:?}: {refused}");
        let why = refused["error"]["message"].as_str().unwrap();
        assert!(
            why.contains(said) && why.contains("401"),
            "{args:?}: {refused}"
        );
        assert!(
            why.contains("--token"),
            "it says how to give one: {refused}"
        );
        bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        let call = bridge.request(
            "tools/call",
            json!({"name": "list_channels", "arguments": {}}),
        );
        let why = call["error"]["message"].as_str().unwrap_or_default();
        assert!(why.contains(said), "{args:?}: {call}");
        assert!(!call.to_string().contains("unreachable"), "{call}");
    }
    let (mut bridge, init) = Bridge::connected(&relay.base, &["--token", "sekrit"]);
    assert_eq!(init["serverInfo"]["name"], "claude-codex-relay");
    assert_eq!(bridge.call("list_channels", json!({}))["isError"], false);
}

#[test]
fn a_request_whose_id_is_not_a_string_or_an_integer_is_answered_with_a_null_id() {
    let relay = Relay::memory();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    for id in [json!({"a": 1}), json!([1]), json!(1.5), json!(true)] {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
        bridge.send(&request);
        let answer = bridge.next(deadline()).expect("an answer");
        assert_eq!(answer["error"]["code"], -32600, "{request}: {answer}");
        assert_eq!(answer["id"], Value::Null, "{request}: {answer}");
    }
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn a_ping_or_initialize_with_a_bad_envelope_is_refused_as_the_relay_refuses_it() {
    let relay = Relay::memory();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    for message in [
        json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": true, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
        json!({"id": 2, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping", "params": [1]}),
        json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
        json!({"jsonrpc": "1.0", "id": 4, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
    ] {
        let direct = post_raw(
            &relay.url("/mcp"),
            &[("Content-Type", "application/json")],
            message.to_string().as_bytes(),
        );
        let expected = direct.json();
        assert!(
            expected["error"]["code"].is_i64(),
            "the relay refuses {message}"
        );
        bridge.send(&message);
        let answer = bridge.next(deadline()).expect("an answer");
        assert_eq!(answer, expected, "{message}");
    }
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn a_line_that_is_not_utf8_is_a_parse_error_and_the_bridge_reads_on() {
    let relay = Relay::memory();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    let stdin = bridge.stdin.as_mut().unwrap();
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}\n")
        .unwrap();
    stdin.flush().unwrap();
    let answer = bridge.next(deadline()).expect("an answer to the line");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(answer["id"], Value::Null, "{answer}");
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
    assert!(bridge.alive());
}

#[test]
fn a_message_without_a_string_method_is_an_invalid_request_and_a_response_is_not_answered() {
    let relay = Relay::memory();
    let (mut bridge, _) = Bridge::connected(&relay.base, &[]);
    for (message, id, why) in [
        (
            json!({"jsonrpc": "2.0", "id": 3}),
            json!(3),
            "a request needs a method",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 4, "method": 5}),
            json!(4),
            "method must be a string",
        ),
        (
            json!({"jsonrpc": "2.0", "id": "five"}),
            json!("five"),
            "a request needs a method",
        ),
        (
            json!({"jsonrpc": "2.0"}),
            Value::Null,
            "a request needs a method",
        ),
        (
            json!({"jsonrpc": "2.0", "method": null}),
            Value::Null,
            "method must be a string",
        ),
    ] {
        bridge.send(&message);
        let answer = bridge.next(deadline()).expect("an answer");
        assert_eq!(answer["error"]["code"], -32600, "{message}: {answer}");
        assert_eq!(answer["error"]["message"], why, "{message}: {answer}");
        assert_eq!(answer["id"], id, "{message}: {answer}");
    }
    // A response to a request the client was sent, and a notification, get no answer: the
    // next line is the ping's.
    bridge.send(&json!({"jsonrpc": "2.0", "id": 9, "result": {}}));
    bridge.send(&json!({"jsonrpc": "2.0", "id": 10, "error": {"code": 1, "message": "x"}}));
    bridge.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
    );
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn a_deletion_and_a_relay_restart_do_not_make_the_bridge_push_old_messages_again() {
    let dir = TempDir::new("bridge-delete-restart");
    let relay = ChildRelay::start(&dir, 0, "file");
    let port = relay.port();
    for i in 1..=3 {
        relay.post("dup", "codex", &format!("m{i}"));
    }
    let (bridge, _) = Bridge::connected(&relay.base, &["--listen", "dup", "--as", "claude"]);
    // And one asked to start beyond every id the relay has given.
    let (beyond, _) = Bridge::connected(
        &relay.base,
        &["--listen", "dup", "--as", "gemini", "--since-id", "100"],
    );
    relay.wait_for_listener("dup", "claude");
    relay.wait_for_listener("dup", "gemini");
    let m4 = relay.post("dup", "codex", "m4");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        m4.to_string()
    );
    let deleted = crate::common::delete(&format!("{}/api/messages/{m4}", relay.base), &[]);
    assert_eq!(deleted.status, 200);

    relay.kill();
    let relay = ChildRelay::start(&dir, port, "file");
    relay.wait_for_listener("dup", "claude");
    relay.wait_for_listener("dup", "gemini");
    let m5 = relay.post("dup", "codex", "m5");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        m5.to_string(),
        "the first event after the restart is the new message"
    );
    let mut last = m5;
    while last < 101 {
        last = relay.post("dup", "codex", "on to 101");
    }
    assert_eq!(beyond.events(1, deadline())[0]["meta"]["id"], "101");
}

#[test]
fn a_relay_that_comes_back_without_its_history_is_followed_from_its_first_message() {
    let dir = TempDir::new("bridge-lost-history");
    let relay = ChildRelay::start(&dir, 0, "memory");
    let port = relay.port();
    relay.post("proj-x", "codex", "one");
    relay.post("proj-x", "codex", "two");
    let (bridge, _) = Bridge::connected(&relay.base, &["--listen", "proj-x", "--as", "claude"]);
    relay.wait_for_listener("proj-x", "claude");

    // Back with an empty channel: the first post is id 1, below the bridge's place.
    relay.kill();
    let relay = ChildRelay::start(&dir, port, "memory");
    relay.wait_for_listener("proj-x", "claude");
    assert_eq!(relay.post("proj-x", "codex", "after"), 1);
    assert_eq!(bridge.events(1, deadline())[0]["meta"]["id"], "1");

    // Back with messages posted whether or not the bridge is there yet.
    relay.kill();
    let relay = ChildRelay::start(&dir, port, "memory");
    for i in 1..=3 {
        assert_eq!(relay.post("proj-x", "codex", &format!("again {i}")), i);
    }
    let ids: Vec<Value> = bridge
        .events(3, deadline())
        .iter()
        .map(|e| e["meta"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!("1"), json!("2"), json!("3")]);
}

#[test]
fn a_bridge_listening_as_a_name_that_is_not_ascii_is_listed_and_pushes() {
    let relay = Relay::memory();
    let (bridge, _) = Bridge::connected(&relay.base, &["--listen", "proj-x", "--as", "jürgen"]);
    wait_for_listener(&relay.base, "proj-x", "jürgen");
    relay.post("proj-x", "jürgen", "my own is not pushed back");
    let id = relay.post("proj-x", "codex", "hallo");
    assert_eq!(
        bridge.events(1, deadline())[0]["meta"]["id"],
        id.to_string()
    );
}

/// A bridge initialized with `version`.
fn bridge_on(url: &str, version: &str) -> Bridge {
    let mut bridge = Bridge::start(url, &[]);
    let init = bridge.request(
        "initialize",
        json!({"protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "bridge-test", "version": "1"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], version, "{init}");
    bridge.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    bridge
}

#[test]
fn a_batch_on_a_2025_03_26_bridge_is_forwarded_and_answered_with_one_array() {
    let relay = Relay::memory();
    let mut bridge = bridge_on(&relay.base, "2025-03-26");
    bridge.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "post_message",
            "arguments": {"target": "proj-x", "sender": "claude", "text": "in a batch"}}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        {"jsonrpc": "2.0", "id": "two", "method": "ping"}
    ]));
    let answers = bridge.next(deadline()).expect("an answer to the batch");
    let answers = answers.as_array().expect("one array for the batch");
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"]["isError"], false, "{answers:?}");
    assert_eq!(answers[1]["id"], "two");
    assert_eq!(answers[1]["result"], json!({}));
    let fetched = bridge.call("fetch_messages", json!({"target": "proj-x"}));
    assert_eq!(
        fetched["structuredContent"]["messages"][0]["text"],
        "in a batch"
    );
    for (batch, why) in [
        (json!([]), "an empty batch is not a valid request"),
        (
            json!([{"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}}]),
            "initialize must not be part of a batch",
        ),
    ] {
        bridge.send(&batch);
        let refused = bridge.next(deadline()).expect("an answer");
        assert_eq!(refused["error"]["code"], -32600, "{refused}");
        assert_eq!(refused["error"]["message"], why, "{refused}");
    }
}

#[test]
fn a_batch_on_a_2025_06_18_bridge_is_refused_with_one_invalid_request_error() {
    let relay = Relay::memory();
    let mut bridge = bridge_on(&relay.base, "2025-06-18");
    bridge.send(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]));
    let refused = bridge.next(deadline()).expect("an answer to the batch");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert_eq!(refused["id"], Value::Null, "{refused}");
    assert_eq!(
        refused["error"]["message"],
        "batches are only supported on 2025-03-26 sessions"
    );
    assert_eq!(bridge.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn a_batch_the_relay_cannot_take_now_is_answered_by_the_bridge_in_one_array() {
    let dir = TempDir::new("bridge-batch-down");
    let port = {
        let relay = ChildRelay::start(&dir, 0, "memory");
        let port = relay.port();
        relay.kill();
        port
    };
    let mut bridge = bridge_on(&format!("http://127.0.0.1:{port}"), "2025-03-26");
    bridge.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "list_channels", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/list"}
    ]));
    let answers = bridge.next(deadline()).expect("an answer to the batch");
    let answers = answers.as_array().expect("one array for the batch");
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["result"]["isError"], true, "{answers:?}");
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[1]["error"]["code"], -32000, "{answers:?}");
}
