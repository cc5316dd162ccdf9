//! The one error type of the engine, split by what the caller does about it.
//!
//! - [`Error::InvalidInput`]: the caller sent something wrong; fix the input. Nothing was stored.
//! - [`Error::Query`]: a query or trigger does not parse; the error names the field it came
//!   from and says where, as the language spec shows (line, column, a rendered caret).
//! - [`Error::Corrupt`]: stored data is damaged beyond the torn tail recovery repairs;
//!   an operator must look (or open with `RecoveryMode::Salvage`).
//! - [`Error::Locked`]: another process holds the data directory.
//! - [`Error::Poisoned`]: a write or fsync failed earlier; nothing more is acknowledged.
//!   Restart the process: recovery replays the log.
//! - [`Error::DiskFull`]: the disk ran out of space; free space on it (and, for the
//!   event log, restart: the log refuses writes after a failed one).
//! - [`Error::Io`]: the operating system refused an operation (an I/O error, permissions).
//! - [`Error::Closed`]: the engine was shut down.

use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: which record (index in the batch), which field, what was wrong.
    #[error("{}invalid `{field}`: {reason}", index.map(|i| format!("record {i}: ")).unwrap_or_default())]
    InvalidInput {
        /// Position of the offending record in the batch, when the input was a batch.
        index: Option<usize>,
        /// The field that was wrong, e.g. `name` or `props.price`.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A query or trigger that does not parse: fix it.
    #[error("{rendered}")]
    Query {
        /// The field the text came from: `q` (a segment), `trigger`, `audience`.
        field: String,
        /// Line of the fault, from 1.
        line: usize,
        /// Characters before the fault on its line (as the language spec counts).
        column: usize,
        /// What was wrong, in one line.
        message: String,
        /// The full diagnostic with the source line and a caret.
        rendered: String,
    },
    /// Stored data failed validation somewhere other than a torn tail.
    #[error("data corrupted in {}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What was found, with the byte offset.
        reason: String,
    },
    /// Another process holds the data directory lock.
    #[error("data directory {} is in use by another process (lock file {} is held)", dir.display(), dir.join("LOCK").display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// A write or sync failed earlier; the log refuses everything since.
    #[error("the event log is poisoned by an earlier I/O failure ({cause}); restart to recover")]
    Poisoned {
        /// The first failure, as text.
        cause: String,
    },
    /// An operating-system error, with what the engine was doing.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The disk ran out of space (`ENOSPC`) while the engine was doing `context`.
    #[error("{context}: the disk is full ({source}); free space on it")]
    DiskFull {
        /// What the engine was doing, with the path.
        context: String,
        /// The underlying error (kind `StorageFull`).
        source: std::io::Error,
    },
    /// The engine has been closed.
    #[error("the engine is closed")]
    Closed,
    /// A query ran past its deadline and was stopped: narrow it (a window, a
    /// filter, fewer clauses) or give it a longer deadline.
    #[error(
        "the query was stopped after running past its deadline of {deadline_ms} ms; narrow it \
         (a shorter window, a filter, fewer clauses) or give it a longer deadline"
    )]
    QueryStopped {
        /// The deadline it ran past, in milliseconds.
        deadline_ms: u64,
    },
    /// A query built more intermediate results than its memory limit allows
    /// and was stopped: narrow it or give it a larger limit.
    #[error(
        "the query was stopped after its intermediate results passed the memory limit of \
         {limit_bytes} bytes; narrow it (a filter, fewer clauses) or give it a larger limit"
    )]
    QueryOverMemory {
        /// The limit it passed, in bytes.
        limit_bytes: u64,
    },
}

impl Error {
    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(
        index: Option<usize>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput { index, field: field.into(), reason: reason.into() }
    }

    /// Builds an [`Error::Query`] from the language's error about `text`,
    /// which came from `field`.
    pub fn query(error: &nudge_query_lang::Error, text: &str, field: &str) -> Self {
        Error::Query {
            field: field.to_owned(),
            line: error.line(),
            column: error.column(),
            message: error.message().to_string(),
            rendered: error.render(text),
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), reason: reason.into() }
    }

    /// Adds to an I/O error of the log writer what it means for the caller:
    /// the batch is not acknowledged and the log takes no more writes.
    pub(crate) fn stopped_the_log(self) -> Self {
        const NOTE: &str = " (the event log now refuses every write until the process restarts; \
                            this batch is not acknowledged, and may or may not be in the log)";
        match self {
            Error::Io { context, source } => Error::Io { context: context + NOTE, source },
            Error::DiskFull { context, source } => {
                Error::DiskFull { context: context + NOTE, source }
            }
            other => other,
        }
    }

    /// Sets the batch index of an `InvalidInput` error (other kinds pass through).
    pub fn at_index(self, i: usize) -> Self {
        match self {
            Error::InvalidInput { field, reason, .. } => {
                Error::InvalidInput { index: Some(i), field, reason }
            }
            other => other,
        }
    }
}

/// Adds a context sentence to `std::io::Error`s.
pub(crate) trait IoContext<T> {
    /// Wraps the error with `context()`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| match source.kind() {
            std::io::ErrorKind::StorageFull => Error::DiskFull { context: context(), source },
            _ => Error::Io { context: context(), source },
        })
    }
}
