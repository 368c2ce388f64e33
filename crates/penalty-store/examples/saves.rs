//! Times what the end of `ingest` spends on the snapshots of a data
//! directory's projection, in one process, writing into a scratch
//! directory: `cargo run --release -p penalty-store --example saves -- DB SCRATCH`.

use std::time::Instant;

use penalty_core::Policy;
use penalty_store::projection;
use penalty_store::reader::LogReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: saves DB SCRATCH")?;
    let scratch = args.next().ok_or("usage: saves DB SCRATCH")?;
    let (dir, scratch) = (std::path::Path::new(&dir), std::path::Path::new(&scratch));
    let reader = LogReader::open(dir)?;
    let end = penalty_store::snapshot::read(dir)?
        .ok_or("no snapshot")?
        .end;
    let opened = projection::open_read(&reader, &Policy::default(), false, false)?;
    let projection = opened.projection;
    for _ in 0..2 {
        let t = Instant::now();
        let bytes = projection.encode();
        println!("encode whole {:?} {} bytes", t.elapsed(), bytes.len());
        let t = Instant::now();
        let parts = projection.ledger.split(penalty_store::parts::PARTS);
        println!("split {:?}", t.elapsed());
        let t = Instant::now();
        drop(parts);
        println!("drop parts {:?}", t.elapsed());
        let t = Instant::now();
        penalty_store::parts::write(scratch, &end, &projection.ledger)?;
        println!("parts::write {:?}", t.elapsed());
    }
    std::mem::forget(projection);
    Ok(())
}
