//! Configuration: the defaults, then `config.json`, then `CLAUDE_CODEX_*` environment variables,
//! then command-line flags, each layer overriding the one before. Every setting is one `Key` in
//! `KEYS`, which gives it a file key, an environment name, a flag, a default, a line of help
//! and the check that stores it; loading, `--help` and the README's table come from it. The
//! command line of `serve` is split into flags here too (`Args`). Values are validated here,
//! once, and the resulting `Config` is passed in; the library reads no environment of its own.

use crate::error::Error;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Prefix of every environment variable the relay reads.
pub const ENV_PREFIX: &str = "CLAUDE_CODEX_";
/// Variables with the prefix that are not settings: the configuration file, and the client
/// commands' relay and token (often set in the same shell as a relay is started from).
const ENV_NOT_SETTINGS: [&str; 3] = ["CONFIG", "URL", "TOKEN"];
const MB: u64 = 1024 * 1024;
/// The most seconds any timeout setting takes: 2^32 - 1, 136 years, which is never in practice
/// and still leaves every sum of an instant and a timeout far from overflowing.
const MAX_SECS: u64 = u32::MAX as u64;
/// The largest request body and message text, 1 GiB: a body is held in memory whole, and the
/// journal's lengths assume texts far below 4 GiB.
const MAX_BODY_BYTES: u64 = 1 << 30;
/// The most rotated logs kept: each rotation renames the backups one by one.
const MAX_BACKUPS: u64 = 10_000;
/// The most megabytes a size setting takes: as many bytes as a `u64` holds.
const MAX_MB: u64 = u64::MAX / MB;

/// Where messages live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// An append-only journal under `data_dir`, replayed at start (the default).
    File,
    /// Memory only, like the original relay: a restart forgets everything.
    Memory,
}

/// When the journal is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before a post is acknowledged; concurrent posts share one fsync (the default).
    Always,
    /// Never explicitly: the operating system writes the data back when it likes.
    Never,
}

/// Every setting of the relay, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Default 127.0.0.1.
    pub host: String,
    /// Port to listen on; 0 picks a free one. Default 8010.
    pub port: u16,
    /// The tool log. Default `log/claude_codex.log`.
    pub log_path: PathBuf,
    /// Rotate the tool log after this many bytes. Default 25 MB.
    pub log_max_bytes: u64,
    /// Rotated tool logs to keep. Default 10.
    pub log_backup_count: usize,
    /// The channel archive, one JSON line per message. Default `log/channel_messages.log`.
    pub channel_log_path: PathBuf,
    /// Rotate the channel archive after this many bytes. Default 25 MB.
    pub channel_log_max_bytes: u64,
    /// Rotated channel archives to keep. Default 10.
    pub channel_log_backup_count: usize,
    /// Channels listed even before anything is posted to them. Default proj-x, codex, claude.
    pub channels: Vec<String>,
    /// Extra `Host` values accepted besides loopback: `name` (any port) or `name:port`.
    pub allowed_hosts: Vec<String>,
    /// Directory of the message journal and the session key. Default `data`.
    pub data_dir: PathBuf,
    /// Journal on disk or memory only. Default file.
    pub store: StoreKind,
    /// Journal durability. Default always.
    pub fsync: Fsync,
    /// Largest request body accepted. Default 4 MiB.
    pub max_body_bytes: usize,
    /// Largest message `text` accepted. Default 1 MiB.
    pub max_message_bytes: usize,
    /// Cap on open event streams plus waiting requests. Default 512.
    pub max_streams: usize,
    /// Of those, the most one client (an agent's token, else an address) may hold. Default 128.
    pub max_streams_per_client: usize,
    /// MCP sessions one client address may keep in memory. Default 256.
    pub max_sessions_per_client: usize,
    /// Seconds after which an MCP session no request has named leaves memory (its id still
    /// restores it). Default 600.
    pub session_idle_secs: u64,
    /// Seconds a connection may stay silent (or a client may not read) before it is closed.
    /// Default 30.
    pub idle_timeout_secs: u64,
    /// Connections served at once; past it the connection that has waited longest for a request
    /// makes room, or a new one is refused with 503. Lowered at start to what the open-file
    /// limit allows. Default 1024.
    pub max_connections: usize,
    /// Seconds a request head may take to arrive, from its first byte (408 after). Default 10.
    pub header_timeout_secs: u64,
    /// Seconds a request body may take to arrive, plus one per 64 KiB it declares (408 after).
    /// Default 10.
    pub body_timeout_secs: u64,
    /// Keep at most this many messages per channel; 0 keeps all. Default 0.
    pub retention_max_messages: usize,
    /// Drop messages older than this many days; 0 keeps all. Default 0.
    pub retention_max_age_days: f64,
    /// Bytes of messages read back from the journal kept in memory for the next reads. Default
    /// 8 MiB.
    pub cache_bytes: u64,
    /// Bearer token every route but `/healthz` requires, if set.
    pub auth_token: Option<String>,
    /// Per-agent tokens: a request with one may only post as that agent.
    pub agents: BTreeMap<String, String>,
    /// A file the relay writes its URL (`http://HOST:PORT`) to once it is listening, for
    /// scripts that start it on port 0. None by default.
    pub addr_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8010,
            log_path: "log/claude_codex.log".into(),
            log_max_bytes: 25 * MB,
            log_backup_count: 10,
            channel_log_path: "log/channel_messages.log".into(),
            channel_log_max_bytes: 25 * MB,
            channel_log_backup_count: 10,
            channels: vec!["proj-x".into(), "codex".into(), "claude".into()],
            allowed_hosts: Vec::new(),
            data_dir: "data".into(),
            store: StoreKind::File,
            fsync: Fsync::Always,
            max_body_bytes: 4 * MB as usize,
            max_message_bytes: MB as usize,
            max_streams: 512,
            max_streams_per_client: 128,
            max_sessions_per_client: 256,
            session_idle_secs: 600,
            idle_timeout_secs: 30,
            max_connections: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            retention_max_messages: 0,
            retention_max_age_days: 0.0,
            cache_bytes: 8 * MB,
            auth_token: None,
            agents: BTreeMap::new(),
            addr_file: None,
        }
    }
}

/// The shape of a setting's value, which decides how a string from the environment or a flag
/// is read and which JSON types the file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Integer,
    Number,
    List,
    Map,
}

/// One setting, described once: its name in the file, the environment and the command line,
/// the shape of its value, its default as one would type it, a line of help, and how a value
/// is checked and stored. Loading, `--help` and the README's table all come from `KEYS`.
pub(crate) struct Key {
    /// The file key; the environment variable and the flag are made from it.
    pub name: &'static str,
    pub kind: Kind,
    /// The default, written as a flag would give it; None where there is none to show.
    pub default: Option<&'static str>,
    pub help: &'static str,
    apply: fn(&mut Config, &Value) -> Result<(), String>,
}

impl Key {
    /// `CLAUDE_CODEX_<NAME>`.
    pub(crate) fn env(&self) -> String {
        format!("{ENV_PREFIX}{}", self.name.to_uppercase())
    }

    /// `--<name>`, dashes for underscores.
    pub(crate) fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

const fn key(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    help: &'static str,
    apply: fn(&mut Config, &Value) -> Result<(), String>,
) -> Key {
    Key {
        name,
        kind,
        default,
        help,
        apply,
    }
}

/// Every setting the relay knows.
#[rustfmt::skip]
pub(crate) const KEYS: &[Key] = &[
    key("host", Kind::Text, Some("127.0.0.1"), "address to listen on",
        |c, v| { c.host = nonempty_text(v)?; Ok(()) }),
    key("port", Kind::Integer, Some("8010"), "port to listen on, 0 for any free port",
        |c, v| { c.port = port(v)?; Ok(()) }),
    key("log_path", Kind::Text, Some("log/claude_codex.log"), "tool log file",
        |c, v| { c.log_path = nonempty_text(v)?.into(); Ok(()) }),
    key("log_max_mb", Kind::Number, Some("25"), "rotate the tool log after N MB (0: never)",
        |c, v| { c.log_max_bytes = megabytes(v)?; Ok(()) }),
    key("log_max_bytes", Kind::Integer, None, "rotate the tool log after N bytes (legacy; 0: never)",
        |c, v| { c.log_max_bytes = whole(v, 0, u64::MAX)?; Ok(()) }),
    key("log_backup_count", Kind::Integer, Some("10"), "rotated tool logs to keep (0: never rotate)",
        |c, v| { c.log_backup_count = whole(v, 0, MAX_BACKUPS)? as usize; Ok(()) }),
    key("channel_log_path", Kind::Text, Some("log/channel_messages.log"), "channel archive file",
        |c, v| { c.channel_log_path = nonempty_text(v)?.into(); Ok(()) }),
    key("channel_log_max_mb", Kind::Number, Some("25"), "rotate the channel archive after N MB (0: never)",
        |c, v| { c.channel_log_max_bytes = megabytes(v)?; Ok(()) }),
    key("channel_log_max_bytes", Kind::Integer, None, "rotate the channel archive after N bytes (legacy; 0: never)",
        |c, v| { c.channel_log_max_bytes = whole(v, 0, u64::MAX)?; Ok(()) }),
    key("channel_log_backup_count", Kind::Integer, Some("10"), "rotated channel archives to keep (0: never rotate)",
        |c, v| { c.channel_log_backup_count = whole(v, 0, MAX_BACKUPS)? as usize; Ok(()) }),
    key("channels", Kind::List, Some("proj-x,codex,claude"), "channels listed from the start",
        |c, v| { c.channels = channel_names(v)?; Ok(()) }),
    key("allowed_hosts", Kind::List, Some(""), "extra Host values: name or name:* (any port), or name:port",
        |c, v| { c.allowed_hosts = allowed_hosts(v)?; Ok(()) }),
    key("data_dir", Kind::Text, Some("data"), "directory of the journal and the session key",
        |c, v| { c.data_dir = nonempty_text(v)?.into(); Ok(()) }),
    key("store", Kind::Text, Some("file"), "file (journal on disk) or memory",
        |c, v| { c.store = one_of(v, &[("file", StoreKind::File), ("memory", StoreKind::Memory)])?; Ok(()) }),
    key("fsync", Kind::Text, Some("always"), "always (acknowledged means on disk) or never",
        |c, v| { c.fsync = one_of(v, &[("always", Fsync::Always), ("never", Fsync::Never)])?; Ok(()) }),
    key("max_body_bytes", Kind::Integer, Some("4194304"), "largest request body",
        |c, v| { c.max_body_bytes = whole(v, 1, MAX_BODY_BYTES)? as usize; Ok(()) }),
    key("max_message_bytes", Kind::Integer, Some("1048576"), "largest message text",
        |c, v| { c.max_message_bytes = whole(v, 1, MAX_BODY_BYTES)? as usize; Ok(()) }),
    key("max_streams", Kind::Integer, Some("512"), "open event streams plus waiting requests",
        |c, v| { c.max_streams = count(v, 1)?; Ok(()) }),
    key("max_streams_per_client", Kind::Integer, Some("128"), "of those, the most one client may hold",
        |c, v| { c.max_streams_per_client = count(v, 1)?; Ok(()) }),
    key("max_sessions_per_client", Kind::Integer, Some("256"), "MCP sessions one client address keeps in memory",
        |c, v| { c.max_sessions_per_client = count(v, 1)?; Ok(()) }),
    key("session_idle_secs", Kind::Integer, Some("600"), "an unused MCP session leaves memory after N s",
        |c, v| { c.session_idle_secs = whole(v, 1, MAX_SECS)?; Ok(()) }),
    key("idle_timeout_secs", Kind::Integer, Some("30"), "close connections silent this long",
        |c, v| { c.idle_timeout_secs = whole(v, 1, MAX_SECS)?; Ok(()) }),
    key("max_connections", Kind::Integer, Some("1024"), "connections served at once, within the open-file limit",
        |c, v| { c.max_connections = count(v, 1)?; Ok(()) }),
    key("header_timeout_secs", Kind::Integer, Some("10"), "seconds a request head may take (408)",
        |c, v| { c.header_timeout_secs = whole(v, 1, MAX_SECS)?; Ok(()) }),
    key("body_timeout_secs", Kind::Integer, Some("10"), "seconds a request body may take, +1 per 64 KiB (408)",
        |c, v| { c.body_timeout_secs = whole(v, 1, MAX_SECS)?; Ok(()) }),
    key("cache_mb", Kind::Number, Some("8"), "messages read from the journal kept in memory, in MB",
        |c, v| { c.cache_bytes = some_megabytes(v)?; Ok(()) }),
    key("retention_max_messages", Kind::Integer, Some("0"), "messages kept per channel, 0 = all",
        |c, v| { c.retention_max_messages = count(v, 0)?; Ok(()) }),
    key("retention_max_age_days", Kind::Number, Some("0"), "drop messages older than N days, 0 = never",
        |c, v| { c.retention_max_age_days = number(v)?; Ok(()) }),
    key("auth_token", Kind::Text, None, "bearer token required on every route but /healthz",
        |c, v| { c.auth_token = optional_token(v)?; Ok(()) }),
    key("auth_token_file", Kind::Text, None, "file holding the bearer token",
        |c, v| { c.auth_token = Some(token_file(v)?); Ok(()) }),
    key("agents", Kind::Map, None, "per-agent tokens, name -> token (env/flag: name=token,...)",
        |c, v| { c.agents = agents(v)?; Ok(()) }),
    key("addr_file", Kind::Text, None, "once listening, write the relay's URL (http://HOST:PORT) here",
        |c, v| { c.addr_file = Some(nonempty_text(v)?.into()); Ok(()) }),
];

/// One value from one layer, with the name of where it came from for error messages.
struct Setting {
    source: String,
    key: &'static Key,
    value: Value,
}

/// The help text listing every setting as a flag and an environment variable.
pub fn settings_help() -> String {
    let mut out = String::new();
    for k in KEYS {
        let help = match k.default {
            Some(default) => format!("{} [{default}]", k.help),
            None => k.help.to_string(),
        };
        out.push_str(&format!("  {:<28} {help}\n", k.flag()));
        out.push_str(&format!("  {:<28} (env {})\n", "", k.env()));
    }
    out
}

/// The command line of `serve`: an explicit `--config PATH`, and the settings given as flags.
#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub config_file: Option<PathBuf>,
    /// `(key, value)` in the order given, keys with underscores.
    pub flags: Vec<(String, String)>,
}

impl Args {
    /// Reads `--key value` and `--key=value` pairs; `--config` names the file. The keys are
    /// checked by `Config::load`, which knows them; here only the shape is.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut parsed = Args::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, v.to_string()),
                None => {
                    let v = rest
                        .next()
                        .ok_or_else(|| format!("--{flag} needs a value"))?;
                    (flag, v.clone())
                }
            };
            if name == "config" {
                parsed.config_file = Some(PathBuf::from(value));
            } else {
                parsed.flags.push((name.replace('-', "_"), value));
            }
        }
        Ok(parsed)
    }
}

impl Config {
    /// Builds the configuration from its layers. `config_file` is an explicit `--config` path
    /// (it must exist); without one, `config.json` in the working directory is read if present
    /// (or the file named by `CLAUDE_CODEX_CONFIG`). `flags` are `(key, value)` pairs from the
    /// command line, keys with underscores.
    pub fn load(
        config_file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &[(String, String)],
    ) -> Result<Config, Error> {
        let env_file = env.get(&format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from);
        let (path, required) = match (config_file, env_file) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (p, true),
            (None, None) => (PathBuf::from("config.json"), false),
        };
        check_env_names(env)?;
        let mut settings = Vec::new();
        if required || path.exists() {
            settings.extend(read_file(&path)?);
        }
        for key in KEYS {
            let var = key.env();
            if let Some(raw) = env.get(&var) {
                settings.push(from_text(&var, key, raw)?);
            }
        }
        for (name, raw) in flags {
            let flag = format!("--{}", name.replace('_', "-"));
            let key = lookup(name).ok_or_else(|| {
                let names = KEYS.iter().map(|k| k.name).chain(["config"]);
                let meant = crate::suggest::closest(name, names)
                    .map(|m| format!("--{}", m.replace('_', "-")));
                Error::Config {
                    source: flag.clone(),
                    key: name.clone(),
                    message: unknown("option", meant),
                }
            })?;
            settings.push(from_text(&flag, key, raw)?);
        }
        let mut config = Config::default();
        for setting in settings {
            config.apply(setting)?;
        }
        config.check_tokens()?;
        if config.max_message_bytes > config.max_body_bytes {
            return Err(Error::Config {
                source: "configuration".into(),
                key: "max_message_bytes".into(),
                message: format!(
                    "{} is larger than max_body_bytes ({}), which a post's body, text and all, must fit in: raise max_body_bytes too",
                    config.max_message_bytes, config.max_body_bytes
                ),
            });
        }
        Ok(config)
    }

    /// Refuses a token shared by `auth_token` and an agent, or by two agents: a request with
    /// it could not say who is calling.
    fn check_tokens(&self) -> Result<(), Error> {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        if let Some(token) = &self.auth_token {
            seen.insert(token, "auth_token");
        }
        for (name, token) in &self.agents {
            if let Some(other) = seen.insert(token, name) {
                return Err(Error::Config {
                    source: "configuration".into(),
                    key: "agents".into(),
                    message: format!(
                        "agent {name:?} has the same token as {other}; every token must be distinct"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The address to bind, as `host:port` (IPv6 hosts bracketed).
    pub(crate) fn bind_address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn apply(&mut self, s: Setting) -> Result<(), Error> {
        (s.key.apply)(self, &s.value).map_err(|message| Error::Config {
            source: s.source,
            key: s.key.name.to_string(),
            message,
        })
    }
}

/// `path` as start-up messages name it: made absolute against the working directory, against
/// which the relay resolves a relative path, so the message says where it was looked for.
pub fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Whether `name` is in the relay's namespace: `CLAUDE_CODEX_` in any case. Only the exact
/// upper-case names are read, so one spelt otherwise must be refused, not passed over.
pub fn is_relay_variable(name: &str) -> bool {
    name.get(..ENV_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ENV_PREFIX))
}

/// Fails on a variable in the relay's namespace that is not exactly the name of a setting or
/// of one of `ENV_NOT_SETTINGS`: a typo, or a name in the wrong case (`CLAUDE_CODEX_Auth_Token`),
/// would otherwise be silently ignored, and with it perhaps the token. Names the variable it
/// should be.
fn check_env_names(env: &BTreeMap<String, String>) -> Result<(), Error> {
    let known = || {
        KEYS.iter()
            .map(|k| k.name.to_uppercase())
            .chain(ENV_NOT_SETTINGS.iter().map(|n| n.to_string()))
    };
    for var in env.keys().filter(|var| is_relay_variable(var)) {
        let name = &var[ENV_PREFIX.len()..];
        if var.starts_with(ENV_PREFIX) && known().any(|k| k == name) {
            continue;
        }
        let upper = name.to_ascii_uppercase();
        let message = if known().any(|k| k == upper) {
            format!(
                "wrong case: only the upper-case name is read; did you mean {ENV_PREFIX}{upper}?"
            )
        } else {
            let names: Vec<String> = known().collect();
            let meant = crate::suggest::closest(&upper, names.iter().map(String::as_str))
                .map(|m| format!("{ENV_PREFIX}{m}"));
            unknown("variable", meant)
        };
        return Err(Error::Config {
            source: "environment".into(),
            key: var.clone(),
            message,
        });
    }
    Ok(())
}

/// What to say of a setting's name that is none (`what`: key, option or variable): the one
/// `meant` when one is close, and where every setting is listed.
fn unknown(what: &str, meant: Option<String>) -> String {
    match meant {
        Some(m) => format!("unknown {what}; did you mean {m}? (`--help` lists every setting)"),
        None => format!("unknown {what} (`--help` lists every setting)"),
    }
}

fn lookup(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

fn read_file(path: &Path) -> Result<Vec<Setting>, Error> {
    let source = path.display().to_string();
    let fail = |key: &str, message: String| Error::Config {
        source: source.clone(),
        key: key.to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail("(file)", format!("cannot read: {e}")))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| fail("(file)", format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(fail("(file)", "must be a JSON object".into()));
    };
    match named_twice(&text) {
        (Some(key), _) => {
            return Err(fail(&key, "is given twice; give each key once".into()));
        }
        (None, Some(name)) => return Err(fail("agents", twice(&name))),
        (None, None) => {}
    }
    let mut out = Vec::new();
    for (key, value) in map {
        let known = lookup(&key).ok_or_else(|| {
            let meant = crate::suggest::closest(&key, KEYS.iter().map(|k| k.name));
            fail(&key, unknown("key", meant.map(str::to_string)))
        })?;
        out.push(Setting {
            source: source.clone(),
            key: known,
            value,
        });
    }
    Ok(out)
}

/// Reads a string from the environment or the command line as the key's JSON value.
fn from_text(source: &str, key: &'static Key, raw: &str) -> Result<Setting, Error> {
    let value = match key.kind {
        Kind::Text => Value::String(raw.to_string()),
        Kind::Integer => match whole_text(raw) {
            Some(n) => n,
            None => {
                return Err(Error::Config {
                    source: source.into(),
                    key: key.name.into(),
                    message: format!("{raw:?} is not a whole number"),
                })
            }
        },
        Kind::Number => match raw.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::from(n),
            _ => {
                return Err(Error::Config {
                    source: source.into(),
                    key: key.name.into(),
                    message: format!("{raw:?} is not a number"),
                })
            }
        },
        Kind::List => Value::Array(
            comma_list(raw)
                .map_err(|message| Error::Config {
                    source: source.into(),
                    key: key.name.into(),
                    message,
                })?
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
        Kind::Map => {
            let mut map = Map::new();
            let pairs = comma_list(raw).map_err(|message| Error::Config {
                source: source.into(),
                key: key.name.into(),
                message,
            })?;
            for pair in &pairs {
                let Some((name, token)) = pair.split_once('=') else {
                    return Err(Error::Config {
                        source: source.into(),
                        key: key.name.into(),
                        message: format!("{pair:?} is not name=token"),
                    });
                };
                let token = Value::String(token.trim().to_string());
                if map.insert(name.trim().to_string(), token).is_some() {
                    return Err(Error::Config {
                        source: source.into(),
                        key: key.name.into(),
                        message: twice(name.trim()),
                    });
                }
            }
            Value::Object(map)
        }
    };
    Ok(Setting {
        source: source.into(),
        key,
        value,
    })
}

/// A whole number written in decimal, as JSON would hold it: beyond `u64` (and below `i64`)
/// as a float, so that the setting's check can say it is too large rather than not a number.
fn whole_text(raw: &str) -> Option<Value> {
    let raw = raw.trim();
    if let Ok(n) = raw.parse::<u64>() {
        return Some(Value::from(n));
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Some(Value::from(n));
    }
    let digits = raw.strip_prefix(['-', '+']).unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<f64>().ok().map(Value::from)
}

fn nonempty_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::String(_) => Err("must not be empty".into()),
        other => Err(format!("must be a string, not {}", type_name(other))),
    }
}

fn port(v: &Value) -> Result<u16, String> {
    match whole(v, 0, u16::MAX.into()) {
        Ok(port) => Ok(port as u16),
        Err(e) if e.starts_with("too large") => Err("must be a port number from 0 to 65535".into()),
        Err(e) => Err(e),
    }
}

/// One of the named choices.
fn one_of<T: Copy>(v: &Value, choices: &[(&str, T)]) -> Result<T, String> {
    let given = nonempty_text(v)?;
    match choices.iter().find(|(name, _)| *name == given) {
        Some((_, choice)) => Ok(*choice),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(format!("{given:?} is not one of: {}", names.join(", ")))
        }
    }
}

/// The token in the file the value names, trimmed; an empty file is refused like a blank token.
fn token_file(v: &Value) -> Result<String, String> {
    let path = nonempty_text(v)?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("{path} is empty"));
    }
    sendable_token(&token).map_err(|e| format!("the token in {path} {e}"))?;
    Ok(token)
}

/// Refuses a token no HTTP client could present: one with a character other than visible
/// ASCII (`!` to `~`), so with a space, a control character (a second line of a token file) or
/// anything beyond ASCII. Such a token is accepted here but every request carrying it fails,
/// which locks the relay for good. The rule is what a header can carry, not RFC 6750's
/// narrower `b64token` (letters, digits, `-._~+/`, then `=`s): the relay compares the
/// credential byte for byte, and every client sends the other visible characters (`!`, `@`,
/// `$` from password generators) unchanged, so refusing them would break working set-ups for
/// nothing. A space is refused, as the credential is one word after `Bearer`.
/// The message names the position and code of the first character refused, never the token.
pub(crate) fn sendable_token(token: &str) -> Result<(), String> {
    let Some((n, c)) = token
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, '!'..='~'))
    else {
        return Ok(());
    };
    let what = match c {
        ' ' => "a space",
        c if c.is_ascii_control() => "a control character",
        _ => "not ASCII",
    };
    Err(format!(
        "must be visible ASCII with no spaces (what an `Authorization: Bearer` header can \
         carry): character {} is U+{:04X}, {what}",
        n + 1,
        c as u32
    ))
}

/// A token, or null for none. A blank string is refused: taken for "no token" it would leave
/// the relay open while the operator believes it is protected.
fn optional_token(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => {
            Err("must not be blank (use null, or leave it out, for no token)".into())
        }
        Value::String(s) => {
            let token = s.trim();
            sendable_token(token)?;
            Ok(Some(token.to_string()))
        }
        other => Err(format!(
            "must be a string or null, not {}",
            type_name(other)
        )),
    }
}

/// A whole number from `least` (0 or 1) to `most`. One message for every number below
/// `least` or not whole (0, -5, 1.5), so that neither suggests another one that is also refused;
/// a whole number above `most`, however large, is told the largest accepted.
fn whole(v: &Value, least: u64, most: u64) -> Result<u64, String> {
    let Value::Number(n) = v else {
        return Err(format!("must be a number, not {}", type_name(v)));
    };
    let refused = || {
        if least == 0 {
            "must be a whole number, 0 or more".to_string()
        } else {
            "must be a whole number greater than 0".to_string()
        }
    };
    // Beyond `u64`, JSON (and `from_text`) hold a whole number as a float.
    let too_large = n.as_u64().map_or_else(
        || {
            n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && (f >= u64::MAX as f64 || f > most as f64))
        },
        |n| n > most,
    );
    if too_large {
        return Err(format!("too large (at most {most})"));
    }
    n.as_u64().filter(|n| *n >= least).ok_or_else(refused)
}

/// A count of things held in memory (`usize`), from `least`.
fn count(v: &Value, least: u64) -> Result<usize, String> {
    Ok(whole(v, least, usize::MAX as u64)? as usize)
}

fn number(v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.is_finite() => Ok(n),
        Some(_) => Err("must be 0 or more".into()),
        None => Err(format!("must be a number, not {}", type_name(v))),
    }
}

/// A size in megabytes, as bytes; 0 (or a size under a byte) is 0, which a log takes as "never
/// rotate", as the original's `RotatingFileHandler` did.
fn megabytes(v: &Value) -> Result<u64, String> {
    let mb = v
        .as_f64()
        .ok_or_else(|| format!("must be a number, not {}", type_name(v)))?;
    if mb > MAX_MB as f64 {
        return Err(format!("too large (at most {MAX_MB})"));
    }
    if !mb.is_finite() || mb < 0.0 {
        return Err("must be a number of megabytes, 0 or more".into());
    }
    Ok((mb * MB as f64) as u64)
}

/// A size in megabytes of at least a byte: one message for 0 and negative sizes alike.
fn some_megabytes(v: &Value) -> Result<u64, String> {
    match megabytes(v) {
        Ok(0) => Err("must be a number of megabytes greater than 0".into()),
        Err(_) if v.as_f64().is_some_and(|mb| mb < 0.0) => some_megabytes(&Value::from(0)),
        other => other,
    }
}

/// A list of channel names, each one a post could name (see `names::check`).
fn channel_names(v: &Value) -> Result<Vec<String>, String> {
    list(v)?
        .iter()
        .map(|raw| crate::names::check("each channel", raw).map_err(|e| format!("{raw:?}: {e}")))
        .collect()
}

/// The extra `Host` values, each one a `Host` header could match (`guard::check_allowed_host`).
fn allowed_hosts(v: &Value) -> Result<Vec<String>, String> {
    let hosts = list(v)?;
    for host in &hosts {
        crate::http::guard::check_allowed_host(host).map_err(|e| format!("{host:?}: {e}"))?;
    }
    Ok(hosts)
}

/// The entries of a comma-separated list (from the environment, a flag, or a string in the
/// file), trimmed. A wholly blank list has none; an empty entry (`a,,b`, a trailing comma) is
/// refused, as an empty string in a JSON list is, rather than dropped unseen.
fn comma_list(raw: &str) -> Result<Vec<String>, String> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    raw.split(',')
        .enumerate()
        .map(|(at, entry)| match entry.trim() {
            "" => Err(format!(
                "{raw:?}: entry {} is empty; entries must not be empty",
                at + 1
            )),
            entry => Ok(entry.to_string()),
        })
        .collect()
}

fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                Value::String(_) => Err("entries must not be empty".to_string()),
                other => Err(format!("entries must be strings, not {}", type_name(other))),
            })
            .collect(),
        Value::String(s) => comma_list(s),
        other => Err(format!(
            "must be a list of strings, not {}",
            type_name(other)
        )),
    }
}

/// The per-agent tokens. An agent's name is checked as a post's sender is (`names::check`),
/// since a token can only post under its agent's name; a name given twice (also once with and
/// once without spaces around it) is refused, as one of its tokens would be dropped.
fn agents(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "must be an object of name -> token, not {}",
            type_name(v)
        ));
    };
    let mut out = BTreeMap::new();
    for (raw, token) in map {
        let name = crate::names::check("an agent's name", raw)
            .map_err(|e| format!("agent {raw:?}: {e}"))?;
        let token = match token {
            Value::String(t) if !t.trim().is_empty() => t.trim(),
            _ => return Err(format!("agent {name:?} needs a non-empty token string")),
        };
        sendable_token(token).map_err(|e| format!("agent {name:?}'s token {e}"))?;
        if out.insert(name.clone(), token.to_string()).is_some() {
            return Err(twice(&name));
        }
    }
    Ok(out)
}

fn twice(name: &str) -> String {
    format!("agent {name:?} is named twice; each agent has one token")
}

/// The first key given twice in a configuration file's text, and the first agent named twice
/// in its `agents` object. A JSON object with a key twice is read (by serde_json as by most
/// parsers) as holding the last value, which would drop a setting, or one of an agent's tokens,
/// without a word. Anything else, including text that is not JSON, is for the ordinary reading
/// to report.
fn named_twice(text: &str) -> (Option<String>, Option<String>) {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    struct Names(Option<String>);
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
            d.deserialize_any(Names(None))
        }
    }
    impl<'de> Visitor<'de> for Names {
        type Value = Names;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Names, A::Error> {
            let mut seen = std::collections::BTreeSet::new();
            let mut twice = None;
            while let Some(name) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(name.clone()) && twice.is_none() {
                    twice = Some(name);
                }
            }
            Ok(Names(twice))
        }
    }
    #[derive(serde::Deserialize)]
    struct File {
        agents: Option<Names>,
    }
    let keys = serde_json::from_str::<Names>(text).ok().and_then(|n| n.0);
    let agents = serde_json::from_str::<File>(text)
        .ok()
        .and_then(|f| f.agents?.0);
    (keys, agents)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_setting_is_in_the_readme_table_and_the_help() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let help = settings_help();
        for key in KEYS {
            assert!(
                readme.contains(&format!("`{}`", key.name)),
                "README lists `{}`",
                key.name
            );
            assert!(help.contains(&key.flag()), "--help lists {}", key.flag());
            assert!(help.contains(&key.env()), "--help lists {}", key.env());
        }
    }

    /// A configuration file holding `json`, removed when dropped.
    struct File(PathBuf);

    impl File {
        fn with(json: &str) -> File {
            static N: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "relay-config-test-{}-{}.json",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, json).unwrap();
            File(path)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Loads from a file holding `json` (never the working directory's config.json), the
    /// environment `env` and the flags `flags`.
    fn load(json: &str, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Result<Config, Error> {
        let file = File::with(json);
        Config::load(
            Some(&file.0),
            &pairs(env).into_iter().collect(),
            &pairs(flags),
        )
    }

    /// The message of a load that must fail, as the operator sees it.
    fn refusal(json: &str, env: &[(&str, &str)], flags: &[(&str, &str)]) -> String {
        match load(json, env, flags) {
            Err(e @ Error::Config { .. }) => e.to_string(),
            Err(e) => panic!("not a configuration error: {e}"),
            Ok(c) => panic!("{json} {env:?} {flags:?} was accepted: {c:?}"),
        }
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
        let c = load(
            r#"{"port": 1, "host": "file-host", "data_dir": "file-data"}"#,
            &[
                ("CLAUDE_CODEX_PORT", "2"),
                ("CLAUDE_CODEX_HOST", "env-host"),
            ],
            &[("port", "3")],
        )
        .unwrap();
        assert_eq!(c.port, 3, "flag over environment and file");
        assert_eq!(c.host, "env-host", "environment over file");
        assert_eq!(c.data_dir, PathBuf::from("file-data"), "file over default");
        assert_eq!(c.log_path, Config::default().log_path, "the default");
        // Within one layer the later value wins, and a legacy key is one more way to say it.
        let c = load("{}", &[], &[("log_max_mb", "1"), ("log_max_bytes", "300")]).unwrap();
        assert_eq!(c.log_max_bytes, 300);
    }

    #[test]
    fn every_default_shown_in_help_is_the_default() {
        let default = format!("{:?}", Config::default());
        for k in KEYS {
            let Some(shown) = k.default else { continue };
            let c = load("{}", &[], &[(k.name, shown)]).unwrap();
            assert_eq!(format!("{c:?}"), default, "{} [{shown}]", k.name);
        }
    }

    #[test]
    fn every_key_is_read_from_all_three_layers_and_named_once() {
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len(), "no key twice");
        let help = settings_help();
        for k in KEYS {
            assert!(help.contains(&format!("{} ", k.flag())), "{}", k.flag());
            assert!(help.contains(&format!("(env {})", k.env())), "{}", k.env());
        }
        assert_eq!(KEYS[1].env(), "CLAUDE_CODEX_PORT");
        assert_eq!(lookup("log_max_mb").unwrap().flag(), "--log-max-mb");
    }

    #[test]
    fn the_command_line_splits_into_the_file_and_the_flags() {
        let args: Vec<String> = ["--config", "c.json", "--port=9", "--log-max-mb", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            Args::parse(&args).unwrap(),
            Args {
                config_file: Some(PathBuf::from("c.json")),
                flags: pairs(&[("port", "9"), ("log_max_mb", "2")]),
            }
        );
        let parse =
            |args: &[&str]| Args::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            parse(&["serve"]).unwrap_err(),
            "unexpected argument \"serve\""
        );
        assert_eq!(parse(&["--port"]).unwrap_err(), "--port needs a value");
    }

    #[test]
    fn a_whole_number_too_large_for_its_setting_is_refused_naming_the_largest() {
        let huge = "18446744073709551615";
        for (key, value, most) in [
            ("header_timeout_secs", "9223372036854775807", "4294967295"),
            ("header_timeout_secs", huge, "4294967295"),
            ("body_timeout_secs", "4294967296", "4294967295"),
            ("idle_timeout_secs", "1e30", "4294967295"),
            ("session_idle_secs", "99999999999999999999999", "4294967295"),
            ("max_body_bytes", "1073741825", "1073741824"),
            ("max_message_bytes", huge, "1073741824"),
            ("log_backup_count", "10001", "10000"),
            ("channel_log_backup_count", huge, "10000"),
            ("log_max_mb", "1e300", "17592186044415"),
            ("cache_mb", "17592186044416", "17592186044415"),
            ("max_streams", "18446744073709551616", huge),
            ("retention_max_messages", "1e20", huge),
            ("log_max_bytes", "1e20", huge),
        ] {
            let want = format!("too large (at most {most})");
            let flag = format!("--{}: {key}: {want}", key.replace('_', "-"));
            if !value.contains('e') {
                assert_eq!(refusal("{}", &[], &[(key, value)]), flag, "{key}={value}");
            }
            let got = refusal(&format!("{{\"{key}\": {value}}}"), &[], &[]);
            assert!(got.ends_with(&format!(".json: {key}: {want}")), "{got}");
        }
        // The largest is accepted, and a number that is not whole is still not one.
        let c = load("{}", &[], &[("header_timeout_secs", "4294967295")]).unwrap();
        assert_eq!(c.header_timeout_secs, 4294967295);
        let c = load(
            r#"{"retention_max_messages": 18446744073709551615}"#,
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(c.retention_max_messages, usize::MAX);
        assert!(load("{}", &[], &[("max_body_bytes", "1073741824")]).is_ok());
        assert_eq!(
            refusal("{}", &[], &[("port", huge)]),
            "--port: port: must be a port number from 0 to 65535"
        );
        assert_eq!(
            refusal("{}", &[], &[("max_streams", "-99999999999999999999")]),
            "--max-streams: max_streams: must be a whole number greater than 0"
        );
        assert_eq!(
            refusal(r#"{"max_streams": 2.5}"#, &[], &[])
                .split_once(".json: ")
                .unwrap()
                .1,
            "max_streams: must be a whole number greater than 0"
        );
        assert_eq!(
            refusal(r#"{"port": 80.0}"#, &[], &[])
                .split_once(".json: ")
                .unwrap()
                .1,
            "port: must be a whole number, 0 or more"
        );
    }

    #[test]
    fn an_agent_is_named_once_with_a_name_a_post_could_carry() {
        for (flag, want) in [
            (
                "a=x,a=y",
                "agent \"a\" is named twice; each agent has one token",
            ),
            (
                "a=x, a =y",
                "agent \"a\" is named twice; each agent has one token",
            ),
            ("=x", "agent \"\": an agent's name must not be empty"),
            (" =x", "agent \"\": an agent's name must not be empty"),
            (
                "a\u{7}=x",
                "agent \"a\\u{7}\": an agent's name must not contain control characters",
            ),
        ] {
            assert_eq!(
                refusal("{}", &[], &[("agents", flag)]),
                format!("--agents: agents: {want}"),
                "{flag}"
            );
        }
        let long = "n".repeat(129);
        let got = refusal("{}", &[], &[("agents", &format!("{long}=x"))]);
        assert!(
            got.ends_with(": an agent's name is longer than 128 characters"),
            "{got}"
        );
        for json in [
            r#"{"agents": {"a": "x", "a": "y"}}"#,
            r#"{"agents": {"a": "x", " a": "y"}}"#,
        ] {
            let got = refusal(json, &[], &[]);
            assert!(
                got.ends_with(
                    ".json: agents: agent \"a\" is named twice; each agent has one token"
                ),
                "{json}: {got}"
            );
        }
        let got = refusal("{}", &[], &[("max_message_bytes", "5000000")]);
        assert!(
            got.contains("max_message_bytes: 5000000 is larger than max_body_bytes (4194304)"),
            "{got}"
        );
        // A setting given twice would lose one of its values without a word.
        let got = refusal(r#"{"port": 1, "agents": {}, "port": 2}"#, &[], &[]);
        assert!(
            got.ends_with(".json: port: is given twice; give each key once"),
            "{got}"
        );
        let c = load(
            "{}",
            &[],
            &[("agents", &format!("{},b=y", "n".repeat(128) + "=x"))],
        )
        .unwrap();
        assert_eq!(c.agents.len(), 2);
        assert_eq!(c.agents["b"], "y");
    }

    #[test]
    fn every_error_message_names_where_and_which_key() {
        let token = File::with("  \n");
        let missing = std::env::temp_dir().join("relay-config-test-no-such-file");
        let file_cases: &[(&str, &str)] = &[
            ("[1]", "(file): must be a JSON object"),
            (
                "{",
                "(file): not valid JSON: EOF while parsing an object at line 1 column 1",
            ),
            (r#"{"prot": 1}"#, "prot: unknown key; did you mean port? (`--help` lists every setting)"),
            (r#"{"teleport": 1}"#, "teleport: unknown key (`--help` lists every setting)"),
            (r#"{"host": ""}"#, "host: must not be empty"),
            (r#"{"host": 5}"#, "host: must be a string, not a number"),
            (
                r#"{"port": 70000}"#,
                "port: must be a port number from 0 to 65535",
            ),
            (r#"{"port": -1}"#, "port: must be a whole number, 0 or more"),
            (r#"{"port": "1"}"#, "port: must be a number, not a string"),
            (
                r#"{"log_max_mb": -1}"#,
                "log_max_mb: must be a number of megabytes, 0 or more",
            ),
            (
                r#"{"cache_mb": 0}"#,
                "cache_mb: must be a number of megabytes greater than 0",
            ),
            (
                r#"{"log_max_mb": true}"#,
                "log_max_mb: must be a number, not a boolean",
            ),
            (
                r#"{"max_streams": 0}"#,
                "max_streams: must be a whole number greater than 0",
            ),
            (
                r#"{"max_streams": null}"#,
                "max_streams: must be a number, not null",
            ),
            (
                r#"{"retention_max_age_days": -1}"#,
                "retention_max_age_days: must be 0 or more",
            ),
            (
                r#"{"retention_max_age_days": []}"#,
                "retention_max_age_days: must be a number, not a list",
            ),
            (
                r#"{"store": "disk"}"#,
                "store: \"disk\" is not one of: file, memory",
            ),
            (
                r#"{"fsync": "sometimes"}"#,
                "fsync: \"sometimes\" is not one of: always, never",
            ),
            (
                r#"{"channels": [""]}"#,
                "channels: entries must not be empty",
            ),
            (
                r#"{"channels": ["ok", "a\u2028b"]}"#,
                "channels: \"a\\u{2028}b\": each channel must not contain invisible format characters (found U+2028)",
            ),
            (
                r#"{"channels": [1]}"#,
                "channels: entries must be strings, not a number",
            ),
            (
                r#"{"channels": {}}"#,
                "channels: must be a list of strings, not an object",
            ),
            (
                r#"{"auth_token": " "}"#,
                "auth_token: must not be blank (use null, or leave it out, for no token)",
            ),
            (
                r#"{"auth_token": 1}"#,
                "auth_token: must be a string or null, not a number",
            ),
            (
                r#"{"agents": []}"#,
                "agents: must be an object of name -> token, not a list",
            ),
            (
                r#"{"agents": {"a": ""}}"#,
                "agents: agent \"a\" needs a non-empty token string",
            ),
            (
                r#"{"auth_token": "p\u00e4ss"}"#,
                "auth_token: must be visible ASCII with no spaces (what an `Authorization: Bearer` header can carry): character 2 is U+00E4, not ASCII",
            ),
            (
                r#"{"agents": {"a": "b c"}}"#,
                "agents: agent \"a\"'s token must be visible ASCII with no spaces (what an `Authorization: Bearer` header can carry): character 2 is U+0020, a space",
            ),
            (r#"{"addr_file": ""}"#, "addr_file: must not be empty"),
        ];
        for (json, want) in file_cases {
            let got = refusal(json, &[], &[]);
            let (source, message) = got.split_once(".json: ").unwrap_or(("", &got));
            assert!(source.contains("relay-config-test-"), "{got}");
            assert_eq!(message, *want, "{json}");
        }
        let token_path = token.0.display().to_string();
        type Layer<'a> = &'a [(&'a str, &'a str)];
        let layer_cases: &[(Layer, Layer, String)] = &[
            (&[("CLAUDE_CODEX_PROT", "1")], &[], "environment: CLAUDE_CODEX_PROT: unknown variable; did you mean CLAUDE_CODEX_PORT? (`--help` lists every setting)".into()),
            (&[("CLAUDE_CODEX_PORT", "x")], &[], "CLAUDE_CODEX_PORT: port: \"x\" is not a whole number".into()),
            (&[("CLAUDE_CODEX_LOG_MAX_MB", "inf")], &[], "CLAUDE_CODEX_LOG_MAX_MB: log_max_mb: \"inf\" is not a number".into()),
            (&[("CLAUDE_CODEX_AGENTS", "alice")], &[], "CLAUDE_CODEX_AGENTS: agents: \"alice\" is not name=token".into()),
            (&[], &[("prot", "1")], "--prot: prot: unknown option; did you mean --port? (`--help` lists every setting)".into()),
            (&[], &[("auth_tokn", "1")], "--auth-tokn: auth_tokn: unknown option; did you mean --auth-token? (`--help` lists every setting)".into()),
            (&[("CLAUDE_CODEX_TELEPORT", "1")], &[], "environment: CLAUDE_CODEX_TELEPORT: unknown variable (`--help` lists every setting)".into()),
            (&[], &[("idle_timeout_secs", "0")], "--idle-timeout-secs: idle_timeout_secs: must be a whole number greater than 0".into()),
            (&[], &[("auth_token_file", &token_path)], format!("--auth-token-file: auth_token_file: {token_path} is empty")),
            (&[], &[("auth_token_file", missing.to_str().unwrap())], format!("--auth-token-file: auth_token_file: cannot read {}: No such file or directory (os error 2)", missing.display())),
            (&[], &[("auth_token", "t"), ("agents", "a=t")], "configuration: agents: agent \"a\" has the same token as auth_token; every token must be distinct".into()),
        ];
        for (env, flags, want) in layer_cases {
            assert_eq!(&refusal("{}", env, flags), want);
        }
        assert_eq!(
            refusal(r#"{"agents": {"a": "t", "b": "t"}}"#, &[], &[]),
            "configuration: agents: agent \"b\" has the same token as a; every token must be distinct"
        );
        let unreadable = Config::load(Some(&missing), &BTreeMap::new(), &[]).unwrap_err();
        assert_eq!(
            unreadable.to_string(),
            format!(
                "{}: (file): cannot read: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}
