//! The relay binary a benchmark measures: `RELAY_BENCH_BINARY` if set (to compare two builds),
//! else this checkout's release build, built first. Shared by the benchmark examples.

use std::path::PathBuf;
use std::process::Command;

pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("RELAY_BENCH_BINARY") {
        return PathBuf::from(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "claude-codex-relay",
        ])
        .status()
        .expect("cargo build");
    assert!(status.success(), "cargo build --release failed");
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("claude-codex-relay")
}
