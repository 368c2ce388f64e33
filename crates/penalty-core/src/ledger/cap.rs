//! The daily cap (R5): a shop's deductions of one settle day are charged in
//! the cap's order until the cap of the day is used up; the rest is waived.
//! The walk reads the shop's settle-day index ([`ShopRec::days`]), which the
//! fold keeps in that order.

use std::collections::HashMap;

use super::{DayEntry, Ledger, ShopRec};
use crate::intern::Interner;
use crate::time::{Day, UnixNs};

/// Charges of due deductions: `(order, judgment)` -> `(charged_fen, waived_fen)`.
pub(super) type Charges = HashMap<(u32, u8), (i64, i64)>;

impl Ledger {
    /// R5: the charges of one shop's due settle days as of `as_of`, limited to
    /// `days` when given. With `only`, the charges of that order alone are
    /// wanted: the walk of a day stops after its last entry, and once the
    /// day's cap is used up the entries before it are skipped without
    /// deriving their orders (they are charged nothing, whatever they are).
    /// In the largest shops a day holds hundreds of deductions, and an order
    /// report needs one or two of them.
    ///
    /// With `booked_at` (the start of `as_of`'s day, the last settlement
    /// run), the same walk also sums what R5 charges as of that instant: the
    /// booked sum of R14, without deriving every order a second time.
    pub(super) fn charges(
        &self,
        shop: &ShopRec,
        as_of: UnixNs,
        days: Option<&[Day]>,
        only: Option<u32>,
        booked_at: Option<UnixNs>,
    ) -> (Charges, i128) {
        let offset = self.policy.utc_offset;
        let mut charges = Charges::new();
        let mut booked_fen: i128 = 0;
        let mut allocate = |day: &Day, entries: &[DayEntry]| {
            let start = day.start(offset);
            if start > as_of {
                return;
            }
            // R15: the cap of the version in force at the settle date's start.
            let cap = self.policy.at(start).shop_daily_cap_fen;
            let end = match only {
                Some(order) => match entries.iter().rposition(|e| e.order == order) {
                    Some(position) => position + 1,
                    None => return,
                },
                None => entries.len(),
            };
            let mut charged_today: i64 = 0;
            let mut booked_today: i64 = 0;
            for entry in &entries[..end] {
                let wanted = only.is_none_or(|order| entry.order == order);
                if !wanted && charged_today >= cap {
                    continue;
                }
                let Some(view) = self.view(entry.order, as_of) else {
                    continue;
                };
                let judgment = view.derived.judgment(entry.number);
                // R15: the deduction of the version at the order's paid.at.
                let amount = view.policy.deduction_fen;
                if let Some(booked_at) = booked_at {
                    if judgment.is_some_and(|j| j.stands(booked_at)) {
                        let booked = amount.min((cap - booked_today).max(0));
                        booked_today += booked;
                        booked_fen += i128::from(booked);
                    }
                }
                if !judgment.is_some_and(|j| j.stands(as_of)) {
                    continue;
                }
                let room = (cap - charged_today).max(0);
                let charged = amount.min(room);
                charged_today += charged;
                if wanted {
                    charges.insert((entry.order, entry.number), (charged, amount - charged));
                }
            }
        };
        match days {
            Some(days) => {
                for day in days {
                    if let Some(entries) = shop.days.get(day) {
                        allocate(day, entries);
                    }
                }
            }
            None => {
                for (day, entries) in &shop.days {
                    allocate(day, entries);
                }
            }
        }
        (charges, booked_fen)
    }
}

/// The order of the daily cap (R5) within a settle day: (judged_at,
/// order_id, judgment); ids are looked up only on a tie of instants.
pub(super) fn cap_order(order_ids: &Interner, a: &DayEntry, b: &DayEntry) -> std::cmp::Ordering {
    a.judged_at
        .cmp(&b.judged_at)
        .then_with(|| order_ids.get(a.order).cmp(order_ids.get(b.order)))
        .then(a.number.cmp(&b.number))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, folded, paid, revoked};
    use super::*;
    use crate::event::Event;
    use crate::policy::Policy;

    /// One deduction per order (judgment 1, 48 hours after paid), of 1,000
    /// fen, under a daily cap of `cap_fen`.
    fn policy(cap_fen: i64) -> Policy {
        Policy {
            deduction_fen: 1_000,
            max_deductions_per_order: 1,
            shop_daily_cap_fen: cap_fen,
            ..Policy::default()
        }
    }

    /// Shop S1 with one order paid at `at(hours)` for each `(order_id,
    /// hours)` of `paid_at`, then `more`.
    fn shop(cap_fen: i64, paid_at: &[(&str, i64)], more: &[Event]) -> Ledger {
        let mut events: Vec<Event> = paid_at.iter().map(|&(o, h)| paid(o, "S1", h)).collect();
        events.extend_from_slice(more);
        folded(policy(cap_fen), &events)
    }

    /// R5's charges of shop S1 as of ten days on: (order id, charged,
    /// waived) of each order's one deduction, by order id.
    fn charges(ledger: &Ledger) -> Vec<(&str, i64, i64)> {
        let (charges, _) = ledger.charges(&ledger.shops[0], at(240), None, None, None);
        let mut named: Vec<_> = charges
            .into_iter()
            .map(|((order, _), (charged, waived))| (ledger.order_ids.get(order), charged, waived))
            .collect();
        named.sort();
        named
    }

    #[test]
    fn a_days_deductions_are_charged_in_order_until_the_cap_and_the_rest_waived() {
        // Judged at paid + 48 h, all on one local day: O4 first (judged
        // earliest), then O3, then O1 and O2 at one instant (by order id).
        let ledger = shop(2_500, &[("O1", 3), ("O2", 3), ("O3", 1), ("O4", 0)], &[]);
        let expected = [
            ("O1", 500, 500),
            ("O2", 0, 1_000),
            ("O3", 1_000, 0),
            ("O4", 1_000, 0),
        ];
        assert_eq!(charges(&ledger), expected);
    }

    #[test]
    fn a_cap_reached_exactly_charges_in_full_and_waives_the_next_in_full() {
        let ledger = shop(2_000, &[("O1", 0), ("O2", 1), ("O3", 2)], &[]);
        let expected = [("O1", 1_000, 0), ("O2", 1_000, 0), ("O3", 0, 1_000)];
        assert_eq!(charges(&ledger), expected);
    }

    #[test]
    fn each_settle_day_has_its_own_cap_and_waived_money_is_not_carried() {
        // O1, O2 settle on one day, O3 on the next: O2's waived deduction
        // does not use up O3's day.
        let ledger = shop(1_000, &[("O1", 0), ("O2", 1), ("O3", 24)], &[]);
        let expected = [("O1", 1_000, 0), ("O2", 0, 1_000), ("O3", 1_000, 0)];
        assert_eq!(charges(&ledger), expected);
    }

    #[test]
    fn a_revoked_judgment_takes_no_part_in_the_cap() {
        // R11: O1's deduction is revoked, so O2 is charged within the cap.
        let ledger = shop(1_000, &[("O1", 0), ("O2", 1)], &[revoked("O1", 1, 100)]);
        assert_eq!(charges(&ledger), [("O2", 1_000, 0)]);
    }

    #[test]
    fn only_one_orders_charges_match_the_whole_walk() {
        // The order report's walk (`only`) skips entries once the cap is
        // used up; it must charge the order as the full walk does.
        let ledger = shop(1_500, &[("O1", 0), ("O2", 1), ("O3", 2)], &[]);
        let s1 = &ledger.shops[0];
        let (all, _) = ledger.charges(s1, at(240), None, None, None);
        for order in 0..3u32 {
            let (one, _) = ledger.charges(s1, at(240), None, Some(order), None);
            assert_eq!(one.get(&(order, 1)), all.get(&(order, 1)), "order {order}");
            assert_eq!(one.len(), 1);
        }
    }
}
