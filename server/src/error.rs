//! The one error type of the `nudge` binary and its server, split by what the
//! caller does about it.
//!
//! - [`Error::Usage`] and [`Error::Invalid`]: the command line, an input file
//!   or a request body is wrong; fix it and retry (HTTP 400).
//! - [`Error::Unauthorized`] / [`Error::Forbidden`]: use the right key (401 / 403).
//! - [`Error::NotFound`]: no such segment, campaign or path (404).
//! - [`Error::TooLarge`]: send less per request (413).
//! - [`Error::RateLimited`]: slow down and retry after the given seconds (429).
//! - [`Error::Overloaded`]: the server is at a capacity limit (requests in
//!   flight, the ingest queue); nothing was done, retry after the given
//!   seconds (503).
//! - [`Error::TimedOut`]: the request body stopped arriving; send it faster (408).
//! - [`Error::Engine`]: the engine refused (bad record, locked or damaged data
//!   directory, failed disk); its message says which.
//! - [`Error::Io`]: reading input or writing output failed.
//! - [`Error::Subscription`]: a Web Push subscription is unusable (bad keys or
//!   endpoint); refuse it at registration, deactivate it at send time (400).
//! - [`Error::Push`]: a Web Push message could not be built or read (too
//!   large, bad encryption or VAPID token, no randomness); the message is
//!   dropped, the subscription is not at fault.

/// Result alias of the binary.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in a `nudge` command or an HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input, with where.
    #[error("{0}")]
    Usage(String),
    /// A request body field that is wrong: which field (a JSON path), what was
    /// wrong, and for batches which item.
    #[error("{0}")]
    Invalid(crate::json::FieldError),
    /// No key, or a key that is not one of this server's.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid key that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// A body over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests for this key.
    #[error("rate limit exceeded for this key; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_s: u64,
    },
    /// The server is at a capacity limit and did nothing with the request.
    #[error("the server is overloaded ({reason}); retry in {retry_after_s} s")]
    Overloaded {
        /// Which limit was reached.
        reason: String,
        /// Seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// The request body stopped arriving for longer than the body timeout.
    #[error("{0}")]
    TimedOut(String),
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

impl Error {
    /// An [`Error::Invalid`] for one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid(crate::json::FieldError::new(field, reason))
    }
}

impl From<crate::json::FieldError> for Error {
    fn from(e: crate::json::FieldError) -> Error {
        Error::Invalid(e)
    }
}
