//! The relay's one error type. Every failure a request can meet is a variant here, and
//! `status()` is the only place where an error becomes an HTTP status; start-up failures
//! (configuration, journal, lock) carry what the operator needs to fix them, down to the part
//! of a path that is a file where a folder must be (`folder_failure`).

use std::fmt;
use std::io;
use std::path::Path;

/// Everything that can go wrong in the relay.
#[derive(Debug)]
pub enum Error {
    /// The request is malformed or a field is invalid (400).
    BadRequest(String),
    /// The body is not valid JSON (400; JSON-RPC tells it apart as a parse error).
    Parse(String),
    /// A bearer token is required and was missing or wrong (401).
    Unauthorized,
    /// The request is understood but not allowed: a foreign `Origin`, another agent's name (403).
    Forbidden(String),
    /// No such route, session or resource (404).
    NotFound(String),
    /// The route exists but not with this method; `allow` lists the methods it has (405).
    MethodNotAllowed { allow: &'static str },
    /// The request contradicts what an earlier one did: an idempotency key reused for another
    /// message (409).
    Conflict(String),
    /// The body or a field is larger than the configured limit (413).
    TooLarge(String),
    /// The request body did not arrive within its deadline (408; the connection closes).
    Timeout(String),
    /// The body is not of the media type the route reads (415).
    UnsupportedMediaType(String),
    /// The `Host` header names a host this relay does not serve (421).
    MisdirectedRequest(String),
    /// Too many open streams or waiting requests; try again after `retry_after` seconds (503).
    Unavailable { retry_after: u64, message: String },
    /// A message could not be made durable (disk full, read-only, permissions) (507).
    Storage(String),
    /// A configuration value is wrong; `source` names the file, variable or flag, `key` the key.
    Config {
        source: String,
        key: String,
        message: String,
    },
    /// The journal is damaged somewhere other than a torn last line (which replay cuts off).
    Journal {
        path: String,
        line: usize,
        message: String,
    },
    /// Another process holds the data directory's lock.
    Locked { path: String, holder: String },
    /// An operating-system error at start-up or on a socket.
    Io(io::Error),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) | Error::Parse(_) => 400,
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::Conflict(_) => 409,
            Error::Timeout(_) => 408,
            Error::TooLarge(_) => 413,
            Error::UnsupportedMediaType(_) => 415,
            Error::MisdirectedRequest(_) => 421,
            Error::Unavailable { .. } => 503,
            Error::Storage(_) => 507,
            Error::Config { .. } | Error::Journal { .. } | Error::Locked { .. } | Error::Io(_) => {
                500
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest(m)
            | Error::Parse(m)
            | Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::TooLarge(m)
            | Error::Timeout(m)
            | Error::UnsupportedMediaType(m)
            | Error::MisdirectedRequest(m)
            | Error::Storage(m) => f.write_str(m),
            Error::Unauthorized => f.write_str("missing or invalid bearer token"),
            Error::MethodNotAllowed { allow } => write!(f, "method not allowed; allowed: {allow}"),
            Error::Unavailable { message, .. } => f.write_str(message),
            Error::Config {
                source,
                key,
                message,
            } => write!(f, "{source}: {key}: {message}"),
            Error::Journal {
                path,
                line,
                message,
            } => write!(f, "{path}:{line}: {message}"),
            Error::Locked { path, holder } => {
                write!(f, "{path} is locked by another relay ({holder})")
            }
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Why a folder on the way to `path` could not be made, for a start-up message: a part of the
/// path that is a file names itself ("File exists" alone does not say which part), else the
/// system's reason stands.
pub fn folder_failure(path: &Path, e: &io::Error) -> String {
    let in_the_way = path
        .ancestors()
        .skip(1)
        .find(|part| part.exists())
        .filter(|part| !part.is_dir());
    match in_the_way {
        Some(file) => format!("{} is a file, not a folder", file.display()),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn a_file_in_the_way_of_a_folder_is_named() {
        let dir = TempDir::new();
        std::fs::create_dir_all(&dir.0).unwrap();
        let file = dir.0.join("afile");
        std::fs::write(&file, "").unwrap();
        let wanted = file.join("sub/x.log");
        let e = std::fs::create_dir_all(wanted.parent().unwrap()).unwrap_err();
        assert_eq!(
            folder_failure(&wanted, &e),
            format!("{} is a file, not a folder", file.display())
        );
        let elsewhere = dir.0.join("fine/x.log");
        let other = io::Error::other("no room");
        assert_eq!(folder_failure(&elsewhere, &other), "no room");
    }
}
