//! The projections on disk: the rules core's [`Ledger`], checkpointed in the
//! log's database together with the sequence number it reflects.
//!
//! Opening the projection loads the checkpoint and folds in only the events
//! appended since (the tail), so a restart after a crash or a long ingest does
//! not replay everything. [`replay`] is the other path, the audit's: a fold of
//! the log alone, from sequence number 1, with no checkpoint. Both must give
//! the same digest.

use penalty_core::{Instant, Ledger, Policy};

use crate::error::StoreError;
use crate::log::EventLog;

/// The checkpoint's own format version, first byte of its bytes: a checkpoint
/// of another version is ignored and rebuilt, never misread. Version 2 is the
/// bincode of the ledger, LZ4-compressed (size in front).
const CHECKPOINT_FORMAT: u8 = 2;
/// A checkpoint claiming more than this uncompressed is damaged.
const MAX_CHECKPOINT_BYTES: usize = 64 << 30;

/// A tail longer than this is worth a new checkpoint once folded in.
pub const CHECKPOINT_TAIL_EVENTS: u64 = 10_000;

/// The ledger as of a log position.
#[derive(Clone, Debug)]
pub struct Projection {
    /// The projections.
    pub ledger: Ledger,
    /// The last sequence number folded into `ledger` (0: none).
    pub seq: u64,
}

impl Projection {
    /// Folds one stored event in. Events must come in sequence order.
    pub fn apply_stored(
        &mut self,
        seq: u64,
        recorded_at: Instant,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let event =
            penalty_core::event::parse_stored(json).map_err(|reject| StoreError::Corrupt {
                block_seq: seq,
                first_seq: seq,
                last_seq: seq,
                detail: format!("the stored JSON no longer validates ({reject})"),
            })?;
        self.apply(seq, recorded_at, &event)
    }

    /// Folds one event in, already parsed.
    pub fn apply(
        &mut self,
        seq: u64,
        recorded_at: Instant,
        event: &penalty_core::Event,
    ) -> Result<(), StoreError> {
        debug_assert!(seq > self.seq, "events fold in sequence order");
        // The log never holds a second `paid` for an order (ingest rejects it
        // as order_already_paid), so a refusal here means the log is damaged.
        self.ledger
            .apply(event, recorded_at)
            .map_err(|e| StoreError::Corrupt {
                block_seq: seq,
                first_seq: seq,
                last_seq: seq,
                detail: format!("the rules refuse this event: {e}"),
            })?;
        self.seq = seq;
        Ok(())
    }

    /// Serialises for [`EventLog::save_checkpoint`].
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail; if it ever did, no
        // checkpoint is better than a wrong one.
        let Ok(plain) = bincode::serialize(&self.ledger) else {
            return Vec::new();
        };
        let mut bytes = vec![CHECKPOINT_FORMAT];
        bytes.extend_from_slice(&lz4_flex::block::compress_prepend_size(&plain));
        bytes
    }

    fn decode(seq: u64, bytes: &[u8]) -> Option<Projection> {
        let (format, rest) = bytes.split_first()?;
        if *format != CHECKPOINT_FORMAT {
            return None;
        }
        let size = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        if size > MAX_CHECKPOINT_BYTES {
            return None;
        }
        let plain = lz4_flex::block::decompress_size_prepended(rest).ok()?;
        let ledger: Ledger = bincode::deserialize(&plain).ok()?;
        Some(Projection { ledger, seq })
    }

    /// Writes this projection as the checkpoint, in one atomic write.
    pub fn save(&self, log: &EventLog) -> Result<(), StoreError> {
        let bytes = self.encode();
        if bytes.is_empty() {
            return Ok(());
        }
        log.save_checkpoint(self.seq, &bytes)
    }
}

/// How [`open`] came by its projection, for logs and the audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From the checkpoint at `seq`, plus `tail` events.
    Checkpoint {
        /// The checkpoint's position.
        seq: u64,
        /// Events folded in after it.
        tail: u64,
    },
    /// No usable checkpoint (none, another policy, another format): a full
    /// replay of `events`.
    Replay {
        /// Events folded in.
        events: u64,
    },
}

/// The projection of everything in the log under `policy`: the checkpoint
/// when it was made under the same policy, plus the tail; otherwise a replay.
/// A long tail is checkpointed again when `save` is true.
pub fn open(
    log: &EventLog,
    policy: &Policy,
    save: bool,
) -> Result<(Projection, Origin), StoreError> {
    let checkpoint = log
        .load_checkpoint()?
        .and_then(|(seq, bytes)| Projection::decode(seq, &bytes))
        .filter(|p| p.ledger.policy() == policy);
    let (mut projection, from_checkpoint) = match checkpoint {
        Some(p) => (p, true),
        None => (
            Projection {
                ledger: Ledger::new(policy.clone()),
                seq: 0,
            },
            false,
        ),
    };
    let start = projection.seq;
    for stored in log.iter_from(start + 1) {
        let stored = stored?;
        projection.apply_stored(stored.seq, stored.recorded_at, &stored.json)?;
    }
    let folded = projection.seq - start;
    if save && folded >= CHECKPOINT_TAIL_EVENTS {
        projection.save(log)?;
    }
    let origin = if from_checkpoint {
        Origin::Checkpoint {
            seq: start,
            tail: folded,
        }
    } else {
        Origin::Replay { events: folded }
    };
    tracing::debug!(?origin, "projection opened");
    Ok((projection, origin))
}

/// A fold of the log alone, from sequence number 1, ignoring any checkpoint.
/// With `known_at`, only the events recorded by then: "what did the ledger
/// say at that time?".
pub fn replay(
    log: &EventLog,
    policy: &Policy,
    known_at: Option<Instant>,
) -> Result<Projection, StoreError> {
    let mut projection = Projection {
        ledger: Ledger::new(policy.clone()),
        seq: 0,
    };
    for stored in log.iter_from(1) {
        let stored = stored?;
        // A filter rather than a stop at the first later block: the wall
        // clock that stamped the blocks may have stepped back.
        if known_at.is_some_and(|known_at| stored.recorded_at > known_at) {
            continue;
        }
        projection.apply_stored(stored.seq, stored.recorded_at, &stored.json)?;
    }
    Ok(projection)
}
