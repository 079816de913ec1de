//! `setup claude|codex|gemini`: the exact configuration that connects a client to this relay,
//! printed, or with `--apply` put in place. Claude Code and Gemini CLI are configured with
//! their own `mcp add` commands (run after `mcp remove`, so running setup twice leaves the
//! same one entry); Codex's `config.toml` is edited directly: its `[mcp_servers.relay]` table
//! is added, or the keys setup writes are set in it (whatever the spelling of its header), and
//! everything else in the file is kept byte for byte, the table's other keys and sub-tables
//! too, except the keys of a server started as a command, which Codex refuses beside `url`; a
//! file that defines the server otherwise (an inline table, dotted keys),
//! or is not TOML, is left alone with an error saying what to change. The file is replaced
//! whole, through a symbolic link to its target, with its permission bits kept. Only Claude
//! Code takes pushed messages, so `--listen` (and its `--as`) configures the stdio bridge for it.

use super::args::Parsed;
use super::error::Error;
use super::relay_client::RelayClient;
use super::toml_lines::Kind;
use super::Io;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name the relay's server gets in every client.
const SERVER: &str = "relay";

/// The clients setup configures.
const CLIENTS: [&str; 3] = ["claude", "codex", "gemini"];

/// The environment variable Codex reads the relay's token from.
const CODEX_TOKEN_VAR: &str = "CLAUDE_CODEX_TOKEN";

/// Runs `setup` for the client named by the first word.
pub(super) fn run(
    relay: &RelayClient,
    p: &Parsed,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    let client = match p.words.as_slice() {
        [c] if CLIENTS.contains(&c.as_str()) => c.as_str(),
        [c] => {
            return Err(Error::Usage(format!(
                "unknown client {c:?}: setup configures claude, codex or gemini"
            )))
        }
        _ => {
            return Err(Error::Usage(
                "setup needs one client: claude, codex or gemini".into(),
            ))
        }
    };
    if client != "claude" {
        // Named as given: --as alone is as much a mistake here as --listen.
        let given = ["listen", "as"].into_iter().find(|o| p.has(o));
        if let Some(option) = given {
            return Err(Error::Usage(format!(
                "--{option} is for Claude Code (--listen C --as NAME), the one client that takes pushed messages; {client} can be woken with `watch --exec`"
            )));
        }
    }
    match client {
        "codex" => codex(relay, p, env, io),
        _ => {
            let commands = match client {
                "claude" => claude(relay, p)?,
                _ => gemini(relay),
            };
            for (_, add) in &commands {
                say(io, &shell_line(add))?;
            }
            if client == "claude" && p.has("listen") {
                say(io, "# then start Claude Code with the channel loaded:")?;
                say(
                    io,
                    &format!("claude --dangerously-load-development-channels server:{SERVER}"),
                )?;
            }
            if p.has("apply") {
                for (remove, add) in &commands {
                    apply_commands(remove, add, io)?;
                }
            }
            Ok(())
        }
    }
}

/// A `remove` that clears the way and the `add` that configures: argument lists.
type Commands = Vec<(Vec<String>, Vec<String>)>;

fn claude(relay: &RelayClient, p: &Parsed) -> Result<Commands, Error> {
    let remove = words(&["claude", "mcp", "remove", SERVER]);
    if p.has("as") && !p.has("listen") {
        return Err(Error::Usage(
            "--as names the listener of --listen: give --listen CHANNELS too, or leave --as out"
                .into(),
        ));
    }
    if p.get("as").is_some_and(|n| n.trim().is_empty()) {
        return Err(Error::Usage(
            "--as needs a name; leave it out for the default, claude".into(),
        ));
    }
    let add = match p.get("listen") {
        Some(listen) => {
            // The name must be one a post's sender could be: the bridge skips the messages
            // stored under it and the relay lists the listener by it.
            let listener = crate::listen::Listen::parse(listen, p.get("as"), &[])
                .map_err(super::bad_argument)?
                .ok_or_else(|| Error::Usage("--listen needs a channel name".into()))?;
            let name = listener.name.as_deref().unwrap_or("claude");
            let mut add = words(&["claude", "mcp", "add"]);
            if let Some(token) = relay.token() {
                add.extend(words(&["-e", &format!("CLAUDE_CODEX_TOKEN={token}")]));
            }
            add.extend(words(&[
                SERVER,
                "--",
                &binary(),
                "mcp",
                "--url",
                relay.url(),
            ]));
            add.extend(words(&["--listen", listen, "--as", name]));
            add
        }
        None => {
            let mut add = words(&["claude", "mcp", "add", "--transport", "http"]);
            add.extend(words(&[SERVER, &format!("{}/mcp", relay.url())]));
            if let Some(token) = relay.token() {
                add.extend(words(&[
                    "--header",
                    &format!("Authorization: Bearer {token}"),
                ]));
            }
            add
        }
    };
    Ok(vec![(remove, add)])
}

fn gemini(relay: &RelayClient) -> Commands {
    let remove = words(&["gemini", "mcp", "remove", SERVER]);
    let mut add = words(&["gemini", "mcp", "add", "--transport", "http"]);
    if let Some(token) = relay.token() {
        add.extend(words(&[
            "--header",
            &format!("Authorization: Bearer {token}"),
        ]));
    }
    add.extend(words(&[SERVER, &format!("{}/mcp", relay.url())]));
    vec![(remove, add)]
}

/// Codex: the `codex mcp add` line, and the table it writes, which `--apply` writes itself.
fn codex(
    relay: &RelayClient,
    p: &Parsed,
    env: &BTreeMap<String, String>,
    io: &mut Io,
) -> Result<(), Error> {
    let url = format!("{}/mcp", relay.url());
    let mut keys = vec![("url", toml_string(&url))];
    let mut add = words(&["codex", "mcp", "add", SERVER, "--url", &url]);
    if relay.token().is_some() {
        // Codex takes a bearer token only from an environment variable, named by the table's
        // key or by the `mcp add` flag that writes it.
        keys.push(("bearer_token_env_var", toml_string(CODEX_TOKEN_VAR)));
        add.extend(words(&["--bearer-token-env-var", CODEX_TOKEN_VAR]));
    }
    let file = codex_config(env)?;
    say(io, &shell_line(&add))?;
    say(io, &format!("# or in {}:", file.display()))?;
    out(io, &format!("[mcp_servers.{SERVER}]\n{}", key_lines(&keys)))?;
    if relay.token().is_some() {
        say(
            io,
            &format!("# and before starting Codex: export {CODEX_TOKEN_VAR}=<the token>"),
        )?;
    }
    if !p.has("apply") {
        return Ok(());
    }
    let old = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::Local(format!("cannot read {}: {e}", file.display()))),
    };
    let edit = set_keys(&old, &keys).map_err(|e| {
        Error::Local(format!(
            "cannot edit {}: {e}; nothing was changed",
            file.display()
        ))
    })?;
    if edit.text == old {
        return say(
            io,
            &format!("unchanged: {} already holds this table", file.display()),
        );
    }
    write_atomically(&file, &edit.text)?;
    if !edit.had {
        return say(
            io,
            &format!("added [mcp_servers.{SERVER}] in {}", file.display()),
        );
    }
    say(
        io,
        &format!("updated [mcp_servers.{SERVER}] in {}:", file.display()),
    )?;
    for (key, value) in &keys {
        let was = match edit.was.iter().find(|(k, _)| k == key) {
            None => "added".to_string(),
            Some((_, old)) if old == value => "unchanged".to_string(),
            Some((_, old)) => format!("was {old}"),
        };
        say(io, &format!("  {key} = {value} ({was})"))?;
    }
    if !edit.removed.is_empty() {
        say(
            io,
            &format!(
                "  removed {}: the settings of a server Codex starts as a command, which it refuses beside url",
                edit.removed.join(", ")
            ),
        )?;
    }
    if !edit.kept.is_empty() {
        say(io, &format!("  kept {}", edit.kept.join(", ")))?;
    }
    let refused: Vec<&str> = edit
        .kept
        .iter()
        .map(|k| k.trim_start_matches(&format!("[mcp_servers.{SERVER}.")))
        .map(|k| k.trim_end_matches(']'))
        .filter(|k| STDIO_KEYS.contains(k))
        .collect();
    if !refused.is_empty() {
        say(
            io,
            &format!(
                "  note: Codex refuses {} in a server with a url: kept as found, for you to remove",
                refused.join(", ")
            ),
        )?;
    }
    Ok(())
}

/// `key = value` lines.
fn key_lines(keys: &[(&str, String)]) -> String {
    keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect()
}

/// `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`.
fn codex_config(env: &BTreeMap<String, String>) -> Result<PathBuf, Error> {
    let non_empty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    match (non_empty("CODEX_HOME"), non_empty("HOME")) {
        (Some(dir), _) => Ok(PathBuf::from(dir).join("config.toml")),
        (None, Some(home)) => Ok(PathBuf::from(home).join(".codex").join("config.toml")),
        (None, None) => Err(Error::Local(
            "neither CODEX_HOME nor HOME is set: cannot find Codex's config.toml".into(),
        )),
    }
}

/// The keys of a server that Codex starts as a command, which it refuses for a server with a
/// url; `env` is also a sub-table.
const STDIO_KEYS: [&str; 5] = ["command", "args", "env", "env_vars", "cwd"];

/// What [`set_keys`] made of a file.
#[derive(Debug, Default, PartialEq)]
struct Edit {
    text: String,
    /// Whether the file had the table, or a sub-table of it.
    had: bool,
    /// The keys set that were there before, with the values they had.
    was: Vec<(String, String)>,
    /// What was taken out: the keys of a server started as a command, as the key's name or a
    /// sub-table's header.
    removed: Vec<String>,
    /// The table's other keys and sub-tables, kept as they were.
    kept: Vec<String>,
}

/// `text` with `keys` set in the table `[mcp_servers.relay]` (found in any spelling of its
/// header), right after its header, and every other line kept: the table's other keys and
/// its sub-tables are the user's (a timeout, `[mcp_servers.relay.env]`). A table that starts
/// the server as a command (a `command` key) loses the keys of that kind of server, which
/// Codex refuses beside `url` ([`STDIO_KEYS`]), comments inside them going with them. Without
/// the table, it is added before its first sub-table, or at the end. Refused, with what to
/// change, when the file is not TOML this can follow, or defines the server in a form a table
/// cannot hold (an inline `relay = {...}`, dotted keys).
fn set_keys(text: &str, keys: &[(&str, String)]) -> Result<Edit, String> {
    let ours = ["mcp_servers", SERVER];
    let is_ours = |key: &[String]| key == ours;
    let under_ours = |key: &[String]| key.len() > 2 && key[..2] == ours;
    let statements = super::toml_lines::statements(text)?;
    // First, what the table is: whether it is there, and whether it starts a command.
    let (mut has_table, mut stdio, mut current) = (false, false, Vec::new());
    for s in &statements {
        match &s.kind {
            Kind::Header { key, .. } => {
                current.clone_from(key);
                has_table |= is_ours(key);
            }
            Kind::Pair { key } if is_ours(&current) && key[0] == "command" => stdio = true,
            _ => {}
        }
    }
    let owned = |name: &str| stdio && STDIO_KEYS.contains(&name);
    let table = format!("[mcp_servers.{SERVER}]\n{}", key_lines(keys));
    let note = |list: &mut Vec<String>, name: String| {
        if !list.contains(&name) {
            list.push(name);
        }
    };
    let mut edit = Edit::default();
    let mut kept = String::new();
    // Where the statement is: the header over it, whether that is the table, a sub-table of
    // it, or a sub-table that goes.
    let mut current: Vec<String> = Vec::new();
    let (mut in_table, mut in_sub, mut dropping) = (false, false, false);
    // Whether `keys` were written: after the first header of the table (TOML allows one).
    let mut written = false;
    // A run of comment lines (and the blank lines after its first) waits for what follows: a
    // header that goes takes them with it, as does a key of a sub-table that goes.
    let mut held = String::new();
    for s in statements {
        match &s.kind {
            Kind::Header { key, array } => {
                if *array && key.len() <= 2 && key[..] == ours[..key.len()] {
                    return Err(format!(
                        "line {}: [[{}]] declares an array of tables where the relay's server goes; setup writes [mcp_servers.{SERVER}] and that cannot be added to it: fix that line by hand and run setup again",
                        s.line,
                        key.join(".")
                    ));
                }
                current.clone_from(key);
                in_table = !*array && is_ours(key);
                in_sub = under_ours(key);
                dropping = in_sub && owned(&key[2]);
                if dropping {
                    held.clear();
                } else {
                    kept.push_str(&std::mem::take(&mut held));
                }
                if in_sub {
                    edit.had = true;
                    if !has_table {
                        // The table is written before its first sub-table.
                        has_table = true;
                        kept.push_str(&table);
                        kept.push('\n');
                    }
                    let name = match array {
                        true => format!("[[{}]]", key.join(".")),
                        false => format!("[{}]", key.join(".")),
                    };
                    note(
                        if dropping {
                            &mut edit.removed
                        } else {
                            &mut edit.kept
                        },
                        name,
                    );
                }
                if !dropping {
                    kept.push_str(s.text);
                }
                if in_table && !written {
                    (edit.had, written) = (true, true);
                    if !kept.ends_with('\n') {
                        kept.push('\n');
                    }
                    kept.push_str(&key_lines(keys));
                }
            }
            Kind::Pair { .. } if dropping => held.clear(),
            Kind::Pair { key } if in_table => {
                kept.push_str(&std::mem::take(&mut held));
                let name = &key[0];
                if let Some((set, _)) = keys.iter().find(|(k, _)| *k == name.as_str()) {
                    if key.len() == 1 {
                        let value = s.value.unwrap_or_default();
                        edit.was.push((set.to_string(), value.to_string()));
                    }
                } else if owned(name) {
                    note(&mut edit.removed, name.clone());
                } else {
                    note(&mut edit.kept, name.clone());
                    kept.push_str(s.text);
                }
            }
            Kind::Pair { key } => {
                kept.push_str(&std::mem::take(&mut held));
                let full: Vec<String> = current.iter().chain(key).cloned().collect();
                if !in_sub && (full.len() >= 2 && full[..2] == ours || full == ["mcp_servers"]) {
                    return Err(format!(
                        "line {} defines the {SERVER} server as a key (`{}` under [{}]), which setup cannot replace without leaving the server defined twice: remove that definition, or write it as the [mcp_servers.{SERVER}] table printed above, and run setup again",
                        s.line,
                        key.join("."),
                        current.join(".")
                    ));
                }
                kept.push_str(s.text);
            }
            Kind::Comment => held.push_str(s.text),
            Kind::Blank if !held.is_empty() => held.push_str(s.text),
            Kind::Blank if dropping => {}
            Kind::Blank => kept.push_str(s.text),
        }
    }
    kept.push_str(&held);
    if edit.had {
        let trimmed = kept.trim_end_matches('\n').len();
        kept.truncate(trimmed);
        kept.push('\n');
    } else {
        if !kept.is_empty() && !kept.ends_with('\n') {
            kept.push('\n');
        }
        if !kept.is_empty() {
            kept.push('\n');
        }
        kept.push_str(&table);
    }
    edit.text = kept;
    Ok(edit)
}

/// Writes `text` to `file` whole: into a temporary file beside the file `file` finally names,
/// then renamed over it, so a reader never sees half a file. A symbolic link (a config kept in
/// a dotfiles repository) is followed, so the link stays and its target gets the text. The file
/// keeps its permission bits, which matters for a config holding a secret (often mode 600); the
/// temporary file is never more open than that while the text goes in. A new file gets the
/// mode the umask leaves, as any editor would create it.
fn write_atomically(file: &Path, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Local(format!("cannot write {}: {e}", file.display()));
    let target = final_target(file).map_err(fail)?;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let kept = match std::fs::metadata(&target) {
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e)),
    };
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".relay-setup");
    let tmp = target.with_file_name(name);
    // Left by a run that was interrupted: it holds nothing the file does not.
    let _ = std::fs::remove_file(&tmp);
    let written = (|| {
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        if kept.is_some() {
            open.mode(0o600);
        }
        let mut out = open.open(&tmp)?;
        if let Some(permissions) = kept {
            out.set_permissions(permissions)?;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(fail)
}

/// The file `path` names once every symbolic link on the way is followed (a link's relative
/// target is read from the link's own directory); `path` itself when it is no link or does
/// not exist yet. A target that does not exist yet is where the file will be created.
fn final_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut at = path.to_path_buf();
    // As many links as the kernel follows before it gives up (ELOOP).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Ok(_) => return Ok(at),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(at),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "too many levels of symbolic links from {}",
        path.display()
    )))
}

/// Runs `remove` (a failure means there was nothing to remove), then `add`.
fn apply_commands(remove: &[String], add: &[String], io: &mut Io) -> Result<(), Error> {
    let removed = Command::new(&remove[0])
        .args(&remove[1..])
        .output()
        .map_err(|e| Error::Local(format!("cannot run {}: {e}", remove[0])))?;
    let added = Command::new(&add[0])
        .args(&add[1..])
        .output()
        .map_err(|e| Error::Local(format!("cannot run {}: {e}", add[0])))?;
    io.stdout
        .write_all(&added.stdout)
        .and_then(|()| io.stderr.write_all(&added.stderr))
        .map_err(Error::output)?;
    if !added.status.success() {
        return Err(Error::Local(format!(
            "`{}` failed ({})",
            shell_line(add),
            added.status
        )));
    }
    let what = if removed.status.success() {
        "replaced"
    } else {
        "added"
    };
    say(
        io,
        &format!("{what} the {SERVER} server: ran `{}`", shell_line(add)),
    )
}

/// This program's path, for the bridge command a client spawns.
fn binary() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "claude-codex-relay".into())
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|w| w.to_string()).collect()
}

/// The words as one line a POSIX shell reads back as the same words.
fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn say(io: &mut Io, line: &str) -> Result<(), Error> {
    out(io, &format!("{line}\n"))
}

fn out(io: &mut Io, text: &str) -> Result<(), Error> {
    io.stdout
        .write_all(text.as_bytes())
        .and_then(|()| io.stdout.flush())
        .map_err(Error::output)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "[mcp_servers.relay]\nurl = \"http://h/mcp\"\n";

    /// The file with the table's url set to `http://h/mcp`, and whether it had the table.
    fn replace_table(text: &str) -> Result<(String, bool), String> {
        set_keys(text, &[("url", toml_string("http://h/mcp"))]).map(|e| (e.text, e.had))
    }

    #[test]
    fn the_relay_table_is_added_or_its_url_set_and_the_rest_kept() {
        let (added, had) = replace_table("model = \"o3\"\n").unwrap();
        assert!(!had);
        assert_eq!(added, format!("model = \"o3\"\n\n{TABLE}"));
        let old = "a = 1\n\n[mcp_servers.relay]\nurl = \"old\"\n\n[mcp_servers.relay.env]\nX = \"1\"\n\n[mcp_servers.other]\nurl = \"o\"\n";
        let (new, had) = replace_table(old).unwrap();
        assert!(had);
        assert_eq!(new, old.replace("\"old\"", "\"http://h/mcp\""));
        assert_eq!(replace_table(&new).unwrap().0, new);
        assert_eq!(replace_table("").unwrap().0, TABLE);
        let (at_end, _) = replace_table(&format!("x = 1\n\n{TABLE}")).unwrap();
        assert_eq!(at_end, format!("x = 1\n\n{TABLE}"));
        // A table without a line end after its header still gets its key on a line of its own.
        assert_eq!(
            replace_table("[mcp_servers.relay]").unwrap().0,
            TABLE.to_string()
        );
    }

    #[test]
    fn only_the_keys_setup_writes_change_and_the_edit_says_what_it_kept() {
        let old = "[mcp_servers.relay]\n# where it is\nurl = \"http://old/mcp\"\ntool_timeout_sec = 120\nbearer_token_env_var = \"MINE\"\n\n[mcp_servers.relay.env]\nFOO = \"bar\"\n\n[mcp_servers.relay.tools.post_message]\napproval_mode = \"approve\"\n";
        let keys = [
            ("url", toml_string("http://h/mcp")),
            ("bearer_token_env_var", toml_string("CLAUDE_CODEX_TOKEN")),
        ];
        let edit = set_keys(old, &keys).unwrap();
        assert_eq!(
            edit.text,
            "[mcp_servers.relay]\nurl = \"http://h/mcp\"\nbearer_token_env_var = \"CLAUDE_CODEX_TOKEN\"\n# where it is\ntool_timeout_sec = 120\n\n[mcp_servers.relay.env]\nFOO = \"bar\"\n\n[mcp_servers.relay.tools.post_message]\napproval_mode = \"approve\"\n"
        );
        assert_eq!(
            edit.was,
            [
                ("url".to_string(), "\"http://old/mcp\"".to_string()),
                ("bearer_token_env_var".into(), "\"MINE\"".into())
            ]
        );
        assert_eq!(
            edit.kept,
            [
                "tool_timeout_sec",
                "[mcp_servers.relay.env]",
                "[mcp_servers.relay.tools.post_message]"
            ]
        );
        assert!(edit.removed.is_empty());
        assert_eq!(set_keys(&edit.text, &keys).unwrap().text, edit.text);
        // A comment after a value is not part of what the key held.
        let commented = "[mcp_servers.relay]\nurl = \"http://h/mcp\" # the relay\n";
        let edit = set_keys(commented, &keys[..1]).unwrap();
        assert_eq!(
            edit.was,
            [("url".to_string(), "\"http://h/mcp\"".to_string())]
        );
        // Without a token, setup writes no bearer_token_env_var, and one that is there stays.
        let (kept, _) = replace_table(old).unwrap();
        assert!(kept.contains("bearer_token_env_var = \"MINE\"\n"), "{kept}");
    }

    #[test]
    fn a_server_started_as_a_command_loses_the_keys_codex_refuses_beside_url() {
        let old = "[mcp_servers.relay]\ncommand = \"claude-codex-relay\"\nargs = [\n  \"mcp\",\n]\ncwd = \"/tmp\"\nenabled = false\n\n# its environment\n[mcp_servers.relay.env]\nX = \"1\"\n# the other server\n\n[mcp_servers.other]\nurl = \"o\"\n";
        let edit = set_keys(old, &[("url", toml_string("http://h/mcp"))]).unwrap();
        assert_eq!(
            edit.text,
            format!("{TABLE}enabled = false\n\n# the other server\n\n[mcp_servers.other]\nurl = \"o\"\n")
        );
        assert_eq!(
            edit.removed,
            ["command", "args", "cwd", "[mcp_servers.relay.env]"]
        );
        assert_eq!(edit.kept, ["enabled"]);
        assert!(edit.was.is_empty());
    }

    #[test]
    fn a_table_known_by_its_sub_tables_alone_is_written_before_them() {
        let old = "x = 1\n\n[mcp_servers.relay.env]\nX = \"1\"\n";
        let (new, had) = replace_table(old).unwrap();
        assert!(had);
        assert_eq!(
            new,
            format!("x = 1\n\n{TABLE}\n[mcp_servers.relay.env]\nX = \"1\"\n")
        );
    }

    #[test]
    fn a_table_ends_at_any_header_and_is_found_in_any_spelling() {
        let (new, had) = replace_table(
            "[mcp_servers.relay]\nurl = \"old\"\n\n# the hooks\n[[hooks]]\nname = \"keep-me\"\n",
        )
        .unwrap();
        assert!(had);
        assert_eq!(
            new,
            format!("{TABLE}\n# the hooks\n[[hooks]]\nname = \"keep-me\"\n")
        );
        for header in [
            "[mcp_servers.\"relay\"]",
            "[ mcp_servers.relay ]",
            "['mcp_servers'.'relay']",
        ] {
            let old =
                format!("a = 1\n\n{header}\nurl = \"old\"\n\n[mcp_servers.other]\nurl = \"o\"\n");
            let (new, had) = replace_table(&old).unwrap();
            assert!(had, "{header}");
            assert_eq!(new, old.replace("\"old\"", "\"http://h/mcp\""));
        }
        // A header-like line inside a multi-line string or array is not a header.
        let old = "x = \"\"\"\n[mcp_servers.relay]\n\"\"\"\ny = [\n  [1],\n]\n";
        assert_eq!(
            replace_table(old).unwrap(),
            (format!("{old}\n{TABLE}"), false)
        );
    }

    #[test]
    fn a_server_defined_by_keys_or_a_file_that_is_not_toml_is_refused() {
        for (old, line) in [
            ("[mcp_servers]\nrelay = { url = \"x\" }\n", "line 2 "),
            ("[mcp_servers]\nrelay.url = \"x\"\n", "line 2 "),
            ("mcp_servers.relay.url = \"x\"\n", "line 1 "),
            (
                "model = 1\nmcp_servers = { relay = { url = \"x\" } }\n",
                "line 2 ",
            ),
            ("[[mcp_servers]]\nname = 1\n", "line 1:"),
            ("[mcp_servers.relay\nurl = 1\n", "line 1:"),
        ] {
            let e = replace_table(old).unwrap_err();
            assert!(e.starts_with(line), "{old:?}: {e}");
        }
    }

    #[test]
    fn shell_lines_quote_what_a_shell_would_split() {
        let line = shell_line(&words(&["claude", "--header", "Authorization: Bearer t'k"]));
        assert_eq!(line, r"claude --header 'Authorization: Bearer t'\''k'");
    }
}
