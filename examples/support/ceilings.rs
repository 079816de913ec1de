//! The ceilings the benchmark holds the relay against, as running processes: the `ceiling`
//! example (the same HTTP library as the relay, serving the relay's recorded responses; also as
//! `ceiling-file`, which appends each body it is sent to two files before answering) and,
//! where `nginx` is on the PATH, nginx serving the same bytes from files under a generated
//! configuration. Also the CPU time a set of processes has used, from /proc.

use crate::canned::{self, Canned};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A ceiling server running as a child process.
pub struct Ceiling {
    pub label: &'static str,
    pub addr: SocketAddr,
    child: Child,
    /// The processes that serve (nginx's master and its workers).
    pub pids: Vec<u32>,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        // nginx's workers outlive a killed master; SIGTERM stops them all.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ceiling` example, built next to the running benchmark.
fn ceiling_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--example", "ceiling"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build --example ceiling failed");
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("ceiling")
}

/// Starts the `ceiling` example serving `responses` (saved under `dir`). With `keep` it also
/// appends every request body to two files under `dir`, as the relay writes a post to its
/// journal and its channel archive (labelled `ceiling-file`).
pub fn start_ceiling(dir: &Path, responses: &[Canned], keep: bool) -> Ceiling {
    let file = dir.join("canned.json");
    canned::save(&file, responses);
    let mut command = Command::new(ceiling_binary());
    command.arg(&file);
    if keep {
        for file in ["kept-journal", "kept-channel-archive"] {
            command.arg("--keep").arg(dir.join(file));
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the ceiling");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the ceiling's first line");
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let pid = child.id();
    Ceiling {
        label: if keep { "ceiling-file" } else { "ceiling" },
        addr,
        child,
        pids: vec![pid],
    }
}

/// Whether `nginx` is on the PATH.
pub fn nginx_installed() -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join("nginx").is_file()))
        .unwrap_or(false)
}

/// Starts nginx serving `responses` from files under `dir`, or `None` when it is not installed.
/// Each response is a file; a `map` picks it by method, target prefix and (for `min_body`, which
/// must then be a power of ten) the number of digits of the declared body length. A POST reaches
/// the file through the static module's 405 and an `error_page` that turns it into the recorded
/// status, after nginx has read and dropped the body.
pub fn start_nginx(dir: &Path, responses: &[Canned]) -> Option<Ceiling> {
    if !nginx_installed() {
        return None;
    }
    let dir = dir.join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let d = dir.display();
    let mut map = String::new();
    let mut locations = String::new();
    for (i, r) in responses.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.body")), &r.body).unwrap();
        let length = match r.min_body {
            0 => String::new(),
            n => {
                let digits = n.to_string();
                assert!(
                    digits.trim_start_matches('1').bytes().all(|b| b == b'0'),
                    "nginx can only match a min_body that is a power of ten"
                );
                format!("[^ ]* [0-9]{{{},}}$", digits.len())
            }
        };
        map.push_str(&format!(
            "    \"~^{} {}{length}\" {i};\n",
            r.method,
            regex_escape(&r.target_prefix)
        ));
        let mut headers = String::new();
        let mut content_type = "application/octet-stream".to_string();
        for (name, value) in &r.headers {
            if name.eq_ignore_ascii_case("content-type") {
                content_type = value.clone();
            } else if !value.contains('$') {
                headers.push_str(&format!("add_header {name} '{}' always; ", quote(value)));
            }
        }
        let common = format!(
            "internal; types {{}} default_type '{}'; {headers}alias {d}/{i}.body;",
            quote(&content_type)
        );
        locations.push_str(&format!(
            "    location = /canned/{i} {{ {common} error_page 405 ={} /served/{i}; }}\n    location = /served/{i} {{ {common} }}\n",
            r.status
        ));
    }
    let config = format!(
        "worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp-body;
  proxy_temp_path {d}/tmp-proxy;
  fastcgi_temp_path {d}/tmp-fastcgi;
  uwsgi_temp_path {d}/tmp-uwsgi;
  scgi_temp_path {d}/tmp-scgi;
  client_max_body_size 0;
  keepalive_requests 100000000;
  keepalive_timeout 30s;
  tcp_nodelay on;
  etag off;
  server_tokens off;
  map \"$request_method $request_uri $content_length\" $canned {{
    default \"\";
{map}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ if ($canned = \"\") {{ return 404; }} rewrite ^ /canned/$canned last; }}
{locations}  }}
}}
"
    );
    std::fs::write(dir.join("nginx.conf"), config).unwrap();
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let master = child.id();
    let mut ceiling = Ceiling {
        label: "nginx",
        addr,
        child,
        pids: vec![master],
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: see {d}/error.log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The workers are forked once the master listens.
    while ceiling.pids.len() < 2 && Instant::now() < deadline {
        ceiling.pids = std::iter::once(master).chain(children(master)).collect();
    }
    Some(ceiling)
}

/// Escapes what a PCRE pattern would read as syntax.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}\" ".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Escapes a value for a single-quoted nginx string.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_fields(*p).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid))
        .collect()
}

/// The fields of /proc/PID/stat after the command name: state, ppid, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Clock ticks per second of the CPU times in /proc.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user and system) the processes `pids` have used so far, all threads included.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|p| {
            let f = stat_fields(*p)?;
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / clock_ticks()
}
