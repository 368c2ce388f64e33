//! Times the phases of a replay on an existing data directory:
//! `cargo run --release -p penalty-store --example phases -- DB AS_OF`.
//! Reading the blocks, parsing the events, folding them, and the digest.

use std::time::Instant as Clock;

use penalty_core::{Instant, Ledger, Policy};
use penalty_store::EventLog;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = args.get(1).ok_or("usage: phases DB AS_OF")?;
    let as_of = args
        .get(2)
        .and_then(|t| Instant::parse_rfc3339(t))
        .ok_or("AS_OF must be RFC 3339")?;
    let log = EventLog::open(std::path::Path::new(db))?;
    let started = Clock::now();
    let mut stored = Vec::new();
    for event in log.iter_from(1) {
        stored.push(event?);
    }
    let read = started.elapsed();
    let started = Clock::now();
    let mut events = Vec::with_capacity(stored.len());
    for s in &stored {
        events.push((s.event()?, s.recorded_at));
    }
    let parse = started.elapsed();
    let started = Clock::now();
    let mut ledger = Ledger::new(Policy::default());
    for (event, recorded_at) in &events {
        ledger.apply(event, *recorded_at)?;
    }
    let fold = started.elapsed();
    let started = Clock::now();
    let digest = ledger.digest(as_of);
    let digest_time = started.elapsed();
    let started = Clock::now();
    let bytes = bincode::serialize(&ledger)?;
    let encode = started.elapsed();
    println!(
        "{} events: read {:?}, parse {:?}, fold {:?}, digest {:?} ({}), checkpoint encode {:?} ({} bytes), ledger heap {} bytes ({} per event)",
        events.len(),
        read,
        parse,
        fold,
        digest_time,
        &digest[..12],
        encode,
        bytes.len(),
        ledger.heap_bytes(),
        ledger.heap_bytes() / events.len().max(1)
    );
    Ok(())
}
