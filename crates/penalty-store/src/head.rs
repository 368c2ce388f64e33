//! The head journal: an append-only file beside sled that remembers how far
//! the log reached, so that a log that silently got shorter is caught.
//!
//! Why it exists: it is what acknowledges an append. sled, which locates the
//! blocks, is flushed only every few dozen blocks, so after a crash its
//! locators may end early; and sled treats a damaged record as the torn end
//! of its log, discarding that record *and everything written after it*
//! without an error. Our block checksums cannot see blocks that sled no
//! longer returns. So after every block is synced to the blocks file we
//! write, outside sled, the last sequence number and the checksum of the
//! last block; on open, the blocks after sled's last locator, up to the
//! journal's, are found in the blocks file, and a log that ends before the
//! journal even so has lost events, and we say which.
//!
//! Format: fixed 32-byte records, appended and fdatasync'd, each with its own
//! CRC. The last valid record wins; a torn final record (a crash while
//! writing it) is ignored, which is safe because the journal is written after
//! the block is synced to the blocks file and may only lag behind it, never
//! run ahead of it.
//! When the file grows past `COMPACT_BYTES` (64 KiB) it is rewritten with one record
//! (write, fsync, rename, fsync the directory).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The journal's file name in the data directory.
pub const HEAD_FILE: &str = "HEAD";
const MAGIC: &[u8; 4] = b"PLHD";
const RECORD_BYTES: usize = 32;
/// Rewrite the journal with a single record once it is this large.
const COMPACT_BYTES: u64 = 64 * 1024;

/// What the journal remembers: the log's end as last acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadRecord {
    /// The last sequence number acknowledged as appended (0: none).
    pub last_seq: u64,
    /// The first sequence number of the block holding `last_seq`.
    pub block_first_seq: u64,
    /// The CRC of that block as stored in its header.
    pub block_crc: u32,
}

impl HeadRecord {
    fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut bytes = [0u8; RECORD_BYTES];
        bytes[0..4].copy_from_slice(MAGIC);
        bytes[4..12].copy_from_slice(&self.last_seq.to_be_bytes());
        bytes[12..20].copy_from_slice(&self.block_first_seq.to_be_bytes());
        bytes[20..24].copy_from_slice(&self.block_crc.to_be_bytes());
        let crc = crc32fast::hash(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<HeadRecord> {
        if bytes.len() != RECORD_BYTES || &bytes[0..4] != MAGIC {
            return None;
        }
        let crc = u32::from_be_bytes(bytes[28..32].try_into().ok()?);
        if crc32fast::hash(&bytes[0..28]) != crc {
            return None;
        }
        Some(HeadRecord {
            last_seq: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            block_first_seq: u64::from_be_bytes(bytes[12..20].try_into().ok()?),
            block_crc: u32::from_be_bytes(bytes[20..24].try_into().ok()?),
        })
    }
}

/// The journal as a reader finds it, without creating or locking
/// anything: what readers take as the acknowledged end of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadState {
    /// The last valid record (the default when there is none).
    pub last: HeadRecord,
    /// Whether the file exists.
    pub exists: bool,
    /// Damage found in it, in a sentence: a record that fails its
    /// checksum. (A last record of zeros, or a part of one, is what a crash
    /// while appending leaves; it is ignored, not damage.)
    pub damage: Option<String>,
}

/// Reads the journal of `dir` without opening it for writing. A reader may
/// meet it in the middle of an append (a torn last record, ignored) or of
/// a compaction (the rename is atomic: it reads the old file or the new).
pub fn read(dir: &Path) -> Result<HeadState, StoreError> {
    let path = dir.join(HEAD_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HeadState::default())
        }
        Err(source) => {
            return Err(StoreError::Io {
                action: "reading the head journal",
                path,
                source,
            })
        }
    };
    let (last, damage) = scan(&bytes);
    Ok(HeadState {
        last,
        exists: true,
        damage,
    })
}

/// The one scan of the journal's bytes, for readers and for the writer:
/// the last valid record (the default when there is none), and the first
/// damage found, in a sentence.
fn scan(bytes: &[u8]) -> (HeadRecord, Option<String>) {
    let records: Vec<&[u8]> = bytes.chunks_exact(RECORD_BYTES).collect();
    let mut last = HeadRecord::default();
    let mut damage = None;
    for (number, record) in records.iter().enumerate() {
        match HeadRecord::decode(record) {
            Some(record) => last = record,
            // The last whole record may be one a crash tore: the file grew
            // but the bytes never arrived (zeros). Bytes that did arrive
            // and fail the checksum are damage.
            None if number + 1 == records.len() && record.iter().all(|&b| b == 0) => {}
            None => {
                damage.get_or_insert_with(|| {
                    format!(
                        "{HEAD_FILE} is damaged: its record {} of {} (at byte {}) fails its \
                         checksum; `penalty recover` rewrites it from the blocks file",
                        number + 1,
                        records.len(),
                        number * RECORD_BYTES
                    )
                });
            }
        }
    }
    (last, damage)
}

/// Replaces the journal with one record, atomically (write, fsync, rename,
/// fsync the directory): how `penalty recover` repairs a damaged one. The
/// caller holds the directory lock.
pub fn rewrite(dir: &Path, record: HeadRecord) -> Result<(), StoreError> {
    let path = dir.join(HEAD_FILE);
    let tmp = dir.join(format!("{HEAD_FILE}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    let mut fresh = File::create(&tmp).map_err(io("writing the head journal", &tmp))?;
    fresh
        .write_all(&record.encode())
        .and_then(|()| fresh.sync_all())
        .map_err(io("writing the head journal", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("replacing the head journal", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing the data directory", dir))
}

/// The open journal of one data directory.
#[derive(Debug)]
pub struct Head {
    path: PathBuf,
    dir: PathBuf,
    file: File,
    len: u64,
    last: HeadRecord,
}

impl Head {
    /// Opens (creating) the journal and reads its last valid record.
    pub fn open(dir: &Path) -> Result<Head, StoreError> {
        let path = dir.join(HEAD_FILE);
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io("opening the head journal"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io("reading the head journal"))?;
        // The writer takes the last valid record as readers do; damage is
        // for `penalty audit` and `penalty recover` to report and repair.
        let (last, _damage) = scan(&bytes);
        Ok(Head {
            path,
            dir: dir.to_path_buf(),
            file,
            len: bytes.len() as u64,
            last,
        })
    }

    /// The last record: how far the log reached when last acknowledged.
    pub fn last(&self) -> HeadRecord {
        self.last
    }

    /// Records a new end of the log, durably. Called after sled's flush.
    pub fn record(&mut self, record: HeadRecord) -> Result<(), StoreError> {
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io {
                action,
                path,
                source,
            }
        };
        if self.len + RECORD_BYTES as u64 > COMPACT_BYTES {
            let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
            let mut fresh = File::create(&tmp).map_err(io("writing the head journal", &tmp))?;
            fresh
                .write_all(&record.encode())
                .and_then(|()| fresh.sync_all())
                .map_err(io("writing the head journal", &tmp))?;
            std::fs::rename(&tmp, &self.path)
                .map_err(io("replacing the head journal", &self.path))?;
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing the data directory", &self.dir))?;
            self.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map_err(io("opening the head journal", &self.path))?;
            self.len = RECORD_BYTES as u64;
        } else {
            self.file
                .write_all(&record.encode())
                .and_then(|()| self.file.sync_data())
                .map_err(io("writing the head journal", &self.path))?;
            self.len += RECORD_BYTES as u64;
        }
        self.last = record;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_valid_record_wins_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut head = Head::open(dir.path()).unwrap();
        assert_eq!(head.last(), HeadRecord::default());
        for seq in 1..=3 {
            head.record(HeadRecord {
                last_seq: seq * 10,
                block_first_seq: seq,
                block_crc: 7,
            })
            .unwrap();
        }
        drop(head);
        let path = dir.path().join(HEAD_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[b'P', b'L', 0, 1, 2]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Head::open(dir.path()).unwrap().last().last_seq, 30);
    }

    /// A reader reports a record that fails its checksum, wherever it is,
    /// and ignores a last record of zeros (a crash while appending).
    #[test]
    fn readers_report_damaged_records_and_ignore_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut head = Head::open(dir.path()).unwrap();
        for seq in 1..=3 {
            head.record(HeadRecord {
                last_seq: seq,
                block_first_seq: seq,
                block_crc: 1,
            })
            .unwrap();
        }
        drop(head);
        let path = dir.path().join(HEAD_FILE);
        let good = std::fs::read(&path).unwrap();
        let mut zeros = good.clone();
        zeros.extend_from_slice(&[0; RECORD_BYTES]);
        std::fs::write(&path, &zeros).unwrap();
        let state = read(dir.path()).unwrap();
        assert_eq!((state.last.last_seq, state.damage), (3, None));
        for at in [5, 2 * RECORD_BYTES + 9] {
            let mut bytes = good.clone();
            bytes[at] ^= 1;
            std::fs::write(&path, &bytes).unwrap();
            let state = read(dir.path()).unwrap();
            assert!(state.damage.is_some(), "byte {at}");
        }
    }

    #[test]
    fn compaction_keeps_the_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut head = Head::open(dir.path()).unwrap();
        for seq in 1..=3000 {
            head.record(HeadRecord {
                last_seq: seq,
                block_first_seq: seq,
                block_crc: 1,
            })
            .unwrap();
        }
        drop(head);
        assert!(std::fs::metadata(dir.path().join(HEAD_FILE)).unwrap().len() <= COMPACT_BYTES);
        assert_eq!(Head::open(dir.path()).unwrap().last().last_seq, 3000);
    }
}
