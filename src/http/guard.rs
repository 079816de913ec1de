//! The checks every request passes before routing: `Host` must be one well-formed header naming
//! this relay (loopback or an `allowed_hosts` entry) against DNS rebinding, a browser `Origin`
//! must be one of those too, a cross-site request without `Origin` may not open a stream or an
//! MCP exchange or move a reader, and when tokens are configured the bearer token decides who
//! the caller is.

use std::net::IpAddr;

use crate::config::Config;
use crate::error::Error;
use crate::http::exchange::Incoming;
use crate::ui;

/// Who is calling, as far as the token tells.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Caller {
    /// The agent whose token was presented: it may only post under this name.
    pub agent: Option<String>,
    /// The name of the credential presented (empty when none is required): a session may only
    /// be used with the credential that created it. Never the token itself.
    pub owner: String,
    /// The address the request came from, when known.
    pub peer: Option<IpAddr>,
}

impl Caller {
    /// Whom the per-client quotas count this request against: the agent when its token was
    /// presented, else the client's address.
    pub(crate) fn client(&self) -> String {
        crate::capacity::client_of(self.agent.as_deref(), self.peer)
    }
}

/// Routes that open an event stream or an MCP exchange: a browser must say where it comes from.
const CROSS_SITE_GUARDED: [&str; 3] = ["/sse", "/mcp", "/api/stream"];

/// A page read with `reader` moves that reader past what it returns: an `<img>` on any site
/// could otherwise mark an agent's messages as read.
fn moves_a_reader(rq: &Incoming) -> bool {
    rq.path == "/api/messages" && rq.param("reader").is_some()
}

const LOOPBACK: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

/// Runs every check in order: Host (400 when missing on HTTP/1.1, repeated or malformed; 421
/// when foreign), Origin (400 when repeated, 403 when foreign), a repeated Authorization or
/// Idempotency-Key (400), cross-site fetch metadata (403), token (401).
pub(crate) fn check(config: &Config, rq: &Incoming) -> Result<Caller, Error> {
    let named = |name: &str| rq.headers.iter().filter(|(k, _)| k == name).count();
    let hosts = named("host");
    if hosts > 1 {
        return Err(Error::BadRequest("more than one Host header".into()));
    }
    if hosts == 0 && rq.http_version >= (1, 1) {
        return Err(Error::BadRequest(
            "an HTTP/1.1 request needs a Host header".into(),
        ));
    }
    if let Some(host) = rq.header("host") {
        if parse_host(host.trim()).is_none() {
            return Err(Error::BadRequest(format!("Host {host:?} is malformed")));
        }
        if !host_allowed(config, host) {
            return Err(Error::MisdirectedRequest(format!(
                "Host {host:?} is not served here; add it to allowed_hosts to accept it"
            )));
        }
    }
    if named("origin") > 1 {
        return Err(Error::BadRequest("more than one Origin header".into()));
    }
    if named("authorization") > 1 {
        // Which one a proxy or the relay would read is anyone's guess: neither is taken.
        return Err(Error::BadRequest(
            "more than one Authorization header: send the token once".into(),
        ));
    }
    if named("idempotency-key") > 1 {
        // Two keys name two different posts, or one post twice: which is meant is unknowable.
        return Err(Error::BadRequest(
            "more than one Idempotency-Key header: send the key once".into(),
        ));
    }
    if let Some(origin) = rq.header("origin") {
        if !origin_allowed(config, origin) {
            return Err(Error::Forbidden(format!(
                "Origin {origin:?} is not allowed"
            )));
        }
    } else if (CROSS_SITE_GUARDED.contains(&rq.path.as_str()) || moves_a_reader(rq))
        && rq
            .header("sec-fetch-site")
            .is_some_and(|site| site.trim().eq_ignore_ascii_case("cross-site"))
    {
        // A no-cors request from another site carries no Origin but still reaches us.
        return Err(Error::Forbidden(
            "cross-site requests may not open streams or MCP sessions, or move a reader".into(),
        ));
    }
    Ok(Caller {
        peer: rq.peer,
        ..authenticate(config, rq)?
    })
}

/// Whether a `Host` header value names this relay: a loopback name on any port, an
/// `allowed_hosts` name (or `name:*`, the original's spelling of what a bare name means) on any
/// port, or an `allowed_hosts` `name:port` exactly.
pub(crate) fn host_allowed(config: &Config, host: &str) -> bool {
    let host = host.trim();
    let Some((name, _)) = parse_host(host) else {
        return false;
    };
    LOOPBACK.iter().any(|l| l.eq_ignore_ascii_case(name))
        || config.allowed_hosts.iter().any(|entry| {
            let entry = entry.trim();
            if let Some(any_port) = entry.strip_suffix(":*") {
                any_port.eq_ignore_ascii_case(name)
            } else if has_port(entry) {
                entry.eq_ignore_ascii_case(host)
            } else {
                entry.eq_ignore_ascii_case(name)
            }
        })
}

/// Whether a browser `Origin` (`scheme://host[:port]`) belongs to an allowed host.
fn origin_allowed(config: &Config, origin: &str) -> bool {
    let Some((scheme, rest)) = origin.trim().split_once("://") else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !rest.is_empty()
        && !rest.contains('/')
        && host_allowed(config, rest)
}

/// Splits `name[:port]` or `[v6][:port]` into the name and the port, or None when it is not
/// exactly that shape: the port is digits, a name is letters, digits, `-`, `.` and `_`, and a
/// bracketed address is hex digits, `:` and `.`.
fn parse_host(host: &str) -> Option<(&str, Option<&str>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        let inside = &name[1..name.len() - 1];
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        {
            return None;
        }
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return None;
        }
        (name, port)
    };
    match port {
        Some(p) if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) => None,
        _ => Some((name, port)),
    }
}

/// Refuses, saying why, an `allowed_hosts` entry no `Host` header could match: one that is not
/// a host name (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 address, alone, with `:*`
/// or with a port from 1 to 65535. Checked once at start-up, so a typo does not silently leave
/// a machine locked out.
pub(crate) fn check_allowed_host(entry: &str) -> Result<(), String> {
    if entry.contains("://") {
        return Err(
            "is a URL, not a host name: give the host alone, as `name` or `name:port`".into(),
        );
    }
    let bare = entry.strip_suffix(":*").unwrap_or(entry);
    let (name, port) = match bare.find(']').filter(|_| bare.starts_with('[')) {
        Some(end) => match bare[end + 1..].strip_prefix(':') {
            Some(port) => (&bare[..=end], Some(port)),
            None => (bare, None),
        },
        None => match bare.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (bare, None),
        },
    };
    if parse_host(name).is_none() {
        return Err(
            "is not a host name (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 \
             address, alone (any port) or with `:*` or `:PORT`"
                .into(),
        );
    }
    let Some(port) = port else {
        return Ok(());
    };
    if entry.len() != bare.len() {
        return Err("`:*` stands for the port: it cannot follow one".into());
    }
    match port.parse::<u32>() {
        Ok(1..=65535) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "port {port:?} is not a whole number from 1 to 65535"
        )),
    }
}

fn has_port(entry: &str) -> bool {
    if entry.starts_with('[') {
        entry.contains("]:")
    } else {
        entry.contains(':')
    }
}

/// Checks the bearer token when the relay has one (or per-agent tokens). `/healthz` is open,
/// and so are the web page's own files: they hold no data, and the page must load to ask for
/// the token. The scheme is case-insensitive. A `token` query parameter is read only on
/// `GET /api/stream`, whose browser client (`EventSource`) cannot send headers; anywhere else a
/// token in the URL would only end up in logs and histories.
fn authenticate(config: &Config, rq: &Incoming) -> Result<Caller, Error> {
    let public = rq.path == "/healthz"
        || (matches!(rq.method.as_str(), "GET" | "HEAD") && ui::asset(&rq.path).is_some());
    if config.auth_token.is_none() && config.agents.is_empty() || public {
        return Ok(Caller::default());
    }
    let presented = rq
        .header("authorization")
        .and_then(|h| h.trim().split_once(char::is_whitespace))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .or_else(|| {
            if rq.method == "GET" && rq.path == "/api/stream" {
                rq.param("token")
            } else {
                None
            }
        });
    let Some(presented) = presented else {
        return Err(Error::Unauthorized);
    };
    // Every candidate is compared, whatever matched first, so timing says nothing.
    let mut caller = None;
    if let Some(token) = &config.auth_token {
        if constant_time_eq(token.as_bytes(), presented.as_bytes()) {
            caller = Some(Caller {
                owner: "token".into(),
                ..Caller::default()
            });
        }
    }
    for (name, token) in &config.agents {
        if constant_time_eq(token.as_bytes(), presented.as_bytes()) {
            caller = Some(Caller {
                agent: Some(name.clone()),
                owner: format!("agent {name}"),
                ..Caller::default()
            });
        }
    }
    caller.ok_or(Error::Unauthorized)
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allowed: &[&str]) -> Config {
        Config {
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn loopback_hosts_are_allowed_on_any_port() {
        let c = config(&[]);
        for h in [
            "127.0.0.1:8010",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9",
            "[::1]",
        ] {
            assert!(host_allowed(&c, h), "{h}");
        }
        for h in [
            "evil.com",
            "evil.com:8010",
            "127.0.0.2:8010",
            "localhost.evil.com",
            "[::2]:1",
            "[::1]evil.com",
            "localhost:evil.com",
            "127.0.0.1:1@evil.com",
            "localhost:",
            "[::1]:",
        ] {
            assert!(!host_allowed(&c, h), "{h}");
        }
    }

    #[test]
    fn allowed_hosts_follow_the_port_wildcard_rule() {
        let c = config(&["192.168.2.3", "relay.lan:8010"]);
        assert!(host_allowed(&c, "192.168.2.3:1234"));
        assert!(host_allowed(&c, "192.168.2.3"));
        assert!(host_allowed(&c, "relay.lan:8010"));
        assert!(!host_allowed(&c, "relay.lan:8011"));
        assert!(!host_allowed(&c, "relay.lan"));
    }

    #[test]
    fn an_allowed_host_with_the_port_wildcard_matches_any_port() {
        let c = config(&["192.168.2.3:*", "[fe80::1]:*"]);
        assert!(host_allowed(&c, "192.168.2.3:8010"));
        assert!(host_allowed(&c, "192.168.2.3"));
        assert!(host_allowed(&c, "[FE80::1]:1"));
        assert!(!host_allowed(&c, "192.168.2.4:8010"));
        assert!(origin_allowed(&c, "http://192.168.2.3:3000"));
    }

    #[test]
    fn an_allowed_host_entry_no_host_could_match_is_refused_saying_why() {
        for good in [
            "192.168.2.3",
            "192.168.2.3:*",
            "relay.lan:8010",
            "my_box-1.lan:1",
            "x:65535",
            "[::1]",
            "[fe80::1]:*",
            "[fe80::1]:8010",
        ] {
            assert_eq!(check_allowed_host(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("relay.lan:0", "port \"0\""),
            ("relay.lan:65536", "port \"65536\""),
            ("relay.lan:80a", "port \"80a\""),
            ("relay.lan:+80", "port \"+80\""),
            ("relay.lan:", "port \"\""),
            ("[::1]:99999", "port \"99999\""),
            ("relay.lan:80:*", "cannot follow"),
            ("http://relay.lan", "is a URL"),
            ("relay lan", "not a host name"),
            ("relay.lan/x", "not a host name"),
            ("*", "not a host name"),
            ("*.lan", "not a host name"),
            (":80", "not a host name"),
            ("[]", "not a host name"),
            ("[::1", "not a host name"),
            ("rélay.lan", "not a host name"),
        ] {
            let refused = check_allowed_host(bad).expect_err(bad);
            assert!(refused.contains(why), "{bad}: {refused}");
        }
    }

    #[test]
    fn host_names_and_schemes_match_in_any_case() {
        let c = config(&["Relay.LAN:8010", "box.lan"]);
        assert!(host_allowed(&c, "relay.lan:8010"));
        assert!(host_allowed(&c, "RELAY.lan:8010"));
        assert!(host_allowed(&c, "BOX.LAN:1"));
        assert!(host_allowed(&c, "[::1]"));
        assert!(!host_allowed(&c, "RELAY.LAN:8011"));
        assert!(origin_allowed(&c, "HTTPS://Box.Lan"));
        assert!(origin_allowed(&c, "Http://LOCALHOST:3000"));
        assert!(!origin_allowed(&c, "FILE://localhost"));
    }

    #[test]
    fn a_caller_is_counted_as_its_agent_else_its_address() {
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        let agent = Caller {
            agent: Some("codex".into()),
            peer,
            ..Caller::default()
        };
        assert_eq!(agent.client(), "agent codex");
        let anonymous = Caller {
            peer,
            ..Caller::default()
        };
        assert_eq!(anonymous.client(), "10.0.0.7");
        assert_eq!(Caller::default().client(), "");
    }

    #[test]
    fn origins_must_be_http_urls_of_allowed_hosts() {
        let c = config(&["192.168.2.3"]);
        assert!(origin_allowed(&c, "http://localhost:3000"));
        assert!(origin_allowed(&c, "https://127.0.0.1"));
        assert!(origin_allowed(&c, "http://192.168.2.3:8010"));
        assert!(!origin_allowed(&c, "null"));
        assert!(!origin_allowed(&c, "http://evil.com"));
        assert!(!origin_allowed(&c, "file://localhost"));
        assert!(!origin_allowed(&c, "http://localhost/path"));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
