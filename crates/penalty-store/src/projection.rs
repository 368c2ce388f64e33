//! The projections on disk: the rules core's [`Ledger`], kept as a snapshot
//! file beside the log (see [`crate::snapshot`]) with the place in the
//! blocks file it reflects.
//!
//! Opening the projection ([`open_read`], or [`open`] for a writer) loads
//! the snapshot and folds in only the acknowledged blocks after it (the
//! tail), so a restart after a crash or a long ingest does not replay
//! everything. [`replay`] is the other path, the audit's: a fold of the log
//! alone, from sequence number 1, with no snapshot. Both must give the same
//! digest.

use std::collections::HashMap;

use penalty_core::ledger::partition::{partition_of, shop_of};
use penalty_core::{KindRef, Ledger, OrderIds, OrderIndex, Policy, UnixNs};

use penalty_core::compact::EventBuffer;

use crate::block::DecodedBlock;
use crate::error::StoreError;
use crate::log::EventLog;
use crate::parts::{self, Parts};
use crate::reader::LogReader;
use crate::snapshot::{self, SnapshotEnd, SNAPSHOT_FILE};

/// The checkpoint's own format version, first byte of its bytes: a checkpoint
/// of another version is ignored and rebuilt, never misread. It is the
/// bincode of the ledger streamed through an LZ4 frame, so that neither
/// writing nor reading it holds an uncompressed copy in memory. Version 4:
/// tracking numbers are deduplicated per order, not globally; version 5: an
/// order records whether any judgment reaches it.
const CHECKPOINT_FORMAT: u8 = 5;

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
    /// Folds one event in, already parsed. Events must come in sequence order.
    pub fn apply(
        &mut self,
        seq: u64,
        recorded_at: UnixNs,
        event: &penalty_core::Event,
    ) -> Result<(), StoreError> {
        self.fold_in(
            seq,
            event.at,
            event.kind_ref(),
            recorded_at,
            OrderIndex::Intern,
        )
    }

    fn fold_in(
        &mut self,
        seq: u64,
        at: UnixNs,
        kind: KindRef<'_>,
        recorded_at: UnixNs,
        order: OrderIndex,
    ) -> Result<(), StoreError> {
        debug_assert!(seq > self.seq, "events fold in sequence order");
        // The log never holds a second `paid` for an order (ingest rejects it
        // as order_already_paid), so a refusal here means the log is damaged.
        self.ledger
            .apply_ref_indexed(at, kind, recorded_at, order)
            .map_err(|e| corrupt(seq, format!("the rules refuse this event: {e}")))?;
        self.seq = seq;
        Ok(())
    }

    /// Serialises for a snapshot.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into memory cannot fail; if it ever did, no
        // snapshot is better than a wrong one.
        let mut encoder = lz4_flex::frame::FrameEncoder::new(vec![CHECKPOINT_FORMAT]);
        if bincode::serialize_into(&mut encoder, &self.ledger).is_err() {
            return Vec::new();
        }
        encoder.finish().unwrap_or_default()
    }

    fn decode(seq: u64, bytes: &[u8]) -> Option<Projection> {
        let (format, rest) = bytes.split_first()?;
        if *format != CHECKPOINT_FORMAT {
            return None;
        }
        let decoder = lz4_flex::frame::FrameDecoder::new(std::io::BufReader::new(rest));
        let ledger: Ledger = bincode::deserialize_from(decoder).ok()?;
        Some(Projection { ledger, seq })
    }

    /// Writes this projection as the snapshot, atomically, when its last
    /// event ends a block of the log (where a reader resumes folding;
    /// every fold of whole blocks does); otherwise writes nothing.
    pub fn save(&self, log: &EventLog) -> Result<(), StoreError> {
        let Some(end) = log.snapshot_end(self.seq)? else {
            tracing::debug!(seq = self.seq, "no block ends here: no snapshot written");
            return Ok(());
        };
        self.save_at(log.dir(), &end)
    }

    fn save_at(&self, dir: &std::path::Path, end: &SnapshotEnd) -> Result<(), StoreError> {
        debug_assert_eq!(end.seq, self.seq, "a snapshot of what it reflects");
        let bytes = self.encode();
        if bytes.is_empty() {
            return Ok(());
        }
        snapshot::write(dir, end, &bytes)?;
        drop(bytes);
        parts::write(dir, end, &self.ledger)
    }
}

/// The error for a stored event that cannot be folded in.
fn corrupt(seq: u64, detail: String) -> StoreError {
    StoreError::Corrupt {
        block_seq: seq,
        first_seq: seq,
        last_seq: seq,
        detail,
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

/// The projection of everything acknowledged in the log, for a writer
/// (which holds the log open): as [`open_read`], without the check of the
/// blocks under the snapshot. Warnings go to the log (`tracing`).
pub fn open(
    log: &EventLog,
    policy: &Policy,
    save: bool,
) -> Result<(Projection, Origin), StoreError> {
    let reader = LogReader::open(log.dir())?;
    let opened = open_read(&reader, policy, false, save)?;
    for warning in &opened.warnings {
        tracing::warn!("{warning}");
    }
    Ok((opened.projection, opened.origin))
}

/// What [`open_read`] gives: the projection, how it came by it, and what it
/// found wrong on the way, in sentences, for the user (a damaged log under
/// the snapshot, a damaged head journal or snapshot).
#[derive(Debug)]
pub struct Opened {
    /// The projection of the acknowledged log.
    pub projection: Projection,
    /// How it was made.
    pub origin: Origin,
    /// Damage found, which the answer does not depend on.
    pub warnings: Vec<String>,
}

/// The projection of everything `reader` holds under `policy`: the snapshot
/// when it is of this log and this policy, plus the acknowledged blocks
/// after it; otherwise a replay. With `check`, the blocks under the
/// snapshot are checked meanwhile, on another thread (damage there is
/// reported in [`Opened::warnings`], since the answer does not read them).
/// With `save`, a fold of at least [`CHECKPOINT_TAIL_EVENTS`] events is
/// written as the new snapshot, so that the next reader does not fold it
/// again (a failure to write, as in a read-only directory, is only logged).
pub fn open_read(
    reader: &LogReader,
    policy: &Policy,
    check: bool,
    save: bool,
) -> Result<Opened, StoreError> {
    let mut warnings = Vec::new();
    if let Some(damage) = &reader.head().damage {
        warnings.push(damage.clone());
    }
    let stored = match snapshot::read(reader.dir()) {
        Ok(stored) => stored,
        Err(error) => {
            warnings.push(error.to_string());
            None
        }
    };
    let usable = stored.and_then(|stored| match reader.check_snapshot_end(&stored.end) {
        Ok(()) => Some(stored),
        Err(why) => {
            warnings.push(format!(
                "the projection snapshot {SNAPSHOT_FILE} does not match the log: {why}; answered \
                 from a replay of the log instead"
            ));
            None
        }
    });
    // A snapshot of another policy or format is not damage: replayed.
    let decoded = usable.and_then(|stored| {
        Projection::decode(stored.end.seq, &stored.payload)
            .filter(|p| p.ledger.policy() == policy)
            .map(|p| (p, stored.end))
    });
    let (projection, origin, last_end) = match decoded {
        Some((mut projection, end)) => {
            let start = end.seq;
            let blocks = reader.blocks_after(&end);
            let last_end = blocks.last_end();
            let source = ReplaySource {
                blocks: Box::new(blocks),
                last_seq: reader.last_seq(),
            };
            std::thread::scope(|scope| {
                let checker = check
                    .then(|| {
                        std::thread::Builder::new()
                            .name("penalty-check".into())
                            .spawn_scoped(scope, || reader.check_blocks(start))
                            .ok()
                    })
                    .flatten();
                let folded = fold(source, &mut projection, None, None).0;
                if let Some(checker) = checker {
                    match checker.join() {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => warnings.push(format!(
                            "the log is damaged under the projection snapshot, which this \
                             answer comes from: {error}"
                        )),
                        Err(_) => warnings.push("checking the log failed (a bug)".into()),
                    }
                }
                folded
            })?;
            let origin = Origin::Checkpoint {
                seq: start,
                tail: projection.seq - start,
            };
            (projection, origin, last_end)
        }
        None => {
            let blocks = reader.blocks();
            let last_end = blocks.last_end();
            let source = ReplaySource {
                blocks: Box::new(blocks),
                last_seq: reader.last_seq(),
            };
            let projection = replay_from(source, policy, None)?;
            let origin = Origin::Replay {
                events: projection.seq,
            };
            (projection, origin, last_end)
        }
    };
    let folded = match origin {
        Origin::Checkpoint { tail, .. } => tail,
        Origin::Replay { events } => events,
    };
    let end = last_end.lock().ok().and_then(|end| *end);
    if save && warnings.is_empty() && folded >= CHECKPOINT_TAIL_EVENTS {
        if let Some(end) = end.filter(|end| end.seq == projection.seq) {
            if let Err(error) = projection.save_at(reader.dir(), &end) {
                tracing::info!(%error, "could not write the snapshot; the next reader folds again");
            }
        }
    }
    tracing::debug!(?origin, "projection opened");
    Ok(Opened {
        projection,
        origin,
        warnings,
    })
}

/// What [`open_part`] answers for.
#[derive(Clone, Copy, Debug)]
pub enum PartQuery<'a> {
    /// `shop S`: the part of the shop's partition.
    Shop(&'a str),
    /// `order O`: the part of its shop's partition, found through the
    /// snapshot's order index or the tail's `paid`.
    Order(&'a str),
}

/// The ledger of the one partition that answers `query`, as of everything
/// `reader` holds: the partitioned snapshot's part (see [`crate::parts`])
/// plus the tail events of that partition (those naming one of its shops,
/// and those of orders it holds or whose `paid` in the tail names one of
/// its shops). It answers `shop_report`/`order_report` for the query
/// exactly as the whole projection does (tested against generated
/// workloads), reading one part and the tail instead of everything.
/// `None` when there is no usable partitioned snapshot (none yet, another
/// version or policy, damaged, not of this log): the caller opens the whole
/// projection, which reports any damage.
pub fn open_part(
    reader: &LogReader,
    policy: &Policy,
    query: PartQuery<'_>,
) -> Result<Option<Opened>, StoreError> {
    let stored = match Parts::open(reader.dir()) {
        Ok(Some(stored)) => stored,
        Ok(None) => return Ok(None),
        Err(error) => {
            tracing::info!(%error, "the partitioned snapshot is unusable; reading the whole");
            return Ok(None);
        }
    };
    if reader.check_snapshot_end(&stored.end).is_err() {
        return Ok(None);
    }
    let start = stored.end.seq;
    let mut tail = Vec::new();
    for block in reader.blocks_after(&stored.end) {
        tail.push(ReadyBlock::decode(&block?, start + 1, None));
    }
    let count = stored.count();
    // Where the tail's `paid` events put their orders.
    let mut paid_in_tail: HashMap<&str, u32> = HashMap::new();
    for block in &tail {
        for (_, entry) in &block.entries {
            if let Ok((position, _)) = entry {
                if let Some((
                    _,
                    KindRef::Paid {
                        order_id, shop_id, ..
                    },
                )) = block.events.get(*position)
                {
                    paid_in_tail.insert(order_id, partition_of(shop_id, count));
                }
            }
        }
    }
    let candidates = match query {
        PartQuery::Shop(shop_id) => vec![partition_of(shop_id, count)],
        PartQuery::Order(order_id) => match paid_in_tail.get(order_id) {
            Some(part) => vec![*part],
            None => {
                let found = match stored.order_parts(order_id) {
                    Ok(found) => found,
                    Err(error) => {
                        tracing::info!(%error, "the partitioned snapshot is unusable");
                        return Ok(None);
                    }
                };
                // Not paid anywhere: every part holds it as the whole does.
                if found.is_empty() {
                    vec![0]
                } else {
                    found
                }
            }
        },
    };
    let mut chosen = None;
    for part in candidates {
        let ledger = match stored.part(part) {
            Ok(ledger) => ledger,
            Err(error) => {
                tracing::info!(%error, "the partitioned snapshot is unusable");
                return Ok(None);
            }
        };
        if ledger.policy() != policy {
            return Ok(None);
        }
        let mut projection = Projection { ledger, seq: start };
        for block in &tail {
            for (seq, entry) in &block.entries {
                let (position, _) = entry
                    .as_ref()
                    .map_err(|detail| corrupt(*seq, detail.clone()))?;
                let (at, kind) = block
                    .events
                    .get(*position)
                    .ok_or_else(|| corrupt(*seq, "its decoded form went missing".into()))?;
                // An event without a shop goes where its order is: a part
                // holds its paid orders and every order not paid yet.
                let mine = match (shop_of(&kind), kind.order_id()) {
                    (Some(shop_id), _) => partition_of(shop_id, count) == part,
                    (None, Some(order_id)) => {
                        paid_in_tail.get(order_id) == Some(&part)
                            || projection.ledger.knows_order(order_id)
                    }
                    (None, None) => false,
                };
                if mine {
                    projection.fold_in(*seq, at, kind, block.recorded_at, OrderIndex::Intern)?;
                }
                // The part reflects the log up to here, whether or not the
                // event was its own.
                projection.seq = *seq;
            }
        }
        let holds = match query {
            PartQuery::Order(order_id) => projection.ledger.holds_paid_order(order_id),
            PartQuery::Shop(_) => true,
        };
        if holds || chosen.is_none() {
            chosen = Some(projection);
        }
        if holds {
            break;
        }
    }
    let Some(projection) = chosen else {
        return Ok(None);
    };
    let warnings = reader.head().damage.iter().cloned().collect();
    let origin = Origin::Checkpoint {
        seq: start,
        tail: projection.seq - start,
    };
    Ok(Some(Opened {
        projection,
        origin,
        warnings,
    }))
}

/// [`replay`] of what a reader holds; with where its last block lies, for
/// [`save_read`].
pub fn replay_read(
    reader: &LogReader,
    policy: &Policy,
    known_at: Option<UnixNs>,
) -> Result<(Projection, Option<SnapshotEnd>), StoreError> {
    let blocks = reader.blocks();
    let last_end = blocks.last_end();
    let source = ReplaySource {
        blocks: Box::new(blocks),
        last_seq: reader.last_seq(),
    };
    let projection = replay_from(source, policy, known_at)?;
    let end = last_end.lock().ok().and_then(|end| *end);
    Ok((projection, end))
}

/// Writes `projection` as the snapshot when it reflects exactly the log up
/// to `end` (as [`replay_read`] without `known_at` gives); `false` when it
/// does not, and nothing is written.
pub fn save_read(
    reader: &LogReader,
    projection: &Projection,
    end: Option<SnapshotEnd>,
) -> Result<bool, StoreError> {
    match end {
        Some(end) if end.seq == projection.seq && projection.seq > 0 => {
            projection.save_at(reader.dir(), &end)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A fold of the log alone, from sequence number 1, ignoring any checkpoint.
/// With `known_at`, only the events recorded by then: "what did the ledger
/// say at that time?".
pub fn replay(
    log: &EventLog,
    policy: &Policy,
    known_at: Option<UnixNs>,
) -> Result<Projection, StoreError> {
    replay_from(ReplaySource::of(log)?, policy, known_at)
}

/// What a replay reads, taken from the log beforehand: its blocks up to the
/// last sequence number it held then. The blocks are read through their own
/// handles, so a caller that keeps the log behind a lock (the server) takes
/// a source under the lock and replays with the lock released, while
/// appends go on; they are not part of this replay.
pub struct ReplaySource {
    blocks: Box<dyn Iterator<Item = Result<DecodedBlock, StoreError>> + Send>,
    last_seq: u64,
}

impl ReplaySource {
    /// The log as it is now.
    pub fn of(log: &EventLog) -> Result<ReplaySource, StoreError> {
        ReplaySource::starting_at(log, 1)
    }

    /// The log as it is now, from the block holding sequence number `seq`.
    fn starting_at(log: &EventLog, seq: u64) -> Result<ReplaySource, StoreError> {
        Ok(ReplaySource {
            blocks: Box::new(log.iter_blocks_from(seq)),
            last_seq: log.last_seq()?,
        })
    }

    /// The last sequence number the replay reads.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// [`replay`] of a source taken beforehand.
pub fn replay_from(
    source: ReplaySource,
    policy: &Policy,
    known_at: Option<UnixNs>,
) -> Result<Projection, StoreError> {
    let mut projection = Projection {
        ledger: Ledger::new(policy.clone()),
        seq: 0,
    };
    // The reading thread interns the order ids (see `OrderIds`).
    let outside = projection.ledger.begin_bulk_outside();
    // About two events per order in practice; a wrong guess costs only
    // capacity, which stays untouched memory until used.
    let orders = usize::try_from(source.last_seq / 2).unwrap_or(0);
    projection.ledger.reserve_orders(orders);
    let ids = outside.then(|| OrderIds::with_capacity(orders));
    let (folded, ids) = fold(source, &mut projection, known_at, ids);
    let ended = match ids {
        Some(ids) => projection
            .ledger
            .end_bulk_outside(ids)
            .map_err(|e| StoreError::Fold {
                detail: e.to_string(),
            }),
        None if outside => Err(StoreError::ThreadEnded {
            thread: "replay reader",
        }),
        None => {
            projection.ledger.end_bulk();
            Ok(())
        }
    };
    folded?;
    ended?;
    Ok(projection)
}

/// Folds every event after `projection.seq` into the projection (only those
/// recorded by `known_at`, when given). Reading, checking and decoding the
/// blocks run on a second thread while this one folds the decoded events in
/// (without allocating per event); the bounded channel keeps at most a few
/// blocks in memory. With `ids` (a fold begun by
/// `Ledger::begin_bulk_outside`), the reading thread also interns the order
/// ids, and gives them back.
fn fold(
    source: ReplaySource,
    projection: &mut Projection,
    known_at: Option<UnixNs>,
    ids: Option<OrderIds>,
) -> (Result<(), StoreError>, Option<OrderIds>) {
    let from = projection.seq + 1;
    let ReplaySource { blocks, last_seq } = source;
    let outside = ids.is_some();
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<ReadyBlock, StoreError>>(2);
    let reader = std::thread::Builder::new()
        .name("penalty-replay-read".into())
        .spawn(move || {
            let mut ids = ids;
            for block in blocks {
                if let Ok(block) = &block {
                    // Appended after the source was taken.
                    if block.first_seq > last_seq {
                        break;
                    }
                    // A filter rather than a stop at the first later block:
                    // the wall clock that stamped the blocks may have
                    // stepped back.
                    if known_at.is_some_and(|k| block.recorded_at > k) {
                        continue;
                    }
                }
                let ready = block.map(|block| ReadyBlock::decode(&block, from, ids.as_mut()));
                let failed = ready.is_err();
                if sender.send(ready).is_err() || failed {
                    break;
                }
            }
            ids
        });
    let reader = match reader {
        Ok(reader) => reader,
        Err(source) => {
            let error = StoreError::Spawn {
                thread: "replay reader",
                source,
            };
            return (Err(error), None);
        }
    };
    let mut result = Ok(());
    'blocks: for block in receiver {
        let block = match block {
            Ok(block) => block,
            Err(error) => {
                result = Err(error);
                break;
            }
        };
        for (seq, decoded) in &block.entries {
            let folded = decoded
                .as_ref()
                .map_err(|detail| corrupt(*seq, detail.clone()))
                .and_then(|&(position, order)| {
                    let (at, kind) = block
                        .events
                        .get(position)
                        .ok_or_else(|| corrupt(*seq, "its decoded form went missing".into()))?;
                    let order = if outside {
                        OrderIndex::Given(order)
                    } else {
                        OrderIndex::Intern
                    };
                    projection.fold_in(*seq, at, kind, block.recorded_at, order)
                });
            if let Err(error) = folded {
                result = Err(error);
                break 'blocks;
            }
        }
    }
    // The receiver is gone with the loop, which lets a reader blocked on a
    // full channel finish; a panic in it is a bug, reported as such.
    match reader.join() {
        Ok(ids) => (result, ids),
        Err(_) => (
            Err(StoreError::ThreadEnded {
                thread: "replay reader",
            }),
            None,
        ),
    }
}

/// A block's events from `from` on, decoded by the reading thread for the
/// folding one.
struct ReadyBlock {
    recorded_at: UnixNs,
    events: EventBuffer,
    /// Each event's sequence number, and its position in `events` with its
    /// order's index when the reading thread interns them, or why it does
    /// not decode (damage, reported when the fold reaches it).
    entries: Vec<(u64, DecodedEntry)>,
}

/// An entry as [`ReadyBlock`] keeps it: its position in the buffer and its
/// order's index, or why it does not decode.
type DecodedEntry = Result<(usize, Option<u32>), String>;

impl ReadyBlock {
    /// Decodes the entries of `block` from `from` on: from the compact form,
    /// or by parsing the stored JSON.
    fn decode(block: &DecodedBlock, from: u64, mut ids: Option<&mut OrderIds>) -> ReadyBlock {
        let mut events = EventBuffer::with_capacity(block.entries.len(), block.bytes.len() / 3);
        let mut entries = Vec::with_capacity(block.entries.len());
        for (offset, entry) in block.entries.iter().enumerate() {
            let seq = block.first_seq + offset as u64;
            if seq < from {
                continue;
            }
            let (payload, compact) = block.payload(entry);
            let mut keep = |at: UnixNs, kind: &KindRef<'_>| {
                let order = match (ids.as_deref_mut(), kind.order_id()) {
                    (Some(ids), Some(order_id)) => Some(
                        ids.intern(order_id)
                            .ok_or_else(|| "the order ids pass 4 GiB".to_string())?,
                    ),
                    _ => None,
                };
                let position = events
                    .push(at, kind)
                    .ok_or_else(|| "a block's text passes 4 GiB".to_string())?;
                Ok((position, order))
            };
            let decoded = if compact {
                penalty_core::compact::decode_ref(payload)
                    .ok_or_else(|| "its compact form does not decode".to_string())
                    .and_then(|(_, at, kind)| keep(at, &kind))
            } else {
                penalty_core::event::parse_stored(payload)
                    .map_err(|reject| format!("the stored JSON no longer validates ({reject})"))
                    .and_then(|event| keep(event.at, &event.kind_ref()))
            };
            entries.push((seq, decoded));
        }
        ReadyBlock {
            recorded_at: block.recorded_at,
            events,
            entries,
        }
    }
}
