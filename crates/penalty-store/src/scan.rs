//! Finding whole blocks in the blocks file by reading it: where each block
//! ends (its own length, checked by its checksum; after damage, the next
//! block magic), and the blocks that follow one another in sequence. What
//! `recover` rebuilds sled's locators from, what `EventLog::open` finds
//! after sled's last locator, and how a reader tells that a file starts
//! with a block. Below `log`, `reader` and `recover`, it reads only.

use std::os::unix::fs::FileExt;

use crate::block::{self, block_key, Locator, MAGIC, MAX_BLOCK_BYTES};
use crate::direct::padded_end;

/// How much of the blocks file is read at a time while looking for a block's
/// end.
const READ_BYTES: usize = 4 << 20;

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
