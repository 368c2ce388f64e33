//! A seeded generator of realistic penalty-ledger workloads, written as JSON
//! Lines per EVENTS.md: the input of the benchmark (`bench/run`,
//! docs/PERFORMANCE.md) and of anyone who wants a large, plausible log.
//!
//! What a workload looks like, for `orders` orders over `shops` shops:
//!
//! - Payments spread evenly over [`SPAN_DAYS`] days from [`START_RFC3339`],
//!   over shops of Zipf-like sizes (shop `i` gets a share proportional to
//!   `1 / i`: the largest shop of 10 000 has about 10% of the orders, the
//!   median one a few dozen per million), each shop selling a few dozen
//!   products.
//! - The order mix of the issue: about 85% shipped on time, 7% shipped late by
//!   hours to days, 5% refunded without shipping (some in two partial
//!   refunds, some after a failed refund), 3% never shipped. About 3% of the
//!   orders are presale orders with a `ship_by` 5 to 15 days out.
//! - Across that mix: about 10% of shipments are `tracking_uploaded` rather
//!   than `shipped`; about 2% of shipments have their tracking number
//!   rejected and a new one uploaded; about 3% of shipped orders get a partial
//!   refund later; about 15% of the orders with a judgment win an appeal
//!   (`judgment_revoked`); every shop tops its deposit up once before the
//!   first payment and again now and then.
//! - Arrival order is not time order: events come roughly in time order but
//!   are shuffled within a window of [`SHUFFLE_WINDOW`] lines, and about 2%
//!   arrive hours to days late (a shipment can then arrive before its
//!   payment, R13). About 1% of the lines are exact duplicates of an earlier
//!   line (a re-sent line), and about 0.02% of the orders get a second `paid`
//!   under a new `event_id` some hours later, which ingest rejects
//!   (`order_already_paid`).
//! - Timestamps are written with `+08:00` (70%) or `Z` (30%), to the second.
//!
//! Everything is derived from the seed through a small PRNG (splitmix64), so
//! the same options give the same bytes on every platform. Lines are written
//! with `write!`, not through serde, because the benchmark's 2 million events
//! must be generated in a few seconds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::Write;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Orders to generate.
    pub orders: u64,
    /// Shops they are spread over (skewed sizes).
    pub shops: u64,
    /// The seed: the same options give the same bytes.
    pub seed: u64,
}

/// What was generated.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenStats {
    /// Lines written.
    pub lines: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Distinct events written (lines minus exact duplicates).
    pub events: u64,
    /// Lines that repeat an earlier line byte for byte (ingest: duplicates).
    pub duplicate_lines: u64,
    /// Second `paid` events under a new `event_id` (ingest: rejected as
    /// `order_already_paid`).
    pub conflicting_paid: u64,
    /// Orders by the category they were generated in.
    pub mix: OrderMix,
}

/// How many orders of each category were generated (the issue's 85/7/5/3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrderMix {
    /// Shipped before the deadline.
    pub on_time: u64,
    /// Shipped after the deadline, hours to days late.
    pub late: u64,
    /// Refunded in full without being shipped.
    pub refunded: u64,
    /// Never shipped nor refunded.
    pub never_shipped: u64,
    /// Of all of them, presale orders (a `ship_by`).
    pub presale: u64,
    /// Of all of them, orders whose first tracking number was rejected.
    pub tracking_rejected: u64,
    /// Of all of them, orders with a judgment that was revoked (appeal).
    pub revoked: u64,
}

/// The first payment is at this instant (00:00 in UTC+08:00).
pub const START_RFC3339: &str = "2026-01-01T00:00:00+08:00";
/// Payments are spread over this many days.
pub const SPAN_DAYS: i64 = 60;
/// An `as_of` after every event of a generated workload (the last payment is
/// at day 60, the last follow-up less than 30 days after it): what the
/// benchmark asks at.
pub const AS_OF_RFC3339: &str = "2026-04-01T00:00:00+08:00";
/// Lines are shuffled within a window of this many lines.
pub const SHUFFLE_WINDOW: usize = 256;

/// `START_RFC3339` in seconds since the epoch.
const START_SECONDS: i64 = 1_767_196_800;
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;
/// The default shipping window (R1, policy `ship_window_hours`).
const SHIP_WINDOW: i64 = 48 * HOUR;
/// Products per shop.
const PRODUCTS_PER_SHOP: u64 = 40;
const CARRIERS: [&str; 5] = ["SF", "YTO", "ZTO", "JD", "EMS"];

/// Writes the workload as JSON Lines to `out`.
pub fn generate(options: &GenOptions, out: &mut dyn Write) -> std::io::Result<GenStats> {
    Generator::new(options).run(out)
}

/// splitmix64: tiny, fast, and good enough for a workload; the same on every
/// platform, which is what determinism needs.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift: the bias is below
    /// 2^-32 for the ranges used here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What an event says, in a compact form; it becomes a line only when it is
/// written, so that the arrival queue holds a few dozen bytes per event.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Paid {
        shop: u32,
        product: u32,
        amount_fen: i64,
        ship_by: Option<i64>,
    },
    /// `shipped` or, with `uploaded`, `tracking_uploaded`; `attempt` numbers
    /// the tracking numbers of one order.
    Shipped {
        attempt: u8,
        carrier: u8,
        uploaded: bool,
    },
    Rejected {
        attempt: u8,
        carrier: u8,
    },
    Refunded {
        amount_fen: i64,
    },
    RefundFailed,
    Revoked {
        judgment: u8,
    },
    TopUp {
        shop: u32,
        amount_fen: i64,
    },
}

/// One event waiting to be written. `id` is its position in generation order
/// and, through the seed, its `event_id`.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// When it reaches the input: its `at`, or later for a late arrival.
    arrive: i64,
    /// Seconds since the epoch.
    at: i64,
    id: u64,
    order: u64,
    /// Written with `Z` rather than `+08:00`.
    utc: bool,
    kind: Kind,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` pops the earliest arrival first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.arrive, other.id).cmp(&(self.arrive, self.id))
    }
}

/// A line to write again later (an exact duplicate), keyed by the line number
/// at which it is re-sent.
#[derive(Clone, Copy, Debug)]
struct Resend {
    at_line: u64,
    event: Pending,
}

impl PartialEq for Resend {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Resend {}
impl PartialOrd for Resend {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Resend {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_line, other.event.id).cmp(&(self.at_line, self.event.id))
    }
}

struct Generator {
    options: GenOptions,
    rng: Rng,
    /// Seeds of the event ids, independent of the stream of choices.
    id_key: u64,
    /// Cumulative shop weights (Zipf, exponent 1).
    shop_cdf: Vec<f64>,
    queue: BinaryHeap<Pending>,
    next_id: u64,
    /// The local shuffle: lines wait here and leave in random order.
    window: Vec<Pending>,
    resends: BinaryHeap<Resend>,
    line_buffer: Vec<u8>,
    stats: GenStats,
}

impl Generator {
    fn new(options: &GenOptions) -> Generator {
        let shops = options.shops.max(1);
        let mut shop_cdf = Vec::with_capacity(shops as usize);
        let mut total = 0.0;
        for i in 0..shops {
            total += 1.0 / (i + 1) as f64;
            shop_cdf.push(total);
        }
        for w in &mut shop_cdf {
            *w /= total;
        }
        Generator {
            options: GenOptions {
                shops,
                ..options.clone()
            },
            rng: Rng(mix64(options.seed ^ 0x5eed_0f1e_d9e7)),
            id_key: mix64(options.seed.wrapping_add(0x0001_d50f_e7e9)),
            shop_cdf,
            queue: BinaryHeap::new(),
            next_id: 0,
            window: Vec::with_capacity(SHUFFLE_WINDOW),
            resends: BinaryHeap::new(),
            line_buffer: Vec::with_capacity(512),
            stats: GenStats::default(),
        }
    }

    fn run(mut self, out: &mut dyn Write) -> std::io::Result<GenStats> {
        // Every shop tops its deposit up before the first payment.
        for shop in 0..self.options.shops {
            let at = START_SECONDS - self.rng.range(HOUR, 2 * DAY);
            let amount_fen = 100_000 * self.rng.range(1, 20);
            self.push(
                at,
                0,
                Kind::TopUp {
                    shop: shop as u32,
                    amount_fen,
                },
            );
        }
        let span = SPAN_DAYS * DAY;
        let orders = self.options.orders;
        for order in 0..orders {
            // Evenly spread, each in its own slot, so payments come in time
            // order and the queue can release everything before them.
            let slot_start = START_SECONDS
                + (i128::from(span) * i128::from(order) / i128::from(orders.max(1))) as i64;
            let slot_end = START_SECONDS
                + (i128::from(span) * i128::from(order + 1) / i128::from(orders.max(1))) as i64;
            let paid_at = self.rng.range(slot_start, (slot_end - 1).max(slot_start));
            self.order(order, paid_at);
            while self.queue.peek().is_some_and(|p| p.arrive <= paid_at) {
                if let Some(event) = self.queue.pop() {
                    self.arrive(event, out)?;
                }
            }
        }
        while let Some(event) = self.queue.pop() {
            self.arrive(event, out)?;
        }
        while !self.window.is_empty() {
            let index = self.rng.below(self.window.len() as u64) as usize;
            let event = self.window.swap_remove(index);
            self.emit(event, out)?;
        }
        while let Some(resend) = self.resends.pop() {
            self.write_line(&resend.event, out)?;
            self.stats.duplicate_lines += 1;
        }
        Ok(self.stats)
    }

    /// Queues one event of an order (or a shop, with `order` unused).
    fn push(&mut self, at: i64, order: u64, kind: Kind) {
        let arrive = if self.rng.chance(0.02) {
            at + self.rng.range(HOUR, 3 * DAY)
        } else {
            at
        };
        let utc = self.rng.chance(0.3);
        self.queue.push(Pending {
            arrive,
            at,
            id: self.next_id,
            order,
            utc,
            kind,
        });
        self.next_id += 1;
    }

    fn pick_shop(&mut self) -> u32 {
        let u = self.rng.unit();
        let index = self.shop_cdf.partition_point(|w| *w <= u);
        index.min(self.shop_cdf.len() - 1) as u32
    }

    /// Generates every event of one order.
    fn order(&mut self, order: u64, paid_at: i64) {
        let shop = self.pick_shop();
        let product = self.rng.below(PRODUCTS_PER_SHOP) as u32;
        let amount_fen = match self.rng.below(10) {
            0..=5 => self.rng.range(500, 20_000),
            6..=8 => self.rng.range(20_000, 100_000),
            _ => self.rng.range(100_000, 2_000_000),
        };
        let ship_by = self
            .rng
            .chance(0.03)
            .then(|| paid_at + self.rng.range(5 * DAY, 15 * DAY));
        if ship_by.is_some() {
            self.stats.mix.presale += 1;
        }
        let deadline = ship_by.unwrap_or(paid_at + SHIP_WINDOW);
        self.push(
            paid_at,
            order,
            Kind::Paid {
                shop,
                product,
                amount_fen,
                ship_by,
            },
        );
        if self.rng.chance(0.0002) {
            // A client re-sent the payment under a new id, with another amount.
            let at = paid_at + self.rng.range(HOUR, DAY);
            self.push(
                at,
                order,
                Kind::Paid {
                    shop,
                    product,
                    amount_fen: amount_fen + 100,
                    ship_by,
                },
            );
            self.stats.conflicting_paid += 1;
        }
        if self.rng.chance(0.005) {
            let amount_fen = 100_000 * self.rng.range(1, 10);
            let at = paid_at + self.rng.range(0, DAY);
            self.push(at, 0, Kind::TopUp { shop, amount_fen });
        }

        // The mix: 85% on time, 7% late, 5% refunded, 3% never shipped.
        let category = self.rng.below(100);
        // When the order stops being judged, for the appeals below.
        let judged_until = match category {
            0..=84 => {
                self.stats.mix.on_time += 1;
                let shipped_at = self.rng.range(paid_at + HOUR, deadline - HOUR);
                self.shipment(order, shipped_at, amount_fen);
                None
            }
            85..=91 => {
                self.stats.mix.late += 1;
                let late_by = if self.rng.chance(0.5) {
                    self.rng.range(HOUR, DAY)
                } else {
                    self.rng.range(DAY, 5 * DAY)
                };
                let shipped_at = deadline + late_by;
                self.shipment(order, shipped_at, amount_fen);
                Some(shipped_at)
            }
            92..=96 => {
                self.stats.mix.refunded += 1;
                let refunded_at = paid_at + self.rng.range(2 * HOUR, 4 * DAY);
                if self.rng.chance(0.1) {
                    // The first attempt failed; the platform retried.
                    self.push(refunded_at - HOUR, order, Kind::RefundFailed);
                }
                if self.rng.chance(0.2) && amount_fen >= 2 {
                    let first = amount_fen / 2;
                    let first_at = refunded_at - self.rng.range(HOUR, DAY);
                    self.push(first_at, order, Kind::Refunded { amount_fen: first });
                    self.push(
                        refunded_at,
                        order,
                        Kind::Refunded {
                            amount_fen: amount_fen - first,
                        },
                    );
                } else {
                    self.push(refunded_at, order, Kind::Refunded { amount_fen });
                }
                (refunded_at > deadline).then_some(refunded_at)
            }
            _ => {
                self.stats.mix.never_shipped += 1;
                Some(deadline + 3 * DAY)
            }
        };
        // Appeals: some orders with a judgment get one of them revoked.
        if let Some(until) = judged_until {
            let judgments = ((until - deadline) / DAY + 1).clamp(1, 3);
            if self.rng.chance(0.15) {
                self.stats.mix.revoked += 1;
                let judgment = self.rng.range(1, judgments) as u8;
                let judged_at = deadline + i64::from(judgment - 1) * DAY;
                let at = judged_at + self.rng.range(DAY, 7 * DAY);
                self.push(at, order, Kind::Revoked { judgment });
            }
        }
    }

    /// A shipment at `shipped_at`, with its possible tracking rejection and
    /// re-upload, and a possible later partial refund.
    fn shipment(&mut self, order: u64, shipped_at: i64, amount_fen: i64) {
        let carrier = self.rng.below(CARRIERS.len() as u64) as u8;
        let uploaded = self.rng.chance(0.1);
        self.push(
            shipped_at,
            order,
            Kind::Shipped {
                attempt: 1,
                carrier,
                uploaded,
            },
        );
        if self.rng.chance(0.02) {
            self.stats.mix.tracking_rejected += 1;
            let rejected_at = shipped_at + self.rng.range(2 * HOUR, 36 * HOUR);
            self.push(
                rejected_at,
                order,
                Kind::Rejected {
                    attempt: 1,
                    carrier,
                },
            );
            let uploaded_at = rejected_at + self.rng.range(HOUR, 2 * DAY);
            self.push(
                uploaded_at,
                order,
                Kind::Shipped {
                    attempt: 2,
                    carrier,
                    uploaded: true,
                },
            );
        }
        if self.rng.chance(0.03) && amount_fen >= 2 {
            let at = shipped_at + self.rng.range(DAY, 10 * DAY);
            let part = self.rng.range(1, amount_fen / 2);
            self.push(at, order, Kind::Refunded { amount_fen: part });
        }
    }

    /// An event reaches the input: it goes through the shuffle window.
    fn arrive(&mut self, event: Pending, out: &mut dyn Write) -> std::io::Result<()> {
        if self.window.len() < SHUFFLE_WINDOW {
            self.window.push(event);
            return Ok(());
        }
        let index = self.rng.below(SHUFFLE_WINDOW as u64) as usize;
        let leaving = std::mem::replace(&mut self.window[index], event);
        self.emit(leaving, out)
    }

    /// Writes an event, any duplicates due, and schedules a re-send.
    fn emit(&mut self, event: Pending, out: &mut dyn Write) -> std::io::Result<()> {
        while self
            .resends
            .peek()
            .is_some_and(|r| r.at_line <= self.stats.lines)
        {
            if let Some(resend) = self.resends.pop() {
                self.write_line(&resend.event, out)?;
                self.stats.duplicate_lines += 1;
            }
        }
        self.write_line(&event, out)?;
        self.stats.events += 1;
        if self.rng.chance(0.01) {
            let at_line = self.stats.lines + self.rng.range(1, 5_000) as u64;
            self.resends.push(Resend { at_line, event });
        }
        Ok(())
    }

    fn write_line(&mut self, event: &Pending, out: &mut dyn Write) -> std::io::Result<()> {
        let mut line = std::mem::take(&mut self.line_buffer);
        line.clear();
        self.format(event, &mut line)?;
        out.write_all(&line)?;
        self.stats.lines += 1;
        self.stats.bytes += line.len() as u64;
        self.line_buffer = line;
        Ok(())
    }

    /// One line of EVENTS.md, keys in a fixed order, ending in `\n`.
    fn format(&self, event: &Pending, line: &mut Vec<u8>) -> std::io::Result<()> {
        let a = mix64(self.id_key ^ event.id.wrapping_mul(2));
        let b = mix64(self.id_key ^ event.id.wrapping_mul(2).wrapping_add(1));
        // A version 4, variant 1 UUID, as a client would make one.
        write!(
            line,
            r#"{{"event_id":"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}","type":""#,
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff,
        )?;
        let type_name = match event.kind {
            Kind::Paid { .. } => "paid",
            Kind::Shipped {
                uploaded: false, ..
            } => "shipped",
            Kind::Shipped { uploaded: true, .. } => "tracking_uploaded",
            Kind::Rejected { .. } => "tracking_rejected",
            Kind::Refunded { .. } => "refunded",
            Kind::RefundFailed => "refund_failed",
            Kind::Revoked { .. } => "judgment_revoked",
            Kind::TopUp { .. } => "deposit_topped_up",
        };
        line.extend_from_slice(type_name.as_bytes());
        line.extend_from_slice(br#"","at":""#);
        write_instant(line, event.at, event.utc)?;
        line.push(b'"');
        let order = event.order;
        match event.kind {
            Kind::Paid {
                shop,
                product,
                amount_fen,
                ship_by,
            } => {
                write!(
                    line,
                    r#","order_id":"O{order:09}","shop_id":"S{shop:06}","product_id":"P{shop:06}-{product:02}","amount_fen":{amount_fen}"#
                )?;
                if let Some(ship_by) = ship_by {
                    line.extend_from_slice(br#","ship_by":""#);
                    write_instant(line, ship_by, event.utc)?;
                    line.push(b'"');
                }
            }
            Kind::Shipped {
                attempt, carrier, ..
            } => {
                let carrier = CARRIERS[usize::from(carrier)];
                write!(
                    line,
                    r#","order_id":"O{order:09}","tracking_no":"{carrier}{order:010}{attempt:02}","carrier":"{carrier}""#
                )?;
            }
            Kind::Rejected { attempt, carrier } => {
                // The rejected number is the one the first shipment carried.
                let carrier = CARRIERS[usize::from(carrier)];
                write!(
                    line,
                    r#","order_id":"O{order:09}","tracking_no":"{carrier}{order:010}{attempt:02}""#
                )?;
            }
            Kind::Refunded { amount_fen } => {
                write!(
                    line,
                    r#","order_id":"O{order:09}","amount_fen":{amount_fen}"#
                )?;
            }
            Kind::RefundFailed => {
                write!(line, r#","order_id":"O{order:09}""#)?;
            }
            Kind::Revoked { judgment } => {
                write!(
                    line,
                    r#","order_id":"O{order:09}","judgment":{judgment},"reason":"appeal upheld""#
                )?;
            }
            Kind::TopUp { shop, amount_fen } => {
                write!(line, r#","shop_id":"S{shop:06}","amount_fen":{amount_fen}"#)?;
            }
        }
        line.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS` and `+08:00` or `Z`.
fn write_instant(line: &mut Vec<u8>, seconds: i64, utc: bool) -> std::io::Result<()> {
    let local = if utc { seconds } else { seconds + 8 * HOUR };
    let days = local.div_euclid(DAY);
    let second_of_day = local.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    write!(
        line,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{}",
        second_of_day / HOUR,
        second_of_day % HOUR / 60,
        second_of_day % 60,
        if utc { "Z" } else { "+08:00" }
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use penalty_core::event::{parse_line, EventKind};

    use super::*;

    fn workload(orders: u64, shops: u64, seed: u64) -> (Vec<u8>, GenStats) {
        let mut out = Vec::new();
        let stats = generate(
            &GenOptions {
                orders,
                shops,
                seed,
            },
            &mut out,
        )
        .unwrap();
        (out, stats)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, _) = workload(3_000, 50, 7);
        let (b, _) = workload(3_000, 50, 7);
        let (c, _) = workload(3_000, 50, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(
            civil_from_days(START_SECONDS.div_euclid(DAY)),
            (2025, 12, 31)
        );
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut line = Vec::new();
        write_instant(&mut line, START_SECONDS, false).unwrap();
        assert_eq!(line, START_RFC3339.as_bytes());
    }

    #[test]
    fn tiny_and_empty_workloads_are_valid() {
        let (out, stats) = workload(0, 0, 1);
        assert_eq!(stats.lines, out.split(|b| *b == b'\n').count() as u64 - 1);
        let (_, stats) = workload(1, 1, 1);
        assert!(stats.events >= 2);
    }

    /// Every line is valid per EVENTS.md, the stats count what was written,
    /// and the order mix is the issue's, measured from the lines themselves.
    #[test]
    fn every_line_parses_and_the_mix_is_as_asked() {
        let (out, stats) = workload(40_000, 400, 1);
        assert_eq!(stats.bytes, out.len() as u64);
        assert_eq!(stats.lines, stats.events + stats.duplicate_lines);

        struct Order {
            paid_at: i64,
            deadline: i64,
            amount_fen: i64,
            first_shipment: Option<i64>,
            refunded_fen: i64,
            rejected: bool,
            revoked: bool,
        }
        let mut orders: HashMap<String, Order> = HashMap::new();
        let mut later: Vec<penalty_core::Event> = Vec::new();
        let mut seen: HashMap<u128, Vec<u8>> = HashMap::new();
        let mut duplicates = 0u64;
        let mut out_of_order = 0u64;
        let mut paid_before_seen = 0u64;
        let mut max_at = i64::MIN;
        let mut lines = 0u64;
        let mut shops = HashSet::new();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines += 1;
            let parsed = parse_line(line)
                .unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
            let event = parsed.event;
            if let Some(first) = seen.get(&event.event_id) {
                assert_eq!(
                    first, &parsed.canonical_json,
                    "an id is reused only by a duplicate"
                );
                duplicates += 1;
                continue;
            }
            seen.insert(event.event_id, parsed.canonical_json);
            if event.at.0 < max_at {
                out_of_order += 1;
            }
            max_at = max_at.max(event.at.0);
            match &event.kind {
                EventKind::Paid {
                    order_id,
                    shop_id,
                    amount_fen,
                    ship_by,
                    ..
                } => {
                    shops.insert(shop_id.clone());
                    let paid_at = event.at.0 / 1_000_000_000;
                    if orders.contains_key(order_id) {
                        // The re-sent payment under a new id: ingest keeps
                        // the first.
                        continue;
                    }
                    orders.insert(
                        order_id.clone(),
                        Order {
                            paid_at,
                            deadline: ship_by
                                .map(|s| s.0 / 1_000_000_000)
                                .unwrap_or(paid_at + SHIP_WINDOW),
                            amount_fen: *amount_fen,
                            first_shipment: None,
                            refunded_fen: 0,
                            rejected: false,
                            revoked: false,
                        },
                    );
                }
                EventKind::DepositToppedUp { .. } => {}
                _ => {
                    if !orders.contains_key(event.order_id().unwrap()) {
                        paid_before_seen += 1;
                    }
                    later.push(event);
                }
            }
        }
        for event in later {
            let order = orders.get_mut(event.order_id().unwrap()).unwrap();
            let at = event.at.0 / 1_000_000_000;
            match event.kind {
                EventKind::Shipped { .. } | EventKind::TrackingUploaded { .. } => {
                    order.first_shipment = Some(order.first_shipment.map_or(at, |s| s.min(at)));
                }
                EventKind::TrackingRejected { .. } => order.rejected = true,
                EventKind::Refunded { amount_fen, .. } => order.refunded_fen += amount_fen,
                EventKind::JudgmentRevoked { .. } => order.revoked = true,
                _ => {}
            }
        }
        let mut mix = OrderMix::default();
        for order in orders.values() {
            match order.first_shipment {
                Some(at) if at < order.deadline => mix.on_time += 1,
                Some(_) => mix.late += 1,
                None if order.refunded_fen >= order.amount_fen => mix.refunded += 1,
                None => mix.never_shipped += 1,
            }
            mix.presale += u64::from(order.deadline != order.paid_at + SHIP_WINDOW);
            mix.tracking_rejected += u64::from(order.rejected);
            mix.revoked += u64::from(order.revoked);
        }
        assert_eq!(orders.len(), 40_000);
        assert_eq!(mix, stats.mix, "the lines say what the generator meant");
        let share = |n: u64| n as f64 / 40_000.0;
        let near = |n: u64, expected: f64, tolerance: f64| {
            let got = share(n);
            assert!(
                (got - expected).abs() <= tolerance,
                "share {got} is not within {tolerance} of {expected}"
            );
        };
        near(mix.on_time, 0.85, 0.01);
        near(mix.late, 0.07, 0.01);
        near(mix.refunded, 0.05, 0.01);
        near(mix.never_shipped, 0.03, 0.01);
        near(mix.presale, 0.03, 0.01);
        near(mix.tracking_rejected, 0.02 * 0.92, 0.005);
        assert!(mix.revoked > 0);
        // About 1% exact duplicates; events out of time order; some events
        // before their order's payment (R13); skewed shops.
        assert_eq!(duplicates, stats.duplicate_lines);
        let duplicate_share = duplicates as f64 / lines as f64;
        assert!(
            (0.005..0.015).contains(&duplicate_share),
            "{duplicate_share}"
        );
        assert!(out_of_order as f64 / lines as f64 > 0.05, "{out_of_order}");
        assert!(paid_before_seen > 0);
        assert!(shops.len() > 300, "{}", shops.len());
    }

    #[test]
    fn shop_sizes_are_skewed() {
        let (out, _) = workload(20_000, 1_000, 3);
        let mut per_shop: HashMap<String, u64> = HashMap::new();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let EventKind::Paid { shop_id, .. } = parse_line(line).unwrap().event.kind {
                *per_shop.entry(shop_id).or_default() += 1;
            }
        }
        let mut sizes: Vec<u64> = per_shop.into_values().collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        // Zipf with exponent 1 over 1000 shops: the largest holds about 13%.
        assert!(sizes[0] > 2_000, "{sizes:?}");
        assert!(sizes[sizes.len() / 2] < 30, "{}", sizes[sizes.len() / 2]);
    }
}
