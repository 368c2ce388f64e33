//! The tail index, `tail.index`: where each partition's events lie in the
//! blocks the writer appended, so that `order` and `shop` beside a writer
//! read and check only their partition's events of the tail after the
//! partitioned snapshot, instead of every block of it; and a reader of an
//! excerpt of a large shop only the events of the orders that could reach
//! its settle days.
//!
//! Every bulk block holds events of nearly every partition (8,192 events
//! over 1,024 partitions), so the index is by event, not by block: a
//! record per block lists, for each partition, the block's entries that
//! belong to it. An event naming a shop belongs to the shop's partition; an
//! event naming only its order, to the partition of the shop of the
//! order's `paid` when the writer's ledger holds it, else to every
//! partition ([`UNKNOWN_PARTITION`]). Only a writer that folds its appends
//! (`ingest`'s [`crate::projection::Follower`]) knows an order's shop, so
//! it is the one that writes the index, after each block is durable.
//!
//! Each entry also carries the first and last settle day its order could
//! ever have a deduction on, from the order's `paid` alone
//! (`Ledger::possible_days_of`, under the writer's policy, whose
//! fingerprint the record names), or every day ([`ALL_DAYS`]) when the
//! event names no order or one not paid yet, or the order can have none.
//! An excerpt of a large shop holds every order that could have a
//! deduction on its held days (`penalty_core::ledger::excerpt`), and no
//! other order's events can touch those days (R5), so its reader reads
//! only the part's entries whose days meet its held days', under its own
//! policy. Records of another policy are read by partition alone.
//!
//! A hint, never the truth. The blocks file and `HEAD` say where blocks
//! are; a record names its block by offset, length, first sequence number,
//! count and checksum, and a reader uses it only when the block's header
//! at that offset says the same, and reads each listed entry checked by
//! its content hash. A record that is missing (the writer folds behind its
//! appends, or is not `ingest`), torn, damaged or of another block makes
//! the reader read the blocks from there on as it would without an index.
//! Records are written without `fsync`: a crash leaves a torn end, which
//! is ignored. A writer's first record replaces the file (write, rename),
//! so it holds one writer's appends; `penalty recover` removes a damaged
//! one and `penalty audit` names it.
//!
//! ```text
//! record (integers big-endian)
//!   0..4    magic b"PLTI"
//!   4..8    the record's length in bytes
//!   8..16   the block's first sequence number
//!   16..20  its count of events
//!   20..28  its offset in the blocks file
//!   28..32  its length
//!   32..36  the CRC in its header
//!   36..40  partitions (the parts file's, 1,024)
//!   40..44  groups G
//!   44..48  the fingerprint of the policy the days are of
//!   48..52  CRC-32 of bytes 0..48 and the group table
//! G groups, by partition: partition, entries n, CRC-32 of its entries
//! then each group's n entries: entry number in the block, byte offset,
//! first and last possible settle day (days since 1970-01-01)
//! ```
//!
//! The magic names the format: an index of another (`PLTI`, before the
//! days) is read as none.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use penalty_core::time::Day;
use penalty_core::Policy;

use crate::block::Locator;

/// The index's file name in the data directory.
pub const TAIL_INDEX_FILE: &str = "tail.index";
const MAGIC: &[u8; 4] = b"PLT2";
/// The magic of the format before entries carried their days.
const EARLIER_MAGIC: &[u8; 4] = b"PLTI";
const HEADER_BYTES: usize = 52;
const GROUP_BYTES: usize = 12;
const ENTRY_BYTES: usize = 16;
/// An entry's days when its event may concern any settle day: every reader
/// of its partition reads it.
pub const ALL_DAYS: (u32, u32) = (0, u32::MAX);
/// The group of events whose partition the writer did not know (an event
/// naming an order not paid yet): every partition's reader reads them.
pub const UNKNOWN_PARTITION: u32 = u32::MAX;
/// No record is larger: a length past it is damage.
const MAX_RECORD_BYTES: u32 = 256 << 20;
/// A block entry's bytes besides its paid order id and payload (id, hash,
/// the two length fields; see [`crate::block`]).
pub const ENTRY_FIXED_BYTES: usize = 30;

/// A day as an index entry holds it: days since 1970-01-01, those before
/// it as 0 and those past `u32::MAX - 1` as that (the order of days is
/// kept, so a range that meets another still does).
pub fn day_key(day: Day) -> u32 {
    u32::try_from(day.0.clamp(0, i64::from(u32::MAX - 1))).unwrap_or(0)
}

/// An entry's first and last possible settle day ([`day_key`]).
type Days = (u32, u32);

/// An entry's days as a person reads them: "every day" for [`ALL_DAYS`],
/// else the dates of the first and last.
fn days_text(days: (u32, u32)) -> String {
    if days == ALL_DAYS {
        "every day".to_string()
    } else {
        let date = |key: u32| Day(i64::from(key)).to_iso();
        format!("{} to {}", date(days.0), date(days.1))
    }
}

/// The fingerprint of `policy` (all its versions) that a record's days
/// are of: a reader uses the days only under the same policy.
pub fn policy_fingerprint(policy: &Policy) -> u32 {
    // A policy that does not encode matches no reader's: days unused.
    bincode::serialize(policy).map_or(0, |bytes| crc32fast::hash(&bytes) | 1)
}

/// One event of a block as the writer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its partition ([`UNKNOWN_PARTITION`] when not known).
    pub part: u32,
    /// Its byte offset in the block.
    pub offset: u32,
    /// The first and last settle day (see [`day_key`]) its order could
    /// ever have a deduction on, or [`ALL_DAYS`].
    pub days: (u32, u32),
}

/// What the writer records of one durable block.
#[derive(Debug, Clone)]
pub struct BlockRecord {
    /// The block's first sequence number.
    pub first_seq: u64,
    /// Where it lies (its offset, length, checksum and count).
    pub block: Locator,
    /// The partitions of the parts file.
    pub parts: u32,
    /// [`policy_fingerprint`] of the policy the entries' days are of.
    pub policy: u32,
    /// Each entry, in entry order.
    pub entries: Vec<Entry>,
}

impl BlockRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (groups, order) = self.by_partition();
        let mut body = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        let mut table = Vec::with_capacity(groups.len() * GROUP_BYTES);
        let mut start = 0usize;
        for &(part, count) in &groups {
            let from = body.len();
            for &number in &order[start..start + count as usize] {
                let entry = self.entries[number as usize];
                body.extend_from_slice(&number.to_be_bytes());
                body.extend_from_slice(&entry.offset.to_be_bytes());
                body.extend_from_slice(&entry.days.0.to_be_bytes());
                body.extend_from_slice(&entry.days.1.to_be_bytes());
            }
            start += count as usize;
            table.extend_from_slice(&part.to_be_bytes());
            table.extend_from_slice(&count.to_be_bytes());
            table.extend_from_slice(&crc32fast::hash(&body[from..]).to_be_bytes());
        }
        let len = HEADER_BYTES + table.len() + body.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend_from_slice(&self.first_seq.to_be_bytes());
        out.extend_from_slice(&self.block.count.to_be_bytes());
        out.extend_from_slice(&self.block.offset.to_be_bytes());
        out.extend_from_slice(&self.block.len.to_be_bytes());
        out.extend_from_slice(&self.block.crc.to_be_bytes());
        out.extend_from_slice(&self.parts.to_be_bytes());
        out.extend_from_slice(&(groups.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.policy.to_be_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&out);
        hasher.update(&table);
        out.extend_from_slice(&hasher.finalize().to_be_bytes());
        out.extend_from_slice(&table);
        out.extend_from_slice(&body);
        out
    }

    /// The groups (partition and count, by partition, the unknown last)
    /// and the entry numbers in group order, each group's in entry order:
    /// a counting sort over the partitions, where a block's 8,192 entries
    /// spread over 1,024 of them, instead of a comparison sort.
    fn by_partition(&self) -> (Vec<(u32, u32)>, Vec<u32>) {
        // One bucket per partition and a last for the unknown; anything
        // else (never written) is sorted in the same order the slow way.
        let parts = self.parts as usize;
        let bucket = |part: u32| match part {
            UNKNOWN_PARTITION => Some(parts),
            part if (part as usize) < parts => Some(part as usize),
            _ => None,
        };
        let mut counts = vec![0u32; parts + 2];
        for &Entry { part, .. } in &self.entries {
            match bucket(part) {
                Some(b) => counts[b + 1] += 1,
                None => return self.by_partition_sorted(),
            }
        }
        let groups: Vec<(u32, u32)> = counts[1..]
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(b, count)| {
                let part = if b == parts {
                    UNKNOWN_PARTITION
                } else {
                    b as u32
                };
                (part, *count)
            })
            .collect();
        for b in 0..=parts {
            counts[b + 1] += counts[b];
        }
        let mut order = vec![0u32; self.entries.len()];
        for (number, &Entry { part, .. }) in self.entries.iter().enumerate() {
            if let Some(b) = bucket(part) {
                order[counts[b] as usize] = number as u32;
                counts[b] += 1;
            }
        }
        (groups, order)
    }

    /// [`BlockRecord::by_partition`] by a comparison sort, for any
    /// partition numbers.
    fn by_partition_sorted(&self) -> (Vec<(u32, u32)>, Vec<u32>) {
        let mut sorted: Vec<(u32, u32)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(number, entry)| (entry.part, number as u32))
            .collect();
        sorted.sort_unstable();
        let mut groups: Vec<(u32, u32)> = Vec::new();
        for &(part, _) in &sorted {
            match groups.last_mut() {
                Some((last, count)) if *last == part => *count += 1,
                _ => groups.push((part, 1)),
            }
        }
        (
            groups,
            sorted.into_iter().map(|(_, number)| number).collect(),
        )
    }
}

/// The writer's side: appends a record per durable block. Failures only
/// stop the index (logged): readers then read the blocks.
#[derive(Debug)]
pub struct TailIndexWriter {
    dir: PathBuf,
    file: Option<File>,
    stopped: bool,
}

impl TailIndexWriter {
    /// A writer for `dir`'s index; nothing is written before the first
    /// record, which replaces whatever index was there.
    pub fn new(dir: &Path) -> TailIndexWriter {
        TailIndexWriter {
            dir: dir.to_path_buf(),
            file: None,
            stopped: false,
        }
    }

    /// Appends `record` (of a block now durable).
    pub fn record(&mut self, record: &BlockRecord) {
        if self.stopped {
            return;
        }
        let bytes = record.encode();
        let written = match &mut self.file {
            Some(file) => file.write_all(&bytes),
            None => self.start(&bytes),
        };
        if let Err(error) = written {
            tracing::info!(%error, "the tail index stops; readers beside the writer read every block");
            self.stopped = true;
            self.file = None;
        }
    }

    /// Replaces the index with one holding `first`, and keeps it open.
    fn start(&mut self, first: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(TAIL_INDEX_FILE);
        let tmp = self.dir.join(format!("{TAIL_INDEX_FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(first)?;
        std::fs::rename(&tmp, &path)?;
        self.file = Some(OpenOptions::new().append(true).open(&path)?);
        Ok(())
    }
}

/// A record as a reader found it: sound (its header and group table pass
/// their checksum), the block it names not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct IndexedBlock {
    pub first_seq: u64,
    pub count: u32,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
    pub parts: u32,
    /// [`policy_fingerprint`] of the policy its days are of.
    pub policy: u32,
    /// Where the record starts in the index, and where the next does.
    at: u64,
    pub next: u64,
    /// Partition, entries, checksum of each group.
    groups: Vec<(u32, u32, u32)>,
}

/// What is at a position of the index.
pub(crate) enum Found {
    /// A sound record.
    Record(IndexedBlock),
    /// Nothing more: the file's end, or a last record not whole yet (being
    /// written, or cut by a crash).
    End,
    /// Damage, in a sentence.
    Damaged(String),
}

/// The index as a reader opened it.
#[derive(Debug)]
pub struct TailIndex {
    file: File,
    len: u64,
}

impl TailIndex {
    /// Opens `dir`'s index; `None` when there is none or it cannot be read
    /// (readers then read every block).
    pub fn open(dir: &Path) -> Option<TailIndex> {
        let file = File::open(dir.join(TAIL_INDEX_FILE)).ok()?;
        let len = file.metadata().ok()?.len();
        Some(TailIndex { file, len })
    }

    fn read(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, at).ok()?;
        Some(bytes)
    }

    /// The record at byte `at`.
    pub(crate) fn record_at(&self, at: u64) -> Found {
        if at + HEADER_BYTES as u64 > self.len {
            return Found::End;
        }
        let Some(header) = self.read(at, HEADER_BYTES) else {
            return Found::End;
        };
        let word = |range: std::ops::Range<usize>| {
            u32::from_be_bytes(header[range].try_into().unwrap_or_default())
        };
        let long = |range: std::ops::Range<usize>| {
            u64::from_be_bytes(header[range].try_into().unwrap_or_default())
        };
        let damaged = |what: &str| {
            Found::Damaged(format!(
                "{TAIL_INDEX_FILE} is damaged: its record at byte {at} {what}; readers read \
                 every block instead, and `penalty recover` removes it"
            ))
        };
        if &header[0..4] != MAGIC {
            // A record being appended shows zeros until its bytes land; an
            // index of the earlier format is none to this reader (the next
            // writer replaces it).
            if header.iter().all(|&b| b == 0) || (at == 0 && &header[0..4] == EARLIER_MAGIC) {
                return Found::End;
            }
            return damaged("does not start with a record");
        }
        let record_len = word(4..8);
        let groups = word(40..44);
        let table_len = groups as usize * GROUP_BYTES;
        if record_len > MAX_RECORD_BYTES || (record_len as usize) < HEADER_BYTES + table_len {
            return damaged("claims an impossible length");
        }
        let next = at + u64::from(record_len);
        if next > self.len {
            return Found::End;
        }
        let Some(table) = self.read(at + HEADER_BYTES as u64, table_len) else {
            return Found::End;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[..48]);
        hasher.update(&table);
        if hasher.finalize() != word(48..52) {
            // The last record may be one being written.
            if next == self.len {
                return Found::End;
            }
            return damaged("fails its checksum");
        }
        let groups: Vec<(u32, u32, u32)> = table
            .chunks_exact(GROUP_BYTES)
            .map(|g| {
                let at = |i: usize| u32::from_be_bytes(g[i..i + 4].try_into().unwrap_or_default());
                (at(0), at(4), at(8))
            })
            .collect();
        let entries: u64 = groups.iter().map(|g| u64::from(g.1)).sum();
        let count = word(16..20);
        if entries != u64::from(count)
            || HEADER_BYTES as u64 + table_len as u64 + entries * ENTRY_BYTES as u64
                != u64::from(record_len)
        {
            return damaged("does not list each event of its block once");
        }
        Found::Record(IndexedBlock {
            first_seq: long(8..16),
            count,
            offset: long(20..28),
            len: word(28..32),
            crc: word(32..36),
            parts: word(36..40),
            policy: word(44..48),
            at,
            next,
            groups,
        })
    }

    /// The entries of `record` in the groups of `partitions`, as (entry
    /// number, byte offset in the block), in entry order; with `days`,
    /// only those of the unknown partition and those whose days meet
    /// `days` (first and last, see [`day_key`]). `Err` names damage.
    pub(crate) fn entries(
        &self,
        record: &IndexedBlock,
        partitions: &[u32],
        days: Option<(u32, u32)>,
    ) -> Result<Vec<(u32, u32)>, String> {
        let mut out: Vec<(u32, u32)> = self
            .entries_with_days(record, partitions, days)?
            .into_iter()
            .map(|(number, offset, _)| (number, offset))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// [`TailIndex::entries`], each with its days, in the record's order.
    fn entries_with_days(
        &self,
        record: &IndexedBlock,
        partitions: &[u32],
        days: Option<(u32, u32)>,
    ) -> Result<Vec<(u32, u32, Days)>, String> {
        let mut position =
            record.at + HEADER_BYTES as u64 + (record.groups.len() * GROUP_BYTES) as u64;
        let mut out = Vec::new();
        for &(part, count, crc) in &record.groups {
            let len = count as usize * ENTRY_BYTES;
            if partitions.contains(&part) {
                let bytes = self.read(position, len).ok_or_else(|| {
                    format!(
                        "{TAIL_INDEX_FILE} ends inside its record at byte {}",
                        record.at
                    )
                })?;
                if crc32fast::hash(&bytes) != crc {
                    return Err(format!(
                        "{TAIL_INDEX_FILE} is damaged: a group of its record at byte {} fails \
                         its checksum",
                        record.at
                    ));
                }
                let wanted = |first: u32, last: u32| match days {
                    Some((from, to)) if part != UNKNOWN_PARTITION => first <= to && last >= from,
                    _ => true,
                };
                for e in bytes.chunks_exact(ENTRY_BYTES) {
                    let at =
                        |i: usize| u32::from_be_bytes(e[i..i + 4].try_into().unwrap_or_default());
                    let (first, last) = (at(8), at(12));
                    if first > last {
                        return Err(format!(
                            "{TAIL_INDEX_FILE} is damaged: its record at byte {} gives an event \
                             days that are not a range",
                            record.at
                        ));
                    }
                    if wanted(first, last) {
                        out.push((at(0), at(4), (first, last)));
                    }
                }
            }
            position += len as u64;
        }
        Ok(out)
    }

    /// Every group of `record`: (partition, entry number, offset, days).
    pub(crate) fn all_entries(
        &self,
        record: &IndexedBlock,
    ) -> Result<Vec<(u32, u32, u32, Days)>, String> {
        let mut out = Vec::with_capacity(record.count as usize);
        for &(part, ..) in &record.groups {
            out.extend(
                self.entries_with_days(record, &[part], None)?
                    .into_iter()
                    .map(|(number, offset, days)| (part, number, offset, days)),
            );
        }
        Ok(out)
    }
}

/// One event of a block, read alone through the index: its payload and
/// whether that is the compact form, checked against its content hash.
/// `Err` says why the bytes there are not an entry.
pub(crate) fn parse_entry(bytes: &[u8]) -> Result<(std::ops::Range<usize>, bool), Needs> {
    let need = |n: usize| {
        if bytes.len() < n {
            Err(Needs::More(n))
        } else {
            Ok(())
        }
    };
    need(ENTRY_FIXED_BYTES - 4)?;
    let paid = usize::from(u16::from_be_bytes([bytes[24], bytes[25]]));
    let len_at = 26 + paid;
    need(len_at + 4)?;
    let raw = u32::from_be_bytes(bytes[len_at..len_at + 4].try_into().unwrap_or_default());
    let compact = raw & (1 << 31) != 0;
    let len = (raw & !(1 << 31)) as usize;
    if len > 1 << 20 {
        return Err(Needs::Bad);
    }
    let payload = len_at + 4..len_at + 4 + len;
    need(payload.end)?;
    let stored = u64::from_be_bytes(bytes[16..24].try_into().unwrap_or_default());
    if crate::block::content_hash(&bytes[payload.clone()]) != stored {
        return Err(Needs::Bad);
    }
    Ok((payload, compact))
}

/// Why [`parse_entry`] gave no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Needs {
    /// The entry goes on past the bytes given: this many from its start.
    More(usize),
    /// The bytes are not an entry whose content hash holds.
    Bad,
}

/// What the blocks alone tell of `reader`'s tail index: `None` when there
/// is none or it is sound (every record whole and checksummed, each naming
/// an acknowledged block where the blocks file has it, listing each of its
/// events once at the offset where it starts, and each event naming a shop
/// in that shop's partition, with days that are a range); else the first
/// damage, in a sentence. A last record not whole yet is a writer's record
/// being written, or one a crash cut, and is not damage. Whether an event
/// naming only its order is in its order's partition, and whether an
/// event's days are its order's, takes a ledger of the log and its policy:
/// [`check_against`], which `penalty audit` and `penalty recover` ask.
/// Records of blocks the partitioned snapshot already holds are
/// walked but not checked against their blocks: a reader folds only the
/// blocks after that snapshot, so they can mislead nobody, and checking
/// them would read the whole log a second time in `penalty audit` once an
/// ingest has ended (its index names every block it appended).
pub fn check(reader: &crate::reader::LogReader) -> Option<String> {
    check_against(reader, &|| None)
}

/// [`check`], and with the ledger `known` gives (of the whole log `reader`
/// holds, under the policy of the readers asking, as `penalty audit`
/// replays it; asked for only when a record is to be checked) also what
/// the block alone cannot tell: that each event of
/// an order whose `paid` the ledger holds is in that shop's partition or
/// the unknown one, and, in a record of that policy, that its days hold
/// every day the order could have a deduction on. A writer that held the
/// `paid` recorded exactly those; one that did not yet, the unknown
/// partition and every day. Anything else could send a reader past an
/// event its answer needs.
pub fn check_against<'l>(
    reader: &crate::reader::LogReader,
    known: &dyn Fn() -> Option<&'l penalty_core::Ledger>,
) -> Option<String> {
    let index = TailIndex::open(reader.dir())?;
    let (file, file_len) = reader.file();
    // Without a readable partitioned snapshot every record is checked.
    let held_through = match crate::parts::Parts::open(reader.dir()) {
        Ok(Some(parts)) => Some(parts.end.seq),
        _ => None,
    };
    let mut at = 0;
    loop {
        let record = match index.record_at(at) {
            Found::End => return None,
            Found::Damaged(damage) => return Some(damage),
            Found::Record(record) => record,
        };
        at = record.next;
        let last_seq = (record.first_seq + u64::from(record.count)).saturating_sub(1);
        if last_seq > reader.last_seq() {
            // Not acknowledged as this reader saw HEAD: appended since.
            continue;
        }
        if held_through.is_some_and(|held| last_seq <= held) {
            continue;
        }
        let known = known().map(|ledger| {
            let days_of_this_policy = policy_fingerprint(ledger.policy()) == record.policy;
            (ledger, days_of_this_policy)
        });
        if let Err(why) = check_record(&index, &record, file, file_len, known) {
            return Some(format!(
                "{TAIL_INDEX_FILE} is damaged: its record at byte {} (the block of sequence \
                 numbers {} to {last_seq}) {why}; `penalty recover` removes it, and readers \
                 then read every block",
                record.at, record.first_seq
            ));
        }
    }
}

/// Whether `record` describes its block truly, as far as the block alone
/// can tell.
/// With `known`, the ledger of the whole log and whether the record's days
/// are of its policy, also what only the log before the block can tell (see
/// [`check_against`]).
fn check_record(
    index: &TailIndex,
    record: &IndexedBlock,
    file: &File,
    file_len: u64,
    known: Option<(&penalty_core::Ledger, bool)>,
) -> Result<(), String> {
    let not_there = || "names a block that is not where it says in the blocks file".to_string();
    if record.offset + u64::from(record.len) > file_len || record.count == 0 {
        return Err(not_there());
    }
    let mut block = vec![0u8; record.len as usize];
    file.read_exact_at(&mut block, record.offset)
        .map_err(|_| not_there())?;
    let header: &[u8; crate::block::HEADER_BYTES] = block
        .get(..crate::block::HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(not_there)?;
    let named = Locator {
        offset: record.offset,
        len: record.len,
        crc: record.crc,
        count: record.count,
    };
    if !named.names_header(record.first_seq, header) {
        return Err(not_there());
    }
    let entries = index.all_entries(record)?;
    let mut seen = vec![false; record.count as usize];
    for (part, number, offset, days) in entries {
        let listed = seen.get_mut(number as usize).filter(|seen| !**seen);
        let Some(listed) = listed else {
            return Err(format!(
                "lists event {number} of the block twice, or one it does not hold"
            ));
        };
        *listed = true;
        let entry = block.get(offset as usize..).and_then(|bytes| {
            parse_entry(bytes)
                .ok()
                .map(|(range, compact)| (bytes, range, compact))
        });
        let Some((bytes, range, compact)) = entry else {
            return Err(format!(
                "places event {number} where no event of the block starts"
            ));
        };
        let payload = &bytes[range];
        let named = if compact {
            penalty_core::compact::shop_and_order(payload)
                .map(|(shop, order)| (shop.map(str::to_string), order.map(str::to_string)))
        } else {
            penalty_core::event::parse_stored(payload)
                .ok()
                .map(|event| {
                    let kind = event.kind_ref();
                    (
                        penalty_core::ledger::partition::shop_of(&kind).map(str::to_string),
                        kind.order_id().map(str::to_string),
                    )
                })
        };
        let Some((shop, order)) = named else {
            return Err(format!(
                "places event {number} where no event of the block starts"
            ));
        };
        if let Some(shop_id) = &shop {
            let home = penalty_core::ledger::partition::partition_of(shop_id, record.parts);
            if home != part {
                return Err(format!(
                    "puts event {number}, of a shop of partition {home}, in partition {part}"
                ));
            }
        }
        if let Some((ledger, days_of_this_policy)) = known {
            if part != UNKNOWN_PARTITION {
                known_entry(
                    ledger,
                    days_of_this_policy,
                    record.parts,
                    &shop,
                    &order,
                    part,
                    days,
                )
                .map_err(|why| format!("{why} (event {number} of the block)"))?;
            }
        }
    }
    Ok(())
}

/// Whether an entry of partition `part` (not the unknown one) with `days`
/// says of its event, which names `shop` and `order`, what a writer
/// holding `ledger` said, or less: its order's shop's partition, and, when
/// `days_of_this_policy`, days holding every day the order could have a
/// deduction on (every day for an event of no paid order).
fn known_entry(
    ledger: &penalty_core::Ledger,
    days_of_this_policy: bool,
    parts: u32,
    shop: &Option<String>,
    order: &Option<String>,
    part: u32,
    days: (u32, u32),
) -> Result<(), String> {
    let paid = order
        .as_deref()
        .and_then(|order_id| ledger.paid_shop_and_days(order_id));
    if shop.is_none() {
        // An event naming only its order: the writer knew a partition only
        // from the order's `paid`.
        let home =
            paid.map(|(shop_id, _)| penalty_core::ledger::partition::partition_of(shop_id, parts));
        if home != Some(part) {
            return Err(match home {
                Some(home) => {
                    format!("puts an event of an order of partition {home} in partition {part}")
                }
                None => format!("puts an event of an order never paid in partition {part}"),
            });
        }
    }
    if days_of_this_policy {
        let needed = paid
            .and_then(|(_, days)| days)
            .map_or(ALL_DAYS, |(first, last)| (day_key(first), day_key(last)));
        if days.0 > needed.0 || days.1 < needed.1 {
            return Err(format!(
                "gives an event the settle days {} where its order could have deductions on {}",
                days_text(days),
                days_text(needed)
            ));
        }
    }
    Ok(())
}

/// Removes `dir`'s tail index when [`check`] finds it damaged (the next
/// writer writes a new one; readers meanwhile read every block); whether
/// it did.
pub fn remove_if_damaged(reader: &crate::reader::LogReader) -> Result<bool, crate::StoreError> {
    remove_if_damaged_against(reader, &|| None)
}

/// [`remove_if_damaged`] by [`check_against`].
pub fn remove_if_damaged_against<'l>(
    reader: &crate::reader::LogReader,
    known: &dyn Fn() -> Option<&'l penalty_core::Ledger>,
) -> Result<bool, crate::StoreError> {
    if check_against(reader, known).is_none() {
        return Ok(false);
    }
    let path = reader.dir().join(TAIL_INDEX_FILE);
    std::fs::remove_file(&path).map_err(|source| crate::StoreError::Io {
        action: "removing the damaged tail index",
        path,
        source,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The counting sort groups a block's entries as a sort by
        /// (partition, entry number) does, the unknown partition last, and
        /// so encodes the same record.
        #[test]
        fn the_counting_sort_groups_as_the_sort_does(
            parts in 1u32..40,
            picks in proptest::collection::vec((0u32..43, any::<u32>()), 0..300),
        ) {
            let entries: Vec<Entry> = picks
                .iter()
                .map(|&(part, offset)| Entry {
                    part: match part {
                        40..=42 => UNKNOWN_PARTITION,
                        part => part % parts,
                    },
                    offset,
                    days: ALL_DAYS,
                })
                .collect();
            let record = BlockRecord {
                first_seq: 1,
                block: Locator { offset: 0, len: 0, crc: 0, count: 0 },
                parts,
                policy: 1,
                entries,
            };
            prop_assert_eq!(record.by_partition(), record.by_partition_sorted());
        }
    }
}
