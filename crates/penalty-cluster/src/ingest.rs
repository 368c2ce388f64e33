//! `penalty ingest --cluster`: publish each valid line to its stage-1
//! partition and count it once its decision comes back.
//!
//! A line is acknowledged (counted) only when JetStream has acknowledged it
//! (it is in the replicated stream) and the stage that decides it has said
//! what became of it. Many lines are in flight at once, but a line is
//! published only when no undecided line shares its event id or its paid
//! order id: for every pair of lines whose order could change a decision,
//! the input's order is the decision order, as on one machine.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use penalty_core::{parse_line, Reject};
use serde::Serialize;

use crate::partition::partition_of_event_id;
use crate::wire::{Decision, InMsg, Stage, DEC_STREAM};
use crate::ClusterError;

/// The most lines published and not yet decided.
const WINDOW_LINES: usize = 4000;

/// How many times a line whose publication was not acknowledged is
/// published again before the ingest gives up.
const PUBLISH_ATTEMPTS: u32 = 10;

/// How long to wait for a decision while none comes.
const DECISION_PATIENCE: Duration = Duration::from_secs(120);

/// The counts of EVENTS.md: `read = appended + duplicates + rejected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Lines read.
    pub read: u64,
    /// Valid and new.
    pub appended: u64,
    /// Already in the log with the same content.
    pub duplicates: u64,
    /// Rejected, with a reason.
    pub rejected: u64,
}

impl Counts {
    /// Adds another input's counts.
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.appended += other.appended;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// A line published and not yet decided, with the keys it holds.
struct Undecided {
    raw: Vec<u8>,
    event_id: u128,
    paid_order: Option<String>,
}

/// A publication whose acknowledgement is not yet awaited.
struct Unacked {
    line_no: u64,
    subject: String,
    payload: bytes::Bytes,
    sent: Result<jetstream::context::PublishAckFuture, String>,
}

/// Ingests the lines of `reader` into the cluster; `rejected(line, reason,
/// raw)` is told of every rejected line, in the order of their decisions
/// (not always the input's).
///
/// Up to [`WINDOW_LINES`] lines are in flight (published, not yet decided).
/// A line that shares its event id, or the order id of its `paid`, with a
/// line in flight waits until that line is decided: for every pair of lines
/// whose order could change a decision (the same id: duplicate or conflict;
/// two `paid` of one order: `order_already_paid`), the earlier is decided
/// before the later is published, so the decisions are one machine's.
/// Lines that share neither key cannot change each other's decision, in
/// whatever order the stream holds them.
pub async fn ingest(
    client: &async_nats::Client,
    js: &jetstream::Context,
    partitions: u32,
    mut reader: impl BufRead,
    mut rejected: impl FnMut(u64, &Reject, &[u8]) -> Result<(), ClusterError>,
) -> Result<Counts, ClusterError> {
    let ingest_id = ingest_id();
    let stream = js.get_stream(DEC_STREAM).await.map_err(|e| {
        ClusterError::nats(
            "opening the decisions stream (run `penalty cluster init`)",
            e,
        )
    })?;
    let subject = format!("dec.{ingest_id}");
    // Decisions are heard as they are published (core NATS: at most once),
    // and read from their stream when none comes for a while (at least
    // once): one direct get per decision would cost a round trip a line.
    let heard = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| ClusterError::nats("listening for decisions", e))?;
    let mut window = Window {
        js,
        ingest_id: ingest_id.clone(),
        decisions: Decisions {
            stream,
            subject,
            next_seq: 1,
            heard,
            sweeping: false,
        },
        undecided: HashMap::new(),
        busy_ids: HashSet::new(),
        busy_orders: HashSet::new(),
        unacked: Vec::new(),
        counts: Counts::default(),
    };
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ClusterError::Io {
                context: format!("reading line {}", line_no + 1),
                source,
            })?;
        if read == 0 {
            break;
        }
        let mut raw: &[u8] = &line;
        if let Some(rest) = raw.strip_suffix(b"\n") {
            raw = rest;
        }
        if let Some(rest) = raw.strip_suffix(b"\r") {
            raw = rest;
        }
        line_no += 1;
        window.counts.read += 1;
        let parsed = match parse_line(raw) {
            Ok(parsed) => parsed,
            Err(reason) => {
                window.counts.rejected += 1;
                rejected(line_no, &reason, raw)?;
                continue;
            }
        };
        let event_id = parsed.event.event_id;
        let paid_order = parsed.event.paid_order_id().map(str::to_string);
        while window.busy_ids.contains(&event_id)
            || paid_order
                .as_ref()
                .is_some_and(|o| window.busy_orders.contains(o))
            || window.undecided.len() >= WINDOW_LINES
        {
            window.decide_one(&mut rejected).await?;
        }
        let json =
            String::from_utf8_lossy(&parsed.as_parsed().payload.canonical_json()).into_owned();
        let payload = serde_json::to_vec(&InMsg::Line {
            ingest: ingest_id.clone(),
            line: line_no,
            json,
        })
        .map_err(|e| ClusterError::Decode(e.to_string()))?;
        let subject = Stage::Ids.subject(partition_of_event_id(event_id, partitions));
        window.publish(line_no, subject, payload.into()).await;
        window.busy_ids.insert(event_id);
        if let Some(order) = &paid_order {
            window.busy_orders.insert(order.clone());
        }
        window.undecided.insert(
            line_no,
            Undecided {
                raw: raw.to_vec(),
                event_id,
                paid_order,
            },
        );
    }
    while !window.undecided.is_empty() {
        window.decide_one(&mut rejected).await?;
    }
    Ok(window.counts)
}

/// The lines in flight of one ingest.
struct Window<'a> {
    js: &'a jetstream::Context,
    ingest_id: String,
    decisions: Decisions,
    undecided: HashMap<u64, Undecided>,
    /// The event ids and paid order ids of the undecided lines.
    busy_ids: HashSet<u128>,
    busy_orders: HashSet<String>,
    unacked: Vec<Unacked>,
    counts: Counts,
}

impl Window<'_> {
    /// Publishes a line asynchronously; its acknowledgement is awaited
    /// before the next decision is.
    async fn publish(&mut self, line_no: u64, subject: String, payload: bytes::Bytes) {
        let mut headers = async_nats::HeaderMap::new();
        // The same message id on every attempt: the stream drops a retry
        // of a publication that did land.
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("l.{}.{line_no}", self.ingest_id).as_str(),
        );
        let sent = self
            .js
            .publish_with_headers(subject.clone(), headers, payload.clone())
            .await
            .map_err(|e| e.to_string());
        self.unacked.push(Unacked {
            line_no,
            subject,
            payload,
            sent,
        });
    }

    /// Waits until every publication sent is in the stream, publishing
    /// again (same message id) those not acknowledged.
    async fn settle(&mut self) -> Result<(), ClusterError> {
        for attempt in 1..=PUBLISH_ATTEMPTS {
            if self.unacked.is_empty() {
                return Ok(());
            }
            // Awaited together: an acknowledgement's timeout runs from when
            // it is awaited, so awaiting lost ones in turn would take a
            // timeout each.
            let results =
                futures_util::future::join_all(self.unacked.drain(..).map(|unacked| async move {
                    let result = match unacked.sent {
                        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    (unacked.line_no, unacked.subject, unacked.payload, result)
                }))
                .await;
            let mut failed = Vec::new();
            let mut last_error = String::new();
            for (line_no, subject, payload, result) in results {
                // A line already decided is in the stream, whatever its
                // acknowledgement said.
                if let Err(error) = result {
                    if self.undecided.contains_key(&line_no) {
                        last_error = error;
                        failed.push((line_no, subject, payload));
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt == PUBLISH_ATTEMPTS {
                return Err(ClusterError::Nats(format!(
                    "{} lines were not acknowledged by the stream after {PUBLISH_ATTEMPTS} \
                     attempts ({last_error})",
                    failed.len()
                )));
            }
            tracing::warn!(lines = failed.len(), %last_error, "publishing again");
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (line_no, subject, payload) in failed {
                self.publish(line_no, subject, payload).await;
            }
        }
        Ok(())
    }

    /// Waits for the next decision of a line in flight and counts it.
    async fn decide_one(
        &mut self,
        rejected: &mut impl FnMut(u64, &Reject, &[u8]) -> Result<(), ClusterError>,
    ) -> Result<(), ClusterError> {
        self.settle().await?;
        let waiting_since = std::time::Instant::now();
        loop {
            let Some(payload) = self.decisions.next().await? else {
                if waiting_since.elapsed() > DECISION_PATIENCE {
                    return Err(ClusterError::Timeout(format!(
                        "no decision came for {} published lines in {} s: are the nodes \
                         running? (the lines are in the stream and will be decided; send the \
                         same input again to learn the counts)",
                        self.undecided.len(),
                        DECISION_PATIENCE.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let decision: Decision = serde_json::from_slice(&payload)
                .map_err(|e| ClusterError::Decode(e.to_string()))?;
            // A decision met twice (heard, then read from the stream) or
            // published twice (a replay) counts once.
            let Some(line) = self.undecided.remove(&decision.line) else {
                continue;
            };
            self.busy_ids.remove(&line.event_id);
            if let Some(order) = &line.paid_order {
                self.busy_orders.remove(order);
            }
            match decision.outcome.as_str() {
                "appended" => self.counts.appended += 1,
                "duplicate" => self.counts.duplicates += 1,
                code => {
                    self.counts.rejected += 1;
                    let reason = match code {
                        "event_id_conflict" => Reject::EventIdConflict,
                        "order_already_paid" => Reject::OrderAlreadyPaid,
                        _ => Reject::InvalidJson,
                    };
                    rejected(decision.line, &reason, &line.raw)?;
                }
            }
            return Ok(());
        }
    }
}

/// The decisions for this ingest: heard on their subject as they are
/// published, and, when none was heard for [`SWEEP_AFTER`], read from the
/// stream by direct gets (see the node's workers for why not a consumer)
/// from where the last such reading stopped, which finds any the
/// subscription missed (a reconnection). A decision met twice is counted
/// once: the caller drops a line no longer awaited.
struct Decisions {
    stream: jetstream::stream::Stream,
    subject: String,
    next_seq: u64,
    heard: async_nats::Subscriber,
    sweeping: bool,
}

/// How long without a decision heard before reading the stream.
const SWEEP_AFTER: Duration = Duration::from_millis(500);

impl Decisions {
    /// The next decision's payload, or `None` when there is none yet.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, ClusterError> {
        if !self.sweeping {
            match tokio::time::timeout(SWEEP_AFTER, self.heard.next()).await {
                Ok(Some(message)) => return Ok(Some(message.payload.to_vec())),
                // Silence, or the subscription ended: read the stream.
                Ok(None) | Err(_) => self.sweeping = true,
            }
        }
        let read = self.read_stored().await?;
        if read.is_none() {
            // The stream has no more: listen again.
            self.sweeping = false;
        }
        Ok(read)
    }

    /// The next stored decision, or `None` when there is none yet. A
    /// request that fails (a server going away) counts as none yet.
    async fn read_stored(&mut self) -> Result<Option<Vec<u8>>, ClusterError> {
        match self
            .stream
            .direct_get_next_for_subject(self.subject.clone(), Some(self.next_seq))
            .await
        {
            Ok(message) => {
                self.next_seq = message.sequence + 1;
                Ok(Some(message.payload.to_vec()))
            }
            Err(error) => {
                if error.kind() != jetstream::stream::DirectGetErrorKind::NotFound {
                    tracing::warn!(%error, "reading decisions");
                }
                Ok(None)
            }
        }
    }
}

/// A fresh id for an ingest: a subject token unique among ingests.
fn ingest_id() -> String {
    let nanos = penalty_store::clock::now().0;
    format!("{nanos:x}{:x}", std::process::id())
}
