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
        let parts = parts.max(1);
        let wanted = wanted.start.min(parts)..wanted.end.min(parts);
        let first = wanted.start;
        let mut out: Vec<Ledger> = wanted
            .clone()
            .map(|_| Ledger::new(self.policy.clone()))
            .collect();
        // Shops first, in this ledger's order: their index in their part
        // (shops of other parts are left out: u32::MAX).
        let mut shop_to: Vec<(u32, u32)> = Vec::with_capacity(self.shops.len());
        for shop in 0..self.shops.len() as u32 {
            let id = self.shop_ids.get(shop);
            let part = partition_of(id, parts);
            if !wanted.contains(&part) {
                shop_to.push((part, u32::MAX));
                continue;
            }
            let ledger = &mut out[(part - first) as usize];
            // Interning a known number of distinct ids cannot overflow
            // where the whole ledger did not.
            let index = ledger.shop_ids.intern(id).unwrap_or(0);
            ledger.shops.push(ShopRec {
                orders: Vec::new(),
                topups: self.shops[shop as usize].topups.clone(),
                days: Default::default(),
            });
            shop_to.push((part, index));
        }
        // Each part's orders and their ids' bytes, counted first, so that
        // its order table and ids are allocated once at their size, not
        // grown by doubling (a copy of each, and memory held twice).
        let mut sizes: Vec<(usize, usize)> = vec![(0, 0); out.len()];
        let mut unpaid = (0, 0);
        for (order, rec) in self.orders.iter().enumerate() {
            let bytes = self.order_ids.len_of(order as u32);
            let size = match rec.paid {
                Some(paid) => {
                    let (part, _) = shop_to[paid.shop as usize];
                    if !wanted.contains(&part) {
                        continue;
                    }
                    &mut sizes[(part - first) as usize]
                }
                None => &mut unpaid,
            };
            size.0 += 1;
            size.1 += bytes;
        }
        for (ledger, (orders, bytes)) in out.iter_mut().zip(sizes) {
            ledger.orders.reserve_exact(orders + unpaid.0);
            ledger
                .order_ids
                .reserve_distinct(orders + unpaid.0, bytes + unpaid.1);
        }
        // Orders in this ledger's order; paid ones to their shop's part,
        // the others to every part.
        let mut order_to: Vec<u32> = vec![u32::MAX; self.orders.len()];
        // Each order goes to a part once, so its id is pushed, not looked
        // up (each part's table is built once at the end): consecutive
        // orders go to random parts, and a probe into one of a thousand
        // tables was a cache miss per order. A product's index in the part
        // it was last copied to is kept (a shop's products stay in its
        // part), so only a product new to a part is interned there.
        let mut product_at: Vec<(u32, u32)> = vec![(u32::MAX, 0); self.product_ids.len()];
        let mut copy =
            |ledger: &mut Ledger, part: u32, order: u32, rec: &OrderRec, shop: Option<u32>| {
                let index = ledger
                    .order_ids
                    .push_distinct(self.order_ids.get(order))
                    .unwrap_or(0);
                let mut paid = rec.paid;
                if let (Some(paid), Some(shop)) = (paid.as_mut(), shop) {
                    paid.shop = shop;
                    let whole = paid.product as usize;
                    paid.product = match product_at.get(whole) {
                        Some(&(at, local)) if at == part => local,
                        _ => {
                            let local = ledger
                                .product_ids
                                .intern(self.product_ids.get(paid.product))
                                .unwrap_or(0);
                            if let Some(slot) = product_at.get_mut(whole) {
                                *slot = (part, local);
                            }
                            local
                        }
                    };
                }
                self.push_copied_order(ledger, rec, paid);
                index
            };
        for (order, rec) in self.orders.iter().enumerate() {
            let order = order as u32;
            match rec.paid {
                Some(paid) => {
                    let (part, shop) = shop_to[paid.shop as usize];
                    if wanted.contains(&part) {
                        order_to[order as usize] = copy(
                            &mut out[(part - first) as usize],
                            part,
                            order,
                            rec,
                            Some(shop),
                        );
                    }
                }
                None => {
                    for (at, ledger) in out.iter_mut().enumerate() {
                        copy(ledger, first + at as u32, order, rec, None);
                    }
                }
            }
        }
        for ledger in &mut out {
            ledger.order_ids.reindex();
        }
        // The shops' order lists and settle-day indexes, renumbered.
        for (shop, rec) in self.shops.iter().enumerate() {
            let (part, index) = shop_to[shop];
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
