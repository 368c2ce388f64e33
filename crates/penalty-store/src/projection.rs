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

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;

use penalty_core::ledger::partition::{fnv1a64, partition_of, shop_of};
use penalty_core::{KindRef, Ledger, OrderIds, OrderIndex, Policy, UnixNs};

use penalty_core::compact::EventBuffer;

use crate::block::DecodedBlock;
use crate::error::StoreError;
use crate::log::EventLog;
use crate::parts::{self, Parts};
use crate::reader::{LogReader, ReadBlock, ScanDamage, SharedBlock};
use crate::snapshot::{self, SnapshotEnd, SNAPSHOT_FILE};
use crate::tail_index::{
    self, BlockRecord, Found, IndexedBlock, Needs, TailIndex, TailIndexWriter, UNKNOWN_PARTITION,
};

/// The checkpoint's own format version, first byte of its bytes: a checkpoint
/// of another version is ignored and rebuilt, never misread. It is the
/// bincode of the ledger streamed through an LZ4 frame, so that neither
/// writing nor reading it holds an uncompressed copy in memory. Version 4:
/// tracking numbers are deduplicated per order, not globally; version 5: an
/// order records whether any judgment reaches it.
const CHECKPOINT_FORMAT: u8 = 5;

/// The target of the debug events that time a read's steps
/// (`RUST_LOG=penalty::timing=debug`).
pub const TIMING: &str = "penalty::timing";

/// Microseconds since `since`, for [`TIMING`]'s events.
pub fn micros(since: std::time::Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

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
        self.fold_in_to_shop(seq, at, kind, recorded_at, order)
            .map(drop)
    }

    /// [`Projection::fold_in`], saying the shop the event belongs to (see
    /// [`Ledger::apply_ref_to_shop`]).
    fn fold_in_to_shop(
        &mut self,
        seq: u64,
        at: UnixNs,
        kind: KindRef<'_>,
        recorded_at: UnixNs,
        order: OrderIndex,
    ) -> Result<Option<u32>, StoreError> {
        debug_assert!(seq > self.seq, "events fold in sequence order");
        // The log never holds a second `paid` for an order (ingest rejects it
        // as order_already_paid), so a refusal here means the log is damaged.
        let shop = self
            .ledger
            .apply_ref_to_shop(at, kind, recorded_at, order)
            .map_err(|e| corrupt(seq, format!("the rules refuse this event: {e}")))?;
        self.seq = seq;
        Ok(shop)
    }

    /// Serialises for a snapshot.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into memory cannot fail; if it ever did, no
        // snapshot is better than a wrong one.
        self.encode_into(Vec::new()).unwrap_or_default()
    }

    /// Serialises for a snapshot into `out`, as [`Projection::encode`]
    /// does (the same bytes), without holding them: the snapshot's writer
    /// streams them into its file.
    pub fn encode_into<W: Write>(&self, mut out: W) -> std::io::Result<W> {
        use lz4_flex::frame::{BlockSize, FrameEncoder, FrameInfo};
        out.write_all(&[CHECKPOINT_FORMAT])?;
        // Blocks of 64 KiB, as the encoder picks for a first write that
        // small; set here because the buffer below makes the first write
        // larger.
        let info = FrameInfo::new().block_size(BlockSize::Max64KB);
        // bincode writes field by field, a few bytes each: a buffer in
        // front of the encoder makes each a copy instead of a call into it.
        // Its blocks are the same whatever the writes' sizes.
        let mut buffered =
            std::io::BufWriter::with_capacity(1 << 16, FrameEncoder::with_frame_info(info, out));
        bincode::serialize_into(&mut buffered, &self.ledger).map_err(std::io::Error::other)?;
        // Not `flush`: that would end the encoder's block early.
        let encoder = buffered
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        encoder.finish().map_err(std::io::Error::other)
    }

    /// Whether `payload` (a snapshot's) is exactly this projection's
    /// encoding. The same bytes decode to the same ledger, which answers
    /// every query (and gives every digest) alike, so `replay` and `audit`
    /// take this for the stored projection's state instead of decoding and
    /// digesting it apart. Compared as it serialises, stopping at the first
    /// difference, with neither side held uncompressed.
    pub fn encodes_as(&self, payload: &[u8]) -> bool {
        let Some((format, rest)) = payload.split_first() else {
            return false;
        };
        if *format != CHECKPOINT_FORMAT {
            return false;
        }
        let mut stored = lz4_flex::frame::FrameDecoder::new(rest);
        let same = SameBytes {
            stored: &mut stored,
            buffer: vec![0; 1 << 16],
        };
        let mut out = std::io::BufWriter::with_capacity(1 << 16, same);
        if bincode::serialize_into(&mut out, &self.ledger).is_err() || out.flush().is_err() {
            return false;
        }
        drop(out);
        // Nothing may be left over.
        matches!(stored.read(&mut [0u8; 1]), Ok(0))
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

    /// Writes both snapshots, each atomically: the whole on one thread while
    /// this one splits and writes the parts (two independent files; a
    /// crash between them leaves each whole or absent, and a reader checks
    /// each against the log on its own). `end` is where the block of this
    /// projection's last event lies ([`EventLog::snapshot_end`]): a writer
    /// that found it may save a copy of its projection off its own thread.
    pub fn save_at(&self, dir: &std::path::Path, end: &SnapshotEnd) -> Result<(), StoreError> {
        debug_assert_eq!(end.seq, self.seq, "a snapshot of what it reflects");
        // Streamed into its file: the encoding is never held whole.
        let write_whole =
            || snapshot::write_streamed(dir, end, |out| self.encode_into(out).map(drop));
        std::thread::scope(|scope| {
            let whole = std::thread::Builder::new()
                .name("penalty-snapshot".into())
                .spawn_scoped(scope, write_whole);
            match whole {
                Ok(whole) => {
                    let parts = parts::write(dir, end, &self.ledger);
                    let whole = whole.join().unwrap_or(Err(StoreError::ThreadEnded {
                        thread: "snapshot writer",
                    }));
                    whole.and(parts)
                }
                Err(_) => write_whole().and_then(|()| parts::write(dir, end, &self.ledger)),
            }
        })
    }
}

/// A writer that compares what is written with what `stored` reads, and
/// fails at the first difference (see [`Projection::encodes_as`]).
struct SameBytes<R> {
    stored: R,
    buffer: Vec<u8>,
}

impl<R: Read> Write for SameBytes<R> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(self.buffer.len());
        self.stored.read_exact(&mut self.buffer[..n])?;
        if self.buffer[..n] != bytes[..n] {
            return Err(std::io::Error::other("the bytes differ"));
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`Ledger::digest`] on every core: threads take the ledger's runs of
/// orders in turn ([`Ledger::digest_work`]), each adding them to a part of
/// its own; the parts' sums do not depend on who added what, so the digest
/// is the same.
pub fn digest(ledger: &Ledger, as_of: UnixNs) -> String {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    digest_on(ledger, as_of, threads)
}

/// [`digest`] on `threads` threads (one: [`Ledger::digest`] itself).
pub fn digest_on(ledger: &Ledger, as_of: UnixNs, threads: usize) -> String {
    if threads <= 1 {
        return ledger.digest(as_of);
    }
    let work = ledger.digest_work(as_of);
    let runs: Vec<_> = work.order_runs().collect();
    let next = AtomicUsize::new(0);
    let (work_ref, runs, next) = (&work, &runs, &next);
    let parts = std::thread::scope(|scope| {
        let add = move || {
            let mut part = work_ref.part();
            while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                work_ref.add_orders(&mut part, run.clone());
            }
            part
        };
        let spawned: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("penalty-digest".into())
                    .spawn_scoped(scope, add)
                    .ok()
            })
            .collect();
        let joined = spawned.len();
        // This thread adds runs too; whatever a thread that could not start
        // would have taken, the others take.
        let mut parts = vec![add()];
        parts.extend(spawned.into_iter().filter_map(|thread| thread.join().ok()));
        // A thread that panicked took runs that no part holds.
        (parts.len() == joined + 1).then_some(parts)
    });
    match parts {
        Some(parts) => work.finish(parts),
        // Computed again on this thread.
        None => ledger.digest(as_of),
    }
}

/// Blocks of appended events a [`Follower`] may hold unfolded before the
/// writer waits for it.
const FOLLOW_BLOCKS: usize = 16;

/// A fold of a writer's appends as they become durable, on a thread of its
/// own, so that the projection of everything appended is ready (to be
/// snapshotted) when the appends end, without reading the blocks back. It
/// starts from the projection of what the log held before (the snapshot
/// and its tail, opened on its thread beside the appends). Whatever goes
/// wrong in it only loses the head start: [`Follower::finish`] says so and
/// the caller opens the projection as a reader would.
pub struct Follower {
    sender: Option<std::sync::mpsc::SyncSender<FollowBatch>>,
    /// Says once that the projection the fold starts from is loaded.
    loaded: Option<std::sync::mpsc::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<Result<Projection, StoreError>>>,
    /// Where the block of the next events pushed lies, when told.
    next_block: Option<(u64, crate::block::Locator)>,
}

/// Appended events as a [`Follower`] gets them: their stored forms, copied
/// out of the writer's buffers (which go back to its reader).
struct FollowBatch {
    bytes: Vec<u8>,
    /// Each event's sequence number, when its block was recorded, where its
    /// stored form ends in `bytes`, whether that is the compact form, and
    /// the length of its entry in the block.
    events: Vec<(u64, UnixNs, usize, bool, u32)>,
    /// The block's first sequence number and place, when known: then the
    /// fold records where each partition's events lie in it (see
    /// [`crate::tail_index`]).
    block: Option<(u64, crate::block::Locator)>,
}

/// When a [`Follower`] snapshots while the writer still runs, so that a
/// reader beside a long-running writer (`penalty ingest -` fed by a
/// producer) folds a short tail instead of everything since the writer
/// started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackgroundSnapshots {
    /// Events folded since the last snapshot before another is worth it.
    pub min_events: u64,
    /// The least time from the end of one snapshot to the start of the
    /// next; it is also at least [`SNAPSHOT_DUTY`] times as long as the last
    /// snapshot took, so snapshots never take more than a third of a core.
    pub min_interval: std::time::Duration,
}

impl Default for BackgroundSnapshots {
    fn default() -> BackgroundSnapshots {
        BackgroundSnapshots {
            min_events: CHECKPOINT_TAIL_EVENTS,
            min_interval: std::time::Duration::from_secs(1),
        }
    }
}

/// A background snapshot waits at least this many times as long as the
/// last one took.
pub const SNAPSHOT_DUTY: u32 = 2;

impl Follower {
    /// Starts following the appends after what `reader` holds (a reader
    /// opened before the first append, by the writer). `expected_events`
    /// sizes the ledger's tables once (a guess: growing a table of a
    /// million order ids rehashes them all, a wrong guess costs capacity).
    pub fn start(
        reader: LogReader,
        policy: Policy,
        expected_events: u64,
    ) -> Result<Follower, StoreError> {
        Follower::spawn(reader, policy, expected_events, None)
    }

    /// As [`Follower::start`], also writing both snapshots in the background
    /// as `every` says, each of a copy of the projection at a block's end
    /// (the fold goes on meanwhile). [`Follower::finish`] waits for the one
    /// being written, so a later snapshot is never replaced by an older.
    pub fn start_snapshotting(
        reader: LogReader,
        policy: Policy,
        expected_events: u64,
        every: BackgroundSnapshots,
    ) -> Result<Follower, StoreError> {
        Follower::spawn(reader, policy, expected_events, Some(every))
    }

    fn spawn(
        reader: LogReader,
        policy: Policy,
        expected_events: u64,
        every: Option<BackgroundSnapshots>,
    ) -> Result<Follower, StoreError> {
        let (sender, batches) = std::sync::mpsc::sync_channel::<FollowBatch>(FOLLOW_BLOCKS);
        let (said_loaded, loaded) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("penalty-follow".into())
            .spawn(move || {
                let mut index = TailIndexWriter::new(reader.dir());
                let opened = open_read(&reader, &policy, false, false)?;
                for warning in &opened.warnings {
                    tracing::warn!("{warning}");
                }
                let mut projection = opened.projection;
                let mut background = every.map(|every| Background::new(&reader, every));
                // About two events per order, as in a replay.
                let orders = usize::try_from(expected_events / 2).unwrap_or(0);
                projection.ledger.reserve_orders(orders);
                // A fold from nothing builds the settle-day index once, at
                // its end, as a replay does.
                let bulk = projection.ledger.begin_bulk();
                // Loaded and sized (growing the tables of a 5M ledger
                // rehashes its order ids): ready to fold, and to index.
                let _ = said_loaded.send(());
                let mut folded = Ok(());
                // The partition of each shop number, once known.
                let mut shop_parts: Vec<u32> = Vec::new();
                for batch in batches {
                    folded = batch.fold_into(&mut projection, &mut index, &mut shop_parts);
                    if folded.is_err() {
                        break;
                    }
                    if let Some(background) = &mut background {
                        if background.due(&projection) {
                            background.write(&projection);
                        }
                    }
                }
                if bulk {
                    projection.ledger.end_bulk();
                }
                if let Some(background) = background {
                    background.wait();
                }
                folded.map(|()| projection)
            })
            .map_err(|source| StoreError::Spawn {
                thread: "projection follower",
                source,
            })?;
        Ok(Follower {
            sender: Some(sender),
            loaded: Some(loaded),
            thread: Some(thread),
            next_block: None,
        })
    }

    /// Waits until the follower has loaded the projection it folds from
    /// and sized its tables (at once after the first call, or when it
    /// stopped). A writer calls
    /// it before its first append: until then the follower writes no tail
    /// index, so every block appended meanwhile would be read whole by
    /// each reader (at 5M orders the snapshot takes seconds to load, and
    /// [`FOLLOW_BLOCKS`] blocks, 131,072 events, would wait unindexed).
    pub fn wait_loaded(&mut self) {
        if let Some(loaded) = self.loaded.take() {
            let _ = loaded.recv();
        }
    }

    /// Says where the block of the events of the next [`Follower::push`]
    /// lies (its first sequence number and place), so that the follower
    /// adds the block to the tail index.
    pub fn located(&mut self, first_seq: u64, block: crate::block::Locator) {
        self.next_block = Some((first_seq, block));
    }

    /// Hands over events now durable, in sequence order. Never fails: a
    /// follower that stopped is reported by [`Follower::finish`].
    pub fn push(&mut self, events: &[crate::ingest::AppendedEvent<'_>]) {
        let Some(sender) = &self.sender else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let bytes = events.iter().map(|e| e.line.payload.bytes().len()).sum();
        let mut batch = FollowBatch {
            bytes: Vec::with_capacity(bytes),
            events: Vec::with_capacity(events.len()),
            block: self.next_block.take(),
        };
        for event in events {
            let payload = event.line.payload;
            batch.bytes.extend_from_slice(payload.bytes());
            let entry = tail_index::ENTRY_FIXED_BYTES
                + event.line.paid_order_id.map_or(0, <[u8]>::len)
                + payload.bytes().len();
            batch.events.push((
                event.seq,
                event.recorded_at,
                batch.bytes.len(),
                payload.is_compact(),
                u32::try_from(entry).unwrap_or(u32::MAX),
            ));
        }
        if sender.send(batch).is_err() {
            self.sender = None;
        }
    }

    /// The projection of everything before the follower started and every
    /// event pushed since; an error when the follower stopped on the way.
    pub fn finish(mut self) -> Result<Projection, StoreError> {
        self.sender = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(folded)) => folded,
            _ => Err(StoreError::ThreadEnded {
                thread: "projection follower",
            }),
        }
    }
}

impl FollowBatch {
    /// Folds the batch in; when its block's place is known, records in
    /// `index` the partition of each of its events, as the ledger knows it
    /// before the event (an event naming only its order belongs to the
    /// shop of the order's `paid`, when there is one).
    fn fold_into(
        self,
        projection: &mut Projection,
        index: &mut TailIndexWriter,
        shop_parts: &mut Vec<u32>,
    ) -> Result<(), StoreError> {
        let FollowBatch {
            bytes,
            events,
            block,
        } = self;
        let mut start = 0;
        let mut entries = Vec::with_capacity(if block.is_some() { events.len() } else { 0 });
        let mut entry_offset = crate::block::HEADER_BYTES as u64;
        let first_seq = events.first().map(|e| e.0);
        let count = events.len();
        // Each event's partition is that of the shop the fold says it
        // belongs to: its own, or for an event naming only its order the
        // shop of the order's `paid`, which only a `paid` sets, so the
        // ledger knew it before the event too. Partitions are kept per
        // shop number, so each shop's id is hashed once.
        let mut note = |ledger: &Ledger, shop: Option<u32>, entry_len: u32| {
            if block.is_some() {
                let part = shop.map_or(UNKNOWN_PARTITION, |shop| {
                    let at = shop as usize;
                    if shop_parts.len() <= at {
                        shop_parts.resize(at + 1, UNKNOWN_PARTITION);
                    }
                    if shop_parts[at] == UNKNOWN_PARTITION {
                        shop_parts[at] = ledger
                            .shop_id_at(shop)
                            .map_or(UNKNOWN_PARTITION, |id| partition_of(id, parts::PARTS));
                    }
                    shop_parts[at]
                });
                entries.push((part, u32::try_from(entry_offset).unwrap_or(u32::MAX)));
            }
            entry_offset += u64::from(entry_len);
        };
        // Every event decoded first, so that the order ids of the batch are
        // interned together (their table's cache misses overlap,
        // `Ledger::intern_order_ids`) before the fold, in the fold's order.
        // Decoding stops at the first event that does not decode; the
        // events before it are folded, then it is reported, as one by one.
        let mut decoded: Vec<(u64, UnixNs, u32, Decoded<'_>)> = Vec::with_capacity(count);
        let mut undecoded = None;
        for (seq, recorded_at, end, compact, entry_len) in events {
            let stored = &bytes[start..end];
            start = end;
            let event = if compact {
                match penalty_core::compact::decode_ref(stored) {
                    Some((_, at, kind)) => Decoded::Compact(at, kind),
                    None => {
                        undecoded = Some(corrupt(seq, "its compact form does not decode".into()));
                        break;
                    }
                }
            } else {
                match penalty_core::event::parse_stored(stored) {
                    Ok(event) => Decoded::Json(event),
                    Err(reject) => {
                        let detail = format!("its stored JSON does not validate ({reject})");
                        undecoded = Some(corrupt(seq, detail));
                        break;
                    }
                }
            };
            decoded.push((seq, recorded_at, entry_len, event));
        }
        let order_ids: Vec<&str> = decoded
            .iter()
            .filter_map(|(_, _, _, event)| event.kind().order_id())
            .collect();
        let mut orders = Vec::with_capacity(order_ids.len());
        projection.ledger.intern_order_ids(&order_ids, &mut orders);
        let mut orders = orders.into_iter();
        for (seq, recorded_at, entry_len, event) in &decoded {
            let (seq, recorded_at, entry_len) = (*seq, *recorded_at, *entry_len);
            if seq != projection.seq + 1 {
                return Err(corrupt(
                    seq,
                    format!(
                        "the follower expected sequence number {}",
                        projection.seq + 1
                    ),
                ));
            }
            let (at, kind) = (event.at(), event.kind());
            // An id the ledger could not intern (past 4 GiB of ids) is
            // interned again by the fold, which refuses it as it always did.
            let order = match kind.order_id().and_then(|_| orders.next().flatten()) {
                Some(order) => OrderIndex::Interned(order),
                None => OrderIndex::Intern,
            };
            let shop = projection.fold_in_to_shop(seq, at, kind, recorded_at, order)?;
            note(&projection.ledger, shop, entry_len);
        }
        if let Some(error) = undecoded {
            return Err(error);
        }
        if let Some((block_first_seq, block)) = block {
            // Recorded only when the events are exactly the block's.
            if first_seq == Some(block_first_seq)
                && count == block.count as usize
                && entry_offset == u64::from(block.len)
            {
                index.record(&BlockRecord {
                    first_seq: block_first_seq,
                    block,
                    parts: parts::PARTS,
                    entries,
                });
            } else {
                tracing::info!(
                    first_seq = block_first_seq,
                    "the follower's events are not its block's; no tail index for it"
                );
            }
        }
        Ok(())
    }
}

/// An event of a [`FollowBatch`], decoded: borrowed from its compact form,
/// or parsed from its stored JSON.
enum Decoded<'a> {
    Compact(UnixNs, KindRef<'a>),
    Json(penalty_core::Event),
}

impl Decoded<'_> {
    fn at(&self) -> UnixNs {
        match self {
            Decoded::Compact(at, _) => *at,
            Decoded::Json(event) => event.at,
        }
    }

    fn kind(&self) -> KindRef<'_> {
        match self {
            Decoded::Compact(_, kind) => *kind,
            Decoded::Json(event) => event.kind_ref(),
        }
    }
}

/// A [`Follower`]'s background snapshots: at most one being written, on a
/// thread of its own, of a copy of the projection.
struct Background {
    dir: std::path::PathBuf,
    every: BackgroundSnapshots,
    /// The last sequence number snapshotted (or held by the snapshot the
    /// follower started from).
    saved_seq: u64,
    /// Where the last block the follower knows the place of ends: the
    /// walk to the next snapshot's block starts there.
    known_end: Option<SnapshotEnd>,
    /// When the last snapshot ended, and how long it took.
    last_end_at: std::time::Instant,
    last_took: std::time::Duration,
    writing: Option<std::thread::JoinHandle<(Option<SnapshotEnd>, std::time::Duration)>>,
}

impl Background {
    fn new(reader: &LogReader, every: BackgroundSnapshots) -> Background {
        // The partitioned snapshot's header is a cheap place to start the
        // walk from (its blocks are the log's, checked); otherwise the
        // walk starts at the log's beginning.
        let known_end = Parts::open(reader.dir())
            .ok()
            .flatten()
            .map(|parts| parts.end)
            .filter(|end| end.seq <= reader.last_seq() && reader.check_snapshot_end(end).is_ok());
        Background {
            dir: reader.dir().to_path_buf(),
            every,
            saved_seq: known_end.map_or(0, |end| end.seq),
            known_end,
            last_end_at: std::time::Instant::now(),
            last_took: std::time::Duration::ZERO,
            writing: None,
        }
    }

    /// Whether to snapshot `projection` now: none being written, enough
    /// events since the last, and enough time since it ended.
    fn due(&mut self, projection: &Projection) -> bool {
        if let Some(writing) = &self.writing {
            if !writing.is_finished() {
                return false;
            }
            self.collect();
        }
        let wait = self.every.min_interval.max(self.last_took * SNAPSHOT_DUTY);
        projection.seq >= self.saved_seq + self.every.min_events
            && self.last_end_at.elapsed() >= wait
    }

    /// Starts writing a snapshot of a copy of `projection`, whose last
    /// event ends a block (the follower folds whole blocks). A copy taken
    /// in a bulk fold gets its settle-day index built on the snapshot's
    /// thread (`end_bulk`: the state is then the one-by-one fold's, as the
    /// core guarantees), while the follower's own fold stays bulk.
    fn write(&mut self, projection: &Projection) {
        let started = std::time::Instant::now();
        let mut copy = projection.clone();
        let dir = self.dir.clone();
        let from = self.known_end;
        self.saved_seq = projection.seq;
        let spawned = std::thread::Builder::new()
            .name("penalty-bg-snapshot".into())
            .spawn(move || {
                copy.ledger.end_bulk();
                let end = write_background(&dir, from, &copy);
                // Freed here, off the fold's thread.
                drop(copy);
                (end, started.elapsed())
            });
        match spawned {
            Ok(thread) => self.writing = Some(thread),
            Err(error) => tracing::info!(%error, "no background snapshot"),
        }
    }

    /// Takes the finished snapshot's outcome.
    fn collect(&mut self) {
        if let Some(thread) = self.writing.take() {
            if let Ok((end, took)) = thread.join() {
                if end.is_some() {
                    self.known_end = end;
                }
                self.last_took = took;
            }
            self.last_end_at = std::time::Instant::now();
        }
    }

    /// Waits for the snapshot being written, if any.
    fn wait(mut self) {
        self.collect();
    }
}

/// Writes both snapshots of `projection` in `dir`: finds the block its last
/// event ends (walking the acknowledged blocks from `from`, the end of a
/// block before it, or from the log's start) and saves there. Returns that
/// block's end; `None` when nothing was written (failures are logged: the
/// events are durable, a snapshot only shortens readers' folds).
fn write_background(
    dir: &std::path::Path,
    from: Option<SnapshotEnd>,
    projection: &Projection,
) -> Option<SnapshotEnd> {
    let found = (|| -> Result<Option<SnapshotEnd>, StoreError> {
        let reader = LogReader::open(dir)?;
        if from.is_some_and(|from| from.seq == projection.seq) {
            return Ok(from);
        }
        let blocks = match from {
            Some(from) => reader.blocks_until(from.next_offset(), from.seq + 1, projection.seq),
            None => reader.blocks_until(0, 1, projection.seq),
        };
        let last_end = blocks.last_end();
        for block in blocks {
            block?;
        }
        let end = *last_end
            .lock()
            .map_err(|_| StoreError::Poisoned { lock: "block end" })?;
        Ok(end.filter(|end| end.seq == projection.seq))
    })();
    match found {
        Ok(Some(end)) => match projection.save_at(dir, &end) {
            Ok(()) => {
                tracing::debug!(seq = end.seq, "wrote a background snapshot");
                Some(end)
            }
            Err(error) => {
                tracing::info!(%error, "could not write a background snapshot");
                None
            }
        },
        Ok(None) => {
            tracing::info!(
                seq = projection.seq,
                "no block of the log ends at the follower's event: no background snapshot"
            );
            None
        }
        Err(error) => {
            tracing::info!(%error, "could not find the block of a background snapshot");
            None
        }
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
                spent: None,
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
                spent: None,
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
    let index = TailIndex::open(reader.dir());
    match open_part_using(reader, policy, query, index.as_ref())? {
        Some((opened, true)) => Ok(Some(opened)),
        // Read through the tail index, the part does not hold the order:
        // its `paid` may be in the tail, in a partition the index did not
        // let the fold see. Without the index the fold notes where.
        Some((_, false)) => {
            Ok(open_part_using(reader, policy, query, None)?.map(|(opened, _)| opened))
        }
        None => Ok(None),
    }
}

/// [`open_part`], reading the tail through `index` when there is one and
/// the query allows: with whether the answer stands (false when the index
/// was used and the part does not hold the order asked for).
fn open_part_using(
    reader: &LogReader,
    policy: &Policy,
    query: PartQuery<'_>,
    index: Option<&TailIndex>,
) -> Result<Option<(Opened, bool)>, StoreError> {
    let started = std::time::Instant::now();
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
    tracing::debug!(target: TIMING, us = micros(started), "parts file opened");
    let start = stored.end.seq;
    let count = stored.count();
    let order = match query {
        PartQuery::Order(order_id) => Some(order_id),
        PartQuery::Shop(_) => None,
    };
    // Sections: a part is the section of its number; an order at home in
    // an excerpt of a large shop is found there through the index. An
    // order not paid before the snapshot is paid in the tail (found on the
    // way, below) or nowhere, and then every part holds it as the whole
    // does.
    let mut candidates = match query {
        // A small shop of a part with large shops is read from the excerpt
        // holding the part's small shops whole, without the large ones.
        PartQuery::Shop(shop_id) => {
            let part = partition_of(shop_id, count);
            match stored.small_shops_excerpt(part) {
                Some(excerpt) => vec![excerpt, part],
                None => vec![part],
            }
        }
        PartQuery::Order(order_id) => match stored.order_sections(order_id) {
            // Paid in the tail or nowhere: the fold looks for its `paid`
            // in every partition, which the index would hide.
            Ok(found) if found.is_empty() => {
                if index.is_some() {
                    return open_part_using(reader, policy, query, None);
                }
                vec![0]
            }
            Ok(found) => found,
            Err(error) => {
                tracing::info!(%error, "the partitioned snapshot is unusable");
                return Ok(None);
            }
        },
    };
    let tail = Tail {
        reader,
        end: &stored.end,
        parts: count,
        order,
        index,
    };
    let mut chosen = None;
    let mut next = 0;
    while let Some(&section) = candidates.get(next) {
        next += 1;
        let Some(part) = stored.partition(section) else {
            return Ok(None);
        };
        // The excerpt of a part's small shops (of the part's family) is
        // read as the part is; an excerpt of a large shop is checked.
        let whole_shops = stored.is_excerpt(section)
            && stored.family(section).is_some_and(|f| f < stored.count());
        // A shop's answer comes from that excerpt only when the snapshot
        // put the shop there (a large shop, or one new in the tail, is
        // read from the part).
        let mut small_shops = None;
        if let (PartQuery::Shop(shop_id), true) = (query, whole_shops) {
            match section_ledger(&stored, section, policy) {
                Ok(Some(ledger)) if ledger.shop_ids().any(|s| s == shop_id) => {
                    small_shops = Some(ledger);
                }
                Ok(_) => continue,
                Err(Unusable::Snapshot(error)) => {
                    tracing::info!(%error, "the partitioned snapshot is unusable");
                    return Ok(None);
                }
                Err(Unusable::Log(error)) => return Err(error),
            }
        }
        let excerpt = match query {
            PartQuery::Order(order_id) if stored.is_excerpt(section) && !whole_shops => {
                open_excerpt(&stored, section, order_id, policy, &tail)
            }
            _ => Ok(None),
        };
        let folded = match excerpt {
            Ok(Some(folded)) => Ok(Some(folded)),
            Ok(None) => {
                let read = if whole_shops { section } else { part };
                let ledger = match small_shops {
                    Some(ledger) => Ok(Some(ledger)),
                    None => section_ledger(&stored, read, policy),
                };
                ledger.and_then(|ledger| match ledger {
                    Some(ledger) => {
                        tail.fold_exactly(part, ledger, || section_ledger(&stored, read, policy))
                    }
                    None => Ok(None),
                })
            }
            Err(unusable) => Err(unusable),
        };
        let (projection, paid_in) = match folded {
            Ok(Some(folded)) => folded,
            Ok(None) => return Ok(None),
            Err(Unusable::Snapshot(error)) => {
                tracing::info!(%error, "the partitioned snapshot is unusable");
                return Ok(None);
            }
            Err(Unusable::Log(error)) => return Err(error),
        };
        // The order's `paid` in the tail names its partition: that part
        // alone answers for it.
        match paid_in {
            Some(paid_in) if paid_in == part => {
                chosen = Some(projection);
                break;
            }
            Some(paid_in) => {
                candidates = vec![paid_in];
                next = 0;
                chosen = None;
                continue;
            }
            None => {}
        }
        let holds = match order {
            Some(order_id) => projection.ledger.holds_paid_order(order_id),
            None => true,
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
    let stands = index.is_none()
        || order.is_none_or(|order_id| projection.ledger.holds_paid_order(order_id));
    let warnings = reader.head().damage.iter().cloned().collect();
    let origin = Origin::Checkpoint {
        seq: start,
        tail: projection.seq - start,
    };
    Ok(Some((
        Opened {
            projection,
            origin,
            warnings,
        },
        stands,
    )))
}

/// Section `section` of the partitioned snapshot, `None` when it was made
/// under another policy.
fn section_ledger(
    stored: &Parts,
    section: u32,
    policy: &Policy,
) -> Result<Option<Ledger>, Unusable> {
    let started = std::time::Instant::now();
    let ledger = stored.ledger(section).map_err(Unusable::Snapshot)?;
    tracing::debug!(
        target: TIMING,
        us = micros(started),
        section,
        "section decoded"
    );
    Ok((ledger.policy() == policy).then_some(ledger))
}

/// What a read through the tail index takes of a block at least, from an
/// entry's start: most entries are whole in it.
const ENTRY_READ_BYTES: u64 = 512;
/// Entries of a part this close to each other in a block are read with
/// one call (the page cache reads whole pages anyway).
const RUN_GAP_BYTES: u64 = 8 << 10;

/// The log after a partitioned snapshot, read a block at a time for each
/// section a query folds; nothing of it is kept.
struct Tail<'a> {
    reader: &'a LogReader,
    /// Where the snapshot ends.
    end: &'a SnapshotEnd,
    /// How many partitions.
    parts: u32,
    /// The order asked for, if any: where its `paid` in the tail is, is
    /// noted on the way.
    order: Option<&'a str>,
    /// The writer's tail index, when there is one: the blocks it vouches
    /// for are read only where their events of the part are.
    index: Option<&'a TailIndex>,
}

/// What [`Tail::fold`] found on the way.
struct TailFold {
    /// False when the fold must be done again the exact way (see there).
    exact: bool,
    /// The partition the asked order's `paid` in the tail names, if any.
    order_paid_in: Option<u32>,
}

impl Tail<'_> {
    /// Calls `each` on the events of the acknowledged blocks after the
    /// snapshot that may be partition `part`'s, in log order, with its
    /// sequence number, its block's instant, its stored payload and
    /// whether that is the compact form. Where the tail index vouches for
    /// a block, only the block's events the index puts in `part` (or in no
    /// partition) are read, each checked by its content hash; from the
    /// first block it does not vouch for (no record yet, torn, damaged, of
    /// another block) every event is, a block at a time, checksummed.
    fn each_entry(
        &self,
        part: u32,
        mut each: impl FnMut(u64, UnixNs, &[u8], bool) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let (mut indexed, mut plain, mut events) = (0u64, 0u64, 0u64);
        let mut each = |seq, at, payload: &[u8], compact| {
            events += 1;
            each(seq, at, payload, compact)
        };
        let last = self.reader.last_seq();
        let mut offset = self.end.next_offset();
        let mut next_seq = self.end.seq + 1;
        if let Some(index) = self.index {
            let mut at = 0;
            while next_seq <= last {
                let Found::Record(record) = index.record_at(at) else {
                    break;
                };
                at = record.next;
                // Records of blocks under the snapshot.
                if record.first_seq < next_seq {
                    continue;
                }
                if record.first_seq != next_seq || record.parts != self.parts {
                    break;
                }
                if !self.indexed_block(index, &record, offset, part, &mut each)? {
                    break;
                }
                indexed += 1;
                offset = record.offset + u64::from(record.len);
                next_seq += u64::from(record.count);
            }
        }
        for block in self.reader.blocks_until(offset, next_seq, last) {
            let block = block?;
            plain += 1;
            for (number, entry) in block.entries.iter().enumerate() {
                let (payload, compact) = block.payload(entry);
                each(
                    block.first_seq + number as u64,
                    block.recorded_at,
                    payload,
                    compact,
                )?;
            }
        }
        tracing::debug!(
            target: TIMING,
            us = micros(started),
            indexed,
            plain,
            events,
            tail = last - self.end.seq,
            "tail read"
        );
        Ok(())
    }

    /// The events of `part` (and of no partition) of the block `record`
    /// names, handed to `each`, when the block at `offset` (after any
    /// padding) is the one it names, acknowledged, and every entry listed
    /// is there whole with its content hash; false, having handed nothing,
    /// when not.
    fn indexed_block(
        &self,
        index: &TailIndex,
        record: &IndexedBlock,
        offset: u64,
        part: u32,
        each: &mut impl FnMut(u64, UnixNs, &[u8], bool) -> Result<(), StoreError>,
    ) -> Result<bool, StoreError> {
        let (file, file_len) = self.reader.file();
        let block_end = record.offset + u64::from(record.len);
        if crate::direct::padded_end(file, offset, file_len).ok() != Some(record.offset)
            || block_end > file_len
            || record.count == 0
        {
            return Ok(false);
        }
        let mut header = [0u8; crate::block::HEADER_BYTES];
        if file.read_exact_at(&mut header, record.offset).is_err() {
            return Ok(false);
        }
        let named = crate::block::Locator {
            offset: record.offset,
            len: record.len,
            crc: record.crc,
            count: record.count,
        };
        if !named.names_header(record.first_seq, &header) {
            return Ok(false);
        }
        // The acknowledged block ends the walk as in `Blocks`: a block past
        // it, or another block in its place, is for the plain walk to name.
        let head = self.reader.head().last;
        let last_seq = record.first_seq + u64::from(record.count) - 1;
        if last_seq > head.last_seq
            || (last_seq == head.last_seq
                && (head.block_first_seq != record.first_seq || head.block_crc != record.crc))
        {
            return Ok(false);
        }
        let recorded_at = UnixNs(i64::from_be_bytes(
            header[24..32].try_into().unwrap_or_default(),
        ));
        let Ok(entries) = index.entries(record, &[part, UNKNOWN_PARTITION]) else {
            return Ok(false);
        };
        // Entries close together are read with one call; each is then
        // found whole and checked.
        let mut payloads: Vec<u8> = Vec::new();
        let mut events: Vec<(u64, std::ops::Range<usize>, bool)> = Vec::new();
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        for (i, &(number, entry_offset)) in entries.iter().enumerate() {
            let entry_offset = u64::from(entry_offset);
            if number >= record.count || entry_offset >= u64::from(record.len) {
                return Ok(false);
            }
            let from = record.offset + entry_offset;
            let in_run = from >= run_start && from < run_start + run.len() as u64;
            let mut parsed =
                in_run.then(|| tail_index::parse_entry(&run[(from - run_start) as usize..]));
            if matches!(parsed, Some(Err(Needs::Bad))) {
                return Ok(false);
            }
            if !matches!(parsed, Some(Ok(_))) {
                // A new run: up to the last of the next entries that lie
                // within a few pages, and a little after it.
                let mut until = entry_offset + ENTRY_READ_BYTES;
                for &(_, next) in &entries[i + 1..] {
                    let next = u64::from(next);
                    if next > until + RUN_GAP_BYTES {
                        break;
                    }
                    until = next + ENTRY_READ_BYTES;
                }
                let until = until.min(u64::from(record.len));
                run.resize((until - entry_offset) as usize, 0);
                if file.read_exact_at(&mut run, from).is_err() {
                    return Ok(false);
                }
                run_start = from;
                parsed = Some(tail_index::parse_entry(&run));
                if let Some(Err(Needs::More(len))) = parsed {
                    // Longer than what was read: read it whole.
                    if entry_offset + len as u64 > u64::from(record.len) {
                        return Ok(false);
                    }
                    run.resize(len, 0);
                    if file.read_exact_at(&mut run, from).is_err() {
                        return Ok(false);
                    }
                    parsed = Some(tail_index::parse_entry(&run));
                }
            }
            let Some(Ok((range, compact))) = parsed else {
                return Ok(false);
            };
            if entry_offset + range.end as u64 > u64::from(record.len) {
                return Ok(false);
            }
            let at = (from - run_start) as usize;
            let stored = &run[at + range.start..at + range.end];
            let start = payloads.len();
            payloads.extend_from_slice(stored);
            events.push((
                record.first_seq + u64::from(number),
                start..payloads.len(),
                compact,
            ));
        }
        for (seq, range, compact) in events {
            each(seq, recorded_at, &payloads[range], compact)?;
        }
        Ok(true)
    }

    /// `ledger`, a section of partition `part`, with the tail's events of
    /// that partition folded in (see [`Tail::fold`]), exactly: when the
    /// quick fold missed an order-only event that came before its order's
    /// `paid` into the part, the section is read again (`fresh`) and folded
    /// knowing the part's orders paid in the tail. With where the asked
    /// order's `paid` in the tail is.
    fn fold_exactly(
        &self,
        part: u32,
        ledger: Ledger,
        fresh: impl FnOnce() -> Result<Option<Ledger>, Unusable>,
    ) -> Result<Option<(Projection, Option<u32>)>, Unusable> {
        let mut projection = Projection {
            ledger,
            seq: self.end.seq,
        };
        let folded = self
            .fold(part, &mut projection, None)
            .map_err(Unusable::Log)?;
        if folded.exact {
            return Ok(Some((projection, folded.order_paid_in)));
        }
        drop(projection);
        let paid_orders = self.paid_orders_of(part).map_err(Unusable::Log)?;
        let Some(ledger) = fresh()? else {
            return Ok(None);
        };
        let mut projection = Projection {
            ledger,
            seq: self.end.seq,
        };
        let folded = self
            .fold(part, &mut projection, Some(&paid_orders))
            .map_err(Unusable::Log)?;
        Ok(Some((projection, folded.order_paid_in)))
    }

    /// The orders whose `paid` in the tail names a shop of partition
    /// `part`.
    fn paid_orders_of(&self, part: u32) -> Result<HashSet<String>, StoreError> {
        let mut orders = HashSet::new();
        self.each_entry(part, |seq, _, payload, compact| {
            // Only a `paid` names both a shop and an order.
            let paid = if compact {
                penalty_core::compact::shop_and_order(payload)
                    .ok_or_else(|| "its compact form does not decode".to_string())
                    .map(|(shop, order_id)| match (shop, order_id) {
                        (Some(shop_id), Some(order_id))
                            if partition_of(shop_id, self.parts) == part =>
                        {
                            Some(order_id.to_string())
                        }
                        _ => None,
                    })
            } else {
                with_stored(payload, compact, |_, kind| match kind {
                    KindRef::Paid {
                        order_id, shop_id, ..
                    } if partition_of(shop_id, self.parts) == part => Some(order_id.to_string()),
                    _ => None,
                })
            };
            orders.extend(paid.map_err(|detail| corrupt(seq, detail))?);
            Ok(())
        })?;
        Ok(orders)
    }

    /// Folds into `projection` (a section of partition `part`, at the
    /// snapshot's end) the events of the tail that belong to the part:
    /// those naming one of its shops, and those naming only an order that
    /// the section holds or whose `paid` in the tail names one of its
    /// shops. Its sequence number ends at the tail's last (the section
    /// reflects the whole log, whether or not an event was its own). An
    /// event's shop and order are read from its compact form without
    /// decoding the rest, so the other partitions' events (nearly all of a
    /// tail) cost a few bytes' reading each and are never copied; a compact
    /// form damaged past its ids in another partition's event is left to
    /// `penalty audit` (the block's checksum holds, so only a writer's bug
    /// would make one).
    ///
    /// With `paid_orders` (the part's orders paid in the tail, from
    /// [`Tail::paid_orders_of`]) the fold is exact. Without, an order-only
    /// event is the part's when the section knows its order as it comes
    /// (from the snapshot or an event folded before). That misses only one
    /// that comes before its order's `paid` into this part (events arrive
    /// in any order), so each skipped one is remembered by its order's
    /// hash, and `exact` is false when one of them is of an order paid into
    /// this part (or shares its hash): the caller folds again, exactly.
    fn fold(
        &self,
        part: u32,
        projection: &mut Projection,
        paid_orders: Option<&HashSet<String>>,
    ) -> Result<TailFold, StoreError> {
        let mut skipped: Vec<u64> = Vec::new();
        let mut paid_here: Vec<u64> = Vec::new();
        let mut order_paid_in = None;
        let (parts, order) = (self.parts, self.order);
        // Whether an event naming `shop` and `order_id` is the part's.
        let mut mine =
            |ledger: &Ledger, shop: Option<&str>, order_id: Option<&str>| match (shop, order_id) {
                (Some(shop_id), order_id) => {
                    let in_part = partition_of(shop_id, parts);
                    if order.is_some() && order_id == order {
                        order_paid_in = Some(in_part);
                    }
                    if let (true, Some(order_id)) = (in_part == part, order_id) {
                        paid_here.push(fnv1a64(order_id.as_bytes()));
                    }
                    in_part == part
                }
                (None, Some(order_id)) => {
                    let mine = ledger.knows_order(order_id)
                        || paid_orders.is_some_and(|paid_orders| paid_orders.contains(order_id));
                    if !mine && paid_orders.is_none() {
                        skipped.push(fnv1a64(order_id.as_bytes()));
                    }
                    mine
                }
                (None, None) => false,
            };
        self.each_entry(part, |seq, recorded_at, payload, compact| {
            // A compact form tells its shop and order without being
            // decoded; most events are another part's and are skipped on
            // that alone.
            if compact {
                let (shop, order_id) = penalty_core::compact::shop_and_order(payload)
                    .ok_or_else(|| corrupt(seq, "its compact form does not decode".into()))?;
                if !mine(&projection.ledger, shop, order_id) {
                    projection.seq = seq;
                    return Ok(());
                }
            }
            with_stored(payload, compact, |at, kind| {
                if compact || mine(&projection.ledger, shop_of(&kind), kind.order_id()) {
                    projection.fold_in(seq, at, kind, recorded_at, OrderIndex::Intern)?;
                }
                // The section reflects the log up to here, whether or not
                // the event was its own.
                projection.seq = seq;
                Ok::<(), StoreError>(())
            })
            .map_err(|detail| corrupt(seq, detail))?
        })?;
        // Through the tail index the last events read need not be the
        // tail's last.
        projection.seq = projection.seq.max(self.reader.last_seq());
        paid_here.sort_unstable();
        Ok(TailFold {
            exact: paid_orders.is_some()
                || !skipped
                    .iter()
                    .any(|hash| paid_here.binary_search(hash).is_ok()),
            order_paid_in,
        })
    }
}

/// Decodes a stored event in place (its text borrowed from the block when
/// it is the compact form) and hands it to `use_it`; `Err` says why it does
/// not decode.
fn with_stored<T>(
    payload: &[u8],
    compact: bool,
    use_it: impl FnOnce(UnixNs, KindRef<'_>) -> T,
) -> Result<T, String> {
    if compact {
        penalty_core::compact::decode_ref(payload)
            .map(|(_, at, kind)| use_it(at, kind))
            .ok_or_else(|| "its compact form does not decode".to_string())
    } else {
        penalty_core::event::parse_stored(payload)
            .map(|event| use_it(event.at, event.kind_ref()))
            .map_err(|reject| format!("the stored JSON no longer validates ({reject})"))
    }
}

/// Why a section could not be read: the snapshot is unusable (the caller
/// reads the whole projection), or the log is damaged (an error).
enum Unusable {
    Snapshot(StoreError),
    Log(StoreError),
}

/// The excerpt `section` (see [`Parts`]) with the tail folded in, with
/// where the asked order's `paid` in the tail is, when it answers
/// `order_report` for `order_id` as its whole part would; `None` when it
/// may not, and the part is to be read instead. It may not when, after the
/// tail, the order has a deduction on a settle day the excerpt does not
/// hold in full. Events of the shop's orders outside the excerpt need no
/// check: the excerpt holds every order that could ever have a deduction
/// on a day it holds (`penalty_core::ledger::excerpt`), so theirs cannot
/// reach those days (R5), whatever they are.
fn open_excerpt(
    stored: &Parts,
    section: u32,
    order_id: &str,
    policy: &Policy,
    tail: &Tail<'_>,
) -> Result<Option<(Projection, Option<u32>)>, Unusable> {
    let Some(ledger) = section_ledger(stored, section, policy)? else {
        return Ok(None);
    };
    let Some(part) = stored.partition(section) else {
        return Ok(None);
    };
    let Some(shop_id) = ledger.shop_ids().next().map(str::to_string) else {
        return Ok(None);
    };
    let held = ledger.settle_days(&shop_id);
    let Some((projection, paid_in)) =
        tail.fold_exactly(part, ledger, || section_ledger(stored, section, policy))?
    else {
        return Ok(None);
    };
    // Without the order (another of the same hash), the caller asks the
    // next section.
    if let Some((shop, days)) = projection.ledger.deduction_days(order_id) {
        if shop != shop_id || days.iter().any(|d| held.binary_search(d).is_err()) {
            return Ok(None);
        }
    }
    Ok(Some((projection, paid_in)))
}

/// [`replay`] of what a reader holds; with where its last block lies, for
/// [`save_read`].
pub fn replay_read(
    reader: &LogReader,
    policy: &Policy,
    known_at: Option<UnixNs>,
) -> Result<(Projection, Option<SnapshotEnd>), StoreError> {
    replay_read_into(reader, policy, known_at, None)
}

/// [`replay_read`] without `known_at`, handing each block it has read,
/// checked and decoded on to `spent`, then the damage that ends its scan if
/// any: what [`LogReader::verify_shared`] checks, so that `penalty audit`
/// reads and checksums the log once for both. A receiver that hangs up
/// early only stops getting blocks.
pub fn replay_read_sharing(
    reader: &LogReader,
    policy: &Policy,
    spent: SyncSender<SharedBlock>,
) -> Result<(Projection, Option<SnapshotEnd>), StoreError> {
    replay_read_into(reader, policy, None, Some(spent))
}

/// [`replay_read`], sharing its blocks when `spent` is given.
fn replay_read_into(
    reader: &LogReader,
    policy: &Policy,
    known_at: Option<UnixNs>,
    spent: Option<SyncSender<SharedBlock>>,
) -> Result<(Projection, Option<SnapshotEnd>), StoreError> {
    let blocks = reader.blocks();
    let last_end = blocks.last_end();
    let source = ReplaySource {
        blocks: Box::new(blocks),
        last_seq: reader.last_seq(),
        spent,
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

/// A replay of the log set beside the stored projection, as `penalty
/// replay` and `penalty audit` compare them (see [`compare`]).
#[derive(Debug)]
pub struct Compared {
    /// The replay of the log.
    pub rebuilt: Projection,
    /// Where the replay's last block lies (for [`save_read`]).
    pub end: Option<SnapshotEnd>,
    /// The replay's digest.
    pub digest: String,
    /// The stored projection's digest (the snapshot plus the blocks after
    /// it; a replay when there is no usable snapshot).
    pub stored_digest: String,
    /// How the stored projection was made.
    pub stored_origin: Origin,
    /// Damage found on the way (see [`Opened::warnings`]).
    pub warnings: Vec<String>,
    /// Whether the snapshot file is already the replay's encoding, so that
    /// writing it again would change nothing.
    pub snapshot_current: bool,
}

/// Digests `rebuilt` (a replay of what `reader` holds, ending at `end`) and
/// the stored projection as of `as_of`. `stored` is the snapshot file as
/// read beforehand (the caller reads it beside the replay). When the
/// snapshot ends where the replay does and holds exactly the replay's
/// encoding ([`Projection::encodes_as`], checked beside the digest), both
/// are the same state and the digest is computed once; otherwise the stored
/// projection is opened and digested as any query opens it.
pub fn compare(
    reader: &LogReader,
    policy: &Policy,
    as_of: UnixNs,
    stored: Result<Option<snapshot::Snapshot>, StoreError>,
    rebuilt: Projection,
    end: Option<SnapshotEnd>,
) -> Result<Compared, StoreError> {
    let candidate = match &stored {
        Ok(Some(snapshot))
            if end == Some(snapshot.end) && reader.check_snapshot_end(&snapshot.end).is_ok() =>
        {
            Some(snapshot)
        }
        _ => None,
    };
    let (digest, same) = std::thread::scope(|scope| {
        let same = candidate.map(|snapshot| {
            std::thread::Builder::new()
                .name("penalty-compare".into())
                .spawn_scoped(scope, || rebuilt.encodes_as(&snapshot.payload))
        });
        let digest = digest(&rebuilt.ledger, as_of);
        let same = match same {
            Some(Ok(thread)) => thread.join().unwrap_or(false),
            Some(Err(_)) => candidate.is_some_and(|snapshot| rebuilt.encodes_as(&snapshot.payload)),
            None => false,
        };
        (digest, same)
    });
    if let (true, Some(snapshot)) = (same, candidate) {
        return Ok(Compared {
            stored_digest: digest.clone(),
            stored_origin: Origin::Checkpoint {
                seq: snapshot.end.seq,
                tail: 0,
            },
            warnings: reader.head().damage.iter().cloned().collect(),
            snapshot_current: true,
            rebuilt,
            end,
            digest,
        });
    }
    drop(stored);
    let opened = open_read(reader, policy, false, false)?;
    let stored_digest = self::digest(&opened.projection.ledger, as_of);
    Ok(Compared {
        rebuilt,
        end,
        digest,
        stored_digest,
        stored_origin: opened.origin,
        warnings: opened.warnings,
        snapshot_current: false,
    })
}

/// Writes what [`compare`] found stale, for the next reader: both snapshots
/// when the snapshot file is not the replay's encoding ([`save_read`]);
/// the partitioned snapshot alone when only it is missing, damaged or
/// older; nothing when both are current. `true` when it wrote.
pub fn refresh_read(reader: &LogReader, compared: &Compared) -> Result<bool, StoreError> {
    if !compared.snapshot_current {
        return save_read(reader, &compared.rebuilt, compared.end);
    }
    let Some(end) = compared.end else {
        return Ok(false);
    };
    let current = matches!(
        Parts::open(reader.dir()),
        Ok(Some(stored)) if stored.end == end && stored.check().is_ok()
    );
    if current {
        return Ok(false);
    }
    parts::write(reader.dir(), &end, &compared.rebuilt.ledger)?;
    Ok(true)
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
    /// Where each block goes once decoded, and the damage that ends the
    /// scan (see [`replay_read_sharing`]).
    spent: Option<SyncSender<SharedBlock>>,
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
            spent: None,
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
    let ReplaySource {
        blocks,
        last_seq,
        spent,
    } = source;
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
                let ready = match block {
                    Ok(block) => {
                        let (ready, valid) =
                            ReadyBlock::decode(&block, from, ids.as_mut(), spent.is_some());
                        if let Some(spent) = &spent {
                            // A check that stopped early takes no more.
                            let _ = spent.send(Ok(ReadBlock::with_valid(block, valid)));
                        }
                        Ok(ready)
                    }
                    Err(error) => {
                        if let Some(spent) = &spent {
                            let _ = spent.send(Err(ScanDamage::of(&error)));
                        }
                        Err(error)
                    }
                };
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

/// Why an entry does not decode when the order ids are full.
const ORDER_IDS_FULL: &str = "the order ids pass 4 GiB";

/// Interns the `waiting` order ids and gives each its entry.
fn intern_waiting(
    ids: &mut OrderIds,
    waiting: &mut Vec<(usize, &str)>,
    entries: &mut [(u64, DecodedEntry)],
) {
    let order_ids: Vec<&str> = waiting.iter().map(|(_, order_id)| *order_id).collect();
    let mut orders = Vec::with_capacity(order_ids.len());
    ids.intern_all(&order_ids, &mut orders);
    for ((place, _), order) in waiting.drain(..).zip(orders) {
        let (_, decoded) = &mut entries[place];
        *decoded = match (std::mem::replace(decoded, Ok((0, None))), order) {
            (Ok((position, _)), Some(order)) => Ok((position, Some(order))),
            (Ok(_), None) => Err(ORDER_IDS_FULL.to_string()),
            (failed, _) => failed,
        };
    }
}

impl ReadyBlock {
    /// Decodes the entries of `block` from `from` on: from the compact form,
    /// or by parsing the stored JSON. The order ids of compact forms are
    /// interned together ([`OrderIds::intern_all`]), in the order of the
    /// entries, as one by one would give them. With `check`, a compact form
    /// is decoded as the log's check decides it
    /// ([`penalty_core::compact::decode_valid`]), and whether it was found
    /// valid comes back for each entry (for [`ReadBlock`]), so that the
    /// check reads its text, UTF-8 included, no second time; a form it does
    /// not vouch for is decoded as without `check`.
    fn decode(
        block: &DecodedBlock,
        from: u64,
        mut ids: Option<&mut OrderIds>,
        check: bool,
    ) -> (ReadyBlock, Vec<bool>) {
        let mut events = EventBuffer::with_capacity(block.entries.len(), block.bytes.len() / 3);
        let mut entries: Vec<(u64, DecodedEntry)> = Vec::with_capacity(block.entries.len());
        let mut valid = Vec::with_capacity(if check { block.entries.len() } else { 0 });
        // (the entry's place in `entries`, its order id), not yet interned.
        let mut waiting: Vec<(usize, &str)> = Vec::new();
        for (offset, entry) in block.entries.iter().enumerate() {
            let seq = block.first_seq + offset as u64;
            if check {
                valid.push(false);
            }
            if seq < from {
                continue;
            }
            let (payload, compact) = block.payload(entry);
            let mut push = |at: UnixNs, kind: &KindRef<'_>| {
                events
                    .push(at, kind)
                    .ok_or_else(|| "a block's text passes 4 GiB".to_string())
            };
            let decoded = if compact {
                let found_valid = check
                    .then(|| penalty_core::compact::decode_valid(payload))
                    .flatten();
                if let (Some(_), Some(last)) = (found_valid, valid.last_mut()) {
                    *last = true;
                }
                found_valid
                    .or_else(|| penalty_core::compact::decode_ref(payload))
                    .ok_or_else(|| "its compact form does not decode".to_string())
                    .and_then(|(_, at, kind)| {
                        let position = push(at, &kind)?;
                        if let (Some(_), Some(order_id)) = (&ids, kind.order_id()) {
                            waiting.push((entries.len(), order_id));
                        }
                        Ok((position, None))
                    })
            } else {
                // Its order id borrows the parsed event: interned now, after
                // those waiting, to keep the order of the entries.
                if let Some(ids) = ids.as_deref_mut() {
                    intern_waiting(ids, &mut waiting, &mut entries);
                }
                penalty_core::event::parse_stored(payload)
                    .map_err(|reject| format!("the stored JSON no longer validates ({reject})"))
                    .and_then(|event| {
                        let kind = event.kind_ref();
                        let position = push(event.at, &kind)?;
                        let order = match (ids.as_deref_mut(), kind.order_id()) {
                            (Some(ids), Some(order_id)) => Some(
                                ids.intern(order_id)
                                    .ok_or_else(|| ORDER_IDS_FULL.to_string())?,
                            ),
                            _ => None,
                        };
                        Ok((position, order))
                    })
            };
            entries.push((seq, decoded));
        }
        if let Some(ids) = ids {
            intern_waiting(ids, &mut waiting, &mut entries);
        }
        let ready = ReadyBlock {
            recorded_at: block.recorded_at,
            events,
            entries,
        };
        (ready, valid)
    }
}
