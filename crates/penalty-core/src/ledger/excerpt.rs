//! Excerpts of a ledger for order reports: for each shop too large to read
//! whole for one order, ledgers that each hold a group of its orders (their
//! "home" orders) with everything their reports read, so that a reader of
//! `order O` reads one excerpt instead of the shop.
//!
//! An order's report ([`Ledger::order_report`]) reads the order itself (its
//! paid event and events, its shop's and product's ids, the policy versions,
//! R15) and, for R5's daily cap, its shop's settle-day entries on the days
//! its own deductions fall on, with the orders of those entries (the cap's
//! walk derives each to see whether its deduction stands as of the
//! instant). Bans (R6), closure review (R7) and refunds (R8) are the
//! order's own. So an excerpt holds its home orders; every settle day any
//! of them has, or could ever have, a deduction on (its "held" days) with
//! all of that day's entries and their orders; the shop's top-ups; and, as
//! every part does
//! (see [`Ledger::split`]), every order not paid yet, so that a later
//! `paid` of the shop finds their earlier events.
//!
//! An excerpt also holds every other order of the shop that could ever put
//! a deduction on a held day: an order's possible settle days follow from
//! its `paid` event alone ([`order::possible_deduction_days`]), and its
//! later events only decide which of them it has (a rejection, R2 a, can
//! make a judgment exist that a shipment had prevented). So whatever events
//! come later to an order the excerpt does not hold, they cannot touch a
//! held day: R5's walk of those days stays whole.
//!
//! It answers `order_report` for each home order exactly as the ledger
//! does (tested against generated workloads through the partitioned
//! snapshot), and keeps doing so whatever later events are folded into
//! it: a home order's deductions can only fall on held days, and no order
//! outside can reach them. The reader still checks the first
//! ([`Ledger::settle_days`], [`Ledger::deduction_days`]) and otherwise reads
//! the whole part.

use super::partition::renumbered;
use super::{Ledger, ShopRec};
use crate::order;
use crate::time::Day;

/// The excerpts of a ledger's large shops (see the module's comment).
#[derive(Debug, Default)]
pub struct Excerpts {
    /// The excerpts, the groups of one shop one after another; then, when
    /// there are any, the rest (see `rest`).
    pub ledgers: Vec<Ledger>,
    /// When the ledger has large shops, the index of the ledger of its
    /// other shops, each whole (with every order not paid yet): it answers
    /// for them as the ledger does, and their orders are at home in it, so
    /// that a small shop's order beside a large shop does not read it.
    pub rest: Option<u32>,
    /// For each order of the ledger (by its index), the excerpt it is at
    /// home in, or `u32::MAX` when its shop has none.
    home: Vec<u32>,
}

impl Excerpts {
    /// The paid order ids of the ledger the excerpts were made of, each
    /// with the excerpt it is at home in (`None`: read the whole ledger).
    pub fn homes<'a>(&'a self, of: &'a Ledger) -> impl Iterator<Item = (&'a str, Option<u32>)> {
        of.orders
            .iter()
            .enumerate()
            .filter(|(_, rec)| rec.paid.is_some())
            .map(move |(o, _)| {
                let home = self.home.get(o).copied().filter(|h| *h != u32::MAX);
                (of.order_ids.get(o as u32), home)
            })
    }
}

/// Whether a shop of `orders` orders gets excerpts of `home_orders` home
/// orders each (more than twice that), or is read whole.
fn has_excerpts(orders: usize, home_orders: usize) -> bool {
    orders > 2 * home_orders.max(1)
}

/// The home orders of each excerpt of a shop of `orders` orders but the
/// last: the orders shared out evenly over as many groups as `home_orders`
/// each makes.
fn group_orders(orders: usize, home_orders: usize) -> usize {
    let groups = orders.div_ceil(home_orders.max(1)).max(1);
    orders.div_ceil(groups).max(1)
}

impl super::partition::Split<'_> {
    /// How many excerpts [`Ledger::excerpts`] makes of each part of this
    /// split, by part: one per group of each large shop, and one more with
    /// the part's other shops whole when it has any large shop. So a
    /// writer knows the sections of every part before making any.
    pub fn excerpts_by_part(&self, home_orders: usize) -> Vec<usize> {
        let mut counts = vec![0usize; self.parts() as usize];
        let mut large = vec![false; self.parts() as usize];
        for (shop, rec) in self.whole().shops.iter().enumerate() {
            let orders = rec.orders.len();
            if has_excerpts(orders, home_orders) {
                let part = self.part_of_shop(shop as u32) as usize;
                counts[part] += orders.div_ceil(group_orders(orders, home_orders));
                large[part] = true;
            }
        }
        for (count, large) in counts.iter_mut().zip(large) {
            *count += usize::from(large);
        }
        counts
    }
}

impl Ledger {
    /// Excerpts of the shops with more than twice `home_orders` orders,
    /// each of about `home_orders` home orders. A shop's orders are grouped
    /// by the first settle day they could ever have a deduction on (their
    /// paid day when they can have none), so that a group's held days are
    /// few, and so are the orders of other groups that could reach them.
    /// Must not be called during a bulk fold.
    pub fn excerpts(&self, home_orders: usize) -> Excerpts {
        let home_orders = home_orders.max(1);
        let offset = self.policy.utc_offset;
        let mut home = vec![u32::MAX; self.orders.len()];
        let mut ledgers = Vec::new();
        let unpaid: Vec<u32> = (0..self.orders.len() as u32)
            .filter(|&o| self.orders[o as usize].paid.is_none())
            .collect();
        // An order's index in the excerpt being made, reset after each.
        let mut local = vec![u32::MAX; self.orders.len()];
        for (shop, rec) in self.shops.iter().enumerate() {
            if !has_excerpts(rec.orders.len(), home_orders) {
                continue;
            }
            // Each order of the shop under each day it could ever have a
            // deduction on, ascending by day.
            let mut possible: Vec<(Day, u32)> = Vec::with_capacity(2 * rec.orders.len());
            let mut keyed: Vec<(Day, u32)> = Vec::with_capacity(rec.orders.len());
            for &o in &rec.orders {
                let Some(paid) = self.orders[o as usize].paid else {
                    keyed.push((Day(0), o));
                    continue;
                };
                let before = possible.len();
                possible.extend(
                    order::possible_deduction_days(self.policy.at(paid.at), &paid)
                        .map(|day| (day, o)),
                );
                let first = possible.get(before).map(|(day, _)| *day);
                keyed.push((first.unwrap_or_else(|| paid.at.local_day(offset)), o));
            }
            possible.sort_unstable();
            keyed.sort_unstable();
            let per_group = group_orders(keyed.len(), home_orders);
            let groups = keyed.len().div_ceil(per_group);
            let first = ledgers.len() as u32;
            for (group, chunk) in keyed.chunks(per_group).enumerate() {
                for (_, o) in chunk {
                    home[*o as usize] = first + group as u32;
                }
            }
            // Each group's held days, ascending: every day a home order has
            // a deduction on, or could ever have one on, so that whatever
            // later events give a home order, its report reads only held
            // days (the reader still checks).
            let group_of = |o: u32| {
                home.get(o as usize)
                    .and_then(|h| h.checked_sub(first))
                    .map(|g| g as usize)
                    .filter(|g| *g < groups)
            };
            let mut held: Vec<Vec<Day>> = vec![Vec::new(); groups];
            let indexed = rec
                .days
                .iter()
                .flat_map(|(day, entries)| entries.iter().map(move |e| (*day, e.order)));
            for (day, o) in indexed.chain(possible.iter().copied()) {
                if let Some(g) = group_of(o) {
                    held[g].push(day);
                }
            }
            for days in &mut held {
                days.sort_unstable();
                days.dedup();
            }
            for (group, chunk) in keyed.chunks(per_group).enumerate() {
                let mut members: Vec<u32> = chunk.iter().map(|(_, o)| *o).collect();
                for day in &held[group] {
                    if let Some(entries) = rec.days.get(day) {
                        members.extend(entries.iter().map(|e| e.order));
                    }
                    let from = possible.partition_point(|(d, _)| d < day);
                    members.extend(
                        possible[from..]
                            .iter()
                            .take_while(|(d, _)| d == day)
                            .map(|(_, o)| *o),
                    );
                }
                members.extend_from_slice(&unpaid);
                // In this ledger's order, so the excerpt lists them alike.
                members.sort_unstable();
                members.dedup();
                let mut ledger = Ledger::new(self.policy.clone());
                let shop_index = ledger
                    .shop_ids
                    .intern(self.shop_ids.get(shop as u32))
                    .unwrap_or(0);
                for &o in &members {
                    local[o as usize] = self.copy_order(&mut ledger, o, shop_index);
                }
                ledger.order_ids.reindex();
                let days = held[group]
                    .iter()
                    .map(|day| {
                        let entries = rec.days.get(day).map(Vec::as_slice).unwrap_or_default();
                        (*day, renumbered(entries, &local))
                    })
                    .collect();
                ledger.shops.push(ShopRec {
                    orders: rec
                        .orders
                        .iter()
                        .filter(|o| local[**o as usize] != u32::MAX)
                        .map(|o| local[*o as usize])
                        .collect(),
                    topups: rec.topups.clone(),
                    days,
                });
                for &o in &members {
                    local[o as usize] = u32::MAX;
                }
                ledgers.push(ledger);
            }
        }
        if !ledgers.is_empty() {
            let rest = ledgers.len() as u32;
            let small: Vec<usize> = (0..self.shops.len())
                .filter(|s| !has_excerpts(self.shops[*s].orders.len(), home_orders))
                .collect();
            let mut members: Vec<u32> = unpaid;
            for &shop in &small {
                members.extend_from_slice(&self.shops[shop].orders);
                for &o in &self.shops[shop].orders {
                    home[o as usize] = rest;
                }
            }
            members.sort_unstable();
            members.dedup();
            let mut ledger = Ledger::new(self.policy.clone());
            let shop_index: Vec<u32> = small
                .iter()
                .map(|&s| {
                    ledger
                        .shop_ids
                        .intern(self.shop_ids.get(s as u32))
                        .unwrap_or(0)
                })
                .collect();
            for &o in &members {
                let shop = self.orders[o as usize]
                    .paid
                    .and_then(|p| small.binary_search(&(p.shop as usize)).ok())
                    .map_or(0, |at| shop_index[at]);
                local[o as usize] = self.copy_order(&mut ledger, o, shop);
            }
            ledger.order_ids.reindex();
            for &shop in &small {
                let rec = &self.shops[shop];
                ledger.shops.push(ShopRec {
                    orders: rec.orders.iter().map(|o| local[*o as usize]).collect(),
                    topups: rec.topups.clone(),
                    days: rec
                        .days
                        .iter()
                        .map(|(day, entries)| (*day, renumbered(entries, &local)))
                        .collect(),
                });
            }
            ledgers.push(ledger);
            return Excerpts {
                ledgers,
                rest: Some(rest),
                home,
            };
        }
        Excerpts {
            ledgers,
            rest: None,
            home,
        }
    }

    /// Copies order `order` into `ledger` (its paid event, if any, naming
    /// `ledger`'s shop `shop`), returning its index there. Ids are pushed,
    /// not looked up: the caller copies each order once and builds the
    /// table at the end.
    fn copy_order(&self, ledger: &mut Ledger, order: u32, shop: u32) -> u32 {
        let rec = &self.orders[order as usize];
        // Copying ids this ledger holds cannot overflow in a smaller one.
        let index = ledger
            .order_ids
            .push_distinct(self.order_ids.get(order))
            .unwrap_or(0);
        let mut paid = rec.paid;
        if let Some(paid) = paid.as_mut() {
            paid.shop = shop;
            paid.product = ledger
                .product_ids
                .intern(self.product_ids.get(paid.product))
                .unwrap_or(0);
        }
        self.push_copied_order(ledger, rec, paid);
        index
    }

    /// The first and last settle day order `order` (an index of this
    /// ledger) could ever have a deduction on, from its `paid` alone
    /// ([`order::possible_deduction_days`], under the policy version in
    /// force at payment, R15); `None` when it is not paid or can have none.
    /// What a writer's tail index records of each event of the order, so
    /// that a reader of an excerpt reads only the events of orders that
    /// could reach its held days.
    pub fn possible_days_of(&self, order: u32) -> Option<(Day, Day)> {
        let paid = self.orders.get(order as usize)?.paid?;
        let mut days = order::possible_deduction_days(self.policy.at(paid.at), &paid);
        let first = days.next()?;
        Some(days.fold((first, first), |(lo, hi), day| (lo.min(day), hi.max(day))))
    }

    /// The shop of order `order_id`'s `paid` and the days
    /// [`Ledger::possible_days_of`] gives the order, when this ledger holds
    /// that `paid`: what a writer that held it recorded in its tail index
    /// of every event of the order, which `penalty audit` checks the index
    /// against.
    pub fn paid_shop_and_days(&self, order_id: &str) -> Option<(&str, Option<(Day, Day)>)> {
        let order = self.order_ids.find(order_id)?;
        let paid = self.orders[order as usize].paid?;
        Some((self.shop_ids.get(paid.shop), self.possible_days_of(order)))
    }

    /// The settle days on which shop `shop_id` has deductions in its index
    /// (for an excerpt: its held days), ascending.
    pub fn settle_days(&self, shop_id: &str) -> Vec<Day> {
        self.shop_ids
            .find(shop_id)
            .map(|s| self.shops[s as usize].days.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The shop of paid order `order_id` and the settle days of its
    /// deductions in that shop's index: the days whose entries its report
    /// reads (R5).
    pub fn deduction_days(&self, order_id: &str) -> Option<(&str, Vec<Day>)> {
        let o = self.order_ids.find(order_id)?;
        let rec = &self.orders[o as usize];
        let paid = rec.paid?;
        let policy = self.policy.at(paid.at);
        let derived = order::derive(policy, &paid, rec.events.as_slice());
        let days = derived
            .judgments()
            .iter()
            .filter(|j| rec.indexed & (1u16 << (j.number - 1)) != 0)
            .map(|j| order::settle_day(policy, j.judged_at))
            .collect();
        Some((self.shop_ids.get(paid.shop), days))
    }
}
