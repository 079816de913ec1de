//! `setup claude|codex|gemini`: the exact configuration that connects a client to this relay,
//! printed, or with `--apply` put in place. Claude Code and Gemini CLI are configured with
//! their own `mcp add` commands (run after `mcp remove`, so running setup twice leaves the
//! same one entry); Codex's `config.toml` is edited directly: its `[mcp_servers.relay]` table
//! is added or replaced (whatever the spelling of its header) and everything else in the file is
//! kept byte for byte; a file that defines the server otherwise (an inline table, dotted keys),
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
        [c] if ["claude", "codex", "gemini"].contains(&c.as_str()) => c.as_str(),
        _ => {
            return Err(Error::Usage(
                "setup needs one client: claude, codex or gemini".into(),
            ))
        }
    };
    if client != "claude" && (p.has("listen") || p.has("as")) {
        return Err(Error::Usage(format!(
            "--listen is for Claude Code, the one client that takes pushed messages; {client} can be woken with `watch --exec`"
        )));
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
    let mut table = format!("[mcp_servers.{SERVER}]\nurl = {}\n", toml_string(&url));
    let mut add = words(&["codex", "mcp", "add", SERVER, "--url", &url]);
    if relay.token().is_some() {
        // Codex takes a bearer token only from an environment variable, named by the table's
        // key or by the `mcp add` flag that writes it.
        table.push_str(&format!("bearer_token_env_var = \"{CODEX_TOKEN_VAR}\"\n"));
        add.extend(words(&["--bearer-token-env-var", CODEX_TOKEN_VAR]));
    }
    let file = codex_config(env)?;
    say(io, &shell_line(&add))?;
    say(io, &format!("# or in {}:", file.display()))?;
    out(io, &table)?;
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
    let (new, had) = replace_table(&old, &table).map_err(|e| {
        Error::Local(format!(
            "cannot edit {}: {e}; nothing was changed",
            file.display()
        ))
    })?;
    if new == old {
        return say(
            io,
            &format!("unchanged: {} already holds this table", file.display()),
        );
    }
    write_atomically(&file, &new)?;
    let what = if had { "replaced" } else { "added" };
    say(
        io,
        &format!("{what} [mcp_servers.{SERVER}] in {}", file.display()),
    )
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

/// `text` with the table `[mcp_servers.relay]` (in any spelling of its header, and with its
/// sub-tables) replaced by `table`, or `table` appended; and whether the table was there.
/// Comments between the table's last key and the next header stay: they are the next one's.
/// Refused, with what to change, when the file is not TOML this can follow, or defines the
/// server in a form a table cannot replace (an inline `relay = {...}`, dotted keys).
fn replace_table(text: &str, table: &str) -> Result<(String, bool), String> {
    let ours = ["mcp_servers", SERVER];
    let starts_ours = |key: &[String]| key.len() >= 2 && key[..2] == ours;
    let mut kept = String::new();
    let mut current: Vec<String> = Vec::new();
    let mut inside = false;
    let mut found = false;
    // Comment lines (and the blank lines among them) inside the table after its last key.
    let mut held = String::new();
    for s in super::toml_lines::statements(text)? {
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
                inside = starts_ours(key);
                // Comments before a sub-table of the relay's go with it.
                let comments = std::mem::take(&mut held);
                if !inside {
                    kept.push_str(&comments);
                }
                if !inside {
                    kept.push_str(s.text);
                } else if !found {
                    found = true;
                    kept.push_str(table);
                    kept.push('\n');
                }
            }
            Kind::Pair { .. } if inside => held.clear(),
            Kind::Pair { key } => {
                let full: Vec<String> = current.iter().chain(key).cloned().collect();
                if starts_ours(&full) || full == ["mcp_servers"] {
                    return Err(format!(
                        "line {} defines the {SERVER} server as a key (`{}` under [{}]), which setup cannot replace without leaving the server defined twice: remove that definition, or write it as the [mcp_servers.{SERVER}] table printed above, and run setup again",
                        s.line,
                        key.join("."),
                        current.join(".")
                    ));
                }
                kept.push_str(s.text);
            }
            Kind::Comment if inside => held.push_str(s.text),
            Kind::Blank if inside => {
                if !held.is_empty() {
                    held.push_str(s.text);
                }
            }
            Kind::Blank | Kind::Comment => kept.push_str(s.text),
        }
    }
    kept.push_str(&held);
    if found {
        let trimmed = kept.trim_end_matches('\n').len();
        kept.truncate(trimmed);
        kept.push('\n');
        return Ok((kept, true));
    }
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    if !kept.is_empty() {
        kept.push('\n');
    }
    kept.push_str(table);
    Ok((kept, false))
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

    #[test]
    fn the_relay_table_is_added_or_replaced_and_the_rest_kept() {
        let (added, had) = replace_table("model = \"o3\"\n", TABLE).unwrap();
        assert!(!had);
        assert_eq!(added, format!("model = \"o3\"\n\n{TABLE}"));
        let old = "a = 1\n\n[mcp_servers.relay]\nurl = \"old\"\n\n[mcp_servers.relay.env]\nX = \"1\"\n\n[mcp_servers.other]\nurl = \"o\"\n";
        let (new, had) = replace_table(old, TABLE).unwrap();
        assert!(had);
        assert_eq!(
            new,
            format!("a = 1\n\n{TABLE}\n[mcp_servers.other]\nurl = \"o\"\n")
        );
        assert_eq!(replace_table(&new, TABLE).unwrap().0, new);
        assert_eq!(replace_table("", TABLE).unwrap().0, TABLE);
        let (at_end, _) = replace_table(&format!("x = 1\n\n{TABLE}"), TABLE).unwrap();
        assert_eq!(at_end, format!("x = 1\n\n{TABLE}"));
    }

    #[test]
    fn a_table_ends_at_any_header_and_is_found_in_any_spelling() {
        let (new, had) = replace_table(
            "[mcp_servers.relay]\nurl = \"old\"\n\n# the hooks\n[[hooks]]\nname = \"keep-me\"\n",
            TABLE,
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
            let (new, had) = replace_table(&old, TABLE).unwrap();
            assert!(had, "{header}");
            assert_eq!(
                new,
                format!("a = 1\n\n{TABLE}\n[mcp_servers.other]\nurl = \"o\"\n")
            );
        }
        // A header-like line inside a multi-line string or array is not a header.
        let old = "x = \"\"\"\n[mcp_servers.relay]\n\"\"\"\ny = [\n  [1],\n]\n";
        assert_eq!(
            replace_table(old, TABLE).unwrap(),
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
            let e = replace_table(old, TABLE).unwrap_err();
            assert!(e.starts_with(line), "{old:?}: {e}");
        }
    }

    #[test]
    fn shell_lines_quote_what_a_shell_would_split() {
        let line = shell_line(&words(&["claude", "--header", "Authorization: Bearer t'k"]));
        assert_eq!(line, r"claude --header 'Authorization: Bearer t'\''k'");
    }
}
