//! The built-in client: `post`, `fetch`, `channels`, `watch`, `delete` and `export`, so an
//! agent on a host without curl or jq talks to a relay with this binary alone; `mcp`, the stdio
//! MCP bridge; and `setup`, which configures an agent's client. `run` is the one entry point
//! `main` calls; it reads nothing from the process itself (arguments, environment and standard
//! streams are passed in), which is what lets the tests drive it in-process, except that the
//! bridge's threads write to the standard output and error descriptors themselves. Failures become
//! exit codes in one place, `Error::exit_code`.

mod args;
mod bridge;
mod bridge_io;
mod child;
mod error;
mod export;
mod format;
mod help;
mod listener;
mod loop_guard;
mod relay_client;
mod setup;
mod state;
mod toml_lines;
mod upstream;
mod watch;

pub(crate) use error::Error;
pub(crate) use format::Format;
pub(crate) use relay_client::{Post, Query, RelayClient, DEFAULT_URL};

use crate::message::Message;
use args::{many, switch, value, Parsed};
use loop_guard::{LoopGuard, DEFAULT_MAX_RUNS, DEFAULT_PER_SECS};
use serde_json::Value;
use state::StateFile;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The standard streams a command reads and writes.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// The usage text of the client commands, for `--help`.
pub fn usage() -> String {
    help::all()
}

/// The help of one client command, as `COMMAND --help` prints it; None for a word that is no
/// client command.
pub fn help(command: &str) -> Option<String> {
    help::is_command(command).then(|| help::command(command))
}

/// What to say of a first argument that is no command: the closest command, and the list.
pub fn unknown_command(word: &str) -> String {
    help::unknown_command(word)
}

/// A name the command line gave that the relay would refuse, as the usage error it is.
fn bad_argument(e: crate::error::Error) -> Error {
    Error::Usage(e.to_string())
}

/// Runs one client command (`post`, `fetch`, `channels`, `watch`) with its arguments (after
/// the command name); `env` is the process environment. Returns the process exit code.
pub fn run(command: &str, args: &[String], env: &BTreeMap<String, String>, io: &mut Io) -> i32 {
    match dispatch(command, args, env, io) {
        Ok(()) => 0,
        Err(Error::Closed) => 0,
        Err(e) => {
            let hint = if matches!(e, Error::Usage(_)) && help::is_command(command) {
                format!("\nTry `claude-codex-relay {command} --help`.")
            } else {
                String::new()
            };
            let _ = writeln!(io.stderr, "claude-codex-relay {command}: {e}{hint}");
            let _ = io.stderr.flush();
            e.exit_code()
        }
    }
}

fn dispatch(
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    let flags = match command {
        "post" => &[
            value("target"),
            value("sender"),
            switch("json"),
            value("await"),
            value("timeout"),
            value("reply-to"),
            value("idempotency-key"),
        ][..],
        "fetch" => &[
            value("target"),
            value("since-id"),
            value("limit"),
            value("wait"),
            switch("newest"),
            value("reader"),
            switch("json"),
            switch("full"),
        ],
        "channels" => &[switch("json"), switch("detail")],
        "delete" => &[value("target"), switch("json")],
        "export" => &[value("target"), value("since-id"), value("format")],
        "watch" => &[
            value("target"),
            many("from"),
            many("ignore-sender"),
            value("exec"),
            value("state"),
            value("since-id"),
            value("count"),
            value("max-runs"),
            value("per"),
            value("timeout"),
            value("as"),
            switch("json"),
            switch("full"),
        ],
        "mcp" => &[
            value("listen"),
            value("as"),
            many("from"),
            value("since-id"),
        ],
        "setup" => &[value("listen"), value("as"), switch("apply")],
        other => return Err(Error::Usage(help::unknown_command(other))),
    };
    let p = Parsed::new(args, flags)?;
    if p.has("help") {
        return out(io, &help::command(command));
    }
    if p.has("version") {
        return out(
            io,
            &format!("claude-codex-relay {}\n", env!("CARGO_PKG_VERSION")),
        );
    }
    // `--as NAME` (watch, mcp) names the client in the relay's list of listeners; a name the
    // relay would refuse as a sender is refused here, before any request.
    let name = match p.get("as").filter(|n| !n.trim().is_empty()) {
        Some(n) => Some(crate::names::check("--as", n).map_err(bad_argument)?),
        None => None,
    };
    let relay = connect(&p, env)?.named(name.as_deref());
    match command {
        "post" => post(&relay, &p, io),
        "fetch" => fetch(&relay, &p, io),
        "channels" => channels(&relay, &p, io),
        "mcp" => mcp(relay, &p, io),
        "setup" => setup::run(&relay, &p, env, io),
        "delete" => delete(&relay, &p, io),
        "export" => {
            p.no_words()?;
            let format = export::Format::parse(p.get("format").unwrap_or("md"))?;
            let since_id = p
                .number::<u64>("since-id", "a message id (0 or more)")?
                .unwrap_or(0);
            export::export(&relay, p.required("target")?, since_id, format, io.stdout).map(|_| ())
        }
        _ => watch(&relay, &p, env, io),
    }
}

/// The relay named by `--url`/`CLAUDE_CODEX_URL`, with the token from `--token`,
/// `--token-file` or `CLAUDE_CODEX_TOKEN`.
fn connect(p: &Parsed, env: &BTreeMap<String, String>) -> Result<RelayClient, Error> {
    // A blank `--url` is a mistake to say; a blank variable is one set to nothing, as if unset.
    let url = p
        .get("url")
        .or_else(|| {
            env.get("CLAUDE_CODEX_URL")
                .map(String::as_str)
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or(DEFAULT_URL);
    let token = match (p.get("token"), p.get("token-file")) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "give --token or --token-file, not both".into(),
            ))
        }
        (Some(t), None) => Some(t.to_string()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::Usage(format!("cannot read --token-file {file}: {e}")))?;
            // A file named for the token that holds none is a mistake, not a wish to send no
            // token: the relay refuses an empty auth_token_file the same way.
            if text.trim().is_empty() {
                return Err(Error::Usage(format!(
                    "--token-file {file} is empty: it must hold the token"
                )));
            }
            Some(text)
        }
        (None, None) => env.get("CLAUDE_CODEX_TOKEN").cloned(),
    };
    let token = token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    RelayClient::new(url, token)
}

fn post(relay: &RelayClient, p: &Parsed, io: &mut Io) -> Result<(), Error> {
    let target = p.required("target")?;
    let sender = p.required("sender")?;
    let text = match p.words.as_slice() {
        [] => {
            return Err(Error::Usage(
                "post needs the text: words, or `-` to read standard input".into(),
            ))
        }
        [dash] if dash == "-" => {
            let mut raw = Vec::new();
            io.stdin
                .read_to_end(&mut raw)
                .map_err(|e| Error::Local(format!("cannot read standard input: {e}")))?;
            let text = String::from_utf8(raw)
                .map_err(|_| Error::Local("standard input is not UTF-8 text".into()))?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        words => words.join(" "),
    };
    let awaited = p.get("await").map(str::trim);
    if awaited == Some("") {
        return Err(Error::Usage("--await needs the sender to wait for".into()));
    }
    if awaited.is_none() && p.has("timeout") {
        return Err(Error::Usage("--timeout goes with --await".into()));
    }
    let deadline = deadline(p)?;
    let reply_to = p.number::<u64>("reply-to", "a message id")?;
    // A key of our own makes our retries safe: the relay answers a retry of a post it already
    // stored with that message instead of storing it twice.
    let key = match p.get("idempotency-key") {
        Some(key) => crate::idempotency::check_key(key).map_err(|e| {
            Error::Usage(
                e.to_string()
                    .replacen("idempotency_key", "--idempotency-key", 1),
            )
        })?,
        None => fresh_key(),
    };
    let post = Post {
        target,
        sender,
        text: &text,
        reply_to,
        idempotency_key: Some(&key),
    };
    let answer = post_with_retries(relay, &post, io)?;
    let line = serde_json::from_value::<Message>(answer["message"].clone())
        .map(|m| m.line())
        .unwrap_or_else(|_| format!("#{} [{sender}]", answer["posted"]));
    let Some(from) = awaited else {
        if p.has("json") {
            return out(io, &format::json_line(&answer));
        }
        return out(io, &format!("{line}\n"));
    };
    // The wait starts from the posted id, so a reply that lands before the first fetch is
    // still the first message after it: nothing can slip between the post and the wait.
    let posted = answer["posted"].as_u64().unwrap_or_default();
    writeln!(io.stderr, "posted {line}; waiting for {from}")
        .and_then(|()| io.stderr.flush())
        .map_err(Error::output)?;
    let opts = watch::Options {
        command: "post",
        target: target.to_string(),
        from: vec![from.to_string()],
        answering: Some(posted),
        ignore: Vec::new(),
        exec: None,
        state: None,
        since_id: Some(posted),
        count: Some(1),
        guard: LoopGuard::new(0, Duration::from_secs(1)),
        format: if p.has("json") {
            Format::Json
        } else {
            Format::Full
        },
        deadline,
    };
    watch::watch(relay, opts, &BTreeMap::new(), io)
}

/// Delays before the retries of a post that met a transient failure (unreachable relay, 5xx
/// other than 507); each retry carries the same idempotency key.
const POST_RETRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(4),
];

fn post_with_retries(relay: &RelayClient, post: &Post, io: &mut Io) -> Result<Value, Error> {
    let mut delays = POST_RETRIES.iter();
    loop {
        match relay.send(post) {
            Err(e) if e.is_transient() => {
                let Some(delay) = delays.next() else {
                    return Err(e);
                };
                writeln!(io.stderr, "{e}; retrying in {:.2} s", delay.as_secs_f64())
                    .map_err(Error::output)?;
                std::thread::sleep(*delay);
            }
            outcome => return outcome,
        }
    }
}

/// An idempotency key unlikely to be anyone else's: this process, the time to the nanosecond
/// and a counter.
fn fresh_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("cli-{}-{nanos}-{n}", std::process::id())
}

/// The deadline `--timeout S` sets, from now.
fn deadline(p: &Parsed) -> Result<Option<Instant>, Error> {
    match p.number::<f64>("timeout", "seconds, more than 0")? {
        None => Ok(None),
        Some(s) if s > 0.0 && s.is_finite() && s < 1e9 => {
            Ok(Some(Instant::now() + Duration::from_secs_f64(s)))
        }
        Some(s) => Err(Error::Usage(format!(
            "--timeout must be seconds, more than 0, not {s}"
        ))),
    }
}

fn fetch(relay: &RelayClient, p: &Parsed, io: &mut Io) -> Result<(), Error> {
    p.no_words()?;
    let target = p.required("target")?;
    let since_id = p.number::<u64>("since-id", "a message id (0 or more)")?;
    // The relay's largest page: a larger --limit would quietly get fewer messages.
    let most = crate::message::LIST_MAX_LIMIT;
    let limit = p.number::<u64>("limit", &format!("a number from 1 to {most}"))?;
    if let Some(n) = limit.filter(|n| !(1..=most).contains(n)) {
        return Err(Error::Usage(format!(
            "--limit must be a number from 1 to {most}, not {n}"
        )));
    }
    let wait = p.number::<f64>("wait", "seconds, 0 to 50")?;
    if let Some(w) = wait {
        if !(0.0..=50.0).contains(&w) {
            return Err(Error::Usage(format!(
                "--wait must be seconds from 0 to 50, not {w}"
            )));
        }
        if since_id.is_none() && !p.has("reader") {
            return Err(Error::Usage(
                "--wait needs --since-id (the id to wait beyond) or --reader".into(),
            ));
        }
    }
    let format = format(p)?;
    // A reader name the relay would refuse is refused here, like a blank --target.
    let reader = match p.get("reader") {
        Some(r) => Some(crate::names::check("--reader", r).map_err(bad_argument)?),
        None => None,
    };
    if reader.is_some() && since_id.is_some() {
        return Err(Error::Usage(
            "give --reader or --since-id, not both: the reader's position is where it starts"
                .into(),
        ));
    }
    let query = Query {
        since_id,
        limit,
        wait,
        newest: p.has("newest"),
        reader,
    };
    let page = relay.page(target, &query)?;
    let text: String = page.messages.iter().map(|m| m.render(format)).collect();
    out(io, &text)?;
    if let (true, Some(last), Some(head)) = (page.more, page.messages.last(), page.head_id) {
        // A reader's position has moved past the page, so the same command reads on;
        // --since-id cannot go with --reader.
        let read_on = match &query.reader {
            Some(r) => format!("read on with the same --reader {r}"),
            None => format!("read on with --since-id {}", last.id),
        };
        // On standard error, so the messages on standard output keep their format.
        writeln!(
            io.stderr,
            "more after #{}: the channel's newest is #{head}; {read_on}",
            last.id
        )
        .map_err(Error::output)?;
    }
    Ok(())
}

fn channels(relay: &RelayClient, p: &Parsed, io: &mut Io) -> Result<(), Error> {
    p.no_words()?;
    let answer = relay.channels(p.has("detail"))?;
    if p.has("json") {
        return out(io, &format::json_line(&answer));
    }
    if p.has("detail") {
        let lines: String = answer["detail"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{}\n", detail_line(c)))
            .collect();
        return out(io, &lines);
    }
    let names: String = answer["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| format!("{c}\n"))
        .collect();
    out(io, &names)
}

/// `proj-x #42 (17 messages): listening codex (fetch), 1 stream`.
fn detail_line(channel: &Value) -> String {
    let listeners: Vec<String> = channel["listeners"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let kind = l["kind"].as_str().unwrap_or("?");
            match l["name"].as_str() {
                Some(name) => format!("{name} ({kind})"),
                None => format::counted(l["count"].as_u64().unwrap_or(0), kind),
            }
        })
        .collect();
    let who = if listeners.is_empty() {
        "nobody listening".to_string()
    } else {
        format!("listening: {}", listeners.join(", "))
    };
    format!(
        "{} #{} ({}): {who}",
        channel["name"].as_str().unwrap_or("?"),
        channel["newest_id"],
        format::counted(channel["messages"].as_u64().unwrap_or(0), "message")
    )
}

/// `delete ID...` deletes messages; `delete --target NAME` a whole channel. Every id is
/// checked before the first deletion, so a typo deletes nothing; each deletion is reported as
/// soon as the relay confirms it, so one that fails later leaves the earlier ones said.
fn delete(relay: &RelayClient, p: &Parsed, io: &mut Io) -> Result<(), Error> {
    match (p.get("target"), p.words.as_slice()) {
        (Some(_), [_, ..]) => Err(Error::Usage(
            "give message ids or --target NAME, not both: --target deletes the whole channel"
                .into(),
        )),
        (Some(_), []) => {
            let answer = relay.delete_channel(p.required("target")?)?;
            out(io, &deleted(p.has("json"), &answer))
        }
        (None, []) => Err(Error::Usage(
            "delete needs message ids, or --target NAME for a whole channel".into(),
        )),
        (None, raw_ids) => {
            let ids = raw_ids
                .iter()
                .map(|raw| {
                    raw.trim()
                        .parse::<u64>()
                        .map_err(|_| Error::Usage(format!("{raw:?} is not a message id")))
                })
                .collect::<Result<Vec<u64>, Error>>()?;
            for id in ids {
                let answer = relay.delete_message(id)?;
                out(io, &deleted(p.has("json"), &answer))?;
            }
            Ok(())
        }
    }
}

/// The line that reports one deletion: the relay's answer with `--json`, else `deleted #ID` or
/// `deleted channel NAME (1 message)`, `(N messages)`.
fn deleted(json: bool, answer: &Value) -> String {
    match (json, answer.get("deleted"), answer.get("deleted_channel")) {
        (true, ..) => format::json_line(answer),
        (false, Some(id), _) => format!("deleted #{id}\n"),
        (false, _, Some(name)) => format!(
            "deleted channel {} ({})\n",
            name.as_str().unwrap_or_default(),
            format::counted(answer["messages"].as_u64().unwrap_or(0), "message")
        ),
        _ => format::json_line(answer),
    }
}

fn watch(
    relay: &RelayClient,
    p: &Parsed,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    p.no_words()?;
    let max_runs = p
        .number::<usize>("max-runs", "a number of runs (0 turns the guard off)")?
        .unwrap_or(DEFAULT_MAX_RUNS);
    let per = p
        .number::<u64>("per", "a number of seconds")?
        .unwrap_or(DEFAULT_PER_SECS);
    if per == 0 && max_runs > 0 {
        return Err(Error::Usage("--per must be 1 second or more".into()));
    }
    let count = p.number::<u64>("count", "a number of messages")?;
    if count == Some(0) {
        return Err(Error::Usage("--count must be 1 or more".into()));
    }
    let exec = match p.get("exec") {
        Some(cmd) if cmd.trim().is_empty() => {
            return Err(Error::Usage("--exec needs a command".into()))
        }
        other => other.map(str::to_string),
    };
    let opts = watch::Options {
        command: "watch",
        target: p.required("target")?.to_string(),
        from: senders(p, "from")?,
        answering: None,
        ignore: senders(p, "ignore-sender")?,
        exec,
        state: p.get("state").map(StateFile::from_arg).transpose()?,
        since_id: p.number("since-id", "a message id (0 or more)")?,
        count,
        guard: LoopGuard::new(max_runs, Duration::from_secs(per)),
        format: format(p)?,
        deadline: deadline(p)?,
    };
    watch::watch(relay, opts, env, io)
}

/// The senders a repeatable option names, each given alone or in a comma-separated list
/// (`--from claude,codex`), as `mcp --from` takes them.
fn senders(p: &Parsed, option: &str) -> Result<Vec<String>, Error> {
    crate::listen::given_names(
        &format!("--{option}"),
        p.all(option).iter().map(String::as_str),
    )
    .map_err(bad_argument)
}

/// The output format chosen by `--json` or `--full`.
fn format(p: &Parsed) -> Result<Format, Error> {
    match (p.has("json"), p.has("full")) {
        (true, true) => Err(Error::Usage("give --json or --full, not both".into())),
        (true, false) => Ok(Format::Json),
        (false, true) => Ok(Format::Full),
        (false, false) => Ok(Format::Line),
    }
}

/// Writes `text` to standard output and flushes it.
fn out(io: &mut Io, text: &str) -> Result<(), Error> {
    io.stdout
        .write_all(text.as_bytes())
        .and_then(|()| io.stdout.flush())
        .map_err(Error::output)
}

/// `mcp`: the stdio bridge, until standard input ends. Every thread of the bridge writes to
/// standard output, through its own handle on the descriptor: `io.stdout` is the lock `main`
/// holds for the whole command.
fn mcp(relay: RelayClient, p: &Parsed, io: &mut Io) -> Result<(), Error> {
    p.no_words()?;
    let since_id = p.number::<u64>("since-id", "a message id (0 or more)")?;
    let listen = match p.get("listen") {
        Some(channels) => Some(
            crate::listen::Listen::parse(channels, p.get("as"), p.all("from"))
                .map_err(bad_argument)?
                .ok_or_else(|| Error::Usage("--listen needs a channel name".into()))?,
        ),
        None if p.has("as") || p.has("from") || since_id.is_some() => {
            return Err(Error::Usage(
                "--as, --from and --since-id go with --listen".into(),
            ))
        }
        None => None,
    };
    let stdout = std::os::fd::AsFd::as_fd(&std::io::stdout())
        .try_clone_to_owned()
        .map_err(|e| Error::Local(format!("cannot use standard output: {e}")))?;
    let out = std::sync::Arc::new(bridge_io::Out::new(Box::new(std::fs::File::from(stdout))));
    bridge::run(
        relay,
        listen,
        since_id,
        &mut std::io::BufReader::new(&mut *io.stdin),
        out,
    )
}
