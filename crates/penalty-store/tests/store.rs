//! The integration tests of penalty-store: the event log, checkpoints, the
//! directory lock and the ingest pipeline, against a real sled database in a
//! temporary directory.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock};

use penalty_core::event::{ParsedLine, Reject, MAX_LINE_BYTES};
use penalty_core::time::UnixNs;
use penalty_store::block::Locator;
use penalty_store::ingest::{
    ingest, AppendedEvent, IngestCounts, IngestObserver, IngestOptions, RejectsFile, RejectsSink,
    REJECT_RAW_PREFIX_BYTES,
};
use penalty_store::tail_index::TAIL_INDEX_FILE;
use penalty_store::{AppendOutcome, EventLog, StoreError, BLOCKS_FILE, BLOCKS_TREE, SLED_DIR};
use proptest::prelude::*;

mod support;
use support::*;

// ---------------------------------------------------------------------------
// Helpers

/// Taken by the tests that allocate tens of megabytes, so that the memory
/// bound of the huge-line test measures ingest alone.
static MEMORY_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records what ingest reports: the rejected lines and their syncs, and
/// the events and progress.
#[derive(Default)]
struct Recorder {
    rejects: KeptRejects,
    observed: Observed,
}

/// Records the rejected lines ingest reports, and how often it syncs them.
#[derive(Default)]
struct KeptRejects {
    lines: Vec<(u64, String, Vec<u8>, u64)>,
    syncs: u64,
}

impl RejectsSink for KeptRejects {
    fn rejected(
        &mut self,
        line_no: u64,
        reason: &Reject,
        raw: &[u8],
        raw_bytes: u64,
    ) -> Result<(), StoreError> {
        self.lines
            .push((line_no, reason.code(), raw.to_vec(), raw_bytes));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.syncs += 1;
        Ok(())
    }
}

/// Records the events ingest reports durable (with when), and its progress.
#[derive(Default)]
struct Observed {
    appended: Vec<(u64, WallClock)>,
    progress: Vec<(IngestCounts, u64)>,
}

impl IngestObserver for Observed {
    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        let now = WallClock::now();
        self.appended.extend(events.iter().map(|e| (e.seq, now)));
        Ok(())
    }

    fn progress(&mut self, counts: &IngestCounts, bytes_read: u64) {
        self.progress.push((*counts, bytes_read));
    }
}

fn ingest_bytes(
    log: &mut EventLog,
    input: Vec<u8>,
    rejects: &mut dyn RejectsSink,
    observer: &mut dyn IngestObserver,
) -> IngestCounts {
    ingest(
        log,
        std::io::Cursor::new(input),
        &IngestOptions::default(),
        rejects,
        observer,
    )
    .unwrap()
}

/// `count` paid lines of distinct ids and orders, one per line.
fn paid_lines(count: u128) -> String {
    (0..count)
        .map(|n| paid_line(n, &format!("O{n}")) + "\n")
        .collect()
}

/// Ingests `input` in blocks of at most `batch` lines.
fn ingest_in_batches(
    log: &mut EventLog,
    input: &str,
    batch: usize,
    rejects: &mut dyn RejectsSink,
    observer: &mut dyn IngestObserver,
) -> Result<IngestCounts, StoreError> {
    let options = IngestOptions {
        max_batch_events: batch,
        ..IngestOptions::default()
    };
    ingest(
        log,
        std::io::Cursor::new(input.as_bytes().to_vec()),
        &options,
        rejects,
        observer,
    )
}

fn assert_adds_up(counts: &IngestCounts) {
    assert_eq!(
        counts.read,
        counts.appended + counts.duplicates + counts.rejected,
        "{counts:?}"
    );
}

// ---------------------------------------------------------------------------
// The log

#[test]
fn append_and_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 0);
    assert!(all_events(&log).is_empty());

    let items = vec![
        parsed(&paid_line(1, "O1")),
        parsed(&shipped_line(2, "O1", "T1")),
        parsed(&paid_line(3, "O2")),
    ];
    let outcomes = log.append_batch(&items, UnixNs(1_000)).unwrap();
    assert_eq!(
        outcomes,
        vec![
            AppendOutcome::Appended { seq: 1 },
            AppendOutcome::Appended { seq: 2 },
            AppendOutcome::Appended { seq: 3 },
        ]
    );
    let more = vec![parsed(&shipped_line(4, "O2", "T2"))];
    log.append_batch(&more, UnixNs(2_000)).unwrap();
    assert_eq!(log.last_seq().unwrap(), 4);

    let events = all_events(&log);
    assert_eq!(events.len(), 4);
    for (event, item) in events.iter().zip(items.iter().chain(more.iter())) {
        assert_eq!(event.json(), item.canonical_json);
        assert_eq!(event.event_id, item.event.event_id);
        assert_eq!(event.event().unwrap(), item.event);
    }
    assert_eq!(events[2].recorded_at, UnixNs(1_000));
    assert_eq!(events[3].recorded_at, UnixNs(2_000));

    // Starting inside a block, at a block boundary, and past the end.
    let from_two: Vec<u64> = log.iter_from(2).map(|e| e.unwrap().seq).collect();
    assert_eq!(from_two, vec![2, 3, 4]);
    let from_four: Vec<u64> = log.iter_from(4).map(|e| e.unwrap().seq).collect();
    assert_eq!(from_four, vec![4]);
    assert_eq!(log.iter_from(5).count(), 0);

    assert_eq!(log.get(3).unwrap().unwrap().json(), items[2].canonical_json);
    assert!(log.get(0).unwrap().is_none());
    assert!(log.get(5).unwrap().is_none());
    assert!(log
        .append_batch::<ParsedLine>(&[], UnixNs(3_000))
        .unwrap()
        .is_empty());

    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.blocks, report.events, report.last_seq), (2, 4, 4));
}

#[test]
fn sequence_numbers_are_gapless_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_paid(&mut log, &[(1, "O1"), (2, "O2")], 0);
    }
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 2);
    let outcomes = append_paid(&mut log, &[(3, "O3"), (4, "O4"), (5, "O5")], 0);
    assert_eq!(outcomes[0], AppendOutcome::Appended { seq: 3 });
    assert_eq!(outcomes[2], AppendOutcome::Appended { seq: 5 });
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    let seqs: Vec<u64> = all_events(&log).iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn duplicates_conflicts_and_second_payments_within_a_batch_and_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let original = paid_line(1, "O1");
    // The same content with other whitespace, key order and escapes.
    let same_content = format!(
        r#" {{ "amount_fen": 19900, "type":"paid", "shop_id":"S1", "product_id":"P\u0031", "order_id":"O1", "at":"2026-03-01T10:00:00+08:00", "event_id":"{}" }}"#,
        id(1)
    );
    let other_content = original.replace("19900", "19901");
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        let outcomes = log
            .append_batch(
                &[
                    parsed(&original),
                    parsed(&same_content),
                    parsed(&other_content),
                    parsed(&paid_line(2, "O1")),
                    parsed(&shipped_line(3, "O1", "T1")),
                    parsed(&shipped_line(3, "O1", "T1")),
                ],
                UnixNs(0),
            )
            .unwrap();
        assert_eq!(
            seqs(&outcomes),
            vec![
                AppendOutcome::Appended { seq: 1 },
                AppendOutcome::Duplicate { seq: 1 },
                AppendOutcome::EventIdConflict { existing_seq: 1 },
                AppendOutcome::OrderAlreadyPaid { paid_seq: 1 },
                AppendOutcome::Appended { seq: 2 },
                AppendOutcome::Duplicate { seq: 2 },
            ]
        );
        assert_eq!(outcomes[2].reject(), Some(Reject::EventIdConflict));
        assert_eq!(outcomes[3].reject(), Some(Reject::OrderAlreadyPaid));
        assert_eq!(outcomes[1].reject(), None);
    }
    // After a reopen the index is rebuilt from disk: the same answers.
    let mut log = EventLog::open(dir.path()).unwrap();
    let with_extra_field = shipped_line(3, "O1", "T1").replace('}', r#","carrier":"SF"}"#);
    let outcomes = log
        .append_batch(
            &[
                parsed(&same_content),
                parsed(&other_content),
                parsed(&paid_line(4, "O1")),
                parsed(&with_extra_field),
                parsed(&paid_line(5, "O2")),
                parsed(&paid_line(6, "O2")),
            ],
            UnixNs(0),
        )
        .unwrap();
    assert_eq!(
        seqs(&outcomes),
        vec![
            AppendOutcome::Duplicate { seq: 1 },
            AppendOutcome::EventIdConflict { existing_seq: 1 },
            AppendOutcome::OrderAlreadyPaid { paid_seq: 1 },
            AppendOutcome::EventIdConflict { existing_seq: 2 },
            AppendOutcome::Appended { seq: 3 },
            AppendOutcome::OrderAlreadyPaid { paid_seq: 3 },
        ]
    );
    // A batch of nothing new writes nothing.
    let outcomes = log.append_batch(&[parsed(&original)], UnixNs(0)).unwrap();
    assert_eq!(outcomes, vec![AppendOutcome::Duplicate { seq: 1 }]);
    assert_eq!(log.last_seq().unwrap(), 3);
    assert_eq!(log.verify().unwrap().blocks, 2);
}

#[test]
fn a_flipped_byte_in_a_block_is_detected_and_never_used() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_paid(&mut log, &[(1, "O1"), (2, "O2")], 0);
        append_paid(&mut log, &[(3, "O3"), (4, "O4")], 0);
    }
    // A bit inside the JSON of event 4, in the block that starts at 3.
    flip_block_byte(dir.path(), 3, 10);

    // A normal open refuses a log whose acknowledged last block is damaged,
    // naming it; the audit's open reports what is wrong.
    let refused = EventLog::open(dir.path()).unwrap_err();
    assert_eq!(refused.corrupt_seq(), Some(3), "{refused}");
    let mut log = EventLog::open_for_audit(dir.path()).unwrap();
    let report = log.verify().unwrap();
    let problem = report.problem.clone().unwrap();
    assert_eq!(problem.seq, 3, "{problem:?}");
    assert!(problem.detail.contains("checksum"), "{problem:?}");
    assert_eq!((report.blocks, report.events, report.last_seq), (1, 2, 2));

    let read: Vec<Result<u64, StoreError>> = log.iter_from(1).map(|e| e.map(|e| e.seq)).collect();
    assert_eq!(
        read.len(),
        3,
        "two good events, then the error, then the end"
    );
    assert_eq!(read[0].as_ref().unwrap(), &1);
    assert_eq!(read[1].as_ref().unwrap(), &2);
    let error = read[2].as_ref().unwrap_err();
    assert_eq!(error.corrupt_seq(), Some(3));
    let message = error.to_string();
    assert!(
        message.contains("3 to 4") && message.contains("backup"),
        "{message}"
    );

    assert!(log.get(4).is_err());
    assert!(log.get(1).unwrap().is_some());
    // Appending needs the index, which is never built from a damaged block.
    let append = log.append_batch(&[parsed(&paid_line(5, "O5"))], UnixNs(0));
    assert!(matches!(
        append,
        Err(StoreError::Corrupt { first_seq: 3, .. })
    ));
}

#[test]
fn a_block_written_but_never_located_is_dropped_and_overwritten() {
    // A crash after the block reached the blocks file but before its locator
    // reached sled: the block was never acknowledged. The log must read as if
    // it was never written, and the next append must take its place.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BLOCKS_FILE);
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_paid(&mut log, &[(1, "O1")], 0);
    }
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"PLGB half of a block that was never located")
            .unwrap();
    }
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(all_events(&log).len(), 1);
    assert!(log.verify().unwrap().is_ok());
    let outcomes = append_paid(&mut log, &[(2, "O2")], 0);
    assert_eq!(outcomes, vec![AppendOutcome::Appended { seq: 2 }]);
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    let events = all_events(&log);
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(log.verify().unwrap().is_ok());
    let blocks = std::fs::read(&path).unwrap();
    assert!(
        !blocks
            .windows(b"half of a block".len())
            .any(|window| window == b"half of a block"),
        "the leftover bytes were dropped or overwritten, not kept"
    );
}

#[test]
fn a_truncated_blocks_file_is_reported_naming_the_lost_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_paid(&mut log, &[(1, "O1")], 0);
        append_paid(&mut log, &[(2, "O2"), (3, "O3")], 0);
    }
    let len = last_block_end(dir.path());
    cut_blocks_file(dir.path(), len - 5);
    let refused = EventLog::open(dir.path()).unwrap_err();
    assert_eq!(refused.corrupt_seq(), Some(2), "{refused}");
    assert!(refused.to_string().contains("events 2 to 3"), "{refused}");
    let log = EventLog::open_for_audit(dir.path()).unwrap();
    let report = log.verify().unwrap();
    assert_eq!(report.problem.unwrap().seq, 2);
    assert_eq!(report.last_seq, 1);
}

#[test]
fn blocks_that_sled_does_not_locate_are_found_in_the_blocks_file_and_appended_to() {
    // The blocks file and the head journal locate the blocks; sled's
    // locators are derived from them.
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![parsed(&paid_line(1, "O1")), parsed(&paid_line(2, "O2"))];
    store_with_blocks(dir.path(), &[(1, lines.clone())]);
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 2);
    let outcomes = append_paid(&mut log, &[(1, "O1"), (3, "O3")], 8);
    assert_eq!(
        outcomes,
        vec![
            AppendOutcome::Duplicate { seq: 1 },
            AppendOutcome::Appended { seq: 3 }
        ]
    );
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    let events = all_events(&log);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[1].json(), lines[1].canonical_json);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.blocks, 2);
}

/// A block kept inside sled as its value (as builds during development
/// did) instead of a locator is damage, named with its sequence number.
#[test]
fn a_block_kept_inside_sled_is_named_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let block = block_of(1, UnixNs(7), &[parsed(&paid_line(1, "O1"))]);
    let db = open_sled(dir.path());
    let tree = db.open_tree(BLOCKS_TREE).unwrap();
    tree.insert(1u64.to_be_bytes(), block).unwrap();
    db.flush().unwrap();
    drop(tree);
    drop(db);
    let error = match EventLog::open(dir.path()) {
        Err(error) => error,
        Ok(log) => match log.verify() {
            Err(error) => error,
            Ok(report) => {
                let problem = report.problem.expect("the audit names the block");
                assert_eq!(problem.seq, 1, "{problem:?}");
                return;
            }
        },
    };
    assert_eq!(error.corrupt_seq(), Some(1), "{error}");
}

/// `verify` checks each entry's content hash, of its stored payload: a
/// hash of the canonical JSON (where the compact form is stored) is a
/// problem, although the block's checksum is good.
#[test]
fn verify_checks_content_hashes_of_the_stored_payload() {
    use penalty_store::block::{content_hash, encode, NewEntry};
    let lines = [
        parsed(&paid_line(1, "O1")),
        parsed(&shipped_line(2, "O1", "T1")),
    ];
    assert!(lines.iter().all(|line| line.compact.is_some()));
    for hash_of_json in [false, true] {
        let entries: Vec<NewEntry<'_>> = lines
            .iter()
            .map(|line| NewEntry {
                line: line.as_parsed(),
                hash: content_hash(if hash_of_json {
                    &line.canonical_json
                } else {
                    line.as_parsed().payload.bytes()
                }),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        store_blocks(dir.path(), &[(1, 2, encode(1, UnixNs(7), &entries))]);
        let report = EventLog::open(dir.path()).unwrap().verify().unwrap();
        assert_eq!(report.is_ok(), !hash_of_json, "{hash_of_json}: {report:?}");
        if hash_of_json {
            let problem = report.problem.expect("a problem");
            assert_eq!(problem.seq, 1);
            assert!(
                problem.detail.contains("content hash"),
                "{}",
                problem.detail
            );
        }
    }
}

#[test]
fn a_log_repeating_an_event_id_or_a_payment_is_refused_at_the_first_append() {
    // Ingest never writes these; a log that holds them is damaged, and the
    // index built from it says where.
    for (second, detail) in [
        (
            shipped_line(1, "O1", "T1"),
            "sequence number 3 repeats the event id of 1",
        ),
        (
            paid_line(9, "O1"),
            "sequence number 3 pays again for the order paid at 1",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        store_with_blocks(
            dir.path(),
            &[
                (
                    1,
                    vec![parsed(&paid_line(1, "O1")), parsed(&paid_line(2, "O2"))],
                ),
                (3, vec![parsed(&second)]),
            ],
        );
        let mut log = EventLog::open(dir.path()).unwrap();
        let refused = log
            .append_batch(&[parsed(&paid_line(5, "O5"))], UnixNs(8))
            .unwrap_err();
        assert_eq!(refused.corrupt_seq(), Some(3), "{refused}");
        assert!(refused.to_string().contains(detail), "{refused}");
    }
}

/// The snapshot file: written at a block's end, resumed from by a reader
/// (which folds only the blocks after it), and, when damaged or not of this
/// log, ignored with a warning for a replay that gives the same digest.
#[test]
fn snapshots_are_resumed_from_and_damage_falls_back_to_a_replay() {
    use penalty_store::projection::{self, Origin};
    use penalty_store::reader::LogReader;
    let dir = tempfile::tempdir().unwrap();
    let policy = penalty_core::Policy::default();
    let as_of = UnixNs::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_paid(&mut log, &[(1, "O1"), (2, "O2")], 1);
    append_paid(&mut log, &[(3, "O3")], 2);
    save_projection(&log, &policy);
    append_paid(&mut log, &[(4, "O4"), (5, "O5")], 3);
    let reader = LogReader::open(dir.path()).unwrap();
    let opened = projection::open_read(&reader, &policy, true, false).unwrap();
    assert_eq!(opened.origin, Origin::Checkpoint { seq: 3, tail: 2 });
    assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    let (replayed, _) = projection::replay_read(&reader, &policy, None).unwrap();
    assert_eq!(
        opened.projection.ledger.digest(as_of),
        replayed.ledger.digest(as_of)
    );
    // A flipped byte in the snapshot.
    let path = dir.path().join(penalty_store::snapshot::SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 4;
    std::fs::write(&path, &bytes).unwrap();
    let opened = projection::open_read(&reader, &policy, true, false).unwrap();
    assert_eq!(opened.origin, Origin::Replay { events: 5 });
    assert!(
        opened
            .warnings
            .iter()
            .any(|w| w.contains("checksum mismatch")),
        "{:?}",
        opened.warnings
    );
    assert_eq!(
        opened.projection.ledger.digest(as_of),
        replayed.ledger.digest(as_of)
    );
    drop(log);
    assert!(penalty_store::recover::remove_bad_snapshot(dir.path()).unwrap());
    assert!(!path.exists());
}

/// Ingests `lines` into `log`, keeping and observing nothing.
fn ingest_lines(log: &mut EventLog, lines: &[&str]) {
    let mut input = lines.join("\n");
    input.push('\n');
    ingest_bytes(log, input.into_bytes(), &mut NullRejects, &mut ());
}

/// Drops the rejected lines.
struct NullRejects;

impl RejectsSink for NullRejects {
    fn rejected(&mut self, _: u64, _: &Reject, _: &[u8], _: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The JSON Lines `penalty gen` writes for `orders` orders over `shops`
/// shops from `seed`.
fn generated_text(orders: u64, shops: u64, seed: u64) -> String {
    let mut jsonl = Vec::new();
    penalty_gen::generate(
        &penalty_gen::GenOptions {
            orders,
            shops,
            seed,
        },
        &mut jsonl,
    )
    .unwrap();
    String::from_utf8(jsonl).unwrap()
}

/// Every shop's and order's report, as JSON (or the error's text), from the
/// whole ledger and from the one partition `open_part` reads: equal byte for
/// byte, for generated workloads cut at any point into a partitioned
/// snapshot and a tail (orders whose events straddle the cut, orphans paid
/// in the tail, shops first seen in the tail).
fn assert_parts_answer_as_the_whole(orders: u64, shops: u64, seed: u64, cut_per_mille: usize) {
    assert_sections_answer_as_the_whole(orders, shops, seed, cut_per_mille, None);
}

/// [`assert_parts_answer_as_the_whole`], with the partitioned snapshot
/// written with excerpts of `excerpt_orders` home orders when given (shops
/// of more than twice that many orders have them). Returns how many orders
/// the snapshot puts at home in an excerpt, how many of those an excerpt
/// answered (a ledger without some other order of its shop), and how many
/// are at home in the excerpt of a part's small shops.
fn assert_sections_answer_as_the_whole(
    orders: u64,
    shops: u64,
    seed: u64,
    cut_per_mille: usize,
    excerpt_orders: Option<usize>,
) -> (usize, usize, usize) {
    sections_answer_as_the_whole(orders, shops, seed, cut_per_mille, excerpt_orders, false)
}

/// [`assert_sections_answer_as_the_whole`]; with `follow`, the tail is
/// ingested as `penalty ingest` does, through a follower that writes the
/// tail index, in blocks of 40 lines, and the index is checked sound.
fn sections_answer_as_the_whole(
    orders: u64,
    shops: u64,
    seed: u64,
    cut_per_mille: usize,
    excerpt_orders: Option<usize>,
    follow: bool,
) -> (usize, usize, usize) {
    use penalty_store::parts::{self, Parts};
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let text = generated_text(orders, shops, seed);
    let lines: Vec<&str> = text.lines().collect();
    // At least one line, so that there is a snapshot to read parts of.
    let cut = (lines.len() * cut_per_mille / 1000).max(1);
    let dir = tempfile::tempdir().unwrap();
    // With excerpts, a daily cap (R5) of one and a half deductions, so that
    // the cap binds on most settle days and an order's charge depends on
    // the other orders of its days.
    let policy = match excerpt_orders {
        Some(_) => penalty_core::Policy {
            shop_daily_cap_fen: 1_500,
            ..penalty_core::Policy::default()
        },
        None => penalty_core::Policy::default(),
    };
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &lines[..cut]);
    let projection = save_projection(&log, &policy);
    if let Some(excerpt_orders) = excerpt_orders {
        let end = Parts::open(dir.path()).unwrap().unwrap().end;
        parts::write_with(dir.path(), &end, &projection.ledger, excerpt_orders).unwrap();
    }
    if follow {
        ingest_following(&mut log, &policy, &lines[cut..], 40);
    } else {
        ingest_lines(&mut log, &lines[cut..]);
    }
    drop(log);
    let reader = LogReader::open(dir.path()).unwrap();
    if follow && cut < lines.len() {
        assert!(dir.path().join(TAIL_INDEX_FILE).exists(), "a tail index");
        assert_eq!(penalty_store::tail_index::check(&reader), None);
    }
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    let whole = whole.ledger;
    let stored = Parts::open(dir.path()).unwrap().unwrap();
    let as_ofs = [
        UnixNs::parse_rfc3339("2026-01-09T00:00:00Z").unwrap(),
        UnixNs::parse_rfc3339("2026-02-15T12:00:00+08:00").unwrap(),
        UnixNs::parse_rfc3339("2027-06-01T00:00:00Z").unwrap(),
    ];
    let mut shop_ids: Vec<String> = whole.shop_ids().map(String::from).collect();
    shop_ids.push("S-none".into());
    let mut order_ids: Vec<String> = whole.order_ids().map(String::from).collect();
    order_ids.push("O-none".into());
    let json = |r: Result<String, String>| match r {
        Ok(json) => json,
        Err(error) => format!("error: {error}"),
    };
    for shop_id in &shop_ids {
        let opened = projection::open_part(&reader, &policy, PartQuery::Shop(shop_id))
            .unwrap()
            .expect("a partitioned snapshot");
        for as_of in as_ofs {
            // Every question about one shop the CLI answers from its
            // partition: the report, its postings (R14), its notice feed
            // (R9) and its orders at risk.
            let answer = |ledger: &penalty_core::Ledger| {
                let lang = penalty_core::labels::Lang::En;
                let within = penalty_core::Within::parse("2d").unwrap();
                [
                    json(
                        ledger
                            .shop_report(shop_id, as_of, true)
                            .map(|r| serde_json::to_string(&r).unwrap())
                            .map_err(|e| e.to_string()),
                    ),
                    json(
                        ledger
                            .postings_in(shop_id, as_of, lang)
                            .map(|r| serde_json::to_string(&r).unwrap())
                            .map_err(|e| e.to_string()),
                    ),
                    json(
                        ledger
                            .notices_in(shop_id, as_of, None, usize::MAX, lang)
                            .map(|r| serde_json::to_string(&r).unwrap())
                            .map_err(|e| e.to_string()),
                    ),
                    json(
                        ledger
                            .at_risk(Some(shop_id), as_of, within)
                            .map(|r| serde_json::to_string(&r).unwrap())
                            .map_err(|e| e.to_string()),
                    ),
                ]
            };
            assert_eq!(
                answer(&opened.projection.ledger),
                answer(&whole),
                "shop {shop_id} as of {as_of:?} (seed {seed}, cut {cut} of {})",
                lines.len()
            );
        }
    }
    // Each shop's paid orders, to tell an excerpt from a part.
    let far = UnixNs::parse_rfc3339("2099-01-01T00:00:00Z").unwrap();
    let mut shop_orders: std::collections::HashMap<String, Vec<&str>> = Default::default();
    for order_id in &order_ids {
        if let Ok(report) = whole.order_report(order_id, far) {
            shop_orders
                .entry(report.shop_id)
                .or_default()
                .push(order_id);
        }
    }
    let (mut homed, mut by_excerpt, mut at_rest) = (0, 0, 0);
    for order_id in &order_ids {
        let opened = projection::open_part(&reader, &policy, PartQuery::Order(order_id))
            .unwrap()
            .expect("a partitioned snapshot");
        let sections = stored.order_sections(order_id).unwrap();
        let at_home = sections.iter().any(|s| stored.is_excerpt(*s));
        at_rest += usize::from(sections.iter().any(|s| {
            stored.is_excerpt(*s) && stored.family(*s).is_some_and(|f| f < stored.count())
        }));
        let excerpted = whole.order_report(order_id, far).is_ok_and(|report| {
            shop_orders[&report.shop_id]
                .iter()
                .any(|o| !opened.projection.ledger.holds_paid_order(o))
        });
        assert!(
            at_home || !excerpted,
            "order {order_id} was answered without its whole shop, yet is not in an excerpt"
        );
        homed += usize::from(at_home);
        by_excerpt += usize::from(at_home && excerpted);
        for as_of in as_ofs {
            let answer = |ledger: &penalty_core::Ledger| {
                json(
                    ledger
                        .order_report(order_id, as_of)
                        .map(|r| serde_json::to_string(&r).unwrap())
                        .map_err(|e| e.to_string()),
                )
            };
            assert_eq!(
                answer(&opened.projection.ledger),
                answer(&whole),
                "order {order_id} as of {as_of:?} (seed {seed}, cut {cut} of {}, excerpts of \
                 {excerpt_orders:?})",
                lines.len()
            );
        }
    }
    (homed, by_excerpt, at_rest)
}

#[test]
fn one_partition_answers_every_shop_and_order_as_the_whole_ledger() {
    // All in the snapshot, nearly all in the tail, and cuts between.
    assert_parts_answer_as_the_whole(300, 7, 1, 1000);
    assert_parts_answer_as_the_whole(300, 7, 2, 1);
    assert_parts_answer_as_the_whole(400, 9, 3, 500);
}

/// The snapshots as an ingest writes them, of a generated workload: the
/// whole, streamed into its file, has the bytes `snapshot::write` gives for
/// `Projection::encode`, which are those of bincode written straight into
/// an LZ4 frame (as before the buffer in front of it: replay compares the
/// stored snapshot byte for byte); and the parts split off a range at a
/// time equal those of one split, whatever the range.
#[test]
fn a_streamed_snapshot_and_parts_split_by_range_are_the_same_bytes() {
    use penalty_store::parts::PARTS;
    let text = generated_text(3000, 40, 4);
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &lines);
    let policy = penalty_core::Policy::default();
    let projection = save_projection(&log, &policy);
    let streamed = std::fs::read(dir.path().join(penalty_store::snapshot::SNAPSHOT_FILE)).unwrap();

    let encoded = projection.encode();
    // Many LZ4 blocks of 64 KiB, not one.
    assert!(encoded.len() > 1 << 17, "{} bytes", encoded.len());
    let mut direct = lz4_flex::frame::FrameEncoder::new(vec![encoded[0]]);
    bincode::serialize_into(&mut direct, &projection.ledger).unwrap();
    assert!(direct.finish().unwrap() == encoded);
    let end = log.snapshot_end(projection.seq).unwrap().unwrap();
    let other = tempfile::tempdir().unwrap();
    penalty_store::snapshot::write(other.path(), &end, &encoded).unwrap();
    let written = std::fs::read(other.path().join(penalty_store::snapshot::SNAPSHOT_FILE)).unwrap();
    assert!(written == streamed, "the streamed snapshot differs");
    assert!(projection.encodes_as(
        &penalty_store::snapshot::read(dir.path())
            .unwrap()
            .unwrap()
            .payload
    ));

    let whole = projection.ledger.split(PARTS);
    assert_eq!(whole.len(), PARTS as usize);
    for range in [0..1, 0..128, 128..256, 7..300, 1000..1024, 5..5, 1020..2000] {
        let from = range.start.min(PARTS) as usize;
        let to = range.end.min(PARTS) as usize;
        let parts = projection.ledger.split_range(PARTS, range.clone());
        assert!(parts == whole[from..to], "parts {range:?}");
        for (part, same) in parts.iter().zip(&whole[from..to]) {
            assert!(bincode::serialize(part).unwrap() == bincode::serialize(same).unwrap());
        }
        // The parts a writer only encodes are the same, and once their
        // order ids are indexed they find every paid order they hold.
        let unindexed = projection
            .ledger
            .splitting(PARTS)
            .range_to_encode(range.clone());
        assert!(unindexed == parts, "parts to encode {range:?}");
        for (mut part, same) in unindexed.into_iter().zip(&parts) {
            assert!(bincode::serialize(&part).unwrap() == bincode::serialize(same).unwrap());
            part.reindex_order_ids();
            for (order, _) in same.excerpts(usize::MAX / 4).homes(same) {
                assert!(part.holds_paid_order(order), "{order}");
            }
        }
    }
}

/// The partitioned snapshot, whose sections are laid out before any part
/// is made and each part written as its batch is encoded, is the file its
/// module documents, byte for byte: after the header, the directory and
/// the index, each part in partition order, then each part's excerpts,
/// back to back, each the LZ4 block of the bincode of the ledger a split
/// and its excerpts give, named in the section table with its partition
/// and family; the index sends each paid order to its home. With
/// excerpts of several sizes, so that parts have none, some or many.
#[test]
fn a_partitioned_snapshot_is_each_part_and_excerpt_back_to_back() {
    use penalty_store::parts::{self, Parts, PARTS, PARTS_FILE};
    let text = generated_text(3000, 40, 4);
    let lines: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &lines);
    let policy = penalty_core::Policy::default();
    let projection = save_projection(&log, &policy);
    let ledger = &projection.ledger;
    let end = Parts::open(dir.path()).unwrap().unwrap().end;
    let be_u64 = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap());
    let be_u32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let be_u16 = |b: &[u8], at: usize| u16::from_be_bytes(b[at..at + 2].try_into().unwrap());
    let encode =
        |l: &penalty_core::Ledger| lz4_flex::compress_prepend_size(&bincode::serialize(l).unwrap());
    for excerpt_orders in [1, 8, 40, 1_000_000] {
        parts::write_with(dir.path(), &end, ledger, excerpt_orders).unwrap();
        let bytes = std::fs::read(dir.path().join(PARTS_FILE)).unwrap();
        // The sections a split and its excerpts give, in section order:
        // (bytes, partition, family), and each paid order's home.
        let split = ledger.split(PARTS);
        let mut expected: Vec<(Vec<u8>, u16, u16)> = split
            .iter()
            .enumerate()
            .map(|(p, part)| (encode(part), p as u16, p as u16))
            .collect();
        let mut homes: Vec<(String, u32)> = Vec::new();
        let mut with_excerpts = 0;
        for (p, part) in split.iter().enumerate() {
            let excerpts = part.excerpts(excerpt_orders);
            let first = expected.len() as u32;
            with_excerpts += usize::from(!excerpts.ledgers.is_empty());
            for (i, excerpt) in excerpts.ledgers.iter().enumerate() {
                let family = if excerpts.rest == Some(i as u32) {
                    p as u32
                } else {
                    first
                };
                expected.push((encode(excerpt), p as u16, family as u16));
            }
            homes.extend(
                excerpts
                    .homes(part)
                    .map(|(order, home)| (order.to_owned(), home.map_or(p as u32, |h| first + h))),
            );
        }
        if excerpt_orders == 1_000_000 {
            assert_eq!(with_excerpts, 0);
        } else {
            assert!(with_excerpts > 0, "{excerpt_orders}");
        }
        let sections = be_u32(&bytes, 56) as usize;
        let entries = be_u64(&bytes, 48) as usize;
        let buckets = 1usize << be_u32(&bytes, 44);
        assert_eq!(be_u32(&bytes, 40), PARTS);
        assert_eq!(sections, expected.len(), "{excerpt_orders}");
        assert_eq!(entries, homes.len());
        let mut at = (64 + sections * 20 + (2 * buckets + 1) * 4 + 4 + entries * 10) as u64;
        for (s, (section, partition, family)) in expected.iter().enumerate() {
            let row = 64 + s * 20;
            assert_eq!(be_u64(&bytes, row), at, "section {s}");
            assert_eq!(
                be_u32(&bytes, row + 8) as usize,
                section.len(),
                "section {s}"
            );
            assert_eq!(be_u32(&bytes, row + 12), crc32fast::hash(section));
            assert_eq!(be_u16(&bytes, row + 16), *partition);
            assert_eq!(be_u16(&bytes, row + 18), *family, "section {s}");
            let from = at as usize;
            assert!(
                bytes[from..from + section.len()] == section[..],
                "section {s}"
            );
            at += section.len() as u64;
        }
        assert_eq!(at, bytes.len() as u64, "nothing after the last section");
        let stored = Parts::open(dir.path()).unwrap().unwrap();
        stored.check().unwrap();
        for (order, home) in &homes {
            assert!(
                stored.order_sections(order).unwrap().contains(home),
                "{order}"
            );
        }
    }
}

/// A tail where order-only events come before their order's `paid` (events
/// arrive in any order), into a shop of one partition, beside orders of
/// other partitions and an order never paid: `open_part` folds each into
/// the right part (the shipment before the `paid` included), so every shop
/// and order answers as the whole ledger does.
#[test]
fn one_partition_folds_an_order_only_event_that_comes_before_its_paid() {
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let dir = tempfile::tempdir().unwrap();
    let policy = penalty_core::Policy::default();
    let mut log = EventLog::open(dir.path()).unwrap();
    let in_shop = |line: String, shop: &str| line.replace(r#""S1""#, &format!(r#""{shop}""#));
    ingest_lines(
        &mut log,
        &[&paid_line(1, "O1"), &in_shop(paid_line(2, "O2"), "S2")],
    );
    save_projection(&log, &policy);
    let tail = [
        shipped_line(3, "O7", "T7"),
        shipped_line(4, "O1", "T1"),
        shipped_line(5, "O9", "T9"),
        in_shop(paid_line(6, "O7"), "S3"),
        shipped_line(7, "O2", "T2"),
        in_shop(paid_line(8, "O8"), "S2"),
    ];
    let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
    ingest_lines(&mut log, &tail);
    drop(log);
    let reader = LogReader::open(dir.path()).unwrap();
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    let as_of = UnixNs::parse_rfc3339("2026-04-01T00:00:00Z").unwrap();
    for order_id in ["O1", "O2", "O7", "O8", "O9"] {
        let opened = projection::open_part(&reader, &policy, PartQuery::Order(order_id))
            .unwrap()
            .expect("a partitioned snapshot");
        let report = |ledger: &penalty_core::Ledger| {
            format!(
                "{:?}",
                ledger
                    .order_report(order_id, as_of)
                    .map(|r| serde_json::to_string(&r).unwrap())
            )
        };
        assert_eq!(
            report(&opened.projection.ledger),
            report(&whole.ledger),
            "order {order_id}"
        );
        assert_eq!(opened.projection.seq, whole.seq);
    }
    for shop_id in ["S1", "S2", "S3"] {
        let opened = projection::open_part(&reader, &policy, PartQuery::Shop(shop_id))
            .unwrap()
            .expect("a partitioned snapshot");
        let report = |ledger: &penalty_core::Ledger| {
            format!(
                "{:?}",
                ledger
                    .shop_report(shop_id, as_of, true)
                    .map(|r| serde_json::to_string(&r).unwrap())
            )
        };
        assert_eq!(
            report(&opened.projection.ledger),
            report(&whole.ledger),
            "shop {shop_id}"
        );
    }
}

#[test]
fn an_excerpt_answers_each_order_of_a_large_shop_as_the_whole_ledger() {
    // Shops of more than 16 orders have excerpts of about 8: with no tail,
    // every order at home in one is answered from it.
    let (homed, by_excerpt, at_rest) =
        assert_sections_answer_as_the_whole(400, 5, 11, 1000, Some(8));
    assert!(homed > 200, "only {homed} orders are in excerpts");
    assert_eq!(by_excerpt + at_rest, homed);
    // With a tail after the snapshot (events of orders inside and outside
    // each excerpt, orders paid in the tail), excerpts answer where their
    // checks allow and parts elsewhere, always as the whole does.
    let mut answered = 0;
    for (seed, cut) in [(3, 500), (5, 900), (7, 990)] {
        let (homed, by_excerpt, _) =
            assert_sections_answer_as_the_whole(400, 5, seed, cut, Some(8));
        assert!(homed > 0, "seed {seed}: no order is in an excerpt");
        answered += by_excerpt;
    }
    assert!(answered > 0, "no excerpt answered beside a tail");
    // Nearly everything in the tail.
    assert_sections_answer_as_the_whole(400, 5, 9, 1, Some(8));
    // One excerpt per order.
    assert_sections_answer_as_the_whole(120, 2, 13, 700, Some(1));
    // Many shops: small shops share a partition with large ones, and their
    // orders are at home in the excerpt of the part's small shops.
    let mut at_rest = 0;
    for cut in [1000, 700] {
        at_rest += assert_sections_answer_as_the_whole(2000, 1000, 17, cut, Some(8)).2;
    }
    assert!(
        at_rest > 0,
        "no small shop shares a partition with a large one"
    );
}

/// An excerpt answers an order beside a tail that gives events to orders
/// of its shop outside it, and sees those that can reach its settle days.
/// Order A is never shipped: its deductions settle on 03-05 and 03-06.
/// Order B shipped in time, so it has no deduction and is at home in
/// another excerpt; but its second judgment would settle on 03-05, before
/// A's (R5 takes a day's deductions by `judged_at`), so a rejection of its
/// shipment in the tail (R2 a) makes B charged first on A's day, and a cap
/// of one and a half deductions leaves A half of its charge. Order C, paid
/// later, cannot reach A's days whatever its events. A's excerpt must hold
/// B (the answer is wrong without it) and need not read the part for C or
/// D (the answer comes from the excerpt); B's excerpt holds the days its
/// deductions could fall on, so it answers B once they exist.
#[test]
fn an_excerpt_holds_the_orders_that_can_reach_its_settle_days() {
    use penalty_store::parts::{self, Parts};
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let paid = |n: u128, order: &str, at: &str| {
        format!(
            r#"{{"event_id":"{}","type":"paid","at":"{at}","order_id":"{order}","shop_id":"S1","product_id":"P1","amount_fen":19900}}"#,
            id(n)
        )
    };
    let tracking = |n: u128, kind: &str, order: &str, at: &str| {
        format!(
            r#"{{"event_id":"{}","type":"{kind}","at":"{at}","order_id":"{order}","tracking_no":"T-{order}"}}"#,
            id(n)
        )
    };
    let snapshot = [
        paid(1, "B", "2026-03-01T09:00:00+08:00"),
        tracking(2, "shipped", "B", "2026-03-01T12:00:00+08:00"),
        paid(3, "A", "2026-03-02T10:00:00+08:00"),
        paid(4, "D", "2026-03-10T10:00:00+08:00"),
        paid(5, "C", "2026-03-20T10:00:00+08:00"),
        tracking(6, "shipped", "C", "2026-03-20T12:00:00+08:00"),
    ];
    let tail = [
        tracking(7, "tracking_rejected", "B", "2026-03-06T00:00:00+08:00"),
        tracking(8, "tracking_rejected", "C", "2026-03-25T00:00:00+08:00"),
    ];
    let policy = penalty_core::Policy {
        shop_daily_cap_fen: 1_500,
        ..penalty_core::Policy::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &snapshot.each_ref().map(String::as_str));
    let projection = save_projection(&log, &policy);
    // An excerpt for each order of the shop.
    let end = Parts::open(dir.path()).unwrap().unwrap().end;
    parts::write_with(dir.path(), &end, &projection.ledger, 1).unwrap();
    ingest_lines(&mut log, &tail.each_ref().map(String::as_str));
    drop(log);
    let reader = LogReader::open(dir.path()).unwrap();
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    let far = UnixNs::parse_rfc3339("2026-04-01T00:00:00+08:00").unwrap();
    let report = |ledger: &penalty_core::Ledger, order_id: &str, as_of: UnixNs| {
        format!(
            "{:?}",
            ledger
                .order_report(order_id, as_of)
                .map(|r| serde_json::to_string(&r).unwrap())
        )
    };
    // B's rejection takes half of A's first deduction.
    let whole_a = whole.ledger.order_report("A", far).unwrap();
    let charged: Vec<i64> = whole_a.deductions.iter().map(|d| d.charged_fen).collect();
    assert_eq!(charged, [500, 1_000], "{whole_a:?}");
    let before_rejection = UnixNs::parse_rfc3339("2026-03-05T12:00:00+08:00").unwrap();
    for order_id in ["A", "B", "C", "D"] {
        let opened = projection::open_part(&reader, &policy, PartQuery::Order(order_id))
            .unwrap()
            .expect("a partitioned snapshot");
        for as_of in [before_rejection, far] {
            assert_eq!(
                report(&opened.projection.ledger, order_id, as_of),
                report(&whole.ledger, order_id, as_of),
                "order {order_id} as of {as_of:?}"
            );
        }
        // A and B are answered from their excerpts: B's own deductions,
        // brought back by the tail, fall on days its excerpt holds.
        let ledger = &opened.projection.ledger;
        if order_id == "A" {
            assert!(ledger.holds_paid_order("B"), "B can reach A's days");
        }
        if order_id == "A" || order_id == "B" {
            assert!(
                !ledger.holds_paid_order("C") && !ledger.holds_paid_order("D"),
                "{order_id} was answered from its part, not its excerpt"
            );
        }
    }
}

#[test]
fn a_partitioned_snapshot_of_another_version_is_ignored_and_rewritten() {
    use penalty_store::parts::{Parts, PARTS_FILE};
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let dir = tempfile::tempdir().unwrap();
    let policy = penalty_core::Policy::default();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_paid(&mut log, &[(1, "O1"), (2, "O2")], 1);
    save_projection(&log, &policy);
    // The header of format 1, which had no excerpts: shorter than today's.
    let path = dir.path().join(PARTS_FILE);
    let mut old = std::fs::read(&path).unwrap();
    old[4..6].copy_from_slice(&1u16.to_be_bytes());
    old.truncate(60);
    std::fs::write(&path, &old).unwrap();
    assert!(Parts::open(dir.path()).unwrap().is_none());
    let reader = LogReader::open(dir.path()).unwrap();
    assert!(
        projection::open_part(&reader, &policy, PartQuery::Order("O1"))
            .unwrap()
            .is_none()
    );
    drop(reader);
    // The next writer's snapshot replaces it.
    append_paid(&mut log, &[(3, "O3")], 1);
    save_projection(&log, &policy);
    assert!(Parts::open(dir.path()).unwrap().is_some());
}

#[test]
fn a_damaged_partitioned_snapshot_is_never_read_and_recover_removes_it() {
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let dir = tempfile::tempdir().unwrap();
    let policy = penalty_core::Policy::default();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_paid(&mut log, &[(1, "O1"), (2, "O2")], 1);
    save_projection(&log, &policy);
    drop(log);
    let reader = LogReader::open(dir.path()).unwrap();
    let read = |reader: &LogReader| {
        projection::open_part(reader, &policy, PartQuery::Order("O1")).unwrap()
    };
    assert!(read(&reader).is_some());
    let path = dir.path().join(penalty_store::parts::PARTS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 4;
    std::fs::write(&path, &bytes).unwrap();
    // The damaged part is refused (the caller reads the whole instead).
    let part_of_o1 = read(&reader);
    assert!(
        part_of_o1.is_none() || part_of_o1.unwrap().projection.ledger.holds_paid_order("O1"),
        "a damaged part was read"
    );
    assert!(penalty_store::recover::remove_bad_snapshot(dir.path()).unwrap());
    assert!(!path.exists());
    assert!(read(&reader).is_none());
}

/// A query reads the order index's bucket table a bucket at a time, not
/// checked whole: damage to any byte of it is refused (the caller reads
/// the whole projection) or leaves the answer the whole's, and `recover`
/// removes the file.
#[test]
fn damage_to_the_order_index_bucket_table_is_never_read_and_recover_removes_it() {
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let policy = penalty_core::Policy::default();
    let orders: Vec<(u128, String)> = (1..=200).map(|i| (i, format!("O{i}"))).collect();
    let lines: Vec<(u128, &str)> = orders.iter().map(|(i, o)| (*i, o.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_paid(&mut log, &lines, 1);
    let (projection, _) = projection::open(&log, &policy, false).unwrap();
    projection.save(&log).unwrap();
    drop(log);
    let path = dir.path().join(penalty_store::parts::PARTS_FILE);
    let pristine = std::fs::read(&path).unwrap();
    let word = |at: usize| u32::from_be_bytes(pristine[at..at + 4].try_into().unwrap()) as usize;
    let (bits, sections) = (word(44), word(56));
    let buckets = 1usize << bits;
    let table_at = 64 + sections * 20;
    let table_len = (buckets + 1) * 4 + buckets * 4 + 4;
    assert!(buckets > 1, "the test needs several buckets");
    for at in table_at..table_at + table_len {
        let mut bytes = pristine.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let reader = LogReader::open(dir.path()).unwrap();
        for (_, order_id) in &orders {
            let opened =
                projection::open_part(&reader, &policy, PartQuery::Order(order_id)).unwrap();
            assert!(
                opened.is_none_or(|o| o.projection.ledger.holds_paid_order(order_id)),
                "with byte {at} damaged, {order_id} was answered from a part without it"
            );
        }
        assert!(
            penalty_store::recover::remove_bad_snapshot(dir.path()).unwrap(),
            "recover kept a parts file with byte {at} of its bucket table damaged"
        );
        assert!(!path.exists());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    #[test]
    fn one_partition_answers_as_the_whole_wherever_the_snapshot_ends(
        seed in 1u64..1_000_000,
        cut in 1usize..1000,
        shops in 1u64..12,
    ) {
        assert_parts_answer_as_the_whole(200, shops, seed, cut);
    }

    #[test]
    fn excerpts_answer_as_the_whole_wherever_the_snapshot_ends(
        seed in 1u64..1_000_000,
        cut in 1usize..1000,
        shops in 1u64..6,
        excerpt_orders in 1usize..40,
    ) {
        assert_sections_answer_as_the_whole(300, shops, seed, cut, Some(excerpt_orders));
    }
}

#[test]
fn a_second_open_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = EventLog::open(dir.path()).unwrap();
    let error = EventLog::open(dir.path()).unwrap_err();
    let StoreError::Locked { ref holder, .. } = error else {
        panic!("expected Locked, got {error}");
    };
    assert!(holder.contains(&std::process::id().to_string()), "{holder}");
    let message = error.to_string();
    assert!(
        message.contains("wait") && message.contains("stop"),
        "{message}"
    );
    drop(first);
    EventLog::open(dir.path()).unwrap();
}

// ---------------------------------------------------------------------------
// Ingest

#[test]
fn ingest_rejects_every_reason_and_the_counts_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let long = format!("{{\"x\":\"{}\"}}", "y".repeat(MAX_LINE_BYTES));
    let lines = [
        paid_line(1, "O1"),                                               // 1 appended
        "{not json".to_string(),                                          // 2 invalid_json
        String::new(), // 3 invalid_json (empty line)
        long,          // 4 line_too_long
        paid_line(2, "O2").replace("paid", "parcel_lost"), // 5 unknown_type
        shipped_line(3, "O1", "T").replace(",\"tracking_no\":\"T\"", ""), // 6 missing_field
        paid_line(4, "O4").replace("19900", "-1"), // 7 invalid_field
        paid_line(1, "O1").replace("S1", "S2"), // 8 event_id_conflict
        paid_line(5, "O1"), // 9 order_already_paid
        paid_line(1, "O1"), // 10 duplicate
        shipped_line(6, "O1", "T1"), // 11 appended, no final newline
    ];
    let input = format!("{}\r\n", lines[..10].join("\n")) + &lines[10];
    let rejects_path = dir.path().join("rejects.jsonl");
    let mut rejects = RejectsFile::open(&rejects_path, "events.jsonl").unwrap();
    let counts = ingest_bytes(&mut log, input.into_bytes(), &mut rejects, &mut ());
    assert_eq!(
        counts,
        IngestCounts {
            read: 11,
            appended: 2,
            duplicates: 1,
            rejected: 8
        }
    );
    assert_eq!(rejects.written(), 8);

    let text = std::fs::read_to_string(&rejects_path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<(u64, &str)> = records
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, "invalid_json"),
            (3, "invalid_json"),
            (4, "line_too_long"),
            (5, "unknown_type"),
            (6, "missing_field:tracking_no"),
            (7, "invalid_field:amount_fen"),
            (8, "event_id_conflict"),
            (9, "order_already_paid"),
        ]
    );
    assert_eq!(records[0]["source"], "events.jsonl");
    assert_eq!(records[0]["raw"], "{not json");
    assert!(records[0]["hint"].as_str().unwrap().contains("JSON object"));
    assert!(records[0].get("raw_truncated").is_none());
    assert_eq!(records[2]["raw_truncated"], true);
    assert_eq!(records[2]["raw_bytes"], MAX_LINE_BYTES as u64 + 8);
    assert_eq!(
        records[2]["raw"].as_str().unwrap().len(),
        REJECT_RAW_PREFIX_BYTES
    );
    // The rejected conflict is recorded as received, not canonicalised.
    assert_eq!(records[6]["raw"], lines[7].as_str());

    // Re-sending the whole input is safe: only duplicates and the same rejects.
    let again = format!("{}\n{}", lines.join("\n"), paid_line(7, "O7"));
    let counts = ingest_bytes(
        &mut log,
        again.into_bytes(),
        &mut KeptRejects::default(),
        &mut (),
    );
    assert_eq!(
        counts,
        IngestCounts {
            read: 12,
            appended: 1,
            duplicates: 3,
            rejected: 8
        }
    );
    assert_eq!(log.last_seq().unwrap(), 3);
}

/// A size guess, however wild, only pre-sizes the index up to a bound: the
/// log still appends and finds duplicates after it.
#[test]
fn an_absurd_reserve_is_bounded_and_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    log.reserve(u64::MAX).unwrap();
    log.reserve(u64::MAX).unwrap();
    let lines: Vec<ParsedLine> = (0..3u128)
        .map(|n| parsed(&paid_line(n, &format!("O{n}"))))
        .collect();
    let outcomes = log.append_batch(&lines, UnixNs(0)).unwrap();
    assert_eq!(outcomes.len(), 3);
    let again = log.append_batch(&lines[..1], UnixNs(0)).unwrap();
    assert!(
        matches!(again[0], AppendOutcome::Duplicate { seq: 1 }),
        "{again:?}"
    );
}

/// `validate` (the benchmark's ceiling) runs ingest's reader and parsers
/// and nothing else: it rejects what the parser rejects, and leaves what
/// only the log can decide (duplicates, conflicts, second payments) valid.
#[test]
fn validate_finds_the_parsers_rejects_and_stores_nothing() {
    let long = format!("{{\"x\":\"{}\"}}", "y".repeat(MAX_LINE_BYTES));
    let mut lines = vec![
        paid_line(1, "O1"),
        "{not json".to_string(),
        long,
        paid_line(1, "O1").replace("S1", "S2"),
        paid_line(5, "O1"),
        paid_line(1, "O1"),
    ];
    // Enough lines for several chunks, every seventh one broken.
    lines.extend((10..5_000u128).map(|n| {
        let line = paid_line(n, &format!("O{n}"));
        if n % 7 == 0 {
            line.replace("19900", "-1")
        } else {
            line
        }
    }));
    let broken = (10..5_000u128).filter(|n| n % 7 == 0).count() as u64;
    let input = lines.join("\n");
    let total_bytes = input.len() as u64;
    let counts = penalty_store::ingest::validate(std::io::Cursor::new(input.into_bytes())).unwrap();
    assert_eq!(
        counts,
        penalty_store::ingest::ValidateCounts {
            read: lines.len() as u64,
            valid: lines.len() as u64 - 2 - broken,
            rejected: 2 + broken,
            bytes_read: total_bytes,
        }
    );

    let garbage = penalty_store::ingest::validate(std::io::Cursor::new(b"\xff\n".repeat(3)))
        .map(|counts| counts.rejected);
    assert_eq!(
        garbage.unwrap(),
        3,
        "bytes that are not UTF-8 are rejected, not an error"
    );
}

#[test]
fn ingest_reports_to_its_sinks_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let input = paid_lines(100);
    let total_bytes = input.len() as u64;
    let mut recorder = Recorder::default();
    let counts = ingest_in_batches(
        &mut log,
        &input,
        30,
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    assert_eq!(counts.appended, 100);
    let seqs: Vec<u64> = recorder
        .observed
        .appended
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    // Blocks of 30, 30, 30 and 10.
    assert_eq!(recorder.observed.progress.len(), 4);
    assert_eq!(recorder.rejects.syncs, 4);
    let (last_counts, last_bytes) = recorder.observed.progress.last().copied().unwrap();
    assert_eq!(last_counts, counts);
    assert_eq!(last_bytes, total_bytes);
    assert_eq!(log.verify().unwrap().blocks, 4);
}

/// An observer whose `appended` fails on its `fail_on`-th call.
struct FailingObserver {
    calls: u64,
    fail_on: u64,
    appended: Vec<u64>,
}

impl IngestObserver for FailingObserver {
    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        self.calls += 1;
        if self.calls == self.fail_on {
            return Err(StoreError::Sink("the sink is full".into()));
        }
        self.appended.extend(events.iter().map(|e| e.seq));
        Ok(())
    }
}

/// An observer that only counts is handed no events, and the counts are the
/// same.
#[test]
fn an_observer_that_wants_no_events_gets_none_and_the_same_counts() {
    struct Counting {
        events: usize,
        calls: usize,
    }
    impl IngestObserver for Counting {
        fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
            self.events += events.len();
            self.calls += 1;
            Ok(())
        }
        fn wants_appended(&self) -> bool {
            false
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut observer = Counting {
        events: 0,
        calls: 0,
    };
    let counts = ingest_in_batches(
        &mut log,
        &paid_lines(25),
        10,
        &mut NullRejects,
        &mut observer,
    )
    .unwrap();
    assert_eq!(counts.appended, 25);
    assert_eq!((observer.events, observer.calls), (0, 3));
    assert_eq!(all_events(&log).len(), 25);
}

/// Ingest stages a block while the ones before it are written. When it
/// stops on an error, a block staged but not yet handed to the writer must
/// leave the index: the same log, appended the same lines again, must store
/// its events instead of taking them for duplicates of events it never
/// wrote. Blocks handed over before the error may still become durable
/// (unreported); either way no event is lost or stored twice.
#[test]
fn a_block_staged_when_ingest_fails_is_given_up_and_its_events_stored_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let input = paid_lines(60);
    // Blocks of ten: the second block's report fails, while later blocks
    // are staged or being written.
    let mut observer = FailingObserver {
        calls: 0,
        fail_on: 2,
        appended: Vec::new(),
    };
    let error =
        ingest_in_batches(&mut log, &input, 10, &mut NullRejects, &mut observer).unwrap_err();
    assert!(matches!(error, StoreError::Sink(_)), "{error}");
    assert_eq!(observer.appended, (1..=10).collect::<Vec<_>>());
    // The second block was durable before its report failed; of the later
    // ones, those handed to the writer before the error may be too, whole.
    let durable = log.last_seq().unwrap();
    assert!(
        (20..=60).contains(&durable) && durable.is_multiple_of(10),
        "{durable}"
    );
    assert_eq!(all_events(&log).len() as u64, durable);

    let mut recorder = Recorder::default();
    let counts = ingest_in_batches(
        &mut log,
        &input,
        10,
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    assert_eq!(counts.duplicates, durable);
    assert_eq!(counts.appended, 60 - durable);
    let seqs: Vec<u64> = recorder
        .observed
        .appended
        .iter()
        .map(|(seq, _)| *seq)
        .collect();
    assert_eq!(seqs, (durable + 1..=60).collect::<Vec<_>>());
    assert_eq!(all_events(&log).len(), 60);
    assert_eq!(log.verify().unwrap().blocks, 6);
    drop(log);
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(log.last_seq().unwrap(), 60);
}

/// A rejects sink's rejects are made durable by the job it hands over, on another
/// thread, and before the batch's events are reported: when `progress`
/// reports a count of rejects, at least as many were synced.
#[test]
fn rejects_are_synced_on_another_thread_before_their_batch_is_reported() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Syncing {
        written: u64,
        synced: Arc<AtomicU64>,
        sync_threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
    }
    impl RejectsSink for Syncing {
        fn rejected(&mut self, _: u64, _: &Reject, _: &[u8], _: u64) -> Result<(), StoreError> {
            self.written += 1;
            Ok(())
        }
        fn sync_job(&mut self) -> Result<Option<penalty_store::ingest::SyncJob>, StoreError> {
            let (written, synced) = (self.written, Arc::clone(&self.synced));
            let threads = Arc::clone(&self.sync_threads);
            Ok(Some(Box::new(move || {
                threads.lock().unwrap().push(std::thread::current().id());
                synced.store(written, Ordering::SeqCst);
                Ok(())
            })))
        }
    }
    /// Checks, at each report, that the rejects it counts were synced.
    struct CheckSynced {
        synced: Arc<AtomicU64>,
        progress_calls: u64,
    }
    impl IngestObserver for CheckSynced {
        fn progress(&mut self, counts: &IngestCounts, _: u64) {
            self.progress_calls += 1;
            assert!(self.synced.load(Ordering::SeqCst) >= counts.rejected);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    // Every third line is not JSON.
    let input: String = (0..90u128)
        .map(|n| {
            if n % 3 == 0 {
                "{oops\n".to_string()
            } else {
                paid_line(n, &format!("O{n}")) + "\n"
            }
        })
        .collect();
    let mut sink = Syncing::default();
    let mut observer = CheckSynced {
        synced: Arc::clone(&sink.synced),
        progress_calls: 0,
    };
    let counts = ingest_in_batches(&mut log, &input, 10, &mut sink, &mut observer).unwrap();
    assert_eq!(counts.rejected, 30);
    assert_eq!(sink.synced.load(Ordering::SeqCst), 30);
    assert_eq!(observer.progress_calls, 9);
    let threads = sink.sync_threads.lock().unwrap();
    assert_eq!(threads.len(), 9, "one job a batch");
    assert!(threads.iter().all(|id| *id != std::thread::current().id()));
}

/// Hands out its bytes in pieces of irregular sizes, as a pipe does.
struct Ragged {
    bytes: std::io::Cursor<Vec<u8>>,
    step: usize,
}

impl Read for Ragged {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = (self.step * 7 + 3) % 4093 + 1;
        let n = buf.len().min(self.step);
        self.bytes.read(&mut buf[..n])
    }
}

#[test]
fn the_parser_threads_keep_input_order_across_many_chunks() {
    // Enough lines for dozens of chunks dealt to the parsers in turn, with
    // rejects and duplicates among them: sequence numbers must follow the
    // input's order exactly, and rejects must name their own lines.
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut input = String::new();
    let mut expected_orders = Vec::new();
    let mut expected_rejects = Vec::new();
    let mut previous_valid = None;
    for n in 0..30_000u128 {
        let line_no = n as u64 + 1;
        match previous_valid {
            _ if n % 97 == 5 => {
                input += "{not json\n";
                expected_rejects.push(line_no);
                previous_valid = None;
            }
            // The line just before it again: a duplicate.
            Some(previous) if n % 89 == 7 => {
                input += &(paid_line(previous, &format!("O{previous}")) + "\n");
                previous_valid = None;
            }
            _ => {
                input += &(paid_line(n, &format!("O{n}")) + "\n");
                expected_orders.push(format!("O{n}"));
                previous_valid = Some(n);
            }
        }
    }
    let mut recorder = Recorder::default();
    let options = IngestOptions {
        max_batch_events: 5000,
        ..IngestOptions::default()
    };
    let reader = Ragged {
        bytes: std::io::Cursor::new(input.into_bytes()),
        step: 1,
    };
    let counts = ingest(
        &mut log,
        reader,
        &options,
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    assert_adds_up(&counts);
    let rejected: Vec<u64> = recorder.rejects.lines.iter().map(|r| r.0).collect();
    assert_eq!(rejected, expected_rejects);
    let orders: Vec<String> = all_events(&log)
        .iter()
        .map(|e| match e.event().unwrap().kind {
            penalty_core::event::EventKind::Paid { order_id, .. } => order_id,
            other => panic!("not a paid event: {other:?}"),
        })
        .collect();
    assert_eq!(orders.len(), expected_orders.len());
    let first_difference = orders
        .iter()
        .zip(&expected_orders)
        .position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "the log's order differs from the input's"
    );
    assert_eq!(counts.appended, expected_orders.len() as u64);
    assert!(counts.duplicates > 300, "{counts:?}");
}

/// An endless line of `x`, `len` bytes long, then a newline and `tail`,
/// produced on the fly so that the test itself holds nothing big.
struct HugeLine {
    remaining: u64,
    tail: std::io::Cursor<Vec<u8>>,
}

impl Read for HugeLine {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            return self.tail.read(buf);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].fill(b'x');
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The process's peak resident memory in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mb_line_is_rejected_without_being_buffered() {
    const LEN: u64 = 100 << 20;
    let _heavy = MEMORY_HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let before = peak_rss_kib();
    let input = HugeLine {
        remaining: LEN,
        tail: std::io::Cursor::new(format!("\n{}\n", paid_line(1, "O1")).into_bytes()),
    };
    let mut recorder = Recorder::default();
    let counts = ingest(
        &mut log,
        input,
        &IngestOptions::default(),
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    assert_eq!(
        counts,
        IngestCounts {
            read: 2,
            appended: 1,
            duplicates: 0,
            rejected: 1
        }
    );
    let (line_no, reason, raw, raw_bytes) = &recorder.rejects.lines[0];
    assert_eq!(
        (*line_no, reason.as_str(), *raw_bytes),
        (1, "line_too_long", LEN)
    );
    assert_eq!(raw.len(), REJECT_RAW_PREFIX_BYTES);
    // Buffering the line would raise the peak by at least 100 MiB; the other
    // tests running meanwhile allocate little (the big ones wait their turn).
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        assert!(
            after - before < 60 * 1024,
            "peak RSS grew by {} KiB",
            after - before
        );
    }
}

#[test]
fn binary_garbage_and_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let counts = ingest_bytes(&mut log, Vec::new(), &mut KeptRejects::default(), &mut ());
    assert_eq!(counts, IngestCounts::default());

    // A deterministic pseudo-random megabyte, newlines included.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let newlines = garbage.iter().filter(|b| **b == b'\n').count() as u64;
    let mut recorder = Recorder::default();
    let counts = ingest_bytes(
        &mut log,
        garbage.clone(),
        &mut recorder.rejects,
        &mut recorder.observed,
    );
    assert_adds_up(&counts);
    assert_eq!(counts.appended, 0);
    let ends_in_newline = garbage.last() == Some(&b'\n');
    assert_eq!(counts.read, newlines + u64::from(!ends_in_newline));
    assert_eq!(recorder.rejects.lines.len() as u64, counts.rejected);
    assert_eq!(log.last_seq().unwrap(), 0);
}

/// Yields its lines one read at a time, sleeping `pause` before each read
/// after the first: a slow producer on a pipe.
struct SlowReader {
    lines: Vec<Vec<u8>>,
    pause: Duration,
    reads: usize,
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.reads > 0 {
            std::thread::sleep(self.pause);
        }
        self.reads += 1;
        if self.lines.is_empty() {
            return Ok(0);
        }
        let line = self.lines.remove(0);
        buf[..line.len()].copy_from_slice(&line);
        Ok(line.len())
    }
}

#[test]
fn a_line_from_a_slow_pipe_is_durable_within_the_latency_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let input = SlowReader {
        lines: vec![
            format!("{}\n", paid_line(1, "O1")).into_bytes(),
            format!("{}\n", paid_line(2, "O2")).into_bytes(),
        ],
        pause: Duration::from_secs(1),
        reads: 0,
    };
    let mut recorder = Recorder::default();
    let started = WallClock::now();
    let counts = ingest(
        &mut log,
        input,
        &IngestOptions::default(),
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    assert_eq!(counts.appended, 2);
    let (seq, durable_at) = recorder.observed.appended[0];
    assert_eq!(seq, 1);
    let latency = durable_at - started;
    assert!(
        latency < Duration::from_millis(300),
        "first line durable after {latency:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[test]
fn the_stop_flag_commits_what_was_read_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let input = SlowReader {
        lines: (0..1000u128)
            .map(|n| format!("{}\n", paid_line(n, &format!("O{n}"))).into_bytes())
            .collect(),
        pause: Duration::from_millis(20),
        reads: 0,
    };
    let options = IngestOptions {
        max_latency: Duration::from_secs(60),
        ..IngestOptions::default()
    };
    let stop = Arc::clone(&options.stop);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let started = WallClock::now();
    let mut recorder = Recorder::default();
    let counts = ingest(
        &mut log,
        input,
        &options,
        &mut recorder.rejects,
        &mut recorder.observed,
    )
    .unwrap();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(counts.read >= 1 && counts.read < 1000, "{counts:?}");
    assert_eq!(counts.appended, counts.read);
    assert_eq!(log.last_seq().unwrap(), counts.appended);
}

#[test]
fn an_input_error_is_reported_after_the_lines_before_it() {
    struct Failing(Option<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.take() {
                Some(bytes) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                None => Err(std::io::Error::other("disk on fire")),
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let input = Failing(Some(format!("{}\n", paid_line(1, "O1")).into_bytes()));
    let error = ingest(
        &mut log,
        input,
        &IngestOptions::default(),
        &mut KeptRejects::default(),
        &mut (),
    )
    .unwrap_err();
    assert!(
        matches!(error, StoreError::Input { line: 1, .. }),
        "{error}"
    );
    assert_eq!(log.last_seq().unwrap(), 1);
}

// ---------------------------------------------------------------------------
// Property: any interleaving of repeats is classified like a simple model.

#[derive(Clone, Debug)]
struct Line {
    id: u8,
    variant: u8,
    paid_order: Option<u8>,
}

impl Line {
    fn text(&self) -> String {
        match self.paid_order {
            Some(order) => paid_line(u128::from(self.id), &format!("O{order}"))
                .replace("19900", &format!("{}", 100 + self.variant as u32)),
            None => shipped_line(u128::from(self.id), "O1", &format!("T{}", self.variant)),
        }
    }
}

fn line_strategy() -> impl Strategy<Value = Line> {
    (0u8..6, 0u8..2, proptest::option::of(0u8..3)).prop_map(|(id, variant, paid_order)| Line {
        id,
        variant,
        // An event id keeps its type, so that content differences come from
        // `variant` and the order, as in real re-sends and conflicts.
        paid_order: if id % 2 == 0 {
            paid_order.or(Some(0))
        } else {
            None
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn repeats_in_any_order_are_counted_like_the_model(
        lines in proptest::collection::vec(line_strategy(), 0..40),
        split in 0usize..40,
        batch in 1usize..6,
    ) {
        // The model: EVENTS.md applied line by line.
        let mut contents = std::collections::HashMap::new();
        let mut paid = std::collections::HashSet::new();
        let mut expected = IngestCounts::default();
        for line in &lines {
            let text = line.text();
            expected.read += 1;
            match contents.get(&line.id) {
                Some(existing) if *existing == text => expected.duplicates += 1,
                Some(_) => expected.rejected += 1,
                None => match line.paid_order {
                    Some(order) if paid.contains(&order) => expected.rejected += 1,
                    _ => {
                        if let Some(order) = line.paid_order { paid.insert(order); }
                        contents.insert(line.id, text);
                        expected.appended += 1;
                    }
                },
            }
        }

        // The real thing, in two inputs with a reopen in between.
        let dir = tempfile::tempdir().unwrap();
        let split = split.min(lines.len());
        let options = IngestOptions { max_batch_events: batch, ..IngestOptions::default() };
        let mut total = IngestCounts::default();
        for part in [&lines[..split], &lines[split..]] {
            let mut log = EventLog::open(dir.path()).unwrap();
            let input: String = part.iter().map(|l| l.text() + "\n").collect();
            let counts = ingest(
                &mut log,
                std::io::Cursor::new(input.into_bytes()),
                &options,
                &mut KeptRejects::default(),
                &mut (),
            ).unwrap();
            assert_adds_up(&counts);
            total.add(&counts);
        }
        prop_assert_eq!(total, expected);

        let log = EventLog::open(dir.path()).unwrap();
        let events = all_events(&log);
        let mut ids: Vec<u128> = events.iter().map(|e| e.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), events.len());
        prop_assert_eq!(events.len() as u64, expected.appended);
        prop_assert!(log.verify().unwrap().is_ok());
    }
}

/// sled 0.34.7 reads an unfinished `snap.*.generating` file when it opens
/// and refuses to open when that file is empty or torn: a process killed
/// while sled wrote a snapshot left a healthy log unreadable (found by the
/// CLI's SIGKILL test). Opening removes such a file and reads on.
#[test]
fn a_snapshot_sled_was_still_writing_does_not_stop_the_log_from_opening() {
    for unfinished in [&b""[..], &[0xAB; 40][..]] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = EventLog::open(dir.path()).unwrap();
            append_paid(&mut log, &[(1, "O1")], 0);
            append_paid(&mut log, &[(2, "O2")], 0);
        }
        // Sorts after every snapshot sled has finished.
        let leftover = dir
            .path()
            .join(SLED_DIR)
            .join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&leftover, unfinished).unwrap();
        // As sled alone would see it: refused.
        let refused = try_open_sled(dir.path()).err();
        assert!(
            matches!(refused, Some(sled::Error::Corruption { .. })),
            "sled refuses the unfinished snapshot: {refused:?}"
        );
        std::fs::write(&leftover, unfinished).unwrap();

        let mut log = EventLog::open(dir.path()).unwrap();
        assert!(!leftover.exists(), "the unfinished snapshot is removed");
        assert_eq!(all_events(&log).len(), 2);
        let outcomes = append_paid(&mut log, &[(3, "O3")], 0);
        assert_eq!(outcomes, vec![AppendOutcome::Appended { seq: 3 }]);
        assert!(log.verify().unwrap().is_ok());
    }
}

/// sled's part of a data directory is rebuilt from the blocks file: after
/// sled's files are destroyed or lost, `recover` finds every block again,
/// keeps the damaged directory beside, and the log reads and appends as
/// before; an unacknowledged tail of the blocks file is left for the next
/// append to overwrite.
#[test]
fn recover_rebuilds_sled_from_the_blocks_file() {
    for damage in ["garbage", "gone", "tail"] {
        let dir = tempfile::tempdir().unwrap();
        let before = three_blocks(dir.path());
        let sled_dir = dir.path().join(SLED_DIR);
        let mut tail = 0;
        match damage {
            "garbage" => std::fs::write(sled_dir.join("db"), vec![0x5A; 4096]).unwrap(),
            "gone" => std::fs::remove_dir_all(&sled_dir).unwrap(),
            _ => {
                // A torn append after the last acknowledged block, and sled
                // gone as well.
                tail = append_torn_block(dir.path());
                std::fs::remove_dir_all(&sled_dir).unwrap();
            }
        }
        // (A normal open would locate these blocks itself, see
        // `an_open_locates_acknowledged_blocks_sled_does_not_hold`; `recover`
        // is for when sled refuses to open at all.)
        let report = penalty_store::recover::recover(dir.path()).unwrap();
        assert_eq!(
            (report.blocks, report.last_seq, report.acknowledged_seq),
            (3, 4, 4),
            "{damage}"
        );
        assert_eq!(report.unacknowledged_tail_bytes, tail, "{damage}");
        match report.damaged_sled.clone() {
            Some(kept) => assert!(
                damage == "garbage" && kept.join("db").exists(),
                "{damage}: the damaged directory is kept"
            ),
            None => assert_ne!(damage, "garbage", "the damaged directory is kept"),
        }

        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(all_events(&log), before, "{damage}");
        assert!(log.verify().unwrap().is_ok(), "{damage}");
        let outcomes = append_paid(&mut log, &[(5, "O5"), (1, "O1")], 4);
        assert_eq!(
            outcomes,
            vec![
                AppendOutcome::Appended { seq: 5 },
                AppendOutcome::Duplicate { seq: 1 }
            ],
            "{damage}: the idempotency index is whole again"
        );
        assert!(log.verify().unwrap().is_ok(), "{damage}");
    }
}

/// sled is flushed every few dozen blocks, not every block, so a crash can
/// leave its locators ending before the head journal's last acknowledged
/// block. The blocks are in the blocks file (synced before the journal
/// recorded them), and a normal open locates them again: nothing
/// acknowledged is lost, nothing needs `penalty recover`, and the index
/// knows the found events as duplicates. A torn, never acknowledged append
/// after them is still dropped and overwritten.
#[test]
fn an_open_locates_acknowledged_blocks_sled_does_not_hold() {
    for damage in [
        "last locator",
        "two locators",
        "every locator",
        "sled gone",
        "sled garbage",
        "torn tail",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let before = three_blocks(dir.path());
        match damage {
            "last locator" => forget_last_locators(dir.path(), 1),
            "two locators" => forget_last_locators(dir.path(), 2),
            "every locator" => forget_last_locators(dir.path(), 3),
            "sled gone" => std::fs::remove_dir_all(dir.path().join(SLED_DIR)).unwrap(),
            "sled garbage" => {
                std::fs::write(dir.path().join(SLED_DIR).join("db"), vec![0x5A; 4096]).unwrap()
            }
            _ => {
                forget_last_locators(dir.path(), 1);
                append_torn_block(dir.path());
            }
        }
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(all_events(&log), before, "{damage}");
        assert_eq!(log.last_seq().unwrap(), 4, "{damage}");
        assert!(log.verify().unwrap().is_ok(), "{damage}");
        let outcomes = append_paid(&mut log, &[(5, "O5"), (4, "O4"), (1, "O1")], 4);
        assert_eq!(
            outcomes,
            vec![
                AppendOutcome::Appended { seq: 5 },
                AppendOutcome::Duplicate { seq: 4 },
                AppendOutcome::Duplicate { seq: 1 },
            ],
            "{damage}"
        );
        drop(log);
        assert_eq!(locators(dir.path()).len(), 4, "{damage}: located for good");
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(all_events(&log).len(), 5, "{damage}");
        assert!(log.verify().unwrap().is_ok(), "{damage}");
        let blocks = std::fs::read(dir.path().join(BLOCKS_FILE)).unwrap();
        assert!(
            !blocks.windows(14).any(|window| window == b"and then nothi"),
            "{damage}: the torn append was overwritten"
        );
    }
}

/// When sled lost locators and the blocks file lost the blocks too, an open
/// locates what is there and refuses, naming the acknowledged events that
/// are gone; nothing is appended after the loss.
#[test]
fn an_open_refuses_when_neither_sled_nor_the_blocks_file_has_acknowledged_blocks() {
    let dir = tempfile::tempdir().unwrap();
    three_blocks(dir.path());
    let len = last_block_end(dir.path());
    forget_last_locators(dir.path(), 2);
    cut_blocks_file(dir.path(), len - 10);
    let refused = EventLog::open(dir.path()).unwrap_err();
    // The second block (event 3) is whole and is located; the third
    // (event 4) is cut short.
    assert_eq!(refused.corrupt_seq(), Some(4), "{refused}");
    assert!(
        refused.to_string().contains("acknowledged events up to 4"),
        "{refused}"
    );
    assert_eq!(locators(dir.path()).len(), 2);
}

/// sled's locators are an index derived from the blocks file and the head
/// journal: an open holds them against both, and from the first that
/// disagrees (a wrong offset, length, checksum, count or key, a gap, a
/// block past the journal's end) locates the blocks again from the blocks
/// file, so that the writer reads and appends where readers do.
#[test]
fn an_open_relocates_blocks_whose_locators_disagree_with_the_blocks_file() {
    use penalty_store::head::{Head, HeadRecord};
    for damage in [
        "offset",
        "length",
        "last length",
        "checksum",
        "count",
        "gap",
        "key",
        "past the journal",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut before = three_blocks(dir.path());
        let good = locators(dir.path());
        // The blocks start at sequence numbers 1, 3 and 4.
        let (second, third) = (good[1], good[2]);
        match damage {
            "offset" => set_locator(
                dir.path(),
                3,
                Some(Locator {
                    offset: second.offset + 1,
                    ..second
                }),
            ),
            "length" => set_locator(
                dir.path(),
                3,
                Some(Locator {
                    len: second.len + 7,
                    ..second
                }),
            ),
            "last length" => set_locator(
                dir.path(),
                4,
                Some(Locator {
                    len: third.len - 1,
                    ..third
                }),
            ),
            "checksum" => set_locator(
                dir.path(),
                3,
                Some(Locator {
                    crc: second.crc ^ 1,
                    ..second
                }),
            ),
            "count" => set_locator(dir.path(), 3, Some(Locator { count: 2, ..second })),
            "gap" => set_locator(dir.path(), 3, None),
            "key" => {
                set_locator(dir.path(), 3, None);
                set_locator(dir.path(), 2, Some(second));
            }
            _ => {
                // A crash after the last block was located and sled
                // flushed, before the journal recorded it: never
                // acknowledged.
                Head::open(dir.path())
                    .unwrap()
                    .record(HeadRecord {
                        last_seq: 3,
                        block_first_seq: 3,
                        block_crc: second.crc,
                    })
                    .unwrap();
                before.truncate(3);
            }
        }
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(all_events(&log), before, "{damage}");
        assert!(log.verify().unwrap().is_ok(), "{damage}");
        let next = before.len() as u64 + 1;
        let outcomes = append_paid(&mut log, &[(5, "O5"), (1, "O1")], 4);
        assert_eq!(
            outcomes,
            vec![
                AppendOutcome::Appended { seq: next },
                AppendOutcome::Duplicate { seq: 1 },
            ],
            "{damage}"
        );
        drop(log);
        // The old blocks, as the blocks file locates them, then the new one.
        let old_blocks = if damage == "past the journal" { 2 } else { 3 };
        let relocated = locators(dir.path());
        assert_eq!(relocated.len(), old_blocks + 1, "{damage}");
        assert_eq!(
            relocated[..old_blocks],
            good[..old_blocks],
            "{damage}: the blocks file's locators again"
        );
        // Readers, which never open sled, see what the writer wrote.
        let reader = penalty_store::reader::LogReader::open(dir.path()).unwrap();
        assert!(reader.verify().is_ok(), "{damage}");
        assert_eq!(reader.last_seq(), next, "{damage}");
    }
}

/// With no sound head journal to say which blocks were acknowledged, a
/// locator that disagrees with the blocks file is not dropped (the next
/// append could cut acknowledged blocks off the file): the open refuses,
/// naming the block, and `recover` rebuilds the locators from the file.
#[test]
fn without_a_journal_a_disagreeing_locator_is_named_and_recover_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let before = three_blocks(dir.path());
    let good = locators(dir.path());
    set_locator(
        dir.path(),
        3,
        Some(Locator {
            crc: good[1].crc ^ 1,
            ..good[1]
        }),
    );
    std::fs::remove_file(dir.path().join(penalty_store::head::HEAD_FILE)).unwrap();
    let refused = EventLog::open(dir.path()).unwrap_err();
    assert_eq!(refused.corrupt_seq(), Some(3), "{refused}");
    assert!(refused.to_string().contains("penalty recover"), "{refused}");
    let kept = locators(dir.path());
    assert_eq!(
        (kept.len(), kept[1].crc),
        (3, good[1].crc ^ 1),
        "nothing dropped"
    );
    penalty_store::recover::recover(dir.path()).unwrap();
    let log = EventLog::open(dir.path()).unwrap();
    assert_eq!(all_events(&log), before);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    assert_eq!(locators(dir.path()), good);
}

/// Builds before the snapshot file kept the projection checkpoint in a sled
/// tree of its own. Nothing reads that tree any more: a data directory
/// holding one opens, reads, appends and verifies as any other.
#[test]
fn a_checkpoint_tree_left_in_sled_by_an_older_build_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let before = three_blocks(dir.path());
    {
        let db = open_sled(dir.path());
        let tree = db.open_tree("checkpoint").unwrap();
        tree.insert(b"ledger", vec![0xC5; 200_000]).unwrap();
        db.flush().unwrap();
    }
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(all_events(&log), before);
    assert_eq!(
        append_paid(&mut log, &[(5, "O5")], 4),
        vec![AppendOutcome::Appended { seq: 5 }]
    );
    assert!(log.verify().unwrap().is_ok());
}

/// When the blocks file itself lost acknowledged events, recovery cannot
/// bring them back: it says which, and changes nothing.
#[test]
fn recover_refuses_when_the_blocks_file_lost_acknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    three_blocks(dir.path());
    let len = last_block_end(dir.path());
    cut_blocks_file(dir.path(), len - 10);
    let error = penalty_store::recover::recover(dir.path()).unwrap_err();
    assert_eq!(error.corrupt_seq(), Some(4), "{error}");
    assert!(
        error.to_string().contains("acknowledged events up to 4"),
        "{error}"
    );
    assert!(
        !dir.path().join(format!("{SLED_DIR}.damaged-1")).exists(),
        "nothing was changed"
    );
    assert!(dir.path().join(SLED_DIR).join("db").exists());
}

/// Large blocks, as bulk ingest writes them, start at an aligned offset and
/// are padded with zeros (they are written past the page cache); small ones
/// follow exactly. Reads, a reopen and `recover`, which finds blocks by
/// scanning, all step over the padding.
#[test]
fn large_blocks_are_aligned_and_recovered_across_their_padding() {
    let dir = tempfile::tempdir().unwrap();
    let large: Vec<ParsedLine> = (2..4002)
        .map(|n| parsed(&paid_line(n, &format!("O{n}"))))
        .collect();
    let before = {
        let mut log = EventLog::open(dir.path()).unwrap();
        append_paid(&mut log, &[(1, "O1")], 1);
        log.append_batch(&large, UnixNs(2)).unwrap();
        append_paid(&mut log, &[(4002, "O4002")], 3);
        all_events(&log)
    };
    let locators = locators(dir.path());
    assert_eq!(locators.len(), 3);
    assert!(locators[1].len >= 256 << 10, "{:?}", locators[1]);
    assert!(
        locators[1].offset > locators[0].end(),
        "padding before the large block"
    );
    assert_eq!(locators[1].offset % 4096, 0);
    assert_eq!(
        locators[2].offset,
        locators[1].end(),
        "a small block follows exactly"
    );

    {
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(all_events(&log), before);
        assert!(log.verify().unwrap().is_ok());
        // A large block last leaves padding at the end of the file, which
        // a reopen keeps.
        let more: Vec<ParsedLine> = (4003..7003)
            .map(|n| parsed(&paid_line(n, &format!("O{n}"))))
            .collect();
        log.append_batch(&more, UnixNs(4)).unwrap();
    }
    let padded_len = std::fs::metadata(dir.path().join(BLOCKS_FILE))
        .unwrap()
        .len();
    assert_eq!(padded_len % 4096, 0);
    assert!(padded_len > last_block_end(dir.path()));
    let before = all_events(&EventLog::open(dir.path()).unwrap());
    assert_eq!(before.len(), 7002);

    std::fs::remove_dir_all(dir.path().join(SLED_DIR)).unwrap();
    let report = penalty_store::recover::recover(dir.path()).unwrap();
    assert_eq!((report.blocks, report.last_seq), (4, 7002));
    assert_eq!(
        report.unacknowledged_tail_bytes, 0,
        "padding is not a torn tail"
    );
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(all_events(&log), before);
    assert!(log.verify().unwrap().is_ok());
    assert_eq!(
        append_paid(&mut log, &[(7003, "O7003"), (2, "O2")], 5),
        vec![
            AppendOutcome::Appended { seq: 7003 },
            AppendOutcome::Duplicate { seq: 2 }
        ]
    );
}

/// A replay source taken from the log is what the log held then: blocks
/// appended afterwards, while the replay runs without the log (the server
/// releases its lock), are not folded in.
#[test]
fn a_replay_source_holds_the_log_as_it_was_when_taken() {
    use penalty_store::projection::{replay, replay_from, ReplaySource};
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    append_paid(&mut log, &[(1, "O1"), (2, "O2")], 1);
    let source = ReplaySource::of(&log).unwrap();
    assert_eq!(source.last_seq(), 2);
    append_paid(&mut log, &[(3, "O3")], 2);
    let policy = penalty_core::Policy::default();
    let then = replay_from(source, &policy, None).unwrap();
    let now = replay(&log, &policy, None).unwrap();
    assert_eq!((then.seq, now.seq), (2, 3));
    let as_of = UnixNs(i64::MAX / 2);
    assert!(then.ledger.order_report("O3", as_of).is_err());
    assert!(now.ledger.order_report("O3", as_of).is_ok());
}

/// Issue 20 (9): the rejects file keeps each line's bytes as received: text
/// that is UTF-8 as it is (other scripts and control characters included),
/// other bytes in base64 with `"raw_encoding":"base64"` (expected values
/// from Python's `base64.b64encode`).
#[test]
fn issue20_rejects_keep_the_bytes_as_received() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let mut input: Vec<u8> = Vec::new();
    for line in [
        &b"{\"a\":\"\xff\xfe\"}"[..],
        b"\xe6\x97",
        b"\x00\x01\xc3",
        "{\"日本\":\"\u{1b}[31m\"".as_bytes(),
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let rejects_path = dir.path().join("rejects.jsonl");
    let mut rejects = RejectsFile::open(&rejects_path, "-").unwrap();
    let counts = ingest_bytes(&mut log, input, &mut rejects, &mut ());
    assert_eq!(counts.rejected, 4);
    let text = std::fs::read_to_string(&rejects_path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (record, base64) in records.iter().zip(["eyJhIjoi//4ifQ==", "5pc=", "AAHD"]) {
        assert_eq!(record["raw"], base64, "{record}");
        assert_eq!(record["raw_encoding"], "base64", "{record}");
    }
    assert_eq!(records[3]["raw"], "{\"日本\":\"\u{1b}[31m\"");
    assert!(records[3].get("raw_encoding").is_none());
}

/// Issue 20 (10): when the process the LOCK file names has exited (the lock
/// is held by another, which has not written its name yet or was left
/// behind), or its pid now runs another program, the refusal says so
/// instead of naming it as the holder.
#[test]
fn issue20_a_lock_file_naming_an_exited_process_says_so() {
    let dir = tempfile::tempdir().unwrap();
    drop(EventLog::open(dir.path()).unwrap());
    let mut exited = std::process::Command::new("true").spawn().unwrap();
    exited.wait().unwrap();
    let lock_path = dir.path().join("LOCK");
    for (pid, command) in [
        (exited.id(), "penalty ingest events.jsonl".to_string()),
        (std::process::id(), "penalty ingest reused-pid".to_string()),
    ] {
        std::fs::write(
            &lock_path,
            format!(r#"{{"pid":{pid},"command":"{command}","since":"2026-03-01T00:00:00+00:00"}}"#),
        )
        .unwrap();
        let held = std::fs::File::open(&lock_path).unwrap();
        held.try_lock().unwrap();
        let error = EventLog::open(dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            !message.contains(&format!("in use by process {pid}")),
            "{message}"
        );
        assert!(
            message.contains(&pid.to_string()) && message.contains("no longer running"),
            "{message}"
        );
        drop(held);
    }
    EventLog::open(dir.path()).unwrap();
}

/// A generated workload's lines.
fn generated_lines(orders: u64, shops: u64, seed: u64) -> Vec<String> {
    generated_text(orders, shops, seed)
        .lines()
        .map(String::from)
        .collect()
}

/// Hands every appended event to a follower, and where its block lies.
struct Following(penalty_store::projection::Follower);

impl IngestObserver for Following {
    fn located(&mut self, first_seq: u64, block: &Locator) {
        self.0.located(first_seq, *block);
    }

    fn appended(&mut self, events: &[AppendedEvent<'_>]) -> Result<(), StoreError> {
        self.0.push(events);
        Ok(())
    }
}

/// A follower started before an ingest (on an empty log, or on one with a
/// snapshot and a tail) ends holding exactly the state a replay of the
/// whole log reaches: the same encoding, so the snapshot ingest writes from
/// it is the one `replay` and `audit` recognise as current.
#[test]
fn a_follower_folds_the_appends_into_the_replays_very_state() {
    use penalty_store::projection::{self, Follower};
    use penalty_store::reader::LogReader;
    let lines = generated_lines(600, 9, 4);
    let policy = penalty_core::Policy::default();
    for (saved, unsaved) in [(0, 0), (0, 700), (500, 0), (400, 300)] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        if saved > 0 {
            ingest_lines(&mut log, &refs[..saved]);
            save_projection(&log, &policy);
        }
        if unsaved > 0 {
            ingest_lines(&mut log, &refs[saved..saved + unsaved]);
        }
        let reader = LogReader::open(dir.path()).unwrap();
        let follower = Follower::start(reader, policy.clone(), 1000).unwrap();
        let mut following = Following(follower);
        let mut rest = refs[saved + unsaved..].join("\n");
        rest.push('\n');
        ingest_bytes(
            &mut log,
            rest.into_bytes(),
            &mut NullRejects,
            &mut following,
        );
        let followed = following.0.finish().unwrap();
        assert_eq!(followed.seq, log.last_seq().unwrap());
        drop(log);
        let reader = LogReader::open(dir.path()).unwrap();
        let (replayed, _) = projection::replay_read(&reader, &policy, None).unwrap();
        assert!(
            replayed.encodes_as(&followed.encode()),
            "saved {saved}, unsaved {unsaved}"
        );
        let as_of = UnixNs::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        assert_eq!(followed.ledger.digest(as_of), replayed.ledger.digest(as_of));
    }
}

/// The digest on several threads is the digest on one.
#[test]
fn the_digest_on_several_threads_is_the_digest() {
    use penalty_store::projection;
    use penalty_store::reader::LogReader;
    let lines = generated_lines(3000, 40, 5);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &refs);
    drop(log);
    let policy = penalty_core::Policy::default();
    let reader = LogReader::open(dir.path()).unwrap();
    let (replayed, _) = projection::replay_read(&reader, &policy, None).unwrap();
    for as_of in [
        "2026-01-05T00:00:00Z",
        "2026-02-20T00:00:00Z",
        "2027-01-01T00:00:00Z",
    ] {
        let as_of = UnixNs::parse_rfc3339(as_of).unwrap();
        let expected = replayed.ledger.digest(as_of);
        for threads in 1..=5 {
            assert_eq!(
                projection::digest_on(&replayed.ledger, as_of, threads),
                expected,
                "{threads} threads"
            );
        }
    }
}

/// `compare` takes the snapshot for the replay's state only when it is
/// exactly its encoding and ends where it does; a snapshot with a tail,
/// another state or damage is opened and digested apart, and the digests
/// still agree.
#[test]
fn compare_trusts_only_a_snapshot_that_is_the_replays_encoding() {
    use penalty_store::projection::{self, Origin};
    use penalty_store::reader::LogReader;
    use penalty_store::snapshot;
    let lines = generated_lines(500, 8, 6);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let policy = penalty_core::Policy::default();
    let as_of = UnixNs::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &refs[..600]);
    let projection = save_projection(&log, &policy);
    let compared = |dir: &Path| {
        let reader = LogReader::open(dir).unwrap();
        let (rebuilt, end) = projection::replay_read(&reader, &policy, None).unwrap();
        projection::compare(&reader, &policy, as_of, snapshot::read(dir), rebuilt, end).unwrap()
    };
    // The snapshot is the whole log's state.
    let current = compared(dir.path());
    assert!(current.snapshot_current);
    assert_eq!(current.stored_digest, current.digest);
    assert!(matches!(
        current.stored_origin,
        Origin::Checkpoint { tail: 0, .. }
    ));
    // The prefix's state is not the whole's; the tail is folded and the
    // digests agree.
    ingest_lines(&mut log, &refs[600..]);
    drop(log);
    let with_tail = compared(dir.path());
    assert!(!with_tail.snapshot_current);
    assert_eq!(with_tail.stored_digest, with_tail.digest);
    assert!(matches!(
        with_tail.stored_origin,
        Origin::Checkpoint { tail, .. } if tail > 0
    ));
    // Another state's bytes, half a payload, another format and no
    // payload are not this one.
    assert!(!with_tail.rebuilt.encodes_as(&projection.encode()));
    let mut bytes = with_tail.rebuilt.encode();
    assert!(with_tail.rebuilt.encodes_as(&bytes));
    bytes[0] ^= 0xff;
    assert!(!with_tail.rebuilt.encodes_as(&bytes));
    bytes[0] ^= 0xff;
    bytes.truncate(bytes.len() / 2);
    assert!(!with_tail.rebuilt.encodes_as(&bytes));
    assert!(!with_tail.rebuilt.encodes_as(&[]));
}

/// A follower told to snapshot in the background writes both snapshots at
/// a block's end while the appends go on (on an empty log, and on one with
/// a snapshot and a tail): a reader opens them as of that block and folds
/// only the blocks after it, to the replay's digest and, by part, to the
/// replay's shop reports; the follower's own end state is still the
/// replay's exact encoding.
#[test]
fn a_follower_snapshots_in_the_background_at_a_blocks_end() {
    use penalty_store::parts::Parts;
    use penalty_store::projection::{self, BackgroundSnapshots, Follower, Origin, PartQuery};
    use penalty_store::reader::LogReader;
    let lines = generated_lines(800, 9, 7);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let policy = penalty_core::Policy::default();
    let as_of = UnixNs::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
    for (saved, unsaved) in [(0, 0), (400, 300)] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        if saved > 0 {
            ingest_lines(&mut log, &refs[..saved]);
            save_projection(&log, &policy);
        }
        if unsaved > 0 {
            ingest_lines(&mut log, &refs[saved..saved + unsaved]);
        }
        let start_seq = log.last_seq().unwrap();
        let reader = LogReader::open(dir.path()).unwrap();
        let every = BackgroundSnapshots {
            min_events: 200,
            min_interval: Duration::ZERO,
        };
        let follower = Follower::start_snapshotting(reader, policy.clone(), 1000, every).unwrap();
        let mut following = Following(follower);
        // One block per chunk.
        for chunk in refs[saved + unsaved..].chunks(100) {
            let mut text = chunk.join("\n");
            text.push('\n');
            ingest_bytes(
                &mut log,
                text.into_bytes(),
                &mut NullRejects,
                &mut following,
            );
        }
        let followed = following.0.finish().unwrap();
        let last_seq = log.last_seq().unwrap();
        assert_eq!(followed.seq, last_seq);
        drop(log);
        let reader = LogReader::open(dir.path()).unwrap();
        let (replayed, _) = projection::replay_read(&reader, &policy, None).unwrap();
        assert!(replayed.encodes_as(&followed.encode()));
        let parts = Parts::open(dir.path())
            .unwrap()
            .expect("a partitioned snapshot");
        let whole = penalty_store::snapshot::read(dir.path())
            .unwrap()
            .expect("a snapshot");
        assert_eq!(parts.end, whole.end, "both snapshots end at one block");
        assert!(
            whole.end.seq > start_seq && whole.end.seq <= last_seq,
            "saved {saved}, unsaved {unsaved}: snapshot at {} of {start_seq}..{last_seq}",
            whole.end.seq
        );
        reader.check_snapshot_end(&whole.end).unwrap();
        let opened = projection::open_read(&reader, &policy, true, false).unwrap();
        assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
        assert_eq!(
            opened.origin,
            Origin::Checkpoint {
                seq: whole.end.seq,
                tail: last_seq - whole.end.seq
            }
        );
        assert_eq!(
            opened.projection.ledger.digest(as_of),
            replayed.ledger.digest(as_of)
        );
        for shop_id in replayed.ledger.shop_ids() {
            let part = projection::open_part(&reader, &policy, PartQuery::Shop(shop_id))
                .unwrap()
                .expect("the part");
            let report = |ledger: &penalty_core::Ledger| {
                serde_json::to_string(&ledger.shop_report(shop_id, as_of, true).unwrap()).unwrap()
            };
            assert_eq!(report(&part.projection.ledger), report(&replayed.ledger));
        }
    }
}

/// The readers' check of the log (what `penalty audit` runs) names a
/// repeated event id or a second payment for an order at the sequence
/// number of the repeat, and names the first problem in log order also
/// when a later block is damaged (it finds repeats from sorted hashes at
/// the end, then checks exactly where they are); a log without them checks
/// good.
#[test]
fn the_readers_check_names_the_first_repeat_in_log_order() {
    use penalty_store::reader::LogReader;
    let first = vec![parsed(&paid_line(1, "O1")), parsed(&paid_line(2, "O2"))];
    for (second, detail) in [
        (
            shipped_line(1, "O1", "T1"),
            "its event id appears earlier in the log",
        ),
        (
            paid_line(9, "O1"),
            "order O1 was already paid earlier in the log",
        ),
        (shipped_line(9, "O2", "T1"), ""),
    ] {
        for damaged_after in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let blocks = vec![
                (1, first.clone()),
                (3, vec![parsed(&second)]),
                (4, vec![parsed(&paid_line(10, "O10"))]),
            ];
            store_with_blocks(dir.path(), &blocks);
            if damaged_after {
                // A flipped byte in the last block's last event.
                let path = dir.path().join(BLOCKS_FILE);
                let mut bytes = std::fs::read(&path).unwrap();
                let at = bytes.len() - 3;
                bytes[at] ^= 0x20;
                std::fs::write(&path, bytes).unwrap();
            }
            let report = LogReader::open(dir.path()).unwrap().verify();
            let problem = report.problem.clone();
            match (detail.is_empty(), damaged_after) {
                (true, false) => assert!(report.is_ok(), "{report:?}"),
                (true, true) => {
                    let problem = problem.expect("the damaged block is named");
                    assert_eq!(problem.seq, 4, "{problem:?}");
                }
                (false, _) => {
                    let problem = problem.expect("the repeat is named");
                    assert_eq!(problem.seq, 3, "{damaged_after}: {problem:?}");
                    assert!(problem.detail.contains(detail), "{problem:?}");
                    assert_eq!(report.last_seq, 2, "{report:?}");
                }
            }
        }
    }
}

/// `penalty audit`'s check of the blocks a replay hands over
/// (`replay_read_sharing` into `verify_shared`) reports exactly what the
/// check reading the log itself does, on a sound log, a repeat and a
/// damaged block; and the replay is the same as one that shares nothing.
#[test]
fn the_check_of_a_replays_blocks_is_the_check_of_the_log() {
    use penalty_store::projection;
    use penalty_store::reader::LogReader;
    let policy = penalty_core::Policy::default();
    let as_of = UnixNs(1 << 62);
    let blocks: Vec<(u64, Vec<ParsedLine>)> = (0..6u64)
        .map(|block| {
            let lines = (0..3u64)
                .map(|n| {
                    let id = u128::from(block * 3 + n + 1);
                    parsed(&paid_line(id, &format!("O{id}")))
                })
                .collect();
            (block * 3 + 1, lines)
        })
        .collect();
    for case in ["sound", "repeat", "damaged"] {
        let dir = tempfile::tempdir().unwrap();
        let mut case_blocks = blocks.clone();
        if case == "repeat" {
            case_blocks[3].1[1] = parsed(&paid_line(99, "O2"));
        }
        store_with_blocks(dir.path(), &case_blocks);
        if case == "damaged" {
            let path = dir.path().join(BLOCKS_FILE);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
        }
        let reader = LogReader::open(dir.path()).unwrap();
        let alone = reader.verify();
        let (spent, shared) = std::sync::mpsc::sync_channel(1);
        let (shared_report, replayed) = std::thread::scope(|scope| {
            let checked = scope.spawn(|| reader.verify_shared(shared.into_iter()));
            let replayed = projection::replay_read_sharing(&reader, &policy, spent);
            (checked.join().unwrap(), replayed)
        });
        assert_eq!(shared_report, alone, "{case}");
        assert_eq!(alone.is_ok(), case == "sound", "{case}: {alone:?}");
        match (replayed, projection::replay_read(&reader, &policy, None)) {
            (Ok((shared, end)), Ok((own, own_end))) => {
                assert_eq!(end, own_end, "{case}");
                assert_eq!(
                    projection::digest(&shared.ledger, as_of),
                    projection::digest(&own.ledger, as_of),
                    "{case}"
                );
            }
            (Err(_), Err(_)) => assert_ne!(case, "sound"),
            _ => panic!("{case}: the replays differ in failing"),
        }
    }
}

/// Ingests `lines` as `penalty ingest` does, a follower folding the appends
/// (and writing the tail index), in blocks of at most `batch` lines.
fn ingest_following(
    log: &mut EventLog,
    policy: &penalty_core::Policy,
    lines: &[&str],
    batch: usize,
) {
    use penalty_store::projection::Follower;
    use penalty_store::reader::LogReader;
    if lines.is_empty() {
        return;
    }
    let reader = LogReader::open(log.dir()).unwrap();
    let mut following = Following(Follower::start(reader, policy.clone(), 1000).unwrap());
    let mut input = lines.join("\n");
    input.push('\n');
    ingest_in_batches(log, &input, batch, &mut NullRejects, &mut following).unwrap();
    following.0.finish().unwrap();
}

/// Issue 18: `order` and `shop` read the tail through the writer's tail
/// index, and answer every shop and order byte for byte as the whole
/// ledger, wherever the snapshot ends, excerpts of large shops included.
#[test]
fn through_the_tail_index_one_partition_answers_as_the_whole_ledger() {
    for (seed, cut) in [(21, 1), (22, 400), (23, 900)] {
        sections_answer_as_the_whole(300, 7, seed, cut, None, true);
    }
    for (seed, cut) in [(24, 300), (25, 700)] {
        let (homed, ..) = sections_answer_as_the_whole(400, 5, seed, cut, Some(8), true);
        assert!(homed > 0, "orders at home in an excerpt: {homed}");
    }
}

/// A data directory with a partitioned snapshot after `cut` of a
/// generated workload's lines and the rest ingested through a follower (so
/// with a tail index); with the whole ledger, replayed.
fn tail_indexed(seed: u64, cut: usize) -> (tempfile::TempDir, penalty_core::Ledger) {
    use penalty_store::projection;
    use penalty_store::reader::LogReader;
    let lines = generated_lines(300, 7, seed);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let policy = penalty_core::Policy::default();
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &refs[..cut]);
    save_projection(&log, &policy);
    ingest_following(&mut log, &policy, &refs[cut..], 40);
    drop(log);
    let reader = LogReader::open(dir.path()).unwrap();
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    (dir, whole.ledger)
}

/// The shops and orders whose answer from `open_part` differs from the
/// whole ledger's.
fn differing_answers(dir: &Path, whole: &penalty_core::Ledger) -> Vec<String> {
    differing_answers_under(dir, whole, &penalty_core::Policy::default())
}

/// [`differing_answers`] under `policy`.
fn differing_answers_under(
    dir: &Path,
    whole: &penalty_core::Ledger,
    policy: &penalty_core::Policy,
) -> Vec<String> {
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let policy = policy.clone();
    let reader = LogReader::open(dir).unwrap();
    let as_of = UnixNs::parse_rfc3339("2027-06-01T00:00:00Z").unwrap();
    let mut differ = Vec::new();
    for shop_id in whole.shop_ids() {
        let part = projection::open_part(&reader, &policy, PartQuery::Shop(shop_id))
            .unwrap()
            .expect("a part");
        let report = |ledger: &penalty_core::Ledger| {
            serde_json::to_string(&ledger.shop_report(shop_id, as_of, true).ok()).unwrap()
        };
        if report(&part.projection.ledger) != report(whole) {
            differ.push(format!("shop {shop_id}"));
        }
    }
    for order_id in whole.order_ids() {
        let part = projection::open_part(&reader, &policy, PartQuery::Order(order_id))
            .unwrap()
            .expect("a part");
        let report = |ledger: &penalty_core::Ledger| {
            serde_json::to_string(&ledger.order_report(order_id, as_of).ok()).unwrap()
        };
        if report(&part.projection.ledger) != report(whole) {
            differ.push(format!("order {order_id}"));
        }
    }
    differ
}

/// A tail index that puts every event of each block after the snapshot in
/// partition 0, its records whole and checksummed; with `crc_flip`, each
/// names its block with a checksum that is not the block's.
fn lying_index(dir: &Path, crc_flip: u32) -> Vec<u8> {
    use penalty_store::reader::LogReader;
    use penalty_store::tail_index::BlockRecord;
    let reader = LogReader::open(dir).unwrap();
    let end = penalty_store::snapshot::read(dir).unwrap().unwrap().end;
    let blocks = reader.blocks_after(&end);
    let last_end = blocks.last_end();
    let mut out = Vec::new();
    for block in blocks {
        let block = block.unwrap();
        let at = last_end.lock().unwrap().unwrap();
        let entries = block
            .entries
            .iter()
            .map(|entry| {
                let start = match &entry.paid {
                    Some(paid) => paid.start - 26,
                    None => entry.json.start - 30,
                };
                penalty_store::tail_index::Entry {
                    part: 0,
                    offset: start as u32,
                    days: penalty_store::tail_index::ALL_DAYS,
                }
            })
            .collect();
        let record = BlockRecord {
            first_seq: block.first_seq,
            block: Locator {
                offset: at.block_offset,
                len: at.block_len,
                crc: at.block_crc ^ crc_flip,
                count: block.entries.len() as u32,
            },
            parts: penalty_store::parts::PARTS,
            policy: penalty_store::tail_index::policy_fingerprint(&penalty_core::Policy::default()),
            entries,
        };
        out.extend(record.encode());
    }
    out
}

/// A reader trusts the tail index only for the blocks it names as the log
/// has them, and reads every block when the index is damaged, cut or
/// missing: the answers are the whole ledger's. The index is read: one
/// that lies about the blocks it names truly changes the answers (which
/// is how the check of the block it names is known to matter), and
/// `penalty audit`'s check names it; `recover` removes a damaged one.
#[test]
fn a_reader_never_trusts_a_tail_index_of_other_blocks_or_a_damaged_one() {
    use penalty_store::reader::LogReader;
    use penalty_store::tail_index;
    let (dir, whole) = tail_indexed(31, 500);
    let path = dir.path().join(TAIL_INDEX_FILE);
    let good = std::fs::read(&path).unwrap();
    assert!(!good.is_empty());
    assert_eq!(differing_answers(dir.path(), &whole), Vec::<String>::new());
    // Lying about the blocks it names: read, and wrong.
    std::fs::write(&path, lying_index(dir.path(), 0)).unwrap();
    assert_ne!(differing_answers(dir.path(), &whole), Vec::<String>::new());
    let reader = LogReader::open(dir.path()).unwrap();
    let named = tail_index::check(&reader).expect("named");
    assert!(named.contains("partition 0"), "{named}");
    // The same records, naming blocks by a checksum the blocks file does
    // not have there: never read.
    std::fs::write(&path, lying_index(dir.path(), 1)).unwrap();
    assert_eq!(differing_answers(dir.path(), &whole), Vec::<String>::new());
    assert!(tail_index::check(&reader).is_some());
    // Damaged, cut, missing.
    for at in [5, 50, good.len() / 2, good.len() - 3] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x41;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            differing_answers(dir.path(), &whole),
            Vec::<String>::new(),
            "byte {at}"
        );
    }
    for len in [10, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        assert_eq!(
            differing_answers(dir.path(), &whole),
            Vec::<String>::new(),
            "{len} bytes"
        );
        assert_eq!(tail_index::check(&reader), None, "a cut end is not damage");
    }
    std::fs::remove_file(&path).unwrap();
    assert_eq!(differing_answers(dir.path(), &whole), Vec::<String>::new());
    // `recover` removes a damaged one and keeps a sound one.
    std::fs::write(&path, &good).unwrap();
    penalty_store::recover::recover(dir.path()).unwrap();
    assert!(path.exists());
    std::fs::write(&path, lying_index(dir.path(), 0)).unwrap();
    penalty_store::recover::recover(dir.path()).unwrap();
    assert!(!path.exists());
}

/// Once the partitioned snapshot holds every block an index names (an
/// ingest's final snapshot), no reader reads those records: even a lying
/// index changes no answer, and `penalty audit`'s check passes it without
/// reading the log a second time. Before that snapshot, the same index is
/// named (the test above).
#[test]
fn records_of_blocks_the_snapshot_holds_are_not_checked() {
    use penalty_store::reader::LogReader;
    use penalty_store::tail_index;
    let (dir, whole) = tail_indexed(32, 500);
    let path = dir.path().join(TAIL_INDEX_FILE);
    let lying = lying_index(dir.path(), 0);
    {
        let log = EventLog::open(dir.path()).unwrap();
        let policy = penalty_core::Policy::default();
        save_projection(&log, &policy);
    }
    std::fs::write(&path, &lying).unwrap();
    assert_eq!(differing_answers(dir.path(), &whole), Vec::<String>::new());
    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(tail_index::check(&reader), None);
}

/// Issue 18: readers beside a writer that ingests a file (which writes the
/// tail index as it goes) see an acknowledged prefix: each `shop` and
/// `order` answer equals that of the whole ledger of the prefix the reader
/// opened.
#[test]
fn readers_beside_a_file_ingest_answer_as_a_fresh_ledger_of_their_prefix() {
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let lines = generated_lines(1500, 11, 41);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let policy = penalty_core::Policy::default();
    let dir = tempfile::tempdir().unwrap();
    let cut = refs.len() / 5;
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &refs[..cut]);
    save_projection(&log, &policy);
    let rest: Vec<&str> = refs[cut..].to_vec();
    let as_of = UnixNs::parse_rfc3339("2027-06-01T00:00:00Z").unwrap();
    let shops: Vec<String> = (0..11).map(|n| format!("S{n:06}")).collect();
    let orders: Vec<String> = (0..1500).step_by(37).map(|n| format!("O{n:09}")).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let checked = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            let mut checked = 0;
            let mut round = 0;
            while !done.load(Ordering::SeqCst) || round < 2 {
                if done.load(Ordering::SeqCst) {
                    round += 1;
                }
                let reader = LogReader::open(dir.path()).unwrap();
                let (prefix, _) = projection::replay_read(&reader, &policy, None).unwrap();
                let shop = &shops[checked % shops.len()];
                let order = &orders[checked % orders.len()];
                let part = projection::open_part(&reader, &policy, PartQuery::Shop(shop))
                    .unwrap()
                    .expect("a part");
                let report = |ledger: &penalty_core::Ledger| {
                    serde_json::to_string(&ledger.shop_report(shop, as_of, true).ok()).unwrap()
                };
                assert_eq!(
                    report(&part.projection.ledger),
                    report(&prefix.ledger),
                    "shop {shop}"
                );
                let part = projection::open_part(&reader, &policy, PartQuery::Order(order))
                    .unwrap()
                    .expect("a part");
                let report = |ledger: &penalty_core::Ledger| {
                    serde_json::to_string(&ledger.order_report(order, as_of).ok()).unwrap()
                };
                assert_eq!(
                    report(&part.projection.ledger),
                    report(&prefix.ledger),
                    "order {order}"
                );
                checked += 1;
            }
            checked
        });
        ingest_following(&mut log, &policy, &rest, 50);
        done.store(true, Ordering::SeqCst);
        reading.join().unwrap()
    });
    assert!(checked >= 2, "{checked}");
    assert!(dir.path().join(TAIL_INDEX_FILE).exists());
}

/// A data directory holding `lines[..cut]` with both snapshots, the parts
/// with excerpts of `excerpt_orders` home orders, then `lines[cut..]`
/// ingested as `penalty ingest` does, through a follower that writes the
/// tail index, in blocks of `block_lines`.
fn excerpts_then_followed(
    lines: &[&str],
    cut: usize,
    policy: &penalty_core::Policy,
    excerpt_orders: usize,
    block_lines: usize,
) -> tempfile::TempDir {
    use penalty_store::parts::{self, Parts};
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    ingest_lines(&mut log, &lines[..cut]);
    let projection = save_projection(&log, policy);
    let end = Parts::open(dir.path()).unwrap().unwrap().end;
    parts::write_with(dir.path(), &end, &projection.ledger, excerpt_orders).unwrap();
    ingest_following(&mut log, policy, &lines[cut..], block_lines);
    dir
}

/// A small shop of a part with large shops is answered from the excerpt
/// holding the part's small shops whole, without decoding the large ones,
/// as the whole ledger answers it (with a tail after the snapshot, and
/// through the tail index); a large shop from its whole part.
#[test]
fn a_small_shop_beside_large_ones_is_read_from_the_small_shops_excerpt() {
    use penalty_store::parts::Parts;
    use penalty_store::projection::{self, PartQuery};
    use penalty_store::reader::LogReader;
    let lines = generated_lines(2000, 300, 17);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let policy = penalty_core::Policy::default();
    let dir = excerpts_then_followed(&refs, refs.len() * 4 / 5, &policy, 8, 60);
    let reader = LogReader::open(dir.path()).unwrap();
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    let stored = Parts::open(dir.path()).unwrap().unwrap();
    let as_of = UnixNs::parse_rfc3339("2027-06-01T00:00:00Z").unwrap();
    let (mut small, mut large) = (0, 0);
    for shop_id in whole.ledger.shop_ids() {
        let opened = projection::open_part(&reader, &policy, PartQuery::Shop(shop_id))
            .unwrap()
            .expect("a part");
        let report = |ledger: &penalty_core::Ledger| {
            serde_json::to_string(&ledger.shop_report(shop_id, as_of, true).unwrap()).unwrap()
        };
        assert_eq!(
            report(&opened.projection.ledger),
            report(&whole.ledger),
            "shop {shop_id}"
        );
        let part = penalty_core::ledger::partition::partition_of(shop_id, stored.count());
        if stored.small_shops_excerpt(part).is_some() {
            let held = opened.projection.ledger.order_ids().count();
            let all = stored.ledger(part).unwrap().order_ids().count();
            if held < all {
                small += 1;
            } else {
                large += 1;
            }
        }
    }
    assert!(small > 0 && large > 0, "small {small}, large {large}");
}

/// `index` (a sound tail index) with the days of every entry of a known
/// partition set to `days`, and each record's policy fingerprint to
/// `policy` when given, its checksums recomputed: a lie only its days tell.
fn with_index_days(index: &[u8], days: (u32, u32), policy: Option<u32>) -> Vec<u8> {
    let mut out = index.to_vec();
    let word = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let mut at = 0;
    while at < out.len() {
        assert_eq!(&out[at..at + 4], b"PLT2");
        let len = word(&out, at + 4) as usize;
        let groups = word(&out, at + 40) as usize;
        if let Some(policy) = policy {
            out[at + 44..at + 48].copy_from_slice(&policy.to_be_bytes());
        }
        let table = at + 52;
        let mut entries = table + groups * 12;
        for g in 0..groups {
            let group = table + g * 12;
            let (part, count) = (word(&out, group), word(&out, group + 4) as usize);
            let end = entries + count * 16;
            if part != penalty_store::tail_index::UNKNOWN_PARTITION {
                for e in (entries..end).step_by(16) {
                    out[e + 8..e + 12].copy_from_slice(&days.0.to_be_bytes());
                    out[e + 12..e + 16].copy_from_slice(&days.1.to_be_bytes());
                }
            }
            let crc = crc32fast::hash(&out[entries..end]);
            out[group + 8..group + 12].copy_from_slice(&crc.to_be_bytes());
            entries = end;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&out[at..at + 48]);
        hasher.update(&out[table..table + groups * 12]);
        let crc = hasher.finalize();
        out[at + 48..at + 52].copy_from_slice(&crc.to_be_bytes());
        at += len;
    }
    out
}

/// Issue 18: a reader of an excerpt of a large shop reads, of its
/// partition's tail, only the events whose orders could reach the
/// excerpt's held days, as the tail index's days say (under its own
/// policy), and answers as the whole ledger. The days are read: an index
/// whose days lie (every order of day 0) changes the answers of orders at
/// home in excerpts; the same lie under another policy's fingerprint, or
/// in an index of the earlier format, changes nothing.
#[test]
fn an_excerpt_reads_only_the_tail_events_of_orders_that_could_reach_its_days() {
    use penalty_store::projection;
    use penalty_store::reader::LogReader;
    use penalty_store::tail_index;
    let text = generated_text(400, 5, 41);
    let lines: Vec<&str> = text.lines().collect();
    let policy = penalty_core::Policy {
        shop_daily_cap_fen: 1_500,
        ..penalty_core::Policy::default()
    };
    let dir = excerpts_then_followed(&lines, lines.len() * 2 / 5, &policy, 8, 40);
    let reader = LogReader::open(dir.path()).unwrap();
    let (whole, _) = projection::replay_read(&reader, &policy, None).unwrap();
    let path = dir.path().join(TAIL_INDEX_FILE);
    let good = std::fs::read(&path).unwrap();
    // What the index says against the replay, and the answers that differ
    // from the whole ledger's.
    let named = || tail_index::check_against(&reader, &|| Some(&whole.ledger));
    let differing = || differing_answers_under(dir.path(), &whole.ledger, &policy);
    assert_eq!(tail_index::check(&reader), None);
    assert_eq!(differing(), Vec::<String>::new());
    // The sound index is sound against the replay too.
    assert_eq!(named(), None);
    // Every order of day 0: an excerpt's reader skips the events of the
    // tail's paid orders, and its answers go wrong. The blocks alone
    // cannot tell; `audit`, which holds the replay, names it.
    std::fs::write(&path, with_index_days(&good, (0, 0), None)).unwrap();
    let differ = differing();
    assert!(
        !differ.is_empty() && differ.iter().all(|d| d.starts_with("order ")),
        "{differ:?}"
    );
    assert_eq!(tail_index::check(&reader), None);
    assert!(
        named().is_some_and(|d| d.contains("settle days")),
        "a lie in the days is named"
    );
    // Days wider than the order's are no lie a reader can be misled by.
    std::fs::write(&path, with_index_days(&good, tail_index::ALL_DAYS, None)).unwrap();
    assert_eq!(named(), None);
    // Under another policy's fingerprint the days are not used, nor
    // checked.
    let other = tail_index::policy_fingerprint(&penalty_core::Policy::default());
    std::fs::write(&path, with_index_days(&good, (0, 0), Some(other))).unwrap();
    assert_eq!(differing(), Vec::<String>::new());
    assert_eq!(named(), None);
    // Days that are not a range are damage: named, and not read.
    std::fs::write(&path, with_index_days(&good, (5, 4), None)).unwrap();
    assert!(tail_index::check(&reader).is_some_and(|d| d.contains("not a range")));
    assert_eq!(differing(), Vec::<String>::new());
    // An index of the earlier format is none: not read, not damage.
    let mut earlier = with_index_days(&good, (0, 0), None);
    earlier[..4].copy_from_slice(b"PLTI");
    std::fs::write(&path, &earlier).unwrap();
    assert_eq!(tail_index::check(&reader), None);
    assert_eq!(differing(), Vec::<String>::new());
}
