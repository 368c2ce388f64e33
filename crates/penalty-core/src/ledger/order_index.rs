//! A per-shop index of orders, so that a page of `GET /orders` costs what
//! its shop holds plus the rows of the page, never every row of a shop
//! formatted (the largest shop of a million orders holds a hundred
//! thousand).
//!
//! A shop's index ([`ShopOrders`]) is its orders by order id, the walk of
//! the default order within a shop and the tie-break of every sort, and each
//! order's rank in it. It is derived, never stored: built on a shop's first
//! page, kept beside the ledger in [`OrderIndexes`] (which serde skips, so
//! the snapshots' bytes do not change) and rebuilt once the shop holds more
//! orders (the fold only ever appends to a shop's orders, at its `paid`).
//! So a load pays nothing for it, and a query that never pages orders
//! (`penalty order`, `penalty shop`) builds none.
//!
//! A page ([`Ledger::order_rows_page`], [`Ledger::order_rows_head`]) reads
//! each order's facts only as far as its filter and sort need: existence and
//! the paid instant; the derived timelines for a status, a judgment count or
//! a closure flag (R7); R5's cap walk of the whole shop only for the charged
//! sort or the capped days. Then only the page's rows are formatted, each
//! charged by a cap walk of its own settle days (R5 caps each day alone).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::cap::Charges;
use super::rows::OrderSort;
use super::tallies::{OrderFacts, RawDeduction};
use super::Ledger;
use crate::order;
use crate::report::{OrderRow, OrderStatus, RowFilter};
use crate::time::{Day, UnixNs};
use crate::view::OrderView;

/// One shop's orders by order id.
pub(crate) struct ShopOrders {
    /// The shop's orders (interned indices) by order id.
    by_id: Vec<u32>,
    /// `rank[i]`: the place in `by_id` of the shop's `i`-th order (in the
    /// order of `ShopRec::orders`).
    rank: Vec<u32>,
    /// The latest paid instant of the shop's orders: as of then or later,
    /// every one of them exists.
    latest_paid: UnixNs,
}

/// The shops' indexes built so far, by interned shop id. Not part of the
/// ledger's state: a clone starts empty, equality ignores it, serde skips
/// it. A mutex, because queries read the ledger shared (`&Ledger`) from
/// several threads.
#[derive(Default)]
pub(crate) struct OrderIndexes(Mutex<Vec<Option<Arc<ShopOrders>>>>);

impl Clone for OrderIndexes {
    fn clone(&self) -> OrderIndexes {
        OrderIndexes::default()
    }
}

impl PartialEq for OrderIndexes {
    fn eq(&self, _: &OrderIndexes) -> bool {
        true
    }
}

impl Eq for OrderIndexes {}

impl std::fmt::Debug for OrderIndexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderIndexes")
    }
}

/// An order a filter keeps, with what its place in a page depends on:
/// pages are by (`key`, `shop_rank`, `id_rank`), smallest first.
#[derive(Clone, Copy, Debug)]
struct Kept {
    /// The sort's key, smaller first (money and counts negated).
    key: i64,
    /// The shop's place among the shops asked, by shop id.
    shop_rank: u32,
    /// The order's place in its shop, by order id.
    id_rank: u32,
    /// The order (interned index).
    order: u32,
}

impl Kept {
    fn place(&self) -> (i64, u32, u32) {
        (self.key, self.shop_rank, self.id_rank)
    }
}

/// What the capped days (R5) and the charged sort read of a shop: the
/// money of each of its orders' deductions as of an instant.
struct ShopMoney {
    /// Each order's charged money (its row's `charged_fen`), when any.
    charged: HashMap<u32, i64>,
    /// The orders with a deduction charged or waived on a settle day
    /// whose deductions the cap cut (some of the day's money waived).
    on_capped_day: HashSet<u32>,
}

impl Ledger {
    /// The index of shop `shop`: the one kept, or a new one when none is
    /// kept or the shop has gained orders since.
    fn shop_orders(&self, shop: u32) -> Arc<ShopOrders> {
        let orders = &self.shops[shop as usize].orders;
        let lock = || {
            self.order_index
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(Some(kept)) = lock().get(shop as usize) {
            if kept.rank.len() == orders.len() {
                return kept.clone();
            }
        }
        // Built outside the lock: two threads may build the same index
        // once, and neither waits for the other's sort.
        let mut places: Vec<u32> = (0..orders.len() as u32).collect();
        places.sort_unstable_by(|&a, &b| {
            let id = |place: u32| self.order_ids.get(orders[place as usize]);
            id(a).cmp(id(b))
        });
        let mut rank = vec![0u32; orders.len()];
        for (r, &place) in places.iter().enumerate() {
            rank[place as usize] = r as u32;
        }
        let latest_paid = orders
            .iter()
            .filter_map(|&o| self.orders[o as usize].paid.map(|p| p.at))
            .max()
            .unwrap_or(UnixNs(i64::MIN));
        let built = Arc::new(ShopOrders {
            by_id: places.iter().map(|&p| orders[p as usize]).collect(),
            rank,
            latest_paid,
        });
        let mut kept = lock();
        if kept.len() <= shop as usize {
            kept.resize(self.shops.len().max(shop as usize + 1), None);
        }
        kept[shop as usize] = Some(built.clone());
        built
    }

    /// The facts of one order's row as of `as_of` (its deductions charged
    /// by `charges`, which must cover their settle days), as
    /// [`Ledger::tally`] gathers them for each order of a shop.
    fn order_facts<'a>(
        &'a self,
        view: OrderView<'a>,
        as_of: UnixNs,
        charges: &Charges,
    ) -> OrderFacts<'a> {
        let (mut standing, mut revoked) = (0u64, 0u64);
        for j in view.judgments(as_of) {
            if j.revoked(as_of) {
                revoked += 1;
            } else {
                standing += 1;
            }
        }
        let deductions = if view.derived.deduction_mask(view.policy) == 0 {
            Vec::new()
        } else {
            self.raw_deductions(&view, as_of, charges)
        };
        OrderFacts {
            banned: view.ban(as_of).is_some(),
            flagged: view.flagged(as_of),
            view,
            deductions,
            standing,
            revoked,
        }
    }

    /// The money of shop `shop`'s deductions as of `as_of`: one walk of
    /// its whole settle-day index (R5), then the deductions of the orders a
    /// judgment reaches (most orders ship in time and are not derived).
    fn shop_money(&self, shop: u32, as_of: UnixNs) -> ShopMoney {
        let rec = &self.shops[shop as usize];
        let (charges, _) = self.charges(rec, as_of, None, None, None);
        let mut deductions: Vec<(u32, Vec<RawDeduction>)> = Vec::new();
        for &order in &rec.orders {
            if self.orders[order as usize].never_judged {
                continue;
            }
            let Some(view) = self.view(order, as_of) else {
                continue;
            };
            if view.derived.deduction_mask(view.policy) != 0 {
                deductions.push((order, self.raw_deductions(&view, as_of, &charges)));
            }
        }
        let capped: BTreeSet<Day> = deductions
            .iter()
            .flat_map(|(_, ds)| ds)
            .filter(|d| d.waived_fen > 0)
            .map(|d| d.settle_day)
            .collect();
        let mut money = ShopMoney {
            charged: HashMap::new(),
            on_capped_day: HashSet::new(),
        };
        for (order, ds) in &deductions {
            let charged: i64 = ds.iter().map(|d| d.charged_fen).sum();
            if charged != 0 {
                money.charged.insert(*order, charged);
            }
            // A revoked or pending deduction takes no part in the day's cap.
            if ds
                .iter()
                .any(|d| d.charged_fen + d.waived_fen > 0 && capped.contains(&d.settle_day))
            {
                money.on_capped_day.insert(*order);
            }
        }
        money
    }

    /// The key by `sort` of `order` when `filter` keeps it as of `as_of`
    /// (see [`Kept::key`]), or `None`. `money` is the shop's, required by
    /// the capped days and the charged sort. The rules are those of the
    /// export's rows: a row's status, its standing judgments, its closure
    /// flag, its charged money.
    fn kept_key(
        &self,
        order: u32,
        as_of: UnixNs,
        filter: &RowFilter,
        sort: OrderSort,
        money: Option<&ShopMoney>,
    ) -> Option<i64> {
        let rec = &self.orders[order as usize];
        let paid = rec.paid.filter(|paid| paid.at <= as_of)?;
        if !filter.keeps_paid_at(paid.at) {
            return None;
        }
        let judged = !rec.never_judged;
        // R7's flag needs the final judgment, so an order no judgment
        // reaches has no flag either.
        if (filter.violating || filter.closure_review) && !judged {
            return None;
        }
        if filter.capped_day && !money.is_some_and(|m| m.on_capped_day.contains(&order)) {
            return None;
        }
        let wants_status = filter.status.is_some() || sort == OrderSort::Status;
        let wants_judgments =
            judged && (filter.violating || filter.closure_review || sort == OrderSort::Judgments);
        let mut standing = 0u64;
        let mut status = None;
        if wants_status || wants_judgments {
            let view = self.view(order, as_of)?;
            if judged {
                standing = view.judgments(as_of).filter(|j| !j.revoked(as_of)).count() as u64;
            }
            if (filter.violating && standing == 0)
                || (filter.closure_review && !view.flagged(as_of))
            {
                return None;
            }
            if wants_status {
                let this = view.status(as_of);
                if filter.status.is_some_and(|wanted| wanted != this) {
                    return None;
                }
                status = Some(this);
            }
        }
        Some(match sort {
            OrderSort::Order => 0,
            OrderSort::Paid => paid.at.0,
            OrderSort::Charged => -money
                .and_then(|m| m.charged.get(&order).copied())
                .unwrap_or(0),
            OrderSort::Judgments => -(standing.min(i64::MAX as u64) as i64),
            OrderSort::Status => status
                .and_then(|s| OrderStatus::ALL.iter().position(|a| *a == s))
                .unwrap_or(usize::MAX) as i64,
        })
    }

    /// The shop's money when `filter` or `sort` reads it.
    fn money_if_needed(
        &self,
        shop: u32,
        as_of: UnixNs,
        filter: &RowFilter,
        sort: OrderSort,
    ) -> Option<ShopMoney> {
        (filter.capped_day || sort == OrderSort::Charged).then(|| self.shop_money(shop, as_of))
    }

    /// How many orders of shop `shop` `filter` keeps as of `as_of`; no
    /// index needed.
    pub(super) fn count_kept(&self, shop: u32, as_of: UnixNs, filter: &RowFilter) -> usize {
        let rec = &self.shops[shop as usize];
        if filter.is_everything() {
            return rec
                .orders
                .iter()
                .filter(|&&o| self.orders[o as usize].paid.is_some_and(|p| p.at <= as_of))
                .count();
        }
        let money = self.money_if_needed(shop, as_of, filter, OrderSort::Order);
        rec.orders
            .iter()
            .filter(|&&o| {
                self.kept_key(o, as_of, filter, OrderSort::Order, money.as_ref())
                    .is_some()
            })
            .count()
    }

    /// Every order of shop `shop` that `filter` keeps, keyed by `sort`,
    /// in no particular order.
    fn shop_kept(
        &self,
        shop: u32,
        shop_rank: u32,
        as_of: UnixNs,
        filter: &RowFilter,
        sort: OrderSort,
    ) -> Vec<Kept> {
        let index = self.shop_orders(shop);
        let rec = &self.shops[shop as usize];
        let money = self.money_if_needed(shop, as_of, filter, sort);
        rec.orders
            .iter()
            .zip(&index.rank)
            .filter_map(|(&order, &id_rank)| {
                let key = self.kept_key(order, as_of, filter, sort, money.as_ref())?;
                Some(Kept {
                    key,
                    shop_rank,
                    id_rank,
                    order,
                })
            })
            .collect()
    }

    /// The kept orders of shop `shop` by order id from the `skip`-th, at
    /// most `take` of them, added to `page`; returns how many `filter`
    /// keeps in all. A shop whose every order is kept (no filter, none
    /// paid after `as_of`) is answered from its index alone.
    fn shop_page_by_id(
        &self,
        (shop, shop_rank): (u32, u32),
        as_of: UnixNs,
        filter: &RowFilter,
        (skip, take): (usize, usize),
        page: &mut Vec<Kept>,
    ) -> usize {
        if take == 0 {
            return self.count_kept(shop, as_of, filter);
        }
        let index = self.shop_orders(shop);
        if filter.is_everything() && index.latest_paid <= as_of {
            let end = skip.saturating_add(take).min(index.by_id.len());
            let from = skip.min(end);
            page.extend(
                index.by_id[from..end]
                    .iter()
                    .zip(from..)
                    .map(|(&order, id_rank)| Kept {
                        key: 0,
                        shop_rank,
                        id_rank: id_rank as u32,
                        order,
                    }),
            );
            return index.by_id.len();
        }
        let mut kept = self.shop_kept(shop, shop_rank, as_of, filter, OrderSort::Order);
        let total = kept.len();
        best_first(&mut kept, skip.saturating_add(take));
        page.extend(kept.into_iter().skip(skip));
        total
    }

    /// The page of the rows `filter` keeps (of shop `shop_id`, or of every
    /// shop) sorted by `sort`, ties by shop id then order id, from `offset`,
    /// at most `limit` rows, each with its paid instant; and the count of
    /// all the rows kept. In the default order the shops before the page
    /// are only counted; any other sort keys every kept order (no row is
    /// formatted) and selects the page's.
    pub(super) fn indexed_rows_page(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        sort: OrderSort,
        offset: usize,
        limit: usize,
    ) -> (Vec<(UnixNs, OrderRow)>, usize) {
        let shops = self.shops_asked(shop_id);
        let end = offset.saturating_add(limit);
        let mut page: Vec<Kept> = Vec::new();
        let mut total = 0usize;
        if sort == OrderSort::Order {
            for (shop_rank, &shop) in shops.iter().enumerate() {
                let skip = offset.saturating_sub(total);
                let take = if total < end { limit - page.len() } else { 0 };
                total += self.shop_page_by_id(
                    (shop, shop_rank as u32),
                    as_of,
                    &filter,
                    (skip, take),
                    &mut page,
                );
            }
        } else {
            let mut kept: Vec<Kept> = Vec::new();
            for (shop_rank, &shop) in shops.iter().enumerate() {
                kept.extend(self.shop_kept(shop, shop_rank as u32, as_of, &filter, sort));
            }
            total = kept.len();
            best_first(&mut kept, end);
            page.extend(kept.into_iter().skip(offset));
        }
        (self.kept_rows(&page, &shops, as_of, None), total)
    }

    /// The rows [`Ledger::each_order_row`] gives (of shop `shop_id`, or of
    /// every shop) that come after the row of order `after.1` of shop
    /// `after.0` (by shop id, then order id; from the first when `None`),
    /// one at a time to `each` until it answers `Ok(false)` or fails: a
    /// cluster partition's next stretch of a download, resumed from the
    /// last row it sent without computing the rows before it. Each shop's
    /// cap (R5) is walked once a call.
    pub fn each_order_row_after<E>(
        &self,
        as_of: UnixNs,
        shop_id: Option<&str>,
        filter: RowFilter,
        after: Option<(&str, &str)>,
        mut each: impl FnMut(OrderRow) -> Result<bool, E>,
    ) -> Result<(), E> {
        /// Rows formatted at a time.
        const BATCH: usize = 256;
        let shops = self.shops_asked(shop_id);
        let first = after.map_or(0, |(shop, _)| {
            shops.partition_point(|&s| self.shop_ids.get(s) < shop)
        });
        for (shop_rank, &shop) in shops.iter().enumerate().skip(first) {
            let index = self.shop_orders(shop);
            let start = match after {
                Some((after_shop, after_order)) if self.shop_ids.get(shop) == after_shop => index
                    .by_id
                    .partition_point(|&o| self.order_ids.get(o) <= after_order),
                _ => 0,
            };
            let money = self.money_if_needed(shop, as_of, &filter, OrderSort::Order);
            let (charges, _) = self.charges(&self.shops[shop as usize], as_of, None, None, None);
            let mut kept: Vec<Kept> = Vec::with_capacity(BATCH);
            let mut orders = index.by_id[start..].iter().zip(start..).peekable();
            while orders.peek().is_some() {
                kept.clear();
                for (&order, id_rank) in orders.by_ref() {
                    if let Some(key) =
                        self.kept_key(order, as_of, &filter, OrderSort::Order, money.as_ref())
                    {
                        kept.push(Kept {
                            key,
                            shop_rank: shop_rank as u32,
                            id_rank: id_rank as u32,
                            order,
                        });
                        if kept.len() == BATCH {
                            break;
                        }
                    }
                }
                for (_, row) in self.kept_rows(&kept, &shops, as_of, Some(&charges)) {
                    if !each(row)? {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows of `page` (orders of `shops`, by their `shop_rank`), in its
    /// order, each with its paid instant. Each shop's cap (R5) is walked on
    /// the settle days of its page's deductions only, unless `charges`
    /// already holds every charge of the page's shop.
    fn kept_rows(
        &self,
        page: &[Kept],
        shops: &[u32],
        as_of: UnixNs,
        charges: Option<&Charges>,
    ) -> Vec<(UnixNs, OrderRow)> {
        if let Some(charges) = charges {
            return self.formatted_rows(page, as_of, charges);
        }
        let mut days_of: HashMap<u32, BTreeSet<Day>> = HashMap::new();
        for kept in page {
            let days = days_of.entry(kept.shop_rank).or_default();
            if let Some(view) = self.view(kept.order, as_of) {
                days.extend(
                    view.derived
                        .judgments()
                        .iter()
                        .take(view.policy.max_deductions_per_order.into())
                        .map(|j| order::settle_day(view.policy, j.judged_at)),
                );
            }
        }
        let mut charges = Charges::new();
        for (shop_rank, days) in days_of {
            let days: Vec<Day> = days.into_iter().collect();
            let shop = &self.shops[shops[shop_rank as usize] as usize];
            let (shop_charges, _) = self.charges(shop, as_of, Some(&days), None, None);
            // Order indices are the ledger's, so the shops' charges do not
            // collide.
            charges.extend(shop_charges);
        }
        self.formatted_rows(page, as_of, &charges)
    }

    /// The rows of `page`, their deductions charged by `charges`.
    fn formatted_rows(
        &self,
        page: &[Kept],
        as_of: UnixNs,
        charges: &Charges,
    ) -> Vec<(UnixNs, OrderRow)> {
        page.iter()
            .filter_map(|kept| {
                let view = self.view(kept.order, as_of)?;
                let facts = self.order_facts(view, as_of, charges);
                Some((facts.view.paid.at, self.row(&facts, as_of)))
            })
            .collect()
    }
}

/// Keeps the first `end` of `kept` by place, sorted: a selection, then a
/// sort of what is kept, so a page of a large list costs the list's length,
/// not a sort of it.
fn best_first(kept: &mut Vec<Kept>, end: usize) {
    if end == 0 {
        kept.clear();
        return;
    }
    if end < kept.len() {
        kept.select_nth_unstable_by_key(end - 1, Kept::place);
        kept.truncate(end);
    }
    kept.sort_unstable_by_key(Kept::place);
}
