//! [`Ledger::digest`]: one hash of everything the queries answer, so that
//! two ledgers (an incremental one and a replay, or two replicas) are
//! compared by comparing a line.
//!
//! Each order's facts are hashed alone (XXH3-128) and a shop's order hashes
//! are added up (modulo 2^128): a sum does not depend on the order it is
//! taken in, so the orders are visited in storage order, where the order
//! records and ids lie one after another in memory, instead of shop by shop
//! in id order (a cache miss for each record and each id, and a sort of the
//! shop's ids). The shops, in id order, then feed a SHA-256 with their
//! figures, bans, flags, the sum of their orders' hashes and their postings.

use std::ops::Range;

use sha2::{Digest, Sha256};
use twox_hash::XxHash3_128;

use super::tallies::{OrderFacts, OrderSums, TallyBasis};
use super::Ledger;
use crate::time::UnixNs;

/// How many orders [`DigestWork::order_runs`] puts in a run: enough that a
/// thread taking runs in turn rarely waits, few enough that the threads
/// finish together.
const ORDERS_PER_RUN: usize = 1 << 14;

impl Ledger {
    /// A hash, in hex, of the canonical projection state as of `as_of`: for
    /// every shop in id order its figures, bans and flags, the sum of its
    /// orders' hashes (each of an order's id, status, instants, judgments and
    /// deductions) and its postings, then the orphans; all in a fixed binary
    /// form (instants as nanoseconds, so no time is formatted). Equal for any
    /// two ledgers that answer every query alike, however their events
    /// arrived.
    pub fn digest(&self, as_of: UnixNs) -> String {
        let work = self.digest_work(as_of);
        let mut part = work.part();
        for run in work.order_runs() {
            work.add_orders(&mut part, run);
        }
        work.finish(vec![part])
    }

    /// The digest as of `as_of` in steps, so that a caller with threads (the
    /// store) adds up the orders on several of them: [`DigestWork::part`]
    /// for each thread, [`DigestWork::add_orders`] for each of
    /// [`DigestWork::order_runs`] on any thread, then [`DigestWork::finish`]
    /// with every part. Equal to [`Ledger::digest`] however the runs are
    /// shared out.
    pub fn digest_work(&self, as_of: UnixNs) -> DigestWork<'_> {
        let bases = (0..self.shops.len() as u32)
            .map(|shop| {
                self.shop_exists(&self.shops[shop as usize], as_of)
                    .then(|| self.tally_basis(shop, as_of))
            })
            .collect();
        DigestWork {
            ledger: self,
            as_of,
            bases,
        }
    }
}

/// The digest of a ledger as of an instant, being computed (see
/// [`Ledger::digest_work`]).
pub struct DigestWork<'a> {
    ledger: &'a Ledger,
    as_of: UnixNs,
    /// Each shop's basis, `None` for a shop that does not exist as of
    /// `as_of` (none of its orders does either).
    bases: Vec<Option<TallyBasis>>,
}

/// Sums over some orders of every shop: what one thread adds up.
pub struct DigestPart<'a> {
    shops: Vec<ShopPart<'a>>,
}

#[derive(Default)]
struct ShopPart<'a> {
    sums: OrderSums<'a>,
    /// The sum, modulo 2^128, of the orders' hashes.
    orders_hash: u128,
}

impl<'a> DigestWork<'a> {
    /// An empty part.
    pub fn part(&self) -> DigestPart<'a> {
        DigestPart {
            shops: (0..self.bases.len()).map(|_| ShopPart::default()).collect(),
        }
    }

    /// The orders in runs, each to be added once to some part.
    pub fn order_runs(&self) -> impl Iterator<Item = Range<u32>> {
        let orders = self.ledger.orders.len();
        (0..orders)
            .step_by(ORDERS_PER_RUN)
            .map(move |start| start as u32..(start + ORDERS_PER_RUN).min(orders) as u32)
    }

    /// Adds the orders of `run` to `part`.
    pub fn add_orders(&self, part: &mut DigestPart<'a>, run: Range<u32>) {
        let ledger = self.ledger;
        let mut feed = DigestFeed::default();
        for order in run.clone() {
            if (order - run.start).is_multiple_of(TOUCH_AHEAD) {
                ledger.touch_names(order..(order + TOUCH_AHEAD).min(run.end));
            }
            let Some(view) = ledger.view(order, self.as_of) else {
                continue;
            };
            let shop = view.paid.shop as usize;
            let Some(basis) = &self.bases[shop] else {
                continue;
            };
            let shop_part = &mut part.shops[shop];
            let facts = ledger.tally_order(&mut shop_part.sums, view, basis);
            feed.buffer.clear();
            feed_order(&mut feed, &facts, self.as_of);
            let hash = XxHash3_128::oneshot(&feed.buffer);
            shop_part.orders_hash = shop_part.orders_hash.wrapping_add(hash);
        }
    }

    /// The digest, from parts to which every run was added once.
    pub fn finish(self, parts: Vec<DigestPart<'a>>) -> String {
        let mut parts = parts.into_iter();
        let mut whole = parts.next().unwrap_or_else(|| self.part());
        for part in parts {
            for (into, from) in whole.shops.iter_mut().zip(part.shops) {
                into.sums.merge(from.sums);
                into.orders_hash = into.orders_hash.wrapping_add(from.orders_hash);
            }
        }
        let ledger = self.ledger;
        let mut shops: Vec<Option<ShopPart<'a>>> = whole.shops.into_iter().map(Some).collect();
        let mut feed = DigestFeed::hashing();
        for shop in ledger.sorted_shops() {
            let (Some(basis), Some(part)) =
                (&self.bases[shop as usize], shops[shop as usize].take())
            else {
                continue;
            };
            let tally = ledger.tally_of(shop, basis, part.sums, Vec::new());
            feed.text(ledger.shop_ids.get(shop));
            for n in [
                tally.orders as i64,
                tally.judgments as i64,
                tally.violating_orders as i64,
            ] {
                feed.number(n);
            }
            for n in [
                tally.charged_fen,
                tally.waived_fen,
                tally.pending_fen,
                tally.deposit_balance_fen,
            ] {
                feed.wide(n);
            }
            for n in [
                tally.due_orders as i64,
                tally.timed_out_orders as i64,
                tally.timeout_judgments as i64,
                tally.bans.len() as i64,
            ] {
                feed.number(n);
            }
            for (at, product, order) in &tally.bans {
                feed.number(at.0);
                feed.text(product);
                feed.text(order);
            }
            feed.number(tally.flags.len() as i64);
            for (at, order) in &tally.flags {
                feed.number(at.0);
                feed.text(order);
            }
            feed.hash128(part.orders_hash);
            // R14: the booked ledger is part of the state a replay must reach.
            let postings =
                super::postings::shop_postings(ledger, &ledger.shops[shop as usize], self.as_of);
            feed.wide(tally.booked_fen);
            feed.number(postings.len() as i64);
            for p in &postings {
                feed.number(p.run_day.0);
                feed.text(ledger.order_ids.get(p.order));
                for n in [
                    i64::from(p.number),
                    p.kind as i64,
                    p.amount_fen,
                    p.settle_day.0,
                ] {
                    feed.number(n);
                }
            }
        }
        for orphan in ledger.orphans(self.as_of) {
            feed.text(&orphan.order_id);
            feed.number(orphan.events as i64);
        }
        feed.finish()
    }
}

/// How many orders' names [`Ledger::touch_names`] reads at once: about as
/// many misses as a core keeps in flight (two or so an order).
const TOUCH_AHEAD: u32 = 8;

impl Ledger {
    /// Reads the texts an order's hash covers that lie far from its record
    /// (its product id, its tracking numbers), for the orders of `run` at
    /// once. Why: the arenas hold them in the order products and shipments
    /// first arrived, not in the orders' storage order, so each is a cache
    /// miss; read one order after another, each waits for the last, while
    /// these reads, independent of each other, overlap, and the hashing
    /// then finds them cached.
    fn touch_names(&self, run: Range<u32>) {
        let mut touched = 0u8;
        for order in run {
            let Some(paid) = self
                .orders
                .get(order as usize)
                .and_then(|rec| rec.paid.as_ref())
            else {
                continue;
            };
            let first = |text: &str| text.as_bytes().first().copied().unwrap_or(0);
            touched ^= first(self.product_ids.get(paid.product));
            for event in self.orders[order as usize].events.as_slice() {
                if let Some(tracking) = event.tracking() {
                    touched ^= first(self.tracking_nos.get(tracking));
                }
            }
        }
        // Kept, or the reads would be optimised away.
        std::hint::black_box(touched);
    }
}

/// The bytes of one order's facts that its hash covers: every figure of the
/// order that a report shows, and its events (the last, counted at the end,
/// so the bytes stay framed).
fn feed_order(feed: &mut DigestFeed, facts: &OrderFacts<'_>, as_of: UnixNs) {
    let view = &facts.view;
    feed.text(view.order_id());
    feed.text(view.product_id());
    let instant = |t: Option<UnixNs>| t.map_or(i64::MIN, |t| t.0);
    for n in [
        view.paid.amount_fen,
        view.paid.at.0,
        view.derived.deadline.0,
        view.status(as_of) as i64,
        instant(view.resolved_at(as_of)),
        facts.standing as i64,
        facts.revoked as i64,
        i64::from(facts.banned),
        i64::from(facts.flagged),
        instant(
            view.auto_closed(as_of)
                .then_some(view.derived.auto_close_at),
        ),
        view.refund_due_fen(as_of),
        i64::from(view.alternative_refund_required(as_of)),
        facts.deductions.len() as i64,
    ] {
        feed.number(n);
    }
    for d in &facts.deductions {
        for n in [
            i64::from(d.number),
            d.status as i64,
            d.amount_fen,
            d.charged_fen,
            d.waived_fen,
        ] {
            feed.number(n);
        }
    }
    // The order's events as of `as_of`, which its `explain` lines tell
    // (a shipment after the deadline was met changes no figure, but a
    // line). A tracking number by its text: its index is the order's own
    // arrival order.
    let mut events = 0;
    for event in view.events.iter().take_while(|e| e.at <= as_of) {
        feed.number(event.at.0);
        feed.number(event.kind as i64);
        match event.tracking() {
            Some(_) => feed.text(view.tracking_no(event)),
            None => feed.number(event.value),
        }
        events += 1;
    }
    feed.number(events);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical binary stream the digest hashes: length-prefixed texts and
/// fixed-width numbers, buffered and hashed in large chunks; or, without a
/// hasher, kept whole (an order's bytes).
#[derive(Default)]
struct DigestFeed {
    hasher: Option<Sha256>,
    buffer: Vec<u8>,
}

impl DigestFeed {
    fn hashing() -> DigestFeed {
        DigestFeed {
            hasher: Some(Sha256::default()),
            buffer: Vec::new(),
        }
    }

    fn text(&mut self, text: &str) {
        self.number(text.len() as i64);
        self.buffer.extend_from_slice(text.as_bytes());
        self.spill();
    }

    fn number(&mut self, n: i64) {
        self.buffer.extend_from_slice(&n.to_le_bytes());
        self.spill();
    }

    /// A sum that may exceed `i64`: as [`DigestFeed::number`] when it fits
    /// (the usual case, so the bytes fed stay those of an `i64`), else a
    /// marker and all 16 bytes.
    fn wide(&mut self, n: i128) {
        match i64::try_from(n) {
            Ok(n) if n != i64::MIN => self.number(n),
            _ => {
                self.number(i64::MIN);
                self.buffer.extend_from_slice(&n.to_le_bytes());
                self.spill();
            }
        }
    }

    /// A 128-bit hash, as 16 bytes.
    fn hash128(&mut self, hash: u128) {
        self.buffer.extend_from_slice(&hash.to_le_bytes());
        self.spill();
    }

    fn spill(&mut self) {
        if let Some(hasher) = &mut self.hasher {
            if self.buffer.len() >= 1 << 16 {
                hasher.update(&self.buffer);
                self.buffer.clear();
            }
        }
    }

    fn finish(self) -> String {
        let mut hasher = self.hasher.unwrap_or_default();
        hasher.update(&self.buffer);
        hex(&hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind};
    use crate::policy::Policy;

    fn fed(feed: impl FnOnce(&mut DigestFeed)) -> String {
        let mut digest = DigestFeed::hashing();
        feed(&mut digest);
        digest.finish()
    }

    #[test]
    fn texts_are_framed_so_that_moving_a_boundary_changes_the_hash() {
        let split = |a: &str, b: &str| {
            fed(|f| {
                f.text(a);
                f.text(b);
            })
        };
        assert_ne!(split("ab", "c"), split("a", "bc"));
        assert_eq!(split("ab", "c"), split("ab", "c"));
    }

    #[test]
    fn a_wide_sum_feeds_as_a_number_when_it_fits_and_apart_when_not() {
        for n in [0, 1, -1, i64::MAX, i64::MIN + 1] {
            assert_eq!(fed(|f| f.wide(i128::from(n))), fed(|f| f.number(n)), "{n}");
        }
        let past = i128::from(i64::MAX) + 1;
        assert_ne!(fed(|f| f.wide(past)), fed(|f| f.number(i64::MAX)));
        assert_ne!(fed(|f| f.wide(past)), fed(|f| f.wide(i128::from(i64::MIN))));
        assert_ne!(
            fed(|f| f.wide(i128::from(i64::MIN))),
            fed(|f| f.number(i64::MIN))
        );
    }

    #[test]
    fn large_feeds_hash_the_same_whatever_the_buffer_spills() {
        // Past the 64 KiB buffer, hashing in chunks equals one SHA-256 of
        // the whole stream.
        let texts: Vec<String> = (0..10_000).map(|i| format!("order-{i}")).collect();
        let digest = fed(|f| texts.iter().for_each(|t| f.text(t)));
        let mut whole = Vec::new();
        for t in &texts {
            whole.extend_from_slice(&(t.len() as i64).to_le_bytes());
            whole.extend_from_slice(t.as_bytes());
        }
        let expected: String = Sha256::digest(&whole)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, expected);
    }

    #[test]
    fn the_digest_is_the_same_however_the_orders_are_shared_out() {
        // Orders dealt one at a time, in reverse, to three parts (as threads
        // taking runs would): the sums are the digest's.
        use super::super::fixtures::{at, folded, paid, shipped, topped_up};
        let mut events = vec![topped_up("S3", 500, 0)];
        for i in 0..40 {
            let order = format!("O{i}");
            events.push(paid(&order, &format!("S{}", i % 3), i));
            if i % 4 == 0 {
                events.push(shipped(&order, "T1", i + 1));
            }
        }
        let ledger = folded(Policy::default(), &events);
        for hours in [0, 30, 100, 1000] {
            let work = ledger.digest_work(at(hours));
            let mut parts: Vec<_> = (0..3).map(|_| work.part()).collect();
            for order in (0..ledger.orders.len() as u32).rev() {
                work.add_orders(&mut parts[order as usize % 3], order..order + 1);
            }
            assert_eq!(work.finish(parts), ledger.digest(at(hours)), "hour {hours}");
        }
    }

    #[test]
    fn orders_swapped_between_shops_change_the_digest() {
        // Each shop holds one order, not yet due, so every shop figure is
        // the same either way: only the orders' own facts (their ids and
        // amounts) tell which shop holds which. A sum of order hashes over
        // the whole ledger would not see the swap; one per shop does.
        use super::super::fixtures::{at, folded, paid};
        let with_amounts = |events: [(&str, &str, i64); 2]| {
            let events: Vec<Event> = events
                .iter()
                .map(|(order, shop, amount_fen)| {
                    let mut event = paid(order, shop, 0);
                    if let EventKind::Paid { amount_fen: a, .. } = &mut event.kind {
                        *a = *amount_fen;
                    }
                    event
                })
                .collect();
            folded(Policy::default(), &events).digest(at(1))
        };
        let one = with_amounts([("O1", "S1", 100), ("O2", "S2", 200)]);
        let swapped = with_amounts([("O1", "S2", 100), ("O2", "S1", 200)]);
        assert_ne!(one, swapped);
        assert_eq!(one, with_amounts([("O2", "S2", 200), ("O1", "S1", 100)]));
    }

    #[test]
    fn the_digest_sees_an_event_and_not_its_arrival_order() {
        let at = |hours: i64| UnixNs(1_772_000_000_000_000_000 + hours * 3_600_000_000_000);
        let paid = Event {
            event_id: 1,
            at: at(0),
            kind: EventKind::Paid {
                order_id: "O1".into(),
                shop_id: "S1".into(),
                product_id: "P1".into(),
                amount_fen: 100,
                ship_by: None,
            },
        };
        let shipped = Event {
            event_id: 2,
            at: at(1),
            kind: EventKind::Shipped {
                order_id: "O1".into(),
                tracking_no: "T1".into(),
            },
        };
        let fold = |events: &[&Event]| {
            let mut ledger = Ledger::new(Policy::default());
            for e in events {
                ledger.apply(e, e.at).unwrap();
            }
            ledger.digest(at(1000))
        };
        assert_eq!(fold(&[&paid, &shipped]), fold(&[&shipped, &paid]));
        assert_ne!(fold(&[&paid, &shipped]), fold(&[&paid]));
        assert_ne!(fold(&[&paid]), fold(&[]));
    }
}
