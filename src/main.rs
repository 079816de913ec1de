//! The `claude-codex-relay` command: with no command (or `serve`) it starts the relay with the
//! configuration from `config.json`, the environment and the flags; `post`, `fetch`,
//! `channels`, `watch`, `delete`, `export`, `mcp` and `setup` are the built-in client
//! (`client::run`, whose exit codes its usage lists); a first word that is no command is
//! refused naming the closest one. Errors become exit codes here: 2 for a configuration or usage
//! error, 1 when the relay cannot start. Every command has its own `--help`, which `help COMMAND`
//! prints too.

// The one exception, `cap_malloc_heaps`, says why it needs `unsafe`.
#![deny(unsafe_code)]

use claude_codex_relay::config::{
    absolute, is_relay_variable, settings_help, Args, Config, StoreKind,
};
use claude_codex_relay::error::Error;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "claude-codex-relay: a message relay for coding agents (MCP, REST, web page)

Usage:
  claude-codex-relay [serve] [--config PATH] [--host HOST] [--port PORT] [--SETTING VALUE ...]
  claude-codex-relay post|fetch|channels|watch|delete|export|mcp|setup ...   (the built-in client, below)
  claude-codex-relay [COMMAND] --help | help [COMMAND] | --version
";

const SERVE_USAGE: &str = "\
Usage: claude-codex-relay [serve] [--config PATH] [--SETTING VALUE ...]

Starts the relay. Settings come from config.json in the working directory (or --config PATH,
or CLAUDE_CODEX_CONFIG), then CLAUDE_CODEX_<SETTING> environment variables, then flags;
later wins. Relative paths (logs, data) are resolved against the working directory; the
start line shows them absolute. Exit code 2: a configuration error; 1: cannot start.

Examples:
  claude-codex-relay --port 8020 --data-dir ~/.local/share/claude-codex-relay/data \\
    --log-path ~/.local/state/claude-codex-relay/claude_codex.log
  CLAUDE_CODEX_HOST=0.0.0.0 CLAUDE_CODEX_AUTH_TOKEN=secret claude-codex-relay serve

Every setting:
";

fn main() -> ExitCode {
    let (args, env) = match text_args_and_env() {
        Ok(both) => both,
        Err(message) => {
            eprintln!("claude-codex-relay: {message}");
            return ExitCode::from(2);
        }
    };
    match args.first().map(String::as_str) {
        Some("--help" | "-h") => print_out(&full_help()),
        Some("help") => help(&args[1..]),
        Some("--version" | "-V") => version(),
        Some("serve") => serve(&args[1..], &env),
        Some(
            command @ ("post" | "fetch" | "channels" | "watch" | "mcp" | "setup" | "delete"
            | "export"),
        ) => {
            let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
            let code = claude_codex_relay::client::run(
                command,
                &args[1..],
                &env,
                &mut claude_codex_relay::client::Io {
                    stdin: &mut stdin.lock(),
                    stdout: &mut stdout.lock(),
                    stderr: &mut stderr.lock(),
                },
            );
            ExitCode::from(code as u8)
        }
        // A first word that is not an option can only be a command: `fecth` is a typo to
        // point out, not an argument to the relay's settings.
        Some(word) if !word.starts_with('-') => {
            eprintln!(
                "claude-codex-relay: {}",
                claude_codex_relay::client::unknown_command(word)
            );
            ExitCode::from(2)
        }
        _ => serve(&args, &env),
    }
}

/// Every command's help, and the relay's settings.
fn full_help() -> String {
    format!(
        "{USAGE}\n{SERVE_USAGE}{}\n{}",
        settings_help(),
        claude_codex_relay::client::usage()
    )
}

/// `help [COMMAND]`: that command's help, as `COMMAND --help` prints it; without one, all.
fn help(args: &[String]) -> ExitCode {
    match args {
        [] => print_out(&full_help()),
        [flag] if flag == "--help" || flag == "-h" => print_out(&full_help()),
        [serve] if serve == "serve" => print_out(&serve_help()),
        [command] => match claude_codex_relay::client::help(command) {
            Some(text) => print_out(&text),
            None => {
                eprintln!(
                    "claude-codex-relay help: {}",
                    claude_codex_relay::client::unknown_command(command)
                );
                ExitCode::from(2)
            }
        },
        [_, extra, ..] => {
            eprintln!(
                "claude-codex-relay help: unexpected argument {extra:?}: help takes one command"
            );
            ExitCode::from(2)
        }
    }
}

/// What `serve --help` and `help serve` print.
fn serve_help() -> String {
    format!("{SERVE_USAGE}{}", settings_help())
}

/// Prints the version, for `--version` alone or among the relay's settings.
fn version() -> ExitCode {
    print_out(&format!(
        "claude-codex-relay {}\n",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Writes a help or version text to standard output. A reader that stops early (`| head`)
/// closes the pipe: that ends the output quietly, as for any other command line tool, where
/// `print!` would panic; any other failure to write (a full disk) is said, with exit code 1.
fn print_out(text: &str) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("claude-codex-relay: cannot write to standard output: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The arguments and the environment as text. Every argument the relay takes is text, so one
/// that is not UTF-8 is a usage error; a variable that is not is left out, unless it is one of
/// the relay's own (`CLAUDE_CODEX_...`, in any case), which is a configuration error.
fn text_args_and_env() -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| format!("the argument {arg:?} is not UTF-8"))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let mut env = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => {
                env.insert(name, value);
            }
            (Ok(name), Err(_)) if is_relay_variable(&name) => {
                return Err(format!(
                    "configuration error: environment: {name}: the value is not UTF-8"
                ))
            }
            (Err(name), _) if is_relay_variable(&name.to_string_lossy()) => {
                return Err(format!(
                    "configuration error: environment: {name:?}: the name is not UTF-8"
                ))
            }
            _ => {}
        }
    }
    Ok((args, env))
}

/// How many heaps glibc's `malloc` may keep per core for the relay's threads (its default is
/// eight). Each connection's thread that finds the heaps busy gets one of its own, and once a
/// large block (a 1 MiB post) has been freed, each heap keeps up to twice that size free for
/// reuse: after 744 posts of 1 MiB from 16 connections, 16 heaps held 54-68 MiB, four per core
/// hold 41-51 MiB, at the same speed (`--example bench -- --memory` and `-- --ceiling`).
const MALLOC_HEAPS_PER_CORE: usize = 4;

/// The cap on `malloc`'s heaps the relay sets for itself: none when its environment already
/// sets one (`MALLOC_ARENA_MAX`, or `arena_max` in `GLIBC_TUNABLES`), which then wins.
fn malloc_heap_cap(env: &BTreeMap<String, String>, cores: usize) -> Option<usize> {
    let tuned = env.contains_key("MALLOC_ARENA_MAX")
        || env
            .get("GLIBC_TUNABLES")
            .is_some_and(|t| t.contains("arena_max"));
    (!tuned).then(|| cores.max(1) * MALLOC_HEAPS_PER_CORE)
}

/// Caps `malloc`'s heaps (`M_ARENA_MAX`) before the relay starts its threads; see
/// `MALLOC_HEAPS_PER_CORE`. Only glibc has the setting; elsewhere this does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn cap_malloc_heaps(env: &BTreeMap<String, String>) {
    const M_ARENA_MAX: std::ffi::c_int = -8;
    extern "C" {
        fn get_nprocs() -> std::ffi::c_int;
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: get_nprocs takes nothing and only reads the system's count of online cores,
    // the count malloc's own default is made of.
    let cores = unsafe { get_nprocs() };
    if let Some(cap) = malloc_heap_cap(env, usize::try_from(cores).unwrap_or(1)) {
        let cap = std::ffi::c_int::try_from(cap).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: mallopt takes any parameter and value and only sets malloc's own limit;
        // malloc reads it when a thread next needs a heap.
        unsafe { mallopt(M_ARENA_MAX, cap) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cap_malloc_heaps(_env: &BTreeMap<String, String>) {}

fn serve(args: &[String], env: &BTreeMap<String, String>) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return print_out(&serve_help());
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        return version();
    }
    let args = match Args::parse(args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("claude-codex-relay: {message}\nTry `claude-codex-relay serve --help`.");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(args.config_file.as_deref(), env, &args.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claude-codex-relay: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    cap_malloc_heaps(env);
    if let Err(e) = flexi_logger::Logger::try_with_env_or_str("info").and_then(|l| {
        // A closed or full standard error must cost log lines, never requests: the
        // logger's own complaints about it would panic the thread that logged.
        l.log_to_stderr()
            .error_channel(flexi_logger::ErrorChannel::DevNull)
            .start()
    }) {
        eprintln!("claude-codex-relay: cannot start logging: {e}");
    }
    let loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].contains(&config.host.as_str());
    let open_to_all = !loopback && config.auth_token.is_none() && config.agents.is_empty();
    let host = config.host.clone();
    let data = match config.store {
        StoreKind::File => absolute(&config.data_dir.join("messages.jsonl")),
        StoreKind::Memory => "memory only".into(),
    };
    let logs = format!(
        "{}, {}",
        absolute(&config.log_path),
        absolute(&config.channel_log_path)
    );
    let port = config.port;
    let addr_file = config.addr_file.clone();
    let signals = match claude_codex_relay::StopSignals::catch() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("claude-codex-relay: cannot catch SIGTERM and SIGINT: {e}");
            return ExitCode::from(1);
        }
    };
    let running = match claude_codex_relay::start(config) {
        Ok(r) => r,
        Err(e) => {
            let hint = match &e {
                Error::Io(io) if io.kind() == std::io::ErrorKind::AddrInUse => format!(
                    "\nIs another relay already running there (try `claude-codex-relay channels --url http://127.0.0.1:{port}`)? \
                     Or choose another port with --port (--port 0 picks a free one)."
                ),
                _ => String::new(),
            };
            return match e {
                Error::Config { .. } => {
                    eprintln!("claude-codex-relay: configuration error: {e}");
                    ExitCode::from(2)
                }
                _ => {
                    eprintln!("claude-codex-relay: cannot start: {e}{hint}");
                    ExitCode::from(1)
                }
            };
        }
    };
    if open_to_all {
        log::warn!(
            "listening on {host} without a token: anyone who can reach it can read and post; set auth_token",
        );
    }
    let addr = running.addr();
    let (url, bound) = if addr.ip().is_unspecified() {
        // 0.0.0.0 (or ::) is where it listens, not an address a client can use: name the
        // loopback one, which always works on this machine.
        let local = if addr.is_ipv4() { "127.0.0.1" } else { "[::1]" };
        (
            format!("http://{local}:{}", addr.port()),
            format!(" (bound to {addr}: also reachable at this machine's other addresses)"),
        )
    } else {
        (format!("http://{addr}"), String::new())
    };
    let cannot_write = |path: &Path, e: std::io::Error| {
        eprintln!(
            "claude-codex-relay: configuration error: {}: addr_file: cannot write: {e}",
            absolute(path)
        );
        ExitCode::from(2)
    };
    // Written before the start line, so that a file that cannot be written stops start-up
    // before anything says the relay listens; put in place after it, so that whoever sees the
    // file finds the line written too.
    let addr_file = match addr_file {
        Some(path) => match prepare_addr_file(&path, &url) {
            Ok(tmp) => Some((path, tmp)),
            Err(e) => return cannot_write(&path, e),
        },
        None => None,
    };
    // Written, not printed: a closed standard output must not stop the relay.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "claude-codex-relay listening on {url}{bound} (MCP {url}/mcp, web {url}/); logs: {logs}; data: {data}");
    let _ = stdout.flush();
    if let Some((path, tmp)) = addr_file {
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return cannot_write(&path, e);
        }
    }
    running.serve_until(signals);
    ExitCode::SUCCESS
}

/// Writes `url` and a newline beside `path` (creating its folder, as the log folders are
/// created), for a rename to put in place: a script polling for the file never reads half an
/// address. Returns the file written.
fn prepare_addr_file(path: &Path, url: &str) -> std::io::Result<PathBuf> {
    if path.is_dir() {
        return Err(std::io::Error::other("it is a folder"));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            let why = claude_codex_relay::error::folder_failure(path, &e);
            std::io::Error::new(e.kind(), why)
        })?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{url}\n"))?;
    Ok(tmp.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_heaps_are_capped_per_core_unless_the_environment_sets_a_cap() {
        let none = BTreeMap::new();
        assert_eq!(malloc_heap_cap(&none, 2), Some(2 * MALLOC_HEAPS_PER_CORE));
        assert_eq!(malloc_heap_cap(&none, 0), Some(MALLOC_HEAPS_PER_CORE));
        let set = |name: &str, value: &str| BTreeMap::from([(name.into(), value.into())]);
        assert_eq!(malloc_heap_cap(&set("MALLOC_ARENA_MAX", "16"), 2), None);
        let tuned = set("GLIBC_TUNABLES", "glibc.malloc.arena_max=1");
        assert_eq!(malloc_heap_cap(&tuned, 2), None);
        let other = set("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0");
        assert_eq!(malloc_heap_cap(&other, 2), Some(2 * MALLOC_HEAPS_PER_CORE));
    }
}
