//! `penalty-bench`: the in-process instruments of the benchmark (`bench/run`,
//! docs/PERFORMANCE.md). Each subcommand measures one thing and prints one
//! JSON object on stdout; `bench/run` puts them side by side.
//!
//! - `fsync-baseline FILE OUT`: the floor for a durable log on this disk:
//!   the same lines appended to a plain file, `fdatasync` every 10 000 lines.
//! - `validate FILE`: ingest's reader and parser threads alone, storing
//!   nothing: the ceiling that reading and validating put on ingest.
//! - `replay DB`: a fold of the whole log into fresh projections
//!   (`projection::replay`), with a breakdown (reading the blocks, parsing
//!   the stored JSON, applying) and the digest timed apart.
//! - `latency DB`: shop and order report and booked-ledger (R14 postings)
//!   latency over seeded random ids, each
//!   call timed on its own, plus one sweep over every shop.
//!
//! Every figure is measured in the run that prints it; nothing is assumed.
//! Peak memory is the process's `VmHWM` from `/proc/self/status`.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as Clock};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use penalty_core::{Policy, UnixNs};
use penalty_store::{projection, EventLog};
use serde_json::json;

/// The `as_of` of the generated workloads: after every event.
const DEFAULT_AS_OF: &str = "2026-04-01T00:00:00+08:00";

#[derive(Parser)]
#[command(
    name = "penalty-bench",
    about = "Benchmark instruments of penalty-ledger (see docs/PERFORMANCE.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Append FILE's lines to a fresh plain file OUT with fdatasync every
    /// `--every` lines: the throughput floor of a durable log on this disk.
    FsyncBaseline {
        input: PathBuf,
        output: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        every: u64,
        /// One write(2) per line instead of a 4 MiB buffer: how a log that
        /// writes each event as it comes would do (context only; the target
        /// is against the buffered floor).
        #[arg(long)]
        per_line_writes: bool,
    },
    /// Read and validate FILE on ingest's own reader and parser threads and
    /// store nothing: the most ingest could do with this parser.
    Validate { input: PathBuf },
    /// Rebuild every projection from the log alone and time it.
    Replay {
        db: PathBuf,
        #[arg(long, default_value = DEFAULT_AS_OF)]
        as_of: String,
        /// Skip the breakdown passes (read only, read and parse).
        #[arg(long)]
        no_breakdown: bool,
    },
    /// Time shop and order reports over random ids, in-process.
    Latency {
        db: PathBuf,
        #[arg(long, default_value = DEFAULT_AS_OF)]
        as_of: String,
        /// Queries of each kind.
        #[arg(long, default_value_t = 10_000)]
        samples: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let output = match cli.command {
        Command::FsyncBaseline {
            input,
            output,
            every,
            per_line_writes,
        } => fsync_baseline(&input, &output, every, per_line_writes)?,
        Command::Validate { input } => validate(&input)?,
        Command::Replay {
            db,
            as_of,
            no_breakdown,
        } => replay(&db, parse_as_of(&as_of)?, !no_breakdown)?,
        Command::Latency {
            db,
            as_of,
            samples,
            seed,
        } => latency(&db, parse_as_of(&as_of)?, samples, seed)?,
    };
    println!("{output}");
    Ok(())
}

fn parse_as_of(text: &str) -> anyhow::Result<UnixNs> {
    match UnixNs::parse_rfc3339(text) {
        Some(instant) => Ok(instant),
        None => bail!("--as-of `{text}` is not RFC 3339 with an offset"),
    }
}

/// The peak resident set size of this process so far, in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The resident set size of this process now, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn fsync_baseline(
    input: &Path,
    output: &Path,
    every: u64,
    per_line_writes: bool,
) -> anyhow::Result<serde_json::Value> {
    let every = every.max(1);
    let start = Clock::now();
    let mut reader = BufReader::with_capacity(
        1 << 20,
        File::open(input).with_context(|| format!("opening {}", input.display()))?,
    );
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(output)
        .with_context(|| format!("creating {}", output.display()))?;
    // A zero-capacity BufWriter passes each write straight to the file.
    let mut writer = BufWriter::with_capacity(if per_line_writes { 0 } else { 4 << 20 }, file);
    let mut line = Vec::with_capacity(1024);
    let (mut lines, mut bytes, mut syncs) = (0u64, 0u64, 0u64);
    let sync = |writer: &mut BufWriter<File>| -> anyhow::Result<()> {
        writer.flush()?;
        writer.get_ref().sync_data()?;
        Ok(())
    };
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        writer.write_all(&line)?;
        lines += 1;
        bytes += line.len() as u64;
        if lines % every == 0 {
            sync(&mut writer)?;
            syncs += 1;
        }
    }
    sync(&mut writer)?;
    syncs += 1;
    // The new file's directory entry must be durable too, as a fresh
    // database's are.
    if let Some(dir) = output.parent() {
        File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })?
        .sync_all()?;
    }
    let elapsed = start.elapsed();
    Ok(json!({
        "lines": lines,
        "bytes": bytes,
        "fdatasyncs": syncs,
        "every_lines": every,
        "per_line_writes": per_line_writes,
        "seconds": elapsed.as_secs_f64(),
        "lines_per_s": per_second(lines, elapsed),
        "bytes_per_s": per_second(bytes, elapsed),
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

fn validate(input: &Path) -> anyhow::Result<serde_json::Value> {
    let start = Clock::now();
    let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let counts = penalty_store::ingest::validate(file)
        .with_context(|| format!("validating {}", input.display()))?;
    let elapsed = start.elapsed();
    Ok(json!({
        "lines": counts.read,
        "valid": counts.valid,
        "rejected": counts.rejected,
        "bytes": counts.bytes_read,
        "seconds": elapsed.as_secs_f64(),
        "lines_per_s": per_second(counts.read, elapsed),
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}

fn replay(db: &Path, as_of: UnixNs, breakdown: bool) -> anyhow::Result<serde_json::Value> {
    let policy = Policy::default();
    let log = EventLog::open(db).with_context(|| format!("opening the log in {}", db.display()))?;
    let mut passes = serde_json::Map::new();
    if breakdown {
        // Pass 1: read and check every block, touch every event.
        let start = Clock::now();
        let (mut events, mut json_bytes) = (0u64, 0u64);
        for stored in log.iter_from(1) {
            let stored = stored?;
            events += 1;
            json_bytes += stored.stored_bytes() as u64;
        }
        let read = start.elapsed();
        // Pass 2: the same, and parse each event's JSON.
        let start = Clock::now();
        for stored in log.iter_from(1) {
            let stored = stored?;
            black_box(stored.event()?);
        }
        let parse = start.elapsed();
        passes.insert("read_s".into(), json!(read.as_secs_f64()));
        passes.insert("read_and_parse_s".into(), json!(parse.as_secs_f64()));
        passes.insert("stored_events".into(), json!(events));
        passes.insert("stored_json_bytes".into(), json!(json_bytes));
    }
    let rss_before = peak_rss_bytes();
    let start = Clock::now();
    let rebuilt = projection::replay(&log, &policy, None)?;
    let replay = start.elapsed();
    let rss_after_replay = peak_rss_bytes();
    let rss_now_after_replay = rss_bytes();
    let ledger = rebuilt.ledger;
    let events = ledger.events_applied();
    let orders = ledger.order_ids().count() as u64;
    let shops = ledger.shop_ids().count() as u64;
    let start = Clock::now();
    let digest = ledger.digest(as_of);
    let digest_time = start.elapsed();
    let rss = peak_rss_bytes();
    Ok(json!({
        "events": events,
        "orders": orders,
        "shops": shops,
        "replay_s": replay.as_secs_f64(),
        "events_per_s": per_second(events, replay),
        "digest_s": digest_time.as_secs_f64(),
        "digest": digest,
        "breakdown": passes,
        "peak_rss_bytes_before_replay": rss_before,
        "peak_rss_bytes_after_replay": rss_after_replay,
        "rss_bytes_after_replay": rss_now_after_replay,
        "peak_rss_bytes": rss,
        "peak_rss_bytes_per_order": rss.map(|r| r as f64 / orders.max(1) as f64),
    }))
}

/// splitmix64, for seeded picks of ids.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((u128::from(z) * n as u128) >> 64) as usize
    }
}

/// p50, p90, p99, p99.9, max and mean of durations in nanoseconds, in µs
/// (nearest-rank percentiles).
fn summary(mut nanos: Vec<u64>) -> serde_json::Value {
    if nanos.is_empty() {
        return json!(null);
    }
    nanos.sort_unstable();
    let rank = |p: f64| {
        let index = ((p * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len()) - 1;
        nanos[index] as f64 / 1_000.0
    };
    let mean = nanos.iter().sum::<u64>() as f64 / nanos.len() as f64 / 1_000.0;
    json!({
        "count": nanos.len(),
        "p50_us": rank(0.50),
        "p90_us": rank(0.90),
        "p99_us": rank(0.99),
        "p999_us": rank(0.999),
        "max_us": rank(1.0),
        "mean_us": mean,
    })
}

fn latency(
    db: &Path,
    as_of: UnixNs,
    samples: usize,
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let policy = Policy::default();
    let log = EventLog::open(db).with_context(|| format!("opening the log in {}", db.display()))?;
    let start = Clock::now();
    let (projection, origin) = projection::open(&log, &policy, false)?;
    let open = start.elapsed();
    let ledger = projection.ledger;
    let mut shops: Vec<&str> = ledger.shop_ids().collect();
    let mut orders: Vec<&str> = ledger.order_ids().collect();
    if shops.is_empty() || orders.is_empty() {
        bail!("the log in {} has no orders to ask about", db.display());
    }
    // Sorted, so that a seed picks the same ids whatever the map's order.
    shops.sort_unstable();
    orders.sort_unstable();
    let mut rng = Rng(seed);
    let mut errors = 0u64;
    let time_shop = |id: &str, errors: &mut u64| {
        let start = Clock::now();
        let report = ledger.shop_report(id, as_of, true);
        let nanos = start.elapsed().as_nanos() as u64;
        match &report {
            Ok(r) => {
                black_box(r);
            }
            Err(_) => *errors += 1,
        }
        (nanos, report.map(|r| r.orders).unwrap_or(0))
    };
    // A short warm-up on other ids, so that the first samples do not pay
    // for cold caches alone; not counted.
    for _ in 0..samples.min(1_000) / 10 {
        black_box(time_shop(shops[rng.below(shops.len())], &mut 0));
        black_box(
            ledger
                .order_report(orders[rng.below(orders.len())], as_of)
                .is_ok(),
        );
    }
    let mut shop_nanos = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = shops[rng.below(shops.len())];
        shop_nanos.push(time_shop(id, &mut errors).0);
    }
    let mut order_nanos = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = orders[rng.below(orders.len())];
        let start = Clock::now();
        let report = ledger.order_report(id, as_of);
        order_nanos.push(start.elapsed().as_nanos() as u64);
        match &report {
            Ok(r) => {
                black_box(r);
            }
            Err(_) => errors += 1,
        }
    }
    // Every shop once: the tail the random samples may miss (the largest
    // shops are few).
    let start = Clock::now();
    let mut sweep = Vec::with_capacity(shops.len());
    let (mut largest, mut largest_orders, mut largest_nanos) = ("", 0u64, 0u64);
    for id in &shops {
        let (nanos, shop_orders) = time_shop(id, &mut errors);
        sweep.push(nanos);
        if shop_orders > largest_orders {
            (largest, largest_orders, largest_nanos) = (id, shop_orders, nanos);
        }
    }
    let sweep_time = start.elapsed();
    // R14: the booked ledger of random shops, and of the largest shop again
    // and again (its p99 is the figure the issue asks for).
    let mut time_postings = |id: &str| {
        let start = Clock::now();
        let report = ledger.postings(id, as_of);
        let nanos = start.elapsed().as_nanos() as u64;
        match &report {
            Ok(r) => {
                black_box(r);
            }
            Err(_) => errors += 1,
        }
        (nanos, report.map(|r| r.postings.len()).unwrap_or(0))
    };
    let mut postings_nanos = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = shops[rng.below(shops.len())];
        postings_nanos.push(time_postings(id).0);
    }
    let mut largest_postings_nanos = Vec::new();
    let mut largest_postings = 0;
    for _ in 0..(samples / 20).clamp(20, 500) {
        let (nanos, count) = time_postings(largest);
        largest_postings_nanos.push(nanos);
        largest_postings = count;
    }
    Ok(json!({
        "orders": orders.len(),
        "shops": shops.len(),
        "samples": samples,
        "seed": seed,
        "open_s": open.as_secs_f64(),
        "open_origin": format!("{origin:?}"),
        "shop_report": summary(shop_nanos),
        "order_report": summary(order_nanos),
        "every_shop": summary(sweep),
        "every_shop_s": sweep_time.as_secs_f64(),
        "largest_shop": {"shop_id": largest, "orders": largest_orders, "report_us": largest_nanos as f64 / 1_000.0},
        "postings": summary(postings_nanos),
        "largest_shop_postings": {"shop_id": largest, "postings": largest_postings, "latency": summary(largest_postings_nanos)},
        "errors": errors,
        "peak_rss_bytes": peak_rss_bytes(),
    }))
}
