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
//! where its checksum holds ([`crate::scan`], which `EventLog::open`
//! also uses to find the blocks sled lost the end of). The snapshots
//! (`projection.snap`, `projection.parts`) are derived too: a bad one is
//! removed, and the next query or ingest writes it again.
//!
//! The damaged sled directory is kept beside, renamed, never deleted. The
//! recovery refuses, changing nothing, when the blocks file does not reach
//! the head journal's last acknowledged event: those events are gone from
//! the blocks file itself, and only a backup has them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::head::{Head, HEAD_FILE};
use crate::lock::DirLock;
use crate::log::{locate, open_sled, BLOCKS_FILE, BLOCKS_TREE, SLED_DIR};
use crate::scan::{blocks_in_sequence, InSequence};
use crate::StoreError;

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
