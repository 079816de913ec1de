//! The web page as the relay serves it: every embedded file at its path with its content type,
//! the Content-Security-Policy and `nosniff` on each, exact paths only, and every file the page
//! refers to actually served. (What the page does is shown in a real browser by
//! `tests/browser/`; what the files may contain is checked by the unit tests in `src/ui.rs`.)

use crate::common::*;
use claude_codex_relay::ui;

#[test]
fn every_asset_is_served_with_its_type_and_the_csp() {
    let relay = Relay::memory();
    let paths: Vec<&str> = ui::paths().collect();
    assert!(paths.contains(&"/"));
    assert!(paths.contains(&"/favicon.ico"));
    for path in paths {
        let asset = ui::asset(path).unwrap();
        let r = get(&relay.url(path));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(asset.content_type), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some(ui::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.body.as_bytes(), asset.body, "{path}");
    }
}

#[test]
fn only_exact_paths_are_served() {
    let relay = Relay::memory();
    for path in [
        "/index.html",
        "/assets/",
        "/assets/app.js/",
        "/assets/vendor/VERSIONS.md",
        "/assets/vendor/licenses/marked.LICENSE.md",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/../Cargo.toml",
        "/ASSETS/APP.JS",
    ] {
        let r = get(&relay.url(path));
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    // A query string does not change what is served.
    let r = get(&relay.url("/assets/app.js?v=1"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_bytes(), ui::asset("/assets/app.js").unwrap().body);
}

#[test]
fn the_page_is_read_only() {
    let relay = Relay::memory();
    let r = post_raw(&relay.url("/assets/app.js"), &[], b"x");
    assert_eq!(r.status, 405);
    let r = post_raw(&relay.url("/"), &[], b"x");
    assert_eq!(r.status, 405);
}

/// Every `src="..."` and `href="..."` in index.html is answered by the relay itself, so the
/// browser makes no request that fails and none that leaves the host.
#[test]
fn everything_the_page_refers_to_is_served() {
    let relay = Relay::memory();
    let html = get(&relay.url("/")).body;
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            refs.push(part[..part.find('"').unwrap()].to_string());
        }
    }
    assert!(refs.len() >= 6, "{refs:?}");
    for r in refs {
        assert!(r.starts_with('/') && !r.starts_with("//"), "{r}");
        let reply = get(&relay.url(&r));
        assert_eq!(reply.status, 200, "{r}");
    }
}
