use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to OVSDB at {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("OVSDB connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("OVSDB sent malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("OVSDB closed the connection")]
    Closed,
    #[error("OVSDB protocol error: {0}")]
    Protocol(String),
    #[error("OVSDB {method} failed: {error}")]
    Rpc { method: String, error: String },
    #[error("OVSDB transaction failed at operation {index}: {error}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Transaction {
        /// Position of the failing operation; equals the number of operations
        /// when the commit itself failed (e.g. a constraint violation).
        index: usize,
        error: String,
        details: Option<String>,
    },
}

impl Error {
    /// True when a `wait` operation's condition was not met: someone else
    /// changed the rows between our read and our write.
    /// The connection is gone (closed, reset, timed out): reconnecting may
    /// help, unlike a rejected request.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::Closed | Error::Io(_) | Error::Connect { .. })
    }

    pub fn is_wait_timeout(&self) -> bool {
        matches!(self, Error::Transaction { error, .. } if error == "timed out")
    }
}
