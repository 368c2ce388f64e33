//! The partitioned snapshot: `projection.parts`, beside `projection.snap`,
//! so that `shop` and `order` decode one partition's ledger, not the whole.
//!
//! The snapshot ledger is split by shop partition ([`Ledger::split`], the
//! stable hash of `penalty_core::ledger::partition`), each part encoded and
//! checksummed on its own. A part is as large as its largest shop, which
//! in a skewed marketplace holds a tenth of all orders; so each part's
//! large shops also have excerpts (`penalty_core::ledger::excerpt`), each
//! holding a group of about [`EXCERPT_ORDERS`] of the shop's orders with
//! what their order reports read (R5's settle days, and every order that
//! could ever have a deduction on one of them), plus one excerpt
//! holding the part's other shops whole; `order O` reads the excerpt its
//! order is at home in. Parts and excerpts are the file's
//! sections. An index from order id to section is read in place: entries
//! `(FNV-1a 64 of the order id, section)` sorted by hash and bucketed by
//! the hash's top bits, so that `order O` reads one bucket (a few dozen
//! entries) by offset. Two order ids of equal hash give two candidate
//! sections; the caller asks each. Orders not yet paid are in every part
//! and in no bucket.
//!
//! A query reads the header and the section table (a few dozen KB),
//! then, for `order O`, its bucket's two starts and CRC and its entries;
//! never the whole bucket table (2 MB at 5M orders, which reading and
//! checking took 3 ms of a 15 ms `order`). A bucket's entries are checked
//! against its CRC, so damage to its starts or CRC is refused as damage;
//! `recover` checks the bucket table whole ([`Parts::check`]).
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
//! 56..60  sections S: the P parts in partition order, then excerpts
//! 60..64  CRC-32 of bytes 0..60 and the section table
//! 64..    the directory: the section table, S x (offset u64, length u32,
//!         CRC u32, partition u16, family u16) of the sections, where an
//!         excerpt's family is the first excerpt of its part, a part's is
//!         itself, and that of the excerpt holding the rest of a part's
//!         shops whole is the part; then the bucket table, (B + 1) x u32,
//!         where each bucket's entries start (in entries), and B x u32,
//!         each bucket's CRC; then the CRC-32 of the bucket table
//! then    N x 10 bytes of entries (hash u64, section u16)
//! then    the sections: each the LZ4 block (size prepended) of the bincode
//!         of its ledger
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use penalty_core::ledger::partition::fnv1a64;
use penalty_core::Ledger;

use crate::snapshot::{io_error, replace_file_with, SnapshotEnd};
use crate::StoreError;

/// The file's name in the data directory.
pub const PARTS_FILE: &str = "projection.parts";
const MAGIC: &[u8; 4] = b"PLPT";
/// Bumped whenever the layout or the ledger's encoding changes: a file of
/// another version is ignored (and rewritten by the next writer).
const VERSION: u16 = 4;
const HEADER_BYTES: usize = 64;
const SECTION_BYTES: usize = 20;
const ENTRY_BYTES: usize = 10;
/// How many partitions of shops: enough that one part of a 5M-order ledger
/// decodes in a few milliseconds, few enough that each compresses well.
pub const PARTS: u32 = 1024;
/// How many parts are split off the ledger and encoded at a time: an
/// eighth of the ledger's copy held at once, and each pass over its orders
/// still copies a hundred parts.
const PARTS_AT_ONCE: u32 = 128;
/// Home orders per excerpt of a large shop: an order's report decodes
/// about this many orders (plus those sharing its settle days) instead of
/// its whole shop; shops of up to twice this many are read whole.
pub const EXCERPT_ORDERS: usize = 8_192;
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

/// The bucket table's bytes: where each of `buckets` starts, one more
/// for the end, and each one's CRC.
fn bucket_table_bytes(buckets: usize) -> usize {
    (buckets + 1) * 4 + buckets * 4
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
    write_with(dir, end, ledger, EXCERPT_ORDERS)
}

/// [`write`] with excerpts of `excerpt_orders` home orders each (for shops
/// of more than twice that), instead of [`EXCERPT_ORDERS`]: tests make
/// excerpts of small generated ledgers with it.
pub fn write_with(
    dir: &Path,
    end: &SnapshotEnd,
    ledger: &Ledger,
    excerpt_orders: usize,
) -> Result<(), StoreError> {
    let split = ledger.splitting(PARTS);
    let layout = Layout::of(&split, excerpt_orders);
    let mut unencodable = false;
    let written = replace_file_with(dir, PARTS_FILE, |file| {
        match write_sections(file, end, &split, &layout, excerpt_orders)? {
            Some(_) => Ok(()),
            None => {
                unencodable = true;
                Err(std::io::Error::other("a part did not encode"))
            }
        }
    });
    match written {
        // Serialising plain data into memory cannot fail; if it ever did,
        // no file is better than a wrong one.
        Err(_) if unencodable => Ok(()),
        Err(error) => Err(error),
        Ok(()) => Ok(()),
    }
}

/// Where a partitioned snapshot's sections go, known before any part is
/// made: the sections' and index entries' numbers fix the directory's
/// size, so each part is written where it belongs as soon as it is
/// encoded, not held until the last (a third of the file, at a million
/// orders, no longer held beside the ledger).
struct Layout {
    /// Every section: the parts, then the excerpts of each part in turn.
    sections: usize,
    /// The section number of each part's first excerpt, when it has
    /// excerpts and they fit in the directory's 16-bit numbers (past
    /// that, a part's orders are read from the part).
    first_excerpt: Vec<Option<usize>>,
    /// How many excerpts each part has.
    excerpts: Vec<usize>,
    /// Index entries: one per paid order.
    entries: usize,
    bits: u32,
    /// Where the first section starts.
    sections_at: u64,
}

impl Layout {
    fn of(split: &penalty_core::ledger::partition::Split<'_>, excerpt_orders: usize) -> Layout {
        let excerpts = split.excerpts_by_part(excerpt_orders);
        let mut sections = excerpts.len();
        let first_excerpt = excerpts
            .iter()
            .map(|&count| {
                let first = sections;
                let fits = first + count <= usize::from(u16::MAX);
                (fits && count > 0).then(|| {
                    sections += count;
                    first
                })
            })
            .collect();
        let entries = split.paid_orders();
        let wanted = entries.div_ceil(ENTRIES_PER_BUCKET).max(1);
        let bits = wanted.next_power_of_two().trailing_zeros().min(24);
        let dir_len = sections * SECTION_BYTES + bucket_table_bytes(1 << bits) + 4;
        Layout {
            sections,
            first_excerpt,
            excerpts,
            entries,
            bits,
            sections_at: (HEADER_BYTES + dir_len + entries * ENTRY_BYTES) as u64,
        }
    }
}

/// Writes the partitioned snapshot into `file`: each part where
/// [`Layout`] puts it as its batch is encoded, the excerpts after the
/// last part, then the header, directory and index at the start. The
/// bytes written, or `None` when a part did not encode as laid out.
fn write_sections(
    file: &File,
    end: &SnapshotEnd,
    split: &penalty_core::ledger::partition::Split<'_>,
    layout: &Layout,
    excerpt_orders: usize,
) -> std::io::Result<Option<u64>> {
    // Each section's (offset, length, CRC), by section number.
    let mut table: Vec<(u64, u32, u32)> = vec![(0, 0, 0); layout.sections];
    let mut at = layout.sections_at;
    // The excerpts, in section order: they follow every part.
    let mut excerpts: Vec<Vec<u8>> = Vec::new();
    let mut index: Vec<(u64, u16)> = Vec::with_capacity(layout.entries);
    // A serialisation buffer for each encoding thread, kept across parts.
    let mut scratch = [Vec::new(), Vec::new()];
    for first in (0..PARTS).step_by(PARTS_AT_ONCE as usize) {
        // The parts are split off and encoded a batch at a time, so that
        // only a batch's copy of the ledger is held beside it, not a
        // second whole.
        let parts = split.range_to_encode(first..first + PARTS_AT_ONCE);
        let mut encoded: Vec<Encoded> = (0..parts.len()).map(|_| Encoded::default()).collect();
        // Encoding is most of the cost: two threads, each every other part.
        std::thread::scope(|scope| {
            let (even, odd): (Vec<_>, Vec<_>) = encoded
                .iter_mut()
                .zip(&parts)
                .enumerate()
                .partition(|(i, _)| i % 2 == 0);
            for (half, scratch) in [even, odd].into_iter().zip(scratch.iter_mut()) {
                scope.spawn(move || {
                    for (_, (out, part)) in half {
                        *out = Encoded::of(part, excerpt_orders, scratch);
                    }
                });
            }
        });
        drop(parts);
        for (p, part) in (first as usize..).zip(encoded) {
            // An excerpt that did not encode, or excerpts other than laid
            // out, would move every later section: no file then.
            if part.part.is_empty()
                || part.excerpts.iter().any(Vec::is_empty)
                || part.excerpts.len() != layout.excerpts[p]
            {
                return Ok(None);
            }
            file.write_all_at(&part.part, at)?;
            table[p] = (at, part.part.len() as u32, crc32fast::hash(&part.part));
            at += part.part.len() as u64;
            let first_excerpt = layout.first_excerpt[p];
            index.extend(part.entries.iter().map(|&(hash, excerpt)| {
                let section = match first_excerpt {
                    Some(first) if excerpt != u32::MAX => first + excerpt as usize,
                    _ => p,
                };
                (hash, section as u16)
            }));
            if first_excerpt.is_some() {
                excerpts.extend(part.excerpts);
            }
        }
    }
    if index.len() != layout.entries {
        return Ok(None);
    }
    // Sections: the parts in partition order, then each part's excerpts.
    // An excerpt's family is its part's first excerpt, but for the one
    // holding the rest of a part's shops whole, which is of the part's
    // family: read as the part is, without an excerpt's checks.
    let mut families: Vec<(u16, u16)> = (0..PARTS as u16).map(|p| (p, p)).collect();
    let mut section = PARTS as usize;
    for (p, first) in layout.first_excerpt.iter().enumerate() {
        let Some(first) = *first else { continue };
        for i in 0..layout.excerpts[p] {
            let family = if i + 1 == layout.excerpts[p] && layout.excerpts[p] > 0 {
                // The last excerpt of a part with large shops holds the
                // rest of its shops whole.
                p
            } else {
                first
            };
            families.push((p as u16, family as u16));
        }
        section += layout.excerpts[p];
    }
    debug_assert_eq!(section, layout.sections);
    for (bytes, entry) in excerpts.iter().zip(&mut table[PARTS as usize..]) {
        file.write_all_at(bytes, at)?;
        *entry = (at, bytes.len() as u32, crc32fast::hash(bytes));
        at += bytes.len() as u64;
    }
    drop(excerpts);
    index.sort_unstable();
    let bits = layout.bits;
    let buckets = 1usize << bits;
    let mut starts = vec![0u32; buckets + 1];
    for (hash, _) in &index {
        starts[bucket_of(*hash, bits) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut entries = Vec::with_capacity(index.len() * ENTRY_BYTES);
    for (hash, section) in &index {
        entries.extend_from_slice(&hash.to_be_bytes());
        entries.extend_from_slice(&section.to_be_bytes());
    }
    drop(index);
    let bucket_crcs: Vec<u32> = (0..buckets)
        .map(|b| {
            crc32fast::hash(
                &entries[starts[b] as usize * ENTRY_BYTES..starts[b + 1] as usize * ENTRY_BYTES],
            )
        })
        .collect();
    let dir_len = layout.sections * SECTION_BYTES + bucket_table_bytes(buckets) + 4;
    let mut directory = Vec::with_capacity(dir_len);
    for ((offset, len, crc), (part, family)) in table.iter().zip(&families) {
        directory.extend_from_slice(&offset.to_be_bytes());
        directory.extend_from_slice(&len.to_be_bytes());
        directory.extend_from_slice(&crc.to_be_bytes());
        directory.extend_from_slice(&part.to_be_bytes());
        directory.extend_from_slice(&family.to_be_bytes());
    }
    for start in &starts {
        directory.extend_from_slice(&start.to_be_bytes());
    }
    for crc in &bucket_crcs {
        directory.extend_from_slice(&crc.to_be_bytes());
    }
    let table_crc = crc32fast::hash(&directory[layout.sections * SECTION_BYTES..]);
    directory.extend_from_slice(&table_crc.to_be_bytes());
    let mut header = [0u8; HEADER_BYTES];
    header[0..4].copy_from_slice(MAGIC);
    header[4..6].copy_from_slice(&VERSION.to_be_bytes());
    header[8..16].copy_from_slice(&end.seq.to_be_bytes());
    header[16..24].copy_from_slice(&end.block_first_seq.to_be_bytes());
    header[24..32].copy_from_slice(&end.block_offset.to_be_bytes());
    header[32..36].copy_from_slice(&end.block_len.to_be_bytes());
    header[36..40].copy_from_slice(&end.block_crc.to_be_bytes());
    header[40..44].copy_from_slice(&PARTS.to_be_bytes());
    header[44..48].copy_from_slice(&bits.to_be_bytes());
    header[48..56].copy_from_slice(&(layout.entries as u64).to_be_bytes());
    header[56..60].copy_from_slice(&(layout.sections as u32).to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[0..60]);
    crc.update(&directory[..layout.sections * SECTION_BYTES]);
    header[60..64].copy_from_slice(&crc.finalize().to_be_bytes());
    let mut start = Vec::with_capacity(HEADER_BYTES + directory.len() + entries.len());
    start.extend_from_slice(&header);
    start.extend_from_slice(&directory);
    start.extend_from_slice(&entries);
    debug_assert_eq!(start.len() as u64, layout.sections_at);
    file.write_all_at(&start, 0)?;
    tracing::debug!(
        seq = end.seq,
        bytes = at,
        sections = layout.sections,
        "wrote the partitioned snapshot"
    );
    Ok(Some(at))
}

/// One part, encoded with its excerpts, and its index entries.
#[derive(Default)]
struct Encoded {
    part: Vec<u8>,
    excerpts: Vec<Vec<u8>>,
    /// (FNV-1a 64 of a paid order id, its excerpt among `excerpts` or
    /// `u32::MAX` for the part).
    entries: Vec<(u64, u32)>,
}

impl Encoded {
    /// `scratch` holds each ledger's serialisation before its compression.
    fn of(part: &Ledger, excerpt_orders: usize, scratch: &mut Vec<u8>) -> Encoded {
        let excerpts = part.excerpts(excerpt_orders);
        // The excerpt holding the part's other shops whole is the last.
        debug_assert!(excerpts
            .rest
            .is_none_or(|rest| rest as usize + 1 == excerpts.ledgers.len()));
        let entries = excerpts
            .homes(part)
            .map(|(order, home)| (fnv1a64(order.as_bytes()), home.unwrap_or(u32::MAX)))
            .collect();
        Encoded {
            part: encode(part, scratch),
            excerpts: excerpts
                .ledgers
                .iter()
                .map(|ledger| encode(ledger, scratch))
                .collect(),
            entries,
        }
    }
}

/// The LZ4 block (size prepended) of the bincode of `ledger`, serialised
/// into `scratch` (bincode's own `serialize` walks the ledger twice: once
/// for the size, once to write); empty if it does not serialise.
fn encode(ledger: &Ledger, scratch: &mut Vec<u8>) -> Vec<u8> {
    scratch.clear();
    match bincode::serialize_into(&mut *scratch, ledger) {
        Ok(()) => lz4_flex::compress_prepend_size(scratch),
        Err(_) => Vec::new(),
    }
}

/// An open partitioned snapshot: its header and directory, read and
/// checked; sections and index buckets are read on demand.
#[derive(Debug)]
pub struct Parts {
    file: File,
    path: PathBuf,
    /// Where the events it reflects end.
    pub end: SnapshotEnd,
    parts: u32,
    sections: Vec<Section>,
    bits: u32,
    /// Where the bucket table starts in the file.
    table_at: u64,
    /// How many index entries.
    entries: u64,
    entries_at: u64,
}

#[derive(Clone, Copy, Debug)]
struct Section {
    offset: u64,
    len: u32,
    crc: u32,
    part: u32,
    family: u32,
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
        // The version is read first: an older file may be shorter than
        // this version's header.
        let mut header = [0u8; HEADER_BYTES];
        if len < 6 {
            return Err(corrupt("it is shorter than its header".into()));
        }
        file.read_exact_at(&mut header[..6], 0)
            .map_err(io_error("reading the snapshot", &path))?;
        if &header[0..4] != MAGIC {
            return Err(corrupt("it does not start with its header".into()));
        }
        if u16::from_be_bytes([header[4], header[5]]) != VERSION {
            return Ok(None);
        }
        if len < HEADER_BYTES as u64 {
            return Err(corrupt("it is shorter than its header".into()));
        }
        file.read_exact_at(&mut header, 0)
            .map_err(io_error("reading the snapshot", &path))?;
        let end = SnapshotEnd {
            seq: be_u64(&header, 8),
            block_first_seq: be_u64(&header, 16),
            block_offset: be_u64(&header, 24),
            block_len: be_u32(&header, 32),
            block_crc: be_u32(&header, 36),
        };
        let parts = be_u32(&header, 40);
        let bits = be_u32(&header, 44);
        let entries = be_u64(&header, 48);
        let count = be_u32(&header, 56) as usize;
        if parts == 0 || parts as usize > count || count > usize::from(u16::MAX) || bits > 24 {
            return Err(corrupt("its header is damaged".into()));
        }
        let buckets = 1usize << bits;
        let table_at = (HEADER_BYTES + count * SECTION_BYTES) as u64;
        let entries_at = table_at + bucket_table_bytes(buckets) as u64 + 4;
        if entries_at + entries * ENTRY_BYTES as u64 > len {
            return Err(corrupt("it is shorter than its directory says".into()));
        }
        // The section table only: the bucket table is read a bucket at a
        // time, by the query that needs it.
        let mut directory = vec![0u8; count * SECTION_BYTES];
        file.read_exact_at(&mut directory, HEADER_BYTES as u64)
            .map_err(io_error("reading the snapshot", &path))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[0..60]);
        crc.update(&directory);
        if crc.finalize() != be_u32(&header, 60) {
            return Err(corrupt("its header or directory fails its checksum".into()));
        }
        let sections: Vec<Section> = (0..count)
            .map(|s| {
                let at = s * SECTION_BYTES;
                Section {
                    offset: be_u64(&directory, at),
                    len: be_u32(&directory, at + 8),
                    crc: be_u32(&directory, at + 12),
                    part: u32::from(u16::from_be_bytes([directory[at + 16], directory[at + 17]])),
                    family: u32::from(u16::from_be_bytes([directory[at + 18], directory[at + 19]])),
                }
            })
            .collect();
        if sections
            .iter()
            .any(|s| s.part >= parts || s.family as usize >= count)
        {
            return Err(corrupt("its section directory is damaged".into()));
        }
        Ok(Some(Parts {
            file,
            path,
            end,
            parts,
            sections,
            bits,
            table_at,
            entries,
            entries_at,
        }))
    }

    /// How many parts (partitions of shops).
    pub fn count(&self) -> u32 {
        self.parts
    }

    /// Whether section `section` is an excerpt of a large shop (else it is
    /// the part of its partition, whose number it is).
    pub fn is_excerpt(&self, section: u32) -> bool {
        section >= self.parts
    }

    /// The excerpt holding partition `part`'s small shops whole, when the
    /// part has large shops (and so excerpts).
    pub fn small_shops_excerpt(&self, part: u32) -> Option<u32> {
        (self.parts..self.sections.len() as u32).find(|&section| {
            self.sections
                .get(section as usize)
                .is_some_and(|s| s.part == part && s.family == part)
        })
    }

    /// The partition of section `section`.
    pub fn partition(&self, section: u32) -> Option<u32> {
        self.sections.get(section as usize).map(|s| s.part)
    }

    /// Which excerpts section `section` is among: the first excerpt of its
    /// part; for a part, and for the excerpt holding the rest of a part's
    /// shops whole (read as a part is), the part's number.
    pub fn family(&self, section: u32) -> Option<u32> {
        self.sections.get(section as usize).map(|s| s.family)
    }

    /// The sections that may hold paid order `order_id`: its part, or the
    /// excerpt it is at home in (one, or more when order ids share a hash;
    /// none when no order of that id is paid in the snapshot). The index
    /// holds only the FNV-1a hash of each order id, in buckets read in place.
    pub fn order_sections(&self, order_id: &str) -> Result<Vec<u32>, StoreError> {
        let hash = fnv1a64(order_id.as_bytes());
        let bucket = bucket_of(hash, self.bits);
        let read = |at: u64, len: usize| {
            let mut bytes = vec![0u8; len];
            self.file
                .read_exact_at(&mut bytes, at)
                .map(|()| bytes)
                .map_err(io_error("reading the snapshot", &self.path))
        };
        let buckets = 1u64 << self.bits;
        let starts = read(self.table_at + bucket as u64 * 4, 8)?;
        let crc = read(self.table_at + (buckets + 1 + bucket as u64) * 4, 4)?;
        let (from, to) = (be_u32(&starts, 0) as usize, be_u32(&starts, 4) as usize);
        if from > to || to as u64 > self.entries {
            return Err(corrupt(format!(
                "bucket {bucket} of its order index is damaged"
            )));
        }
        let bytes = read(
            self.entries_at + (from * ENTRY_BYTES) as u64,
            (to - from) * ENTRY_BYTES,
        )?;
        if crc32fast::hash(&bytes) != be_u32(&crc, 0) {
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
        if found.iter().any(|s| *s as usize >= self.sections.len()) {
            return Err(corrupt("its order index names no section".into()));
        }
        Ok(found)
    }

    /// The ledger of section `section` (part `p` is section `p`).
    pub fn ledger(&self, section: u32) -> Result<Ledger, StoreError> {
        let section_at = *self
            .sections
            .get(section as usize)
            .ok_or_else(|| corrupt(format!("it has no section {section}")))?;
        let started = std::time::Instant::now();
        let bytes = self.read_section(&section_at)?;
        let read_us = crate::projection::micros(started);
        let raw = lz4_flex::decompress_size_prepended(&bytes)
            .map_err(|e| corrupt(format!("section {section} does not decompress: {e}")))?;
        let lz4_us = crate::projection::micros(started) - read_us;
        let ledger = bincode::deserialize(&raw)
            .map_err(|e| corrupt(format!("section {section} does not decode: {e}")));
        tracing::debug!(
            target: crate::projection::TIMING,
            read_us,
            lz4_us,
            bincode_us = crate::projection::micros(started) - read_us - lz4_us,
            compressed = bytes.len(),
            raw = raw.len(),
            "section read"
        );
        ledger
    }

    fn read_section(&self, section: &Section) -> Result<Vec<u8>, StoreError> {
        let mut bytes = vec![0u8; section.len as usize];
        self.file
            .read_exact_at(&mut bytes, section.offset)
            .map_err(io_error("reading the snapshot", &self.path))?;
        if crc32fast::hash(&bytes) != section.crc {
            return Err(corrupt(format!(
                "the section at offset {} fails its checksum",
                section.offset
            )));
        }
        Ok(bytes)
    }

    /// Checks every section and index bucket against its checksum (for
    /// `recover`; a query reads only what it needs).
    pub fn check(&self) -> Result<(), StoreError> {
        for section in &self.sections {
            self.read_section(section)?;
        }
        let buckets = 1usize << self.bits;
        let mut table = vec![0u8; bucket_table_bytes(buckets) + 4];
        self.file
            .read_exact_at(&mut table, self.table_at)
            .map_err(io_error("reading the snapshot", &self.path))?;
        let (table, crc) = table.split_at(table.len() - 4);
        if crc32fast::hash(table) != be_u32(crc, 0) {
            return Err(corrupt("its index directory fails its checksum".into()));
        }
        let starts: Vec<u32> = (0..=buckets).map(|b| be_u32(table, b * 4)).collect();
        if starts.windows(2).any(|w| w[0] > w[1]) || u64::from(starts[buckets]) != self.entries {
            return Err(corrupt("its index directory is damaged".into()));
        }
        let mut entries = vec![0u8; self.entries as usize * ENTRY_BYTES];
        self.file
            .read_exact_at(&mut entries, self.entries_at)
            .map_err(io_error("reading the snapshot", &self.path))?;
        for bucket in 0..buckets {
            let crc = be_u32(table, (buckets + 1 + bucket) * 4);
            let from = starts[bucket] as usize * ENTRY_BYTES;
            let to = starts[bucket + 1] as usize * ENTRY_BYTES;
            if crc32fast::hash(&entries[from..to]) != crc {
                return Err(corrupt(format!(
                    "bucket {bucket} of its order index fails its checksum"
                )));
            }
        }
        Ok(())
    }
}
