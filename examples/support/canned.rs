//! Canned responses: the relay's own answers (status, the headers a client reads, body),
//! recorded by the benchmark and replayed by the ceiling servers. A response answers every
//! request whose method matches, whose target (path and query) starts with its prefix and whose
//! declared body is at least `min_body` bytes; the first such response in the list wins. Shared
//! by `bench` and `ceiling`.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Canned {
    pub method: String,
    pub target_prefix: String,
    /// The fewest body bytes a request it answers declares (a 1 MiB post is answered with the
    /// relay's echo of a 1 MiB message, a small one with a small echo).
    #[serde(default)]
    pub min_body: usize,
    pub status: u16,
    /// Header fields as sent by the relay, without those the HTTP library writes itself
    /// (`Server`, `Date`, `Content-Length`, `Transfer-Encoding`, `Connection`).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    #[allow(dead_code)] // Used by the ceiling, which replays; the benchmark only records.
    pub fn answers(&self, method: &str, target: &str, body_length: usize) -> bool {
        self.method.eq_ignore_ascii_case(method)
            && target.starts_with(&self.target_prefix)
            && body_length >= self.min_body
    }
}

/// Whether a header field of the relay's response belongs in a canned copy.
#[allow(dead_code)] // Used by the benchmark, which records; the ceiling only replays.
pub fn kept_header(name: &str) -> bool {
    ![
        "server",
        "date",
        "content-length",
        "transfer-encoding",
        "connection",
    ]
    .contains(&name.to_ascii_lowercase().as_str())
}

#[allow(dead_code)] // Used by the benchmark, which records; the ceiling only replays.
pub fn save(path: &Path, responses: &[Canned]) {
    let text = serde_json::to_string(responses).expect("canned responses serialise");
    std::fs::write(path, text).expect("write the canned responses");
}

#[allow(dead_code)] // Used by the ceiling, which replays; the benchmark only records.
pub fn load(path: &Path) -> Vec<Canned> {
    let text = std::fs::read_to_string(path).expect("read the canned responses");
    serde_json::from_str(&text).expect("canned responses in the expected shape")
}
