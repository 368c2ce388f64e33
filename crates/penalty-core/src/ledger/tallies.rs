//! The per-shop tally: everything a shop's reports need as of an instant,
//! unformatted. The shop report, the export rows and the digest all read
//! [`ShopTally`], so their figures cannot disagree.

use std::collections::HashMap;

use super::cap::Charges;
use super::Ledger;
use crate::order;
use crate::report::DeductionStatus;
use crate::time::{Day, UnixNs};
use crate::view::OrderView;

/// A deduction before formatting (R4, R5).
#[derive(Clone, Copy, Debug)]
pub(super) struct RawDeduction {
    pub(super) number: u8,
    pub(super) judged_at: UnixNs,
    pub(super) settle_day: Day,
    pub(super) amount_fen: i64,
    pub(super) charged_fen: i64,
    pub(super) waived_fen: i64,
    pub(super) status: DeductionStatus,
}

/// One order of a shop as of an instant, unformatted.
pub(super) struct OrderFacts<'a> {
    pub(super) view: OrderView<'a>,
    pub(super) deductions: Vec<RawDeduction>,
    pub(super) standing: u64,
    pub(super) revoked: u64,
    pub(super) banned: bool,
    pub(super) flagged: bool,
}

/// One shop as of an instant, unformatted; see [`Ledger::tally`].
pub(super) struct ShopTally<'a> {
    pub(super) index: u32,
    pub(super) orders: u64,
    pub(super) judgments: u64,
    pub(super) violating_orders: u64,
    // Sums over every order and top-up of a shop, exact: they may exceed
    // `i64` (issue 20), where each amount summed fits one.
    pub(super) charged_fen: i128,
    pub(super) waived_fen: i128,
    pub(super) pending_fen: i128,
    pub(super) deposit_balance_fen: i128,
    pub(super) booked_fen: i128,
    pub(super) due_orders: u64,
    pub(super) timed_out_orders: u64,
    pub(super) timeout_judgments: u64,
    /// (banned_at, product_id, order_id), sorted.
    pub(super) bans: Vec<(UnixNs, &'a str, &'a str)>,
    /// (flagged_at, order_id), sorted.
    pub(super) flags: Vec<(UnixNs, &'a str)>,
    /// The orders' facts, as far as [`FactsKept`] asked for them.
    pub(super) facts: Vec<OrderFacts<'a>>,
}

/// Which orders' facts a [`ShopTally`] keeps: a shop summary needs none of
/// them, the shop report's deduction list those with deductions (a few in a
/// hundred), the export rows and the digest all of them. Keeping each order's
/// facts (a few hundred bytes) was most of a large shop's report.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FactsKept {
    Summary,
    Deductions,
    All,
}

impl Ledger {
    /// The deductions of one order as of `as_of` (R4, R5, R11), unformatted.
    pub(super) fn raw_deductions(
        &self,
        view: &OrderView<'_>,
        as_of: UnixNs,
        charges: &Charges,
    ) -> Vec<RawDeduction> {
        let offset = self.policy.utc_offset;
        let amount_fen = view.policy.deduction_fen;
        view.judgments(as_of)
            .filter(|j| j.number <= view.policy.max_deductions_per_order)
            .map(|j| {
                let settle_day = order::settle_day(view.policy, j.judged_at);
                let (charged_fen, waived_fen, status) = if j.revoked(as_of) {
                    (0, 0, DeductionStatus::Revoked)
                } else if as_of < settle_day.start(offset) {
                    (0, 0, DeductionStatus::Pending)
                } else {
                    let (charged, waived) = charges
                        .get(&(view.index, j.number))
                        .copied()
                        .unwrap_or((0, amount_fen));
                    let status = if waived == 0 {
                        DeductionStatus::Charged
                    } else if charged == 0 {
                        DeductionStatus::Waived
                    } else {
                        DeductionStatus::Partial
                    };
                    (charged, waived, status)
                };
                RawDeduction {
                    number: j.number,
                    judged_at: j.judged_at,
                    settle_day,
                    amount_fen,
                    charged_fen,
                    waived_fen,
                    status,
                }
            })
            .collect()
    }

    /// Everything the shop's reports need as of `as_of`, unformatted: the
    /// shop report, the export rows and the digest all read this one tally.
    pub(super) fn tally(&self, index: u32, as_of: UnixNs, keep: FactsKept) -> ShopTally<'_> {
        let shop = &self.shops[index as usize];
        let basis = self.tally_basis(index, as_of);
        let mut sums = OrderSums::default();
        let mut facts = Vec::with_capacity(match keep {
            FactsKept::All => shop.orders.len(),
            FactsKept::Deductions | FactsKept::Summary => 0,
        });
        for &order in &shop.orders {
            // An order that no judgment reaches adds only to the counts of
            // orders and of due orders, and a summary keeps no facts of it:
            // its timelines are not derived (most orders ship on time).
            let rec = &self.orders[order as usize];
            if keep != FactsKept::All && rec.never_judged {
                if let Some(paid) = rec.paid.filter(|p| p.at <= as_of) {
                    sums.orders += 1;
                    if basis.in_window(order::deadline(self.policy.at(paid.at), &paid)) {
                        sums.due_orders += 1;
                    }
                }
                continue;
            }
            let Some(view) = self.view(order, as_of) else {
                continue;
            };
            let order_facts = self.tally_order(&mut sums, view, &basis);
            let kept = match keep {
                FactsKept::All => true,
                FactsKept::Deductions => !order_facts.deductions.is_empty(),
                FactsKept::Summary => false,
            };
            if kept {
                facts.push(order_facts);
            }
        }
        self.tally_of(index, &basis, sums, facts)
    }

    /// What shop `index`'s tally as of `as_of` needs besides its orders.
    pub(super) fn tally_basis(&self, index: u32, as_of: UnixNs) -> TallyBasis {
        let shop = &self.shops[index as usize];
        // R14: the booked sum is R5's charged sum as of the last run's start.
        let (charges, booked_fen) = self.charges(
            shop,
            as_of,
            None,
            None,
            Some(super::postings::last_run_start(self, as_of)),
        );
        TallyBasis {
            charges,
            booked_fen,
            // R15: the rating window of the version in force at as_of.
            window_start: as_of.plus_days(-self.policy.at(as_of).rating_window_days),
            as_of,
        }
    }

    /// Adds one order (existing as of the basis's instant) to `sums` and
    /// gives its facts.
    pub(super) fn tally_order<'a>(
        &'a self,
        sums: &mut OrderSums<'a>,
        view: OrderView<'a>,
        basis: &TallyBasis,
    ) -> OrderFacts<'a> {
        let as_of = basis.as_of;
        sums.orders += 1;
        let mut standing = 0u64;
        let mut revoked = 0u64;
        for j in view.judgments(as_of) {
            if j.revoked(as_of) {
                revoked += 1;
                continue;
            }
            standing += 1;
            if basis.in_window(j.judged_at) {
                sums.timeout_judgments += 1;
            }
        }
        sums.judgments += standing;
        if standing > 0 {
            sums.violating_orders += 1;
        }
        if basis.in_window(view.derived.deadline) {
            sums.due_orders += 1;
            if standing > 0 {
                sums.timed_out_orders += 1;
            }
        }
        let banned = view.ban(as_of);
        if let Some(ban) = banned {
            sums.add_ban(view.paid.product, (ban.judged_at, view.order_id()));
        }
        let flagged = view.flagged(as_of);
        if flagged {
            sums.flags.push((view.derived.flag_at, view.order_id()));
        }
        let deductions = if view.derived.deduction_mask(view.policy) == 0 {
            Vec::new()
        } else {
            self.raw_deductions(&view, as_of, &basis.charges)
        };
        for d in &deductions {
            sums.charged_fen += i128::from(d.charged_fen);
            sums.waived_fen += i128::from(d.waived_fen);
            if d.status == DeductionStatus::Pending {
                sums.pending_fen += i128::from(d.amount_fen);
            }
        }
        OrderFacts {
            view,
            deductions,
            standing,
            revoked,
            banned: banned.is_some(),
            flagged,
        }
    }

    /// Shop `index`'s tally from the sums over all its orders.
    pub(super) fn tally_of<'a>(
        &'a self,
        index: u32,
        basis: &TallyBasis,
        sums: OrderSums<'a>,
        facts: Vec<OrderFacts<'a>>,
    ) -> ShopTally<'a> {
        let shop = &self.shops[index as usize];
        let topped_up_fen = shop
            .topups
            .iter()
            .take_while(|(at, _)| *at <= basis.as_of)
            .map(|(_, amount)| i128::from(*amount))
            .sum::<i128>();
        let mut bans: Vec<_> = sums
            .bans
            .into_iter()
            .map(|(product, (at, order))| (at, self.product_ids.get(product), order))
            .collect();
        bans.sort();
        let mut flags = sums.flags;
        flags.sort();
        ShopTally {
            index,
            orders: sums.orders,
            judgments: sums.judgments,
            violating_orders: sums.violating_orders,
            charged_fen: sums.charged_fen,
            waived_fen: sums.waived_fen,
            pending_fen: sums.pending_fen,
            deposit_balance_fen: topped_up_fen - sums.charged_fen,
            booked_fen: basis.booked_fen,
            due_orders: sums.due_orders,
            timed_out_orders: sums.timed_out_orders,
            timeout_judgments: sums.timeout_judgments,
            bans,
            flags,
            facts,
        }
    }
}

/// What a shop's tally as of an instant needs besides its orders: R5's
/// charges and the booked sum (R14), and the rating window (R15).
pub(super) struct TallyBasis {
    charges: Charges,
    booked_fen: i128,
    window_start: UnixNs,
    as_of: UnixNs,
}

impl TallyBasis {
    /// Whether `t` lies in the rating window.
    fn in_window(&self, t: UnixNs) -> bool {
        t > self.window_start && t <= self.as_of
    }
}

/// A shop's figures summed over some of its orders. Sums over two sets of
/// orders merge into the sums over both, in either order, so the orders may
/// be added in any order and on several threads (the digest does).
#[derive(Default)]
pub(super) struct OrderSums<'a> {
    orders: u64,
    judgments: u64,
    violating_orders: u64,
    charged_fen: i128,
    waived_fen: i128,
    pending_fen: i128,
    due_orders: u64,
    timed_out_orders: u64,
    timeout_judgments: u64,
    /// product -> (banned_at, order_id): the earliest ban, ties to the
    /// smallest order id (R6).
    bans: HashMap<u32, (UnixNs, &'a str)>,
    /// (flagged_at, order_id), unsorted.
    flags: Vec<(UnixNs, &'a str)>,
}

impl<'a> OrderSums<'a> {
    fn add_ban(&mut self, product: u32, candidate: (UnixNs, &'a str)) {
        self.bans
            .entry(product)
            .and_modify(|best| *best = (*best).min(candidate))
            .or_insert(candidate);
    }

    /// Adds the sums over other orders of the same shop.
    pub(super) fn merge(&mut self, other: OrderSums<'a>) {
        self.orders += other.orders;
        self.judgments += other.judgments;
        self.violating_orders += other.violating_orders;
        self.charged_fen += other.charged_fen;
        self.waived_fen += other.waived_fen;
        self.pending_fen += other.pending_fen;
        self.due_orders += other.due_orders;
        self.timed_out_orders += other.timed_out_orders;
        self.timeout_judgments += other.timeout_judgments;
        for (product, candidate) in other.bans {
            self.add_ban(product, candidate);
        }
        self.flags.extend(other.flags);
    }
}

/// A tally's order facts in order-id order. (id, position) pairs are sorted
/// rather than the facts themselves: a fact is a few hundred bytes, and the
/// largest shop has a hundred thousand orders. Ids are unique, so an unstable
/// sort gives one order.
pub(super) fn facts_by_order_id<'t, 'a>(
    tally: &'t ShopTally<'a>,
) -> impl Iterator<Item = &'t OrderFacts<'a>> {
    let mut by_id: Vec<(&str, u32)> = tally
        .facts
        .iter()
        .enumerate()
        .map(|(position, facts)| (facts.view.order_id(), position as u32))
        .collect();
    by_id.sort_unstable();
    by_id
        .into_iter()
        .map(move |(_, position)| &tally.facts[position as usize])
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, folded, paid, revoked, shipped, topped_up};
    use super::*;
    use crate::policy::Policy;

    /// A shop S1 with every kind of deduction as of `at(80)` (settle days
    /// start at about `at(58)` and `at(82)`): O2 shipped in time; O1, O5 and
    /// O6 judged on one day, charged 1,000, 1,000 and 500 of 1,000 under the
    /// cap of 2,500 fen (R5); O4's first judgment revoked (R11); every second
    /// judgment and O3's first still pending (R4).
    fn mixed_shop() -> Ledger {
        let policy = Policy {
            deduction_fen: 1_000,
            shop_daily_cap_fen: 2_500,
            ..Policy::default()
        };
        folded(
            policy,
            &[
                paid("O1", "S1", 0),
                paid("O2", "S1", 0),
                shipped("O2", "T2", 1),
                paid("O3", "S1", 30),
                paid("O4", "S1", 1),
                revoked("O4", 1, 60),
                paid("O5", "S1", 2),
                paid("O6", "S1", 3),
                topped_up("S1", 5_000, 0),
            ],
        )
    }

    #[test]
    fn a_shops_tally_sums_its_orders_rows_exactly() {
        let ledger = mixed_shop();
        let as_of = at(80);
        let tally = ledger.tally(0, as_of, FactsKept::All);
        let rows: Vec<_> = tally.facts.iter().map(|f| ledger.row(f, as_of)).collect();
        let sum = |field: fn(&crate::report::OrderRow) -> i64| {
            rows.iter().map(|r| i128::from(field(r))).sum::<i128>()
        };
        assert_eq!(rows.len() as u64, tally.orders);
        assert_eq!(sum(|r| r.charged_fen), tally.charged_fen);
        assert_eq!(sum(|r| r.waived_fen), tally.waived_fen);
        assert_eq!(sum(|r| r.pending_fen), tally.pending_fen);
        assert_eq!(
            rows.iter().map(|r| r.judgments).sum::<u64>(),
            tally.judgments
        );
        // Not vacuous: every kind of sum is there (R4, R5, R11).
        assert_eq!(tally.orders, 6);
        assert_eq!(tally.charged_fen, 2_500);
        assert_eq!(tally.waived_fen, 500);
        assert_eq!(tally.pending_fen, 5 * 1_000);
        assert_eq!(tally.deposit_balance_fen, 5_000 - 2_500);
    }

    type Figures<'a> = (
        [u64; 6],
        [i128; 5],
        Vec<(UnixNs, &'a str, &'a str)>,
        Vec<(UnixNs, &'a str)>,
    );

    fn figures<'a>(t: &ShopTally<'a>) -> Figures<'a> {
        (
            [
                t.orders,
                t.judgments,
                t.violating_orders,
                t.due_orders,
                t.timed_out_orders,
                t.timeout_judgments,
            ],
            [
                t.charged_fen,
                t.waived_fen,
                t.pending_fen,
                t.deposit_balance_fen,
                t.booked_fen,
            ],
            t.bans.clone(),
            t.flags.clone(),
        )
    }

    #[test]
    fn a_summary_tally_gives_the_figures_of_a_full_one() {
        // A summary skips the orders no judgment reaches; its figures are
        // the same.
        let ledger = mixed_shop();
        for hours in [0, 50, 60, 80, 200] {
            let full = ledger.tally(0, at(hours), FactsKept::All);
            let summary = ledger.tally(0, at(hours), FactsKept::Summary);
            assert_eq!(figures(&summary), figures(&full), "as of hour {hours}");
            assert!(summary.facts.is_empty());
        }
    }

    #[test]
    fn sums_past_i64_stay_exact() {
        // Each amount fits an i64; two deductions on two settle days and
        // three top-ups do not.
        let policy = Policy {
            deduction_fen: i64::MAX,
            max_deductions_per_order: 1,
            shop_daily_cap_fen: i64::MAX,
            ..Policy::default()
        };
        let ledger = folded(
            policy,
            &[
                paid("O1", "S1", 0),
                paid("O2", "S1", 24),
                topped_up("S1", i64::MAX, 0),
                topped_up("S1", i64::MAX, 0),
                topped_up("S1", i64::MAX, 1),
            ],
        );
        let tally = ledger.tally(0, at(240), FactsKept::All);
        let max = i128::from(i64::MAX);
        assert_eq!(tally.charged_fen, 2 * max);
        assert_eq!(tally.waived_fen, 0);
        assert_eq!(tally.deposit_balance_fen, 3 * max - 2 * max);
    }
}
