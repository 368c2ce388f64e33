//! The on-disk block format: one block per appended batch.
//!
//! sled costs about the same per key whatever the value size, so the log packs
//! a whole batch into one block. Blocks are appended to the blocks file
//! (`events.log`) and sled keeps, under the block's first sequence number,
//! only its [`Locator`]: sled holds every value it has read or written in
//! memory (its cache is sized by on-disk bytes, and a large value counts as a
//! pointer), so blocks kept inside sled made the whole log resident. A block
//! is self-describing and checksummed:
//!
//! ```text
//! header (32 bytes, integers big-endian)
//!   0..4    magic  b"PLGB"
//!   4..8    CRC-32 (crc32fast) of the whole block, computed with these 4 bytes zeroed
//!   8..10   format version (3, the only one read; see below)
//!   10..12  reserved, zero
//!   12..20  first_seq (u64): equal to the sled key
//!   20..24  count (u32, at least 1)
//!   24..32  recorded_at (i64 ns since the Unix epoch)
//! then `count` entries, in sequence order
//!   16 bytes  event_id (u128)
//!   8 bytes   content hash of the stored payload below (see `content_hash`)
//!   2 bytes   length of the paid order id (0 when the event is not `paid`)
//!   n bytes   the paid order id
//!   4 bytes   length of the payload
//!   n bytes   the payload: the event's canonical JSON, or its compact form
//! ```
//!
//! In the blocks file a block starts right after the previous one, or, when
//! it is large enough to be written past the page cache, at the next
//! 4 KiB-aligned offset with zeros before it (see `direct`); its locator
//! names its exact bytes.
//!
//! The metadata (id, hash, paid order) sits in front of the JSON so that the
//! idempotency index can be rebuilt by skipping over the JSON, never parsing it.
//!
//! An entry's length field has its top bit set when the bytes that follow are
//! the event's compact binary form (`penalty_core::compact`) rather than its
//! canonical JSON; the form reproduces that JSON exactly, and replay decodes it
//! without parsing JSON. Lines are at most 64 KiB, so the bit is free.
//!
//! Each entry's content hash is of its stored payload (the compact form or
//! the canonical JSON, whichever is stored). Versions 1 and 2 (the hash of
//! the canonical JSON; entries compressed with LZ4) were written only during
//! this program's development, before any release, and are not read: a
//! block of another version is damage, named as such.
use std::borrow::Cow;
use std::ops::Range;

use penalty_core::event::{ParsedRef, Payload};
use penalty_core::time::UnixNs;

use crate::StoreError;

/// Identifies a block; a value without it is not ours.
pub(crate) const MAGIC: &[u8; 4] = b"PLGB";
/// The block format this code writes and reads: entries uncompressed, each
/// hashed as stored.
pub const FORMAT_VERSION: u16 = 3;
/// Set in an entry's length field when its payload is the compact form.
const COMPACT_BIT: u32 = 1 << 31;
/// Size of the fixed header.
pub(crate) const HEADER_BYTES: usize = 32;
/// Position of the CRC in the header.
const CRC_RANGE: Range<usize> = 4..8;

/// Whether a block is of the one format read.
fn is_plain(version: u16) -> bool {
    version == FORMAT_VERSION
}

/// The version in a block's header.
fn version_of(block: &[u8]) -> u16 {
    u16::from_be_bytes([block[8], block[9]])
}

/// The sled key of the block whose first event has sequence number `seq`.
/// Big-endian, so that sled's byte order is sequence order.
pub fn block_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Where a block lies in the blocks file: the sled value under its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locator {
    /// Byte offset of the block in the blocks file.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u32,
    /// The CRC in its header, so that a block read from the wrong place (or a
    /// stale one) is told from the right one before it is decoded.
    pub crc: u32,
    /// How many events it holds, so that the log's end is known without
    /// reading the block.
    pub count: u32,
}

/// Size of an encoded [`Locator`]. A block value starts with `MAGIC`
/// instead, which is how the two are told apart.
pub const LOCATOR_BYTES: usize = 21;
/// First byte of an encoded [`Locator`] (its version).
const LOCATOR_TAG: u8 = 1;

impl Locator {
    /// The locator of `block` (as encoded by [`encode`]) at `offset`.
    pub fn of(block: &[u8], offset: u64, count: u32) -> Locator {
        Locator {
            offset,
            len: u32::try_from(block.len()).expect("a block is under 4 GiB"),
            crc: be_u32(&block[CRC_RANGE]),
            count,
        }
    }

    /// Where the next block goes.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }

    /// The sled value.
    pub fn encode(&self) -> [u8; LOCATOR_BYTES] {
        let mut out = [0; LOCATOR_BYTES];
        out[0] = LOCATOR_TAG;
        out[1..9].copy_from_slice(&self.offset.to_be_bytes());
        out[9..13].copy_from_slice(&self.len.to_be_bytes());
        out[13..17].copy_from_slice(&self.crc.to_be_bytes());
        out[17..21].copy_from_slice(&self.count.to_be_bytes());
        out
    }

    /// Whether `header`, the bytes at this locator's offset in the blocks
    /// file, is the header of the block it names under `first_seq`: the
    /// block magic, the one format read, and the locator's checksum, first
    /// sequence number and count. Whether the rest of the block holds is
    /// for its checksum to say when it is read.
    pub(crate) fn names_header(&self, first_seq: u64, header: &[u8; HEADER_BYTES]) -> bool {
        &header[..4] == MAGIC
            && is_plain(version_of(header))
            && be_u32(&header[CRC_RANGE]) == self.crc
            && be_u64(&header[12..20]) == first_seq
            && be_u32(&header[20..24]) == self.count
    }

    /// Reads a sled value back; `None` when it is not a locator.
    pub fn decode(value: &[u8]) -> Option<Locator> {
        if value.len() != LOCATOR_BYTES || value[0] != LOCATOR_TAG {
            return None;
        }
        Some(Locator {
            offset: be_u64(&value[1..9]),
            len: be_u32(&value[9..13]),
            crc: be_u32(&value[13..17]),
            count: be_u32(&value[17..21]),
        })
    }
}

/// Reads a block key back; `None` when it is not 8 bytes.
pub fn seq_of_key(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// The 64-bit content hash kept per event, of its stored payload. It only has to be stable across
/// versions and platforms (it is stored) and cheap (every line is hashed): it
/// is a checksum of each event's bytes that `verify` checks, never taken
/// as proof of equal content. So: eight bytes at a time (little-endian, the last word padded
/// with zeros), each mixed in by xor, multiply and rotate, seeded with the
/// length, then the murmur3 finaliser. Never change it: stored hashes would
/// stop matching (`verify` checks them).
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut hash = content_seed(bytes);
    for word in le_words(bytes) {
        hash = content_step(hash, word);
    }
    content_finish(hash)
}

/// The content hash's state before `bytes`' first word: seeded with their
/// length.
fn content_seed(bytes: &[u8]) -> u64 {
    0x243f_6a88_85a3_08d3 ^ (bytes.len() as u64).wrapping_mul(CONTENT_MULTIPLIER)
}

const CONTENT_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// One word mixed into the content hash: xor, multiply and rotate.
fn content_step(hash: u64, word: u64) -> u64 {
    (hash ^ word)
        .wrapping_mul(CONTENT_MULTIPLIER)
        .rotate_left(29)
}

/// The murmur3 finaliser that ends the content hash.
fn content_finish(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// [`content_hash`] of several inputs at once, with the same values.
///
/// Why: each word of one input is an xor, a multiply and a rotate that wait
/// for the word before, about five cycles a word however wide the core;
/// hashing inputs side by side lets their chains overlap. Ingest's parser
/// threads hash every line, and this was a tenth of their time.
pub fn content_hashes<const N: usize>(inputs: [&[u8]; N]) -> [u64; N] {
    let mut hashes = inputs.map(content_seed);
    // The whole words every input has, side by side…
    let common = inputs
        .iter()
        .map(|bytes| bytes.len() / 8)
        .min()
        .unwrap_or(0);
    let heads = inputs.map(|bytes| &bytes[..common * 8]);
    for at in (0..common * 8).step_by(8) {
        for (hash, head) in hashes.iter_mut().zip(heads) {
            let mut word = [0; 8];
            word.copy_from_slice(&head[at..at + 8]);
            *hash = content_step(*hash, u64::from_le_bytes(word));
        }
    }
    // …then each input's rest alone, as `content_hash` reads it.
    for (hash, bytes) in hashes.iter_mut().zip(inputs) {
        for word in le_words(&bytes[common * 8..]) {
            *hash = content_step(*hash, word);
        }
        *hash = content_finish(*hash);
    }
    hashes
}

/// `bytes` as little-endian 64-bit words, the last one padded with zeros:
/// how the content hash and the index's hasher read their input. Whole words
/// are read directly, the last, short one by [`short_word`].
pub(crate) fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let last = (!rest.is_empty()).then(|| short_word(rest));
    words
        .map(|chunk| {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            u64::from_le_bytes(word)
        })
        .chain(last)
}

/// Up to seven bytes as a little-endian word padded with zeros, read as two
/// loads that may overlap (the first and the last four or two bytes).
///
/// Why not a copy into a zeroed `[u8; 8]`: its bytes are stored one by one
/// (or by a call to memmove) and the word then loaded whole, which the core
/// cannot forward from the stores; it waits for them to reach the cache.
/// On the path of every line's hashes, that was a sixth of a parser's
/// hashing and keying.
fn short_word(rest: &[u8]) -> u64 {
    debug_assert!(rest.len() < 8, "a short word");
    let len = rest.len();
    let u32_at = |at: usize| {
        rest.get(at..at + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, |bytes| u64::from(u32::from_le_bytes(bytes)))
    };
    let u16_at = |at: usize| {
        rest.get(at..at + 2)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, |bytes| u64::from(u16::from_le_bytes(bytes)))
    };
    // The second load holds the last bytes; shifted into place, it agrees
    // with the first where they overlap.
    match len {
        4..=7 => u32_at(0) | u32_at(len - 4) << ((len - 4) * 8),
        2..=3 => u16_at(0) | u16_at(len - 2) << ((len - 2) * 8),
        1 => u64::from(rest[0]),
        _ => 0,
    }
}

/// One event to be written, borrowed from the caller.
pub struct NewEntry<'a> {
    /// The parsed line; its compact form or canonical JSON is what is stored.
    pub line: ParsedRef<'a>,
    /// The [`content_hash`] of its payload (the compact form, or the
    /// canonical JSON), computed where the line was parsed.
    pub hash: u64,
}

/// Encodes a block. The caller guarantees at least one entry and sizes that
/// fit the length fields (an order id is at most 128 bytes, a line 64 KiB).
pub fn encode(first_seq: u64, recorded_at: UnixNs, entries: &[NewEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(entries));
    encode_into(first_seq, recorded_at, entries, &mut out);
    out
}

/// The length of the block [`encode`] makes of `entries`.
pub fn encoded_len(entries: &[NewEntry<'_>]) -> usize {
    let body: usize = entries
        .iter()
        .map(|e| 30 + e.line.paid_order_id.map_or(0, <[u8]>::len) + payload(&e.line).0.len())
        .sum();
    HEADER_BYTES + body
}

/// [`encode`], appending the block to `out` (which then grows by exactly
/// [`encoded_len`] bytes), so that a writer can place it in a buffer of its
/// own, aligned as it needs.
pub fn encode_into(
    first_seq: u64,
    recorded_at: UnixNs,
    entries: &[NewEntry<'_>],
    out: &mut Vec<u8>,
) {
    encode_noting_offsets(first_seq, recorded_at, entries, out, None);
}

/// [`encode_into`], and when `offsets` is given, where each entry starts in
/// the block, as [`entry_offsets`] would find them: ingest keeps them for
/// confirming duplicates against the blocks it has just written, which
/// walking each block's 8K entries again cost the committing thread 2% of
/// its time.
pub(crate) fn encode_noting_offsets(
    first_seq: u64,
    recorded_at: UnixNs,
    entries: &[NewEntry<'_>],
    out: &mut Vec<u8>,
    mut offsets: Option<&mut Vec<u32>>,
) {
    assert!(!entries.is_empty(), "a block holds at least one event");
    let count = u32::try_from(entries.len()).expect("a batch fits in u32");
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 2]);
    out.extend_from_slice(&first_seq.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&recorded_at.0.to_be_bytes());
    if let Some(offsets) = offsets.as_deref_mut() {
        offsets.clear();
        offsets.reserve(entries.len());
    }
    for entry in entries {
        if let Some(offsets) = offsets.as_deref_mut() {
            offsets.push(u32::try_from(out.len() - start).expect("a block is under 4 GiB"));
        }
        let paid = entry.line.paid_order_id.unwrap_or_default();
        let (json, flag) = payload(&entry.line);
        out.extend_from_slice(&entry.line.event_id.to_be_bytes());
        out.extend_from_slice(&entry.hash.to_be_bytes());
        out.extend_from_slice(
            &u16::try_from(paid.len())
                .expect("ids are short")
                .to_be_bytes(),
        );
        out.extend_from_slice(paid);
        let len = u32::try_from(json.len()).expect("lines are short");
        assert!(len < COMPACT_BIT, "a line is at most 64 KiB");
        out.extend_from_slice(&(len | flag).to_be_bytes());
        out.extend_from_slice(json);
    }
    let block = &mut out[start..];
    let crc = crc_of(block);
    block[CRC_RANGE].copy_from_slice(&crc.to_be_bytes());
}

/// The length of the block at the start of
/// `bytes`, read from its header's count and its entries' length fields;
/// `None` when they do not fit in `bytes` or the block is of another
/// version. Nothing here is trusted until the block's checksum, over exactly
/// this length, passes: it is how recovery finds where a block ends when
/// padding, not another block, follows it.
pub fn plain_len(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC {
        return None;
    }
    if !is_plain(version_of(bytes)) {
        return None;
    }
    let count = be_u32(&bytes[20..24]);
    let mut at = HEADER_BYTES;
    for _ in 0..count {
        at = read_entry(bytes, at)?.1;
    }
    Some(at)
}

/// The entry at `at` of an uncompressed entries section, and where the
/// next one starts; `None` when it runs past the end of `bytes`.
fn read_entry(bytes: &[u8], at: usize) -> Option<(EntryMeta, usize)> {
    let fixed = bytes.get(at..at + 26)?;
    let event_id = u128::from_be_bytes(fixed[..16].try_into().ok()?);
    let hash = be_u64(&fixed[16..24]);
    let paid_len = usize::from(u16::from_be_bytes([fixed[24], fixed[25]]));
    let paid_at = at + 26;
    let paid = (paid_len > 0).then(|| paid_at..paid_at + paid_len);
    let length_at = paid_at + paid_len;
    let length_field = be_u32(bytes.get(length_at..length_at + 4)?);
    let json_at = length_at + 4;
    let json = json_at..json_at + (length_field & !COMPACT_BIT) as usize;
    if json.end > bytes.len() {
        return None;
    }
    let next = json.end;
    let entry = EntryMeta {
        event_id,
        hash,
        paid,
        json,
        compact: length_field & COMPACT_BIT != 0,
    };
    Some((entry, next))
}

/// What an entry stores: the compact form when the line has one, else its
/// canonical JSON; and the flag saying which.
fn payload<'a>(line: &ParsedRef<'a>) -> (&'a [u8], u32) {
    match line.payload {
        Payload::Compact(compact) => (compact, COMPACT_BIT),
        Payload::Json(json) => (json, 0),
    }
}

/// The CRC of a block with its CRC field taken as zero.
fn crc_of(block: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&block[..CRC_RANGE.start]);
    hasher.update(&[0; 4]);
    hasher.update(&block[CRC_RANGE.end..]);
    hasher.finalize()
}

/// Where one event's parts lie inside its block.
#[derive(Clone, Debug)]
pub struct EntryMeta {
    /// The event id.
    pub event_id: u128,
    /// The content hash as stored.
    pub hash: u64,
    /// The paid order id, if any.
    pub paid: Option<Range<usize>>,
    /// The stored payload: canonical JSON, or the compact form.
    pub json: Range<usize>,
    /// Whether the payload is the compact form.
    pub compact: bool,
}

/// A block whose checksum and structure were verified.
pub struct DecodedBlock {
    /// The sequence number of its first event.
    pub first_seq: u64,
    /// When it was appended.
    pub recorded_at: UnixNs,
    /// The header and the (uncompressed) entries section.
    pub bytes: Vec<u8>,
    /// Its events in order.
    pub entries: Vec<EntryMeta>,
}

impl DecodedBlock {
    /// The CRC stored in its header (bytes 4 to 8), already verified.
    pub fn stored_crc(&self) -> u32 {
        self.bytes
            .get(4..8)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .unwrap_or_default()
    }

    /// The sequence number after its last event.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64
    }

    /// The last sequence number it holds.
    pub fn last_seq(&self) -> u64 {
        self.end_seq() - 1
    }

    /// The entry for `seq`, if this block holds it.
    pub fn entry(&self, seq: u64) -> Option<&EntryMeta> {
        let index = seq.checked_sub(self.first_seq)?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// The canonical JSON of an entry (regenerated from its compact form when
    /// it has one; empty if that form is damaged, which the content hash
    /// then reports).
    pub fn json(&self, entry: &EntryMeta) -> Cow<'_, [u8]> {
        BlockBytes(&self.bytes).json(entry)
    }

    /// The stored payload of an entry and whether it is the compact form.
    pub fn payload(&self, entry: &EntryMeta) -> (&[u8], bool) {
        (&self.bytes[entry.json.clone()], entry.compact)
    }

    /// Whether an entry's stored content hash (of its stored payload) is
    /// right.
    pub fn hash_matches(&self, entry: &EntryMeta) -> bool {
        content_hash(self.payload(entry).0) == entry.hash
    }

    /// The paid order id of an entry, if any.
    pub fn paid(&self, entry: &EntryMeta) -> Option<&[u8]> {
        BlockBytes(&self.bytes).paid(entry)
    }

    /// Its bytes, to read its entries' fields with.
    pub(crate) fn view(&self) -> BlockBytes<'_> {
        BlockBytes(&self.bytes)
    }
}

/// The bytes of a plain block (header and entries), whose entries'
/// [`EntryMeta`] ranges point into them: a [`DecodedBlock`]'s, or a block
/// this process encoded and still holds, read in place.
#[derive(Clone, Copy)]
pub(crate) struct BlockBytes<'a>(pub &'a [u8]);

impl<'a> BlockBytes<'a> {
    /// See [`DecodedBlock::json`].
    pub(crate) fn json(self, entry: &EntryMeta) -> Cow<'a, [u8]> {
        self.payload(entry).canonical_json()
    }

    /// The stored payload of an entry.
    pub(crate) fn payload(self, entry: &EntryMeta) -> Payload<'a> {
        let stored = &self.0[entry.json.clone()];
        if entry.compact {
            Payload::Compact(stored)
        } else {
            Payload::Json(stored)
        }
    }

    /// See [`DecodedBlock::paid`].
    pub(crate) fn paid(self, entry: &EntryMeta) -> Option<&'a [u8]> {
        entry.paid.clone().map(|range| &self.0[range])
    }
}

/// Where each entry of a plain block starts, into `offsets` (cleared
/// first); false when `bytes` is not a whole plain block. For the blocks
/// this process encoded and still holds: ingest confirms about one
/// duplicate in a hundred against them, and finding an entry by its offset
/// spares decoding the block whole (about 0.6 MB of entries and a 1 MB copy
/// of its bytes per block).
pub(crate) fn entry_offsets(bytes: &[u8], offsets: &mut Vec<u32>) -> bool {
    offsets.clear();
    if bytes.len() < HEADER_BYTES || &bytes[..4] != MAGIC || !is_plain(version_of(bytes)) {
        return false;
    }
    let count = be_u32(&bytes[20..24]) as usize;
    offsets.reserve(count);
    let mut at = HEADER_BYTES;
    for _ in 0..count {
        let Some((_, next)) = read_entry(bytes, at) else {
            return false;
        };
        let Ok(offset) = u32::try_from(at) else {
            return false;
        };
        offsets.push(offset);
        at = next;
    }
    at == bytes.len()
}

/// The entry starting at `offset` of a plain block (see [`entry_offsets`]).
pub(crate) fn entry_at(bytes: &[u8], offset: u32) -> Option<EntryMeta> {
    read_entry(bytes, offset as usize).map(|(entry, _)| entry)
}

/// Verifies and decodes a block read under `key`. Every failure is a
/// [`StoreError::Corrupt`] naming the block's sequence numbers, as far as they
/// can be known.
/// An owned buffer is decoded in place (a block read from the blocks file is
/// not copied again).
pub fn decode<'a>(key: &[u8], bytes: impl Into<Cow<'a, [u8]>>) -> Result<DecodedBlock, StoreError> {
    decode_bytes(key, bytes.into())
}

/// [`decode`], not generic over what `bytes` was.
fn decode_bytes(key: &[u8], bytes: Cow<'_, [u8]>) -> Result<DecodedBlock, StoreError> {
    let Some(key_seq) = seq_of_key(key) else {
        return Err(StoreError::corrupt_block(
            0,
            1,
            format!("a block key is {} bytes long instead of 8", key.len()),
        ));
    };
    // Until the checksum passes, the count in the header is not trusted, so
    // the error names the first sequence number only.
    let corrupt = |detail: String| StoreError::corrupt_block(key_seq, 1, detail);
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(format!(
            "the block is {} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if &bytes[..4] != MAGIC {
        return Err(corrupt(
            "the block does not start with the block magic".into(),
        ));
    }
    let stored_crc = be_u32(&bytes[CRC_RANGE]);
    let actual_crc = crc_of(&bytes);
    if stored_crc != actual_crc {
        // The count in a damaged block may itself be damaged; it is still the
        // best guess of which events are lost, when it is plausible.
        let claimed = u64::from(be_u32(&bytes[20..24]));
        let plausible = claimed >= 1 && claimed <= (bytes.len() / 30) as u64;
        return Err(StoreError::corrupt_block(
            key_seq,
            if plausible { claimed } else { 1 },
            format!("checksum mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})"),
        ));
    }
    let version = version_of(&bytes);
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "block format version {version} is not one this build reads (only {FORMAT_VERSION})"
        )));
    }
    let bytes: Vec<u8> = bytes.into_owned();
    let first_seq = be_u64(&bytes[12..20]);
    let count = be_u32(&bytes[20..24]);
    let recorded_at = UnixNs(be_u64(&bytes[24..32]) as i64);
    let corrupt = |detail: String| StoreError::corrupt_block(key_seq, u64::from(count), detail);
    if first_seq != key_seq {
        return Err(corrupt(format!(
            "the block header says it starts at sequence number {first_seq}"
        )));
    }
    if first_seq == 0 || count == 0 {
        return Err(corrupt(format!(
            "impossible header: first sequence number {first_seq}, {count} events"
        )));
    }
    // Each entry takes at least 30 bytes, which bounds the allocation below by
    // the size of the value actually read.
    let mut entries = Vec::with_capacity((count as usize).min(bytes.len() / 30));
    let mut at = HEADER_BYTES;
    for index in 0..count {
        let seq = first_seq + u64::from(index);
        let truncated = || {
            StoreError::corrupt_block(
                key_seq,
                u64::from(count),
                format!("the entry of sequence number {seq} runs past the end of the block"),
            )
        };
        let (entry, next) = read_entry(&bytes, at).ok_or_else(truncated)?;
        entries.push(entry);
        at = next;
    }
    if at != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes follow the last entry",
            bytes.len() - at
        )));
    }
    Ok(DecodedBlock {
        first_seq,
        recorded_at,
        bytes,
        entries,
    })
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut out = [0; 4];
    out.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(out)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(out)
}

/// The most bytes one stored block may take: a locator claiming more is
/// damage, not a reason to allocate.
pub(crate) const MAX_BLOCK_BYTES: u32 = 512 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use penalty_core::event::{parse_line, ParsedLine};

    fn lines() -> Vec<ParsedLine> {
        [
            r#"{"event_id":"0b6f3c1e-6a53-4f43-9f0e-2d1c7f4a9b10","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O1","shop_id":"S1","product_id":"P1","amount_fen":19900}"#,
            r#"{"event_id":"5d0c2a8e-0f7e-4b8e-8d4a-3a6b1f2c9e77","type":"shipped","at":"2026-03-05T12:00:00+08:00","order_id":"O1","tracking_no":"SF1234567890","carrier":"SF"}"#,
        ]
        .iter()
        .map(|l| parse_line(l.as_bytes()).expect("valid test line"))
        .collect()
    }

    /// The lines as entries to encode, each with its content hash.
    fn entries(lines: &[ParsedLine]) -> Vec<NewEntry<'_>> {
        lines
            .iter()
            .map(|line| NewEntry {
                line: line.as_parsed(),
                hash: content_hash(&line.canonical_json),
            })
            .collect()
    }

    fn encoded() -> Vec<u8> {
        encode(7, UnixNs(42), &entries(&lines()))
    }

    #[test]
    fn round_trip() {
        let lines = lines();
        let block = decode(&block_key(7), encoded()).expect("decodes");
        assert_eq!(block.first_seq, 7);
        assert_eq!(block.last_seq(), 8);
        assert_eq!(block.recorded_at, UnixNs(42));
        let first = block.entry(7).expect("seq 7");
        assert_eq!(block.json(first), lines[0].canonical_json.as_slice());
        assert_eq!(block.paid(first), Some(&b"O1"[..]));
        let second = block.entry(8).expect("seq 8");
        assert_eq!(block.paid(second), None);
        assert_eq!(second.event_id, lines[1].event.event_id);
        assert_eq!(second.hash, content_hash(&lines[1].canonical_json));
        assert!(block.entry(9).is_none());
        assert!(block.entry(6).is_none());
    }

    /// `encoded()` under another format version, with a checksum that
    /// holds: versions 1 and 2 were written only during development.
    fn encoded_as_version(version: u16) -> Vec<u8> {
        let mut out = encoded();
        out[8..10].copy_from_slice(&version.to_be_bytes());
        let crc = crc_of(&out);
        out[CRC_RANGE].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn blocks_of_another_format_version_are_named_as_damage() {
        for version in [0, 1, 2, 4] {
            let Err(error) = decode(&block_key(7), encoded_as_version(version)) else {
                panic!("version {version} is read");
            };
            assert_eq!(error.corrupt_seq(), Some(7), "{error}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("block format version {version}")),
                "{error}"
            );
            assert_eq!(plain_len(&encoded_as_version(version)), None);
        }
        assert_eq!(plain_len(&encoded()), Some(encoded().len()));
    }

    /// Reading an entry of a held block in place, by its offset, gives
    /// what decoding the block gives; anything but a whole plain block is
    /// refused.
    #[test]
    fn entries_read_in_place_equal_the_decoded_ones() {
        let bytes = encoded();
        let decoded = decode(&block_key(7), bytes.clone()).expect("decodes");
        let mut offsets = vec![99];
        assert!(entry_offsets(&bytes, &mut offsets));
        assert_eq!(offsets.len(), decoded.entries.len());
        for (&offset, expected) in offsets.iter().zip(&decoded.entries) {
            let entry = entry_at(&bytes, offset).expect("an entry");
            assert_eq!(entry.json, expected.json);
            assert_eq!(
                (entry.event_id, entry.hash),
                (expected.event_id, expected.hash)
            );
            assert_eq!(BlockBytes(&bytes).json(&entry), decoded.json(expected));
            assert_eq!(BlockBytes(&bytes).paid(&entry), decoded.paid(expected));
        }
        // The offsets noted while encoding are these, and the block the
        // same; into a buffer that already holds something, as the writer's
        // aligned buffers do.
        let lines = lines();
        let mut out = vec![0xaa; 5];
        let mut noted = vec![1, 2, 3];
        encode_noting_offsets(7, UnixNs(42), &entries(&lines), &mut out, Some(&mut noted));
        assert_eq!(&out[5..], &bytes[..]);
        assert_eq!(noted, offsets);

        assert!(!entry_offsets(&bytes[..bytes.len() - 1], &mut offsets));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!entry_offsets(&longer, &mut offsets));
        assert!(!entry_offsets(&encoded_as_version(1), &mut offsets));
        assert!(!entry_offsets(b"PLGB", &mut offsets));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let good = encoded();
        for position in 0..good.len() {
            let mut bad = good.clone();
            bad[position] ^= 0x10;
            let error = decode(&block_key(7), &bad)
                .err()
                .unwrap_or_else(|| panic!("flip at {position} went unnoticed"));
            assert_eq!(error.corrupt_seq(), Some(7), "at {position}: {error}");
        }
    }

    #[test]
    fn truncation_and_wrong_key_are_detected() {
        let good = encoded();
        for len in [0, 10, 31, 32, good.len() - 1] {
            assert!(decode(&block_key(7), &good[..len]).is_err());
        }
        assert!(decode(&block_key(8), &good).is_err());
        assert!(decode(b"short", &good).is_err());
    }

    #[test]
    fn locator_round_trip_and_is_never_a_block() {
        let block = encoded();
        let locator = Locator::of(&block, 1 << 40, 2);
        assert_eq!(Locator::decode(&locator.encode()), Some(locator));
        assert_eq!(locator.end(), (1 << 40) + block.len() as u64);
        assert_eq!(locator.crc, be_u32(&block[CRC_RANGE]));
        assert_eq!(Locator::decode(&block), None);
        assert_eq!(Locator::decode(&locator.encode()[..20]), None);
    }

    proptest::proptest! {
        /// Side by side, each input hashes as it does alone, whatever the
        /// lengths (shorter, longer, equal, multiples of eight or not).
        #[test]
        fn content_hashes_are_each_content_hash(
            inputs in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..80), 4)
        ) {
            let four = [&inputs[0][..], &inputs[1][..], &inputs[2][..], &inputs[3][..]];
            proptest::prop_assert_eq!(content_hashes(four), four.map(content_hash));
            let two = [&inputs[0][..], &inputs[3][..]];
            proptest::prop_assert_eq!(content_hashes(two), two.map(content_hash));
            proptest::prop_assert_eq!(content_hashes([&inputs[1][..]]), [content_hash(&inputs[1])]);
        }
    }

    /// Every length of a short last word, each byte value in each place:
    /// the loads read the zero-padded word that a byte copy makes.
    #[test]
    fn a_short_word_is_its_bytes_padded_with_zeros() {
        let padded = |rest: &[u8]| {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(word)
        };
        let bytes: Vec<u8> = (0..=255u8).collect();
        for len in 0..8 {
            for start in 0..bytes.len() - len {
                let rest = &bytes[start..start + len];
                assert_eq!(short_word(rest), padded(rest), "{rest:?}");
            }
            let high = [0xffu8; 7];
            assert_eq!(short_word(&high[..len]), padded(&high[..len]));
        }
    }

    #[test]
    fn content_hash_is_stable() {
        // The hash is stored on disk, so its values must never change.
        // The expected values come from an independent implementation.
        assert_eq!(content_hash(b""), 0x7acd_bb98_b134_4213);
        assert_eq!(content_hash(b"a"), 0x27a0_2e16_8da2_1aa0);
        assert_eq!(content_hash(br#"{"event_id":"x"}"#), 0xf12d_ca41_1cc5_58c1);
        // Whole words and a short last one.
        assert_eq!(content_hash(b"0123456789abc"), 0xffac_035f_7033_99de);
        assert_eq!(
            content_hash(br#"{"amount_fen":19900,"at":"2026-03-01T10:00:00+08:00"}"#),
            0x4e81_5257_f5e8_fe59
        );
    }
}
