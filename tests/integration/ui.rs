//! The web page as the relay serves it: every embedded file at its path with its content type,
//! the Content-Security-Policy and `nosniff` on each, exact paths only, and every file the page
//! refers to actually served. (What the page does is shown in a real browser by
//! `tests/browser/`; what the files may contain is checked by the unit tests in `src/ui.rs`.)

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The page's files in the repository, as (served path, file, content type): every HTML file,
/// script, style sheet and image under `assets/`, at `/assets/NAME` (index.html at `/`), and
/// the icon at `/favicon.ico` too. The API document and the vendored files' notices are not
/// part of the page.
fn page_files() -> Vec<(String, PathBuf, &'static str)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut out = Vec::new();
    for file in files {
        let content_type = match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => continue,
        };
        let name = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let path = match name.as_str() {
            "index.html" => "/".to_string(),
            _ => format!("/assets/{name}"),
        };
        if name == "favicon.svg" {
            out.push(("/favicon.ico".to_string(), file.clone(), content_type));
        }
        out.push((path, file, content_type));
    }
    out
}

#[test]
fn every_asset_is_served_with_its_type_and_the_csp() {
    let relay = Relay::memory();
    let files = page_files();
    let paths: Vec<&str> = files.iter().map(|(p, _, _)| p.as_str()).collect();
    assert!(paths.contains(&"/"));
    assert!(paths.contains(&"/favicon.ico"));
    assert!(paths.contains(&"/assets/app.js"));
    let csp = get(&relay.url("/"))
        .header("content-security-policy")
        .expect("the page has a CSP")
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for (path, file, content_type) in files {
        let r = get(&relay.url(&path));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some(csp.as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.body.as_bytes(), std::fs::read(&file).unwrap(), "{path}");
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
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/app.js");
    assert_eq!(r.body.as_bytes(), std::fs::read(file).unwrap());
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

/// A browser that takes gzip gets each file compressed (a real gzip stream: `gzip -d` restores
/// the file), with `Vary: Accept-Encoding`; a client that does not gets the file as it is.
#[test]
fn the_page_is_sent_gzipped_to_clients_that_take_it() {
    let relay = Relay::memory();
    for (path, file, content_type) in page_files() {
        let on_disk = std::fs::read(&file).unwrap();
        let reply = agent()
            .get(&relay.url(&path))
            .header("Accept-Encoding", "gzip, deflate, br, zstd")
            .call()
            .expect("GET");
        let header = |name: &str| {
            reply
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        assert_eq!(
            header("content-encoding").as_deref(),
            Some("gzip"),
            "{path}"
        );
        assert_eq!(header("vary").as_deref(), Some("Accept-Encoding"), "{path}");
        assert_eq!(
            header("content-type").as_deref(),
            Some(content_type),
            "{path}"
        );
        let gzipped = reply.into_body().read_to_vec().unwrap();
        let mut gunzip = std::process::Command::new("gzip")
            .arg("-dc")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        let mut stdin = gunzip.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gzipped));
        let out = gunzip.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "{path}");
        assert_eq!(out.stdout, on_disk, "{path}");

        let plain = get_with(&relay.url(&path), &[("Accept-Encoding", "identity")]);
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert_eq!(plain.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_eq!(plain.body.as_bytes(), on_disk, "{path}");
    }
}
