//! Configuration: the layers' precedence, the legacy keys, comma lists, and start-up errors that
//! name the file (or variable) and the key, with exit code 2.

use crate::common::{RelayChild, TempDir};
use claude_codex_relay::config::{Config, Fsync, StoreKind};
use claude_codex_relay::error::Error;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs the relay with `env` and `args` (and an `--addr-file` it cannot write, so that a relay
/// that wrongly starts stops there with another message) and returns its standard error,
/// checking that it stopped with exit code 2 first.
fn refused_at_start(env: &[(&str, &std::ffi::OsStr)], args: &[&str]) -> String {
    let dir = TempDir::new("config");
    // A file where the address file's folder would be: no folder can be made there.
    std::fs::write(dir.path("a-file"), "").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .envs(env.iter().copied())
        .args(["--port", "0", "--store", "memory"])
        .args(args)
        .arg("--addr-file")
        .arg(dir.path("a-file/addr"))
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

fn flags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_match_the_repository_config_json() {
    let from_file = Config::load(
        Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.json"
        ))),
        &env(&[]),
        &[],
    )
    .unwrap();
    let defaults = Config::default();
    assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    assert_eq!((defaults.host.as_str(), defaults.port), ("127.0.0.1", 8010));
    assert_eq!(defaults.log_max_bytes, 25 * 1024 * 1024);
    assert_eq!(defaults.channels, ["proj-x", "codex", "claude"]);
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = TempDir::new("config");
    let file = dir.path("c.json");
    std::fs::write(&file, r#"{"port": 1111, "host": "0.0.0.0", "channels": ["a"], "log_max_mb": 2, "store": "memory"}"#).unwrap();
    let c = Config::load(Some(&file), &env(&[]), &[]).unwrap();
    assert_eq!(
        (c.port, c.host.as_str(), c.log_max_bytes, c.store),
        (1111, "0.0.0.0", 2 * 1024 * 1024, StoreKind::Memory)
    );
    let e = env(&[
        ("CLAUDE_CODEX_PORT", "2222"),
        ("CLAUDE_CODEX_CHANNELS", "x, y ,z"),
        ("CLAUDE_CODEX_ALLOWED_HOSTS", "10.0.0.1"),
    ]);
    let c = Config::load(Some(&file), &e, &[]).unwrap();
    assert_eq!(c.port, 2222);
    assert_eq!(c.channels, ["x", "y", "z"]);
    assert_eq!(c.allowed_hosts, ["10.0.0.1"]);
    assert_eq!(
        c.host, "0.0.0.0",
        "the file still counts where nothing overrides it"
    );
    let c = Config::load(
        Some(&file),
        &e,
        &flags(&[("port", "3333"), ("fsync", "never")]),
    )
    .unwrap();
    assert_eq!((c.port, c.fsync), (3333, Fsync::Never));
}

/// The configuration error `Config::load` gives, as (source, key, message).
fn config_error(file: Option<&std::path::Path>, vars: &[(&str, &str)]) -> (String, String, String) {
    match Config::load(file, &env(vars), &[]) {
        Err(Error::Config {
            source,
            key,
            message,
        }) => (source, key, message),
        other => panic!("{vars:?}: {other:?}"),
    }
}

#[test]
fn an_allowed_host_no_host_header_could_match_stops_start_up_naming_it() {
    let dir = TempDir::new("config");
    let file = dir.path("c.json");
    for (entry, why) in [
        (
            "relay.lan:0",
            "port \"0\" is not a whole number from 1 to 65535",
        ),
        ("relay.lan:65536", "port \"65536\""),
        ("relay.lan:http", "port \"http\""),
        ("http://relay.lan", "is a URL"),
        ("*", "is not a host name"),
    ] {
        let text = serde_json::json!({"allowed_hosts": ["relay.lan", entry]}).to_string();
        std::fs::write(&file, text).unwrap();
        let (source, key, message) = config_error(Some(&file), &[]);
        assert_eq!(
            (source, key),
            (file.display().to_string(), "allowed_hosts".into())
        );
        assert!(message.contains(&format!("{entry:?}")), "{message}");
        assert!(message.contains(why), "{message}");
    }
    std::fs::write(&file, r#"{"allowed_hosts": ["relay.lan", "  "]}"#).unwrap();
    let (_, _, message) = config_error(Some(&file), &[]);
    assert!(message.contains("must not be empty"), "{message}");
    // The forms the README gives are taken.
    std::fs::write(
        &file,
        r#"{"allowed_hosts": ["192.168.2.3", "192.168.2.3:*", "relay.lan:8010", "[fe80::1]"]}"#,
    )
    .unwrap();
    let c = Config::load(Some(&file), &env(&[]), &[]).unwrap();
    assert_eq!(c.allowed_hosts.len(), 4);
}

#[test]
fn a_comma_list_in_the_environment_with_an_empty_entry_is_refused_as_a_json_list_is() {
    for (var, key) in [
        ("CLAUDE_CODEX_ALLOWED_HOSTS", "allowed_hosts"),
        ("CLAUDE_CODEX_CHANNELS", "channels"),
        ("CLAUDE_CODEX_AGENTS", "agents"),
    ] {
        for raw in ["a,,b", "a,", ",a", "a, ,b"] {
            let raw = if key == "agents" {
                raw.replace('a', "a=1").replace('b', "b=2")
            } else {
                raw.to_string()
            };
            let (source, k, message) = config_error(None, &[(var, &raw)]);
            assert_eq!((source.as_str(), k.as_str()), (var, key), "{raw}");
            assert!(message.contains("is empty"), "{raw}: {message}");
        }
    }
    // A string in the file is read the same way.
    let dir = TempDir::new("config");
    let file = dir.path("c.json");
    std::fs::write(&file, r#"{"channels": "a,b,"}"#).unwrap();
    let (_, key, message) = config_error(Some(&file), &[]);
    assert_eq!(key, "channels");
    assert!(message.contains("entry 3 is empty"), "{message}");
    // A blank list is no entries at all.
    let c = Config::load(None, &env(&[("CLAUDE_CODEX_ALLOWED_HOSTS", " ")]), &[]).unwrap();
    assert!(c.allowed_hosts.is_empty());
}

#[test]
fn legacy_byte_keys_still_work() {
    let c = Config::load(
        None,
        &env(&[
            ("CLAUDE_CODEX_LOG_MAX_BYTES", "5000"),
            ("CLAUDE_CODEX_CHANNEL_LOG_MAX_BYTES", "7000"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!((c.log_max_bytes, c.channel_log_max_bytes), (5000, 7000));
    let dir = TempDir::new("config");
    let file = dir.path("c.json");
    std::fs::write(
        &file,
        r#"{"log_max_bytes": 1234, "channel_log_max_bytes": 4321}"#,
    )
    .unwrap();
    let c = Config::load(Some(&file), &env(&[]), &[]).unwrap();
    assert_eq!((c.log_max_bytes, c.channel_log_max_bytes), (1234, 4321));
}

#[test]
fn a_mistyped_key_or_flag_names_the_setting_meant_as_a_mistyped_variable_does() {
    let dir = TempDir::new("config-typo");
    let file = dir.path("config.json");
    std::fs::write(&file, r#"{"prot": 8011}"#).unwrap();
    let err = refused_at_start(&[], &["--config", file.to_str().unwrap()]);
    assert!(
        err.contains("prot: unknown key; did you mean port? (`--help` lists every setting)"),
        "{err}"
    );
    let err = refused_at_start(&[], &["--prot", "8011"]);
    assert!(
        err.contains(
            "--prot: prot: unknown option; did you mean --port? (`--help` lists every setting)"
        ),
        "{err}"
    );
    let err = refused_at_start(&[("CLAUDE_CODEX_PROT", "8011".as_ref())], &[]);
    assert!(
        err.contains("CLAUDE_CODEX_PROT: unknown variable; did you mean CLAUDE_CODEX_PORT?"),
        "{err}"
    );
    // A name far from every setting gets no guess.
    let err = refused_at_start(&[], &["--teleport", "1"]);
    assert!(
        err.contains("--teleport: teleport: unknown option (`--help` lists every setting)"),
        "{err}"
    );
}

#[test]
fn every_mistake_names_its_source_and_key() {
    let dir = TempDir::new("config");
    let cases: Vec<(&str, &str, &str)> = vec![
        (r#"{"prot": 1}"#, "prot", "unknown key"),
        (r#"{"port": "8010"}"#, "port", "must be a number"),
        (r#"{"port": 70000}"#, "port", "0 to 65535"),
        (
            r#"{"channels": "a,b", "allowed_hosts": 5}"#,
            "allowed_hosts",
            "list of strings",
        ),
        (r#"{"store": "disk"}"#, "store", "file, memory"),
        (
            r#"{"log_backup_count": -1}"#,
            "log_backup_count",
            "0 or more",
        ),
        (
            r#"{"max_body_bytes": 0}"#,
            "max_body_bytes",
            "greater than 0",
        ),
        ("[1, 2]", "(file)", "JSON object"),
        ("{port: 1}", "(file)", "not valid JSON"),
    ];
    for (text, key, needle) in cases {
        let file = dir.path("bad.json");
        std::fs::write(&file, text).unwrap();
        match Config::load(Some(&file), &env(&[]), &[]) {
            Err(Error::Config {
                source,
                key: k,
                message,
            }) => {
                assert_eq!(source, file.display().to_string(), "{text}");
                assert_eq!(k, key, "{text}");
                assert!(message.contains(needle), "{text}: {message}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    match Config::load(None, &env(&[("CLAUDE_CODEX_PORT", "eighty")]), &[]) {
        Err(Error::Config { source, key, .. }) => assert_eq!(
            (source.as_str(), key.as_str()),
            ("CLAUDE_CODEX_PORT", "port")
        ),
        other => panic!("{other:?}"),
    }
    match Config::load(None, &env(&[]), &flags(&[("colour", "blue")])) {
        Err(Error::Config { source, .. }) => assert_eq!(source, "--colour"),
        other => panic!("{other:?}"),
    }
    let missing = dir.path("missing.json");
    assert!(matches!(
        Config::load(Some(&missing), &env(&[]), &[]),
        Err(Error::Config { .. })
    ));
}

#[test]
fn the_binary_exits_2_on_a_configuration_error() {
    let dir = TempDir::new("config");
    let file = dir.path("bad.json");
    std::fs::write(&file, r#"{"port": "x"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.display().to_string()) && err.contains("port"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .arg("--port")
        .arg("x")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("claude-codex-relay "));
}

#[test]
fn listening_beyond_loopback_without_a_token_warns() {
    let dir = TempDir::new("config");
    let (tool, channel) = (dir.path("t.log"), dir.path("c.log"));
    let relay = RelayChild::start(
        &dir,
        &[
            "--host",
            "0.0.0.0",
            "--store",
            "memory",
            "--log-path",
            tool.to_str().unwrap(),
            "--channel-log-path",
            channel.to_str().unwrap(),
        ],
    );
    let (out, err) = relay.kill();
    assert!(out.contains("bound to 0.0.0.0:"), "{out}");
    assert!(err.contains("without a token"), "{err}");
}

#[test]
fn an_unknown_environment_variable_stops_start_up_naming_the_closest_key() {
    match Config::load(None, &env(&[("CLAUDE_CODEX_PROT", "9000")]), &[]) {
        Err(Error::Config { key, message, .. }) => {
            assert_eq!(key, "CLAUDE_CODEX_PROT");
            assert!(message.contains("CLAUDE_CODEX_PORT"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The client's variables and the file's are not settings, and not mistakes either.
    let fine = env(&[
        ("CLAUDE_CODEX_URL", "http://127.0.0.1:1"),
        ("CLAUDE_CODEX_TOKEN", "t"),
        ("CLAUDE_CODEX_IDLE_TIMEOUT_SECS", "5"),
    ]);
    assert_eq!(Config::load(None, &fine, &[]).unwrap().idle_timeout_secs, 5);
    let dir = TempDir::new("config");
    let out = Command::new(env!("CARGO_BIN_EXE_claude-codex-relay"))
        .env("CLAUDE_CODEX_LOG_MAX_MBS", "3")
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CLAUDE_CODEX_LOG_MAX_MBS") && err.contains("CLAUDE_CODEX_LOG_MAX_MB?"),
        "{err}"
    );
}

#[test]
fn a_variable_in_the_wrong_case_is_refused_naming_the_spelling_it_must_have() {
    for (var, want) in [
        ("CLAUDE_CODEX_Auth_Token", "CLAUDE_CODEX_AUTH_TOKEN"),
        ("CLAUDE_CODEX_port", "CLAUDE_CODEX_PORT"),
        ("claude_codex_agents", "CLAUDE_CODEX_AGENTS"),
        ("Claude_Codex_Config", "CLAUDE_CODEX_CONFIG"),
        ("CLAUDE_CODEX_Token", "CLAUDE_CODEX_TOKEN"),
        ("CLAUDE_CODEX_url", "CLAUDE_CODEX_URL"),
    ] {
        match Config::load(None, &env(&[(var, "a=b")]), &[]) {
            Err(Error::Config {
                source,
                key,
                message,
            }) => {
                assert_eq!((source.as_str(), key.as_str()), ("environment", var));
                assert!(message.contains("wrong case"), "{var}: {message}");
                assert!(
                    message.contains(&format!("did you mean {want}?")),
                    "{var}: {message}"
                );
            }
            other => panic!("{var}: {other:?}"),
        }
    }
    // A misspelling in the wrong case is still matched to the closest name.
    match Config::load(None, &env(&[("claude_codex_prot", "1")]), &[]) {
        Err(Error::Config { key, message, .. }) => {
            assert_eq!(key, "claude_codex_prot");
            assert!(
                message.contains("unknown variable; did you mean CLAUDE_CODEX_PORT?"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The binary stops before listening. Were the variable passed over, the relay would start
    // and then stop at the addr_file it cannot write, with another message.
    let err = refused_at_start(&[("CLAUDE_CODEX_Auth_Token", "secret".as_ref())], &[]);
    assert!(
        err.contains("CLAUDE_CODEX_Auth_Token")
            && err.contains("did you mean CLAUDE_CODEX_AUTH_TOKEN?"),
        "{err}"
    );
}

#[test]
fn a_variable_in_the_wrong_case_whose_value_is_not_utf8_is_refused_too() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let err = refused_at_start(
        &[("claude_codex_auth_token", OsStr::from_bytes(b"x\xff"))],
        &[],
    );
    assert!(
        err.contains("claude_codex_auth_token") && err.contains("not UTF-8"),
        "{err}"
    );
}

#[test]
fn zero_and_negative_sizes_get_the_same_message() {
    let message =
        |key: &str, value: &str| match Config::load(None, &env(&[]), &flags(&[(key, value)])) {
            Err(Error::Config { message, .. }) => message,
            other => panic!("{key}={value}: {other:?}"),
        };
    for key in ["cache_mb", "max_body_bytes", "idle_timeout_secs"] {
        assert_eq!(message(key, "0"), message(key, "-5"), "{key}");
        assert!(message(key, "-5").contains("greater than 0"));
    }
}

/// As the original's `RotatingFileHandler`, which took 0 as "never rotate".
#[test]
fn a_log_size_of_0_is_taken_and_a_negative_one_refused() {
    for key in [
        "log_max_mb",
        "channel_log_max_mb",
        "log_max_bytes",
        "channel_log_max_bytes",
    ] {
        assert!(
            Config::load(None, &env(&[]), &flags(&[(key, "0")])).is_ok(),
            "{key}"
        );
        let refused = Config::load(None, &env(&[]), &flags(&[(key, "-5")]));
        assert!(matches!(refused, Err(Error::Config { .. })), "{key}");
    }
}

#[test]
fn blank_or_shared_tokens_are_refused_at_start_up() {
    for (env_pairs, flag_pairs) in [
        (vec![], vec![("auth_token", "")]),
        (vec![("CLAUDE_CODEX_AUTH_TOKEN", " ")], vec![]),
        (
            vec![],
            vec![("auth_token", "same"), ("agents", "alice=same")],
        ),
        (vec![], vec![("agents", "alice=same,bob=same")]),
    ] {
        match Config::load(None, &env(&env_pairs), &flags(&flag_pairs)) {
            Err(Error::Config { key, message, .. }) => {
                assert!(key == "auth_token" || key == "agents", "{key}: {message}");
            }
            other => panic!("{env_pairs:?} {flag_pairs:?}: expected a refusal, got {other:?}"),
        }
    }
    let ok = Config::load(
        None,
        &env(&[]),
        &flags(&[("auth_token", "t"), ("agents", "a=u")]),
    );
    assert!(ok.is_ok());
}

#[test]
fn a_token_no_http_client_could_send_is_refused_at_start_up_from_every_source() {
    let dir = TempDir::new("config");
    let file = dir.path("c.json");
    let token_file = dir.path("token");
    let refused = |json: &str, env_pairs: &[(&str, &str)], flag_pairs: &[(&str, &str)]| {
        std::fs::write(&file, json).unwrap();
        match Config::load(Some(&file), &env(env_pairs), &flags(flag_pairs)) {
            Err(Error::Config {
                source,
                key,
                message,
            }) => (source, key, message),
            other => panic!("{json} {env_pairs:?} {flag_pairs:?}: {other:?}"),
        }
    };
    let file_name = file.display().to_string();
    for bad in [
        "pässwörd",
        "two words",
        "tab\there",
        "bell\u{7}",
        "nbsp\u{a0}x",
    ] {
        let json = serde_json::json!({ "auth_token": bad }).to_string();
        let agents = serde_json::json!({ "agents": { "alice": bad } }).to_string();
        let cases = [
            (refused(&json, &[], &[]), (file_name.as_str(), "auth_token")),
            (
                refused("{}", &[("CLAUDE_CODEX_AUTH_TOKEN", bad)], &[]),
                ("CLAUDE_CODEX_AUTH_TOKEN", "auth_token"),
            ),
            (
                refused("{}", &[], &[("auth_token", bad)]),
                ("--auth-token", "auth_token"),
            ),
            (refused(&agents, &[], &[]), (file_name.as_str(), "agents")),
            (
                refused(
                    "{}",
                    &[("CLAUDE_CODEX_AGENTS", &format!("alice={bad}"))],
                    &[],
                ),
                ("CLAUDE_CODEX_AGENTS", "agents"),
            ),
            (
                refused("{}", &[], &[("agents", &format!("alice={bad}"))]),
                ("--agents", "agents"),
            ),
        ];
        for ((source, key, message), want) in cases {
            assert_eq!((source.as_str(), key.as_str()), want, "{bad:?}: {message}");
            assert!(message.contains("visible ASCII"), "{bad:?}: {message}");
            assert!(!message.contains(bad), "the token is not shown: {message}");
        }
    }
    // A token file: a token beyond ASCII, or two lines of which a client could send only one.
    for content in ["pässwörd\n", "first\nsecond\n"] {
        std::fs::write(&token_file, content).unwrap();
        let (source, key, message) = refused(
            "{}",
            &[],
            &[("auth_token_file", token_file.to_str().unwrap())],
        );
        assert_eq!(
            (source.as_str(), key.as_str()),
            ("--auth-token-file", "auth_token_file")
        );
        assert!(
            message.contains(&token_file.display().to_string())
                && message.contains("visible ASCII"),
            "{message}"
        );
    }
    // What a header carries is accepted, well beyond RFC 6750's b64token.
    std::fs::write(&token_file, "  s3cret!@$%^&*()[]{}<>\"';:,?`|#~\n").unwrap();
    let c = Config::load(
        None,
        &env(&[("CLAUDE_CODEX_AGENTS", "alice=alice-token,bob=abc+/==")]),
        &flags(&[("auth_token_file", token_file.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(
        c.auth_token.as_deref(),
        Some("s3cret!@$%^&*()[]{}<>\"';:,?`|#~")
    );
    assert_eq!(c.agents["bob"], "abc+/==");
    // The binary stops before listening. Were the token taken, the relay would start and then
    // stop at the addr_file it cannot write, with another message.
    let err = refused_at_start(&[], &["--auth-token", "pässwörd"]);
    assert!(
        err.contains("--auth-token: auth_token:") && err.contains("visible ASCII"),
        "{err}"
    );
}

#[test]
fn session_and_quota_limits_are_settings() {
    let c = Config::load(
        None,
        &env(&[("CLAUDE_CODEX_SESSION_IDLE_SECS", "60")]),
        &flags(&[
            ("max_sessions_per_client", "7"),
            ("max_streams_per_client", "3"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (
            c.session_idle_secs,
            c.max_sessions_per_client,
            c.max_streams_per_client
        ),
        (60, 7, 3)
    );
    let d = Config::default();
    assert!(d.max_streams_per_client < d.max_streams);
}
