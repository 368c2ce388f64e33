//! Criterion micro-benchmarks of the rules core, on a generated workload
//! (penalty-gen, seed 1): parsing a line, the per-event fold
//! (`Ledger::apply`), and the two report queries over random ids.
//!
//! `cargo bench -p penalty-bench`; `BENCH_ORDERS` sets the size of the ledger
//! the queries run on (default 50 000 orders over 1 000 shops).

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use penalty_core::event::parse_line;
use penalty_core::{Event, Ledger, Policy, UnixNs};
use penalty_gen::{generate, GenOptions, AS_OF_RFC3339};

/// The events a log would hold for a workload: valid, each `event_id` once,
/// the first `paid` of each order (what ingest keeps).
fn workload(orders: u64, shops: u64) -> (Vec<Vec<u8>>, Vec<Event>) {
    let mut bytes = Vec::new();
    generate(
        &GenOptions {
            orders,
            shops,
            seed: 1,
        },
        &mut bytes,
    )
    .expect("writing to memory cannot fail");
    let lines: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut ids = HashSet::new();
    let mut paid = HashSet::new();
    let events = lines
        .iter()
        .filter_map(|line| parse_line(line).ok())
        .map(|parsed| parsed.event)
        .filter(|event| ids.insert(event.event_id))
        .filter(|event| {
            event
                .paid_order_id()
                .is_none_or(|order| paid.insert(order.to_string()))
        })
        .collect();
    (lines, events)
}

fn as_of() -> UnixNs {
    UnixNs::parse_rfc3339(AS_OF_RFC3339).expect("a valid constant")
}

fn fold(events: &[Event]) -> Ledger {
    let recorded_at = as_of();
    let mut ledger = Ledger::new(Policy::default());
    for event in events {
        ledger
            .apply(event, recorded_at)
            .expect("the workload holds one paid per order");
    }
    ledger
}

fn parse_and_apply(c: &mut Criterion) {
    let (lines, events) = workload(10_000, 200);
    let mut group = c.benchmark_group("core");
    group.sample_size(20);
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse_line (per line)", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(parse_line(black_box(line)).is_ok());
            }
        })
    });
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(
        "Ledger::apply (per event, 10k orders into an empty ledger)",
        |b| {
            b.iter_batched(
                || Ledger::new(Policy::default()),
                |mut ledger| {
                    let recorded_at = as_of();
                    for event in &events {
                        black_box(ledger.apply(event, recorded_at).is_ok());
                    }
                    ledger
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

fn reports(c: &mut Criterion) {
    let orders: u64 = std::env::var("BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let (_, events) = workload(orders, (orders / 50).max(1));
    let ledger = fold(&events);
    let as_of = as_of();
    let mut shop_ids: Vec<String> = ledger.shop_ids().map(str::to_string).collect();
    let mut order_ids: Vec<String> = ledger.order_ids().map(str::to_string).collect();
    shop_ids.sort();
    order_ids.sort();
    // A fixed pseudo-random walk over the ids (a multiplicative step modulo
    // the count), the same in every run.
    let pick = |ids: &[String], i: usize| ids[(i.wrapping_mul(2_654_435_761)) % ids.len()].clone();
    let shops: Vec<String> = (0..1_024).map(|i| pick(&shop_ids, i)).collect();
    let orders: Vec<String> = (0..1_024).map(|i| pick(&order_ids, i)).collect();
    let mut group = c.benchmark_group("reports");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("shop_report (random shop, with deductions)", |b| {
        b.iter(|| {
            i = (i + 1) % shops.len();
            black_box(ledger.shop_report(&shops[i], as_of, true).is_ok())
        })
    });
    let mut i = 0;
    group.bench_function("order_report (random order)", |b| {
        b.iter(|| {
            i = (i + 1) % orders.len();
            black_box(ledger.order_report(&orders[i], as_of).is_ok())
        })
    });
    // The largest shop (Zipf: shop 0 holds about a tenth of the orders).
    let largest = "S000000";
    if ledger.shop_report(largest, as_of, false).is_ok() {
        group.bench_function("shop_report (largest shop, with deductions)", |b| {
            b.iter(|| black_box(ledger.shop_report(largest, as_of, true).is_ok()))
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_apply, reports);
criterion_main!(benches);
