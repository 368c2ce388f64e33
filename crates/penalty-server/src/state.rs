//! The server's shared state: the one open log, the projection readers use,
//! and the machinery that lets ingest and readers run side by side.
//!
//! Concurrency, in one paragraph. The server is the single writer of its data
//! directory: it opens the [`EventLog`] once, which takes the directory lock.
//! Readers never touch the log; they read the [`Projection`] (the core's
//! `Ledger`) under the read side of an `RwLock`. An ingest appends blocks to
//! the log and, after each block is durable, folds its events into the
//! projection under the write side, held only for that one block, so readers
//! wait at most one block's fold (a few milliseconds) and are otherwise served
//! throughout an upload. Ingests run one at a time (an async mutex, fair), and
//! each takes the log's mutex per chunk of the body rather than for the whole
//! upload, so the few readers that need the log itself (`known_at` replays and
//! an order's stored events) get their turn between chunks. Every chunk of
//! every upload runs on the one ingest [`Pipeline`] the server keeps: its
//! threads are started once, not per chunk or per upload. A `known_at`
//! replay holds the log's mutex only to take its source (the blocks as they
//! are then), and folds with it released: an upload is not held up for the
//! length of a replay.
//!
//! All of that work is blocking (sled, the rules fold, report building), so it
//! runs on tokio's blocking pool (`spawn_blocking`), never on the reactor.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use penalty_core::labels::Lang;
use penalty_core::{Ledger, Policy, Reject, UnixNs};
use penalty_store::ingest::{
    AppendedEvent, IngestCounts, IngestObserver, IngestOptions, Pipeline, RejectsFile, RejectsSink,
    SyncJob,
};
use penalty_store::projection::{self, Projection, ReplaySource, CHECKPOINT_TAIL_EVENTS};
use penalty_store::{EventLog, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

use crate::auth::{Access, Tokens};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::replays::{Lookup, ReplayKey, ReplayLimits, Replays, Stamps};

/// The limits the server enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest `POST /events` body.
    pub max_body_bytes: usize,
    /// Uploads whose bodies may be received at once; more get a 503, since
    /// each may hold up to `max_body_bytes` of memory.
    pub max_concurrent_uploads: usize,
    /// Rejected lines listed in an ingest response (all go to the rejects
    /// file; the list is for the caller's convenience).
    pub max_rejects_listed: usize,
    /// Lines handed to the log per turn of its mutex during an ingest.
    pub ingest_chunk_lines: usize,
    /// Events of one order a cluster node reads for `GET /orders/{id}/events`
    /// before paging them (one machine pages from the log by sequence
    /// number, reading about a page).
    pub max_order_events: usize,
    /// How long a client may take to send a `POST /events` body; a slow
    /// client would otherwise hold an upload slot for ever.
    pub body_read_timeout: std::time::Duration,
    /// The slowest an upload body may arrive, on average, once
    /// `body_rate_grace` has passed: four clients sending 10 KB/s would
    /// otherwise hold every upload slot for `body_read_timeout`.
    pub min_body_bytes_per_sec: u64,
    /// See `min_body_bytes_per_sec`.
    pub body_rate_grace: std::time::Duration,
    /// How long the body of a refused upload (503) is read and dropped
    /// before the answer, so that the client, still sending, gets the status
    /// rather than a reset connection.
    pub refused_body_drain: std::time::Duration,
    /// `known_at` replays kept for later questions (each holds a projection).
    pub known_at_kept: usize,
    /// Distinct `known_at` replays queued or folding at once.
    pub max_pending_replays: usize,
    /// Of those, started by one caller (the operator, or one seller's shop).
    pub max_replays_per_caller: usize,
    /// Queries computed at once on the blocking pool; more wait their turn
    /// (asynchronously, holding no thread). Without a bound, a burst of
    /// requests would start one OS thread each, up to tokio's 512.
    pub max_concurrent_queries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_concurrent_uploads: 4,
            max_rejects_listed: 1000,
            ingest_chunk_lines: 8192,
            max_order_events: 10_000,
            body_read_timeout: std::time::Duration::from_secs(300),
            // 64 MiB in 256 s: within body_read_timeout.
            min_body_bytes_per_sec: 256 << 10,
            body_rate_grace: std::time::Duration::from_secs(5),
            refused_body_drain: std::time::Duration::from_secs(5),
            known_at_kept: 2,
            max_pending_replays: 4,
            max_replays_per_caller: 1,
            max_concurrent_queries: std::thread::available_parallelism()
                .map_or(4, |cores| 2 * cores.get())
                .max(4),
        }
    }
}

/// What [`AppState::open`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The data directory.
    pub db: PathBuf,
    /// The policy in force.
    pub policy: Policy,
    /// The tokens, when access control is on.
    pub tokens: Option<Tokens>,
    /// The limits.
    pub limits: Limits,
}

/// What readers read, kept consistent under one lock.
struct View {
    projection: Projection,
    /// order_id -> where its events are and whose it is.
    orders: HashMap<String, OrderEntry>,
    /// The shop ids of `orders`, each held once.
    shops: HashSet<Arc<str>>,
    /// Where each block stamp falls: the key of a `known_at` replay.
    stamps: Stamps,
}

/// What the server keeps of an order besides the ledger's view of it.
#[derive(Default)]
struct OrderEntry {
    /// The sequence numbers of its events, for the timeline of
    /// `GET /orders/{id}/events`: the ledger keeps the rules' view of an
    /// order, not the stored lines, so the server keeps where they are.
    seqs: Vec<u64>,
    /// The shop of its `paid` event: who may see the order, decided before
    /// any work on it.
    shop_id: Option<Arc<str>>,
}

impl View {
    /// Folds in one durable event, at `seq`: the projection and the indexes.
    fn fold(
        &mut self,
        seq: u64,
        recorded_at: UnixNs,
        event: &penalty_core::Event,
    ) -> Result<(), StoreError> {
        self.projection.apply(seq, recorded_at, event)?;
        self.index(seq, recorded_at, event);
        Ok(())
    }

    /// Notes where an event is: its order's entry, its block's stamp.
    fn index(&mut self, seq: u64, recorded_at: UnixNs, event: &penalty_core::Event) {
        self.stamps.note(recorded_at);
        let Some(order_id) = event.order_id() else {
            return;
        };
        let shop = match &event.kind {
            penalty_core::EventKind::Paid { shop_id, .. } => {
                Some(match self.shops.get(shop_id.as_str()) {
                    Some(shop) => Arc::clone(shop),
                    None => {
                        let shop: Arc<str> = Arc::from(shop_id.as_str());
                        self.shops.insert(Arc::clone(&shop));
                        shop
                    }
                })
            }
            _ => None,
        };
        let entry = self.orders.entry(order_id.to_string()).or_default();
        entry.seqs.push(seq);
        if entry.shop_id.is_none() {
            entry.shop_id = shop;
        }
    }

    /// True when `access` may see the order: an operator any order, a
    /// seller an order whose `paid` event names its shop.
    fn may_read_order(&self, order_id: &str, access: &Access) -> bool {
        match access {
            Access::Operator => true,
            Access::Seller { .. } => self
                .orders
                .get(order_id)
                .and_then(|entry| entry.shop_id.as_deref())
                .is_some_and(|shop| access.may_read_shop(shop)),
        }
    }
}

struct Shared {
    config: Config,
    metrics: Metrics,
    view: RwLock<View>,
    /// Ingest's threads, kept from upload to upload (and from chunk to
    /// chunk of one): only the one ingest the `ingest` mutex lets run
    /// takes it. Declared before the log, so that its
    /// threads end before the log (and the directory lock) is dropped.
    pipeline: std::sync::Mutex<Pipeline>,
    /// The log; `blocking_lock` from the blocking pool. tokio's mutex is
    /// fair, so a replay waiting for it is not starved by a long ingest that
    /// takes and releases it chunk after chunk.
    log: Mutex<EventLog>,
    /// Held for a whole ingest, so that uploads are applied one after the
    /// other. An owned guard moves into the blocking task: if the client goes
    /// away, the task still finishes before the next ingest starts.
    ingest: Arc<Mutex<()>>,
    uploads: Arc<Semaphore>,
    /// `known_at` replays fold the whole log; one at a time.
    replays: Arc<Semaphore>,
    /// The kept `known_at` replays and those under way (see [`replays`]): a
    /// client paging through a past view asks for the same instant again
    /// and again, and each replay folds the whole log (0.6 s at a million
    /// orders).
    ///
    /// [`replays`]: crate::replays
    replay_cache: Replays,
    /// See [`Limits::max_concurrent_queries`].
    queries: Semaphore,
    /// Events folded in since the last checkpoint.
    unsaved: AtomicU64,
    /// The checkpoint being written off the upload's answer (at most one),
    /// see [`AppState::save_checkpoint_in_background`]. Held while a
    /// checkpoint is written at shutdown, so that none older replaces it.
    checkpointing: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The dashboard's sessions (hashes of their ids only).
    sessions: crate::session::Sessions,
}

/// The state every handler gets (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The answer to `POST /events`: the CLI's counts plus the first rejects.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IngestSummary {
    /// Lines read.
    pub read: u64,
    /// Lines appended as new events (durable).
    pub appended: u64,
    /// Lines already in the log with the same content.
    pub duplicates: u64,
    /// Lines rejected.
    pub rejected: u64,
    /// The first rejected lines (line number in the body, from 1, and the
    /// reason code of EVENTS.md); every one is also in `<db>/rejects.jsonl`.
    pub rejects: Vec<RejectedLine>,
    /// True when more lines were rejected than are listed.
    pub rejects_truncated: bool,
}

/// One rejected line of an upload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RejectedLine {
    /// The line number in the request body, from 1.
    pub line: u64,
    /// The reason code (EVENTS.md).
    pub reason: String,
    /// What is wrong, in a sentence.
    pub hint: String,
}

/// One stored event of an order's timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEvent {
    /// Its sequence number in the log.
    pub seq: u64,
    /// When the log recorded it.
    pub recorded_at: String,
    /// The event as stored (canonical JSON).
    pub event: serde_json::Value,
}

impl AppState {
    /// Opens the log (taking the directory lock), loads the projection from
    /// its checkpoint plus the tail, and indexes each order's events.
    pub fn open(config: Config) -> Result<AppState, StoreError> {
        AppState::open_waiting(config, None)
    }

    /// [`AppState::open`], waiting for the directory lock (and telling
    /// `on_wait` why) when given `on_wait` and another writer holds it.
    pub fn open_waiting(
        config: Config,
        on_wait: Option<&mut dyn FnMut(&StoreError)>,
    ) -> Result<AppState, StoreError> {
        let log = match on_wait {
            Some(on_wait) => EventLog::open_waiting(&config.db, on_wait)?,
            None => EventLog::open(&config.db)?,
        };
        let (projection, origin) = projection::open(&log, &config.policy, true)?;
        let started = std::time::Instant::now();
        let mut view = View {
            projection,
            orders: HashMap::new(),
            shops: HashSet::new(),
            stamps: Stamps::default(),
        };
        for stored in log.iter_from(1) {
            let stored = stored?;
            // The typed event: decoded from the compact form, no JSON parse.
            view.index(stored.seq, stored.recorded_at, &stored.event()?);
        }
        tracing::info!(
            ?origin,
            orders = view.orders.len(),
            index_millis = started.elapsed().as_millis() as u64,
            "state opened"
        );
        let uploads = Arc::new(Semaphore::new(config.limits.max_concurrent_uploads));
        let queries = Semaphore::new(config.limits.max_concurrent_queries.max(1));
        Ok(AppState(Arc::new(Shared {
            config,
            metrics: Metrics::default(),
            view: RwLock::new(view),
            pipeline: std::sync::Mutex::new(Pipeline::new(&log)),
            log: Mutex::new(log),
            ingest: Arc::new(Mutex::new(())),
            uploads,
            replays: Arc::new(Semaphore::new(1)),
            replay_cache: Replays::default(),
            queries,
            unsaved: AtomicU64::new(0),
            checkpointing: std::sync::Mutex::new(None),
            sessions: crate::session::Sessions::default(),
        })))
    }

    /// The dashboard's signed-in sessions.
    pub fn sessions(&self) -> &crate::session::Sessions {
        &self.0.sessions
    }

    /// The tokens, when access control is on.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.0.config.tokens.as_ref()
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.0.config.policy
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.0.config.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The last sequence number folded into the projection (0: none).
    pub fn projection_seq(&self) -> Result<u64, ApiError> {
        let view = self.0.view.read().map_err(|_| poisoned())?;
        Ok(view.projection.seq)
    }

    /// Runs a read-only question against the ledger on the blocking pool:
    /// the live projection, or with `known_at` a replay of only the events
    /// recorded by then (see [`replays`](crate::replays): kept, shared, and
    /// limited per caller; the question itself then runs like any other).
    ///
    /// `known_at` replays are limited per caller; this one counts them all
    /// as one caller: prefer [`AppState::query_for`].
    pub async fn query<T, F>(&self, known_at: Option<UnixNs>, question: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> Result<T, ApiError> + Send + 'static,
    {
        self.query_for(None, known_at, question).await
    }

    /// [`AppState::query`] on behalf of `access`, whose `known_at` replays
    /// count against its own limit.
    pub async fn query_for<T, F>(
        &self,
        access: Option<&Access>,
        known_at: Option<UnixNs>,
        question: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Ledger) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        match known_at {
            None => {
                let _permit = self.query_permit().await?;
                run_blocking(move || {
                    let view = state.0.view.read().map_err(|_| poisoned())?;
                    question(&view.projection.ledger)
                })
                .await
            }
            Some(known_at) => {
                let replayed = self.replay_known_at(known_at, access).await?;
                let _permit = self.query_permit().await?;
                run_blocking(move || question(&replayed.ledger)).await
            }
        }
    }

    /// The ledger of the events recorded by `known_at`: a kept replay of
    /// the same blocks, the one under way, or a new one if the caller's
    /// limits allow. Waiting holds no query permit, so readers of the live
    /// projection are never queued behind replays.
    async fn replay_known_at(
        &self,
        known_at: UnixNs,
        access: Option<&Access>,
    ) -> Result<Arc<Projection>, ApiError> {
        let key = {
            let view = self.0.view.read().map_err(|_| poisoned())?;
            view.stamps.key(known_at)
        };
        let caller = match access {
            None => "unattributed".to_string(),
            Some(Access::Operator) => "operator".to_string(),
            Some(Access::Seller { shop_id }) => format!("seller {shop_id}"),
        };
        let limits = self.limits();
        let replay_limits = ReplayLimits {
            kept: limits.known_at_kept,
            pending: limits.max_pending_replays.max(1),
            per_caller: limits.max_replays_per_caller.max(1),
        };
        let mut outcome = match self.0.replay_cache.lookup(key, &caller, replay_limits)? {
            Lookup::Kept(projection) => {
                self.metrics()
                    .known_at_replays_reused
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(projection);
            }
            Lookup::Wait(outcome) => {
                self.metrics()
                    .known_at_replays_reused
                    .fetch_add(1, Ordering::Relaxed);
                outcome
            }
            Lookup::Fold(sender) => {
                let outcome = sender.subscribe();
                // A task of its own: the fold finishes, and its slot is
                // given back, even if every asker goes away meanwhile.
                let state = self.clone();
                let kept = replay_limits.kept;
                tokio::spawn(async move {
                    let folded = match Arc::clone(&state.0.replays).acquire_owned().await {
                        Ok(permit) => {
                            let folding = state.clone();
                            run_blocking(move || {
                                let _one_at_a_time = permit;
                                folding.fold_replay(key)
                            })
                            .await
                        }
                        Err(_) => Err(ApiError::Unavailable("the server is shutting down")),
                    };
                    let folded = folded.map_err(|error| match error {
                        ApiError::Internal(cause) => cause,
                        other => other.to_string(),
                    });
                    state.0.replay_cache.finish(key, folded.as_ref().ok(), kept);
                    let _ = sender.send(Some(folded));
                });
                outcome
            }
        };
        let folded = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ApiError::internal("a known_at replay ended without an outcome"))?
            .clone();
        match folded {
            Some(Ok(projection)) => Ok(projection),
            Some(Err(cause)) => Err(ApiError::internal(cause)),
            None => Err(ApiError::internal(
                "a known_at replay ended without an outcome",
            )),
        }
    }

    /// Folds the blocks of `key`. The log's lock is held only to take the
    /// replay's source, not for the replay itself, so uploads go on
    /// meanwhile (what they append is stamped later than the key's instant,
    /// and left out).
    fn fold_replay(&self, key: ReplayKey) -> Result<Arc<Projection>, ApiError> {
        let source = {
            let log = self.0.log.blocking_lock();
            ReplaySource::of(&log)?
        };
        let projection = projection::replay_from(source, self.policy(), Some(key.known_at()))?;
        self.metrics()
            .known_at_replays
            .fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(projection))
    }

    /// True when `access` may see the order (see [`View`]); decided from an
    /// index, before any work on the order, so that the answer and its time
    /// are the same for another shop's order and for one that does not
    /// exist.
    pub fn may_read_order(&self, order_id: &str, access: &Access) -> Result<bool, ApiError> {
        let view = self.0.view.read().map_err(|_| poisoned())?;
        Ok(view.may_read_order(order_id, access))
    }

    async fn query_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.0
            .queries
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down"))
    }

    /// A page of the stored events of one order with `at <= as_of`, in log
    /// order: at most `limit` of those after the sequence number `after`,
    /// and the sequence number to pass as `after` for the rest (`None` when
    /// there is none), if `access` may see the order. A seller asking for
    /// another shop's order, or for an order with no `paid` event (whose
    /// shop is unknown), gets `None`, as for an order that does not exist.
    /// The order's sequence numbers are ascending, so the page starts by a
    /// binary search and reads about `limit` events of the log whatever the
    /// page's place.
    pub async fn order_events(
        &self,
        order_id: String,
        access: Access,
        as_of: UnixNs,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Option<(Vec<TimelineEvent>, Option<u64>)>, ApiError> {
        let state = self.clone();
        let _permit = self.query_permit().await?;
        run_blocking(move || {
            // Access is decided first, from the index alone: another shop's
            // order costs what an unknown one does.
            let seqs = {
                let view = state.0.view.read().map_err(|_| poisoned())?;
                if !view.may_read_order(&order_id, &access) {
                    return Ok(None);
                }
                match view.orders.get(&order_id) {
                    Some(entry) => {
                        let start =
                            after.map_or(0, |after| entry.seqs.partition_point(|&s| s <= after));
                        entry.seqs[start..].to_vec()
                    }
                    None => return Ok(None),
                }
            };
            let offset = state.policy().utc_offset;
            let mut events = Vec::new();
            let mut next = None;
            {
                let log = state.0.log.blocking_lock();
                for seq in seqs {
                    let Some(stored) = log.get(seq)? else {
                        return Err(ApiError::internal(format!(
                            "the order index names seq {seq}, which the log does not hold"
                        )));
                    };
                    let event = stored.event()?;
                    if event.at > as_of {
                        continue;
                    }
                    if events.len() == limit {
                        // One more event stands after the page: the page
                        // ends at its last event.
                        next = events.last().map(|e: &TimelineEvent| e.seq);
                        break;
                    }
                    let json =
                        serde_json::from_slice(&stored.json()).map_err(ApiError::internal)?;
                    events.push(TimelineEvent {
                        seq: stored.seq,
                        recorded_at: stored.recorded_at.to_rfc3339(offset),
                        event: json,
                    });
                }
            }
            Ok(Some((events, next)))
        })
        .await
    }

    /// Ingests a whole request body, with the CLI's semantics: every line ends
    /// appended, duplicate or rejected; each block is durable before it is
    /// counted; rejects go to `<db>/rejects.jsonl`. Returns once everything
    /// appended is durable and folded into the projection. The listed
    /// rejects' hints are in English.
    pub async fn ingest(&self, body: Bytes) -> Result<IngestSummary, ApiError> {
        self.ingest_in(body, Lang::En).await
    }

    /// [`AppState::ingest`], the listed rejects' hints in `lang` (the
    /// rejects file keeps its English, whoever sent the lines).
    pub async fn ingest_in(&self, body: Bytes, lang: Lang) -> Result<IngestSummary, ApiError> {
        let guard = self.0.ingest.clone().lock_owned().await;
        let state = self.clone();
        run_blocking(move || {
            let _one_ingest_at_a_time = guard;
            state
                .ingest_blocking(body, lang)
                .map_err(|error| ApiError::IngestFailed(error.to_string()))
        })
        .await
    }

    /// A permit to receive an upload body, or `None` when too many are being
    /// received already.
    pub fn try_upload_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.uploads.clone().try_acquire_owned().ok()
    }

    fn ingest_blocking(&self, body: Bytes, lang: Lang) -> Result<IngestSummary, StoreError> {
        let rejects_path = self.0.config.db.join(penalty_store::ingest::REJECTS_FILE);
        let mut rejects = UploadRejects {
            file: RejectsFile::open(&rejects_path, "POST /events")?,
            line_base: 0,
            max_listed: self.limits().max_rejects_listed,
            listed: Vec::new(),
            truncated: false,
            lang,
        };
        let mut folder = ProjectionFolder { state: self };
        let options = IngestOptions::default();
        let mut total = IngestCounts::default();
        // One ingest at a time (the `ingest` mutex): this lock is never
        // waited for. A pipeline left by a panic is as good as any: a
        // failed input ends its threads.
        let mut pipeline = self
            .0
            .pipeline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for chunk in line_chunks(&body, self.limits().ingest_chunk_lines) {
            let counts = {
                let mut log = self.0.log.blocking_lock();
                match pipeline.ingest(
                    &mut log,
                    Cursor::new(chunk),
                    &options,
                    &mut rejects,
                    &mut folder,
                ) {
                    Ok(counts) => counts,
                    Err(error) => {
                        // Blocks handed to the writer before the error may
                        // have become durable unreported: the projection
                        // must still answer for every event in the log.
                        if let Err(catch_up) = self.catch_up(&log) {
                            tracing::error!(%catch_up, "the projection could not catch up with the log after a failed ingest");
                        }
                        return Err(error);
                    }
                }
            };
            let metrics = self.metrics();
            metrics.lines_read.fetch_add(counts.read, Ordering::Relaxed);
            metrics
                .events_appended
                .fetch_add(counts.appended, Ordering::Relaxed);
            metrics
                .events_duplicate
                .fetch_add(counts.duplicates, Ordering::Relaxed);
            metrics
                .events_rejected
                .fetch_add(counts.rejected, Ordering::Relaxed);
            total.add(&counts);
            rejects.line_base += counts.read;
        }
        self.metrics()
            .ingest_requests
            .fetch_add(1, Ordering::Relaxed);
        if self.0.unsaved.load(Ordering::Relaxed) >= CHECKPOINT_TAIL_EVENTS {
            self.save_checkpoint_in_background();
        }
        Ok(IngestSummary {
            read: total.read,
            appended: total.appended,
            duplicates: total.duplicates,
            rejected: total.rejected,
            rejects: rejects.listed,
            rejects_truncated: rejects.truncated,
        })
    }

    /// Folds in the events the log holds past the projection. After a
    /// failed ingest, blocks handed to the writer threads before the
    /// failure may have become durable without being reported to the observer.
    /// Returns how many events were folded in.
    fn catch_up(&self, log: &EventLog) -> Result<u64, StoreError> {
        let mut view = self.view_to_fold()?;
        let mut folded = 0;
        for stored in log.iter_from(view.projection.seq + 1) {
            let stored = stored?;
            view.fold(stored.seq, stored.recorded_at, &stored.event()?)?;
            folded += 1;
        }
        self.0.unsaved.fetch_add(folded, Ordering::Relaxed);
        Ok(folded)
    }

    /// The projection, write-locked to fold events in. Kept `known_at`
    /// replays stay valid: the blocks they hold are not rewritten.
    fn view_to_fold(&self) -> Result<std::sync::RwLockWriteGuard<'_, View>, StoreError> {
        self.0
            .view
            .write()
            .map_err(|_| StoreError::Poisoned { lock: "projection" })
    }

    /// Starts writing the projection as it is now as the checkpoint, on a
    /// thread of its own, unless one is being written already: the answer
    /// to the upload that filled the tail does not wait for the encoding
    /// (seconds at millions of orders), only for a copy of the projection.
    /// Called with the `ingest` mutex held, so no fold runs meanwhile. The
    /// events are durable already; the checkpoint only shortens the folds of
    /// readers and of the next start, so a failure is logged, not returned.
    fn save_checkpoint_in_background(&self) {
        // Busy: a checkpoint is being written at shutdown.
        let Ok(mut checkpointing) = self.0.checkpointing.try_lock() else {
            return;
        };
        if checkpointing
            .as_ref()
            .is_some_and(|writing| !writing.is_finished())
        {
            return;
        }
        if let Some(written) = checkpointing.take() {
            let _ = written.join();
        }
        let copy = {
            let log = self.0.log.blocking_lock();
            let Ok(view) = self.0.view.read() else {
                return;
            };
            match log.snapshot_end(view.projection.seq) {
                Ok(Some(end)) => (view.projection.clone(), end, log.dir().to_path_buf()),
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "saving the projection checkpoint failed");
                    return;
                }
            }
        };
        self.0.unsaved.store(0, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("penalty-checkpoint".into())
            .spawn(move || {
                let (projection, end, dir) = copy;
                if let Err(error) = projection.save_at(&dir, &end) {
                    tracing::warn!(%error, "saving the projection checkpoint failed");
                }
            });
        match spawned {
            Ok(writing) => *checkpointing = Some(writing),
            Err(error) => tracing::warn!(%error, "no thread to save the projection checkpoint"),
        }
    }

    /// Writes the projection as the checkpoint (at shutdown), after the one
    /// being written in the background, if any. Blocking.
    pub fn save_checkpoint_blocking(&self) -> Result<(), StoreError> {
        let mut checkpointing = self
            .0
            .checkpointing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(writing) = checkpointing.take() {
            let _ = writing.join();
        }
        let log = self.0.log.blocking_lock();
        let Ok(view) = self.0.view.read() else {
            return Ok(());
        };
        view.projection.save(&log)?;
        self.0.unsaved.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// Keeps an upload's rejected lines: every one in the rejects file, the
/// first ones also in the response, numbered from the body's first line.
struct UploadRejects {
    file: RejectsFile,
    /// Lines of the body before the current chunk.
    line_base: u64,
    /// The most lines listed in the response.
    max_listed: usize,
    listed: Vec<RejectedLine>,
    truncated: bool,
    /// The language of the listed hints.
    lang: Lang,
}

impl RejectsSink for UploadRejects {
    fn rejected(
        &mut self,
        line_no: u64,
        reason: &Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        let line = self.line_base + line_no;
        self.file.write(line, reason, raw, raw_bytes)?;
        if self.listed.len() < self.max_listed {
            self.listed.push(RejectedLine {
                line,
                reason: reason.code(),
                hint: reason.hint_in(self.lang),
            });
        } else {
            self.truncated = true;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.file.sync()
    }

    fn sync_job(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.file.sync_job()
    }
}

/// Folds each durable block of an upload into the projection and the order
/// index.
struct ProjectionFolder<'a> {
    state: &'a AppState,
}

impl IngestObserver for ProjectionFolder<'_> {
    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        // The block is durable; fold it in under one short write lock.
        let mut view = self.state.view_to_fold()?;
        for appended in events {
            // The line was validated on the way in, so its forms give the
            // event back; an error here would mean a damaged buffer.
            let event = &appended.line.event().map_err(|reason| StoreError::Fold {
                detail: format!(
                    "event {} could not be rebuilt from its stored form: {reason}",
                    appended.seq
                ),
            })?;
            view.fold(appended.seq, appended.recorded_at, event)?;
        }
        self.state
            .0
            .unsaved
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Splits a body into pieces of at most `lines` lines, each ending just after
/// a `\n` (except maybe the last), so that ingesting the pieces one after the
/// other reads exactly the lines of the whole.
fn line_chunks(body: &Bytes, lines: usize) -> impl Iterator<Item = Bytes> + '_ {
    let lines = lines.max(1);
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= body.len() {
            return None;
        }
        let mut end = start;
        let mut seen = 0;
        while seen < lines {
            match memchr_newline(&body[end..]) {
                Some(at) => {
                    end += at + 1;
                    seen += 1;
                }
                None => {
                    end = body.len();
                    break;
                }
            }
        }
        let chunk = body.slice(start..end);
        start = end;
        Some(chunk)
    })
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

fn poisoned() -> ApiError {
    ApiError::internal("a lock was poisoned by a panic in another request")
}

/// Runs blocking work on the blocking pool and maps a panic to a 500.
async fn run_blocking<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("a blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_every_line_whole() {
        let body = Bytes::from_static(b"a\nb\r\nc\n\nd");
        let chunks: Vec<Bytes> = line_chunks(&body, 2).collect();
        assert_eq!(
            chunks,
            vec![
                Bytes::from_static(b"a\nb\r\n"),
                Bytes::from_static(b"c\n\n"),
                Bytes::from_static(b"d")
            ]
        );
        let whole: Vec<u8> = chunks.concat();
        assert_eq!(whole, body.to_vec());
        assert_eq!(line_chunks(&Bytes::new(), 2).count(), 0);
    }

    /// Events durable in the log but never reported to the projection (as
    /// after a failed ingest) are folded in by `catch_up`, orders included.
    #[test]
    fn the_projection_catches_up_with_events_it_was_not_told_of() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = AppState::open(Config {
            db: dir.path().join("db"),
            policy: Policy::default(),
            tokens: None,
            limits: Limits::default(),
        })
        .expect("state");
        let lines = concat!(
            r#"{"event_id":"00000000-0000-4000-8000-000000000001","type":"paid","at":"2026-01-01T00:00:00Z","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":100}"#,
            "\n",
            r#"{"event_id":"00000000-0000-4000-8000-000000000002","type":"deposit_topped_up","at":"2026-01-01T00:00:00Z","shop_id":"S1","amount_fen":100}"#,
            "\n",
        );
        let mut log = state.0.log.blocking_lock();
        // Appended behind the projection's back: no observer folds the
        // events in.
        let mut rejects =
            RejectsFile::open(&dir.path().join("rejects.jsonl"), "-").expect("rejects");
        let counts = penalty_store::ingest::ingest(
            &mut log,
            Cursor::new(lines.as_bytes().to_vec()),
            &IngestOptions::default(),
            &mut rejects,
            &mut (),
        )
        .expect("ingest");
        assert_eq!(counts.appended, 2);
        assert_eq!(state.0.view.read().expect("view").projection.seq, 0);
        assert_eq!(state.catch_up(&log).expect("caught up"), 2);
        assert_eq!(state.catch_up(&log).expect("nothing more"), 0);
        let view = state.0.view.read().expect("view");
        assert_eq!(view.projection.seq, 2);
        assert_eq!(view.orders.get("O1").map(|o| o.seqs.clone()), Some(vec![1]));
        assert_eq!(
            view.orders.get("O1").and_then(|o| o.shop_id.as_deref()),
            Some("S1")
        );
    }
}
