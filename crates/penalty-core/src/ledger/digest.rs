//! [`Ledger::digest`]: one hash of everything the queries answer, so that
//! two ledgers (an incremental one and a replay, or two replicas) are
//! compared by comparing a line.

use sha2::{Digest, Sha256};

use super::tallies::{facts_by_order_id, FactsKept};
use super::Ledger;
use crate::time::UnixNs;

impl Ledger {
    /// A SHA-256, in hex, of the canonical projection state as of `as_of`:
    /// for every shop in id order its figures, bans and flags, then each of its
    /// orders in id order with its status, instants, judgments and deductions,
    /// then the orphans; all in a fixed binary form (instants as nanoseconds,
    /// so no time is formatted). Equal for any two ledgers that answer every
    /// query alike, however their events arrived.
    pub fn digest(&self, as_of: UnixNs) -> String {
        let mut feed = DigestFeed::hashing();
        for shop in self.sorted_shops() {
            self.feed_shop(&mut feed, shop, as_of);
        }
        self.feed_orphans(&mut feed, as_of);
        feed.finish()
    }

    /// The shops in the order [`Ledger::digest`] hashes them, each with a
    /// weight (its orders) for sharing them out: a caller that computes the
    /// digest in pieces ([`Ledger::digest_piece`]) cuts this list into runs.
    pub fn digest_shops(&self) -> Vec<(u32, usize)> {
        self.sorted_shops()
            .into_iter()
            .map(|shop| (shop, self.shops[shop as usize].orders.len()))
            .collect()
    }

    /// The bytes [`Ledger::digest`] hashes for a run of `shops` taken in
    /// order from [`Ledger::digest_shops`]. Hashing the pieces of
    /// consecutive runs, then [`Ledger::digest_last_piece`], with a
    /// [`DigestHasher`] gives the digest: pieces are independent, so they
    /// may be computed on several threads (the store does).
    pub fn digest_piece(&self, shops: &[u32], as_of: UnixNs) -> Vec<u8> {
        let mut feed = DigestFeed::default();
        for &shop in shops {
            self.feed_shop(&mut feed, shop, as_of);
        }
        feed.buffer
    }

    /// The bytes [`Ledger::digest`] hashes after every shop's: the orphans.
    pub fn digest_last_piece(&self, as_of: UnixNs) -> Vec<u8> {
        let mut feed = DigestFeed::default();
        self.feed_orphans(&mut feed, as_of);
        feed.buffer
    }

    fn feed_orphans(&self, feed: &mut DigestFeed, as_of: UnixNs) {
        for orphan in self.orphans(as_of) {
            feed.text(&orphan.order_id);
            feed.number(orphan.events as i64);
        }
    }

    /// Feeds one shop's state, when it exists as of `as_of`.
    fn feed_shop(&self, feed: &mut DigestFeed, shop: u32, as_of: UnixNs) {
        if !self.shop_exists(&self.shops[shop as usize], as_of) {
            return;
        }
        let tally = self.tally(shop, as_of, FactsKept::All);
        feed.text(self.shop_ids.get(shop));
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
        for facts in facts_by_order_id(&tally) {
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
        }
        // R14: the booked ledger is part of the state a replay must reach.
        let postings = crate::postings::shop_postings(self, &self.shops[shop as usize], as_of);
        feed.wide(tally.booked_fen);
        feed.number(postings.len() as i64);
        for p in &postings {
            feed.number(p.run_day.0);
            feed.text(self.order_ids.get(p.order));
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
}

/// The SHA-256 of [`Ledger::digest`] fed piece by piece (see
/// [`Ledger::digest_piece`]).
#[derive(Default)]
pub struct DigestHasher(Sha256);

impl DigestHasher {
    /// Hashes the next piece.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The digest, in hex, as [`Ledger::digest`] gives it.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical binary stream the digest hashes: length-prefixed texts and
/// fixed-width numbers, buffered and hashed in large chunks; or, without a
/// hasher, kept whole (a piece).
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
