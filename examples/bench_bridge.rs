//! Push latency through the stdio bridge: `cargo run --release --example bench_bridge [-- N]`
//! (set `RELAY_BENCH_BINARY` to measure another build). Starts the release binary as a relay
//! (memory store) and again as `mcp --listen bench --as reader`, then posts N messages (default
//! 1,000) one after another over a keep-alive connection, timing each from just before the
//! `POST` to the moment its `notifications/claude/channel` line is read from the bridge's
//! standard output. Prints p50, p90, p99 and the maximum.

#[path = "support/relay_binary.rs"]
mod relay_binary;
#[path = "support/relay_process.rs"]
mod relay_process;
use relay_binary::binary;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let binary = binary();
    let dir = std::env::temp_dir().join(format!("relay-bench-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let (mut relay, addr) = relay_process::spawn(&binary, &dir, &["--store", "memory"]);
    let base = format!("http://{addr}");

    let mut bridge = Command::new(&binary)
        .args(["mcp", "--url", &base, "--listen", "bench", "--as", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bridge starts");
    let mut stdin = bridge.stdin.take().unwrap();
    let (tx, lines) = mpsc::channel::<(Instant, Value)>();
    let stdout = bridge.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let at = Instant::now();
            if tx.send((at, serde_json::from_str(&line).unwrap())).is_err() {
                return;
            }
        }
    });
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ] {
        writeln!(stdin, "{message}").unwrap();
    }
    stdin.flush().unwrap();
    let (_, init) = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("initialize answered");
    assert!(init["result"]["capabilities"]["experimental"]["claude/channel"].is_object());

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // Wait until the bridge's listener is parked on the channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let detail: Value = agent
            .get(format!("{base}/api/channels?detail=1"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let parked = detail["detail"].as_array().into_iter().flatten().any(|c| {
            c["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|l| l["name"] == "reader")
        });
        if parked {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge never listened");
        std::thread::yield_now();
    }

    let warmup = 50;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let body = json!({"target": "bench", "sender": "codex", "text": format!("message {i}")});
        let sent = Instant::now();
        let mut response = agent
            .post(format!("{base}/api/messages"))
            .send_json(&body)
            .unwrap();
        let mut answer = String::new();
        response
            .body_mut()
            .as_reader()
            .read_to_string(&mut answer)
            .unwrap();
        let id = serde_json::from_str::<Value>(&answer).unwrap()["posted"].to_string();
        let (at, event) = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the channel event arrives");
        assert_eq!(event["method"], "notifications/claude/channel");
        assert_eq!(event["params"]["meta"]["id"], id.as_str(), "in order");
        if i >= warmup {
            latencies.push(at - sent);
        }
    }
    latencies.sort();
    println!(
        "post -> notifications/claude/channel on the bridge's stdout, {n} sequential posts: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().unwrap().as_secs_f64() * 1000.0
    );
    let _ = bridge.kill();
    let _ = bridge.wait();
    let _ = relay.kill();
    let _ = relay.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
