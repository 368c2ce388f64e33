//! Partitions of shops: the one home of the stable hash that spreads shops
//! (and keys in general) over partitions, and the split of a ledger into one
//! ledger per partition.
//!
//! Every rule is shop-local (R5's cap per shop and day, R6, R7, R10, R12,
//! R14 per shop) and the log holds only accepted events, so a ledger folded
//! from the events of one partition's shops answers for those shops and
//! their orders exactly as the whole ledger does. [`Ledger::split`] makes
//! those ledgers from a whole one without the events; orders that are not
//! paid yet (R13's orphans, whose shop is unknown) go into every part, so
//! that whichever partition their `paid` later falls into holds their
//! earlier events.
//!
//! The hash is FNV-1a 64 of the key's UTF-8 bytes, taken mod P: stable
//! across versions, machines and languages (the cluster pins it with the
//! published test vectors), unlike std's keyed `DefaultHasher`.

use super::{DayEntry, Ledger, ShopRec};
use crate::event::KindRef;
use crate::order::{Events, OrderEvent, OrderRec, Paid};

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The partition of `key` among `partitions` (at least 1).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    (fnv1a64(key.as_bytes()) % u64::from(partitions.max(1))) as u32
}

/// The shop an event names itself (`paid`, `deposit_topped_up`); the other
/// events name only their order.
pub fn shop_of<'a>(kind: &KindRef<'a>) -> Option<&'a str> {
    match *kind {
        KindRef::Paid { shop_id, .. } | KindRef::DepositToppedUp { shop_id, .. } => Some(shop_id),
        _ => None,
    }
}

impl Ledger {
    /// Appends a copy of `rec` (an order of this ledger) to `ledger`, with
    /// `paid` already naming `ledger`'s shop and product: its events, its
    /// tracking numbers copied into `ledger`'s table, and its events counted.
    /// The one copy of an order that `split` and `excerpts` both make.
    pub(super) fn push_copied_order(
        &self,
        ledger: &mut Ledger,
        rec: &OrderRec,
        paid: Option<Paid>,
    ) {
        // Tracking numbers are deduplicated per order: an order's equal
        // indices stay equal, so an index seen on an earlier event of the
        // order takes that event's new one. The events are already sorted
        // and are copied in order, into the form a fold leaves them in
        // (one inline, more in a vector of their number).
        let source = rec.events.as_slice();
        let mut copy = |at: usize, copied: &[OrderEvent]| {
            let mut event: OrderEvent = source[at];
            if let Some(old) = event.tracking() {
                let earlier = source[..at].iter().position(|e| e.tracking() == Some(old));
                let new = match earlier.and_then(|e| copied.get(e)) {
                    Some(copied) => copied.tracking().unwrap_or(0),
                    None => ledger
                        .tracking_nos
                        .push(self.tracking_nos.get(old))
                        .unwrap_or(0),
                };
                event.value = i64::from(new);
            }
            event
        };
        let events = match source.len() {
            0 => Events::None,
            1 => Events::One(copy(0, &[])),
            n => {
                let mut copied = Vec::with_capacity(n);
                for at in 0..n {
                    let event = copy(at, &copied);
                    copied.push(event);
                }
                Events::Many(copied)
            }
        };
        ledger.orders.push(OrderRec {
            paid,
            events,
            indexed: rec.indexed,
            never_judged: rec.never_judged,
        });
        ledger.events_applied += rec.events.as_slice().len() as u64 + u64::from(paid.is_some());
    }
    /// The ledgers of the `parts` partitions of this one's shops (by
    /// [`partition_of`] of the shop id): part `p` holds the shops of
    /// partition `p` with their orders and top-ups, and every order not yet
    /// paid. Each answers `shop_report` and `order_report` for its shops and
    /// their orders as this ledger does (tested against generated
    /// workloads); folding on into a part the later events of its shops and
    /// orders keeps that so. Must not be called during a bulk fold.
    pub fn split(&self, parts: u32) -> Vec<Ledger> {
        self.split_range(parts, 0..parts.max(1))
    }

    /// The ledgers of partitions `wanted` (of `parts`), in order: equal to
    /// those [`Ledger::split`] gives for them, so that a caller that
    /// encodes the parts a few at a time holds a copy of only those, not a
    /// second copy of the whole ledger.
    pub fn split_range(&self, parts: u32, wanted: std::ops::Range<u32>) -> Vec<Ledger> {
        self.splitting(parts).range(wanted)
    }

    /// The plan of a split into `parts` partitions, for a caller that takes
    /// the parts a range at a time ([`Split::range`]): where each shop and
    /// each order goes is found once, not in every range. Must not be
    /// called during a bulk fold.
    pub fn splitting(&self, parts: u32) -> Split<'_> {
        let parts = parts.max(1);
        // Each shop's part and its index there: shops are copied in this
        // ledger's order, so a shop's index is the count of its part's
        // shops before it.
        let mut shops_in: Vec<u32> = vec![0; parts as usize];
        let shop_to: Vec<(u32, u32)> = (0..self.shops.len() as u32)
            .map(|shop| {
                let part = partition_of(self.shop_ids.get(shop), parts);
                let index = shops_in[part as usize];
                shops_in[part as usize] += 1;
                (part, index)
            })
            .collect();
        let mut unpaid = (0, 0);
        let order_part: Vec<u32> = self
            .orders
            .iter()
            .enumerate()
            .map(|(order, rec)| match rec.paid {
                Some(paid) => shop_to[paid.shop as usize].0,
                None => {
                    unpaid.0 += 1;
                    unpaid.1 += self.order_ids.len_of(order as u32);
                    UNPAID
                }
            })
            .collect();
        Split {
            ledger: self,
            parts,
            shop_to,
            order_part,
            unpaid,
        }
    }

    /// Indexes the order ids of a ledger [`Split::range_to_encode`] gave,
    /// so that it finds orders by their ids as [`Split::range`]'s do.
    pub fn reindex_order_ids(&mut self) {
        self.order_ids.reindex();
    }

    /// Whether this ledger holds any event of `order_id` (paid or not).
    pub fn knows_order(&self, order_id: &str) -> bool {
        self.order_ids.find(order_id).is_some()
    }

    /// The id of the shop this ledger numbers `shop` (as
    /// [`Ledger::apply_ref_to_shop`] names it), when there is one.
    pub fn shop_id_at(&self, shop: u32) -> Option<&str> {
        ((shop as usize) < self.shops.len()).then(|| self.shop_ids.get(shop))
    }

    /// Whether this ledger holds the `paid` event of `order_id`.
    pub fn holds_paid_order(&self, order_id: &str) -> bool {
        self.order_ids
            .find(order_id)
            .is_some_and(|o| self.orders[o as usize].paid.is_some())
    }
}

/// An order's part in [`Split::order_part`] when it is not paid yet (it
/// goes to every part).
const UNPAID: u32 = u32::MAX;

/// How many orders' tracking numbers [`Split::range`] reads at once before
/// copying them: about as many misses as a core keeps in flight.
const TOUCH_AHEAD: usize = 8;

/// A split of a ledger by partition of shops, planned once (see
/// [`Ledger::splitting`]): each shop's part and index there, and each
/// order's part (4 bytes an order), so that each range of parts reads the
/// records of its own orders only, not every order's to find its part.
#[derive(Debug)]
pub struct Split<'a> {
    ledger: &'a Ledger,
    parts: u32,
    /// Each shop's part and its index in that part.
    shop_to: Vec<(u32, u32)>,
    /// Each order's part, or [`UNPAID`].
    order_part: Vec<u32>,
    /// How many orders are not paid yet, and their ids' bytes: every part
    /// holds them.
    unpaid: (usize, usize),
}

impl Split<'_> {
    /// How many parts.
    pub fn parts(&self) -> u32 {
        self.parts
    }

    /// The ledger being split.
    pub fn whole(&self) -> &Ledger {
        self.ledger
    }

    /// The part of shop number `shop` of the whole ledger (in range).
    pub(super) fn part_of_shop(&self, shop: u32) -> u32 {
        self.shop_to[shop as usize].0
    }

    /// How many orders of the whole ledger are paid: each has one entry in
    /// the order index of a partitioned snapshot.
    pub fn paid_orders(&self) -> usize {
        self.ledger.orders.len() - self.unpaid.0
    }

    /// The ledgers of partitions `wanted`, in order: part `p` holds the
    /// shops of partition `p` with their orders and top-ups, and every
    /// order not yet paid (see [`Ledger::split`]).
    pub fn range(&self, wanted: std::ops::Range<u32>) -> Vec<Ledger> {
        let mut out = self.range_to_encode(wanted);
        for ledger in &mut out {
            ledger.order_ids.reindex();
        }
        out
    }

    /// [`Split::range`]'s ledgers for a writer that only encodes them (and
    /// makes their excerpts): their order ids are not indexed, so until
    /// [`Ledger::reindex_order_ids`] none finds an order by its id. An
    /// encoding holds no index (a decoded ledger builds its own as it
    /// loads), and building one for each part was a hash and a random
    /// write per order, thrown away.
    pub fn range_to_encode(&self, wanted: std::ops::Range<u32>) -> Vec<Ledger> {
        let whole = self.ledger;
        let parts = self.parts;
        let wanted = wanted.start.min(parts)..wanted.end.min(parts);
        let first = wanted.start;
        let mut out: Vec<Ledger> = wanted
            .clone()
            .map(|_| Ledger::new(whole.policy.clone()))
            .collect();
        // Shops first, in the ledger's order (the plan's index of each).
        for (shop, &(part, index)) in self.shop_to.iter().enumerate() {
            if !wanted.contains(&part) {
                continue;
            }
            let ledger = &mut out[(part - first) as usize];
            // Interning a known number of distinct ids cannot overflow
            // where the whole ledger did not.
            let at = ledger.shop_ids.intern(whole.shop_ids.get(shop as u32));
            debug_assert_eq!(at, Some(index), "the plan numbers shops as the copy does");
            ledger.shops.push(ShopRec {
                orders: Vec::new(),
                topups: whole.shops[shop].topups.clone(),
                days: Default::default(),
            });
        }
        // Each part's orders and their ids' bytes, counted first, so that
        // its order table and ids are allocated once at their size, not
        // grown by doubling (a copy of each, and memory held twice).
        let mut sizes: Vec<(usize, usize)> = vec![(0, 0); out.len()];
        for (order, &part) in self.order_part.iter().enumerate() {
            if wanted.contains(&part) {
                let size = &mut sizes[(part - first) as usize];
                size.0 += 1;
                size.1 += whole.order_ids.len_of(order as u32);
            }
        }
        for (ledger, (orders, bytes)) in out.iter_mut().zip(sizes) {
            ledger.orders.reserve_exact(orders + self.unpaid.0);
            ledger
                .order_ids
                .reserve_distinct(orders + self.unpaid.0, bytes + self.unpaid.1);
        }
        // Orders in the ledger's order; paid ones to their shop's part,
        // the others to every part.
        let mut order_to: Vec<u32> = vec![u32::MAX; whole.orders.len()];
        // Each order goes to a part once, so its id is pushed, not looked
        // up (each part's table is built once at the end): consecutive
        // orders go to random parts, and a probe into one of a thousand
        // tables was a cache miss per order. A product's index in the part
        // it was last copied to is kept (a shop's products stay in its
        // part), so only a product new to a part is interned there.
        let mut product_at: Vec<(u32, u32)> = vec![(u32::MAX, 0); whole.product_ids.len()];
        let mut copy =
            |ledger: &mut Ledger, part: u32, order: u32, rec: &OrderRec, shop: Option<u32>| {
                let index = ledger
                    .order_ids
                    .push_distinct(whole.order_ids.get(order))
                    .unwrap_or(0);
                let mut paid = rec.paid;
                if let (Some(paid), Some(shop)) = (paid.as_mut(), shop) {
                    paid.shop = shop;
                    let at = paid.product as usize;
                    paid.product = match product_at.get(at) {
                        Some(&(to, local)) if to == part => local,
                        _ => {
                            let local = ledger
                                .product_ids
                                .intern(whole.product_ids.get(paid.product))
                                .unwrap_or(0);
                            if let Some(slot) = product_at.get_mut(at) {
                                *slot = (part, local);
                            }
                            local
                        }
                    };
                }
                whole.push_copied_order(ledger, rec, paid);
                index
            };
        // The orders to copy, a few at a time: their tracking numbers lie
        // in the order shipments arrived, not in the orders' order, so each
        // is a cache miss; read together first, the misses overlap, and the
        // copy then finds them cached.
        let mut ahead: [u32; TOUCH_AHEAD] = [0; TOUCH_AHEAD];
        let mut waiting = 0;
        let mut copy_waiting = |ahead: &[u32], out: &mut Vec<Ledger>| {
            whole.touch_tracking(ahead);
            for &order in ahead {
                let rec = &whole.orders[order as usize];
                match self.order_part[order as usize] {
                    UNPAID => {
                        for (at, ledger) in out.iter_mut().enumerate() {
                            copy(ledger, first + at as u32, order, rec, None);
                        }
                    }
                    part => {
                        let shop = rec.paid.map(|paid| self.shop_to[paid.shop as usize].1);
                        order_to[order as usize] =
                            copy(&mut out[(part - first) as usize], part, order, rec, shop);
                    }
                }
            }
        };
        for (order, &part) in self.order_part.iter().enumerate() {
            if part == UNPAID || wanted.contains(&part) {
                ahead[waiting] = order as u32;
                waiting += 1;
                if waiting == TOUCH_AHEAD {
                    copy_waiting(&ahead, &mut out);
                    waiting = 0;
                }
            }
        }
        copy_waiting(&ahead[..waiting], &mut out);
        // The shops' order lists and settle-day indexes, renumbered.
        for (shop, rec) in whole.shops.iter().enumerate() {
            let (part, index) = self.shop_to[shop];
            if !wanted.contains(&part) {
                continue;
            }
            let target = &mut out[(part - first) as usize].shops[index as usize];
            target.orders = rec.orders.iter().map(|o| order_to[*o as usize]).collect();
            target.days = rec
                .days
                .iter()
                .map(|(day, entries)| (*day, renumbered(entries, &order_to)))
                .collect();
        }
        for ledger in &mut out {
            for shop in &ledger.shops {
                debug_assert!(shop.orders.iter().all(|o| *o != u32::MAX));
            }
        }
        out
    }
}

impl Ledger {
    /// Reads the tracking numbers of `orders` (see [`Split::range`]): the
    /// orders' records and events first, then the numbers, so that the
    /// reads of each step, which depend on the step before, overlap.
    fn touch_tracking(&self, orders: &[u32]) {
        let mut numbers = [0u32; 2 * TOUCH_AHEAD];
        let mut found = 0;
        for &order in orders {
            for event in self.orders[order as usize].events.as_slice() {
                if let (Some(tracking), Some(slot)) = (event.tracking(), numbers.get_mut(found)) {
                    *slot = tracking;
                    found += 1;
                }
            }
        }
        let mut touched = 0u8;
        for &tracking in &numbers[..found] {
            let text = self.tracking_nos.get(tracking);
            touched ^= text.as_bytes().first().copied().unwrap_or(0);
        }
        // Kept, or the reads would be optimised away.
        std::hint::black_box(touched);
    }
}

/// A settle day's entries with each order renumbered through `to` (the
/// copy's number of each order of the ledger copied from): how a split
/// part and an excerpt keep a shop's days (R5) over their own orders.
pub(super) fn renumbered(entries: &[DayEntry], to: &[u32]) -> Vec<DayEntry> {
    entries
        .iter()
        .map(|e| DayEntry {
            order: to[e.order as usize],
            ..*e
        })
        .collect()
}
