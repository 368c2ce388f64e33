//! The accept loop and the life of a connection: what keeps a few hostile
//! or careless clients from holding the server.
//!
//! - A request's head must arrive within [`ServeConfig::header_read_timeout`]
//!   of the connection becoming ready for one: after it opens, and after each
//!   response on a kept-alive connection. So the same clock is the header
//!   timeout (a half-sent head) and the idle timeout (nothing sent).
//! - At most [`ServeConfig::max_connections`] connections are held. When a new
//!   one comes at the limit, the oldest connection with no request in flight
//!   is closed to make room (an idle client can reconnect; a waiting one
//!   loses nothing); when every one has a request in flight, the newcomer
//!   gets a 503 and is closed. The limit stays below the process's file
//!   limit, so accepting never fails for want of descriptors while
//!   `/healthz` is asked.
//! - On shutdown (Ctrl-C or SIGTERM) the listener closes, connections with no
//!   request in flight (idle, or in the middle of sending a head) are closed
//!   at once, and those with one finish it, for at most
//!   [`ServeConfig::shutdown_grace`].
//!
//! Request bodies are read by the handlers, which bound their rate
//! (`POST /events`, see `routes`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::guard::AllowedHosts;

/// How the server treats its connections.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Time allowed for a request's head, counted from when the connection is
    /// ready for one (opened, or done with the previous response).
    pub header_read_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// `--allowed-host`: more names the `Host` header may give.
    pub allowed_hosts: Vec<String>,
}

/// The connections held at most, whatever the file limit allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Descriptors kept for the log, the rejects file and the like.
const RESERVED_FDS: usize = 64;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            max_connections: default_max_connections(),
            shutdown_grace: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or fewer when the soft limit of open files
/// would not hold that many (Linux: `/proc/self/limits`).
pub fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        });
    match limit {
        Some(files) => files
            .saturating_sub(RESERVED_FDS)
            .clamp(16, DEFAULT_MAX_CONNECTIONS),
        None => 1024,
    }
}

/// One held connection, as the accept loop sees it.
struct Conn {
    /// Requests whose response is not yet fully written.
    in_flight: AtomicUsize,
    /// Set once the connection was asked to close.
    closing: AtomicBool,
    close: Notify,
}

impl Conn {
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }
}

#[derive(Default)]
struct Registry {
    /// By age: the smallest id is the oldest.
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    /// Makes room for one more connection: true when there was room, or an
    /// idle connection was asked to close.
    fn make_room(&self, max: usize) -> bool {
        let Ok(conns) = self.conns.lock() else {
            return false;
        };
        let open = conns
            .values()
            .filter(|c| !c.closing.load(Ordering::SeqCst))
            .count();
        if open < max {
            return true;
        }
        let idle = conns
            .values()
            .find(|c| !c.closing.load(Ordering::SeqCst) && c.idle());
        match idle {
            Some(conn) => {
                conn.closing.store(true, Ordering::SeqCst);
                conn.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn insert(&self, id: u64) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        });
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, Arc::clone(&conn));
        }
        conn
    }

    fn remove(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    fn len(&self) -> usize {
        self.conns.lock().map_or(0, |conns| conns.len())
    }
}

/// Counts a request in flight from the moment its head is parsed until its
/// response body is dropped (written, or abandoned).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(conn: &Arc<Conn>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(conn))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the newcomer gets when every held connection is busy.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 95\r\n\r\n{\"error\":\"unavailable\",\"message\":\"the server holds as many connections as it may; retry shortly\"}";

/// Refused connections being told so at once; more are closed unanswered.
const MAX_REFUSALS: usize = 64;

/// Answers a 503 to a connection over the limit and closes it. What the
/// client sent is read (for at most a second) first: closing a socket with
/// unread bytes resets it, and the client would see a reset, not the 503.
fn refuse(stream: TcpStream, refusals: &Arc<tokio::sync::Semaphore>) {
    let Ok(permit) = Arc::clone(refusals).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _permit = permit;
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(BUSY_RESPONSE).await;
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let mut read = 0usize;
            while read < 1 << 20 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        })
        .await;
    });
}

/// Serves `app` on `listener` until `shutdown` completes, then closes the
/// idle connections and lets requests in flight finish (within the grace).
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let registry = Arc::new(Registry::default());
    let (stop_sender, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of descriptors (EMFILE) or a connection reset before
                // it was accepted: wait a moment rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !registry.make_room(config.max_connections) {
            refuse(stream, &refusals);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = registry.insert(next_id);
        tasks.spawn(connection(
            stream,
            next_id,
            conn,
            Arc::clone(&registry),
            app.clone(),
            Arc::clone(&builder),
            stop.clone(),
        ));
    }
    drop(listener);
    let _ = stop_sender.send(true);
    let open = registry.len();
    if open > 0 {
        tracing::info!(connections = open, "closing connections");
    }
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = registry.len(),
            grace_seconds = config.shutdown_grace.as_secs(),
            "requests still in flight after the shutdown grace were cut off"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    app: Router,
    builder: Arc<http1::Builder>,
    mut stop: watch::Receiver<bool>,
) {
    let tracked = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = InFlight::start(&tracked);
        let app = app.clone();
        async move {
            let response = tower::ServiceExt::oneshot(app, request.map(Body::new)).await?;
            // The count drops with the body: once hyper has written it.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    });
    let serving = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(serving);
    let mut draining = *stop.borrow();
    if draining {
        serving.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = serving.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = conn.close.notified() => {
                if conn.idle() {
                    break;
                }
                // A request started meanwhile: finish it, then close.
                serving.as_mut().graceful_shutdown();
            }
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_err() || conn.idle() {
                    break;
                }
                serving.as_mut().graceful_shutdown();
            }
        }
    }
    registry.remove(id);
}

/// The host check for a listener bound to `bound`.
pub fn allowed_hosts(bound: SocketAddr, config: &ServeConfig, has_tokens: bool) -> AllowedHosts {
    AllowedHosts::new(bound, &config.allowed_hosts, has_tokens)
}
