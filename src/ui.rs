//! The web page's files, compiled into the binary: `assets/index.html` at `/`, everything else
//! the page loads under `/assets/...` (its script is ES modules under `/assets/app/`, entered
//! at `/assets/app.js`), and the favicon. The relay runs on air-gapped hosts, so
//! the page and its markdown, highlighting and sanitizing libraries (vendored from npm under
//! `assets/vendor/`, see `VERSIONS.md` there) are embedded here and nothing is ever fetched
//! from elsewhere. Each is embedded gzip-compressed (`embedded`), sent so to a browser that
//! takes gzip and inflated for a client that does not. Lookup is by exact path: no
//! directory walking, no path normalisation, so no request can reach a file that is not in the
//! table. This file also owns the Content-Security-Policy the router sends with every page
//! asset, and the tests that keep the assets from referring to anything outside the relay.

/// One embedded file, gzip-compressed, and the `Content-Type` it is served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Asset {
    pub gzip: &'static [u8],
    pub content_type: &'static str,
}

/// Whether a request whose `Accept-Encoding` is `accept_encoding` takes a gzip body: gzip (or
/// `x-gzip`, or else `*`) is listed with a quality above zero. Without the field the answer is
/// no, although HTTP would allow gzip then: a client that sends none (curl without
/// `--compressed`, a script) would otherwise be handed bytes it does not expect.
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let mut gzip = None;
    let mut any = None;
    for item in accept_encoding.unwrap_or("").split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let quality = parts
            .find_map(|p| {
                let (name, value) = p.split_once('=')?;
                name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
            })
            .is_none_or(|q| q.parse::<f64>().is_ok_and(|q| q > 0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(quality);
        } else if coding == "*" {
            any = Some(quality);
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The Content-Security-Policy header value sent with every page asset. Only the relay's own
/// scripts, styles and connections; images also from `data:` URLs (message markdown may carry
/// them); no plugins, no framing, no `<base>`.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// One row of `ASSETS`: the served path, the file under `assets/` (embedded as `build.rs`
/// compressed it), its content type.
macro_rules! embed {
    ($path:literal, $file:literal, $content_type:expr) => {
        (
            $path,
            Asset {
                gzip: crate::embedded::embedded!($file),
                content_type: $content_type,
            },
        )
    };
}

/// Every served path with its file. The favicon is served at `/favicon.ico` too, although the
/// page links the SVG, so that a browser or tool asking the conventional path gets an icon
/// rather than a 404.
#[rustfmt::skip]
const ASSETS: &[(&str, Asset)] = &[
    embed!("/", "index.html", HTML),
    embed!("/assets/app.js", "app.js", JS),
    embed!("/assets/app/api.js", "app/api.js", JS),
    embed!("/assets/app/card.js", "app/card.js", JS),
    embed!("/assets/app/channels.js", "app/channels.js", JS),
    embed!("/assets/app/composer.js", "app/composer.js", JS),
    embed!("/assets/app/conversation.js", "app/conversation.js", JS),
    embed!("/assets/app/dom.js", "app/dom.js", JS),
    embed!("/assets/app/footer.js", "app/footer.js", JS),
    embed!("/assets/app/live.js", "app/live.js", JS),
    embed!("/assets/app/markdown.js", "app/markdown.js", JS),
    embed!("/assets/app/older.js", "app/older.js", JS),
    embed!("/assets/app/presence.js", "app/presence.js", JS),
    embed!("/assets/app/replies.js", "app/replies.js", JS),
    embed!("/assets/app/search.js", "app/search.js", JS),
    embed!("/assets/app/senders.js", "app/senders.js", JS),
    embed!("/assets/app/state.js", "app/state.js", JS),
    embed!("/assets/app/storage.js", "app/storage.js", JS),
    embed!("/assets/app/stream.js", "app/stream.js", JS),
    embed!("/assets/app/theme-toggle.js", "app/theme-toggle.js", JS),
    embed!("/assets/app/timeline.js", "app/timeline.js", JS),
    embed!("/assets/app/token.js", "app/token.js", JS),
    embed!("/assets/theme.js", "theme.js", JS),
    embed!("/assets/app.css", "app.css", CSS),
    embed!("/assets/favicon.svg", "favicon.svg", SVG),
    embed!("/favicon.ico", "favicon.svg", SVG),
    embed!("/assets/vendor/marked.umd.js", "vendor/marked.umd.js", JS),
    embed!("/assets/vendor/purify.min.js", "vendor/purify.min.js", JS),
    embed!("/assets/vendor/highlight.min.js", "vendor/highlight.min.js", JS),
];

/// The embedded file served at `path` ("/" is index.html), or None. Exact paths only.
pub(crate) fn asset(path: &str) -> Option<Asset> {
    ASSETS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, asset)| *asset)
}

/// Every path [`asset`] answers, in table order.
#[cfg(test)]
pub(crate) fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn text(path: &str) -> String {
        String::from_utf8(crate::embedded::inflate(asset(path).expect(path).gzip))
            .expect("assets are UTF-8")
    }

    #[test]
    fn every_asset_inflates_to_its_file() {
        for path in paths() {
            let file = match path {
                "/" => "index.html",
                "/favicon.ico" => "favicon.svg",
                _ => path.strip_prefix("/assets/").expect(path),
            };
            let on_disk = std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("assets")
                    .join(file),
            )
            .expect(file);
            let asset = asset(path).expect(path);
            assert_eq!(crate::embedded::inflate(asset.gzip), on_disk, "{path}");
            assert!(
                asset.gzip.len() < on_disk.len().max(200),
                "{path} is compressed"
            );
        }
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_take_it() {
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "x-gzip",
            "*",
            "deflate, *;q=0.1",
        ] {
            assert!(accepts_gzip(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip; q=0.000, deflate",
            "*;q=0",
            "gzip;q=0, *",
            "gzip;q=nonsense",
        ] {
            assert!(!accepts_gzip(Some(no)), "{no}");
        }
        assert!(!accepts_gzip(None), "no field: plain bytes");
    }

    /// The files written for this project: held to the strict rule that they name no address
    /// outside the relay at all.
    const OWN: &[&str] = &[
        "/",
        "/assets/app.js",
        "/assets/app/api.js",
        "/assets/app/card.js",
        "/assets/app/channels.js",
        "/assets/app/composer.js",
        "/assets/app/conversation.js",
        "/assets/app/dom.js",
        "/assets/app/footer.js",
        "/assets/app/live.js",
        "/assets/app/markdown.js",
        "/assets/app/presence.js",
        "/assets/app/replies.js",
        "/assets/app/search.js",
        "/assets/app/senders.js",
        "/assets/app/state.js",
        "/assets/app/storage.js",
        "/assets/app/stream.js",
        "/assets/app/theme-toggle.js",
        "/assets/app/timeline.js",
        "/assets/app/token.js",
        "/assets/theme.js",
        "/assets/app.css",
        "/assets/favicon.svg",
    ];

    /// The one absolute URL an own file may contain: the SVG namespace, an identifier that no
    /// browser ever loads (and without which an `image/svg+xml` file is not drawn).
    const SVG_NAMESPACE: &str = r#"xmlns="http://www.w3.org/2000/svg""#;

    /// Every `name="value"` / `name='value'` attribute value in an HTML text.
    fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
        let mut values = Vec::new();
        for quote in ['"', '\''] {
            let needle = format!("{name}={quote}");
            let mut rest = html;
            while let Some(at) = rest.find(&needle) {
                // Only whole attribute names: `src=` but not `data-src=`.
                let before = rest[..at].chars().next_back();
                rest = &rest[at + needle.len()..];
                let end = rest.find(quote).expect("attribute value is closed");
                if before.is_none_or(|c| c.is_whitespace()) {
                    values.push(&rest[..end]);
                }
                rest = &rest[end..];
            }
        }
        values
    }

    #[test]
    fn lookup_is_exact() {
        assert_eq!(asset("/").unwrap().content_type, HTML);
        assert_eq!(asset("/assets/app.js").unwrap().content_type, JS);
        assert_eq!(asset("/assets/app.css").unwrap().content_type, CSS);
        assert_eq!(asset("/favicon.ico").unwrap().content_type, SVG);
        for miss in [
            "",
            "/index.html",
            "/assets/",
            "/assets/app.js/",
            "/assets/../assets/app.js",
            "/assets/app.js?x=1",
            "/ASSETS/APP.JS",
            "/assets/vendor/VERSIONS.md",
            "/assets/vendor/licenses/marked.LICENSE.md",
        ] {
            assert!(asset(miss).is_none(), "{miss:?} must not be served");
        }
        assert!(paths().all(|p| asset(p).is_some()));
    }

    #[test]
    fn own_files_name_no_outside_address() {
        for path in OWN {
            let body = text(path).replace(SVG_NAMESPACE, "");
            let lower = body.to_ascii_lowercase();
            for bad in [
                "http:", "https:", "ws:", "wss:", "ftp:", "//cdn", "@import", "import(",
            ] {
                assert!(!lower.contains(bad), "{path} contains {bad:?}");
            }
            // A protocol-relative reference (`//host/...`) in an attribute or a CSS url().
            for marker in ["src=\"//", "href=\"//", "src='//", "href='//", "url(//"] {
                assert!(!lower.contains(marker), "{path} contains {marker:?}");
            }
            for quote in ["url(\"//", "url('//"] {
                assert!(!lower.contains(quote), "{path} contains {quote:?}");
            }
        }
    }

    #[test]
    fn page_references_only_embedded_files() {
        let html = text("/");
        let mut refs: Vec<&str> = attribute_values(&html, "src");
        refs.extend(attribute_values(&html, "href"));
        assert!(
            refs.len() >= 5,
            "the page loads its scripts and styles: {refs:?}"
        );
        for r in refs {
            if r.starts_with('#') {
                continue;
            }
            // Links to other relay pages (the API documentation) are served by the router.
            if r == "/docs" || r == "/openapi.json" {
                continue;
            }
            assert!(
                r.starts_with('/') && !r.starts_with("//"),
                "{r:?} must be a same-origin absolute path"
            );
            assert!(asset(r).is_some(), "{r:?} is referenced but not embedded");
        }
        // No inline script or style: the CSP would block it, and it hides code from review.
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "inline <style> in index.html");
        assert!(
            !lower.contains(" style="),
            "inline style attribute in index.html"
        );
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !lower[at + 1 + name.len()..].starts_with('='),
                "inline event handler {name} in index.html"
            );
        }
        for tag in lower.split("<script").skip(1) {
            let open_end = tag.find('>').expect("script tag closes");
            assert!(
                tag[..open_end].contains("src="),
                "inline <script> in index.html"
            );
            assert!(
                tag[open_end + 1..].trim_start().starts_with("</script>"),
                "<script src> with inline content"
            );
        }
    }

    /// The paths a script module imports (`import ... from "./x.js"` and `import "./x.js"`),
    /// resolved against the module's own path. Only relative specifiers are allowed.
    fn imports(path: &str) -> Vec<String> {
        let dir = &path[..path.rfind('/').expect("module path has a directory") + 1];
        let mut found = Vec::new();
        for line in text(path).lines() {
            let line = line.trim_start();
            if !line.starts_with("import ") && !line.starts_with("} from ") {
                continue;
            }
            let Some(open) = line.find('"') else { continue };
            let spec = &line[open + 1..];
            let spec = &spec[..spec.find('"').expect("specifier is closed")];
            let rest = spec
                .strip_prefix("./")
                .unwrap_or_else(|| panic!("{path} imports {spec:?}, not a relative path"));
            found.push(format!("{dir}{rest}"));
        }
        found
    }

    /// The page's script is ES modules reached from `/assets/app.js`: every import names an
    /// embedded file, every embedded module is imported by someone, and no two modules import
    /// each other, however indirectly.
    #[test]
    fn script_modules_form_an_embedded_acyclic_graph() {
        fn visit(path: &str, stack: &mut Vec<String>, done: &mut Vec<String>) {
            if done.iter().any(|d| d == path) {
                return;
            }
            assert!(
                !stack.iter().any(|s| s == path),
                "import cycle: {stack:?} -> {path}"
            );
            assert_eq!(asset(path).map(|a| a.content_type), Some(JS), "{path}");
            stack.push(path.to_string());
            for next in imports(path) {
                visit(&next, stack, done);
            }
            stack.pop();
            done.push(path.to_string());
        }
        let mut done = Vec::new();
        visit("/assets/app.js", &mut Vec::new(), &mut done);
        for path in paths().filter(|p| p.starts_with("/assets/app/")) {
            assert!(done.iter().any(|d| d == path), "{path} is never imported");
        }
        assert!(done.len() > 10, "the page is split into modules: {done:?}");
        // The transport knows nothing of the page: what a 401 means is the caller's business.
        assert_eq!(imports("/assets/app/api.js"), Vec::<String>::new());
        let html = text("/");
        assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    }

    #[test]
    fn css_urls_are_data_or_embedded() {
        let css = text("/assets/app.css");
        for part in css.split("url(").skip(1) {
            let value = part[..part.find(')').expect("url( closes")]
                .trim_matches(|c| c == '"' || c == '\'');
            assert!(
                value.starts_with("data:") || asset(value).is_some(),
                "app.css url({value}) is neither data: nor embedded"
            );
        }
    }

    /// The vendored libraries carry URLs in comments, licence headers, XML namespaces and
    /// marked's `www.` autolink rule; none of those is loaded. What would make the browser (or
    /// its developer tools) request something is a source map, a dynamic import, a worker or
    /// a network call, so that is what is checked. (`@import` is not: the vendored files are
    /// all scripts, and highlight.js lists it as an Objective-C keyword.)
    #[test]
    fn vendor_files_load_nothing() {
        let vendored: Vec<&str> = paths()
            .filter(|p| p.starts_with("/assets/vendor/"))
            .collect();
        assert_eq!(vendored.len(), 3);
        for path in vendored {
            let body = text(path);
            for bad in [
                "sourceMappingURL",
                "sourceURL",
                "import(",
                "importScripts",
                "new Worker",
                "XMLHttpRequest",
                "fetch(",
                "sendBeacon",
                "WebSocket",
                "EventSource",
            ] {
                assert!(!body.contains(bad), "{path} contains {bad:?}");
            }
        }
    }

    #[test]
    fn csp_forbids_inline_and_foreign_code() {
        let csp = CONTENT_SECURITY_POLICY;
        assert!(!csp.contains("unsafe"));
        assert!(!csp.contains("http"));
        assert!(!csp.contains('*'));
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "CSP lacks {directive}");
        }
    }
}
