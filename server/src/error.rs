//! The one error type of the `nudge` binary, split by what the user does about it.
//!
//! - [`Error::Usage`]: the command line or an input file is wrong; fix it and rerun.
//! - [`Error::Query`]: a query does not parse; the rendered error shows where.
//! - [`Error::Engine`]: the engine refused (bad record, locked or damaged data
//!   directory, failed disk); its message says which.
//! - [`Error::Io`]: reading input or writing output failed.
//! - [`Error::Subscription`]: a Web Push subscription is unusable (bad keys or
//!   endpoint); refuse it at registration, deactivate it at send time.
//! - [`Error::Push`]: a Web Push message could not be built or read (too
//!   large, bad encryption or VAPID token, no randomness); the message is
//!   dropped, the subscription is not at fault.

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
    /// A Web Push subscription that cannot be used: which field, and what is wrong.
    #[error("invalid push subscription: {0}")]
    Subscription(String),
    /// A Web Push message that could not be built, encrypted, decrypted or
    /// authenticated, with why.
    #[error("web push: {0}")]
    Push(String),
}
