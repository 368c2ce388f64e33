//! Writing blocks to the blocks file past the page cache (`O_DIRECT`).
//!
//! Why: a buffered `pwrite` copies every byte into the page cache, page by
//! page, on the thread that every ingested line waits for; at a million
//! orders that copy was about 0.4 s of that thread's 1.1 s. A direct write
//! hands the block to the disk from our own buffer, and the `fdatasync` that
//! follows, as before, makes it and the file's new size durable. Durability
//! is unchanged: an append is acknowledged only after that `fdatasync`.
//!
//! The price is alignment: a direct write starts at a multiple of
//! [`ALIGN_BYTES`] in the file and in memory, and its length is a multiple of
//! it. So a large block (at least [`ALIGNED_MIN_BYTES`], as bulk ingest
//! writes) starts at the first aligned offset at or after the end of the
//! previous one, and is followed by zeros up to the next aligned offset: at
//! most 4 KiB, under 2% of such a block. A small block (a slow pipe's, a
//! single HTTP append) follows the previous one exactly, written through the
//! page cache, so that trickled events do not each take 4 KiB of disk. The
//! layout depends on the block's size only, never on the file system, so it
//! is the same wherever the log lives. Locators name a block's own bytes, so
//! readers never see the padding; recovery, which finds blocks by scanning,
//! steps over it ([`padded_end`]).
//!
//! Where the file system refuses direct I/O (tmpfs, some network file
//! systems), the same bytes go through the page cache instead.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// The alignment of direct writes: the page size, a multiple of every
/// device's logical block size we meet.
pub(crate) const ALIGN_BYTES: u64 = 4096;

/// Blocks at least this long are placed aligned and written directly.
pub(crate) const ALIGNED_MIN_BYTES: usize = 256 << 10;

/// The open flag for direct I/O, where the platform has one (macOS has
/// `F_NOCACHE` instead, which we do not use: blocks go through its cache).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const DIRECT_FLAG: Option<i32> = Some(libc::O_DIRECT);
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const DIRECT_FLAG: Option<i32> = None;

/// `offset` rounded up to the next multiple of [`ALIGN_BYTES`].
pub(crate) fn align_up(offset: u64) -> u64 {
    offset.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

/// How blocks reach the file.
enum Mode {
    /// Not decided yet: the first large block tries to open the file for
    /// direct I/O.
    Untried,
    /// Through this second handle, opened with `O_DIRECT`.
    Direct(Arc<File>),
    /// Through the log's own handle, buffered by the page cache.
    Buffered,
}

/// How many of the last acknowledged blocks a [`BlockWriter`] keeps in
/// memory. Duplicates in a large input mostly repeat lines of the last
/// block or two; confirming them read those blocks back from the file (from
/// the disk, since a direct write leaves nothing in the page cache), about
/// 0.1 s a million orders on the thread every line waits for.
pub(crate) const RECENT_BLOCKS: usize = 3;

/// The most blocks prepared and not yet acknowledged: ingest prepares the
/// next block while up to three before it are being written and synced,
/// never more (the append pipeline's `IN_FLIGHT_BLOCKS` plus one, which
/// `log::append` asserts at compile time, so that this module below the
/// log imports nothing of it).
pub(crate) const MAX_PENDING_BLOCKS: usize = 4;

/// A block kept in memory: prepared and not yet acknowledged, or one of the
/// last acknowledged.
struct BlockInMemory {
    first_seq: u64,
    end_seq: u64,
    buffer: Arc<Vec<u8>>,
    block: std::ops::Range<usize>,
}

/// A block placed in the file and encoded by [`BlockWriter::prepare`], ready
/// to be written by [`Prepared::write`] on any thread.
pub(crate) struct Prepared {
    /// Where the block starts in the file.
    pub offset: u64,
    buffer: Arc<Vec<u8>>,
    /// The block's own bytes in `buffer`.
    block: std::ops::Range<usize>,
    /// What is written: the block, and for a direct write the zeros that pad
    /// it to an aligned length.
    written: std::ops::Range<usize>,
    /// The direct handle, when the block is written past the page cache.
    direct: Option<Arc<File>>,
}

impl Prepared {
    /// The block's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buffer[self.block.clone()]
    }

    /// Writes the block, directly when it was prepared so, else through
    /// `file` (the log's buffered handle). Returns true when the file system
    /// refused the direct write and the block went through the page cache
    /// instead, so that later blocks go there at once. The caller syncs the
    /// file.
    pub(crate) fn write(&self, file: &File) -> io::Result<bool> {
        let bytes = &self.buffer[self.written.clone()];
        if let Some(direct) = &self.direct {
            match direct.write_all_at(bytes, self.offset) {
                Ok(()) => return Ok(false),
                // The file system accepted the flag but not the write.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!(%error, "a direct write was refused; writing through the page cache");
                    file.write_all_at(bytes, self.offset)?;
                    return Ok(true);
                }
                Err(error) => return Err(error),
            }
        }
        file.write_all_at(bytes, self.offset)?;
        Ok(false)
    }
}

/// Places and encodes blocks, directly written where the file system allows
/// it, and keeps in memory the blocks not yet acknowledged and the last few
/// that were.
pub(crate) struct BlockWriter {
    mode: Mode,
    /// Buffers for the next blocks, taken from blocks no longer kept: at
    /// most [`MAX_PENDING_BLOCKS`], the most that can be prepared before
    /// another is acknowledged. (A fresh megabyte buffer costs 256 page
    /// faults; with one spare, 24K more a million orders once several
    /// blocks were in flight.)
    spare: Vec<Vec<u8>>,
    /// Blocks prepared and not yet acknowledged, oldest first.
    pending: std::collections::VecDeque<BlockInMemory>,
    /// The last acknowledged blocks, oldest first.
    recent: std::collections::VecDeque<BlockInMemory>,
}

impl BlockWriter {
    pub(crate) fn new() -> BlockWriter {
        BlockWriter {
            mode: Mode::Untried,
            spare: Vec::new(),
            pending: std::collections::VecDeque::new(),
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Records that the oldest pending block, which holds `first_seq..`, is
    /// acknowledged (durable and located).
    pub(crate) fn acknowledged(&mut self, first_seq: u64) {
        let kept = self
            .pending
            .pop_front()
            .expect("a block is acknowledged after it was prepared");
        assert_eq!(
            kept.first_seq, first_seq,
            "blocks are acknowledged in the order they were prepared"
        );
        if self.recent.len() == RECENT_BLOCKS {
            if let Some(oldest) = self.recent.pop_front() {
                // Its buffer serves the next block, unless a job still
                // holds it (it never does once the block is acknowledged).
                if let Ok(buffer) = Arc::try_unwrap(oldest.buffer) {
                    if self.spare.len() < MAX_PENDING_BLOCKS {
                        self.spare.push(buffer);
                    }
                }
            }
        }
        self.recent.push_back(kept);
    }

    /// Forgets the blocks prepared and not acknowledged: their appends
    /// failed, or were given up.
    pub(crate) fn abandon(&mut self) {
        self.pending.clear();
    }

    /// Blocks prepared and not yet acknowledged.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// After a direct write was refused ([`Prepared::write`] said so):
    /// later blocks go through the page cache.
    pub(crate) fn direct_refused(&mut self) {
        self.mode = Mode::Buffered;
    }

    /// The bytes of a kept block holding `seq` (pending or recently
    /// acknowledged), with its first sequence number.
    pub(crate) fn recent(&self, seq: u64) -> Option<(u64, &[u8])> {
        let kept = self
            .recent
            .iter()
            .chain(&self.pending)
            .find(|r| (r.first_seq..r.end_seq).contains(&seq))?;
        Some((kept.first_seq, kept.buffer.get(kept.block.clone())?))
    }

    /// Places a block of `len` bytes holding `first_seq..end_seq`, which
    /// `fill` appends to the vector it is given, at or after `end` in the
    /// file at `path`, and encodes it; it is pending until acknowledged (or
    /// abandoned). Nothing is written yet.
    pub(crate) fn prepare(
        &mut self,
        path: &Path,
        end: u64,
        len: usize,
        (first_seq, end_seq): (u64, u64),
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<Prepared> {
        assert!(
            self.pending.len() < MAX_PENDING_BLOCKS,
            "at most {MAX_PENDING_BLOCKS} blocks are pending"
        );
        let align = ALIGN_BYTES as usize;
        let mut staging = self.spare.pop().unwrap_or_default();
        staging.clear();
        let prepared = if len < ALIGNED_MIN_BYTES {
            fill(&mut staging);
            assert_eq!(staging.len(), len, "the block fills its announced length");
            Prepared {
                offset: end,
                buffer: Arc::new(staging),
                block: 0..len,
                written: 0..len,
                direct: None,
            }
        } else {
            if let Mode::Untried = self.mode {
                self.mode = match DIRECT_FLAG
                    .map(|flag| OpenOptions::new().write(true).custom_flags(flag).open(path))
                {
                    None => Mode::Buffered,
                    Some(Ok(direct)) => Mode::Direct(Arc::new(direct)),
                    Some(Err(error)) => {
                        tracing::debug!(%error, "the blocks file cannot be opened for direct I/O; writing through the page cache");
                        Mode::Buffered
                    }
                };
            }
            let padded = len.div_ceil(align) * align;
            if staging.capacity() < padded + align {
                // Room for the block, its padding and the shift to an
                // aligned address, so that filling it never moves the
                // buffer; and a quarter more, so that the spare it becomes
                // holds the next blocks too, which vary in size (a buffer
                // too small is replaced, and a fresh one's pages are page
                // faults). Room never written costs address space only.
                staging = Vec::with_capacity((padded + align).saturating_mul(5) / 4);
            }
            // `align_offset` may answer "never" (usize::MAX); the block then
            // goes through the page cache, placed as if it had not.
            let shift = staging.as_ptr().align_offset(align);
            let aligned_in_memory = shift < align;
            staging.resize(if aligned_in_memory { shift } else { 0 }, 0);
            let start = staging.len();
            fill(&mut staging);
            assert_eq!(
                staging.len() - start,
                len,
                "the block fills exactly its announced length"
            );
            staging.resize(start + padded, 0);
            let direct = match (&self.mode, aligned_in_memory) {
                (Mode::Direct(direct), true) => Some(Arc::clone(direct)),
                _ => None,
            };
            Prepared {
                offset: align_up(end),
                buffer: Arc::new(staging),
                block: start..start + len,
                written: start..start + padded,
                direct,
            }
        };
        self.pending.push_back(BlockInMemory {
            first_seq,
            end_seq,
            buffer: Arc::clone(&prepared.buffer),
            block: prepared.block.clone(),
        });
        Ok(prepared)
    }
}

/// Where the next block may start after one ending at `end`: `end` itself,
/// or the next aligned offset when everything between is the zeros a
/// direct write pads with; never past the end of the file, `file_len`.
pub(crate) fn padded_end(file: &File, end: u64, file_len: u64) -> io::Result<u64> {
    let aligned = align_up(end);
    if aligned == end || end >= file_len {
        return Ok(end);
    }
    let mut gap = vec![0u8; (aligned.min(file_len) - end) as usize];
    file.read_exact_at(&mut gap, end)?;
    Ok(if gap.iter().all(|&byte| byte == 0) {
        aligned.min(file_len)
    } else {
        end
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty blocks file (and the directory that holds it).
    fn blocks_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocks");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("open");
        (dir, path, file)
    }

    #[test]
    fn blocks_start_aligned_and_read_back_exactly() {
        let (_dir, path, file) = blocks_file();
        let mut writer = BlockWriter::new();
        let mut end = 0u64;
        let mut placed = Vec::new();
        let large = ALIGNED_MIN_BYTES;
        for (number, len) in [10usize, large, 5000, large + 1, 1].into_iter().enumerate() {
            let byte = b'a' + number as u8;
            let first_seq = 1 + number as u64;
            let prepared = writer
                .prepare(&path, end, len, (first_seq, first_seq + 1), |out| {
                    out.extend(std::iter::repeat_n(byte, len))
                })
                .expect("prepare");
            assert!(!prepared.write(&file).expect("write"));
            writer.acknowledged(first_seq);
            let offset = prepared.offset;
            assert_eq!(prepared.bytes().len(), len);
            if len >= large {
                assert_eq!(offset, align_up(end), "large blocks start aligned");
            } else {
                assert_eq!(offset, end, "small blocks follow the previous one");
            }
            placed.push((offset, len, byte));
            end = offset + len as u64;
        }
        let file_len = file.metadata().expect("metadata").len();
        for (offset, len, byte) in placed {
            let mut back = vec![0u8; len];
            file.read_exact_at(&mut back, offset).expect("read");
            assert!(back.iter().all(|&b| b == byte));
            // Recovery steps from the end of each block to the next one.
            let next = padded_end(&file, offset + len as u64, file_len).expect("gap");
            assert!(next == offset + len as u64 || next.is_multiple_of(ALIGN_BYTES));
        }
    }

    #[test]
    fn the_pending_and_the_last_acknowledged_blocks_are_kept_and_no_other() {
        let (_dir, path, file) = blocks_file();
        let mut writer = BlockWriter::new();
        let mut end = 0;
        // Blocks of ten events each, small and large, filled with their
        // first sequence number's low byte.
        for (number, len) in [100usize, ALIGNED_MIN_BYTES, 7, ALIGNED_MIN_BYTES + 5, 300]
            .into_iter()
            .enumerate()
        {
            let first_seq = 1 + 10 * number as u64;
            let prepared = writer
                .prepare(&path, end, len, (first_seq, first_seq + 10), |out| {
                    out.extend(std::iter::repeat_n(first_seq as u8, len))
                })
                .expect("prepare");
            end = prepared.offset + len as u64;
            // Pending: kept, for an ingest that prepares the next block
            // while this one is written.
            assert_eq!(writer.pending(), 1);
            assert_eq!(
                writer.recent(first_seq).map(|(first, _)| first),
                Some(first_seq)
            );
            prepared.write(&file).expect("write");
            drop(prepared);
            writer.acknowledged(first_seq);
            assert_eq!(writer.pending(), 0);
            let (kept_first, bytes) = writer.recent(first_seq + 9).expect("kept");
            assert_eq!(kept_first, first_seq);
            assert_eq!(bytes.len(), len);
            assert!(bytes.iter().all(|&b| b == first_seq as u8));
            assert!(writer.recent(first_seq + 10).is_none());
        }
        // Only the last RECENT_BLOCKS of the five.
        let kept: Vec<u64> = (1..=50)
            .filter_map(|seq| writer.recent(seq).map(|(first, _)| first))
            .collect();
        assert_eq!(kept.first(), Some(&(1 + 10 * (5 - RECENT_BLOCKS as u64))));
        assert_eq!(kept.len(), 10 * RECENT_BLOCKS);
        // An abandoned block (prepared, never acknowledged) is forgotten and
        // does not replace what is kept.
        let prepared = writer
            .prepare(&path, end, 50, (51, 61), |out| {
                out.extend(std::iter::repeat_n(0xEE, 50))
            })
            .expect("prepare");
        assert!(writer.recent(51).is_some());
        drop(prepared);
        writer.abandon();
        assert!(writer.recent(51).is_none());
        assert_eq!(writer.recent(41).expect("kept").1.len(), 300);
    }

    #[test]
    fn two_blocks_may_be_pending_and_are_acknowledged_in_order() {
        let (_dir, path, _file) = blocks_file();
        let mut writer = BlockWriter::new();
        let first = writer
            .prepare(&path, 0, 10, (1, 3), |out| out.extend([1u8; 10]))
            .expect("prepare");
        let second = writer
            .prepare(&path, first.offset + 10, 10, (3, 5), |out| {
                out.extend([2u8; 10])
            })
            .expect("prepare");
        assert_eq!(second.offset, 10, "a small block follows the one before");
        assert_eq!(writer.recent(2).expect("pending").1, &[1u8; 10][..]);
        assert_eq!(writer.recent(4).expect("pending").1, &[2u8; 10][..]);
        writer.acknowledged(1);
        writer.acknowledged(3);
        assert_eq!(writer.pending(), 0);
        assert!(writer.recent(4).is_some());
    }

    #[test]
    fn a_gap_that_is_not_zeros_is_not_padding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blocks");
        std::fs::write(&path, [1u8; 100]).expect("write");
        let file = File::open(&path).expect("open");
        assert_eq!(padded_end(&file, 10, 100).expect("gap"), 10);
        std::fs::write(&path, [0u8; 100]).expect("write");
        let file = File::open(&path).expect("open");
        assert_eq!(padded_end(&file, 10, 100).expect("gap"), 100);
        assert_eq!(padded_end(&file, 0, 100).expect("gap"), 0);
        assert_eq!(padded_end(&file, 100, 100).expect("gap"), 100);
    }
}
