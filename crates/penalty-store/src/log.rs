//! The event log: an append-only sequence of blocks in the blocks file, with
//! the idempotency index of EVENTS.md kept in memory. The blocks file and the
//! head journal say where the blocks are; sled keeps a derived index of them
//! (each block's [`Locator`] by first sequence number), the writer's for
//! reading a block by sequence number, completed from the blocks file on
//! open and rebuilt whole by `recover`. The append path is [`append`]'s.
//!
//! Durability: [`EventLog::append_batch`] writes one block to the blocks file
//! (past the page cache where the file system allows, see `direct`) and
//! `fdatasync`s it, then appends a record naming it to the head journal
//! (`head`, fdatasync'd too): that record is what acknowledges the append,
//! so an event reported as appended survives a crash. The block's
//! [`Locator`] goes into sled, which is flushed every `SLED_FLUSH_EVERY_BLOCKS` blocks, on close and
//! by [`EventLog::flush_locators`]; on open, acknowledged blocks past sled's
//! last locator are found in the blocks file. A crash before the journal
//! record leaves bytes past the last acknowledged block; they were never
//! acknowledged, and the next append overwrites them. Sequence numbers are global, gapless and start at 1; the
//! next one is always derived from the last block, never from a separate
//! counter that could disagree with it.
//!
//! Integrity: every block carries a CRC-32 that is checked on every read. A
//! block that fails it is reported as [`StoreError::Corrupt`] with its sequence
//! numbers and its events are never handed out.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::hash::BuildHasherDefault;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use penalty_core::event::{parse_stored_with, Event, KindRef, ParsedRef, Payload, Reject};
use penalty_core::time::UnixNs;
use serde::Serialize;

use crate::block::{self, block_key, content_hash, BlockBytes, DecodedBlock, Locator, NewEntry};
use crate::direct::{align_up, padded_end, BlockWriter, MAX_PENDING_BLOCKS};
use crate::head::Head;
use crate::lock::DirLock;
use crate::slots::{Probe, Slots};
use crate::snapshot::SnapshotEnd;
use crate::StoreError;

mod append;
pub(crate) use append::{Appender, BlockJob, IN_FLIGHT_BLOCKS};

/// The most events a log holds: the idempotency index keeps sequence
/// numbers in 32 bits (see `slots`). At about 24 bytes of index per event,
/// a log this long would need some 100 GB of memory to append to.
pub const MAX_EVENTS: u64 = crate::slots::MAX_VALUE;

/// Decoded blocks kept to confirm duplicates. Re-sent lines arrive near
/// their originals or in log order, so a few recent blocks serve nearly all
/// of them; each is read and checked only once (about 2 MB each). Four, not
/// the eight of before, since the writer also keeps the last three blocks it
/// wrote (undecoded): 8 MB less at any size, and re-sending a million orders
/// takes as long.
const DUPLICATE_CACHE_BLOCKS: usize = 4;

/// The writer's recent blocks whose entry offsets are kept: as many as it
/// keeps, acknowledged and pending.
const RECENT_OFFSETS_BLOCKS: usize = crate::direct::RECENT_BLOCKS + MAX_PENDING_BLOCKS;

/// The most events [`EventLog::reserve`] makes room for at once: 8.4M
/// events (5M orders' worth), about 400 MB of index, written when reserved.
/// A size guess from a huge or odd input must not make the process write
/// gigabytes before it reads a line; past this, the tables double as they
/// fill.
pub const MAX_RESERVED_EVENTS: usize = 1 << 23;

/// Lines whose index slots are read ahead of classifying them: enough for
/// many cache misses in flight, few enough that their slots (two cache
/// lines a line) stay in the core's cache until used.
const TOUCH_AHEAD_LINES: usize = 256;

/// Blocks acknowledged between two flushes of sled. A block is acknowledged
/// once the blocks file is synced and the head journal records it; its
/// locator in sled is a cache of where the block lies, which
/// [`EventLog::open`] finds again from the blocks file when a crash lost it
/// (see `locate_acknowledged_blocks`). So a crash costs the next open at
/// most this many blocks' reading (about 64 MB at bulk ingest's block
/// size), and ingest does not pay sled's flush (a write and an `fsync` of
/// its own log) for every block: a million orders ingest about 4% faster.
const SLED_FLUSH_EVERY_BLOCKS: u64 = 64;

/// The sled database inside the data directory.
pub const SLED_DIR: &str = "log.sled";
/// The sled tree locating the blocks, keyed by first sequence number.
pub const BLOCKS_TREE: &str = "blocks";
/// The append-only file holding the blocks themselves.
pub const BLOCKS_FILE: &str = "events.log";

/// What happened to one item given to [`EventLog::append_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AppendOutcome {
    /// New: written durably under `seq`.
    Appended {
        /// Its sequence number.
        seq: u64,
    },
    /// Already in the log (or earlier in the batch) with the same content.
    Duplicate {
        /// The sequence number of the copy kept.
        seq: u64,
    },
    /// The event id is in the log with other content (`event_id_conflict`).
    EventIdConflict {
        /// The sequence number of the event holding the id.
        existing_seq: u64,
    },
    /// A `paid` for an order already paid under another event id
    /// (`order_already_paid`).
    OrderAlreadyPaid {
        /// The sequence number of the first `paid`.
        paid_seq: u64,
    },
}

impl AppendOutcome {
    /// The reject reason, for the two outcomes that reject the line.
    pub fn reject(&self) -> Option<Reject> {
        match self {
            AppendOutcome::Appended { .. } | AppendOutcome::Duplicate { .. } => None,
            AppendOutcome::EventIdConflict { .. } => Some(Reject::EventIdConflict),
            AppendOutcome::OrderAlreadyPaid { .. } => Some(Reject::OrderAlreadyPaid),
        }
    }
}

/// One event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number.
    pub seq: u64,
    /// When its block was appended.
    pub recorded_at: UnixNs,
    /// Its event id.
    pub event_id: u128,
    /// The stored payload: canonical JSON, or the compact form.
    payload: Vec<u8>,
    compact: bool,
}

impl StoredEvent {
    /// Its stored payload, read as a line's.
    fn stored(&self) -> Payload<'_> {
        if self.compact {
            Payload::Compact(&self.payload)
        } else {
            Payload::Json(&self.payload)
        }
    }

    /// Bytes of its stored payload (compact form or JSON).
    pub fn stored_bytes(&self) -> usize {
        self.payload.len()
    }

    /// Its canonical JSON (compact, keys sorted): the export format.
    pub fn json(&self) -> Vec<u8> {
        self.stored().canonical_json().into_owned()
    }

    /// The typed event, decoded from the compact form or parsed from the
    /// JSON. It was validated on the way in, so a failure here means the log
    /// was damaged: it is reported as corruption.
    pub fn event(&self) -> Result<Event, StoreError> {
        self.stored().event().map_err(|reject| StoreError::Corrupt {
            block_seq: self.seq,
            first_seq: self.seq,
            last_seq: self.seq,
            detail: format!("the stored event no longer validates ({reject})"),
        })
    }
}

/// The result of [`EventLog::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blocks checked and found good.
    pub blocks: u64,
    /// Events checked and found good.
    pub events: u64,
    /// The last good sequence number (0 when none).
    pub last_seq: u64,
    /// The first problem found; checking stops there.
    pub problem: Option<VerifyProblem>,
}

impl VerifyReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// The first damaged place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    /// The first sequence number concerned.
    pub seq: u64,
    /// What is wrong, in a sentence.
    pub detail: String,
}

/// The idempotency index: what EVENTS.md needs to classify a new line without
/// reading the log. It is permanent (built from the whole log), so a line sent
/// again a year later is still a duplicate.
///
/// It holds 16 bytes per event and per paid order: a keyed 64-bit hash of
/// the id and the sequence number of the event holding it. A hit is
/// confirmed against the stored event (duplicates are confirmed by their
/// bytes anyway), so equal hashes never decide anything; the rare ids whose
/// hash another id already holds are kept exactly, on the side. Keeping the
/// ids themselves cost about 220 bytes per order at a million orders.
struct Index<S = IdHasher> {
    /// The sequence number the next event gets.
    next_seq: u64,
    /// Keyed per process; a test gives one that makes every id collide.
    hasher: S,
    /// hash(event_id) -> seq of the first event with that hash.
    events: Slots,
    /// event_id -> seq, for events whose hash an earlier event holds.
    event_collisions: HashMap<u128, u64>,
    /// hash(paid order id) -> seq of the first `paid` with that hash.
    paid_orders: Slots,
    /// Paid order id -> seq, for orders whose hash an earlier order holds.
    paid_collisions: HashMap<Box<[u8]>, u64>,
}

impl<S: BuildHasher> Index<S> {
    fn with_capacity(events: usize, hasher: S) -> Index<S> {
        Index {
            next_seq: 1,
            hasher,
            events: Slots::with_capacity(events),
            event_collisions: HashMap::new(),
            // About one paid order per two events.
            paid_orders: Slots::with_capacity(events / 2),
            paid_collisions: HashMap::new(),
        }
    }

    /// Reads the home slots of these lines' keys in a tight loop and
    /// nothing else: the cache misses overlap there, where in
    /// [`Index::classify_one`] each would wait for the one before, and the
    /// probes that follow find the slots cached.
    fn touch<'k>(&self, keys: impl IntoIterator<Item = &'k Keys>) {
        let touched = keys.into_iter().fold(0, |touched, keys| {
            touched ^ self.events.touch(keys.id) ^ self.paid_orders.touch(keys.paid.unwrap_or(0))
        });
        std::hint::black_box(touched);
    }

    /// Decides what EVENTS.md says of a line with event id `id` (and paid
    /// order `paid_order`, for a `paid`) and, when it is new, records it at
    /// `next_seq` at once: one probe of each table per line, where a lookup
    /// now and an insert after the write took two, each a likely cache miss.
    /// `confirm(seq, check)` reads the log (or the batch being prepared) to
    /// say whether the event at `seq` has this id, this exact canonical JSON,
    /// or pays for this order. The caller must drop the index if the block
    /// is then not written.
    fn classify_one(
        &mut self,
        id: u128,
        paid_order: Option<&[u8]>,
        keys: &Keys,
        next_seq: u64,
        mut confirm: impl FnMut(u64, MatchOn) -> Result<bool, StoreError>,
    ) -> Result<AppendOutcome, StoreError> {
        debug_assert_eq!(
            keys.id,
            self.hasher.hash_one(id),
            "keys of this index's hasher"
        );
        let Index {
            events,
            event_collisions,
            paid_orders,
            paid_collisions,
            ..
        } = self;
        let repeat = |seq: u64, same_json: bool| {
            if same_json {
                AppendOutcome::Duplicate { seq }
            } else {
                AppendOutcome::EventIdConflict { existing_seq: seq }
            }
        };
        let event_slot = match events.probe(keys.id) {
            Probe::Held(seq) => {
                if confirm(seq, MatchOn::Id)? {
                    return Ok(repeat(seq, confirm(seq, MatchOn::Json)?));
                }
                if let Some(&seq) = event_collisions.get(&id) {
                    return Ok(repeat(seq, confirm(seq, MatchOn::Json)?));
                }
                // Another id holds this hash: kept exactly on the side.
                None
            }
            Probe::Vacant(position) => Some(position),
        };
        let paid_slot = match paid_order.zip(keys.paid) {
            None => None,
            Some((order, key)) => match paid_orders.probe(key) {
                Probe::Held(seq) => {
                    if confirm(seq, MatchOn::PaysFor)? {
                        return Ok(AppendOutcome::OrderAlreadyPaid { paid_seq: seq });
                    }
                    if let Some(&seq) = paid_collisions.get(order) {
                        return Ok(AppendOutcome::OrderAlreadyPaid { paid_seq: seq });
                    }
                    Some((order, None))
                }
                Probe::Vacant(position) => Some((order, Some((position, key)))),
            },
        };
        // Nothing changed the tables since the probes: the confirmations
        // only read the log.
        match event_slot {
            Some(position) => events.fill(position, keys.id, next_seq),
            None => {
                event_collisions.insert(id, next_seq);
            }
        }
        match paid_slot {
            Some((_, Some((position, key)))) => paid_orders.fill(position, key, next_seq),
            Some((order, None)) => {
                paid_collisions.insert(order.into(), next_seq);
            }
            None => {}
        }
        Ok(AppendOutcome::Appended { seq: next_seq })
    }
}

/// A line's hashes, as the index and the block need them: computed where
/// the line is parsed (on ingest's parser threads), so that the thread that
/// classifies and writes, the one every line waits for, only probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Keys {
    /// The index's hash of the event id.
    pub id: u64,
    /// The index's hash of the paid order id, for a `paid`.
    pub paid: Option<u64>,
    /// [`content_hash`] of the payload, stored in the block.
    pub content: u64,
}

impl Keys {
    pub(crate) fn of<S: BuildHasher>(
        hasher: &S,
        id: u128,
        paid_order: Option<&[u8]>,
        content: u64,
    ) -> Keys {
        Keys {
            id: hasher.hash_one(id),
            paid: paid_order.map(|order| hasher.hash_one(order)),
            content,
        }
    }

    /// The keys of a parsed line.
    pub(crate) fn of_line(hasher: &IdHasher, line: &ParsedRef<'_>) -> Keys {
        Keys::of(
            hasher,
            line.event_id,
            line.paid_order_id,
            content_hash(line.payload.bytes()),
        )
    }
}

/// The head journal, locked. A job that panicked while holding it left no
/// record half-written in memory that matters: the journal's file is the
/// truth, and the next open reads it.
fn lock_head(head: &Mutex<Head>) -> std::sync::MutexGuard<'_, Head> {
    head.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What [`Index::classify_one`] asks of the event at a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MatchOn {
    /// Has it this event id?
    Id,
    /// Is its canonical JSON exactly this line's?
    Json,
    /// Is it the `paid` of this order?
    PaysFor,
}

/// The durable, append-only event log of one data directory.
///
/// Only one `EventLog` can be open on a directory at a time, across processes
/// and within one; a second [`EventLog::open`] fails with
/// [`StoreError::Locked`].
pub struct EventLog {
    // Field order matters: fields drop in declaration order, so sled is closed
    // before the directory lock is released.
    db: sled::Db,
    blocks: sled::Tree,
    sled_path: PathBuf,
    /// Reads blocks; shared with iterators.
    reader: BlockReader,
    /// Where the next block goes in the blocks file, once known; `None` again
    /// after a failed write.
    file_end: Option<u64>,
    dir: PathBuf,
    /// Built on the first append; `None` again after a failed write, so that
    /// the next append re-reads the truth from disk.
    index: Option<Index>,
    /// The index's hasher, fixed for the process so that ingest's parser
    /// threads can hash lines before they reach the index.
    hasher: IdHasher,
    /// The block last read to confirm a duplicate. Re-sent input arrives in
    /// log order, so one cached block serves thousands of lookups.
    cached_blocks: Vec<Arc<DecodedBlock>>,
    /// Where the entries start in the blocks the writer keeps, by first
    /// sequence number: noted as each block is encoded (or, should one be
    /// missing, found by `block::entry_offsets`).
    recent_offsets: Vec<(u64, Vec<u32>)>,
    /// How far the log reached when last acknowledged, kept outside sled;
    /// shared with the [`BlockJob`]s that record it.
    head: Arc<Mutex<Head>>,
    /// Writes blocks to the blocks file, past the page cache where it can.
    writer: BlockWriter,
    /// Blocks staged by this process, for flushing sled every
    /// [`SLED_FLUSH_EVERY_BLOCKS`].
    staged_blocks: u64,
    _lock: DirLock,
}

impl Drop for EventLog {
    /// Flushes sled, so that the next open finds every locator without
    /// reading blocks. A failure loses nothing: the next open locates the
    /// acknowledged blocks from the blocks file.
    fn drop(&mut self) {
        if let Err(error) = self.db.flush() {
            tracing::warn!(%error, "could not flush sled when closing the log");
        }
    }
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl EventLog {
    /// Opens (creating if needed) the log in the data directory `dir`, taking
    /// its lock. Never waits: a held lock is [`StoreError::Locked`]. A log that
    /// ends before the head journal says it should is [`StoreError::Corrupt`]
    /// naming the lost sequence numbers: nothing may be read from it or
    /// appended to it until it is restored.
    pub fn open(dir: &Path) -> Result<EventLog, StoreError> {
        let log = EventLog::open_for_audit(dir)?;
        match log.head_problem()? {
            Some(error) => Err(error),
            None => Ok(log),
        }
    }

    /// Opens the log even when it is damaged, for [`EventLog::verify`] to
    /// report what is wrong.
    pub fn open_for_audit(dir: &Path) -> Result<EventLog, StoreError> {
        EventLog::open_locked(dir, None)
    }

    /// [`EventLog::open`], waiting for the directory lock while another
    /// writer holds it; `on_wait` is told who, once, before the wait.
    pub fn open_waiting(
        dir: &Path,
        on_wait: &mut dyn FnMut(&StoreError),
    ) -> Result<EventLog, StoreError> {
        let log = EventLog::open_locked(dir, Some(on_wait))?;
        match log.head_problem()? {
            Some(error) => Err(error),
            None => Ok(log),
        }
    }

    fn open_locked(
        dir: &Path,
        on_wait: Option<&mut dyn FnMut(&StoreError)>,
    ) -> Result<EventLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            action: "creating the data directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let file_path = dir.join(BLOCKS_FILE);
        let io_error = |action, source| StoreError::Io {
            action,
            path: file_path.clone(),
            source,
        };
        // The blocks file exists before the lock names its holder, so a reader
        // that sees a writer's directory finds a log (empty until the first
        // block), never "no event log". Creating it if missing is harmless
        // while another writer holds the lock.
        let created = !file_path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file_path)
            .map_err(|e| io_error("opening the blocks file", e))?;
        if created {
            // The new file's directory entry must be durable before any block
            // in it is acknowledged.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error("syncing the directory of the blocks file", e))?;
        }
        let lock = match on_wait {
            Some(on_wait) => DirLock::acquire_waiting(dir, on_wait)?,
            None => DirLock::acquire(dir)?,
        };
        let sled_path = dir.join(SLED_DIR);
        let db_error = |source| StoreError::Database {
            path: sled_path.clone(),
            source,
        };
        // The journal is read first: if sled cannot read its own file, the
        // journal still says which acknowledged events are at stake.
        let head = Head::open(dir)?;
        remove_unfinished_snapshots(&sled_path)?;
        let db = open_sled(&sled_path).map_err(|source| match source {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                block_seq: 1,
                first_seq: 1,
                last_seq: head.last().last_seq.max(1),
                detail: format!(
                    "sled cannot read its database file ({source}); {} acknowledged events up to \
                     sequence number {}; `penalty recover` rebuilds sled's part from the blocks \
                     file, which holds the events",
                    crate::head::HEAD_FILE,
                    head.last().last_seq
                ),
            },
            source => db_error(source),
        })?;
        let blocks = db.open_tree(BLOCKS_TREE).map_err(db_error)?;
        crate::snapshot::remove_stale_temps(dir)?;
        tracing::debug!(dir = %dir.display(), "opened the event log");
        let log = EventLog {
            db,
            blocks,
            reader: BlockReader {
                sled_path: sled_path.clone(),
                file: Arc::new(file),
                file_path,
            },
            sled_path,
            file_end: None,
            dir: dir.to_path_buf(),
            index: None,
            hasher: IdHasher::new(),
            cached_blocks: Vec::new(),
            recent_offsets: Vec::new(),
            head: Arc::new(Mutex::new(head)),
            writer: BlockWriter::new(),
            staged_blocks: 0,
            _lock: lock,
        };
        log.drop_locators_that_disagree()?;
        log.locate_acknowledged_blocks()?;
        Ok(log)
    }

    /// Holds sled's locators against the files they are derived from,
    /// before anything reads or appends by them: the blocks they name must
    /// follow one another in sequence and in the blocks file, each header
    /// there must be the one its locator names (its checksum, first
    /// sequence number and count), the last block must be whole at its
    /// locator's length, and none may lie past the head journal's last
    /// acknowledged block. From the first locator that disagrees on (or the
    /// one before it, when the two do not meet in the file and either
    /// length could be wrong), the locators are dropped, and
    /// [`EventLog::locate_acknowledged_blocks`] finds those blocks again in
    /// the blocks file, up to the journal's end; what it cannot find,
    /// [`EventLog::open`] names as lost. A block whose bytes are damaged
    /// under a locator that agrees with it is left for its read to name.
    ///
    /// Why: readers never open sled; they take `HEAD` and the blocks file
    /// for the truth. A stale or damaged locator would have the writer read,
    /// index and append where readers do not (an append starts at the last
    /// locator's end, and cuts the file there), and a locator past the
    /// journal names a block a crash stopped between sled and the journal:
    /// never acknowledged, never seen by a reader, and the next append's
    /// place. Only each block's 32-byte header and the last block are read
    /// here; a first append reads every block whole anyway, to build the
    /// idempotency index.
    ///
    /// When the journal is damaged or has no record, which blocks were
    /// acknowledged is not known, and dropping locators could let the next
    /// append cut acknowledged blocks off the file: a disagreement is then
    /// an error naming the block, for `penalty recover` to rebuild from the
    /// blocks file.
    fn drop_locators_that_disagree(&self) -> Result<(), StoreError> {
        let journal = crate::head::read(&self.dir)?;
        let acknowledged_seq = journal.last.last_seq;
        let journal_sound = journal.damage.is_none() && acknowledged_seq > 0;
        let file = &self.reader.file;
        let io_error = |source| StoreError::Io {
            action: "reading the blocks sled's locators name",
            path: self.reader.file_path.clone(),
            source,
        };
        let file_len = file.metadata().map_err(io_error)?.len();
        let mut previous: Option<(u64, Locator)> = None;
        // From which block on, and why.
        let mut disagreement: Option<(u64, Locator, String)> = None;
        for found in self.blocks.iter() {
            let (key, value) = found.map_err(|e| self.db_error(e))?;
            // A value that is not a locator (a block kept inside sled) is
            // damage that reading the block names.
            let (Some(first_seq), Some(locator)) =
                (block::seq_of_key(&key), Locator::decode(&value))
            else {
                return Ok(());
            };
            let (next_seq, end) = previous.map_or((1, 0), |(seq, before)| {
                (seq + u64::from(before.count), before.end())
            });
            let here = |problem: String| Some((first_seq, locator, problem));
            disagreement = if first_seq != next_seq {
                here(format!(
                    "a block is located at sequence number {first_seq}, where {next_seq} comes next"
                ))
            } else if journal_sound && first_seq > acknowledged_seq {
                here(format!(
                    "the block at sequence number {first_seq} lies past the last acknowledged \
                     event ({acknowledged_seq}) of {}",
                    crate::head::HEAD_FILE
                ))
            } else if locator.offset != end && locator.offset != align_up(end) {
                let problem = format!(
                    "the block at sequence number {first_seq} is located at byte {} of \
                     {BLOCKS_FILE}, where the block before it ends at byte {end}",
                    locator.offset
                );
                match previous {
                    Some((seq, before)) => Some((seq, before, problem)),
                    None => here(problem),
                }
            } else if locator.end() > file_len {
                here(format!(
                    "the block at sequence number {first_seq} is located up to byte {} of \
                     {BLOCKS_FILE}, which is {file_len} bytes",
                    locator.end()
                ))
            } else {
                let mut header = [0u8; block::HEADER_BYTES];
                match file.read_exact_at(&mut header, locator.offset) {
                    Ok(()) if locator.names_header(first_seq, &header) => None,
                    Ok(()) => here(format!(
                        "the block at byte {} of {BLOCKS_FILE} is not the one the locator of \
                         sequence number {first_seq} names",
                        locator.offset
                    )),
                    Err(error) => return Err(io_error(error)),
                }
            };
            if disagreement.is_some() {
                break;
            }
            previous = Some((first_seq, locator));
        }
        // The last block's length has no next block to be checked against:
        // the block found whole at its offset must be the one located.
        if let (None, Some((first_seq, locator))) = (&disagreement, previous) {
            let whole = crate::scan::block_at(file, locator.offset, file_len, first_seq)
                .map_err(io_error)?;
            if let Some((_, whole)) = whole.filter(|(_, whole)| *whole != locator) {
                disagreement = Some((
                    first_seq,
                    locator,
                    format!(
                        "the last block, at sequence number {first_seq}, is {} bytes in \
                         {BLOCKS_FILE}, not the {} of its locator",
                        whole.len, locator.len
                    ),
                ));
            }
        }
        let Some((first_seq, locator, problem)) = disagreement else {
            return Ok(());
        };
        if !journal_sound {
            return Err(StoreError::corrupt_block(
                first_seq,
                u64::from(locator.count),
                format!(
                    "sled's block locators disagree with {BLOCKS_FILE} ({problem}), and {} does \
                     not say which blocks were acknowledged; `penalty recover` rebuilds the \
                     locators from the blocks file",
                    crate::head::HEAD_FILE
                ),
            ));
        }
        let keys = self
            .blocks
            .range(block_key(first_seq)..)
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db_error(e))?;
        for key in &keys {
            self.blocks.remove(key).map_err(|e| self.db_error(e))?;
        }
        self.db.flush().map_err(|e| self.db_error(e))?;
        tracing::warn!(
            first_seq,
            dropped = keys.len(),
            problem,
            "dropped sled's block locators from the first that disagrees with the blocks file \
             and the head journal; the acknowledged blocks are located again from the blocks file"
        );
        Ok(())
    }

    /// Finds in the blocks file the blocks that the head journal says were
    /// acknowledged and that sled does not locate, and locates them.
    ///
    /// Why: sled is flushed every [`SLED_FLUSH_EVERY_BLOCKS`] blocks, not
    /// every block, so after a crash (or when sled discarded a damaged end
    /// of its file) its locators can end before the journal's last
    /// acknowledged block. Those blocks are in the blocks file, synced
    /// before the journal recorded them, one after the other from the last
    /// located block's end; they are found as `recover` finds blocks (the
    /// block magic, then the end where the checksum holds) and must start
    /// with the next sequence number. Blocks past the journal's last one
    /// were never acknowledged and are left for the next append to
    /// overwrite. When the blocks file does not reach the journal either,
    /// what it has is located and [`EventLog::open`] reports the rest lost.
    fn locate_acknowledged_blocks(&self) -> Result<(), StoreError> {
        let acknowledged_seq = lock_head(&self.head).last().last_seq;
        let (next_seq, end) = match self.blocks.last().map_err(|e| self.db_error(e))? {
            None => (1, 0),
            Some((key, value)) => match Locator::decode(&value) {
                Some(locator) => (self.reader.last_seq_of(&key, &value)? + 1, locator.end()),
                // Not a locator: damage, which reading the block names.
                None => return Ok(()),
            },
        };
        if next_seq > acknowledged_seq {
            return Ok(());
        }
        let file = &self.reader.file;
        let io_error = |source| StoreError::Io {
            action: "reading the blocks file for blocks sled does not locate",
            path: self.reader.file_path.clone(),
            source,
        };
        let file_len = file.metadata().map_err(io_error)?.len();
        let found =
            crate::scan::blocks_in_sequence(file, end, file_len, next_seq, acknowledged_seq)
                .map_err(io_error)?;
        let Some(&(first_found, _)) = found.blocks.first() else {
            return Ok(());
        };
        locate(&self.db, &self.blocks, &found.blocks).map_err(|e| self.db_error(e))?;
        tracing::info!(
            blocks = found.blocks.len(),
            first_seq = first_found,
            last_seq = found.next_seq - 1,
            "located the acknowledged blocks that sled had not flushed"
        );
        Ok(())
    }

    /// Flushes sled, so that every block acknowledged so far is located
    /// without reading blocks at the next open (the blocks themselves are
    /// durable already).
    pub fn flush_locators(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.db_error(e))?;
        Ok(())
    }

    /// Compares the database's last block with the head journal. sled
    /// discards a damaged record and everything after it when it recovers,
    /// without an error; this is where that loss is caught.
    fn head_problem(&self) -> Result<Option<StoreError>, StoreError> {
        let head = lock_head(&self.head).last();
        if head.last_seq == 0 {
            return Ok(None);
        }
        let last_seq = self.last_seq()?;
        if last_seq < head.last_seq {
            return Ok(Some(StoreError::Corrupt {
                block_seq: last_seq + 1,
                first_seq: last_seq + 1,
                last_seq: head.last_seq,
                detail: format!(
                    "the log ends at sequence number {last_seq} but {} acknowledged events up \
                     to {}, and {BLOCKS_FILE} holds no whole block after it: the blocks file \
                     was truncated or damaged; restore the data directory from a backup",
                    crate::head::HEAD_FILE,
                    head.last_seq
                ),
            }));
        }
        if let Some(block) = self.block_holding(head.block_first_seq)? {
            if block.first_seq != head.block_first_seq || block.stored_crc() != head.block_crc {
                return Ok(Some(StoreError::corrupt_block(
                    head.block_first_seq,
                    block.entries.len() as u64,
                    "this block is not the one acknowledged when it was written",
                )));
            }
        }
        Ok(None)
    }

    /// Where the block ending at `seq` lies, for a snapshot taken at
    /// `seq`; `None` when no block ends there (a snapshot is only taken at
    /// a block's end, where a reader resumes folding).
    pub fn snapshot_end(&self, seq: u64) -> Result<Option<SnapshotEnd>, StoreError> {
        let Some(found) = self.blocks.range(..=block_key(seq)).next_back() else {
            return Ok(None);
        };
        let (key, value) = found.map_err(|e| self.db_error(e))?;
        let (Some(first_seq), Some(locator)) = (block::seq_of_key(&key), Locator::decode(&value))
        else {
            return Ok(None);
        };
        if locator.count == 0 || first_seq + u64::from(locator.count) - 1 != seq {
            return Ok(None);
        }
        Ok(Some(SnapshotEnd {
            seq,
            block_first_seq: first_seq,
            block_offset: locator.offset,
            block_len: locator.len,
            block_crc: locator.crc,
        }))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn db_error(&self, source: sled::Error) -> StoreError {
        StoreError::Database {
            path: self.sled_path.clone(),
            source,
        }
    }

    /// The last sequence number in the log, 0 when it is empty.
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        if let Some(index) = &self.index {
            return Ok(index.next_seq - 1);
        }
        match self.blocks.last().map_err(|e| self.db_error(e))? {
            None => Ok(0),
            Some((key, value)) => self.reader.last_seq_of(&key, &value),
        }
    }

    /// Makes room in the idempotency index for about `events` more events,
    /// so that a large ingest does not rehash millions of entries (and hold
    /// the old and the new table at once) while the index fills. A guess
    /// too high costs memory, too low only the rehashing it would have
    /// saved. The tables are written when made, so a guess is honoured up
    /// to [`MAX_RESERVED_EVENTS`] only: past it, they grow as they fill.
    pub fn reserve(&mut self, events: u64) -> Result<(), StoreError> {
        let mut index = match self.index.take() {
            Some(index) => index,
            None => self.build_index()?,
        };
        let events = usize::try_from(events)
            .unwrap_or(usize::MAX)
            .min(MAX_RESERVED_EVENTS);
        index.events.reserve(events);
        // About one paid order per two events.
        index.paid_orders.reserve(events / 2);
        self.index = Some(index);
        Ok(())
    }

    /// Frees the idempotency index (tens of megabytes at a million events)
    /// when no append is coming soon, such as at the end of an ingest that
    /// writes its snapshots next; the next append rebuilds it from the disk.
    pub fn release_index(&mut self) {
        self.index = None;
    }

    /// The index's hasher: what [`Keys`] given to
    /// [`EventLog::append_keyed`] must be computed with.
    pub(crate) fn hasher(&self) -> IdHasher {
        self.hasher
    }

    /// Decides the outcome of each item against the index and the earlier
    /// items of the batch, and lists the new events in order.
    fn classify<'a>(
        &mut self,
        index: &mut Index,
        items: &'a [(ParsedRef<'a>, Keys)],
    ) -> Result<(Vec<AppendOutcome>, Vec<NewEntry<'a>>), StoreError> {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut entries: Vec<NewEntry<'a>> = Vec::with_capacity(items.len());
        let first_seq = index.next_seq;
        for group in items.chunks(TOUCH_AHEAD_LINES) {
            index.touch(group.iter().map(|(_, keys)| keys));
            for (item, keys) in group {
                let event_id = item.event_id;
                let paid_order = item.paid_order_id;
                let payload = item.payload;
                let next_seq = first_seq + entries.len() as u64;
                let batch = &entries;
                let outcome =
                    index.classify_one(event_id, paid_order, keys, next_seq, |seq, check| {
                        // An event of this batch is not in any block yet.
                        if let Some(entry) = seq
                            .checked_sub(first_seq)
                            .and_then(|position| batch.get(usize::try_from(position).ok()?))
                        {
                            let line = &entry.line;
                            return Ok(match check {
                                MatchOn::Id => line.event_id == event_id,
                                MatchOn::Json => line.payload.same_content(&payload),
                                MatchOn::PaysFor => line.paid_order_id == paid_order,
                            });
                        }
                        self.with_stored(seq, |block, stored| match check {
                            MatchOn::Id => stored.event_id == event_id,
                            MatchOn::Json => block.payload(stored).same_content(&payload),
                            MatchOn::PaysFor => block.paid(stored) == paid_order,
                        })
                    })?;
                if let AppendOutcome::Appended { .. } = outcome {
                    entries.push(NewEntry {
                        line: *item,
                        hash: keys.content,
                    });
                }
                outcomes.push(outcome);
            }
        }
        Ok((outcomes, entries))
    }

    /// Refuses a log of `events` events past [`MAX_EVENTS`].
    fn within_max_events(&self, events: u64) -> Result<(), StoreError> {
        if events > MAX_EVENTS {
            return Err(StoreError::Full {
                dir: self.dir.clone(),
                max_events: MAX_EVENTS,
                wanted: events,
            });
        }
        Ok(())
    }

    /// `f` of the stored entry of `seq`: how an index hit is confirmed (the
    /// id, the paid order, the exact canonical JSON of a duplicate), since
    /// equal hashes alone prove nothing.
    fn with_stored<T>(
        &mut self,
        seq: u64,
        f: impl FnOnce(BlockBytes<'_>, &block::EntryMeta) -> T,
    ) -> Result<T, StoreError> {
        let missing = || {
            StoreError::corrupt_block(seq, 1, "the index names this event but no block holds it")
        };
        // Written by this log moments ago (or pending): read in place, by
        // the entries' offsets, noted when the block was encoded.
        if let Some((first_seq, bytes)) = self.writer.recent(seq) {
            let known = self
                .recent_offsets
                .iter()
                .position(|(first, _)| *first == first_seq);
            let index = match known {
                Some(index) => index,
                None => {
                    let mut offsets = spare_offsets(&mut self.recent_offsets);
                    if !block::entry_offsets(bytes, &mut offsets) {
                        return Err(StoreError::corrupt_block(
                            first_seq,
                            1,
                            "a block this process encoded does not read back",
                        ));
                    }
                    self.recent_offsets.push((first_seq, offsets));
                    self.recent_offsets.len() - 1
                }
            };
            let entry = usize::try_from(seq - first_seq)
                .ok()
                .and_then(|position| self.recent_offsets[index].1.get(position))
                .and_then(|&offset| block::entry_at(bytes, offset))
                .ok_or_else(missing)?;
            return Ok(f(BlockBytes(bytes), &entry));
        }
        let cached = self
            .cached_blocks
            .iter()
            .position(|block| block.entry(seq).is_some());
        let block = match cached {
            Some(index) => {
                // Most recently used last.
                let block = self.cached_blocks.remove(index);
                self.cached_blocks.push(Arc::clone(&block));
                block
            }
            None => {
                let block = Arc::new(self.block_holding(seq)?.ok_or_else(missing)?);
                if self.cached_blocks.len() == DUPLICATE_CACHE_BLOCKS {
                    self.cached_blocks.remove(0);
                }
                self.cached_blocks.push(Arc::clone(&block));
                block
            }
        };
        let entry = block.entry(seq).ok_or_else(missing)?;
        Ok(f(block.view(), entry))
    }

    /// Where the next block goes in the blocks file: after the last located
    /// block. Bytes past it were written by an append that failed or crashed
    /// before it was acknowledged; they are dropped here.
    fn blocks_end(&self) -> Result<u64, StoreError> {
        let end = match self.blocks.last().map_err(|e| self.db_error(e))? {
            Some((_, value)) => Locator::decode(&value).map_or(0, |l| l.end()),
            None => 0,
        };
        let io_error = |action, source| StoreError::Io {
            action,
            path: self.reader.file_path.clone(),
            source,
        };
        let len = self
            .reader
            .file
            .metadata()
            .map_err(|e| io_error("reading the size of the blocks file", e))?
            .len();
        if len < end {
            let last_seq = self.last_seq()?;
            return Err(StoreError::Corrupt {
                block_seq: last_seq,
                first_seq: last_seq,
                last_seq,
                detail: format!(
                    "{BLOCKS_FILE} is {len} bytes but its blocks end at byte {end}: the file was \
                     truncated or replaced"
                ),
            });
        }
        // The zeros after the last block that pad a direct write are not an
        // unacknowledged end (see `direct`).
        let padded = padded_end(&self.reader.file, end, len)
            .map_err(|e| io_error("reading the end of the blocks file", e))?;
        if len > padded {
            tracing::warn!(
                bytes = len - end,
                "dropping the unacknowledged end of the blocks file"
            );
            self.reader
                .file
                .set_len(end)
                .map_err(|e| io_error("truncating the unacknowledged end of the blocks file", e))?;
        }
        Ok(end)
    }

    /// The verified block holding `seq`, if any.
    fn block_holding(&self, seq: u64) -> Result<Option<DecodedBlock>, StoreError> {
        let Some(found) = self.blocks.range(..=block_key(seq)).next_back() else {
            return Ok(None);
        };
        let (key, value) = found.map_err(|e| self.db_error(e))?;
        let block = self.reader.load(&key, &value)?;
        Ok((block.entry(seq).is_some()).then_some(block))
    }

    /// Scans every block's metadata to rebuild the idempotency index. Each
    /// block's checksum is verified: the index is never built from damaged
    /// data.
    fn build_index(&self) -> Result<Index, StoreError> {
        let hasher = self.hasher;
        let started = std::time::Instant::now();
        // Sizing the maps from the last block avoids rehashing millions of
        // entries while they fill.
        let expected_events = self.last_seq()?;
        self.within_max_events(expected_events)?;
        let mut index = Index::with_capacity(usize::try_from(expected_events).unwrap_or(0), hasher);
        for found in self.blocks.iter() {
            let (key, value) = found.map_err(|e| self.db_error(e))?;
            let block = self.reader.load(&key, &value)?;
            check_continuity(index.next_seq, &block)?;
            // The block's keys first, their home slots read ahead as
            // `classify` reads them.
            let keys: Vec<Keys> = block
                .entries
                .iter()
                .map(|entry| Keys::of(&hasher, entry.event_id, block.paid(entry), 0))
                .collect();
            index.touch(&keys);
            // Each stored event is classified as a new line would be: in the
            // log, anything but "appended" is damage. A hash already held is
            // confirmed against the event holding it, in this block or an
            // earlier one (read again: this is rare).
            for ((offset, entry), keys) in block.entries.iter().enumerate().zip(&keys) {
                let seq = block.first_seq + offset as u64;
                let id = entry.event_id;
                let paid_order = block.paid(entry);
                let confirm = |held: u64, check: MatchOn| {
                    let same = |b: &DecodedBlock, e: &block::EntryMeta| match check {
                        MatchOn::Id => e.event_id == id,
                        // Any repeat of an id is damage, whatever its content.
                        MatchOn::Json => false,
                        MatchOn::PaysFor => b.paid(e) == paid_order,
                    };
                    if let Some(held_entry) = block.entry(held) {
                        return Ok(same(&block, held_entry));
                    }
                    let earlier = self.block_holding(held)?;
                    Ok(earlier.is_some_and(|b| b.entry(held).is_some_and(|e| same(&b, e))))
                };
                let detail = match index.classify_one(id, paid_order, keys, seq, confirm)? {
                    AppendOutcome::Appended { .. } => continue,
                    AppendOutcome::Duplicate { seq: earlier }
                    | AppendOutcome::EventIdConflict {
                        existing_seq: earlier,
                    } => format!("sequence number {seq} repeats the event id of {earlier}"),
                    AppendOutcome::OrderAlreadyPaid { paid_seq } => {
                        format!("sequence number {seq} pays again for the order paid at {paid_seq}")
                    }
                };
                return Err(StoreError::corrupt_block(
                    block.first_seq,
                    block.entries.len() as u64,
                    detail,
                ));
            }
            index.next_seq = block.end_seq();
        }
        tracing::info!(
            events = index.events.len(),
            paid_orders = index.paid_orders.len(),
            millis = started.elapsed().as_millis() as u64,
            "built the idempotency index"
        );
        Ok(index)
    }

    /// The events from sequence number `from` on, in order. Damage (a failed
    /// checksum, a gap) is yielded as an error naming the sequence numbers,
    /// after which the iterator ends.
    pub fn iter_from(&self, from: u64) -> LogIter {
        // Start at the block holding `from` (or the last one before it).
        let start = match self.blocks.range(..=block_key(from)).next_back() {
            Some(Ok((key, _))) => block::seq_of_key(&key),
            Some(Err(error)) => {
                return LogIter::failed(self.db_error(error), self.reader.clone());
            }
            None => None,
        };
        let (blocks, expected) = match start {
            // Continuity with earlier blocks is not re-checked here (that is
            // `verify`'s job); from this block on it is.
            Some(seq) => (self.blocks.range(block_key(seq)..), None),
            None => (self.blocks.iter(), Some(1)),
        };
        LogIter {
            blocks: Some(blocks),
            current: None,
            from,
            expected,
            error: None,
            done: false,
            reader: self.reader.clone(),
        }
    }

    /// The blocks holding the events from sequence number `from` on (the first
    /// may start before it), each checked, in order.
    pub fn iter_blocks_from(&self, from: u64) -> BlockIter {
        BlockIter {
            inner: self.iter_from(from),
        }
    }

    /// The event with sequence number `seq`, if the log holds it.
    pub fn get(&self, seq: u64) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self.block_holding(seq)?.and_then(|block| {
            block
                .entry(seq)
                .map(|entry| stored_event(&block, seq, entry))
        }))
    }

    /// Checks the whole log: every block's checksum and structure, the
    /// continuity of sequence numbers, that each JSON validates and matches
    /// its block metadata, and that no event id or paid order repeats.
    /// Damage is reported in the [`VerifyReport`]; an `Err` means the check
    /// itself could not run.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport {
            blocks: 0,
            events: 0,
            last_seq: 0,
            problem: None,
        };
        let mut checker = EntryChecker::default();
        let mut expected = 1;
        for found in self.blocks.iter() {
            let (key, value) = found.map_err(|e| self.db_error(e))?;
            let checked = self.reader.load(&key, &value).and_then(|block| {
                check_continuity(expected, &block)?;
                Ok(block)
            });
            let block = match checked {
                Ok(block) => block,
                Err(error) => {
                    report.problem = Some(VerifyProblem {
                        seq: error.corrupt_seq().unwrap_or(expected),
                        detail: error.to_string(),
                    });
                    return Ok(report);
                }
            };
            for (offset, entry) in block.entries.iter().enumerate() {
                let seq = block.first_seq + offset as u64;
                let problem = checker.check(&block, entry, false);
                if let Some(detail) = problem {
                    report.problem = Some(VerifyProblem {
                        seq,
                        detail: format!("sequence number {seq}: {detail}"),
                    });
                    return Ok(report);
                }
                report.events += 1;
                report.last_seq = seq;
            }
            report.blocks += 1;
            expected = block.end_seq();
        }
        if let Some(error) = self.head_problem()? {
            report.problem = Some(VerifyProblem {
                seq: error.corrupt_seq().unwrap_or(report.last_seq + 1),
                detail: error.to_string(),
            });
        }
        Ok(report)
    }
}

/// What [`EventLog::verify`] and the readers' audit check of each stored
/// event, in log order: its content hash, that its JSON validates and
/// agrees with its block entry and compact form, and that no event id or
/// paid order repeats.
pub(crate) struct EntryChecker {
    /// The canonical JSON regenerated from the compact form of the entry
    /// being checked: one buffer for them all.
    json: Vec<u8>,
    repeats: Repeats,
}

/// How an [`EntryChecker`] finds an event id or a paid order met twice.
enum Repeats {
    /// As it goes, in a set of each: the first repeat is named at its
    /// sequence number.
    Exact {
        ids: HashSet<u128, BuildHasherDefault<CheckerHasher>>,
        paid: HashSet<Vec<u8>, BuildHasherDefault<CheckerHasher>>,
    },
    /// Once at the end ([`EntryChecker::may_repeat`]): a 64-bit hash of
    /// each, kept in log order, then sorted and compared with its
    /// neighbour. No hash twice proves no value twice; a hash twice (a
    /// repeat, which is damage, or two values of one hash, about one
    /// chance in ten million at a million orders) sends the caller back to
    /// an exact check, which names the first repeat. Sorting two flat
    /// arrays costs a fraction of the sets' scattered inserts (a fifth of
    /// an audit's check of the log) and memory.
    Sorted { ids: Vec<u64>, paid: Vec<u64> },
}

/// The hash of [`Repeats::Exact`]'s sets: a multiply and a shift over the
/// key's words (FNV-1a over bytes), mixed enough for a hash table. The
/// default SipHash was a fifth of an audit's check of the log; the keys are
/// the log's own, read back, and a collision costs only a comparison.
#[derive(Default)]
pub(crate) struct CheckerHasher(u64);

impl std::hash::Hasher for CheckerHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0 ^ 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64).rotate_left(32);
    }

    fn finish(&self) -> u64 {
        let hash = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        hash ^ (hash >> 29)
    }
}

impl Default for EntryChecker {
    fn default() -> EntryChecker {
        EntryChecker::exact(0)
    }
}

impl EntryChecker {
    /// A checker that names a repeat as it meets it, with room for about
    /// `events` events (about half of them paid), so that its sets are
    /// not rehashed as they fill.
    pub(crate) fn exact(events: u64) -> EntryChecker {
        let events = usize::try_from(events).unwrap_or(0).min(1 << 26);
        EntryChecker {
            json: Vec::new(),
            repeats: Repeats::Exact {
                ids: HashSet::with_capacity_and_hasher(events, Default::default()),
                paid: HashSet::with_capacity_and_hasher(events / 2, Default::default()),
            },
        }
    }

    /// A checker that only notes each event's id and paid order, for
    /// [`EntryChecker::may_repeat`] at the end; room for about `events`.
    pub(crate) fn sorted(events: u64) -> EntryChecker {
        let events = usize::try_from(events).unwrap_or(0).min(1 << 28);
        EntryChecker {
            json: Vec::new(),
            repeats: Repeats::Sorted {
                ids: Vec::with_capacity(events),
                paid: Vec::with_capacity(events / 2),
            },
        }
    }

    /// What is wrong with `entry` of `block`, in a sentence; `None` when
    /// nothing is (or nothing yet: see [`Repeats::Sorted`]). `valid` says
    /// that the entry's compact form was found valid
    /// ([`penalty_core::compact::decode_valid`]) by the scan that read the
    /// block (`projection::replay_read_sharing`), which decodes it for its
    /// fold anyway: it is then not decoded again, only its event id and
    /// paid order read.
    pub(crate) fn check(
        &mut self,
        block: &DecodedBlock,
        entry: &block::EntryMeta,
        valid: bool,
    ) -> Option<String> {
        if !block.hash_matches(entry) {
            return Some("its content hash does not match its stored bytes".to_string());
        }
        let (payload, compact) = block.payload(entry);
        if compact && valid {
            if let Some((event_id, paid)) = penalty_core::compact::event_id_and_paid_order(payload)
            {
                return entry_problem(&mut self.repeats, block, entry, event_id, paid);
            }
        }
        if compact {
            // The usual stored event: its compact form is decided without
            // regenerating and parsing its JSON (about a tenth of an audit's
            // CPU went there), as that round trip would decide it.
            if let Some((event_id, _, kind)) = penalty_core::compact::decode_valid(payload) {
                return entry_problem(&mut self.repeats, block, entry, event_id, paid_order(kind));
            }
        }
        let mut json = std::mem::take(&mut self.json);
        json.clear();
        let (stored, decoded): (&[u8], _) = if compact {
            // A compact form that does not decode regenerates no JSON,
            // which then does not validate.
            let decoded = penalty_core::compact::decode_ref_and_json(payload, &mut json);
            if decoded.is_none() {
                json.clear();
            }
            (&json, decoded)
        } else {
            (payload, None)
        };
        let repeats = &mut self.repeats;
        // The event is read borrowed from its JSON (no string allocated per
        // event); the compact form must decode to the very same fields.
        let problem = parse_stored_with(stored, |event_id, at, kind| {
            if compact && decoded != Some((event_id, at, kind)) {
                return Some("its compact form decodes to another event than its JSON".into());
            }
            entry_problem(repeats, block, entry, event_id, paid_order(kind))
        })
        .unwrap_or_else(|reject| Some(format!("its JSON does not validate ({reject})")));
        self.json = json;
        problem
    }

    /// Whether an event id or a paid order may have been met twice among
    /// the entries checked: always `false` for an exact checker (it named
    /// any repeat already); for a sorted one, whether two of its hashes are
    /// equal, in which case an exact check must say where (or that two
    /// values merely share a hash).
    pub(crate) fn may_repeat(&mut self) -> bool {
        match &mut self.repeats {
            Repeats::Exact { .. } => false,
            Repeats::Sorted { ids, paid } => {
                let twice = |hashes: &mut Vec<u64>| {
                    hashes.sort_unstable();
                    hashes.windows(2).any(|pair| pair[0] == pair[1])
                };
                twice(ids) || twice(paid)
            }
        }
    }
}

/// The order a `paid` event pays, as bytes.
fn paid_order(kind: KindRef<'_>) -> Option<&[u8]> {
    match kind {
        KindRef::Paid { order_id, .. } => Some(order_id.as_bytes()),
        _ => None,
    }
}

/// What is wrong with a stored event that validates, read as `event_id`
/// and `paid` (the order it pays, if it is a `paid` event), against its
/// block entry and the events before it.
fn entry_problem(
    repeats: &mut Repeats,
    block: &DecodedBlock,
    entry: &block::EntryMeta,
    event_id: u128,
    paid: Option<&[u8]>,
) -> Option<String> {
    if event_id != entry.event_id {
        return Some("its JSON names another event id than its block entry".into());
    }
    if paid != block.paid(entry) {
        return Some("its JSON names another paid order than its block entry".into());
    }
    repeats.note(event_id, paid)
}

impl Repeats {
    /// Notes an event's id and paid order; the repeat it makes, in a
    /// sentence, when known now.
    fn note(&mut self, event_id: u128, paid: Option<&[u8]>) -> Option<String> {
        match self {
            Repeats::Exact { ids, paid: orders } => {
                if !ids.insert(event_id) {
                    return Some("its event id appears earlier in the log".into());
                }
                paid.filter(|order| !orders.insert(order.to_vec()))
                    .map(|order| {
                        let order = String::from_utf8_lossy(order);
                        format!("order {order} was already paid earlier in the log")
                    })
            }
            Repeats::Sorted { ids, paid: orders } => {
                ids.push((event_id as u64) ^ ((event_id >> 64) as u64).rotate_left(32));
                if let Some(order) = paid {
                    orders.push(content_hash(order));
                }
                None
            }
        }
    }
}

pub(crate) use crate::block::MAX_BLOCK_BYTES;

/// A vector for a kept block's entry offsets, taken from `recent` (an
/// [`EventLog`]'s `recent_offsets`): the oldest block's, once as many are
/// noted as the writer keeps blocks, else a new one.
fn spare_offsets(recent: &mut Vec<(u64, Vec<u32>)>) -> Vec<u32> {
    if recent.len() == RECENT_OFFSETS_BLOCKS {
        recent.remove(0).1
    } else {
        Vec::new()
    }
}

/// What reading a block takes: the sled value under its key is its
/// [`Locator`] in the blocks file.
#[derive(Clone)]
struct BlockReader {
    sled_path: PathBuf,
    /// Read with positioned reads, so one handle serves every reader.
    file: Arc<File>,
    file_path: PathBuf,
}

impl BlockReader {
    /// Reads, verifies and decodes the block stored under `key`.
    fn load(&self, key: &[u8], value: &[u8]) -> Result<DecodedBlock, StoreError> {
        let key_seq = block::seq_of_key(key).unwrap_or(0);
        let Some(locator) = Locator::decode(value) else {
            return Err(StoreError::corrupt_block(
                key_seq,
                1,
                format!(
                    "its entry in the `{BLOCKS_TREE}` tree is not a locator ({} bytes); \
                     `penalty recover` rebuilds the locators from the blocks file",
                    value.len()
                ),
            ));
        };
        let count = u64::from(locator.count);
        let corrupt = |detail: String| StoreError::corrupt_block(key_seq, count, detail);
        if locator.len > MAX_BLOCK_BYTES {
            return Err(corrupt(format!(
                "its locator claims a block of {} bytes",
                locator.len
            )));
        }
        let mut bytes = vec![0u8; locator.len as usize];
        self.file
            .read_exact_at(&mut bytes, locator.offset)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::UnexpectedEof => corrupt(format!(
                    "{BLOCKS_FILE} ends before the {} bytes of this block at offset {}",
                    locator.len, locator.offset
                )),
                _ => StoreError::Io {
                    action: "reading a block from the blocks file",
                    path: self.file_path.clone(),
                    source,
                },
            })?;
        let block = block::decode(key, bytes)?;
        if block.stored_crc() != locator.crc || block.entries.len() as u64 != count {
            return Err(corrupt(format!(
                "the block at offset {} of {BLOCKS_FILE} is not the one its locator names",
                locator.offset
            )));
        }
        Ok(block)
    }

    /// The last sequence number of the block stored under `key`, from its
    /// locator when it has one (without reading the block).
    fn last_seq_of(&self, key: &[u8], value: &[u8]) -> Result<u64, StoreError> {
        match (Locator::decode(value), block::seq_of_key(key)) {
            (Some(locator), Some(first_seq)) if locator.count >= 1 => {
                Ok(first_seq + u64::from(locator.count) - 1)
            }
            _ => Ok(self.load(key, value)?.last_seq()),
        }
    }
}

/// How long [`open_sled`] waits for sled's own file lock.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled's database, waiting a little for its file lock.
///
/// Why: the directory lock is ours already, so no other process of ours
/// holds sled's database; but within one process, a database just closed
/// can keep its file (and the lock on it) open a moment longer, until
/// sled's deferred frees run. Reopening at once then failed with "could not
/// acquire lock". Any other error, or a lock still held after the wait, is
/// returned.
pub(crate) fn open_sled(sled_path: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(sled_path)
            // Blocks are read once, in order, and checkpoints once per
            // process: a large page cache would only hold memory.
            .cache_capacity(16 * 1024 * 1024)
            // sled is flushed when it matters: every
            // `SLED_FLUSH_EVERY_BLOCKS` blocks, after a checkpoint, at the
            // end of an ingest and on close. A periodic background flush
            // would only add I/O.
            .flush_every_ms(None)
            .open();
        match opened {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < SLED_LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Removes the snapshot files sled was still writing when its process died.
///
/// Why: sled 0.34.7 writes a snapshot to `snap.<lsn>.generating`, syncs it,
/// then renames it to `snap.<lsn>`; but when it opens a database it reads the
/// last of all `snap.*` files by name, the unfinished one included, and
/// refuses to open at all when that one is empty or torn (sled issue #1527).
/// A kill at the wrong moment thus made a healthy log unreadable (our SIGKILL
/// test caught it). An unfinished file was never put in place, and sled
/// removes older snapshots only after the rename, so the last finished
/// snapshot is still there and sled recovers from it and its log. Anything
/// sled then got wrong would still be caught by the head journal, the
/// locators' and blocks' checksums and the sequence checks.
///
/// The caller holds the directory lock, so no other process is writing one.
fn remove_unfinished_snapshots(sled_path: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(sled_path) {
        Ok(entries) => entries,
        // A new data directory: sled creates its own.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "listing sled's directory",
                path: sled_path.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            tracing::warn!(
                path = %path.display(),
                "removing a snapshot sled was still writing when its process stopped"
            );
            std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                action: "removing an unfinished sled snapshot",
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

/// A gap or an overlap between `expected` and the block that follows.
fn check_continuity(expected: u64, block: &DecodedBlock) -> Result<(), StoreError> {
    if block.first_seq == expected {
        return Ok(());
    }
    let detail = if block.first_seq > expected {
        format!(
            "sequence numbers {expected} to {} are missing before this block",
            block.first_seq - 1
        )
    } else {
        format!(
            "this block overlaps the previous one, which ends at sequence number {}",
            expected - 1
        )
    };
    Err(StoreError::Corrupt {
        block_seq: block.first_seq,
        first_seq: expected.min(block.first_seq),
        last_seq: block.last_seq(),
        detail,
    })
}

fn stored_event(block: &DecodedBlock, seq: u64, entry: &block::EntryMeta) -> StoredEvent {
    let (payload, compact) = block.payload(entry);
    StoredEvent {
        seq,
        recorded_at: block.recorded_at,
        event_id: entry.event_id,
        payload: payload.to_vec(),
        compact,
    }
}

/// The iterator of [`EventLog::iter_blocks_from`]: whole checked blocks, for
/// a replay that reads entries in place instead of copying each event out.
pub struct BlockIter {
    inner: LogIter,
}

impl Iterator for BlockIter {
    type Item = Result<DecodedBlock, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.inner.error.take() {
            self.inner.done = true;
            return Some(Err(error));
        }
        if self.inner.done {
            return None;
        }
        let block = self.inner.next_block();
        match &block {
            Some(Ok(block)) => self.inner.expected = Some(block.end_seq()),
            Some(Err(_)) | None => self.inner.done = true,
        }
        block
    }
}

/// The iterator of [`EventLog::iter_from`]. It owns its sled cursor, so it does
/// not borrow the log.
pub struct LogIter {
    /// `None` when the iterator failed before it started.
    blocks: Option<sled::Iter>,
    current: Option<(DecodedBlock, usize)>,
    from: u64,
    /// The first sequence number the next block must have, once known.
    expected: Option<u64>,
    error: Option<StoreError>,
    done: bool,
    reader: BlockReader,
}

impl LogIter {
    fn failed(error: StoreError, reader: BlockReader) -> LogIter {
        LogIter {
            blocks: None,
            current: None,
            from: 0,
            expected: None,
            error: Some(error),
            done: false,
            reader,
        }
    }

    /// Loads the next block, checking it; `None` at the end.
    fn next_block(&mut self) -> Option<Result<DecodedBlock, StoreError>> {
        let (key, value) = match self.blocks.as_mut()?.next()? {
            Ok(found) => found,
            Err(source) => {
                return Some(Err(StoreError::Database {
                    path: self.reader.sled_path.clone(),
                    source,
                }))
            }
        };
        Some(self.reader.load(&key, &value).and_then(|block| {
            if let Some(expected) = self.expected {
                check_continuity(expected, &block)?;
            }
            Ok(block)
        }))
    }
}

impl Iterator for LogIter {
    type Item = Result<StoredEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.error.take() {
            self.done = true;
            return Some(Err(error));
        }
        loop {
            if self.done {
                return None;
            }
            if let Some((block, position)) = &mut self.current {
                if let Some(entry) = block.entries.get(*position) {
                    let seq = block.first_seq + *position as u64;
                    *position += 1;
                    return Some(Ok(stored_event(block, seq, entry)));
                }
                self.current = None;
            }
            match self.next_block() {
                None => self.done = true,
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(error));
                }
                Some(Ok(block)) => {
                    self.expected = Some(block.end_seq());
                    // Skip the events before `from` in the first block.
                    let skip = usize::try_from(self.from.saturating_sub(block.first_seq))
                        .unwrap_or(usize::MAX);
                    self.current = Some((block, skip));
                }
            }
        }
    }
}

/// Hashing for event ids. They are UUIDs, mostly random already, so SipHash
/// (std's default) spends its time on nothing: a keyed multiply-xor mix is
/// enough. The key comes from std's per-process random state, so a crafted
/// set of ids cannot be aimed at one bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdHasher {
    key: u64,
}

impl Default for IdHasher {
    fn default() -> IdHasher {
        IdHasher::new()
    }
}

impl IdHasher {
    pub(crate) fn new() -> IdHasher {
        use std::hash::BuildHasher;
        IdHasher {
            key: std::collections::hash_map::RandomState::new().hash_one(0x9e37_79b9_u64) | 1,
        }
    }
}

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash { state: self.key }
    }
}

/// The hasher of [`IdHasher`].
pub(crate) struct IdHash {
    state: u64,
}

impl std::hash::Hasher for IdHash {
    fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 32;
        h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for word in block::le_words(bytes) {
            self.write_u64(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.state = (self.state ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(23);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

/// Puts the locators of `blocks` in sled's blocks tree, and flushes sled.
pub(crate) fn locate(
    db: &sled::Db,
    tree: &sled::Tree,
    blocks: &[(u64, Locator)],
) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    for (first_seq, locator) in blocks {
        batch.insert(&block_key(*first_seq)[..], &locator.encode()[..]);
    }
    tree.apply_batch(batch)?;
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::append::{BlockDone, BlockJob};
    use super::*;

    /// Stages a block of `count` deposit lines, ids from `first`, as ingest
    /// stages them, and returns its job.
    fn staged_job(log: &mut EventLog, first: u128, count: u128) -> BlockJob {
        let parsed = deposit_lines(first, count);
        let items = keyed(log, &parsed);
        let (_, job) = log.stage_keyed(&items, recorded_at()).expect("staged");
        job.expect("new events make a block")
    }

    /// `count` deposit lines, parsed, with event ids from `first` on.
    fn deposit_lines(first: u128, count: u128) -> penalty_core::event::ParsedLines {
        let mut parsed = penalty_core::event::ParsedLines::default();
        for n in first..first + count {
            let line = format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{n:012x}","type":"deposit_topped_up","at":"2026-01-01T00:00:00Z","shop_id":"S1","amount_fen":100}}"#
            );
            parsed.push(line.as_bytes()).expect("a valid line");
        }
        parsed
    }

    /// The lines with their keys, as ingest hands them to `stage_keyed`.
    fn keyed<'a>(
        log: &EventLog,
        parsed: &'a penalty_core::event::ParsedLines,
    ) -> Vec<(ParsedRef<'a>, Keys)> {
        let hasher = log.hasher();
        (0..parsed.len())
            .map(|position| {
                let line = parsed.get(position).expect("a kept line");
                (line, Keys::of_line(&hasher, &line))
            })
            .collect()
    }

    fn recorded_at() -> UnixNs {
        UnixNs::parse_rfc3339("2026-01-01T00:00:00Z").expect("an instant")
    }

    /// A log in `dir` with one acknowledged block of `count` events.
    fn log_with_a_block(dir: &Path, count: u128) -> EventLog {
        let mut log = EventLog::open(dir).expect("open");
        let job = staged_job(&mut log, 0, count);
        log.acknowledge(job.run()).expect("acknowledged");
        log
    }

    /// An append that would pass the most events a log holds is refused
    /// with a message that says so, and nothing is recorded.
    #[test]
    fn an_append_past_the_most_events_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = log_with_a_block(dir.path(), 1);
        // As if the log were nearly full.
        log.index.as_mut().expect("built").next_seq = MAX_EVENTS;
        let parsed = deposit_lines(1, 2);
        let items = keyed(&log, &parsed);
        let now = recorded_at();
        let error = log.stage_keyed(&items, now).err().expect("refused");
        assert!(matches!(error, StoreError::Full { wanted, .. } if wanted == MAX_EVENTS + 1));
        assert!(
            error.to_string().contains("start a new data directory"),
            "{error}"
        );
        assert_eq!(log.last_seq().expect("last"), 1, "nothing recorded");
        // One more fits. (The refusal gave up the index; it is built again.)
        let (outcomes, job) = log.stage_keyed(&items[..0], now).expect("nothing to stage");
        assert!(outcomes.is_empty() && job.is_none());
        log.reserve(0).expect("the index built again");
        log.index.as_mut().expect("built").next_seq = MAX_EVENTS;
        let (outcomes, job) = log
            .stage_keyed(&items[..1], now)
            .expect("the last one fits");
        assert_eq!(outcomes, vec![AppendOutcome::Appended { seq: MAX_EVENTS }]);
        drop(job);
        log.abandon();
    }

    /// Blocks synced as one group are each acknowledged, and the head
    /// journal names the last: a reopened log has them all.
    #[test]
    fn blocks_synced_as_one_group_are_all_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path()).expect("open");
        let first = staged_job(&mut log, 0, 3);
        let second = staged_job(&mut log, 3, 2);
        let done = BlockJob::sync_group(vec![first.write(), second.write()], false);
        assert_eq!(done.len(), 2);
        for done in done {
            log.acknowledge(done).expect("acknowledged");
        }
        assert_eq!(lock_head(&log.head).last().last_seq, 5);
        drop(log);
        let log = EventLog::open(dir.path()).expect("reopen");
        assert_eq!(log.last_seq().expect("last"), 5);
        assert_eq!(log.verify().expect("verify").blocks, 2);
    }

    /// After a group failed, ingest's syncer gives up the blocks written
    /// after it: none is located or named by the head journal, so the log
    /// never claims a block after one that is missing.
    #[test]
    fn blocks_after_a_failed_group_are_given_up_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = log_with_a_block(dir.path(), 2);
        let job = staged_job(&mut log, 2, 2);
        let done = BlockJob::sync_group(vec![job.write()], true);
        assert!(done.iter().all(BlockDone::is_err));
        let error = log
            .acknowledge(done.into_iter().next().expect("one"))
            .expect_err("given up");
        assert!(
            error
                .to_string()
                .contains("writing an earlier block failed"),
            "{error}"
        );
        assert_eq!(lock_head(&log.head).last().last_seq, 2);
        drop(log);
        let mut log = EventLog::open(dir.path()).expect("reopen");
        assert_eq!(log.last_seq().expect("last"), 2);
        // The given-up block's place is taken by the next append.
        let job = staged_job(&mut log, 2, 3);
        log.acknowledge(job.run()).expect("acknowledged");
        assert_eq!(log.last_seq().expect("last"), 5);
        assert_eq!(log.verify().expect("verify").blocks, 2);
    }

    /// Every id hashes alike: each lookup meets a held hash of another id.
    struct Colliding;

    struct CollidingHash;

    impl BuildHasher for Colliding {
        type Hasher = CollidingHash;

        fn build_hasher(&self) -> CollidingHash {
            CollidingHash
        }
    }

    impl std::hash::Hasher for CollidingHash {
        fn finish(&self) -> u64 {
            7
        }

        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn colliding_hashes_never_decide() {
        // Every id hashes alike, so every lookup meets a hash another id
        // holds: the outcomes must still be EVENTS.md's.
        let mut index = Index::with_capacity(4, Colliding);
        assert_eq!(index.hasher.hash_one(10u128), index.hasher.hash_one(20u128));
        // The "log": (event id, canonical JSON, paid order), seq = position + 1.
        let mut log: Vec<(u128, &str, Option<&[u8]>)> = Vec::new();
        let lines: [(u128, &str, Option<&[u8]>, AppendOutcome); 8] = [
            (10, "a", Some(b"O1"), AppendOutcome::Appended { seq: 1 }),
            (20, "b", Some(b"O2"), AppendOutcome::Appended { seq: 2 }),
            (30, "c", None, AppendOutcome::Appended { seq: 3 }),
            (20, "b", Some(b"O2"), AppendOutcome::Duplicate { seq: 2 }),
            (
                30,
                "other",
                None,
                AppendOutcome::EventIdConflict { existing_seq: 3 },
            ),
            (
                40,
                "d",
                Some(b"O2"),
                AppendOutcome::OrderAlreadyPaid { paid_seq: 2 },
            ),
            (50, "e", Some(b"O3"), AppendOutcome::Appended { seq: 4 }),
            (10, "a", Some(b"O1"), AppendOutcome::Duplicate { seq: 1 }),
        ];
        for (id, json, paid, expected) in lines {
            let next_seq = log.len() as u64 + 1;
            let keys = Keys::of(&index.hasher, id, paid, 0);
            let outcome = index
                .classify_one(id, paid, &keys, next_seq, |seq, check| {
                    let (held_id, held_json, held_paid) = log[seq as usize - 1];
                    Ok(match check {
                        MatchOn::Id => held_id == id,
                        MatchOn::Json => held_json == json,
                        MatchOn::PaysFor => held_paid == paid,
                    })
                })
                .unwrap();
            assert_eq!(outcome, expected, "line {id} {json}");
            if let AppendOutcome::Appended { .. } = outcome {
                log.push((id, json, paid));
            }
        }
        assert_eq!(index.events.len(), 1, "one hash held…");
        assert_eq!(
            index.event_collisions.len(),
            3,
            "…the other ids kept exactly"
        );
        assert_eq!(index.paid_collisions.len(), 2);
    }
}
