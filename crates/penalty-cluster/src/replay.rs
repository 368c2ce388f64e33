//! `known_at` on a node: a partition's shop stage as it was with the events
//! recorded by an instant, rebuilt from the partition's shop stream, kept
//! for the next question, and bounded.
//!
//! - The stream is read through an ordered pull consumer filtered on the
//!   partition's subject (batches, no round trip a message); should one not
//!   be created in time (nats-server 2.9 after a server died), by direct
//!   gets as the workers do.
//! - The last [`KEPT_REPLAYS`] replays are kept, each keyed by its partition
//!   and `known_at`, with the stream sequence it reached. The same question
//!   again reads only the messages stored since (none, usually): the stream
//!   is append-only, so extending a replay from where it stopped gives the
//!   replay from the start. Questions for the same key wait for each other,
//!   so two at once also cost one replay.
//! - A replay reads at most `max_events` messages (`--max-replay-events`);
//!   a partition holding more is refused at once with
//!   [`ClusterError::ReplayTooLarge`], naming the limit and the way out,
//!   rather than running into the asker's timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures_util::StreamExt;
use penalty_core::{Policy, UnixNs};

use crate::stages::ShopStage;
use crate::wire::{ShopMsg, Stage};
use crate::ClusterError;

/// The replays kept for later questions (each holds one partition's
/// ledger as of its `known_at`).
pub const KEPT_REPLAYS: usize = 2;

/// The messages a replay reads at most, unless the node is told otherwise
/// (`--max-replay-events`): about ten seconds of reading on a small
/// machine, well within the asker's wait of a minute.
pub const DEFAULT_MAX_REPLAY_EVENTS: u64 = 1_000_000;

/// How long a replay waits for the consumer's next message, or for it to
/// be created, before it reads by direct gets.
const READ_PATIENCE: Duration = Duration::from_secs(3);

/// A partition's shop stage rebuilt up to a stream sequence.
pub(crate) struct Replay {
    /// The stage, of the messages recorded by the key's `known_at`.
    pub(crate) stage: ShopStage,
    /// The last stream sequence read (0: none yet).
    reached: u64,
}

/// One kept replay, shared by the questions of its key.
type Kept = Arc<tokio::sync::Mutex<Replay>>;

/// The kept replays and what they cost.
#[derive(Default)]
pub(crate) struct Replays {
    kept: Mutex<VecDeque<((u32, i64), Kept)>>,
    /// Replays started from the stream's first message.
    pub(crate) started: AtomicU64,
    /// Messages read by replays (from the start or extending a kept one).
    pub(crate) messages_read: AtomicU64,
}

impl Replays {
    /// The replay of partition `p` at `known_at`, brought up to the stream's
    /// last message on the partition's subject: a kept one extended, or a new
    /// one. The guard holds it for the answer's computation.
    pub(crate) async fn get(
        &self,
        js: &jetstream::Context,
        policy: &Policy,
        max_events: u64,
        p: u32,
        known_at: UnixNs,
    ) -> Result<tokio::sync::OwnedMutexGuard<Replay>, ClusterError> {
        let kept = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            let key = (p, known_at.0);
            let found = kept.iter().position(|(k, _)| *k == key);
            let entry = match found.and_then(|at| kept.remove(at)) {
                Some((_, entry)) => entry,
                None => Arc::new(tokio::sync::Mutex::new(Replay {
                    stage: ShopStage::new(policy.clone()),
                    reached: 0,
                })),
            };
            // The newest at the back; the oldest dropped (a question still
            // using it keeps it alive until its answer is sent).
            kept.push_back((key, entry.clone()));
            while kept.len() > KEPT_REPLAYS {
                kept.pop_front();
            }
            entry
        };
        let mut replay = kept.lock_owned().await;
        if let Err(error) = self.extend(js, max_events, p, known_at, &mut replay).await {
            // A replay cut short is not kept: it would answer wrongly.
            self.forget(p, known_at);
            return Err(error);
        }
        Ok(replay)
    }

    fn forget(&self, p: u32, known_at: UnixNs) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(key, _)| *key != (p, known_at.0));
    }

    /// Reads the messages of `shop.<p>` after `replay.reached`, up to the
    /// last one stored now, applying those recorded by `known_at` (the
    /// recording stamp travels with the event, also when stage 2 held it
    /// for its paid), in stream order as the live worker applies them.
    async fn extend(
        &self,
        js: &jetstream::Context,
        max_events: u64,
        p: u32,
        known_at: UnixNs,
        replay: &mut Replay,
    ) -> Result<(), ClusterError> {
        let subject = Stage::Shops.subject(p);
        let stream = js
            .get_stream(Stage::Shops.stream())
            .await
            .map_err(|e| ClusterError::nats("opening the shop stream", e))?;
        let end = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(error)
                if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                0
            }
            Err(error) => return Err(ClusterError::nats("reading the shop stream", error)),
        };
        if end <= replay.reached {
            return Ok(());
        }
        if replay.reached == 0 {
            self.started.fetch_add(1, Ordering::Relaxed);
        }
        let too_large = |events: u64| ClusterError::ReplayTooLarge {
            partition: p,
            events,
            limit: max_events,
        };
        let config = jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: replay.reached + 1,
            },
            ..Default::default()
        };
        let opened = tokio::time::timeout(READ_PATIENCE, stream.create_consumer(config)).await;
        let mut read = 0u64;
        if let Ok(Ok(consumer)) = opened {
            let pending = consumer.cached_info().num_pending;
            if pending > max_events {
                return Err(too_large(pending));
            }
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| ClusterError::nats("reading the shop stream", e))?;
            while replay.reached < end {
                let message = match tokio::time::timeout(READ_PATIENCE, messages.next()).await {
                    Ok(Some(Ok(message))) => message,
                    // The consumer failed or went silent: the rest by
                    // direct gets.
                    _ => break,
                };
                let info = message
                    .info()
                    .map_err(|e| ClusterError::nats("reading the shop stream", e))?;
                let seq = info.stream_sequence;
                if seq <= replay.reached {
                    continue;
                }
                read += 1;
                if read > max_events {
                    return Err(too_large(read));
                }
                self.apply(replay, &subject, known_at, seq, &message.message.payload)?;
            }
        }
        while replay.reached < end {
            let message = match stream
                .direct_get_next_for_subject(subject.clone(), Some(replay.reached + 1))
                .await
            {
                Ok(message) => message,
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => break,
                Err(error) => return Err(ClusterError::nats("replaying the shop stream", error)),
            };
            read += 1;
            if read > max_events {
                return Err(too_large(read));
            }
            self.apply(
                replay,
                &subject,
                known_at,
                message.sequence,
                &message.payload,
            )?;
        }
        Ok(())
    }

    /// Applies the message at `seq` when it was recorded by `known_at`.
    fn apply(
        &self,
        replay: &mut Replay,
        subject: &str,
        known_at: UnixNs,
        seq: u64,
        payload: &[u8],
    ) -> Result<(), ClusterError> {
        let msg: ShopMsg = serde_json::from_slice(payload)
            .map_err(|e| ClusterError::Decode(format!("{subject} seq {seq}: {e}")))?;
        if msg.recorded_at_ns <= known_at.0 {
            replay.stage.handle(seq, msg);
        }
        replay.reached = seq;
        self.messages_read.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
