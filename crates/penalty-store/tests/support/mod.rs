//! The fixtures of penalty-store's tests, in one place: event lines, blocks
//! written through the log or by hand, and the ways the tests reach past the
//! log into a closed data directory (sled's locators, the blocks file) to
//! damage it as a crash or a disk error would.

use std::path::Path;
use std::time::{Duration, Instant as WallClock};

use penalty_core::event::{format_event_id, parse_line, ParsedLine};
use penalty_core::time::UnixNs;
use penalty_store::block::Locator;
use penalty_store::{AppendOutcome, EventLog, BLOCKS_FILE, BLOCKS_TREE, SLED_DIR};

pub fn id(n: u128) -> String {
    format_event_id(0x0b6f_3c1e_6a53_4f43_9f0e_0000_0000_0000 + n)
}

pub fn paid_line(n: u128, order: &str) -> String {
    format!(
        r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"{order}","shop_id":"S1","product_id":"P1","amount_fen":19900}}"#,
        id(n)
    )
}

pub fn shipped_line(n: u128, order: &str, tracking: &str) -> String {
    format!(
        r#"{{"event_id":"{}","type":"shipped","at":"2026-03-05T12:00:00+08:00","order_id":"{order}","tracking_no":"{tracking}"}}"#,
        id(n)
    )
}

pub fn parsed(line: &str) -> ParsedLine {
    parse_line(line.as_bytes()).unwrap()
}

/// Appends one block of `paid` lines, each an event number and its order.
pub fn append_paid(log: &mut EventLog, lines: &[(u128, &str)], at: i64) -> Vec<AppendOutcome> {
    let lines: Vec<ParsedLine> = lines
        .iter()
        .map(|&(n, order)| parsed(&paid_line(n, order)))
        .collect();
    log.append_batch(&lines, UnixNs(at)).unwrap()
}

pub fn seqs(outcomes: &[AppendOutcome]) -> Vec<AppendOutcome> {
    outcomes.to_vec()
}

pub fn all_events(log: &EventLog) -> Vec<penalty_store::StoredEvent> {
    log.iter_from(1).collect::<Result<Vec<_>, _>>().unwrap()
}

/// Folds the whole log into a projection and saves it (`projection.snap`
/// and `projection.parts` at the log's end, as an ingest does at its end);
/// the projection, for a test that reads its ledger.
pub fn save_projection(
    log: &EventLog,
    policy: &penalty_core::Policy,
) -> penalty_store::projection::Projection {
    let (projection, _) = penalty_store::projection::open(log, policy, false).unwrap();
    projection.save(log).unwrap();
    projection
}

/// Opens a closed log's sled database directly. A database closed a moment
/// ago in this process may hold its file lock a little longer (sled frees
/// it later), so the lock is waited for, as `EventLog::open` does.
pub fn open_sled(dir: &Path) -> sled::Db {
    try_open_sled(dir).unwrap()
}

/// [`open_sled`]'s answer, whatever it is once the lock is free.
pub fn try_open_sled(dir: &Path) -> sled::Result<sled::Db> {
    let started = WallClock::now();
    loop {
        match sled::open(dir.join(SLED_DIR)) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Flips one bit of the block starting at `first_seq` in the blocks file of
/// a closed log, `position_from_end` bytes before the block's end.
pub fn flip_block_byte(dir: &Path, first_seq: u64, position_from_end: usize) {
    let locator = {
        let db = open_sled(dir);
        let tree = db.open_tree(BLOCKS_TREE).unwrap();
        let value = tree.get(first_seq.to_be_bytes()).unwrap().unwrap();
        Locator::decode(&value).unwrap()
    };
    let path = dir.join(BLOCKS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[locator.end() as usize - position_from_end] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

/// Where the last located block of a closed log ends in the blocks file
/// (padding after it, from a direct write, is not part of it).
pub fn last_block_end(dir: &Path) -> u64 {
    locators(dir).last().unwrap().end()
}

/// The block locators of a closed log, in sequence order.
pub fn locators(dir: &Path) -> Vec<Locator> {
    let db = open_sled(dir);
    let tree = db.open_tree(BLOCKS_TREE).unwrap();
    tree.iter()
        .values()
        .map(|value| Locator::decode(&value.unwrap()).unwrap())
        .collect()
}

/// A data directory whose blocks file holds `blocks` (first seq, lines),
/// written by hand, bypassing the log's checks, one after the other, with
/// the last acknowledged in the head journal and nothing in sled: the log
/// locates them from the blocks file, as after a crash that lost sled.
pub fn store_with_blocks(dir: &Path, blocks: &[(u64, Vec<ParsedLine>)]) {
    let encoded: Vec<(u64, u64, Vec<u8>)> = blocks
        .iter()
        .map(|(first_seq, lines)| {
            (
                *first_seq,
                first_seq + lines.len() as u64 - 1,
                block_of(*first_seq, UnixNs(7), lines),
            )
        })
        .collect();
    store_blocks(dir, &encoded);
}

/// Writes encoded blocks (first seq, last seq, bytes) as the blocks file,
/// and the last one's end to the head journal.
pub fn store_blocks(dir: &Path, blocks: &[(u64, u64, Vec<u8>)]) {
    use penalty_store::head::{Head, HeadRecord};
    std::fs::create_dir_all(dir).unwrap();
    let bytes: Vec<u8> = blocks
        .iter()
        .flat_map(|(_, _, block)| block.clone())
        .collect();
    std::fs::write(dir.join(BLOCKS_FILE), bytes).unwrap();
    let (first_seq, last_seq, block) = blocks.last().unwrap();
    Head::open(dir)
        .unwrap()
        .record(HeadRecord {
            last_seq: *last_seq,
            block_first_seq: *first_seq,
            block_crc: u32::from_be_bytes(block[4..8].try_into().unwrap()),
        })
        .unwrap();
}

/// `lines` as one block, as the log encodes them.
pub fn block_of(first_seq: u64, recorded_at: UnixNs, lines: &[ParsedLine]) -> Vec<u8> {
    let entries: Vec<penalty_store::block::NewEntry<'_>> = lines
        .iter()
        .map(|line| penalty_store::block::NewEntry {
            line: line.as_parsed(),
            hash: penalty_store::block::content_hash(line.as_parsed().payload.bytes()),
        })
        .collect();
    penalty_store::block::encode(first_seq, recorded_at, &entries)
}

/// A data directory with three blocks; an order id holds the block magic,
/// so that the search for a block's end meets a false start.
pub fn three_blocks(dir: &Path) -> Vec<penalty_store::StoredEvent> {
    let mut log = EventLog::open(dir).unwrap();
    append_paid(&mut log, &[(1, "O1"), (2, "PLGB2")], 1);
    log.append_batch(&[parsed(&shipped_line(3, "PLGB2", "SF1"))], UnixNs(2))
        .unwrap();
    append_paid(&mut log, &[(4, "O4")], 3);
    all_events(&log)
}

/// Removes the last `count` block locators from a closed log's sled, as a
/// crash before sled's periodic flush leaves it.
pub fn forget_last_locators(dir: &Path, count: usize) {
    let db = open_sled(dir);
    let tree = db.open_tree(BLOCKS_TREE).unwrap();
    let keys: Vec<_> = tree.iter().keys().map(|key| key.unwrap()).collect();
    assert!(keys.len() >= count, "the log has {} blocks", keys.len());
    for key in &keys[keys.len() - count..] {
        tree.remove(key).unwrap();
    }
    db.flush().unwrap();
}

/// Appends bytes that start like a block and end early to a closed log's
/// blocks file: an append torn by a crash before it was acknowledged.
/// Returns how many bytes were appended.
pub fn append_torn_block(dir: &Path) -> u64 {
    const TORN: &[u8] = b"PLGB and then nothing";
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(BLOCKS_FILE))
        .unwrap();
    std::io::Write::write_all(&mut file, TORN).unwrap();
    TORN.len() as u64
}

/// Cuts a closed log's blocks file to `len` bytes, as a lost write would.
pub fn cut_blocks_file(dir: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(BLOCKS_FILE))
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Puts `locator` under the key of sequence number `key_seq` in a closed
/// log's sled, or removes what is there (`None`), as damage to sled would.
pub fn set_locator(dir: &Path, key_seq: u64, locator: Option<Locator>) {
    let db = open_sled(dir);
    let tree = db.open_tree(BLOCKS_TREE).unwrap();
    let key = penalty_store::block::block_key(key_seq);
    match locator {
        Some(locator) => tree.insert(key, &locator.encode()[..]).map(drop).unwrap(),
        None => tree.remove(key).map(drop).unwrap(),
    }
    db.flush().unwrap();
}
