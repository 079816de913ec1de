//! The relay's integration tests: one binary, each module a subject. Every test starts a real
//! relay in-process on 127.0.0.1:0 (or the release binary as a child) and talks HTTP to it.

mod bridge;
mod checkpoint;
mod cli;
mod client;
mod common;
mod config;
mod connections;
mod conversations;
mod docs;
mod durable;
mod framing;
mod guard;
mod hostile;
mod leaving;
mod listening;
mod logs;
mod malformed;
mod mcp;
mod push;
mod quotas;
mod rest;
mod sessions;
mod setup;
mod texts_on_disk;
mod ui;
