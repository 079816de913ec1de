//! The web page's files, embedded in the binary so the page works with no network: an exact
//! path lookup from URL path to file and content type.

/// One embedded file.
pub struct Asset {
    pub body: &'static [u8],
    pub content_type: &'static str,
}

/// The Content-Security-Policy sent with every page asset: only the relay's own scripts,
/// styles and connections.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const PLACEHOLDER: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>claude-codex-relay</title></head>\
<body><h1>claude-codex-relay</h1><p>The relay is running. API: <a href=\"/docs\">/docs</a>.</p></body></html>";

/// The embedded file served at `path` ("/" is the page), or None.
pub fn asset(path: &str) -> Option<Asset> {
    match path {
        "/" => Some(Asset {
            body: PLACEHOLDER.as_bytes(),
            content_type: "text/html; charset=utf-8",
        }),
        _ => None,
    }
}
