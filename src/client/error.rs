//! The client's one error type and the only place where a failure becomes an exit code, so the
//! codes that `usage()` promises to scripts are kept in a single match.

use std::fmt;
use std::io;

/// Everything a client command can fail with.
#[derive(Debug)]
pub(crate) enum Error {
    /// The command line is wrong: an unknown flag, a missing value, a bad number (exit 2).
    Usage(String),
    /// The state file exists but does not hold a message id (exit 2: the operator must look).
    BadState(String),
    /// The relay answered with an error status; `message` is its `error` field or its body
    /// (exit 1).
    Refused { status: u16, message: String },
    /// The relay answered 2xx with something that is not the relay's API (exit 1).
    Invalid(String),
    /// No answer: connection refused, name not resolved, timed out, not HTTP (exit 3).
    Unreachable(String),
    /// `watch` ran CMD as often as the loop guard allows in its window (exit 4).
    LoopGuard(String),
    /// A local operation failed: reading stdin, writing the state file, starting CMD (exit 5).
    Local(String),
    /// `--timeout` passed before the awaited message arrived (exit 6).
    TimedOut(String),
    /// Standard output was closed by its reader (`| head`): stop quietly (exit 0).
    Closed,
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Error::Closed => 0,
            Error::Refused { .. } | Error::Invalid(_) => 1,
            Error::Usage(_) | Error::BadState(_) => 2,
            Error::Unreachable(_) => 3,
            Error::LoopGuard(_) => 4,
            Error::Local(_) => 5,
            Error::TimedOut(_) => 6,
        }
    }

    /// True when trying again later may succeed: the relay is down, restarting or busy.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable(_) => true,
            Error::Refused { status, .. } => *status >= 500 && *status != 507,
            _ => false,
        }
    }

    /// Wraps a failed write to standard output or standard error.
    pub(crate) fn output(e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Error::Closed
        } else {
            Error::Local(format!("cannot write output: {e}"))
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m)
            | Error::BadState(m)
            | Error::Invalid(m)
            | Error::Unreachable(m)
            | Error::LoopGuard(m)
            | Error::Local(m)
            | Error::TimedOut(m) => f.write_str(m),
            Error::Refused { status, message } => {
                write!(f, "the relay answered {status}: {message}")
            }
            Error::Closed => f.write_str("output closed"),
        }
    }
}

impl std::error::Error for Error {}
