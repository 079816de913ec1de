//! Reads of stored messages, paired against another build:
//! `cargo run --release --example read_pairs -- [--baseline PATH] [--rounds N] [--hold SECS LOAD]`.
//! Each relay holds a journal of 1M small messages (written directly) and 744 posts of 1 MiB;
//! the loads are GET of one of the 744 1 MiB messages (a different one each time), GET of the
//! same 1 MiB message, and GET of a page of 50 messages of the 1M, each at c=16. With
//! `--baseline`, both builds run at once and are loaded in alternating two-second rounds, and
//! the median round of each counts; server CPU per request is read from /proc. `--hold` runs
//! one load on this build for SECS seconds after printing the relay's pid, for a profiler.
//! Resident memory is printed after the loads.

// This example uses the shared client's connections, not its load runs.
#[allow(dead_code)]
#[path = "support/client.rs"]
mod client;
#[path = "support/relay_binary.rs"]
mod relay_binary;
#[path = "support/relay_process.rs"]
mod relay_process;
use client::Conn;
use relay_binary::binary;
use serde_json::json;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    fn start(binary: &Path, dir: &Path) -> Relay {
        let (child, addr) = relay_process::spawn(binary, dir, &["--fsync", "never"]);
        let mut conn = Conn::open(addr);
        while conn.call("GET", "/healthz", "", "").0 != 200 {}
        Relay { child, addr }
    }

    /// Resident memory of the relay in MiB, from /proc.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap();
        kb / 1024.0
    }

    /// User and system CPU time the relay has used, in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A relay of `binary` over a journal of 1M small messages plus 744 posts of 1 MiB.
fn prepare(binary: &Path, tag: &str) -> (Relay, PathBuf) {
    let dir = std::env::temp_dir().join(format!("relay-reads-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.join("data/messages.jsonl")).unwrap());
    let channels = ["proj-x", "codex", "claude", "ops"];
    let text = "x".repeat(180);
    for id in 1..=1_000_000usize {
        let m = json!({"id": id, "ts": 1.7e9 + id as f64, "target": channels[id % 4], "sender": "bench", "text": format!("{id} {text}")});
        writeln!(out, "{m}").unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let relay = Relay::start(binary, &dir);
    let body =
        json!({"target": "big", "sender": "bench", "text": "x".repeat(1024 * 1024)}).to_string();
    let mut conn = Conn::open(relay.addr);
    for _ in 0..744 {
        assert_eq!(conn.call("POST", "/api/messages", "", &body).0, 201);
    }
    (relay, dir)
}

/// The request path of a load's i-th request.
type PathOf = fn(usize) -> String;

/// The loads, by name.
const LOADS: [(&str, PathOf); 3] = [
    ("GET one of 744 1 MiB messages", |i| {
        format!(
            "/api/messages?target=big&since_id={}&limit=1",
            1_000_000 + i % 744
        )
    }),
    ("GET the same 1 MiB message", |_| {
        "/api/messages?target=big&since_id=1000000&limit=1".to_string()
    }),
    ("GET limit=50 of 1M stored", |_| {
        "/api/messages?target=proj-x&limit=50".to_string()
    }),
];

/// Loads `relay` with `path` at c=16 for `secs`; returns req/s and server CPU µs per request.
fn load(relay: &Relay, path: PathOf, secs: f64) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let cpu0 = relay.cpu_secs();
    let begun = Instant::now();
    let workers: Vec<_> = (0..16usize)
        .map(|t| {
            let (stop, done, addr) = (Arc::clone(&stop), Arc::clone(&done), relay.addr);
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut i = t * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    let request = client::request_bytes(&conn.host, "GET", &path(i), "", "");
                    assert_eq!(conn.exchange(&request), 200);
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let n = done.load(Ordering::Relaxed) as f64;
    let rate = n / begun.elapsed().as_secs_f64();
    let cpu = (relay.cpu_secs() - cpu0) / n * 1e6;
    (rate, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|at| args[at + 1].clone())
    };
    let this = binary();
    if let Some(secs) = value("--hold") {
        let which: usize = args[args.iter().position(|a| a == "--hold").unwrap() + 2]
            .parse()
            .unwrap();
        let (relay, dir) = prepare(&this, "hold");
        let (name, path) = LOADS[which];
        println!("pid {} ready; {name} for {secs} s", relay.child.id());
        std::io::stdout().flush().unwrap();
        thread::sleep(Duration::from_secs(2));
        let before = relay.rss_mib();
        let (rate, cpu) = load(&relay, path, secs.parse().unwrap());
        println!(
            "{name}: {rate:.0} req/s, {cpu:.0} µs CPU per request; RSS {before:.1} MiB before, {:.1} after",
            relay.rss_mib()
        );
        drop(relay);
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let rounds: usize = value("--rounds").map_or(5, |r| r.parse().unwrap());
    let mut sides = vec![("this build".to_string(), prepare(&this, "this"))];
    if let Some(baseline) = value("--baseline") {
        sides.push((
            "baseline".to_string(),
            prepare(Path::new(&baseline), "base"),
        ));
    }
    for (name, path) in LOADS {
        let mut rates = vec![Vec::new(); sides.len()];
        let mut cpus = vec![Vec::new(); sides.len()];
        for _ in 0..rounds {
            for (at, (_, (relay, _))) in sides.iter().enumerate() {
                let (rate, cpu) = load(relay, path, 2.0);
                rates[at].push(rate);
                cpus[at].push(cpu);
            }
        }
        for (at, (label, _)) in sides.iter().enumerate() {
            println!(
                "{name:<34} c=16 {label:<10} {:>7.0} req/s  {:>6.0} µs CPU/request  (median of {rounds})",
                median(rates[at].clone()),
                median(cpus[at].clone())
            );
        }
        if sides.len() == 2 {
            println!(
                "{name:<34} this / baseline: {:.2}x",
                median(rates[0].clone()) / median(rates[1].clone())
            );
        }
    }
    for (label, (relay, dir)) in sides {
        println!(
            "RSS of {label} after every load: {:.1} MiB",
            relay.rss_mib()
        );
        drop(relay);
        let _ = std::fs::remove_dir_all(dir);
    }
}
