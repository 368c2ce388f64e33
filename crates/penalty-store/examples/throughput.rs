//! Measures the log: `cargo run --release -p penalty-store --example throughput [EVENTS]`.
//!
//! Appends EVENTS small events (default 200 000) in blocks of 8192 through
//! `append_batch`, then the same number through the whole ingest pipeline
//! (splitting, validation, rejects sink), then times the index rebuild after a
//! reopen, a full read and a full verify. A measuring tool, so it prints.

use std::time::Instant as WallClock;

use penalty_core::event::{format_event_id, parse_line};
use penalty_core::time::UnixNs;
use penalty_store::ingest::{ingest, IngestOptions, RejectsFile};
use penalty_store::EventLog;

fn line(n: u64) -> String {
    format!(
        r#"{{"event_id":"{}","type":"paid","at":"2026-03-01T10:00:00+08:00","order_id":"O{n}","shop_id":"S{}","product_id":"P{}","amount_fen":19900}}"#,
        format_event_id(u128::from(n) * 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
        n % 1000,
        n % 5000
    )
}

fn rate(events: u64, started: WallClock) -> String {
    let seconds = started.elapsed().as_secs_f64();
    format!(
        "{events} events in {seconds:.3} s = {:.0} events/s",
        events as f64 / seconds
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args().nth(1).map_or(Ok(200_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let mut log = EventLog::open(dir.path())?;

    let parsed: Vec<_> = (1..=events)
        .map(|n| parse_line(line(n).as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|r| format!("test line rejected: {r}"))?;
    let started = WallClock::now();
    for (number, chunk) in parsed.chunks(8192).enumerate() {
        let block_started = WallClock::now();
        log.append_batch(chunk, UnixNs(0))?;
        if std::env::var_os("BLOCK_TIMES").is_some() && number % 16 == 0 {
            println!("block {number}: {:?}", block_started.elapsed());
        }
    }
    println!("append_batch, blocks of 8192: {}", rate(events, started));

    let input: String = (events + 1..=2 * events).map(|n| line(n) + "\n").collect();
    let mut rejects = RejectsFile::open(&dir.path().join("rejects.jsonl"), "bench")?;
    let started = WallClock::now();
    let counts = ingest(
        &mut log,
        std::io::Cursor::new(input.into_bytes()),
        &IngestOptions::default(),
        &mut rejects,
        &mut (),
    )?;
    println!(
        "ingest pipeline (parse + append): {}",
        rate(counts.appended, started)
    );

    let all: String = (1..=2 * events).map(|n| line(n) + "\n").collect();
    let started = WallClock::now();
    let counts = ingest(
        &mut log,
        std::io::Cursor::new(all.into_bytes()),
        &IngestOptions::default(),
        &mut rejects,
        &mut (),
    )?;
    println!(
        "re-ingest, all duplicates: {}",
        rate(counts.duplicates, started)
    );

    drop(log);
    let mut log = EventLog::open(dir.path())?;
    let started = WallClock::now();
    log.append_batch(&parsed[..1], UnixNs(0))?;
    println!("index rebuild after reopen: {}", rate(2 * events, started));

    let started = WallClock::now();
    let mut read = 0;
    for event in log.iter_from(1) {
        event?;
        read += 1;
    }
    println!("iter_from(1): {}", rate(read, started));

    let started = WallClock::now();
    let report = log.verify()?;
    println!(
        "verify (checksums + JSON validation): {} ok={}",
        rate(report.events, started),
        report.is_ok()
    );
    Ok(())
}
