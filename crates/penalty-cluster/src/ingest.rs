//! `penalty ingest --cluster`: publish each valid line to its stage-1
//! partition and count it once its decision comes back.
//!
//! A line is acknowledged (counted) only when JetStream has acknowledged it
//! (it is in the replicated stream) and the stage that decides it has said
//! what became of it. Lines go in batches whose lines share no event id and
//! no paid order id, and a batch is published only when the one before is
//! decided: within a batch the stream's order of the lines cannot change a
//! decision, and between batches the input's order is the decision order,
//! as on one machine.

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

/// The most lines published before waiting for their decisions.
const BATCH_LINES: usize = 2000;

/// How long to wait for a batch's decisions while none comes.
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

struct Pending {
    line_no: u64,
    raw: Vec<u8>,
    json: String,
    subject: String,
}

/// Ingests the lines of `reader` into the cluster; `rejected(line, reason,
/// raw)` is told of every rejected line, in no particular order within a
/// batch.
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
    let mut decisions = Decisions {
        stream,
        subject,
        next_seq: 1,
        heard,
        sweeping: false,
    };
    let mut counts = Counts::default();
    let mut batch: Vec<Pending> = Vec::new();
    let mut ids: HashSet<u128> = HashSet::new();
    let mut paid_orders: HashSet<String> = HashSet::new();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    // One loop for every batch, the last included: the end of the input
    // publishes what is pending, like a clash or a full batch does.
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ClusterError::Io {
                context: format!("reading line {}", line_no + 1),
                source,
            })?;
        let mut raw: &[u8] = &line;
        if let Some(rest) = raw.strip_suffix(b"\n") {
            raw = rest;
        }
        if let Some(rest) = raw.strip_suffix(b"\r") {
            raw = rest;
        }
        let parsed = if read == 0 {
            None
        } else {
            line_no += 1;
            counts.read += 1;
            match parse_line(raw) {
                Ok(parsed) => Some(parsed),
                Err(reason) => {
                    counts.rejected += 1;
                    rejected(line_no, &reason, raw)?;
                    continue;
                }
            }
        };
        let event_id = parsed.as_ref().map(|parsed| parsed.event.event_id);
        let paid = parsed
            .as_ref()
            .and_then(|parsed| parsed.event.paid_order_id().map(str::to_string));
        let clash = event_id.is_some_and(|id| ids.contains(&id))
            || paid.as_ref().is_some_and(|o| paid_orders.contains(o));
        if parsed.is_none() || clash || batch.len() >= BATCH_LINES {
            flush(
                js,
                &ingest_id,
                &mut batch,
                &mut decisions,
                &mut counts,
                &mut rejected,
            )
            .await?;
            ids.clear();
            paid_orders.clear();
        }
        let (Some(parsed), Some(event_id)) = (parsed, event_id) else {
            break;
        };
        ids.insert(event_id);
        if let Some(order) = paid {
            paid_orders.insert(order);
        }
        let json =
            String::from_utf8_lossy(&parsed.as_parsed().payload.canonical_json()).into_owned();
        batch.push(Pending {
            line_no,
            raw: raw.to_vec(),
            json,
            subject: Stage::Ids.subject(partition_of_event_id(event_id, partitions)),
        });
    }
    Ok(counts)
}

/// Publishes the batch, waits for every line's decision, counts them.
async fn flush(
    js: &jetstream::Context,
    ingest_id: &str,
    batch: &mut Vec<Pending>,
    decisions: &mut Decisions,
    counts: &mut Counts,
    rejected: &mut impl FnMut(u64, &Reject, &[u8]) -> Result<(), ClusterError>,
) -> Result<(), ClusterError> {
    if batch.is_empty() {
        return Ok(());
    }
    // Publish all, then wait for all the acknowledgements; a line whose
    // publication failed is published again with the same message id, which
    // the stream drops if the first one did land.
    let mut to_send: Vec<usize> = (0..batch.len()).collect();
    for attempt in 0..10 {
        let mut acks = Vec::with_capacity(to_send.len());
        for &i in &to_send {
            let pending = &batch[i];
            let payload = serde_json::to_vec(&InMsg::Line {
                ingest: ingest_id.to_string(),
                line: pending.line_no,
                json: pending.json.clone(),
            })
            .map_err(|e| ClusterError::Decode(e.to_string()))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("l.{ingest_id}.{}", pending.line_no).as_str(),
            );
            let sent = js
                .publish_with_headers(pending.subject.clone(), headers, payload.into())
                .await;
            acks.push((i, sent));
        }
        let mut failed = Vec::new();
        let mut last_error = String::new();
        // Awaited together: an acknowledgement's timeout runs from when it
        // is awaited, so awaiting lost ones in turn would take a timeout
        // each.
        let results =
            futures_util::future::join_all(acks.into_iter().map(|(i, sent)| async move {
                let result = match sent {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (i, result)
            }))
            .await;
        for (i, result) in results {
            if let Err(error) = result {
                last_error = error;
                failed.push(i);
            }
        }
        if failed.is_empty() {
            break;
        }
        if attempt == 9 {
            return Err(ClusterError::Nats(format!(
                "{} lines were not acknowledged by the stream after 10 attempts ({last_error})",
                failed.len()
            )));
        }
        tracing::warn!(lines = failed.len(), %last_error, "publishing again");
        tokio::time::sleep(Duration::from_millis(500)).await;
        to_send = failed;
    }
    let mut waiting: HashMap<u64, usize> = batch
        .iter()
        .enumerate()
        .map(|(i, p)| (p.line_no, i))
        .collect();
    let mut last_heard = std::time::Instant::now();
    while !waiting.is_empty() {
        let Some(payload) = decisions.next().await? else {
            if last_heard.elapsed() > DECISION_PATIENCE {
                return Err(ClusterError::Timeout(format!(
                    "no decision came for {} published lines in {} s: are the nodes running? \
                     (the lines are in the stream and will be decided; send the same input \
                     again to learn the counts)",
                    waiting.len(),
                    DECISION_PATIENCE.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        last_heard = std::time::Instant::now();
        let message = Message { payload };
        let decision: Decision = serde_json::from_slice(&message.payload)
            .map_err(|e| ClusterError::Decode(e.to_string()))?;
        let Some(i) = waiting.remove(&decision.line) else {
            continue;
        };
        match decision.outcome.as_str() {
            "appended" => counts.appended += 1,
            "duplicate" => counts.duplicates += 1,
            code => {
                counts.rejected += 1;
                let reason = match code {
                    "event_id_conflict" => Reject::EventIdConflict,
                    "order_already_paid" => Reject::OrderAlreadyPaid,
                    _ => Reject::InvalidJson,
                };
                rejected(batch[i].line_no, &reason, &batch[i].raw)?;
            }
        }
    }
    batch.clear();
    Ok(())
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

struct Message {
    payload: Vec<u8>,
}

/// A fresh id for an ingest: a subject token unique among ingests.
fn ingest_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}{:x}", std::process::id())
}
