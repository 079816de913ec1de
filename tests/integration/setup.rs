//! `setup --apply` against a temporary home: fake `claude` and `gemini` commands on PATH that
//! record their arguments, and a real Codex `config.toml` edited in place.

use crate::common::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

/// A fake client command: records each call's arguments as a line, fails `mcp remove` until
/// an `mcp add` has succeeded (as the real ones do when nothing is configured).
fn fake_client(dir: &TempDir, name: &str) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nif [ \"$1 $2\" = 'mcp remove' ] && [ ! -f '{added}' ]; then echo 'not found' >&2; exit 1; fi\nif [ \"$1 $2\" = 'mcp add' ]; then touch '{added}'; echo 'Added'; fi\n",
        log = dir.path(&format!("{name}.log")).display(),
        added = dir.path(&format!("{name}.added")).display(),
    );
    let path = dir.path(&format!("bin/{name}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn setup(dir: &TempDir, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        dir.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .arg("setup")
        .args(args)
        .env("PATH", path)
        .env("HOME", dir.path("home"))
        .env_remove("CODEX_HOME")
        .env_remove("CLAUDE_CODEX_TOKEN")
        .env_remove("CLAUDE_CODEX_URL")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn setup_claude_apply_runs_the_printed_command_and_again_replaces_it() {
    let dir = TempDir::new("setup-claude");
    fake_client(&dir, "claude");
    let args = [
        "claude",
        "--url",
        "http://127.0.0.1:8999",
        "--listen",
        "proj-x",
        "--token",
        "s3cret",
    ];
    let printed = setup(&dir, &args);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let first_line = text(&printed.stdout).lines().next().unwrap().to_string();
    assert!(
        first_line.starts_with("claude mcp add -e CLAUDE_CODEX_TOKEN=s3cret relay -- "),
        "{first_line}"
    );
    assert!(first_line.ends_with(" mcp --url http://127.0.0.1:8999 --listen proj-x --as claude"));
    assert!(text(&printed.stdout)
        .contains("claude --dangerously-load-development-channels server:relay"));
    assert!(!dir.path("claude.log").exists(), "printing runs nothing");

    let applied = setup(&dir, &[&args[..], &["--apply"]].concat());
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert!(
        text(&applied.stdout).contains("added the relay server"),
        "{}",
        text(&applied.stdout)
    );
    let again = setup(&dir, &[&args[..], &["--apply"]].concat());
    assert!(text(&again.stdout).contains("replaced the relay server"));
    let log = std::fs::read_to_string(dir.path("claude.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    let add = first_line.strip_prefix("claude ").unwrap();
    assert_eq!(calls, ["mcp remove relay", add, "mcp remove relay", add]);
}

#[test]
fn setup_gemini_apply_adds_the_http_server() {
    let dir = TempDir::new("setup-gemini");
    fake_client(&dir, "gemini");
    let out = setup(&dir, &["gemini", "--url", "127.0.0.1:8999", "--apply"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(dir.path("gemini.log")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "mcp remove relay",
            "mcp add --transport http relay http://127.0.0.1:8999/mcp"
        ]
    );
}

#[test]
fn setup_codex_apply_writes_its_table_once_and_keeps_the_rest_of_the_file() {
    let dir = TempDir::new("setup-codex");
    let config = dir.path("home/.codex/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "model = \"o3\"\n\n[mcp_servers.relay]\nurl = \"http://old/mcp\"\n\n[mcp_servers.other]\ncommand = \"x\"\n").unwrap();
    let out = setup(
        &dir,
        &["codex", "--url", "http://127.0.0.1:8999", "--apply"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("updated [mcp_servers.relay]"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "model = \"o3\"\n\n[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\n\n[mcp_servers.other]\ncommand = \"x\"\n"
    );
    let again = setup(
        &dir,
        &["codex", "--url", "http://127.0.0.1:8999", "--apply"],
    );
    assert!(
        text(&again.stdout).contains("unchanged"),
        "{}",
        text(&again.stdout)
    );

    // CODEX_HOME wins over HOME, and a missing file is created.
    let codex_home = dir.path("codex-home");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args([
            "setup",
            "codex",
            "--url",
            "http://127.0.0.1:8999",
            "--token",
            "t",
            "--apply",
        ])
        .env("CODEX_HOME", &codex_home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added [mcp_servers.relay]"));
    assert_eq!(
        std::fs::read_to_string(codex_home.join("config.toml")).unwrap(),
        "[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\nbearer_token_env_var = \"CLAUDE_CODEX_TOKEN\"\n"
    );
    assert!(
        !text(&out.stdout).contains("= \"t\""),
        "the token itself is not written"
    );
}

#[test]
fn setup_codex_with_a_token_prints_a_codex_mcp_add_line_that_names_its_variable() {
    let dir = TempDir::new("setup-codex-token");
    let with = setup(
        &dir,
        &[
            "codex",
            "--url",
            "http://127.0.0.1:8999",
            "--token",
            "s3cret",
        ],
    );
    assert!(with.status.success(), "{}", text(&with.stderr));
    let printed = text(&with.stdout);
    assert_eq!(
        printed.lines().next(),
        Some("codex mcp add relay --url http://127.0.0.1:8999/mcp --bearer-token-env-var CLAUDE_CODEX_TOKEN"),
        "{printed}"
    );
    assert!(printed.contains("bearer_token_env_var = \"CLAUDE_CODEX_TOKEN\"\n"));
    assert!(printed.contains("export CLAUDE_CODEX_TOKEN="), "{printed}");
    assert!(
        !printed.contains("s3cret"),
        "the token itself is not printed"
    );
    let without = setup(&dir, &["codex", "--url", "http://127.0.0.1:8999"]);
    assert_eq!(
        text(&without.stdout).lines().next(),
        Some("codex mcp add relay --url http://127.0.0.1:8999/mcp")
    );
    assert!(!text(&without.stdout).contains("CLAUDE_CODEX_TOKEN"));
}

#[test]
fn setup_refuses_listen_for_clients_that_cannot_take_pushes_and_unknown_clients() {
    let dir = TempDir::new("setup-usage");
    for (args, said) in [
        (
            &["codex", "--listen", "proj-x"][..],
            "--listen is for Claude Code",
        ),
        (&["gemini", "--as", "bob"], "--as is for Claude Code"),
        (
            &["vim"],
            "unknown client \"vim\": setup configures claude, codex or gemini",
        ),
        (&[], "setup needs one client: claude, codex or gemini"),
        (
            &["claude", "codex"],
            "setup needs one client: claude, codex or gemini",
        ),
    ] {
        let out = setup(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
}

#[test]
fn setup_claude_refuses_as_without_listen_and_an_as_that_is_no_name() {
    let dir = TempDir::new("setup-claude-as");
    fake_client(&dir, "claude");
    let long = "b".repeat(200);
    for (args, said) in [
        (
            &["claude", "--as", "bob"][..],
            "--as names the listener of --listen",
        ),
        (
            &["claude", "--as", "bob", "--apply"],
            "--as names the listener of --listen",
        ),
        (
            &["claude", "--listen", "a", "--as", ""],
            "--as needs a name",
        ),
        (
            &["claude", "--listen", "a", "--as", " ", "--apply"],
            "--as needs a name",
        ),
        (
            &["claude", "--listen", "a", "--as", &long],
            "longer than 128 characters",
        ),
        (
            &["claude", "--listen", "a", "--as", "b\u{7}ob"],
            "control characters",
        ),
    ] {
        let out = setup(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(said),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing is printed");
    }
    assert!(!dir.path("claude.log").exists(), "nothing was run");
    let named = setup(&dir, &["claude", "--listen", "a", "--as", " bob "]);
    assert!(named.status.success(), "{}", text(&named.stderr));
    let first_line = text(&named.stdout).lines().next().unwrap().to_string();
    assert!(first_line.ends_with(" --listen a --as bob"), "{first_line}");
}

/// The permission bits of `path`'s file (following links).
fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn setup_codex_apply_writes_through_a_link_and_keeps_the_file_mode() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new("setup-codex-link");
    let apply = || {
        setup(
            &dir,
            &["codex", "--url", "http://127.0.0.1:8999", "--apply"],
        )
    };
    let table = "[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\n";
    let secret = "[mcp_servers.other]\nenv = { KEY = \"s3cret\" }\n";

    // A config kept in a dotfiles folder, linked (by a relative link) from ~/.codex.
    let dotfile = dir.path("dotfiles/codex/config.toml");
    std::fs::create_dir_all(dotfile.parent().unwrap()).unwrap();
    std::fs::write(&dotfile, secret).unwrap();
    std::fs::set_permissions(&dotfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path("home/.codex/config.toml");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink("../../dotfiles/codex/config.toml", &link).unwrap();
    let out = apply();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link stays a link"
    );
    assert_eq!(
        std::fs::read_to_string(&dotfile).unwrap(),
        format!("{secret}\n{table}"),
        "the link's target gets the table"
    );
    assert_eq!(mode(&dotfile), 0o600, "a secret stays unreadable to others");
    let mut beside: Vec<_> = std::fs::read_dir(dotfile.parent().unwrap())
        .unwrap()
        .chain(std::fs::read_dir(link.parent().unwrap()).unwrap())
        .map(|e| e.unwrap().file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["config.toml", "config.toml"],
        "no file left behind"
    );

    // A plain file keeps its mode, whatever it is.
    std::fs::remove_file(&link).unwrap();
    for kept in [0o600, 0o640, 0o604] {
        std::fs::write(&link, secret).unwrap();
        std::fs::set_permissions(&link, std::fs::Permissions::from_mode(kept)).unwrap();
        let out = apply();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            std::fs::read_to_string(&link).unwrap(),
            format!("{secret}\n{table}")
        );
        assert_eq!(mode(&link), kept, "{kept:o}");
        std::fs::remove_file(&link).unwrap();
    }

    // A new file, also one a dangling link names, is created as any program creates one.
    let usual = dir.path("usual");
    std::fs::write(&usual, "").unwrap();
    let out = apply();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&link), mode(&usual));
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_file(&dotfile).unwrap();
    symlink("../../dotfiles/codex/config.toml", &link).unwrap();
    let out = apply();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&dotfile).unwrap(), table);
    assert_eq!(mode(&dotfile), mode(&usual));
}

/// `setup codex --url ... --apply` with `CODEX_HOME` at `dir`.
fn setup_codex_in(dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args([
            "setup",
            "codex",
            "--url",
            "http://127.0.0.1:8999",
            "--apply",
        ])
        .env("CODEX_HOME", dir)
        .env_remove("CLAUDE_CODEX_TOKEN")
        .env_remove("CLAUDE_CODEX_URL")
        .output()
        .unwrap()
}

#[test]
fn setup_codex_apply_keeps_an_array_of_tables_after_the_relay_table_and_any_spelling_of_its_header()
{
    let dir = TempDir::new("setup-codex-tables");
    let config = dir.path("config.toml");
    let table = "[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\n";
    for (old, new) in [
        (
            "[mcp_servers.relay]\nurl = \"http://old/mcp\"\n\n[[hooks]]\nname = \"keep-me\"\n"
                .to_string(),
            format!("{table}\n[[hooks]]\nname = \"keep-me\"\n"),
        ),
        (
            "[mcp_servers.\"relay\"]\nurl = \"http://old/mcp\"\n".to_string(),
            table.replace("[mcp_servers.relay]", "[mcp_servers.\"relay\"]"),
        ),
        (
            "x = 1\n[ 'mcp_servers' . relay ]\nurl = \"http://old/mcp\"\n[other]\ny = 2\n"
                .to_string(),
            format!(
                "x = 1\n{}[other]\ny = 2\n",
                table.replace("[mcp_servers.relay]", "[ 'mcp_servers' . relay ]")
            ),
        ),
    ] {
        std::fs::write(&config, &old).unwrap();
        let out = setup_codex_in(&dir.0);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("updated [mcp_servers.relay]"),
            "{old:?}: {}",
            text(&out.stdout)
        );
        assert_eq!(std::fs::read_to_string(&config).unwrap(), new, "{old:?}");
    }
}

#[test]
fn setup_codex_apply_sets_its_keys_keeps_the_users_own_and_says_what_it_changed() {
    let dir = TempDir::new("setup-codex-own-keys");
    let config = dir.path("home/.codex/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let old = "[mcp_servers.relay]\nurl = \"http://old/mcp\"\ntool_timeout_sec = 120\n\n[mcp_servers.relay.env]\nFOO = \"bar\"\n";
    std::fs::write(&config, old).unwrap();
    let args = [
        "codex",
        "--url",
        "http://127.0.0.1:8999",
        "--token",
        "t",
        "--apply",
    ];
    let out = setup(&dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\nbearer_token_env_var = \"CLAUDE_CODEX_TOKEN\"\ntool_timeout_sec = 120\n\n[mcp_servers.relay.env]\nFOO = \"bar\"\n"
    );
    let said = text(&out.stdout);
    let report: Vec<&str> = said
        .lines()
        .skip_while(|l| !l.starts_with("updated "))
        .collect();
    assert_eq!(
        report,
        [
            format!("updated [mcp_servers.relay] in {}:", config.display()).as_str(),
            "  url = \"http://127.0.0.1:8999/mcp\" (was \"http://old/mcp\")",
            "  bearer_token_env_var = \"CLAUDE_CODEX_TOKEN\" (added)",
            "  kept tool_timeout_sec, [mcp_servers.relay.env]",
            "  note: Codex refuses env in a server with a url: kept as found, for you to remove",
        ],
        "{said}"
    );
    let again = setup(&dir, &args);
    assert!(
        text(&again.stdout).contains("unchanged"),
        "{}",
        text(&again.stdout)
    );

    // A server that Codex started as a command becomes one at the url: the keys of the
    // command go, and say so; the others stay.
    std::fs::write(
        &config,
        "[mcp_servers.relay]\ncommand = \"claude-codex-relay\"\nargs = [\"mcp\"]\nstartup_timeout_sec = 20\n\n[mcp_servers.relay.env]\nFOO = \"bar\"\n",
    )
    .unwrap();
    let out = setup(
        &dir,
        &["codex", "--url", "http://127.0.0.1:8999", "--apply"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[mcp_servers.relay]\nurl = \"http://127.0.0.1:8999/mcp\"\nstartup_timeout_sec = 20\n"
    );
    let said = text(&out.stdout);
    assert!(
        said.contains("  url = \"http://127.0.0.1:8999/mcp\" (added)\n  removed command, args, [mcp_servers.relay.env]: ")
            && said.contains("  kept startup_timeout_sec\n"),
        "{said}"
    );
}

#[test]
fn setup_codex_apply_refuses_a_relay_server_it_cannot_replace_and_leaves_the_file_alone() {
    let dir = TempDir::new("setup-codex-refused");
    let config = dir.path("config.toml");
    for old in [
        "[mcp_servers]\nrelay = { url = \"http://old/mcp\" }\n",
        "mcp_servers.relay.url = \"http://old/mcp\"\n",
        "[mcp_servers]\nrelay.url = \"http://old/mcp\"\n",
        "model = \"o3\"\n[mcp_servers.relay\n",
    ] {
        std::fs::write(&config, old).unwrap();
        let out = setup_codex_in(&dir.0);
        assert_eq!(out.status.code(), Some(5), "{old:?}: {}", text(&out.stdout));
        let said = text(&out.stderr);
        assert!(
            said.contains("cannot edit") && said.contains("nothing was changed"),
            "{said}"
        );
        assert_eq!(std::fs::read_to_string(&config).unwrap(), old);
    }
    let said = text(&setup_codex_in(&dir.0).stderr);
    assert!(said.contains("line 2:"), "{said}");
    std::fs::write(&config, "[mcp_servers]\nrelay = { url = \"x\" }\n").unwrap();
    let said = text(&setup_codex_in(&dir.0).stderr);
    assert!(
        said.contains("line 2 defines the relay server as a key (`relay` under [mcp_servers])"),
        "{said}"
    );
}

#[test]
fn setup_with_the_relays_mcp_url_configures_that_url_not_mcp_twice() {
    let dir = TempDir::new("setup-mcp-url");
    for url in ["http://127.0.0.1:8999/mcp", "http://127.0.0.1:8999/mcp/"] {
        let codex = setup(&dir, &["codex", "--url", url]);
        assert!(codex.status.success(), "{}", text(&codex.stderr));
        assert_eq!(
            text(&codex.stdout).lines().next(),
            Some("codex mcp add relay --url http://127.0.0.1:8999/mcp"),
            "{url}"
        );
        let claude = setup(&dir, &["claude", "--url", url, "--listen", "proj-x"]);
        assert!(claude.status.success(), "{}", text(&claude.stderr));
        let printed = text(&claude.stdout);
        assert!(
            printed.contains(" mcp --url http://127.0.0.1:8999 --listen proj-x"),
            "the bridge is given the relay's base: {printed}"
        );
        assert!(!printed.contains("/mcp/mcp"), "{printed}");
    }
}
