//! The library's typed errors.
//!
//! Input errors carry a [`Location`] so that every binary reports bad data the same way:
//! `prog: error: <file>:<line>: <cause>`. I/O errors carry the path they happened on,
//! because "No such file or directory" alone does not tell an operator which file.

use std::fmt;
use std::io;
use std::sync::Arc;

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
    #[error("{path}: {source}")]
    Io {
        /// The path, `<stdin>` or `<stdout>`.
        path: String,
        /// The underlying error. Not marked `#[source]` because the message already
        /// includes it; [`Error::io_kind`] exposes its kind.
        source: io::Error,
    },
    /// Arguments that clap accepted but that do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// Another run holds the lock on this state (exit status 75).
    #[error("{0} is locked by another run; try again later")]
    Locked(String),
    /// A signal asked the tool to stop; it saved its state (exit status 128 + signal).
    #[error("stopped by signal {0}")]
    Interrupted(i32),
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::BadInput`] at `location`.
    pub fn bad_input(location: Location, cause: impl Into<String>) -> Self {
        Error::BadInput {
            location,
            cause: cause.into(),
        }
    }

    /// The kind of the underlying I/O error, if this is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}
