//! `setup claude|codex|gemini`: the exact configuration that connects a client to this relay,
//! printed, or with `--apply` put in place. Claude Code and Gemini CLI are configured with
//! their own `mcp add` commands (run after `mcp remove`, so running setup twice leaves the
//! same one entry); Codex's `config.toml` is edited directly: its `[mcp_servers.relay]` table
//! is added or replaced and everything else in the file is kept byte for byte. Only Claude Code
//! takes pushed messages, so `--listen` configures the stdio bridge for it.

use super::args::Parsed;
use super::error::Error;
use super::relay_client::RelayClient;
use super::Io;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The name the relay's server gets in every client.
const SERVER: &str = "relay";

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
    let add = match p.get("listen") {
        Some(listen) => {
            if crate::listen::Listen::parse(listen, None, &[])
                .map_err(super::bad_argument)?
                .is_none()
            {
                return Err(Error::Usage("--listen needs a channel name".into()));
            }
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
            add.extend(words(&[
                "--listen",
                listen,
                "--as",
                p.get("as").unwrap_or("claude"),
            ]));
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
    if relay.token().is_some() {
        // Codex takes a bearer token only from an environment variable.
        table.push_str("bearer_token_env_var = \"CLAUDE_CODEX_TOKEN\"\n");
    }
    let file = codex_config(env)?;
    say(
        io,
        &shell_line(&words(&["codex", "mcp", "add", SERVER, "--url", &url])),
    )?;
    say(io, &format!("# or in {}:", file.display()))?;
    out(io, &table)?;
    if relay.token().is_some() {
        say(
            io,
            "# and before starting Codex: export CLAUDE_CODEX_TOKEN=<the token>",
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
    let (new, had) = replace_table(&old, &format!("mcp_servers.{SERVER}"), &table);
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

/// `text` with the TOML table `name` (and its sub-tables) replaced by `table`, or `table`
/// appended; and whether the table was there.
fn replace_table(text: &str, name: &str, table: &str) -> (String, bool) {
    let header = |line: &str| -> Option<String> {
        let l = line.trim();
        let inner = l.strip_prefix('[')?.split(']').next()?;
        (!l.starts_with("[[")).then(|| inner.trim().to_string())
    };
    let ours = |h: &str| h == name || h.starts_with(&format!("{name}."));
    let mut kept = String::new();
    let mut inside = false;
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if let Some(h) = header(line) {
            inside = ours(&h);
            if inside && !found {
                found = true;
                kept.push_str(table);
                kept.push('\n');
            }
        }
        if !inside {
            kept.push_str(line);
        }
    }
    if found {
        let trimmed = kept.trim_end_matches('\n').len();
        kept.truncate(trimmed);
        kept.push('\n');
        return (kept, true);
    }
    if !kept.is_empty() && !kept.ends_with('\n') {
        kept.push('\n');
    }
    if !kept.is_empty() {
        kept.push('\n');
    }
    kept.push_str(table);
    (kept, false)
}

fn write_atomically(file: &PathBuf, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Local(format!("cannot write {}: {e}", file.display()));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = file.with_extension("toml.relay-setup");
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, file).map_err(fail)
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
        let (added, had) = replace_table("model = \"o3\"\n", "mcp_servers.relay", TABLE);
        assert!(!had);
        assert_eq!(added, format!("model = \"o3\"\n\n{TABLE}"));
        let old = "a = 1\n\n[mcp_servers.relay]\nurl = \"old\"\n\n[mcp_servers.relay.env]\nX = \"1\"\n\n[mcp_servers.other]\nurl = \"o\"\n";
        let (new, had) = replace_table(old, "mcp_servers.relay", TABLE);
        assert!(had);
        assert_eq!(
            new,
            format!("a = 1\n\n{TABLE}\n[mcp_servers.other]\nurl = \"o\"\n")
        );
        assert_eq!(replace_table(&new, "mcp_servers.relay", TABLE).0, new);
        assert_eq!(replace_table("", "mcp_servers.relay", TABLE).0, TABLE);
        let (at_end, _) = replace_table(&format!("x = 1\n\n{TABLE}"), "mcp_servers.relay", TABLE);
        assert_eq!(at_end, format!("x = 1\n\n{TABLE}"));
    }

    #[test]
    fn shell_lines_quote_what_a_shell_would_split() {
        let line = shell_line(&words(&["claude", "--header", "Authorization: Bearer t'k"]));
        assert_eq!(line, r"claude --header 'Authorization: Bearer t'\''k'");
    }
}
