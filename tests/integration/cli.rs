//! The binary's manners: a help of its own for every command, `--` before text that starts
//! with `-`, a start line with absolute paths and an address a client can use, and advice when
//! the port is taken.

use crate::common::*;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn relay_binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(args)
        .output()
        .expect("run the binary")
}

#[test]
fn every_command_has_its_own_help_with_an_example() {
    let mut seen = Vec::new();
    for (command, synopsis) in [
        ("serve", "Usage: claude-codex-relay [serve]"),
        ("post", "Usage: claude-codex-relay post"),
        ("fetch", "Usage: claude-codex-relay fetch"),
        ("channels", "Usage: claude-codex-relay channels"),
        ("watch", "Usage: claude-codex-relay watch"),
    ] {
        for flag in ["--help", "-h"] {
            let out = relay_binary(&[command, flag]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{command} {flag}: {:?}",
                out.stderr
            );
            assert!(text.starts_with(synopsis), "{command} {flag}:\n{text}");
            assert!(text.contains("Example"), "{command} {flag} has an example");
            if flag == "-h" {
                seen.push(text);
            }
        }
    }
    seen.dedup();
    assert_eq!(seen.len(), 5, "five different helps");
    // Every help fits a terminal's width, wrapped as written.
    for command in [
        "serve", "post", "fetch", "channels", "watch", "delete", "export", "mcp", "setup",
    ] {
        let text = relay_binary(&[command, "--help"]).stdout;
        for line in String::from_utf8_lossy(&text).lines() {
            assert!(line.chars().count() <= 100, "{command} --help: {line}");
        }
    }
    let all = relay_binary(&["--help"]);
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(all.contains("--await") && all.contains("--port") && all.contains("ends the options"));
    let synopsis = all
        .lines()
        .find(|l| l.contains("(the built-in client, below)"))
        .unwrap();
    for command in [
        "post", "fetch", "channels", "watch", "delete", "export", "mcp", "setup",
    ] {
        assert!(
            synopsis.split(['|', ' ']).any(|w| w == command),
            "{command} in {synopsis:?}"
        );
    }
}

#[test]
fn text_starting_with_a_dash_is_posted_after_double_dash_and_refused_before_it() {
    let relay = Relay::memory();
    let url = relay.base.as_str();
    let refused = relay_binary(&["post", "--url", url, "--target", "t", "--sender", "s", "-x"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("after `--`") && err.contains("post --help"),
        "{err}"
    );
    let posted = relay_binary(&[
        "post", "--url", url, "--target", "t", "--sender", "s", "--", "- item", "--json",
    ]);
    assert_eq!(posted.status.code(), Some(0), "{:?}", posted.stderr);
    assert_eq!(
        String::from_utf8_lossy(&posted.stdout),
        "#1 [s] - item --json\n"
    );
}

#[test]
fn the_start_line_shows_absolute_paths_and_a_usable_address_for_0_0_0_0() {
    let dir = TempDir::new("cli-start");
    let (out, _) = RelayChild::start(&dir, &["--host", "0.0.0.0"]).kill();
    let line = out.lines().next().unwrap_or_default();
    let root = std::fs::canonicalize(&dir.0).unwrap();
    for path in [
        "log/claude_codex.log",
        "log/channel_messages.log",
        "data/messages.jsonl",
    ] {
        let shown = std::path::absolute(dir.path(path)).unwrap();
        assert!(
            line.contains(&shown.display().to_string())
                || line.contains(&root.join(path).display().to_string()),
            "{path} absolute in {line}"
        );
    }
    assert!(
        line.starts_with("claude-codex-relay listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("bound to 0.0.0.0:"), "{line}");
    assert!(!line.contains("http://0.0.0.0"), "{line}");
}

#[test]
fn a_port_in_use_suggests_another_port_and_a_running_relay_and_leaves_no_folders() {
    let relay = Relay::memory();
    let dir = TempDir::new("cli-in-use");
    let port = relay.addr().port().to_string();
    for store in ["memory", "file"] {
        let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(["--port", &port, "--store", store])
            .current_dir(&dir.0)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--port") && err.contains("already running"),
            "{err}"
        );
        let made: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
        assert!(made.is_empty(), "a relay that never listened made {made:?}");
    }
}

#[test]
fn a_host_that_names_nothing_is_a_configuration_error_with_no_warning_that_it_listens() {
    let dir = TempDir::new("cli-bad-host");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--host", "999.1.1.1"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("999.1.1.1") && err.contains("host"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}

#[test]
fn a_file_where_a_folder_must_be_is_named_with_the_path_made_absolute() {
    let dir = TempDir::new("cli-file-in-the-way");
    std::fs::write(dir.path("afile"), "").unwrap();
    for setting in [
        "--log-path",
        "--channel-log-path",
        "--data-dir",
        "--addr-file",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(["--port", "0", setting, "afile/inside/x"])
            .current_dir(&dir.0)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{setting}: {err}");
        assert!(
            err.contains("afile is a file, not a folder"),
            "{setting}: {err}"
        );
        assert!(err.contains("configuration error"), "{setting}: {err}");
        let absolute = dir.path("afile/inside/x");
        assert!(
            err.contains(&*absolute.to_string_lossy()),
            "{setting}: {err}"
        );
    }
    // An address file that is a folder stops start-up before the start line says it listens.
    std::fs::create_dir(dir.path("ad")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--store", "memory", "--addr-file", "ad"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("it is a folder"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

#[test]
fn the_address_file_holds_the_url_of_the_start_line() {
    let dir = TempDir::new("cli-addr");
    let relay = RelayChild::start(&dir, &["--store", "memory"]);
    assert_eq!(get(&relay.url("/healthz")).body, "ok");
    let base = relay.base.clone();
    let (out, _) = relay.kill();
    assert!(
        out.starts_with(&format!("claude-codex-relay listening on {base} ")),
        "{base} vs {out}"
    );
}

#[test]
fn an_unwritable_address_file_stops_start_up_with_exit_2_naming_it() {
    let dir = TempDir::new("cli-addr-unwritable");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--store", "memory"])
        // No one may create a file in /proc/self, root included.
        .args(["--addr-file", "/proc/self/relay.addr"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/proc/self/relay.addr: addr_file: cannot write"),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "a relay that stops at start-up never says it listens"
    );
}

#[test]
fn an_address_file_in_a_missing_folder_gets_its_folder() {
    let dir = TempDir::new("cli-addr-folder");
    let addr_file = dir.path("run/relay/addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .args(["--port", "0", "--store", "memory"])
        .arg("--addr-file")
        .arg(&addr_file)
        .current_dir(&dir.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = deadline();
    let base = loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            break text.trim().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the relay stopped ({status}) instead of writing {addr_file:?}");
        }
        assert!(Instant::now() < until, "the relay never wrote its address");
        std::thread::sleep(Duration::from_millis(5));
    };
    let healthz = get(&format!("{base}/healthz"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(healthz.status, 200, "{base}");
}

#[test]
fn bytes_that_are_not_utf8_in_the_environment_or_the_arguments_get_an_answer_not_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let not_utf8 = OsStr::from_bytes(b"x\xff");
    let run = |env: (&OsStr, &OsStr), args: &[&OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .env(env.0, env.1)
            .args(args)
            .output()
            .expect("run the binary")
    };
    // Someone else's variable is none of the relay's business.
    let other = run(
        (OsStr::new("SOME_OTHER"), not_utf8),
        &[OsStr::new("--help")],
    );
    assert_eq!(other.status.code(), Some(0), "{other:?}");
    assert!(String::from_utf8_lossy(&other.stdout).contains("Usage:"));
    let relay = Relay::memory();
    let listed = run(
        (OsStr::new("SOME_OTHER"), not_utf8),
        &["channels", "--url", relay.base.as_str()].map(OsStr::new),
    );
    assert_eq!(listed.status.code(), Some(0), "{listed:?}");
    // The relay's own, or an argument, is a usage or configuration error naming it.
    for (env, args, named) in [
        (
            (OsStr::new("CLAUDE_CODEX_HOST"), not_utf8),
            vec![OsStr::new("--port"), OsStr::new("0")],
            "CLAUDE_CODEX_HOST",
        ),
        (
            (OsStr::from_bytes(b"CLAUDE_CODEX_\xff"), OsStr::new("1")),
            vec![OsStr::new("--help")],
            "CLAUDE_CODEX_",
        ),
        (
            (OsStr::new("SOME_OTHER"), OsStr::new("1")),
            vec![OsStr::new("--data-dir"), not_utf8],
            "argument",
        ),
    ] {
        let out = run(env, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{named}: {stderr}");
        assert!(
            stderr.contains(named) && stderr.contains("UTF-8"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn help_command_prints_what_command_help_prints() {
    for command in [
        "serve", "post", "fetch", "channels", "watch", "delete", "export", "mcp", "setup",
    ] {
        let asked = relay_binary(&["help", command]);
        assert_eq!(asked.status.code(), Some(0), "help {command}");
        let flag = relay_binary(&[command, "--help"]);
        assert_eq!(
            String::from_utf8_lossy(&asked.stdout),
            String::from_utf8_lossy(&flag.stdout),
            "help {command}"
        );
    }
    let all = relay_binary(&["help"]);
    assert_eq!(all.status.code(), Some(0));
    assert_eq!(all.stdout, relay_binary(&["--help"]).stdout);
    for flag in ["--help", "-h"] {
        let asked = relay_binary(&["help", flag]);
        assert_eq!(asked.status.code(), Some(0), "help {flag}");
        assert_eq!(asked.stdout, all.stdout, "help {flag}");
    }
    let typo = relay_binary(&["help", "fecth"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("did you mean fetch?"),
        "{:?}",
        typo.stderr
    );
    let two = relay_binary(&["help", "post", "fetch"]);
    assert_eq!(two.status.code(), Some(2));
    assert!(two.stdout.is_empty());
}

#[test]
fn a_mistyped_command_names_the_closest_and_the_list() {
    let typo = relay_binary(&["fecth", "--target", "x"]);
    let said = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{said}");
    assert!(said.contains("did you mean fetch?"), "{said}");
    assert!(
        said.contains("serve, post, fetch, channels, watch"),
        "{said}"
    );
    assert!(!said.contains("serve --help"), "{said}");
}

#[test]
fn a_mistyped_option_of_a_client_command_names_the_closest() {
    for (args, said) in [
        (
            &["post", "--targt", "x", "--sender", "s", "hi"][..],
            "unknown option --targt; did you mean --target?",
        ),
        (
            &["fetch", "--limt", "5", "--target", "x"],
            "unknown option --limt; did you mean --limit?",
        ),
        (
            &["watch", "--tokn", "t", "--target", "x"],
            "unknown option --tokn; did you mean --token?",
        ),
    ] {
        let out = relay_binary(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(said), "{args:?}: {err}");
    }
    let far = relay_binary(&["channels", "--teleport"]);
    let err = String::from_utf8_lossy(&far.stderr);
    assert!(err.contains("unknown option --teleport\n"), "{err}");
}

#[test]
fn serve_and_the_relay_settings_take_version_as_the_binary_does() {
    let version = relay_binary(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with("claude-codex-relay "), "{version}");
    for args in [
        &["serve", "--version"][..],
        &["serve", "-V"],
        &["--port", "0", "--version"],
        &["fetch", "--version"],
        &["watch", "--target", "x", "--version"],
        &["mcp", "--version"],
    ] {
        let out = relay_binary(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), version, "{args:?}");
    }
}

#[test]
fn help_and_version_into_a_closed_pipe_end_quietly_as_for_any_command() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["--version"],
        &["fetch", "--help"],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
            .args(args)
            .stdout(writer)
            .output()
            .expect("run the binary");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {said}");
        assert!(said.is_empty(), "{args:?}: {said}");
    }
    // Any other failure to write is said.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .arg("--help")
        .stdout(full)
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write"));
}
