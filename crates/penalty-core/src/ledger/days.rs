//! A shop's history by local day: what the dashboard's chart draws, so that
//! it asks for a few dozen rows instead of every deduction and notice.

use std::collections::BTreeMap;

use super::tallies::FactsKept;
use super::{Ledger, QueryError};
use crate::report::{DayFigures, DeductionStatus, ShopDays};
use crate::time::{Day, UnixNs};

impl Ledger {
    /// One row per local day on which the shop has a standing judgment
    /// (counted on the day it was judged, R3) or a deduction (counted on its
    /// settle date, R4, with what the daily cap made of it, R5), as of
    /// `as_of`. The sums over all days are the shop report's `judgments`,
    /// `charged_fen` and `waived_fen`.
    pub fn shop_days(&self, shop_id: &str, as_of: UnixNs) -> Result<ShopDays, QueryError> {
        let (index, shop) = self.existing_shop(shop_id, as_of)?;
        let offset = self.policy.utc_offset;
        let mut days: BTreeMap<Day, DayFigures> = BTreeMap::new();
        fn day(days: &mut BTreeMap<Day, DayFigures>, day: Day) -> &mut DayFigures {
            days.entry(day).or_insert_with(|| DayFigures {
                date: day.to_iso(),
                ..DayFigures::default()
            })
        }
        for &order in &shop.orders {
            let Some(view) = self.view(order, as_of) else {
                continue;
            };
            for judgment in view.judgments(as_of) {
                if !judgment.revoked(as_of) {
                    day(&mut days, judgment.judged_at.local_day(offset)).judgments += 1;
                }
            }
        }
        let tally = self.tally(index, as_of, FactsKept::Deductions);
        for deduction in tally.facts.iter().flat_map(|f| &f.deductions) {
            let figures = day(&mut days, deduction.settle_day);
            figures.charged_fen += i128::from(deduction.charged_fen);
            figures.waived_fen += i128::from(deduction.waived_fen);
            if matches!(
                deduction.status,
                DeductionStatus::Waived | DeductionStatus::Partial
            ) {
                figures.cap_hits += 1;
            }
        }
        Ok(ShopDays {
            shop_id: shop_id.to_string(),
            as_of: as_of.to_rfc3339(offset),
            days: days.into_values().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, paid, shipped};
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn days_add_up_to_the_shop_report() {
        let mut ledger = Ledger::new(Policy::default());
        for n in 0..30 {
            let order = format!("O{n}");
            let event = paid(&order, "S1", n * 5);
            ledger.apply(&event, event.at).unwrap();
            if n % 3 == 0 {
                let event = shipped(&order, "T", n * 5 + 1);
                ledger.apply(&event, event.at).unwrap();
            }
        }
        let as_of = at(24 * 12);
        let days = ledger.shop_days("S1", as_of).unwrap();
        let report = ledger.shop_report("S1", as_of, true).unwrap();
        assert!(days.days.len() > 3, "{days:?}");
        let judgments: u64 = days.days.iter().map(|d| d.judgments).sum();
        let charged: i128 = days.days.iter().map(|d| d.charged_fen).sum();
        let waived: i128 = days.days.iter().map(|d| d.waived_fen).sum();
        assert_eq!(judgments, report.judgments);
        assert_eq!(charged, report.charged_fen);
        assert_eq!(waived, report.waived_fen);
        assert!(days.days.windows(2).all(|w| w[0].date < w[1].date));
        assert!(matches!(
            ledger.shop_days("S9", as_of),
            Err(QueryError::UnknownShop { .. })
        ));
    }
}
