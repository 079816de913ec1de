//! A relay binary started for a benchmark: a child process on a loopback port the system picks,
//! its data and logs under one directory, found through the address file it writes once it
//! listens (`--addr-file`), never by reading its human start line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take: replaying a 10M-message journal without a checkpoint takes
/// seconds.
const START_PATIENCE: Duration = Duration::from_secs(300);

/// Starts `binary` with its data and logs under `dir` and the `extra` arguments, and returns it
/// with the address it listens on.
pub fn spawn(binary: &Path, dir: &Path, extra: &[&str]) -> (Child, SocketAddr) {
    let addr_file = dir.join("relay.addr");
    let _ = std::fs::remove_file(&addr_file);
    let mut child = Command::new(binary)
        .args(["--port", "0", "--host", "127.0.0.1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--log-path")
        .arg(dir.join("log/tool.log"))
        .arg("--channel-log-path")
        .arg(dir.join("log/channel.log"))
        .arg("--addr-file")
        .arg(&addr_file)
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the relay");
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        let written = std::fs::read_to_string(&addr_file).unwrap_or_default();
        if let Some(addr) = written
            .trim()
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
        {
            return (child, addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the relay exited while starting: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not start listening"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
}
