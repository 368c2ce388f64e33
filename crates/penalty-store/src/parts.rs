//! The partitioned snapshot: `projection.parts`, beside `projection.snap`,
//! so that `shop` and `order` decode one partition's ledger, not the whole.
//!
//! The snapshot ledger is split by shop partition ([`Ledger::split`], the
//! stable hash of `penalty_core::ledger::partition`), each part encoded and
//! checksummed on its own, plus an index from order id to partition read in
//! place: entries `(FNV-1a 64 of the order id, partition)` sorted by hash
//! and bucketed by the hash's top bits, so that `order O` reads one bucket
//! (a few dozen entries) by offset. Two order ids of equal hash give two
//! candidate partitions; the caller asks each. Orders not yet paid are in
//! every part and in no bucket.
//!
//! It is replaced atomically like the snapshot and stamped with the same
//! [`SnapshotEnd`], so a reader checks it against the log the same way and
//! folds only the blocks after it (see `projection::open_part`).
//!
//! Format (integers big-endian):
//!
//! ```text
//! 0..4    magic b"PLPT"
//! 4..6    format version
//! 6..8    reserved, zero
//! 8..40   the SnapshotEnd: seq, block_first_seq, block_offset (u64 each),
//!         block_len, block_crc (u32 each)
//! 40..44  parts P
//! 44..48  bucket bits k (B = 2^k buckets)
//! 48..56  index entries N
//! 56..60  CRC-32 of bytes 0..56 and the directory
//! 60..    the directory: P x (offset u64, length u32, CRC u32) of the
//!         parts; (B + 1) x u32, where each bucket's entries start (in
//!         entries); B x u32, each bucket's CRC
//! then    N x 10 bytes of entries (hash u64, partition u16)
//! then    the parts: each the LZ4 block (size prepended) of the bincode
//!         of its ledger
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use penalty_core::ledger::partition::fnv1a64;
use penalty_core::Ledger;

use crate::snapshot::{io_error, replace_file, SnapshotEnd};
use crate::StoreError;

/// The file's name in the data directory.
pub const PARTS_FILE: &str = "projection.parts";
const MAGIC: &[u8; 4] = b"PLPT";
/// Bumped whenever the layout or the ledger's encoding changes: a file of
/// another version is ignored (and rewritten by the next writer).
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 60;
const ENTRY_BYTES: usize = 10;
/// How many partitions of shops: enough that one part of a 5M-order ledger
/// decodes in a few milliseconds, few enough that each compresses well.
pub const PARTS: u32 = 1024;
/// How many parts are split off the ledger and encoded at a time: an
/// eighth of the ledger's copy held at once, and each pass over its orders
/// still copies a hundred parts.
const PARTS_AT_ONCE: u32 = 128;
/// Index entries per bucket, about.
const ENTRIES_PER_BUCKET: usize = 32;

fn corrupt(detail: String) -> StoreError {
    StoreError::CorruptCheckpoint {
        detail: format!("{PARTS_FILE}: {detail}"),
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn bucket_of(hash: u64, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (hash >> (64 - bits)) as usize
    }
}

/// Writes the partitioned snapshot of `ledger`, which reflects the log up
/// to `end`, replacing the last one atomically.
pub fn write(dir: &Path, end: &SnapshotEnd, ledger: &Ledger) -> Result<(), StoreError> {
    // The parts are split off and encoded a batch at a time, so that only
    // a batch's copy of the ledger is held beside it, not a second whole.
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); PARTS as usize];
    for (batch, outs) in encoded.chunks_mut(PARTS_AT_ONCE as usize).enumerate() {
        let first = batch as u32 * PARTS_AT_ONCE;
        let parts = ledger.split_range(PARTS, first..first + PARTS_AT_ONCE);
        // Encoding is most of the cost: two threads, each every other part.
        std::thread::scope(|scope| {
            let (even, odd): (Vec<_>, Vec<_>) = outs
                .iter_mut()
                .zip(&parts)
                .enumerate()
                .partition(|(i, _)| i % 2 == 0);
            for half in [even, odd] {
                scope.spawn(move || {
                    for (_, (out, part)) in half {
                        *out = encode(part);
                    }
                });
            }
        });
    }
    if encoded.iter().any(Vec::is_empty) {
        return Ok(());
    }
    let mut index: Vec<(u64, u16)> = ledger
        .paid_order_parts(PARTS)
        .into_iter()
        .map(|(order, part)| (fnv1a64(order.as_bytes()), part as u16))
        .collect();
    index.sort_unstable();
    let wanted = index.len().div_ceil(ENTRIES_PER_BUCKET).max(1);
    let bits = wanted.next_power_of_two().trailing_zeros().min(24);
    let buckets = 1usize << bits;
    let mut starts = vec![0u32; buckets + 1];
    for (hash, _) in &index {
        starts[bucket_of(*hash, bits) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut entries = Vec::with_capacity(index.len() * ENTRY_BYTES);
    for (hash, part) in &index {
        entries.extend_from_slice(&hash.to_be_bytes());
        entries.extend_from_slice(&part.to_be_bytes());
    }
    let bucket_crcs: Vec<u32> = (0..buckets)
        .map(|b| {
            crc32fast::hash(
                &entries[starts[b] as usize * ENTRY_BYTES..starts[b + 1] as usize * ENTRY_BYTES],
            )
        })
        .collect();
    let dir_len = encoded.len() * 16 + (buckets + 1) * 4 + buckets * 4;
    let mut offset = (HEADER_BYTES + dir_len + entries.len()) as u64;
    let mut directory = Vec::with_capacity(dir_len);
    for part in &encoded {
        directory.extend_from_slice(&offset.to_be_bytes());
        directory.extend_from_slice(&(part.len() as u32).to_be_bytes());
        directory.extend_from_slice(&crc32fast::hash(part).to_be_bytes());
        offset += part.len() as u64;
    }
    for start in &starts {
        directory.extend_from_slice(&start.to_be_bytes());
    }
    for crc in &bucket_crcs {
        directory.extend_from_slice(&crc.to_be_bytes());
    }
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_be_bytes());
    header[8..16].copy_from_slice(&end.seq.to_be_bytes());
    header[16..24].copy_from_slice(&end.block_first_seq.to_be_bytes());
    header[24..32].copy_from_slice(&end.block_offset.to_be_bytes());
    header[32..36].copy_from_slice(&end.block_len.to_be_bytes());
    header[36..40].copy_from_slice(&end.block_crc.to_be_bytes());
    header[40..44].copy_from_slice(&(encoded.len() as u32).to_be_bytes());
    header[44..48].copy_from_slice(&bits.to_be_bytes());
    header[48..56].copy_from_slice(&(index.len() as u64).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[0..56]);
    crc.update(&directory);
    header[56..60].copy_from_slice(&crc.finalize().to_be_bytes());
    let mut chunks: Vec<&[u8]> = vec![&header, &directory, &entries];
    chunks.extend(encoded.iter().map(Vec::as_slice));
    replace_file(dir, PARTS_FILE, &chunks)?;
    tracing::debug!(
        seq = end.seq,
        bytes = offset,
        "wrote the partitioned snapshot"
    );
    Ok(())
}

fn encode(ledger: &Ledger) -> Vec<u8> {
    // Serialising plain data into memory cannot fail; if it ever did, no
    // file is better than a wrong one (the caller writes none).
    match bincode::serialize(ledger) {
        Ok(bytes) => lz4_flex::compress_prepend_size(&bytes),
        Err(_) => Vec::new(),
    }
}

/// An open partitioned snapshot: its header and directory, read and
/// checked; parts and index buckets are read on demand.
#[derive(Debug)]
pub struct Parts {
    file: File,
    path: PathBuf,
    /// Where the events it reflects end.
    pub end: SnapshotEnd,
    sections: Vec<(u64, u32, u32)>,
    bits: u32,
    starts: Vec<u32>,
    bucket_crcs: Vec<u32>,
    entries_at: u64,
}

impl Parts {
    /// Opens `dir`'s partitioned snapshot: `None` when there is none or it
    /// is of another version; an error when its header or directory is
    /// damaged.
    pub fn open(dir: &Path) -> Result<Option<Parts>, StoreError> {
        let path = dir.join(PARTS_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("opening the snapshot", &path)(source)),
        };
        let len = file
            .metadata()
            .map_err(io_error("reading the snapshot", &path))?
            .len();
        let mut header = [0u8; HEADER_BYTES];
        if len < HEADER_BYTES as u64 {
            return Err(corrupt("it is shorter than its header".into()));
        }
        file.read_exact_at(&mut header, 0)
            .map_err(io_error("reading the snapshot", &path))?;
        if &header[0..4] != MAGIC {
            return Err(corrupt("it does not start with its header".into()));
        }
        if u16::from_be_bytes([header[4], header[5]]) != VERSION {
            return Ok(None);
        }
        let end = SnapshotEnd {
            seq: be_u64(&header, 8),
            block_first_seq: be_u64(&header, 16),
            block_offset: be_u64(&header, 24),
            block_len: be_u32(&header, 32),
            block_crc: be_u32(&header, 36),
        };
        let parts = be_u32(&header, 40) as usize;
        let bits = be_u32(&header, 44);
        let entries = be_u64(&header, 48);
        if parts == 0 || parts > u16::MAX as usize || bits > 24 {
            return Err(corrupt("its header is damaged".into()));
        }
        let buckets = 1usize << bits;
        let dir_len = parts * 16 + (buckets + 1) * 4 + buckets * 4;
        let entries_at = (HEADER_BYTES + dir_len) as u64;
        if entries_at + entries * ENTRY_BYTES as u64 > len {
            return Err(corrupt("it is shorter than its directory says".into()));
        }
        let mut directory = vec![0u8; dir_len];
        file.read_exact_at(&mut directory, HEADER_BYTES as u64)
            .map_err(io_error("reading the snapshot", &path))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[0..56]);
        crc.update(&directory);
        if crc.finalize() != be_u32(&header, 56) {
            return Err(corrupt("its header or directory fails its checksum".into()));
        }
        let sections = (0..parts)
            .map(|p| {
                let at = p * 16;
                (
                    be_u64(&directory, at),
                    be_u32(&directory, at + 8),
                    be_u32(&directory, at + 12),
                )
            })
            .collect();
        let at = parts * 16;
        let starts: Vec<u32> = (0..=buckets)
            .map(|b| be_u32(&directory, at + b * 4))
            .collect();
        let at = at + (buckets + 1) * 4;
        let bucket_crcs = (0..buckets)
            .map(|b| be_u32(&directory, at + b * 4))
            .collect();
        if starts.windows(2).any(|w| w[0] > w[1]) || u64::from(starts[buckets]) != entries {
            return Err(corrupt("its index directory is damaged".into()));
        }
        Ok(Some(Parts {
            file,
            path,
            end,
            sections,
            bits,
            starts,
            bucket_crcs,
            entries_at,
        }))
    }

    /// How many parts.
    pub fn count(&self) -> u32 {
        self.sections.len() as u32
    }

    /// The partitions that may hold paid order `order_id` (one, or more
    /// when order ids share a hash; none when no order of that id is paid
    /// in the snapshot).
    pub fn order_parts(&self, order_id: &str) -> Result<Vec<u32>, StoreError> {
        let hash = fnv1a64(order_id.as_bytes());
        let bucket = bucket_of(hash, self.bits);
        let (from, to) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        let mut bytes = vec![0u8; (to - from) * ENTRY_BYTES];
        self.file
            .read_exact_at(&mut bytes, self.entries_at + (from * ENTRY_BYTES) as u64)
            .map_err(io_error("reading the snapshot", &self.path))?;
        if crc32fast::hash(&bytes) != self.bucket_crcs[bucket] {
            return Err(corrupt(format!(
                "bucket {bucket} of its order index fails its checksum"
            )));
        }
        let mut found: Vec<u32> = bytes
            .chunks_exact(ENTRY_BYTES)
            .filter(|e| be_u64(e, 0) == hash)
            .map(|e| u32::from(u16::from_be_bytes([e[8], e[9]])))
            .collect();
        found.dedup();
        Ok(found)
    }

    /// The ledger of part `part`.
    pub fn part(&self, part: u32) -> Result<Ledger, StoreError> {
        let &(offset, len, crc) = self
            .sections
            .get(part as usize)
            .ok_or_else(|| corrupt(format!("it has no part {part}")))?;
        let mut bytes = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(io_error("reading the snapshot", &self.path))?;
        if crc32fast::hash(&bytes) != crc {
            return Err(corrupt(format!("part {part} fails its checksum")));
        }
        let raw = lz4_flex::decompress_size_prepended(&bytes)
            .map_err(|e| corrupt(format!("part {part} does not decompress: {e}")))?;
        bincode::deserialize(&raw).map_err(|e| corrupt(format!("part {part} does not decode: {e}")))
    }

    /// Checks every part and index bucket against its checksum (for
    /// `recover`; a query reads only what it needs).
    pub fn check(&self) -> Result<(), StoreError> {
        for &(offset, len, crc) in &self.sections {
            let mut bytes = vec![0u8; len as usize];
            self.file
                .read_exact_at(&mut bytes, offset)
                .map_err(io_error("reading the snapshot", &self.path))?;
            if crc32fast::hash(&bytes) != crc {
                return Err(corrupt(format!(
                    "a part at offset {offset} fails its checksum"
                )));
            }
        }
        let mut entries = vec![0u8; self.starts[self.starts.len() - 1] as usize * ENTRY_BYTES];
        self.file
            .read_exact_at(&mut entries, self.entries_at)
            .map_err(io_error("reading the snapshot", &self.path))?;
        for (bucket, crc) in self.bucket_crcs.iter().enumerate() {
            let from = self.starts[bucket] as usize * ENTRY_BYTES;
            let to = self.starts[bucket + 1] as usize * ENTRY_BYTES;
            if crc32fast::hash(&entries[from..to]) != *crc {
                return Err(corrupt(format!(
                    "bucket {bucket} of its order index fails its checksum"
                )));
            }
        }
        Ok(())
    }
}
