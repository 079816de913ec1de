//! The API's description: the OpenAPI 3.1 document served at `/openapi.json` (embedded
//! compressed from `assets/api/openapi.json`) and the human page at `/docs`, rendered from that same document
//! so the two cannot disagree.

use serde_json::Value;

/// The OpenAPI document, gzip-compressed: sent so to a client that takes gzip.
pub(crate) const OPENAPI: &[u8] = crate::embedded::embedded!("api/openapi.json");

/// The OpenAPI document as JSON.
fn document() -> Value {
    serde_json::from_slice(&crate::embedded::inflate(OPENAPI)).unwrap_or(Value::Null)
}

/// The `/docs` page.
pub(crate) fn page() -> String {
    let doc = document();
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>",
        escape(doc["info"]["title"].as_str().unwrap_or("")),
        prose(doc["info"]["description"].as_str().unwrap_or(""))
    ));
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                body.push_str(&format!(
                    "<section><h2><code>{} {}</code></h2><p><b>{}</b></p>",
                    method.to_uppercase(),
                    escape(path),
                    prose(op["summary"].as_str().unwrap_or(""))
                ));
                if let Some(d) = op["description"].as_str() {
                    body.push_str(&format!("<p>{}</p>", prose(d)));
                }
                if let Some(params) = op["parameters"].as_array() {
                    body.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>");
                    for p in params {
                        body.push_str(&format!(
                            "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            escape(p["name"].as_str().unwrap_or("")),
                            if p["required"].as_bool() == Some(true) {
                                " (required)"
                            } else {
                                ""
                            },
                            escape(p["in"].as_str().unwrap_or("")),
                            escape(p["schema"]["type"].as_str().unwrap_or("")),
                            prose(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    body.push_str("</table>");
                }
                if let Some(responses) = op["responses"].as_object() {
                    body.push_str("<ul>");
                    for (status, r) in responses {
                        body.push_str(&format!(
                            "<li><code>{}</code> {}</li>",
                            escape(status),
                            prose(r["description"].as_str().unwrap_or(""))
                        ));
                    }
                    body.push_str("</ul>");
                }
                body.push_str("</section>");
            }
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>API · claude-codex-relay</title>\
         <style>body{{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#1f2328}}\
         code{{background:#f3f4f6;padding:0 .3em;border-radius:4px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #d0d7de;padding:.2em .5em;text-align:left}}section{{border-top:1px solid #d0d7de;margin-top:1.5em}}</style>\
         </head><body>{body}</body></html>"
    )
}

/// A description: escaped, with each `quoted` span shown as code, as the document means it.
fn prose(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 && s.split('`').count() > i + 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else if i % 2 == 1 {
            // An unmatched backtick stays as written.
            out.push('`');
            out.push_str(&escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The route paths the document describes, as (method, path).
    fn documented_routes() -> Vec<(String, String)> {
        let doc = document();
        let mut out = Vec::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for method in ops.as_object().into_iter().flatten().map(|(m, _)| m) {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let mut documented = documented_routes();
        documented.sort();
        let mut served: Vec<(String, String)> = crate::http::router::ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn docs_show_backticks_as_code_not_literally() {
        assert_eq!(
            prose("the newest `limit` <b>"),
            "the newest <code>limit</code> &lt;b&gt;"
        );
        assert_eq!(prose("one ` alone"), "one ` alone");
        assert!(!page().contains("`limit`"), "no literal backticks on /docs");
        assert!(page().contains("<code>limit</code>"));
    }
}
