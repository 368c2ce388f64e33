//! Times the phases of `replay`, `audit` and the end of `ingest` on a data
//! directory, one after another, in one process:
//! `cargo run --release -p penalty-store --example phases -- DB`.

use std::time::Instant;

use penalty_core::{Policy, UnixNs};
use penalty_store::projection;
use penalty_store::reader::LogReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: phases DB")?;
    let dir = std::path::Path::new(&dir);
    let policy = Policy::default();
    let as_of = UnixNs(i64::MAX / 2);
    let reader = LogReader::open(dir)?;
    let t = Instant::now();
    let report = reader.verify();
    println!("verify {:?} {}", t.elapsed(), report.events);
    let t = Instant::now();
    let snap = penalty_store::snapshot::read(dir)?;
    println!("snapshot read {:?}", t.elapsed());
    drop(snap);
    let t = Instant::now();
    let opened = projection::open_read(&reader, &policy, false, false)?;
    println!("open_read {:?} {:?}", t.elapsed(), opened.origin);
    let t = Instant::now();
    let d1 = opened.projection.ledger.digest(as_of);
    println!("digest {:?}", t.elapsed());
    drop(opened);
    let t = Instant::now();
    let (rebuilt, end) = projection::replay_read(&reader, &policy, None)?;
    println!("replay {:?}", t.elapsed());
    let t = Instant::now();
    let d2 = rebuilt.ledger.digest(as_of);
    println!("digest {:?} equal {}", t.elapsed(), d1 == d2);
    let t = Instant::now();
    let bytes = rebuilt.encode();
    println!("encode {:?} {} bytes", t.elapsed(), bytes.len());
    drop(bytes);
    let t = Instant::now();
    let parts = rebuilt.ledger.split(1024);
    println!("split {:?}", t.elapsed());
    drop(parts);
    let t = Instant::now();
    projection::save_read(&reader, &rebuilt, end)?;
    println!("save (snap + parts) {:?}", t.elapsed());
    Ok(())
}
