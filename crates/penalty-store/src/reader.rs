//! The read path: a consistent, acknowledged prefix of the log, read from
//! the files of the data directory without any lock and without sled.
//!
//! sled's lock is exclusive per process, and the directory lock is the
//! writer's, so a read command opens neither. It reads the head journal
//! first: the last acknowledged sequence number and the checksum of the
//! block holding it (see [`crate::head`]). Every block up to there was
//! synced to the blocks file before the journal named it, and the blocks
//! file is append-only below the acknowledged end (a writer only ever
//! truncates or overwrites bytes past it, which were never acknowledged).
//! So the reader walks the blocks file from the start (or from where the
//! projection snapshot ends, see [`crate::snapshot`]), block after block,
//! each checked against its checksum and its expected first sequence
//! number, and stops at the acknowledged block, whose checksum must be the
//! journal's. What it reads is thus exactly the acknowledged prefix as of
//! the moment it read the journal: at least everything acknowledged before
//! the command started, never a torn or unacknowledged block, whatever the
//! writer does meanwhile (appends, a crash, a SIGKILL mid-block).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::block::{self, block_key, DecodedBlock, FORMAT_VERSION, MAGIC};
use crate::direct::padded_end;
use crate::head::{self, HeadState, HEAD_FILE};
use crate::log::{EntryChecker, VerifyProblem, VerifyReport, BLOCKS_FILE, MAX_BLOCK_BYTES};
use crate::snapshot::SnapshotEnd;
use crate::StoreError;

/// How much of the blocks file a scan reads at a time: a dozen bulk blocks.
const WINDOW_BYTES: usize = 32 << 20;

/// The log of one data directory as acknowledged when it was opened.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    file: Arc<File>,
    file_path: PathBuf,
    head: HeadState,
    /// The blocks file's length once the journal was read.
    file_len: u64,
}

impl LogReader {
    /// Opens the log of `dir` for reading: no lock, no sled, nothing
    /// created. A directory without a log is [`StoreError::NoLog`].
    pub fn open(dir: &Path) -> Result<LogReader, StoreError> {
        if !dir.is_dir() {
            let reason = if dir.exists() {
                "the path is not a directory"
            } else {
                "the directory does not exist"
            };
            return Err(StoreError::NoLog {
                dir: dir.to_path_buf(),
                reason,
            });
        }
        tracing::debug!(dir = %dir.display(), "reading the log, without a lock");
        // The journal first: the blocks it names are in the file before it
        // names them.
        let mut head = head::read(dir)?;
        let file_path = dir.join(BLOCKS_FILE);
        let file = match File::open(&file_path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if head.last.last_seq > 0 {
                    return Err(StoreError::Corrupt {
                        block_seq: 1,
                        first_seq: 1,
                        last_seq: head.last.last_seq,
                        detail: format!(
                            "{BLOCKS_FILE} is missing but {HEAD_FILE} acknowledged events up to \
                             {}",
                            head.last.last_seq
                        ),
                    });
                }
                return Err(StoreError::NoLog {
                    dir: dir.to_path_buf(),
                    reason: "the directory holds no blocks file",
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    action: "opening the blocks file",
                    path: file_path,
                    source,
                })
            }
        };
        let file_len = file
            .metadata()
            .map_err(|source| StoreError::Io {
                action: "reading the size of the blocks file",
                path: file_path.clone(),
                source,
            })?
            .len();
        if head.damage.is_none() && head.last.last_seq == 0 && file_len > 0 {
            // A writer that crashed before acknowledging its first block
            // leaves this too; the next writer removes those bytes.
            let whole = block_at_start(&file, file_len);
            if !head.exists || whole {
                head.damage = Some(format!(
                    "{HEAD_FILE} is damaged: it {} while {BLOCKS_FILE} holds {file_len} \
                     bytes{}; readers see no event until `penalty recover` rewrites it from the \
                     blocks file",
                    if head.exists {
                        "acknowledges no event"
                    } else {
                        "is missing"
                    },
                    if whole {
                        ", starting with a whole block"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(LogReader {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            file_path,
            head,
            file_len,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The head journal as read when opening.
    pub fn head(&self) -> &HeadState {
        &self.head
    }

    /// The last acknowledged sequence number (0: none).
    pub fn last_seq(&self) -> u64 {
        self.head.last.last_seq
    }

    /// The blocks file, and its length once the journal was read: for
    /// reads of single entries the tail index names.
    pub(crate) fn file(&self) -> (&File, u64) {
        (&self.file, self.file_len)
    }

    /// The blocks of the acknowledged prefix, from the start.
    pub fn blocks(&self) -> Blocks {
        self.blocks_until(0, 1, self.last_seq())
    }

    /// The acknowledged blocks after a snapshot ending at `end`.
    pub fn blocks_after(&self, end: &SnapshotEnd) -> Blocks {
        self.blocks_until(end.next_offset(), end.seq + 1, self.last_seq())
    }

    /// The blocks from byte `offset` (the first with sequence number
    /// `next_seq`) up to the one holding `last_seq`.
    pub fn blocks_until(&self, offset: u64, next_seq: u64, last_seq: u64) -> Blocks {
        Blocks {
            file: Arc::clone(&self.file),
            file_path: self.file_path.clone(),
            file_len: self.file_len,
            head: self.head.last,
            offset,
            next_seq,
            last_seq,
            window: Vec::new(),
            window_start: 0,
            done: false,
            last_end: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the block a snapshot names is where it says, as the log's:
    /// its header there has the snapshot's first sequence number, event
    /// count and checksum, and the journal acknowledged it. `Err` says why
    /// not.
    pub fn check_snapshot_end(&self, end: &SnapshotEnd) -> Result<(), String> {
        if end.seq > self.last_seq() {
            return Err(format!(
                "it reflects events up to sequence number {} but {HEAD_FILE} acknowledges {} only",
                end.seq,
                self.last_seq()
            ));
        }
        let mut header = [0u8; 32];
        self.file
            .read_exact_at(&mut header, end.block_offset)
            .map_err(|e| {
                format!(
                    "its block at byte {} cannot be read ({e})",
                    end.block_offset
                )
            })?;
        let first_seq = u64::from_be_bytes(header[12..20].try_into().unwrap_or_default());
        let count = u32::from_be_bytes(header[20..24].try_into().unwrap_or_default());
        let crc = u32::from_be_bytes(header[4..8].try_into().unwrap_or_default());
        let matches = &header[0..4] == MAGIC
            && first_seq == end.block_first_seq
            && crc == end.block_crc
            && count >= 1
            && first_seq + u64::from(count) - 1 == end.seq;
        if matches {
            Ok(())
        } else {
            Err(format!(
                "the block it names at byte {} of {BLOCKS_FILE} is not there",
                end.block_offset
            ))
        }
    }

    /// Checks the acknowledged log whole, as [`crate::EventLog::verify`]
    /// does, from the files alone; and the head journal.
    pub fn verify(&self) -> VerifyReport {
        self.verify_shared(self.blocks().map(|block| {
            block
                .map(ReadBlock::unchecked)
                .map_err(|e| ScanDamage::of(&e))
        }))
    }

    /// [`LogReader::verify`] of the blocks another scan of this reader's
    /// whole log reads, checks and hands over, in order (see
    /// `projection::replay_read_sharing`), so that the two read and
    /// checksum the log once. A scan that ends short of the acknowledged
    /// end without naming damage is a problem too: the check never vouches
    /// for blocks it did not see.
    pub fn verify_shared(&self, blocks: impl Iterator<Item = SharedBlock>) -> VerifyReport {
        let mut checker = EntryChecker::sorted(self.last_seq());
        let report = self.verify_with(&mut checker, blocks);
        if checker.may_repeat() {
            // An event id or a paid order was met twice before the first
            // other problem (or two of them share a hash): the exact check
            // names the first repeat by its sequence number, or finds the
            // same report.
            let blocks = self.blocks().map(|block| {
                block
                    .map(ReadBlock::unchecked)
                    .map_err(|e| ScanDamage::of(&e))
            });
            return self.verify_with(&mut EntryChecker::exact(self.last_seq()), blocks);
        }
        report
    }

    /// [`LogReader::verify_shared`] with `checker`.
    fn verify_with(
        &self,
        checker: &mut EntryChecker,
        blocks: impl Iterator<Item = SharedBlock>,
    ) -> VerifyReport {
        let mut report = VerifyReport {
            blocks: 0,
            events: 0,
            last_seq: 0,
            problem: None,
        };
        for block in blocks {
            let ReadBlock { block, valid } = match block {
                Ok(block) => block,
                Err(damage) => {
                    report.problem = Some(VerifyProblem {
                        seq: damage.seq.unwrap_or(report.last_seq + 1),
                        detail: damage.detail,
                    });
                    return report;
                }
            };
            for (offset, entry) in block.entries.iter().enumerate() {
                let seq = block.first_seq + offset as u64;
                let found_valid = valid.get(offset).copied().unwrap_or(false);
                if let Some(detail) = checker.check(&block, entry, found_valid) {
                    report.problem = Some(VerifyProblem {
                        seq,
                        detail: format!("sequence number {seq}: {detail}"),
                    });
                    return report;
                }
                report.events += 1;
                report.last_seq = seq;
            }
            report.blocks += 1;
        }
        if report.last_seq != self.last_seq() {
            report.problem = Some(VerifyProblem {
                seq: report.last_seq + 1,
                detail: format!(
                    "the check of the log ended after sequence number {} of {} (a bug)",
                    report.last_seq,
                    self.last_seq()
                ),
            });
            return report;
        }
        if let Some(damage) = &self.head.damage {
            report.problem = Some(VerifyProblem {
                seq: report.last_seq + 1,
                detail: damage.clone(),
            });
        }
        report
    }

    /// Checks every block up to the one holding `last_seq` (checksums,
    /// structure, sequence): what a query answered from a snapshot did not
    /// read. The first damage found, as an error naming its block.
    pub fn check_blocks(&self, last_seq: u64) -> Result<(), StoreError> {
        for block in self.blocks_until(0, 1, last_seq) {
            block?;
        }
        Ok(())
    }
}

/// A block one scan of the log has read and checked, handed to another
/// ([`LogReader::verify_shared`]); or the damage that ended the scan.
pub type SharedBlock = Result<ReadBlock, ScanDamage>;

/// A block as a scan of the log hands it on: with the entries whose compact
/// form that scan found valid ([`penalty_core::compact::decode_valid`]) as
/// it decoded them, so that the check of the log does not decode them again.
pub struct ReadBlock {
    block: DecodedBlock,
    /// By entry; an entry past its end was not found valid (which decides
    /// nothing: the check decodes it).
    valid: Vec<bool>,
}

impl ReadBlock {
    /// A block of which no entry was found valid yet.
    pub fn unchecked(block: DecodedBlock) -> ReadBlock {
        ReadBlock {
            block,
            valid: Vec::new(),
        }
    }

    /// A block whose entries `valid` says were found valid.
    pub(crate) fn with_valid(block: DecodedBlock, valid: Vec<bool>) -> ReadBlock {
        ReadBlock { block, valid }
    }
}

/// The damage that ended a scan of the blocks, as handed on.
#[derive(Debug)]
pub struct ScanDamage {
    /// The first sequence number concerned, when known.
    pub seq: Option<u64>,
    /// What is wrong, in a sentence.
    pub detail: String,
}

impl ScanDamage {
    /// What `error`, which ended a scan, says.
    pub fn of(error: &StoreError) -> ScanDamage {
        ScanDamage {
            seq: error.corrupt_seq(),
            detail: error.to_string(),
        }
    }
}

/// Whether a whole block of sequence number 1 starts the blocks file.
fn block_at_start(file: &File, file_len: u64) -> bool {
    crate::scan::block_at(file, 0, file_len, 1)
        .ok()
        .flatten()
        .is_some()
}

/// The iterator of [`LogReader::blocks`]: whole checked blocks in order.
/// Damage is yielded as an error naming the first damaged block, after
/// which it ends.
pub struct Blocks {
    file: Arc<File>,
    file_path: PathBuf,
    file_len: u64,
    head: crate::head::HeadRecord,
    offset: u64,
    next_seq: u64,
    last_seq: u64,
    /// Bytes of the file from `window_start`, read ahead.
    window: Vec<u8>,
    window_start: u64,
    done: bool,
    last_end: Arc<Mutex<Option<SnapshotEnd>>>,
}

impl Blocks {
    /// Where the last block yielded so far lies, shared: a caller that
    /// hands the iterator to another thread keeps this to learn where the
    /// blocks it read ended (for a snapshot of them).
    pub fn last_end(&self) -> Arc<Mutex<Option<SnapshotEnd>>> {
        Arc::clone(&self.last_end)
    }

    fn io_error(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = self.file_path.clone();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }

    /// The bytes from `offset` on, at least `want` of them where the file
    /// has them (fewer at its end), from the window or read into it. The
    /// window slides: bytes already read are kept and only what follows is
    /// read, so a scan reads each byte of the file once.
    fn bytes_at(&mut self, offset: u64, want: usize) -> Result<&[u8], StoreError> {
        let available = self.file_len.saturating_sub(offset);
        let want = want.min(usize::try_from(available).unwrap_or(usize::MAX));
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || offset > window_end {
            self.window.clear();
            self.window_start = offset;
        }
        if offset + want as u64 > self.window_start + self.window.len() as u64 {
            // Keep the bytes from `offset` on, and read after them.
            let consumed = usize::try_from(offset - self.window_start).unwrap_or(0);
            self.window.drain(..consumed);
            self.window_start = offset;
            let target = want
                .max(WINDOW_BYTES)
                .min(usize::try_from(available).unwrap_or(usize::MAX));
            let mut filled = self.window.len();
            self.window.resize(target, 0);
            while filled < target {
                let n = self
                    .file
                    .read_at(&mut self.window[filled..], offset + filled as u64)
                    .map_err(self.io_error("reading the blocks file"))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            self.window.truncate(filled);
        }
        let start = usize::try_from(offset - self.window_start).unwrap_or(usize::MAX);
        Ok(self.window.get(start..).unwrap_or(&[]))
    }

    /// The bytes of the block at `offset`, as stored: its length read from
    /// its header's count and its entries' length fields, which its
    /// checksum then confirms. Blocks of this build's one format are all a
    /// reader meets; anything else there is damage, and `Err` says what it
    /// looks like, for the caller's report.
    fn stored_block_at(&mut self, offset: u64) -> Result<Result<Vec<u8>, String>, StoreError> {
        // What the window holds already first: most blocks are whole in it.
        let window_end = self.window_start + self.window.len() as u64;
        let mut want = usize::try_from(window_end.saturating_sub(offset))
            .unwrap_or(0)
            .max(64 << 10);
        loop {
            let bytes = self.bytes_at(offset, want)?;
            if !bytes.starts_with(MAGIC) {
                return Ok(Err("no block starts there".into()));
            }
            if let Some(version) = bytes.get(8..10) {
                let version = u16::from_be_bytes([version[0], version[1]]);
                if version != FORMAT_VERSION {
                    return Ok(Err(format!(
                        "its header names block format {version}, which this build does not \
                         write or read (only {FORMAT_VERSION})"
                    )));
                }
            }
            if let Some(len) = block::plain_len(bytes) {
                return Ok(Ok(bytes[..len].to_vec()));
            }
            if bytes.len() as u64 >= self.file_len - offset {
                return Ok(Err(format!(
                    "its header and entries claim more bytes than {BLOCKS_FILE} holds after it"
                )));
            }
            if want >= MAX_BLOCK_BYTES as usize {
                return Ok(Err(format!(
                    "its header and entries claim more than the {MAX_BLOCK_BYTES} bytes a \
                     block may take"
                )));
            }
            want *= 2;
        }
    }

    fn next_block(&mut self) -> Result<Option<DecodedBlock>, StoreError> {
        if self.next_seq > self.last_seq {
            return Ok(None);
        }
        let offset = padded_end(&self.file, self.offset, self.file_len)
            .map_err(self.io_error("reading the blocks file"))?;
        let acknowledged = self.head.last_seq;
        let next_seq = self.next_seq;
        let stored = if offset >= self.file_len {
            Err(format!(
                "{BLOCKS_FILE} ends at byte {} after sequence number {}, but {HEAD_FILE} \
                 acknowledged events up to {acknowledged}: the file was truncated",
                self.file_len,
                next_seq - 1
            ))
        } else {
            self.stored_block_at(offset)?.map_err(|what| {
                format!(
                    "the block that should hold sequence number {next_seq}, at byte {offset} of \
                     {BLOCKS_FILE}, is damaged: {what} (events up to {acknowledged} were \
                     acknowledged)"
                )
            })
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(detail) => {
                return Err(StoreError::Corrupt {
                    block_seq: next_seq,
                    first_seq: next_seq,
                    last_seq: acknowledged.max(next_seq),
                    detail,
                })
            }
        };
        let len = stored.len();
        let block = block::decode(&block_key(self.next_seq), stored)?;
        let crc = block.stored_crc();
        if block.last_seq() >= acknowledged {
            let same = block.first_seq == self.head.block_first_seq
                && crc == self.head.block_crc
                && block.last_seq() == acknowledged;
            if !same {
                return Err(StoreError::corrupt_block(
                    block.first_seq,
                    block.entries.len() as u64,
                    format!(
                        "this block is not the one {HEAD_FILE} acknowledged (the block of \
                         sequence numbers {} to {acknowledged}, checksum {:08x})",
                        self.head.block_first_seq, self.head.block_crc
                    ),
                ));
            }
        }
        let len_u32 = u32::try_from(len).unwrap_or(u32::MAX);
        if let Ok(mut last) = self.last_end.lock() {
            *last = Some(SnapshotEnd {
                seq: block.last_seq(),
                block_first_seq: block.first_seq,
                block_offset: offset,
                block_len: len_u32,
                block_crc: crc,
            });
        }
        self.offset = offset + len as u64;
        self.next_seq = block.end_seq();
        Ok(Some(block))
    }
}

impl Iterator for Blocks {
    type Item = Result<DecodedBlock, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_block().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

/// The locator of a decoded block read at `offset`, for tests.
#[cfg(test)]
fn locator_of(block: &DecodedBlock, offset: u64) -> crate::block::Locator {
    crate::block::Locator::of(
        &block.bytes,
        offset,
        u32::try_from(block.entries.len()).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventLog;

    fn deposit(n: u64) -> String {
        format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{n:012x}","type":"deposit_topped_up","at":"2026-01-01T00:00:00Z","shop_id":"S1","amount_fen":100}}"#
        )
    }

    fn append(log: &mut EventLog, from: u64, count: u64) {
        let lines: Vec<_> = (from..from + count)
            .map(|n| penalty_core::event::parse_line(deposit(n).as_bytes()).expect("valid"))
            .collect();
        log.append_batch(&lines, penalty_core::time::UnixNs(1))
            .expect("appended");
    }

    fn events(reader: &LogReader) -> Vec<u64> {
        reader
            .blocks()
            .map(|b| b.expect("good block").last_seq())
            .collect()
    }

    /// Bytes a writer left past the acknowledged end (a block being
    /// written, a torn one) are never read, whether or not they form a
    /// whole block; and a reader opened before an append keeps its prefix.
    #[test]
    fn readers_see_the_acknowledged_prefix_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path()).expect("open");
        append(&mut log, 0, 3);
        append(&mut log, 3, 2);
        let before = LogReader::open(dir.path()).expect("reader");
        append(&mut log, 5, 4);
        assert_eq!(events(&before), vec![3, 5], "the prefix as of its open");
        let now = LogReader::open(dir.path()).expect("reader");
        assert_eq!(events(&now), vec![3, 5, 9]);
        // A whole block past the acknowledged end: the journal is put back
        // to name the second block, as if the writer died before recording
        // the third.
        drop(log);
        let head_path = dir.path().join(HEAD_FILE);
        let journal = std::fs::read(&head_path).expect("journal");
        let second = &journal[journal.len() - 64..journal.len() - 32];
        std::fs::write(&head_path, second).expect("rewind the journal");
        assert_eq!(
            events(&LogReader::open(dir.path()).expect("reader")),
            vec![3, 5]
        );
        // A torn block past it.
        let blocks = dir.path().join(BLOCKS_FILE);
        let mut bytes = std::fs::read(&blocks).expect("blocks");
        bytes.extend_from_slice(&MAGIC[..]);
        bytes.extend_from_slice(&[1, 2, 3]);
        std::fs::write(&blocks, &bytes).expect("torn tail");
        let reader = LogReader::open(dir.path()).expect("reader");
        assert_eq!(events(&reader), vec![3, 5]);
        assert!(reader.verify().is_ok());
    }

    #[test]
    fn a_missing_directory_or_log_is_no_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let error = LogReader::open(&missing).expect_err("no log");
        assert!(matches!(error, StoreError::NoLog { .. }), "{error}");
        assert!(error.to_string().contains("nope"), "{error}");
        assert!(!missing.exists(), "a reader creates nothing");
        let error = LogReader::open(dir.path()).expect_err("no log");
        assert!(matches!(error, StoreError::NoLog { .. }), "{error}");
    }

    /// Damage in the middle of the blocks file is named by its first
    /// sequence number, and so is a truncation, by the first block lost.
    #[test]
    fn damage_names_the_first_damaged_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = EventLog::open(dir.path()).expect("open");
        for n in 0..4 {
            append(&mut log, n * 3, 3);
        }
        drop(log);
        let blocks = dir.path().join(BLOCKS_FILE);
        let good = std::fs::read(&blocks).expect("blocks");
        let reader = LogReader::open(dir.path()).expect("reader");
        let offsets: Vec<u64> = {
            let mut found = Vec::new();
            let mut scan = reader.blocks();
            while let Some(block) = scan.next() {
                let block = block.expect("good");
                let end = scan.last_end().lock().expect("lock").expect("end");
                assert_eq!(locator_of(&block, end.block_offset).crc, end.block_crc);
                found.push(end.block_offset);
            }
            found
        };
        assert_eq!(offsets.len(), 4);
        // A flipped byte in the second block.
        let mut bytes = good.clone();
        bytes[offsets[1] as usize + 40] ^= 0x20;
        std::fs::write(&blocks, &bytes).expect("damage");
        let report = LogReader::open(dir.path()).expect("reader").verify();
        assert_eq!(
            report.problem.as_ref().map(|p| p.seq),
            Some(4),
            "{report:?}"
        );
        // Truncated inside the third block: the third is named.
        std::fs::write(&blocks, &good[..offsets[2] as usize + 10]).expect("truncate");
        let error = LogReader::open(dir.path())
            .expect("reader")
            .check_blocks(12)
            .expect_err("damage");
        assert_eq!(error.corrupt_seq(), Some(7), "{error}");
        assert!(error.to_string().contains("claim more bytes"), "{error}");
        // A header naming another block format: named as such, no search
        // for another block.
        let mut bytes = good.clone();
        bytes[offsets[2] as usize + 9] ^= 0x01;
        std::fs::write(&blocks, &bytes).expect("another format");
        let error = LogReader::open(dir.path())
            .expect("reader")
            .check_blocks(12)
            .expect_err("damage");
        assert_eq!(error.corrupt_seq(), Some(7), "{error}");
        assert!(error.to_string().contains("block format 2"), "{error}");
    }
}
