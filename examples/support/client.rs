//! The benchmarks' HTTP/1.1 client: keep-alive connections that send a request and read one
//! whole response, and load runs of many such connections for a fixed time or a fixed count.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// One keep-alive HTTP/1.1 connection that sends a request and reads one whole response.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    pub host: String,
    /// The last body `exchange` read, its buffer kept for the next.
    pub body: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            reader: BufReader::new(s),
            host: format!("127.0.0.1:{}", addr.port()),
            body: Vec::new(),
        }
    }

    /// Sends a request and returns (status, body).
    pub fn call(&mut self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        let rq = request_bytes(&self.host, method, path, headers, body);
        self.reader.get_mut().write_all(&rq).expect("send");
        self.read_response()
    }

    pub fn read_response(&mut self) -> (u16, String) {
        let answer = self.read_answer();
        (
            answer.status,
            String::from_utf8_lossy(&answer.body).into_owned(),
        )
    }

    /// Sends a request and returns the whole response, head fields included.
    pub fn call_full(&mut self, method: &str, path: &str, headers: &str, body: &str) -> Answer {
        let rq = request_bytes(&self.host, method, path, headers, body);
        self.reader.get_mut().write_all(&rq).expect("send");
        self.read_answer()
    }

    /// Sends prepared request bytes and returns the response's status; the body is read into a
    /// buffer kept for the next response, so the client spends little of the machine's CPU.
    pub fn exchange(&mut self, request: &[u8]) -> u16 {
        self.reader.get_mut().write_all(request).expect("send");
        let (status, length, chunked) = self.read_head(None);
        let mut body = std::mem::take(&mut self.body);
        self.read_body(length, chunked, &mut body);
        self.body = body;
        status
    }

    pub fn read_answer(&mut self) -> Answer {
        let mut headers = Vec::new();
        let (status, length, chunked) = self.read_head(Some(&mut headers));
        let mut body = Vec::new();
        self.read_body(length, chunked, &mut body);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Reads a response's head: its status, `Content-Length` and whether it is chunked, and
    /// every field into `headers` when asked.
    fn read_head(&mut self, mut headers: Option<&mut Vec<(String, String)>>) -> (u16, usize, bool) {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                return (status, length, chunked);
            }
            let (name, coding) = ("content-length:", "transfer-encoding:");
            if l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) {
                length = l[name.len()..].trim().parse().unwrap_or(0);
            }
            if l.len() > coding.len()
                && l[..coding.len()].eq_ignore_ascii_case(coding)
                && l.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
            if let (Some(headers), Some((name, value))) =
                (headers.as_deref_mut(), l.split_once(':'))
            {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
    }

    /// Reads a body of `length` bytes, or chunked, into `body` (emptied first).
    fn read_body(&mut self, length: usize, chunked: bool, body: &mut Vec<u8>) {
        body.clear();
        if !chunked {
            body.resize(length, 0);
            self.reader.read_exact(body).expect("body");
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("chunk size");
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let start = body.len();
            body.resize(start + n + 2, 0);
            self.reader.read_exact(&mut body[start..]).expect("chunk");
            body.truncate(start + n);
            if n == 0 {
                return;
            }
        }
    }
}

/// A whole response.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The bytes of one request with a JSON body.
pub fn request_bytes(host: &str, method: &str, path: &str, headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Latencies of one load run.
pub struct Load {
    pub requests: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&mut self, p: f64) -> f64 {
        percentile_ms(&mut self.latencies, p)
    }
}

pub fn percentile_ms(latencies: &mut [Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let i = ((latencies.len() - 1) as f64 * p).round() as usize;
    latencies[i].as_secs_f64() * 1000.0
}

/// Runs `concurrency` threads, each on its own keep-alive connection, calling `request` for
/// `duration`.
pub fn load<F>(addr: SocketAddr, concurrency: usize, duration: Duration, request: F) -> Load
where
    F: Fn(&mut Conn, usize) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let workers: Vec<_> = (0..concurrency)
        .map(|t| {
            let (request, stop, barrier) = (
                Arc::clone(&request),
                Arc::clone(&stop),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut latencies = Vec::new();
                barrier.wait();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    request(&mut conn, t * 1_000_000 + i);
                    latencies.push(t0.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    barrier.wait();
    let begun = Instant::now();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.join().unwrap());
    }
    Load {
        requests: latencies.len(),
        elapsed: begun.elapsed(),
        latencies,
    }
}

/// Runs `n` calls of `request(conn, i)` spread over `threads` keep-alive connections.
pub fn spread<F>(addr: SocketAddr, threads: usize, n: usize, request: F)
where
    F: Fn(&mut Conn, usize) + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let request = Arc::clone(&request);
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for i in (t..n).step_by(threads) {
                    request(&mut conn, i);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}
