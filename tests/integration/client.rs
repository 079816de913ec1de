//! The built-in client against an in-process relay: `client::run` is called directly with
//! in-memory standard streams (a channel-backed writer where a test must see output while a
//! command is still running), and the real binary where signals matter. Covered: the post /
//! fetch round trip, standard input, `--json` read back, exit codes for a refused connection,
//! a 4xx and a usage error, the blocking fetch, and `watch --exec` across a relay restart, with
//! its state file and its loop guard.

use crate::common::{config_in, deadline, start_again, Relay, PATIENCE};
use claude_codex_relay::client::{self, Io};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// What a finished command left behind.
struct Done {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The environment a command sees: only PATH (for `sh`), plus `extra`.
fn env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k == "PATH").collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Runs a client command to completion with `stdin` as its input.
fn run_with(command: &str, args: &[&str], stdin: &str, env: &BTreeMap<String, String>) -> Done {
    let (mut input, mut out, mut err) = (stdin.as_bytes(), Vec::new(), Vec::new());
    let code = client::run(
        command,
        &strings(args),
        env,
        &mut Io {
            stdin: &mut input,
            stdout: &mut out,
            stderr: &mut err,
        },
    );
    Done {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn run(command: &str, args: &[&str]) -> Done {
    run_with(command, args, "", &env(&[]))
}

/// A writer that sends every complete line to a channel.
struct Lines {
    to: mpsc::Sender<String>,
    partial: Vec<u8>,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(at) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            let _ = self
                .to
                .send(String::from_utf8_lossy(&line[..at]).into_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client command running on its own thread, its output read line by line with deadlines.
struct Running {
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
    code: mpsc::Receiver<i32>,
}

impl Running {
    fn start(command: &'static str, args: &[&str]) -> Running {
        let args = strings(args);
        let (out_tx, stdout) = mpsc::channel();
        let (err_tx, stderr) = mpsc::channel();
        let (code_tx, code) = mpsc::channel();
        thread::spawn(move || {
            let mut out = Lines {
                to: out_tx,
                partial: Vec::new(),
            };
            let mut err = Lines {
                to: err_tx,
                partial: Vec::new(),
            };
            let code = client::run(
                command,
                &args,
                &env(&[]),
                &mut Io {
                    stdin: &mut std::io::empty(),
                    stdout: &mut out,
                    stderr: &mut err,
                },
            );
            let _ = code_tx.send(code);
        });
        Running {
            stdout,
            stderr,
            code,
        }
    }

    /// The next line of standard output.
    fn line(&self, deadline: Instant) -> String {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stdout.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no output line in time; stderr so far:\n{}",
                self.stderr.try_iter().collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// The exit code, once the command has finished.
    fn finish(&self, deadline: Instant) -> i32 {
        let left = deadline.saturating_duration_since(Instant::now());
        self.code.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "the command did not finish in time; stderr so far:\n{}",
                self.stderr.try_iter().collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// Waits for a line of standard error that contains `text`.
    fn stderr_line_containing(&self, text: &str, deadline: Instant) -> String {
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no {text:?} on stderr in time; got:\n{}", seen.join("\n")),
            }
        }
    }

    fn rest_of_stdout(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

/// `--json` output: one message object per line.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn post_and_fetch_round_trip() {
    let relay = Relay::start();
    let url = relay.base.as_str();
    let posted = run(
        "post",
        &[
            "--url", url, "--target", "proj-x", "--sender", "claude", "hello", "world",
        ],
    );
    assert_eq!(posted.code, 0, "{}", posted.stderr);
    assert_eq!(posted.stdout, "#1 [claude] hello world\n");
    let second = run(
        "post",
        &[
            "--url",
            url,
            "--target",
            "proj-x",
            "--sender",
            "codex",
            "--json",
            "looks good",
        ],
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    let answer: Value = serde_json::from_str(second.stdout.trim()).unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["posted"], 2);
    assert_eq!(answer["message"]["text"], "looks good");

    let fetched = run("fetch", &["--url", url, "--target", "proj-x"]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    assert_eq!(
        fetched.stdout,
        "#1 [claude] hello world\n#2 [codex] looks good\n"
    );
    // Without a scheme, the URL means http.
    let bare = url.trim_start_matches("http://");
    let after = run(
        "fetch",
        &["--url", bare, "--target", "proj-x", "--since-id", "1"],
    );
    assert_eq!(after.stdout, "#2 [codex] looks good\n");
    let newest = run(
        "fetch",
        &["--url", url, "--target", "proj-x", "--limit", "1"],
    );
    assert_eq!(newest.stdout, "#2 [codex] looks good\n");
    let other = run("fetch", &["--url", url, "--target", "elsewhere"]);
    assert_eq!((other.code, other.stdout.as_str()), (0, ""));

    let channels = run("channels", &["--url", url]);
    assert_eq!(channels.code, 0, "{}", channels.stderr);
    let names: Vec<&str> = channels.stdout.lines().collect();
    for name in ["claude", "codex", "proj-x"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let json = run("channels", &["--url", url, "--json"]);
    let parsed: Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(parsed["channels"].as_array().unwrap().len(), names.len());
}

#[test]
fn post_reads_standard_input_and_json_reads_back_exactly() {
    let relay = Relay::start();
    let url = relay.base.as_str();
    let packet = "## Review packet\n\n```diff\n-a \"quoted\"\n+b\ttab\n```\nüñí\n";
    let posted = run_with(
        "post",
        &[
            "--url", url, "--target", "proj-x", "--sender", "claude", "-",
        ],
        packet,
        &env(&[]),
    );
    assert_eq!(posted.code, 0, "{}", posted.stderr);
    assert_eq!(posted.stdout, "#1 [claude] ## Review packet\n");
    run(
        "post",
        &[
            "--url", url, "--target", "proj-x", "--sender", "codex", "ok",
        ],
    );
    let fetched = run("fetch", &["--url", url, "--target", "proj-x", "--json"]);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    let messages = json_lines(&fetched.stdout);
    assert_eq!(messages.len(), 2);
    // Trailing newlines go, as with the shell's $(...); everything else is kept.
    assert_eq!(messages[0]["text"], packet.trim_end_matches('\n'));
    assert_eq!(messages[0]["sender"], "claude");
    assert_eq!(messages[0]["target"], "proj-x");
    assert_eq!(messages[0]["id"], 1);
    assert!(messages[0]["ts"].as_f64().unwrap() > 1.6e9);
    assert_eq!(messages[1]["text"], "ok");

    let full = run(
        "fetch",
        &["--url", url, "--target", "proj-x", "--full", "--limit", "1"],
    );
    let (head, body) = full.stdout.split_once('\n').unwrap();
    assert!(head.starts_with("#2 [codex] 20"), "{head}");
    assert_eq!(body, "ok\n\n");
}

#[test]
fn url_and_token_come_from_the_environment_and_a_refused_token_exits_1() {
    let relay = Relay::with(|c| c.auth_token = Some("s3cret".into()));
    let url = relay.base.as_str();
    let args = ["--target", "proj-x", "--sender", "claude", "hi"];
    let refused = run_with("post", &args, "", &env(&[("CLAUDE_CODEX_URL", url)]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("CLAUDE_CODEX_TOKEN"),
        "{}",
        refused.stderr
    );
    let wrong = run_with(
        "post",
        &args,
        "",
        &env(&[("CLAUDE_CODEX_URL", url), ("CLAUDE_CODEX_TOKEN", "guess")]),
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    let accepted = run_with(
        "post",
        &args,
        "",
        &env(&[("CLAUDE_CODEX_URL", url), ("CLAUDE_CODEX_TOKEN", "s3cret")]),
    );
    assert_eq!(accepted.code, 0, "{}", accepted.stderr);
    let token_file = relay.dir.path("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let from_file = run(
        "fetch",
        &[
            "--url",
            url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--target",
            "proj-x",
        ],
    );
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    assert_eq!(from_file.stdout, "#1 [claude] hi\n");
}

#[test]
fn exit_codes_for_a_4xx_a_refused_connection_and_usage_errors() {
    let relay = Relay::start();
    let url = relay.base.as_str();
    let blank = run(
        "post",
        &[
            "--url", url, "--target", "proj-x", "--sender", "claude", "   ",
        ],
    );
    assert_eq!(blank.code, 1, "{}", blank.stderr);
    assert!(
        blank.stderr.contains("400") && blank.stderr.contains("text"),
        "{}",
        blank.stderr
    );
    let too_large = run_with(
        "post",
        &[
            "--url", url, "--target", "proj-x", "--sender", "claude", "-",
        ],
        &"x".repeat(2 << 20),
        &env(&[]),
    );
    assert_eq!(too_large.code, 1, "{}", too_large.stderr);
    assert!(too_large.stderr.contains("413"), "{}", too_large.stderr);

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (command, args) in [
        ("fetch", &["--target", "proj-x"][..]),
        ("post", &["--target", "proj-x", "--sender", "claude", "hi"]),
        ("channels", &[]),
    ] {
        let mut all = vec!["--url", closed.as_str()];
        all.extend_from_slice(args);
        let down = run(command, &all);
        assert_eq!(down.code, 3, "{command}: {}", down.stderr);
        assert!(down.stderr.contains(&closed), "{}", down.stderr);
    }

    for (command, args) in [
        ("post", &["--url", url, "--target", "proj-x", "hi"][..]),
        (
            "post",
            &["--url", url, "--target", "proj-x", "--sender", "c"],
        ),
        ("fetch", &["--url", url]),
        ("fetch", &["--url", url, "--target", "t", "--limit", "many"]),
        ("fetch", &["--url", url, "--target", "t", "--wait", "5"]),
        (
            "fetch",
            &["--url", url, "--target", "t", "--json", "--full"],
        ),
        ("fetch", &["--url", "ftp://x", "--target", "t"]),
        ("channels", &["--url", "http://127.0.0.1:99999"]),
        ("channels", &["--url", "127.0.0.1:"]),
        ("channels", &["--url", "http://:18501"]),
        ("channels", &["--url", "http://user@:18501/relay"]),
        ("channels", &["--url", "http:///api"]),
        (
            "post",
            &[
                "--url",
                url,
                "--target",
                "t",
                "--sender",
                "s",
                "--idempotency-key",
                "",
                "hi",
            ],
        ),
        (
            "post",
            &[
                "--url",
                url,
                "--target",
                "t",
                "--sender",
                "s",
                "--idempotency-key",
                " \t",
                "hi",
            ],
        ),
        ("channels", &["--url", url, "--token", "a\r\nX-Injected: 1"]),
        ("watch", &["--url", url, "--target", "t", "--per", "0"]),
        ("channels", &["--url", url, "--bogus"]),
        ("teleport", &[]),
    ] {
        let bad = run(command, args);
        assert_eq!(bad.code, 2, "{command} {args:?}: {}", bad.stderr);
        assert!(bad.stderr.contains("--help"), "{}", bad.stderr);
    }
    let help = run("fetch", &["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.starts_with("Usage: claude-codex-relay fetch"),
        "{}",
        help.stdout
    );
    assert!(
        client::usage().contains(&help.stdout[..200]),
        "fetch's own section of the help"
    );
    assert!(
        !help.stdout.contains("claude-codex-relay watch"),
        "only fetch's help"
    );
    for code in ["0 ", "1 ", "2 ", "3 ", "4 ", "5 "] {
        assert!(
            client::usage().contains(&format!("\n  {code} ")),
            "exit {code}"
        );
    }
}

#[test]
fn fetch_limit_beyond_the_relays_largest_page_is_a_usage_error() {
    let relay = Relay::start();
    relay.post("t", "s", "one");
    for (limit, said) in [
        ("501", "--limit must be a number from 1 to 500, not 501"),
        ("0", "--limit must be a number from 1 to 500, not 0"),
        (
            "many",
            "--limit must be a number from 1 to 500, not \"many\"",
        ),
    ] {
        let bad = run(
            "fetch",
            &["--url", &relay.base, "--target", "t", "--limit", limit],
        );
        assert_eq!(bad.code, 2, "{limit}: {}", bad.stderr);
        assert!(bad.stderr.contains(said), "{limit}: {}", bad.stderr);
        assert!(bad.stdout.is_empty());
    }
    let most = run(
        "fetch",
        &["--url", &relay.base, "--target", "t", "--limit", "500"],
    );
    assert_eq!(most.code, 0, "{}", most.stderr);
    assert_eq!(most.stdout, "#1 [s] one\n");
}

#[test]
fn fetch_wait_returns_as_soon_as_a_message_arrives() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let waiting = Running::start(
        "fetch",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--since-id",
            "0",
            "--wait",
            "30",
        ],
    );
    let id = relay.post("proj-x", "claude", "wake up\nsecond line");
    assert_eq!(waiting.line(deadline()), format!("#{id} [claude] wake up"));
    assert_eq!(waiting.finish(deadline()), 0);
    let empty = run(
        "fetch",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--since-id",
            &id.to_string(),
            "--wait",
            "0.2",
        ],
    );
    assert_eq!(
        (empty.code, empty.stdout.as_str()),
        (0, ""),
        "{}",
        empty.stderr
    );
}

/// Prints one line per run with what CMD saw in its environment and on its standard input.
const REPORT: &str = r#"printf 'ran id=%s sender=%s target=%s url=%s text=%s\n' "$RELAY_MESSAGE_ID" "$RELAY_SENDER" "$RELAY_TARGET" "$RELAY_URL" "$(head -n 1)""#;

#[test]
fn watch_runs_cmd_once_per_message_through_a_relay_restart_and_resumes_from_its_state() {
    let mut relay = Relay::start();
    let url = relay.base.clone();
    let state = relay.dir.path("watch.last_id");
    let state_arg = state.to_str().unwrap().to_string();
    let first = relay.post("proj-x", "claude", "packet one\n```diff\n+x\n```");
    relay.post("proj-x", "codex", "my own answer");
    relay.post("elsewhere", "claude", "another channel");
    let args = [
        "--url",
        &url,
        "--target",
        "proj-x",
        "--ignore-sender",
        "codex",
        "--exec",
        REPORT,
        "--state",
        &state_arg,
        "--since-id",
        "0",
    ];
    let ran = |id: u64, text: &str| {
        format!("ran id={id} sender=claude target=proj-x url={url} text={text}")
    };
    let mut three = args.to_vec();
    three.extend(["--count", "3"]);
    let watcher = Running::start("watch", &three);
    assert_eq!(watcher.line(deadline()), ran(first, "packet one"));

    // The relay goes away, stays down until the watcher has noticed, and comes back on the
    // same port and data directory.
    let mut config = config_in(&relay.dir);
    config.port = relay.addr().port();
    relay.running.take().unwrap().shutdown();
    watcher.stderr_line_containing("relay unavailable", deadline());
    relay.running = Some(start_again(config));
    let second = relay.post("proj-x", "claude", "packet two");
    assert_eq!(watcher.line(deadline()), ran(second, "packet two"));
    relay.post("proj-x", "codex", "answer two");
    let third = relay.post("proj-x", "claude", "packet three");
    assert_eq!(watcher.line(deadline()), ran(third, "packet three"));
    assert_eq!(watcher.finish(deadline()), 0, "{}", watcher.stderr());
    assert_eq!(
        watcher.rest_of_stdout(),
        Vec::<String>::new(),
        "one run per message"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{third}\n")
    );
    watcher.stderr_line_containing("relay is back", deadline());

    // Stopped, it misses nothing: a message posted meanwhile runs next, once; the handled
    // ones do not run again (the state file wins over --since-id 0).
    relay.post("proj-x", "codex", "answer three");
    let fourth = relay.post("proj-x", "claude", "packet four");
    let mut one = args.to_vec();
    one.extend(["--count", "1"]);
    let resumed = run("watch", &one);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout, format!("{}\n", ran(fourth, "packet four")));
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{fourth}\n")
    );
}

#[test]
fn counts_of_one_read_in_the_singular() {
    let relay = Relay::memory();
    let url = relay.base.clone();
    relay.post("one", "claude", "only");
    relay.post("two", "claude", "first");
    relay.post("two", "claude", "second");
    let detail = run("channels", &["--url", &url, "--detail"]);
    assert_eq!(detail.code, 0, "{}", detail.stderr);
    let lines: Vec<&str> = detail.stdout.lines().collect();
    assert!(
        lines.contains(&"one #1 (1 message): nobody listening"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"two #3 (2 messages): nobody listening"),
        "{lines:?}"
    );

    let args = [
        "--url",
        &url,
        "--target",
        "two",
        "--exec",
        "true",
        "--since-id",
        "0",
        "--max-runs",
        "1",
    ];
    let tripped = run("watch", &args);
    assert_eq!(tripped.code, 4, "{}", tripped.stderr);
    assert!(
        tripped.stderr.contains("CMD already ran 1 time in 600 s,"),
        "{}",
        tripped.stderr
    );

    let one = run("delete", &["--url", &url, "--target", "one"]);
    assert_eq!(
        one.stdout, "deleted channel one (1 message)\n",
        "{}",
        one.stderr
    );
    let two = run("delete", &["--url", &url, "--target", "two"]);
    assert_eq!(
        two.stdout, "deleted channel two (2 messages)\n",
        "{}",
        two.stderr
    );
}

#[test]
fn the_loop_guard_stops_watch_at_the_cap_and_a_restart_takes_up_the_next_message() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let state = relay.dir.path("guard.last_id");
    let state_arg = state.to_str().unwrap().to_string();
    let ids: Vec<u64> = (1..=3)
        .map(|n| relay.post("proj-x", "claude", &format!("ping {n}")))
        .collect();
    let cmd = r#"echo "ran $RELAY_MESSAGE_ID""#;
    let base = [
        "--url",
        &url,
        "--target",
        "proj-x",
        "--exec",
        cmd,
        "--state",
        &state_arg,
        "--since-id",
        "0",
    ];
    let mut capped = base.to_vec();
    capped.extend(["--max-runs", "2", "--per", "600"]);
    let tripped = run("watch", &capped);
    assert_eq!(tripped.code, 4, "{}", tripped.stderr);
    assert_eq!(tripped.stdout, format!("ran {}\nran {}\n", ids[0], ids[1]));
    assert!(tripped.stderr.contains("loop guard"), "{}", tripped.stderr);
    assert!(
        tripped.stderr.contains(&format!("before #{}", ids[2])),
        "{}",
        tripped.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{}\n", ids[1])
    );

    let mut again = base.to_vec();
    again.extend(["--max-runs", "0", "--count", "1"]);
    let resumed = run("watch", &again);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.stdout, format!("ran {}\n", ids[2]));
}

#[test]
fn watch_prints_new_messages_from_the_newest_on_and_filters_by_sender() {
    let relay = Relay::start();
    let url = relay.base.clone();
    relay.post("proj-x", "claude", "old news");
    let watcher = Running::start(
        "watch",
        &[
            "--url", &url, "--target", "proj-x", "--from", "codex", "--json", "--count", "2",
        ],
    );
    // Until the watcher has said where it starts, a post could land before its starting point.
    let started = watcher.stderr.recv_timeout(PATIENCE).unwrap();
    assert!(started.contains("watch: watching proj-x"), "{started}");
    relay.post("proj-x", "claude", "not from codex");
    let a = relay.post("proj-x", "codex", "first verdict");
    let b = relay.post("proj-x", "codex", "second verdict");
    let lines: Vec<Value> = [watcher.line(deadline()), watcher.line(deadline())]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["id"], a);
    assert_eq!(lines[0]["text"], "first verdict");
    assert_eq!(lines[1]["id"], b);
    assert_eq!(watcher.finish(deadline()), 0);
}

#[test]
fn watch_from_and_ignore_sender_take_comma_separated_lists_and_repeats() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let claude = relay.post("proj-x", "claude", "from claude");
    relay.post("proj-x", "x", "from x");
    relay.post("proj-x", "a", "from a");
    let b = relay.post("proj-x", "b", "from b");
    // The messages are there before the watch starts: --timeout only ends a watch that
    // passes one of them over.
    let done = run(
        "watch",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--since-id",
            "0",
            "--from",
            "claude, a",
            "--from",
            "b",
            "--ignore-sender",
            "a,z",
            "--json",
            "--count",
            "2",
            "--timeout",
            "30",
        ],
    );
    assert_eq!(done.code, 0, "{}", done.stderr);
    let ids: Vec<Value> = json_lines(&done.stdout)
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [claude, b]);
    // A name in the list that no post could have is a usage error, like mcp's.
    let bad = run(
        "watch",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--from",
            "claude,bell\u{7}",
        ],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--from"), "{}", bad.stderr);
    // Given blank (an unset "$PEER"), it names no one: a usage error, never "everyone".
    for (option, blank) in [("--from", ""), ("--from", ","), ("--ignore-sender", " ")] {
        let blank = run(
            "watch",
            &[
                "--url",
                &url,
                "--target",
                "proj-x",
                "--timeout",
                "1",
                option,
                blank,
            ],
        );
        assert_eq!(blank.code, 2, "{option}: {}", blank.stderr);
        assert!(blank.stderr.contains("names no one"), "{}", blank.stderr);
    }
}

#[test]
fn a_garbled_state_file_is_a_usage_error_not_a_replay() {
    let relay = Relay::start();
    let state = relay.dir.path("bad.last_id");
    std::fs::write(&state, "twelve\n").unwrap();
    let done = run(
        "watch",
        &[
            "--url",
            &relay.base,
            "--target",
            "proj-x",
            "--state",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(done.code, 2, "{}", done.stderr);
    assert!(done.stderr.contains("twelve"), "{}", done.stderr);
}

/// The binary, with no CLAUDE_CODEX_* variables from the test's own environment.
fn binary() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CLAUDE_CODEX_") {
            command.env_remove(key);
        }
    }
    command
}

/// Fails at once, with a clear message, while `main` does not hand client commands to
/// `client::run`.
fn require_dispatch() {
    let probe = binary()
        .args(["channels", "--url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_dispatched(&probe);
}

fn assert_dispatched(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("configuration error") && !stderr.contains("unexpected argument"),
        "src/main.rs does not dispatch post/fetch/channels/watch to client::run yet: {stderr}"
    );
}

#[test]
fn the_binary_posts_from_stdin_and_fetches_json_with_the_url_from_the_environment() {
    require_dispatch();
    use std::process::Stdio;
    let relay = Relay::start();
    let mut post = binary()
        .args(["post", "--target", "proj-x", "--sender", "claude", "-"])
        .env("CLAUDE_CODEX_URL", &relay.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    post.stdin
        .take()
        .unwrap()
        .write_all(b"Summary:\n- binary\n")
        .unwrap();
    let posted = post.wait_with_output().unwrap();
    assert_dispatched(&posted);
    assert_eq!(posted.status.code(), Some(0), "{posted:?}");
    assert_eq!(
        String::from_utf8_lossy(&posted.stdout),
        "#1 [claude] Summary:\n"
    );
    let fetched = binary()
        .args(["fetch", "--target", "proj-x", "--json"])
        .env("CLAUDE_CODEX_URL", &relay.base)
        .output()
        .unwrap();
    assert_eq!(fetched.status.code(), Some(0), "{fetched:?}");
    let messages = json_lines(&String::from_utf8_lossy(&fetched.stdout));
    assert_eq!(messages[0]["text"], "Summary:\n- binary");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let down = binary()
        .args(["channels", "--url", &closed])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3), "{down:?}");
}

#[test]
fn sigterm_ends_watch_and_the_cmd_it_is_running_and_the_message_runs_again_at_restart() {
    require_dispatch();
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let relay = Relay::start();
    let state = relay.dir.path("sig.last_id");
    let fifo = relay.dir.path("cmd.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let before = relay.post("proj-x", "codex", "before");
    std::fs::write(&state, format!("{before}\n")).unwrap();
    let id = relay.post("proj-x", "claude", "a long review");
    // CMD reports on the FIFO (its stdout dies with the watcher) that it started (once its trap
    // is set, so a stop that follows at once is seen), and whether it was asked to stop.
    let cmd = r#"exec 3>"$FIFO"; trap 'echo terminated >&3; exit 0' TERM; echo "started $RELAY_MESSAGE_ID" >&3; sleep 60 & wait"#;
    let mut watcher = binary()
        .args(["watch", "--url", &relay.base, "--target", "proj-x"])
        .args(["--state", state.to_str().unwrap(), "--exec", cmd])
        .env("FIFO", &fifo)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, reports) = mpsc::channel();
    let path = fifo.clone();
    thread::spawn(move || {
        // Opening a FIFO for reading blocks until CMD opens it for writing.
        let reader = BufReader::new(std::fs::File::open(path).unwrap());
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = |deadline: Instant| {
        reports
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    };
    assert_eq!(
        next(deadline()).as_deref(),
        Some(format!("started {id}").as_str())
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &watcher.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let status = watcher.wait();
        let _ = done_tx.send(status.map(|s| s.signal()));
    });
    let status = done
        .recv_timeout(PATIENCE)
        .expect("watch ends at once on SIGTERM");
    assert_eq!(status.unwrap(), Some(15));
    assert_eq!(
        next(deadline()).as_deref(),
        Some("terminated"),
        "CMD is stopped too"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{before}\n"),
        "the interrupted message is not marked handled"
    );
    let again = binary()
        .args([
            "watch",
            "--url",
            &relay.base,
            "--target",
            "proj-x",
            "--count",
            "1",
        ])
        .args(["--state", state.to_str().unwrap()])
        .args(["--exec", r#"echo "again $RELAY_MESSAGE_ID""#])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("again {id}\n")
    );
}

/// The lines a child process writes to stdout, as they come.
fn stdout_lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn script(name: &str) -> String {
    format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn review_poll_prints_the_original_lines_from_a_blocking_fetch_with_either_client() {
    require_dispatch();
    let has = |tool: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let curl_and_jq = has("curl") && has("jq");
    for via in ["binary", "curl"] {
        let relay = Relay::start();
        let last = relay.dir.path("last_id");
        relay.post("proj-x", "claude", "\n  packet one\nmore");
        relay.post("proj-x", "codex", "my own");
        relay.post("proj-x", "claude", "packet [three]");
        let mut command = std::process::Command::new("bash");
        command
            .arg(script("review-poll.sh"))
            .env("BASE_URL", &relay.base)
            .env("LASTFILE", &last)
            .env("INTERVAL", "1")
            .env(
                "RELAY_BIN",
                if via == "binary" {
                    env!("CARGO_BIN_EXE_claude-codex-relay")
                } else {
                    ""
                },
            )
            .stdout(std::process::Stdio::piped());
        if via == "curl" && !curl_and_jq {
            // Without curl or jq (and with no binary named) the script says what it needs.
            let out = command.env("PATH", "/nonexistent").output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{out:?}");
            continue;
        }
        let mut poller = command.spawn().unwrap();
        let lines = stdout_lines(&mut poller);
        let next = || lines.recv_timeout(PATIENCE).unwrap();
        let start = next();
        assert!(start.contains(" poller_start pid="), "{via}: {start}");
        assert!(start.contains("target=proj-x last=0"), "{via}: {start}");
        assert!(next().ends_with(" new_messages"), "{via}");
        assert_eq!(next(), "#1 [claude] packet one", "{via}");
        assert_eq!(next(), "#3 [claude] packet [three]", "{via}");
        // Polls 2 and 3 wait a second each for nothing; the third poll brings the heartbeat.
        assert!(next().ends_with(" heartbeat last=3"), "{via}");
        assert_eq!(std::fs::read_to_string(&last).unwrap(), "3\n");
        relay.post("proj-x", "claude", "packet four");
        assert!(next().ends_with(" new_messages"), "{via}");
        assert_eq!(next(), "#4 [claude] packet four", "{via}");
        std::process::Command::new("kill")
            .args(["-TERM", &poller.id().to_string()])
            .status()
            .unwrap();
        let stop = loop {
            let line = next();
            if !line.ends_with("heartbeat last=4") {
                break line;
            }
        };
        assert!(stop.contains(" poller_term pid="), "{via}: {stop}");
        assert!(poller.wait().unwrap().success());
    }
}

#[test]
fn the_auto_review_loop_runs_codex_exec_per_message_and_stops_at_its_guard() {
    require_dispatch();
    let relay = Relay::start();
    let dir = &relay.dir;
    let codex = dir.path("fake-codex");
    std::fs::write(
        &codex,
        "#!/bin/sh\nprintf 'codex'; printf ' <%s>' \"$@\"; echo\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", codex.to_str().unwrap()])
        .status()
        .unwrap();
    let one = relay.post("proj-x", "claude", "packet one");
    relay.post("proj-x", "codex", "review one");
    let two = relay.post("proj-x", "claude", "packet two");
    relay.post("proj-x", "claude", "packet three");
    let out = std::process::Command::new("bash")
        .arg(script("auto-review-loop.sh"))
        .env("BASE_URL", &relay.base)
        .env("LASTFILE", dir.path("codex/auto-loop.last_id"))
        .env("SINCE_ID", "0")
        .env("SESSION_ID", "abc123")
        .env("MAX_RUNS", "2")
        .env("CODEX_BIN", &codex)
        .env("RELAY_BIN", env!("CARGO_BIN_EXE_claude-codex-relay"))
        .output()
        .unwrap();
    assert_dispatched(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout}\n{stderr}");
    assert!(stderr.contains("loop guard"), "{stderr}");
    let runs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("codex")).collect();
    assert_eq!(runs.len(), 2, "{stdout}");
    for (run, id) in runs.iter().zip([one, two]) {
        assert!(
            run.starts_with(
                "codex <exec> <--dangerously-bypass-approvals-and-sandbox> <resume> <abc123> <A new message"
            ),
            "{run}"
        );
        assert!(run.contains(&format!("#{id} from claude")), "{run}");
        assert!(run.contains(&format!("since_id={}", id - 1)), "{run}");
        assert!(run.contains("sender=\"codex\""), "{run}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path("codex/auto-loop.last_id")).unwrap(),
        format!("{two}\n")
    );
}

/// Standard error for `post --await`: when the posted line appears (the post is answered and the
/// wait has not begun), it posts `reply` to the relay and returns only once that is stored.
struct ReplyOnPosted {
    url: String,
    reply: Option<(String, String)>,
    seen: Vec<u8>,
}

impl Write for ReplyOnPosted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.seen.extend_from_slice(buf);
        if String::from_utf8_lossy(&self.seen).contains("posted #") {
            if let Some((sender, text)) = self.reply.take() {
                let (status, _) = crate::common::post_json(
                    &format!("{}/api/messages", self.url),
                    &serde_json::json!({"target": "proj-x", "sender": sender, "text": text}),
                );
                assert_eq!(status, 201);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn post_await_receives_a_reply_posted_before_the_wait_begins() {
    let relay = Relay::start();
    let url = relay.base.clone();
    // An older codex message must not count: only one after the posted packet does.
    let earlier = run(
        "post",
        &[
            "--url", &url, "--target", "proj-x", "--sender", "codex", "old",
        ],
    );
    assert_eq!(earlier.code, 0, "{}", earlier.stderr);
    let mut stderr = ReplyOnPosted {
        url: url.clone(),
        reply: Some(("codex".into(), "verdict: approve\nall good".into())),
        seen: Vec::new(),
    };
    let mut stdout = Vec::new();
    let code = client::run(
        "post",
        &strings(&[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--sender",
            "claude",
            "--await",
            "codex",
            "--timeout",
            "30",
            "--",
            "- a markdown list item",
        ]),
        &env(&[]),
        &mut Io {
            stdin: &mut std::io::empty(),
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
    );
    let err = String::from_utf8_lossy(&stderr.seen).into_owned();
    assert_eq!(code, 0, "{err}");
    assert!(stderr.reply.is_none(), "the reply was posted: {err}");
    let out = String::from_utf8(stdout).unwrap();
    assert!(out.starts_with("#3 [codex] "), "{out}");
    assert!(out.contains("verdict: approve\nall good"), "{out}");
    assert!(
        err.contains("posted #2 [claude] - a markdown list item"),
        "{err}"
    );
}

#[test]
fn post_await_times_out_with_exit_6_and_json_gives_the_reply_as_an_object() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let late = run(
        "post",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--sender",
            "claude",
            "--await",
            "codex",
            "--timeout",
            "0.2",
            "hello",
        ],
    );
    assert_eq!(late.code, 6, "{}", late.stderr);
    assert!(late.stderr.contains("timed out"), "{}", late.stderr);
    assert_eq!(late.stdout, "");
    let waiter = Running::start(
        "post",
        &[
            "--url", &url, "--target", "proj-x", "--sender", "claude", "--await", "codex",
            "--json", "again",
        ],
    );
    waiter.stderr_line_containing("posted #2", deadline());
    let (status, _) = crate::common::post_json(
        &format!("{url}/api/messages"),
        &serde_json::json!({"target": "proj-x", "sender": "codex", "text": "ok"}),
    );
    assert_eq!(status, 201);
    let line: Value = serde_json::from_str(&waiter.line(deadline())).unwrap();
    assert_eq!(
        (line["id"].as_u64(), line["text"].as_str()),
        (Some(3), Some("ok"))
    );
    assert_eq!(waiter.finish(deadline()), 0);
}

#[test]
fn post_await_names_post_in_its_status_lines() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let waiter = Running::start(
        "post",
        &[
            "--url", &url, "--target", "proj-x", "--sender", "claude", "--await", "codex", "hi",
        ],
    );
    let started = waiter.stderr_line_containing("watching proj-x", deadline());
    assert!(started.contains(" post: watching proj-x on "), "{started}");
    relay.post("proj-x", "codex", "ok");
    assert!(waiter.line(deadline()).starts_with("#2 [codex]"));
    assert_eq!(waiter.finish(deadline()), 0);
    let rest = waiter.stderr();
    assert!(!rest.contains("watch"), "{rest}");
}

#[test]
fn fetch_newest_reads_the_end_and_says_when_more_follow() {
    let relay = Relay::memory();
    for i in 1..=5 {
        relay.post("proj-x", "claude", &format!("m{i}"));
    }
    let url = relay.base.as_str();
    let oldest = run(
        "fetch",
        &[
            "--url",
            url,
            "--target",
            "proj-x",
            "--since-id",
            "0",
            "--limit",
            "2",
            "--json",
        ],
    );
    assert_eq!(oldest.code, 0, "{}", oldest.stderr);
    let ids: Vec<u64> = json_lines(&oldest.stdout)
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2]);
    assert!(
        oldest.stderr.contains("newest is #5") && oldest.stderr.contains("--since-id 2"),
        "{}",
        oldest.stderr
    );
    let newest = run(
        "fetch",
        &[
            "--url",
            url,
            "--target",
            "proj-x",
            "--since-id",
            "0",
            "--limit",
            "2",
            "--newest",
        ],
    );
    assert_eq!(newest.stdout, "#4 [claude] m4\n#5 [claude] m5\n");
    assert_eq!(newest.stderr, "", "nothing follows the newest page");
}

#[test]
fn post_await_prefers_the_reply_to_the_posted_message_over_one_answering_another() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let other = relay.post("proj-x", "claude", "an older packet");
    let waiter = Running::start(
        "post",
        &[
            "--url", &url, "--target", "proj-x", "--sender", "claude", "--await", "codex",
            "--json", "packet",
        ],
    );
    waiter.stderr_line_containing("posted #2", deadline());
    let post = |body: Value| {
        let (status, answer) = crate::common::post_json(&format!("{url}/api/messages"), &body);
        assert_eq!(status, 201, "{answer}");
    };
    post(
        serde_json::json!({"target": "proj-x", "sender": "codex", "text": "about the old one", "reply_to": other}),
    );
    post(
        serde_json::json!({"target": "proj-x", "sender": "codex", "text": "about this one", "reply_to": 2}),
    );
    let line: Value = serde_json::from_str(&waiter.line(deadline())).unwrap();
    assert_eq!(
        (line["id"].as_u64(), line["reply_to"].as_u64()),
        (Some(4), Some(2)),
        "{line}"
    );
    assert_eq!(waiter.finish(deadline()), 0);
}

#[test]
fn post_reply_to_fetch_reader_and_delete_from_the_command_line() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let first = run(
        "post",
        &[
            "--url", &url, "--target", "t", "--sender", "claude", "packet",
        ],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    let reply = run(
        "post",
        &[
            "--url",
            &url,
            "--target",
            "t",
            "--sender",
            "codex",
            "--reply-to",
            "1",
            "--json",
            "answer",
        ],
    );
    assert_eq!(reply.code, 0, "{}", reply.stderr);
    let answer: Value = serde_json::from_str(&reply.stdout).unwrap();
    assert_eq!(answer["message"]["reply_to"], 1);
    let unknown = run(
        "post",
        &[
            "--url",
            &url,
            "--target",
            "t",
            "--sender",
            "codex",
            "--reply-to",
            "99",
            "x",
        ],
    );
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("reply_to"), "{}", unknown.stderr);

    let read = |limit: &str| {
        let done = run(
            "fetch",
            &[
                "--url", &url, "--target", "t", "--reader", "codex", "--limit", limit, "--json",
            ],
        );
        assert_eq!(done.code, 0, "{}", done.stderr);
        json_lines(&done.stdout)
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect::<Vec<u64>>()
    };
    assert_eq!(read("1"), [1]);
    assert_eq!(read("10"), [2]);
    assert!(read("10").is_empty());

    let deleted = run("delete", &["--url", &url, "2"]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert_eq!(deleted.stdout, "deleted #2\n");
    let channel = run("delete", &["--url", &url, "--target", "t"]);
    assert_eq!(channel.code, 0, "{}", channel.stderr);
    assert_eq!(channel.stdout, "deleted channel t (1 message)\n");
    assert_eq!(relay.held_messages(), 0);
    assert_eq!(run("delete", &["--url", &url]).code, 2);
}

/// A proxy in front of a relay that passes the first request on but drops its answer, as a
/// connection lost after the post was stored would; later connections pass both ways.
fn lossy_proxy(relay: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let Ok(mut upstream) = TcpStream::connect(relay) else {
                return;
            };
            if n == 0 {
                // Forward the request, wait for the relay's first answer bytes, then hang up.
                let mut up = upstream.try_clone().unwrap();
                let mut down = client.try_clone().unwrap();
                thread::spawn(move || {
                    let _ = std::io::copy(&mut down, &mut up);
                });
                let mut byte = [0u8; 1];
                let _ = upstream.read(&mut byte);
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
            let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
            let (mut down_r, mut down_w) = (client.try_clone().unwrap(), client);
            thread::spawn(move || {
                let _ = std::io::copy(&mut down_r, &mut up_w);
                let _ = up_w.shutdown(Shutdown::Write);
            });
            thread::spawn(move || {
                let _ = std::io::copy(&mut up_r, &mut down_w);
                let _ = down_w.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn post_retries_a_lost_answer_with_its_idempotency_key_and_stores_the_message_once() {
    let relay = Relay::start();
    let proxy = lossy_proxy(relay.addr());
    let done = run(
        "post",
        &[
            "--url",
            &format!("http://{proxy}"),
            "--target",
            "t",
            "--sender",
            "claude",
            "--json",
            "stored once",
        ],
    );
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stderr.contains("retrying"), "{}", done.stderr);
    let answer: Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(answer["posted"], 1);
    assert_eq!(answer["repeated"], true, "{answer}");
    assert_eq!(relay.held_messages(), 1);
}

#[test]
fn export_writes_a_markdown_transcript_and_jsonl_that_a_relay_starts_from_identically() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let packet = "Review packet\n\n```diff\n-old\n+new\n```\nU+2028 here:\u{2028}end";
    let first = relay.post("proj-x", "claude", packet);
    relay.post("other", "codex", "elsewhere");
    let (status, _) = crate::common::post_json(
        &format!("{url}/api/messages"),
        &serde_json::json!({"target": "proj-x", "sender": "codex", "text": "approved", "reply_to": first}),
    );
    assert_eq!(status, 201);
    for n in 0..600 {
        relay.post("proj-x", "claude", &format!("filler {n}"));
    }

    let md = run("export", &["--url", &url, "--target", "proj-x"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(
        md.stdout
            .starts_with("# proj-x\n\n<a id=\"m1\"></a>\n\n## #1 · claude · "),
        "{}",
        &md.stdout[..80]
    );
    assert!(
        md.stdout.contains("```diff\n-old\n+new\n```"),
        "code block intact"
    );
    assert!(md.stdout.contains("<a id=\"m3\"></a>\n\n## #3 · codex · "));
    assert!(md.stdout.contains("*In reply to [#1](#m1).*\n\napproved"));
    assert!(!md.stdout.contains("elsewhere"));
    assert!(md.stdout.contains("filler 599"), "every page was read");

    let since = run(
        "export",
        &[
            "--url",
            &url,
            "--target",
            "proj-x",
            "--since-id",
            "600",
            "--format",
            "jsonl",
        ],
    );
    assert_eq!(since.code, 0, "{}", since.stderr);
    assert_eq!(json_lines(&since.stdout)[0]["id"], 601);

    let jsonl = run(
        "export",
        &["--url", &url, "--target", "proj-x", "--format", "jsonl"],
    );
    assert_eq!(jsonl.code, 0, "{}", jsonl.stderr);
    assert_eq!(jsonl.stdout.lines().count(), 602);
    let dir = crate::common::TempDir::new("export");
    let config = config_in(&dir);
    std::fs::create_dir_all(&config.data_dir).unwrap();
    std::fs::write(config.data_dir.join("messages.jsonl"), &jsonl.stdout).unwrap();
    let copy = Relay::start_in(dir, config);
    let all = |base: &str| {
        let page = crate::common::get(&format!(
            "{base}/api/messages?target=proj-x&since_id=0&limit=500"
        ));
        let more = crate::common::get(&format!(
            "{base}/api/messages?target=proj-x&since_id=500&limit=500"
        ));
        let mut list = page.json()["messages"].as_array().unwrap().clone();
        list.extend(more.json()["messages"].as_array().unwrap().iter().cloned());
        list
    };
    assert_eq!(all(&copy.base), all(&url));
    assert_eq!(all(&copy.base)[0]["text"], packet);

    let bad = run(
        "export",
        &["--url", &url, "--target", "proj-x", "--format", "pdf"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[test]
fn export_links_a_reply_to_its_messages_anchor_only_when_that_message_is_exported() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let reply = |to: u64, text: &str| {
        let (status, body) = crate::common::post_json(
            &format!("{url}/api/messages"),
            &serde_json::json!({"target": "proj-x", "sender": "codex", "text": text, "reply_to": to}),
        );
        assert_eq!(status, 201, "{body}");
    };
    let first = relay.post("proj-x", "claude", "first");
    let second = relay.post("proj-x", "claude", "second");
    reply(first, "to the first");
    reply(second, "to the second");
    let export = |since: &str| {
        let done = run(
            "export",
            &["--url", &url, "--target", "proj-x", "--since-id", since],
        );
        assert_eq!(done.code, 0, "{}", done.stderr);
        done.stdout
    };
    let all = export("0");
    for id in 1..=4 {
        assert_eq!(
            all.matches(&format!("<a id=\"m{id}\"></a>\n\n## #{id} · "))
                .count(),
            1,
            "{all}"
        );
    }
    assert!(
        all.contains("*In reply to [#1](#m1).*\n\nto the first"),
        "{all}"
    );
    assert!(
        all.contains("*In reply to [#2](#m2).*\n\nto the second"),
        "{all}"
    );
    // #1 is before --since-id: its reply names it without a link to an anchor not written.
    let later = export("1");
    assert!(!later.contains("id=\"m1\""), "{later}");
    assert!(
        later.contains("*In reply to #1.*\n\nto the first"),
        "{later}"
    );
    assert!(later.contains("*In reply to [#2](#m2).*"), "{later}");
    // A deleted message has no anchor either.
    let deleted = run("delete", &["--url", &url, &second.to_string()]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let without = export("0");
    assert!(
        without.contains("*In reply to #2.*\n\nto the second"),
        "{without}"
    );
    assert!(without.contains("*In reply to [#1](#m1).*"), "{without}");
}

#[test]
fn watch_as_a_name_that_is_not_ascii_is_listed_while_it_waits_and_gets_the_message() {
    let relay = Relay::start();
    let watcher = Running::start(
        "watch",
        &[
            "--url",
            &relay.base,
            "--target",
            "proj-x",
            "--as",
            "jürgen",
            "--count",
            "1",
        ],
    );
    crate::common::wait_until("watch --as jürgen is listed", || {
        if let Ok(code) = watcher.code.try_recv() {
            panic!(
                "watch ended with {code}: {}",
                watcher.stderr.try_iter().collect::<Vec<_>>().join("\n")
            );
        }
        let listing = crate::common::get_json(&relay.url("/api/channels?detail=1"));
        listing["detail"].as_array().unwrap().iter().any(|c| {
            c["name"] == "proj-x"
                && c["listeners"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["name"] == "jürgen")
        })
    });
    let id = relay.post("proj-x", "claude", "hallo");
    assert!(
        watcher
            .line(deadline())
            .starts_with(&format!("#{id} [claude] hallo")),
        "the message is printed"
    );
    assert_eq!(watcher.finish(deadline()), 0);
}

#[test]
fn a_token_or_name_that_cannot_be_sent_is_a_usage_error_before_any_request() {
    // Nothing listens here: a request would be exit 3, or retried.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (command, args) in [
        ("channels", &["--token", "é"][..]),
        ("fetch", &["--target", "t", "--token", "tök"]),
        (
            "post",
            &["--target", "t", "--sender", "s", "--token", "é", "hi"],
        ),
        ("watch", &["--target", "t", "--token", "x\u{2028}y"]),
        ("channels", &["--token", "two words"]),
        ("mcp", &["--token", "a\u{1}b"]),
        ("watch", &["--target", "t", "--as", "a\nb"]),
        ("watch", &["--target", "t", "--as", "zero\u{200b}width"]),
        ("mcp", &["--listen", "t", "--as", "bell\u{7}"]),
    ] {
        let mut all = vec!["--url", closed.as_str()];
        all.extend_from_slice(args);
        let done = run(command, &all);
        assert_eq!(done.code, 2, "{command} {args:?}: {}", done.stderr);
        assert!(
            !done.stderr.contains("retrying") && !done.stderr.contains(&closed),
            "{command} {args:?}: {}",
            done.stderr
        );
    }
}

#[test]
fn json_output_writes_line_and_paragraph_separators_escaped() {
    let relay = Relay::start();
    let url = relay.base.as_str();
    let text = "one\u{2028}two\u{2029}three";
    let posted = run(
        "post",
        &[
            "--url", url, "--target", "sep", "--sender", "claude", "--json", text,
        ],
    );
    let id = relay.post("sep", "codex", text);
    let fetched = run("fetch", &["--url", url, "--target", "sep", "--json"]);
    let exported = run(
        "export",
        &["--url", url, "--target", "sep", "--format", "jsonl"],
    );
    let watched = run(
        "watch",
        &[
            "--url",
            url,
            "--target",
            "sep",
            "--since-id",
            "0",
            "--count",
            "1",
            "--json",
        ],
    );
    let deleted = run("delete", &["--url", url, "--json", &id.to_string()]);
    for (what, done, lines) in [
        ("post --json", &posted, 1),
        ("fetch --json", &fetched, 2),
        ("export --format jsonl", &exported, 2),
        ("watch --json", &watched, 1),
        ("delete --json", &deleted, 1),
    ] {
        assert_eq!(done.code, 0, "{what}: {}", done.stderr);
        assert!(
            !done.stdout.contains(['\u{2028}', '\u{2029}']),
            "{what}: {:?}",
            done.stdout
        );
        assert_eq!(done.stdout.lines().count(), lines, "{what}");
        for line in done.stdout.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
    for (what, done) in [
        ("fetch", &fetched),
        ("export", &exported),
        ("watch", &watched),
    ] {
        assert!(
            done.stdout.contains(r"one\u2028two\u2029three"),
            "{what}: {}",
            done.stdout
        );
        let first: Value = serde_json::from_str(done.stdout.lines().next().unwrap()).unwrap();
        assert_eq!(first["text"], text, "{what}");
    }
}

#[test]
fn an_export_that_fails_before_the_relay_answers_writes_nothing_and_an_empty_channel_gets_its_heading(
) {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for format in ["md", "jsonl"] {
        let failed = run(
            "export",
            &["--url", &closed, "--target", "proj-x", "--format", format],
        );
        assert_eq!(failed.code, 3, "{}", failed.stderr);
        assert_eq!(failed.stdout, "", "{format}");
    }
    let relay = Relay::start();
    let refused = run(
        "export",
        &["--url", &relay.base, "--target", "bad\u{7}name"],
    );
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.stdout, "");
    let empty = run(
        "export",
        &["--url", &relay.base, "--target", "nobody-posted"],
    );
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert_eq!(empty.stdout, "# nobody-posted\n\n");
}

#[test]
fn delete_checks_every_id_first_and_reports_each_deletion_before_a_failure() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let first = relay.post("t", "claude", "one");
    let second = relay.post("t", "claude", "two");

    let typo = run("delete", &["--url", &url, &first.to_string(), "abc"]);
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("\"abc\" is not a message id"),
        "{}",
        typo.stderr
    );
    assert_eq!(typo.stdout, "");
    assert_eq!(relay.held_messages(), 2, "a bad id deletes nothing");

    let missing = run("delete", &["--url", &url, &first.to_string(), "999999"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert_eq!(missing.stdout, format!("deleted #{first}\n"));
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
    assert_eq!(relay.held_messages(), 1);

    let both = run(
        "delete",
        &["--url", &url, "--target", "t", &second.to_string()],
    );
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(both.stderr.contains("not both"), "{}", both.stderr);
    assert_eq!(relay.held_messages(), 1);
}

#[test]
fn a_url_without_a_host_a_blank_url_and_an_empty_token_file_are_usage_errors() {
    let relay = Relay::start();
    let empty = relay.dir.path("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap();
    for (args, said) in [
        (&["--url", "http://"][..], "names no host"),
        (&["--url", "http:///"], "names no host"),
        (&["--url", " "], "must not be blank"),
        (&["--url", ""], "must not be blank"),
        (&["--url", &relay.base, "--token-file", empty], "is empty"),
    ] {
        let done = run("channels", args);
        assert_eq!(done.code, 2, "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(said), "{args:?}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{args:?}");
    }
}

#[test]
fn fetch_with_a_reader_says_to_read_on_with_the_reader_and_a_blank_reader_is_a_usage_error() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let first = relay.post("t", "claude", "one");
    let second = relay.post("t", "claude", "two");
    let fetch = |reader: &str| {
        run(
            "fetch",
            &[
                "--url", &url, "--target", "t", "--reader", reader, "--limit", "1",
            ],
        )
    };
    let page = fetch("codex");
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert_eq!(page.stdout, format!("#{first} [claude] one\n"));
    assert!(
        page.stderr.contains("read on with the same --reader codex")
            && !page.stderr.contains("--since-id"),
        "{}",
        page.stderr
    );
    // The hint is right: the same command gives the next message.
    let next = fetch("codex");
    assert_eq!(next.stdout, format!("#{second} [claude] two\n"));

    for blank in ["", "  "] {
        let done = fetch(blank);
        assert_eq!(done.code, 2, "{blank:?}: {}", done.stderr);
        assert!(done.stderr.contains("--reader"), "{}", done.stderr);
    }
}

#[test]
fn watch_timeout_ends_the_watch_exit_0_when_it_handled_its_messages_and_6_when_not() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let first = relay.post("tw", "claude", "one");
    // From before the message, so it is handled at once; each watch then waits out its time,
    // long enough that a busy machine still starts it and hands it the message well within.
    let watch = |extra: &[&str]| {
        let mut args = vec!["--url", &url, "--target", "tw", "--timeout", "8"];
        args.extend_from_slice(extra);
        let args: Vec<String> = strings(&args);
        thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run("watch", &args)
        })
    };
    let any = watch(&["--since-id", "0"]);
    let short = watch(&["--since-id", "0", "--count", "2"]);
    let none = watch(&["--since-id", &first.to_string()]);

    let any = any.join().unwrap();
    assert_eq!(any.code, 0, "{}", any.stderr);
    assert_eq!(any.stdout, format!("#{first} [claude] one\n"));
    let short = short.join().unwrap();
    assert_eq!(short.code, 6, "{}", short.stderr);
    assert!(short.stderr.contains("1 of the 2"), "{}", short.stderr);
    let none = none.join().unwrap();
    assert_eq!(none.code, 6, "{}", none.stderr);
    assert!(none.stderr.contains("no message on tw"), "{}", none.stderr);

    let blank = run("watch", &["--url", &url, "--target", "tw", "--state", ""]);
    assert_eq!(blank.code, 2, "{}", blank.stderr);
    assert!(blank.stderr.contains("--state"), "{}", blank.stderr);
}

#[test]
fn watch_timeout_ends_the_watch_while_the_relay_cannot_be_reached() {
    // Nothing listens at this address: the watch never reaches a relay.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let never = Running::start(
        "watch",
        &["--url", &nowhere, "--target", "x", "--timeout", "1"],
    );
    assert_eq!(never.finish(deadline()), 6, "{}", never.stderr());
    never.stderr_line_containing("could not be reached", deadline());

    // The relay goes away after the watches started: at the deadline, the one that handled a
    // message is done, and the other says that the relay could not be reached.
    let mut relay = Relay::start();
    let url = relay.base.clone();
    let first = relay.post("td", "claude", "one");
    let watch = |extra: &[&str]| {
        let mut args = vec!["--url", &url, "--target", "td", "--timeout", "10"];
        args.extend_from_slice(extra);
        Running::start("watch", &args)
    };
    let handled = watch(&["--since-id", "0"]);
    let waiting = watch(&[]);
    assert_eq!(handled.line(deadline()), format!("#{first} [claude] one"));
    waiting.stderr_line_containing("watching td", deadline());
    relay.running.take().unwrap().shutdown();
    assert_eq!(handled.finish(deadline()), 0, "{}", handled.stderr());
    assert_eq!(waiting.finish(deadline()), 6, "{}", waiting.stderr());
    let said = waiting.stderr_line_containing("timed out", deadline());
    assert!(
        said.contains("no message on td") && said.contains("could not be reached"),
        "{said}"
    );
}

#[test]
fn watch_follows_a_memory_relay_that_restarts_from_its_first_message() {
    use claude_codex_relay::config::StoreKind;
    let mut relay = Relay::memory();
    let url = relay.base.clone();
    for text in ["one", "two", "three"] {
        relay.post("m", "claude", text);
    }
    let watcher = Running::start("watch", &["--url", &url, "--target", "m"]);
    watcher.stderr_line_containing("watching m", deadline());

    // The relay goes away until the watcher has noticed, and comes back on the same port
    // with nothing: its ids start again at 1, below the watcher's #3.
    let mut config = config_in(&relay.dir);
    config.store = StoreKind::Memory;
    config.port = relay.addr().port();
    relay.running.take().unwrap().shutdown();
    watcher.stderr_line_containing("relay unavailable", deadline());
    relay.running = Some(start_again(config));
    let first = relay.post("m", "claude", "after the restart");
    assert_eq!(first, 1);
    assert_eq!(watcher.line(deadline()), "#1 [claude] after the restart");
    watcher.stderr_line_containing("without its history", deadline());
    let second = relay.post("m", "claude", "and on");
    assert_eq!(
        watcher.line(deadline()),
        format!("#{second} [claude] and on")
    );
}

#[test]
fn watch_follows_a_memory_relay_that_restarts_while_cmd_runs_from_its_first_message() {
    use claude_codex_relay::config::StoreKind;
    let mut relay = Relay::memory();
    let url = relay.base.clone();
    for text in ["old1", "old2", "old3"] {
        relay.post("c", "claude", text);
    }
    // CMD says which message it got, then holds the watch until the test lets it go.
    let go = relay.dir.path("go");
    let cmd = format!(
        r#"printf 'ran %s %s\n' "$RELAY_MESSAGE_ID" "$(head -n 1)"; until [ -e '{}' ]; do sleep 0.02; done"#,
        go.display()
    );
    let watcher = Running::start(
        "watch",
        &[
            "--url",
            &url,
            "--target",
            "c",
            "--since-id",
            "2",
            "--count",
            "5",
            "--exec",
            &cmd,
        ],
    );
    assert_eq!(watcher.line(deadline()), "ran 3 old3");

    // While #3's CMD runs (no request open), the relay restarts on the same port with nothing,
    // and gets as many new messages as it had, and one more.
    let mut config = config_in(&relay.dir);
    config.store = StoreKind::Memory;
    config.port = relay.addr().port();
    relay.running.take().unwrap().shutdown();
    relay.running = Some(start_again(config));
    for text in ["new1", "new2", "new3", "new4"] {
        relay.post("c", "claude", text);
    }
    std::fs::write(&go, "").unwrap();

    watcher.stderr_line_containing("without its history", deadline());
    for id in 1..=4 {
        assert_eq!(watcher.line(deadline()), format!("ran {id} new{id}"));
    }
    assert_eq!(watcher.finish(deadline()), 0, "{}", watcher.stderr());
    assert_eq!(watcher.rest_of_stdout(), Vec::<String>::new());
}

#[test]
fn watch_from_a_state_or_since_id_past_the_newest_message_says_so_and_shows_new_messages() {
    let relay = Relay::memory();
    let url = relay.base.clone();
    relay.post("m", "claude", "one");
    let state = relay.dir.path("last_id");
    std::fs::write(&state, "50\n").unwrap();
    let state_arg = state.to_str().unwrap();
    let from_state = Running::start(
        "watch",
        &[
            "--url", &url, "--target", "m", "--state", state_arg, "--count", "1",
        ],
    );
    from_state.stderr_line_containing("below #50", deadline());
    from_state.stderr_line_containing("watching m", deadline());
    let from_since = Running::start(
        "watch",
        &[
            "--url",
            &url,
            "--target",
            "m",
            "--since-id",
            "70",
            "--count",
            "1",
        ],
    );
    from_since.stderr_line_containing("below #70", deadline());
    from_since.stderr_line_containing("watching m", deadline());
    let posted = relay.post("m", "claude", "two");
    for watcher in [&from_state, &from_since] {
        assert_eq!(watcher.line(deadline()), format!("#{posted} [claude] two"));
        assert_eq!(watcher.finish(deadline()), 0, "{}", watcher.stderr());
    }
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        format!("{posted}\n")
    );
}

#[test]
fn watch_goes_on_after_its_newest_messages_are_deleted_without_showing_older_ones_again() {
    let relay = Relay::memory();
    let url = relay.base.clone();
    relay.post("m", "claude", "one");
    let watcher = Running::start(
        "watch",
        &["--url", &url, "--target", "m", "--since-id", "0"],
    );
    assert_eq!(watcher.line(deadline()), "#1 [claude] one");
    let second = relay.post("m", "claude", "two");
    assert_eq!(watcher.line(deadline()), format!("#{second} [claude] two"));
    let deleted = run("delete", &["--url", &url, &second.to_string()]);
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    let third = relay.post("m", "claude", "three");
    assert_eq!(watcher.line(deadline()), format!("#{third} [claude] three"));
    let fourth = relay.post("m", "claude", "four");
    assert_eq!(watcher.line(deadline()), format!("#{fourth} [claude] four"));
    assert!(
        !watcher.stderr().contains("without its history"),
        "a deletion is not a restart"
    );
}

#[test]
fn watch_timeout_stops_a_cmd_still_running_and_leaves_its_message_unhandled() {
    let relay = Relay::start();
    let url = relay.base.clone();
    let id = relay.post("tt", "claude", "a long review");
    // One CMD ends at SIGTERM; the other ignores it and is ended by SIGKILL after the grace.
    let watches: Vec<(Running, std::path::PathBuf)> = [
        ("term", "echo started; sleep 600"),
        ("kill", "trap '' TERM; echo started; sleep 600"),
    ]
    .into_iter()
    .map(|(name, cmd)| {
        let state = relay.dir.path(&format!("{name}.last_id"));
        let watch = Running::start(
            "watch",
            &[
                "--url",
                &url,
                "--target",
                "tt",
                "--since-id",
                "0",
                "--state",
                state.to_str().unwrap(),
                "--timeout",
                "2",
                "--exec",
                cmd,
            ],
        );
        (watch, state)
    })
    .collect();
    for (watch, state) in &watches {
        assert_eq!(watch.line(deadline()), "started");
        assert_eq!(watch.finish(deadline()), 6, "{}", watch.stderr());
        let said = watch.stderr();
        assert!(
            said.contains(&format!("#{id} CMD stopped at --timeout")),
            "{said}"
        );
        assert_eq!(
            std::fs::read_to_string(state).unwrap().trim(),
            "0",
            "the stopped message is not handled"
        );
    }
}

#[test]
fn a_state_file_that_cannot_be_kept_ends_watch_with_exit_5_before_any_cmd_runs() {
    let relay = Relay::start();
    relay.post("ts", "claude", "would run CMD");
    let marker = relay.dir.path("ran");
    let cmd = format!("touch {}", marker.display());
    let file = relay.dir.path("a-file");
    std::fs::write(&file, "").unwrap();
    let folder = relay.dir.path("a-folder");
    std::fs::create_dir_all(&folder).unwrap();
    // A folder that is not there and cannot be made: a link to one in a missing folder.
    let dangling = relay.dir.path("dangling");
    std::os::unix::fs::symlink(folder.join("missing").join("sub"), &dangling).unwrap();
    for (state, says) in [
        (folder.clone(), "is a folder"),
        (file.join("last_id"), "cannot read the state file"),
        (dangling.join("last_id"), "cannot keep the state file"),
    ] {
        let done = run(
            "watch",
            &[
                "--url",
                &relay.base,
                "--target",
                "ts",
                "--since-id",
                "0",
                "--count",
                "1",
                "--state",
                state.to_str().unwrap(),
                "--exec",
                &cmd,
            ],
        );
        assert_eq!(done.code, 5, "{state:?}: {}", done.stderr);
        assert!(done.stderr.contains(says), "{state:?}: {}", done.stderr);
        assert!(!marker.exists(), "{state:?}: CMD ran");
    }
}
