//! The one error type of the `nudge` binary, split by what the user does about it.
//!
//! - [`Error::Usage`]: the command line or an input file is wrong; fix it and rerun.
//! - [`Error::Query`]: a query does not parse; the rendered error shows where.
//! - [`Error::Engine`]: the engine refused (bad record, locked or damaged data
//!   directory, failed disk); its message says which.
//! - [`Error::Io`]: reading input or writing output failed.

/// Result alias of the binary.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a `nudge` command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input, with where.
    #[error("{0}")]
    Usage(String),
    /// A query that does not parse: the rendered diagnostic.
    #[error("{0}")]
    Query(String),
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] nudge_engine::Error),
    /// Input or output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
}
