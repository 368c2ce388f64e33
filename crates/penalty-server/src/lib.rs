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
//! - [`guard`] refuses cross-site writes and requests for other hosts (DNS
//!   rebinding); [`listen`] is the accept loop: header and idle timeouts, a
//!   connection limit, a graceful shutdown.
//! - [`replays`] answers `known_at` questions from kept replays, and bounds
//!   what they may cost; [`params`] states the syntax of query parameters
//!   once, for the checks and for the OpenAPI document.
//! - [`metrics`] counts ingest outcomes and request latencies; [`openapi`]
//!   describes every route; [`assets`] serves the dashboard, whose files are
//!   compiled into the binary.

pub mod access;
pub mod assets;
pub mod auth;
pub mod download;
pub mod error;
pub mod guard;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod replays;
pub mod routes;
pub mod session;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use auth::{Access, Tokens};
pub use listen::ServeConfig;
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
    /// `--allowed-host`: names (with or without a port) the `Host` header may
    /// give besides the bound address.
    pub allowed_hosts: Vec<String>,
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

/// A server ready to run: options checked, tokens loaded, address bound,
/// data directory open. Everything that can be refused is refused by
/// [`Server::bind`], before the caller says it is listening.
pub struct Server {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    state: AppState,
    config: ServeConfig,
}

impl Server {
    /// Checks the options, loads the tokens, binds the address and opens the
    /// data directory (taking its lock).
    pub fn bind(options: ServeOptions) -> Result<Server, ServerError> {
        Server::bind_waiting(options, None)
    }

    /// [`Server::bind`], except that while another writer (an `ingest`, a
    /// `recover`, another server) holds the data directory, it waits its
    /// turn, telling `on_wait` why, instead of failing: the server is the
    /// directory's one writer, like `penalty ingest`. The address and the
    /// tokens are refused before it waits.
    pub fn bind_waiting(
        options: ServeOptions,
        on_wait: Option<&mut dyn FnMut(&penalty_store::StoreError)>,
    ) -> Result<Server, ServerError> {
        check_exposure(options.addr, options.tokens.is_some())?;
        let tokens = options.tokens.as_deref().map(Tokens::load).transpose()?;
        let bind_error = |source| ServerError::Bind {
            addr: options.addr,
            source,
        };
        let listener = std::net::TcpListener::bind(options.addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let state = AppState::open_waiting(
            Config {
                db: options.db.clone(),
                policy: options.policy.clone(),
                tokens,
                limits: Limits::default(),
            },
            on_wait,
        )?;
        Ok(Server {
            listener,
            addr,
            state,
            config: ServeConfig {
                allowed_hosts: options.allowed_hosts,
                ..ServeConfig::default()
            },
        })
    }

    /// The address listened on (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until Ctrl-C or SIGTERM; builds its own tokio runtime, so
    /// callers stay synchronous. Saves the projection checkpoint on the way
    /// out.
    pub fn run(self) -> Result<(), ServerError> {
        let Server {
            listener,
            addr,
            state,
            config,
        } = self;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("penalty-server")
            .build()?;
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::info!(%addr, "penalty serve: listening");
            serve_with(listener, state.clone(), config, shutdown_signal()).await
        })?;
        // Requests in flight have finished (or the grace ran out); an
        // ingest still running finishes its chunk before the checkpoint
        // takes the log, so the checkpoint holds everything acknowledged.
        state.save_checkpoint_blocking()?;
        Ok(())
    }
}

/// Runs the server until Ctrl-C or SIGTERM (see [`Server`]).
pub fn run(options: ServeOptions) -> Result<(), ServerError> {
    Server::bind(options)?.run()
}

/// Serves the router on a bound listener until `shutdown` completes, then
/// lets in-flight requests finish, with the default [`ServeConfig`]. Used by
/// tests and the load test with a listener on `127.0.0.1:0`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_with(listener, state, ServeConfig::default(), shutdown).await
}

/// [`serve`] with a given [`ServeConfig`]. Requests whose `Host` names
/// neither the bound address nor an allowed host are refused here (see
/// [`guard`]).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let bound = listener.local_addr()?;
    let hosts = std::sync::Arc::new(listen::allowed_hosts(
        bound,
        &config,
        state.tokens().is_some(),
    ));
    let app = router(state).layer(axum::middleware::from_fn_with_state(
        hosts,
        guard::check_host,
    ));
    listen::serve_connections(listener, app, config, shutdown).await?;
    Ok(())
}

/// Ctrl-C (SIGINT) or SIGTERM (what `kill` and service managers send): the
/// signal `penalty serve` and a cluster node stop on.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("interrupted: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
