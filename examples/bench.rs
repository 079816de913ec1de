//! The relay's benchmark: `cargo run --release --example bench [-- --quick]` (set
//! `RELAY_BENCH_BINARY` to measure another build). It builds and starts the release binary as a
//! child process (so its memory and start-up are the relay's alone), drives it over keep-alive
//! connections with a minimal HTTP/1.1 client, prints a table and writes the figures to
//! `target/bench.json`. First the relay is held against its ceilings: the `ceiling` example
//! (the same HTTP library serving the relay's own recorded responses) and nginx where installed,
//! loaded in alternating rounds, each figure printed with the ratio and its goal. Stores of 1k
//! to 10M messages are made by writing the journal directly, which also times start-up with a
//! full journal. Also measured: whether 100,000 idle MCP sessions slow posts down, and what they
//! and 100,000 waits on channels that do not exist cost in memory, and the memory held after
//! 744 posts of 1 MiB. `-- --ceiling` runs only the ceiling section (`target/bench-ceiling.json`);
//! `-- --memory` only what grows with history: start-up, RSS and reads at 1k, 100k, 1M and 10M
//! stored (and reads at 1M against 1k in alternating rounds), and the 1 MiB posts.

#[path = "support/canned.rs"]
mod canned;
#[path = "support/ceilings.rs"]
mod ceilings;
#[path = "support/client.rs"]
mod client;
#[path = "support/relay_binary.rs"]
mod relay_binary;
#[path = "support/relay_process.rs"]
mod relay_process;
use canned::Canned;
use ceilings::{cpu_seconds, start_ceiling, start_nginx, Ceiling};
use client::{load, percentile_ms, request_bytes, spread, Conn};
use relay_binary::binary;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// The relay as a child process.
struct Relay {
    child: Child,
    addr: SocketAddr,
    started_in: Duration,
}

impl Relay {
    fn start(binary: &Path, dir: &Path, extra: &[&str]) -> Relay {
        let begun = Instant::now();
        let (child, addr) = relay_process::spawn(binary, dir, extra);
        let mut conn = Conn::open(addr);
        while conn.call("GET", "/healthz", "", "").0 != 200 {}
        Relay {
            child,
            addr,
            started_in: begun.elapsed(),
        }
    }

    /// Stops the relay the way an operator does (SIGTERM) and waits for it to exit; says how
    /// long that took (it writes the replay checkpoint on the way out).
    fn stop(&mut self) -> Duration {
        let begun = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().expect("wait for the relay");
        begun.elapsed()
    }

    /// Resident memory of the relay in MiB, from /proc.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a journal of `n` messages, a quarter of them on `proj-x`, with ~200-byte texts.
fn write_journal(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.join("data/messages.jsonl")).unwrap());
    let channels = ["proj-x", "codex", "claude", "ops"];
    let text = "x".repeat(180);
    for id in 1..=n {
        let m = json!({"id": id, "ts": 1.7e9 + id as f64, "target": channels[id % 4], "sender": "bench", "text": format!("{id} {text}")});
        writeln!(out, "{m}").unwrap();
    }
    out.flush().unwrap();
}

fn fresh_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens an MCP session on `conn` and returns its id (read from the response head by hand).
fn mcp_session(conn: &mut Conn) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}).to_string();
    let rq = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{init}",
        conn.host,
        init.len()
    );
    conn.reader.get_mut().write_all(rq.as_bytes()).unwrap();
    let mut line = String::new();
    let mut session = String::new();
    let mut length = 0;
    loop {
        line.clear();
        conn.reader.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("mcp-session-id:") {
            session = v.trim().to_string();
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    conn.reader.read_exact(&mut body).unwrap();
    assert!(!session.is_empty(), "initialize gave no session id");
    session
}

fn post_body(i: usize) -> String {
    json!({"target": "bench", "sender": "bench", "text": format!("message {i} {}", "y".repeat(100))}).to_string()
}

/// Threads and open descriptors of the relay, from /proc.
fn threads_and_fds(relay: &Relay) -> (usize, usize) {
    let pid = relay.child.id();
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

/// `/healthz` on a new connection each time, `n` times: (p50 ms, p99 ms, failures).
fn healthz_latency(addr: SocketAddr, n: usize) -> (f64, f64, usize) {
    let mut latencies = Vec::new();
    let mut failures = 0;
    for _ in 0..n {
        let begun = Instant::now();
        let ok = (|| -> std::io::Result<bool> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer.starts_with("HTTP/1.1 200"))
        })();
        if ok.unwrap_or(false) {
            latencies.push(begun.elapsed());
        } else {
            failures += 1;
        }
    }
    if latencies.is_empty() {
        return (f64::NAN, f64::NAN, failures);
    }
    (
        percentile_ms(&mut latencies, 0.5),
        percentile_ms(&mut latencies, 0.99),
        failures,
    )
}

/// One attack: `start` begins it (and returns what keeps it going), the relay's memory,
/// threads and descriptors are read after `settle`, with `/healthz` latency meanwhile.
fn attack<T>(
    binary: &Path,
    name: &str,
    settle: Duration,
    prepare: impl FnOnce(&Relay),
    start: impl FnOnce(SocketAddr) -> T,
) -> Value {
    let dir = fresh_dir(&format!("abuse-{name}"));
    let relay = Relay::start(binary, &dir, &["--store", "memory", "--fsync", "never"]);
    prepare(&relay);
    let before = relay.rss_mib();
    let held = start(relay.addr);
    thread::sleep(settle);
    let alive = relay_alive(&relay);
    let (p50, p99, failures) = if alive {
        healthz_latency(relay.addr, 50)
    } else {
        (f64::NAN, f64::NAN, 50)
    };
    let rss = relay.rss_mib();
    let (threads, fds) = threads_and_fds(&relay);
    drop(held);
    let alive = alive && relay_alive(&relay);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
    json!({"rss_before_mib": before, "rss_mib": rss, "threads": threads, "fds": fds,
           "healthz_p50_ms": p50, "healthz_p99_ms": p99, "healthz_failures": failures,
           "alive": alive})
}

fn relay_alive(relay: &Relay) -> bool {
    std::fs::metadata(format!("/proc/{}/status", relay.child.id())).is_ok()
        && std::fs::read_to_string(format!("/proc/{}/status", relay.child.id()))
            .map(|s| !s.contains("State:\tZ"))
            .unwrap_or(false)
}

/// A thread that runs `work` on `addr` until the returned flag is dropped.
struct Attackers {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Drop for Attackers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn attackers(n: usize, addr: SocketAddr, work: fn(SocketAddr, &AtomicBool)) -> Attackers {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..n)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || work(addr, &stop))
        })
        .collect();
    Attackers { stop, threads }
}

/// Writes `chunk` again and again until stopped or refused.
fn flood(addr: SocketAddr, stop: &AtomicBool, first: &[u8], chunk: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    if s.write_all(first).is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match s.write(chunk) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// The abuse section: what hostile clients cost the relay, and whether `/healthz` still answers.
fn abuse_section(binary: &Path, quick: bool, row: &mut dyn FnMut(String, String, &str, Value)) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let settle = Duration::from_secs(if quick { 2 } else { 5 });
    let mut report = |what: &str, key: &str, v: Value| {
        let figures = if v["alive"] == json!(false) {
            "THE RELAY DIED".to_string()
        } else {
            format!(
                "RSS {:.0} -> {:.0} MiB, {} threads, {} fds; /healthz p50 {:.2} ms p99 {:.2} ms, {} failed",
                v["rss_before_mib"].as_f64().unwrap_or(f64::NAN),
                v["rss_mib"].as_f64().unwrap_or(f64::NAN),
                v["threads"],
                v["fds"],
                v["healthz_p50_ms"].as_f64().unwrap_or(f64::NAN),
                v["healthz_p99_ms"].as_f64().unwrap_or(f64::NAN),
                v["healthz_failures"]
            )
        };
        row(format!("abuse: {what}"), figures, key, v);
    };

    let v = attack(
        binary,
        "idle",
        settle,
        |_| {},
        |addr| {
            (0..5000)
                .filter_map(|_| TcpStream::connect(addr).ok())
                .collect::<Vec<_>>()
        },
    );
    report("5,000 idle sockets", "abuse_idle_5000", v);

    let v = attack(
        binary,
        "headers",
        settle,
        |_| {},
        |addr| {
            attackers(50, addr, |addr, stop| {
                flood(
                    addr,
                    stop,
                    b"GET /healthz HTTP/1.1\r\nX-Endless: ",
                    &[b'a'; 16 * 1024],
                )
            })
        },
    );
    report(
        "50 endless-header connections",
        "abuse_endless_headers_50",
        v,
    );

    let v = attack(
        binary,
        "pipeline",
        settle,
        |_| {},
        |addr| {
            attackers(1, addr, |addr, stop| {
                let one = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(1000);
                flood(addr, stop, b"", &one)
            })
        },
    );
    report(
        "1 connection pipelining without reading",
        "abuse_pipelining_1",
        v,
    );

    let big_text = "b".repeat(1_000_000);
    let pages = if quick { 50 } else { 100 };
    let fill = |relay: &Relay| {
        let mut c = Conn::open(relay.addr);
        let body = json!({"target": "big", "sender": "s", "text": big_text}).to_string();
        for _ in 0..pages {
            assert_eq!(c.call("POST", "/api/messages", "", &body).0, 201);
        }
    };
    let v = attack(binary, "readers", settle, fill, |addr| {
        (0..12)
            .filter_map(|_| {
                let mut s = TcpStream::connect(addr).ok()?;
                s.write_all(
                    b"GET /api/messages?target=big&limit=500 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                )
                .ok()?;
                Some(s)
            })
            .collect::<Vec<_>>()
    });
    report(
        &format!("12 slow readers of a {pages} x 1 MB REST page"),
        "abuse_slow_rest_readers_12",
        v,
    );
    let v = attack(binary, "mcp-readers", settle, fill, |addr| {
        (0..2)
            .filter_map(|_| {
                let mut c = Conn::open(addr);
                let session = mcp_session(&mut c);
                let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "fetch_messages", "arguments": {"target": "big", "limit": 200}}}).to_string();
                let rq = format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\nContent-Length: {}\r\n\r\n{call}", call.len());
                c.reader.get_mut().write_all(rq.as_bytes()).ok()?;
                Some(c)
            })
            .collect::<Vec<_>>()
    });
    report(
        &format!("2 slow MCP readers of the same {pages} x 1 MB channel"),
        "abuse_slow_mcp_readers_2",
        v,
    );
}

/// A row of the table: its name, the value shown, the JSON key and the value kept.
type Row<'a> = dyn FnMut(String, String, &str, Value) + 'a;

/// Start-up, memory and reads against stores of `sizes` messages, made by writing the journal.
fn stores_section(binary: &Path, sizes: &[usize], run: Duration, row: &mut Row) {
    let mut get_c16 = Vec::new();
    for &n in sizes {
        let dir = fresh_dir(&format!("store{n}"));
        write_journal(&dir, n);
        let relay = Relay::start(binary, &dir, &["--fsync", "never"]);
        row(
            format!("start-up with {n} messages (journal replay)"),
            format!("{:.1} ms", relay.started_in.as_secs_f64() * 1000.0),
            &format!("startup_{n}_ms"),
            json!(relay.started_in.as_secs_f64() * 1000.0),
        );
        let rss = relay.rss_mib();
        let journal = std::fs::metadata(dir.join("data/messages.jsonl"))
            .map(|m| m.len() as f64 / (1024.0 * 1024.0))
            .unwrap_or(f64::NAN);
        row(
            format!("RSS with {n} messages"),
            format!(
                "{rss:.1} MiB  (journal {journal:.1} MiB: {:.2}x the data)",
                rss / journal
            ),
            &format!("rss_{n}_mib"),
            json!(rss),
        );
        row(
            format!("journal with {n} messages"),
            format!("{journal:.1} MiB"),
            &format!("journal_{n}_mib"),
            json!(journal),
        );
        for c in [1usize, 16, 64] {
            let mut l = load(relay.addr, c, run, |conn, _| {
                let (status, _) = conn.call("GET", "/api/messages?target=proj-x&limit=50", "", "");
                assert_eq!(status, 200);
            });
            let (rate, p50, p99) = (l.rate(), l.percentile(0.5), l.percentile(0.99));
            if c == 16 {
                get_c16.push(rate);
            }
            row(
                format!("GET /api/messages limit=50, {n} stored, c={c}"),
                format!("{rate:>9.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms"),
                &format!("get_{n}_c{c}"),
                json!({"rps": rate, "p50_ms": p50, "p99_ms": p99}),
            );
        }
        let mut relay = relay;
        let stopped_in = relay.stop();
        row(
            format!("shutdown with {n} messages (writes the replay checkpoint)"),
            format!("{:.1} ms", stopped_in.as_secs_f64() * 1000.0),
            &format!("shutdown_{n}_ms"),
            json!(stopped_in.as_secs_f64() * 1000.0),
        );
        let relay = Relay::start(binary, &dir, &["--fsync", "never"]);
        row(
            format!("start-up with {n} messages (from the checkpoint)"),
            format!("{:.1} ms", relay.started_in.as_secs_f64() * 1000.0),
            &format!("startup_checkpoint_{n}_ms"),
            json!(relay.started_in.as_secs_f64() * 1000.0),
        );
        drop(relay);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let (Some(first), Some(last)) = (get_c16.first(), get_c16.last()) {
        row(
            "GET c=16: largest store vs 1k (ratio)".into(),
            format!("{:.2}x", first / last),
            "get_c16_ratio",
            json!(first / last),
        );
    }
    if let (Some(first), Some(last)) = (get_c16.first(), get_c16.last()) {
        row(
            "GET c=16: largest store's rate / 1k's (ratio)".into(),
            format!("{:.2}x", last / first),
            "get_c16_largest_over_1k",
            json!(last / first),
        );
    }
}

/// One side of a paired comparison: a build and the messages its store holds.
struct Side<'a> {
    label: String,
    binary: &'a Path,
    stored: usize,
}

/// GET on side `b` against side `a`, paired: both relays run at once and are loaded in
/// alternating one-second rounds, so what other processes do to the machine hits both alike;
/// the median round of each counts.
fn paired_get_section(a: Side, b: Side, key: &str, rounds: usize, row: &mut Row) {
    let dirs = [fresh_dir("paired-a"), fresh_dir("paired-b")];
    write_journal(&dirs[0], a.stored);
    write_journal(&dirs[1], b.stored);
    let relays = [
        Relay::start(a.binary, &dirs[0], &["--fsync", "never"]),
        Relay::start(b.binary, &dirs[1], &["--fsync", "never"]),
    ];
    for c in [1usize, 16] {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (relay, rates) in relays.iter().zip(rates.iter_mut()) {
                let l = load(relay.addr, c, Duration::from_secs(1), |conn, _| {
                    let (status, _) =
                        conn.call("GET", "/api/messages?target=proj-x&limit=50", "", "");
                    assert_eq!(status, 200);
                });
                rates.push(l.rate());
            }
        }
        let [a_rate, b_rate] = rates.map(|mut r| {
            r.sort_by(|a, b| a.total_cmp(b));
            r[r.len() / 2]
        });
        row(
            format!("GET c={c} paired: {} / {}", b.label, a.label),
            format!(
                "{:.2}x  ({b_rate:.0} / {a_rate:.0} req/s, median of {rounds} rounds)",
                b_rate / a_rate
            ),
            &format!("get_paired_c{c}_{key}"),
            json!({"ratio": b_rate / a_rate, "b_rps": b_rate, "a_rps": a_rate}),
        );
    }
    drop(relays);
    for dir in dirs {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// One figure of the ceiling section: the same requests, sent to the relay and to each ceiling.
struct Figure {
    name: String,
    key: &'static str,
    concurrency: usize,
    /// Prepared requests, taken in turn.
    requests: Vec<Vec<u8>>,
    status: u16,
    /// MiB a request uploads, when the figure is a rate in MiB/s rather than requests/s.
    mib_per_request: Option<f64>,
    /// The least relay/ceiling throughput the relay aims at.
    goal: f64,
    /// The most relay/ceiling CPU per request it aims at, where that is a goal too.
    cpu_goal: Option<f64>,
}

impl Figure {
    /// Whether the figure's requests post messages (and so send bodies to keep).
    fn posts(&self) -> bool {
        self.requests
            .iter()
            .all(|r| r.starts_with(b"POST /api/messages "))
    }
}

/// One server loaded in the ceiling section: the relay or a ceiling.
struct Loaded {
    label: &'static str,
    addr: SocketAddr,
    pids: Vec<u32>,
    /// Loaded only by the figures that post (`ceiling-file`, which differs from `ceiling` only
    /// in what it does with a body), and held to no goal.
    posts_only: bool,
}

/// What one server did in one round.
struct Round {
    rate: f64,
    requests: usize,
    cpu_seconds: f64,
}

/// Runs `figure` on `server` for `duration`, measuring its CPU time.
fn round(server: &Loaded, figure: &Figure, duration: Duration) -> Round {
    let requests = Arc::new(figure.requests.clone());
    let status = figure.status;
    let before = cpu_seconds(&server.pids);
    let l = load(server.addr, figure.concurrency, duration, move |conn, i| {
        let got = conn.exchange(&requests[i % requests.len()]);
        assert_eq!(got, status, "{}", String::from_utf8_lossy(&conn.body));
    });
    Round {
        rate: l.rate(),
        requests: l.requests,
        cpu_seconds: cpu_seconds(&server.pids) - before,
    }
}

/// The median over rounds of `a`'s rate over `b`'s in the same round.
fn round_ratio(a: &[Round], b: &[Round]) -> f64 {
    median(a.iter().zip(b).map(|(a, b)| a.rate / b.rate).collect())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The relay against its ceilings. The relay is asked once for each response a figure needs;
/// the `ceiling` example (and nginx, where installed) then serve those bytes, so the ratios
/// measure the relay's own work. The posting figures are also held, with no goal, against
/// `ceiling-file`, which appends each body to two files (as the relay writes a post to its
/// journal and its channel archive) and lets their pages go as the relay does: what keeping
/// alone costs on this machine's page cache and disk. Rounds alternate relay, ceiling, nginx (,
/// ceiling-file), so what other processes do to the machine hits all alike; each side's median
/// round and the median of the per-round ratios count, and CPU per request is each side's CPU
/// time over its requests.
/// `RELAY_BENCH_PERF=DIR` also records `perf record -g` of the relay and the ceiling under each
/// c=16 load into DIR.
fn ceiling_section(binary: &Path, quick: bool, row: &mut Row) {
    let (rounds, duration) = if quick {
        (3, Duration::from_millis(500))
    } else {
        (9, Duration::from_secs(1))
    };
    let dir = fresh_dir("ceiling");
    write_journal(&dir, 1_000);
    let relay = Relay::start(binary, &dir, &["--fsync", "never"]);
    let mut conn = Conn::open(relay.addr);
    for i in 0..50 {
        let body = json!({"target": "mcp", "sender": "bench", "text": format!("message {i} {}", "y".repeat(100))});
        assert_eq!(
            conn.call("POST", "/api/messages", "", &body.to_string()).0,
            201
        );
    }
    let mib = "x".repeat(1024 * 1024);
    let big = json!({"target": "big", "sender": "bench", "text": mib}).to_string();
    let big_ids: Vec<u64> = (0..32)
        .map(|_| {
            let (status, body) = conn.call("POST", "/api/messages", "", &big);
            assert_eq!(status, 201, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()["posted"]
                .as_u64()
                .expect("the id posted")
        })
        .collect();
    let session = mcp_session(&mut conn);
    let mcp_headers = format!("Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n");
    let mcp_call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fetch_messages", "arguments": {"target": "mcp", "since_id": 0, "limit": 50}}}).to_string();
    let upload = json!({"target": "upload", "sender": "bench", "text": mib}).to_string();
    // About 9 KB, the page the figures the relay aims at were first measured with.
    let page = "/api/messages?target=proj-x&limit=35";
    let small_post = post_body(0);
    let read_big = |id: u64| format!("/api/messages?target=big&since_id={}&limit=1", id - 1);

    // The relay's own answers, most specific first.
    let read_first_big = read_big(big_ids[0]);
    // (method, target, prefix it stands for, headers, body), most specific first.
    let exchanges = [
        (
            "GET",
            &read_first_big[..],
            "/api/messages?target=big",
            "",
            "",
        ),
        ("GET", page, "/api/messages?target=proj-x", "", ""),
        ("POST", "/mcp", "/mcp", &mcp_headers[..], &mcp_call[..]),
        ("POST", "/api/messages", "/api/messages", "", &upload[..]),
        (
            "POST",
            "/api/messages",
            "/api/messages",
            "",
            &small_post[..],
        ),
    ];
    let canned: Vec<Canned> = exchanges
        .iter()
        .map(|&(method, target, prefix, headers, body)| {
            let answer = conn.call_full(method, target, headers, body);
            Canned {
                method: method.into(),
                target_prefix: prefix.into(),
                min_body: if body.len() >= 1_000_000 {
                    1_000_000
                } else {
                    0
                },
                status: answer.status,
                headers: answer
                    .headers
                    .into_iter()
                    .filter(|(name, _)| canned::kept_header(name))
                    .collect(),
                body: String::from_utf8(answer.body).expect("a UTF-8 body"),
            }
        })
        .collect();
    drop(conn);
    let page_kb = canned[1].body.len() as f64 / 1000.0;
    let mcp_kb = canned[2].body.len() as f64 / 1000.0;
    let rq = |method: &str, target: &str, headers: &str, body: &str| {
        request_bytes("127.0.0.1", method, target, headers, body)
    };
    let figure = |name: String, key, concurrency, requests, status, goal, cpu_goal| Figure {
        name,
        key,
        concurrency,
        requests,
        status,
        mib_per_request: None,
        goal,
        cpu_goal,
    };
    let figures = [
        figure(
            format!("GET {page_kb:.1} KB page, c=1"),
            "get_page_c1",
            1,
            vec![rq("GET", page, "", "")],
            200,
            0.95,
            Some(1.5),
        ),
        figure(
            format!("GET {page_kb:.1} KB page, c=16"),
            "get_page_c16",
            16,
            vec![rq("GET", page, "", "")],
            200,
            0.8,
            Some(1.5),
        ),
        figure(
            format!("MCP fetch_messages ({mcp_kb:.1} KB), sequential"),
            "mcp_fetch_c1",
            1,
            vec![rq("POST", "/mcp", &mcp_headers, &mcp_call)],
            200,
            0.9,
            None,
        ),
        figure(
            "POST fsync=never, c=16".into(),
            "post_c16",
            16,
            vec![rq("POST", "/api/messages", "", &small_post)],
            201,
            0.5,
            None,
        ),
        Figure {
            mib_per_request: Some(upload.len() as f64 / (1024.0 * 1024.0)),
            ..figure(
                "POST 1 MiB messages, c=16".into(),
                "post_1mib_c16",
                16,
                vec![rq("POST", "/api/messages", "", &upload)],
                201,
                0.3,
                None,
            )
        },
        figure(
            "GET one 1 MiB message, c=16".into(),
            "get_1mib_c16",
            16,
            big_ids
                .iter()
                .map(|id| rq("GET", &read_big(*id), "", ""))
                .collect(),
            200,
            0.7,
            None,
        ),
    ];

    let ceiling_dir = dir.join("ceiling");
    std::fs::create_dir_all(&ceiling_dir).unwrap();
    let mut ceilings: Vec<Ceiling> = vec![start_ceiling(&ceiling_dir, &canned, false)];
    match start_nginx(&ceiling_dir, &canned) {
        Some(nginx) => ceilings.push(nginx),
        None => row(
            "nginx:".into(),
            "not installed".into(),
            "nginx",
            json!("not installed"),
        ),
    }
    let file_dir = ceiling_dir.join("file");
    std::fs::create_dir_all(&file_dir).unwrap();
    ceilings.push(start_ceiling(&file_dir, &canned, true));
    let servers: Vec<Loaded> = std::iter::once(Loaded {
        label: "relay",
        addr: relay.addr,
        pids: vec![relay.child.id()],
        posts_only: false,
    })
    .chain(ceilings.iter().map(|c| Loaded {
        label: c.label,
        addr: c.addr,
        pids: c.pids.clone(),
        posts_only: c.label == "ceiling-file",
    }))
    .collect();
    // Each ceiling answers each request with the relay's status, Content-Type and body bytes.
    for ceiling in &ceilings {
        let mut conn = Conn::open(ceiling.addr);
        for (&(method, target, _, headers, body), recorded) in exchanges.iter().zip(&canned) {
            let answer = conn.call_full(method, target, headers, body);
            let content_type = |headers: &[(String, String)]| {
                headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                    .map(|(_, value)| value.clone())
            };
            assert!(
                answer.status == recorded.status
                    && answer.body == recorded.body.as_bytes()
                    && content_type(&answer.headers) == content_type(&recorded.headers),
                "{} does not answer {method} {target} as the relay did",
                ceiling.label
            );
        }
    }
    let perf_dir = std::env::var_os("RELAY_BENCH_PERF").map(PathBuf::from);

    for figure in &figures {
        let servers: Vec<&Loaded> = servers
            .iter()
            .filter(|s| !s.posts_only || figure.posts())
            .collect();
        let mut results: Vec<Vec<Round>> = servers.iter().map(|_| Vec::new()).collect();
        for _ in 0..rounds {
            for (server, results) in servers.iter().zip(results.iter_mut()) {
                results.push(round(server, figure, duration));
            }
        }
        let (unit, scale) = match figure.mib_per_request {
            Some(mib) => ("MiB/s", mib),
            None => ("req/s", 1.0),
        };
        let rate = |rounds: &[Round]| median(rounds.iter().map(|r| r.rate * scale).collect());
        let cpu_us = |rounds: &[Round]| {
            rounds.iter().map(|r| r.cpu_seconds).sum::<f64>() * 1e6
                / rounds.iter().map(|r| r.requests).sum::<usize>().max(1) as f64
        };
        let relay_rate = rate(&results[0]);
        let relay_cpu = cpu_us(&results[0]);
        for (server, theirs) in servers.iter().zip(&results).skip(1) {
            let label = server.label;
            let ratio = round_ratio(&results[0], theirs);
            let their_rate = rate(theirs);
            let met = |ok: bool| if ok { "met" } else { "NOT met" };
            let goal = match server.posts_only {
                true => "no goal".to_string(),
                false => format!("goal >= {}x: {}", figure.goal, met(ratio >= figure.goal)),
            };
            row(
                format!("{}: relay / {label}", figure.name),
                format!(
                    "{ratio:.3}x ({goal})  relay {relay_rate:.0}, {label} {their_rate:.0} {unit}"
                ),
                &format!("ceiling_{}_vs_{label}", figure.key),
                json!({"ratio": ratio, "goal": (!server.posts_only).then_some(figure.goal),
                       "met": (!server.posts_only).then_some(ratio >= figure.goal),
                       "relay": relay_rate, label: their_rate, "unit": unit, "rounds": rounds,
                       "relay_cpu_us_per_request": relay_cpu,
                       format!("{label}_cpu_us_per_request"): cpu_us(theirs)}),
            );
            if let Some(goal) = figure.cpu_goal {
                let their_cpu = cpu_us(theirs);
                let cpu_ratio = relay_cpu / their_cpu;
                row(
                    format!("server CPU per request, {}: relay / {label}", figure.name),
                    format!(
                        "{cpu_ratio:.3}x (goal <= {goal}x: {})  relay {relay_cpu:.1} us, {label} {their_cpu:.1} us",
                        met(cpu_ratio <= goal)
                    ),
                    &format!("ceiling_cpu_{}_vs_{label}", figure.key),
                    json!({"ratio": cpu_ratio, "goal": goal, "met": cpu_ratio <= goal,
                           "relay_us": relay_cpu, format!("{label}_us"): their_cpu}),
                );
            }
        }
        // What keeping a body as the relay must (two appends) leaves of the bare ceiling's rate:
        // how near the relay's goal a server that does nothing else comes.
        let at = |label| servers.iter().position(|s| s.label == label);
        if let (Some(bare), Some(keeping)) = (at("ceiling"), at("ceiling-file")) {
            let ratio = round_ratio(&results[keeping], &results[bare]);
            row(
                format!("{}: ceiling-file / ceiling", figure.name),
                format!("{ratio:.3}x (what keeping each body in two files leaves)"),
                &format!("ceiling_{}_file_vs_ceiling", figure.key),
                json!({"ratio": ratio, "rounds": rounds}),
            );
        }
        if let (Some(perf_dir), 16) = (&perf_dir, figure.concurrency) {
            for server in servers.iter().take(2) {
                profile(server, figure, perf_dir);
            }
        }
    }
    drop(ceilings);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records `perf record -g` of `server` for four seconds in the middle of six seconds of
/// `figure`'s load, into `DIR/<figure>-<server>.data`. perf attaches once the load runs, so the
/// threads serving its connections exist by then and are recorded.
fn profile(server: &Loaded, figure: &Figure, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("{}-{}.data", figure.key, server.label));
    let pids = server
        .pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    thread::scope(|s| {
        let loaded = s.spawn(|| round(server, figure, Duration::from_secs(6)));
        thread::sleep(Duration::from_secs(1));
        let recorded = Command::new("perf")
            .args(["record", "-g", "-p", &pids, "-o"])
            .arg(&out)
            .args(["--", "sleep", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        loaded.join().unwrap();
        match recorded {
            true => println!("    perf profile written to {}", out.display()),
            false => println!("    perf record failed for {}", out.display()),
        }
    });
}

/// Memory held after 744 posts of a 1 MiB text each (fsync never), from 4 and from 16
/// connections at once: with texts read back from the journal it stays near the idle figure
/// plus what the allocator keeps of the posts in flight; one such message read back at c=16.
fn big_posts_section(binary: &Path, row: &mut Row) {
    let text = "x".repeat(1024 * 1024);
    let body = json!({"target": "big", "sender": "bench", "text": text}).to_string();
    let posted = |conns: usize, key: &str, row: &mut Row| {
        let dir = fresh_dir("big-posts");
        let relay = Relay::start(binary, &dir, &["--fsync", "never"]);
        let body = body.clone();
        spread(relay.addr, conns, 744, move |conn, _| {
            let (status, reply) = conn.call("POST", "/api/messages", "", &body);
            assert_eq!(status, 201, "{reply}");
        });
        let rss = relay.rss_mib();
        row(
            format!("RSS after 744 posts of 1 MiB, c={conns}"),
            format!("{rss:.1} MiB"),
            key,
            json!(rss),
        );
        (relay, dir)
    };
    let (relay, dir) = posted(4, "rss_after_744_1mib_posts_c4_mib", row);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
    let (relay, dir) = posted(16, "rss_after_744_1mib_posts_mib", row);
    let mut l = load(relay.addr, 16, Duration::from_secs(2), |conn, i| {
        let path = format!("/api/messages?target=big&since_id={}&limit=1", i % 744);
        let (status, _) = conn.call("GET", &path, "", "");
        assert_eq!(status, 200);
    });
    let (rate, p99) = (l.rate(), l.percentile(0.99));
    row(
        "GET one of 744 1 MiB messages, c=16".into(),
        format!(
            "{rate:>9.0} req/s  p99 {p99:.2} ms  (RSS after: {:.1} MiB)",
            relay.rss_mib()
        ),
        "get_1mib_c16",
        json!({"rps": rate, "p99_ms": p99, "rss_mib": relay.rss_mib()}),
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let run = if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    };
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    };
    let binary = binary();
    let mut results = serde_json::Map::new();
    let mut table: Vec<(String, String)> = Vec::new();
    let mut row = |name: String, value: String, key: &str, v: Value| {
        println!("{name:<58} {value}");
        table.push((name, value));
        results.insert(key.to_string(), v);
    };
    if std::env::args().any(|a| a == "--memory") {
        stores_section(
            &binary,
            &[1_000, 100_000, 1_000_000, 10_000_000],
            run,
            &mut row,
        );
        let side = |label: &str, binary, stored| Side {
            label: label.to_string(),
            binary,
            stored,
        };
        paired_get_section(
            side("1k stored", &binary, 1_000),
            side("1M stored", &binary, 1_000_000),
            "1m_over_1k",
            9,
            &mut row,
        );
        // `RELAY_BENCH_BASELINE`: another build to compare this one with, at 1M stored.
        if let Ok(baseline) = std::env::var("RELAY_BENCH_BASELINE") {
            paired_get_section(
                side("baseline, 1M stored", Path::new(&baseline), 1_000_000),
                side("this build, 1M stored", &binary, 1_000_000),
                "1m_this_over_baseline",
                9,
                &mut row,
            );
        }
        big_posts_section(&binary, &mut row);
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-memory.json");
        std::fs::write(&out, serde_json::to_string_pretty(&json!(results)).unwrap()).unwrap();
        println!("\nwritten to {}", out.display());
        return;
    }
    if std::env::args().any(|a| a == "--ceiling") {
        ceiling_section(&binary, quick, &mut row);
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-ceiling.json");
        std::fs::write(&out, serde_json::to_string_pretty(&json!(results)).unwrap()).unwrap();
        println!("\nwritten to {}", out.display());
        return;
    }
    if std::env::args().any(|a| a == "--abuse") {
        abuse_section(&binary, quick, &mut row);
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-abuse.json");
        std::fs::write(&out, serde_json::to_string_pretty(&json!(results)).unwrap()).unwrap();
        println!("\nwritten to {}", out.display());
        return;
    }

    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    row(
        "release binary size".into(),
        format!("{:.2} MB", size as f64 / 1e6),
        "binary_bytes",
        json!(size),
    );

    // Start-up and idle memory on an empty store.
    let mut startups = Vec::new();
    let mut idle_rss = 0.0;
    for i in 0..5 {
        let dir = fresh_dir(&format!("empty{i}"));
        let relay = Relay::start(&binary, &dir, &[]);
        startups.push(relay.started_in);
        idle_rss = relay.rss_mib();
        drop(relay);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let startup = percentile_ms(&mut startups, 0.5);
    row(
        "start-up to first /healthz 200, empty (median of 5)".into(),
        format!("{startup:.1} ms"),
        "startup_empty_ms",
        json!(startup),
    );
    row(
        "RSS idle".into(),
        format!("{idle_rss:.1} MiB"),
        "rss_idle_mib",
        json!(idle_rss),
    );

    ceiling_section(&binary, quick, &mut row);
    stores_section(&binary, sizes, run, &mut row);
    if !quick {
        let side = |label: &str, stored| Side {
            label: label.to_string(),
            binary: &binary,
            stored,
        };
        paired_get_section(
            side("1k stored", 1_000),
            side("1M stored", 1_000_000),
            "1m_over_1k",
            9,
            &mut row,
        );
    }
    big_posts_section(&binary, &mut row);

    // Posts, with and without fsync.
    for fsync in ["never", "always"] {
        for c in [1usize, 16] {
            let dir = fresh_dir(&format!("post-{fsync}-{c}"));
            let relay = Relay::start(&binary, &dir, &["--fsync", fsync]);
            let mut l = load(relay.addr, c, run, |conn, i| {
                let (status, body) = conn.call("POST", "/api/messages", "", &post_body(i));
                assert_eq!(status, 201, "{body}");
            });
            let (rate, p50, p99) = (l.rate(), l.percentile(0.5), l.percentile(0.99));
            let journal = std::fs::metadata(dir.join("data/messages.jsonl"))
                .map(|m| m.len())
                .unwrap_or(0);
            row(
                format!("POST /api/messages fsync={fsync}, c={c}"),
                format!("{rate:>9.0} req/s  p50 {p50:.2} ms  p99 {p99:.2} ms"),
                &format!("post_{fsync}_c{c}"),
                json!({"rps": rate, "p50_ms": p50, "p99_ms": p99, "journal_bytes_per_message": journal as f64 / l.requests.max(1) as f64}),
            );
            drop(relay);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    // Idle MCP sessions (each subscribed to some other channel, as a client's would be) and
    // waits on channels that do not exist: neither may slow posts down or pile up memory.
    let idle_sessions = 100_000;
    let dir = fresh_dir("sessions");
    let relay = Relay::start(
        &binary,
        &dir,
        &["--fsync", "never", "--max-sessions-per-client", "1000000"],
    );
    // One relay gets the sessions, a twin gets none; short runs alternate between the two and
    // the best of each counts, so load from other processes on a shared machine hits both alike.
    let twin_dir = fresh_dir("sessions-twin");
    let twin = Relay::start(&binary, &twin_dir, &["--fsync", "never"]);
    let post_rate = |relay: &Relay| {
        let mut l = load(relay.addr, 8, run, |conn, i| {
            let (status, body) = conn.call("POST", "/api/messages", "", &post_body(i));
            assert_eq!(status, 201, "{body}");
        });
        (l.rate(), l.percentile(0.5))
    };
    let rss_before = relay.rss_mib();
    spread(relay.addr, 8, idle_sessions, |conn, i| {
        let id = mcp_session(conn);
        let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": format!("relay://channel/idle-{}", i % 1000)}}).to_string();
        let headers = format!("Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-06-18\r\n");
        let (status, body) = conn.call("POST", "/mcp", &headers, &subscribe);
        assert_eq!(status, 200, "{body}");
    });
    let rss_sessions = relay.rss_mib();
    let best = |a: (f64, f64), b: (f64, f64)| if b.0 > a.0 { b } else { a };
    let (mut without, mut with) = ((0.0, f64::NAN), (0.0, f64::NAN));
    for _ in 0..3 {
        without = best(without, post_rate(&twin));
        with = best(with, post_rate(&relay));
    }
    drop(twin);
    let _ = std::fs::remove_dir_all(&twin_dir);
    let ((rate_before, p50_before), (rate_after, p50_after)) = (without, with);
    row(
        "POST c=8 fsync=never, no MCP sessions (best of 3)".into(),
        format!("{rate_before:>9.0} req/s  p50 {p50_before:.2} ms"),
        "post_c8_no_sessions",
        json!({"rps": rate_before, "p50_ms": p50_before}),
    );
    row(
        format!("POST c=8 fsync=never, {idle_sessions} idle MCP sessions (best of 3)"),
        format!("{rate_after:>9.0} req/s  p50 {p50_after:.2} ms"),
        "post_c8_idle_sessions",
        json!({"rps": rate_after, "p50_ms": p50_after}),
    );
    row(
        "POST c=8: no sessions vs idle sessions (ratio, at most 1.5)".into(),
        format!("{:.2}x", rate_before / rate_after),
        "post_idle_sessions_ratio",
        json!(rate_before / rate_after),
    );
    row(
        format!("RSS with {idle_sessions} idle MCP sessions"),
        format!("{rss_sessions:.1} MiB (+{:.1})", rss_sessions - rss_before),
        "rss_idle_sessions_mib",
        json!(rss_sessions),
    );
    let unknown_waits = 100_000;
    // Measured from here: the posts above hold memory of their own.
    let rss_before_waits = relay.rss_mib();
    spread(relay.addr, 16, unknown_waits, |conn, i| {
        let path = format!("/api/messages?target=ghost-{i}&since_id=0&wait=0.001");
        let (status, body) = conn.call("GET", &path, "", "");
        assert_eq!(status, 200, "{body}");
    });
    let rss_waits = relay.rss_mib();
    row(
        format!("RSS after {unknown_waits} waits on unknown channels"),
        format!("{rss_waits:.1} MiB (+{:.1})", rss_waits - rss_before_waits),
        "rss_unknown_waits_mib",
        json!(rss_waits),
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);

    // MCP, sequential tool calls.
    let dir = fresh_dir("mcp");
    let relay = Relay::start(&binary, &dir, &["--fsync", "never"]);
    {
        let mut conn = Conn::open(relay.addr);
        for i in 0..50 {
            conn.call("POST", "/api/messages", "", &post_body(i));
        }
        let session = mcp_session(&mut conn);
        let headers = Arc::new(format!(
            "Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\n"
        ));
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fetch_messages", "arguments": {"target": "bench", "since_id": 0, "limit": 50}}}).to_string();
        let mut l = load(relay.addr, 1, run, move |conn, _| {
            let (status, body) = conn.call("POST", "/mcp", &headers, &call);
            assert!(
                status == 200 && body.contains("latest_id"),
                "{status} {body}"
            );
        });
        let (rate, p50) = (l.rate(), l.percentile(0.5));
        row(
            "MCP tools/call fetch_messages (50 msgs), sequential".into(),
            format!("{rate:>9.0} calls/s  p50 {p50:.2} ms"),
            "mcp_fetch_sequential",
            json!({"cps": rate, "p50_ms": p50}),
        );
    }
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);

    // Post → delivery latency, to a waiting fetch and to a stream reader.
    let dir = fresh_dir("latency");
    let relay = Relay::start(
        &binary,
        &dir,
        &[
            "--fsync",
            "always",
            "--max-streams",
            "2000",
            "--max-streams-per-client",
            "2000",
            // Streams must leave an eighth of the connections free for short requests.
            "--max-connections",
            "2400",
        ],
    );
    let rounds = if quick { 50 } else { 300 };
    let mut to_fetch = Vec::new();
    let mut poster = Conn::open(relay.addr);
    for i in 0..rounds {
        let (_, body) = poster.call("GET", "/api/messages?target=lat&limit=1", "", "");
        let since = serde_json::from_str::<Value>(&body).unwrap()["messages"][0]["id"]
            .as_u64()
            .unwrap_or(0);
        let addr = relay.addr;
        let waiter = thread::spawn(move || {
            let mut c = Conn::open(addr);
            let (_, body) = c.call(
                "GET",
                &format!("/api/messages?target=lat&since_id={since}&wait=10"),
                "",
                "",
            );
            (Instant::now(), body)
        });
        // Give the waiter time to park: the figure is post-to-delivery, not request set-up.
        thread::sleep(Duration::from_millis(3));
        let sent = Instant::now();
        poster.call(
            "POST",
            "/api/messages",
            "",
            &json!({"target": "lat", "sender": "b", "text": format!("{i}")}).to_string(),
        );
        let (got, body) = waiter.join().unwrap();
        assert!(body.contains(&format!("\"text\":\"{i}\"")), "{body}");
        to_fetch.push(got.saturating_duration_since(sent));
    }
    let (p50, p99) = (
        percentile_ms(&mut to_fetch, 0.5),
        percentile_ms(&mut to_fetch, 0.99),
    );
    row(
        "post -> delivery to a waiting fetch (fsync=always)".into(),
        format!("p50 {p50:.2} ms  p99 {p99:.2} ms"),
        "delivery_fetch",
        json!({"p50_ms": p50, "p99_ms": p99}),
    );

    let mut stream = BufReader::new(TcpStream::connect(relay.addr).unwrap());
    stream
        .get_mut()
        .write_all(b"GET /api/stream?target=live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).unwrap() == 0 || line.starts_with(": stream open") {
            break;
        }
    }
    let mut to_stream = Vec::new();
    for i in 0..rounds {
        let sent = Instant::now();
        poster.call(
            "POST",
            "/api/messages",
            "",
            &json!({"target": "live", "sender": "b", "text": format!("{i}")}).to_string(),
        );
        loop {
            line.clear();
            stream.read_line(&mut line).unwrap();
            if line.starts_with("data: ") {
                break;
            }
        }
        to_stream.push(sent.elapsed());
    }
    let (p50, p99) = (
        percentile_ms(&mut to_stream, 0.5),
        percentile_ms(&mut to_stream, 0.99),
    );
    row(
        "post -> delivery to a stream reader (fsync=always)".into(),
        format!("p50 {p50:.2} ms  p99 {p99:.2} ms"),
        "delivery_stream",
        json!({"p50_ms": p50, "p99_ms": p99}),
    );

    // 1,000 parked waiters, one post.
    let waiters = 1000;
    let (_, body) = poster.call("GET", "/api/messages?target=herd&limit=1", "", "");
    let since = serde_json::from_str::<Value>(&body).unwrap()["messages"][0]["id"]
        .as_u64()
        .unwrap_or(0);
    let barrier = Arc::new(Barrier::new(waiters + 1));
    let handles: Vec<_> = (0..waiters)
        .map(|_| {
            let (addr, barrier) = (relay.addr, Arc::clone(&barrier));
            thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut c = Conn::open(addr);
                    let rq = format!("GET /api/messages?target=herd&since_id={since}&wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
                    c.reader.get_mut().write_all(rq.as_bytes()).unwrap();
                    barrier.wait();
                    let (status, _) = c.read_response();
                    assert_eq!(status, 200);
                    Instant::now()
                })
                .unwrap()
        })
        .collect();
    barrier.wait();
    // Wait until the relay holds every waiter: its RSS then includes them.
    thread::sleep(Duration::from_millis(if quick { 500 } else { 1500 }));
    let rss_waiters = relay.rss_mib();
    let sent = Instant::now();
    poster.call(
        "POST",
        "/api/messages",
        "",
        &json!({"target": "herd", "sender": "b", "text": "wake"}).to_string(),
    );
    let last = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap();
    let wake = last.saturating_duration_since(sent).as_secs_f64() * 1000.0;
    row(
        format!("time for {waiters} parked waiters to all receive one post"),
        format!("{wake:.1} ms"),
        "wake_1000_ms",
        json!(wake),
    );
    row(
        format!("RSS with {waiters} parked waiters"),
        format!("{rss_waiters:.1} MiB"),
        "rss_1000_waiters_mib",
        json!(rss_waiters),
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);

    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench.json");
    let doc = json!({"quick": quick, "run_seconds": run.as_secs_f64(), "results": results});
    std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    println!("\nwritten to {}", out.display());
}
