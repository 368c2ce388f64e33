//! The penalty ledger over HTTP: a JSON API, Prometheus metrics, an OpenAPI
//! document and a dashboard, served by `penalty serve` on the same data
//! directory as the CLI.
//!
//! This crate is glue, like the CLI: the rules live in `penalty-core`, the log
//! and ingest in `penalty-store`; here they are put behind axum routes. It is
//! the only crate that runs tokio.
//!
//! - [`routes`] builds the router ([`routes::router`]) from one table of
//!   routes; responses are the core's report types as JSON, the same bytes as
//!   the CLI's `--json`.
//! - [`state`] owns the open log (the server is the single writer of its data
//!   directory) and the projection readers share; ingest folds each durable
//!   block into it under a short write lock, so readers are served during an
//!   upload.
//! - [`auth`] turns a bearer token into an [`auth::Access`]: operator
//!   (everything, and ingest) or seller (one shop, read only).
//! - [`error`] is the one error type; every failure is a JSON body, and
//!   internal details stay in the log.
//! - [`metrics`] counts ingest outcomes and request latencies; [`openapi`]
//!   describes every route; [`assets`] serves the dashboard, whose files are
//!   compiled into the binary.

pub mod assets;
pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use auth::{Access, Tokens};
pub use routes::router;
pub use state::{AppState, Config, Limits};

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
    /// No tokens file and a non-loopback address: anyone on the network
    /// could read every shop.
    #[error(
        "refusing to listen on {addr} without access control: pass --tokens FILE (a JSON list of \
         token hashes and roles, see `penalty serve --help`), or listen on a loopback address such \
         as 127.0.0.1:8080"
    )]
    NeedsTokens {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The tokens file is unreadable or malformed.
    #[error(transparent)]
    Tokens(#[from] auth::TokensError),
    /// Opening the data directory failed (locked, damaged, unwritable).
    #[error(transparent)]
    Store(#[from] penalty_store::StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another server using that port?")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the accept loop failed.
    #[error("the HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks the options that need no I/O: an address off loopback needs tokens.
pub fn check_exposure(addr: SocketAddr, has_tokens: bool) -> Result<(), ServerError> {
    if has_tokens || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServerError::NeedsTokens { addr })
    }
}

/// Runs the server until Ctrl-C; builds its own tokio runtime, so callers stay
/// synchronous. Saves the projection checkpoint on the way out.
pub fn run(options: ServeOptions) -> Result<(), ServerError> {
    check_exposure(options.addr, options.tokens.is_some())?;
    let tokens = options.tokens.as_deref().map(Tokens::load).transpose()?;
    let state = AppState::open(Config {
        db: options.db.clone(),
        policy: options.policy.clone(),
        tokens,
        limits: Limits::default(),
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("penalty-server")
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: options.addr,
                source,
            })?;
        tracing::info!(addr = %options.addr, db = %options.db.display(), "penalty serve: listening");
        serve(listener, state.clone(), shutdown_signal()).await
    })?;
    // In-flight ingests have finished (graceful shutdown waits for their
    // responses), so this checkpoint holds everything acknowledged.
    state.save_checkpoint_blocking()?;
    Ok(())
}

/// Serves the router on a bound listener until `shutdown` completes, then
/// lets in-flight requests finish. Used by [`run`], and by tests and the
/// load test with a listener on `127.0.0.1:0`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for Ctrl-C; stop the server with a signal");
        std::future::pending::<()>().await;
    }
}
