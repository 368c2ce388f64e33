//! The ledger over HTTP (issue: query service and dashboard). Work in
//! progress: the entry point is fixed so that the CLI can call it.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How `penalty serve` was asked to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The data directory.
    pub db: PathBuf,
    /// The policy in force.
    pub policy: penalty_core::Policy,
    /// Where to listen.
    pub addr: SocketAddr,
    /// The tokens file (`--tokens`), if any.
    pub tokens: Option<PathBuf>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Not written yet.
    #[error("the server is not written yet")]
    NotWritten,
}

/// Runs the server until Ctrl-C; builds its own tokio runtime, so callers stay
/// synchronous.
pub fn run(options: ServeOptions) -> Result<(), ServerError> {
    let _ = options;
    Err(ServerError::NotWritten)
}
