//! The documentation's commands run as written: `scripts/docs-recipes.sh` takes the README's
//! quick start and every shell command of docs/unattended.md, runs them against the relay
//! binary with a fake `codex` on PATH, and checks each does what the text says. The client
//! guides name every tool the relay serves.

use crate::common::*;
use serde_json::json;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_readme_quick_start_and_the_unattended_recipes_run_as_written() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/docs-recipes.sh"
        ))
        .arg(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/docs-recipes.sh");
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    };
    let (stdout, stderr) = (read_all(Box::new(out)), read_all(Box::new(err)));
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("docs-recipes.sh did not finish in 240 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("\"text\":\"hello from the quick start\""),
        "the quick start's archive line: {stdout}"
    );
    assert!(
        stdout.contains("docs-recipes: all ") && stdout.contains("commands ran as written"),
        "{stdout}"
    );
}

#[test]
fn each_client_guide_names_every_tool_the_relay_serves() {
    let relay = Relay::memory();
    let mut mcp = Mcp::connect(&relay, "2025-06-18");
    let tools = mcp.request("tools/list", json!({}))["result"]["tools"].clone();
    let names: Vec<String> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 4, "{names:?}");
    for guide in ["claude.md", "codex.md", "gemini.md"] {
        let path = format!("{}/docs/{guide}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        for name in &names {
            assert!(
                text.contains(&format!("`{name}`")),
                "{guide} never names {name}"
            );
        }
        for count in ["two tools", "three tools", "five tools"] {
            assert!(!text.contains(count), "{guide} says {count}");
        }
    }
}
