//! Configuration: the defaults, then `config.json`, then `CLAUDE_CODEX_*` environment variables,
//! then command-line flags, each layer overriding the one before. Every setting is one row of
//! `KEYS`, which gives it a file key, an environment name and a flag at once. Values are
//! validated here, once, and the resulting `Config` is passed in; the library reads no
//! environment of its own.

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
            auth_token: None,
            agents: BTreeMap::new(),
            addr_file: None,
        }
    }
}

/// The shape of a setting's value, which decides how a string from the environment or a flag
/// is read and which JSON types the file may use.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Number,
    List,
    Map,
}

/// Every key the relay knows, with its kind and a line of help.
#[rustfmt::skip]
const KEYS: &[(&str, Kind, &str)] = &[
    ("host", Kind::Text, "address to listen on [127.0.0.1]"),
    ("port", Kind::Integer, "port to listen on, 0 for any free port [8010]"),
    ("log_path", Kind::Text, "tool log file [log/claude_codex.log]"),
    ("log_max_mb", Kind::Number, "rotate the tool log after N MB [25]"),
    ("log_max_bytes", Kind::Integer, "rotate the tool log after N bytes (legacy)"),
    ("log_backup_count", Kind::Integer, "rotated tool logs to keep [10]"),
    ("channel_log_path", Kind::Text, "channel archive file [log/channel_messages.log]"),
    ("channel_log_max_mb", Kind::Number, "rotate the channel archive after N MB [25]"),
    ("channel_log_max_bytes", Kind::Integer, "rotate the channel archive after N bytes (legacy)"),
    ("channel_log_backup_count", Kind::Integer, "rotated channel archives to keep [10]"),
    ("channels", Kind::List, "channels listed from the start [proj-x,codex,claude]"),
    ("allowed_hosts", Kind::List, "extra Host values accepted, name or name:port []"),
    ("data_dir", Kind::Text, "directory of the journal and the session key [data]"),
    ("store", Kind::Text, "file (journal on disk) or memory [file]"),
    ("fsync", Kind::Text, "always (acknowledged means on disk) or never [always]"),
    ("max_body_bytes", Kind::Integer, "largest request body [4194304]"),
    ("max_message_bytes", Kind::Integer, "largest message text [1048576]"),
    ("max_streams", Kind::Integer, "open event streams plus waiting requests [512]"),
    ("max_streams_per_client", Kind::Integer, "of those, the most one client may hold [128]"),
    ("max_sessions_per_client", Kind::Integer, "MCP sessions one client address keeps in memory [256]"),
    ("session_idle_secs", Kind::Integer, "an unused MCP session leaves memory after N s [600]"),
    ("idle_timeout_secs", Kind::Integer, "close connections silent this long [30]"),
    ("max_connections", Kind::Integer, "connections served at once, within the open-file limit [1024]"),
    ("header_timeout_secs", Kind::Integer, "seconds a request head may take (408) [10]"),
    ("body_timeout_secs", Kind::Integer, "seconds a request body may take, +1 per 64 KiB (408) [10]"),
    ("retention_max_messages", Kind::Integer, "messages kept per channel, 0 = all [0]"),
    ("retention_max_age_days", Kind::Number, "drop messages older than N days, 0 = never [0]"),
    ("auth_token", Kind::Text, "bearer token required on every route but /healthz"),
    ("auth_token_file", Kind::Text, "file holding the bearer token"),
    ("agents", Kind::Map, "per-agent tokens, name -> token (env/flag: name=token,...)"),
    ("addr_file", Kind::Text, "once listening, write the relay's URL (http://HOST:PORT) here"),
];

/// One value from one layer, with the name of where it came from for error messages.
struct Setting {
    source: String,
    key: &'static str,
    value: Value,
}

/// The help text listing every setting as a flag and an environment variable.
pub fn settings_help() -> String {
    let mut out = String::new();
    for (key, _, help) in KEYS {
        let flag = format!("--{}", key.replace('_', "-"));
        out.push_str(&format!("  {flag:<28} {help}\n"));
        out.push_str(&format!(
            "  {:<28} (env {ENV_PREFIX}{})\n",
            "",
            key.to_uppercase()
        ));
    }
    out
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
        for (key, _, _) in KEYS {
            let var = format!("{ENV_PREFIX}{}", key.to_uppercase());
            if let Some(raw) = env.get(&var) {
                settings.push(from_text(&var, key, raw)?);
            }
        }
        for (name, raw) in flags {
            let flag = format!("--{}", name.replace('_', "-"));
            let key = lookup(name).ok_or_else(|| Error::Config {
                source: flag.clone(),
                key: name.clone(),
                message: "unknown option".into(),
            })?;
            settings.push(from_text(&flag, key, raw)?);
        }
        let mut config = Config::default();
        for setting in settings {
            config.apply(setting)?;
        }
        config.check_tokens()?;
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
    pub fn bind_address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn apply(&mut self, s: Setting) -> Result<(), Error> {
        let bad = |message: String| Error::Config {
            source: s.source.clone(),
            key: s.key.to_string(),
            message,
        };
        let v = &s.value;
        match s.key {
            "host" => self.host = nonempty_text(v).map_err(bad)?,
            "port" => {
                self.port = u16::try_from(integer(v).map_err(bad)?)
                    .map_err(|_| bad("must be a port number from 0 to 65535".into()))?
            }
            "log_path" => self.log_path = nonempty_text(v).map_err(bad)?.into(),
            "log_max_mb" => self.log_max_bytes = megabytes(v).map_err(bad)?,
            "log_max_bytes" => self.log_max_bytes = positive(v).map_err(bad)?,
            "log_backup_count" => self.log_backup_count = integer(v).map_err(bad)? as usize,
            "channel_log_path" => self.channel_log_path = nonempty_text(v).map_err(bad)?.into(),
            "channel_log_max_mb" => self.channel_log_max_bytes = megabytes(v).map_err(bad)?,
            "channel_log_max_bytes" => self.channel_log_max_bytes = positive(v).map_err(bad)?,
            "channel_log_backup_count" => {
                self.channel_log_backup_count = integer(v).map_err(bad)? as usize
            }
            "channels" => self.channels = list(v).map_err(bad)?,
            "allowed_hosts" => self.allowed_hosts = list(v).map_err(bad)?,
            "data_dir" => self.data_dir = nonempty_text(v).map_err(bad)?.into(),
            "store" => {
                self.store = match nonempty_text(v).map_err(bad)?.as_str() {
                    "file" => StoreKind::File,
                    "memory" => StoreKind::Memory,
                    other => return Err(bad(format!("{other:?} is not one of: file, memory"))),
                }
            }
            "fsync" => {
                self.fsync = match nonempty_text(v).map_err(bad)?.as_str() {
                    "always" => Fsync::Always,
                    "never" => Fsync::Never,
                    other => return Err(bad(format!("{other:?} is not one of: always, never"))),
                }
            }
            "max_body_bytes" => self.max_body_bytes = positive(v).map_err(bad)? as usize,
            "max_message_bytes" => self.max_message_bytes = positive(v).map_err(bad)? as usize,
            "max_streams" => self.max_streams = positive(v).map_err(bad)? as usize,
            "max_streams_per_client" => {
                self.max_streams_per_client = positive(v).map_err(bad)? as usize
            }
            "max_sessions_per_client" => {
                self.max_sessions_per_client = positive(v).map_err(bad)? as usize
            }
            "session_idle_secs" => self.session_idle_secs = positive(v).map_err(bad)?,
            "idle_timeout_secs" => self.idle_timeout_secs = positive(v).map_err(bad)?,
            "max_connections" => self.max_connections = positive(v).map_err(bad)? as usize,
            "header_timeout_secs" => self.header_timeout_secs = positive(v).map_err(bad)?,
            "body_timeout_secs" => self.body_timeout_secs = positive(v).map_err(bad)?,
            "retention_max_messages" => {
                self.retention_max_messages = integer(v).map_err(bad)? as usize
            }
            "retention_max_age_days" => {
                self.retention_max_age_days = number(v).map_err(bad)?;
            }
            "auth_token" => self.auth_token = optional_token(v).map_err(bad)?,
            "auth_token_file" => {
                let path = nonempty_text(v).map_err(bad)?;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| bad(format!("cannot read {path}: {e}")))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(bad(format!("{path} is empty")));
                }
                self.auth_token = Some(token);
            }
            "agents" => self.agents = agents(v).map_err(bad)?,
            "addr_file" => self.addr_file = Some(nonempty_text(v).map_err(bad)?.into()),
            _ => unreachable!("every key of KEYS is applied"),
        }
        Ok(())
    }
}

/// Fails on a `CLAUDE_CODEX_*` variable that names no setting (a typo would otherwise be
/// silently ignored), naming the closest one.
fn check_env_names(env: &BTreeMap<String, String>) -> Result<(), Error> {
    for var in env.keys() {
        let Some(name) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_SETTINGS.contains(&name) || lookup(&name.to_lowercase()).is_some() {
            continue;
        }
        let closest = KEYS
            .iter()
            .map(|(k, _, _)| k.to_uppercase())
            .chain(ENV_NOT_SETTINGS.iter().map(|n| n.to_string()))
            .min_by_key(|k| edit_distance(k, name))
            .unwrap_or_default();
        return Err(Error::Config {
            source: "environment".into(),
            key: var.clone(),
            message: format!(
                "unknown variable; did you mean {ENV_PREFIX}{closest}? (`--help` lists every setting)"
            ),
        });
    }
    Ok(())
}

/// The Levenshtein distance between two names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn lookup(name: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _, _)| *k == name).map(|(k, _, _)| *k)
}

fn kind_of(key: &str) -> Kind {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, kind, _)| *kind)
        .unwrap_or(Kind::Text)
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
    let mut out = Vec::new();
    for (key, value) in map {
        let known = lookup(&key).ok_or_else(|| fail(&key, "unknown key".into()))?;
        out.push(Setting {
            source: source.clone(),
            key: known,
            value,
        });
    }
    Ok(out)
}

/// Reads a string from the environment or the command line as the key's JSON value.
fn from_text(source: &str, key: &'static str, raw: &str) -> Result<Setting, Error> {
    let value = match kind_of(key) {
        Kind::Text => Value::String(raw.to_string()),
        Kind::Integer => match raw.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => {
                return Err(Error::Config {
                    source: source.into(),
                    key: key.into(),
                    message: format!("{raw:?} is not a whole number"),
                })
            }
        },
        Kind::Number => match raw.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::from(n),
            _ => {
                return Err(Error::Config {
                    source: source.into(),
                    key: key.into(),
                    message: format!("{raw:?} is not a number"),
                })
            }
        },
        Kind::List => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Kind::Map => {
            let mut map = Map::new();
            for pair in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((name, token)) = pair.split_once('=') else {
                    return Err(Error::Config {
                        source: source.into(),
                        key: key.into(),
                        message: format!("{pair:?} is not name=token"),
                    });
                };
                map.insert(
                    name.trim().to_string(),
                    Value::String(token.trim().to_string()),
                );
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

fn nonempty_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Value::String(_) => Err("must not be empty".into()),
        other => Err(format!("must be a string, not {}", type_name(other))),
    }
}

/// A token, or null for none. A blank string is refused: taken for "no token" it would leave
/// the relay open while the operator believes it is protected.
fn optional_token(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => {
            Err("must not be blank (use null, or leave it out, for no token)".into())
        }
        Value::String(s) => Ok(Some(s.trim().to_string())),
        other => Err(format!(
            "must be a string or null, not {}",
            type_name(other)
        )),
    }
}

fn integer(v: &Value) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| match v {
        Value::Number(_) => "must be a whole number, 0 or more".to_string(),
        other => format!("must be a number, not {}", type_name(other)),
    })
}

/// One message for every number that is not a whole number above 0 (0, -5, 1.5), so that
/// neither suggests another one that is also refused.
fn positive(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| "must be a whole number greater than 0".to_string()),
        other => Err(format!("must be a number, not {}", type_name(other))),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.is_finite() => Ok(n),
        Some(_) => Err("must be 0 or more".into()),
        None => Err(format!("must be a number, not {}", type_name(v))),
    }
}

/// Like `positive`, one message for 0 and negative sizes alike.
fn megabytes(v: &Value) -> Result<u64, String> {
    let mb = v
        .as_f64()
        .ok_or_else(|| format!("must be a number, not {}", type_name(v)))?;
    let bytes = (mb * MB as f64) as u64;
    if !mb.is_finite() || bytes == 0 {
        return Err("must be a number of megabytes greater than 0".into());
    }
    Ok(bytes)
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
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        other => Err(format!(
            "must be a list of strings, not {}",
            type_name(other)
        )),
    }
}

fn agents(v: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "must be an object of name -> token, not {}",
            type_name(v)
        ));
    };
    let mut out = BTreeMap::new();
    for (name, token) in map {
        match token {
            Value::String(t) if !t.trim().is_empty() && !name.trim().is_empty() => {
                out.insert(name.trim().to_string(), t.trim().to_string());
            }
            _ => return Err(format!("agent {name:?} needs a non-empty token string")),
        }
    }
    Ok(out)
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
