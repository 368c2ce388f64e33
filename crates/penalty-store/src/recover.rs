//! Rebuilding sled's part of a data directory from the blocks file.
//!
//! The blocks file and the head journal are the truth about where blocks
//! are: the blocks lie back to back from the file's start, each
//! self-describing and checksummed, up to the block the journal names. sled
//! holds only a derived index of them, the writer's (each block's
//! [`Locator`] by first sequence number). So when sled cannot read its database
//! after a crash (sled 0.34.7 has crash-recovery faults of its own), the
//! locators can be found again by reading the blocks file from its start: a
//! block begins with the block magic, and the right end of it is the one
//! where its checksum holds ([`blocks_in_sequence`], which `EventLog::open`
//! also uses to find the blocks sled lost the end of). The snapshots
//! (`projection.snap`, `projection.parts`) are derived too: a bad one is
//! removed, and the next query or ingest writes it again.
//!
//! The damaged sled directory is kept beside, renamed, never deleted. The
//! recovery refuses, changing nothing, when the blocks file does not reach
//! the head journal's last acknowledged event: those events are gone from
//! the blocks file itself, and only a backup has them.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::block::{self, block_key, Locator, MAGIC};
use crate::direct::padded_end;
use crate::head::{Head, HEAD_FILE};
use crate::lock::DirLock;
use crate::log::{open_sled, BLOCKS_FILE, BLOCKS_TREE, MAX_BLOCK_BYTES, SLED_DIR};
use crate::StoreError;

/// How much of the blocks file is read at a time while looking for a block's
/// end.
const READ_BYTES: usize = 4 << 20;

/// What [`recover`] found and did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecoverReport {
    /// Blocks found whole, in sequence, from the start of the blocks file.
    pub blocks: u64,
    /// Events they hold.
    pub events: u64,
    /// The last sequence number recovered.
    pub last_seq: u64,
    /// The last sequence number the head journal says was acknowledged.
    pub acknowledged_seq: u64,
    /// Bytes of the blocks file after the last whole block: an append that
    /// was never acknowledged, which the next append overwrites.
    pub unacknowledged_tail_bytes: u64,
    /// Where the damaged sled directory was moved (none when there was
    /// none).
    pub damaged_sled: Option<PathBuf>,
    /// Whether the head journal was rewritten to name the last block
    /// recovered (it was damaged, or behind the blocks file).
    pub head_rewritten: bool,
    /// Whether a damaged projection snapshot, or one of another log, was
    /// removed (the next query replays the log).
    pub snapshot_removed: bool,
}

/// Removes the projection snapshot when it is damaged or does not match
/// the log, and a damaged partitioned snapshot or tail index; whether it
/// did.
pub fn remove_bad_snapshot(dir: &Path) -> Result<bool, StoreError> {
    let bad = match crate::snapshot::read(dir) {
        Ok(None) => false,
        Ok(Some(stored)) => crate::reader::LogReader::open(dir)
            .map(|reader| reader.check_snapshot_end(&stored.end).is_err())
            .unwrap_or(true),
        Err(StoreError::CorruptCheckpoint { .. }) => true,
        Err(error) => return Err(error),
    };
    if bad {
        let path = dir.join(crate::snapshot::SNAPSHOT_FILE);
        std::fs::remove_file(&path).map_err(|source| StoreError::Io {
            action: "removing the damaged projection snapshot",
            path,
            source,
        })?;
    }
    // The partitioned snapshot likewise (it is derived data: the next
    // writer writes it again, and queries read the whole meanwhile).
    let parts_bad = match crate::parts::Parts::open(dir) {
        Ok(None) => false,
        Ok(Some(parts)) => {
            parts.check().is_err()
                || crate::reader::LogReader::open(dir)
                    .map(|reader| reader.check_snapshot_end(&parts.end).is_err())
                    .unwrap_or(true)
        }
        Err(StoreError::CorruptCheckpoint { .. }) => true,
        Err(error) => return Err(error),
    };
    if parts_bad {
        let path = dir.join(crate::parts::PARTS_FILE);
        std::fs::remove_file(&path).map_err(|source| StoreError::Io {
            action: "removing the damaged projection snapshot",
            path,
            source,
        })?;
    }
    // The tail index likewise: readers read every block without it.
    let index_bad = match crate::reader::LogReader::open(dir) {
        Ok(reader) => crate::tail_index::remove_if_damaged(&reader)?,
        Err(_) => false,
    };
    Ok(bad || parts_bad || index_bad)
}

/// Rebuilds `dir`'s sled database from its blocks file (see the module
/// documentation). Takes the directory lock; fails with
/// [`StoreError::Locked`] while another process holds it.
pub fn recover(dir: &Path) -> Result<RecoverReport, StoreError> {
    let _lock = DirLock::acquire(dir)?;
    let acknowledged_seq = Head::open(dir)?.last().last_seq;
    let path = dir.join(BLOCKS_FILE);
    let io_error = |action, source| StoreError::Io {
        action,
        path: path.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(|e| io_error("opening the blocks file", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| io_error("reading the size of the blocks file", e))?
        .len();

    let InSequence {
        blocks: locators,
        end: offset,
        next_seq,
    } = blocks_in_sequence(&file, 0, file_len, 1, u64::MAX)
        .map_err(|e| io_error("reading the blocks file", e))?;
    let last_seq = next_seq - 1;
    if locators.is_empty() && file_len > 0 {
        let detail = format!(
            "{BLOCKS_FILE} does not start with a whole block of sequence number 1: the file is \
             damaged at its start, and cannot be recovered from it; restore the data directory \
             from a backup"
        );
        return Err(StoreError::Corrupt {
            block_seq: 1,
            first_seq: 1,
            last_seq: acknowledged_seq.max(1),
            detail,
        });
    }
    if last_seq < acknowledged_seq {
        return Err(StoreError::Corrupt {
            block_seq: last_seq + 1,
            first_seq: last_seq + 1,
            last_seq: acknowledged_seq,
            detail: format!(
                "{BLOCKS_FILE} holds whole blocks up to sequence number {last_seq} only (the \
                 next block, at byte {offset}, is missing or damaged), but {HEAD_FILE} \
                 acknowledged events up to {acknowledged_seq}; nothing was changed"
            ),
        });
    }

    let sled_path = dir.join(SLED_DIR);
    let damaged_sled = aside(&sled_path)?;
    let db_error = |source| StoreError::Database {
        path: sled_path.clone(),
        source,
    };
    let db = open_sled(&sled_path).map_err(db_error)?;
    let tree = db.open_tree(BLOCKS_TREE).map_err(db_error)?;
    locate(&db, &tree, &locators).map_err(db_error)?;
    drop(tree);
    drop(db);
    tracing::info!(
        blocks = locators.len(),
        last_seq,
        damaged = ?damaged_sled,
        "rebuilt the block locators from the blocks file"
    );
    // Readers take the head journal's word for what is acknowledged: it
    // must name the last block recovered, or readers and the writer would
    // disagree (a damaged journal, or whole blocks written after its last
    // record by a writer that died before recording them).
    let head = crate::head::read(dir)?;
    let head_rewritten = match locators.last() {
        Some(&(first_seq, locator)) if head.damage.is_some() || last_seq != head.last.last_seq => {
            crate::head::rewrite(
                dir,
                crate::head::HeadRecord {
                    last_seq,
                    block_first_seq: first_seq,
                    block_crc: locator.crc,
                },
            )?;
            true
        }
        _ => false,
    };
    // The snapshot is derived data: one that is damaged or not of this log
    // is removed, and the next reader replays.
    let snapshot_removed = remove_bad_snapshot(dir)?;
    Ok(RecoverReport {
        head_rewritten,
        snapshot_removed,
        blocks: locators.len() as u64,
        events: last_seq,
        last_seq,
        acknowledged_seq,
        unacknowledged_tail_bytes: file_len - offset,
        damaged_sled,
    })
}

/// Whole blocks found one after the other in the blocks file.
pub(crate) struct InSequence {
    /// Each block's first sequence number and locator, in order.
    pub(crate) blocks: Vec<(u64, Locator)>,
    /// Where the block after the last one found would start.
    pub(crate) end: u64,
    /// The sequence number after the last block found.
    pub(crate) next_seq: u64,
}

/// The whole blocks that follow one another from `offset` in `file`, the
/// first starting at sequence number `next_seq`, until one holds
/// `last_seq` or none follows (the end of the file, a torn or damaged
/// block, one out of sequence): what `recover` finds from the file's start,
/// and what `EventLog::open` finds after sled's last locator.
pub(crate) fn blocks_in_sequence(
    file: &std::fs::File,
    offset: u64,
    file_len: u64,
    next_seq: u64,
    last_seq: u64,
) -> std::io::Result<InSequence> {
    let mut found = InSequence {
        blocks: Vec::new(),
        end: padded_end(file, offset, file_len)?,
        next_seq,
    };
    while found.next_seq <= last_seq {
        let Some((first_seq, locator)) = block_at(file, found.end, file_len, found.next_seq)?
        else {
            break;
        };
        if locator.count == 0 {
            // `block::decode` refuses such a block; never loop on one.
            break;
        }
        found.next_seq = first_seq + u64::from(locator.count);
        found.end = padded_end(file, locator.end(), file_len)?;
        found.blocks.push((first_seq, locator));
    }
    Ok(found)
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

/// The whole block at `offset` whose first sequence number is `first_seq`,
/// as `(first_seq, locator)`; `None` when there is none (the end of the
/// file, a torn or damaged block, or a block out of sequence).
pub(crate) fn block_at(
    file: &std::fs::File,
    offset: u64,
    file_len: u64,
    first_seq: u64,
) -> std::io::Result<Option<(u64, Locator)>> {
    let available = file_len.saturating_sub(offset);
    let mut bytes = vec![0u8; usize::try_from(available.min(READ_BYTES as u64)).unwrap_or(0)];
    file.read_exact_at(&mut bytes, offset)?;
    if !bytes.starts_with(MAGIC) {
        return Ok(None);
    }
    let key = block_key(first_seq);
    // The block in `bytes`, if it is the one sought.
    let located = |bytes: &[u8]| {
        let decoded = block::decode(&key, bytes).ok()?;
        let count = u32::try_from(decoded.entries.len()).unwrap_or(u32::MAX);
        (decoded.first_seq == first_seq).then(|| (first_seq, Locator::of(bytes, offset, count)))
    };
    let mut search_from = MAGIC.len();
    let mut grown = true;
    loop {
        if grown {
            // A block of this build read whole: its length comes from its
            // entries (whatever follows, another block or the zeros that pad
            // a direct write, see `direct`), and its checksum says whether
            // that was right. Most blocks are found so, with one checksum and
            // no search.
            if let Some(found) = block::plain_len(&bytes).and_then(|len| located(&bytes[..len])) {
                return Ok(Some(found));
            }
            grown = false;
        }
        // Otherwise (damage: a length field, or a block of another format), the
        // block ends where another block's magic starts, or at the end of the
        // file; a magic inside a block's own bytes fails the checksum and the
        // search goes on.
        let found = bytes[search_from..]
            .windows(MAGIC.len())
            .position(|window| window == MAGIC)
            .map(|position| search_from + position);
        let read_all = bytes.len() as u64 == available;
        let end = match found {
            Some(end) => end,
            None if read_all => bytes.len(),
            None => {
                // Read on; a magic may straddle the boundary.
                if bytes.len() as u64 >= u64::from(MAX_BLOCK_BYTES) {
                    return Ok(None);
                }
                search_from = bytes.len().saturating_sub(MAGIC.len() - 1).max(MAGIC.len());
                let more = (available - bytes.len() as u64).min(READ_BYTES as u64);
                let start = bytes.len();
                bytes.resize(start + more as usize, 0);
                file.read_exact_at(&mut bytes[start..], offset + start as u64)?;
                grown = true;
                continue;
            }
        };
        if let Some(found) = located(&bytes[..end]) {
            return Ok(Some(found));
        }
        if found.is_none() {
            return Ok(None);
        }
        search_from = end + 1;
    }
}

/// Moves the sled directory aside under a name not taken yet, and returns
/// that name; `None` when there is no sled directory.
fn aside(sled_path: &Path) -> Result<Option<PathBuf>, StoreError> {
    if !sled_path.exists() {
        return Ok(None);
    }
    let mut number = 1u32;
    let target = loop {
        let candidate = sled_path.with_file_name(format!("{SLED_DIR}.damaged-{number}"));
        if !candidate.exists() {
            break candidate;
        }
        number += 1;
    };
    std::fs::rename(sled_path, &target).map_err(|source| StoreError::Io {
        action: "moving the damaged sled directory aside",
        path: sled_path.to_path_buf(),
        source,
    })?;
    Ok(Some(target))
}
