//! A node: `penalty cluster node --cluster nats://… --node N --db DIR`.
//!
//! - It heartbeats on `penalty.hb.<node>` (core NATS, every second) and
//!   computes, every second, the owner of each partition by rendezvous over
//!   the nodes heard within [`NODE_TTL`]. (A heartbeat bucket in JetStream
//!   was the first design: listing its keys creates a consumer each time,
//!   and after a NATS server died those creations timed out for minutes on
//!   nats-server 2.9.)
//! - For each partition it owns it runs three workers (one per stage). A
//!   worker reads its partition's subject through an ordered consumer,
//!   checked by direct gets (see `Reader`), from the message after its
//!   checkpoint's sequence, hands each message to its stage and sends
//!   its outputs through an [`setup::Outbox`] (asynchronous, many
//!   acknowledgements in flight, one at a time per subject); once they are
//!   all acknowledged it writes the state and its sequence together to
//!   `DIR/<stage>-<p>.ckpt`, at least every second while busy. On any error
//!   it reloads its checkpoint and replays: outputs already published are
//!   dropped by their receivers (see [`crate::wire::Origin`]).
//! - It answers queries for the partitions it hosts on NATS
//!   (`penalty.q.<kind>.<p>`), and serves HTTP (`/shops/{id}`,
//!   `/orders/{id}`, `/status`) by asking the owner over NATS: any node
//!   answers any shop or order.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::DirectGetErrorKind;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::StreamExt;
use penalty_core::Policy;
use penalty_server::error::ApiError;
use penalty_server::state::{IngestSummary, RejectedLine};
use penalty_server::{Access, Tokens};
use serde::{Deserialize, Serialize};

use crate::partition::owner;
use crate::setup::{self, read_config, ClusterConfig};
use crate::stages::{IdStage, OrderStage, ShopStage};
use crate::wire::{InMsg, OrdMsg, ShopMsg, Stage, HEARTBEAT_SUBJECTS};
use crate::ClusterError;

/// How long an idle worker without a consumer waits, at first, for a
/// wake-up before it asks its partition again; the wait doubles while
/// nothing comes, up to [`IDLE_POLL_MAX`].
const IDLE_POLL_MIN: Duration = Duration::from_millis(1);

/// The longest an idle worker waits before asking its partition again by a
/// direct get, should its consumer stall or a wake-up be lost.
const IDLE_POLL_MAX: Duration = Duration::from_millis(500);

/// How long a busy worker waits for its consumer's next message before it
/// asks the stream directly.
const CONSUMER_PATIENCE: Duration = Duration::from_millis(50);

/// Messages found by direct gets in a row while the consumer delivered
/// none after them: the consumer is taken to be stalled and dropped.
const CONSUMER_OVERTAKEN: u32 = 50;

/// How long a worker waits for its consumer to be created.
const CONSUMER_OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a worker reads by direct gets before it tries a consumer again.
const CONSUMER_RETRY: Duration = Duration::from_secs(30);

/// How long a node stays live without a heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(6);

/// How a node is started.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The NATS servers (comma-separated `nats://host:port`).
    pub nats: String,
    /// This node's name: unique in the cluster, stable across restarts.
    pub node: String,
    /// Its local directory (checkpoints).
    pub db: PathBuf,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// The policy: must be the cluster's.
    pub policy: Policy,
    /// The tokens file (`--tokens`), as `penalty serve` takes it: without
    /// one the node listens on loopback only and every caller is an
    /// operator.
    pub tokens: Option<PathBuf>,
    /// `--allowed-host`, as `penalty serve` takes it.
    pub allowed_hosts: Vec<String>,
    /// `--max-replay-events`: the most events a `known_at` question replays
    /// from a partition's stream (see [`crate::replay`]).
    pub max_replay_events: u64,
}

/// The state of one stage of one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum StageState {
    Ids(IdStage),
    Orders(OrderStage),
    Shops(Box<ShopStage>),
}

/// What a checkpoint file holds: the state and the stream sequence it
/// reflects, written together.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    seq: u64,
    state: StageState,
}

/// A worker's state, shared with the query responder.
pub(crate) struct Hosted {
    pub(crate) state: Mutex<StageState>,
    applied_seq: AtomicU64,
    pub(crate) caught_up: AtomicBool,
    /// The stream sequence of the last checkpoint written or loaded.
    checkpointed_seq: AtomicU64,
    /// When that checkpoint was written (ms since the epoch; 0: none yet).
    checkpointed_at_ms: AtomicU64,
}

/// Each hosted stage partition, with its worker.
type HostedMap = BTreeMap<(Stage, u32), (Arc<Hosted>, tokio::task::JoinHandle<()>)>;

pub(crate) struct Node {
    pub(crate) options: NodeOptions,
    pub(crate) config: ClusterConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) hosted: Mutex<HostedMap>,
    /// Who may read what (`--tokens`), by penalty-server's one rule.
    tokens: Option<Tokens>,
    live: Mutex<Vec<String>>,
    heard: Mutex<HashMap<String, std::time::Instant>>,
    /// The one-machine server's limits: of an upload (`POST /events`), of
    /// a timeline (`GET /orders/{id}/events`).
    pub(crate) limits: penalty_server::Limits,
    /// Its upload slots.
    uploads: Arc<tokio::sync::Semaphore>,
    /// `<db>/rejects.jsonl`, as on one machine; one upload writes at a time.
    rejects: Arc<tokio::sync::Mutex<Option<penalty_store::ingest::RejectsFile>>>,
    /// Set when the node stops: each worker then checkpoints what it has
    /// applied and ends.
    stop: tokio::sync::watch::Sender<bool>,
    /// The `known_at` replays kept, and their cost.
    pub(crate) replays: crate::replay::Replays,
}

/// How long the workers have, once the HTTP requests in flight are done, to
/// checkpoint what they applied and end; a worker still busy then is
/// aborted (its partition is replayed from its last checkpoint by the next
/// owner, which is correct, only slower).
pub const WORKER_STOP_GRACE: Duration = Duration::from_secs(5);

/// The payload of a node's last heartbeat: the others drop it from the live
/// nodes at once instead of after [`NODE_TTL`], so its partitions move
/// within a second of a graceful stop.
const LEAVING: &[u8] = b"leaving";

/// A node, checked and connected: its exposure and tokens as `penalty
/// serve` checks them, the cluster's settings read, its policy and name
/// checked.
pub(crate) async fn start(options: NodeOptions) -> Result<Arc<Node>, ClusterError> {
    // As `penalty serve`: refused before anything else is done.
    let refused = |error: penalty_server::ServerError| ClusterError::Config(error.to_string());
    penalty_server::check_exposure(options.addr, options.tokens.is_some()).map_err(refused)?;
    let tokens = options
        .tokens
        .as_deref()
        .map(Tokens::load)
        .transpose()
        .map_err(|error| refused(error.into()))?;
    std::fs::create_dir_all(&options.db).map_err(|source| ClusterError::Io {
        context: format!("creating {}", options.db.display()),
        source,
    })?;
    let client = setup::connect(&options.nats).await?;
    let js = setup::jetstream(client.clone());
    // Right after a NATS server dies, reads can time out for a while: a
    // node starting then waits for the settings rather than giving up.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let config = loop {
        match read_config(&js).await {
            Ok(config) => break config,
            Err(error) if std::time::Instant::now() < deadline => {
                tracing::warn!(%error, "reading the cluster's settings; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let policy_json =
        serde_json::to_string(&options.policy).map_err(|e| ClusterError::Decode(e.to_string()))?;
    if policy_json != config.policy_json {
        return Err(ClusterError::Config(
            "this node's policy differs from the cluster's (given to `penalty cluster init`); \
             start it with the same --policy"
                .into(),
        ));
    }
    if options.node.is_empty()
        || !options
            .node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ClusterError::Config(format!(
            "--node `{}` is not a valid name; use letters, digits, `-` and `_`",
            options.node
        )));
    }
    let node = Arc::new(Node {
        options,
        config,
        client,
        js,
        hosted: Mutex::new(BTreeMap::new()),
        tokens,
        live: Mutex::new(Vec::new()),
        heard: Mutex::new(HashMap::new()),
        uploads: Arc::new(tokio::sync::Semaphore::new(
            penalty_server::Limits::default().max_concurrent_uploads,
        )),
        limits: penalty_server::Limits::default(),
        rejects: Arc::new(tokio::sync::Mutex::new(None)),
        stop: tokio::sync::watch::Sender::new(false),
        replays: crate::replay::Replays::default(),
    });

    Ok(node)
}

/// Serves `routes` (the route table, [`crate::serve`]) and runs the node
/// until `shutdown` completes (Ctrl-C or SIGTERM in the CLI), then stops it
/// gracefully: no new connection is accepted, the requests in flight finish
/// (for at most penalty-server's shutdown grace, 10 s, as `penalty serve`),
/// the workers write their checkpoints and end (for at most
/// [`WORKER_STOP_GRACE`]), and the node tells the others it leaves. The
/// node keeps heartbeating and answering other nodes' questions while its
/// own requests finish, since they may need them.
pub(crate) async fn serve(
    node: Arc<Node>,
    routes: Router<Arc<Node>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    let listener = tokio::net::TcpListener::bind(node.options.addr)
        .await
        .map_err(|source| ClusterError::Io {
            context: format!("listening on {}", node.options.addr),
            source,
        })?;
    let app = routes
        // The one-machine server's guards: no POST from another origin,
        // only a JSON Lines or JSON body type, no other `Host` (DNS
        // rebinding); and its accept loop: header and idle timeouts, a
        // connection limit.
        .route_layer(axum::middleware::from_fn(
            penalty_server::guard::same_origin,
        ))
        .with_state(node.clone());
    let serve = penalty_server::ServeConfig {
        allowed_hosts: node.options.allowed_hosts.clone(),
        ..penalty_server::ServeConfig::default()
    };
    let bound = listener.local_addr().map_err(|source| ClusterError::Io {
        context: format!("listening on {}", node.options.addr),
        source,
    })?;
    let hosts = Arc::new(penalty_server::listen::allowed_hosts(
        bound,
        &serve,
        node.tokens.is_some(),
    ));
    let app = app.layer(axum::middleware::from_fn_with_state(
        hosts,
        penalty_server::guard::check_host,
    ));
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut http = tokio::spawn(async move {
        let stopped = async {
            let _ = http_stopped.await;
        };
        penalty_server::listen::serve_connections(listener, app, serve, stopped).await
    });
    tokio::spawn(respond(node.clone()));
    tokio::spawn(respond_status(node.clone()));
    tokio::spawn(listen_heartbeats(node.clone()));

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stop_http = Some(stop_http);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown, if stop_http.is_some() => {
                tracing::info!("stopping: no new requests; those in flight may finish");
                if let Some(stop) = stop_http.take() {
                    let _ = stop.send(());
                }
                continue;
            }
            // The HTTP server ends once its requests in flight are done
            // (or its grace ran out) after the stop; before, only if it
            // failed, which stops the node too.
            served = &mut http => {
                let failed = match served {
                    Ok(Ok(())) => None,
                    Ok(Err(source)) => Some(source),
                    Err(error) => Some(std::io::Error::other(error.to_string())),
                };
                if let Some(source) = failed {
                    stop_workers(&node).await;
                    return Err(ClusterError::Io {
                        context: format!("serving HTTP on {}", node.options.addr),
                        source,
                    });
                }
                break;
            }
        }
        let beat = format!("penalty.hb.{}", node.options.node);
        if let Err(error) = node
            .client
            .publish(beat, node.options.addr.to_string().into_bytes().into())
            .await
        {
            tracing::warn!(%error, "heartbeat failed");
        }
        let mut live: Vec<String> = lock(&node.heard)
            .iter()
            .filter(|(_, at)| at.elapsed() < NODE_TTL)
            .map(|(name, _)| name.clone())
            .collect();
        if !live.contains(&node.options.node) {
            live.push(node.options.node.clone());
        }
        live.sort();
        rebalance(&node, &live);
        *lock(&node.live) = live;
    }
    stop_workers(&node).await;
    // The others take this node's partitions now rather than after NODE_TTL.
    let beat = format!("penalty.hb.{}", node.options.node);
    if let Err(error) = node.client.publish(beat, LEAVING.into()).await {
        tracing::warn!(%error, "telling the other nodes this one leaves");
    }
    let _ = node.client.flush().await;
    tracing::info!("stopped");
    Ok(())
}

/// Asks every worker to checkpoint what it applied and end; waits for them
/// for at most [`WORKER_STOP_GRACE`], then aborts those still running.
async fn stop_workers(node: &Node) {
    node.stop.send_replace(true);
    let workers: Vec<((Stage, u32), tokio::task::JoinHandle<()>)> =
        std::mem::take(&mut *lock(&node.hosted))
            .into_iter()
            .map(|(key, (_, task))| (key, task))
            .collect();
    let deadline = tokio::time::Instant::now() + WORKER_STOP_GRACE;
    for ((stage, p), mut task) in workers {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            tracing::warn!(
                stage = stage.name(),
                partition = p,
                "a worker did not stop in time: aborted (its next owner replays from its checkpoint)"
            );
            task.abort();
        }
    }
}

async fn listen_heartbeats(node: Arc<Node>) {
    let mut subscription = match node.client.subscribe(HEARTBEAT_SUBJECTS).await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::error!(%error, "cannot hear other nodes");
            return;
        }
    };
    while let Some(message) = subscription.next().await {
        if let Some(name) = message.subject.as_str().strip_prefix("penalty.hb.") {
            if message.payload.as_ref() == LEAVING {
                lock(&node.heard).remove(name);
            } else {
                lock(&node.heard).insert(name.to_string(), std::time::Instant::now());
            }
        }
    }
}

/// The nodes heard within [`NODE_TTL`], listening for that long.
async fn hear_nodes(client: &async_nats::Client) -> Result<Vec<String>, ClusterError> {
    let mut subscription = client
        .subscribe(HEARTBEAT_SUBJECTS)
        .await
        .map_err(|e| ClusterError::nats("listening for heartbeats", e))?;
    let mut live = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, subscription.next()).await {
        if let Some(name) = message.subject.as_str().strip_prefix("penalty.hb.") {
            if message.payload.as_ref() == LEAVING {
                live.remove(name);
            } else {
                live.insert(name.to_string());
            }
        }
    }
    Ok(live.into_iter().collect())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the workers of the partitions this node now owns, stops the
/// others'.
fn rebalance(node: &Arc<Node>, live: &[String]) {
    let mut hosted = lock(&node.hosted);
    for p in 0..node.config.partitions {
        let mine = owner(p, live) == Some(node.options.node.as_str());
        for stage in Stage::ALL {
            let key = (stage, p);
            if mine && !hosted.contains_key(&key) {
                let shared = Arc::new(Hosted {
                    state: Mutex::new(empty_state(stage, &node.options.policy)),
                    applied_seq: AtomicU64::new(0),
                    caught_up: AtomicBool::new(false),
                    checkpointed_seq: AtomicU64::new(0),
                    checkpointed_at_ms: AtomicU64::new(0),
                });
                let task = tokio::spawn(worker(node.clone(), stage, p, shared.clone()));
                hosted.insert(key, (shared, task));
            } else if !mine {
                if let Some((_, task)) = hosted.remove(&key) {
                    task.abort();
                }
            }
        }
    }
}

fn empty_state(stage: Stage, policy: &Policy) -> StageState {
    match stage {
        Stage::Ids => StageState::Ids(IdStage::default()),
        Stage::Orders => StageState::Orders(OrderStage::default()),
        Stage::Shops => StageState::Shops(Box::new(ShopStage::new(policy.clone()))),
    }
}

fn unix_ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wall clock in ms since the epoch, read where the project reads it.
fn now_ms() -> u64 {
    u64::try_from(penalty_store::clock::now().0 / 1_000_000).unwrap_or(0)
}

fn checkpoint_path(db: &Path, stage: Stage, p: u32) -> PathBuf {
    db.join(format!("{}-{p:04}.ckpt", stage.name()))
}

fn load_checkpoint(
    path: &Path,
    stage: Stage,
    policy: &Policy,
) -> Result<(u64, StageState), ClusterError> {
    match std::fs::read(path) {
        Ok(bytes) => match bincode::deserialize::<Checkpoint>(&bytes) {
            Ok(checkpoint) => Ok((checkpoint.seq, checkpoint.state)),
            // The stream holds everything: a damaged checkpoint costs a
            // rebuild from its first message, never a wrong state.
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "damaged checkpoint: rebuilding the partition from the stream");
                Ok((0, empty_state(stage, policy)))
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok((0, empty_state(stage, policy)))
        }
        Err(source) => Err(ClusterError::Io {
            context: format!("reading {}", path.display()),
            source,
        }),
    }
}

/// Writes the state with its sequence: a new file, synced, renamed over the
/// old one, so that a crash leaves one or the other whole.
fn save_checkpoint(path: &Path, seq: u64, hosted: &Hosted) -> Result<(), ClusterError> {
    let bytes = {
        let state = lock(&hosted.state);
        #[derive(Serialize)]
        struct CheckpointRef<'a> {
            seq: u64,
            state: &'a StageState,
        }
        bincode::serialize(&CheckpointRef { seq, state: &state })
            .map_err(|e| ClusterError::Decode(e.to_string()))?
    };
    let io = |source| ClusterError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    // A name of its own: a worker aborted by a hand-over and its successor
    // may briefly both write this partition's checkpoint.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "ckpt.tmp{}",
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    hosted.checkpointed_seq.store(seq, Ordering::SeqCst);
    hosted.checkpointed_at_ms.store(now_ms(), Ordering::SeqCst);
    Ok(())
}

/// Runs a stage partition until the node stops.
async fn worker(node: Arc<Node>, stage: Stage, p: u32, hosted: Arc<Hosted>) {
    loop {
        match consume(&node, stage, p, &hosted).await {
            Ok(()) => return,
            Err(_) if *node.stop.borrow() => return,
            Err(error) => {
                tracing::warn!(%error, stage = stage.name(), partition = p, "worker restarting from its checkpoint");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Applies the partition's messages from its checkpoint on; returns once
/// the node stops, with every output acknowledged and the state
/// checkpointed at the last message applied.
async fn consume(node: &Node, stage: Stage, p: u32, hosted: &Hosted) -> Result<(), ClusterError> {
    let path = checkpoint_path(&node.options.db, stage, p);
    let (mut last_seq, state) = load_checkpoint(&path, stage, &node.options.policy)?;
    let written_at = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_or(0, unix_ms);
    hosted.checkpointed_seq.store(last_seq, Ordering::SeqCst);
    hosted
        .checkpointed_at_ms
        .store(if last_seq == 0 { 0 } else { written_at }, Ordering::SeqCst);
    *lock(&hosted.state) = state;
    hosted.applied_seq.store(last_seq, Ordering::SeqCst);
    hosted.caught_up.store(false, Ordering::SeqCst);
    let stream = node
        .js
        .get_stream(stage.stream())
        .await
        .map_err(|e| ClusterError::nats("opening a stream", e))?;
    let subject = stage.subject(p);
    let partitions = node.config.partitions;
    // Outputs go out asynchronously, many in flight; the state and its
    // sequence are written only once every output of the messages it
    // reflects is acknowledged, so a replay from a checkpoint never skips
    // an output that did not land.
    let mut outbox = setup::Outbox::new(node.js.clone());
    let mut reader = Reader::open(node, stream, subject, last_seq + 1).await;
    let mut unsaved = 0u64;
    let mut saved_at = std::time::Instant::now();
    loop {
        if *node.stop.borrow() {
            // A graceful stop: what was applied is kept, so that this node's
            // restart (or the partition's next owner, reading the same
            // directory) replays nothing.
            outbox.flush().await?;
            hosted.applied_seq.store(last_seq, Ordering::SeqCst);
            if unsaved > 0 {
                save_checkpoint(&path, last_seq, hosted)?;
            }
            return Ok(());
        }
        if unsaved > 0 && (unsaved >= 5000 || saved_at.elapsed() >= Duration::from_secs(1)) {
            outbox.flush().await?;
            hosted.applied_seq.store(last_seq, Ordering::SeqCst);
            save_checkpoint(&path, last_seq, hosted)?;
            unsaved = 0;
            saved_at = std::time::Instant::now();
            reader.drain_wake_ups();
        }
        let Some(message) = reader.next(last_seq).await? else {
            outbox.flush().await?;
            hosted.applied_seq.store(last_seq, Ordering::SeqCst);
            hosted.caught_up.store(true, Ordering::SeqCst);
            if unsaved > 0 {
                save_checkpoint(&path, last_seq, hosted)?;
                unsaved = 0;
                saved_at = std::time::Instant::now();
            }
            reader.idle(last_seq).await?;
            continue;
        };
        let (seq, stored_at_ns) = (message.seq, message.stored_at_ns);
        let outputs = {
            let mut state = lock(&hosted.state);
            let decode = |e: serde_json::Error| {
                ClusterError::Decode(format!("{} seq {seq}: {e}", stage.stream()))
            };
            match &mut *state {
                StageState::Ids(ids) => {
                    let msg: InMsg = serde_json::from_slice(&message.payload).map_err(decode)?;
                    ids.handle(partitions, p, seq, stored_at_ns, msg)
                }
                StageState::Orders(orders) => {
                    let msg: OrdMsg = serde_json::from_slice(&message.payload).map_err(decode)?;
                    orders.handle(partitions, p, seq, msg)
                }
                StageState::Shops(shops) => {
                    let msg: ShopMsg = serde_json::from_slice(&message.payload).map_err(decode)?;
                    shops.handle(seq, msg);
                    Vec::new()
                }
            }
        };
        for out in outputs {
            outbox.send(out.subject, &out.msg_id, out.payload).await?;
        }
        last_seq = seq;
        if outbox.in_flight() == 0 {
            hosted.applied_seq.store(seq, Ordering::SeqCst);
        }
        unsaved += 1;
    }
}

/// A message of a partition's subject.
struct Read {
    seq: u64,
    /// When JetStream stored it: the same whichever way it is read.
    stored_at_ns: i64,
    payload: bytes::Bytes,
}

/// How a worker reads its partition's subject, in stream order, from its
/// checkpoint's sequence + 1.
///
/// Mostly through an ordered pull consumer (ephemeral, in the servers'
/// memory, no acknowledgements), which sends messages in batches: no round
/// trip a message. But on nats-server 2.9, creating consumers timed out for
/// minutes after one of three servers was killed, and an ordered consumer
/// that loses its server recreates itself out of sight; so the stream stays
/// the judge. Whenever the consumer is silent for [`CONSUMER_PATIENCE`]
/// the worker asks the stream directly ("the next message of this subject
/// after the last one applied": any replica answers, holding a prefix of
/// the stream, so its answer is right or "none yet"). A consumer that keeps
/// being overtaken so is dropped, and one that cannot be created is
/// replaced by direct gets, with a core subscription to the subject to
/// wake the worker when something is published, until a consumer can be
/// created again. Either way a message is applied only when its sequence
/// follows the last applied, so the two readers never apply one twice.
struct Reader {
    stream: jetstream::stream::Stream,
    subject: String,
    client: async_nats::Client,
    consumer: Option<jetstream::consumer::pull::Ordered>,
    /// When a consumer was last asked for.
    tried_at: std::time::Instant,
    /// Messages found by direct get in a row while a consumer was open.
    overtaken: u32,
    wake_ups: Option<async_nats::Subscriber>,
    idle_wait: Duration,
}

impl Reader {
    async fn open(
        node: &Node,
        stream: jetstream::stream::Stream,
        subject: String,
        from: u64,
    ) -> Reader {
        let mut reader = Reader {
            stream,
            subject,
            client: node.client.clone(),
            consumer: None,
            tried_at: std::time::Instant::now(),
            overtaken: 0,
            wake_ups: None,
            idle_wait: IDLE_POLL_MIN,
        };
        reader.open_consumer(from).await;
        reader
    }

    /// Asks for an ordered consumer from sequence `from`; without one, the
    /// worker reads by direct gets.
    async fn open_consumer(&mut self, from: u64) {
        self.tried_at = std::time::Instant::now();
        let config = jetstream::consumer::pull::OrderedConfig {
            filter_subject: self.subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let opened = tokio::time::timeout(CONSUMER_OPEN_TIMEOUT, async {
            let consumer = self
                .stream
                .create_consumer(config)
                .await
                .map_err(|e| e.to_string())?;
            consumer.messages().await.map_err(|e| e.to_string())
        })
        .await;
        match opened {
            Ok(Ok(messages)) => {
                self.consumer = Some(messages);
                self.overtaken = 0;
                // The consumer brings what is published.
                self.wake_ups = None;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, subject = %self.subject, "no consumer: reading by direct gets");
            }
            Err(_) => {
                tracing::warn!(subject = %self.subject, "no consumer in time: reading by direct gets");
            }
        }
    }

    /// The message after `last_seq` on the subject, or `None` when the
    /// stream has none yet.
    async fn next(&mut self, last_seq: u64) -> Result<Option<Read>, ClusterError> {
        if let Some(messages) = self.consumer.as_mut() {
            let patience = CONSUMER_PATIENCE.max(self.idle_wait);
            loop {
                match tokio::time::timeout(patience, messages.next()).await {
                    Ok(Some(Ok(message))) => {
                        let Ok(info) = message.info() else {
                            tracing::warn!(subject = %self.subject, "a consumer's message without its sequence: dropping the consumer");
                            self.consumer = None;
                            break;
                        };
                        if info.stream_sequence <= last_seq {
                            continue;
                        }
                        let read = Read {
                            seq: info.stream_sequence,
                            stored_at_ns: i64::try_from(info.published.unix_timestamp_nanos())
                                .unwrap_or(0),
                            payload: message.message.payload.clone(),
                        };
                        self.overtaken = 0;
                        self.idle_wait = IDLE_POLL_MIN;
                        return Ok(Some(read));
                    }
                    Ok(Some(Err(error))) => {
                        tracing::warn!(%error, subject = %self.subject, "the consumer failed: reading by direct gets");
                        self.consumer = None;
                        break;
                    }
                    Ok(None) => {
                        self.consumer = None;
                        break;
                    }
                    // Silent: the stream is asked.
                    Err(_) => break,
                }
            }
        }
        match self
            .stream
            .direct_get_next_for_subject(self.subject.clone(), Some(last_seq + 1))
            .await
        {
            Ok(message) => {
                if self.consumer.is_some() {
                    self.overtaken += 1;
                    if self.overtaken >= CONSUMER_OVERTAKEN {
                        tracing::warn!(subject = %self.subject, "the consumer stalled: reading by direct gets");
                        self.consumer = None;
                    }
                }
                self.idle_wait = IDLE_POLL_MIN;
                Ok(Some(Read {
                    seq: message.sequence,
                    stored_at_ns: i64::try_from(message.time.unix_timestamp_nanos()).unwrap_or(0),
                    payload: message.payload,
                }))
            }
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(error) => Err(ClusterError::nats("reading the stream", error)),
        }
    }

    /// Waits, when the stream has nothing after `last_seq`, until something
    /// may have come: with a consumer, the next [`Reader::next`] waits on it
    /// longer and longer (it delivers what is published); without one, a
    /// wake-up on the subject is awaited.
    async fn idle(&mut self, last_seq: u64) -> Result<(), ClusterError> {
        if self.consumer.is_some() {
            self.idle_wait = (self.idle_wait * 2).min(IDLE_POLL_MAX);
            return Ok(());
        }
        if self.tried_at.elapsed() >= CONSUMER_RETRY {
            self.open_consumer(last_seq + 1).await;
            if self.consumer.is_some() {
                return Ok(());
            }
        }
        let wake_ups = match &mut self.wake_ups {
            Some(wake_ups) => wake_ups,
            // Every publication on the subject also reaches this core
            // subscription (at most once, nothing created on the servers):
            // only a signal; what is applied comes from the stream.
            None => self.wake_ups.insert(
                self.client
                    .subscribe(self.subject.clone())
                    .await
                    .map_err(|e| ClusterError::nats("listening for wake-ups", e))?,
            ),
        };
        // A wake-up may come before the replica that answers the next
        // direct get holds its message, so after one the worker asks again
        // soon, then less and less often.
        match tokio::time::timeout(self.idle_wait, wake_ups.next()).await {
            Ok(Some(_)) => {
                self.drain_wake_ups();
                self.idle_wait = IDLE_POLL_MIN;
            }
            Ok(None) => {
                self.wake_ups = None;
                return Err(ClusterError::Nats("the wake-up subscription ended".into()));
            }
            Err(_) => self.idle_wait = (self.idle_wait * 2).min(IDLE_POLL_MAX),
        }
        Ok(())
    }

    /// Drops the wake-ups already received, without waiting: a busy worker
    /// reads their messages anyway, and they must not pile up.
    fn drain_wake_ups(&mut self) {
        use futures_util::FutureExt;
        if let Some(wake_ups) = &mut self.wake_ups {
            while let Some(Some(_)) = wake_ups.next().now_or_never() {}
        }
    }
}

/// A query over NATS, to the node hosting a partition.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QueryRequest {
    pub(crate) id: String,
    pub(crate) as_of_ns: i64,
}

/// Its answer: an HTTP status and a JSON body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QueryReply {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
}

/// Answers `penalty.q.<kind>.<p>` for the partitions hosted here and caught
/// up; others are left to their owner.
async fn respond(node: Arc<Node>) {
    let mut subscription = match node.client.subscribe("penalty.q.>").await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::error!(%error, "cannot answer queries");
            return;
        }
    };
    while let Some(message) = subscription.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let mut parts = message.subject.as_str().split('.').skip(2);
        let (Some(kind), Some(p)) = (
            parts.next(),
            parts.next().and_then(|p| p.parse::<u32>().ok()),
        ) else {
            continue;
        };
        let Ok(request) = serde_json::from_slice::<QueryRequest>(&message.payload) else {
            continue;
        };
        let stage = if kind == "ordshop" {
            Stage::Orders
        } else {
            Stage::Shops
        };
        let hosted = lock(&node.hosted).get(&(stage, p)).map(|(h, _)| h.clone());
        let Some(hosted) = hosted.filter(|h| h.caught_up.load(Ordering::SeqCst)) else {
            continue;
        };
        let reply = {
            let state = lock(&hosted.state);
            match (&*state, kind) {
                (StageState::Orders(orders), "ordshop") => QueryReply {
                    status: 200,
                    body: serde_json::json!({"shop_id": orders.shop_of(&request.id)}),
                },
                _ => continue,
            }
        };
        let bytes = serde_json::to_vec(&reply).unwrap_or_default();
        if let Err(error) = node.client.publish(reply_to, bytes.into()).await {
            tracing::warn!(%error, "answering a query");
        }
    }
}

pub(crate) async fn ask(node: &Node, subject: String, request: &QueryRequest) -> QueryReply {
    let payload = serde_json::to_vec(request).unwrap_or_default();
    let unavailable = |why: String| QueryReply {
        status: 503,
        body: serde_json::json!({"error": "unavailable", "message": why}),
    };
    match tokio::time::timeout(Duration::from_secs(5), node.client.request(subject.clone(), payload.into())).await {
        Ok(Ok(message)) => serde_json::from_slice(&message.payload)
            .unwrap_or_else(|e| unavailable(format!("the owner's answer could not be read: {e}"))),
        Ok(Err(error)) => unavailable(format!("no node answers for {subject} ({error}); try again shortly")),
        Err(_) => unavailable(format!("no node answered for {subject} within 5 s (the partition is moving or catching up); try again shortly")),
    }
}

pub(crate) fn into_response(reply: QueryReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(reply.body)).into_response()
}

/// The [`Access`] of a request to a node: penalty-server's one rule
/// ([`penalty_server::access::request_access`]) over the node's tokens; a
/// node has no dashboard, so no session.
pub(crate) struct Caller(pub(crate) Access);

impl FromRequestParts<Arc<Node>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Caller, ApiError> {
        penalty_server::access::request_access(node.tokens.as_ref(), &parts.headers, || None)
            .map(Caller)
    }
}

/// `POST /events` on any node: the one-machine server's upload (its body
/// limits, its answer), ingested into the cluster; a line is counted only
/// once it is in the replicated stream and decided.
pub(crate) async fn http_post_events(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Json<IngestSummary>, ApiError> {
    access.require_operator()?;
    let (_permit, body) =
        penalty_server::routes::receive_upload(&headers, body, &node.limits, || {
            node.uploads.clone().try_acquire_owned().ok()
        })
        .await?;
    let mut rejects_file = node.rejects.clone().lock_owned().await;
    if rejects_file.is_none() {
        let path = node.options.db.join(penalty_store::ingest::REJECTS_FILE);
        *rejects_file = Some(
            penalty_store::ingest::RejectsFile::open(&path, "POST /events")
                .map_err(|e| ApiError::IngestFailed(e.to_string()))?,
        );
    }
    let Some(file) = rejects_file.as_mut() else {
        return Err(ApiError::Internal("the rejects file is not open".into()));
    };
    let mut listed: Vec<RejectedLine> = Vec::new();
    let counts = crate::ingest::ingest(
        &node.client,
        &node.js,
        node.config.partitions,
        std::io::Cursor::new(body),
        |line, reason, raw| {
            listed.push(RejectedLine {
                line,
                reason: reason.code(),
                hint: reason.hint(),
            });
            file.write(line, reason, raw, raw.len() as u64)
                .map_err(|e| ClusterError::Io {
                    context: "writing the rejects file".into(),
                    source: std::io::Error::other(e.to_string()),
                })
        },
    )
    .await
    .map_err(|e| ApiError::IngestFailed(e.to_string()))?;
    file.sync()
        .map_err(|e| ApiError::IngestFailed(e.to_string()))?;
    // One machine lists the first rejected lines in line order; the
    // cluster learns some of them (its decisions) batch by batch.
    listed.sort_by_key(|r| r.line);
    let rejects_truncated = listed.len() > node.limits.max_rejects_listed;
    listed.truncate(node.limits.max_rejects_listed);
    Ok(Json(IngestSummary {
        read: counts.read,
        appended: counts.appended,
        duplicates: counts.duplicates,
        rejected: counts.rejected,
        rejects: listed,
        rejects_truncated,
    }))
}

/// What `/status` and `penalty cluster status` show of a node.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// The live nodes it sees.
    pub live: Vec<String>,
    /// P.
    pub partitions: u32,
    /// Each hosted stage partition.
    pub hosted: Vec<HostedStatus>,
}

/// One hosted stage partition.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostedStatus {
    /// `ids`, `orders` or `shops`.
    pub stage: String,
    /// The partition.
    pub partition: u32,
    /// The last stream sequence applied (its outputs acknowledged).
    pub applied_seq: u64,
    /// The stream sequence of the last checkpoint.
    pub checkpointed_seq: u64,
    /// Seconds since that checkpoint was written (absent: none yet).
    pub checkpoint_age_s: Option<f64>,
    /// The stream's last sequence on the partition's subject (absent when
    /// the stream did not answer).
    pub last_seq: Option<u64>,
    /// The consumer lag: `last_seq - checkpointed_seq` (0 when the
    /// checkpoint covers the subject's last message), in stream sequence
    /// numbers: what a restart from the checkpoint would replay.
    pub lag: Option<u64>,
    /// Whether it had read all its stream when last asked.
    pub caught_up: bool,
}

/// `/status`: operator-only, as one machine's `/metrics`.
pub(crate) async fn http_status(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
) -> Result<Response, ApiError> {
    access.require_operator()?;
    Ok(axum::Json(node_status(&node).await).into_response())
}

/// `/metrics`: per hosted stage partition, the consumer lag, the applied
/// and checkpointed sequences and the checkpoint's age, in Prometheus's
/// text format (the same figures as `/status` and `penalty cluster status`).
pub(crate) async fn http_metrics(
    State(node): State<Arc<Node>>,
    Caller(access): Caller,
) -> Result<Response, ApiError> {
    access.require_operator()?;
    let status = node_status(&node).await;
    let mut text = render_metrics(&status);
    let replays = &node.replays;
    for (name, help, value) in [
        (
            "penalty_known_at_replays_total",
            "known_at replays started from a partition's first message (a kept replay asked again is not counted).",
            &replays.started,
        ),
        (
            "penalty_known_at_replayed_messages_total",
            "Messages of shop streams read by known_at replays.",
            &replays.messages_read,
        ),
    ] {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The Prometheus text of a node's status.
pub fn render_metrics(status: &NodeStatus) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let owned: std::collections::BTreeSet<u32> =
        status.hosted.iter().map(|h| h.partition).collect();
    let _ = writeln!(
        text,
        "# HELP penalty_owned_partitions Partitions this node owns (all three stages of each).\n\
         # TYPE penalty_owned_partitions gauge\npenalty_owned_partitions{{node=\"{}\"}} {}",
        status.node,
        owned.len()
    );
    /// A gauge: its name, its help, and its value for one partition.
    type Gauge = (&'static str, &'static str, fn(&HostedStatus) -> Option<f64>);
    let gauges: [Gauge; 5] = [
        (
            "penalty_partition_lag",
            "Stream last sequence on the partition's subject minus the checkpointed sequence.",
            |h| h.lag.map(|v| v as f64),
        ),
        (
            "penalty_partition_checkpoint_age_seconds",
            "Seconds since the partition's checkpoint was written.",
            |h| h.checkpoint_age_s,
        ),
        (
            "penalty_partition_applied_seq",
            "The last stream sequence applied, its outputs acknowledged.",
            |h| Some(h.applied_seq as f64),
        ),
        (
            "penalty_partition_checkpointed_seq",
            "The stream sequence of the partition's last checkpoint.",
            |h| Some(h.checkpointed_seq as f64),
        ),
        (
            "penalty_partition_last_seq",
            "The stream's last sequence on the partition's subject.",
            |h| h.last_seq.map(|v| v as f64),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for h in &status.hosted {
            if let Some(v) = value(h) {
                let _ = writeln!(
                    text,
                    "{name}{{stage=\"{}\",partition=\"{}\"}} {v}",
                    h.stage, h.partition
                );
            }
        }
    }
    text
}

async fn node_status(node: &Node) -> NodeStatus {
    let live = lock(&node.live).clone();
    let hosted: Vec<((Stage, u32), Arc<Hosted>)> = lock(&node.hosted)
        .iter()
        .map(|(key, (h, _))| (*key, h.clone()))
        .collect();
    let now_ms = now_ms();
    let mut rows = Vec::with_capacity(hosted.len());
    let mut streams = HashMap::new();
    for ((stage, p), h) in hosted {
        if let std::collections::hash_map::Entry::Vacant(entry) = streams.entry(stage) {
            entry.insert(node.js.get_stream(stage.stream()).await.ok());
        }
        let last_seq = match streams.get(&stage).and_then(Option::as_ref) {
            Some(stream) => last_seq_of(stream, &stage.subject(p)).await,
            None => None,
        };
        let checkpointed_seq = h.checkpointed_seq.load(Ordering::SeqCst);
        let at = h.checkpointed_at_ms.load(Ordering::SeqCst);
        rows.push(HostedStatus {
            stage: stage.name().to_string(),
            partition: p,
            applied_seq: h.applied_seq.load(Ordering::SeqCst),
            checkpointed_seq,
            checkpoint_age_s: (at > 0).then(|| now_ms.saturating_sub(at) as f64 / 1000.0),
            last_seq,
            lag: last_seq.map(|last| last.saturating_sub(checkpointed_seq)),
            caught_up: h.caught_up.load(Ordering::SeqCst),
        });
    }
    NodeStatus {
        node: node.options.node.clone(),
        live,
        partitions: node.config.partitions,
        hosted: rows,
    }
}

/// The stream's last sequence on `subject`: 0 when it holds none, `None`
/// when the stream did not answer.
async fn last_seq_of(stream: &jetstream::stream::Stream, subject: &str) -> Option<u64> {
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => Some(message.sequence),
        Err(error)
            if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Some(0)
        }
        Err(_) => None,
    }
}

/// Answers `penalty.status.<node>` with [`NodeStatus`].
async fn respond_status(node: Arc<Node>) {
    let subject = format!("penalty.status.{}", node.options.node);
    let mut subscription = match node.client.subscribe(subject).await {
        Ok(subscription) => subscription,
        Err(error) => {
            tracing::error!(%error, "cannot answer status requests");
            return;
        }
    };
    while let Some(message) = subscription.next().await {
        if let Some(reply_to) = message.reply {
            // In chunks: a node hosting many partitions says more than one
            // NATS message holds.
            let bytes = serde_json::to_vec(&node_status(&node).await).unwrap_or_default();
            if let Err(error) = crate::chunks::send_chunks(&node.client, reply_to, &bytes).await {
                tracing::warn!(%error, "answering a status request");
            }
        }
    }
}

/// The cluster as `penalty cluster status` shows it (the CLI renders its
/// table).
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// P.
    pub partitions: u32,
    /// The live nodes (by heartbeat).
    pub live: Vec<String>,
    /// One row per stage and partition.
    pub rows: Vec<PartitionStatus>,
}

/// One stage partition.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// `ids`, `orders` or `shops`.
    pub stage: String,
    /// The partition.
    pub partition: u32,
    /// Its owner by rendezvous over the live nodes.
    pub owner: Option<String>,
    /// The owner's last applied stream sequence (absent if it did not
    /// answer).
    pub applied_seq: Option<u64>,
    /// The owner's last checkpointed stream sequence.
    pub checkpointed_seq: Option<u64>,
    /// The stream's last sequence on the partition's subject.
    pub last_seq: u64,
    /// `last_seq - checkpointed_seq`, as in the owner's `/metrics`.
    pub lag: Option<u64>,
    /// Seconds since the owner's checkpoint was written.
    pub checkpoint_age_s: Option<f64>,
}

/// Asks every live node for its status, and the streams for their last
/// sequence per partition.
pub async fn cluster_status(
    client: &async_nats::Client,
    js: &jetstream::Context,
) -> Result<ClusterStatus, ClusterError> {
    let config = read_config(js).await?;
    let live = hear_nodes(client).await?;
    let mut statuses = BTreeMap::new();
    for name in &live {
        let asked = tokio::time::timeout(
            Duration::from_secs(5),
            crate::chunks::request_chunks(
                client,
                format!("penalty.status.{name}"),
                Vec::new(),
                Duration::from_secs(5),
            ),
        )
        .await;
        if let Ok(Ok(bytes)) = asked {
            if let Ok(status) = serde_json::from_slice::<NodeStatus>(&bytes) {
                statuses.insert(name.clone(), status);
            }
        }
    }
    let mut rows = Vec::new();
    for stage in Stage::ALL {
        let stream = js
            .get_stream(stage.stream())
            .await
            .map_err(|e| ClusterError::nats("opening a stream", e))?;
        for p in 0..config.partitions {
            let owner = owner(p, &live).map(str::to_string);
            let last_seq = last_seq_of(&stream, &stage.subject(p)).await.unwrap_or(0);
            let hosted = owner.as_ref().and_then(|o| statuses.get(o)).and_then(|s| {
                s.hosted
                    .iter()
                    .find(|h| h.stage == stage.name() && h.partition == p)
            });
            rows.push(PartitionStatus {
                stage: stage.name().to_string(),
                partition: p,
                owner,
                applied_seq: hosted.map(|h| h.applied_seq),
                checkpointed_seq: hosted.map(|h| h.checkpointed_seq),
                last_seq,
                lag: hosted.map(|h| last_seq.saturating_sub(h.checkpointed_seq)),
                checkpoint_age_s: hosted.and_then(|h| h.checkpoint_age_s),
            });
        }
    }
    Ok(ClusterStatus {
        partitions: config.partitions,
        live,
        rows,
    })
}
