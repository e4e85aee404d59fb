//! The library's typed errors, and the exit status each one ends a program with.
//!
//! Input errors carry a [`Location`] so that every binary reports bad data the same way:
//! `prog: error: <file>:<line>: <cause>`. I/O errors carry the path they happened on,
//! because "No such file or directory" alone does not tell an operator which file.
//!
//! The exit status travels on the error ([`Error::exit_code`], uucore's `UError` idea):
//! the run wrapper never has to guess it by inspecting messages or downcasting.

use std::fmt;
use std::io;
use std::sync::Arc;

/// Exit status for success.
pub const EXIT_SUCCESS: i32 = 0;
/// Exit status for a runtime failure or bad input records.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for a usage error (what clap uses).
pub const EXIT_USAGE: i32 = 2;
/// Exit status when another run holds the lock (EX_TEMPFAIL).
pub const EXIT_TEMPFAIL: i32 = 75;

/// Where a line of input came from: the input's display name and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The path as the user gave it, or `<stdin>`.
    pub file: Arc<str>,
    /// 1-based line number within that input.
    pub line: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Errors raised by the library.
///
/// No variant has an error `source`: each message is complete on its own, so printing an
/// error never repeats its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of input that could not be understood.
    #[error("{location}: {cause}")]
    BadInput {
        /// The offending line.
        location: Location,
        /// What is wrong with it, in words an operator can act on.
        cause: String,
    },
    /// Reading or writing a file (or a standard stream) failed.
    #[error("{path}: {cause}")]
    Io {
        /// The path, `<stdin>` or `<stdout>`.
        path: String,
        /// The underlying error; [`Error::io_kind`] exposes its kind.
        cause: io::Error,
    },
    /// Arguments that clap accepted but that do not make sense together (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// Another run holds the lock on this state (exit status 75).
    #[error("{0} is locked by another run; try again later")]
    Locked(String),
    /// A signal asked the tool to stop; it saved its state (exit status 128 + signal).
    #[error("stopped by signal {0}")]
    Interrupted(i32),
    /// The run failed for a reason given in words (exit status 1).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<String>, cause: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// Builds an [`Error::BadInput`] at `location`.
    pub fn bad_input(location: Location, cause: impl Into<String>) -> Self {
        Error::BadInput {
            location,
            cause: cause.into(),
        }
    }

    /// Builds an [`Error::Failed`].
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    /// The kind of the underlying I/O error, if this is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { cause, .. } => Some(cause.kind()),
            _ => None,
        }
    }

    /// True for a closed output pipe (`| head -1`), which ends a filter quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.io_kind() == Some(io::ErrorKind::BrokenPipe)
    }

    /// The exit status a program ending with this error returns.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Locked(_) => EXIT_TEMPFAIL,
            Error::Interrupted(signal) => 128 + signal,
            Error::Io { .. } if self.is_broken_pipe() => EXIT_SUCCESS,
            _ => EXIT_FAILURE,
        }
    }

    /// The same error with `context` (a path, a URL, what was being done) before its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Error::Io { path, cause } => Error::Io {
                path: format!("{context}: {path}"),
                cause,
            },
            Error::Failed(message) => Error::Failed(format!("{context}: {message}")),
            Error::Usage(message) => Error::Usage(format!("{context}: {message}")),
            other => other,
        }
    }
}

/// Adds the path an I/O error happened on: `file.read().at(path)?`.
pub trait IoContext<T> {
    /// Turns an `io::Error` into an [`Error::Io`] naming `path`.
    fn at(self, path: impl fmt::Display) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl fmt::Display) -> Result<T, Error> {
        self.map_err(|cause| Error::io(path.to_string(), cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_cause_once() {
        let err = std::fs::File::open("/nonexistent/measpipe")
            .at("/nonexistent/measpipe")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/measpipe: No such file or directory (os error 2)"
        );
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn exit_codes_travel_on_the_error() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::Locked("s".into()).exit_code(), 75);
        assert_eq!(Error::Interrupted(15).exit_code(), 143);
        assert_eq!(Error::failed("x").exit_code(), 1);
        let pipe = Error::io("<stdout>", io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(pipe.exit_code(), 0);
    }
}
