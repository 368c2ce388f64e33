//! The fold (disintegrate's `mutate`): [`Ledger::apply`] and its forms on
//! borrowed text and given order indices, and the bulk fold that leaves the
//! settle-day index to be built once at its end.

use super::cap::cap_order;
use super::{ApplyError, DayEntry, Ledger, OrderIds, OrderIndex, ShopRec};
use crate::event::{Event, EventType, KindRef};
use crate::intern::Arena;
use crate::order::{self, OrderEvent, OrderRec, Paid};
use crate::time::UnixNs;

/// An order event's value as it arrives: a number, or a tracking number still
/// to be named within its order (see [`Ledger::tracking`]).
enum NumberOrTracking<'a> {
    Number(i64),
    Tracking(&'a str),
}

/// How a [`Ledger`] is folding events, which says what it leaves for later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum FoldMode {
    /// Every event updates the settle-day index at once.
    #[default]
    OneByOne,
    /// A bulk fold ([`Ledger::begin_bulk`]): the settle-day index is not
    /// maintained event by event; [`Ledger::end_bulk`] builds it once.
    Bulk,
    /// A bulk fold whose caller interns the order ids
    /// ([`Ledger::begin_bulk_outside`]): events come with their order index,
    /// and `order_ids` stays empty until [`Ledger::end_bulk_outside`].
    BulkIdsOutside,
}

impl Ledger {
    /// Starts a bulk fold into this (empty) ledger: events are filed as usual
    /// but the shop's settle-day index is left for [`Ledger::end_bulk`], which
    /// derives each order once and sorts each day once, instead of deriving
    /// the order and inserting into a sorted day at every event. A replay of a
    /// whole log uses it; the state at `end_bulk` is the same as after
    /// applying the events one by one (tested). Returns false, and changes
    /// nothing, when the ledger is not empty.
    pub fn begin_bulk(&mut self) -> bool {
        if self.events_applied > 0 {
            return false;
        }
        self.mode = FoldMode::Bulk;
        true
    }

    /// Makes room for about `orders` more orders (and as many tracking
    /// numbers), so that a bulk fold of a log of known size grows nothing by
    /// doubling. Only capacity changes; nothing observable does.
    pub fn reserve_orders(&mut self, orders: usize) {
        self.orders.reserve(orders);
        if self.mode != FoldMode::BulkIdsOutside {
            self.order_ids.reserve(orders, 12);
        }
        self.tracking_nos.reserve(orders, 14);
    }

    /// [`Ledger::begin_bulk`] for a fold whose caller interns the order ids
    /// (see [`OrderIds`]) and folds with [`Ledger::apply_ref_indexed`]; ended
    /// by [`Ledger::end_bulk_outside`]. The state at the end is the same as
    /// after applying the events one by one (tested). Returns false, and
    /// changes nothing, when the ledger is not empty.
    pub fn begin_bulk_outside(&mut self) -> bool {
        if !self.begin_bulk() {
            return false;
        }
        self.mode = FoldMode::BulkIdsOutside;
        true
    }

    /// Ends a fold begun by [`Ledger::begin_bulk_outside`]: takes the order
    /// ids in, then ends the bulk fold. When the ids are not exactly those
    /// of the orders folded (a fold stopped by an error after its reader
    /// interned further, or a bug), the ledger is emptied instead, so that
    /// it never names an order by the wrong id, and the error says so.
    pub fn end_bulk_outside(&mut self, ids: OrderIds) -> Result<(), ApplyError> {
        if self.mode != FoldMode::BulkIdsOutside || ids.len() != self.orders.len() {
            *self = Ledger::new(self.policy.clone());
            return Err(ApplyError::OrderIndexMismatch);
        }
        self.mode = FoldMode::Bulk;
        self.order_ids = ids.0;
        self.end_bulk();
        Ok(())
    }

    /// Interns the order ids of events about to be folded, each in turn as
    /// their fold would, appending each one's index to `out` (`None` past 4
    /// GiB of ids, and for every id in a fold begun by
    /// [`Ledger::begin_bulk_outside`], whose caller interns them); the events
    /// are then folded with [`OrderIndex::Interned`]. Why: at a million
    /// orders each lookup is a cache miss on the table, and one event's fold
    /// after another they wait for each other; looked up together, their
    /// misses overlap (see `Interner::intern_all`). Ids interned here whose
    /// events are then not folded stay interned: the caller folds them all,
    /// or drops the ledger.
    pub fn intern_order_ids(&mut self, order_ids: &[&str], out: &mut Vec<Option<u32>>) {
        if self.mode == FoldMode::BulkIdsOutside {
            out.extend(order_ids.iter().map(|_| None));
            return;
        }
        self.order_ids.intern_all(order_ids, out);
    }

    /// Ends a bulk fold begun by [`Ledger::begin_bulk`]: builds every shop's
    /// settle-day index. A fold begun by [`Ledger::begin_bulk_outside`] is
    /// ended by [`Ledger::end_bulk_outside`] only, which takes the order ids
    /// the index is sorted by; here it is left as it is.
    pub fn end_bulk(&mut self) {
        if self.mode != FoldMode::Bulk {
            return;
        }
        self.mode = FoldMode::OneByOne;
        for shop in &mut self.shops {
            shop.days.clear();
        }
        for order in 0..self.orders.len() as u32 {
            let rec = &self.orders[order as usize];
            let Some(paid) = rec.paid else {
                continue;
            };
            let policy = self.policy.at(paid.at);
            let derived = order::derive(policy, &paid, rec.events.as_slice());
            let mask = derived.deduction_mask(policy);
            self.orders[order as usize].indexed = mask;
            self.orders[order as usize].never_judged = derived.never_judged();
            let shop = &mut self.shops[paid.shop as usize];
            for j in derived.judgments() {
                if mask & (1u16 << (j.number - 1)) != 0 {
                    let day = order::settle_day(policy, j.judged_at);
                    shop.days.entry(day).or_default().push(DayEntry {
                        judged_at: j.judged_at,
                        order,
                        number: j.number,
                    });
                }
            }
        }
        let order_ids = &self.order_ids;
        for shop in &mut self.shops {
            for entries in shop.days.values_mut() {
                entries.sort_by(|a, b| cap_order(order_ids, a, b));
            }
        }
    }

    fn intern_order(&mut self, order_id: &str, from: OrderIndex) -> Result<u32, ApplyError> {
        let index = match from {
            OrderIndex::Intern if self.mode != FoldMode::BulkIdsOutside => self
                .order_ids
                .intern(order_id)
                .ok_or(ApplyError::TooManyIds)?,
            OrderIndex::Given(Some(index)) if self.mode == FoldMode::BulkIdsOutside => index,
            OrderIndex::Interned(index)
                if self.mode != FoldMode::BulkIdsOutside
                    && (index as usize) < self.order_ids.len() =>
            {
                index
            }
            _ => return Err(ApplyError::OrderIndexMismatch),
        };
        if self.orders.len() <= index as usize {
            self.orders
                .resize_with(index as usize + 1, OrderRec::default);
        }
        Ok(index)
    }

    fn intern_shop(&mut self, shop_id: &str) -> Result<u32, ApplyError> {
        let index = self
            .shop_ids
            .intern(shop_id)
            .ok_or(ApplyError::TooManyIds)?;
        if self.shops.len() <= index as usize {
            self.shops.resize_with(index as usize + 1, ShopRec::default);
        }
        Ok(index)
    }

    /// Folds one event into the state. `recorded_at` is when the log recorded
    /// it; only the notice feed (R9) reads it.
    pub fn apply(&mut self, event: &Event, recorded_at: UnixNs) -> Result<(), ApplyError> {
        self.apply_ref(event.at, event.kind_ref(), recorded_at)
    }

    /// [`Ledger::apply`] on borrowed text: an event at `at` of kind `kind`.
    pub fn apply_ref(
        &mut self,
        at: UnixNs,
        kind: KindRef<'_>,
        recorded_at: UnixNs,
    ) -> Result<(), ApplyError> {
        self.apply_ref_indexed(at, kind, recorded_at, OrderIndex::Intern)
    }

    /// [`Ledger::apply_ref`] with the event's order index taken from
    /// `order_index`: [`OrderIndex::Given`] in a fold begun by
    /// [`Ledger::begin_bulk_outside`], [`OrderIndex::Intern`] otherwise; any
    /// other mix is [`ApplyError::OrderIndexMismatch`].
    pub fn apply_ref_indexed(
        &mut self,
        at: UnixNs,
        kind: KindRef<'_>,
        recorded_at: UnixNs,
        order_index: OrderIndex,
    ) -> Result<(), ApplyError> {
        self.apply_ref_to_shop(at, kind, recorded_at, order_index)
            .map(drop)
    }

    /// [`Ledger::apply_ref_indexed`], saying which shop the event belongs
    /// to: its own (`paid`, `deposit_topped_up`) or that of its order's
    /// `paid` (`None` before there is one, R13), as this ledger's shop
    /// number ([`Ledger::shop_id_at`]). A writer that records each event's
    /// partition learns it from the fold's own lookup of the order, not a
    /// second one.
    pub fn apply_ref_to_shop(
        &mut self,
        at: UnixNs,
        kind: KindRef<'_>,
        recorded_at: UnixNs,
        order_index: OrderIndex,
    ) -> Result<Option<u32>, ApplyError> {
        let fields = kind.fields();
        let value = match fields.event_type {
            EventType::DepositToppedUp => {
                let shop = self.intern_shop(fields.shop_id)?;
                let topups = &mut self.shops[shop as usize].topups;
                let key = (at, fields.amount_fen);
                let index = topups.partition_point(|t| *t <= key);
                topups.insert(index, key);
                self.events_applied += 1;
                return Ok(Some(shop));
            }
            EventType::Paid => {
                let order = self.intern_order(fields.order_id, order_index)?;
                if self.orders[order as usize].paid.is_some() {
                    return Err(ApplyError::OrderAlreadyPaid {
                        order_id: fields.order_id.to_string(),
                    });
                }
                let shop = self.intern_shop(fields.shop_id)?;
                let product = self
                    .product_ids
                    .intern(fields.product_id)
                    .ok_or(ApplyError::TooManyIds)?;
                self.orders[order as usize].paid = Some(Paid {
                    at,
                    recorded_at,
                    ship_by: fields.ship_by,
                    amount_fen: fields.amount_fen,
                    shop,
                    product,
                });
                self.shops[shop as usize].orders.push(order);
                self.reindex(order);
                self.events_applied += 1;
                return Ok(Some(shop));
            }
            EventType::Shipped | EventType::TrackingUploaded | EventType::TrackingRejected => {
                NumberOrTracking::Tracking(fields.tracking_no)
            }
            EventType::Refunded => NumberOrTracking::Number(fields.amount_fen),
            EventType::RefundFailed => NumberOrTracking::Number(0),
            EventType::JudgmentRevoked => NumberOrTracking::Number(i64::from(fields.judgment)),
        };
        let kind = fields.event_type;
        let order_id = fields.order_id;
        let order = self.intern_order(order_id, order_index)?;
        let value = match value {
            NumberOrTracking::Number(value) => value,
            NumberOrTracking::Tracking(tracking_no) => self.tracking(order, tracking_no)?,
        };
        let new = OrderEvent {
            at,
            recorded_at,
            value,
            kind,
        };
        let tracking_nos = &self.tracking_nos;
        self.orders[order as usize]
            .events
            .insert(new, |a, b| sorts_before(tracking_nos, a, b));
        // R13: until the order is paid the event only waits.
        let shop = self.orders[order as usize].paid.map(|paid| paid.shop);
        if shop.is_some() {
            self.reindex(order);
        }
        self.events_applied += 1;
        Ok(shop)
    }

    /// The index of an order's tracking number. R2 only compares the
    /// tracking numbers of one order with each other, so equal text need only
    /// mean an equal index within the order: its few events are searched, and
    /// a new number is appended to the arena. A global table would cost a
    /// cache miss per shipment and about 16 bytes per order.
    fn tracking(&mut self, order: u32, tracking_no: &str) -> Result<i64, ApplyError> {
        let tracking_nos = &self.tracking_nos;
        let known = self.orders[order as usize]
            .events
            .as_slice()
            .iter()
            .filter_map(OrderEvent::tracking)
            .find(|&t| tracking_nos.get(t) == tracking_no);
        known
            .or_else(|| self.tracking_nos.push(tracking_no))
            .map(i64::from)
            .ok_or(ApplyError::TooManyIds)
    }

    /// Moves an order's entries in its shop's settle-day index after its
    /// events changed: only the deductions whose existence changed move.
    fn reindex(&mut self, order: u32) {
        if self.mode != FoldMode::OneByOne {
            return;
        }
        let rec = &self.orders[order as usize];
        let Some(paid) = rec.paid else {
            return;
        };
        let policy = self.policy.at(paid.at);
        let derived = order::derive(policy, &paid, rec.events.as_slice());
        let old = rec.indexed;
        let new = derived.deduction_mask(policy);
        self.orders[order as usize].never_judged = derived.never_judged();
        if old == new {
            return;
        }
        self.orders[order as usize].indexed = new;
        let order_ids = &self.order_ids;
        let shop = &mut self.shops[paid.shop as usize];
        for j in derived.judgments() {
            let bit = 1u16 << (j.number - 1);
            if old & bit == new & bit {
                continue;
            }
            let day = order::settle_day(policy, j.judged_at);
            let entry = DayEntry {
                judged_at: j.judged_at,
                order,
                number: j.number,
            };
            let entries = shop.days.entry(day).or_default();
            // The cap's order; ids are looked up only on a tie of instants.
            let position = entries.binary_search_by(|e| cap_order(order_ids, e, &entry));
            match (new & bit != 0, position) {
                (true, Err(index)) => entries.insert(index, entry),
                (false, Ok(index)) => {
                    entries.remove(index);
                }
                _ => {}
            }
            if entries.is_empty() {
                shop.days.remove(&day);
            }
        }
    }
}

/// Events of an order sort by instant, then kind, then value (tracking numbers
/// by their text, so the order does not depend on interning order), then
/// recording time: a total order on content, so the state does not depend on
/// arrival order.
fn sorts_before(tracking_nos: &Arena, a: &OrderEvent, b: &OrderEvent) -> bool {
    // The texts are looked up only on a tie: each lookup is a likely cache
    // miss, and events of one order rarely share an instant.
    let value = |e: &OrderEvent| match e.tracking() {
        Some(t) => (0, tracking_nos.get(t)),
        None => (e.value, ""),
    };
    (a.at, a.kind)
        .cmp(&(b.at, b.kind))
        .then_with(|| value(a).cmp(&value(b)))
        .then_with(|| a.recorded_at.cmp(&b.recorded_at))
        .is_lt()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        at, folded, paid, refunded, rejected, revoked, shipped, topped_up,
    };
    use super::*;
    use crate::event::EventKind;
    use crate::policy::Policy;
    use crate::report::{OrderRow, ShopReport};

    /// What a seller reads of shop S1 as of `at(hours)`.
    fn answers(ledger: &Ledger, hours: i64) -> (ShopReport, Vec<OrderRow>, String) {
        (
            ledger.shop_report("S1", at(hours), true).unwrap(),
            ledger.order_rows(at(hours), |_| true),
            ledger.digest(at(hours)),
        )
    }

    #[test]
    fn a_second_paid_event_for_an_order_is_refused_and_changes_nothing() {
        let mut ledger = folded(Policy::default(), &[paid("O1", "S1", 0)]);
        let before = ledger.clone();
        let again = paid("O1", "S1", 5);
        assert_eq!(
            ledger.apply(&again, again.at),
            Err(ApplyError::OrderAlreadyPaid {
                order_id: "O1".into()
            })
        );
        assert_eq!(ledger, before);
    }

    #[test]
    fn the_same_shipment_applied_twice_answers_as_once() {
        // The log drops a repeated event_id; a second event of the same
        // content is kept, and R2 reads it as the same shipment.
        let once = folded(
            Policy::default(),
            &[paid("O1", "S1", 0), shipped("O1", "T1", 60)],
        );
        let twice = folded(
            Policy::default(),
            &[
                paid("O1", "S1", 0),
                shipped("O1", "T1", 60),
                shipped("O1", "T1", 60),
            ],
        );
        for hours in [59, 60, 200] {
            let (report, rows, digest) = answers(&twice, hours);
            let (report_once, rows_once, digest_once) = answers(&once, hours);
            assert_eq!((report, rows), (report_once, rows_once));
            // The order's `explain` lines tell both events, and so does the
            // digest.
            assert_eq!(digest == digest_once, hours < 60);
        }
    }

    #[test]
    fn refunds_add_up_so_a_refund_applied_twice_counts_twice() {
        // R2 (b): two refunds of half the paid amount are a full refund.
        let half = refunded("O1", 5_000, 10);
        let once = folded(Policy::default(), &[paid("O1", "S1", 0), half.clone()]);
        let twice = folded(
            Policy::default(),
            &[paid("O1", "S1", 0), half.clone(), half],
        );
        let resolved = |ledger: &Ledger| {
            ledger
                .order_report("O1", at(200))
                .unwrap()
                .resolved_at
                .is_some()
        };
        assert!(!resolved(&once));
        assert!(resolved(&twice));
    }

    /// Every ordering of `events`, by Heap's algorithm.
    fn permutations(events: &mut [Event], k: usize, each: &mut impl FnMut(&[Event])) {
        if k <= 1 {
            each(events);
            return;
        }
        for i in 0..k {
            permutations(events, k - 1, each);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            events.swap(j, k - 1);
        }
    }

    #[test]
    fn arrival_order_changes_no_answer_and_bulk_folds_equal_one_by_one() {
        // A late shipment later rejected (R2 a, retroactive), a revocation
        // (R11) that may arrive before its order's paid (R13), a full refund,
        // top-ups; seven events, every one of their 5,040 orders.
        let mut events = vec![
            paid("O1", "S1", 0),
            shipped("O1", "T1", 70),
            rejected("O1", "T1", 90),
            revoked("O1", 1, 100),
            paid("O2", "S1", 1),
            refunded("O2", 10_000, 20),
            topped_up("S1", 3_000, 2),
        ];
        let expected: Vec<_> = [60, 95, 300]
            .map(|hours| answers(&folded(Policy::default(), &events), hours))
            .into();
        // Not vacuous: O1 has a standing judgment and a revoked one.
        assert_eq!(expected[2].0.judgments, 2);
        let mut count = 0;
        let n = events.len();
        permutations(&mut events, n, &mut |order| {
            count += 1;
            let one_by_one = folded(Policy::default(), order);
            for (i, hours) in [60, 95, 300].into_iter().enumerate() {
                assert_eq!(answers(&one_by_one, hours), expected[i]);
            }
            let mut bulk = Ledger::new(Policy::default());
            assert!(bulk.begin_bulk());
            for e in order {
                bulk.apply(e, e.at).unwrap();
            }
            bulk.end_bulk();
            assert_eq!(bulk, one_by_one);
        });
        assert_eq!(count, 5_040);
    }

    #[test]
    fn end_bulk_leaves_a_fold_with_ids_outside_to_end_bulk_outside() {
        // Without the caller's ids the settle-day index cannot be sorted
        // (R5's order ties on order ids), so only end_bulk_outside ends it.
        let events = [paid("O1", "S1", 0), paid("O2", "S1", 0)];
        let mut ledger = Ledger::new(Policy::default());
        assert!(ledger.begin_bulk_outside());
        let mut ids = OrderIds::default();
        for e in &events {
            let EventKind::Paid { order_id, .. } = &e.kind else {
                unreachable!("only paid events here")
            };
            let index = OrderIndex::Given(ids.intern(order_id));
            ledger
                .apply_ref_indexed(e.at, e.kind_ref(), e.at, index)
                .unwrap();
        }
        ledger.end_bulk();
        assert_eq!(ledger.mode, FoldMode::BulkIdsOutside);
        ledger.end_bulk_outside(ids).unwrap();
        assert_eq!(ledger, folded(Policy::default(), &events));
    }

    #[test]
    fn order_ids_interned_ahead_fold_as_one_by_one() {
        // Orders paid before the batch, an event waiting for its `paid`
        // (R13), a top-up that names no order, repeats within the batch; in
        // a plain fold and in a bulk one.
        let before = [paid("O1", "S1", 0), shipped("O9", "T9", 1)];
        let batch = [
            shipped("O1", "T1", 2),
            paid("O2", "S2", 3),
            topped_up("S1", 5_000, 4),
            rejected("O1", "T1", 5),
            paid("O9", "S1", 6),
            refunded("O2", 100, 7),
            revoked("O3", 1, 8),
            paid("O3", "S2", 9),
        ];
        for bulk in [false, true] {
            let mut ahead = Ledger::new(Policy::default());
            let mut expected = Ledger::new(Policy::default());
            if bulk {
                assert!(ahead.begin_bulk() && expected.begin_bulk());
            }
            for e in &before {
                ahead.apply(e, e.at).unwrap();
            }
            for e in before.iter().chain(&batch) {
                expected.apply(e, e.at).unwrap();
            }
            let order_ids: Vec<&str> = batch.iter().filter_map(Event::order_id).collect();
            let mut indices = Vec::new();
            ahead.intern_order_ids(&order_ids, &mut indices);
            let mut indices = indices.into_iter();
            for e in &batch {
                let index = match e.order_id() {
                    Some(_) => OrderIndex::Interned(indices.next().unwrap().unwrap()),
                    None => OrderIndex::Intern,
                };
                ahead
                    .apply_ref_indexed(e.at, e.kind_ref(), e.at, index)
                    .unwrap();
            }
            ahead.end_bulk();
            expected.end_bulk();
            assert_eq!(ahead, expected);
        }
    }

    #[test]
    fn an_order_index_not_interned_ahead_is_refused() {
        let mut ledger = folded(Policy::default(), &[paid("O1", "S1", 0)]);
        let e = shipped("O2", "T2", 1);
        let beyond = OrderIndex::Interned(1);
        assert_eq!(
            ledger.apply_ref_indexed(e.at, e.kind_ref(), e.at, beyond),
            Err(ApplyError::OrderIndexMismatch)
        );
        let mut outside = Ledger::new(Policy::default());
        assert!(outside.begin_bulk_outside());
        let mut indices = Vec::new();
        outside.intern_order_ids(&["O1"], &mut indices);
        assert_eq!(indices, [None]);
        let e = paid("O1", "S1", 0);
        assert_eq!(
            outside.apply_ref_indexed(e.at, e.kind_ref(), e.at, OrderIndex::Interned(0)),
            Err(ApplyError::OrderIndexMismatch)
        );
    }
}
